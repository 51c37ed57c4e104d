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

use std::borrow::Cow;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;

use crate::error::{Error, Object, Result};

/// `NAME_MAX`: the longest file name in `/dev/shm` and `/dev/mqueue`, in bytes.
pub(crate) const NAME_MAX: usize = 255;

/// Checks a POSIX IPC name before any system call, so that it cannot escape `/dev/shm` or
/// `/dev/mqueue`: exactly one leading slash and no other, something after it other than `.` and
/// `..`, no NUL byte, and at most [`NAME_MAX`] bytes after the slash (callers with a tighter limit
/// check it themselves). Errors are invalid-argument errors of `op` on `object`.
///
/// Names are file names, so any other byte is allowed, UTF-8 or not.
pub(crate) fn check_name(op: &'static str, object: Object, name: &OsStr) -> Result<()> {
    let reason = match name.as_bytes().strip_prefix(b"/") {
        None => "a name must start with a slash (\"/name\")".to_string(),
        Some(b"") => "\"/\" alone names nothing: put a name after the slash".to_string(),
        Some(rest) if rest.contains(&b'/') => {
            "a name has exactly one slash, the leading one (no directories)".to_string()
        }
        Some(b"." | b"..") => "\".\" and \"..\" are not names".to_string(),
        Some(rest) if rest.contains(&0) => "a name cannot contain a NUL byte".to_string(),
        Some(rest) if rest.len() > NAME_MAX => format!(
            "a name of {} bytes after the slash exceeds NAME_MAX ({NAME_MAX})",
            rest.len()
        ),
        Some(_) => return Ok(()),
    };
    Err(Error::invalid(op, object, reason))
}

/// [`check_name`], then the name as the C calls take it.
pub(crate) fn c_name(op: &'static str, object: Object, name: &OsStr) -> Result<CString> {
    check_name(op, object, name)?;
    // check_name refused a NUL byte.
    Ok(CString::new(name.as_bytes()).expect("a checked name has no NUL byte"))
}

/// A name as text: itself when it is UTF-8, else each byte that is not part of a UTF-8
/// character written `\xNN` (two lower-case hex digits), the rest as it is. Errors name objects
/// so, and `ipckit ls --json` shows such a name so (adding its bytes).
pub fn display_name(name: &OsStr) -> Cow<'_, str> {
    if let Some(utf8) = name.to_str() {
        return utf8.into();
    }
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_one_leading_slash_pass_and_others_are_refused() {
        let check =
            |name: &str| check_name("shm_open", Object::PosixShm(name.into()), OsStr::new(name));
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

    #[test]
    fn names_need_not_be_utf8_and_are_shown_with_escapes() {
        use std::os::unix::ffi::OsStrExt;
        let name = OsStr::from_bytes(b"/caf\xe9\n");
        assert!(check_name("shm_open", Object::PosixShm("x".into()), name).is_ok());
        assert_eq!(display_name(name), "/caf\\xe9\n");
        assert_eq!(display_name(OsStr::new("/caf\u{e9}")), "/caf\u{e9}");
        let bad = OsStr::from_bytes(b"/a\xff/b");
        assert!(check_name("shm_open", Object::PosixShm("x".into()), bad).is_err());
    }
}
