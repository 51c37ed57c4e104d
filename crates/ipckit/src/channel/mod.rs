//! A multi-producer, single-consumer message channel in POSIX shared memory: messages of any size
//! up to a lane's capacity, passed between processes without a system call on the fast path.
//!
//! The trap it removes is the one of every hand-made shared-memory queue: a peer that dies in the
//! middle of a message (torn records, a lock held forever, a reader that waits for ever, a segment
//! left in `/dev/shm`). Here a message is published by one atomic store after it is complete, the
//! kernel tells who died (OFD locks, PID-reuse proof), a dead peer is reported as
//! [`Error::PeerDied`](crate::Error::PeerDied) within ~100 ms, and the segment is removed by the
//! last participant to leave — or recovered by the next one to open it after a crash.
//!
//! ```no_run
//! use ipckit::channel::{Consumer, Options, Producer};
//! // In one process:
//! let mut rx = Options::new().lane_capacity(1 << 16).consumer("/jobs")?;
//! while let Some(msg) = rx.recv()? {
//!     println!("{} bytes", msg.len());
//! }
//! // In others (started before or after the consumer):
//! let mut tx = Producer::open("/jobs")?;
//! tx.send(b"hello")?;
//! tx.wait_consumed(std::time::Duration::from_secs(60))?; // everything sent was received
//! tx.close()?; // the consumer's recv returns None once every producer has closed
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! # Design: one single-producer lane per producer
//! The segment holds a header page, a table of lanes (one per possible producer: `max_producers`,
//! default 16, at most 64) and one byte ring per lane of `lane_capacity` bytes (a power of two,
//! 4 KiB – 1 GiB; **the capacity is per producer**, not for the whole channel). A producer claims
//! a free lane when it attaches and is the only writer of its ring and `tail`; the consumer is the
//! only writer of every `head`. Each lane is thus a Lamport single-producer/single-consumer ring
//! (with FastForward's cached indices, as in crossbeam-channel's array flavour — see `ring.rs`):
//! producers never contend with each other, a producer's messages keep their order, and a producer
//! killed at any instruction cannot expose a partial message. iceoryx2 uses the same shape (one
//! data segment per publisher). The consumer scans the attached lanes round-robin.
//!
//! Waiting spins for a few tens of µs (up to 200 µs while recent waits ended that soon, not at
//! all while they kept lasting much longer), then sleeps on a shared futex in the segment
//! ([`Wait`]);
//! senders make no system call unless the consumer sleeps (see `wait.rs` for the protocol,
//! model-checked with loom). A consumer that catches up with a fast stream (after 8 messages
//! received without a wait) lets the producer get up to 16 KiB ahead before it looks again,
//! FastForward's "temporal slipping", so that the two do not take turns on the same cache
//! lines; it stops waiting as soon as the producer writes less than 256 bytes between two
//! looks (about 0.4 µs apart), so a message that comes alone, or from a slower producer, is
//! read at once (`wait::let_ahead`). Liveness is an OFD lock per participant on a byte past the end of the
//! segment (`lock.rs`); a sleeper wakes at least every 100 ms to check its peer's.
//!
//! # Semantics
//! - Either side may start first; both create the channel if it does not exist (with the
//!   creator's [`Options`]: an opener's lane capacity and lane count are ignored).
//! - End of stream: once a producer has attached, [`Consumer::recv`] returns `Ok(None)` when every
//!   producer has closed (or died and was reported) and everything was received. The end is
//!   final for that consumer: **a producer that tries to attach after the consumer received the
//!   end of the stream is refused at once** with [`Error::Closed`](crate::Error::Closed) (never
//!   accepted and then ignored), and the consumer's later receives keep returning `Ok(None)`.
//!   A producer that attached before the end was seen is part of the stream: the end waits for
//!   it. A new consumer (after this one closes) starts a new stream.
//! - Delivery: a successful `send` means the message is in the lane. [`Producer::wait_consumed`]
//!   waits until the consumer has received everything the producer sent (or fails with
//!   `Closed`, `PeerDied` or `Timeout`), which is what "delivered" should mean to a program
//!   that exits after sending.
//! - When the last participant leaves normally, the name is unlinked and unreceived messages are
//!   discarded with the segment (as with a pipe whose ends are all closed). Keep the consumer (or a
//!   producer) attached while messages must survive.
//! - A second live consumer is refused. Producers beyond `max_producers` are refused.
//! - Liveness belongs to the open file description: a child forked without `exec` shares its
//!   parent's descriptions, so the parent's handles count as alive while such a child lives
//!   (the descriptors are close-on-exec, so `fork` + `exec` is fine).
//! - A producer whose consumer closed gets [`Error::Closed`](crate::Error::Closed); one whose
//!   consumer died gets `PeerDied` while it waits for room (a full lane) or in `wait_consumed`.
//! - A clean close is never reported as a death: the consumer drains what a producer
//!   published, then looks at its close state, and only then asks whether it is alive.
//! - No wait is unbounded: open and close take the channel's open/leave lock by polling, and
//!   give up with [`Error::Timeout`](crate::Error::Timeout) after 3 s if its holder is stopped
//!   (SIGSTOP, a debugger) inside an open or a close.
//! - Identity: an opener takes a file for a channel only if it starts with the channel's magic
//!   (or its creator's in-progress marker, for a creation that died half-way); anything else,
//!   an all-zero object included, is refused as `Corrupt` and left untouched.
//!
//! # Untrusted memory
//! Every value read from the segment is validated before use (geometry at open against the file
//! size; indices and record headers on each access), so a hostile or buggy peer with write access
//! can make this side receive garbage bytes or [`Error::Corrupt`](crate::Error::Corrupt) — never
//! an out-of-bounds access, a panic or an endless loop. Ring bytes are only ever touched
//! atomically (headers as atomics, payloads by relaxed-atomic word copies or, from 256 bytes on
//! x86-64, byte-wise atomic wide copies: see `shared::wide_copy`), and messages
//! written or read in place ([`Producer::reserve`], [`Consumer::recv_ref`]) are lent as
//! [`SharedSlice`](crate::shared::SharedSlice)s, never as `&[u8]`: such a peer can change their
//! bytes while they are held (copy out what you validate), but cannot cause undefined behaviour. A peer that truncates a *named* segment makes the others fault
//! (SIGBUS) on their next access, as with any shared file mapping; anonymous channels are sealed
//! against that (`F_SEAL_SHRINK`).
//!
//! # Deviations from the design notes, and why
//! - Crash recovery keeps committed messages: when an opener finds nobody alive, it forgets the
//!   dead consumer and restarts the end-of-stream count, but a dead producer's published messages
//!   are still delivered to the next consumer, followed by `PeerDied` for it. (Nothing there can be
//!   torn, so dropping them would lose data for nothing.) A consumer killed while holding a
//!   `recv_ref` slot had not released it: the next consumer receives that message again.
//! - A pad record is published alone when the pad and the next record do not both fit, so that a
//!   message of the full `lane_capacity - 8` bytes always fits once the consumer catches up. The
//!   consumer therefore checks a pad's bounds (never at offset 0) rather than "only where the
//!   next record does not fit".
//! - The consumer finds records by their stamped headers, not by the producer's `tail`, which
//!   saves a cache line per message (see `ring.rs`); the tail is kept for a producer taking over
//!   the lane, for recovery, and as the pacing hint of a consumer that caught up.
//! - Non-message outcomes follow `std::io`: `Ok(None)` is the end of the stream,
//!   [`Error::WouldBlock`](crate::Error::WouldBlock) and [`Error::Timeout`](crate::Error::Timeout)
//!   mean "nothing yet" (kinds `WouldBlock`, `TimedOut`).
//! - The liveness bytes sit at a fixed offset (2^48) rather than right after the data, so tools
//!   can probe them without trusting the header.
//!
//! # References
//! [shm_overview(7)](https://man7.org/linux/man-pages/man7/shm_overview.7.html),
//! [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html),
//! [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html) (open file description locks),
//! [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html);
//! L. Lamport, "Specifying concurrent program modules" (1983);
//! J. Giacomoni et al., "FastForward for efficient pipeline parallelism" (PPoPP 2008).

