//! System V message queues: FIFO order, type selection, receive options, size limits, status,
//! other processes and interoperability with C.

use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use ipckit::sysv::msg::{Message, MsgQueue, OwnedMsgQueue, RecvOptions};
use ipckit::{Error, Key};
use ipckit_testkit::interrupt::set_handler;
use ipckit_testkit::task::{process_in_syscall, Task};
use ipckit_testkit::{
    child_role, run_for_stdout, spawn_self, start, unique_key, wait_until, CProgram, Defer,
};

/// A new private queue, removed when the handle drops (also on panic).
fn private_queue() -> OwnedMsgQueue {
    MsgQueue::create_exclusive(Key::PRIVATE)
        .expect("create message queue")
        .into_owned()
}

fn msg(mtype: i64, data: &[u8]) -> Message {
    Message {
        mtype,
        data: data.to_vec(),
    }
}

/// Receives without blocking; `None` when nothing matches.
fn take(q: &MsgQueue, selector: i64) -> Option<Message> {
    q.recv_with(selector, RecvOptions::new().nowait()).unwrap()
}

/// The kernel's msgmax, read independently of the library.
fn msgmax() -> usize {
    std::fs::read_to_string("/proc/sys/kernel/msgmax")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn create_exclusive_fails_when_the_key_exists_and_open_finds_the_queue() {
    let key = Key::new(unique_key());
    let q = MsgQueue::create_exclusive(key).unwrap().into_owned();
    assert_eq!(MsgQueue::open(key).unwrap().id(), q.id());
    assert_eq!(MsgQueue::create(key).unwrap().id(), q.id());
    let err = MsgQueue::create_exclusive(key).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    let err = MsgQueue::open(Key::new(unique_key())).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert_eq!(q.stat().unwrap().perm.key, key);
    let err = MsgQueue::open(Key::PRIVATE).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
}

#[test]
fn messages_keep_fifo_order_within_a_type() {
    let q = private_queue();
    for (t, d) in [(1, "a1"), (2, "b1"), (1, "a2"), (2, "b2"), (1, "a3")] {
        q.send(t, d.as_bytes()).unwrap();
    }
    assert_eq!(q.recv(1).unwrap(), msg(1, b"a1"));
    assert_eq!(q.recv(1).unwrap(), msg(1, b"a2"));
    assert_eq!(q.recv(2).unwrap(), msg(2, b"b1"));
    assert_eq!(q.recv(1).unwrap(), msg(1, b"a3"));
    assert_eq!(q.recv(2).unwrap(), msg(2, b"b2"));
    assert_eq!(take(&q, 0), None);
}

#[test]
fn recv_zero_takes_the_first_message_of_any_type() {
    let q = private_queue();
    q.send(3, b"three").unwrap();
    q.send(1, b"one").unwrap();
    assert_eq!(q.recv(0).unwrap(), msg(3, b"three"));
    assert_eq!(q.recv(0).unwrap(), msg(1, b"one"));
}

#[test]
fn recv_positive_type_takes_the_first_message_of_that_type() {
    let q = private_queue();
    q.send(3, b"three").unwrap();
    q.send(2, b"two").unwrap();
    q.send(5, b"five").unwrap();
    assert_eq!(q.recv(5).unwrap(), msg(5, b"five"));
    assert_eq!(take(&q, 4), None, "no message of type 4");
    assert_eq!(q.recv(2).unwrap(), msg(2, b"two"));
}

#[test]
fn recv_negative_type_takes_lowest_type_first() {
    let q = private_queue();
    for t in [5, 3, 4, 2, 3] {
        q.send(t, format!("t{t}").as_bytes()).unwrap();
    }
    let order: Vec<i64> = std::iter::from_fn(|| take(&q, -4))
        .map(|m| m.mtype)
        .collect();
    assert_eq!(order, vec![2, 3, 3, 4]);
    assert_eq!(q.recv(0).unwrap(), msg(5, b"t5"), "type 5 is above |-4|");
}

#[test]
fn recv_except_takes_the_first_message_of_another_type() {
    let q = private_queue();
    q.send(1, b"first").unwrap();
    q.send(1, b"second").unwrap();
    q.send(7, b"seven").unwrap();
    q.send(2, b"two").unwrap();
    let except_1 = RecvOptions::new().except().nowait();
    assert_eq!(q.recv_with(1, except_1).unwrap(), Some(msg(7, b"seven")));
    assert_eq!(q.recv_with(1, except_1).unwrap(), Some(msg(2, b"two")));
    assert_eq!(q.recv_with(1, except_1).unwrap(), None);
    assert_eq!(q.stat().unwrap().messages, 2, "type 1 untouched");
    for bad in [0, -3] {
        let err = q.recv_with(bad, except_1).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    }
}

#[test]
fn nowait_on_an_empty_queue_returns_none() {
    let q = private_queue();
    assert_eq!(q.recv_with(0, RecvOptions::new().nowait()).unwrap(), None);
    assert_eq!(q.recv_with(-9, RecvOptions::new().nowait()).unwrap(), None);
}

#[test]
fn truncate_cuts_a_message_longer_than_max_len() {
    let q = private_queue();
    q.send(4, b"0123456789").unwrap();
    let opts = RecvOptions::new().max_len(4).truncate();
    assert_eq!(q.recv_with(0, opts).unwrap(), Some(msg(4, b"0123")));
    assert_eq!(q.stat().unwrap().messages, 0, "the rest is gone");
}

#[test]
fn message_longer_than_max_len_without_truncate_is_an_error_and_stays_queued() {
    let q = private_queue();
    q.send(4, b"0123456789").unwrap();
    let err = q
        .recv_with(0, RecvOptions::new().max_len(9).nowait())
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("larger than the buffer of 9 bytes"), "{text}");
    assert_eq!(err.op(), "msgrcv");
    assert_eq!(
        err.kind(),
        std::io::Error::from_raw_os_error(libc::E2BIG).kind()
    );
    assert_eq!(q.stat().unwrap().messages, 1);
    let whole = RecvOptions::new().max_len(10);
    assert_eq!(q.recv_with(0, whole).unwrap(), Some(msg(4, b"0123456789")));
}

