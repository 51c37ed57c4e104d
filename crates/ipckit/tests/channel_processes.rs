//! The shared-memory channel between real processes (children re-executing this test binary):
//! order and content, many producers, start order, CPU use while blocked, SIGKILLed peers,
//! recovery after a crash, anonymous channels.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ipckit::channel::{self, Consumer, Options, Producer};
use ipckit::Error;
use ipckit_testkit::{child_role, spawn_self};

mod channel_support;
use channel_support::{channel_name, check, cpu_ticks, message, shm_path, Rng};

const NAME_VAR: &str = "IPCKIT_TEST_CHANNEL";
/// What a child prints when it is attached and waiting to be killed.
const READY: &str = "ipckit-child-ready";

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"))
}

fn env_u64(var: &str) -> u64 {
    env(var).parse().unwrap()
}

/// A child process that is SIGKILLed and reaped when dropped (also when the test panics).
struct ChildGuard(Child);

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the child and asserts that it succeeded.
    fn success(mut self) {
        let status = self.0.wait().unwrap();
        assert!(status.success(), "child {} failed: {status}", self.0.id());
    }

    /// Waits until the child prints [`READY`] on its stdout (which must be piped; the test
    /// harness prints its own lines there too).
    fn wait_ready(&mut self) {
        let out = BufReader::new(self.0.stdout.as_mut().expect("stdout piped"));
        for line in out.lines() {
            if line.unwrap() == READY {
                return;
            }
        }
        panic!("child {} ended without getting ready", self.0.id());
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.kill();
        }
    }
}

fn spawn(test: &str, role: &str, vars: &[(&str, String)], piped: bool) -> ChildGuard {
    let mut cmd = spawn_self(test, role);
    // The child runs the same test, which may be an #[ignore]d one.
    cmd.arg("--include-ignored");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    if piped {
        cmd.stdout(Stdio::piped());
    }
    ChildGuard(cmd.spawn().unwrap())
}

/// Child role: open `NAME_VAR` as a producer with id `ID` and send `COUNT` checksummed messages
/// of random sizes (`MAX_LEN`), then close. COUNT 0 means "until killed".
fn producer_child() {
    let name = env(NAME_VAR);
    let id = env_u64("ID") as u32;
    let count = env_u64("COUNT");
    let max_len = env_u64("MAX_LEN");
    let mut tx = Producer::open(&name).unwrap();
    let mut rng = Rng(0x5eed ^ u64::from(id) ^ u64::from(std::process::id()));
    let mut seq = 0;
    while count == 0 || seq < count {
        tx.send(&message(id, seq, 16 + rng.below(max_len - 15) as usize))
            .unwrap();
        seq += 1;
    }
    tx.close().unwrap();
}

/// Receives until the end of the stream, checking every message's checksum and each producer's
/// sequence; returns the number received per producer.
fn drain_checked(rx: &mut Consumer) -> HashMap<u32, u64> {
    let mut next: HashMap<u32, u64> = HashMap::new();
    let mut buf = Vec::new();
    while rx.recv_into(&mut buf).unwrap().is_some() {
        let (p, seq) = check(&buf);
        let expected = next.entry(p).or_insert(0);
        assert_eq!(
            seq, *expected,
            "producer {p}: lost, duplicated or reordered"
        );
        *expected += 1;
    }
    next
}

#[test]
fn messages_of_random_sizes_cross_processes_in_order_and_intact() {
    if child_role().is_some() {
        return producer_child();
    }
    let (name, _guard) = channel_name("spsc");
    // 8 KiB lane, messages up to 3000 bytes: the ring wraps (with pads) thousands of times and
    // the producer blocks on a full lane.
    let mut rx = Options::new().lane_capacity(8192).consumer(&name).unwrap();
    let child = spawn(
        "messages_of_random_sizes_cross_processes_in_order_and_intact",
        "producer",
        &[
            (NAME_VAR, name.clone()),
            ("ID", "1".into()),
            ("COUNT", "20000".into()),
            ("MAX_LEN", "3000".into()),
        ],
        false,
    );
    let counts = drain_checked(&mut rx);
    assert_eq!(counts, HashMap::from([(1, 20000)]));
    child.success();
    drop(rx);
    assert!(!shm_path(&name).exists());
}

