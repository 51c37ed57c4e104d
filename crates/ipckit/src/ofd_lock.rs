//! Liveness through open-file-description (OFD) byte-range locks, for every mechanism whose
//! object is a file descriptor (the channel's segment, a POSIX message queue).
//!
//! Each participant opens the object itself (its own open file description) and write-locks one
//! byte past the end of the data with `fcntl(F_OFD_SETLK)`. The kernel drops the lock when the
//! description goes away, which happens however the process ends, SIGKILL included, so "the lock
//! on byte B is held" means "the participant of byte B is alive" without pids (which are reused).
//! `F_OFD_GETLK` asks whether another description holds a lock; locks of the asking description
//! never conflict with themselves, so a participant only ever sees the *others*.
//!
//! A mapping keeps its file description alive, so locks are released explicitly (`F_UNLCK`) when
//! a handle closes rather than relying on `close(2)`.
//!
//! # References
//! [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html) ("Open file description locks")

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

/// A `struct flock` for `len` bytes at `start`; `l_pid` must be 0 for OFD locks.
fn flock(kind: libc::c_int, start: u64, len: u64) -> libc::flock {
    // SAFETY: `struct flock` holds only integers (and maybe padding); all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    fl
}

fn fcntl_lock(fd: BorrowedFd<'_>, cmd: libc::c_int, fl: &mut libc::flock) -> io::Result<()> {
    // SAFETY: `fl` is a valid, writable `struct flock` for the duration of the call; the fd is
    // open (borrowed).
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, fl as *mut libc::flock) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `fcntl(fd, F_OFD_SETLK, {F_WRLCK, start, 1})` — takes a write lock on one byte without
/// waiting. `Ok(false)` if another description holds a conflicting lock.
pub(crate) fn try_lock(fd: BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK, byte, 1);
    match fcntl_lock(fd, libc::F_OFD_SETLK, &mut fl) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `fcntl(fd, F_OFD_SETLK, {F_WRLCK, start, 1})`, retried with backoff (sleeps of 50 µs
/// doubling up to 5 ms) until it succeeds or `timeout` has passed: `Ok(false)` then. Used for
/// the short open/teardown critical section. Never `F_OFD_SETLKW`: its holder may be stopped
/// (SIGSTOP, a debugger) for ever, and a waiter must be able to give up.
pub(crate) fn lock_within(fd: BorrowedFd<'_>, byte: u64, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(50);
    loop {
        if try_lock(fd, byte)? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// `fcntl(fd, F_OFD_SETLK, {F_RDLCK, start, 1})` — takes a read (shared) lock on one byte
/// without waiting. `Ok(false)` if another description holds a write lock on it.
pub(crate) fn try_lock_shared(fd: BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    let mut fl = flock(libc::F_RDLCK, byte, 1);
    match fcntl_lock(fd, libc::F_OFD_SETLK, &mut fl) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `fcntl(fd, F_OFD_SETLK, {F_UNLCK, start, len})` — releases this description's locks on
/// `len` bytes at `start` (unlocking bytes that are not locked is not an error).
pub(crate) fn unlock(fd: BorrowedFd<'_>, start: u64, len: u64) -> io::Result<()> {
    let mut fl = flock(libc::F_UNLCK, start, len);
    fcntl_lock(fd, libc::F_OFD_SETLK, &mut fl)
}

/// `fcntl(fd, F_OFD_GETLK, {F_WRLCK, start, len})` — whether another open file description
/// holds a lock on any of `len` bytes at `start` (our own locks are never reported).
pub(crate) fn held_by_other(fd: BorrowedFd<'_>, start: u64, len: u64) -> io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK, start, len);
    fcntl_lock(fd, libc::F_OFD_GETLK, &mut fl)?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// `fcntl(fd, F_OFD_GETLK, {F_WRLCK, start, to the end})` — the first byte at or after `start`
/// on which another open file description holds a lock, if any. A participant that locks the
/// byte at its own pid is found, pid included, by one call (OFD locks report no `l_pid`).
pub(crate) fn first_held_by_other(fd: BorrowedFd<'_>, start: u64) -> io::Result<Option<u64>> {
    // A length of 0 means "to the end of the file, however it grows".
    let mut fl = flock(libc::F_WRLCK, start, 0);
    fcntl_lock(fd, libc::F_OFD_GETLK, &mut fl)?;
    Ok((fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_start as u64))
}
