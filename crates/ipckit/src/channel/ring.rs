//! The lane ring: a single-producer / single-consumer byte ring of variable-size records.
//!
//! This is Lamport's SPSC queue over byte positions, with the cached indices of FastForward
//! (Giacomoni et al., PPoPP 2008) and of crossbeam's array flavour: each side keeps a private copy
//! of the other side's index and re-reads the shared one only when the copy says "full" (producer)
//! or "empty" (consumer), so in steady state the two sides touch each other's cache line once per
//! batch rather than once per message.
//!
//! # Record format
//! ```text
//! | len: u32 | flags: u32 (0) | payload (len bytes) | zero to 7 bytes of padding |
//! ```
//! A record starts at a multiple of 8 and never wraps around the ring end, so the consumer can lend
//! it in place (`recv_ref`). When a record does not fit before the end, the producer first writes a
//! PAD record (`len == u32::MAX`) meaning "skip to the ring start". If the ring has room for the
//! pad and the record, both are published by one store of `tail`; otherwise the pad is published
//! alone, so that a record of up to `capacity - 8` bytes always fits once the consumer has caught
//! up (a pad published together with a full-size record could never fit).
//!
//! # Publication
//! `head` and `tail` are byte positions that only grow (the offset is `pos & (cap - 1)`). A record
//! is published by the producer's Release store of `tail` after the whole record (header and
//! payload) is written, and released by the consumer's Release store of `head` after it has read
//! it. A producer stopped at any instruction, killed included, therefore never exposes a partial
//! record: what it had not published is invisible.
//!
//! # Untrusted indices
//! Each side's own index is private and authoritative; the other side's, and every record header,
//! is read from shared memory and validated before use (`tail - head <= cap`, multiples of 8,
//! monotonic, `len <= cap - 8`, the record inside the published bytes and before the ring end, pads
//! only after offset 0). A violation is a [`Corrupt`] error, never an out-of-bounds access, and
//! every loop here is bounded (at most one pad per read).

use super::atomic::Ordering;
use super::header::LaneCtl;
use super::wait::WaitCell;

/// Bytes of a record header (`len` and `flags`).
pub(crate) const RECORD_HEADER: usize = 8;
/// The `len` of a pad record.
const PAD: u32 = u32::MAX;

/// What failed validation in a lane (the caller adds the channel and lane).
#[derive(Debug)]
pub(crate) struct Corrupt(pub(crate) String);

/// Bytes a record with a `len`-byte payload occupies: header plus payload, rounded up to 8.
fn record_size(len: usize) -> u64 {
    (RECORD_HEADER + len).next_multiple_of(8) as u64
}

/// A reserved, unpublished record: where to write the payload, and what `commit` publishes.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// Position of the record header.
    start: u64,
    /// Payload length.
    len: u32,
    /// The `tail` that publishes it (and a pad before it, if any).
    end: u64,
}

impl Reservation {
    /// Ring offset of the first payload byte (8-aligned).
    pub(crate) fn payload_offset(&self, cap: usize) -> usize {
        (self.start as usize & (cap - 1)) + RECORD_HEADER
    }

    /// Payload length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }
}

/// The producer's private state for its lane.
#[derive(Debug)]
pub(crate) struct ProducerRing {
    /// Ring capacity: a power of two (validated at open, never re-read).
    cap: u64,
    /// Our tail: the authoritative copy (we are the only writer of the shared one).
    tail: u64,
    /// The consumer's head as last read from shared memory (validated).
    head: u64,
}

impl ProducerRing {
    /// Starts producing on a lane whose shared indices are `tail` and `head`.
    pub(crate) fn new(cap: usize, tail: u64, head: u64) -> Result<ProducerRing, Corrupt> {
        let cap = cap as u64;
        if tail % 8 != 0 || head % 8 != 0 || tail.wrapping_sub(head) > cap {
            return Err(Corrupt(format!(
                "lane indices out of range (head {head}, tail {tail}, capacity {cap})"
            )));
        }
        Ok(ProducerRing { cap, tail, head })
    }

