//! Memory mapping: a file's bytes, or anonymous memory, placed in the address space so that
//! processes mapping the same file (or inheriting the same anonymous mapping) read and write the
//! same pages.
//!
//! The trap of `mmap` is the end of the file: the kernel lets you map more than the file holds, and
//! touching a page wholly past the end raises `SIGBUS`, which kills the process. Here every accessor
//! of an [`Mmap`] is bounded by the part of the mapping that the file backs *now* (re-checked with
//! `fstat` at each call), so reading record 7 of a 5-record file is an [`Error`], never a signal.
//! The checks `mmap` would fail on, or get wrong silently, are made first: a page-aligned offset, a
//! length, and a protection the file's open mode allows.
//!
//! # References
//! [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html),
//! [munmap(2)](https://man7.org/linux/man-pages/man2/munmap.2.html),
//! [msync(2)](https://man7.org/linux/man-pages/man2/msync.2.html)

use std::fmt;
use std::fs::File;
use std::mem;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use bytemuck::{AnyBitPattern, Pod};
use rustix::fs::{FileType, OFlags, SealFlags};
use rustix::mm::{MapFlags, MsyncFlags, ProtFlags};

use crate::error::{Error, Object, Result};
use crate::shared::{Mapping, SharedSlice};
use crate::view::Region;

/// The size of a page, the unit of mappings and of file offsets into them.
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// Options for a mapping (`mmap` arguments), like memmap2's `MmapOptions`.
///
/// Defaults: offset 0, the length of the file from the offset, shared (`MAP_SHARED`), read-only
/// (`PROT_READ`), no populate, no flush on drop.
///
/// ```no_run
/// use ipckit::mmap::MmapOptions;
/// let file = std::fs::OpenOptions::new().read(true).write(true).open("records.bin")?;
/// let map = MmapOptions::new().read_write().len(80).map(&file)?;
/// map.write_at(0, b"hello")?;
/// map.flush()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MmapOptions {
    offset: u64,
    len: Option<usize>,
    shared: bool,
    writable: bool,
    populate: bool,
    flush_on_drop: bool,
}

impl Default for MmapOptions {
    fn default() -> Self {
        MmapOptions::new()
    }
}

impl MmapOptions {
    /// The default options (see the [type documentation](MmapOptions)).
    pub fn new() -> MmapOptions {
        MmapOptions {
            offset: 0,
            len: None,
            shared: true,
            writable: false,
            populate: false,
            flush_on_drop: false,
        }
    }

    /// Where in the file the mapping starts, in bytes; a multiple of [`page_size`].
    pub fn offset(&mut self, offset: u64) -> &mut Self {
        self.offset = offset;
        self
    }

    /// The mapping's length in bytes (at least 1). It may reach past the end of the file: the
    /// accessors then stop at the end of the file. Without it, the mapping covers the file from the
    /// offset to its current end.
    pub fn len(&mut self, len: usize) -> &mut Self {
        self.len = Some(len);
        self
    }

    /// `MAP_SHARED` (the default): writes reach the file and every other mapping of it.
    pub fn shared(&mut self) -> &mut Self {
        self.shared = true;
        self
    }

    /// `MAP_PRIVATE`: writes go to this process's private copy of the page (copy-on-write) and never
    /// reach the file. A private mapping may be writable even when the file was opened read-only.
    pub fn private(&mut self) -> &mut Self {
        self.shared = false;
        self
    }

    /// `PROT_READ` (the default): nothing can write through the mapping.
    pub fn read_only(&mut self) -> &mut Self {
        self.writable = false;
        self
    }

    /// `PROT_READ | PROT_WRITE`. A shared writable mapping needs a file opened for reading and
    /// writing (and not for appending); this is checked before `mmap`.
    pub fn read_write(&mut self) -> &mut Self {
        self.writable = true;
        self
    }

    /// `MAP_POPULATE`: read the file's pages in (or fault anonymous pages) now rather than at first
    /// touch.
    pub fn populate(&mut self) -> &mut Self {
        self.populate = true;
        self
    }

    /// Whether dropping the mapping first writes it back with `msync(MS_SYNC)` (errors ignored;
    /// call [`Mmap::flush`] to see them). Only shared writable file mappings have anything to
    /// write back.
    pub fn flush_on_drop(&mut self, flush: bool) -> &mut Self {
        self.flush_on_drop = flush;
        self
    }

