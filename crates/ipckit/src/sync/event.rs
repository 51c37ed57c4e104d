//! An event flag that lives inside shared memory, built on a shared futex: processes
//! [`wait`](Event::wait) until another one [`set`](Event::set)s it.
//!
//! A *manual-reset* event stays set, releasing every waiter present and future, until
//! [`reset`](Event::reset); an *auto-reset* event releases exactly one waiter per set and clears
//! itself as that waiter passes. The trap it removes is the lost wake-up of a hand-rolled
//! flag-plus-sleep: a set that lands between a waiter's check and its sleep still wakes it.
//!
//! # References
//! [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
//!
//! # Trust
//! A peer that writes the event's bytes can set, clear or switch its mode, which breaks what the
//! event signals, but nothing more: every word is an atomic and every value read is compared, not
//! used as an index or a count.

use std::fmt;
use std::time::Duration;

use super::atomic::{AtomicU32, Ordering};
use super::futex;
use super::place::{Header, Placed, Shared};
#[cfg(not(loom))]
use crate::error::Result;
#[cfg(not(loom))]
use crate::shared::SharedRegion;

/// Whether an [`Event`] clears itself when it releases a waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventMode {
    /// Stays set until [`Event::reset`]; releases every waiter.
    Manual,
    /// Releases one waiter per [`Event::set`] and clears itself.
    Auto,
}

/// A manual- or auto-reset event in shared memory, placed with [`init_in`](Event::init_in) and
/// found with [`open_in`](Event::open_in): a handle that keeps the memory mapped (clone it to share
/// it between threads). [`SIZE`](Event::SIZE) bytes aligned to [`ALIGN`](Event::ALIGN).
///
/// **Trust:** tolerates peers that scribble on its bytes — every word is an atomic, and values
/// read are only compared — with a wrongly set or cleared event at worst, never undefined
/// behaviour (see [`sync`](crate::sync#trust)).
#[derive(Clone)]
pub struct Event {
    state: Placed<State>,
}

/// The event's bytes in shared memory.
#[repr(C)]
struct State {
    header: Header,
    /// 0 for [`EventMode::Manual`], 1 for [`EventMode::Auto`].
    mode: AtomicU32,
    /// 1 when set, 0 when clear; the futex word sleepers wait on while it is 0.
    state: AtomicU32,
    /// How many are (about to be) asleep; `set` skips the wake system call at 0.
    waiters: AtomicU32,
}

// SAFETY: repr(C), header first, the rest atomics: every bit pattern is valid and every byte is
// inside an atomic.
unsafe impl Shared for State {
    const MAGIC: [u8; 4] = *b"IKEV";
    const VERSION: u32 = 1;
    const NAME: &'static str = "Event";

    fn header(&self) -> &Header {
        &self.header
    }

    fn check(&self) -> std::result::Result<(), String> {
        match (
            self.mode.load(Ordering::Relaxed),
            self.state.load(Ordering::Relaxed),
        ) {
            (0 | 1, 0 | 1) => Ok(()),
            (mode, state) => Err(format!("mode {mode} / state {state} are not 0 or 1")),
        }
    }
}

impl Event {
    /// The bytes an event takes in shared memory.
    pub const SIZE: usize = std::mem::size_of::<State>();
    /// The alignment an event needs.
    pub const ALIGN: usize = std::mem::align_of::<State>();

    /// An event in ordinary memory, for threads.
    pub fn new(mode: EventMode, set: bool) -> Event {
        Event {
            state: Placed::own(State {
                header: Header::ready(State::MAGIC, State::VERSION, Self::SIZE),
                mode: AtomicU32::new((mode == EventMode::Auto).into()),
                state: AtomicU32::new(set.into()),
                waiters: AtomicU32::new(0),
            }),
        }
    }

    /// Initialises an event at the start of `region`, once, even when processes race (the
    /// losers' arguments are ignored): `mode`, and whether it starts set.
    #[cfg(not(loom))]
    pub fn init_in(region: SharedRegion, mode: EventMode, set: bool) -> Result<Event> {
        let state = super::place::init_in::<State>(region, |e| {
            e.mode
                .store((mode == EventMode::Auto).into(), Ordering::Relaxed);
            e.state.store(set.into(), Ordering::Relaxed);
            e.waiters.store(0, Ordering::Relaxed);
            Ok(())
        })?;
        Ok(Event { state })
    }

    /// Validates and returns the event another process initialised at the start of `region`.
    #[cfg(not(loom))]
    pub fn open_in(region: SharedRegion) -> Result<Event> {
        let state = super::place::open_in::<State>(region)?;
        Ok(Event { state })
    }

    /// The event's reset mode.
    pub fn mode(&self) -> EventMode {
        if self.state.mode.load(Ordering::Relaxed) == 1 {
            EventMode::Auto
        } else {
            EventMode::Manual
        }
    }

    /// Sets the event and `futex(&state, FUTEX_WAKE, n)`: every waiter (manual) or one (auto).
    pub fn set(&self) {
        // Release: what we did before `set` happens before what a released waiter does after.
        self.state.state.store(1, Ordering::Release);
        let n = match self.mode() {
            EventMode::Manual => i32::MAX as u32,
            EventMode::Auto => 1,
        };
        // Its fence orders our store to `state` before its load of `waiters`.
        futex::counted_wake(&self.state.state, &self.state.waiters, n);
    }

    /// Clears the event; later waiters wait for the next [`set`](Self::set).
    pub fn reset(&self) {
        self.state.state.store(0, Ordering::Relaxed);
    }

    /// Whether the event is set now (without clearing an auto-reset event).
    pub fn is_set(&self) -> bool {
        // Any non-zero word counts as set (only a scribbling peer writes other values), so that a
        // waiter never spins on a word FUTEX_WAIT refuses to sleep on (it sleeps only while 0).
        self.state.state.load(Ordering::Acquire) != 0
    }

    /// Passes if the event is set (clearing it in auto mode), without waiting.
    pub fn try_wait(&self) -> bool {
        match self.mode() {
            EventMode::Manual => self.is_set(),
            EventMode::Auto => {
                // Clears any non-zero word (see `is_set`); exactly one waiter wins the exchange.
                let state = &self.state.state;
                let mut v = state.load(Ordering::Relaxed);
                while v != 0 {
                    // Acquire: what the setter did before `set` happens before what we do after.
                    match state.compare_exchange_weak(v, 0, Ordering::Acquire, Ordering::Relaxed) {
                        Ok(_) => return true,
                        Err(now) => v = now,
                    }
                }
                false
            }
        }
    }

    /// `futex(&state, FUTEX_WAIT, 0)` until the event is set; an auto-reset event is cleared by
    /// the waiter it releases.
    pub fn wait(&self) {
        while !self.try_wait() {
            self.sleep(None);
        }
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout`: `true` if the event released us.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        futex::retry_until(timeout, || self.try_wait(), |left| self.sleep(left))
    }

    /// One futex sleep while the event is clear.
    fn sleep(&self, timeout: Option<Duration>) {
        futex::counted_wait(&self.state.state, 0, &self.state.waiters, timeout);
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("mode", &self.mode())
            .field("set", &self.is_set())
            .finish_non_exhaustive()
    }
}
