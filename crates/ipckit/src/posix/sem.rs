//! POSIX semaphores: counters that threads and processes decrement (wait) and increment (post),
//! either named (`/name`, opened by unrelated processes) or unnamed (a `sem_t` placed in memory the
//! processes share).
//!
//! A [`NamedSemaphore`] is opened by name with [`sem_open`], closed when dropped and removed with
//! [`NamedSemaphore::unlink`] (or by an [`OwnedNamedSemaphore`] when it is dropped); glibc keeps it
//! as the file `/dev/shm/sem.<name>`. An unnamed semaphore lives in a slot of shared memory
//! ([`RawSemaphore::init_in`] and [`RawSemaphore::from_region`]; [`Semaphore::init_at`] is the raw,
//! unsafe form). Interrupted waits (`EINTR`) are retried and timed waits measure time on
//! `CLOCK_MONOTONIC`, so setting the wall clock does not change them.
//!
//! # The trap: initialising twice, destroying while in use
//! POSIX leaves undefined what happens when a semaphore that someone uses is initialised again or
//! destroyed, and the C API cannot tell a fresh `sem_t` from a used one. [`RawSemaphore`] puts a
//! state word before the `sem_t`, so a slot is initialised exactly once (a second
//! [`init_in`](RawSemaphore::init_in) fails), opened only once it is ready, and destroyed only by
//! the handle that initialised it, when that handle is dropped.
//!
//! Which of ipckit's three semaphores to pick, and why: see [the crate documentation](crate#which-semaphore).
//!
//! # References
//! [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html),
//! [sem_open(3)](https://man7.org/linux/man-pages/man3/sem_open.3.html),
//! [sem_init(3)](https://man7.org/linux/man-pages/man3/sem_init.3.html),
//! [sem_wait(3)](https://man7.org/linux/man-pages/man3/sem_wait.3.html),
//! [sem_post(3)](https://man7.org/linux/man-pages/man3/sem_post.3.html)
//!
//! [`sem_open`]: https://man7.org/linux/man-pages/man3/sem_open.3.html

use std::cell::UnsafeCell;
use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::io;
use std::mem;
use std::ops::Deref;
use std::ptr::NonNull;
use std::time::Duration;

use libc::{c_int, c_uint};
use rustix::time::ClockId;

use crate::error::{Error, Object, Result};
use crate::mode::{check_mode, DEFAULT_MODE};
use crate::once::{Once, INITIALISING, READY, UNINIT};
use crate::shared::SharedRegion;

/// The largest value a POSIX semaphore can hold (`SEM_VALUE_MAX`; glibc's is `INT_MAX`).
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

/// The longest name of a named semaphore, in bytes after the leading slash. glibc keeps `/name` as
/// the file `/dev/shm/sem.name`, so the `sem.` prefix takes 4 of the file name's `NAME_MAX` (255).
pub const SEM_NAME_MAX: usize = super::NAME_MAX - 4;

// libc 0.2 does not declare sem_clockwait(3); glibc exports it since 2.30. 64-bit targets only:
// there `struct timespec` has a 64-bit `time_t` and no `__sem_clockwait64` redirection is involved.
extern "C" {
    fn sem_clockwait(
        sem: *mut libc::sem_t,
        clockid: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> c_int;
}

/// The absolute time `timeout` from now on `clock`, as the timed waits of semaphores and message
/// queues take it. Saturates instead of overflowing, so `Duration::MAX` means "for ever".
pub(crate) fn deadline(clock: ClockId, timeout: Duration) -> libc::timespec {
    let now = rustix::time::clock_gettime(clock);
    add_timeout(now.tv_sec, now.tv_nsec, timeout)
}

/// `sec.nsec + timeout`, normalised (`tv_nsec < 10⁹`) and saturated at `time_t::MAX` seconds.
fn add_timeout(sec: i64, nsec: i64, timeout: Duration) -> libc::timespec {
    const NANOS: i64 = 1_000_000_000;
    let mut sec = sec.saturating_add(i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX));
    let mut nsec = nsec + i64::from(timeout.subsec_nanos());
    if nsec >= NANOS {
        nsec -= NANOS;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    }
}

/// Rejects an initial value the semaphore cannot hold, before any call.
fn check_value(op: &'static str, object: impl FnOnce() -> Object, value: u32) -> Result<c_uint> {
    if value > SEM_VALUE_MAX {
        return Err(Error::invalid(
            op,
            object(),
            format!("initial value {value} exceeds SEM_VALUE_MAX ({SEM_VALUE_MAX})"),
        ));
    }
    Ok(value)
}

/// A pointer to a live, initialised `sem_t`: the operations every kind of semaphore shares.
///
/// Invariant (from [`SemPtr::new`]): the `sem_t` was initialised by `sem_init` or `sem_open` and
/// stays mapped while this value is used.
#[derive(Clone, Copy)]
struct SemPtr(NonNull<libc::sem_t>);

