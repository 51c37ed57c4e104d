//! System V message queues: a kernel-held list of typed messages that unrelated processes send to
//! and receive from, each message whole and each type in FIFO order.
//!
//! Every message carries a positive type, so one queue can serve several conversations: a receiver
//! asks for the first message of any type, of one type, of the lowest type up to a bound, or of any
//! type but one ([`MsgQueue::recv`], [`RecvOptions`]). This module removes the hand work of the C
//! API: the `struct msgbuf` is built in an aligned buffer, a message too large for `msgmax` or for
//! the queue is refused with [`Error::TooLarge`] before the call (the kernel would reject the
//! first and block for ever on the second), and a message too large for the receive buffer is an
//! error that says so (or is cut, if asked). Interrupted calls (`EINTR`) are retried.
//!
//! Queues belong to the kernel and outlive their creator: remove them ([`MsgQueue::remove`]), or
//! hold an [`OwnedMsgQueue`] that removes its queue when dropped.
//!
//! # References
//! [msgget(2)](https://man7.org/linux/man-pages/man2/msgget.2.html),
//! [msgop(2)](https://man7.org/linux/man-pages/man2/msgop.2.html) (msgsnd, msgrcv),
//! [msgctl(2)](https://man7.org/linux/man-pages/man2/msgctl.2.html),
//! [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)

use std::io;
use std::ops::Deref;
use std::time::SystemTime;

use libc::{c_int, c_long};

use crate::error::{Error, Object, Result};
use crate::key::Key;
use crate::mode::check_mode;
use crate::sysv::{check_rc, get_option_setters, time_from_raw, GetOptions, Perm};

/// Where the kernel publishes the largest message size it accepts.
const MSGMAX_PATH: &str = "/proc/sys/kernel/msgmax";

