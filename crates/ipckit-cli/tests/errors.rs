//! Every error a user can reach ends the command with exactly one line on stderr that starts with
//! "ipckit:" — no debug dump, no panic, no backtrace — a non-zero exit status, and no other object
//! touched: each test checks that objects it created and did not name are still there.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

use ipckit::sysv::msg::{MsgQueue, OwnedMsgQueue};
use ipckit::sysv::sem::{OwnedSemSet, SemSet};
use ipckit::sysv::shm::{OwnedSegment, Segment};
use ipckit::Key;
use ipckit_testkit::{is_root, text, unique_key, NOBODY};

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipckit"));
    // A panic would print a backtrace: more lines, caught below.
    cmd.args(args).env("RUST_BACKTRACE", "1");
    cmd
}

/// Checks the error contract on a finished run and returns its one line of stderr.
fn the_error_line(args: &[&str], out: &Output) -> String {
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "{args:?} succeeded; stderr: {stderr}"
    );
    assert_eq!(text(&out.stdout), "", "{args:?} wrote to stdout");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: not one line: {stderr:?}"
    );
    assert!(stderr.ends_with('\n'), "{args:?}: {stderr:?}");
    assert!(stderr.starts_with("ipckit: "), "{args:?}: {stderr:?}");
    // The OS error once: an ipckit error's text already carries it, so it is not repeated as
    // the error's source.
    assert!(
        stderr.matches("os error").count() <= 1,
        "{args:?}: the OS error twice: {stderr:?}"
    );
    for leak in ["Error {", "Os {", "panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(leak), "{args:?}: {stderr:?}");
    }
    stderr.trim_end().to_owned()
}

/// Runs `ipckit ARGS`, expecting a one-line error; returns the line.
fn error_of(args: &[&str]) -> String {
    let out = command(args).output().expect("run ipckit");
    the_error_line(args, &out)
}

/// Like [`error_of`], also checking the exit status: 2 for a usage error, 1 for a failure.
fn error_with_status(status: i32, args: &[&str]) -> String {
    let out = command(args).output().expect("run ipckit");
    let line = the_error_line(args, &out);
    assert_eq!(out.status.code(), Some(status), "{args:?}: {line}");
    line
}

fn new_shm(key: Key, mode: u32) -> OwnedSegment {
    Segment::options()
        .size(100)
        .mode(mode)
        .create(true)
        .exclusive(true)
        .open(key)
        .expect("create segment")
        .into_owned()
}

fn new_msg(key: Key) -> OwnedMsgQueue {
    MsgQueue::options()
        .create(true)
        .exclusive(true)
        .open(key)
        .expect("create queue")
        .into_owned()
}

fn new_sem(key: Key) -> OwnedSemSet {
    SemSet::options()
        .nsems(1)
        .create(true)
        .exclusive(true)
        .open(key)
        .expect("create semaphore set")
        .into_owned()
}

fn unique() -> Key {
    Key::new(unique_key())
}

/// One object of each kind that no command in the test names; all must survive.
struct Bystanders {
    keys: [Key; 3],
    shm: OwnedSegment,
    msg: OwnedMsgQueue,
    sem: OwnedSemSet,
}

impl Bystanders {
    fn new() -> Bystanders {
        let keys = [unique(), unique(), unique()];
        Bystanders {
            keys,
            shm: new_shm(keys[0], 0o600),
            msg: new_msg(keys[1]),
            sem: new_sem(keys[2]),
        }
    }

    fn assert_untouched(&self) {
        let found = (
            Segment::open(self.keys[0]).map(|o| o.id()).ok(),
            MsgQueue::open(self.keys[1]).map(|o| o.id()).ok(),
            SemSet::open(self.keys[2]).map(|o| o.id()).ok(),
        );
        let ids = (self.shm.id(), self.msg.id(), self.sem.id());
        assert_eq!(
            found,
            (Some(ids.0), Some(ids.1), Some(ids.2)),
            "a bystander is gone"
        );
    }
}

/// Ids of objects that existed a moment ago (the kernel does not hand an id out again soon).
fn vanished_ids() -> [i32; 3] {
    let shm = new_shm(Key::PRIVATE, 0o600);
    let msg = new_msg(Key::PRIVATE);
    let sem = new_sem(Key::PRIVATE);
    let ids = [shm.id(), msg.id(), sem.id()];
    shm.remove().unwrap();
    msg.remove().unwrap();
    sem.remove().unwrap();
    ids
}

#[test]
fn removing_an_unknown_id_says_no_such_object() {
    let bystanders = Bystanders::new();
    let [shm, msg, sem] = vanished_ids();
    for (flag, id, noun) in [
        ("-m", shm, "System V shared memory id"),
        ("-q", msg, "System V message queue id"),
        ("-s", sem, "System V semaphore set id"),
    ] {
        assert_eq!(
            error_with_status(1, &["rm", flag, &id.to_string()]),
            format!("ipckit: rm: {noun} {id}: no such object")
        );
    }
    bystanders.assert_untouched();
}

