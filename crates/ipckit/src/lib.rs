//! # ipckit — safe, leak-free Linux inter-process communication
//!
//! One module per mechanism, named as the man pages name it. Each module's documentation says what
//! the mechanism is for, which trap of its C API the module removes, and links the man pages.
//!
//! | module | mechanism | the trap it removes |
//! |---|---|---|
//! | [`key`] | System V keys, `ftok` | silent key collisions are documented, not hidden |
//! | [`shared`] | memory other processes write: copies by offset, atomics in place | plain references over bytes that others change |
//! | [`sysv::shm`] | System V shared memory | `shmat` without `shmdt` leaks; segments outlive their creator |
//! | [`sysv::sem`] | System V semaphore sets | a holder that dies without `SEM_UNDO` blocks everyone |
//! | [`sysv::msg`] | System V message queues | oversize messages and type selection done by hand |
//! | [`posix::shm`] | POSIX shared memory, memfd | names escaping `/dev/shm`; objects outliving their creator; unsealed sizes |
//! | [`mmap`] | file and anonymous mappings | `SIGBUS` past the end of the file; protection the file's mode refuses |
//! | [`posix::sem`] | POSIX named and unnamed semaphores | `sem_t` placed unaligned or initialised twice |
//! | [`posix::mq`] | POSIX message queues | limits (`msg_max`, `msgsize_max`) that fail without saying which |
//! | [`pipe`] | pipes and FIFOs | `SIGPIPE` killing the writer; FIFO opens that block for ever |
//! | [`signal`] | signals, `signalfd`, `sigqueue` | arbitrary code in async signal handlers |
//! | [`unix`] | Unix domain sockets | lost message boundaries; leaked passed descriptors |
//! | [`sync`] | locks, condition variables, semaphores, events, barriers inside shared memory | a lock holder that dies; memory misread as a lock |
//! | [`channel`] | a multi-producer message channel in shared memory (lock-free lanes, futex wake-ups) | torn messages and endless waits when a peer dies; segments left in `/dev/shm` |
//! | [`inspect`] | `/proc/sysvipc`, `/dev/shm`, `/dev/mqueue`, limits, attached PIDs | parsing ipcs output |
//! | [`transport`] | one Sender/Receiver over any mechanism, across processes | hand-made framing, no end of stream, unchecked size limits |
//!
//! Every fallible function returns [`Error`], which names the operation, the object and the cause.
//!
//! # Which semaphore?
//! Three modules offer one, for three situations:
//!
//! - [`sysv::sem::SemSet`] — a set in the kernel, found by a [`Key`]. Pick it when a process that
//!   dies must give back what it took: with `SEM_UNDO` ([`SemSet::wait_undo`](sysv::sem::SemSet::wait_undo))
//!   the kernel reverses its adjustments at exit. Every operation is a system call; several
//!   semaphores can change atomically together.
//! - [`posix::sem`] — a named semaphore (`/name`, for unrelated processes, [`NamedSemaphore`](posix::sem::NamedSemaphore))
//!   or an unnamed `sem_t` in shared memory ([`RawSemaphore`](posix::sem::RawSemaphore)). Pick it
//!   to share a semaphore with C programs that use `sem_wait`/`sem_post`. No undo on death.
//! - [`sync::Semaphore`] — ipckit's own, inside shared memory you already map, built on a futex: no
//!   system call unless it must sleep or wake, a layout validated on open. Pick it for speed
//!   between Rust processes. No undo on death (for a critical section use [`sync::Mutex`], which
//!   notices a holder that died).
//!
//! # Messages: channel or transport?
//! Both move whole messages between processes and receive them the same way: `recv()` returns
//! `Ok(Some(message))` as a new `Vec`, `recv_into(&mut buf)` returns `Ok(Some(len))` with the
//! message in `buf` (no allocation once it is large enough), and both return `Ok(None)` once the
//! sending side closed on purpose and everything before was received. The sending side is the
//! channel's [`Producer`](channel::Producer) and the transport's [`Sender`](transport::Sender);
//! the receiving side the channel's [`Consumer`](channel::Consumer) and the transport's
//! [`Receiver`](transport::Receiver).
//!
//! - [`channel`] is the fast path: shared memory, several producers, zero-copy slots,
//!   non-blocking (`try_recv`, `try_recv_into`: [`Error::WouldBlock`]) and timed
//!   (`recv_timeout`, `recv_into_timeout`: [`Error::Timeout`]) variants. Use it between processes
//!   you write.
//! - [`transport`] is one sender and one receiver over any mechanism ([`TransportKind`](transport::TransportKind):
//!   pipes, sockets, message queues, shared memory, signals), with framing and an end of stream
//!   added where the mechanism lacks them. Use it to pick the mechanism at run time, to compare
//!   them, or to talk to a peer that needs a given one; it blocks (an
//!   [`AbortHandle`](transport::AbortHandle) stops a blocked call).
//!
//! # A first taste
//!
//! A private System V segment holding a typed record, guarded by a semaphore taken with `SEM_UNDO`
//! (so a holder that dies gives it back). The owning handles remove both objects when they go out
//! of scope, and the attachment detaches itself:
//!
//! ```
//! use ipckit::bytemuck::{Pod, Zeroable};
//! use ipckit::sysv::{sem::SemSet, shm::Segment};
//! use ipckit::Key;
//!
//! #[derive(Clone, Copy, Pod, Zeroable)]
//! #[bytemuck(crate = "ipckit::bytemuck")] // the derives' code names the traits through ipckit
//! #[repr(C)]
//! struct Reading {
//!     sensor: u32,
//!     celsius: f32,
//! }
//!
//! let segment = Segment::create(Key::PRIVATE, 4096)?.into_owned();
//! let lock = SemSet::create(Key::PRIVATE, 1)?.into_owned();
//! lock.set(0, 1)?; // one holder at a time
//!
//! let memory = segment.attach()?;
//! lock.wait_undo(0)?;
//! memory.write(0, &Reading { sensor: 7, celsius: 21.5 })?; // a copy in, no `&mut` to shared bytes
//! lock.post_undo(0)?;
//!
//! let copy = segment.attach_read_only()?; // another process would attach by `segment.id()`
//! assert_eq!(copy.read::<Reading>(0)?.celsius, 21.5); // a copy out, to validate like any input
//! assert!(memory.read::<Reading>(4093).is_err()); // out of bounds: an error, never UB
//! # Ok::<(), ipckit::Error>(())
//! ```
#![warn(missing_docs)]

pub mod channel;
pub mod error;
pub mod inspect;
pub mod key;
pub mod mmap;
mod mode;
#[cfg(not(loom))]
mod ofd_lock;
mod once;
pub mod pipe;
pub mod posix;
pub mod shared;
pub mod signal;
pub mod sync;
pub mod sysv;
#[cfg(not(loom))]
pub mod transport;
pub mod unix;
mod view;

pub use error::{Error, Object, Result};
pub use key::Key;
pub use mode::DEFAULT_MODE;

/// The plain-data traits typed copies in and out of shared memory are bounded by
/// ([`Pod`](bytemuck::Pod), [`Zeroable`](bytemuck::Zeroable), [`AnyBitPattern`](bytemuck::AnyBitPattern)),
/// re-exported so that a crate whose only dependency is ipckit can derive them:
/// `#[derive(ipckit::bytemuck::Pod, ipckit::bytemuck::Zeroable)]` with
/// `#[bytemuck(crate = "ipckit::bytemuck")]`, as in the [first example](crate#a-first-taste).
pub use bytemuck;

/// The example of the crate's README (what crates.io shows), run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
