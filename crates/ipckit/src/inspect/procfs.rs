//! Reading `/proc`: header-led tables, files holding numbers, and the memory maps of every process.
//!
//! Everything here is plain text parsing. A file that cannot be read is an [`Error::Os`]; text that
//! does not have the expected shape is an [`Error::InvalidArgument`] naming the file and the line.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Display;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Object, Result};
use crate::key::Key;

/// Where procfs is mounted.
pub(crate) const PROC: &str = "/proc";

/// The error for text in `file` at `line` (1-based) that does not have the expected shape.
pub(crate) fn malformed(file: &Path, line: usize, reason: impl Display) -> Error {
    Error::invalid(
        "parse",
        Object::Path(file.into()),
        format!("line {line}: {reason}"),
    )
}

/// Reads a whole text file.
pub(crate) fn read_text(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).map_err(|e| Error::os("read", Object::Path(file.into()), e))
}

/// Parses a file holding whitespace-separated unsigned numbers on its first line, such as
/// `/proc/sys/kernel/shmmax` (one) or `/proc/sys/kernel/sem` (four).
pub(crate) fn parse_numbers<const N: usize>(file: &Path, text: &str) -> Result<[u64; N]> {
    let fields: Vec<&str> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    if fields.len() != N {
        return Err(malformed(
            file,
            1,
            format!("expected {N} number(s), found {} field(s)", fields.len()),
        ));
    }
    let mut out = [0u64; N];
    for (slot, field) in out.iter_mut().zip(&fields) {
        *slot = field
            .parse()
            .map_err(|_| malformed(file, 1, format!("{field:?} is not an unsigned number")))?;
    }
    Ok(out)
}

/// A table as `/proc/sysvipc/*` prints it: a header line naming the columns, then one line per
/// object with the same number of whitespace-separated fields. Columns are found by name, so a
/// kernel that adds or reorders columns still parses.
pub(crate) struct Table<'a> {
    file: &'a Path,
    header: Vec<&'a str>,
    text: &'a str,
}

impl<'a> Table<'a> {
    /// Reads the header line of `text`, the content of `file`.
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Result<Table<'a>> {
        let header: Vec<&str> = text
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if header.is_empty() {
            return Err(malformed(file, 1, "no header line naming the columns"));
        }
        Ok(Table { file, header, text })
    }

    /// The positions of the columns named `names`; an error names the first one missing.
    pub(crate) fn columns<const N: usize>(&self, names: [&str; N]) -> Result<[usize; N]> {
        let mut out = [0usize; N];
        for (slot, name) in out.iter_mut().zip(names) {
            *slot = self.header.iter().position(|h| *h == name).ok_or_else(|| {
                malformed(self.file, 1, format!("no column {name:?} in the header"))
            })?;
        }
        Ok(out)
    }

    /// The data lines (blank lines skipped), each checked to have as many fields as the header.
    pub(crate) fn rows(&self) -> impl Iterator<Item = Result<Row<'_>>> + '_ {
        self.text
            .lines()
            .enumerate()
            .skip(1)
            .filter(|(_, line)| !line.trim().is_empty())
            .map(move |(i, line)| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let line = i + 1;
                if fields.len() != self.header.len() {
                    return Err(malformed(
                        self.file,
                        line,
                        format!(
                            "{} fields where the header names {} columns",
                            fields.len(),
                            self.header.len()
                        ),
                    ));
                }
                Ok(Row {
                    table: self,
                    line,
                    fields,
                })
            })
    }
}

/// One data line of a [`Table`].
pub(crate) struct Row<'t> {
    table: &'t Table<'t>,
    line: usize,
    fields: Vec<&'t str>,
}

