//! Finding IPC objects that were left behind: objects that no live process uses and, by every
//! sign the kernel keeps, none will.
//!
//! System V and POSIX objects outlive the processes that create them, so a program that crashes
//! before removing its objects leaks them until reboot. This module removes the trap of cleaning
//! up by hand from `ipcs` output: [`find_orphans`] applies fixed rules to a [`Snapshot`] of the
//! listings and a [`Liveness`] oracle, and says for each object found why it is an orphan;
//! [`remove_orphan`] checks an orphan again right before removing it. The rules are pure
//! functions of their inputs, so they are tested with made-up listings and PIDs.
//!
//! # The rules
//! - **System V shared memory**: nothing attached (`nattch` 0), its creator (`cpid`) and last
//!   user (`lpid`, 0 if none) are not alive, and it was neither attached, detached nor changed
//!   (`atime`, `dtime`, `ctime`) within [`Policy::older_than`] — so a segment made by `ipcmk` or
//!   `ipckit mk` for a program that has yet to attach it is not taken away.
//! - **System V semaphore sets**: the kernel records no creator PID for them, so the PIDs of the
//!   last operation on each semaphore (`GETPID`, also set by `SETVAL` / `SETALL`; 0 if none) stand
//!   in for it: none is alive, and neither an operation (`otime`) nor a change (`ctime`) happened
//!   within [`Policy::older_than`]. A set whose PIDs cannot be read is never an orphan.
//! - **System V message queues**: likewise no creator PID: the last sender and receiver
//!   (`lspid`, `lrpid`) are not alive, and nothing was sent, received or changed (`stime`,
//!   `rtime`, `ctime`) within [`Policy::older_than`].
//! - **POSIX shared memory and semaphores**: no live process maps the object or holds it open,
//!   and its file was not modified or changed (`st_mtime`, `st_ctime`) within
//!   [`Policy::older_than`].
//! - **POSIX message queues**: no live process holds it open or waits for its notification, and
//!   nothing was sent or received, nor was it created, within [`Policy::older_than`]: its file's
//!   `st_mtime`, which the kernel sets only in `mq_open` (creating), `mq_send` and `mq_receive`.
//!   Its `st_ctime` is no measure: the `mqueue` file system sets it on every `read` of the
//!   queue's file (which is how `QSIZE` and `NOTIFY_PID` are listed) and on `mq_getattr` and
//!   `mq_notify`, so any listing would make every queue look fresh. A queue whose file this user
//!   cannot read (another user's 0600 queue) is never an orphan: who waits for it is unknown.
//!
//!
//! `ipckit dump` must attach a segment to read it, which makes it the segment's last user: it
//! records the last user it replaced ([`record_shm_read`](super::record_shm_read)), and a segment
//! whose last user is a recorded reader is kept while the user before the read is alive. (The
//! read's attach and detach times stay: a dump counts as a use for `older_than`.)
//!
//! # Limitations
//! Liveness is "`/proc/<pid>` exists and is not a zombie" ([`ProcLiveness`]): a PID reused by an unrelated process
//! makes a dead creator look alive (the object is then kept, the safe side), and a creator in
//! another PID namespace is judged by the PID it has there. Without privilege the maps and
//! descriptors of other users' processes cannot be read, so their use of an object is not seen;
//! their objects cannot be removed by an unprivileged user either. Between the last check and the
//! removal a process may still start using an object; the window is one system call.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::posix::{
    display_name, posix_mqueues, posix_semaphores, posix_shm_objects, posix_users, unlink_posix,
    FileId, PosixKind, PosixMqs, PosixSemInfo, PosixShmInfo, Users,
};
use super::reads::{shm_reads, ShmRead};
use super::sysv::{msg_queues, sem_sets, shm_segments, MsgInfo, SemInfo, ShmInfo};
use crate::error::{Object, Result};
use crate::key::Key;
use crate::sysv::msg::MsgQueue;
use crate::sysv::sem::SemSet;
use crate::sysv::shm::Segment;

/// Tells whether a process is alive.
pub trait Liveness {
    /// Whether the process `pid` exists now. PID 0 (none) is never alive.
    fn is_alive(&self, pid: u32) -> bool;
}

/// A process is alive while `/proc/<pid>/stat` exists and its state is not `Z` (zombie: it has
/// exited, and only its parent has not collected its status yet — in a container whose PID 1
/// never reaps, for ever) or `X` (dead). A process whose state cannot be read otherwise counts
/// as alive, the safe side.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcLiveness;

impl Liveness for ProcLiveness {
    fn is_alive(&self, pid: u32) -> bool {
        if pid == 0 {
            return false;
        }
        match std::fs::read(Path::new("/proc").join(pid.to_string()).join("stat")) {
            Ok(stat) => !matches!(process_state(&stat), Some(b'Z' | b'X')),
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        }
    }
}

