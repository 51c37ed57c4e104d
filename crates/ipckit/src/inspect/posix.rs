//! POSIX shared memory, named semaphores and message queues as their file systems show them, and
//! the processes that map them or hold them open.
//!
//! POSIX objects have no kernel table like `/proc/sysvipc`: each one is a file. Shared memory
//! `/NAME` is `/dev/shm/NAME` (tmpfs), glibc keeps the named semaphore `/NAME` as
//! `/dev/shm/sem.NAME`, and the message queue `/NAME` is `/dev/mqueue/NAME` when the `mqueue` file
//! system is mounted there. Owner, mode, size and times come from `stat`; a semaphore's value and a
//! queue's attributes from opening it through [`crate::posix`]; who uses an object from
//! `/proc/<pid>/maps` and `/proc/<pid>/fd`, matched by device and inode number, not by path: glibc
//! maps a semaphore under a temporary name, and a queue's descriptor links to `/NAME`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::procfs::{malformed, read_text, scan_maps_in, MapsEntry, PROC};
use crate::error::{Error, Object, Result};
pub use crate::posix::display_name;
use crate::posix::mq::MessageQueue;
use crate::posix::sem::{NamedSemaphore, Semaphore, SEM_NAME_MAX};
use crate::posix::shm::SHM_NAME_MAX;

/// Where POSIX shared memory and (glibc's) named semaphores live.
pub const DEV_SHM: &str = "/dev/shm";
/// Where the `mqueue` file system, which shows POSIX message queues, is mounted by convention.
pub const DEV_MQUEUE: &str = "/dev/mqueue";
/// The command that mounts the `mqueue` file system where [`posix_mqueues`] looks first.
pub const MOUNT_MQUEUE: &str = "mount -t mqueue none /dev/mqueue";
/// The mount table of this process's mount namespace.
const PROC_SELF_MOUNTS: &str = "/proc/self/mounts";
/// glibc's file-name prefix of named semaphores in `/dev/shm`.
const SEM_PREFIX: &str = "sem.";

/// The three kinds of POSIX IPC object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PosixKind {
    /// Shared memory (`shm_open`).
    Shm,
    /// A named semaphore (`sem_open`).
    Sem,
    /// A message queue (`mq_open`).
    Mq,
}

impl PosixKind {
    /// The error object for the object of this kind named `name`.
    pub fn object(self, name: &str) -> Object {
        match self {
            PosixKind::Shm => Object::PosixShm(name.into()),
            PosixKind::Sem => Object::PosixSem(name.into()),
            PosixKind::Mq => Object::PosixMq(name.into()),
        }
    }
}

/// Checks a POSIX IPC name as given on a command line and returns it as the `posix` modules take
/// it: `NAME` becomes `/NAME` (as glibc's `shm_open` and `sem_open` accept it), and the result has
/// one leading slash and no other, is not `/.` or `/..`, and fits the kind's limit
/// ([`SHM_NAME_MAX`], [`SEM_NAME_MAX`] — glibc adds `sem.` —, or `NAME_MAX`). The name need not
/// be UTF-8. Nothing is looked up.
pub fn posix_name(kind: PosixKind, name: impl AsRef<OsStr>) -> Result<OsString> {
    const OP: &str = "name";
    let name = name.as_ref();
    let mut full = OsString::with_capacity(name.len() + 1);
    if !name.as_bytes().starts_with(b"/") {
        full.push("/");
    }
    full.push(name);
    let object = || kind.object(&display_name(name));
    crate::posix::check_name(OP, object(), &full)?;
    let len = full.len() - 1;
    let limit = match kind {
        PosixKind::Shm => Some(("SHM_NAME_MAX", SHM_NAME_MAX)),
        PosixKind::Sem => Some(("SEM_NAME_MAX", SEM_NAME_MAX)),
        PosixKind::Mq => None,
    };
    match limit {
        Some((limit_name, limit)) if len > limit => Err(Error::invalid(
            OP,
            object(),
            format!("a name of {len} bytes after the slash exceeds {limit_name} ({limit})"),
        )),
        _ => Ok(full),
    }
}

