//! Two processes take turns in a critical section guarded by a System V semaphore.
//!
//! A shared-memory segment holds a line of 16 letter cells. In every round (default 10 000,
//! `--rounds N`) each process fills the whole line with its own letter (`A` or `B`), yields the
//! CPU, and reads the line back: inside the critical section it must find only its own letter.
//! The lock is semaphore 0 taken and given back with `SEM_UNDO`, so a process that dies inside
//! the section does not lock the other out for ever. With `--unprotected` the processes skip the
//! semaphore and the report shows how many rounds saw the other's letter — the race the lock
//! prevents. Races are the point of that mode, so they do not make it fail.
//!
//! The processes are this binary run again with a role argument; the parent creates private
//! objects, passes their ids, reads each process's count from the segment and removes everything
//! when it returns, also on failure.

use std::error::Error;
use std::process::{Child, Command, ExitCode};
use std::sync::atomic::Ordering;
use std::thread::sleep;
use std::time::Duration;

use ipckit::sysv::sem::{SemOp, SemSet};
use ipckit::sysv::shm::{Attachment, Segment};
use ipckit::Key;

const USAGE: &str = "usage: sysv_letters [--rounds N] [--unprotected]";

/// Letter cells: `CELLS` u32s from offset 0.
const CELLS: usize = 16;
/// Where process `i` stores how many of its rounds saw a foreign letter (a u32).
const COUNT_OFFSET: usize = CELLS * 4;
/// Semaphore 0: the lock (1 = free).
const LOCK: u16 = 0;
/// Semaphore 1: the start gate, so both processes begin together.
const GATE: u16 = 1;
const LETTERS: [u8; 2] = [b'A', b'B'];

type AnyResult<T> = Result<T, Box<dyn Error>>;

fn parent(mut args: impl Iterator<Item = String>) -> AnyResult<bool> {
    let mut rounds = 10_000u32;
    let mut protected = true;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => {
                let v = args.next().ok_or(USAGE)?;
                rounds = v
                    .parse()
                    .map_err(|_| format!("--rounds needs a number, not {v:?}"))?;
            }
            "--unprotected" => protected = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(true);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }

    // Owned: removed when this function returns, whatever happens.
    let segment = Segment::options()
        .size(COUNT_OFFSET + 4 * LETTERS.len())
        .create(true)
        .open(Key::PRIVATE)?
        .into_owned();
    let sems = SemSet::create_exclusive(Key::PRIVATE, 2)?.into_owned();
    sems.set_all(&[1, 0])?; // lock free, gate closed

    let exe = std::env::current_exe()?;
    let mode = if protected {
        "protected"
    } else {
        "unprotected"
    };
    let mut children = Vec::new();
    for i in 0..LETTERS.len() {
        children.push(
            Command::new(&exe)
                .args(["letter", &segment.id().to_string(), &sems.id().to_string()])
                .args([i.to_string(), rounds.to_string(), mode.to_string()])
                .spawn()?,
        );
    }
    sems.op(&[SemOp::new(GATE, LETTERS.len() as i16)])?; // open the gate for both

    let failed = supervise(&mut children, || {
        eprintln!("sysv_letters: a process failed; removing the semaphore set to stop the other");
        let _ = SemSet::remove(&sems);
    })?;
    if failed > 0 {
        println!("{failed} of {} processes failed", LETTERS.len());
        return Ok(false);
    }

    // The counts come from shared memory: check them before trusting them.
    let view = segment.attach_read_only()?;
    let mut total = 0;
    for (i, letter) in LETTERS.iter().enumerate() {
        let count = view.load_u32(COUNT_OFFSET + 4 * i)?;
        if count > rounds {
            return Err(format!("process {i} reported {count} of {rounds} rounds").into());
        }
        println!(
            "process {}: {count} of {rounds} rounds saw a foreign letter",
            *letter as char
        );
        total += count;
    }
    let how = if protected {
        "protected by a SEM_UNDO semaphore"
    } else {
        "unprotected: races are expected"
    };
    println!(
        "{} processes x {rounds} rounds: {total} rounds saw a foreign letter ({how})",
        LETTERS.len()
    );
    Ok(!protected || total == 0)
}

/// Waits for every child. When one fails, calls `on_failure` once (to wake the others) and goes on
/// waiting. Returns how many failed.
fn supervise(children: &mut [Child], mut on_failure: impl FnMut()) -> AnyResult<usize> {
    let mut done = vec![false; children.len()];
    let mut failures = 0;
    while done.iter().any(|d| !d) {
        for (child, done) in children.iter_mut().zip(done.iter_mut()) {
            if *done {
                continue;
            }
            if let Some(status) = child.try_wait()? {
                *done = true;
                if !status.success() {
                    if failures == 0 {
                        on_failure();
                    }
                    failures += 1;
                }
            }
        }
        sleep(Duration::from_millis(5));
    }
    Ok(failures)
}

/// Fills every cell with `letter`, yields, and says whether all cells still hold it.
fn write_and_check(cells: &Attachment, letter: u32) -> AnyResult<bool> {
    // Atomics, because in the unprotected mode the other process writes the same cells at the same
    // time; Relaxed suffices: the semaphore (a system call) orders the protected mode.
    for c in 0..CELLS {
        cells.atomic_u32(4 * c)?.store(letter, Ordering::Relaxed);
    }
    std::thread::yield_now();
    for c in 0..CELLS {
        if cells.atomic_u32(4 * c)?.load(Ordering::Relaxed) != letter {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Process `index`: `rounds` rounds of write-yield-check, inside the lock if `protected`.
fn letter(
    segment: Segment,
    sems: SemSet,
    index: usize,
    rounds: u32,
    protected: bool,
) -> AnyResult<()> {
    let letter = u32::from(*LETTERS.get(index).ok_or("process index out of range")?);
    let cells = segment.attach()?;
    sems.wait(GATE)?;
    let mut foreign = 0u32;
    for _ in 0..rounds {
        if protected {
            sems.wait_undo(LOCK)?;
        }
        let own = write_and_check(&cells, letter);
        if protected {
            sems.post_undo(LOCK)?;
        }
        if !own? {
            foreign += 1;
        }
    }
    cells
        .atomic_u32(COUNT_OFFSET + 4 * index)?
        .store(foreign, Ordering::Release);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Children are started as: letter SEGMENT_ID SEM_ID INDEX ROUNDS protected|unprotected.
    let result = match args.as_slice() {
        [role, segment, sems, index, rounds, mode] if role == "letter" => (|| {
            letter(
                Segment::from_id(segment.parse()?),
                SemSet::from_id(sems.parse()?),
                index.parse()?,
                rounds.parse()?,
                mode == "protected",
            )
        })()
        .map(|()| true),
        _ => parent(args.into_iter()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sysv_letters (pid {}): {e}", std::process::id());
            ExitCode::FAILURE
        }
    }
}
