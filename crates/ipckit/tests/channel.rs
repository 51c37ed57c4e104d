//! The shared-memory channel within one process: order, content, limits, waiting, end of stream,
//! cleanup, zero copy. Across processes: `channel_processes.rs`; hostile memory: `channel_hostile.rs`.

use std::time::Duration;

use ipckit::channel::{self, Consumer, Options, Producer};
use ipckit::Error;

mod channel_support;
use channel_support::{channel_name, check, message, shm_path, Rng};

#[test]
fn messages_arrive_in_order_with_their_content_across_wrap_around() {
    let (name, _guard) = channel_name("order");
    let mut rx = Options::new().lane_capacity(4096).consumer(&name).unwrap();
    let mut tx = Producer::open(&name).unwrap();
    let mut rng = Rng(1);
    // 4 KiB ring, ~20 KiB pushed through in batches: wraps around with pads many times.
    let mut sent = 0u64;
    let mut got = 0u64;
    while got < 2000 {
        while sent < 2000 {
            let m = message(0, sent, 16 + rng.below(600) as usize);
            match tx.try_send(&m) {
                Ok(()) => sent += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        while let Ok(Some(m)) = rx.try_recv() {
            assert_eq!(check(&m), (0, got));
            got += 1;
        }
    }
    assert!(matches!(rx.try_recv(), Err(Error::WouldBlock { .. })));
}

#[test]
fn messages_arrive_whole_at_every_length_and_cache_line_offset() {
    // `send` writes a large payload in two parts (the bytes on the header's cache line last);
    // every payload length around the sizes where it starts, at each of the eight offsets a
    // record can start at within a cache line, arrives as sent.
    let (name, _guard) = channel_name("split");
    let mut rx = Options::new()
        .lane_capacity(64 * 1024)
        .consumer(&name)
        .unwrap();
    let mut tx = Producer::open(&name).unwrap();
    let mut seq = 0u64;
    let mut buf = Vec::new();
    for shift in 0..8 {
        for len in (16..200)
            .chain(440..640)
            .chain(1000..1100)
            .chain([4095, 4096, 4097])
        {
            // A record of 8 to 64 bytes first moves the next one along its cache line.
            let filler = [7u8; 56];
            let filler = &filler[..8 * ((shift + len) % 8)];
            tx.send(filler).unwrap();
            assert_eq!(rx.try_recv_into(&mut buf).unwrap(), Some(filler.len()));
            let m = message(0, seq, len);
            tx.send(&m).unwrap();
            assert_eq!(rx.try_recv_into(&mut buf).unwrap(), Some(len));
            assert_eq!(buf, m, "length {len}, shift {shift}");
            assert_eq!(check(&buf), (0, seq));
            seq += 1;
        }
    }
}

fn would_block(r: ipckit::Result<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(Error::WouldBlock { .. }))
}

#[test]
fn try_send_on_a_full_lane_and_try_recv_on_an_empty_channel_would_block() {
    let (name, _guard) = channel_name("full");
    let mut rx = Options::new().lane_capacity(4096).consumer(&name).unwrap();
    assert!(would_block(rx.try_recv()), "empty before any producer");
    let mut tx = Producer::open(&name).unwrap();
    let msg = [7u8; 1000]; // 1008-byte records: four fit in 4096 bytes
    for _ in 0..4 {
        tx.try_send(&msg).unwrap();
    }
    let e = tx.try_send(&msg).unwrap_err();
    assert!(matches!(e, Error::WouldBlock { .. }), "{e}");
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    assert_eq!(rx.try_recv().unwrap().unwrap(), msg);
    tx.try_send(&msg).unwrap();
    for _ in 0..4 {
        assert_eq!(rx.try_recv().unwrap().unwrap(), msg);
    }
    assert!(would_block(rx.try_recv()));
}

#[test]
fn timeouts_expire_on_an_empty_channel_and_on_a_full_lane() {
    let (name, _guard) = channel_name("timeout");
    let mut rx = Options::new().lane_capacity(4096).consumer(&name).unwrap();
    let e = rx.recv_timeout(Duration::from_millis(50)).unwrap_err();
    assert!(
        matches!(e, Error::Timeout { timeout, .. } if timeout == Duration::from_millis(50)),
        "{e}"
    );
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    let mut tx = Producer::open(&name).unwrap();
    while tx.try_send(&[1u8; 500]).is_ok() {}
    let e = tx
        .send_timeout(&[1u8; 500], Duration::from_millis(50))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    // A message that arrives in time is received.
    let got = rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(got, [1u8; 500]);
}

#[test]
fn message_larger_than_the_lane_is_too_large_and_nothing_queued_is_lost() {
    let (name, _guard) = channel_name("toolarge");
    let mut rx = Options::new().lane_capacity(8192).consumer(&name).unwrap();
    let mut tx = Producer::open(&name).unwrap();
    assert_eq!(tx.max_message_size(), 8192 - 8);
    tx.send(b"first").unwrap();
    tx.send(b"second").unwrap();
    let e = tx.send(&vec![0u8; 8192 - 7]).unwrap_err();
    match &e {
        Error::TooLarge {
            len,
            limit,
            limit_name,
            ..
        } => {
            assert_eq!((*len, *limit), (8192 - 7, 8192 - 8));
            assert!(limit_name.contains("lane capacity"), "{limit_name}");
        }
        other => panic!("expected TooLarge, got {other}"),
    }
    assert!(e.to_string().contains("8184 bytes"), "{e}");
    assert!(matches!(tx.reserve(1 << 20), Err(Error::TooLarge { .. })));
    assert_eq!(rx.recv().unwrap().unwrap(), b"first");
    assert_eq!(rx.recv().unwrap().unwrap(), b"second");
    // The largest message fits even though the lane's offset is no longer 0 (a pad goes first).
    let big: Vec<u8> = (0..8184u32).map(|i| i as u8).collect();
    let sender = std::thread::spawn(move || {
        tx.send(&big).unwrap();
        tx.send(&big).unwrap();
        big
    });
    let a = rx.recv().unwrap().unwrap();
    let b = rx.recv().unwrap().unwrap();
    let big = sender.join().unwrap();
    assert_eq!((a == big, b == big), (true, true));
}

#[test]
fn recv_returns_end_of_stream_once_every_producer_has_closed() {
    let (name, _guard) = channel_name("eos");
    let mut rx = Consumer::open(&name).unwrap();
    let mut a = Producer::open(&name).unwrap();
    let mut b = Producer::open(&name).unwrap();
    a.send(b"a1").unwrap();
    b.send(b"b1").unwrap();
    a.close().unwrap();
    b.send(b"b2").unwrap();
    drop(b);
    let mut got = Vec::new();
    while let Some(m) = rx.recv().unwrap() {
        got.push(m);
    }
    got.sort();
    assert_eq!(got, [b"a1".to_vec(), b"b1".to_vec(), b"b2".to_vec()]);
    assert_eq!(rx.try_recv().unwrap(), None, "end of stream stays");
    assert_eq!(rx.recv_timeout(Duration::from_millis(10)).unwrap(), None);
    // A producer attaching once the end was received is refused at once: its messages would
    // never be read.
    let e = Producer::open(&name).unwrap_err();
    assert!(matches!(e, Error::Closed { .. }), "{e}");
    assert!(e.to_string().contains("end of the stream"), "{e}");
    assert_eq!(rx.try_recv().unwrap(), None, "the end is final");
    // A new consumer starts a new stream.
    drop(rx);
    let mut rx = Consumer::open(&name).unwrap();
    let mut c = Producer::open(&name).unwrap();
    c.send(b"c1").unwrap();
    assert_eq!(rx.recv().unwrap().unwrap(), b"c1");
}

/// Producers joining while the consumer drains: each one either joins the stream (and every one
/// of its messages is received) or is refused at open — never accepted and then ignored.
#[test]
fn a_late_producer_joins_the_stream_or_is_refused_never_ignored() {
    for round in 0..50 {
        let (name, _guard) = channel_name("late");
        let mut rx = Consumer::open(&name).unwrap();
        let mut first = Producer::open(&name).unwrap();
        first.send(b"first").unwrap();
        let late = std::thread::spawn({
            let name = name.clone();
            move || -> Option<u64> {
                std::thread::sleep(Duration::from_micros(round * 20));
                let mut tx = match Producer::open(&name) {
                    Ok(tx) => tx,
                    Err(Error::Closed { .. }) => return None,
                    Err(e) => panic!("round {round}: {e}"),
                };
                for seq in 0..20 {
                    tx.send(&message(1, seq, 32)).unwrap();
                }
                tx.close().unwrap();
                Some(20)
            }
        });
        first.close().unwrap();
        let mut from_late = 0;
        while let Some(m) = rx.recv().unwrap() {
            if m != b"first" {
                assert_eq!(check(&m), (1, from_late), "round {round}");
                from_late += 1;
            }
        }
        let sent = late.join().unwrap();
        assert_eq!(
            sent.unwrap_or(0),
            from_late,
            "round {round}: messages were lost"
        );
    }
}

#[test]
fn wait_consumed_returns_once_the_consumer_received_everything() {
    let (name, _guard) = channel_name("consumed");
    let mut tx = Producer::open(&name).unwrap();
    // Nothing sent: nothing to wait for, even without a consumer.
    tx.wait_consumed(Duration::ZERO).unwrap();
    for i in 0..10u8 {
        tx.send(&[i; 100]).unwrap();
    }
    // No consumer yet: a timeout.
    let e = tx.wait_consumed(Duration::from_millis(50)).unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    let receiver = std::thread::spawn({
        let name = name.clone();
        move || {
            let mut rx = Consumer::open(&name).unwrap();
            for i in 0..10u8 {
                std::thread::sleep(Duration::from_millis(5));
                assert_eq!(rx.recv().unwrap().unwrap(), [i; 100]);
            }
            rx
        }
    });
    tx.wait_consumed(Duration::from_secs(30)).unwrap();
    let rx = receiver.join().unwrap();
    // A consumer that closes with messages unreceived: `Closed`, not a timeout.
    tx.send(b"never read").unwrap();
    rx.close().unwrap();
    let e = tx.wait_consumed(Duration::from_secs(30)).unwrap_err();
    assert!(matches!(e, Error::Closed { .. }), "{e}");
}

/// A POSIX shm object of another program that merely looks like a dead, half-created channel
/// (all zeros, a whole number of pages) is refused and left exactly as it was.
#[test]
fn a_foreign_all_zero_object_is_refused_and_left_untouched() {
    let (name, _guard) = channel_name("foreign");
    let path = shm_path(&name);
    std::fs::write(&path, vec![0u8; 3 * 4096]).unwrap();
    let e = Consumer::open(&name).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("not an ipckit channel"), "{e}");
    let e = Producer::open(&name).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), vec![0u8; 3 * 4096]);
    // And one with data in it.
    let data: Vec<u8> = (0..8192u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    assert!(Consumer::open(&name).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), data);
    // `remove_if_orphaned` (garbage collection) leaves it alone too.
    assert!(!ipckit::channel::remove_if_orphaned(&name).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), data);
}