#[test]
fn empty_messages_are_sent_and_received() {
    let q = private_queue();
    q.send(9, b"").unwrap();
    assert_eq!(
        q.recv_with(9, RecvOptions::new().max_len(0)).unwrap(),
        Some(msg(9, b""))
    );
}

#[test]
fn oversized_send_is_too_large_naming_msgmax() {
    let q = private_queue();
    let max = msgmax();
    let err = q.send(1, &vec![7u8; max + 1]).unwrap_err();
    match &err {
        Error::TooLarge {
            limit_name,
            limit,
            len,
            ..
        } => assert_eq!((*limit_name, *limit, *len), ("msgmax", max, max + 1)),
        other => panic!("expected TooLarge, got {other}"),
    }
    assert!(err.to_string().contains("exceeds msgmax"), "{err}");
    assert!(q.try_send(1, &vec![7u8; max + 1]).is_err());
    // Exactly msgmax fits (the default queue holds msgmnb >= msgmax bytes) and comes back whole.
    let full: Vec<u8> = (0..max).map(|i| (i % 251) as u8).collect();
    q.send(2, &full).unwrap();
    assert_eq!(
        q.recv(2).unwrap(),
        Message {
            mtype: 2,
            data: full
        }
    );
}

#[test]
fn non_positive_message_types_are_rejected() {
    let q = private_queue();
    for t in [0, -1, i64::MIN] {
        let err = q.send(t, b"x").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        assert!(matches!(
            q.try_send(t, b"x"),
            Err(Error::InvalidArgument { .. })
        ));
    }
    assert_eq!(q.stat().unwrap().messages, 0);
}

