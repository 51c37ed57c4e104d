//! `ipckit recv NAME`: receives what `ipckit send NAME` (or, with --framing lines or bytes,
//! another program) sends and writes it to standard output, until the stream ends (every
//! sender that connected closed, or the writer closed), --count messages came, nothing came for
//! --idle, or a signal. It waits up to --timeout for a first sender; SIGINT, SIGTERM and SIGHUP
//! make it remove what it created and leave with 130, 143 or 129.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ipckit::transport::{AbortHandle, TransportKind};

use crate::send::{usage, Framing, Wire, WIRE_HELP};

#[derive(clap::Args)]
#[command(after_help = WIRE_HELP)]
pub struct Args {
    #[command(flatten)]
    wire: Wire,
    /// The buffer between the sides when this side creates it (as for send).
    #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size)]
    capacity: Option<u64>,
    /// How long to wait for a first sender: a number with a unit (500ms, 2s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::units::parse_duration)]
    timeout: Duration,
    /// End after N messages (lines of a byte stream with --framing lines).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// End once nothing came for this long (after the first message or the start): a number
    /// with a unit (500ms, 2s).
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration)]
    idle: Option<Duration>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    if let Err(e) = args
        .wire
        .check(false)
        .and_then(|()| args.wire.check_sizes(args.capacity, None))
    {
        return Ok(usage(&e));
    }
    if args.wire.via == TransportKind::Signal {
        // Before the signal thread starts: no thread may take the transport's signals the
        // ordinary way (their default action ends the process).
        ipckit::transport::prepare_signals().context("block the transport's signals")?;
    }
    let interrupts = crate::leave::install()?;
    let result = recv(args, &interrupts);
    // After a signal, whatever failed failed because of it: the receiver was dropped (what it
    // created is removed, its senders see it go); leave as the signal says.
    if let Some(code) = interrupts.exit_code() {
        return Ok(code);
    }
    result
}

/// Aborts a receiver once nothing came for `idle`: a thread that looks at the time of the last
/// message; stopped when dropped.
struct IdleWatch {
    last: Arc<Mutex<Instant>>,
    fired: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl IdleWatch {
    fn start(idle: Duration, abort: AbortHandle) -> Result<IdleWatch> {
        let watch = IdleWatch {
            last: Arc::new(Mutex::new(Instant::now())),
            fired: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (last, fired, stop) = (
            Arc::clone(&watch.last),
            Arc::clone(&watch.fired),
            Arc::clone(&watch.stop),
        );
        std::thread::Builder::new()
            .name("ipckit-idle".into())
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let since = last.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
                    if since >= idle {
                        fired.store(true, Ordering::SeqCst);
                        abort.abort();
                        return;
                    }
                    std::thread::sleep((idle - since).min(Duration::from_millis(50)));
                }
            })
            .context("start the idle thread")?;
        Ok(watch)
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for IdleWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn recv(args: Args, interrupts: &crate::leave::Interrupts) -> Result<ExitCode> {
    let kind = args.wire.via;
    let mut options = args.wire.options(args.capacity, args.timeout)?;
    interrupts.cancel(&mut options);
    let context = || format!("receive {:?} over {kind}", args.wire.name());
    let ephemeral = kind == TransportKind::Tcp
        && args.wire.plain()
        && args.wire.port.is_none()
        && args.wire.addr.is_none();
    let mut rx = if ephemeral {
        // The kernel picks the port: say which, so that other programs can connect.
        let pending = kind
            .named_receiver_pending(args.wire.name(), &options)
            .with_context(context)?;
        eprintln!("ipckit: listening on {}", pending.rendezvous());
        pending
            .establish(Some(args.timeout))
            .with_context(context)?
    } else {
        kind.named_receiver(args.wire.name(), &options)
            .with_context(context)?
    };
    if kind == TransportKind::Signal {
        // The one thing a sender needs, on one line.
        let pid = std::process::id();
        eprintln!("ipckit: receiving signals as pid {pid} (ipckit send --via signal --pid {pid})");
    }
    interrupts.watch(rx.abort_handle());
    let idle = match args.idle {
        Some(d) => Some(IdleWatch::start(d, rx.abort_handle())?),
        None => None,
    };
    let plain = args.wire.plain();
    let lines = args.wire.framing != Framing::Bytes;
    // A plain byte stream carries the newlines itself: count them, add none.
    let stream = plain && kind.is_byte_stream();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut buf = Vec::new();
    let mut left = args.count;
    // Each message is written whole and flushed before the next is awaited, so whatever ends the
    // stream (a sender that died, a corrupt channel), what was printed is whole messages.
    loop {
        match rx.recv_into(&mut buf) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) if idle.as_ref().is_some_and(IdleWatch::fired) => break,
            Err(e) => return Err(e).context("receive"),
        }
        if let Some(w) = &idle {
            w.touch();
        }
        let mut data = &buf[..];
        let mut last = false;
        if let Some(n) = left.as_mut() {
            if stream && lines {
                // Up to the n-th newline.
                let mut seen = 0;
                if let Some(end) = data.iter().position(|&b| {
                    seen += u64::from(b == b'\n');
                    seen == *n
                }) {
                    data = &data[..=end];
                    last = true;
                }
                *n -= seen;
            } else {
                *n -= 1;
                last = *n == 0;
            }
        }
        out.write_all(data).context("write standard output")?;
        // A line gets its newline where the wire did not carry one.
        if lines && !stream && !(plain && data.last() == Some(&b'\n')) {
            out.write_all(b"\n").context("write standard output")?;
        }
        out.flush().context("write standard output")?;
        if last {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
