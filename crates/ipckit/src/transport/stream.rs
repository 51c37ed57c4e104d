//! Length-prefixed frames over a byte stream (pipe, FIFO, Unix stream socket, TCP).
//!
//! ```text
//! | len: u32 little-endian | len bytes |      one message (len < u32::MAX)
//! | 0xffff_ffff |                            end of stream
//! ```
//! A stream that ends (read returns 0) before the end-of-stream frame was sent by a sender that
//! went away without closing; one that ends inside a frame was cut. Both are errors. The receiver
//! reads through a 64 KiB buffer, so a burst of small frames costs one `read`; the sender writes
//! each message with one `write` (header and payload copied together up to 16 KiB, two writes
//! above, where the copy would cost more than the second call).
//!
//! **Delivery.** A sender's close does not return `Ok` before the receiver took the end marker
//! ([`Confirm`]): over a socket the receiver answers the marker with one byte; over a pipe or
//! FIFO, which only go one way, the sender waits until the pipe is empty (`FIONREAD`). Either
//! wait fails at once when the receiver is gone (end of file, reset, a pipe without readers) and
//! after the connect timeout without progress.

use std::io::{self, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use super::{ended_without_marker, no_peer, AbortHandle, RecvImpl, SendImpl, SLICE};
use crate::error::{Error, Object, Result};

/// The largest message a frame can carry: `u32::MAX` is the end marker.
pub(crate) const MAX_FRAME: usize = (u32::MAX - 1) as usize;
/// The header value that ends the stream.
const END: u32 = u32::MAX;
/// Up to this size, header and payload are copied into one buffer and written at once.
const COPY_LIMIT: usize = 16 * 1024;
/// The receiver's read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// How a sender's close learns that the receiver took the end marker.
pub(crate) enum Confirm {
    /// Not at all (the stream's own close is all there is).
    None,
    /// A socket (a second descriptor of it): the receiver answers the end marker with one byte.
    Reply(OwnedFd),
    /// A pipe's or FIFO's write end: the pipe is empty once the receiver read everything.
    Drain(OwnedFd),
}

/// The sending side of a framed stream.
pub(crate) struct StreamSender<W> {
    writer: W,
    scratch: Vec<u8>,
    object: Object,
    abort: AbortHandle,
    confirm: Confirm,
    timeout: Duration,
}

impl<W: Write + Send> StreamSender<W> {
    pub(crate) fn new(writer: W, object: Object, abort: AbortHandle) -> StreamSender<W> {
        StreamSender {
            writer,
            scratch: Vec::new(),
            object,
            abort,
            confirm: Confirm::None,
            timeout: Duration::MAX,
        }
    }

    /// Makes `close` wait (up to `timeout` without progress) for the receiver to take the end.
    pub(crate) fn confirm(mut self, confirm: Confirm, timeout: Duration) -> Self {
        self.confirm = confirm;
        self.timeout = timeout;
        self
    }

    /// The error of a receiver that went away before it took the end marker.
    fn gone(&self) -> Error {
        Error::os(
            "close",
            self.object.clone(),
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the receiver went away before it took the end of stream",
            ),
        )
    }

    /// Waits for the receiver's one-byte answer to the end marker.
    fn await_reply(&self, fd: &OwnedFd) -> Result<()> {
        let since = Instant::now();
        loop {
            self.abort.check("close", || self.object.clone())?;
            if super::wait_readable(std::os::fd::AsFd::as_fd(fd), Some(SLICE), || {
                self.object.clone()
            })? {
                let mut byte = [0u8; 1];
                return match rustix::io::retry_on_intr(|| rustix::io::read(fd, &mut byte)) {
                    Ok(1) => Ok(()),
                    Ok(_) => Err(self.gone()),
                    Err(rustix::io::Errno::CONNRESET) => Err(self.gone()),
                    Err(e) => Err(Error::os("read", self.object.clone(), e)),
                };
            }
            if since.elapsed() >= self.timeout {
                return Err(no_peer(
                    "close",
                    self.object.clone(),
                    "receiver",
                    self.timeout,
                ));
            }
        }
    }

    fn await_drain(&self, fd: &OwnedFd) -> Result<()> {
        await_drain(fd, &self.abort, &self.object, self.timeout)
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .write_all(bytes)
            .map_err(|e| Error::os("write", self.object.clone(), e))
    }
}

