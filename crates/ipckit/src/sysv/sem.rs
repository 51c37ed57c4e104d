//! System V semaphore sets: counters in the kernel that unrelated processes decrement (wait) and
//! increment (post), several at once and atomically.
//!
//! A set holds `nsems` semaphores, each a non-negative value of at most [`SEMVMX`]. [`SemSet::op`]
//! applies a list of [`SemOp`]s all together or not at all, sleeping until it can; the helpers
//! ([`SemSet::wait`], [`SemSet::post`] …) cover the single-semaphore case. Interrupted calls
//! (`EINTR`) are retried, with the remaining time recomputed for timed waits.
//!
//! # The trap: a holder that dies without `SEM_UNDO`
//! The kernel does not know who "holds" a semaphore. A process that takes one (`-1`) and then crashes
//! or is killed before giving it back leaves it taken for ever, and everyone else waits for ever.
//! With `SEM_UNDO` the kernel records each adjustment and reverses it when the process exits, however
//! it exits. Use [`SemSet::wait_undo`] / [`SemSet::post_undo`] (or [`SemOp::undo`]) whenever a
//! semaphore guards a critical section; plain [`SemSet::wait`] / [`SemSet::post`] are for counting
//! events handed from one process to another, where the taker is not expected to give back.
//!
//! Sets belong to the kernel and outlive their creator: remove them ([`SemSet::remove`]), or hold
//! an [`OwnedSemSet`] that removes its set when dropped. Removing a set wakes every waiter with
//! `EIDRM`.
//!
//! Which of ipckit's three semaphores to pick, and why: see [the crate documentation](crate#which-semaphore).
//!
//! # References
//! [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html),
//! [semop(2)](https://man7.org/linux/man-pages/man2/semop.2.html),
//! [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html),
//! [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)

use std::io;
use std::ops::{BitOr, Deref};
use std::time::{Duration, Instant, SystemTime};

use libc::{c_int, c_ushort};

use crate::error::{Error, Object, Result};
use crate::key::Key;
use crate::mode::check_mode;
use crate::sysv::{check_rc, get_option_setters, time_from_raw, GetOptions, Perm};

/// The largest value a semaphore can hold (the kernel's `SEMVMX`).
pub const SEMVMX: i32 = 32767;

// libc 0.2 declares semop(2) but not semtimedop(2) for linux-gnu; glibc exports it from
// <sys/sem.h>. 64-bit targets only: there `struct timespec` has a 64-bit `time_t` and no
// `__semtimedop64` redirection is involved.
extern "C" {
    fn semtimedop(
        semid: c_int,
        sops: *mut libc::sembuf,
        nsops: libc::size_t,
        timeout: *const libc::timespec,
    ) -> c_int;
}

/// The fourth argument of semctl(2), which the caller must define (see the man page). It is passed
/// by value through the variadic argument list, exactly as C passes it.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_camel_case_types)]
union semun {
    /// SETVAL: the new value.
    val: c_int,
    /// IPC_STAT, IPC_SET: the `semid_ds` to fill or read.
    buf: *mut libc::semid_ds,
    /// GETALL, SETALL: an array of `nsems` values.
    array: *mut c_ushort,
}

/// Flags of one [`SemOp`] (`sem_flg`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SemFlags(i16);

impl SemFlags {
    /// No flag: block until the operation can proceed, and do not undo it at exit.
    pub const NONE: SemFlags = SemFlags(0);
    /// `SEM_UNDO`: the kernel reverses this adjustment when the process exits.
    pub const UNDO: SemFlags = SemFlags(libc::SEM_UNDO as i16);
    /// `IPC_NOWAIT`: fail with `EAGAIN` instead of blocking.
    pub const NOWAIT: SemFlags = SemFlags(libc::IPC_NOWAIT as i16);

    /// The raw `sem_flg` bits.
    pub const fn bits(self) -> i16 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: SemFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flags of both.
    pub const fn union(self, other: SemFlags) -> SemFlags {
        SemFlags(self.0 | other.0)
    }
}

impl BitOr for SemFlags {
    type Output = SemFlags;

    fn bitor(self, rhs: SemFlags) -> SemFlags {
        self.union(rhs)
    }
}

