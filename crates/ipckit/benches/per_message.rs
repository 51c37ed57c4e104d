//! What one message costs in software: a send and a receive in the same thread, so no second
//! CPU, no cache line travelling between cores and no wake-up is in the number — only the code
//! (and, for the pipe, its two system calls). Read each channel figure against the pipe's in the
//! same group and run: the ratio is what the channel saves per message before the hardware's
//! share, which `ipckit bench` (two processes) adds, and which its `floor` line shows.
//!
//! `cargo bench -p ipckit --bench per_message`

use std::io::{Read, Write};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipckit::channel::Options;

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

        // The channel, copying in and out (as `Transport` and `ipckit send/recv` do).
        let channel = Options::new().anonymous().expect("channel");
        let mut tx = channel.producer().expect("producer");
        let mut rx = channel.consumer().expect("consumer");
        let mut out = Vec::with_capacity(size);
        group.bench_with_input(BenchmarkId::new("channel", size), &size, |b, _| {
            b.iter(|| {
                tx.send(&msg).expect("send");
                rx.try_recv_into(&mut out)
                    .expect("recv")
                    .expect("a message");
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
