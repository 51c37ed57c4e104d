//! The error of a measurement: an ipckit operation that failed, or something of the bench's own
//! (a system call ipckit does not wrap, a peer that broke the protocol, a results file that does
//! not parse). Each names the operation and the object, like [`ipckit::Error`].

use std::io;
use std::time::Duration;

use ipckit::Object;

/// The result type of the bench's fallible functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a measurement.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An ipckit operation failed (a transport, a mapping).
    #[error(transparent)]
    Ipc(#[from] ipckit::Error),
    /// A system call or file operation of the bench's own failed; `source` is the OS error.
    #[error("{op} {object}")]
    Os {
        /// The operation, such as `"sched_setaffinity"`.
        op: &'static str,
        /// What it was applied to.
        object: Object,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An argument, a message or a file was not what the bench expects.
    #[error("{op} {object}: {reason}")]
    Invalid {
        /// The operation, such as `"bench peer"`.
        op: &'static str,
        /// What it was applied to.
        object: Object,
        /// What was wrong.
        reason: String,
    },
    /// The run was stopped ([`Stop::stop`](crate::Stop::stop)) before it finished.
    #[error("bench: stopped before the run finished")]
    Stopped,
    /// The peer process did not answer in time.
    #[error("{op} {object}: no answer within {timeout:?}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// What it was applied to.
        object: Object,
        /// How long it waited.
        timeout: Duration,
    },
}

impl Error {
    pub(crate) fn os(op: &'static str, object: Object, source: impl Into<io::Error>) -> Error {
        Error::Os {
            op,
            object,
            source: source.into(),
        }
    }

    pub(crate) fn invalid(op: &'static str, object: Object, reason: impl Into<String>) -> Error {
        Error::Invalid {
            op,
            object,
            reason: reason.into(),
        }
    }
}

/// The error and its causes on one line, `: `-separated, a cause whose text already ends the line
/// left out (for a failed cell's reason in the report).
pub(crate) fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_names_the_os_error_once() {
        let e = Error::os(
            "open",
            Object::Other("the page".into()),
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        let line = one_line(&e);
        assert!(line.starts_with("open the page: "), "{line}");
        assert_eq!(line.matches("os error").count(), 1, "{line}");
    }
}