// Under loom only the algorithms are compiled (see `atomic`), so the layout's constants are unused.
mod atomic;
mod fence;
#[cfg_attr(loom, allow(dead_code))]
mod header;
#[cfg_attr(loom, allow(dead_code))]
mod ring;
#[cfg_attr(loom, allow(dead_code))]
mod wait;

#[cfg(not(loom))]
mod bell;
#[cfg(not(loom))]
mod consumer;
#[cfg(not(loom))]
mod producer;
#[cfg(not(loom))]
mod segment;
#[cfg(all(not(loom), feature = "serde"))]
pub mod serialized;
#[cfg(all(not(loom), feature = "tokio"))]
pub mod tokio;
#[cfg(not(loom))]
pub mod typed;

#[cfg(all(test, loom))]
mod loom_tests;

pub use header::{MAX_LANE_CAPACITY, MAX_PRODUCERS, MIN_LANE_CAPACITY};
pub use wait::Wait;

/// How often a waiting side checks that its peers are alive (a sleeper wakes at least this
/// often): a peer killed while the other side waits is reported within about this long. A waiter
/// on a [`Doorbell`] must poll at least this often too.
pub const CHECK_INTERVAL: std::time::Duration = wait::SLICE;

#[cfg(not(loom))]
pub use self::api::*;

