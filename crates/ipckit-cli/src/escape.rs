//! Names in table cells, escaped as lsipc escapes them, so that a name holding a newline, a tab or
//! bytes that are not UTF-8 cannot split or misalign a row.
//!
//! util-linux (`mbs_safe_encode`) writes every byte of a character that is not printable, and
//! every byte that is not part of a valid character, as `\xNN` (two lower-case hex digits), and a
//! backslash that is followed by `x` as `\x5c`, so that the output reads back unambiguously.
//! Printable characters, spaces included, stay as they are. JSON does not go through here: it
//! carries names losslessly (see `ipckit::inspect`'s serialization).

use std::ffi::OsStr;
use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;

/// `name` as a table cell: lsipc's escaping of control characters, of bytes that are not UTF-8
/// and of a backslash before `x`.
pub fn cell(name: &OsStr) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.as_bytes().utf8_chunks() {
        let mut chars = chunk.valid().chars().peekable();
        while let Some(c) = chars.next() {
            let escape = c.is_control() || (c == '\\' && chars.peek() == Some(&'x'));
            if escape {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    hex(&mut out, b);
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            hex(&mut out, b);
        }
    }
    out
}

fn hex(out: &mut String, b: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "\\x{b:02x}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(bytes: &[u8]) -> String {
        cell(OsStr::from_bytes(bytes))
    }

    #[test]
    fn printable_names_are_unchanged() {
        assert_eq!(esc(b"/jobs"), "/jobs");
        assert_eq!(esc(b"/a b"), "/a b");
        assert_eq!(esc("/caf\u{e9}".as_bytes()), "/caf\u{e9}");
        assert_eq!(esc(br"/a\b"), r"/a\b");
    }

    #[test]
    fn control_characters_and_invalid_bytes_are_hex() {
        assert_eq!(esc(b"/a\nb"), r"/a\x0ab");
        assert_eq!(esc(b"/\t\x7f"), r"/\x09\x7f");
        assert_eq!(esc(b"/x\xff\xfe"), r"/x\xff\xfe");
        // A C1 control character is escaped byte by byte.
        assert_eq!(esc("/\u{85}".as_bytes()), r"/\xc2\x85");
        // A truncated multibyte character: each of its bytes.
        assert_eq!(esc(b"/\xc3"), r"/\xc3");
    }

    #[test]
    fn a_backslash_before_x_is_escaped_so_the_output_reads_back() {
        assert_eq!(esc(br"/\x41"), r"/\x5cx41");
        assert_eq!(esc(br"/\y"), r"/\y");
    }
}
