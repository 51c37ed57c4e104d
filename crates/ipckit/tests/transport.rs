//! Transports: every kind carries checked messages of every size it supports between two real
//! processes, in order, with an explicit end of stream; sizes it cannot carry are refused with the
//! reason; a sender that vanishes without closing is an error where the mechanism can tell; the
//! receiver of a named meeting removes what it created.
//!
//! The `signal` transport needs its signals blocked in every thread of the receiving process,
//! which a test harness (with its own threads) cannot promise; the CLI's bench test runs it
//! between two `ipckit` processes.

use std::process::{Child, Stdio};
use std::time::Duration;

use ipckit::transport::{Options, TransportKind};
use ipckit_testkit::{child_role, spawn_self, unique_name};

/// The sizes tried on every kind: the bench's, and the edges of the framing.
const SIZES: [usize; 7] = [16, 64, 1024, 8 * 1024, 8 * 1024 + 1, 64 * 1024, 1024 * 1024];
/// Messages per size.
const COUNT: u64 = 20;

/// The bytes of every message of `size` bytes (at least 16) before its sequence number is
/// stamped on its first and last 8: every word a function of its index.
fn body(size: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..size.div_ceil(8) as u64)
        .flat_map(|w| w.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes())
        .collect();
    bytes.truncate(size);
    bytes
}

/// Message `seq`: `body` with `seq` in its first and last 8 bytes.
fn message(seq: u64, body: &[u8]) -> Vec<u8> {
    let size = body.len();
    let mut msg = body.to_vec();
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    msg[size - 8..].copy_from_slice(&seq.to_le_bytes());
    msg
}

/// Whether `msg` is message `seq` made from `body`; what differs if not.
fn check(msg: &[u8], body: &[u8], seq: u64) -> Result<(), String> {
    let size = body.len();
    if msg.len() != size {
        return Err(format!("{} bytes where {size} were sent", msg.len()));
    }
    if msg != message(seq, body) {
        return Err(format!("message {seq} of {size} bytes arrived changed"));
    }
    Ok(())
}

fn supported(kind: TransportKind) -> Vec<usize> {
    SIZES
        .iter()
        .copied()
        .filter(|&s| kind.check_size(s).is_ok())
        .collect()
}

fn options(max: usize) -> Options {
    let mut o = Options::new();
    o.max_message(max).timeout(Duration::from_secs(20));
    o
}

/// The peer: receives each size's messages on TO, checks them, echoes them on FROM; at the end
/// of the stream closes FROM.
fn play_peer() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let kind: TransportKind = var("T_KIND").parse().unwrap();
    let sizes: Vec<usize> = var("T_SIZES")
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let max = sizes.iter().copied().max().unwrap_or(16);
    // SAFETY: `round_trip` started this process with the pipe ends named in T_TO and T_FROM
    // inherited for this use; nothing else in the process touches them.
    let mut rx = unsafe { kind.connect_receiver_inherited(&var("T_TO"), &options(max)) }.unwrap();
    // SAFETY: as above.
    let mut tx = unsafe { kind.connect_sender_inherited(&var("T_FROM"), &options(max)) }.unwrap();
    let mut buf = Vec::new();
    for size in sizes {
        let body = body(size);
        for seq in 0..COUNT {
            assert_eq!(
                rx.recv_into(&mut buf).unwrap(),
                Some(size),
                "{kind} size {size}"
            );
            assert_eq!(check(&buf, &body, seq), Ok(()), "{kind} size {size}");
            tx.send(&buf).unwrap();
        }
    }
    assert_eq!(
        rx.recv_into(&mut buf).unwrap(),
        None,
        "{kind}: end of stream"
    );
    assert_eq!(
        rx.recv_into(&mut buf).unwrap(),
        None,
        "{kind}: the end stays the end"
    );
    tx.close().unwrap();
}

