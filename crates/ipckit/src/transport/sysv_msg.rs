//! `sysv-msg`: a System V message queue, one `msgsnd` per message.
//!
//! Message types say what a message is, and the receiver takes the lowest type first
//! (`msgrcv(…, -3)`): 1 an abort (so it overtakes everything), 2 data (in order), 3 the end of
//! stream (so it comes only after every data message sent before it). The host creates a private
//! queue and passes its id (`msg=ID`); by NAME the receiver creates the queue under a key derived
//! from the name, exclusively. The creator removes it when its end is dropped. A message is
//! bounded by `msgmax`.

use std::sync::Arc;
use std::time::Duration;

use super::{aborted, as_named, bad_rendezvous, name_key, AbortHandle, End, HostImpl, MaxMessage};
use super::{Options, Rendezvous, Role, TransportKind};
use crate::error::{Object, Result};
use crate::sysv::msg::{MsgQueue, OwnedMsgQueue};

const ABORT: i64 = 1;
const DATA: i64 = 2;
const END: i64 = 3;
/// Salt of the key derived from a NAME.
const SALT: u8 = b'q';

/// The largest message: the kernel's `msgmax`.
pub(super) fn max_message() -> MaxMessage {
    match crate::inspect::limits() {
        Ok(l) => MaxMessage {
            bytes: l.msgmax as usize,
            reason: format!(
                "bounded by msgmax ({} bytes, /proc/sys/kernel/msgmax)",
                l.msgmax
            ),
        },
        Err(e) => MaxMessage {
            bytes: 0,
            reason: format!("msgmax unknown: {e}"),
        },
    }
}

struct Host {
    role: Role,
    queue: OwnedMsgQueue,
}

pub(super) fn host(role: Role, at: &Rendezvous, _options: &Options) -> Result<Box<dyn HostImpl>> {
    let queue = if at.named {
        MsgQueue::create_exclusive(name_key(&at.name, SALT))?
    } else {
        MsgQueue::create(crate::Key::PRIVATE)?
    };
    Ok(Box::new(Host {
        role,
        queue: queue.into_owned(),
    }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        format!("msg={}", self.queue.id())
    }

    fn establish(self: Box<Self>, _timeout: Option<Duration>) -> Result<End> {
        let queue = *self.queue;
        Ok(end(self.role, queue, Some(self.queue)))
    }
}

fn end(role: Role, queue: MsgQueue, owned: Option<OwnedMsgQueue>) -> End {
    // An abort wakes a blocked peer of ours: the owner removes the queue (EIDRM wakes senders
    // and receivers alike); anyone else queues an abort message for a blocked receiver.
    let owner = owned.is_some();
    let abort = AbortHandle::new(Some(Arc::new(move || {
        if owner {
            let _ = queue.remove();
        } else {
            let _ = queue.try_send(ABORT, &[]);
        }
    })));
    let max = max_message().bytes;
    let ep = Endpoint {
        queue,
        _owned: owned,
        abort,
        max,
    };
    match role {
        Role::Send => End::Send(Box::new(ep)),
        Role::Recv => End::Recv(Box::new(ep)),
    }
}

pub(super) fn connect(role: Role, rendezvous: &str, _options: &Options) -> Result<End> {
    let queue = match as_named(TransportKind::SysvMsg, rendezvous) {
        Some(at) => MsgQueue::open(name_key(&at.name, SALT))?,
        None => {
            let id = super::field(rendezvous, "msg")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad_rendezvous(TransportKind::SysvMsg, rendezvous, "msg=ID"))?;
            MsgQueue::from_id(id)
        }
    };
    Ok(end(role, queue, None))
}

struct Endpoint {
    queue: MsgQueue,
    _owned: Option<OwnedMsgQueue>,
    abort: AbortHandle,
    max: usize,
}

impl Endpoint {
    fn object(&self) -> Object {
        Object::MsgId(self.queue.id())
    }

    /// An error after an abort is reported as the abort (the removal caused it).
    fn after_abort(&self, op: &'static str, e: crate::Error) -> crate::Error {
        if self.abort.is_aborted() {
            aborted(op, self.object())
        } else {
            e
        }
    }
}

impl super::SendImpl for Endpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.abort.check("send", || self.object())?;
        self.queue
            .send(DATA, msg)
            .map_err(|e| self.after_abort("send", e))
    }

    /// Queues the end marker. When this end created the queue (and so removes it on drop), it
    /// then waits until the queue is empty — the receiver took everything — for up to the
    /// linger time, so that dropping it does not destroy messages still in flight.
    fn close(&mut self) -> Result<()> {
        self.queue
            .send(END, &[])
            .map_err(|e| self.after_abort("send", e))?;
        if self._owned.is_some() {
            let deadline = std::time::Instant::now() + super::LINGER;
            while std::time::Instant::now() < deadline && !self.abort.is_aborted() {
                match self.queue.stat() {
                    Ok(st) if st.messages > 0 => std::thread::sleep(Duration::from_millis(1)),
                    _ => break,
                }
            }
        }
        Ok(())
    }

    fn max_message(&self) -> usize {
        self.max
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
        self.abort.check("recv", || self.object())?;
        let msg = self
            .queue
            .recv(-END)
            .map_err(|e| self.after_abort("recv", e))?;
        match msg.mtype {
            DATA => {
                *buf = msg.data;
                Ok(Some(buf.len()))
            }
            END => Ok(None),
            _ => Err(aborted("recv", self.object())),
        }
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}
