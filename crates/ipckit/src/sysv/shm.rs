//! System V shared memory: a block of memory that the kernel keeps under a key, which unrelated
//! processes attach into their address spaces to read and write the same bytes.
//!
//! The classic trap is `shmat` in a loop without `shmdt`: every call maps the segment again at a new
//! address until the process runs out of mappings. Here an attachment is an RAII value
//! ([`Attachment`], [`ReadOnlyAttachment`]) that detaches when dropped, so that leak cannot be
//! written; segments themselves outlive their creator unless removed ([`Segment::remove`], or
//! [`OwnedSegment`], which removes on drop).
//!
//! # References
//! [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html),
//! [shmop(2)](https://man7.org/linux/man-pages/man2/shmop.2.html) (`shmat`, `shmdt`),
//! [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html),
//! [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)

use std::fmt;
use std::mem::{self, MaybeUninit};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::SystemTime;

use bytemuck::{AnyBitPattern, Pod};

use crate::error::{Error, Object, Result};
use crate::key::Key;
use crate::mode::check_mode;
use crate::shared::{self, SharedSlice};
use crate::sysv::{check_rc, get_option_setters, time_from_raw, GetOptions, Perm};

/// `SHM_DEST` in [`Perm::mode`]: the segment is marked for removal and is destroyed when the last
/// attachment is detached.
pub const SHM_DEST: u32 = 0o1000;

/// `SHM_LOCKED` in [`Perm::mode`]: the segment is locked in memory (`SHM_LOCK`) and not swapped.
pub const SHM_LOCKED: u32 = 0o2000;

/// The smallest segment, in bytes (the kernel's `SHMMIN`, fixed at 1 on Linux; `ipcs -l` shows
/// it as "min seg size").
pub const SHMMIN: usize = 1;

/// A System V shared-memory segment, by id.
///
/// A plain handle: copying or dropping it does nothing to the segment, which belongs to the kernel
/// and lives until it is removed ([`Segment::remove`]) and detached by everyone. Use
/// [`Segment::into_owned`] to remove it when a handle is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    id: i32,
}

/// Options to create or open a segment (`shmget` flags), like `std::fs::OpenOptions`.
///
/// Defaults: size 0, mode [`DEFAULT_MODE`](crate::DEFAULT_MODE) (0600), neither create nor
/// exclusive, so `Segment::options().open(key)` opens an existing segment.
///
/// ```no_run
/// use ipckit::{sysv::shm::Segment, Key};
/// let seg = Segment::options().size(4096).mode(0o640).create(true).open(Key::PRIVATE)?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ShmOptions {
    size: usize,
    get: GetOptions,
}

impl ShmOptions {
    /// The default options (see the [type documentation](ShmOptions)).
    pub fn new() -> ShmOptions {
        ShmOptions::default()
    }

    /// The size in bytes of a segment this call creates (at least 1). When an existing segment is
    /// opened, the kernel refuses it (`EINVAL`) if it is smaller than this.
    pub fn size(&mut self, size: usize) -> &mut Self {
        self.size = size;
        self
    }

    get_option_setters! {
        /// The permission bits (at most 0o777) of a segment this call creates. With `create(true)`
        /// the kernel also checks them against an existing segment's permissions.
        mode;
        /// `IPC_CREAT`: create the segment if no segment has the key.
        create;
        /// `IPC_CREAT | IPC_EXCL`: create the segment, failing with `AlreadyExists` if the key is
        /// taken. Implies `create(true)`.
        exclusive;
    }

