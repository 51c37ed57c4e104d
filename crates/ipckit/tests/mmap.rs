//! Memory mappings: the checks made before mmap, accessors bounded by the end of the file (an
//! error in a child process that would otherwise die of SIGBUS), private and shared writes,
//! flushing, typed records, anonymous memory shared with a forked child, and the example.
//!
//! Files are unique temporary paths removed by `Defer` guards, also when an assertion fails.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use bytemuck::{Pod, Zeroable};
use ipckit::mmap::{page_size, Mmap, MmapOptions};
use ipckit::posix::shm::{Memfd, Seals};
use ipckit::{Error, Object};
use ipckit_testkit::{child_role, example_bin, spawn_self, unique_path, Defer};

/// Carries a file path to a re-executed test process.
const PATH_VAR: &str = "IPCKIT_TEST_MMAP_PATH";

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
struct Person {
    name: [u8; 4],
    age: i32,
}

const PERSON: usize = std::mem::size_of::<Person>();

fn person(i: usize) -> Person {
    Person {
        name: [b'a' + i as u8, 0, 0, 0],
        age: 20 + i as i32,
    }
}

/// A new file of `len` bytes (contents `fill(i)` at byte i) at a unique path, removed on drop.
fn temp_file(what: &str, len: usize, fill: impl Fn(usize) -> u8) -> (PathBuf, Defer<impl FnMut()>) {
    let path = unique_path(what);
    std::fs::write(&path, (0..len).map(fill).collect::<Vec<u8>>()).unwrap();
    let remove = path.clone();
    (
        path,
        Defer(move || {
            let _ = std::fs::remove_file(&remove);
        }),
    )
}

fn read_write(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

/// A copy of the bytes the file backs now.
fn bytes(map: &Mmap) -> Vec<u8> {
    map.shared().unwrap().to_vec()
}

fn assert_invalid_naming(err: &Error, path: &Path, words: &[&str]) {
    assert!(
        matches!(err, Error::InvalidArgument { .. }),
        "not refused before mmap: {err}"
    );
    assert_eq!(err.op(), "mmap");
    assert_eq!(
        err.object(),
        &Object::Path(path.canonicalize().unwrap().into())
    );
    let text = err.to_string();
    for w in words {
        assert!(text.contains(w), "{w:?} missing in: {text}");
    }
}

#[test]
fn offset_length_and_overflow_are_checked_before_mmap() {
    let page = page_size();
    let (path, _rm) = temp_file("args", 2 * page, |i| i as u8);
    let file = File::open(&path).unwrap();

    let err = MmapOptions::new().offset(100).map(&file).unwrap_err();
    assert_invalid_naming(&err, &path, &["offset 100", "page size"]);
    let err = MmapOptions::new().len(0).map(&file).unwrap_err();
    assert_invalid_naming(&err, &path, &["at least 1 byte"]);
    let huge = (i64::MAX as u64) & !(page as u64 - 1);
    let err = MmapOptions::new()
        .offset(huge)
        .len(2 * page)
        .map(&file)
        .unwrap_err();
    assert_invalid_naming(&err, &path, &["overflows"]);
    let err = MmapOptions::new()
        .offset(2 * page as u64)
        .map(&file)
        .unwrap_err();
    assert_invalid_naming(&err, &path, &["none at offset"]);

    // A page-aligned offset maps the file from there.
    let map = MmapOptions::new().offset(page as u64).map(&file).unwrap();
    assert_eq!(map.len(), page);
    assert_eq!(map.offset(), page as u64);
    assert_eq!(map.read::<u8>(1).unwrap(), (page + 1) as u8);
}

#[test]
fn protection_is_checked_against_how_the_file_was_opened() {
    let (path, _rm) = temp_file("prot", 64, |_| b'o');
    let read_only = File::open(&path).unwrap();
    let err = MmapOptions::new().read_write().map(&read_only).unwrap_err();
    assert_invalid_naming(&err, &path, &["read-only", "read-write"]);
    assert!(MmapOptions::new().read_only().map(&read_only).is_ok());

    let write_only = OpenOptions::new().write(true).open(&path).unwrap();
    let err = MmapOptions::new().map(&write_only).unwrap_err();
    assert_invalid_naming(&err, &path, &["write-only"]);

    let append = OpenOptions::new()
        .read(true)
        .append(true)
        .open(&path)
        .unwrap();
    let err = MmapOptions::new().read_write().map(&append).unwrap_err();
    assert_invalid_naming(&err, &path, &["O_APPEND"]);

    // A private mapping may be written even though the file was opened read-only.
    let private = MmapOptions::new()
        .private()
        .read_write()
        .map(&read_only)
        .unwrap();
    private.write_at(0, b"private").unwrap();
    assert_eq!(&bytes(&private)[..7], b"private");
    assert_eq!(std::fs::read(&path).unwrap(), vec![b'o'; 64]);
}

#[test]
fn read_only_mapping_refuses_every_write_accessor() {
    let (path, _rm) = temp_file("ro", 64, |_| 0);
    let mut map = MmapOptions::new().map(&read_write(&path)).unwrap();
    assert!(!map.is_writable() && map.is_shared() && !map.is_anonymous());
    assert!(map.write_at(0, b"x").is_err());
    assert!(map.write(0, &1u32).is_err());
    assert!(map.write_record(0, &person(0)).is_err());
    assert!(map.atomic_u32(0).is_err());
    assert!(map.atomic_u64(0).is_err());
    assert!(map.shared().unwrap().write_at(0, b"x").is_err());
    // SAFETY: nothing is borrowed: the call is refused.
    assert!(unsafe { map.view_mut_unchecked::<u32>(0) }.is_err());
    let err = map.write_at(0, b"x").unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), vec![0; 64]);
}

