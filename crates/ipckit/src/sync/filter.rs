//! The filter lock (Peterson's generalisation to N processes, as presented by Herlihy and Shavit):
//! N−1 waiting rooms ("levels"), each a Peterson lock that lets all but one of its entrants through.
//!
//! # How it works
//! To enter, participant `i` climbs levels 1 … n−1. At level `L` it announces itself
//! (`level[i] = L`), volunteers as that level's victim (`victim[L] = i`), and waits while some other
//! participant is at level `L` or higher *and* it is still the victim. Passing level n−1 is entering
//! the critical section; leaving resets `level[i]` to 0.
//!
//! # Invariant
//! At most n−L participants are at level `L` or above: of those who reach a level, the last to
//! write its victim word waits there until another arrives or the others leave. At level n−1 that
//! leaves one.
//!
//! # Memory ordering
//! Per level two `fence(SeqCst)`s, as in [`Peterson`](super::Peterson): fence A orders the store
//! of `level[me]` before the store of `victim[L]`; fence B orders both stores before the loads of
//! the other `level` words and of `victim[L]`. Stores are `Release` and loads `Acquire`.

use std::fmt;

use super::atomic::{AtomicU32, Backoff, Ordering};
use super::participant::{sc_fence, sealed, stored_count, MAX_PARTICIPANTS};
use super::place::{Header, Shared};
#[cfg(not(loom))]
use crate::error::Result;

/// The filter lock for up to [`MAX_PARTICIPANTS`] participants, in shared memory.
#[repr(C)]
pub struct FilterLock {
    header: Header,
    /// The number of participants `n`.
    n: AtomicU32,
    /// `level[i]`: the level participant `i` is at (0 = not trying, n−1 = last waiting room).
    level: [AtomicU32; MAX_PARTICIPANTS],
    /// `victim[L]`: the participant that volunteered last at level `L` (index 0 unused).
    victim: [AtomicU32; MAX_PARTICIPANTS],
}

// SAFETY: repr(C), header first, the rest atomics: every bit pattern is valid.
unsafe impl Shared for FilterLock {
    const MAGIC: [u8; 4] = *b"IKFL";
    const VERSION: u32 = 1;
    const NAME: &'static str = "FilterLock";

    fn header(&self) -> &Header {
        &self.header
    }

    fn check(&self) -> std::result::Result<(), String> {
        stored_count(self.n.load(Ordering::Relaxed))
    }
}

impl FilterLock {
    /// A lock for `n` participants (clamped to 1..=[`MAX_PARTICIPANTS`]) in ordinary memory, for
    /// threads.
    pub fn new(n: usize) -> FilterLock {
        FilterLock {
            header: Header::ready(Self::MAGIC, Self::VERSION, std::mem::size_of::<Self>()),
            n: AtomicU32::new(n.clamp(1, MAX_PARTICIPANTS) as u32),
            level: std::array::from_fn(|_| AtomicU32::new(0)),
            victim: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    /// Initialises a lock for `n` participants (1..=[`MAX_PARTICIPANTS`]) at the start of
    /// `region`, once, even when processes race (the losers' `n` is ignored).
    #[cfg(not(loom))]
    pub fn init_in(region: &mut [u8], n: usize) -> Result<&FilterLock> {
        let n = super::participant::check_count::<Self>(region, n)?;
        super::place::init_in::<FilterLock>(region, |f| {
            f.n.store(n, Ordering::Relaxed);
            for (level, victim) in f.level.iter().zip(&f.victim) {
                level.store(0, Ordering::Relaxed);
                victim.store(0, Ordering::Relaxed);
            }
            Ok(())
        })
    }

    /// Validates and returns the lock another process initialised at the start of `region`.
    #[cfg(not(loom))]
    pub fn open_in(region: &mut [u8]) -> Result<&FilterLock> {
        super::place::open_in::<FilterLock>(region)
    }

    fn n(&self) -> usize {
        (self.n.load(Ordering::Relaxed) as usize).clamp(1, MAX_PARTICIPANTS)
    }

    /// Whether a participant other than `me` is at level `l` or above.
    fn others_at_or_above(&self, me: usize, l: u32) -> bool {
        (0..self.n())
            .filter(|&k| k != me)
            .any(|k| self.level[k].load(Ordering::Acquire) >= l)
    }
}

impl sealed::Raw for FilterLock {
    fn name(&self) -> &'static str {
        "FilterLock"
    }

    fn count(&self) -> usize {
        self.n()
    }

    fn acquire(&self, me: usize) {
        for l in 1..self.n() {
            let level = l as u32;
            self.level[me].store(level, Ordering::Release);
            // Fence A: orders the store of level[me] before the store of victim[l] below.
            sc_fence::<true>();
            self.victim[l].store(me as u32, Ordering::Release);
            // Fence B: orders the stores of level[me] and victim[l] before the loads of the other
            // level words and of victim[l] below.
            sc_fence::<true>();
            let mut backoff = Backoff::default();
            while self.others_at_or_above(me, level)
                && self.victim[l].load(Ordering::Acquire) == me as u32
            {
                backoff.snooze();
            }
        }
    }

    fn as_raw(&self) -> &dyn sealed::Raw {
        self
    }

    fn release(&self, me: usize) {
        self.level[me].store(0, Ordering::Release);
    }
}

impl fmt::Debug for FilterLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterLock")
            .field("participants", &self.n())
            .finish_non_exhaustive()
    }
}
