//! POSIX message queues: kernel-held queues of whole messages, each with a priority, that
//! unrelated processes open by name (`/name`) to send and receive.
//!
//! A receiver always gets the oldest message of the highest priority. Every queue has a fixed
//! capacity ([`Attr::max_messages`]) and message size ([`Attr::message_size`]) chosen at creation
//! within the limits of `/proc/sys/fs/mqueue` ([`limits`]). This module removes the hand work of
//! the C API: a message longer than the queue's message size is refused with [`Error::TooLarge`]
//! and a receive buffer shorter than it with an error that says so, both before the call; a
//! creation the kernel refuses because of a limit names that limit and its value; interrupted
//! calls (`EINTR`) are retried; timeouts are relative [`Duration`]s.
//!
//! Queues outlive their creator until unlinked ([`MessageQueue::unlink`], or an
//! [`OwnedMessageQueue`] dropped). On Linux they appear in `/dev/mqueue` when an `mqueue` file
//! system is mounted there, but nothing here needs it: `mq_open` works whether it is mounted or not.
//!
//! # References
//! [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html),
//! [mq_open(3)](https://man7.org/linux/man-pages/man3/mq_open.3.html),
//! [mq_send(3)](https://man7.org/linux/man-pages/man3/mq_send.3.html),
//! [mq_receive(3)](https://man7.org/linux/man-pages/man3/mq_receive.3.html),
//! [mq_getattr(3)](https://man7.org/linux/man-pages/man3/mq_getattr.3.html)

use std::error::Error as StdError;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::mem;
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use libc::{c_long, c_uint};
use rustix::process::{getrlimit, Resource};
use rustix::time::ClockId;

use crate::error::{Error, Object, Result};
use crate::mode::{check_mode, DEFAULT_MODE};
use crate::posix::sem::deadline;

/// Priorities run from 0 to `MQ_PRIO_MAX - 1` (Linux: 32768).
pub const MQ_PRIO_MAX: u32 = 32768;

/// The kernel's ceiling for `max_messages`, even for processes with `CAP_SYS_RESOURCE`.
const HARD_MSGMAX: usize = 65536;
/// The kernel's ceiling for `message_size`, even for processes with `CAP_SYS_RESOURCE`.
const HARD_MSGSIZEMAX: usize = 16 * 1024 * 1024;

/// Where the kernel publishes the limits of POSIX message queues.
const PROC_DIR: &str = "/proc/sys/fs/mqueue";

/// The attributes of a queue (`struct mq_attr`).
///
/// To create a queue only [`max_messages`](Self::max_messages) and
/// [`message_size`](Self::message_size) count (build it with [`Attr::new`]);
/// [`MessageQueue::attr`] fills in all four.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attr {
    /// The capacity: how many messages the queue holds before senders block (`mq_maxmsg`).
    pub max_messages: usize,
    /// The largest message, in bytes (`mq_msgsize`).
    pub message_size: usize,
    /// How many messages are in the queue now (`mq_curmsgs`).
    pub current_messages: usize,
    /// Whether this descriptor is non-blocking (`O_NONBLOCK` in `mq_flags`).
    pub nonblocking: bool,
}

impl Attr {
    /// The attributes of a queue to create: its capacity and largest message.
    pub const fn new(max_messages: usize, message_size: usize) -> Attr {
        Attr {
            max_messages,
            message_size,
            current_messages: 0,
            nonblocking: false,
        }
    }
}

/// The limits of POSIX message queues, from `/proc/sys/fs/mqueue`. Processes with
/// `CAP_SYS_RESOURCE` may exceed `msg_max`, `msgsize_max` and `queues_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest `max_messages` of a new queue (`msg_max`).
    pub msg_max: usize,
    /// The largest `message_size` of a new queue (`msgsize_max`).
    pub msgsize_max: usize,
    /// How many queues the system may hold (`queues_max`).
    pub queues_max: usize,
    /// The `max_messages` of a queue created without attributes (`msg_default`).
    pub msg_default: usize,
    /// The `message_size` of a queue created without attributes (`msgsize_default`).
    pub msgsize_default: usize,
}

