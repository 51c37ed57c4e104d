//! One way to move a message from one process to another, over any of ipckit's mechanisms: the
//! common ground of `ipckit bench` and `ipckit send`/`recv`.
//!
//! Each mechanism moves bytes differently — a pipe is a byte stream, a message queue keeps message
//! boundaries but caps their size, shared memory needs a handshake — and each ends differently,
//! or not at all: a message queue has no end of file. A [`TransportKind`] hides that behind a
//! [`Sender`] and a [`Receiver`] of whole messages: stream mechanisms frame each message with a
//! length, every kind carries an explicit **end-of-stream** marker ([`Sender::close`]), so
//! [`Receiver::recv`] returns `Ok(None)` only after a sender closed on purpose, and an error when
//! it vanished mid-stream where the mechanism can tell. Each kind states the largest message it
//! carries, and why ([`TransportKind::max_message`]).
//!
//! # Setting up across two processes
//! One process *hosts* ([`TransportKind::host_sender`], [`TransportKind::host_receiver`]): it
//! creates what the mechanism needs and gets a [`Pending`] end with a rendezvous string. The other
//! process gets that string (through argv or the environment) and *connects*
//! ([`TransportKind::connect_sender`], [`TransportKind::connect_receiver`]); a child started by
//! the host must be prepared with [`Pending::prepare_child`] (an anonymous pipe reaches the child
//! by inheritance, and the child takes it over with the `unsafe`
//! [`TransportKind::connect_sender_inherited`] / [`TransportKind::connect_receiver_inherited`]:
//! no safe function adopts a descriptor by its number). The host then calls [`Pending::establish`]. Objects the host created are
//! removed when its end is dropped.
//!
//! Unrelated processes meet by a NAME instead ([`TransportKind::named_receiver`],
//! [`TransportKind::named_sender`]): paths, keys and names are derived from it
//! ([`check_name`]); the receiver creates and removes, the sender waits for it to appear.
//!
//! **Plain framing.** For programs that are not ipckit, a named meeting can put nothing but the
//! messages on the wire ([`Framing::Plain`], [`Options::framing`]): no lengths, tags, hellos or
//! end markers; end of stream is the writer closing where the mechanism has one.
//!
//! # References
//! [pipe(7)](https://man7.org/linux/man-pages/man7/pipe.7.html),
//! [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html),
//! [tcp(7)](https://man7.org/linux/man-pages/man7/tcp.7.html),
//! [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html),
//! [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html),
//! [futex(7)](https://man7.org/linux/man-pages/man7/futex.7.html),
//! [sigqueue(3)](https://man7.org/linux/man-pages/man3/sigqueue.3.html)

use std::fmt;
use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Object, Result};

mod channel;
mod fifo;
mod mmap_futex;
mod packet;
mod pipe;
mod plain;
mod posix_mq;
mod signal;
mod stream;
mod sysv_msg;
mod sysv_shm_sem;
mod tcp;
mod unix_dgram;
mod unix_seqpacket;
mod unix_stream;

pub use signal::prepare_signals;

/// How long a blocked wait sleeps at most before it checks whether it was aborted
/// ([`AbortHandle`]) or its peer died, where the mechanism cannot wake it for that.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

/// The mechanisms a [`Sender`] and [`Receiver`] can run over. `Display` and `FromStr` use the
/// names in the table (`"unix-stream"`, `"sysv-shm+sem"` …).
///
/// | name | mechanism | framing, end of stream |
/// |---|---|---|
/// | `pipe` | anonymous pipe, inherited by the child | 4-byte length; `u32::MAX` ends |
/// | `fifo` | named pipe (`mkfifo`) | as `pipe` |
/// | `unix-stream` | `AF_UNIX` `SOCK_STREAM` | as `pipe` |
/// | `unix-seqpacket` | `AF_UNIX` `SOCK_SEQPACKET` | one packet per message + 1 tag byte |
/// | `unix-dgram` | `AF_UNIX` `SOCK_DGRAM` | one datagram per message + 1 tag byte |
/// | `tcp` | loopback TCP, `TCP_NODELAY` | as `pipe` |
/// | `sysv-msg` | System V message queue | message type: 2 data, 3 end |
/// | `posix-mq` | POSIX message queue | priority: 1 data, 0 end (so it comes last) |
/// | `sysv-shm+sem` | System V segment, FULL/EMPTY semaphores | one slot; a tag word |
/// | `mmap+futex` | a mapped file, a shared futex word | one slot; a tag word |
/// | `channel` | ipckit's shared-memory channel, blocking | the channel's own |
/// | `channel-spin` | the same channel, busy-polling | the channel's own |
/// | `signal` | `sigqueue` of a real-time signal | exactly 4 bytes (one `int`); a second signal ends |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TransportKind {
    /// An anonymous pipe; the child inherits its end.
    Pipe,
    /// A named pipe (FIFO) in the file system.
    Fifo,
    /// A Unix-domain stream socket.
    UnixStream,
    /// A Unix-domain sequenced-packet socket.
    UnixSeqpacket,
    /// A Unix-domain datagram socket.
    UnixDgram,
    /// A TCP connection over the loopback interface, with `TCP_NODELAY`.
    Tcp,
    /// A System V message queue.
    SysvMsg,
    /// A POSIX message queue.
    PosixMq,
    /// A System V shared-memory segment with a FULL/EMPTY semaphore handshake.
    SysvShmSem,
    /// A shared file mapping with a futex handshake.
    MmapFutex,
    /// ipckit's shared-memory channel; waiting sides sleep on a futex.
    Channel,
    /// ipckit's shared-memory channel; waiting sides busy-poll.
    ChannelSpin,
    /// A real-time signal queued with `sigqueue`, carrying one `int`.
    Signal,
}

impl TransportKind {
    /// Every kind, in the order of the table above.
    pub const ALL: [TransportKind; 13] = [
        TransportKind::Pipe,
        TransportKind::Fifo,
        TransportKind::UnixStream,
        TransportKind::UnixSeqpacket,
        TransportKind::UnixDgram,
        TransportKind::Tcp,
        TransportKind::SysvMsg,
        TransportKind::PosixMq,
        TransportKind::SysvShmSem,
        TransportKind::MmapFutex,
        TransportKind::Channel,
        TransportKind::ChannelSpin,
        TransportKind::Signal,
    ];