    /// `mmap(NULL, len, prot, flags, fd, offset)` — maps `file` with these options.
    ///
    /// Checked before the call, each failure an invalid-argument error naming the file: the offset
    /// is a multiple of [`page_size`]; the length is at least 1, and without an explicit length
    /// the file has bytes at the offset; offset + length does not overflow; the file is a regular
    /// file opened for reading, and for a shared writable mapping opened for writing without
    /// `O_APPEND` (`fcntl(F_GETFL)`).
    pub fn map(&self, file: &File) -> Result<Mmap> {
        self.map_fd(file)
    }

    /// `mmap(NULL, len, prot, flags, fd, offset)` — maps the file open as `fd`; see
    /// [`map`](Self::map).
    pub fn map_fd<F: AsFd>(&self, fd: F) -> Result<Mmap> {
        let fd = fd.as_fd();
        self.map_object(fd, fd_object(fd))
    }

    /// `mmap(NULL, len, prot, MAP_ANONYMOUS | flags, -1, 0)` — maps `len` bytes of zero-filled
    /// memory that belongs to no file.
    ///
    /// A shared anonymous mapping is inherited by `fork`: parent and child then see each other's
    /// writes. That inheritance is a property of `fork` alone: `exec` replaces the address space,
    /// so a child started with `std::process::Command` (fork then exec) does not have it, and
    /// after a raw `fork` in a multi-threaded program the child may only call async-signal-safe
    /// functions until it execs or exits. To share memory with a spawned program, map a
    /// [`Memfd`](crate::posix::shm::Memfd) or a file instead and hand it the descriptor or path.
    /// The offset option must be 0.
    pub fn map_anonymous(&self, len: usize) -> Result<Mmap> {
        const OP: &str = "mmap";
        let object = Object::Other(format!("anonymous mapping of {len} bytes").into());
        if self.offset != 0 {
            return Err(Error::invalid(
                OP,
                object,
                format!("an anonymous mapping has no offset (got {})", self.offset),
            ));
        }
        check_len(OP, &object, len)?;
        // SAFETY: a NULL address lets the kernel choose a free place, so no memory of this process
        // is replaced; the result is only used after the error check.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(std::ptr::null_mut(), len, self.prot(), self.flags())
        }
        .map_err(|e| Error::os(OP, object.clone(), e))?;
        Ok(Mmap {
            ptr: nonnull(ptr, OP, &object)?,
            len,
            file: None,
            offset: 0,
            stable: Some(len),
            frozen: false,
            object,
            shared: self.shared,
            writable: self.writable,
            flush_on_drop: false,
        })
    }

    fn prot(&self) -> ProtFlags {
        if self.writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        }
    }

    fn flags(&self) -> MapFlags {
        let mut flags = if self.shared {
            MapFlags::SHARED
        } else {
            MapFlags::PRIVATE
        };
        if self.populate {
            flags |= MapFlags::POPULATE;
        }
        flags
    }

    /// Maps `fd`, naming `object` in every error of the mapping (used by `posix::shm` with the
    /// object's name).
    pub(crate) fn map_object(&self, fd: BorrowedFd<'_>, object: Object) -> Result<Mmap> {
        self.map_object_racing(fd, object, || {})
    }

    /// [`map_object`](Self::map_object), running `race` between reading the seals and reading
    /// the size: the moment at which a peer's shrink-then-seal must not leave the mapping with a
    /// stale size (the tests shrink and seal there).
    fn map_object_racing(
        &self,
        fd: BorrowedFd<'_>,
        object: Object,
        race: impl FnOnce(),
    ) -> Result<Mmap> {
        const OP: &str = "mmap";
        let bad = |reason: String| Error::invalid(OP, object.clone(), reason);
        let page = page_size() as u64;
        if !self.offset.is_multiple_of(page) {
            return Err(bad(format!(
                "offset {} is not a multiple of the page size ({page} bytes)",
                self.offset
            )));
        }
        let mode = rustix::fs::fcntl_getfl(fd)
            .map_err(|e| Error::os("fcntl(F_GETFL)", object.clone(), e))?;
        let access = mode & OFlags::RWMODE;
        if access == OFlags::WRONLY {
            return Err(bad(
                "the file was opened write-only; a mapping needs read access".into(),
            ));
        }
        if self.shared && self.writable {
            if access != OFlags::RDWR {
                return Err(bad(
                    "a shared read-write mapping needs the file opened for reading and \
                     writing, and it was opened read-only: open it with write access, or map it \
                     read_only() or private()"
                        .into(),
                ));
            }
            if mode.contains(OFlags::APPEND) {
                return Err(bad(
                    "a shared read-write mapping of a file opened for appending (O_APPEND) is \
                     refused by the kernel"
                        .into(),
                ));
            }
        }
        // Seals first, then the size they freeze: a peer may shrink the file and then seal it, and
        // a size read before the seals would be the stale, larger one (SIGBUS on access). Files
        // that cannot be sealed answer EINVAL: no seals.
        let seals = rustix::fs::fcntl_get_seals(fd).unwrap_or(SealFlags::empty());
        race();
        let stat = rustix::fs::fstat(fd).map_err(|e| Error::os("fstat", object.clone(), e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(bad(
                "not a regular file: only files have an end that accessors can check".into(),
            ));
        }
        let file_len = u64::try_from(stat.st_size).unwrap_or(0);
        let len = match self.len {
            Some(len) => len,
            None if file_len <= self.offset => {
                return Err(bad(format!(
                    "the file has {file_len} bytes, none at offset {}: give a length \
                     (MmapOptions::len) to map past its end, or grow it first",
                    self.offset
                )))
            }
            None => usize::try_from(file_len - self.offset).unwrap_or(usize::MAX),
        };
        check_len(OP, &object, len)?;
        match self.offset.checked_add(len as u64) {
            Some(end) if end <= i64::MAX as u64 => {}
            _ => {
                return Err(bad(format!(
                    "offset {} + length {len} overflows the largest file offset",
                    self.offset
                )))
            }
        }
        // A file sealed against shrinking keeps at least the bytes it had when the seals were
        // read, so the mapping need not ask again.
        let stable = seals
            .contains(SealFlags::SHRINK)
            .then(|| backed(file_len, self.offset, len));
        // Sealed against writing and shrinking, and mapped read-only: nobody can change or remove
        // these bytes (F_SEAL_WRITE fails while a writable shared mapping exists and forbids new
        // ones), so plain references to them are sound.
        let frozen = seals.contains(SealFlags::WRITE | SealFlags::SHRINK) && !self.writable;
        let file = fd
            .try_clone_to_owned()
            .map_err(|e| Error::os("fcntl(F_DUPFD_CLOEXEC)", object.clone(), e))?;
        // SAFETY: a NULL address lets the kernel choose a free place, so no memory of this process
        // is replaced; the result is only used after the error check.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                self.prot(),
                self.flags(),
                fd,
                self.offset,
            )
        }
        .map_err(|e| Error::os(OP, object.clone(), e))?;
        Ok(Mmap {
            ptr: nonnull(ptr, OP, &object)?,
            len,
            file: Some(file),
            offset: self.offset,
            stable,
            frozen,
            object,
            shared: self.shared,
            writable: self.writable,
            flush_on_drop: self.flush_on_drop && self.shared && self.writable,
        })
    }
}

