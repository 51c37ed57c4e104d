//! What the classic mutual-exclusion algorithms have in common: a fixed set of participants, each
//! entering with its own index, and a guard that leaves when dropped.
//!
//! These locks protect no data of their own (they hand out no `&mut T`), so using them wrongly —
//! two threads with the same index, an index of another lock — breaks mutual exclusion but never
//! memory safety.
//!
//! # Trust
//! They tolerate peers that scribble on their bytes: every word is an atomic, the participant
//! count is read and validated once, when the handle is made, and kept in the handle (so indices
//! are always below it, and it is at most [`MAX_PARTICIPANTS`], the arrays' length), and every
//! value read from a shared word is only compared, never used as an index or in arithmetic that
//! could overflow. A scribbling peer can break mutual exclusion or keep others waiting — as a
//! participant that dies inside the lock does — but cannot cause undefined behaviour or a panic.

use std::fmt;

use crate::error::{Error, Object, Result};

pub(crate) mod sealed {
    /// The unchecked entry and exit protocols, implemented by each algorithm.
    pub trait Raw: Sync {
        /// The algorithm's name in messages.
        fn name(&self) -> &'static str;
        /// The number of participants (kept in the handle, at most `MAX_PARTICIPANTS`).
        fn count(&self) -> usize;
        /// The address of the lock's state, for messages.
        fn addr(&self) -> *const u8;
        /// The entry protocol for participant `me` (< `count()`); returns inside the critical
        /// section.
        fn acquire(&self, me: usize);
        /// The exit protocol for participant `me`.
        fn release(&self, me: usize);
        /// `self` as a trait object, for the guard.
        fn as_raw(&self) -> &dyn Raw;
    }
}

/// A lock for a fixed number of participants (processes or threads), each with its own index in
/// `0..participants()`: [`Dekker`](super::Dekker), [`Peterson`](super::Peterson),
/// [`FilterLock`](super::FilterLock), [`Szymanski`](super::Szymanski), [`Bakery`](super::Bakery).
///
/// Every index must be used by at most one thread at a time. A participant that dies inside the
/// lock leaves it locked for ever.
///
/// **Trust:** these locks tolerate peers that scribble on their bytes. Every word is an atomic;
/// the participant count is validated once, when the handle is made, and kept in the handle (so
/// an index is always below it, and it never exceeds the arrays' length [`MAX_PARTICIPANTS`]);
/// every value read from a shared word is only compared, never used as an index or in arithmetic
/// that could overflow. A scribbling peer can break mutual exclusion or keep the others waiting,
/// never cause undefined behaviour or a panic in this process. They protect no data of their own.
pub trait ParticipantLock: sealed::Raw {
    /// The number of participants the lock was made for.
    fn participants(&self) -> usize {
        self.count()
    }

    /// Runs the entry protocol as participant `me` and returns once inside the critical section;
    /// the guard runs the exit protocol when dropped. An invalid-argument error if `me` is not
    /// below [`participants`](Self::participants).
    fn lock(&self, me: usize) -> Result<ParticipantGuard<'_>> {
        let n = self.count();
        if me >= n {
            return Err(Error::invalid(
                "lock",
                Object::Other(format!("ipckit::sync::{} at {:p}", self.name(), self.addr()).into()),
                format!("participant {me} is not in 0..{n}"),
            ));
        }
        self.acquire(me);
        Ok(ParticipantGuard {
            lock: self.as_raw(),
            me,
        })
    }
}

impl<T: sealed::Raw> ParticipantLock for T {}

/// Inside the critical section of a [`ParticipantLock`]; leaves it (the exit protocol) when
/// dropped.
#[must_use = "the critical section ends as soon as the guard is dropped"]
pub struct ParticipantGuard<'a> {
    lock: &'a dyn sealed::Raw,
    me: usize,
}

impl ParticipantGuard<'_> {
    /// The participant index this guard entered with.
    pub fn participant(&self) -> usize {
        self.me
    }
}

impl Drop for ParticipantGuard<'_> {
    fn drop(&mut self) {
        self.lock.release(self.me);
    }
}

impl fmt::Debug for ParticipantGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParticipantGuard")
            .field("lock", &self.lock.name())
            .field("participant", &self.me)
            .finish()
    }
}

/// `fence(SeqCst)` when `FENCED`: lets the loom models run each algorithm without its fences to
/// show that they are needed.
#[inline]
pub(crate) fn sc_fence<const FENCED: bool>() {
    if FENCED {
        super::atomic::fence(super::atomic::Ordering::SeqCst);
    }
}

/// The largest number of participants of [`FilterLock`](super::FilterLock),
/// [`Szymanski`](super::Szymanski) and [`Bakery`](super::Bakery) (the size of their arrays).
pub const MAX_PARTICIPANTS: usize = 32;

/// Checks a participant count for the N-process locks.
#[cfg(not(loom))]
pub(crate) fn check_count<T: super::place::Shared>(
    region: &crate::shared::SharedRegion,
    n: usize,
) -> Result<u32> {
    if n == 0 || n > MAX_PARTICIPANTS {
        return Err(Error::invalid(
            "init_in",
            super::place::object_at::<T>(region.as_ptr()),
            format!("{n} participants: between 1 and {MAX_PARTICIPANTS} are supported"),
        ));
    }
    Ok(n as u32)
}

/// A participant count read from shared memory, bounded to `1..=MAX_PARTICIPANTS` (after
/// [`stored_count`] accepted it, a peer may still have changed it).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn bounded_count(n: u32) -> usize {
    (n as usize).clamp(1, MAX_PARTICIPANTS)
}

