//! Transports and their peers' lives: a sender that closed and exited is never reported as dead;
//! a sender killed mid-stream is reported within a bound; a peer that never comes is given up
//! after the connect timeout; a raw descriptor number is never adopted by safe code.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use ipckit::transport::{Options, TransportKind};
use ipckit_testkit::task::process_in_syscall;
use ipckit_testkit::{child_role, spawn_self, unique_name, wait_until, Kid};

fn options() -> Options {
    let mut o = Options::new();
    o.max_message(64).timeout(Duration::from_secs(20));
    o
}

/// Where named files go (as the transport module decides: XDG_RUNTIME_DIR or the temp dir).
fn ipckit_dir() -> std::path::PathBuf {
    match std::env::var("XDG_RUNTIME_DIR") {
        Ok(d) if std::path::Path::new(&d).is_dir() => d.into(),
        _ => std::env::temp_dir(),
    }
}

fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"))
}

/// A header word of the mmap+futex file, as the page cache holds it.
fn mmap_word(path: &std::path::Path, offset: usize) -> u32 {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes
        .get(offset..offset + 4)
        .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()))
}

fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next())
        .unwrap_or('?')
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a child of this test, which is not reaped yet.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
}

/// Finding 2 of issue #11: the receiver sleeps on the futex; the sender publishes its end marker
/// and exits while the receiver is stopped; continued, the receiver must see the end marker, not
/// a dead sender. (It used to judge the sender's pid before looking at the slot again.)
#[test]
fn a_sender_that_closed_and_exited_is_not_reported_dead() {
    const STATE: usize = 40;
    const SLEEPERS: usize = 44;
    const FULL: u32 = 2;
    match child_role().as_deref() {
        Some("receiver") => {
            let mut rx = TransportKind::MmapFutex
                .named_receiver(&var("T_NAME"), &options())
                .unwrap();
            let mut buf = Vec::new();
            match rx.recv_into(&mut buf) {
                Ok(None) => println!("END"),
                Ok(Some(_)) => println!("DATA"),
                Err(e) => println!("ERROR {e}"),
            }
            return;
        }
        Some("sender") => {
            let path = std::path::PathBuf::from(var("T_PATH"));
            let tx = TransportKind::MmapFutex
                .named_sender(&var("T_NAME"), &options())
                .unwrap();
            // close() waits for the receiver to take the marker, which it cannot while stopped:
            // exit as soon as the marker is published.
            std::thread::spawn(move || tx.close());
            wait_until("the end marker published", || {
                mmap_word(&path, STATE) == FULL
            });
            std::process::exit(0);
        }
        _ => {}
    }
    let name = unique_name("closed")[1..].to_string();
    let path = ipckit_dir().join(format!("ipckit-{name}.mmap"));
    let test = "a_sender_that_closed_and_exited_is_not_reported_dead";
    let mut cmd = spawn_self(test, "receiver");
    cmd.env("T_NAME", &name).stdout(Stdio::piped());
    let mut receiver = Kid(cmd.spawn().unwrap());
    let rpid = receiver.0.id();
    let out = receiver.0.stdout.take().unwrap();
    wait_until("the receiver asleep on the futex", || {
        mmap_word(&path, SLEEPERS) == 1 && process_in_syscall(rpid, &[libc::SYS_futex])
    });
    signal(rpid, libc::SIGSTOP);
    wait_until("the receiver stopped", || process_state(rpid) == 'T');
    let mut cmd = spawn_self(test, "sender");
    cmd.env("T_NAME", &name)
        .env("T_PATH", &path)
        .stdout(Stdio::null());
    let sender = Kid(cmd.spawn().unwrap());
    assert!(sender.wait().success());
    signal(rpid, libc::SIGCONT);
    let mut said = String::new();
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        // Read to the end: the child still prints libtest's summary.
        if said.is_empty() && (line == "END" || line == "DATA" || line.starts_with("ERROR")) {
            said = line;
        }
    }
    assert_eq!(said, "END", "a clean close read as {said:?}");
    assert!(receiver.wait().success());
}