/// Removes the POSIX object `name` (`/NAME`) of `kind`: `shm_unlink`, `sem_unlink` or
/// `mq_unlink`.
pub fn unlink_posix(kind: PosixKind, name: &OsStr) -> Result<()> {
    match kind {
        PosixKind::Shm => crate::posix::shm::SharedMemory::unlink(name),
        PosixKind::Sem => NamedSemaphore::unlink(name),
        PosixKind::Mq => MessageQueue::unlink(name),
    }
}

/// The identity of a file: its device and inode number, as `stat(2)` and `/proc/<pid>/maps`
/// report them. Two paths, or a path and a mapping, name the same object exactly when their ids
/// are equal; a name that was unlinked and created again gets a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId {
    /// The device number (`st_dev`, `makedev(major, minor)`).
    pub dev: u64,
    /// The inode number (`st_ino`).
    pub ino: u64,
}

impl FileId {
    /// The id of the file a mapping maps.
    pub fn of_mapping(m: &MapsEntry<'_>) -> FileId {
        FileId {
            dev: rustix::fs::makedev(m.dev_major, m.dev_minor),
            ino: m.inode,
        }
    }

    /// The id of the file `meta` describes.
    pub fn of_metadata(meta: &Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// The processes using a file right now, each list sorted: those that map it and those that hold
/// a descriptor of it. A process may be in both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Users {
    /// PIDs of processes with a mapping of the file (`/proc/<pid>/maps`).
    pub mapped: Vec<u32>,
    /// PIDs of processes with an open descriptor of it (`/proc/<pid>/fd`).
    pub open: Vec<u32>,
}

impl Users {
    /// Every PID that maps the file or holds it open, sorted, each once.
    pub fn pids(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self.mapped.iter().chain(&self.open).copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Whether no process was seen using the file.
    pub fn is_empty(&self) -> bool {
        self.mapped.is_empty() && self.open.is_empty()
    }
}

/// A POSIX shared-memory object: a regular file of `/dev/shm` other than a semaphore.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PosixShmInfo {
    /// Its name, `/NAME`: a file name, which need not be UTF-8 ([`display_name`] shows it).
    pub name: OsString,
    /// Size in bytes (`st_size`: what `ftruncate` set).
    pub size: u64,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Mode: the permission bits (with setuid, setgid and sticky bits, if any).
    pub mode: u32,
    /// Time of the last change of its contents' size or of a write through `write(2)` (`st_mtime`;
    /// stores through a mapping do not change it).
    pub mtime: SystemTime,
    /// Time of the last change of its size, owner or mode (`st_ctime`).
    pub ctime: SystemTime,
    /// Device and inode of its file, to match its users.
    pub file: FileId,
}

/// A POSIX named semaphore: a file `/dev/shm/sem.NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PosixSemInfo {
    /// Its name, `/NAME`: a file name, which need not be UTF-8 ([`display_name`] shows it).
    pub name: OsString,
    /// Its value (`sem_getvalue`), or `None` when it cannot be opened (no read and write
    /// permission) or its file is too short to hold a `sem_t`.
    pub value: Option<u32>,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Mode: the permission bits.
    pub mode: u32,
    /// `st_mtime` of its file: when it was created (posts and waits do not change it).
    pub mtime: SystemTime,
    /// `st_ctime` of its file.
    pub ctime: SystemTime,
    /// Device and inode of its file, to match its users.
    pub file: FileId,
}

/// A POSIX message queue: a file of the `mqueue` file system.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PosixMqInfo {
    /// Its name, `/NAME`: a file name, which need not be UTF-8 ([`display_name`] shows it).
    pub name: OsString,
    /// Bytes the queued messages take (`QSIZE` in the queue's file); `None` when that file cannot
    /// be read (reading it needs read permission on the queue, as opening it does: an
    /// unprivileged user cannot read another user's 0600 queue). Such a queue is still listed,
    /// with what `stat` tells (name, owner, mode, times), and its other fields `None` too.
    pub used_bytes: Option<u64>,
    /// Messages queued now (`mq_curmsgs`); `None` when it cannot be opened for reading.
    pub messages: Option<u64>,
    /// Its capacity in messages (`mq_maxmsg`); `None` as for `messages`.
    pub max_messages: Option<u64>,
    /// Its largest message in bytes (`mq_msgsize`); `None` as for `messages`.
    pub message_size: Option<u64>,
    /// The process registered for notification (`mq_notify`), if any (`NOTIFY_PID`); `None` also
    /// when the queue's file cannot be read (see [`used_bytes`](Self::used_bytes)).
    pub notify_pid: Option<u32>,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Mode: the permission bits.
    pub mode: u32,
    /// Time of the last send or receive, or of creation (`st_mtime`). Only `mq_send` and
    /// `mq_receive` (and `mq_open` creating it) set it, so it is the queue's age as
    /// [`gc`](super::gc) measures it.
    pub mtime: SystemTime,
    /// Time of the last send, receive, attribute change, `mq_getattr`, `mq_notify` — and of every
    /// `read` of its file in the `mqueue` file system (`st_ctime`). Listing the queues sets it, so
    /// it says nothing about the queue's use.
    pub ctime: SystemTime,
    /// Device and inode of its file, to match the processes holding it open.
    pub file: FileId,
}