    /// The kind's name, as `--via` and `--transports` take it.
    pub const fn name(self) -> &'static str {
        match self {
            TransportKind::Pipe => "pipe",
            TransportKind::Fifo => "fifo",
            TransportKind::UnixStream => "unix-stream",
            TransportKind::UnixSeqpacket => "unix-seqpacket",
            TransportKind::UnixDgram => "unix-dgram",
            TransportKind::Tcp => "tcp",
            TransportKind::SysvMsg => "sysv-msg",
            TransportKind::PosixMq => "posix-mq",
            TransportKind::SysvShmSem => "sysv-shm+sem",
            TransportKind::MmapFutex => "mmap+futex",
            TransportKind::Channel => "channel",
            TransportKind::ChannelSpin => "channel-spin",
            TransportKind::Signal => "signal",
        }
    }

    /// One line on what carries the bytes.
    pub const fn description(self) -> &'static str {
        match self {
            TransportKind::Pipe => "anonymous pipe inherited by the child, length-framed",
            TransportKind::Fifo => "named pipe (mkfifo), length-framed",
            TransportKind::UnixStream => "AF_UNIX SOCK_STREAM socket, length-framed",
            TransportKind::UnixSeqpacket => "AF_UNIX SOCK_SEQPACKET socket, one packet a message",
            TransportKind::UnixDgram => "AF_UNIX SOCK_DGRAM socket, one datagram a message",
            TransportKind::Tcp => "loopback TCP with TCP_NODELAY, length-framed",
            TransportKind::SysvMsg => "System V message queue (msgsnd/msgrcv)",
            TransportKind::PosixMq => "POSIX message queue (mq_send/mq_receive)",
            TransportKind::SysvShmSem => "System V shared memory, FULL/EMPTY System V semaphores",
            TransportKind::MmapFutex => "shared file mapping, futex handshake",
            TransportKind::Channel => "ipckit shared-memory channel, futex wake-ups",
            TransportKind::ChannelSpin => "ipckit shared-memory channel, busy-polling",
            TransportKind::Signal => "sigqueue of a real-time signal, read with signalfd",
        }
    }

    /// Whether the kind can carry a stream of messages as fast as it can (a throughput
    /// measurement); only `signal` cannot: its queue of pending signals is small and a full one
    /// makes `sigqueue` fail rather than wait.
    pub const fn supports_throughput(self) -> bool {
        !matches!(self, TransportKind::Signal)
    }

    /// Whether unrelated processes can meet by NAME ([`named_sender`](Self::named_sender)); only
    /// the anonymous pipe cannot: it has no name and reaches only a child.
    pub const fn supports_names(self) -> bool {
        !matches!(self, TransportKind::Pipe)
    }

    /// The largest message this kind carries on this machine, and why: read from the kernel's
    /// limits where there is one (`msgmax`, `msgsize_max`, `net.core.wmem_max`).
    pub fn max_message(self) -> MaxMessage {
        match self {
            TransportKind::Pipe
            | TransportKind::Fifo
            | TransportKind::UnixStream
            | TransportKind::Tcp => MaxMessage {
                bytes: stream::MAX_FRAME,
                reason: "a byte stream framed with a 4-byte length".to_string(),
            },
            TransportKind::UnixSeqpacket | TransportKind::UnixDgram => unix_dgram::max_message(),
            TransportKind::SysvMsg => sysv_msg::max_message(),
            TransportKind::PosixMq => posix_mq::max_message(),
            TransportKind::SysvShmSem => sysv_shm_sem::max_message(),
            TransportKind::MmapFutex => MaxMessage {
                bytes: mmap_futex::MAX_MESSAGE,
                reason: "the mapped file is sized to the largest message".to_string(),
            },
            TransportKind::Channel | TransportKind::ChannelSpin => channel::max_message(),
            TransportKind::Signal => MaxMessage {
                bytes: signal::MESSAGE_LEN,
                reason: "sigqueue carries one int".to_string(),
            },
        }
    }

    /// `Ok` if a message of `len` bytes can be carried, else the reason it cannot, in words
    /// ("not supported: sigqueue carries one int").
    pub fn check_size(self, len: usize) -> std::result::Result<(), String> {
        if self == TransportKind::Signal && len != signal::MESSAGE_LEN {
            return Err(format!(
                "not supported: sigqueue carries one int ({} bytes exactly)",
                signal::MESSAGE_LEN
            ));
        }
        let max = self.max_message();
        if len > max.bytes {
            return Err(format!(
                "not supported: at most {} bytes ({})",
                max.bytes, max.reason
            ));
        }
        Ok(())
    }

    /// `Ok` if [`Options::capacity`] may ask for `bytes` on this kind, else why not, in words:
    /// the channel's lanes are a power of two from 4 KiB to 1 GiB, and no buffer is empty. For a
    /// program to check its arguments before it does any work.
    ///
    /// ```
    /// use ipckit::transport::TransportKind;
    /// assert!(TransportKind::Channel.check_capacity(64 * 1024).is_ok());
    /// assert!(TransportKind::Channel.check_capacity(3 * 1024).is_err());
    /// assert!(TransportKind::UnixStream.check_capacity(3 * 1024).is_ok());
    /// ```
    pub fn check_capacity(self, bytes: usize) -> std::result::Result<(), String> {
        use crate::channel::{MAX_LANE_CAPACITY, MIN_LANE_CAPACITY};
        if bytes == 0 {
            return Err("a buffer of 0 bytes holds nothing".into());
        }
        if self.is_channel()
            && (!bytes.is_power_of_two()
                || !(MIN_LANE_CAPACITY..=MAX_LANE_CAPACITY).contains(&bytes))
        {
            return Err(format!(
                "the {self} capacity is a power of two from {MIN_LANE_CAPACITY} to \
                 {MAX_LANE_CAPACITY} bytes (4K … 1G), not {bytes}"
            ));
        }
        Ok(())
    }

    /// Creates what the mechanism needs so that another process can connect and *receive* what
    /// this one sends; finish with [`Pending::establish`] once the peer was started.
    pub fn host_sender(self, options: &Options) -> Result<Pending<Sender>> {
        let at = Rendezvous::fresh()?;
        let inner = host(self, Role::Send, &at, options)?;
        Ok(Pending::new(self, inner))
    }

    /// Creates what the mechanism needs so that another process can connect and *send* to this
    /// one; finish with [`Pending::establish`] once the peer was started.
    pub fn host_receiver(self, options: &Options) -> Result<Pending<Receiver>> {
        let at = Rendezvous::fresh()?;
        let inner = host(self, Role::Recv, &at, options)?;
        Ok(Pending::new(self, inner))
    }

    /// Connects to a process that hosts a receiver, given the rendezvous string
    /// ([`Pending::rendezvous`]) it handed over.
    ///
    /// A `pipe` rendezvous names an inherited descriptor (`fd=N`), and adopting a descriptor by
    /// its number is not something safe code can do (another owner may hold the same number):
    /// it is refused here with an error of kind `InvalidInput`. Use
    /// [`connect_sender_inherited`](Self::connect_sender_inherited) (an `unsafe fn`) in a child
    /// that inherited the pipe end, or [`Sender::from_pipe`] with an `OwnedFd` you own.
    ///
    /// ```
    /// use ipckit::transport::{Options, TransportKind};
    /// let err = TransportKind::Pipe.connect_sender("fd=0", &Options::new()).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn connect_sender(self, rendezvous: &str, options: &Options) -> Result<Sender> {
        refuse_descriptor(self, rendezvous)?;
        connect(self, Role::Send, rendezvous, options)?.into_sender()
    }

    /// Connects to a process that hosts a sender, given the rendezvous string it handed over. A
    /// `pipe` rendezvous is refused, as for [`connect_sender`](Self::connect_sender).
    pub fn connect_receiver(self, rendezvous: &str, options: &Options) -> Result<Receiver> {
        refuse_descriptor(self, rendezvous)?;
        connect(self, Role::Recv, rendezvous, options)?.into_receiver()
    }

    /// As [`connect_sender`](Self::connect_sender), and also takes over the descriptor a `pipe`
    /// rendezvous (`fd=N`) names: the way a child started with [`Pending::prepare_child`]
    /// reaches the pipe end it inherited. For every other kind it is `connect_sender`.
    ///
    /// Safe code cannot call it:
    /// ```compile_fail,E0133
    /// use ipckit::transport::{Options, TransportKind};
    /// let _ = TransportKind::Pipe.connect_sender_inherited("fd=3", &Options::new());
    /// ```
    ///
    /// # Safety
    /// If `rendezvous` names a descriptor, that descriptor must be open in this process, must
    /// have been handed to it for this transport (inherited across `exec`), and nothing else in
    /// the process may own, use or close it: the returned end owns it and closes it when
    /// dropped. (The call checks that it is a pipe, and fails otherwise.)
    pub unsafe fn connect_sender_inherited(
        self,
        rendezvous: &str,
        options: &Options,
    ) -> Result<Sender> {
        if self == TransportKind::Pipe {
            // SAFETY: the caller guarantees the descriptor is ours to own (this fn's contract).
            return unsafe { pipe::adopt(Role::Send, rendezvous, options) }?.into_sender();
        }
        self.connect_sender(rendezvous, options)
    }

    /// As [`connect_receiver`](Self::connect_receiver), and also takes over the descriptor a
    /// `pipe` rendezvous names (see [`connect_sender_inherited`](Self::connect_sender_inherited)).
    ///
    /// # Safety
    /// As for [`connect_sender_inherited`](Self::connect_sender_inherited): a descriptor named
    /// by `rendezvous` must be open, handed to this process for this transport, and owned by
    /// nothing else in it.
    pub unsafe fn connect_receiver_inherited(
        self,
        rendezvous: &str,
        options: &Options,
    ) -> Result<Receiver> {
        if self == TransportKind::Pipe {
            // SAFETY: the caller guarantees the descriptor is ours to own (this fn's contract).
            return unsafe { pipe::adopt(Role::Recv, rendezvous, options) }?.into_receiver();
        }
        self.connect_receiver(rendezvous, options)
    }

    /// The receiving side of a meeting by `name` ([`check_name`]): creates the queue, socket,
    /// segment … named after it, waits for a sender (streams; at most the connect timeout) and
    /// removes what it created when dropped. Unrelated processes use this and
    /// [`named_sender`](Self::named_sender).
    ///
    /// Several senders may feed one receiver over `channel`/`channel-spin`, the message queues
    /// and `unix-dgram` (each announces itself; the receiver ends when all that announced
    /// themselves closed). The other kinds carry one sender's stream: a second sender fails
    /// (FIFO: at once; sockets and one-slot kinds: its close is never acknowledged), never
    /// silently.
    ///
    /// With [`Framing::Plain`] the bytes on the wire are the messages and nothing else, for
    /// programs that are not ipckit (see [`Framing`]).
    pub fn named_receiver(self, name: &str, options: &Options) -> Result<Receiver> {
        if self.is_channel() {
            Rendezvous::named(self, name)?;
            return channel::named_receiver(self, name, options);
        }
        self.named_receiver_pending(name, options)?
            .establish(Some(options.timeout))
    }

    /// [`named_receiver`](Self::named_receiver) in two steps: the FIFO, socket, queue …
    /// is created (or found) now, and [`Pending::rendezvous`] says where it is (a path, a
    /// `HOST:PORT` — the port a TCP receiver was given by the kernel —, a queue); the wait for a
    /// sender is [`Pending::establish`]. For a program that tells its user where to connect.
    /// Not for `channel` and `channel-spin`, whose receiver has no such step (an error of kind
    /// `InvalidInput`).
    pub fn named_receiver_pending(
        self,
        name: &str,
        options: &Options,
    ) -> Result<Pending<Receiver>> {
        let at = Rendezvous::named(self, name)?;
        if self.is_channel() {
            return Err(Error::invalid(
                "rendezvous",
                Object::Other(format!("transport {self}").into()),
                "a channel's receiver has no setup step of its own: use named_receiver",
            ));
        }
        let inner = if options.framing == Framing::Plain {
            plain::host(self, &at, options)?
        } else {
            host(self, Role::Recv, &at, options)?
        };
        Ok(Pending::new(self, inner))
    }

    /// The sending side of a meeting by `name`: waits up to `options.timeout` for the receiver to
    /// have created its end (either may start first), then connects. For `channel`, the sender
    /// may create the channel itself, and the receiver finds it.
    pub fn named_sender(self, name: &str, options: &Options) -> Result<Sender> {
        let at = Rendezvous::named(self, name)?;
        if options.framing == Framing::Plain {
            return plain::sender(self, &at, options);
        }
        if self.is_channel() {
            return channel::named_sender(self, name, options);
        }
        let deadline = Instant::now() + options.timeout;
        loop {
            options.check_cancel("connect", || {
                Object::Other(format!("{self} {name:?}").into())
            })?;
            match connect(self, Role::Send, &at.text, options) {
                Ok(end) => return end.into_sender(),
                Err(e) if not_there_yet(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the kind has a [`Framing::Plain`] form, which programs that are not ipckit
    /// speak: `fifo`, `unix-stream`, `unix-seqpacket`, `unix-dgram`, `tcp`, `sysv-msg`,
    /// `posix-mq`.
    pub fn supports_plain(self) -> bool {
        plain::supported(self)
    }

    /// Whether the kind is a byte stream (`pipe`, `fifo`, `unix-stream`, `tcp`): with
    /// [`Framing::Plain`] its messages are not kept apart, a receiver gets the bytes as read.
    pub const fn is_byte_stream(self) -> bool {
        matches!(
            self,
            TransportKind::Pipe
                | TransportKind::Fifo
                | TransportKind::UnixStream
                | TransportKind::Tcp
        )
    }

    fn is_channel(self) -> bool {
        matches!(self, TransportKind::Channel | TransportKind::ChannelSpin)
    }
}

/// Refuses a rendezvous that names a descriptor (`pipe`'s `fd=N`) on a safe path.
fn refuse_descriptor(kind: TransportKind, rendezvous: &str) -> Result<()> {
    if kind == TransportKind::Pipe {
        return Err(Error::invalid(
            "connect",
            Object::Other(format!("pipe rendezvous {rendezvous:?}").into()),
            "a descriptor number cannot be adopted by safe code: use the unsafe \
             connect_*_inherited, or Sender/Receiver::from_pipe with an OwnedFd",
        ));
    }
    Ok(())
}

/// Whether a connection attempt failed because the other side has not created its end yet.
fn not_there_yet(e: &Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    )
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TransportKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<TransportKind> {
        TransportKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = TransportKind::ALL.iter().map(|k| k.name()).collect();
                Error::invalid(
                    "parse transport",
                    Object::Other(format!("{s:?}").into()),
                    format!("expected one of {}", names.join(", ")),
                )
            })
    }
}

