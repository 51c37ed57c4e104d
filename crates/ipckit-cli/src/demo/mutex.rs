//! `ipckit demo mutex`: N processes, one shared counter, one lock algorithm.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use ipckit::posix::sem::RawSemaphore;
use ipckit::shared::SharedRegion;
use ipckit::sync::{
    Bakery, Dekker, Event, EventMode, FilterLock, Mutex, ParticipantLock, Peterson, Szymanski,
    MAX_PARTICIPANTS,
};
use ipckit::sysv::sem::{OwnedSemSet, SemSet};
use ipckit::sysv::shm::{Attachment, OwnedSegment, Segment};
use ipckit::Key;

use super::launch::{Launcher, Workers};

/// The lock that guards the critical section in [`run_mutex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    /// [`ipckit::sync::Mutex`]: glibc's robust, process-shared futex lock.
    Futex,
    /// A System V semaphore taken and given back with `SEM_UNDO`.
    SysvSem,
    /// An unnamed, process-shared POSIX semaphore in the shared segment.
    PosixSem,
    /// [`Dekker`] (2 processes).
    Dekker,
    /// [`Peterson`] (2 processes).
    Peterson,
    /// [`FilterLock`].
    Filter,
    /// [`Szymanski`].
    Szymanski,
    /// [`Bakery`].
    Bakery,
    /// No lock at all: shows lost updates and overlaps.
    None,
}

impl Algo {
    /// Every algorithm, in the order the help lists them.
    pub const ALL: [Algo; 9] = [
        Algo::Futex,
        Algo::SysvSem,
        Algo::PosixSem,
        Algo::Dekker,
        Algo::Peterson,
        Algo::Filter,
        Algo::Szymanski,
        Algo::Bakery,
        Algo::None,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Futex => "futex",
            Algo::SysvSem => "sysv-sem",
            Algo::PosixSem => "posix-sem",
            Algo::Dekker => "dekker",
            Algo::Peterson => "peterson",
            Algo::Filter => "filter",
            Algo::Szymanski => "szymanski",
            Algo::Bakery => "bakery",
            Algo::None => "none",
        }
    }

    /// The number of processes the algorithm is limited to, if it is.
    pub fn fixed_procs(self) -> Option<usize> {
        matches!(self, Algo::Dekker | Algo::Peterson).then_some(2)
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algo {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Algo, String> {
        Algo::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Algo::ALL.iter().map(|a| a.name()).collect();
                format!("unknown algorithm {s:?} (one of {})", names.join(", "))
            })
    }
}

/// What [`run_mutex`] runs: `procs` processes each doing `iters` increments under `algo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MutexDemo {
    /// The lock.
    pub algo: Algo,
    /// The number of worker processes (1..=[`MAX_PARTICIPANTS`]; exactly 2 for Dekker and
    /// Peterson).
    pub procs: usize,
    /// Increments per process (at least 1).
    pub iters: u64,
}

/// What [`run_mutex`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct MutexReport {
    /// The lock.
    pub algo: Algo,
    /// The number of worker processes.
    pub procs: usize,
    /// Increments per process.
    pub iters: u64,
    /// `procs × iters`: the counter's value if no update was lost.
    pub expected: u64,
    /// The counter's value at the end.
    pub counted: u64,
    /// How many times a process entering the critical section found another one inside.
    pub overlaps: u64,
    /// From the start signal until the last worker exited.
    pub elapsed: Duration,
    /// Increments per second over `elapsed`.
    pub ops_per_sec: f64,
}

impl MutexReport {
    /// Whether the lock did its job: no update lost, never two inside.
    pub fn passed(&self) -> bool {
        self.counted == self.expected && self.overlaps == 0
    }
}

/// The shared board: the counter and the occupancy check, four atomics at the start of the
/// segment. A new System V segment is zero-filled (shmget(2)), which is the board's initial
/// state; workers find it in the segment whose id the demo passed them.
struct Board<'a> {
    /// The shared counter, read and written back non-atomically inside the critical section.
    counter: &'a AtomicU64,
    /// Overlaps seen by the occupancy check.
    overlaps: &'a AtomicU64,
    /// How many processes are inside the critical section now.
    inside: &'a AtomicU32,
    /// Workers attached and waiting for the start.
    ready: &'a AtomicU32,
}