/// Reads `/proc/sys/fs/mqueue/<name>`.
fn read_limit(name: &str) -> Result<usize> {
    let path = std::path::Path::new(PROC_DIR).join(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::os("read", Object::Path(path.as_path().into()), e))?;
    text.trim().parse().map_err(|_| {
        Error::os(
            "read",
            Object::Path(path.into()),
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a number: {text:?}"),
            ),
        )
    })
}

/// The current limits of POSIX message queues, read from `/proc/sys/fs/mqueue`.
pub fn limits() -> Result<Limits> {
    Ok(Limits {
        msg_max: read_limit("msg_max")?,
        msgsize_max: read_limit("msgsize_max")?,
        queues_max: read_limit("queues_max")?,
        msg_default: read_limit("msg_default")?,
        msgsize_default: read_limit("msgsize_default")?,
    })
}

/// An OS error explained by the kernel limit that caused it; the errno stays its source.
#[derive(Debug)]
struct LimitExceeded {
    explanation: String,
    cause: io::Error,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.explanation, self.cause)
    }
}

impl StdError for LimitExceeded {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.cause)
    }
}

/// Names the limit behind an `mq_open` failure that created a queue of `max_messages` ×
/// `message_size`, when a limit explains it; otherwise returns `cause` unchanged.
fn explain_open_error(cause: io::Error, max_messages: usize, message_size: usize) -> io::Error {
    let limit = |name: &str| read_limit(name).ok();
    let explanation = match cause.raw_os_error() {
        Some(libc::EINVAL) => {
            if max_messages > HARD_MSGMAX {
                Some(format!(
                    "max_messages {max_messages} exceeds the kernel's hard limit ({HARD_MSGMAX})"
                ))
            } else if message_size > HARD_MSGSIZEMAX {
                Some(format!(
                    "message_size {message_size} exceeds the kernel's hard limit ({HARD_MSGSIZEMAX} bytes)"
                ))
            } else if let Some(max) = limit("msg_max").filter(|&m| max_messages > m) {
                Some(format!(
                    "max_messages {max_messages} exceeds msg_max ({max}, {PROC_DIR}/msg_max; \
                     only CAP_SYS_RESOURCE may go beyond it)"
                ))
            } else {
                limit("msgsize_max")
                    .filter(|&m| message_size > m)
                    .map(|max| {
                        format!(
                            "message_size {message_size} exceeds msgsize_max ({max} bytes, \
                             {PROC_DIR}/msgsize_max; only CAP_SYS_RESOURCE may go beyond it)"
                        )
                    })
            }
        }
        Some(libc::ENOSPC) => limit("queues_max").map(|max| {
            format!(
                "the system has reached queues_max ({max} queues, {PROC_DIR}/queues_max; \
                 only CAP_SYS_RESOURCE may go beyond it)"
            )
        }),
        Some(libc::EMFILE) => {
            let show = |l: Option<u64>| l.map_or("unlimited".to_string(), |l| l.to_string());
            let msgqueue = show(getrlimit(Resource::Msgqueue).current);
            let nofile = show(getrlimit(Resource::Nofile).current);
            Some(format!(
                "either the queue's {} bytes of messages ({max_messages} × {message_size}, plus \
                 bookkeeping) exceed what is left of this user's RLIMIT_MSGQUEUE ({msgqueue} \
                 bytes for all its queues), or the process has no free descriptor \
                 (RLIMIT_NOFILE {nofile})",
                max_messages.saturating_mul(message_size)
            ))
        }
        _ => None,
    };
    match explanation {
        Some(explanation) => io::Error::new(cause.kind(), LimitExceeded { explanation, cause }),
        None => cause,
    }
}

/// How a descriptor may use the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
}

/// Options to create or open a message queue, like memmap2's `MmapOptions`.
///
/// Defaults: mode [`DEFAULT_MODE`] (0600), read and write access, blocking, neither create nor
/// exclusive, and no attributes — a created queue then gets the system's defaults
/// ([`Limits::msg_default`], [`Limits::msgsize_default`]).
///
/// ```no_run
/// use ipckit::posix::mq::MessageQueue;
/// let q = MessageQueue::options()
///     .max_messages(8)
///     .message_size(256)
///     .exclusive(true)
///     .write_only()
///     .open("/jobs")?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MqOptions {
    mode: u32,
    max_messages: Option<usize>,
    message_size: Option<usize>,
    create: bool,
    exclusive: bool,
    access: Access,
    nonblocking: bool,
}

