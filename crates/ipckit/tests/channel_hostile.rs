//! The channel against hostile shared memory: random bytes written anywhere in a live segment
//! (header, lane table, rings), while a producer and a consumer keep working, produce `Ok` or
//! errors — never a panic, an out-of-bounds access or a hang.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use ipckit::channel::{Consumer, Options, Producer};
use ipckit::Error;

mod channel_support;
use channel_support::{channel_name, message, shm_path, Rng};

/// Offsets in a 2-lane, 4 KiB-per-lane channel: header page, lane table (2 × 384 bytes), then the
/// rings from 8 KiB. Most writes aim at these structures; the rest land anywhere.
fn target(rng: &mut Rng, size: u64) -> u64 {
    match rng.below(5) {
        0 => rng.below(512),                // identity and membership lines
        1 => 256 + rng.below(128),          // the consumer's wait cell
        2 => 4096 + rng.below(768),         // lane control blocks
        3 => 8192 + rng.below(size - 8192), // ring bytes and record headers
        _ => rng.below(size),
    }
}

fn garbage(rng: &mut Rng) -> Vec<u8> {
    let len = 1 + rng.below(8) as usize;
    match rng.below(4) {
        0 => vec![0xff; len],
        1 => vec![0; len],
        _ => (0..len).map(|_| rng.next() as u8).collect(),
    }
}

/// One round; returns how many operations reported corruption.
fn round(seed: u64) -> usize {
    let mut rng = Rng(seed);
    let (name, _guard) = channel_name("hostile");
    let opts = Options::new().lane_capacity(4096).max_producers(2).clone();
    let mut rx = opts.consumer(&name).unwrap();
    let mut tx = Producer::open(&name).unwrap();
    let mut tx2 = Producer::open(&name).unwrap();
    // Some traffic first, so indices sit mid-ring.
    for seq in 0..rng.below(40) {
        let _ = tx.try_send(&message(0, seq, 16 + rng.below(400) as usize));
        if rng.below(2) == 0 {
            let _ = rx.try_recv();
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    let size = file.metadata().unwrap().len();
    assert_eq!(size, 16384, "layout assumed by `target`");
    for _ in 0..1 + rng.below(6) {
        file.write_at(&garbage(&mut rng), target(&mut rng, size))
            .unwrap();
    }
    // Keep corrupting while both sides work.
    let stop = Arc::new(AtomicBool::new(false));
    let corrupter = {
        let stop = stop.clone();
        let mut rng = Rng(seed ^ 0xc0ffee);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                file.write_at(&garbage(&mut rng), target(&mut rng, size))
                    .unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let short = Duration::from_millis(3);
    let mut corrupt = 0;
    let mut seen = |r: Result<(), Error>| {
        if let Err(Error::Corrupt { .. }) = r {
            corrupt += 1;
        }
    };
    for seq in 0..30 {
        let m = message(0, seq, 16 + rng.below(1000) as usize);
        match rng.below(7) {
            0 => seen(tx.try_send(&m)),
            1 => seen(tx.send_timeout(&m, short)),
            2 => seen(rx.try_recv().map(drop)),
            3 => seen(rx.recv_timeout(short).map(drop)),
            4 => seen(rx.try_recv_ref().map(|slot| {
                if let Some(slot) = slot {
                    let bytes = slot.shared().to_vec();
                    std::hint::black_box(bytes.iter().map(|&b| u64::from(b)).sum::<u64>());
                }
            })),
            5 => seen(tx2.try_reserve(rng.below(4000) as usize).map(|slot| {
                slot.shared().fill(1).unwrap();
                slot.commit();
            })),
            _ => {
                let mut buf = Vec::new();
                seen(rx.recv_into_timeout(&mut buf, short).map(drop));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    corrupter.join().unwrap();
    // Newcomers validate the corrupted segment: they attach or get an error.
    seen(Producer::open(&name).map(drop));
    seen(Consumer::open(&name).map(drop));
    corrupt
}

#[test]
fn corrupted_live_segment_gives_ok_or_errors_never_a_panic_or_a_hang() {
    let (done_tx, done_rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let corrupt: usize = (1..=500u64)
            .map(|seed| round(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .sum();
        done_tx.send(corrupt).unwrap();
    });
    match done_rx.recv_timeout(Duration::from_secs(120)) {
        Ok(corrupt) => {
            worker.join().unwrap();
            // The writes did reach validation (not only payload bytes nobody checks).
            assert!(corrupt > 0, "no operation reported corruption");
            eprintln!("{corrupt} operations reported corruption");
        }
        // The worker panicked: re-raise its panic here.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = worker.join() {
                std::panic::resume_unwind(p)
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the channel hung on corrupted memory"),
    }
}

/// Offsets in the layout of a 2-lane, 4 KiB channel (see `channel/header.rs`): lane 0's tail is
/// the first field of the lane table, its ring starts at 8 KiB.
const LANE0_TAIL: u64 = 4096;
const RING0: u64 = 8192;

#[test]
fn impossible_record_length_is_corrupt_and_a_runaway_tail_changes_nothing() {
    let (name, _guard) = channel_name("corrupt");
    let opts = Options::new().lane_capacity(4096).max_producers(2).clone();
    let mut rx = opts.consumer(&name).unwrap();
    let mut tx = Producer::open(&name).unwrap();
    assert_eq!(tx.lane(), 0);
    let file = OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    // A published record whose header claims more than a lane holds.
    tx.send(b"hello").unwrap();
    file.write_at(&0xffff_0000u32.to_le_bytes(), RING0).unwrap();
    let e = rx.try_recv().unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("lane 0"), "{e}");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    // Repaired, the record is delivered (nothing was consumed on the error).
    file.write_at(&5u32.to_le_bytes(), RING0).unwrap();
    assert_eq!(rx.try_recv().unwrap().unwrap(), b"hello");
    // A tail more than one lap ahead of the consumer: the consumer goes by the stamped record
    // headers, not by the tail, so the lane stays empty and keeps working.
    file.write_at(&(1u64 << 40).to_le_bytes(), LANE0_TAIL)
        .unwrap();
    let e = rx.recv_timeout(Duration::from_millis(10)).unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    tx.send(b"again").unwrap();
    assert_eq!(rx.try_recv().unwrap().unwrap(), b"again");
}

/// The same forgeries once the lane is in use, when receives take the fast path (which accepts
/// only a header with the right stamp and a length that fits before the ring end, and otherwise
/// hands over to the full checks): still `Corrupt`, nothing consumed.
#[test]
fn forged_record_lengths_are_corrupt_on_the_fast_path_too() {
    let (name, _guard) = channel_name("corrupt-fast");
    let opts = Options::new().lane_capacity(4096).max_producers(2).clone();
    let mut rx = opts.consumer(&name).unwrap();
    let mut tx = Producer::open(&name).unwrap();
    assert_eq!(tx.lane(), 0);
    let file = OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    // One 8-byte message (a 16-byte record) puts the lane in use.
    tx.send(b"warm up!").unwrap();
    assert_eq!(rx.try_recv().unwrap().unwrap(), b"warm up!");
    tx.send(b"hello").unwrap();
    let header = RING0 + 16;
    // More than a lane holds; then a length within the lane that runs past the ring end.
    for forged in [0xffff_0000u32, 4096 - 16] {
        file.write_at(&forged.to_le_bytes(), header).unwrap();
        let e = rx.try_recv().unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{forged}: {e}");
        assert!(e.to_string().contains("lane 0"), "{e}");
    }
    file.write_at(&5u32.to_le_bytes(), header).unwrap();
    assert_eq!(rx.try_recv().unwrap().unwrap(), b"hello");
}