/// The state letter of a `/proc/<pid>/stat` line: the field after the command name, which is
/// in parentheses and may itself hold spaces and parentheses (so the last `)` ends it).
fn process_state(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat.get(close + 1..)?
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

impl<F: Fn(u32) -> bool> Liveness for F {
    fn is_alive(&self, pid: u32) -> bool {
        pid != 0 && self(pid)
    }
}

/// When an object counts as untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The time to measure ages from.
    pub now: SystemTime,
    /// An object used or changed more recently than this is never an orphan (every kind).
    pub older_than: Duration,
}

impl Policy {
    /// The policy for objects untouched for `older_than`, measured from now.
    pub fn new(older_than: Duration) -> Policy {
        Policy {
            now: SystemTime::now(),
            older_than,
        }
    }

    /// How long ago the latest of `times` was, if it is at least `older_than` ago; `None` for a
    /// more recent time or one in the future. No time at all is treated as infinitely old.
    fn untouched_for(&self, times: &[Option<SystemTime>]) -> Option<Option<Duration>> {
        let Some(latest) = times.iter().flatten().max() else {
            return Some(None);
        };
        let age = self.now.duration_since(*latest).ok()?;
        (age >= self.older_than).then_some(Some(age))
    }
}

/// The kinds of object the rules cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A System V shared-memory segment.
    SysvShm,
    /// A System V semaphore set.
    SysvSem,
    /// A System V message queue.
    SysvMsg,
    /// A POSIX shared-memory object.
    PosixShm,
    /// A POSIX named semaphore.
    PosixSem,
    /// A POSIX message queue.
    PosixMq,
}

impl Kind {
    /// Every kind, in the order orphans are reported.
    pub const ALL: [Kind; 6] = [
        Kind::SysvShm,
        Kind::SysvSem,
        Kind::SysvMsg,
        Kind::PosixShm,
        Kind::PosixSem,
        Kind::PosixMq,
    ];

    /// The kind's name in `ipckit ls --json`: `sysv-shm`, `posix-mq` ….
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SysvShm => "sysv-shm",
            Kind::SysvSem => "sysv-sem",
            Kind::SysvMsg => "sysv-msg",
            Kind::PosixShm => "posix-shm",
            Kind::PosixSem => "posix-sem",
            Kind::PosixMq => "posix-mq",
        }
    }
}

/// The listings the rules look at, read at one moment ([`Snapshot::read`]) or made up for a test.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// System V segments.
    pub shm: Vec<ShmInfo>,
    /// Recorded reads of segments by ipckit ([`shm_reads`]): a segment whose
    /// last user is such a reader is kept while the last user before the read is alive.
    pub shm_reads: Vec<ShmRead>,
    /// System V semaphore sets.
    pub sem: Vec<SemInfo>,
    /// semid → the PID of the last operation on each semaphore of the set (`GETPID`); a set
    /// missing here could not be read and is never an orphan.
    pub sem_pids: BTreeMap<i32, Vec<u32>>,
    /// System V message queues.
    pub msg: Vec<MsgInfo>,
    /// POSIX shared-memory objects.
    pub posix_shm: Vec<PosixShmInfo>,
    /// POSIX named semaphores.
    pub posix_sem: Vec<PosixSemInfo>,
    /// POSIX message queues, or the note that `/dev/mqueue` is not mounted.
    pub posix_mq: Option<PosixMqs>,
    /// The processes using each POSIX object's file.
    pub users: BTreeMap<FileId, Users>,
}

impl Snapshot {
    /// Reads the listings of `kinds` (the others stay empty): the `/proc/sysvipc` tables,
    /// `semctl(GETPID)` of each semaphore, `/dev/shm`, `/dev/mqueue`, and one scan of the
    /// processes for the POSIX objects' users.
    pub fn read(kinds: &[Kind]) -> Result<Snapshot> {
        let has = |k| kinds.contains(&k);
        let mut s = Snapshot::default();
        if has(Kind::SysvShm) {
            s.shm = shm_segments()?;
            s.shm_reads = shm_reads();
        }
        if has(Kind::SysvSem) {
            s.sem = sem_sets()?;
            s.sem_pids = s
                .sem
                .iter()
                .filter_map(|set| Some((set.id, last_pids(set)?)))
                .collect();
        }
        if has(Kind::SysvMsg) {
            s.msg = msg_queues()?;
        }
        if has(Kind::PosixShm) {
            s.posix_shm = posix_shm_objects()?;
        }
        if has(Kind::PosixSem) {
            s.posix_sem = posix_semaphores()?;
        }
        if has(Kind::PosixMq) {
            s.posix_mq = Some(posix_mqueues()?);
        }
        let queues = s.posix_mq.as_ref().map_or(&[][..], PosixMqs::queues);
        if !(s.posix_shm.is_empty() && s.posix_sem.is_empty() && queues.is_empty()) {
            s.users = posix_users(&s.posix_shm, &s.posix_sem, queues)?;
        }
        Ok(s)
    }