impl SemPtr {
    /// # Safety
    /// `sem` points to a `sem_t` initialised by `sem_init` or `sem_open` that stays mapped (and is
    /// neither destroyed nor closed) for as long as the returned value is used.
    unsafe fn new(sem: NonNull<libc::sem_t>) -> SemPtr {
        SemPtr(sem)
    }

    fn wait(self, object: impl Fn() -> Object) -> Result<()> {
        loop {
            // SAFETY: the type's invariant: a live, initialised sem_t.
            if unsafe { libc::sem_wait(self.0.as_ptr()) } == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::os("sem_wait", object(), e));
            }
        }
    }

    fn try_wait(self, object: impl Fn() -> Object) -> Result<bool> {
        loop {
            // SAFETY: the type's invariant: a live, initialised sem_t.
            if unsafe { libc::sem_trywait(self.0.as_ptr()) } == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(false),
                Some(libc::EINTR) => continue,
                _ => return Err(Error::os("sem_trywait", object(), e)),
            }
        }
    }

    fn wait_timeout(self, timeout: Duration, object: impl Fn() -> Object) -> Result<bool> {
        // One absolute deadline: a wait interrupted by a signal resumes with what is left of it.
        let at = deadline(ClockId::Monotonic, timeout);
        loop {
            // SAFETY: the type's invariant: a live, initialised sem_t; `at` is a live timespec
            // that sem_clockwait only reads.
            let rc = unsafe { sem_clockwait(self.0.as_ptr(), libc::CLOCK_MONOTONIC, &at) };
            if rc == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ETIMEDOUT) => return Ok(false),
                Some(libc::EINTR) => continue,
                _ => return Err(Error::os("sem_clockwait", object(), e)),
            }
        }
    }

    fn post(self, object: impl Fn() -> Object) -> Result<()> {
        // SAFETY: the type's invariant: a live, initialised sem_t.
        if unsafe { libc::sem_post(self.0.as_ptr()) } != 0 {
            return Err(Error::last_os("sem_post", object()));
        }
        Ok(())
    }

    fn value(self, object: impl Fn() -> Object) -> Result<u32> {
        let mut value: c_int = 0;
        // SAFETY: the type's invariant: a live, initialised sem_t; `value` is a writable int.
        if unsafe { libc::sem_getvalue(self.0.as_ptr(), &mut value) } != 0 {
            return Err(Error::last_os("sem_getvalue", object()));
        }
        // glibc reports 0, never a negative count of waiters, when the semaphore is taken.
        Ok(value.max(0) as u32)
    }
}

// ---------------------------------------------------------------------------------------------
// Named semaphores
// ---------------------------------------------------------------------------------------------

/// Options to create or open a named semaphore, like memmap2's `MmapOptions`.
///
/// Defaults: mode [`DEFAULT_MODE`] (0600), initial value 0, neither create nor exclusive, so
/// `NamedSemaphore::options().open(name)` opens an existing semaphore.
///
/// ```no_run
/// use ipckit::posix::sem::NamedSemaphore;
/// let sem = NamedSemaphore::options().value(1).mode(0o640).exclusive(true).open("/my-lock")?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct NamedSemOptions {
    mode: u32,
    value: u32,
    create: bool,
    exclusive: bool,
}

impl Default for NamedSemOptions {
    fn default() -> Self {
        NamedSemOptions::new()
    }
}

impl NamedSemOptions {
    /// The default options (see the [type documentation](NamedSemOptions)).
    pub fn new() -> NamedSemOptions {
        NamedSemOptions {
            mode: DEFAULT_MODE,
            value: 0,
            create: false,
            exclusive: false,
        }
    }

    /// The permission bits (at most 0o777, default 0600) of a semaphore this call creates; the
    /// process umask is applied, as for a file. Every user of a semaphore needs read and write
    /// permission.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// The initial value (at most [`SEM_VALUE_MAX`], default 0) of a semaphore this call creates.
    /// An existing semaphore keeps its value.
    pub fn value(&mut self, value: u32) -> &mut Self {
        self.value = value;
        self
    }