impl Board<'_> {
    /// The board's bytes: counter, overlaps (u64), inside, ready (u32).
    const SIZE: usize = 24;
    const ALIGN: usize = 8;
}

/// The size of the demo's segment: board, start event and the largest lock fit in a page.
const SEGMENT_SIZE: usize = 4096;

/// The objects one process sees, cut from the segment in the same order by everyone. Each keeps
/// the attachment alive.
struct Shm {
    board: SharedRegion,
    start: Event,
    lock: SharedRegion,
}

impl Board<'_> {
    /// The board in `region` (cut by [`cut`]).
    fn of(region: &SharedRegion) -> Result<Board<'_>> {
        let b = region.bytes();
        Ok(Board {
            counter: b.atomic_u64(0)?,
            overlaps: b.atomic_u64(8)?,
            inside: b.atomic_u32(16)?,
            ready: b.atomic_u32(20)?,
        })
    }
}

fn cut(map: Attachment, init: bool) -> Result<Shm> {
    let mut r = SharedRegion::new(Arc::new(map))?;
    let board = r.take(Board::SIZE, Board::ALIGN)?;
    let start = r.take(Event::SIZE, Event::ALIGN)?;
    // The lock gets the rest, from a 64-byte boundary (enough alignment for every lock).
    r.take(0, 64)?;
    let start = if init {
        Event::init_in(start, EventMode::Manual, false)?
    } else {
        Event::open_in(start)?
    };
    Ok(Shm {
        board,
        start,
        lock: r,
    })
}

fn invalid(demo: &MutexDemo, reason: String) -> anyhow::Error {
    anyhow!(
        "demo mutex --algo {} --procs {} --iters {}: {reason}",
        demo.algo,
        demo.procs,
        demo.iters
    )
}

/// Checks the demo's parameters before anything is created.
pub fn check(demo: &MutexDemo) -> Result<()> {
    if let Some(n) = demo.algo.fixed_procs() {
        if demo.procs != n {
            return Err(invalid(
                demo,
                format!("{} is a {n}-process algorithm: use --procs {n}", demo.algo),
            ));
        }
    }
    if demo.procs == 0 || demo.procs > MAX_PARTICIPANTS {
        return Err(invalid(
            demo,
            format!("--procs must be between 1 and {MAX_PARTICIPANTS}"),
        ));
    }
    if demo.iters == 0 {
        return Err(invalid(demo, "--iters must be at least 1".into()));
    }
    demo.iters
        .checked_mul(demo.procs as u64)
        .ok_or_else(|| invalid(demo, "--procs × --iters overflows a 64-bit counter".into()))?;
    Ok(())
}

/// Runs the demo: creates a System V segment (and, for `sysv-sem`, a semaphore set), starts
/// `procs` workers through `launcher`, lets them go at once, waits for them and reports. Every
/// object is removed before returning, also on error; workers still running on an error are
/// killed.
pub fn run_mutex(demo: &MutexDemo, launcher: &Launcher) -> Result<MutexReport> {
    check(demo)?;
    let seg: OwnedSegment = Segment::options()
        .size(SEGMENT_SIZE)
        .exclusive(true)
        .open(Key::PRIVATE)?
        .into_owned();
    let shm = cut(seg.attach()?, true)?;
    let n = demo.procs;
    let mut sem: Option<OwnedSemSet> = None;
    let mut posix: Option<RawSemaphore> = None;
    match demo.algo {
        Algo::Futex => drop(Mutex::<u64>::init_in(shm.lock.clone(), 0)?),
        Algo::SysvSem => {
            let set = SemSet::options()
                .nsems(1)
                .exclusive(true)
                .open(Key::PRIVATE)?
                .into_owned();
            set.set(0, 1)?;
            sem = Some(set);
        }
        Algo::PosixSem => posix = Some(RawSemaphore::init_in(shm.lock.clone(), 1)?),
        Algo::Dekker => drop(Dekker::init_in(shm.lock.clone())?),
        Algo::Peterson => drop(Peterson::init_in(shm.lock.clone())?),
        Algo::Filter => drop(FilterLock::init_in(shm.lock.clone(), n)?),
        Algo::Szymanski => drop(Szymanski::init_in(shm.lock.clone(), n)?),
        Algo::Bakery => drop(Bakery::init_in(shm.lock.clone(), n)?),
        Algo::None => {}
    }
    let semid = sem.as_ref().map_or(-1, |s| s.id());
    let mut workers = Workers::new();
    for me in 0..n {
        let spec = format!(
            "mutex:{}:{}:{semid}:{me}:{}",
            demo.algo,
            seg.id(),
            demo.iters
        );
        workers.children.push(launcher.spawn(&spec)?);
    }
    let board = Board::of(&shm.board)?;
    workers.wait_until(Duration::from_secs(30), "all workers attaching", || {
        board.ready.load(Ordering::Acquire) as usize >= n
    })?;
    // Everyone is attached: the segment can go now and disappears with the last detach, even if
    // this process is killed.
    seg.remove()?;
    let t0 = Instant::now();
    shm.start.set();
    workers.wait_all()?;
    let elapsed = t0.elapsed();
    drop(posix);
    drop(sem);
    let expected = demo.iters * n as u64;
    Ok(MutexReport {
        algo: demo.algo,
        procs: n,
        iters: demo.iters,
        expected,
        counted: board.counter.load(Ordering::Acquire),
        overlaps: board.overlaps.load(Ordering::Acquire),
        elapsed,
        ops_per_sec: expected as f64 / elapsed.as_secs_f64().max(1e-9),
    })
}

