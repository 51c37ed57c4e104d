//! The receiving side: the one consumer of a channel, which reads every lane.

use std::fmt;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use super::atomic::Ordering;
use super::header::{
    lane_lock_byte, CONSUMER_CLOSED, LANE_ACTIVE, LANE_CLOSED, LANE_FREE, STREAM_ENDED,
};
use super::ring::{ConsumerRing, Corrupt, Record, RingBuf};
use super::segment::Segment;
use super::wait::{let_ahead, wait_for, CheckDue, Deadline, SpinWindow, Wait, AHEAD_BYTES};
use super::{Options, Patience};
use crate::error::{Error, Result};
use crate::shared::SharedSlice;

/// The receiving end of a channel: there is at most one per channel. Open with
/// [`Consumer::open`], [`Options::consumer`] or [`Consumer::from_fd`].
///
/// It serves the producers' lanes round-robin, so each producer's messages arrive in the order
/// it sent them and no producer starves the others; messages of different producers have no
/// order between them.
///
/// Every receiving method returns `Ok(Some(message))`, or `Ok(None)` at the **end of the
/// stream**: at least one producer has attached, every producer has closed (or died and was
/// reported), and every message was received. The end is final: a producer that tries to attach
/// afterwards is refused with [`Error::Closed`], so its messages are never silently dropped
/// (see the [module documentation](super)). Errors: [`Error::WouldBlock`] (`try_*`: empty now), [`Error::Timeout`]
/// (`*_timeout`), [`Error::PeerDied`] (once per producer that died; its committed messages were
/// delivered first, and the channel stays usable), [`Error::Corrupt`] (the shared memory failed
/// validation; nothing invalid was used).
///
/// `Send` but not `Sync`.
pub struct Consumer {
    seg: Segment,
    st: State,
    wait: Wait,
    /// How long a wait for a message polls on before it sleeps (learnt from this consumer's
    /// waits).
    window: SpinWindow,
    closed: bool,
}

// SAFETY: the ring bytes are reached only through `&mut Consumer`; the segment is Send.
unsafe impl Send for Consumer {}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("segment", &self.seg)
            .finish()
    }
}

/// The consumer's private state (split from the segment so a poll closure can borrow both).
struct State {
    lanes: Vec<Lane>,
    /// The lane the next scan starts at (round-robin), `< lanes.len()`.
    next: usize,
    /// When producer liveness was last checked (at most every 100 ms, `SLICE`).
    last_check: CheckDue,
    /// Records the fast path found in a row since the last wait, and the lane of the last one:
    /// a consumer that catches up after [`AHEAD_AFTER`] of them lets that lane's producer get
    /// ahead before it polls again (`State::let_producer_ahead`).
    streak: u32,
    streak_lane: usize,
}

/// Records received in a row without a wait that make a consumer that then finds the channel
/// empty a consumer that caught up with a stream (see `wait::let_ahead`). A ping-pong, or any
/// exchange whose messages come one at a time, never gets there.
const AHEAD_AFTER: u32 = 8;

struct Lane {
    ring: ConsumerRing,
    buf: RingBuf,
    /// Whether the ring's pages were mapped in ahead of use (once a producer first used it).
    prefaulted: bool,
}

/// A waiter's busy polls (`wait::wait_for`: a `pause` apart, while a `Spin` consumer waits or
/// in the first microseconds of a `Blocking` wait) take the full pass — every lane, the end of the
/// stream, the producers' liveness — only every `FULL_PASS_EVERY`th time, and otherwise look only
/// at the lane the fast path looks at first: a message there is seen within a `pause` of its
/// publication, as by a busy fast path, where a full pass between two `pause`s made the polls
/// three times further apart (a pinned 1 KiB ping-pong took 550–570 ns one way instead of
/// 510–520). A message in another lane waits for the next full pass, at most
/// `FULL_PASS_EVERY` polls later; every other poll of a wait — the first, the backoff's, those
/// around a sleep — is a full pass.
const FULL_PASS_EVERY: u32 = 16;

/// What one poll found: a record in lane `usize` (left there, for the fast path to take), or
/// the end of the stream.
enum Got {
    Record(usize),
    End,
}

impl Consumer {
    /// `shm_open(name, O_RDWR | O_CREAT | O_NOFOLLOW, 0600)` — opens the channel `name`
    /// (creating it with the default [`Options`] if it does not exist) as its consumer. Fails if the channel already has a live consumer.
    pub fn open(name: &str) -> Result<Consumer> {
        Options::new().consumer(name)
    }