impl Row<'_> {
    fn field(&self, col: usize) -> &str {
        self.fields[col]
    }

    fn bad(&self, col: usize, what: &str) -> Error {
        malformed(
            self.table.file,
            self.line,
            format!(
                "column {:?}: {:?} is not {what}",
                self.table.header[col],
                self.field(col)
            ),
        )
    }

    /// A decimal number of type `T`.
    pub(crate) fn num<T: FromStr>(&self, col: usize) -> Result<T> {
        self.field(col)
            .parse()
            .map_err(|_| self.bad(col, std::any::type_name::<T>()))
    }

    /// A key printed as signed decimal (`%d` of `key_t`).
    pub(crate) fn key(&self, col: usize) -> Result<Key> {
        self.num::<i32>(col)
            .map(Key::new)
            .map_err(|_| self.bad(col, "a signed 32-bit key"))
    }

    /// A mode printed in octal (`%o`).
    pub(crate) fn mode(&self, col: usize) -> Result<u32> {
        u32::from_str_radix(self.field(col), 8).map_err(|_| self.bad(col, "an octal mode"))
    }

    /// A time in seconds since the epoch; 0 means never.
    pub(crate) fn time(&self, col: usize) -> Result<Option<SystemTime>> {
        let secs: u64 = self
            .field(col)
            .parse()
            .map_err(|_| self.bad(col, "a time in seconds"))?;
        Ok((secs != 0).then(|| UNIX_EPOCH + Duration::from_secs(secs)))
    }
}

/// One line of `/proc/<pid>/maps`: a range of a process's address space and what is mapped there.
///
/// ```text
/// 7f3c2a1d2000-7f3c2a1d3000 rw-s 00000000 00:01 32769      /SYSV0000abcd (deleted)
/// start        end          perms offset  dev   inode      path
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MapsEntry<'a> {
    /// First address of the range.
    pub start: u64,
    /// One past the last address of the range.
    pub end: u64,
    /// Access and sharing, as the kernel prints them: `rw-s`, `r-xp` ….
    pub perms: &'a str,
    /// Offset of the range in the mapped file.
    pub offset: u64,
    /// Major number of the device holding the file.
    pub dev_major: u32,
    /// Minor number of the device holding the file.
    pub dev_minor: u32,
    /// Inode number of the file (for a System V segment: its shmid); 0 for anonymous memory.
    pub inode: u64,
    /// The file's path, without the `" (deleted)"` suffix; empty for anonymous memory, and
    /// pseudo-paths such as `[heap]` as the kernel prints them.
    pub path: &'a OsStr,
    /// Whether the kernel marked the path `" (deleted)"`: the file, or System V segment, has been
    /// removed while still mapped.
    pub deleted: bool,
}

impl<'a> MapsEntry<'a> {
    /// Parses one line of `/proc/<pid>/maps`; `None` if it does not have that shape.
    pub fn parse(line: &'a [u8]) -> Option<MapsEntry<'a>> {
        let mut rest = line;
        let mut next = || -> Option<&'a str> {
            let start = rest.iter().position(|b| *b != b' ')?;
            let tail = &rest[start..];
            let len = tail.iter().position(|b| *b == b' ').unwrap_or(tail.len());
            let (field, after) = tail.split_at(len);
            rest = after;
            std::str::from_utf8(field).ok()
        };
        let range = next()?;
        let perms = next()?;
        let offset = next()?;
        let dev = next()?;
        let inode = next()?;
        let (start, end) = range.split_once('-')?;
        let (major, minor) = dev.split_once(':')?;
        let mut path = trim_ascii_start(rest);
        if let Some(stripped) = path.strip_suffix(b"\n") {
            path = stripped;
        }
        let (path, deleted) = match path.strip_suffix(b" (deleted)") {
            Some(p) => (p, true),
            None => (path, false),
        };
        Some(MapsEntry {
            start: u64::from_str_radix(start, 16).ok()?,
            end: u64::from_str_radix(end, 16).ok()?,
            perms,
            offset: u64::from_str_radix(offset, 16).ok()?,
            dev_major: u32::from_str_radix(major, 16).ok()?,
            dev_minor: u32::from_str_radix(minor, 16).ok()?,
            inode: inode.parse().ok()?,
            path: OsStr::from_bytes(path),
            deleted,
        })
    }
}