    /// `shmget(key, size, flags)` — creates or opens the segment with these options.
    ///
    /// [`Key::PRIVATE`] always creates a new segment, so it needs `create(true)`. Creating needs a
    /// size of at least one byte. The mode must fit in 0o777. These are checked before any system
    /// call; errors name the key.
    pub fn open(&self, key: Key) -> Result<Segment> {
        const OP: &str = "shmget";
        let object = Object::ShmKey(key);
        let flags = self.get.flags(OP, &object, key, "segment")?;
        if self.get.creating() && self.size == 0 {
            return Err(Error::invalid(
                OP,
                object,
                "a segment to create needs a size of at least 1 byte",
            ));
        }
        if self.size > isize::MAX as usize {
            return Err(Error::TooLarge {
                op: OP,
                object,
                what: "segment",
                len: self.size,
                limit: isize::MAX as usize,
                limit_name: "the largest slice",
            });
        }
        // SAFETY: shmget takes only integers and touches no memory of ours.
        let id = unsafe { libc::shmget(key.value(), self.size, flags) };
        let id = check_rc(OP, object, id)?;
        Ok(Segment { id })
    }
}

impl Segment {
    /// `shmget(key, size, IPC_CREAT | 0600)` — creates a segment of `size` bytes under `key`, or
    /// opens the existing one (which must be at least `size` bytes).
    pub fn create(key: Key, size: usize) -> Result<Segment> {
        Segment::options().size(size).create(true).open(key)
    }

    /// `shmget(key, size, IPC_CREAT | IPC_EXCL | 0600)` — creates a new segment of `size` bytes;
    /// fails with `AlreadyExists` if `key` is taken.
    pub fn create_exclusive(key: Key, size: usize) -> Result<Segment> {
        Segment::options().size(size).exclusive(true).open(key)
    }

    /// `shmget(key, 0, 0)` — opens the existing segment under `key`; `NotFound` if there is none.
    pub fn open(key: Key) -> Result<Segment> {
        Segment::options().open(key)
    }

    /// The segment with this id (as another process or `ipcs` reports it). No system call is made;
    /// a wrong id shows up as an error of the first operation.
    pub const fn from_id(id: i32) -> Segment {
        Segment { id }
    }

    /// Options for creating or opening a segment: size, mode, create, exclusive.
    pub fn options() -> ShmOptions {
        ShmOptions::new()
    }

    /// The segment's id (`shmid`).
    pub const fn id(&self) -> i32 {
        self.id
    }

    fn object(&self) -> Object {
        Object::ShmId(self.id)
    }

    /// `shmat(shmid, NULL, 0)` — attaches the segment for reading and writing; the returned
    /// [`Attachment`] detaches (`shmdt`) when dropped.
    pub fn attach(&self) -> Result<Attachment> {
        Mapping::attach(*self, 0).map(|map| Attachment { map })
    }

    /// `shmat(shmid, NULL, SHM_RDONLY)` — attaches the segment read-only; the returned
    /// [`ReadOnlyAttachment`] detaches (`shmdt`) when dropped. Needs only read permission.
    pub fn attach_read_only(&self) -> Result<ReadOnlyAttachment> {
        Mapping::attach(*self, libc::SHM_RDONLY).map(|map| ReadOnlyAttachment { map })
    }

    fn raw_stat(&self) -> Result<libc::shmid_ds> {
        let mut ds = MaybeUninit::<libc::shmid_ds>::zeroed();
        // SAFETY: `ds` is a writable shmid_ds, the buffer IPC_STAT fills in.
        let rc = unsafe { libc::shmctl(self.id, libc::IPC_STAT, ds.as_mut_ptr()) };
        check_rc("shmctl(IPC_STAT)", self.object(), rc)?;
        // SAFETY: shmid_ds holds only integers, so the zeroed value is valid, and the kernel
        // filled it in.
        Ok(unsafe { ds.assume_init() })
    }

    /// `shmctl(shmid, IPC_STAT, &buf)` — the segment's ownership, permissions, size, attachment
    /// count, creator and last user, and times.
    pub fn stat(&self) -> Result<ShmStat> {
        let ds = self.raw_stat()?;
        Ok(ShmStat {
            perm: Perm::from_raw(&ds.shm_perm),
            size: ds.shm_segsz,
            nattch: ds.shm_nattch,
            cpid: ds.shm_cpid as u32,
            lpid: ds.shm_lpid as u32,
            atime: time_from_raw(ds.shm_atime),
            dtime: time_from_raw(ds.shm_dtime),
            ctime: time_from_raw(ds.shm_ctime),
        })
    }

