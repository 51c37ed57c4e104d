//! Waiting for the other side: spin briefly, then sleep on a futex word that lives in the shared
//! memory, so a waiter in one process is woken by a `futex(FUTEX_WAKE)` from another.
//!
//! The futexes are **shared** ones (`FutexFlags::empty()`, not `PRIVATE`): the kernel keys them by
//! the physical page, which is what makes cross-process wake-ups work. A waker makes a system call
//! only when the waiter announced that it is going to sleep, so a sender never enters the kernel
//! while the receiver is busy.
//!
//! # The wake-up protocol (a Dekker pair of SeqCst fences)
//! ```text
//! waiter                                   waker
//! sleeping = 1                             publish (Release store of header / head / state)
//! fence(SeqCst)  [membarrier, fence.rs]    fence(SeqCst)  [compiler fence, fence.rs]
//! s = seq; poll again: ready? -> return    if sleeping != 0 { seq += 1; futex_wake(seq) }
//! futex_wait(seq, s)   (returns at once if seq != s)
//! sleeping = 0
//! ```
//! The two SeqCst fences are totally ordered: either the waker's fence comes first, and then the
//! waiter's poll (after its own fence) sees what was published, or the waiter's comes first, and
//! then the waker's load sees `sleeping == 1` and wakes it. If the increment of `seq` lands between
//! the waiter's read of `seq` and its `futex_wait`, the kernel sees a different value and returns
//! at once. No wake-up is lost; loom checks this (`channel::loom_tests`).
//!
//! # Sleeping on a doorbell instead (async and event-loop waiters)
//! A waiter that cannot block its thread in `futex_wait` (a tokio task, an epoll loop) announces
//! `sleeping = 2` instead of 1, with the id of its [`Doorbell`](super::Doorbell) (a Unix
//! datagram socket) stored in the cell first, and then polls once more, exactly as above; it
//! then waits for the socket to become readable. A waker that sees `sleeping != 0` increments
//! `seq` as always, then sends the doorbell one byte if it sees 2, and calls `futex_wake`
//! otherwise: one system call either way.
//! The Dekker pair is unchanged, so no wake-up is lost either; a datagram stays queued until the
//! waiter reads it, so a ring that comes before the waiter starts waiting is not lost to it.
//!
//! # The fences are asymmetric
//! The waker's fence would be the price of every send (and of every receive, which wakes a
//! producer waiting for room) while the other side is awake: about 6 ns each on current x86
//! cores, half of the channel's own cost of a small message. So a waker fences only the compiler
//! and the waiter, about to sleep anyway, pays for both with `membarrier(2)` (`fence.rs`, which
//! also says what a process that cannot use it does). Loom checks the protocol with SeqCst
//! fences on both sides, which is what membarrier's guarantee makes of it.
//!
//! # References
//! [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html),
//! [futex(7)](https://man7.org/linux/man-pages/man7/futex.7.html)

use std::time::{Duration, Instant};

use super::atomic::{spin_loop, AtomicU32, Ordering};
use super::fence;

/// How a side waits when the channel is empty (consumer) or its lane is full (producer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Spin for a few tens of microseconds, then sleep on a shared futex (the default). A sleeping
    /// side uses no CPU; waking it costs the other side one `futex` system call, and going to
    /// sleep interrupts the other side's CPU once. So a side whose recent waits ended soon
    /// after it fell asleep polls on for longer before sleeping, up to 200 µs, and back to the
    /// few tens of µs once its waits outlast that (as a KVM guest's halt polling adapts); after
    /// a few waits in a row that outlasted it, it sleeps at once, as a pipe's reader does, until
    /// a wait ends soon after it fell asleep.
    #[default]
    Blocking,
    /// Busy-poll and never sleep: the lowest latency, at the price of one CPU kept busy while
    /// waiting. Deadlines and the liveness of the other side are still checked (every ~100 ms).
    Spin,
}

/// When a wait gives up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deadline {
    /// Do not wait at all (`try_*`).
    Now,
    /// Wait as long as it takes.
    Never,
    /// Wait this long from the first time the wait reads the clock (`*_timeout`): a few polls
    /// after it starts, so that a wait that ends at once reads no clock at all.
    After(Duration),
    /// Wait until this instant (an `After` once the clock was read).
    At(Instant),
}

impl Deadline {
    /// The deadline `timeout` from now (from the wait's first clock read).
    pub(crate) fn after(timeout: Duration) -> Deadline {
        Deadline::After(timeout)
    }

    /// The time left, `None` for no limit and zero once passed. Reads the clock (except for
    /// `Now` and `Never`); an `After` becomes an `At`, and a timeout too large for `Instant`
    /// waits forever.
    pub(crate) fn remaining(&mut self) -> Option<Duration> {
        match *self {
            Deadline::Now => Some(Duration::ZERO),
            Deadline::Never => None,
            Deadline::After(timeout) => {
                *self = Instant::now()
                    .checked_add(timeout)
                    .map_or(Deadline::Never, Deadline::At);
                self.remaining()
            }
            Deadline::At(at) => Some(at.saturating_duration_since(Instant::now())),
        }
    }
}

/// The longest single sleep: a sleeper wakes at least this often to check that its peer is alive.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

/// The longest [`SpinWindow`]: a waiter never polls longer than this (after its fixed spin)
/// before it sleeps. The default of a KVM guest's `haltpoll` governor, whose rule this is.
const WINDOW_MAX: Duration = Duration::from_micros(200);
/// A window that grows from nothing starts at this (`haltpoll`'s `guest_halt_poll_grow_start`).
const WINDOW_GROW_START: Duration = Duration::from_micros(50);
/// After this many waits in a row that outlasted the window by more than [`WINDOW_MAX`], a
/// waiter sleeps at once ([`SpinWindow`]): one such wait now and then (the first message of each
/// burst) leaves the spin alone.
const LONG_WAITS: u32 = 4;

