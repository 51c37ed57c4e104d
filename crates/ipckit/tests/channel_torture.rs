//! A torture harness for the shared-memory channel, with real processes (children re-executing
//! this test binary): producers send random-size messages (many wrapping the ring, some of about
//! 1 MiB, some written in place with reserve/commit, some reservations dropped), are SIGKILLed at
//! random instants (also in the middle of a large copy), SIGSTOPped and continued; the consumer is
//! SIGKILLed and restarted; new producers keep joining. Checked after every event, and at the end:
//!
//! - every message received is whole (checksum) and was sent, in each producer's order (one
//!   duplicate is allowed right after a consumer restart: a consumer killed between handling a
//!   message and releasing it hands it to the next one, as documented);
//! - nothing a producer committed before its clean close is lost;
//! - a killed producer is reported as `PeerDied` within 1 s (when the consumer lived through that
//!   second), and nothing of it arrives after the report;
//! - a clean close (or a stopped producer) is never reported as a death;
//! - no operation hangs (every child and every phase has a deadline);
//! - no lane is left unusable (at the end, every lane takes a new producer at once);
//! - nothing remains in `/dev/shm`.
//!
//! The run is driven by a seeded PRNG; the seed is printed on failure and can be replayed with
//! `IPCKIT_TORTURE_SEED=N` (as deterministic as process scheduling allows). CI runs the bounded
//! mode (about a minute); the long mode is
//! `cargo test -p ipckit --release --test channel_torture -- --ignored` (`IPCKIT_TORTURE_SECS`
//! sets its length, default 600).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipckit::channel::{Consumer, Options, Producer};
use ipckit::Error;
use ipckit_testkit::{child_role, spawn_self};

mod channel_support;
use channel_support::{channel_name, fnv, message, shm_path, Rng};

const LANE_CAPACITY: usize = 2 << 20;
const LANES: usize = 8;
/// At most this many torture producers at once (one lane is the harness's own holder).
const LIVE_PRODUCERS: usize = 4;
/// How long a dead producer may take to be reported.
const REPORT_BOUND: Duration = Duration::from_secs(1);
/// Longest any child may live, and any phase may take, before the run counts as hung.
const HANG: Duration = Duration::from_secs(60);

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"))
}

fn env_u64(var: &str) -> u64 {
    env(var).parse().unwrap()
}

/// Retries `open` while it fails with an error that says "not now" (lanes still being freed, the
/// open/leave lock held by a stopped process, the previous consumer not yet gone).
fn open_retrying<T>(what: &str, mut open: impl FnMut() -> ipckit::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match open() {
            Ok(t) => return t,
            Err(e) if Instant::now() < deadline => {
                let transient = matches!(e, Error::Timeout { .. })
                    || e.kind() == std::io::ErrorKind::AlreadyExists
                    || e.to_string().contains("lanes are in use");
                assert!(transient, "{what}: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{what}: still failing after 20 s: {e}"),
        }
    }
}

/// Child role: a producer. `ID`, `SEED`, `COUNT` messages; `BIG` = 1 sends only large (0.5–1
/// MiB) messages, so that a kill most likely lands in the middle of a copy.
fn producer_child() {
    let name = env("NAME");
    let id = env_u64("ID") as u32;
    let count = env_u64("COUNT");
    let big = env_u64("BIG") == 1;
    let mut rng = Rng(env_u64("SEED") | 1);
    let mut tx = open_retrying("open producer", || Producer::open(&name));
    for seq in 0..count {
        let len = if big || rng.below(40) == 0 {
            (512 << 10) + rng.below(512 << 10) as usize
        } else {
            16 + rng.below(20_000) as usize
        };
        let msg = message(id, seq, len);
        let how = rng.below(10);
        loop {
            let sent = match how {
                // Reserved, partly written, dropped: publishes nothing; then sent for real.
                0 => match tx.reserve(msg.len()) {
                    Ok(slot) => {
                        let half = slot.len() / 2;
                        slot.shared().write_at(0, &msg[..half]).unwrap();
                        // Dropped without commit.
                        let _ = { slot };
                        tx.send(&msg)
                    }
                    Err(e) => Err(e),
                },
                // Written in place.
                1..=3 => tx.reserve(msg.len()).map(|slot| {
                    slot.shared().write_at(0, &msg).unwrap();
                    slot.commit();
                }),
                _ => tx.send(&msg),
            };
            match sent {
                Ok(()) => break,
                // The consumer was killed; the harness starts another.
                Err(Error::PeerDied { .. }) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("producer {id}: send {seq}: {e}"),
            }
        }
        if rng.below(50) == 0 {
            wait_consumed(&mut tx, id);
        }
    }
    if rng.below(2) == 0 {
        wait_consumed(&mut tx, id);
    }
    tx.close().unwrap();
}

