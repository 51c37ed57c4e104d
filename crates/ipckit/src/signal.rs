//! Signals: asynchronous notifications the kernel delivers to a process — from another process
//! (`kill`, `sigqueue`), from the kernel itself (a timer expired, a pipe lost its reader) or from
//! the terminal (Ctrl+C).
//!
//! The trap of the C API is the handler: code that runs at an arbitrary point of the program, where
//! almost nothing is allowed (no allocation, no locks, no `printf`). This module installs no
//! handlers. A signal is received as data instead: block it ([`block`]) so it stays pending, then
//! read it from a [`SignalFd`] in ordinary code, with the sender's pid and uid and the integer that
//! [`queue`] attached. Signals also name processes to wake: [`kill`], [`kill_group`], [`raise`],
//! [`queue`], and timers that raise `SIGALRM` ([`alarm`], [`set_interval_timer`]).
//!
//! # Blocking must come first, in every thread
//! A signal sent to a *process* is delivered to any one of its threads that does not block it. If
//! that thread runs the default action, `SIGUSR1` or `SIGALRM` terminates the whole process before
//! a [`SignalFd`] ever sees it. So block the signals in `main` before spawning any thread (threads
//! inherit the mask of their creator), or in every thread. Signals sent to one *thread* ([`raise`],
//! or `SIGPIPE` from a failed write) concern only that thread.
//!
//! # References
//! [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html),
//! [kill(2)](https://man7.org/linux/man-pages/man2/kill.2.html),
//! [sigqueue(3)](https://man7.org/linux/man-pages/man3/sigqueue.3.html),
//! [pthread_sigmask(3)](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html),
//! [sigpending(2)](https://man7.org/linux/man-pages/man2/sigpending.2.html),
//! [signalfd(2)](https://man7.org/linux/man-pages/man2/signalfd.2.html),
//! [sigaction(2)](https://man7.org/linux/man-pages/man2/sigaction.2.html),
//! [alarm(2)](https://man7.org/linux/man-pages/man2/alarm.2.html),
//! [setitimer(2)](https://man7.org/linux/man-pages/man2/setitimer.2.html)

use std::fmt;
use std::io;
use std::mem::{offset_of, size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::error::{Error, Object, Result};

/// A signal number that `kill -l` lists: the standard signals 1–31 and the real-time signals
/// `SIGRTMIN` (34 with glibc) to `SIGRTMAX` (64).
///
/// Displayed as `SIGINT`, `SIGRTMIN+3`, `SIGRTMAX-2`; [`name`](Signal::name) gives it without the
/// `SIG` prefix, as `kill -l 2` prints it. Parses from `"INT"`, `"SIGINT"`, `"sigint"`, `"2"`,
/// `"RTMIN+3"` and the aliases `IOT`, `CLD`, `POLL`.
///
/// Signals 32 and 33 exist in the kernel but glibc keeps them for its threads (it moves
/// `SIGRTMIN` above them), so they are not signals of this type.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

/// The standard signals in number order, with the names bash's `kill -l` gives them.
const STANDARD: [(i32, &str); 31] = [
    (libc::SIGHUP, "HUP"),
    (libc::SIGINT, "INT"),
    (libc::SIGQUIT, "QUIT"),
    (libc::SIGILL, "ILL"),
    (libc::SIGTRAP, "TRAP"),
    (libc::SIGABRT, "ABRT"),
    (libc::SIGBUS, "BUS"),
    (libc::SIGFPE, "FPE"),
    (libc::SIGKILL, "KILL"),
    (libc::SIGUSR1, "USR1"),
    (libc::SIGSEGV, "SEGV"),
    (libc::SIGUSR2, "USR2"),
    (libc::SIGPIPE, "PIPE"),
    (libc::SIGALRM, "ALRM"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGSTKFLT, "STKFLT"),
    (libc::SIGCHLD, "CHLD"),
    (libc::SIGCONT, "CONT"),
    (libc::SIGSTOP, "STOP"),
    (libc::SIGTSTP, "TSTP"),
    (libc::SIGTTIN, "TTIN"),
    (libc::SIGTTOU, "TTOU"),
    (libc::SIGURG, "URG"),
    (libc::SIGXCPU, "XCPU"),
    (libc::SIGXFSZ, "XFSZ"),
    (libc::SIGVTALRM, "VTALRM"),
    (libc::SIGPROF, "PROF"),
    (libc::SIGWINCH, "WINCH"),
    (libc::SIGIO, "IO"),
    (libc::SIGPWR, "PWR"),
    (libc::SIGSYS, "SYS"),
];

/// Other names of standard signals, accepted when parsing.
const ALIASES: [(&str, i32); 3] = [
    ("IOT", libc::SIGABRT),
    ("CLD", libc::SIGCHLD),
    ("POLL", libc::SIGIO),
];

fn standard_name(n: i32) -> Option<&'static str> {
    STANDARD
        .iter()
        .find(|(s, _)| *s == n)
        .map(|(_, name)| *name)
}

