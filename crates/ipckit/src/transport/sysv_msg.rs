//! `sysv-msg`: a System V message queue, one `msgsnd` per message.
//!
//! Message types say what a message is, and the receiver takes the lowest type first
//! (`msgrcv(…, -4)`): 1 an abort or a watchdog's wake-up (so it overtakes everything), 2 a
//! sender's hello (its pid), 3 data (in order), 4 a sender's end of stream (its pid; so it comes
//! only after every data message sent before it). Types above [`ACK`] are acknowledgements the
//! receiver queues for one sender (`ACK + pid`) when it took that sender's end marker; the
//! receiver's selector never takes them.
//!
//! **Dead peers.** `msgrcv` cannot be given a timeout, so a receiver runs a watchdog thread that
//! looks at the senders that said hello every 100 ms (by pidfd) and, when one is gone (or none
//! came within the connect timeout), queues a wake-up. Woken, the receiver drains what is queued
//! without waiting and only then reports the death: a sender that queued its end marker and
//! exited closed cleanly. A sender whose queue is full waits in short sleeps and gives up when the
//! last receiver (`msg_lrpid`) is gone, the queue was removed, or no receiver ever took a message
//! within the connect timeout.
//!
//! **Delivery.** [`close`](super::Sender::close) queues the end marker and waits (bounded) for the
//! receiver's acknowledgement, so `Ok` means the receiver took every message. A receiver that
//! created the queue waits (at most 1 s) for its acknowledgements to be taken before it removes
//! the queue on drop.
//!
//! The host creates a private queue and passes its id (`msg=ID`); by NAME the receiver creates the
//! queue under a key derived from the name, exclusively. The creator removes it when its end is
//! dropped. A message is bounded by `msgmax`.

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::SLICE;
use super::{aborted, as_named, bad_rendezvous, name_key, no_peer, pid_of, AbortHandle, End};
use super::{HostImpl, MaxMessage, Options, Peer, Rendezvous, Role, Senders, TransportKind};
use crate::error::{Error, Object, Result};
use crate::sysv::msg::{MsgQueue, OwnedMsgQueue, RecvOptions};

const ABORT: i64 = 1;
const HELLO: i64 = 2;
const DATA: i64 = 3;
const END: i64 = 4;
/// `ACK + pid` acknowledges the end marker of sender `pid`.
const ACK: i64 = 1 << 32;
/// What a watchdog's wake-up carries (an abort carries nothing).
const WAKE: &[u8] = b"w";
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
    timeout: Duration,
}

pub(super) fn host(role: Role, at: &Rendezvous, options: &Options) -> Result<Box<dyn HostImpl>> {
    let queue = if at.named {
        MsgQueue::create_exclusive(name_key(&at.name, SALT))?
    } else {
        MsgQueue::create(crate::Key::PRIVATE)?
    };
    Ok(Box::new(Host {
        role,
        queue: queue.into_owned(),
        timeout: options.get_timeout(),
    }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        format!("msg={}", self.queue.id())
    }

    fn establish(self: Box<Self>, _timeout: Option<Duration>) -> Result<End> {
        let queue = *self.queue;
        end(self.role, queue, Some(self.queue), self.timeout)
    }
}

fn end(
    role: Role,
    queue: MsgQueue,
    owned: Option<OwnedMsgQueue>,
    timeout: Duration,
) -> Result<End> {
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
    Ok(match role {
        Role::Send => {
            let mut tx = SendEnd {
                queue,
                _owned: owned,
                abort,
                max,
                timeout,
                me: std::process::id(),
            };
            tx.put(HELLO, &tx.me.to_le_bytes(), "connect")?;
            End::Send(Box::new(tx))
        }
        Role::Recv => {
            let senders = Arc::new(Mutex::new(Senders::new(timeout)));
            let watchdog = Watchdog::start(queue, Arc::clone(&senders));
            End::Recv(Box::new(RecvEnd {
                queue,
                owned,
                abort,
                senders,
                suspect: false,
                watchdog: Some(watchdog),
            }))
        }
    })
}

pub(super) fn connect(role: Role, rendezvous: &str, options: &Options) -> Result<End> {
    let queue = match as_named(TransportKind::SysvMsg, rendezvous) {
        Some(at) => MsgQueue::open(name_key(&at.name, SALT))?,
        None => {
            let id = super::field(rendezvous, "msg")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad_rendezvous(TransportKind::SysvMsg, rendezvous, "msg=ID"))?;
            MsgQueue::from_id(id)
        }
    };
    end(role, queue, None, options.get_timeout())
}

