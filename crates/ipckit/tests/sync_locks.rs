//! The classic mutual-exclusion algorithms of ipckit::sync across real processes: with each lock,
//! N processes incrementing a shared counter by read–yield–write lose no update and are never two
//! inside at once; a participant index outside the lock is refused.

use std::process::Child;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use ipckit::shared::SharedRegion;
use ipckit::sync::{Bakery, Dekker, FilterLock, ParticipantLock, Peterson, Szymanski};
use ipckit::sysv::shm::{Attachment, OwnedSegment, Segment};
use ipckit::Key;
use ipckit_testkit::{child_role, spawn_self};

const ITERS: u64 = 200;

ipckit::atomic_struct! {
    /// The shared board: the counter and the occupancy check, after the lock.
    struct Board {
        counter: AtomicU64,
        inside: AtomicU32,
        overlaps: AtomicU32,
    }
}

/// The lock's region (the first 2048 bytes) and the board's (the rest) of an attachment.
fn cut(map: Attachment) -> (SharedRegion, SharedRegion) {
    let mut rest = SharedRegion::new(Arc::new(map)).unwrap();
    (rest.split_to(2048).unwrap(), rest)
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
    init: fn(SharedRegion, usize) -> ipckit::Result<L>,
    open: fn(SharedRegion) -> ipckit::Result<L>,
) {
    if let Some(role) = child_role() {
        let (id, me) = role.split_once(':').unwrap();
        let (head, rest) = cut(Segment::from_id(id.parse().unwrap()).attach().unwrap());
        let board = rest.bytes().view::<Board>(0).unwrap();
        work(&open(head).unwrap(), board, me.parse().unwrap(), ITERS);
        return;
    }
    let seg: OwnedSegment = Segment::options()
        .size(4096)
        .exclusive(true)
        .open(Key::PRIVATE)
        .unwrap()
        .into_owned();
    let (head, rest) = cut(seg.attach().unwrap());
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
    let b = rest.bytes().view::<Board>(0).unwrap();
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
