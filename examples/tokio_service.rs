//! A tokio service that awaits two shared-memory channels and a timer in one `select!`, on one
//! thread, using no CPU while nothing happens. Feed it with the command, from any shell:
//!
//! ```text
//! cargo run -p ipckit --features tokio --example tokio_service -- jobs alerts
//! printf 'build\ntest\n' | ipckit send jobs
//! echo 'disk full' | ipckit send alerts
//! ```
//!
//! `ipckit send NAME` writes each line as one message to the channel `/ipckit-NAME` and, when its
//! input ends, waits until the service received everything, then closes: the end of that
//! channel's stream. The service prints each message with its channel's name, a line per second
//! while it waits, and exits once both streams have ended.

use std::time::Duration;

use ipckit::channel::{self, Options};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let names: Vec<String> = std::env::args().skip(1).collect();
    let [a, b] = names.as_slice() else {
        return Err("usage: tokio_service NAME NAME (the names `ipckit send` is given)".into());
    };
    // Either side may start first; the consumer creates the channel if it is not there yet.
    let open = |name: &str| -> ipckit::Result<channel::tokio::Consumer> {
        channel::tokio::Consumer::new(Options::new().consumer(&format!("/ipckit-{name}"))?)
    };
    let (mut rx_a, mut rx_b) = (open(a)?, open(b)?);
    println!("ready");
    let (mut open_a, mut open_b) = (true, true);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut received = 0u64;
    while open_a || open_b {
        tokio::select! {
            msg = rx_a.recv(), if open_a => match msg? {
                Some(msg) => {
                    received += 1;
                    println!("{a}: {}", String::from_utf8_lossy(&msg));
                }
                None => {
                    println!("{a}: end");
                    open_a = false;
                }
            },
            msg = rx_b.recv(), if open_b => match msg? {
                Some(msg) => {
                    received += 1;
                    println!("{b}: {}", String::from_utf8_lossy(&msg));
                }
                None => {
                    println!("{b}: end");
                    open_b = false;
                }
            },
            _ = tick.tick() => eprintln!("waiting ({received} messages so far)"),
        }
    }
    Ok(())
}
