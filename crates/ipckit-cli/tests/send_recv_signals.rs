//! `ipckit send` / `ipckit recv` and signals, and what `send`'s exit status promises: a recv
//! stopped with SIGINT, SIGTERM or SIGHUP exits 130, 143 or 129 and leaves nothing behind, on
//! every transport family, and a following recv of the same NAME works; a send whose message
//! was not received never exits 0.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ipckit::signal::Signal;
use ipckit_testkit::wait_until;

const NAMED: [&str; 10] = [
    "fifo",
    "unix-stream",
    "unix-seqpacket",
    "unix-dgram",
    "tcp",
    "sysv-msg",
    "posix-mq",
    "sysv-shm+sem",
    "mmap+futex",
    "channel",
];

fn ipckit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipckit"))
}

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

fn recv(name: &str, via: &str) -> Proc {
    Proc(
        ipckit()
            .args(["recv", name, "--via", via, "--timeout", "30s"])
            // ipckit's framing: an explicit end of stream, and a send's exit 0 means delivered.
            .args(["--framing", "ipckit"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Runs `ipckit send NAME --via VIA` with `input` on stdin to the end: its exit code and stderr.
fn send(name: &str, via: &str, input: &str, timeout: &str) -> (Option<i32>, String) {
    let mut child = ipckit()
        .args(["send", name, "--via", via, "--timeout", timeout])
        .args(["--framing", "ipckit"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The System V key the transports derive from a NAME (FNV-1a of salt and name, "i" on top).
fn name_key(name: &str, salt: u8) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in std::iter::once(salt).chain(name.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (0x6900_0000 | (h & 0x00ff_ffff)) as i32
}

fn runtime_dir() -> std::path::PathBuf {
    match std::env::var("XDG_RUNTIME_DIR") {
        Ok(d) if std::path::Path::new(&d).is_dir() => d.into(),
        _ => std::env::temp_dir(),
    }
}

/// Every object named after `name`: files in the runtime directory, /dev/shm and /dev/mqueue,
/// System V queues, segments and semaphore sets under its keys.
fn leftovers(name: &str) -> Vec<String> {
    let mut found: Vec<String> = [runtime_dir(), "/dev/shm".into(), "/dev/mqueue".into()]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten())
        .flatten()
        .map(|e| e.path().display().to_string())
        .filter(|p| p.contains(name))
        .collect();
    for (table, salt) in [("msg", b'q'), ("shm", b'm'), ("sem", b's')] {
        let key = name_key(name, salt).to_string();
        let text = std::fs::read_to_string(format!("/proc/sysvipc/{table}")).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.split_whitespace().next() == Some(key.as_str()))
        {
            found.push(format!("System V {table} key {key}"));
        }
    }
    found
}

/// Whether process `pid`'s main thread blocks `sig` (so the command set itself up to leave).
fn blocks(pid: u32, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (sig - 1)) != 0)
}

/// Waits for a recv to end: its status and standard output.
fn finish(r: &mut Proc) -> (std::process::ExitStatus, String) {
    let mut out = String::new();
    r.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    (r.0.wait().unwrap(), out)
}

fn stop_recv_with(via: &str, sig: i32, code: i32) {
    let name = name("sig");
    let mut r = recv(&name, via);
    let pid = r.0.id();
    wait_until("recv created its objects", || {
        blocks(pid, sig) && !leftovers(&name).is_empty()
    });
    ipckit::signal::kill(pid, Signal::from_raw(sig).unwrap()).unwrap();
    let status = r.0.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(code),
        "{via}: recv stopped by {sig}: {status}"
    );
    let left = leftovers(&name);
    assert!(left.is_empty(), "{via}: recv left {left:?}");
    // A send now finds no receiver: it must not exit 0.
    let (code, err) = send(&name, via, "lost?\n", "300ms");
    assert_ne!(code, Some(0), "{via}: a send after the recv left exited 0");
    assert_eq!(err.lines().count(), 1, "{via}: {err}");
    // And the NAME works again.
    let mut r = recv(&name, via);
    let (code, err) = send(&name, via, "hi\n", "30s");
    assert_eq!(code, Some(0), "{via}: {err}");
    let (status, out) = finish(&mut r);
    assert!(status.success(), "{via}: {status}");
    assert_eq!(out, "hi\n", "{via}");
    let left = leftovers(&name);
    assert!(left.is_empty(), "{via}: left {left:?}");
}

#[test]
fn recv_stopped_by_sigint_exits_130_and_leaves_nothing_on_every_transport() {
    for via in NAMED {
        stop_recv_with(via, Signal::INT.as_raw(), 130);
    }
}

#[test]
fn recv_stopped_by_sigterm_or_sighup_exits_143_or_129() {
    stop_recv_with("sysv-msg", Signal::TERM.as_raw(), 143);
    stop_recv_with("unix-stream", Signal::HUP.as_raw(), 129);
}

/// A send waiting for its input (or for a receiver) leaves on SIGINT with 130 at once.
#[test]
fn send_stopped_by_sigint_exits_130() {
    for via in ["channel", "sysv-msg", "fifo"] {
        let name = name("sigsend");
        let mut r = recv(&name, via);
        let mut s = Proc(
            ipckit()
                .args(["send", &name, "--via", via, "--framing", "ipckit"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let pid = s.0.id();
        wait_until("send set itself up", || blocks(pid, Signal::INT.as_raw()));
        // Let it connect (it then waits for input).
        std::thread::sleep(Duration::from_millis(200));
        // Child::wait closes stdin first: hold it open, or the end of input may race the signal
        // and the send close cleanly with 0.
        let stdin = s.0.stdin.take();
        ipckit::signal::kill(pid, Signal::INT).unwrap();
        let status = s.0.wait().unwrap();
        drop(stdin);
        assert_eq!(status.code(), Some(130), "{via}: {status}");
        // Stop the receiver cleanly too (a SIGKILL would leave its objects behind).
        ipckit::signal::kill(r.0.id(), Signal::INT).unwrap();
        let _ = r.0.wait();
        let left = leftovers(&name);
        assert!(left.is_empty(), "{via}: left {left:?}");
    }
}

/// Finding 6 of issue #11: two senders started before recv; recv must not end after the first
/// and lose the second's lines while it exits 0. Either the lines arrive, or that send fails.
#[test]
fn a_sender_never_exits_0_with_its_lines_lost() {
    for via in [
        "channel",
        "sysv-msg",
        "posix-mq",
        "unix-stream",
        "fifo",
        "mmap+futex",
    ] {
        let name = name("two");
        let first = {
            let name = name.clone();
            std::thread::spawn(move || send(&name, via, "one\n", "10s"))
        };
        let second = {
            let name = name.clone();
            std::thread::spawn(move || send(&name, via, "two\n", "10s"))
        };
        std::thread::sleep(Duration::from_millis(300));
        let mut r = recv(&name, via);
        let a = first.join().unwrap();
        let b = second.join().unwrap();
        let (_, got) = finish(&mut r);
        for ((code, err), line) in [(a, "one"), (b, "two")] {
            if code == Some(0) {
                assert!(
                    got.lines().any(|l| l == line),
                    "{via}: send of {line:?} exited 0 but recv printed {got:?}"
                );
            } else {
                assert_eq!(err.lines().count(), 1, "{via}: {err}");
            }
        }
    }
}