fn wait_consumed(tx: &mut Producer, id: u32) {
    loop {
        match tx.wait_consumed(Duration::from_secs(30)) {
            Ok(()) => return,
            Err(Error::PeerDied { .. }) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("producer {id}: wait_consumed: {e}"),
        }
    }
}

/// Child role: the consumer. Prints `@M id seq len` for each whole message (before releasing
/// it), `@D pid` for each death, `@E` at the end of the stream, `@X what` on anything else.
fn consumer_child() {
    let name = env("NAME");
    let mut rx = open_retrying("open consumer", || Consumer::open(&name));
    let out = std::io::stdout();
    let mut out = out.lock();
    loop {
        match rx.recv_ref() {
            Ok(Some(slot)) => {
                let m = slot.shared().to_vec();
                if m.len() < 16 || fnv(&m[..m.len() - 4]).to_le_bytes() != m[m.len() - 4..] {
                    writeln!(out, "@X torn or corrupted message of {} bytes", m.len()).unwrap();
                    std::process::exit(1);
                }
                let id = u32::from_le_bytes(m[0..4].try_into().unwrap());
                let seq = u64::from_le_bytes(m[4..12].try_into().unwrap());
                writeln!(out, "@M {id} {seq} {}", m.len()).unwrap();
                out.flush().unwrap();
                drop(slot); // released only after the line is out
            }
            Ok(None) => {
                writeln!(out, "@E").unwrap();
                out.flush().unwrap();
                return;
            }
            Err(Error::PeerDied { pid, .. }) => {
                writeln!(out, "@D {pid}").unwrap();
                out.flush().unwrap();
            }
            Err(e) => {
                writeln!(out, "@X {e}").unwrap();
                std::process::exit(1);
            }
        }
    }
}

/// A child killed and reaped when dropped (also when the test panics).
struct Kid {
    child: Child,
    spawned: Instant,
}

impl Kid {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child, not yet reaped (so its pid is not reused).
        unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

#[derive(Debug, PartialEq)]
enum Fate {
    Running,
    Clean,
    Killed(Instant),
}

struct ProducerRec {
    pid: u32,
    count: u64,
    fate: Fate,
    /// The next sequence number expected from it.
    next: u64,
    /// A duplicate of `next - 1` is allowed (a consumer restart happened since its last message).
    dup_ok: bool,
    /// When its death was reported.
    reported: Option<Instant>,
}

struct Harness {
    test: &'static str,
    name: String,
    seed: u64,
    rng: Rng,
    producers: HashMap<u32, ProducerRec>,
    running: Vec<(u32, Kid)>,
    next_id: u32,
    consumer: Option<(Kid, std::thread::JoinHandle<()>)>,
    lines: mpsc::Receiver<(Instant, String)>,
    line_tx: mpsc::Sender<(Instant, String)>,
    consumer_kills: Vec<Instant>,
    ended: bool,
    received: u64,
    events: Vec<String>,
}

impl Harness {
    fn fail(&self, what: String) -> ! {
        let n = if std::env::var_os("IPCKIT_TORTURE_ALL").is_some() {
            usize::MAX
        } else {
            15
        };
        let tail: Vec<&String> = self.events.iter().rev().take(n).collect();
        panic!(
            "channel torture failed (replay with IPCKIT_TORTURE_SEED={}): {what}\n\
             last events, newest first: {tail:#?}",
            self.seed
        );
    }

