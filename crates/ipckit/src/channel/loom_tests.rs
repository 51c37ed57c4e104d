//! Loom models of the lane ring and the wake-up protocol: every interleaving (within a preemption
//! bound) of a producer and a consumer, over a ring whose words hold headers and payloads alike
//! (one loom atomic per word, payloads relaxed word copies as in the real ring), so that a payload read not
//! ordered after its write can return a stale value and fail the content check, and a stale
//! payload word can be taken for a header if the protocol allowed it; blocking waits use a
//! modelled futex without timeouts, so that a lost wake-up is reported as a deadlock.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p ipckit --release --lib channel`

use loom::sync::atomic::AtomicBool;
use loom::sync::Arc;
use loom::thread;

use super::atomic::Ordering;
use super::header::LaneCtl;
use super::ring::{ConsumerRing, ProducerRing, RingBuf};
use super::wait::{wait_for, Deadline, SpinWindow, Wait, WaitCell};

/// One lane's shared state plus the consumer's wait cell (the header's, in a real segment).
struct Lane {
    ctl: LaneCtl,
    buf: RingBuf,
}

const CAP: usize = 64;

fn lane() -> Lane {
    Lane {
        ctl: LaneCtl::new(),
        buf: RingBuf::new_model(CAP),
    }
}

fn payload(tag: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| tag.wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

/// `wait_for` as the channel's blocking waits call it: no deadline, a waiter's first window.
fn block_on<T, E>(
    cell: &WaitCell,
    mut poll: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    wait_for(
        cell,
        Wait::Blocking,
        &mut SpinWindow::default(),
        Deadline::Never,
        |_| poll(),
    )
}

/// A blocking send, as `Producer::send` does it: wait for room on the lane's cell, write, commit.
fn send(ring: &mut ProducerRing, lane: &Lane, consumer: &WaitCell, msg: &[u8]) {
    let r = block_on(&lane.ctl.space, || {
        ring.try_reserve(&lane.ctl, &lane.buf, consumer, msg.len())
            .map_err(|c| c.0)
    })
    .unwrap()
    .expect("no deadline");
    lane.buf.write(r.payload_offset(CAP), msg);
    ring.commit(&lane.ctl, &lane.buf, consumer, r);
}

/// Takes the next record of `lane`, if any, copying it out and releasing it.
fn take(ring: &mut ConsumerRing, lane: &Lane) -> Result<Option<Vec<u8>>, String> {
    let Some(rec) = ring
        .peek(&lane.ctl, &lane.buf, &lane.ctl.space)
        .map_err(|c| c.0)?
    else {
        return Ok(None);
    };
    let mut v = vec![0; rec.len];
    lane.buf.read(rec.offset, &mut v);
    ring.release(&lane.ctl, &lane.ctl.space, rec);
    Ok(Some(v))
}

/// Explores the interleavings of `f` with at most `preemptions` forced thread switches (bounds
/// chosen so the whole loom step stays within about a minute on two cores).
fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    b.check(f);
}

/// Variable-size records through a 64-byte ring: lengths 5, 20, 13 take 16, 32 and 24 bytes, so
/// the third one needs a pad — published with it or alone, depending on how far the consumer got.
/// Both sides block (the producer when the ring is full), so both wake-up paths are exercised.
#[test]
fn spsc_records_wrap_around_in_order_and_intact() {
    model(3, || {
        let shared = Arc::new((lane(), WaitCell::new()));
        let s = shared.clone();
        let producer = thread::spawn(move || {
            let (lane, consumer) = &*s;
            let mut ring = ProducerRing::new(CAP, 0, 0).unwrap();
            for (tag, len) in [(1u8, 5usize), (2, 20), (3, 13)] {
                send(&mut ring, lane, consumer, &payload(tag, len));
            }
        });
        let (lane, consumer) = &*shared;
        let mut ring = ConsumerRing::new(CAP, 0).unwrap();
        for (tag, len) in [(1u8, 5usize), (2, 20), (3, 13)] {
            let got = block_on(consumer, || take(&mut ring, lane))
                .unwrap()
                .expect("no deadline");
            assert_eq!(got, payload(tag, len));
        }
        producer.join().unwrap();
        assert_eq!(take(&mut ring, lane), Ok(None));
    });
}