macro_rules! permissions_fn {
    ($($t:ty),*) => {$(
        impl $t {
            /// The permission bits alone (`mode & 0o777`).
            pub fn permissions(&self) -> u32 {
                self.mode & 0o777
            }
        }
    )*};
}
permissions_fn!(PosixShmInfo, PosixSemInfo, PosixMqInfo);

/// The POSIX message queues, or why they cannot be listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PosixMqs {
    /// The queues, read from where the `mqueue` file system is mounted.
    Listed(Vec<PosixMqInfo>),
    /// No `mqueue` file system is mounted, so the queues cannot be enumerated (they exist all the
    /// same, and can be opened by name). [`MOUNT_MQUEUE`] mounts it.
    NotMounted,
}

impl PosixMqs {
    /// The queues listed; none when the file system is not mounted.
    pub fn queues(&self) -> &[PosixMqInfo] {
        match self {
            PosixMqs::Listed(v) => v,
            PosixMqs::NotMounted => &[],
        }
    }
}

/// Every POSIX shared-memory object: the regular files of `/dev/shm` whose names do not start
/// with `sem.` (those are glibc's named semaphores). Names need not be UTF-8.
///
/// # References
/// [shm_overview(7)](https://man7.org/linux/man-pages/man7/shm_overview.7.html)
pub fn posix_shm_objects() -> Result<Vec<PosixShmInfo>> {
    posix_shm_objects_in(Path::new(DEV_SHM))
}

/// [`posix_shm_objects`] of the directory `dir`.
pub(crate) fn posix_shm_objects_in(dir: &Path) -> Result<Vec<PosixShmInfo>> {
    Ok(regular_files(dir)?
        .into_iter()
        .filter(|(name, _)| !name.as_bytes().starts_with(SEM_PREFIX.as_bytes()))
        .map(|(name, meta)| PosixShmInfo {
            name: slash(&name),
            size: meta.size(),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            file: FileId::of_metadata(&meta),
        })
        .collect())
}

/// Every POSIX named semaphore: the regular files `sem.NAME` of `/dev/shm`, each opened with
/// [`NamedSemaphore::open`] to read its value (and closed again).
///
/// A semaphore file shorter than a `sem_t` is not opened (touching it would raise `SIGBUS`); its
/// value is `None`, as for one this process may not open.
///
/// # References
/// [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html)
pub fn posix_semaphores() -> Result<Vec<PosixSemInfo>> {
    posix_semaphores_in(Path::new(DEV_SHM))
}

/// [`posix_semaphores`] of the directory `dir`; values are read only from `/dev/shm`.
pub(crate) fn posix_semaphores_in(dir: &Path) -> Result<Vec<PosixSemInfo>> {
    let real = dir == Path::new(DEV_SHM);
    Ok(regular_files(dir)?
        .into_iter()
        .filter_map(|(file_name, meta)| {
            let rest = file_name
                .as_bytes()
                .strip_prefix(SEM_PREFIX.as_bytes())
                .filter(|r| !r.is_empty())?;
            let name = slash(OsStr::from_bytes(rest));
            // sem_open takes UTF-8 names only: another's value stays unknown.
            let value = (real && meta.size() >= Semaphore::SIZE as u64)
                .then(|| {
                    let utf8 = name.to_str()?;
                    NamedSemaphore::open(utf8).and_then(|s| s.value()).ok()
                })
                .flatten();
            Some(PosixSemInfo {
                value,
                uid: meta.uid(),
                gid: meta.gid(),
                mode: meta.mode() & 0o7777,
                mtime: time(meta.mtime(), meta.mtime_nsec()),
                ctime: time(meta.ctime(), meta.ctime_nsec()),
                file: FileId::of_metadata(&meta),
                name,
            })
        })
        .collect())
}

