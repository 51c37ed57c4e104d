//! Passing file descriptors with `SCM_RIGHTS`, without leaking the ones that arrive.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::io::{retry_on_intr, IoSlice, IoSliceMut};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketType,
};

use crate::error::{Error, Object, Result};

/// The most file descriptors one message carries (`SCM_MAX_FD` in the kernel).
pub const SCM_MAX_FD: usize = 253;

/// `CMSG_ALIGN(sizeof(struct cmsghdr))`: where a control message's data starts.
const CMSG_HEADER: usize = {
    let word = size_of::<usize>();
    size_of::<libc::cmsghdr>().div_ceil(word) * word
};

/// `CMSG_LEN(n * sizeof(int))`: a control length through which the kernel installs at most `n`
/// descriptors (it installs `(controllen - sizeof(cmsghdr)) / sizeof(int)`); `CMSG_SPACE` would
/// round up and let one more in.
const fn rights_len(n: usize) -> usize {
    CMSG_HEADER + n * size_of::<libc::c_int>()
}

/// Control-message space for up to [`SCM_MAX_FD`] descriptors, aligned for `cmsghdr` so that
/// rustix uses it from its first byte and the length given is the length the kernel sees.
#[repr(C, align(8))]
struct RightsSpace([MaybeUninit<u8>; RIGHTS_SPACE]);

const RIGHTS_SPACE: usize = rustix::cmsg_space!(ScmRights(SCM_MAX_FD));

impl RightsSpace {
    fn new() -> RightsSpace {
        RightsSpace([MaybeUninit::uninit(); RIGHTS_SPACE])
    }
}

const _: () = assert!(std::mem::align_of::<libc::cmsghdr>() <= 8);
const _: () = assert!(rights_len(SCM_MAX_FD) <= size_of::<RightsSpace>());

fn object(fd: BorrowedFd<'_>) -> Object {
    Object::Other(format!("Unix socket fd {}", fd.as_raw_fd()).into())
}

/// `sendmsg(fd, {data, SCM_RIGHTS fds}, MSG_NOSIGNAL)` — sends `data` with copies of `fds` on a
/// connected Unix socket (stream, seqpacket or datagram) and returns the number of data bytes
/// sent.
///
/// The receiver gets new descriptors for the same open files (with [`recv_fds`]); closing ours
/// afterwards does not affect them. On a stream socket the descriptors travel with the first byte
/// of `data`, so `data` must not be empty when `fds` is not, and a short count means the rest of
/// `data` is to be sent with plain writes. At most [`SCM_MAX_FD`] descriptors per call; both
/// limits are checked before any system call. A peer that closed is `BrokenPipe`, never `SIGPIPE`.
/// `EINTR` is retried.
pub fn send_fds<S: AsFd>(socket: &S, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
    const OP: &str = "sendmsg";
    let socket = socket.as_fd();
    if fds.len() > SCM_MAX_FD {
        return Err(Error::invalid(
            OP,
            object(socket),
            format!(
                "{} file descriptors exceed the {SCM_MAX_FD} one message carries (SCM_MAX_FD)",
                fds.len()
            ),
        ));
    }
    if data.is_empty() && !fds.is_empty() {
        let kind = rustix::net::sockopt::socket_type(socket)
            .map_err(|e| Error::os("getsockopt(SO_TYPE)", object(socket), e))?;
        if kind == SocketType::STREAM {
            return Err(Error::invalid(
                OP,
                object(socket),
                "a stream socket carries file descriptors only with at least one byte of data",
            ));
        }
    }
    let mut space = RightsSpace::new();
    let mut control = SendAncillaryBuffer::new(&mut space.0);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        // Cannot happen: the space holds SCM_MAX_FD descriptors.
        return Err(Error::invalid(
            OP,
            object(socket),
            "no room for the file descriptors",
        ));
    }
    let iov = [IoSlice::new(data)];
    retry_on_intr(|| rustix::net::sendmsg(socket, &iov, &mut control, SendFlags::NOSIGNAL))
        .map_err(|e| Error::os(OP, object(socket), e))
}

/// `recvmsg(fd, {buf, control}, MSG_CMSG_CLOEXEC)` — receives data into `buf` and up to `max_fds`
/// file descriptors (at most [`SCM_MAX_FD`]; more is the same as that), returning the number of
/// bytes and the descriptors, in the order they were sent.
///
/// The descriptors are owned, so dropping them closes them, and close-on-exec, so a child started
/// later does not inherit them. If more descriptors arrived than `max_fds` (`MSG_CTRUNC`), or a
/// datagram or seqpacket message was longer than `buf` (`MSG_TRUNC`), this is an error: the
/// descriptors that did arrive are closed before it returns (the kernel closes the rest) and the
/// data is consumed; the error says how much. On a stream socket the bytes are whatever was
/// queued, up to the next message that carried descriptors. 0 bytes and no descriptors means the
/// peer closed (or, on a datagram or seqpacket socket, that an empty message came). Waits unless the socket is non-blocking (then `WouldBlock`); `EINTR` is retried.
pub fn recv_fds<S: AsFd>(
    socket: &S,
    buf: &mut [u8],
    max_fds: usize,
) -> Result<(usize, Vec<OwnedFd>)> {
    const OP: &str = "recvmsg";
    let socket = socket.as_fd();
    let max_fds = max_fds.min(SCM_MAX_FD);
    let mut space = RightsSpace::new();
    let control_len = if max_fds == 0 { 0 } else { rights_len(max_fds) };
    let mut control = RecvAncillaryBuffer::new(&mut space.0[..control_len]);
    let cap = buf.len();
    let mut iov = [IoSliceMut::new(buf)];
    let msg = retry_on_intr(|| {
        rustix::net::recvmsg(socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
    })
    .map_err(|e| Error::os(OP, object(socket), e))?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    let problem = if msg.flags.contains(ReturnFlags::CTRUNC) {
        Some(format!(
            "more file descriptors were sent than the {max_fds} asked for (MSG_CTRUNC)"
        ))
    } else if msg.flags.contains(ReturnFlags::TRUNC) {
        Some(format!(
            "the message was longer than the {cap}-byte buffer and its tail was discarded (MSG_TRUNC)"
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        let arrived = fds.len();
        drop(fds);
        return Err(Error::os(
            OP,
            object(socket),
            io::Error::other(format!(
                "{problem}; descriptors that arrived and were closed: {arrived}; data bytes consumed: {}",
                msg.bytes.min(cap)
            )),
        ));
    }
    Ok((msg.bytes, fds))
}