impl<W: Write + Send> SendImpl for StreamSender<W> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.abort.check("send", || self.object.clone())?;
        // `msg.len() <= MAX_FRAME` was checked by `Sender::send`.
        let header = (msg.len() as u32).to_le_bytes();
        if msg.len() <= COPY_LIMIT {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            scratch.extend_from_slice(&header);
            scratch.extend_from_slice(msg);
            let r = self.write_all(&scratch);
            self.scratch = scratch;
            r
        } else {
            self.write_all(&header)?;
            self.write_all(msg)
        }
    }

    fn close(&mut self) -> Result<()> {
        self.write_all(&END.to_le_bytes())?;
        self.writer
            .flush()
            .map_err(|e| Error::os("flush", self.object.clone(), e))?;
        match &self.confirm {
            Confirm::None => Ok(()),
            Confirm::Reply(fd) => self.await_reply(fd),
            Confirm::Drain(fd) => self.await_drain(fd),
        }
    }

    fn max_message(&self) -> usize {
        MAX_FRAME
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    fn object(&self) -> Object {
        self.object.clone()
    }
}

/// The receiving side of a framed stream.
pub(crate) struct StreamReceiver<R> {
    reader: BufReader<R>,
    max: usize,
    object: Object,
    abort: AbortHandle,
    /// A socket: answer the end marker with one byte on it.
    reply: Option<OwnedFd>,
}

impl<R: Read + Send> StreamReceiver<R> {
    /// Frames longer than `max` are refused as corrupt (nothing is allocated for them).
    pub(crate) fn new(reader: R, max: usize, object: Object, abort: AbortHandle) -> Self {
        StreamReceiver {
            reader: BufReader::with_capacity(READ_BUFFER, reader),
            max,
            object,
            abort,
            reply: None,
        }
    }

    /// Answers the end marker with one byte on `fd` (a socket the sender reads).
    pub(crate) fn reply(mut self, fd: OwnedFd) -> Self {
        self.reply = Some(fd);
        self
    }

    /// Fills `buf` completely; the number of bytes read before end of file otherwise.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.reader.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::os("read", self.object.clone(), e)),
            }
        }
        Ok(done)
    }

    fn cut(&self, what: &str, got: usize, want: usize) -> Error {
        Error::os(
            "read",
            self.object.clone(),
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the stream ended inside a frame ({what}: {got} of {want} bytes)"),
            ),
        )
    }
}

impl<R: Read + Send> RecvImpl for StreamReceiver<R> {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        self.abort.check("recv", || self.object.clone())?;
        let mut header = [0u8; 4];
        match self.fill(&mut header)? {
            0 => {
                self.abort.check("recv", || self.object.clone())?;
                return Err(ended_without_marker("recv", self.object.clone()));
            }
            4 => {}
            n => return Err(self.cut("header", n, 4)),
        }
        let len = u32::from_le_bytes(header);
        if len == END {
            if let Some(fd) = &self.reply {
                // The sender's close waits for this; a sender already gone does not care.
                let _ = rustix::net::send(
                    fd,
                    &[1],
                    rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::DONTWAIT,
                );
            }
            return Ok(None);
        }
        let len = len as usize;
        if len > self.max {
            return Err(Error::TooLarge {
                op: "recv",
                object: self.object.clone(),
                what: "frame",
                len,
                limit: self.max,
                limit_name: "the receiver's largest message",
            });
        }
        // Reuse the buffer: growing zero-fills only the new part, once.
        buf.resize(len, 0);
        let got = self.fill(&mut buf[..len])?;
        if got < len {
            return Err(self.cut("payload", got, len));
        }
        Ok(Some(len))
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}

/// Waits until the pipe or FIFO whose write end is `fd` is empty: its reader read everything.
/// Fails when the reader goes away first (`POLLERR` on the write end), when `abort` is set, and
/// after `timeout` without progress.
pub(super) fn await_drain(
    fd: &OwnedFd,
    abort: &AbortHandle,
    object: &Object,
    timeout: Duration,
) -> Result<()> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut since = Instant::now();
    let mut left = u64::MAX;
    loop {
        abort.check("close", || object.clone())?;
        let queued = rustix::io::ioctl_fionread(fd)
            .map_err(|e| Error::os("ioctl(FIONREAD)", object.clone(), e))?;
        if queued == 0 {
            return Ok(());
        }
        if queued < left {
            left = queued;
            since = Instant::now();
        }
        // POLLERR on a write end: no reader any more.
        let mut fds = [PollFd::new(fd, PollFlags::empty())];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
            && fds[0].revents().contains(PollFlags::ERR)
        {
            return Err(Error::os(
                "close",
                object.clone(),
                io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the receiver went away before it read everything",
                ),
            ));
        }
        if since.elapsed() >= timeout {
            return Err(no_peer("close", object.clone(), "receiver", timeout));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