/// The stored participant count of an N-process lock, validated.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn stored_count(n: u32) -> std::result::Result<(), String> {
    if n == 0 || n as usize > MAX_PARTICIPANTS {
        return Err(format!(
            "{n} participants is outside 1..={MAX_PARTICIPANTS}"
        ));
    }
    Ok(())
}

/// Declares a two-participant lock (participants 0 and 1) from its two per-participant flags and
/// its one shared word, and gives it what Dekker's and Peterson's locks have in common: the handle
/// type `$lock` over the `#[repr(C)]` state `$state` (a [`Header`](super::place::Header), the
/// flags, the word), `new` / `init_in` / `open_in` (every word 0), `SIZE` / `ALIGN`, `Default`,
/// `Debug` and the [`ParticipantLock`] plumbing. The algorithm itself stays with the type, as two
/// inherent methods of `$state`: `acquire_with::<FENCED>(me)` (the entry protocol, fenced unless a
/// loom model shows the fences are needed) and `leave(me)` (the exit protocol).
macro_rules! two_participant_lock {
    (
        $(#[$attr:meta])*
        pub struct $lock:ident($state:ident) {
            $(#[$flags_attr:meta])*
            $flags:ident: [AtomicU32; 2],
            $(#[$word_attr:meta])*
            $word:ident: AtomicU32,
        }
        magic = $magic:expr;
    ) => {
        $(#[$attr])*
        ///
        /// A handle that keeps the memory mapped (clone it to share it between threads); placed with
        /// `init_in`, found with `open_in`, `SIZE` bytes aligned to `ALIGN`. Tolerates peers that
        /// scribble on it: wrong locking at worst (see
        /// [`ParticipantLock`](crate::sync::ParticipantLock)).
        #[derive(Clone)]
        pub struct $lock {
            state: $crate::sync::place::Placed<$state>,
        }

        /// The lock's bytes in shared memory.
        #[repr(C)]
        pub(crate) struct $state {
            header: $crate::sync::place::Header,
            $(#[$flags_attr])*
            $flags: [$crate::sync::atomic::AtomicU32; 2],
            $(#[$word_attr])*
            $word: $crate::sync::atomic::AtomicU32,
        }

        // SAFETY: repr(C), header first, the rest atomics: every bit pattern is valid and every
        // byte is inside an atomic.
        unsafe impl $crate::sync::place::Shared for $state {
            const MAGIC: [u8; 4] = $magic;
            const VERSION: u32 = 1;
            const NAME: &'static str = stringify!($lock);

            fn header(&self) -> &$crate::sync::place::Header {
                &self.header
            }
        }

        impl $lock {
            /// The bytes the lock takes in shared memory.
            pub const SIZE: usize = std::mem::size_of::<$state>();
            /// The alignment the lock needs.
            pub const ALIGN: usize = std::mem::align_of::<$state>();

            /// A lock in ordinary memory, for threads.
            pub fn new() -> $lock {
                use $crate::sync::atomic::AtomicU32;
                use $crate::sync::place::{Header, Shared};
                $lock {
                    state: $crate::sync::place::Placed::own($state {
                        header: Header::ready($state::MAGIC, $state::VERSION, Self::SIZE),
                        $flags: [AtomicU32::new(0), AtomicU32::new(0)],
                        $word: AtomicU32::new(0),
                    }),
                }
            }

            /// Initialises the lock at the start of `region`, once, even when processes race.
            #[cfg(not(loom))]
            pub fn init_in(
                region: $crate::shared::SharedRegion,
            ) -> $crate::error::Result<$lock> {
                use $crate::sync::atomic::Ordering;
                let state = $crate::sync::place::init_in::<$state>(region, |l| {
                    l.$flags[0].store(0, Ordering::Relaxed);
                    l.$flags[1].store(0, Ordering::Relaxed);
                    l.$word.store(0, Ordering::Relaxed);
                    Ok(())
                })?;
                Ok($lock { state })
            }

            /// Validates and returns the lock another process initialised at the start of
            /// `region`.
            #[cfg(not(loom))]
            pub fn open_in(
                region: $crate::shared::SharedRegion,
            ) -> $crate::error::Result<$lock> {
                let state = $crate::sync::place::open_in::<$state>(region)?;
                Ok($lock { state })
            }

            /// The entry protocol; `FENCED = false` only in the loom model that shows the fences
            /// are needed.
            #[cfg_attr(not(loom), allow(dead_code))]
            pub(crate) fn acquire_with<const FENCED: bool>(&self, me: usize) {
                self.state.acquire_with::<FENCED>(me);
            }
        }

        impl Default for $lock {
            fn default() -> $lock {
                $lock::new()
            }
        }

        impl $crate::sync::participant::sealed::Raw for $lock {
            fn name(&self) -> &'static str {
                stringify!($lock)
            }

            fn count(&self) -> usize {
                2
            }

            fn addr(&self) -> *const u8 {
                self.state.addr()
            }

            fn acquire(&self, me: usize) {
                self.state.acquire_with::<true>(me);
            }

            fn as_raw(&self) -> &dyn $crate::sync::participant::sealed::Raw {
                self
            }

            fn release(&self, me: usize) {
                self.state.leave(me);
            }
        }

        impl std::fmt::Debug for $lock {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($lock))
                    .field("addr", &self.state.addr())
                    .finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use two_participant_lock;