/// Two producers on two lanes and one consumer scanning both (round-robin, as the consumer does):
/// each producer's messages arrive in order, none is lost or duplicated, and the shared consumer
/// cell never loses a wake-up from either producer.
#[test]
fn two_producers_two_lanes_keep_per_producer_order() {
    model(2, || {
        let shared = Arc::new(([lane(), lane()], WaitCell::new()));
        let mut producers = Vec::new();
        for p in 0..2u8 {
            let s = shared.clone();
            producers.push(thread::spawn(move || {
                let (lanes, consumer) = &*s;
                let mut ring = ProducerRing::new(CAP, 0, 0).unwrap();
                for seq in 0..2u8 {
                    send(&mut ring, &lanes[p as usize], consumer, &[p, seq, 7]);
                }
            }));
        }
        let (lanes, consumer) = &*shared;
        let mut rings = [
            ConsumerRing::new(CAP, 0).unwrap(),
            ConsumerRing::new(CAP, 0).unwrap(),
        ];
        let mut next = [0u8; 2];
        let mut start = 0;
        for _ in 0..4 {
            let got = block_on(consumer, || {
                for k in 0..2 {
                    let i = (start + k) % 2;
                    if let Some(m) = take(&mut rings[i], &lanes[i])? {
                        start = i + 1;
                        return Ok::<_, String>(Some(m));
                    }
                }
                Ok(None)
            })
            .unwrap()
            .expect("no deadline");
            let p = got[0] as usize;
            assert_eq!(got, [got[0], next[p], 7], "producer {p} out of order");
            next[p] += 1;
        }
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(next, [2, 2]);
    });
}

/// A producer that commits one record, then reserves and writes a second and stops ("dies")
/// before committing: the consumer sees the first record only, and once it learns of the death
/// (the kernel dropping the liveness lock, modelled by a flag) the lane is drained and can be
/// freed — the uncommitted bytes are never read.
#[test]
fn reservation_without_commit_is_never_seen() {
    model(3, || {
        let shared = Arc::new((lane(), WaitCell::new(), AtomicBool::new(true)));
        let s = shared.clone();
        let producer = thread::spawn(move || {
            let (lane, consumer, alive) = &*s;
            let mut ring = ProducerRing::new(CAP, 0, 0).unwrap();
            send(&mut ring, lane, consumer, &payload(1, 9));
            let r = ring
                .try_reserve(&lane.ctl, &lane.buf, consumer, 12)
                .unwrap()
                .expect("room for the second record");
            lane.buf.write(r.payload_offset(CAP), &payload(2, 12));
            // Dies here: no commit. Release: models the kernel's lock release after exit.
            alive.store(false, Ordering::Release);
        });
        let (lane, _consumer, alive) = &*shared;
        let mut ring = ConsumerRing::new(CAP, 0).unwrap();
        let mut got = Vec::new();
        loop {
            // Liveness first, then the lane: a producer seen dead has published all it ever will.
            // Acquire: pairs with the Release above.
            let dead = !alive.load(Ordering::Acquire);
            match take(&mut ring, lane).unwrap() {
                Some(m) => got.push(m),
                None if dead => break,
                None => thread::yield_now(),
            }
        }
        assert_eq!(got, vec![payload(1, 9)]);
        producer.join().unwrap();
    });
}

/// The smallest sleep/wake race, checked exhaustively (no preemption bound): a consumer that goes
/// to sleep on an empty lane is always woken by the one message published concurrently.
#[test]
fn sleeping_consumer_is_woken_by_a_concurrent_send() {
    loom::model(|| {
        let shared = Arc::new((lane(), WaitCell::new()));
        let s = shared.clone();
        let producer = thread::spawn(move || {
            let (lane, consumer) = &*s;
            let mut ring = ProducerRing::new(CAP, 0, 0).unwrap();
            send(&mut ring, lane, consumer, b"wake");
        });
        let (lane, consumer) = &*shared;
        let mut ring = ConsumerRing::new(CAP, 0).unwrap();
        let got = block_on(consumer, || take(&mut ring, lane))
            .unwrap()
            .expect("no deadline");
        assert_eq!(got, b"wake");
        producer.join().unwrap();
    });
}

