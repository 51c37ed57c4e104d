//! System V shared memory: creation and lookup by key, attachments that detach on drop, typed copies,
//! stat, IPC_SET, deferred removal, other processes (re-executed tests, C programs, the example).
//!
//! Every segment is created exclusively under a unique key or as IPC_PRIVATE and is owned by an
//! `OwnedSegment` or a `Defer` guard, so it is removed even when an assertion fails.

use std::io::ErrorKind;
use std::process::Command;
use std::sync::atomic::Ordering;

use bytemuck::{Pod, Zeroable};
use ipckit::sysv::shm::{OwnedSegment, Segment};
use ipckit::{Key, Object};
use ipckit_testkit::{child_role, example_bin, spawn_self, unique_key, CProgram, Defer};

/// Carries a segment id to a re-executed test process.
const ID_VAR: &str = "IPCKIT_TEST_SHM_ID";

fn keyed(size: usize) -> (Key, OwnedSegment) {
    let key = Key::new(unique_key());
    let seg = Segment::create_exclusive(key, size).unwrap().into_owned();
    (key, seg)
}

fn private(size: usize) -> OwnedSegment {
    Segment::create(Key::PRIVATE, size).unwrap().into_owned()
}

fn id_from_env() -> Segment {
    Segment::from_id(std::env::var(ID_VAR).unwrap().parse().unwrap())
}

#[test]
fn create_and_open_by_key_share_the_same_bytes() {
    let (key, seg) = keyed(4096);
    let writer = seg.attach().unwrap();
    writer.write_at(0, b"hello").unwrap();

    let opened = Segment::open(key).unwrap();
    assert_eq!(opened.id(), seg.id());
    // create without IPC_EXCL opens the existing segment too
    assert_eq!(Segment::create(key, 4096).unwrap().id(), seg.id());
    let reader = opened.attach().unwrap();
    assert_eq!(&reader.read::<[u8; 5]>(0).unwrap(), b"hello");
    assert_eq!(reader.segment(), *seg);
    assert_ne!(
        reader.as_ptr(),
        writer.as_ptr(),
        "two attachments, two mappings"
    );
}

#[test]
fn create_exclusive_on_existing_key_fails_with_already_exists() {
    let (key, _seg) = keyed(64);
    let err = Segment::create_exclusive(key, 64).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(err.op(), "shmget");
    assert_eq!(err.object(), &Object::ShmKey(key));
}

#[test]
fn open_of_missing_key_is_not_found_naming_the_key() {
    let key = Key::new(unique_key());
    let err = Segment::open(key).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.object(), &Object::ShmKey(key));
    assert!(err.to_string().contains(&key.to_string()), "{err}");
}

#[test]
fn opening_requires_the_segment_to_be_at_least_the_given_size() {
    let (key, seg) = keyed(100);
    assert_eq!(
        Segment::options().size(100).open(key).unwrap().id(),
        seg.id()
    );
    let err = Segment::options().size(101).open(key).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
}

#[test]
fn bad_arguments_are_rejected_before_any_system_call() {
    let zero = Segment::create(Key::PRIVATE, 0).unwrap_err();
    assert_eq!(zero.kind(), ErrorKind::InvalidInput, "{zero}");
    assert_eq!(zero.raw_os_error(), None, "{zero}");

    let private_open = Segment::open(Key::PRIVATE).unwrap_err();
    assert_eq!(private_open.kind(), ErrorKind::InvalidInput);
    assert_eq!(private_open.raw_os_error(), None, "{private_open}");

    let mode = Segment::options()
        .size(64)
        .mode(0o1600)
        .create(true)
        .open(Key::PRIVATE)
        .unwrap_err();
    assert_eq!(mode.kind(), ErrorKind::InvalidInput);
    assert!(mode.to_string().contains("0o1600"), "{mode}");

    let huge = Segment::create(Key::PRIVATE, usize::MAX).unwrap_err();
    assert_eq!(huge.kind(), ErrorKind::InvalidInput, "{huge}");
    assert_eq!(huge.raw_os_error(), None, "{huge}");
}

#[test]
fn default_mode_is_0600_and_a_given_mode_is_kept() {
    let seg = private(64);
    assert_eq!(seg.stat().unwrap().perm.permissions(), 0o600);

    let seg = Segment::options()
        .size(64)
        .mode(0o640)
        .create(true)
        .open(Key::PRIVATE)
        .unwrap()
        .into_owned();
    assert_eq!(seg.stat().unwrap().perm.permissions(), 0o640);
}

