//! loom models of every atomic protocol in `sync`: the classic locks (and Dekker's and
//! Peterson's without their fences, which must fail), the futex primitives with their futex calls
//! replaced by yields, and the create-once protocol of `init_in`.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p ipckit --release --lib sync`.
//!
//! Mutual exclusion is checked two ways: an occupancy counter that must never exceed 1, and a loom
//! `UnsafeCell` written inside the critical section, which loom reports if two writes are not
//! ordered by happens-before (so the locks must also order the data, not just exclude).

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::place::{Claim, Header, READY};
use super::*;

/// A loom model with a preemption bound, so that the N-thread models stay small.
fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    // Spin loops of three participants take more than loom's default of 1000 branches.
    builder.max_branches = 20_000;
    builder.check(f);
}

/// Shared state of a mutual-exclusion model: the lock, an occupancy counter and data.
struct Room<L> {
    lock: L,
    inside: AtomicU32,
    data: UnsafeCell<u32>,
}

impl<L> Room<L> {
    fn new(lock: L) -> Arc<Room<L>> {
        Arc::new(Room {
            lock,
            inside: AtomicU32::new(0),
            data: UnsafeCell::new(0),
        })
    }

    /// The critical section: nobody else inside, and (with `data`) an unsynchronised increment.
    fn critical(&self, data: bool) {
        let before = self.inside.fetch_add(1, Ordering::Relaxed);
        assert_eq!(before, 0, "two participants in the critical section");
        if data {
            // SAFETY: the lock under test excludes other accesses; loom checks the cell and
            // fails the model on any unordered access.
            self.data.with_mut(|d| unsafe { *d += 1 });
        }
        self.inside.fetch_sub(1, Ordering::Relaxed);
    }

    fn total(&self) -> u32 {
        // SAFETY: called after every participant was joined; loom checks the ordering.
        self.data.with(|d| unsafe { *d })
    }
}

/// `n` threads each enter once through `enter`/`leave`; the data must count `n`.
fn exclusion<L: Send + Sync + 'static>(
    bound: usize,
    n: usize,
    make: fn() -> L,
    enter: fn(&L, usize),
    leave: fn(&L, usize),
) {
    exclusion_with(true, bound, n, make, enter, leave);
}

/// As [`exclusion`]; without `data` only the occupancy counter is checked, so that a failure is
/// reported as two participants inside rather than as loom's data-race report.
fn exclusion_with<L: Send + Sync + 'static>(
    data: bool,
    bound: usize,
    n: usize,
    make: fn() -> L,
    enter: fn(&L, usize),
    leave: fn(&L, usize),
) {
    model(bound, move || {
        let room = Room::new(make());
        let handles: Vec<_> = (1..n)
            .map(|me| {
                let room = room.clone();
                thread::spawn(move || {
                    enter(&room.lock, me);
                    room.critical(data);
                    leave(&room.lock, me);
                })
            })
            .collect();
        // Participant 0 is the model's main thread.
        enter(&room.lock, 0);
        room.critical(data);
        leave(&room.lock, 0);
        for h in handles {
            h.join().unwrap();
        }
        if data {
            assert_eq!(room.total(), n as u32);
        }
    });
}

fn locked<L: ParticipantLock>(lock: &L, me: usize) {
    std::mem::forget(lock.lock(me).unwrap());
}

fn unlock<L: ParticipantLock>(lock: &L, me: usize) {
    lock.release(me);
}

#[test]
fn sync_dekker_excludes() {
    exclusion(4, 2, Dekker::new, locked, unlock);
}

#[test]
fn sync_peterson_excludes() {
    exclusion(4, 2, Peterson::new, locked, unlock);
}

#[test]
#[should_panic(expected = "two participants in the critical section")]
fn sync_dekker_without_fences_lets_both_in() {
    exclusion_with(
        false,
        3,
        2,
        Dekker::new,
        |d, me| d.acquire_with::<false>(me),
        unlock,
    );
}

#[test]
#[should_panic(expected = "two participants in the critical section")]
fn sync_peterson_without_fences_lets_both_in() {
    exclusion_with(
        false,
        3,
        2,
        Peterson::new,
        |p, me| p.acquire_with::<false>(me),
        unlock,
    );
}

#[test]
fn sync_filter_excludes_2() {
    exclusion(4, 2, || FilterLock::new(2), locked, unlock);
}

#[test]
fn sync_filter_excludes_3() {
    exclusion(1, 3, || FilterLock::new(3), locked, unlock);
}

#[test]
fn sync_szymanski_excludes_2() {
    exclusion(4, 2, || Szymanski::new(2), locked, unlock);
}

#[test]
fn sync_szymanski_excludes_3() {
    exclusion(1, 3, || Szymanski::new(3), locked, unlock);
}

#[test]
fn sync_bakery_excludes_2() {
    exclusion(4, 2, || Bakery::new(2), locked, unlock);
}

#[test]
fn sync_bakery_excludes_3() {
    exclusion(1, 3, || Bakery::new(3), locked, unlock);
}

#[test]
fn sync_binary_semaphore_excludes() {
    exclusion(
        3,
        2,
        || Semaphore::new(1),
        |s, _| s.wait(),
        |s, _| s.post().unwrap(),
    );
}

#[test]
fn sync_auto_reset_event_excludes() {
    // An auto-reset event that starts set is a lock: each set lets exactly one waiter through.
    exclusion(
        3,
        2,
        || Event::new(EventMode::Auto, true),
        |e, _| e.wait(),
        |e, _| e.set(),
    );
}

