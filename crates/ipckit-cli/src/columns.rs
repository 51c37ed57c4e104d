//! lsipc(1)'s output control for `ipckit ls`: its column names (`-o KEY,ID,SIZE`), its output
//! modes (aligned table, `--raw`, `--export`, `--newline`, `--noheadings`), its sizes (`100B`,
//! `1.5K`, or bytes with `-b`) and its times (`--time-format short|full|iso`).
//!
//! [`Record`] is one object with every field a column can show (`None` where the kind has no such
//! field or it cannot be read); [`render`] prints records under the chosen columns. Which columns
//! apply to which kind, and the default columns of each kind, are lsipc's (util-linux 2.41).

use std::time::SystemTime;

use crate::output::{Align, Table};

/// The kinds of objects, as `ls` selects them (and lists them: in the order of `Kind::ALL`).
pub use ipckit::inspect::gc::Kind;

fn is_sysv(kind: Kind) -> bool {
    matches!(kind, Kind::SysvShm | Kind::SysvSem | Kind::SysvMsg)
}

/// What the kind is called in messages, with the `ls` flag that selects it.
fn noun(kind: Kind) -> &'static str {
    match kind {
        Kind::SysvShm => "System V shared memory (-m)",
        Kind::SysvSem => "System V semaphore sets (-s)",
        Kind::SysvMsg => "System V message queues (-q)",
        Kind::PosixShm => "POSIX shared memory (-M)",
        Kind::PosixSem => "POSIX semaphores (-S)",
        Kind::PosixMq => "POSIX message queues (-Q)",
    }
}

/// A column, named as lsipc names it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Column {
    Key,
    Id,
    Name,
    Owner,
    Perms,
    Cuid,
    Cuser,
    Cgid,
    Cgroup,
    Uid,
    User,
    Gid,
    Group,
    Ctime,
    Mtime,
    Size,
    Nattch,
    Status,
    Attach,
    Detach,
    Command,
    Cpid,
    Lpid,
    Usedbytes,
    Msgs,
    Send,
    Recv,
    Lspid,
    Lrpid,
    Nsems,
    Otime,
    Sval,
}

use Column as C;

/// Every column with its name and meaning, in lsipc's order.
pub const COLUMNS: [(Column, &str, &str); 32] = [
    (C::Key, "KEY", "resource key"),
    (C::Id, "ID", "resource id"),
    (C::Name, "NAME", "POSIX name"),
    (C::Owner, "OWNER", "owner's user name or uid"),
    (C::Perms, "PERMS", "permissions"),
    (C::Cuid, "CUID", "creator uid"),
    (C::Cuser, "CUSER", "creator user"),
    (C::Cgid, "CGID", "creator gid"),
    (C::Cgroup, "CGROUP", "creator group"),
    (C::Uid, "UID", "user id"),
    (C::User, "USER", "user name"),
    (C::Gid, "GID", "group id"),
    (C::Group, "GROUP", "group name"),
    (C::Ctime, "CTIME", "time of the last change"),
    (C::Mtime, "MTIME", "time of the last action (POSIX)"),
    (C::Size, "SIZE", "segment size"),
    (C::Nattch, "NATTCH", "number of attachments"),
    (C::Status, "STATUS", "status (dest, locked)"),
    (C::Attach, "ATTACH", "attach time"),
    (C::Detach, "DETACH", "detach time"),
    (
        C::Command,
        "COMMAND",
        "creator's command line, while it runs",
    ),
    (C::Cpid, "CPID", "pid of the creator"),
    (C::Lpid, "LPID", "pid of the last user"),
    (C::Usedbytes, "USEDBYTES", "bytes queued"),
    (C::Msgs, "MSGS", "number of messages"),
    (C::Send, "SEND", "time of the last send"),
    (C::Recv, "RECV", "time of the last receive"),
    (C::Lspid, "LSPID", "pid of the last sender"),
    (C::Lrpid, "LRPID", "pid of the last receiver"),
    (C::Nsems, "NSEMS", "number of semaphores"),
    (C::Otime, "OTIME", "time of the last semop"),
    (C::Sval, "SVAL", "POSIX semaphore value"),
];

