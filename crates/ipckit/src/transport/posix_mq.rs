//! `posix-mq`: a POSIX message queue, one `mq_send` per message.
//!
//! Priorities say what a message is: a sender's hello (its pid) at priority 2, data at
//! priority 1 and a sender's end of stream (its pid) at priority 0, so the end is received only
//! after every data message sent before it (the kernel hands out the highest priority first,
//! FIFO within one). The queue is named `/ipckit-<name>`; the host (or, by NAME, the receiver)
//! creates it exclusively with the message size the options ask for (at least 4 bytes, for a
//! pid) and unlinks it when its end is dropped.
//!
//! Blocked sends and receives wait in 100 ms slices, by the transports' one rule
//! ([`await_peer`](super::await_peer)): a receiver looks at the queue first and judges the
//! senders that said hello (by pidfd) only when it is empty, then looks once more; it ends when
//! the last of them closed, and gives up when none came within the connect timeout. A POSIX queue
//! does not tell a sender who reads it, so the receiver says it: it holds an open-file-description
//! read lock on the byte of the queue's file at its own pid, which the kernel drops however the
//! receiver ends, SIGKILL included; one `F_OFD_GETLK` tells a sender whether a receiver is there
//! and its pid; a sender looks on each send until it has seen one. A sender's [`close`](super::Sender::close) waits until the queue is empty (the
//! receiver took everything). A sender blocked on a full queue, or closing, fails once the
//! receiver unlinked the queue with messages still in it (it ended), as soon as the receiver it
//! saw holds its lock no more with messages left (it died: [`Error::PeerDied`], within a slice),
//! or after the connect timeout without progress. A message is bounded by `msgsize_max`.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::{as_named, await_peer, no_peer, pid_of, AbortHandle, End, HostImpl, MaxMessage};
use super::{Options, Rendezvous, Role, Senders, TransportKind, SLICE};
use crate::error::{Error, Object, Result};
use crate::ofd_lock;
use crate::posix::mq::{MessageQueue, OwnedMessageQueue};

const HELLO: u32 = 2;
const DATA: u32 = 1;
const END: u32 = 0;
/// A pid's size: the smallest message size a queue is made with.
const PID: usize = 4;
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
    timeout: Duration,
}

pub(super) fn host(role: Role, at: &Rendezvous, options: &Options) -> Result<Box<dyn HostImpl>> {
    let limits = crate::posix::mq::limits()?;
    let size = options
        .get_max_message()
        .clamp(PID, limits.msgsize_max.max(PID));
    let queue = MessageQueue::options()
        .exclusive(true)
        .max_messages(DEPTH.min(limits.msg_max).max(1))
        .message_size(size)
        .open(queue_name(&at.name))?;
    Ok(Box::new(Host {
        role,
        queue: queue.into_owned(),
        timeout: options.get_timeout(),
    }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        crate::posix::display_name(self.queue.name()).into_owned()
    }

    fn establish(self: Box<Self>, _timeout: Option<Duration>) -> Result<End> {
        end(self.role, Queue::Owned(self.queue), self.timeout)
    }
}

pub(super) fn connect(role: Role, rendezvous: &str, options: &Options) -> Result<End> {
    let name = match as_named(TransportKind::PosixMq, rendezvous) {
        Some(at) => queue_name(&at.name),
        None => rendezvous.to_string(),
    };
    let mut opts = MessageQueue::options();
    match role {
        Role::Send => opts.write_only(),
        Role::Recv => opts.read_only(),
    };
    end(
        role,
        Queue::Opened(opts.open(&name)?),
        options.get_timeout(),
    )
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

fn end(role: Role, queue: Queue, timeout: Duration) -> Result<End> {
    let mut ep = Endpoint {
        rx: Vec::new(),
        queue,
        abort: AbortHandle::new(None),
        senders: Senders::new(timeout),
        timeout,
        me: std::process::id(),
        receiver: None,
    };
    Ok(match role {
        Role::Send => {
            ep.send_with(&ep.me.to_le_bytes(), HELLO, "connect")?;
            End::Send(Box::new(ep))
        }
        Role::Recv => {
            // The lock that says "a receiver (pid `me`) reads this queue"; held as long as the
            // queue's descriptor is open. A second receiver in this process finds its byte
            // already read-locked by the first, which is just as good.
            ofd_lock::try_lock_shared(ep.queue.as_fd(), u64::from(ep.me))
                .map_err(|e| Error::os("fcntl(F_OFD_SETLK)", ep.object(), e))?;
            End::Recv(Box::new(ep))
        }
    })
}

struct Endpoint {
    queue: Queue,
    /// The receive buffer, `message_size` bytes, allocated once.
    rx: Vec<u8>,
    abort: AbortHandle,
    /// A receiver's senders.
    senders: Senders,
    timeout: Duration,
    me: u32,
    /// A sender's receiver, by pid, once it was seen holding its lock.
    receiver: Option<u32>,
}

impl Endpoint {
    fn object(&self) -> Object {
        Object::PosixMq(crate::posix::display_name(self.queue.name()).into())
    }

    /// Whether the queue's name no longer leads to this queue: its creator (the receiver, by
    /// NAME) unlinked it, which it does when it ends. `false` when it cannot tell.
    fn unlinked(&self) -> bool {
        let Ok(mine) = rustix::fs::fstat(self.queue.as_fd()) else {
            return false;
        };
        let mut path = std::ffi::OsString::from("/dev/mqueue");
        path.push(self.queue.name());
        match std::fs::metadata(&path) {
            Ok(m) => {
                use std::os::unix::fs::MetadataExt;
                m.ino() != mine.st_ino || m.dev() != mine.st_dev
            }
            // Only when /dev/mqueue is mounted can the name be looked at.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::path::Path::new("/dev/mqueue").is_dir()
            }
            Err(_) => false,
        }
    }

    fn receiver_gone(&self, op: &'static str) -> crate::Error {
        Error::os(
            op,
            self.object(),
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the receiver ended (it unlinked the queue) before it took everything",
            ),
        )
    }

    /// Looks for the receiver's lock and remembers its pid when found: `false` when no
    /// receiver holds one now.
    fn look_for_receiver(&mut self) -> Result<bool> {
        let held = ofd_lock::first_held_by_other(self.queue.as_fd(), 1)
            .map_err(|e| Error::os("fcntl(F_OFD_GETLK)", self.object(), e))?;
        if let Some(pid) = held {
            self.receiver = u32::try_from(pid).ok();
        }
        Ok(held.is_some())
    }

    /// A sender's judgement of its receiver: `Some(PeerDied)` when the receiver it saw holds
    /// its lock no more. A receiver never seen is not judged (it may not have locked yet); the
    /// connect timeout bounds that wait.
    fn receiver_died(&mut self, op: &'static str) -> Result<Option<Error>> {
        if self.look_for_receiver()? {
            return Ok(None);
        }
        Ok(self.receiver.map(|pid| Error::PeerDied {
            op,
            object: self.object(),
            peer: "receiver",
            pid,
        }))
    }

    /// Sends one message, waiting in slices while the queue is full; gives up when the
    /// receiver unlinked the queue, died, or after the connect timeout without room.
    fn send_with(&mut self, msg: &[u8], priority: u32, op: &'static str) -> Result<()> {
        if self.receiver.is_none() {
            // Until the receiver is seen, every send looks (one fcntl): a receiver that dies
            // before the queue fills up is then known, and judged once it is full.
            self.look_for_receiver()?;
        }
        let since = Instant::now();
        loop {
            self.abort.check(op, || self.object())?;
            if self.queue.send_timeout(msg, priority, SLICE)? {
                return Ok(());
            }
            if self.unlinked() {
                return Err(self.receiver_gone(op));
            }
            if let Some(died) = self.receiver_died(op)? {
                // One more look, as the transports' rule says: room made just before it went.
                if self.queue.send_timeout(msg, priority, Duration::ZERO)? {
                    return Ok(());
                }
                return Err(died);
            }
            if since.elapsed() >= self.timeout {
                return Err(no_peer(op, self.object(), "receiver", self.timeout));
            }
        }
    }
}

