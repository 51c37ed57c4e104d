//! POSIX shared memory: memory files that processes map to share bytes — named objects in
//! `/dev/shm` that unrelated processes open by name ([`SharedMemory`]), and anonymous memory files
//! passed as a descriptor ([`Memfd`]).
//!
//! The traps removed: a name is validated before any system call, so `"/../etc/x"` or `"/a/b"`
//! cannot reach outside `/dev/shm`, and opening never follows a symbolic link (`O_NOFOLLOW`);
//! a named object outlives its creator unless unlinked ([`OwnedSharedMemory`] unlinks on drop); and a
//! receiver of a memory file can require seals ([`Seals`]) so that the sender can neither shrink
//! it under the receiver's mappings (`SIGBUS`) nor change what it promised. Mapping goes through
//! [`mmap`](crate::mmap), whose accessors stop at the end of the file.
//!
//! # References
//! [shm_overview(7)](https://man7.org/linux/man-pages/man7/shm_overview.7.html),
//! [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html),
//! [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html),
//! [fcntl(2) "File Sealing"](https://man7.org/linux/man-pages/man2/fcntl.2.html)

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign, Deref};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{FileType, MemfdFlags, Mode, SealFlags};

use crate::error::{Error, Object, Result};
use crate::mmap::{Mmap, MmapOptions};
use crate::mode::{check_mode, DEFAULT_MODE};

/// The longest shared-memory name, in bytes after the leading slash. The kernel's file-name limit
/// (`NAME_MAX`, 255) less one: rustix's `shm_open` counts the slash.
pub const SHM_NAME_MAX: usize = crate::posix::NAME_MAX - 1;

/// The longest debugging name of a [`Memfd`], in bytes: 249, `NAME_MAX` less the `memfd:` prefix
/// the kernel adds.
pub const MEMFD_NAME_MAX: usize = 249;

/// Checks a shared-memory name without any system call: one leading slash and no other, not
/// `"/"`, `"/."` or `"/.."`, no NUL byte, at most [`SHM_NAME_MAX`] bytes after the slash. Every
/// function of this module that takes a name checks it first.
pub fn validate_name(name: impl AsRef<OsStr>) -> Result<()> {
    check_name("shm_open", name.as_ref())
}

fn check_name(op: &'static str, name: &OsStr) -> Result<()> {
    let object = || shm_object(name);
    crate::posix::check_name(op, object(), name)?;
    let len = name.len() - 1;
    if len > SHM_NAME_MAX {
        return Err(Error::invalid(
            op,
            object(),
            format!("a name of {len} bytes after the slash exceeds SHM_NAME_MAX ({SHM_NAME_MAX})"),
        ));
    }
    Ok(())
}

/// The object named `name`, as errors name it.
fn shm_object(name: &OsStr) -> Object {
    Object::PosixShm(crate::posix::display_name(name).into())
}

/// `fstat(fd)`: the file's type and size.
fn stat_len(object: &Object, fd: BorrowedFd<'_>) -> Result<(FileType, u64)> {
    let st = rustix::fs::fstat(fd).map_err(|e| Error::os("fstat", object.clone(), e))?;
    let len = u64::try_from(st.st_size).unwrap_or(0);
    Ok((FileType::from_raw_mode(st.st_mode), len))
}

fn ftruncate(object: &Object, fd: BorrowedFd<'_>, len: u64) -> Result<()> {
    rustix::fs::ftruncate(fd, len).map_err(|e| Error::os("ftruncate", object.clone(), e))
}

/// Options to create or open a named shared-memory object (`shm_open` flags), like
/// `std::fs::OpenOptions`.
///
/// Defaults: size 0, mode [`DEFAULT_MODE`] (0600), read-write, neither create nor exclusive, so
/// `SharedMemory::options().open(name)` opens an existing object for reading and writing.
///
/// ```no_run
/// use ipckit::posix::shm::SharedMemory;
/// let shm = SharedMemory::options().size(4096).mode(0o640).exclusive(true).open("/demo")?;
/// let map = shm.map()?;
/// map.write_at(0, b"hello")?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SharedMemoryOptions {
    size: u64,
    mode: u32,
    create: bool,
    exclusive: bool,
    read_only: bool,
}

