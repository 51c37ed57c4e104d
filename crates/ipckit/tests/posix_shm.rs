//! POSIX shared memory and memory files: name validation, create/open/exclusive, mode, size,
//! unlink and the owning handle, another process by name, C programs both ways, memfd seals and a
//! sealed memfd inherited by a child.
//!
//! Every named object has a unique name and is unlinked by an `OwnedSharedMemory` or a `Defer`
//! guard, so nothing is left in /dev/shm even when an assertion fails.

use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use ipckit::posix::shm::{validate_name, Memfd, Seals, SharedMemory};
use ipckit::Object;
use ipckit_testkit::{
    child_role, no_process_starts, spawn, spawn_self, unique_name, CProgram, Defer,
};

/// Carries a shared-memory name to a re-executed test process.
const NAME_VAR: &str = "IPCKIT_TEST_SHM_NAME";
/// Carries an inherited descriptor number to a re-executed test process.
const FD_VAR: &str = "IPCKIT_TEST_FD";

fn dev_shm(name: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(name.trim_start_matches('/'))
}

/// Unlinks `name` when dropped, whatever happened.
fn unlink_guard(name: &str) -> Defer<impl FnMut()> {
    let name = name.to_string();
    Defer(move || {
        let _ = SharedMemory::unlink(&name);
    })
}

fn assert_invalid(err: ipckit::Error, name: &str) {
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name:?}: {err}");
    assert!(
        matches!(err, ipckit::Error::InvalidArgument { .. }),
        "{name:?}: not refused before the call: {err}"
    );
    assert_eq!(err.object(), &Object::PosixShm(name.into()));
}

#[test]
fn names_are_validated_before_any_system_call() {
    let stem = unique_name("esc").trim_start_matches('/').to_string();
    let dir = format!("/{stem}/b");
    let up = format!("../{stem}");
    let up_slash = format!("/../{stem}");
    let long = format!("/{}", "n".repeat(255));
    let bad = [
        "", "x", "/", "//", "/.", "/..", "//x", "/x/", "/a\0b", &dir, &up, &up_slash, &long,
    ];
    for name in bad {
        assert_invalid(validate_name(name).unwrap_err(), name);
        assert_invalid(SharedMemory::create(name, 64).unwrap_err(), name);
        assert_invalid(SharedMemory::create_exclusive(name, 64).unwrap_err(), name);
        assert_invalid(SharedMemory::open(name).unwrap_err(), name);
        assert_invalid(SharedMemory::unlink(name).unwrap_err(), name);
    }
    for path in [
        PathBuf::from("/dev/shm").join(&stem),
        PathBuf::from("/dev").join(&stem),
        PathBuf::from("/").join(&stem),
    ] {
        assert!(!path.exists(), "{} was created", path.display());
    }
    for good in [
        "/a",
        "/ipckit.x-1",
        "/...",
        "/.hidden",
        &format!("/{}", "n".repeat(254)),
    ] {
        assert!(validate_name(good).is_ok(), "{good:?}");
    }
}

#[test]
fn create_open_exclusive_and_not_found() {
    let name = unique_name("coe");
    let _guard = unlink_guard(&name);
    let err = SharedMemory::open(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.op(), "shm_open");
    assert_eq!(err.object(), &Object::PosixShm(name.as_str().into()));

    let created = SharedMemory::create_exclusive(&name, 4096).unwrap();
    assert_eq!(created.name(), name.as_str());
    assert_eq!(created.size().unwrap(), 4096);
    assert!(dev_shm(&name).exists());

    let err = SharedMemory::create_exclusive(&name, 4096).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");

    // create without exclusive opens the existing object; it grows, never shrinks
    assert_eq!(
        SharedMemory::create(&name, 100).unwrap().size().unwrap(),
        4096
    );
    assert_eq!(
        SharedMemory::create(&name, 8192).unwrap().size().unwrap(),
        8192
    );
    let opened = SharedMemory::open(&name).unwrap();
    assert_eq!(opened.size().unwrap(), 8192);
    assert!(opened.is_writable());
}

