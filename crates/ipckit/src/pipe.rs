//! Pipes and FIFOs: one-way byte streams through a kernel buffer, from the processes that hold the
//! write end to the processes that hold the read end. An anonymous pipe ([`pipe`]) is shared by
//! inheritance (a child's stdin or stdout, `ls | wc -l`); a FIFO ([`Fifo`]) is a pipe with a name
//! in the file system, so unrelated processes can open it.
//!
//! The trap this module removes is `SIGPIPE`: in C, writing to a pipe whose readers are all gone
//! kills the writer. Here such a write returns an error of kind [`BrokenPipe`](io::ErrorKind)
//! (`EPIPE`) and never raises `SIGPIPE`, whatever the process's disposition of it; see
//! [`PipeWriter`]. The other rules, as the tests pin them:
//!
//! - `read` blocks while the pipe is empty and a write end is open anywhere, and returns 0 (end of
//!   file) once every write end, in every process, is closed;
//! - `write` blocks while the pipe is full (its [capacity](PipeReader::capacity));
//! - a write of at most [`PIPE_BUF`] bytes is atomic: with several writers, its bytes are never
//!   interleaved with another write ([`PipeWriter::write_atomic`]);
//! - every descriptor made here is close-on-exec, so a child gets only the ends it is given
//!   explicitly (as a [`Stdio`]), and end of file is not held up by a forgotten copy.
//!
//! # References
//! [pipe(7)](https://man7.org/linux/man-pages/man7/pipe.7.html),
//! [pipe(2)](https://man7.org/linux/man-pages/man2/pipe.2.html),
//! [fifo(7)](https://man7.org/linux/man-pages/man7/fifo.7.html),
//! [mkfifo(3)](https://man7.org/linux/man-pages/man3/mkfifo.3.html),
//! [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html) (`F_GETPIPE_SZ`,
//! `F_SETPIPE_SZ`)

use std::fmt;
use std::io::{self, Read, Write};
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Object, Result};
use crate::mode::{check_mode, DEFAULT_MODE};
use crate::signal;

/// `PIPE_BUF`: writes of at most this many bytes (4096 on Linux) are atomic.
pub const PIPE_BUF: usize = rustix::pipe::PIPE_BUF;

/// Where the kernel's limit on [`PipeReader::set_capacity`] is read.
pub const PIPE_MAX_SIZE_PATH: &str = "/proc/sys/fs/pipe-max-size";

/// `pipe2(fds, O_CLOEXEC)` — a new anonymous pipe: what is written to the [`PipeWriter`] is read
/// from the [`PipeReader`], in order.
///
/// Both ends are close-on-exec. To give an end to a child, convert it into a [`Stdio`]; drop the
/// `Command` afterwards too (it keeps its copy), or the reader never sees end of file.
pub fn pipe() -> Result<(PipeReader, PipeWriter)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::os("pipe2", Object::Other("pipe".into()), e))?;
    Ok((PipeReader { fd: r }, PipeWriter { fd: w }))
}

/// `/proc/sys/fs/pipe-max-size` — the largest capacity an unprivileged process may give a pipe
/// (1 MiB by default).
pub fn max_capacity() -> Result<usize> {
    let object = || Object::Path(PathBuf::from(PIPE_MAX_SIZE_PATH).into());
    let text =
        std::fs::read_to_string(PIPE_MAX_SIZE_PATH).map_err(|e| Error::os("read", object(), e))?;
    text.trim().parse().map_err(|_| {
        Error::os(
            "read",
            object(),
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a number: {text:?}"),
            ),
        )
    })
}

fn fd_object(fd: BorrowedFd<'_>) -> Object {
    Object::Other(format!("pipe (fd {})", fd.as_raw_fd()).into())
}

/// `fcntl(fd, F_GETPIPE_SZ)`.
fn capacity_of(fd: BorrowedFd<'_>) -> Result<usize> {
    rustix::pipe::fcntl_getpipe_size(fd).map_err(|e| Error::os("F_GETPIPE_SZ", fd_object(fd), e))
}