    /// `O_CREAT`: create the semaphore if the name has none.
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }

    /// `O_CREAT | O_EXCL`: create the semaphore, failing with `AlreadyExists` if the name is
    /// taken. Implies `create(true)`.
    pub fn exclusive(&mut self, exclusive: bool) -> &mut Self {
        self.exclusive = exclusive;
        self
    }

    /// `sem_open(name, oflag, mode, value)` — creates or opens the semaphore `name` with these
    /// options.
    ///
    /// The name is checked before the call: one leading slash, no other, at most
    /// [`SEM_NAME_MAX`] bytes after it. So are the mode (0o777) and the value
    /// ([`SEM_VALUE_MAX`]).
    pub fn open(&self, name: impl AsRef<OsStr>) -> Result<NamedSemaphore> {
        const OP: &str = "sem_open";
        let name = name.as_ref();
        let object = || sem_object(name);
        let c_name = sem_name(OP, name)?;
        let mode = check_mode(OP, &object(), self.mode)?;
        let value = check_value(OP, object, self.value)?;
        let mut oflag = 0;
        if self.create || self.exclusive {
            oflag |= libc::O_CREAT;
        }
        if self.exclusive {
            oflag |= libc::O_EXCL;
        }
        // SAFETY: `c_name` is a NUL-terminated string; sem_open reads the mode and value only
        // with O_CREAT, and both are passed as the C types it reads (mode_t, unsigned int).
        let sem = unsafe { libc::sem_open(c_name.as_ptr(), oflag, mode as libc::mode_t, value) };
        let sem = match NonNull::new(sem) {
            Some(sem) if sem.as_ptr() != libc::SEM_FAILED => sem,
            _ => return Err(Error::last_os(OP, object())),
        };
        Ok(NamedSemaphore {
            // SAFETY: sem_open returned a mapped, initialised semaphore, which stays so until
            // sem_close in drop.
            sem: unsafe { SemPtr::new(sem) },
            name: name.to_owned(),
        })
    }
}

/// Checks a semaphore name and converts it for the C call.
fn sem_name(op: &'static str, name: &OsStr) -> Result<CString> {
    let object = || sem_object(name);
    let c_name = crate::posix::c_name(op, object(), name)?;
    let len = name.len().saturating_sub(1);
    if len > SEM_NAME_MAX {
        return Err(Error::invalid(
            op,
            object(),
            format!(
                "name of {len} bytes after the slash exceeds SEM_NAME_MAX ({SEM_NAME_MAX}): \
                 glibc adds \"sem.\" to make the file name in /dev/shm"
            ),
        ));
    }
    Ok(c_name)
}

/// The semaphore named `name`, as errors name it.
fn sem_object(name: &OsStr) -> Object {
    Object::PosixSem(crate::posix::display_name(name).into())
}

/// A named POSIX semaphore, open in this process; closed (`sem_close`) when dropped.
///
/// The semaphore itself outlives every handle until it is unlinked ([`NamedSemaphore::unlink`], or
/// an [`OwnedNamedSemaphore`] dropped); an unlinked semaphore stays usable by those who have it
/// open. Any thread may use the handle: `sem_t` operations are thread-safe.
pub struct NamedSemaphore {
    sem: SemPtr,
    name: OsString,
}

// SAFETY: the semaphore is mapped into the process, not a thread, and sem_wait, sem_post, … are
// thread-safe (POSIX requires it); sem_close may run on any thread.
unsafe impl Send for NamedSemaphore {}
// SAFETY: see Send: every operation through `&NamedSemaphore` is a thread-safe sem_* call.
unsafe impl Sync for NamedSemaphore {}

impl fmt::Debug for NamedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedSemaphore")
            .field("name", &self.name)
            .finish()
    }
}

impl NamedSemaphore {
    /// Options to create or open a named semaphore: mode, value, create, exclusive.
    pub fn options() -> NamedSemOptions {
        NamedSemOptions::new()
    }

    /// `sem_open(name, O_CREAT, 0600, value)` — opens the semaphore `name`, creating it with
    /// `value` if there is none (an existing one keeps its value).
    pub fn create(name: impl AsRef<OsStr>, value: u32) -> Result<NamedSemaphore> {
        NamedSemaphore::options()
            .value(value)
            .create(true)
            .open(name)
    }

    /// `sem_open(name, O_CREAT | O_EXCL, 0600, value)` — creates the semaphore `name` with
    /// `value`; fails with `AlreadyExists` if the name is taken.
    pub fn create_exclusive(name: impl AsRef<OsStr>, value: u32) -> Result<NamedSemaphore> {
        NamedSemaphore::options()
            .value(value)
            .exclusive(true)
            .open(name)
    }

    /// `sem_open(name, 0)` — opens the existing semaphore `name`; `NotFound` if there is none.
    pub fn open(name: impl AsRef<OsStr>) -> Result<NamedSemaphore> {
        NamedSemaphore::options().open(name)
    }

    /// `sem_unlink(name)` — removes the name at once; the semaphore itself goes away when the last
    /// process that has it open closes it. `NotFound` if there is no such semaphore.
    pub fn unlink(name: impl AsRef<OsStr>) -> Result<()> {
        const OP: &str = "sem_unlink";
        let name = name.as_ref();
        let c_name = sem_name(OP, name)?;
        // SAFETY: `c_name` is a NUL-terminated string that sem_unlink only reads.
        if unsafe { libc::sem_unlink(c_name.as_ptr()) } != 0 {
            return Err(Error::last_os(OP, sem_object(name)));
        }
        Ok(())
    }