/// A channel whose creator died after writing its in-progress marker (and before the magic) is
/// recognised and initialised by the next opener.
#[test]
fn a_creation_that_died_half_way_is_repaired() {
    let (name, _guard) = channel_name("halfmade");
    let path = shm_path(&name);
    for size in [8usize, 64 * 4096] {
        let mut bytes = vec![0u8; size];
        bytes[..8].copy_from_slice(b"ipckinit");
        std::fs::write(&path, &bytes).unwrap();
        let mut rx = Consumer::open(&name).unwrap();
        let mut tx = Producer::open(&name).unwrap();
        tx.send(b"works").unwrap();
        assert_eq!(rx.recv().unwrap().unwrap(), b"works");
        drop(tx);
        drop(rx);
        assert!(!path.exists());
    }
}

#[test]
fn segment_is_removed_from_dev_shm_when_both_sides_close() {
    let (name, _guard) = channel_name("cleanup");
    let rx = Consumer::open(&name).unwrap();
    assert!(shm_path(&name).exists());
    let mut tx = Producer::open(&name).unwrap();
    tx.send(b"x").unwrap();
    rx.close().unwrap();
    assert!(shm_path(&name).exists(), "the producer is still attached");
    tx.close().unwrap();
    assert!(!shm_path(&name).exists(), "the last one out unlinks");
    // Dropping (instead of close) does the same.
    let tx = Producer::open(&name).unwrap();
    let rx = Consumer::open(&name).unwrap();
    drop(tx);
    drop(rx);
    assert!(!shm_path(&name).exists());
}

