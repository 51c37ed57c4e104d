//! A counting semaphore that lives inside shared memory, built on a shared futex: `wait` takes one
//! (sleeping in the kernel while the count is zero), `post` gives one back and wakes a sleeper.
//!
//! Unlike a System V semaphore it costs no system call when it does not have to sleep or wake, and
//! unlike a POSIX `sem_t` its layout is ipckit's own and validated on open. The trap it does *not*
//! remove: like any semaphore it has no owner, so a process that dies between `wait` and `post`
//! never gives its unit back — use [`Mutex`](super::Mutex) for critical sections, or a System V
//! semaphore with `SEM_UNDO`.
//!
//! Which of ipckit's three semaphores to pick, and why: see [the crate documentation](crate#which-semaphore).
//!
//! # References
//! [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html),
//! [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html) (the same idea)
//!
//! # Trust
//! A peer that writes the semaphore's bytes can give it any count or wake sleepers, which breaks
//! what the semaphore counts, but nothing more: every word is an atomic, every value read is
//! bounded before use, and the kernel checks the futex word itself.

use std::fmt;
use std::time::Duration;

use super::atomic::{AtomicU32, Ordering};
use super::futex;
use super::place::{Header, Placed, Shared};
use crate::error::Error;
#[cfg(not(loom))]
use crate::error::Result;
#[cfg(not(loom))]
use crate::shared::SharedRegion;

/// The largest value a [`Semaphore`] holds (`SEM_VALUE_MAX` on Linux).
pub const SEMAPHORE_MAX: u32 = i32::MAX as u32;

/// A counting semaphore in shared memory, placed with [`init_in`](Semaphore::init_in) and found
/// with [`open_in`](Semaphore::open_in): a handle that keeps the memory mapped (clone it to share
/// it between threads). [`SIZE`](Semaphore::SIZE) bytes aligned to [`ALIGN`](Semaphore::ALIGN).
///
/// **Trust:** tolerates peers that scribble on its bytes — every word is an atomic and every
/// value read is bounded before use — with wrong counts at worst, never undefined behaviour (see
/// [`sync`](crate::sync#trust)). Like any semaphore it has no owner: a process that dies between
/// `wait` and `post` never gives its unit back.
#[derive(Clone)]
pub struct Semaphore {
    state: Placed<State>,
}

/// The semaphore's bytes in shared memory.
#[repr(C)]
struct State {
    header: Header,
    /// The count; the futex word sleepers wait on while it is 0.
    value: AtomicU32,
    /// How many are (about to be) asleep on `value`; `post` skips the wake system call at 0. A
    /// sleeper that dies leaves it too high, which only costs `post` a needless wake.
    waiters: AtomicU32,
}

// SAFETY: repr(C), header first, the rest atomics: every bit pattern is valid and every byte is
// inside an atomic.
unsafe impl Shared for State {
    const MAGIC: [u8; 4] = *b"IKSM";
    const VERSION: u32 = 1;
    const NAME: &'static str = "Semaphore";

    fn header(&self) -> &Header {
        &self.header
    }

    fn check(&self) -> std::result::Result<(), String> {
        let v = self.value.load(Ordering::Relaxed);
        if v > SEMAPHORE_MAX {
            return Err(format!("value {v} exceeds {SEMAPHORE_MAX}"));
        }
        Ok(())
    }
}

impl Semaphore {
    /// The bytes a semaphore takes in shared memory.
    pub const SIZE: usize = std::mem::size_of::<State>();
    /// The alignment a semaphore needs.
    pub const ALIGN: usize = std::mem::align_of::<State>();

    /// A semaphore holding `value` in ordinary memory, for threads (values above
    /// [`SEMAPHORE_MAX`] are clamped).
    pub fn new(value: u32) -> Semaphore {
        Semaphore {
            state: Placed::own(State {
                header: Header::ready(State::MAGIC, State::VERSION, Self::SIZE),
                value: AtomicU32::new(value.min(SEMAPHORE_MAX)),
                waiters: AtomicU32::new(0),
            }),
        }
    }

    /// Initialises a semaphore holding `value` at the start of `region`, once, even when
    /// processes race (the losers' `value` is ignored). `value` must be at most
    /// [`SEMAPHORE_MAX`].
    #[cfg(not(loom))]
    pub fn init_in(region: SharedRegion, value: u32) -> Result<Semaphore> {
        if value > SEMAPHORE_MAX {
            return Err(Error::TooLarge {
                op: "init_in",
                object: super::place::object_at::<State>(region.as_ptr()),
                what: "initial value",
                len: value as usize,
                limit: SEMAPHORE_MAX as usize,
                limit_name: "SEMAPHORE_MAX",
            });
        }
        let state = super::place::init_in::<State>(region, |s| {
            s.value.store(value, Ordering::Relaxed);
            s.waiters.store(0, Ordering::Relaxed);
            Ok(())
        })?;
        Ok(Semaphore { state })
    }

    /// Validates and returns the semaphore another process initialised at the start of
    /// `region`.
    #[cfg(not(loom))]
    pub fn open_in(region: SharedRegion) -> Result<Semaphore> {
        let state = super::place::open_in::<State>(region)?;
        Ok(Semaphore { state })
    }

    /// Takes one if the count is above zero, without waiting.
    pub fn try_wait(&self) -> bool {
        let value = &self.state.value;
        let mut v = value.load(Ordering::Relaxed);
        // A count above SEMAPHORE_MAX (a peer wrote it) is taken from like any other; `v > 0`
        // keeps `v - 1` from underflowing.
        while v > 0 {
            // Acquire: what the poster did before `post` happens before what we do after.
            match value.compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    /// `futex(&value, FUTEX_WAIT, 0)` while the count is zero, then takes one.
    pub fn wait(&self) {
        while !self.try_wait() {
            self.sleep(None);
        }
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout`: `true` if one was taken.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        futex::retry_until(timeout, || self.try_wait(), |left| self.sleep(left))
    }

    /// One futex sleep while the count is 0.
    fn sleep(&self, timeout: Option<Duration>) {
        futex::counted_wait(&self.state.value, 0, &self.state.waiters, timeout);
    }

    /// `futex(&value, FUTEX_WAKE, 1)` after adding one — gives one back and wakes a sleeper if
    /// there is one. Fails (`EOVERFLOW`, nothing changed) at [`SEMAPHORE_MAX`].
    pub fn post(&self) -> crate::error::Result<()> {
        let value = &self.state.value;
        let mut v = value.load(Ordering::Relaxed);
        loop {
            if v >= SEMAPHORE_MAX {
                return Err(Error::os(
                    "post",
                    super::place::object_at::<State>(self.state.addr()),
                    std::io::Error::from_raw_os_error(libc::EOVERFLOW),
                ));
            }
            // Release: pairs with the acquire of the taker.
            match value.compare_exchange_weak(v, v + 1, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        // Its fence orders our store to `value` before its load of `waiters`.
        futex::counted_wake(value, &self.state.waiters, 1);
        Ok(())
    }

    /// The count now (it may change at once).
    pub fn value(&self) -> u32 {
        self.state.value.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("addr", &self.state.addr())
            .field("value", &self.value())
            .finish_non_exhaustive()
    }
}
