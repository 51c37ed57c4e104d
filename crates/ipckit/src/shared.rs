//! Memory that another process may write: the access model every ipckit mapping uses.
//!
//! A Rust reference promises something shared memory cannot keep. `&[u8]` and `&T` say the bytes
//! do not change while the reference lives, `&mut [u8]` says nobody else touches them; but another
//! process (or another mapping of the same object in this process) writes them whenever it likes,
//! and the compiler is allowed to merge or repeat reads through a reference, so a check-then-use on
//! such bytes can be undone behind the check. "Every bit pattern is valid for a `Pod` type" is about
//! validity, not immutability. The rule ipckit follows, as rust-vmm's `vm-memory` does for guest
//! memory, is therefore: **safe code never sees a plain reference over shared bytes.** Instead:
//!
//! - [`SharedSlice`] is a (pointer, length) view of shared bytes, like `&[AtomicU8]`: it claims no
//!   immutability and no exclusivity. It copies in and out by offset ([`read_at`](SharedSlice::read_at),
//!   [`write_at`](SharedSlice::write_at), [`read`](SharedSlice::read) and
//!   [`write`](SharedSlice::write) of a [`Pod`] value) with word-sized relaxed atomic accesses (or,
//!   for long copies on x86-64, wider moves in assembly, which are byte-wise atomic), so a concurrent
//!   writer yields arbitrary but valid bytes, never undefined behaviour; and it hands out atomics
//!   by offset ([`atomic`](SharedSlice::atomic)).
//! - [`AtomicPod`] types — atomics, arrays of them, and `#[repr(C)]` structs whose every field is
//!   one (declared with [`atomic_struct!`](crate::atomic_struct)) — may be viewed in place
//!   ([`view`](SharedSlice::view)), because every access to them is atomic.
//! - Plain `&[u8]`, `&T` and `&mut T` over shared bytes exist only behind `unsafe fn`s whose
//!   `# Safety` section says what the caller guarantees (nobody writes the bytes meanwhile), or over
//!   memory that provably has no writer at all (a [`Memfd`](crate::posix::shm::Memfd) sealed with
//!   `F_SEAL_WRITE`: see [`Mmap::sealed_bytes`](crate::mmap::Mmap::sealed_bytes)).
//!
//! Values read from shared memory are untrusted input: validate them before use, and copy out
//! before you validate (a value checked in place can change after the check).
//!
//! Mappings that can be handed to other owners implement [`Mapping`]; a [`SharedRegion`] is a byte
//! range of one that keeps it mapped, which is what [`sync`](crate::sync) primitives are placed in.

use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::ops::{Bound, Range, RangeBounds};
use std::ptr::NonNull;
use std::sync::atomic::{
    AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32, AtomicU64,
    AtomicU8, AtomicUsize, Ordering,
};
use std::sync::Arc;

use bytemuck::{AnyBitPattern, Pod, Zeroable};

use crate::error::{Error, Object, Result};
use crate::view::Region;

/// Plain data made only of atomics: every bit pattern is valid and every byte lies inside an atomic,
/// so a `&T` over memory that others write claims nothing false. Such types may be viewed in place
/// in shared memory ([`SharedSlice::view`]).
///
/// Implemented for the integer atomics and arrays of them. For your own `#[repr(C)]` structs use
/// [`atomic_struct!`](crate::atomic_struct), which checks at compile time that every field is
/// `AtomicPod`.
///
/// # Safety
/// Every bit pattern of `size_of::<Self>()` bytes is a valid `Self`, the all-zero pattern included,
/// and every byte of `Self` that is not padding is inside an `UnsafeCell` accessed only atomically.
pub unsafe trait AtomicPod: Sync + 'static {}

macro_rules! atomic_pod {
    ($($t:ty),*) => {$(
        // SAFETY: an integer atomic has the size and validity of its integer (any bit pattern) and
        // is an UnsafeCell accessed only through atomic operations.
        unsafe impl AtomicPod for $t {}
    )*};
}
atomic_pod!(
    AtomicU8,
    AtomicI8,
    AtomicU16,
    AtomicI16,
    AtomicU32,
    AtomicI32,
    AtomicU64,
    AtomicI64,
    AtomicUsize,
    AtomicIsize
);
// SAFETY: an array of AtomicPod values has no padding of its own; each element keeps its guarantee.
unsafe impl<T: AtomicPod, const N: usize> AtomicPod for [T; N] {}

/// Declares `#[repr(C)]` structs that may be viewed in place in shared memory
/// ([`SharedSlice::view`]): it implements [`AtomicPod`] and fails to compile unless every field's
/// type is `AtomicPod` itself.
///
/// ```
/// use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
///
/// ipckit::atomic_struct! {
///     /// Counters shared by every worker process.
///     pub struct Counters {
///         pub hits: AtomicU64,
///         pub misses: AtomicU64,
///         pub workers: AtomicU32,
///     }
/// }
///
/// let memory = ipckit::mmap::Mmap::anonymous(4096)?;
/// let counters = memory.shared()?.view::<Counters>(0)?;
/// counters.hits.fetch_add(1, Ordering::Relaxed);
/// # Ok::<(), ipckit::Error>(())
/// ```
///
/// A field that is not atomic is refused:
///
/// ```compile_fail
/// ipckit::atomic_struct! {
///     pub struct Torn {
///         pub len: u64, // a plain integer: another process could change it under a `&Torn`
///     }
/// }
/// ```
#[macro_export]
macro_rules! atomic_struct {
    ($(
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$fmeta:meta])* $fvis:vis $field:ident : $fty:ty),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[repr(C)]
        $vis struct $name {
            $($(#[$fmeta])* $fvis $field: $fty),*
        }

        const _: () = {
            #[allow(dead_code)]
            fn assert_atomic_pod<T: $crate::shared::AtomicPod>() {}
            #[allow(dead_code)]
            fn assert_fields() {
                $(assert_atomic_pod::<$fty>();)*
            }
        };

        // SAFETY: `#[repr(C)]` and every field is AtomicPod (checked above at compile time), so
        // every bit pattern is valid and every non-padding byte is inside an atomic.
        unsafe impl $crate::shared::AtomicPod for $name {}
    )*};
}