/// How long a `Blocking` waiter polls on after its fixed spin before it yields and sleeps:
/// nothing at first, and adapted to the waiter's own recent waits by the rule of the
/// `cpuidle-haltpoll` governor of KVM guests. A wait that outlasted the window but ended within
/// [`WINDOW_MAX`] doubles it (to at least [`WINDOW_GROW_START`]): polling that long would have
/// saved the sleep. One that outlasted `WINDOW_MAX` (or timed out) halves it: polling would
/// have been wasted.
///
/// Sleeping is dear here. Going to sleep interrupts the CPU of every registered process
/// (`membarrier`, `fence.rs`), on a VM a trip through the hypervisor for the very side that is
/// sending; and the sleeper wakes through the scheduler. A consumer of 1 MiB messages that
/// arrive every 60–90 µs slept on each: blocking, the channel streamed 10.8–11.3 GB/s against
/// 16.5 busy-polling; with the window, 15.1–15.5, and its one-way latency went from 117 to 66 µs
/// (`ipckit bench --pin --transports channel-zc --sizes 1M --pattern throughput` and `latency`,
/// an Intel Xeon VM). A waiter whose messages come
/// further apart than `WINDOW_MAX`, or not at all, keeps sleeping after the fixed spin and uses
/// no CPU; after [`LONG_WAITS`] such waits in a row it skips the fixed spin too and sleeps at
/// once, until a wait ends within `WINDOW_MAX` of its sleep (which widens the window as above)
/// or within the spin.
///
/// Skipping the spin matters most where the two sides share a CPU, as the scheduler often puts
/// a waker and the task it wakes: there a spin can never see the message (the sender cannot run
/// while the waiter spins), and it costs the waiter its next wake-up's turn. A woken task runs at
/// once only if it has not recently taken CPU time from the task now running, and a waiter that
/// spun for tens of µs after each message had: its wake-ups waited until the sender slept
/// (`ipckit bench --pattern wake`, unpinned, 1 ms apart: 64 B one-way 10 µs against a pipe's
/// 3 µs, an Intel Xeon VM; sleeping at once, as the pipe's reader does, 3–4 µs).
///
/// Private to one waiter (in its process, not the shared memory), so a hostile peer can only
/// make it poll up to `WINDOW_MAX` per wait, which a `Spin` waiter does all the time.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SpinWindow {
    limit: Duration,
    /// Waits in a row that outlasted the window by more than [`WINDOW_MAX`] or timed out.
    long_waits: u32,
}

impl SpinWindow {
    /// Adjusts the window after a wait that went past the fixed spin and ended `waited` after
    /// it (`None`: it timed out).
    fn learn(&mut self, waited: Option<Duration>) {
        match waited {
            Some(w) if w <= self.limit => self.long_waits = 0,
            Some(w) if w <= WINDOW_MAX => {
                self.limit = (self.limit * 2).clamp(WINDOW_GROW_START, WINDOW_MAX);
                self.long_waits = 0;
            }
            _ => {
                self.limit /= 2;
                self.long_waits = self.long_waits.saturating_add(1);
            }
        }
    }

    /// Notes a wait that ended within the fixed spin.
    fn learn_quick(&mut self) {
        self.long_waits = 0;
    }

    /// Whether the next wait skips the fixed spin and sleeps at once.
    fn sleeps_at_once(&self) -> bool {
        self.long_waits >= LONG_WAITS
    }
}

/// The clock of the spin window. Tests of the window set the time their polls see.
fn now() -> Instant {
    #[cfg(all(test, not(loom)))]
    if let Some(t) = tests::FAKE_NOW.with(std::cell::Cell::get) {
        return t;
    }
    Instant::now()
}

/// Says when a liveness check is due: at most once per [`SLICE`], read on the coarse monotonic
/// clock (a vDSO read of a value the kernel updates every tick, without `rdtsc`), because a
/// waiter asks on every empty poll and a fine clock there costs more than the poll itself.
#[derive(Debug, Default)]
pub(crate) struct CheckDue {
    last: Option<Duration>,
}

