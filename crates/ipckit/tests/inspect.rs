//! `ipckit::inspect` on live objects: what a test creates shows up in the /proc listings with the
//! right fields, and the processes attached to a segment are found from their memory maps, our own
//! and a re-executed child's, and disappear on detach.
//!
//! Every object is created exclusively under a unique key (or as IPC_PRIVATE) and owned by a handle
//! that removes it on drop, so nothing is left behind when an assertion fails.

use ipckit::inspect::{self, MsgInfo, SemInfo, ShmInfo};
use ipckit::sysv::msg::MsgQueue;
use ipckit::sysv::sem::SemSet;
use ipckit::sysv::shm::Segment;
use ipckit::Key;
use ipckit_testkit::{child_role, no_process_starts, spawn_self, unique_key, Conversation};

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn egid() -> u32 {
    rustix::process::getegid().as_raw()
}

fn shm(id: i32) -> Option<ShmInfo> {
    inspect::shm_segments()
        .unwrap()
        .into_iter()
        .find(|s| s.id == id)
}

fn sem(id: i32) -> Option<SemInfo> {
    inspect::sem_sets()
        .unwrap()
        .into_iter()
        .find(|s| s.id == id)
}

fn msg(id: i32) -> Option<MsgInfo> {
    inspect::msg_queues()
        .unwrap()
        .into_iter()
        .find(|q| q.id == id)
}

fn attached(id: i32) -> Vec<u32> {
    inspect::shm_attached_pids()
        .unwrap()
        .remove(&id)
        .unwrap_or_default()
}

#[test]
fn created_segment_is_listed_with_key_size_mode_and_creator() {
    let key = Key::new(unique_key());
    let seg = Segment::options()
        .size(10_000)
        .mode(0o640)
        .exclusive(true)
        .open(key)
        .unwrap()
        .into_owned();

    let s = shm(seg.id()).expect("segment listed in /proc/sysvipc/shm");
    assert_eq!(s.key, key);
    assert_eq!(s.size, 10_000);
    assert_eq!(s.mode, 0o640);
    assert_eq!(s.permissions(), 0o640);
    assert_eq!(s.cpid, std::process::id());
    assert_eq!((s.uid, s.cuid), (euid(), euid()));
    assert_eq!((s.gid, s.cgid), (egid(), egid()));
    assert_eq!(s.nattch, 0);
    assert_eq!(s.atime, None, "never attached");
    assert!(s.ctime.is_some());
    assert!(!s.is_marked_for_removal() && !s.is_locked());

    let _a = seg.attach().unwrap();
    let s = shm(seg.id()).unwrap();
    assert_eq!(s.nattch, 1);
    assert_eq!(s.lpid, std::process::id());
    assert!(s.atime.is_some());

    let id = seg.id();
    seg.remove().unwrap();
    let s = shm(id).expect("a removed segment stays while attached");
    assert!(s.is_marked_for_removal());
}

#[test]
fn listing_agrees_with_ipc_stat() {
    let seg = Segment::create_exclusive(Key::new(unique_key()), 4096)
        .unwrap()
        .into_owned();
    let _a = seg.attach().unwrap();
    let stat = seg.stat().unwrap();
    let s = shm(seg.id()).unwrap();
    assert_eq!(s.perm(), stat.perm);
    assert_eq!(s.size, stat.size as u64);
    assert_eq!(
        (s.cpid, s.lpid, s.nattch),
        (stat.cpid, stat.lpid, stat.nattch)
    );
    assert_eq!(
        (s.atime, s.dtime, s.ctime),
        (stat.atime, stat.dtime, stat.ctime)
    );
}

#[test]
fn created_semaphore_set_is_listed_with_nsems() {
    let key = Key::new(unique_key());
    let set = SemSet::options()
        .nsems(3)
        .mode(0o600)
        .exclusive(true)
        .open(key)
        .unwrap()
        .into_owned();
    let s = sem(set.id()).expect("set listed in /proc/sysvipc/sem");
    assert_eq!((s.key, s.nsems, s.mode), (key, 3, 0o600));
    assert_eq!((s.uid, s.cuid), (euid(), euid()));
    assert_eq!(s.otime, None, "no semop yet");

    set.post(1).unwrap();
    assert!(sem(set.id()).unwrap().otime.is_some());
}

#[test]
fn created_queue_is_listed_with_messages_and_used_bytes() {
    let key = Key::new(unique_key());
    let q = MsgQueue::create_exclusive(key).unwrap().into_owned();
    let m = msg(q.id()).expect("queue listed in /proc/sysvipc/msg");
    assert_eq!((m.key, m.mode, m.qnum, m.cbytes), (key, 0o600, 0, 0));
    assert_eq!(m.stime, None);

    q.send(1, b"hello").unwrap();
    q.send(2, b"goodbye").unwrap();
    let m = msg(q.id()).unwrap();
    assert_eq!((m.qnum, m.cbytes), (2, 12));
    assert_eq!(m.lspid, std::process::id());
    assert_eq!(m.lrpid, 0);
    assert!(m.stime.is_some());
    assert_eq!(m.rtime, None);
}

