//! The header every `sync` primitive starts with, the create-once protocol that initialises a
//! primitive in place while other processes may race to do the same, and the checks that turn a
//! [`SharedRegion`] into a handle to a primitive ([`Placed`]).
//!
//! # The protocol
//! The `state` word is the crate's create-once protocol ([`crate::once`]): [`Header::claim`] lets
//! exactly one caller win and initialise the body; it then writes magic, version and size and
//! publishes `READY` ([`Header::publish`]). Everybody else waits (bounded) until an acquire load
//! sees `READY`, and then validates the header before using the body, exactly as an opener does.

use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

use super::atomic::{AtomicU32, Ordering};
use crate::error::Object;
#[cfg(not(loom))]
use crate::error::{Error, Result};
use crate::once::Once;
#[cfg(not(loom))]
use crate::once::INIT_WAIT;
#[cfg_attr(loom, allow(unused_imports))]
pub(crate) use crate::once::READY;
#[cfg(not(loom))]
use crate::once::UNINIT;
use crate::shared::SharedRegion;

/// The first 16 bytes of every primitive. All words are atomics because other processes may write
/// them at any time; only `state` is used for synchronisation.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    /// The primitive's type: four ASCII letters ("IKMX" for `Mutex` …), written before `READY`.
    magic: AtomicU32,
    /// The layout version of that type, written before `READY`.
    version: AtomicU32,
    /// The create-once state: `UNINIT`, `INITIALISING` or `READY`; anything else is corruption.
    state: Once,
    /// `size_of` the whole primitive as the initialiser laid it out.
    size: AtomicU32,
}

/// The outcome of [`Header::claim`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This caller moved `UNINIT → INITIALISING` and must initialise, then publish (or abandon).
    Won,
    /// Somebody else did, or the region already held something.
    Lost,
}

impl Header {
    /// A header in `UNINIT`, for a primitive built in ordinary memory (and under loom).
    pub(crate) fn new() -> Header {
        Header {
            magic: AtomicU32::new(0),
            version: AtomicU32::new(0),
            state: Once::new(),
            size: AtomicU32::new(0),
        }
    }

    /// A header that is already `READY`, for a primitive built in ordinary memory.
    pub(crate) fn ready(magic: [u8; 4], version: u32, size: usize) -> Header {
        let h = Header::new();
        h.claim();
        h.publish(magic, version, size);
        h
    }

    /// `UNINIT → INITIALISING`: exactly one caller of all processes wins.
    pub(crate) fn claim(&self) -> Claim {
        match self.state.claim() {
            Ok(()) => Claim::Won,
            Err(_) => Claim::Lost,
        }
    }

    /// Writes magic, version and size, then `INITIALISING → READY` with release ordering: whoever
    /// acquires `READY` sees the whole initialised body.
    pub(crate) fn publish(&self, magic: [u8; 4], version: u32, size: usize) {
        self.magic
            .store(u32::from_be_bytes(magic), Ordering::Relaxed);
        self.version.store(version, Ordering::Relaxed);
        self.size
            .store(u32::try_from(size).unwrap_or(u32::MAX), Ordering::Relaxed);
        self.state.publish();
    }

    /// Gives the region back (`INITIALISING → UNINIT`) after a failed initialisation, so that
    /// another process can try.
    #[cfg(not(loom))]
    pub(crate) fn abandon(&self) {
        self.state.reset();
    }

    /// The state word, with acquire ordering (pairs with [`publish`](Self::publish)).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn state(&self) -> u32 {
        self.state.state()
    }

    /// Waits until the state leaves `INITIALISING` (bounded, see [`Once::settled_state`]) and
    /// returns it; `None` if it did not.
    pub(crate) fn settled_state(&self) -> Option<u32> {
        self.state.settled_state()
    }

    /// Checks a `READY` header against the type that wants to use it: magic, version and size.
    pub(crate) fn validate(
        &self,
        magic: [u8; 4],
        version: u32,
        size: usize,
    ) -> std::result::Result<(), String> {
        let found = self.magic.load(Ordering::Relaxed).to_be_bytes();
        if found != magic {
            return Err(format!(
                "magic {} is not {} (another kind of object, or not an ipckit primitive)",
                show_magic(found),
                show_magic(magic)
            ));
        }
        let found = self.version.load(Ordering::Relaxed);
        if found != version {
            return Err(format!(
                "layout version {found}, this build understands version {version}"
            ));
        }
        let found = self.size.load(Ordering::Relaxed);
        if usize::try_from(found).ok() != Some(size) {
            return Err(format!(
                "size {found} bytes, expected {size} (another element type or another ABI?)"
            ));
        }
        Ok(())
    }
}

