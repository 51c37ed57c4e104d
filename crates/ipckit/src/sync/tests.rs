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

/// A peer's write of the 32-bit word at byte `offset`, with an access of the size the primitives
/// use (Miri's weak-memory model wants accesses to a location to be of one size).
fn poke(region: &SharedRegion, offset: usize, value: u32) {
    let word = region.bytes().atomic_u32(offset).unwrap();
    word.store(value, Ordering::Relaxed);
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
    // Nothing there yet.
    let region = heap(4096);
    let e = Dekker::open_in(region.clone()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    Dekker::init_in(region.clone()).unwrap();
    // Another type: the magic.
    let e = Peterson::open_in(region.clone()).unwrap_err();
    assert!(e.to_string().contains("magic"), "{e}");
    // A layout version this build does not know.
    poke(&region, 4, 99);
    let e = Dekker::open_in(region.clone()).unwrap_err();
    assert!(e.to_string().contains("version"), "{e}");
    poke(&region, 4, 1);
    // A size that is not this type's.
    poke(&region, 12, 7);
    let e = Dekker::open_in(region.clone()).unwrap_err();
    assert!(e.to_string().contains("size"), "{e}");
    // A state word that is no state.
    poke(&region, 8, 0x1234_5678);
    let e = Dekker::open_in(region.clone()).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(Dekker::init_in(region).is_err());

    // Participant counts out of range in the body.
    let region = heap(4096);
    FilterLock::init_in(region.clone(), 3).unwrap();
    for bad in [0u32, MAX_PARTICIPANTS as u32 + 1, u32::MAX] {
        poke(&region, 16, bad);
        let e = FilterLock::open_in(region.clone()).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{bad}: {e}");
    }
    // Event mode and state words that are not 0 or 1.
    let region = heap(4096);
    Event::init_in(region.clone(), EventMode::Auto, false).unwrap();
    poke(&region, 20, 5);
    assert!(Event::open_in(region).is_err());
    // A semaphore count above the maximum.
    let region = heap(4096);
    Semaphore::init_in(region.clone(), 0).unwrap();
    poke(&region, 16, u32::MAX);
    assert!(Semaphore::open_in(region).is_err());
    // Too small, misaligned regions.
    let region = heap(4096);
    assert!(Bakery::init_in(region.slice(..64).unwrap(), 2).is_err());
    assert!(Bakery::init_in(region.slice(4..).unwrap(), 2).is_err());
}

/// Sets the 32-bit words `words` (byte offsets) to `value`, and the participant count to
/// `u32::MAX`.
fn scribble(region: &SharedRegion, words: std::ops::Range<usize>, value: u32) {
    for offset in words.step_by(4) {
        poke(region, offset, value);
    }
    poke(region, 16, u32::MAX);
}

#[test]
fn classic_locks_survive_hostile_bytes() {
    // The words of the body set to all-ones by a hostile peer, the count included: the handles
    // keep the count they validated, index nothing out of bounds, do not overflow, and enter.
    let region = heap(4096);
    let l = Dekker::init_in(region.clone()).unwrap();
    scribble(&region, 20..Dekker::SIZE, u32::MAX);
    drop(l.lock(0).unwrap());
    assert!(l.lock(2).is_err());

    let region = heap(4096);
    let l = Peterson::init_in(region.clone()).unwrap();
    scribble(&region, 20..Peterson::SIZE, u32::MAX);
    drop(l.lock(1).unwrap());

    // (Other participants' levels all-ones would mean "everybody waits above you": a hang, as
    // with a participant that dies inside. Victim words of all-ones are only compared.)
    let region = heap(4096);
    let l = FilterLock::init_in(region.clone(), 3).unwrap();
    let victims = 20 + 4 * MAX_PARTICIPANTS;
    scribble(&region, victims..FilterLock::SIZE, u32::MAX);
    assert_eq!(l.participants(), 3);
    drop(l.lock(2).unwrap());
    assert!(l.lock(3).is_err());

    // Every ticket u64::MAX (and every `choosing` word all-ones): ours saturates instead of
    // overflowing, and index order decides.
    let region = heap(4096);
    let l = Bakery::init_in(region.clone(), 3).unwrap();
    let tickets = Bakery::SIZE - 8 * MAX_PARTICIPANTS;
    scribble(&region, 20..20 + 4 * MAX_PARTICIPANTS, u32::MAX);
    for offset in (tickets..Bakery::SIZE).step_by(8) {
        let ticket = region.bytes().atomic_u64(offset).unwrap();
        ticket.store(u64::MAX, Ordering::Relaxed);
    }
    drop(l.lock(0).unwrap());
    assert!(l.lock(MAX_PARTICIPANTS).is_err());

    // An event word that is neither 0 nor 1 counts as set: a waiter passes instead of spinning
    // on a word the futex would not sleep on.
    let region = heap(4096);
    let e = Event::init_in(region.clone(), EventMode::Auto, false).unwrap();
    poke(&region, 20, 7);
    assert!(e.is_set());
    assert!(e.try_wait());
    assert!(!e.is_set(), "and the waiter it released cleared it");

    let region = heap(4096);
    let s = Semaphore::init_in(region.clone(), 0).unwrap();
    poke(&region, 16, u32::MAX);
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
    poke(&region, 16, 0); // a peer sets the count to 0
    assert_eq!(b.participants(), 1);
    assert!(b.wait());
    poke(&region, 20, 77); // and the arrivals above the count
    assert!(b.wait(), "a round with too many arrivals ends at once");
}
