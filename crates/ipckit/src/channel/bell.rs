//! Doorbells: how a waiter that cannot block its thread on the futex (an async task, an event
//! loop) is woken. A doorbell is a Unix datagram socket bound to the abstract name
//! `ipckit-bell-XXXXXXXX` (a random 32-bit id, 8 hex digits); a waker sends it one byte. The
//! abstract namespace needs no file (nothing to leak when a process dies) and is private to the
//! network namespace: a waker in another one cannot reach the doorbell, and its waiter then
//! notices new messages at its next periodic check (at most [`SLICE`](super::wait::SLICE) later)
//! instead of at once.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, Object, Result};

/// A channel participant's doorbell: a descriptor that becomes readable when the participant
/// armed with it (`Consumer::arm` / `Producer::arm`) should poll again.
///
/// One doorbell may serve several participants of this process (a consumer and producers of
/// different channels); each of them rings it. It is a Unix datagram socket: poll it for
/// readability with any event loop, and [`clear`](Self::clear) it when awake.
#[derive(Debug)]
pub struct Doorbell {
    socket: UnixDatagram,
    id: u32,
}

impl Doorbell {
    /// Binds a new doorbell (non-blocking) under a fresh random name.
    pub fn new() -> Result<Doorbell> {
        const OP: &str = "bind";
        let object = || Object::Other("a channel doorbell".into());
        // A taken name (another doorbell, or anyone's socket) is tried again with another id.
        let mut last = None;
        for _ in 0..16 {
            let id = random_id();
            match UnixDatagram::bind_addr(&address(id)?) {
                Ok(socket) => {
                    socket
                        .set_nonblocking(true)
                        .map_err(|e| Error::os("fcntl(O_NONBLOCK)", object(), e))?;
                    return Ok(Doorbell { socket, id });
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => return Err(Error::os(OP, object(), e)),
            }
        }
        Err(Error::os(OP, object(), last.expect("16 attempts")))
    }

    /// The id wakers find in the channel's shared memory.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Reads every ring queued so far, so that the descriptor is readable again only after the
    /// next one.
    pub fn clear(&self) {
        let mut byte = [0u8; 1];
        // Non-blocking: stops at WouldBlock (or any other error: nothing more to read).
        while self.socket.recv(&mut byte).is_ok() {}
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for Doorbell {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// The abstract name of doorbell `id`: `ipckit-bell-` and 8 lowercase hex digits, made on the
/// stack (a ring is on a sender's path: no allocation).
fn name(id: u32) -> [u8; 20] {
    let mut name = *b"ipckit-bell-00000000";
    for (i, digit) in name[12..].iter_mut().enumerate() {
        let nibble = (id >> (28 - 4 * i)) & 0xf;
        *digit = b"0123456789abcdef"[nibble as usize];
    }
    name
}

/// The abstract address of doorbell `id`.
fn address(id: u32) -> Result<SocketAddr> {
    let name = name(id);
    SocketAddr::from_abstract_name(name).map_err(|e| {
        Error::os(
            "bind",
            Object::Other(String::from_utf8_lossy(&name).into()),
            e,
        )
    })
}

/// A non-zero id that another process is unlikely to pick: std's per-process random hash keys
/// over a counter (no new dependency for randomness).
fn random_id() -> u32 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    match h.finish() as u32 {
        0 => 1,
        id => id,
    }
}

/// Sends doorbell `bell` one byte, from one unbound non-blocking socket per process. Every
/// failure is ignored: a full doorbell already has a ring queued, and a doorbell that is gone
/// (its waiter died or left) or unreachable (another network namespace) leaves the waiter to its
/// periodic check.
pub(crate) fn ring(bell: u32) {
    static SENDER: OnceLock<Option<UnixDatagram>> = OnceLock::new();
    if bell == 0 {
        return;
    }
    let sender = SENDER.get_or_init(|| {
        let s = UnixDatagram::unbound().ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    });
    if let (Some(sender), Ok(addr)) = (sender, address(bell)) {
        let _ = sender.send_to_addr(&[1], &addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_id_in_eight_hex_digits() {
        for id in [1, 0x0123_abcd, 0xdead_beef, u32::MAX] {
            assert_eq!(name(id), format!("ipckit-bell-{id:08x}").as_bytes());
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "sockets: Miri has no socket(2)")]
    fn a_ring_makes_the_doorbell_readable_until_cleared() {
        let bell = Doorbell::new().unwrap();
        let readable = |bell: &Doorbell| {
            let mut fds = [rustix::event::PollFd::new(
                bell,
                rustix::event::PollFlags::IN,
            )];
            let zero = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            rustix::event::poll(&mut fds, Some(&zero)).unwrap() == 1
        };
        assert!(!readable(&bell));
        ring(bell.id());
        ring(bell.id());
        assert!(readable(&bell));
        bell.clear();
        assert!(!readable(&bell));
        // Two doorbells get two names; ringing a doorbell that is gone is harmless.
        let other = Doorbell::new().unwrap();
        assert_ne!(other.id(), bell.id());
        let gone = other.id();
        drop(other);
        ring(gone);
        ring(0);
        assert!(!readable(&bell));
    }
}