impl Default for Header {
    fn default() -> Header {
        Header::new()
    }
}

fn show_magic(m: [u8; 4]) -> String {
    if m.iter().all(|b| b.is_ascii_graphic()) {
        format!("{:?}", String::from_utf8_lossy(&m))
    } else {
        format!("{:#010x}", u32::from_be_bytes(m))
    }
}

/// A primitive that lives in shared memory and starts with a [`Header`].
///
/// # Safety
/// The implementing type must be `#[repr(C)]` with the header as its first field, every bit
/// pattern must be a valid value of it, and every byte that is not padding must be inside an atomic
/// or an `UnsafeCell` (of a C struct or of `Pod` data), so that a `&Self` may be made over bytes
/// other processes write at any time without claiming they do not change.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) unsafe trait Shared: Sized {
    /// The type's four-letter magic.
    const MAGIC: [u8; 4];
    /// The type's layout version; change it with the layout.
    const VERSION: u32;
    /// The type's name in error messages.
    const NAME: &'static str;

    /// The header (the first field).
    fn header(&self) -> &Header;

    /// Checks the body of a `READY` primitive; the reason it is unusable, if it is.
    fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// The error object naming a primitive at an address.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn object_at<T: Shared>(addr: *const u8) -> Object {
    Object::Other(format!("ipckit::sync::{} at {addr:p}", T::NAME).into())
}

/// A placed primitive: a pointer to its state `S` and what keeps that state alive — a clone of the
/// [`SharedRegion`] it lives in (so the mapping stays mapped for as long as any handle or guard
/// exists), or, for a primitive built in ordinary memory, an `Arc` of it.
///
/// It hands out only `&S`, never `&mut S`: `S` is made of atomics and `UnsafeCell`s
/// ([`Shared`]), so a shared reference to it claims neither immutability nor exclusivity over the
/// bytes other processes write.
pub(crate) struct Placed<S> {
    ptr: NonNull<S>,
    keep: Keep<S>,
}

/// What keeps a [`Placed`] state alive.
enum Keep<S> {
    /// In shared memory: the region (and so its mapping).
    #[cfg_attr(loom, allow(dead_code))]
    Region(SharedRegion),
    /// In ordinary memory, for threads (and loom).
    Own(Arc<S>),
}

impl<S> Clone for Placed<S> {
    fn clone(&self) -> Placed<S> {
        Placed {
            ptr: self.ptr,
            keep: match &self.keep {
                Keep::Region(r) => Keep::Region(r.clone()),
                Keep::Own(a) => Keep::Own(Arc::clone(a)),
            },
        }
    }
}

// SAFETY: a Placed gives only `&S` (Deref), so sending or sharing it is sending or sharing `&S`,
// which `S: Sync` allows; what keeps the state alive (a SharedRegion, an Arc) is Send + Sync.
unsafe impl<S: Sync + Send> Send for Placed<S> {}
// SAFETY: as for Send.
unsafe impl<S: Sync + Send> Sync for Placed<S> {}

impl<S> Placed<S> {
    /// `state` in ordinary memory.
    pub(crate) fn own(state: S) -> Placed<S> {
        let arc = Arc::new(state);
        Placed {
            // An Arc's pointer is never null.
            ptr: NonNull::from(&*arc),
            keep: Keep::Own(arc),
        }
    }

    /// The region the state lives in, if it is in shared memory.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn region(&self) -> Option<&SharedRegion> {
        match &self.keep {
            Keep::Region(r) => Some(r),
            Keep::Own(_) => None,
        }
    }

    /// The address of the state.
    pub(crate) fn addr(&self) -> *const u8 {
        self.ptr.as_ptr().cast()
    }
}