/// One operation on one semaphore of a set (`struct sembuf`).
///
/// `delta < 0` waits until the value is at least `-delta` and subtracts it; `delta > 0` adds it
/// (never blocks); `delta == 0` waits until the value is zero.
///
/// ```
/// use ipckit::sysv::sem::SemOp;
/// // Take semaphore 0, given back by the kernel if this process dies; fail rather than block.
/// let op = SemOp::wait(0).undo().nowait();
/// assert_eq!((op.num, op.delta), (0, -1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SemOp {
    /// The semaphore's index in the set (`sem_num`).
    pub num: u16,
    /// The amount to add (`sem_op`).
    pub delta: i16,
    /// `SEM_UNDO`, `IPC_NOWAIT` (`sem_flg`).
    pub flags: SemFlags,
}

impl SemOp {
    /// Adds `delta` to semaphore `num`, without flags.
    pub const fn new(num: u16, delta: i16) -> SemOp {
        SemOp {
            num,
            delta,
            flags: SemFlags::NONE,
        }
    }

    /// Takes one from semaphore `num` (`-1`, the P operation), waiting while it is zero.
    pub const fn wait(num: u16) -> SemOp {
        SemOp::new(num, -1)
    }

    /// Gives one to semaphore `num` (`+1`, the V operation).
    pub const fn post(num: u16) -> SemOp {
        SemOp::new(num, 1)
    }

    /// Waits until semaphore `num` is zero (`0`).
    pub const fn wait_zero(num: u16) -> SemOp {
        SemOp::new(num, 0)
    }

    /// Adds `SEM_UNDO`: the kernel reverses this adjustment when the process exits.
    pub const fn undo(self) -> SemOp {
        SemOp {
            flags: self.flags.union(SemFlags::UNDO),
            ..self
        }
    }

    /// Adds `IPC_NOWAIT`: the operation set fails with `EAGAIN` instead of blocking.
    pub const fn nowait(self) -> SemOp {
        SemOp {
            flags: self.flags.union(SemFlags::NOWAIT),
            ..self
        }
    }

    fn raw(self, extra: SemFlags) -> libc::sembuf {
        libc::sembuf {
            sem_num: self.num,
            sem_op: self.delta,
            sem_flg: self.flags.union(extra).bits(),
        }
    }
}

/// How many ops [`SemSet::op`] converts on the stack; longer lists are allocated.
const INLINE_OPS: usize = 8;

/// Caller ops in the kernel's layout (`struct sembuf`), without allocating for short lists.
enum RawOps {
    Inline([libc::sembuf; INLINE_OPS], usize),
    Heap(Vec<libc::sembuf>),
}

impl RawOps {
    fn as_mut_slice(&mut self) -> &mut [libc::sembuf] {
        match self {
            RawOps::Inline(ops, len) => &mut ops[..*len],
            RawOps::Heap(ops) => ops,
        }
    }
}

/// Options to create or open a semaphore set, like memmap2's `MmapOptions`.
///
/// ```no_run
/// use ipckit::{sysv::sem::SemSet, Key};
/// let set = SemSet::options().nsems(2).mode(0o640).exclusive(true).open(Key::new(0x1234))?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct SemOptions {
    nsems: Option<usize>,
    get: GetOptions,
}

impl SemOptions {
    /// The defaults: no `nsems`, mode [`DEFAULT_MODE`](crate::DEFAULT_MODE) (0600), neither
    /// create nor exclusive, so `SemSet::options().open(key)` opens an existing set.
    pub fn new() -> SemOptions {
        SemOptions::default()
    }

    /// The number of semaphores: required to create a set (at least 1; the kernel's limit is
    /// SEMMSL, the first field of /proc/sys/kernel/sem). When opening, the set must have at least
    /// this many.
    pub fn nsems(&mut self, nsems: usize) -> &mut Self {
        self.nsems = Some(nsems);
        self
    }

    get_option_setters! {
        /// The permission bits of a created set (default [`DEFAULT_MODE`](crate::DEFAULT_MODE),
        /// 0600). Ignored when an existing set is opened: its permissions are checked by each
        /// operation.
        mode;
        /// Create the set if the key has none (`IPC_CREAT`).
        create;
        /// Create the set and fail with `AlreadyExists` if the key has one
        /// (`IPC_CREAT | IPC_EXCL`); implies [`create`](Self::create).
        exclusive;
    }

