//! Datagram sockets: std's `UnixDatagram`, bound with the same file handling as the listeners.

use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixDatagram;

use rustix::io::retry_on_intr;
use rustix::net::SocketType;

use crate::error::{Error, Result};
use crate::unix::file::{bind_socket, bound_accessors, Bound};
use crate::unix::Addr;

/// A datagram socket bound to an address, which unlinks its socket file when dropped.
///
/// Dereferences to std's [`UnixDatagram`] for `send`, `recv`, `send_to_addr`, `recv_from` …
/// Each `send` is one datagram and each `recv` returns one whole datagram; note that std's `recv`
/// silently cuts a datagram longer than the buffer ([`recv_fds`](crate::unix::recv_fds) reports
/// it). For an unbound socket or a connected pair, std's `UnixDatagram::unbound` and
/// `UnixDatagram::pair` are all there is to it.
#[derive(Debug)]
pub struct DatagramSocket {
    socket: UnixDatagram,
    bound: Bound,
}

impl DatagramSocket {
    /// `socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)` + `bind(fd, addr)` — a datagram socket that
    /// receives at `addr`. A file already at the path fails with `AddrInUse` naming it; the socket
    /// file this creates is unlinked on drop.
    pub fn bind(addr: &Addr) -> Result<DatagramSocket> {
        DatagramSocket::bind_with(addr, false)
    }

    /// Like [`bind`](Self::bind), but a socket file already at the path is unlinked first; only a
    /// socket is removed, exactly as [`StreamListener::bind_replacing`](crate::unix::StreamListener::bind_replacing)
    /// does.
    pub fn bind_replacing(addr: &Addr) -> Result<DatagramSocket> {
        DatagramSocket::bind_with(addr, true)
    }

    fn bind_with(addr: &Addr, replace: bool) -> Result<DatagramSocket> {
        let (fd, bound) = bind_socket(SocketType::DGRAM, addr, replace)?;
        Ok(DatagramSocket {
            socket: UnixDatagram::from(fd),
            bound,
        })
    }

    /// `connect(fd, addr)` — sets the default destination of `send` (and accepts datagrams only
    /// from there). `EINTR` is retried.
    pub fn connect(&self, addr: &Addr) -> Result<()> {
        let raw = addr.to_rustix("connect")?;
        retry_on_intr(|| rustix::net::connect(&self.socket, &raw))
            .map_err(|e| Error::os("connect", addr.object(), e))
    }

    bound_accessors! {
        /// The address this socket was bound to.
        addr;
        /// Whether to unlink the socket file on drop (the default for a path). Even when on, the
        /// file is unlinked only if the path still names this socket (same device and inode).
        set_remove_on_drop;
        /// Whether the socket file will be unlinked on drop.
        remove_on_drop;
    }

    /// The std socket; the socket file is then left in place for good.
    pub fn into_std(mut self) -> UnixDatagram {
        self.set_remove_on_drop(false);
        let DatagramSocket { socket, .. } = self;
        socket
    }
}

impl Deref for DatagramSocket {
    type Target = UnixDatagram;

    fn deref(&self) -> &UnixDatagram {
        &self.socket
    }
}

impl AsFd for DatagramSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for DatagramSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}
