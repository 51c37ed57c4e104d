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
//! | len: u32 | stamp: u32 | payload (len bytes) | zero to 7 bytes of padding |
//! ```
//! A record starts at a multiple of 8 and never wraps around the ring end, so the consumer can lend
//! it in place (`recv_ref`). When a record does not fit before the end, the producer first writes a
//! PAD record (`len == u32::MAX`) meaning "skip to the ring start". If the ring has room for the
//! pad and the record, both are written and published by the record's commit — the record's
//! header at offset 0 first, then the pad's header, whose store publishes both — so a
//! reservation that is never committed (a dropped slot, a producer killed in the middle of its
//! copy) has changed nothing the consumer reads; otherwise the pad is published
//! alone, so that a record of up to `capacity - 8` bytes always fits once the consumer has caught
//! up (a pad published together with a full-size record could never fit).
//!
//! # Publication
//! `head` and `tail` are byte positions that only grow (the offset is `pos & (cap - 1)`). A record
//! is published by the producer's Release store of its header, after the payload is written; the
//! header's `stamp` is a function of the record's position ([`stamp`]: never 0, different for the
//! same offset in consecutive laps), so the consumer, which polls the header at its `head` with
//! an Acquire load, knows a record is there when it finds its own position's stamp — without
//! reading `tail`, a cache line fewer per message. Whatever else the word holds (an older lap's
//! header, zero) means "nothing yet". A stale *payload* word of an earlier lap could hold any
//! value, so before publishing a record the producer clears the word right after it (the next
//! header's place) whenever that word is free; when it is not free, it holds the header of an
//! unconsumed record of the current lap, whose stamp is not the next lap's. The producer still
//! stores `tail` (Release) after each record, for a producer that takes over the lane and for
//! the crash recovery's "drained" check. The consumer releases bytes by its Release store of
//! `head` after reading them. A producer stopped at any instruction, killed included, therefore
//! never exposes a partial record: what it had not published is invisible.
//!
//! # Untrusted indices
//! Each side's own index is private and authoritative; the other side's, and every record header,
//! is read from shared memory and validated before use (the consumer's head: a multiple of 8,
//! between the last one seen and our tail; a record: `len <= cap - 8`, before the ring end, pads
//! only after offset 0). A violation is a [`Corrupt`] error, never an out-of-bounds access, and
//! every loop here is bounded (at most one pad per read). A header with a foreign stamp is
//! "nothing yet", so a hostile peer can otherwise at worst make a lane look empty or deliver
//! garbage bytes.

use super::atomic::Ordering;
use super::header::LaneCtl;
use super::wait::WaitCell;

/// Bytes of a record header (`len` and `flags`).
pub(crate) const RECORD_HEADER: usize = 8;
/// The `len` of a pad record.
const PAD: u32 = u32::MAX;
/// Bytes of a cache line (rings are page-aligned, so their lines start at multiples of it).
pub(crate) const CACHE_LINE: usize = 64;
/// How far ahead of its tail a producer asks for its next lines for writing (a quarter of the
/// ring if that is less): see [`ProducerRing::publish_record`].
const WRITE_AHEAD: u64 = 32 * 1024;

/// What failed validation in a lane (the caller adds the channel and lane).
#[derive(Debug)]
pub(crate) struct Corrupt(pub(crate) String);

/// Bytes a record with a `len`-byte payload occupies: header plus payload, rounded up to 8.
#[inline]
fn record_size(len: usize) -> u64 {
    (RECORD_HEADER + len).next_multiple_of(8) as u64
}

/// The stamp of a record header at byte position `pos`: never 0 (so zeroed memory and cleared
/// words are never a record), and different from the stamp at `pos - cap` for every ring
/// capacity (`cap / 8` is even and below 2^32, so the two values differ above bit 0).
#[inline]
pub(crate) fn stamp(pos: u64) -> u32 {
    ((pos >> 3) as u32) | 1
}

/// A reserved, unpublished record: where to write the payload, and what `commit` publishes.
///
/// Reserving writes nothing the consumer can see: a pad the record needs before it (to skip the
/// ring's end) is only written by `commit`, after the record. A reservation that is dropped, or
/// whose producer dies, leaves the lane exactly as the last commit left it.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// Position of the pad that precedes the record at the ring start, if the record wraps.
    pad: Option<u64>,
    /// Position of the record header.
    start: u64,
    /// Payload length.
    len: u32,
    /// The `tail` that publishes it (and a pad before it, if any).
    end: u64,
}

impl Reservation {
    /// Ring offset of the first payload byte (8-aligned).
    #[inline]
    pub(crate) fn payload_offset(&self, cap: usize) -> usize {
        (self.start as usize & (cap - 1)) + RECORD_HEADER
    }

