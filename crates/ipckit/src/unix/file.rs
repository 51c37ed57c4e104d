//! Creating, connecting and binding Unix sockets, and the socket file a path-bound socket leaves
//! behind: replaced only when it is a socket, removed on drop only while it is still ours.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::io::retry_on_intr;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::error::{Error, Object, Result};
use crate::unix::Addr;

/// `socket(AF_UNIX, kind | SOCK_CLOEXEC, 0)`.
pub(crate) fn new_socket(kind: SocketType, object: impl FnOnce() -> Object) -> Result<OwnedFd> {
    rustix::net::socket_with(AddressFamily::UNIX, kind, SocketFlags::CLOEXEC, None)
        .map_err(|e| Error::os("socket", object(), e))
}

/// A new socket of `kind` connected to `addr`; `EINTR` retried (an interrupted Unix `connect`
/// leaves the socket unconnected).
pub(crate) fn connect_socket(kind: SocketType, addr: &Addr) -> Result<OwnedFd> {
    let raw = addr.to_rustix("connect")?;
    let fd = new_socket(kind, || addr.object())?;
    retry_on_intr(|| rustix::net::connect(&fd, &raw))
        .map_err(|e| Error::os("connect", addr.object(), e))?;
    Ok(fd)
}

/// A new socket of `kind` bound to `addr`, with its [`Bound`] state. With `replace`, a socket file
/// already at the path is unlinked first (see [`remove_stale`]).
pub(crate) fn bind_socket(
    kind: SocketType,
    addr: &Addr,
    replace: bool,
) -> Result<(OwnedFd, Bound)> {
    let raw = addr.to_rustix("bind")?;
    let fd = new_socket(kind, || addr.object())?;
    if let (true, Addr::Path(path)) = (replace, addr) {
        remove_stale(path)?;
    }
    rustix::net::bind(&fd, &raw).map_err(|e| Error::os("bind", addr.object(), e))?;
    let file = addr.as_path().and_then(SocketFile::new);
    let bound = Bound {
        addr: addr.clone(),
        file,
    };
    Ok((fd, bound))
}

/// [`bind_socket`] and then `listen(fd, SOMAXCONN)`; the kernel caps the backlog at
/// `net.core.somaxconn`.
pub(crate) fn bind_listener(
    kind: SocketType,
    addr: &Addr,
    replace: bool,
) -> Result<(OwnedFd, Bound)> {
    let (fd, bound) = bind_socket(kind, addr, replace)?;
    // On error `bound` drops here and unlinks the file just created.
    rustix::net::listen(&fd, libc::SOMAXCONN).map_err(|e| Error::os("listen", addr.object(), e))?;
    Ok((fd, bound))
}

/// `accept4(fd, NULL, NULL, SOCK_CLOEXEC)` on the listener bound at `addr`; `EINTR` is retried.
pub(crate) fn accept(listener: impl AsFd, addr: &Addr) -> Result<OwnedFd> {
    retry_on_intr(|| rustix::net::accept_with(&listener, SocketFlags::CLOEXEC))
        .map_err(|e| Error::os("accept", addr.object(), e))
}

/// What a bound socket keeps besides its descriptor: the address it was bound to, and the guard
/// of the socket file the bind created (none for an abstract name). Declare it after the socket's
/// descriptor, so that the socket is closed before its file is unlinked.
#[derive(Debug)]
pub(crate) struct Bound {
    addr: Addr,
    file: Option<SocketFile>,
}

impl Bound {
    pub(crate) fn addr(&self) -> &Addr {
        &self.addr
    }

    pub(crate) fn set_remove_on_drop(&mut self, remove: bool) {
        if let Some(file) = &mut self.file {
            file.set_remove_on_drop(remove);
        }
    }

    pub(crate) fn remove_on_drop(&self) -> bool {
        self.file.as_ref().is_some_and(SocketFile::remove_on_drop)
    }
}

/// The public `addr`, `set_remove_on_drop` and `remove_on_drop` of a bound socket type that keeps
/// its [`Bound`] in a field named `bound`. Each method takes the doc comment written before its
/// name, so every type documents them in its own words.
macro_rules! bound_accessors {
    (
        $(#[$addr_doc:meta])* addr;
        $(#[$set_doc:meta])* set_remove_on_drop;
        $(#[$get_doc:meta])* remove_on_drop;
    ) => {
        $(#[$addr_doc])*
        pub fn addr(&self) -> &Addr {
            self.bound.addr()
        }

        $(#[$set_doc])*
        pub fn set_remove_on_drop(&mut self, remove: bool) {
            self.bound.set_remove_on_drop(remove);
        }

        $(#[$get_doc])*
        pub fn remove_on_drop(&self) -> bool {
            self.bound.remove_on_drop()
        }
    };
}
pub(crate) use bound_accessors;

/// Unlinks `path` if it is a socket file (checked with `lstat`, so a symbolic link is never
/// followed, and is itself left alone); does nothing if nothing is there. Anything else at the
/// path is an `AddrInUse` error that says what is in the way, and is not touched.
fn remove_stale(path: &Path) -> Result<()> {
    const OP: &str = "bind_replacing";
    let object = || Object::Path(path.into());
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::os("lstat", object(), e)),
    };
    let kind = meta.file_type();
    if !kind.is_socket() {
        let what = if kind.is_symlink() {
            "a symbolic link"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_file() {
            "a regular file"
        } else if kind.is_fifo() {
            "a FIFO"
        } else {
            "a device file"
        };
        return Err(Error::os(
            OP,
            object(),
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{what} is in the way, not a socket; it was left in place"),
            ),
        ));
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::os("unlink", object(), e)),
    }
}

/// The socket file a bind created, unlinked on drop unless that is turned off.
///
/// It remembers the file's device and inode, and on drop unlinks the path only if it still names
/// that same socket: a file that someone else put there since (a new server's socket, after this
/// one's was replaced) is left alone. The path is made absolute at bind time, so changing the
/// working directory later does not redirect the removal.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    remove_on_drop: bool,
}

impl SocketFile {
    /// The guard of the socket file just bound at `path`; `None` if it cannot be identified (then
    /// nothing is removed on drop).
    fn new(path: &Path) -> Option<SocketFile> {
        let path = std::path::absolute(path).ok()?;
        let meta = fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_socket() {
            return None;
        }
        Some(SocketFile {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
            remove_on_drop: true,
        })
    }

    fn set_remove_on_drop(&mut self, remove: bool) {
        self.remove_on_drop = remove;
    }

    fn remove_on_drop(&self) -> bool {
        self.remove_on_drop
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if !self.remove_on_drop {
            return;
        }
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if meta.file_type().is_socket() && meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}