impl Signal {
    /// `SIGHUP`: the controlling terminal hung up.
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// `SIGINT`: interrupt from the keyboard (Ctrl+C).
    pub const INT: Signal = Signal(libc::SIGINT);
    /// `SIGQUIT`: quit from the keyboard (Ctrl+\\), with a core dump.
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    /// `SIGILL`: illegal instruction.
    pub const ILL: Signal = Signal(libc::SIGILL);
    /// `SIGTRAP`: trace or breakpoint trap.
    pub const TRAP: Signal = Signal(libc::SIGTRAP);
    /// `SIGABRT`: `abort()`.
    pub const ABRT: Signal = Signal(libc::SIGABRT);
    /// `SIGBUS`: bad memory access (beyond the end of a mapped file, for example).
    pub const BUS: Signal = Signal(libc::SIGBUS);
    /// `SIGFPE`: arithmetic exception.
    pub const FPE: Signal = Signal(libc::SIGFPE);
    /// `SIGKILL`: kill; cannot be blocked, caught or ignored.
    pub const KILL: Signal = Signal(libc::SIGKILL);
    /// `SIGUSR1`: for the application.
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// `SIGSEGV`: invalid memory reference.
    pub const SEGV: Signal = Signal(libc::SIGSEGV);
    /// `SIGUSR2`: for the application.
    pub const USR2: Signal = Signal(libc::SIGUSR2);
    /// `SIGPIPE`: write to a pipe or socket with no reader.
    pub const PIPE: Signal = Signal(libc::SIGPIPE);
    /// `SIGALRM`: a timer of [`alarm`] or [`set_interval_timer`] expired.
    pub const ALRM: Signal = Signal(libc::SIGALRM);
    /// `SIGTERM`: termination request.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// `SIGSTKFLT`: coprocessor stack fault (unused on Linux).
    pub const STKFLT: Signal = Signal(libc::SIGSTKFLT);
    /// `SIGCHLD`: a child stopped or terminated.
    pub const CHLD: Signal = Signal(libc::SIGCHLD);
    /// `SIGCONT`: continue if stopped.
    pub const CONT: Signal = Signal(libc::SIGCONT);
    /// `SIGSTOP`: stop; cannot be blocked, caught or ignored.
    pub const STOP: Signal = Signal(libc::SIGSTOP);
    /// `SIGTSTP`: stop from the terminal (Ctrl+Z).
    pub const TSTP: Signal = Signal(libc::SIGTSTP);
    /// `SIGTTIN`: terminal input for a background process.
    pub const TTIN: Signal = Signal(libc::SIGTTIN);
    /// `SIGTTOU`: terminal output for a background process.
    pub const TTOU: Signal = Signal(libc::SIGTTOU);
    /// `SIGURG`: urgent data on a socket.
    pub const URG: Signal = Signal(libc::SIGURG);
    /// `SIGXCPU`: CPU time limit exceeded.
    pub const XCPU: Signal = Signal(libc::SIGXCPU);
    /// `SIGXFSZ`: file size limit exceeded.
    pub const XFSZ: Signal = Signal(libc::SIGXFSZ);
    /// `SIGVTALRM`: virtual alarm clock (`ITIMER_VIRTUAL`).
    pub const VTALRM: Signal = Signal(libc::SIGVTALRM);
    /// `SIGPROF`: profiling timer expired.
    pub const PROF: Signal = Signal(libc::SIGPROF);
    /// `SIGWINCH`: the terminal window changed size.
    pub const WINCH: Signal = Signal(libc::SIGWINCH);
    /// `SIGIO` (also `SIGPOLL`): I/O is possible on a descriptor.
    pub const IO: Signal = Signal(libc::SIGIO);
    /// `SIGPWR`: power failure.
    pub const PWR: Signal = Signal(libc::SIGPWR);
    /// `SIGSYS`: bad system call.
    pub const SYS: Signal = Signal(libc::SIGSYS);

    /// `SIGRTMIN`: the lowest real-time signal the C library leaves to applications (34 with
    /// glibc). Real-time signals queue (each one sent is received) and arrive lowest number first.
    pub fn rtmin() -> Signal {
        Signal(libc::SIGRTMIN())
    }

    /// `SIGRTMAX`: the highest real-time signal (64 on Linux).
    pub fn rtmax() -> Signal {
        Signal(libc::SIGRTMAX())
    }

    /// `SIGRTMIN+offset`; fails if that is beyond `SIGRTMAX`.
    pub fn rt(offset: u32) -> Result<Signal> {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        match i32::try_from(offset) {
            Ok(k) if k <= max - min => Ok(Signal(min + k)),
            _ => Err(Error::invalid(
                "signal",
                Object::Other(format!("SIGRTMIN+{offset}").into()),
                format!("real-time signals go up to SIGRTMIN+{}", max - min),
            )),
        }
    }