/// `fcntl(fd, F_SETPIPE_SZ, n)`, refused above pipe-max-size.
fn set_capacity_of(fd: BorrowedFd<'_>, n: usize) -> Result<usize> {
    const OP: &str = "F_SETPIPE_SZ";
    if n == 0 {
        return Err(Error::invalid(
            OP,
            fd_object(fd),
            "a pipe's capacity is at least one page",
        ));
    }
    let max = max_capacity()?;
    if n > max {
        return Err(Error::TooLarge {
            op: OP,
            object: fd_object(fd),
            what: "pipe capacity",
            len: n,
            limit: max,
            limit_name: PIPE_MAX_SIZE_PATH,
        });
    }
    rustix::pipe::fcntl_setpipe_size(fd, n).map_err(|e| Error::os(OP, fd_object(fd), e))
}

fn is_nonblocking(fd: BorrowedFd<'_>) -> Result<bool> {
    let flags = rustix::fs::fcntl_getfl(fd).map_err(|e| Error::os("F_GETFL", fd_object(fd), e))?;
    Ok(flags.contains(OFlags::NONBLOCK))
}

fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd).map_err(|e| Error::os("F_GETFL", fd_object(fd), e))?;
    let flags = if nonblocking {
        flags | OFlags::NONBLOCK
    } else {
        flags - OFlags::NONBLOCK
    };
    rustix::fs::fcntl_setfl(fd, flags).map_err(|e| Error::os("F_SETFL", fd_object(fd), e))
}

fn try_clone(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    fd.try_clone_to_owned()
        .map_err(|e| Error::os("F_DUPFD_CLOEXEC", fd_object(fd), e))
}

/// The read end of a pipe or FIFO.
///
/// Reads block while the pipe is empty and some write end is open, and return 0 (end of file)
/// once none is; in non-blocking mode they fail with `WouldBlock` instead of blocking.
pub struct PipeReader {
    fd: OwnedFd,
}

/// The write end of a pipe or FIFO.
///
/// Writes block while the pipe is full (in non-blocking mode they fail with `WouldBlock`).
///
/// # No SIGPIPE
/// When no read end is left, a write fails with `EPIPE` (kind [`io::ErrorKind::BrokenPipe`]) and
/// the process goes on, even with `SIGPIPE` at its default action (which terminates). For each
/// write, `SIGPIPE` is blocked in the calling thread, and the one a failed write raises is taken
/// off the thread's pending signals before the mask is restored: the kernel sends that signal to
/// the writing thread, so the mask of one thread suffices and other threads are not affected. A
/// `SIGPIPE` sent by someone else while the caller already blocks it is left pending. Rust
/// programs usually ignore `SIGPIPE`, but a library cannot count on it (C hosts, children
/// restored to the default).
pub struct PipeWriter {
    fd: OwnedFd,
}

macro_rules! common_methods {
    ($ty:ident) => {
        impl $ty {
            /// `fcntl(fd, F_DUPFD_CLOEXEC, 0)` — another descriptor for the same end. The pipe
            /// counts it like the original: a reader sees end of file only when every write end,
            /// clones included, is closed.
            pub fn try_clone(&self) -> Result<$ty> {
                try_clone(self.fd.as_fd()).map(|fd| $ty { fd })
            }

            /// `fcntl(fd, F_GETPIPE_SZ)` — the pipe's capacity in bytes (64 KiB by default):
            /// writes block once this many bytes wait to be read.
            pub fn capacity(&self) -> Result<usize> {
                capacity_of(self.fd.as_fd())
            }

            /// `fcntl(fd, F_SETPIPE_SZ, n)` — sets the pipe's capacity to at least `n` bytes
            /// and returns the capacity the kernel chose (a power-of-two number of pages).
            ///
            /// `n` above `/proc/sys/fs/pipe-max-size` ([`max_capacity`]) is refused with
            /// [`Error::TooLarge`] naming that file — for privileged callers too, whom the kernel
            /// would let through, so that a program behaves the same whoever runs it. The kernel
            /// refuses with `EBUSY` a capacity smaller than the data in the pipe, and with `EPERM`
            /// one beyond the user's total (`pipe-user-pages-hard`).
            pub fn set_capacity(&self, n: usize) -> Result<usize> {
                set_capacity_of(self.fd.as_fd(), n)
            }

            /// `fcntl(fd, F_SETFL, flags ± O_NONBLOCK)` — in non-blocking mode, operations that
            /// would wait fail with `WouldBlock`. The flag belongs to the open file description:
            /// clones and a child's inherited copy share it.
            pub fn set_nonblocking(&self, nonblocking: bool) -> Result<()> {
                set_nonblocking(self.fd.as_fd(), nonblocking)
            }

            /// `fcntl(fd, F_GETFL)` — whether this end is in non-blocking mode.
            pub fn is_nonblocking(&self) -> Result<bool> {
                is_nonblocking(self.fd.as_fd())
            }
        }

        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd.as_fd()
            }
        }

        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.as_raw_fd()
            }
        }

        impl From<$ty> for OwnedFd {
            fn from(end: $ty) -> OwnedFd {
                end.fd
            }
        }

        /// Takes a descriptor of the right end of a pipe or FIFO (not checked: other descriptors
        /// read and write, but have no capacity).
        impl From<OwnedFd> for $ty {
            fn from(fd: OwnedFd) -> $ty {
                $ty { fd }
            }
        }

        /// For a child's stdin, stdout or stderr. The child gets the descriptor without
        /// close-on-exec, as its fd 0, 1 or 2.
        impl From<$ty> for Stdio {
            fn from(end: $ty) -> Stdio {
                Stdio::from(end.fd)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("fd", &self.fd.as_raw_fd())
                    .finish()
            }
        }
    };
}