    /// `semget(key, nsems, flags | mode)` — creates or opens the set of `key` with these options.
    ///
    /// [`Key::PRIVATE`] always creates a new set, so it needs `create(true)`; creating needs
    /// `nsems` of at least 1; the mode must fit in 0o777. These are checked before any system call.
    pub fn open(&self, key: Key) -> Result<SemSet> {
        let object = Object::SemKey(key);
        let flags = self.get.flags("semget", &object, key, "set")?;
        let nsems = match (self.nsems, self.get.creating()) {
            (None, true) => {
                return Err(Error::invalid(
                    "semget",
                    object,
                    "nsems must be given to create a semaphore set",
                ))
            }
            (Some(0), true) => {
                return Err(Error::invalid(
                    "semget",
                    object,
                    "a semaphore set needs at least one semaphore (nsems 0)",
                ))
            }
            (n, _) => n.unwrap_or(0),
        };
        let nsems = c_int::try_from(nsems).map_err(|_| {
            Error::invalid(
                "semget",
                object.clone(),
                format!("nsems {nsems} is too large"),
            )
        })?;
        // SAFETY: semget takes only integers.
        let id = unsafe { libc::semget(key.value(), nsems, flags) };
        let id = check_rc("semget", object, id)?;
        Ok(SemSet { id })
    }
}

/// The status of a semaphore set (`struct semid_ds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemStat {
    /// Ownership and permissions.
    pub perm: Perm,
    /// The number of semaphores in the set.
    pub nsems: usize,
    /// The time of the last successful `semop`, if any.
    pub otime: Option<SystemTime>,
    /// The time the set was created or last changed by `IPC_SET` / `SETVAL` / `SETALL`.
    pub ctime: Option<SystemTime>,
}

/// A System V semaphore set, by id: a plain handle that owns nothing (see [`OwnedSemSet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SemSet {
    id: i32,
}

impl SemSet {
    /// Options to create or open a set.
    pub fn options() -> SemOptions {
        SemOptions::new()
    }

    /// `semget(key, nsems, IPC_CREAT | 0600)` — opens the set of `key`, creating it with `nsems`
    /// semaphores (all zero) if there is none.
    pub fn create(key: Key, nsems: usize) -> Result<SemSet> {
        SemSet::options().nsems(nsems).create(true).open(key)
    }

    /// `semget(key, nsems, IPC_CREAT | IPC_EXCL | 0600)` — creates a set of `nsems` semaphores (all
    /// zero), failing with `AlreadyExists` if `key` has one.
    pub fn create_exclusive(key: Key, nsems: usize) -> Result<SemSet> {
        SemSet::options().nsems(nsems).exclusive(true).open(key)
    }

    /// `semget(key, 0, 0)` — opens the existing set of `key` (`NotFound` if there is none).
    pub fn open(key: Key) -> Result<SemSet> {
        SemSet::options().open(key)
    }

    /// The set with identifier `id` (as `ipcs -s` shows it, or as another process passed it). No
    /// system call is made; a wrong id fails at the first operation.
    pub const fn from_id(id: i32) -> SemSet {
        SemSet { id }
    }

    /// The set's identifier.
    pub const fn id(&self) -> i32 {
        self.id
    }

    /// Turns the handle into one that removes the set when dropped.
    pub fn into_owned(self) -> OwnedSemSet {
        OwnedSemSet(self)
    }

    fn object(&self) -> Object {
        Object::SemId(self.id)
    }