#[cfg(not(loom))]
mod api {
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
    use std::time::Duration;

    pub use super::bell::Doorbell;
    pub use super::consumer::{Consumer, RecvSlot};
    pub use super::producer::{Producer, SendSlot};

    use super::header::Geometry;
    use super::segment::{self, Role, Segment, Shape};
    use super::wait::{Deadline, Wait};
    use crate::error::{Error, Object, Result};
    use crate::mode::DEFAULT_MODE;

    /// The default capacity of one lane: 64 KiB.
    pub const DEFAULT_LANE_CAPACITY: usize = 64 * 1024;
    /// The default number of lanes (producers that can be attached at once).
    pub const DEFAULT_MAX_PRODUCERS: usize = 16;

    /// Options to create or open a channel, like `std::fs::OpenOptions`.
    ///
    /// Defaults: [`DEFAULT_LANE_CAPACITY`] (64 KiB) per producer, [`DEFAULT_MAX_PRODUCERS`] (16)
    /// lanes, mode [`DEFAULT_MODE`] (0600, less the umask), [`Wait::Blocking`]. The capacity, lane
    /// count and mode apply when this call creates the channel; opening an existing one uses its
    /// own. The wait mode is per handle.
    ///
    /// ```no_run
    /// use ipckit::channel::{Options, Wait};
    /// let mut tx = Options::new().lane_capacity(1 << 20).max_producers(4).wait(Wait::Spin)
    ///     .producer("/ticks")?;
    /// # Ok::<(), ipckit::Error>(())
    /// ```
    #[derive(Debug, Clone)]
    pub struct Options {
        lane_capacity: usize,
        max_producers: usize,
        mode: u32,
        wait: Wait,
    }

    impl Default for Options {
        fn default() -> Self {
            Options::new()
        }
    }

    impl Options {
        /// The default options (see the [type documentation](Options)).
        pub fn new() -> Options {
            Options {
                lane_capacity: DEFAULT_LANE_CAPACITY,
                max_producers: DEFAULT_MAX_PRODUCERS,
                mode: DEFAULT_MODE,
                wait: Wait::Blocking,
            }
        }

        /// The capacity in bytes of **each producer's** ring: a power of two from
        /// [`MIN_LANE_CAPACITY`](super::MIN_LANE_CAPACITY) (4 KiB) to
        /// [`MAX_LANE_CAPACITY`](super::MAX_LANE_CAPACITY) (1 GiB). The largest message is this
        /// less 8 bytes. Checked when the channel is opened.
        pub fn lane_capacity(&mut self, bytes: usize) -> &mut Self {
            self.lane_capacity = bytes;
            self
        }