#[test]
fn stat_reports_size_creator_attachments_and_times() {
    let (key, seg) = keyed(10_000);
    let me = std::process::id();
    // SAFETY: geteuid/getegid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };

    let st = seg.stat().unwrap();
    assert_eq!(st.perm.key, key);
    assert_eq!((st.perm.uid, st.perm.gid), (uid, gid));
    assert_eq!((st.perm.cuid, st.perm.cgid), (uid, gid));
    assert_eq!(st.size, 10_000, "the requested size, not rounded to pages");
    assert_eq!(st.nattch, 0);
    assert_eq!(st.cpid, me);
    assert_eq!(st.lpid, 0, "nobody attached yet");
    assert_eq!(st.atime, None);
    assert_eq!(st.dtime, None);
    assert!(st.ctime.is_some());
    assert!(!st.is_marked_for_removal());
    assert!(!st.is_locked());

    let first = seg.attach().unwrap();
    assert_eq!(first.len(), 10_000);
    let st = seg.stat().unwrap();
    assert_eq!(st.nattch, 1);
    assert_eq!(st.lpid, me);
    assert!(st.atime.is_some());
    assert_eq!(st.dtime, None);

    let second = seg.attach_read_only().unwrap();
    assert_eq!(second.len(), 10_000);
    assert_eq!(seg.stat().unwrap().nattch, 2);

    drop(first);
    let st = seg.stat().unwrap();
    assert_eq!(st.nattch, 1);
    assert!(st.dtime.is_some());
    drop(second);
    assert_eq!(seg.stat().unwrap().nattch, 0);
}

#[test]
fn attachment_detaches_on_drop() {
    let seg = private(4096);
    for _ in 0..1000 {
        let a = seg.attach().unwrap();
        a.write(0, &a.read::<u8>(0).unwrap().wrapping_add(1))
            .unwrap();
        let r = seg.attach_read_only().unwrap();
        assert_eq!(seg.stat().unwrap().nattch, 2);
        drop((a, r));
        assert_eq!(seg.stat().unwrap().nattch, 0);
    }
    assert_eq!(
        seg.attach().unwrap().read::<u8>(0).unwrap(),
        (1000 % 256) as u8
    );

    let a = seg.attach().unwrap();
    a.detach().unwrap();
    let r = seg.attach_read_only().unwrap();
    r.detach().unwrap();
    assert_eq!(seg.stat().unwrap().nattch, 0);
}

#[test]
fn read_only_attachment_sees_writes_of_another_attachment() {
    let seg = private(4096);
    let rw = seg.attach().unwrap();
    let ro = seg.attach_read_only().unwrap();
    assert_eq!(
        ro.read::<[u8; 4]>(0).unwrap(),
        [0; 4],
        "new segments are zeroed"
    );

    rw.write_at(0, b"abcd").unwrap();
    assert_eq!(&ro.read::<[u8; 4]>(0).unwrap(), b"abcd");
    let err = ro.shared().write_at(0, b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "refused, not a fault");
    assert!(
        ro.shared().atomic_u32(8).is_err(),
        "no atomics in place on read-only memory"
    );
    rw.atomic_u32(8)
        .unwrap()
        .store(0xdead_beef, Ordering::Release);
    assert_eq!(ro.load_u32(8).unwrap(), 0xdead_beef);
    rw.atomic_u64(16)
        .unwrap()
        .store(u64::MAX - 1, Ordering::Release);
    assert_eq!(ro.load_u64(16).unwrap(), u64::MAX - 1);
    assert!(ro.load_u32(10).is_err(), "misaligned");
    assert!(ro.load_u64(4096).is_err(), "out of bounds");
}

#[test]
fn read_only_attachment_faults_on_write() {
    if child_role().as_deref() == Some("write-read-only") {
        let ro = id_from_env().attach_read_only().unwrap();
        let core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit only reads `core`; no core file for the expected crash.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &core) };
        // SAFETY: deliberately wrong: the page is mapped read-only (SHM_RDONLY), so this write
        // must fault and kill this child process.
        unsafe { std::ptr::write_volatile(ro.as_ptr().cast_mut(), 1) };
        println!("the write went through");
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    let seg = private(4096);
    let out = spawn_self("read_only_attachment_faults_on_write", "write-read-only")
        .env(ID_VAR, seg.id().to_string())
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        seg.attach().unwrap().read::<u8>(0).unwrap(),
        0,
        "nothing was written"
    );
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
struct Header {
    magic: u32,
    version: u16,
    flags: u16,
    len: u64,
    values: [u32; 4],
}