    fn users(&self, file: FileId) -> Users {
        self.users.get(&file).cloned().unwrap_or_default()
    }
}

/// `semctl(GETPID)` of every semaphore of a set; `None` if any cannot be read.
fn last_pids(set: &SemInfo) -> Option<Vec<u32>> {
    let handle = SemSet::from_id(set.id);
    (0..set.nsems)
        .map(|n| {
            let num = u16::try_from(n).ok()?;
            handle.last_pid(num).ok().map(|p| p.max(0) as u32)
        })
        .collect()
}

/// An object found left behind, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Orphan {
    /// Its kind.
    pub kind: Kind,
    /// The object: an id for System V ([`Object::ShmId`] …), a name for POSIX
    /// ([`Object::PosixShm`] …).
    pub object: Object,
    /// The System V key it was created with.
    pub key: Option<Key>,
    /// Why it is an orphan, in words.
    pub reason: String,
    /// What must not have changed when it is removed.
    stamp: Stamp,
}

/// The identity of an orphan beyond its id or name: a System V id reused by a new object, or a
/// POSIX name unlinked and created again, is another object.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stamp {
    Sysv { key: Key, ctime: Option<SystemTime> },
    Posix(FileId, OsString),
}

impl Orphan {
    /// The System V id.
    pub fn id(&self) -> Option<i32> {
        match self.object {
            Object::ShmId(id) | Object::SemId(id) | Object::MsgId(id) => Some(id),
            _ => None,
        }
    }

    /// The POSIX name (`/NAME`) as text: [`display_name`] of
    /// [`os_name`](Self::os_name).
    pub fn name(&self) -> Option<&str> {
        match &self.object {
            Object::PosixShm(n) | Object::PosixSem(n) | Object::PosixMq(n) => Some(n),
            _ => None,
        }
    }

    /// The POSIX name (`/NAME`) as the file system has it: bytes that need not be UTF-8.
    pub fn os_name(&self) -> Option<&OsStr> {
        match &self.stamp {
            Stamp::Posix(_, name) => Some(name),
            Stamp::Sysv { .. } => None,
        }
    }

    fn sysv(
        kind: Kind,
        object: Object,
        key: Key,
        ctime: Option<SystemTime>,
        reason: String,
    ) -> Orphan {
        Orphan {
            kind,
            object,
            key: Some(key),
            reason,
            stamp: Stamp::Sysv { key, ctime },
        }
    }

    fn posix(kind: Kind, name: &OsStr, file: FileId, reason: String) -> Orphan {
        let shown: std::sync::Arc<str> = display_name(name).into();
        let object = match kind {
            Kind::PosixShm => Object::PosixShm(shown),
            Kind::PosixSem => Object::PosixSem(shown),
            _ => Object::PosixMq(shown),
        };
        Orphan {
            kind,
            object,
            key: None,
            reason,
            stamp: Stamp::Posix(file, name.to_owned()),
        }
    }
}

/// Every orphan of the snapshot, by the rules of the [module documentation](self), in the order
/// of [`Kind::ALL`] and then of the listings.
pub fn find_orphans(snap: &Snapshot, policy: &Policy, live: &dyn Liveness) -> Vec<Orphan> {
    let mut out = Vec::new();
    for s in &snap.shm {
        // The last attach/detach was ipckit's own read (`dump`): the user before it counts.
        let read = snap
            .shm_reads
            .iter()
            .find(|r| r.explains(s.id, s.key, s.ctime, s.lpid));
        if read.is_some_and(|r| live.is_alive(r.lpid_before)) {
            continue;
        }
        if let Some(mut reason) = sysv_shm_rule(s, policy, live) {
            if let Some(r) = read {
                reason += &format!(
                    " (pid {} was `ipckit dump`; the last user before it, {}, is gone too)",
                    r.reader,
                    match r.lpid_before {
                        0 => "none".to_owned(),
                        p => format!("pid {p}"),
                    }
                );
            }
            out.push(Orphan::sysv(
                Kind::SysvShm,
                Object::ShmId(s.id),
                s.key,
                s.ctime,
                reason,
            ));
        }
    }
    for s in &snap.sem {
        let pids = snap.sem_pids.get(&s.id).map(Vec::as_slice);
        if let Some(reason) = sysv_sem_rule(s, pids, policy, live) {
            out.push(Orphan::sysv(
                Kind::SysvSem,
                Object::SemId(s.id),
                s.key,
                s.ctime,
                reason,
            ));
        }
    }
    for q in &snap.msg {
        if let Some(reason) = sysv_msg_rule(q, policy, live) {
            out.push(Orphan::sysv(
                Kind::SysvMsg,
                Object::MsgId(q.id),
                q.key,
                q.ctime,
                reason,
            ));
        }
    }
    for s in &snap.posix_shm {
        let times = [Some(s.mtime), Some(s.ctime)];
        if let Some(reason) = posix_rule(&snap.users(s.file), None, &times, policy, live) {
            out.push(Orphan::posix(Kind::PosixShm, &s.name, s.file, reason));
        }
    }
    for s in &snap.posix_sem {
        let times = [Some(s.mtime), Some(s.ctime)];
        if let Some(reason) = posix_rule(&snap.users(s.file), None, &times, policy, live) {
            out.push(Orphan::posix(Kind::PosixSem, &s.name, s.file, reason));
        }
    }
    for q in snap.posix_mq.as_ref().map_or(&[][..], PosixMqs::queues) {
        // A queue whose file could not be read hides its notification PID: keep it.
        if q.used_bytes.is_none() {
            continue;
        }
        // Its ctime is set by every read of its file (this scan's own): only mtime, which send,
        // receive and creation alone set, tells its age.
        let times = [Some(q.mtime)];
        let users = snap.users(q.file);
        if let Some(reason) = posix_rule(&users, q.notify_pid, &times, policy, live) {
            out.push(Orphan::posix(Kind::PosixMq, &q.name, q.file, reason));
        }
    }
    out
}

