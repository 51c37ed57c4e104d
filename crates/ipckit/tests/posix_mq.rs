//! POSIX message queues: create and open, attributes, priority order, blocking and non-blocking
//! and timed sends and receives, checks made before the call, limits named in errors, another
//! process on the other end, and C interoperability.

use std::io::ErrorKind;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ipckit::posix::mq::{limits, Attr, MessageQueue, MQ_PRIO_MAX};
use ipckit::Error;
use ipckit_testkit::interrupt::interrupted_in;
use ipckit_testkit::task::Task;
use ipckit_testkit::{
    become_nobody, child_role, is_root, spawn_self, start, umask, unique_name, wait_until,
    CProgram, Defer,
};

/// A fresh queue name and a guard that unlinks it at the end of the test, also on panic.
fn fresh(what: &str) -> (String, Defer<impl FnMut()>) {
    let name = unique_name(what);
    let cleanup = name.clone();
    (
        name,
        Defer(move || {
            let _ = MessageQueue::unlink(&cleanup);
        }),
    )
}

/// Whether the name exists, by opening it (works without /dev/mqueue).
fn exists(name: &str) -> bool {
    match MessageQueue::options().read_only().open(name) {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => panic!("open {name}: {e}"),
    }
}

/// Receives one message into a fresh vector: (bytes, priority).
fn take(q: &MessageQueue) -> (Vec<u8>, u32) {
    let mut buf = Vec::new();
    let priority = q.recv_vec(&mut buf).unwrap();
    (buf, priority)
}