    /// Whether the record is a whole number of 64-byte lines and ends on a line boundary, so
    /// that the next header's place (which `clear_next` clears) is on a line the record does
    /// not touch. (The size is checked first: constant for a stream of one message size, it
    /// keeps this test off the path of records of other sizes. Those end on a line now and then
    /// too, as one in eight 64-byte messages does, but a test of each record's end cost a
    /// one-thread send and receive of 64 bytes about 2.5 ns, a tenth.)
    #[inline]
    pub(crate) fn ends_on_a_line(&self) -> bool {
        let line = CACHE_LINE as u64;
        self.end.wrapping_sub(self.start).is_multiple_of(line) && self.end.is_multiple_of(line)
    }

    /// Payload length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Makes the record `len` bytes long (at most its reserved length): it then ends earlier,
    /// and the rest of the reserved room stays free for the next record. Nothing was published,
    /// so only this reservation changes.
    pub(crate) fn shrink(&mut self, len: usize) {
        debug_assert!(len <= self.len as usize);
        self.len = len as u32;
        self.end = self.start.wrapping_add(record_size(len));
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
    /// How far past a record the line `publish_record` prefetches for writing lies.
    ahead: u64,
}

impl ProducerRing {
    /// Starts producing on a lane whose shared indices are `tail` and `head`.
    pub(crate) fn new(cap: usize, tail: u64, head: u64) -> Result<ProducerRing, Corrupt> {
        let cap = cap as u64;
        if !tail.is_multiple_of(8) || !head.is_multiple_of(8) || tail.wrapping_sub(head) > cap {
            return Err(Corrupt(format!(
                "lane indices out of range (head {head}, tail {tail}, capacity {cap})"
            )));
        }
        Ok(ProducerRing {
            cap,
            tail,
            head,
            ahead: (cap / 4).min(WRITE_AHEAD),
        })
    }

    /// The position after the last record (or pad) this producer published.
    pub(crate) fn published(&self) -> u64 {
        self.tail
    }

    /// Whether `need` bytes are free after our tail, re-reading the consumer's head if the cached
    /// one says no.
    #[inline(always)]
    fn has_room(&mut self, ctl: &LaneCtl, need: u64) -> Result<bool, Corrupt> {
        if self.cap - self.tail.wrapping_sub(self.head) >= need {
            return Ok(true);
        }
        self.reload_head(ctl, need)
    }

    /// `has_room` when the cached head says no: reads the consumer's head (once per batch of
    /// records, not per record) and validates it before caching it.
    #[inline(never)]
    fn reload_head(&mut self, ctl: &LaneCtl, need: u64) -> Result<bool, Corrupt> {
        // Acquire: pairs with the consumer's Release store of head, so its reads of the bytes it
        // released happen before our overwriting them.
        let head = ctl.cons.head.load(Ordering::Acquire);
        // Valid heads lie between the cached head and our tail (both inclusive).
        if !head.is_multiple_of(8)
            || head.wrapping_sub(self.head) > self.tail.wrapping_sub(self.head)
        {
            return Err(Corrupt(format!(
                "consumer head {head} outside {}..={} (the previous head and our tail)",
                self.head, self.tail
            )));
        }
        self.head = head;
        Ok(self.cap - self.tail.wrapping_sub(self.head) >= need)
    }

    /// Reserves a record with a `len`-byte payload (`len <= cap - 8`, checked by the caller):
    /// `Ok(None)` if the ring is full now. Nothing of the reservation is published (written where
    /// the consumer looks) before `commit`. When only a pad fits before the ring end, the pad is
    /// published alone, as a complete record of its own, and `Ok(None)` returned: the lane is
    /// consistent at every instruction.
    #[inline(always)]
    pub(crate) fn try_reserve(
        &mut self,
        ctl: &LaneCtl,
        buf: &RingBuf,
        consumer: &WaitCell,
        len: usize,
    ) -> Result<Option<Reservation>, Corrupt> {
        debug_assert!(len as u64 <= self.cap - RECORD_HEADER as u64);
        let rec = record_size(len);
        let off = self.tail & (self.cap - 1);
        if rec > self.cap - off {
            return self.try_reserve_wrapping(ctl, buf, consumer, len, rec);
        }
        if !self.has_room(ctl, rec)? {
            return Ok(None);
        }
        Ok(Some(Reservation {
            pad: None,
            start: self.tail,
            len: len as u32,
            end: self.tail.wrapping_add(rec),
        }))
    }

    /// `try_reserve` of a `rec`-byte record that does not fit before the ring end (once per
    /// lap): a pad first.
    #[inline(never)]
    fn try_reserve_wrapping(
        &mut self,
        ctl: &LaneCtl,
        buf: &RingBuf,
        consumer: &WaitCell,
        len: usize,
        rec: u64,
    ) -> Result<Option<Reservation>, Corrupt> {
        let off = self.tail & (self.cap - 1);
        let to_end = self.cap - off;
        if self.has_room(ctl, to_end + rec)? {
            // A pad, then the record at offset 0, both written and published by `commit`:
            // nothing here is visible before it (the consumer polls the pad's place, which
            // still holds an older lap's header or a cleared word).
            let start = self.tail.wrapping_add(to_end);
            Ok(Some(Reservation {
                pad: Some(self.tail),
                start,
                len: len as u32,
                end: start.wrapping_add(rec),
            }))
        } else if self.has_room(ctl, to_end)? {
            // Publish the pad alone: once the consumer skips it, the record fits at offset 0.
            buf.write_header(off as usize, PAD, stamp(self.tail));
            self.publish(ctl, consumer, self.tail.wrapping_add(to_end));
            Ok(None)
        } else {
            Ok(None)
        }
    }