/// Every POSIX message queue, read from the `mqueue` file system (at `/dev/mqueue`, or wherever
/// `/proc/self/mounts` says one is mounted), or [`PosixMqs::NotMounted`].
///
/// Each queue's file gives the bytes queued and the process to notify; the queue is then opened
/// read-only and non-blocking ([`MessageQueue`]) for its attributes, and closed again: no message
/// is received. Times and counts may change right after they are read.
///
/// # References
/// [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html),
/// [mq_getattr(3)](https://man7.org/linux/man-pages/man3/mq_getattr.3.html)
pub fn posix_mqueues() -> Result<PosixMqs> {
    let mounts = Path::new(PROC_SELF_MOUNTS);
    match mqueue_mount_point(&read_text(mounts)?) {
        Some(dir) => posix_mqueues_in(&dir, true).map(PosixMqs::Listed),
        None => Ok(PosixMqs::NotMounted),
    }
}

/// The queues of an `mqueue` file system mounted at `dir`; with `open`, their attributes too.
pub(crate) fn posix_mqueues_in(dir: &Path, open: bool) -> Result<Vec<PosixMqInfo>> {
    let mut out = Vec::new();
    for (file_name, meta) in regular_files(dir)? {
        let path = dir.join(&file_name);
        let status = match std::fs::read_to_string(&path) {
            Ok(text) => Some(parse_mq_status(&text, &path)?),
            // Removed since it was listed.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            // Another user's queue without read permission: listed with what stat told.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => None,
            Err(e) => return Err(Error::os("read", Object::Path(path.into()), e)),
        };
        let name = slash(&file_name);
        let utf8 = name.to_str().filter(|_| open && status.is_some());
        // mq_open takes UTF-8 names only: another's attributes stay unknown.
        let attr = utf8.and_then(|utf8| {
            MessageQueue::options()
                .read_only()
                .nonblocking(true)
                .open(utf8)
                .and_then(|q| q.attr())
                .ok()
        });
        out.push(PosixMqInfo {
            used_bytes: status.map(|s| s.used_bytes),
            messages: attr.map(|a| a.current_messages as u64),
            max_messages: attr.map(|a| a.max_messages as u64),
            message_size: attr.map(|a| a.message_size as u64),
            notify_pid: status.and_then(|s| s.notify_pid),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            file: FileId::of_metadata(&meta),
            name,
        });
    }
    Ok(out)
}

/// Where an `mqueue` file system is mounted, from the text of `/proc/self/mounts`: `/dev/mqueue`
/// if it is one of them, else the first; `None` if none is mounted.
pub fn mqueue_mount_point(mounts: &str) -> Option<PathBuf> {
    let points: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_source, point, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            (fstype == "mqueue").then(|| unescape_mount_field(point))
        })
        .collect();
    points
        .iter()
        .find(|p| p.as_path() == Path::new(DEV_MQUEUE))
        .or(points.first())
        .cloned()
}

/// A field of the mount table, where the kernel writes space, tab, newline and backslash as
/// three octal digits after a backslash (`\040`).
fn unescape_mount_field(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// What the file of a message queue says: `QSIZE:129 NOTIFY:0 SIGNO:0 NOTIFY_PID:0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MqStatus {
    /// `QSIZE`: bytes queued.
    pub(crate) used_bytes: u64,
    /// `NOTIFY_PID`, when not 0.
    pub(crate) notify_pid: Option<u32>,
}