    /// The signal with number `n`: 1–31 or `SIGRTMIN`..=`SIGRTMAX`. Anything else (0, the glibc
    /// reserved 32 and 33, 65 …) is an invalid argument.
    pub fn from_raw(n: i32) -> Result<Signal> {
        if standard_name(n).is_some() || (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) {
            return Ok(Signal(n));
        }
        let reason = if n == 0 {
            "0 is the null signal, which only checks that a process exists".to_string()
        } else if n > 31 && n < libc::SIGRTMIN() {
            format!(
                "{n} is reserved for the C library's threads (SIGRTMIN is {})",
                libc::SIGRTMIN()
            )
        } else {
            format!(
                "signals are 1-31 and {}-{} (kill -l)",
                libc::SIGRTMIN(),
                libc::SIGRTMAX()
            )
        };
        Err(Error::invalid(
            "signal",
            Object::Other(format!("signal {n}").into()),
            reason,
        ))
    }

    /// The signal number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// Whether this is a real-time signal (`SIGRTMIN`..=`SIGRTMAX`).
    pub fn is_realtime(self) -> bool {
        self.0 >= libc::SIGRTMIN()
    }

    /// The name without `SIG`, as `kill -l` prints it: `"INT"`, `"RTMIN"`, `"RTMIN+15"`,
    /// `"RTMAX-14"`, `"RTMAX"`. Like bash, real-time signals in the lower half of the range are
    /// named from `RTMIN`, the others from `RTMAX`.
    pub fn name(self) -> String {
        if let Some(name) = standard_name(self.0) {
            return name.to_string();
        }
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        let n = self.0;
        if n == min {
            "RTMIN".to_string()
        } else if n == max {
            "RTMAX".to_string()
        } else if n - min <= (max - min) / 2 {
            format!("RTMIN+{}", n - min)
        } else {
            format!("RTMAX-{}", max - n)
        }
    }

    /// Every signal in number order, as `kill -l` lists them: 1–31, then `SIGRTMIN`..=`SIGRTMAX`.
    pub fn all() -> impl Iterator<Item = Signal> {
        STANDARD
            .iter()
            .map(|(n, _)| Signal(*n))
            .chain((libc::SIGRTMIN()..=libc::SIGRTMAX()).map(Signal))
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name())
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}({})", self.0)
    }
}

/// Parses a number (`"2"`), a name (`"INT"`) or a name with `SIG` (`"SIGINT"`), in any case.
/// Real-time signals parse as `RTMIN`, `RTMAX`, `RTMIN+n` and `RTMAX-n` within the range.
impl FromStr for Signal {
    type Err = Error;