    /// Publishes a reservation made by the last `try_reserve`, after its payload was written.
    #[inline(always)]
    pub(crate) fn commit(
        &mut self,
        ctl: &LaneCtl,
        buf: &RingBuf,
        consumer: &WaitCell,
        r: Reservation,
    ) {
        self.clear_next(ctl, buf, &r);
        self.publish_record(ctl, buf, consumer, r);
    }

    /// The first half of `commit`: the next header's place, if free, must not hold a stale
    /// payload word that could pass for the next record. Cleared before the Release store of
    /// `publish_record` publishes this record, so a consumer that sees the record also sees the
    /// cleared word. (A consumer head that fails validation counts as "not free": then only
    /// garbage can follow, never UB.)
    #[inline(always)]
    pub(crate) fn clear_next(&mut self, ctl: &LaneCtl, buf: &RingBuf, r: &Reservation) {
        if matches!(
            self.has_room(ctl, r.end.wrapping_sub(self.tail) + 8),
            Ok(true)
        ) {
            buf.clear_header((r.end & (self.cap - 1)) as usize);
        }
    }

    /// The second half of `commit`, after `clear_next` and the whole payload: publishes the
    /// record by its header's Release store.
    ///
    /// Then, after a record of at most two cache lines, it asks for the line `ahead` bytes past
    /// it for writing (`prefetchw`). A stream of small records otherwise waits, line after line,
    /// for each line's ownership to come back from the consumer's cache or the shared one (the
    /// consumer read it a lap ago); asked for early, that transfer overlaps the records in
    /// between. Measured across processes on an Intel host, pinned, 64-byte messages through
    /// 4 MiB lanes: 0.56–0.72 GB/s without, 1.3–1.6 GB/s 32 KiB ahead; 4 KiB ahead gave about
    /// 1.1, 128 KiB and more nothing; through 64 KiB lanes (16 KiB ahead) 0.47–0.78 GB/s became
    /// 1.0–1.3. Larger records gain nothing (their run of stores is what the CPU's own
    /// prefetcher follows), and 1 KiB records prefetched this way streamed slower between two
    /// threads (the `stream` bench: 231 ns a message against 140–170), so they are left out.
    /// A hint only: it changes no value either side reads.
    #[inline(always)]
    pub(crate) fn publish_record(
        &mut self,
        ctl: &LaneCtl,
        buf: &RingBuf,
        consumer: &WaitCell,
        r: Reservation,
    ) {
        buf.write_header((r.start & (self.cap - 1)) as usize, r.len, stamp(r.start));
        if let Some(pad) = r.pad {
            // Last: the consumer reaches the record at offset 0 only through the pad, so the
            // pad's Release store publishes both (and the record header is in place before it).
            buf.write_header((pad & (self.cap - 1)) as usize, PAD, stamp(pad));
        }
        // Whatever the cached head says: when the ring is nearly full the line may hold a record
        // the consumer has yet to read, which the hint then only moves early. (Skipping such
        // lines by the cached head, which lags by up to a lap, measured 0.63–1.03 GB/s instead
        // of 1.0–1.6.)
        if r.end.wrapping_sub(r.start) <= 2 * CACHE_LINE as u64 {
            buf.prefetch_write((r.end.wrapping_add(self.ahead) & (self.cap - 1)) as usize);
        }
        self.publish(ctl, consumer, r.end);
    }

    #[inline(always)]
    fn publish(&mut self, ctl: &LaneCtl, consumer: &WaitCell, tail: u64) {
        self.tail = tail;
        // Release: a producer taking over the lane, or a recovery checking "drained", that
        // loads tail with Acquire sees the records before it. (Consumers poll the headers.)
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
}

impl ConsumerRing {
    /// Starts consuming a lane whose shared head is `head`.
    pub(crate) fn new(cap: usize, head: u64) -> Result<ConsumerRing, Corrupt> {
        if !head.is_multiple_of(8) {
            return Err(Corrupt(format!("lane head {head} is not a multiple of 8")));
        }
        Ok(ConsumerRing {
            cap: cap as u64,
            head,
        })
    }