impl Default for SharedMemoryOptions {
    fn default() -> Self {
        SharedMemoryOptions::new()
    }
}

impl SharedMemoryOptions {
    /// The default options (see the [type documentation](SharedMemoryOptions)).
    pub fn new() -> SharedMemoryOptions {
        SharedMemoryOptions {
            size: 0,
            mode: DEFAULT_MODE,
            create: false,
            exclusive: false,
            read_only: false,
        }
    }

    /// The least size in bytes: an object smaller than this (a new object has 0 bytes) is grown to
    /// it with `ftruncate`; a larger one is left alone, never shrunk. Needs read-write access.
    pub fn size(&mut self, size: u64) -> &mut Self {
        self.size = size;
        self
    }

    /// The permission bits (at most 0o777) of an object this call creates; the process umask
    /// applies, as for `open(2)`.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// `O_CREAT`: create the object if the name is free.
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }

    /// `O_CREAT | O_EXCL`: create the object, failing with `AlreadyExists` if the name is taken.
    /// Implies `create(true)`.
    pub fn exclusive(&mut self, exclusive: bool) -> &mut Self {
        self.exclusive = exclusive;
        self
    }

    /// `O_RDONLY` instead of `O_RDWR`: only read permission is needed, and only read-only
    /// mappings can be made. A read-only handle cannot set a size.
    pub fn read_only(&mut self, read_only: bool) -> &mut Self {
        self.read_only = read_only;
        self
    }

    /// `shm_open(name, flags | O_NOFOLLOW | O_CLOEXEC, mode)` — creates or opens the object with
    /// these options, then grows it to [`size`](Self::size) if it is smaller (`ftruncate`).
    ///
    /// Checked before any call: the name ([`validate_name`]), the mode (0o777), and that a
    /// read-only handle asks for no size. The opened file must be a regular file. If this call
    /// created the object exclusively and then fails, it unlinks the object again.
    pub fn open(&self, name: impl AsRef<OsStr>) -> Result<SharedMemory> {
        const OP: &str = "shm_open";
        let name = name.as_ref();
        check_name(OP, name)?;
        let object = shm_object(name);
        let mode = check_mode(OP, &object, self.mode)?;
        if self.read_only && self.size > 0 {
            return Err(Error::invalid(
                OP,
                object,
                "a read-only handle cannot set the size: open it read-write, or ask for size 0",
            ));
        }
        let mut flags = if self.read_only {
            rustix::shm::OFlags::RDONLY
        } else {
            rustix::shm::OFlags::RDWR
        };
        if self.create || self.exclusive {
            flags |= rustix::shm::OFlags::CREATE;
        }
        if self.exclusive {
            flags |= rustix::shm::OFlags::EXCL;
        }
        flags |= rustix::shm::OFlags::from_bits_retain(rustix::fs::OFlags::NOFOLLOW.bits());
        let fd = rustix::shm::open(name, flags, Mode::from_raw_mode(mode as _))
            .map_err(|e| Error::os(OP, object.clone(), e))?;
        let shm = SharedMemory {
            fd,
            name: name.to_owned(),
            writable: !self.read_only,
        };
        shm.finish_open(self.size).inspect_err(|_| {
            if self.exclusive {
                let _ = rustix::shm::unlink(name);
            }
        })?;
        Ok(shm)
    }
}

/// A named POSIX shared-memory object, open in this process (it owns the descriptor, closed on
/// drop).
///
/// The object itself lives in `/dev/shm` until it is unlinked ([`SharedMemory::unlink`], or
/// [`OwnedSharedMemory`], which unlinks on drop), and its memory until the last descriptor and
/// mapping are gone. Map it with [`map`](Self::map) / [`map_read_only`](Self::map_read_only); the
/// mapping stays valid after the handle is dropped.
pub struct SharedMemory {
    fd: OwnedFd,
    name: OsString,
    writable: bool,
}