/// "pid 12", "pids 12, 13".
fn pid_list(pids: &[u32]) -> String {
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    match list.len() {
        1 => format!("pid {}", list[0]),
        _ => format!("pids {}", list.join(", ")),
    }
}

/// "; untouched for 3h5m (at least 10m)", or "; never used" when no time was recorded.
fn age_clause(age: Option<Duration>, policy: &Policy, what: &str) -> String {
    match age {
        Some(age) => format!(
            "; {what} for {} (at least {})",
            format_duration(age),
            format_duration(policy.older_than)
        ),
        None => "; no time recorded".to_owned(),
    }
}

/// A duration in the units `gc --older-than` takes: `45s`, `12m`, `3h5m`, `2d4h`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let pairs = if days > 0 {
        [(days, "d"), (hours, "h")]
    } else if hours > 0 {
        [(hours, "h"), (mins, "m")]
    } else if mins > 0 {
        [(mins, "m"), (secs, "s")]
    } else {
        return format!("{secs}s");
    };
    let mut out = format!("{}{}", pairs[0].0, pairs[0].1);
    if pairs[1].0 > 0 {
        out += &format!("{}{}", pairs[1].0, pairs[1].1);
    }
    out
}

/// The rule for a System V segment; the reason if it is an orphan.
pub fn sysv_shm_rule(s: &ShmInfo, policy: &Policy, live: &dyn Liveness) -> Option<String> {
    if s.nattch != 0 || live.is_alive(s.cpid) || live.is_alive(s.lpid) {
        return None;
    }
    let age = policy.untouched_for(&[s.atime, s.dtime, s.ctime])?;
    let who = if s.lpid == 0 {
        format!("never attached; its creator (pid {}) has exited", s.cpid)
    } else if s.lpid == s.cpid {
        format!(
            "nothing attached; its creator and last user (pid {}) has exited",
            s.cpid
        )
    } else {
        format!(
            "nothing attached; its creator (pid {}) and last user (pid {}) have exited",
            s.cpid, s.lpid
        )
    };
    Some(who + &age_clause(age, policy, "untouched"))
}

/// The rule for a System V semaphore set whose semaphores were last operated on by `last_pids`
/// (`None`: unknown); the reason if it is an orphan.
pub fn sysv_sem_rule(
    s: &SemInfo,
    last_pids: Option<&[u32]>,
    policy: &Policy,
    live: &dyn Liveness,
) -> Option<String> {
    let pids = last_pids?;
    if pids.iter().any(|&p| live.is_alive(p)) {
        return None;
    }
    let age = policy.untouched_for(&[s.otime, s.ctime])?;
    let mut seen: Vec<u32> = pids.iter().copied().filter(|&p| p != 0).collect();
    seen.sort_unstable();
    seen.dedup();
    let who = if seen.is_empty() {
        "no process has operated on it".to_owned()
    } else {
        format!(
            "the processes that last operated on it ({}) have exited",
            pid_list(&seen)
        )
    };
    Some(who + &age_clause(age, policy, "untouched"))
}

/// The rule for a System V message queue; the reason if it is an orphan.
pub fn sysv_msg_rule(q: &MsgInfo, policy: &Policy, live: &dyn Liveness) -> Option<String> {
    if live.is_alive(q.lspid) || live.is_alive(q.lrpid) {
        return None;
    }
    let age = policy.untouched_for(&[q.stime, q.rtime, q.ctime])?;
    let who = match (q.lspid, q.lrpid) {
        (0, 0) => "nothing was ever sent or received".to_owned(),
        (s, 0) => format!("its last sender (pid {s}) has exited, nothing was ever received"),
        (0, r) => format!("its last receiver (pid {r}) has exited"),
        (s, r) if s == r => format!("its last sender and receiver (pid {s}) has exited"),
        (s, r) => format!("its last sender (pid {s}) and receiver (pid {r}) have exited"),
    };
    let messages = match q.qnum {
        0 => String::new(),
        n => format!(" ({n} message(s) still queued)"),
    };
    Some(who + &messages + &age_clause(age, policy, "untouched"))
}

