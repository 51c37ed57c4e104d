//! # ipckit-bench — the measurement engine behind `ipckit bench`
//!
//! Latency and throughput of every [`ipckit::transport`] between two real processes, with checked
//! payloads. It uses only ipckit's public API, so what it measures is what a user of the library
//! gets; the `ipckit` command and `benches/peers` (iceoryx2, same payloads and JSON) call it.
//!
//! - **Latency** is a ping-pong: this process sends a message, the peer process checks it and
//!   sends it back, this process checks the echo. One-way latency is half the round trip,
//!   recorded per round trip in an HDR histogram (3 significant digits), reported as mean, p50,
//!   p90, p99, p99.9 and max. A warm-up (a tenth of the iterations, at most 1000, or a tenth of
//!   the duration) is not recorded.
//! - **Throughput** is a one-way stream for a duration: after a warm-up of a tenth of it, the
//!   messages sent are counted until the duration is over, then a stop message follows and the
//!   clock stops when the peer's acknowledgement arrives; the acknowledgement carries the number
//!   of messages the peer received and checked, which must be the number sent.
//! - **Wake** is what a user of blocking IPC feels: the peer sends one message after each pause
//!   (1 ms by default), so this process is asleep in its receive when it comes; each message
//!   carries its send time (`CLOCK_MONOTONIC`, one clock for both processes) and the one-way time
//!   from send to receive is recorded, reported as for latency (the table shows p50 / p99).
//! - **The floor**: with latency in the plan, one cache line bounced between the two processes
//!   ([`BASELINE`], `baseline.rs`), timed the same way, so shared-memory transports can be read
//!   as multiples of the least any of them can cost ([`Report::baseline`]).
//! - Besides ipckit's transports, `channel-zc` measures the channel's zero-copy path across
//!   processes: the sender writes each message into a slot it reserved
//!   ([`Producer::reserve`](ipckit::channel::Producer::reserve), `commit`), the receiver checks
//!   it where it lies ([`Consumer::recv_ref`](ipckit::channel::Consumer::recv_ref)).
//! - Every message carries real bytes of its full size, and every receiver checks its sequence
//!   number and checksum ([`payload`]), so no transport can win by not moving data.
//!
//! The peer is a separate program (the `ipckit` binary re-executed with a hidden subcommand, or
//! any program that calls [`peer_main`]), started once per transport; with `pin` the two
//! processes run on two different CPUs (`sched_setaffinity`). A peer that fails or dies makes its
//! cells fail with its error, never hang the run: a watchdog aborts the transport's waits.
//!
//! # References
//! [hdrhistogram](https://hdrhistogram.github.io/HdrHistogram/),
//! [sched_setaffinity(2)](https://man7.org/linux/man-pages/man2/sched_setaffinity.2.html),
//! [ipc-bench](https://github.com/goldsborough/ipc-bench)

#![warn(missing_docs)]

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use ipckit::transport::{AbortHandle, Options, TransportKind};
use ipckit::Object;

use link::{peer_error, AsyncLink, IpcLink, Link, ZcLink};

mod baseline;
mod error;
mod link;
pub mod payload;
pub mod placement;
mod results;
pub mod sanity;
mod svg;

pub use baseline::NAME as BASELINE;
pub use error::{Error, Result};
pub use link::{ASYNC_NAME, ZC_NAME};
pub use payload::Payload;
pub use placement::{Placement, Sharing};
pub use results::{
    format_ns, format_rate, format_size, Cell, Latency, Machine, Measurement, Pattern, Report,
    Skipped, Spread, Table, Throughput,
};
pub use sanity::{Noise, Suspect};
pub use svg::render_svg;

/// The sizes measured by default: 64 B, 1 KiB, 8 KiB, 64 KiB, 1 MiB.
pub const DEFAULT_SIZES: [u64; 5] = [64, 1 << 10, 8 << 10, 64 << 10, 1 << 20];

/// The size the `signal` transport is measured at, whatever the sizes: one `int`.
pub const SIGNAL_SIZE: u64 = 4;

/// How long a host waits for its peer to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A transport the bench measures: one of ipckit's, or `channel-zc`, the channel's zero-copy
/// path ([`Producer::reserve`](ipckit::channel::Producer::reserve) and
/// [`Consumer::recv_ref`](ipckit::channel::Consumer::recv_ref)), which no [`TransportKind`] is
/// because it lends shared memory instead of taking and giving bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One of ipckit's transports, through [`ipckit::transport`].
    Ipc(TransportKind),
    /// The channel (blocking), written and read in place.
    ChannelZc,
    /// The channel awaited on a tokio runtime (`channel::tokio`), copying as `channel` does.
    ChannelAsync,
}

impl Transport {
    /// Every transport: ipckit's in their order, `channel-zc` after `channel-spin`.
    pub fn all() -> Vec<Transport> {
        let mut all = Vec::new();
        for kind in TransportKind::ALL {
            all.push(Transport::Ipc(kind));
            if kind == TransportKind::ChannelSpin {
                all.push(Transport::ChannelZc);
                all.push(Transport::ChannelAsync);
            }
        }
        all
    }

