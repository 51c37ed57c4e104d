//! `mmap+futex`: one message slot in a shared file mapping, handed back and forth through a
//! futex word in the same mapping — what `sysv-shm+sem` does, with a user-space fast path: a
//! side only enters the kernel to sleep when the slot is not ready, and to wake the other side
//! only when that side announced it sleeps.
//!
//! ```text
//! offset 0  magic "IPKM" | version 1 | capacity: u64 | len: u64 | tag: u32 (0 data, 1 end)
//!        28 sender pid: u32 | receiver pid: u32 | aborted: u32
//!        40 state: u32 (the futex: 0 EMPTY, 1 WRITING, 2 FULL) | sleepers: u32
//!        48 ends taken: u32 (the receiver counts the end markers it took: a sender's close
//!           waits for it to move)
//! offset 64 the message (capacity bytes)
//! ```
//! A sender claims the slot (`EMPTY → WRITING`, compare-and-swap, so several senders never write
//! it at once), writes, and publishes `FULL` with a release store; the receiver reads after an
//! acquire load of `FULL` and gives the slot back with `EMPTY`. Sleeping uses the Dekker pattern:
//! a waiter increments `sleepers` and re-checks `state` before `FUTEX_WAIT` (which itself returns
//! at once if `state` changed), a publisher stores `state` and then reads `sleepers`, both
//! sequentially consistent, so either the waiter sees the new state or the publisher sees the
//! sleeper and calls `FUTEX_WAKE`.
//!
//! Every wait is cut into 100 ms slices and follows the transports' one rule
//! ([`await_peer`](super::await_peer)): what the peer published is looked at first, its death
//! only judged when nothing is there (by a pidfd on the pid it recorded), and judged dead it gets
//! one more look — a sender that published its end marker and exited closed cleanly. A side whose
//! peer never recorded its pid gives up after the connect timeout. The futex is shared (not `FUTEX_PRIVATE_FLAG`): the kernel
//! keys it by the file page, so processes meet whatever address they mapped it at.
//!
//! The file lives in the runtime directory (`ipckit-<name>.mmap`); the host (or, by NAME, the
//! receiver) creates it and removes it when its end is dropped. Header fields are validated
//! before use; a process that truncates the file under a mapping makes the next access raise
//! `SIGBUS`, as for every file mapping (see [`crate::mmap`]).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;

use super::{aborted, as_named, await_peer, no_peer, AbortHandle, End, HostImpl, Options};
use super::{FileGuard, PeerSlot, Rendezvous, Role, TransportKind};
use crate::error::{Error, Object, Result};
use crate::mmap::Mmap;

/// The largest message: the file is sized to it.
pub(super) const MAX_MESSAGE: usize = (isize::MAX as usize) - HEADER;

const MAGIC: u32 = u32::from_le_bytes(*b"IPKM");
const VERSION: u32 = 1;
const HEADER: usize = 64;
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 4;
const OFF_CAPACITY: usize = 8;
const OFF_LEN: usize = 16;
const OFF_TAG: usize = 24;
const OFF_SENDER: usize = 28;
const OFF_RECEIVER: usize = 32;
const OFF_ABORTED: usize = 36;
const OFF_STATE: usize = 40;
const OFF_SLEEPERS: usize = 44;
const OFF_ENDS_TAKEN: usize = 48;
const EMPTY: u32 = 0;
const WRITING: u32 = 1;
const FULL: u32 = 2;
const TAG_DATA: u32 = 0;
const TAG_END: u32 = 1;

struct Host {
    role: Role,
    map: Mmap,
    guard: FileGuard,
    timeout: Duration,
}

fn object(path: &Path) -> Object {
    Object::Path(path.into())
}

