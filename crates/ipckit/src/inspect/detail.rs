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

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// The command line of the process that created an object at `created` (its ctime) with PID
/// `cpid`, as `lsipc` shows a segment's creator (`COMMAND`): [`command_line`], unless the process
/// now under that PID started after `created` — then the creator is gone and its PID reused, and
/// this is `None` rather than another program's command line.
pub fn creator_command_line(cpid: u32, created: Option<SystemTime>) -> Option<String> {
    let command = command_line(cpid)?;
    if let (Some(created), Some(started)) = (created, process_start(cpid)) {
        // The start time is known to 1/CLK_TCK and btime to the second: allow two seconds.
        if started > created + Duration::from_secs(2) {
            return None;
        }
    }
    Some(command)
}

/// When process `pid` started: `btime` of /proc/stat plus field 22 (`starttime`, clock ticks
/// after boot) of /proc/PID/stat.
fn process_start(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf takes a constant and touches no memory of ours.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&n| n > 0)?;
    let since_boot = Duration::from_millis(ticks.checked_mul(1000)? / per_second);
    Some(UNIX_EPOCH + Duration::from_secs(boot) + since_boot)
}

/// The command line of process `pid`, its arguments joined by spaces; `None` when the process
/// is gone, is a zombie or a kernel thread, or its command line cannot be read. A PID the kernel
/// has reused names the new process: see [`creator_command_line`].
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
    #[cfg_attr(miri, ignore = "calls semget, which Miri lacks")]
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
    #[cfg_attr(miri, ignore = "calls msgget, which Miri lacks")]
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
    #[cfg_attr(
        miri,
        ignore = "reads /proc/self, which is not Miri's interpreted program"
    )]
    fn a_command_line_is_its_arguments_joined() {
        let mine = command_line(std::process::id()).unwrap();
        let exe = std::env::args().next().unwrap();
        assert!(mine.starts_with(&exe), "{mine:?}");
        assert_eq!(command_line(0), None);
        assert_eq!(command_line(u32::MAX), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls sysconf(_SC_CLK_TCK), which Miri lacks")]
    fn a_creator_that_started_after_the_object_is_not_its_creator() {
        let me = std::process::id();
        let started = process_start(me).unwrap();
        let now = SystemTime::now();
        assert!(
            started <= now + Duration::from_secs(2),
            "{started:?} > {now:?}"
        );
        assert!(creator_command_line(me, Some(now)).is_some());
        assert!(creator_command_line(me, None).is_some());
        // An object made long before this process started was made by another process.
        let long_ago = started - Duration::from_secs(3600);
        assert_eq!(creator_command_line(me, Some(long_ago)), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc/sysvipc, which Miri's isolation hides")]
    fn an_id_that_names_nothing_is_an_error_naming_it() {
        let e = shm_detail(i32::MAX).unwrap_err();
        assert!(e.to_string().contains("id 2147483647"), "{e}");
        assert!(sem_detail(i32::MAX).is_err());
        assert!(msg_detail(i32::MAX).is_err());
    }
}