#[test]
fn new_objects_have_mode_0600_by_default_and_the_mode_asked_for() {
    let name = unique_name("mode");
    let _shm = SharedMemory::create_exclusive(&name, 64)
        .unwrap()
        .into_owned();
    let mode = std::fs::metadata(dev_shm(&name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    let name = unique_name("mode");
    let _shm = SharedMemory::options()
        .mode(0o400)
        .exclusive(true)
        .open(&name)
        .unwrap()
        .into_owned();
    let mode = std::fs::metadata(dev_shm(&name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o400, "{mode:o}");

    let err = SharedMemory::options()
        .mode(0o4600)
        .create(true)
        .open(unique_name("mode"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[test]
fn opening_never_follows_a_symbolic_link() {
    let target = ipckit_testkit::unique_path("shm-target");
    std::fs::write(&target, b"keep").unwrap();
    let name = unique_name("link");
    let link = dev_shm(&name);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let _cleanup = Defer(|| {
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_file(&target);
    });
    let err = SharedMemory::open(&name).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
    let err = SharedMemory::create(&name, 4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
}

#[test]
fn resize_changes_the_size_and_mappings_see_the_file() {
    let name = unique_name("resize");
    let shm = SharedMemory::create_exclusive(&name, 4096)
        .unwrap()
        .into_owned();
    let first = shm.map().unwrap();
    assert_eq!(first.len(), 4096);
    first.write_at(4000, b"tail").unwrap();

    shm.resize(3 * 4096).unwrap();
    assert_eq!(shm.size().unwrap(), 3 * 4096);
    let second = shm.map().unwrap();
    assert_eq!(second.len(), 3 * 4096);
    let mut buf = [0; 4];
    second.read_at(4000, &mut buf).unwrap();
    assert_eq!(&buf, b"tail");
    second.write_at(2 * 4096, b"grown").unwrap();

    // Shrinking takes bytes away from both mappings: their accessors stop at the new end.
    shm.resize(100).unwrap();
    assert_eq!(first.backed_len().unwrap(), 100);
    assert_eq!(second.backed_len().unwrap(), 100);
    assert_eq!(second.shared().unwrap().len(), 100);
    let err = second.read_at(4000, &mut buf).unwrap_err();
    assert!(
        err.to_string().contains("past the end of the file"),
        "{err}"
    );
    assert_eq!(err.object(), &Object::PosixShm(name.as_str().into()));
    assert!(first.write_at(96, b"ok!!").is_ok());
    assert!(first.write_at(97, b"no!!").is_err());
}

#[test]
fn unlink_removes_the_name_but_not_open_handles_or_mappings() {
    let name = unique_name("unlink");
    let _guard = unlink_guard(&name);
    let shm = SharedMemory::create_exclusive(&name, 64).unwrap();
    let map = shm.map().unwrap();
    map.write_at(0, b"still here").unwrap();

    SharedMemory::unlink(&name).unwrap();
    assert!(!dev_shm(&name).exists());
    assert_eq!(
        SharedMemory::open(&name).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let err = SharedMemory::unlink(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.op(), "shm_unlink");

    drop(shm);
    assert_eq!(&map.read::<[u8; 10]>(0).unwrap(), b"still here");
}

#[test]
fn owned_shared_memory_unlinks_on_drop() {
    let name = unique_name("owned");
    let _guard = unlink_guard(&name);
    let owned = SharedMemory::create_exclusive(&name, 64)
        .unwrap()
        .into_owned();
    let map = owned.map().unwrap();
    assert!(dev_shm(&name).exists());
    drop(owned);
    assert!(!dev_shm(&name).exists(), "the name survived the drop");
    assert_eq!(map.shared().unwrap().len(), 64, "the mapping survives");

    let kept = SharedMemory::create_exclusive(&name, 64)
        .unwrap()
        .into_owned()
        .into_inner();
    assert!(dev_shm(&name).exists(), "into_inner gives up the unlink");
    drop(kept);
    assert!(dev_shm(&name).exists());
    SharedMemory::open(&name)
        .unwrap()
        .into_owned()
        .unlink()
        .unwrap();
    assert!(!dev_shm(&name).exists());
}

#[test]
fn read_only_handle_makes_only_read_only_mappings() {
    let name = unique_name("ro");
    let shm = SharedMemory::create_exclusive(&name, 4096)
        .unwrap()
        .into_owned();
    shm.map().unwrap().write_at(0, b"ro").unwrap();

    let ro = SharedMemory::options().read_only(true).open(&name).unwrap();
    assert!(!ro.is_writable());
    let err = ro.map().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_eq!(err.object(), &Object::PosixShm(name.as_str().into()));
    let map = ro.map_read_only().unwrap();
    assert_eq!(&map.read::<[u8; 2]>(0).unwrap(), b"ro");
    assert!(!map.is_writable());

    let err = SharedMemory::options()
        .read_only(true)
        .size(10)
        .open(&name)
        .unwrap_err();
    assert!(
        matches!(err, ipckit::Error::InvalidArgument { .. }),
        "{err}"
    );
}

#[test]
fn another_process_opens_by_name_and_sees_the_bytes() {
    if child_role().as_deref() == Some("open-by-name") {
        let name = std::env::var(NAME_VAR).unwrap();
        let shm = SharedMemory::open(&name).unwrap();
        let map = shm.map().unwrap();
        let mut buf = [0; 11];
        map.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"from parent");
        map.write_at(100, b"from child").unwrap();
        return;
    }
    let name = unique_name("byname");
    let shm = SharedMemory::create_exclusive(&name, 4096)
        .unwrap()
        .into_owned();
    let map = {
        let map = shm.map().unwrap();
        map.write_at(0, b"from parent").unwrap();
        map
    };
    let out = spawn_self(
        "another_process_opens_by_name_and_sees_the_bytes",
        "open-by-name",
    )
    .env(NAME_VAR, &name)
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "child failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    let mut reply = [0; 10];
    map.read_at(100, &mut reply).unwrap();
    assert_eq!(&reply, b"from child");
}

const C_WRITER: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int fd = shm_open(argv[1], O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) { perror("shm_open"); return 3; }
    if (ftruncate(fd, 4096) < 0) { perror("ftruncate"); return 4; }
    unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 5; }
    for (int i = 0; i < 4096; i++) p[i] = (unsigned char)(i * 7);
    memcpy(p, "written by C", 12);
    munmap(p, 4096);
    close(fd);
    return 0;
}
"#;

const C_READER: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int fd = shm_open(argv[1], O_RDONLY, 0);
    if (fd < 0) { perror("shm_open"); return 3; }
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size != 8192) { fprintf(stderr, "size\n"); return 4; }
    const unsigned char *p = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 5; }
    if (memcmp(p, "written by ipckit", 17) != 0) { fprintf(stderr, "text\n"); return 6; }
    for (int i = 17; i < 8192; i++)
        if (p[i] != (unsigned char)(i * 3)) { fprintf(stderr, "byte %d\n", i); return 7; }
    printf("C read 8192 bytes\n");
    return 0;
}
"#;

#[test]
fn c_program_creates_and_writes_and_ipckit_reads() {
    let exe = CProgram::compile("shm_writer", C_WRITER);
    let name = unique_name("c2rust");
    let _guard = unlink_guard(&name);
    let status = Command::new(&exe).arg(&name).status().unwrap();
    assert!(status.success(), "{status:?}");

    let shm = SharedMemory::open(&name).unwrap().into_owned();
    assert_eq!(shm.size().unwrap(), 4096);
    let map = shm.map_read_only().unwrap();
    let bytes = map.shared().unwrap().to_vec();
    assert_eq!(&bytes[..12], b"written by C");
    for (i, b) in bytes.iter().enumerate().skip(12) {
        assert_eq!(*b, (i * 7) as u8, "byte {i}");
    }
}

#[test]
fn ipckit_creates_and_writes_and_c_program_reads() {
    let exe = CProgram::compile("shm_reader", C_READER);
    let name = unique_name("rust2c");
    let shm = SharedMemory::create_exclusive(&name, 8192)
        .unwrap()
        .into_owned();
    {
        let map = shm.map().unwrap();
        let mut bytes: Vec<u8> = (0..8192).map(|i| (i * 3) as u8).collect();
        bytes[..17].copy_from_slice(b"written by ipckit");
        map.write_at(0, &bytes).unwrap();
    }
    let out = Command::new(&exe).arg(&name).output().unwrap();
    assert!(
        out.status.success(),
        "C reader: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "C read 8192 bytes\n");
}

#[test]
fn memfd_seals_forbid_growing_shrinking_and_writing_with_eperm() {
    let memfd = Memfd::create("seals", 4096).unwrap();
    assert_eq!(memfd.name(), "seals");
    assert_eq!(memfd.seals().unwrap(), Seals::empty());
    // A child forked by another test meanwhile would hold a copy of the writable mapping until it
    // execs, and F_SEAL_WRITE below would fail with EBUSY.
    let no_fork = no_process_starts();
    memfd.map().unwrap().write_at(0, b"before").unwrap(); // unmapped again at once

    memfd.seal(Seals::SHRINK | Seals::GROW).unwrap();
    assert_eq!(memfd.seals().unwrap(), Seals::SHRINK | Seals::GROW);
    for len in [8192, 100, 0] {
        let err = memfd.resize(len).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EPERM),
            "resize to {len}: {err}"
        );
    }
    assert_eq!(memfd.size().unwrap(), 4096);
    // Writing inside the size is still allowed; writing past it would grow the file.
    let mut file = std::fs::File::from(memfd.as_fd().try_clone_to_owned().unwrap());
    file.write_all(b"written").unwrap();
    let err = std::os::unix::fs::FileExt::write_at(&file, b"x", 4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");

    memfd.seal(Seals::WRITE | Seals::SEAL).unwrap();
    drop(no_fork);
    let err = file.write_all(b"again").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    let err = memfd.map().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    let map = memfd.map_read_only().unwrap();
    assert_eq!(&map.read::<[u8; 7]>(0).unwrap(), b"written");
    let err = memfd.seal(Seals::FUTURE_WRITE).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "sealed seals: {err}");
}

#[test]
fn write_seal_fails_while_a_writable_shared_mapping_exists() {
    let memfd = Memfd::create("busy", 4096).unwrap();
    // No child forked by another test may hold a copy of the mapping when it is dropped.
    let _no_fork = no_process_starts();
    let map = memfd.map().unwrap();
    let err = memfd.seal(Seals::WRITE).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");
    drop(map);
    memfd.seal(Seals::WRITE).unwrap();
    assert!(memfd.seals().unwrap().contains(Seals::WRITE));
}

#[test]
fn receiver_refuses_a_memfd_without_the_required_seals() {
    let memfd = Memfd::create("unsealed", 4096).unwrap();
    memfd.seal(Seals::GROW).unwrap();
    let dup = memfd.as_fd().try_clone_to_owned().unwrap();
    let err = Memfd::from_fd(dup, Seals::SHRINK | Seals::GROW).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("missing SHRINK") && text.contains("has GROW"),
        "{text}"
    );
    assert!(text.contains("memfd unsealed"), "{text}");

    let dup = memfd.as_fd().try_clone_to_owned().unwrap();
    let received = Memfd::from_fd(dup, Seals::GROW).unwrap();
    assert_eq!(received.name(), "unsealed");
    assert_eq!(received.size().unwrap(), 4096);

    // An ordinary file cannot carry seals at all.
    let path = ipckit_testkit::unique_path("not-memfd");
    let file = std::fs::File::create(&path).unwrap();
    let _cleanup = Defer(|| {
        let _ = std::fs::remove_file(&path);
    });
    assert!(Memfd::from_fd(OwnedFd::from(file), Seals::empty()).is_err());
}