#[test]
fn set_qbytes_changes_qbytes_and_bounds_what_fits() {
    let q = private_queue();
    q.set_qbytes(100).unwrap();
    assert_eq!(q.stat().unwrap().qbytes, 100);
    let err = q.send(1, &[0u8; 101]).unwrap_err();
    match &err {
        Error::TooLarge {
            limit_name, limit, ..
        } => assert_eq!((*limit_name, *limit), ("queue qbytes", 100)),
        other => panic!("expected TooLarge, got {other}"),
    }
    assert!(q.try_send(1, &[1u8; 100]).unwrap());
    assert!(!q.try_send(1, b"x").unwrap(), "the queue is full");
    assert_eq!(q.stat().unwrap().messages, 1);
    assert!(matches!(
        q.set_qbytes(0),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn stat_counts_messages_bytes_and_last_sender_and_receiver() {
    const TEST: &str = "stat_counts_messages_bytes_and_last_sender_and_receiver";
    if let Some(role) = child_role() {
        let q = MsgQueue::from_id(role.parse().unwrap());
        q.send(1, b"abc").unwrap();
        q.send(2, b"defgh").unwrap();
        return;
    }
    let q = private_queue();
    let st = q.stat().unwrap();
    assert_eq!(
        (st.messages, st.used_bytes, st.lspid, st.lrpid),
        (0, 0, 0, 0)
    );
    assert_eq!((st.stime, st.rtime), (None, None));
    assert!(st.ctime.is_some());
    let sender = start(spawn_self(TEST, &q.id().to_string()));
    let sender_pid = sender.0.id() as i32;
    assert!(sender.wait().success());
    let st = q.stat().unwrap();
    assert_eq!((st.messages, st.used_bytes), (2, 8));
    assert_eq!((st.lspid, st.lrpid), (sender_pid, 0));
    assert!(st.stime.is_some());
    assert_eq!(q.recv(1).unwrap(), msg(1, b"abc"));
    let st = q.stat().unwrap();
    assert_eq!((st.messages, st.used_bytes), (1, 5));
    assert_eq!(st.lrpid, std::process::id() as i32);
    assert!(st.rtime.is_some());
}

#[test]
fn remove_wakes_a_blocked_receiver_with_eidrm() {
    const TEST: &str = "remove_wakes_a_blocked_receiver_with_eidrm";
    if let Some(role) = child_role() {
        let q = MsgQueue::from_id(role.parse().unwrap());
        let err = q
            .recv(0)
            .expect_err("recv must fail once the queue is removed");
        assert_eq!(err.raw_os_error(), Some(libc::EIDRM), "{err}");
        return;
    }
    let q = private_queue();
    let receiver = start(spawn_self(TEST, &q.id().to_string()));
    let pid = receiver.0.id();
    wait_until("the child to block in msgrcv", || {
        process_in_syscall(pid, &[libc::SYS_msgrcv])
    });
    let id = q.id();
    q.remove().unwrap();
    assert!(receiver.wait().success());
    assert!(MsgQueue::from_id(id).stat().is_err());
}

/// The queue a SIGUSR1 handler sends an empty type-2 message to, so its run is visible.
static SIGNALLED_QUEUE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn note_signal(_signal: libc::c_int) {
    let note: [libc::c_long; 1] = [2];
    // SAFETY: msgsnd is a plain system call (async-signal-safe); `note` is a msgbuf with mtype 2
    // and no text, alive for the call.
    unsafe {
        libc::msgsnd(
            SIGNALLED_QUEUE.load(Ordering::SeqCst),
            note.as_ptr().cast(),
            0,
            libc::IPC_NOWAIT,
        )
    };
}

#[test]
fn recv_interrupted_by_a_signal_is_retried() {
    const TEST: &str = "recv_interrupted_by_a_signal_is_retried";
    if let Some(role) = child_role() {
        let q = MsgQueue::from_id(role.parse().unwrap());
        SIGNALLED_QUEUE.store(q.id(), Ordering::SeqCst);
        // Without SA_RESTART a blocked msgrcv fails with EINTR.
        set_handler(libc::SIGUSR1, note_signal);
        let waiter = Task::current();
        let in_msgrcv = move || waiter.in_syscall(&[libc::SYS_msgrcv]);
        let helper = std::thread::spawn(move || {
            wait_until("the receiver to block", in_msgrcv);
            // `waiter` is the receiving thread, alive until it joins us.
            waiter.signal(libc::SIGUSR1);
            assert_eq!(q.recv(2).unwrap(), msg(2, b""), "the handler ran");
            wait_until("the receiver to block again", in_msgrcv);
            q.send(1, b"after the signal").unwrap();
        });
        assert_eq!(q.recv(1).unwrap(), msg(1, b"after the signal"));
        helper.join().unwrap();
        return;
    }
    let q = private_queue();
    let child = start(spawn_self(TEST, &q.id().to_string()));
    assert!(child.wait().success());
    assert_eq!(q.stat().unwrap().messages, 0);
}

#[test]
fn set_mode_and_set_owner_show_in_stat() {
    let q = MsgQueue::options()
        .mode(0o620)
        .exclusive(true)
        .open(Key::PRIVATE)
        .unwrap()
        .into_owned();
    assert_eq!(q.stat().unwrap().perm.permissions(), 0o620);
    q.set_mode(0o644).unwrap();
    assert_eq!(q.stat().unwrap().perm.permissions(), 0o644);
    assert!(matches!(
        q.set_mode(0o1644),
        Err(Error::InvalidArgument { .. })
    ));
    q.set_owner(54321, 54322).unwrap();
    let st = q.stat().unwrap();
    assert_eq!((st.perm.uid, st.perm.gid), (54321, 54322));
}

#[test]
fn owned_queue_is_removed_on_drop_unless_released() {
    let id = private_queue().id();
    assert!(
        MsgQueue::from_id(id).stat().is_err(),
        "dropped queue still exists"
    );
    let kept = private_queue().into_inner();
    let _cleanup = Defer(|| {
        let _ = kept.remove();
    });
    assert_eq!(kept.stat().unwrap().messages, 0);
}

const C_SENDS: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>

struct letter { long mtype; char mtext[512]; };

static int put(int id, long type, const char *text, size_t len) {
    struct letter m;
    m.mtype = type;
    memcpy(m.mtext, text, len);
    return msgsnd(id, &m, len, 0);
}

int main(int argc, char **argv) {
    if (argc != 2) return 10;
    key_t key = (key_t)strtol(argv[1], NULL, 0);
    int id = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0) { perror("msgget"); return 11; }
    char big[300];
    for (int i = 0; i < 300; i++) big[i] = (char)(i % 256);
    if (put(id, 2, "second", 6) < 0) { perror("msgsnd"); return 12; }
    if (put(id, 1, "first", 5) < 0) { perror("msgsnd"); return 13; }
    if (put(id, 3, big, sizeof big) < 0) { perror("msgsnd"); return 14; }
    printf("%d\n", id);
    return 0;
}
"#;

#[test]
fn ipckit_receives_typed_messages_a_c_program_sent() {
    let key = Key::new(unique_key());
    let exe = CProgram::compile("msg_sender", C_SENDS);
    let _cleanup = Defer(|| {
        if let Ok(q) = MsgQueue::open(key) {
            let _ = q.remove();
        }
    });
    let mut cmd = Command::new(&exe);
    cmd.arg(key.value().to_string());
    let (pid, stdout) = run_for_stdout(cmd);
    let printed: i32 = stdout.trim().parse().unwrap();

    let q = MsgQueue::open(key).unwrap();
    assert_eq!(q.id(), printed);
    let st = q.stat().unwrap();
    assert_eq!((st.messages, st.used_bytes, st.lspid), (3, 311, pid));
    assert_eq!(q.recv(-3).unwrap(), msg(1, b"first"));
    let big: Vec<u8> = (0..300).map(|i| (i % 256) as u8).collect();
    assert_eq!(
        q.recv(3).unwrap(),
        Message {
            mtype: 3,
            data: big
        }
    );
    assert_eq!(q.recv(0).unwrap(), msg(2, b"second"));
    q.remove().unwrap();
}

const C_RECEIVES: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>

struct letter { long mtype; char mtext[64]; };

int main(int argc, char **argv) {
    if (argc != 2) return 10;
    int id = atoi(argv[1]);
    struct letter m;
    m.mtype = 1;
    strcpy(m.mtext, "ready");
    if (msgsnd(id, &m, 5, 0) < 0) { perror("msgsnd"); return 11; }
    /* Blocks until ipckit sends a message of type 7; the type-3 one must be skipped. */
    memset(&m, 0, sizeof m);
    ssize_t n = msgrcv(id, &m, sizeof m.mtext, 7, 0);
    if (n < 0) { perror("msgrcv"); return 12; }
    if (m.mtype != 7) return 13;
    if (n != 17 || memcmp(m.mtext, "hello from ipckit", 17) != 0) return 14;
    /* The lowest type up to 5 is the type-3 message ipckit sent first. */
    n = msgrcv(id, &m, sizeof m.mtext, -5, IPC_NOWAIT);
    if (n != 4 || m.mtype != 3 || memcmp(m.mtext, "skip", 4) != 0) return 15;
    return 0;
}
"#;

#[test]
fn c_program_blocked_in_msgrcv_receives_typed_messages_from_ipckit() {
    let exe = CProgram::compile("msg_receiver", C_RECEIVES);
    let q = private_queue();
    let mut cmd = Command::new(&exe);
    cmd.arg(q.id().to_string());
    let receiver = start(cmd);
    assert_eq!(q.recv(1).unwrap(), msg(1, b"ready"));
    q.send(3, b"skip").unwrap();
    q.send(8, b"not yours").unwrap();
    q.send(7, b"hello from ipckit").unwrap();
    let status = receiver.wait();
    assert!(status.success(), "C program's verdict: {status}");
    assert_eq!(take(&q, 0), Some(msg(8, b"not yours")));
    assert_eq!(take(&q, 0), None);
}
