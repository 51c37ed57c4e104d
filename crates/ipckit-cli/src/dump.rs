//! `ipckit dump -m ID`: the bytes of a System V shared-memory segment, as `hexdump -C` shows them.
//!
//! The segment is attached read-only, so dumping it cannot change its bytes, and the selected
//! bytes are copied out first (other processes may be writing them; the dump shows one copy).
//! Attaching does change what the kernel records of the segment's use: its last-user PID
//! (`lpid`) becomes the dump's, and its attach and detach times (`atime`, `dtime`) the dump's.
//! So that `ipckit gc` does not take the dump, once exited, for the segment's last user, the
//! dump records the `lpid` it replaced (`ipckit::inspect::record_shm_read`). The formatter
//! ([`write_canonical`]) is a pure function that reproduces util-linux's `hexdump -C` layout byte
//! for byte, including the `*` line for repeated lines and the final offset line.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use std::time::UNIX_EPOCH;

use ipckit::inspect::{self, ShmRead};
use ipckit::sysv::shm::{Segment, ShmStat};
use ipckit::Object;

use crate::rm::{describe, parse_id};

#[derive(clap::Args)]
#[command(after_help = "\
The offset column counts from the start of the segment, as `hexdump -C -s OFFSET -n LEN` would.
A reader that closes the pipe early (`ipckit dump -m 5 | head`) ends the dump quietly.")]
pub struct Args {
    /// The segment's id, as `ipcs -m` or `ipckit ls` shows it.
    #[arg(short = 'm', long = "shmem-id", value_name = "ID", value_parser = parse_id,
          allow_negative_numbers = true)]
    id: i32,
    /// Start at this byte of the segment (decimal, or hexadecimal with 0x).
    #[arg(long, value_name = "N", default_value = "0", value_parser = parse_count)]
    offset: usize,
    /// Dump this many bytes (decimal, or hexadecimal with 0x); default: up to the end.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    len: Option<usize>,
    /// Write the bytes themselves to stdout instead of a hex dump.
    #[arg(long)]
    raw: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let object = Object::ShmId(args.id);
    let segment = Segment::from_id(args.id);
    // The last user the attachment is about to replace, for `gc` (see `record_read`).
    let before = segment
        .stat()
        .map_err(|e| anyhow!("dump: {}", describe(&object, &e)))?;
    let attachment = segment
        .attach_read_only()
        .map_err(|e| anyhow!("dump: {}", describe(&object, &e)))?;
    let size = attachment.len();
    let start = args.offset;
    if start > size {
        bail!("dump: {object}: --offset {start} is beyond the end of the segment ({size} bytes)");
    }
    let len = match args.len {
        Some(len) if len > size - start => bail!(
            "dump: {object}: --offset {start} --len {len} goes beyond the end of the segment \
             ({size} bytes)"
        ),
        Some(len) => len,
        None => size - start,
    };
    let mut selection = vec![0; len];
    attachment
        .read_at(start, &mut selection)
        .map_err(|e| anyhow!("dump: {}", describe(&object, &e)))?;
    drop(attachment);
    record_read(args.id, &before);

    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let written = if args.raw {
        out.write_all(&selection)
    } else if selection.is_empty() && args.len.is_none() {
        // `hexdump -C -s END` of a file of END bytes: only the end offset.
        writeln!(out, "{start:08x}")
    } else {
        write_canonical(&mut out, &selection, start as u64)
    }
    .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // The reader went away (`| head`): nothing is wrong, and nobody is left to tell.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("dump: write to stdout"),
    }
}

/// Records that this process, only reading, became the last user of segment `id` in place of
/// `before.lpid`, so that `ipckit gc` does not take this dump, which is about to exit, for the
/// segment's last real user. A failure to record is one warning line: the dump itself is done.
fn record_read(id: i32, before: &ShmStat) {
    let read = ShmRead {
        id,
        key: before.perm.key,
        ctime: before
            .ctime
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
        reader: std::process::id(),
        lpid_before: before.lpid,
    };
    let existing: Vec<i32> = inspect::shm_segments()
        .map(|v| v.iter().map(|s| s.id).collect())
        .unwrap_or_else(|_| vec![id]);
    if let Err(e) = inspect::record_shm_read(&read, &existing) {
        eprintln!(
            "ipckit: dump: {e}; `ipckit gc` will take this dump (pid {}) for the segment's last \
             user",
            read.reader
        );
    }
}

/// A byte count or offset: decimal, or hexadecimal after `0x`.
fn parse_count(s: &str) -> Result<usize, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => usize::from_str_radix(hex, 16),
        None => s.parse::<usize>(),
    };
    // from_str_radix accepts a sign; a count never has one.
    match parsed {
        Ok(n) if !s.contains(['+', '-']) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a byte count: give a decimal number, or hexadecimal after 0x"
        )),
    }
}

/// The bytes of one line of the dump.
const LINE: usize = 16;

