//! A robust, process-shared mutex that lives inside shared memory and protects a `Pod` value.
//!
//! The trap it removes: a process that dies holding a lock (a crash, `SIGKILL`, the OOM killer)
//! would leave everybody else waiting for ever. Here the next locker is told
//! ([`LockError::OwnerDied`]), holds the lock, repairs the data and calls
//! [`MutexGuard::mark_consistent`]; if it does not, the mutex becomes unusable for everyone
//! ([`LockError::NotRecoverable`]) instead of handing out data a dead process left half-written.
//!
//! # Why glibc's robust `pthread_mutex_t`, not a futex lock of our own
//! Death detection needs the kernel: each thread registers the head of a list of the robust
//! futexes it holds (`set_robust_list(2)`), and on exit the kernel walks that list, sets
//! `FUTEX_OWNER_DIED` in each lock word and wakes a waiter. There is one list head per thread, and
//! glibc already registers its own for every thread it creates; registering a second head from
//! Rust would replace glibc's and silently switch off every robust pthread mutex in the process.
//! So this lock *is* glibc's robust futex lock: a `pthread_mutex_t` initialised with
//! `PTHREAD_PROCESS_SHARED`, `PTHREAD_MUTEX_ROBUST` and `PTHREAD_MUTEX_ERRORCHECK` (relocking from
//! the owning thread is an error, not a deadlock), in the shared memory itself.
//!
//! All processes must use the same C library ABI (the layout of `pthread_mutex_t`); the header's
//! size check catches a 32/64-bit mismatch. Ownership is per *thread*, so a guard cannot be sent to
//! another thread. Unlock before the memory is unmapped: glibc links held robust mutexes into a
//! per-thread list through the mutexes themselves, so forgetting a guard (`mem::forget`) and then
//! unmapping the region leaves that list pointing at unmapped memory.
//!
//! # References
//! [pthread_mutexattr_setrobust(3)](https://man7.org/linux/man-pages/man3/pthread_mutexattr_setrobust.3.html),
//! [pthread_mutex_consistent(3)](https://man7.org/linux/man-pages/man3/pthread_mutex_consistent.3.html),
//! [pthread_mutex_lock(3p)](https://man7.org/linux/man-pages/man3/pthread_mutex_lock.3p.html),
//! [set_robust_list(2)](https://man7.org/linux/man-pages/man2/set_robust_list.2.html),
//! [kernel robust futex ABI](https://docs.kernel.org/locking/robust-futex-ABI.html)

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use bytemuck::Pod;
use libc::c_int;

use super::place::{self, object_at, Header, Shared};
use crate::error::{Error, Object, Result};

// glibc has exported pthread_mutex_clocklock since 2.30; the libc crate does not declare it.
extern "C" {
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clockid: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> c_int;
}

/// A robust, process-shared mutex around a `T`, placed in shared memory with
/// [`init_in`](Mutex::init_in) and found again with [`open_in`](Mutex::open_in).
///
/// ```no_run
/// use ipckit::sync::{LockError, Mutex};
/// use ipckit::{sysv::shm::Segment, Key};
///
/// let seg = Segment::create(Key::PRIVATE, 4096)?.into_owned();
/// let map = seg.attach()?;
/// // SAFETY: TODO(sync): replaced by SharedRegion placement (not a true promise meanwhile).
/// let bytes = unsafe { map.shared().as_bytes_mut_unchecked()? };
/// let m = Mutex::<u64>::init_in(bytes, 0)?;
/// let mut guard = match m.lock() {
///     Ok(guard) => guard,
///     Err(LockError::OwnerDied(mut guard)) => {
///         *guard = 0; // repair what the dead holder may have left half-done
///         guard.mark_consistent()?;
///         guard
///     }
///     Err(e) => return Err(e.into()),
/// };
/// *guard += 1;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[repr(C)]
pub struct Mutex<T: Pod> {
    header: Header,
    raw: UnsafeCell<libc::pthread_mutex_t>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through a guard, which holds the pthread mutex; the mutex is
// made for use from several threads (and processes). T: Send because a guard on another thread
// hands out `&mut T` there.
unsafe impl<T: Pod + Send> Sync for Mutex<T> {}

// SAFETY: repr(C) with the header first; the header is atomics, pthread_mutex_t is a C struct of
// integers and T is Pod, so every bit pattern is a valid Mutex<T>.
unsafe impl<T: Pod> Shared for Mutex<T> {
    const MAGIC: [u8; 4] = *b"IKMX";
    const VERSION: u32 = 1;
    const NAME: &'static str = "Mutex";