/// The largest message a [`TransportKind`] carries, and the limit behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxMessage {
    /// The size in bytes.
    pub bytes: usize,
    /// What sets it ("bounded by msgmax (8192 bytes, /proc/sys/kernel/msgmax)").
    pub reason: String,
}

/// What a named meeting puts on the wire besides the messages ([`Options::framing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Framing {
    /// ipckit's own: lengths or tags that keep messages apart, an explicit end of stream, and a
    /// sender that dies reported as such (the table of [`TransportKind`]). Only ipckit speaks it.
    #[default]
    Checked,
    /// Nothing but the messages, so that other programs can be either side
    /// ([`TransportKind::supports_plain`]):
    ///
    /// | kind | wire | end of stream |
    /// |---|---|---|
    /// | `fifo`, `unix-stream`, `tcp` | the bytes as sent; a receiver gets them as read | the writer closes |
    /// | `unix-seqpacket` | a packet per message | the writer closes (an empty packet reads the same) |
    /// | `unix-dgram` | a datagram per message | an empty datagram |
    /// | `sysv-msg` | a message of type [`Options::message_type`] (default 1); a receiver takes any type unless one is set | none: abort the receiver |
    /// | `posix-mq` | a message at [`Options::priority`] (default 0); a receiver takes any priority unless one is set | none: abort the receiver |
    ///
    /// The FIFO or socket is at [`Options::path`] (default `<runtime dir>/ipckit-NAME.fifo`,
    /// `.sock`, `.seqpacket`, `.dgram`), a TCP receiver listens at [`Options::addr`] (default: an
    /// ephemeral loopback port, written to `<runtime dir>/ipckit-NAME.tcp` for an ipckit
    /// sender), a System V queue has [`Options::key`] (default: derived from NAME), a POSIX
    /// queue is `/ipckit-NAME`. The receiver creates what is missing and removes only what it
    /// created. A sender's close does not wait for the receiver, except over a FIFO (until it is
    /// drained); a sender that dies cannot be told from one that finished.
    Plain,
}