        /// How many producers can be attached at once (1 to
        /// [`MAX_PRODUCERS`](super::MAX_PRODUCERS) = 64): the number of lanes.
        pub fn max_producers(&mut self, n: usize) -> &mut Self {
            self.max_producers = n;
            self
        }

        /// The permission bits (at most 0o777) of a channel this call creates.
        pub fn mode(&mut self, mode: u32) -> &mut Self {
            self.mode = mode;
            self
        }

        /// How the handle waits: [`Wait::Blocking`] (default) or [`Wait::Spin`].
        pub fn wait(&mut self, wait: Wait) -> &mut Self {
            self.wait = wait;
            self
        }

        fn shape(&self, op: &'static str, object: &Object) -> Result<Shape> {
            crate::mode::check_mode(op, object, self.mode)?;
            let geo = Geometry::new(self.max_producers as u64, self.lane_capacity as u64)
                .map_err(|reason| Error::invalid(op, object.clone(), reason))?;
            Ok(Shape {
                geo,
                mode: self.mode,
            })
        }

        /// `shm_open(name, O_RDWR | O_CREAT | O_NOFOLLOW, mode)` — opens the channel `name`
        /// (`/name`), creating it if needed, and attaches as a producer on a free lane.
        ///
        /// Errors: an invalid name, options or mode (before any system call); every lane taken;
        /// a segment that is not a valid channel (`Corrupt`).
        pub fn producer(&self, name: &str) -> Result<super::Producer> {
            const OP: &str = "open producer";
            let shape = self.shape(OP, &Object::Other(format!("channel {name}").into()))?;
            let (seg, lane) = Segment::open_named(OP, name, shape, Role::Producer)?;
            super::Producer::attach(seg, lane, self.wait)
        }

        /// `shm_open(name, O_RDWR | O_CREAT | O_NOFOLLOW, mode)` — opens the channel `name`
        /// (`/name`), creating it if needed, and attaches as its consumer.
        ///
        /// Errors as [`producer`](Self::producer), and `AlreadyExists` if another consumer is
        /// attached and alive (a dead one is replaced).
        pub fn consumer(&self, name: &str) -> Result<super::Consumer> {
            const OP: &str = "open consumer";
            let shape = self.shape(OP, &Object::Other(format!("channel {name}").into()))?;
            let (seg, _) = Segment::open_named(OP, name, shape, Role::Consumer)?;
            super::Consumer::attach(seg, self.wait)
        }

        /// `memfd_create("ipckit-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING)` — creates an
        /// anonymous channel with these options, to hand to child processes (see
        /// [`Anonymous`]).
        pub fn anonymous(&self) -> Result<Anonymous> {
            const OP: &str = "create anonymous channel";
            let shape = self.shape(OP, &Object::Other("anonymous channel".into()))?;
            Ok(Anonymous {
                fd: Segment::create_anonymous(OP, shape)?,
            })
        }

        /// `open("/proc/self/fd/N", O_RDWR)` — attaches as a producer to the anonymous channel
        /// behind `fd`, through a new open file description of its own. Only the wait mode of
        /// these options applies.
        pub fn producer_from_fd(&self, fd: BorrowedFd<'_>) -> Result<super::Producer> {
            let (seg, lane) = Segment::open_fd("open producer", fd, Role::Producer)?;
            super::Producer::attach(seg, lane, self.wait)
        }

        /// `open("/proc/self/fd/N", O_RDWR)` — attaches as the consumer of the anonymous channel
        /// behind `fd`, through a new open file description of its own. Only the wait mode of
        /// these options applies.
        pub fn consumer_from_fd(&self, fd: BorrowedFd<'_>) -> Result<super::Consumer> {
            let (seg, _) = Segment::open_fd("open consumer", fd, Role::Consumer)?;
            super::Consumer::attach(seg, self.wait)
        }
    }

