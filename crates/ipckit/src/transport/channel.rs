//! `channel` and `channel-spin`: ipckit's shared-memory channel ([`crate::channel`]), waiting by
//! futex or by busy-polling. The channel is named `/ipckit-<name>` in POSIX shared memory; either
//! side may create it, and the last participant to leave unlinks it, so nothing stays in
//! `/dev/shm`. It has its own end of stream (every producer closed) and reports a dead peer
//! itself. Several senders may feed one receiver; by NAME, a sender waits for the receiver to
//! have created the channel (see `named_sender`). A sender's close first waits until the
//! consumer received everything it sent ([`Producer::wait_consumed`]).

use std::time::Duration;

use super::{as_named, AbortHandle, End, HostImpl, MaxMessage, Options, Rendezvous, Role};
use super::{Receiver, Sender, TransportKind};
use crate::channel::{self, Consumer, Producer, Wait, MAX_LANE_CAPACITY};
use crate::error::{Object, Result};

/// Bytes of a lane that a record header takes.
const RECORD_OVERHEAD: usize = 8;

pub(super) fn max_message() -> MaxMessage {
    MaxMessage {
        bytes: MAX_LANE_CAPACITY - RECORD_OVERHEAD,
        reason: format!(
            "a lane's capacity less {RECORD_OVERHEAD} bytes (lanes are at most {MAX_LANE_CAPACITY} bytes)"
        ),
    }
}

fn channel_name(name: &str) -> String {
    format!("/ipckit-{name}")
}

/// The channel options for these transport options: the lane capacity asked for, or a power of
/// two that holds at least two of the largest messages (at least the channel's default).
fn channel_options(kind: TransportKind, options: &Options) -> channel::Options {
    let lane = options.get_capacity().unwrap_or_else(|| {
        (2 * (options.get_max_message() + RECORD_OVERHEAD))
            .checked_next_power_of_two()
            .unwrap_or(MAX_LANE_CAPACITY)
            .clamp(channel::DEFAULT_LANE_CAPACITY, MAX_LANE_CAPACITY)
    });
    let mut opts = channel::Options::new();
    opts.lane_capacity(lane)
        .wait(if kind == TransportKind::ChannelSpin {
            Wait::Spin
        } else {
            Wait::Blocking
        });
    opts
}

fn attach(kind: TransportKind, role: Role, name: &str, options: &Options) -> Result<End> {
    let opts = channel_options(kind, options);
    let object = Object::PosixShm(name.into());
    Ok(match role {
        Role::Send => End::Send(Box::new(ProducerEnd {
            producer: Some(opts.producer(name)?),
            object,
            abort: AbortHandle::new(None),
            timeout: options.get_timeout(),
        })),
        Role::Recv => End::Recv(Box::new(ConsumerEnd {
            consumer: opts.consumer(name)?,
            object,
            abort: AbortHandle::new(None),
        })),
    })
}

/// The host attaches its side at once (creating the channel); the peer attaches the other.
struct Host {
    name: String,
    end: End,
}

pub(super) fn host(
    kind: TransportKind,
    role: Role,
    at: &Rendezvous,
    options: &Options,
) -> Result<Box<dyn HostImpl>> {
    let name = channel_name(&at.name);
    let end = attach(kind, role, &name, options)?;
    Ok(Box::new(Host { name, end }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        self.name.clone()
    }

    fn establish(self: Box<Self>, _timeout: Option<Duration>) -> Result<End> {
        Ok(self.end)
    }
}

pub(super) fn connect(
    kind: TransportKind,
    role: Role,
    rendezvous: &str,
    options: &Options,
) -> Result<End> {
    let name = match as_named(kind, rendezvous) {
        Some(at) => channel_name(&at.name),
        None => rendezvous.to_string(),
    };
    attach(kind, role, &name, options)
}

pub(super) fn named_receiver(
    kind: TransportKind,
    name: &str,
    options: &Options,
) -> Result<Receiver> {
    attach(kind, Role::Recv, &channel_name(name), options)?.into_receiver()
}

/// A named sender waits (up to the options' timeout) for the receiver to have created the
/// channel before it attaches: a channel whose last participant leaves is unlinked with what it
/// holds, so a sender that created it, sent a short input and closed before any receiver came
/// would lose it all.
pub(super) fn named_sender(kind: TransportKind, name: &str, options: &Options) -> Result<Sender> {
    let channel = channel_name(name);
    // POSIX shared memory objects are files in /dev/shm (shm_overview(7)).
    let file = std::path::Path::new("/dev/shm").join(&channel[1..]);
    let deadline = std::time::Instant::now() + options.get_timeout();
    while !file.exists() {
        options.check_cancel("wait for the receiver", || {
            Object::PosixShm(channel.as_str().into())
        })?;
        if std::time::Instant::now() >= deadline {
            return Err(crate::Error::Timeout {
                op: "wait for the receiver",
                object: Object::PosixShm(channel.into()),
                timeout: options.get_timeout(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    attach(kind, Role::Send, &channel, options)?.into_sender()
}

struct ProducerEnd {
    /// `None` once closed.
    producer: Option<Producer>,
    object: Object,
    abort: AbortHandle,
    /// How long `close` waits for the consumer to receive what was sent.
    timeout: Duration,
}

impl ProducerEnd {
    fn producer(&mut self) -> Result<&mut Producer> {
        self.abort.check("send", || self.object.clone())?;
        self.producer.as_mut().ok_or_else(|| crate::Error::Closed {
            op: "send",
            object: self.object.clone(),
            reason: "this sender was closed",
        })
    }
}

impl super::SendImpl for ProducerEnd {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.producer()?.send(msg)
    }

    /// Waits (up to the connect timeout) until the consumer received everything this producer
    /// sent, then closes: `Ok` means delivered. An error if the consumer closed or died first.
    fn close(&mut self) -> Result<()> {
        match self.producer.take() {
            Some(mut p) => {
                p.wait_consumed(self.timeout)?;
                p.close()
            }
            None => Ok(()),
        }
    }

    fn max_message(&self) -> usize {
        self.producer.as_ref().map_or(0, |p| p.max_message_size())
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    fn object(&self) -> Object {
        self.object.clone()
    }
}

struct ConsumerEnd {
    consumer: Consumer,
    object: Object,
    abort: AbortHandle,
}

impl super::RecvImpl for ConsumerEnd {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        // In slices, so that an abort (a watchdog, a signal) is noticed within one.
        loop {
            self.abort.check("recv", || self.object.clone())?;
            match self.consumer.recv_into_timeout(buf, super::SLICE) {
                Err(crate::Error::Timeout { .. }) => continue,
                other => return other,
            }
        }
    }

    #[inline]
    fn recv_ready(&mut self, buf: &mut Vec<u8>) -> Option<usize> {
        // An aborted receiver fails, as `recv` does, rather than take what is waiting.
        if self.abort.is_aborted() {
            return None;
        }
        self.consumer.recv_into_ready(buf)
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}
