//! [`Framing::Plain`](super::Framing::Plain): the bytes on the wire are exactly the messages, so
//! programs that are not ipckit (`printf > FIFO`, `socat`, `nc`, a Python socket, `sysv_ipc`,
//! `posix_ipc`) can be either side.
//!
//! | kind | wire | end of stream |
//! |---|---|---|
//! | `fifo`, `unix-stream`, `tcp` | the bytes, nothing added; `recv` returns them as read | the writer closes |
//! | `unix-seqpacket` | one packet per message | the writer closes (an empty packet reads the same) |
//! | `unix-dgram` | one datagram per message | an empty datagram |
//! | `sysv-msg` | one message per message, of type [`Options::message_type`] (default 1); `recv` takes any type unless one is set | none |
//! | `posix-mq` | one message per message, at [`Options::priority`] (default 0); `recv` takes any priority unless one is set | none |
//!
//! Without an end of stream, a receiver waits until it is aborted ([`AbortHandle`]). Nothing
//! here can tell a sender that died from one that finished, and a sender's close does not wait
//! for the receiver (a FIFO's does: until the pipe is drained).
//!
//! Where the other side meets: [`Options::path`] (the FIFO or socket; by default the same path
//! as ipckit's framing, `<runtime dir>/ipckit-NAME.fifo` …), [`Options::addr`] (TCP; by default
//! loopback, an ephemeral port written to `<runtime dir>/ipckit-NAME.tcp`), [`Options::key`]
//! (System V; by default a key derived from NAME), `/ipckit-NAME` (POSIX). A receiver creates
//! what is missing and removes only what it created.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};

use super::{not_there_yet, wait_readable, wait_readable_or_cancel, AbortHandle, Options};
use super::{End, HostImpl, RecvImpl, Rendezvous, SendImpl, Sender, TransportKind, SLICE};
use crate::error::{Error, Object, Result};
use crate::pipe::{Fifo, OwnedFifo, PipeWriter};
use crate::posix::mq::{MessageQueue, OwnedMessageQueue};
use crate::sysv::msg::{MsgQueue, OwnedMsgQueue, RecvOptions};
use crate::unix::{Addr, DatagramSocket, SeqpacketConn, SeqpacketListener, StreamListener};

/// How much a stream receiver reads at once.
const CHUNK: usize = 64 * 1024;
/// The System V message type a sender uses when none is set: what most C code and `sysv_ipc`
/// send.
const DEFAULT_TYPE: i64 = 1;
/// Salt of the System V key derived from a NAME (the same as ipckit's framing).
const SALT: u8 = b'q';

/// The kinds that have a plain form.
pub(super) fn supported(kind: TransportKind) -> bool {
    matches!(
        kind,
        TransportKind::Fifo
            | TransportKind::UnixStream
            | TransportKind::UnixSeqpacket
            | TransportKind::UnixDgram
            | TransportKind::Tcp
            | TransportKind::SysvMsg
            | TransportKind::PosixMq
    )
}

/// The file a FIFO or socket of `kind` meets at.
fn path(kind: TransportKind, at: &Rendezvous, options: &Options) -> PathBuf {
    if let Some(p) = &options.path {
        return p.clone();
    }
    at.path(match kind {
        TransportKind::Fifo => ".fifo",
        TransportKind::UnixStream => ".sock",
        TransportKind::UnixSeqpacket => ".seqpacket",
        TransportKind::UnixDgram => ".dgram",
        _ => ".tcp",
    })
}

fn key(at: &Rendezvous, options: &Options) -> crate::Key {
    options
        .key
        .unwrap_or_else(|| super::name_key(&at.name, SALT))
}

fn queue_name(at: &Rendezvous) -> String {
    format!("/ipckit-{}", at.name)
}

fn object(kind: TransportKind, what: impl std::fmt::Display) -> Object {
    Object::Other(format!("{kind} {what}").into())
}

