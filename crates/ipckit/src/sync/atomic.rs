//! The atomics `sync` is written against: the standard library's, or loom's when the crate is
//! built with `--cfg loom`, so the same source is what loom model-checks.
//!
//! Only what the atomic protocols use is re-exported. [`spin`] is the single busy-wait step of every
//! spin loop: a CPU hint in real builds, a `yield_now` under loom (which loom needs to see a spin
//! loop make progress instead of exploring it forever).

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// One step of a busy-wait loop: `spin_loop` hint, or a loom yield.
#[inline]
pub(crate) fn spin() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Gives the CPU away (`sched_yield`), or a loom yield.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Busy-waiting with backoff: spins a little, then yields the CPU, so a waiter does not burn the
/// time slice its lock holder needs when there are more processes than cores.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    /// Spins for short waits; from the 8th call on, yields instead.
    #[inline]
    pub(crate) fn snooze(&mut self) {
        if cfg!(loom) {
            yield_now();
        } else if self.step < 7 {
            for _ in 0..(1u32 << self.step) {
                spin();
            }
            self.step += 1;
        } else {
            yield_now();
        }
    }
}