/// Issue #10, item 3: the safe connect refuses to adopt a descriptor by number, even one that is
/// an open pipe; the descriptor stays open and owned by its owner.
#[test]
fn safe_code_never_adopts_a_descriptor_by_number() {
    use std::os::fd::AsRawFd;
    let (r, w) = ipckit::pipe::pipe().unwrap();
    let w = std::os::fd::OwnedFd::from(w);
    let at = format!("fd={}", w.as_raw_fd());
    let err = TransportKind::Pipe
        .connect_sender(&at, &options())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("unsafe"), "{err}");
    let err = TransportKind::Pipe
        .connect_receiver(&at, &options())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    // Still ours: an end made from the OwnedFd itself works.
    let mut tx = ipckit::transport::Sender::from_pipe(w, &options()).unwrap();
    let mut rx =
        ipckit::transport::Receiver::from_pipe(std::os::fd::OwnedFd::from(r), &options()).unwrap();
    // close() returns once the receiver read everything: receive in another thread.
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        assert_eq!(rx.recv_into(&mut buf).unwrap(), Some(5));
        assert_eq!(rx.recv_into(&mut buf).unwrap(), None);
    });
    tx.send(b"owned").unwrap();
    tx.close().unwrap();
    reader.join().unwrap();
}

/// Every kind that meets by NAME.
const NAMED: [TransportKind; 10] = [
    TransportKind::Fifo,
    TransportKind::UnixStream,
    TransportKind::UnixSeqpacket,
    TransportKind::UnixDgram,
    TransportKind::Tcp,
    TransportKind::SysvMsg,
    TransportKind::PosixMq,
    TransportKind::SysvShmSem,
    TransportKind::MmapFutex,
    TransportKind::Channel,
];

