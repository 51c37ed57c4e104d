//! One System V object in full, as `ipcs -i ID` shows it: the line of `/proc/sysvipc/*` and what
//! only the object's `*ctl` calls tell — each semaphore's value, waiters and last pid, and a
//! queue's capacity (`msg_qbytes`), which `/proc/sysvipc/msg` does not show.
//!
//! The `*ctl` calls need read permission on the object; without it (or when the object is removed
//! meanwhile) those fields are `None` and the rest is still known. The values are read one call at
//! a time, so they are a recent view, not one instant: a busy set may change between two of them.
//!
//! # References
//! [ipcs(1)](https://man7.org/linux/man-pages/man1/ipcs.1.html),
//! [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html),
//! [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html)

use super::sysv::{msg_queues, sem_sets, shm_segments, MsgInfo, SemInfo, ShmInfo};
use crate::error::{Error, Object, Result};
use crate::sysv::msg::MsgQueue;
use crate::sysv::sem::SemSet;

/// One semaphore of a set: a row of `ipcs -s -i ID`. With the `serde` feature it serializes as
/// `{"value", "ncount", "zcount", "pid"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SemaphoreState {
    /// Its value (`semctl(GETALL)`).
    pub value: u16,
    /// Processes waiting for it to increase (`semctl(GETNCNT)`).
    pub ncount: usize,
    /// Processes waiting for it to become zero (`semctl(GETZCNT)`).
    pub zcount: usize,
    /// The last process that operated on it, 0 if none has (`semctl(GETPID)`).
    pub pid: u32,
}

/// A semaphore set in full.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SemDetail {
    /// Its line of `/proc/sysvipc/sem`.
    pub info: SemInfo,
    /// Each semaphore in order; `None` when they cannot be read (no read permission, or the set
    /// went away meanwhile).
    pub semaphores: Option<Vec<SemaphoreState>>,
}

/// A message queue in full.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MsgDetail {
    /// Its line of `/proc/sysvipc/msg`.
    pub info: MsgInfo,
    /// The most bytes of message text it holds (`msg_qbytes` of `msgctl(IPC_STAT)`); `None` when
    /// it cannot be read.
    pub qbytes: Option<u64>,
}

/// Each semaphore of set `id`: value, ncount, zcount and last pid, as `ipcs -s -i` lists them.
///
/// `semctl(GETALL)`, then `GETNCNT`, `GETZCNT` and `GETPID` for each semaphore. Errors are the
/// first failed call's (`PermissionDenied` without read permission, `InvalidInput`/`NotFound`
/// for a set that is gone).
pub fn semaphores(id: i32) -> Result<Vec<SemaphoreState>> {
    let set = SemSet::from_id(id);
    let values = set.get_all()?;
    values
        .into_iter()
        .enumerate()
        .map(|(num, value)| {
            // A set has at most SEMMSL (≤ 32000) semaphores, so `num` fits.
            let num = num as u16;
            Ok(SemaphoreState {
                value,
                ncount: set.ncnt(num)?,
                zcount: set.zcnt(num)?,
                pid: u32::try_from(set.last_pid(num)?).unwrap_or(0),
            })
        })
        .collect()
}

/// The capacity in bytes of queue `id` (`msg_qbytes`, from `msgctl(IPC_STAT)`).
pub fn msg_qbytes(id: i32) -> Result<u64> {
    Ok(MsgQueue::from_id(id).stat()?.qbytes as u64)
}

fn missing(op: &'static str, object: Object) -> Error {
    Error::invalid(op, object, "no such object in this IPC namespace")
}

/// Segment `id` as `ipcs -m -i` shows it: its line of `/proc/sysvipc/shm`.
pub fn shm_detail(id: i32) -> Result<ShmInfo> {
    shm_segments()?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| missing("look up", Object::ShmId(id)))
}

/// Semaphore set `id` as `ipcs -s -i` shows it: its line of `/proc/sysvipc/sem` and each
/// semaphore ([`semaphores`]).
pub fn sem_detail(id: i32) -> Result<SemDetail> {
    let info = sem_sets()?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| missing("look up", Object::SemId(id)))?;
    Ok(SemDetail {
        info,
        semaphores: semaphores(id).ok(),
    })
}

/// Message queue `id` as `ipcs -q -i` shows it: its line of `/proc/sysvipc/msg` and its
/// capacity ([`msg_qbytes`]).
pub fn msg_detail(id: i32) -> Result<MsgDetail> {
    let info = msg_queues()?
        .into_iter()
        .find(|q| q.id == id)
        .ok_or_else(|| missing("look up", Object::MsgId(id)))?;
    Ok(MsgDetail {
        info,
        qbytes: msg_qbytes(id).ok(),
    })
}

/// The command line of process `pid`, its arguments joined by spaces, as `lsipc` shows a
/// segment's creator (`COMMAND`); `None` when the process is gone, is a zombie or a kernel
/// thread, or its command line cannot be read. A PID the kernel has reused names the new
/// process, so this is the creator's only while the creator lives.
pub fn command_line(pid: u32) -> Option<String> {
    if pid == 0 {
        return None;
    }
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = bytes
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!args.is_empty()).then(|| args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;

    #[test]
    fn a_sets_semaphores_have_their_values_and_last_pids() {
        let set = SemSet::options()
            .nsems(3)
            .exclusive(true)
            .open(Key::PRIVATE)
            .unwrap()
            .into_owned();
        set.set(1, 7).unwrap();
        set.post(2).unwrap();
        let states = semaphores(set.id()).unwrap();
        let me = std::process::id();
        assert_eq!(
            states.iter().map(|s| (s.value, s.pid)).collect::<Vec<_>>(),
            [(0, 0), (7, me), (1, me)]
        );
        assert!(states.iter().all(|s| s.ncount == 0 && s.zcount == 0));
        let detail = sem_detail(set.id()).unwrap();
        assert_eq!(detail.info.nsems, 3);
        assert_eq!(detail.semaphores.as_deref(), Some(&states[..]));
    }

    #[test]
    fn a_queues_capacity_is_its_qbytes() {
        let q = MsgQueue::options()
            .exclusive(true)
            .open(Key::PRIVATE)
            .unwrap()
            .into_owned();
        let detail = msg_detail(q.id()).unwrap();
        assert_eq!(detail.qbytes, Some(q.stat().unwrap().qbytes as u64));
        assert!(detail.qbytes.unwrap() > 0);
    }

    #[test]
    fn a_command_line_is_its_arguments_joined() {
        let mine = command_line(std::process::id()).unwrap();
        let exe = std::env::args().next().unwrap();
        assert!(mine.starts_with(&exe), "{mine:?}");
        assert_eq!(command_line(0), None);
        assert_eq!(command_line(u32::MAX), None);
    }

    #[test]
    fn an_id_that_names_nothing_is_an_error_naming_it() {
        let e = shm_detail(i32::MAX).unwrap_err();
        assert!(e.to_string().contains("id 2147483647"), "{e}");
        assert!(sem_detail(i32::MAX).is_err());
        assert!(msg_detail(i32::MAX).is_err());
    }
}