common_methods!(PipeReader);
common_methods!(PipeWriter);

fn read_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    rustix::io::read(fd, buf).map_err(io::Error::from)
}

fn write_fd(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    signal::without_sigpipe(|| rustix::io::write(fd, buf).map_err(io::Error::from))
}

/// `read(fd, buf, len)`.
impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_fd(self.fd.as_fd(), buf)
    }
}

/// `read(fd, buf, len)`; several readers of one pipe each get part of the stream.
impl Read for &PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_fd(self.fd.as_fd(), buf)
    }
}

/// `write(fd, buf, len)`, one call, without `SIGPIPE` (see [`PipeWriter`]).
impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_fd(self.fd.as_fd(), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `write(fd, buf, len)`, one call, without `SIGPIPE` (see [`PipeWriter`]).
impl Write for &PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_fd(self.fd.as_fd(), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl PipeWriter {
    /// `write(fd, record, len)` with `len <= PIPE_BUF` — writes `record` in one piece, never
    /// interleaved with the writes of other writers, threads or processes.
    ///
    /// POSIX guarantees that a write of at most [`PIPE_BUF`] bytes to a pipe is atomic: in
    /// blocking mode the writer waits until there is room for all of it, in non-blocking mode it
    /// fails with `WouldBlock` and writes nothing. Longer writes may be split and interleaved, so
    /// `record` longer than `PIPE_BUF` is refused with [`Error::TooLarge`] before any system
    /// call. Interrupted writes (`EINTR`, nothing written) are retried. No `SIGPIPE`.
    pub fn write_atomic(&self, record: &[u8]) -> Result<()> {
        const OP: &str = "write";
        let object = || fd_object(self.fd.as_fd());
        if record.len() > PIPE_BUF {
            return Err(Error::TooLarge {
                op: OP,
                object: object(),
                what: "atomic write",
                len: record.len(),
                limit: PIPE_BUF,
                limit_name: "PIPE_BUF",
            });
        }
        loop {
            match write_fd(self.fd.as_fd(), record) {
                Ok(n) if n == record.len() => return Ok(()),
                Ok(n) => {
                    return Err(Error::os(
                        OP,
                        object(),
                        io::Error::new(
                            io::ErrorKind::WriteZero,
                            format!(
                                "only {n} of {} bytes written: the descriptor is not a pipe",
                                record.len()
                            ),
                        ),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::os(OP, object(), e)),
            }
        }
    }
}

/// Options to create a FIFO (`mkfifo` mode, exclusive), like `std::fs::OpenOptions`.
///
/// Defaults: mode [`DEFAULT_MODE`] (0600), not exclusive.
#[derive(Debug, Clone)]
pub struct FifoOptions {
    mode: u32,
    exclusive: bool,
}

impl Default for FifoOptions {
    fn default() -> Self {
        FifoOptions::new()
    }
}

impl FifoOptions {
    /// The default options (see the [type documentation](FifoOptions)).
    pub fn new() -> FifoOptions {
        FifoOptions {
            mode: DEFAULT_MODE,
            exclusive: false,
        }
    }

    /// The permission bits (at most 0o777) of a FIFO this call creates; the process umask is
    /// applied to them, as for every file.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Fail with `AlreadyExists` if the path exists, even as a FIFO.
    pub fn exclusive(&mut self, exclusive: bool) -> &mut Self {
        self.exclusive = exclusive;
        self
    }

    /// `mkfifo(path, mode)` — creates a FIFO at `path`, or accepts a FIFO already there (unless
    /// exclusive).
    ///
    /// Anything else at `path` is refused with `AlreadyExists` and an explanation, and left
    /// alone: a regular file (whose reader would get the file's bytes instead of a writer's) and
    /// a symbolic link, even to a FIFO — links are not followed, so a FIFO cannot be redirected
    /// to another place.
    pub fn create(&self, path: impl AsRef<Path>) -> Result<Fifo> {
        const OP: &str = "mkfifo";
        let path = path.as_ref();
        let object = || Object::Path(path.into());
        let mode = check_mode(OP, &object(), self.mode)?;
        match rustix::fs::mkfifoat(rustix::fs::CWD, path, Mode::from_raw_mode(mode as _)) {
            Ok(()) => return Ok(Fifo::new(path)),
            Err(Errno::EXIST) if !self.exclusive => {}
            Err(e) => return Err(Error::os(OP, object(), e)),
        }
        let meta = std::fs::symlink_metadata(path).map_err(|e| Error::os(OP, object(), e))?;
        if meta.file_type().is_fifo() {
            return Ok(Fifo::new(path));
        }
        Err(Error::os(
            OP,
            object(),
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "exists and is {}, not a FIFO; left alone",
                    describe(meta.file_type())
                ),
            ),
        ))
    }
}

/// "a regular file", "a symbolic link" … for error messages.
fn describe(t: std::fs::FileType) -> &'static str {
    if t.is_symlink() {
        "a symbolic link (not followed)"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "something else"
    }
}

/// A named pipe (FIFO) in the file system, by path.
///
/// A plain handle: it holds no descriptor, and dropping it leaves the FIFO in place; use
/// [`Fifo::remove`], or [`Fifo::into_owned`] to remove it on drop. The data never touches the
/// disk: it goes through a pipe the kernel creates when the first process opens the FIFO.
///
/// # Opening
/// A FIFO is a rendezvous: by default, opening it for reading blocks until some process opens it
/// for writing, and the other way round. The variants:
///
/// | method | no partner yet | returned end |
/// |---|---|---|
/// | [`open_read`](Self::open_read) | blocks | blocking |
/// | [`open_write`](Self::open_write) | blocks | blocking |
/// | [`open_read_nonblocking`](Self::open_read_nonblocking) | succeeds; reads return 0 until a writer comes | non-blocking |
/// | [`open_write_nonblocking`](Self::open_write_nonblocking) | fails: `ENXIO`, explained | non-blocking |
/// | [`open_read_timeout`](Self::open_read_timeout) | waits up to the timeout | blocking |
/// | [`open_write_timeout`](Self::open_write_timeout) | waits up to the timeout | blocking |
///
/// Every open refuses a symbolic link (`O_NOFOLLOW`) and anything that is not a FIFO, and makes a
/// close-on-exec descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fifo {
    path: PathBuf,
}