    fn from_str(s: &str) -> Result<Signal> {
        let bad = || {
            Error::invalid(
                "parse signal",
                Object::Other(format!("{s:?}").into()),
                "expected a signal name as kill -l lists it (INT, SIGINT, RTMIN+1) or its number",
            )
        };
        let t = s.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return Signal::from_raw(t.parse().map_err(|_| bad())?);
        }
        let upper = t.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some((n, _)) = STANDARD.iter().find(|(_, known)| *known == name) {
            return Ok(Signal(*n));
        }
        if let Some((_, n)) = ALIASES.iter().find(|(known, _)| *known == name) {
            return Ok(Signal(*n));
        }
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        let offset = |digits: &str| -> Result<i32> {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            match digits.parse::<i32>() {
                Ok(k) if k <= max - min => Ok(k),
                _ => Err(bad()),
            }
        };
        match name {
            "RTMIN" => Ok(Signal(min)),
            "RTMAX" => Ok(Signal(max)),
            _ => {
                if let Some(k) = name.strip_prefix("RTMIN+") {
                    Ok(Signal(min + offset(k)?))
                } else if let Some(k) = name.strip_prefix("RTMAX-") {
                    Ok(Signal(max - offset(k)?))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

impl TryFrom<i32> for Signal {
    type Error = Error;

    fn try_from(n: i32) -> Result<Signal> {
        Signal::from_raw(n)
    }
}

impl From<Signal> for i32 {
    fn from(sig: Signal) -> i32 {
        sig.0
    }
}

/// A set of signals (`sigset_t`), for masks, [`pending`] and [`SignalFd`].
#[derive(Clone)]
pub struct SignalSet {
    raw: libc::sigset_t,
}

impl SignalSet {
    /// `sigemptyset(&set)` — the empty set.
    pub fn new() -> SignalSet {
        let mut raw = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `raw` is writable; sigemptyset initializes all of it and cannot fail with a
        // valid pointer.
        unsafe { libc::sigemptyset(raw.as_mut_ptr()) };
        // SAFETY: initialized by sigemptyset just above.
        SignalSet {
            raw: unsafe { raw.assume_init() },
        }
    }

    /// `sigaddset(&set, sig)` — adds `sig`.
    pub fn add(&mut self, sig: Signal) -> &mut Self {
        // SAFETY: `raw` is an initialized sigset_t; a valid signal number cannot make it fail.
        unsafe { libc::sigaddset(&mut self.raw, sig.0) };
        self
    }

    /// `sigdelset(&set, sig)` — removes `sig`.
    pub fn remove(&mut self, sig: Signal) -> &mut Self {
        // SAFETY: `raw` is an initialized sigset_t; a valid signal number cannot make it fail.
        unsafe { libc::sigdelset(&mut self.raw, sig.0) };
        self
    }

    /// `sigismember(&set, sig)` — whether `sig` is in the set.
    pub fn contains(&self, sig: Signal) -> bool {
        // SAFETY: `raw` is an initialized sigset_t, only read.
        unsafe { libc::sigismember(&self.raw, sig.0) == 1 }
    }

    /// The signals in the set, in number order.
    pub fn iter(&self) -> impl Iterator<Item = Signal> + '_ {
        Signal::all().filter(|s| self.contains(*s))
    }

    /// Whether the set holds no signal.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    fn as_raw(&self) -> &libc::sigset_t {
        &self.raw
    }
}

impl Default for SignalSet {
    fn default() -> Self {
        SignalSet::new()
    }
}

impl FromIterator<Signal> for SignalSet {
    fn from_iter<I: IntoIterator<Item = Signal>>(iter: I) -> Self {
        let mut set = SignalSet::new();
        set.extend(iter);
        set
    }
}

impl Extend<Signal> for SignalSet {
    fn extend<I: IntoIterator<Item = Signal>>(&mut self, iter: I) {
        for sig in iter {
            self.add(sig);
        }
    }
}

impl<const N: usize> From<[Signal; N]> for SignalSet {
    fn from(signals: [Signal; N]) -> Self {
        signals.into_iter().collect()
    }
}

impl PartialEq for SignalSet {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for SignalSet {}

impl fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

fn mask_object() -> Object {
    Object::Other("signal mask of the calling thread".into())
}

/// `pthread_sigmask(how, set, &old)`; errors come back as an errno, not in `errno`.
fn sigmask(how: libc::c_int, set: Option<&SignalSet>) -> io::Result<SignalSet> {
    let mut old = SignalSet::new();
    let set_ptr = set.map_or(std::ptr::null(), |s| s.as_raw() as *const libc::sigset_t);
    // SAFETY: `set_ptr` is null or points to an initialized sigset_t that is only read; `old.raw`
    // is a writable sigset_t.
    let rc = unsafe { libc::pthread_sigmask(how, set_ptr, &mut old.raw) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(old)
}

/// `pthread_sigmask(SIG_BLOCK, &set, &old)` — adds `set` to the calling thread's mask and returns
/// the previous mask. Blocked signals stay pending until unblocked or received through a
/// [`SignalFd`]. `SIGKILL` and `SIGSTOP` cannot be blocked; the kernel silently leaves them out.
pub fn block(set: &SignalSet) -> Result<SignalSet> {
    sigmask(libc::SIG_BLOCK, Some(set))
        .map_err(|e| Error::os("pthread_sigmask(SIG_BLOCK)", mask_object(), e))
}

/// `pthread_sigmask(SIG_UNBLOCK, &set, &old)` — removes `set` from the calling thread's mask and
/// returns the previous mask. A pending signal that becomes unblocked is delivered at once, with
/// its disposition (the default action usually terminates the process).
pub fn unblock(set: &SignalSet) -> Result<SignalSet> {
    sigmask(libc::SIG_UNBLOCK, Some(set))
        .map_err(|e| Error::os("pthread_sigmask(SIG_UNBLOCK)", mask_object(), e))
}

/// `pthread_sigmask(SIG_SETMASK, &set, &old)` — replaces the calling thread's mask and returns the
/// previous one (pass it back here to restore).
pub fn set_mask(set: &SignalSet) -> Result<SignalSet> {
    sigmask(libc::SIG_SETMASK, Some(set))
        .map_err(|e| Error::os("pthread_sigmask(SIG_SETMASK)", mask_object(), e))
}

/// `pthread_sigmask(SIG_BLOCK, NULL, &set)` — the calling thread's mask.
pub fn mask() -> Result<SignalSet> {
    sigmask(libc::SIG_BLOCK, None).map_err(|e| Error::os("pthread_sigmask", mask_object(), e))
}

fn raw_pending() -> io::Result<SignalSet> {
    let mut set = SignalSet::new();
    // SAFETY: `set.raw` is a writable sigset_t.
    let rc = unsafe { libc::sigpending(&mut set.raw) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(set)
}

/// `sigpending(&set)` — the signals that wait, blocked, for the calling thread: those sent to it
/// and those sent to the whole process.
pub fn pending() -> Result<SignalSet> {
    raw_pending()
        .map_err(|e| Error::os("sigpending", Object::Other("the calling thread".into()), e))
}

/// What a process does when a signal is delivered to it (`sigaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// `SIG_DFL`: the default action (terminate, dump core, stop, continue or ignore, by signal).
    Default,
    /// `SIG_IGN`: the signal is discarded.
    Ignore,
    /// A handler function is installed. ipckit never installs one; [`set_disposition`] refuses it.
    Handler,
}

fn signal_object(sig: Signal) -> Object {
    Object::Other(format!("signal {sig}").into())
}

/// `sigaction(sig, NULL, &old)` — the current disposition of `sig`, for the whole process.
pub fn disposition(sig: Signal) -> Result<Disposition> {
    sigaction(sig, None)
}

/// `sigaction(sig, act, &old)`: installs `handler` (SIG_DFL or SIG_IGN) if given, and returns the
/// disposition before, read in the same call.
fn sigaction(sig: Signal, handler: Option<libc::sighandler_t>) -> Result<Disposition> {
    // SAFETY: struct sigaction holds only integers, a signal set and an optional function pointer,
    // for all of which zero is a valid value (no flags, empty mask, no restorer).
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    let mut old: libc::sigaction = act;
    let act_ptr = match handler {
        Some(handler) => {
            act.sa_sigaction = handler;
            &act as *const libc::sigaction
        }
        None => std::ptr::null(),
    };
    // SAFETY: `act_ptr` is null (query only) or points to `act`, which holds SIG_DFL or SIG_IGN —
    // no code the kernel would jump to — and an empty mask; `old` is a writable sigaction.
    let rc = unsafe { libc::sigaction(sig.0, act_ptr, &mut old) };
    if rc < 0 {
        return Err(Error::last_os("sigaction", signal_object(sig)));
    }
    Ok(match old.sa_sigaction {
        libc::SIG_DFL => Disposition::Default,
        libc::SIG_IGN => Disposition::Ignore,
        _ => Disposition::Handler,
    })
}

/// `sigaction(sig, &{SIG_DFL or SIG_IGN}, &old)` — resets `sig` to its default action or ignores
/// it, for the whole process, and returns the previous disposition.
///
/// [`Disposition::Handler`] is refused (ipckit runs no code in signal handlers), and a handler that
/// was replaced cannot be put back through this function. `SIGKILL` and `SIGSTOP` cannot be
/// changed (`EINVAL`). Rust programs start with `SIGPIPE` ignored; a child process gets it back
/// at its default when it is spawned, and a Rust child ignores it again as it starts.
pub fn set_disposition(sig: Signal, to: Disposition) -> Result<Disposition> {
    let handler = match to {
        Disposition::Default => libc::SIG_DFL,
        Disposition::Ignore => libc::SIG_IGN,
        Disposition::Handler => {
            return Err(Error::invalid(
                "sigaction",
                signal_object(sig),
                "ipckit installs no signal handlers; receive signals through a SignalFd",
            ))
        }
    };
    sigaction(sig, Some(handler))
}

fn check_pid(op: &'static str, what: &str, pid: u32, sig: Signal) -> Result<libc::pid_t> {
    let object = || Object::Other(format!("{sig} to {what} {pid}").into());
    match libc::pid_t::try_from(pid) {
        Ok(0) => Err(Error::invalid(
            op,
            object(),
            format!("{what} 0 would mean the caller's own process group"),
        )),
        Ok(p) => Ok(p),
        Err(_) => Err(Error::invalid(op, object(), "larger than any process id")),
    }
}

/// `kill(pid, sig)` — sends `sig` to the process `pid` (to any one of its threads that does not
/// block it). `pid` must be a process id: 0 and values above `i32::MAX`, which `kill(2)` would
/// read as process groups or "every process", are refused; use [`kill_group`]. Errors: `ESRCH`
/// when there is no such process, `EPERM` when the caller may not signal it.
pub fn kill(pid: u32, sig: Signal) -> Result<()> {
    const OP: &str = "kill";
    let raw = check_pid(OP, "process", pid, sig)?;
    // SAFETY: kill takes only integers.
    let rc = unsafe { libc::kill(raw, sig.0) };
    if rc < 0 {
        return Err(Error::last_os(
            OP,
            Object::Other(format!("{sig} to process {pid}").into()),
        ));
    }
    Ok(())
}

/// `kill(-pgid, sig)` — sends `sig` to every process of the process group `pgid`, as the terminal
/// does for Ctrl+C. `pgid` 0 (the caller's own group) and 1 (`kill(-1)` means *every process
/// the caller may signal*) are refused.
pub fn kill_group(pgid: u32, sig: Signal) -> Result<()> {
    const OP: &str = "kill";
    let raw = check_pid(OP, "process group", pgid, sig)?;
    if raw == 1 {
        return Err(Error::invalid(
            OP,
            Object::Other(format!("{sig} to process group 1").into()),
            "kill(-1) would signal every process the caller may signal",
        ));
    }
    // SAFETY: kill takes only integers.
    let rc = unsafe { libc::kill(-raw, sig.0) };
    if rc < 0 {
        return Err(Error::last_os(
            OP,
            Object::Other(format!("{sig} to process group {pgid}").into()),
        ));
    }
    Ok(())
}

/// `raise(sig)` — sends `sig` to the calling thread (`tgkill`); a [`SignalFd`] reports it with
/// [`SignalCode::Tkill`].
pub fn raise(sig: Signal) -> Result<()> {
    // SAFETY: raise takes only an integer.
    let rc = unsafe { libc::raise(sig.0) };
    if rc != 0 {
        return Err(Error::last_os(
            "raise",
            Object::Other(format!("{sig} to the calling thread").into()),
        ));
    }
    Ok(())
}

/// `sigqueue(pid, sig, (union sigval){ .sival_int = value })` — sends `sig` to process `pid` with
/// an integer the receiver reads as [`SignalInfo::value`].
///
/// Real-time signals queue: each one sent is received once, in order. A standard signal that is
/// already pending is merged with the new one and only the first value is kept. The queue per
/// user is bounded (`RLIMIT_SIGPENDING`); beyond it `EAGAIN`.
pub fn queue(pid: u32, sig: Signal, value: i32) -> Result<()> {
    const OP: &str = "sigqueue";
    let raw = check_pid(OP, "process", pid, sig)?;
    let mut sv = MaybeUninit::<libc::sigval>::zeroed();
    // SAFETY: `union sigval` starts with its `int` member at offset 0 on every ABI; the zeroed
    // storage is large enough (it holds a pointer) and suitably aligned for an i32.
    unsafe { sv.as_mut_ptr().cast::<i32>().write(value) };
    // SAFETY: the sigval is initialized (zeroed, then the int written).
    let sv = unsafe { sv.assume_init() };
    // SAFETY: sigqueue takes integers and the sigval by value; the kernel copies it.
    let rc = unsafe { libc::sigqueue(raw, sig.0, sv) };
    if rc < 0 {
        return Err(Error::last_os(
            OP,
            Object::Other(format!("{sig} to process {pid}").into()),
        ));
    }
    Ok(())
}

/// How a received signal was sent (`si_code` / `ssi_code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalCode {
    /// `SI_USER`: [`kill`] (or `kill(1)`) from a process.
    User,
    /// `SI_QUEUE`: [`queue`], with a value.
    Queue,
    /// `SI_TKILL`: [`raise`] or `tgkill` from a thread.
    Tkill,
    /// `SI_TIMER`: a POSIX timer (`timer_create`) expired.
    Timer,
    /// `SI_MESGQ`: a POSIX message queue became non-empty (`mq_notify`).
    MessageQueue,
    /// `SI_KERNEL`: the kernel sent it, e.g. `SIGALRM` from [`alarm`] or [`set_interval_timer`].
    Kernel,
    /// Any other code (asynchronous I/O, or a signal-specific code such as `CLD_EXITED`).
    Other(i32),
}

impl SignalCode {
    /// The code for a raw `si_code`.
    pub fn from_raw(code: i32) -> SignalCode {
        match code {
            libc::SI_USER => SignalCode::User,
            libc::SI_QUEUE => SignalCode::Queue,
            libc::SI_TKILL => SignalCode::Tkill,
            libc::SI_TIMER => SignalCode::Timer,
            libc::SI_MESGQ => SignalCode::MessageQueue,
            libc::SI_KERNEL => SignalCode::Kernel,
            other => SignalCode::Other(other),
        }
    }

    /// The raw `si_code`.
    pub fn as_raw(self) -> i32 {
        match self {
            SignalCode::User => libc::SI_USER,
            SignalCode::Queue => libc::SI_QUEUE,
            SignalCode::Tkill => libc::SI_TKILL,
            SignalCode::Timer => libc::SI_TIMER,
            SignalCode::MessageQueue => libc::SI_MESGQ,
            SignalCode::Kernel => libc::SI_KERNEL,
            SignalCode::Other(code) => code,
        }
    }

    /// Whether a process sent the signal ([`kill`], [`queue`], [`raise`]), so that
    /// [`SignalInfo::sender_pid`] and [`SignalInfo::sender_uid`] name it.
    pub fn is_from_process(self) -> bool {
        matches!(
            self,
            SignalCode::User | SignalCode::Queue | SignalCode::Tkill
        )
    }
}

/// One received signal, as a [`SignalFd`] reports it (`struct signalfd_siginfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalInfo {
    /// The signal.
    pub signal: Signal,
    /// The sending process (`ssi_pid`), when [`code`](Self::code) says a process sent it; else 0.
    pub sender_pid: u32,
    /// The sender's real user id (`ssi_uid`), when a process sent it.
    pub sender_uid: u32,
    /// The integer [`queue`] attached (`ssi_int`); 0 for other senders.
    pub value: i32,
    /// How the signal was sent (`ssi_code`).
    pub code: SignalCode,
}

/// Size of the record `read` returns from a signalfd.
const SIGINFO_LEN: usize = size_of::<libc::signalfd_siginfo>();

impl SignalInfo {
    /// Decodes one `signalfd_siginfo` record field by field (no transmute).
    fn from_record(record: &[u8; SIGINFO_LEN], object: impl FnOnce() -> Object) -> Result<Self> {
        let u32_at = |offset: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&record[offset..offset + 4]);
            u32::from_ne_bytes(b)
        };
        let signo = u32_at(offset_of!(libc::signalfd_siginfo, ssi_signo));
        let signal = i32::try_from(signo)
            .ok()
            .and_then(|n| Signal::from_raw(n).ok())
            .ok_or_else(|| {
                Error::os(
                    "read",
                    object(),
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("signalfd reported signal number {signo}"),
                    ),
                )
            })?;
        Ok(SignalInfo {
            signal,
            sender_pid: u32_at(offset_of!(libc::signalfd_siginfo, ssi_pid)),
            sender_uid: u32_at(offset_of!(libc::signalfd_siginfo, ssi_uid)),
            value: u32_at(offset_of!(libc::signalfd_siginfo, ssi_int)) as i32,
            code: SignalCode::from_raw(u32_at(offset_of!(libc::signalfd_siginfo, ssi_code)) as i32),
        })
    }
}

