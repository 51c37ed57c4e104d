//! Printing shared by the subcommands: JSON documents, aligned borderless tables, times, modes and
//! keys, so every subcommand shows the same value the same way.

use std::io::{self, Write};
use std::time::SystemTime;

use anyhow::{Context, Result};
use comfy_table::{presets, CellAlignment, ContentArrangement};
use serde::Serialize;

/// Writes `text` to standard output. A closed pipe (`ipckit ls | head`) is not an error.
pub fn emit(text: &str) -> Result<()> {
    emit_bytes(text.as_bytes())
}

/// Writes `bytes` to standard output, as [`emit`] does.
pub fn emit_bytes(bytes: &[u8]) -> Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// Prints `value` as one pretty-printed JSON document followed by a newline.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("cannot encode JSON")?;
    text.push('\n');
    emit(&text)
}

/// How a column's cells line up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: names, keys, modes.
    Left,
    /// Numbers.
    Right,
}

/// A table without borders whose columns are aligned with spaces, as `ipcs` and `ps` print.
pub struct Table {
    inner: comfy_table::Table,
}

impl Table {
    /// A table with these column headers.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        let mut inner = comfy_table::Table::new();
        inner
            .load_preset(presets::NOTHING)
            .force_no_tty()
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(columns.iter().map(|(name, _)| *name).collect::<Vec<_>>());
        for (column, (_, align)) in inner.column_iter_mut().zip(columns) {
            column.set_padding((0, 2));
            column.set_cell_alignment(match align {
                Align::Left => CellAlignment::Left,
                Align::Right => CellAlignment::Right,
            });
        }
        Table { inner }
    }

    /// Adds a row: one cell per column.
    pub fn row(&mut self, cells: Vec<String>) {
        self.inner.add_row(cells);
    }

    /// The table as text: one line per row after the header, no trailing spaces, ending in a
    /// newline.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for line in self.inner.lines() {
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// A kernel time for people: local time as `2024-06-19 15:22:45`, or `Not set`.
pub fn local_time(time: Option<SystemTime>) -> String {
    let Some(ts) = time.and_then(|t| jiff::Timestamp::try_from(t).ok()) else {
        return "Not set".to_owned();
    };
    ts.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Permission bits as ipcs prints them: octal without a leading zero (`600`).
pub fn perms_short(mode: u32) -> String {
    format!("{:o}", mode & 0o777)
}

/// A System V key as ipcs prints it: `0x%08x`.
pub fn key_hex(key: ipckit::Key) -> String {
    key.to_string()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn table_aligns_columns_without_borders_or_trailing_spaces() {
        let mut t = Table::new(&[("name", Align::Left), ("bytes", Align::Right)]);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["long name".into(), "12345".into()]);
        assert_eq!(
            t.render(),
            "name       bytes\na              1\nlong name  12345\n"
        );
    }

    #[test]
    fn times_modes_and_keys() {
        let t = Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert_eq!(local_time(None), "Not set");
        assert_eq!(local_time(t).len(), "2023-11-14 22:13:20".len());
        assert_eq!(perms_short(0o1600), "600");
        assert_eq!(key_hex(ipckit::Key::new(-2)), "0xfffffffe");
    }
}