fn check_len(op: &'static str, object: &Object, len: usize) -> Result<()> {
    if len == 0 {
        return Err(Error::invalid(
            op,
            object.clone(),
            "a mapping needs a length of at least 1 byte",
        ));
    }
    if len > isize::MAX as usize {
        return Err(Error::TooLarge {
            op,
            object: object.clone(),
            what: "mapping",
            len,
            limit: isize::MAX as usize,
            limit_name: "the largest slice",
        });
    }
    Ok(())
}

fn nonnull(ptr: *mut std::ffi::c_void, op: &'static str, object: &Object) -> Result<NonNull<u8>> {
    NonNull::new(ptr.cast::<u8>()).ok_or_else(|| {
        Error::os(
            op,
            object.clone(),
            std::io::Error::other("kernel returned a null address"),
        )
    })
}

/// A file descriptor named by its path (`/proc/self/fd/N`), or by its number when that fails.
fn fd_object(fd: BorrowedFd<'_>) -> Object {
    let n = fd.as_raw_fd();
    std::fs::read_link(format!("/proc/self/fd/{n}"))
        .map(|p| Object::Path(p.into()))
        .unwrap_or_else(|_| Object::Other(format!("file descriptor {n}").into()))
}

/// How many bytes from the start of a mapping of `len` bytes at `offset` a file of `file_len` bytes
/// backs.
fn backed(file_len: u64, offset: u64, len: usize) -> usize {
    // The min is at most `len`, so it fits in usize.
    file_len.saturating_sub(offset).min(len as u64) as usize
}