/// Writes `bytes` in `hexdump -C` ("canonical hex+ASCII") layout, numbering them from `base`.
///
/// Each line shows the offset (`%08x`), up to 16 bytes in two groups of 8 and the printable ASCII
/// characters between bars (others as `.`). A full line equal to the line before it is not shown;
/// the first of a run of such lines becomes a single `*`. A last line holds the offset just past the
/// end. Empty input writes nothing, as `hexdump -C -n 0` does.
///
/// `bytes` is plain memory: [`run`] copies the selection out of the segment first, so a process
/// writing the segment meanwhile cannot change what is being formatted.
pub fn write_canonical(out: &mut impl Write, bytes: &[u8], base: u64) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let mut previous: Option<[u8; LINE]> = None;
    let mut starred = false;
    let mut text = Vec::with_capacity(80);
    for (i, chunk) in bytes.chunks(LINE).enumerate() {
        let mut line = [0u8; LINE];
        line[..chunk.len()].copy_from_slice(chunk);
        if chunk.len() == LINE && previous == Some(line) {
            if !starred {
                out.write_all(b"*\n")?;
                starred = true;
            }
            continue;
        }
        starred = false;
        previous = Some(line);
        text.clear();
        format_line(&mut text, base + (i * LINE) as u64, &line[..chunk.len()]);
        out.write_all(&text)?;
    }
    writeln!(out, "{:08x}", base + bytes.len() as u64)
}

/// One line of the canonical layout: `OFFSET  xx xx … xx  xx … xx  |ascii|`.
fn format_line(text: &mut Vec<u8>, offset: u64, line: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // `write!` into a Vec cannot fail.
    let _ = write!(text, "{offset:08x}  ");
    for i in 0..LINE {
        match line.get(i) {
            Some(&b) => {
                text.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)], b' '])
            }
            None => text.extend_from_slice(b"   "),
        }
        if i == LINE / 2 - 1 {
            text.push(b' ');
        }
    }
    text.extend_from_slice(b" |");
    text.extend(
        line.iter()
            .map(|&b| if (0x20..0x7f).contains(&b) { b } else { b'.' }),
    );
    text.extend_from_slice(b"|\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::process::Command;

    fn canonical(bytes: &[u8], base: u64) -> String {
        let mut out = Vec::new();
        write_canonical(&mut out, bytes, base).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn short_line_pads_hex_so_the_ascii_column_lines_up() {
        assert_eq!(
            canonical(b"hello world\n", 0),
            "00000000  68 65 6c 6c 6f 20 77 6f  72 6c 64 0a              |hello world.|\n\
             0000000c\n"
        );
    }

    #[test]
    fn non_printable_bytes_show_as_dots() {
        assert_eq!(
            canonical(&[0x7f, 0x80, b' ', b'~', 0x1f, 0], 0),
            "00000000  7f 80 20 7e 1f 00                                 |.. ~..|\n\
             00000006\n"
        );
    }

    #[test]
    fn repeated_full_lines_collapse_into_one_star() {
        let mut bytes = vec![0u8; 48];
        bytes.extend_from_slice(b"ab");
        assert_eq!(
            canonical(&bytes, 0),
            "00000000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n\
             *\n\
             00000030  61 62                                             |ab|\n\
             00000032\n"
        );
    }

    #[test]
    fn short_last_line_equal_to_a_prefix_is_still_shown() {
        assert_eq!(
            canonical(&[0u8; 20], 0),
            "00000000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n\
             00000010  00 00 00 00                                       |....|\n\
             00000014\n"
        );
    }

    #[test]
    fn offsets_count_from_base() {
        assert_eq!(
            canonical(b"xyz", 0x1_0000_0005),
            "100000005  78 79 7a                                          |xyz|\n100000008\n"
        );
    }

    #[test]
    fn empty_input_writes_nothing() {
        assert_eq!(canonical(b"", 7), "");
    }

    #[test]
    fn counts_are_decimal_or_hex_and_never_signed() {
        assert_eq!(parse_count("4096"), Ok(4096));
        assert_eq!(parse_count("0x10"), Ok(16));
        for bad in ["", "0x", "-1", "+1", "0x-1", "0x+1", "ten", "1K"] {
            assert!(parse_count(bad).is_err(), "{bad:?} parsed");
        }
    }

    /// Inputs that exercise every rule: repeats at the start, middle and end, runs broken by one
    /// byte, partial last lines, and offsets that do not start on a line boundary.
    fn samples() -> Vec<(Vec<u8>, u64)> {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut random = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 24) as u8
                })
                .collect()
        };
        let mut samples = vec![];
        for len in [1, 15, 16, 17, 31, 32, 33, 100, 257] {
            samples.push((random(len), 0));
            samples.push((vec![b'A'; len], 0));
        }
        let mut runs = vec![0u8; 80];
        runs[40] = 1;
        runs.extend_from_slice(&[7u8; 64]);
        runs.extend(random(10));
        runs.extend_from_slice(&[7u8; 35]);
        samples.push((runs.clone(), 0));
        samples.push((runs, 5));
        samples.push(((0..=255).collect(), 3));
        samples
    }

    /// The formatter matches the real `hexdump -C` (util-linux, Debian's bsdextrautils) when it is
    /// installed; the bytes are placed in a file at their offset and dumped with `-s` and `-n`.
    #[test]
    fn matches_hexdump_c_when_installed() {
        let installed = Command::new("which")
            .arg("hexdump")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            eprintln!("skipped: hexdump is not installed (apt-get install bsdextrautils)");
            return;
        }
        let path = ipckit_testkit::unique_path("hexdump");
        let _cleanup = ipckit_testkit::Defer(|| {
            let _ = std::fs::remove_file(&path);
        });
        for (bytes, base) in samples() {
            let mut file = vec![0xeeu8; base as usize];
            file.extend_from_slice(&bytes);
            std::fs::write(&path, &file).unwrap();
            let out = Command::new("hexdump")
                .arg("-C")
                .args(["-s", &base.to_string(), "-n", &bytes.len().to_string()])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success());
            assert_eq!(
                canonical(&bytes, base),
                String::from_utf8(out.stdout).unwrap(),
                "bytes {bytes:02x?} at {base}"
            );
        }
    }
}