fn trim_ascii_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

/// Reads `/proc/<pid>/maps` of every process once and groups the processes by what `select` picks
/// out of their mappings: the answer maps each value `select` returned to the sorted PIDs of the
/// processes that have such a mapping.
///
/// Processes that exit during the scan, and those whose maps this process may not read (another
/// user's, without privilege), are skipped: the answer is what could be seen. Only reading the
/// `/proc` directory itself can fail.
///
/// [`shm_attached_pids`](super::shm_attached_pids) is this scan selecting System V segments; a
/// selector matching paths under `/dev/shm` finds the users of POSIX shared memory the same way.
///
/// # References
/// [proc_pid_maps(5)](https://man7.org/linux/man-pages/man5/proc_pid_maps.5.html)
pub fn scan_maps<K: Ord>(
    select: impl FnMut(&MapsEntry<'_>) -> Option<K>,
) -> Result<BTreeMap<K, Vec<u32>>> {
    scan_maps_in(Path::new(PROC), select)
}

/// [`scan_maps`] over a procfs mounted at `root`.
pub(crate) fn scan_maps_in<K: Ord>(
    root: &Path,
    select: impl FnMut(&MapsEntry<'_>) -> Option<K>,
) -> Result<BTreeMap<K, Vec<u32>>> {
    Ok(count_maps_in(root, select)?
        .into_iter()
        .map(|(key, counts)| (key, counts.into_iter().map(|(pid, _)| pid).collect()))
        .collect())
}

/// Like [`scan_maps_in`], with how many of each process's mappings `select` picked: the answer
/// maps each value to `(pid, mappings)` pairs sorted by PID.
pub(crate) fn count_maps_in<K: Ord>(
    root: &Path,
    mut select: impl FnMut(&MapsEntry<'_>) -> Option<K>,
) -> Result<BTreeMap<K, Vec<(u32, u32)>>> {
    let dir =
        std::fs::read_dir(root).map_err(|e| Error::os("read_dir", Object::Path(root.into()), e))?;
    let mut found: BTreeMap<K, Vec<(u32, u32)>> = BTreeMap::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // The process may have exited, or its maps may be another user's: skip it either way.
        let Ok(maps) = std::fs::read(entry.path().join("maps")) else {
            continue;
        };
        for line in maps.split(|b| *b == b'\n') {
            if let Some(key) = MapsEntry::parse(line).as_ref().and_then(&mut select) {
                let counts = found.entry(key).or_default();
                match counts.last_mut() {
                    Some((last, n)) if *last == pid => *n += 1,
                    _ => counts.push((pid, 1)),
                }
            }
        }
    }
    for counts in found.values_mut() {
        counts.sort_unstable();
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/proc/sysvipc/test";

    #[test]
    fn table_finds_columns_by_name_in_any_order() {
        let text = "  b   a  new\n  2   1    x\n\n  4   3    y\n";
        let t = Table::new(Path::new(FILE), text).unwrap();
        let [a, b] = t.columns(["a", "b"]).unwrap();
        let rows: Vec<(u32, u32)> = t
            .rows()
            .map(|r| {
                let r = r.unwrap();
                (r.num(a).unwrap(), r.num(b).unwrap())
            })
            .collect();
        assert_eq!(rows, [(1, 2), (3, 4)]);
    }

    #[test]
    fn table_without_header_or_column_is_an_error_naming_the_file() {
        let e = Table::new(Path::new(FILE), "").err().unwrap();
        assert_eq!(e.object(), &Object::Path(std::path::Path::new(FILE).into()));
        let t = Table::new(Path::new(FILE), "a b\n").unwrap();
        let e = t.columns(["a", "c"]).unwrap_err();
        assert!(e.to_string().contains("line 1: no column \"c\""), "{e}");
    }

    #[test]
    fn row_with_wrong_field_count_names_its_line() {
        let t = Table::new(Path::new(FILE), "a b\n1 2\n1 2 3\n").unwrap();
        let results: Vec<_> = t.rows().map(|r| r.map(|_| ())).collect();
        assert!(results[0].is_ok());
        let e = results[1].as_ref().unwrap_err().to_string();
        assert!(e.contains(FILE) && e.contains("line 3: 3 fields"), "{e}");
    }

    #[test]
    fn numbers_files_need_the_exact_count() {
        let f = Path::new("/proc/sys/kernel/sem");
        assert_eq!(
            parse_numbers::<4>(f, "32000\t1024000000\t500\t32000\n").unwrap(),
            [32000, 1024000000, 500, 32000]
        );
        assert!(parse_numbers::<4>(f, "1 2 3\n").is_err());
        assert!(parse_numbers::<1>(f, "-1\n").is_err());
        assert!(parse_numbers::<1>(f, "").is_err());
    }

    #[test]
    fn maps_line_of_a_removed_sysv_segment() {
        let line = b"7f3c2a1d2000-7f3c2a1d3000 rw-s 00000000 00:01 32769                      /SYSV0000abcd (deleted)";
        let m = MapsEntry::parse(line).unwrap();
        assert_eq!((m.start, m.end), (0x7f3c2a1d2000, 0x7f3c2a1d3000));
        assert_eq!(m.perms, "rw-s");
        assert_eq!((m.dev_major, m.dev_minor, m.inode), (0, 1, 32769));
        assert_eq!(m.path, "/SYSV0000abcd");
        assert!(m.deleted);
    }

    #[test]
    fn maps_line_keeps_spaces_in_paths_and_allows_anonymous() {
        let m = MapsEntry::parse(b"1000-2000 r--p 00001000 08:01 77  /tmp/a b c").unwrap();
        assert_eq!(m.path, "/tmp/a b c");
        assert!(!m.deleted);
        assert_eq!(m.offset, 0x1000);
        let m = MapsEntry::parse(b"1000-2000 rw-p 00000000 00:00 0 ").unwrap();
        assert_eq!(m.path, "");
        assert_eq!(m.inode, 0);
        assert!(MapsEntry::parse(b"garbage").is_none());
        assert!(MapsEntry::parse(b"").is_none());
    }

    #[test]
    fn scan_groups_processes_and_skips_unreadable_ones() {
        let root = ipckit_testkit::unique_path("proc");
        let _cleanup = ipckit_testkit::Defer(|| {
            let _ = std::fs::remove_dir_all(&root);
        });
        let write = |pid: &str, maps: &str| {
            std::fs::create_dir_all(root.join(pid)).unwrap();
            std::fs::write(root.join(pid).join("maps"), maps).unwrap();
        };
        write(
            "20",
            "1000-2000 rw-s 0 00:01 5 /a\n3000-4000 rw-s 0 00:01 5 /a\n",
        );
        write(
            "10",
            "1000-2000 rw-s 0 00:01 5 /a\n5000-6000 r--p 0 00:01 9 /b\n",
        );
        write("self", "1000-2000 rw-s 0 00:01 5 /a\n");
        std::fs::create_dir_all(root.join("30")).unwrap(); // exited: no maps
        let found = scan_maps_in(&root, |m| (m.path == "/a").then_some(m.inode)).unwrap();
        assert_eq!(found.into_iter().collect::<Vec<_>>(), [(5, vec![10, 20])]);
        let counted = count_maps_in(&root, |m| (m.path == "/a").then_some(m.inode)).unwrap();
        assert_eq!(
            counted.into_iter().collect::<Vec<_>>(),
            [(5, vec![(10, 1), (20, 2)])]
        );
        assert!(scan_maps_in(&root.join("none"), |_| Some(())).is_err());
    }
}
