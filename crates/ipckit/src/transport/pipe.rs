//! `pipe`: an anonymous pipe, created by the host, whose other end the child inherits.
//!
//! The rendezvous is the descriptor number (`fd=7`), which only the `unsafe`
//! `connect_*_inherited` take over (safe code never adopts a descriptor by number). Every ipckit pipe end is close-on-exec;
//! [`Pending::prepare_child`](super::Pending::prepare_child) clears that flag for the child's end
//! only in the child, between `fork` and `exec`, so no other child started meanwhile by another
//! thread inherits it (a stray write end would hold up end of file). The host closes its copy of
//! the child's end in `establish`.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use super::stream::{Confirm, StreamReceiver, StreamSender};
use super::{bad_rendezvous, AbortHandle, End, HostImpl, Options, Role, TransportKind};
use crate::error::{Error, Object, Result};
use crate::pipe::{PipeReader, PipeWriter};
use crate::signal::{self, Disposition, Signal};

struct Host {
    role: Role,
    mine: OwnedFd,
    /// The child's end, until `establish` closes it in this process.
    theirs: OwnedFd,
    max: usize,
    timeout: Duration,
}

pub(super) fn host(role: Role, options: &Options) -> Result<Box<dyn HostImpl>> {
    let (r, w) = crate::pipe::pipe()?;
    if let Some(n) = options.get_capacity() {
        w.set_capacity(n)?;
    }
    let (mine, theirs) = match role {
        Role::Send => (OwnedFd::from(w), OwnedFd::from(r)),
        Role::Recv => (OwnedFd::from(r), OwnedFd::from(w)),
    };
    Ok(Box::new(Host {
        role,
        mine,
        theirs,
        max: options.get_max_message(),
        timeout: options.get_timeout(),
    }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        format!("fd={}", self.theirs.as_raw_fd())
    }

    fn prepare_child(&mut self, cmd: &mut Command) -> Result<()> {
        let fd: RawFd = self.theirs.as_raw_fd();
        let hook = move || -> io::Result<()> {
            // SAFETY: `fd` is open in the parent until `establish` (after the spawn), so the
            // forked child has it too; it is only borrowed for the fcntl call.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).map_err(io::Error::from)
        };
        // SAFETY: the hook runs in the forked child before exec and only calls fcntl, which is
        // async-signal-safe; it allocates nothing and touches no lock.
        unsafe {
            cmd.pre_exec(hook);
        }
        Ok(())
    }

    fn establish(self: Box<Self>, _timeout: Option<Duration>) -> Result<End> {
        let Host {
            role,
            mine,
            theirs,
            max,
            timeout,
        } = *self;
        drop(theirs);
        end(role, mine, max, timeout)
    }
}

fn end(role: Role, fd: OwnedFd, max: usize, timeout: Duration) -> Result<End> {
    let object = Object::Other(format!("pipe (fd {})", fd.as_raw_fd()).into());
    let abort = AbortHandle::new(None);
    Ok(match role {
        Role::Send => {
            let drain = fd
                .try_clone()
                .map_err(|e| Error::os("F_DUPFD_CLOEXEC", object.clone(), e))?;
            End::Send(Box::new(
                StreamSender::new(PipeSink::new(PipeWriter::from(fd)), object, abort)
                    .confirm(Confirm::Drain(drain), timeout),
            ))
        }
        Role::Recv => End::Recv(Box::new(StreamReceiver::new(
            PipeReader::from(fd),
            max,
            object,
            abort,
        ))),
    })
}

/// Takes over the inherited pipe end that `rendezvous` (`fd=N`) names.
///
/// # Safety
/// Descriptor N, if open, was handed to this process for this transport and nothing else in the
/// process owns, uses or closes it (the caller of `connect_*_inherited` guarantees it).
pub(super) unsafe fn adopt(role: Role, rendezvous: &str, options: &Options) -> Result<End> {
    let bad = || {
        bad_rendezvous(
            TransportKind::Pipe,
            rendezvous,
            "fd=N, an inherited pipe end",
        )
    };
    let raw: RawFd = super::field(rendezvous, "fd")
        .and_then(|v| v.parse().ok())
        .filter(|&fd| fd >= 0)
        .ok_or_else(bad)?;
    // SAFETY: the descriptor is only borrowed to check it is open and a pipe; by this fn's
    // contract nothing else closes it meanwhile.
    let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
    let object = || Object::Other(format!("inherited pipe (fd {raw})").into());
    let stat = rustix::fs::fstat(borrowed).map_err(|e| Error::os("fstat", object(), e))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Fifo {
        return Err(Error::invalid("connect", object(), "is not a pipe"));
    }
    // SAFETY: open (fstat succeeded) and, by this fn's contract, owned by nothing else in the
    // process.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    from_owned(role, fd, options)
}

/// An end over a pipe descriptor this process owns.
pub(super) fn from_owned(role: Role, fd: OwnedFd, options: &Options) -> Result<End> {
    let object = || Object::Other(format!("pipe (fd {})", fd.as_raw_fd()).into());
    let stat = rustix::fs::fstat(&fd).map_err(|e| Error::os("fstat", object(), e))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Fifo {
        return Err(Error::invalid("connect", object(), "is not a pipe"));
    }
    // Make it close-on-exec again, so our own children do not inherit it.
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
        .map_err(|e| Error::os("fcntl(F_SETFD)", object(), e))?;
    end(role, fd, options.get_max_message(), options.get_timeout())
}

/// A pipe's write end that writes with one `write(2)` when the process ignores `SIGPIPE` (as
/// Rust programs do: std sets `SIG_IGN` before `main`), where a reader-less pipe already fails
/// with `EPIPE` without the signal; otherwise through [`PipeWriter`], which blocks `SIGPIPE`
/// around each write (two extra system calls).
pub(super) struct PipeSink {
    writer: PipeWriter,
    direct: bool,
}

impl PipeSink {
    pub(super) fn new(writer: PipeWriter) -> PipeSink {
        let direct = matches!(signal::disposition(Signal::PIPE), Ok(Disposition::Ignore));
        PipeSink { writer, direct }
    }
}

impl Write for PipeSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.direct {
            rustix::io::retry_on_intr(|| rustix::io::write(self.writer.as_fd(), buf))
                .map_err(io::Error::from)
        } else {
            self.writer.write(buf)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
