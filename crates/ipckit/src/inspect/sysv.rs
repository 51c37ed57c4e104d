//! The System V tables of `/proc/sysvipc` and the processes attached to each segment.
//!
//! The kernel prints one line per object under a header naming the columns; keys are signed
//! decimal, modes octal, times seconds since the epoch (0 = never). Columns are found by name.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use super::procfs::{count_maps_in, read_text, scan_maps, MapsEntry, Table, PROC};
use crate::error::Result;
use crate::key::Key;
use crate::sysv::shm::{SHM_DEST, SHM_LOCKED};
use crate::sysv::Perm;

/// The table of shared-memory segments.
pub const PROC_SYSVIPC_SHM: &str = "/proc/sysvipc/shm";
/// The table of semaphore sets.
pub const PROC_SYSVIPC_SEM: &str = "/proc/sysvipc/sem";
/// The table of message queues.
pub const PROC_SYSVIPC_MSG: &str = "/proc/sysvipc/msg";

/// A System V shared-memory segment: one line of `/proc/sysvipc/shm`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShmInfo {
    /// The key it was created with ([`Key::PRIVATE`] for private segments).
    pub key: Key,
    /// The shmid.
    pub id: i32,
    /// Mode: permission bits, plus `SHM_DEST` (0o1000) and `SHM_LOCKED` (0o2000).
    pub mode: u32,
    /// Size in bytes, as requested at creation.
    pub size: u64,
    /// PID of the creator.
    pub cpid: u32,
    /// PID of the last process to attach or detach.
    pub lpid: u32,
    /// Number of attachments.
    pub nattch: u64,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Creator's user id.
    pub cuid: u32,
    /// Creator's group id.
    pub cgid: u32,
    /// Time of the last attach.
    pub atime: Option<SystemTime>,
    /// Time of the last detach.
    pub dtime: Option<SystemTime>,
    /// Time of creation or of the last change by `IPC_SET`.
    pub ctime: Option<SystemTime>,
    /// Bytes resident in memory.
    pub rss: u64,
    /// Bytes swapped out.
    pub swap: u64,
}

impl ShmInfo {
    /// The permission bits alone (`mode & 0o777`).
    pub fn permissions(&self) -> u32 {
        self.mode & 0o777
    }

    /// Whether the segment is marked for removal (`SHM_DEST`): it goes when the last process
    /// detaches, and cannot be attached by key any more.
    pub fn is_marked_for_removal(&self) -> bool {
        self.mode & SHM_DEST != 0
    }

    /// Whether the segment is locked in memory (`SHM_LOCKED`).
    pub fn is_locked(&self) -> bool {
        self.mode & SHM_LOCKED != 0
    }

    /// Key, owner, creator and mode, as `shmctl(IPC_STAT)` reports them.
    pub fn perm(&self) -> Perm {
        perm(
            self.key,
            self.mode,
            [self.uid, self.gid, self.cuid, self.cgid],
        )
    }
}

/// A System V semaphore set: one line of `/proc/sysvipc/sem`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SemInfo {
    /// The key it was created with ([`Key::PRIVATE`] for private sets).
    pub key: Key,
    /// The semid.
    pub id: i32,
    /// Mode: the permission bits.
    pub mode: u32,
    /// Number of semaphores in the set.
    pub nsems: u64,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Creator's user id.
    pub cuid: u32,
    /// Creator's group id.
    pub cgid: u32,
    /// Time of the last `semop`.
    pub otime: Option<SystemTime>,
    /// Time of creation or of the last change (`IPC_SET`, `SETVAL`, `SETALL`).
    pub ctime: Option<SystemTime>,
}

impl SemInfo {
    /// The permission bits alone (`mode & 0o777`).
    pub fn permissions(&self) -> u32 {
        self.mode & 0o777
    }

    /// Key, owner, creator and mode, as `semctl(IPC_STAT)` reports them.
    pub fn perm(&self) -> Perm {
        perm(
            self.key,
            self.mode,
            [self.uid, self.gid, self.cuid, self.cgid],
        )
    }
}

