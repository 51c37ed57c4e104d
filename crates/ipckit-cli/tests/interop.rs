//! `ipckit send` / `ipckit recv` with programs that are not ipckit (issue #13): with
//! `--framing lines` (the default) or `bytes`, the bytes on the wire are exactly the user's, so
//! a plain writer of a FIFO, a plain socket client or server, and a plain queue user talk to
//! either command; the queue receivers end on --count, --idle or a signal and remove only what
//! they created. The "plain program" side is written here with std and the library's thin
//! wrappers of the system calls (msgsnd, mq_send …), nothing that frames.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use ipckit::posix::mq::MessageQueue;
use ipckit::sysv::msg::{MsgQueue, RecvOptions};
use ipckit::Key;
use ipckit_testkit::{unique_key, unique_name, unique_path, wait_until, Defer};

fn ipckit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipckit"))
}

/// A NAME no other test uses (no leading slash).
fn name(what: &str) -> String {
    unique_name(what)[1..].to_string()
}

/// A child killed and reaped if the test ends before it was waited for.
struct Proc(Option<Child>);

impl Proc {
    fn start(args: &[&str], input: Option<&[u8]>) -> Proc {
        let mut child = ipckit()
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            let input = input.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        Proc(Some(child))
    }

    fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    fn finish(mut self) -> Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Asserts exit 0 and returns stdout.
fn ok(out: Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what}: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Removes a file when dropped (a FIFO or socket a test made).
fn remove_on_drop(path: &Path) -> Defer<impl FnMut()> {
    let path = path.to_path_buf();
    Defer(move || {
        let _ = std::fs::remove_file(&path);
    })
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_plain_writer_of_the_fifo_reaches_recv_and_send_reaches_a_plain_reader() {
    // printf 'a\nb\n' > PATH
    let path = unique_path("fifo-in");
    let _gone = remove_on_drop(&path);
    let r = Proc::start(
        &["recv", "x", "--via", "fifo", "--path", path_str(&path)],
        None,
    );
    wait_until("recv made its FIFO", || path.exists());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all(b"a\nb\n")
        .unwrap();
    assert_eq!(ok(r.finish(), "recv"), b"a\nb\n");
    assert!(!path.exists(), "recv removes the FIFO it made");

    // cat PATH, with a FIFO that someone else made (left in place).
    let path: PathBuf = unique_path("fifo-out");
    let _gone = remove_on_drop(&path);
    ipckit::pipe::Fifo::create(&path, 0o600).unwrap();
    let s = Proc::start(
        &["send", "x", "--via", "fifo", "--path", path_str(&path)],
        Some(b"x\nlast without newline"),
    );
    let mut got = Vec::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    ok(s.finish(), "send");
    assert_eq!(got, b"x\nlast without newline");
    assert!(path.exists(), "a FIFO send did not make is left in place");
}

#[test]
fn a_plain_unix_stream_client_and_server_talk_to_recv_and_send() {
    let path = unique_path("stream-in");
    let _gone = remove_on_drop(&path);
    let r = Proc::start(
        &[
            "recv",
            "x",
            "--via",
            "unix-stream",
            "--path",
            path_str(&path),
        ],
        None,
    );
    wait_until("recv listens", || {
        UnixStream::connect(&path).is_ok_and(|c| {
            // The probe connection is the one recv accepts: send on it.
            let mut c = c;
            c.write_all(b"hello\nworld\n").unwrap();
            true
        })
    });
    assert_eq!(ok(r.finish(), "recv"), b"hello\nworld\n");

    let path = unique_path("stream-out");
    let _gone = remove_on_drop(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let s = Proc::start(
        &[
            "send",
            "x",
            "--via",
            "unix-stream",
            "--path",
            path_str(&path),
        ],
        Some(b"one\ntwo\n"),
    );
    let (mut conn, _) = listener.accept().unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    ok(s.finish(), "send");
    assert_eq!(
        got, b"one\ntwo\n",
        "the first bytes are the user's, no length prefix"
    );
}

#[test]
fn a_plain_tcp_client_and_server_talk_to_recv_and_send() {
    // A plain server: send connects to it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let s = Proc::start(
        &["send", "x", "--via", "tcp", "--port", &port],
        Some(b"GET\n"),
    );
    let (mut conn, _) = listener.accept().unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    ok(s.finish(), "send");
    assert_eq!(got, b"GET\n");
    drop(listener);

    // A plain client: recv listens at --addr.
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap().to_string();
    drop(probe);
    let r = Proc::start(&["recv", "x", "--via", "tcp", "--addr", &addr], None);
    let mut conn = None;
    wait_until("recv listens", || {
        conn = TcpStream::connect(&addr).ok();
        conn.is_some()
    });
    let mut conn = conn.unwrap();
    conn.write_all(b"bytes \x00\xff as they are").unwrap();
    drop(conn);
    assert_eq!(ok(r.finish(), "recv"), b"bytes \x00\xff as they are");
}

#[test]
fn plain_packets_and_datagrams_carry_a_line_each() {
    // seqpacket: a plain client's packets, then its close.
    let path = unique_path("seqpacket");
    let _gone = remove_on_drop(&path);
    let r = Proc::start(
        &[
            "recv",
            "x",
            "--via",
            "unix-seqpacket",
            "--path",
            path_str(&path),
        ],
        None,
    );
    let addr = ipckit::unix::Addr::path(&path);
    let mut conn = None;
    wait_until("recv listens", || {
        conn = ipckit::unix::SeqpacketConn::connect(&addr).ok();
        conn.is_some()
    });
    let conn = conn.unwrap();
    conn.send(b"no newline").unwrap();
    conn.send(b"with newline\n").unwrap();
    drop(conn);
    assert_eq!(ok(r.finish(), "recv"), b"no newline\nwith newline\n");

    // dgram: send's datagrams are the lines as they are; an empty one ends.
    let path = unique_path("dgram");
    let _gone = remove_on_drop(&path);
    let socket = UnixDatagram::bind(&path).unwrap();
    let s = Proc::start(
        &[
            "send",
            "x",
            "--via",
            "unix-dgram",
            "--path",
            path_str(&path),
        ],
        Some(b"a\n\nc"),
    );
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        let n = socket.recv(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.push(buf[..n].to_vec());
    }
    ok(s.finish(), "send");
    assert_eq!(got, [&b"a\n"[..], b"\n", b"c"]);
}

/// Removes the System V queue of `key` when dropped, if there is one.
fn remove_queue(key: Key) -> Defer<impl FnMut()> {
    Defer(move || {
        if let Ok(q) = MsgQueue::open(key) {
            let _ = q.remove();
        }
    })
}

#[test]
fn sysv_msg_carries_a_message_per_line_of_any_type() {
    // A plain sender (type 1, as most C code and sysv_ipc send, and type 7): recv takes both.
    let key = Key::new(unique_key());
    let _gone = remove_queue(key);
    let k = format!("{:#x}", key.value());
    let r = Proc::start(
        &[
            "recv", "x", "--via", "sysv-msg", "--key", &k, "--count", "3",
        ],
        None,
    );
    let mut queue = None;
    wait_until("recv made its queue", || {
        queue = MsgQueue::open(key).ok();
        queue.is_some()
    });
    let queue = queue.unwrap();
    queue.send(1, b"first").unwrap();
    queue.send(7, b"second").unwrap();
    queue.send(1, b"").unwrap();
    assert_eq!(ok(r.finish(), "recv"), b"first\nsecond\n\n");
    assert!(
        MsgQueue::open(key).is_err(),
        "recv removes the queue it made"
    );

    // send with --type into a queue someone else made: one message per line, no newline.
    let key = Key::new(unique_key());
    let _gone = remove_queue(key);
    let queue = MsgQueue::create_exclusive(key).unwrap();
    let k = format!("{}", key.value());
    let s = Proc::start(
        &["send", "x", "--via", "sysv-msg", "--key", &k, "--type", "5"],
        Some(b"x\ny\n"),
    );
    ok(s.finish(), "send");
    for want in [&b"x"[..], b"y"] {
        let m = queue
            .recv_with(0, RecvOptions::new().nowait())
            .unwrap()
            .unwrap();
        assert_eq!((m.mtype, &m.data[..]), (5, want));
    }
    assert!(queue
        .recv_with(0, RecvOptions::new().nowait())
        .unwrap()
        .is_none());
}

#[test]
fn recv_ends_when_idle_and_leaves_a_queue_it_did_not_make() {
    let key = Key::new(unique_key());
    let _gone = remove_queue(key);
    let queue = MsgQueue::create_exclusive(key).unwrap();
    queue.send(3, b"queued before").unwrap();
    queue.send(1, b"recv started").unwrap();
    let k = format!("{:#x}", key.value());
    let r = Proc::start(
        &[
            "recv", "x", "--via", "sysv-msg", "--key", &k, "--idle", "1s",
        ],
        None,
    );
    assert_eq!(ok(r.finish(), "recv"), b"queued before\nrecv started\n");
    assert!(
        MsgQueue::open(key).is_ok(),
        "a queue recv did not make stays"
    );
}

#[test]
fn posix_mq_carries_a_message_per_line_at_any_priority() {
    let n = name("mq");
    let qname = format!("/ipckit-{n}");
    let _gone = Defer(|| {
        let _ = MessageQueue::unlink(&qname);
    });
    let r = Proc::start(&["recv", &n, "--via", "posix-mq", "--count", "2"], None);
    let mut queue = None;
    wait_until("recv made its queue", || {
        queue = MessageQueue::options().write_only().open(&qname).ok();
        queue.is_some()
    });
    let queue = queue.unwrap();
    // Priority 0 is posix_ipc's default. A queue hands out its highest priority first, so the
    // second message goes only once recv has taken the first: the order is then fixed.
    queue.send(b"hello", 0).unwrap();
    wait_until("recv took the first message", || {
        queue.attr().unwrap().current_messages == 0
    });
    queue.send(b"urgent", 9).unwrap();
    drop(queue);
    assert_eq!(ok(r.finish(), "recv"), b"hello\nurgent\n");
    assert!(
        MessageQueue::open(&qname).is_err(),
        "recv unlinks the queue it made"
    );

    let queue = MessageQueue::options()
        .exclusive(true)
        .max_messages(4)
        .message_size(64)
        .open(&qname)
        .unwrap();
    let s = Proc::start(
        &["send", &n, "--via", "posix-mq", "--priority", "3"],
        Some(b"a\nb\n"),
    );
    ok(s.finish(), "send");
    let mut buf = [0u8; 64];
    for want in [&b"a"[..], b"b"] {
        let (len, prio) = queue.recv(&mut buf).unwrap();
        assert_eq!((&buf[..len], prio), (want, 3));
    }
}

#[test]
fn a_signal_ends_a_plain_queue_receiver_and_removes_its_queue() {
    let n = name("mqsig");
    let qname = format!("/ipckit-{n}");
    let _gone = Defer(|| {
        let _ = MessageQueue::unlink(&qname);
    });
    let r = Proc::start(&["recv", &n, "--via", "posix-mq"], None);
    wait_until("recv made its queue", || MessageQueue::open(&qname).is_ok());
    ipckit::signal::kill(r.pid(), ipckit::signal::Signal::TERM).unwrap();
    let out = r.finish();
    assert_eq!(out.status.code(), Some(143), "{out:?}");
    assert!(
        MessageQueue::open(&qname).is_err(),
        "recv unlinked its queue"
    );
}

#[test]
fn flags_that_do_not_fit_the_transport_are_usage_errors() {
    for args in [
        &["recv", "x", "--via", "channel", "--path", "/tmp/x"][..],
        &["send", "x", "--via", "fifo", "--port", "7000"],
        &["send", "x", "--via", "posix-mq", "--key", "0x1234"],
        &["send", "x", "--via", "sysv-msg", "--type", "0"],
        &[
            "recv",
            "x",
            "--via",
            "tcp",
            "--port",
            "1",
            "--framing",
            "ipckit",
        ],
        &["recv", "x", "--via", "carrier-pigeon"],
        &["send", "x", "--via", "signal"],
        &["send", "--via", "fifo", "--pid", "1"],
    ] {
        let out = ipckit().args(args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn help_says_each_transports_wire_format() {
    for cmd in ["send", "recv"] {
        let out = ipckit().args([cmd, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        for via in [
            "fifo ",
            "unix-stream ",
            "unix-seqpacket ",
            "unix-dgram ",
            "tcp ",
            "sysv-msg ",
            "posix-mq ",
        ] {
            assert!(
                help.lines().any(|l| l.trim_start().starts_with(via)),
                "{cmd} --help has no line for {via}: {help}"
            );
        }
        assert!(
            help.contains("/ipckit-NAME") && help.contains("--key"),
            "{help}"
        );
    }
}

#[test]
fn send_via_signal_reaches_the_pid_recv_prints() {
    use std::io::BufRead;
    let mut r = ipckit()
        .args(["recv", "sig", "--via", "signal"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(r.stderr.take().unwrap());
    let r = Proc(Some(r));
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let pid = line
        .split_whitespace()
        .skip_while(|w| *w != "pid")
        .nth(1)
        .unwrap_or_else(|| panic!("no pid in {line:?}"));
    assert_eq!(pid, r.pid().to_string(), "{line}");
    let s = Proc::start(
        &["send", "--via", "signal", "--pid", pid],
        Some(b"abcd\nwxyz\n"),
    );
    ok(s.finish(), "send");
    assert_eq!(ok(r.finish(), "recv"), b"abcd\nwxyz\n");
}

/// Issue #13: sizes that cannot work are usage errors found before send or recv connects or
/// waits (without the check, `send --capacity 3K` waited for a receiver, then failed with 1).
#[test]
fn impossible_sizes_are_usage_errors_before_any_work() {
    for args in [
        &["send", "x", "--capacity", "3K", "--timeout", "2s"][..],
        &["recv", "x", "--capacity", "3K", "--timeout", "2s"],
        &["send", "x", "--capacity", "0", "--timeout", "2s"],
        &["send", "x", "--capacity", "abc"],
        &["send", "x", "--framing", "bytes", "--chunk", "0"],
        &[
            "send",
            "x",
            "--via",
            "signal",
            "--pid",
            "1",
            "--framing",
            "bytes",
            "--chunk",
            "8",
        ],
    ] {
        let out = ipckit().args(args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).lines().count(),
            1,
            "{out:?}"
        );
    }
}

/// Without --port, recv says on stderr which port the kernel gave it, and a plain client
/// connects there (the port used to be only in a file).
#[test]
fn recv_over_tcp_without_a_port_says_where_it_listens() {
    use std::io::BufRead;
    let n = name("tcpport");
    let mut r = ipckit()
        .args(["recv", &n, "--via", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(r.stderr.take().unwrap());
    let r = Proc(Some(r));
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("ipckit: listening on ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(b"found you\n").unwrap();
    drop(conn);
    assert_eq!(ok(r.finish(), "recv"), b"found you\n");
}
