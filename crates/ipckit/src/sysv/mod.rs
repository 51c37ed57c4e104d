//! System V IPC: shared memory, semaphore sets and message queues.
//!
//! System V objects are named by a [`Key`] and identified by an id; they belong to the kernel, not to
//! a process, so they outlive their creator until someone removes them (`IPC_RMID`, or `ipckit rm`).
//! The handles here are plain ids and hold no kernel resource; the RAII types that do (attachments,
//! owning handles that remove on drop) say so.
//!
//! # References
//! [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Object, Result};
use crate::key::Key;

pub mod msg;
pub mod sem;
pub mod shm;

/// The default permission bits of objects ipckit creates: read and write for the owner only.
pub const DEFAULT_MODE: u32 = 0o600;

/// The ownership and permissions of a System V object (`struct ipc_perm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    /// The key the object was created with ([`Key::PRIVATE`] for private objects).
    pub key: Key,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Creator's user id.
    pub cuid: u32,
    /// Creator's group id.
    pub cgid: u32,
    /// Mode: the low 9 bits are the permissions; shared memory adds `SHM_DEST` (0o1000) and
    /// `SHM_LOCKED` (0o2000).
    pub mode: u32,
}

impl Perm {
    /// The permission bits alone (`mode & 0o777`).
    pub fn permissions(&self) -> u32 {
        self.mode & 0o777
    }

    pub(crate) fn from_raw(p: &libc::ipc_perm) -> Perm {
        Perm {
            key: Key::new(p.__key),
            uid: p.uid,
            gid: p.gid,
            cuid: p.cuid,
            cgid: p.cgid,
            mode: u32::from(p.mode),
        }
    }
}

/// Checks a permission mode given by a caller: only the 9 permission bits are allowed.
pub(crate) fn check_mode(op: &'static str, object: &Object, mode: u32) -> Result<libc::c_int> {
    if mode & !0o777 != 0 {
        return Err(Error::invalid(
            op,
            object.clone(),
            format!("mode {mode:#o} has bits outside 0777"),
        ));
    }
    Ok(mode as libc::c_int)
}

/// A kernel timestamp in seconds since the epoch; 0 means "never" and becomes `None`.
pub(crate) fn time_from_raw(t: libc::time_t) -> Option<SystemTime> {
    if t <= 0 {
        None
    } else {
        Some(UNIX_EPOCH + Duration::from_secs(t as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_outside_permission_bits_is_rejected() {
        let obj = Object::ShmId(1);
        assert_eq!(check_mode("shmget", &obj, 0o640).unwrap(), 0o640);
        assert!(check_mode("shmget", &obj, 0o1777).is_err());
        assert!(check_mode("shmget", &obj, 0o4000).is_err());
    }

    #[test]
    fn zero_time_is_never() {
        assert_eq!(time_from_raw(0), None);
        assert_eq!(
            time_from_raw(10),
            Some(UNIX_EPOCH + Duration::from_secs(10))
        );
    }
}