    /// Whether `need` bytes are free after our tail, re-reading the consumer's head if the cached
    /// one says no.
    fn has_room(&mut self, ctl: &LaneCtl, need: u64) -> Result<bool, Corrupt> {
        if self.cap - self.tail.wrapping_sub(self.head) >= need {
            return Ok(true);
        }
        // Acquire: pairs with the consumer's Release store of head, so its reads of the bytes it
        // released happen before our overwriting them.
        let head = ctl.cons.head.load(Ordering::Acquire);
        // Valid heads lie between the cached head and our tail (both inclusive).
        if head % 8 != 0 || head.wrapping_sub(self.head) > self.tail.wrapping_sub(self.head) {
            return Err(Corrupt(format!(
                "consumer head {head} outside {}..={} (the previous head and our tail)",
                self.head, self.tail
            )));
        }
        self.head = head;
        Ok(self.cap - self.tail.wrapping_sub(self.head) >= need)
    }

    /// Reserves a record with a `len`-byte payload (`len <= cap - 8`, checked by the caller):
    /// `Ok(None)` if the ring is full now. Nothing is published except, possibly, a pad.
    pub(crate) fn try_reserve(
        &mut self,
        ctl: &LaneCtl,
        buf: &RingBuf,
        consumer: &WaitCell,
        len: usize,
    ) -> Result<Option<Reservation>, Corrupt> {
        debug_assert!(len as u64 <= self.cap - RECORD_HEADER as u64);
        let rec = record_size(len);
        let mut start = self.tail;
        let off = self.tail & (self.cap - 1);
        let to_end = self.cap - off;
        if rec > to_end {
            if self.has_room(ctl, to_end + rec)? {
                // Pad and record together, published by the record's commit.
                buf.write_header(off as usize, PAD, 0);
                start = start.wrapping_add(to_end);
            } else if self.has_room(ctl, to_end)? {
                // Publish the pad alone: once the consumer skips it, the record fits at offset 0.
                buf.write_header(off as usize, PAD, 0);
                self.publish(ctl, consumer, self.tail.wrapping_add(to_end));
                return Ok(None);
            } else {
                return Ok(None);
            }
        } else if !self.has_room(ctl, rec)? {
            return Ok(None);
        }
        Ok(Some(Reservation {
            start,
            len: len as u32,
            end: start.wrapping_add(rec),
        }))
    }

    /// Publishes a reservation made by the last `try_reserve`, after its payload was written.
    pub(crate) fn commit(
        &mut self,
        ctl: &LaneCtl,
        buf: &RingBuf,
        consumer: &WaitCell,
        r: Reservation,
    ) {
        buf.write_header((r.start & (self.cap - 1)) as usize, r.len, 0);
        self.publish(ctl, consumer, r.end);
    }

    fn publish(&mut self, ctl: &LaneCtl, consumer: &WaitCell, tail: u64) {
        self.tail = tail;
        // Release: the record (header and payload) written before becomes visible to the
        // consumer's Acquire load of tail. This store is the publication.
        ctl.prod.tail.store(tail, Ordering::Release);
        consumer.notify();
    }
}

/// A published record, lent to the consumer until it calls `release`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    /// Ring offset of the payload.
    pub(crate) offset: usize,
    /// Payload length.
    pub(crate) len: usize,
    /// The head after this record.
    next: u64,
}

/// The consumer's private state for one lane.
#[derive(Debug)]
pub(crate) struct ConsumerRing {
    cap: u64,
    /// Our head: the authoritative copy (we are the only writer of the shared one).
    head: u64,
    /// The producer's tail as last read from shared memory (validated).
    tail: u64,
}

impl ConsumerRing {
    /// Starts consuming a lane whose shared head is `head`.
    pub(crate) fn new(cap: usize, head: u64) -> Result<ConsumerRing, Corrupt> {
        if head % 8 != 0 {
            return Err(Corrupt(format!("lane head {head} is not a multiple of 8")));
        }
        Ok(ConsumerRing {
            cap: cap as u64,
            head,
            tail: head,
        })
    }

    /// Re-reads the producer's tail (validated). Returns whether anything is published.
    fn refresh(&mut self, ctl: &LaneCtl) -> Result<bool, Corrupt> {
        // Acquire: pairs with the producer's Release store of tail, so the records before it are
        // visible to our reads.
        let tail = ctl.prod.tail.load(Ordering::Acquire);
        let avail = tail.wrapping_sub(self.head);
        // The tail never moves back (it may not be below the cached one) nor runs a lap ahead.
        if tail % 8 != 0 || avail > self.cap || avail < self.tail.wrapping_sub(self.head) {
            return Err(Corrupt(format!(
                "producer tail {tail} outside {}..={} (the previous tail and head + capacity)",
                self.tail,
                self.head.wrapping_add(self.cap)
            )));
        }
        self.tail = tail;
        Ok(avail != 0)
    }

