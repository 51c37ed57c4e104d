//! What the benches share.

use std::thread;
use std::time::{Duration, Instant};

/// Replaces `out`'s contents with the bytes of an rtrb read chunk and gives their room back to
/// the writer: how the benches receive from rtrb, as the channel's `recv_into` receives.
#[inline]
#[allow(dead_code)] // `pingpong` has no rtrb.
pub fn take_chunk(chunk: rtrb::chunks::ReadChunk<'_, u8>, out: &mut Vec<u8>) {
    let (first, second) = chunk.as_slices();
    out.clear();
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    chunk.commit_all();
    std::hint::black_box(out);
}

/// Pins the calling thread to `cpu` if the machine has it (otherwise leaves it to the scheduler).
#[allow(dead_code)] // `per_message` runs in one thread.
pub fn pin(cpu: usize) {
    let online = thread::available_parallelism().map_or(1, |n| n.get());
    if online < 2 {
        return;
    }
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    // An affinity the process may not have (a cpuset) just leaves the thread unpinned.
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// Runs `consume` on a thread pinned to CPU 1 and `produce` on this one (pinned to CPU 0, its
/// affinity restored after), and returns the time from the first send to the last receive.
#[allow(dead_code)] // `per_message` runs in one thread.
pub fn timed<P, C>(produce: P, consume: C) -> Duration
where
    P: FnOnce(),
    C: FnOnce() + Send + 'static,
{
    let saved = rustix::thread::sched_getaffinity(None).ok();
    let consumer = thread::spawn(move || {
        pin(1);
        consume();
    });
    pin(0);
    let start = Instant::now();
    produce();
    consumer.join().expect("the consumer thread");
    let elapsed = start.elapsed();
    if let Some(saved) = saved {
        let _ = rustix::thread::sched_setaffinity(None, &saved);
    }
    elapsed
}