impl SharedMemory {
    /// `shm_open(name, O_CREAT | O_RDWR, 0600)` — creates the object or opens the existing one,
    /// and grows it to `size` bytes if it is smaller.
    pub fn create(name: impl AsRef<OsStr>, size: u64) -> Result<SharedMemory> {
        SharedMemory::options().size(size).create(true).open(name)
    }

    /// `shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600)` — creates a new object of `size` bytes;
    /// fails with `AlreadyExists` if the name is taken.
    pub fn create_exclusive(name: impl AsRef<OsStr>, size: u64) -> Result<SharedMemory> {
        SharedMemory::options()
            .size(size)
            .exclusive(true)
            .open(name)
    }

    /// `shm_open(name, O_RDWR, 0)` — opens the existing object for reading and writing;
    /// `NotFound` if there is none.
    pub fn open(name: impl AsRef<OsStr>) -> Result<SharedMemory> {
        SharedMemory::options().open(name)
    }

    /// Options for creating or opening an object: size, mode, create, exclusive, read-only.
    pub fn options() -> SharedMemoryOptions {
        SharedMemoryOptions::new()
    }

    /// `shm_unlink(name)` — removes the name from `/dev/shm`. Open descriptors and mappings keep
    /// the memory until they are gone; opening the name afterwards finds nothing (or a new
    /// object). The name is checked first.
    pub fn unlink(name: impl AsRef<OsStr>) -> Result<()> {
        const OP: &str = "shm_unlink";
        let name = name.as_ref();
        check_name(OP, name)?;
        rustix::shm::unlink(name).map_err(|e| Error::os(OP, shm_object(name), e))
    }

    fn finish_open(&self, size: u64) -> Result<()> {
        let object = self.object();
        let (file_type, len) = stat_len(&object, self.fd.as_fd())?;
        if file_type != FileType::RegularFile {
            return Err(Error::os(
                "shm_open",
                object,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not a shared memory object but a {file_type:?}"),
                ),
            ));
        }
        if len < size {
            ftruncate(&object, self.fd.as_fd(), size)?;
        }
        Ok(())
    }

    /// The name, as given (`/name`).
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// Whether this handle was opened for reading and writing.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    fn object(&self) -> Object {
        shm_object(&self.name)
    }

    /// `fstat(fd)` — the object's size in bytes.
    pub fn size(&self) -> Result<u64> {
        stat_len(&self.object(), self.fd.as_fd()).map(|(_, len)| len)
    }

    /// `ftruncate(fd, len)` — sets the object's size; new bytes read as zeros. Shrinking it under
    /// another process's mapping takes bytes away from it: its ipckit accessors then report the
    /// shorter size, raw accesses past the new end raise `SIGBUS`.
    pub fn resize(&self, len: u64) -> Result<()> {
        ftruncate(&self.object(), self.fd.as_fd(), len)
    }

    /// `mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)` — maps the whole object for
    /// reading and writing. Needs a read-write handle and a size of at least 1.
    pub fn map(&self) -> Result<Mmap> {
        self.map_with(MmapOptions::new().read_write())
    }

    /// `mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0)` — maps the whole object read-only.
    pub fn map_read_only(&self) -> Result<Mmap> {
        self.map_with(MmapOptions::new().read_only())
    }

    /// `mmap(NULL, len, prot, flags, fd, offset)` — maps the object with any [`MmapOptions`];
    /// errors name the object.
    pub fn map_with(&self, options: &MmapOptions) -> Result<Mmap> {
        options.map_object(self.fd.as_fd(), self.object())
    }

    /// A handle that unlinks the name when dropped, for the process that owns the object.
    pub fn into_owned(self) -> OwnedSharedMemory {
        OwnedSharedMemory { shm: Some(self) }
    }

    /// The descriptor, which stays open; the name is forgotten.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("fd", &self.fd.as_raw_fd())
            .field("writable", &self.writable)
            .finish()
    }
}

/// A [`SharedMemory`] whose name is unlinked (`shm_unlink`) when this handle is dropped, errors
/// ignored. Dereferences to [`SharedMemory`]. Mappings made from it stay valid after the unlink.
#[derive(Debug)]
pub struct OwnedSharedMemory {
    /// Always `Some` until `into_inner` or `unlink` takes it.
    shm: Option<SharedMemory>,
}