/// A file descriptor that receives signals as data (`signalfd`), one [`SignalInfo`] per read.
///
/// It reports the signals of its set that are pending for the calling thread or the process, and
/// removes each one it reports. **The signals must be blocked** ([`block`]) — in every thread, for
/// signals sent to the process; see the [module documentation](self). Unblocked signals are
/// delivered the ordinary way before the descriptor sees them.
///
/// The descriptor is close-on-exec and non-blocking; [`recv`](Self::recv) and
/// [`recv_timeout`](Self::recv_timeout) wait with `poll`. It implements [`AsFd`], so it can be
/// polled together with other descriptors.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
    set: SignalSet,
}

impl SignalFd {
    /// `signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)` — a descriptor that receives the signals
    /// of `set`. It does not block them: do that first.
    pub fn new(set: &SignalSet) -> Result<SignalFd> {
        // SAFETY: `set` points to an initialized sigset_t that is only read; -1 asks for a new fd.
        let fd =
            unsafe { libc::signalfd(-1, set.as_raw(), libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(Error::last_os(
                "signalfd",
                Object::Other(format!("signals {set:?}").into()),
            ));
        }
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd {
            fd,
            set: set.clone(),
        })
    }

    /// The signals this descriptor receives.
    pub fn signals(&self) -> &SignalSet {
        &self.set
    }

