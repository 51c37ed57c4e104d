//! A process-shared reader-writer lock that lives inside shared memory and protects a `Pod` value:
//! many readers at once, or one writer.
//!
//! It is glibc's `pthread_rwlock_t` with `PTHREAD_PROCESS_SHARED`, preferring writers (a stream of
//! readers cannot starve a writer). It is **not robust**: POSIX has no robust reader-writer lock,
//! so a process that dies holding it leaves it held for ever. Use it only among processes that do
//! not die inside it, and [`Mutex`](super::Mutex) where they might.
//!
//! # Trust
//! It trusts the processes that share it not to scribble on its bytes: glibc's
//! `pthread_rwlock_t` keeps counters and futex words whose corruption it does not expect, and the
//! guards' `&T` / `&mut T` are sound only if every process touches the data under the lock.
//!
//! # References
//! [pthread_rwlock_rdlock(3p)](https://man7.org/linux/man-pages/man3/pthread_rwlock_rdlock.3p.html),
//! [pthread_rwlockattr_setkind_np(3)](https://man7.org/linux/man-pages/man3/pthread_rwlockattr_setkind_np.3.html)

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use bytemuck::Pod;

use super::mutex::{check, os};
use super::place::{self, object_at, Header, Placed, Shared};
use crate::error::{Object, Result};
use crate::shared::SharedRegion;

/// glibc's `PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP` (not in the libc crate for gnu).
const PREFER_WRITER_NONRECURSIVE: libc::c_int = 2;

/// A process-shared reader-writer lock around a `T` in shared memory. Not robust.
///
/// A handle that keeps the memory mapped (clone it to share it between threads), placed with
/// [`init_in`](RwLock::init_in), found with [`open_in`](RwLock::open_in), [`SIZE`](RwLock::SIZE)
/// bytes aligned to [`ALIGN`](RwLock::ALIGN).
///
/// **Not robust:** a process that dies holding it leaves it held for ever (POSIX has no robust
/// reader-writer lock); use [`Mutex`](super::Mutex) where processes may die inside.
///
/// **Trust:** the processes sharing it must not scribble on its bytes: glibc's
/// `pthread_rwlock_t` keeps counters and futex words whose corruption it does not expect, and the
/// guards' `&T` / `&mut T` are sound only if every process touches the data under the lock (see
/// [`sync`](crate::sync#trust)).
pub struct RwLock<T: Pod> {
    state: Placed<State<T>>,
}

impl<T: Pod> Clone for RwLock<T> {
    fn clone(&self) -> RwLock<T> {
        RwLock {
            state: self.state.clone(),
        }
    }
}

/// The lock's bytes in shared memory.
#[repr(C)]
struct State<T> {
    header: Header,
    raw: UnsafeCell<libc::pthread_rwlock_t>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is reached only through guards that hold the pthread lock: shared `&T` under a
// read lock (so T: Sync), `&mut T` under the write lock (so T: Send).
unsafe impl<T: Pod + Send + Sync> Sync for State<T> {}

// SAFETY: repr(C), header first; pthread_rwlock_t is a C struct of integers and T is Pod, each in
// an UnsafeCell, so every bit pattern is valid and every byte is inside an atomic or an
// UnsafeCell.
unsafe impl<T: Pod> Shared for State<T> {
    const MAGIC: [u8; 4] = *b"IKRW";
    const VERSION: u32 = 1;
    const NAME: &'static str = "RwLock";

    fn header(&self) -> &Header {
        &self.header
    }
}

impl<T: Pod> RwLock<T> {
    /// The bytes an `RwLock<T>` takes in shared memory.
    pub const SIZE: usize = std::mem::size_of::<State<T>>();
    /// The alignment an `RwLock<T>` needs.
    pub const ALIGN: usize = std::mem::align_of::<State<T>>();

    /// `pthread_rwlock_init(&l, {PTHREAD_PROCESS_SHARED, prefer writers})` — initialises a lock
    /// holding `value` at the start of `region`, once, even when processes race (the losers'
    /// `value` is dropped).
    pub fn init_in(region: SharedRegion, value: T) -> Result<RwLock<T>> {
        let state = place::init_in::<State<T>>(region, |l| {
            // SAFETY: this process won the claim; nobody following the protocol touches the body
            // before READY.
            unsafe { l.data.get().write(value) };
            init_raw(l.raw.get(), || {
                object_at::<State<T>>((l as *const State<T>).cast())
            })
        })?;
        Ok(RwLock { state })
    }

    /// Validates and returns the lock another process initialised at the start of `region`.
    pub fn open_in(region: SharedRegion) -> Result<RwLock<T>> {
        let state = place::open_in::<State<T>>(region)?;
        Ok(RwLock { state })
    }

