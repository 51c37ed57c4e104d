//! Opening, attaching to and leaving a channel segment: `shm_open` (or an inherited memfd), the
//! init lock, creation or validation, crash recovery, claiming a role, and teardown.
//!
//! Everything that changes membership happens under the init lock (an OFD write lock on
//! [`INIT_LOCK_BYTE`]), so open, recovery and teardown never interleave. The data path (sending,
//! receiving) never takes it. The lock is polled (`F_OFD_SETLK` with backoff), never waited for
//! with `F_OFD_SETLKW`: a holder stopped inside open or leave (SIGSTOP, a debugger) makes the
//! others' open and close fail with `Timeout` after [`INIT_LOCK_TIMEOUT`], not hang.
//!
//! # Identity
//! A file is taken for a channel only if it proves it: the first 8 bytes are the channel's
//! [`MAGIC`] (then its whole header is validated), or its creator's in-progress marker
//! [`INIT_MARKER`] (a creator that died while initialising: repaired, under the init lock). The
//! creator writes the marker with `pwrite` into the still empty object before it sizes it, so no
//! instant of a creation leaves a non-empty object without one of the two. Anything else — a
//! foreign object, all zeros included — is refused as `Corrupt` and never written; only an empty
//! object (size 0, which holds no data) is initialised, as `shm_open(O_CREAT)` itself would.
//!
//! # References
//! [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html),
//! [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html),
//! [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html),
//! [proc_pid_fd(5)](https://man7.org/linux/man-pages/man5/proc_pid_fd.5.html)

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::mm::{Advice, MapFlags, ProtFlags};

use super::atomic::Ordering;
use super::header::{
    lane_lock_byte, Geometry, Header, LaneCtl, CONSUMER_ATTACHED, CONSUMER_LOCK_BYTE,
    CONSUMER_NONE, INIT_LOCK_BYTE, INIT_MARKER, LANE_ACTIVE, LANE_CLOSED, LANE_FREE, LOCK_BASE,
    MAGIC, MAX_PRODUCERS, PAGE, STREAM_ENDED,
};
use super::ring::RingBuf;
use crate::error::{Error, Object, Result};
use crate::ofd_lock as lock;

/// The longest wait for the init lock, whose holders only open, recover or leave (a few system
/// calls): past it, the holder is taken to be stopped (SIGSTOP, a debugger), and the open or
/// leave fails with `Timeout` rather than wait for ever.
pub(crate) const INIT_LOCK_TIMEOUT: Duration = Duration::from_secs(3);

/// Takes the init lock on `fd`, waiting at most [`INIT_LOCK_TIMEOUT`].
fn init_lock(fd: BorrowedFd<'_>, object: &Object) -> Result<()> {
    match lock::lock_within(fd, INIT_LOCK_BYTE, INIT_LOCK_TIMEOUT) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::Timeout {
            op: "wait for the open/leave lock (held by a stopped or very slow participant) of",
            object: object.clone(),
            timeout: INIT_LOCK_TIMEOUT,
        }),
        Err(e) => Err(Error::os("fcntl(F_OFD_SETLK)", object.clone(), e)),
    }
}

/// How many times an open retries when the name it opened was unlinked by a leaving participant
/// before it got the init lock (each retry creates a fresh segment, so one retry is the norm).
const OPEN_RETRIES: usize = 100;

/// Which role a handle claims when it attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Consumer,
    Producer,
}

/// What a newly created segment looks like (the creator's options; openers' are ignored).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) geo: Geometry,
    pub(crate) mode: u32,
}

/// One `mmap` of the whole segment; unmapped on drop.
struct Map {
    ptr: NonNull<u8>,
    len: usize,
}

impl Map {
    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)`.
    fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Map> {
        // SAFETY: a NULL hint lets the kernel choose a free range, so no existing memory of this
        // process is replaced; `len` is non-zero (at least one page, checked by the callers).
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null address"))?;
        Ok(Map { ptr, len })
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr + len` is a mapping made by `Map::new` and not yet unmapped; no
        // reference into it outlives the owning `Segment` (borrows of it borrow the segment).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One participant's attachment to a channel: its own open file description (holding its
/// liveness lock), the mapping, and the validated geometry.
pub(crate) struct Segment {
    // Field order is drop order: unmap before closing the descriptor.
    map: Map,
    fd: OwnedFd,
    geo: Geometry,
    object: Object,
    /// The POSIX name, unlinked by the last participant to leave; None for a memfd.
    name: Option<String>,
}