impl Fifo {
    /// The FIFO at `path`. No system call is made; a missing or wrong file shows up as an error
    /// of the first operation.
    pub fn new(path: impl Into<PathBuf>) -> Fifo {
        Fifo { path: path.into() }
    }

    /// `mkfifo(path, mode)` — creates a FIFO with permission bits `mode` (0o600 is
    /// [`DEFAULT_MODE`]), or accepts an existing FIFO; refuses links and other files. See
    /// [`FifoOptions::create`].
    pub fn create(path: impl AsRef<Path>, mode: u32) -> Result<Fifo> {
        FifoOptions::new().mode(mode).create(path)
    }

    /// Options for creating a FIFO: mode (default 0600), exclusive.
    pub fn options() -> FifoOptions {
        FifoOptions::new()
    }

    /// The FIFO's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn object(&self) -> Object {
        Object::Path(self.path.as_path().into())
    }

    /// `open(path, flags | O_CLOEXEC | O_NOFOLLOW)` and a check that a FIFO was opened.
    fn open(&self, op: &'static str, flags: OFlags) -> Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let fd =
            loop {
                match rustix::fs::open(&self.path, flags, Mode::empty()) {
                    Ok(fd) => break fd,
                    Err(Errno::INTR) => continue,
                    Err(Errno::LOOP) => {
                        return Err(Error::os(
                            op,
                            self.object(),
                            explained(
                                libc::ELOOP,
                                io::ErrorKind::InvalidInput,
                                "is a symbolic link; FIFOs are opened without following links",
                            ),
                        ))
                    }
                    Err(Errno::NXIO) => return Err(Error::os(
                        op,
                        self.object(),
                        explained(
                            libc::ENXIO,
                            io::ErrorKind::NotConnected,
                            "no process has the FIFO open for reading, and a non-blocking open \
                             for writing does not wait for one; retry, or use \
                             open_write_timeout",
                        ),
                    )),
                    Err(e) => return Err(Error::os(op, self.object(), e)),
                }
            };
        let stat = rustix::fs::fstat(&fd).map_err(|e| Error::os("fstat", self.object(), e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Fifo {
            return Err(Error::os(
                op,
                self.object(),
                io::Error::new(io::ErrorKind::InvalidInput, "is not a FIFO"),
            ));
        }
        Ok(fd)
    }

    /// `open(path, O_RDONLY)` — opens the FIFO for reading; **blocks until a process opens it for
    /// writing** (or has it open already).
    pub fn open_read(&self) -> Result<PipeReader> {
        self.open("open for reading", OFlags::RDONLY)
            .map(|fd| PipeReader { fd })
    }

    /// `open(path, O_WRONLY)` — opens the FIFO for writing; **blocks until a process opens it for
    /// reading** (or has it open already).
    pub fn open_write(&self) -> Result<PipeWriter> {
        self.open("open for writing", OFlags::WRONLY)
            .map(|fd| PipeWriter { fd })
    }

    /// `open(path, O_RDONLY | O_NONBLOCK)` — opens the FIFO for reading at once, writer or not.
    ///
    /// The reader stays non-blocking: reads fail with `WouldBlock` while a writer is connected
    /// and the pipe is empty, and **return 0 while no writer is connected** — before the first
    /// one, too — so 0 does not mean "finished" here. Call
    /// [`set_nonblocking(false)`](PipeReader::set_nonblocking) for blocking reads.
    pub fn open_read_nonblocking(&self) -> Result<PipeReader> {
        self.open(
            "open for reading without blocking",
            OFlags::RDONLY | OFlags::NONBLOCK,
        )
        .map(|fd| PipeReader { fd })
    }

    /// `open(path, O_WRONLY | O_NONBLOCK)` — opens the FIFO for writing if a reader has it open.
    ///
    /// Without a reader the kernel refuses with `ENXIO` ("No such device or address"); this
    /// returns an error of kind [`NotConnected`](io::ErrorKind::NotConnected) that says so in
    /// words. The writer stays non-blocking: writes to a full pipe fail with `WouldBlock`.
    pub fn open_write_nonblocking(&self) -> Result<PipeWriter> {
        self.open(
            "open for writing without blocking",
            OFlags::WRONLY | OFlags::NONBLOCK,
        )
        .map(|fd| PipeWriter { fd })
    }

    /// Opens the FIFO for writing once a reader has it open, waiting at most `timeout`; the
    /// writer returned is blocking. Fails with [`TimedOut`](io::ErrorKind::TimedOut).
    ///
    /// How: a blocking `open` cannot be given a timeout, so this retries
    /// `open(path, O_WRONLY | O_NONBLOCK)` — which fails with `ENXIO` exactly while there is no
    /// reader — with sleeps growing from 1 ms to 20 ms, then clears `O_NONBLOCK`. The wait is
    /// exact (it ends when a reader is there, not when data flows), at the price of up to 20 ms
    /// of latency.
    pub fn open_write_timeout(&self, timeout: Duration) -> Result<PipeWriter> {
        const OP: &str = "open for writing with a timeout";
        let deadline = Instant::now().checked_add(timeout);
        let mut pause = Duration::from_millis(1);
        loop {
            match self.open(OP, OFlags::WRONLY | OFlags::NONBLOCK) {
                Ok(fd) => {
                    set_nonblocking(fd.as_fd(), false)?;
                    return Ok(PipeWriter { fd });
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => return Err(e),
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Err(self.timed_out(OP, timeout, "no process opened it for reading"));
            }
            std::thread::sleep(left.map_or(pause, |left| left.min(pause)));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Opens the FIFO for reading and waits at most `timeout` until a writer **has written data or
    /// has come and gone**; the reader returned is blocking. Fails with
    /// [`TimedOut`](io::ErrorKind::TimedOut).
    ///
    /// How: `open(path, O_RDONLY | O_NONBLOCK)` always succeeds, and no event tells a reader that
    /// a writer merely opened the FIFO. So this opens non-blocking and `poll`s for `POLLIN` (data)
    /// or `POLLHUP` (a writer closed), then clears `O_NONBLOCK`. Unlike [`open_read`](Self::open_read),
    /// a writer that connects but writes nothing within `timeout` is not noticed: this gives up,
    /// and that writer's next write fails with `EPIPE` if no other reader is there.
    pub fn open_read_timeout(&self, timeout: Duration) -> Result<PipeReader> {
        const OP: &str = "open for reading with a timeout";
        let fd = self.open(OP, OFlags::RDONLY | OFlags::NONBLOCK)?;
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let wait = left.map(|left| {
                Timespec::try_from(left).unwrap_or(Timespec {
                    tv_sec: i64::MAX,
                    tv_nsec: 0,
                })
            });
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            match poll(&mut fds, wait.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::os("poll", self.object(), e)),
            }
            let ready = fds[0].revents();
            if ready.intersects(PollFlags::IN | PollFlags::HUP) {
                set_nonblocking(fd.as_fd(), false)?;
                return Ok(PipeReader { fd });
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(self.timed_out(
                    OP,
                    timeout,
                    "no process wrote to it or opened and closed it",
                ));
            }
        }
    }

    fn timed_out(&self, op: &'static str, timeout: Duration, what: &str) -> Error {
        Error::os(
            op,
            self.object(),
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} within {timeout:?}"),
            ),
        )
    }

    /// `unlink(path)` — removes the FIFO from the file system, after checking that `path` is
    /// still a FIFO (anything else is left alone and reported). Processes that have it open keep
    /// their ends; new processes can no longer find it.
    pub fn remove(&self) -> Result<()> {
        const OP: &str = "unlink";
        let meta =
            std::fs::symlink_metadata(&self.path).map_err(|e| Error::os(OP, self.object(), e))?;
        if !meta.file_type().is_fifo() {
            return Err(Error::os(
                OP,
                self.object(),
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("is {}, not a FIFO; left alone", describe(meta.file_type())),
                ),
            ));
        }
        std::fs::remove_file(&self.path).map_err(|e| Error::os(OP, self.object(), e))
    }

    /// A handle that removes the FIFO when dropped, for the process that created it.
    pub fn into_owned(self) -> OwnedFifo {
        OwnedFifo { fifo: self }
    }
}