    /// `open("/proc/self/fd/N", O_RDWR)` — attaches to the anonymous channel behind `fd`
    /// (inherited from the process that made it with [`Options::anonymous`]) as its consumer,
    /// through its own open file description.
    pub fn from_fd(fd: BorrowedFd<'_>) -> Result<Consumer> {
        Options::new().consumer_from_fd(fd)
    }

    pub(crate) fn attach(seg: Segment, wait: Wait) -> Result<Consumer> {
        let geo = *seg.geometry();
        let mut lanes = Vec::with_capacity(geo.lanes);
        for i in 0..geo.lanes {
            // Relaxed: our role's own index; a previous consumer's last store is ordered before
            // our claim by the init lock.
            let head = seg.lane(i).cons.head.load(Ordering::Relaxed);
            match ConsumerRing::new(geo.lane_capacity, head) {
                Ok(ring) => lanes.push(Lane {
                    ring,
                    buf: seg.ring(i),
                    prefaulted: false,
                }),
                Err(c) => {
                    let e = Error::corrupt(
                        "open consumer",
                        seg.object().clone(),
                        format!("lane {i}: {}", c.0),
                    );
                    // Release: as in `leave`.
                    seg.header()
                        .members
                        .consumer_state
                        .store(CONSUMER_CLOSED, Ordering::Release);
                    let _ = seg.leave();
                    return Err(e);
                }
            }
        }
        Ok(Consumer {
            seg,
            st: State {
                lanes,
                next: 0,
                last_check: CheckDue::default(),
                streak: 0,
                streak_lane: 0,
            },
            wait,
            window: SpinWindow::default(),
            closed: false,
        })
    }

    /// Receives the next message as a new `Vec`, waiting while the channel is empty.
    /// `Ok(None)` at the end of the stream (see the [type documentation](Consumer)).
    pub fn recv(&mut self) -> Result<Option<Vec<u8>>> {
        self.recv_vec("recv", Patience::Forever)
    }

    /// Receives a message if one is there now; [`Error::WouldBlock`] if the channel is empty.
    pub fn try_recv(&mut self) -> Result<Option<Vec<u8>>> {
        self.recv_vec("try_recv", Patience::Never)
    }

