//! `ipckit::inspect` on live POSIX objects: shared memory, named semaphores and message queues
//! that a test creates are listed with the right name, size, value, counts and permissions, and
//! the processes that map them or hold them open — this one and a re-executed child — are found.
//!
//! Every object has a unique name and is owned by a handle (or a `Defer` guard) that unlinks it,
//! so nothing is left in /dev/shm or /dev/mqueue when an assertion fails. A test that asserts
//! exactly which processes use its object holds `no_process_starts()` meanwhile: a process that
//! another test starts shares or copies this process's mappings and descriptors until it execs.

use std::os::unix::fs::MetadataExt;

use ipckit::inspect::{
    self, FileId, PosixMqInfo, PosixMqs, PosixSemInfo, PosixShmInfo, Users, DEV_SHM,
};
use ipckit::posix::mq::MessageQueue;
use ipckit::posix::sem::NamedSemaphore;
use ipckit::posix::shm::SharedMemory;
use ipckit_testkit::{
    become_nobody, child_role, is_root, no_process_starts, spawn_self, start, umask, unique_name,
    Conversation, Defer,
};

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn shm(name: &str) -> Option<PosixShmInfo> {
    inspect::posix_shm_objects()
        .unwrap()
        .into_iter()
        .find(|s| s.name == *name)
}

fn sem(name: &str) -> Option<PosixSemInfo> {
    inspect::posix_semaphores()
        .unwrap()
        .into_iter()
        .find(|s| s.name == *name)
}

/// The queue `name`, or `None` when /dev/mqueue is not mounted (the test then says so and stops).
fn mq(name: &str) -> Option<Option<PosixMqInfo>> {
    match inspect::posix_mqueues().unwrap() {
        PosixMqs::Listed(v) => Some(v.into_iter().find(|q| q.name == *name)),
        PosixMqs::NotMounted => None,
    }
}

fn users_of(file: FileId) -> Users {
    let shm = inspect::posix_shm_objects().unwrap();
    let sem = inspect::posix_semaphores().unwrap();
    let mqs = inspect::posix_mqueues().unwrap();
    inspect::posix_users(&shm, &sem, mqs.queues())
        .unwrap()
        .remove(&file)
        .unwrap_or_default()
}

#[test]
fn shared_memory_object_is_listed_with_name_size_mode_and_owner() {
    let name = unique_name("inspect-shm");
    let obj = SharedMemory::options()
        .size(10_000)
        .mode(0o640)
        .exclusive(true)
        .open(&name)
        .unwrap()
        .into_owned();

    let s = shm(&name).expect("object listed from /dev/shm");
    assert_eq!(s.size, 10_000);
    assert_eq!(s.permissions(), 0o640 & !umask());
    assert_eq!(s.uid, euid());
    let meta = std::fs::metadata(format!("{DEV_SHM}{name}")).unwrap();
    assert_eq!(s.file, FileId::of_metadata(&meta));
    assert_eq!(s.mtime, meta.modified().unwrap());
    assert!(
        sem(&name).is_none(),
        "a shared-memory object is not a semaphore"
    );

    obj.resize(20_000).unwrap();
    assert_eq!(shm(&name).unwrap().size, 20_000);
    obj.unlink().unwrap();
    assert!(shm(&name).is_none());
}

#[test]
fn named_semaphore_is_listed_with_its_value_and_this_process_maps_it() {
    let name = unique_name("inspect-sem");
    let s = NamedSemaphore::options()
        .value(3)
        .mode(0o600)
        .exclusive(true)
        .open(&name)
        .unwrap()
        .into_owned();
    s.post().unwrap();

    let info = sem(&name).expect("semaphore listed from /dev/shm/sem.NAME");
    assert_eq!(info.value, Some(4));
    assert_eq!(info.permissions(), 0o600);
    assert_eq!(info.uid, euid());
    assert!(
        shm(&name).is_none() && shm(&format!("/sem.{}", &name[1..])).is_none(),
        "a semaphore is not listed as shared memory"
    );
    assert!(s.try_wait().unwrap());
    assert_eq!(sem(&name).unwrap().value, Some(3));
    // glibc maps it under a temporary file name: the device and inode still match.
    assert!(users_of(info.file).mapped.contains(&std::process::id()));
}