impl CheckDue {
    /// Whether a check is due now; if so, the next one is due a slice later.
    pub(crate) fn due(&mut self) -> bool {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
        let now = Duration::new(t.tv_sec as u64, t.tv_nsec as u32);
        // The coarse clock lags by up to a tick, so a check may come a tick late; SLICE is 100
        // times longer than that.
        let due = self
            .last
            .is_none_or(|last| now.saturating_sub(last) >= SLICE);
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// `sleeping` of a waiter that sleeps on its doorbell rather than on the futex.
const ASLEEP_ON_BELL: u32 = 2;

/// Polls of a `Blocking` waiter one `pause` apart, as a `Spin` waiter's, before it backs off:
/// a few microseconds (a consumer's busy polls, which look at one lane, take 15–20 ns with their
/// `pause` on an Intel Xeon), so that while messages keep coming a blocking receiver sees each as
/// soon as a busy-polling one would (a backoff's longer pauses would add their length to the
/// wait). 64 was about a microsecond when every poll was a full pass; with quick polls it made
/// a pinned 64 KiB `channel-zc` ping-pong take 3.9–4.1 µs one way instead of 3.3–3.6.
#[cfg(not(loom))]
const BUSY_POLLS: u32 = 256;
#[cfg(loom)]
const BUSY_POLLS: u32 = 0;

/// The `pause`s a waiter adds before its second poll, after its first found nothing (then one
/// between polls). A consumer that has caught up with a stream would otherwise poll the cache
/// line into which the producer is writing the next record, taking the line away between the
/// producer's stores, each of which must then fetch it back (a producer waiting for room would
/// do the same to the consumer's head). A reply in a ping-pong comes a round trip later, so it
/// is not seen later. With 2 to 6, a pinned 64-byte stream ran 850–1050 MB/s against 680–770
/// MB/s without, and the one-way latencies did not move; with 8 it ran 750 MB/s (`ipckit bench
/// --pin`, an Intel Xeon VM). Measured with the pauses before the loop, as here: the same
/// pauses in the loop's first round gained a third as much. Under loom a pause is a yield, a
/// scheduling point: one, so that the models do not grow.
#[cfg(not(loom))]
const SLIP: u32 = 4;
#[cfg(loom)]
const SLIP: u32 = 1;

/// How far ahead of a consumer that caught up with a stream [`let_ahead`] lets the producer get
/// (or a quarter of the lane, if that is less).
pub(crate) const AHEAD_BYTES: u64 = 16 * 1024;
/// The `pause`s between two looks of [`let_ahead`] at the producer's progress: about 400 ns on
/// an Intel Xeon whose `pause` takes 13 ns, 1.4 µs on cores whose `pause` takes 140 cycles.
const AHEAD_PAUSES: u32 = 32;
/// The most looks [`let_ahead`] takes: it never waits longer than this many `AHEAD_PAUSES`.
#[cfg(not(loom))]
const AHEAD_LOOKS: u32 = 64;
#[cfg(loom)]
const AHEAD_LOOKS: u32 = 0;
/// The least a producer must write between two looks for [`let_ahead`] to go on waiting: a
/// slower producer does not gain from a head start, and its messages should not wait for it.
const AHEAD_MIN_GROWTH: u64 = 256;

/// Lets a producer that streams at full speed get ahead of a consumer that has caught up with
/// it, before the consumer polls again: the "temporal slipping" of FastForward (Giacomoni et
/// al., PPoPP 2008). A consumer that polls at the producer's heels reads the cache lines the
/// producer is writing, so that each of the producer's stores must fetch its line back from
/// the consumer's core and the two sides take turns on every message; one that starts again
/// `limit` bytes behind reads lines the producer has finished with while the producer writes
/// lines the consumer does not touch. `backlog` reads how far the producer is ahead (a
/// hint: any value only shortens or ends the wait). The wait ends as soon as the backlog
/// reaches `limit`, grows by less than [`AHEAD_MIN_GROWTH`] between two looks (a slower or
/// stopped producer: its messages are read at once), the deadline passes, or after
/// [`AHEAD_LOOKS`] looks.
///
/// Measured with `ipckit bench --pin --transports channel,channel-zc,pipe --sizes 64,1K,64K,1M
/// --pattern throughput` on an Intel Xeon VM, three runs alternated with the build before:
/// 64-byte streams ran 2.09–2.18 GB/s against 1.34–1.46, 1 KiB ones 6.3–6.6 GB/s against
/// 4.0–4.4; 64 KiB and 1 MiB did not move, nor did ping-pong latencies. It takes a receiver
/// faster than its producer to catch up at all: before the transport's receiver had its fast
/// path (`transport::RecvImpl::recv_ready`), this wait changed nothing, and that fast path
/// without it made the 64-byte stream slower (0.70–0.82 GB/s), the two sides then taking
/// turns on every line. With a growth of 1 KiB required between looks, a 64-byte stream
/// stopped waiting too early (0.97–1.17 GB/s).
pub(crate) fn let_ahead(limit: u64, deadline: &mut Deadline, mut backlog: impl FnMut() -> u64) {
    let mut last = backlog();
    for _ in 0..AHEAD_LOOKS {
        if last >= limit {
            return;
        }
        for _ in 0..AHEAD_PAUSES {
            spin_loop();
        }
        let now = backlog();
        if now.wrapping_sub(last) < AHEAD_MIN_GROWTH || deadline.remaining() == Some(Duration::ZERO)
        {
            return;
        }
        last = now;
    }
}

/// Rounds of `pause` after those (with exponential backoff, 2..64 `pause`s each) before a
/// `Blocking` waiter polls on for its [`SpinWindow`], then yields and sleeps: about 20-50 µs on
/// current x86 cores. Under loom the waiter goes straight to the sleep protocol, which is what
/// the model checks.
#[cfg(not(loom))]
const SPIN_ROUNDS: u32 = 24;
#[cfg(loom)]
const SPIN_ROUNDS: u32 = 0;
/// Rounds of `sched_yield` after spinning, before sleeping.
#[cfg(not(loom))]
const YIELD_ROUNDS: u32 = 4;
#[cfg(loom)]
const YIELD_ROUNDS: u32 = 0;
/// While polling one `pause` apart, a wait reads the clock every this many polls (and once per
/// round after that): a message that comes sooner costs no clock read, a clock read being a
/// good part of a message's cost. A timeout is thus late by at most a few hundred nanoseconds.
#[cfg(not(loom))]
const POLLS_PER_CLOCK: u32 = 16;
#[cfg(loom)]
const POLLS_PER_CLOCK: u32 = 1;

/// One waiter's announcement flag and futex word, on a cache line of their own (128 bytes: two
/// 64-byte lines, because x86 prefetches lines in adjacent pairs).
///
/// Exactly one process waits on a cell (the consumer on the header's cell, a lane's producer on its
/// lane's cell); any number may wake it.
#[repr(C, align(128))]
pub(crate) struct WaitCell {
    /// 1 from just before the waiter's last poll until it has returned from `futex_wait`; 0
    /// otherwise. Written only by the waiter; read by wakers to skip the system call.
    sleeping: AtomicU32,
    /// The futex word: incremented (wrapping) by each waker that saw `sleeping == 1`, so a
    /// `futex_wait` that raced with a wake-up returns at once.
    seq: AtomicU32,
    /// The doorbell of a waiter that sleeps with `sleeping == 2` (0: none). Written by the waiter
    /// before it announces 2 (Release); read by wakers that saw 2 (Acquire). Untrusted: it only
    /// picks which `ipckit-bell-…` socket gets one byte.
    bell: AtomicU32,
    /// Loom has no futex: the model sleeps on a condition variable keyed by this cell.
    #[cfg(loom)]
    park: loom::sync::Mutex<()>,
    #[cfg(loom)]
    cond: loom::sync::Condvar,
    /// Loom has no socket: a doorbell is modelled as a count of rings (under `park`).
    #[cfg(loom)]
    rings: AtomicU32,
}

impl WaitCell {
    /// A cell for a loom model (in shared memory, cells start as zero bytes).
    #[cfg(loom)]
    pub(crate) fn new() -> WaitCell {
        WaitCell {
            sleeping: AtomicU32::new(0),
            seq: AtomicU32::new(0),
            bell: AtomicU32::new(0),
            park: loom::sync::Mutex::new(()),
            cond: loom::sync::Condvar::new(),
            rings: AtomicU32::new(0),
        }
    }

    /// Clears the cell when a dead waiter's state is recovered. Relaxed: done under the channel's
    /// init lock with nobody else attached; the lock's release publishes it.
    pub(crate) fn reset(&self) {
        self.sleeping.store(0, Ordering::Relaxed);
        self.bell.store(0, Ordering::Relaxed);
    }

    /// The waker's half: call right after publishing (a Release store). Makes no system call
    /// unless the waiter announced it is going to sleep.
    #[inline(always)]
    pub(crate) fn notify(&self) {
        // The waker's side of the Dekker pair described in the module documentation: orders our
        // preceding publish before the load of `sleeping`.
        fence::light();
        // Relaxed: the fence above does the ordering; a stale 1 costs one needless wake.
        if self.sleeping.load(Ordering::Relaxed) != 0 {
            self.wake();
        }
    }

    #[cold]
    fn wake(&self) {
        // Release: a waiter that reads the new value (Acquire, in `prepare`) also sees what we
        // published before it, so it does not sleep.
        self.seq.fetch_add(1, Ordering::Release);
        // One system call: the doorbell of a doorbell sleeper, the futex otherwise. Reading 2
        // here (after our fence in `notify`) means the waiter's fence comes after ours — had it
        // announced the futex (1) and fenced before our fence, this load would see that store —
        // so if it switched to the futex since, its poll sees what we published.
        // Acquire: pairs with the Release store of 2 in `arm_bell`, so the bell read next is the
        // one stored before it.
        if self.sleeping.load(Ordering::Acquire) == ASLEEP_ON_BELL {
            self.ring_bell(self.bell.load(Ordering::Relaxed));
        } else {
            futex_wake(self);
        }
    }

    /// The doorbell waiter's announcement (see the module documentation): after it, poll once
    /// more, then wait for the doorbell with a timeout of at most the returned slice
    /// ([`SLICE`], or less: see `fence.rs`); [`disarm`] when awake.
    ///
    /// [`disarm`]: Self::disarm
    pub(crate) fn arm_bell(&self, bell: u32) -> Duration {
        // Relaxed: published by the Release store below.
        self.bell.store(bell, Ordering::Relaxed);
        // Release: see `bell`. Then the waiter's fence of the Dekker pair, as in `prepare`.
        self.sleeping.store(ASLEEP_ON_BELL, Ordering::Release);
        fence::heavy()
    }

    /// The doorbell waiter is awake again (as `cancel`).
    pub(crate) fn disarm(&self) {
        self.cancel();
    }

    /// Sends the doorbell `bell` one byte (see [`Doorbell`](super::Doorbell)).
    #[cfg(not(loom))]
    fn ring_bell(&self, bell: u32) {
        super::bell::ring(bell);
    }

    /// The model of a ring: one more queued datagram, and the sleeper woken.
    #[cfg(loom)]
    fn ring_bell(&self, _bell: u32) {
        let _guard = self.park.lock().unwrap();
        // Relaxed: under the model's lock, as the socket's queue is under the kernel's.
        self.rings.fetch_add(1, Ordering::Relaxed);
        self.cond.notify_all();
    }

    /// The model's count of rings so far (read before arming).
    #[cfg(loom)]
    pub(crate) fn rings(&self) -> u32 {
        let _guard = self.park.lock().unwrap();
        self.rings.load(Ordering::Relaxed)
    }

    /// The model of waiting for the doorbell to become readable: until a ring after `seen`.
    /// No timeout: a lost ring shows up as a deadlock.
    #[cfg(loom)]
    pub(crate) fn bell_sleep(&self, seen: u32) {
        let mut guard = self.park.lock().unwrap();
        while self.rings.load(Ordering::Relaxed) == seen {
            guard = self.cond.wait(guard).unwrap();
        }
    }

    /// The waiter's announcement; returns the futex value to sleep on and the longest the
    /// sleep may be (`fence::heavy`). Poll once more after it.
    fn prepare(&self) -> (u32, Duration) {
        // Relaxed store, then the waiter's fence: it orders this store before the loads of the
        // poll that follows (the waiter's side of the Dekker pair).
        self.sleeping.store(1, Ordering::Relaxed);
        let slice = fence::heavy();
        // Acquire: pairs with the waker's Release increment (see `wake`).
        (self.seq.load(Ordering::Acquire), slice)
    }

    /// The waiter is awake again. Relaxed: a waker that still sees 1 only makes a useless wake.
    fn cancel(&self) {
        self.sleeping.store(0, Ordering::Relaxed);
    }
}

/// `futex(&cell.seq, FUTEX_WAIT, seen, timeout)` on a shared futex. Every outcome (woken,
/// `EAGAIN` because the value moved, `ETIMEDOUT`, `EINTR`) means "poll again", so errors are
/// ignored.
#[cfg(not(loom))]
fn futex_sleep(cell: &WaitCell, seen: u32, timeout: Duration) {
    use rustix::thread::futex;
    let ts = futex::Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    let _ = futex::wait(&cell.seq, futex::Flags::empty(), seen, Some(&ts));
}

/// `futex(&cell.seq, FUTEX_WAKE, 1)` on a shared futex: wakes the one waiter of the cell. An
/// error (there is none for a valid address) would only cost the waiter one slice of sleep.
#[cfg(not(loom))]
fn futex_wake(cell: &WaitCell) {
    use rustix::thread::futex;
    let _ = futex::wake(&cell.seq, futex::Flags::empty(), 1);
}

/// The loom model of `futex_wait`: compare and sleep atomically with respect to `futex_wake`
/// (which takes the same lock), like the kernel's hash-bucket lock. No timeout: a lost wake-up
/// shows up as a deadlock, which loom reports.
#[cfg(loom)]
fn futex_sleep(cell: &WaitCell, seen: u32, _timeout: Duration) {
    let guard = cell.park.lock().unwrap();
    // SeqCst: the kernel compares the current value under its bucket lock; the model's mutex
    // already orders this load after a waker's increment-then-lock, so this is the strongest
    // reading of "current", not a requirement of the protocol.
    if cell.seq.load(Ordering::SeqCst) == seen {
        drop(cell.cond.wait(guard).unwrap());
    }
}

#[cfg(loom)]
fn futex_wake(cell: &WaitCell) {
    let _guard = cell.park.lock().unwrap();
    cell.cond.notify_all();
}

/// Waits until `poll` returns `Ok(Some(_))` or an error, or `deadline` passes (`Ok(None)`).
///
/// `poll` is called first without waiting, then after each round of spinning or each sleep. Its
/// argument says whether the poll is one of the busy polls (`Spin`, or the first microseconds of a
/// `Blocking` wait), which come a `pause` apart: those may look only where a message is most
/// likely, as long as every so many of them look everywhere; every other poll — the first, the
/// backoff's and the window's, those around a sleep — must look everywhere. A
/// `Blocking` wait spins for a few tens of µs, polls on for the waiter's `window` (which the wait
/// then adjusts), yields a few times, then sleeps on `cell` in slices of at most [`SLICE`], so
/// `poll` runs at least every 100 ms (it checks peer liveness); when the window says its waits
/// keep outlasting all that ([`SpinWindow::sleeps_at_once`]), it goes to sleep at once.
pub(crate) fn wait_for<T, E>(
    cell: &WaitCell,
    mode: Wait,
    window: &mut SpinWindow,
    deadline: Deadline,
    mut poll: impl FnMut(bool) -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    if let Some(v) = poll(false)? {
        return Ok(Some(v));
    }
    if let Deadline::Now = deadline {
        return Ok(None);
    }
    // When the fixed spin ended, if it did: the window is measured from there.
    let mut spun = None;
    let at_once = mode == Wait::Blocking && window.sleeps_at_once() && !cfg!(loom);
    let got = if at_once {
        spun = Some(now());
        sleep_rounds(cell, deadline, poll)
    } else {
        wait_rounds(cell, mode, window.limit, &mut spun, deadline, poll)
    };
    match (spun, &got) {
        (Some(spun), Ok(Some(_))) => window.learn(Some(now().saturating_duration_since(spun))),
        (Some(_), Ok(None)) => window.learn(None),
        (None, Ok(Some(_))) => window.learn_quick(),
        _ => {}
    }
    got
}

/// The rounds of [`wait_for`] after its first poll; sets `spun` when the fixed spin is over.
fn wait_rounds<T, E>(
    cell: &WaitCell,
    mode: Wait,
    window: Duration,
    spun: &mut Option<Instant>,
    mut deadline: Deadline,
    mut poll: impl FnMut(bool) -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    let mut yields = 0;
    let mut round: u32 = 0;
    let mut remaining = None;
    for _ in 0..SLIP {
        spin_loop();
    }
    loop {
        round = round.saturating_add(1);
        let busy = mode == Wait::Spin || round <= BUSY_POLLS;
        if !busy || round.is_multiple_of(POLLS_PER_CLOCK) {
            remaining = deadline.remaining();
            if remaining == Some(Duration::ZERO) {
                return Ok(None);
            }
        }
        // The rounds of the backoff, the yields and the sleeps, counted after the busy polls.
        let after = round - if busy { 0 } else { BUSY_POLLS };
        if busy {
            // One `pause` between polls, so a message is seen within a poll of its publication.
            spin_loop();
        } else if after <= SPIN_ROUNDS {
            for _ in 0..1u32 << after.min(6) {
                spin_loop();
            }
        } else if !cfg!(loom)
            && now().saturating_duration_since(*spun.get_or_insert_with(now)) < window
        {
            // The window: polled as the fixed spin's last rounds were. (Under loom there is
            // no time; the model goes straight to the sleep protocol.)
            for _ in 0..1u32 << 6 {
                spin_loop();
            }
        } else if yields < YIELD_ROUNDS {
            yields += 1;
            std::thread::yield_now();
        } else if let Some(got) = sleep_once(cell, remaining, &mut poll) {
            return got;
        }
        if let Some(v) = poll(busy)? {
            return Ok(Some(v));
        }
    }
}

/// The rounds of a [`wait_for`] that sleeps at once ([`SpinWindow::sleeps_at_once`]): a sleep,
/// then a poll, until the poll finds something or the deadline passes.
fn sleep_rounds<T, E>(
    cell: &WaitCell,
    mut deadline: Deadline,
    mut poll: impl FnMut(bool) -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    loop {
        let remaining = deadline.remaining();
        if remaining == Some(Duration::ZERO) {
            return Ok(None);
        }
        if let Some(got) = sleep_once(cell, remaining, &mut poll) {
            return got;
        }
        if let Some(v) = poll(false)? {
            return Ok(Some(v));
        }
    }
}

/// Announces the sleep, polls once more, and sleeps (at most `remaining` and a slice) unless
/// that poll found something or failed: then returns what it returned.
fn sleep_once<T, E>(
    cell: &WaitCell,
    remaining: Option<Duration>,
    poll: &mut impl FnMut(bool) -> Result<Option<T>, E>,
) -> Option<Result<Option<T>, E>> {
    let (seen, slice) = cell.prepare();
    match poll(false) {
        Ok(None) => {}
        other => {
            cell.cancel();
            return Some(other);
        }
    }
    futex_sleep(cell, seen, remaining.map_or(slice, |r| r.min(slice)));
    cell.cancel();
    None
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn cell() -> WaitCell {
        WaitCell {
            sleeping: AtomicU32::new(0),
            seq: AtomicU32::new(0),
            bell: AtomicU32::new(0),
        }
    }

    thread_local! {
        /// The time `now` returns on this thread, when set.
        pub(super) static FAKE_NOW: Cell<Option<Instant>> = const { Cell::new(None) };
    }

    /// Unsets the fake clock when a test ends, even by a failed assertion.
    struct FakeClock;

    impl Drop for FakeClock {
        fn drop(&mut self) {
            FAKE_NOW.with(|c| c.set(None));
        }
    }

    /// The polls of a wait on `cell` whose clock advances `step` per poll and whose message
    /// comes `after` the fixed spin (by that clock). Stands in for the waker too: a poll made
    /// after the waiter announced its sleep moves the futex word, so `futex_wait` returns at
    /// once. Returns how many polls came after such an announcement (0: the wait never got as
    /// far as going to sleep) and how many before the first.
    fn wait_timed(cell: &WaitCell, window: &mut SpinWindow, after: Duration) -> (u32, u32) {
        let _clock = FakeClock;
        let step = Duration::from_micros(5);
        let start = Instant::now();
        let spun = 1 + BUSY_POLLS + SPIN_ROUNDS;
        let (calls, announced, before) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
        FAKE_NOW.with(|c| c.set(Some(start)));
        let got = wait_for(cell, Wait::Blocking, window, Deadline::Never, |_| {
            calls.set(calls.get() + 1);
            let t = step * calls.get().saturating_sub(spun);
            FAKE_NOW.with(|c| c.set(Some(start + t)));
            if cell.sleeping.load(Ordering::Relaxed) != 0 {
                announced.set(announced.get() + 1);
                cell.seq.fetch_add(1, Ordering::Relaxed);
            } else if announced.get() == 0 {
                before.set(before.get() + 1);
            }
            Ok::<_, ()>((t >= after).then_some(()))
        });
        assert_eq!(got, Ok(Some(())));
        (announced.get(), before.get())
    }

    /// Each poll of a `mode` wait that ends on its `end`th poll: whether the wait called it a
    /// busy poll, and whether the waiter had announced its sleep before it. The clock advances
    /// 5 µs a poll after the fixed spin, and a poll after an announcement moves the futex word,
    /// as in `wait_timed`.
    fn polls_of(mode: Wait, window: &mut SpinWindow, end: usize) -> Vec<(bool, bool)> {
        let _clock = FakeClock;
        let cell = cell();
        let start = Instant::now();
        let mut seen = Vec::new();
        FAKE_NOW.with(|c| c.set(Some(start)));
        let got = wait_for(&cell, mode, window, Deadline::Never, |busy| {
            let after_spin = (seen.len() as u32).saturating_sub(1 + BUSY_POLLS + SPIN_ROUNDS);
            FAKE_NOW.with(|c| c.set(Some(start + Duration::from_micros(5) * after_spin)));
            let announced = cell.sleeping.load(Ordering::Relaxed) != 0;
            if announced {
                cell.seq.fetch_add(1, Ordering::Relaxed);
            }
            seen.push((busy, announced));
            Ok::<_, ()>((seen.len() >= end).then_some(()))
        });
        assert_eq!(got, Ok(Some(())));
        seen
    }

    /// Only the polls a `pause` apart are busy ones, which a consumer may make quick (one lane
    /// only): the first poll of a wait, the backoff's and the window's, and every poll around a
    /// sleep look everywhere, so that a waiter never sleeps on a message it did not look for.
    #[test]
    fn only_the_polls_a_pause_apart_are_busy() {
        let blocking = polls_of(Wait::Blocking, &mut SpinWindow::default(), 400);
        assert!(!blocking[0].0, "the first poll looks everywhere");
        let busy = blocking.iter().filter(|p| p.0).count();
        assert_eq!(busy, BUSY_POLLS as usize);
        assert!(blocking[1..=BUSY_POLLS as usize].iter().all(|p| p.0));
        assert!(blocking.iter().any(|p| p.1), "the wait went to sleep");
        assert!(blocking.iter().all(|p| !(p.0 && p.1)));
        let mut sleepy = SpinWindow {
            limit: WINDOW_MAX,
            long_waits: LONG_WAITS,
        };
        let at_once = polls_of(Wait::Blocking, &mut sleepy, 20);
        assert!(at_once.iter().all(|p| !p.0), "{at_once:?}");
        let spin = polls_of(Wait::Spin, &mut SpinWindow::default(), 300);
        assert!(!spin[0].0 && spin[1..].iter().all(|p| p.0 && !p.1));
    }

    /// How many times `let_ahead` looks at a producer whose backlog, over its looks, is
    /// `backlog(0)`, `backlog(1)`, …
    fn looks_of_let_ahead(limit: u64, deadline: Deadline, backlog: impl Fn(u64) -> u64) -> u64 {
        let (mut deadline, looks) = (deadline, Cell::new(0));
        let_ahead(limit, &mut deadline, || {
            looks.set(looks.get() + 1);
            backlog(looks.get() - 1)
        });
        looks.get()
    }

    /// A consumer that caught up waits while its producer streams, until the producer is
    /// `limit` bytes ahead — and no longer.
    #[test]
    fn a_consumer_that_caught_up_lets_a_streaming_producer_get_ahead() {
        let step = AHEAD_MIN_GROWTH + 44;
        assert_eq!(
            looks_of_let_ahead(10 * step, Deadline::Never, |n| n * step),
            11,
            "looks at 0, 1, …, 10 steps ahead"
        );
        assert_eq!(
            looks_of_let_ahead(10 * step, Deadline::Never, |_| 10 * step),
            1
        );
    }

    /// A producer that writes less than `AHEAD_MIN_GROWTH` between two looks (a slow or stopped
    /// one) ends the wait at the next look, as do a passed deadline and `AHEAD_LOOKS` looks.
    #[test]
    fn letting_the_producer_ahead_ends_when_it_slows_times_out_or_takes_too_long() {
        let limit = u64::MAX;
        let slow = AHEAD_MIN_GROWTH - 1;
        assert_eq!(looks_of_let_ahead(limit, Deadline::Never, |n| n * slow), 2);
        assert_eq!(looks_of_let_ahead(limit, Deadline::Never, |_| 7), 2);
        let fast = AHEAD_MIN_GROWTH;
        let passed = Deadline::At(Instant::now());
        assert_eq!(looks_of_let_ahead(limit, passed, |n| n * fast), 2);
        assert_eq!(
            looks_of_let_ahead(limit, Deadline::Never, |n| n * fast),
            u64::from(AHEAD_LOOKS) + 1
        );
    }

    /// A waiter polls on after its fixed spin for as long as its window, and only then goes
    /// towards sleep; without a window it goes at once.
    #[test]
    fn a_blocking_wait_polls_on_for_its_window_before_it_sleeps() {
        let after = Duration::from_micros(150);
        let mut wide = SpinWindow {
            limit: WINDOW_MAX,
            long_waits: 0,
        };
        assert_eq!(wait_timed(&cell(), &mut wide, after).0, 0);
        assert_eq!(wide.limit, WINDOW_MAX, "a wait within the window keeps it");
        let mut none = SpinWindow::default();
        assert!(wait_timed(&cell(), &mut none, after).0 > 0);
    }

    /// The window follows the waiter's recent waits: waits that end within [`WINDOW_MAX`] of
    /// the fixed spin widen it until they no longer sleep; waits longer than that narrow it
    /// again, as do timeouts.
    #[test]
    fn a_waiters_window_follows_how_long_its_waits_last() {
        let cell = cell();
        let mut window = SpinWindow::default();
        let soon = Duration::from_micros(150);
        let mut slept = Vec::new();
        let mut limits = Vec::new();
        for _ in 0..4 {
            slept.push(wait_timed(&cell, &mut window, soon).0 > 0);
            limits.push(window.limit.as_micros());
        }
        assert_eq!(slept, [true, true, true, false]);
        assert_eq!(limits, [50, 100, 200, 200]);
        wait_timed(&cell, &mut window, Duration::from_millis(2));
        assert_eq!(window.limit.as_micros(), 100);
        window.learn(None);
        assert_eq!(window.limit.as_micros(), 50);
    }

    /// A waiter whose waits keep outlasting its window by more than [`WINDOW_MAX`] stops
    /// spinning: after [`LONG_WAITS`] of them in a row it announces its sleep right after its
    /// first poll, until a wait ends soon after it fell asleep, which brings the spin back and
    /// opens the window.
    #[test]
    fn a_waiter_whose_waits_keep_outlasting_its_window_sleeps_at_once() {
        let cell = cell();
        let mut window = SpinWindow::default();
        let long = Duration::from_millis(2);
        let spin = 1 + BUSY_POLLS + SPIN_ROUNDS;
        for i in 0..LONG_WAITS {
            let (_, before) = wait_timed(&cell, &mut window, long);
            assert!(before >= spin, "wait {i} spun first: {before} polls");
        }
        let (_, before) = wait_timed(&cell, &mut window, long);
        assert_eq!(before, 1, "the first poll, then the announcement");
        // Woken 100 µs into its sleep: sleeping at once cost it a wake-up.
        wait_timed(&cell, &mut window, Duration::from_micros(100));
        assert_eq!(window.limit, WINDOW_GROW_START);
        let (_, before) = wait_timed(&cell, &mut window, long);
        assert!(before >= spin, "spins again: {before} polls");
    }

    /// Long waits count only in a row: a wait that ends within the fixed spin (a burst's second
    /// message) keeps the spin for the next ones.
    #[test]
    fn a_quick_wait_between_long_ones_keeps_the_spin() {
        let cell = cell();
        let mut window = SpinWindow::default();
        let long = Duration::from_millis(2);
        for _ in 0..LONG_WAITS - 1 {
            wait_timed(&cell, &mut window, long);
        }
        let calls = Cell::new(0);
        let quick = wait_for(
            &cell,
            Wait::Blocking,
            &mut window,
            Deadline::Never,
            ready_at(3, &calls),
        );
        assert_eq!(quick, Ok(Some(3)));
        for _ in 0..LONG_WAITS - 1 {
            wait_timed(&cell, &mut window, long);
        }
        let (_, before) = wait_timed(&cell, &mut window, long);
        assert!(before > 1, "still spins: {before} polls");
    }

    /// `wait_for` by a new waiter (a fresh cell, no window yet).
    fn wait_fresh(
        mode: Wait,
        deadline: Deadline,
        poll: impl FnMut(bool) -> Result<Option<u32>, ()>,
    ) -> Result<Option<u32>, ()> {
        wait_for(&cell(), mode, &mut SpinWindow::default(), deadline, poll)
    }

    /// A poll that finds something on its `n`th call, counting its calls.
    fn ready_at(n: u32, calls: &Cell<u32>) -> impl FnMut(bool) -> Result<Option<u32>, ()> + '_ {
        move |_| {
            calls.set(calls.get() + 1);
            Ok((calls.get() >= n).then_some(calls.get()))
        }
    }

    /// `try_*`: one poll, no wait.
    #[test]
    fn a_try_polls_once() {
        for mode in [Wait::Blocking, Wait::Spin] {
            let calls = Cell::new(0);
            let got = wait_fresh(mode, Deadline::Now, ready_at(2, &calls));
            assert_eq!((got, calls.get()), (Ok(None), 1), "{mode:?}");
        }
    }

    /// The first rounds of a wait read no clock, so even a timeout that has already passed when
    /// the wait starts sees a message that comes within them (as `recv_timeout` of a message a
    /// few hundred nanoseconds away does, without paying for a clock read).
    #[test]
    fn the_first_rounds_of_a_wait_read_no_clock() {
        for mode in [Wait::Blocking, Wait::Spin] {
            let calls = Cell::new(0);
            let got = wait_fresh(
                mode,
                Deadline::after(Duration::ZERO),
                // The first poll and fifteen more, a `pause` apart: well under a microsecond.
                ready_at(16, &calls),
            );
            assert_eq!(got, Ok(Some(16)), "{mode:?}");
        }
    }

    /// A waiter that found nothing slips [`SLIP`] pauses behind (and the loop's one) before it
    /// looks again, in either mode: the look would take the cache line the other side is
    /// writing.
    #[test]
    fn a_wait_slips_behind_before_its_second_poll() {
        use crate::channel::atomic::PAUSES;
        for mode in [Wait::Blocking, Wait::Spin] {
            let calls = Cell::new(0);
            let before = PAUSES.with(Cell::get);
            let got = wait_fresh(mode, Deadline::Never, ready_at(2, &calls));
            assert_eq!(got, Ok(Some(2)), "{mode:?}");
            assert_eq!(
                PAUSES.with(Cell::get) - before,
                u64::from(SLIP + 1),
                "{mode:?}"
            );
        }
    }

    /// While messages keep coming, a blocking wait polls as often as a busy-polling one: one
    /// `pause` apart for its first polls (a backoff there made the blocking channel's ping-pong
    /// slower than the busy-polling one's), and only then backs off.
    #[test]
    fn a_blocking_wait_first_polls_as_often_as_a_busy_one() {
        use crate::channel::atomic::PAUSES;
        for mode in [Wait::Blocking, Wait::Spin] {
            let calls = Cell::new(0);
            let before = PAUSES.with(Cell::get);
            let got = wait_fresh(mode, Deadline::Never, ready_at(BUSY_POLLS, &calls));
            assert_eq!(got, Ok(Some(BUSY_POLLS)), "{mode:?}");
            // The first poll came before any pause, the second after SLIP of them.
            let pauses = PAUSES.with(Cell::get) - before;
            assert_eq!(pauses, u64::from(BUSY_POLLS + SLIP - 1), "{mode:?}");
        }
        // Then the backoff: fewer polls per pause.
        let calls = Cell::new(0);
        let before = PAUSES.with(Cell::get);
        let got = wait_fresh(
            Wait::Blocking,
            Deadline::Never,
            ready_at(BUSY_POLLS + 8, &calls),
        );
        assert_eq!(got, Ok(Some(BUSY_POLLS + 8)));
        assert!(PAUSES.with(Cell::get) - before > u64::from(BUSY_POLLS) + 100);
    }

    /// A timed wait still lasts its whole timeout, polling all along, in either mode.
    #[test]
    #[cfg_attr(miri, ignore = "sleeps on a futex for tens of milliseconds")]
    fn a_timed_wait_lasts_its_timeout() {
        let timeout = Duration::from_millis(30);
        for mode in [Wait::Blocking, Wait::Spin] {
            let calls = Cell::new(0);
            let start = Instant::now();
            let got = wait_fresh(mode, Deadline::after(timeout), ready_at(u32::MAX, &calls));
            let took = start.elapsed();
            assert_eq!(got, Ok(None), "{mode:?}");
            assert!(
                took >= timeout && took < Duration::from_secs(10),
                "{mode:?}: {took:?}"
            );
            assert!(
                calls.get() > POLLS_PER_CLOCK,
                "{mode:?}: {} polls",
                calls.get()
            );
        }
    }
}