    /// The name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ipc(kind) => kind.name(),
            Transport::ChannelZc => ZC_NAME,
            Transport::ChannelAsync => ASYNC_NAME,
        }
    }

    /// The ipckit transport it is, if it is one.
    pub fn kind(self) -> Option<TransportKind> {
        match self {
            Transport::Ipc(kind) => Some(kind),
            Transport::ChannelZc | Transport::ChannelAsync => None,
        }
    }

    fn supports_throughput(self) -> bool {
        self.kind().is_none_or(TransportKind::supports_throughput)
    }

    /// Whether it can carry a message of `len` bytes; if not, why.
    fn check_size(self, len: usize) -> std::result::Result<(), String> {
        self.kind()
            .unwrap_or(TransportKind::Channel)
            .check_size(len)
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Transport {
    type Err = Error;
    fn from_str(s: &str) -> Result<Transport> {
        if s == ZC_NAME {
            return Ok(Transport::ChannelZc);
        }
        if s == ASYNC_NAME {
            return Ok(Transport::ChannelAsync);
        }
        s.parse::<TransportKind>().map(Transport::Ipc).map_err(|e| {
            Error::invalid(
                "parse transport",
                Object::Other(format!("{s:?}").into()),
                format!("{} (or {ZC_NAME}, {ASYNC_NAME})", error::one_line(&e)),
            )
        })
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The transports, in order.
    pub transports: Vec<Transport>,
    /// Message sizes in bytes. `signal` is measured at [`SIGNAL_SIZE`] in addition.
    pub sizes: Vec<u64>,
    /// Which of latency, throughput and wake.
    pub patterns: Vec<Pattern>,
    /// Latency: round trips measured per cell; wake: messages (at most; see `duration`).
    pub iterations: u64,
    /// Throughput: how long each cell streams. Latency and wake: the most a cell takes.
    pub duration: Duration,
    /// Wake: the sender's pause before each message, long enough for the receiver to sleep.
    pub wake_pause: Duration,
    /// Run the two processes on two different CPUs.
    pub pin: bool,
    /// With `pin`: this process's CPU and the peer's ([`check_cpus`]); without, the first two
    /// this process may use.
    pub cpus: Option<(usize, usize)>,
    /// How many times a suspect cell is measured again, at most.
    pub retries: u32,
    /// How many suspect cells a run measures again, at most.
    pub remeasure_limit: usize,
    /// With latency in the plan, also measure the floor: one cache line bounced between the two
    /// processes ([`BASELINE`], in [`Report::baseline`]).
    pub baseline: bool,
    /// How many times the whole plan is measured, the transports taking turns (A B A B): each
    /// cell of the report is then the median round, with the lowest and highest in
    /// [`Report::spread`]. Values measured seconds apart on a shared machine do not compare;
    /// medians of interleaved rounds do.
    pub rounds: u32,
    /// Ends the run early when stopped from another thread (as the command does on SIGINT).
    pub stop: Stop,
}

/// Ends a [`run`] early from another thread — the command's, when a signal comes: the cell being
/// measured fails at once (its ends aborted, its peer ended, the channels it created removed),
/// and `run` measures nothing more and returns [`Error::Stopped`]. Clones stop the same run.
#[derive(Clone, Default)]
pub struct Stop(Arc<StopState>);

#[derive(Default)]
struct StopState {
    stopped: AtomicBool,
    /// The ends of the transport being measured.
    handles: Mutex<Vec<AbortHandle>>,
}

impl Stop {
    /// A run not stopped yet.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Stops the run: aborts the ends in use, and every end registered from now on.
    pub fn stop(&self) {
        let handles = self.0.handles.lock().unwrap_or_else(|e| e.into_inner());
        self.0.stopped.store(true, Ordering::SeqCst);
        for h in handles.iter() {
            h.abort();
        }
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// `Err(Error::Stopped)` once stopped.
    fn check(&self) -> Result<()> {
        if self.is_stopped() {
            return Err(Error::Stopped);
        }
        Ok(())
    }

    /// Aborts `handle` when the run is stopped (at once if it was). The lock orders this with
    /// `stop`: a handle is either in the list when `stop` walks it, or sees the flag set.
    fn register(&self, handle: AbortHandle) {
        let mut handles = self.0.handles.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_stopped() {
            handle.abort();
        }
        handles.push(handle);
    }

    /// Forgets the ends registered (their transport is done).
    fn clear(&self) {
        self.0
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

impl Default for Plan {
    fn default() -> Self {
        Plan::new()
    }
}

impl Plan {
    /// Every transport, the default sizes, every pattern, 10 000 iterations, 2 s, a 1 ms pause.
    pub fn new() -> Plan {
        Plan {
            transports: Transport::all(),
            sizes: DEFAULT_SIZES.to_vec(),
            patterns: vec![Pattern::Latency, Pattern::Throughput, Pattern::Wake],
            iterations: 10_000,
            duration: Duration::from_secs(2),
            wake_pause: Duration::from_millis(1),
            pin: false,
            cpus: None,
            retries: 2,
            remeasure_limit: 16,
            baseline: true,
            rounds: 1,
            stop: Stop::new(),
        }
    }

    /// [`Plan::new`] cut down to finish in seconds: 500 iterations, 100 ms. Call
    /// [`fit`](Self::fit) after changing it, to keep it within [`QUICK_BUDGET`].
    pub fn quick() -> Plan {
        Plan {
            iterations: 500,
            duration: Duration::from_millis(100),
            ..Plan::new()
        }
    }

    /// The cells of one transport: those to measure, and those that cannot be, with the reason.
    fn cells(&self, kind: Transport) -> (Vec<(Pattern, u64)>, Vec<Skipped>) {
        let mut run = Vec::new();
        let mut skipped = Vec::new();
        let signal = kind == Transport::Ipc(TransportKind::Signal);
        for &pattern in &self.patterns {
            let mut sizes = self.sizes.clone();
            if signal && pattern == Pattern::Latency && !sizes.contains(&SIGNAL_SIZE) {
                // The extra size exists for latency only.
                sizes.insert(0, SIGNAL_SIZE);
            }
            for &size in &sizes {
                let reason = if pattern == Pattern::Throughput && !kind.supports_throughput() {
                    Some(
                        "n/a: latency only (a full signal queue makes sigqueue fail, not wait)"
                            .to_string(),
                    )
                } else if pattern == Pattern::Wake
                    && size < payload::MIN_TIMED_SIZE as u64
                    && !signal
                {
                    Some(format!(
                        "n/a: the wake pattern needs {} bytes for a sequence number, checksum and send time",
                        payload::MIN_TIMED_SIZE
                    ))
                } else if size < payload::MIN_SIZE as u64 && !signal {
                    Some(format!(
                        "n/a: the bench needs {} bytes for its sequence number and checksum",
                        payload::MIN_SIZE
                    ))
                } else {
                    let size_ok = usize::try_from(size)
                        .map_err(|_| "too large for this machine".to_string())
                        .and_then(|s| kind.check_size(s));
                    size_ok.err().map(|r| r.replacen("not supported", "n/a", 1))
                };
                match reason {
                    Some(reason) => skipped.push(Skipped {
                        transport: kind.name().to_string(),
                        pattern,
                        size,
                        reason,
                        failed: false,
                    }),
                    None => run.push((pattern, size)),
                }
            }
        }
        (run, skipped)
    }

    /// Whether the run measures the floor: with `baseline`, and latency or wake in the plan.
    fn wants_floor(&self) -> bool {
        self.baseline
            && (self.patterns.contains(&Pattern::Latency) || self.patterns.contains(&Pattern::Wake))
    }

    /// How many cells will be measured.
    pub fn cell_count(&self) -> usize {
        let per_round: usize = self.transports.iter().map(|&k| self.cells(k).0.len()).sum();
        per_round * self.rounds.max(1) as usize
    }

    /// The most one cell of `pattern` can take, by the plan's own stopping rules (a machine
    /// that takes longer than this for a single message is not one to measure on): latency stops
    /// at `duration`, throughput streams a tenth more for its warm-up, wake sends at most
    /// `duration / wake_pause` messages and a tenth more for its warm-up, a sleep overshooting
    /// its pause by up to a fifth; plus `CELL_OVERHEAD` (building the payload, the end of the
    /// stream).
    fn cell_bound(&self, pattern: Pattern) -> Duration {
        let body = match pattern {
            Pattern::Latency => self.duration,
            Pattern::Throughput => self.duration + self.duration / 10,
            Pattern::Wake => {
                let (warm, measured) = wake_counts(self);
                let per = self.wake_pause + self.wake_pause / 5;
                per.saturating_mul(u32::try_from(warm + measured).unwrap_or(u32::MAX))
            }
        };
        body + CELL_OVERHEAD
    }

    /// An upper bound of how long [`run`] takes for this plan, by the plan's own stopping rules
    /// (see `cell_bound`): every cell, a peer started per transport (100 ms),
    /// the floor measured before the first transport and after each, and the re-measuring of
    /// suspect cells at its limit.
    pub fn time_bound(&self) -> Duration {
        let mut total = Duration::ZERO;
        let mut slowest = Duration::ZERO;
        let mut transports = 0u32;
        for &t in &self.transports {
            let (cells, _) = self.cells(t);
            if cells.is_empty() {
                continue;
            }
            transports += 1;
            total += TRANSPORT_OVERHEAD;
            for (pattern, _) in cells {
                let b = self.cell_bound(pattern);
                slowest = slowest.max(b);
                total += b;
            }
        }
        if self.wants_floor() {
            let floor = self.duration + TRANSPORT_OVERHEAD;
            total += floor * transports;
        }
        total = total.saturating_mul(self.rounds.max(1));
        if self.wants_floor() {
            total += self.duration + TRANSPORT_OVERHEAD;
        }
        let retries = u32::try_from(self.remeasure_limit)
            .unwrap_or(u32::MAX)
            .saturating_mul(self.retries);
        total + (slowest + TRANSPORT_OVERHEAD).saturating_mul(retries)
    }

    /// Cuts the plan down until [`time_bound`](Self::time_bound) is within `budget` (what
    /// `--quick` does, whatever else was asked for): sizes above [`QUICK_MAX_SIZE`] left out, at
    /// most [`QUICK_MAX_SIZES`] sizes (spread from the smallest to the largest), the duration at
    /// most 100 ms and shortened further if needed (to 5 ms at least), the wake pause at most a
    /// tenth of the duration, one retry of at most four suspect cells. Returns what was cut, in
    /// words, for the report.
    pub fn fit(&mut self, budget: Duration) -> Vec<String> {
        let mut notes = Vec::new();
        let mut sizes = self.sizes.clone();
        sizes.sort_unstable();
        sizes.dedup();
        let too_large: Vec<u64> = sizes
            .iter()
            .copied()
            .filter(|&s| s > QUICK_MAX_SIZE)
            .collect();
        if !too_large.is_empty() {
            sizes.retain(|&s| s <= QUICK_MAX_SIZE);
            let list: Vec<String> = too_large.iter().map(|&s| format_size(s)).collect();
            notes.push(format!(
                "--quick measures sizes up to {}: {} left out",
                format_size(QUICK_MAX_SIZE),
                list.join(", ")
            ));
        }
        if sizes.len() > QUICK_MAX_SIZES {
            let n = sizes.len();
            let kept: Vec<u64> = (0..QUICK_MAX_SIZES)
                .map(|i| sizes[i * (n - 1) / (QUICK_MAX_SIZES - 1)])
                .collect();
            notes.push(format!(
                "--quick measures at most {QUICK_MAX_SIZES} sizes: {} of the {n}",
                kept.iter()
                    .map(|&s| format_size(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            sizes = kept;
        }
        if sizes.is_empty() {
            sizes.push(DEFAULT_SIZES[0]);
        }
        self.sizes = sizes;
        let most = Duration::from_millis(100);
        if self.duration > most {
            notes.push(format!(
                "--quick: {} per cell at most",
                format_ns(most.as_nanos() as f64)
            ));
            self.duration = most;
        }
        self.retries = self.retries.min(1);
        self.remeasure_limit = self.remeasure_limit.min(4);
        if self.rounds > QUICK_MAX_ROUNDS {
            notes.push(format!(
                "--quick measures at most {QUICK_MAX_ROUNDS} rounds, not {}",
                self.rounds
            ));
            self.rounds = QUICK_MAX_ROUNDS;
        }
        let least = Duration::from_millis(5);
        let (asked, pause) = (self.duration, self.wake_pause);
        loop {
            if self.wake_pause > self.duration / 10 {
                self.wake_pause = (self.duration / 10).max(Duration::from_micros(100));
            }
            if self.time_bound() <= budget || self.duration <= least {
                break;
            }
            self.duration = (self.duration * 3 / 4).max(least);
        }
        if self.wake_pause < pause {
            notes.push(format!(
                "--quick: a wake pause of {} at most",
                format_ns(self.wake_pause.as_nanos() as f64)
            ));
        }
        if self.duration < asked {
            notes.push(format!(
                "--quick: {} per cell, to finish within {}",
                format_ns(self.duration.as_nanos() as f64),
                format_ns(budget.as_nanos() as f64)
            ));
        }
        notes
    }
}

/// What `--quick` promises: the run's [`Plan::time_bound`] within this.
pub const QUICK_BUDGET: Duration = Duration::from_secs(25);
/// The largest size `--quick` measures.
pub const QUICK_MAX_SIZE: u64 = 1 << 20;
/// The most sizes `--quick` measures.
pub const QUICK_MAX_SIZES: usize = 5;
/// The most rounds `--quick` measures.
pub const QUICK_MAX_ROUNDS: u32 = 3;
/// What a cell costs besides its measuring (building its payload, the end of its stream).
const CELL_OVERHEAD: Duration = Duration::from_millis(10);
/// What a transport (or a floor) costs besides its cells: starting the peer, connecting.
const TRANSPORT_OVERHEAD: Duration = Duration::from_millis(100);

/// How to start the peer process: a program and the arguments before the peer's own (for the
/// `ipckit` binary: its path and the hidden subcommand). The peer's arguments follow; the
/// program passes them to [`peer_main`].
#[derive(Debug, Clone)]
pub struct PeerCommand {
    /// The program.
    pub program: PathBuf,
    /// Arguments before the peer's own.
    pub args: Vec<OsString>,
}

/// What [`run`] reports as it goes.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Cells finished so far.
    pub done: usize,
    /// Cells in the plan.
    pub total: usize,
    /// The transport being measured.
    pub transport: Transport,
    /// The cell being measured, if one is.
    pub cell: Option<(Pattern, u64)>,
}

/// Measures the plan and returns the report; `progress` is called before each cell and once at
/// the end of each transport.
///
/// Cells a transport cannot carry are in [`Report::skipped`] with the reason; a cell that fails
/// (the peer died, a message did not check out) is there too, with the error, and the
/// transport's remaining cells with it. The error of `run` itself is for what stops everything
/// (the peer cannot be started, `pin` on a single CPU).
///
/// With the `signal` transport in the plan, this blocks its signals in the calling thread
/// ([`prepare_signals`](ipckit::transport::prepare_signals)): call `run` from the main thread
/// before other threads start, or they may take a signal the ordinary way and end the process.
pub fn run(plan: &Plan, peer: &PeerCommand, progress: &mut dyn FnMut(&Progress)) -> Result<Report> {
    if plan
        .transports
        .contains(&Transport::Ipc(TransportKind::Signal))
    {
        ipckit::transport::prepare_signals()?;
    }
    // Read before pinning: the CPU count is the machine's, not the one CPU we are pinned to.
    let mut report = Report::new(Machine::current());
    if plan.patterns.contains(&Pattern::Wake) {
        report.wake_pause_ns = Some(plan.wake_pause.as_nanos().try_into().unwrap_or(u64::MAX));
    }
    let pins = match (plan.pin, plan.cpus) {
        (false, _) => None,
        (true, Some((a, b))) => {
            check_cpus(a, b).map_err(|why| {
                Error::invalid("pin", Object::Other(format!("CPUs {a},{b}").into()), why)
            })?;
            Some((a, b))
        }
        (true, None) => Some(pick_cpus()?),
    };
    let saved = match pins {
        Some((mine, _)) => Some(pin_to(mine)?),
        None => None,
    };
    if let Some((mine, theirs)) = pins {
        report.placement = Some(placement::placement(
            std::path::Path::new(placement::SYSFS_CPUS),
            mine,
            theirs,
        ));
    }
    let peer_cpu = pins.map(|p| p.1);
    // Re-measurements of suspect results (floors and cells) the plan allows in all.
    let mut remeasures = u32::try_from(plan.remeasure_limit)
        .unwrap_or(u32::MAX)
        .saturating_mul(plan.retries);
    // The floor, on the same placement as the cells: before the first transport and after
    // each, so that its spread over the run says how steady the machine was.
    let floor = |report: &mut Report, remeasures: &mut u32, first: bool| -> Result<()> {
        // A stopped run ends here, before the first transport or after the one it stopped
        // (whose `run_transport`, like any after the stop, fails its cells at once).
        plan.stop.check()?;
        if !plan.wants_floor() {
            return Ok(());
        }
        let mut f = match baseline::measure(plan, peer, peer_cpu) {
            Ok(f) => f,
            // The first floor is part of what was asked for; a later one is a sample.
            Err(e) if first => return Err(e),
            Err(_) => return Ok(()),
        };
        if let Some(reason) = sanity::floor_problem(&f) {
            let mut retries = 0;
            while *remeasures > 0 && retries < plan.retries {
                *remeasures -= 1;
                retries += 1;
                if let Ok(again) = baseline::measure(plan, peer, peer_cpu) {
                    f = again;
                    if sanity::floor_problem(&f).is_none() {
                        break;
                    }
                }
            }
            report.suspect.push(Suspect {
                transport: BASELINE.to_string(),
                pattern: Pattern::Latency,
                size: f.size,
                reason,
                retries,
                unresolved: sanity::floor_problem(&f).is_some(),
            });
        }
        report.floors.push(f);
        Ok(())
    };
    // A first bounce, discarded: on a machine that was idle, the CPUs run slowly at first (the
    // clock ramps up, a VM's vCPUs are rescheduled), and the first floor measured would stand
    // for that, not for the machine the cells run on (measured: 210 ns, then 55–65 ns for the
    // rest of the run).
    if plan.wants_floor() {
        let _ = baseline::measure(plan, peer, peer_cpu);
    }
    floor(&mut report, &mut remeasures, true)?;
    let total = plan.cell_count();
    let mut done = 0;
    // Every round's measurements; a cell that failed in any round is reported failed.
    let mut measured = Vec::new();
    for round in 0..plan.rounds.max(1) {
        for &kind in &plan.transports {
            let (cells, skipped) = plan.cells(kind);
            if round == 0 {
                report.skipped.extend(skipped);
            }
            if cells.is_empty() {
                continue;
            }
            let outcome = run_transport(kind, &cells, plan, peer, peer_cpu, &mut |cell| {
                progress(&Progress {
                    done,
                    total,
                    transport: kind,
                    cell: Some(cell),
                });
                done += 1;
            });
            for (i, result) in outcome.into_iter().enumerate() {
                let (pattern, size) = cells[i];
                match result {
                    Ok(m) => measured.push(m),
                    Err(reason) => report.skipped.push(Skipped {
                        transport: kind.name().to_string(),
                        pattern,
                        size,
                        reason,
                        failed: true,
                    }),
                }
            }
            progress(&Progress {
                done,
                total,
                transport: kind,
                cell: None,
            });
            floor(&mut report, &mut remeasures, false)?;
        }
    }
    // A cell that failed in several rounds: its first failure.
    let mut failed = Vec::new();
    report.skipped.retain(|s| {
        let key = (s.transport.clone(), s.pattern, s.size);
        !s.failed
            || (!failed.contains(&key) && {
                failed.push(key);
                true
            })
    });
    (report.results, report.spread) = results::median_rounds(measured, |m| {
        report.skipped.iter().any(|s| {
            s.failed
                && s.transport == m.transport()
                && s.pattern == m.pattern()
                && s.size == m.size()
        })
    });
    if plan.rounds > 1 {
        report.rounds = Some(plan.rounds);
    }
    let total = plan.cell_count();
    remeasure_suspects(&mut report, plan, remeasures, &mut |transport, cells| {
        run_transport(transport, cells, plan, peer, peer_cpu, &mut |cell| {
            progress(&Progress {
                done: total,
                total,
                transport,
                cell: Some(cell),
            });
        })
    });
    plan.stop.check()?;
    report.baseline = median_floor(&report.floors);
    report.noise = sanity::noise(&report.floors, plan.rounds);
    if let Some(saved) = saved {
        let _ = rustix::thread::sched_setaffinity(None, &saved);
    }
    Ok(report)
}

/// The floor to show: the median by p50 of the sane floors (of all, if none is sane).
fn median_floor(floors: &[Latency]) -> Option<Latency> {
    let mut sane: Vec<&Latency> = floors
        .iter()
        .filter(|f| sanity::floor_problem(f).is_none())
        .collect();
    if sane.is_empty() {
        sane = floors.iter().collect();
    }
    sane.sort_by_key(|f| f.p50_ns);
    sane.get(sane.len().saturating_sub(1) / 2)
        .map(|f| (*f).clone())
}

/// One transport's cells measured: one result per cell (`run_transport`, or a test's fake).
type MeasureCells<'a> =
    dyn FnMut(Transport, &[(Pattern, u64)]) -> Vec<std::result::Result<Measurement, String>> + 'a;

/// Measures again (`measure`: with a new peer) the cells the run's own floor makes impossible
/// ([`sanity::cell_problem`]): each at most `plan.retries` times, at most `budget`
/// re-measurements in all; a re-measured cell replaces the first. Every suspect cell is in
/// [`Report::suspect`], unresolved if its last measurement is still impossible.
fn remeasure_suspects(
    report: &mut Report,
    plan: &Plan,
    mut budget: u32,
    measure: &mut MeasureCells<'_>,
) {
    let floor = sanity::lowest_floor(&report.floors);
    let suspects: Vec<(usize, String)> = report
        .results
        .iter()
        .enumerate()
        .filter_map(|(i, m)| sanity::cell_problem(m, floor).map(|r| (i, r)))
        .collect();
    for &transport in &plan.transports {
        let mut pending: Vec<(usize, String, u32)> = suspects
            .iter()
            .filter(|(i, _)| report.results[*i].transport() == transport.name())
            .map(|(i, r)| (*i, r.clone(), 0))
            .collect();
        let mut finished = Vec::new();
        for round in 1..=plan.retries {
            // As many of the pending cells as the budget allows, the rest as they are.
            let take = pending.len().min(budget as usize);
            if take == 0 {
                break;
            }
            budget -= take as u32;
            let batch: Vec<(usize, String, u32)> = pending.drain(..take).collect();
            let cells: Vec<(Pattern, u64)> = batch
                .iter()
                .map(|(i, _, _)| (report.results[*i].pattern(), report.results[*i].size()))
                .collect();
            let outcome = measure(transport, &cells);
            for ((i, reason, _), result) in batch.into_iter().zip(outcome) {
                if let Ok(m) = result {
                    report.results[i] = m;
                }
                match sanity::cell_problem(&report.results[i], floor) {
                    None => finished.push((i, reason, round, false)),
                    Some(_) => pending.push((i, reason, round)),
                }
            }
        }
        finished.extend(pending.into_iter().map(|(i, r, n)| (i, r, n, true)));
        for (i, reason, retries, unresolved) in finished {
            let m = &report.results[i];
            report.suspect.push(Suspect {
                transport: m.transport().to_string(),
                pattern: m.pattern(),
                size: m.size(),
                reason,
                retries,
                unresolved,
            });
        }
    }
}

/// Whether this process may pin itself to CPU `a` and its peer to CPU `b`: two different CPUs,
/// both in its affinity mask (`sched_getaffinity`). If not, why.
pub fn check_cpus(a: usize, b: usize) -> std::result::Result<(), String> {
    if a == b {
        return Err(format!(
            "the two processes need two different CPUs, not {a} twice"
        ));
    }
    let set =
        rustix::thread::sched_getaffinity(None).map_err(|e| format!("sched_getaffinity: {e}"))?;
    let allowed: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&c| set.is_set(c))
        .collect();
    for cpu in [a, b] {
        if !allowed.contains(&cpu) {
            return Err(format!(
                "CPU {cpu} is not one this process may run on ({})",
                allowed
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
    }
    Ok(())
}

/// Two CPUs this process may use: one for it, one for the peer.
/// The first two CPUs this process may run on (what `--pin` alone chooses).
pub fn pick_cpus() -> Result<(usize, usize)> {
    let set = rustix::thread::sched_getaffinity(None)
        .map_err(|e| Error::os("sched_getaffinity", Object::Other("this process".into()), e))?;
    let cpus: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&c| set.is_set(c))
        .take(2)
        .collect();
    match cpus[..] {
        [a, b] => Ok((a, b)),
        _ => Err(Error::invalid(
            "pin",
            Object::Other("this process".into()),
            "pinning needs two CPUs, and this process may run on one",
        )),
    }
}

/// `sched_setaffinity(0, {cpu})` — runs the calling thread (and the processes it starts from
/// now on) on `cpu` only: what `--pin` does to each side, for a program measuring a peer of its
/// own (`benches/peers`).
pub fn pin_thread(cpu: usize) -> Result<()> {
    pin_to(cpu).map(drop)
}

/// Runs `f` with the calling thread on `cpu` only (and the processes it starts), then gives the
/// thread back the CPUs it had.
pub fn on_cpu<T>(cpu: usize, f: impl FnOnce() -> T) -> Result<T> {
    let saved = pin_to(cpu)?;
    let out = f();
    rustix::thread::sched_setaffinity(None, &saved).map_err(|e| {
        Error::os(
            "sched_setaffinity",
            Object::Other("this thread's CPUs".into()),
            e,
        )
    })?;
    Ok(out)
}

/// `sched_setaffinity(0, {cpu})` — runs the calling thread on `cpu` only; returns the old set.
fn pin_to(cpu: usize) -> Result<rustix::thread::CpuSet> {
    let object = || Object::Other(format!("CPU {cpu}").into());
    let old = rustix::thread::sched_getaffinity(None)
        .map_err(|e| Error::os("sched_getaffinity", object(), e))?;
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
        .map_err(|e| Error::os("sched_setaffinity", object(), e))?;
    Ok(old)
}

/// The peer's cells as one argument: `l64,t1024,w64:200:1000,…` (a `wake` cell with the
/// number of messages the peer sends and the pause before each, in µs).
fn cells_arg(cells: &[(Pattern, u64)], plan: &Plan) -> String {
    let (warm, measured) = wake_counts(plan);
    cells
        .iter()
        .map(|&(p, s)| match p {
            Pattern::Latency => format!("l{s}"),
            Pattern::Throughput => format!("t{s}"),
            Pattern::Wake => format!("w{s}:{}:{}", warm + measured, plan.wake_pause.as_micros()),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One cell as the peer sees it.
#[derive(Debug, PartialEq)]
struct PeerCell {
    pattern: Pattern,
    size: u64,
    /// `wake`: how many messages to send, and the pause before each.
    wake: Option<(u64, Duration)>,
}

fn parse_cells(text: &str) -> Result<Vec<PeerCell>> {
    let bad = |c: &str, what: &str| Error::invalid("bench peer", Object::Other(c.into()), what);
    text.split(',')
        .filter(|c| !c.is_empty())
        .map(|c| {
            let (p, rest) = c.split_at(c.chars().next().map_or(0, char::len_utf8));
            let pattern = match p {
                "l" => Pattern::Latency,
                "t" => Pattern::Throughput,
                "w" => Pattern::Wake,
                _ => return Err(bad(c, "bad cell")),
            };
            let mut parts = rest.split(':');
            let size = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(c, "bad size"))?;
            let wake = match pattern {
                Pattern::Wake => {
                    let mut num = || -> Result<u64> {
                        parts
                            .next()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| bad(c, "bad wake count or pause"))
                    };
                    let count = num()?;
                    Some((count, Duration::from_micros(num()?)))
                }
                _ => None,
            };
            if parts.next().is_some() {
                return Err(bad(c, "bad cell"));
            }
            Ok(PeerCell {
                pattern,
                size,
                wake,
            })
        })
        .collect()
}

/// The peer's watchdog: sees it exit, and if it failed before we were done, aborts our ends.
struct Watch {
    handles: Mutex<Vec<AbortHandle>>,
    dead: AtomicBool,
    done: AtomicBool,
}

impl Watch {
    fn register(&self, handle: AbortHandle) {
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        if self.dead.load(Ordering::SeqCst) {
            handle.abort();
        }
        handles.push(handle);
    }

    fn peer_failed(&self) {
        let handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        self.dead.store(true, Ordering::SeqCst);
        for h in handles.iter() {
            h.abort();
        }
    }
}

/// What the host holds between setting a transport up and the peer's connecting.
enum HostSetup {
    Ipc(
        ipckit::transport::Pending<ipckit::transport::Sender>,
        ipckit::transport::Pending<ipckit::transport::Receiver>,
    ),
    /// The two channels, created by the host (the peer opens them by name): to the peer, and
    /// from it.
    Zc(Box<(ipckit::channel::Producer, ipckit::channel::Consumer)>),
}

/// A fresh channel name for `channel-zc`: `/ipckit-bench-<pid>-<n>-<dir>`.
fn zc_name(n: u32, dir: &str) -> String {
    format!("/ipckit-bench-{}-{n}-{dir}", std::process::id())
}

/// Sets up the host's ends; returns them and the two rendezvous strings for the peer.
fn host_setup(transport: Transport, max: usize) -> Result<(HostSetup, String, String)> {
    match transport {
        Transport::Ipc(kind) => {
            let mut options = Options::new();
            options.max_message(max).timeout(CONNECT_TIMEOUT);
            let to = kind.host_sender(&options)?;
            let from = kind.host_receiver(&options)?;
            let (a, b) = (to.rendezvous(), from.rendezvous());
            Ok((HostSetup::Ipc(to, from), a, b))
        }
        Transport::ChannelZc | Transport::ChannelAsync => {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let (to, from) = (zc_name(n, "to"), zc_name(n, "from"));
            let opts = link::zc_options(max);
            // Either side may create a channel; the host does, with these options, and the
            // last to leave removes it.
            let producer = opts.producer(&to)?;
            let consumer = opts.consumer(&from)?;
            Ok((HostSetup::Zc(Box::new((producer, consumer))), to, from))
        }
    }
}

/// Measures one transport's cells with one peer; one result per cell.
fn run_transport(
    transport: Transport,
    cells: &[(Pattern, u64)],
    plan: &Plan,
    peer: &PeerCommand,
    peer_cpu: Option<usize>,
    on_cell: &mut dyn FnMut((Pattern, u64)),
) -> Vec<std::result::Result<Measurement, String>> {
    let fail_all = |reason: String| cells.iter().map(|_| Err(reason.clone())).collect();
    if let Err(e) = plan.stop.check() {
        return fail_all(e.to_string());
    }
    let max = cells.iter().map(|c| c.1).max().unwrap_or(0) as usize;
    let (mut setup, to_arg, from_arg) = match host_setup(transport, max) {
        Ok(s) => s,
        Err(e) => return fail_all(format!("setup failed: {}", error::one_line(&e))),
    };
    let mut cmd = Command::new(&peer.program);
    cmd.args(&peer.args)
        .arg(transport.name())
        .arg(to_arg)
        .arg(from_arg)
        .arg(cells_arg(cells, plan))
        .arg(max.to_string())
        .arg(peer_cpu.map_or("-".to_string(), |c| c.to_string()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let HostSetup::Ipc(to, from) = &mut setup {
        if let Err(e) = to
            .prepare_child(&mut cmd)
            .and_then(|()| from.prepare_child(&mut cmd))
        {
            return fail_all(format!("setup failed: {}", error::one_line(&e)));
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return fail_all(format!(
                "cannot start the peer {}: {e}",
                peer.program.display()
            ))
        }
    };
    drop(cmd);
    let watch = Arc::new(Watch {
        handles: Mutex::new(Vec::new()),
        dead: AtomicBool::new(false),
        done: AtomicBool::new(false),
    });
    let mut stderr = child.stderr.take();
    let child = Arc::new(Mutex::new(child));
    let watchdog = {
        let watch = Arc::clone(&watch);
        let child = Arc::clone(&child);
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(err) = stderr.as_mut() {
                let _ = err.read_to_string(&mut text);
            }
            // The peer closed its stderr: it has exited (or is about to).
            let status = child.lock().unwrap_or_else(|e| e.into_inner()).wait();
            let ok = matches!(&status, Ok(s) if s.success());
            if !ok && !watch.done.load(Ordering::SeqCst) {
                watch.peer_failed();
            }
            let status = match status {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            (ok, status, text.trim().to_string())
        })
    };

    let register = |handle: AbortHandle| {
        plan.stop.register(handle.clone());
        watch.register(handle);
    };
    let mut results = Vec::new();
    // Our ends, kept until the peer has been reaped (below).
    let mut ends: Option<Box<dyn Link>> = None;
    let outcome = (|| -> Result<()> {
        let link: &mut dyn Link = &mut **ends.insert(match setup {
            HostSetup::Ipc(to, from) => {
                let tx = to.establish(Some(CONNECT_TIMEOUT))?;
                register(tx.abort_handle());
                let rx = from.establish(Some(CONNECT_TIMEOUT))?;
                register(rx.abort_handle());
                Box::new(IpcLink {
                    kind: transport.kind().unwrap_or(TransportKind::Channel),
                    tx: Some(tx),
                    rx,
                    buf: Vec::with_capacity(max),
                })
            }
            HostSetup::Zc(ends) if transport == Transport::ChannelAsync => {
                let (producer, consumer) = *ends;
                let link = AsyncLink::new(producer, consumer, CONNECT_TIMEOUT)?;
                register(link.abort.clone());
                Box::new(link)
            }
            HostSetup::Zc(ends) => {
                let (producer, consumer) = *ends;
                let zc = ZcLink::new(producer, consumer, CONNECT_TIMEOUT);
                register(zc.abort.clone());
                Box::new(zc)
            }
        });
        for &(pattern, size) in cells {
            on_cell((pattern, size));
            let name = transport.name();
            let size = size as usize;
            let m = match pattern {
                Pattern::Latency => latency(name, link, size, plan),
                Pattern::Throughput => throughput(name, link, size, plan),
                Pattern::Wake => wake(name, link, size, plan),
            };
            match m {
                Ok(m) => results.push(Ok(m)),
                Err(e) => {
                    results.push(Err(error::one_line(&e)));
                    return Err(e);
                }
            }
        }
        watch.done.store(true, Ordering::SeqCst);
        link.close_tx()?;
        link.expect_end()
    })();
    if outcome.is_err() {
        // The peer may wait for a message that will never come, on a mechanism that cannot tell
        // it we gave up: end it. (The watchdog reaps it; killing an already reaped child does
        // nothing.)
        let _ = child.lock().unwrap_or_else(|e| e.into_inner()).kill();
    }
    let (peer_ok, status, peer_err) =
        watchdog
            .join()
            .unwrap_or((false, "watchdog panicked".into(), String::new()));
    plan.stop.clear();
    // Only now, the peer gone, our ends leave: the last to leave a channel removes it, and a
    // peer that died holding it (killed above, or by a signal) never leaves. Had ours left
    // first, the channels the run created would outlive it.
    drop(ends);
    let peer_note = if peer_err.is_empty() {
        format!("peer {status}")
    } else {
        format!("peer {status}: {peer_err}")
    };
    if let Err(e) = outcome {
        let why = if peer_ok {
            error::one_line(&e)
        } else {
            format!("{} ({peer_note})", error::one_line(&e))
        };
        if let Some(last) = results.last_mut() {
            if last.is_err() {
                *last = Err(why.clone());
            }
        }
        while results.len() < cells.len() {
            results.push(Err(why.clone()));
        }
    } else if !peer_ok {
        // Every cell checked out on our side, but the peer failed at the very end.
        return fail_all(peer_note);
    }
    results
}

/// A histogram of nanoseconds, 1 ns to an hour, 3 significant digits.
fn histogram(name: &str) -> Result<Histogram<u64>> {
    Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)
        .map_err(|e| peer_error(name, format!("histogram: {e}")))
}

fn latency(name: &str, link: &mut dyn Link, size: usize, plan: &Plan) -> Result<Measurement> {
    let mut p = Payload::new(size);
    let mut hist = histogram(name)?;
    let warm_count = (plan.iterations / 10).clamp(1, 1000);
    let start = Instant::now();
    let warm_time = plan.duration / 10;
    let mut measuring = false;
    let mut seq = 0u64;
    let mut measured = 0u64;
    while measured < plan.iterations.max(1) {
        if !measuring && (seq >= warm_count || start.elapsed() >= warm_time) {
            measuring = true;
        }
        let t0 = Instant::now();
        link.send(&mut p, seq, None)?;
        let (got, _) = link.recv(size)?;
        let rtt = t0.elapsed();
        if got != seq {
            return Err(peer_error(
                name,
                format!("echo of message {got} where {seq} was sent"),
            ));
        }
        if measuring {
            let one_way = (rtt.as_nanos() / 2).clamp(1, u128::from(u64::MAX)) as u64;
            hist.saturating_record(one_way);
            measured += 1;
            if start.elapsed() >= plan.duration {
                break;
            }
        }
        seq += 1;
    }
    link.send(&mut p, payload::STOP, None)?;
    Ok(Measurement::Latency(latency_summary(
        name,
        Pattern::Latency,
        size as u64,
        measured,
        &hist,
    )))
}

/// A latency cell from its histogram of one-way times.
fn latency_summary(
    transport: &str,
    pattern: Pattern,
    size: u64,
    iterations: u64,
    hist: &Histogram<u64>,
) -> Latency {
    Latency {
        transport: transport.to_string(),
        pattern,
        size,
        iterations,
        mean_ns: hist.mean(),
        p50_ns: hist.value_at_quantile(0.50),
        p90_ns: hist.value_at_quantile(0.90),
        p99_ns: hist.value_at_quantile(0.99),
        p999_ns: hist.value_at_quantile(0.999),
        max_ns: hist.max(),
        run_floor_ns: None,
    }
}

fn throughput(name: &str, link: &mut dyn Link, size: usize, plan: &Plan) -> Result<Measurement> {
    let mut p = Payload::new(size);
    let begin = Instant::now();
    let warm_until = begin + plan.duration / 10;
    let mut counting_since: Option<(Instant, u64)> = None;
    let mut seq = 0u64;
    // The clock is read once every `stride` messages, not after each: a read costs 20–50 ns on
    // a VM, which would be a third of a 64-byte message over the channel and would cap the
    // sender, not the transport. The stride doubles while reads come less than CLOCK_GAP apart,
    // so a slow transport is still looked at after every message. Counts and times stay exact:
    // both ends of the measured span are taken at a read, with the messages sent by then.
    const CLOCK_GAP: Duration = Duration::from_micros(20);
    let (mut stride, mut next_read, mut last_read) = (1u64, 1u64, begin);
    loop {
        link.send(&mut p, seq, None)?;
        seq += 1;
        if seq < next_read {
            continue;
        }
        let now = Instant::now();
        if now.duration_since(last_read) < CLOCK_GAP && stride < 1 << 16 {
            stride *= 2;
        }
        (next_read, last_read) = (seq + stride, now);
        match counting_since {
            None if now >= warm_until => counting_since = Some((now, seq)),
            Some((t, _)) if now.duration_since(t) >= plan.duration => break,
            _ => {}
        }
    }
    link.send(&mut p, payload::STOP, None)?;
    let (acked, _) = link.recv(size)?;
    let end = Instant::now();
    if acked != seq {
        return Err(peer_error(
            name,
            format!("the receiver checked {acked} messages of the {seq} sent"),
        ));
    }
    let (t0, first) = counting_since.unwrap_or((begin, 0));
    let messages = seq - first;
    let seconds = end.duration_since(t0).as_secs_f64().max(1e-9);
    Ok(Measurement::Throughput(Throughput {
        transport: name.to_string(),
        pattern: Pattern::Throughput,
        size: size as u64,
        messages,
        seconds,
        msgs_per_sec: messages as f64 / seconds,
        bytes_per_sec: messages as f64 * size as f64 / seconds,
    }))
}

/// The `wake` pattern's counts for this plan: messages not recorded (the warm-up), and
/// recorded. A cell sends one message per pause, so it lasts about `duration` at most.
fn wake_counts(plan: &Plan) -> (u64, u64) {
    let per_pause = plan.duration.as_nanos() / plan.wake_pause.as_nanos().max(1);
    let measured = plan
        .iterations
        .min(u64::try_from(per_pause).unwrap_or(u64::MAX))
        .max(1);
    ((measured / 10).clamp(1, 100), measured)
}

/// The `wake` pattern, the host's side: the peer sends a message after each pause with its send
/// time in it ([`Payload::stamp_timed`]); this side, asleep in its receive, wakes, checks it and
/// records now − then. One clock (`CLOCK_MONOTONIC`) serves both processes.
fn wake(name: &str, link: &mut dyn Link, size: usize, plan: &Plan) -> Result<Measurement> {
    let (warm, _) = wake_counts(plan);
    let mut hist = histogram(name)?;
    let mut expected = 0u64;
    let mut measured = 0u64;
    loop {
        let (seq, time) = link.recv(size)?;
        let now = payload::now_ns();
        if seq == payload::STOP {
            break;
        }
        if seq != expected {
            return Err(peer_error(
                name,
                format!("message {seq} where {expected} was due"),
            ));
        }
        let sent = time.ok_or_else(|| peer_error(name, "a message without a send time"))?;
        if expected >= warm {
            hist.saturating_record(now.saturating_sub(sent).max(1));
            measured += 1;
        }
        expected += 1;
    }
    if measured == 0 {
        return Err(peer_error(name, "no message was measured"));
    }
    Ok(Measurement::Latency(latency_summary(
        name,
        Pattern::Wake,
        size as u64,
        measured,
        &hist,
    )))
}

/// The peer's side of the `wake` pattern: `count` messages, each after `pause`, each with its
/// send time; then the end.
fn wake_send(link: &mut dyn Link, size: usize, count: u64, pause: Duration) -> Result<()> {
    let mut p = Payload::new(size);
    for seq in 0..count {
        std::thread::sleep(pause);
        link.send(&mut p, seq, Some(payload::now_ns()))?;
    }
    link.send(&mut p, payload::STOP, None)
}

/// The peer's side of a run, given the arguments [`run`] starts it with (after the
/// [`PeerCommand`]'s own): transport, the two rendezvous strings, the cells, the largest message
/// and the CPU to run on (`-` for any). Returns when the run is over; an error means the run
/// failed (print it on stderr and exit non-zero, the runner reports it).
///
/// Call it from the main thread before any other thread starts (see [`run`] about signals). It
/// asks the kernel to kill this process if the parent dies (`PR_SET_PDEATHSIG`), so a peer never
/// outlives an interrupted run.
pub fn peer_main(args: &[String]) -> Result<()> {
    let usage = || {
        Error::invalid(
            "bench peer",
            Object::Other(format!("arguments {args:?}").into()),
            "expected TRANSPORT TO FROM CELLS MAX CPU",
        )
    };
    let [transport, to, from, cells, max, cpu] = args else {
        return Err(usage());
    };
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if transport == BASELINE {
        if cpu != "-" {
            pin_to(cpu.parse().map_err(|_| usage())?)?;
        }
        return baseline::peer(to);
    }
    let transport: Transport = transport.parse()?;
    let cells = parse_cells(cells)?;
    let max: usize = max.parse().map_err(|_| usage())?;
    if transport == Transport::Ipc(TransportKind::Signal) {
        ipckit::transport::prepare_signals()?;
    }
    if cpu != "-" {
        pin_to(cpu.parse().map_err(|_| usage())?)?;
    }
    let mut link: Box<dyn Link> = match transport {
        Transport::Ipc(kind) => {
            let mut options = Options::new();
            options.max_message(max).timeout(CONNECT_TIMEOUT);
            // SAFETY: this peer process was started by `run_transport` with the pipe ends that
            // `to` and `from` name inherited for exactly this use (`prepare_child`), and nothing
            // else in this process touches those descriptors.
            let rx = unsafe { kind.connect_receiver_inherited(to, &options) }?;
            // SAFETY: as above.
            let tx = unsafe { kind.connect_sender_inherited(from, &options) }?;
            Box::new(IpcLink {
                kind,
                tx: Some(tx),
                rx,
                buf: Vec::with_capacity(max),
            })
        }
        Transport::ChannelZc | Transport::ChannelAsync => {
            // The host created both channels; these options apply only if it is gone.
            let opts = link::zc_options(max);
            let consumer = opts.consumer(to)?;
            let producer = opts.producer(from)?;
            if transport == Transport::ChannelAsync {
                Box::new(AsyncLink::new(producer, consumer, CONNECT_TIMEOUT)?)
            } else {
                Box::new(ZcLink::new(producer, consumer, CONNECT_TIMEOUT))
            }
        }
    };
    let name = transport.name();
    for cell in cells {
        let size = cell.size as usize;
        if let Some((count, pause)) = cell.wake {
            wake_send(&mut *link, size, count, pause)?;
            continue;
        }
        let mut p = Payload::new(size);
        let mut expected = 0u64;
        loop {
            let (seq, _) = link.recv(size)?;
            if seq == payload::STOP {
                break;
            }
            if seq != expected {
                return Err(peer_error(
                    name,
                    format!("message {seq} where {expected} was due"),
                ));
            }
            expected += 1;
            if cell.pattern == Pattern::Latency {
                link.echo(&mut p, seq)?;
            }
        }
        if cell.pattern == Pattern::Throughput {
            let mut ack = Payload::new(size);
            link.send(&mut ack, expected, None)?;
        }
    }
    link.expect_end()?;
    link.close_tx()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_zc_and_channel_async_are_bench_transports() {
        let all = Transport::all();
        assert_eq!(all.len(), TransportKind::ALL.len() + 2);
        let spin = all
            .iter()
            .position(|&t| t == Transport::Ipc(TransportKind::ChannelSpin))
            .unwrap();
        assert_eq!(all[spin + 1], Transport::ChannelZc);
        assert_eq!(all[spin + 2], Transport::ChannelAsync);
        for t in all {
            assert_eq!(t.name().parse::<Transport>().unwrap(), t);
        }
        assert!("channel-zero".parse::<Transport>().is_err());
        // It streams, and carries what the channel carries.
        let plan = Plan {
            transports: vec![Transport::ChannelZc],
            sizes: vec![64, 1 << 20],
            ..Plan::quick()
        };
        let (run, skipped) = plan.cells(Transport::ChannelZc);
        assert_eq!(run.len(), 6, "{run:?} {skipped:?}");
    }

    #[test]
    fn a_wake_cell_tells_the_peer_how_many_messages_and_the_pause() {
        let plan = Plan {
            iterations: 50,
            duration: Duration::from_millis(100),
            wake_pause: Duration::from_millis(1),
            ..Plan::new()
        };
        // 50 measured (fewer than the 100 pauses that fit in 100 ms) after 5 of warm-up.
        assert_eq!(wake_counts(&plan), (5, 50));
        let short = Plan {
            iterations: 10_000,
            ..plan.clone()
        };
        assert_eq!(
            wake_counts(&short),
            (10, 100),
            "the duration caps the count"
        );
        let cells = [
            (Pattern::Latency, 64),
            (Pattern::Wake, 64),
            (Pattern::Throughput, 1024),
        ];
        let arg = cells_arg(&cells, &plan);
        assert_eq!(arg, "l64,w64:55:1000,t1024");
        let parsed = parse_cells(&arg).unwrap();
        assert_eq!(
            parsed[1],
            PeerCell {
                pattern: Pattern::Wake,
                size: 64,
                wake: Some((55, Duration::from_millis(1))),
            }
        );
        assert_eq!(parsed[2].wake, None);
        for bad in ["w64", "w64:5", "l64:5", "x64", "w64:5:1:2", "lé"] {
            assert!(parse_cells(bad).is_err(), "{bad}");
        }
    }

    /// Issue #14: `--quick` stays under 30 s whatever else is given — the plan's own bound, not
    /// the clock.
    #[test]
    fn quick_fits_its_budget_whatever_else_is_asked() {
        let mut plan = Plan::quick();
        let notes = plan.fit(QUICK_BUDGET);
        assert!(plan.time_bound() <= QUICK_BUDGET, "{:?}", plan.time_bound());
        assert!(
            plan.cell_count() > 100,
            "the default quick plan measures every cell"
        );
        assert_eq!(plan.sizes, DEFAULT_SIZES, "{notes:?}");

        // --sizes 2G, forty sizes, --duration 10s, --iterations 1e9, a 10 s wake pause.
        let mut plan = Plan::quick();
        plan.sizes = (0..40).map(|i| 64u64 << (i % 24)).collect();
        plan.sizes.push(2 << 30);
        plan.duration = Duration::from_secs(10);
        plan.iterations = 1_000_000_000;
        plan.wake_pause = Duration::from_secs(10);
        let before = plan.time_bound();
        assert!(before > Duration::from_secs(3600), "{before:?}");
        let notes = plan.fit(QUICK_BUDGET);
        assert!(plan.time_bound() <= QUICK_BUDGET, "{:?}", plan.time_bound());
        assert!(
            plan.sizes.iter().all(|&s| s <= QUICK_MAX_SIZE),
            "{:?}",
            plan.sizes
        );
        assert!(plan.sizes.len() <= QUICK_MAX_SIZES, "{:?}", plan.sizes);
        assert_eq!(plan.sizes.first(), Some(&64), "the smallest stays");
        let said = notes.join("\n");
        assert!(said.contains("2 GiB left out"), "{said}");
        assert!(said.contains("wake pause"), "{said}");

        // --rounds 50.
        let mut plan = Plan::quick();
        plan.rounds = 50;
        let notes = plan.fit(QUICK_BUDGET);
        assert!(plan.time_bound() <= QUICK_BUDGET, "{:?}", plan.time_bound());
        assert_eq!(plan.rounds, QUICK_MAX_ROUNDS);
        assert!(notes.join("\n").contains("3 rounds, not 50"), "{notes:?}");
    }

    /// Rounds repeat every cell and every floor after a transport; the first floor, before the
    /// first round, is measured once.
    #[test]
    fn the_time_bound_and_the_cell_count_grow_with_the_rounds() {
        let one = Plan {
            transports: vec![Transport::Ipc(TransportKind::Pipe)],
            sizes: vec![64],
            patterns: vec![Pattern::Latency],
            duration: Duration::from_millis(100),
            retries: 0,
            ..Plan::new()
        };
        let three = Plan {
            rounds: 3,
            ..one.clone()
        };
        let first_floor = Duration::from_millis(100) + TRANSPORT_OVERHEAD;
        assert_eq!(
            three.time_bound() - first_floor,
            (one.time_bound() - first_floor) * 3
        );
        assert_eq!(three.cell_count(), 3 * one.cell_count());
    }

    #[test]
    fn the_time_bound_counts_every_cell_the_floors_and_the_retries() {
        let plan = Plan {
            transports: vec![Transport::Ipc(TransportKind::Pipe)],
            sizes: vec![64],
            patterns: vec![Pattern::Latency, Pattern::Throughput],
            duration: Duration::from_millis(100),
            retries: 0,
            ..Plan::new()
        };
        // One peer, two floors (before and after), two cells.
        let want = TRANSPORT_OVERHEAD
            + 2 * (Duration::from_millis(100) + TRANSPORT_OVERHEAD)
            + Duration::from_millis(100)
            + CELL_OVERHEAD
            + Duration::from_millis(110)
            + CELL_OVERHEAD;
        assert_eq!(plan.time_bound(), want);
        let retrying = Plan {
            retries: 1,
            remeasure_limit: 3,
            ..plan.clone()
        };
        assert_eq!(
            retrying.time_bound(),
            want + 3 * (Duration::from_millis(110) + CELL_OVERHEAD + TRANSPORT_OVERHEAD)
        );
    }

    fn cell(transport: Transport, pattern: Pattern, p50: u64) -> Measurement {
        let mut hist = histogram("test").unwrap();
        hist.record(p50).unwrap();
        Measurement::Latency(latency_summary(transport.name(), pattern, 64, 1, &hist))
    }

    fn floor_of(p50: u64) -> Latency {
        let mut hist = histogram("test").unwrap();
        hist.record(p50).unwrap();
        latency_summary(BASELINE, Pattern::Latency, 8, 1, &hist)
    }

    /// Issue #14: a cell below the floor is measured again (bounded), replaced, and stays
    /// flagged only if it is still impossible.
    #[test]
    fn cells_below_the_floor_are_measured_again_within_bounds() {
        let spin = Transport::Ipc(TransportKind::ChannelSpin);
        let pipe = Transport::Ipc(TransportKind::Pipe);
        let plan = Plan {
            transports: vec![pipe, spin],
            retries: 2,
            ..Plan::quick()
        };
        let mut report = Report::new(Machine::current());
        report.floors = vec![floor_of(100), floor_of(4_000_000)];
        report.results = vec![
            cell(pipe, Pattern::Latency, 4000),
            cell(spin, Pattern::Latency, 3), // impossible: fixed on the second try
            cell(spin, Pattern::Wake, 2),    // impossible every time
        ];
        let mut calls = Vec::new();
        remeasure_suspects(&mut report, &plan, 10, &mut |t, cells| {
            calls.push((t, cells.to_vec()));
            cells
                .iter()
                .map(|&(pattern, _)| {
                    let fixed = pattern == Pattern::Latency && calls.len() == 2;
                    Ok(cell(t, pattern, if fixed { 250 } else { 1 }))
                })
                .collect()
        });
        // The pipe's cell is possible and never measured again; the two others twice each.
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(calls.iter().all(|(t, _)| *t == spin));
        assert_eq!(calls[0].1, [(Pattern::Latency, 64), (Pattern::Wake, 64)]);
        assert_eq!(report.results[1].pattern(), Pattern::Latency);
        let Measurement::Latency(fixed) = &report.results[1] else {
            panic!()
        };
        assert!(
            fixed.p50_ns >= 249,
            "the new measurement replaced the first: {fixed:?}"
        );
        let flags: Vec<(Pattern, u32, bool)> = report
            .suspect
            .iter()
            .map(|s| (s.pattern, s.retries, s.unresolved))
            .collect();
        assert_eq!(
            flags,
            [(Pattern::Latency, 2, false), (Pattern::Wake, 2, true)]
        );
        assert!(report.suspect[0].reason.contains("below the floor"));
        assert!(report
            .unresolved("channel-spin", Pattern::Wake, 64)
            .is_some());
        assert!(report
            .unresolved("channel-spin", Pattern::Latency, 64)
            .is_none());

        // The budget bounds the re-measurements of the whole run.
        let mut report2 = Report::new(Machine::current());
        report2.floors = vec![floor_of(100)];
        report2.results = vec![
            cell(spin, Pattern::Latency, 1),
            cell(spin, Pattern::Wake, 1),
        ];
        let mut n = 0;
        remeasure_suspects(&mut report2, &plan, 1, &mut |t, cells| {
            n += cells.len();
            cells.iter().map(|&(p, _)| Ok(cell(t, p, 1))).collect()
        });
        assert_eq!(n, 1);
        assert_eq!(
            report2.suspect.len(),
            2,
            "both flagged: {:?}",
            report2.suspect
        );
        assert!(report2.suspect.iter().all(|s| s.unresolved));
    }

    #[test]
    fn the_floor_shown_is_the_median_of_the_sane_ones() {
        let floors = [
            floor_of(300),
            floor_of(4_000_000),
            floor_of(100),
            floor_of(200),
        ];
        assert_eq!(median_floor(&floors).unwrap().p50_ns, 200);
        assert_eq!(
            median_floor(&floors[1..2]).unwrap().p50_ns,
            floors[1].p50_ns
        );
        assert!(median_floor(&[]).is_none());
    }

    #[test]
    fn a_wake_cell_needs_room_for_the_send_time() {
        let plan = Plan {
            transports: vec![Transport::Ipc(TransportKind::Pipe)],
            sizes: vec![16, 32],
            patterns: vec![Pattern::Wake],
            ..Plan::quick()
        };
        let (run, skipped) = plan.cells(Transport::Ipc(TransportKind::Pipe));
        assert_eq!(run, [(Pattern::Wake, 32)]);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].reason.contains("send time"), "{skipped:?}");
    }
}
