//! `SOCK_SEQPACKET`: connections, like a stream, that carry whole messages, like datagrams. std has
//! no type for them.

use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::io::retry_on_intr;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::error::{Error, Object, Result};
use crate::unix::file::{accept, bind_listener, bound_accessors, connect_socket, Bound};
use crate::unix::Addr;

/// A listening `SOCK_SEQPACKET` socket that unlinks its socket file when dropped.
#[derive(Debug)]
pub struct SeqpacketListener {
    fd: OwnedFd,
    bound: Bound,
}

impl SeqpacketListener {
    /// `socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)` + `bind(fd, addr)` + `listen(fd,
    /// SOMAXCONN)` — listens at `addr`. A file already at the path fails with `AddrInUse` naming
    /// it; the socket file this creates is unlinked on drop.
    pub fn bind(addr: &Addr) -> Result<SeqpacketListener> {
        SeqpacketListener::bind_with(addr, false)
    }

    /// Like [`bind`](Self::bind), but a socket file already at the path is unlinked first; only a
    /// socket is removed, exactly as [`StreamListener::bind_replacing`](crate::unix::StreamListener::bind_replacing)
    /// does.
    pub fn bind_replacing(addr: &Addr) -> Result<SeqpacketListener> {
        SeqpacketListener::bind_with(addr, true)
    }

    fn bind_with(addr: &Addr, replace: bool) -> Result<SeqpacketListener> {
        let (fd, bound) = bind_listener(SocketType::SEQPACKET, addr, replace)?;
        Ok(SeqpacketListener { fd, bound })
    }

    /// `accept4(fd, NULL, NULL, SOCK_CLOEXEC)` — waits for the next connection (unless the
    /// listener is non-blocking: then `WouldBlock`); `EINTR` is retried.
    pub fn accept(&self) -> Result<SeqpacketConn> {
        accept(&self.fd, self.addr()).map(SeqpacketConn::from)
    }

    /// `ioctl(fd, FIONBIO, &on)` — makes [`accept`](Self::accept) fail with `WouldBlock` instead
    /// of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<()> {
        rustix::io::ioctl_fionbio(&self.fd, nonblocking)
            .map_err(|e| Error::os("ioctl(FIONBIO)", self.addr().object(), e))
    }

    bound_accessors! {
        /// The address this listener was bound to.
        addr;
        /// Whether to unlink the socket file on drop (the default for a path). Even when on, the
        /// file is unlinked only if the path still names this listener's socket (same device and
        /// inode).
        set_remove_on_drop;
        /// Whether the socket file will be unlinked on drop.
        remove_on_drop;
    }
}

impl AsFd for SeqpacketListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for SeqpacketListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// One end of a `SOCK_SEQPACKET` connection: reliable, ordered, connection-oriented, and every
/// [`send`](Self::send) arrives as exactly one [`recv`](Self::recv) of the same length.
///
/// ```
/// use ipckit::unix::SeqpacketConn;
/// let (a, b) = SeqpacketConn::pair()?;
/// a.send(b"one")?;
/// a.send(b"three")?;
/// let mut buf = [0; 64];
/// assert_eq!(b.recv(&mut buf)?, 3);
/// assert_eq!(b.recv(&mut buf)?, 5);
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug)]
pub struct SeqpacketConn {
    fd: OwnedFd,
}

impl SeqpacketConn {
    /// `socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)` + `connect(fd, addr)` — connects to
    /// the [`SeqpacketListener`] at `addr`.
    pub fn connect(addr: &Addr) -> Result<SeqpacketConn> {
        connect_socket(SocketType::SEQPACKET, addr).map(SeqpacketConn::from)
    }

