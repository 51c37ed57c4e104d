//! Synchronisation primitives that live *inside* shared memory — a System V attachment, a POSIX
//! shared-memory object, a mapped file, an anonymous shared mapping — so that the processes sharing
//! the memory share the lock too.
//!
//! The trap they remove is misreading memory: a lock is placed with `T::init_in(region)`, which
//! initialises it exactly once even when several processes race to create it (a compare-and-swap
//! on a state word picks the one initialiser; the others wait for it), and found with
//! `T::open_in(region)`, which checks a magic word, a layout version, the size and the alignment and
//! returns an error rather than use bytes that are not the expected, initialised primitive. They
//! need no destructor: the memory is the primitive, and unmapping or removing it ends it.
//!
//! # Handles keep the memory mapped
//! The `region` is a [`SharedRegion`](crate::shared::SharedRegion): a byte range of a mapping held
//! in an `Arc`. What `init_in` and `open_in` return is an owned handle that keeps a clone of it, so
//! the memory stays mapped for as long as any handle — or any [`MutexGuard`], even a forgotten
//! one — exists; no safe sequence of calls can leave a lock pointing into unmapped memory. Handles
//! are cheap to clone, and are `Send + Sync`: share them between threads by reference or by clone.
//! The memory other processes write is reached only through atomics, `UnsafeCell`s and raw
//! pointers, never through a plain `&`/`&mut` reference to its bytes.
//!
//! # Trust
//! Each type says what it assumes of the processes that share it:
//! - the **pthread-based** ones ([`Mutex`], [`Condvar`], [`RwLock`]) trust their peers not to
//!   scribble on their bytes: glibc follows pointers and counters stored in them (a robust
//!   mutex's list pointers above all), and the guards' `&T` / `&mut T` to the protected data are
//!   sound only if every process touches the data under the lock;
//! - the **futex-based** ones ([`Semaphore`], [`Event`], [`Barrier`]) and the **classic locks**
//!   tolerate hostile bytes: every word is an atomic, participant counts are validated once and
//!   kept in the handle, and every value read is bounded before use. A scribbling peer can break
//!   what they guarantee (wrong counts, two holders, a wait that never ends — as a peer that dies
//!   can), never cause undefined behaviour or a panic in this process.
//!
//! | type | what | built on | a holder that dies … |
//! |---|---|---|---|
//! | [`Mutex<T>`] | lock around a `Pod` value | glibc robust `pthread_mutex_t` | is reported to the next locker ([`LockError::OwnerDied`]) |
//! | [`Condvar`] | wait for a condition under a [`Mutex`] | `pthread_cond_t`, monotonic clock | (as the mutex) |
//! | [`RwLock<T>`] | readers or one writer | `pthread_rwlock_t` | leaves it locked for ever |
//! | [`Semaphore`] | counting semaphore | shared futex | keeps its unit |
//! | [`Event`] | manual- or auto-reset flag | shared futex | — |
//! | [`Barrier`] | N processes meet | shared futex: round and arrivals in one word | leaves the others waiting (`wait_timeout` gives up and takes its arrival back) |
//! | [`Dekker`], [`Peterson`] | 2-process locks | loads, stores, fences | leaves it locked for ever |
//! | [`FilterLock`], [`Szymanski`], [`Bakery`] | N-process locks | loads, stores, fences | leaves it locked for ever |
//!
//! The classic algorithms ([`ParticipantLock`]) are the textbook ones, written to be correct on
//! weakly ordered CPUs as well as x86-64: each store that must be seen before a following load is
//! separated from it by a `fence(SeqCst)`, named in a comment. Their atomic protocols — and those
//! of the futex primitives and of `init_in` — are model-checked with loom
//! (`RUSTFLAGS="--cfg loom" cargo test -p ipckit --release --lib sync`), including runs of
//! Dekker's and Peterson's algorithms *without* their fences, which loom shows to fail. The
//! pthread-based ones cannot run under loom; multi-process tests cover them.
//!
//! # Placing several primitives
//! [`SharedRegion::take`](crate::shared::SharedRegion::take) cuts consecutive, aligned pieces off
//! a region — the same in every process, as a mapping starts on a page boundary; each type says
//! how much it needs with its `SIZE` and `ALIGN` constants.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ipckit::shared::SharedRegion;
//! use ipckit::sync::{Mutex, Semaphore};
//! use ipckit::{sysv::shm::Segment, Key};
//!
//! type Lock = Mutex<[u64; 4]>;
//! let seg = Segment::create(Key::PRIVATE, 4096)?.into_owned();
//! let mut region = SharedRegion::new(Arc::new(seg.attach()?))?;
//! let lock = Lock::init_in(region.take(Lock::SIZE, Lock::ALIGN)?, [0; 4])?;
//! let items = Semaphore::init_in(region.take(Semaphore::SIZE, Semaphore::ALIGN)?, 0)?;
//! lock.lock().map_err(ipckit::Error::from)?[0] += 1;
//! items.post()?;
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! # References
//! [futex(7)](https://man7.org/linux/man-pages/man7/futex.7.html),
//! [pthread_mutexattr_setpshared(3p)](https://man7.org/linux/man-pages/man3/pthread_mutexattr_setpshared.3p.html),
//! [shm_overview(7)](https://man7.org/linux/man-pages/man7/shm_overview.7.html)

pub(crate) mod atomic;
pub(crate) mod futex;
mod participant;
pub(crate) mod place;

mod bakery;
mod barrier;
#[cfg(not(loom))]
mod condvar;
mod dekker;
mod event;
mod filter;
#[cfg(not(loom))]
mod mutex;
mod peterson;
#[cfg(not(loom))]
mod rwlock;
mod semaphore;
mod szymanski;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use bakery::Bakery;
pub use barrier::Barrier;
#[cfg(not(loom))]
pub use condvar::Condvar;
pub use dekker::Dekker;
pub use event::{Event, EventMode};
pub use filter::FilterLock;
#[cfg(not(loom))]
pub use mutex::{LockError, LockResult, Mutex, MutexGuard};
pub use participant::{ParticipantGuard, ParticipantLock, MAX_PARTICIPANTS};
pub use peterson::Peterson;
#[cfg(not(loom))]
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{Semaphore, SEMAPHORE_MAX};
pub use szymanski::Szymanski;
