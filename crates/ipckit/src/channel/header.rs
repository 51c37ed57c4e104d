//! The shared layout of a channel segment, and the validation of everything read from it.
//!
//! ```text
//! offset 0            Header           (one page: identity, membership, the consumer's wait cell)
//! offset PAGE         LaneCtl × lanes  (rounded up to whole pages)
//! rings_offset        ring 0 | ring 1 | … | ring lanes-1   (lane_capacity bytes each)
//! LOCK_BASE - 1 …     (past the end of the file) the init lock byte, the consumer's liveness
//!                      byte, and one liveness byte per lane, for OFD locks (see `lock`)
//! ```
//! Every field is an atomic: any attached process may write any byte at any time, so even
//! "constant" fields are read with atomic loads and validated. Geometry (lane count, capacity,
//! offsets) is read once at open, validated against the file size, and kept in a private
//! [`Geometry`]; offsets are always recomputed from it, never read from the segment.

use super::atomic::{AtomicU32, AtomicU64, Ordering};
use super::wait::WaitCell;

/// "ipckchan" in little-endian: the first 8 bytes of every channel segment.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"ipckchan");
/// "ipckinit" in little-endian: the first 8 bytes of a channel segment while its creator
/// initialises it (written before the object is sized; replaced by [`MAGIC`] last). An opener
/// repairs only an object that starts with it (see `segment`, "Identity").
pub(crate) const INIT_MARKER: u64 = u64::from_le_bytes(*b"ipckinit");
/// The layout version; a segment of another version is refused as corrupt. Version 2: the
/// init marker, and the end-of-stream flag in `producers_ever`. Version 3: a lane's `state` and
/// `pid` on a line of their own, apart from `tail`.
pub(crate) const VERSION: u32 = 3;
/// The granularity of the layout (and of mappings).
pub(crate) const PAGE: usize = 4096;

/// The smallest lane capacity in bytes.
pub const MIN_LANE_CAPACITY: usize = 4096;
/// The largest lane capacity in bytes (1 GiB): lengths fit in the record's `u32`.
pub const MAX_LANE_CAPACITY: usize = 1 << 30;
/// The most producers (lanes) a channel can have: the consumer's lane mask is one `u64`.
pub const MAX_PRODUCERS: usize = 64;
/// The largest segment accepted at open (1 TiB), far below [`LOCK_BASE`].
const MAX_SEGMENT: u64 = 1 << 40;

/// The first liveness byte; lock bytes lie past the end of any segment (locks may).
pub(crate) const LOCK_BASE: u64 = 1 << 48;
/// The byte whose OFD write lock serialises open, recovery and teardown.
pub(crate) const INIT_LOCK_BYTE: u64 = LOCK_BASE - 1;
/// The consumer's liveness byte.
pub(crate) const CONSUMER_LOCK_BYTE: u64 = LOCK_BASE;

/// The liveness byte of lane `i`.
pub(crate) fn lane_lock_byte(i: usize) -> u64 {
    LOCK_BASE + 1 + i as u64
}

/// `LaneCtl::state`: no producer; the lane may be claimed.
pub(crate) const LANE_FREE: u32 = 0;
/// `LaneCtl::state`: a producer owns the lane (alive iff its liveness byte is locked).
pub(crate) const LANE_ACTIVE: u32 = 1;
/// `LaneCtl::state`: the producer closed; the consumer drains the lane, then frees it.
pub(crate) const LANE_CLOSED: u32 = 2;

/// In `producers_ever`: the consumer has received the end of the stream; producers may no
/// longer attach (until another consumer attaches, or recovery).
pub(crate) const STREAM_ENDED: u64 = 1 << 63;

/// `consumer_state`: no consumer has attached yet (or recovery cleared a dead one).
pub(crate) const CONSUMER_NONE: u32 = 0;
/// `consumer_state`: a consumer is attached (alive iff its liveness byte is locked).
pub(crate) const CONSUMER_ATTACHED: u32 = 1;
/// `consumer_state`: the consumer closed normally; senders get `Error::Closed`.
pub(crate) const CONSUMER_CLOSED: u32 = 2;

/// The segment's first page.
#[repr(C)]
pub(crate) struct Header {
    /// Written once by the creator (magic last), read at open.
    pub(crate) id: IdLine,
    /// Who is attached; rarely written, read on every send (`consumer_state`) and receive
    /// (`active_lanes`), so it stays in every core's cache.
    pub(crate) members: MemberLine,
    /// The consumer sleeps here when every lane is empty; producers wake it.
    pub(crate) consumer_wait: WaitCell,
}