/// How a transport is set up: sizes and the connection timeout.
///
/// Defaults: the largest message is 64 KiB, the capacity is the mechanism's default, and a
/// connection waits up to 30 seconds.
#[derive(Debug, Clone)]
pub struct Options {
    max_message: usize,
    capacity: Option<usize>,
    timeout: Duration,
    cancel: Option<AbortHandle>,
    framing: Framing,
    path: Option<PathBuf>,
    addr: Option<std::net::SocketAddr>,
    key: Option<crate::Key>,
    message_type: Option<i64>,
    priority: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

impl Options {
    /// The default options (see the [type documentation](Options)).
    pub fn new() -> Options {
        Options {
            max_message: 64 * 1024,
            capacity: None,
            timeout: Duration::from_secs(30),
            cancel: None,
            framing: Framing::Checked,
            path: None,
            addr: None,
            key: None,
            message_type: None,
            priority: None,
        }
    }

    /// What goes on the wire of a named meeting ([`TransportKind::named_receiver`]); hosted
    /// meetings always use [`Framing::Checked`].
    pub fn framing(&mut self, framing: Framing) -> &mut Self {
        self.framing = framing;
        self
    }

    /// [`Framing::Plain`]: the FIFO or Unix socket to meet at, instead of the one derived from
    /// NAME.
    pub fn path(&mut self, path: Option<PathBuf>) -> &mut Self {
        self.path = path;
        self
    }

    /// [`Framing::Plain`] over `tcp`: the address the receiver listens at and the sender
    /// connects to.
    pub fn addr(&mut self, addr: Option<std::net::SocketAddr>) -> &mut Self {
        self.addr = addr;
        self
    }

    /// [`Framing::Plain`] over `sysv-msg`: the queue's key, instead of the one derived from
    /// NAME.
    pub fn key(&mut self, key: Option<crate::Key>) -> &mut Self {
        self.key = key;
        self
    }

    /// [`Framing::Plain`] over `sysv-msg`: the type a sender gives its messages (default 1) and
    /// the only one a receiver takes (default: any).
    pub fn message_type(&mut self, mtype: Option<i64>) -> &mut Self {
        self.message_type = mtype;
        self
    }

    /// [`Framing::Plain`] over `posix-mq`: the priority a sender gives its messages (default 0)
    /// and the only one a receiver accepts (default: any; another is an error).
    pub fn priority(&mut self, priority: Option<u32>) -> &mut Self {
        self.priority = priority;
        self
    }

    /// The framing of named meetings.
    pub fn get_framing(&self) -> Framing {
        self.framing
    }

    /// A handle whose [`abort`](AbortHandle::abort) makes the waits of setting up (waiting for a
    /// peer to connect, to appear, to open a FIFO) fail within about 100 ms, with an error of
    /// kind `ConnectionAborted`; what was created is removed as usual when the failing call
    /// returns. For a program that leaves on a signal (see [`AbortHandle::detached`]).
    pub fn cancel(&mut self, handle: AbortHandle) -> &mut Self {
        self.cancel = Some(handle);
        self
    }

    /// `Err` once the setup was cancelled ([`cancel`](Self::cancel)).
    pub(crate) fn check_cancel(
        &self,
        op: &'static str,
        object: impl FnOnce() -> Object,
    ) -> Result<()> {
        match &self.cancel {
            Some(c) => c.check(op, object),
            None => Ok(()),
        }
    }

    /// The cancel handle, if any.
    pub(crate) fn get_cancel(&self) -> Option<AbortHandle> {
        self.cancel.clone()
    }

    /// The largest message that will be sent. One-slot shared memory (`sysv-shm+sem`,
    /// `mmap+futex`) is sized to it, `posix-mq` queues take it as their message size, and a
    /// receiver refuses longer frames from a stream as corrupt.
    pub fn max_message(&mut self, bytes: usize) -> &mut Self {
        self.max_message = bytes;
        self
    }

    /// The buffer between the two sides, in bytes: the channel's lane capacity, a pipe's size,
    /// a socket's send buffer. `None` keeps the mechanism's default.
    pub fn capacity(&mut self, bytes: Option<usize>) -> &mut Self {
        self.capacity = bytes;
        self
    }

    /// How long a connecting side waits for its peer.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// The largest message that will be sent.
    pub fn get_max_message(&self) -> usize {
        self.max_message
    }

    /// The buffer size asked for, if any.
    pub fn get_capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// The connection timeout.
    pub fn get_timeout(&self) -> Duration {
        self.timeout
    }
}

/// Checks a NAME for [`TransportKind::named_sender`] / [`named_receiver`](TransportKind::named_receiver):
/// 1 to 64 characters out of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`, so that every
/// path, socket, queue and key derived from it is valid and stays in its directory.
pub fn check_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::invalid(
            "validate",
            Object::Other(format!("transport name {name:?}").into()),
            reason,
        ))
    };
    if name.is_empty() || name.len() > 64 {
        return bad("a name has 1 to 64 characters");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("a name does not start with '.' or '-'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("a name uses only letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Where named files (FIFOs, sockets, mapped files, port files) go: `$XDG_RUNTIME_DIR` when it is
/// a directory, else the temporary directory.
pub(crate) fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if PathBuf::from(&dir).is_dir() => PathBuf::from(dir),
        _ => std::env::temp_dir(),
    }
}

