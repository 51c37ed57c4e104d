//! iceoryx2 publish-subscribe, measured as `ipckit bench` measures its transports: ping-pong
//! latency (one-way = round trip / 2, HDR histogram) and a one-way stream acknowledged by the
//! receiver, at 64 B, 1 KiB, 8 KiB, 64 KiB and 1 MiB, every message stamped and checked with
//! ipckit's payload (sequence number, tail, sampled words, checksum). Writes the same JSON schema
//! with transport "iceoryx2".
//!
//! ```text
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- --json peers.json [--quick] [--pin] [--rounds N]
//! ```
//! The two processes are this program and itself started with `pong`; with `--pin` they run on
//! the first two CPUs this process may use (as `ipckit bench --pin`), for iceoryx2 and for ipckit. Receivers busy-poll
//! `Subscriber::receive` (yielding every 64 polls), as iceoryx2's own benchmarks do. Entries it
//! creates in /dev/shm and /tmp/iceoryx2 are removed at the end, also after a failed run.
//!
//! iceoryx2 is configured as a user would per message size, and as its authors benchmark it: a
//! service per size (two, one per direction) whose publisher's slots are of that size
//! (`initial_max_slice_len`), so a 64 KiB stream walks 64 KiB slots, not 1 MiB ones. Every
//! setting is in [`ICEORYX2_SETTINGS`], printed with the results and written into the JSON's
//! `notes`.
//!
//! **Interleaved** (`--rounds N`, default 3 with `--quick`, 5 without; 0 for iceoryx2 alone):
//! iceoryx2 and ipckit's channel transports (`channel`, `channel-spin`, `channel-zc`, measured by
//! `ipckit_bench::run` with this program as their peer) are measured alternately, A B A B, N
//! rounds, so that both see the same machine; each cell's ratio (ipckit over iceoryx2: p50
//! latency, bytes/s) is reported as the median of the rounds with its spread (lowest–highest).

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use ipckit_bench::payload::{check, Payload, STOP};
use ipckit_bench::{Latency, Machine, Measurement, Pattern, Report, Throughput};

type Error = Box<dyn std::error::Error>;

const SIZES: [usize; 5] = [64, 1 << 10, 8 << 10, 64 << 10, 1 << 20];
/// The subscriber's buffer (samples received but not yet taken), per service.
const SUBSCRIBER_BUFFER: usize = 16;
/// Samples a late subscriber receives from before it connected: none.
const HISTORY: usize = 0;
/// Every setting of iceoryx2 in this run, printed and written with the results.
const ICEORYX2_SETTINGS: &str = "iceoryx2 0.10, ipc::Service: a publish-subscribe service per message size and direction; \
publisher initial_max_slice_len = the message size, backpressure RetryUntilDelivered (safe overflow off); \
subscriber_max_buffer_size = buffer_size = 16, history_size = 0, max_publishers = max_subscribers = 1; \
each message loaned (loan_slice_uninit), written whole (write_from_slice) and sent; \
receivers busy-poll receive() (yield every 64 polls) and check the payload in place";
/// The hidden argument this program is started with as the peer of ipckit's transports.
const IPCKIT_PEER: &str = "ipckit-peer";
/// Give up when the other side sends nothing for this long.
const IDLE: Duration = Duration::from_secs(30);

struct Ends {
    tx: Publisher<ipc::Service, [u8], ()>,
    rx: Subscriber<ipc::Service, [u8], ()>,
}

/// The two services of one message size (one per direction), with slots of that size.
fn ends(
    node: &Node<ipc::Service>,
    run: &str,
    size: usize,
    send_on: &str,
    recv_on: &str,
) -> Result<Ends, Error> {
    let service = |which: &str| -> Result<_, Error> {
        let name: ServiceName = format!("ipckit-peers/{run}/{size}/{which}")
            .as_str()
            .try_into()?;
        Ok(node
            .service_builder(&name)
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(SUBSCRIBER_BUFFER)
            .history_size(HISTORY)
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()?)
    };
    let out = service(send_on)?;
    let inn = service(recv_on)?;
    let tx = out
        .publisher_builder()
        .initial_max_slice_len(size)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()?;
    let rx = inn
        .subscriber_builder()
        .buffer_size(SUBSCRIBER_BUFFER)
        .create()?;
    Ok(Ends { tx, rx })
}

/// A node and the ends of every size in `cells`.
struct AllEnds {
    _node: Node<ipc::Service>,
    by_size: Vec<(usize, Ends)>,
}

