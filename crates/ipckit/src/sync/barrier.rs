//! A barrier for a fixed number of processes that lives inside shared memory, built on a shared
//! futex: each [`wait`](Barrier::wait) blocks until all `n` participants have arrived, then all go
//! on together, and the barrier is ready for the next round.
//!
//! The round number and the round's arrivals share one word, the futex word. That makes it
//! reusable without the classic bug of a fast participant entering round k+1 and being counted in
//! round k, and lets a participant that gave up waiting ([`wait_timeout`](Barrier::wait_timeout))
//! take its arrival back without racing with the round's completion: both are one
//! compare-and-swap on the same word. The barrier cannot know about a participant that died: the
//! others wait for it for ever in `wait`, or until their timeout in `wait_timeout`.
//!
//! # References
//! [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html),
//! [pthread_barrier_wait(3p)](https://man7.org/linux/man-pages/man3/pthread_barrier_wait.3p.html)
//! (the same contract)
//!
//! # Trust
//! A peer that writes the barrier's bytes can release a round early or hold it up, but nothing
//! more: every word is an atomic, the participant count is read and validated once, when the
//! handle is made, and kept in the handle, and the arrivals read from the word are only compared
//! and incremented below that count (never past the word's 16 bits).

use std::fmt;
use std::time::{Duration, Instant};

use super::atomic::{AtomicU32, Ordering};
use super::futex;
use super::place::{Header, Placed, Shared};
#[cfg(not(loom))]
use crate::error::Result;
#[cfg(not(loom))]
use crate::shared::SharedRegion;

/// The bits of the barrier's word that count the current round's arrivals; the bits above them
/// number the rounds (wrapping).
const ARRIVALS: u32 = 0xffff;
/// One round, in the barrier's word.
const ROUND: u32 = ARRIVALS + 1;

/// A reusable barrier for `n` participants in shared memory, placed with
/// [`init_in`](Barrier::init_in) and found with [`open_in`](Barrier::open_in): a handle that keeps
/// the memory mapped. [`SIZE`](Barrier::SIZE) bytes aligned to [`ALIGN`](Barrier::ALIGN).
///
/// **Trust:** tolerates peers that scribble on its bytes — every word is an atomic, and the
/// participant count is validated once and kept in the handle — with a round released early or
/// held up at worst, never undefined behaviour (see [`sync`](crate::sync#trust)). A participant
/// that dies leaves the others waiting: [`wait_timeout`](Barrier::wait_timeout) bounds the wait
/// and takes the caller's arrival back when it gives up.
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
    /// The number of participants per round (`1..=Barrier::MAX_PARTICIPANTS`).
    n: AtomicU32,
    /// The round number (the bits above [`ARRIVALS`], wrapping) and the round's arrivals so far
    /// (less than `n` between rounds): one word, so that arriving, completing a round and
    /// withdrawing an arrival are each one atomic step. The futex word waiters sleep on.
    word: AtomicU32,
}

// SAFETY: repr(C), header first, the rest atomics: every bit pattern is valid and every byte is
// inside an atomic.
unsafe impl Shared for State {
    const MAGIC: [u8; 4] = *b"IKBR";
    const VERSION: u32 = 2;
    const NAME: &'static str = "Barrier";

    fn header(&self) -> &Header {
        &self.header
    }

    fn check(&self) -> std::result::Result<(), String> {
        let n = self.n.load(Ordering::Relaxed);
        let arrivals = self.word.load(Ordering::Relaxed) & ARRIVALS;
        if n == 0 || n > Barrier::MAX_PARTICIPANTS || arrivals >= n {
            return Err(format!("{arrivals} arrivals of {n} participants"));
        }
        Ok(())
    }
}

/// What an arrival found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// The last of the round: the round is complete and the others are woken.
    Last,
    /// Counted in the round numbered so (the word's round bits); wait until they change.
    Counted(u32),
}

impl Barrier {
    /// The bytes a barrier takes in shared memory.
    pub const SIZE: usize = std::mem::size_of::<State>();
    /// The alignment a barrier needs.
    pub const ALIGN: usize = std::mem::align_of::<State>();
    /// The most participants a barrier can have (its arrivals are counted in 16 bits).
    pub const MAX_PARTICIPANTS: u32 = ARRIVALS;

    /// A barrier for `n` participants in ordinary memory, for threads; `n` is taken into
    /// `1..=`[`MAX_PARTICIPANTS`](Self::MAX_PARTICIPANTS).
    pub fn new(n: u32) -> Barrier {
        let n = n.clamp(1, Self::MAX_PARTICIPANTS);
        Barrier {
            state: Placed::own(State {
                header: Header::ready(State::MAGIC, State::VERSION, Self::SIZE),
                n: AtomicU32::new(n),
                word: AtomicU32::new(0),
            }),
            n,
        }
    }

