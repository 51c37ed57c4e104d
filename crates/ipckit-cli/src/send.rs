//! `ipckit send NAME`: sends standard input over a transport to `ipckit recv NAME`, a line or a
//! chunk per message, and closes the stream at the end of the input.
//!
//! Exit status 0 means every message read was received: the close waits for the receiver to
//! take the end of the stream (see `ipckit::transport::Sender::close`). Otherwise one line says
//! why (no receiver within --timeout, the receiver gone) and the status is 1; SIGINT, SIGTERM
//! and SIGHUP make it leave at once with 130, 143 or 129 (see `leave`).

use std::io::{BufRead, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ipckit::transport::{Options, TransportKind};
use ipckit::Key;

/// What `--help` of send and recv says of each transport's wire format, one line each.
pub const WIRE_HELP: &str = "\
Wire formats (--framing lines or bytes; --framing ipckit: ipckit's checked framing on every transport):
  fifo            the bytes as they are; the end is the writer closing; --path PATH (default $XDG_RUNTIME_DIR/ipckit-NAME.fifo)
  unix-stream     the bytes as they are; the end is the writer closing; --path PATH (default …/ipckit-NAME.sock)
  unix-seqpacket  a packet per line (with its newline) or chunk; the end is the writer closing; --path (…/ipckit-NAME.seqpacket)
  unix-dgram      a datagram per line (with its newline) or chunk; an empty datagram ends; --path (…/ipckit-NAME.dgram)
  tcp             the bytes as they are; the end is the writer closing; --port N or --addr HOST:PORT (default: a free loopback port, which recv prints)
  sysv-msg        a message per line (without its newline) or chunk, of type --type N (default 1; recv: any); --key KEY (default derived from NAME); no end: recv --count, --idle or a signal
  posix-mq        a message per line (without its newline) or chunk, at --priority N (default 0; recv: any); queue /ipckit-NAME; no end: recv --count, --idle or a signal
  signal          sigqueue of exactly 4 bytes (one int) a message; recv prints its pid on stderr, send --pid PID reaches it
  channel, channel-spin, sysv-shm+sem, mmap+futex: ipckit's own framing only";

/// How standard input is cut into messages, and what goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Framing {
    /// Each line is one message; on the wire nothing but the bytes (see below).
    Lines,
    /// Chunks of up to --chunk bytes, as read; on the wire nothing but the bytes.
    Bytes,
    /// ipckit's checked framing: a message per line, lengths or tags, an explicit end of stream
    /// and a sender that dies reported (both sides must be ipckit).
    Ipckit,
}

/// The flags send and recv share: the transport, its framing and where it meets.
#[derive(clap::Args)]
pub struct Wire {
    /// The name both sides use (letters, digits, '.', '_', '-'); paths, keys and queue names are
    /// derived from it. Not needed by `send --via signal --pid N`.
    #[arg(required_unless_present = "pid")]
    pub name: Option<String>,
    /// The transport: channel (default; several senders may feed one receiver), fifo,
    /// unix-stream, unix-seqpacket, unix-dgram, tcp, sysv-msg, posix-mq, sysv-shm+sem,
    /// mmap+futex, channel-spin, signal.
    #[arg(long, default_value = "channel", value_name = "TRANSPORT", value_parser = parse_kind)]
    pub via: TransportKind,
    /// lines: a message per line; bytes: raw chunks; ipckit: ipckit's checked framing. With lines
    /// and bytes, fifo, unix-*, tcp, sysv-msg and posix-mq carry the bytes and nothing else.
    #[arg(long, value_enum, default_value = "lines")]
    pub framing: Framing,
    /// fifo, unix-stream, unix-seqpacket, unix-dgram: the FIFO or socket (instead of one
    /// derived from NAME).
    #[arg(long, value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// tcp: the port on 127.0.0.1 (default: a free port, which recv prints on stderr and an
    /// ipckit sender finds).
    #[arg(long, value_name = "N", conflicts_with = "addr")]
    pub port: Option<u16>,
    /// tcp: the address to listen at (recv) or connect to (send).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    pub addr: Option<SocketAddr>,
    /// sysv-msg: the queue's key, as ipcs prints it (0x… or decimal); recv creates the queue if
    /// there is none.
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub key: Option<Key>,
    /// sysv-msg: the message type send uses (default 1) and the only one recv takes (default:
    /// any).
    #[arg(long = "type", value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub mtype: Option<i64>,
    /// posix-mq: the priority send uses (default 0) and the only one recv accepts (default: any).
    #[arg(long, value_name = "N")]
    pub priority: Option<u32>,
    /// send --via signal: the receiver's pid (`recv --via signal` prints it on stderr).
    #[arg(long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    pub pid: Option<u32>,
}

