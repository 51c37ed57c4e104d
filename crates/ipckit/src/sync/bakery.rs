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
#[cfg(not(loom))]
use super::participant::bounded_count;
use super::participant::{sc_fence, sealed, stored_count, MAX_PARTICIPANTS};
use super::place::{Header, Placed, Shared};
#[cfg(not(loom))]
use crate::error::Result;
#[cfg(not(loom))]
use crate::shared::SharedRegion;

/// Lamport's bakery lock for up to [`MAX_PARTICIPANTS`] participants, in shared memory.
///
/// A handle that keeps the memory mapped (clone it to share it between threads); placed with
/// [`init_in`](Bakery::init_in), found with [`open_in`](Bakery::open_in), [`SIZE`](Bakery::SIZE) bytes
/// aligned to [`ALIGN`](Bakery::ALIGN). Tolerates peers that scribble on it: wrong locking at worst
/// (see [`ParticipantLock`](super::ParticipantLock)).
#[derive(Clone)]
pub struct Bakery {
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
    /// `choosing[i]` is 1 while participant `i` picks its ticket.
    choosing: [AtomicU32; MAX_PARTICIPANTS],
    /// `number[i]`: participant `i`'s ticket, 0 when it holds none.
    number: [AtomicU64; MAX_PARTICIPANTS],
}

// SAFETY: repr(C), header first, the rest atomics: every bit pattern is valid and every byte is
// inside an atomic.
unsafe impl Shared for State {
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
    /// The bytes the lock takes in shared memory.
    pub const SIZE: usize = std::mem::size_of::<State>();
    /// The alignment the lock needs.
    pub const ALIGN: usize = std::mem::align_of::<State>();

    /// A lock for `n` participants (clamped to 1..=[`MAX_PARTICIPANTS`]) in ordinary memory, for
    /// threads.
    pub fn new(n: usize) -> Bakery {
        let n = n.clamp(1, MAX_PARTICIPANTS);
        Bakery {
            state: Placed::own(State {
                header: Header::ready(State::MAGIC, State::VERSION, Self::SIZE),
                n: AtomicU32::new(n as u32),
                choosing: std::array::from_fn(|_| AtomicU32::new(0)),
                number: std::array::from_fn(|_| AtomicU64::new(0)),
            }),
            n,
        }
    }

    /// Initialises a lock for `n` participants (1..=[`MAX_PARTICIPANTS`]) at the start of
    /// `region`, once, even when processes race (the losers' `n` is ignored).
    #[cfg(not(loom))]
    pub fn init_in(region: SharedRegion, n: usize) -> Result<Bakery> {
        let n = super::participant::check_count::<State>(&region, n)?;
        let state = super::place::init_in::<State>(region, |s| {
            s.n.store(n, Ordering::Relaxed);
            for (choosing, number) in s.choosing.iter().zip(&s.number) {
                choosing.store(0, Ordering::Relaxed);
                number.store(0, Ordering::Relaxed);
            }
            Ok(())
        })?;
        Ok(Bakery::from_state(state))
    }

    /// Validates and returns the lock another process initialised at the start of `region`.
    #[cfg(not(loom))]
    pub fn open_in(region: SharedRegion) -> Result<Bakery> {
        let state = super::place::open_in::<State>(region)?;
        Ok(Bakery::from_state(state))
    }

    /// The handle, with the participant count read once and bounded (`check` validated it a
    /// moment ago, but a peer may have changed it since).
    #[cfg(not(loom))]
    fn from_state(state: Placed<State>) -> Bakery {
        let n = bounded_count(state.n.load(Ordering::Relaxed));
        Bakery { state, n }
    }
}

impl sealed::Raw for Bakery {
    fn name(&self) -> &'static str {
        "Bakery"
    }

    fn count(&self) -> usize {
        self.n
    }

    fn addr(&self) -> *const u8 {
        self.state.addr()
    }

    fn acquire(&self, me: usize) {
        let (s, n) = (&*self.state, self.n);
        s.choosing[me].store(1, Ordering::Release);
        // Fence 1: orders the store choosing[me] = 1 before the loads of the tickets below.
        sc_fence::<true>();
        let max = (0..n)
            .map(|k| s.number[k].load(Ordering::Acquire))
            .max()
            .unwrap_or(0);
        let mine = max.saturating_add(1);
        s.number[me].store(mine, Ordering::Release);
        s.choosing[me].store(0, Ordering::Release);
        // Fence 2: orders the stores of number[me] and choosing[me] = 0 before the loads of the
        // others' choosing and number below.
        sc_fence::<true>();
        for k in (0..n).filter(|&k| k != me) {
            let mut backoff = Backoff::default();
            while s.choosing[k].load(Ordering::Acquire) == 1 {
                backoff.snooze();
            }
            loop {
                let theirs = s.number[k].load(Ordering::Acquire);
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
        self.state.number[me].store(0, Ordering::Release);
    }
}

impl fmt::Debug for Bakery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bakery")
            .field("addr", &self.state.addr())
            .field("participants", &self.n)
            .finish_non_exhaustive()
    }
}