/// A view of `len` bytes of shared memory that another process may write at any moment: the
/// in-place counterpart of `&[AtomicU8]`. It is `Copy`, borrows the mapping it came from, and never
/// hands out a plain reference to the bytes.
///
/// Every accessor checks its range (an invalid-argument error naming the mapping, the offset and
/// the size, never a panic). Copies use word-sized relaxed atomic loads and stores: a concurrent
/// writer can make a copy see a mix of old and new bytes (a torn value, to validate like any
/// untrusted input), never undefined behaviour. Order them against other processes with the
/// atomics ([`atomic`](Self::atomic), [`load_u32`](Self::load_u32) …) or a lock.
///
/// The copies access each aligned machine word inside their range as one `AtomicUsize` and the
/// bytes at either end as `AtomicU8`, as `vm-memory` copies guest memory by aligned chunks (with
/// atomics here instead of volatile accesses). Two threads of one process that copy overlapping,
/// differently aligned ranges at the same moment therefore race with atomics of different sizes,
/// which every platform Rust supports executes as ordinary loads and stores but which Rust's memory
/// model does not yet define; ipckit's own code orders such accesses (a record is read only after
/// the acquire that publishes it), and so should yours.
///
/// A slice made from a read-only mapping refuses writes and in-place atomics (an error, not a
/// fault); its [`load_u32`](Self::load_u32) and [`load_u64`](Self::load_u64) still work.
#[derive(Clone, Copy)]
pub struct SharedSlice<'a> {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
    object: &'a Object,
    _memory: PhantomData<&'a [AtomicU8]>,
}

// SAFETY: a SharedSlice only reads and writes through atomic operations (or hands out atomics), so
// using it from several threads at once is what atomics are for; the memory belongs to the process.
unsafe impl Send for SharedSlice<'_> {}
// SAFETY: as for Send.
unsafe impl Sync for SharedSlice<'_> {}