    /// The name this semaphore was opened with.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// A handle that also unlinks the name when dropped, for the process that owns the semaphore.
    pub fn into_owned(self) -> OwnedNamedSemaphore {
        OwnedNamedSemaphore(self)
    }

    fn object(&self) -> Object {
        sem_object(&self.name)
    }

    /// `sem_wait(sem)` — takes one, waiting while the value is zero.
    pub fn wait(&self) -> Result<()> {
        self.sem.wait(|| self.object())
    }

    /// `sem_trywait(sem)` — takes one if the value is positive; `Ok(false)` if it is zero.
    pub fn try_wait(&self) -> Result<bool> {
        self.sem.try_wait(|| self.object())
    }

    /// `sem_clockwait(sem, CLOCK_MONOTONIC, now + timeout)` — takes one, waiting at most
    /// `timeout`; `Ok(false)` if the value stayed zero that long.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.sem.wait_timeout(timeout, || self.object())
    }

    /// `sem_post(sem)` — gives one, waking a waiter. Fails with `EOVERFLOW` at [`SEM_VALUE_MAX`].
    pub fn post(&self) -> Result<()> {
        self.sem.post(|| self.object())
    }

    /// `sem_getvalue(sem, &value)` — the current value (0 while processes wait). It may have
    /// changed by the time it is returned.
    pub fn value(&self) -> Result<u32> {
        self.sem.value(|| self.object())
    }

    /// `sem_close(sem)` — closes now, reporting the error that drop would ignore.
    pub fn close(self) -> Result<()> {
        let this = mem::ManuallyDrop::new(self);
        // SAFETY: the semaphore is open (closed only here or in drop, and `this` is never dropped
        // nor used again).
        let rc = unsafe { libc::sem_close(this.sem.0.as_ptr()) };
        let result = if rc != 0 {
            Err(Error::last_os("sem_close", this.object()))
        } else {
            Ok(())
        };
        // SAFETY: `this.name` is read out once and `this` is forgotten, so it is not freed twice.
        drop(unsafe { std::ptr::read(&this.name) });
        result
    }
}

impl Drop for NamedSemaphore {
    fn drop(&mut self) {
        // SAFETY: the semaphore is open, and no reference into it outlives `self`.
        unsafe { libc::sem_close(self.sem.0.as_ptr()) };
    }
}

/// A [`NamedSemaphore`] whose name is unlinked (`sem_unlink`) when this handle is dropped, errors
/// ignored; then it is closed. Dereferences to [`NamedSemaphore`].
#[derive(Debug)]
pub struct OwnedNamedSemaphore(NamedSemaphore);

impl OwnedNamedSemaphore {
    /// Gives up ownership: the name is no longer unlinked on drop.
    pub fn into_inner(mut self) -> NamedSemaphore {
        let inner = NamedSemaphore {
            sem: self.0.sem,
            name: mem::take(&mut self.0.name),
        };
        // Neither unlink nor close: `inner` now closes the semaphore.
        mem::forget(self);
        inner
    }

    /// `sem_unlink(name)` now, reporting the error that drop would ignore; then closes.
    pub fn unlink(self) -> Result<()> {
        let sem = self.into_inner();
        NamedSemaphore::unlink(&sem.name)
    }
}

impl Deref for OwnedNamedSemaphore {
    type Target = NamedSemaphore;

    fn deref(&self) -> &NamedSemaphore {
        &self.0
    }
}

impl Drop for OwnedNamedSemaphore {
    fn drop(&mut self) {
        let _ = NamedSemaphore::unlink(&self.0.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Unnamed semaphores
// ---------------------------------------------------------------------------------------------

/// An unnamed, process-shared POSIX semaphore: a `sem_t` in memory, used only through references.
///
/// [`RawSemaphore`] is the safe way to place one in shared memory. This type is the raw form: a
/// `sem_t` at an address the caller vouches for ([`Semaphore::init_at`], [`Semaphore::from_ptr`]),
/// for layouts shared with C programs that put a bare `sem_t` in a mapping.
///
/// # Trust
/// Any process that can write the memory can break the semaphore: give it any value, leave waiters
/// asleep or wake them, make calls fail with `EINVAL`, or even make glibc abort the process (it
/// treats unexpected futex errors as fatal). It cannot make this process read or write outside the
/// `sem_t`: every call gets the address of this one `sem_t`, and glibc's semaphore functions touch
/// nothing else. Share semaphores only with processes you trust to follow the protocol.
#[repr(transparent)]
pub struct Semaphore {
    sem: UnsafeCell<libc::sem_t>,
}

// SAFETY: the only access to the sem_t is through sem_* functions, which are thread-safe (POSIX
// requires it; glibc uses atomics and futexes).
unsafe impl Sync for Semaphore {}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("addr", &self.sem.get())
            .finish()
    }
}

impl Semaphore {
    /// The size in bytes of a `sem_t` (32 on 64-bit glibc).
    pub const SIZE: usize = mem::size_of::<libc::sem_t>();

