//! What ipckit's own reads of a System V segment changed, kept so that [`gc`](super::gc) is not
//! fooled by them.
//!
//! Reading a segment's bytes needs an attachment, and every `shmat`/`shmdt` sets the segment's
//! last-user PID (`shm_lpid`) and its attach and detach times to the reader's: after
//! `ipckit dump`, the segment's last user is the dump, which has exited. The kernel offers no
//! way to put the old values back. So a reader records, in a small file, the segment (id, key,
//! change time), its own PID and the last-user PID it replaced; `gc` then treats a segment whose
//! last user is such a reader as still last used by the PID before it.
//!
//! A record can only make `gc` keep an object (one more PID that must have exited), never
//! remove one sooner, so records written by anyone may be read by anyone. They live in
//! [`SHM_READS_DIR`] when this process may write there (root), else in
//! `$XDG_RUNTIME_DIR/ipckit/shm-reads`; [`shm_reads`] reads both (and, for root, every user's
//! under `/run/user`). Records of segments that no longer exist are removed by the next reader.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Object, Result};
use crate::key::Key;

/// Where readers running as root record their reads.
pub const SHM_READS_DIR: &str = "/run/ipckit/shm-reads";

/// One read of a System V segment by a process that attached it only to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmRead {
    /// The segment's id.
    pub id: i32,
    /// The segment's key.
    pub key: Key,
    /// The segment's change time (`shm_ctime`), whole seconds since the epoch: with id and key,
    /// it tells the segment from a later one that reuses the id.
    pub ctime: Option<u64>,
    /// The PID of the reader, which the segment's `lpid` holds after the read.
    pub reader: u32,
    /// The segment's `lpid` before the read (0: never attached).
    pub lpid_before: u32,
}

impl ShmRead {
    /// The record's file name: `SHMID-READER`.
    fn file_name(&self) -> String {
        format!("{}-{}", self.id, self.reader)
    }

    /// The record's text: `id key ctime reader lpid_before`, ctime `-` when unset.
    fn to_line(self) -> String {
        let ctime = self.ctime.map_or_else(|| "-".to_owned(), |t| t.to_string());
        format!(
            "{} {} {ctime} {} {}\n",
            self.id,
            self.key.value(),
            self.reader,
            self.lpid_before
        )
    }

    /// Parses [`to_line`](Self::to_line)'s text; `None` for anything else.
    fn parse(text: &str) -> Option<ShmRead> {
        let mut f = text.split_whitespace();
        let read = ShmRead {
            id: f.next()?.parse().ok()?,
            key: Key::new(f.next()?.parse().ok()?),
            ctime: match f.next()? {
                "-" => None,
                t => Some(t.parse().ok()?),
            },
            reader: f.next()?.parse().ok()?,
            lpid_before: f.next()?.parse().ok()?,
        };
        f.next().is_none().then_some(read)
    }

    /// Whether this read is of the segment `id` with `key` and `ctime`, and was the last
    /// attach or detach of it (its `lpid` is the reader).
    pub fn explains(&self, id: i32, key: Key, ctime: Option<SystemTime>, lpid: u32) -> bool {
        self.id == id && self.key == key && self.ctime == ctime.map(secs) && self.reader == lpid
    }
}

/// Whole seconds since the epoch (0 before it).
pub(crate) fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The directory this process records its reads in: [`SHM_READS_DIR`] for root, else
/// `$XDG_RUNTIME_DIR/ipckit/shm-reads`; `None` when there is none.
fn own_dir() -> Option<PathBuf> {
    if rustix::process::geteuid().is_root() {
        return Some(PathBuf::from(SHM_READS_DIR));
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())?;
    Some(Path::new(&runtime).join("ipckit").join("shm-reads"))
}

/// Every directory records may be in.
fn all_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(SHM_READS_DIR)];
    if let Some(own) = own_dir() {
        dirs.push(own);
    }
    if let Ok(users) = std::fs::read_dir("/run/user") {
        dirs.extend(
            users
                .flatten()
                .map(|u| u.path().join("ipckit").join("shm-reads")),
        );
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Records `read`, and removes the records of segments not in `existing` (the ids of the
/// segments there are now). Returns the record's path.
///
/// # Errors
/// The directory cannot be made or the file written (there is no `$XDG_RUNTIME_DIR` for a user
/// other than root, for one).
pub fn record_shm_read(read: &ShmRead, existing: &[i32]) -> Result<PathBuf> {
    let dir = own_dir().ok_or_else(|| {
        Error::invalid(
            RECORD_OP,
            Object::ShmId(read.id),
            "no directory to record it in (XDG_RUNTIME_DIR is not set)",
        )
    })?;
    record_in(&dir, read, existing, || {})
}

const RECORD_OP: &str = "record read";

/// How many times [`record_in`] makes its directory again when another process removed it
/// between the making and the writing.
const RECORD_ATTEMPTS: u32 = 8;

/// [`record_shm_read`] into `dir`; `before_write` runs between making the directory and writing
/// the record (a test's way into the race below).
///
/// Another process's [`forget_shm_reads`] removes the directory when it finds it empty, which
/// it may be between our making it and our writing into it: the write then fails with `ENOENT`,
/// and the directory is made again. Once our record is in, the directory is not empty and stays.
fn record_in(
    dir: &Path,
    read: &ShmRead,
    existing: &[i32],
    mut before_write: impl FnMut(),
) -> Result<PathBuf> {
    let path = dir.join(read.file_name());
    let mut attempt = 1;
    // What a removal racing with us yields: the directory gone (ENOENT), or, inside
    // `create_dir_all`, made by another and removed again before it could check (EEXIST).
    let raced = |e: &std::io::Error, attempt: u32| {
        use std::io::ErrorKind::{AlreadyExists, NotFound};
        matches!(e.kind(), NotFound | AlreadyExists) && attempt < RECORD_ATTEMPTS
    };
    loop {
        match std::fs::create_dir_all(dir) {
            Ok(()) => {}
            Err(e) if raced(&e, attempt) => {
                attempt += 1;
                continue;
            }
            Err(e) => return Err(Error::os(RECORD_OP, Object::Path(dir.into()), e)),
        }
        before_write();
        match std::fs::write(&path, read.to_line()) {
            Ok(()) => break,
            Err(e) if raced(&e, attempt) => attempt += 1,
            Err(e) => return Err(Error::os(RECORD_OP, Object::Path(path.as_path().into()), e)),
        }
    }
    forget_stale(dir, read, existing);
    Ok(path)
}

/// Removes the records in `dir` of segments not in `existing` (but never `read`'s own).
fn forget_stale(dir: &Path, read: &ShmRead, existing: &[i32]) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|id| id.parse::<i32>().ok());
            if id.is_some_and(|id| id != read.id && !existing.contains(&id)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Every recorded read that can be found (unreadable or malformed records are skipped).
pub fn shm_reads() -> Vec<ShmRead> {
    all_dirs().iter().flat_map(|d| reads_in(d)).collect()
}

/// The records in `dir`.
fn reads_in(dir: &Path) -> Vec<ShmRead> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| ShmRead::parse(&std::fs::read_to_string(e.path()).ok()?))
        .collect()
}