impl Column {
    pub fn name(self) -> &'static str {
        COLUMNS
            .iter()
            .find(|(c, _, _)| *c == self)
            .map_or("?", |(_, name, _)| name)
    }

    /// lsipc's alignment: numbers, permissions and times to the right.
    fn align(self) -> Align {
        match self {
            C::Key
            | C::Id
            | C::Name
            | C::Cuser
            | C::Cgroup
            | C::User
            | C::Group
            | C::Status
            | C::Command
            | C::Msgs => Align::Left,
            _ => Align::Right,
        }
    }

    /// Whether the column means something for `kind` (lsipc's ranges, plus owner and times for
    /// POSIX objects, which have them as files).
    pub fn applies(self, kind: Kind) -> bool {
        match self {
            C::Key | C::Id => is_sysv(kind),
            C::Owner | C::Perms | C::Cuid | C::Cuser | C::Cgid | C::Cgroup => true,
            C::Uid | C::User | C::Gid | C::Group | C::Ctime => true,
            C::Name | C::Mtime => !is_sysv(kind),
            C::Size => matches!(kind, Kind::SysvShm | Kind::PosixShm),
            C::Nattch | C::Status | C::Attach | C::Detach | C::Command | C::Cpid | C::Lpid => {
                kind == Kind::SysvShm
            }
            C::Usedbytes | C::Msgs => matches!(kind, Kind::SysvMsg | Kind::PosixMq),
            C::Send | C::Recv | C::Lspid | C::Lrpid => kind == Kind::SysvMsg,
            C::Nsems | C::Otime => kind == Kind::SysvSem,
            C::Sval => kind == Kind::PosixSem,
        }
    }

    /// lsipc's default columns for `kind`.
    pub fn defaults(kind: Kind) -> Vec<Column> {
        match kind {
            Kind::SysvShm => vec![
                C::Key,
                C::Id,
                C::Perms,
                C::Owner,
                C::Size,
                C::Nattch,
                C::Status,
                C::Ctime,
                C::Cpid,
                C::Lpid,
                C::Command,
            ],
            Kind::SysvMsg => vec![
                C::Key,
                C::Id,
                C::Perms,
                C::Owner,
                C::Usedbytes,
                C::Msgs,
                C::Lspid,
                C::Lrpid,
            ],
            Kind::SysvSem => vec![C::Key, C::Id, C::Perms, C::Owner, C::Nsems],
            Kind::PosixShm => vec![C::Name, C::Perms, C::Owner, C::Size, C::Mtime],
            Kind::PosixMq => vec![C::Name, C::Perms, C::Owner, C::Mtime, C::Usedbytes, C::Msgs],
            Kind::PosixSem => vec![C::Name, C::Perms, C::Owner, C::Mtime, C::Sval],
        }
    }
}

/// Parses `-o LIST` for `kind` as lsipc does: comma-separated names in any case; a list that
/// starts with `+` is added to the default columns instead of replacing them.
pub fn parse_columns(list: &str, kind: Kind) -> Result<Vec<Column>, String> {
    let (mut columns, list) = match list.strip_prefix('+') {
        Some(rest) => (Column::defaults(kind), rest),
        None => (Vec::new(), list),
    };
    for word in list.split(',') {
        let Some(&(column, _, _)) = COLUMNS
            .iter()
            .find(|(_, name, _)| name.eq_ignore_ascii_case(word))
        else {
            return Err(format!(
                "unknown column {word:?}: `ipckit ls --help` lists the columns"
            ));
        };
        if !column.applies(kind) {
            return Err(format!(
                "column {} does not apply to {}",
                column.name(),
                noun(kind)
            ));
        }
        columns.push(column);
    }
    Ok(columns)
}

/// How times are shown (lsipc's `--time-format`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum TimeFormat {
    /// `HH:MM` today, `MonDD` this year, else `YYYY-MonDD`.
    Short,
    /// As ctime(3): `Sun Dec  6 17:30:47 2026`.
    Full,
    /// ISO 8601 with the offset: `2026-12-06T17:30:47+00:00`.
    Iso,
}

impl TimeFormat {
    /// The time in the local time zone, or "" when never set.
    pub fn format(self, time: Option<SystemTime>) -> String {
        let Some(ts) = time.and_then(|t| jiff::Timestamp::try_from(t).ok()) else {
            return String::new();
        };
        let tz = jiff::tz::TimeZone::system();
        let zoned = ts.to_zoned(tz.clone());
        let pattern = match self {
            TimeFormat::Full => "%a %b %e %H:%M:%S %Y",
            TimeFormat::Iso => "%Y-%m-%dT%H:%M:%S%:z",
            TimeFormat::Short => {
                let now = jiff::Timestamp::now().to_zoned(tz);
                if zoned.date() == now.date() {
                    "%H:%M"
                } else if zoned.year() == now.year() {
                    "%b%d"
                } else {
                    "%Y-%b%d"
                }
            }
        };
        zoned.strftime(pattern).to_string()
    }
}