impl<S> Deref for Placed<S> {
    type Target = S;

    fn deref(&self) -> &S {
        // SAFETY: `ptr` points to an aligned `S` that `keep` keeps alive (mapped, or allocated) for
        // as long as `self` lives. In shared memory it was checked to fit and be aligned
        // (`place`), and every bit pattern is a valid `S` (`Shared`), whatever other processes
        // write; `S` is atomics and `UnsafeCell`s, so `&S` claims no immutability of those bytes.
        unsafe { self.ptr.as_ref() }
    }
}

impl<S> fmt::Debug for Placed<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Placed")
            .field("addr", &self.ptr)
            .field("region", &self.region())
            .finish()
    }
}

/// The `T` at the start of `region`, after checking writability, size and alignment.
#[cfg(not(loom))]
fn place<T: Shared>(op: &'static str, region: SharedRegion) -> Result<Placed<T>> {
    let addr = region.as_ptr();
    let (size, align) = (std::mem::size_of::<T>(), std::mem::align_of::<T>());
    if !region.is_writable() {
        return Err(Error::invalid(
            op,
            object_at::<T>(addr),
            format!("{} is mapped read-only", region.object()),
        ));
    }
    if region.len() < size {
        return Err(Error::invalid(
            op,
            object_at::<T>(addr),
            format!(
                "needs {size} bytes but the region has {} bytes",
                region.len()
            ),
        ));
    }
    if !(addr as usize).is_multiple_of(align) {
        return Err(Error::invalid(
            op,
            object_at::<T>(addr),
            format!("needs {align}-byte alignment"),
        ));
    }
    // A SharedRegion's pointer is never null.
    let ptr = NonNull::new(addr.cast::<T>())
        .ok_or_else(|| Error::invalid(op, object_at::<T>(addr), "null address"))?;
    Ok(Placed {
        ptr,
        keep: Keep::Region(region),
    })
}

/// `init_in`: claims the region and initialises it with `init`, or waits for the process that
/// claimed it and validates its work.
#[cfg(not(loom))]
pub(crate) fn init_in<T: Shared>(
    region: SharedRegion,
    init: impl FnOnce(&T) -> Result<()>,
) -> Result<Placed<T>> {
    const OP: &str = "init_in";
    let t = place::<T>(OP, region)?;
    if t.header().claim() == Claim::Won {
        if let Err(e) = init(&t) {
            t.header().abandon();
            return Err(e);
        }
        t.header()
            .publish(T::MAGIC, T::VERSION, std::mem::size_of::<T>());
        return Ok(t);
    }
    validate(OP, t)
}

/// `open_in`: the primitive another process initialised in `region`, validated.
#[cfg(not(loom))]
pub(crate) fn open_in<T: Shared>(region: SharedRegion) -> Result<Placed<T>> {
    const OP: &str = "open_in";
    let t = place::<T>(OP, region)?;
    if t.header().state() == UNINIT {
        return Err(Error::invalid(
            OP,
            object_at::<T>(t.addr()),
            "the region holds no initialised primitive (call init_in first)",
        ));
    }
    validate(OP, t)
}

/// Waits for `READY` and checks header and body.
#[cfg(not(loom))]
fn validate<T: Shared>(op: &'static str, t: Placed<T>) -> Result<Placed<T>> {
    let object = || object_at::<T>(t.addr());
    match t.header().settled_state() {
        None => Err(Error::os(
            op,
            object(),
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "another process began initialising it and had not finished after {} s (did it die?)",
                    INIT_WAIT.as_secs()
                ),
            ),
        )),
        Some(READY) => {
            t.header()
                .validate(T::MAGIC, T::VERSION, std::mem::size_of::<T>())
                .and_then(|()| t.check())
                .map_err(|detail| Error::corrupt(op, object(), detail))?;
            Ok(t)
        }
        Some(UNINIT) => Err(Error::invalid(
            op,
            object(),
            "the process initialising it gave up (its initialisation failed)",
        )),
        Some(state) => Err(Error::corrupt(
            op,
            object(),
            format!("state word {state:#010x} is none of UNINIT, INITIALISING, READY"),
        )),
    }
}
