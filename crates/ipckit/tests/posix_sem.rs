//! POSIX semaphores: named ones (create, open, modes, values, timed waits across processes,
//! unlinking, C interoperability) and unnamed ones in shared memory (slots initialised once,
//! shared with a child, destroyed by their initialiser), and the example built on them.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ipckit::posix::sem::{NamedSemaphore, RawSemaphore, Semaphore, SEM_NAME_MAX, SEM_VALUE_MAX};
use ipckit::shared::SharedRegion;
use ipckit::sysv::shm::Segment;
use ipckit::{Error, Key};
use ipckit_testkit::interrupt::interrupted_in;
use ipckit_testkit::task::Task;
use ipckit_testkit::{
    child_role, example_bin, spawn_self, start, umask, unique_name, wait_until, CProgram, Defer,
};

/// The file glibc keeps a named semaphore in.
fn sem_file(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/sem.{}", &name[1..]))
}

/// A fresh semaphore name and a guard that unlinks it at the end of the test, also on panic.
fn fresh(what: &str) -> (String, Defer<impl FnMut()>) {
    let name = unique_name(what);
    let cleanup = name.clone();
    (
        name,
        Defer(move || {
            let _ = NamedSemaphore::unlink(&cleanup);
        }),
    )
}

#[test]
fn create_exclusive_fails_when_the_name_exists_and_open_shares_the_semaphore() {
    let (name, _cleanup) = fresh("sem-excl");
    let created = NamedSemaphore::create_exclusive(&name, 1).unwrap();
    assert!(sem_file(&name).exists());
    let err = NamedSemaphore::create_exclusive(&name, 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    // create() opens the existing semaphore and keeps its value.
    let again = NamedSemaphore::create(&name, 5).unwrap();
    assert_eq!(again.value().unwrap(), 1);
    let opened = NamedSemaphore::open(&name).unwrap();
    assert_eq!(opened.name(), name.as_str());
    opened.post().unwrap();
    assert_eq!(created.value().unwrap(), 2);
}

#[test]
fn open_of_a_missing_name_is_not_found_naming_the_semaphore() {
    let name = unique_name("sem-missing");
    let err = NamedSemaphore::open(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.op(), "sem_open");
    assert!(err.to_string().contains(&name), "{err}");
    assert_eq!(
        NamedSemaphore::unlink(&name).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn default_mode_is_0600_and_a_given_mode_is_kept_under_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let (name, _cleanup) = fresh("sem-mode");
    let _sem = NamedSemaphore::create_exclusive(&name, 0).unwrap();
    let mode = std::fs::metadata(sem_file(&name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600 & !umask());

    let (other, _cleanup) = fresh("sem-mode");
    let _sem = NamedSemaphore::options()
        .mode(0o640)
        .exclusive(true)
        .open(&other)
        .unwrap();
    let mode = std::fs::metadata(sem_file(&other))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640 & !umask());
}

#[test]
fn wait_takes_post_gives_and_value_counts() {
    let (name, _cleanup) = fresh("sem-value");
    let sem = NamedSemaphore::options()
        .value(2)
        .exclusive(true)
        .open(&name)
        .unwrap();
    assert_eq!(sem.value().unwrap(), 2);
    sem.wait().unwrap();
    sem.wait().unwrap();
    assert_eq!(sem.value().unwrap(), 0);
    sem.post().unwrap();
    assert_eq!(sem.value().unwrap(), 1);
}

#[test]
fn try_wait_returns_false_at_zero_and_true_after_a_post() {
    let (name, _cleanup) = fresh("sem-try");
    let sem = NamedSemaphore::create_exclusive(&name, 0).unwrap();
    assert!(!sem.try_wait().unwrap());
    assert_eq!(sem.value().unwrap(), 0);
    sem.post().unwrap();
    assert!(sem.try_wait().unwrap());
    assert!(!sem.try_wait().unwrap());
}

/// The child side of the multi-process tests: `action:name`.
fn play(role: &str) {
    let (action, name) = role.split_once(':').expect("role is action:name");
    match action {
        "post" => NamedSemaphore::open(name).unwrap().post().unwrap(),
        "unnamed" => unnamed_child(name.parse().expect("segment id")),
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn wait_timeout_times_out_then_succeeds_after_a_post_from_a_child() {
    const TEST: &str = "wait_timeout_times_out_then_succeeds_after_a_post_from_a_child";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let (name, _cleanup) = fresh("sem-timed");
    let sem = NamedSemaphore::create_exclusive(&name, 0).unwrap();
    assert!(!sem.wait_timeout(Duration::from_millis(30)).unwrap());
    assert!(!sem.wait_timeout(Duration::ZERO).unwrap());
    let poster = start(spawn_self(TEST, &format!("post:{name}")));
    assert!(sem.wait_timeout(Duration::from_secs(60)).unwrap());
    assert!(poster.wait().success());
    assert_eq!(sem.value().unwrap(), 0, "the post was taken once");
}

#[test]
fn unlink_removes_the_name_but_open_handles_keep_working() {
    let (name, _cleanup) = fresh("sem-unlink");
    let sem = NamedSemaphore::create_exclusive(&name, 0).unwrap();
    NamedSemaphore::unlink(&name).unwrap();
    assert!(!sem_file(&name).exists());
    assert_eq!(
        NamedSemaphore::open(&name).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    sem.post().unwrap();
    assert!(sem.try_wait().unwrap());
    sem.close().unwrap();
}

#[test]
fn owned_semaphore_unlinks_on_drop_unless_released() {
    let (name, _cleanup) = fresh("sem-owned");
    let owned = NamedSemaphore::create_exclusive(&name, 0)
        .unwrap()
        .into_owned();
    owned.post().unwrap();
    drop(owned);
    assert!(!sem_file(&name).exists());
    assert_eq!(
        NamedSemaphore::open(&name).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    let kept = NamedSemaphore::create_exclusive(&name, 3)
        .unwrap()
        .into_owned()
        .into_inner();
    drop(kept);
    assert_eq!(NamedSemaphore::open(&name).unwrap().value().unwrap(), 3);

    let owned = NamedSemaphore::open(&name).unwrap().into_owned();
    owned.unlink().unwrap();
    assert!(!sem_file(&name).exists());
}

#[test]
fn bad_names_values_and_modes_are_rejected_before_sem_open() {
    let name = unique_name("sem-bad");
    for bad in ["no-slash", "/a/b", "/", "/..", "//x"] {
        let err = NamedSemaphore::create(bad, 0).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{bad}: {err}");
    }
    // glibc's "sem." prefix leaves NAME_MAX - 4 bytes for the name.
    let longest = format!("/{}", "s".repeat(SEM_NAME_MAX));
    let _cleanup = Defer(|| {
        let _ = NamedSemaphore::unlink(&longest);
    });
    NamedSemaphore::create_exclusive(&longest, 0)
        .unwrap()
        .into_owned()
        .unlink()
        .unwrap();
    let too_long = format!("/{}", "s".repeat(SEM_NAME_MAX + 1));
    let err = NamedSemaphore::create(&too_long, 0).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(err.to_string().contains("SEM_NAME_MAX"), "{err}");

    let err = NamedSemaphore::create(&name, SEM_VALUE_MAX + 1).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(err.to_string().contains("SEM_VALUE_MAX"), "{err}");
    let err = NamedSemaphore::options()
        .mode(0o4600)
        .create(true)
        .open(&name)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(!sem_file(&name).exists(), "nothing was created");
}

#[test]
fn post_beyond_sem_value_max_overflows() {
    let (name, _cleanup) = fresh("sem-max");
    let sem = NamedSemaphore::create_exclusive(&name, SEM_VALUE_MAX).unwrap();
    assert_eq!(sem.value().unwrap(), SEM_VALUE_MAX);
    let err = sem.post().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EOVERFLOW), "{err}");
    assert_eq!(sem.value().unwrap(), SEM_VALUE_MAX);
}

#[test]
fn semaphores_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<NamedSemaphore>();
    both::<RawSemaphore>();
    both::<&Semaphore>();
}

/// Runs `wait` (which must block) while a helper interrupts it with a signal once it sleeps in a
/// futex, then, after the handler ran and the waiter sleeps again, calls `release`. `wait` only
/// returns successfully if the interrupted call was retried.
fn interrupted(wait: impl FnOnce(), release: impl FnOnce() + Send + 'static) {
    interrupted_in(libc::SYS_futex, wait, release)
}

#[test]
fn wait_timeout_without_a_representable_deadline_waits_until_posted() {
    let (name, _cleanup) = fresh("sem-forever");
    let sem = NamedSemaphore::create_exclusive(&name, 0).unwrap();
    let poster = NamedSemaphore::open(&name).unwrap();
    let waiter = Task::current();
    let helper = std::thread::spawn(move || {
        wait_until("the waiter to block", || {
            waiter.in_syscall(&[libc::SYS_futex])
        });
        poster.post().unwrap();
    });
    assert!(sem.wait_timeout(Duration::MAX).unwrap());
    helper.join().unwrap();
}

#[test]
fn wait_interrupted_by_a_signal_is_retried() {
    let (name, _cleanup) = fresh("sem-eintr");
    let sem = NamedSemaphore::create_exclusive(&name, 0).unwrap();
    let poster = NamedSemaphore::open(&name).unwrap();
    interrupted(|| sem.wait().unwrap(), move || poster.post().unwrap());
    assert_eq!(sem.value().unwrap(), 0);
}

#[test]
fn timed_wait_interrupted_by_a_signal_is_retried() {
    let (name, _cleanup) = fresh("sem-eintr-timed");
    let sem = NamedSemaphore::create_exclusive(&name, 0).unwrap();
    let poster = NamedSemaphore::open(&name).unwrap();
    interrupted(
        || assert!(sem.wait_timeout(Duration::from_secs(120)).unwrap()),
        move || poster.post().unwrap(),
    );
}

// ---- unnamed semaphores in shared memory ----

const SLOT: usize = RawSemaphore::SLOT_SIZE;

/// The whole of the segment `id`, attached.
fn attach(id: i32) -> SharedRegion {
    SharedRegion::new(Arc::new(Segment::from_id(id).attach().unwrap())).unwrap()
}

/// The `i`th slot of `mem`.
fn slot(mem: &SharedRegion, i: usize) -> SharedRegion {
    mem.slice(i * SLOT..(i + 1) * SLOT).unwrap()
}

/// Child of `unnamed_semaphores_in_a_segment_hand_turns_between_processes`: opens the two slots
/// the parent initialised, checks a slot cannot be initialised twice, then takes from slot 0 and
/// gives to slot 1 twice.
fn unnamed_child(id: i32) {
    let mem = attach(id);
    let err = RawSemaphore::init_in(slot(&mem, 1), 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let free = RawSemaphore::from_region(slot(&mem, 2)).unwrap_err();
    assert_eq!(free.kind(), ErrorKind::InvalidInput, "{free}");
    let a = RawSemaphore::from_region(slot(&mem, 0)).unwrap();
    let b = RawSemaphore::from_region(slot(&mem, 1)).unwrap();
    assert!(!a.is_initialiser());
    a.wait().unwrap();
    b.post().unwrap();
    b.post().unwrap();
    // Dropping handles that did not initialise destroys nothing.
}

#[test]
fn unnamed_semaphores_in_a_segment_hand_turns_between_processes() {
    const TEST: &str = "unnamed_semaphores_in_a_segment_hand_turns_between_processes";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let seg = Segment::create(Key::PRIVATE, 4 * SLOT)
        .unwrap()
        .into_owned();
    let mem = attach(seg.id());
    let a = RawSemaphore::init_in(slot(&mem, 0), 0).unwrap();
    let b = RawSemaphore::init_in(slot(&mem, 1), 0).unwrap();
    assert!(a.is_initialiser());
    let child = start(spawn_self(TEST, &format!("unnamed:{}", seg.id())));
    assert!(!b.wait_timeout(Duration::from_millis(20)).unwrap());
    a.post().unwrap();
    assert!(b.wait_timeout(Duration::from_secs(60)).unwrap());
    let status = child.wait();
    assert!(status.success(), "child's verdict: {status}");
    assert_eq!(a.value().unwrap(), 0, "the child took the unit");
    assert_eq!(b.value().unwrap(), 1, "the child posted twice");
}

#[test]
fn initialiser_drop_destroys_and_frees_the_slot_for_a_new_init() {
    let seg = Segment::create(Key::PRIVATE, SLOT).unwrap().into_owned();
    let mem = attach(seg.id());
    let sem = RawSemaphore::init_in(mem.clone(), 3).unwrap();
    assert_eq!(sem.value().unwrap(), 3);
    drop(sem);
    let state = mem.bytes().load_u32(0, Ordering::Acquire).unwrap();
    assert_eq!(state, 0, "state word back to free");
    let err = RawSemaphore::from_region(mem.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let sem = RawSemaphore::init_in(mem, 1).unwrap();
    assert!(sem.try_wait().unwrap());
    sem.destroy().unwrap();
}

#[test]
fn short_misaligned_or_dirty_regions_are_refused() {
    let seg = Segment::create(Key::PRIVATE, 4 * SLOT)
        .unwrap()
        .into_owned();
    let mem = attach(seg.id());
    let err = RawSemaphore::init_in(mem.slice(..SLOT - 1).unwrap(), 0).unwrap_err();
    assert!(err.to_string().contains("bytes"), "{err}");
    let err = RawSemaphore::init_in(mem.slice(4..4 + SLOT).unwrap(), 0).unwrap_err();
    assert!(err.to_string().contains("alignment"), "{err}");
    let err = RawSemaphore::init_in(slot(&mem, 0), SEM_VALUE_MAX + 1).unwrap_err();
    assert!(err.to_string().contains("SEM_VALUE_MAX"), "{err}");
    mem.bytes().write(0, &0x5a_u8).unwrap();
    let err = RawSemaphore::init_in(slot(&mem, 0), 0).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

#[test]
fn raw_semaphore_at_a_bare_sem_t_is_shared_by_address() {
    let seg = Segment::create(Key::PRIVATE, 64).unwrap().into_owned();
    let mem = attach(seg.id());
    let ptr = mem.as_ptr();
    // SAFETY: `mem` keeps the attachment's 64 bytes mapped at a page-aligned address for the
    // whole test, and this test touches them only through these Semaphore references; the
    // semaphore is destroyed once, after its last use.
    unsafe {
        let sem = Semaphore::init_at(ptr, 1).unwrap();
        let same = Semaphore::from_ptr(ptr).unwrap();
        assert!(same.try_wait().unwrap());
        assert!(!sem.try_wait().unwrap());
        same.post().unwrap();
        assert_eq!(sem.value().unwrap(), 1);
        assert_eq!(sem.as_ptr().cast::<u8>(), ptr);
        assert!(Semaphore::init_at(ptr.add(4), 0).is_err(), "misaligned");
        sem.destroy().unwrap();
    }
}

// ---- C interoperability ----

const C_CREATES_AND_POSTS: &str = r#"
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) return 10;
    sem_t *sem = sem_open(argv[1], O_CREAT | O_EXCL, 0600, 1);
    if (sem == SEM_FAILED) { perror("sem_open"); return 11; }
    for (int i = 0; i < 2; i++)
        if (sem_post(sem) != 0) { perror("sem_post"); return 12; }
    if (sem_close(sem) != 0) return 13;
    return 0;
}
"#;

#[test]
fn ipckit_takes_from_a_semaphore_a_c_program_created_and_posted() {
    let (name, _cleanup) = fresh("sem-c-creates");
    let exe = CProgram::compile("sem_c_creates", C_CREATES_AND_POSTS);
    let status = Command::new(&exe).arg(&name).status().unwrap();
    assert!(status.success(), "C program failed: {status}");
    let sem = NamedSemaphore::open(&name).unwrap().into_owned();
    assert_eq!(sem.value().unwrap(), 3, "created with 1, posted twice");
    for _ in 0..3 {
        assert!(sem.wait_timeout(Duration::from_secs(10)).unwrap());
    }
    assert!(!sem.try_wait().unwrap());
    sem.unlink().unwrap();
    assert!(!sem_file(&name).exists());
}

const C_WAITS_THEN_POSTS: &str = r#"
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 2) return 10;
    sem_t *sem = sem_open(argv[1], 0);
    if (sem == SEM_FAILED) { perror("sem_open"); return 11; }
    struct timespec at;
    clock_gettime(CLOCK_REALTIME, &at);
    at.tv_sec += 60;
    if (sem_timedwait(sem, &at) != 0) { perror("sem_timedwait"); return 12; }
    int value = -1;
    if (sem_getvalue(sem, &value) != 0 || value != 0) return 13;
    if (sem_post(sem) != 0 || sem_post(sem) != 0) return 14;
    return sem_close(sem) == 0 ? 0 : 15;
}
"#;

#[test]
fn c_program_waits_on_a_semaphore_ipckit_created_and_posted() {
    let (name, _cleanup) = fresh("sem-c-waits");
    let exe = CProgram::compile("sem_c_waits", C_WAITS_THEN_POSTS);
    let sem = NamedSemaphore::create_exclusive(&name, 0)
        .unwrap()
        .into_owned();
    let mut cmd = Command::new(&exe);
    cmd.arg(&name);
    let waiter = start(cmd);
    sem.post().unwrap();
    let status = waiter.wait();
    assert!(status.success(), "C program's verdict: {status}");
    assert_eq!(sem.value().unwrap(), 2, "the C program posted twice");
}
// ---- the example ----

#[test]
fn mmap_alternate_example_reads_every_line_once_in_order() {
    let out = Command::new(example_bin("mmap_alternate"))
        .args(["--lines", "40"])
        .output()
        .expect("run example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mmap_alternate failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("40 lines read exactly once, in order"),
        "{stdout}"
    );
}