/// A live memory mapping of a file or of anonymous memory; unmapped (`munmap`) when dropped.
///
/// Made by [`MmapOptions`] (or [`Mmap::anonymous`]). Copy values in and out by offset
/// ([`read`](Self::read), [`write`](Self::write), [`read_at`](Self::read_at),
/// [`write_at`](Self::write_at)) or by record index ([`read_record`](Self::read_record),
/// [`write_record`](Self::write_record), [`record_count`](Self::record_count)); share counters and
/// flags through atomics in place ([`atomic_u32`](Self::atomic_u32),
/// [`atomic_u64`](Self::atomic_u64), and [`shared`](Self::shared) for the rest). Every accessor
/// covers only the bytes that the file backs at the time of the call: the mapping remembers the
/// file and asks `fstat` for its size each time (one cheap system call), so a request past the end
/// of the file is an invalid-argument error instead of a `SIGBUS`. Anonymous mappings, and files
/// sealed against shrinking ([`Seals::SHRINK`](crate::posix::shm::Seals::SHRINK)), cannot lose
/// bytes and skip that call. Writing needs a mapping made [`read_write`](MmapOptions::read_write).
///
/// # Other processes, and why the constructors are safe
/// memmap2 makes its constructors `unsafe` because another process may write or truncate the file
/// while a `&[u8]` of it is alive. An `Mmap` lends no plain reference to bytes that anyone can
/// change, so the first reason does not apply: copies and in-place atomics are atomic accesses
/// (see [`shared`](crate::shared)), and bytes another process writes meanwhile are torn values to
/// validate, never undefined behaviour. Plain references exist only behind `unsafe fn`s
/// ([`view_unchecked`](Self::view_unchecked), [`view_mut_unchecked`](Self::view_mut_unchecked))
/// whose callers promise that nobody else writes, and from [`sealed_bytes`](Self::sealed_bytes)
/// over a sealed memfd that nobody can write.
///
/// Truncation remains a hazard: the size check runs before each access, and a process that
/// truncates the file between the check and the access (or while you keep a
/// [`SharedSlice`] or an atomic from this mapping) makes the access raise `SIGBUS`, which ends the
/// process. That is the kernel's behaviour and no check made before the access can rule it out; it
/// is a crash, never a read of memory the process does not own. A file that cannot shrink removes
/// the hazard: share a [`Memfd`](crate::posix::shm::Memfd) sealed with
/// [`Seals::SHRINK`](crate::posix::shm::Seals::SHRINK) before it is mapped, and have the receiver
/// require that seal ([`Memfd::from_fd`](crate::posix::shm::Memfd::from_fd)).
///
/// The bytes cannot be borrowed as a plain slice (there is no `bytes()`):
///
/// ```compile_fail,E0599
/// let map = ipckit::mmap::Mmap::anonymous(4096)?;
/// let bytes: &[u8] = map.bytes()?;
/// # Ok::<(), ipckit::Error>(())
/// ```
///
/// while copying out compiles:
///
/// ```
/// let map = ipckit::mmap::Mmap::anonymous(4096)?;
/// let mut bytes = [0; 16];
/// map.read_at(0, &mut bytes)?;
/// # Ok::<(), ipckit::Error>(())
/// ```
pub struct Mmap {
    /// The address `mmap` returned; page-aligned.
    ptr: NonNull<u8>,
    /// The mapping's length as requested (at least 1, at most `isize::MAX`); the kernel maps whole
    /// pages.
    len: usize,
    /// A duplicate of the mapped file's descriptor, for `fstat`; `None` for anonymous memory.
    file: Option<OwnedFd>,
    /// The file offset of the first byte.
    offset: u64,
    /// The number of bytes from the start that stay backed whatever other processes do: all of them
    /// for anonymous memory, the bytes present at mapping time for files sealed against shrinking;
    /// `None` when the file must be asked.
    stable: Option<usize>,
    /// Whether nobody can write or shrink the bytes: a read-only mapping of a file sealed with
    /// `F_SEAL_WRITE | F_SEAL_SHRINK` (read before its size).
    frozen: bool,
    /// What the mapping maps, for errors.
    object: Object,
    shared: bool,
    writable: bool,
    /// Only ever true for shared writable file mappings.
    flush_on_drop: bool,
}

