//! User and group names through the C library's name service switch (NSS), as `ipcs` shows them.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};
use std::mem::MaybeUninit;
use std::sync::{Mutex, PoisonError};

/// The first buffer for an entry's strings; an entry that needs more (`ERANGE`) gets a buffer
/// twice as large, up to [`MAX_BUFFER`].
const FIRST_BUFFER: usize = 1024;
/// No passwd or group entry is allowed a larger buffer (a group with tens of thousands of members
/// fits in it); an id whose entry does not is shown as its number.
const MAX_BUFFER: usize = 1 << 20;

/// User and group names by id, looked up through NSS (`getpwuid_r`, `getgrgid_r`), as `ipcs` and
/// `ls -l` do: `/etc/passwd` and `/etc/group`, but also LDAP, sssd, systemd's dynamic users or
/// whatever `/etc/nsswitch.conf` names.
///
/// Each id is looked up once, when it is first asked for, and remembered. An id without an entry,
/// or whose lookup fails, is shown as its number.
///
/// # References
/// [getpwuid_r(3)](https://man7.org/linux/man-pages/man3/getpwuid_r.3.html),
/// [getgrgid_r(3)](https://man7.org/linux/man-pages/man3/getgrgid_r.3.html),
/// [nsswitch.conf(5)](https://man7.org/linux/man-pages/man5/nsswitch.conf.5.html)
#[derive(Debug, Default)]
pub struct Names {
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
}

impl Names {
    /// Names with nothing looked up yet.
    pub fn load() -> Names {
        Names::default()
    }

    /// The name of user `uid`, or the number as text.
    pub fn user(&self, uid: u32) -> String {
        cached(&self.users, uid, user_name)
    }

    /// The name of group `gid`, or the number as text.
    pub fn group(&self, gid: u32) -> String {
        cached(&self.groups, gid, group_name)
    }
}

impl Clone for Names {
    fn clone(&self) -> Names {
        let copy = |map: &Mutex<HashMap<u32, String>>| {
            Mutex::new(map.lock().unwrap_or_else(PoisonError::into_inner).clone())
        };
        Names {
            users: copy(&self.users),
            groups: copy(&self.groups),
        }
    }
}

/// `id`'s name from `map`, or else from `lookup` (the number when it has none), remembered.
fn cached(map: &Mutex<HashMap<u32, String>>, id: u32, lookup: fn(u32) -> Option<String>) -> String {
    // A panic while the lock was held cannot have left a half-made entry: use the map as it is.
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    map.entry(id)
        .or_insert_with(|| lookup(id).unwrap_or_else(|| id.to_string()))
        .clone()
}

/// The outcome of one `get*_r` call with one buffer.
enum Lookup {
    /// The entry's name.
    Found(String),
    /// No entry for the id.
    Missing,
    /// The call failed with this errno value (`ERANGE`: the buffer is too small).
    Failed(c_int),
}

/// The name of user `uid` (`None` when it has none), with a buffer as large as it needs.
fn user_name(uid: u32) -> Option<String> {
    with_growing_buffer(FIRST_BUFFER, |buf| passwd_name(uid, buf))
}

/// The name of group `gid` (`None` when it has none), with a buffer as large as it needs.
fn group_name(gid: u32) -> Option<String> {
    with_growing_buffer(FIRST_BUFFER, |buf| group_entry_name(gid, buf))
}