/// A [`Fifo`] that is removed ([`Fifo::remove`]) when this handle is dropped, errors ignored.
#[derive(Debug)]
pub struct OwnedFifo {
    fifo: Fifo,
}

impl OwnedFifo {
    /// Gives up ownership: the FIFO is no longer removed on drop.
    pub fn into_inner(self) -> Fifo {
        let mut this = std::mem::ManuallyDrop::new(self);
        // The empty PathBuf left behind owns no memory, so not dropping it leaks nothing.
        Fifo {
            path: std::mem::take(&mut this.fifo.path),
        }
    }

    /// Removes the FIFO now, reporting the error that drop would ignore.
    pub fn remove(self) -> Result<()> {
        self.into_inner().remove()
    }
}

impl Deref for OwnedFifo {
    type Target = Fifo;

    fn deref(&self) -> &Fifo {
        &self.fifo
    }
}

impl Drop for OwnedFifo {
    fn drop(&mut self) {
        let _ = self.fifo.remove();
    }
}

/// An OS error explained in words, for errno values whose standard text misleads ("No such device
/// or address" for a FIFO without a reader). Its `Display` names the errno.
#[derive(Debug)]
struct Explained {
    errno: i32,
    text: &'static str,
}

impl fmt::Display for Explained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.errno {
            libc::ENXIO => "ENXIO",
            libc::ELOOP => "ELOOP",
            _ => "errno",
        };
        write!(f, "{} ({name}, os error {})", self.text, self.errno)
    }
}

impl std::error::Error for Explained {}

fn explained(errno: i32, kind: io::ErrorKind, text: &'static str) -> io::Error {
    io::Error::new(kind, Explained { errno, text })
}
