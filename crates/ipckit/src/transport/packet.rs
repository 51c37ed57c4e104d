//! One message per packet (`SOCK_SEQPACKET`, `SOCK_DGRAM`), with a tag byte after the payload.
//!
//! ```text
//! | payload | tag: 0 data, 1 end of stream, 2 hello |
//! ```
//! An empty message and end of file look the same to `recv` on these sockets (both read 0
//! bytes), so the tag makes the end explicit. It travels as a second `iovec` of the same
//! `sendmsg`, so the payload is not copied to append it; the receiver reads straight into the
//! caller's buffer (`MSG_TRUNC` reports a packet longer than the buffer instead of cutting it
//! silently). Receives wait in slices of 100 ms (`SO_RCVTIMEO`) to notice an abort.
//!
//! Datagrams have no connection, so no end of file when a sender dies: there each sender sends a
//! hello carrying its pid when it connects, and its pid with its end marker. The receiver watches
//! the senders that said hello (by pidfd) by the transports' one rule
//! ([`await_peer`](super::await_peer)): what is queued first, then liveness, then one more look;
//! it ends when the last of them closed, and gives up when none came within the connect
//! timeout.

use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendFlags};

use super::SLICE;
use super::{await_peer, ended_without_marker, pid_of, AbortHandle, RecvImpl, SendImpl, Senders};
use crate::error::{Error, Object, Result};

const DATA: u8 = 0;
const END: u8 = 1;
const HELLO: u8 = 2;

/// The sending side, over a connected socket.
pub(super) struct PacketSender {
    pub(super) fd: OwnedFd,
    pub(super) max: usize,
    pub(super) object: Object,
    pub(super) abort: AbortHandle,
    /// Datagrams: announce this process (hello, and its pid with the end marker).
    pub(super) announce: bool,
    /// Connected sockets: `close` waits (up to this long) for the receiver's one-byte answer
    /// to the end marker.
    pub(super) confirm: Option<std::time::Duration>,
}

impl PacketSender {
    /// Sends the hello of a datagram sender.
    pub(super) fn hello(&mut self) -> Result<()> {
        if self.announce {
            self.send_tagged(&std::process::id().to_le_bytes(), HELLO)?;
        }
        Ok(())
    }

    fn send_tagged(&mut self, payload: &[u8], tag: u8) -> Result<()> {
        self.abort.check("send", || self.object.clone())?;
        let tag = [tag];
        let iov = [IoSlice::new(payload), IoSlice::new(&tag)];
        let sent = loop {
            match rustix::net::sendmsg(
                &self.fd,
                &iov,
                &mut SendAncillaryBuffer::default(),
                SendFlags::NOSIGNAL,
            ) {
                Ok(n) => break n,
                // The receiver's queue is full: SO_SNDTIMEO ended a 100 ms slice; check for an
                // abort and wait again.
                Err(Errno::AGAIN) | Err(Errno::INTR) => {
                    self.abort.check("send", || self.object.clone())?;
                }
                Err(e) => return Err(Error::os("sendmsg", self.object.clone(), e)),
            }
        };
        if sent != payload.len() + 1 {
            return Err(Error::os(
                "sendmsg",
                self.object.clone(),
                std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("sent {sent} of {} bytes of one packet", payload.len() + 1),
                ),
            ));
        }
        Ok(())
    }
}

impl SendImpl for PacketSender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_tagged(msg, DATA)
    }
    fn close(&mut self) -> Result<()> {
        if self.announce {
            self.send_tagged(&std::process::id().to_le_bytes(), END)?;
        } else {
            self.send_tagged(&[], END)?;
        }
        let Some(timeout) = self.confirm else {
            return Ok(());
        };
        let since = std::time::Instant::now();
        let gone = || {
            Error::os(
                "close",
                self.object.clone(),
                std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the receiver went away before it took the end of stream",
                ),
            )
        };
        loop {
            self.abort.check("close", || self.object.clone())?;
            let mut byte = [0u8; 1];
            match rustix::net::recv(&self.fd, &mut byte[..], RecvFlags::DONTWAIT) {
                Ok((_, 1)) => return Ok(()),
                Ok(_) | Err(Errno::CONNRESET) => return Err(gone()),
                Err(Errno::AGAIN) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::os("recv", self.object.clone(), e)),
            }
            if since.elapsed() >= timeout {
                return Err(super::no_peer(
                    "close",
                    self.object.clone(),
                    "receiver",
                    timeout,
                ));
            }
            super::wait_readable(self.fd.as_fd(), Some(SLICE), || self.object.clone())?;
        }
    }
    fn max_message(&self) -> usize {
        self.max
    }
    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
    fn object(&self) -> Object {
        self.object.clone()
    }
}

