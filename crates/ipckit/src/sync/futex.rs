//! The two futex operations the futex-based primitives need, on words in shared memory.
//!
//! The futexes are *shared* (no `FUTEX_PRIVATE_FLAG`): the kernel keys them by the physical page,
//! so waiters and wakers in different processes, with the page mapped at different addresses,
//! meet. Under loom they are modelled as the kernel implements them (a bucket lock, a check of the
//! word under it, a sleep queue), so loom finds lost wake-ups as deadlocks.
//!
//! # References
//! [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html),
//! [futex(7)](https://man7.org/linux/man-pages/man7/futex.7.html)

use std::time::{Duration, Instant};

use super::atomic::{fence, AtomicU32, Ordering};

/// `futex(word, FUTEX_WAIT, expected, timeout)` — sleeps while `*word == expected`, at most
/// `timeout` (`None`: no limit).
///
/// Returns on a wake-up, when the word no longer holds `expected`, on a signal, on timeout, or
/// spuriously: callers re-check their condition and their deadline in a loop.
#[cfg(not(loom))]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    use rustix::thread::futex;
    let ts = timeout.map(|t| futex::Timespec {
        tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: t.subsec_nanos().into(),
    });
    // EAGAIN (value changed), EINTR and ETIMEDOUT all mean "re-check": the caller does.
    let _ = futex::wait(word, futex::Flags::empty(), expected, ts.as_ref());
}

#[cfg(loom)]
loom::lazy_static! {
    /// The model's one futex hash bucket: its lock orders the check of the word against wakes.
    static ref BUCKET: (loom::sync::Mutex<()>, loom::sync::Condvar) =
        (loom::sync::Mutex::new(()), loom::sync::Condvar::new());
}

/// Under loom: the kernel's protocol — take the bucket lock, check the word, sleep on the bucket —
/// so a wake-up that is lost shows up as a deadlock. Timed waits only yield.
#[cfg(loom)]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    if timeout.is_some() {
        loom::thread::yield_now();
        return;
    }
    let (lock, sleepers) = &*BUCKET;
    let guard = lock.lock().unwrap();
    if word.load(Ordering::Relaxed) == expected {
        drop(sleepers.wait(guard).unwrap());
    }
}

/// `futex(word, FUTEX_WAKE, n)` — wakes at most `n` processes or threads sleeping on `word`.
#[cfg(not(loom))]
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    use rustix::thread::futex;
    // Only EFAULT/EINVAL are possible, and `word` is a valid, aligned u32.
    let _ = futex::wake(word, futex::Flags::empty(), n);
}

/// Under loom: wakes every sleeper of the bucket (a superset of what `FUTEX_WAKE` wakes, which
/// callers tolerate as spurious wake-ups).
#[cfg(loom)]
pub(crate) fn wake(_word: &AtomicU32, _n: u32) {
    let (lock, sleepers) = &*BUCKET;
    let _guard = lock.lock().unwrap();
    sleepers.notify_all();
}

/// A deadline for a timed wait: `None` if `timeout` is too large to represent, which then means
/// "no limit".
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The time left until `deadline`; `Some(ZERO)` once it has passed, `None` without a deadline.
pub(crate) fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// One [`wait`] on `word` while it holds `expected`, counted in `waiters` (how many are, or are
/// about to be, asleep on `word`) so that [`counted_wake`] can skip the system call when nobody
/// sleeps. A sleeper that dies leaves `waiters` too high, which only costs a needless wake.
pub(crate) fn counted_wait(
    word: &AtomicU32,
    expected: u32,
    waiters: &AtomicU32,
    timeout: Option<Duration>,
) {
    waiters.fetch_add(1, Ordering::Relaxed);
    // Orders our store to `waiters` before the load of `word` that FUTEX_WAIT makes; pairs with
    // the fence in `counted_wake` (the waker's store to `word`, its load of `waiters`). Either the
    // kernel sees the new value of `word` and does not sleep, or the waker sees us and wakes us.
    fence(Ordering::SeqCst);
    wait(word, expected, timeout);
    waiters.fetch_sub(1, Ordering::Relaxed);
}

/// After the caller's store to `word`: [`wake`]s at most `n` of those asleep on it in
/// [`counted_wait`], and makes no system call when `waiters` says there are none.
pub(crate) fn counted_wake(word: &AtomicU32, waiters: &AtomicU32, n: u32) {
    // Orders the caller's store to `word` before our load of `waiters`; pairs with the fence in
    // `counted_wait` (see there).
    fence(Ordering::SeqCst);
    if waiters.load(Ordering::Relaxed) > 0 {
        wake(word, n);
    }
}

/// The loop of a timed wait: tries `try_pass`, and while it fails, `sleep`s for at most the time
/// left; `true` once `try_pass` succeeds, `false` when `timeout` has passed first.
pub(crate) fn retry_until(
    timeout: Duration,
    mut try_pass: impl FnMut() -> bool,
    mut sleep: impl FnMut(Option<Duration>),
) -> bool {
    let deadline = deadline(timeout);
    loop {
        if try_pass() {
            return true;
        }
        let left = remaining(deadline);
        if left == Some(Duration::ZERO) {
            return false;
        }
        sleep(left);
    }
}