struct SendEnd {
    queue: MsgQueue,
    _owned: Option<OwnedMsgQueue>,
    abort: AbortHandle,
    max: usize,
    timeout: Duration,
    me: u32,
}

/// An error after an abort is reported as the abort (the removal caused it).
fn after_abort(abort: &AbortHandle, op: &'static str, object: Object, e: Error) -> Error {
    if abort.is_aborted() {
        aborted(op, object)
    } else {
        e
    }
}

impl SendEnd {
    fn object(&self) -> Object {
        Object::MsgId(self.queue.id())
    }

    /// The receiver that last took a message, if it is gone: an error naming it.
    fn receiver_gone(&self, op: &'static str, waited_since: Instant) -> Option<Error> {
        let st = match self.queue.stat() {
            Ok(st) => st,
            Err(e) => return Some(after_abort(&self.abort, op, self.object(), e)),
        };
        let pid = u32::try_from(st.lrpid).unwrap_or(0);
        if pid == 0 || pid == self.me {
            return (waited_since.elapsed() >= self.timeout)
                .then(|| no_peer(op, self.object(), "receiver", self.timeout));
        }
        (!Peer::new(pid).alive()).then(|| Error::PeerDied {
            op,
            object: self.object(),
            peer: "receiver",
            pid,
        })
    }

    /// Queues one message; while the queue is full, sleeps a little at a time (`msgsnd` cannot
    /// be given a timeout) and gives up on a receiver that is gone.
    fn put(&mut self, mtype: i64, data: &[u8], op: &'static str) -> Result<()> {
        let since = Instant::now();
        let mut nap = Duration::from_micros(20);
        let mut judged = Instant::now();
        loop {
            self.abort.check(op, || self.object())?;
            if self
                .queue
                .try_send(mtype, data)
                .map_err(|e| after_abort(&self.abort, op, self.object(), e))?
            {
                return Ok(());
            }
            if judged.elapsed() >= SLICE {
                judged = Instant::now();
                if let Some(e) = self.receiver_gone(op, since) {
                    return Err(e);
                }
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(2));
        }
    }
}