/// Finding 3 of issue #11: a sender SIGKILLed mid-stream is reported by every transport, soon
/// (the design target is 1 s; 5 s is asserted so that a loaded machine does not fail the test),
/// after the messages it sent.
#[test]
fn a_sender_killed_mid_stream_is_reported_by_every_transport() {
    if child_role().as_deref() == Some("killed") {
        let kind: TransportKind = var("T_KIND").parse().unwrap();
        let mut tx = kind.named_sender(&var("T_NAME"), &options()).unwrap();
        tx.send(b"one").unwrap();
        tx.send(b"two").unwrap();
        println!("SENT");
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    for kind in NAMED {
        let name = unique_name("killed")[1..].to_string();
        let mut cmd = spawn_self(
            "a_sender_killed_mid_stream_is_reported_by_every_transport",
            "killed",
        );
        cmd.env("T_KIND", kind.name()).env("T_NAME", &name);
        let mut sender = ipckit_testkit::Conversation::start(cmd);
        let mut rx = kind.named_receiver(&name, &options()).unwrap();
        let mut buf = Vec::new();
        assert_eq!(rx.recv_into(&mut buf).unwrap(), Some(3), "{kind}");
        assert_eq!(buf, b"one", "{kind}");
        // One-slot kinds: "two" is in the slot once "one" was taken.
        sender.wait_for("SENT");
        signal(sender.pid(), libc::SIGKILL);
        let start = std::time::Instant::now();
        assert_eq!(
            rx.recv_into(&mut buf).unwrap(),
            Some(3),
            "{kind}: sent before the kill"
        );
        assert_eq!(buf, b"two", "{kind}");
        let err = rx.recv_into(&mut buf).unwrap_err();
        let took = start.elapsed();
        assert!(
            matches!(err, ipckit::Error::PeerDied { .. })
                || err.kind() == std::io::ErrorKind::UnexpectedEof,
            "{kind}: {err}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{kind}: reported after {took:?}"
        );
        eprintln!("{kind}: a killed sender reported after {took:?}: {err}");
        drop(sender);
    }
}

/// Finding 3 of issue #11, the other way round: a POSIX queue does not tell a sender who reads
/// it, and a sender whose receiver was SIGKILLed waited out the whole connect timeout (60 s in
/// the command). The receiver now holds a lock the kernel drops when it dies; the sender reports
/// `PeerDied`, with the receiver's pid, within a slice of finding the queue full.
#[test]
fn a_posix_mq_sender_reports_its_killed_receiver() {
    if child_role().as_deref() == Some("receiver") {
        let kind = TransportKind::PosixMq;
        let mut rx = kind.named_receiver(&var("T_NAME"), &options()).unwrap();
        let mut buf = Vec::new();
        assert_eq!(rx.recv_into(&mut buf).unwrap(), Some(3));
        println!("GOT");
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    let name = unique_name("mq-rx-killed")[1..].to_string();
    // The receiver creates `/ipckit-NAME` and cannot unlink it once killed: this test does.
    let _unlink = ipckit_testkit::Defer(|| {
        let _ = ipckit::posix::mq::MessageQueue::unlink(format!("/ipckit-{name}"));
    });
    let mut cmd = spawn_self("a_posix_mq_sender_reports_its_killed_receiver", "receiver");
    cmd.env("T_NAME", &name);
    let mut receiver = ipckit_testkit::Conversation::start(cmd);
    // A named sender waits (up to the connect timeout) for the receiver's queue.
    let mut tx = TransportKind::PosixMq
        .named_sender(&name, &options())
        .unwrap();
    tx.send(b"one").unwrap();
    receiver.wait_for("GOT");
    let pid = receiver.pid();
    signal(pid, libc::SIGKILL);
    let start = std::time::Instant::now();
    // The queue holds at most DEPTH (10) messages: the sender soon finds it full.
    let err = (0..1000)
        .find_map(|_| tx.send(b"more").err())
        .expect("a sender never learned that its receiver died");
    let took = start.elapsed();
    assert!(
        matches!(err, ipckit::Error::PeerDied { pid: p, .. } if p == pid),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "reported after {took:?}");
    drop(receiver);
}

/// One vocabulary for receiving: the transport's receiver and the channel's consumer have the
/// same `recv` (a new `Vec`) and `recv_into` (a reused buffer) with the same `None` at the end of
/// the stream.
#[test]
fn a_receiver_receives_as_a_channel_consumer_does() {
    use ipckit::channel::Consumer;
    use ipckit::transport::Receiver;
    type Recv<T> = fn(&mut T) -> ipckit::Result<Option<Vec<u8>>>;
    type RecvInto<T> = fn(&mut T, &mut Vec<u8>) -> ipckit::Result<Option<usize>>;
    let _: (Recv<Consumer>, Recv<Receiver>) = (Consumer::recv, Receiver::recv);
    let _: (RecvInto<Consumer>, RecvInto<Receiver>) = (Consumer::recv_into, Receiver::recv_into);

    let (r, w) = ipckit::pipe::pipe().unwrap();
    let mut tx = ipckit::transport::Sender::from_pipe(w.into(), &options()).unwrap();
    let mut rx = Receiver::from_pipe(r.into(), &options()).unwrap();
    let reader = std::thread::spawn(move || {
        assert_eq!(rx.recv().unwrap().as_deref(), Some(&b"first"[..]));
        let mut buf = Vec::new();
        assert_eq!(rx.recv_into(&mut buf).unwrap(), Some(6));
        assert_eq!(buf, b"second");
        assert_eq!(rx.recv().unwrap(), None, "end of stream");
        assert_eq!(rx.recv_into(&mut buf).unwrap(), None, "and again");
    });
    tx.send(b"first").unwrap();
    tx.send(b"second").unwrap();
    tx.close().unwrap();
    reader.join().unwrap();
}
