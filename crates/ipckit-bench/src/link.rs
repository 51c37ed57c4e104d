//! What the bench measures through: one side's two directions of a transport, moving checked
//! payloads. Every pattern is written once over [`Link`]; a link is either one of ipckit's
//! transports ([`Sender`] and [`Receiver`], copying messages in and out) or the channel's
//! zero-copy path ([`ZcLink`]: the sender writes each message into the slot it reserved, the
//! receiver checks it where it lies), or the channel awaited on a tokio runtime ([`AsyncLink`]:
//! `channel::tokio`, whose waits sleep on a doorbell instead of the futex).

use std::time::Duration;

use ipckit::channel::{self, Consumer, Producer, Wait};
use ipckit::transport::{AbortHandle, Receiver, Sender, TransportKind};
use ipckit::Object;

use crate::error::{Error, Result};
use crate::payload::{self, Payload};

/// How long a zero-copy wait lasts before it looks at its abort handle again.
const SLICE: Duration = Duration::from_millis(100);

/// The name `channel-zc` has in reports and on the command line.
pub const ZC_NAME: &str = "channel-zc";

/// The name `channel-async` has in reports and on the command line.
pub const ASYNC_NAME: &str = "channel-async";

/// One side's two directions.
pub(crate) trait Link {
    /// Sends message `seq` of `p`'s size, with its send time if `time` (the `wake` pattern).
    fn send(&mut self, p: &mut Payload, seq: u64, time: Option<u64>) -> Result<()>;
    /// Receives the next message and checks it: its sequence number and time word. The end of
    /// the stream here is an error: the other side ended early.
    fn recv(&mut self, size: usize) -> Result<(u64, Option<u64>)>;
    /// Sends back the message last received (message `seq`, of `p`'s size).
    fn echo(&mut self, p: &mut Payload, seq: u64) -> Result<()>;
    /// Closes the sending direction (a channel first waits until its consumer received all).
    fn close_tx(&mut self) -> Result<()>;
    /// Receives the end of the other direction: an error if a message comes instead.
    fn expect_end(&mut self) -> Result<()>;
}

pub(crate) fn peer_error(name: &str, what: impl Into<String>) -> Error {
    Error::invalid(
        "bench",
        Object::Other(format!("{name} transport").into()),
        what,
    )
}

/// One of ipckit's transports: messages are copied into the sender and out of the receiver.
pub(crate) struct IpcLink {
    pub(crate) kind: TransportKind,
    pub(crate) tx: Option<Sender>,
    pub(crate) rx: Receiver,
    pub(crate) buf: Vec<u8>,
}

impl IpcLink {
    fn tx(&mut self) -> Result<&mut Sender> {
        let kind = self.kind;
        self.tx
            .as_mut()
            .ok_or_else(|| peer_error(kind.name(), "send after close"))
    }
}

impl Link for IpcLink {
    fn send(&mut self, p: &mut Payload, seq: u64, time: Option<u64>) -> Result<()> {
        let msg = match time {
            Some(t) => p.stamp_timed(seq, t),
            None => p.stamp(seq),
        };
        Ok(self.tx()?.send(msg)?)
    }

    fn recv(&mut self, size: usize) -> Result<(u64, Option<u64>)> {
        let name = self.kind.name();
        match self.rx.recv_into(&mut self.buf)? {
            None => Err(peer_error(name, "the other side ended the stream early")),
            Some(_) => {
                let seq = payload::check(&self.buf, size).map_err(|e| peer_error(name, e))?;
                Ok((seq, payload::time_of(&self.buf)))
            }
        }
    }

    fn echo(&mut self, _p: &mut Payload, _seq: u64) -> Result<()> {
        let kind = self.kind;
        let tx = self
            .tx
            .as_mut()
            .ok_or_else(|| peer_error(kind.name(), "send after close"))?;
        Ok(tx.send(&self.buf)?)
    }

    fn close_tx(&mut self) -> Result<()> {
        match self.tx.take() {
            Some(tx) => Ok(tx.close()?),
            None => Ok(()),
        }
    }

    fn expect_end(&mut self) -> Result<()> {
        match self.rx.recv_into(&mut self.buf)? {
            None => Ok(()),
            Some(n) => Err(peer_error(
                self.kind.name(),
                format!("a message of {n} bytes after the last cell"),
            )),
        }
    }
}