    fn set(&self, change: impl FnOnce(&mut libc::ipc_perm)) -> Result<()> {
        let mut ds = self.raw_stat()?;
        change(&mut ds.shm_perm);
        // SAFETY: `ds` is a valid shmid_ds (read by IPC_STAT just now); IPC_SET only reads it.
        let rc = unsafe { libc::shmctl(self.id, libc::IPC_SET, &mut ds) };
        check_rc("shmctl(IPC_SET)", self.object(), rc).map(drop)
    }

    /// `shmctl(shmid, IPC_SET, &buf)` with a new owner — reads the current settings (`IPC_STAT`),
    /// changes `uid` and `gid`, and writes them back. The creator can still remove the segment.
    pub fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        self.set(|p| {
            p.uid = uid;
            p.gid = gid;
        })
    }

    /// `shmctl(shmid, IPC_SET, &buf)` with new permission bits — reads the current settings
    /// (`IPC_STAT`), replaces the low 9 bits of the mode, and writes them back. `mode` must fit in
    /// 0o777.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        let mode = check_mode("shmctl(IPC_SET)", &self.object(), mode)?;
        self.set(|p| p.mode = (p.mode & !0o777) | mode as libc::c_ushort)
    }

    /// `shmctl(shmid, IPC_RMID, NULL)` — marks the segment for removal.
    ///
    /// The kernel destroys the segment only when its last attachment, in any process, is detached;
    /// until then attached memory stays valid and readable, [`ShmStat::is_marked_for_removal`] is
    /// true and `nattch` keeps counting. Its key becomes [`Key::PRIVATE`] (0) at once, so opening
    /// by key no longer finds it and a new segment may take the key. Attaching it again by id stays
    /// possible on Linux until it is destroyed (other systems refuse that).
    pub fn remove(&self) -> Result<()> {
        // SAFETY: IPC_RMID does not use the buffer; NULL is allowed.
        let rc = unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
        check_rc("shmctl(IPC_RMID)", self.object(), rc).map(drop)
    }

    /// A handle that removes the segment when dropped, for the process that owns it.
    pub fn into_owned(self) -> OwnedSegment {
        OwnedSegment { segment: self }
    }
}

/// A [`Segment`] that is removed (`IPC_RMID`) when this handle is dropped, errors ignored.
///
/// Dereferences to [`Segment`]. Removal is deferred by the kernel until every attachment is
/// detached (see [`Segment::remove`]), so dropping this while attachments live is safe.
#[derive(Debug)]
pub struct OwnedSegment {
    segment: Segment,
}

impl OwnedSegment {
    /// Gives up ownership: the segment is no longer removed on drop.
    pub fn into_inner(self) -> Segment {
        let segment = self.segment;
        mem::forget(self);
        segment
    }

    /// `shmctl(shmid, IPC_RMID, NULL)` now, reporting the error that drop would ignore.
    pub fn remove(self) -> Result<()> {
        self.into_inner().remove()
    }
}

impl Deref for OwnedSegment {
    type Target = Segment;

    fn deref(&self) -> &Segment {
        &self.segment
    }
}

impl Drop for OwnedSegment {
    fn drop(&mut self) {
        let _ = self.segment.remove();
    }
}

/// What `shmctl(IPC_STAT)` reports about a segment (`struct shmid_ds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmStat {
    /// Key, owner, creator and mode. The mode includes [`SHM_DEST`] and [`SHM_LOCKED`].
    pub perm: Perm,
    /// Size in bytes, as requested at creation (`shm_segsz`; mappings are whole pages).
    pub size: usize,
    /// Number of current attachments, in all processes (`shm_nattch`).
    pub nattch: u64,
    /// Process id of the creator (`shm_cpid`).
    pub cpid: u32,
    /// Process id of the last `shmat` or `shmdt` (`shm_lpid`); 0 if none yet.
    pub lpid: u32,
    /// Time of the last `shmat` (`shm_atime`); `None` if never attached.
    pub atime: Option<SystemTime>,
    /// Time of the last `shmdt` (`shm_dtime`); `None` if never detached.
    pub dtime: Option<SystemTime>,
    /// Time of creation or of the last `IPC_SET` (`shm_ctime`).
    pub ctime: Option<SystemTime>,
}