#[test]
fn memfd_shrunk_then_sealed_maps_with_its_sealed_size() {
    // The sender's side: three pages, then shrunk to one and sealed against shrinking. (A shrink
    // and seal that land between the receiver's reads of the seals and of the size cannot be
    // timed from here; the unit test `mmap::tests::a_shrink_then_seal_between_the_reads_leaves_no_stale_size`
    // runs them at exactly that moment.)
    let page = ipckit::mmap::page_size();
    let sender = Memfd::create("shrunk", 3 * page as u64).unwrap();
    let early = sender
        .map_with(ipckit::mmap::MmapOptions::new().read_only())
        .unwrap();
    assert_eq!(early.backed_len().unwrap(), 3 * page);
    sender.resize(page as u64).unwrap();
    sender.seal(Seals::SHRINK).unwrap();
    assert_eq!(
        early.backed_len().unwrap(),
        page,
        "an unsealed mapping asks fstat"
    );

    let received =
        Memfd::from_fd(sender.as_fd().try_clone_to_owned().unwrap(), Seals::SHRINK).unwrap();
    let map = received.map_read_only().unwrap();
    assert_eq!((map.len(), map.backed_len().unwrap()), (page, page));
    // Mapped longer than the file: the sealed size bounds every accessor.
    let long = received
        .map_with(ipckit::mmap::MmapOptions::new().read_only().len(3 * page))
        .unwrap();
    assert_eq!((long.len(), long.backed_len().unwrap()), (3 * page, page));
    for m in [&map, &long, &early] {
        assert!(m.read::<u8>(page - 1).is_ok());
        assert!(m.read::<u8>(page).is_err());
        assert!(m.read_at(page - 1, &mut [0; 2]).is_err());
        assert_eq!(m.shared().unwrap().len(), page);
    }
    for m in [&long, &early] {
        let err = m.read::<u8>(page).unwrap_err();
        assert!(
            err.to_string().contains("past the end of the file"),
            "{err}"
        );
    }
}

