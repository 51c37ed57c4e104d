//! The channel's ends as futures, for tokio (feature `tokio`): a consumer that awaits messages
//! and producers that await room, with no thread of their own and no CPU while idle.
//!
//! ```no_run
//! # async fn run() -> ipckit::Result<()> {
//! use ipckit::channel::{self, Options};
//!
//! let mut rx = channel::tokio::Consumer::new(Options::new().consumer("/jobs")?)?;
//! while let Some(msg) = rx.recv().await? {
//!     println!("{} bytes", msg.len());
//! }
//! # Ok(()) }
//! ```
//!
//! # How it waits
//! Each end owns a [`Doorbell`] (a Unix datagram socket registered with tokio's reactor). When
//! its channel is empty (or its lane full) it *arms* it — announces in the shared memory that it
//! sleeps on that doorbell — looks once more, and awaits the doorbell being readable. The other
//! side, blocking or async, makes no system call while this side is awake, and exactly one (a
//! one-byte datagram to the doorbell) when it sleeps; see [`Consumer::arm`](super::Consumer::arm)
//! for the protocol. Blocking and async ends mix freely on one channel.
//!
//! An awaiting end wakes at least every [`CHECK_INTERVAL`](super::CHECK_INTERVAL) to check its peers' liveness, so a
//! peer killed while this side awaits is reported as [`Error::PeerDied`] within about that long.
//!
//! # Cancellation
//! Every future here is cancel-safe: dropping it (a `select!` branch that lost, a `timeout`)
//! before it completes takes nothing from the channel and writes nothing to it, and leaves the
//! end ready for the next call. A message is taken only in the poll that returns it.
//!
//! The futures must run inside a tokio runtime (current-thread or multi-thread) with I/O and
//! time enabled (`Builder::enable_all`, or `#[tokio::main]`); [`Consumer::new`] and
//! [`Producer::new`] must be called inside one: outside any runtime they return an error, and
//! like tokio's own I/O types they panic in a runtime built without I/O.

use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{Doorbell, RecvSlot, SendSlot};
use crate::error::{Error, Object, Result};

/// The receiving end of a channel, awaited: [`channel::Consumer`](super::Consumer) with async
/// receives.
#[derive(Debug)]
pub struct Consumer {
    inner: super::Consumer,
    bell: AsyncFd<Doorbell>,
}

impl Consumer {
    /// Wraps `inner`, registering a new doorbell with the current tokio runtime.
    pub fn new(inner: super::Consumer) -> Result<Consumer> {
        Ok(Consumer {
            inner,
            bell: register(Doorbell::new()?)?,
        })
    }

    /// Receives the next message as a new `Vec`; `Ok(None)` at the end of the stream. Errors as
    /// [`channel::Consumer::recv`](super::Consumer::recv). Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>> {
        until_ready(&self.bell, &mut self.inner, |c| pending(c.try_recv())).await
    }

    /// Receives the next message into `buf` (cleared first); its length, or `None` at the end of
    /// the stream. Cancel-safe: `buf` is left alone unless a message is returned.
    pub async fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        until_ready(&self.bell, &mut self.inner, |c| {
            pending(c.try_recv_into(buf))
        })
        .await
    }

    /// Lends the next message in place (see
    /// [`channel::Consumer::recv_ref`](super::Consumer::recv_ref)); `Ok(None)` at the end of the
    /// stream. Cancel-safe.
    pub async fn recv_ref(&mut self) -> Result<Option<RecvSlot<'_>>> {
        // Wait until a receive would return, without taking anything, then take it: a borrow
        // returned from inside the waiting loop would outlive the loop's other iterations.
        until_ready(&self.bell, &mut self.inner, |c| {
            c.ready("recv_ref").map(|ready| ready.then_some(()))
        })
        .await?;
        self.inner.try_recv_ref()
    }

    /// The blocking consumer inside.
    pub fn get_mut(&mut self) -> &mut super::Consumer {
        &mut self.inner
    }

    /// The blocking consumer, given back.
    pub fn into_inner(self) -> super::Consumer {
        self.inner
    }
}

/// A sending end of a channel, awaited: [`channel::Producer`](super::Producer) with async sends.
#[derive(Debug)]
pub struct Producer {
    inner: super::Producer,
    bell: AsyncFd<Doorbell>,
}

impl Producer {
    /// Wraps `inner`, registering a new doorbell with the current tokio runtime.
    pub fn new(inner: super::Producer) -> Result<Producer> {
        Ok(Producer {
            inner,
            bell: register(Doorbell::new()?)?,
        })
    }