fn unsupported(kind: TransportKind) -> Error {
    Error::invalid(
        "rendezvous",
        Object::Other(format!("transport {kind}").into()),
        "only ipckit's framing exists for this transport (no other program speaks it)",
    )
}

/// The receiving side of a plain meeting, set up: the FIFO, listener or queue exists (created
/// if it was missing, and removed on drop if so); [`HostImpl::establish`] waits for a writer
/// where the mechanism has connections (FIFO, stream and seqpacket sockets).
enum Host {
    Fifo {
        path: PathBuf,
        owned: Option<OwnedFifo>,
        cancel: Option<AbortHandle>,
    },
    UnixStream {
        listener: StreamListener,
        cancel: Option<AbortHandle>,
    },
    UnixSeqpacket {
        listener: SeqpacketListener,
        cancel: Option<AbortHandle>,
    },
    Tcp {
        listener: TcpListener,
        addr: SocketAddr,
        port_file: Option<PortFile>,
        cancel: Option<AbortHandle>,
    },
    /// Nothing to wait for (datagrams, queues): the end, and where it is.
    Ready(Box<dyn RecvImpl>, String),
}

pub(super) fn host(
    kind: TransportKind,
    at: &Rendezvous,
    options: &Options,
) -> Result<Box<dyn HostImpl>> {
    let cancel = options.get_cancel();
    Ok(Box::new(match kind {
        TransportKind::Fifo => {
            let path = path(kind, at, options);
            // A FIFO already there (made by mkfifo, say) is used and left in place.
            let owned = match Fifo::options().exclusive(true).create(&path) {
                Ok(f) => Some(f.into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Fifo::options().create(&path)?;
                    None
                }
                Err(e) => return Err(e),
            };
            Host::Fifo {
                path,
                owned,
                cancel,
            }
        }
        TransportKind::UnixStream => Host::UnixStream {
            listener: StreamListener::bind_replacing(&Addr::path(path(kind, at, options)))?,
            cancel,
        },
        TransportKind::UnixSeqpacket => Host::UnixSeqpacket {
            listener: SeqpacketListener::bind_replacing(&Addr::path(path(kind, at, options)))?,
            cancel,
        },
        TransportKind::Tcp => {
            let (listener, addr, port_file) = tcp_listen(at, options)?;
            Host::Tcp {
                listener,
                addr,
                port_file,
                cancel,
            }
        }
        TransportKind::UnixDgram => {
            let path = path(kind, at, options);
            let socket = DatagramSocket::bind_replacing(&Addr::path(&path))?;
            let object = object(kind, format!("socket {}", path.display()));
            let fd = socket
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| Error::os("F_DUPFD_CLOEXEC", object.clone(), e))?;
            Host::Ready(
                Box::new(PacketIn::new(fd, object, false, Some(Box::new(socket)))?),
                path.display().to_string(),
            )
        }
        TransportKind::SysvMsg => {
            let key = key(at, options);
            let (queue, owned) = match MsgQueue::create_exclusive(key) {
                Ok(q) => (q, Some(q.into_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    (MsgQueue::open(key)?, None)
                }
                Err(e) => return Err(e),
            };
            Host::Ready(
                Box::new(SysvIn {
                    queue,
                    _owned: owned,
                    selector: options.message_type.unwrap_or(0),
                    abort: AbortHandle::new(None),
                }),
                format!("key {:#010x}", key.value()),
            )
        }
        TransportKind::PosixMq => {
            let name = queue_name(at);
            let limits = crate::posix::mq::limits()?;
            let created = MessageQueue::options()
                .exclusive(true)
                .read_only()
                .max_messages(10.min(limits.msg_max).max(1))
                .message_size(
                    options
                        .get_max_message()
                        .clamp(1, limits.msgsize_max.max(1)),
                )
                .open(&name);
            let queue = match created {
                Ok(q) => PosixQueue::Owned(q.into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    PosixQueue::Opened(MessageQueue::options().read_only().open(&name)?)
                }
                Err(e) => return Err(e),
            };
            Host::Ready(
                Box::new(PosixIn {
                    rx: Vec::new(),
                    queue,
                    priority: options.priority,
                    abort: AbortHandle::new(None),
                }),
                name,
            )
        }
        _ => return Err(unsupported(kind)),
    }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        match self {
            Host::Fifo { path, .. } => path.display().to_string(),
            Host::UnixStream { listener, .. } => listener.addr().to_string(),
            Host::UnixSeqpacket { listener, .. } => listener.addr().to_string(),
            Host::Tcp { addr, .. } => addr.to_string(),
            Host::Ready(_, at) => at.clone(),
        }
    }

    fn establish(self: Box<Self>, timeout: Option<Duration>) -> Result<End> {
        let wait =
            |fd: std::os::fd::BorrowedFd<'_>, cancel: &Option<AbortHandle>, object: Object| {
                if wait_readable_or_cancel(fd, timeout, cancel.as_ref(), || object.clone())? {
                    Ok(())
                } else {
                    Err(Error::Timeout {
                        op: "accept",
                        object,
                        timeout: timeout.unwrap_or_default(),
                    })
                }
            };
        let inner: Box<dyn RecvImpl> = match *self {
            Host::Fifo {
                path,
                owned,
                cancel,
            } => {
                let fifo = Fifo::new(&path);
                let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
                let r = loop {
                    if let Some(c) = &cancel {
                        c.check("open", || Object::Path(path.as_path().into()))?;
                    }
                    let left =
                        deadline.map_or(SLICE, |d| d.saturating_duration_since(Instant::now()));
                    match fifo.open_read_timeout(left.min(SLICE)) {
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut && left > SLICE => {}
                        other => break other?,
                    }
                };
                Box::new(StreamIn::new(
                    OwnedFd::from(r),
                    Object::Path(path.into()),
                    owned.map(|f| Box::new(f) as Box<dyn Send>),
                ))
            }
            Host::UnixStream { listener, cancel } => {
                let at = listener.addr().to_string();
                wait(
                    listener.as_fd(),
                    &cancel,
                    object(TransportKind::UnixStream, format!("listener {at}")),
                )?;
                let conn = listener.accept()?;
                Box::new(StreamIn::new(
                    conn.into(),
                    object(TransportKind::UnixStream, format!("socket {at}")),
                    None,
                ))
            }
            Host::UnixSeqpacket { listener, cancel } => {
                let at = listener.addr().to_string();
                wait(
                    listener.as_fd(),
                    &cancel,
                    object(TransportKind::UnixSeqpacket, format!("listener {at}")),
                )?;
                let conn = listener.accept()?;
                Box::new(PacketIn::new(
                    conn.into(),
                    object(TransportKind::UnixSeqpacket, format!("socket {at}")),
                    true,
                    None,
                )?)
            }
            Host::Tcp {
                listener,
                addr,
                port_file,
                cancel,
            } => {
                let object = object(TransportKind::Tcp, addr);
                wait(listener.as_fd(), &cancel, object.clone())?;
                let (conn, _) = listener
                    .accept()
                    .map_err(|e| Error::os("accept", object.clone(), e))?;
                drop(port_file);
                Box::new(StreamIn::new(conn.into(), object, None))
            }
            Host::Ready(inner, _) => inner,
        };
        Ok(End::Recv(inner))
    }
}