    /// Receives a message, waiting at most `timeout`; [`Error::Timeout`] if none came.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        self.recv_vec("recv_timeout", Patience::For(timeout))
    }

    /// Receives the next message into `buf` (cleared first; no allocation once it is large
    /// enough), waiting while the channel is empty. Returns its length, or `None` at the end of
    /// the stream.
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        self.recv_into_with("recv_into", buf, Patience::Forever)
    }

    /// [`recv_into`](Self::recv_into) without waiting: [`Error::WouldBlock`] if empty.
    pub fn try_recv_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        self.recv_into_with("try_recv_into", buf, Patience::Never)
    }

    /// [`recv_into`](Self::recv_into), waiting at most `timeout`: [`Error::Timeout`] if none
    /// came.
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<Option<usize>> {
        self.recv_into_with("recv_into_timeout", buf, Patience::For(timeout))
    }

    /// Lends the next message in place (zero copy), waiting while the channel is empty; it is
    /// released, and its room given back to the producer, when the slot is dropped. `Ok(None)`
    /// at the end of the stream.
    ///
    /// The slot's bytes are shared memory, lent as a [`SharedSlice`]: a hostile producer could
    /// change them while you hold them, so copy out what you validate.
    #[inline]
    pub fn recv_ref(&mut self) -> Result<Option<RecvSlot<'_>>> {
        self.recv_slot("recv_ref", Patience::Forever)
    }

    /// [`recv_ref`](Self::recv_ref) without waiting: [`Error::WouldBlock`] if empty.
    #[inline]
    pub fn try_recv_ref(&mut self) -> Result<Option<RecvSlot<'_>>> {
        self.recv_slot("try_recv_ref", Patience::Never)
    }

    /// [`recv_ref`](Self::recv_ref), waiting at most `timeout`: [`Error::Timeout`] if none
    /// came.
    #[inline]
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<Option<RecvSlot<'_>>> {
        self.recv_slot("recv_ref_timeout", Patience::For(timeout))
    }

    /// Announces that this consumer is about to wait on `bell` instead of blocking in a receive
    /// (an event loop, an async task): from now on, every producer that publishes a message or
    /// closes rings it. The protocol, which loses no wake-up:
    ///
    /// 1. a `try_recv*` found the channel empty ([`Error::WouldBlock`]);
    /// 2. `arm(&bell)`, then `try_recv*` once more (a message published meanwhile is seen now);
    /// 3. if still empty, wait until `bell` is readable, **for at most the duration `arm`
    ///    returned**: [`CHECK_INTERVAL`] (the producers' liveness is checked by the receives, so
    ///    a producer killed while the channel is empty is reported only by a receive), or 1 ms
    ///    in a process that cannot use `membarrier(2)` (its wake-ups are then not guaranteed);
    /// 4. [`disarm`](Self::disarm), [`Doorbell::clear`](super::Doorbell::clear), and go back to 1.
    ///
    /// While armed, senders make one extra system call (a datagram) per wake-up; a consumer
    /// that is busy receiving should not stay armed.
    ///
    /// [`CHECK_INTERVAL`]: super::CHECK_INTERVAL
    pub fn arm(&self, bell: &super::Doorbell) -> Duration {
        self.seg.header().consumer_wait.arm_bell(bell.id())
    }

    /// Ends an [`arm`](Self::arm): senders stop ringing the doorbell.
    pub fn disarm(&self) {
        self.seg.header().consumer_wait.disarm();
    }

    /// Whether a receive would return now (a message, the end of the stream, or an error: a
    /// producer that died, corrupt memory), without taking anything.
    #[cfg(feature = "tokio")]
    pub(crate) fn ready(&mut self, op: &'static str) -> Result<bool> {
        Ok(self.st.poll(op, &self.seg)?.is_some())
    }

    fn recv_vec(&mut self, op: &'static str, patience: Patience) -> Result<Option<Vec<u8>>> {
        let mut v = Vec::new();
        Ok(self.recv_into_with(op, &mut v, patience)?.map(|_| v))
    }

    #[inline]
    fn recv_into_with(
        &mut self,
        op: &'static str,
        out: &mut Vec<u8>,
        patience: Patience,
    ) -> Result<Option<usize>> {
        // Every record is taken by the fast path, also after a wait, which only says that one
        // is there: the record stays in registers from the poll that found it to the copy, where
        // a record returned through the wait's `Result`s would be written to memory and read
        // back by loads wider than its stores, which stall until every earlier store has reached
        // the cache (a pinned 64-byte ping-pong took 250–270 ns one way instead of 205–230).
        loop {
            if let Some(len) = self.recv_into_ready(out) {
                return Ok(Some(len));
            }
            if !self.next_record_waiting(op, patience)? {
                return Ok(None);
            }
        }
    }

    /// The fast path of [`try_recv_into`](Self::try_recv_into) alone, for a caller that has
    /// its own slow path (the transport's receiver): the message that is there now in the lane
    /// a full pass would visit first, copied into `out`. Its length comes back in registers,
    /// where a `Result` would be written to memory and read back by loads wider than its
    /// stores, which stall until every earlier store has reached the cache (see
    /// `transport::RecvImpl::recv_ready`). `None` means "take the full path" (empty, another
    /// lane's turn, the end of the stream, an error), never "empty".
    #[inline]
    pub(crate) fn recv_into_ready(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        let (i, r) = self.st.poll_fast(&self.seg)?;
        Some(self.copy_out_and_release(i, r, out))
    }

    /// Replaces `out`'s contents with record `r` of lane `i`, releases the record, and returns
    /// its length.
    #[inline(always)]
    fn copy_out_and_release(&mut self, i: usize, r: Record, out: &mut Vec<u8>) -> usize {
        out.clear();
        self.st.lanes[i].buf.append_to(r.offset, r.len, out);
        self.release(i, r);
        r.len
    }

    #[inline]
    fn recv_slot(&mut self, op: &'static str, patience: Patience) -> Result<Option<RecvSlot<'_>>> {
        // Every record taken by the fast path, as in `recv_into_with`.
        loop {
            if let Some((lane, rec)) = self.st.poll_fast(&self.seg) {
                return Ok(Some(RecvSlot {
                    consumer: self,
                    lane,
                    rec,
                }));
            }
            if !self.next_record_waiting(op, patience)? {
                return Ok(None);
            }
        }
    }

    /// What the fast path (`State::poll_fast`) did not find: the full scan, the end of the
    /// stream, errors, and waiting as `patience` allows. `true` when a record is there, not
    /// taken, in the lane the fast path looks at first (unless the memory changed since, which
    /// only a hostile writer does: the caller then comes back here); `false` at the end of the
    /// stream.
    #[inline(never)]
    fn next_record_waiting(&mut self, op: &'static str, patience: Patience) -> Result<bool> {
        let seg = &self.seg;
        let st = &mut self.st;
        let got = match st.poll(op, seg)? {
            Some(got) => Some(got),
            None => {
                let mut deadline = patience.deadline();
                if st.streak >= AHEAD_AFTER && !matches!(patience, Patience::Never) {
                    st.let_producer_ahead(seg, &mut deadline);
                }
                st.streak = 0;
                let mut polls = 0u32;
                // Each poll looks at the lane the fast path looks at first, and then, if it is
                // not a busy poll or is every `FULL_PASS_EVERY`th one, takes the full pass;
                // errors boxed, so that what a poll returns fits in two registers.
                wait_for(
                    &seg.header().consumer_wait,
                    self.wait,
                    &mut self.window,
                    deadline,
                    |busy| {
                        polls = polls.wrapping_add(1);
                        match st.peek_first(seg) {
                            Some((i, _)) => Ok(Some(Got::Record(i))),
                            None if busy && !polls.is_multiple_of(FULL_PASS_EVERY) => Ok(None),
                            None => st.poll(op, seg).map_err(Box::new),
                        }
                    },
                )
                .map_err(|e| *e)?
            }
        };
        match got {
            Some(Got::Record(i)) => {
                // Leave the record for the fast path: its lane first in line.
                st.next = i;
                Ok(true)
            }
            Some(Got::End) => Ok(false),
            None => Err(patience.error(op, seg.object(), "the channel is empty")),
        }
    }

    #[inline]
    fn release(&mut self, i: usize, r: Record) {
        let ctl = self.seg.lane(i);
        self.st.lanes[i].ring.release(ctl, &ctl.space, r);
    }

    /// Detaches: producers blocked on a full lane, and later sends, get [`Error::Closed`]
    /// (until another consumer attaches). Unreceived messages stay in the lanes for a next
    /// consumer, unless this was the last participant, which removes the channel's name.
    /// Dropping the consumer does the same, ignoring errors.
    pub fn close(mut self) -> Result<()> {
        self.leave()
    }

    fn leave(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        // Release: pairs with the producers' loads; our releases of head come before it.
        self.seg
            .header()
            .members
            .consumer_state
            .store(CONSUMER_CLOSED, Ordering::Release);
        for i in 0..self.seg.geometry().lanes {
            self.seg.lane(i).space.notify();
        }
        self.seg.leave()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.leave();
    }
}