#[test]
fn pod_struct_round_trips_through_typed_copies() {
    let seg = private(4096);
    let w = seg.attach().unwrap();
    let header = Header {
        magic: 0x4950_4b54,
        version: 3,
        flags: 0x8001,
        len: 1 << 40,
        values: [1, 2, 3, u32::MAX],
    };
    w.write(64, &header).unwrap();
    w.write(257, &[7u16, 8, 9]).unwrap(); // copies need no alignment

    let r = seg.attach_read_only().unwrap();
    assert_eq!(r.read::<Header>(64).unwrap(), header);
    assert_eq!(r.read::<u32>(64).unwrap(), 0x4950_4b54);
    let mut bytes = [0; 4];
    r.read_at(64, &mut bytes).unwrap();
    assert_eq!(bytes, 0x4950_4b54u32.to_ne_bytes());
    assert_eq!(r.read::<[u16; 3]>(257).unwrap(), [7, 8, 9]);
    let mut values = [0u32; 4];
    w.shared().read_slice(80, &mut values).unwrap();
    assert_eq!(values, [1, 2, 3, u32::MAX]);
    // SAFETY: no other attachment or process writes the segment while the references live.
    unsafe {
        assert_eq!(*r.view_unchecked::<Header>(64).unwrap(), header);
        assert_eq!(*w.view_unchecked::<u64>(72).unwrap(), 1 << 40);
    }
}

#[test]
fn accessors_reject_misaligned_out_of_bounds_and_oversize_requests() {
    // 100 bytes: the mapping is a whole page, but accessors stop at the segment's size.
    let seg = private(100);
    let mut a = seg.attach().unwrap();
    let r = seg.attach_read_only().unwrap();
    assert_eq!(a.len(), 100);
    assert!(!a.is_empty());

    let err = a.read::<u32>(98).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.object(), &Object::ShmId(seg.id()));
    let text = err.to_string();
    for part in ["4 bytes", "98", "100"] {
        assert!(text.contains(part), "{part} missing in: {text}");
    }
    let err = a.atomic_u64(4).unwrap_err();
    assert_eq!(err.op(), "atomic_u64");
    let text = err.to_string();
    assert!(
        text.contains("alignment") && text.contains("AtomicU64"),
        "{text}"
    );
    assert!(text.contains(" 4 ") && text.contains("100"), "{text}");

    assert!(a.read::<u32>(96).is_ok());
    assert!(a.read::<u32>(97).is_err(), "out of bounds");
    assert!(a.read::<u32>(usize::MAX).is_err(), "offset overflow");
    assert!(a.read::<[u8; 101]>(0).is_err(), "larger than the segment");
    assert!(a.read::<[u8; 100]>(0).is_ok());
    assert!(a.write(99, &0u16).is_err());
    assert!(a.write(3, &0u16).is_ok(), "copies need no alignment");
    assert!(a.write_at(4, &[0; 97]).is_err());
    assert!(a.write_at(4, &[0; 96]).is_ok());
    assert!(
        a.read_at(usize::MAX - 7, &mut [0; 8]).is_err(),
        "end overflow"
    );
    assert!(r.read::<u16>(99).is_err());
    assert!(r.read_at(2, &mut [0; 99]).is_err());
    assert!(a.atomic_u32(2).is_err(), "misaligned");
    assert!(a.atomic_u32(96).is_ok());
    assert!(a.atomic_u64(96).is_err(), "needs 8 bytes, 4 left");
    assert!(a.atomic_u64(88).is_ok());
    assert!(r.load_u64(96).is_err());
    // SAFETY: nothing is borrowed: every call is refused.
    unsafe {
        assert!(a.view_unchecked::<u32>(98).is_err());
        assert!(a.view_unchecked::<u64>(4).is_err(), "misaligned");
        assert!(a.view_mut_unchecked::<u16>(99).is_err());
        assert!(r.view_unchecked::<u16>(100).is_err());
    }
}

#[test]
fn atomics_count_across_threads_and_attachments() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ipckit::sysv::shm::Attachment>();
    assert_send_sync::<ipckit::sysv::shm::ReadOnlyAttachment>();

    let seg = private(4096);
    let shared = seg.attach().unwrap();
    let other = seg.attach().unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let c = shared.atomic_u64(8).unwrap();
                for _ in 0..10_000 {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let c = other.atomic_u64(8).unwrap();
        for _ in 0..10_000 {
            c.fetch_add(1, Ordering::Relaxed);
        }
    });
    assert_eq!(shared.atomic_u64(8).unwrap().load(Ordering::SeqCst), 30_000);
}