impl AllEnds {
    fn new(run: &str, sizes: &[usize], send_on: &str, recv_on: &str) -> Result<AllEnds, Error> {
        let node = NodeBuilder::new().create::<ipc::Service>()?;
        let mut by_size = Vec::new();
        for &size in sizes {
            by_size.push((size, ends(&node, run, size, send_on, recv_on)?));
        }
        Ok(AllEnds {
            _node: node,
            by_size,
        })
    }

    fn get(&self, size: usize) -> Result<&Ends, Error> {
        self.by_size
            .iter()
            .find(|(s, _)| *s == size)
            .map(|(_, e)| e)
            .ok_or_else(|| format!("no service for {size} bytes").into())
    }
}

impl Ends {
    fn send(&self, msg: &[u8]) -> Result<(), Error> {
        let sample = self.tx.loan_slice_uninit(msg.len())?;
        sample.write_from_slice(msg).send()?;
        Ok(())
    }

    /// Busy-polls for the next message, checks it and returns its sequence number.
    fn recv(&self, size: usize, copy: Option<&mut Vec<u8>>) -> Result<u64, Error> {
        let start = Instant::now();
        let mut polls = 0u32;
        loop {
            if let Some(sample) = self.rx.receive()? {
                let seq = check(sample.payload(), size)?;
                if let Some(buf) = copy {
                    buf.clear();
                    buf.extend_from_slice(sample.payload());
                }
                return Ok(seq);
            }
            polls += 1;
            if polls.is_multiple_of(64) {
                std::thread::yield_now();
                if start.elapsed() > IDLE {
                    return Err("the other side sent nothing for 30 s".into());
                }
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Probes (empty messages) until the pong process echoes one: both sides are connected.
fn wait_for_peer(e: &Ends) -> Result<(), Error> {
    let start = Instant::now();
    while start.elapsed() < IDLE {
        e.send(&[])?;
        std::thread::sleep(Duration::from_millis(5));
        while let Some(sample) = e.rx.receive()? {
            if sample.payload().is_empty() {
                return Ok(());
            }
        }
    }
    Err("the other process did not connect".into())
}

/// The pong process: echoes latency messages, counts throughput ones.
fn pong(run: &str, cells: &str, cpu: Option<&String>) -> Result<(), Error> {
    if let Some(cpu) = cpu {
        ipckit_bench::pin_thread(cpu.parse()?)?;
    }
    let cells: Vec<(&str, usize)> = cells
        .split(',')
        .map(|c| {
            let (p, s) = c.split_at(1);
            Ok((p, s.parse()?))
        })
        .collect::<Result<_, Error>>()?;
    let all = AllEnds::new(run, &sizes_of(&cells), "pong", "ping")?;
    for (_, e) in &all.by_size {
        // Echo the parent's probes (empty) until it announces the start (one byte).
        let start = Instant::now();
        loop {
            match e.rx.receive()? {
                Some(sample) if sample.payload().is_empty() => e.send(&[])?,
                Some(sample) if sample.payload().len() == 1 => break,
                Some(_) => return Err("expected a probe or the start".into()),
                None if start.elapsed() > IDLE => return Err("no parent".into()),
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }
    let mut buf = Vec::new();
    for (pattern, size) in cells {
        let e = all.get(size)?;
        let mut expected = 0u64;
        loop {
            let seq = e.recv(size, Some(&mut buf))?;
            if seq == STOP {
                break;
            }
            if seq != expected {
                return Err(format!("message {seq} where {expected} was due").into());
            }
            expected += 1;
            if pattern == "l" {
                e.send(&buf)?;
            }
        }
        if pattern == "t" {
            e.send(Payload::new(size).stamp(expected))?;
        }
    }
    Ok(())
}

/// The distinct sizes of the cells, in order of first use.
fn sizes_of(cells: &[(&str, usize)]) -> Vec<usize> {
    let mut sizes = Vec::new();
    for &(_, s) in cells {
        if !sizes.contains(&s) {
            sizes.push(s);
        }
    }
    sizes
}

struct Plan {
    iterations: u64,
    duration: Duration,
    /// `--pin`: this process on the first CPU, its peer on the second (for iceoryx2 and for
    /// ipckit's transports alike, so that the floor and every cell share one placement).
    cpus: Option<(usize, usize)>,
}

fn latency(e: &Ends, size: usize, plan: &Plan) -> Result<Measurement, Error> {
    let mut p = Payload::new(size);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)?;
    let warm = (plan.iterations / 10).clamp(1, 1000);
    let start = Instant::now();
    let mut seq = 0;
    let mut measured = 0;
    while measured < plan.iterations {
        let t0 = Instant::now();
        e.send(p.stamp(seq))?;
        let got = e.recv(size, None)?;
        let rtt = t0.elapsed();
        if got != seq {
            return Err(format!("echo of {got} where {seq} was sent").into());
        }
        if seq >= warm || start.elapsed() >= plan.duration / 10 {
            hist.saturating_record((rtt.as_nanos() / 2).max(1) as u64);
            measured += 1;
            if start.elapsed() >= plan.duration {
                break;
            }
        }
        seq += 1;
    }
    e.send(p.stamp(STOP))?;
    Ok(Measurement::Latency(Latency {
        transport: "iceoryx2".into(),
        pattern: Pattern::Latency,
        size: size as u64,
        iterations: measured,
        mean_ns: hist.mean(),
        p50_ns: hist.value_at_quantile(0.5),
        p90_ns: hist.value_at_quantile(0.9),
        p99_ns: hist.value_at_quantile(0.99),
        p999_ns: hist.value_at_quantile(0.999),
        max_ns: hist.max(),
        run_floor_ns: None,
    }))
}

fn throughput(e: &Ends, size: usize, plan: &Plan) -> Result<Measurement, Error> {
    let mut p = Payload::new(size);
    let begin = Instant::now();
    let warm_until = begin + plan.duration / 10;
    let mut since: Option<(Instant, u64)> = None;
    let mut seq = 0;
    loop {
        e.send(p.stamp(seq))?;
        seq += 1;
        let now = Instant::now();
        match since {
            None if now >= warm_until => since = Some((now, seq)),
            Some((t, _)) if now - t >= plan.duration => break,
            _ => {}
        }
    }
    e.send(p.stamp(STOP))?;
    let acked = e.recv(size, None)?;
    let end = Instant::now();
    if acked != seq {
        return Err(format!("the receiver checked {acked} of {seq} messages").into());
    }
    let (t0, first) = since.unwrap_or((begin, 0));
    let messages = seq - first;
    let seconds = (end - t0).as_secs_f64();
    Ok(Measurement::Throughput(Throughput {
        transport: "iceoryx2".into(),
        pattern: Pattern::Throughput,
        size: size as u64,
        messages,
        seconds,
        msgs_per_sec: messages as f64 / seconds,
        bytes_per_sec: (messages * size as u64) as f64 / seconds,
    }))
}

/// One iceoryx2 run of every cell, with its own pong process; with `--pin`, this side on the
/// first CPU for the run (the pong process pins itself to the second).
fn measure_iceoryx2(plan: &Plan, round: u32) -> Result<Report, Error> {
    match plan.cpus {
        Some((mine, _)) => ipckit_bench::on_cpu(mine, || measure_iceoryx2_here(plan, round))?,
        None => measure_iceoryx2_here(plan, round),
    }
}

/// The report of an iceoryx2 run, before its cells: with `--pin`, the placement it ran on, as
/// ipckit's runs record theirs, so that merging the two does not call them differently placed.
fn iceoryx2_report(plan: &Plan) -> Report {
    let mut report = Report::new(Machine::current());
    report.placement = plan.cpus.map(|(mine, theirs)| {
        ipckit_bench::placement::placement(
            std::path::Path::new(ipckit_bench::placement::SYSFS_CPUS),
            mine,
            theirs,
        )
    });
    report
}

fn measure_iceoryx2_here(plan: &Plan, round: u32) -> Result<Report, Error> {
    let run = format!("{}-{round}", std::process::id());
    let cells: Vec<String> = ["l", "t"]
        .iter()
        .flat_map(|p| SIZES.iter().map(move |s| format!("{p}{s}")))
        .collect();
    let all = AllEnds::new(&run, &SIZES, "ping", "pong")?;
    let mut pong = Command::new(std::env::current_exe()?);
    pong.args(["pong", &run, &cells.join(",")]);
    if let Some((_, theirs)) = plan.cpus {
        pong.arg(theirs.to_string());
    }
    let mut child = pong.spawn()?;
    let result = (|| -> Result<Report, Error> {
        for (_, e) in &all.by_size {
            wait_for_peer(e)?;
            e.send(&[1])?;
            // Late echoes of probes sent before the start.
            std::thread::sleep(Duration::from_millis(20));
            while e.rx.receive()?.is_some() {}
        }
        let mut report = iceoryx2_report(plan);
        for pattern in [Pattern::Latency, Pattern::Throughput] {
            for size in SIZES {
                eprintln!("iceoryx2 {pattern} {size} B");
                let e = all.get(size)?;
                report.results.push(match pattern {
                    Pattern::Latency => latency(e, size, plan)?,
                    _ => throughput(e, size, plan)?,
                });
            }
        }
        Ok(report)
    })();
    let report = match result {
        Ok(r) => r,
        Err(err) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err);
        }
    };
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("the pong process failed: {status}").into());
    }
    Ok(report)
}

/// One run of ipckit's channel transports at the same sizes and patterns, this program their peer.
fn measure_ipckit(plan: &Plan) -> Result<Report, Error> {
    let mut p = ipckit_bench::Plan::new();
    p.transports = ["channel", "channel-spin", "channel-zc"]
        .iter()
        .map(|t| t.parse())
        .collect::<Result<_, _>>()?;
    p.sizes = SIZES.iter().map(|&s| s as u64).collect();
    p.patterns = vec![Pattern::Latency, Pattern::Throughput];
    p.iterations = plan.iterations;
    p.duration = plan.duration;
    p.pin = plan.cpus.is_some();
    p.cpus = plan.cpus;
    let peer = ipckit_bench::PeerCommand {
        program: std::env::current_exe()?,
        args: vec![IPCKIT_PEER.into()],
    };
    let report = ipckit_bench::run(&p, &peer, &mut |prog| {
        if let Some((pattern, size)) = prog.cell {
            eprintln!("{} {pattern} {size} B", prog.transport);
        }
    })?;
    if let Some(s) = report.skipped.iter().find(|s| s.failed) {
        return Err(format!(
            "{} {} {} B failed: {}",
            s.transport, s.pattern, s.size, s.reason
        )
        .into());
    }
    Ok(report)
}

/// How many times better or worse ipckit's cell is than iceoryx2's: p50 latency over
/// iceoryx2's (below 1 is faster), bytes/s over iceoryx2's (above 1 is faster).
fn ratio(ipckit: &Measurement, iceoryx2: &Measurement) -> Option<f64> {
    match (ipckit, iceoryx2) {
        (Measurement::Latency(a), Measurement::Latency(b)) => {
            Some(a.p50_ns as f64 / b.p50_ns.max(1) as f64)
        }
        (Measurement::Throughput(a), Measurement::Throughput(b)) if b.bytes_per_sec > 0.0 => {
            Some(a.bytes_per_sec / b.bytes_per_sec)
        }
        _ => None,
    }
}

/// The median of the ratios and their spread (lowest, highest).
fn median_spread(mut r: Vec<f64>) -> Option<(f64, f64, f64)> {
    if r.is_empty() {
        return None;
    }
    r.sort_by(f64::total_cmp);
    let n = r.len();
    let median = if n % 2 == 1 {
        r[n / 2]
    } else {
        (r[n / 2 - 1] + r[n / 2]) / 2.0
    };
    Some((median, r[0], r[n - 1]))
}

/// iceoryx2 alone (`rounds` 0), or interleaved with ipckit's channel transports for `rounds`
/// rounds; prints the ratios, writes the last round's results with the settings and the ratios
/// as notes.
fn measure(json: Option<&str>, plan: &Plan, rounds: u32) -> Result<(), Error> {
    eprintln!("{ICEORYX2_SETTINGS}");
    let mut pairs: Vec<(Report, Report)> = Vec::new();
    let mut last = None;
    for round in 1..=rounds.max(1) {
        eprintln!("round {round} of {}: iceoryx2", rounds.max(1));
        let ice = measure_iceoryx2(plan, round)?;
        if rounds == 0 {
            last = Some(ice);
            break;
        }
        eprintln!("round {round} of {rounds}: ipckit");
        let ipc = measure_ipckit(plan)?;
        pairs.push((ice, ipc));
    }
    let mut report = match last {
        Some(r) => r,
        None => {
            let (ice, ipc) = pairs.last().cloned().ok_or("no round")?;
            let mut merged = ipckit_bench::Report::merge([ipc, ice]).ok_or("no round")?;
            merged.notes.push(format!(
                "the results are the last of {rounds} interleaved rounds (iceoryx2, then ipckit's channel transports, in each)"
            ));
            merged
        }
    };
    report.notes.insert(0, ICEORYX2_SETTINGS.to_string());
    if !pairs.is_empty() {
        let mut lines = vec![format!(
            "ipckit over iceoryx2, median of {} interleaved rounds [lowest–highest]: latency p50 (below 1: ipckit faster), throughput bytes/s (above 1: ipckit faster)",
            pairs.len()
        )];
        for transport in ["channel", "channel-spin", "channel-zc"] {
            for pattern in [Pattern::Latency, Pattern::Throughput] {
                for size in SIZES {
                    let find = |r: &Report, t: &str| {
                        r.results
                            .iter()
                            .find(|m| {
                                m.transport() == t
                                    && m.pattern() == pattern
                                    && m.size() == size as u64
                            })
                            .cloned()
                    };
                    let ratios: Vec<f64> = pairs
                        .iter()
                        .filter_map(|(ice, ipc)| {
                            ratio(&find(ipc, transport)?, &find(ice, "iceoryx2")?)
                        })
                        .collect();
                    if let Some((m, lo, hi)) = median_spread(ratios) {
                        lines.push(format!(
                            "{transport} {pattern} {}: {m:.2}× [{lo:.2}–{hi:.2}]",
                            ipckit_bench::format_size(size as u64)
                        ));
                    }
                }
            }
        }
        println!("{ICEORYX2_SETTINGS}");
        for l in &lines {
            println!("{l}");
        }
        report.notes.extend(lines);
    }
    let text = report.to_json();
    match json {
        Some(path) => std::fs::write(path, text + "\n")?,
        None if pairs.is_empty() => println!("{text}"),
        None => {}
    }
    Ok(())
}

/// Names in a directory, to remove afterwards what a run added.
fn entries(dir: &str) -> HashSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Removes, when dropped, what iceoryx2 created in /dev/shm and /tmp/iceoryx2 since it was
/// made (also after a failed run or a failed test).
struct Cleanup {
    tmp_existed: bool,
    shm_before: HashSet<String>,
    tmp_before: HashSet<String>,
}

impl Cleanup {
    fn new() -> Cleanup {
        Cleanup {
            tmp_existed: Path::new("/tmp/iceoryx2").exists(),
            shm_before: entries("/dev/shm"),
            tmp_before: entries("/tmp/iceoryx2"),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in entries("/dev/shm").difference(&self.shm_before) {
            if name.starts_with("iox2") {
                let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
            }
        }
        for name in entries("/tmp/iceoryx2").difference(&self.tmp_before) {
            let p = Path::new("/tmp/iceoryx2").join(name);
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
        if !self.tmp_existed {
            let _ = std::fs::remove_dir_all("/tmp/iceoryx2");
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(IPCKIT_PEER) {
        return match ipckit_bench::peer_main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ipckit-peers peer: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.first().map(String::as_str) == Some("pong") {
        return match pong(&args[1], &args[2], args.get(3)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ipckit-peers pong: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Usage errors before anything runs: exit 2, one line (the options are few).
    let usage = "usage: ipckit-peers [--quick] [--pin] [--rounds N] [--json FILE]";
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--quick" | "--pin" => i += 1,
            "--json" | "--rounds" if i + 1 < args.len() => i += 2,
            "-h" | "--help" => {
                println!("{usage}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("ipckit-peers: unexpected {other:?}; {usage}");
                return ExitCode::from(2);
            }
        }
    }
    let quick = args.iter().any(|a| a == "--quick");
    let json = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let cpus = if args.iter().any(|a| a == "--pin") {
        match ipckit_bench::pick_cpus() {
            Ok(cpus) => Some(cpus),
            Err(e) => {
                eprintln!("ipckit-peers: --pin: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let plan = if quick {
        Plan {
            iterations: 500,
            duration: Duration::from_millis(100),
            cpus,
        }
    } else {
        Plan {
            iterations: 10_000,
            duration: Duration::from_secs(2),
            cpus,
        }
    };
    let rounds = match args.iter().position(|a| a == "--rounds") {
        Some(i) => match args.get(i + 1).and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                eprintln!("ipckit-peers: --rounds takes a number");
                return ExitCode::from(2);
            }
        },
        None if quick => 3,
        None => 5,
    };
    // Removes what this run created, whatever happens.
    let cleanup = Cleanup::new();
    let result = measure(json, &plan, rounds);
    drop(cleanup);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipckit-peers: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_is_the_median_of_the_rounds_with_its_spread() {
        assert_eq!(median_spread(vec![]), None);
        assert_eq!(median_spread(vec![2.0]), Some((2.0, 2.0, 2.0)));
        assert_eq!(median_spread(vec![3.0, 0.5, 1.0]), Some((1.0, 0.5, 3.0)));
        assert_eq!(
            median_spread(vec![4.0, 1.0, 2.0, 3.0]),
            Some((2.5, 1.0, 4.0))
        );
    }

    #[test]
    fn ratios_compare_like_with_like() {
        let lat = |t: &str, p50| {
            Measurement::Latency(Latency {
                transport: t.into(),
                pattern: Pattern::Latency,
                size: 64,
                iterations: 1,
                mean_ns: p50 as f64,
                p50_ns: p50,
                p90_ns: p50,
                p99_ns: p50,
                p999_ns: p50,
                max_ns: p50,
                run_floor_ns: None,
            })
        };
        let thr = |t: &str, bps| {
            Measurement::Throughput(Throughput {
                transport: t.into(),
                pattern: Pattern::Throughput,
                size: 64,
                messages: 1,
                seconds: 1.0,
                msgs_per_sec: 1.0,
                bytes_per_sec: bps,
            })
        };
        assert_eq!(
            ratio(&lat("channel", 300), &lat("iceoryx2", 600)),
            Some(0.5)
        );
        assert_eq!(
            ratio(&thr("channel", 3e9), &thr("iceoryx2", 1e9)),
            Some(3.0)
        );
        assert_eq!(ratio(&lat("channel", 300), &thr("iceoryx2", 1e9)), None);
    }

    #[test]
    fn every_setting_of_iceoryx2_is_stated() {
        for s in [
            "a publish-subscribe service per message size",
            "initial_max_slice_len = the message size",
            "buffer_size = 16",
            "history_size = 0",
        ] {
            assert!(ICEORYX2_SETTINGS.contains(s), "{s}");
        }
        assert_eq!((SUBSCRIBER_BUFFER, HISTORY), (16, 0));
    }

    /// A pinned iceoryx2 run says where it ran, so the merge with ipckit's run (pinned the
    /// same way) has no "different placements" note; it had one, calling iceoryx2's unpinned.
    #[test]
    fn a_pinned_iceoryx2_run_records_its_placement() {
        let plan = |cpus| Plan {
            iterations: 1,
            duration: Duration::from_millis(1),
            cpus,
        };
        let pinned = iceoryx2_report(&plan(Some((0, 1))));
        let p = pinned.placement.clone().expect("a placement");
        assert_eq!((p.host_cpu, p.peer_cpu), (0, 1));
        assert_eq!(iceoryx2_report(&plan(None)).placement, None);

        let mut ipc = Report::new(Machine::current());
        ipc.placement = pinned.placement.clone();
        let mut ice = pinned;
        for r in [&mut ipc, &mut ice] {
            r.results.push(Measurement::Throughput(Throughput {
                transport: "x".into(),
                pattern: Pattern::Throughput,
                size: 64,
                messages: 1,
                seconds: 1.0,
                msgs_per_sec: 1.0,
                bytes_per_sec: 1.0,
            }));
        }
        let merged = ipckit_bench::Report::merge([ipc, ice]).unwrap();
        assert!(
            !merged
                .notes
                .iter()
                .any(|n| n.contains("different placements")),
            "{:?}",
            merged.notes
        );
    }

    #[test]
    fn the_pong_process_makes_one_service_per_size() {
        let cells = [("l", 64), ("l", 1024), ("t", 64), ("t", 1 << 20)];
        assert_eq!(sizes_of(&cells), [64, 1024, 1 << 20]);
    }

    /// Issue #14: every iceoryx2 sample had a 1 MiB slot whatever the message size; now each
    /// size has its own services whose slots are of that size.
    #[test]
    fn each_size_has_publishers_with_slots_of_that_size() {
        let before = entries("/dev/shm");
        {
            let _cleanup = Cleanup::new();
            let run = format!("test-{}", std::process::id());
            let all = AllEnds::new(&run, &[64, 64 << 10], "a", "b").unwrap();
            for (size, e) in &all.by_size {
                assert_eq!(e.tx.initial_max_slice_len(), *size);
                assert_eq!(e.rx.buffer_size(), SUBSCRIBER_BUFFER);
            }
            assert!(all.get(1 << 20).is_err());
        }
        // Nothing of the test's is left in /dev/shm.
        let left: Vec<String> = entries("/dev/shm").difference(&before).cloned().collect();
        assert!(left.is_empty(), "left in /dev/shm: {left:?}");
    }
}
