//! `signal`: a real-time signal queued with `sigqueue`, whose `int` carries a 4-byte message,
//! received through a `signalfd`. Only exactly 4 bytes fit, and only one process can be reached
//! (by pid), so this is a latency curiosity: how fast the kernel delivers a signal with data.
//!
//! `SIGRTMIN` carries data; `SIGRTMIN+1` carries control values (1: end of stream, 2: hello).
//! Real-time signals queue in order per signal, and the lower number is delivered first, so the
//! end is received after the data queued before it. Both signals must be **blocked in every
//! thread** of a receiving process, or one may be delivered the ordinary way, which kills the
//! process: call [`prepare_signals`] at the start of `main`, before any thread starts. The
//! rendezvous is the host's pid (`pid=N`); a host that sends learns its peer's pid from a hello
//! the peer queues when it connects.

use std::time::{Duration, Instant};

use super::{aborted, bad_rendezvous, process_alive, AbortHandle, End, HostImpl, Options, Role};
use super::{TransportKind, SLICE};
use crate::error::{Error, Object, Result};
use crate::signal::{self as sig, Signal, SignalFd, SignalSet};

/// The size of every message: one `int`.
pub(super) const MESSAGE_LEN: usize = 4;
const END: i32 = 1;
const HELLO: i32 = 2;

fn data_signal() -> Signal {
    Signal::rtmin()
}

fn control_signal() -> Result<Signal> {
    Signal::rt(1)
}

fn signals() -> Result<SignalSet> {
    Ok(SignalSet::from([data_signal(), control_signal()?]))
}

/// `pthread_sigmask(SIG_BLOCK, {SIGRTMIN, SIGRTMIN+1})` — blocks the signals of the `signal`
/// transport in the calling thread. A process that receives over `signal` must call this in its
/// main thread before it starts any other thread (threads inherit the mask), so that no thread
/// can take the signals the ordinary way, whose default action ends the process.
pub fn prepare_signals() -> Result<()> {
    sig::block(&signals()?).map(drop)
}

fn object(pid: u32) -> Object {
    Object::Other(format!("signals to process {pid}").into())
}

enum Host {
    /// Receives: the peer queues to our pid.
    Recv(Receiver),
    /// Sends: waits for the peer's hello to learn its pid.
    Send(SignalFd),
}

pub(super) fn host(role: Role, _options: &Options) -> Result<Box<dyn HostImpl>> {
    prepare_signals()?;
    let fd = SignalFd::new(&signals()?)?;
    Ok(Box::new(match role {
        Role::Recv => Host::Recv(Receiver::new(fd, 0)),
        Role::Send => Host::Send(fd),
    }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        format!("pid={}", std::process::id())
    }

    fn establish(self: Box<Self>, timeout: Option<Duration>) -> Result<End> {
        match *self {
            Host::Recv(r) => Ok(End::Recv(Box::new(r))),
            Host::Send(fd) => {
                let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
                let control = control_signal()?;
                loop {
                    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    let slice = left.map_or(SLICE, |l| l.min(SLICE));
                    match fd.recv_timeout(slice)? {
                        Some(info) if info.signal == control && info.value == HELLO => {
                            return Ok(End::Send(Box::new(SignalSender::new(info.sender_pid))));
                        }
                        Some(_) => {}
                        None if left.is_some_and(|l| l.is_zero()) => {
                            return Err(Error::Timeout {
                                op: "wait for hello",
                                object: object(std::process::id()),
                                timeout: timeout.unwrap_or_default(),
                            })
                        }
                        None => {}
                    }
                }
            }
        }
    }
}

pub(super) fn connect(role: Role, rendezvous: &str, _options: &Options) -> Result<End> {
    let pid: u32 = super::field(rendezvous, "pid")
        .and_then(|v| v.parse().ok())
        .filter(|&p| p > 0)
        .ok_or_else(|| bad_rendezvous(TransportKind::Signal, rendezvous, "pid=N"))?;
    match role {
        Role::Send => Ok(End::Send(Box::new(SignalSender::new(pid)))),
        Role::Recv => {
            prepare_signals()?;
            let fd = SignalFd::new(&signals()?)?;
            sig::queue(pid, control_signal()?, HELLO)?;
            Ok(End::Recv(Box::new(Receiver::new(fd, pid))))
        }
    }
}

struct SignalSender {
    pid: u32,
    abort: AbortHandle,
}

impl SignalSender {
    fn new(pid: u32) -> SignalSender {
        SignalSender {
            pid,
            abort: AbortHandle::new(None),
        }
    }

    /// `sigqueue`, retried while the receiver's queue of pending signals is full (`EAGAIN`).
    fn queue(&self, signal: Signal, value: i32) -> Result<()> {
        loop {
            self.abort.check("sigqueue", || object(self.pid))?;
            match sig::queue(self.pid, signal, value) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                other => return other,
            }
        }
    }
}

impl super::SendImpl for SignalSender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let bytes: [u8; MESSAGE_LEN] = msg.try_into().map_err(|_| {
            Error::invalid(
                "sigqueue",
                object(self.pid),
                format!(
                    "sigqueue carries one int: messages are exactly {MESSAGE_LEN} bytes, not {}",
                    msg.len()
                ),
            )
        })?;
        self.queue(data_signal(), i32::from_le_bytes(bytes))
    }

    fn close(&mut self) -> Result<()> {
        self.queue(control_signal()?, END)
    }

    fn max_message(&self) -> usize {
        MESSAGE_LEN
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    fn object(&self) -> Object {
        object(self.pid)
    }
}

struct Receiver {
    fd: SignalFd,
    /// The sender's pid once known (0: not yet), to notice it died.
    peer: u32,
    abort: AbortHandle,
}

impl Receiver {
    fn new(fd: SignalFd, peer: u32) -> Receiver {
        Receiver {
            fd,
            peer,
            abort: AbortHandle::new(None),
        }
    }
}

impl super::RecvImpl for Receiver {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        let me = std::process::id();
        loop {
            if self.abort.is_aborted() {
                return Err(aborted("recv", object(me)));
            }
            let Some(info) = self.fd.recv_timeout(SLICE)? else {
                if self.peer != 0 && !process_alive(self.peer) {
                    return Err(Error::PeerDied {
                        op: "recv",
                        object: object(me),
                        peer: "sender",
                        pid: self.peer,
                    });
                }
                continue;
            };
            if info.signal == data_signal() {
                if self.peer == 0 {
                    self.peer = info.sender_pid;
                }
                buf.clear();
                buf.extend_from_slice(&info.value.to_le_bytes());
                return Ok(Some(MESSAGE_LEN));
            }
            if info.value == END {
                return Ok(None);
            }
            // A hello (or a stray control value): not a message.
        }
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}