impl<'a> SharedSlice<'a> {
    /// A view of `len` bytes at `ptr`, named `object` in errors.
    ///
    /// # Safety
    /// For all of `'a`: `ptr..ptr + len` is mapped and readable (and writable if `writable`),
    /// `len <= isize::MAX`, and this process accesses those bytes only through atomic operations
    /// (this type, atomics, other `SharedSlice`s) — no `&[u8]`, `&T` or `&mut T` to them exists.
    #[inline]
    pub unsafe fn from_raw_parts(
        ptr: NonNull<u8>,
        len: usize,
        writable: bool,
        object: &'a Object,
    ) -> SharedSlice<'a> {
        SharedSlice {
            ptr,
            len,
            writable,
            object,
            _memory: PhantomData,
        }
    }

    /// The number of bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether writes (and in-place atomics) are allowed.
    #[inline]
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The address of the first byte. Using it is the caller's `unsafe` responsibility.
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// What the bytes belong to.
    #[inline]
    pub fn object(&self) -> &'a Object {
        self.object
    }

    fn region(&self) -> Region<'a> {
        Region {
            object: self.object,
            noun: "shared memory",
            addr: self.ptr.as_ptr() as usize,
            len: self.len,
        }
    }

    #[inline]
    fn check_writable(&self, op: &'static str) -> Result<()> {
        if self.writable {
            return Ok(());
        }
        Err(self.read_only(op))
    }

    /// The error of a write to a read-only view: out of line, so that the checks inline.
    #[cold]
    #[inline(never)]
    fn read_only(&self, op: &'static str) -> Error {
        Error::invalid(op, self.object.clone(), "the memory is mapped read-only")
    }

    /// The byte range `offset..offset + len`, checked.
    #[inline]
    fn bytes_range(&self, op: &'static str, offset: usize, len: usize) -> Result<Range<usize>> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(offset..end),
            _ => Err(self.out_of_range(op, offset, len)),
        }
    }

    /// The error of a range outside the view: out of line, so that the checks inline.
    #[cold]
    #[inline(never)]
    fn out_of_range(&self, op: &'static str, offset: usize, len: usize) -> Error {
        Error::invalid(
            op,
            self.object.clone(),
            format!(
                "{len} bytes at offset {offset} do not fit in the {} bytes of shared memory",
                self.len
            ),
        )
    }

    /// The sub-range `range` of these bytes.
    pub fn get(&self, range: impl RangeBounds<usize>) -> Result<SharedSlice<'a>> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.len,
        };
        let r = self.bytes_range("get", start, end.saturating_sub(start))?;
        if end < start {
            return Err(Error::invalid(
                "get",
                self.object.clone(),
                format!("range {start}..{end} ends before it starts"),
            ));
        }
        Ok(SharedSlice {
            // SAFETY: `r.start <= self.len`, so the address is inside the mapping or one past it.
            ptr: unsafe { NonNull::new_unchecked(self.ptr.as_ptr().add(r.start)) },
            len: r.len(),
            ..*self
        })
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let r = self.bytes_range("read_at", offset, buf.len())?;
        // SAFETY: `r` lies inside the view, which is readable for 'a and accessed only atomically.
        unsafe { copy_out(self.ptr.as_ptr().add(r.start), buf) };
        Ok(())
    }

    /// Copies `data` into the bytes starting at `offset`.
    #[inline]
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_writable("write_at")?;
        let r = self.bytes_range("write_at", offset, data.len())?;
        // SAFETY: `r` lies inside the view, which is writable (checked) for 'a and accessed only
        // atomically.
        unsafe { copy_in(data, self.ptr.as_ptr().add(r.start)) };
        Ok(())
    }

    /// Sets every byte to `value`.
    pub fn fill(&self, value: u8) -> Result<()> {
        self.check_writable("fill")?;
        let chunk = [value; 256];
        let mut offset = 0;
        while offset < self.len {
            let n = chunk.len().min(self.len - offset);
            self.write_at(offset, &chunk[..n])?;
            offset += n;
        }
        Ok(())
    }

    /// A copy of all the bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len];
        // SAFETY: the whole view is readable for 'a and accessed only atomically.
        unsafe { copy_out(self.ptr.as_ptr(), &mut v) };
        v
    }

    /// A copy of the `T` at byte `offset` (any alignment). The value may be torn if another
    /// process writes it meanwhile: validate it.
    pub fn read<T: Pod>(&self, offset: usize) -> Result<T> {
        let mut value = T::zeroed();
        self.read_at(offset, bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// Writes `value` at byte `offset` (any alignment).
    pub fn write<T: Pod>(&self, offset: usize, value: &T) -> Result<()> {
        self.write_at(offset, bytemuck::bytes_of(value))
    }

    /// Copies `buf.len()` values of `T` starting at byte `offset` into `buf`.
    pub fn read_slice<T: Pod>(&self, offset: usize, buf: &mut [T]) -> Result<()> {
        self.read_at(offset, bytemuck::cast_slice_mut(buf))
    }

    /// Writes the values of `data` starting at byte `offset`.
    pub fn write_slice<T: Pod>(&self, offset: usize, data: &[T]) -> Result<()> {
        self.write_at(offset, bytemuck::cast_slice(data))
    }

    /// The [`AtomicPod`] value at byte `offset`, in place: aligned, in bounds, and on a writable
    /// mapping (atomic read-modify-write needs write access; use [`load_u32`](Self::load_u32) on a
    /// read-only one).
    pub fn view<T: AtomicPod>(&self, offset: usize) -> Result<&'a T> {
        self.view_for("view", offset)
    }

    /// [`view`](Self::view), naming `op` in errors.
    fn view_for<T: AtomicPod>(&self, op: &'static str, offset: usize) -> Result<&'a T> {
        self.check_writable(op)?;
        let r = self.region().range::<T>(op, offset, None)?;
        // SAFETY: `range` checked that a `T` fits at `offset` and that the address is aligned for
        // it; every bit pattern is a valid `T` and every byte of it is inside an atomic
        // (AtomicPod), so the reference claims neither immutability nor exclusivity; the memory
        // stays mapped for 'a.
        Ok(unsafe { &*self.ptr.as_ptr().add(r.start).cast::<T>() })
    }

    /// `count` [`AtomicPod`] values starting at byte `offset`, in place; checked like
    /// [`view`](Self::view). Zero-sized types are refused.
    pub fn view_slice<T: AtomicPod>(&self, offset: usize, count: usize) -> Result<&'a [T]> {
        self.check_writable("view_slice")?;
        let r = self
            .region()
            .range::<T>("view_slice", offset, Some(count))?;
        // SAFETY: as in `view`, for `count` consecutive values (the range checked their total size
        // and the alignment of the first; `size_of` is a multiple of the alignment).
        Ok(
            unsafe {
                std::slice::from_raw_parts(self.ptr.as_ptr().add(r.start).cast::<T>(), count)
            },
        )
    }

    /// The atomic `A` (`AtomicU32`, `AtomicU64` …) at byte `offset`; checked like
    /// [`view`](Self::view).
    pub fn atomic<A: AtomicPod>(&self, offset: usize) -> Result<&'a A> {
        self.view_for("atomic", offset)
    }

    /// The `AtomicU32` at byte `offset`.
    pub fn atomic_u32(&self, offset: usize) -> Result<&'a AtomicU32> {
        self.view_for("atomic_u32", offset)
    }

    /// The `AtomicU64` at byte `offset`.
    pub fn atomic_u64(&self, offset: usize) -> Result<&'a AtomicU64> {
        self.view_for("atomic_u64", offset)
    }

    /// Loads the `u32` at byte `offset` (4-byte aligned) atomically with `order` (`Relaxed`,
    /// `Acquire` or `SeqCst`); works on read-only mappings too.
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32> {
        let r = self.region().range::<AtomicU32>("load_u32", offset, None)?;
        // SAFETY: checked in bounds and aligned; an atomic load of a mapped, readable word. On a
        // read-only mapping a plain atomic load is allowed (it does not write; std documents
        // atomic loads of read-only memory as acceptable for lock-free sizes).
        let a = unsafe { &*self.ptr.as_ptr().add(r.start).cast::<AtomicU32>() };
        Ok(load(a, order))
    }

    /// Loads the `u64` at byte `offset` (8-byte aligned) atomically; see
    /// [`load_u32`](Self::load_u32).
    pub fn load_u64(&self, offset: usize, order: Ordering) -> Result<u64> {
        let r = self.region().range::<AtomicU64>("load_u64", offset, None)?;
        // SAFETY: as in `load_u32`.
        let a = unsafe { &*self.ptr.as_ptr().add(r.start).cast::<AtomicU64>() };
        Ok(load(a, order))
    }

    /// The bytes as a plain slice.
    ///
    /// # Safety
    /// For as long as the returned slice lives, nobody — no other process, no other mapping, no
    /// atomic or `SharedSlice` of this process — writes these bytes.
    pub unsafe fn as_bytes_unchecked(&self) -> &'a [u8] {
        // SAFETY: mapped and readable for 'a (type invariant), len <= isize::MAX; immutability
        // for the slice's life is the caller's promise.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes as a plain mutable slice.
    ///
    /// # Safety
    /// For as long as the returned slice lives, nothing else reads or writes these bytes: no other
    /// process, no other mapping, no other reference, atomic or `SharedSlice` of this process.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_bytes_mut_unchecked(&self) -> Result<&'a mut [u8]> {
        self.check_writable("as_bytes_mut_unchecked")?;
        // SAFETY: mapped and writable for 'a (checked), len <= isize::MAX; exclusivity for the
        // slice's life is the caller's promise.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) })
    }

    /// The `T` at byte `offset` as a plain reference: aligned and in bounds (checked).
    ///
    /// # Safety
    /// For as long as the returned reference lives, nobody — no other process, no other mapping,
    /// no atomic or `SharedSlice` of this process — writes the `size_of::<T>()` bytes at `offset`.
    pub unsafe fn view_unchecked<T: AnyBitPattern>(&self, offset: usize) -> Result<&'a T> {
        let r = self.region().range::<T>("view_unchecked", offset, None)?;
        // SAFETY: `range` checked that an aligned `T` fits at `offset`; the bytes are mapped and
        // readable for 'a and every bit pattern is a valid `T`; that nobody writes them while the
        // reference lives is the caller's promise.
        Ok(unsafe { &*self.ptr.as_ptr().add(r.start).cast::<T>() })
    }

    /// The `T` at byte `offset` as a plain mutable reference: aligned, in bounds and writable
    /// (checked).
    ///
    /// # Safety
    /// For as long as the returned reference lives, nothing else reads or writes the
    /// `size_of::<T>()` bytes at `offset`: no other process, no other mapping, no other reference,
    /// atomic or `SharedSlice` of this process.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn view_mut_unchecked<T: Pod>(&self, offset: usize) -> Result<&'a mut T> {
        self.check_writable("view_mut_unchecked")?;
        let r = self
            .region()
            .range::<T>("view_mut_unchecked", offset, None)?;
        // SAFETY: as in `view_unchecked`, and the memory is writable (checked); exclusive access
        // for the reference's life is the caller's promise.
        Ok(unsafe { &mut *self.ptr.as_ptr().add(r.start).cast::<T>() })
    }
}

impl fmt::Debug for SharedSlice<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSlice")
            .field("object", self.object)
            .field("addr", &self.ptr)
            .field("len", &self.len)
            .field("writable", &self.writable)
            .finish()
    }
}