    /// `semop(semid, sops, nsops)` — applies all of `ops` atomically: either every operation
    /// proceeds or none does, and the call sleeps until all can. Fails with `EIDRM` if the set is
    /// removed meanwhile, `EFBIG` for a semaphore number outside the set, `EAGAIN` (`WouldBlock`) if
    /// an op carries [`SemOp::nowait`] and would block.
    pub fn op(&self, ops: &[SemOp]) -> Result<()> {
        let mut raw = self.raw_ops("semop", ops, SemFlags::NONE)?;
        loop {
            match self.semtimedop(raw.as_mut_slice(), None) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(Error::os("semop", self.object(), e)),
            }
        }
    }

    /// `semop(semid, sops, nsops)` with `IPC_NOWAIT` on every op — applies all of `ops`
    /// atomically if that needs no waiting; `Ok(false)` (and nothing changed) if it would block.
    pub fn try_op(&self, ops: &[SemOp]) -> Result<bool> {
        let mut raw = self.raw_ops("semop", ops, SemFlags::NOWAIT)?;
        loop {
            match self.semtimedop(raw.as_mut_slice(), None) {
                Ok(()) => return Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(false),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(Error::os("semop", self.object(), e)),
            }
        }
    }

    /// `semtimedop(semid, sops, nsops, timeout)` — like [`op`](Self::op), but gives up after
    /// `timeout`: `Ok(false)` (and nothing changed) if the ops could not proceed in time. An op
    /// carrying [`SemOp::nowait`] that would block also gives `Ok(false)`.
    pub fn op_timeout(&self, ops: &[SemOp], timeout: Duration) -> Result<bool> {
        let mut raw = self.raw_ops("semtimedop", ops, SemFlags::NONE)?;
        let deadline = Instant::now().checked_add(timeout);
        let mut remaining = timeout;
        loop {
            let ts = libc::timespec {
                tv_sec: libc::time_t::try_from(remaining.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: remaining.subsec_nanos() as libc::c_long,
            };
            match self.semtimedop(raw.as_mut_slice(), Some(&ts)) {
                Ok(()) => return Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(false),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                    if let Some(deadline) = deadline {
                        remaining = deadline.saturating_duration_since(Instant::now());
                    }
                }
                Err(e) => return Err(Error::os("semtimedop", self.object(), e)),
            }
        }
    }

    /// Checks and converts caller ops; `extra` flags are added to each.
    fn raw_ops(&self, op: &'static str, ops: &[SemOp], extra: SemFlags) -> Result<RawOps> {
        if ops.is_empty() {
            return Err(Error::invalid(
                op,
                self.object(),
                "no semaphore operation given",
            ));
        }
        if ops.len() <= INLINE_OPS {
            let mut inline = [SemOp::new(0, 0).raw(SemFlags::NONE); INLINE_OPS];
            for (raw, op) in inline.iter_mut().zip(ops) {
                *raw = op.raw(extra);
            }
            Ok(RawOps::Inline(inline, ops.len()))
        } else {
            Ok(RawOps::Heap(ops.iter().map(|o| o.raw(extra)).collect()))
        }
    }

    /// One semop/semtimedop call; `timeout: None` blocks without limit.
    fn semtimedop(
        &self,
        ops: &mut [libc::sembuf],
        timeout: Option<&libc::timespec>,
    ) -> io::Result<()> {
        let ts = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `ops` is a valid array of `ops.len()` sembufs for the duration of the call (the
        // kernel only reads it); `ts` is null or points to a live timespec.
        let rc = unsafe { semtimedop(self.id, ops.as_mut_ptr(), ops.len(), ts) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// `semop(semid, {num, -1, 0}, 1)` — takes one from semaphore `num`, waiting while it is
    /// zero. Not undone at exit: see [`wait_undo`](Self::wait_undo) for locks.
    pub fn wait(&self, num: u16) -> Result<()> {
        self.op(&[SemOp::wait(num)])
    }

    /// `semop(semid, {num, +1, 0}, 1)` — gives one to semaphore `num`.
    pub fn post(&self, num: u16) -> Result<()> {
        self.op(&[SemOp::post(num)])
    }

    /// `semop(semid, {num, -1, IPC_NOWAIT}, 1)` — takes one from semaphore `num` if it is
    /// positive; `Ok(false)` if it is zero.
    pub fn try_wait(&self, num: u16) -> Result<bool> {
        self.try_op(&[SemOp::wait(num)])
    }

    /// `semtimedop(semid, {num, -1, 0}, 1, timeout)` — takes one from semaphore `num`, waiting
    /// at most `timeout`; `Ok(false)` on timeout.
    pub fn wait_timeout(&self, num: u16, timeout: Duration) -> Result<bool> {
        self.op_timeout(&[SemOp::wait(num)], timeout)
    }

    /// `semop(semid, {num, -1, SEM_UNDO}, 1)` — takes one from semaphore `num`, and if this
    /// process exits before [`post_undo`](Self::post_undo), the kernel gives it back. The lock
    /// operation of a critical section.
    pub fn wait_undo(&self, num: u16) -> Result<()> {
        self.op(&[SemOp::wait(num).undo()])
    }

    /// `semop(semid, {num, +1, SEM_UNDO}, 1)` — gives one to semaphore `num`, cancelling the
    /// adjustment a [`wait_undo`](Self::wait_undo) recorded. The unlock operation.
    pub fn post_undo(&self, num: u16) -> Result<()> {
        self.op(&[SemOp::post(num).undo()])
    }

    /// `semctl(semid, num, GETVAL)` — the value of semaphore `num`.
    pub fn get(&self, num: u16) -> Result<i32> {
        self.check_num("semctl(GETVAL)", num)?;
        self.ctl_int("semctl(GETVAL)", num, libc::GETVAL)
    }

    /// `semctl(semid, num, SETVAL, value)` — sets semaphore `num` to `value` (0 to [`SEMVMX`]),
    /// clearing every process's `SEM_UNDO` adjustment for it and waking waiters that can proceed.
    pub fn set(&self, num: u16, value: i32) -> Result<()> {
        const OP: &str = "semctl(SETVAL)";
        if !(0..=SEMVMX).contains(&value) {
            return Err(Error::invalid(
                OP,
                self.object(),
                format!("value {value} is outside 0..={SEMVMX}"),
            ));
        }
        self.check_num(OP, num)?;
        self.semctl(OP, num, libc::SETVAL, semun { val: value })
            .map(drop)
    }

    /// `semctl(semid, 0, GETALL, array)` — the values of all semaphores, in order.
    pub fn get_all(&self) -> Result<Vec<u16>> {
        const OP: &str = "semctl(GETALL)";
        let n = self.stat_raw(OP)?.sem_nsems as usize;
        let mut values = vec![0u16; n];
        // The kernel writes exactly `sem_nsems` values, and a set's size never changes.
        self.semctl(
            OP,
            0,
            libc::GETALL,
            semun {
                array: values.as_mut_ptr(),
            },
        )?;
        Ok(values)
    }

    /// `semctl(semid, 0, SETALL, array)` — sets all semaphores at once; `values` must have one
    /// entry per semaphore, each at most [`SEMVMX`].
    pub fn set_all(&self, values: &[u16]) -> Result<()> {
        const OP: &str = "semctl(SETALL)";
        if let Some(v) = values.iter().find(|&&v| i32::from(v) > SEMVMX) {
            return Err(Error::invalid(
                OP,
                self.object(),
                format!("value {v} exceeds SEMVMX ({SEMVMX})"),
            ));
        }
        let n = self.stat_raw(OP)?.sem_nsems as usize;
        if values.len() != n {
            return Err(Error::invalid(
                OP,
                self.object(),
                format!("{} values given for a set of {n} semaphores", values.len()),
            ));
        }
        // The kernel reads exactly `sem_nsems` values (checked above) and never writes them.
        self.semctl(
            OP,
            0,
            libc::SETALL,
            semun {
                array: values.as_ptr().cast_mut(),
            },
        )
        .map(drop)
    }

    /// `semctl(semid, num, GETPID)` — the pid of the last process that operated on semaphore
    /// `num` (0 if none has).
    pub fn last_pid(&self, num: u16) -> Result<i32> {
        self.check_num("semctl(GETPID)", num)?;
        self.ctl_int("semctl(GETPID)", num, libc::GETPID)
    }

    /// `semctl(semid, num, GETNCNT)` — how many processes wait for semaphore `num` to increase.
    pub fn ncnt(&self, num: u16) -> Result<usize> {
        self.check_num("semctl(GETNCNT)", num)?;
        self.ctl_int("semctl(GETNCNT)", num, libc::GETNCNT)
            .map(|n| n as usize)
    }

    /// `semctl(semid, num, GETZCNT)` — how many processes wait for semaphore `num` to become zero.
    pub fn zcnt(&self, num: u16) -> Result<usize> {
        self.check_num("semctl(GETZCNT)", num)?;
        self.ctl_int("semctl(GETZCNT)", num, libc::GETZCNT)
            .map(|n| n as usize)
    }

    /// `semctl(semid, 0, IPC_STAT, buf)` — ownership, permissions, size and times of the set.
    pub fn stat(&self) -> Result<SemStat> {
        let ds = self.stat_raw("semctl(IPC_STAT)")?;
        Ok(SemStat {
            perm: Perm::from_raw(&ds.sem_perm),
            nsems: ds.sem_nsems as usize,
            otime: time_from_raw(ds.sem_otime),
            ctime: time_from_raw(ds.sem_ctime),
        })
    }

    /// `semctl(semid, 0, IPC_STAT, buf)` — the number of semaphores in the set (`sem_nsems`).
    pub fn nsems(&self) -> Result<usize> {
        Ok(self.stat_raw("semctl(IPC_STAT)")?.sem_nsems as usize)
    }

    /// `semctl(semid, 0, IPC_SET, buf)` — gives the set to user `uid` and group `gid`.
    pub fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        const OP: &str = "semctl(IPC_SET)";
        let mut ds = self.stat_raw(OP)?;
        ds.sem_perm.uid = uid;
        ds.sem_perm.gid = gid;
        self.ipc_set(OP, &mut ds)
    }

    /// `semctl(semid, 0, IPC_SET, buf)` — changes the permission bits (only 0o777 are allowed).
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        const OP: &str = "semctl(IPC_SET)";
        let mode = check_mode(OP, &self.object(), mode)?;
        let mut ds = self.stat_raw(OP)?;
        ds.sem_perm.mode = mode as c_ushort;
        self.ipc_set(OP, &mut ds)
    }

    /// `semctl(semid, 0, IPC_RMID)` — removes the set now; blocked waiters fail with `EIDRM`.
    pub fn remove(&self) -> Result<()> {
        self.semctl("semctl(IPC_RMID)", 0, libc::IPC_RMID, semun { val: 0 })
            .map(drop)
    }

    /// A semctl command that takes no argument and returns an integer.
    fn ctl_int(&self, op: &'static str, num: u16, cmd: c_int) -> Result<i32> {
        self.semctl(op, num, cmd, semun { val: 0 })
    }

    /// Rejects a semaphore number outside the set before semctl would answer a vague `EINVAL`.
    fn check_num(&self, op: &'static str, num: u16) -> Result<()> {
        let n = self.stat_raw(op)?.sem_nsems;
        if u64::from(num) >= n {
            return Err(Error::invalid(
                op,
                self.object(),
                format!("semaphore {num} is outside the set of {n} semaphores"),
            ));
        }
        Ok(())
    }

    fn stat_raw(&self, op: &'static str) -> Result<libc::semid_ds> {
        // SAFETY: semid_ds is a C struct of integers (and padding); all zeroes is a valid value.
        let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
        self.semctl(op, 0, libc::IPC_STAT, semun { buf: &mut ds })?;
        Ok(ds)
    }

    fn ipc_set(&self, op: &'static str, ds: &mut libc::semid_ds) -> Result<()> {
        self.semctl(op, 0, libc::IPC_SET, semun { buf: ds })
            .map(drop)
    }

    /// The one place semctl is called. Every caller passes the `arg` member its `cmd` uses:
    /// `buf` pointing to a live `semid_ds` for IPC_STAT/IPC_SET, `array` pointing to `nsems` values
    /// for GETALL/SETALL (writable for GETALL), `val` otherwise.
    fn semctl(&self, op: &'static str, num: u16, cmd: c_int, arg: semun) -> Result<i32> {
        // SAFETY: `arg` holds what `cmd` reads or writes (see above: each caller builds it from a
        // live, large-enough buffer), and semun is passed by value through `...` as C passes it.
        let rc = unsafe { libc::semctl(self.id, c_int::from(num), cmd, arg) };
        check_rc(op, self.object(), rc)
    }
}