    /// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)` — two connected ends, for a
    /// thread or a child process.
    pub fn pair() -> Result<(SeqpacketConn, SeqpacketConn)> {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| Error::os("socketpair", Object::Other("Unix seqpacket pair".into()), e))?;
        Ok((SeqpacketConn::from(a), SeqpacketConn::from(b)))
    }

    fn object(&self) -> Object {
        Object::Other(format!("Unix seqpacket socket fd {}", self.fd.as_raw_fd()).into())
    }

    /// `send(fd, msg, len, MSG_NOSIGNAL)` — sends `msg` as one message, whole or not at all.
    ///
    /// A message larger than the socket's send buffer fails with `EMSGSIZE`. If the peer has
    /// closed, this is `BrokenPipe` and no `SIGPIPE` is raised. `EINTR` is retried. An empty
    /// message is allowed, but the peer's `recv` cannot tell it from end of file.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        let sent = retry_on_intr(|| rustix::net::send(&self.fd, msg, SendFlags::NOSIGNAL))
            .map_err(|e| Error::os("send", self.object(), e))?;
        if sent != msg.len() {
            // The kernel sends a seqpacket message whole; anything else is reported, not hidden.
            return Err(Error::os(
                "send",
                self.object(),
                std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("sent {sent} of {} bytes of one message", msg.len()),
                ),
            ));
        }
        Ok(())
    }

    /// `recv(fd, buf, len, MSG_TRUNC)` — receives the next message into `buf` and returns its
    /// length; 0 means the peer closed (or sent an empty message). Waits unless non-blocking
    /// (then `WouldBlock`); `EINTR` is retried.
    ///
    /// A message longer than `buf` is an [`Error::TooLarge`] naming both lengths, and is gone: the
    /// kernel discards what did not fit. Size the buffer with [`peek_len`](Self::peek_len) when
    /// messages may be long.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        let cap = buf.len();
        let (_, len) = retry_on_intr(|| rustix::net::recv(&self.fd, &mut *buf, RecvFlags::TRUNC))
            .map_err(|e| Error::os("recv", self.object(), e))?;
        if len > cap {
            return Err(Error::TooLarge {
                op: "recv",
                object: self.object(),
                what: "message",
                len,
                limit: cap,
                limit_name: "the receive buffer",
            });
        }
        Ok(len)
    }

    /// `recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC)` — the length of the next message, which stays
    /// queued; waits for one like [`recv`](Self::recv). 0 at end of file.
    pub fn peek_len(&self) -> Result<usize> {
        let mut none: [u8; 0] = [];
        retry_on_intr(|| {
            rustix::net::recv(&self.fd, &mut none[..], RecvFlags::PEEK | RecvFlags::TRUNC)
        })
        .map(|(_, len)| len)
        .map_err(|e| Error::os("recv(MSG_PEEK)", self.object(), e))
    }

    /// `shutdown(fd, how)` — ends reading, writing or both; the peer's `recv` then returns 0
    /// once its queue is drained (for `Write`/`Both`).
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        let how = match how {
            Shutdown::Read => rustix::net::Shutdown::Read,
            Shutdown::Write => rustix::net::Shutdown::Write,
            Shutdown::Both => rustix::net::Shutdown::Both,
        };
        rustix::net::shutdown(&self.fd, how).map_err(|e| Error::os("shutdown", self.object(), e))
    }

    /// `ioctl(fd, FIONBIO, &on)` — makes `send` and `recv` fail with `WouldBlock` instead of
    /// waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<()> {
        rustix::io::ioctl_fionbio(&self.fd, nonblocking)
            .map_err(|e| Error::os("ioctl(FIONBIO)", self.object(), e))
    }

    /// `fcntl(fd, F_DUPFD_CLOEXEC, 0)` — a second handle to the same connection (for example one
    /// per thread).
    pub fn try_clone(&self) -> Result<SeqpacketConn> {
        rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)
            .map(SeqpacketConn::from)
            .map_err(|e| Error::os("fcntl(F_DUPFD_CLOEXEC)", self.object(), e))
    }

    /// `getsockname(fd)` — this end's address; `None` when unnamed (a connecting or paired end).
    pub fn local_addr(&self) -> Result<Option<Addr>> {
        let addr = rustix::net::getsockname(&self.fd)
            .map_err(|e| Error::os("getsockname", self.object(), e))?;
        Ok(rustix::net::SocketAddrUnix::try_from(addr)
            .ok()
            .and_then(|a| Addr::from_rustix(&a)))
    }

    /// `getpeername(fd)` — the peer's address: the listener's, seen from a connecting end; `None`
    /// when unnamed.
    pub fn peer_addr(&self) -> Result<Option<Addr>> {
        let addr = rustix::net::getpeername(&self.fd)
            .map_err(|e| Error::os("getpeername", self.object(), e))?;
        Ok(addr
            .and_then(|a| rustix::net::SocketAddrUnix::try_from(a).ok())
            .and_then(|a| Addr::from_rustix(&a)))
    }
}

impl From<OwnedFd> for SeqpacketConn {
    /// Takes a connected `SOCK_SEQPACKET` socket, such as one received with
    /// [`recv_fds`](crate::unix::recv_fds). The type is not checked.
    fn from(fd: OwnedFd) -> SeqpacketConn {
        SeqpacketConn { fd }
    }
}

impl From<SeqpacketConn> for OwnedFd {
    fn from(conn: SeqpacketConn) -> OwnedFd {
        conn.fd
    }
}

impl AsFd for SeqpacketConn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for SeqpacketConn {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