/// A pause inside the critical section between reading and writing the counter, long enough
/// for another process to interleave if the lock lets it: a short spin, and every 16th time a
/// `sched_yield`.
fn pause(i: u64) {
    for _ in 0..64 {
        std::hint::spin_loop();
    }
    if i.is_multiple_of(16) {
        std::thread::yield_now();
    }
}

/// One worker: `ALGO:SHMID:SEMID:INDEX:ITERS`. `None` for a malformed spec.
pub fn worker(spec: &str) -> Option<Result<()>> {
    let mut parts = spec.split(':');
    let algo: Algo = parts.next()?.parse().ok()?;
    let shmid: i32 = parts.next()?.parse().ok()?;
    let semid: i32 = parts.next()?.parse().ok()?;
    let me: usize = parts.next()?.parse().ok()?;
    let iters: u64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(work(algo, shmid, semid, me, iters))
}

fn work(algo: Algo, shmid: i32, semid: i32, me: usize, iters: u64) -> Result<()> {
    let shm = cut(Segment::from_id(shmid).attach()?, false)?;
    let (board, start) = (Board::of(&shm.board)?, &shm.start);
    // The critical section, the same for every algorithm.
    let critical = |i: u64| {
        if board.inside.fetch_add(1, Ordering::SeqCst) != 0 {
            board.overlaps.fetch_add(1, Ordering::Relaxed);
        }
        let v = board.counter.load(Ordering::Relaxed);
        pause(i);
        board.counter.store(v + 1, Ordering::Relaxed);
        board.inside.fetch_sub(1, Ordering::SeqCst);
    };
    let begin = || {
        board.ready.fetch_add(1, Ordering::Release);
        start.wait();
    };
    let classic = |lock: &dyn ParticipantLock| -> Result<()> {
        begin();
        for i in 0..iters {
            let _g = lock.lock(me)?;
            critical(i);
        }
        Ok(())
    };
    match algo {
        Algo::Futex => {
            let m = Mutex::<u64>::open_in(shm.lock)?;
            begin();
            for i in 0..iters {
                let _g = m.lock().map_err(ipckit::Error::from)?;
                critical(i);
            }
        }
        Algo::SysvSem => {
            let set = SemSet::from_id(semid);
            begin();
            for i in 0..iters {
                set.wait_undo(0)?;
                critical(i);
                set.post_undo(0)?;
            }
        }
        Algo::PosixSem => {
            let sem = RawSemaphore::from_region(shm.lock)?;
            begin();
            for i in 0..iters {
                sem.wait()?;
                critical(i);
                sem.post()?;
            }
        }
        Algo::Dekker => {
            classic(&Dekker::open_in(shm.lock)?)?;
        }
        Algo::Peterson => {
            classic(&Peterson::open_in(shm.lock)?)?;
        }
        Algo::Filter => {
            classic(&FilterLock::open_in(shm.lock)?)?;
        }
        Algo::Szymanski => {
            classic(&Szymanski::open_in(shm.lock)?)?;
        }
        Algo::Bakery => {
            classic(&Bakery::open_in(shm.lock)?)?;
        }
        Algo::None => {
            begin();
            (0..iters).for_each(critical);
        }
    }
    Ok(())
}