impl State {
    /// The hot path of [`poll`](Self::poll): a record in the lane that a full pass would visit
    /// first, when that lane has been used before. `None` means "take the full pass" (which
    /// looks at that lane again), never "empty". Reads the two membership words, as the full
    /// pass does, so that the end of the stream and new producers are seen as promptly.
    #[inline(always)]
    fn poll_fast(&mut self, seg: &Segment) -> Option<(usize, Record)> {
        let (i, r) = self.peek_first(seg)?;
        // The next scan starts after this lane (no `%`: a division by a run-time lane count
        // costs more than the rest of this path).
        self.next = if i + 1 == self.lanes.len() { 0 } else { i + 1 };
        self.streak = self.streak.saturating_add(1);
        self.streak_lane = i;
        Some((i, r))
    }

    /// `poll_fast` without taking the record: the lane it looks at and the record there.
    #[inline(always)]
    fn peek_first(&mut self, seg: &Segment) -> Option<(usize, Record)> {
        let h = seg.header();
        // Acquire (both): as in `poll`.
        if h.members.producers_ever.load(Ordering::Acquire) & STREAM_ENDED != 0 {
            return None;
        }
        let mask = h.members.active_lanes.load(Ordering::Acquire) & seg.geometry().lane_mask();
        // The first lane of `poll`'s round-robin order: the lowest one from `next` up, or else
        // the lowest one.
        let from = mask & (u64::MAX << self.next);
        let bits = if from != 0 { from } else { mask };
        if bits == 0 {
            return None;
        }
        let i = bits.trailing_zeros() as usize;
        let lane = self.lanes.get_mut(i)?;
        if !lane.prefaulted {
            return None;
        }
        let ctl = seg.lane(i);
        match lane.ring.peek(ctl, &lane.buf, &ctl.space) {
            Ok(Some(r)) => Some((i, r)),
            _ => None,
        }
    }