impl Default for MqOptions {
    fn default() -> Self {
        MqOptions::new()
    }
}

impl MqOptions {
    /// The default options (see the [type documentation](MqOptions)).
    pub fn new() -> MqOptions {
        MqOptions {
            mode: DEFAULT_MODE,
            max_messages: None,
            message_size: None,
            create: false,
            exclusive: false,
            access: Access::ReadWrite,
            nonblocking: false,
        }
    }

    /// The permission bits (at most 0o777, default 0600) of a queue this call creates; the
    /// process umask is applied, as for a file.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// The capacity (at least 1) of a queue this call creates. Unprivileged processes may ask for
    /// at most [`Limits::msg_max`]. Without it, `msg_default` is used.
    pub fn max_messages(&mut self, max_messages: usize) -> &mut Self {
        self.max_messages = Some(max_messages);
        self
    }

    /// The largest message in bytes (at least 1) of a queue this call creates. Unprivileged
    /// processes may ask for at most [`Limits::msgsize_max`]. Without it, `msgsize_default` is
    /// used.
    pub fn message_size(&mut self, message_size: usize) -> &mut Self {
        self.message_size = Some(message_size);
        self
    }

    /// `O_CREAT`: create the queue if the name has none. An existing queue keeps its attributes.
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }

    /// `O_CREAT | O_EXCL`: create the queue, failing with `AlreadyExists` if the name is taken.
    /// Implies `create(true)`.
    pub fn exclusive(&mut self, exclusive: bool) -> &mut Self {
        self.exclusive = exclusive;
        self
    }

    /// `O_RDONLY`: open to receive only (needs read permission).
    pub fn read_only(&mut self) -> &mut Self {
        self.access = Access::Read;
        self
    }

    /// `O_WRONLY`: open to send only (needs write permission).
    pub fn write_only(&mut self) -> &mut Self {
        self.access = Access::Write;
        self
    }

    /// `O_RDWR`: open to send and receive (the default).
    pub fn read_write(&mut self) -> &mut Self {
        self.access = Access::ReadWrite;
        self
    }

    /// `O_NONBLOCK`: [`send`](MessageQueue::send) on a full queue and
    /// [`recv`](MessageQueue::recv) on an empty one fail with `WouldBlock` instead of waiting.
    /// Can be changed later with [`MessageQueue::set_nonblocking`].
    pub fn nonblocking(&mut self, nonblocking: bool) -> &mut Self {
        self.nonblocking = nonblocking;
        self
    }

    /// `mq_open(name, oflag, mode, &attr)` — creates or opens the queue `name` with these options.
    ///
    /// The name (one leading slash, no other), the mode (0o777) and the attributes (at least 1)
    /// are checked before the call. When the kernel refuses to create the queue because of a limit
    /// (`EINVAL` for `msg_max` / `msgsize_max`, `ENOSPC` for `queues_max`, `EMFILE` for
    /// `RLIMIT_MSGQUEUE`), the error names the limit and its value; the OS error is kept as its
    /// source and gives its [`kind`](Error::kind).
    pub fn open(&self, name: impl AsRef<OsStr>) -> Result<MessageQueue> {
        const OP: &str = "mq_open";
        let name = name.as_ref();
        let object = || mq_object(name);
        let c_name = crate::posix::c_name(OP, object(), name)?;
        let mode = check_mode(OP, &object(), self.mode)?;
        let creating = self.create || self.exclusive;
        let mut oflag = match self.access {
            Access::Read => libc::O_RDONLY,
            Access::Write => libc::O_WRONLY,
            Access::ReadWrite => libc::O_RDWR,
        };
        if creating {
            oflag |= libc::O_CREAT;
        }
        if self.exclusive {
            oflag |= libc::O_EXCL;
        }
        if self.nonblocking {
            oflag |= libc::O_NONBLOCK;
        }
        let attr = match (creating, self.max_messages, self.message_size) {
            (true, None, None) | (false, _, _) => None,
            (true, max, size) => Some(self.create_attr(name, max, size)?),
        };
        let attr_ptr = attr
            .as_ref()
            .map_or(std::ptr::null(), |a| a as *const libc::mq_attr);
        // SAFETY: `c_name` is NUL-terminated; the mode and attribute pointer are passed as the C
        // types mq_open reads with O_CREAT (mode_t, struct mq_attr *), and `attr_ptr` is null or
        // points to a live mq_attr that mq_open only reads.
        let mqd = unsafe { libc::mq_open(c_name.as_ptr(), oflag, mode as libc::mode_t, attr_ptr) };
        if mqd < 0 {
            let mut cause = io::Error::last_os_error();
            if creating {
                let (max, size) = match attr {
                    Some(a) => (a.mq_maxmsg as usize, a.mq_msgsize as usize),
                    None => (
                        read_limit("msg_default").unwrap_or(0),
                        read_limit("msgsize_default").unwrap_or(0),
                    ),
                };
                cause = explain_open_error(cause, max, size);
            }
            return Err(Error::os(OP, object(), cause));
        }
        let mut queue = MessageQueue {
            mqd,
            name: name.to_owned(),
            access: self.access,
            max_messages: 0,
            message_size: 0,
        };
        // The capacity and message size are fixed at creation: read them once. Dropping `queue`
        // closes it if this fails.
        let attr = queue.attr()?;
        queue.max_messages = attr.max_messages;
        queue.message_size = attr.message_size;
        Ok(queue)
    }

    /// The `struct mq_attr` for creating a queue; a missing value is the system's default.
    fn create_attr(
        &self,
        name: &OsStr,
        max_messages: Option<usize>,
        message_size: Option<usize>,
    ) -> Result<libc::mq_attr> {
        const OP: &str = "mq_open";
        let object = || mq_object(name);
        let value = |given: Option<usize>, what: &str, default: &str| -> Result<c_long> {
            let v = match given {
                Some(v) => v,
                None => read_limit(default).map_err(|e| {
                    Error::invalid(
                        OP,
                        object(),
                        format!("{what} was not given and its default is unknown ({e})"),
                    )
                })?,
            };
            if v == 0 {
                return Err(Error::invalid(
                    OP,
                    object(),
                    format!("{what} must be at least 1"),
                ));
            }
            c_long::try_from(v)
                .map_err(|_| Error::invalid(OP, object(), format!("{what} {v} is too large")))
        };
        let max = value(max_messages, "max_messages", "msg_default")?;
        let size = value(message_size, "message_size", "msgsize_default")?;
        // SAFETY: mq_attr is a C struct of integers (and padding); all zeroes is a valid value.
        let mut attr: libc::mq_attr = unsafe { mem::zeroed() };
        attr.mq_maxmsg = max;
        attr.mq_msgsize = size;
        Ok(attr)
    }
}