/// A System V message queue: one line of `/proc/sysvipc/msg`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MsgInfo {
    /// The key it was created with ([`Key::PRIVATE`] for private queues).
    pub key: Key,
    /// The msqid.
    pub id: i32,
    /// Mode: the permission bits.
    pub mode: u32,
    /// Bytes of message text in the queue.
    pub cbytes: u64,
    /// Messages in the queue.
    pub qnum: u64,
    /// PID of the last sender.
    pub lspid: u32,
    /// PID of the last receiver.
    pub lrpid: u32,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Creator's user id.
    pub cuid: u32,
    /// Creator's group id.
    pub cgid: u32,
    /// Time of the last `msgsnd`.
    pub stime: Option<SystemTime>,
    /// Time of the last `msgrcv`.
    pub rtime: Option<SystemTime>,
    /// Time of creation or of the last change by `IPC_SET`.
    pub ctime: Option<SystemTime>,
}

impl MsgInfo {
    /// The permission bits alone (`mode & 0o777`).
    pub fn permissions(&self) -> u32 {
        self.mode & 0o777
    }

    /// Key, owner, creator and mode, as `msgctl(IPC_STAT)` reports them.
    pub fn perm(&self) -> Perm {
        perm(
            self.key,
            self.mode,
            [self.uid, self.gid, self.cuid, self.cgid],
        )
    }
}

fn perm(key: Key, mode: u32, [uid, gid, cuid, cgid]: [u32; 4]) -> Perm {
    Perm {
        key,
        uid,
        gid,
        cuid,
        cgid,
        mode,
    }
}

/// Every System V shared-memory segment of this IPC namespace, read from `/proc/sysvipc/shm`.
///
/// # References
/// [proc_sysvipc(5)](https://man7.org/linux/man-pages/man5/proc_sysvipc.5.html)
pub fn shm_segments() -> Result<Vec<ShmInfo>> {
    let file = Path::new(PROC_SYSVIPC_SHM);
    parse_shm(&read_text(file)?, file)
}

/// Every System V semaphore set of this IPC namespace, read from `/proc/sysvipc/sem`.
///
/// # References
/// [proc_sysvipc(5)](https://man7.org/linux/man-pages/man5/proc_sysvipc.5.html)
pub fn sem_sets() -> Result<Vec<SemInfo>> {
    let file = Path::new(PROC_SYSVIPC_SEM);
    parse_sem(&read_text(file)?, file)
}

/// Every System V message queue of this IPC namespace, read from `/proc/sysvipc/msg`.
///
/// # References
/// [proc_sysvipc(5)](https://man7.org/linux/man-pages/man5/proc_sysvipc.5.html)
pub fn msg_queues() -> Result<Vec<MsgInfo>> {
    let file = Path::new(PROC_SYSVIPC_MSG);
    parse_msg(&read_text(file)?, file)
}

/// Parses the text of `/proc/sysvipc/shm`; `file` is named in errors.
pub fn parse_shm(text: &str, file: &Path) -> Result<Vec<ShmInfo>> {
    let t = Table::new(file, text)?;
    let [key, id, mode, size, cpid, lpid, nattch, uid, gid, cuid, cgid, atime, dtime, ctime, rss, swap] =
        t.columns([
            "key", "shmid", "perms", "size", "cpid", "lpid", "nattch", "uid", "gid", "cuid",
            "cgid", "atime", "dtime", "ctime", "rss", "swap",
        ])?;
    t.rows()
        .map(|row| {
            let r = row?;
            Ok(ShmInfo {
                key: r.key(key)?,
                id: r.num(id)?,
                mode: r.mode(mode)?,
                size: r.num(size)?,
                cpid: r.num(cpid)?,
                lpid: r.num(lpid)?,
                nattch: r.num(nattch)?,
                uid: r.num(uid)?,
                gid: r.num(gid)?,
                cuid: r.num(cuid)?,
                cgid: r.num(cgid)?,
                atime: r.time(atime)?,
                dtime: r.time(dtime)?,
                ctime: r.time(ctime)?,
                rss: r.num(rss)?,
                swap: r.num(swap)?,
            })
        })
        .collect()
}