    /// The next published record, if any; skips (and releases) a pad on the way.
    ///
    /// The common case — a record at our head that fits before the ring end — is checked here;
    /// pads and everything that fails validation go to `peek_slow`, which reads the header again
    /// and validates it itself.
    #[inline(always)]
    pub(crate) fn peek(
        &mut self,
        ctl: &LaneCtl,
        buf: &RingBuf,
        producer: &WaitCell,
    ) -> Result<Option<Record>, Corrupt> {
        let off = self.head & (self.cap - 1);
        // The header and the cache line after it: the payload's transfer overlaps the header's
        // when a record has just been published. A trade: on an Intel host, without it a
        // pinned 64-byte ping-pong took 330 ns one way instead of 252–300, and a 64-byte stream
        // ran 805–840 MB/s instead of 690–770 (a consumer that has caught up prefetches lines
        // the producer is writing). Prefetching only after a record or after several empty
        // polls was no better than either; a producer's prefetch for writing of its record's
        // lines made both worse.
        buf.prefetch(off as usize);
        let (len, stamp_found) = buf.read_header(off as usize);
        if stamp_found != stamp(self.head) {
            // Nothing published here yet (an older lap's header, a cleared word).
            return Ok(None);
        }
        // `len <= cap - 8` (so `record_size` cannot overflow, and a pad's `u32::MAX` is out)
        // and the record ends before the ring end.
        if u64::from(len) <= self.cap - RECORD_HEADER as u64
            && record_size(len as usize) <= self.cap - off
        {
            return Ok(Some(Record {
                offset: off as usize + RECORD_HEADER,
                len: len as usize,
                next: self.head.wrapping_add(record_size(len as usize)),
            }));
        }
        self.peek_slow(ctl, buf, producer)
    }

