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

use std::fmt;

use super::atomic::{AtomicU32, Ordering};
use super::futex;
use super::place::{Header, Shared};
#[cfg(not(loom))]
use crate::error::Result;

/// A reusable barrier for `n` participants in shared memory.
#[repr(C)]
pub struct Barrier {
    header: Header,
    /// The number of participants per round (at least 1).
    n: AtomicU32,
    /// Arrivals in the current round (less than `n` between rounds).
    count: AtomicU32,
    /// Rounds completed (wrapping); the futex word waiters sleep on.
    generation: AtomicU32,
}

// SAFETY: repr(C), header first, the rest atomics: every bit pattern is valid.
unsafe impl Shared for Barrier {
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
    /// A barrier for `n` participants (at least 1) in ordinary memory, for threads.
    pub fn new(n: u32) -> Barrier {
        Barrier {
            header: Header::ready(Self::MAGIC, Self::VERSION, std::mem::size_of::<Self>()),
            n: AtomicU32::new(n.max(1)),
            count: AtomicU32::new(0),
            generation: AtomicU32::new(0),
        }
    }

    /// Initialises a barrier for `n` participants (at least 1) at the start of `region`, once,
    /// even when processes race (the losers' `n` is ignored).
    #[cfg(not(loom))]
    pub fn init_in(region: &mut [u8], n: u32) -> Result<&Barrier> {
        if n == 0 {
            return Err(crate::error::Error::invalid(
                "init_in",
                super::place::object_at::<Self>(region.as_ptr()),
                "a barrier needs at least 1 participant",
            ));
        }
        super::place::init_in::<Barrier>(region, |b| {
            b.n.store(n, Ordering::Relaxed);
            b.count.store(0, Ordering::Relaxed);
            b.generation.store(0, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Validates and returns the barrier another process initialised at the start of `region`.
    #[cfg(not(loom))]
    pub fn open_in(region: &mut [u8]) -> Result<&Barrier> {
        super::place::open_in::<Barrier>(region)
    }

    /// The number of participants per round.
    pub fn participants(&self) -> u32 {
        self.n.load(Ordering::Relaxed)
    }

    /// Arrives and `futex(&generation, FUTEX_WAIT, g)` until the round is complete. Returns
    /// `true` in exactly one participant per round (the last to arrive, which wakes the others).
    ///
    /// Everything each participant did before `wait` happens before everything any participant
    /// does after it.
    pub fn wait(&self) -> bool {
        // Read the generation *before* arriving: the round cannot end without our arrival.
        let generation = self.generation.load(Ordering::Acquire);
        // AcqRel: the arrivals form one release sequence, so the last arriver acquires what
        // every earlier one did before arriving.
        let arrived = self.count.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        if arrived >= self.participants() {
            // Reset before publishing the new generation: a participant released by it (acquire)
            // sees count 0 when it arrives for the next round.
            self.count.store(0, Ordering::Relaxed);
            // Release: publishes the round, with everything the last arriver acquired.
            self.generation.fetch_add(1, Ordering::AcqRel);
            futex::wake(&self.generation, i32::MAX as u32);
            return true;
        }
        while self.generation.load(Ordering::Acquire) == generation {
            futex::wait(&self.generation, generation, None);
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