impl ShmStat {
    /// Whether the segment was removed and waits for its last detach (`SHM_DEST`).
    pub fn is_marked_for_removal(&self) -> bool {
        self.perm.mode & SHM_DEST != 0
    }

    /// Whether the segment is locked in memory (`SHM_LOCKED`).
    pub fn is_locked(&self) -> bool {
        self.perm.mode & SHM_LOCKED != 0
    }
}

/// One live `shmat` mapping: detached on drop. Shared by both attachment kinds.
struct Mapping {
    /// The address `shmat` returned; page-aligned.
    ptr: NonNull<u8>,
    /// The segment's size from `IPC_STAT` (at most `isize::MAX`, at least 1 once attached).
    len: usize,
    segment: Segment,
    /// `segment.object()`, kept for the views' errors.
    object: Object,
    /// Whether it was attached for writing (no `SHM_RDONLY`).
    writable: bool,
}

// SAFETY: a mapping belongs to the process, not to a thread: any thread may use the memory and
// `shmdt` it.
unsafe impl Send for Mapping {}
// SAFETY: through `&Mapping` (and so through `&Attachment` / `&ReadOnlyAttachment`) safe code
// reaches the bytes only through `SharedSlice`, whose every access is atomic, and raw pointers;
// plain references exist only behind `unsafe fn`s whose callers promise that nobody else writes.
// Other threads and other processes are therefore just more atomic accessors.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn attach(segment: Segment, flags: libc::c_int) -> Result<Mapping> {
        // SAFETY: with a NULL address the kernel chooses a free place for the mapping, so no
        // memory of this process is replaced.
        let addr = unsafe { libc::shmat(segment.id, std::ptr::null(), flags) };
        if addr as isize == -1 {
            return Err(Error::last_os("shmat", segment.object()));
        }
        let ptr = NonNull::new(addr.cast::<u8>()).ok_or_else(|| {
            Error::os(
                "shmat",
                segment.object(),
                std::io::Error::other("kernel returned a null address"),
            )
        })?;
        // From here on, dropping `map` detaches, also when IPC_STAT fails.
        let mut map = Mapping {
            ptr,
            len: 0,
            segment,
            object: segment.object(),
            writable: flags & libc::SHM_RDONLY == 0,
        };
        let size = segment.raw_stat()?.shm_segsz;
        if size > isize::MAX as usize {
            return Err(Error::TooLarge {
                op: "shmat",
                object: segment.object(),
                what: "segment",
                len: size,
                limit: isize::MAX as usize,
                limit_name: "the largest slice",
            });
        }
        map.len = size;
        Ok(map)
    }

    fn shared(&self) -> SharedSlice<'_> {
        // SAFETY: `ptr..ptr+len` is mapped (writable unless SHM_RDONLY) for as long as `self`
        // lives (shmdt only in drop/detach, which take `self`), len <= isize::MAX, and the
        // attachments lend no plain reference to the bytes except through `unsafe fn`s whose
        // callers promise that nobody else accesses them meanwhile.
        unsafe { SharedSlice::from_raw_parts(self.ptr, self.len, self.writable, &self.object) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr` is the address shmat returned and it has not been detached yet; no
        // reference into the mapping outlives `self`.
        unsafe { libc::shmdt(self.ptr.as_ptr().cast()) };
    }
}

impl Mapping {
    /// Debug output without the contents: segment id, address and length.
    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("segment", &self.segment.id)
            .field("addr", &self.ptr)
            .field("len", &self.len)
            .finish()
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.map.debug("Attachment", f)
    }
}

impl fmt::Debug for ReadOnlyAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.map.debug("ReadOnlyAttachment", f)
    }
}

impl Mapping {
    fn detach(self) -> Result<()> {
        let map = mem::ManuallyDrop::new(self);
        // SAFETY: as in drop; `map` is never used or dropped again.
        let rc = unsafe { libc::shmdt(map.ptr.as_ptr().cast()) };
        if rc < 0 {
            return Err(Error::last_os("shmdt", map.segment.object()));
        }
        Ok(())
    }
}

/// A segment attached for reading and writing; detached (`shmdt`) when dropped.
///
/// Copy values in and out by offset ([`read`](Self::read), [`write`](Self::write),
/// [`read_at`](Self::read_at), [`write_at`](Self::write_at)), share counters and flags through
/// atomics in place ([`atomic_u32`](Self::atomic_u32), [`atomic_u64`](Self::atomic_u64), and
/// [`shared`](Self::shared) for the rest: slices, [`AtomicPod`](crate::shared::AtomicPod) structs).
/// Every offset is checked: a request that does not fit is an invalid-argument error naming the
/// segment, the offset and the size.
///
/// # Other writers
/// Another process, or another attachment of the same segment, may write the bytes at any moment,
/// so an attachment never lends a plain `&[u8]`, `&T` or `&mut T` to them in safe code: such a
/// reference would promise bytes that do not change (or that nobody else sees), which shared
/// memory cannot keep. Copies are made with atomic word accesses, so a concurrent writer gives a
/// torn value, never undefined behaviour; treat what you read as untrusted input and validate the
/// copy. Order accesses with a lock or a semaphore, or with the atomics. When you *know* nobody
/// else writes (a lock held, the peers not started yet), [`view_unchecked`](Self::view_unchecked)
/// and [`view_mut_unchecked`](Self::view_mut_unchecked) lend a reference as an `unsafe` promise.
/// See [`shared`] for the model.
///
/// ```
/// use ipckit::{sysv::shm::Segment, Key};
/// let segment = Segment::create(Key::PRIVATE, 4096)?.into_owned();
/// let memory = segment.attach()?;
/// memory.write(8, &[1u32, 2, 3])?;
/// assert_eq!(memory.read::<[u32; 3]>(8)?, [1, 2, 3]);
/// # Ok::<(), ipckit::Error>(())
/// ```
///
/// The bytes cannot be borrowed as a slice beside an atomic in safe code:
///
/// ```compile_fail,E0308
/// # use ipckit::{sysv::shm::Segment, Key};
/// # use std::sync::atomic::Ordering;
/// # let segment = Segment::create(Key::PRIVATE, 4096)?.into_owned();
/// let memory = segment.attach()?;
/// let bytes: &[u8] = &memory; // no Deref to [u8]
/// memory.atomic_u32(0)?.store(1, Ordering::Relaxed);
/// # Ok::<(), ipckit::Error>(())
/// ```
///
/// nor viewed in place without `unsafe`:
///
/// ```compile_fail,E0133
/// # use ipckit::{sysv::shm::Segment, Key};
/// # let segment = Segment::create(Key::PRIVATE, 4096)?.into_owned();
/// let memory = segment.attach()?;
/// let value: &u32 = memory.view_unchecked(0)?; // an unsafe fn: the caller promises no writer
/// # Ok::<(), ipckit::Error>(())
/// ```
///
/// (With the promise written down, it compiles:)
///
/// ```
/// # use ipckit::{sysv::shm::Segment, Key};
/// # let segment = Segment::create(Key::PRIVATE, 4096)?.into_owned();
/// let memory = segment.attach()?;
/// // SAFETY: nothing else attaches this private segment, and this code writes nothing while
/// // `value` and `bytes` live.
/// let value: &u32 = unsafe { memory.view_unchecked(0)? };
/// let bytes: &[u8] = unsafe { memory.shared().as_bytes_unchecked() };
/// assert_eq!((*value, bytes[0]), (0, 0));
/// # Ok::<(), ipckit::Error>(())
/// ```
///
/// What [`shared`](Self::shared) lends cannot outlive the attachment:
///
/// ```compile_fail,E0597
/// # use ipckit::{sysv::shm::Segment, Key};
/// # let segment = Segment::create(Key::PRIVATE, 4096)?.into_owned();
/// let bytes = {
///     let memory = segment.attach()?;
///     memory.shared() // borrows `memory`, which is detached at the end of the block
/// };
/// bytes.read::<u8>(0)?;
/// # Ok::<(), ipckit::Error>(())
/// ```
///
/// (The same code with the attachment kept alive compiles:)
///
/// ```
/// # use ipckit::{sysv::shm::Segment, Key};
/// # let segment = Segment::create(Key::PRIVATE, 4096)?.into_owned();
/// let memory = segment.attach()?;
/// let bytes = memory.shared();
/// bytes.read::<u8>(0)?;
/// # Ok::<(), ipckit::Error>(())
/// ```
pub struct Attachment {
    map: Mapping,
}

/// A segment attached read-only (`SHM_RDONLY`); detached (`shmdt`) when dropped.
///
/// Copy values out by offset ([`read`](Self::read), [`read_at`](Self::read_at)) and load shared
/// counters atomically ([`load_u32`](Self::load_u32), [`load_u64`](Self::load_u64)). The page
/// protection is read-only: nothing can write through it, and [`shared`](Self::shared) refuses
/// writes and in-place atomics with an error.
///
/// # Other writers
/// Other processes and writable attachments may change the bytes at any moment, so no plain
/// reference to them is lent in safe code: copies (atomic word loads) may be torn by a concurrent
/// writer and are untrusted input to validate. [`view_unchecked`](Self::view_unchecked) lends a
/// `&T` when you can promise that nobody writes meanwhile. See [`Attachment`] and
/// [`shared`].
pub struct ReadOnlyAttachment {
    map: Mapping,
}

impl Attachment {
    /// The segment's bytes, to copy in and out by offset and to use atomics in place: see
    /// [`shared`] for why no plain `&[u8]` is handed out.
    pub fn shared(&self) -> SharedSlice<'_> {
        self.map.shared()
    }

    /// The attached segment.
    pub fn segment(&self) -> Segment {
        self.map.segment
    }

    /// The address of the first byte. Raw pointers carry no borrow: using them is the caller's
    /// `unsafe` responsibility.
    pub fn as_ptr(&self) -> *const u8 {
        self.map.ptr.as_ptr()
    }

    /// The address of the first byte, for writing; see [`as_ptr`](Self::as_ptr).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.map.ptr.as_ptr()
    }

    /// The segment's size in bytes.
    pub fn len(&self) -> usize {
        self.map.len
    }

    /// Always false: the kernel has no empty segments.
    pub fn is_empty(&self) -> bool {
        self.map.len == 0
    }

    /// A copy of the `T` at byte `offset` (any alignment). Fails with an invalid-argument error
    /// naming the offset and the segment size if it does not fit. Another process writing
    /// meanwhile can tear the value: validate it.
    pub fn read<T: Pod>(&self, offset: usize) -> Result<T> {
        self.shared().read(offset)
    }

    /// Writes `value` at byte `offset` (any alignment); checked like [`read`](Self::read).
    pub fn write<T: Pod>(&self, offset: usize, value: &T) -> Result<()> {
        self.shared().write(offset, value)
    }

    /// Copies `buf.len()` bytes starting at byte `offset` into `buf`; checked like
    /// [`read`](Self::read).
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.shared().read_at(offset, buf)
    }

    /// Copies `data` to the bytes starting at `offset`; checked like [`read`](Self::read).
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.shared().write_at(offset, data)
    }

    /// The `AtomicU32` at byte `offset` (4-byte aligned, in bounds), for lock-free sharing with
    /// other threads and processes.
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        self.shared().atomic_u32(offset)
    }

    /// The `AtomicU64` at byte `offset` (8-byte aligned, in bounds), for lock-free sharing with
    /// other threads and processes.
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        self.shared().atomic_u64(offset)
    }

    /// The `T` at byte `offset` as a plain reference (aligned and in bounds, checked).
    ///
    /// # Safety
    /// For as long as the reference lives, nobody writes those `size_of::<T>()` bytes: no other
    /// process, no other attachment, no atomic or [`shared`](Self::shared) write of this process.
    /// Holding a lock that every writer takes is the usual way to know it.
    pub unsafe fn view_unchecked<T: AnyBitPattern>(&self, offset: usize) -> Result<&T> {
        // SAFETY: forwarded to the caller (same contract).
        unsafe { self.shared().view_unchecked(offset) }
    }

    /// The `T` at byte `offset` as a plain mutable reference (aligned and in bounds, checked).
    ///
    /// # Safety
    /// For as long as the reference lives, nothing else reads or writes those `size_of::<T>()`
    /// bytes: no other process, no other attachment, no atomic or copy of this process.
    pub unsafe fn view_mut_unchecked<T: Pod>(&mut self, offset: usize) -> Result<&mut T> {
        // SAFETY: forwarded to the caller (same contract).
        unsafe { self.shared().view_mut_unchecked(offset) }
    }

    /// `shmdt(addr)` — detaches now, reporting the error that drop would ignore.
    pub fn detach(self) -> Result<()> {
        self.map.detach()
    }
}