/// A POSIX message queue, open in this process; closed (`mq_close`) when dropped.
///
/// The queue outlives every descriptor until it is unlinked ([`MessageQueue::unlink`], or an
/// [`OwnedMessageQueue`] dropped). Any thread may use the handle. On Linux a queue descriptor is a
/// file descriptor ([`AsFd`]): `poll` or `epoll` report it readable when a message waits and
/// writable when there is room. It is closed on `exec` (glibc opens it with `O_CLOEXEC`).
#[derive(Debug)]
pub struct MessageQueue {
    mqd: libc::mqd_t,
    name: OsString,
    access: Access,
    /// `mq_maxmsg`, fixed at creation.
    max_messages: usize,
    /// `mq_msgsize`, fixed at creation.
    message_size: usize,
}

/// The queue named `name`, as errors name it.
fn mq_object(name: &OsStr) -> Object {
    Object::PosixMq(crate::posix::display_name(name).into())
}

impl MessageQueue {
    /// Options to create or open a queue: mode, attributes, access, blocking.
    pub fn options() -> MqOptions {
        MqOptions::new()
    }

    /// `mq_open(name, O_RDWR | O_CREAT, 0600, &attr)` — opens the queue `name` for sending and
    /// receiving, creating it with `attr`'s capacity and message size if there is none (an
    /// existing queue keeps its own).
    pub fn create(name: impl AsRef<OsStr>, attr: Attr) -> Result<MessageQueue> {
        MessageQueue::options()
            .max_messages(attr.max_messages)
            .message_size(attr.message_size)
            .create(true)
            .open(name)
    }

