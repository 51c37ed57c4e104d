//! "Nothing yet" is not an exceptional event on the hot path: a `try_*` call on an empty channel or
//! a full lane, and a timed call that expires, return [`Error::WouldBlock`] / [`Error::Timeout`]
//! without allocating. A counting global allocator, in a test binary of its own, proves it.
//!
//! Counting is per thread (a thread-local counter), so the test harness's own threads do not
//! disturb it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use ipckit::Error;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: a thread being torn down has no thread-locals any more; it is not counted.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to the system allocator with the caller's arguments, so its
// contract is the caller's; the counter is a const-initialised thread-local Cell, which neither
// allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's layout (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` and `layout` come from this allocator, which got them from System.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// How many allocations `f` made on this thread, and its result.
fn allocations<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (ALLOCATIONS.with(Cell::get) - before, out)
}

#[track_caller]
fn assert_no_allocation<T: std::fmt::Debug>(
    what: &str,
    f: impl FnOnce() -> ipckit::Result<T>,
    expect: impl FnOnce(&Error) -> bool,
) {
    let (n, result) = allocations(f);
    let err = result.expect_err(what);
    assert!(expect(&err), "{what}: {err}");
    assert_eq!(n, 0, "{what} allocated {n} times to say: {err}");
}

fn would_block(e: &Error) -> bool {
    matches!(e, Error::WouldBlock { .. })
}

fn timeout(e: &Error) -> bool {
    matches!(e, Error::Timeout { .. })
}

#[test]
fn would_block_and_timeout_allocate_nothing() {
    // An anonymous channel (a memfd): nothing is left behind, whatever fails.
    let channel = ipckit::channel::Options::new()
        .lane_capacity(4096)
        .anonymous()
        .unwrap();
    let mut rx = channel.consumer().unwrap();
    let mut tx = channel.producer().unwrap();
    let mut buf = Vec::with_capacity(4096);
    let short = Duration::from_millis(1);

    assert_no_allocation("try_recv", || rx.try_recv(), would_block);
    assert_no_allocation("try_recv_into", || rx.try_recv_into(&mut buf), would_block);
    assert_no_allocation(
        "try_recv_ref",
        || rx.try_recv_ref().map(|s| s.map(|s| s.len())),
        would_block,
    );
    assert_no_allocation("recv_timeout", || rx.recv_timeout(short), timeout);
    assert_no_allocation(
        "recv_into_timeout",
        || rx.recv_into_timeout(&mut buf, short),
        timeout,
    );

    let msg = [7u8; 1000];
    while tx.try_send(&msg).is_ok() {}
    assert_no_allocation("try_send", || tx.try_send(&msg), would_block);
    assert_no_allocation(
        "try_reserve",
        || tx.try_reserve(msg.len()).map(|s| s.len()),
        would_block,
    );
    assert_no_allocation("send_timeout", || tx.send_timeout(&msg, short), timeout);
    drop(channel);
}

/// The hot path allocates nothing either: sending and receiving (copying into a buffer with
/// the capacity, or in place), over several laps of a lane so that pads and wrap-arounds are
/// included.
#[test]
fn sending_and_receiving_allocate_nothing() {
    let channel = ipckit::channel::Options::new()
        .lane_capacity(4096)
        .anonymous()
        .unwrap();
    let mut rx = channel.consumer().unwrap();
    let mut tx = channel.producer().unwrap();
    let mut buf = Vec::with_capacity(4096);
    let msg = [7u8; 1000];
    let (n, ()) = allocations(|| {
        for len in (0..40).map(|i| i * 97 % 1001) {
            tx.try_send(&msg[..len]).expect("try_send");
            let got = rx.try_recv_into(&mut buf).expect("try_recv_into");
            assert_eq!(got, Some(len));
            let slot = tx.try_reserve(len).expect("try_reserve");
            slot.commit();
            let slot = rx.try_recv_ref().expect("try_recv_ref").expect("a message");
            assert_eq!(slot.len(), len);
        }
    });
    assert_eq!(n, 0, "the hot path allocated {n} times");
    drop(channel);
}

/// The counter counts: a sanity check of the test itself.
#[test]
fn the_counter_counts() {
    let (n, v) = allocations(|| vec![1u8; 10]);
    assert!(n >= 1);
    drop(v);
}
