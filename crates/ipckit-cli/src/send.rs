//! `ipckit send NAME`: sends standard input over a transport to `ipckit recv NAME`, a line or a
//! chunk per message, and closes the stream at the end of the input.
//!
//! Exit status 0 means every message read was received: the close waits for the receiver to
//! take the end of the stream (see `ipckit::transport::Sender::close`). Otherwise one line says
//! why (no receiver within --timeout, the receiver gone) and the status is 1; SIGINT, SIGTERM
//! and SIGHUP make it leave at once with 130, 143 or 129 (see `leave`).

use std::io::{BufRead, Read};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ipckit::transport::{Options, TransportKind};

/// How standard input is cut into messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Framing {
    /// Each line is one message, without its newline.
    Lines,
    /// Chunks of up to --chunk bytes, as read.
    Bytes,
}

#[derive(clap::Args)]
pub struct Args {
    /// The name both sides use (letters, digits, '.', '_', '-'); paths, keys and queue names are
    /// derived from it.
    name: String,
    /// The transport: channel (default; several senders may feed one receiver), fifo,
    /// unix-stream, unix-seqpacket, unix-dgram, tcp, sysv-msg, posix-mq, sysv-shm+sem,
    /// mmap+futex, channel-spin, signal.
    #[arg(long, default_value = "channel", value_name = "TRANSPORT")]
    via: String,
    /// The buffer between the sides when this side creates it (the channel's per-sender lane
    /// capacity: a power of two, 4K to 1G; K, M, G are powers of 1024, KB, MB, GB of 1000).
    #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size)]
    capacity: Option<u64>,
    /// lines: a message per line; bytes: raw chunks.
    #[arg(long, value_enum, default_value = "lines")]
    framing: Framing,
    /// Bytes framing: the largest chunk (default 64K, or the transport's largest message if that
    /// is smaller).
    #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size)]
    chunk: Option<u64>,
    /// How long to wait for a receiver to appear, and for it to take what was sent (without
    /// progress): a number with a unit (500ms, 2s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::units::parse_duration)]
    timeout: std::time::Duration,
}

/// The transport options for `--capacity` and `--timeout`: the buffer, one-slot transports sized
/// to it, and how long to wait for the other side.
pub fn options(capacity: Option<u64>, timeout: Duration) -> Result<Options> {
    let mut options = Options::new();
    if let Some(c) = capacity {
        let bytes = usize::try_from(c).context("--capacity is too large")?;
        options.capacity(Some(bytes)).max_message(bytes);
    }
    // Unrelated processes may start long apart: wait up to --timeout for the other side.
    options.timeout(timeout);
    Ok(options)
}

/// What the thread that reads standard input hands over.
enum Item {
    /// A line (with its number) or a chunk.
    Data(u64, Vec<u8>),
    /// The input ended.
    End,
    /// Reading failed.
    Failed(std::io::Error),
    /// A signal came: leave.
    Interrupted,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let interrupts = crate::leave::install()?;
    let result = send(args, &interrupts);
    // After a signal, whatever failed failed because of it: leave as the signal says.
    if let Some(code) = interrupts.exit_code() {
        return Ok(code);
    }
    result
}

fn send(args: Args, interrupts: &crate::leave::Interrupts) -> Result<ExitCode> {
    let kind: TransportKind = args.via.parse()?;
    let mut options = options(args.capacity, args.timeout)?;
    interrupts.cancel(&mut options);
    let mut tx = kind
        .named_sender(&args.name, &options)
        .with_context(|| format!("connect to {:?} over {kind}", args.name))?;
    interrupts.watch(tx.abort_handle());
    let max = tx.max_message();
    let chunk = match args.framing {
        Framing::Lines => 0,
        Framing::Bytes => {
            let chunk = match args.chunk {
                Some(c) => usize::try_from(c).context("--chunk is too large")?,
                None => max.min(64 * 1024),
            };
            if chunk == 0 {
                bail!("--chunk must be at least 1 byte");
            }
            if chunk > max {
                bail!("--chunk {chunk} is more than {kind} can carry in one message ({max} bytes)");
            }
            chunk
        }
    };
    // Standard input is read by a thread of its own, so that a signal is not held up by a read
    // that waits for input: the signal thread hands over `Interrupted` on the same channel.
    let (items_tx, items) = mpsc::sync_channel::<Item>(16);
    let wake = items_tx.clone();
    interrupts.on_signal(move || {
        let _ = wake.try_send(Item::Interrupted);
    });
    let framing = args.framing;
    std::thread::Builder::new()
        .name("ipckit-stdin".into())
        .spawn(move || read_input(framing, chunk, &items_tx))
        .context("start the input thread")?;
    loop {
        if interrupts.signal().is_some() {
            return Ok(ExitCode::SUCCESS);
        }
        match items.recv() {
            Ok(Item::Data(number, data)) => {
                if framing == Framing::Lines {
                    if data.len() > max {
                        bail!(
                            "line {number} has {} bytes, more than {kind} can carry in one message ({max} bytes)",
                            data.len()
                        );
                    }
                    tx.send(&data)
                        .with_context(|| format!("send line {number}"))?;
                } else {
                    tx.send(&data).context("send")?;
                }
            }
            Ok(Item::End) | Err(mpsc::RecvError) => break,
            Ok(Item::Failed(e)) => return Err(e).context("read standard input"),
            Ok(Item::Interrupted) => return Ok(ExitCode::SUCCESS),
        }
    }
    tx.close().context("close")?;
    Ok(ExitCode::SUCCESS)
}

/// Reads standard input into lines or chunks and hands them over, then `End` (or `Failed`).
fn read_input(framing: Framing, chunk: usize, items: &mpsc::SyncSender<Item>) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut number = 0u64;
    loop {
        let item = match framing {
            Framing::Lines => {
                let mut line = Vec::new();
                match input.read_until(b'\n', &mut line) {
                    Ok(0) => Item::End,
                    Ok(_) => {
                        number += 1;
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        Item::Data(number, line)
                    }
                    Err(e) => Item::Failed(e),
                }
            }
            Framing::Bytes => {
                let mut buf = vec![0u8; chunk];
                match fill(&mut input, &mut buf) {
                    Ok(0) => Item::End,
                    Ok(n) => {
                        buf.truncate(n);
                        number += 1;
                        Item::Data(number, buf)
                    }
                    Err(e) => Item::Failed(e),
                }
            }
        };
        let last = !matches!(item, Item::Data(..));
        let short =
            matches!(&item, Item::Data(_, d) if framing == Framing::Bytes && d.len() < chunk);
        if items.send(item).is_err() || last {
            return;
        }
        if short {
            // A short chunk: the input ended.
            let _ = items.send(Item::End);
            return;
        }
    }
}

/// Reads until `buf` is full or the input ends; the number of bytes read.
fn fill(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match input.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