    /// The alignment in bytes a `sem_t` needs (8 on 64-bit glibc).
    pub const ALIGN: usize = mem::align_of::<libc::sem_t>();

    /// `sem_init(ptr, 1, value)` — initialises a process-shared semaphore with `value` at `ptr`
    /// and returns a reference to it. A null or misaligned `ptr` and a value above
    /// [`SEM_VALUE_MAX`] are refused before the call.
    ///
    /// # Safety
    /// - `ptr` is valid for reads and writes of [`Semaphore::SIZE`] bytes for `'a`, in memory that
    ///   this process accesses only through the returned reference (and other `Semaphore`
    ///   references to the same address) during `'a`;
    /// - no thread or process uses a semaphore at `ptr` now (initialising one in use is undefined);
    /// - nobody calls [`destroy`](Self::destroy) on it while another reference is used.
    pub unsafe fn init_at<'a>(ptr: *mut u8, value: u32) -> Result<&'a Semaphore> {
        const OP: &str = "sem_init";
        let object = || unnamed_object(ptr);
        check_ptr(OP, ptr, object)?;
        let value = check_value(OP, object, value)?;
        // SAFETY: `ptr` is non-null, aligned (checked) and valid for SIZE bytes (the caller's
        // promise); pshared = 1 makes the semaphore usable from every process that maps it.
        if unsafe { libc::sem_init(ptr.cast(), 1, value) } != 0 {
            return Err(Error::last_os(OP, object()));
        }
        // SAFETY: as above; Semaphore is a transparent UnsafeCell<sem_t>, the sem_t now
        // initialised, and the caller promises the memory stays valid for 'a.
        Ok(unsafe { &*ptr.cast::<Semaphore>() })
    }

    /// The semaphore at `ptr`, initialised by `sem_init(ptr, 1, value)` in this or another
    /// process (by [`init_at`](Self::init_at) or by a C program). No call is made: nothing can tell
    /// whether the bytes hold a semaphore. A null or misaligned `ptr` is refused.
    ///
    /// # Safety
    /// `ptr` is valid for reads and writes of [`Semaphore::SIZE`] bytes for `'a`, holds an
    /// initialised process-shared semaphore that is not destroyed during `'a`, and this process
    /// accesses that memory only through `Semaphore` references during `'a`.
    pub unsafe fn from_ptr<'a>(ptr: *mut u8) -> Result<&'a Semaphore> {
        check_ptr("open", ptr, || unnamed_object(ptr))?;
        // SAFETY: non-null and aligned (checked), valid and initialised for 'a (the caller's
        // promise); Semaphore is a transparent UnsafeCell<sem_t>.
        Ok(unsafe { &*ptr.cast::<Semaphore>() })
    }

    /// `sem_destroy(sem)` — destroys the semaphore; the memory may then be reused or initialised
    /// again.
    ///
    /// # Safety
    /// The semaphore was initialised by `sem_init` (not opened with `sem_open`), no thread or
    /// process waits on it, and none uses it afterwards unless it is initialised again.
    pub unsafe fn destroy(&self) -> Result<()> {
        // SAFETY: the caller's promise above; the pointer comes from a live reference.
        if unsafe { libc::sem_destroy(self.sem.get()) } != 0 {
            return Err(Error::last_os("sem_destroy", self.object()));
        }
        Ok(())
    }

    /// The address of the `sem_t`, for C code that shares it.
    pub fn as_ptr(&self) -> *mut libc::sem_t {
        self.sem.get()
    }

    fn ops(&self) -> SemPtr {
        // SAFETY: a `&Semaphore` exists only for an initialised sem_t that stays mapped and
        // undestroyed while the reference lives (the contracts of init_at, from_ptr, RawSemaphore).
        unsafe { SemPtr::new(NonNull::from(self).cast()) }
    }

    fn object(&self) -> Object {
        unnamed_object(self.sem.get().cast())
    }

    /// `sem_wait(sem)` — takes one, waiting while the value is zero.
    pub fn wait(&self) -> Result<()> {
        self.ops().wait(|| self.object())
    }

    /// `sem_trywait(sem)` — takes one if the value is positive; `Ok(false)` if it is zero.
    pub fn try_wait(&self) -> Result<bool> {
        self.ops().try_wait(|| self.object())
    }

    /// `sem_clockwait(sem, CLOCK_MONOTONIC, now + timeout)` — takes one, waiting at most
    /// `timeout`; `Ok(false)` if the value stayed zero that long.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.ops().wait_timeout(timeout, || self.object())
    }

    /// `sem_post(sem)` — gives one, waking a waiter. Fails with `EOVERFLOW` at [`SEM_VALUE_MAX`].
    pub fn post(&self) -> Result<()> {
        self.ops().post(|| self.object())
    }

    /// `sem_getvalue(sem, &value)` — the current value (0 while processes wait).
    pub fn value(&self) -> Result<u32> {
        self.ops().value(|| self.object())
    }
}

