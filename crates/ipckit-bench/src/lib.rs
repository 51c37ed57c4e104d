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
//! - **The floor**: with latency in the plan, one cache line bounced between the two processes
//!   ([`BASELINE`], `baseline.rs`), timed the same way, so shared-memory transports can be read
//!   as multiples of the least any of them can cost ([`Report::baseline`]).
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

use ipckit::transport::{AbortHandle, Options, Receiver, Sender, TransportKind};
use ipckit::Object;

mod baseline;
mod error;
pub mod payload;
mod results;
mod svg;

pub use baseline::NAME as BASELINE;
pub use error::{Error, Result};
pub use payload::Payload;
pub use results::{
    format_ns, format_rate, format_size, Cell, Latency, Machine, Measurement, Pattern, Report,
    Skipped, Table, Throughput,
};
pub use svg::render_svg;

/// The sizes measured by default: 64 B, 1 KiB, 8 KiB, 64 KiB, 1 MiB.
pub const DEFAULT_SIZES: [u64; 5] = [64, 1 << 10, 8 << 10, 64 << 10, 1 << 20];

/// The size the `signal` transport is measured at, whatever the sizes: one `int`.
pub const SIGNAL_SIZE: u64 = 4;

/// How long a host waits for its peer to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The transports, in order.
    pub transports: Vec<TransportKind>,
    /// Message sizes in bytes. `signal` is measured at [`SIGNAL_SIZE`] in addition.
    pub sizes: Vec<u64>,
    /// Latency, throughput or both.
    pub patterns: Vec<Pattern>,
    /// Latency: round trips measured per cell (at most; see `duration`).
    pub iterations: u64,
    /// Throughput: how long each cell streams. Latency: the most a cell takes.
    pub duration: Duration,
    /// Run the two processes on two different CPUs.
    pub pin: bool,
    /// With latency in the plan, also measure the floor: one cache line bounced between the two
    /// processes ([`BASELINE`], in [`Report::baseline`]).
    pub baseline: bool,
}

impl Default for Plan {
    fn default() -> Self {
        Plan::new()
    }
}

impl Plan {
    /// Every transport, the default sizes, both patterns, 10 000 iterations, 2 s.
    pub fn new() -> Plan {
        Plan {
            transports: TransportKind::ALL.to_vec(),
            sizes: DEFAULT_SIZES.to_vec(),
            patterns: vec![Pattern::Latency, Pattern::Throughput],
            iterations: 10_000,
            duration: Duration::from_secs(2),
            pin: false,
            baseline: true,
        }
    }

    /// [`Plan::new`] cut down to finish in seconds: 500 iterations, 100 ms.
    pub fn quick() -> Plan {
        Plan {
            iterations: 500,
            duration: Duration::from_millis(100),
            ..Plan::new()
        }
    }