#[test]
fn removing_an_unknown_key_says_no_such_object() {
    let bystanders = Bystanders::new();
    for (flag, noun) in [
        ("-M", "System V shared memory key"),
        ("-Q", "System V message queue key"),
        ("-S", "System V semaphore set key"),
    ] {
        let key = unique();
        assert_eq!(
            error_with_status(1, &["rm", flag, &key.to_string()]),
            format!("ipckit: rm: {noun} {key}: no such object")
        );
    }
    bystanders.assert_untouched();
}

#[test]
fn malformed_keys_and_ids_are_refused_before_anything_is_removed() {
    let bystanders = Bystanders::new();
    // Named first on every command line: it must survive the later malformed argument.
    let victim = new_shm(Key::PRIVATE, 0o600);
    let victim_id = victim.id().to_string();
    for (flag, bad, complaint) in [
        ("-M", "0xZZ", "is not a key"),
        ("-Q", "0x123456789", "is not a key"),
        ("-S", "twelve", "is not a key"),
        ("--shmem-key", "", "is not a key"),
        ("-M", "4294967296", "is not a key"),
        ("-M", "0", "IPC_PRIVATE"),
        ("-Q", "0x0", "IPC_PRIVATE"),
        ("-S", "0x00000000", "IPC_PRIVATE"),
        ("-m", "abc", "is not an id"),
        ("-q", "-1", "is not an id"),
        ("-s", "2147483648", "is not an id"),
        ("-m", "1.5", "is not an id"),
    ] {
        let line = error_with_status(2, &["rm", "-m", &victim_id, flag, bad]);
        assert!(line.contains(complaint), "{flag} {bad:?}: {line}");
        assert!(line.contains(&format!("'{bad}'")), "{flag} {bad:?}: {line}");
        assert!(
            victim.stat().is_ok(),
            "{flag} {bad:?}: the segment named first was removed"
        );
    }
    bystanders.assert_untouched();
}

/// Runs `ipckit mk ARGS` expecting a one-line error, and checks that it created no segment (the
/// kernel records each segment's creator pid). A segment it did create is removed before failing.
fn mk_error(status: i32, args: &[&str]) -> String {
    let child = command(&[&["mk"], args].concat())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ipckit");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let created: Vec<OwnedSegment> = ipckit::inspect::shm_segments()
        .unwrap()
        .into_iter()
        .filter(|s| s.cpid == pid)
        .map(|s| Segment::from_id(s.id).into_owned())
        .collect();
    assert!(
        created.is_empty(),
        "mk {args:?} created a segment and failed"
    );
    let line = the_error_line(args, &out);
    assert_eq!(out.status.code(), Some(status), "mk {args:?}: {line}");
    line
}

#[test]
fn bad_sizes_are_refused_and_nothing_is_created() {
    let bystanders = Bystanders::new();
    for (bad, complaint) in [
        ("", "is not a size"),
        ("12Q", "is not a size"),
        ("4Ki", "is not a size"),
        ("1.5", "is not a size"),
        (".5K", "is not a size"),
        ("0", "at least 1 byte"),
        ("0G", "at least 1 byte"),
        ("99999999999999999999", "too large"),
        ("17179869184G", "too large"),
    ] {
        // -Q comes first and is valid: it must not be created either.
        let line = mk_error(2, &["-Q", "-M", bad]);
        assert!(line.contains(complaint), "-M {bad:?}: {line}");
    }
    bystanders.assert_untouched();
}

#[test]
fn bad_modes_and_semaphore_counts_are_refused_and_nothing_is_created() {
    let bystanders = Bystanders::new();
    for (flag, bad, complaint) in [
        ("-p", "999", "is not an octal mode"),
        ("-p", "0o", "is not an octal mode"),
        ("-p", "", "is not an octal mode"),
        ("-p", "rw-r--r--", "is not an octal mode"),
        ("-p", "1777", "bits outside 0777"),
        ("-p", "4600", "bits outside 0777"),
        ("-S", "0", "at least 1 semaphore"),
        ("-S", "three", "is not a number of semaphores"),
    ] {
        let line = mk_error(2, &["-M", "4K", flag, bad]);
        assert!(line.contains(complaint), "{flag} {bad:?}: {line}");
    }
    // Beyond the kernel's limit per set: checked before the segment is made.
    let line = mk_error(1, &["-M", "4K", "-S", "100000000"]);
    assert!(line.contains("semmsl"), "{line}");
    bystanders.assert_untouched();
}

