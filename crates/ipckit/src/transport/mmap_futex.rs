//! `mmap+futex`: one message slot in a shared file mapping, handed back and forth through a
//! futex word in the same mapping — what `sysv-shm+sem` does, with a user-space fast path: a
//! side only enters the kernel to sleep when the slot is not ready, and to wake the other side
//! only when that side announced it sleeps.
//!
//! ```text
//! offset 0  magic "IPKM" | version 1 | capacity: u64 | len: u64 | tag: u32 (0 data, 1 end)
//!        28 sender pid: u32 | receiver pid: u32 | aborted: u32
//!        40 state: u32 (the futex: 0 EMPTY, 1 WRITING, 2 FULL) | sleepers: u32
//! offset 64 the message (capacity bytes)
//! ```
//! A sender claims the slot (`EMPTY → WRITING`, compare-and-swap, so several senders never write
//! it at once), writes, and publishes `FULL` with a release store; the receiver reads after an
//! acquire load of `FULL` and gives the slot back with `EMPTY`. Sleeping uses the Dekker pattern:
//! a waiter increments `sleepers` and re-checks `state` before `FUTEX_WAIT` (which itself returns
//! at once if `state` changed), a publisher stores `state` and then reads `sleepers`, both
//! sequentially consistent, so either the waiter sees the new state or the publisher sees the
//! sleeper and calls `FUTEX_WAKE`. The futex is shared (not `FUTEX_PRIVATE_FLAG`): the kernel
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
use std::time::Duration;

use rustix::thread::futex;

use super::{aborted, as_named, process_alive, AbortHandle, End, HostImpl, Options, Rendezvous};
use super::{FileGuard, Role, TransportKind, SLICE};
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
const EMPTY: u32 = 0;
const WRITING: u32 = 1;
const FULL: u32 = 2;
const TAG_DATA: u32 = 0;
const TAG_END: u32 = 1;

struct Host {
    role: Role,
    map: Mmap,
    guard: FileGuard,
}

fn object(path: &Path) -> Object {
    Object::Path(path.to_path_buf())
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
    Ok(Box::new(Host { role, map, guard }))
}

impl HostImpl for Host {
    fn rendezvous(&self) -> String {
        self.guard.0.display().to_string()
    }

    fn establish(self: Box<Self>, _timeout: Option<Duration>) -> Result<End> {
        let Host { role, map, guard } = *self;
        let path = guard.0.clone();
        Slot::end(role, map, &path, Some(guard))
    }
}

pub(super) fn connect(role: Role, rendezvous: &str, _options: &Options) -> Result<End> {
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
    Slot::end(role, map, &path, None)
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
}

// SAFETY: the raw pointer points into `map`, which is Send and lives as long as the Slot; the
// Slot is used by one thread at a time (`&mut self` for every transfer).
unsafe impl Send for Slot {}

impl Slot {
    fn end(role: Role, map: Mmap, path: &Path, guard: Option<FileGuard>) -> Result<End> {
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
        debug_assert!(offset % 4 == 0 && offset + 4 <= HEADER);
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

    /// Sleeps while `state == seen`, announcing itself in `sleepers`; wakes at the latest after
    /// 100 ms to check for an abort or a dead peer (the pid at `peer_at`).
    fn sleep(&self, op: &'static str, seen: u32, peer_at: usize, peer: &'static str) -> Result<()> {
        let state = self.word(OFF_STATE);
        let sleepers = self.word(OFF_SLEEPERS);
        sleepers.fetch_add(1, Ordering::SeqCst);
        if state.load(Ordering::SeqCst) == seen {
            let ts = futex::Timespec {
                tv_sec: 0,
                tv_nsec: SLICE.as_nanos() as _,
            };
            // EAGAIN (the state changed), EINTR and ETIMEDOUT all mean: look again.
            let _ = futex::wait(state, futex::Flags::empty(), seen, Some(&ts));
        }
        sleepers.fetch_sub(1, Ordering::SeqCst);
        if self.abort.is_aborted() || self.word(OFF_ABORTED).load(Ordering::Relaxed) != 0 {
            return Err(aborted(op, self.object()));
        }
        let pid = self.word(peer_at).load(Ordering::Relaxed);
        if pid != 0 && pid != std::process::id() && !process_alive(pid) {
            return Err(Error::PeerDied {
                op,
                object: self.object(),
                peer,
                pid,
            });
        }
        Ok(())
    }

    /// Publishes `value` in `state` and wakes the other side if it sleeps.
    fn publish(&self, value: u32) {
        let state = self.word(OFF_STATE);
        state.store(value, Ordering::SeqCst);
        if self.word(OFF_SLEEPERS).load(Ordering::SeqCst) != 0 {
            let _ = futex::wake(state, futex::Flags::empty(), u32::MAX);
        }
    }

    fn put(&mut self, msg: &[u8], tag: u32) -> Result<()> {
        self.abort.check("send", || self.object())?;
        let state = self.word(OFF_STATE);
        loop {
            match state.compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(seen) => self.sleep("send", seen, OFF_RECEIVER, "receiver")?,
            }
        }
        // `msg.len() <= capacity` (`Sender::send` checks it against `max_message`), so the range
        // lies inside the mapping (checked in `end`).
        // SAFETY: in bounds (above), and the mapping is writable and accessed only atomically
        // by this process; a hostile peer writing meanwhile only garbles the message.
        unsafe { crate::shared::copy_in(msg, self.payload.as_ptr()) };
        self.set_field_u64(OFF_LEN, msg.len() as u64);
        self.word(OFF_TAG).store(tag, Ordering::Relaxed);
        self.publish(FULL);
        Ok(())
    }
}

impl super::SendImpl for Slot {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.put(msg, TAG_DATA)
    }

    fn close(&mut self) -> Result<()> {
        self.put(&[], TAG_END)
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
        let state = self.word(OFF_STATE);
        loop {
            let seen = state.load(Ordering::Acquire);
            if seen == FULL {
                break;
            }
            self.sleep("recv", seen, OFF_SENDER, "sender")?;
        }
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
        self.publish(EMPTY);
        Ok((tag == TAG_DATA).then_some(len))
    }

    fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}
