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
#[cfg(not(loom))]
use super::participant::bounded_count;
use super::participant::{sc_fence, sealed, stored_count, MAX_PARTICIPANTS};
use super::place::{Header, Placed, Shared};
#[cfg(not(loom))]
use crate::error::Result;
#[cfg(not(loom))]
use crate::shared::SharedRegion;

/// The filter lock for up to [`MAX_PARTICIPANTS`] participants, in shared memory.
///
/// A handle that keeps the memory mapped (clone it to share it between threads); placed with
/// [`init_in`](FilterLock::init_in), found with [`open_in`](FilterLock::open_in), [`SIZE`](FilterLock::SIZE) bytes
/// aligned to [`ALIGN`](FilterLock::ALIGN). Tolerates peers that scribble on it: wrong locking at worst
/// (see [`ParticipantLock`](super::ParticipantLock)).
#[derive(Clone)]
pub struct FilterLock {
    state: Placed<State>,
    /// The participant count, read once (and validated) when the handle was made.
    n: usize,
}

/// The lock's bytes in shared memory.
#[repr(C)]
struct State {
    header: Header,
    /// The number of participants `n`.
    n: AtomicU32,
    /// `level[i]`: the level participant `i` is at (0 = not trying, n−1 = last waiting room).
    level: [AtomicU32; MAX_PARTICIPANTS],
    /// `victim[L]`: the participant that volunteered last at level `L` (index 0 unused).
    victim: [AtomicU32; MAX_PARTICIPANTS],
}

// SAFETY: repr(C), header first, the rest atomics: every bit pattern is valid and every byte is
// inside an atomic.
unsafe impl Shared for State {
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
    /// The bytes the lock takes in shared memory.
    pub const SIZE: usize = std::mem::size_of::<State>();
    /// The alignment the lock needs.
    pub const ALIGN: usize = std::mem::align_of::<State>();

    /// A lock for `n` participants (clamped to 1..=[`MAX_PARTICIPANTS`]) in ordinary memory, for
    /// threads.
    pub fn new(n: usize) -> FilterLock {
        let n = n.clamp(1, MAX_PARTICIPANTS);
        FilterLock {
            state: Placed::own(State {
                header: Header::ready(State::MAGIC, State::VERSION, Self::SIZE),
                n: AtomicU32::new(n as u32),
                level: std::array::from_fn(|_| AtomicU32::new(0)),
                victim: std::array::from_fn(|_| AtomicU32::new(0)),
            }),
            n,
        }
    }

    /// Initialises a lock for `n` participants (1..=[`MAX_PARTICIPANTS`]) at the start of
    /// `region`, once, even when processes race (the losers' `n` is ignored).
    #[cfg(not(loom))]
    pub fn init_in(region: SharedRegion, n: usize) -> Result<FilterLock> {
        let n = super::participant::check_count::<State>(&region, n)?;
        let state = super::place::init_in::<State>(region, |s| {
            s.n.store(n, Ordering::Relaxed);
            for (level, victim) in s.level.iter().zip(&s.victim) {
                level.store(0, Ordering::Relaxed);
                victim.store(0, Ordering::Relaxed);
            }
            Ok(())
        })?;
        Ok(FilterLock::from_state(state))
    }

    /// Validates and returns the lock another process initialised at the start of `region`.
    #[cfg(not(loom))]
    pub fn open_in(region: SharedRegion) -> Result<FilterLock> {
        let state = super::place::open_in::<State>(region)?;
        Ok(FilterLock::from_state(state))
    }

    /// The handle, with the participant count read once and bounded (`check` validated it a
    /// moment ago, but a peer may have changed it since).
    #[cfg(not(loom))]
    fn from_state(state: Placed<State>) -> FilterLock {
        let n = bounded_count(state.n.load(Ordering::Relaxed));
        FilterLock { state, n }
    }

    /// Whether a participant other than `me` is at level `l` or above.
    fn others_at_or_above(&self, me: usize, l: u32) -> bool {
        (0..self.n)
            .filter(|&k| k != me)
            .any(|k| self.state.level[k].load(Ordering::Acquire) >= l)
    }
}

impl sealed::Raw for FilterLock {
    fn name(&self) -> &'static str {
        "FilterLock"
    }

    fn count(&self) -> usize {
        self.n
    }

    fn addr(&self) -> *const u8 {
        self.state.addr()
    }

    fn acquire(&self, me: usize) {
        let s = &*self.state;
        for l in 1..self.n {
            let level = l as u32;
            s.level[me].store(level, Ordering::Release);
            // Fence A: orders the store of level[me] before the store of victim[l] below.
            sc_fence::<true>();
            s.victim[l].store(me as u32, Ordering::Release);
            // Fence B: orders the stores of level[me] and victim[l] before the loads of the other
            // level words and of victim[l] below.
            sc_fence::<true>();
            let mut backoff = Backoff::default();
            while self.others_at_or_above(me, level)
                && s.victim[l].load(Ordering::Acquire) == me as u32
            {
                backoff.snooze();
            }
        }
    }

    fn as_raw(&self) -> &dyn sealed::Raw {
        self
    }

    fn release(&self, me: usize) {
        self.state.level[me].store(0, Ordering::Release);
    }
}

impl fmt::Debug for FilterLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterLock")
            .field("addr", &self.state.addr())
            .field("participants", &self.n)
            .finish_non_exhaustive()
    }
}
