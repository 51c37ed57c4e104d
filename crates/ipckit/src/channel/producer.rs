//! The sending side: one producer owns one lane.

use std::fmt;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use super::atomic::Ordering;
use super::header::{LaneCtl, CONSUMER_ATTACHED, CONSUMER_CLOSED, CONSUMER_LOCK_BYTE, LANE_CLOSED};
use super::ring::{ProducerRing, Reservation, RingBuf, CACHE_LINE};
use super::segment::Segment;
use super::wait::{wait_for, CheckDue, Deadline, SpinWindow, Wait};
use super::{Options, Patience};
use crate::error::{Error, Result};
use crate::shared::SharedSlice;

/// From this many bytes, `send` writes the payload's bytes on the header's cache line last,
/// right before the header. A consumer that has caught up polls that line, and takes it back
/// while the rest of a long payload is written, so that the header's store must fetch it once
/// more. Measured pinned on an Intel Xeon VM (`ipckit bench --pin --transports
/// channel,channel-spin --sizes 64,256,512,1K,2K --pattern latency --iterations 20000`,
/// interleaved builds): one-way latency 418–448 → 383–401 ns at 512 B, 607–638 → 551–569 ns at
/// 1 KiB, 897–963 → 877–903 ns at 2 KiB; from 128 to 256 bytes it was 15–35 ns slower, hence
/// the threshold; streams did not change.
const SPLIT_MIN: usize = 512;

/// The sending end of a channel: owns one lane (a single-producer ring) until it is closed or
/// dropped. Open with [`Producer::open`], [`Options::producer`] or [`Producer::from_fd`].
///
/// `Send` (move it to another thread) but not `Sync`: one lane has one writer. Open one
/// producer per sending thread.
pub struct Producer {
    seg: Segment,
    lane: usize,
    ring: ProducerRing,
    buf: RingBuf,
    wait: Wait,
    /// How long a wait for room polls on before it sleeps (learnt from this producer's waits).
    window: SpinWindow,
    /// When the consumer's liveness was last checked (at most every 100 ms, `SLICE`, while waiting).
    last_check: CheckDue,
    closed: bool,
}

// SAFETY: the ring bytes are reached only through `&mut Producer`; the segment is Send.
unsafe impl Send for Producer {}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("segment", &self.seg)
            .field("lane", &self.lane)
            .finish()
    }
}

impl Producer {
    /// `shm_open(name, O_RDWR | O_CREAT | O_NOFOLLOW, 0600)` — opens the channel `name`
    /// (creating it with the default [`Options`] if it does not exist) and claims a lane.
    pub fn open(name: &str) -> Result<Producer> {
        Options::new().producer(name)
    }

    /// `open("/proc/self/fd/N", O_RDWR)` — attaches to the anonymous channel behind `fd`
    /// (inherited from the process that made it with [`Options::anonymous`]) and claims a lane. The descriptor is re-opened through
    /// `/proc/self/fd`, so this producer's liveness lock is its own.
    pub fn from_fd(fd: BorrowedFd<'_>) -> Result<Producer> {
        Options::new().producer_from_fd(fd)
    }

    pub(crate) fn attach(seg: Segment, lane: usize, wait: Wait) -> Result<Producer> {
        let ctl = seg.lane(lane);
        // Relaxed (tail): we are its only writer now; Acquire (head): pairs with the consumer's
        // Release store.
        let ring = ProducerRing::new(
            seg.geometry().lane_capacity,
            ctl.prod.tail.load(Ordering::Relaxed),
            ctl.cons.head.load(Ordering::Acquire),
        );
        let ring = match ring {
            Ok(ring) => ring,
            Err(c) => {
                // Give the lane back (CLOSED: the consumer frees it) and leave.
                // Release: as in `leave`.
                ctl.owner.state.store(LANE_CLOSED, Ordering::Release);
                let _ = seg.leave();
                return Err(Error::corrupt("open producer", seg.object().clone(), c.0));
            }
        };
        // Our lane's pages, allocated and mapped now rather than on the first lap.
        seg.prefault(lane, true);
        let buf = seg.ring(lane);
        Ok(Producer {
            seg,
            lane,
            ring,
            buf,
            wait,
            window: SpinWindow::default(),
            last_check: CheckDue::default(),
            closed: false,
        })
    }

