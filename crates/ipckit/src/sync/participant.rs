//! What the classic mutual-exclusion algorithms have in common: a fixed set of participants, each
//! entering with its own index, and a guard that leaves when dropped.
//!
//! These locks protect no data of their own (they hand out no `&mut T`), so using them wrongly —
//! two threads with the same index, an index of another lock — breaks mutual exclusion but never
//! memory safety.

use std::fmt;

use crate::error::{Error, Object, Result};

pub(crate) mod sealed {
    /// The unchecked entry and exit protocols, implemented by each algorithm.
    pub trait Raw: Sync {
        /// The algorithm's name in messages.
        fn name(&self) -> &'static str;
        /// The number of participants.
        fn count(&self) -> usize;
        /// The entry protocol for participant `me` (< `count()`); returns inside the critical
        /// section.
        fn acquire(&self, me: usize);
        /// The exit protocol for participant `me`.
        fn release(&self, me: usize);
        /// `self` as a trait object, for the guard.
        fn as_raw(&self) -> &dyn Raw;
    }
}

/// A lock for a fixed number of participants (processes or threads), each with its own index in
/// `0..participants()`: [`Dekker`](super::Dekker), [`Peterson`](super::Peterson),
/// [`FilterLock`](super::FilterLock), [`Szymanski`](super::Szymanski), [`Bakery`](super::Bakery).
///
/// Every index must be used by at most one thread at a time.
pub trait ParticipantLock: sealed::Raw {
    /// The number of participants the lock was made for.
    fn participants(&self) -> usize {
        self.count()
    }

    /// Runs the entry protocol as participant `me` and returns once inside the critical section;
    /// the guard runs the exit protocol when dropped. An invalid-argument error if `me` is not
    /// below [`participants`](Self::participants).
    fn lock(&self, me: usize) -> Result<ParticipantGuard<'_>> {
        let n = self.count();
        if me >= n {
            return Err(Error::invalid(
                "lock",
                Object::Other(format!(
                    "ipckit::sync::{} at {:p}",
                    self.name(),
                    self.as_raw()
                )),
                format!("participant {me} is not in 0..{n}"),
            ));
        }
        self.acquire(me);
        Ok(ParticipantGuard {
            lock: self.as_raw(),
            me,
        })
    }
}

impl<T: sealed::Raw> ParticipantLock for T {}

/// Inside the critical section of a [`ParticipantLock`]; leaves it (the exit protocol) when
/// dropped.
#[must_use = "the critical section ends as soon as the guard is dropped"]
pub struct ParticipantGuard<'a> {
    lock: &'a dyn sealed::Raw,
    me: usize,
}

impl ParticipantGuard<'_> {
    /// The participant index this guard entered with.
    pub fn participant(&self) -> usize {
        self.me
    }
}

impl Drop for ParticipantGuard<'_> {
    fn drop(&mut self) {
        self.lock.release(self.me);
    }
}

impl fmt::Debug for ParticipantGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParticipantGuard")
            .field("lock", &self.lock.name())
            .field("participant", &self.me)
            .finish()
    }
}

/// `fence(SeqCst)` when `FENCED`: lets the loom models run each algorithm without its fences to
/// show that they are needed.
#[inline]
pub(crate) fn sc_fence<const FENCED: bool>() {
    if FENCED {
        super::atomic::fence(super::atomic::Ordering::SeqCst);
    }
}

/// The largest number of participants of [`FilterLock`](super::FilterLock),
/// [`Szymanski`](super::Szymanski) and [`Bakery`](super::Bakery) (the size of their arrays).
pub const MAX_PARTICIPANTS: usize = 32;

/// Checks a participant count for the N-process locks.
#[cfg(not(loom))]
pub(crate) fn check_count<T: super::place::Shared>(region: &[u8], n: usize) -> Result<u32> {
    if n == 0 || n > MAX_PARTICIPANTS {
        return Err(Error::invalid(
            "init_in",
            super::place::object_at::<T>(region.as_ptr()),
            format!("{n} participants: between 1 and {MAX_PARTICIPANTS} are supported"),
        ));
    }
    Ok(n as u32)
}

/// The stored participant count of an N-process lock, validated.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn stored_count(n: u32) -> std::result::Result<(), String> {
    if n == 0 || n as usize > MAX_PARTICIPANTS {
        return Err(format!(
            "{n} participants is outside 1..={MAX_PARTICIPANTS}"
        ));
    }
    Ok(())
}
