//! `ipckit send NAME`: sends standard input over a transport to `ipckit recv NAME`, a line or a
//! chunk per message, and closes the stream at the end of the input.

use std::io::{BufRead, Read};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ipckit::bench::parse_size;
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
    /// capacity: a power of two, 4K to 1G; K, M, G are binary multiples).
    #[arg(long, value_name = "SIZE")]
    capacity: Option<String>,
    /// lines: a message per line; bytes: raw chunks.
    #[arg(long, value_enum, default_value = "lines")]
    framing: Framing,
    /// Bytes framing: the largest chunk (default 64K, or the transport's largest message if that
    /// is smaller).
    #[arg(long, value_name = "SIZE")]
    chunk: Option<String>,
}

/// The transport options for `--capacity`: the buffer, and one-slot transports sized to it.
pub fn options(capacity: Option<&str>) -> Result<Options> {
    let mut options = Options::new();
    if let Some(c) = capacity {
        let bytes = usize::try_from(parse_size(c)?).context("--capacity is too large")?;
        options.capacity(Some(bytes)).max_message(bytes);
    }
    // Unrelated processes may start long apart: wait up to a minute for the other side.
    options.timeout(std::time::Duration::from_secs(60));
    Ok(options)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let kind: TransportKind = args.via.parse()?;
    let options = options(args.capacity.as_deref())?;
    let mut tx = kind
        .named_sender(&args.name, &options)
        .with_context(|| format!("connect to {:?} over {kind}", args.name))?;
    let max = tx.max_message();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    match args.framing {
        Framing::Lines => {
            let mut line = Vec::new();
            let mut number = 0u64;
            loop {
                line.clear();
                let n = input
                    .read_until(b'\n', &mut line)
                    .context("read standard input")?;
                if n == 0 {
                    break;
                }
                number += 1;
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if line.len() > max {
                    bail!(
                        "line {number} has {} bytes, more than {kind} can carry in one message ({max} bytes)",
                        line.len()
                    );
                }
                tx.send(&line)
                    .with_context(|| format!("send line {number}"))?;
            }
        }
        Framing::Bytes => {
            let chunk = match &args.chunk {
                Some(c) => usize::try_from(parse_size(c)?).context("--chunk is too large")?,
                None => max.min(64 * 1024),
            };
            if chunk == 0 {
                bail!("--chunk must be at least 1 byte");
            }
            if chunk > max {
                bail!("--chunk {chunk} is more than {kind} can carry in one message ({max} bytes)");
            }
            let mut buf = vec![0u8; chunk];
            loop {
                let n = fill(&mut input, &mut buf).context("read standard input")?;
                if n == 0 {
                    break;
                }
                tx.send(&buf[..n]).context("send")?;
                if n < chunk {
                    break;
                }
            }
        }
    }
    tx.close().context("close")?;
    Ok(ExitCode::SUCCESS)
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