/// The identity and geometry of the segment.
#[repr(C, align(128))]
pub(crate) struct IdLine {
    /// [`MAGIC`] once initialised; stored last, with Release, so a reader that sees it (Acquire)
    /// sees the geometry. [`INIT_MARKER`] while the creator is still initialising (or died doing
    /// so).
    pub(crate) magic: AtomicU64,
    /// [`VERSION`].
    pub(crate) version: AtomicU32,
    /// Number of lanes (= the maximum number of producers), 1..=[`MAX_PRODUCERS`].
    pub(crate) lanes: AtomicU32,
    /// Bytes per lane ring: a power of two in [`MIN_LANE_CAPACITY`]..=[`MAX_LANE_CAPACITY`].
    pub(crate) lane_capacity: AtomicU64,
    /// Total segment size in bytes, as computed from the two above; must equal the file size.
    pub(crate) total_size: AtomicU64,
}

/// Membership: which lanes carry a stream, whether a consumer is attached.
#[repr(C, align(128))]
pub(crate) struct MemberLine {
    /// Bit `i` is set while lane `i` is ACTIVE or CLOSED-but-not-drained. Set by a producer when
    /// it claims the lane, cleared by the consumer before it frees the lane; the consumer scans
    /// only these lanes.
    pub(crate) active_lanes: AtomicU64,
    /// How many producers ever attached (since creation, recovery or the consumer's attach),
    /// plus [`STREAM_ENDED`]. End of stream is "at least one producer attached, and no lane is
    /// active any more"; the consumer that finds it sets `STREAM_ENDED` by a compare-exchange
    /// against the count it read, so that a producer counting itself in meanwhile makes it
    /// look again, and a producer that finds the flag is refused (never silently ignored).
    pub(crate) producers_ever: AtomicU64,
    /// [`CONSUMER_NONE`], [`CONSUMER_ATTACHED`] or [`CONSUMER_CLOSED`].
    pub(crate) consumer_state: AtomicU32,
    /// The consumer's pid, for error messages only (liveness is the OFD lock).
    pub(crate) consumer_pid: AtomicU32,
}

/// One lane's control block: the producer's line, its membership line, the consumer's line and
/// the producer's wait cell, each on its own 128-byte line so that no line is written by one
/// side while the other keeps reading it.
///
/// `tail` and `state` are apart for that reason: the producer stores `tail` with every record,
/// and a consumer that finds the lane empty loads `state` with every poll. On one line, each of
/// those loads took the line from the producer, whose next `tail` store had to take it back: a
/// cache-line transfer more per message, on the path of a reply (a same-machine ping-pong of
/// 64 B messages between two threads took ~8% longer).
#[repr(C)]
pub(crate) struct LaneCtl {
    pub(crate) prod: ProducerLine,
    pub(crate) owner: OwnerLine,
    pub(crate) cons: ConsumerLine,
    /// The lane's producer sleeps here when its ring is full; the consumer wakes it.
    pub(crate) space: WaitCell,
}

/// Written by the lane's producer with every record.
#[repr(C, align(128))]
pub(crate) struct ProducerLine {
    /// Byte position one past the last published record; only grows (mod 2^64); a multiple of 8.
    /// Stored with Release after each record (the consumer polls the record headers instead; a
    /// producer taking over the lane and the crash recovery read it).
    pub(crate) tail: AtomicU64,
}

/// Who owns the lane: written when a producer takes it or leaves it and when the consumer
/// frees it; read by the consumer whenever it finds the lane empty.
#[repr(C, align(128))]
pub(crate) struct OwnerLine {
    /// [`LANE_FREE`], [`LANE_ACTIVE`] or [`LANE_CLOSED`].
    pub(crate) state: AtomicU32,
    /// The producer's pid, for error messages only (liveness is the OFD lock).
    pub(crate) pid: AtomicU32,
}

/// Written by the consumer.
#[repr(C, align(128))]
pub(crate) struct ConsumerLine {
    /// Byte position of the next record to read; only grows; never passes `tail`.
    pub(crate) head: AtomicU64,
}

#[cfg(loom)]
impl LaneCtl {
    /// A lane for a loom model (in shared memory lanes start as zero bytes: FREE, empty).
    pub(crate) fn new() -> LaneCtl {
        LaneCtl {
            prod: ProducerLine {
                tail: AtomicU64::new(0),
            },
            owner: OwnerLine {
                state: AtomicU32::new(LANE_FREE),
                pid: AtomicU32::new(0),
            },
            cons: ConsumerLine {
                head: AtomicU64::new(0),
            },
            space: WaitCell::new(),
        }
    }
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<Header>() <= PAGE);
    assert!(std::mem::size_of::<LaneCtl>() == 4 * 128);
    // What the sides write often is apart from what the other side reads often (see LaneCtl).
    assert!(std::mem::offset_of!(LaneCtl, owner) - std::mem::offset_of!(LaneCtl, prod) >= 128);
    assert!(std::mem::align_of::<LaneCtl>() == 128);
};