#[test]
fn sealed_bytes_are_lent_only_when_nobody_can_write_them() {
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    let memfd = Memfd::create("frozen", 4096).unwrap();
    let refused = |map: ipckit::mmap::Mmap, what: &str| {
        let err = map.sealed_bytes().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
        assert!(err.to_string().contains("F_SEAL_WRITE"), "{what}: {err}");
    };
    // A child forked by another test meanwhile (sealed_memfd_inherited_by_a_child_is_readable
    // forks) would hold a copy of these shared mappings until it execs, and F_SEAL_WRITE below
    // would fail with EBUSY.
    let no_fork = no_process_starts();
    memfd.map().unwrap().write_at(0, &data).unwrap(); // unmapped at once
    refused(memfd.map_read_only().unwrap(), "not sealed");
    memfd.seal(Seals::SHRINK).unwrap();
    refused(memfd.map_read_only().unwrap(), "not sealed against writing");
    // (The read-only mappings above had to go first: a shared mapping of a descriptor open for
    // writing could be made writable with mprotect, and the kernel refuses F_SEAL_WRITE (EBUSY)
    // while one exists.)
    memfd.seal(Seals::WRITE).unwrap();
    drop(no_fork);

    let frozen = memfd.map_read_only().unwrap();
    assert_eq!(frozen.sealed_bytes().unwrap(), &data[..]);
    // A private writable mapping of the sealed file writes only its own copy: still refused.
    let private = ipckit::mmap::MmapOptions::new()
        .private()
        .read_write()
        .clone();
    refused(memfd.map_with(&private).unwrap(), "writable");

    // Sealed against writing but not against shrinking: the bytes could still go away.
    let write_only = Memfd::create("write-only", 64).unwrap();
    write_only.seal(Seals::WRITE).unwrap();
    assert!(write_only.map_read_only().unwrap().sealed_bytes().is_err());
    // FUTURE_WRITE leaves the sender's existing writable mapping working.
    let future = Memfd::create("future", 64).unwrap();
    let sender = future.map().unwrap();
    future.seal(Seals::FUTURE_WRITE | Seals::SHRINK).unwrap();
    sender.write_at(0, b"still writing").unwrap();
    assert!(future.map_read_only().unwrap().sealed_bytes().is_err());
    assert!(ipckit::mmap::Mmap::anonymous(64)
        .unwrap()
        .sealed_bytes()
        .is_err());
}

