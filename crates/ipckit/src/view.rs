//! The overflow, bounds and alignment checks shared by every accessor of mapped memory
//! ([`shared`](crate::shared), [`sysv::shm`](crate::sysv::shm), [`mmap`](crate::mmap)).
//!
//! A [`Region`] describes the bytes an accessor may use (where they start and how many there are)
//! and what they belong to, so that a refused request says which type, which offset and which size.
//! It only computes ranges: it never touches the bytes, so its tests run under Miri.

use std::mem;
use std::ops::Range;

use crate::error::{Error, Object, Result};

/// Bytes that accessors may cover: `len` bytes from address `addr`, belonging to `object`.
pub(crate) struct Region<'a> {
    /// What the bytes belong to; named by every error.
    pub(crate) object: &'a Object,
    /// What the bytes are called in messages ("segment", "mapping", "shared memory").
    pub(crate) noun: &'static str,
    /// The address of byte 0, for the alignment check.
    pub(crate) addr: usize,
    /// How many bytes accessors may cover.
    pub(crate) len: usize,
}

impl Region<'_> {
    fn bad(&self, op: &'static str, reason: String) -> Error {
        Error::invalid(op, self.object.clone(), reason)
    }

    /// The byte range of one `T` (`count` None) or of `count` values of `T` at `offset`, checked
    /// for overflow, bounds and alignment, with errors that name the type, the offset and the
    /// region's size. Slices of zero-sized types are refused. For in-place access.
    pub(crate) fn range<T>(
        &self,
        op: &'static str,
        offset: usize,
        count: Option<usize>,
    ) -> Result<Range<usize>> {
        let r = self.span::<T>(op, offset, count)?;
        let (ty, align) = (std::any::type_name::<T>(), mem::align_of::<T>());
        let (len, noun) = (self.len, self.noun);
        if !self.addr.wrapping_add(offset).is_multiple_of(align) {
            return Err(self.bad(
                op,
                format!(
                    "{ty} needs {align}-byte alignment but offset {offset} is not aligned ({len}-byte {noun})"
                ),
            ));
        }
        Ok(r)
    }

    /// [`range`](Self::range) without the alignment check: for copies, which need none.
    pub(crate) fn span<T>(
        &self,
        op: &'static str,
        offset: usize,
        count: Option<usize>,
    ) -> Result<Range<usize>> {
        let ty = std::any::type_name::<T>();
        let size = mem::size_of::<T>();
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
        Ok(offset..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn span_checks_bounds_and_overflow_but_not_alignment() {
        let obj = Object::ShmId(1);
        let r = region(&obj, 4096, 100);
        assert_eq!(r.span::<u64>("read", 4, None).unwrap(), 4..12);
        assert!(r.range::<u64>("view", 4, None).is_err());
        assert_eq!(r.span::<u32>("read", 3, Some(2)).unwrap(), 3..11);
        assert!(r.span::<u64>("read", 93, None).is_err());
        assert!(r.span::<u64>("read", 8, Some(usize::MAX)).is_err());
        assert!(r.span::<()>("read", 0, Some(1)).is_err());
    }
}
