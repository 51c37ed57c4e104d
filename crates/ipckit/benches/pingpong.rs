//! What part of a small message's one-way latency the hardware takes, and what part the channel:
//! a ping-pong between two threads pinned to two CPUs, all busy-polling, of
//! - **the floor**: one 8-byte word bounced (one side stores an odd number, the other answers with
//!   the next even one), as `ipckit bench` measures its floor between processes;
//! - **a bare record**: 64 payload bytes and an 8-byte header in a ring of records, the payload
//!   stored first and the header last (Release), the receiver polling the header and copying the
//!   payload out: the least a ring of 64-byte messages with headers does, two cache lines a
//!   message, without the channel's checks, lanes and wake-up protocol;
//! - **the channel**, busy-polling and blocking: `send` and `recv_into` of 64 bytes.
//!
//! One iteration is a round trip: the one-way latency is half the time shown. `ipckit bench`'s
//! latency pattern adds the payload's stamp and check and the transport's calls, and runs the two
//! sides as processes.
//!
//! `cargo bench -p ipckit --bench pingpong -- --warm-up-time 1 --measurement-time 3`
//!
//! Compare within a run: on a VM the floor itself moves between runs as the vCPUs move.

use std::hint::spin_loop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use ipckit::channel::{Options, Wait};

mod common;

/// The message size of the bare record and the channel.
const SIZE: usize = 64;
/// Ring bytes, for the bare record rings and the channel's lanes.
const RING: usize = 64 * 1024;

/// A ring of bare records in 8-byte words: `| stamp | payload: SIZE / 8 words |`, one writer,
/// one reader; record `i` is at `(i mod slots) * RECORD` and is there when its stamp is `i + 1`
/// (the ring's memory starts zeroed; a slot is reused a lap later with a larger stamp).
struct BareRing {
    words: Box<[AtomicU64]>,
}

/// Words per record.
const RECORD: usize = 1 + SIZE / 8;

impl BareRing {
    fn new() -> BareRing {
        BareRing {
            words: (0..RING / 8).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn at(&self, i: u64) -> usize {
        (i as usize % (self.words.len() / RECORD)) * RECORD
    }

    fn send(&self, i: u64, payload: &[u64; SIZE / 8]) {
        let at = self.at(i);
        for (k, w) in payload.iter().enumerate() {
            self.words[at + 1 + k].store(*w, Ordering::Relaxed);
        }
        // Release: the payload before the stamp, as the channel publishes a record.
        self.words[at].store(i + 1, Ordering::Release);
    }

    fn recv(&self, i: u64, out: &mut [u64; SIZE / 8]) {
        let at = self.at(i);
        // Acquire: pairs with `send`'s Release store.
        while self.words[at].load(Ordering::Acquire) != i + 1 {
            spin_loop();
        }
        for (k, w) in out.iter_mut().enumerate() {
            *w = self.words[at + 1 + k].load(Ordering::Relaxed);
        }
    }
}

fn pingpong(c: &mut Criterion) {
    let mut group = c.benchmark_group("ping-pong, two threads (a round trip)");

    group.bench_function("floor: one word", |b| {
        b.iter_custom(|iters| {
            let word = Arc::new(AtomicU64::new(0));
            let peer = Arc::clone(&word);
            common::timed(
                || {
                    for i in 0..iters {
                        // Release/Acquire: as the bench's floor (`ipckit-bench`'s baseline.rs).
                        word.store(2 * i + 1, Ordering::Release);
                        while word.load(Ordering::Acquire) != 2 * i + 2 {
                            spin_loop();
                        }
                    }
                },
                move || {
                    for i in 0..iters {
                        while peer.load(Ordering::Acquire) != 2 * i + 1 {
                            spin_loop();
                        }
                        peer.store(2 * i + 2, Ordering::Release);
                    }
                },
            )
        })
    });

    group.bench_function("bare record: 64 B and a header", |b| {
        b.iter_custom(|iters| {
            let (there, back) = (Arc::new(BareRing::new()), Arc::new(BareRing::new()));
            let (peer_in, peer_out) = (Arc::clone(&there), Arc::clone(&back));
            common::timed(
                || {
                    let mut msg = [0x5a5a_5a5a_5a5a_5a5a_u64; SIZE / 8];
                    for i in 0..iters {
                        there.send(i, &msg);
                        back.recv(i, &mut msg);
                    }
                    std::hint::black_box(msg);
                },
                move || {
                    let mut msg = [0; SIZE / 8];
                    for i in 0..iters {
                        peer_in.recv(i, &mut msg);
                        peer_out.send(i, &msg);
                    }
                },
            )
        })
    });

    for (name, wait) in [
        ("channel-spin: 64 B", Wait::Spin),
        ("channel: 64 B", Wait::Blocking),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let open = || {
                    Options::new()
                        .lane_capacity(RING)
                        .wait(wait)
                        .anonymous()
                        .expect("channel")
                };
                let (there, back) = (open(), open());
                let (mut tx, mut rx) = (
                    there.producer().expect("producer"),
                    back.consumer().expect("consumer"),
                );
                let (mut peer_rx, mut peer_tx) = (
                    there.consumer().expect("consumer"),
                    back.producer().expect("producer"),
                );
                common::timed(
                    || {
                        let msg = vec![0x5a_u8; SIZE];
                        let mut out = Vec::with_capacity(SIZE);
                        for _ in 0..iters {
                            tx.send(&msg).expect("send");
                            rx.recv_into(&mut out).expect("recv").expect("a message");
                        }
                    },
                    move || {
                        let mut out = Vec::with_capacity(SIZE);
                        for _ in 0..iters {
                            peer_rx
                                .recv_into(&mut out)
                                .expect("recv")
                                .expect("a message");
                            peer_tx.send(&out).expect("send");
                        }
                    },
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pingpong);
criterion_main!(benches);