impl super::SendImpl for SendEnd {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.put(DATA, msg, "send")
    }

    /// Queues the end marker, then waits for the receiver's acknowledgement: an error if the
    /// receiver goes away first, or none came within the connect timeout.
    fn close(&mut self) -> Result<()> {
        self.put(END, &self.me.to_le_bytes(), "close")?;
        let since = Instant::now();
        let mut judged = Instant::now();
        let ack = ACK + i64::from(self.me);
        loop {
            self.abort.check("close", || self.object())?;
            let got = self
                .queue
                .recv_with(ack, RecvOptions::new().nowait())
                .map_err(|e| {
                    let e = after_abort(&self.abort, "close", self.object(), e);
                    if matches!(e.raw_os_error(), Some(libc::EIDRM) | Some(libc::EINVAL)) {
                        // Removed by a receiver that ended without taking this stream's end.
                        gone_before_end(self.object())
                    } else {
                        e
                    }
                })?;
            if got.is_some() {
                return Ok(());
            }
            if judged.elapsed() >= SLICE {
                judged = Instant::now();
                if let Some(e) = self.receiver_gone("close", since) {
                    return Err(e);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn max_message(&self) -> usize {
        self.max
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    fn object(&self) -> Object {
        SendEnd::object(self)
    }
}

/// The error of a sender whose receiver ended without taking its end of stream.
fn gone_before_end(object: Object) -> Error {
    Error::os(
        "close",
        object,
        std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "the receiver ended before it took this sender's end of stream",
        ),
    )
}

struct RecvEnd {
    queue: MsgQueue,
    owned: Option<OwnedMsgQueue>,
    abort: AbortHandle,
    senders: Arc<Mutex<Senders>>,
    /// A wake-up came: drain without waiting, then judge.
    suspect: bool,
    watchdog: Option<Watchdog>,
}

impl RecvEnd {
    fn object(&self) -> Object {
        Object::MsgId(self.queue.id())
    }

    fn senders(&self) -> std::sync::MutexGuard<'_, Senders> {
        self.senders.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl super::RecvImpl for RecvEnd {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        loop {
            self.abort.check("recv", || self.object())?;
            let options = if self.suspect {
                RecvOptions::new().nowait()
            } else {
                RecvOptions::new()
            };
            let got = self
                .queue
                .recv_with(-END, options)
                .map_err(|e| after_abort(&self.abort, "recv", self.object(), e))?;
            let Some(msg) = got else {
                // Woken and drained: now judge.
                let object = self.object();
                if let Some(e) = self.senders().judge("recv", || object.clone()) {
                    return Err(e);
                }
                self.suspect = false;
                continue;
            };
            match msg.mtype {
                DATA => {
                    *buf = msg.data;
                    return Ok(Some(buf.len()));
                }
                HELLO => match pid_of(&msg.data) {
                    Some(pid) => self.senders().hello(pid),
                    None => return Err(corrupt(self.object(), &msg.data, "hello")),
                },
                END => {
                    let pid = pid_of(&msg.data);
                    if let Some(pid) = pid {
                        // The sender waits for this; a full queue only delays it.
                        let _ = self.queue.try_send(ACK + i64::from(pid), &[]);
                    }
                    if self.senders().end(pid) {
                        return Ok(None);
                    }
                }
                _ if msg.data == WAKE => self.suspect = true,
                _ => return Err(aborted("recv", self.object())),
            }
        }
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}

impl Drop for RecvEnd {
    fn drop(&mut self) {
        drop(self.watchdog.take());
        // The acknowledgements queued for senders go with the queue: give them (at most 1 s)
        // to be taken first.
        if self.owned.is_some() && !self.abort.is_aborted() {
            let deadline = Instant::now() + Duration::from_secs(1);
            while Instant::now() < deadline {
                match self.queue.stat() {
                    Ok(st) if st.messages > 0 => std::thread::sleep(Duration::from_millis(1)),
                    _ => break,
                }
            }
        }
    }
}

fn corrupt(object: Object, data: &[u8], what: &str) -> Error {
    Error::corrupt(
        "recv",
        object,
        format!("a {what} of {} bytes (expected a 4-byte pid)", data.len()),
    )
}

/// A thread that looks at a receiver's senders every [`SLICE`] and queues a wake-up when one
/// is gone; stopped and joined when dropped.
struct Watchdog {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(queue: MsgQueue, senders: Arc<Mutex<Senders>>) -> Watchdog {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ipckit-sysv-msg-watchdog".into())
            .spawn(move || {
                let mut woke = false;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(SLICE) {
                    let verdict = senders
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .judge("recv", || Object::MsgId(queue.id()));
                    // One wake-up per verdict; the receiver judges for itself once drained.
                    if verdict.is_some() && !woke {
                        woke = queue.try_send(ABORT, WAKE).unwrap_or(false);
                    } else if verdict.is_none() {
                        woke = false;
                    }
                }
            })
            .ok();
        Watchdog {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
