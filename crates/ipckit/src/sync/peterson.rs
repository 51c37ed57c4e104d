//! Peterson's algorithm (1981): mutual exclusion for two processes with one flag each and a
//! shared `victim` word.
//!
//! # How it works
//! Participant `i` raises `flag[i]`, then volunteers as the victim (`victim = i`), then waits while
//! the other's flag is up *and* it is still the victim. Leaving lowers the flag.
//!
//! # Invariant
//! If both are inside, both flags are up, so each passed because it was not the victim when it
//! looked — but `victim` holds one value, the last one written, and its writer saw the other's
//! flag up and itself as victim. So at most one is inside.
//!
//! # Memory ordering
//! Two `fence(SeqCst)`s per entry. Fence B orders the stores of `flag[me]` and `victim` before the
//! loads of `flag[other]` and `victim` (store→load, which CPUs reorder). Fence A orders the store
//! of `flag[me]` before the store of `victim`: together with the other's fence B it guarantees
//! that whoever writes `victim` last also sees our flag. (`Release` on the `victim` store is not
//! enough in the C++ memory model: the other side never *reads* our `victim` store, it overwrites
//! it.) The loom model without fences finds both participants inside.

use super::atomic::{Backoff, Ordering};
use super::participant::{sc_fence, two_participant_lock};

two_participant_lock! {
    /// Peterson's two-participant lock in shared memory (participants 0 and 1).
    pub struct Peterson(PetersonState) {
        /// `flag[i]` is 1 while participant `i` wants or holds the lock.
        flag: [AtomicU32; 2],
        /// The participant that volunteered last to wait.
        victim: AtomicU32,
    }
    magic = *b"IKPT";
}

impl PetersonState {
    /// The entry protocol; `FENCED = false` only in the loom model that shows the fences are
    /// needed.
    pub(crate) fn acquire_with<const FENCED: bool>(&self, me: usize) {
        let other = 1 - me;
        self.flag[me].store(1, Ordering::Release);
        // Fence A: orders the store of flag[me] before the store of victim below, so that the
        // participant whose victim store comes later (and whose fence B follows it) loads our
        // flag as 1.
        sc_fence::<FENCED>();
        self.victim.store(me as u32, Ordering::Release);
        // Fence B: orders the stores of flag[me] and victim above before the loads of
        // flag[other] and victim below.
        sc_fence::<FENCED>();
        let mut backoff = Backoff::default();
        while self.flag[other].load(Ordering::Acquire) == 1
            && self.victim.load(Ordering::Acquire) == me as u32
        {
            backoff.snooze();
        }
    }

    /// The exit protocol: lowers the flag.
    fn leave(&self, me: usize) {
        self.flag[me].store(0, Ordering::Release);
    }
}