impl ReadOnlyAttachment {
    /// The segment's bytes, to copy out by offset and to load atomically; writes are refused.
    pub fn shared(&self) -> SharedSlice<'_> {
        self.map.shared()
    }

    /// The attached segment.
    pub fn segment(&self) -> Segment {
        self.map.segment
    }

    /// The address of the first byte. The memory is read-only: writing through it faults.
    pub fn as_ptr(&self) -> *const u8 {
        self.map.ptr.as_ptr()
    }

    /// The segment's size in bytes.
    pub fn len(&self) -> usize {
        self.map.len
    }

    /// Always false: the kernel has no empty segments.
    pub fn is_empty(&self) -> bool {
        self.map.len == 0
    }

    /// A copy of the `T` at byte `offset` (any alignment). Fails with an invalid-argument error
    /// naming the offset and the segment size if it does not fit. Another process writing
    /// meanwhile can tear the value: validate it.
    pub fn read<T: Pod>(&self, offset: usize) -> Result<T> {
        self.shared().read(offset)
    }

    /// Copies `buf.len()` bytes starting at byte `offset` into `buf`; checked like
    /// [`read`](Self::read).
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.shared().read_at(offset, buf)
    }

    /// Loads the `u32` at byte `offset` (4-byte aligned, in bounds) atomically, with acquire
    /// ordering: it pairs with a release store (or stronger) of a writer.
    pub fn load_u32(&self, offset: usize) -> Result<u32> {
        self.shared().load_u32(offset, Ordering::Acquire)
    }

    /// Loads the `u64` at byte `offset` (8-byte aligned, in bounds) atomically, with acquire
    /// ordering; see [`load_u32`](Self::load_u32).
    pub fn load_u64(&self, offset: usize) -> Result<u64> {
        self.shared().load_u64(offset, Ordering::Acquire)
    }

    /// The `T` at byte `offset` as a plain reference (aligned and in bounds, checked).
    ///
    /// # Safety
    /// For as long as the reference lives, nobody writes those `size_of::<T>()` bytes: no other
    /// process and no writable attachment of this one.
    pub unsafe fn view_unchecked<T: AnyBitPattern>(&self, offset: usize) -> Result<&T> {
        // SAFETY: forwarded to the caller (same contract).
        unsafe { self.shared().view_unchecked(offset) }
    }

    /// `shmdt(addr)` — detaches now, reporting the error that drop would ignore.
    pub fn detach(self) -> Result<()> {
        self.map.detach()
    }
}

// SAFETY: the attachment stays mapped at the same address until dropped (`detach` takes it by
// value), and `shared` hands out only a SharedSlice.
unsafe impl shared::Mapping for Attachment {
    fn shared(&self) -> Result<SharedSlice<'_>> {
        Ok(self.map.shared())
    }
}

// SAFETY: as for Attachment; the slice is read-only.
unsafe impl shared::Mapping for ReadOnlyAttachment {
    fn shared(&self) -> Result<SharedSlice<'_>> {
        Ok(self.map.shared())
    }
}