fn load<A: AtomicLoad>(a: &A, order: Ordering) -> A::Value {
    match order {
        Ordering::Release | Ordering::AcqRel => a.load_with(Ordering::Acquire),
        order => a.load_with(order),
    }
}

trait AtomicLoad {
    type Value;
    fn load_with(&self, order: Ordering) -> Self::Value;
}

impl AtomicLoad for AtomicU32 {
    type Value = u32;
    fn load_with(&self, order: Ordering) -> u32 {
        self.load(order)
    }
}

impl AtomicLoad for AtomicU64 {
    type Value = u64;
    fn load_with(&self, order: Ordering) -> u64 {
        self.load(order)
    }
}

const WORD: usize = mem::size_of::<usize>();

/// From this many bytes on, [`copy_out`], [`copy_in`] and the channel's payload copies move bytes
/// with [`wide_copy`] where it exists: its set-up is repaid by moves wider than a word. Below it,
/// word by word (relaxed `AtomicU64`s) is as fast. (Measured with the `per_message` bench: a
/// 64-byte channel send + receive took 30-34 ns with wide copies against 34 ns word by word.)
pub(crate) const WIDE_COPY_MIN: usize = 64;

/// Copies `len` bytes from `src` to `dst` in assembly, with moves wider than a word, where
/// either range (or both) may be memory another process writes at the same time. Returns
/// `false`, copying nothing, where there is no such copy (another architecture, or Miri, which
/// runs no assembly): the caller then copies word by word with atomics.
///
/// Why this is not a data race: Rust's memory model says nothing about what assembly does to
/// memory, only that its effect must be one that Rust code could have. Each instruction here
/// reads or writes each of its bytes once, and a single byte cannot tear: the effect is that of
/// `len` relaxed `AtomicU8` loads from `src`, each followed by a relaxed `AtomicU8` store to
/// `dst` (which is also what such loads and stores compile to on x86), performed 16, 32 or (by
/// `rep movsb`) up to a cache line of bytes at a time. A concurrent writer elsewhere thus leaves
/// torn but valid bytes, as with [`copy_out`]'s word loads. This is the "byte-wise atomic
/// memcpy" of the C++ proposal P1478, and the argument the `atomic-maybe-uninit` crate makes for
/// its assembly.
///
/// Ordering is kept too: these are ordinary (write-back, not non-temporal) moves, whose stores
/// x86 makes visible in program order, so a Release store after the copy — the channel's record
/// header — is seen after every byte of it; and the compiler moves no memory access across the
/// `asm!` block (it is not `nomem` or `readonly`). From [`REP_COPY_MIN`] bytes, where
/// [`rep_copy_is_fast`], the copy is one `rep movsb` instead, whose stores may become visible
/// out of order among themselves but not after a later store ([`copy_rep`]).
///
/// From [`AVX_COPY_MIN`] bytes, where the CPU has AVX (detected at run time), the blocks are two
/// 32-byte moves each, after word and byte moves that bring `dst` to a 32-byte boundary
/// (`copy_avx_blocks`). The alignment is what makes them pay: a ring payload starts 8 bytes into
/// a cache line, so without it every other 32-byte store splits a line, and a channel send +
/// receive of 8 KiB took 346 ns against this 16-byte loop's 318; aligned, 264 ns (1 KiB: 53 ns
/// against 68, rtrb's in-process ring 31; the `per_message` bench on an Intel Xeon VM).
///
/// # Safety
/// `src..src + len` is mapped and readable, `dst..dst + len` mapped and writable, the two do not
/// overlap, and any of those bytes that another thread of this process may access at the same
/// time are accessed by it only atomically.
#[inline(always)]
pub(crate) unsafe fn wide_copy(src: *const u8, dst: *mut u8, len: usize) -> bool {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        // SAFETY: the ranges are valid and disjoint (the caller's contract).
        if len >= REP_COPY_MIN && unsafe { copy_long(src, dst, len) } {
            return true;
        }
        if len >= AVX_COPY_MIN && std::arch::is_x86_feature_detected!("avx") {
            // `head` bytes bring `dst` to a 32-byte boundary; the AVX blocks follow, and the
            // 16-byte loop copies what is left (less than a block).
            let head = dst.align_offset(32).min(len);
            let blocks = (len - head) / 64;
            let done = head + 64 * blocks;
            // SAFETY: the three copies split `src..src + len` and `dst..dst + len`, valid and
            // disjoint (the caller's contract), into consecutive parts, in ascending order;
            // `dst + head` is 32-aligned (or `blocks` is 0) and the CPU has AVX (just
            // detected), as `copy_avx_blocks` needs.
            unsafe {
                copy_sse(src, dst, head);
                copy_avx_blocks(src.add(head), dst.add(head), blocks);
                copy_sse(src.add(done), dst.add(done), len - done);
            }
            return true;
        }
        // SAFETY: the ranges are valid and disjoint (the caller's contract).
        unsafe { copy_sse(src, dst, len) };
        true
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    {
        let _ = (src, dst, len);
        false
    }
}

/// The length from which [`wide_copy`] copies with `rep movsb` where that is fast
/// ([`rep_copy_is_fast`]): glibc's threshold for CPUs with 32-byte vectors (its
/// `rep_movsb_threshold`, 2048 bytes per 16 of vector), where the instruction's set-up is repaid.
#[cfg_attr(not(all(target_arch = "x86_64", not(miri))), allow(dead_code))]
const REP_COPY_MIN: usize = 4096;

/// Whether `rep movsb` is the fast way to copy [`REP_COPY_MIN`] bytes or more here: on Intel
/// CPUs with ERMS (enhanced `rep movsb`), whose fast-string copies write whole cache lines
/// without first reading them for ownership. On this project's Intel Xeon VM, a 1 MiB stream
/// of the channel's zero-copy path went from 15–16 to 17.5–19.5 GB/s and a copying 1 MiB
/// ping-pong from 190–215 to 129–140 µs, both copies being `rep movsb`, as glibc's `memcpy` is at
/// these sizes. Elsewhere the loops stay: on the AMD EPYC this project was also measured on,
/// `rep movsb` copied 1 MiB at a fifth of their speed. Detected once.
#[cfg(all(target_arch = "x86_64", not(miri)))]
fn rep_copy_is_fast() -> bool {
    static FAST: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FAST.get_or_init(|| {
        // `cpuid` leaf 0: the vendor's name, in EBX, EDX, ECX.
        #[allow(unused_unsafe)]
        // SAFETY: `cpuid` exists on every x86-64 CPU and only writes registers.
        let id = unsafe { std::arch::x86_64::__cpuid(0) };
        let mut vendor = [0; 12];
        vendor[..4].copy_from_slice(&id.ebx.to_le_bytes());
        vendor[4..8].copy_from_slice(&id.edx.to_le_bytes());
        vendor[8..].copy_from_slice(&id.ecx.to_le_bytes());
        &vendor == b"GenuineIntel" && std::arch::is_x86_feature_detected!("ermsb")
    })
}

