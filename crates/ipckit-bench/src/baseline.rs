//! The floor under every shared-memory latency: one cache line bounced between two processes.
//!
//! Two processes map the same page; the host stores an odd number into one 64-bit word, the peer
//! spins until it sees it and stores the next even number, the host spins until it sees that. A
//! round trip is therefore two cache-line transfers between the CPUs and nothing else: no system
//! call, no payload, no check. Any transport that moves a message through shared memory pays at
//! least this, so `channel-spin`'s 64-byte latency is reported as a multiple of it.
//!
//! It is timed exactly as the transports are (two `Instant::now` per round trip, half the round
//! trip recorded in the same histogram), so the ratio compares like with like. It is not a
//! transport and is never the best of a column: it moves 8 bytes and checks nothing.
//!
//! The page is a file in the runtime directory (mode 0600, created new, never followed through a
//! symlink), removed when the measurement ends, also on error.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use ipckit::mmap::{page_size, Mmap};
use ipckit::Object;

use super::{latency_summary, Latency, Pattern, PeerCommand, Plan, CONNECT_TIMEOUT};
use crate::error::{Error, Result};

/// The name the baseline has in reports and on the peer's command line.
pub const NAME: &str = "cache-line";

/// The peer's "mapped and ready" value (the reply to round 0).
const READY: u64 = 2;
/// The host's "done": odd, so the peer takes it for a round, and never a round's value.
const STOP: u64 = u64::MAX;
/// Spins between two looks at the clock while waiting.
const SPINS_PER_CHECK: u32 = 1 << 12;
/// How long the host waits for one reply before it checks on the peer, and the peer for a round.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

fn object(path: &Path) -> Object {
    Object::Path(path.into())
}

/// A fresh path for the page: `ipckit-bench-<pid>-<n>.line` in `$XDG_RUNTIME_DIR` when it is a
/// directory, else in the temporary directory.
fn fresh_path() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if Path::new(&dir).is_dir() => PathBuf::from(dir),
        _ => std::env::temp_dir(),
    };
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("ipckit-bench-{}-{n}.line", std::process::id()))
}

/// Removes the file it names when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Ends the peer if the host gives up early; reaps it either way.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Spins until `word` holds `want`; `check` is called every few thousand spins with the time
/// waited so far and may give up.
fn spin_until(
    word: &AtomicU64,
    want: u64,
    mut check: impl FnMut(Duration) -> Result<()>,
) -> Result<()> {
    let start = Instant::now();
    loop {
        for _ in 0..SPINS_PER_CHECK {
            // Acquire pairs with the other side's Release store: the value is all there is to
            // see, so Relaxed would do, but a real hand-off orders its data by this edge and the
            // baseline should cost what such a hand-off costs (the same on x86-64).
            if word.load(Ordering::Acquire) == want {
                return Ok(());
            }
            std::hint::spin_loop();
        }
        check(start.elapsed())?;
    }
}

/// Measures the bounce with the plan's iterations, warm-up and time limit; the peer is started
/// with `peer` and runs on `peer_cpu` if given.
pub(super) fn measure(plan: &Plan, peer: &PeerCommand, peer_cpu: Option<usize>) -> Result<Latency> {
    let path = fresh_path();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::os("open", object(&path), e))?;
    // Removed when the measurement ends, however it ends.
    let _remove = RemoveOnDrop(path.clone());
    let map = map_page(&file, &path, true)?;
    let word = map.atomic_u64(0)?;

    let child = Command::new(&peer.program)
        .args(&peer.args)
        .arg(NAME)
        .arg(&path)
        .args(["-", "-", "0"])
        .arg(peer_cpu.map_or("-".to_string(), |c| c.to_string()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::os("spawn", Object::Path(peer.program.as_path().into()), e))?;
    let mut child = Reap(child);
    let mut alive = |waited: Duration| -> Result<()> {
        if let Ok(Some(_)) = child.0.try_wait() {
            return Err(Error::invalid(
                "cache-line bounce",
                object(&path),
                "the peer exited before the end",
            ));
        }
        if waited > ROUND_TIMEOUT.max(CONNECT_TIMEOUT) {
            return Err(Error::Timeout {
                op: "cache-line bounce",
                object: object(&path),
                timeout: waited,
            });
        }
        Ok(())
    };

    spin_until(word, READY, &mut alive)?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).map_err(|e| {
        Error::invalid(
            "cache-line bounce",
            object(&path),
            format!("histogram: {e}"),
        )
    })?;
    let warm_count = (plan.iterations / 10).clamp(1, 1000);
    let warm_time = plan.duration / 10;
    let start = Instant::now();
    let mut measured = 0u64;
    let mut round = 1u64;
    while measured < plan.iterations.max(1) {
        let measuring = round > warm_count || start.elapsed() >= warm_time;
        let t0 = Instant::now();
        // Release: see spin_until.
        word.store(2 * round + 1, Ordering::Release);
        spin_until(word, 2 * round + 2, &mut alive)?;
        let rtt = t0.elapsed();
        if measuring {
            hist.saturating_record((rtt.as_nanos() / 2).clamp(1, u128::from(u64::MAX)) as u64);
            measured += 1;
            if start.elapsed() >= plan.duration {
                break;
            }
        }
        round += 1;
    }
    word.store(STOP, Ordering::Release);
    let status = child
        .0
        .wait()
        .map_err(|e| Error::os("wait", Object::Path(peer.program.as_path().into()), e))?;
    if !status.success() {
        return Err(Error::invalid(
            "cache-line bounce",
            object(&path),
            format!("the peer failed ({status})"),
        ));
    }
    Ok(latency_summary(NAME, Pattern::Latency, 8, measured, &hist))
}

/// Maps the first page of the file, growing it to a page first when `create`.
fn map_page(file: &File, path: &Path, create: bool) -> Result<Mmap> {
    if create {
        file.set_len(page_size() as u64)
            .map_err(|e| Error::os("ftruncate", object(path), e))?;
    }
    Ok(Mmap::options()
        .shared()
        .read_write()
        .len(page_size())
        .map(file)?)
}

/// The peer's side: maps the file at `path`, says it is ready, and answers each round until the
/// host says stop. Gives up if no round comes for ten seconds.
pub(super) fn peer(path: &str) -> Result<()> {
    let path = Path::new(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::os("open", object(path), e))?;
    let map = map_page(&file, path, false)?;
    let word = map.atomic_u64(0)?;
    word.store(READY, Ordering::Release);
    let mut last = READY;
    loop {
        let start = Instant::now();
        let mut seen = last;
        while seen == last {
            for _ in 0..SPINS_PER_CHECK {
                seen = word.load(Ordering::Acquire);
                if seen != last {
                    break;
                }
                std::hint::spin_loop();
            }
            if seen == last && start.elapsed() > ROUND_TIMEOUT {
                return Err(Error::Timeout {
                    op: "cache-line bounce",
                    object: object(path),
                    timeout: start.elapsed(),
                });
            }
        }
        if seen == STOP {
            return Ok(());
        }
        if seen.is_multiple_of(2) || seen != last + 1 {
            return Err(Error::invalid(
                "cache-line bounce",
                object(path),
                format!("round value {seen} after {last}"),
            ));
        }
        last = seen + 1;
        word.store(last, Ordering::Release);
    }
}