#[test]
fn second_consumer_is_refused_and_names_the_first() {
    let (name, _guard) = channel_name("twoconsumers");
    let rx = Consumer::open(&name).unwrap();
    let e = Consumer::open(&name).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
    assert!(
        e.to_string().contains(&format!(
            "already has a consumer (pid {})",
            std::process::id()
        )),
        "{e}"
    );
    drop(rx);
    // Once it is gone, another may attach.
    let _tx = Producer::open(&name).unwrap();
    Consumer::open(&name).unwrap();
}

#[test]
fn sending_after_the_consumer_closed_is_an_error() {
    let (name, _guard) = channel_name("closedconsumer");
    let rx = Consumer::open(&name).unwrap();
    let mut tx = Producer::open(&name).unwrap();
    tx.send(b"before").unwrap();
    rx.close().unwrap();
    let e = tx.send(b"after").unwrap_err();
    assert!(matches!(e, Error::Closed { .. }), "{e}");
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    // A new consumer gets what was sent before, and the producer may send again.
    let mut rx = Consumer::open(&name).unwrap();
    assert_eq!(rx.recv().unwrap().unwrap(), b"before");
    tx.send(b"again").unwrap();
    assert_eq!(rx.recv().unwrap().unwrap(), b"again");
}

#[test]
fn zero_copy_reserve_commit_and_recv_ref_round_trip() {
    let (name, _guard) = channel_name("zerocopy");
    let mut rx = Consumer::open(&name).unwrap();
    let mut tx = Producer::open(&name).unwrap();
    for n in 0..100u32 {
        let slot = tx.reserve(64 + n as usize).unwrap();
        assert_eq!(slot.len(), 64 + n as usize);
        let bytes: Vec<u8> = (0..slot.len()).map(|i| (i as u32 ^ n) as u8).collect();
        slot.shared().write_at(0, &bytes).unwrap();
        slot.commit();
        let got = rx.recv_ref().unwrap().unwrap();
        assert_eq!(got.lane(), tx.lane());
        assert_eq!(got.len(), 64 + n as usize);
        assert_eq!(got.shared().len(), got.len());
        assert_eq!(got.shared().to_vec(), bytes);
    }
    // recv_into reuses its buffer.
    tx.send(&[9u8; 300]).unwrap();
    let mut buf = Vec::with_capacity(4096);
    let ptr = buf.as_ptr();
    assert_eq!(rx.recv_into(&mut buf).unwrap(), Some(300));
    assert_eq!((buf.as_ptr(), &buf[..]), (ptr, &[9u8; 300][..]));
}