    /// The largest message this producer can send: the lane capacity less the 8-byte record
    /// header.
    #[inline]
    pub fn max_message_size(&self) -> usize {
        self.seg.geometry().max_message()
    }

    /// The lane this producer owns (0-based).
    pub fn lane(&self) -> usize {
        self.lane
    }

    /// Sends `msg`, waiting while the lane is full.
    ///
    /// Errors: [`Error::TooLarge`] if `msg` exceeds [`max_message_size`](Self::max_message_size)
    /// (nothing is sent); [`Error::Closed`] if the consumer closed the channel;
    /// [`Error::PeerDied`] if the consumer died while the lane was full; [`Error::Corrupt`] if
    /// the consumer's index in the shared memory is invalid.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with("send", msg, Patience::Forever)
    }

    /// Sends `msg` if the lane has room now; [`Error::WouldBlock`] if it is full. Otherwise as
    /// [`send`](Self::send).
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with("try_send", msg, Patience::Never)
    }

    /// Sends `msg`, waiting at most `timeout` for room; [`Error::Timeout`] if there was none.
    /// Otherwise as [`send`](Self::send).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_with("send_timeout", msg, Patience::For(timeout))
    }

    /// Reserves room for a `len`-byte message in the lane, waiting while it is full, and lends
    /// it for writing in place (zero copy). [`SendSlot::commit`] publishes it; dropping the slot
    /// publishes nothing. Errors as [`send`](Self::send).
    ///
    /// The slot's bytes are the lane's memory: they hold whatever was there before.
    #[inline]
    pub fn reserve(&mut self, len: usize) -> Result<SendSlot<'_>> {
        self.reserve_slot("reserve", len, Patience::Forever)
    }

    /// [`reserve`](Self::reserve) without waiting: [`Error::WouldBlock`] if the lane is full.
    #[inline]
    pub fn try_reserve(&mut self, len: usize) -> Result<SendSlot<'_>> {
        self.reserve_slot("try_reserve", len, Patience::Never)
    }

    /// [`reserve`](Self::reserve), waiting at most `timeout`: [`Error::Timeout`] if the lane
    /// stayed full.
    #[inline]
    pub fn reserve_timeout(&mut self, len: usize, timeout: Duration) -> Result<SendSlot<'_>> {
        self.reserve_slot("reserve_timeout", len, Patience::For(timeout))
    }

    /// Announces that this producer is about to wait on `bell` for room in its lane (instead of
    /// blocking in a send): the consumer rings it when it frees room or closes. The protocol is
    /// the consumer's ([`Consumer::arm`](super::Consumer::arm)) with `try_send`/`try_reserve`
    /// and [`Error::WouldBlock`] for a full lane; wait on `bell` for at most the duration
    /// returned.
    pub fn arm(&self, bell: &super::Doorbell) -> Duration {
        self.seg.lane(self.lane).space.arm_bell(bell.id())
    }

    /// Ends an [`arm`](Self::arm).
    pub fn disarm(&self) {
        self.seg.lane(self.lane).space.disarm();
    }

    #[inline(always)]
    fn send_with(&mut self, op: &'static str, msg: &[u8], patience: Patience) -> Result<()> {
        let r = self.reserve_in_ring(op, msg.len(), patience)?;
        let off = r.payload_offset(self.buf_cap());
        // The order of the stores, all before the header's Release store whatever it is, decides
        // how often a consumer that polls the header's line takes a line back mid-write:
        // - a record of whole cache lines that ends on a line has the next header's place
        //   (`clear_next`) on a line of its own, cleared first, so that line's transfer overlaps
        //   the payload's instead of delaying the header. Pinned ping-pong on an Intel Xeon VM,
        //   interleaved builds (`ipckit bench --pin --transports channel,channel-spin --sizes
        //   24,56,64,120,1K --pattern latency --iterations 20000`): 56 B one way 359–386 →
        //   290–305 ns, 120 B 339–388 → 332–341 ns; 64 B and 1 KiB unchanged. (Doing so for
        //   every record that ends on a line also took 24 B from 309–340 to 264–277 ns, but
        //   cost 64-byte sends a test per record: see `ends_on_a_line`.) Otherwise the clear
        //   goes after the payload: clearing first where it lands on the record's last line
        //   made 64 B 266–292 → 402–466 ns.
        // - from SPLIT_MIN bytes, the payload's bytes on the header's line go last
        //   (`write_split`, out of line: this path is kept short for small messages).
        let ctl = self.seg.lane(self.lane);
        let clear_first = r.ends_on_a_line();
        if clear_first {
            self.ring.clear_next(ctl, &self.buf, &r);
        }
        if msg.len() >= SPLIT_MIN {
            write_split(&mut self.ring, ctl, &self.buf, &r, off, msg, !clear_first);
        } else {
            self.buf.write(off, msg);
            if !clear_first {
                self.ring.clear_next(ctl, &self.buf, &r);
            }
        }
        self.ring
            .publish_record(ctl, &self.buf, &self.seg.header().consumer_wait, r);
        Ok(())
    }

    #[inline]
    fn reserve_slot(
        &mut self,
        op: &'static str,
        len: usize,
        patience: Patience,
    ) -> Result<SendSlot<'_>> {
        // The fast path on its own branch, as in `send_with`'s `reserve_in_ring`.
        if let Some(res) = self.try_reserve_fast(len) {
            return Ok(SendSlot {
                producer: self,
                res: Some(res),
            });
        }
        let res = self.reserve_waiting(op, len, patience)?;
        Ok(SendSlot {
            producer: self,
            res: Some(res),
        })
    }

    #[inline]
    fn buf_cap(&self) -> usize {
        self.seg.geometry().lane_capacity
    }

    /// Room for a `len`-byte record: the fast path, else the full one.
    #[inline(always)]
    fn reserve_in_ring(
        &mut self,
        op: &'static str,
        len: usize,
        patience: Patience,
    ) -> Result<Reservation> {
        match self.try_reserve_fast(len) {
            Some(r) => Ok(r),
            None => self.reserve_waiting(op, len, patience),
        }
    }

    /// The fast path of a reservation: the message fits a lane, the consumer has not closed,
    /// and the lane has room by the cached head (or by the head re-read when the cached one
    /// says full). No clock read, allocation or system call; out of line only the re-reading
    /// of the head (once per batch of records) and the pad at the ring's end (once per lap).
    /// `None` means "take the full path", which checks everything again and reports what is
    /// wrong.
    #[inline(always)]
    fn try_reserve_fast(&mut self, len: usize) -> Option<Reservation> {
        if len > self.max_message_size() {
            return None;
        }
        let header = self.seg.header();
        // Relaxed: as in `reserve_waiting`.
        if header.members.consumer_state.load(Ordering::Relaxed) == CONSUMER_CLOSED {
            return None;
        }
        let ctl = self.seg.lane(self.lane);
        self.ring
            .try_reserve(ctl, &self.buf, &header.consumer_wait, len)
            .ok()
            .flatten()
    }

    /// The full path of a reservation: every check, then waiting as `patience` allows.
    #[inline(never)]
    fn reserve_waiting(
        &mut self,
        op: &'static str,
        len: usize,
        patience: Patience,
    ) -> Result<Reservation> {
        let max = self.max_message_size();
        if len > max {
            return Err(Error::TooLarge {
                op,
                object: self.seg.object().clone(),
                what: "message",
                len,
                limit: max,
                limit_name: "the largest message (lane capacity - 8)",
            });
        }
        let seg = &self.seg;
        let ring = &mut self.ring;
        let buf = &self.buf;
        let last_check = &mut self.last_check;
        let ctl = seg.lane(self.lane);
        let header = seg.header();
        let corrupt = |c: super::ring::Corrupt| Error::corrupt(op, seg.object().clone(), c.0);
        let mut poll = || -> Result<Option<Reservation>> {
            // Relaxed: a hint only; a consumer that closes wakes us through the wait cell, and
            // nothing we read depends on it.
            let consumer = header.members.consumer_state.load(Ordering::Relaxed);
            if consumer == CONSUMER_CLOSED {
                return Err(Error::Closed {
                    op,
                    object: seg.object().clone(),
                    reason: "the consumer closed the channel",
                });
            }
            if let Some(r) = ring
                .try_reserve(ctl, buf, &header.consumer_wait, len)
                .map_err(corrupt)?
            {
                return Ok(Some(r));
            }
            // Full: is the consumer still there? (at most every SLICE, by the clock)
            let check = consumer == CONSUMER_ATTACHED && last_check.due();
            if check && !seg.is_alive("fcntl(F_OFD_GETLK)", CONSUMER_LOCK_BYTE)? {
                // Acquire: the state is re-read after the lock check; a consumer that closed
                // normally meanwhile is `Closed`, not dead.
                let state = header.members.consumer_state.load(Ordering::Acquire);
                if state == CONSUMER_ATTACHED {
                    return Err(Error::PeerDied {
                        op,
                        object: seg.object().clone(),
                        peer: "consumer",
                        // Relaxed: for the message only.
                        pid: header.members.consumer_pid.load(Ordering::Relaxed),
                    });
                }
            }
            Ok(None)
        };
        // Fast path: room now, no waiting machinery.
        if let Some(r) = poll()? {
            return Ok(r);
        }
        let got = wait_for(
            &ctl.space,
            self.wait,
            &mut self.window,
            patience.deadline(),
            |_| poll(),
        )?;
        got.ok_or_else(|| patience.error(op, seg.object(), "the lane is full"))
    }

    /// Waits until the consumer has received everything this producer sent (committed), at
    /// most `timeout`: a message is received once the consumer's `recv`/`recv_into` returned it,
    /// or its `recv_ref` slot was dropped. Returns at once if there is nothing outstanding. This
    /// is the producer's delivery acknowledgement: "sent" means "in the lane"; after
    /// `wait_consumed` returns `Ok`, it means "received".
    ///
    /// The wait spins briefly, then sleeps on the lane's futex (woken by each receive), and
    /// checks the consumer's liveness every 100 ms. With no consumer attached yet, it waits for
    /// one.
    ///
    /// Errors: [`Error::Closed`] if the consumer closed with messages of ours unreceived;
    /// [`Error::PeerDied`] if it died; [`Error::Timeout`] otherwise.
    pub fn wait_consumed(&mut self, timeout: Duration) -> Result<()> {
        const OP: &str = "wait_consumed";
        let seg = &self.seg;
        let ctl = seg.lane(self.lane);
        let header = seg.header();
        let tail = self.ring.published();
        let last_check = &mut self.last_check;
        let mut poll = || -> Result<Option<()>> {
            // The state first, then head (both Acquire): the consumer releases what it read
            // (Release stores of head) before it stores CLOSED (Release), so a CLOSED seen here
            // comes with its final head.
            let consumer = header.members.consumer_state.load(Ordering::Acquire);
            if ctl.cons.head.load(Ordering::Acquire) == tail {
                return Ok(Some(()));
            }
            match consumer {
                CONSUMER_CLOSED => Err(Error::Closed {
                    op: OP,
                    object: seg.object().clone(),
                    reason: "the consumer closed the channel before receiving everything sent",
                }),
                CONSUMER_ATTACHED
                    if last_check.due()
                        && !seg.is_alive("fcntl(F_OFD_GETLK)", CONSUMER_LOCK_BYTE)? =>
                {
                    // Dead, or it closed (or received the rest) after our loads: look again.
                    // Acquire: as above.
                    let state = header.members.consumer_state.load(Ordering::Acquire);
                    if ctl.cons.head.load(Ordering::Acquire) == tail {
                        return Ok(Some(()));
                    }
                    match state {
                        CONSUMER_ATTACHED => Err(Error::PeerDied {
                            op: OP,
                            object: seg.object().clone(),
                            peer: "consumer",
                            // Relaxed: for the message only.
                            pid: header.members.consumer_pid.load(Ordering::Relaxed),
                        }),
                        _ => Ok(None),
                    }
                }
                _ => Ok(None),
            }
        };
        // A window of its own: one wait for the rest to be received says nothing of how soon
        // room comes back while sending.
        let mut window = SpinWindow::default();
        let got = wait_for(
            &ctl.space,
            self.wait,
            &mut window,
            Deadline::after(timeout),
            |_| poll(),
        )?;
        got.ok_or_else(|| Error::Timeout {
            op: OP,
            object: seg.object().clone(),
            timeout,
        })
    }

    /// Closes the lane: the consumer receives what was sent, then (once every producer has
    /// closed) the end of the stream. The last participant to leave removes the channel's name.
    /// Dropping the producer does the same, ignoring errors.
    pub fn close(mut self) -> Result<()> {
        self.leave()
    }

    fn leave(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        let ctl = self.seg.lane(self.lane);
        // Release: everything we published (our last header and tail) happens before a consumer's
        // Acquire load of CLOSED, so it drains the lane completely before freeing it.
        ctl.owner.state.store(LANE_CLOSED, Ordering::Release);
        self.seg.header().consumer_wait.notify();
        self.seg.leave()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.leave();
    }
}