/// `wide_copy` of [`REP_COPY_MIN`] bytes or more: by [`copy_rep`] where [`rep_copy_is_fast`],
/// returning `true`; otherwise copies nothing and returns `false`. Kept out of line, so that
/// `wide_copy` stays small enough to be inlined where small messages are copied (inlined, this
/// made the 64-byte stream 15% slower).
///
/// # Safety
/// `wide_copy`'s contract.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline(never)]
unsafe fn copy_long(src: *const u8, dst: *mut u8, len: usize) -> bool {
    if !rep_copy_is_fast() {
        return false;
    }
    // SAFETY: the caller's contract is `copy_rep`'s.
    unsafe { copy_rep(src, dst, len) };
    true
}

/// `wide_copy` by `rep movsb`, from [`REP_COPY_MIN`] bytes on where it is fast.
///
/// The instruction reads and writes each byte once, so the byte-wise atomic argument of
/// [`wide_copy`] holds; what differs is order. With fast strings, its stores may become visible
/// out of order among themselves, which relaxed byte stores to distinct bytes may too, but
/// "string operations are not reordered with other store operations" (Intel SDM vol. 3A,
/// §9.2.4.1, "Memory-Ordering Model for String Operations on Write-back Memory"): a Release
/// store after the copy is seen after every byte of it. Its loads are done before it retires,
/// and a later store becomes visible only after that.
///
/// # Safety
/// `wide_copy`'s contract.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline]
unsafe fn copy_rep(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: the ranges are valid and disjoint (the caller's contract); the direction flag is
    // clear on entry to an `asm!` block (Rust's rule), so the copy ascends through exactly
    // `len` bytes. No stack is touched and the flags are not written.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags),
        );
    }
}

/// The length from which [`wide_copy`] moves 32 bytes at a time where the CPU has AVX: below
/// it, the moves that align the destination would be a good part of the copy (a 64-byte send
/// and receive stays on the 16-byte loop).
#[cfg_attr(not(all(target_arch = "x86_64", not(miri))), allow(dead_code))]
const AVX_COPY_MIN: usize = 128;

/// `wide_copy`'s 16-byte loop: `len / 64` blocks of four unaligned 16-byte moves, then words,
/// then bytes, every byte once, ascending.
///
/// # Safety
/// `wide_copy`'s contract.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[inline(always)]
unsafe fn copy_sse(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: the ranges are valid and disjoint (the caller's contract). The loops copy
    // `len / 64` blocks of 64 bytes (four unaligned 16-byte moves: SSE2, which every
    // x86-64 CPU has), then `len % 64 / 8` words, then `len % 8` bytes: exactly `len`
    // bytes, ascending. No stack is touched; every register written is declared.
    unsafe {
        std::arch::asm!(
            "test {blocks}, {blocks}",
            "jz 3f",
            "2:",
            "movdqu {x0}, xmmword ptr [{src}]",
            "movdqu {x1}, xmmword ptr [{src} + 16]",
            "movdqu {x2}, xmmword ptr [{src} + 32]",
            "movdqu {x3}, xmmword ptr [{src} + 48]",
            "movdqu xmmword ptr [{dst}], {x0}",
            "movdqu xmmword ptr [{dst} + 16], {x1}",
            "movdqu xmmword ptr [{dst} + 32], {x2}",
            "movdqu xmmword ptr [{dst} + 48], {x3}",
            "add {src}, 64",
            "add {dst}, 64",
            "dec {blocks}",
            "jnz 2b",
            "3:",
            "test {words}, {words}",
            "jz 5f",
            "4:",
            "mov {t}, qword ptr [{src}]",
            "mov qword ptr [{dst}], {t}",
            "add {src}, 8",
            "add {dst}, 8",
            "dec {words}",
            "jnz 4b",
            "5:",
            "test {bytes}, {bytes}",
            "jz 7f",
            "6:",
            "mov {t:l}, byte ptr [{src}]",
            "mov byte ptr [{dst}], {t:l}",
            "inc {src}",
            "inc {dst}",
            "dec {bytes}",
            "jnz 6b",
            "7:",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            blocks = inout(reg) len / 64 => _,
            words = inout(reg) len % 64 / 8 => _,
            bytes = inout(reg) len % 8 => _,
            t = out(reg) _,
            x0 = out(xmm_reg) _,
            x1 = out(xmm_reg) _,
            x2 = out(xmm_reg) _,
            x3 = out(xmm_reg) _,
            options(nostack),
        );
    }
}

/// `blocks` blocks of 64 bytes, each two unaligned 32-byte AVX loads and two aligned stores,
/// ascending: `wide_copy`'s middle part from [`AVX_COPY_MIN`] bytes on.
///
/// # Safety
/// The CPU has AVX, `wide_copy`'s contract holds for `64 * blocks` bytes, and `dst` is 32-byte
/// aligned if `blocks > 0`.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[target_feature(enable = "avx")]
unsafe fn copy_avx_blocks(src: *const u8, dst: *mut u8, blocks: usize) {
    if blocks == 0 {
        return;
    }
    // SAFETY: the ranges are valid and disjoint and `dst` is 32-aligned (the caller's
    // contract), and the CPU has AVX (the caller's too). No stack is touched. `vzeroupper`
    // clears the upper halves of all sixteen vector registers (so that SSE code after it pays
    // no transition penalty), so all sixteen are declared clobbered.
    unsafe {
        std::arch::asm!(
            "2:",
            "vmovdqu ymm0, ymmword ptr [{src}]",
            "vmovdqu ymm1, ymmword ptr [{src} + 32]",
            "vmovdqa ymmword ptr [{dst}], ymm0",
            "vmovdqa ymmword ptr [{dst} + 32], ymm1",
            "add {src}, 64",
            "add {dst}, 64",
            "dec {blocks}",
            "jnz 2b",
            "vzeroupper",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            blocks = inout(reg) blocks => _,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
            out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack),
        );
    }
}