/// A semaphore set that is removed (`IPC_RMID`) when this handle is dropped; derefs to
/// [`SemSet`]. Removal on drop ignores errors (the set may already be gone).
#[derive(Debug)]
pub struct OwnedSemSet(SemSet);

impl OwnedSemSet {
    /// `semctl(semid, 0, IPC_RMID)` — removes the set now, reporting any error.
    pub fn remove(self) -> Result<()> {
        self.into_inner().remove()
    }

    /// Gives up ownership: the set stays in the kernel after this returns.
    pub fn into_inner(self) -> SemSet {
        let set = self.0;
        std::mem::forget(self);
        set
    }
}

impl Deref for OwnedSemSet {
    type Target = SemSet;

    fn deref(&self) -> &SemSet {
        &self.0
    }
}

impl Drop for OwnedSemSet {
    fn drop(&mut self) {
        let _ = self.0.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_flags_combine() {
        let op = SemOp::post(3).undo().nowait();
        assert_eq!((op.num, op.delta), (3, 1));
        assert!(op.flags.contains(SemFlags::UNDO | SemFlags::NOWAIT));
        let raw = SemOp::wait(1).raw(SemFlags::NOWAIT);
        assert_eq!(raw.sem_flg, libc::IPC_NOWAIT as i16);
        assert_eq!(raw.sem_op, -1);
        assert!(!SemOp::wait_zero(0).flags.contains(SemFlags::UNDO));
    }

    #[test]
    fn semun_is_passed_like_a_pointer() {
        assert_eq!(std::mem::size_of::<semun>(), std::mem::size_of::<usize>());
        assert_eq!(std::mem::align_of::<semun>(), std::mem::align_of::<usize>());
    }
}