/// Room for one message in the lane, lent for writing in place ([`Producer::reserve`]).
///
/// [`shared`](Self::shared) gives the message's bytes as a [`SharedSlice`] of the reserved
/// length, written with [`write_at`](SharedSlice::write_at) and friends: they are the lane's
/// shared memory, which a hostile peer could write too, so they are never lent as `&mut [u8]`.
/// They hold whatever was there before. [`commit`] publishes the message; dropping the slot
/// without committing publishes nothing, and the next message reuses the room.
///
/// [`commit`]: SendSlot::commit
pub struct SendSlot<'a> {
    producer: &'a mut Producer,
    res: Option<Reservation>,
}

impl SendSlot<'_> {
    /// Publishes the message: the consumer can receive it from now on.
    #[inline]
    pub fn commit(mut self) {
        if let Some(r) = self.res.take() {
            let p = &mut *self.producer;
            let ctl = p.seg.lane(p.lane);
            p.ring.commit(ctl, &p.buf, &p.seg.header().consumer_wait, r);
        }
    }

    /// Publishes the first `len` bytes of the reserved room as the message, for a writer that
    /// learns the message's length only while writing it (an encoder): `reserve(max)`, write,
    /// then `commit_len(written)`. The rest of the room is given back.
    ///
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) if `len` exceeds the
    /// reserved length; then nothing is published, as when the slot is dropped.
    pub fn commit_len(mut self, len: usize) -> Result<()> {
        let reserved = self.len();
        if len > reserved {
            return Err(Error::invalid(
                "commit_len",
                self.producer.seg.object().clone(),
                format!("{len} bytes is more than the {reserved} reserved"),
            ));
        }
        if let Some(r) = self.res.as_mut() {
            r.shrink(len);
        }
        self.commit();
        Ok(())
    }

    #[inline]
    fn reservation(&self) -> &Reservation {
        self.res
            .as_ref()
            .expect("a slot holds its reservation until commit")
    }

    /// The message's length in bytes (as reserved).
    #[inline]
    pub fn len(&self) -> usize {
        self.reservation().len()
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The message's bytes in the lane, to write in place.
    #[inline]
    pub fn shared(&self) -> SharedSlice<'_> {
        let r = self.reservation();
        let p = &*self.producer;
        p.buf
            .shared(r.payload_offset(p.buf_cap()), r.len(), p.seg.object())
    }
}

impl fmt::Debug for SendSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendSlot")
            .field("len", &self.res.as_ref().map(Reservation::len))
            .finish()
    }
}

/// `send_with`'s writing of a payload of at least SPLIT_MIN bytes at `off`: the bytes after the
/// header's cache line, the clear of the next header's place (if `clear`), then the bytes on the
/// header's line.
#[inline(never)]
fn write_split(
    ring: &mut ProducerRing,
    ctl: &LaneCtl,
    buf: &RingBuf,
    r: &Reservation,
    off: usize,
    msg: &[u8],
    clear: bool,
) {
    let on_header_line = (CACHE_LINE - off % CACHE_LINE) % CACHE_LINE;
    let (first, rest) = msg.split_at(on_header_line);
    buf.write(off + on_header_line, rest);
    if clear {
        ring.clear_next(ctl, buf, r);
    }
    buf.write(off, first);
}