/// The validated geometry of a segment: the only source of offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Number of lanes, 1..=64.
    pub(crate) lanes: usize,
    /// Bytes per ring, a power of two, 4 KiB..=1 GiB.
    pub(crate) lane_capacity: usize,
    /// Offset of the first ring (page-aligned).
    pub(crate) rings_offset: usize,
    /// Total size of the segment in bytes.
    pub(crate) total: usize,
}

/// Offset of the lane table.
pub(crate) const LANES_OFFSET: usize = PAGE;

impl Geometry {
    /// The layout for `lanes` lanes of `lane_capacity` bytes, or why it is not acceptable. All
    /// arithmetic is checked.
    pub(crate) fn new(lanes: u64, lane_capacity: u64) -> Result<Geometry, String> {
        if lanes == 0 || lanes > MAX_PRODUCERS as u64 {
            return Err(format!("lane count {lanes} is outside 1..={MAX_PRODUCERS}"));
        }
        if !lane_capacity.is_power_of_two()
            || lane_capacity < MIN_LANE_CAPACITY as u64
            || lane_capacity > MAX_LANE_CAPACITY as u64
        {
            return Err(format!(
                "lane capacity {lane_capacity} is not a power of two in \
                 {MIN_LANE_CAPACITY}..={MAX_LANE_CAPACITY}"
            ));
        }
        let table = lanes * std::mem::size_of::<LaneCtl>() as u64;
        let rings_offset = (LANES_OFFSET as u64 + table).div_ceil(PAGE as u64) * PAGE as u64;
        let total = lanes
            .checked_mul(lane_capacity)
            .and_then(|r| r.checked_add(rings_offset))
            .filter(|&t| t <= MAX_SEGMENT)
            .ok_or_else(|| format!("{lanes} lanes of {lane_capacity} bytes exceed 1 TiB"))?;
        Ok(Geometry {
            lanes: lanes as usize,
            lane_capacity: lane_capacity as usize,
            rings_offset: rings_offset as usize,
            total: usize::try_from(total).map_err(|_| "segment exceeds the address space")?,
        })
    }

    /// Byte offset of lane `i`'s control block (`i < lanes`).
    pub(crate) fn lane_offset(&self, i: usize) -> usize {
        debug_assert!(i < self.lanes);
        LANES_OFFSET + i * std::mem::size_of::<LaneCtl>()
    }

    /// Byte offset of lane `i`'s ring (`i < lanes`).
    pub(crate) fn ring_offset(&self, i: usize) -> usize {
        debug_assert!(i < self.lanes);
        self.rings_offset + i * self.lane_capacity
    }

    /// The mask of valid lane bits.
    pub(crate) fn lane_mask(&self) -> u64 {
        if self.lanes == 64 {
            u64::MAX
        } else {
            (1u64 << self.lanes) - 1
        }
    }

    /// The largest message a lane can hold: its capacity less one record header.
    pub(crate) fn max_message(&self) -> usize {
        self.lane_capacity - super::ring::RECORD_HEADER
    }
}

impl Header {
    /// Writes the identity of a fresh (zero-filled) segment, magic last. Called by the creator
    /// under the init lock.
    pub(crate) fn initialize(&self, geo: &Geometry) {
        // Relaxed: published by the Release store of `magic` below (and by the init lock).
        self.id.version.store(VERSION, Ordering::Relaxed);
        self.id.lanes.store(geo.lanes as u32, Ordering::Relaxed);
        self.id
            .lane_capacity
            .store(geo.lane_capacity as u64, Ordering::Relaxed);
        self.id
            .total_size
            .store(geo.total as u64, Ordering::Relaxed);
        // Release: whoever sees the magic (Acquire) sees the fields above.
        self.id.magic.store(MAGIC, Ordering::Release);
    }

    /// Validates the identity against the file size and returns the geometry, or what is wrong.
    pub(crate) fn validate(&self, file_size: u64) -> Result<Geometry, String> {
        // Acquire: pairs with the Release store of the magic in `initialize`.
        let magic = self.id.magic.load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(format!(
                "not an ipckit channel (magic {magic:#018x}, expected {MAGIC:#018x})"
            ));
        }
        // Relaxed: ordered after the magic's Acquire load; validated below whatever they hold.
        let version = self.id.version.load(Ordering::Relaxed);
        if version != VERSION {
            return Err(format!(
                "layout version {version}, this build reads {VERSION}"
            ));
        }
        let lanes = self.id.lanes.load(Ordering::Relaxed);
        let cap = self.id.lane_capacity.load(Ordering::Relaxed);
        let geo = Geometry::new(u64::from(lanes), cap)?;
        let total = self.id.total_size.load(Ordering::Relaxed);
        if total != geo.total as u64 || file_size != total {
            return Err(format!(
                "size mismatch: {lanes} lanes of {cap} bytes need {} bytes, header says {total}, \
                 file has {file_size}",
                geo.total
            ));
        }
        Ok(geo)
    }
}