impl OwnedSharedMemory {
    /// Gives up ownership: the name is no longer unlinked on drop.
    pub fn into_inner(mut self) -> SharedMemory {
        self.shm.take().expect("OwnedSharedMemory holds its object")
    }

    /// `shm_unlink(name)` now, reporting the error that drop would ignore.
    pub fn unlink(self) -> Result<()> {
        SharedMemory::unlink(self.into_inner().name())
    }
}

impl Deref for OwnedSharedMemory {
    type Target = SharedMemory;

    fn deref(&self) -> &SharedMemory {
        self.shm
            .as_ref()
            .expect("OwnedSharedMemory holds its object")
    }
}

impl Drop for OwnedSharedMemory {
    fn drop(&mut self) {
        if let Some(shm) = &self.shm {
            let _ = rustix::shm::unlink(shm.name.as_os_str());
        }
    }
}

/// File seals (`F_SEAL_*`): promises about a [`Memfd`] that the kernel enforces for every process
/// holding it, from the moment they are added; seals can never be removed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seals(u32);

impl Seals {
    /// `F_SEAL_SEAL`: no further seal can be added (`F_ADD_SEALS` fails with `EPERM`), so the
    /// set of seals is final.
    pub const SEAL: Seals = Seals(SealFlags::SEAL.bits());
    /// `F_SEAL_SHRINK`: the size can no longer decrease (`ftruncate` to less fails with `EPERM`).
    /// Every byte a mapping covers now stays backed: no truncation can raise `SIGBUS` in a
    /// receiver, and [`Mmap`] skips its size check.
    pub const SHRINK: Seals = Seals(SealFlags::SHRINK.bits());
    /// `F_SEAL_GROW`: the size can no longer increase (`ftruncate` to more, a `write` past the
    /// end, or `fallocate` fail with `EPERM`). With [`SHRINK`](Self::SHRINK) the size is fixed, so
    /// a receiver can trust the size it reads once.
    pub const GROW: Seals = Seals(SealFlags::GROW.bits());
    /// `F_SEAL_WRITE`: the contents can no longer change: `write` and new shared writable
    /// mappings fail with `EPERM`. Adding it fails with `EBUSY` while a shared writable mapping of
    /// the file exists in any process: unmap those first. With [`SHRINK`](Self::SHRINK), nobody
    /// can change or remove the bytes any more, so a read-only mapping made afterwards lends them
    /// as a plain slice ([`Mmap::sealed_bytes`]).
    pub const WRITE: Seals = Seals(SealFlags::WRITE.bits());
    /// `F_SEAL_FUTURE_WRITE` (Linux 5.1): like [`WRITE`](Self::WRITE) for every new `write` and
    /// new writable mapping, but the writable mappings that exist keep working — the sender keeps
    /// writing through its mapping while receivers can only read.
    pub const FUTURE_WRITE: Seals = Seals(SealFlags::FUTURE_WRITE.bits());

    const NAMES: [(Seals, &'static str); 5] = [
        (Seals::SEAL, "SEAL"),
        (Seals::SHRINK, "SHRINK"),
        (Seals::GROW, "GROW"),
        (Seals::WRITE, "WRITE"),
        (Seals::FUTURE_WRITE, "FUTURE_WRITE"),
    ];

    /// No seal.
    pub const fn empty() -> Seals {
        Seals(0)
    }

    /// The `F_SEAL_*` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Seals from `F_SEAL_*` bits, unknown bits kept.
    pub const fn from_bits_retain(bits: u32) -> Seals {
        Seals(bits)
    }

    /// Whether every seal of `other` is in `self`.
    pub const fn contains(self, other: Seals) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether there is no seal.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The seals of `self` that are not in `other`.
    pub const fn difference(self, other: Seals) -> Seals {
        Seals(self.0 & !other.0)
    }
}

impl BitOr for Seals {
    type Output = Seals;

