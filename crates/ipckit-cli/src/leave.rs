//! Leaving `send`, `recv` and `bench` cleanly on SIGINT, SIGTERM and SIGHUP.
//!
//! No signal handler runs: [`install`] blocks the three signals in the main thread before any
//! other thread exists (threads inherit the mask), and a thread reads them from a signalfd
//! ([`ipckit::signal::SignalFd`]). On the first one it records it and aborts every registered
//! [`AbortHandle`] — the transport's setup waits ([`Options::cancel`]) and the connected end's
//! blocked `send`/`recv` — so the command's main flow returns within about 100 ms, dropping its
//! end, which removes what it created and lets the peer see it go. The command then exits with
//! 128 + the signal's number (130, 143, 129), as a shell expects of a process that a signal ended.

use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use ipckit::signal::{self, Signal, SignalFd, SignalSet};
use ipckit::transport::{AbortHandle, Options};

/// The signals that make the command leave.
const LEAVE_ON: [Signal; 3] = [Signal::INT, Signal::TERM, Signal::HUP];

#[derive(Default)]
struct State {
    /// The first signal received, 0 before.
    signal: AtomicI32,
    /// What to abort when it comes.
    handles: Mutex<Vec<AbortHandle>>,
    /// Called once when it comes (after the handles), to wake a wait they do not reach.
    wakers: Mutex<Vec<Box<dyn Fn() + Send>>>,
}

/// The signals that make the command leave, being watched.
#[derive(Clone)]
pub struct Interrupts(Arc<State>);

/// Blocks SIGINT, SIGTERM and SIGHUP and starts the thread that reads them. Call first in the
/// command, before any thread is started.
pub fn install() -> Result<Interrupts> {
    let mut set = SignalSet::new();
    for s in LEAVE_ON {
        set.add(s);
    }
    signal::block(&set).context("block SIGINT, SIGTERM and SIGHUP")?;
    let fd = SignalFd::new(&set).context("signalfd")?;
    let state = Arc::new(State::default());
    let watched = Arc::clone(&state);
    std::thread::Builder::new()
        .name("ipckit-signals".into())
        .spawn(move || {
            // Only the first signal matters; the process leaves soon after it.
            if let Ok(info) = fd.recv() {
                watched.signal.store(info.signal.as_raw(), Ordering::SeqCst);
                for h in watched
                    .handles
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                {
                    h.abort();
                }
                for w in watched
                    .wakers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                {
                    w();
                }
            }
        })
        .context("start the signal thread")?;
    Ok(Interrupts(state))
}

impl Interrupts {
    /// Makes `options`' setup waits fail once a signal came.
    pub fn cancel(&self, options: &mut Options) {
        let h = AbortHandle::detached();
        self.watch(h.clone());
        options.cancel(h);
    }

    /// Aborts `handle` when a signal comes (at once if one came already).
    pub fn watch(&self, handle: AbortHandle) {
        let mut handles = self.0.handles.lock().unwrap_or_else(|p| p.into_inner());
        handles.push(handle.clone());
        drop(handles);
        if self.signal().is_some() {
            handle.abort();
        }
    }

    /// Calls `wake` when a signal comes (at once if one came already).
    pub fn on_signal(&self, wake: impl Fn() + Send + 'static) {
        let mut wakers = self.0.wakers.lock().unwrap_or_else(|p| p.into_inner());
        if self.signal().is_some() {
            wake();
        }
        wakers.push(Box::new(wake));
    }

    /// The signal that came, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.0.signal.load(Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        }
    }

    /// The exit status after a signal: 128 + its number.
    pub fn exit_code(&self) -> Option<ExitCode> {
        self.signal()
            .map(|n| ExitCode::from(u8::try_from(128 + n).unwrap_or(255)))
    }
}