/// The channel's zero-copy path: [`Producer::reserve`], the message written into the slot,
/// [`SendSlot::commit`](channel::SendSlot::commit); [`Consumer::recv_ref`], the message checked
/// where it lies ([`payload::check_in_place`]), the slot released.
///
/// The sender stamps the message in its own buffer and writes it into the slot once, as the
/// iceoryx2 peer (`benches/peers`) writes a loaned sample; what is not copied is the receive
/// side. Waits are cut into slices so that the watchdog's abort is seen within one.
pub(crate) struct ZcLink {
    pub(crate) producer: Option<Producer>,
    pub(crate) consumer: Consumer,
    pub(crate) abort: AbortHandle,
    /// The last message received, when it was at most 1 KiB (read whole to be checked).
    scratch: Vec<u8>,
    timeout: Duration,
}

/// The channel options both directions are created with: a blocking channel whose lanes hold
/// at least two of the largest messages, as the `channel` transport sizes them.
pub(crate) fn zc_options(max: usize) -> channel::Options {
    let lane = (2 * (max + 8))
        .checked_next_power_of_two()
        .unwrap_or(channel::MAX_LANE_CAPACITY)
        .clamp(channel::DEFAULT_LANE_CAPACITY, channel::MAX_LANE_CAPACITY);
    let mut opts = channel::Options::new();
    opts.lane_capacity(lane).wait(Wait::Blocking);
    opts
}

impl ZcLink {
    pub(crate) fn new(producer: Producer, consumer: Consumer, timeout: Duration) -> ZcLink {
        ZcLink {
            producer: Some(producer),
            consumer,
            abort: AbortHandle::detached(),
            scratch: Vec::new(),
            timeout,
        }
    }

    fn check_abort(&self) -> Result<()> {
        if self.abort.is_aborted() {
            return Err(peer_error(ZC_NAME, "aborted: the peer failed"));
        }
        Ok(())
    }