    /// An anonymous channel: a sealed memfd with no name, shared with child processes by
    /// inheritance. The creator usually attaches one side itself and hands the descriptor to
    /// children, which attach with [`Producer::from_fd`](super::Producer::from_fd) /
    /// [`Consumer::from_fd`](super::Consumer::from_fd). Nothing is left behind: the memory goes
    /// when the last descriptor and mapping are gone.
    ///
    /// The descriptor is close-on-exec; call [`set_inheritable`](Self::set_inheritable) before
    /// spawning children that should get it, and pass them its number ([`as_raw_fd`]).
    ///
    /// [`as_raw_fd`]: AsRawFd::as_raw_fd
    #[derive(Debug)]
    pub struct Anonymous {
        fd: OwnedFd,
    }

    impl Anonymous {
        /// Creates an anonymous channel with default [`Options`].
        pub fn create() -> Result<Anonymous> {
            Options::new().anonymous()
        }

        /// `fcntl(fd, F_SETFD, inheritable ? 0 : FD_CLOEXEC)` — whether the descriptor survives
        /// `exec` (child processes inherit it).
        pub fn set_inheritable(&self, inheritable: bool) -> Result<()> {
            use rustix::io::FdFlags;
            let flags = if inheritable {
                FdFlags::empty()
            } else {
                FdFlags::CLOEXEC
            };
            rustix::io::fcntl_setfd(&self.fd, flags).map_err(|e| {
                Error::os(
                    "fcntl(F_SETFD)",
                    Object::Other(format!("anonymous channel (fd {})", self.as_raw_fd()).into()),
                    e,
                )
            })
        }

        /// Attaches a producer in this process ([`Producer::from_fd`](super::Producer::from_fd)).
        pub fn producer(&self) -> Result<super::Producer> {
            super::Producer::from_fd(self.fd.as_fd())
        }

        /// Attaches the consumer in this process ([`Consumer::from_fd`](super::Consumer::from_fd)).
        pub fn consumer(&self) -> Result<super::Consumer> {
            super::Consumer::from_fd(self.fd.as_fd())
        }

        /// The memfd, for passing on.
        pub fn into_fd(self) -> OwnedFd {
            self.fd
        }
    }

    impl AsFd for Anonymous {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }
    }

    impl AsRawFd for Anonymous {
        fn as_raw_fd(&self) -> RawFd {
            self.fd.as_raw_fd()
        }
    }

    /// `shm_unlink(name)` — removes the channel's name now (after validating it). Attached
    /// participants keep working on the unlinked memory; the next open creates a new channel.
    /// For tests, and for cleaning up after a crash when nobody will reopen the channel.
    pub fn remove(name: &str) -> Result<()> {
        segment::unlink(name)
    }

    /// Removes the channel `name` if it is an orphan: a channel segment with nobody attached
    /// (every participant died) and nobody opening or leaving it. Returns whether it removed it;
    /// `false` for a live channel and for a file that is not a channel. For garbage collection
    /// (`ipckit gc`): the check and the `shm_unlink(name)` happen under the channel's init lock,
    /// so a process opening it at that moment creates a new channel rather than losing its own.
    ///
    /// Errors: an invalid name; `NotFound` if there is no such name.
    pub fn remove_if_orphaned(name: &str) -> Result<bool> {
        segment::remove_if_orphaned(name)
    }

    /// How long an operation may wait.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Patience {
        /// `try_*`.
        Never,
        /// Blocking.
        Forever,
        /// `*_timeout`.
        For(Duration),
    }

    impl Patience {
        pub(crate) fn deadline(self) -> Deadline {
            match self {
                Patience::Never => Deadline::Now,
                Patience::Forever => Deadline::Never,
                Patience::For(t) => Deadline::after(t),
            }
        }

        /// The error for giving up: `WouldBlock` for `try_*`, `Timeout` otherwise.
        pub(crate) fn error(
            self,
            op: &'static str,
            object: &Object,
            reason: &'static str,
        ) -> Error {
            match self {
                Patience::Never => Error::WouldBlock {
                    op,
                    object: object.clone(),
                    reason,
                },
                Patience::For(timeout) => Error::Timeout {
                    op,
                    object: object.clone(),
                    timeout,
                },
                Patience::Forever => Error::Timeout {
                    op,
                    object: object.clone(),
                    timeout: Duration::MAX,
                },
            }
        }
    }
}

#[cfg(not(loom))]
pub(crate) use api::Patience;
