//! System V IPC keys: `IPC_PRIVATE`, explicit values, and `ftok(3)`.
//!
//! A key is the name under which unrelated processes find the same System V object. It is a plain
//! 32-bit number; [`Key::from_path`] derives one from a file the processes agree on, exactly as glibc's
//! `ftok` does.
//!
//! # The ftok caveat
//! `ftok` packs three things into 32 bits: the low 8 bits of `proj_id`, the low 8 bits of the file's
//! device number and the low 16 bits of its inode number. Two different files can therefore produce the
//! same key (inodes 0x10001 and 0x20001 on one device do), and a file that is deleted and recreated
//! usually gets a different key. Prefer explicit keys, or [`Key::PRIVATE`] when the object is handed to
//! children, where that matters.
//!
//! # References
//! [ftok(3)](https://man7.org/linux/man-pages/man3/ftok.3.html),
//! [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Object, Result};

/// A System V IPC key (`key_t`).
///
/// Displayed as ipcs shows it: `0x%08x` of the key's 32 bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(i32);

impl Key {
    /// `IPC_PRIVATE`: every `get` with it creates a new object that no other process can look up by
    /// key; share its id instead (children inherit it, or pass it along).
    pub const PRIVATE: Key = Key(libc::IPC_PRIVATE);

    /// A key with an explicit value.
    pub const fn new(value: i32) -> Key {
        Key(value)
    }

    /// The key's value as the kernel sees it (`key_t`, signed).
    pub const fn value(self) -> i32 {
        self.0
    }

    /// Whether this is [`Key::PRIVATE`].
    pub const fn is_private(self) -> bool {
        self.0 == libc::IPC_PRIVATE
    }

    /// `ftok(path, proj_id)`: the key glibc derives from a file and a project id, bit for bit.
    ///
    /// The file must exist (symbolic links are followed, as `stat` does). `proj_id` must be non-zero;
    /// only its 8 bits are used. See the [module documentation](self) for why two paths can collide.
    pub fn from_path(path: impl AsRef<Path>, proj_id: u8) -> Result<Key> {
        let path = path.as_ref();
        if proj_id == 0 {
            return Err(Error::invalid(
                "ftok",
                Object::Path(path.into()),
                "proj_id must be non-zero",
            ));
        }
        let meta =
            std::fs::metadata(path).map_err(|e| Error::os("ftok", Object::Path(path.into()), e))?;
        // glibc: (st_ino & 0xffff) | ((st_dev & 0xff) << 16) | ((proj_id & 0xff) << 24)
        let bits = (meta.ino() & 0xffff) as u32
            | ((meta.dev() & 0xff) as u32) << 16
            | (proj_id as u32) << 24;
        Ok(Key(bits as i32))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}", self.0 as u32)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

impl From<i32> for Key {
    fn from(value: i32) -> Key {
        Key(value)
    }
}

/// Parses `0x1234abcd` (hexadecimal, up to 32 bits) or a decimal number, signed or unsigned, as ipcs
/// and /proc/sysvipc print keys.
impl FromStr for Key {
    type Err = Error;

    fn from_str(s: &str) -> Result<Key> {
        let bad = || {
            Error::invalid(
                "parse key",
                Object::Other(format!("{s:?}").into()),
                "expected 0x followed by up to 8 hex digits, or a decimal number",
            )
        };
        let t = s.trim();
        if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            if hex.is_empty() || hex.len() > 8 {
                return Err(bad());
            }
            return u32::from_str_radix(hex, 16)
                .map(|v| Key(v as i32))
                .map_err(|_| bad());
        }
        if let Ok(v) = t.parse::<i32>() {
            return Ok(Key(v));
        }
        t.parse::<u32>().map(|v| Key(v as i32)).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_ipcs_does() {
        assert_eq!(Key::new(0x1234).to_string(), "0x00001234");
        assert_eq!(Key::new(-1).to_string(), "0xffffffff");
        assert_eq!(Key::PRIVATE.to_string(), "0x00000000");
    }

    #[test]
    fn parses_hex_and_signed_or_unsigned_decimal() {
        assert_eq!("0xffffffff".parse::<Key>().unwrap(), Key::new(-1));
        assert_eq!("4294967295".parse::<Key>().unwrap(), Key::new(-1));
        assert_eq!("-1".parse::<Key>().unwrap(), Key::new(-1));
        assert_eq!("0X10".parse::<Key>().unwrap(), Key::new(16));
        for bad in ["", "0x", "0x123456789", "zz", "0xg", "4294967296"] {
            assert!(bad.parse::<Key>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn from_path_rejects_zero_proj_and_missing_file() {
        assert!(Key::from_path("/", 0).is_err());
        let e = Key::from_path("/no/such/file/for/ipckit", 1).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert!(e.to_string().contains("/no/such/file/for/ipckit"));
    }
}
