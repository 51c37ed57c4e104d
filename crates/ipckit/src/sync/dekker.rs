//! Dekker's algorithm (1965): the first correct mutual exclusion for two processes using only
//! reads and writes of shared memory.
//!
//! # How it works
//! Participant `i` raises `wants[i]` and enters if the other's flag is down. If both are up, the
//! one whose `turn` it is not lowers its flag, waits until the turn is its own, and raises it
//! again; the one whose turn it is insists. Leaving hands the turn to the other and lowers the flag.
//!
//! # Invariant
//! A participant is in the critical section only if, after raising its own flag, it saw the
//! other's flag down. Two participants cannot both see that: each raises its flag *before* it reads
//! the other's, so whichever reads second sees the flag of the first.
//!
//! # Memory ordering
//! "Raise mine, then read yours" is a store followed by a load of another location, which every
//! modern CPU — x86 included, through its store buffer — may reorder. A `fence(SeqCst)` sits
//! between each raise of `wants[me]` and the following read of `wants[other]`; the loom model
//! without those fences finds both participants inside. Stores are `Release` and loads `Acquire`,
//! so the critical sections are also ordered for the data they touch.

use super::atomic::{Backoff, Ordering};
use super::participant::{sc_fence, two_participant_lock};

two_participant_lock! {
    /// Dekker's two-participant lock in shared memory (participants 0 and 1).
    pub struct Dekker(DekkerState) {
        /// `wants[i]` is 1 while participant `i` wants or holds the lock.
        wants: [AtomicU32; 2],
        /// The participant that insists when both want the lock.
        turn: AtomicU32,
    }
    magic = *b"IKDK";
}

impl DekkerState {
    /// The entry protocol; `FENCED = false` only in the loom model that shows the fences are
    /// needed.
    pub(crate) fn acquire_with<const FENCED: bool>(&self, me: usize) {
        let other = 1 - me;
        self.wants[me].store(1, Ordering::Release);
        // Fence A: orders the store of wants[me] above before the load of wants[other] below.
        sc_fence::<FENCED>();
        while self.wants[other].load(Ordering::Acquire) == 1 {
            if self.turn.load(Ordering::Acquire) != me as u32 {
                self.wants[me].store(0, Ordering::Release);
                let mut backoff = Backoff::default();
                while self.turn.load(Ordering::Acquire) != me as u32 {
                    backoff.snooze();
                }
                self.wants[me].store(1, Ordering::Release);
                // Fence B: orders this second store of wants[me] before the next load of
                // wants[other] (the loop condition).
                sc_fence::<FENCED>();
            } else {
                super::atomic::spin();
            }
        }
    }

    /// The exit protocol: hands the turn to the other participant, then lowers the flag.
    fn leave(&self, me: usize) {
        self.turn.store(1 - me as u32, Ordering::Release);
        self.wants[me].store(0, Ordering::Release);
    }
}
