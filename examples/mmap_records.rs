//! Two unrelated processes share fixed-size records through a mapped file, and a reader that maps
//! more records than the file holds gets errors for the missing ones instead of a `SIGBUS`.
//!
//! A record is a `#[repr(C)]` struct `{ name: [u8; 4], age: i32 }`. The `writer` process sizes a
//! file for ten records, maps it shared and writes them; the `reader` process maps the same file
//! and checks all ten. Then the file is truncated to five records and the reader maps ten records'
//! worth again: records 0..5 read back, records 5..10 lie past the end of the file and every
//! access is an error — in C the same reads would raise `SIGBUS` or return stale zeros.
//!
//! The processes are this binary run again with a role argument (`writer PATH`,
//! `reader PATH N`, N = how many records the file should still hold). The parent picks a
//! temporary file, runs them one after the other, and removes the file at the end, also on
//! failure. It exits non-zero if any role fails.

use std::error::Error;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use bytemuck::{Pod, Zeroable};
use ipckit::mmap::MmapOptions;

type AnyResult<T> = Result<T, Box<dyn Error>>;

/// One record, laid out as C lays it out: 4 name bytes, then a 4-byte age.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
struct Person {
    name: [u8; 4],
    age: i32,
}

/// How many records the writer writes and the reader maps.
const RECORDS: usize = 10;
/// How many records the file keeps after the truncation.
const KEPT: usize = 5;
const RECORD: usize = std::mem::size_of::<Person>();

/// The record the writer puts at `index`: name "p00".."p09", age 20..29.
fn person(index: usize) -> Person {
    let i = index as u8;
    Person {
        name: [b'p', b'0' + i / 10, b'0' + i % 10, 0],
        age: 20 + index as i32,
    }
}

fn name(p: &Person) -> String {
    String::from_utf8_lossy(&p.name)
        .trim_end_matches('\0')
        .to_string()
}

/// Writer: size the file for ten records, map it shared and read-write, write them, flush.
fn writer(path: &Path) -> AnyResult<()> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    file.set_len((RECORDS * RECORD) as u64)?;
    let map = MmapOptions::new().read_write().map(&file)?;
    for i in 0..map.record_count::<Person>()? {
        map.write_record(i, &person(i))?;
    }
    map.flush()?;
    println!("writer: wrote {RECORDS} records of {RECORD} bytes");
    Ok(())
}

/// Reader: map ten records' worth of the file read-only, whatever its size, and check that the
/// first `kept` records are the writer's and the others are errors.
fn reader(path: &Path, kept: usize) -> AnyResult<()> {
    let file = File::open(path)?;
    let map = MmapOptions::new().len(RECORDS * RECORD).map(&file)?;
    println!(
        "reader: mapped {} bytes over a file of {} bytes",
        map.len(),
        file.metadata()?.len()
    );
    let mut errors = 0;
    for i in 0..RECORDS {
        match map.read_record::<Person>(i) {
            Ok(p) if i < kept && p == person(i) => {
                println!("  record {i}: name {} age {}", name(&p), p.age)
            }
            Ok(p) => return Err(format!("record {i}: unexpected {p:?}").into()),
            Err(e) if i >= kept => {
                if errors == 0 {
                    println!("  record {i}: error: {e}");
                }
                errors += 1;
            }
            Err(e) => return Err(format!("record {i} should be readable: {e}").into()),
        }
    }
    if errors > 0 {
        println!("  records {kept}..{RECORDS}: {errors} errors, no SIGBUS");
    }
    if map.record_count::<Person>()? != kept {
        return Err(format!("record_count() should count the {kept} records in the file").into());
    }
    Ok(())
}

/// Runs this binary with `args` and fails unless it succeeds.
fn run(args: &[&str]) -> AnyResult<()> {
    let status = Command::new(std::env::current_exe()?).args(args).status()?;
    if !status.success() {
        return Err(format!("{} failed: {status}", args[0]).into());
    }
    Ok(())
}

/// Removes the file when dropped, also on failure.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Parent: a fresh file, the writer, the reader, the truncation, the reader again.
fn parent() -> AnyResult<()> {
    let path = std::env::temp_dir().join(format!("ipckit-mmap-records-{}.bin", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    let file = RemoveOnDrop(path);
    let p = file.0.to_str().ok_or("temporary path is not UTF-8")?;

    run(&["writer", p])?;
    run(&["reader", p, &RECORDS.to_string()])?;
    OpenOptions::new()
        .write(true)
        .open(p)?
        .set_len((KEPT * RECORD) as u64)?;
    println!("parent: truncated the file to {KEPT} records");
    run(&["reader", p, &KEPT.to_string()])?;
    println!(
        "mmap_records: {RECORDS} records shared between two processes; \
         after truncation to {KEPT}, records {KEPT}..{RECORDS} were errors, not SIGBUS"
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        [] => parent(),
        ["writer", path] => writer(Path::new(path)),
        ["reader", path, kept] => match kept.parse::<usize>() {
            Ok(kept) if kept <= RECORDS => reader(Path::new(path), kept),
            _ => Err(format!("reader: N must be a number up to {RECORDS}").into()),
        },
        _ => Err("usage: mmap_records [writer PATH | reader PATH N]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mmap_records: {e}");
            ExitCode::FAILURE
        }
    }
}
