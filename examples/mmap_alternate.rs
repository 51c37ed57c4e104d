//! Parent and child take turns through one shared mapping, paced by two process-shared unnamed
//! POSIX semaphores that live in the mapping itself.
//!
//! The mapping holds two semaphore slots and a line buffer. EMPTY (starts at 1) says the buffer
//! may be written; FULL (starts at 0) says a line waits in it. The child writes lines (default
//! 100, `--lines N`): wait EMPTY, write, post FULL. The parent reads: wait FULL, copy the line
//! out, post EMPTY, and checks that the i-th line it reads is the i-th line the child wrote, with
//! the right text — so every line is read exactly once, in order, and no line is torn.
//!
//! In the C original the parent mapped `MAP_ANONYMOUS | MAP_SHARED` memory and called `fork`, and
//! the child inherited the mapping. Rust cannot `fork` safely in a program that may run threads,
//! and `std::process::Command` is `fork` + `exec`, which replaces the address space. So the
//! memory here is a memfd — an anonymous memory file, sealed so that neither side can shrink it
//! under the other's mapping — and the child (this program run again with `--child`) receives it
//! as its standard input and maps the same pages. Nothing has a name, so nothing is left behind:
//! the memory goes away with the last descriptor and mapping. The parent initialises both
//! semaphores and destroys them (dropping its handles) only after the child has exited.

use std::error::Error;
use std::os::fd::AsFd;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use ipckit::mmap::Mmap;
use ipckit::posix::sem::RawSemaphore;
use ipckit::posix::shm::{Memfd, Seals};

const USAGE: &str = "usage: mmap_alternate [--lines N]";

/// Byte offsets in the mapping: the two semaphore slots, then the line (a `u32` length and text).
const SLOT: usize = RawSemaphore::SLOT_SIZE;
const LINE_AT: usize = 2 * SLOT;
const TEXT_AT: usize = LINE_AT + 4;
/// The longest line the buffer holds.
const LINE_MAX: usize = 200;
const SIZE: usize = TEXT_AT + LINE_MAX;

/// How long one semaphore wait lasts before checking that the other process still lives.
const POLL: Duration = Duration::from_millis(100);

type AnyResult<T> = Result<T, Box<dyn Error>>;

/// The text of line `i` of `n`: its number, and a tail whose length varies, so a shorter line
/// after a longer one shows whether stale bytes leak through.
fn line_text(i: u32, n: u32) -> String {
    let tail = "abcdefghijklmnopqrstuvwxyz".repeat(3);
    format!(
        "line {i} of {n}: {}",
        &tail[..(i as usize * 7) % tail.len()]
    )
}

/// The two semaphore slots of a mapping (the line buffer is copied in and out by offset).
#[allow(clippy::mut_from_ref)] // TODO(sync): goes with the `unsafe` below.
fn slots(map: &Mmap) -> AnyResult<(&mut [u8], &mut [u8])> {
    if map.backed_len()? < SIZE {
        let len = map.backed_len()?;
        return Err(format!("the mapping has {len} bytes, {SIZE} needed").into());
    }
    // SAFETY: TODO(sync): replaced by SharedRegion placement. The slots are used only through
    // sem_* calls, never read or written as plain bytes, but the promise of `&mut` is not kept
    // (the other process uses them too) until semaphore placement takes a region.
    let slots = unsafe { map.shared()?.get(..LINE_AT)?.as_bytes_mut_unchecked()? };
    Ok(slots.split_at_mut(SLOT))
}

/// Kills and reaps the child if the parent gives up early, before the semaphores are destroyed.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn parent(lines: u32) -> AnyResult<()> {
    let memfd = Memfd::create("mmap_alternate", SIZE as u64)?;
    memfd.seal(Seals::SHRINK | Seals::GROW)?;
    let map = memfd.map()?;
    let (empty, full) = slots(&map)?;
    // Declared before the child, so they are destroyed after it has been reaped.
    let empty = RawSemaphore::init_in(empty, 1)?;
    let full = RawSemaphore::init_in(full, 0)?;

    let child = Command::new(std::env::current_exe()?)
        .args(["--child", &lines.to_string()])
        .stdin(Stdio::from(memfd.as_fd().try_clone_to_owned()?))
        .spawn()?;
    let mut child = Reap(child);
    let pid = child.0.id();

    for i in 0..lines {
        // Wait for the next line, noticing a child that died instead of waiting for ever.
        while !full.wait_timeout(POLL)? {
            if let Some(status) = child.0.try_wait()? {
                return Err(format!("the child exited ({status}) before writing line {i}").into());
            }
        }
        // The buffer is shared memory: check the length before using it.
        let len = map.read::<u32>(LINE_AT)? as usize;
        if len > LINE_MAX {
            return Err(format!("line {i}: length {len} exceeds the buffer ({LINE_MAX})").into());
        }
        let mut text = vec![0; len];
        map.read_at(TEXT_AT, &mut text)?;
        let text = String::from_utf8_lossy(&text).into_owned();
        empty.post()?;
        let expected = line_text(i, lines);
        if text != expected {
            return Err(format!("read {text:?} where line {i} is {expected:?}").into());
        }
    }
    let status = child.0.wait()?;
    if !status.success() {
        return Err(format!("the child failed ({status})").into());
    }
    if full.value()? != 0 {
        return Err("the child wrote more lines than were read".into());
    }
    println!(
        "{lines} lines read exactly once, in order, from child {pid} through a shared memfd \
         mapping paced by two unnamed semaphores"
    );
    Ok(())
}

fn child(lines: u32) -> AnyResult<()> {
    let parent = std::os::unix::process::parent_id();
    let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
    // The seals promise the mapping cannot shrink under this process (which would be SIGBUS).
    let memfd = Memfd::from_fd(fd, Seals::SHRINK | Seals::GROW)?;
    let map = memfd.map()?;
    let (empty, full) = slots(&map)?;
    let empty = RawSemaphore::from_region(empty)?;
    let full = RawSemaphore::from_region(full)?;
    for i in 0..lines {
        while !empty.wait_timeout(POLL)? {
            if std::os::unix::process::parent_id() != parent {
                return Err("the parent is gone".into());
            }
        }
        let text = line_text(i, lines);
        let len = text.len().min(LINE_MAX);
        map.write(LINE_AT, &(len as u32))?;
        map.write_at(TEXT_AT, &text.as_bytes()[..len])?;
        full.post()?;
    }
    Ok(())
}

fn number(value: Option<String>, what: &str) -> AnyResult<u32> {
    let value = value.ok_or_else(|| format!("{what} needs a value\n{USAGE}"))?;
    Ok(value
        .parse()
        .map_err(|_| format!("{what} needs a number, not {value:?}"))?)
}

fn run() -> AnyResult<()> {
    let mut args = std::env::args().skip(1);
    let mut lines = 100;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--child" => return child(number(args.next(), "--child")?),
            "--lines" => lines = number(args.next(), "--lines")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    parent(lines)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mmap_alternate: {e}");
            ExitCode::FAILURE
        }
    }
}