pub(super) fn host(role: Role, at: &Rendezvous, options: &Options) -> Result<Box<dyn HostImpl>> {
    let path = at.path(".mmap");
    let capacity = options.get_max_message().max(1);
    // The file is made and initialised under a name of its own, then linked to its real name, so
    // a peer polling for the name (a sender started first) never opens a half-made file.
    let draft = Rendezvous::fresh()?.path(".mmap-draft");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&draft)
        .map_err(|e| Error::os("open", object(&draft), e))?;
    let draft_guard = FileGuard(draft.clone());
    file.set_len((HEADER + capacity) as u64)
        .map_err(|e| Error::os("ftruncate", object(&draft), e))?;
    let map = Mmap::options().shared().read_write().map(&file)?;
    map.write(OFF_MAGIC, &MAGIC.to_le_bytes())?;
    map.write(OFF_VERSION, &VERSION.to_le_bytes())?;
    map.write(OFF_CAPACITY, &(capacity as u64).to_le_bytes())?;
    // link(2) never replaces: a taken name is AlreadyExists, as O_CREAT | O_EXCL was.
    std::fs::hard_link(&draft, &path).map_err(|e| Error::os("link", object(&path), e))?;
    let guard = FileGuard(path);
    drop(draft_guard);
    Ok(Box::new(Host {
        role,
        map,
        guard,
        timeout: options.get_timeout(),
    }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        self.guard.0.display().to_string()
    }

    fn establish(self: Box<Self>, _timeout: Option<Duration>) -> Result<End> {
        let Host {
            role,
            map,
            guard,
            timeout,
        } = *self;
        let path = guard.0.clone();
        Slot::end(role, map, &path, Some(guard), timeout)
    }
}

pub(super) fn connect(role: Role, rendezvous: &str, options: &Options) -> Result<End> {
    let path = match as_named(TransportKind::MmapFutex, rendezvous) {
        Some(at) => at.path(".mmap"),
        None => PathBuf::from(rendezvous),
    };
    let file: File = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| Error::os("open", object(&path), e))?;
    let map = Mmap::options().shared().read_write().map(&file)?;
    Slot::end(role, map, &path, None, options.get_timeout())
}

/// An end: the mapping and checked pointers into it.
struct Slot {
    map: Mmap,
    /// The first payload byte; `capacity` bytes from it are inside the mapping and the file.
    payload: NonNull<u8>,
    capacity: usize,
    path: PathBuf,
    abort: AbortHandle,
    _guard: Option<FileGuard>,
    /// The peer whose pid is recorded in the header.
    peer: PeerSlot,
    /// How long a peer that never recorded its pid is waited for, from `since`.
    timeout: Duration,
    since: Instant,
}

// SAFETY: the raw pointer points into `map`, which is Send and lives as long as the Slot; the
// Slot is used by one thread at a time (`&mut self` for every transfer).
unsafe impl Send for Slot {}

impl Slot {
    fn end(
        role: Role,
        map: Mmap,
        path: &Path,
        guard: Option<FileGuard>,
        timeout: Duration,
    ) -> Result<End> {
        let op = "connect";
        let bytes = map.shared()?;
        if bytes.len() < HEADER {
            return Err(Error::corrupt(
                op,
                object(path),
                format!("file of {} bytes has no header", bytes.len()),
            ));
        }
        let word = |o: usize| bytes.read(o).map(u32::from_le_bytes);
        if word(OFF_MAGIC)? != MAGIC || word(OFF_VERSION)? != VERSION {
            return Err(Error::corrupt(
                op,
                object(path),
                "not an ipckit mmap+futex file (magic/version)",
            ));
        }
        let capacity = u64::from_le_bytes(bytes.read(OFF_CAPACITY)?);
        let room = (bytes.len() - HEADER) as u64;
        if capacity == 0 || capacity > room {
            return Err(Error::corrupt(
                op,
                object(path),
                format!(
                    "capacity {capacity} does not fit the file's {room} bytes after the header"
                ),
            ));
        }
        let capacity = capacity as usize;
        // Checks that the whole payload range is inside the mapping and the file.
        map.ptr_at::<u8>(HEADER + capacity - 1)?;
        let payload = map.ptr_at::<u8>(HEADER)?;
        let slot = Slot {
            payload,
            capacity,
            path: path.to_path_buf(),
            abort: AbortHandle::new(None),
            _guard: guard,
            peer: PeerSlot::default(),
            timeout,
            since: Instant::now(),
            map,
        };
        let pid_at = if role == Role::Send {
            OFF_SENDER
        } else {
            OFF_RECEIVER
        };
        slot.word(pid_at)
            .store(std::process::id(), Ordering::Relaxed);
        Ok(match role {
            Role::Send => End::Send(Box::new(slot)),
            Role::Recv => End::Recv(Box::new(slot)),
        })
    }