/// The sending side of a plain meeting: waits up to the connect timeout for the receiver's
/// FIFO, socket or queue, then connects.
pub(super) fn sender(kind: TransportKind, at: &Rendezvous, options: &Options) -> Result<Sender> {
    if !supported(kind) {
        return Err(unsupported(kind));
    }
    let deadline = Instant::now() + options.get_timeout();
    loop {
        options.check_cancel("connect", || object(kind, format!("{:?}", at.name)))?;
        match connect_sender(kind, at, options, deadline) {
            Ok(inner) => return Ok(Sender::new(inner)),
            Err(e) if not_there_yet(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

fn connect_sender(
    kind: TransportKind,
    at: &Rendezvous,
    options: &Options,
    deadline: Instant,
) -> Result<Box<dyn SendImpl>> {
    Ok(match kind {
        TransportKind::Fifo => {
            let path = path(kind, at, options);
            if !path.exists() {
                return Err(Error::os(
                    "open",
                    Object::Path(path.into()),
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                ));
            }
            let fifo = Fifo::new(&path);
            let w = loop {
                options.check_cancel("open", || Object::Path(path.as_path().into()))?;
                let left = deadline.saturating_duration_since(Instant::now());
                match fifo.open_write_timeout(left.min(SLICE)) {
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut && left > SLICE => {}
                    other => break other?,
                }
            };
            if let Some(n) = options.get_capacity() {
                w.set_capacity(n)?;
            }
            Box::new(StreamOut::fifo(w, path, options.get_timeout())?)
        }
        TransportKind::UnixStream => {
            let path = path(kind, at, options);
            let conn = crate::unix::connect_stream(&Addr::path(&path))?;
            StreamOut::socket(
                conn.into(),
                object(kind, format!("socket {}", path.display())),
            )?
        }
        TransportKind::Tcp => {
            let addr = tcp_addr(at, options)?;
            let object = object(kind, addr);
            let conn = TcpStream::connect_timeout(&addr, options.get_timeout())
                .map_err(|e| Error::os("connect", object.clone(), e))?;
            conn.set_nodelay(true)
                .map_err(|e| Error::os("setsockopt(TCP_NODELAY)", object.clone(), e))?;
            StreamOut::socket(conn.into(), object)?
        }
        TransportKind::UnixSeqpacket => {
            let path = path(kind, at, options);
            let conn = SeqpacketConn::connect(&Addr::path(&path))?;
            packet_out(kind, conn.into(), &path, false)?
        }
        TransportKind::UnixDgram => {
            let path = path(kind, at, options);
            let socket = crate::unix::UnixDatagram::unbound()
                .map_err(|e| Error::os("socket", object(kind, path.display()), e))?;
            socket
                .connect(&path)
                .map_err(|e| Error::os("connect", object(kind, path.display()), e))?;
            packet_out(kind, socket.into(), &path, true)?
        }
        TransportKind::SysvMsg => Box::new(SysvOut {
            queue: MsgQueue::open(key(at, options))?,
            mtype: options.message_type.unwrap_or(DEFAULT_TYPE),
            abort: AbortHandle::new(None),
            timeout: options.get_timeout(),
        }),
        TransportKind::PosixMq => Box::new(PosixOut {
            queue: MessageQueue::options().write_only().open(queue_name(at))?,
            priority: options.priority.unwrap_or(0),
            abort: AbortHandle::new(None),
            timeout: options.get_timeout(),
        }),
        _ => return Err(unsupported(kind)),
    })
}

/// The file that names a receiver's ephemeral port; removed on drop.
struct PortFile(PathBuf);

impl Drop for PortFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Binds the receiver's listener: at [`Options::addr`], else an ephemeral loopback port written
/// to the port file.
fn tcp_listen(
    at: &Rendezvous,
    options: &Options,
) -> Result<(TcpListener, SocketAddr, Option<PortFile>)> {
    let want = options
        .addr
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = TcpListener::bind(want)
        .map_err(|e| Error::os("bind", object(TransportKind::Tcp, want), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::os("getsockname", object(TransportKind::Tcp, want), e))?;
    let port_file = if options.addr.is_none() {
        let path = at.path(".tcp");
        let tmp = path.with_extension("tcp.tmp");
        std::fs::write(&tmp, addr.port().to_string())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::os("write", Object::Path(path.as_path().into()), e))?;
        Some(PortFile(path))
    } else {
        None
    };
    Ok((listener, addr, port_file))
}

/// Where a sender connects: [`Options::addr`], else the port in the receiver's port file.
fn tcp_addr(at: &Rendezvous, options: &Options) -> Result<SocketAddr> {
    if let Some(a) = options.addr {
        return Ok(a);
    }
    super::tcp::port_file_addr(at)
}

/// What a receiver keeps for its lifetime, removed on drop where it created it (a FIFO, a
/// datagram socket's file).
type Keep = Option<Box<dyn Send>>;

/// A byte stream's receiving side: each `recv` returns what one `read` gave.
struct StreamIn {
    fd: OwnedFd,
    object: Object,
    abort: AbortHandle,
    _keep: Keep,
}

impl StreamIn {
    fn new(fd: OwnedFd, object: Object, keep: Keep) -> StreamIn {
        StreamIn {
            fd,
            object,
            abort: AbortHandle::new(None),
            _keep: keep,
        }
    }
}

impl RecvImpl for StreamIn {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        loop {
            self.abort.check("recv", || self.object.clone())?;
            if !wait_readable(self.fd.as_fd(), Some(SLICE), || self.object.clone())? {
                continue;
            }
            buf.resize(CHUNK, 0);
            return match rustix::io::retry_on_intr(|| rustix::io::read(&self.fd, &mut buf[..])) {
                Ok(0) => {
                    buf.clear();
                    Ok(None)
                }
                Ok(n) => {
                    buf.truncate(n);
                    Ok(Some(n))
                }
                Err(Errno::AGAIN) => continue,
                Err(e) => Err(Error::os("read", self.object.clone(), e)),
            };
        }
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}

/// A byte stream's sending side: each message is written as it is.
struct StreamOut {
    writer: Box<dyn Write + Send>,
    object: Object,
    abort: AbortHandle,
    /// A socket: shut down for writing on close (the receiver reads end of file).
    socket: Option<OwnedFd>,
    /// A FIFO: close waits (up to `timeout` without progress) until the pipe is drained.
    drain: Option<OwnedFd>,
    timeout: Duration,
}

impl StreamOut {
    fn fifo(w: PipeWriter, path: PathBuf, timeout: Duration) -> Result<StreamOut> {
        let object = Object::Path(path.into());
        let drain = w
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::os("F_DUPFD_CLOEXEC", object.clone(), e))?;
        Ok(StreamOut {
            writer: Box::new(w),
            object,
            abort: AbortHandle::new(None),
            socket: None,
            drain: Some(drain),
            timeout,
        })
    }

    fn socket(fd: OwnedFd, object: Object) -> Result<Box<dyn SendImpl>> {
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .map_err(|e| Error::os("F_DUPFD_CLOEXEC", object.clone(), e))
        };
        let waker = dup(&fd)?;
        let shut = dup(&fd)?;
        // An abort shuts the socket down, which wakes a blocked write at once.
        let abort = AbortHandle::new(Some(std::sync::Arc::new(move || {
            let _ = rustix::net::shutdown(&waker, rustix::net::Shutdown::Both);
        })));
        Ok(Box::new(StreamOut {
            writer: Box::new(super::SocketSink(fd)),
            object,
            abort,
            socket: Some(shut),
            drain: None,
            timeout: Duration::MAX,
        }))
    }
}

impl SendImpl for StreamOut {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.abort.check("send", || self.object.clone())?;
        self.writer
            .write_all(msg)
            .map_err(|e| Error::os("write", self.object.clone(), e))
    }

    fn close(&mut self) -> Result<()> {
        if let Some(fd) = &self.socket {
            rustix::net::shutdown(fd, rustix::net::Shutdown::Write)
                .map_err(|e| Error::os("shutdown", self.object.clone(), e))?;
        }
        if let Some(fd) = &self.drain {
            super::stream::await_drain(fd, &self.abort, &self.object, self.timeout)?;
        }
        Ok(())
    }

    fn max_message(&self) -> usize {
        usize::MAX
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    fn object(&self) -> Object {
        self.object.clone()
    }
}

/// A packet or datagram sender: one `send` per message.
struct PacketOut {
    fd: OwnedFd,
    object: Object,
    abort: AbortHandle,
    /// A datagram socket: close sends an empty datagram (the receiver's end of stream); a
    /// seqpacket connection is shut down for writing instead.
    datagram: bool,
}

fn packet_out(
    kind: TransportKind,
    fd: OwnedFd,
    path: &std::path::Path,
    datagram: bool,
) -> Result<Box<dyn SendImpl>> {
    let object = object(kind, format!("socket {}", path.display()));
    super::unix_dgram::grow_send_buffer(fd.as_fd(), &object)?;
    Ok(Box::new(PacketOut {
        fd,
        object,
        abort: AbortHandle::new(None),
        datagram,
    }))
}

impl PacketOut {
    fn put(&self, payload: &[u8], op: &'static str) -> Result<()> {
        loop {
            self.abort.check(op, || self.object.clone())?;
            match rustix::net::send(&self.fd, payload, SendFlags::NOSIGNAL) {
                Ok(n) if n == payload.len() => return Ok(()),
                Ok(n) => {
                    return Err(Error::os(
                        "send",
                        self.object.clone(),
                        std::io::Error::new(
                            std::io::ErrorKind::WriteZero,
                            format!("sent {n} of {} bytes of one packet", payload.len()),
                        ),
                    ))
                }
                // A full receiver: SO_SNDTIMEO ended a slice; look for an abort and go on.
                Err(Errno::AGAIN) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::os("send", self.object.clone(), e)),
            }
        }
    }
}

impl SendImpl for PacketOut {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.put(msg, "send")
    }

    fn close(&mut self) -> Result<()> {
        if self.datagram {
            self.put(&[], "close")
        } else {
            rustix::net::shutdown(&self.fd, rustix::net::Shutdown::Write)
                .map_err(|e| Error::os("shutdown", self.object.clone(), e))
        }
    }

    fn max_message(&self) -> usize {
        super::unix_dgram::max_message().bytes + 1
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    fn object(&self) -> Object {
        self.object.clone()
    }
}

/// A packet or datagram receiver: one message per `recv`; an empty one ends the stream.
struct PacketIn {
    fd: OwnedFd,
    object: Object,
    abort: AbortHandle,
    max: usize,
    /// A seqpacket connection (vs a datagram socket), for the words of errors.
    connected: bool,
    _keep: Keep,
}

impl PacketIn {
    fn new(fd: OwnedFd, object: Object, connected: bool, keep: Keep) -> Result<PacketIn> {
        rustix::net::sockopt::set_socket_timeout(
            &fd,
            rustix::net::sockopt::Timeout::Recv,
            Some(SLICE),
        )
        .map_err(|e| Error::os("setsockopt(SO_RCVTIMEO)", object.clone(), e))?;
        Ok(PacketIn {
            fd,
            object,
            abort: AbortHandle::new(None),
            max: super::unix_dgram::max_message().bytes + 1,
            connected,
            _keep: keep,
        })
    }
}

impl RecvImpl for PacketIn {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        loop {
            self.abort.check("recv", || self.object.clone())?;
            buf.clear();
            buf.reserve(self.max);
            let room = buf.capacity();
            match rustix::net::recv(
                &self.fd,
                rustix::buffer::spare_capacity(&mut *buf),
                RecvFlags::TRUNC,
            ) {
                Ok((_, 0)) => return Ok(None),
                Ok((_, len)) if len > room => {
                    return Err(Error::TooLarge {
                        op: "recv",
                        object: self.object.clone(),
                        what: if self.connected { "packet" } else { "datagram" },
                        len,
                        limit: room,
                        limit_name: "the receive buffer",
                    })
                }
                Ok((_, len)) => return Ok(Some(len)),
                Err(Errno::AGAIN) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::os("recv", self.object.clone(), e)),
            }
        }
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}

