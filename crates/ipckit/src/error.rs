//! The one error type of the crate.
//!
//! Every failure names three things: the **operation** (`"shmget"`, `"attach"`, `"msgsnd"` …), the
//! **object** it was applied to (a key, an id, a name or a path) and the **cause** — the OS error, a
//! limit that was exceeded, an argument rejected before any system call, or shared memory that failed
//! validation. `Display` renders all three on one line, so a command-line tool can print it as is.
//! Because the OS error is part of that line, [`source`](std::error::Error::source) is `None`: a
//! reporter that walks the chain of sources (anyhow's `{:#}`, eyre) prints it once, not twice.
//! The OS error itself is [`Error::os_error`] (and [`Error::raw_os_error`], [`Error::kind`]):
//!
//! ```text
//! shmget System V shared memory key 0x0000abcd: No such file or directory (os error 2)
//! msgsnd System V message queue id 7: message of 9000 bytes exceeds msgmax (8192 bytes)
//! ```

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::key::Key;

/// The result type of every fallible ipckit function.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What an operation was applied to. Displayed as a noun phrase ("System V semaphore set id 3").
///
/// Names and paths are shared (`Arc`), so a handle keeps its object and cloning it into an error
/// allocates nothing: `WouldBlock` and `Timeout` on the hot path cost no allocation. Build one
/// with `.into()` from a `&str`, a `String`, a `&Path` or a `PathBuf`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Object {
    /// A System V shared-memory segment by key.
    ShmKey(Key),
    /// A System V shared-memory segment by id.
    ShmId(i32),
    /// A System V semaphore set by key.
    SemKey(Key),
    /// A System V semaphore set by id.
    SemId(i32),
    /// A System V message queue by key.
    MsgKey(Key),
    /// A System V message queue by id.
    MsgId(i32),
    /// A POSIX shared-memory object by name (`/name`).
    PosixShm(Arc<str>),
    /// A POSIX named semaphore by name.
    PosixSem(Arc<str>),
    /// A POSIX message queue by name.
    PosixMq(Arc<str>),
    /// A file-system path (mapped file, FIFO, socket, `ftok` path …).
    Path(Arc<Path>),
    /// Anything else, described in words ("pipe", "process 4242", "signal SIGUSR1" …).
    Other(Arc<str>),
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::ShmKey(k) => write!(f, "System V shared memory key {k}"),
            Object::ShmId(id) => write!(f, "System V shared memory id {id}"),
            Object::SemKey(k) => write!(f, "System V semaphore set key {k}"),
            Object::SemId(id) => write!(f, "System V semaphore set id {id}"),
            Object::MsgKey(k) => write!(f, "System V message queue key {k}"),
            Object::MsgId(id) => write!(f, "System V message queue id {id}"),
            Object::PosixShm(n) => write!(f, "POSIX shared memory {n}"),
            Object::PosixSem(n) => write!(f, "POSIX semaphore {n}"),
            Object::PosixMq(n) => write!(f, "POSIX message queue {n}"),
            Object::Path(p) => write!(f, "{}", p.display()),
            Object::Other(s) => f.write_str(s),
        }
    }
}

/// An ipckit error: the operation, the object and the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed; `os_error` is the OS error (errno).
    #[error("{op} {object}: {os_error}")]
    Os {
        /// The operation, such as `"shmget"`.
        op: &'static str,
        /// What it was applied to.
        object: Object,
        /// The OS error; shown by `Display`, so not a [`source`](std::error::Error::source)
        /// (see [`Error::os_error`]).
        os_error: io::Error,
    },
    /// An argument was rejected before any system call was made.
    #[error("{op} {object}: {reason}")]
    InvalidArgument {
        /// The operation, such as `"shmget"`.
        op: &'static str,
        /// What it was applied to.
        object: Object,
        /// Why the argument was rejected.
        reason: String,
    },
    /// A size exceeds a limit of the kernel or of the object; `limit_name` says which
    /// (`"msgmax"`, `"segment size"`, `"channel capacity"` …).
    #[error("{op} {object}: {what} of {len} bytes exceeds {limit_name} ({limit} bytes)")]
    TooLarge {
        /// The operation, such as `"shmget"`.
        op: &'static str,
        /// What it was applied to.
        object: Object,
        /// What was too large (`"message"`, `"segment"` …).
        what: &'static str,
        /// Its size in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
        /// The limit's name (`"msgmax"` …).
        limit_name: &'static str,
    },
    /// Memory shared with another process failed validation (bad magic, index out of bounds …).
    /// It was not used.
    #[error("{op} {object}: shared memory is corrupt: {detail}")]
    Corrupt {
        /// The operation, such as `"shmget"`.
        op: &'static str,
        /// What it was applied to.
        object: Object,
        /// What failed validation.
        detail: String,
    },
    /// A non-blocking operation could not proceed now (an empty channel, a full lane); try
    /// again later. [`kind`](Error::kind) is `WouldBlock`.
    #[error("{op} {object}: {reason}")]
    WouldBlock {
        /// The operation, such as `"try_send"`.
        op: &'static str,
        /// What it was applied to.
        object: Object,
        /// Why it would block (`"the channel is empty"` …).
        reason: &'static str,
    },
    /// A timed operation gave up. [`kind`](Error::kind) is `TimedOut`.
    #[error("{op} {object}: timed out after {timeout:?}")]
    Timeout {
        /// The operation, such as `"recv_timeout"`.
        op: &'static str,
        /// What it was applied to.
        object: Object,
        /// How long it waited.
        timeout: std::time::Duration,
    },
    /// The other side closed normally, so the operation can never succeed (sending with no
    /// consumer left). [`kind`](Error::kind) is `BrokenPipe`.
    #[error("{op} {object}: {reason}")]
    Closed {
        /// The operation, such as `"send"`.
        op: &'static str,
        /// What it was applied to.
        object: Object,
        /// Who closed (`"the consumer closed the channel"` …).
        reason: &'static str,
    },
    /// The process at the other end died (killed, crashed) without closing.
    /// [`kind`](Error::kind) is `ConnectionAborted`.
    #[error("{op} {object}: the {peer} (pid {pid}) died")]
    PeerDied {
        /// The operation, such as `"recv"`.
        op: &'static str,
        /// What it was applied to.
        object: Object,
        /// Which peer died (`"producer"`, `"consumer"`).
        peer: &'static str,
        /// Its process id, as it recorded it (for messages; it may be reused by now).
        pid: u32,
    },
}