/// Where a transport meets: a string a peer can be handed, and whether it is a NAME a user chose
/// (`named`) or one made up for a host.
#[derive(Debug, Clone)]
pub(crate) struct Rendezvous {
    /// For named meetings the NAME; for hosts a fresh unique name (`host-<pid>-<n>`).
    pub(crate) name: String,
    /// Whether a user chose the name (then System V keys are derived from it, and the receiver
    /// creates exclusively); else the host uses private objects and passes their ids.
    pub(crate) named: bool,
    /// The text handed to the peer.
    pub(crate) text: String,
}

/// Removes the file it names when dropped (a host's mapped file, the bench's shared page).
pub(crate) struct FileGuard(pub(crate) PathBuf);

impl Drop for FileGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Rendezvous {
    /// A fresh, unique meeting for a host (`host-<pid>-<n>`).
    pub(crate) fn fresh() -> Result<Rendezvous> {
        use std::sync::atomic::AtomicU32;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "host-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Ok(Rendezvous {
            text: name.clone(),
            name,
            named: false,
        })
    }

    fn named(kind: TransportKind, name: &str) -> Result<Rendezvous> {
        check_name(name)?;
        if !kind.supports_names() {
            return Err(Error::invalid(
                "rendezvous",
                Object::Other(format!("transport {kind}").into()),
                "an anonymous pipe has no name and reaches only a child: use fifo",
            ));
        }
        Ok(Rendezvous {
            name: name.to_string(),
            named: true,
            text: name.to_string(),
        })
    }

    /// The path of a named file of this meeting: `<runtime dir>/ipckit-<name><suffix>`.
    pub(crate) fn path(&self, suffix: &str) -> PathBuf {
        runtime_dir().join(format!("ipckit-{}{suffix}", self.name))
    }
}

/// Which end a process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Send,
    Recv,
}

/// An end of either role, before it is typed.
pub(crate) enum End {
    Send(Box<dyn SendImpl>),
    Recv(Box<dyn RecvImpl>),
}

impl End {
    fn into_sender(self) -> Result<Sender> {
        match self {
            End::Send(inner) => Ok(Sender::new(inner)),
            End::Recv(_) => unreachable!("connected a receiver where a sender was asked for"),
        }
    }

    fn into_receiver(self) -> Result<Receiver> {
        match self {
            End::Recv(inner) => Ok(Receiver::new(inner)),
            End::Send(_) => unreachable!("connected a sender where a receiver was asked for"),
        }
    }
}

/// The sending half of one transport's protocol.
pub(crate) trait SendImpl: Send {
    /// Sends one whole message (its length already checked against the kind's maximum).
    fn send(&mut self, msg: &[u8]) -> Result<()>;
    /// Sends the end-of-stream marker.
    fn close(&mut self) -> Result<()>;
    /// The largest message this end carries.
    fn max_message(&self) -> usize;
    /// What makes a blocked `send` give up.
    fn abort_handle(&self) -> AbortHandle;
    /// The transport's object, for errors.
    fn object(&self) -> Object;
}

/// The receiving half of one transport's protocol.
pub(crate) trait RecvImpl: Send {
    /// Receives one message into `buf` (replacing its contents); `None` at the end-of-stream
    /// marker.
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>>;
    /// A message that is there now, received into `buf` without waiting: `Some(len)`. `None`
    /// means "call `recv`" (nothing there, the end-of-stream marker, an error, an abort, or a
    /// kind without such a path), never "empty".
    ///
    /// For the shared-memory kinds, whose receive is a few nanoseconds: a `Result` of this
    /// crate is returned through memory, and the callers' copies of it load wider words than
    /// the callee stored, which the CPU cannot forward from its store buffer; each such load
    /// waits until every earlier store, the consumer's release of the record among them, has
    /// reached the cache. On the channel's 64-byte stream that made the receiver the slower
    /// side; returned in registers, the length costs nothing of the kind.
    #[inline]
    fn recv_ready(&mut self, _buf: &mut Vec<u8>) -> Option<usize> {
        None
    }
    /// What makes a blocked `recv` give up.
    fn abort_handle(&self) -> AbortHandle;
}

/// A host's half-made end, for one transport.
pub(crate) trait HostImpl: Send {
    /// The string the peer connects with.
    fn rendezvous(&self) -> String;
    /// Lets a child started with `cmd` reach this end (inherit a descriptor); most kinds need
    /// nothing.
    fn prepare_child(&mut self, _cmd: &mut Command) -> Result<()> {
        Ok(())
    }
    /// Waits for the peer where the mechanism needs it (accept, open) and returns the end.
    fn establish(self: Box<Self>, timeout: Option<Duration>) -> Result<End>;
}

fn host(
    kind: TransportKind,
    role: Role,
    at: &Rendezvous,
    options: &Options,
) -> Result<Box<dyn HostImpl>> {
    match kind {
        TransportKind::Pipe => pipe::host(role, options),
        TransportKind::Fifo => fifo::host(role, at, options),
        TransportKind::UnixStream => unix_stream::host(role, at, options),
        TransportKind::UnixSeqpacket => unix_seqpacket::host(role, at, options),
        TransportKind::UnixDgram => unix_dgram::host(role, at, options),
        TransportKind::Tcp => tcp::host(role, at, options),
        TransportKind::SysvMsg => sysv_msg::host(role, at, options),
        TransportKind::PosixMq => posix_mq::host(role, at, options),
        TransportKind::SysvShmSem => sysv_shm_sem::host(role, at, options),
        TransportKind::MmapFutex => mmap_futex::host(role, at, options),
        TransportKind::Channel | TransportKind::ChannelSpin => {
            channel::host(kind, role, at, options)
        }
        TransportKind::Signal => signal::host(role, options),
    }
}

fn connect(kind: TransportKind, role: Role, rendezvous: &str, options: &Options) -> Result<End> {
    match kind {
        // Only the unsafe `connect_*_inherited` adopt a descriptor by number.
        TransportKind::Pipe => Err(refuse_descriptor(kind, rendezvous).unwrap_err()),
        TransportKind::Fifo => fifo::connect(role, rendezvous, options),
        TransportKind::UnixStream => unix_stream::connect(role, rendezvous, options),
        TransportKind::UnixSeqpacket => unix_seqpacket::connect(role, rendezvous, options),
        TransportKind::UnixDgram => unix_dgram::connect(role, rendezvous, options),
        TransportKind::Tcp => tcp::connect(role, rendezvous, options),
        TransportKind::SysvMsg => sysv_msg::connect(role, rendezvous, options),
        TransportKind::PosixMq => posix_mq::connect(role, rendezvous, options),
        TransportKind::SysvShmSem => sysv_shm_sem::connect(role, rendezvous, options),
        TransportKind::MmapFutex => mmap_futex::connect(role, rendezvous, options),
        TransportKind::Channel | TransportKind::ChannelSpin => {
            channel::connect(kind, role, rendezvous, options)
        }
        TransportKind::Signal => signal::connect(role, rendezvous, options),
    }
}