    fn event(&mut self, e: String) {
        self.events.push(e);
    }

    fn spawn_consumer(&mut self) {
        let mut cmd = spawn_self(self.test, "consumer");
        cmd.arg("--include-ignored")
            .env("NAME", &self.name)
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let tx = self.line_tx.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if line.starts_with('@') {
                    let _ = tx.send((Instant::now(), line));
                }
            }
        });
        self.consumer = Some((
            Kid {
                child,
                spawned: Instant::now(),
            },
            reader,
        ));
        self.event("consumer started".into());
    }

    fn kill_consumer(&mut self) {
        let (mut kid, reader) = self.consumer.take().expect("a consumer");
        kid.kill();
        self.consumer_kills.push(Instant::now());
        // Everything it printed is handled before the next one prints anything.
        reader.join().unwrap();
        self.pump();
        for p in self.producers.values_mut() {
            p.dup_ok = true;
        }
        self.event(format!("consumer {} killed", kid.pid()));
    }

    fn spawn_producer(&mut self, count: u64, big: bool) {
        let id = self.next_id;
        self.next_id += 1;
        let mut cmd = spawn_self(self.test, "producer");
        cmd.arg("--include-ignored")
            .env("NAME", &self.name)
            .env("ID", id.to_string())
            .env("COUNT", count.to_string())
            .env("BIG", u64::from(big).to_string())
            .env("SEED", self.rng.next().to_string())
            .stdout(Stdio::null());
        let kid = Kid {
            child: cmd.spawn().unwrap(),
            spawned: Instant::now(),
        };
        self.producers.insert(
            id,
            ProducerRec {
                pid: kid.pid(),
                count,
                fate: Fate::Running,
                next: 0,
                dup_ok: false,
                reported: None,
            },
        );
        self.event(format!(
            "producer {id} (pid {}) started: {count} messages{}",
            kid.pid(),
            if big { ", all large" } else { "" }
        ));
        self.running.push((id, kid));
    }

    /// Handles the consumer's lines received so far.
    fn pump(&mut self) {
        while let Ok((at, line)) = self.lines.try_recv() {
            self.handle(at, &line);
        }
    }

    fn handle(&mut self, at: Instant, line: &str) {
        if std::env::var_os("IPCKIT_TORTURE_ALL").is_some() {
            self.event(format!("{:?} {line}", at.elapsed()));
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("@M") => {
                let mut num = || words.next().unwrap().parse::<u64>().unwrap();
                let (id, seq, _len) = (num() as u32, num(), num());
                let Some(p) = self.producers.get_mut(&id) else {
                    self.fail(format!(
                        "a message from producer {id}, which was never started"
                    ));
                };
                if p.reported.is_some() {
                    let e = format!("producer {id}: message {seq} after its death was reported");
                    self.fail(e);
                }
                if seq == p.next {
                    p.next += 1;
                    p.dup_ok = false;
                    self.received += 1;
                } else if !(p.dup_ok && seq + 1 == p.next) {
                    let e = format!(
                        "producer {id}: message {seq} where {} was expected (lost, duplicated or \
                         reordered)",
                        p.next
                    );
                    self.fail(e);
                } else {
                    p.dup_ok = false;
                }
            }
            Some("@D") => {
                let pid: u32 = words.next().unwrap().parse().unwrap();
                let found = self
                    .producers
                    .iter_mut()
                    .find(|(_, p)| p.pid == pid && p.reported.is_none());
                match found {
                    Some((_, p)) if matches!(p.fate, Fate::Killed(_)) => p.reported = Some(at),
                    Some((id, p)) => {
                        let e = format!(
                            "producer {id} (pid {pid}) reported dead, but it is {:?}",
                            p.fate
                        );
                        self.fail(e);
                    }
                    None => self.fail(format!("a death reported for unknown pid {pid}")),
                }
                self.event(format!("death of pid {pid} reported"));
            }
            Some("@E") => self.ended = true,
            _ => self.fail(format!("the consumer failed: {line}")),
        }
    }

    /// Reaps producers that ended by themselves; fails on one that failed or hung.
    fn reap(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            let (id, kid) = &mut self.running[i];
            let id = *id;
            match kid.child.try_wait().unwrap() {
                Some(status) => {
                    if !status.success() {
                        self.fail(format!("producer {id} failed: {status}"));
                    }
                    self.producers.get_mut(&id).unwrap().fate = Fate::Clean;
                    self.running.swap_remove(i);
                    self.event(format!("producer {id} closed cleanly"));
                }
                None if kid.spawned.elapsed() > HANG => {
                    self.fail(format!("producer {id} hung for {HANG:?}"))
                }
                None => i += 1,
            }
        }
        if let Some((kid, _)) = &mut self.consumer {
            if let Some(status) = kid.child.try_wait().unwrap() {
                if !self.ended {
                    self.pump();
                    self.fail(format!("the consumer exited by itself: {status}"));
                }
            }
        }
    }

    fn kill_producer(&mut self) {
        if self.running.is_empty() {
            return;
        }
        let i = self.rng.below(self.running.len() as u64) as usize;
        let (id, mut kid) = self.running.swap_remove(i);
        kid.kill();
        self.producers.get_mut(&id).unwrap().fate = Fate::Killed(Instant::now());
        self.event(format!("producer {id} (pid {}) killed", kid.pid()));
    }

    fn stop_producer(&mut self) {
        if self.running.is_empty() {
            return;
        }
        let i = self.rng.below(self.running.len() as u64) as usize;
        let pause = Duration::from_millis(20 + self.rng.below(280));
        let (id, kid) = &self.running[i];
        kid.signal(libc::SIGSTOP);
        std::thread::sleep(pause);
        kid.signal(libc::SIGCONT);
        let e = format!("producer {id} stopped for {pause:?}");
        self.event(e);
    }

    /// Waits for the running producers to finish, handling lines meanwhile.
    fn wait_producers(&mut self, why: &str) {
        let deadline = Instant::now() + HANG;
        while !self.running.is_empty() {
            if Instant::now() > deadline {
                self.fail(format!("{why}: producers still running after {HANG:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
            self.pump();
            self.reap();
        }
    }

    /// Checks the invariants that can be judged only later: reports in time, nothing lost.
    fn check_reports(&self, now: Instant) {
        for (id, p) in &self.producers {
            let Fate::Killed(t) = p.fate else { continue };
            // Only a producer that certainly attached (a message of it arrived) and had not
            // finished, judged once
            // its bound has passed, with a consumer alive all along (a consumer killed between
            // the report and its printing takes the report with it).
            let quiet = !self
                .consumer_kills
                .iter()
                .any(|&k| k >= t && k <= t + REPORT_BOUND + Duration::from_millis(500));
            // One that had sent everything may have been killed inside `close`, after marking
            // its lane closed: a clean end of its stream, rightly not reported.
            let unfinished = p.next < p.count;
            if p.next == 0
                || !unfinished
                || now < t + REPORT_BOUND + Duration::from_millis(500)
                || !quiet
            {
                continue;
            }
            match p.reported {
                Some(r) if r <= t + REPORT_BOUND => {}
                Some(r) => self.fail(format!(
                    "producer {id}: death reported {:?} after the kill",
                    r - t
                )),
                None => {
                    let pending: Vec<String> = self.lines.try_iter().map(|(_, l)| l).collect();
                    self.fail(format!(
                        "producer {id}: killed {:?} ago, never reported (pending lines: {pending:?})",
                        now - t
                    ))
                }
            }
        }
    }
}

fn torture(test: &'static str, run_for: Duration) {
    match child_role().as_deref() {
        Some("producer") => return producer_child(),
        Some("consumer") => return consumer_child(),
        _ => {}
    }
    let seed = std::env::var("IPCKIT_TORTURE_SEED")
        .map(|s| s.parse().unwrap())
        .unwrap_or_else(|_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("channel torture: seed {seed} (IPCKIT_TORTURE_SEED={seed} replays it)");
    let (name, _guard) = channel_name("torture");
    // The harness's own producer keeps the stream open until the end (a consumer that saw the
    // end of the stream would refuse later producers, by design).
    let holder = Options::new()
        .lane_capacity(LANE_CAPACITY)
        .max_producers(LANES)
        .producer(&name)
        .unwrap();
    let (line_tx, lines) = mpsc::channel();
    let mut h = Harness {
        test,
        name: name.clone(),
        seed,
        rng: Rng(seed | 1),
        producers: HashMap::new(),
        running: Vec::new(),
        next_id: 0,
        consumer: None,
        lines,
        line_tx,
        consumer_kills: Vec::new(),
        ended: false,
        received: 0,
        events: Vec::new(),
    };
    h.spawn_consumer();
    let started = Instant::now();
    let mut steps = 0u64;
    while started.elapsed() < run_for {
        steps += 1;
        match h.rng.below(20) {
            0..=5 if h.running.len() < LIVE_PRODUCERS => {
                let big = h.rng.below(4) == 0;
                let count = if big {
                    3 + h.rng.below(10)
                } else {
                    50 + h.rng.below(400)
                };
                h.spawn_producer(count, big);
            }
            6..=9 => {
                // At a random instant of its life.
                std::thread::sleep(Duration::from_millis(h.rng.below(150)));
                h.kill_producer();
            }
            10..=12 => h.stop_producer(),
            13 => {
                if h.rng.below(2) == 0 {
                    h.kill_consumer();
                    h.spawn_consumer();
                }
            }
            _ => std::thread::sleep(Duration::from_millis(10 + h.rng.below(90))),
        }
        h.pump();
        h.reap();
        h.check_reports(Instant::now());
    }
    h.wait_producers("end of the run");
    // Every lane takes a new producer (lanes of killed producers were given back), and their
    // messages arrive.
    for _ in 0..LANES - 1 {
        h.spawn_producer(20, false);
    }
    h.wait_producers("one producer per lane");
    // The end of the stream: the consumer has everything, and leaves.
    holder.close().unwrap();
    let deadline = Instant::now() + HANG;
    while !h.ended {
        if Instant::now() > deadline {
            h.fail("no end of the stream".into());
        }
        std::thread::sleep(Duration::from_millis(10));
        h.pump();
        h.reap();
    }
    let (mut kid, reader) = h.consumer.take().unwrap();
    let status = kid.child.wait().unwrap();
    assert!(status.success(), "consumer: {status}");
    reader.join().unwrap();
    h.pump();
    std::thread::sleep(REPORT_BOUND + Duration::from_millis(600));
    h.check_reports(Instant::now());
    // Nothing a producer committed before its clean close was lost.
    for (id, p) in &h.producers {
        if p.fate == Fate::Clean && p.next != p.count {
            h.fail(format!(
                "producer {id} closed cleanly after {} messages; {} arrived",
                p.count, p.next
            ));
        }
    }
    if shm_path(&name).exists() {
        h.fail("the channel is left in /dev/shm".into());
    }
    let killed = h
        .producers
        .values()
        .filter(|p| matches!(p.fate, Fate::Killed(_)))
        .count();
    println!(
        "channel torture: {steps} steps, {} producers ({killed} killed), {} consumer restarts, \
         {} messages",
        h.producers.len(),
        h.consumer_kills.len(),
        h.received
    );
}

#[test]
fn channel_torture_bounded() {
    torture("channel_torture_bounded", Duration::from_secs(40));
}

/// The long mode: `cargo test -p ipckit --release --test channel_torture -- --ignored`.
#[test]
#[ignore = "long: run with --ignored (IPCKIT_TORTURE_SECS sets the length, default 600)"]
fn channel_torture_long() {
    let secs = std::env::var("IPCKIT_TORTURE_SECS").map_or(600, |s| s.parse().unwrap());
    torture("channel_torture_long", Duration::from_secs(secs));
}
