//! Typed ends of a channel: each message is one value of a fixed-layout type `T`
//! ([`bytemuck::Pod`]: plain integers, floats and arrays of them, `#[repr(C)]` structs without
//! padding), copied straight between the value and the lane — never through a `Vec<u8>`.
//!
//! ```no_run
//! use ipckit::bytemuck::{Pod, Zeroable};
//! use ipckit::channel::typed;
//!
//! #[derive(Clone, Copy, Pod, Zeroable)]
//! #[bytemuck(crate = "ipckit::bytemuck")] // derive through ipckit's re-export
//! #[repr(C)]
//! struct Tick { price: f64, volume: u64 }
//!
//! let mut tx = typed::Producer::<Tick>::new(ipckit::channel::Producer::open("/ticks")?);
//! tx.send(&Tick { price: 10.5, volume: 3 })?;
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! A message is a `T` only if it has exactly `size_of::<T>()` bytes: the consumer checks the
//! length of every message (a producer of another type, or a hostile one, gives
//! [`Error::Corrupt`], and the message is dropped) and then copies the bytes out, so the value
//! it returns cannot change under it. Any bit pattern is a valid `Pod` value, so nothing else can
//! be wrong. Both sides must agree on `T`'s layout (same type, same target); the channel cannot
//! check what the bytes mean.
//!
//! For a large `T`, [`Producer::reserve`] and [`Consumer::recv_ref`] give the value's bytes in
//! the lane, to write or read field by field in place.

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;
use std::time::Duration;

use bytemuck::Pod;

use super::{Consumer as ByteConsumer, Producer as ByteProducer, RecvSlot, SendSlot};
use crate::error::{Error, Result};

/// A producer of `T` values: a [`channel::Producer`](ByteProducer) whose every message is one `T`.
pub struct Producer<T> {
    inner: ByteProducer,
    // fn(&T): sending a T does not own one, so Producer<T> is Send whatever T is.
    _type: PhantomData<fn(&T)>,
}

impl<T: Pod> Producer<T> {
    /// Wraps `inner`. A `T` larger than the lane's
    /// [`max_message_size`](ByteProducer::max_message_size) cannot be sent:
    /// every send gives [`Error::TooLarge`] and writes nothing.
    pub fn new(inner: ByteProducer) -> Producer<T> {
        Producer {
            inner,
            _type: PhantomData,
        }
    }

    /// Sends `value`, waiting while the lane is full. Errors as
    /// [`channel::Producer::send`](ByteProducer::send).
    pub fn send(&mut self, value: &T) -> Result<()> {
        self.inner.send(bytemuck::bytes_of(value))
    }

    /// Sends `value` if the lane has room now; [`Error::WouldBlock`] if it is full.
    pub fn try_send(&mut self, value: &T) -> Result<()> {
        self.inner.try_send(bytemuck::bytes_of(value))
    }

    /// Sends `value`, waiting at most `timeout` for room; [`Error::Timeout`] if there was none.
    pub fn send_timeout(&mut self, value: &T, timeout: Duration) -> Result<()> {
        self.inner.send_timeout(bytemuck::bytes_of(value), timeout)
    }

    /// Reserves room for one `T` in the lane, to write in place through
    /// [`SendSlot::shared`] (`write`, `write_at` at the field offsets) and publish with
    /// [`SendSlot::commit`]. The bytes hold whatever was there before: write every byte.
    pub fn reserve(&mut self) -> Result<SendSlot<'_>> {
        self.inner.reserve(size_of::<T>())
    }

    /// The byte producer (to close it, or to wait until everything was consumed).
    pub fn get_mut(&mut self) -> &mut ByteProducer {
        &mut self.inner
    }

    /// The byte producer, given back.
    pub fn into_inner(self) -> ByteProducer {
        self.inner
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("typed::Producer")
            .field("type", &type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

/// A consumer of `T` values: a [`channel::Consumer`](ByteConsumer) whose every message is one `T`.
pub struct Consumer<T> {
    inner: ByteConsumer,
    // fn() -> T: receiving yields Ts, but a Consumer<T> holds none, so it is Send whatever T is.
    _type: PhantomData<fn() -> T>,
}

impl<T: Pod> Consumer<T> {
    /// Wraps `inner`.
    pub fn new(inner: ByteConsumer) -> Consumer<T> {
        Consumer {
            inner,
            _type: PhantomData,
        }
    }

    /// Receives the next value, waiting while the channel is empty; `Ok(None)` at the end of
    /// the stream. [`Error::Corrupt`] for a message that is not `size_of::<T>()` bytes long
    /// (it is dropped; the next call goes on with the next message).
    pub fn recv(&mut self) -> Result<Option<T>> {
        let slot = self.inner.recv_ref()?;
        slot.map(|s| value_of(&s)).transpose()
    }

    /// Receives a value if one is there now; [`Error::WouldBlock`] if the channel is empty.
    pub fn try_recv(&mut self) -> Result<Option<T>> {
        let slot = self.inner.try_recv_ref()?;
        slot.map(|s| value_of(&s)).transpose()
    }

    /// Receives a value, waiting at most `timeout`; [`Error::Timeout`] if none came.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<T>> {
        let slot = self.inner.recv_ref_timeout(timeout)?;
        slot.map(|s| value_of(&s)).transpose()
    }

    /// Lends the next value's bytes in place (see [`channel::Consumer::recv_ref`](ByteConsumer::recv_ref)),
    /// checked to be exactly one `T` long: read fields with [`RecvSlot::shared`]'s `read`.
    pub fn recv_ref(&mut self) -> Result<Option<RecvSlot<'_>>> {
        match self.inner.recv_ref()? {
            Some(slot) => check_len::<T>(&slot).map(|()| Some(slot)),
            None => Ok(None),
        }
    }

    /// The byte consumer.
    pub fn get_mut(&mut self) -> &mut ByteConsumer {
        &mut self.inner
    }

    /// The byte consumer, given back.
    pub fn into_inner(self) -> ByteConsumer {
        self.inner
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("typed::Consumer")
            .field("type", &type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

/// The message's length, checked to be one `T`.
fn check_len<T>(slot: &RecvSlot<'_>) -> Result<()> {
    if slot.len() == size_of::<T>() {
        return Ok(());
    }
    Err(Error::corrupt(
        "recv",
        slot.shared().object().clone(),
        format!(
            "a message of {} bytes on lane {} where a {} of {} bytes was expected",
            slot.len(),
            slot.lane(),
            type_name::<T>(),
            size_of::<T>()
        ),
    ))
}

/// The value a message holds, copied out of the lane.
fn value_of<T: Pod>(slot: &RecvSlot<'_>) -> Result<T> {
    check_len::<T>(slot)?;
    slot.shared().read(0)
}
