//! `Key::from_path` against glibc's own `ftok`, bit for bit.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ipckit::Key;
use ipckit_testkit::{unique_path, Defer};

/// glibc's `ftok`, the oracle.
fn glibc_ftok(path: &Path, proj: u8) -> i32 {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let key = unsafe { libc::ftok(c.as_ptr(), libc::c_int::from(proj)) };
    assert_ne!(key, -1, "glibc ftok failed for {}", path.display());
    key
}

#[test]
fn from_path_is_bit_identical_to_glibc_ftok() {
    let dir = unique_path("ftok");
    std::fs::create_dir(&dir).unwrap();
    let _cleanup = Defer(|| {
        let _ = std::fs::remove_dir_all(&dir);
    });
    // Files with many different inode numbers, plus system paths on other devices (/proc, /dev).
    let mut paths: Vec<std::path::PathBuf> = (0..40)
        .map(|i| {
            let p = dir.join(format!("f{i}"));
            std::fs::write(&p, b"x").unwrap();
            p
        })
        .collect();
    paths.extend(["/", "/tmp", "/proc/self", "/dev/null", "/etc/passwd"].map(Into::into));
    for path in &paths {
        for proj in [1u8, b'a', b'Z', 0x7f, 0x80, 0xff] {
            let ours = Key::from_path(path, proj).unwrap();
            let theirs = glibc_ftok(path, proj);
            assert_eq!(
                ours.value(),
                theirs,
                "path {} proj {proj:#x}: ours {ours}, glibc {theirs:#010x}",
                path.display()
            );
        }
    }
}

#[test]
fn from_path_follows_symlinks_as_ftok_does() {
    let dir = unique_path("ftok-link");
    std::fs::create_dir(&dir).unwrap();
    let _cleanup = Defer(|| {
        let _ = std::fs::remove_dir_all(&dir);
    });
    let target = dir.join("target");
    std::fs::write(&target, b"x").unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_eq!(
        Key::from_path(&link, 7).unwrap(),
        Key::from_path(&target, 7).unwrap()
    );
    assert_eq!(
        Key::from_path(&link, 7).unwrap().value(),
        glibc_ftok(&link, 7)
    );
}

#[test]
fn different_proj_ids_give_different_keys_for_one_path() {
    let a = Key::from_path("/", 1).unwrap();
    let b = Key::from_path("/", 2).unwrap();
    assert_ne!(a, b);
    // Only the top byte differs: proj_id occupies bits 24..32.
    assert_eq!((a.value() ^ b.value()) as u32 & 0x00ff_ffff, 0);
}
