//! Stream sockets: std's `UnixStream` for the connection, a listener that cleans up its file.

use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};

use rustix::net::SocketType;

use crate::error::Result;
use crate::unix::file::{accept, bind_listener, bound_accessors, connect_socket, Bound};
use crate::unix::Addr;

/// `socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)` + `connect(fd, addr)` — connects to the
/// stream listener at `addr` (a path or an abstract name). `ConnectionRefused` if nothing listens
/// there (a stale socket file), `NotFound` if no file is at the path.
pub fn connect_stream(addr: &Addr) -> Result<UnixStream> {
    connect_socket(SocketType::STREAM, addr).map(UnixStream::from)
}

/// A listening stream socket that unlinks its socket file when dropped.
///
/// Dereferences to std's [`UnixListener`], so `incoming()`, `set_nonblocking()` … are at hand;
/// [`accept`](Self::accept) returns ipckit errors. Connections are std [`UnixStream`]s.
///
/// ```no_run
/// use std::io::{Read, Write};
/// use ipckit::unix::{connect_stream, Addr, StreamListener};
/// let addr = Addr::path("/tmp/demo.sock");
/// let listener = StreamListener::bind(&addr)?;
/// let mut client = connect_stream(&addr)?;
/// let mut server = listener.accept()?;
/// client.write_all(b"ping")?;
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct StreamListener {
    listener: UnixListener,
    bound: Bound,
}

impl StreamListener {
    /// `socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)` + `bind(fd, addr)` + `listen(fd,
    /// SOMAXCONN)` — listens at `addr`.
    ///
    /// A file already at the path, even the stale socket file of a server that died, makes this
    /// fail with `AddrInUse`, and the error names the path; [`bind_replacing`](Self::bind_replacing)
    /// replaces a stale socket file. The socket file this creates is unlinked on drop (see
    /// [`set_remove_on_drop`](Self::set_remove_on_drop)).
    pub fn bind(addr: &Addr) -> Result<StreamListener> {
        StreamListener::bind_with(addr, false)
    }

    /// Like [`bind`](Self::bind), but a socket file already at the path is unlinked first.
    ///
    /// Only a socket is removed, found with `lstat`: a symbolic link (even one to a socket), a
    /// regular file or anything else fails with `AddrInUse` and is left untouched. Whether a
    /// process still listens on the old socket is not checked: such a process keeps its socket,
    /// but can no longer be reached by the path. For an abstract name this is `bind`.
    pub fn bind_replacing(addr: &Addr) -> Result<StreamListener> {
        StreamListener::bind_with(addr, true)
    }

    fn bind_with(addr: &Addr, replace: bool) -> Result<StreamListener> {
        let (fd, bound) = bind_listener(SocketType::STREAM, addr, replace)?;
        Ok(StreamListener {
            listener: UnixListener::from(fd),
            bound,
        })
    }

    /// `accept4(fd, NULL, NULL, SOCK_CLOEXEC)` — waits for the next connection (unless the
    /// listener is non-blocking: then `WouldBlock`); `EINTR` is retried.
    pub fn accept(&self) -> Result<UnixStream> {
        accept(&self.listener, self.addr()).map(UnixStream::from)
    }

    bound_accessors! {
        /// The address this listener was bound to.
        addr;
        /// Whether to unlink the socket file on drop (the default for a path; an abstract name has
        /// no file). Even when on, the file is unlinked only if the path still names this
        /// listener's socket (same device and inode).
        set_remove_on_drop;
        /// Whether the socket file will be unlinked on drop.
        remove_on_drop;
    }

    /// The std listener; the socket file is then left in place for good.
    pub fn into_std(mut self) -> UnixListener {
        self.set_remove_on_drop(false);
        let StreamListener { listener, .. } = self;
        listener
    }
}

impl Deref for StreamListener {
    type Target = UnixListener;

    fn deref(&self) -> &UnixListener {
        &self.listener
    }
}

impl AsFd for StreamListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl AsRawFd for StreamListener {
    fn as_raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }
}