#[test]
fn message_queue_is_listed_with_counts_and_sizes_without_consuming() {
    let name = unique_name("inspect-mq");
    let q = MessageQueue::options()
        .max_messages(5)
        .message_size(64)
        .mode(0o600)
        .exclusive(true)
        .open(&name)
        .unwrap()
        .into_owned();
    let Some(listed) = mq(&name) else {
        eprintln!(
            "note: /dev/mqueue is not mounted; queues cannot be listed ({}).",
            inspect::MOUNT_MQUEUE
        );
        return;
    };
    let info = listed.expect("queue listed from /dev/mqueue");
    assert_eq!(info.messages, Some(0));
    assert_eq!(info.max_messages, Some(5));
    assert_eq!(info.message_size, Some(64));
    assert_eq!(info.used_bytes, Some(0));
    assert_eq!(info.notify_pid, None);
    assert_eq!(info.permissions(), 0o600);
    assert_eq!(info.uid, euid());

    q.send(b"hello", 1).unwrap();
    q.send(b"goodbye!", 2).unwrap();
    let info = mq(&name).unwrap().unwrap();
    assert_eq!(info.messages, Some(2));
    // QSIZE counts the text (13 bytes) plus the kernel's bookkeeping per priority.
    assert!(info.used_bytes >= Some(13), "{:?}", info.used_bytes);
    // Listing did not receive anything.
    let mut buf = [0u8; 64];
    assert_eq!(q.try_recv(&mut buf).unwrap(), Some((8, 2)));
    assert_eq!(q.try_recv(&mut buf).unwrap(), Some((5, 1)));
    assert_eq!(mq(&name).unwrap().unwrap().used_bytes, Some(0));
    // A queue descriptor links to "/NAME": it is followed and matched.
    assert!(users_of(info.file).open.contains(&std::process::id()));
}

#[test]
fn child_that_maps_shared_memory_is_an_attached_pid() {
    if let Some(name) = child_role() {
        // The child: map the object, report, and hold the mapping until the parent closes our
        // stdin.
        let obj = SharedMemory::open(&name).unwrap();
        let map = obj.map().unwrap();
        println!("mapped");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        drop((map, obj));
        return;
    }
    let me = std::process::id();
    let name = unique_name("inspect-shm-child");
    let obj = SharedMemory::create_exclusive(&name, 4096)
        .unwrap()
        .into_owned();
    let file = shm(&name).unwrap().file;
    let exclusive = no_process_starts();
    assert_eq!(users_of(file).open, vec![me], "our own descriptor");
    assert!(users_of(file).mapped.is_empty());
    drop(exclusive);

    let mut child = Conversation::start(spawn_self(
        "child_that_maps_shared_memory_is_an_attached_pid",
        &name,
    ));
    let pid = child.pid();
    child.wait_for("mapped");

    let exclusive = no_process_starts();
    let users = users_of(file);
    drop(exclusive);
    assert_eq!(users.mapped, vec![pid], "the child maps it, we do not");
    assert!(users.open.contains(&me) && users.open.contains(&pid));
    let mut both = vec![me, pid];
    both.sort_unstable();
    assert_eq!(users.pids(), both);

    // Unlinked while mapped: the maps say "(deleted)", the name is gone from the listing.
    obj.unlink().unwrap();
    assert!(shm(&name).is_none());

    child.say("exit");
    assert!(child.finish().success());
}

#[test]
fn object_nobody_uses_has_no_users() {
    let name = unique_name("inspect-shm-free");
    let _unlink = Defer(|| {
        let _ = SharedMemory::unlink(&name);
    });
    let obj = SharedMemory::create_exclusive(&name, 100).unwrap();
    let map = obj.map().unwrap();
    let file = shm(&name).unwrap().file;
    let exclusive = no_process_starts();
    let users = users_of(file);
    drop(exclusive);
    assert_eq!(
        (users.mapped.clone(), users.open.clone()),
        (vec![std::process::id()], vec![std::process::id()])
    );
    drop(map);
    drop(obj);
    assert!(users_of(file).is_empty());
    let meta = std::fs::metadata(format!("{DEV_SHM}{name}")).unwrap();
    assert_eq!(FileId::of_metadata(&meta).ino, meta.ino());
}

#[test]
fn queue_another_user_cannot_read_is_listed_from_stat_with_unknown_counts() {
    const TEST: &str = "queue_another_user_cannot_read_is_listed_from_stat_with_unknown_counts";
    if let Some(name) = child_role() {
        // The child, as nobody: root's 0600 queue cannot be read, yet the listing succeeds.
        become_nobody();
        let queues = match inspect::posix_mqueues() {
            Ok(PosixMqs::Listed(v)) => v,
            other => panic!("listing failed as nobody: {other:?}"),
        };
        let q = queues
            .into_iter()
            .find(|q| q.name == *name)
            .expect("listed");
        assert_eq!((q.uid, q.permissions()), (0, 0o600));
        assert_eq!(q.used_bytes, None);
        assert_eq!(
            (q.messages, q.max_messages, q.message_size),
            (None, None, None)
        );
        assert_eq!(q.notify_pid, None);
        return;
    }
    if !is_root() {
        eprintln!("skipped: needs root to make a queue that the user nobody cannot read");
        return;
    }
    let name = unique_name("inspect-mq-unreadable");
    let _q = MessageQueue::options()
        .mode(0o600)
        .exclusive(true)
        .open(&name)
        .unwrap()
        .into_owned();
    if mq(&name).is_none() {
        eprintln!(
            "skipped: /dev/mqueue is not mounted ({})",
            inspect::MOUNT_MQUEUE
        );
        return;
    }
    let status = start(spawn_self(TEST, &name)).wait();
    assert!(status.success(), "child's verdict: {status}");
}
