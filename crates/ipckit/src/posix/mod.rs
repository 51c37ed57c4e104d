//! POSIX IPC: shared memory, named and unnamed semaphores, message queues.
//!
//! POSIX objects are named by a path-like string (`/name`, one leading slash and no other) and live in
//! `/dev/shm` and `/dev/mqueue` until unlinked. Every name is validated before any system call, so a
//! name cannot escape those directories.
//!
//! # References
//! [shm_overview(7)](https://man7.org/linux/man-pages/man7/shm_overview.7.html),
//! [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html),
//! [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)

pub mod mq;
pub mod sem;
pub mod shm;

use crate::error::{Error, Object, Result};

/// `NAME_MAX`: the longest file name in `/dev/shm` and `/dev/mqueue`, in bytes.
pub(crate) const NAME_MAX: usize = 255;

/// Checks a POSIX IPC name before any system call, so that it cannot escape `/dev/shm` or
/// `/dev/mqueue`: exactly one leading slash and no other, something after it other than `.` and
/// `..`, no NUL byte, and at most [`NAME_MAX`] bytes after the slash (callers with a tighter limit
/// check it themselves). Errors are invalid-argument errors of `op` on `object`.
pub(crate) fn check_name(op: &'static str, object: Object, name: &str) -> Result<()> {
    let reason = match name.strip_prefix('/') {
        None => "a name must start with a slash (\"/name\")".to_string(),
        Some("") => "\"/\" alone names nothing: put a name after the slash".to_string(),
        Some(rest) if rest.contains('/') => {
            "a name has exactly one slash, the leading one (no directories)".to_string()
        }
        Some("." | "..") => "\".\" and \"..\" are not names".to_string(),
        Some(rest) if rest.contains('\0') => "a name cannot contain a NUL byte".to_string(),
        Some(rest) if rest.len() > NAME_MAX => format!(
            "a name of {} bytes after the slash exceeds NAME_MAX ({NAME_MAX})",
            rest.len()
        ),
        Some(_) => return Ok(()),
    };
    Err(Error::invalid(op, object, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_one_leading_slash_pass_and_others_are_refused() {
        let check = |name: &str| check_name("shm_open", Object::PosixShm(name.into()), name);
        for good in ["/a", "/ipckit-test-1", "/...", "/.a", "/a.b", "/a b"] {
            assert!(check(good).is_ok(), "{good}");
        }
        assert!(check(&format!("/{}", "x".repeat(NAME_MAX))).is_ok());
        let long = format!("/{}", "x".repeat(NAME_MAX + 1));
        let bad = [
            "", "a", "/", "//", "//a", "/a/", "/a/b", "../x", "/..", "/.", "/a\0b", &long,
        ];
        for name in bad {
            let err = check(name).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{name:?}");
            assert_eq!(err.object(), &Object::PosixShm(name.into()));
        }
    }
}
