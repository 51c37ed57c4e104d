//! iceoryx2 publish-subscribe, measured as `ipckit bench` measures its transports: ping-pong
//! latency (one-way = round trip / 2, HDR histogram) and a one-way stream acknowledged by the
//! receiver, at 64 B, 1 KiB, 8 KiB, 64 KiB and 1 MiB, every message stamped and checked with
//! ipckit's payload (sequence number, tail, sampled words, checksum). Writes the same JSON schema
//! with transport "iceoryx2".
//!
//! ```text
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- --json peers.json [--quick]
//! ```
//! The two processes are this program and itself started with `pong`. Receivers busy-poll
//! `Subscriber::receive` (yielding every 64 polls), as iceoryx2's own benchmarks do. Entries it
//! creates in /dev/shm and /tmp/iceoryx2 are removed at the end, also after a failed run.

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
/// Give up when the other side sends nothing for this long.
const IDLE: Duration = Duration::from_secs(30);

struct Ends {
    _node: Node<ipc::Service>,
    tx: Publisher<ipc::Service, [u8], ()>,
    rx: Subscriber<ipc::Service, [u8], ()>,
}

fn ends(run: &str, send_on: &str, recv_on: &str) -> Result<Ends, Error> {
    let node = NodeBuilder::new().create::<ipc::Service>()?;
    let service = |which: &str| -> Result<_, Error> {
        let name: ServiceName = format!("ipckit-peers/{run}/{which}").as_str().try_into()?;
        Ok(node
            .service_builder(&name)
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(16)
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()?)
    };
    let out = service(send_on)?;
    let inn = service(recv_on)?;
    let tx = out
        .publisher_builder()
        .initial_max_slice_len(*SIZES.iter().max().unwrap())
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()?;
    let rx = inn.subscriber_builder().buffer_size(16).create()?;
    Ok(Ends { _node: node, tx, rx })
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
            if polls % 64 == 0 {
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
fn pong(run: &str, cells: &str) -> Result<(), Error> {
    let e = ends(run, "pong", "ping")?;
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
    let mut buf = Vec::new();
    for cell in cells.split(',') {
        let (pattern, size) = cell.split_at(1);
        let size: usize = size.parse()?;
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

struct Plan {
    iterations: u64,
    duration: Duration,
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

fn measure(json: Option<&str>, plan: &Plan) -> Result<(), Error> {
    let run = format!("{}", std::process::id());
    let cells: Vec<String> = ["l", "t"]
        .iter()
        .flat_map(|p| SIZES.iter().map(move |s| format!("{p}{s}")))
        .collect();
    let e = ends(&run, "ping", "pong")?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["pong", &run, &cells.join(",")])
        .spawn()?;
    let result = (|| -> Result<Report, Error> {
        wait_for_peer(&e)?;
        e.send(&[1])?;
        // Late echoes of probes sent before the start.
        std::thread::sleep(Duration::from_millis(20));
        while e.rx.receive()?.is_some() {}
        let mut report = Report::new(Machine::current());
        for pattern in [Pattern::Latency, Pattern::Throughput] {
            for size in SIZES {
                eprintln!("iceoryx2 {pattern} {size} B");
                report.results.push(match pattern {
                    Pattern::Latency => latency(&e, size, plan)?,
                    Pattern::Throughput => throughput(&e, size, plan)?,
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
    let text = report.to_json();
    match json {
        Some(path) => std::fs::write(path, text + "\n")?,
        None => println!("{text}"),
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("pong") {
        return match pong(&args[1], &args[2]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ipckit-peers pong: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let quick = args.iter().any(|a| a == "--quick");
    let json = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let plan = if quick {
        Plan { iterations: 500, duration: Duration::from_millis(100) }
    } else {
        Plan { iterations: 10_000, duration: Duration::from_secs(2) }
    };
    let tmp_existed = Path::new("/tmp/iceoryx2").exists();
    let (shm_before, tmp_before) = (entries("/dev/shm"), entries("/tmp/iceoryx2"));
    let result = measure(json, &plan);
    // Remove what this run created, whatever happened.
    for name in entries("/dev/shm").difference(&shm_before) {
        if name.starts_with("iox2") {
            let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
        }
    }
    for name in entries("/tmp/iceoryx2").difference(&tmp_before) {
        let p = Path::new("/tmp/iceoryx2").join(name);
        let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
    }
    if !tmp_existed {
        let _ = std::fs::remove_dir_all("/tmp/iceoryx2");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipckit-peers: {e}");
            ExitCode::FAILURE
        }
    }
}