    /// Reserves `len` bytes, writes `msg()` (of that length) into them and commits.
    fn put(&mut self, len: usize, msg: &[u8]) -> Result<()> {
        loop {
            self.check_abort()?;
            let producer = self
                .producer
                .as_mut()
                .ok_or_else(|| peer_error(ZC_NAME, "send after close"))?;
            match producer.reserve_timeout(len, SLICE) {
                Ok(slot) => {
                    slot.shared().write_at(0, msg)?;
                    slot.commit();
                    return Ok(());
                }
                Err(ipckit::Error::Timeout { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Link for ZcLink {
    fn send(&mut self, p: &mut Payload, seq: u64, time: Option<u64>) -> Result<()> {
        let len = p.bytes().len();
        let msg = match time {
            Some(t) => p.stamp_timed(seq, t),
            None => p.stamp(seq),
        };
        self.put(len, msg)
    }

    fn recv(&mut self, size: usize) -> Result<(u64, Option<u64>)> {
        loop {
            self.check_abort()?;
            match self.consumer.recv_ref_timeout(SLICE) {
                Ok(Some(slot)) => {
                    return payload::check_in_place(&slot.shared(), size, &mut self.scratch)
                        .map_err(|e| peer_error(ZC_NAME, e));
                }
                Ok(None) => {
                    return Err(peer_error(ZC_NAME, "the other side ended the stream early"))
                }
                Err(ipckit::Error::Timeout { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn echo(&mut self, p: &mut Payload, seq: u64) -> Result<()> {
        let len = p.bytes().len();
        if self.scratch.len() == len {
            // Up to 1 KiB the message was read whole: send those bytes back, as a copying
            // transport sends back what it received.
            let msg = std::mem::take(&mut self.scratch);
            let r = self.put(len, &msg);
            self.scratch = msg;
            r
        } else {
            // Above, only its checked words were read: write the same message again.
            let msg = p.stamp(seq);
            self.put(len, msg)
        }
    }

    fn close_tx(&mut self) -> Result<()> {
        match self.producer.take() {
            Some(mut p) => {
                p.wait_consumed(self.timeout)?;
                Ok(p.close()?)
            }
            None => Ok(()),
        }
    }

    fn expect_end(&mut self) -> Result<()> {
        loop {
            self.check_abort()?;
            match self.consumer.recv_ref_timeout(SLICE) {
                Ok(None) => return Ok(()),
                Ok(Some(slot)) => {
                    return Err(peer_error(
                        ZC_NAME,
                        format!("a message of {} bytes after the last cell", slot.len()),
                    ))
                }
                Err(ipckit::Error::Timeout { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The channel awaited: [`channel::tokio::Consumer`] and [`channel::tokio::Producer`] on a
/// current-thread tokio runtime of this link's own, each operation run to completion with
/// `block_on`. Messages are copied in and out as by the `channel` transport, so the two differ
/// only in how a side waits: a doorbell (a datagram, an epoll wake-up) instead of the futex.
/// Waits are cut into slices (the futures are cancel-safe) to see the watchdog's abort.
pub(crate) struct AsyncLink {
    rt: tokio::runtime::Runtime,
    producer: Option<channel::tokio::Producer>,
    consumer: channel::tokio::Consumer,
    pub(crate) abort: AbortHandle,
    buf: Vec<u8>,
    timeout: Duration,
}

impl AsyncLink {
    pub(crate) fn new(
        producer: Producer,
        consumer: Consumer,
        timeout: Duration,
    ) -> Result<AsyncLink> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| peer_error(ASYNC_NAME, format!("tokio runtime: {e}")))?;
        // The doorbells register with this runtime's reactor.
        let _inside = rt.enter();
        let producer = channel::tokio::Producer::new(producer)?;
        let consumer = channel::tokio::Consumer::new(consumer)?;
        drop(_inside);
        Ok(AsyncLink {
            rt,
            producer: Some(producer),
            consumer,
            abort: AbortHandle::detached(),
            buf: Vec::new(),
            timeout,
        })
    }

    fn check_abort(&self) -> Result<()> {
        if self.abort.is_aborted() {
            return Err(peer_error(ASYNC_NAME, "aborted: the peer failed"));
        }
        Ok(())
    }

    fn put(&mut self, msg: &[u8]) -> Result<()> {
        loop {
            self.check_abort()?;
            let producer = self
                .producer
                .as_mut()
                .ok_or_else(|| peer_error(ASYNC_NAME, "send after close"))?;
            // The timer is made inside the runtime (`block_on` enters it).
            let sent = self
                .rt
                .block_on(async { tokio::time::timeout(SLICE, producer.send(msg)).await });
            match sent {
                Ok(sent) => return Ok(sent?),
                Err(_elapsed) => continue,
            }
        }
    }

    /// The next message into `buf`, or `None` at the end of the stream.
    fn take(&mut self) -> Result<Option<usize>> {
        loop {
            self.check_abort()?;
            let (consumer, buf) = (&mut self.consumer, &mut self.buf);
            let got = self
                .rt
                .block_on(async { tokio::time::timeout(SLICE, consumer.recv_into(buf)).await });
            match got {
                Ok(got) => return Ok(got?),
                Err(_elapsed) => continue,
            }
        }
    }
}

impl Link for AsyncLink {
    fn send(&mut self, p: &mut Payload, seq: u64, time: Option<u64>) -> Result<()> {
        let msg = match time {
            Some(t) => p.stamp_timed(seq, t),
            None => p.stamp(seq),
        };
        self.put(msg)
    }

    fn recv(&mut self, size: usize) -> Result<(u64, Option<u64>)> {
        match self.take()? {
            None => Err(peer_error(
                ASYNC_NAME,
                "the other side ended the stream early",
            )),
            Some(_) => {
                let seq = payload::check(&self.buf, size).map_err(|e| peer_error(ASYNC_NAME, e))?;
                Ok((seq, payload::time_of(&self.buf)))
            }
        }
    }

    fn echo(&mut self, _p: &mut Payload, _seq: u64) -> Result<()> {
        let msg = std::mem::take(&mut self.buf);
        let r = self.put(&msg);
        self.buf = msg;
        r
    }

    fn close_tx(&mut self) -> Result<()> {
        match self.producer.take() {
            Some(mut p) => {
                p.get_mut().wait_consumed(self.timeout)?;
                Ok(p.into_inner().close()?)
            }
            None => Ok(()),
        }
    }

    fn expect_end(&mut self) -> Result<()> {
        match self.take()? {
            None => Ok(()),
            Some(n) => Err(peer_error(
                ASYNC_NAME,
                format!("a message of {n} bytes after the last cell"),
            )),
        }
    }
}