/// `getpwuid_r(uid, &pwd, buf, buflen, &result)` — the name in user `uid`'s entry, its strings
/// kept in `buf`.
fn passwd_name(uid: u32, buf: &mut [c_char]) -> Lookup {
    let mut entry = MaybeUninit::<libc::passwd>::uninit();
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: `entry` and `result` are valid for writes, and `buf` for `buf.len()` bytes; they all
    // outlive the call, which writes the entry's strings into `buf` only.
    let err = unsafe {
        libc::getpwuid_r(
            uid,
            entry.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    // SAFETY: on success with an entry, `result` points to `entry`, which the call filled in, and
    // `pw_name` is null or points to a NUL-terminated string in `buf`, still alive.
    unsafe { outcome(err, result, |pw| (*pw).pw_name) }
}

/// `getgrgid_r(gid, &grp, buf, buflen, &result)` — the name in group `gid`'s entry, its strings
/// kept in `buf`.
fn group_entry_name(gid: u32, buf: &mut [c_char]) -> Lookup {
    let mut entry = MaybeUninit::<libc::group>::uninit();
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `passwd_name`.
    let err = unsafe {
        libc::getgrgid_r(
            gid,
            entry.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    // SAFETY: as in `passwd_name`, for `gr_name`.
    unsafe { outcome(err, result, |gr| (*gr).gr_name) }
}

/// What a `get*_r` call that returned `err` and set `result` found.
///
/// # Safety
/// When `err` is 0 and `result` is not null, `result` must point to an entry the call filled in,
/// and `name` must return its name field: null, or a NUL-terminated string that is still alive.
unsafe fn outcome<T>(
    err: c_int,
    result: *mut T,
    name: impl FnOnce(*mut T) -> *mut c_char,
) -> Lookup {
    if err != 0 {
        return Lookup::Failed(err);
    }
    if result.is_null() {
        return Lookup::Missing;
    }
    let name = name(result);
    if name.is_null() {
        return Lookup::Missing;
    }
    // SAFETY: the caller promises a NUL-terminated string that is alive.
    let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
    if name.is_empty() {
        Lookup::Missing
    } else {
        Lookup::Found(name.into_owned())
    }
}

/// Calls `lookup` with a buffer of `size` bytes, and again with twice as many while it fails
/// with `ERANGE` (the entry's strings do not fit) and the buffer is not yet [`MAX_BUFFER`];
/// retries `EINTR`. Any other failure, or an entry too large, gives `None`.
fn with_growing_buffer(
    mut size: usize,
    mut lookup: impl FnMut(&mut [c_char]) -> Lookup,
) -> Option<String> {
    loop {
        let mut buf: Vec<c_char> = vec![0; size];
        match lookup(&mut buf) {
            Lookup::Found(name) => return Some(name),
            Lookup::Missing => return None,
            Lookup::Failed(libc::ERANGE) if size < MAX_BUFFER => size = (size * 2).min(MAX_BUFFER),
            Lookup::Failed(libc::EINTR) => {}
            Lookup::Failed(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "calls getpwuid_r, which Miri lacks")]
    fn root_by_name_and_an_unknown_id_by_number() {
        let names = Names::load();
        assert_eq!(names.user(0), "root");
        assert_eq!(names.group(0), "root");
        // No passwd or group database names an id this large.
        assert_eq!(names.user(3_999_999_999), "3999999999");
        assert_eq!(names.group(3_999_999_999), "3999999999");
        // Remembered, and so in a clone.
        assert_eq!(names.clone().user(0), "root");
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls getpwuid_r, which Miri lacks")]
    fn an_entry_larger_than_the_first_buffer_is_found_with_a_larger_one() {
        // A byte cannot hold root's entry: glibc answers ERANGE until the buffer is large enough.
        let mut sizes = Vec::new();
        let name = with_growing_buffer(1, |buf| {
            sizes.push(buf.len());
            passwd_name(0, buf)
        });
        assert_eq!(name.as_deref(), Some("root"));
        assert!(sizes.len() > 1 && sizes[0] == 1, "{sizes:?}");
        assert!(sizes.windows(2).all(|w| w[1] == 2 * w[0]), "{sizes:?}");
    }

    #[test]
    fn erange_doubles_the_buffer_up_to_the_limit_and_other_errors_give_up() {
        let mut sizes = Vec::new();
        let found = with_growing_buffer(256, |buf| {
            sizes.push(buf.len());
            if buf.len() < 4096 {
                Lookup::Failed(libc::ERANGE)
            } else {
                Lookup::Found("alice".to_owned())
            }
        });
        assert_eq!(found.as_deref(), Some("alice"));
        assert_eq!(sizes, [256, 512, 1024, 2048, 4096]);

        let mut calls = 0;
        let too_large = with_growing_buffer(MAX_BUFFER / 2, |_| {
            calls += 1;
            Lookup::Failed(libc::ERANGE)
        });
        assert_eq!((too_large, calls), (None, 2));

        let mut calls = 0;
        let interrupted = with_growing_buffer(16, |_| {
            calls += 1;
            if calls == 1 {
                Lookup::Failed(libc::EINTR)
            } else {
                Lookup::Missing
            }
        });
        assert_eq!((interrupted, calls), (None, 2));
        assert_eq!(with_growing_buffer(16, |_| Lookup::Failed(libc::EIO)), None);
    }
}