#[test]
fn sync_semaphore_hands_over_every_post() {
    // Two posters, two takers on a semaphore starting at 0: both takers get through and the
    // value ends at 0, with what each poster wrote visible to a taker.
    model(3, || {
        let sem = Arc::new(Semaphore::new(0));
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let sem = sem.clone();
                thread::spawn(move || sem.wait())
            })
            .collect();
        sem.post().unwrap();
        sem.post().unwrap();
        for t in takers {
            t.join().unwrap();
        }
        assert_eq!(sem.value(), 0);
        assert!(!sem.try_wait());
    });
}

#[test]
fn sync_manual_event_releases_every_waiter_and_publishes() {
    model(3, || {
        let event = Arc::new(Event::new(EventMode::Manual, false));
        let data = Arc::new(UnsafeCell::new(0u32));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (event, data) = (event.clone(), data.clone());
                thread::spawn(move || {
                    event.wait();
                    // SAFETY: ordered after the write by the event (loom checks it).
                    assert_eq!(data.with(|d| unsafe { *d }), 7);
                })
            })
            .collect();
        // SAFETY: the waiters read only after the event is set (loom checks it).
        data.with_mut(|d| unsafe { *d = 7 });
        event.set();
        for w in waiters {
            w.join().unwrap();
        }
        assert!(event.is_set());
    });
}

#[test]
fn sync_barrier_orders_rounds() {
    // Three participants, two rounds; each writes its own slot before a round and reads all the
    // slots after it: loom reports a read that is not ordered after a write.
    model(2, || {
        let barrier = Arc::new(Barrier::new(3));
        let slots: Arc<[UnsafeCell<u32>; 3]> =
            Arc::new(std::array::from_fn(|_| UnsafeCell::new(0)));
        let leaders = Arc::new(AtomicU32::new(0));
        let run = move |me: usize,
                        barrier: Arc<Barrier>,
                        slots: Arc<[UnsafeCell<u32>; 3]>,
                        leaders: Arc<AtomicU32>| {
            for round in 1..=2u32 {
                // SAFETY: our own slot; readers are ordered after it by the barrier (loom checks).
                slots[me].with_mut(|s| unsafe { *s = round });
                if barrier.wait() {
                    leaders.fetch_add(1, Ordering::Relaxed);
                }
                for slot in slots.iter() {
                    // SAFETY: between two barriers no slot is written (loom checks it).
                    assert_eq!(slot.with(|s| unsafe { *s }), round);
                }
                if barrier.wait() {
                    leaders.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        let handles: Vec<_> = (1..3)
            .map(|me| {
                let (b, s, l) = (barrier.clone(), slots.clone(), leaders.clone());
                thread::spawn(move || run(me, b, s, l))
            })
            .collect();
        run(0, barrier.clone(), slots.clone(), leaders.clone());
        for h in handles {
            h.join().unwrap();
        }
        // One leader per wait: 2 rounds × 2 waits.
        assert_eq!(leaders.load(Ordering::Relaxed), 4);
    });
}

#[test]
fn sync_barrier_arrivals_taken_back_leave_it_consistent() {
    // Two participants each arrive and, if not the last, give up at once (a `wait_timeout` whose
    // time ran out), racing the other's arrival on the barrier's word. Either the round completed
    // (one leader, one that passed, each seeing the other's write) or both took their arrivals
    // back; either way the word holds no arrival and counts the completed rounds.
    model(3, || {
        let barrier = Arc::new(Barrier::new(2));
        let slots: Arc<[UnsafeCell<u32>; 2]> =
            Arc::new(std::array::from_fn(|_| UnsafeCell::new(0)));
        let run = move |me: usize, barrier: Arc<Barrier>, slots: Arc<[UnsafeCell<u32>; 2]>| {
            // SAFETY: our own slot; the other reads it only after passing the barrier with us.
            slots[me].with_mut(|s| unsafe { *s = 1 });
            let passed = barrier.arrive_and_give_up();
            if passed.is_some() {
                // SAFETY: both arrived in this round: the other's write happens before this.
                assert_eq!(slots[1 - me].with(|s| unsafe { *s }), 1);
            }
            passed
        };
        let other = {
            let (b, s) = (barrier.clone(), slots.clone());
            thread::spawn(move || run(1, b, s))
        };
        let a = run(0, barrier.clone(), slots.clone());
        let b = other.join().unwrap();
        let rounds = match (a, b) {
            (Some(a), Some(b)) => {
                assert!(a != b, "one leader in a completed round");
                1
            }
            (None, None) => 0,
            other => panic!("one passed and one took its arrival back: {other:?}"),
        };
        assert_eq!(
            barrier.word(),
            rounds << 16,
            "no arrival left, {rounds} rounds"
        );
    });
}

#[test]
fn sync_init_once_picks_one_initialiser_and_publishes_its_work() {
    model(3, || {
        let header = Arc::new(Header::new());
        let body = Arc::new(UnsafeCell::new(0u32));
        let winners = Arc::new(AtomicU32::new(0));
        let handles: Vec<_> = (0..2)
            .map(|me| {
                let (header, body, winners) = (header.clone(), body.clone(), winners.clone());
                thread::spawn(move || {
                    if header.claim() == Claim::Won {
                        winners.fetch_add(1, Ordering::Relaxed);
                        // SAFETY: only the claim's winner writes, before it publishes.
                        body.with_mut(|b| unsafe { *b = 40 + me });
                        header.publish(*b"TEST", 1, 4);
                    }
                    assert_eq!(header.settled_state(), Some(READY));
                    header.validate(*b"TEST", 1, 4).unwrap();
                    // SAFETY: READY was seen, so the write happened before (loom checks it).
                    let seen = body.with(|b| unsafe { *b });
                    assert!(seen == 40 || seen == 41, "{seen}");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(winners.load(Ordering::Relaxed), 1);
    });
}
