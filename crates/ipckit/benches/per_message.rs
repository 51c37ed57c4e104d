//! What one message costs in software: a send and a receive in the same thread, so no second
//! CPU, no cache line travelling between cores and no wake-up is in the number — only the code
//! (and, for the pipe, its two system calls). `ipckit bench` (two processes) adds the hardware's
//! share, which its `floor` line shows.
//!
//! The in-run reference is [rtrb](https://docs.rs/rtrb), a well-kept in-process SPSC ring: it
//! moves the same bytes (`push_entire_slice` in, `read_chunk` out into a reused `Vec`, as the
//! channel's `send` + `try_recv_into` do), with none of the channel's duties (shared memory that
//! a hostile peer may write, framing, peer death, wake-ups). Read each channel figure as a ratio
//! to rtrb's in the same group and run — numbers from different runs do not compare on a shared
//! VM. The goal (issue #14): the channel at most 3× rtrb at 64 B and at most 2× at 1 KiB.
//!
//! `cargo bench -p ipckit --bench per_message -- --warm-up-time 1 --measurement-time 3`
//!
//! To compare two builds of the channel, keep each build's bench binary
//! (`target/release/deps/per_message-*`) and run them alternately, A B A B, each with
//! `--bench --warm-up-time 1 --measurement-time 3`: compare their ratios to rtrb, not their
//! times.

use std::io::{Read, Write};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipckit::channel::Options;

mod common;

const SIZES: [usize; 3] = [64, 1024, 8192];

fn per_message(c: &mut Criterion) {
    let mut group = c.benchmark_group("send+recv, one thread");
    for size in SIZES {
        let msg = vec![0x5a_u8; size];
        group.throughput(Throughput::Bytes(size as u64));

        // The baseline: write(2) then read(2) on a pipe.
        let (mut reader, mut writer) = ipckit::pipe::pipe().expect("pipe");
        let mut buf = vec![0u8; size];
        group.bench_with_input(BenchmarkId::new("pipe", size), &size, |b, _| {
            b.iter(|| {
                writer.write_all(&msg).expect("write");
                reader.read_exact(&mut buf).expect("read");
            })
        });

        // The reference: rtrb, a byte ring in process memory, as large as a channel lane by
        // default. A message is copied in whole and read out whole into a reused `Vec`; rtrb
        // carries no length (the reader knows it), the channel carries an 8-byte header.
        let (mut ring_tx, mut ring_rx) = rtrb::RingBuffer::<u8>::new(64 * 1024);
        let mut out = Vec::with_capacity(size);
        group.bench_with_input(BenchmarkId::new("rtrb", size), &size, |b, _| {
            b.iter(|| {
                ring_tx.push_entire_slice(&msg).expect("room");
                let chunk = ring_rx.read_chunk(size).expect("a message");
                common::take_chunk(chunk, &mut out);
            })
        });

        // The channel, copying in and out (as `Transport` and `ipckit send/recv` do).
        let channel = Options::new().anonymous().expect("channel");
        let mut tx = channel.producer().expect("producer");
        let mut rx = channel.consumer().expect("consumer");
        group.bench_with_input(BenchmarkId::new("channel", size), &size, |b, _| {
            b.iter(|| {
                tx.send(&msg).expect("send");
                rx.try_recv_into(&mut out)
                    .expect("recv")
                    .expect("a message");
                std::hint::black_box(&mut out);
            })
        });

        // The channel without copies: written in place, read in place.
        group.bench_with_input(
            BenchmarkId::new("channel zero-copy", size),
            &size,
            |b, _| {
                b.iter(|| {
                    let slot = tx.try_reserve(size).expect("reserve");
                    let bytes = slot.shared();
                    bytes.write_at(0, &[1]).expect("write");
                    bytes.write_at(size - 1, &[2]).expect("write");
                    slot.commit();
                    let got = rx.try_recv_ref().expect("recv").expect("a message");
                    assert_eq!(got.len(), size);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, per_message);
criterion_main!(benches);