/// Removes every record of the segment `id` this process can (for a test's cleanup, or after
/// removing the segment).
pub fn forget_shm_reads(id: i32) {
    let prefix = format!("{id}-");
    for dir in all_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        // Leave no empty directory behind (these fail, harmlessly, unless empty).
        let _ = std::fs::remove_dir(&dir);
        if let Some(parent) = dir.parent().filter(|p| p.ends_with("ipckit")) {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_other_text() {
        let read = ShmRead {
            id: 7,
            key: Key::new(-559038737),
            ctime: Some(1_700_000_000),
            reader: 4242,
            lpid_before: 99,
        };
        assert_eq!(ShmRead::parse(&read.to_line()), Some(read));
        let unset = ShmRead {
            ctime: None,
            ..read
        };
        assert_eq!(ShmRead::parse(&unset.to_line()), Some(unset));
        for bad in ["", "7 1 2 3", "7 1 2 3 4 5", "x 1 2 3 4", "7 1 2 3 -4"] {
            assert_eq!(ShmRead::parse(bad), None, "{bad:?}");
        }
        let at = Some(UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
        assert!(read.explains(7, Key::new(-559038737), at, 4242));
        assert!(
            !read.explains(7, Key::new(-559038737), at, 99),
            "used since"
        );
        assert!(!read.explains(8, Key::new(-559038737), at, 4242));
        assert!(
            !read.explains(7, Key::new(-559038737), None, 4242),
            "another segment"
        );
    }

    #[test]
    fn records_in_a_directory_are_read_back() {
        let dir = ipckit_testkit::unique_path("shm-reads");
        let _cleanup = ipckit_testkit::Defer(|| {
            let _ = std::fs::remove_dir_all(&dir);
        });
        std::fs::create_dir_all(&dir).unwrap();
        let read = ShmRead {
            id: 3,
            key: Key::PRIVATE,
            ctime: Some(5),
            reader: 10,
            lpid_before: 0,
        };
        std::fs::write(dir.join(read.file_name()), read.to_line()).unwrap();
        std::fs::write(dir.join("junk"), "not a record").unwrap();
        assert_eq!(reads_in(&dir), [read]);
        assert!(reads_in(&dir.join("missing")).is_empty());
    }

    /// Another process's `forget_shm_reads` removes the directory when it is empty, which it
    /// may be between a reader's making it and writing its record (seen in CI: a dump's record
    /// failed with ENOENT while a test cleaned up). The reader makes the directory again;
    /// records of segments that are gone are removed, its own is kept.
    #[test]
    fn a_record_survives_its_directory_vanishing_before_the_write() {
        let dir = ipckit_testkit::unique_path("shm-reads");
        let _cleanup = ipckit_testkit::Defer(|| {
            let _ = std::fs::remove_dir_all(&dir);
        });
        let read = ShmRead {
            id: 3,
            key: Key::PRIVATE,
            ctime: None,
            reader: 10,
            lpid_before: 0,
        };
        let stale = ShmRead { id: 4, ..read };
        let mut vanished = 0;
        let path = record_in(&dir, &read, &[3], || {
            if vanished < 2 {
                std::fs::remove_dir(&dir).unwrap();
                vanished += 1;
            }
        })
        .unwrap();
        assert_eq!(vanished, 2);
        assert_eq!(reads_in(&dir), [read]);
        assert_eq!(path, dir.join("3-10"));
        // Gone for good: an error after the attempts, not a loop.
        let err = record_in(&dir, &read, &[3], || {
            let _ = std::fs::remove_dir_all(&dir);
        })
        .unwrap_err();
        assert!(err.to_string().contains("No such file"), "{err}");
        // A record of a segment that is gone is removed by the next one.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(stale.file_name()), stale.to_line()).unwrap();
        record_in(&dir, &read, &[3], || {}).unwrap();
        assert_eq!(reads_in(&dir), [read]);
    }
}