    /// Initialises a barrier for `n` participants (`1..=`[`MAX_PARTICIPANTS`](Self::MAX_PARTICIPANTS))
    /// at the start of `region`, once, even when processes race (the losers' `n` is ignored).
    #[cfg(not(loom))]
    pub fn init_in(region: SharedRegion, n: u32) -> Result<Barrier> {
        if n == 0 || n > Self::MAX_PARTICIPANTS {
            return Err(crate::error::Error::invalid(
                "init_in",
                super::place::object_at::<State>(region.as_ptr()),
                format!(
                    "{n} participants: a barrier takes between 1 and {}",
                    Self::MAX_PARTICIPANTS
                ),
            ));
        }
        let state = super::place::init_in::<State>(region, |b| {
            b.n.store(n, Ordering::Relaxed);
            b.word.store(0, Ordering::Relaxed);
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
        let n = state
            .n
            .load(Ordering::Relaxed)
            .clamp(1, Self::MAX_PARTICIPANTS);
        Barrier { state, n }
    }

    /// The number of participants per round.
    pub fn participants(&self) -> u32 {
        self.n
    }

    /// Arrives and `futex(&word, FUTEX_WAIT, w)` until the round is complete. Returns `true` in
    /// exactly one participant per round (the last to arrive, which wakes the others).
    ///
    /// Everything each participant did before `wait` happens before everything any participant
    /// does after it.
    pub fn wait(&self) -> bool {
        // Without a deadline the wait ends only with the round: never `None`.
        self.wait_until(None).unwrap_or(false)
    }

    /// Like [`wait`](Self::wait), but waits at most `timeout` for the round to complete:
    /// `Some(leader)` as `wait` returns it, or `None` if the round was not complete in time —
    /// then this participant's arrival has been taken back (the round still waits for `n`
    /// arrivals, and a later `wait` by this participant counts once). A participant that died,
    /// or never came, costs the others this timeout instead of their lives.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<bool> {
        self.wait_until(futex::deadline(timeout))
    }

    /// Arrives and `futex(&word, FUTEX_WAIT, w)` until the round is complete (`Some(leader)`)
    /// or `deadline` passes (`None`, our arrival taken back); no deadline waits for the round.
    fn wait_until(&self, deadline: Option<Instant>) -> Option<bool> {
        let round = match self.arrive() {
            Arrival::Last => return Some(true),
            Arrival::Counted(round) => round,
        };
        let s = &*self.state;
        loop {
            // Acquire: the round's end (the last arrival, a release RMW that continues every
            // arrival's release sequence) happens before what we do after the barrier.
            let w = s.word.load(Ordering::Acquire);
            if w & !ARRIVALS != round {
                return Some(false);
            }
            let left = futex::remaining(deadline);
            if left == Some(Duration::ZERO) {
                break;
            }
            // Returns at once if an arrival changed the word since the load (EAGAIN).
            futex::wait(&s.word, w, left);
        }
        if self.withdraw(round) {
            None
        } else {
            Some(false)
        }
    }

    /// Counts our arrival in the current round, completing it (a new round number, no arrivals)
    /// and waking the waiters if we are the last.
    fn arrive(&self) -> Arrival {
        let s = &*self.state;
        let mut w = s.word.load(Ordering::Relaxed);
        loop {
            // Below 2^16 + 1: no overflow. A peer that wrote arrivals >= n only ends the round.
            let last = (w & ARRIVALS) + 1 >= self.n;
            let next = if last {
                (w & !ARRIVALS).wrapping_add(ROUND)
            } else {
                // The arrivals are below n - 1 <= 0xfffe here: no carry into the round bits.
                w + 1
            };
            // AcqRel: our arrival releases what we did before it; the arrivals (and withdrawals)
            // of a round are read-modify-writes of one word, so the last one acquires what every
            // earlier arrival released, and its own release publishes all of it to the waiters
            // (their Acquire loads of the new round).
            match s
                .word
                .compare_exchange_weak(w, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) if last => {
                    futex::wake(&s.word, i32::MAX as u32);
                    return Arrival::Last;
                }
                Ok(_) => return Arrival::Counted(w & !ARRIVALS),
                Err(now) => w = now,
            }
        }
    }

    /// Takes back our arrival in `round`: `true` if it was taken back, `false` if the round was
    /// complete first (then we passed the barrier, with the ordering `wait` gives).
    fn withdraw(&self, round: u32) -> bool {
        let s = &*self.state;
        // Acquire (also on failure): a new round seen here is passed, as in `wait`.
        let mut w = s.word.load(Ordering::Acquire);
        loop {
            if w & !ARRIVALS != round {
                return false;
            }
            if w & ARRIVALS == 0 {
                // A peer wrote the word: there is no arrival left to take back.
                return true;
            }
            // Relaxed on success: taking back our arrival publishes nothing (a later last
            // arriver still acquires our earlier arrival's release, through this RMW).
            match s
                .word
                .compare_exchange_weak(w, w - 1, Ordering::Relaxed, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => w = now,
            }
        }
    }

    /// Under loom: the barrier's word (round and arrivals).
    #[cfg(all(loom, test))]
    pub(crate) fn word(&self) -> u32 {
        self.state.word.load(Ordering::Relaxed)
    }

    /// Under loom: an arrival and, if it was not the last, its immediate withdrawal (a
    /// `wait_timeout` whose timeout passed at once): `Some(leader)` if we passed, `None` if we
    /// took our arrival back.
    #[cfg(all(loom, test))]
    pub(crate) fn arrive_and_give_up(&self) -> Option<bool> {
        match self.arrive() {
            Arrival::Last => Some(true),
            Arrival::Counted(round) => (!self.withdraw(round)).then_some(false),
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("participants", &self.participants())
            .finish_non_exhaustive()
    }
}
