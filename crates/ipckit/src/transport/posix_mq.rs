//! `posix-mq`: a POSIX message queue, one `mq_send` per message.
//!
//! Priorities say what a message is: data goes at priority 1 and the end of stream at priority
//! 0, so the end is received only after every data message sent before it (the kernel hands out
//! the highest priority first, FIFO within one). The queue is named `/ipckit-<name>`; the host
//! (or, by NAME, the receiver) creates it exclusively with the message size the options ask for
//! and unlinks it when its end is dropped. Blocked sends and receives wait in 100 ms slices to
//! notice an abort. A message is bounded by `msgsize_max`.

use std::time::Duration;

use super::{as_named, AbortHandle, End, HostImpl, MaxMessage, Options, Rendezvous, Role};
use super::{TransportKind, SLICE};
use crate::error::{Error, Object, Result};
use crate::posix::mq::{MessageQueue, OwnedMessageQueue};

const DATA: u32 = 1;
const END: u32 = 0;
/// At most this many messages wait in the queue (fewer if `msg_max` is lower).
const DEPTH: usize = 10;

/// The largest message: the kernel's `msgsize_max`.
pub(super) fn max_message() -> MaxMessage {
    match crate::posix::mq::limits() {
        Ok(l) => MaxMessage {
            bytes: l.msgsize_max,
            reason: format!(
                "bounded by msgsize_max ({} bytes, /proc/sys/fs/mqueue/msgsize_max)",
                l.msgsize_max
            ),
        },
        Err(e) => MaxMessage {
            bytes: 0,
            reason: format!("msgsize_max unknown: {e}"),
        },
    }
}

fn queue_name(name: &str) -> String {
    format!("/ipckit-{name}")
}

struct Host {
    role: Role,
    queue: OwnedMessageQueue,
}

pub(super) fn host(role: Role, at: &Rendezvous, options: &Options) -> Result<Box<dyn HostImpl>> {
    let limits = crate::posix::mq::limits()?;
    let size = options
        .get_max_message()
        .clamp(1, limits.msgsize_max.max(1));
    let queue = MessageQueue::options()
        .exclusive(true)
        .max_messages(DEPTH.min(limits.msg_max).max(1))
        .message_size(size)
        .open(&queue_name(&at.name))?;
    Ok(Box::new(Host {
        role,
        queue: queue.into_owned(),
    }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        self.queue.name().to_string()
    }

    fn establish(self: Box<Self>, _timeout: Option<Duration>) -> Result<End> {
        Ok(end(self.role, Queue::Owned(self.queue)))
    }
}

pub(super) fn connect(role: Role, rendezvous: &str, _options: &Options) -> Result<End> {
    let name = match as_named(TransportKind::PosixMq, rendezvous) {
        Some(at) => queue_name(&at.name),
        None => rendezvous.to_string(),
    };
    let mut opts = MessageQueue::options();
    match role {
        Role::Send => opts.write_only(),
        Role::Recv => opts.read_only(),
    };
    Ok(end(role, Queue::Opened(opts.open(&name)?)))
}

/// The queue, unlinked on drop when this end created it.
enum Queue {
    Owned(OwnedMessageQueue),
    Opened(MessageQueue),
}

impl std::ops::Deref for Queue {
    type Target = MessageQueue;
    fn deref(&self) -> &MessageQueue {
        match self {
            Queue::Owned(q) => q,
            Queue::Opened(q) => q,
        }
    }
}

fn end(role: Role, queue: Queue) -> End {
    let ep = Endpoint {
        rx: Vec::new(),
        queue,
        abort: AbortHandle::new(None),
    };
    match role {
        Role::Send => End::Send(Box::new(ep)),
        Role::Recv => End::Recv(Box::new(ep)),
    }
}

struct Endpoint {
    queue: Queue,
    /// The receive buffer, `message_size` bytes, allocated once.
    rx: Vec<u8>,
    abort: AbortHandle,
}

impl Endpoint {
    fn object(&self) -> Object {
        Object::PosixMq(self.queue.name().to_string())
    }

    fn send_with(&mut self, msg: &[u8], priority: u32) -> Result<()> {
        loop {
            self.abort.check("send", || self.object())?;
            if self.queue.send_timeout(msg, priority, SLICE)? {
                return Ok(());
            }
        }
    }
}

impl super::SendImpl for Endpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, DATA)
    }

    fn close(&mut self) -> Result<()> {
        self.send_with(&[], END)
    }

    fn max_message(&self) -> usize {
        self.queue.message_size()
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    fn object(&self) -> Object {
        Endpoint::object(self)
    }
}

impl super::RecvImpl for Endpoint {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        if self.rx.len() != self.queue.message_size() {
            self.rx = vec![0; self.queue.message_size()];
        }
        loop {
            self.abort.check("recv", || self.object())?;
            let Some((len, priority)) = self.queue.recv_timeout(&mut self.rx, SLICE)? else {
                continue;
            };
            return match priority {
                DATA => {
                    buf.clear();
                    buf.extend_from_slice(&self.rx[..len]);
                    Ok(Some(len))
                }
                END if len == 0 => Ok(None),
                _ => Err(Error::corrupt(
                    "recv",
                    self.object(),
                    format!("a message of {len} bytes at priority {priority} (expected 1, or an empty 0)"),
                )),
            };
        }
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}
