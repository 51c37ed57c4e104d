//! A robust, process-shared mutex that lives inside shared memory and protects a `Pod` value.
//!
//! The trap it removes: a process that dies holding a lock (a crash, `SIGKILL`, the OOM killer)
//! would leave everybody else waiting for ever. Here the next locker is told
//! ([`LockError::OwnerDied`]), holds the lock, repairs the data and calls
//! [`MutexGuard::mark_consistent`]. Until somebody does, every locker is told the same: a guard
//! dropped without `mark_consistent` (an innocent `?` on the error, a panic) leaves the mutex
//! reporting `OwnerDied` to the next locker, never broken for good.
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
//! # The owner-died state is ipckit's, not glibc's
//! glibc makes a robust mutex unusable for ever (`ENOTRECOVERABLE`) when the locker that got
//! `EOWNERDEAD` unlocks without `pthread_mutex_consistent`. That is too easy to reach from Rust (a
//! `?` drops the guard), so on `EOWNERDEAD` ipckit calls `pthread_mutex_consistent` at once and
//! records "the data needs repair" in a word of its own next to the mutex; every lock that finds
//! the word set reports [`LockError::OwnerDied`], and [`MutexGuard::mark_consistent`] clears it.
//!
//! # Keeping the memory mapped
//! glibc links every robust mutex a thread holds into a per-thread list stored *inside the
//! mutexes*, and follows it on the next lock and unlock of any robust mutex in that thread. A
//! guard therefore holds a clone of the handle, and so of the [`SharedRegion`]: even a guard that
//! is forgotten (`mem::forget`) keeps the memory mapped — for ever, then — so that list never
//! points at unmapped memory.
//!
//! # Trust
//! The mutex trusts the processes that share it not to scribble on its bytes: glibc follows the
//! list pointers stored in a held `pthread_mutex_t`, so a peer that writes them can make glibc
//! write where it likes in this process. Share it only with processes that use it through ipckit
//! (or glibc's pthread functions) and the same C library ABI (the layout of `pthread_mutex_t`; the
//! header's size check catches a 32/64-bit mismatch). Ownership is per *thread*, so a guard cannot
//! be sent to another thread.
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
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytemuck::Pod;
use libc::c_int;

use super::place::{self, object_at, Header, Placed, Shared};
use crate::error::{Error, Object, Result};
use crate::shared::SharedRegion;

// glibc has exported pthread_mutex_clocklock since 2.30; the libc crate does not declare it.
extern "C" {
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clockid: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> c_int;
}

/// A robust, process-shared mutex around a `T`, placed in shared memory with
/// [`init_in`](Mutex::init_in) and found again with [`open_in`](Mutex::open_in): a handle that
/// keeps the memory mapped (clone it to share it between threads), [`SIZE`](Mutex::SIZE) bytes
/// aligned to [`ALIGN`](Mutex::ALIGN).
///
/// **Owner died:** when a holder dies, the next locker gets [`LockError::OwnerDied`] with the
/// lock; it repairs the data and calls [`MutexGuard::mark_consistent`]. Until somebody does,
/// every locker is told the same: dropping the guard unrepaired (a `?` on the error) never makes
/// the mutex unusable. (ipckit makes glibc's mutex consistent at once and keeps the "needs
/// repair" state in a word of its own, because glibc would otherwise declare the mutex
/// `ENOTRECOVERABLE` for ever.)
///
/// **Trust:** the processes sharing it must not scribble on its bytes: glibc links held robust
/// mutexes into a per-thread list through pointers stored *in* the mutex and follows them, so a
/// peer that writes them can make glibc write where it likes in this process; and the guard's
/// `&mut T` is sound only if every process touches the data under the lock (see
/// [`sync`](crate::sync#trust)). All processes must use the same C library ABI.
///
/// ```no_run
/// use std::sync::Arc;
/// use ipckit::shared::SharedRegion;
/// use ipckit::sync::{LockError, Mutex};
/// use ipckit::{sysv::shm::Segment, Key};
///
/// let seg = Segment::create(Key::PRIVATE, 4096)?.into_owned();
/// let region = SharedRegion::new(Arc::new(seg.attach()?))?;
/// let m = Mutex::<u64>::init_in(region, 0)?;
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
///
/// A guard borrows its handle, so it cannot outlive it:
///
/// ```compile_fail,E0597
/// # use std::sync::Arc;
/// # use ipckit::{shared::{HeapMemory, SharedRegion}, sync::Mutex};
/// let region = SharedRegion::new(Arc::new(HeapMemory::new(4096)))?;
/// let guard = {
///     let m = Mutex::<u64>::init_in(region, 0)?;
///     m.lock().unwrap() // `m` does not live long enough
/// };
/// # Ok::<(), ipckit::Error>(())
/// ```
pub struct Mutex<T: Pod> {
    state: Placed<State<T>>,
}

impl<T: Pod> Clone for Mutex<T> {
    fn clone(&self) -> Mutex<T> {
        Mutex {
            state: self.state.clone(),
        }
    }
}