/// Copies `dst.len()` bytes from shared memory at `src` into `dst`: with [`wide_copy`] from
/// [`WIDE_COPY_MIN`] bytes on where it exists; otherwise relaxed atomic byte loads up to the
/// first word boundary, relaxed atomic word loads, then bytes again.
///
/// # Safety
/// `src..src + dst.len()` is mapped and readable, and accessed only atomically by this process.
#[inline]
pub(crate) unsafe fn copy_out(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    // SAFETY: `src` is readable for `len` bytes (contract), `dst` is a unique borrow of `len`
    // bytes, so the two do not overlap; this process accesses `src`'s bytes only atomically.
    if len >= WIDE_COPY_MIN && unsafe { wide_copy(src, dst.as_mut_ptr(), len) } {
        return;
    }
    let head = src.align_offset(WORD).min(len);
    let mut i = 0;
    while i < head {
        // SAFETY: `src + i` is inside the readable range; AtomicU8 has no alignment requirement.
        dst[i] = unsafe { (*src.add(i).cast::<AtomicU8>()).load(Ordering::Relaxed) };
        i += 1;
    }
    while i + WORD <= len {
        // SAFETY: `src + i` is word-aligned (past the head) and the word lies inside the range.
        let word = unsafe { (*src.add(i).cast::<AtomicUsize>()).load(Ordering::Relaxed) };
        dst[i..i + WORD].copy_from_slice(&word.to_ne_bytes());
        i += WORD;
    }
    while i < len {
        // SAFETY: as for the head.
        dst[i] = unsafe { (*src.add(i).cast::<AtomicU8>()).load(Ordering::Relaxed) };
        i += 1;
    }
}

/// Copies `src` into shared memory at `dst`, with relaxed atomic stores as [`copy_out`] loads.
///
/// # Safety
/// `dst..dst + src.len()` is mapped and writable, and accessed only atomically by this process.
#[inline]
pub(crate) unsafe fn copy_in(src: &[u8], dst: *mut u8) {
    let len = src.len();
    // SAFETY: `dst` is writable for `len` bytes (contract) and `src` is a shared borrow, which
    // shared memory accessed only atomically cannot be, so the two do not overlap.
    if len >= WIDE_COPY_MIN && unsafe { wide_copy(src.as_ptr(), dst, len) } {
        return;
    }
    let head = dst.align_offset(WORD).min(len);
    let mut i = 0;
    while i < head {
        // SAFETY: `dst + i` is inside the writable range; AtomicU8 has no alignment requirement.
        unsafe { (*dst.add(i).cast::<AtomicU8>()).store(src[i], Ordering::Relaxed) };
        i += 1;
    }
    while i + WORD <= len {
        let mut word = [0; WORD];
        word.copy_from_slice(&src[i..i + WORD]);
        // SAFETY: `dst + i` is word-aligned (past the head) and the word lies inside the range.
        unsafe {
            (*dst.add(i).cast::<AtomicUsize>()).store(usize::from_ne_bytes(word), Ordering::Relaxed)
        };
        i += WORD;
    }
    while i < len {
        // SAFETY: as for the head.
        unsafe { (*dst.add(i).cast::<AtomicU8>()).store(src[i], Ordering::Relaxed) };
        i += 1;
    }
}

/// A mapping of memory that may be shared with other processes, which stays mapped for as long as
/// the value lives. Implemented by [`Attachment`](crate::sysv::shm::Attachment) and
/// [`Mmap`](crate::mmap::Mmap); a [`SharedRegion`] holds one in an [`Arc`] so that whatever is
/// placed in it cannot outlive it.
///
/// # Safety
/// [`shared`](Self::shared) returns a view of memory that stays mapped, at the same address, until
/// the value is dropped, and the implementation hands out no plain reference to those bytes in safe
/// code.
pub unsafe trait Mapping: Send + Sync + 'static {
    /// The mapping's bytes (for a file, those it backs now).
    fn shared(&self) -> Result<SharedSlice<'_>>;
}

/// A byte range of a [`Mapping`] that keeps the mapping alive: cloning it clones an [`Arc`], and
/// the memory is unmapped only when the last clone (and the last thing placed in it) is gone. It is
/// what [`sync`](crate::sync) primitives are placed in, so that no lock, guard or forgotten guard
/// can point into unmapped memory.
///
/// ```
/// use std::sync::Arc;
/// use ipckit::shared::SharedRegion;
///
/// let memory = Arc::new(ipckit::mmap::Mmap::anonymous(4096)?);
/// let mut region = SharedRegion::new(memory)?;
/// let head = region.split_to(64)?; // bytes 0..64; `region` keeps 64..4096
/// assert_eq!((head.offset(), head.len(), region.offset()), (0, 64, 64));
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedRegion {
    /// Keeps the memory mapped; never read.
    _map: Arc<dyn Mapping>,
    ptr: NonNull<u8>,
    offset: usize,
    len: usize,
    writable: bool,
    object: Arc<Object>,
}

// SAFETY: the region only gives access through SharedSlice (atomics) and raw pointers; the mapping
// it keeps alive is Send + Sync.
unsafe impl Send for SharedRegion {}
// SAFETY: as for Send.
unsafe impl Sync for SharedRegion {}

impl SharedRegion {
    /// The whole of `map`.
    pub fn new<M: Mapping>(map: Arc<M>) -> Result<SharedRegion> {
        let (ptr, len, writable, object) = {
            let s = map.shared()?;
            (s.ptr, s.len, s.writable, s.object.clone())
        };
        Ok(SharedRegion {
            _map: map,
            ptr,
            offset: 0,
            len,
            writable,
            object: Arc::new(object),
        })
    }