/// The rule for a POSIX object with these users, process to notify (queues) and file times; the
/// reason if it is an orphan.
pub fn posix_rule(
    users: &Users,
    notify_pid: Option<u32>,
    times: &[Option<SystemTime>],
    policy: &Policy,
    live: &dyn Liveness,
) -> Option<String> {
    let users_alive = users.pids().into_iter().any(|p| live.is_alive(p));
    if users_alive || notify_pid.is_some_and(|p| live.is_alive(p)) {
        return None;
    }
    let age = policy.untouched_for(times)?;
    Some("no process maps it or holds it open".to_owned() + &age_clause(age, policy, "unchanged"))
}

/// What became of an orphan handed to [`remove_orphan`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Removal {
    /// It was still an orphan, and is removed.
    Removed,
    /// It is gone already (or its id or name now belongs to another object, which is left
    /// alone).
    Gone,
    /// It is no longer an orphan (someone uses it, or it changed), so it was left alone.
    InUse,
}

/// Checks `orphan` again against a fresh [`Snapshot`] of its kind, with `older_than` measured
/// from now, and removes it if it is still the same object (same key and change time, or same
/// file) and still an orphan: `shmctl`/`semctl`/`msgctl(IPC_RMID)` by id, or `shm_unlink`,
/// `sem_unlink`, `mq_unlink` by name. An object that vanishes in between is [`Removal::Gone`].
pub fn remove_orphan(
    orphan: &Orphan,
    older_than: Duration,
    live: &dyn Liveness,
) -> Result<Removal> {
    let snap = Snapshot::read(&[orphan.kind])?;
    let policy = Policy::new(older_than);
    let again = find_orphans(&snap, &policy, live);
    let still = again
        .iter()
        .any(|o| o.object == orphan.object && o.stamp == orphan.stamp);
    if !still {
        let present = match (&orphan.object, &orphan.stamp) {
            (Object::ShmId(id), Stamp::Sysv { key, ctime }) => snap
                .shm
                .iter()
                .any(|s| s.id == *id && s.key == *key && s.ctime == *ctime),
            (Object::SemId(id), Stamp::Sysv { key, ctime }) => snap
                .sem
                .iter()
                .any(|s| s.id == *id && s.key == *key && s.ctime == *ctime),
            (Object::MsgId(id), Stamp::Sysv { key, ctime }) => snap
                .msg
                .iter()
                .any(|q| q.id == *id && q.key == *key && q.ctime == *ctime),
            (_, Stamp::Posix(file, _)) => {
                let queues = snap.posix_mq.as_ref().map_or(&[][..], PosixMqs::queues);
                snap.posix_shm.iter().any(|s| s.file == *file)
                    || snap.posix_sem.iter().any(|s| s.file == *file)
                    || queues.iter().any(|q| q.file == *file)
            }
            _ => false,
        };
        return Ok(if present {
            Removal::InUse
        } else {
            Removal::Gone
        });
    }
    let posix = |kind| match orphan.os_name() {
        Some(name) => unlink_posix(kind, name),
        None => Ok(()),
    };
    let result = match &orphan.object {
        Object::ShmId(id) => Segment::from_id(*id).remove(),
        Object::SemId(id) => SemSet::from_id(*id).remove(),
        Object::MsgId(id) => MsgQueue::from_id(*id).remove(),
        Object::PosixShm(_) => posix(PosixKind::Shm),
        Object::PosixSem(_) => posix(PosixKind::Sem),
        Object::PosixMq(_) => posix(PosixKind::Mq),
        _ => return Ok(Removal::Gone),
    };
    if let (Ok(()), Object::ShmId(id)) = (&result, &orphan.object) {
        super::reads::forget_shm_reads(*id);
    }
    match result {
        Ok(()) => Ok(Removal::Removed),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::EINVAL | libc::EIDRM)
            ) =>
        {
            Ok(Removal::Gone)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::inspect::{parse_msg, parse_sem, parse_shm, PosixMqInfo};

    const NOW: u64 = 1_700_000_000;
    const MIN: u64 = 60;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn policy(older_than_secs: u64) -> Policy {
        Policy {
            now: at(NOW),
            older_than: Duration::from_secs(older_than_secs),
        }
    }

    /// PIDs 100..200 are alive, others are not.
    fn live(pid: u32) -> bool {
        (100..200).contains(&pid)
    }

    /// A segment created an hour ago and attached and detached 20 and 15 minutes ago.
    fn shm(cpid: u32, lpid: u32, nattch: u64) -> ShmInfo {
        shm_at(
            cpid,
            lpid,
            nattch,
            [NOW - 20 * MIN, NOW - 15 * MIN, NOW - 60 * MIN],
        )
    }

    fn shm_at(cpid: u32, lpid: u32, nattch: u64, times: [u64; 3]) -> ShmInfo {
        let [atime, dtime, ctime] = times;
        let text = format!(
            "key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap\n\
             0 7 600 4096 {cpid} {lpid} {nattch} 0 0 0 0 {atime} {dtime} {ctime} 0 0\n"
        );
        parse_shm(&text, Path::new("shm")).unwrap().remove(0)
    }

    fn sem(otime: u64, ctime: u64) -> SemInfo {
        let text = format!(
            "key semid perms nsems uid gid cuid cgid otime ctime\n\
             4660 3 600 2 0 0 0 0 {otime} {ctime}\n"
        );
        parse_sem(&text, Path::new("sem")).unwrap().remove(0)
    }

    fn msg(lspid: u32, lrpid: u32, qnum: u64, times: [u64; 3]) -> MsgInfo {
        let [stime, rtime, ctime] = times;
        let text = format!(
            "key msqid perms cbytes qnum lspid lrpid uid gid cuid cgid stime rtime ctime\n\
             1 5 600 10 {qnum} {lspid} {lrpid} 0 0 0 0 {stime} {rtime} {ctime}\n"
        );
        parse_msg(&text, Path::new("msg")).unwrap().remove(0)
    }

    fn users(mapped: &[u32], open: &[u32]) -> Users {
        Users {
            mapped: mapped.to_vec(),
            open: open.to_vec(),
        }
    }

    #[test]
    fn segment_is_an_orphan_when_unattached_and_creator_and_last_user_are_dead() {
        let p = policy(10 * MIN);
        let reason = sysv_shm_rule(&shm(42, 43, 0), &p, &live).unwrap();
        assert_eq!(
            reason,
            "nothing attached; its creator (pid 42) and last user (pid 43) have exited; \
             untouched for 15m (at least 10m)"
        );
        let never = shm_at(42, 0, 0, [0, 0, NOW - 60 * MIN]);
        assert!(sysv_shm_rule(&never, &p, &live)
            .unwrap()
            .starts_with("never attached"));
        assert!(sysv_shm_rule(&shm(42, 42, 0), &p, &live)
            .unwrap()
            .contains("(pid 42) has exited"));
    }

    #[test]
    fn segment_with_a_live_creator_user_or_attachment_is_kept() {
        let p = policy(10 * MIN);
        assert_eq!(
            sysv_shm_rule(&shm(150, 43, 0), &p, &live),
            None,
            "creator alive"
        );
        assert_eq!(
            sysv_shm_rule(&shm(42, 150, 0), &p, &live),
            None,
            "last user alive"
        );
        assert_eq!(sysv_shm_rule(&shm(42, 43, 1), &p, &live), None, "attached");
    }

    #[test]
    fn segment_used_or_made_within_older_than_is_kept() {
        let p = policy(10 * MIN);
        // Just made (as `ipcmk -M` does) for a program that has not attached it yet.
        let fresh = shm_at(42, 0, 0, [0, 0, NOW - 5]);
        assert_eq!(sysv_shm_rule(&fresh, &p, &live), None, "just created");
        assert!(sysv_shm_rule(&fresh, &policy(0), &live).is_some());
        let attached = shm_at(42, 43, 0, [NOW - MIN, NOW - 20 * MIN, NOW - 60 * MIN]);
        assert_eq!(sysv_shm_rule(&attached, &p, &live), None, "attached lately");
        let detached = shm_at(42, 43, 0, [NOW - 20 * MIN, NOW - MIN, NOW - 60 * MIN]);
        assert_eq!(sysv_shm_rule(&detached, &p, &live), None, "detached lately");
        let day = policy(24 * 3600);
        assert_eq!(sysv_shm_rule(&shm(42, 43, 0), &day, &live), None);
    }

    #[test]
    fn zombies_and_dead_processes_are_not_alive() {
        let stat = |s: &str| process_state(s.as_bytes());
        assert_eq!(stat("42 (sleep) S 1 42 42 0"), Some(b'S'));
        assert_eq!(
            stat("42 (a) b) (c) Z 1 42"),
            Some(b'Z'),
            "parentheses in the name"
        );
        assert_eq!(stat("42 (x)\tX 1"), Some(b'X'));
        assert_eq!(stat("42 (truncated"), None);
        assert_eq!(stat(""), None);
    }

    #[test]
    fn semaphore_set_needs_dead_last_users_and_age() {
        let old = sem(NOW - 20 * MIN, NOW - 30 * MIN);
        let r = sysv_sem_rule(&old, Some(&[42, 0, 42]), &policy(10 * MIN), &live).unwrap();
        assert_eq!(
            r,
            "the processes that last operated on it (pid 42) have exited; untouched for 20m (at least 10m)"
        );
        let r = sysv_sem_rule(&old, Some(&[0, 0]), &policy(10 * MIN), &live).unwrap();
        assert!(r.starts_with("no process has operated on it"), "{r}");
        assert_eq!(
            sysv_sem_rule(&old, Some(&[42, 150]), &policy(10 * MIN), &live),
            None,
            "one last user alive"
        );
        assert_eq!(
            sysv_sem_rule(&old, None, &policy(10 * MIN), &live),
            None,
            "pids unknown"
        );
        let recent = sem(NOW - 5 * MIN, NOW - 30 * MIN);
        assert_eq!(
            sysv_sem_rule(&recent, Some(&[42]), &policy(10 * MIN), &live),
            None
        );
        let changed = sem(0, NOW - MIN);
        assert_eq!(
            sysv_sem_rule(&changed, Some(&[42]), &policy(10 * MIN), &live),
            None
        );
        assert!(sysv_sem_rule(&changed, Some(&[42]), &policy(0), &live).is_some());
    }

    #[test]
    fn message_queue_needs_dead_sender_and_receiver_and_age() {
        let old = [NOW - 3 * 3600, NOW - 2 * 3600 - 5 * MIN, NOW - 4 * 3600];
        let r = sysv_msg_rule(&msg(42, 43, 2, old), &policy(10 * MIN), &live).unwrap();
        assert_eq!(
            r,
            "its last sender (pid 42) and receiver (pid 43) have exited (2 message(s) still queued); \
             untouched for 2h5m (at least 10m)"
        );
        let r = sysv_msg_rule(&msg(0, 0, 0, [0, 0, NOW - 3600]), &policy(10 * MIN), &live).unwrap();
        assert!(
            r.starts_with("nothing was ever sent or received; untouched for 1h"),
            "{r}"
        );
        assert_eq!(
            sysv_msg_rule(&msg(150, 43, 0, old), &policy(10 * MIN), &live),
            None
        );
        assert_eq!(
            sysv_msg_rule(&msg(42, 150, 0, old), &policy(10 * MIN), &live),
            None
        );
        let received_lately = [NOW - 3600, NOW - 30, NOW - 3600];
        assert_eq!(
            sysv_msg_rule(&msg(42, 43, 0, received_lately), &policy(10 * MIN), &live),
            None
        );
    }

    #[test]
    fn posix_object_needs_no_live_user_and_age() {
        let old = [Some(at(NOW - 11 * MIN)), Some(at(NOW - 20 * MIN))];
        let p = policy(10 * MIN);
        let r = posix_rule(&Users::default(), None, &old, &p, &live).unwrap();
        assert_eq!(
            r,
            "no process maps it or holds it open; unchanged for 11m (at least 10m)"
        );
        // Users that have exited since the scan do not count.
        assert!(posix_rule(&users(&[42], &[43]), None, &old, &p, &live).is_some());
        assert_eq!(
            posix_rule(&users(&[150], &[]), None, &old, &p, &live),
            None,
            "mapped"
        );
        assert_eq!(
            posix_rule(&users(&[], &[150]), None, &old, &p, &live),
            None,
            "open"
        );
        assert_eq!(
            posix_rule(&Users::default(), Some(150), &old, &p, &live),
            None,
            "notify"
        );
        assert!(posix_rule(&Users::default(), Some(42), &old, &p, &live).is_some());
        let recent = [Some(at(NOW - 11 * MIN)), Some(at(NOW - 2 * MIN))];
        assert_eq!(
            posix_rule(&Users::default(), None, &recent, &p, &live),
            None
        );
        let future = [Some(at(NOW + 60)), None];
        assert_eq!(
            posix_rule(&Users::default(), None, &future, &policy(0), &live),
            None
        );
        assert!(posix_rule(&Users::default(), None, &recent, &policy(0), &live).is_some());
    }

    #[test]
    fn find_orphans_applies_each_rule_and_names_the_objects() {
        let file = |ino| FileId { dev: 5, ino };
        let posix_shm = |name: &str, ino| PosixShmInfo {
            name: name.into(),
            size: 1,
            uid: 0,
            gid: 0,
            mode: 0o600,
            mtime: at(NOW - 3600),
            ctime: at(NOW - 3600),
            file: file(ino),
        };
        let queue = |name: &str, used_bytes, notify_pid, ino| PosixMqInfo {
            name: name.into(),
            used_bytes,
            messages: used_bytes.map(|_| 0),
            max_messages: used_bytes.map(|_| 10),
            message_size: used_bytes.map(|_| 8192),
            notify_pid,
            uid: 0,
            gid: 0,
            mode: 0o600,
            mtime: at(NOW - 3600),
            ctime: at(NOW - 3600),
            file: file(ino),
        };
        let snap = Snapshot {
            shm: vec![shm(42, 43, 0), shm(150, 43, 0)],
            shm_reads: Vec::new(),
            sem: vec![sem(NOW - 3600, NOW - 3600)],
            sem_pids: BTreeMap::from([(3, vec![42, 44])]),
            msg: vec![msg(42, 43, 0, [0, 0, NOW - 3600])],
            posix_shm: vec![posix_shm("/free", 1), posix_shm("/held", 2)],
            posix_sem: vec![PosixSemInfo {
                name: "/lock".into(),
                value: Some(1),
                uid: 0,
                gid: 0,
                mode: 0o600,
                mtime: at(NOW - 3600),
                ctime: at(NOW - 3600),
                file: file(3),
            }],
            posix_mq: Some(PosixMqs::Listed(vec![
                queue("/jobs", Some(0), Some(150), 4),
                // Read a moment ago (ctime), but nothing sent or received for an hour (mtime).
                PosixMqInfo {
                    ctime: at(NOW - 1),
                    ..queue("/idle", Some(0), None, 5)
                },
                // Its file could not be read: who waits for it is unknown.
                queue("/unreadable", None, None, 6),
            ])),
            users: BTreeMap::from([(file(2), users(&[150], &[])), (file(3), users(&[42], &[]))]),
        };
        let found = find_orphans(&snap, &policy(10 * MIN), &live);
        let objects: Vec<(Kind, &Object)> = found.iter().map(|o| (o.kind, &o.object)).collect();
        assert_eq!(
            objects,
            [
                (Kind::SysvShm, &Object::ShmId(7)),
                (Kind::SysvSem, &Object::SemId(3)),
                (Kind::SysvMsg, &Object::MsgId(5)),
                (Kind::PosixShm, &Object::PosixShm("/free".into())),
                (Kind::PosixSem, &Object::PosixSem("/lock".into())),
                (Kind::PosixMq, &Object::PosixMq("/idle".into())),
            ]
        );
        assert_eq!(found[0].id(), Some(7));
        assert_eq!(found[0].key, Some(Key::PRIVATE));
        assert_eq!(found[3].name(), Some("/free"));
        assert_eq!(found[3].key, None);
        assert!(
            found[1].reason.contains("pids 42, 44"),
            "{}",
            found[1].reason
        );
        // Nothing is an orphan when every PID is alive and everything is recent.
        let all_live = |_pid: u32| true;
        assert!(find_orphans(&snap, &policy(2 * 3600), &all_live).is_empty());
    }

    #[test]
    fn a_segment_last_used_by_a_recorded_dump_is_judged_by_the_user_before_it() {
        let s = shm(42, 43, 0);
        let read = |reader, lpid_before| ShmRead {
            id: s.id,
            key: s.key,
            ctime: s.ctime.map(crate::inspect::reads::secs),
            reader,
            lpid_before,
        };
        let orphans = |reads: Vec<ShmRead>| {
            let snap = Snapshot {
                shm: vec![s.clone()],
                shm_reads: reads,
                ..Snapshot::default()
            };
            find_orphans(&snap, &policy(10 * MIN), &live)
        };
        assert_eq!(orphans(vec![]).len(), 1, "without a record: an orphan");
        assert!(
            orphans(vec![read(43, 150)]).is_empty(),
            "the dump (43) replaced a live user (150)"
        );
        let found = orphans(vec![read(43, 44)]);
        assert_eq!(found.len(), 1, "the user before the dump is gone too");
        assert!(
            found[0].reason.ends_with(
                "(pid 43 was `ipckit dump`; the last user before it, pid 44, is gone too)"
            ),
            "{}",
            found[0].reason
        );
        // A record of a reader that is no longer the last user says nothing.
        assert_eq!(orphans(vec![read(77, 150)]).len(), 1);
        // Nor one of another segment that reuses the id.
        let other = ShmRead {
            ctime: Some(1),
            ..read(43, 150)
        };
        assert_eq!(orphans(vec![other]).len(), 1);
    }

    #[test]
    fn durations_read_like_the_flag() {
        let d = |s| format_duration(Duration::from_secs(s));
        assert_eq!(d(0), "0s");
        assert_eq!(d(45), "45s");
        assert_eq!(d(600), "10m");
        assert_eq!(d(605), "10m5s");
        assert_eq!(d(7200), "2h");
        assert_eq!(d(7500), "2h5m");
        assert_eq!(d(86_400 * 2 + 3600 * 4 + 7), "2d4h");
    }

    #[test]
    fn liveness_of_this_process_and_pid_zero() {
        assert!(ProcLiveness.is_alive(std::process::id()));
        assert!(!ProcLiveness.is_alive(0));
        assert!(!(|_pid: u32| true).is_alive(0));
    }
}
