//! Typed views into mapped memory: the overflow, bounds and alignment checks shared by every module
//! that hands out `&T` or `&[T]` over shared bytes ([`sysv::shm`](crate::sysv::shm),
//! [`mmap`](crate::mmap)).
//!
//! A [`Region`] describes the bytes a view may use (where they start and how many there are) and
//! what they belong to, so that a refused request says which type, which offset and which size.

use std::mem;
use std::ops::Range;

use bytemuck::{AnyBitPattern, Pod};

use crate::error::{Error, Object, Result};

/// Bytes that typed views may cover: `len` bytes from address `addr`, belonging to `object`.
pub(crate) struct Region<'a> {
    /// What the bytes belong to; named by every error.
    pub(crate) object: &'a Object,
    /// What the bytes are called in messages ("segment", "mapping").
    pub(crate) noun: &'static str,
    /// The address of byte 0, for the alignment check.
    pub(crate) addr: usize,
    /// How many bytes views may cover.
    pub(crate) len: usize,
}

impl Region<'_> {
    /// The region of the bytes of `bytes`.
    pub(crate) fn of<'a>(object: &'a Object, noun: &'static str, bytes: &[u8]) -> Region<'a> {
        Region {
            object,
            noun,
            addr: bytes.as_ptr() as usize,
            len: bytes.len(),
        }
    }

    fn bad(&self, op: &'static str, reason: String) -> Error {
        Error::invalid(op, self.object.clone(), reason)
    }

    /// The byte range of one `T` (`count` None) or of `count` values of `T` at `offset`, checked
    /// for overflow, bounds and alignment, with errors that name the type, the offset and the
    /// region's size. Slices of zero-sized types are refused.
    pub(crate) fn range<T>(
        &self,
        op: &'static str,
        offset: usize,
        count: Option<usize>,
    ) -> Result<Range<usize>> {
        let ty = std::any::type_name::<T>();
        let (size, align) = (mem::size_of::<T>(), mem::align_of::<T>());
        let (len, noun) = (self.len, self.noun);
        if count.is_some() && size == 0 {
            let reason = format!(
                "a slice of zero-sized {ty} at offset {offset} is refused ({len}-byte {noun})"
            );
            return Err(self.bad(op, reason));
        }
        let what = match count {
            None => ty.to_string(),
            Some(n) => format!("{n} × {ty}"),
        };
        let end = count
            .unwrap_or(1)
            .checked_mul(size)
            .and_then(|bytes| offset.checked_add(bytes))
            .ok_or_else(|| {
                self.bad(
                    op,
                    format!(
                        "{what} at offset {offset} overflows the address range ({len}-byte {noun})"
                    ),
                )
            })?;
        if end > len {
            return Err(self.bad(
                op,
                format!(
                    "{what} ({} bytes) at offset {offset} does not fit in the {len}-byte {noun}",
                    end - offset
                ),
            ));
        }
        if self.addr.wrapping_add(offset) % align != 0 {
            return Err(self.bad(
                op,
                format!(
                    "{ty} needs {align}-byte alignment but offset {offset} is not aligned ({len}-byte {noun})"
                ),
            ));
        }
        Ok(offset..end)
    }

    fn cast_error(&self, op: &'static str, e: bytemuck::PodCastError) -> Error {
        self.bad(op, format!("{e:?}"))
    }

    /// The `T` at `offset` of `bytes`, which are the region's bytes.
    pub(crate) fn view<'b, T: AnyBitPattern>(
        &self,
        op: &'static str,
        bytes: &'b [u8],
        offset: usize,
    ) -> Result<&'b T> {
        debug_assert_eq!(
            (bytes.as_ptr() as usize, bytes.len()),
            (self.addr, self.len)
        );
        let r = self.range::<T>(op, offset, None)?;
        bytemuck::try_from_bytes(&bytes[r]).map_err(|e| self.cast_error(op, e))
    }

    /// `count` values of `T` at `offset` of `bytes`, which are the region's bytes.
    pub(crate) fn slice<'b, T: AnyBitPattern>(
        &self,
        op: &'static str,
        bytes: &'b [u8],
        offset: usize,
        count: usize,
    ) -> Result<&'b [T]> {
        debug_assert_eq!(
            (bytes.as_ptr() as usize, bytes.len()),
            (self.addr, self.len)
        );
        let r = self.range::<T>(op, offset, Some(count))?;
        bytemuck::try_cast_slice(&bytes[r]).map_err(|e| self.cast_error(op, e))
    }

    /// The `T` at `offset` of `bytes`, which are the region's bytes, for writing.
    pub(crate) fn view_mut<'b, T: Pod>(
        &self,
        op: &'static str,
        bytes: &'b mut [u8],
        offset: usize,
    ) -> Result<&'b mut T> {
        debug_assert_eq!(
            (bytes.as_ptr() as usize, bytes.len()),
            (self.addr, self.len)
        );
        let r = self.range::<T>(op, offset, None)?;
        bytemuck::try_from_bytes_mut(&mut bytes[r]).map_err(|e| self.cast_error(op, e))
    }

    /// `count` values of `T` at `offset` of `bytes`, which are the region's bytes, for writing.
    pub(crate) fn slice_mut<'b, T: Pod>(
        &self,
        op: &'static str,
        bytes: &'b mut [u8],
        offset: usize,
        count: usize,
    ) -> Result<&'b mut [T]> {
        debug_assert_eq!(
            (bytes.as_ptr() as usize, bytes.len()),
            (self.addr, self.len)
        );
        let r = self.range::<T>(op, offset, Some(count))?;
        bytemuck::try_cast_slice_mut(&mut bytes[r]).map_err(|e| self.cast_error(op, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(8))]
    struct Aligned([u8; 64]);

    fn region(object: &Object, addr: usize, len: usize) -> Region<'_> {
        Region {
            object,
            noun: "segment",
            addr,
            len,
        }
    }

    #[test]
    fn range_checks_bounds_overflow_alignment_and_zero_sized_slices() {
        let obj = Object::ShmId(1);
        let r = region(&obj, 4096, 100);
        assert_eq!(r.range::<u32>("view", 96, None).unwrap(), 96..100);
        assert_eq!(r.range::<u64>("slice", 8, Some(0)).unwrap(), 8..8);
        let text = r.range::<u32>("view", 98, None).unwrap_err().to_string();
        assert!(
            text.contains("98") && text.contains("100-byte segment"),
            "{text}"
        );
        let text = r.range::<u64>("view", 4, None).unwrap_err().to_string();
        assert!(
            text.contains("8-byte alignment") && text.contains(" 4 "),
            "{text}"
        );
        assert!(r.range::<u64>("slice", 8, Some(usize::MAX)).is_err());
        assert!(r.range::<u8>("view", usize::MAX, None).is_err());
        assert!(r.range::<()>("slice", 0, Some(1)).is_err());
        assert!(r.range::<()>("view", 100, None).is_ok());
    }

    #[test]
    fn views_cast_the_checked_bytes() {
        let obj = Object::ShmId(1);
        let mut buf = Aligned([0; 64]);
        buf.0[8..12].copy_from_slice(&7u32.to_ne_bytes());
        let r = Region::of(&obj, "segment", &buf.0);
        assert_eq!(*r.view::<u32>("view", &buf.0, 8).unwrap(), 7);
        assert_eq!(r.slice::<u32>("slice", &buf.0, 8, 2).unwrap(), &[7, 0]);
        *r.view_mut::<u32>("view_mut", &mut buf.0, 12).unwrap() = 9;
        assert_eq!(
            r.slice_mut::<u32>("slice_mut", &mut buf.0, 8, 2).unwrap(),
            &[7, 9]
        );
    }
}
