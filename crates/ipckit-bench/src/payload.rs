//! What every benchmark message carries, and how the receiver checks it.
//!
//! So that no transport can win by not moving data, every message is a real buffer of the
//! measured size, and the receiver checks each one. Messages of 16 bytes or more:
//!
//! ```text
//! | seq: u64 | check: u64 | time: u64 (from 32 bytes on) | body … | tail: u64 (from 24 bytes on) |
//! ```
//! - `seq` is the sequence number: the receiver checks it is the one it expects (`u64::MAX`
//!   stops a pattern);
//! - `time`, in the `wake` pattern, is the sender's `CLOCK_MONOTONIC` when it sent the message
//!   (one clock for every process), so the receiver can time the one-way trip; otherwise body
//!   bytes. It is covered by `check` like the rest;
//! - `tail`, the last 8 bytes, is derived from `seq`, so the far end of the buffer must have moved
//!   too;
//! - above 1 KiB, the sender also writes 16 words at positions derived from `seq` (different in
//!   every message) and the receiver checks them, so the middle must have moved as well; up to
//!   1 KiB, the whole message is hashed;
//! - `check` is an FNV-1a hash of `seq`, the length, the tail and the sampled words (or of every
//!   byte, up to 1 KiB), which the receiver recomputes.
//!
//! The body is filled once with pseudo-random bytes; per message the sender writes at most 19
//! words, so building a message costs next to nothing next to moving it. The `signal` transport's
//! 4-byte messages carry the sequence number alone (`u32`).

use ipckit::shared::SharedSlice;

/// The smallest message of the full format.
pub const MIN_SIZE: usize = 16;
/// The smallest message that carries a send time (the `wake` pattern).
pub const MIN_TIMED_SIZE: usize = 32;
/// Where the send time is.
const TIME_AT: usize = 16;
/// The sequence number that ends a pattern (`u32::MAX` in 4-byte messages).
pub const STOP: u64 = u64::MAX;
/// Messages up to this size are hashed whole.
const HASH_ALL: usize = 1024;
/// Words sampled in larger messages.
const SAMPLES: u64 = 16;

/// A message buffer of one size, reused for every message.
#[derive(Debug, Clone)]
pub struct Payload {
    buf: Vec<u8>,
    /// [`body_hash`] of the buffer's fixed region (messages up to [`HASH_ALL`]).
    body: u64,
}

