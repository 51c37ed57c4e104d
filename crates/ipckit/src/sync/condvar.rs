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
//! # References
//! [pthread_cond_wait(3p)](https://man7.org/linux/man-pages/man3/pthread_cond_wait.3p.html),
//! [pthread_condattr_setclock(3p)](https://man7.org/linux/man-pages/man3/pthread_condattr_setclock.3p.html),
//! [pthread_condattr_setpshared(3p)](https://man7.org/linux/man-pages/man3/pthread_condattr_setpshared.3p.html)

use std::cell::UnsafeCell;
use std::fmt;
use std::time::Duration;

use bytemuck::Pod;

use super::mutex::{check, monotonic_deadline, os, LockError, LockResult, MutexGuard};
use super::place::{self, object_at, Header, Shared};
use crate::error::{Object, Result};

/// A process-shared condition variable in shared memory, used with a [`Mutex`](super::Mutex).
#[repr(C)]
pub struct Condvar {
    header: Header,
    raw: UnsafeCell<libc::pthread_cond_t>,
}

// SAFETY: pthread_cond_t is made for concurrent use by many threads and processes; all access
// goes through pthread calls.
unsafe impl Sync for Condvar {}

// SAFETY: repr(C), header first; pthread_cond_t is a C struct of integers, so every bit pattern is
// a valid Condvar.
unsafe impl Shared for Condvar {
    const MAGIC: [u8; 4] = *b"IKCV";
    const VERSION: u32 = 1;
    const NAME: &'static str = "Condvar";

    fn header(&self) -> &Header {
        &self.header
    }
}

impl Condvar {
    /// `pthread_cond_init(&c, {PTHREAD_PROCESS_SHARED, CLOCK_MONOTONIC})` — initialises a
    /// condition variable at the start of `region`, once, even when processes race (see
    /// [`Mutex::init_in`](super::Mutex::init_in)).
    pub fn init_in(region: &mut [u8]) -> Result<&Condvar> {
        place::init_in::<Condvar>(region, Condvar::init_raw)
    }

    /// Validates and returns the condition variable another process initialised at the start of
    /// `region`.
    pub fn open_in(region: &mut [u8]) -> Result<&Condvar> {
        place::open_in::<Condvar>(region)
    }

    fn object(&self) -> Object {
        object_at::<Self>(self as *const Self as *const u8)
    }

    fn init_raw(&self) -> Result<()> {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_condattr_t>::uninit();
        let a = attr.as_mut_ptr();
        // SAFETY: pthread_condattr_init initialises `a` before the setters use it; `raw` is valid,
        // aligned storage that nobody else uses before READY.
        let rc = unsafe {
            let mut rc = libc::pthread_condattr_init(a);
            if rc == 0 {
                rc = libc::pthread_condattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED);
                if rc == 0 {
                    rc = libc::pthread_condattr_setclock(a, libc::CLOCK_MONOTONIC);
                }
                if rc == 0 {
                    rc = libc::pthread_cond_init(self.raw.get(), a);
                }
                libc::pthread_condattr_destroy(a);
            }
            rc
        };
        check("pthread_cond_init", self.object(), rc)
    }

    /// `pthread_cond_wait(&c, &m)` — unlocks the guard's mutex, sleeps until notified (or
    /// spuriously), and locks it again. [`LockError::OwnerDied`] if, meanwhile, a holder died:
    /// the lock is held and the data needs repair.
    pub fn wait<'a, T: Pod>(
        &self,
        guard: MutexGuard<'a, T>,
    ) -> LockResult<MutexGuard<'a, T>, MutexGuard<'a, T>> {
        let mutex = guard.into_mutex();
        // SAFETY: both objects are initialised; this thread holds the mutex (it had the guard),
        // which pthread_cond_wait requires.
        let rc = unsafe { libc::pthread_cond_wait(self.raw.get(), mutex.raw()) };
        self.relocked("pthread_cond_wait", rc, MutexGuard::held(mutex))
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
        let mutex = guard.into_mutex();
        // SAFETY: as in `wait`; `abstime` is a live timespec on the clock the condvar was
        // initialised with.
        let rc = unsafe { libc::pthread_cond_timedwait(self.raw.get(), mutex.raw(), &abstime) };
        self.relocked("pthread_cond_timedwait", rc, MutexGuard::held(mutex))
    }

    /// The outcome of a wait, given a guard for the mutex as it is held again.
    fn relocked<'a, T: Pod>(
        &self,
        op: &'static str,
        rc: libc::c_int,
        guard: MutexGuard<'a, T>,
    ) -> LockResult<(MutexGuard<'a, T>, bool), MutexGuard<'a, T>> {
        match rc {
            0 => Ok((guard, false)),
            libc::ETIMEDOUT => Ok((guard, true)),
            libc::EOWNERDEAD => Err(LockError::OwnerDied(guard)),
            libc::ENOTRECOVERABLE => {
                // The mutex was not re-acquired: nothing to unlock.
                std::mem::forget(guard);
                Err(LockError::NotRecoverable(os(op, self.object(), rc)))
            }
            // EINVAL/EPERM are reported before the mutex is released: still held, and the
            // guard's drop unlocks it.
            _ => Err(LockError::Os(os(op, self.object(), rc))),
        }
    }

    /// `pthread_cond_signal(&c)` — wakes one waiter, if any.
    pub fn notify_one(&self) {
        // SAFETY: the condvar is initialised. It cannot fail for a valid condvar.
        unsafe { libc::pthread_cond_signal(self.raw.get()) };
    }

    /// `pthread_cond_broadcast(&c)` — wakes every waiter.
    pub fn notify_all(&self) {
        // SAFETY: as in `notify_one`.
        unsafe { libc::pthread_cond_broadcast(self.raw.get()) };
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar")
            .field("addr", &(self as *const Self))
            .finish_non_exhaustive()
    }
}