// SAFETY: a mapping belongs to the process, not to a thread: any thread may use the memory and
// unmap it, and the duplicated descriptor is an ordinary OwnedFd.
unsafe impl Send for Mmap {}
// SAFETY: through `&Mmap` safe code reaches the bytes only through `SharedSlice` (atomic accesses),
// atomics and raw pointers, or as a plain slice when nobody can write them (`sealed_bytes`); other
// plain references exist only behind `unsafe fn`s whose callers promise that nobody else writes.
// Other threads are therefore just more atomic accessors.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Options for a mapping: offset, length, shared or private, protection, populate, flush on
    /// drop.
    pub fn options() -> MmapOptions {
        MmapOptions::new()
    }

    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)` — zero-filled
    /// shared memory, the place for process-shared objects (locks, semaphores, atomics) that a
    /// `fork`ed child inherits; see [`MmapOptions::map_anonymous`] for what inheritance needs.
    pub fn anonymous(len: usize) -> Result<Mmap> {
        MmapOptions::new().read_write().map_anonymous(len)
    }

    /// The mapping's length in bytes, as requested (the kernel maps whole pages). Accessors may
    /// see fewer: see [`backed_len`](Self::backed_len).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file offset of the first byte (0 for anonymous memory).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether writes are shared (`MAP_SHARED`) rather than private.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Whether the mapping is writable (`PROT_WRITE`).
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Whether the mapping belongs to no file.
    pub fn is_anonymous(&self) -> bool {
        self.file.is_none()
    }

    /// What is mapped: the file's path, a POSIX shared memory name, or a description.
    pub fn object(&self) -> &Object {
        &self.object
    }

    /// The address of the first byte. Reading through it past [`backed_len`](Self::backed_len)
    /// raises `SIGBUS` once a whole page lies past the end of the file.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The address of the first byte, for placing process-shared objects or writing through raw
    /// pointers (a read-only mapping faults on writes). Raw pointers carry no borrow: using them
    /// is the caller's `unsafe` responsibility.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// `fstat(fd)` — how many bytes from the start of the mapping the file backs now: the
    /// mapping's length, or less when the file ends inside it. Anonymous mappings answer their
    /// length, and files sealed against shrinking the bytes they backed when mapped (growth since
    /// is not seen: map again), both without a system call.
    pub fn backed_len(&self) -> Result<usize> {
        if let Some(stable) = self.stable {
            return Ok(stable);
        }
        let Some(file) = &self.file else {
            return Ok(self.len);
        };
        let stat =
            rustix::fs::fstat(file).map_err(|e| Error::os("fstat", self.object.clone(), e))?;
        let file_len = u64::try_from(stat.st_size).unwrap_or(0);
        Ok(backed(file_len, self.offset, self.len))
    }

    fn check_writable(&self, op: &'static str) -> Result<()> {
        if self.writable {
            return Ok(());
        }
        Err(Error::invalid(
            op,
            self.object.clone(),
            "the mapping is read-only: map it with MmapOptions::read_write to write",
        ))
    }

    /// The mapping as a [`Region`] of its full length, for the overflow, bounds and alignment
    /// checks.
    fn region(&self) -> Region<'_> {
        Region {
            object: &self.object,
            noun: "mapping",
            addr: self.ptr.as_ptr() as usize,
            len: self.len,
        }
    }

    /// The checked byte range of `count` (or one) `T` at `offset`, within the mapping and within
    /// the `backed` bytes the file backs; aligned for `T` if `aligned` (in-place access), not for
    /// copies. `index` names the record in the error past the end of the file.
    fn range_of<T>(
        &self,
        op: &'static str,
        offset: usize,
        count: Option<usize>,
        index: Option<usize>,
        backed: usize,
        aligned: bool,
    ) -> Result<Range<usize>> {
        let r = if aligned {
            self.region().range::<T>(op, offset, count)?
        } else {
            self.region().span::<T>(op, offset, count)?
        };
        if r.end > backed {
            let ty = std::any::type_name::<T>();
            let what = match (count, index) {
                (Some(n), _) => format!("{n} × {ty}"),
                (None, Some(i)) => format!("record {i} ({ty})"),
                (None, None) => ty.to_string(),
            };
            return Err(Error::invalid(
                op,
                self.object.clone(),
                format!(
                    "{what} at bytes {}..{} of the mapping lies past the end of the file, which \
                     backs only its first {backed} of {} bytes (file offset {}): touching it \
                     could raise SIGBUS",
                    r.start, r.end, self.len, self.offset
                ),
            ));
        }
        Ok(r)
    }

    /// The first `backed` bytes.
    fn backed_shared(&self, backed: usize) -> SharedSlice<'_> {
        debug_assert!(backed <= self.len);
        // SAFETY: the first `backed <= len` bytes are mapped (writable if `self.writable`) for as
        // long as `self` lives (munmap only in drop/unmap, which take `self`); this type lends no
        // plain reference to bytes anyone can write, except through `unsafe fn`s whose callers
        // promise that nobody else accesses them meanwhile.
        unsafe { SharedSlice::from_raw_parts(self.ptr, backed, self.writable, &self.object) }
    }

    /// The bytes of `count` (or one) `T` at `offset`, checked like
    /// [`range_of`](Self::range_of) against the bytes the file backs now: the slice of the
    /// backed bytes and the range in it.
    fn access<T>(
        &self,
        op: &'static str,
        offset: usize,
        count: Option<usize>,
        index: Option<usize>,
        aligned: bool,
    ) -> Result<(SharedSlice<'_>, Range<usize>)> {
        let backed = self.backed_len()?;
        let r = self.range_of::<T>(op, offset, count, index, backed, aligned)?;
        Ok((self.backed_shared(backed), r))
    }

    /// The bytes the file backs now (all of them for anonymous memory), to copy in and out by
    /// offset and to use atomics in place: see [`shared`](crate::shared) for why no plain `&[u8]`
    /// is handed out. The slice's length is fixed when it is made: if another process truncates
    /// the file while you keep it, touching the lost pages raises `SIGBUS` (see the type's
    /// documentation); a file sealed against shrinking cannot.
    pub fn shared(&self) -> Result<SharedSlice<'_>> {
        Ok(self.backed_shared(self.backed_len()?))
    }

    /// The bytes as a plain slice, when nobody can change them: the mapping is read-only and the
    /// file is a [`Memfd`](crate::posix::shm::Memfd) sealed with
    /// [`Seals::WRITE`](crate::posix::shm::Seals::WRITE) and
    /// [`Seals::SHRINK`](crate::posix::shm::Seals::SHRINK) before it was mapped — the way to
    /// hand a receiver bytes it can borrow without copying. Otherwise an invalid-argument error.
    pub fn sealed_bytes(&self) -> Result<&[u8]> {
        if !self.frozen {
            return Err(Error::invalid(
                "sealed_bytes",
                self.object.clone(),
                "other processes can write these bytes: copy them out (read_at, shared), or seal \
                 the memfd with F_SEAL_WRITE and F_SEAL_SHRINK and map it read-only",
            ));
        }
        let backed = self.backed_len()?;
        // SAFETY: `frozen`: the mapping is read-only and the file was sealed against writes and
        // shrinking before it was mapped, so no process can change or remove these bytes while
        // `self` lives (and `atomic_u32`/`atomic_u64` refuse read-only mappings); `backed <= len`
        // bytes are mapped, and the kernel initialised them.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), backed) })
    }

    /// Copies `buf.len()` bytes from byte `offset` of the mapping into `buf`. Fails, copying
    /// nothing, if they are not all inside the mapping and the file. Another process writing
    /// meanwhile can tear the copy: validate it.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let (bytes, r) = self.access::<u8>("read_at", offset, Some(buf.len()), None, false)?;
        bytes.read_at(r.start, buf)
    }

    /// Copies `data` to byte `offset` of the mapping. Fails, writing nothing, on a read-only
    /// mapping or if the bytes are not all inside the mapping and the file.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_writable("write_at")?;
        let (bytes, r) = self.access::<u8>("write_at", offset, Some(data.len()), None, false)?;
        bytes.write_at(r.start, data)
    }

    /// A copy of the `T` at byte `offset` (any alignment). Fails with an invalid-argument error
    /// naming the type and the offset if it does not fit in the mapping or lies past the end of
    /// the file. Another process writing meanwhile can tear the value: validate it.
    pub fn read<T: Pod>(&self, offset: usize) -> Result<T> {
        let (bytes, r) = self.access::<T>("read", offset, None, None, false)?;
        bytes.read(r.start)
    }

    /// Writes `value` at byte `offset` (any alignment); checked like [`read`](Self::read), and
    /// fails on a read-only mapping.
    pub fn write<T: Pod>(&self, offset: usize, value: &T) -> Result<()> {
        self.check_writable("write")?;
        let (bytes, r) = self.access::<T>("write", offset, None, None, false)?;
        bytes.write(r.start, value)
    }

    /// The byte offset of record `index` of type `T` (`index × size_of::<T>()`), checked for
    /// overflow.
    fn record_offset<T>(&self, op: &'static str, index: usize) -> Result<usize> {
        index.checked_mul(mem::size_of::<T>()).ok_or_else(|| {
            Error::invalid(
                op,
                self.object.clone(),
                format!(
                    "record {index} of {} overflows the address range",
                    std::any::type_name::<T>()
                ),
            )
        })
    }

    /// How many whole records of type `T` the file backs now, from the first byte of the
    /// mapping; a partial record at the end of the file is not counted. Zero-sized types are
    /// refused.
    pub fn record_count<T>(&self) -> Result<usize> {
        let backed = self.backed_len()?;
        backed.checked_div(mem::size_of::<T>()).ok_or_else(|| {
            Error::invalid(
                "record_count",
                self.object.clone(),
                format!(
                    "records of zero-sized {} cannot be counted",
                    std::any::type_name::<T>()
                ),
            )
        })
    }

    /// A copy of record `index` of a mapping that holds an array of `T` from its first byte (a
    /// `#[repr(C)]` `Pod` struct): the `T` at byte `index × size_of::<T>()`. A record past the end
    /// of the file is an error, also when it lies inside the mapping.
    pub fn read_record<T: Pod>(&self, index: usize) -> Result<T> {
        let offset = self.record_offset::<T>("read_record", index)?;
        let (bytes, r) = self.access::<T>("read_record", offset, None, Some(index), false)?;
        bytes.read(r.start)
    }

    /// Writes record `index`; see [`read_record`](Self::read_record). Fails on a read-only
    /// mapping.
    pub fn write_record<T: Pod>(&self, index: usize, value: &T) -> Result<()> {
        self.check_writable("write_record")?;
        let offset = self.record_offset::<T>("write_record", index)?;
        let (bytes, r) = self.access::<T>("write_record", offset, None, Some(index), false)?;
        bytes.write(r.start, value)
    }

    /// The `T` at byte `offset` as a plain reference (aligned, inside the mapping and the file,
    /// checked).
    ///
    /// # Safety
    /// For as long as the reference lives, nobody writes those `size_of::<T>()` bytes: no other
    /// process or mapping of the file, no atomic or copy of this process; and nobody truncates the
    /// file below them (that would raise `SIGBUS`, see the type's documentation).
    pub unsafe fn view_unchecked<T: AnyBitPattern>(&self, offset: usize) -> Result<&T> {
        let (bytes, r) = self.access::<T>("view_unchecked", offset, None, None, true)?;
        // SAFETY: forwarded to the caller (same contract); `r` is checked and aligned.
        unsafe { bytes.view_unchecked(r.start) }
    }

    /// The `T` at byte `offset` as a plain mutable reference (aligned, inside the mapping and the
    /// file, checked); fails on a read-only mapping.
    ///
    /// # Safety
    /// For as long as the reference lives, nothing else reads or writes those `size_of::<T>()`
    /// bytes (no other process or mapping of the file, no atomic or copy of this process), and
    /// nobody truncates the file below them.
    pub unsafe fn view_mut_unchecked<T: Pod>(&mut self, offset: usize) -> Result<&mut T> {
        self.check_writable("view_mut_unchecked")?;
        let (bytes, r) = self.access::<T>("view_mut_unchecked", offset, None, None, true)?;
        // SAFETY: forwarded to the caller (same contract); `r` is checked and aligned.
        unsafe { bytes.view_mut_unchecked(r.start) }
    }

    /// A pointer to a `T` at byte `offset`, checked to be aligned and inside the mapping and the
    /// file: where to place a process-shared object (a lock, a semaphore) that is used through
    /// raw pointers or atomics. Raw pointers carry no borrow: using it is the caller's `unsafe`
    /// responsibility.
    pub fn ptr_at<T>(&self, offset: usize) -> Result<NonNull<T>> {
        let (_, r) = self.access::<T>("ptr_at", offset, None, None, true)?;
        // SAFETY: `r.start <= len`, so the result stays inside (or one past the end of) the
        // mapping, which is one allocation.
        Ok(unsafe { self.ptr.add(r.start) }.cast::<T>())
    }

    /// The `AtomicU32` at byte `offset` (4-byte aligned, inside the mapping and the file) of a
    /// writable mapping, for lock-free sharing with other threads and processes.
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        self.check_writable("atomic_u32")?;
        let (bytes, r) = self.access::<AtomicU32>("atomic_u32", offset, None, None, true)?;
        bytes.atomic_u32(r.start)
    }

    /// The `AtomicU64` at byte `offset` (8-byte aligned, inside the mapping and the file) of a
    /// writable mapping, for lock-free sharing with other threads and processes.
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        self.check_writable("atomic_u64")?;
        let (bytes, r) = self.access::<AtomicU64>("atomic_u64", offset, None, None, true)?;
        bytes.atomic_u64(r.start)
    }

    fn msync(&self, op: &'static str, range: Range<usize>, flags: MsyncFlags) -> Result<()> {
        // SAFETY: `range` lies inside the mapping (callers check) and starts on a page boundary;
        // msync only writes pages back and changes no memory.
        unsafe {
            rustix::mm::msync(
                self.ptr.as_ptr().add(range.start).cast(),
                range.len(),
                flags,
            )
        }
        .map_err(|e| Error::os(op, self.object.clone(), e))
    }

    /// `msync(addr, len, MS_SYNC)` — writes the mapping's changed pages to the file and waits
    /// until they are written. Other processes mapping or reading the file see shared writes at
    /// once, without it; flushing is about the storage device.
    pub fn flush(&self) -> Result<()> {
        self.msync("msync(MS_SYNC)", 0..self.len, MsyncFlags::SYNC)
    }

    /// `msync(addr, len, MS_ASYNC)` — schedules the write-back of the changed pages and returns.
    pub fn flush_async(&self) -> Result<()> {
        self.msync("msync(MS_ASYNC)", 0..self.len, MsyncFlags::ASYNC)
    }

    /// `msync(addr, len, MS_SYNC)` for the `len` bytes from byte `offset` of the mapping (widened
    /// to the page that holds `offset`). Fails before the call if the range leaves the mapping.
    pub fn flush_range(&self, offset: usize, len: usize) -> Result<()> {
        const OP: &str = "msync(MS_SYNC)";
        let end = offset.checked_add(len).filter(|&end| end <= self.len);
        let Some(end) = end else {
            return Err(Error::invalid(
                OP,
                self.object.clone(),
                format!(
                    "{len} bytes at offset {offset} do not fit in the {}-byte mapping",
                    self.len
                ),
            ));
        };
        let start = offset - offset % page_size();
        self.msync(OP, start..end, MsyncFlags::SYNC)
    }

    /// `munmap(addr, len)` — unmaps now (after the flush of
    /// [`flush_on_drop`](MmapOptions::flush_on_drop)), reporting the errors that drop would ignore.
    pub fn unmap(self) -> Result<()> {
        let mut map = mem::ManuallyDrop::new(self);
        let flushed = if map.flush_on_drop {
            map.flush()
        } else {
            Ok(())
        };
        // SAFETY: `ptr`/`len` describe the live mapping that mmap returned; `map` is never dropped
        // and no reference into the mapping outlives it (they all borrow the consumed `self`).
        let unmapped = unsafe { rustix::mm::munmap(map.ptr.as_ptr().cast(), map.len) }
            .map_err(|e| Error::os("munmap", map.object.clone(), e));
        // Release what drop would have released besides the mapping: the descriptor and the name.
        drop(map.file.take());
        drop(mem::replace(
            &mut map.object,
            Object::Other(String::new().into()),
        ));
        flushed.and(unmapped)
    }
}