/// 4 producer processes and one consumer: no loss, no duplicate, per-producer order, content.
fn many_producers(test: &str, per_producer: u64) {
    if child_role().is_some() {
        return producer_child();
    }
    let (name, _guard) = channel_name("mpsc");
    let mut rx = Options::new()
        .lane_capacity(64 * 1024)
        .consumer(&name)
        .unwrap();
    let children: Vec<_> = (0..4)
        .map(|id| {
            spawn(
                test,
                "producer",
                &[
                    (NAME_VAR, name.clone()),
                    ("ID", id.to_string()),
                    ("COUNT", per_producer.to_string()),
                    ("MAX_LEN", "200".into()),
                ],
                false,
            )
        })
        .collect();
    let counts = drain_checked(&mut rx);
    assert_eq!(
        counts,
        (0..4)
            .map(|id| (id, per_producer))
            .collect::<HashMap<_, _>>()
    );
    for c in children {
        c.success();
    }
}

#[test]
fn four_producer_processes_lose_duplicate_and_reorder_nothing() {
    // 200k messages in all.
    many_producers(
        "four_producer_processes_lose_duplicate_and_reorder_nothing",
        50_000,
    );
}

/// The 10-million-message version. CI-sized runs:
/// `cargo test -p ipckit --release --test channel_processes -- --ignored`.
#[test]
#[ignore = "10 million messages: run in release mode with --ignored"]
fn four_producer_processes_ten_million_messages() {
    many_producers("four_producer_processes_ten_million_messages", 2_500_000);
}

#[test]
fn either_side_may_start_first() {
    match child_role().as_deref() {
        Some("producer") => return producer_child(),
        Some("consumer") => {
            let mut rx = Consumer::open(&env(NAME_VAR)).unwrap();
            let counts = drain_checked(&mut rx);
            assert_eq!(counts, HashMap::from([(0, 5000)]));
            return;
        }
        _ => {}
    }
    let test = "either_side_may_start_first";
    // Consumer first (this process), producer later (a child).
    let (name, _guard) = channel_name("order-c");
    let mut rx = Consumer::open(&name).unwrap();
    let vars = [
        (NAME_VAR, name.clone()),
        ("ID", "0".into()),
        ("COUNT", "5000".into()),
        ("MAX_LEN", "100".into()),
    ];
    let child = spawn(test, "producer", &vars, false);
    assert_eq!(drain_checked(&mut rx), HashMap::from([(0, 5000)]));
    child.success();
    drop(rx);
    // Producer first (this process, which fills its lane and blocks), consumer later (a child).
    let (name, _guard) = channel_name("order-p");
    let mut tx = Options::new().lane_capacity(4096).producer(&name).unwrap();
    let child = spawn(test, "consumer", &[(NAME_VAR, name.clone())], false);
    for seq in 0..5000 {
        tx.send(&message(0, seq, 100)).unwrap();
    }
    tx.close().unwrap();
    child.success();
    assert!(!shm_path(&name).exists());
}

#[test]
fn blocked_consumer_uses_no_cpu() {
    if child_role().is_some() {
        let mut rx = Consumer::open(&env(NAME_VAR)).unwrap();
        let _tx = Producer::open(&env(NAME_VAR)).unwrap(); // attached, silent: no end of stream
        let before = cpu_ticks();
        let e = rx.recv_timeout(Duration::from_millis(500)).unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        let used = cpu_ticks() - before;
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        let ms = used * 1000 / hz;
        assert!(ms < 50, "a consumer blocked for 500 ms used {ms} ms of CPU");
        return;
    }
    let (name, _guard) = channel_name("idle");
    spawn(
        "blocked_consumer_uses_no_cpu",
        "consumer",
        &[(NAME_VAR, name)],
        false,
    )
    .success();
}

