//! The create-once protocol: one state word that lets exactly one of several processes initialise
//! an object in shared memory, and everybody else see it only once it is initialised. `sync`'s
//! primitives (in their [`Header`](crate::sync)) and `posix::sem`'s semaphore slots both use it.
//!
//! The word of fresh, zero-filled memory is [`UNINIT`]. [`Once::claim`] moves it to
//! [`INITIALISING`] with a compare-and-swap: exactly one caller wins and initialises; it then
//! publishes with a release store of [`READY`] ([`Once::publish`]), or gives the word back to
//! `UNINIT` if initialising failed ([`Once::reset`], also how a destroyed object frees its
//! memory). Everybody else acts only on an acquire load that sees `READY` ([`Once::state`]), so
//! they see the whole initialised object; [`Once::settled_state`] waits (bounded) for a claimant
//! to finish. Any other value is not an object of this protocol: corrupt, or never zero-filled.
//!
//! Loom model-checks the protocol through `sync`'s header (`sync::loom_tests`).

#[cfg(not(loom))]
use std::time::Duration;

use crate::sync::atomic::{AtomicU32, Backoff, Ordering};

/// Nobody has claimed the object: the state of zero-filled memory, and after a reset.
pub(crate) const UNINIT: u32 = 0;
/// One process has claimed the object and is initialising it ("INIT" in ASCII).
pub(crate) const INITIALISING: u32 = u32::from_be_bytes(*b"INIT");
/// The object is initialised and usable ("REDY" in ASCII).
pub(crate) const READY: u32 = u32::from_be_bytes(*b"REDY");

/// How long [`Once::settled_state`] waits for an object that another process is initialising.
/// Initialising takes microseconds; a word still `INITIALISING` after this long belongs to an
/// initialiser that died.
#[cfg(not(loom))]
pub(crate) const INIT_WAIT: Duration = Duration::from_secs(5);

/// The state word of the create-once protocol (see the [module documentation](self)). An atomic,
/// because other processes may write it at any time.
#[repr(transparent)]
#[derive(Debug)]
pub(crate) struct Once(AtomicU32);

impl Once {
    /// A word in `UNINIT`, for an object built in ordinary memory (and under loom).
    pub(crate) fn new() -> Once {
        Once(AtomicU32::new(UNINIT))
    }

    /// `UNINIT → INITIALISING` by compare-and-swap: exactly one caller of all processes wins
    /// (`Ok`); the others get the state they found.
    pub(crate) fn claim(&self) -> Result<(), u32> {
        // Acquire: if the object was initialised, destroyed and reset before, what the previous
        // owner wrote happens before what the winner writes now. Losers synchronise through the
        // READY store instead.
        self.0
            .compare_exchange(UNINIT, INITIALISING, Ordering::Acquire, Ordering::Acquire)
            .map(drop)
    }

    /// `INITIALISING → READY` with release ordering: whoever acquires `READY` sees everything the
    /// winner wrote before.
    pub(crate) fn publish(&self) {
        self.0.store(READY, Ordering::Release);
    }

    /// Back to `UNINIT`, with release ordering: after a failed initialisation, so that another
    /// process can try, or after the object was destroyed, so that its memory can be reused.
    pub(crate) fn reset(&self) {
        self.0.store(UNINIT, Ordering::Release);
    }

    /// The state, with acquire ordering (pairs with [`publish`](Self::publish)).
    pub(crate) fn state(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }

    /// Waits until the state leaves `INITIALISING` (at most [`INIT_WAIT`]; unbounded under loom)
    /// and returns it; `None` if it did not.
    pub(crate) fn settled_state(&self) -> Option<u32> {
        #[cfg(not(loom))]
        let deadline = crate::sync::futex::deadline(INIT_WAIT);
        let mut backoff = Backoff::default();
        loop {
            let state = self.state();
            if state != INITIALISING {
                return Some(state);
            }
            #[cfg(not(loom))]
            if crate::sync::futex::remaining(deadline) == Some(Duration::ZERO) {
                return None;
            }
            backoff.snooze();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn one_claim_wins_until_the_word_is_reset() {
        let once = Once::new();
        assert_eq!(once.state(), UNINIT);
        assert_eq!(once.claim(), Ok(()));
        assert_eq!(once.claim(), Err(INITIALISING));
        once.publish();
        assert_eq!(once.claim(), Err(READY));
        assert_eq!(once.settled_state(), Some(READY));
        once.reset();
        assert_eq!(once.claim(), Ok(()), "a reset word can be claimed again");
    }
}
