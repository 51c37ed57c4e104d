//! The classic System V shared-memory leak, made impossible: attach one segment in a loop.
//!
//! In C, `shmat` in a loop without `shmdt` maps the segment again on every pass, at a new address,
//! until the process runs out of mappings. With ipckit an attachment detaches when it goes out of
//! scope. This example attaches a private segment N times (default 1 000 000, `--iterations N`),
//! counts through each attachment, and checks in /proc/self/maps that the process has as many
//! mappings afterwards as before. It exits non-zero if they grew; the segment is removed in any case.

use std::error::Error;
use std::process::ExitCode;

use ipckit::sysv::shm::Segment;
use ipckit::Key;

const USAGE: &str = "usage: sysv_shm_attach_loop [--iterations N]";

/// The number of mappings of this process: one line each in /proc/self/maps.
fn mappings() -> std::io::Result<usize> {
    Ok(std::fs::read_to_string("/proc/self/maps")?.lines().count())
}

fn parse_args() -> Result<u64, String> {
    let mut iterations = 1_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--iterations" => args.next().ok_or(USAGE)?,
            s if s.starts_with("--iterations=") => s["--iterations=".len()..].to_string(),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        };
        iterations = value
            .parse()
            .map_err(|_| format!("--iterations needs a number, not {value:?}"))?;
    }
    Ok(iterations)
}

fn run() -> Result<bool, Box<dyn Error>> {
    let iterations = parse_args()?;
    // Removed when `segment` is dropped: on success, on error and on panic.
    let segment = Segment::options()
        .size(4096)
        .create(true)
        .open(Key::PRIVATE)?
        .into_owned();

    mappings()?; // warm up: the first read of /proc may set things up
    let before = mappings()?;
    let mut while_attached = None;
    for i in 0..iterations {
        let attachment = segment.attach()?;
        let counter = attachment.read::<u64>(0)?;
        if counter != i {
            return Err(format!("pass {i}: the counter reads {counter}").into());
        }
        attachment.write(0, &(i + 1))?;
        if i == 0 {
            while_attached = Some(mappings()?);
        }
        // `attachment` is dropped here: shmdt.
    }
    let after = mappings()?;
    let counter = segment.attach_read_only()?.read::<u64>(0)?;

    println!(
        "segment id {}: attached and detached {iterations} times, counter = {counter}",
        segment.id()
    );
    let during = while_attached.map_or("-".to_string(), |n| n.to_string());
    println!(
        "mappings (/proc/self/maps lines): before {before}, while attached {during}, after {after}"
    );

    let mut ok = true;
    if counter != iterations {
        println!("FAIL: the counter should be {iterations}");
        ok = false;
    }
    if while_attached.is_some_and(|n| n != before + 1) {
        println!("FAIL: an attachment should add exactly one mapping");
        ok = false;
    }
    if after > before {
        println!("FAIL: {} mappings leaked", after - before);
        ok = false;
    }
    if ok {
        println!("ok: every attachment was detached; no mapping leaked");
    }
    segment.remove()?;
    Ok(ok)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sysv_shm_attach_loop: {e}");
            ExitCode::FAILURE
        }
    }
}