    /// Sends `msg`, awaiting room in the lane. Errors as
    /// [`channel::Producer::send`](super::Producer::send). Cancel-safe: when the future is
    /// dropped before it completes, nothing was sent.
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        until_ready(&self.bell, &mut self.inner, |p| pending(p.try_send(msg))).await
    }

    /// Reserves room for a `len`-byte message, awaiting it, and lends it for writing in place
    /// (see [`channel::Producer::reserve`](super::Producer::reserve)). Cancel-safe.
    pub async fn reserve(&mut self, len: usize) -> Result<SendSlot<'_>> {
        // As in `Consumer::recv_ref`: wait until there is room, then reserve it. Only this
        // producer writes its lane, so the room stays.
        until_ready(&self.bell, &mut self.inner, |p| {
            pending(p.try_reserve(len).map(drop))
        })
        .await?;
        self.inner.try_reserve(len)
    }

    /// Closes the lane (see [`channel::Producer::close`](super::Producer::close)); it does not
    /// wait.
    pub async fn close(self) -> Result<()> {
        self.inner.close()
    }

    /// The blocking producer inside.
    pub fn get_mut(&mut self) -> &mut super::Producer {
        &mut self.inner
    }

    /// The blocking producer, given back.
    pub fn into_inner(self) -> super::Producer {
        self.inner
    }
}

/// Registers `bell` with the current runtime's reactor, for readability.
fn register(bell: Doorbell) -> Result<AsyncFd<Doorbell>> {
    let object = || Object::Other("a channel doorbell".into());
    if let Err(e) = tokio::runtime::Handle::try_current() {
        return Err(Error::invalid(
            "register with the tokio reactor",
            object(),
            format!("{e}: create the channel's async ends inside a tokio runtime"),
        ));
    }
    // SAFETY: a Doorbell owns its socket, never closes or replaces it while it lives, and
    // returns the same descriptor from every `as_raw_fd`; the AsyncFd owns the Doorbell, so the
    // descriptor stays open and the same until the AsyncFd is dropped.
    let registered = unsafe { AsyncFd::register_with_interest(bell, Interest::READABLE) };
    registered.map_err(|e| {
        Error::os(
            "register with the tokio reactor",
            object(),
            e.into_parts().1,
        )
    })
}

/// An end that can sleep on a doorbell.
trait Armable {
    /// Arms `bell`; returns how long to wait on it at most.
    fn arm(&self, bell: &Doorbell) -> Duration;
    fn disarm(&self);
}

impl Armable for super::Consumer {
    fn arm(&self, bell: &Doorbell) -> Duration {
        super::Consumer::arm(self, bell)
    }

    fn disarm(&self) {
        super::Consumer::disarm(self);
    }
}

impl Armable for super::Producer {
    fn arm(&self, bell: &Doorbell) -> Duration {
        super::Producer::arm(self, bell)
    }

    fn disarm(&self) {
        super::Producer::disarm(self);
    }
}

/// An end armed with a doorbell; disarmed when dropped, also when the future awaiting the
/// doorbell is dropped. Holds the end mutably (`&mut E` is `Send` when `E` is, so the futures
/// stay `Send` although the ends are not `Sync`).
/// The `Duration` is the longest wait on the doorbell before trying again.
struct Armed<'a, E: Armable>(&'a mut E, Duration);

impl<'a, E: Armable> Armed<'a, E> {
    fn new(end: &'a mut E, bell: &Doorbell) -> Self {
        let slice = end.arm(bell);
        Armed(end, slice)
    }
}

impl<E: Armable> Drop for Armed<'_, E> {
    fn drop(&mut self) {
        self.0.disarm();
    }
}

/// `Ok(None)` for [`Error::WouldBlock`]: a non-blocking operation that must wait.
fn pending<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::WouldBlock { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Calls `attempt` (a non-blocking operation; `Ok(None)`: it would block) until it returns
/// something, sleeping on the doorbell in between: the arm / try again / await / disarm protocol
/// of [`Consumer::arm`](super::Consumer::arm), with a wake-up at least every [`CHECK_INTERVAL`](super::CHECK_INTERVAL)
/// so that `attempt` checks the peers' liveness. Nothing is taken or written but by `attempt`,
/// and it runs only inside a poll, so dropping the future loses nothing.
async fn until_ready<E: Armable, T>(
    bell: &AsyncFd<Doorbell>,
    end: &mut E,
    mut attempt: impl FnMut(&mut E) -> Result<Option<T>>,
) -> Result<T> {
    loop {
        if let Some(v) = attempt(end)? {
            return Ok(v);
        }
        let armed = Armed::new(end, bell.get_ref());
        // A message (or room) published between the first attempt and the arm is seen now; one
        // published later rings the doorbell.
        if let Some(v) = attempt(armed.0)? {
            return Ok(v);
        }
        if let Ok(Ok(mut ready)) = tokio::time::timeout(armed.1, bell.readable()).await {
            ready.get_inner().clear();
            ready.clear_ready();
        }
        drop(armed);
    }
}