/// A hosted end waiting for its peer: hand [`rendezvous`](Self::rendezvous) to the peer
/// process, [`prepare_child`](Self::prepare_child) the command that starts it, then
/// [`establish`](Self::establish).
pub struct Pending<T> {
    kind: TransportKind,
    inner: Box<dyn HostImpl>,
    _end: std::marker::PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("kind", &self.kind)
            .field("rendezvous", &self.inner.rendezvous())
            .finish()
    }
}

impl<T> Pending<T> {
    fn new(kind: TransportKind, inner: Box<dyn HostImpl>) -> Pending<T> {
        Pending {
            kind,
            inner,
            _end: std::marker::PhantomData,
        }
    }

    /// The transport.
    pub fn kind(&self) -> TransportKind {
        self.kind
    }

    /// The string the peer passes to `connect_sender` / `connect_receiver`; no spaces, safe in
    /// argv and the environment.
    pub fn rendezvous(&self) -> String {
        self.inner.rendezvous()
    }

    /// Lets a child started by `cmd` reach this end. Needed for `pipe` (the child inherits the
    /// descriptor); for the other kinds it does nothing. Call before `cmd.spawn()`.
    pub fn prepare_child(&mut self, cmd: &mut Command) -> Result<()> {
        self.inner.prepare_child(cmd)
    }
}

impl Pending<Sender> {
    /// Finishes the setup once the peer was started: accepts its connection or opens the FIFO
    /// where the mechanism needs the peer, waiting at most `timeout` (`None`: no limit), and
    /// returns this process's end.
    pub fn establish(self, timeout: Option<Duration>) -> Result<Sender> {
        self.inner.establish(timeout)?.into_sender()
    }
}

impl Pending<Receiver> {
    /// Finishes the setup once the peer was started, as for a sender
    /// ([`Pending::<Sender>::establish`]).
    pub fn establish(self, timeout: Option<Duration>) -> Result<Receiver> {
        self.inner.establish(timeout)?.into_receiver()
    }
}

/// Sends messages to one [`Receiver`] in another process.
///
/// Dropping a sender without [`close`](Self::close) sends **no** end-of-stream marker: to the
/// receiver it looks like a sender that died mid-stream.
pub struct Sender {
    inner: Box<dyn SendImpl>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("object", &self.inner.object())
            .finish()
    }
}

impl Sender {
    fn new(inner: Box<dyn SendImpl>) -> Sender {
        Sender { inner }
    }

    /// Sends `msg` as one message, waiting while the mechanism's buffer is full. A message
    /// longer than [`max_message`](Self::max_message) is refused with [`Error::TooLarge`]
    /// before anything is sent.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        let max = self.inner.max_message();
        if msg.len() > max {
            return Err(Error::TooLarge {
                op: "send",
                object: self.inner.object(),
                what: "message",
                len: msg.len(),
                limit: max,
                limit_name: "the transport's largest message",
            });
        }
        self.inner.send(msg)
    }

    /// A `pipe` sender over a pipe's write end this process owns (one it inherited and took
    /// ownership of, for instance); messages are framed as [`TransportKind::Pipe`] frames them.
    pub fn from_pipe(fd: std::os::fd::OwnedFd, options: &Options) -> Result<Sender> {
        pipe::from_owned(Role::Send, fd, options)?.into_sender()
    }

    /// The largest message this sender carries.
    pub fn max_message(&self) -> usize {
        self.inner.max_message()
    }

    /// Sends the end-of-stream marker, waits until the receiver took it, and releases this end:
    /// the receiver's [`recv`](Receiver::recv) returns `Ok(None)` after the messages sent before.
    ///
    /// `Ok` means the receiver received every message (an acknowledgement: the receiver answers
    /// the marker on sockets, `sysv-msg`, `sysv-shm+sem`, `mmap+futex`; the pipe, FIFO or POSIX
    /// queue was drained; the channel's consumer received everything, see
    /// [`Producer::wait_consumed`](crate::channel::Producer::wait_consumed)). An error when the
    /// receiver died or ended first, or when it made no progress within the connect timeout
    /// ([`Options::timeout`]). `unix-dgram` and `signal` cannot confirm: their close returns once
    /// the marker was sent.
    pub fn close(mut self) -> Result<()> {
        self.inner.close()
    }

    /// A handle that makes a `send` blocked in another thread fail (within about 100 ms), for a
    /// watchdog that saw the peer die.
    pub fn abort_handle(&self) -> AbortHandle {
        self.inner.abort_handle()
    }
}

/// Receives the messages a [`Sender`] in another process sent, in order.
pub struct Receiver {
    inner: Box<dyn RecvImpl>,
    ended: bool,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("ended", &self.ended)
            .finish()
    }
}

impl Receiver {
    fn new(inner: Box<dyn RecvImpl>) -> Receiver {
        Receiver {
            inner,
            ended: false,
        }
    }

    /// Waits for the next message and returns it as a new `Vec`; `None` once the sender closed
    /// with [`Sender::close`] and every message before was received, and again on every later
    /// call. Errors as [`recv_into`](Self::recv_into), which reuses one buffer instead (the
    /// channel's [`Consumer`](crate::channel::Consumer) has the same two).
    pub fn recv(&mut self) -> Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        Ok(self.recv_into(&mut buf)?.map(|_| buf))
    }

    /// Waits for the next message and puts it in `buf` (replacing what was there; no allocation
    /// once it is large enough): `Some(len)`; `None` once the sender closed with
    /// [`Sender::close`] and every message before was received, and again on every later call. A sender that went away without closing is an
    /// error (streams and connected sockets: end of file without the marker; the others: the
    /// pid the sender recorded or announced is gone, checked every 100 ms), reported only after
    /// everything it sent before was received: a sender that closed and then exited is never
    /// reported as dead. With no sender within the connect timeout, an error of kind
    /// `TimedOut`.
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        if self.ended {
            buf.clear();
            return Ok(None);
        }
        if let Some(len) = self.inner.recv_ready(buf) {
            return Ok(Some(len));
        }
        let got = self.inner.recv(buf)?;
        if got.is_none() {
            self.ended = true;
            buf.clear();
        }
        Ok(got)
    }

    /// A `pipe` receiver over a pipe's read end this process owns; see [`Sender::from_pipe`].
    pub fn from_pipe(fd: std::os::fd::OwnedFd, options: &Options) -> Result<Receiver> {
        pipe::from_owned(Role::Recv, fd, options)?.into_receiver()
    }

    /// A handle that makes a `recv` blocked in another thread fail (within about 100 ms), for a
    /// watchdog that saw the peer die.
    pub fn abort_handle(&self) -> AbortHandle {
        self.inner.abort_handle()
    }
}

/// Makes a blocked [`Sender::send`] or [`Receiver::recv`] of one end fail with an error of kind
/// `ConnectionAborted`, from another thread; later calls fail too. Cheap to clone.
#[derive(Clone)]
pub struct AbortHandle {
    flag: Arc<AtomicBool>,
    wake: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("aborted", &self.is_aborted())
            .finish()
    }
}

impl AbortHandle {
    /// A handle of no end yet, for [`Options::cancel`]: aborting it only sets its flag.
    pub fn detached() -> AbortHandle {
        AbortHandle::new(None)
    }