/// The receiving side. `stream_like`: a read of 0 bytes means the peer closed (seqpacket); for
/// datagrams there is no such thing.
pub(super) struct PacketReceiver {
    fd: OwnedFd,
    max: usize,
    object: Object,
    abort: AbortHandle,
    stream_like: bool,
    /// Datagrams: the senders that said hello.
    senders: Senders,
    /// Kept open for the lifetime of this end (a datagram socket's bound file, removed on drop).
    _keep: Option<Box<dyn Send>>,
}

impl PacketReceiver {
    pub(super) fn new(
        fd: OwnedFd,
        max: usize,
        object: Object,
        stream_like: bool,
        keep: Option<Box<dyn Send>>,
        timeout: std::time::Duration,
    ) -> Result<PacketReceiver> {
        rustix::net::sockopt::set_socket_timeout(
            &fd,
            rustix::net::sockopt::Timeout::Recv,
            Some(SLICE),
        )
        .map_err(|e| Error::os("setsockopt(SO_RCVTIMEO)", object.clone(), e))?;
        Ok(PacketReceiver {
            fd,
            max,
            object,
            abort: AbortHandle::new(None),
            stream_like,
            senders: Senders::new(timeout),
            _keep: keep,
        })
    }
}

impl RecvImpl for PacketReceiver {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        let room = self.max + 1;
        loop {
            let fd = self.fd.as_fd();
            let object = &self.object;
            let abort = &self.abort;
            let senders = &self.senders;
            let stream_like = self.stream_like;
            let got = await_peer(
                |wait| {
                    buf.clear();
                    buf.reserve(room);
                    // A slice is SO_RCVTIMEO; the last look does not wait.
                    let flags = match wait {
                        Some(_) => RecvFlags::TRUNC,
                        None => RecvFlags::TRUNC | RecvFlags::DONTWAIT,
                    };
                    match rustix::net::recv(fd, rustix::buffer::spare_capacity(&mut *buf), flags) {
                        Ok((_, len)) => Ok(Some(len)),
                        Err(Errno::AGAIN) | Err(Errno::INTR) => Ok(None),
                        Err(e) => Err(Error::os("recv", object.clone(), e)),
                    }
                },
                || abort.check("recv", || object.clone()),
                || {
                    (!stream_like)
                        .then(|| senders.judge("recv", || object.clone()))
                        .flatten()
                },
            )?;
            let limit = buf.capacity();
            let len = got;
            if len == 0 {
                if self.stream_like {
                    return Err(ended_without_marker("recv", self.object.clone()));
                }
                return Err(Error::corrupt(
                    "recv",
                    self.object.clone(),
                    "an empty datagram (no tag byte)",
                ));
            }
            if len > limit || len > room {
                return Err(Error::TooLarge {
                    op: "recv",
                    object: self.object.clone(),
                    what: "packet",
                    len: len - 1,
                    limit: self.max,
                    limit_name: "the receiver's largest message",
                });
            }
            let tag = buf[len - 1];
            buf.truncate(len - 1);
            match tag {
                DATA => return Ok(Some(len - 1)),
                END if len == 1 => {
                    if self.stream_like {
                        // The sender's close waits for this answer; one already gone does not.
                        let _ = rustix::net::send(
                            &self.fd,
                            &[1],
                            SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
                        );
                    }
                    return Ok(None);
                }
                END if len == 5 && !self.stream_like => {
                    if self.senders.end(pid_of(buf)) {
                        buf.clear();
                        return Ok(None);
                    }
                }
                HELLO if len == 5 && !self.stream_like => {
                    if let Some(pid) = pid_of(buf) {
                        self.senders.hello(pid);
                    }
                }
                _ => {
                    return Err(Error::corrupt(
                        "recv",
                        self.object.clone(),
                        format!("packet of {len} bytes with tag {tag} (expected 0 for data, 1 for the end, 2 for a hello)"),
                    ))
                }
            }
        }
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}