    /// The next published record, if any; skips (and releases) a pad on the way.
    pub(crate) fn peek(
        &mut self,
        ctl: &LaneCtl,
        buf: &RingBuf,
        producer: &WaitCell,
    ) -> Result<Option<Record>, Corrupt> {
        // At most two rounds: a pad (never at offset 0), then a record at offset 0.
        for _ in 0..2 {
            if self.head == self.tail {
                // Waiting: ask for the next record's first two cache lines now, so that their
                // transfer overlaps the one of `tail` instead of following it.
                buf.prefetch((self.head & (self.cap - 1)) as usize);
                if !self.refresh(ctl)? {
                    return Ok(None);
                }
            }
            let off = self.head & (self.cap - 1);
            let to_end = self.cap - off;
            let avail = self.tail.wrapping_sub(self.head);
            let (len, flags) = buf.read_header(off as usize);
            if flags != 0 {
                return Err(Corrupt(format!(
                    "record at position {} has flags {flags:#x}",
                    self.head
                )));
            }
            if len == PAD {
                if off == 0 || to_end > avail {
                    return Err(Corrupt(format!(
                        "pad at position {} (offset {off}) with {avail} bytes published",
                        self.head
                    )));
                }
                self.advance(ctl, producer, self.head.wrapping_add(to_end));
                continue;
            }
            let rec = if (len as u64) <= self.cap - RECORD_HEADER as u64 {
                record_size(len as usize)
            } else {
                u64::MAX
            };
            if rec > to_end || rec > avail {
                return Err(Corrupt(format!(
                    "record of {len} bytes at position {} (offset {off}) exceeds the {} published \
                     bytes or the ring end",
                    self.head,
                    avail.min(to_end)
                )));
            }
            return Ok(Some(Record {
                offset: off as usize + RECORD_HEADER,
                len: len as usize,
                next: self.head.wrapping_add(rec),
            }));
        }
        Err(Corrupt(format!(
            "a pad follows a pad at position {}",
            self.head
        )))
    }

    /// Gives the record returned by the last `peek` back to the producer.
    pub(crate) fn release(&mut self, ctl: &LaneCtl, producer: &WaitCell, r: Record) {
        self.advance(ctl, producer, r.next);
    }

    fn advance(&mut self, ctl: &LaneCtl, producer: &WaitCell, head: u64) {
        self.head = head;
        // Release: our reads of the released bytes happen before the producer (Acquire load of
        // head) overwrites them.
        ctl.cons.head.store(head, Ordering::Release);
        producer.notify();
    }
}

pub(crate) use buf::RingBuf;

/// The ring's bytes in a shared mapping.
#[cfg(not(loom))]
mod buf {
    use std::ptr::NonNull;

    use super::super::atomic::{AtomicU64, Ordering};

    /// One lane's ring bytes: `cap` bytes at `base`, inside a live shared mapping.
    ///
    /// Every access checks its bounds (a failed check would be a bug of the ring code, which
    /// validates all positions first: the assertions are defence in depth and never fire on
    /// hostile input).
    #[derive(Debug)]
    pub(crate) struct RingBuf {
        base: NonNull<u8>,
        cap: usize,
    }

    impl RingBuf {
        /// # Safety
        /// `base..base + cap` must be readable and writable, 8-aligned, and stay mapped for as
        /// long as this value is used.
        pub(crate) unsafe fn new(base: NonNull<u8>, cap: usize) -> RingBuf {
            RingBuf { base, cap }
        }