    /// A handle with its own flag; `wake` (if any) is called after the flag is set, to wake a
    /// waiter that does not poll the flag.
    pub(crate) fn new(wake: Option<Arc<dyn Fn() + Send + Sync>>) -> AbortHandle {
        AbortHandle {
            flag: Arc::new(AtomicBool::new(false)),
            wake,
        }
    }

    /// Aborts the end: sets the flag and wakes it.
    pub fn abort(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Some(wake) = &self.wake {
            wake();
        }
    }

    /// Whether [`abort`](Self::abort) was called.
    pub fn is_aborted(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// `Err` (kind `ConnectionAborted`) once aborted.
    pub(crate) fn check(&self, op: &'static str, object: impl FnOnce() -> Object) -> Result<()> {
        if self.is_aborted() {
            return Err(aborted(op, object()));
        }
        Ok(())
    }
}

/// The error of an aborted operation.
pub(crate) fn aborted(op: &'static str, object: Object) -> Error {
    Error::os(
        op,
        object,
        std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "aborted by a watchdog",
        ),
    )
}

/// The error of a stream or socket that ended without the end-of-stream marker.
pub(crate) fn ended_without_marker(op: &'static str, object: Object) -> Error {
    Error::os(
        op,
        object,
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the sender went away without closing (no end-of-stream marker): it died or was killed",
        ),
    )
}

/// Whether process `pid` still runs: it exists and is not a zombie (`/proc/<pid>/stat`).
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name in parentheses, which may itself hold ')'.
    match stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next())
    {
        Some('Z') | Some('X') | None => false,
        Some(_) => true,
    }
}

/// A peer process watched for death: through a pidfd where the kernel has them (immune to the
/// pid being reused), else through `/proc/<pid>/stat`.
pub(crate) struct Peer {
    pid: u32,
    /// `None` when `pidfd_open` is not available; then `/proc` is asked.
    pidfd: Option<std::os::fd::OwnedFd>,
    /// The pid did not exist any more when the watch began.
    gone: bool,
}

impl Peer {
    /// Starts watching `pid`.
    pub(crate) fn new(pid: u32) -> Peer {
        let opened = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .map(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()));
        match opened {
            Some(Ok(fd)) => Peer {
                pid,
                pidfd: Some(fd),
                gone: false,
            },
            Some(Err(rustix::io::Errno::SRCH)) | None => Peer {
                pid,
                pidfd: None,
                gone: true,
            },
            Some(Err(_)) => Peer {
                pid,
                pidfd: None,
                gone: false,
            },
        }
    }

    /// The pid watched.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process still runs (a pidfd turns readable when the process exits).
    pub(crate) fn alive(&self) -> bool {
        if self.gone {
            return false;
        }
        match &self.pidfd {
            Some(fd) => {
                use rustix::event::{poll, PollFd, PollFlags, Timespec};
                let mut fds = [PollFd::new(fd, PollFlags::IN)];
                let zero = Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // An error is not a death: fall back on /proc.
                match poll(&mut fds, Some(&zero)) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(_) => process_alive(self.pid),
                }
            }
            None => process_alive(self.pid),
        }
    }
}

/// The peer whose pid a transport finds in shared memory: re-watched whenever the recorded pid
/// changes; `None` while no peer recorded itself (pid 0) or the pid is this process's own.
#[derive(Default)]
pub(crate) struct PeerSlot(Option<Peer>);

impl PeerSlot {
    /// The watch of `pid`, as now recorded.
    pub(crate) fn watch(&mut self, pid: u32) -> Option<&Peer> {
        if pid == 0 || pid == std::process::id() {
            self.0 = None;
            return None;
        }
        if self.0.as_ref().map(Peer::pid) != Some(pid) {
            self.0 = Some(Peer::new(pid));
        }
        self.0.as_ref()
    }
}

/// The one waiting rule of every transport: **drain what the peer published, then its close
/// state, and only then judge its liveness.**
///
/// `step(wait)` looks for what the peer published (a message, the end marker, a free slot) and,
/// when there is nothing, waits for it at most `wait` (`None`: do not wait); `Some` ends the wait.
/// Between steps, `check` fails on an abort and `judge` names a peer that is gone (or a peer that
/// never came within the connect timeout). A peer judged gone is only reported after one more
/// look with `step(None)`: a peer that published its last message (or its end marker) and then
/// exited is not dead but finished, and what it left is returned. So a clean close is never
/// reported as a death, and a death is reported within one [`SLICE`] of the last look.
pub(crate) fn await_peer<T>(
    mut step: impl FnMut(Option<Duration>) -> Result<Option<T>>,
    mut check: impl FnMut() -> Result<()>,
    mut judge: impl FnMut() -> Option<Error>,
) -> Result<T> {
    loop {
        if let Some(got) = step(Some(SLICE))? {
            return Ok(got);
        }
        check()?;
        if let Some(err) = judge() {
            // The peer is gone now, so whatever it published is there now: one last look.
            return match step(None)? {
                Some(got) => Ok(got),
                None => Err(err),
            };
        }
    }
}

/// The senders a message-queue receiver heard from and has not seen close: each sender queues a
/// hello with its pid when it connects and its pid again with its end marker, so the receiver
/// knows whom to wait for, whom to watch, and when the stream is over (the last one closed).
pub(crate) struct Senders {
    live: Vec<Peer>,
    heard_any: bool,
    since: Instant,
    timeout: Duration,
}

impl Senders {
    /// No sender yet; one is waited for up to `timeout` from now.
    pub(crate) fn new(timeout: Duration) -> Senders {
        Senders {
            live: Vec::new(),
            heard_any: false,
            since: Instant::now(),
            timeout,
        }
    }

    /// A sender said hello.
    pub(crate) fn hello(&mut self, pid: u32) {
        self.heard_any = true;
        if !self.live.iter().any(|p| p.pid() == pid) {
            self.live.push(Peer::new(pid));
        }
    }

    /// A sender closed; `true` when it was the last one (the stream is over).
    pub(crate) fn end(&mut self, pid: Option<u32>) -> bool {
        self.heard_any = true;
        match pid {
            Some(pid) => self.live.retain(|p| p.pid() != pid),
            None => self.live.clear(),
        }
        self.live.is_empty()
    }

    /// A sender that died without closing, or none within the connect timeout; `None` while
    /// the stream may go on.
    pub(crate) fn judge(&self, op: &'static str, object: impl Fn() -> Object) -> Option<Error> {
        if let Some(dead) = self.live.iter().find(|p| !p.alive()) {
            return Some(Error::PeerDied {
                op,
                object: object(),
                peer: "sender",
                pid: dead.pid(),
            });
        }
        (!self.heard_any && self.since.elapsed() >= self.timeout)
            .then(|| no_peer(op, object(), "sender", self.timeout))
    }
}

/// A pid as a queue message carries it (4 bytes, little-endian); `None` for another length.
pub(crate) fn pid_of(data: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(data.try_into().ok()?))
}

