//! ipckit::sync's futex primitives and the placement protocol across real processes: semaphores
//! count, events release one or all, barriers hold rounds together; `init_in` raced by several
//! processes initialises once and everyone gets a working primitive; `open_in` refuses memory that
//! does not hold the primitive asked for.

use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipckit::shared::{HeapMemory, SharedRegion};
use ipckit::sync::{Barrier, Dekker, Event, EventMode, Mutex, Semaphore, MAX_PARTICIPANTS};
use ipckit::sysv::shm::{Attachment, OwnedSegment, Segment};
use ipckit::Key;
use ipckit_testkit::{child_role, spawn_self};

fn segment() -> (OwnedSegment, SharedRegion) {
    let seg = Segment::options()
        .size(4096)
        .exclusive(true)
        .open(Key::PRIVATE)
        .expect("create segment")
        .into_owned();
    let map = seg.attach().expect("attach");
    (seg, region(map))
}

fn region(map: Attachment) -> SharedRegion {
    SharedRegion::new(Arc::new(map)).unwrap()
}

/// `(what, index)` from a child's role `what:shmid:index`, and the attached segment.
fn child_segment(role: &str) -> (String, usize, SharedRegion) {
    let parts: Vec<&str> = role.split(':').collect();
    let map = Segment::from_id(parts[1].parse().unwrap())
        .attach()
        .expect("child attach");
    (parts[0].to_string(), parts[2].parse().unwrap(), region(map))
}

/// The first 64 bytes of a region, and the rest.
fn split64(mut rest: SharedRegion) -> (SharedRegion, SharedRegion) {
    (rest.split_to(64).unwrap(), rest)
}

fn spawn(test: &str, what: &str, seg: &Segment, index: usize) -> Child {
    spawn_self(test, &format!("{what}:{}:{index}", seg.id()))
        .spawn()
        .expect("spawn child")
}

fn wait_all(children: Vec<Child>) {
    for mut c in children {
        let status = c.wait().expect("wait child");
        assert!(status.success(), "child failed: {status:?}");
    }
}

/// The region as 32-bit atomics shared with the children (`words(r)[offset / 4]`).
fn words(region: &SharedRegion) -> &[AtomicU32] {
    region
        .bytes()
        .view_slice::<AtomicU32>(0, region.len() / 4)
        .unwrap()
}

#[test]
fn semaphore_counts_posts_taken_by_other_processes() {
    const TEST: &str = "semaphore_counts_posts_taken_by_other_processes";
    const TAKERS: usize = 3;
    const EACH: usize = 20;
    if let Some(role) = child_role() {
        let (_, _, map) = child_segment(&role);
        let sem = Semaphore::open_in(map).unwrap();
        for _ in 0..EACH {
            sem.wait();
        }
        return;
    }
    let (seg, map) = segment();
    let sem = Semaphore::init_in(map, 0).unwrap();
    assert!(!sem.try_wait());
    assert!(!sem.wait_timeout(Duration::from_millis(10)));
    let takers: Vec<_> = (0..TAKERS).map(|i| spawn(TEST, "take", &seg, i)).collect();
    for _ in 0..TAKERS * EACH + 2 {
        sem.post().unwrap();
    }
    wait_all(takers);
    assert_eq!(sem.value(), 2);
    assert!(sem.try_wait() && sem.wait_timeout(Duration::from_secs(5)));
    assert_eq!(sem.value(), 0);
}