    /// `peek` of a pad (once per lap) or of a header that fails validation.
    #[inline(never)]
    fn peek_slow(
        &mut self,
        ctl: &LaneCtl,
        buf: &RingBuf,
        producer: &WaitCell,
    ) -> Result<Option<Record>, Corrupt> {
        // At most two rounds: a pad (never at offset 0), then a record at offset 0.
        for _ in 0..2 {
            let off = self.head & (self.cap - 1);
            let to_end = self.cap - off;
            let (len, stamp_found) = buf.read_header(off as usize);
            if stamp_found != stamp(self.head) {
                // Nothing published here yet (an older lap's header, a cleared word).
                return Ok(None);
            }
            if len == PAD {
                if off == 0 {
                    return Err(Corrupt(format!("pad at position {} (offset 0)", self.head)));
                }
                self.advance(ctl, producer, self.head.wrapping_add(to_end));
                continue;
            }
            let rec = if (len as u64) <= self.cap - RECORD_HEADER as u64 {
                record_size(len as usize)
            } else {
                u64::MAX
            };
            if rec > to_end {
                return Err(Corrupt(format!(
                    "record of {len} bytes at position {} (offset {off}) runs past the ring end",
                    self.head
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

    /// How many bytes the producer has published past our head, by its `tail`: a hint for
    /// pacing (`wait::let_ahead`), never validated and never used to find or read a record.
    #[inline]
    pub(crate) fn backlog(&self, ctl: &LaneCtl) -> u64 {
        // Relaxed: a hint; nothing is read on its strength.
        ctl.prod
            .tail
            .load(Ordering::Relaxed)
            .wrapping_sub(self.head)
    }

    /// Gives the record returned by the last `peek` back to the producer.
    #[inline(always)]
    pub(crate) fn release(&mut self, ctl: &LaneCtl, producer: &WaitCell, r: Record) {
        self.advance(ctl, producer, r.next);
    }

    #[inline(always)]
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
    use std::mem::MaybeUninit;
    use std::ptr::NonNull;

    use super::super::atomic::{AtomicU64, Ordering};
    use crate::error::Object;
    use crate::shared::{wide_copy, SharedSlice, WIDE_COPY_MIN};

    /// One lane's ring bytes: `cap` bytes at `base`, inside a live shared mapping.
    ///
    /// Other processes write these bytes whenever they like (a hostile peer included), so this
    /// process touches them only atomically: headers as `AtomicU64`, payloads by relaxed
    /// `AtomicU64` word copies (`write`, `append_to`: payloads are 8-aligned and records a
    /// whole number of words) or, from `WIDE_COPY_MIN` bytes, one byte-wise atomic wide
    /// copy (`shared::wide_copy`), and lent out only as [`SharedSlice`]s — never as `&[u8]`.
    ///
    /// Every access checks its bounds (a failed check would be a bug of the ring code, which
    /// validates all positions first: the assertions are defence in depth and never fire on
    /// hostile input).
    #[derive(Debug)]
    pub(crate) struct RingBuf {
        base: NonNull<u8>,
        cap: usize,
    }

    /// Whether this CPU has `prefetchw` (CPUID leaf 0x8000_0001, ECX bit 8, which Linux shows
    /// as `3dnowprefetch`), asked once per process: the instruction is defined only where the
    /// bit is set (Intel from Broadwell on, AMD since 3DNow!), so it is never issued without.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[inline]
    pub(super) fn has_prefetchw() -> bool {
        static HAS: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
            use std::arch::x86_64::__cpuid;
            // (`__cpuid` is a safe function from Rust 1.94 on, an unsafe one before.)
            #[allow(unused_unsafe)]
            // SAFETY: every x86-64 CPU has `cpuid`, and leaf 0x8000_0000 (the highest extended
            // leaf) exists on all of them; 0x8000_0001 is asked only if it exists.
            unsafe {
                __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 8) != 0
            }
        });
        *HAS
    }

    impl RingBuf {
        /// # Safety
        /// `base..base + cap` must be readable and writable, 8-aligned, stay mapped for as long
        /// as this value is used, and be accessed by this process only atomically (through
        /// `RingBuf`s and `SharedSlice`s).
        pub(crate) unsafe fn new(base: NonNull<u8>, cap: usize) -> RingBuf {
            RingBuf { base, cap }
        }

        #[inline]
        /// The 8-byte word at `off` (a record header, or a payload word), as an atomic.
        fn word(&self, off: usize) -> &AtomicU64 {
            assert!(
                off.is_multiple_of(8) && off + 8 <= self.cap,
                "ring word offset {off}"
            );
            // SAFETY: in bounds and 8-aligned (asserted; `base` is 8-aligned); the mapping is
            // live (contract of `new`); AtomicU64 accepts any bit pattern, and this process
            // accesses these bytes only atomically.
            unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(off).cast()) }
        }

        /// Publishes a record header. Release: the payload written before it (and the cleared
        /// next header) is visible to a consumer whose Acquire load finds this header.
        #[inline]
        pub(crate) fn write_header(&self, off: usize, len: u32, stamp: u32) {
            self.word(off)
                .store(u64::from(len) | u64::from(stamp) << 32, Ordering::Release);
        }

        /// Clears a header's place (no record). Relaxed: published by the Release store of the
        /// record header that follows it in program order.
        #[inline]
        pub(crate) fn clear_header(&self, off: usize) {
            self.word(off).store(0, Ordering::Relaxed);
        }

        /// Reads a record header: `(len, stamp)`. Acquire: pairs with `write_header`.
        #[inline]
        pub(crate) fn read_header(&self, off: usize) -> (u32, u32) {
            let word = self.word(off).load(Ordering::Acquire);
            (word as u32, (word >> 32) as u32)
        }

        /// Hints the CPU to fetch the cache lines at `off` and `off + 64` (those inside the
        /// ring). A prefetch reads nothing into the program and cannot fault, so it has no
        /// effect on what the ring protocol sees; it only makes a later read of those lines
        /// cheaper if nobody writes them meanwhile.
        #[inline]
        pub(crate) fn prefetch(&self, off: usize) {
            #[cfg(target_arch = "x86_64")]
            for line in [off, off + super::CACHE_LINE] {
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

        /// Hints the CPU to fetch the cache line at `off` for writing (`prefetchw`, on x86-64
        /// CPUs that have it): its ownership is requested now, so that a store to it later need
        /// not wait for that. No effect on what any process reads.
        #[inline]
        pub(crate) fn prefetch_write(&self, off: usize) {
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            if has_prefetchw() {
                let p = self.ptr(off, 0);
                // SAFETY: `prefetchw` exists on this CPU (checked just above); it takes any
                // address (a hint: it never faults and writes nothing), and `p` is inside the
                // ring anyway.
                unsafe {
                    std::arch::asm!(
                        "prefetchw byte ptr [{p}]",
                        p = in(reg) p,
                        options(nostack, preserves_flags, readonly)
                    )
                };
            }
            #[cfg(any(not(target_arch = "x86_64"), miri))]
            let _ = off;
        }

        /// The address of `len` bytes at `off`, bounds-checked.
        #[inline]
        fn ptr(&self, off: usize, len: usize) -> *mut u8 {
            assert!(
                off <= self.cap && len <= self.cap - off,
                "ring range {off}+{len}"
            );
            // SAFETY: `off <= cap`, so the result is inside (or one past) the ring's mapping.
            unsafe { self.base.as_ptr().add(off) }
        }

        /// The `words` 8-byte words from `off` (8-aligned), as atomics: checked once here, so
        /// that the copies below make one bounds check per message, not one per word.
        #[inline]
        fn words(&self, off: usize, words: usize) -> *mut u64 {
            assert!(off.is_multiple_of(8), "ring word offset {off}");
            let bytes = words.checked_mul(8).expect("ring word count");
            self.ptr(off, bytes).cast::<u64>()
        }

        /// Copies `src` into the ring at `off` (8-aligned: a payload) by relaxed atomic word
        /// stores (its whole words by one `wide_copy` from `WIDE_COPY_MIN` bytes), published by
        /// the record's header. The last word is completed with zeros: it
        /// runs into the record's own padding (a record is a whole number of words, inside the
        /// ring), which thus never carries stale bytes.
        #[inline]
        pub(crate) fn write(&self, off: usize, src: &[u8]) {
            let dst = self.words(off, src.len().div_ceil(8));
            let whole = src.len() / 8 * 8;
            // SAFETY: the first `whole` bytes of the range `words` checked (in bounds); `src` is
            // the caller's memory, not the ring's, so they do not overlap; this process accesses
            // ring bytes only atomically (contract of `new`), which `wide_copy` is.
            if whole >= WIDE_COPY_MIN && unsafe { wide_copy(src.as_ptr(), dst.cast::<u8>(), whole) }
            {
                return self.write_last_word(dst, src);
            }
            let mut chunks = src.chunks_exact(8);
            let mut k = 0;
            for chunk in &mut chunks {
                let mut word = [0; 8];
                word.copy_from_slice(chunk);
                // SAFETY: word `k < len / 8` of the range `words` checked (in bounds, 8-aligned:
                // `base` and `off` are); this process accesses ring bytes only atomically
                // (contract of `new`), and AtomicU64 accepts any bytes.
                unsafe { AtomicU64::from_ptr(dst.add(k)) }
                    .store(u64::from_ne_bytes(word), Ordering::Relaxed);
                k += 1;
            }
            debug_assert_eq!(k * 8, src.len() / 8 * 8);
            self.write_last_word(dst, src);
        }

        /// The last, partial word of a payload `src` being written at `dst` (a range `words`
        /// checked for all of `src`), completed with zeros; nothing if `src` ends on a word.
        #[inline]
        fn write_last_word(&self, dst: *mut u64, src: &[u8]) {
            let rest = &src[src.len() / 8 * 8..];
            if !rest.is_empty() {
                let mut word = [0; 8];
                word[..rest.len()].copy_from_slice(rest);
                // SAFETY: word `len / 8`, the last of the checked range (it exists: `len % 8`
                // bytes remain); in bounds and 8-aligned, accessed only atomically.
                unsafe { AtomicU64::from_ptr(dst.add(src.len() / 8)) }
                    .store(u64::from_ne_bytes(word), Ordering::Relaxed);
            }
        }

        /// Appends `len` bytes at `off` (8-aligned: a payload) to `out`, by relaxed atomic word
        /// loads (one `wide_copy` from `WIDE_COPY_MIN` bytes) after the header's Acquire load.
        /// No allocation when `out` has the capacity,
        /// and no zero-filling first: each word goes straight into `out`. The last word may run
        /// into the record's padding (the record is a whole number of words, inside the ring);
        /// only its first `len % 8` bytes are kept.
        #[inline]
        pub(crate) fn append_to(&self, off: usize, len: usize, out: &mut Vec<u8>) {
            let src = self.words(off, len.div_ceil(8));
            out.reserve(len);
            let old = out.len();
            let dst = &mut out.spare_capacity_mut()[..len];
            let to = dst.as_mut_ptr().cast::<u8>();
            // SAFETY: `len` bytes of the range `words` checked (in bounds), into `len` bytes of
            // `out`'s spare capacity (a unique borrow, so no overlap); this process accesses ring
            // bytes only atomically (contract of `new`), which `wide_copy` is.
            let wide = len >= WIDE_COPY_MIN && unsafe { wide_copy(src.cast::<u8>(), to, len) };
            if wide {
                // SAFETY: `wide_copy` wrote the `len` bytes after the old length, and
                // `reserve` made room for them.
                unsafe { out.set_len(old + len) };
                return;
            }
            let mut chunks = dst.chunks_exact_mut(8);
            let mut k = 0;
            for chunk in &mut chunks {
                // SAFETY: word `k < len / 8` of the range `words` checked (in bounds, 8-aligned);
                // this process accesses ring bytes only atomically (contract of `new`).
                let word = unsafe { AtomicU64::from_ptr(src.add(k)) }
                    .load(Ordering::Relaxed)
                    .to_ne_bytes();
                chunk.copy_from_slice(&word.map(MaybeUninit::new));
                k += 1;
            }
            let rest = chunks.into_remainder();
            if !rest.is_empty() {
                // SAFETY: as above: the last word of the checked range.
                let word = unsafe { AtomicU64::from_ptr(src.add(k)) }
                    .load(Ordering::Relaxed)
                    .to_ne_bytes();
                rest.copy_from_slice(&word.map(MaybeUninit::new)[..rest.len()]);
            }
            // SAFETY: the `len` bytes after the old length were all written just above (whole
            // words, then the remainder), and `reserve` made room for them.
            unsafe { out.set_len(old + len) };
        }

        /// `len` bytes at `off` as a [`SharedSlice`] named `object`.
        #[inline]
        pub(crate) fn shared<'a>(
            &'a self,
            off: usize,
            len: usize,
            object: &'a Object,
        ) -> SharedSlice<'a> {
            let ptr = self.ptr(off, len);
            // SAFETY: inside the ring (checked by `ptr`), which stays mapped while `self` lives
            // (the borrow) and which this process accesses only atomically (contract of `new`);
            // `ptr` is non-null, being inside a mapping.
            unsafe { SharedSlice::from_raw_parts(NonNull::new_unchecked(ptr), len, true, object) }
        }
    }
}

/// The ring's bytes in a loom model: **one** loom atomic per 8-byte word, used for headers and
/// payloads alike, as in shared memory. Headers are stored and loaded with the orderings of the
/// real ring; payload words with relaxed stores and loads, as the real ring's copies do. So
/// loom explores every value a read may return: a payload read not ordered after its write (by
/// the header's Release/Acquire pair) can return an older value and fail the model's content
/// check, and a stale payload word of an earlier lap sits exactly where the consumer polls for
/// the next header, so "a stale payload word read as a header" is a reachable state if the
/// protocol allowed it.
#[cfg(loom)]
mod buf {
    use loom::sync::atomic::{AtomicU64, Ordering};