    fn header(&self) -> &Header {
        &self.header
    }
}

/// Why a lock did not simply succeed; `G` is the guard.
pub enum LockError<G> {
    /// `EOWNERDEAD`: the previous holder died holding the lock. The lock is yours now (the guard),
    /// but the data may be half-updated: repair it and call
    /// [`MutexGuard::mark_consistent`] before dropping the guard, or the mutex becomes
    /// unrecoverable for everyone.
    OwnerDied(G),
    /// `ENOTRECOVERABLE`: a holder died and the next one unlocked without marking the mutex
    /// consistent. It can never be locked again; the protected data must be rebuilt elsewhere.
    NotRecoverable(Error),
    /// Any other failure, such as `EDEADLK` (this thread already holds the lock).
    Os(Error),
}

/// The result of a lock operation: `T` on success, the [`LockError`] with its guard `G` otherwise.
pub type LockResult<T, G> = std::result::Result<T, LockError<G>>;

impl<G> LockError<G> {
    /// The guard, if the previous owner died (the lock is held).
    pub fn into_owner_died(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }

    /// Whether this is [`LockError::OwnerDied`].
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockError::OwnerDied(_))
    }

    /// Whether this is [`LockError::NotRecoverable`].
    pub fn is_not_recoverable(&self) -> bool {
        matches!(self, LockError::NotRecoverable(_))
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::NotRecoverable(e) => f.debug_tuple("NotRecoverable").field(e).finish(),
            LockError::Os(e) => f.debug_tuple("Os").field(e).finish(),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => {
                f.write_str("the previous owner died holding the lock (EOWNERDEAD)")
            }
            LockError::NotRecoverable(e) | LockError::Os(e) => e.fmt(f),
        }
    }
}

impl<G> std::error::Error for LockError<G> {}

/// For `?` in functions returning [`Error`]: an owner-died guard is dropped *without* marking the
/// mutex consistent, which makes it unrecoverable — the safe choice when nobody repaired the data.
impl<G> From<LockError<G>> for Error {
    fn from(e: LockError<G>) -> Error {
        match e {
            LockError::OwnerDied(guard) => {
                drop(guard);
                Error::os(
                    "pthread_mutex_lock",
                    Object::Other("ipckit::sync::Mutex".into()),
                    std::io::Error::from_raw_os_error(libc::EOWNERDEAD),
                )
            }
            LockError::NotRecoverable(e) | LockError::Os(e) => e,
        }
    }
}

impl<T: Pod> Mutex<T> {
    /// `pthread_mutex_init(&m, {PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST,
    /// PTHREAD_MUTEX_ERRORCHECK})` — initialises a mutex holding `value` at the start of `region`,
    /// once: when several processes race, exactly one initialises and the others wait for it and
    /// get the same mutex (their `value` is dropped). Fails if the region is too small or
    /// misaligned, or already holds something that is not a `Mutex<T>`.
    pub fn init_in(region: &mut [u8], value: T) -> Result<&Mutex<T>> {
        place::init_in::<Mutex<T>>(region, |m| {
            // SAFETY: this process won the claim, so nobody else touches the body until READY;
            // `data` is a valid, aligned place for a T.
            unsafe { m.data.get().write(value) };
            m.init_raw()
        })
    }

