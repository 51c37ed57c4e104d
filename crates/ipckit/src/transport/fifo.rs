//! `fifo`: a named pipe in the runtime directory. The side that hosts (or, by NAME, the
//! receiver) creates it and removes it when its end is dropped; the peer opens it by path.
//!
//! Opening a FIFO blocks until the other side opens it too, so the host opens in `establish`,
//! after the peer was started, with a timeout. A reader cannot see a writer arrive, only data, so
//! a sender writes a 4-byte preamble (`IPKF`) right after opening and the receiver checks it: a
//! timed open for reading then ends as soon as the writer is there.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::pipe::PipeSink;
use super::stream::{Confirm, StreamReceiver, StreamSender};
use super::SLICE;
use super::{as_named, AbortHandle, End, HostImpl, Options, Rendezvous, Role, TransportKind};
use crate::error::{Error, Object, Result};
use crate::pipe::{Fifo, OwnedFifo, PipeReader, PipeWriter};

struct Host {
    role: Role,
    fifo: OwnedFifo,
    max: usize,
    capacity: Option<usize>,
    confirm: Duration,
    cancel: Option<AbortHandle>,
}

pub(super) fn host(role: Role, at: &Rendezvous, options: &Options) -> Result<Box<dyn HostImpl>> {
    let path = at.path(".fifo");
    // By NAME, a FIFO left by a receiver that was killed is taken over (it holds no data).
    let fifo = Fifo::options()
        .exclusive(!at.named)
        .create(&path)?
        .into_owned();
    Ok(Box::new(Host {
        role,
        fifo,
        max: options.get_max_message(),
        capacity: options.get_capacity(),
        confirm: options.get_timeout(),
        cancel: options.get_cancel(),
    }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        self.fifo.path().display().to_string()
    }

    fn establish(self: Box<Self>, timeout: Option<Duration>) -> Result<End> {
        let Host {
            role,
            fifo,
            max,
            capacity,
            confirm,
            cancel,
        } = *self;
        let timeout = timeout.unwrap_or(Duration::from_secs(u32::MAX.into()));
        let cancel = cancel.as_ref();
        let end = match role {
            Role::Send => {
                let w = sliced(timeout, cancel, |t| fifo.open_write_timeout(t))?;
                if let Some(n) = capacity {
                    w.set_capacity(n)?;
                }
                sender(w, fifo.path().to_path_buf(), Some(fifo), confirm)?
            }
            Role::Recv => {
                let r = sliced(timeout, cancel, |t| fifo.open_read_timeout(t))?;
                receiver(r, fifo.path().to_path_buf(), max, Some(fifo))?
            }
        };
        Ok(end)
    }
}

/// Runs `open` (a wait of at most the duration it is given) until it succeeds or `timeout` has
/// passed; with a `cancel` handle, in slices of [`SLICE`], failing once it is aborted.
fn sliced<T>(
    timeout: Duration,
    cancel: Option<&AbortHandle>,
    open: impl Fn(Duration) -> Result<T>,
) -> Result<T> {
    let Some(cancel) = cancel else {
        return open(timeout);
    };
    let deadline = Instant::now() + timeout;
    loop {
        cancel.check("open", || Object::Other("FIFO".into()))?;
        let left = deadline.saturating_duration_since(Instant::now());
        match open(left.min(SLICE)) {
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut && left > SLICE => {}
            other => return other,
        }
    }
}

/// What a sender writes first.
const PREAMBLE: &[u8; 4] = b"IPKF";

fn sender(
    w: PipeWriter,
    path: PathBuf,
    owned: Option<OwnedFifo>,
    confirm: Duration,
) -> Result<End> {
    // One sender per FIFO: two writers would interleave their streams. The lock (on the FIFO's
    // inode, released when this process closes it) makes a second sender fail before it writes.
    match rustix::fs::flock(
        w.as_fd(),
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    ) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            return Err(Error::os(
                "flock",
                Object::Path(path.into()),
                std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another sender is writing to this FIFO (a FIFO carries one sender's stream)",
                ),
            ))
        }
        Err(e) => return Err(Error::os("flock", Object::Path(path.into()), e)),
    }
    let drain = w
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::os("F_DUPFD_CLOEXEC", Object::Path(path.as_path().into()), e))?;
    let mut sink = PipeSink::new(w);
    sink.write_all(PREAMBLE)
        .map_err(|e| Error::os("write", Object::Path(path.as_path().into()), e))?;
    Ok(End::Send(Box::new(Owning {
        inner: StreamSender::new(sink, Object::Path(path.into()), AbortHandle::new(None))
            .confirm(Confirm::Drain(drain), confirm),
        _fifo: owned,
    })))
}

fn receiver(mut r: PipeReader, path: PathBuf, max: usize, owned: Option<OwnedFifo>) -> Result<End> {
    let mut preamble = [0u8; 4];
    r.read_exact(&mut preamble)
        .map_err(|e| Error::os("read", Object::Path(path.as_path().into()), e))?;
    if &preamble != PREAMBLE {
        return Err(Error::os(
            "read",
            Object::Path(path.into()),
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the writer is not an ipckit fifo sender (no IPKF preamble)",
            ),
        ));
    }
    Ok(End::Recv(Box::new(Owning {
        inner: StreamReceiver::new(r, max, Object::Path(path.into()), AbortHandle::new(None)),
        _fifo: owned,
    })))
}

pub(super) fn connect(role: Role, rendezvous: &str, options: &Options) -> Result<End> {
    let fifo = match as_named(TransportKind::Fifo, rendezvous) {
        Some(at) => Fifo::new(at.path(".fifo")),
        None => Fifo::new(rendezvous),
    };
    if !fifo.path().exists() {
        return Err(Error::os(
            "open",
            Object::Path(fifo.path().into()),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let deadline = Instant::now() + options.get_timeout();
    let left = || deadline.saturating_duration_since(Instant::now());
    Ok(match role {
        Role::Send => sender(
            sliced(left(), options.get_cancel().as_ref(), |t| {
                fifo.open_write_timeout(t)
            })?,
            fifo.path().into(),
            None,
            options.get_timeout(),
        )?,
        Role::Recv => receiver(
            sliced(left(), options.get_cancel().as_ref(), |t| {
                fifo.open_read_timeout(t)
            })?,
            fifo.path().into(),
            options.get_max_message(),
            None,
        )?,
    })
}

/// An end that keeps the FIFO it created, so the FIFO is removed when the end is dropped.
struct Owning<T> {
    inner: T,
    _fifo: Option<OwnedFifo>,
}

impl<T: super::SendImpl> super::SendImpl for Owning<T> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.inner.send(msg)
    }
    fn close(&mut self) -> Result<()> {
        self.inner.close()
    }
    fn max_message(&self) -> usize {
        self.inner.max_message()
    }
    fn abort_handle(&self) -> AbortHandle {
        self.inner.abort_handle()
    }
    fn object(&self) -> Object {
        self.inner.object()
    }
}

impl<T: super::RecvImpl> super::RecvImpl for Owning<T> {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        self.inner.recv(buf)
    }
    fn abort_handle(&self) -> AbortHandle {
        self.inner.abort_handle()
    }
}