// SAFETY: the mapping and the descriptor belong to the process, not to a thread; all shared
// fields are atomics, and the ring bytes are accessed through `&mut` handles only.
unsafe impl Send for Segment {}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("object", &self.object)
            .field("geometry", &self.geo)
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}

fn pid() -> u32 {
    std::process::id()
}

impl Segment {
    /// Opens (creating it if needed) the channel `name` and claims `role`; returns the segment
    /// and, for a producer, its lane.
    pub(crate) fn open_named(
        op: &'static str,
        name: &str,
        shape: Shape,
        role: Role,
    ) -> Result<(Segment, usize)> {
        let object = Object::Other(format!("channel {name}").into());
        crate::posix::check_name(op, object.clone(), std::ffi::OsStr::new(name))?;
        let flags = rustix::shm::OFlags::RDWR
            | rustix::shm::OFlags::CREATE
            | rustix::shm::OFlags::from_bits_retain(OFlags::NOFOLLOW.bits());
        for _ in 0..OPEN_RETRIES {
            let fd = rustix::shm::open(name, flags, Mode::from_bits_truncate(shape.mode))
                .map_err(|e| Error::os("shm_open", object.clone(), e))?;
            init_lock(fd.as_fd(), &object)?;
            let st = rustix::fs::fstat(&fd).map_err(|e| Error::os("fstat", object.clone(), e))?;
            if st.st_nlink == 0 {
                // The last participant unlinked it after our shm_open: open the new one.
                continue;
            }
            if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                return Err(Error::corrupt(op, object, "not a regular file"));
            }
            return Segment::attach(
                op,
                fd,
                st.st_size as u64,
                Some(shape),
                role,
                object,
                Some(name),
            );
        }
        Err(Error::os(
            "shm_open",
            object,
            io::Error::other("the channel was removed while opening, 100 times in a row"),
        ))
    }

    /// Attaches to the anonymous channel behind the inherited descriptor `fd` through its own
    /// open file description (`open("/proc/self/fd/N", O_RDWR)`), and claims `role`.
    pub(crate) fn open_fd(
        op: &'static str,
        fd: BorrowedFd<'_>,
        role: Role,
    ) -> Result<(Segment, usize)> {
        let raw = fd.as_raw_fd();
        let object = Object::Other(format!("anonymous channel (fd {raw})").into());
        let path = format!("/proc/self/fd/{raw}");
        let own = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::os("open", Object::Path(std::path::Path::new(&path).into()), e))?;
        init_lock(own.as_fd(), &object)?;
        let st = rustix::fs::fstat(&own).map_err(|e| Error::os("fstat", object.clone(), e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Error::invalid(
                op,
                object,
                "the descriptor is not a channel (not a regular file)",
            ));
        }
        Segment::attach(op, own, st.st_size as u64, None, role, object, None)
    }

    /// `memfd_create("ipckit-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING)`, sized and initialised,
    /// then sealed against shrinking and growing so no holder can make the others fault.
    pub(crate) fn create_anonymous(op: &'static str, shape: Shape) -> Result<OwnedFd> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let object = Object::Other("anonymous channel".into());
        let fd = rustix::fs::memfd_create(
            "ipckit-channel",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| Error::os("memfd_create", object.clone(), e))?;
        rustix::fs::ftruncate(&fd, shape.geo.total as u64)
            .map_err(|e| Error::os("ftruncate", object.clone(), e))?;
        let map =
            Map::new(fd.as_fd(), shape.geo.total).map_err(|e| Error::os(op, object.clone(), e))?;
        header_of(&map).initialize(&shape.geo);
        drop(map);
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .map_err(|e| Error::os("fcntl(F_ADD_SEALS)", object, e))?;
        Ok(fd)
    }

    /// With the init lock held on `fd`: create or validate, recover, claim; then release the
    /// init lock whatever happened.
    fn attach(
        op: &'static str,
        fd: OwnedFd,
        size: u64,
        create: Option<Shape>,
        role: Role,
        object: Object,
        name: Option<&str>,
    ) -> Result<(Segment, usize)> {
        let result = Segment::attach_locked(op, &fd, size, create, &object);
        let attached = result.and_then(|(map, geo)| {
            let seg = Segment {
                map,
                fd,
                geo,
                object,
                name: name.map(str::to_owned),
            };
            let lane = seg.claim(op, role)?;
            Ok((seg, lane))
        });
        if let Ok((seg, _)) = &attached {
            // On failure the descriptor is closed and its mapping gone, which drops the lock.
            let _ = lock::unlock(seg.fd.as_fd(), INIT_LOCK_BYTE, 1);
        }
        attached
    }

    fn attach_locked(
        op: &'static str,
        fd: &OwnedFd,
        size: u64,
        create: Option<Shape>,
        object: &Object,
    ) -> Result<(Map, Geometry)> {
        let os = |what: &'static str| move |e: io::Error| Error::os(what, object.clone(), e);
        let fresh = |shape: Shape| -> Result<(Map, Geometry)> {
            // Empty (a repair empties it first), then our marker, then the size: a crash at any
            // point leaves an object that is empty or starts with the marker (see "Identity").
            rustix::fs::ftruncate(fd, 0).map_err(|e| os("ftruncate")(e.into()))?;
            let n = rustix::io::pwrite(fd, &INIT_MARKER.to_le_bytes(), 0)
                .map_err(|e| os("pwrite")(e.into()))?;
            if n != 8 {
                return Err(os("pwrite")(io::Error::other(
                    "short write of the init marker",
                )));
            }
            rustix::fs::ftruncate(fd, shape.geo.total as u64)
                .map_err(|e| os("ftruncate")(e.into()))?;
            let map = Map::new(fd.as_fd(), shape.geo.total).map_err(os("mmap"))?;
            // Stores the magic last, over the marker.
            header_of(&map).initialize(&shape.geo);
            Ok((map, shape.geo))
        };
        if size == 0 {
            return match create {
                Some(shape) => fresh(shape),
                None => Err(Error::invalid(
                    op,
                    object.clone(),
                    "the descriptor is not a channel (empty)",
                )),
            };
        }
        let mut first = [0u8; 8];
        let n = rustix::io::pread(fd, &mut first, 0).map_err(|e| os("pread")(e.into()))?;
        let first = (n == 8).then(|| u64::from_le_bytes(first));
        if first == Some(INIT_MARKER) {
            // Its creator died while initialising it: under the init lock, which a live creator
            // would hold, with nobody attached (checked anyway). Ours to finish.
            let anyone = lock::held_by_other(fd.as_fd(), LOCK_BASE, 1 + MAX_PRODUCERS as u64)
                .map_err(os("fcntl(F_OFD_GETLK)"))?;
            return match create {
                Some(shape) if !anyone => fresh(shape),
                _ => Err(Error::corrupt(
                    op,
                    object.clone(),
                    "a channel whose creator died while initialising it",
                )),
            };
        }
        if first != Some(MAGIC) {
            // Not ours: refused, and left exactly as it is.
            return Err(Error::corrupt(
                op,
                object.clone(),
                format!(
                    "not an ipckit channel (its first bytes are not the channel magic \"ipckchan\"; \
                     {size} bytes, left untouched)"
                ),
            ));
        }
        if size < PAGE as u64 || !size.is_multiple_of(PAGE as u64) || size > usize::MAX as u64 {
            return Err(Error::corrupt(
                op,
                object.clone(),
                format!("segment size {size} is not a whole number of pages"),
            ));
        }
        let map = Map::new(fd.as_fd(), size as usize).map_err(os("mmap"))?;
        let geo = header_of(&map)
            .validate(size)
            .map_err(|detail| Error::corrupt(op, object.clone(), detail))?;
        Ok((map, geo))
    }

    /// The header (first page).
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        header_of(&self.map)
    }

    /// Lane `i`'s control block (`i < lanes`).
    #[inline]
    pub(crate) fn lane(&self, i: usize) -> &LaneCtl {
        assert!(i < self.geo.lanes, "lane {i} of {}", self.geo.lanes);
        let off = self.geo.lane_offset(i);
        // SAFETY: the geometry was validated against the mapping's length, so the lane table
        // entry lies inside the mapping; `off` is a multiple of 128 from a page-aligned base;
        // LaneCtl consists of atomics, valid for any bytes; the borrow is tied to `self`.
        unsafe { &*self.map.ptr.as_ptr().add(off).cast::<LaneCtl>() }
    }

    /// Lane `i`'s ring bytes.
    #[inline]
    pub(crate) fn ring(&self, i: usize) -> RingBuf {
        assert!(i < self.geo.lanes, "lane {i} of {}", self.geo.lanes);
        let off = self.geo.ring_offset(i);
        // SAFETY: the ring lies inside the mapping (validated geometry); the address is
        // page-aligned; the mapping lives as long as `self`, and every `RingBuf` is owned by the
        // handle that owns `self`, next to it.
        unsafe {
            RingBuf::new(
                NonNull::new_unchecked(self.map.ptr.as_ptr().add(off)),
                self.geo.lane_capacity,
            )
        }
    }

    /// Maps lane `i`'s ring into this process's page tables now (`MADV_POPULATE_WRITE`, or
    /// `_READ` for the consumer, Linux 5.14+), so that the first lap of the ring does not take a
    /// page fault per page in the middle of sends and receives — about as long as the copy of an
    /// 8 KiB message. Best effort: an older kernel (EINVAL) or a peer that shrank the object
    /// (EFAULT, where touching would raise SIGBUS) leaves the pages to fault in as they are used.
    pub(crate) fn prefault(&self, i: usize, write: bool) {
        assert!(i < self.geo.lanes, "lane {i} of {}", self.geo.lanes);
        let off = self.geo.ring_offset(i);
        let advice = if write {
            Advice::LinuxPopulateWrite
        } else {
            Advice::LinuxPopulateRead
        };
        // SAFETY: the range is lane i's ring, inside our mapping (validated geometry) and
        // page-aligned; populating changes no byte of it and no other mapping.
        let _ = unsafe {
            rustix::mm::madvise(
                self.map.ptr.as_ptr().add(off).cast(),
                self.geo.lane_capacity,
                advice,
            )
        };
    }

    #[inline]
    pub(crate) fn geometry(&self) -> &Geometry {
        &self.geo
    }

    pub(crate) fn object(&self) -> &Object {
        &self.object
    }

    /// Whether another open file description holds the liveness lock `byte`.
    pub(crate) fn is_alive(&self, op: &'static str, byte: u64) -> Result<bool> {
        lock::held_by_other(self.fd.as_fd(), byte, 1)
            .map_err(|e| Error::os(op, self.object.clone(), e))
    }

    /// Whether any other participant (consumer or producer) is alive.
    fn anyone_else(&self) -> io::Result<bool> {
        lock::held_by_other(self.fd.as_fd(), LOCK_BASE, 1 + self.geo.lanes as u64)
    }

    /// Under the init lock with no participant alive: forget a dead consumer and stale sleepers,
    /// and restart the end-of-stream count from the lanes that still hold a stream. Committed
    /// messages are kept: the next consumer receives them, then learns of their producer's death.
    fn recover(&self) {
        let h = self.header();
        // Release (here and below): published to later openers, who load with Acquire under
        // the init lock.
        h.members
            .consumer_state
            .store(CONSUMER_NONE, Ordering::Release);
        h.consumer_wait.reset();
        let mut mask = 0u64;
        for i in 0..self.geo.lanes {
            let lane = self.lane(i);
            lane.space.reset();
            // Acquire: pairs with the Release stores of state by the (dead) participants.
            match lane.owner.state.load(Ordering::Acquire) {
                LANE_ACTIVE | LANE_CLOSED => mask |= 1 << i,
                _ => {}
            }
        }
        h.members.active_lanes.store(mask, Ordering::Release);
        h.members
            .producers_ever
            .store(u64::from(mask.count_ones()), Ordering::Release);
    }

    /// Claims the consumer role or a free lane (under the init lock). Returns the lane
    /// (`usize::MAX` for the consumer).
    fn claim(&self, op: &'static str, role: Role) -> Result<usize> {
        let getlk = |e| Error::os("fcntl(F_OFD_GETLK)", self.object.clone(), e);
        let setlk = |e| Error::os("fcntl(F_OFD_SETLK)", self.object.clone(), e);
        if !self.anyone_else().map_err(getlk)? {
            self.recover();
        }
        let h = self.header();
        let fd = self.fd.as_fd();
        match role {
            Role::Consumer => {
                if !lock::try_lock(fd, CONSUMER_LOCK_BYTE).map_err(setlk)? {
                    // Relaxed: for the message only.
                    let pid = h.members.consumer_pid.load(Ordering::Relaxed);
                    return Err(Error::os(
                        op,
                        self.object.clone(),
                        io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("the channel already has a consumer (pid {pid})"),
                        ),
                    ));
                }
                // A new consumer starts a new stream with the producers attached now (no
                // producer can attach while we hold the init lock; a previous consumer is gone).
                // Relaxed: published by the Release store of the state, and by the init lock.
                let active = h.members.active_lanes.load(Ordering::Relaxed) & self.geo.lane_mask();
                h.members
                    .producers_ever
                    .store(u64::from(active.count_ones()), Ordering::Relaxed);
                // Relaxed: published by the Release store of the state.
                h.members.consumer_pid.store(pid(), Ordering::Relaxed);
                // Release: the liveness lock is taken before this store, so ATTACHED with the
                // lock free means "died"; producers load it with Acquire.
                h.members
                    .consumer_state
                    .store(CONSUMER_ATTACHED, Ordering::Release);
                Ok(usize::MAX)
            }
            Role::Producer => {
                let ended = || Error::Closed {
                    op,
                    object: self.object.clone(),
                    reason: "the consumer has already received the end of the stream \
                             (every earlier producer closed); a late producer is refused",
                };
                // Acquire: pairs with the consumer's AcqRel compare-exchange.
                if h.members.producers_ever.load(Ordering::Acquire) & STREAM_ENDED != 0 {
                    return Err(ended());
                }
                for pass in 0..2 {
                    if pass == 1 && !self.reclaim_lanes().map_err(getlk)? {
                        break;
                    }
                    for i in 0..self.geo.lanes {
                        let lane = self.lane(i);
                        // Acquire: pairs with the consumer's Release store of FREE, so its
                        // clearing of the lane's mask bit comes before our setting it.
                        if lane.owner.state.load(Ordering::Acquire) != LANE_FREE
                            || !lock::try_lock(fd, lane_lock_byte(i)).map_err(setlk)?
                        {
                            continue;
                        }
                        // Relaxed: published by the Release store of the state.
                        lane.owner.pid.store(pid(), Ordering::Relaxed);
                        // Release: liveness lock first, then ACTIVE (so ACTIVE without the lock
                        // means "died"); the consumer loads state with Acquire.
                        lane.owner.state.store(LANE_ACTIVE, Ordering::Release);
                        // Release: the consumer that sees the bit (Acquire) sees ACTIVE.
                        h.members.active_lanes.fetch_or(1 << i, Ordering::Release);
                        // Counted after the bit: a consumer that sees the count (Acquire)
                        // also sees the bit, so it never takes "count > 0, no lane" for the
                        // end of the stream while we attach; and a consumer that read the count
                        // before us fails its compare-exchange, so it looks again and finds us.
                        // AcqRel (success): Release for the above; Acquire (both) to see
                        // the flag the consumer set.
                        let counted = h.members.producers_ever.fetch_update(
                            Ordering::AcqRel,
                            Ordering::Acquire,
                            |n| (n & STREAM_ENDED == 0).then_some(n + 1),
                        );
                        if counted.is_err() {
                            // The consumer ended the stream before we counted ourselves, so it
                            // never looks at this lane again: give it back ourselves. Relaxed:
                            // published by the Release store of FREE.
                            h.members
                                .active_lanes
                                .fetch_and(!(1u64 << i), Ordering::Relaxed);
                            lane.owner.state.store(LANE_FREE, Ordering::Release);
                            let _ = lock::unlock(fd, lane_lock_byte(i), 1);
                            return Err(ended());
                        }
                        return Ok(i);
                    }
                }
                let n = self.geo.lanes;
                Err(Error::os(
                    op,
                    self.object.clone(),
                    io::Error::other(format!(
                        "all {n} producer lanes are in use (the channel's max_producers is {n})"
                    )),
                ))
            }
        }
    }

    /// With no consumer alive, frees lanes whose producer is gone and whose messages were all
    /// consumed (nobody else frees them then). Returns whether it looked (a consumer is absent).
    fn reclaim_lanes(&self) -> io::Result<bool> {
        if lock::held_by_other(self.fd.as_fd(), CONSUMER_LOCK_BYTE, 1)? {
            return Ok(false);
        }
        let h = self.header();
        for i in 0..self.geo.lanes {
            let lane = self.lane(i);
            // Acquire: pairs with the producer's Release store of its state.
            let state = lane.owner.state.load(Ordering::Acquire);
            let gone = state == LANE_CLOSED
                || (state == LANE_ACTIVE
                    && !lock::held_by_other(self.fd.as_fd(), lane_lock_byte(i), 1)?);
            // Acquire (both): the indices as the last writers left them.
            let drained =
                lane.prod.tail.load(Ordering::Acquire) == lane.cons.head.load(Ordering::Acquire);
            if gone && drained {
                // Relaxed: published by the Release store of FREE.
                h.members
                    .active_lanes
                    .fetch_and(!(1u64 << i), Ordering::Relaxed);
                lane.owner.state.store(LANE_FREE, Ordering::Release);
            }
        }
        Ok(true)
    }

    /// Leaves the channel: the role was already marked closed (and the peer woken) by the
    /// caller. Under the init lock, unlinks the name if nobody else is attached, then releases
    /// every lock of this description.
    pub(crate) fn leave(&self) -> Result<()> {
        let fd = self.fd.as_fd();
        let result = (|| {
            // On a timeout, the name stays: the stopped holder, or the next opener, sees us
            // gone (our locks are released below) and decides.
            init_lock(fd, &self.object)?;
            let others = self
                .anyone_else()
                .map_err(|e| Error::os("fcntl(F_OFD_GETLK)", self.object.clone(), e))?;
            if let (false, Some(name)) = (others, &self.name) {
                match rustix::shm::unlink(name.as_str()) {
                    Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                    Err(e) => return Err(Error::os("shm_unlink", self.object.clone(), e)),
                }
            }
            Ok(())
        })();
        // The init byte and every participant byte; locks of other descriptions are untouched.
        let _ = lock::unlock(fd, INIT_LOCK_BYTE, 2 + self.geo.lanes as u64);
        result
    }
}