    /// `mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &attr)` — creates the queue `name` with
    /// `attr`'s capacity and message size; fails with `AlreadyExists` if the name is taken.
    pub fn create_exclusive(name: impl AsRef<OsStr>, attr: Attr) -> Result<MessageQueue> {
        MessageQueue::options()
            .max_messages(attr.max_messages)
            .message_size(attr.message_size)
            .exclusive(true)
            .open(name)
    }

    /// `mq_open(name, O_RDWR)` — opens the existing queue `name` for sending and receiving;
    /// `NotFound` if there is none.
    pub fn open(name: impl AsRef<OsStr>) -> Result<MessageQueue> {
        MessageQueue::options().open(name)
    }

    /// `mq_unlink(name)` — removes the name at once; the queue itself goes away when the last
    /// descriptor is closed. `NotFound` if there is no such queue.
    pub fn unlink(name: impl AsRef<OsStr>) -> Result<()> {
        const OP: &str = "mq_unlink";
        let name = name.as_ref();
        let object = || mq_object(name);
        let c_name = crate::posix::c_name(OP, object(), name)?;
        // SAFETY: `c_name` is a NUL-terminated string that mq_unlink only reads.
        if unsafe { libc::mq_unlink(c_name.as_ptr()) } != 0 {
            return Err(Error::last_os(OP, object()));
        }
        Ok(())
    }

    /// The name this queue was opened with.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The queue's capacity (`mq_maxmsg`), fixed at creation.
    pub fn max_messages(&self) -> usize {
        self.max_messages
    }

    /// The queue's largest message in bytes (`mq_msgsize`), fixed at creation: the least a
    /// receive buffer must hold.
    pub fn message_size(&self) -> usize {
        self.message_size
    }

    /// A handle that also unlinks the name when dropped, for the process that owns the queue.
    pub fn into_owned(self) -> OwnedMessageQueue {
        OwnedMessageQueue(self)
    }

    fn object(&self) -> Object {
        mq_object(&self.name)
    }

    /// `mq_getattr(mqdes, &attr)` — capacity, message size, messages now queued, and whether this
    /// descriptor is non-blocking.
    pub fn attr(&self) -> Result<Attr> {
        // SAFETY: mq_attr is a C struct of integers (and padding); all zeroes is a valid value.
        let mut raw: libc::mq_attr = unsafe { mem::zeroed() };
        // SAFETY: `raw` is a writable mq_attr; the descriptor is open until drop.
        if unsafe { libc::mq_getattr(self.mqd, &mut raw) } != 0 {
            return Err(Error::last_os("mq_getattr", self.object()));
        }
        Ok(Attr {
            max_messages: raw.mq_maxmsg as usize,
            message_size: raw.mq_msgsize as usize,
            current_messages: raw.mq_curmsgs as usize,
            nonblocking: raw.mq_flags & c_long::from(libc::O_NONBLOCK) != 0,
        })
    }

    /// `mq_setattr(mqdes, &attr, NULL)` — makes this descriptor non-blocking (or blocking again).
    /// The setting belongs to the open descriptor: it affects every thread that uses it.
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<()> {
        // SAFETY: mq_attr is a C struct of integers (and padding); all zeroes is a valid value.
        let mut raw: libc::mq_attr = unsafe { mem::zeroed() };
        if nonblocking {
            raw.mq_flags = c_long::from(libc::O_NONBLOCK);
        }
        // SAFETY: `raw` is a live mq_attr that mq_setattr only reads (it uses mq_flags alone);
        // the old attributes are not asked for (NULL); the descriptor is open until drop.
        if unsafe { libc::mq_setattr(self.mqd, &raw, std::ptr::null_mut()) } != 0 {
            return Err(Error::last_os("mq_setattr", self.object()));
        }
        Ok(())
    }

