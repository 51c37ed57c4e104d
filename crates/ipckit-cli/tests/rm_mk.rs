//! `ipckit mk` creates what ipcmk would and prints what ipcmk prints; `ipckit rm` removes exactly
//! the objects named with ipcrm's flags, in command-line order, and reports each one it cannot.
//!
//! `rm -a` is not run here: it would remove every object on the machine, other people's included.
//! Its parsing is tested in the unit tests of src/rm.rs.

use std::process::Output;

use ipckit::sysv::msg::{MsgQueue, OwnedMsgQueue};
use ipckit::sysv::sem::{OwnedSemSet, SemSet};
use ipckit::sysv::shm::{OwnedSegment, Segment};
use ipckit::Key;
use ipckit_testkit::{run, text, unique_key};

fn ipckit(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_ipckit"), args)
}

/// The objects an `ipckit mk` run printed, each held by an owning handle so that it is removed
/// when the test ends, passed or failed.
#[derive(Default)]
struct Made {
    lines: Vec<String>,
    shm: Vec<OwnedSegment>,
    msg: Vec<OwnedMsgQueue>,
    sem: Vec<OwnedSemSet>,
}

/// Runs `ipckit mk ARGS` and takes ownership of every object it reports, before any assertion.
fn mk(args: &[&str]) -> Made {
    let out = ipckit(&[&["mk"], args].concat());
    let mut made = Made::default();
    for line in text(&out.stdout).lines() {
        made.lines.push(line.to_owned());
        let id = |label: &str| line.strip_prefix(label).and_then(|n| n.parse::<i32>().ok());
        if let Some(id) = id("Shared memory id: ") {
            made.shm.push(Segment::from_id(id).into_owned());
        } else if let Some(id) = id("Message queue id: ") {
            made.msg.push(MsgQueue::from_id(id).into_owned());
        } else if let Some(id) = id("Semaphore id: ") {
            made.sem.push(SemSet::from_id(id).into_owned());
        }
    }
    assert!(
        out.status.success(),
        "ipckit mk {args:?} failed: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stderr), "", "ipckit mk {args:?} wrote to stderr");
    made
}

fn shm_exists(id: i32) -> bool {
    Segment::from_id(id).stat().is_ok()
}

fn msg_exists(id: i32) -> bool {
    MsgQueue::from_id(id).stat().is_ok()
}

fn sem_exists(id: i32) -> bool {
    SemSet::from_id(id).stat().is_ok()
}

fn new_shm(key: Key) -> OwnedSegment {
    Segment::options()
        .size(64)
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

#[test]
fn mk_shmem_prints_its_id_and_creates_a_private_segment_of_that_size_and_mode() {
    let made = mk(&["-M", "4K", "-p", "640"]);
    assert_eq!(made.shm.len(), 1, "{:?}", made.lines);
    let id = made.shm[0].id();
    assert_eq!(made.lines, [format!("Shared memory id: {id}")]);
    let stat = made.shm[0].stat().expect("the printed segment exists");
    assert_eq!(stat.size, 4096);
    assert_eq!(stat.perm.permissions(), 0o640);
    assert_eq!(stat.perm.key, Key::PRIVATE);
}

#[test]
fn mk_semaphore_set_has_that_many_semaphores_and_mode_0600_by_default() {
    let made = mk(&["-S", "3"]);
    assert_eq!(made.sem.len(), 1, "{:?}", made.lines);
    let id = made.sem[0].id();
    assert_eq!(made.lines, [format!("Semaphore id: {id}")]);
    let stat = made.sem[0].stat().expect("the printed set exists");
    assert_eq!(stat.nsems, 3);
    assert_eq!(stat.perm.permissions(), 0o600);
    assert_eq!(stat.perm.key, Key::PRIVATE);
}

#[test]
fn mk_queue_prints_its_id_and_creates_a_private_queue() {
    let made = mk(&["-Q", "--mode", "0o604"]);
    assert_eq!(made.msg.len(), 1, "{:?}", made.lines);
    let id = made.msg[0].id();
    assert_eq!(made.lines, [format!("Message queue id: {id}")]);
    let stat = made.msg[0].stat().expect("the printed queue exists");
    assert_eq!(stat.perm.permissions(), 0o604);
    assert_eq!(stat.perm.key, Key::PRIVATE);
}

#[test]
fn mk_with_several_flags_creates_each_and_prints_them_in_ipcmks_order() {
    let made = mk(&["-S", "2", "-Q", "-M", "1M", "-p", "0660"]);
    assert_eq!(
        (made.shm.len(), made.msg.len(), made.sem.len()),
        (1, 1, 1),
        "{:?}",
        made.lines
    );
    assert_eq!(
        made.lines,
        [
            format!("Shared memory id: {}", made.shm[0].id()),
            format!("Message queue id: {}", made.msg[0].id()),
            format!("Semaphore id: {}", made.sem[0].id()),
        ]
    );
    let shm = made.shm[0].stat().unwrap();
    assert_eq!((shm.size, shm.perm.permissions()), (1 << 20, 0o660));
    assert_eq!(made.msg[0].stat().unwrap().perm.permissions(), 0o660);
    let sem = made.sem[0].stat().unwrap();
    assert_eq!((sem.nsems, sem.perm.permissions()), (2, 0o660));
}

#[test]
fn mk_key_creates_each_system_v_kind_under_that_key_and_refuses_a_key_in_use() {
    let key = unique();
    let made = mk(&["-M", "1K", "-Q", "-S", "2", "--key", &key.to_string()]);
    assert_eq!(
        (made.shm.len(), made.msg.len(), made.sem.len()),
        (1, 1, 1),
        "{:?}",
        made.lines
    );
    assert_eq!(made.shm[0].stat().unwrap().perm.key, key);
    assert_eq!(made.msg[0].stat().unwrap().perm.key, key);
    assert_eq!(made.sem[0].stat().unwrap().perm.key, key);
    // Programs open them by key alone.
    assert_eq!(Segment::open(key).unwrap().id(), made.shm[0].id());
    assert_eq!(SemSet::open(key).unwrap().id(), made.sem[0].id());
    // Decimal, as /proc/sysvipc prints keys, is the same key.
    let other = unique();
    let made_decimal = mk(&["-Q", "-k", &other.value().to_string()]);
    assert_eq!(made_decimal.msg[0].stat().unwrap().perm.key, other);

    // In use: an error that says so, and nothing else is left behind: the queue made before
    // the set's key was found taken is removed again.
    let sem_only = unique();
    let _set = mk(&["-S", "1", "--key", &sem_only.to_string()]);
    let out = ipckit(&["mk", "-Q", "-S", "1", "--key", &sem_only.to_string()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "key {sem_only} is in use by another semaphore set"
        )),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout), "");
    let queues: Vec<OwnedMsgQueue> = ipckit::inspect::msg_queues()
        .unwrap()
        .into_iter()
        .filter(|q| q.key == sem_only)
        .map(|q| MsgQueue::from_id(q.id).into_owned())
        .collect();
    assert!(queues.is_empty(), "a queue was left under {sem_only}");
    let out = ipckit(&["mk", "-Q", "--key", &key.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is in use by another message queue"));

    // --reuse: the object under the key is used and printed, and never removed, even when a
    // later object fails (the set under `sem_only` has 1 semaphore, not 5).
    let out = ipckit(&[
        "mk",
        "-Q",
        "-S",
        "5",
        "--key",
        &sem_only.to_string(),
        "--reuse",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let reused = mk(&["-M", "512", "-Q", "--key", &key.to_string(), "--reuse"]);
    assert_eq!(
        reused.lines,
        [
            format!("Shared memory id: {}", made.shm[0].id()),
            format!("Message queue id: {}", made.msg[0].id()),
        ]
    );
    // The test's handles for them must not remove them twice: forget the reused ones.
    let Made { shm, msg, .. } = reused;
    for o in shm {
        o.into_inner();
    }
    for o in msg {
        o.into_inner();
    }
    assert!(shm_exists(made.shm[0].id()) && msg_exists(made.msg[0].id()));
    assert!(SemSet::open(sem_only).is_ok(), "the reused set was removed");
    let queues: Vec<OwnedMsgQueue> = ipckit::inspect::msg_queues()
        .unwrap()
        .into_iter()
        .filter(|q| q.key == sem_only)
        .map(|q| MsgQueue::from_id(q.id).into_owned())
        .collect();
    assert!(
        queues.is_empty(),
        "--reuse left a new queue under {sem_only}"
    );

    // --key is for System V objects, and must be a key; --reuse needs --key.
    for args in [
        &["mk", "-m", "1K", "-n", "x", "--key", "0x1"][..],
        &["mk", "-Q", "--key", "0xZZ"],
        &["mk", "-Q", "--key", "0x123456789"],
        &["mk", "-Q", "--reuse"],
    ] {
        assert_eq!(ipckit(args).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn mk_sizes_take_k_m_g_suffixes_in_powers_of_1024() {
    for (size, bytes) in [
        ("3000", 3000),
        ("2KiB", 2048),
        ("3k", 3072),
        ("2MiB", 2 << 20),
        ("64KB", 64_000),
        ("64KiB", 65_536),
        ("64K", 65_536),
        ("1.5K", 1536),
        ("1.5KB", 1500),
    ] {
        let made = mk(&["-M", size]);
        assert_eq!(made.shm.len(), 1, "{size}: {:?}", made.lines);
        assert_eq!(made.shm[0].stat().unwrap().size, bytes, "-M {size}");
    }
    // A gigabyte segment costs nothing until it is touched.
    let made = mk(&["-M", "1G"]);
    assert_eq!(made.shm.len(), 1, "{:?}", made.lines);
    assert_eq!(made.shm[0].stat().unwrap().size, 1 << 30);
}

#[test]
fn rm_by_each_flag_removes_exactly_the_named_objects() {
    let (shm_key, msg_key, sem_key) = (unique(), unique(), unique());
    let shm_by_id = new_shm(Key::PRIVATE);
    let shm_by_key = new_shm(shm_key);
    let msg_by_id = new_msg(Key::PRIVATE);
    let msg_by_key = new_msg(msg_key);
    let sem_by_id = new_sem(Key::PRIVATE);
    let sem_by_key = new_sem(sem_key);
    let bystanders = (new_shm(unique()), new_msg(unique()), new_sem(unique()));

    let out = ipckit(&[
        "rm",
        "-m",
        &shm_by_id.id().to_string(),
        "-M",
        &shm_key.to_string(),
        "--queue-id",
        &msg_by_id.id().to_string(),
        "--queue-key",
        &msg_key.value().to_string(),
        "-s",
        &sem_by_id.id().to_string(),
        "--semaphore-key",
        &sem_key.to_string(),
    ]);

    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    assert_eq!(text(&out.stdout), "");
    for (what, gone) in [
        ("shm by id", !shm_exists(shm_by_id.id())),
        ("shm by key", !shm_exists(shm_by_key.id())),
        ("msg by id", !msg_exists(msg_by_id.id())),
        ("msg by key", !msg_exists(msg_by_key.id())),
        ("sem by id", !sem_exists(sem_by_id.id())),
        ("sem by key", !sem_exists(sem_by_key.id())),
    ] {
        assert!(gone, "{what} was not removed");
    }
    assert!(
        shm_exists(bystanders.0.id()),
        "an unnamed segment was removed"
    );
    assert!(
        msg_exists(bystanders.1.id()),
        "an unnamed queue was removed"
    );
    assert!(sem_exists(bystanders.2.id()), "an unnamed set was removed");
}

/// The id of a segment that existed a moment ago (ids are not reused soon: the kernel advances a
/// sequence number in each one).
fn vanished_shm_id() -> i32 {
    let shm = new_shm(Key::PRIVATE);
    let id = shm.id();
    shm.remove().unwrap();
    id
}

fn vanished_sem_id() -> i32 {
    let sem = new_sem(Key::PRIVATE);
    let id = sem.id();
    sem.remove().unwrap();
    id
}

#[test]
fn rm_reports_each_missing_object_on_its_own_line_and_still_removes_the_others() {
    let present_shm = new_shm(Key::PRIVATE);
    let sem_key = unique();
    let present_sem = new_sem(sem_key);
    let missing_shm = vanished_shm_id();
    let missing_msg_key = unique();
    let missing_sem = vanished_sem_id();

    let out = ipckit(&[
        "rm",
        "-m",
        &missing_shm.to_string(),
        "-m",
        &present_shm.id().to_string(),
        "-Q",
        &missing_msg_key.to_string(),
        "-S",
        &sem_key.to_string(),
        "-s",
        &missing_sem.to_string(),
    ]);

    assert!(!out.status.success(), "rm of missing objects succeeded");
    assert_eq!(
        text(&out.stderr),
        format!(
            "ipckit: rm: System V shared memory id {missing_shm}: no such object\n\
             ipckit: rm: System V message queue key {missing_msg_key}: no such object\n\
             ipckit: rm: System V semaphore set id {missing_sem}: no such object\n"
        )
    );
    assert_eq!(text(&out.stdout), "");
    assert!(!shm_exists(present_shm.id()), "the existing segment stayed");
    assert!(!sem_exists(present_sem.id()), "the existing set stayed");
}

#[test]
fn rm_processes_flags_in_command_line_order() {
    // By key, then by id: the id names a segment already gone.
    let key = unique();
    let shm = new_shm(key);
    let out = ipckit(&["rm", "-M", &key.to_string(), "-m", &shm.id().to_string()]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        format!(
            "ipckit: rm: System V shared memory id {}: no such object\n",
            shm.id()
        )
    );
    assert!(!shm_exists(shm.id()));

    // By id, then by key: now the key names nothing.
    let key = unique();
    let queue = new_msg(key);
    let out = ipckit(&["rm", "-q", &queue.id().to_string(), "-Q", &key.to_string()]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        format!("ipckit: rm: System V message queue key {key}: no such object\n")
    );
    assert!(!msg_exists(queue.id()));
}

#[test]
fn rm_accepts_keys_in_hex_and_in_signed_decimal_as_ipcs_prints_them() {
    let key = unique();
    let sem = new_sem(key);
    let out = ipckit(&["rm", "-S", &key.value().to_string()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(!sem_exists(sem.id()));

    let key = unique();
    let shm = new_shm(key);
    let hex = format!("0X{:X}", key.value() as u32);
    let out = ipckit(&["rm", "--shmem-key", &hex]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(!shm_exists(shm.id()));
}