// SAFETY: the mapping stays at the same address until dropped (`unmap` takes it by value), and
// `shared` hands out only a SharedSlice.
unsafe impl Mapping for Mmap {
    fn shared(&self) -> Result<SharedSlice<'_>> {
        Mmap::shared(self)
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        if self.flush_on_drop {
            let _ = self.flush();
        }
        // SAFETY: `ptr`/`len` describe the live mapping that mmap returned, unmapped only here; no
        // reference into it outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

impl fmt::Debug for Mmap {
    /// Without the contents: what is mapped, where, and how.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mmap")
            .field("object", &self.object)
            .field("addr", &self.ptr)
            .field("len", &self.len)
            .field("offset", &self.offset)
            .field("shared", &self.shared)
            .field("writable", &self.writable)
            .finish()
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use crate::posix::shm::{Memfd, Seals};

    /// The seals are read before the size: a sender that shrinks and then seals between the two
    /// reads is seen with its final size. (Read in the other order, the size would be the old one
    /// and the seal would make the mapping trust it: `SIGBUS` past the new end.)
    #[test]
    fn a_shrink_then_seal_between_the_reads_leaves_no_stale_size() {
        let page = page_size();
        let memfd = Memfd::create("race", 2 * page as u64).unwrap();
        let map = MmapOptions::new()
            .map_object_racing(memfd.as_fd(), Object::Other("race".into()), || {
                memfd.resize(page as u64).unwrap();
                memfd.seal(Seals::SHRINK).unwrap();
            })
            .unwrap();
        assert_eq!(map.backed_len().unwrap(), page);
        assert!(map.read::<u8>(page).is_err(), "past the end of the file");
        assert!(map.read::<u8>(page - 1).is_ok());
    }
}