    /// Checks a message before any send call: access, priority, size.
    fn check_send(&self, op: &'static str, data: &[u8], priority: u32) -> Result<()> {
        if self.access == Access::Read {
            return Err(Error::invalid(
                op,
                self.object(),
                "the queue was opened read-only",
            ));
        }
        if priority >= MQ_PRIO_MAX {
            return Err(Error::invalid(
                op,
                self.object(),
                format!("priority {priority} is not below MQ_PRIO_MAX ({MQ_PRIO_MAX})"),
            ));
        }
        if data.len() > self.message_size {
            return Err(Error::TooLarge {
                op,
                object: self.object(),
                what: "message",
                len: data.len(),
                limit: self.message_size,
                limit_name: "message size",
            });
        }
        Ok(())
    }

    /// Checks a receive buffer before any receive call: access, size.
    fn check_recv(&self, op: &'static str, buf: &[u8]) -> Result<()> {
        if self.access == Access::Write {
            return Err(Error::invalid(
                op,
                self.object(),
                "the queue was opened write-only",
            ));
        }
        if buf.len() < self.message_size {
            return Err(Error::invalid(
                op,
                self.object(),
                format!(
                    "a receive buffer of {} bytes is shorter than the queue's message size \
                     ({} bytes); the kernel would refuse it (EMSGSIZE)",
                    buf.len(),
                    self.message_size
                ),
            ));
        }
        Ok(())
    }