/// The kernel's current `msgmax` (largest message, in bytes), or `None` if /proc cannot tell.
fn msgmax() -> Option<usize> {
    std::fs::read_to_string(MSGMAX_PATH)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `msgsnd(msqid, buf, len, flags)`, retried on EINTR. `buf` is a `struct msgbuf`: the type in
/// `buf[0]`, then at least `len` bytes of text.
fn msgsnd_raw(id: c_int, buf: &[c_long], len: usize, flags: c_int) -> io::Result<()> {
    assert!(
        len <= std::mem::size_of_val(&buf[1..]),
        "msgsnd_raw: buffer shorter than len"
    );
    loop {
        // SAFETY: `buf` holds a long followed by at least `len` bytes (checked above), which is
        // all msgsnd reads for msgsz = len; it writes nothing.
        let rc = unsafe { libc::msgsnd(id, buf.as_ptr().cast(), len, flags) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// A received message: its type and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message type (`mtype`, always positive).
    pub mtype: i64,
    /// The message text (`mtext`).
    pub data: Vec<u8>,
}

/// How [`MsgQueue::recv_with`] receives.
///
/// ```
/// use ipckit::sysv::msg::RecvOptions;
/// // Do not block; cut messages longer than 64 bytes.
/// let opts = RecvOptions::new().nowait().truncate().max_len(64);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RecvOptions {
    nowait: bool,
    truncate: bool,
    except: bool,
    max_len: Option<usize>,
}

impl RecvOptions {
    /// Block until a matching message arrives, accept messages up to `msgmax` bytes, and fail on a
    /// longer one.
    pub fn new() -> RecvOptions {
        RecvOptions::default()
    }

    /// `IPC_NOWAIT`: return `None` instead of blocking when no message matches.
    pub fn nowait(self) -> RecvOptions {
        RecvOptions {
            nowait: true,
            ..self
        }
    }

    /// `MSG_NOERROR`: cut a message longer than [`max_len`](Self::max_len) to that length (the rest
    /// is lost) instead of failing.
    pub fn truncate(self) -> RecvOptions {
        RecvOptions {
            truncate: true,
            ..self
        }
    }

    /// `MSG_EXCEPT`: take the first message whose type differs from the selector (which must be
    /// positive).
    pub fn except(self) -> RecvOptions {
        RecvOptions {
            except: true,
            ..self
        }
    }

    /// The largest message accepted, in bytes (default: the kernel's `msgmax`).
    pub fn max_len(self, max_len: usize) -> RecvOptions {
        RecvOptions {
            max_len: Some(max_len),
            ..self
        }
    }
}

/// Options to create or open a message queue, like memmap2's `MmapOptions`.
///
/// ```no_run
/// use ipckit::{sysv::msg::MsgQueue, Key};
/// let q = MsgQueue::options().mode(0o640).exclusive(true).open(Key::new(0x1234))?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MsgOptions {
    get: GetOptions,
}

impl MsgOptions {
    /// The defaults: mode [`DEFAULT_MODE`](crate::DEFAULT_MODE) (0600), neither create nor
    /// exclusive, so `MsgQueue::options().open(key)` opens an existing queue.
    pub fn new() -> MsgOptions {
        MsgOptions::default()
    }

    get_option_setters! {
        /// The permission bits of a created queue (default
        /// [`DEFAULT_MODE`](crate::DEFAULT_MODE), 0600). Ignored when an existing queue is opened:
        /// its permissions are checked by each operation.
        mode;
        /// Create the queue if the key has none (`IPC_CREAT`).
        create;
        /// Create the queue and fail with `AlreadyExists` if the key has one
        /// (`IPC_CREAT | IPC_EXCL`); implies [`create`](Self::create).
        exclusive;
    }

    /// `msgget(key, flags | mode)` — creates or opens the queue of `key` with these options.
    ///
    /// [`Key::PRIVATE`] always creates a new queue, so it needs `create(true)`; the mode must fit
    /// in 0o777. These are checked before any system call.
    pub fn open(&self, key: Key) -> Result<MsgQueue> {
        let object = Object::MsgKey(key);
        let flags = self.get.flags("msgget", &object, key, "queue")?;
        // SAFETY: msgget takes only integers.
        let id = unsafe { libc::msgget(key.value(), flags) };
        let id = check_rc("msgget", object, id)?;
        Ok(MsgQueue { id })
    }
}

/// The status of a message queue (`struct msqid_ds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgStat {
    /// Ownership and permissions.
    pub perm: Perm,
    /// The number of messages in the queue (`msg_qnum`).
    pub messages: usize,
    /// The bytes of message text in the queue (`msg_cbytes`).
    pub used_bytes: usize,
    /// The most bytes of message text the queue holds (`msg_qbytes`).
    pub qbytes: usize,
    /// The pid of the last sender (0 if none).
    pub lspid: i32,
    /// The pid of the last receiver (0 if none).
    pub lrpid: i32,
    /// The time of the last send, if any.
    pub stime: Option<SystemTime>,
    /// The time of the last receive, if any.
    pub rtime: Option<SystemTime>,
    /// The time the queue was created or last changed by `IPC_SET`.
    pub ctime: Option<SystemTime>,
}

/// A System V message queue, by id: a plain handle that owns nothing (see [`OwnedMsgQueue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsgQueue {
    id: i32,
}

impl MsgQueue {
    /// Options to create or open a queue.
    pub fn options() -> MsgOptions {
        MsgOptions::new()
    }

    /// `msgget(key, IPC_CREAT | 0600)` — opens the queue of `key`, creating it if there is none.
    pub fn create(key: Key) -> Result<MsgQueue> {
        MsgQueue::options().create(true).open(key)
    }

    /// `msgget(key, IPC_CREAT | IPC_EXCL | 0600)` — creates a queue, failing with
    /// `AlreadyExists` if `key` has one.
    pub fn create_exclusive(key: Key) -> Result<MsgQueue> {
        MsgQueue::options().exclusive(true).open(key)
    }

    /// `msgget(key, 0)` — opens the existing queue of `key` (`NotFound` if there is none).
    pub fn open(key: Key) -> Result<MsgQueue> {
        MsgQueue::options().open(key)
    }