/// Parses the text of `/proc/sysvipc/sem`; `file` is named in errors.
pub fn parse_sem(text: &str, file: &Path) -> Result<Vec<SemInfo>> {
    let t = Table::new(file, text)?;
    let [key, id, mode, nsems, uid, gid, cuid, cgid, otime, ctime] = t.columns([
        "key", "semid", "perms", "nsems", "uid", "gid", "cuid", "cgid", "otime", "ctime",
    ])?;
    t.rows()
        .map(|row| {
            let r = row?;
            Ok(SemInfo {
                key: r.key(key)?,
                id: r.num(id)?,
                mode: r.mode(mode)?,
                nsems: r.num(nsems)?,
                uid: r.num(uid)?,
                gid: r.num(gid)?,
                cuid: r.num(cuid)?,
                cgid: r.num(cgid)?,
                otime: r.time(otime)?,
                ctime: r.time(ctime)?,
            })
        })
        .collect()
}

/// Parses the text of `/proc/sysvipc/msg`; `file` is named in errors.
pub fn parse_msg(text: &str, file: &Path) -> Result<Vec<MsgInfo>> {
    let t = Table::new(file, text)?;
    let [key, id, mode, cbytes, qnum, lspid, lrpid, uid, gid, cuid, cgid, stime, rtime, ctime] = t
        .columns([
            "key", "msqid", "perms", "cbytes", "qnum", "lspid", "lrpid", "uid", "gid", "cuid",
            "cgid", "stime", "rtime", "ctime",
        ])?;
    t.rows()
        .map(|row| {
            let r = row?;
            Ok(MsgInfo {
                key: r.key(key)?,
                id: r.num(id)?,
                mode: r.mode(mode)?,
                cbytes: r.num(cbytes)?,
                qnum: r.num(qnum)?,
                lspid: r.num(lspid)?,
                lrpid: r.num(lrpid)?,
                uid: r.num(uid)?,
                gid: r.num(gid)?,
                cuid: r.num(cuid)?,
                cgid: r.num(cgid)?,
                stime: r.time(stime)?,
                rtime: r.time(rtime)?,
                ctime: r.time(ctime)?,
            })
        })
        .collect()
}

/// The shmid of a mapping of a System V segment: the kernel names the segment's file
/// `/SYSV%08x` (its key) and gives it the shmid as inode number.
pub fn sysv_shmid_of_mapping(m: &MapsEntry<'_>) -> Option<i32> {
    let hex = m.path.as_bytes().strip_prefix(b"/SYSV")?;
    if hex.len() != 8 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    i32::try_from(m.inode).ok()
}

/// The processes attached to each System V shared-memory segment right now: shmid → sorted PIDs.
///
/// One pass over `/proc/<pid>/maps` of every process (see [`scan_maps`]), keeping mappings of
/// `/SYSV%08x` files, whose inode number is the shmid. Processes whose maps cannot be read
/// (another user's, without privilege) are not counted, so a PID list may be shorter than
/// [`ShmInfo::nattch`]; a process attached twice is listed once.
///
/// # References
/// [proc_pid_maps(5)](https://man7.org/linux/man-pages/man5/proc_pid_maps.5.html),
/// [shmat(2)](https://man7.org/linux/man-pages/man2/shmat.2.html)
pub fn shm_attached_pids() -> Result<BTreeMap<i32, Vec<u32>>> {
    scan_maps(sysv_shmid_of_mapping)
}

/// How many times one process has a System V segment attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attachments {
    /// The process.
    pub pid: u32,
    /// Its attachments of the segment: its mappings of the segment's file at offset 0. Each
    /// `shmat` makes one; a mapping that `mprotect` or `munmap` of a part split in pieces is
    /// still one, as only its first piece starts at offset 0.
    pub count: u32,
}

/// The processes attached to each System V shared-memory segment right now and how many times
/// each: shmid → [`Attachments`] sorted by PID. A process that attached a segment many times
/// and never detached (a leak `nattch` shows only as a sum) stands out with a large count.
///
/// The same scan as [`shm_attached_pids`], with the same limits: processes whose maps this
/// process may not read are not counted.
///
/// # References
/// [proc_pid_maps(5)](https://man7.org/linux/man-pages/man5/proc_pid_maps.5.html),
/// [shmat(2)](https://man7.org/linux/man-pages/man2/shmat.2.html)
pub fn shm_attachments() -> Result<BTreeMap<i32, Vec<Attachments>>> {
    shm_attachments_in(Path::new(PROC))
}