    /// One mq_send or mq_timedsend call (`abs: None` is mq_send).
    fn send_raw(&self, data: &[u8], priority: u32, abs: Option<&libc::timespec>) -> io::Result<()> {
        let rc = match abs {
            // SAFETY: `data` is readable for data.len() bytes; the descriptor is open until drop.
            None => unsafe {
                libc::mq_send(
                    self.mqd,
                    data.as_ptr().cast(),
                    data.len(),
                    priority as c_uint,
                )
            },
            // SAFETY: as above, and `abs` is a live timespec that mq_timedsend only reads.
            Some(abs) => unsafe {
                libc::mq_timedsend(
                    self.mqd,
                    data.as_ptr().cast(),
                    data.len(),
                    priority as c_uint,
                    abs,
                )
            },
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One mq_receive or mq_timedreceive call (`abs: None` is mq_receive): (length, priority).
    fn recv_raw(&self, buf: &mut [u8], abs: Option<&libc::timespec>) -> io::Result<(usize, u32)> {
        let mut priority: c_uint = 0;
        let len = match abs {
            // SAFETY: `buf` is writable for buf.len() bytes (the kernel writes at most that much);
            // `priority` is a writable unsigned int; the descriptor is open until drop.
            None => unsafe {
                libc::mq_receive(self.mqd, buf.as_mut_ptr().cast(), buf.len(), &mut priority)
            },
            // SAFETY: as above, and `abs` is a live timespec that mq_timedreceive only reads.
            Some(abs) => unsafe {
                libc::mq_timedreceive(
                    self.mqd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut priority,
                    abs,
                )
            },
        };
        if len < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((len as usize, priority))
    }

    /// `mq_send(mqdes, msg, len, priority)` — appends a message with `priority` (below
    /// [`MQ_PRIO_MAX`]), waiting while the queue is full. A message longer than the queue's
    /// [`message_size`](Self::message_size) is refused with [`Error::TooLarge`] before the call. On
    /// a non-blocking descriptor a full queue is an error of kind `WouldBlock`.
    pub fn send(&self, data: &[u8], priority: u32) -> Result<()> {
        const OP: &str = "mq_send";
        self.check_send(OP, data, priority)?;
        loop {
            match self.send_raw(data, priority, None) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(Error::os(OP, self.object(), e)),
            }
        }
    }

    /// `mq_timedsend(mqdes, msg, len, priority, {0, 0})` — appends a message if the queue has
    /// room; `Ok(false)` (nothing sent) if it is full. Checked as by [`send`](Self::send). An
    /// expired deadline rather than `O_NONBLOCK`, so the descriptor's mode is left alone.
    pub fn try_send(&self, data: &[u8], priority: u32) -> Result<bool> {
        const OP: &str = "mq_timedsend";
        self.check_send(OP, data, priority)?;
        let epoch = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        loop {
            match self.send_raw(data, priority, Some(&epoch)) {
                Ok(()) => return Ok(true),
                Err(e) => match e.raw_os_error() {
                    Some(libc::ETIMEDOUT | libc::EAGAIN) => return Ok(false),
                    Some(libc::EINTR) => continue,
                    _ => return Err(Error::os(OP, self.object(), e)),
                },
            }
        }
    }

    /// `mq_timedsend(mqdes, msg, len, priority, now + timeout)` — appends a message, waiting at
    /// most `timeout` for room; `Ok(false)` (nothing sent) if the queue stayed full. Checked as by
    /// [`send`](Self::send).
    ///
    /// The kernel takes the deadline on `CLOCK_REALTIME`. It is recomputed from a monotonic
    /// deadline before each call, and a call that times out early (the wall clock was set forward)
    /// is repeated; setting the clock back lengthens the wait by as much.
    pub fn send_timeout(&self, data: &[u8], priority: u32, timeout: Duration) -> Result<bool> {
        const OP: &str = "mq_timedsend";
        self.check_send(OP, data, priority)?;
        let timer = Timer::start(timeout);
        loop {
            let abs = timer.realtime_deadline();
            match self.send_raw(data, priority, Some(&abs)) {
                Ok(()) => return Ok(true),
                Err(e) => match e.raw_os_error() {
                    Some(libc::ETIMEDOUT) if timer.expired() => return Ok(false),
                    Some(libc::ETIMEDOUT | libc::EINTR) => continue,
                    Some(libc::EAGAIN) => return Ok(false),
                    _ => return Err(Error::os(OP, self.object(), e)),
                },
            }
        }
    }

    /// `mq_receive(mqdes, buf, len, &priority)` — takes the oldest message of the highest
    /// priority into `buf`, waiting while the queue is empty; returns its length and priority.
    /// `buf` must hold at least [`message_size`](Self::message_size) bytes (checked before the
    /// call). On a non-blocking descriptor an empty queue is an error of kind `WouldBlock`.
    pub fn recv(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        const OP: &str = "mq_receive";
        self.check_recv(OP, buf)?;
        loop {
            match self.recv_raw(buf, None) {
                Ok(got) => return Ok(got),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(Error::os(OP, self.object(), e)),
            }
        }
    }

    /// `mq_receive(mqdes, buf, len, &priority)` into `buf`, which is resized to the queue's
    /// message size first and then to the message: `buf` holds exactly the message afterwards.
    /// Returns its priority.
    pub fn recv_vec(&self, buf: &mut Vec<u8>) -> Result<u32> {
        buf.resize(self.message_size, 0);
        let result = self.recv(buf);
        let len = result.as_ref().map_or(0, |&(len, _)| len);
        buf.truncate(len);
        result.map(|(_, priority)| priority)
    }

    /// `mq_timedreceive(mqdes, buf, len, &priority, {0, 0})` — takes a message if one is queued;
    /// `Ok(None)` if the queue is empty. `buf` is checked as by [`recv`](Self::recv).
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<Option<(usize, u32)>> {
        const OP: &str = "mq_timedreceive";
        self.check_recv(OP, buf)?;
        let epoch = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        loop {
            match self.recv_raw(buf, Some(&epoch)) {
                Ok(got) => return Ok(Some(got)),
                Err(e) => match e.raw_os_error() {
                    Some(libc::ETIMEDOUT | libc::EAGAIN) => return Ok(None),
                    Some(libc::EINTR) => continue,
                    _ => return Err(Error::os(OP, self.object(), e)),
                },
            }
        }
    }

    /// `mq_timedreceive(mqdes, buf, len, &priority, now + timeout)` — takes a message, waiting at
    /// most `timeout`; `Ok(None)` if the queue stayed empty. `buf` is checked as by
    /// [`recv`](Self::recv); the deadline is handled as by [`send_timeout`](Self::send_timeout).
    pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<(usize, u32)>> {
        const OP: &str = "mq_timedreceive";
        self.check_recv(OP, buf)?;
        let timer = Timer::start(timeout);
        loop {
            let abs = timer.realtime_deadline();
            match self.recv_raw(buf, Some(&abs)) {
                Ok(got) => return Ok(Some(got)),
                Err(e) => match e.raw_os_error() {
                    Some(libc::ETIMEDOUT) if timer.expired() => return Ok(None),
                    Some(libc::ETIMEDOUT | libc::EINTR) => continue,
                    Some(libc::EAGAIN) => return Ok(None),
                    _ => return Err(Error::os(OP, self.object(), e)),
                },
            }
        }
    }

    /// `mq_close(mqdes)` — closes now, reporting the error that drop would ignore.
    pub fn close(self) -> Result<()> {
        let this = mem::ManuallyDrop::new(self);
        // SAFETY: the descriptor is open (closed only here or in drop, and `this` is never
        // dropped).
        let rc = unsafe { libc::mq_close(this.mqd) };
        let result = if rc != 0 {
            Err(Error::last_os("mq_close", this.object()))
        } else {
            Ok(())
        };
        // SAFETY: `this.name` is read out once and `this` is forgotten, so it is not freed twice.
        drop(unsafe { std::ptr::read(&this.name) });
        result
    }
}

/// A relative timeout measured on the monotonic clock, converted to the `CLOCK_REALTIME`
/// deadlines the `mq_timed*` calls take.
struct Timer {
    /// `None`: too far to represent, so never.
    end: Option<Instant>,
    timeout: Duration,
}

impl Timer {
    fn start(timeout: Duration) -> Timer {
        Timer {
            end: Instant::now().checked_add(timeout),
            timeout,
        }
    }

