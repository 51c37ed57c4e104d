//! Interrupting a blocked system call with a signal, to check that a wrapper retries after
//! `EINTR` instead of failing (see [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html),
//! "Interruption of system calls and library functions by signal handlers").
//!
//! Handlers are installed without `SA_RESTART`, so the kernel returns `EINTR` and only the code
//! under test can resume the call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::task::Task;
use crate::wait_until;

/// `sigaction(signal, {handler, empty mask, no flags}, NULL)` — installs `handler` for `signal`
/// in the whole process, without `SA_RESTART`; panics if that fails.
///
/// The handler runs in signal context: it may only do async-signal-safe things (store to an
/// atomic, make a plain system call).
pub fn set_handler(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: a zeroed sigaction is a valid value (no flags, no restorer) and sigemptyset only
    // writes the mask inside it.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as usize;
    // SAFETY: `action.sa_mask` is a valid, writable sigset_t.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is a fully initialised sigaction that lives across the call; the old action
    // is not asked for.
    let rc = unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "sigaction({signal})");
}

/// Serialises the callers of [`interrupted_in`], which share the SIGUSR1 handler and [`HANDLED`].
static SIGNAL_TESTS: Mutex<()> = Mutex::new(());

/// Whether [`note_signal`] ran since [`interrupted_in`] cleared it.
static HANDLED: AtomicBool = AtomicBool::new(false);

extern "C" fn note_signal(_signal: libc::c_int) {
    HANDLED.store(true, Ordering::SeqCst);
}

/// Runs `wait` (which must block in system call `nr`, a `libc::SYS_*`) on the calling thread while
/// a helper thread interrupts it: once the caller sleeps in `nr` the helper sends it SIGUSR1, waits
/// for the handler to run and for the caller to sleep in `nr` again, then calls `release` (which
/// must let `wait` return). Returns what `wait` returned.
///
/// `wait` only gets past the signal if the interrupted call was retried: a wrapper that passes
/// `EINTR` on makes `wait` see an error (or never block again, and the helper gives up waiting).
/// Callers in one test binary run one at a time.
pub fn interrupted_in<T>(
    nr: libc::c_long,
    wait: impl FnOnce() -> T,
    release: impl FnOnce() + Send + 'static,
) -> T {
    let _serial = SIGNAL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    set_handler(libc::SIGUSR1, note_signal);
    let waiter = Task::current();
    HANDLED.store(false, Ordering::SeqCst);
    let helper = std::thread::spawn(move || {
        wait_until("the waiter to block", || waiter.in_syscall(&[nr]));
        // `waiter` is alive: it joins this helper before returning.
        waiter.signal(libc::SIGUSR1);
        wait_until("the handler to run", || HANDLED.load(Ordering::SeqCst));
        wait_until("the waiter to block again", || waiter.in_syscall(&[nr]));
        release();
    });
    let got = wait();
    helper.join().unwrap();
    got
}