    pub(crate) struct RingBuf {
        words: Box<[AtomicU64]>,
    }

    impl RingBuf {
        pub(crate) fn new_model(cap: usize) -> RingBuf {
            RingBuf {
                words: (0..cap / 8).map(|_| AtomicU64::new(0)).collect(),
            }
        }

        pub(crate) fn write_header(&self, off: usize, len: u32, stamp: u32) {
            self.words[off / 8].store(u64::from(len) | u64::from(stamp) << 32, Ordering::Release);
        }

        pub(crate) fn clear_header(&self, off: usize) {
            self.words[off / 8].store(0, Ordering::Relaxed);
        }

        /// A prefetch touches nothing the model tracks.
        pub(crate) fn prefetch(&self, _off: usize) {}

        pub(crate) fn prefetch_write(&self, _off: usize) {}

        pub(crate) fn read_header(&self, off: usize) -> (u32, u32) {
            let w = self.words[off / 8].load(Ordering::Acquire);
            (w as u32, (w >> 32) as u32)
        }

        /// Writes whole words (payloads are padded to 8 in their record), relaxed.
        pub(crate) fn write(&self, off: usize, src: &[u8]) {
            for (i, chunk) in src.chunks(8).enumerate() {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                self.words[off / 8 + i].store(u64::from_le_bytes(w), Ordering::Relaxed);
            }
        }

