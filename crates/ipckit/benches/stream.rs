//! What a one-way stream costs when every message's cache lines travel between two CPUs: a
//! producer thread sends as fast as it can, a consumer thread receives, both busy-polling, pinned
//! to two CPUs when the machine has them.
//!
//! `per_message` measures software alone (one thread); `ipckit bench` measures whole transports
//! between processes, with checked payloads, against a pipe. This one sits between: the channel's
//! ring against [rtrb](https://docs.rs/rtrb), a well-kept in-process SPSC ring moving the same
//! bytes (`push_entire_slice` in, `read_chunk` out into a reused `Vec`), with no payload checks,
//! so that the channel's stream can be read against what a plain ring achieves on the same
//! machine in the same run. A 64-byte message takes at least one cache line from the producer's
//! CPU to the consumer's and back each lap, for either ring.
//!
//! `cargo bench -p ipckit --bench stream -- --warm-up-time 1 --measurement-time 3`
//!
//! Compare ratios within a run: on a shared VM, absolute numbers move between runs minutes apart.

use std::hint::spin_loop;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipckit::channel::{Options, Wait};

mod common;

const SIZES: [usize; 2] = [64, 1024];
/// Ring bytes: the channel's default lane capacity, for both rings.
const RING: usize = 64 * 1024;

fn stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream, two threads");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let msg = vec![0x5a_u8; size];

        group.bench_with_input(BenchmarkId::new("rtrb", size), &size, |b, &size| {
            b.iter_custom(|iters| {
                let (mut tx, mut rx) = rtrb::RingBuffer::<u8>::new(RING);
                common::timed(
                    || {
                        for _ in 0..iters {
                            while tx.push_entire_slice(&msg).is_err() {
                                spin_loop();
                            }
                        }
                    },
                    move || {
                        let mut out = Vec::with_capacity(size);
                        for _ in 0..iters {
                            let chunk = loop {
                                match rx.read_chunk(size) {
                                    Ok(chunk) => break chunk,
                                    Err(_) => spin_loop(),
                                }
                            };
                            common::take_chunk(chunk, &mut out);
                        }
                    },
                )
            })
        });

        for (name, wait) in [("channel-spin", Wait::Spin), ("channel", Wait::Blocking)] {
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, &size| {
                b.iter_custom(|iters| {
                    let channel = Options::new()
                        .lane_capacity(RING)
                        .wait(wait)
                        .anonymous()
                        .expect("channel");
                    let mut tx = channel.producer().expect("producer");
                    let mut rx = channel.consumer().expect("consumer");
                    common::timed(
                        || {
                            for _ in 0..iters {
                                tx.send(&msg).expect("send");
                            }
                        },
                        move || {
                            let mut out = Vec::with_capacity(size);
                            for _ in 0..iters {
                                rx.recv_into(&mut out).expect("recv").expect("a message");
                                std::hint::black_box(&mut out);
                            }
                        },
                    )
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, stream);
criterion_main!(benches);