/// Parses the text of a queue's file in the `mqueue` file system; `file` is named in errors.
pub(crate) fn parse_mq_status(text: &str, file: &Path) -> Result<MqStatus> {
    let mut qsize = None;
    let mut notify_pid = None;
    for field in text.split_whitespace() {
        let Some((name, value)) = field.split_once(':') else {
            return Err(malformed(file, 1, format!("{field:?} is not NAME:VALUE")));
        };
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| malformed(file, 1, format!("{name}: {value:?} is not a number")))
        };
        match name {
            "QSIZE" => qsize = Some(number()?),
            "NOTIFY_PID" => {
                notify_pid = Some(
                    u32::try_from(number()?)
                        .map_err(|_| malformed(file, 1, "NOTIFY_PID is not a PID"))?,
                )
            }
            _ => {}
        }
    }
    Ok(MqStatus {
        used_bytes: qsize.ok_or_else(|| malformed(file, 1, "no QSIZE field"))?,
        notify_pid: notify_pid.filter(|&p| p != 0),
    })
}

/// `/NAME` for the file `NAME`.
fn slash(file_name: &OsStr) -> OsString {
    let mut name = OsString::from("/");
    name.push(file_name);
    name
}

/// The regular files of `dir`, and their metadata (symbolic links are not followed). Files
/// removed while the directory is read are skipped.
fn regular_files(dir: &Path) -> Result<Vec<(OsString, Metadata)>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::os("read_dir", Object::Path(dir.into()), e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::os("read_dir", Object::Path(dir.into()), e))?;
        let name = entry.file_name();
        let meta = match std::fs::symlink_metadata(entry.path()) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::os("stat", Object::Path(entry.path().into()), e)),
        };
        if meta.file_type().is_file() {
            out.push((name, meta));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A file time from `stat` (seconds and nanoseconds since the epoch, either side of it).
fn time(secs: i64, nsecs: i64) -> SystemTime {
    let nanos = Duration::from_nanos(nsecs.clamp(0, 999_999_999) as u64);
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos
    }
}

/// The processes using each POSIX object of the listings right now: file id → [`Users`], for the
/// objects with at least one user.
///
/// One pass over `/proc/<pid>/maps` of every process ([`scan_maps`](super::scan_maps)) finds the
/// mappings of `/dev/shm` files with an object's device and inode (glibc maps a semaphore under a
/// temporary name, later marked `(deleted)`, so the path alone would miss it), and one pass over
/// `/proc/<pid>/fd` the descriptors: a link to `/dev/shm/…`, `/dev/mqueue/NAME` or `/NAME` (the
/// form a queue descriptor from `mq_open` takes) is followed with `stat` and kept if its device and
/// inode are an object's. Other descriptors are not followed, so a hung network file system cannot
/// stall the scan.
///
/// Processes that exit meanwhile, and those this process may not inspect (another user's, without
/// privilege), are not seen.
///
/// # References
/// [proc_pid_maps(5)](https://man7.org/linux/man-pages/man5/proc_pid_maps.5.html),
/// [proc_pid_fd(5)](https://man7.org/linux/man-pages/man5/proc_pid_fd.5.html)
pub fn posix_users(
    shm: &[PosixShmInfo],
    sem: &[PosixSemInfo],
    mq: &[PosixMqInfo],
) -> Result<BTreeMap<FileId, Users>> {
    let files: BTreeSet<FileId> = shm
        .iter()
        .map(|s| s.file)
        .chain(sem.iter().map(|s| s.file))
        .chain(mq.iter().map(|q| q.file))
        .collect();
    let mq_names: BTreeSet<&OsStr> = mq.iter().map(|q| q.name.as_os_str()).collect();
    users_in(Path::new(PROC), &files, &mq_names)
}

/// [`posix_users`] over a procfs mounted at `root`.
pub(crate) fn users_in(
    root: &Path,
    files: &BTreeSet<FileId>,
    mq_names: &BTreeSet<&OsStr>,
) -> Result<BTreeMap<FileId, Users>> {
    let mut users: BTreeMap<FileId, Users> = BTreeMap::new();
    if files.is_empty() {
        return Ok(users);
    }
    let mapped = scan_maps_in(root, |m| {
        let id = FileId::of_mapping(m);
        (m.path.as_bytes().starts_with(b"/dev/shm/") && files.contains(&id)).then_some(id)
    })?;
    for (id, pids) in mapped {
        users.entry(id).or_default().mapped = pids;
    }
    let open = scan_fds_in(root, |target| {
        let t = target.as_bytes();
        t.starts_with(b"/dev/shm/") || t.starts_with(b"/dev/mqueue/") || mq_names.contains(target)
    })?;
    for (id, pids) in open {
        if files.contains(&id) {
            users.entry(id).or_default().open = pids;
        }
    }
    Ok(users)
}