/// Header and payload share the ring's words: a lap-0 payload made of words that would each pass
/// for a record header of lap 1 at its own position, then lap-1 records whose header places fall
/// on those words. The consumer must receive exactly what was sent — a stale payload word is
/// never taken for a header (the producer clears the next header's place before publishing).
#[test]
fn stale_payload_words_are_never_read_as_headers() {
    /// The header word of an 8-byte record at position `pos`.
    fn forged(pos: u64) -> [u8; 8] {
        (8u64 | u64::from(super::ring::stamp(pos)) << 32).to_le_bytes()
    }
    model(2, || {
        let shared = Arc::new((lane(), WaitCell::new()));
        // Lap 0: a 48-byte payload at 8..56 (record 0..56), forging lap-1 headers (positions
        // 64 + 8..56), then an empty record at 56..64. Lap 1: 16 bytes (64..88), empty (88..96),
        // 8 bytes (96..112): each next header's place is a forged word.
        let big: Vec<u8> = (1..7).flat_map(|i| forged(64 + 8 * i)).collect();
        let msgs: Vec<Vec<u8>> = vec![big, vec![], payload(1, 16), vec![], payload(2, 8)];
        let s = shared.clone();
        let sent = msgs.clone();
        let producer = thread::spawn(move || {
            let (lane, consumer) = &*s;
            let mut ring = ProducerRing::new(CAP, 0, 0).unwrap();
            for m in &sent {
                send(&mut ring, lane, consumer, m);
            }
        });
        let (lane, consumer) = &*shared;
        let mut ring = ConsumerRing::new(CAP, 0).unwrap();
        for m in &msgs {
            let got = block_on(consumer, || take(&mut ring, lane))
                .unwrap()
                .expect("no deadline");
            assert_eq!(&got, m);
        }
        producer.join().unwrap();
        assert_eq!(take(&mut ring, lane), Ok(None), "a phantom record");
    });
}

/// A reservation that wraps (it needs a pad before the ring end) is dropped without commit, then
/// the producer goes on: nothing of the dropped one is ever seen (neither its pad nor its record)
/// and every later message arrives, in order, whatever the consumer's progress.
#[test]
fn dropped_wrapping_reservation_is_never_seen() {
    model(2, || {
        let shared = Arc::new((lane(), WaitCell::new()));
        let s = shared.clone();
        let producer = thread::spawn(move || {
            let (lane, consumer) = &*s;
            let mut ring = ProducerRing::new(CAP, 0, 0).unwrap();
            // 40 bytes (0..48): 16 bytes left before the end.
            send(&mut ring, lane, consumer, &payload(1, 40));
            // 24 bytes (32 with the header) do not fit in 16: pad + record, when there is room.
            let r = block_on(&lane.ctl.space, || {
                ring.try_reserve(&lane.ctl, &lane.buf, consumer, 24)
                    .map_err(|c| c.0)
            })
            .unwrap()
            .expect("no deadline");
            lane.buf.write(r.payload_offset(CAP), &payload(9, 24));
            let _never_committed = r;
            send(&mut ring, lane, consumer, &payload(2, 8));
            send(&mut ring, lane, consumer, &payload(3, 24));
        });
        let (lane, consumer) = &*shared;
        let mut ring = ConsumerRing::new(CAP, 0).unwrap();
        for (tag, len) in [(1u8, 40usize), (2, 8), (3, 24)] {
            let got = block_on(consumer, || take(&mut ring, lane))
                .unwrap()
                .expect("no deadline");
            assert_eq!(got, payload(tag, len));
        }
        producer.join().unwrap();
        assert_eq!(take(&mut ring, lane), Ok(None));
    });
}

/// A consumer that sleeps on a doorbell (as `channel::tokio` does: arm, poll again, wait for a
/// ring, disarm) and a producer that sends three messages with the ordinary blocking code: no
/// ring is lost (a lost one deadlocks the model), and every message arrives intact and in order.
#[test]
fn a_doorbell_sleeper_loses_no_wake_up() {
    model(3, || {
        let shared = Arc::new((lane(), WaitCell::new()));
        let s = shared.clone();
        let producer = thread::spawn(move || {
            let (lane, consumer) = &*s;
            let mut ring = ProducerRing::new(CAP, 0, 0).unwrap();
            for (tag, len) in [(1u8, 5usize), (2, 20), (3, 13)] {
                send(&mut ring, lane, consumer, &payload(tag, len));
            }
        });
        let (lane, consumer) = &*shared;
        let mut ring = ConsumerRing::new(CAP, 0).unwrap();
        for (tag, len) in [(1u8, 5usize), (2, 20), (3, 13)] {
            let got = loop {
                if let Some(v) = take(&mut ring, lane).unwrap() {
                    break v;
                }
                let seen = consumer.rings();
                consumer.arm_bell(7);
                if let Some(v) = take(&mut ring, lane).unwrap() {
                    consumer.disarm();
                    break v;
                }
                consumer.bell_sleep(seen);
                consumer.disarm();
            };
            assert_eq!(got, payload(tag, len));
        }
        producer.join().unwrap();
    });
}