/// Runs `role` of `test` in a child process with `path`, returning its exit status and output.
fn run_child(test: &str, role: &str, path: &Path) -> (std::process::ExitStatus, String) {
    let out = spawn_self(test, role).env(PATH_VAR, path).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status, text)
}

/// No core file for a child that is expected to die of a signal.
fn no_core_dump() {
    let none = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    rustix::process::setrlimit(rustix::process::Resource::Core, none).unwrap();
}

#[test]
fn access_past_the_end_of_the_file_is_an_error_not_sigbus() {
    if child_role().as_deref() == Some("checked") {
        let path = PathBuf::from(std::env::var_os(PATH_VAR).unwrap());
        let file = read_write(&path);
        // The seeds' case: ten records mapped over a file of five.
        let ten = MmapOptions::new()
            .read_write()
            .len(10 * PERSON)
            .map(&file)
            .unwrap();
        assert_eq!(ten.backed_len().unwrap(), 5 * PERSON);
        assert_eq!(ten.record_count::<Person>().unwrap(), 5);
        for i in 0..5 {
            assert_eq!(ten.read_record::<Person>(i).unwrap(), person(i));
        }
        for i in 5..10 {
            let err = ten.read_record::<Person>(i).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            let text = err.to_string();
            assert!(text.contains(&format!("record {i}")), "{text}");
            assert!(text.contains("past the end of the file"), "{text}");
        }
        // Pages wholly past the end: a raw read there raises SIGBUS (see the next test).
        let page = page_size();
        let mut far = MmapOptions::new()
            .read_write()
            .len(3 * page)
            .map(&file)
            .unwrap();
        let mut buf = [0u8; 8];
        assert!(far.read_at(2 * page, &mut buf).is_err());
        assert!(far.write_at(2 * page, &buf).is_err());
        assert!(far.read::<u64>(2 * page).is_err());
        assert!(far.write(2 * page, &0u64).is_err());
        assert!(far.read_at(0, &mut vec![0; 3 * page]).is_err());
        assert!(far.write_record(2 * page / PERSON, &person(0)).is_err());
        assert!(far.ptr_at::<u64>(2 * page).is_err());
        assert!(far.atomic_u64(2 * page).is_err());
        // SAFETY: nothing is borrowed: the calls are refused.
        unsafe {
            assert!(far.view_unchecked::<u64>(2 * page).is_err());
            assert!(far.view_mut_unchecked::<u64>(2 * page).is_err());
        }
        assert_eq!(far.shared().unwrap().len(), 5 * PERSON);
        assert!(far.shared().unwrap().read::<u8>(5 * PERSON).is_err());
        println!("child: every access past the end was an error");
        return;
    }
    let (path, _rm) = temp_file("eof", 0, |_| 0);
    let records: Vec<Person> = (0..5).map(person).collect();
    std::fs::write(&path, bytemuck::cast_slice::<Person, u8>(&records)).unwrap();
    let (status, out) = run_child(
        "access_past_the_end_of_the_file_is_an_error_not_sigbus",
        "checked",
        &path,
    );
    assert_eq!(status.signal(), None, "child killed by a signal: {out}");
    assert!(status.success(), "{status:?}: {out}");
    assert!(
        out.contains("every access past the end was an error"),
        "{out}"
    );
}

