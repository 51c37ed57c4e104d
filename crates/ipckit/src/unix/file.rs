//! Creating, connecting and binding Unix sockets, and the socket file a path-bound socket leaves
//! behind: replaced only when it is a socket, removed on drop only while it is still ours.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
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

/// A new socket of `kind` bound to `addr`, with the guard of the socket file it created. With
/// `replace`, a socket file already at the path is unlinked first (see [`remove_stale`]).
pub(crate) fn bind_socket(
    kind: SocketType,
    addr: &Addr,
    replace: bool,
) -> Result<(OwnedFd, Option<SocketFile>)> {
    let raw = addr.to_rustix("bind")?;
    let fd = new_socket(kind, || addr.object())?;
    if let (true, Addr::Path(path)) = (replace, addr) {
        remove_stale(path)?;
    }
    rustix::net::bind(&fd, &raw).map_err(|e| Error::os("bind", addr.object(), e))?;
    let file = addr.as_path().and_then(SocketFile::new);
    Ok((fd, file))
}

/// `listen(fd, SOMAXCONN)`; the kernel caps the backlog at `net.core.somaxconn`.
pub(crate) fn listen(fd: &OwnedFd, addr: &Addr) -> Result<()> {
    rustix::net::listen(fd, libc::SOMAXCONN).map_err(|e| Error::os("listen", addr.object(), e))
}

/// Unlinks `path` if it is a socket file (checked with `lstat`, so a symbolic link is never
/// followed, and is itself left alone); does nothing if nothing is there. Anything else at the
/// path is an `AddrInUse` error that says what is in the way, and is not touched.
fn remove_stale(path: &Path) -> Result<()> {
    const OP: &str = "bind_replacing";
    let object = || Object::Path(path.to_path_buf());
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
pub(crate) struct SocketFile {
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

    pub(crate) fn set_remove_on_drop(&mut self, remove: bool) {
        self.remove_on_drop = remove;
    }

    pub(crate) fn remove_on_drop(&self) -> bool {
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