    fn remaining(&self) -> Duration {
        match self.end {
            Some(end) => end.saturating_duration_since(Instant::now()),
            None => self.timeout,
        }
    }

    fn expired(&self) -> bool {
        self.remaining().is_zero()
    }

    fn realtime_deadline(&self) -> libc::timespec {
        deadline(ClockId::Realtime, self.remaining())
    }
}

impl AsRawFd for MessageQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.mqd
    }
}

impl AsFd for MessageQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: on Linux an mqd_t is a file descriptor, open until this handle is dropped,
        // which the borrow cannot outlive.
        unsafe { BorrowedFd::borrow_raw(self.mqd) }
    }
}

impl Drop for MessageQueue {
    fn drop(&mut self) {
        // SAFETY: the descriptor is open and no borrow of it outlives `self`.
        unsafe { libc::mq_close(self.mqd) };
    }
}

/// A [`MessageQueue`] whose name is unlinked (`mq_unlink`) when this handle is dropped, errors
/// ignored; then it is closed. Dereferences to [`MessageQueue`].
#[derive(Debug)]
pub struct OwnedMessageQueue(MessageQueue);

impl OwnedMessageQueue {
    /// Gives up ownership: the name is no longer unlinked on drop.
    pub fn into_inner(mut self) -> MessageQueue {
        let inner = MessageQueue {
            mqd: self.0.mqd,
            name: mem::take(&mut self.0.name),
            access: self.0.access,
            max_messages: self.0.max_messages,
            message_size: self.0.message_size,
        };
        // Neither unlink nor close: `inner` now closes the descriptor.
        mem::forget(self);
        inner
    }

    /// `mq_unlink(name)` now, reporting the error that drop would ignore; then closes.
    pub fn unlink(self) -> Result<()> {
        let queue = self.into_inner();
        MessageQueue::unlink(&queue.name)
    }
}

impl Deref for OwnedMessageQueue {
    type Target = MessageQueue;

    fn deref(&self) -> &MessageQueue {
        &self.0
    }
}

impl Drop for OwnedMessageQueue {
    fn drop(&mut self) {
        let _ = MessageQueue::unlink(&self.0.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn einval_beyond_msg_max_names_it() {
        let Ok(max) = read_limit("msg_max") else {
            return; // no /proc: nothing to explain with
        };
        if max >= HARD_MSGMAX {
            return;
        }
        let e = explain_open_error(io::Error::from_raw_os_error(libc::EINVAL), max + 1, 1);
        let text = e.to_string();
        assert!(text.contains(&format!("msg_max ({max}")), "{text}");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let source = e.get_ref().and_then(|inner| inner.source());
        assert!(source.is_some(), "the errno is kept as the source");
    }

    #[test]
    fn errors_no_limit_explains_stay_as_they_are() {
        let e = explain_open_error(io::Error::from_raw_os_error(libc::EACCES), 1, 1);
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        let e = explain_open_error(io::Error::from_raw_os_error(libc::EINVAL), 1, 1);
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
}
