//! Unit tests of placement, header validation and the classic locks' logic, on heap memory
//! ([`HeapMemory`]) so that Miri can run them; the ones that make system calls are ignored there.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use super::*;
use crate::shared::{HeapMemory, SharedRegion};
use crate::Error;

fn heap(len: usize) -> SharedRegion {
    SharedRegion::new(Arc::new(HeapMemory::new(len))).unwrap()
}

/// Iterations per thread: few under Miri, which is slow.
const ITERS: u64 = if cfg!(miri) { 10 } else { 300 };

/// `n` threads, each entering `lock` `ITERS` times as its own participant and doing a
/// read–yield–write increment inside: no update is lost and no two are ever inside.
fn excludes<L: ParticipantLock + Clone + Send + 'static>(lock: L, n: usize) {
    let counter = Arc::new(AtomicU64::new(0));
    let inside = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..n)
        .map(|me| {
            let (lock, counter, inside) = (lock.clone(), counter.clone(), inside.clone());
            std::thread::spawn(move || {
                for _ in 0..ITERS {
                    let _g = lock.lock(me).unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two inside");
                    let v = counter.load(Ordering::Relaxed);
                    std::thread::yield_now();
                    counter.store(v + 1, Ordering::Relaxed);
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(counter.load(Ordering::SeqCst), n as u64 * ITERS);
}

#[test]
fn classic_locks_placed_in_memory_exclude_threads() {
    excludes(Dekker::init_in(heap(4096)).unwrap(), 2);
    excludes(Peterson::init_in(heap(4096)).unwrap(), 2);
    excludes(FilterLock::init_in(heap(4096), 3).unwrap(), 3);
    excludes(Szymanski::init_in(heap(4096), 3).unwrap(), 3);
    excludes(Bakery::init_in(heap(4096), 3).unwrap(), 3);
}

#[test]
fn handles_keep_the_memory_alive_and_share_one_primitive() {
    let region = heap(4096);
    let a = Semaphore::init_in(region.clone(), 2).unwrap();
    // A second init_in loses the claim and gets the same semaphore (its value is ignored).
    let b = Semaphore::init_in(region.clone(), 9).unwrap();
    let c = Semaphore::open_in(region).unwrap();
    assert!(a.try_wait());
    assert_eq!((b.value(), c.value()), (1, 1));
    drop(a);
    drop(b);
    // `c` alone keeps the heap memory now.
    assert!(c.try_wait());
    assert!(!c.try_wait());
    c.post().unwrap();
    assert_eq!(c.value(), 1);
}

#[test]
fn headers_are_validated_before_use() {
    let region = heap(4096);
    let bytes = region.bytes();
    // Nothing there yet.
    let e = Dekker::open_in(region.clone()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    Dekker::init_in(region.clone()).unwrap();
    // Another type: the magic.
    let e = Peterson::open_in(region.clone()).unwrap_err();
    assert!(e.to_string().contains("magic"), "{e}");
    // A layout version this build does not know.
    bytes.write(4, &99u32).unwrap();
    let e = Dekker::open_in(region.clone()).unwrap_err();
    assert!(e.to_string().contains("version"), "{e}");
    bytes.write(4, &1u32).unwrap();
    // A size that is not this type's.
    bytes.write(12, &7u32).unwrap();
    let e = Dekker::open_in(region.clone()).unwrap_err();
    assert!(e.to_string().contains("size"), "{e}");
    // A state word that is no state.
    bytes.write(8, &0x1234_5678u32).unwrap();
    let e = Dekker::open_in(region.clone()).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(Dekker::init_in(region.clone()).is_err());
    // Participant counts out of range in the body.
    bytes.fill(0).unwrap();
    FilterLock::init_in(region.clone(), 3).unwrap();
    for bad in [0u32, MAX_PARTICIPANTS as u32 + 1, u32::MAX] {
        bytes.write(16, &bad).unwrap();
        let e = FilterLock::open_in(region.clone()).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{bad}: {e}");
    }
    // Event mode and state words that are not 0 or 1.
    bytes.fill(0).unwrap();
    Event::init_in(region.clone(), EventMode::Auto, false).unwrap();
    bytes.write(20, &5u32).unwrap();
    assert!(Event::open_in(region.clone()).is_err());
    // A semaphore count above the maximum.
    bytes.fill(0).unwrap();
    Semaphore::init_in(region.clone(), 0).unwrap();
    bytes.write(16, &u32::MAX).unwrap();
    assert!(Semaphore::open_in(region.clone()).is_err());
    // Too small, misaligned, read-only regions.
    bytes.fill(0).unwrap();
    assert!(Bakery::init_in(region.slice(..64).unwrap(), 2).is_err());
    assert!(Bakery::init_in(region.slice(4..).unwrap(), 2).is_err());
}

/// Fills everything after the header and the participant count with `byte`, and the count with
/// `u32::MAX`.
fn scribble(region: &SharedRegion, size: usize, byte: u8) {
    let bytes = region.bytes();
    bytes.write_at(20, &vec![byte; size - 20]).unwrap();
    bytes.write(16, &u32::MAX).unwrap();
}

#[test]
fn classic_locks_survive_hostile_bytes() {
    // Every word of the body set to all-ones by a hostile peer, the count included: the handles
    // keep the count they validated, index nothing out of bounds, do not overflow, and enter.
    let region = heap(4096);
    let l = Dekker::init_in(region.clone()).unwrap();
    scribble(&region, Dekker::SIZE, 0xFF);
    drop(l.lock(0).unwrap());
    assert!(l.lock(2).is_err());

    let region = heap(4096);
    let l = Peterson::init_in(region.clone()).unwrap();
    scribble(&region, Peterson::SIZE, 0xFF);
    drop(l.lock(1).unwrap());

    // (Other participants' levels all-ones would mean "everybody waits above you": a hang, as
    // with a participant that dies inside. Victim words of all-ones are only compared.)
    let region = heap(4096);
    let l = FilterLock::init_in(region.clone(), 3).unwrap();
    scribble(&region, FilterLock::SIZE, 0);
    let victims = 20 + 4 * MAX_PARTICIPANTS;
    region
        .bytes()
        .write_at(victims, &[0xFF; 4 * MAX_PARTICIPANTS])
        .unwrap();
    assert_eq!(l.participants(), 3);
    drop(l.lock(2).unwrap());
    assert!(l.lock(3).is_err());

    let region = heap(4096);
    let l = Bakery::init_in(region.clone(), 3).unwrap();
    scribble(&region, Bakery::SIZE, 0xFF);
    // Every ticket is u64::MAX: ours saturates instead of overflowing, and index order decides.
    drop(l.lock(0).unwrap());
    assert!(l.lock(MAX_PARTICIPANTS).is_err());

    let region = heap(4096);
    let s = Semaphore::init_in(region.clone(), 0).unwrap();
    region.bytes().write(16, &u32::MAX).unwrap();
    assert!(
        s.try_wait(),
        "a huge count is taken from, not trusted further"
    );
    assert!(s.post().is_err(), "and refuses to grow past the maximum");
}

#[test]
#[cfg_attr(miri, ignore)] // the futex wake is a system call
fn barrier_keeps_the_count_it_validated() {
    let region = heap(4096);
    let b = Barrier::init_in(region.clone(), 1).unwrap();
    region.bytes().write(16, &0u32).unwrap(); // a peer sets the count to 0
    assert_eq!(b.participants(), 1);
    assert!(b.wait());
    region.bytes().write(20, &77u32).unwrap(); // and the arrivals above the count
    assert!(b.wait(), "a round with too many arrivals ends at once");
}