/// Hosts both directions, starts the peer, sends COUNT stamped messages of each size and checks
/// the echoes, then closes and waits for the peer's end of stream.
fn round_trip(kind: TransportKind, test: &str) {
    let sizes = supported(kind);
    assert!(!sizes.is_empty(), "{kind} supports none of {SIZES:?}");
    let max = *sizes.iter().max().unwrap();
    let mut to = kind.host_sender(&options(max)).unwrap();
    let mut from = kind.host_receiver(&options(max)).unwrap();
    let mut cmd = spawn_self(test, "peer");
    let list: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
    cmd.env("T_KIND", kind.name())
        .env("T_TO", to.rendezvous())
        .env("T_FROM", from.rendezvous())
        .env("T_SIZES", list.join(","))
        .stdout(Stdio::null());
    to.prepare_child(&mut cmd).unwrap();
    from.prepare_child(&mut cmd).unwrap();
    let child = Reaped(cmd.spawn().unwrap());
    drop(cmd);
    let mut tx = to.establish(Some(Duration::from_secs(20))).unwrap();
    let mut rx = from.establish(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    for &size in &sizes {
        let body = body(size);
        for seq in 0..COUNT {
            tx.send(&message(seq, &body)).unwrap();
            assert_eq!(
                rx.recv_into(&mut buf).unwrap(),
                Some(size),
                "{kind} size {size}"
            );
            assert_eq!(check(&buf, &body, seq), Ok(()), "{kind} echo, size {size}");
        }
    }
    tx.close().unwrap();
    assert_eq!(
        rx.recv_into(&mut buf).unwrap(),
        None,
        "{kind}: the peer's end of stream"
    );
    let status = child.wait();
    assert!(status.success(), "{kind}: peer {status}");
}

/// A child that is killed and reaped if the test fails before waiting for it.
struct Reaped(Child);

impl Reaped {
    fn wait(mut self) -> std::process::ExitStatus {
        let status = self.0.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

macro_rules! carries {
    ($($test:ident: $kind:expr;)*) => {$(
        #[test]
        fn $test() {
            if child_role().as_deref() == Some("peer") {
                return play_peer();
            }
            round_trip($kind, stringify!($test));
        }
    )*};
}

carries! {
    pipe_carries_checked_messages_both_ways: TransportKind::Pipe;
    fifo_carries_checked_messages_both_ways: TransportKind::Fifo;
    unix_stream_carries_checked_messages_both_ways: TransportKind::UnixStream;
    unix_seqpacket_carries_checked_messages_both_ways: TransportKind::UnixSeqpacket;
    unix_dgram_carries_checked_messages_both_ways: TransportKind::UnixDgram;
    tcp_carries_checked_messages_both_ways: TransportKind::Tcp;
    sysv_msg_carries_checked_messages_both_ways: TransportKind::SysvMsg;
    posix_mq_carries_checked_messages_both_ways: TransportKind::PosixMq;
    sysv_shm_sem_carries_checked_messages_both_ways: TransportKind::SysvShmSem;
    mmap_futex_carries_checked_messages_both_ways: TransportKind::MmapFutex;
    channel_carries_checked_messages_both_ways: TransportKind::Channel;
    channel_spin_carries_checked_messages_both_ways: TransportKind::ChannelSpin;
}

#[test]
fn sizes_beyond_a_kind_are_refused_with_the_reason() {
    let msgmax: usize = std::fs::read_to_string("/proc/sys/kernel/msgmax")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let why = TransportKind::SysvMsg.check_size(msgmax + 1).unwrap_err();
    assert!(why.contains("msgmax"), "{why}");
    assert!(TransportKind::SysvMsg.check_size(msgmax).is_ok());

    let msgsize_max = ipckit::posix::mq::limits().unwrap().msgsize_max;
    let why = TransportKind::PosixMq
        .check_size(msgsize_max + 1)
        .unwrap_err();
    assert!(why.contains("msgsize_max"), "{why}");

    let why = TransportKind::Signal.check_size(64).unwrap_err();
    assert!(why.contains("sigqueue carries one int"), "{why}");

    let max = TransportKind::UnixDgram.max_message();
    assert!(max.reason.contains("wmem_max"), "{}", max.reason);
    assert!(TransportKind::UnixDgram.check_size(max.bytes + 1).is_err());

    for kind in [
        TransportKind::Pipe,
        TransportKind::Tcp,
        TransportKind::Channel,
    ] {
        assert!(kind.check_size(1 << 20).is_ok(), "{kind}");
    }
}

#[test]
fn an_oversize_message_is_refused_before_anything_is_sent() {
    let to = TransportKind::SysvShmSem.host_sender(&options(64)).unwrap();
    let rendezvous = to.rendezvous();
    let mut tx = to.establish(None).unwrap();
    let mut rx = TransportKind::SysvShmSem
        .connect_receiver(&rendezvous, &options(64))
        .unwrap();
    let err = tx.send(&[7; 65]).unwrap_err();
    assert!(
        matches!(
            err,
            ipckit::Error::TooLarge {
                len: 65,
                limit: 64,
                ..
            }
        ),
        "{err}"
    );
    tx.send(&[7; 64]).unwrap();
    let mut buf = Vec::new();
    assert_eq!(rx.recv_into(&mut buf).unwrap(), Some(64));
    assert_eq!(buf, vec![7; 64]);
}

#[test]
fn a_stream_that_ends_without_the_marker_is_an_error() {
    if child_role().as_deref() == Some("vanish") {
        let to = std::env::var("T_TO").unwrap();
        let mut tx = TransportKind::UnixStream
            .connect_sender(&to, &options(64))
            .unwrap();
        tx.send(b"half of it").unwrap();
        // Exit without close(): as a sender that died.
        std::process::exit(0);
    }
    let from = TransportKind::UnixStream
        .host_receiver(&options(64))
        .unwrap();
    let mut cmd = spawn_self(
        "a_stream_that_ends_without_the_marker_is_an_error",
        "vanish",
    );
    cmd.env("T_TO", from.rendezvous()).stdout(Stdio::null());
    let child = Reaped(cmd.spawn().unwrap());
    let mut rx = from.establish(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    assert_eq!(rx.recv_into(&mut buf).unwrap(), Some(10));
    assert_eq!(buf, b"half of it");
    let err = rx.recv_into(&mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    assert!(err.to_string().contains("without closing"), "{err}");
    assert!(child.wait().success());
}

#[test]
fn a_dead_sender_on_shared_memory_is_reported_by_pid() {
    if child_role().as_deref() == Some("die") {
        let to = std::env::var("T_TO").unwrap();
        let mut tx = TransportKind::MmapFutex
            .connect_sender(&to, &options(64))
            .unwrap();
        tx.send(b"last words").unwrap();
        std::process::exit(0);
    }
    let from = TransportKind::MmapFutex
        .host_receiver(&options(64))
        .unwrap();
    let mut cmd = spawn_self("a_dead_sender_on_shared_memory_is_reported_by_pid", "die");
    cmd.env("T_TO", from.rendezvous()).stdout(Stdio::null());
    let mut rx = from.establish(None).unwrap();
    let child = Reaped(cmd.spawn().unwrap());
    let pid = child.0.id();
    let mut buf = Vec::new();
    assert_eq!(rx.recv_into(&mut buf).unwrap(), Some(10));
    assert!(child.wait().success());
    let err = rx.recv_into(&mut buf).unwrap_err();
    assert!(
        matches!(err, ipckit::Error::PeerDied { pid: p, .. } if p == pid),
        "{err}"
    );
}

#[test]
fn an_abort_handle_ends_a_blocked_receive() {
    for kind in [
        TransportKind::SysvMsg,
        TransportKind::PosixMq,
        TransportKind::SysvShmSem,
        TransportKind::UnixDgram,
    ] {
        let from = kind.host_receiver(&options(64)).unwrap();
        let rendezvous = from.rendezvous();
        let mut rx = from.establish(None).unwrap();
        // A connected sender that sends nothing: the receive would wait for ever.
        let _tx = kind.connect_sender(&rendezvous, &options(64)).unwrap();
        let abort = rx.abort_handle();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            abort.abort();
        });
        let err = rx.recv_into(&mut Vec::new()).unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionAborted,
            "{kind}: {err}"
        );
        t.join().unwrap();
    }
}

/// A channel receiver takes a message that is already there by a fast path of its own: it
/// delivers in order, and an aborted receiver still fails rather than take what is waiting.
#[test]
fn a_channel_receiver_delivers_what_is_waiting_in_order_until_aborted() {
    for kind in [TransportKind::Channel, TransportKind::ChannelSpin] {
        let from = kind.host_receiver(&options(64)).unwrap();
        let rendezvous = from.rendezvous();
        let mut rx = from.establish(None).unwrap();
        let mut tx = kind.connect_sender(&rendezvous, &options(64)).unwrap();
        for i in 0..20u8 {
            tx.send(&[i; 10]).unwrap();
        }
        let mut buf = Vec::new();
        for i in 0..10u8 {
            assert_eq!(rx.recv_into(&mut buf).unwrap(), Some(10), "{kind}");
            assert_eq!(buf, [i; 10], "{kind}");
        }
        rx.abort_handle().abort();
        let err = rx.recv_into(&mut buf).unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionAborted,
            "{kind}: {err}"
        );
    }
}

#[test]
fn named_meetings_work_in_either_order_and_leave_nothing() {
    if child_role().as_deref() == Some("named-sender") {
        let kind: TransportKind = std::env::var("T_KIND").unwrap().parse().unwrap();
        let name = std::env::var("T_NAME").unwrap();
        let mut tx = kind.named_sender(&name, &options(64)).unwrap();
        for line in ["first", "", "third"] {
            tx.send(line.as_bytes()).unwrap();
        }
        tx.close().unwrap();
        return;
    }
    for kind in [
        TransportKind::Fifo,
        TransportKind::UnixStream,
        TransportKind::UnixDgram,
        TransportKind::Tcp,
        TransportKind::SysvMsg,
        TransportKind::PosixMq,
        TransportKind::SysvShmSem,
        TransportKind::MmapFutex,
        TransportKind::Channel,
    ] {
        let name = unique_name("named")[1..].to_string();
        // The sender starts first and waits for the receiver.
        let mut cmd = spawn_self(
            "named_meetings_work_in_either_order_and_leave_nothing",
            "named-sender",
        );
        cmd.env("T_KIND", kind.name())
            .env("T_NAME", &name)
            .stdout(Stdio::null());
        let child = Reaped(cmd.spawn().unwrap());
        std::thread::sleep(Duration::from_millis(30));
        let mut rx = kind.named_receiver(&name, &options(64)).unwrap();
        let mut got = Vec::new();
        let mut buf = Vec::new();
        while rx.recv_into(&mut buf).unwrap().is_some() {
            got.push(String::from_utf8(buf.clone()).unwrap());
        }
        assert_eq!(got, ["first", "", "third"], "{kind}");
        assert!(child.wait().success(), "{kind}");
        drop(rx);
        let leftovers: Vec<String> = ["/dev/shm", "/dev/mqueue"]
            .iter()
            .chain(&[ipckit_dir().as_str()])
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten())
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(&name))
            .collect();
        assert!(leftovers.is_empty(), "{kind} left {leftovers:?}");
    }
}