fn mix(x: u64) -> u64 {
    // splitmix64's finalizer: cheap and well spread.
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fnv(h: u64, word: u64) -> u64 {
    (h ^ word).wrapping_mul(0x0000_0100_0000_01b3)
}

fn word_at(buf: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(w)
}

fn put_word(buf: &mut [u8], at: usize, w: u64) {
    buf[at..at + 8].copy_from_slice(&w.to_le_bytes());
}

/// Byte offset of sampled word `i` of message `seq` in a buffer of `len` (> 1 KiB) bytes: a
/// multiple of 8 in `24..len-8`, clear of the header, the time and the tail.
fn sample_at(len: usize, seq: u64, i: u64) -> usize {
    let slots = ((len - 32) / 8) as u64;
    24 + 8 * (mix(seq ^ (i << 56)) % slots) as usize
}

/// The word sampled at byte `at` of message `seq`: a function of both, so that two samples that
/// land on the same word agree.
fn sample_value(seq: u64, at: usize) -> u64 {
    mix(seq ^ ((at as u64) << 40))
}

/// The bytes of a hashed message (up to [`HASH_ALL`]) that are the same in every message of
/// its size: all but `seq`, `check`, the time word and the tail.
fn fixed_region(len: usize) -> std::ops::Range<usize> {
    let start = if len >= MIN_TIMED_SIZE {
        TIME_AT + 8
    } else {
        16
    };
    let end = if len >= 24 { len - 8 } else { len };
    start..end
}

/// FNV-1a of `bytes` (the fixed region), in four lanes that take the words in turn: their
/// multiplications overlap instead of each waiting for the last (one chain made the check of a
/// 1 KiB message cost more than a fast transport's delivery of it).
fn body_hash(bytes: &[u8]) -> u64 {
    let mut lanes = [0, 1, 2, 3].map(|k| fnv(0xcbf2_9ce4_8422_2325, k));
    let mut words = bytes.chunks_exact(32);
    for quad in &mut words {
        for (k, lane) in lanes.iter_mut().enumerate() {
            *lane = fnv(*lane, word_at(quad, 8 * k));
        }
    }
    let rest = words.remainder();
    let mut bytes_left = rest.chunks_exact(8);
    for w in &mut bytes_left {
        lanes[0] = fnv(lanes[0], word_at(w, 0));
    }
    for &b in bytes_left.remainder() {
        lanes[1] = fnv(lanes[1], u64::from(b));
    }
    lanes.into_iter().fold(bytes.len() as u64, fnv)
}

/// The `check` word of a hashed message: its fields that change from message to message, and
/// the hash of the rest (`body`, [`body_hash`] of its [`fixed_region`]). The sender computes
/// `body` once per size; the receiver hashes every byte it received.
fn checksum(buf: &[u8], seq: u64, body: u64) -> u64 {
    let len = buf.len();
    let mut h = fnv(0xcbf2_9ce4_8422_2325, seq);
    h = fnv(h, len as u64);
    if len >= MIN_TIMED_SIZE {
        h = fnv(h, word_at(buf, TIME_AT));
    }
    if len >= 24 {
        h = fnv(h, word_at(buf, len - 8));
    }
    fnv(h, body)
}

/// The `check` word of a message above [`HASH_ALL`]: its fields and sampled words, each read
/// once through `word`.
fn sampled_checksum(len: usize, seq: u64, mut word: impl FnMut(usize) -> u64) -> u64 {
    let mut h = fnv(0xcbf2_9ce4_8422_2325, seq);
    h = fnv(h, len as u64);
    h = fnv(h, word(TIME_AT));
    h = fnv(h, word(len - 8));
    for i in 0..SAMPLES {
        h = fnv(h, word(sample_at(len, seq, i)));
    }
    h
}

impl Payload {
    /// A message of `size` bytes (4, or at least [`MIN_SIZE`]), its body filled with
    /// pseudo-random bytes.
    pub fn new(size: usize) -> Payload {
        let mut buf = vec![0u8; size];
        let mut x = 0x1234_5678_9abc_def0u64 ^ size as u64;
        for chunk in buf.chunks_mut(8) {
            x = mix(x);
            let bytes = x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let body = if (MIN_SIZE..=HASH_ALL).contains(&size) {
            body_hash(&buf[fixed_region(size)])
        } else {
            0
        };
        Payload { buf, body }
    }

    /// Makes the buffer message `seq` and returns it.
    pub fn stamp(&mut self, seq: u64) -> &[u8] {
        self.stamp_with(seq, None)
    }

    /// Makes the buffer message `seq` sent at `time` (nanoseconds of `CLOCK_MONOTONIC`, see
    /// [`now_ns`]) and returns it. The size must be at least [`MIN_TIMED_SIZE`] bytes (smaller
    /// messages carry no time: it is left out).
    pub fn stamp_timed(&mut self, seq: u64, time: u64) -> &[u8] {
        self.stamp_with(seq, Some(time))
    }

    fn stamp_with(&mut self, seq: u64, time: Option<u64>) -> &[u8] {
        let len = self.buf.len();
        if len < MIN_SIZE {
            // The 4-byte format: the sequence number alone.
            let v = if seq == STOP { u32::MAX } else { seq as u32 };
            self.buf[..4].copy_from_slice(&v.to_le_bytes());
            return &self.buf;
        }
        put_word(&mut self.buf, 0, seq);
        if let Some(t) = time.filter(|_| len >= MIN_TIMED_SIZE) {
            put_word(&mut self.buf, TIME_AT, t);
        }
        if len >= 24 {
            put_word(&mut self.buf, len - 8, mix(!seq));
        }
        let check = if len > HASH_ALL {
            for i in 0..SAMPLES {
                let at = sample_at(len, seq, i);
                put_word(&mut self.buf, at, sample_value(seq, at));
            }
            sampled_checksum(len, seq, |at| word_at(&self.buf, at))
        } else {
            // Only the words above changed: the rest's hash was taken once, in `new`.
            checksum(&self.buf, seq, self.body)
        };
        put_word(&mut self.buf, 8, check);
        &self.buf
    }

    /// The buffer as it is.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// The send time of a checked message of at least [`MIN_TIMED_SIZE`] bytes stamped with
/// [`Payload::stamp_timed`] (`None` if it is smaller).
pub fn time_of(msg: &[u8]) -> Option<u64> {
    (msg.len() >= MIN_TIMED_SIZE).then(|| word_at(msg, TIME_AT))
}

/// Now, in nanoseconds of `CLOCK_MONOTONIC`: the clock every process of the machine shares, so
/// a time taken in one process can be subtracted from one taken in another.
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// Checks a received message of the expected size and returns its sequence number ([`STOP`]
/// for the end of a pattern), or says what is wrong with it.
pub fn check(msg: &[u8], size: usize) -> Result<u64, String> {
    if msg.len() != size {
        return Err(format!(
            "a message of {} bytes where {size} were sent",
            msg.len()
        ));
    }
    if size < MIN_SIZE {
        if size < 4 {
            return Err(format!("a message of {size} bytes has no sequence number"));
        }
        let v = u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]);
        return Ok(if v == u32::MAX { STOP } else { u64::from(v) });
    }
    if size > HASH_ALL {
        return check_sampled(size, |at| word_at(msg, at));
    }
    let seq = word_at(msg, 0);
    if size >= 24 && word_at(msg, size - 8) != mix(!seq) {
        return Err(format!(
            "message {seq}: its last 8 bytes are not the ones sent"
        ));
    }
    if word_at(msg, 8) != checksum(msg, seq, body_hash(&msg[fixed_region(size)])) {
        return Err(format!("message {seq}: checksum mismatch"));
    }
    Ok(seq)
}

/// The check of a message above 1 KiB, reading only the words it checks through `word`.
fn check_sampled(size: usize, mut word: impl FnMut(usize) -> u64) -> Result<u64, String> {
    let seq = word(0);
    let tail = word(size - 8);
    if tail != mix(!seq) {
        return Err(format!(
            "message {seq}: its last 8 bytes are not the ones sent"
        ));
    }
    let mut h = fnv(0xcbf2_9ce4_8422_2325, seq);
    h = fnv(h, size as u64);
    h = fnv(h, word(TIME_AT));
    h = fnv(h, tail);
    for i in 0..SAMPLES {
        let at = sample_at(size, seq, i);
        let w = word(at);
        if w != sample_value(seq, at) {
            return Err(format!(
                "message {seq}: sampled word {i} is not the one sent"
            ));
        }
        h = fnv(h, w);
    }
    if word(8) != h {
        return Err(format!("message {seq}: checksum mismatch"));
    }
    Ok(seq)
}

/// [`check`] for a message lent in place (a channel's [`RecvSlot`](ipckit::channel::RecvSlot)):
/// returns its sequence number and, from [`MIN_TIMED_SIZE`] bytes on, its time word. Up to 1 KiB
/// the message is copied into `scratch` once to be hashed whole (every byte is read either way);
/// above, only the words checked are read, in place, each once (a hostile writer could change
/// them, so what is checked is what was read).
pub fn check_in_place(
    msg: &SharedSlice<'_>,
    size: usize,
    scratch: &mut Vec<u8>,
) -> Result<(u64, Option<u64>), String> {
    let read = |at: usize| -> Result<u64, String> {
        let mut w = [0u8; 8];
        msg.read_at(at, &mut w).map_err(|e| e.to_string())?;
        Ok(u64::from_le_bytes(w))
    };
    if msg.len() != size {
        return Err(format!(
            "a message of {} bytes where {size} were sent",
            msg.len()
        ));
    }
    if size <= HASH_ALL {
        scratch.resize(size, 0);
        msg.read_at(0, scratch).map_err(|e| e.to_string())?;
        let seq = check(scratch, size)?;
        return Ok((seq, time_of(scratch)));
    }
    let mut failed = None;
    let mut time = 0;
    let seq = check_sampled(size, |at| match read(at) {
        Ok(w) => {
            if at == TIME_AT {
                time = w;
            }
            w
        }
        Err(e) => {
            failed.get_or_insert(e);
            0
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    Ok((seq?, Some(time)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_messages_check_out_at_every_size() {
        for size in [4, 16, 17, 24, 64, 1000, 1024, 1025, 1031, 8192, 65536] {
            let mut p = Payload::new(size);
            // Miri interprets every byte: a few sequence numbers there, 2000 natively.
            for seq in (0..if cfg!(miri) { 3 } else { 2000 }).chain([STOP]) {
                let msg = p.stamp(seq).to_vec();
                assert_eq!(check(&msg, size), Ok(seq), "size {size} seq {seq}");
            }
        }
    }

    #[test]
    fn a_send_time_travels_with_the_message_and_is_checked() {
        for size in [32, 64, 1024, 8192, 65536] {
            let mut p = Payload::new(size);
            let msg = p.stamp_timed(7, 123_456_789).to_vec();
            assert_eq!(check(&msg, size), Ok(7), "size {size}");
            assert_eq!(time_of(&msg), Some(123_456_789), "size {size}");
            let mut forged = msg.clone();
            forged[TIME_AT] ^= 1;
            assert!(check(&forged, size).is_err(), "size {size}: a changed time");
        }
        assert_eq!(time_of(Payload::new(24).stamp_timed(1, 5)), None);
    }

    #[test]
    fn a_message_in_shared_memory_is_checked_in_place_as_a_copy_is() {
        let mut scratch = Vec::new();
        for size in [32, 64, 1024, 1025, 8192, 65536] {
            let map = ipckit::mmap::Mmap::options()
                .read_write()
                .map_anonymous(size)
                .unwrap();
            let slot = map.shared().unwrap();
            let mut p = Payload::new(size);
            slot.write_at(0, p.stamp_timed(9, 42)).unwrap();
            assert_eq!(
                check_in_place(&slot, size, &mut scratch),
                Ok((9, Some(42))),
                "size {size}"
            );
            // A torn message: the last byte, or the time, is not the one sent.
            slot.write_at(size - 1, &[0xAA]).unwrap();
            assert!(
                check_in_place(&slot, size, &mut scratch).is_err(),
                "size {size}"
            );
            slot.write_at(0, p.stamp_timed(9, 42)).unwrap();
            slot.write_at(TIME_AT, &[1]).unwrap();
            assert!(
                check_in_place(&slot, size, &mut scratch).is_err(),
                "size {size}"
            );
            assert!(check_in_place(&slot, size + 8, &mut scratch).is_err());
        }
    }

    #[test]
    fn the_sender_hashes_a_messages_fixed_bytes_once() {
        // Stamping rehashes only the words that change per message: the rest's hash is taken
        // when the payload is made (a full rehash per message capped a 64-byte stream at the
        // sender). So a body changed behind the payload's back no longer matches its check.
        for size in [17, 40, 64, 100, 1024] {
            let mut p = Payload::new(size);
            assert_eq!(check(p.stamp(1), size), Ok(1));
            p.buf[fixed_region(size).start] ^= 1;
            assert!(check(p.stamp(2), size).is_err(), "size {size}");
        }
    }

    #[test]
    fn a_changed_byte_or_a_stale_buffer_is_caught() {
        for size in [64, 1024, 8192] {
            let mut p = Payload::new(size);
            let first = p.stamp(1).to_vec();
            let second = p.stamp(2).to_vec();
            // The whole old message is not the new one.
            assert_eq!(check(&first, size), Ok(1));
            let mut torn = second.clone();
            torn[size - 1] ^= 1;
            assert!(check(&torn, size).is_err(), "size {size}: last byte");
            // Only the header moved, the rest is the previous message's.
            let mut stale = first.clone();
            stale[..16].copy_from_slice(&second[..16]);
            assert!(check(&stale, size).is_err(), "size {size}: stale body");
        }
        assert!(check(&[0; 10], 64).is_err());
        // Up to HASH_ALL every byte is checked, whichever lane of the checksum takes it.
        for size in [64, 100, 1023, 1024] {
            let msg = Payload::new(size).stamp(7).to_vec();
            for i in 0..size {
                let mut torn = msg.clone();
                torn[i] ^= 0x10;
                assert!(check(&torn, size).is_err(), "size {size}: byte {i}");
            }
        }
    }
}