    /// The cells of one transport: those to measure, and those that cannot be, with the reason.
    fn cells(&self, kind: TransportKind) -> (Vec<(Pattern, u64)>, Vec<Skipped>) {
        let mut run = Vec::new();
        let mut skipped = Vec::new();
        let mut sizes = self.sizes.clone();
        if kind == TransportKind::Signal
            && self.patterns.contains(&Pattern::Latency)
            && !sizes.contains(&SIGNAL_SIZE)
        {
            sizes.insert(0, SIGNAL_SIZE);
        }
        for &pattern in &self.patterns {
            for &size in &sizes {
                let reason = if pattern == Pattern::Throughput && !kind.supports_throughput() {
                    if size == SIGNAL_SIZE && kind == TransportKind::Signal {
                        continue; // the extra size exists for latency only
                    }
                    Some(
                        "n/a: latency only (a full signal queue makes sigqueue fail, not wait)"
                            .to_string(),
                    )
                } else if size < payload::MIN_SIZE as u64 && kind != TransportKind::Signal {
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

    /// How many cells will be measured.
    pub fn cell_count(&self) -> usize {
        self.transports.iter().map(|&k| self.cells(k).0.len()).sum()
    }
}

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
    pub transport: TransportKind,
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
    if plan.transports.contains(&TransportKind::Signal) {
        ipckit::transport::prepare_signals()?;
    }
    // Read before pinning: the CPU count is the machine's, not the one CPU we are pinned to.
    let mut report = Report::new(Machine::current());
    let pins = if plan.pin { Some(pick_cpus()?) } else { None };
    let saved = match pins {
        Some((mine, _)) => Some(pin_to(mine)?),
        None => None,
    };
    if plan.baseline && plan.patterns.contains(&Pattern::Latency) {
        report.baseline = Some(baseline::measure(plan, peer, pins.map(|p| p.1))?);
    }
    let total = plan.cell_count();
    let mut done = 0;
    for &kind in &plan.transports {
        let (cells, skipped) = plan.cells(kind);
        report.skipped.extend(skipped);
        if cells.is_empty() {
            continue;
        }
        let outcome = run_transport(kind, &cells, plan, peer, pins.map(|p| p.1), &mut |cell| {
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
                Ok(m) => report.results.push(m),
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
    }
    if let Some(saved) = saved {
        let _ = rustix::thread::sched_setaffinity(None, &saved);
    }
    Ok(report)
}

/// Two CPUs this process may use: one for it, one for the peer.
fn pick_cpus() -> Result<(usize, usize)> {
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

/// The peer's cells as one argument: `l64,t1024,…`.
fn cells_arg(cells: &[(Pattern, u64)]) -> String {
    cells
        .iter()
        .map(|(p, s)| format!("{}{s}", if *p == Pattern::Latency { 'l' } else { 't' }))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_cells(text: &str) -> Result<Vec<(Pattern, u64)>> {
    text.split(',')
        .filter(|c| !c.is_empty())
        .map(|c| {
            let (p, s) = c.split_at(1);
            let pattern = match p {
                "l" => Pattern::Latency,
                "t" => Pattern::Throughput,
                _ => {
                    return Err(Error::invalid(
                        "bench peer",
                        Object::Other(c.into()),
                        "bad cell",
                    ))
                }
            };
            let size = s
                .parse()
                .map_err(|_| Error::invalid("bench peer", Object::Other(c.into()), "bad size"))?;
            Ok((pattern, size))
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

/// Measures one transport's cells with one peer; one result per cell.
fn run_transport(
    kind: TransportKind,
    cells: &[(Pattern, u64)],
    plan: &Plan,
    peer: &PeerCommand,
    peer_cpu: Option<usize>,
    on_cell: &mut dyn FnMut((Pattern, u64)),
) -> Vec<std::result::Result<Measurement, String>> {
    let fail_all = |reason: String| cells.iter().map(|_| Err(reason.clone())).collect();
    let max = cells.iter().map(|c| c.1).max().unwrap_or(0) as usize;
    let mut options = Options::new();
    options.max_message(max).timeout(CONNECT_TIMEOUT);

    let setup = || -> Result<_> {
        let to = kind.host_sender(&options)?;
        let from = kind.host_receiver(&options)?;
        Ok((to, from))
    };
    let (mut to, mut from) = match setup() {
        Ok(pair) => pair,
        Err(e) => return fail_all(format!("setup failed: {}", error::one_line(&e))),
    };
    let mut cmd = Command::new(&peer.program);
    cmd.args(&peer.args)
        .arg(kind.name())
        .arg(to.rendezvous())
        .arg(from.rendezvous())
        .arg(cells_arg(cells))
        .arg(max.to_string())
        .arg(peer_cpu.map_or("-".to_string(), |c| c.to_string()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Err(e) = to
        .prepare_child(&mut cmd)
        .and_then(|()| from.prepare_child(&mut cmd))
    {
        return fail_all(format!("setup failed: {}", error::one_line(&e)));
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

    let mut results = Vec::new();
    let outcome = (|| -> Result<()> {
        let mut tx = to.establish(Some(CONNECT_TIMEOUT))?;
        watch.register(tx.abort_handle());
        let mut rx = from.establish(Some(CONNECT_TIMEOUT))?;
        watch.register(rx.abort_handle());
        for &(pattern, size) in cells {
            on_cell((pattern, size));
            let m = match pattern {
                Pattern::Latency => latency(kind, &mut tx, &mut rx, size as usize, plan),
                Pattern::Throughput => throughput(kind, &mut tx, &mut rx, size as usize, plan),
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
        tx.close()?;
        let mut buf = Vec::new();
        match rx.recv_into(&mut buf)? {
            None => Ok(()),
            Some(n) => Err(Error::invalid(
                "bench",
                Object::Other(format!("{kind} peer").into()),
                format!("a message of {n} bytes after the last cell"),
            )),
        }
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

fn peer_error(kind: TransportKind, what: String) -> Error {
    Error::invalid(
        "bench",
        Object::Other(format!("{kind} transport").into()),
        what,
    )
}

/// Receives one message and checks it: its sequence number, or an error.
fn recv_checked(
    kind: TransportKind,
    rx: &mut Receiver,
    buf: &mut Vec<u8>,
    size: usize,
) -> Result<u64> {
    match rx.recv_into(buf)? {
        None => Err(peer_error(
            kind,
            "the other side ended the stream early".into(),
        )),
        Some(_) => payload::check(buf, size).map_err(|e| peer_error(kind, e)),
    }
}

fn latency(
    kind: TransportKind,
    tx: &mut Sender,
    rx: &mut Receiver,
    size: usize,
    plan: &Plan,
) -> Result<Measurement> {
    let mut p = Payload::new(size);
    let mut buf = Vec::with_capacity(size);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)
        .map_err(|e| peer_error(kind, format!("histogram: {e}")))?;
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
        let msg = p.stamp(seq);
        let t0 = Instant::now();
        tx.send(msg)?;
        let got = recv_checked(kind, rx, &mut buf, size)?;
        let rtt = t0.elapsed();
        if got != seq {
            return Err(peer_error(
                kind,
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
    tx.send(p.stamp(payload::STOP))?;
    Ok(Measurement::Latency(latency_summary(
        kind.name(),
        size as u64,
        measured,
        &hist,
    )))
}

/// A latency cell from its histogram of one-way times.
fn latency_summary(transport: &str, size: u64, iterations: u64, hist: &Histogram<u64>) -> Latency {
    Latency {
        transport: transport.to_string(),
        pattern: Pattern::Latency,
        size,
        iterations,
        mean_ns: hist.mean(),
        p50_ns: hist.value_at_quantile(0.50),
        p90_ns: hist.value_at_quantile(0.90),
        p99_ns: hist.value_at_quantile(0.99),
        p999_ns: hist.value_at_quantile(0.999),
        max_ns: hist.max(),
    }
}

fn throughput(
    kind: TransportKind,
    tx: &mut Sender,
    rx: &mut Receiver,
    size: usize,
    plan: &Plan,
) -> Result<Measurement> {
    let mut p = Payload::new(size);
    let mut buf = Vec::with_capacity(size);
    let begin = Instant::now();
    let warm_until = begin + plan.duration / 10;
    let mut counting_since: Option<(Instant, u64)> = None;
    let mut seq = 0u64;
    loop {
        tx.send(p.stamp(seq))?;
        seq += 1;
        let now = Instant::now();
        match counting_since {
            None if now >= warm_until => counting_since = Some((now, seq)),
            Some((t, _)) if now.duration_since(t) >= plan.duration => break,
            _ => {}
        }
    }
    tx.send(p.stamp(payload::STOP))?;
    let acked = recv_checked(kind, rx, &mut buf, size)?;
    let end = Instant::now();
    if acked != seq {
        return Err(peer_error(
            kind,
            format!("the receiver checked {acked} messages of the {seq} sent"),
        ));
    }
    let (t0, first) = counting_since.unwrap_or((begin, 0));
    let messages = seq - first;
    let seconds = end.duration_since(t0).as_secs_f64().max(1e-9);
    Ok(Measurement::Throughput(Throughput {
        transport: kind.name().to_string(),
        pattern: Pattern::Throughput,
        size: size as u64,
        messages,
        seconds,
        msgs_per_sec: messages as f64 / seconds,
        bytes_per_sec: messages as f64 * size as f64 / seconds,
    }))
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
    let [kind, to, from, cells, max, cpu] = args else {
        return Err(usage());
    };
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if kind == BASELINE {
        if cpu != "-" {
            pin_to(cpu.parse().map_err(|_| usage())?)?;
        }
        return baseline::peer(to);
    }
    let kind: TransportKind = kind.parse()?;
    let cells = parse_cells(cells)?;
    let max: usize = max.parse().map_err(|_| usage())?;
    if kind == TransportKind::Signal {
        ipckit::transport::prepare_signals()?;
    }
    if cpu != "-" {
        pin_to(cpu.parse().map_err(|_| usage())?)?;
    }
    let mut options = Options::new();
    options.max_message(max).timeout(CONNECT_TIMEOUT);
    // SAFETY: this peer process was started by `run_transport` with the pipe ends that `to` and
    // `from` name inherited for exactly this use (`prepare_child`), and nothing else in this
    // process touches those descriptors.
    let mut rx = unsafe { kind.connect_receiver_inherited(to, &options) }?;
    // SAFETY: as above.
    let mut tx = unsafe { kind.connect_sender_inherited(from, &options) }?;
    let mut buf = Vec::with_capacity(max);
    for (pattern, size) in cells {
        let size = size as usize;
        let mut expected = 0u64;
        loop {
            let seq = recv_checked(kind, &mut rx, &mut buf, size)?;
            if seq == payload::STOP {
                break;
            }
            if seq != expected {
                return Err(peer_error(
                    kind,
                    format!("message {seq} where {expected} was due"),
                ));
            }
            expected += 1;
            if pattern == Pattern::Latency {
                tx.send(&buf)?;
            }
        }
        if pattern == Pattern::Throughput {
            let mut ack = Payload::new(size);
            tx.send(ack.stamp(expected))?;
        }
    }
    match rx.recv_into(&mut buf)? {
        None => Ok(tx.close()?),
        Some(n) => Err(peer_error(
            kind,
            format!("a message of {n} bytes after the last cell"),
        )),
    }
}
