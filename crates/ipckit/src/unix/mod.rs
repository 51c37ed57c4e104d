//! Unix domain sockets: connections and datagrams between processes on one machine, addressed by
//! a path or a Linux abstract name, which can also carry open file descriptors and tell who the
//! peer is.
//!
//! The traps removed: a server that died leaves its socket file behind and the next `bind` fails
//! (here a bound socket unlinks its file on drop, and [`StreamListener::bind_replacing`] replaces a
//! stale one but never a regular file); descriptors received with `SCM_RIGHTS` leak into children
//! or leak outright when the control buffer was too small (here they are close-on-exec, owned,
//! and closed on truncation); and writing to a closed peer kills the process with `SIGPIPE` (here
//! every send uses `MSG_NOSIGNAL`, so it is a `BrokenPipe` error).
//!
//! - Stream: std's [`UnixStream`] is the connection; [`StreamListener`] and [`connect_stream`]
//!   add abstract addresses, file handling and ipckit errors.
//! - Datagram: std's [`UnixDatagram`], bound with [`DatagramSocket`].
//! - Seqpacket, which std lacks: [`SeqpacketListener`] and [`SeqpacketConn`], a connection that
//!   keeps message boundaries.
//! - [`send_fds`] / [`recv_fds`] pass descriptors over any of them; [`peer_credentials`] reads
//!   `SO_PEERCRED`.
//!
//! # `SIGPIPE`
//! Writing to a stream or seqpacket socket whose peer has closed raises `SIGPIPE`, whose default
//! action ends the process, unless the send passes `MSG_NOSIGNAL`. Everything here does. std's
//! `UnixStream` did not until rust-lang/rust#140005 (2025): since then its `write` uses
//! `send(…, MSG_NOSIGNAL)`, but older toolchains (this crate builds with 1.80) and its
//! `write_vectored` use `write(2)`/`writev(2)`. A Rust program's `main` sets `SIGPIPE` to
//! "ignore" before it starts, so those writes fail with `BrokenPipe` there; a library cannot rely
//! on that, because it may be called from a C or Go program, or from one that restored the
//! default (as command-line tools do to die quietly in a pipeline).
//!
//! # TCP on loopback
//! For a TCP connection between local processes (to a service that speaks TCP, or to stay
//! portable) std's [`TcpListener::bind(("127.0.0.1", 0))`](std::net::TcpListener::bind) and
//! `TcpStream` need nothing added: port 0 lets the kernel pick a free port, which `local_addr()`
//! reports. std's TCP `write` already sends with `MSG_NOSIGNAL`. A Unix socket is the better
//! choice on one machine: file permissions guard it, it passes descriptors and credentials, and
//! it skips the TCP/IP stack.
//!
//! # References
//! [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html),
//! [socket(2)](https://man7.org/linux/man-pages/man2/socket.2.html),
//! [socketpair(2)](https://man7.org/linux/man-pages/man2/socketpair.2.html),
//! [bind(2)](https://man7.org/linux/man-pages/man2/bind.2.html),
//! [sendmsg(2)](https://man7.org/linux/man-pages/man2/sendmsg.2.html),
//! [recvmsg(2)](https://man7.org/linux/man-pages/man2/recvmsg.2.html),
//! [cmsg(3)](https://man7.org/linux/man-pages/man3/cmsg.3.html)

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd};

use crate::error::{Error, Object, Result};

mod addr;
mod datagram;
mod fds;
mod file;
mod seqpacket;
mod stream;

pub use addr::{Addr, MAX_ADDR_LEN};
pub use datagram::DatagramSocket;
pub use fds::{recv_fds, send_fds, SCM_MAX_FD};
pub use seqpacket::{SeqpacketConn, SeqpacketListener};
pub use std::os::unix::net::{UnixDatagram, UnixStream};
pub use stream::{connect_stream, StreamListener};

/// Who is at the other end of a socket (`struct ucred`), as the kernel recorded it when the
/// connection was made (`connect`/`listen`) or the pair created: it does not change if that process
/// later changes its ids or passes the socket on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// Process id, in this process's PID namespace; 0 if that process is not visible in it.
    pub pid: u32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// `getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &ucred)` — the credentials of the peer of a connected
/// stream or seqpacket socket, or of the process that created a `socketpair`.
///
/// The kernel vouches for them; the peer cannot lie. A socket without a peer (not connected, or a
/// datagram socket that is not one end of a pair) is a `NotConnected` error: the kernel reports
/// pid 0 and ids -1 for it, which are not credentials.
pub fn peer_credentials<S: AsFd>(socket: &S) -> Result<Credentials> {
    const OP: &str = "getsockopt(SO_PEERCRED)";
    let fd = socket.as_fd().as_raw_fd();
    let object = || Object::Other(format!("Unix socket fd {fd}").into());
    // Not rustix's `socket_peercred`: its `UCred` holds a non-zero `Pid`, and the kernel can
    // report pid 0.
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable ucred and `len` its size, which is what SO_PEERCRED fills in.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(Error::last_os(OP, object()));
    }
    if cred.uid == u32::MAX {
        return Err(Error::os(
            OP,
            object(),
            io::Error::new(
                io::ErrorKind::NotConnected,
                "the socket has no peer, so no credentials were recorded",
            ),
        ));
    }
    Ok(Credentials {
        pid: cred.pid as u32,
        uid: cred.uid,
        gid: cred.gid,
    })
}