/// Where named files go (as the transport module decides: XDG_RUNTIME_DIR or the temp dir).
fn ipckit_dir() -> String {
    match std::env::var("XDG_RUNTIME_DIR") {
        Ok(d) if std::path::Path::new(&d).is_dir() => d,
        _ => std::env::temp_dir().display().to_string(),
    }
}

#[test]
fn names_are_checked_before_anything_is_created() {
    for bad in ["", "../x", "a b", ".hidden"] {
        let err = TransportKind::Fifo
            .named_receiver(bad, &options(64))
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
    }
    let err = TransportKind::Pipe
        .named_receiver("fine", &options(64))
        .unwrap_err();
    assert!(err.to_string().contains("use fifo"), "{err}");
}

/// `Framing::Plain`: the bytes on the wire are the messages and nothing else — a plain stream
/// client's bytes arrive as written and its close ends the stream, a datagram is a message as
/// it is (an empty one ends), a System V message of type 1 (the "abort" of ipckit's framing) is
/// data, and a queue receiver, which has no end of stream, ends when aborted.
#[test]
fn plain_framing_carries_only_the_messages() {
    use ipckit::transport::Framing;
    use std::io::Write;

    let mut options = Options::new();
    options
        .framing(Framing::Plain)
        .timeout(Duration::from_secs(30));

    // A plain Unix stream client.
    let name = unique_name("plain-stream")[1..].to_string();
    let pending = TransportKind::UnixStream
        .named_receiver_pending(&name, &options)
        .unwrap();
    let path = pending.rendezvous();
    let client = std::thread::spawn(move || {
        let mut c = std::os::unix::net::UnixStream::connect(path).unwrap();
        c.write_all(b"\x00\x00\x00\x05hello").unwrap();
    });
    let mut rx = pending.establish(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = rx.recv().unwrap() {
        got.extend(chunk);
    }
    client.join().unwrap();
    assert_eq!(
        got, b"\x00\x00\x00\x05hello",
        "no length prefix is taken off"
    );

    // ipckit to ipckit over datagrams: the messages as they are, an empty datagram ends.
    let name = unique_name("plain-dgram")[1..].to_string();
    let mut rx = TransportKind::UnixDgram
        .named_receiver(&name, &options)
        .unwrap();
    let (n, o) = (name.clone(), options.clone());
    let sender = std::thread::spawn(move || {
        let mut tx = TransportKind::UnixDgram.named_sender(&n, &o).unwrap();
        tx.send(b"one").unwrap();
        tx.send(b"two\n").unwrap();
        tx.close().unwrap();
    });
    assert_eq!(rx.recv().unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(rx.recv().unwrap().as_deref(), Some(&b"two\n"[..]));
    assert_eq!(rx.recv().unwrap(), None);
    sender.join().unwrap();

    // System V: type 1 is data; an abort ends the receiver, which removes its queue.
    let name = unique_name("plain-msg")[1..].to_string();
    let key = ipckit::Key::new(ipckit_testkit::unique_key());
    let mut o = options.clone();
    o.key(Some(key));
    let mut rx = TransportKind::SysvMsg.named_receiver(&name, &o).unwrap();
    let queue = ipckit::sysv::msg::MsgQueue::open(key).unwrap();
    queue.send(1, b"from sysv_ipc").unwrap();
    assert_eq!(rx.recv().unwrap().as_deref(), Some(&b"from sysv_ipc"[..]));
    let abort = rx.abort_handle();
    let stopper = std::thread::spawn(move || abort.abort());
    assert!(rx.recv().is_err(), "an aborted plain receiver fails");
    stopper.join().unwrap();
    drop(rx);
    assert!(ipckit::sysv::msg::MsgQueue::open(key).is_err(), "removed");

    // Kinds only ipckit speaks refuse plain framing.
    let err = TransportKind::SysvShmSem
        .named_sender("x", &options)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