#[test]
fn abandoned_send_slot_publishes_nothing() {
    let (name, _guard) = channel_name("abandon");
    let mut rx = Consumer::open(&name).unwrap();
    let mut tx = Producer::open(&name).unwrap();
    {
        let slot = tx.reserve(100).unwrap();
        slot.shared().fill(0xAB).unwrap();
        // Dropped here without commit.
    }
    assert!(would_block(rx.try_recv()));
    tx.send(b"committed").unwrap();
    assert_eq!(rx.try_recv().unwrap().unwrap(), b"committed");
    assert!(would_block(rx.try_recv()));
}

#[test]
fn lanes_are_limited_by_max_producers_and_reused_after_close() {
    let (name, _guard) = channel_name("lanes");
    let mut rx = Options::new().max_producers(2).consumer(&name).unwrap();
    let a = Producer::open(&name).unwrap();
    let _b = Producer::open(&name).unwrap();
    let e = Producer::open(&name).unwrap_err();
    assert!(
        e.to_string().contains("all 2 producer lanes are in use"),
        "{e}"
    );
    a.close().unwrap();
    // The consumer frees the closed lane when it finds it drained.
    assert!(would_block(rx.try_recv()));
    Producer::open(&name).unwrap();
}

#[test]
fn invalid_names_and_options_are_refused_before_any_system_call() {
    for bad in ["no-slash", "/a/b", "/", "/.."] {
        let e = Producer::open(bad).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{bad}: {e}");
    }
    let (name, _guard) = channel_name("badopts");
    for opts in [
        Options::new().lane_capacity(5000).clone(),
        Options::new().lane_capacity(2048).clone(),
        Options::new().max_producers(0).clone(),
        Options::new().max_producers(65).clone(),
        Options::new().mode(0o1777).clone(),
    ] {
        let e = opts.consumer(&name).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{opts:?}: {e}");
    }
    assert!(!shm_path(&name).exists());
}

#[test]
fn anonymous_channel_round_trip_and_end_of_stream() {
    let chan = Options::new().lane_capacity(4096).anonymous().unwrap();
    let mut rx = chan.consumer().unwrap();
    let mut tx = chan.producer().unwrap();
    for i in 0..1000u64 {
        tx.send(&message(0, i, 100)).unwrap();
        assert_eq!(check(&rx.recv().unwrap().unwrap()), (0, i));
    }
    tx.close().unwrap();
    assert_eq!(rx.recv().unwrap(), None);
    assert!(chan.consumer().is_err(), "one consumer at a time");
}

