//! The atomics the channel's algorithms are written over: `std`'s in a normal build, loom's under
//! `cfg(loom)`, so the same ring and wake-up code is model-checked by loom and run on shared memory.
//!
//! Under loom only the algorithms (ring, wait protocol, shared layout structs) are compiled; the
//! parts that map real memory and make system calls are left out, since loom's atomics are
//! bookkeeping objects that cannot live in a shared mapping.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// One step of a busy-wait: `pause` on x86, a scheduling point under loom.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(all(test, not(loom)))]
    PAUSES.with(|p| p.set(p.get() + 1));
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

#[cfg(all(test, not(loom)))]
thread_local! {
    /// The `spin_loop`s of this thread, for tests of how waits poll.
    pub(crate) static PAUSES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}