/// The mutex's bytes in shared memory.
#[repr(C)]
struct State<T> {
    header: Header,
    /// ipckit's owner-died record: non-zero while a holder died and nobody has declared the data
    /// repaired. Read and written only under the lock.
    repair: AtomicU32,
    raw: UnsafeCell<libc::pthread_mutex_t>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through a guard, which holds the pthread mutex; the mutex is
// made for use from several threads (and processes). T: Send because a guard on another thread
// hands out `&mut T` there.
unsafe impl<T: Pod + Send> Sync for State<T> {}

// SAFETY: repr(C) with the header first; the header and `repair` are atomics, pthread_mutex_t is
// a C struct of integers in an UnsafeCell and T is Pod in an UnsafeCell, so every bit pattern is a
// valid State<T> and every byte is inside an atomic or an UnsafeCell.
unsafe impl<T: Pod> Shared for State<T> {
    const MAGIC: [u8; 4] = *b"IKMX";
    const VERSION: u32 = 2;
    const NAME: &'static str = "Mutex";

    fn header(&self) -> &Header {
        &self.header
    }
}

/// Why a lock did not simply succeed; `G` is the guard.
pub enum LockError<G> {
    /// `EOWNERDEAD`: a holder died holding the lock, and nobody has declared the data repaired
    /// since. The lock is yours now (the guard), but the data may be half-updated: repair it and
    /// call [`MutexGuard::mark_consistent`]. Dropping the guard without doing so is safe: the
    /// next locker is told the same.
    OwnerDied(G),
    /// `ENOTRECOVERABLE`: glibc declared the mutex unusable for ever. ipckit never leaves it so
    /// (see [`OwnerDied`](Self::OwnerDied)); a process that used the same `pthread_mutex_t`
    /// directly, without ipckit, can.
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
/// data repaired, so the next locker is told [`LockError::OwnerDied`] in turn.
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
    /// The bytes a `Mutex<T>` takes in shared memory.
    pub const SIZE: usize = std::mem::size_of::<State<T>>();
    /// The alignment a `Mutex<T>` needs.
    pub const ALIGN: usize = std::mem::align_of::<State<T>>();

    /// `pthread_mutex_init(&m, {PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST,
    /// PTHREAD_MUTEX_ERRORCHECK})` — initialises a mutex holding `value` at the start of `region`,
    /// once: when several processes race, exactly one initialises and the others wait for it and
    /// get the same mutex (their `value` is dropped). Fails if the region is too small,
    /// misaligned or read-only, or already holds something that is not a `Mutex<T>`.
    pub fn init_in(region: SharedRegion, value: T) -> Result<Mutex<T>> {
        let state = place::init_in::<State<T>>(region, |m| {
            m.repair.store(0, Ordering::Relaxed);
            // SAFETY: this process won the claim, so nobody following the protocol touches the
            // body until READY; `data` is a valid, aligned place for a T.
            unsafe { m.data.get().write(value) };
            init_raw(m.raw.get(), || {
                object_at::<State<T>>((m as *const State<T>).cast())
            })
        })?;
        Ok(Mutex { state })
    }

    /// Validates and returns the mutex another process initialised at the start of `region`
    /// (magic, layout version and size); an error for anything else.
    pub fn open_in(region: SharedRegion) -> Result<Mutex<T>> {
        let state = place::open_in::<State<T>>(region)?;
        Ok(Mutex { state })
    }

    fn object(&self) -> Object {
        object_at::<State<T>>(self.state.addr())
    }

    /// The raw pthread mutex, for [`Condvar`](super::Condvar).
    pub(crate) fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.state.raw.get()
    }

    /// A guard for the lock this thread has just taken.
    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            keep: self.clone(),
            _not_send: PhantomData,
        }
    }

    /// The guard for a lock this thread now holds, or `OwnerDied` with it: after `EOWNERDEAD`
    /// (made consistent for glibc at once, and recorded in `repair`), or when `repair` says an
    /// earlier owner-died guard was dropped unrepaired.
    pub(crate) fn held<'a>(
        guard: MutexGuard<'a, T>,
        owner_died: bool,
    ) -> LockResult<MutexGuard<'a, T>, MutexGuard<'a, T>> {
        let state = &*guard.mutex.state;
        if owner_died {
            // Relaxed: `repair` is only touched under the lock, which orders it.
            state.repair.store(1, Ordering::Relaxed);
            // SAFETY: the mutex is initialised, robust, and held by this thread after
            // EOWNERDEAD, which is what pthread_mutex_consistent requires.
            let rc = unsafe { libc::pthread_mutex_consistent(guard.mutex.raw()) };
            if rc != 0 {
                // Cannot happen for a robust mutex we hold; the guard unlocks it.
                let e = os("pthread_mutex_consistent", guard.mutex.object(), rc);
                return Err(LockError::Os(e));
            }
        }
        if state.repair.load(Ordering::Relaxed) != 0 {
            return Err(LockError::OwnerDied(guard));
        }
        Ok(guard)
    }

    /// Turns a pthread lock result into a guard or a [`LockError`].
    fn locked(
        &self,
        op: &'static str,
        rc: c_int,
    ) -> LockResult<Option<MutexGuard<'_, T>>, MutexGuard<'_, T>> {
        match rc {
            0 => Mutex::held(self.guard(), false).map(Some),
            libc::EOWNERDEAD => Mutex::held(self.guard(), true).map(Some),
            libc::EBUSY | libc::ETIMEDOUT => Ok(None),
            libc::ENOTRECOVERABLE => Err(LockError::NotRecoverable(os(op, self.object(), rc))),
            _ => Err(LockError::Os(os(op, self.object(), rc))),
        }
    }

    /// `pthread_mutex_lock(&m)` — waits for the lock and returns a guard that unlocks when
    /// dropped. [`LockError::OwnerDied`] if a holder died and the data has not been declared
    /// repaired (you hold the lock); [`LockError::NotRecoverable`] if it is broken for good.
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>, MutexGuard<'_, T>> {
        // SAFETY: `raw` was initialised by pthread_mutex_init before READY was published, and
        // `self.state` keeps it mapped.
        let rc = unsafe { libc::pthread_mutex_lock(self.raw()) };
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
        let rc = unsafe { pthread_mutex_clocklock(self.raw(), libc::CLOCK_MONOTONIC, &now) };
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
        let rc = unsafe { pthread_mutex_clocklock(self.raw(), libc::CLOCK_MONOTONIC, &abstime) };
        self.locked("pthread_mutex_clocklock", rc)
    }
}

