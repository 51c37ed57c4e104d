//! What the classic mutual-exclusion algorithms have in common: a fixed set of participants, each
//! entering with its own index, and a guard that leaves when dropped.
//!
//! These locks protect no data of their own (they hand out no `&mut T`), so using them wrongly —
//! two threads with the same index, an index of another lock — breaks mutual exclusion but never
//! memory safety.

use std::fmt;

use crate::error::{Error, Object, Result};

pub(crate) mod sealed {
    /// The unchecked entry and exit protocols, implemented by each algorithm.
    pub trait Raw: Sync {
        /// The algorithm's name in messages.
        fn name(&self) -> &'static str;
        /// The number of participants.
        fn count(&self) -> usize;
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
/// Every index must be used by at most one thread at a time.
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
                Object::Other(format!(
                    "ipckit::sync::{} at {:p}",
                    self.name(),
                    self.as_raw()
                )),
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
pub(crate) fn check_count<T: super::place::Shared>(region: &[u8], n: usize) -> Result<u32> {
    if n == 0 || n > MAX_PARTICIPANTS {
        return Err(Error::invalid(
            "init_in",
            super::place::object_at::<T>(region.as_ptr()),
            format!("{n} participants: between 1 and {MAX_PARTICIPANTS} are supported"),
        ));
    }
    Ok(n as u32)
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
/// its one shared word, and gives it what Dekker's and Peterson's locks have in common: the
/// `#[repr(C)]` layout after a [`Header`](super::place::Header), `new` / `init_in` / `open_in`
/// (every word 0), `Default`, `Debug` and the [`ParticipantLock`] plumbing. The algorithm itself
/// stays with the type, as two inherent methods: `acquire_with::<FENCED>(me)` (the entry
/// protocol, fenced unless a loom model shows the fences are needed) and `leave(me)` (the exit
/// protocol).
macro_rules! two_participant_lock {
    (
        $(#[$attr:meta])*
        pub struct $lock:ident {
            $(#[$flags_attr:meta])*
            $flags:ident: [AtomicU32; 2],
            $(#[$word_attr:meta])*
            $word:ident: AtomicU32,
        }
        magic = $magic:expr;
    ) => {
        $(#[$attr])*
        #[repr(C)]
        pub struct $lock {
            header: $crate::sync::place::Header,
            $(#[$flags_attr])*
            $flags: [$crate::sync::atomic::AtomicU32; 2],
            $(#[$word_attr])*
            $word: $crate::sync::atomic::AtomicU32,
        }

        // SAFETY: repr(C), header first, the rest atomics: every bit pattern is valid.
        unsafe impl $crate::sync::place::Shared for $lock {
            const MAGIC: [u8; 4] = $magic;
            const VERSION: u32 = 1;
            const NAME: &'static str = stringify!($lock);

            fn header(&self) -> &$crate::sync::place::Header {
                &self.header
            }
        }

        impl $lock {
            /// A lock in ordinary memory, for threads.
            pub fn new() -> $lock {
                use $crate::sync::atomic::AtomicU32;
                use $crate::sync::place::{Header, Shared};
                $lock {
                    header: Header::ready(Self::MAGIC, Self::VERSION, std::mem::size_of::<Self>()),
                    $flags: [AtomicU32::new(0), AtomicU32::new(0)],
                    $word: AtomicU32::new(0),
                }
            }

            /// Initialises the lock at the start of `region`, once, even when processes race.
            #[cfg(not(loom))]
            pub fn init_in(region: &mut [u8]) -> $crate::error::Result<&$lock> {
                use $crate::sync::atomic::Ordering;
                $crate::sync::place::init_in::<$lock>(region, |l| {
                    l.$flags[0].store(0, Ordering::Relaxed);
                    l.$flags[1].store(0, Ordering::Relaxed);
                    l.$word.store(0, Ordering::Relaxed);
                    Ok(())
                })
            }

            /// Validates and returns the lock another process initialised at the start of
            /// `region`.
            #[cfg(not(loom))]
            pub fn open_in(region: &mut [u8]) -> $crate::error::Result<&$lock> {
                $crate::sync::place::open_in::<$lock>(region)
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

            fn acquire(&self, me: usize) {
                self.acquire_with::<true>(me);
            }

            fn as_raw(&self) -> &dyn $crate::sync::participant::sealed::Raw {
                self
            }

            fn release(&self, me: usize) {
                self.leave(me);
            }
        }

        impl std::fmt::Debug for $lock {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($lock)).finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use two_participant_lock;