fn unnamed_object(ptr: *const u8) -> Object {
    Object::Other(format!("unnamed POSIX semaphore at {ptr:p}").into())
}

fn check_ptr(op: &'static str, ptr: *mut u8, object: impl FnOnce() -> Object) -> Result<()> {
    if ptr.is_null() {
        return Err(Error::invalid(op, object(), "null address"));
    }
    if !(ptr as usize).is_multiple_of(Semaphore::ALIGN) {
        return Err(Error::invalid(
            op,
            object(),
            format!("a sem_t needs {}-byte alignment", Semaphore::ALIGN),
        ));
    }
    Ok(())
}

/// One semaphore slot in shared memory: a state word, then the `sem_t` at its alignment.
#[repr(C)]
struct Slot {
    /// The create-once state ([`crate::once`]): `UNINIT` (free), `INITIALISING` or `READY`.
    state: Once,
    sem: Semaphore,
}

// The slot's layout: the sem_t after the state word, at its own alignment; consecutive slots stay
// aligned.
const _: () = {
    assert!(mem::offset_of!(Slot, sem) >= mem::size_of::<Once>());
    assert!(mem::offset_of!(Slot, sem) % mem::align_of::<libc::sem_t>() == 0);
    assert!(mem::size_of::<Slot>() == mem::offset_of!(Slot, sem) + mem::size_of::<libc::sem_t>());
    assert!(mem::size_of::<Slot>().is_multiple_of(mem::align_of::<Slot>()));
};

// The slot's state word: UNINIT (free: fresh, zero-filled memory, and after destruction),
// INITIALISING (`init_in` won the slot and is calling `sem_init`), READY (the sem_t is
// initialised) — the crate's create-once protocol.

/// An unnamed, process-shared POSIX semaphore in a slot of shared memory: a handle that keeps
/// the memory mapped (it holds a clone of the [`SharedRegion`]). Dereferences to [`Semaphore`] for
/// `wait`, `post` and the rest.
///
/// A slot is [`SLOT_SIZE`](Self::SLOT_SIZE) bytes at an address aligned to
/// [`SLOT_ALIGN`](Self::SLOT_ALIGN) (any mapping's start is; so is every multiple of `SLOT_SIZE`
/// after it): a 4-byte state word, then the `sem_t` at byte [`SEM_OFFSET`](Self::SEM_OFFSET). The
/// state word makes the life cycle safe across processes:
///
/// - one process calls [`init_in`](Self::init_in) on zero-filled memory (a new mapping is): it
///   claims the slot atomically, so it initialises it exactly once — a second call, here or in
///   another process, fails;
/// - the others call [`from_region`](Self::from_region), which succeeds only once the slot is ready;
/// - the initialiser's handle destroys the semaphore when it is dropped (or by
///   [`destroy`](Self::destroy)) and marks the slot free again. Others must have stopped using it
///   by then: drop the initialiser's handle last, after the other processes are done.
///
/// The state word is shared memory too; see [`Semaphore`] for what a peer that writes the region
/// can and cannot do (the trust this type needs).
///
/// ```
/// use std::sync::Arc;
/// use ipckit::posix::sem::RawSemaphore;
/// use ipckit::shared::{HeapMemory, SharedRegion};
///
/// // HeapMemory stands in for shared memory (an Attachment, an Mmap).
/// let mut region = SharedRegion::new(Arc::new(HeapMemory::new(4096)))?;
/// let first = region.take(RawSemaphore::SLOT_SIZE, RawSemaphore::SLOT_ALIGN)?;
/// let sem = RawSemaphore::init_in(first, 1)?;
/// assert!(sem.try_wait()?);
/// assert!(!sem.try_wait()?);
/// # Ok::<(), ipckit::Error>(())
/// ```
pub struct RawSemaphore {
    slot: NonNull<Slot>,
    /// Keeps the slot mapped.
    region: SharedRegion,
    /// Whether this handle initialised the semaphore, and so destroys it when dropped.
    initialiser: bool,
}

// SAFETY: the handle gives only `&Slot` (atomics and a Sync Semaphore), kept alive by the
// region, which is Send + Sync.
unsafe impl Send for RawSemaphore {}
// SAFETY: as for Send.
unsafe impl Sync for RawSemaphore {}

impl fmt::Debug for RawSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSemaphore")
            .field("addr", &self.slot)
            .field("region", &self.region)
            .field("initialiser", &self.initialiser)
            .finish()
    }
}

impl RawSemaphore {
    /// The bytes one slot takes (40 on 64-bit glibc).
    pub const SLOT_SIZE: usize = mem::size_of::<Slot>();

    /// The alignment a slot needs (8 on 64-bit glibc).
    pub const SLOT_ALIGN: usize = mem::align_of::<Slot>();

    /// Where the `sem_t` starts in a slot (8 on 64-bit glibc), for C code that shares the layout.
    pub const SEM_OFFSET: usize = mem::offset_of!(Slot, sem);