impl super::SendImpl for Endpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, DATA, "send")
    }

    /// Queues the end marker, then waits until the queue is empty: the receiver took every
    /// message.
    fn close(&mut self) -> Result<()> {
        self.send_with(&self.me.to_le_bytes(), END, "close")?;
        let mut since = Instant::now();
        let mut left = usize::MAX;
        loop {
            self.abort.check("close", || self.object())?;
            let now = self.queue.attr()?.current_messages;
            if now == 0 {
                return Ok(());
            }
            if now < left {
                // Progress: the receiver is taking messages.
                left = now;
                since = Instant::now();
            }
            if self.unlinked() {
                // The receiver took our end marker and then unlinked, or ended without it.
                return if self.queue.attr()?.current_messages == 0 {
                    Ok(())
                } else {
                    Err(self.receiver_gone("close"))
                };
            }
            if let Some(died) = self.receiver_died("close")? {
                // It may have taken the last message (our end marker) and exited cleanly.
                return if self.queue.attr()?.current_messages == 0 {
                    Ok(())
                } else {
                    Err(died)
                };
            }
            if since.elapsed() >= self.timeout {
                return Err(no_peer("close", self.object(), "receiver", self.timeout));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
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
            let object = self.object();
            let queue = &*self.queue;
            let rx = &mut self.rx;
            let abort = &self.abort;
            let senders = &self.senders;
            let (len, priority) = await_peer(
                |wait| queue.recv_timeout(rx, wait.unwrap_or(Duration::ZERO)),
                || abort.check("recv", || object.clone()),
                || senders.judge("recv", || object.clone()),
            )?;
            match priority {
                DATA => {
                    buf.clear();
                    buf.extend_from_slice(&self.rx[..len]);
                    return Ok(Some(len));
                }
                HELLO if len == PID => {
                    if let Some(pid) = pid_of(&self.rx[..PID]) {
                        self.senders.hello(pid);
                    }
                }
                END if len == PID || len == 0 => {
                    if self.senders.end(pid_of(&self.rx[..len])) {
                        return Ok(None);
                    }
                }
                _ => {
                    return Err(Error::corrupt(
                        "recv",
                        self.object(),
                        format!("a message of {len} bytes at priority {priority} (expected a 4-byte hello at 2, data at 1, a 4-byte end at 0)"),
                    ))
                }
            }
        }
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}
