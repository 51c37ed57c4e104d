//! Unix socket addresses: a file-system path or a Linux abstract name.

use std::fmt;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::SocketAddr;
use std::path::{Path, PathBuf};

use rustix::net::SocketAddrUnix;

use crate::error::{Error, Object, Result};

/// The longest path or abstract name a Unix socket address holds, in bytes: `sun_path` has 108
/// bytes, and a path needs one for its terminating NUL, an abstract name one for its leading NUL.
pub const MAX_ADDR_LEN: usize = 107;

/// Where a Unix domain socket is bound: a path in the file system or a Linux abstract name.
///
/// Displayed as the path, or as `@name` for an abstract name (bytes outside printable ASCII
/// escaped), the way `ss -x` shows them.
///
/// ```
/// use ipckit::unix::Addr;
/// assert_eq!(Addr::abstract_name("ipckit-demo").to_string(), "@ipckit-demo");
/// assert_eq!(Addr::path("/run/demo.sock").to_string(), "/run/demo.sock");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    /// A path in the file system. Binding creates a socket file there, which stays until it is
    /// unlinked (the bound types of this module unlink it on drop); connecting needs write
    /// permission on it.
    Path(PathBuf),
    /// A name in the abstract namespace (Linux only): the bytes after the leading NUL of
    /// `sun_path`, without it. No file is created; the name disappears when the last socket bound
    /// to it is closed. Any process in the same network namespace can connect: file permissions do
    /// not apply.
    Abstract(Vec<u8>),
}

impl Addr {
    /// The address of a socket file at `path`.
    pub fn path(path: impl Into<PathBuf>) -> Addr {
        Addr::Path(path.into())
    }

    /// The abstract address `name` (without a leading NUL: it is added when the address is used).
    pub fn abstract_name(name: impl AsRef<[u8]>) -> Addr {
        Addr::Abstract(name.as_ref().to_vec())
    }

    /// The path, for a path address.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Addr::Path(p) => Some(p),
            Addr::Abstract(_) => None,
        }
    }

    /// The address std reports (`local_addr`, `peer_addr`, `recv_from`); `None` for an unnamed
    /// socket (one that was never bound, or a `socketpair` end).
    pub fn from_std(addr: &SocketAddr) -> Option<Addr> {
        if let Some(path) = addr.as_pathname() {
            Some(Addr::Path(path.to_path_buf()))
        } else {
            addr.as_abstract_name().map(Addr::abstract_name)
        }
    }

    /// This address as std's [`SocketAddr`], for std calls that take one
    /// (`UnixDatagram::send_to_addr`, `UnixStream::connect_addr` …). Fails like
    /// [`check`](Self::check).
    pub fn to_std(&self) -> Result<SocketAddr> {
        const OP: &str = "sockaddr_un";
        self.check(OP)?;
        let made = match self {
            Addr::Path(p) => SocketAddr::from_pathname(p),
            Addr::Abstract(name) => SocketAddr::from_abstract_name(name),
        };
        made.map_err(|e| Error::invalid(OP, self.object(), e.to_string()))
    }

    /// Checks that the address fits in a `sockaddr_un`: a path must be non-empty, without NUL
    /// bytes and at most [`MAX_ADDR_LEN`] bytes long; an abstract name at most [`MAX_ADDR_LEN`]
    /// bytes (it may contain any bytes, NUL included). The error is an invalid argument of `op`.
    pub fn check(&self, op: &'static str) -> Result<()> {
        let reason = match self {
            Addr::Path(p) => {
                let bytes = p.as_os_str().as_bytes();
                if bytes.is_empty() {
                    Some("an empty path names no socket".to_string())
                } else if bytes.contains(&0) {
                    Some("a socket path cannot contain a NUL byte".to_string())
                } else if bytes.len() > MAX_ADDR_LEN {
                    Some(format!(
                        "a socket path of {} bytes exceeds the {MAX_ADDR_LEN} bytes of sun_path",
                        bytes.len()
                    ))
                } else {
                    None
                }
            }
            Addr::Abstract(name) if name.len() > MAX_ADDR_LEN => Some(format!(
                "an abstract name of {} bytes exceeds the {MAX_ADDR_LEN} bytes of sun_path",
                name.len()
            )),
            Addr::Abstract(_) => None,
        };
        match reason {
            Some(reason) => Err(Error::invalid(op, self.object(), reason)),
            None => Ok(()),
        }
    }

    /// The address in rustix's form, checked first.
    pub(crate) fn to_rustix(&self, op: &'static str) -> Result<SocketAddrUnix> {
        self.check(op)?;
        let made = match self {
            Addr::Path(p) => SocketAddrUnix::new(p.as_path()),
            Addr::Abstract(name) => SocketAddrUnix::new_abstract_name(name),
        };
        made.map_err(|e| Error::os(op, self.object(), e))
    }

    /// The address a kernel call reported; `None` for an unnamed socket.
    pub(crate) fn from_rustix(addr: &SocketAddrUnix) -> Option<Addr> {
        if let Some(bytes) = addr.path_bytes() {
            Some(Addr::Path(PathBuf::from(std::ffi::OsStr::from_bytes(
                bytes,
            ))))
        } else {
            addr.abstract_name().map(Addr::abstract_name)
        }
    }

    /// The object errors name: the path, or the abstract name in words.
    pub(crate) fn object(&self) -> Object {
        match self {
            Addr::Path(p) => Object::Path(p.as_path().into()),
            Addr::Abstract(_) => Object::Other(format!("abstract Unix socket {self}").into()),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Path(p) => write!(f, "{}", p.display()),
            Addr::Abstract(name) => write!(f, "@{}", name.escape_ascii()),
        }
    }
}

impl From<PathBuf> for Addr {
    fn from(path: PathBuf) -> Addr {
        Addr::Path(path)
    }
}

impl From<&Path> for Addr {
    fn from(path: &Path) -> Addr {
        Addr::Path(path.to_path_buf())
    }
}
