//! Writers and a reader hand values over one shared integer, paced by two System V semaphores.
//!
//! A shared-memory segment holds a single `u32` slot. Semaphore FULL (starts at 0) counts values
//! waiting in the slot, EMPTY (starts at 1) counts free room: a writer waits for EMPTY, writes,
//! posts FULL; the reader waits for FULL, reads, posts EMPTY. Several writer processes (default 3,
//! `--writers N`) each write `--values M` distinct values (default 1000); the reader checks that it
//! read every one exactly once. The operations carry no `SEM_UNDO`: a unit taken by one process is
//! given back by another, which is what a hand-off is.
//!
//! The processes are this binary run again with a role argument. The parent creates private
//! objects, passes their ids on the command line, and owns them: they are removed when it returns,
//! also on failure. If any child fails, the parent removes the semaphore set at once, which wakes
//! every blocked process with `EIDRM` instead of leaving it waiting for ever.

use std::error::Error;
use std::process::{Child, Command, ExitCode};
use std::thread::sleep;
use std::time::Duration;

use ipckit::sysv::sem::SemSet;
use ipckit::sysv::shm::Segment;
use ipckit::Key;

const USAGE: &str = "usage: sysv_handshake [--writers N] [--values M]";

/// Semaphore 0: values waiting in the slot.
const FULL: u16 = 0;
/// Semaphore 1: free room in the slot.
const EMPTY: u16 = 1;

type AnyResult<T> = Result<T, Box<dyn Error>>;

fn number(args: &mut impl Iterator<Item = String>, what: &str) -> AnyResult<u32> {
    let value = args
        .next()
        .ok_or_else(|| format!("{what} needs a value\n{USAGE}"))?;
    Ok(value
        .parse()
        .map_err(|_| format!("{what} needs a number, not {value:?}"))?)
}

/// Parent: create the objects, start the processes, wait for them, report.
fn parent(mut args: impl Iterator<Item = String>) -> AnyResult<bool> {
    let (mut writers, mut values) = (3u32, 1000u32);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--writers" => writers = number(&mut args, "--writers")?,
            "--values" => values = number(&mut args, "--values")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(true);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    if writers == 0 || writers.checked_mul(values).is_none_or(|t| t > 10_000_000) {
        return Err("--writers must be at least 1, and writers x values at most 10 million".into());
    }

    // Owned: removed when this function returns, whatever happens.
    let segment = Segment::options()
        .size(4)
        .create(true)
        .open(Key::PRIVATE)?
        .into_owned();
    let sems = SemSet::create_exclusive(Key::PRIVATE, 2)?.into_owned();
    sems.set_all(&[0, 1])?; // FULL = 0, EMPTY = 1

    let exe = std::env::current_exe()?;
    let ids = [segment.id().to_string(), sems.id().to_string()];
    let mut children = Vec::new();
    let mut spawn = |role: &str, a: u32, b: u32| -> AnyResult<()> {
        let args = [a.to_string(), b.to_string()];
        children.push(Command::new(&exe).arg(role).args(&ids).args(args).spawn()?);
        Ok(())
    };
    spawn("reader", writers, values)?;
    for w in 0..writers {
        spawn("writer", w, values)?;
    }

    let failures = supervise(&mut children, || {
        eprintln!(
            "sysv_handshake: a process failed; removing the semaphore set to stop the others"
        );
        let _ = SemSet::remove(&sems); // wakes blocked processes with EIDRM
    })?;
    println!(
        "{} processes ({writers} writers, 1 reader) finished, {failures} failed",
        children.len()
    );
    Ok(failures == 0)
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

/// Writer `index`: writes `index * values + 0 .. index * values + values - 1`.
fn writer(segment: Segment, sems: SemSet, index: u32, values: u32) -> AnyResult<()> {
    let slot = segment.attach()?;
    for n in 0..values {
        sems.wait(EMPTY)?;
        slot.write(0, &(index * values + n))?;
        sems.post(FULL)?;
    }
    Ok(())
}

/// Reader: takes `writers * values` values and checks each was written exactly once.
fn reader(segment: Segment, sems: SemSet, writers: u32, values: u32) -> AnyResult<()> {
    let total = writers * values;
    let slot = segment.attach_read_only()?;
    let mut seen = vec![0u32; total as usize];
    for _ in 0..total {
        sems.wait(FULL)?;
        let value = slot.read::<u32>(0)?;
        sems.post(EMPTY)?;
        // Shared memory is untrusted: check the value before using it as an index.
        let count = seen
            .get_mut(value as usize)
            .ok_or_else(|| format!("read {value}, which no writer writes (0..{total})"))?;
        *count += 1;
    }
    let missing = seen.iter().filter(|&&c| c == 0).count();
    let repeated = seen.iter().filter(|&&c| c > 1).count();
    if missing > 0 || repeated > 0 {
        return Err(format!(
            "of {total} values, {missing} were never read and {repeated} were read more than once"
        )
        .into());
    }
    println!("reader: {total} values from {writers} writers read exactly once");
    Ok(())
}

fn child(role: &str, segment: &str, sems: &str, a: &str, b: &str) -> AnyResult<()> {
    let segment = Segment::from_id(segment.parse()?);
    let sems = SemSet::from_id(sems.parse()?);
    let (a, b) = (a.parse()?, b.parse()?);
    match role {
        "writer" => writer(segment, sems, a, b),
        "reader" => reader(segment, sems, a, b),
        other => Err(format!("unknown role {other:?}").into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Children are started as: reader SEGMENT_ID SEM_ID WRITERS VALUES,
    // or writer SEGMENT_ID SEM_ID INDEX VALUES.
    let result = match args.as_slice() {
        [role, segment, sems, a, b] if role == "reader" || role == "writer" => {
            child(role, segment, sems, a, b).map(|()| true)
        }
        _ => parent(args.into_iter()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sysv_handshake (pid {}): {e}", std::process::id());
            ExitCode::FAILURE
        }
    }
}