    fn object(&self) -> Object {
        object_at::<State<T>>(self.state.addr())
    }

    fn raw(&self) -> *mut libc::pthread_rwlock_t {
        self.state.raw.get()
    }

    /// `pthread_rwlock_rdlock(&l)` — waits for a read lock; the guard unlocks when dropped.
    /// `EDEADLK` if this thread holds the write lock.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, T>> {
        // SAFETY: initialised before READY, kept mapped by `self`.
        let rc = unsafe { libc::pthread_rwlock_rdlock(self.raw()) };
        check("pthread_rwlock_rdlock", self.object(), rc)?;
        Ok(RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// `pthread_rwlock_tryrdlock(&l)` — a read lock if one is available now, `Ok(None)` if a
    /// writer holds or waits for the lock.
    pub fn try_read(&self) -> Result<Option<RwLockReadGuard<'_, T>>> {
        // SAFETY: initialised before READY, kept mapped by `self`.
        let rc = unsafe { libc::pthread_rwlock_tryrdlock(self.raw()) };
        if rc == libc::EBUSY {
            return Ok(None);
        }
        check("pthread_rwlock_tryrdlock", self.object(), rc)?;
        Ok(Some(RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        }))
    }

    /// `pthread_rwlock_wrlock(&l)` — waits for the write lock; the guard unlocks when dropped.
    /// `EDEADLK` if this thread already holds the lock.
    pub fn write(&self) -> Result<RwLockWriteGuard<'_, T>> {
        // SAFETY: initialised before READY, kept mapped by `self`.
        let rc = unsafe { libc::pthread_rwlock_wrlock(self.raw()) };
        check("pthread_rwlock_wrlock", self.object(), rc)?;
        Ok(RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// `pthread_rwlock_trywrlock(&l)` — the write lock if it is free now, `Ok(None)` otherwise.
    pub fn try_write(&self) -> Result<Option<RwLockWriteGuard<'_, T>>> {
        // SAFETY: initialised before READY, kept mapped by `self`.
        let rc = unsafe { libc::pthread_rwlock_trywrlock(self.raw()) };
        if rc == libc::EBUSY {
            return Ok(None);
        }
        check("pthread_rwlock_trywrlock", self.object(), rc)?;
        Ok(Some(RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        }))
    }

    fn unlock(&self) {
        // SAFETY: called once per guard, by the thread that holds the lock; the guard borrows
        // `self`, which keeps the memory mapped.
        let rc = unsafe { libc::pthread_rwlock_unlock(self.raw()) };
        debug_assert_eq!(rc, 0, "{}", os("pthread_rwlock_unlock", self.object(), rc));
    }
}

/// `pthread_rwlock_init` with the process-shared, writer-preferring attributes.
fn init_raw(raw: *mut libc::pthread_rwlock_t, object: impl FnOnce() -> Object) -> Result<()> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_rwlockattr_t>::uninit();
    let a = attr.as_mut_ptr();
    // SAFETY: pthread_rwlockattr_init initialises `a` before the setters use it; `raw` is valid,
    // aligned storage that nobody else uses before READY (the caller won the claim).
    let rc = unsafe {
        let mut rc = libc::pthread_rwlockattr_init(a);
        if rc == 0 {
            rc = libc::pthread_rwlockattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED);
            if rc == 0 {
                rc = libc::pthread_rwlockattr_setkind_np(a, PREFER_WRITER_NONRECURSIVE);
            }
            if rc == 0 {
                rc = libc::pthread_rwlock_init(raw, a);
            }
            libc::pthread_rwlockattr_destroy(a);
        }
        rc
    };
    check("pthread_rwlock_init", object(), rc)
}

impl<T: Pod> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock")
            .field("addr", &self.state.addr())
            .finish_non_exhaustive()
    }
}

/// A read lock: dereferences to the data; unlocks when dropped. Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: Pod> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

/// The write lock: dereferences mutably to the data; unlocks when dropped. Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: Pod> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> Deref for RwLockReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: a read lock is held, and by the trust model of `RwLock` (peers touch the data
        // only under the lock) nobody writes the data while it is.
        unsafe { &*self.lock.state.data.get() }
    }
}

impl<T: Pod> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the write lock is held; see `deref_mut`.
        unsafe { &*self.lock.state.data.get() }
    }
}

impl<T: Pod> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this `&mut T` is exclusive only because of the trust model of `RwLock`: every
        // process touches the data only under the lock, whose write half this thread holds;
        // `&mut self` makes it the only reference through the guard.
        unsafe { &mut *self.lock.state.data.get() }
    }
}

impl<T: Pod> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: Pod> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}