    fn slot(&self) -> &Slot {
        // SAFETY: `Slot::at` checked that the slot fits in the region and is aligned; `region`
        // keeps it mapped while `self` lives; every bit pattern is a valid Slot, and every byte of
        // it is inside an atomic or an UnsafeCell, so `&Slot` claims nothing about bytes others
        // write.
        unsafe { self.slot.as_ref() }
    }

    /// `sem_init(sem, 1, value)` on the slot at the start of `region` — initialises a
    /// process-shared semaphore with `value`; the handle destroys it when dropped.
    ///
    /// Fails before any call if `region` is shorter than [`SLOT_SIZE`](Self::SLOT_SIZE),
    /// misaligned or read-only, if `value` exceeds [`SEM_VALUE_MAX`], and if the slot is not
    /// free: already initialised (here or by another process), or not zero-filled
    /// ([`Error::Corrupt`]).
    pub fn init_in(region: SharedRegion, value: u32) -> Result<RawSemaphore> {
        const OP: &str = "sem_init";
        let mut handle = RawSemaphore {
            slot: Slot::at(OP, &region)?,
            region,
            initialiser: false,
        };
        let slot = handle.slot();
        let object = || unnamed_object(slot.sem.sem.get().cast());
        check_value(OP, object, value)?;
        // The claim's Acquire: if another process had initialised and destroyed the slot, its
        // writes to the sem_t happen before ours.
        match slot.state.claim() {
            Ok(()) => {}
            Err(READY) | Err(INITIALISING) => {
                return Err(Error::invalid(
                    OP,
                    object(),
                    "the slot already holds a semaphore initialised by another handle; \
                     open it with RawSemaphore::from_region",
                ))
            }
            Err(other) => {
                return Err(Error::corrupt(
                    OP,
                    object(),
                    format!(
                        "slot state word is {other:#010x}: neither free (0) nor a semaphore; \
                         is the region zero-filled?"
                    ),
                ))
            }
        }
        // SAFETY: the slot lies inside the region (checked by Slot::at), which `handle` keeps
        // mapped for as long as any reference to the semaphore (borrowed from `handle`) lives;
        // this process touches the sem_t only through Semaphore references; winning the exchange
        // above means no handle uses a semaphore in this slot.
        match unsafe { Semaphore::init_at(slot.sem.sem.get().cast(), value) } {
            Ok(_) => {
                // Release: the initialised sem_t is visible to whoever sees READY.
                slot.state.publish();
                handle.initialiser = true;
                Ok(handle)
            }
            Err(e) => {
                slot.state.reset();
                Err(e)
            }
        }
    }

    /// Opens the semaphore another handle (in this or another process) initialised in the slot at
    /// the start of `region`. No call is made; the handle does not destroy the semaphore.
    ///
    /// Fails if `region` is shorter than [`SLOT_SIZE`](Self::SLOT_SIZE), misaligned or read-only,
    /// if the slot is not initialised yet (an invalid-argument error: call again once the
    /// initialiser is done), and with [`Error::Corrupt`] if its state word holds no known state.
    pub fn from_region(region: SharedRegion) -> Result<RawSemaphore> {
        const OP: &str = "open";
        let handle = RawSemaphore {
            slot: Slot::at(OP, &region)?,
            region,
            initialiser: false,
        };
        let slot = handle.slot();
        let object = || unnamed_object(slot.sem.sem.get().cast());
        // Acquire: pairs with the Release store of READY, so sem_init's writes are visible.
        match slot.state.state() {
            READY => Ok(handle),
            UNINIT | INITIALISING => Err(Error::invalid(
                OP,
                object(),
                "no semaphore is initialised in this slot yet (RawSemaphore::init_in does that)",
            )),
            other => Err(Error::corrupt(
                OP,
                object(),
                format!("slot state word is {other:#010x}, not a known state"),
            )),
        }
    }

    /// Whether this handle initialised the semaphore (and so destroys it when dropped).
    pub fn is_initialiser(&self) -> bool {
        self.initialiser
    }

    /// The region the slot was placed in.
    pub fn region(&self) -> &SharedRegion {
        &self.region
    }

    /// `sem_destroy(sem)` now for the initialiser's handle, reporting the error that drop would
    /// ignore, and marks the slot free; for any other handle, only lets go of the slot.
    pub fn destroy(mut self) -> Result<()> {
        let result = self.release();
        self.initialiser = false;
        result
    }

    fn release(&self) -> Result<()> {
        if !self.initialiser {
            return Ok(());
        }
        let slot = self.slot();
        // SAFETY: this handle initialised the semaphore with sem_init; the type's contract (see
        // the type documentation) is that other users have stopped by the time it is dropped.
        let result = unsafe { slot.sem.destroy() };
        // Release: the destruction happens before a later init_in claims the slot.
        slot.state.reset();
        result
    }
}