#[test]
fn killed_producer_is_reported_and_never_leaves_a_torn_message() {
    if child_role().is_some() {
        return producer_child();
    }
    let test = "killed_producer_is_reported_and_never_leaves_a_torn_message";
    let mut rng = Rng(42);
    for round in 0..3 {
        let (name, _guard) = channel_name("killp");
        let mut rx = Options::new().lane_capacity(16384).consumer(&name).unwrap();
        let vars = |id: u32, count: u64| {
            [
                (NAME_VAR, name.clone()),
                ("ID", id.to_string()),
                ("COUNT", count.to_string()),
                ("MAX_LEN", "4000".into()),
            ]
        };
        // Producer 1 sends until killed; producer 2 sends a fixed stream that must complete.
        let mut victim = spawn(test, "producer", &vars(1, 0), false);
        let survivor = spawn(test, "producer", &vars(2, 3000), false);
        let kill_after = 500 + rng.below(3000);
        let mut next: HashMap<u32, u64> = HashMap::new();
        let mut buf = Vec::new();
        let mut killed_at = None;
        let mut reported = false;
        loop {
            let got = match killed_at {
                None => rx.recv_into(&mut buf),
                Some(t) => {
                    // Death must be reported within 2 s of the kill.
                    let left = Duration::from_secs(2).saturating_sub(Instant::elapsed(&t));
                    if reported {
                        rx.recv_into(&mut buf)
                    } else {
                        rx.recv_into_timeout(&mut buf, left)
                    }
                }
            };
            match got {
                Ok(Some(_)) => {
                    let (p, seq) = check(&buf);
                    let expected = next.entry(p).or_insert(0);
                    assert_eq!(seq, *expected, "round {round}: producer {p} out of order");
                    *expected += 1;
                    if p == 1 && seq == kill_after {
                        victim.kill();
                        killed_at = Some(Instant::now());
                    }
                }
                Ok(None) => break,
                Err(Error::PeerDied { peer, pid, .. }) => {
                    assert!(
                        killed_at.is_some() && !reported,
                        "round {round}: unexpected death"
                    );
                    assert_eq!((peer, pid), ("producer", victim.pid()));
                    reported = true;
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert!(
            reported,
            "round {round}: the killed producer was never reported"
        );
        assert_eq!(
            next[&2], 3000,
            "round {round}: the surviving stream is complete"
        );
        assert!(next[&1] > kill_after, "round {round}");
        survivor.success();
    }
}

#[test]
fn killed_consumer_fails_a_producer_blocked_on_a_full_lane() {
    if child_role().is_some() {
        let _rx = Consumer::open(&env(NAME_VAR)).unwrap();
        println!("{READY}");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let (name, _guard) = channel_name("killc");
    let mut tx = Options::new().lane_capacity(4096).producer(&name).unwrap();
    let mut child = spawn(
        "killed_consumer_fails_a_producer_blocked_on_a_full_lane",
        "consumer",
        &[(NAME_VAR, name.clone())],
        true,
    );
    child.wait_ready();
    let pid = child.pid();
    while tx.try_send(&[0u8; 500]).is_ok() {}
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        child.kill();
    });
    let started = Instant::now();
    let e = tx
        .send_timeout(&[0u8; 500], Duration::from_secs(10))
        .unwrap_err();
    killer.join().unwrap();
    assert!(
        matches!(e, Error::PeerDied { peer: "consumer", pid: p, .. } if p == pid),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it did not time out"
    );
}

#[test]
fn next_open_recovers_after_every_participant_was_killed() {
    if child_role().is_some() {
        let name = env(NAME_VAR);
        let _rx = Consumer::open(&name).unwrap();
        let mut tx = Producer::open(&name).unwrap();
        for seq in 0..3 {
            tx.send(&message(7, seq, 64)).unwrap();
        }
        println!("{READY}");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let (name, _guard) = channel_name("recover");
    let mut child = spawn(
        "next_open_recovers_after_every_participant_was_killed",
        "crasher",
        &[(NAME_VAR, name.clone())],
        true,
    );
    child.wait_ready();
    let pid = child.pid();
    child.kill();
    assert!(shm_path(&name).exists(), "a crash leaves the segment");
    // The dead consumer is replaced; the dead producer's committed messages are delivered, then
    // its death, then the end of that stream.
    let mut rx = Consumer::open(&name).unwrap();
    for seq in 0..3 {
        assert_eq!(check(&rx.recv().unwrap().unwrap()), (7, seq));
    }
    let e = rx.recv().unwrap_err();
    assert!(
        matches!(e, Error::PeerDied { peer: "producer", pid: p, .. } if p == pid),
        "{e}"
    );
    assert_eq!(rx.recv().unwrap(), None);
    // And the channel works again, for a new stream (a new consumer).
    drop(rx);
    let mut rx = Consumer::open(&name).unwrap();
    let mut tx = Producer::open(&name).unwrap();
    tx.send(b"again").unwrap();
    assert_eq!(rx.recv().unwrap().unwrap(), b"again");
    drop(tx);
    drop(rx);
    assert!(!shm_path(&name).exists());
}

#[test]
fn orphan_is_removed_only_once_every_participant_is_dead() {
    if child_role().is_some() {
        let name = env(NAME_VAR);
        let _rx = Consumer::open(&name).unwrap();
        let _tx = Producer::open(&name).unwrap();
        println!("{READY}");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let (name, _guard) = channel_name("orphan");
    let mut child = spawn(
        "orphan_is_removed_only_once_every_participant_is_dead",
        "crasher",
        &[(NAME_VAR, name.clone())],
        true,
    );
    child.wait_ready();
    assert!(
        !channel::remove_if_orphaned(&name).unwrap(),
        "its participants are alive"
    );
    assert!(shm_path(&name).exists());
    child.kill();
    assert!(channel::remove_if_orphaned(&name).unwrap());
    assert!(!shm_path(&name).exists());
    let e = channel::remove_if_orphaned(&name).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    // A live channel in this process is no orphan either.
    let _rx = Consumer::open(&name).unwrap();
    assert!(!channel::remove_if_orphaned(&name).unwrap());
}

#[test]
fn anonymous_channel_is_shared_with_a_child_through_its_descriptor() {
    if child_role().is_some() {
        let fd: i32 = env("CHANNEL_FD").parse().unwrap();
        // SAFETY: the parent made this descriptor inheritable and keeps it open while we run.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut tx = Producer::from_fd(fd).unwrap();
        for seq in 0..10_000 {
            tx.send(&message(3, seq, 120)).unwrap();
        }
        return;
    }
    let chan = Options::new().lane_capacity(4096).anonymous().unwrap();
    let mut rx = chan.consumer().unwrap();
    chan.set_inheritable(true).unwrap();
    let child = spawn(
        "anonymous_channel_is_shared_with_a_child_through_its_descriptor",
        "producer",
        &[("CHANNEL_FD", chan.as_raw_fd().to_string())],
        false,
    );
    chan.set_inheritable(false).unwrap();
    assert_eq!(drain_checked(&mut rx), HashMap::from([(3, 10_000)]));
    child.success();
}

/// A producer killed between reserve and commit, in the middle of copying a message that wraps
/// around the ring end: the consumer receives what was committed, learns of the death, and the
/// lane is whole for the next producer that claims it.
#[test]
fn producer_killed_between_reserve_and_commit_leaves_a_usable_lane() {
    const CAP: usize = 64 * 1024;
    if child_role().is_some() {
        let mut tx = Producer::open(&env(NAME_VAR)).unwrap();
        // The tail 5000 bytes before the ring end, then a 30000-byte reservation: it wraps.
        tx.send(&message(5, 0, CAP - 5000 - 8)).unwrap();
        // Once it is received, the pad and the record both fit: one reservation for both.
        tx.wait_consumed(Duration::from_secs(30)).unwrap();
        let slot = tx.reserve(30_000).unwrap();
        slot.shared().get(..15_000).unwrap().fill(0x5a).unwrap();
        println!("{READY}");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let (name, _guard) = channel_name("killreserve");
    // One lane: the next producer gets the same one.
    let mut rx = Options::new()
        .lane_capacity(CAP)
        .max_producers(1)
        .consumer(&name)
        .unwrap();
    let mut child = spawn(
        "producer_killed_between_reserve_and_commit_leaves_a_usable_lane",
        "reserver",
        &[(NAME_VAR, name.clone())],
        true,
    );
    assert_eq!(check(&rx.recv().unwrap().unwrap()), (5, 0));
    child.wait_ready();
    let pid = child.pid();
    child.kill();
    let killed = Instant::now();
    let e = rx.recv_timeout(Duration::from_secs(5)).unwrap_err();
    assert!(
        matches!(e, Error::PeerDied { peer: "producer", pid: p, .. } if p == pid),
        "{e}"
    );
    assert!(killed.elapsed() < Duration::from_secs(1), "reported late");
    // The lane works for the next producer, across the ring end too.
    let mut tx = Producer::open(&name).unwrap();
    assert_eq!(tx.lane(), 0);
    for seq in 0..8 {
        tx.send(&message(6, seq, 20_000)).unwrap();
        assert_eq!(check(&rx.recv().unwrap().unwrap()), (6, seq));
    }
    tx.close().unwrap();
    assert_eq!(rx.recv().unwrap(), None);
}

/// Sends SIGSTOP or SIGCONT to `pid`.
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid of our own child, which we have not reaped yet.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
}

/// Runs `f` on a thread and returns its result, failing the test if it takes longer than
/// `limit` (the thread is then left behind: the point is that the test does not hang).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    result
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not return within {limit:?}"))
}

/// A participant stopped (SIGSTOP) while it holds the channel's open/leave lock (the child takes
/// it directly, as one stopped inside an open or a close would hold it): another open and
/// another close return within the bound instead of waiting for ever.
#[test]
fn a_participant_stopped_inside_open_or_close_blocks_nobody_for_ever() {
    /// The init lock byte: one below the liveness bytes at 2^48 (see the channel's layout).
    const INIT_LOCK_BYTE: i64 = (1 << 48) - 1;
    if child_role().is_some() {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(shm_path(&env(NAME_VAR)))
            .unwrap();
        // SAFETY: an all-zero flock is a valid value; fcntl gets a valid pointer to it.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = INIT_LOCK_BYTE;
        fl.l_len = 1;
        // SAFETY: as above; the descriptor is open.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        println!("{READY}");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let (name, _guard) = channel_name("stopped");
    let rx = Consumer::open(&name).unwrap();
    let mut child = spawn(
        "a_participant_stopped_inside_open_or_close_blocks_nobody_for_ever",
        "holder",
        &[(NAME_VAR, name.clone())],
        true,
    );
    child.wait_ready();
    signal(child.pid(), libc::SIGSTOP);
    // The bound is 3 s; allow for a loaded machine, but not for ever.
    let limit = Duration::from_secs(10);
    let n = name.clone();
    let e = within(limit, move || Producer::open(&n).unwrap_err());
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(
        e.to_string().contains(&name),
        "the error names the channel: {e}"
    );
    let e = within(limit, move || rx.close().unwrap_err());
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    signal(child.pid(), libc::SIGCONT);
    child.kill();
    // Nobody is attached any more: the segment is an orphan, and garbage collection removes it.
    assert!(channel::remove_if_orphaned(&name).unwrap());
    assert!(!shm_path(&name).exists());
}