#[test]
fn dumping_a_missing_segment_says_no_such_object() {
    let bystanders = Bystanders::new();
    let [id, _, _] = vanished_ids();
    assert_eq!(
        error_with_status(1, &["dump", "-m", &id.to_string()]),
        format!("ipckit: dump: System V shared memory id {id}: no such object")
    );
    bystanders.assert_untouched();
}

#[test]
fn dumping_beyond_the_end_of_the_segment_is_refused() {
    let bystanders = Bystanders::new();
    let shm = new_shm(Key::PRIVATE, 0o600); // 100 bytes
    let id = shm.id().to_string();
    for range in [
        &["--offset", "101"][..],
        &["--len", "101"],
        &["--offset", "50", "--len", "51"],
        &["--offset", "0xffffffffffffffff", "--len", "2"],
    ] {
        let line = error_with_status(1, &[&["dump", "-m", &id], range].concat());
        assert!(
            line.contains("beyond the end of the segment (100 bytes)"),
            "{range:?}: {line}"
        );
    }
    let line = error_with_status(2, &["dump", "-m", &id, "--offset", "99999999999999999999"]);
    assert!(line.contains("is not a byte count"), "{line}");
    assert!(shm.stat().is_ok());
    bystanders.assert_untouched();
}

#[test]
fn key_of_a_missing_path_names_the_path() {
    let line = error_with_status(1, &["key", "/no/such/path/for/ipckit", "a"]);
    assert!(
        line.starts_with("ipckit: ftok /no/such/path/for/ipckit: "),
        "{line}"
    );
    assert!(line.contains("No such file or directory"), "{line}");
}

#[test]
fn bad_project_ids_and_posix_names_are_usage_errors_checked_before_any_work() {
    for (proj, complaint) in [
        ("0", "out of range"),
        ("256", "out of range"),
        ("ab", "not one ASCII character"),
        ("", "not one ASCII character"),
    ] {
        // The path does not exist either: the project id is checked first, as a usage error.
        let line = error_with_status(2, &["key", "/no/such/path/for/ipckit", proj]);
        assert!(line.contains(complaint), "{proj:?}: {line}");
    }
    assert!(error_with_status(2, &["key", "/tmp", "0"]).contains("project id 0"));
    let bystanders = Bystanders::new();
    for args in [
        &["-m", "1K", "-n", "/a/b"][..],
        &["-Q", "-q", "-n", "a/b"],
        &["-M", "4K", "-s", "-n", ""],
    ] {
        // -Q and -M come first and are valid: they must not be created either.
        let line = mk_error(2, args);
        assert!(line.contains("is not a POSIX name"), "{args:?}: {line}");
    }
    bystanders.assert_untouched();
}

#[test]
fn unknown_flags_and_missing_arguments_are_usage_errors() {
    let bystanders = Bystanders::new();
    let id = bystanders.shm.id().to_string();
    for args in [
        &["rm", "--bogus"][..],
        &["rm", "-x", "1"],
        &["rm"],
        &["rm", "-m"],
        &["mk", "-X"],
        &["mk"],
        &["mk", "-M"],
        &["mk", "-M", "1", "-M", "2"],
        &["dump"],
        &["dump", "-m", &id, "--frobnicate"],
        &["--frobnicate"],
        &["frobnicate"],
    ] {
        error_with_status(2, args);
    }
    assert!(error_of(&["rm", "-m", &id, "--bogus"]).contains("'--bogus'"));
    bystanders.assert_untouched();
}

#[test]
fn an_unprivileged_user_is_told_permission_denied_and_nothing_changes() {
    if !is_root() {
        eprintln!("skipped: needs root to create objects that another user may not touch");
        return;
    }
    let bystanders = Bystanders::new();
    let key = unique();
    let shm = new_shm(key, 0o600);
    let msg = new_msg(Key::PRIVATE);
    let sem = new_sem(Key::PRIVATE);
    let as_nobody = |args: &[&str]| {
        let out = command(args)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .expect("run ipckit as nobody");
        the_error_line(args, &out)
    };
    let shm_id = shm.id().to_string();
    for args in [
        &["rm", "-m", &shm_id][..],
        &["rm", "-M", &key.to_string()],
        &["rm", "-q", &msg.id().to_string()],
        &["rm", "-s", &sem.id().to_string()],
        &["dump", "-m", &shm_id],
        &["dump", "-m", &shm_id, "--raw"],
    ] {
        let line = as_nobody(args);
        assert!(line.contains("Permission denied"), "{args:?}: {line}");
        assert!(
            line.starts_with(&format!("ipckit: {}: ", args[0])),
            "{args:?}: {line}"
        );
    }
    assert_eq!(Segment::open(key).map(|s| s.id()).ok(), Some(shm.id()));
    assert!(msg.stat().is_ok() && sem.stat().is_ok());
    bystanders.assert_untouched();
}