        fn header(&self, off: usize) -> &AtomicU64 {
            assert!(
                off % 8 == 0 && off + 8 <= self.cap,
                "ring header offset {off}"
            );
            // SAFETY: in bounds and 8-aligned (asserted; `base` is 8-aligned); the mapping is
            // live (contract of `new`); AtomicU64 accepts any bit pattern, and other processes
            // access these bytes only atomically or not at all while we do.
            unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(off).cast()) }
        }

        /// Writes a record header. Relaxed: published by the later Release store of tail.
        pub(crate) fn write_header(&self, off: usize, len: u32, flags: u32) {
            self.header(off)
                .store(u64::from(len) | u64::from(flags) << 32, Ordering::Relaxed);
        }

        /// Reads a record header. Relaxed: ordered after the Acquire load of tail.
        pub(crate) fn read_header(&self, off: usize) -> (u32, u32) {
            let word = self.header(off).load(Ordering::Relaxed);
            (word as u32, (word >> 32) as u32)
        }

        /// Hints the CPU to fetch the cache lines at `off` and `off + 64` (those inside the
        /// ring). A prefetch reads nothing into the program and cannot fault, so it has no
        /// effect on what the ring protocol sees; it only makes a later read of those lines
        /// cheaper if nobody writes them meanwhile.
        #[inline]
        pub(crate) fn prefetch(&self, off: usize) {
            #[cfg(target_arch = "x86_64")]
            for line in [off, off + 64] {
                if line < self.cap {
                    let p = self.ptr(line, 0);
                    // SAFETY: `_mm_prefetch` needs SSE, which every x86-64 CPU has; it takes
                    // any address (a hint, never a memory access the program observes), and
                    // `p` is inside the ring anyway.
                    unsafe {
                        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                            p.cast::<i8>(),
                        )
                    };
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = off;
        }

        /// The address of `len` bytes at `off`, bounds-checked.
        pub(crate) fn ptr(&self, off: usize, len: usize) -> *mut u8 {
            assert!(
                off <= self.cap && len <= self.cap - off,
                "ring range {off}+{len}"
            );
            // SAFETY: `off <= cap`, so the result is inside (or one past) the ring's mapping.
            unsafe { self.base.as_ptr().add(off) }
        }

        /// Copies `src` into the ring at `off`.
        pub(crate) fn write(&self, off: usize, src: &[u8]) {
            let dst = self.ptr(off, src.len());
            // SAFETY: `dst..dst + len` is inside the ring (checked by `ptr`); `src` is our own
            // memory, which cannot overlap the shared mapping's unpublished bytes we own.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        }

        /// Appends `len` bytes at `off` to `out` (no zero-filling; no allocation when `out` has
        /// the capacity).
        pub(crate) fn append_to(&self, off: usize, len: usize, out: &mut Vec<u8>) {
            let src = self.ptr(off, len);
            out.reserve(len);
            let spare = &mut out.spare_capacity_mut()[..len];
            // SAFETY: `src..src + len` is inside the ring (checked by `ptr`); `spare` is `len`
            // bytes of `out`'s own unused capacity, which cannot overlap the mapping.
            unsafe { std::ptr::copy_nonoverlapping(src, spare.as_mut_ptr().cast::<u8>(), len) };
            // SAFETY: the `len` bytes after the old length were initialised just above.
            unsafe { out.set_len(out.len() + len) };
        }
    }
}

/// The ring's bytes in a loom model: one tracked cell per 8-byte word, so loom reports any
/// payload or header access that is not ordered by the tail/head protocol as a data race.
#[cfg(loom)]
mod buf {
    use loom::cell::UnsafeCell;

    pub(crate) struct RingBuf {
        words: Box<[UnsafeCell<u64>]>,
    }

    impl RingBuf {
        pub(crate) fn new_model(cap: usize) -> RingBuf {
            RingBuf {
                words: (0..cap / 8).map(|_| UnsafeCell::new(0)).collect(),
            }
        }

        fn store(&self, word: usize, value: u64) {
            // SAFETY: loom checks that no other access to this word is concurrent with this one.
            self.words[word].with_mut(|p| unsafe { *p = value });
        }

        fn load(&self, word: usize) -> u64 {
            // SAFETY: as in `store`.
            self.words[word].with(|p| unsafe { *p })
        }

        pub(crate) fn write_header(&self, off: usize, len: u32, flags: u32) {
            self.store(off / 8, u64::from(len) | u64::from(flags) << 32);
        }

        /// A prefetch touches nothing the model tracks.
        pub(crate) fn prefetch(&self, _off: usize) {}

        pub(crate) fn read_header(&self, off: usize) -> (u32, u32) {
            let w = self.load(off / 8);
            (w as u32, (w >> 32) as u32)
        }

        /// Writes whole words (payloads are padded to 8 in their record).
        pub(crate) fn write(&self, off: usize, src: &[u8]) {
            for (i, chunk) in src.chunks(8).enumerate() {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                self.store(off / 8 + i, u64::from_le_bytes(w));
            }
        }

        pub(crate) fn read(&self, off: usize, dst: &mut [u8]) {
            for (i, chunk) in dst.chunks_mut(8).enumerate() {
                let w = self.load(off / 8 + i).to_le_bytes();
                chunk.copy_from_slice(&w[..chunk.len()]);
            }
        }
    }
}