#[test]
fn private_objects_have_the_private_key() {
    let seg = Segment::create(Key::PRIVATE, 64).unwrap().into_owned();
    assert!(shm(seg.id()).unwrap().key.is_private());
}

#[test]
fn our_attachment_is_found_and_gone_after_detach() {
    let me = std::process::id();
    // Two private segments: same /SYSV00000000 path, told apart by the inode (the shmid).
    let seg = Segment::create(Key::PRIVATE, 4096).unwrap().into_owned();
    let other = Segment::create(Key::PRIVATE, 4096).unwrap().into_owned();
    assert!(!attached(seg.id()).contains(&me));

    let a = seg.attach().unwrap();
    let b = seg.attach().unwrap();
    assert_eq!(
        attached(seg.id()).iter().filter(|p| **p == me).count(),
        1,
        "attached twice, listed once"
    );
    assert!(!attached(other.id()).contains(&me));

    drop(a);
    assert!(attached(seg.id()).contains(&me));
    drop(b);
    assert!(!attached(seg.id()).contains(&me));
}

#[test]
fn attachment_of_a_removed_segment_is_still_found() {
    let me = std::process::id();
    let seg = Segment::create_exclusive(Key::new(unique_key()), 4096)
        .unwrap()
        .into_owned();
    let id = seg.id();
    let a = seg.attach().unwrap();
    seg.remove().unwrap(); // "(deleted)" in our maps from now on
    assert!(attached(id).contains(&me));
    drop(a); // last detach destroys it
    assert!(shm(id).is_none());
}

#[test]
fn child_attachment_is_found_while_held_and_not_after_detach() {
    if let Some(role) = child_role() {
        // The child: attach the segment whose id is the role, hold it until told, detach, then
        // wait for the parent to close our stdin.
        let seg = Segment::from_id(role.parse().unwrap());
        let a = seg.attach().unwrap();
        println!("attached");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        drop(a);
        println!("detached");
        let _ = std::io::stdin().read_line(&mut line);
        return;
    }
    let seg = Segment::create_exclusive(Key::new(unique_key()), 4096)
        .unwrap()
        .into_owned();
    let mut child = Conversation::start(spawn_self(
        "child_attachment_is_found_while_held_and_not_after_detach",
        &seg.id().to_string(),
    ));
    let pid = child.pid();

    child.wait_for("attached");
    assert_eq!(attached(seg.id()), vec![pid]);
    assert_eq!(shm(seg.id()).unwrap().nattch, 1);

    let _ours = seg.attach().unwrap();
    let mut both = vec![pid, std::process::id()];
    both.sort_unstable();
    assert_eq!(attached(seg.id()), both);

    child.say("detach");
    child.wait_for("detached");
    assert_eq!(attached(seg.id()), vec![std::process::id()]);
    assert_eq!(shm(seg.id()).unwrap().lpid, pid, "the child detached last");

    assert!(child.finish().success());
}

#[test]
fn limits_are_positive_and_usage_counts_our_objects() {
    let l = inspect::limits().unwrap();
    for (name, value) in [
        ("shmmax", l.shmmax),
        ("shmall", l.shmall),
        ("shmmni", l.shmmni),
        ("semmsl", l.semmsl),
        ("semmns", l.semmns),
        ("semopm", l.semopm),
        ("semmni", l.semmni),
        ("msgmax", l.msgmax),
        ("msgmnb", l.msgmnb),
        ("msgmni", l.msgmni),
    ] {
        assert!(value > 0, "{name} is 0");
    }

    let set = SemSet::create_exclusive(Key::new(unique_key()), 5)
        .unwrap()
        .into_owned();
    let u = inspect::usage().unwrap();
    assert!(u.sem_arrays >= 1);
    assert!(u.sem_semaphores >= 5);
    drop(set);
}

#[test]
fn attachments_count_how_many_times_a_process_has_a_segment() {
    let seg = Segment::create(Key::PRIVATE, 4096).unwrap().into_owned();
    // A process another test starts would copy the attachments until it execs.
    let _no_starts = no_process_starts();
    let three: Vec<_> = (0..3).map(|_| seg.attach().unwrap()).collect();
    let me = std::process::id();
    let mine = |id| {
        inspect::shm_attachments()
            .unwrap()
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.pid == me)
            .map(|a| a.count)
    };
    assert_eq!(mine(seg.id()), Some(3));
    assert_eq!(shm(seg.id()).unwrap().nattch, 3);
    drop(three);
    assert_eq!(mine(seg.id()), None);
}