        /// Reads whole words, relaxed.
        pub(crate) fn read(&self, off: usize, dst: &mut [u8]) {
            for (i, chunk) in dst.chunks_mut(8).enumerate() {
                let w = self.words[off / 8 + i]
                    .load(Ordering::Relaxed)
                    .to_le_bytes();
                chunk.copy_from_slice(&w[..chunk.len()]);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::ptr::NonNull;

    use super::{record_size, stamp, RingBuf, RECORD_HEADER};
    use crate::channel::Options;
    use crate::shared::WIDE_COPY_MIN;
    use crate::Error;

    /// The copies in and out, for every length across three words and around the length from
    /// which they become one string copy, in a ring full of stale bytes: what is read back is
    /// what was written, `append_to` keeps what `out` held, and the rest of the payload's last
    /// word (the record's padding) is zeros, not stale bytes.
    #[test]
    fn payload_copies_are_exact_and_pad_the_last_word_with_zeros() {
        const LONGEST: usize = 4096 + 17;
        const CAP: usize = 2 * 4096;
        let mut memory = vec![u64::MAX; CAP / 8];
        let base = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: CAP bytes of a live, 8-aligned allocation, used only through `ring` until
        // `memory` is read again below, after the last use of `ring`.
        let ring = unsafe { RingBuf::new(base, CAP) };
        let lens = (0..=24)
            .chain(WIDE_COPY_MIN - 17..=WIDE_COPY_MIN + 17)
            .chain(4096 - 17..=LONGEST);
        for len in lens {
            let msg: Vec<u8> = (1..=len).map(|i| i as u8).collect();
            ring.write(16, &msg);
            let mut out = vec![0xee];
            ring.append_to(16, len, &mut out);
            assert_eq!(out[0], 0xee, "len {len}: append_to overwrote what out held");
            assert_eq!(&out[1..], &msg[..], "len {len}");
            if len % 8 != 0 {
                let mut last = vec![];
                ring.append_to(16 + len / 8 * 8, 8, &mut last);
                assert_eq!(
                    &last[len % 8..],
                    &vec![0; 8 - len % 8][..],
                    "len {len}: padding"
                );
            }
        }
        // Nothing outside the payload's words was touched: the header's word before it, and
        // the words after the longest payload.
        assert_eq!(memory[1], u64::MAX);
        let end = (16 + LONGEST).div_ceil(8);
        assert!(memory[end..].iter().all(|&w| w == u64::MAX));
    }

    /// A payload whose every word, once stale, would pass for an 8-byte record of the *next* lap
    /// at its own position: exactly what the producer's clearing of the next header's place must
    /// defuse. Positions are those of a fresh lane: the first record header is at 0.
    fn forged_payload(start: u64, len: usize, cap: u64) -> Vec<u8> {
        (0..len / 8)
            .flat_map(|i| {
                let pos = start + RECORD_HEADER as u64 + 8 * i as u64;
                (8u64 | u64::from(stamp(pos + cap)) << 32).to_le_bytes()
            })
            .collect()
    }

    /// A reservation that needs a pad (it does not fit before the ring end) and is dropped, or
    /// whose producer stops before committing, publishes nothing: neither the pad nor the record.
    /// The lane goes on from where the last commit left it.
    #[test]
    #[cfg_attr(miri, ignore = "calls memfd_create, which Miri lacks")]
    fn dropped_wrapping_reservation_publishes_no_pad() {
        const CAP: usize = 4096;
        let channel = Options::new()
            .lane_capacity(CAP)
            .max_producers(2)
            .anonymous()
            .unwrap();
        // Lane 0, attached throughout so that the stream does not end.
        let _holder = channel.producer().unwrap();
        let mut tx = channel.producer().unwrap();
        assert_eq!(tx.lane(), 1);
        let mut rx = channel.consumer().unwrap();
        // The tail 1000 bytes before the ring end.
        tx.send(&vec![1; CAP - 1000 - RECORD_HEADER]).unwrap();
        assert_eq!(rx.try_recv().unwrap().unwrap().len(), CAP - 1000 - 8);
        for round in 0..3u8 {
            // 2000 bytes do not fit in the last 1000: a pad would come first.
            {
                let slot = tx.try_reserve(2000).unwrap();
                slot.shared().fill(0xee).unwrap();
                // Dropped here without commit.
            }
            match rx.try_recv() {
                Err(Error::WouldBlock { .. }) => {}
                other => panic!("round {round}: a dropped slot published {other:?}"),
            }
        }
        // What comes next fits before the end and arrives, and so does a wrapping one.
        tx.send(&[2; 100]).unwrap();
        let slot = tx.try_reserve(2000).unwrap();
        slot.shared().fill(3).unwrap();
        slot.commit();
        tx.send(&[4; 10]).unwrap();
        assert_eq!(rx.try_recv().unwrap().unwrap(), [2; 100]);
        assert_eq!(rx.try_recv().unwrap().unwrap(), [3; 2000]);
        assert_eq!(rx.try_recv().unwrap().unwrap(), [4; 10]);
        assert!(matches!(rx.try_recv(), Err(Error::WouldBlock { .. })));
        // The lane is still whole: a new producer on it (after this one closes) works.
        drop(tx);
        assert!(matches!(rx.try_recv(), Err(Error::WouldBlock { .. })));
        let mut tx = channel.producer().unwrap();
        assert_eq!(tx.lane(), 1);
        tx.send(b"next").unwrap();
        assert_eq!(rx.try_recv().unwrap().unwrap(), b"next");
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "an anonymous channel needs memfd_create, which Miri lacks"
    )]
    fn stale_payload_words_never_pass_for_records_of_the_next_lap() {
        const CAP: usize = 4096;
        let channel = Options::new().lane_capacity(CAP).anonymous().unwrap();
        let mut tx = channel.producer().unwrap();
        let mut rx = channel.consumer().unwrap();
        // Lap 0: one record filling all but the last 8 bytes, every payload word a forgery.
        let big = forged_payload(0, CAP - 2 * RECORD_HEADER, CAP as u64);
        tx.send(&big).unwrap();
        assert_eq!(rx.try_recv().unwrap().as_deref(), Some(&big[..]));
        // An empty record in the last 8 bytes; lap 1 starts at offset 0.
        assert_eq!(record_size(big.len()) + 8, CAP as u64);
        tx.send(&[]).unwrap();
        assert_eq!(rx.try_recv().unwrap().as_deref(), Some(&[][..]));
        // Lap 1: records of several sizes, so that the next header's place lands on forged words,
        // on the record's last cache line or (56, 120, 24 and 8 here) on the next one; `send`
        // clears it before writing the payload for records of whole lines (56 and 120).
        for len in [56, 120, 16, 0, 24, 40, 8, 200, 24] {
            let msg = vec![0xab; len];
            tx.send(&msg).unwrap();
            assert_eq!(rx.try_recv().unwrap().as_deref(), Some(&msg[..]));
            match rx.try_recv() {
                Err(Error::WouldBlock { .. }) => {}
                other => panic!("after a {len}-byte message, a phantom: {other:?}"),
            }
        }
    }

    /// The producer's `prefetchw` is issued only where the CPU has it: the CPUID bit read must
    /// be the one Linux reports as the `3dnowprefetch` flag.
    #[test]
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
    fn prefetchw_is_detected_as_the_kernel_reports_it() {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let flags = cpuinfo.lines().find(|l| l.starts_with("flags")).unwrap();
        let kernel = flags.split_whitespace().any(|f| f == "3dnowprefetch");
        assert_eq!(super::buf::has_prefetchw(), kernel, "{flags}");
    }
}