/// `pthread_mutex_init` with the robust, process-shared, error-checking attributes.
fn init_raw(raw: *mut libc::pthread_mutex_t, object: impl FnOnce() -> Object) -> Result<()> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    let a = attr.as_mut_ptr();
    // SAFETY: `a` points to attribute storage that pthread_mutexattr_init initialises first;
    // the setters and pthread_mutex_init then only use initialised attributes; `raw` is valid,
    // aligned storage for a pthread_mutex_t that no other thread uses yet (the caller won the
    // claim).
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
                rc = libc::pthread_mutex_init(raw, a);
            }
            libc::pthread_mutexattr_destroy(a);
        }
        rc
    };
    check("pthread_mutex_init", object(), rc)
}

impl<T: Pod> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("addr", &self.state.addr())
            .finish_non_exhaustive()
    }
}

/// The held lock: dereferences to the data; unlocks (`pthread_mutex_unlock`) when dropped.
///
/// It borrows the [`Mutex`] handle and also holds a clone of it, so that the memory stays mapped
/// even if the guard is forgotten (`mem::forget`: then for ever): glibc links a held robust
/// mutex into a per-thread list stored in the mutexes themselves, which must never point at
/// unmapped memory. Not `Send`: the lock belongs to the thread that took it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: Pod> {
    mutex: &'a Mutex<T>,
    /// Keeps the memory mapped for as long as the guard lives — for ever if it is forgotten.
    keep: Mutex<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: `&MutexGuard` only gives `&T`, which is fine to share when T: Sync.
unsafe impl<T: Pod + Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T: Pod> MutexGuard<'a, T> {
    /// After [`LockError::OwnerDied`], declares the data repaired, so that the next locker gets
    /// the lock normally. An invalid-argument error if nothing needed repair.
    pub fn mark_consistent(&mut self) -> Result<()> {
        let repair = &self.mutex.state.repair;
        // Relaxed: under the lock, which orders it.
        if repair.load(Ordering::Relaxed) == 0 {
            return Err(Error::invalid(
                "mark_consistent",
                self.mutex.object(),
                "the mutex is not in the owner-died state",
            ));
        }
        repair.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// `pthread_mutex_unlock(&m)` now, reporting the error that drop would ignore.
    pub fn unlock(self) -> Result<()> {
        let m = self.mutex;
        // SAFETY: the mutex is initialised and held by this thread (the guard), and mapped (the
        // guard's `keep`); `disarm` below makes sure the guard does not unlock it again.
        let rc = unsafe { libc::pthread_mutex_unlock(m.raw()) };
        self.disarm();
        check("pthread_mutex_unlock", m.object(), rc)
    }

    /// The mutex this guard holds.
    pub fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }

    /// Gives up the guard without unlocking (the lock is already released), letting go of its
    /// hold on the memory.
    pub(crate) fn disarm(self) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped or used again, so `keep` is moved out exactly once.
        drop(unsafe { std::ptr::read(&this.keep) });
    }
}

impl<T: Pod> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the lock is held, and the trust model of `Mutex` (peers touch the data only
        // under the lock) means nobody writes it while this reference lives; `keep` keeps it
        // mapped.
        unsafe { &*self.mutex.state.data.get() }
    }
}

impl<T: Pod> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this `&mut T` is exclusive only because of the trust model of `Mutex`: every
        // process touches the data only while it holds the lock, which this thread holds now;
        // `&mut self` makes it the only reference through the guard, and `keep` keeps it mapped.
        unsafe { &mut *self.mutex.state.data.get() }
    }
}

impl<T: Pod> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the mutex is initialised and held by this thread, and still mapped: `keep` is
        // dropped only after this.
        unsafe { libc::pthread_mutex_unlock(self.mutex.raw()) };
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