/// A size as lsipc prints it without `-b` (util-linux's `size_to_human_string`): bytes below
/// 1 KiB as `100B`, else the largest power of 1024 with one decimal, rounded half up, and a
/// trailing `.0` dropped: `4K`, `1.5K`, `1023.9K`, and (as util-linux rounds) `1024K` for one
/// byte short of 1 MiB.
pub fn human_size(bytes: u64) -> String {
    const LETTERS: [char; 7] = ['B', 'K', 'M', 'G', 'T', 'P', 'E'];
    let mut exp = 0u32;
    while exp < 60 && bytes >= 1u64 << (exp + 10) {
        exp += 10;
    }
    let letter = LETTERS[(exp / 10) as usize];
    if exp == 0 {
        return format!("{bytes}{letter}");
    }
    let mut whole = bytes >> exp;
    let rest = u128::from(bytes & ((1u64 << exp) - 1));
    // Thousandths, then rounded to tenths.
    let thousandths = rest * 1000 / (1u128 << exp);
    let mut tenths = (thousandths + 50) / 100;
    if tenths == 10 {
        whole += 1;
        tenths = 0;
    }
    if tenths == 0 {
        format!("{whole}{letter}")
    } else {
        format!("{whole}.{tenths}{letter}")
    }
}

/// Permission bits as lsipc prints them: `rw-r-----`, or with `-P` `0640`.
pub fn perms(mode: u32, numeric: bool) -> String {
    let mode = mode & 0o777;
    if numeric {
        // C's `%#o`: a leading 0, and 0 alone for no bits.
        return if mode == 0 {
            "0".to_owned()
        } else {
            format!("0{mode:o}")
        };
    }
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = mode >> shift;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// How `render` prints.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Aligned columns under a header.
    Table,
    /// Cells separated by one space, special characters escaped as `\xHH`.
    Raw,
    /// `NAME="value"` pairs, a line per object.
    Export,
    /// `NAME="value"` pairs, one per line.
    Newline,
}

/// The options of a listing.
pub struct Format {
    pub mode: Mode,
    pub headings: bool,
    pub bytes: bool,
    pub numeric_perms: bool,
    pub time: TimeFormat,
}

/// One object: the cells of every column that applies to it, already as text.
pub type Record = Vec<(Column, String)>;

/// The cell of `column` in `record` ("" if it has none).
fn cell(record: &Record, column: Column) -> &str {
    record
        .iter()
        .find(|(c, _)| *c == column)
        .map_or("", |(_, v)| v.as_str())
}