    /// The region's bytes.
    pub fn bytes(&self) -> SharedSlice<'_> {
        // SAFETY: `ptr..ptr + len` lies inside the mapping, which `self._map` keeps mapped for as
        // long as `self` lives; Mapping's contract rules out plain references to it.
        unsafe { SharedSlice::from_raw_parts(self.ptr, self.len, self.writable, &self.object) }
    }

    /// The offset of the region's first byte in its mapping.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the memory is writable.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// What the memory belongs to.
    pub fn object(&self) -> &Object {
        &self.object
    }

    /// The address of the first byte; it stays valid while `self` (or a clone) lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The bytes `range` of this region, as a region of their own.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<SharedRegion> {
        let sub = self.bytes().get(range)?;
        let start = sub.ptr.as_ptr() as usize - self.ptr.as_ptr() as usize;
        Ok(SharedRegion {
            ptr: sub.ptr,
            offset: self.offset + start,
            len: sub.len,
            ..self.clone()
        })
    }

    /// Splits off the first `len` bytes as a region of their own; `self` keeps the rest.
    pub fn split_to(&mut self, len: usize) -> Result<SharedRegion> {
        let head = self.slice(..len)?;
        *self = self.slice(len..)?;
        Ok(head)
    }

    /// Splits off the first `len` bytes after padding `self` to `align` (a power of two) — the
    /// room for one value of that size and alignment; `self` keeps the rest.
    pub fn take(&mut self, len: usize, align: usize) -> Result<SharedRegion> {
        if !align.is_power_of_two() {
            return Err(Error::invalid(
                "take",
                (*self.object).clone(),
                format!("alignment {align} is not a power of two"),
            ));
        }
        let pad = self.ptr.as_ptr().align_offset(align);
        if pad > self.len {
            return Err(Error::invalid(
                "take",
                (*self.object).clone(),
                format!(
                    "{len} bytes aligned to {align} do not fit in the {} bytes left",
                    self.len
                ),
            ));
        }
        *self = self.slice(pad..)?;
        self.split_to(len)
    }
}

impl fmt::Debug for SharedRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRegion")
            .field("object", &self.object)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

/// Heap memory that implements [`Mapping`]: for placing primitives that only threads share, for
/// tests, and for Miri. Zero-filled, aligned to 64 bytes.
pub struct HeapMemory {
    words: Box<[CacheLine]>,
    len: usize,
    object: Object,
}

#[repr(C, align(64))]
struct CacheLine([AtomicU64; 8]);

// SAFETY: all-zero bytes are a valid CacheLine (atomics of zero).
unsafe impl Zeroable for CacheLine {}

impl HeapMemory {
    /// `len` zero bytes (at least one cache line is allocated).
    pub fn new(len: usize) -> HeapMemory {
        let lines = len.div_ceil(64).max(1);
        let words = (0..lines).map(|_| CacheLine::zeroed()).collect();
        HeapMemory {
            words,
            len,
            object: Object::Other(format!("{len} bytes of heap memory").into()),
        }
    }
}

// SAFETY: the boxed cache lines never move while `self` lives, are made only of atomics (so any
// access through SharedSlice is atomic and no plain reference to them is handed out), and are
// freed only on drop.
unsafe impl Mapping for HeapMemory {
    fn shared(&self) -> Result<SharedSlice<'_>> {
        // From the whole slice, so that the pointer may reach every line.
        let ptr = NonNull::new(self.words.as_ptr().cast_mut().cast::<u8>())
            .expect("a boxed slice's pointer is never null");
        // SAFETY: the lines are readable and writable through their atomics (interior mutability)
        // for as long as `&self` lives; `len` fits in them.
        Ok(unsafe { SharedSlice::from_raw_parts(ptr, self.len, true, &self.object) })
    }
}