    /// The queue with identifier `id` (as `ipcs -q` shows it, or as another process passed it). No
    /// system call is made; a wrong id fails at the first operation.
    pub const fn from_id(id: i32) -> MsgQueue {
        MsgQueue { id }
    }

    /// The queue's identifier.
    pub const fn id(&self) -> i32 {
        self.id
    }

    /// Turns the handle into one that removes the queue when dropped.
    pub fn into_owned(self) -> OwnedMsgQueue {
        OwnedMsgQueue(self)
    }

    fn object(&self) -> Object {
        Object::MsgId(self.id)
    }

    /// `msgsnd(msqid, msgp, msgsz, 0)` — appends a message of type `mtype` (> 0), waiting while
    /// the queue is full. A message larger than `msgmax` or than the queue's `qbytes` is refused
    /// with [`Error::TooLarge`] before the call.
    pub fn send(&self, mtype: i64, data: &[u8]) -> Result<()> {
        self.send_flags(mtype, data, 0).map(drop)
    }

    /// `msgsnd(msqid, msgp, msgsz, IPC_NOWAIT)` — appends a message if the queue has room;
    /// `Ok(false)` (nothing sent) if it is full. Limits are checked as by [`send`](Self::send).
    pub fn try_send(&self, mtype: i64, data: &[u8]) -> Result<bool> {
        self.send_flags(mtype, data, libc::IPC_NOWAIT)
    }

    fn send_flags(&self, mtype: i64, data: &[u8], flags: c_int) -> Result<bool> {
        const OP: &str = "msgsnd";
        if mtype <= 0 {
            return Err(Error::invalid(
                OP,
                self.object(),
                format!("message type {mtype} is not positive"),
            ));
        }
        let too_large = |limit, limit_name| Error::TooLarge {
            op: OP,
            object: self.object(),
            what: "message",
            len: data.len(),
            limit,
            limit_name,
        };
        let mtype = c_long::try_from(mtype).map_err(|_| {
            Error::invalid(
                OP,
                self.object(),
                format!("message type {mtype} is too large"),
            )
        })?;
        // struct msgbuf { long mtype; char mtext[]; } in `long` words, so mtype is aligned.
        let mut buf: Vec<c_long> = vec![0; 1 + data.len().div_ceil(std::mem::size_of::<c_long>())];
        buf[0] = mtype;
        bytemuck::cast_slice_mut::<c_long, u8>(&mut buf[1..])[..data.len()].copy_from_slice(data);
        // The fast path is one msgsnd. The limits are only looked up when the kernel refuses, so
        // that the error can name the limit: EINVAL for a message over msgmax, EAGAIN (without
        // waiting) for one that does not fit in the queue now, which never fits if it is larger
        // than the queue's qbytes; a blocking send would then wait for ever.
        let err = match msgsnd_raw(self.id, &buf, data.len(), flags | libc::IPC_NOWAIT) {
            Ok(()) => return Ok(true),
            Err(err) => err,
        };
        match err.raw_os_error() {
            Some(libc::EAGAIN) => {
                // IPC_STAT needs read permission, which a sender may lack; then the check is
                // skipped.
                if let Ok(ds) = self.stat_raw(OP) {
                    let qbytes = ds.msg_qbytes as usize;
                    if data.len() > qbytes {
                        return Err(too_large(qbytes, "queue qbytes"));
                    }
                }
                if flags & libc::IPC_NOWAIT != 0 {
                    return Ok(false);
                }
                msgsnd_raw(self.id, &buf, data.len(), flags)
                    .map(|()| true)
                    .map_err(|err| Error::os(OP, self.object(), err))
            }
            Some(libc::EINVAL) => match msgmax() {
                Some(max) if data.len() > max => Err(too_large(max, "msgmax")),
                _ => Err(Error::os(OP, self.object(), err)),
            },
            _ => Err(Error::os(OP, self.object(), err)),
        }
    }

