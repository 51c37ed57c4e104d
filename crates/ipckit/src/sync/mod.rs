//! Synchronisation primitives that live *inside* shared memory — a System V attachment, a POSIX
//! shared-memory object, a mapped file, an anonymous shared mapping — so that the processes sharing
//! the memory share the lock too.
//!
//! The trap they remove is misreading memory: a lock is placed with `T::init_in(region)`, which
//! initialises it exactly once even when several processes race to create it (a compare-and-swap
//! on a state word picks the one initialiser; the others wait for it), and found with
//! `T::open_in(region)`, which checks a magic word, a layout version, the size and the alignment and
//! returns an error rather than use bytes that are not the expected, initialised primitive. Each
//! primitive is `#[repr(C)]` and starts with that header. They need no destructor: the memory is
//! the primitive, and unmapping or removing it ends it.
//!
//! | type | what | built on | a holder that dies … |
//! |---|---|---|---|
//! | [`Mutex<T>`] | lock around a `Pod` value | glibc robust `pthread_mutex_t` | is reported to the next locker ([`LockError::OwnerDied`]) |
//! | [`Condvar`] | wait for a condition under a [`Mutex`] | `pthread_cond_t`, monotonic clock | (as the mutex) |
//! | [`RwLock<T>`] | readers or one writer | `pthread_rwlock_t` | leaves it locked for ever |
//! | [`Semaphore`] | counting semaphore | shared futex | keeps its unit |
//! | [`Event`] | manual- or auto-reset flag | shared futex | — |
//! | [`Barrier`] | N processes meet | shared futex + generation | leaves the others waiting |
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
//! [`Regions`] cuts a region into consecutive, aligned pieces, the same in every process;
//! [`region_at`] takes the piece at a known offset.
//!
//! ```no_run
//! use ipckit::sync::{Mutex, Regions, Semaphore};
//! use ipckit::{sysv::shm::Segment, Key};
//!
//! let seg = Segment::create(Key::PRIVATE, 4096)?.into_owned();
//! let map = seg.attach()?;
//! // SAFETY: TODO(sync): replaced by SharedRegion placement (not a true promise meanwhile).
//! let bytes = unsafe { map.shared().as_bytes_mut_unchecked()? };
//! let mut regions = Regions::new(bytes);
//! let lock = Mutex::<[u64; 4]>::init_in(regions.take::<Mutex<[u64; 4]>>()?, [0; 4])?;
//! let items = Semaphore::init_in(regions.take::<Semaphore>()?, 0)?;
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! # References
//! [futex(7)](https://man7.org/linux/man-pages/man7/futex.7.html),
//! [pthread_mutexattr_setpshared(3p)](https://man7.org/linux/man-pages/man3/pthread_mutexattr_setpshared.3p.html),
//! [shm_overview(7)](https://man7.org/linux/man-pages/man7/shm_overview.7.html)

mod atomic;
mod futex;
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

use crate::error::{Error, Object, Result};

/// The `size_of::<T>()` bytes at `offset` in `region`, for `T::init_in` / `T::open_in`, after
/// checking that they lie inside the region and that their address is aligned for `T`.
pub fn region_at<T>(region: &mut [u8], offset: usize) -> Result<&mut [u8]> {
    place::region_at::<T>(region, offset)
}

/// Cuts a region into consecutive pieces, each aligned for the type it will hold.
///
/// Padding is computed from the address; mappings start on a page boundary, so every process that
/// cuts the same region in the same order gets the same offsets.
#[derive(Debug)]
pub struct Regions<'a> {
    rest: &'a mut [u8],
    /// Offset of `rest` from the start of the region.
    offset: usize,
}

impl<'a> Regions<'a> {
    /// Starts cutting at the beginning of `region`.
    pub fn new(region: &'a mut [u8]) -> Regions<'a> {
        Regions {
            rest: region,
            offset: 0,
        }
    }

    /// The next `size_of::<T>()` bytes, skipping padding up to `T`'s alignment. An
    /// invalid-argument error if they do not fit (nothing is consumed then).
    pub fn take<T>(&mut self) -> Result<&'a mut [u8]> {
        let (size, align) = (std::mem::size_of::<T>(), std::mem::align_of::<T>());
        let addr = self.rest.as_ptr() as usize;
        let pad = addr.wrapping_neg() % align;
        let len = self.rest.len();
        if !matches!(pad.checked_add(size), Some(need) if need <= len) {
            return Err(Error::invalid(
                "Regions::next",
                Object::Other(format!("region at {:p}", self.rest.as_ptr())),
                format!(
                    "{} ({size} bytes, {align}-byte aligned) does not fit in the {len} bytes left at offset {}",
                    std::any::type_name::<T>(),
                    self.offset
                ),
            ));
        }
        let rest = std::mem::take(&mut self.rest);
        let (piece, rest) = rest[pad..].split_at_mut(size);
        self.rest = rest;
        self.offset += pad + size;
        Ok(piece)
    }

    /// The offset of the next free byte from the start of the region.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The rest of the region.
    pub fn rest(self) -> &'a mut [u8] {
        self.rest
    }
}
