//! ipckit::sync's futex primitives and the placement protocol across real processes: semaphores
//! count, events release one or all, barriers hold rounds together; `init_in` raced by several
//! processes initialises once and everyone gets a working primitive; `open_in` refuses memory that
//! does not hold the primitive asked for.

use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipckit::sync::{
    region_at, Barrier, Dekker, Event, EventMode, Mutex, Regions, Semaphore, MAX_PARTICIPANTS,
};
use ipckit::sysv::shm::{Attachment, OwnedSegment, Segment};
use ipckit::Key;
use ipckit_testkit::{child_role, spawn_self};

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

fn segment() -> (OwnedSegment, Bytes) {
    let seg = Segment::options()
        .size(4096)
        .exclusive(true)
        .open(Key::PRIVATE)
        .expect("create segment")
        .into_owned();
    let map = seg.attach().expect("attach");
    (seg, Bytes(map))
}

/// `(what, index)` from a child's role `what:shmid:index`, and the attached segment.
fn child_segment(role: &str) -> (String, usize, Bytes) {
    let parts: Vec<&str> = role.split(':').collect();
    let map = Segment::from_id(parts[1].parse().unwrap())
        .attach()
        .expect("child attach");
    (parts[0].to_string(), parts[2].parse().unwrap(), Bytes(map))
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
fn words(region: &mut [u8]) -> &[AtomicU32] {
    assert_eq!(region.as_ptr() as usize % 4, 0);
    // SAFETY: aligned (checked) and in bounds (len / 4 words); AtomicU32 accepts every bit
    // pattern; the exclusive borrow of the region is held as long as the atomics are used.
    unsafe { std::slice::from_raw_parts(region.as_mut_ptr().cast::<AtomicU32>(), region.len() / 4) }
}

#[test]
fn semaphore_counts_posts_taken_by_other_processes() {
    const TEST: &str = "semaphore_counts_posts_taken_by_other_processes";
    const TAKERS: usize = 3;
    const EACH: usize = 20;
    if let Some(role) = child_role() {
        let (_, _, mut map) = child_segment(&role);
        let sem = Semaphore::open_in(&mut map).unwrap();
        for _ in 0..EACH {
            sem.wait();
        }
        return;
    }
    let (seg, mut map) = segment();
    let sem = Semaphore::init_in(&mut map, 0).unwrap();
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
        let (_, _, mut map) = child_segment(&role);
        let (head, rest) = map.split_at_mut(64);
        let event = Event::open_in(head).unwrap();
        let passed = &words(rest)[0];
        event.wait();
        passed.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let (seg, mut map) = segment();
    let (head, rest) = map.split_at_mut(64);
    let event = Event::init_in(head, mode, false).unwrap();
    let passed = &words(rest)[0];
    let children: Vec<_> = (0..3).map(|i| spawn(test, "wait", &seg, i)).collect();
    parent(event, passed, children);
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
    fn run(map: &mut [u8], me: usize) -> u32 {
        let (head, rest) = map.split_at_mut(64);
        let barrier = Barrier::open_in(head).unwrap();
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
        let (_, me, mut map) = child_segment(&role);
        run(&mut map, me);
        return;
    }
    let (seg, mut map) = segment();
    Barrier::init_in(&mut map[..64], PROCS as u32).unwrap();
    let children: Vec<_> = (1..PROCS).map(|i| spawn(TEST, "meet", &seg, i)).collect();
    run(&mut map, 0);
    wait_all(children);
    let rest = &mut map[64..];
    let leads: u32 = (0..PROCS)
        .map(|k| words(rest)[16 + k].load(Ordering::SeqCst))
        .sum();
    assert_eq!(leads, 2 * ROUNDS, "one leader per wait");
}

#[test]
fn racing_init_in_initialises_once_and_everyone_gets_the_same_working_mutex() {
    const TEST: &str = "racing_init_in_initialises_once_and_everyone_gets_the_same_working_mutex";
    const PROCS: usize = 6;
    if let Some(role) = child_role() {
        let (_, me, mut map) = child_segment(&role);
        let (head, rest) = map.split_at_mut(64);
        let w = words(head);
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
    let (seg, mut map) = segment();
    let children: Vec<_> = (0..PROCS).map(|i| spawn(TEST, "init", &seg, i)).collect();
    // Give the children time to attach and spin; correctness does not depend on it.
    std::thread::sleep(Duration::from_millis(50));
    words(&mut map)[0].store(1, Ordering::Release);
    wait_all(children);
    let (head, rest) = map.split_at_mut(64);
    let seen: Vec<u32> = (0..PROCS)
        .map(|k| words(head)[1 + k].load(Ordering::SeqCst))
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

#[test]
fn open_in_refuses_uninitialised_foreign_garbage_small_and_misaligned_regions() {
    let mut buf = vec![0u64; 512];
    let region: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);

    // Fresh memory: nothing initialised yet.
    let e = Semaphore::open_in(region).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");

    // Another primitive: the magic says so.
    Event::init_in(region, EventMode::Manual, false).unwrap();
    let e = Semaphore::open_in(region).unwrap_err();
    assert!(matches!(e, ipckit::Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("magic"), "{e}");
    let e = Mutex::<u64>::init_in(region, 0).unwrap_err();
    assert!(matches!(e, ipckit::Error::Corrupt { .. }), "{e}");

    // A Mutex of another element type: the size differs.
    region.fill(0);
    Mutex::<u64>::init_in(region, 0).unwrap();
    let e = Mutex::<[u64; 8]>::open_in(region).unwrap_err();
    assert!(e.to_string().contains("size"), "{e}");

    // Garbage everywhere, state word included.
    for (i, b) in region.iter_mut().enumerate() {
        *b = (i * 37 + 11) as u8;
    }
    let e = Semaphore::open_in(region).unwrap_err();
    assert!(matches!(e, ipckit::Error::Corrupt { .. }), "{e}");
    let e = Semaphore::init_in(region, 1).unwrap_err();
    assert!(matches!(e, ipckit::Error::Corrupt { .. }), "{e}");

    // Too small, misaligned.
    region.fill(0);
    let e = Dekker::init_in(&mut region[..8]).unwrap_err();
    assert!(e.to_string().contains("bytes"), "{e}");
    let e = Dekker::init_in(&mut region[1..]).unwrap_err();
    assert!(e.to_string().contains("alignment"), "{e}");

    // A valid primitive whose body was scribbled over.
    let b = Barrier::init_in(region, 3).unwrap();
    assert_eq!(b.participants(), 3);
    region[16..20].copy_from_slice(&0u32.to_ne_bytes());
    let e = Barrier::open_in(region).unwrap_err();
    assert!(matches!(e, ipckit::Error::Corrupt { .. }), "{e}");
}

#[test]
fn init_in_refuses_bad_arguments_before_touching_the_region() {
    let mut buf = vec![0u64; 512];
    let region: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
    assert!(Barrier::init_in(region, 0).is_err());
    assert!(ipckit::sync::FilterLock::init_in(region, MAX_PARTICIPANTS + 1).is_err());
    assert!(ipckit::sync::Bakery::init_in(region, 0).is_err());
    assert!(Semaphore::init_in(region, u32::MAX).is_err());
    assert!(region.iter().all(|&b| b == 0));
}

#[test]
fn regions_cut_aligned_pieces_and_region_at_checks_bounds() {
    let mut buf = vec![0u64; 64];
    let region: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
    let base = region.as_ptr() as usize;
    let mut r = Regions::new(region);
    let a = r.take::<u8>().unwrap();
    assert_eq!(a.len(), 1);
    let b = r.take::<Semaphore>().unwrap();
    assert_eq!(
        (b.as_ptr() as usize - base) % std::mem::align_of::<Semaphore>(),
        0
    );
    assert_eq!(b.len(), std::mem::size_of::<Semaphore>());
    let before = r.offset();
    assert!(r.take::<[u8; 4096]>().is_err());
    assert_eq!(r.offset(), before, "a failed cut consumes nothing");

    let mut buf = vec![0u64; 4];
    let region: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
    assert_eq!(region_at::<u64>(region, 24).unwrap().len(), 8);
    assert!(region_at::<u64>(region, 25).is_err(), "misaligned");
    assert!(region_at::<u64>(region, 32).is_err(), "out of bounds");
    assert!(region_at::<u64>(region, usize::MAX).is_err(), "overflow");
}