    /// `msgrcv(msqid, msgp, msgmax, selector, 0)` — takes a message, waiting until one matches.
    /// `selector` 0 takes the first message; > 0 the first of that type; < 0 the first of the
    /// lowest type up to `|selector|`. A message longer than `msgmax` is an error, as in
    /// [`recv_with`](Self::recv_with).
    pub fn recv(&self, selector: i64) -> Result<Message> {
        match self.recv_with(selector, RecvOptions::new())? {
            Some(m) => Ok(m),
            // Only IPC_NOWAIT gives ENOMSG, and it was not set.
            None => Err(Error::os(
                "msgrcv",
                self.object(),
                io::Error::from_raw_os_error(libc::ENOMSG),
            )),
        }
    }

    /// `msgrcv(msqid, msgp, max_len, selector, flags)` — takes a message as `options` say: the
    /// selector as for [`recv`](Self::recv) (or, with [`RecvOptions::except`], the first message of
    /// another type than `selector`); `Ok(None)` with [`RecvOptions::nowait`] when no message
    /// matches. A message longer than `max_len` fails with an error saying it is larger than the
    /// buffer (E2BIG, kind `ArgumentListTooLong`) and stays queued, unless
    /// [`RecvOptions::truncate`] cuts it.
    pub fn recv_with(&self, selector: i64, options: RecvOptions) -> Result<Option<Message>> {
        const OP: &str = "msgrcv";
        if options.except && selector <= 0 {
            return Err(Error::invalid(
                OP,
                self.object(),
                format!("except needs a positive message type, not {selector}"),
            ));
        }
        let selector = c_long::try_from(selector).map_err(|_| {
            Error::invalid(
                OP,
                self.object(),
                format!("selector {selector} is out of range"),
            )
        })?;
        let max_len = match options.max_len.or_else(msgmax) {
            Some(n) => n,
            None => {
                return Err(Error::invalid(
                    OP,
                    self.object(),
                    format!("{MSGMAX_PATH} is unreadable: give max_len"),
                ))
            }
        };
        let words = max_len
            .div_ceil(std::mem::size_of::<c_long>())
            .checked_add(1);
        let mut buf: Vec<c_long> = Vec::new();
        match words {
            Some(w) if buf.try_reserve_exact(w).is_ok() => buf.resize(w, 0),
            _ => {
                return Err(Error::invalid(
                    OP,
                    self.object(),
                    format!("cannot allocate a receive buffer of {max_len} bytes"),
                ))
            }
        }
        let mut flags = 0;
        if options.nowait {
            flags |= libc::IPC_NOWAIT;
        }
        if options.truncate {
            flags |= libc::MSG_NOERROR;
        }
        if options.except {
            flags |= libc::MSG_EXCEPT;
        }
        loop {
            // SAFETY: `buf` is a long followed by at least `max_len` writable bytes, which is what
            // msgrcv may write for msgsz = max_len.
            let n =
                unsafe { libc::msgrcv(self.id, buf.as_mut_ptr().cast(), max_len, selector, flags) };
            if n >= 0 {
                let bytes = bytemuck::cast_slice::<c_long, u8>(&buf[1..]);
                // The kernel never reports more than msgsz; min() keeps a bad count harmless.
                let len = (n as usize).min(max_len);
                return Ok(Some(Message {
                    mtype: buf[0],
                    data: bytes[..len].to_vec(),
                }));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOMSG) if options.nowait => return Ok(None),
                Some(libc::E2BIG) => {
                    let text = format!(
                        "the message is larger than the buffer of {max_len} bytes (E2BIG); \
                         receive with a larger max_len, or truncate"
                    );
                    return Err(Error::os(
                        OP,
                        self.object(),
                        io::Error::new(err.kind(), text),
                    ));
                }
                _ => return Err(Error::os(OP, self.object(), err)),
            }
        }
    }

    /// `msgctl(msqid, IPC_STAT, buf)` — ownership, permissions, contents and times of the queue.
    pub fn stat(&self) -> Result<MsgStat> {
        let ds = self.stat_raw("msgctl(IPC_STAT)")?;
        Ok(MsgStat {
            perm: Perm::from_raw(&ds.msg_perm),
            messages: ds.msg_qnum as usize,
            used_bytes: ds.__msg_cbytes as usize,
            qbytes: ds.msg_qbytes as usize,
            lspid: ds.msg_lspid,
            lrpid: ds.msg_lrpid,
            stime: time_from_raw(ds.msg_stime),
            rtime: time_from_raw(ds.msg_rtime),
            ctime: time_from_raw(ds.msg_ctime),
        })
    }

    /// `msgctl(msqid, IPC_SET, buf)` — sets the most bytes of message text the queue holds (at
    /// least 1; raising it above `msgmnb` needs `CAP_SYS_RESOURCE`).
    pub fn set_qbytes(&self, qbytes: usize) -> Result<()> {
        const OP: &str = "msgctl(IPC_SET)";
        if qbytes == 0 {
            return Err(Error::invalid(
                OP,
                self.object(),
                "qbytes must be at least 1",
            ));
        }
        let mut ds = self.stat_raw(OP)?;
        ds.msg_qbytes = qbytes as libc::msglen_t;
        self.ipc_set(OP, &mut ds)
    }

    /// `msgctl(msqid, IPC_SET, buf)` — gives the queue to user `uid` and group `gid`.
    pub fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        const OP: &str = "msgctl(IPC_SET)";
        let mut ds = self.stat_raw(OP)?;
        ds.msg_perm.uid = uid;
        ds.msg_perm.gid = gid;
        self.ipc_set(OP, &mut ds)
    }

    /// `msgctl(msqid, IPC_SET, buf)` — changes the permission bits (only 0o777 are allowed).
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        const OP: &str = "msgctl(IPC_SET)";
        let mode = check_mode(OP, &self.object(), mode)?;
        let mut ds = self.stat_raw(OP)?;
        ds.msg_perm.mode = mode as libc::c_ushort;
        self.ipc_set(OP, &mut ds)
    }

    /// `msgctl(msqid, IPC_RMID, NULL)` — removes the queue now, with its messages; blocked senders
    /// and receivers fail with `EIDRM`.
    pub fn remove(&self) -> Result<()> {
        self.msgctl("msgctl(IPC_RMID)", libc::IPC_RMID, std::ptr::null_mut())
    }

    fn stat_raw(&self, op: &'static str) -> Result<libc::msqid_ds> {
        // SAFETY: msqid_ds is a C struct of integers (and padding); all zeroes is a valid value.
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        self.msgctl(op, libc::IPC_STAT, &mut ds)?;
        Ok(ds)
    }

    fn ipc_set(&self, op: &'static str, ds: &mut libc::msqid_ds) -> Result<()> {
        self.msgctl(op, libc::IPC_SET, ds)
    }

    /// The one place msgctl is called: `buf` is null (IPC_RMID) or points to a live `msqid_ds`.
    fn msgctl(&self, op: &'static str, cmd: c_int, buf: *mut libc::msqid_ds) -> Result<()> {
        // SAFETY: `buf` is null, which IPC_RMID ignores, or a live msqid_ds that IPC_STAT fills and
        // IPC_SET reads (see the callers).
        let rc = unsafe { libc::msgctl(self.id, cmd, buf) };
        check_rc(op, self.object(), rc).map(drop)
    }
}

/// A message queue that is removed (`IPC_RMID`) when this handle is dropped; derefs to
/// [`MsgQueue`]. Removal on drop ignores errors (the queue may already be gone).
#[derive(Debug)]
pub struct OwnedMsgQueue(MsgQueue);

impl OwnedMsgQueue {
    /// `msgctl(msqid, IPC_RMID, NULL)` — removes the queue now, reporting any error.
    pub fn remove(self) -> Result<()> {
        self.into_inner().remove()
    }

    /// Gives up ownership: the queue stays in the kernel after this returns.
    pub fn into_inner(self) -> MsgQueue {
        let q = self.0;
        std::mem::forget(self);
        q
    }
}

impl Deref for OwnedMsgQueue {
    type Target = MsgQueue;

    fn deref(&self) -> &MsgQueue {
        &self.0
    }
}

impl Drop for OwnedMsgQueue {
    fn drop(&mut self) {
        let _ = self.0.remove();
    }
}