/// The error of a wait for a peer that never connected.
pub(crate) fn no_peer(op: &'static str, object: Object, peer: &str, waited: Duration) -> Error {
    Error::os(
        op,
        object,
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no {peer} connected within {} s", waited.as_secs_f64()),
        ),
    )
}

/// `poll(fd, POLLIN, timeout)` — waits until `fd` is readable (a listener has a connection
/// waiting); `false` on timeout. `None` waits without limit.
pub(crate) fn wait_readable(
    fd: std::os::fd::BorrowedFd<'_>,
    timeout: Option<Duration>,
    object: impl Fn() -> Object,
) -> Result<bool> {
    wait_readable_or_cancel(fd, timeout, None, object)
}

/// [`wait_readable`] in slices of [`SLICE`] when `cancel` is given, failing once it is aborted.
pub(crate) fn wait_readable_or_cancel(
    fd: std::os::fd::BorrowedFd<'_>,
    timeout: Option<Duration>,
    cancel: Option<&AbortHandle>,
    object: impl Fn() -> Object,
) -> Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        if let Some(c) = cancel {
            c.check("accept", &object)?;
        }
        let whole = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let left = match (cancel, whole) {
            (Some(_), Some(w)) => Some(w.min(SLICE)),
            (Some(_), None) => Some(SLICE),
            (None, w) => w,
        };
        let sliced = left != whole;
        let ts = left.map(|l| Timespec {
            tv_sec: l.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: l.subsec_nanos().into(),
        });
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, ts.as_ref()) {
            Ok(0) if sliced => continue,
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::os("poll", object(), e)),
        }
    }
}

/// A connected stream socket written with `send(MSG_NOSIGNAL)`, so a peer that went away is
/// `EPIPE` and never `SIGPIPE`, whatever the process's disposition.
pub(crate) struct SocketSink(pub(crate) std::os::fd::OwnedFd);

impl std::io::Write for SocketSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        rustix::io::retry_on_intr(|| {
            rustix::net::send(&self.0, buf, rustix::net::SendFlags::NOSIGNAL)
        })
        .map_err(std::io::Error::from)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A connected stream socket, read with `read(2)`.
pub(crate) struct SocketSource(pub(crate) std::os::fd::OwnedFd);

impl std::io::Read for SocketSource {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        rustix::io::retry_on_intr(|| rustix::io::read(&self.0, &mut *buf))
            .map_err(std::io::Error::from)
    }
}

/// The ends of a connected stream socket (Unix or TCP): framed, with an abort that shuts the
/// socket down, which wakes a blocked `read` or `write` at once.
pub(crate) fn stream_socket_end(
    role: Role,
    fd: std::os::fd::OwnedFd,
    max: usize,
    object: Object,
    timeout: Duration,
) -> Result<End> {
    let reply = fd
        .try_clone()
        .map_err(|e| Error::os("F_DUPFD_CLOEXEC", object.clone(), e))?;
    let waker = fd
        .try_clone()
        .map_err(|e| Error::os("F_DUPFD_CLOEXEC", object.clone(), e))?;
    let abort = AbortHandle::new(Some(Arc::new(move || {
        let _ = rustix::net::shutdown(&waker, rustix::net::Shutdown::Both);
    })));
    Ok(match role {
        Role::Send => End::Send(Box::new(
            stream::StreamSender::new(SocketSink(fd), object, abort)
                .confirm(stream::Confirm::Reply(reply), timeout),
        )),
        Role::Recv => End::Recv(Box::new(
            stream::StreamReceiver::new(SocketSource(fd), max, object, abort).reply(reply),
        )),
    })
}

/// The rendezvous of a named meeting, when `text` is a bare NAME rather than what a host made.
pub(crate) fn as_named(kind: TransportKind, text: &str) -> Option<Rendezvous> {
    if check_name(text).is_ok() {
        Rendezvous::named(kind, text).ok()
    } else {
        None
    }
}

/// Turns a "key=value,key=value" rendezvous into a lookup, for kinds that pass several values.
pub(crate) fn field<'a>(rendezvous: &'a str, key: &str) -> Option<&'a str> {
    rendezvous.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then_some(v)
    })
}

/// A rendezvous string that does not parse, as an error.
pub(crate) fn bad_rendezvous(kind: TransportKind, text: &str, expected: &str) -> Error {
    Error::invalid(
        "connect",
        Object::Other(format!("{kind} rendezvous {text:?}").into()),
        format!("expected {expected}"),
    )
}

/// A 24-bit hash of a NAME for System V keys: FNV-1a over `salt` and the name, with 0x69 ("i")
/// in the top byte so that the key is never `IPC_PRIVATE`. Different names may collide; the
/// receiver creates exclusively, so a collision fails loudly instead of sharing an object.
pub(crate) fn name_key(name: &str, salt: u8) -> crate::Key {
    let mut h: u32 = 0x811c_9dc5;
    for b in std::iter::once(salt).chain(name.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    crate::Key::new((0x6900_0000 | (h & 0x00ff_ffff)) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in TransportKind::ALL {
            assert_eq!(kind.name().parse::<TransportKind>().unwrap(), kind);
        }
        assert!("carrier-pigeon".parse::<TransportKind>().is_err());
    }

    #[test]
    fn names_are_checked() {
        for good in ["a", "jobs", "A.b_c-9"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".x", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signal_refuses_other_sizes_with_the_reason() {
        let err = TransportKind::Signal.check_size(64).unwrap_err();
        assert!(err.contains("sigqueue carries one int"), "{err}");
        assert!(TransportKind::Signal.check_size(4).is_ok());
    }

    #[test]
    fn name_keys_are_never_private() {
        assert_ne!(name_key("", 0).value(), 0);
        assert_ne!(name_key("a", 1), name_key("a", 2));
    }

    /// The rule of [`await_peer`]: a peer judged gone gets one more look, and what it left is
    /// returned (a sender that posted its end marker and exited between a timed-out wait and the
    /// judgement, as `sysv-shm+sem` saw it); only when that look finds nothing is it dead.
    #[test]
    fn a_dead_peer_gets_one_more_look() {
        let mut looks = 0;
        let got = await_peer(
            |wait| {
                looks += 1;
                // The timed wait finds nothing; the look after the judgement finds the marker.
                Ok(wait.is_none().then_some("end"))
            },
            || Ok(()),
            || Some(no_peer("recv", Object::Other("x".into()), "sender", SLICE)),
        );
        assert_eq!(got.unwrap(), "end");
        assert_eq!(looks, 2);
        let err = await_peer(
            |_| Ok(None::<()>),
            || Ok(()),
            || Some(no_peer("recv", Object::Other("x".into()), "sender", SLICE)),
        )
        .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    #[test]
    #[cfg_attr(miri, ignore = "spawns a process, which Miri cannot")]
    fn a_reaped_child_is_not_alive_and_this_process_is() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let peer = Peer::new(child.id());
        child.wait().unwrap();
        assert!(!peer.alive());
        assert!(Peer::new(std::process::id()).alive());
    }

    #[test]
    fn rendezvous_fields_are_found() {
        assert_eq!(field("shm=3,sem=4", "sem"), Some("4"));
        assert_eq!(field("shm=3", "sem"), None);
    }
}
