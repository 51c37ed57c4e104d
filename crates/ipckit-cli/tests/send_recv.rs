//! `ipckit send` / `ipckit recv`: lines and bytes arrive whole and in order over every named
//! transport, either side may start first, several senders feed one receiver, an oversize line is
//! a clear error, a sender killed mid-stream makes recv fail after whole lines, and nothing is
//! left in /dev/shm.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn ipckit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipckit"))
}

/// A name no other test uses.
fn name(what: &str) -> String {
    ipckit_testkit::unique_name(what)[1..].to_string()
}

/// A child killed and reaped if the test ends before it was waited for.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn recv(name: &str, extra: &[&str]) -> Proc {
    Proc(
        ipckit()
            .args(["recv", name])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

fn send(name: &str, extra: &[&str]) -> Proc {
    Proc(
        ipckit()
            .args(["send", name])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Writes `input` to the sender's stdin and closes it, from a thread (the receiver's output is
/// read only at the end, so a large input must not wait for it here).
fn feed(p: &mut Proc, input: &[u8]) {
    let mut stdin: ChildStdin = p.0.stdin.take().unwrap();
    let input = input.to_vec();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
}

/// Waits for a process and returns (success, stdout, stderr).
fn finish(p: Proc) -> (bool, Vec<u8>, String) {
    let mut p = std::mem::ManuallyDrop::new(p);
    let out = std::mem::replace(&mut p.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    let _ = p.0.wait();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Nothing named after `name` in /dev/shm or /dev/mqueue.
fn assert_nothing_left(name: &str) {
    for dir in ["/dev/shm", "/dev/mqueue"] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(!n.contains(name), "{dir}/{n} left behind");
        }
    }
}

/// ipckit's checked framing (`--framing ipckit`) on every named transport.
#[test]
fn lines_arrive_whole_and_in_order_over_every_named_transport() {
    let input = "one\ntwo\n\nfour with spaces\nlast line without newline";
    let want = "one\ntwo\n\nfour with spaces\nlast line without newline\n";
    for via in [
        "channel",
        "channel-spin",
        "fifo",
        "unix-stream",
        "unix-seqpacket",
        "unix-dgram",
        "tcp",
        "sysv-msg",
        "posix-mq",
        "sysv-shm+sem",
        "mmap+futex",
    ] {
        let n = name("lines");
        let r = recv(&n, &["--via", via, "--framing", "ipckit"]);
        let mut s = send(&n, &["--via", via, "--framing", "ipckit"]);
        feed(&mut s, input.as_bytes());
        let (sent, _, serr) = finish(s);
        assert!(sent, "{via}: send failed: {serr}");
        let (ok, out, err) = finish(r);
        assert!(ok, "{via}: recv failed: {err}");
        assert_eq!(String::from_utf8(out).unwrap(), want, "{via}");
        assert_nothing_left(&n);
    }
}

#[test]
fn bytes_arrive_unchanged_in_chunks() {
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for via in ["channel", "unix-stream", "posix-mq"] {
        let n = name("bytes");
        // A POSIX queue carries no end of stream in plain framing: 74 chunks of 4K make the data.
        let count: &[&str] = if via == "posix-mq" {
            &["--count", "74"]
        } else {
            &[]
        };
        let r = recv(
            &n,
            &[&["--via", via, "--framing", "bytes"][..], count].concat(),
        );
        let mut s = send(&n, &["--via", via, "--framing", "bytes", "--chunk", "4K"]);
        feed(&mut s, &data);
        // Read the receiver's output while the sender runs: it is more than a pipe holds.
        let reader = std::thread::spawn(move || finish(r));
        let (sent, _, serr) = finish(s);
        assert!(sent, "{via}: {serr}");
        let (ok, out, err) = reader.join().unwrap();
        assert!(ok, "{via}: {err}");
        assert_eq!(out.len(), data.len(), "{via}");
        assert!(out == data, "{via}: the bytes differ");
        assert_nothing_left(&n);
    }
}

#[test]
fn the_sender_may_start_before_the_receiver() {
    for via in ["channel", "unix-stream", "sysv-msg", "mmap+futex"] {
        let n = name("order");
        let mut s = send(&n, &["--via", via]);
        feed(&mut s, b"early\nbird\n");
        // The sender now waits for its receiver, which starts only now.
        std::thread::sleep(Duration::from_millis(100));
        // sysv-msg in plain framing has no end of stream: the receiver counts.
        let count: &[&str] = if via == "sysv-msg" {
            &["--count", "2"]
        } else {
            &[]
        };
        let r = recv(&n, &[&["--via", via][..], count].concat());
        let (ok, out, err) = finish(r);
        assert!(ok, "{via}: {err}");
        assert_eq!(out, b"early\nbird\n", "{via}");
        let (sent, _, serr) = finish(s);
        assert!(sent, "{via}: {serr}");
        assert_nothing_left(&n);
    }
}

/// Reads a receiver's stdout line by line in a thread.
fn lines_of(p: &mut Proc) -> mpsc::Receiver<String> {
    let out = p.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_line(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(Duration::from_secs(30))
        .expect("a line from recv")
}

#[test]
fn several_senders_feed_one_receiver_until_all_closed() {
    let n = name("many");
    let mut r = recv(&n, &[]);
    let lines = lines_of(&mut r);
    let mut senders: Vec<Proc> = (0..3).map(|_| send(&n, &[])).collect();
    let mut stdins: Vec<ChildStdin> = senders
        .iter_mut()
        .map(|s| s.0.stdin.take().unwrap())
        .collect();
    // Each sender is attached once its first line came through.
    for (i, stdin) in stdins.iter_mut().enumerate() {
        writeln!(stdin, "s{i}-0").unwrap();
        stdin.flush().unwrap();
        assert_eq!(next_line(&lines), format!("s{i}-0"));
    }
    for (i, stdin) in stdins.iter_mut().enumerate() {
        for k in 1..50 {
            writeln!(stdin, "s{i}-{k}").unwrap();
        }
    }
    // Two close; the receiver goes on for the third.
    drop(stdins.remove(0));
    drop(stdins.remove(0));
    let mut got: Vec<String> = Vec::new();
    for _ in 0..(3 * 49) {
        got.push(next_line(&lines));
    }
    drop(stdins);
    for s in senders {
        let (ok, _, err) = finish(s);
        assert!(ok, "{err}");
    }
    let (ok, rest, err) = finish(r);
    assert!(ok, "{err}");
    assert!(rest.is_empty());
    // Each sender's lines in its order.
    for i in 0..3 {
        let mine: Vec<&String> = got
            .iter()
            .filter(|l| l.starts_with(&format!("s{i}-")))
            .collect();
        let want: Vec<String> = (1..50).map(|k| format!("s{i}-{k}")).collect();
        assert_eq!(
            mine.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            want,
            "sender {i}"
        );
    }
    assert_nothing_left(&n);
}

#[test]
fn a_line_longer_than_the_channel_holds_is_a_clear_error() {
    let n = name("long");
    let r = recv(&n, &["--capacity", "4K"]);
    // The sender starts once the receiver has created the channel: a sender that came first
    // would create it itself, with the default capacity, and the long line would fit.
    let channel = std::path::Path::new("/dev/shm").join(format!("ipckit-{n}"));
    ipckit_testkit::wait_until("the receiver's channel", || channel.exists());
    let mut s = send(&n, &[]);
    let mut input = b"fits\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 5000));
    input.push(b'\n');
    feed(&mut s, &input);
    let (sent, _, err) = finish(s);
    assert!(!sent, "send must fail");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("ipckit: line 2 has 5000 bytes"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (_, out, _) = finish(r);
    assert_eq!(out, b"fits\n");
    assert_nothing_left(&n);
}

#[test]
fn a_sender_killed_mid_stream_makes_recv_fail_after_whole_lines() {
    let n = name("killed");
    let mut r = recv(&n, &[]);
    let lines = lines_of(&mut r);
    let mut s = send(&n, &[]);
    let mut stdin = s.0.stdin.take().unwrap();
    writeln!(stdin, "whole line").unwrap();
    stdin.flush().unwrap();
    assert_eq!(next_line(&lines), "whole line");
    s.0.kill().unwrap();
    s.0.wait().unwrap();
    let mut stderr = String::new();
    r.0.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = r.0.wait().unwrap();
    assert!(!status.success(), "recv must fail");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("died"), "{stderr}");
    assert!(
        lines.recv_timeout(Duration::from_secs(5)).is_err(),
        "nothing after the whole line"
    );
    assert_nothing_left(&n);
}

#[test]
fn bad_names_and_transports_are_one_line_errors() {
    for args in [
        &["send", "../etc", "--via", "fifo"][..],
        &["recv", "ok", "--via", "carrier-pigeon"],
        &["recv", "ok", "--via", "pipe"],
    ] {
        let out = ipckit().args(args).stdin(Stdio::null()).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("ipckit: "), "{args:?}: {err}");
    }
}
