//! Serde ends of a channel (feature `serde`): each message is one value of any
//! [`Serialize`]/[`DeserializeOwned`] type, encoded with [postcard](https://docs.rs/postcard)
//! (a compact, stable, self-delimiting format: varints, no field names).
//!
//! ```no_run
//! use ipckit::channel::{serialized, Options, Producer};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Job { id: u64, path: String }
//!
//! let mut tx = serialized::Producer::<Job>::new(Producer::open("/jobs")?);
//! tx.send(&Job { id: 1, path: "/tmp/in".into() })?;
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! The producer encodes into a buffer it keeps (no allocation once it is large enough) and sends
//! the encoding as one message, so a value whose encoding exceeds the lane's
//! [`max_message_size`](ByteProducer::max_message_size) is refused with
//! [`Error::TooLarge`] before anything reaches the lane. The consumer
//! copies each message out of the shared memory before decoding it, and a message that does not
//! decode to exactly one `T` (another type, trailing bytes, a hostile producer) is
//! [`Error::Corrupt`] and dropped; decoding allocates at most what the
//! message's own length allows.

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Consumer as ByteConsumer, Producer as ByteProducer, RecvSlot};
use crate::error::{Error, Object, Result};

/// A producer of `T` values, each sent as its postcard encoding.
pub struct Producer<T> {
    inner: ByteProducer,
    buf: Vec<u8>,
    _type: PhantomData<fn(&T)>,
}

impl<T: Serialize> Producer<T> {
    /// Wraps `inner`.
    pub fn new(inner: ByteProducer) -> Producer<T> {
        Producer {
            inner,
            buf: Vec::new(),
            _type: PhantomData,
        }
    }

    /// Sends `value`, waiting while the lane is full. Errors as
    /// [`channel::Producer::send`](ByteProducer::send), and
    /// [`Error::InvalidArgument`] if `T`'s `Serialize` fails (for
    /// example a sequence of unknown length).
    pub fn send(&mut self, value: &T) -> Result<()> {
        self.encode("send", value)?;
        self.inner.send(&self.buf)
    }

    /// Sends `value` if the lane has room now; [`Error::WouldBlock`] if
    /// it is full.
    pub fn try_send(&mut self, value: &T) -> Result<()> {
        self.encode("try_send", value)?;
        self.inner.try_send(&self.buf)
    }

    /// Sends `value`, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, value: &T, timeout: Duration) -> Result<()> {
        self.encode("send_timeout", value)?;
        self.inner.send_timeout(&self.buf, timeout)
    }

    fn encode(&mut self, op: &'static str, value: &T) -> Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        self.buf = postcard::to_extend(value, buf).map_err(|e| {
            Error::invalid(op, value_object::<T>(), format!("cannot encode it: {e}"))
        })?;
        Ok(())
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
        f.debug_struct("serialized::Producer")
            .field("type", &type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

/// A consumer of `T` values, each received as its postcard encoding.
pub struct Consumer<T> {
    inner: ByteConsumer,
    buf: Vec<u8>,
    _type: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Consumer<T> {
    /// Wraps `inner`.
    pub fn new(inner: ByteConsumer) -> Consumer<T> {
        Consumer {
            inner,
            buf: Vec::new(),
            _type: PhantomData,
        }
    }

    /// Receives the next value, waiting while the channel is empty; `Ok(None)` at the end of
    /// the stream. [`Error::Corrupt`] for a message that is not one `T`
    /// (it is dropped; the next call goes on with the next message).
    pub fn recv(&mut self) -> Result<Option<T>> {
        let slot = self.inner.recv_ref()?;
        decode(&mut self.buf, slot)
    }

    /// Receives a value if one is there now; [`Error::WouldBlock`] if
    /// the channel is empty.
    pub fn try_recv(&mut self) -> Result<Option<T>> {
        let slot = self.inner.try_recv_ref()?;
        decode(&mut self.buf, slot)
    }

    /// Receives a value, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<T>> {
        let slot = self.inner.recv_ref_timeout(timeout)?;
        decode(&mut self.buf, slot)
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
        f.debug_struct("serialized::Consumer")
            .field("type", &type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

/// What failed to encode: a value of type `T`.
fn value_object<T>() -> Object {
    Object::Other(format!("a {} value", type_name::<T>()).into())
}

/// Copies the message out of the lane (a hostile producer cannot change it under the decoder)
/// and decodes exactly one `T` from it.
fn decode<T: DeserializeOwned>(buf: &mut Vec<u8>, slot: Option<RecvSlot<'_>>) -> Result<Option<T>> {
    let Some(slot) = slot else {
        return Ok(None);
    };
    let shared = slot.shared();
    buf.clear();
    buf.resize(shared.len(), 0);
    shared.read_at(0, buf)?;
    let corrupt = |what: String| {
        Error::corrupt(
            "recv",
            shared.object().clone(),
            format!(
                "a message of {} bytes on lane {} is not a {}: {what}",
                buf.len(),
                slot.lane(),
                type_name::<T>()
            ),
        )
    };
    match postcard::take_from_bytes::<T>(buf) {
        Ok((value, [])) => Ok(Some(value)),
        Ok((_, rest)) => Err(corrupt(format!("{} bytes follow the value", rest.len()))),
        Err(e) => Err(corrupt(e.to_string())),
    }
}