#[test]
fn handles_are_send_and_spin_mode_waits_without_sleeping() {
    fn assert_send<T: Send>() {}
    assert_send::<Producer>();
    assert_send::<Consumer>();
    let (name, _guard) = channel_name("spin");
    let spin = Options::new()
        .lane_capacity(4096)
        .wait(ipckit::channel::Wait::Spin)
        .clone();
    let mut rx = spin.consumer(&name).unwrap();
    let mut tx = spin.producer(&name).unwrap();
    // The producer moves to another thread; 5000 messages through a 4 KiB lane make both sides
    // wait (busy-polling) many times.
    let sender = std::thread::spawn(move || {
        for seq in 0..5000 {
            tx.send(&message(0, seq, 200)).unwrap();
        }
    });
    for seq in 0..5000 {
        assert_eq!(check(&rx.recv().unwrap().unwrap()), (0, seq));
    }
    sender.join().unwrap();
    assert_eq!(
        rx.recv().unwrap(),
        None,
        "the producer was dropped: end of stream"
    );
    let e = rx.recv_timeout(Duration::from_millis(1));
    assert_eq!(e.unwrap(), None);
}

/// Whether `bell` is readable now (poll with a zero timeout).
fn rung(bell: &channel::Doorbell) -> bool {
    let mut fds = [rustix::event::PollFd::new(
        bell,
        rustix::event::PollFlags::IN,
    )];
    let now = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&now)).unwrap() == 1
}

#[test]
fn an_armed_consumer_is_rung_by_a_send_and_a_disarmed_one_is_not() {
    let anon = Options::new().anonymous().unwrap();
    let mut tx = anon.producer().unwrap();
    let mut rx = anon.consumer().unwrap();
    let bell = channel::Doorbell::new().unwrap();
    assert!(matches!(rx.try_recv(), Err(Error::WouldBlock { .. })));
    rx.arm(&bell);
    assert!(matches!(rx.try_recv(), Err(Error::WouldBlock { .. })));
    tx.send(b"one").unwrap();
    assert!(rung(&bell), "the send rang the armed consumer's doorbell");
    rx.disarm();
    bell.clear();
    assert!(!rung(&bell));
    assert_eq!(rx.try_recv().unwrap().as_deref(), Some(&b"one"[..]));
    tx.send(b"two").unwrap();
    assert!(!rung(&bell), "a disarmed consumer is not rung");
    // Closing rings it too: the end of the stream is news.
    rx.arm(&bell);
    tx.close().unwrap();
    assert!(rung(&bell), "the close rang the doorbell");
}

#[test]
fn an_armed_producer_is_rung_when_the_consumer_frees_room() {
    let anon = Options::new().lane_capacity(4096).anonymous().unwrap();
    let mut tx = anon.producer().unwrap();
    let mut rx = anon.consumer().unwrap();
    let msg = [7u8; 1000];
    while tx.try_send(&msg).is_ok() {}
    let bell = channel::Doorbell::new().unwrap();
    tx.arm(&bell);
    assert!(matches!(tx.try_send(&msg), Err(Error::WouldBlock { .. })));
    assert!(!rung(&bell));
    rx.try_recv().unwrap().unwrap();
    assert!(rung(&bell), "the receive rang the full producer's doorbell");
    tx.disarm();
    tx.try_send(&msg).unwrap();
}

#[test]
fn a_reservation_committed_shorter_gives_the_rest_back() {
    // Reserve up to 600 bytes, write fewer (as an encoder would), commit what was written; the
    // 4 KiB lane wraps many times, with pads, and every message arrives whole and in order.
    let anon = Options::new().lane_capacity(4096).anonymous().unwrap();
    let mut tx = anon.producer().unwrap();
    let mut rx = anon.consumer().unwrap();
    let mut rng = Rng(7);
    for seq in 0..5000u64 {
        let len = 16 + rng.below(580) as usize;
        let max = len + rng.below(600 - len as u64) as usize;
        let msg = message(1, seq, len);
        let slot = tx.reserve(max).unwrap();
        assert_eq!(slot.len(), max);
        slot.shared().write_at(0, &msg).unwrap();
        slot.commit_len(len).unwrap();
        assert_eq!(rx.try_recv().unwrap().unwrap(), msg, "message {seq}");
    }
    // Longer than reserved: refused, nothing published.
    let err = tx.reserve(10).unwrap().commit_len(11).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(matches!(rx.try_recv(), Err(Error::WouldBlock { .. })));
    tx.send(b"after").unwrap();
    assert_eq!(rx.try_recv().unwrap().as_deref(), Some(&b"after"[..]));
}