    fn bitor(self, rhs: Seals) -> Seals {
        Seals(self.0 | rhs.0)
    }
}

impl BitOrAssign for Seals {
    fn bitor_assign(&mut self, rhs: Seals) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Seals {
    type Output = Seals;

    fn bitand(self, rhs: Seals) -> Seals {
        Seals(self.0 & rhs.0)
    }
}

impl fmt::Debug for Seals {
    /// `SHRINK | GROW`, `(none)`, unknown bits in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        let mut first = true;
        for (seal, name) in Seals::NAMES {
            if self.contains(seal) {
                f.write_str(if first { "" } else { " | " })?;
                f.write_str(name)?;
                rest &= !seal.0;
                first = false;
            }
        }
        match (rest, first) {
            (0, true) => f.write_str("(none)"),
            (0, false) => Ok(()),
            (bits, true) => write!(f, "{bits:#x}"),
            (bits, false) => write!(f, " | {bits:#x}"),
        }
    }
}

impl fmt::Display for Seals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An anonymous memory file (`memfd_create`): shared memory without a name, shared by passing its
/// descriptor (inheritance, `SCM_RIGHTS`, `/proc/<pid>/fd/<n>`), that can be sealed ([`Seals`]).
///
/// It owns the descriptor (closed on drop); the memory lives until the last descriptor and mapping
/// are gone, so nothing is left behind. The receiver of a descriptor wraps it with
/// [`Memfd::from_fd`], which checks the seals it requires.
pub struct Memfd {
    fd: OwnedFd,
    name: String,
}

impl Memfd {
    /// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)` then `ftruncate(fd, size)` — a new
    /// memory file of `size` zero bytes. `name` is for debugging only (it shows in
    /// `/proc/<pid>/fd` as `memfd:name`); it is checked first: no NUL byte, at most
    /// [`MEMFD_NAME_MAX`] bytes.
    pub fn create(name: &str, size: u64) -> Result<Memfd> {
        const OP: &str = "memfd_create";
        let object = memfd_object(name);
        if name.contains('\0') {
            return Err(Error::invalid(
                OP,
                object,
                "a name cannot contain a NUL byte",
            ));
        }
        if name.len() > MEMFD_NAME_MAX {
            return Err(Error::invalid(
                OP,
                object,
                format!(
                    "a name of {} bytes exceeds MEMFD_NAME_MAX ({MEMFD_NAME_MAX})",
                    name.len()
                ),
            ));
        }
        let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .map_err(|e| Error::os(OP, object.clone(), e))?;
        if size > 0 {
            ftruncate(&object, fd.as_fd(), size)?;
        }
        Ok(Memfd {
            fd,
            name: name.to_string(),
        })
    }

    /// `fstat(fd)` and `fcntl(fd, F_GET_SEALS)` — takes a memory file received from another
    /// process, after checking that it is a regular file that supports seals and carries at least
    /// the seals in `required` (pass [`Seals::empty`] to require none).
    ///
    /// A sender that did not seal is refused with a [`Corrupt`](Error::Corrupt) error naming the
    /// missing seals, and `fd` is closed. What to require:
    /// - [`Seals::SHRINK`] before mapping memory you do not control: a sender that truncates the
    ///   file under your mapping makes accesses raise `SIGBUS`;
    /// - `SHRINK | GROW` to trust [`size`](Self::size) from then on;
    /// - `WRITE | SHRINK` to borrow the bytes in place, without copying, from a read-only mapping
    ///   ([`map_read_only`](Self::map_read_only), then [`Mmap::sealed_bytes`]): nobody can change
    ///   them any more. Otherwise copy values out ([`Mmap::read`], [`Mmap::read_at`]).
    ///
    /// The seals checked here are read again when the file is mapped, before its size, so a sender
    /// that shrinks and then seals between the two is seen with its final size.
    pub fn from_fd(fd: OwnedFd, required: Seals) -> Result<Memfd> {
        let raw = fd.as_raw_fd();
        let name = std::fs::read_link(format!("/proc/self/fd/{raw}"))
            .ok()
            .and_then(|p| {
                let p = p.to_string_lossy().into_owned();
                let rest = p.strip_prefix("/memfd:")?;
                Some(rest.strip_suffix(" (deleted)").unwrap_or(rest).to_string())
            })
            .unwrap_or_else(|| format!("(file descriptor {raw})"));
        let memfd = Memfd { fd, name };
        let object = memfd.object();
        let (file_type, _) = stat_len(&object, memfd.fd.as_fd())?;
        if file_type != FileType::RegularFile {
            return Err(Error::corrupt(
                "memfd",
                object,
                format!("not a memory file but a {file_type:?}"),
            ));
        }
        let seals = memfd.seals()?;
        let missing = required.difference(seals);
        if !missing.is_empty() {
            return Err(Error::corrupt(
                "memfd",
                object,
                format!("the sender did not seal it: missing {missing} (has {seals})"),
            ));
        }
        Ok(memfd)
    }