    /// Waits, after a streak of records, for the producer of the streak's last lane to get
    /// ahead (`wait::let_ahead`); the consumer has just found the channel empty.
    fn let_producer_ahead(&self, seg: &Segment, deadline: &mut Deadline) {
        let i = self.streak_lane;
        let Some(lane) = self.lanes.get(i) else {
            return;
        };
        let ctl = seg.lane(i);
        let limit = (seg.geometry().lane_capacity as u64 / 4).min(AHEAD_BYTES);
        let_ahead(limit, deadline, || lane.ring.backlog(ctl));
    }

    /// One pass over the active lanes: a record, the end of the stream, or nothing.
    fn poll(&mut self, op: &'static str, seg: &Segment) -> Result<Option<Got>> {
        let h = seg.header();
        let geo = seg.geometry();
        // Acquire (both), the count first: a producer sets its lane bit before it counts itself
        // (Release), so a count we see comes with its bit, and "count > 0 and no bit" really
        // means every producer we know of is gone.
        let ever = h.members.producers_ever.load(Ordering::Acquire);
        if ever & STREAM_ENDED != 0 {
            // We received the end of the stream already; no producer can have attached since.
            return Ok(Some(Got::End));
        }
        let mask = h.members.active_lanes.load(Ordering::Acquire) & geo.lane_mask();
        // Round-robin: lanes from `next` up, then those below it.
        let from = u64::MAX << self.next;
        let mut due = None;
        for mut bits in [mask & from, mask & !from] {
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(got) = self.poll_lane(op, seg, i, &mut due)? {
                    return Ok(Some(got));
                }
            }
        }
        // Acquire: as above; lanes freed by this pass are gone from it.
        let mask = h.members.active_lanes.load(Ordering::Acquire) & geo.lane_mask();
        if ever > 0 && mask == 0 {
            // End of the stream, unless a producer counted itself in since we read `ever`: the
            // compare-exchange fails then, and the next poll finds its lane. Setting the flag
            // refuses later producers (`claim`) instead of leaving their messages unread.
            // AcqRel: pairs with the producers' AcqRel update of the count. Acquire (failure):
            // nothing read.
            let ended = h.members.producers_ever.compare_exchange(
                ever,
                ever | STREAM_ENDED,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if ended.is_ok() {
                return Ok(Some(Got::End));
            }
        }
        Ok(None)
    }

    /// Lane `i`: its next record, or, when it is empty and its producer is gone, frees it (and
    /// reports a death).
    fn poll_lane(
        &mut self,
        op: &'static str,
        seg: &Segment,
        i: usize,
        due: &mut Option<bool>,
    ) -> Result<Option<Got>> {
        let ctl = seg.lane(i);
        let lanes = self.lanes.len();
        if !self.lanes[i].prefaulted {
            // A lane in use for the first time: its pages now, not one fault per page later.
            seg.prefault(i, false);
            self.lanes[i].prefaulted = true;
        }
        let corrupt =
            |c: Corrupt| Error::corrupt(op, seg.object().clone(), format!("lane {i}: {}", c.0));
        let peek = |st: &mut State| -> Result<Option<Got>> {
            let lane = &mut st.lanes[i];
            let found = lane.ring.peek(ctl, &lane.buf, &ctl.space);
            if !matches!(found, Ok(None)) {
                // Served (or failed): the next scan starts after this lane.
                st.next = (i + 1) % lanes;
            }
            Ok(found.map_err(corrupt)?.map(|_| Got::Record(i)))
        };
        if let Some(got) = peek(self)? {
            return Ok(Some(got));
        }
        // Empty. The rule: drain what was published, then look at the close state, and only
        // then judge liveness — a producer that closes normally between any two of these steps
        // must never read as dead. Acquire: pairs with the producer's Release store of CLOSED
        // (or ACTIVE), so the second look below sees its last record header.
        let died = match ctl.owner.state.load(Ordering::Acquire) {
            LANE_ACTIVE => {
                let due = *due.get_or_insert_with(|| self.last_check.due());
                #[cfg(test)]
                hooks::before_liveness_check();
                if !due || seg.is_alive("fcntl(F_OFD_GETLK)", lane_lock_byte(i))? {
                    return Ok(None);
                }
                // The lock is free: the producer died, or it closed after our load of ACTIVE
                // (it stores CLOSED before it drops its lock; the kernel's lock-table lock,
                // taken by its unlock and by our F_OFD_GETLK, orders that store before this
                // load). Acquire: as above.
                match ctl.owner.state.load(Ordering::Acquire) {
                    LANE_ACTIVE => {
                        // Relaxed: for the message only.
                        Some(ctl.owner.pid.load(Ordering::Relaxed))
                    }
                    LANE_CLOSED => None,
                    other => {
                        return Err(corrupt(Corrupt(format!("lane state {other}"))));
                    }
                }
            }
            LANE_CLOSED => None,
            // A bit without a stream: left by a hostile writer; the producer protocol never
            // shows it (the bit is set after ACTIVE and cleared before FREE). Nothing to read.
            LANE_FREE => return Ok(None),
            other => {
                return Err(corrupt(Corrupt(format!("lane state {other}"))));
            }
        };
        // The producer is gone: deliver what it published before going (looking again).
        if let Some(got) = peek(self)? {
            return Ok(Some(got));
        }
        let h = seg.header();
        // Relaxed: published by the Release store of FREE, which a claiming producer loads with
        // Acquire before setting the bit again.
        h.members
            .active_lanes
            .fetch_and(!(1u64 << i), Ordering::Relaxed);
        ctl.owner.state.store(LANE_FREE, Ordering::Release);
        match died {
            Some(pid) => {
                self.next = (i + 1) % lanes;
                Err(Error::PeerDied {
                    op,
                    object: seg.object().clone(),
                    peer: "producer",
                    pid,
                })
            }
            None => Ok(None),
        }
    }
}

