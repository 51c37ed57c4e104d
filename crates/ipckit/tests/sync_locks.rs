//! The classic mutual-exclusion algorithms of ipckit::sync across real processes: with each lock,
//! N processes incrementing a shared counter by read–yield–write lose no update and are never two
//! inside at once; a participant index outside the lock is refused.

use std::process::Child;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use ipckit::sync::{Bakery, Dekker, FilterLock, ParticipantLock, Peterson, Regions, Szymanski};
use ipckit::sysv::shm::{Attachment, OwnedSegment, Segment};
use ipckit::Key;
use ipckit_testkit::{child_role, spawn_self};

const ITERS: u64 = 200;

/// TODO(sync): replaced by SharedRegion placement. The segment's bytes as a plain slice, for the
/// `sync` placement API that still takes `&mut [u8]`.
struct Bytes(Attachment);

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: TODO(sync): replaced by SharedRegion placement. Not a true promise: other
        // processes write these bytes; kept only until `sync` placement takes a region.
        unsafe { self.0.shared().as_bytes_unchecked() }
    }
}

impl std::ops::DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`.
        unsafe { self.0.shared().as_bytes_mut_unchecked() }.expect("a writable attachment")
    }
}

/// The shared board: the counter and the occupancy check, after the lock.
#[repr(C)]
struct Board {
    counter: AtomicU64,
    inside: AtomicU32,
    overlaps: AtomicU32,
}

fn board(rest: &mut [u8]) -> &Board {
    let bytes = Regions::new(rest).take::<Board>().unwrap();
    // SAFETY: Regions checked size and alignment; Board is atomics, valid for every bit pattern
    // (zero-filled in a new segment).
    unsafe { &*bytes.as_mut_ptr().cast::<Board>() }
}

/// `iters` increments as participant `me`: read, yield, write back, with the occupancy check.
fn work(lock: &impl ParticipantLock, b: &Board, me: usize, iters: u64) {
    for _ in 0..iters {
        let _g = lock.lock(me).unwrap();
        if b.inside.fetch_add(1, Ordering::SeqCst) != 0 {
            b.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        let v = b.counter.load(Ordering::Relaxed);
        std::thread::yield_now();
        b.counter.store(v + 1, Ordering::Relaxed);
        b.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs one lock type with `procs` processes: the parent initialises, children open and work.
fn contend<L: ParticipantLock>(
    test: &str,
    procs: usize,
    init: fn(&mut [u8], usize) -> ipckit::Result<&L>,
    open: fn(&mut [u8]) -> ipckit::Result<&L>,
) {
    if let Some(role) = child_role() {
        let (id, me) = role.split_once(':').unwrap();
        let mut map = Bytes(Segment::from_id(id.parse().unwrap()).attach().unwrap());
        let (head, rest) = map.split_at_mut(2048);
        work(open(head).unwrap(), board(rest), me.parse().unwrap(), ITERS);
        return;
    }
    let seg: OwnedSegment = Segment::options()
        .size(4096)
        .exclusive(true)
        .open(Key::PRIVATE)
        .unwrap()
        .into_owned();
    let mut map = Bytes(seg.attach().unwrap());
    let (head, rest) = map.split_at_mut(2048);
    let lock = init(head, procs).unwrap();
    assert_eq!(lock.participants(), procs);
    let children: Vec<Child> = (0..procs)
        .map(|me| {
            spawn_self(test, &format!("{}:{me}", seg.id()))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let b = board(rest);
    assert_eq!(
        b.overlaps.load(Ordering::SeqCst),
        0,
        "two were inside at once"
    );
    assert_eq!(b.counter.load(Ordering::SeqCst), procs as u64 * ITERS);
    assert!(lock.lock(procs).is_err(), "index {procs} is refused");
}

#[test]
fn dekker_keeps_two_processes_apart() {
    contend::<Dekker>(
        "dekker_keeps_two_processes_apart",
        2,
        |r, _| Dekker::init_in(r),
        Dekker::open_in,
    );
}

#[test]
fn peterson_keeps_two_processes_apart() {
    contend::<Peterson>(
        "peterson_keeps_two_processes_apart",
        2,
        |r, _| Peterson::init_in(r),
        Peterson::open_in,
    );
}

#[test]
fn filter_lock_keeps_four_processes_apart() {
    contend(
        "filter_lock_keeps_four_processes_apart",
        4,
        FilterLock::init_in,
        FilterLock::open_in,
    );
}

#[test]
fn szymanski_keeps_four_processes_apart() {
    contend(
        "szymanski_keeps_four_processes_apart",
        4,
        Szymanski::init_in,
        Szymanski::open_in,
    );
}

#[test]
fn bakery_keeps_four_processes_apart() {
    contend(
        "bakery_keeps_four_processes_apart",
        4,
        Bakery::init_in,
        Bakery::open_in,
    );
}

#[test]
fn threads_of_one_process_can_share_a_lock_in_ordinary_memory() {
    let lock = Bakery::new(3);
    let b = Board {
        counter: AtomicU64::new(0),
        inside: AtomicU32::new(0),
        overlaps: AtomicU32::new(0),
    };
    std::thread::scope(|s| {
        for me in 0..3 {
            let (lock, b) = (&lock, &b);
            s.spawn(move || work(lock, b, me, ITERS));
        }
    });
    assert_eq!(b.overlaps.load(Ordering::SeqCst), 0);
    assert_eq!(b.counter.load(Ordering::SeqCst), 3 * ITERS);
}