/// The event tests: the parent places an event of `mode` (clear) and a counter in a segment and
/// spawns 3 children that each wait for the event and then add 1 to the counter; `parent` then
/// drives the event and waits for the children.
fn event_with_waiting_children(
    test: &str,
    mode: EventMode,
    parent: impl FnOnce(&Event, &AtomicU32, Vec<Child>),
) {
    if let Some(role) = child_role() {
        let (_, _, map) = child_segment(&role);
        let (head, rest) = split64(map);
        let event = Event::open_in(head).unwrap();
        let passed = &words(&rest)[0];
        event.wait();
        passed.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let (seg, map) = segment();
    let (head, rest) = split64(map);
    let event = Event::init_in(head, mode, false).unwrap();
    let passed = &words(&rest)[0];
    let children: Vec<_> = (0..3).map(|i| spawn(test, "wait", &seg, i)).collect();
    parent(&event, passed, children);
}

#[test]
fn manual_event_releases_every_waiting_process() {
    const TEST: &str = "manual_event_releases_every_waiting_process";
    event_with_waiting_children(TEST, EventMode::Manual, |event, passed, children| {
        event.set();
        wait_all(children);
        assert_eq!(passed.load(Ordering::SeqCst), 3);
        assert!(event.is_set(), "a manual event stays set");
        event.reset();
        assert!(!event.wait_timeout(Duration::from_millis(10)));
    });
}

#[test]
fn auto_event_releases_one_waiting_process_per_set() {
    const TEST: &str = "auto_event_releases_one_waiting_process_per_set";
    event_with_waiting_children(TEST, EventMode::Auto, |event, passed, children| {
        for n in 1..=3 {
            event.set();
            // Exactly one more passes per set; the event is clear again once it has.
            while passed.load(Ordering::SeqCst) < n {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(passed.load(Ordering::SeqCst), n);
        }
        wait_all(children);
        assert!(!event.is_set(), "the last waiter cleared it");
        assert!(!event.try_wait());
    });
}

#[test]
fn barrier_keeps_processes_in_step_round_after_round() {
    const TEST: &str = "barrier_keeps_processes_in_step_round_after_round";
    const PROCS: usize = 4;
    const ROUNDS: u32 = 20;
    /// Each participant writes its round into its slot, meets the others, checks that every slot
    /// holds this round, meets again. Counts the rounds it was the leader in.
    fn run(map: SharedRegion, me: usize) -> u32 {
        let (head, rest) = split64(map);
        let barrier = Barrier::open_in(head).unwrap();
        let rest = &rest;
        let mut leads = 0;
        for round in 1..=ROUNDS {
            words(rest)[me].store(round, Ordering::Relaxed);
            leads += u32::from(barrier.wait());
            for k in 0..PROCS {
                assert_eq!(words(rest)[k].load(Ordering::Relaxed), round);
            }
            leads += u32::from(barrier.wait());
        }
        words(rest)[16 + me].store(leads, Ordering::SeqCst);
        leads
    }
    if let Some(role) = child_role() {
        let (_, me, map) = child_segment(&role);
        run(map, me);
        return;
    }
    let (seg, map) = segment();
    let (head, rest) = split64(map.clone());
    Barrier::init_in(head, PROCS as u32).unwrap();
    let children: Vec<_> = (1..PROCS).map(|i| spawn(TEST, "meet", &seg, i)).collect();
    run(map, 0);
    wait_all(children);
    let leads: u32 = (0..PROCS)
        .map(|k| words(&rest)[16 + k].load(Ordering::SeqCst))
        .sum();
    assert_eq!(leads, 2 * ROUNDS, "one leader per wait");
}

#[test]
fn barrier_wait_timeout_gives_up_on_a_missing_participant_and_takes_its_arrival_back() {
    const TEST: &str =
        "barrier_wait_timeout_gives_up_on_a_missing_participant_and_takes_its_arrival_back";
    if let Some(role) = child_role() {
        let (_, me, map) = child_segment(&role);
        let (head, rest) = split64(map);
        let leader = Barrier::open_in(head).unwrap().wait();
        words(&rest)[me].store(1 + u32::from(leader), Ordering::SeqCst);
        return;
    }
    let (seg, map) = segment();
    let (head, rest) = split64(map);
    let barrier = Barrier::init_in(head, 2).unwrap();
    // The other participant is not there (as if it died before arriving): we give up, twice. Had
    // the first arrival stayed counted, the second would complete the round at once.
    for _ in 0..2 {
        let started = std::time::Instant::now();
        assert_eq!(barrier.wait_timeout(Duration::from_millis(100)), None);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
    // It comes: one round of two, one leader.
    let child = spawn(TEST, "meet", &seg, 1);
    let leader = barrier
        .wait_timeout(Duration::from_secs(60))
        .expect("the round completes once the other participant arrives");
    wait_all(vec![child]);
    let child_leader = words(&rest)[1].load(Ordering::SeqCst) == 2;
    assert!(leader != child_leader, "one leader per round");
}

#[test]
fn racing_init_in_initialises_once_and_everyone_gets_the_same_working_mutex() {
    const TEST: &str = "racing_init_in_initialises_once_and_everyone_gets_the_same_working_mutex";
    const PROCS: usize = 6;
    if let Some(role) = child_role() {
        let (_, me, map) = child_segment(&role);
        let (head, rest) = split64(map);
        let w = words(&head);
        let (go, seen) = (&w[0], &w[1 + me]);
        // Start together, then all race to initialise with their own value.
        while go.load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
        }
        let m = Mutex::<[u64; 2]>::init_in(rest, [me as u64 + 1, 0]).unwrap();
        let mut g = m.lock().unwrap();
        seen.store(g[0] as u32, Ordering::SeqCst);
        g[1] += 1;
        return;
    }
    let (seg, map) = segment();
    let children: Vec<_> = (0..PROCS).map(|i| spawn(TEST, "init", &seg, i)).collect();
    // Give the children time to attach and spin; correctness does not depend on it.
    std::thread::sleep(Duration::from_millis(50));
    words(&map)[0].store(1, Ordering::Release);
    wait_all(children);
    let (head, rest) = split64(map);
    let seen: Vec<u32> = (0..PROCS)
        .map(|k| words(&head)[1 + k].load(Ordering::SeqCst))
        .collect();
    let winner = seen[0];
    assert!((1..=PROCS as u32).contains(&winner), "{seen:?}");
    assert!(
        seen.iter().all(|&s| s == winner),
        "one initial value for all: {seen:?}"
    );
    let m = Mutex::<[u64; 2]>::open_in(rest).unwrap();
    assert_eq!(*m.lock().unwrap(), [u64::from(winner), PROCS as u64]);
}

fn heap(len: usize) -> SharedRegion {
    SharedRegion::new(Arc::new(HeapMemory::new(len))).unwrap()
}

#[test]
fn open_in_refuses_uninitialised_foreign_garbage_small_and_misaligned_regions() {
    let region = heap(4096);
    let bytes = region.bytes();

    // Fresh memory: nothing initialised yet.
    let e = Semaphore::open_in(region.clone()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");

    // Another primitive: the magic says so.
    Event::init_in(region.clone(), EventMode::Manual, false).unwrap();
    let e = Semaphore::open_in(region.clone()).unwrap_err();
    assert!(matches!(e, ipckit::Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("magic"), "{e}");
    let e = Mutex::<u64>::init_in(region.clone(), 0).unwrap_err();
    assert!(matches!(e, ipckit::Error::Corrupt { .. }), "{e}");

    // A Mutex of another element type: the size differs.
    bytes.fill(0).unwrap();
    Mutex::<u64>::init_in(region.clone(), 0).unwrap();
    let e = Mutex::<[u64; 8]>::open_in(region.clone()).unwrap_err();
    assert!(e.to_string().contains("size"), "{e}");

    // Garbage everywhere, state word included.
    let garbage: Vec<u8> = (0..region.len()).map(|i| (i * 37 + 11) as u8).collect();
    bytes.write_at(0, &garbage).unwrap();
    let e = Semaphore::open_in(region.clone()).unwrap_err();
    assert!(matches!(e, ipckit::Error::Corrupt { .. }), "{e}");
    let e = Semaphore::init_in(region.clone(), 1).unwrap_err();
    assert!(matches!(e, ipckit::Error::Corrupt { .. }), "{e}");

    // Too small, misaligned.
    bytes.fill(0).unwrap();
    let e = Dekker::init_in(region.slice(..8).unwrap()).unwrap_err();
    assert!(e.to_string().contains("bytes"), "{e}");
    let e = Dekker::init_in(region.slice(1..).unwrap()).unwrap_err();
    assert!(e.to_string().contains("alignment"), "{e}");

    // A valid primitive whose body was scribbled over.
    let b = Barrier::init_in(region.clone(), 3).unwrap();
    assert_eq!(b.participants(), 3);
    bytes.write(16, &0u32).unwrap();
    let e = Barrier::open_in(region.clone()).unwrap_err();
    assert!(matches!(e, ipckit::Error::Corrupt { .. }), "{e}");
    // The handle made before keeps the count it validated: the barrier still works for one
    // round of 3 (it does not divide by, index with or trust the scribbled count).
    assert_eq!(b.participants(), 3);
}

#[test]
fn init_in_refuses_bad_arguments_before_touching_the_region() {
    let region = heap(4096);
    assert!(Barrier::init_in(region.clone(), 0).is_err());
    assert!(Barrier::init_in(region.clone(), Barrier::MAX_PARTICIPANTS + 1).is_err());
    assert!(ipckit::sync::FilterLock::init_in(region.clone(), MAX_PARTICIPANTS + 1).is_err());
    assert!(ipckit::sync::Bakery::init_in(region.clone(), 0).is_err());
    assert!(Semaphore::init_in(region.clone(), u32::MAX).is_err());
    assert!(region.bytes().to_vec().iter().all(|&b| b == 0));
}

#[test]
fn take_cuts_aligned_pieces_for_each_primitive() {
    let mut region = heap(4096);
    let base = region.as_ptr() as usize;
    let a = region.take(1, 1).unwrap();
    assert_eq!(a.len(), 1);
    let b = region.take(Semaphore::SIZE, Semaphore::ALIGN).unwrap();
    assert_eq!((b.as_ptr() as usize - base) % Semaphore::ALIGN, 0);
    assert_eq!(b.len(), Semaphore::SIZE);
    Semaphore::init_in(b, 1).unwrap();
    let m = region
        .take(Mutex::<u128>::SIZE, Mutex::<u128>::ALIGN)
        .unwrap();
    assert_eq!(m.as_ptr() as usize % Mutex::<u128>::ALIGN, 0);
    Mutex::<u128>::init_in(m, 7).unwrap();
    assert!(region.take(8192, 8).is_err());
}

#[test]
fn read_only_regions_are_refused() {
    let seg = Segment::options()
        .size(4096)
        .exclusive(true)
        .open(Key::PRIVATE)
        .unwrap()
        .into_owned();
    let ro = SharedRegion::new(Arc::new(seg.attach_read_only().unwrap())).unwrap();
    let e = Semaphore::open_in(ro.clone()).unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    let e = Mutex::<u64>::init_in(ro, 0).unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
}