#[test]
fn create_exclusive_fails_when_the_name_exists_and_open_finds_the_queue() {
    let (name, _cleanup) = fresh("mq-excl");
    let q = MessageQueue::create_exclusive(&name, Attr::new(4, 32)).unwrap();
    let err = MessageQueue::create_exclusive(&name, Attr::new(4, 32)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    // create() opens the existing queue, which keeps its attributes.
    let again = MessageQueue::create(&name, Attr::new(2, 16)).unwrap();
    assert_eq!((again.max_messages(), again.message_size()), (4, 32));
    let opened = MessageQueue::open(&name).unwrap();
    assert_eq!(opened.name(), name.as_str());
    opened.send(b"hello", 0).unwrap();
    assert_eq!(take(&q), (b"hello".to_vec(), 0));
}

#[test]
fn open_of_a_missing_name_is_not_found_naming_the_queue() {
    let name = unique_name("mq-missing");
    let err = MessageQueue::open(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.op(), "mq_open");
    assert!(err.to_string().contains(&name), "{err}");
    assert_eq!(
        MessageQueue::unlink(&name).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// Child of `default_mode_is_0600_so_other_users_cannot_open`: as nobody, the queue
/// `name` (root's, mode 0600) cannot be opened, and `other` (mode 0644) can unless the umask
/// takes away the others' read bit.
fn open_as_nobody(names: &str) {
    let (name, other) = names.split_once(',').unwrap();
    become_nobody();
    let err = MessageQueue::options().read_only().open(name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    if umask() & 0o004 == 0 {
        MessageQueue::options().read_only().open(other).unwrap();
    }
}

#[test]
fn default_mode_is_0600_so_other_users_cannot_open() {
    use std::os::unix::fs::PermissionsExt;
    const TEST: &str = "default_mode_is_0600_so_other_users_cannot_open";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let (name, _cleanup) = fresh("mq-mode");
    let (other, _cleanup_other) = fresh("mq-mode");
    let _q = MessageQueue::create_exclusive(&name, Attr::new(1, 1)).unwrap();
    let _o = MessageQueue::options()
        .mode(0o644)
        .create(true)
        .open(&other)
        .unwrap();
    // The queue is visible as a file only where an mqueue file system is mounted.
    if let Ok(meta) = std::fs::metadata(Path::new("/dev/mqueue").join(&name[1..])) {
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    if is_root() {
        let role = format!("open-as-nobody:{name},{other}");
        let status = start(spawn_self(TEST, &role)).wait();
        assert!(status.success(), "child's verdict: {status}");
    }
}

#[test]
fn attr_reports_capacity_size_queued_messages_and_blocking_mode() {
    let (name, _cleanup) = fresh("mq-attr");
    let q = MessageQueue::create_exclusive(&name, Attr::new(5, 48)).unwrap();
    q.send(b"a", 0).unwrap();
    q.send(b"b", 0).unwrap();
    assert_eq!(
        q.attr().unwrap(),
        Attr {
            max_messages: 5,
            message_size: 48,
            current_messages: 2,
            nonblocking: false
        }
    );
    let nb = MessageQueue::options()
        .nonblocking(true)
        .open(&name)
        .unwrap();
    assert!(nb.attr().unwrap().nonblocking);
    nb.set_nonblocking(false).unwrap();
    assert!(!nb.attr().unwrap().nonblocking);
    q.set_nonblocking(true).unwrap();
    assert!(q.attr().unwrap().nonblocking);
    assert!(
        !nb.attr().unwrap().nonblocking,
        "the flag is per descriptor"
    );
}

#[test]
fn higher_priority_comes_first_and_fifo_within_a_priority() {
    let (name, _cleanup) = fresh("mq-prio");
    let q = MessageQueue::create_exclusive(&name, Attr::new(8, 16)).unwrap();
    let sent: [(&[u8], u32); 6] = [
        (b"low-1", 1),
        (b"high-1", 7),
        (b"low-2", 1),
        (b"zero", 0),
        (b"high-2", 7),
        (b"top", MQ_PRIO_MAX - 1),
    ];
    for (data, priority) in sent {
        q.send(data, priority).unwrap();
    }
    let order: Vec<(Vec<u8>, u32)> = (0..sent.len()).map(|_| take(&q)).collect();
    let expected: Vec<(Vec<u8>, u32)> = [
        (&b"top"[..], MQ_PRIO_MAX - 1),
        (b"high-1", 7),
        (b"high-2", 7),
        (b"low-1", 1),
        (b"low-2", 1),
        (b"zero", 0),
    ]
    .iter()
    .map(|&(d, p)| (d.to_vec(), p))
    .collect();
    assert_eq!(order, expected);
}

#[test]
fn nonblocking_queue_reports_empty_and_full_as_would_block() {
    let (name, _cleanup) = fresh("mq-nonblock");
    let q = MessageQueue::options()
        .max_messages(2)
        .message_size(8)
        .exclusive(true)
        .nonblocking(true)
        .open(&name)
        .unwrap();
    let mut buf = [0u8; 8];
    let err = q.recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    q.send(b"1", 0).unwrap();
    q.send(b"2", 0).unwrap();
    let err = q.send(b"3", 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    assert_eq!(q.attr().unwrap().current_messages, 2);
}

#[test]
fn try_send_and_try_recv_do_not_block_and_leave_the_descriptor_blocking() {
    let (name, _cleanup) = fresh("mq-try");
    let q = MessageQueue::create_exclusive(&name, Attr::new(1, 8)).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(q.try_recv(&mut buf).unwrap(), None);
    assert!(q.try_send(b"only", 3).unwrap());
    assert!(!q.try_send(b"more", 3).unwrap(), "the queue is full");
    assert!(!q.attr().unwrap().nonblocking);
    assert_eq!(q.try_recv(&mut buf).unwrap(), Some((4, 3)));
    assert_eq!(&buf[..4], b"only");
    assert_eq!(q.try_recv(&mut buf).unwrap(), None);
}

/// The child side of the multi-process tests: `action:name`.
fn play(role: &str) {
    let (action, name) = role.split_once(':').expect("role is action:name");
    match action {
        "send-later" => {
            let q = MessageQueue::options().write_only().open(name).unwrap();
            q.send(b"from the child", 9).unwrap();
        }
        "receive-three" => {
            let q = MessageQueue::options().read_only().open(name).unwrap();
            let got: Vec<_> = (0..3).map(|_| take(&q)).collect();
            assert_eq!(
                got,
                vec![
                    (b"urgent".to_vec(), 5),
                    (b"first".to_vec(), 1),
                    (b"second".to_vec(), 1)
                ]
            );
            q.send(b"done", 0)
                .expect_err("a read-only descriptor cannot send");
        }
        "create-beyond-msg-max" => create_beyond_msg_max(name),
        "open-as-nobody" => open_as_nobody(name),
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn timed_variants_time_out_then_succeed() {
    const TEST: &str = "timed_variants_time_out_then_succeed";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let (name, _cleanup) = fresh("mq-timed");
    let q = MessageQueue::create_exclusive(&name, Attr::new(1, 32)).unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(
        q.recv_timeout(&mut buf, Duration::from_millis(30)).unwrap(),
        None
    );
    let child = start(spawn_self(TEST, &format!("send-later:{name}")));
    let got = q.recv_timeout(&mut buf, Duration::from_secs(60)).unwrap();
    assert_eq!(got, Some((14, 9)));
    assert_eq!(&buf[..14], b"from the child");
    assert!(child.wait().success());

    assert!(q
        .send_timeout(b"fills", 0, Duration::from_millis(10))
        .unwrap());
    assert!(!q
        .send_timeout(b"no room", 0, Duration::from_millis(30))
        .unwrap());
    assert_eq!(q.attr().unwrap().current_messages, 1);
}

#[test]
fn a_second_process_receives_in_priority_order() {
    const TEST: &str = "a_second_process_receives_in_priority_order";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let (name, _cleanup) = fresh("mq-child");
    let q = MessageQueue::options()
        .max_messages(4)
        .message_size(64)
        .exclusive(true)
        .write_only()
        .open(&name)
        .unwrap();
    q.send(b"first", 1).unwrap();
    q.send(b"second", 1).unwrap();
    q.send(b"urgent", 5).unwrap();
    let status = start(spawn_self(TEST, &format!("receive-three:{name}"))).wait();
    assert!(status.success(), "child's verdict: {status}");
    assert_eq!(q.attr().unwrap().current_messages, 0);
}

#[test]
fn oversize_message_is_too_large_before_the_call() {
    let (name, _cleanup) = fresh("mq-oversize");
    let q = MessageQueue::create_exclusive(&name, Attr::new(2, 8)).unwrap();
    q.send(&[7; 8], 0).unwrap();
    for err in [
        q.send(&[7; 9], 0).unwrap_err(),
        q.try_send(&[7; 9], 0).unwrap_err(),
        q.send_timeout(&[7; 9], 0, Duration::from_secs(1))
            .unwrap_err(),
    ] {
        match &err {
            Error::TooLarge {
                len,
                limit,
                limit_name,
                ..
            } => assert_eq!((*len, *limit, *limit_name), (9, 8, "message size")),
            other => panic!("expected TooLarge, got {other}"),
        }
        assert!(err.to_string().contains("message size"), "{err}");
    }
    assert_eq!(q.attr().unwrap().current_messages, 1);
}

#[test]
fn priority_from_mq_prio_max_on_is_invalid() {
    let (name, _cleanup) = fresh("mq-badprio");
    let q = MessageQueue::create_exclusive(&name, Attr::new(2, 8)).unwrap();
    let err = q.send(b"x", MQ_PRIO_MAX).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(err.to_string().contains("MQ_PRIO_MAX"), "{err}");
    assert!(q.try_send(b"x", u32::MAX).is_err());
    assert_eq!(q.attr().unwrap().current_messages, 0);
    q.send(b"x", MQ_PRIO_MAX - 1).unwrap();
}

#[test]
fn short_receive_buffer_is_refused_before_the_call() {
    let (name, _cleanup) = fresh("mq-shortbuf");
    let q = MessageQueue::create_exclusive(&name, Attr::new(2, 16)).unwrap();
    q.send(b"tiny", 0).unwrap();
    let mut buf = [0u8; 15];
    for err in [
        q.recv(&mut buf).unwrap_err(),
        q.try_recv(&mut buf).unwrap_err(),
        q.recv_timeout(&mut buf, Duration::from_secs(1))
            .unwrap_err(),
    ] {
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        assert!(err.to_string().contains("message size (16 bytes)"), "{err}");
    }
    assert_eq!(q.attr().unwrap().current_messages, 1, "nothing was taken");
    let mut vec = vec![1, 2, 3];
    assert_eq!(q.recv_vec(&mut vec).unwrap(), 0);
    assert_eq!(vec, b"tiny");
}

#[test]
fn read_only_and_write_only_descriptors_refuse_the_other_direction() {
    let (name, _cleanup) = fresh("mq-access");
    let _q = MessageQueue::create_exclusive(&name, Attr::new(2, 8)).unwrap();
    let reader = MessageQueue::options().read_only().open(&name).unwrap();
    let writer = MessageQueue::options().write_only().open(&name).unwrap();
    let err = reader.send(b"x", 0).unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    let err = writer.recv(&mut [0u8; 8]).unwrap_err();
    assert!(err.to_string().contains("write-only"), "{err}");
    writer.send(b"ok", 0).unwrap();
    assert_eq!(take(&reader), (b"ok".to_vec(), 0));
}

#[test]
fn bad_names_modes_and_attributes_are_rejected_before_mq_open() {
    let name = unique_name("mq-bad");
    for bad in ["no-slash", "/a/b", "/", "/.", "//x"] {
        let err = MessageQueue::create(bad, Attr::new(1, 1)).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{bad}: {err}");
    }
    let zero = MessageQueue::create(&name, Attr::new(0, 8)).unwrap_err();
    assert!(zero.to_string().contains("max_messages"), "{zero}");
    let zero = MessageQueue::create(&name, Attr::new(8, 0)).unwrap_err();
    assert!(zero.to_string().contains("message_size"), "{zero}");
    let mode = MessageQueue::options()
        .mode(0o1600)
        .create(true)
        .open(&name)
        .unwrap_err();
    assert!(matches!(mode, Error::InvalidArgument { .. }), "{mode}");
    assert!(!exists(&name), "nothing was created");
}

#[test]
fn missing_attribute_takes_the_system_default() {
    let (name, _cleanup) = fresh("mq-default");
    let q = MessageQueue::options()
        .max_messages(1)
        .exclusive(true)
        .open(&name)
        .unwrap();
    let l = limits().unwrap();
    assert_eq!((q.max_messages(), q.message_size()), (1, l.msgsize_default));
}

/// Child of `creation_beyond_msg_max_names_the_limit`: without CAP_SYS_RESOURCE (root becomes
/// nobody), creating a queue with msg_max + 1 messages must fail with an error naming msg_max.
fn create_beyond_msg_max(name: &str) {
    if is_root() {
        become_nobody();
    }
    let max = limits().unwrap().msg_max;
    match MessageQueue::create_exclusive(name, Attr::new(max + 1, 8)) {
        Ok(q) => {
            q.into_owned().unlink().unwrap();
            panic!("a queue of msg_max + 1 ({}) messages was created", max + 1);
        }
        Err(err) => {
            let text = err.to_string();
            assert!(text.contains(&format!("msg_max ({max}")), "{text}");
            assert!(text.contains("/proc/sys/fs/mqueue/msg_max"), "{text}");
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{text}");
        }
    }
}

#[test]
fn creation_beyond_msg_max_names_the_limit() {
    const TEST: &str = "creation_beyond_msg_max_names_the_limit";
    if let Some(role) = child_role() {
        return play(&role);
    }
    let (name, _cleanup) = fresh("mq-limit");
    let status = start(spawn_self(TEST, &format!("create-beyond-msg-max:{name}"))).wait();
    assert!(status.success(), "child's verdict: {status}");
    assert!(!exists(&name));
}

#[test]
fn beyond_the_hard_limit_even_root_is_told_which_limit() {
    let (name, _cleanup) = fresh("mq-hard");
    let err = MessageQueue::create_exclusive(&name, Attr::new(65537, 8)).unwrap_err();
    assert!(err.to_string().contains("hard limit (65536)"), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn unlink_and_owned_queue_remove_the_name() {
    let (name, _cleanup) = fresh("mq-unlink");
    let q = MessageQueue::create_exclusive(&name, Attr::new(2, 8)).unwrap();
    MessageQueue::unlink(&name).unwrap();
    assert!(!exists(&name));
    q.send(b"still", 0).unwrap();
    assert_eq!(
        take(&q).0,
        b"still",
        "an unlinked queue works for its holders"
    );
    q.close().unwrap();

    let owned = MessageQueue::create_exclusive(&name, Attr::new(2, 8))
        .unwrap()
        .into_owned();
    drop(owned);
    assert!(!exists(&name));

    let kept = MessageQueue::create_exclusive(&name, Attr::new(2, 8))
        .unwrap()
        .into_owned()
        .into_inner();
    kept.send(b"kept", 0).unwrap();
    drop(kept);
    let owned = MessageQueue::open(&name).unwrap().into_owned();
    assert_eq!(take(&owned).0, b"kept");
    owned.unlink().unwrap();
    assert!(!exists(&name));
}

#[test]
fn queue_descriptor_polls_readable_when_a_message_waits() {
    use std::os::fd::AsFd;
    let (name, _cleanup) = fresh("mq-poll");
    let q = MessageQueue::create_exclusive(&name, Attr::new(2, 8)).unwrap();
    let readable = |q: &MessageQueue| {
        let fd = q.as_fd();
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        rustix::event::poll(&mut fds, Some(&rustix::time::Timespec::default())).unwrap() == 1
    };
    assert!(!readable(&q));
    q.send(b"x", 0).unwrap();
    assert!(readable(&q));
}

#[test]
fn queues_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<MessageQueue>();
}

#[test]
fn recv_timeout_without_a_representable_deadline_waits_until_sent() {
    let (name, _cleanup) = fresh("mq-forever");
    let q = MessageQueue::create_exclusive(&name, Attr::new(2, 8)).unwrap();
    let sender = MessageQueue::open(&name).unwrap();
    let receiver = Task::current();
    let helper = std::thread::spawn(move || {
        wait_until("the receiver to block", || {
            receiver.in_syscall(&[libc::SYS_mq_timedreceive])
        });
        sender.send(b"at last", 1).unwrap();
    });
    let mut buf = [0u8; 8];
    let got = q.recv_timeout(&mut buf, Duration::MAX).unwrap();
    assert_eq!(got, Some((7, 1)));
    helper.join().unwrap();
}

#[test]
fn receive_interrupted_by_a_signal_is_retried() {
    let (name, _cleanup) = fresh("mq-eintr");
    let q = MessageQueue::create_exclusive(&name, Attr::new(2, 8)).unwrap();
    let sender = MessageQueue::open(&name).unwrap();
    // glibc's mq_receive is the mq_timedreceive system call without a timeout.
    let got = interrupted_in(
        libc::SYS_mq_timedreceive,
        || take(&q),
        move || sender.send(b"late", 2).unwrap(),
    );
    assert_eq!(got, (b"late".to_vec(), 2));
}

// ---- C interoperability ----

const C_CREATES_AND_SENDS: &str = r#"
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 2) return 10;
    struct mq_attr attr = {0};
    attr.mq_maxmsg = 4;
    attr.mq_msgsize = 100;
    mqd_t q = mq_open(argv[1], O_WRONLY | O_CREAT | O_EXCL, 0600, &attr);
    if (q == (mqd_t)-1) { perror("mq_open"); return 11; }
    const char *texts[3] = {"background", "alert", "routine"};
    unsigned prios[3] = {1, 9, 1};
    for (int i = 0; i < 3; i++)
        if (mq_send(q, texts[i], strlen(texts[i]), prios[i]) != 0) { perror("mq_send"); return 12; }
    return mq_close(q) == 0 ? 0 : 13;
}
"#;

#[test]
fn ipckit_receives_what_a_c_program_sent() {
    let (name, _cleanup) = fresh("mq-c-sends");
    let exe = CProgram::compile("mq_c_sends", C_CREATES_AND_SENDS);
    let status = Command::new(&exe).arg(&name).status().unwrap();
    assert!(status.success(), "C program failed: {status}");
    let q = MessageQueue::open(&name).unwrap().into_owned();
    assert_eq!((q.max_messages(), q.message_size()), (4, 100));
    let got: Vec<_> = (0..3).map(|_| take(&q)).collect();
    assert_eq!(
        got,
        vec![
            (b"alert".to_vec(), 9),
            (b"background".to_vec(), 1),
            (b"routine".to_vec(), 1)
        ]
    );
    q.unlink().unwrap();
    assert!(!exists(&name));
}

const C_RECEIVES: &str = r#"
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 2) return 10;
    mqd_t q = mq_open(argv[1], O_RDONLY);
    if (q == (mqd_t)-1) { perror("mq_open"); return 11; }
    struct mq_attr attr;
    if (mq_getattr(q, &attr) != 0 || attr.mq_maxmsg != 3 || attr.mq_msgsize != 50) return 12;
    char buf[50];
    unsigned prio;
    struct timespec at;
    clock_gettime(CLOCK_REALTIME, &at);
    at.tv_sec += 60;
    ssize_t n = mq_timedreceive(q, buf, sizeof buf, &prio, &at);
    if (n != 5 || prio != 4 || memcmp(buf, "hello", 5) != 0) return 13;
    n = mq_timedreceive(q, buf, sizeof buf, &prio, &at);
    if (n != 0 || prio != 0) return 14; /* an empty message */
    return mq_close(q) == 0 ? 0 : 15;
}
"#;

#[test]
fn c_program_receives_what_ipckit_sent() {
    let (name, _cleanup) = fresh("mq-c-receives");
    let exe = CProgram::compile("mq_c_receives", C_RECEIVES);
    let q = MessageQueue::create_exclusive(&name, Attr::new(3, 50))
        .unwrap()
        .into_owned();
    q.send(b"", 0).unwrap();
    q.send(b"hello", 4).unwrap();
    let mut cmd = Command::new(&exe);
    cmd.arg(&name);
    let status = start(cmd).wait();
    assert!(status.success(), "C program's verdict: {status}");
    assert_eq!(q.attr().unwrap().current_messages, 0);
}