#[test]
fn memfd_names_are_checked_before_the_call() {
    let err = Memfd::create("a\0b", 10).unwrap_err();
    assert!(
        matches!(err, ipckit::Error::InvalidArgument { .. }),
        "{err}"
    );
    let err = Memfd::create(&"m".repeat(250), 10).unwrap_err();
    assert!(
        matches!(err, ipckit::Error::InvalidArgument { .. }),
        "{err}"
    );
    assert!(Memfd::create(&"m".repeat(249), 10).is_ok());
}

#[test]
fn sealed_memfd_inherited_by_a_child_is_readable() {
    if child_role().as_deref() == Some("memfd-reader") {
        let raw: i32 = std::env::var(FD_VAR).unwrap().parse().unwrap();
        // SAFETY: the parent left this descriptor open across exec for this process alone.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let memfd = Memfd::from_fd(fd, Seals::SHRINK | Seals::GROW | Seals::WRITE).unwrap();
        assert_eq!(memfd.size().unwrap(), 8192);
        let map = memfd.map_read_only().unwrap();
        // Sealed against writing and mapped read-only: nobody can change the bytes, so they may
        // be borrowed in place.
        let words: &[u32] = bytemuck::cast_slice(map.sealed_bytes().unwrap());
        assert_eq!(words.len(), 2048);
        assert!(words.iter().enumerate().all(|(i, &w)| w == i as u32 * 5));
        assert!(memfd.map().is_err(), "sealed against writing");
        println!("child read 2048 words");
        return;
    }
    let memfd = Memfd::create("inherited", 8192).unwrap();
    {
        let map = memfd.map().unwrap();
        let words: Vec<u32> = (0..2048).map(|i| i * 5).collect();
        map.shared().unwrap().write_slice(0, &words).unwrap();
    }
    memfd
        .seal(Seals::SHRINK | Seals::GROW | Seals::WRITE | Seals::SEAL)
        .unwrap();
    let raw = memfd.as_fd().as_raw_fd();
    let mut cmd = spawn_self(
        "sealed_memfd_inherited_by_a_child_is_readable",
        "memfd-reader",
    );
    cmd.env(FD_VAR, raw.to_string());
    // SAFETY: the closure runs in the forked child before exec and makes one fcntl system call,
    // which is async-signal-safe; `raw` is open in the parent, hence in the child.
    unsafe {
        cmd.pre_exec(move || {
            let fd = BorrowedFd::borrow_raw(raw);
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            Ok(())
        });
    }
    // Through testkit's spawn: the pre_exec hook makes this a fork, whose child holds a copy of
    // every mapping of this process until it execs (see no_process_starts).
    cmd.stdout(std::process::Stdio::piped());
    let out = spawn(&mut cmd).unwrap().wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child: {:?}\n{stdout}", out.status);
    assert!(stdout.contains("child read 2048 words"), "{stdout}");
}