    /// The header word at `offset` (a multiple of 4 below `HEADER`).
    fn word(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset.is_multiple_of(4) && offset + 4 <= HEADER);
        // SAFETY: `end` checked that the mapping and the file hold at least HEADER bytes; the
        // mapping is page-aligned, so `offset` (a multiple of 4) is aligned for AtomicU32, which
        // accepts any bits; the mapping lives as long as `self`.
        unsafe { &*self.map.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    fn object(&self) -> Object {
        object(&self.path)
    }

    /// Reads a plain header field (written before a release store the caller acquired).
    fn field_u64(&self, offset: usize) -> u64 {
        let lo = u64::from(self.word(offset).load(Ordering::Relaxed));
        let hi = u64::from(self.word(offset + 4).load(Ordering::Relaxed));
        lo | hi << 32
    }

    fn set_field_u64(&self, offset: usize, value: u64) {
        self.word(offset).store(value as u32, Ordering::Relaxed);
        self.word(offset + 4)
            .store((value >> 32) as u32, Ordering::Relaxed);
    }

    /// Sleeps while `state == seen`, for at most `wait`, announcing itself in `sleepers`.
    fn sleep(&self, seen: u32, wait: Duration) {
        let state = self.word(OFF_STATE);
        let sleepers = self.word(OFF_SLEEPERS);
        sleepers.fetch_add(1, Ordering::SeqCst);
        if state.load(Ordering::SeqCst) == seen {
            let ts = futex::Timespec {
                tv_sec: wait.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: wait.subsec_nanos().into(),
            };
            // EAGAIN (the state changed), EINTR and ETIMEDOUT all mean: look again.
            let _ = futex::wait(state, futex::Flags::empty(), seen, Some(&ts));
        }
        sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Fails once this end or the peer aborted.
    fn check_abort(&self, op: &'static str) -> Result<()> {
        if self.abort.is_aborted() || self.word(OFF_ABORTED).load(Ordering::Relaxed) != 0 {
            return Err(aborted(op, self.object()));
        }
        Ok(())
    }

    /// The error for a peer (its pid at `peer_at`) that is gone, or that never recorded itself
    /// within the connect timeout; `None` while it may still act.
    fn judge(&mut self, op: &'static str, peer_at: usize, peer: &'static str) -> Option<Error> {
        let pid = self.word(peer_at).load(Ordering::Relaxed);
        if pid == 0 {
            return (self.since.elapsed() >= self.timeout)
                .then(|| no_peer(op, self.object(), peer, self.timeout));
        }
        let object = self.object();
        match self.peer.watch(pid) {
            Some(p) if !p.alive() => Some(Error::PeerDied {
                op,
                object,
                peer,
                pid,
            }),
            _ => None,
        }
    }

    /// Waits until `ready` returns `Some` (it is given the state just loaded), sleeping on the
    /// futex in between, by the transports' rule ([`await_peer`]): the peer's death is judged
    /// only when nothing is ready, and a dead peer's state gets one more look.
    fn wait_for<T>(
        &mut self,
        op: &'static str,
        peer_at: usize,
        peer: &'static str,
        mut ready: impl FnMut(&Self, u32) -> Option<T>,
    ) -> Result<T> {
        let this = std::cell::RefCell::new(self);
        await_peer(
            |wait| {
                let me = this.borrow();
                let seen = me.word(OFF_STATE).load(Ordering::Acquire);
                if let Some(got) = ready(&me, seen) {
                    return Ok(Some(got));
                }
                if let Some(wait) = wait {
                    me.sleep(seen, wait);
                }
                Ok(None)
            },
            || this.borrow().check_abort(op),
            || this.borrow_mut().judge(op, peer_at, peer),
        )
    }

    /// Publishes `value` in `state` and wakes the other side if it sleeps.
    fn publish(&self, value: u32) {
        let state = self.word(OFF_STATE);
        state.store(value, Ordering::SeqCst);
        if self.word(OFF_SLEEPERS).load(Ordering::SeqCst) != 0 {
            let _ = futex::wake(state, futex::Flags::empty(), u32::MAX);
        }
    }

    /// Puts one message in the slot; for the end marker, returns the count of ends taken as it
    /// was before this one was published.
    fn put(&mut self, msg: &[u8], tag: u32) -> Result<u32> {
        self.abort.check("send", || self.object())?;
        // EMPTY -> WRITING claims the slot (acquire: the receiver's reads of the last message
        // happened before its EMPTY store).
        self.wait_for("send", OFF_RECEIVER, "receiver", |me, seen| {
            (seen == EMPTY
                && me
                    .word(OFF_STATE)
                    .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok())
            .then_some(())
        })?;
        // `msg.len() <= capacity` (`Sender::send` checks it against `max_message`), so the range
        // lies inside the mapping (checked in `end`).
        // SAFETY: in bounds (above), and the mapping is writable and accessed only atomically
        // by this process; a hostile peer writing meanwhile only garbles the message.
        unsafe { crate::shared::copy_in(msg, self.payload.as_ptr()) };
        self.set_field_u64(OFF_LEN, msg.len() as u64);
        self.word(OFF_TAG).store(tag, Ordering::Relaxed);
        // Read while the slot is ours: the receiver only counts an end it took from FULL.
        let taken = self.word(OFF_ENDS_TAKEN).load(Ordering::Acquire);
        self.publish(FULL);
        Ok(taken)
    }
}

impl super::SendImpl for Slot {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.put(msg, TAG_DATA).map(drop)
    }

    /// Puts the end marker in the slot, then waits until the receiver took it (it counts the
    /// ends it takes), so that `Ok` means every message was received; an error if the receiver
    /// dies first, or none came within the connect timeout.
    fn close(&mut self) -> Result<()> {
        let before = self.put(&[], TAG_END)?;
        self.since = Instant::now();
        self.wait_for("close", OFF_RECEIVER, "receiver", |me, _| {
            (me.word(OFF_ENDS_TAKEN).load(Ordering::Acquire) != before).then_some(())
        })
    }

    fn max_message(&self) -> usize {
        self.capacity
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    fn object(&self) -> Object {
        Slot::object(self)
    }
}

impl super::RecvImpl for Slot {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>> {
        self.abort.check("recv", || self.object())?;
        // Acquire on FULL: the sender's writes of the message came before its release of FULL.
        self.wait_for("recv", OFF_SENDER, "sender", |_, seen| {
            (seen == FULL).then_some(())
        })?;
        let len = self.field_u64(OFF_LEN);
        let tag = self.word(OFF_TAG).load(Ordering::Relaxed);
        if len > self.capacity as u64 || tag > TAG_END || (tag == TAG_END && len != 0) {
            return Err(Error::corrupt(
                "recv",
                self.object(),
                format!(
                    "message of {len} bytes with tag {tag} in a slot of {}",
                    self.capacity
                ),
            ));
        }
        let len = len as usize;
        buf.clear();
        buf.resize(len, 0);
        // SAFETY: `len <= capacity` (checked just now), so the source range lies inside the
        // mapping, which this process accesses only atomically.
        unsafe { crate::shared::copy_out(self.payload.as_ptr(), buf) };
        if tag == TAG_END {
            // Release: the sender that waits for this count sees the slot given back after it.
            self.word(OFF_ENDS_TAKEN).fetch_add(1, Ordering::Release);
        }
        self.publish(EMPTY);
        Ok((tag == TAG_DATA).then_some(len))
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}