#[inline]
fn header_of(map: &Map) -> &Header {
    debug_assert!(map.len >= PAGE);
    // SAFETY: the mapping is at least one page (checked before mapping), page-aligned, and the
    // header fits in a page (asserted at compile time in `header`); Header consists of atomics,
    // valid for any bytes; the borrow is tied to the mapping.
    unsafe { &*map.ptr.as_ptr().cast::<Header>() }
}

/// `shm_unlink(name)` after validating the name.
pub(crate) fn unlink(name: &str) -> Result<()> {
    let object = Object::Other(format!("channel {name}").into());
    crate::posix::check_name("shm_unlink", object.clone(), std::ffi::OsStr::new(name))?;
    rustix::shm::unlink(name).map_err(|e| Error::os("shm_unlink", object, e))
}

/// Unlinks `name` if it is a channel nobody is attached to (see `channel::remove_if_orphaned`).
pub(crate) fn remove_if_orphaned(name: &str) -> Result<bool> {
    const OP: &str = "remove_if_orphaned";
    let object = Object::Other(format!("channel {name}").into());
    crate::posix::check_name(OP, object.clone(), std::ffi::OsStr::new(name))?;
    let flags =
        rustix::shm::OFlags::RDWR | rustix::shm::OFlags::from_bits_retain(OFlags::NOFOLLOW.bits());
    let fd = rustix::shm::open(name, flags, Mode::empty())
        .map_err(|e| Error::os("shm_open", object.clone(), e))?;
    let os = |op: &'static str| {
        let object = object.clone();
        move |e: io::Error| Error::os(op, object, e)
    };
    // Someone is opening or leaving right now: not an orphan. Holding the init lock keeps
    // openers out until we are done; one that already has the name open sees it unlinked
    // (nlink 0) when it gets the lock, and creates a new channel.
    if !lock::try_lock(fd.as_fd(), INIT_LOCK_BYTE).map_err(os("fcntl(F_OFD_SETLK)"))? {
        return Ok(false);
    }
    let st = rustix::fs::fstat(&fd).map_err(|e| os("fstat")(e.into()))?;
    if st.st_nlink == 0 || (st.st_size as u64) < PAGE as u64 {
        return Ok(false);
    }
    let mut magic = [0u8; 8];
    let n = rustix::io::pread(&fd, &mut magic, 0).map_err(|e| os("pread")(e.into()))?;
    // A channel, or one whose creator died while initialising it (nobody else can be inside:
    // we hold the init lock).
    if n != 8 || ![MAGIC, INIT_MARKER].contains(&u64::from_le_bytes(magic)) {
        return Ok(false);
    }
    if lock::held_by_other(fd.as_fd(), LOCK_BASE, 1 + MAX_PRODUCERS as u64)
        .map_err(os("fcntl(F_OFD_GETLK)"))?
    {
        return Ok(false);
    }
    rustix::shm::unlink(name).map_err(|e| Error::os("shm_unlink", object, e))?;
    Ok(true)
}