/// A System V queue's sender: `msgsnd` of each message with one type.
struct SysvOut {
    queue: MsgQueue,
    mtype: i64,
    abort: AbortHandle,
    timeout: Duration,
}

impl SendImpl for SysvOut {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let object = || Object::MsgId(self.queue.id());
        let mut since = Instant::now();
        let mut nap = Duration::from_micros(20);
        let mut count = None;
        loop {
            self.abort.check("send", object)?;
            if self.queue.try_send(self.mtype, msg)? {
                return Ok(());
            }
            // Full: wait while someone takes messages, at most the timeout without progress.
            let now = self.queue.stat()?.messages;
            if count.is_some_and(|c| now < c) {
                since = Instant::now();
            }
            count = Some(now);
            if since.elapsed() >= self.timeout {
                return Err(super::no_peer("send", object(), "receiver", self.timeout));
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    fn close(&mut self) -> Result<()> {
        Ok(())
    }

    fn max_message(&self) -> usize {
        super::sysv_msg::max_message().bytes
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    fn object(&self) -> Object {
        Object::MsgId(self.queue.id())
    }
}

/// A System V queue's receiver: `msgrcv` of any type (or the one set), polled so that an abort
/// is seen (`msgrcv` cannot be given a timeout).
struct SysvIn {
    queue: MsgQueue,
    _owned: Option<OwnedMsgQueue>,
    selector: i64,
    abort: AbortHandle,
}

impl RecvImpl for SysvIn {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        let mut nap = Duration::from_micros(20);
        loop {
            self.abort
                .check("recv", || Object::MsgId(self.queue.id()))?;
            if let Some(msg) = self
                .queue
                .recv_with(self.selector, RecvOptions::new().nowait())?
            {
                *buf = msg.data;
                return Ok(Some(buf.len()));
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}

enum PosixQueue {
    Owned(OwnedMessageQueue),
    Opened(MessageQueue),
}

impl std::ops::Deref for PosixQueue {
    type Target = MessageQueue;
    fn deref(&self) -> &MessageQueue {
        match self {
            PosixQueue::Owned(q) => q,
            PosixQueue::Opened(q) => q,
        }
    }
}

/// A POSIX queue's sender: `mq_send` of each message at one priority.
struct PosixOut {
    queue: MessageQueue,
    priority: u32,
    abort: AbortHandle,
    timeout: Duration,
}

impl SendImpl for PosixOut {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let since = Instant::now();
        loop {
            self.abort.check("send", || self.object())?;
            if self.queue.send_timeout(msg, self.priority, SLICE)? {
                return Ok(());
            }
            if since.elapsed() >= self.timeout {
                return Err(super::no_peer(
                    "send",
                    self.object(),
                    "receiver",
                    self.timeout,
                ));
            }
        }
    }

    fn close(&mut self) -> Result<()> {
        Ok(())
    }

    fn max_message(&self) -> usize {
        self.queue.message_size()
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    fn object(&self) -> Object {
        Object::PosixMq(crate::posix::display_name(self.queue.name()).into())
    }
}

/// A POSIX queue's receiver: `mq_receive` in slices (to see an abort); with a priority set,
/// a message at another one is an error.
struct PosixIn {
    rx: Vec<u8>,
    queue: PosixQueue,
    priority: Option<u32>,
    abort: AbortHandle,
}

impl RecvImpl for PosixIn {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        let object = || Object::PosixMq(crate::posix::display_name(self.queue.name()).into());
        if self.rx.len() != self.queue.message_size() {
            self.rx = vec![0; self.queue.message_size()];
        }
        loop {
            self.abort.check("recv", object)?;
            let Some((len, priority)) = self.queue.recv_timeout(&mut self.rx, SLICE)? else {
                continue;
            };
            if let Some(want) = self.priority.filter(|&p| p != priority) {
                return Err(Error::invalid(
                    "recv",
                    object(),
                    format!("a message at priority {priority}, where only {want} is accepted"),
                ));
            }
            buf.clear();
            buf.extend_from_slice(&self.rx[..len]);
            return Ok(Some(len));
        }
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}