impl Slot {
    /// The slot at the start of `region`, checked for writability, size and alignment.
    fn at(op: &'static str, region: &SharedRegion) -> Result<NonNull<Slot>> {
        let ptr = region.as_ptr();
        let object = || unnamed_object(ptr);
        if !region.is_writable() {
            return Err(Error::invalid(
                op,
                object(),
                format!("{} is mapped read-only", region.object()),
            ));
        }
        if region.len() < RawSemaphore::SLOT_SIZE {
            return Err(Error::invalid(
                op,
                object(),
                format!(
                    "a semaphore slot needs {} bytes, the region has {}",
                    RawSemaphore::SLOT_SIZE,
                    region.len()
                ),
            ));
        }
        if !(ptr as usize).is_multiple_of(RawSemaphore::SLOT_ALIGN) {
            return Err(Error::invalid(
                op,
                object(),
                format!(
                    "a semaphore slot needs {}-byte alignment",
                    RawSemaphore::SLOT_ALIGN
                ),
            ));
        }
        NonNull::new(ptr.cast::<Slot>()).ok_or_else(|| Error::invalid(op, object(), "null address"))
    }
}

impl Deref for RawSemaphore {
    type Target = Semaphore;

    fn deref(&self) -> &Semaphore {
        &self.slot().sem
    }
}

impl Drop for RawSemaphore {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn timeout_carries_nanoseconds_and_saturates() {
        let t = add_timeout(10, 900_000_000, Duration::from_millis(200));
        assert_eq!((t.tv_sec, t.tv_nsec), (11, 100_000_000));
        let t = add_timeout(10, 0, Duration::MAX);
        assert_eq!(t.tv_sec, i64::MAX as libc::time_t);
        assert!(t.tv_nsec < 1_000_000_000);
    }

    fn region(len: usize) -> SharedRegion {
        SharedRegion::new(std::sync::Arc::new(crate::shared::HeapMemory::new(len))).unwrap()
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls sem_init, which Miri lacks")]
    fn slot_is_initialised_once_and_freed_by_its_initialiser() {
        let region = region(RawSemaphore::SLOT_SIZE);
        {
            let sem = RawSemaphore::init_in(region.clone(), 2).unwrap();
            assert!(sem.is_initialiser());
            assert_eq!(sem.value().unwrap(), 2);
        }
        // Dropping the initialiser's handle destroyed the semaphore and freed the slot.
        let bytes = region.bytes();
        assert_eq!(bytes.load_u32(0, Ordering::Relaxed).unwrap(), UNINIT);
        // A slot that says "ready" is not initialised again.
        bytes.atomic_u32(0).unwrap().store(READY, Ordering::Relaxed);
        let e = RawSemaphore::init_in(region, 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    }

    /// The slot's word is the crate's create-once protocol, as `sync`'s headers use it: a slot
    /// still being initialised elsewhere is neither initialised again nor opened.
    #[test]
    #[cfg_attr(miri, ignore = "calls sem_init, which Miri lacks")]
    fn slot_follows_the_create_once_protocol() {
        let region = region(RawSemaphore::SLOT_SIZE);
        let word = region.bytes().atomic_u32(0).unwrap();
        {
            let _sem = RawSemaphore::init_in(region.clone(), 0).unwrap();
            assert_eq!(word.load(Ordering::Acquire), crate::once::READY);
        }
        assert_eq!(word.load(Ordering::Acquire), crate::once::UNINIT);
        word.store(crate::once::INITIALISING, Ordering::Release);
        let e = RawSemaphore::init_in(region.clone(), 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        let e = RawSemaphore::from_region(region).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    }

    #[test]
    fn garbage_state_word_is_corrupt() {
        let region = region(RawSemaphore::SLOT_SIZE);
        let state = region.bytes().atomic_u32(0).unwrap();
        state.store(0xdead_beef, Ordering::Relaxed);
        let e = RawSemaphore::from_region(region).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    }

    #[test]
    fn handle_keeps_the_memory_alive() {
        let mut region = region(4096);
        let slot = region
            .take(RawSemaphore::SLOT_SIZE, RawSemaphore::SLOT_ALIGN)
            .unwrap();
        let small = region.take(RawSemaphore::SLOT_SIZE - 1, 8).unwrap();
        assert!(RawSemaphore::from_region(small).is_err(), "too small");
        let misaligned = region.slice(4..4 + RawSemaphore::SLOT_SIZE).unwrap();
        assert!(RawSemaphore::from_region(misaligned).is_err(), "misaligned");
        drop(region);
        let state = slot.bytes().atomic_u32(0).unwrap();
        state.store(READY, Ordering::Relaxed);
        let sem = RawSemaphore::from_region(slot).unwrap();
        // Only the handle holds the heap memory now; reading the state word is still sound.
        assert_eq!(sem.slot().state.state(), READY);
    }
}