#[test]
fn raw_access_past_the_end_of_the_file_raises_sigbus() {
    // Shows that the test above would see a SIGBUS: the same read through the raw pointer dies.
    if child_role().as_deref() == Some("raw") {
        no_core_dump();
        let path = PathBuf::from(std::env::var_os(PATH_VAR).unwrap());
        let page = page_size();
        let map = MmapOptions::new()
            .len(3 * page)
            .map(&File::open(&path).unwrap())
            .unwrap();
        // SAFETY: deliberately none — the page lies past the end of the file and the read faults.
        let byte = unsafe { map.as_ptr().add(2 * page).read_volatile() };
        println!("child: read {byte} past the end of the file");
        return;
    }
    let (path, _rm) = temp_file("sigbus", 40, |_| 1);
    let (status, out) = run_child(
        "raw_access_past_the_end_of_the_file_raises_sigbus",
        "raw",
        &path,
    );
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}: {out}");
}

#[test]
fn accessors_follow_the_file_as_it_grows_and_shrinks() {
    let (path, _rm) = temp_file("follow", 2 * PERSON, |_| 0);
    let file = read_write(&path);
    let map = MmapOptions::new()
        .read_write()
        .len(10 * PERSON)
        .map(&file)
        .unwrap();
    assert_eq!(map.len(), 10 * PERSON);
    assert_eq!(map.record_count::<Person>().unwrap(), 2);
    assert!(map.read_record::<Person>(5).is_err());

    file.set_len(6 * PERSON as u64).unwrap();
    assert_eq!(map.record_count::<Person>().unwrap(), 6);
    map.write_record(5, &person(5)).unwrap();
    assert_eq!(map.read_record::<Person>(5).unwrap(), person(5));

    file.set_len(PERSON as u64 + 3).unwrap();
    assert_eq!(map.backed_len().unwrap(), PERSON + 3);
    assert_eq!(
        map.record_count::<Person>().unwrap(),
        1,
        "partial record left out"
    );
    assert!(map.read_record::<Person>(1).is_err());
}

#[test]
fn mapping_of_a_memfd_sealed_against_shrinking_keeps_its_bytes() {
    let memfd = Memfd::create("stable", 4096).unwrap();
    memfd.seal(Seals::SHRINK).unwrap();
    let map = memfd
        .map_with(MmapOptions::new().read_write().len(8192))
        .unwrap();
    assert_eq!(map.backed_len().unwrap(), 4096);
    assert!(map.read::<u8>(4096).is_err());
    assert!(memfd.resize(0).is_err(), "sealed");
    assert_eq!(map.shared().unwrap().len(), 4096);
}

#[test]
fn private_mapping_writes_are_not_seen_by_the_file() {
    let (path, _rm) = temp_file("private", 4096, |_| b'-');
    let file = read_write(&path);
    let private = MmapOptions::new()
        .private()
        .read_write()
        .map(&file)
        .unwrap();
    let shared = MmapOptions::new().map(&file).unwrap();
    private.write_at(0, b"private").unwrap();
    private.flush().unwrap();
    assert_eq!(&bytes(&private)[..7], b"private");
    assert_eq!(&bytes(&shared)[..7], b"-------");
    drop(private);
    assert_eq!(std::fs::read(&path).unwrap(), vec![b'-'; 4096]);
}

#[test]
fn shared_writes_reach_the_file_and_other_mappings() {
    let (path, _rm) = temp_file("shared", 4096, |_| 0);
    let file = read_write(&path);
    let map = MmapOptions::new().read_write().map(&file).unwrap();
    let other = MmapOptions::new().map(&File::open(&path).unwrap()).unwrap();
    map.write_at(0, b"shared").unwrap();
    map.flush().unwrap();
    assert_eq!(&std::fs::read(&path).unwrap()[..6], b"shared");
    assert_eq!(&bytes(&other)[..6], b"shared");

    map.write_at(4000, b"async").unwrap();
    map.flush_async().unwrap();
    map.flush_range(4000, 5).unwrap();
    assert_eq!(&std::fs::read(&path).unwrap()[4000..4005], b"async");
    assert!(map.flush_range(4090, 10).is_err(), "past the mapping");
    assert!(map.flush_range(usize::MAX, 2).is_err(), "overflow");

    let dropped = MmapOptions::new()
        .read_write()
        .flush_on_drop(true)
        .map(&file)
        .unwrap();
    dropped.write_at(100, b"on drop").unwrap();
    dropped.unmap().unwrap();
    assert_eq!(&std::fs::read(&path).unwrap()[100..107], b"on drop");
}

