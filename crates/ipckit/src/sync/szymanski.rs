//! Szymanski's algorithm (1988): mutual exclusion for N processes with one small flag each,
//! first-come-first-served in groups, modelled on a waiting room with an entrance door and an exit
//! door.
//!
//! # How it works
//! Each participant's flag says where it is: 0 outside, 1 wants in (outside the waiting room), 2
//! inside the waiting room waiting for others to enter, 3 in the entrance doorway, 4 entrance
//! door closed behind it. To enter: set 1 and wait until the entrance is open (no flag is 3 or 4);
//! step into the doorway (3); if someone else still wants in (a flag is 1), let them in (2) and wait
//! until someone closes the door (a flag is 4); close the door (4); then wait until every
//! participant with a lower index has left (their flags are 0 or 1). To leave: wait until everyone
//! with a higher index in the waiting room has seen the door close (no flag of theirs is 2 or 3),
//! then set 0, which reopens the door when the room is empty.
//!
//! # Invariant
//! While anyone is behind the closed door (flag 4), nobody new passes the entrance, so the group
//! inside is fixed; within it, participants enter the critical section strictly by index. Hence
//! at most one is in the critical section, and each waits for at most one group.
//!
//! # Memory ordering
//! Every store to `flag[me]` in the entry protocol is followed by a `fence(SeqCst)` that orders it
//! before the loads of the other flags that follow (each fence is named below). Stores are
//! `Release` and loads `Acquire`.

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

/// Outside.
const OUTSIDE: u32 = 0;
/// Wants to enter; outside the waiting room.
const WANTS: u32 = 1;
/// In the waiting room, waiting for the others who want in.
const WAITING: u32 = 2;
/// In the entrance doorway.
const DOORWAY: u32 = 3;
/// The entrance door is closed behind it.
const CLOSED: u32 = 4;

/// Szymanski's lock for up to [`MAX_PARTICIPANTS`] participants, in shared memory.
///
/// A handle that keeps the memory mapped (clone it to share it between threads); placed with
/// [`init_in`](Szymanski::init_in), found with [`open_in`](Szymanski::open_in), [`SIZE`](Szymanski::SIZE) bytes
/// aligned to [`ALIGN`](Szymanski::ALIGN). Tolerates peers that scribble on it: wrong locking at worst
/// (see [`ParticipantLock`](super::ParticipantLock)).
#[derive(Clone)]
pub struct Szymanski {
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
    /// `flag[i]`: where participant `i` is (0 outside … 4 door closed).
    flag: [AtomicU32; MAX_PARTICIPANTS],
}

// SAFETY: repr(C), header first, the rest atomics: every bit pattern is valid and every byte is
// inside an atomic.
unsafe impl Shared for State {
    const MAGIC: [u8; 4] = *b"IKSZ";
    const VERSION: u32 = 1;
    const NAME: &'static str = "Szymanski";

    fn header(&self) -> &Header {
        &self.header
    }

    fn check(&self) -> std::result::Result<(), String> {
        stored_count(self.n.load(Ordering::Relaxed))
    }
}

impl Szymanski {
    /// The bytes the lock takes in shared memory.
    pub const SIZE: usize = std::mem::size_of::<State>();
    /// The alignment the lock needs.
    pub const ALIGN: usize = std::mem::align_of::<State>();

    /// A lock for `n` participants (clamped to 1..=[`MAX_PARTICIPANTS`]) in ordinary memory, for
    /// threads.
    pub fn new(n: usize) -> Szymanski {
        let n = n.clamp(1, MAX_PARTICIPANTS);
        Szymanski {
            state: Placed::own(State {
                header: Header::ready(State::MAGIC, State::VERSION, Self::SIZE),
                n: AtomicU32::new(n as u32),
                flag: std::array::from_fn(|_| AtomicU32::new(OUTSIDE)),
            }),
            n,
        }
    }

    /// Initialises a lock for `n` participants (1..=[`MAX_PARTICIPANTS`]) at the start of
    /// `region`, once, even when processes race (the losers' `n` is ignored).
    #[cfg(not(loom))]
    pub fn init_in(region: SharedRegion, n: usize) -> Result<Szymanski> {
        let n = super::participant::check_count::<State>(&region, n)?;
        let state = super::place::init_in::<State>(region, |s| {
            s.n.store(n, Ordering::Relaxed);
            for flag in &s.flag {
                flag.store(OUTSIDE, Ordering::Relaxed);
            }
            Ok(())
        })?;
        Ok(Szymanski::from_state(state))
    }

    /// Validates and returns the lock another process initialised at the start of `region`.
    #[cfg(not(loom))]
    pub fn open_in(region: SharedRegion) -> Result<Szymanski> {
        let state = super::place::open_in::<State>(region)?;
        Ok(Szymanski::from_state(state))
    }

    /// The handle, with the participant count read once and bounded (`check` validated it a
    /// moment ago, but a peer may have changed it since).
    #[cfg(not(loom))]
    fn from_state(state: Placed<State>) -> Szymanski {
        let n = bounded_count(state.n.load(Ordering::Relaxed));
        Szymanski { state, n }
    }

    fn flag(&self, k: usize) -> u32 {
        self.state.flag[k].load(Ordering::Acquire)
    }

    /// Waits until `ok` holds for the flag of every participant in `range`.
    fn await_all(&self, range: std::ops::Range<usize>, ok: impl Fn(u32) -> bool) {
        let mut backoff = Backoff::default();
        while !range.clone().all(|k| ok(self.flag(k))) {
            backoff.snooze();
        }
    }

    fn set(&self, me: usize, value: u32) {
        self.state.flag[me].store(value, Ordering::Release);
    }
}

impl sealed::Raw for Szymanski {
    fn name(&self) -> &'static str {
        "Szymanski"
    }

    fn count(&self) -> usize {
        self.n
    }

    fn addr(&self) -> *const u8 {
        self.state.addr()
    }

    fn acquire(&self, me: usize) {
        let n = self.n;
        self.set(me, WANTS);
        // Fence 1: orders the store flag[me] = 1 before the loads of the entrance check.
        sc_fence::<true>();
        self.await_all(0..n, |f| f < DOORWAY);
        self.set(me, DOORWAY);
        // Fence 2: orders the store flag[me] = 3 before the loads looking for a flag of 1.
        sc_fence::<true>();
        if (0..n).any(|k| k != me && self.flag(k) == WANTS) {
            self.set(me, WAITING);
            // Fence 3: orders the store flag[me] = 2 before the loads looking for a flag of 4.
            sc_fence::<true>();
            let mut backoff = Backoff::default();
            while !(0..n).any(|k| self.flag(k) == CLOSED) {
                backoff.snooze();
            }
        }
        self.set(me, CLOSED);
        // Fence 4: orders the store flag[me] = 4 before the loads of the lower participants.
        sc_fence::<true>();
        self.await_all(0..me, |f| f < WAITING);
    }

    fn as_raw(&self) -> &dyn sealed::Raw {
        self
    }

    fn release(&self, me: usize) {
        self.await_all(me + 1..self.n, |f| !(WAITING..=DOORWAY).contains(&f));
        self.set(me, OUTSIDE);
    }
}

impl fmt::Debug for Szymanski {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Szymanski")
            .field("addr", &self.state.addr())
            .field("participants", &self.n)
            .finish_non_exhaustive()
    }
}