    /// The debugging name given at creation (or read from `/proc/self/fd` by
    /// [`from_fd`](Self::from_fd)).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn object(&self) -> Object {
        memfd_object(&self.name)
    }

    /// `fcntl(fd, F_ADD_SEALS, seals)` — adds seals, for every holder of the file, forever.
    /// `EPERM` once [`Seals::SEAL`] is set; `EBUSY` for [`Seals::WRITE`] while a shared writable
    /// mapping exists.
    pub fn seal(&self, seals: Seals) -> Result<()> {
        rustix::fs::fcntl_add_seals(&self.fd, SealFlags::from_bits_retain(seals.bits()))
            .map_err(|e| Error::os("fcntl(F_ADD_SEALS)", self.object(), e))
    }

    /// `fcntl(fd, F_GET_SEALS)` — the seals set so far.
    pub fn seals(&self) -> Result<Seals> {
        rustix::fs::fcntl_get_seals(&self.fd)
            .map(|s| Seals(s.bits()))
            .map_err(|e| Error::os("fcntl(F_GET_SEALS)", self.object(), e))
    }

    /// `fstat(fd)` — the size in bytes.
    pub fn size(&self) -> Result<u64> {
        stat_len(&self.object(), self.fd.as_fd()).map(|(_, len)| len)
    }

    /// `ftruncate(fd, len)` — sets the size; `EPERM` when a seal forbids it.
    pub fn resize(&self, len: u64) -> Result<()> {
        ftruncate(&self.object(), self.fd.as_fd(), len)
    }

    /// `mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)` — maps the whole file for
    /// reading and writing (`EPERM` once sealed with [`Seals::WRITE`] or
    /// [`Seals::FUTURE_WRITE`]).
    pub fn map(&self) -> Result<Mmap> {
        self.map_with(MmapOptions::new().read_write())
    }

    /// `mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0)` — maps the whole file read-only.
    pub fn map_read_only(&self) -> Result<Mmap> {
        self.map_with(MmapOptions::new().read_only())
    }

    /// `mmap(NULL, len, prot, flags, fd, offset)` — maps the file with any [`MmapOptions`].
    pub fn map_with(&self, options: &MmapOptions) -> Result<Mmap> {
        options.map_object(self.fd.as_fd(), self.object())
    }

    /// The descriptor, to pass to another process.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

fn memfd_object(name: &str) -> Object {
    Object::Other(format!("memfd {name}").into())
}

impl AsFd for Memfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for Memfd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memfd")
            .field("name", &self.name)
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_combine_and_print_by_name() {
        let s = Seals::SHRINK | Seals::GROW;
        assert!(s.contains(Seals::SHRINK) && !s.contains(Seals::WRITE));
        assert_eq!(format!("{s:?}"), "SHRINK | GROW");
        assert_eq!(format!("{}", Seals::empty()), "(none)");
        assert_eq!(s.difference(Seals::GROW), Seals::SHRINK);
        assert_eq!(format!("{:?}", Seals::from_bits_retain(0x100)), "0x100");
    }

    #[test]
    fn shm_names_longer_than_shm_name_max_are_refused() {
        assert!(validate_name(format!("/{}", "n".repeat(SHM_NAME_MAX))).is_ok());
        let err = validate_name(format!("/{}", "n".repeat(SHM_NAME_MAX + 1))).unwrap_err();
        assert!(err.to_string().contains("SHM_NAME_MAX"), "{err}");
    }
}