/// Test hooks: code run at chosen instants of the consumer, to make races deterministic.
#[cfg(test)]
pub(crate) mod hooks {
    use std::cell::RefCell;

    thread_local! {
        static BEFORE_LIVENESS_CHECK: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
    }

    /// Runs `f` once, the next time this thread's consumer has found an active lane empty and
    /// is about to ask whether its producer is alive.
    pub(crate) fn set_before_liveness_check(f: impl FnOnce() + 'static) {
        BEFORE_LIVENESS_CHECK.with(|h| *h.borrow_mut() = Some(Box::new(f)));
    }

    pub(super) fn before_liveness_check() {
        if let Some(f) = BEFORE_LIVENESS_CHECK.with(|h| h.borrow_mut().take()) {
            f();
        }
    }
}

/// A received message lent in place ([`Consumer::recv_ref`]); released when dropped.
///
/// [`shared`](Self::shared) gives its bytes as a [`SharedSlice`]: they are the lane's shared
/// memory, which a hostile producer could change while you hold them, so they are never lent
/// as `&[u8]`. Copy out what you validate ([`SharedSlice::read_at`], [`SharedSlice::to_vec`]).
pub struct RecvSlot<'a> {
    consumer: &'a mut Consumer,
    lane: usize,
    rec: Record,
}

impl RecvSlot<'_> {
    /// The lane (producer slot, 0-based) the message came from.
    pub fn lane(&self) -> usize {
        self.lane
    }

    /// The message's length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.rec.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.rec.len == 0
    }

    /// The message's bytes in the lane (validated to lie inside it by `peek`).
    #[inline]
    pub fn shared(&self) -> SharedSlice<'_> {
        let c = &*self.consumer;
        c.st.lanes[self.lane]
            .buf
            .shared(self.rec.offset, self.rec.len, c.seg.object())
    }
}

impl Drop for RecvSlot<'_> {
    #[inline]
    fn drop(&mut self) {
        self.consumer.release(self.lane, self.rec);
    }
}

impl fmt::Debug for RecvSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvSlot")
            .field("lane", &self.lane)
            .field("len", &self.rec.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::hooks;
    use crate::channel::Options;

    /// The producer closes normally right between the consumer's load of its lane's state
    /// (ACTIVE) and the consumer's liveness check (its lock is free by then): a clean close,
    /// never `PeerDied`. The hook makes the interleaving deterministic.
    #[test]
    #[cfg_attr(miri, ignore = "calls memfd_create, which Miri lacks")]
    fn producer_closing_between_state_load_and_liveness_check_is_a_clean_close() {
        let channel = Options::new().anonymous().unwrap();
        let mut rx = channel.consumer().unwrap();
        let mut tx = channel.producer().unwrap();
        tx.send(b"last words").unwrap();
        assert_eq!(rx.recv().unwrap().unwrap(), b"last words");
        hooks::set_before_liveness_check(move || tx.close().unwrap());
        assert_eq!(
            rx.try_recv().unwrap(),
            None,
            "the end of the stream, not a death"
        );
    }
}
