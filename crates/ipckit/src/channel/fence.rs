//! The two halves of the wake-up protocol's Dekker pair (see `wait.rs`), made asymmetric with
//! [membarrier(2)](https://man7.org/linux/man-pages/man2/membarrier.2.html).
//!
//! The protocol needs a full barrier on both sides: the waker's between its publication and its
//! look at the waiter's `sleeping` flag, the waiter's between its store of that flag and its last
//! poll. The waker runs on every send and every receive, the waiter only when it is about to
//! sleep; so the waiter pays for both. A waker orders its two accesses with a *compiler* fence
//! only ([`light`]: the hardware may still reorder them), and a waiter calls
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` ([`heavy`]): when it returns, every thread of
//! every registered process that was running has executed a full memory barrier, and a thread
//! that was not running was switched out, which is one. Either way each waker has passed a point
//! where the accesses before it in program order were ordered before those after — the full
//! barrier the protocol needed, placed by the kernel. This is the pairing membarrier(2)
//! documents (a compiler barrier on the fast path, the system call on the slow one), and the
//! one of liburcu and folly's `asymmetric_thread_fence_light/heavy`. A send or a receive
//! saves its `mfence` (about 6 ns on current x86 cores, half of the channel's own cost of a
//! 64-byte message); going to sleep costs a system call, and an inter-processor interrupt to
//! each CPU then running a registered process (on a VM, microseconds).
//!
//! # Who is registered
//! Only processes registered with `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` are interrupted,
//! so a process registers the first time it wakes or waits, before it skips any fence, and
//! skips fences only if that succeeded. A process that cannot (a kernel before 4.16, a seccomp
//! filter) stays *symmetric*: its wakers use a real SeqCst fence, which pairs with either kind of
//! waiter. Its waiters fence too, but that pairs only with fencing wakers, and a waker in another
//! process may be registered; so a symmetric waiter sleeps in short slices
//! ([`SYMMETRIC_SLICE`]) and polls between them: a wake-up lost to such a pair costs at most
//! that long, and all processes on one kernel normally make the same choice.
//!
//! # Under loom
//! Loom (like the C++ memory model it implements) has no asymmetric fence, so in a model both
//! halves are SeqCst fences: the model checks the protocol that membarrier's guarantee reduces
//! the real code to.

use std::time::Duration;

use super::wait::SLICE;

/// The longest sleep of a waiter in a process that cannot use membarrier (see the module
/// documentation): a wake-up that a registered waker's compiler fence lost costs at most this.
pub(crate) const SYMMETRIC_SLICE: Duration = Duration::from_millis(1);

/// The waker's half: after its publication (a Release store), before its load of `sleeping`.
#[inline(always)]
pub(crate) fn light() {
    #[cfg(not(any(loom, miri)))]
    if registered() {
        // Only the compiler must keep the publication before the load: membarrier, issued by
        // a waiter, supplies the hardware barrier (module documentation).
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        return;
    }
    super::atomic::fence(super::atomic::Ordering::SeqCst);
}

/// The waiter's half: after its store of `sleeping`, before its last poll. Returns how long it
/// may then sleep before polling again: [`SLICE`], or [`SYMMETRIC_SLICE`] when this process
/// could not interrupt the wakers (it fenced instead).
pub(crate) fn heavy() -> Duration {
    #[cfg(not(any(loom, miri)))]
    if registered() {
        use rustix::thread::{membarrier, MembarrierCommand};
        // The call fails only where registration would have (or for lack of memory): fall
        // back to the symmetric waiter's fence and short sleep.
        if membarrier(MembarrierCommand::GlobalExpedited).is_ok() {
            return SLICE;
        }
    }
    super::atomic::fence(super::atomic::Ordering::SeqCst);
    if cfg!(any(loom, miri)) {
        // Every waker fences here too (`light`): the pair is symmetric.
        SLICE
    } else {
        SYMMETRIC_SLICE
    }
}

#[cfg(not(any(loom, miri)))]
mod registration {
    use std::sync::atomic::{AtomicU8, Ordering};

    use rustix::thread::{membarrier, membarrier_query, MembarrierCommand};

    const UNKNOWN: u8 = 0;
    const REGISTERED: u8 = 1;
    const UNAVAILABLE: u8 = 2;

    /// This process's registration: tried once, by the first waker or waiter.
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Whether this process is registered for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (registering it
    /// on the first call).
    #[inline(always)]
    pub(crate) fn registered() -> bool {
        // Acquire: pairs with the Release store in `register`, so a thread that sees REGISTERED
        // skips fences only after the registration's system call completed (the kernel then
        // interrupts this process's CPUs on every waiter's membarrier).
        match STATE.load(Ordering::Acquire) {
            REGISTERED => true,
            UNAVAILABLE => false,
            _ => register(),
        }
    }

    #[cold]
    fn register() -> bool {
        let query = membarrier_query();
        let ok = query.contains_command(MembarrierCommand::GlobalExpedited)
            && query.contains_command(MembarrierCommand::RegisterGlobalExpedited)
            && membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok();
        // Two threads may both register (it is idempotent) and store the same answer.
        STATE.store(if ok { REGISTERED } else { UNAVAILABLE }, Ordering::Release);
        ok
    }
}

#[cfg(not(any(loom, miri)))]
pub(crate) use registration::registered;

#[cfg(all(test, not(loom), not(miri)))]
mod tests {
    /// Linux has had the expedited global membarrier since 4.16 (2018), so on the machines
    /// ipckit is tested on a send or a receive pays a compiler fence, not an `mfence`, and a
    /// waiter sleeps in full slices.
    #[test]
    fn this_process_registers_and_its_wakers_skip_the_fence() {
        assert!(super::registered());
        assert_eq!(super::heavy(), super::SLICE);
    }
}
