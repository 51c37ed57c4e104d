//! `unix-dgram`: Unix-domain datagrams, one per message, with a tag byte for the end of stream
//! (see `packet`). The receiver binds a path in the runtime directory (removed when its end is
//! dropped); the sender connects an unbound socket to it.
//!
//! Unix datagrams are reliable and ordered, and a sender blocks while the receiver's queue is
//! full. A datagram must fit the sender's send buffer: the kernel refuses (`EMSGSIZE`) one longer
//! than `SO_SNDBUF − 32` bytes, and `SO_SNDBUF` is at most twice `net.core.wmem_max` for an
//! unprivileged process, so the sender raises it to that and the largest message follows from it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::packet::{PacketReceiver, PacketSender};
use super::{as_named, not_there_yet, AbortHandle, End, HostImpl, MaxMessage, Options};
use super::{Rendezvous, Role, TransportKind, SLICE};
use crate::error::{Error, Object, Result};
use crate::unix::{Addr, DatagramSocket, UnixDatagram};

/// Where the kernel's ceiling for `SO_SNDBUF` is read.
const WMEM_MAX: &str = "/proc/sys/net/core/wmem_max";
/// What the kernel keeps of the send buffer for itself (`sk_sndbuf - 32` in `af_unix.c`).
const OVERHEAD: usize = 32;

fn wmem_max() -> usize {
    std::fs::read_to_string(WMEM_MAX)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(212_992)
}

/// The largest message of `unix-dgram` and `unix-seqpacket`: the doubled `wmem_max`, less the
/// kernel's overhead and the tag byte.
pub(super) fn max_message() -> MaxMessage {
    let wmem = wmem_max();
    MaxMessage {
        bytes: (2 * wmem).saturating_sub(OVERHEAD + 1),
        reason: format!(
            "a packet must fit the sender's socket buffer (2 × net.core.wmem_max = {} bytes, less {})",
            2 * wmem,
            OVERHEAD + 1
        ),
    }
}

/// Raises the send buffer to the most an unprivileged process may have, and makes blocked sends
/// wake every 100 ms to notice an abort.
pub(super) fn grow_send_buffer(fd: BorrowedFd<'_>, object: &Object) -> Result<()> {
    use rustix::net::sockopt;
    sockopt::set_socket_send_buffer_size(fd, wmem_max())
        .map_err(|e| Error::os("setsockopt(SO_SNDBUF)", object.clone(), e))?;
    sockopt::set_socket_timeout(fd, sockopt::Timeout::Send, Some(SLICE))
        .map_err(|e| Error::os("setsockopt(SO_SNDTIMEO)", object.clone(), e))
}

fn object(path: &std::path::Path) -> Object {
    Object::Other(format!("unix-dgram socket {}", path.display()).into())
}

enum Host {
    /// The receiver's bound socket, the largest message and the connect timeout.
    Recv(DatagramSocket, usize, Duration),
    /// A sender waiting for the peer to bind `path`.
    Send(PathBuf),
}

pub(super) fn host(role: Role, at: &Rendezvous, options: &Options) -> Result<Box<dyn HostImpl>> {
    let path = at.path(".dgram");
    Ok(Box::new(match role {
        Role::Recv => Host::Recv(
            bind(&path, at.named)?,
            options.get_max_message(),
            options.get_timeout(),
        ),
        Role::Send => Host::Send(path),
    }))
}

fn bind(path: &std::path::Path, replace: bool) -> Result<DatagramSocket> {
    let addr = Addr::path(path);
    if replace {
        DatagramSocket::bind_replacing(&addr)
    } else {
        DatagramSocket::bind(&addr)
    }
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        match self {
            Host::Recv(socket, _, _) => socket.addr().to_string(),
            Host::Send(path) => path.display().to_string(),
        }
    }

    fn establish(self: Box<Self>, timeout: Option<Duration>) -> Result<End> {
        match *self {
            Host::Recv(socket, max, timeout) => receiver(socket, max, timeout),
            Host::Send(path) => {
                let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
                loop {
                    match sender(&path) {
                        Err(e)
                            if not_there_yet(&e) && deadline.is_none_or(|d| Instant::now() < d) =>
                        {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        other => return other,
                    }
                }
            }
        }
    }
}

fn receiver(socket: DatagramSocket, max: usize, timeout: Duration) -> Result<End> {
    let path = socket
        .addr()
        .as_path()
        .map(PathBuf::from)
        .unwrap_or_default();
    let fd = socket
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::os("F_DUPFD_CLOEXEC", object(&path), e))?;
    Ok(End::Recv(Box::new(PacketReceiver::new(
        fd,
        max,
        object(&path),
        false,
        Some(Box::new(socket)),
        timeout,
    )?)))
}

fn sender(path: &std::path::Path) -> Result<End> {
    let socket = UnixDatagram::unbound().map_err(|e| Error::os("socket", object(path), e))?;
    socket
        .connect(path)
        .map_err(|e| Error::os("connect", object(path), e))?;
    let fd = OwnedFd::from(socket);
    grow_send_buffer(fd.as_fd(), &object(path))?;
    let mut tx = PacketSender {
        fd,
        max: max_message().bytes,
        object: object(path),
        abort: AbortHandle::new(None),
        announce: true,
        confirm: None,
    };
    tx.hello()?;
    Ok(End::Send(Box::new(tx)))
}

pub(super) fn connect(role: Role, rendezvous: &str, options: &Options) -> Result<End> {
    let (path, named) = match as_named(TransportKind::UnixDgram, rendezvous) {
        Some(at) => (at.path(".dgram"), true),
        None => (PathBuf::from(rendezvous), false),
    };
    match role {
        Role::Send => sender(&path),
        Role::Recv => receiver(
            bind(&path, named)?,
            options.get_max_message(),
            options.get_timeout(),
        ),
    }
}
