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
use crate::mode::{check_mode, DEFAULT_MODE};

pub mod msg;
pub mod sem;
pub mod shm;

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

/// The flags every create-or-open builder of System V objects shares ([`msg::MsgOptions`],
/// [`sem::SemOptions`], [`shm::ShmOptions`]): permission bits, `IPC_CREAT`, `IPC_EXCL`.
#[derive(Debug, Clone)]
pub(crate) struct GetOptions {
    pub(crate) mode: u32,
    pub(crate) create: bool,
    pub(crate) exclusive: bool,
}

impl Default for GetOptions {
    fn default() -> Self {
        GetOptions {
            mode: DEFAULT_MODE,
            create: false,
            exclusive: false,
        }
    }
}

impl GetOptions {
    /// Whether the call may create the object (`create` or `exclusive`).
    pub(crate) fn creating(&self) -> bool {
        self.create || self.exclusive
    }

    /// The `flags` argument of `msgget`/`semget`/`shmget`: `IPC_CREAT | mode` when creating, plus
    /// `IPC_EXCL` when exclusive. Rejects, before any system call, a mode outside 0o777 and a
    /// [`Key::PRIVATE`] that is only opened (it names no existing object; `what` says which kind,
    /// as in "queue").
    pub(crate) fn flags(
        &self,
        op: &'static str,
        object: &Object,
        key: Key,
        what: &str,
    ) -> Result<libc::c_int> {
        let mode = check_mode(op, object, self.mode)?;
        if key.is_private() && !self.creating() {
            return Err(Error::invalid(
                op,
                object.clone(),
                format!("IPC_PRIVATE names no existing {what}: create one, or open it by id"),
            ));
        }
        let mut flags = 0;
        if self.creating() {
            flags |= libc::IPC_CREAT | mode;
        }
        if self.exclusive {
            flags |= libc::IPC_EXCL;
        }
        Ok(flags)
    }
}

/// The `mode`, `create` and `exclusive` setters of a create-or-open builder that keeps its
/// [`GetOptions`] in a field named `get`. Each setter takes the doc comment written before its
/// name, so every builder documents them in its own words.
macro_rules! get_option_setters {
    (
        $(#[$mode_doc:meta])* mode;
        $(#[$create_doc:meta])* create;
        $(#[$exclusive_doc:meta])* exclusive;
    ) => {
        $(#[$mode_doc])*
        pub fn mode(&mut self, mode: u32) -> &mut Self {
            self.get.mode = mode;
            self
        }

        $(#[$create_doc])*
        pub fn create(&mut self, create: bool) -> &mut Self {
            self.get.create = create;
            self
        }

        $(#[$exclusive_doc])*
        pub fn exclusive(&mut self, exclusive: bool) -> &mut Self {
            self.get.exclusive = exclusive;
            self
        }
    };
}
pub(crate) use get_option_setters;

/// The result of a `*get` or `*ctl` call: `rc` itself, or for a negative `rc` the error of `op` on
/// `object` with the thread's `errno`, so call this right after the call.
pub(crate) fn check_rc(op: &'static str, object: Object, rc: libc::c_int) -> Result<libc::c_int> {
    if rc < 0 {
        return Err(Error::last_os(op, object));
    }
    Ok(rc)
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
    fn zero_time_is_never() {
        assert_eq!(time_from_raw(0), None);
        assert_eq!(
            time_from_raw(10),
            Some(UNIX_EPOCH + Duration::from_secs(10))
        );
    }
}