fn parse_kind(s: &str) -> Result<TransportKind, String> {
    s.parse().map_err(|e: ipckit::Error| e.to_string())
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("{s:?} is not an address: give HOST:PORT (127.0.0.1:7000)"))
}

fn parse_key(s: &str) -> Result<Key, String> {
    let key: Key = s.parse().map_err(|_| {
        format!("{s:?} is not a key: give 0x and up to 8 hex digits, or a decimal number")
    })?;
    if key.is_private() {
        return Err("key 0 is IPC_PRIVATE, which no other process can open".into());
    }
    Ok(key)
}

impl Wire {
    /// Whether the bytes on the wire are the user's (plain framing).
    pub fn plain(&self) -> bool {
        self.framing != Framing::Ipckit && self.via.supports_plain()
    }

    /// The NAME ("" when `--pid` stands for it).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// A flag that does not fit the transport or framing, in words; checked before any work.
    /// `sending`: the flags of `send` (--pid).
    pub fn check(&self, sending: bool) -> Result<(), String> {
        let kind = self.via;
        if self.pid.is_some() && (!sending || kind != TransportKind::Signal) {
            return Err("--pid is for send --via signal".into());
        }
        if sending && kind == TransportKind::Signal && self.pid.is_none() {
            return Err("send --via signal needs --pid N: the pid recv --via signal prints".into());
        }
        let only = |flag: &str, kinds: &str| -> Result<(), String> {
            Err(format!("{flag} is for {kinds} (not {kind})"))
        };
        let socketish = matches!(
            kind,
            TransportKind::Fifo
                | TransportKind::UnixStream
                | TransportKind::UnixSeqpacket
                | TransportKind::UnixDgram
        );
        if self.path.is_some() && !socketish {
            return only("--path", "fifo, unix-stream, unix-seqpacket and unix-dgram");
        }
        if (self.port.is_some() || self.addr.is_some()) && kind != TransportKind::Tcp {
            return only("--port and --addr", "tcp");
        }
        if (self.key.is_some() || self.mtype.is_some()) && kind != TransportKind::SysvMsg {
            return only("--key and --type", "sysv-msg");
        }
        if self.priority.is_some() && kind != TransportKind::PosixMq {
            return only("--priority", "posix-mq");
        }
        let placed = self.path.is_some()
            || self.port.is_some()
            || self.addr.is_some()
            || self.key.is_some()
            || self.mtype.is_some()
            || self.priority.is_some();
        if placed && self.framing == Framing::Ipckit {
            return Err(
                "--path, --port, --addr, --key, --type and --priority need --framing lines or bytes"
                    .into(),
            );
        }
        if let Some(name) = &self.name {
            ipckit::transport::check_name(name).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// `--capacity` and `--chunk` for this transport, checked before any work.
    pub fn check_sizes(&self, capacity: Option<u64>, chunk: Option<u64>) -> Result<(), String> {
        if let Some(c) = capacity {
            let bytes = usize::try_from(c).map_err(|_| format!("--capacity {c} is too large"))?;
            self.via
                .check_capacity(bytes)
                .map_err(|e| format!("--capacity: {e}"))?;
        }
        if let (Some(c), Framing::Bytes) = (chunk, self.framing) {
            let max = if self.plain() {
                None
            } else {
                Some(self.via.max_message())
            };
            if let Some(max) = max.filter(|m| c > m.bytes as u64) {
                return Err(format!(
                    "--chunk {c} is more than {} carries in one message ({} bytes: {})",
                    self.via, max.bytes, max.reason
                ));
            }
        }
        Ok(())
    }

    /// The transport options: framing and meeting point, `--capacity` and `--timeout`.
    pub fn options(&self, capacity: Option<u64>, timeout: Duration) -> Result<Options> {
        let mut options = options(capacity, timeout)?;
        if self.plain() {
            options
                .framing(ipckit::transport::Framing::Plain)
                .path(self.path.clone())
                .addr(
                    self.addr
                        .or(self.port.map(|p| SocketAddr::from(([127, 0, 0, 1], p)))),
                )
                .key(self.key)
                .message_type(self.mtype)
                .priority(self.priority);
        }
        Ok(options)
    }
}

#[derive(clap::Args)]
#[command(after_help = WIRE_HELP)]
pub struct Args {
    #[command(flatten)]
    wire: Wire,
    /// The buffer between the sides when this side creates it (the channel's per-sender lane
    /// capacity: a power of two, 4K to 1G; K, M, G are powers of 1024, KB, MB, GB of 1000).
    #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size)]
    capacity: Option<u64>,
    /// Bytes framing: the largest chunk (default 64K, or the transport's largest message if that
    /// is smaller).
    #[arg(long, value_name = "SIZE", value_parser = parse_chunk)]
    chunk: Option<u64>,
    /// How long to wait for a receiver to appear, and for it to take what was sent (without
    /// progress): a number with a unit (500ms, 2s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::units::parse_duration)]
    timeout: std::time::Duration,
}

/// A command-line mistake found after parsing: one line on stderr, exit status 2.
pub fn usage(message: &str) -> ExitCode {
    crate::usage_error(clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        message,
    ))
}

/// A chunk size: a size of at least one byte.
fn parse_chunk(s: &str) -> Result<u64, String> {
    match crate::units::parse_size(s)? {
        0 => Err("--chunk must be at least 1 byte".into()),
        n => Ok(n),
    }
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
    if let Err(e) = args
        .wire
        .check(true)
        .and_then(|()| args.wire.check_sizes(args.capacity, args.chunk))
    {
        return Ok(usage(&e));
    }
    let interrupts = crate::leave::install()?;
    let result = send(args, &interrupts);
    // After a signal, whatever failed failed because of it: leave as the signal says.
    if let Some(code) = interrupts.exit_code() {
        return Ok(code);
    }
    result
}

fn send(args: Args, interrupts: &crate::leave::Interrupts) -> Result<ExitCode> {
    let kind = args.wire.via;
    let mut options = args.wire.options(args.capacity, args.timeout)?;
    interrupts.cancel(&mut options);
    let mut tx = match args.wire.pid {
        Some(pid) => kind
            .connect_sender(&format!("pid={pid}"), &options)
            .with_context(|| format!("connect to pid {pid} over {kind}"))?,
        None => kind
            .named_sender(args.wire.name(), &options)
            .with_context(|| format!("connect to {:?} over {kind}", args.wire.name()))?,
    };
    interrupts.watch(tx.abort_handle());
    let max = tx.max_message();
    let chunk = match args.wire.framing {
        Framing::Lines | Framing::Ipckit => 0,
        Framing::Bytes => {
            let chunk = match args.chunk {
                Some(c) => usize::try_from(c).context("--chunk is too large")?,
                None => max.min(64 * 1024),
            };
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
    let framing = args.wire.framing;
    // Plain framing over sockets and streams carries a line's newline too (the bytes as they
    // are); message queues and ipckit's framing carry a line without it.
    let keep_newline =
        args.wire.plain() && !matches!(kind, TransportKind::SysvMsg | TransportKind::PosixMq);
    std::thread::Builder::new()
        .name("ipckit-stdin".into())
        .spawn(move || read_input(framing, keep_newline, chunk, &items_tx))
        .context("start the input thread")?;
    loop {
        if interrupts.signal().is_some() {
            return Ok(ExitCode::SUCCESS);
        }
        match items.recv() {
            Ok(Item::Data(number, data)) => {
                if framing != Framing::Bytes {
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
fn read_input(framing: Framing, keep_newline: bool, chunk: usize, items: &mpsc::SyncSender<Item>) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut number = 0u64;
    loop {
        let item = match framing {
            Framing::Lines | Framing::Ipckit => {
                let mut line = Vec::new();
                match input.read_until(b'\n', &mut line) {
                    Ok(0) => Item::End,
                    Ok(_) => {
                        number += 1;
                        if !keep_newline && line.last() == Some(&b'\n') {
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
