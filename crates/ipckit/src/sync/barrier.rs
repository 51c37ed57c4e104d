//! A barrier for a fixed number of processes that lives inside shared memory, built on a shared
//! futex: each [`wait`](Barrier::wait) blocks until all `n` participants have arrived, then all go
//! on together, and the barrier is ready for the next round.
//!
//! A generation counter makes it reusable without the classic bug of a fast participant entering
//! round k+1 and being counted in round k. The barrier cannot know about a participant that died:
//! the others then wait for ever, so use it among processes whose lives you control.
//!
//! # References
//! [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html),
//! [pthread_barrier_wait(3p)](https://man7.org/linux/man-pages/man3/pthread_barrier_wait.3p.html)
//! (the same contract)
//!
//! # Trust
//! A peer that writes the barrier's bytes can release a round early or hold it up, but nothing
//! more: every word is an atomic, and the participant count is read and validated once, when the
//! handle is made, and kept in the handle.

use std::fmt;

use super::atomic::{AtomicU32, Ordering};
use super::futex;
use super::place::{Header, Placed, Shared};
#[cfg(not(loom))]
use crate::error::Result;
#[cfg(not(loom))]
use crate::shared::SharedRegion;

/// A reusable barrier for `n` participants in shared memory, placed with
/// [`init_in`](Barrier::init_in) and found with [`open_in`](Barrier::open_in): a handle that keeps
/// the memory mapped. [`SIZE`](Barrier::SIZE) bytes aligned to [`ALIGN`](Barrier::ALIGN).
///
/// **Trust:** tolerates peers that scribble on its bytes — every word is an atomic, and the
/// participant count is validated once and kept in the handle — with a round released early or
/// held up at worst, never undefined behaviour (see [`sync`](crate::sync#trust)). A participant
/// that dies leaves the others waiting.
#[derive(Clone)]
pub struct Barrier {
    state: Placed<State>,
    /// The participant count, read once (and validated) when the handle was made.
    n: u32,
}

/// The barrier's bytes in shared memory.
#[repr(C)]
struct State {
    header: Header,
    /// The number of participants per round (at least 1).
    n: AtomicU32,
    /// Arrivals in the current round (less than `n` between rounds).
    count: AtomicU32,
    /// Rounds completed (wrapping); the futex word waiters sleep on.
    generation: AtomicU32,
}

// SAFETY: repr(C), header first, the rest atomics: every bit pattern is valid and every byte is
// inside an atomic.
unsafe impl Shared for State {
    const MAGIC: [u8; 4] = *b"IKBR";
    const VERSION: u32 = 1;
    const NAME: &'static str = "Barrier";

    fn header(&self) -> &Header {
        &self.header
    }

    fn check(&self) -> std::result::Result<(), String> {
        let n = self.n.load(Ordering::Relaxed);
        let count = self.count.load(Ordering::Relaxed);
        if n == 0 || count >= n {
            return Err(format!("{count} arrivals of {n} participants"));
        }
        Ok(())
    }
}

impl Barrier {
    /// The bytes a barrier takes in shared memory.
    pub const SIZE: usize = std::mem::size_of::<State>();
    /// The alignment a barrier needs.
    pub const ALIGN: usize = std::mem::align_of::<State>();

    /// A barrier for `n` participants (at least 1) in ordinary memory, for threads.
    pub fn new(n: u32) -> Barrier {
        let n = n.max(1);
        Barrier {
            state: Placed::own(State {
                header: Header::ready(State::MAGIC, State::VERSION, Self::SIZE),
                n: AtomicU32::new(n),
                count: AtomicU32::new(0),
                generation: AtomicU32::new(0),
            }),
            n,
        }
    }

    /// Initialises a barrier for `n` participants (at least 1) at the start of `region`, once,
    /// even when processes race (the losers' `n` is ignored).
    #[cfg(not(loom))]
    pub fn init_in(region: SharedRegion, n: u32) -> Result<Barrier> {
        if n == 0 {
            return Err(crate::error::Error::invalid(
                "init_in",
                super::place::object_at::<State>(region.as_ptr()),
                "a barrier needs at least 1 participant",
            ));
        }
        let state = super::place::init_in::<State>(region, |b| {
            b.n.store(n, Ordering::Relaxed);
            b.count.store(0, Ordering::Relaxed);
            b.generation.store(0, Ordering::Relaxed);
            Ok(())
        })?;
        Ok(Barrier::from_state(state))
    }

    /// Validates and returns the barrier another process initialised at the start of `region`.
    #[cfg(not(loom))]
    pub fn open_in(region: SharedRegion) -> Result<Barrier> {
        let state = super::place::open_in::<State>(region)?;
        Ok(Barrier::from_state(state))
    }

    /// The handle, with the participant count read once (validated by `check` a moment ago; a
    /// peer could have changed it since, so it is bounded again).
    #[cfg(not(loom))]
    fn from_state(state: Placed<State>) -> Barrier {
        let n = state.n.load(Ordering::Relaxed).max(1);
        Barrier { state, n }
    }

    /// The number of participants per round.
    pub fn participants(&self) -> u32 {
        self.n
    }

    /// Arrives and `futex(&generation, FUTEX_WAIT, g)` until the round is complete. Returns
    /// `true` in exactly one participant per round (the last to arrive, which wakes the others).
    ///
    /// Everything each participant did before `wait` happens before everything any participant
    /// does after it.
    pub fn wait(&self) -> bool {
        // Read the generation *before* arriving: the round cannot end without our arrival.
        let s = &*self.state;
        let generation = s.generation.load(Ordering::Acquire);
        // AcqRel: the arrivals form one release sequence, so the last arriver acquires what
        // every earlier one did before arriving.
        let arrived = s.count.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        if arrived >= self.participants() {
            // Reset before publishing the new generation: a participant released by it (acquire)
            // sees count 0 when it arrives for the next round.
            s.count.store(0, Ordering::Relaxed);
            // Release: publishes the round, with everything the last arriver acquired.
            s.generation.fetch_add(1, Ordering::AcqRel);
            futex::wake(&s.generation, i32::MAX as u32);
            return true;
        }
        while s.generation.load(Ordering::Acquire) == generation {
            futex::wait(&s.generation, generation, None);
        }
        false
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("participants", &self.participants())
            .finish_non_exhaustive()
    }
}