    fn object(&self) -> Object {
        Object::Other(format!("signalfd {} for {:?}", self.fd.as_raw_fd(), self.set).into())
    }

    /// `read(fd, &info, sizeof info)` — the next pending signal of the set, or `None` if none is
    /// pending now.
    pub fn try_recv(&self) -> Result<Option<SignalInfo>> {
        let mut record = [0u8; SIGINFO_LEN];
        loop {
            match rustix::io::read(&self.fd, &mut record[..]) {
                Ok(n) if n == SIGINFO_LEN => {
                    return SignalInfo::from_record(&record, || self.object()).map(Some)
                }
                Ok(n) => {
                    return Err(Error::os(
                        "read",
                        self.object(),
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("signalfd returned {n} bytes, not {SIGINFO_LEN}"),
                        ),
                    ))
                }
                Err(rustix::io::Errno::AGAIN) => return Ok(None),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::os("read", self.object(), e)),
            }
        }
    }

    /// `poll` then `read` — waits for the next signal of the set.
    pub fn recv(&self) -> Result<SignalInfo> {
        loop {
            if let Some(info) = self.recv_until(None)? {
                return Ok(info);
            }
        }
    }

    /// `poll(fd, timeout)` then `read` — waits at most `timeout` for the next signal of the set;
    /// `None` when none came in time.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<SignalInfo>> {
        // A deadline too far away to represent waits forever.
        self.recv_until(Instant::now().checked_add(timeout))
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<Option<SignalInfo>> {
        loop {
            if let Some(info) = self.try_recv()? {
                return Ok(Some(info));
            }
            let timeout = match deadline {
                None => None,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(Timespec::try_from(left).unwrap_or(Timespec {
                        tv_sec: i64::MAX,
                        tv_nsec: 0,
                    }))
                }
            };
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::os("poll", self.object(), e)),
            }
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<SignalFd> for OwnedFd {
    fn from(sfd: SignalFd) -> OwnedFd {
        sfd.fd
    }
}