/// Reads the descriptor links of every process under `root` once: for each link whose target
/// (without `" (deleted)"`) `follow` accepts, the file it leads to is `stat`ed; the answer maps
/// each file id to the sorted PIDs holding it. Processes that exit or cannot be inspected are
/// skipped.
fn scan_fds_in(
    root: &Path,
    mut follow: impl FnMut(&OsStr) -> bool,
) -> Result<BTreeMap<FileId, Vec<u32>>> {
    let dir =
        std::fs::read_dir(root).map_err(|e| Error::os("read_dir", Object::Path(root.into()), e))?;
    let mut found: BTreeMap<FileId, Vec<u32>> = BTreeMap::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let bytes = target.as_os_str().as_bytes();
            let bytes = bytes.strip_suffix(b" (deleted)").unwrap_or(bytes);
            if !follow(OsStr::from_bytes(bytes)) {
                continue;
            }
            if let Ok(meta) = std::fs::metadata(fd.path()) {
                let pids = found.entry(FileId::of_metadata(&meta)).or_default();
                if pids.last() != Some(&pid) {
                    pids.push(pid);
                }
            }
        }
    }
    for pids in found.values_mut() {
        pids.sort_unstable();
        pids.dedup();
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    use ipckit_testkit::{unique_path, Defer};

    fn temp_dir(what: &str) -> (PathBuf, Defer<impl FnMut()>) {
        let dir = unique_path(what);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.clone();
        (
            dir,
            Defer(move || {
                let _ = std::fs::remove_dir_all(&d);
            }),
        )
    }

    #[test]
    fn names_get_one_leading_slash_and_are_checked() {
        assert_eq!(posix_name(PosixKind::Shm, "a").unwrap(), "/a");
        assert_eq!(posix_name(PosixKind::Mq, "/a").unwrap(), "/a");
        for bad in ["", "/", "//a", "a/b", "/a/b", ".", "..", "/..", "a\0b"] {
            let e = posix_name(PosixKind::Shm, bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        let longest_sem = "s".repeat(SEM_NAME_MAX);
        assert!(posix_name(PosixKind::Sem, &longest_sem).is_ok());
        let e = posix_name(PosixKind::Sem, format!("{longest_sem}s")).unwrap_err();
        assert!(e.to_string().contains("SEM_NAME_MAX"), "{e}");
        assert!(posix_name(PosixKind::Mq, format!("{longest_sem}s")).is_ok());
        assert!(posix_name(PosixKind::Shm, "m".repeat(SHM_NAME_MAX)).is_ok());
        assert!(posix_name(PosixKind::Shm, "m".repeat(SHM_NAME_MAX + 1)).is_err());
    }

    #[test]
    fn names_that_are_not_utf8_are_listed_checked_and_shown_escaped() {
        let (dir, _cleanup) = temp_dir("devshm-odd");
        let odd = OsStr::from_bytes(b"a\xffb\nc");
        std::fs::write(dir.join(odd), [0u8; 4]).unwrap();
        let mut sem_file = b"sem.".to_vec();
        sem_file.extend_from_slice(b"s\xfe");
        std::fs::write(dir.join(OsStr::from_bytes(&sem_file)), [0u8; 32]).unwrap();
        let shm = posix_shm_objects_in(&dir).unwrap();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0].name.as_bytes(), b"/a\xffb\nc");
        assert_eq!(display_name(&shm[0].name), "/a\\xffb\nc");
        let sem = posix_semaphores_in(&dir).unwrap();
        assert_eq!(sem[0].name.as_bytes(), b"/s\xfe");

        let full = posix_name(PosixKind::Shm, odd).unwrap();
        assert_eq!(full.as_bytes(), b"/a\xffb\nc");
        assert_eq!(posix_name(PosixKind::Mq, &full).unwrap(), full);
        assert_eq!(posix_name(PosixKind::Shm, OsStr::new("ok")).unwrap(), "/ok");
        for bad in [&b"/a/\xff"[..], b"\xff/", b"//\xff"] {
            let e = posix_name(PosixKind::Shm, OsStr::from_bytes(bad)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        let long = vec![0xffu8; SHM_NAME_MAX + 1];
        assert!(posix_name(PosixKind::Shm, OsStr::from_bytes(&long)).is_err());
        assert!(posix_name(PosixKind::Shm, OsStr::from_bytes(&long[1..])).is_ok());
        assert_eq!(display_name(OsStr::new("/plain")), "/plain");
    }

    #[test]
    fn shm_dir_splits_into_objects_and_semaphores_skipping_other_files() {
        let (dir, _cleanup) = temp_dir("devshm");
        std::fs::write(dir.join("data"), [0u8; 100]).unwrap();
        std::fs::write(dir.join("sem.lock"), [0u8; 32]).unwrap();
        std::fs::write(dir.join("sem."), [0u8; 32]).unwrap();
        std::fs::create_dir(dir.join("subdir")).unwrap();
        std::os::unix::fs::symlink(dir.join("data"), dir.join("link")).unwrap();

        let shm = posix_shm_objects_in(&dir).unwrap();
        assert_eq!(shm.len(), 1, "{shm:?}");
        assert_eq!(
            (shm[0].name.as_os_str(), shm[0].size),
            (OsStr::new("/data"), 100)
        );
        let meta = std::fs::metadata(dir.join("data")).unwrap();
        assert_eq!(shm[0].file, FileId::of_metadata(&meta));
        assert_eq!(shm[0].permissions(), meta.mode() & 0o777);
        assert_eq!(shm[0].mtime, meta.modified().unwrap());

        let sem = posix_semaphores_in(&dir).unwrap();
        let names: Vec<&OsStr> = sem.iter().map(|s| s.name.as_os_str()).collect();
        assert_eq!(names, ["/lock"]);
        assert_eq!(sem[0].value, None, "values are read only from /dev/shm");
    }

    #[test]
    fn queue_files_give_bytes_and_notify_pid() {
        let f = Path::new("/dev/mqueue/q");
        let s = parse_mq_status(
            "QSIZE:129        NOTIFY:0     SIGNO:0     NOTIFY_PID:0     \n",
            f,
        )
        .unwrap();
        assert_eq!(
            s,
            MqStatus {
                used_bytes: 129,
                notify_pid: None
            }
        );
        let s = parse_mq_status("QSIZE:0 NOTIFY:2 SIGNO:10 NOTIFY_PID:4242 FUTURE:x\n", f).unwrap();
        assert_eq!(
            s,
            MqStatus {
                used_bytes: 0,
                notify_pid: Some(4242)
            }
        );
        for bad in [
            "",
            "NOTIFY:0\n",
            "QSIZE:-1",
            "QSIZE:x",
            "QSIZE 1",
            "QSIZE:1 NOTIFY_PID:99999999999",
        ] {
            let e = parse_mq_status(bad, f).unwrap_err();
            assert_eq!(e.object(), &Object::Path(f.into()), "{bad:?}");
        }
    }

    #[test]
    fn queue_dir_lists_each_queue_file() {
        let (dir, _cleanup) = temp_dir("mqueue");
        std::fs::write(
            dir.join("jobs"),
            "QSIZE:12 NOTIFY:0 SIGNO:0 NOTIFY_PID:77\n",
        )
        .unwrap();
        std::fs::write(dir.join("bad"), "garbage").unwrap();
        assert!(posix_mqueues_in(&dir, false).is_err());
        std::fs::remove_file(dir.join("bad")).unwrap();
        let q = posix_mqueues_in(&dir, false).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(
            (q[0].name.as_os_str(), q[0].used_bytes),
            (OsStr::new("/jobs"), Some(12))
        );
        assert_eq!(q[0].notify_pid, Some(77));
        assert_eq!(q[0].messages, None);
    }

    #[test]
    fn mqueue_mount_is_found_in_the_mount_table() {
        let none = "proc /proc proc rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\n";
        assert_eq!(mqueue_mount_point(none), None);
        let elsewhere = "mqueue /mnt/my\\040queues mqueue rw 0 0\n";
        assert_eq!(
            mqueue_mount_point(elsewhere),
            Some(PathBuf::from("/mnt/my queues"))
        );
        let both = format!("{elsewhere}none /dev/mqueue mqueue rw,relatime 0 0\n");
        assert_eq!(mqueue_mount_point(&both), Some(PathBuf::from(DEV_MQUEUE)));
        assert_eq!(
            unescape_mount_field("a\\134b\\011"),
            PathBuf::from("a\\b\t")
        );
        assert_eq!(
            unescape_mount_field("trailing\\"),
            PathBuf::from("trailing\\")
        );
    }

    #[test]
    fn users_are_matched_by_device_and_inode_from_maps_and_descriptors() {
        let (root, _cleanup) = temp_dir("proc");
        let (files_dir, _cleanup_files) = temp_dir("files");
        let shm_file = files_dir.join("shm");
        let other = files_dir.join("other");
        std::fs::write(&shm_file, b"x").unwrap();
        std::fs::write(&other, b"y").unwrap();
        let id = FileId::of_metadata(&std::fs::metadata(&shm_file).unwrap());
        let other_id = FileId::of_metadata(&std::fs::metadata(&other).unwrap());
        let (major, minor) = (rustix::fs::major(id.dev), rustix::fs::minor(id.dev));
        let maps_line = |ino: u64, path: &str| {
            format!("1000-2000 rw-s 00000000 {major:02x}:{minor:02x} {ino} {path}\n")
        };
        let proc_dir = |pid: &str, maps: String| {
            std::fs::create_dir_all(root.join(pid).join("fd")).unwrap();
            std::fs::write(root.join(pid).join("maps"), maps).unwrap();
        };
        // 10 maps it under a temporary name (as glibc does for semaphores); 11 maps another
        // file; 12 maps it under a path outside /dev/shm (ignored); 13 holds it open.
        proc_dir("10", maps_line(id.ino, "/dev/shm/sem.Xy12ab (deleted)"));
        proc_dir("11", maps_line(other_id.ino, "/dev/shm/shm"));
        proc_dir("12", maps_line(id.ino, "/tmp/shm"));
        proc_dir("13", String::new());
        // The fd links lead to real files: a link whose target is the object's name is followed.
        let fd_link = |pid: &str, fd: &str, target: &Path| {
            std::os::unix::fs::symlink(target, root.join(pid).join("fd").join(fd)).unwrap();
        };
        fd_link("13", "3", &shm_file);
        fd_link("11", "4", &other);

        let files = BTreeSet::from([id]);
        // Targets under the temporary directory stand for /dev/shm here.
        let found = {
            let mapped = scan_maps_in(&root, |m| {
                let f = FileId::of_mapping(m);
                (m.path.as_bytes().starts_with(b"/dev/shm/") && files.contains(&f)).then_some(f)
            })
            .unwrap();
            let open = scan_fds_in(&root, |t| {
                t.as_bytes().starts_with(files_dir.as_os_str().as_bytes())
            })
            .unwrap();
            (mapped, open)
        };
        assert_eq!(found.0.into_iter().collect::<Vec<_>>(), [(id, vec![10])]);
        assert_eq!(found.1.get(&id), Some(&vec![13]));
        assert_eq!(found.1.get(&other_id), Some(&vec![11]));

        // Through users_in, only /dev/shm, /dev/mqueue and queue names are followed.
        let users = users_in(&root, &files, &BTreeSet::new()).unwrap();
        assert_eq!(users.get(&id).map(|u| u.mapped.clone()), Some(vec![10]));
        assert_eq!(users[&id].open, Vec::<u32>::new());
        assert!(users_in(&root, &BTreeSet::new(), &BTreeSet::new())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn users_union_their_pids() {
        let u = Users {
            mapped: vec![3, 9],
            open: vec![1, 3],
        };
        assert_eq!(u.pids(), [1, 3, 9]);
        assert!(!u.is_empty());
        assert!(Users::default().is_empty());
    }

    #[test]
    fn stat_times_before_and_after_the_epoch() {
        assert_eq!(time(1, 5), UNIX_EPOCH + Duration::new(1, 5));
        assert_eq!(time(-1, 0), UNIX_EPOCH - Duration::from_secs(1));
        assert_eq!(
            time(-1, 500_000_000),
            UNIX_EPOCH - Duration::from_millis(500)
        );
    }
}
