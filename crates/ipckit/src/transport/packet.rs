//! One message per packet (`SOCK_SEQPACKET`, `SOCK_DGRAM`), with a tag byte after the payload.
//!
//! ```text
//! | payload | tag: 0 data, 1 end of stream |
//! ```
//! An empty message and end of file look the same to `recv` on these sockets (both read 0
//! bytes), so the tag makes the end explicit. It travels as a second `iovec` of the same
//! `sendmsg`, so the payload is not copied to append it; the receiver reads straight into the
//! caller's buffer (`MSG_TRUNC` reports a packet longer than the buffer instead of cutting it
//! silently). Receives wait in slices of 100 ms (`SO_RCVTIMEO`) to notice an abort.

use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendFlags};

use super::{ended_without_marker, AbortHandle, RecvImpl, SendImpl, SLICE};
use crate::error::{Error, Object, Result};

const DATA: u8 = 0;
const END: u8 = 1;

/// The sending side, over a connected socket.
pub(super) struct PacketSender {
    pub(super) fd: OwnedFd,
    pub(super) max: usize,
    pub(super) object: Object,
    pub(super) abort: AbortHandle,
}

impl PacketSender {
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
        self.send_tagged(&[], END)
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
            _keep: keep,
        })
    }
}

impl RecvImpl for PacketReceiver {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        let room = self.max + 1;
        loop {
            self.abort.check("recv", || self.object.clone())?;
            buf.clear();
            buf.reserve(room);
            let limit = buf.capacity();
            let got = rustix::net::recv(
                self.fd.as_fd(),
                rustix::buffer::spare_capacity(buf),
                RecvFlags::TRUNC,
            );
            let len = match got {
                Ok((_, len)) => len,
                Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::os("recv", self.object.clone(), e)),
            };
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
            return match tag {
                DATA => Ok(Some(len - 1)),
                END if len == 1 => Ok(None),
                _ => Err(Error::corrupt(
                    "recv",
                    self.object.clone(),
                    format!("packet of {len} bytes with tag {tag} (expected 0 for data, 1 alone for the end)"),
                )),
            };
        }
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}