/// `alarm(secs)` — delivers `SIGALRM` to the process after `secs` seconds (0 cancels) and returns
/// the seconds that were left of the previous alarm (0 if none). The process has one such timer,
/// shared with [`set_interval_timer`]; a new call replaces it. `SIGALRM` terminates a process that
/// neither blocks nor handles it: block it and read it from a [`SignalFd`].
pub fn alarm(secs: u32) -> u32 {
    // SAFETY: alarm takes an integer and cannot fail.
    unsafe { libc::alarm(secs) }
}

/// The setting of the real-time interval timer (`struct itimerval` of `ITIMER_REAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IntervalTimer {
    /// Time until the next expiry; zero when the timer is disarmed.
    pub value: Duration,
    /// Period after each expiry; zero for a one-shot timer.
    pub interval: Duration,
}

fn timer_object() -> Object {
    Object::Other("ITIMER_REAL".into())
}

fn to_timeval(op: &'static str, d: Duration) -> Result<libc::timeval> {
    // Round up to whole microseconds, so that a timer never fires early and a non-zero duration
    // never becomes zero (which would disarm the timer).
    let micros = d.as_nanos().div_ceil(1000);
    let secs = libc::time_t::try_from(micros / 1_000_000).map_err(|_| {
        Error::invalid(
            op,
            timer_object(),
            format!("{d:?} does not fit in a timeval"),
        )
    })?;
    Ok(libc::timeval {
        tv_sec: secs,
        tv_usec: (micros % 1_000_000) as libc::suseconds_t,
    })
}

