//! A process-shared condition variable that lives inside shared memory and works with
//! [`Mutex`]: wait for a condition on the protected data without spinning.
//!
//! It is glibc's `pthread_cond_t` initialised with `PTHREAD_PROCESS_SHARED` and
//! `CLOCK_MONOTONIC`, so timed waits do not jump with the wall clock. The mutex's robustness
//! carries through: if the holder died while this thread waited, the wait returns
//! [`LockError::OwnerDied`] with the lock re-acquired. A process killed *while waiting* may take a
//! notification with it: prefer [`notify_all`](Condvar::notify_all) where processes may die, and
//! always wait in a loop that re-checks the condition.
//!
//! # Trust
//! Like the [`Mutex`], it trusts the processes that share it not to scribble on its bytes:
//! glibc's `pthread_cond_t` keeps counters and futex words whose corruption it does not expect.
//!
//! # References
//! [pthread_cond_wait(3p)](https://man7.org/linux/man-pages/man3/pthread_cond_wait.3p.html),
//! [pthread_condattr_setclock(3p)](https://man7.org/linux/man-pages/man3/pthread_condattr_setclock.3p.html),
//! [pthread_condattr_setpshared(3p)](https://man7.org/linux/man-pages/man3/pthread_condattr_setpshared.3p.html)

use std::cell::UnsafeCell;
use std::fmt;
use std::time::Duration;

use bytemuck::Pod;

use super::mutex::{check, monotonic_deadline, os, LockError, LockResult, Mutex, MutexGuard};
use super::place::{self, object_at, Header, Placed, Shared};
use crate::error::{Object, Result};
use crate::shared::SharedRegion;

/// A process-shared condition variable in shared memory, used with a [`Mutex`](super::Mutex):
/// a handle that keeps the memory mapped (clone it to share it between threads), placed with
/// [`init_in`](Condvar::init_in), found with [`open_in`](Condvar::open_in), [`SIZE`](Condvar::SIZE)
/// bytes aligned to [`ALIGN`](Condvar::ALIGN).
///
/// **Trust:** the processes sharing it must not scribble on its bytes: glibc's `pthread_cond_t`
/// keeps counters and futex words whose corruption it does not expect (see
/// [`sync`](crate::sync#trust)). A process killed while waiting may take a notification with it:
/// prefer [`notify_all`](Condvar::notify_all) where processes may die, and wait in a loop.
#[derive(Clone)]
pub struct Condvar {
    state: Placed<State>,
}

/// The condition variable's bytes in shared memory.
#[repr(C)]
struct State {
    header: Header,
    raw: UnsafeCell<libc::pthread_cond_t>,
}

// SAFETY: pthread_cond_t is made for concurrent use by many threads and processes; all access
// goes through pthread calls.
unsafe impl Sync for State {}

// SAFETY: repr(C), header first; pthread_cond_t is a C struct of integers in an UnsafeCell, so
// every bit pattern is a valid State and every byte is inside an atomic or an UnsafeCell.
unsafe impl Shared for State {
    const MAGIC: [u8; 4] = *b"IKCV";
    const VERSION: u32 = 1;
    const NAME: &'static str = "Condvar";

    fn header(&self) -> &Header {
        &self.header
    }
}

impl Condvar {
    /// The bytes a condition variable takes in shared memory.
    pub const SIZE: usize = std::mem::size_of::<State>();
    /// The alignment a condition variable needs.
    pub const ALIGN: usize = std::mem::align_of::<State>();

    /// `pthread_cond_init(&c, {PTHREAD_PROCESS_SHARED, CLOCK_MONOTONIC})` — initialises a
    /// condition variable at the start of `region`, once, even when processes race (see
    /// [`Mutex::init_in`](super::Mutex::init_in)).
    pub fn init_in(region: SharedRegion) -> Result<Condvar> {
        let state = place::init_in::<State>(region, |c| {
            init_raw(c.raw.get(), || {
                object_at::<State>((c as *const State).cast())
            })
        })?;
        Ok(Condvar { state })
    }

    /// Validates and returns the condition variable another process initialised at the start of
    /// `region`.
    pub fn open_in(region: SharedRegion) -> Result<Condvar> {
        let state = place::open_in::<State>(region)?;
        Ok(Condvar { state })
    }

    fn object(&self) -> Object {
        object_at::<State>(self.state.addr())
    }

