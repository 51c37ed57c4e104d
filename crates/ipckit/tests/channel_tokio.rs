//! `channel::tokio` between real processes (children re-executing this test binary): an awaiting
//! consumer fed by blocking producers, awaiting producers woken by a blocking consumer, a
//! producer killed while the consumer awaits, futures dropped mid-wait (`select!`, `timeout`)
//! losing nothing, and no CPU while idle. Needs the `tokio` feature.
#![cfg(feature = "tokio")]

use std::process::Child;
use std::time::{Duration, Instant};

use ipckit::channel::{self, Options};
use ipckit::Error;
use ipckit_testkit::{child_role, spawn_self};

mod channel_support;
use channel_support::{channel_name, check, cpu_ticks, message};

const NAME_VAR: &str = "IPCKIT_TEST_CHANNEL";

/// A child killed and reaped if the test fails before waiting for it.
struct KillOnDrop(Child);

impl KillOnDrop {
    fn spawn(test: &str, role: &str, name: &str) -> KillOnDrop {
        let child = spawn_self(test, role)
            .env(NAME_VAR, name)
            .spawn()
            .expect("spawn child");
        KillOnDrop(child)
    }

    fn success(mut self) {
        let status = self.0.wait().unwrap();
        assert!(status.success(), "child {} failed: {status}", self.0.id());
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn name_var() -> String {
    std::env::var(NAME_VAR).expect("the channel's name")
}

/// A blocking producer process: `count` messages of producer `id` (checked by `check`), then
/// close; with a pause of `pause_us` before every 64th message, so the consumer also sleeps.
fn blocking_producer(id: u32, count: u64, pause_us: u64) {
    let mut tx = channel::Producer::open(&name_var()).unwrap();
    for seq in 0..count {
        if pause_us > 0 && seq % 64 == 0 {
            std::thread::sleep(Duration::from_micros(pause_us));
        }
        tx.send(&message(id, seq, (seq % 700) as usize + 16))
            .unwrap();
    }
    tx.close().unwrap();
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn an_awaiting_consumer_receives_two_blocking_producers_in_order() {
    const TEST: &str = "an_awaiting_consumer_receives_two_blocking_producers_in_order";
    if let Some(role) = child_role() {
        return blocking_producer(role.parse().unwrap(), 20_000, 300);
    }
    let (name, _guard) = channel_name("tokio-rx");
    for runtime in [current_thread(), multi_thread()] {
        runtime.block_on(async {
            let blocking = Options::new().lane_capacity(8192).consumer(&name).unwrap();
            let mut rx = channel::tokio::Consumer::new(blocking).unwrap();
            let a = KillOnDrop::spawn(TEST, "1", &name);
            let b = KillOnDrop::spawn(TEST, "2", &name);
            let mut next = [0u64; 3];
            let mut buf = Vec::new();
            while let Some(len) = rx.recv_into(&mut buf).await.unwrap() {
                assert_eq!(len, buf.len());
                let (id, seq) = check(&buf);
                assert_eq!(seq, next[id as usize], "producer {id} in order");
                next[id as usize] += 1;
            }
            assert_eq!(&next[1..], &[20_000, 20_000]);
            a.success();
            b.success();
        });
    }
}

#[test]
fn awaiting_producers_are_woken_by_a_blocking_consumer() {
    const TEST: &str = "awaiting_producers_are_woken_by_a_blocking_consumer";
    if child_role().is_some() {
        // The blocking consumer: everything, in order per producer, then the end.
        let mut rx = Options::new()
            .lane_capacity(4096)
            .consumer(&name_var())
            .unwrap();
        let mut next = [0u64; 3];
        while let Some(msg) = rx.recv().unwrap() {
            let (id, seq) = check(&msg);
            assert_eq!(seq, next[id as usize]);
            next[id as usize] += 1;
            if seq % 1000 == 0 {
                std::thread::sleep(Duration::from_millis(2)); // lanes fill up meanwhile
            }
        }
        assert_eq!(&next[1..], &[10_000, 10_000]);
        return;
    }
    let (name, _guard) = channel_name("tokio-tx");
    let consumer = KillOnDrop::spawn(TEST, "consumer", &name);
    multi_thread().block_on(async {
        let mut tasks = Vec::new();
        for id in 1..=2u32 {
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                let inner = Options::new().lane_capacity(4096).producer(&name).unwrap();
                let mut tx = channel::tokio::Producer::new(inner).unwrap();
                for seq in 0..10_000u64 {
                    let msg = message(id, seq, (seq % 300) as usize + 16);
                    if seq % 2 == 0 {
                        tx.send(&msg).await.unwrap();
                    } else {
                        let slot = tx.reserve(msg.len()).await.unwrap();
                        slot.shared().write_at(0, &msg).unwrap();
                        slot.commit();
                    }
                }
                tx.get_mut().wait_consumed(Duration::from_secs(60)).unwrap();
                tx.close().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    consumer.success();
}

#[test]
fn a_producer_killed_while_the_consumer_awaits_is_reported_within_a_second() {
    const TEST: &str = "a_producer_killed_while_the_consumer_awaits_is_reported_within_a_second";
    if child_role().is_some() {
        let mut tx = channel::Producer::open(&name_var()).unwrap();
        tx.send(b"attached").unwrap();
        std::thread::sleep(Duration::from_secs(600)); // until killed
        return;
    }
    let (name, _guard) = channel_name("tokio-kill");
    current_thread().block_on(async {
        let mut rx =
            channel::tokio::Consumer::new(channel::Consumer::open(&name).unwrap()).unwrap();
        let mut victim = KillOnDrop::spawn(TEST, "producer", &name);
        assert_eq!(rx.recv().await.unwrap().as_deref(), Some(&b"attached"[..]));
        let pid = victim.0.id();
        victim.0.kill().unwrap();
        victim.0.wait().unwrap();
        let killed = Instant::now();
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the death is reported, not waited out");
        match got {
            Err(Error::PeerDied { peer, pid: p, .. }) => assert_eq!((peer, p), ("producer", pid)),
            other => panic!("expected PeerDied, got {other:?}"),
        }
        let took = killed.elapsed();
        assert!(took < Duration::from_secs(1), "reported after {took:?}");
        // The producer's lane is free again and the stream has ended (no producer is left).
        assert_eq!(rx.recv().await.unwrap(), None);
    });
}

#[test]
fn futures_dropped_while_waiting_lose_nothing() {
    const TEST: &str = "futures_dropped_while_waiting_lose_nothing";
    if let Some(role) = child_role() {
        return blocking_producer(role.parse().unwrap(), 5_000, 2_000);
    }
    let (name, _guard) = channel_name("tokio-cancel");
    current_thread().block_on(async {
        let mut rx =
            channel::tokio::Consumer::new(channel::Consumer::open(&name).unwrap()).unwrap();
        let producer = KillOnDrop::spawn(TEST, "1", &name);
        let mut next = 0u64;
        let mut cancelled = 0u32;
        let mut tick = tokio::time::interval(Duration::from_micros(500));
        loop {
            // Every third receive lends the message in place; a timer often wins the race and
            // drops the receive future while it waits on the doorbell.
            let got = tokio::select! {
                got = async {
                    if next.is_multiple_of(3) {
                        rx.recv_ref().await.map(|s| s.map(|s| s.shared().to_vec()))
                    } else {
                        rx.recv().await
                    }
                } => got.unwrap(),
                _ = tick.tick() => {
                    cancelled += 1;
                    continue;
                }
            };
            let Some(msg) = got else { break };
            assert_eq!(check(&msg), (1, next), "nothing lost, nothing twice");
            next += 1;
        }
        assert_eq!(next, 5_000);
        assert!(
            cancelled > 0,
            "the timer never won: the test did not cancel anything"
        );
        producer.success();
    });
}

#[test]
fn a_reservation_dropped_half_written_publishes_nothing() {
    current_thread().block_on(async {
        let anon = Options::new().lane_capacity(4096).anonymous().unwrap();
        let mut tx = channel::tokio::Producer::new(anon.producer().unwrap()).unwrap();
        let mut rx = channel::tokio::Consumer::new(anon.consumer().unwrap()).unwrap();
        {
            let slot = tx.reserve(100).await.unwrap();
            slot.shared().write_at(0, b"half a mess").unwrap();
            // Dropped, as a cancelled writer would drop it.
        }
        tx.send(b"whole").await.unwrap();
        assert_eq!(rx.recv().await.unwrap().as_deref(), Some(&b"whole"[..]));
        // Nothing else is waiting: a receive now waits (and is cancelled by the timeout).
        let waited = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
        assert!(waited.is_err(), "{waited:?}");
        tx.close().await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), None);
    });
}

#[test]
fn an_idle_awaiting_consumer_uses_no_cpu_and_starts_no_thread() {
    const TEST: &str = "an_idle_awaiting_consumer_uses_no_cpu_and_starts_no_thread";
    if child_role().is_some() {
        // Alone in its process, so that the CPU time and the thread count are its own.
        let name = name_var();
        current_thread().block_on(async {
            let _tx = channel::Producer::open(&name).unwrap(); // attached, silent
            let mut rx =
                channel::tokio::Consumer::new(channel::Consumer::open(&name).unwrap()).unwrap();
            let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
            let before = (cpu_ticks(), threads());
            let waited = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
            assert!(waited.is_err(), "{waited:?}");
            // SAFETY: sysconf only reads a configuration value.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
            let ms = (cpu_ticks() - before.0) * 1000 / hz;
            assert!(
                ms < 50,
                "an awaiting consumer used {ms} ms of CPU in 500 ms"
            );
            assert_eq!(threads(), before.1, "no thread started");
        });
        return;
    }
    let (name, _guard) = channel_name("tokio-idle");
    KillOnDrop::spawn(TEST, "consumer", &name).success();
}

#[test]
fn outside_a_runtime_the_async_ends_are_an_error_not_a_panic() {
    let anon = Options::new().anonymous().unwrap();
    let err = channel::tokio::Consumer::new(anon.consumer().unwrap()).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

#[test]
fn the_tokio_service_example_serves_two_channels_fed_by_other_processes() {
    const TEST: &str = "the_tokio_service_example_serves_two_channels_fed_by_other_processes";
    if let Some(role) = child_role() {
        // A feeder, as `ipckit send NAME` is: a line per message, then wait until received.
        let mut tx = channel::Producer::open(&name_var()).unwrap();
        for line in role.split(',') {
            tx.send(line.as_bytes()).unwrap();
        }
        tx.wait_consumed(Duration::from_secs(60)).unwrap();
        tx.close().unwrap();
        return;
    }
    // Test names are /ipckit-test-…: the channels of `ipckit send test-…`.
    let (a, _guard_a) = channel_name("svc-a");
    let (b, _guard_b) = channel_name("svc-b");
    let short = |n: &str| {
        n.strip_prefix("/ipckit-")
            .expect("an ipckit name")
            .to_string()
    };
    let service = std::process::Command::new(ipckit_testkit::example_bin("tokio_service"))
        .args([short(&a), short(&b)])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut service = KillOnDrop(service);
    let feed_a = KillOnDrop::spawn(TEST, "build,test", &a);
    let feed_b = KillOnDrop::spawn(TEST, "disk full", &b);
    feed_a.success();
    feed_b.success();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut service.0.stdout.take().unwrap(), &mut text).unwrap();
    let status = service.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let (sa, sb) = (short(&a), short(&b));
    for line in [
        format!("{sa}: build"),
        format!("{sa}: test"),
        format!("{sa}: end"),
        format!("{sb}: disk full"),
        format!("{sb}: end"),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing from:\n{text}"
        );
    }
}
