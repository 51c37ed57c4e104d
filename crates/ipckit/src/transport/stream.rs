//! Length-prefixed frames over a byte stream (pipe, FIFO, Unix stream socket, TCP).
//!
//! ```text
//! | len: u32 little-endian | len bytes |      one message (len < u32::MAX)
//! | 0xffff_ffff |                            end of stream
//! ```
//! A stream that ends (read returns 0) before the end-of-stream frame was sent by a sender that
//! went away without closing; one that ends inside a frame was cut. Both are errors. The receiver
//! reads through a 64 KiB buffer, so a burst of small frames costs one `read`; the sender writes
//! each message with one `write` (header and payload copied together up to 16 KiB, two writes
//! above, where the copy would cost more than the second call).

use std::io::{self, BufReader, Read, Write};

use super::{ended_without_marker, AbortHandle, RecvImpl, SendImpl};
use crate::error::{Error, Object, Result};

/// The largest message a frame can carry: `u32::MAX` is the end marker.
pub(crate) const MAX_FRAME: usize = (u32::MAX - 1) as usize;
/// The header value that ends the stream.
const END: u32 = u32::MAX;
/// Up to this size, header and payload are copied into one buffer and written at once.
const COPY_LIMIT: usize = 16 * 1024;
/// The receiver's read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// The sending side of a framed stream.
pub(crate) struct StreamSender<W> {
    writer: W,
    scratch: Vec<u8>,
    object: Object,
    abort: AbortHandle,
}

impl<W: Write + Send> StreamSender<W> {
    pub(crate) fn new(writer: W, object: Object, abort: AbortHandle) -> StreamSender<W> {
        StreamSender {
            writer,
            scratch: Vec::new(),
            object,
            abort,
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .write_all(bytes)
            .map_err(|e| Error::os("write", self.object.clone(), e))
    }
}

impl<W: Write + Send> SendImpl for StreamSender<W> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.abort.check("send", || self.object.clone())?;
        // `msg.len() <= MAX_FRAME` was checked by `Sender::send`.
        let header = (msg.len() as u32).to_le_bytes();
        if msg.len() <= COPY_LIMIT {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            scratch.extend_from_slice(&header);
            scratch.extend_from_slice(msg);
            let r = self.write_all(&scratch);
            self.scratch = scratch;
            r
        } else {
            self.write_all(&header)?;
            self.write_all(msg)
        }
    }

    fn close(&mut self) -> Result<()> {
        self.write_all(&END.to_le_bytes())?;
        self.writer
            .flush()
            .map_err(|e| Error::os("flush", self.object.clone(), e))
    }

    fn max_message(&self) -> usize {
        MAX_FRAME
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    fn object(&self) -> Object {
        self.object.clone()
    }
}

/// The receiving side of a framed stream.
pub(crate) struct StreamReceiver<R> {
    reader: BufReader<R>,
    max: usize,
    object: Object,
    abort: AbortHandle,
}

impl<R: Read + Send> StreamReceiver<R> {
    /// Frames longer than `max` are refused as corrupt (nothing is allocated for them).
    pub(crate) fn new(reader: R, max: usize, object: Object, abort: AbortHandle) -> Self {
        StreamReceiver {
            reader: BufReader::with_capacity(READ_BUFFER, reader),
            max,
            object,
            abort,
        }
    }

    /// Fills `buf` completely; the number of bytes read before end of file otherwise.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.reader.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::os("read", self.object.clone(), e)),
            }
        }
        Ok(done)
    }

    fn cut(&self, what: &str, got: usize, want: usize) -> Error {
        Error::os(
            "read",
            self.object.clone(),
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the stream ended inside a frame ({what}: {got} of {want} bytes)"),
            ),
        )
    }
}

impl<R: Read + Send> RecvImpl for StreamReceiver<R> {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        self.abort.check("recv", || self.object.clone())?;
        let mut header = [0u8; 4];
        match self.fill(&mut header)? {
            0 => {
                self.abort.check("recv", || self.object.clone())?;
                return Err(ended_without_marker("recv", self.object.clone()));
            }
            4 => {}
            n => return Err(self.cut("header", n, 4)),
        }
        let len = u32::from_le_bytes(header);
        if len == END {
            return Ok(None);
        }
        let len = len as usize;
        if len > self.max {
            return Err(Error::TooLarge {
                op: "recv",
                object: self.object.clone(),
                what: "frame",
                len,
                limit: self.max,
                limit_name: "the receiver's largest message",
            });
        }
        // Reuse the buffer: growing zero-fills only the new part, once.
        buf.resize(len, 0);
        let got = self.fill(&mut buf[..len])?;
        if got < len {
            return Err(self.cut("payload", got, len));
        }
        Ok(Some(len))
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}