    fn raw(&self) -> *mut libc::pthread_cond_t {
        self.state.raw.get()
    }

    /// `pthread_cond_wait(&c, &m)` — unlocks the guard's mutex, sleeps until notified (or
    /// spuriously), and locks it again. [`LockError::OwnerDied`] if, meanwhile, a holder died
    /// (or an earlier one's data is still unrepaired): the lock is held and the data needs
    /// repair.
    pub fn wait<'a, T: Pod>(
        &self,
        guard: MutexGuard<'a, T>,
    ) -> LockResult<MutexGuard<'a, T>, MutexGuard<'a, T>> {
        // SAFETY: both objects are initialised and kept mapped (this handle, the guard); this
        // thread holds the mutex (it has the guard), which pthread_cond_wait requires. The guard
        // stays alive across the call, so the memory stays mapped while glibc holds the mutex
        // again on return.
        let rc = unsafe { libc::pthread_cond_wait(self.raw(), guard.mutex().raw()) };
        self.relocked("pthread_cond_wait", rc, guard)
            .map(|(g, _)| g)
    }

    /// `pthread_cond_timedwait(&c, &m, now + timeout)` on the monotonic clock — like
    /// [`wait`](Self::wait), but gives up after `timeout`. The flag is `true` when the wait timed
    /// out; the lock is held again either way.
    pub fn wait_timeout<'a, T: Pod>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, bool), MutexGuard<'a, T>> {
        let abstime = monotonic_deadline(timeout);
        // SAFETY: as in `wait`; `abstime` is a live timespec on the clock the condvar was
        // initialised with.
        let rc = unsafe { libc::pthread_cond_timedwait(self.raw(), guard.mutex().raw(), &abstime) };
        self.relocked("pthread_cond_timedwait", rc, guard)
    }

    /// The outcome of a wait, given the guard of the mutex as it is held again.
    fn relocked<'a, T: Pod>(
        &self,
        op: &'static str,
        rc: libc::c_int,
        guard: MutexGuard<'a, T>,
    ) -> LockResult<(MutexGuard<'a, T>, bool), MutexGuard<'a, T>> {
        match rc {
            0 => Mutex::held(guard, false).map(|g| (g, false)),
            libc::ETIMEDOUT => Mutex::held(guard, false).map(|g| (g, true)),
            libc::EOWNERDEAD => Mutex::held(guard, true).map(|g| (g, false)),
            libc::ENOTRECOVERABLE => {
                // The mutex was not re-acquired: nothing to unlock.
                guard.disarm();
                Err(LockError::NotRecoverable(os(op, self.object(), rc)))
            }
            // EINVAL/EPERM are reported before the mutex is released: still held, and the
            // guard's drop unlocks it.
            _ => Err(LockError::Os(os(op, self.object(), rc))),
        }
    }

    /// `pthread_cond_signal(&c)` — wakes one waiter, if any.
    pub fn notify_one(&self) {
        // SAFETY: the condvar is initialised and kept mapped. It cannot fail for a valid condvar.
        unsafe { libc::pthread_cond_signal(self.raw()) };
    }

    /// `pthread_cond_broadcast(&c)` — wakes every waiter.
    pub fn notify_all(&self) {
        // SAFETY: as in `notify_one`.
        unsafe { libc::pthread_cond_broadcast(self.raw()) };
    }
}

/// `pthread_cond_init` with the process-shared, monotonic-clock attributes.
fn init_raw(raw: *mut libc::pthread_cond_t, object: impl FnOnce() -> Object) -> Result<()> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_condattr_t>::uninit();
    let a = attr.as_mut_ptr();
    // SAFETY: pthread_condattr_init initialises `a` before the setters use it; `raw` is valid,
    // aligned storage that nobody else uses before READY (the caller won the claim).
    let rc = unsafe {
        let mut rc = libc::pthread_condattr_init(a);
        if rc == 0 {
            rc = libc::pthread_condattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED);
            if rc == 0 {
                rc = libc::pthread_condattr_setclock(a, libc::CLOCK_MONOTONIC);
            }
            if rc == 0 {
                rc = libc::pthread_cond_init(raw, a);
            }
            libc::pthread_condattr_destroy(a);
        }
        rc
    };
    check("pthread_cond_init", object(), rc)
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar")
            .field("addr", &self.state.addr())
            .finish_non_exhaustive()
    }
}