#[test]
fn removed_segment_lives_until_the_last_detach() {
    let (key, owned) = keyed(4096);
    let seg = *owned;
    let first = seg.attach().unwrap();
    first.write_at(0, b"kept").unwrap();
    owned.remove().unwrap();

    let st = seg.stat().unwrap();
    assert!(st.is_marked_for_removal(), "mode {:#o}", st.perm.mode);
    assert_eq!(st.perm.key, Key::PRIVATE, "the key is released at once");
    assert_eq!(st.nattch, 1);
    assert_eq!(
        &first.read::<[u8; 4]>(0).unwrap(),
        b"kept",
        "attached memory stays valid"
    );
    assert_eq!(Segment::open(key).unwrap_err().kind(), ErrorKind::NotFound);

    // The key is free for a new segment while the old one still lives.
    let successor = Segment::create_exclusive(key, 64).unwrap().into_owned();
    assert_ne!(successor.id(), seg.id());
    drop(successor);

    // Linux still lets the segment be attached by id.
    let second = seg.attach_read_only().unwrap();
    assert_eq!(&second.read::<[u8; 4]>(0).unwrap(), b"kept");
    assert_eq!(seg.stat().unwrap().nattch, 2);

    drop(first);
    assert!(seg.stat().unwrap().is_marked_for_removal());
    drop(second);
    let err = seg.stat().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    assert_eq!(err.op(), "shmctl(IPC_STAT)");
    assert_eq!(err.object(), &Object::ShmId(seg.id()));
    let err = seg.attach().unwrap_err();
    assert_eq!(err.op(), "shmat");
    assert_eq!(err.object(), &Object::ShmId(seg.id()));
}

#[test]
fn child_process_writes_into_a_segment_by_id() {
    if child_role().as_deref() == Some("writer") {
        let a = id_from_env().attach().unwrap();
        let text = format!("written by {}", std::process::id());
        a.write_at(0, text.as_bytes()).unwrap();
        a.write(64, &0xc0ffee_u32).unwrap();
        return;
    }
    let seg = private(4096);
    let child = spawn_self("child_process_writes_into_a_segment_by_id", "writer")
        .env(ID_VAR, seg.id().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");

    let r = seg.attach_read_only().unwrap();
    let text = format!("written by {pid}");
    let mut got = vec![0; text.len()];
    r.read_at(0, &mut got).unwrap();
    assert_eq!(got, text.as_bytes());
    assert_eq!(r.read::<u32>(64).unwrap(), 0xc0ffee);
    drop(r);
    let st = seg.stat().unwrap();
    assert_eq!(st.nattch, 0, "the child's attachment ended with it");
    assert_eq!(st.cpid, std::process::id());
}

#[test]
fn set_mode_and_set_owner_change_stat() {
    let seg = private(64);
    seg.set_mode(0o640).unwrap();
    assert_eq!(seg.stat().unwrap().perm.permissions(), 0o640);
    seg.set_mode(0o604).unwrap();
    assert_eq!(seg.stat().unwrap().perm.permissions(), 0o604);

    let err = seg.set_mode(0o1600).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(seg.stat().unwrap().perm.permissions(), 0o604);

    let before = seg.stat().unwrap();
    seg.set_owner(12_345, 23_456).unwrap();
    let after = seg.stat().unwrap();
    assert_eq!((after.perm.uid, after.perm.gid), (12_345, 23_456));
    assert_eq!(
        (after.perm.cuid, after.perm.cgid),
        (before.perm.cuid, before.perm.cgid),
        "the creator stays"
    );
    assert_eq!(after.perm.permissions(), 0o604, "the mode stays");
    // `seg` is removed on drop by its creator.
}

#[test]
fn owned_segment_removes_on_drop_and_into_inner_disarms() {
    let (key, owned) = keyed(64);
    let id = owned.id();
    drop(owned);
    assert_eq!(Segment::open(key).unwrap_err().kind(), ErrorKind::NotFound);
    let err = Segment::from_id(id).stat().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));

    let (key, owned) = keyed(64);
    let seg = owned.into_inner();
    let _guard = Defer(|| {
        let _ = seg.remove();
    });
    assert_eq!(Segment::open(key).unwrap().id(), seg.id(), "still there");
}

/// `shm_c write KEY` creates an 8 KiB segment under KEY and fills it; `shm_c check KEY` verifies a
/// segment filled the same way. Exit status 0: done/valid; 1: invalid contents; 3: a call failed.
const C_PROGRAM: &str = r#"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