/// [`shm_attachments`] over a procfs mounted at `root`.
pub(crate) fn shm_attachments_in(root: &Path) -> Result<BTreeMap<i32, Vec<Attachments>>> {
    let counts = count_maps_in(root, |m| sysv_shmid_of_mapping(m).filter(|_| m.offset == 0))?;
    Ok(counts
        .into_iter()
        .map(|(id, counts)| {
            let v = counts
                .into_iter()
                .map(|(pid, count)| Attachments { pid, count })
                .collect();
            (id, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::error::Object;

    const SHM: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
    -559038737          7   1600                  4096  1234  1240      2  1000   100     0     0 1700000100          0 1700000000                  8192                     0
             0          8    600                    10    99    99      0     0     0     0     0          0          0 1700000000                     0                  4096
";

    fn at(secs: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn shm_table_with_a_negative_key() {
        let v = parse_shm(SHM, Path::new(PROC_SYSVIPC_SHM)).unwrap();
        assert_eq!(v.len(), 2);
        let s = &v[0];
        assert_eq!(s.key, Key::new(0xdeadbeef_u32 as i32));
        assert_eq!(s.key.to_string(), "0xdeadbeef");
        assert_eq!((s.id, s.mode, s.size), (7, 0o1600, 4096));
        assert_eq!((s.cpid, s.lpid, s.nattch), (1234, 1240, 2));
        assert_eq!((s.uid, s.gid, s.cuid, s.cgid), (1000, 100, 0, 0));
        assert_eq!(
            (s.atime, s.dtime, s.ctime),
            (at(1700000100), None, at(1700000000))
        );
        assert_eq!((s.rss, s.swap), (8192, 0));
        assert_eq!(s.permissions(), 0o600);
        assert!(s.is_marked_for_removal() && !s.is_locked());
        assert_eq!(s.perm().cuid, 0);
        assert!(v[1].key.is_private());
        assert!(!v[1].is_marked_for_removal());
        assert_eq!(v[1].swap, 4096);
    }

    #[test]
    fn shm_table_with_an_extra_column_still_parses() {
        let text = "key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap future\n\
                    1 2 644 3 4 5 6 7 8 9 10 11 12 13 14 15 whatever\n";
        let v = parse_shm(text, Path::new(PROC_SYSVIPC_SHM)).unwrap();
        assert_eq!(
            (v[0].key, v[0].id, v[0].mode, v[0].swap),
            (Key::new(1), 2, 0o644, 15)
        );
    }

    #[test]
    fn shm_table_missing_a_column_is_an_error_naming_the_file() {
        let text =
            "key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss\n\
                    1 2 644 3 4 5 6 7 8 9 10 11 12 13 14\n";
        let e = parse_shm(text, Path::new(PROC_SYSVIPC_SHM)).unwrap_err();
        assert_eq!(
            e.object(),
            &Object::Path(std::path::Path::new(PROC_SYSVIPC_SHM).into())
        );
        assert!(e.to_string().contains("no column \"swap\""), "{e}");
    }

    #[test]
    fn line_missing_a_field_is_an_error_naming_the_line() {
        let text = "key semid perms nsems uid gid cuid cgid otime ctime\n\
                    1 2 600 3 0 0 0 0 0 5\n\
                    1 2 600 3 0 0 0 0 5\n";
        let e = parse_sem(text, Path::new(PROC_SYSVIPC_SEM)).unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with("parse /proc/sysvipc/sem: line 3: 9 fields"),
            "{s}"
        );
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        for (line, col) in [
            ("x 2 600 3 0 0 0 0 0 5", "key"),
            ("4294967295 2 600 3 0 0 0 0 0 5", "key"),
            ("1 2 680 3 0 0 0 0 0 5", "perms"),
            ("1 2 600 -3 0 0 0 0 0 5", "nsems"),
            ("1 2 600 3 0 0 0 0 -1 5", "otime"),
        ] {
            let text = format!("key semid perms nsems uid gid cuid cgid otime ctime\n{line}\n");
            let e = parse_sem(&text, Path::new(PROC_SYSVIPC_SEM)).unwrap_err();
            assert!(
                e.to_string().contains(&format!("line 2: column \"{col}\"")),
                "{e}"
            );
        }
    }

    #[test]
    fn sem_and_msg_tables() {
        let sem = "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n\
                   \x20     4660      32768   640          3     0     0     0     0          0 1700000000\n";
        let v = parse_sem(sem, Path::new(PROC_SYSVIPC_SEM)).unwrap();
        assert_eq!(
            (v[0].key, v[0].id, v[0].mode, v[0].nsems),
            (Key::new(0x1234), 32768, 0o640, 3)
        );
        assert_eq!((v[0].otime, v[0].ctime), (None, at(1700000000)));

        let msg = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n\
                   \x20       -1          3   666          12          2   501   502     1     2     3     4 1700000001 1700000002 1700000003\n";
        let v = parse_msg(msg, Path::new(PROC_SYSVIPC_MSG)).unwrap();
        let q = &v[0];
        assert_eq!(
            (q.key, q.id, q.mode, q.cbytes, q.qnum),
            (Key::new(-1), 3, 0o666, 12, 2)
        );
        assert_eq!((q.lspid, q.lrpid), (501, 502));
        assert_eq!((q.uid, q.gid, q.cuid, q.cgid), (1, 2, 3, 4));
        assert_eq!(
            (q.stime, q.rtime, q.ctime),
            (at(1700000001), at(1700000002), at(1700000003))
        );
    }

    #[test]
    fn empty_tables_are_empty() {
        let v = parse_msg(
            "key msqid perms cbytes qnum lspid lrpid uid gid cuid cgid stime rtime ctime\n",
            Path::new(PROC_SYSVIPC_MSG),
        )
        .unwrap();
        assert!(v.is_empty());
    }

    #[test]
    fn sysv_mappings_are_recognised_by_path_and_inode() {
        let m = |line: &'static [u8]| MapsEntry::parse(line).unwrap();
        let shmid = |line| sysv_shmid_of_mapping(&m(line));
        assert_eq!(
            shmid(b"1000-2000 rw-s 00000000 00:01 32769 /SYSV0000abcd"),
            Some(32769)
        );
        assert_eq!(
            shmid(b"1000-2000 rw-s 00000000 00:01 7 /SYSV00000000 (deleted)"),
            Some(7)
        );
        assert_eq!(shmid(b"1000-2000 rw-s 00000000 00:01 7 /SYSV0000abc"), None);
        assert_eq!(
            shmid(b"1000-2000 rw-s 00000000 00:01 7 /dev/shm/SYSV0000abcd"),
            None
        );
        assert_eq!(
            shmid(b"1000-2000 rw-s 00000000 00:01 7 /SYSVzzzzzzzz"),
            None
        );
    }

    #[test]
    fn attachments_count_each_mapping_at_offset_zero_per_process() {
        let root = ipckit_testkit::unique_path("proc-attach");
        let _cleanup = ipckit_testkit::Defer(|| {
            let _ = std::fs::remove_dir_all(&root);
        });
        let write = |pid: &str, maps: &str| {
            std::fs::create_dir_all(root.join(pid)).unwrap();
            std::fs::write(root.join(pid).join("maps"), maps).unwrap();
        };
        // 10: segment 7 attached three times, the last one split by mprotect into two lines.
        write(
            "10",
            "1000-2000 rw-s 00000000 00:01 7 /SYSV00000000\n\
             3000-4000 rw-s 00000000 00:01 7 /SYSV00000000 (deleted)\n\
             5000-6000 r--s 00000000 00:01 7 /SYSV00000000\n\
             6000-7000 rw-s 00001000 00:01 7 /SYSV00000000\n\
             8000-9000 rw-s 00000000 00:01 8 /SYSV0000abcd\n",
        );
        write("11", "1000-2000 rw-s 00000000 00:01 7 /SYSV00000000\n");
        let found = shm_attachments_in(&root).unwrap();
        let a = |pid, count| Attachments { pid, count };
        assert_eq!(found[&7], [a(10, 3), a(11, 1)]);
        assert_eq!(found[&8], [a(10, 1)]);
        assert_eq!(found.len(), 2);
    }
}