    /// Validates and returns the mutex another process initialised at the start of `region`
    /// (magic, layout version and size); an error for anything else.
    pub fn open_in(region: &mut [u8]) -> Result<&Mutex<T>> {
        place::open_in::<Mutex<T>>(region)
    }

    fn object(&self) -> Object {
        object_at::<Self>(self as *const Self as *const u8)
    }

    fn init_raw(&self) -> Result<()> {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        let a = attr.as_mut_ptr();
        // SAFETY: `a` points to attribute storage that pthread_mutexattr_init initialises first;
        // the setters and pthread_mutex_init then only use initialised attributes; `raw` is
        // valid, aligned storage for a pthread_mutex_t that no other thread uses yet.
        let rc = unsafe {
            let mut rc = libc::pthread_mutexattr_init(a);
            if rc == 0 {
                rc = libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED);
                if rc == 0 {
                    rc = libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST);
                }
                if rc == 0 {
                    rc = libc::pthread_mutexattr_settype(a, libc::PTHREAD_MUTEX_ERRORCHECK);
                }
                if rc == 0 {
                    rc = libc::pthread_mutex_init(self.raw.get(), a);
                }
                libc::pthread_mutexattr_destroy(a);
            }
            rc
        };
        check("pthread_mutex_init", self.object(), rc)
    }

    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            _not_send: PhantomData,
        }
    }

    /// Turns a pthread lock result into a guard or a [`LockError`].
    fn locked(
        &self,
        op: &'static str,
        rc: c_int,
    ) -> LockResult<Option<MutexGuard<'_, T>>, MutexGuard<'_, T>> {
        match rc {
            0 => Ok(Some(self.guard())),
            libc::EOWNERDEAD => Err(LockError::OwnerDied(self.guard())),
            libc::EBUSY | libc::ETIMEDOUT => Ok(None),
            libc::ENOTRECOVERABLE => Err(LockError::NotRecoverable(os(op, self.object(), rc))),
            _ => Err(LockError::Os(os(op, self.object(), rc))),
        }
    }

    /// `pthread_mutex_lock(&m)` — waits for the lock and returns a guard that unlocks when
    /// dropped. [`LockError::OwnerDied`] if the previous holder died holding it (you hold it
    /// now); [`LockError::NotRecoverable`] if it is broken for good.
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>, MutexGuard<'_, T>> {
        // SAFETY: `raw` was initialised by pthread_mutex_init before READY was published.
        let rc = unsafe { libc::pthread_mutex_lock(self.raw.get()) };
        match self.locked("pthread_mutex_lock", rc)? {
            Some(g) => Ok(g),
            None => Err(LockError::Os(os("pthread_mutex_lock", self.object(), rc))),
        }
    }

    /// The lock if it is free now, `Ok(None)` if somebody holds it; errors as
    /// [`lock`](Self::lock).
    ///
    /// This is `pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, now)`, a timed lock whose deadline
    /// has passed (it still tries once), not `pthread_mutex_trylock`: glibc's trylock returns
    /// `ENOTRECOVERABLE` for a not-recoverable robust mutex without releasing the lock word it
    /// just took (it unlocks only `if (oldval == id)`, and `oldval` is 0), after which every other
    /// locker waits for ever.
    pub fn try_lock(&self) -> LockResult<Option<MutexGuard<'_, T>>, MutexGuard<'_, T>> {
        let now = monotonic_deadline(Duration::ZERO);
        // SAFETY: as in `lock`; `now` is a live timespec.
        let rc = unsafe { pthread_mutex_clocklock(self.raw.get(), libc::CLOCK_MONOTONIC, &now) };
        self.locked("pthread_mutex_clocklock", rc)
    }

    /// `pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, now + timeout)` — waits at most `timeout`
    /// (measured on the monotonic clock, so changing the wall clock does not matter);
    /// `Ok(None)` if the lock was not free in time; errors as [`lock`](Self::lock).
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> LockResult<Option<MutexGuard<'_, T>>, MutexGuard<'_, T>> {
        let abstime = monotonic_deadline(timeout);
        // SAFETY: as in `lock`; `abstime` is a live timespec.
        let rc =
            unsafe { pthread_mutex_clocklock(self.raw.get(), libc::CLOCK_MONOTONIC, &abstime) };
        self.locked("pthread_mutex_clocklock", rc)
    }

    /// The raw pthread mutex, for [`Condvar`](super::Condvar).
    pub(crate) fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.raw.get()
    }
}