impl fmt::Debug for HeapMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapMemory")
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    atomic_struct! {
        struct Pair {
            a: AtomicU32,
            b: [AtomicU16; 2],
        }
    }

    fn heap(len: usize) -> HeapMemory {
        HeapMemory::new(len)
    }

    #[test]
    fn copies_round_trip_at_every_alignment_and_length() {
        // Long: many 64-byte blocks, then words and bytes.
        const LONG: usize = 4096;
        let mem = heap(LONG + 64);
        let s = mem.shared().unwrap();
        let wide = WIDE_COPY_MIN;
        let short = [
            0,
            1,
            7,
            8,
            9,
            15,
            16,
            17,
            63,
            100,
            wide - 1,
            wide,
            wide + 9,
            wide + 71,
        ];
        let long = [LONG - 1, LONG, LONG + 9];
        let cases = (0..17)
            .flat_map(|offset| short.map(|len| (offset, len)))
            .chain(
                [0, 1, 8, 9]
                    .into_iter()
                    .flat_map(|offset| long.map(|len| (offset, len))),
            );
        for (offset, len) in cases {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + offset) as u8).collect();
            s.write_at(offset, &data).unwrap();
            let mut back = vec![0; len];
            s.read_at(offset, &mut back).unwrap();
            assert_eq!(back, data, "offset {offset} len {len}");
            // Nothing past the range is written.
            if offset + len < s.len() {
                s.write_at(offset + len, &[0xee]).unwrap();
                s.write_at(offset, &data).unwrap();
                let after = s.read::<u8>(offset + len).unwrap();
                assert_eq!(after, 0xee, "offset {offset} len {len}");
            }
        }
    }

    /// Copies with `copy` at every alignment of both ends to a 64-byte line, at each of `lens`,
    /// and checks that exactly those bytes were copied; stops early if `copy` returns `false`
    /// (it copied nothing: no such copy here).
    ///
    /// `copy` is called with a source and destination valid for the length, in distinct
    /// mappings that this thread alone uses while it runs.
    fn check_copies_at_every_alignment(
        lens: &[usize],
        copy: impl Fn(*const u8, *mut u8, usize) -> bool,
    ) {
        const GUARD: usize = 64;
        let max = lens.iter().max().unwrap() + 64 + 2 * GUARD;
        // 64-byte aligned buffers, so that the offsets below are the alignments.
        let src = HeapMemory::new(max);
        let dst = HeapMemory::new(max);
        let (src, dst) = (src.shared().unwrap(), dst.shared().unwrap());
        let pattern: Vec<u8> = (0..max).map(|i| (i * 13 + 1) as u8).collect();
        src.write_at(0, &pattern).unwrap();
        for &len in lens {
            for (s_off, d_off) in (0..64).flat_map(|s| [(s, 0), (s, 8), (0, s), (s, s)]) {
                dst.write_at(0, &vec![0xee; max]).unwrap();
                let (from, to) = (GUARD + s_off, GUARD + d_off);
                // `max` covers the largest length at the largest offsets.
                if !copy(
                    src.as_ptr().wrapping_add(from),
                    dst.as_ptr().wrapping_add(to),
                    len,
                ) {
                    return;
                }
                let mut back = vec![0; max];
                dst.read_at(0, &mut back).unwrap();
                let case = format!("len {len}, source offset {s_off}, destination offset {d_off}");
                assert_eq!(&back[to..to + len], &pattern[from..from + len], "{case}");
                assert!(
                    back[..to].iter().all(|&b| b == 0xee),
                    "{case}: bytes before"
                );
                assert!(
                    back[to + len..].iter().all(|&b| b == 0xee),
                    "{case}: bytes after"
                );
            }
        }
    }

    #[test]
    fn wide_copies_move_exactly_their_bytes_at_every_alignment() {
        // Lengths around each of the copy's steps: the 16-byte loop below AVX_COPY_MIN, and
        // above it the bytes and words that align the destination, the 64-byte blocks, and the
        // words and bytes after them; `rep movsb` from REP_COPY_MIN where it is fast.
        let lens = [
            WIDE_COPY_MIN,
            WIDE_COPY_MIN + 7,
            AVX_COPY_MIN - 1,
            AVX_COPY_MIN,
            AVX_COPY_MIN + 1,
            AVX_COPY_MIN + 31,
            AVX_COPY_MIN + 63,
            1000,
            REP_COPY_MIN - 1,
            REP_COPY_MIN,
            REP_COPY_MIN + 13,
        ];
        // SAFETY: the ranges are valid and disjoint, and this thread alone uses them
        // (`check_copies_at_every_alignment`'s promise). `false`: no assembly copy here
        // (another architecture, Miri).
        check_copies_at_every_alignment(&lens, |src, dst, len| unsafe { wide_copy(src, dst, len) });
    }

    #[test]
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    fn rep_copies_move_exactly_their_bytes_at_every_alignment() {
        // `copy_rep` runs on every x86-64 CPU (only its speed differs), so it is tested here
        // directly, whether or not `wide_copy` takes it on this machine.
        let lens = [
            1,
            63,
            64,
            65,
            REP_COPY_MIN - 1,
            REP_COPY_MIN,
            REP_COPY_MIN + 77,
        ];
        check_copies_at_every_alignment(&lens, |src, dst, len| {
            // SAFETY: as in `wide_copies_move_exactly_their_bytes_at_every_alignment`.
            unsafe { copy_rep(src, dst, len) };
            true
        });
    }

    #[test]
    fn out_of_range_accesses_are_errors() {
        let mem = heap(100);
        let s = mem.shared().unwrap();
        assert!(s.read_at(98, &mut [0; 3]).is_err());
        assert!(s.write_at(usize::MAX, &[1]).is_err());
        assert!(s.read::<u64>(93).is_err());
        assert!(s.read::<u64>(92).is_ok());
        assert!(s.atomic_u64(4).is_err(), "misaligned");
        assert!(s.atomic_u64(96).is_err(), "past the end");
        assert!(s.get((Bound::Included(50), Bound::Excluded(40))).is_err());
        assert!(s.get(..101).is_err());
        assert_eq!(s.get(10..20).unwrap().len(), 10);
    }

    #[test]
    fn pod_values_atomics_and_views_see_the_same_bytes() {
        let mem = heap(64);
        let s = mem.shared().unwrap();
        s.write(3, &0x1122_3344_5566_7788u64).unwrap(); // unaligned is fine for copies
        assert_eq!(s.read::<u64>(3).unwrap(), 0x1122_3344_5566_7788);
        s.atomic_u32(8).unwrap().store(9, Ordering::Relaxed);
        assert_eq!(s.read::<u32>(8).unwrap(), 9);
        assert_eq!(s.load_u32(8, Ordering::Acquire).unwrap(), 9);
        let pair = s.view::<Pair>(16).unwrap();
        pair.b[1].store(5, Ordering::Relaxed);
        assert_eq!(s.read::<u16>(16 + 6).unwrap(), 5);
        s.fill(0xAB).unwrap();
        assert!(s.to_vec().iter().all(|&b| b == 0xAB));
        let mut words = [0u32; 2];
        s.read_slice(0, &mut words).unwrap();
        assert_eq!(words, [0xABAB_ABAB; 2]);
    }

    #[test]
    fn read_only_slices_refuse_writes_and_in_place_atomics() {
        let mem = heap(64);
        let rw = mem.shared().unwrap();
        rw.write(0, &7u32).unwrap();
        // SAFETY: same memory, read-only view; all accesses are atomic.
        let ro = unsafe { SharedSlice::from_raw_parts(rw.ptr, 64, false, rw.object) };
        assert!(ro.write_at(0, &[1]).is_err());
        assert!(ro.atomic_u32(0).is_err());
        assert!(ro.fill(0).is_err());
        assert_eq!(ro.load_u32(0, Ordering::Acquire).unwrap(), 7);
        assert_eq!(ro.read::<u32>(0).unwrap(), 7);
    }

    #[test]
    fn unchecked_views_check_bounds_alignment_and_write_access() {
        let mem = heap(64);
        let s = mem.shared().unwrap();
        s.write(8, &41u64).unwrap();
        // SAFETY: nothing else touches the heap memory while the references live.
        unsafe {
            *s.view_mut_unchecked::<u64>(8).unwrap() += 1;
            assert_eq!(*s.view_unchecked::<u64>(8).unwrap(), 42);
            assert!(s.view_unchecked::<u64>(4).is_err(), "misaligned");
            assert!(s.view_unchecked::<u64>(64).is_err(), "past the end");
            let ro = SharedSlice::from_raw_parts(s.ptr, 64, false, s.object);
            assert!(ro.view_mut_unchecked::<u64>(8).is_err(), "read-only");
            assert_eq!(*ro.view_unchecked::<u64>(8).unwrap(), 42);
        }
    }

    #[test]
    fn regions_split_take_and_keep_the_mapping_alive() {
        let mem = Arc::new(heap(256));
        let mut region = SharedRegion::new(mem.clone()).unwrap();
        let head = region.split_to(10).unwrap();
        assert_eq!((head.offset(), head.len()), (0, 10));
        let word = region.take(8, 8).unwrap();
        assert_eq!((word.offset(), word.len()), (16, 8));
        assert_eq!(region.offset(), 24);
        assert!(region.take(8, 3).is_err());
        assert!(region.split_to(1000).is_err());
        word.bytes()
            .atomic_u64(0)
            .unwrap()
            .store(1, Ordering::Relaxed);
        drop(mem);
        let keep = word.clone();
        drop(region);
        drop(head);
        drop(word);
        // `keep` alone holds the heap memory now.
        assert_eq!(keep.bytes().load_u64(0, Ordering::Relaxed).unwrap(), 1);
    }

    #[test]
    fn concurrent_writers_give_torn_values_not_undefined_behaviour() {
        let mem = heap(64);
        let s = mem.shared().unwrap();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..200u64 {
                    s.write(0, &[i; 4]).unwrap();
                }
            });
            for _ in 0..200 {
                let v: [u64; 4] = s.read(0).unwrap();
                assert!(v.iter().all(|&w| w < 200));
            }
        });
    }
}