#define SIZE 8192
#define MAGIC 0x49504b54u
struct header { uint32_t magic; uint32_t count; uint64_t sum; };

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + 3); }

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    key_t key = (key_t)strtoul(argv[2], NULL, 0);
    if (strcmp(argv[1], "write") == 0) {
        int id = shmget(key, SIZE, IPC_CREAT | IPC_EXCL | 0600);
        if (id < 0) { perror("shmget"); return 3; }
        unsigned char *p = shmat(id, NULL, 0);
        if (p == (void *)-1) { perror("shmat"); return 3; }
        struct header h = { MAGIC, SIZE - sizeof h, 0 };
        for (size_t i = sizeof h; i < SIZE; i++) { p[i] = pattern(i); h.sum += p[i]; }
        memcpy(p, &h, sizeof h);
        if (shmdt(p) < 0) { perror("shmdt"); return 3; }
        printf("%d\n", id);
        return 0;
    }
    int id = shmget(key, 0, 0);
    if (id < 0) { perror("shmget"); return 3; }
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) < 0) { perror("shmctl"); return 3; }
    if (ds.shm_segsz != SIZE) { fprintf(stderr, "size %zu\n", (size_t)ds.shm_segsz); return 1; }
    const unsigned char *p = shmat(id, NULL, SHM_RDONLY);
    if (p == (void *)-1) { perror("shmat"); return 3; }
    struct header h;
    memcpy(&h, p, sizeof h);
    int ok = h.magic == MAGIC && h.count == SIZE - sizeof h;
    uint64_t sum = 0;
    for (size_t i = sizeof h; i < SIZE; i++) {
        if (p[i] != pattern(i)) { fprintf(stderr, "byte %zu is %u\n", i, p[i]); ok = 0; break; }
        sum += p[i];
    }
    ok = ok && sum == h.sum;
    shmdt(p);
    return ok ? 0 : 1;
}
"#;

const C_SIZE: usize = 8192;

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct CHeader {
    magic: u32,
    count: u32,
    sum: u64,
}

fn pattern(i: usize) -> u8 {
    (i * 7 + 3) as u8
}

#[test]
fn c_program_writes_a_segment_that_ipckit_reads() {
    let exe = CProgram::compile("shm_c", C_PROGRAM);
    let key = Key::new(unique_key());
    let _seg = Defer(|| {
        if let Ok(seg) = Segment::open(key) {
            let _ = seg.remove();
        }
    });

    let child = Command::new(&exe)
        .args(["write", &key.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let c_id: i32 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let seg = Segment::open(key).unwrap();
    assert_eq!(seg.id(), c_id);
    let st = seg.stat().unwrap();
    assert_eq!(st.size, C_SIZE);
    assert_eq!((st.cpid, st.lpid, st.nattch), (pid, pid, 0));
    assert_eq!(st.perm.permissions(), 0o600);

    let r = seg.attach_read_only().unwrap();
    let h = r.read::<CHeader>(0).unwrap();
    assert_eq!(h.magic, 0x4950_4b54);
    assert_eq!(h.count as usize, C_SIZE - 16);
    let bytes = r.shared().to_vec();
    let body = &bytes[16..];
    assert!(body.iter().enumerate().all(|(i, &b)| b == pattern(i + 16)));
    assert_eq!(body.iter().map(|&b| u64::from(b)).sum::<u64>(), h.sum);
}

#[test]
fn ipckit_writes_a_segment_that_a_c_program_verifies() {
    let exe = CProgram::compile("shm_c", C_PROGRAM);
    let (key, seg) = keyed(C_SIZE);

    let w = seg.attach().unwrap();
    let body: Vec<u8> = (16..C_SIZE).map(pattern).collect();
    w.write_at(16, &body).unwrap();
    let header = CHeader {
        magic: 0x4950_4b54,
        count: (C_SIZE - 16) as u32,
        sum: body.iter().map(|&b| u64::from(b)).sum(),
    };
    w.write(0, &header).unwrap();

    let check = || {
        Command::new(&exe)
            .args(["check", &key.to_string()])
            .output()
            .unwrap()
    };
    let out = check();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The verdict can fail: one flipped bit and the C program rejects the segment.
    w.write(5000, &(w.read::<u8>(5000).unwrap() ^ 1)).unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(seg.stat().unwrap().nattch, 1, "only our attachment is left");
}

#[test]
fn attach_loop_example_leaks_no_mapping() {
    let out = Command::new(example_bin("sysv_shm_attach_loop"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("attached and detached 1000000 times, counter = 1000000"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("mappings (/proc/self/maps lines): "))
        .unwrap_or_else(|| panic!("no mappings line in:\n{stdout}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let [before, during, after] = numbers[..] else {
        panic!("expected three counts in {line:?}");
    };
    assert_eq!(during, before + 1, "an attachment is one mapping: {line}");
    assert_eq!(after, before, "{line}");
}