impl<T: Pod> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("addr", &(self as *const Self))
            .finish_non_exhaustive()
    }
}

/// The held lock: dereferences to the data; unlocks (`pthread_mutex_unlock`) when dropped.
///
/// Not `Send`: the lock belongs to the thread that took it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: Pod> {
    mutex: &'a Mutex<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: `&MutexGuard` only gives `&T`, which is fine to share when T: Sync.
unsafe impl<T: Pod + Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T: Pod> MutexGuard<'a, T> {
    /// `pthread_mutex_consistent(&m)` — after [`LockError::OwnerDied`], declares the data
    /// repaired, so that unlocking leaves a normal mutex. An error if the mutex was not in the
    /// owner-died state (`EINVAL`).
    pub fn mark_consistent(&mut self) -> Result<()> {
        // SAFETY: the mutex is initialised and held by this thread (the guard).
        let rc = unsafe { libc::pthread_mutex_consistent(self.mutex.raw.get()) };
        check("pthread_mutex_consistent", self.mutex.object(), rc)
    }

    /// `pthread_mutex_unlock(&m)` now, reporting the error that drop would ignore.
    pub fn unlock(self) -> Result<()> {
        let m = self.mutex;
        std::mem::forget(self);
        // SAFETY: the mutex is initialised and held by this thread; the guard is gone.
        let rc = unsafe { libc::pthread_mutex_unlock(m.raw.get()) };
        check("pthread_mutex_unlock", m.object(), rc)
    }

    /// The mutex this guard holds.
    pub fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }

    /// Gives up the guard without unlocking, for [`Condvar`](super::Condvar), which hands the
    /// lock to pthread_cond_wait and back.
    pub(crate) fn into_mutex(self) -> &'a Mutex<T> {
        let m = self.mutex;
        std::mem::forget(self);
        m
    }

    /// A guard for a mutex this thread holds (after pthread_cond_wait re-acquired it).
    pub(crate) fn held(mutex: &'a Mutex<T>) -> MutexGuard<'a, T> {
        mutex.guard()
    }
}

impl<T: Pod> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the lock is held, so nobody who follows the protocol writes the data now.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: Pod> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the lock is held and `&mut self` makes this the only reference through the guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: Pod> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the mutex is initialised and held by this thread.
        unsafe { libc::pthread_mutex_unlock(self.mutex.raw.get()) };
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MutexGuard").field(&**self).finish()
    }
}

/// An error from a pthread return code (they return the errno instead of setting it).
pub(crate) fn os(op: &'static str, object: Object, rc: c_int) -> Error {
    Error::os(op, object, std::io::Error::from_raw_os_error(rc))
}

/// `Ok` for a zero pthread return code, the error otherwise.
pub(crate) fn check(op: &'static str, object: Object, rc: c_int) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(os(op, object, rc))
    }
}

/// `clock_gettime(CLOCK_MONOTONIC) + timeout`, as the absolute time pthread's timed calls take;
/// saturates far in the future.
pub(crate) fn monotonic_deadline(timeout: Duration) -> libc::timespec {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let mut sec = now
        .tv_sec
        .saturating_add(i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX));
    let mut nsec = now.tv_nsec + i64::from(timeout.subsec_nanos());
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}