fn from_timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

impl IntervalTimer {
    fn from_raw(v: &libc::itimerval) -> IntervalTimer {
        IntervalTimer {
            value: from_timeval(v.it_value),
            interval: from_timeval(v.it_interval),
        }
    }

    /// Whether the timer is armed (its value is not zero).
    pub fn is_armed(&self) -> bool {
        !self.value.is_zero()
    }
}

/// `setitimer(ITIMER_REAL, &{interval, value}, &old)` — delivers `SIGALRM` after `value`, then
/// every `interval` (zero: once); a zero `value` disarms the timer. Returns the previous setting.
///
/// Durations are rounded up to microseconds. This is the same per-process timer as [`alarm`].
/// Expiries that happen while a `SIGALRM` is still pending merge into it.
pub fn set_interval_timer(value: Duration, interval: Duration) -> Result<IntervalTimer> {
    const OP: &str = "setitimer";
    let new = libc::itimerval {
        it_interval: to_timeval(OP, interval)?,
        it_value: to_timeval(OP, value)?,
    };
    let mut old = MaybeUninit::<libc::itimerval>::zeroed();
    // SAFETY: `new` is a valid itimerval, only read; `old` is writable.
    let rc = unsafe { libc::setitimer(libc::ITIMER_REAL, &new, old.as_mut_ptr()) };
    if rc < 0 {
        return Err(Error::last_os(OP, timer_object()));
    }
    // SAFETY: setitimer filled `old` in (and zeroed is a valid itimerval anyway).
    Ok(IntervalTimer::from_raw(&unsafe { old.assume_init() }))
}

/// `getitimer(ITIMER_REAL, &cur)` — the current setting of the real-time interval timer.
pub fn interval_timer() -> Result<IntervalTimer> {
    let mut cur = MaybeUninit::<libc::itimerval>::zeroed();
    // SAFETY: `cur` is a writable itimerval.
    let rc = unsafe { libc::getitimer(libc::ITIMER_REAL, cur.as_mut_ptr()) };
    if rc < 0 {
        return Err(Error::last_os("getitimer", timer_object()));
    }
    // SAFETY: getitimer filled `cur` in.
    Ok(IntervalTimer::from_raw(&unsafe { cur.assume_init() }))
}

/// `sigtimedwait({SIGPIPE}, NULL, {0, 0})` — takes a pending `SIGPIPE` of the calling thread, if
/// any, without waiting.
fn take_pending_sigpipe() {
    let set = SignalSet::from([Signal::PIPE]);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        // SAFETY: `set` and `zero` are initialized and only read; a null siginfo is allowed.
        let rc = unsafe { libc::sigtimedwait(set.as_raw(), std::ptr::null_mut(), &zero) };
        if rc >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return; // taken, or none pending (EAGAIN)
        }
    }
}

/// Runs `write` (one write to a pipe) so that a reader-less pipe reports `EPIPE` without killing the
/// process with `SIGPIPE`, as `send(MSG_NOSIGNAL)` does for sockets; pipes have no such flag.
///
/// The kernel sends the `SIGPIPE` of a failed write to the writing thread. So: block `SIGPIPE` in
/// the calling thread (the mask is per thread, other threads are untouched), write, and if the
/// write failed with `EPIPE`, take the `SIGPIPE` it left pending with a zero-timeout
/// `sigtimedwait` before restoring the mask. A `SIGPIPE` that was already pending before the write
/// (possible only if the caller had blocked it) is left alone: standard signals do not queue, so
/// the write's one merged into it. This costs two `pthread_sigmask` calls per write; ignoring
/// `SIGPIPE` process-wide would be cheaper but is the program's decision, not a library's.
pub(crate) fn without_sigpipe(write: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
    let pipe_set = SignalSet::from([Signal::PIPE]);
    let old = sigmask(libc::SIG_BLOCK, Some(&pipe_set))?;
    let was_blocked = old.contains(Signal::PIPE);
    // When SIGPIPE was not blocked, none can be pending for this thread: it would have been
    // delivered already.
    let pending_before = was_blocked && raw_pending()?.contains(Signal::PIPE);
    let result = write();
    if !pending_before && matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EPIPE)) {
        take_pending_sigpipe();
    }
    if !was_blocked {
        sigmask(libc::SIG_UNBLOCK, Some(&pipe_set))?;
    }
    result
}