#[test]
fn typed_copies_and_records_are_checked_for_size_and_bounds() {
    let (path, _rm) = temp_file("typed", 100, |i| i as u8);
    let mut map = MmapOptions::new()
        .read_write()
        .len(4096)
        .map(&read_write(&path))
        .unwrap();
    assert_eq!(map.record_count::<u64>().unwrap(), 12, "96 of 100 bytes");
    assert!(map.read::<u32>(96).is_ok());
    assert!(map.read::<u32>(97).is_err(), "past the end of the file");
    // Copies need no alignment.
    assert_eq!(
        map.read::<u64>(4).unwrap(),
        u64::from_ne_bytes([4, 5, 6, 7, 8, 9, 10, 11])
    );
    let text = map.read_record::<u64>(12).unwrap_err().to_string();
    assert!(
        text.contains("record 12") && text.contains("first 100"),
        "{text}"
    );
    assert!(
        map.read_record::<u64>(usize::MAX).is_err(),
        "index overflow"
    );
    assert!(
        map.read::<[u8; 4097]>(0).is_err(),
        "larger than the mapping"
    );
    assert!(map.record_count::<()>().is_err(), "zero-sized type");
    map.write(0, &u32::from_ne_bytes(*b"abcd")).unwrap();
    let mut buf = [0; 4];
    map.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"abcd");
    assert!(map.read_at(98, &mut buf).is_err());
    assert_eq!(&std::fs::read(&path).unwrap()[..4], b"abcd");

    // In-place access is aligned.
    let text = map.atomic_u64(4).unwrap_err().to_string();
    assert!(text.contains("alignment") && text.contains(" 4 "), "{text}");
    // SAFETY: no other mapping or process touches the file while the reference lives.
    unsafe {
        *map.view_mut_unchecked::<u32>(4).unwrap() = u32::from_ne_bytes(*b"efgh");
        assert!(map.view_unchecked::<u32>(97).is_err());
        assert!(map.view_unchecked::<u64>(4).is_err(), "misaligned");
    }
    assert_eq!(&std::fs::read(&path).unwrap()[..8], b"abcdefgh");
}

#[test]
fn anonymous_mapping_is_zeroed_and_bounds_checked() {
    let map = Mmap::anonymous(4096).unwrap();
    assert!(map.is_anonymous() && map.is_shared() && map.is_writable());
    assert_eq!(map.len(), 4096);
    assert_eq!(map.backed_len().unwrap(), 4096);
    assert!(bytes(&map).iter().all(|&b| b == 0));
    assert!(map.ptr_at::<u64>(8).is_ok());
    assert!(map.ptr_at::<u64>(4).is_err(), "misaligned");
    assert!(map.ptr_at::<u64>(4092).is_err(), "past the end");
    map.atomic_u32(4092)
        .unwrap()
        .store(7, std::sync::atomic::Ordering::Release);
    assert_eq!(map.read::<u32>(4092).unwrap(), 7);
    assert!(map.atomic_u64(4092).is_err());

    assert!(Mmap::anonymous(0).is_err());
    let err = MmapOptions::new()
        .offset(4096)
        .map_anonymous(10)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
}

#[test]
fn anonymous_shared_mapping_is_shared_with_a_forked_child() {
    let shared = Mmap::anonymous(4096).unwrap();
    let private = MmapOptions::new()
        .private()
        .read_write()
        .map_anonymous(4096)
        .unwrap();
    let (s, p) = (shared.as_mut_ptr(), private.as_mut_ptr());
    // SAFETY: the test binary has other threads, so the child may only run async-signal-safe code:
    // it makes two stores into memory it inherited and calls _exit, nothing else (no allocation,
    // no lock, no destructor). A spawned program could not be used: exec drops the mapping.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: both mappings are writable, 4096 bytes, and inherited by this child.
        unsafe {
            s.write_volatile(42);
            p.write_volatile(42);
            libc::_exit(0)
        }
    }
    let mut status = 0;
    // SAFETY: `status` is a valid int to write the child's status into.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    assert_eq!(
        shared.read::<u8>(0).unwrap(),
        42,
        "the child's write is shared"
    );
    assert_eq!(
        private.read::<u8>(0).unwrap(),
        0,
        "a private mapping is copied"
    );
}

#[test]
fn mmap_records_example_shares_records_and_reports_errors_past_the_end() {
    let child = std::process::Command::new(example_bin("mmap_records"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let file = std::env::temp_dir().join(format!("ipckit-mmap-records-{}.bin", child.id()));
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("writer: wrote 10 records"), "{stdout}");
    assert!(stdout.contains("record 9: name p09 age 29"), "{stdout}");
    assert!(stdout.contains("record 5: error:"), "{stdout}");
    assert!(
        stdout.contains("records 5..10: 5 errors, no SIGBUS"),
        "{stdout}"
    );
    assert!(!file.exists(), "the example left {} behind", file.display());
}