/// Prints `records` under `columns` as `format` says.
pub fn render(records: &[Record], columns: &[Column], format: &Format) -> String {
    let mut out = String::new();
    match format.mode {
        Mode::Table => {
            let heads: Vec<(&str, Align)> = columns.iter().map(|c| (c.name(), c.align())).collect();
            let mut table = Table::new(&heads);
            for r in records {
                table.row(columns.iter().map(|&c| cell(r, c).to_owned()).collect());
            }
            let text = table.render();
            if format.headings {
                out = text;
            } else {
                out = text.split_inclusive('\n').skip(1).collect();
            }
        }
        Mode::Raw => {
            let mut lines = Vec::new();
            if format.headings {
                lines.push(
                    columns
                        .iter()
                        .map(|c| c.name())
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
            for r in records {
                let cells: Vec<String> = columns.iter().map(|&c| raw_escape(cell(r, c))).collect();
                lines.push(cells.join(" "));
            }
            for line in lines {
                out.push_str(&line);
                out.push('\n');
            }
        }
        Mode::Export | Mode::Newline => {
            let separator = if format.mode == Mode::Export {
                " "
            } else {
                "\n"
            };
            for r in records {
                let pairs: Vec<String> = columns
                    .iter()
                    .map(|&c| format!("{}=\"{}\"", c.name(), export_escape(cell(r, c))))
                    .collect();
                out.push_str(&pairs.join(separator));
                out.push('\n');
            }
        }
    }
    out
}

/// A cell of `--raw`: bytes that would split or hide it (space, backslash, control characters)
/// as `\xHH`, as libsmartcols writes them.
fn raw_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == ' ' || c == '\\' || c.is_control() {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A value of `--export`, between double quotes: `"`, `\`, `$` and `` ` `` behind a backslash
/// and control characters as `\xHH`, so that a shell's `eval` reads the value back.
fn export_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' | '$' | '`' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_lsipcs_human_sizes() {
        // As lsipc 2.38 prints SIZE for segments of these sizes.
        for (bytes, text) in [
            (0, "0B"),
            (100, "100B"),
            (1023, "1023B"),
            (1024, "1K"),
            (1536, "1.5K"),
            (1279, "1.2K"),
            (4096, "4K"),
            // Rounded up to 1024.0K, and printed so (lsipc 2.38 too).
            (1_048_575, "1024K"),
            (1_572_864, "1.5M"),
            (1 << 30, "1G"),
            (u64::MAX, "16E"),
        ] {
            assert_eq!(human_size(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn columns_are_lsipcs_and_checked_for_the_kind() {
        assert_eq!(
            parse_columns("key,ID,Size", Kind::SysvShm),
            Ok(vec![C::Key, C::Id, C::Size])
        );
        let plus = parse_columns("+OTIME", Kind::SysvSem).unwrap();
        assert_eq!(plus.last(), Some(&C::Otime));
        assert_eq!(plus.len(), Column::defaults(Kind::SysvSem).len() + 1);
        assert!(parse_columns("MSGS", Kind::SysvShm)
            .unwrap_err()
            .contains("does not apply"));
        assert!(parse_columns("KEY", Kind::PosixShm)
            .unwrap_err()
            .contains("does not apply"));
        assert!(parse_columns("BOGUS", Kind::SysvShm)
            .unwrap_err()
            .contains("unknown column"));
        assert!(parse_columns("", Kind::SysvShm).is_err());
        for kind in [
            Kind::SysvShm,
            Kind::SysvSem,
            Kind::SysvMsg,
            Kind::PosixShm,
            Kind::PosixSem,
            Kind::PosixMq,
        ] {
            assert!(Column::defaults(kind).iter().all(|c| c.applies(kind)));
        }
    }

    #[test]
    fn perms_and_escapes() {
        assert_eq!(perms(0o1644, false), "rw-r--r--");
        assert_eq!(perms(0o640, true), "0640");
        assert_eq!(perms(0, true), "0");
        assert_eq!(raw_escape("a b\\c\n"), "a\\x20b\\x5cc\\x0a");
        assert_eq!(export_escape("a\"$`\\b\n"), "a\\\"\\$\\`\\\\b\\x0a");
    }

    #[test]
    fn modes_render_as_lsipc() {
        let records = vec![
            vec![(C::Key, "0x1".to_owned()), (C::Size, "1.5K".to_owned())],
            vec![(C::Key, "0x22".to_owned()), (C::Size, "".to_owned())],
        ];
        let cols = [C::Key, C::Size];
        let mut f = Format {
            mode: Mode::Table,
            headings: true,
            bytes: false,
            numeric_perms: false,
            time: TimeFormat::Short,
        };
        assert_eq!(
            render(&records, &cols, &f),
            "KEY   SIZE\n0x1   1.5K\n0x22\n"
        );
        f.headings = false;
        assert_eq!(render(&records, &cols, &f), "0x1   1.5K\n0x22\n");
        f.mode = Mode::Raw;
        assert_eq!(render(&records, &cols, &f), "0x1 1.5K\n0x22 \n");
        f.headings = true;
        assert_eq!(render(&records, &cols, &f), "KEY SIZE\n0x1 1.5K\n0x22 \n");
        f.mode = Mode::Export;
        assert_eq!(
            render(&records, &cols, &f),
            "KEY=\"0x1\" SIZE=\"1.5K\"\nKEY=\"0x22\" SIZE=\"\"\n"
        );
        f.mode = Mode::Newline;
        assert_eq!(
            render(&records, &cols, &f),
            "KEY=\"0x1\"\nSIZE=\"1.5K\"\nKEY=\"0x22\"\nSIZE=\"\"\n"
        );
    }

    #[test]
    fn times_in_each_format() {
        assert_eq!(TimeFormat::Iso.format(None), "");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let iso = TimeFormat::Iso.format(Some(t));
        assert_eq!(iso.len(), "2001-09-09T01:46:40+00:00".len(), "{iso}");
        let full = TimeFormat::Full.format(Some(t));
        assert!(full.ends_with(" 2001"), "{full}");
        assert_eq!(full.len(), "Sun Sep  9 01:46:40 2001".len(), "{full}");
        let short = TimeFormat::Short.format(Some(t));
        assert!(short.starts_with("2001-Sep"), "{short}");
        let now = TimeFormat::Short.format(Some(SystemTime::now()));
        assert_eq!(now.len(), "HH:MM".len(), "{now}");
    }
}