impl Error {
    /// A failed system call, with the errno of the calling thread (`errno` is read now, so call
    /// this right after the failing call).
    pub(crate) fn last_os(op: &'static str, object: Object) -> Self {
        Error::Os {
            op,
            object,
            os_error: io::Error::last_os_error(),
        }
    }

    /// A failed system call with an explicit OS error.
    pub(crate) fn os(op: &'static str, object: Object, source: impl Into<io::Error>) -> Self {
        Error::Os {
            op,
            object,
            os_error: source.into(),
        }
    }

    /// An argument rejected before any system call.
    pub(crate) fn invalid(op: &'static str, object: Object, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            object,
            reason: reason.into(),
        }
    }

    /// Shared memory that failed validation.
    pub(crate) fn corrupt(op: &'static str, object: Object, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            op,
            object,
            detail: detail.into(),
        }
    }

    /// The operation that failed, such as `"shmget"`.
    pub fn op(&self) -> &'static str {
        match self {
            Error::Os { op, .. }
            | Error::InvalidArgument { op, .. }
            | Error::TooLarge { op, .. }
            | Error::Corrupt { op, .. }
            | Error::WouldBlock { op, .. }
            | Error::Timeout { op, .. }
            | Error::Closed { op, .. }
            | Error::PeerDied { op, .. } => op,
        }
    }

    /// The object the operation was applied to.
    pub fn object(&self) -> &Object {
        match self {
            Error::Os { object, .. }
            | Error::InvalidArgument { object, .. }
            | Error::TooLarge { object, .. }
            | Error::Corrupt { object, .. }
            | Error::WouldBlock { object, .. }
            | Error::Timeout { object, .. }
            | Error::Closed { object, .. }
            | Error::PeerDied { object, .. } => object,
        }
    }

    /// The OS error, when a system call failed. It is part of the `Display` text and not the
    /// [`source`](std::error::Error::source), so that a chain of errors shows it once.
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            Error::Os { os_error, .. } => Some(os_error),
            _ => None,
        }
    }

    /// The OS error number, when a system call failed.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os { os_error, .. } => os_error.raw_os_error(),
            _ => None,
        }
    }

    /// A coarse classification, as `std::io` gives it, so callers can match on
    /// `NotFound`, `AlreadyExists`, `PermissionDenied`, `WouldBlock`, `TimedOut` ….
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Os { os_error, .. } => os_error.kind(),
            Error::InvalidArgument { .. } | Error::TooLarge { .. } => io::ErrorKind::InvalidInput,
            Error::Corrupt { .. } => io::ErrorKind::InvalidData,
            Error::WouldBlock { .. } => io::ErrorKind::WouldBlock,
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::Closed { .. } => io::ErrorKind::BrokenPipe,
            Error::PeerDied { .. } => io::ErrorKind::ConnectionAborted,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        io::Error::new(e.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_operation_object_and_cause() {
        let e = Error::os(
            "shmget",
            Object::ShmKey(Key::new(0xabcd)),
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        let s = e.to_string();
        assert!(
            s.starts_with("shmget System V shared memory key 0x0000abcd: "),
            "{s}"
        );
        assert!(s.contains(&format!("os error {}", libc::ENOENT)), "{s}");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    /// What anyhow's `{:#}` and other reporters print: the error, then each `source()`, joined.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut line = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            line.push_str(": ");
            line.push_str(&c.to_string());
            cause = c.source();
        }
        line
    }

    #[test]
    fn a_reported_chain_shows_the_os_error_once() {
        let e = Error::os(
            "shmget",
            Object::ShmKey(Key::new(0xabcd)),
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        // The OS error's own text (under Miri, whose strerror differs, too).
        let os = io::Error::from_raw_os_error(libc::EINVAL).to_string();
        let line = chain(&e);
        assert_eq!(line.matches(&os).count(), 1, "{line}");
        // The same through io::Error, as `?` in a function returning io::Result makes it.
        let line = chain(&io::Error::from(e));
        assert_eq!(line.matches(&os).count(), 1, "{line}");
        assert!(line.starts_with("shmget System V shared memory key 0x0000abcd: "));
    }

    #[test]
    fn too_large_says_the_limit() {
        let e = Error::TooLarge {
            op: "msgsnd",
            object: Object::MsgId(7),
            what: "message",
            len: 9000,
            limit: 8192,
            limit_name: "msgmax",
        };
        assert_eq!(
            e.to_string(),
            "msgsnd System V message queue id 7: message of 9000 bytes exceeds msgmax (8192 bytes)"
        );
    }
}
