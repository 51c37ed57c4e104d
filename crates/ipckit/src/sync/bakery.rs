//! Lamport's bakery algorithm (1974): mutual exclusion for N processes, first-come-first-served,
//! like taking a numbered ticket at a bakery.
//!
//! # How it works
//! Participant `i` raises `choosing[i]`, reads every ticket and takes one higher than the highest
//! (`number[i]`), then lowers `choosing[i]`. It then waits, for every other participant `k`, until
//! `k` is not choosing and holds no ticket or a later one — tickets compared as the pair
//! `(number, index)`, so equal numbers drawn concurrently are ordered by index. Leaving sets the
//! ticket to 0.
//!
//! # Invariant
//! If `i` is in the critical section and `k` holds a ticket, then `(number[i], i) < (number[k], k)`:
//! `i` waited for `k` to finish choosing, so it saw `k`'s ticket, or `k` chose after seeing `i`'s.
//! The smallest ticket is unique, so at most one participant is inside.
//!
//! # Memory ordering
//! Fence 1 orders the store `choosing[me] = 1` before the loads of the tickets; fence 2 orders the
//! stores of `number[me]` and `choosing[me] = 0` before the loads of the others' `choosing` and
//! `number`. Together they rule out the store-buffering outcome where `i` misses `k`'s ticket and
//! `k` misses that `i` is choosing. Tickets are 64-bit, so they do not wrap.

use std::fmt;

use super::atomic::{AtomicU32, AtomicU64, Backoff, Ordering};
use super::participant::{sc_fence, sealed, stored_count, MAX_PARTICIPANTS};
use super::place::{Header, Shared};
#[cfg(not(loom))]
use crate::error::Result;

/// Lamport's bakery lock for up to [`MAX_PARTICIPANTS`] participants, in shared memory.
#[repr(C)]
pub struct Bakery {
    header: Header,
    /// The number of participants `n`.
    n: AtomicU32,
    /// `choosing[i]` is 1 while participant `i` picks its ticket.
    choosing: [AtomicU32; MAX_PARTICIPANTS],
    /// `number[i]`: participant `i`'s ticket, 0 when it holds none.
    number: [AtomicU64; MAX_PARTICIPANTS],
}

// SAFETY: repr(C), header first, the rest atomics: every bit pattern is valid.
unsafe impl Shared for Bakery {
    const MAGIC: [u8; 4] = *b"IKBK";
    const VERSION: u32 = 1;
    const NAME: &'static str = "Bakery";

    fn header(&self) -> &Header {
        &self.header
    }

    fn check(&self) -> std::result::Result<(), String> {
        stored_count(self.n.load(Ordering::Relaxed))
    }
}

impl Bakery {
    /// A lock for `n` participants (clamped to 1..=[`MAX_PARTICIPANTS`]) in ordinary memory, for
    /// threads.
    pub fn new(n: usize) -> Bakery {
        Bakery {
            header: Header::ready(Self::MAGIC, Self::VERSION, std::mem::size_of::<Self>()),
            n: AtomicU32::new(n.clamp(1, MAX_PARTICIPANTS) as u32),
            choosing: std::array::from_fn(|_| AtomicU32::new(0)),
            number: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Initialises a lock for `n` participants (1..=[`MAX_PARTICIPANTS`]) at the start of
    /// `region`, once, even when processes race (the losers' `n` is ignored).
    #[cfg(not(loom))]
    pub fn init_in(region: &mut [u8], n: usize) -> Result<&Bakery> {
        let n = super::participant::check_count::<Self>(region, n)?;
        super::place::init_in::<Bakery>(region, |b| {
            b.n.store(n, Ordering::Relaxed);
            for (choosing, number) in b.choosing.iter().zip(&b.number) {
                choosing.store(0, Ordering::Relaxed);
                number.store(0, Ordering::Relaxed);
            }
            Ok(())
        })
    }

    /// Validates and returns the lock another process initialised at the start of `region`.
    #[cfg(not(loom))]
    pub fn open_in(region: &mut [u8]) -> Result<&Bakery> {
        super::place::open_in::<Bakery>(region)
    }

    fn n(&self) -> usize {
        (self.n.load(Ordering::Relaxed) as usize).clamp(1, MAX_PARTICIPANTS)
    }
}

impl sealed::Raw for Bakery {
    fn name(&self) -> &'static str {
        "Bakery"
    }

    fn count(&self) -> usize {
        self.n()
    }

    fn acquire(&self, me: usize) {
        let n = self.n();
        self.choosing[me].store(1, Ordering::Release);
        // Fence 1: orders the store choosing[me] = 1 before the loads of the tickets below.
        sc_fence::<true>();
        let max = (0..n)
            .map(|k| self.number[k].load(Ordering::Acquire))
            .max()
            .unwrap_or(0);
        let mine = max.saturating_add(1);
        self.number[me].store(mine, Ordering::Release);
        self.choosing[me].store(0, Ordering::Release);
        // Fence 2: orders the stores of number[me] and choosing[me] = 0 before the loads of the
        // others' choosing and number below.
        sc_fence::<true>();
        for k in (0..n).filter(|&k| k != me) {
            let mut backoff = Backoff::default();
            while self.choosing[k].load(Ordering::Acquire) == 1 {
                backoff.snooze();
            }
            loop {
                let theirs = self.number[k].load(Ordering::Acquire);
                if theirs == 0 || (theirs, k) > (mine, me) {
                    break;
                }
                backoff.snooze();
            }
        }
    }

    fn as_raw(&self) -> &dyn sealed::Raw {
        self
    }

    fn release(&self, me: usize) {
        self.number[me].store(0, Ordering::Release);
    }
}

impl fmt::Debug for Bakery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bakery")
            .field("participants", &self.n())
            .finish_non_exhaustive()
    }
}
