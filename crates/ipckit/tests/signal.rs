//! Signals: names and numbers as `kill -l` lists them, sets, masks and pending signals, sending
//! (kill, kill_group, raise, sigqueue with a value) and receiving through a signalfd, dispositions,
//! alarm and the interval timer, and the `signal_chat` example.
//!
//! A signal sent to a process goes to any one of its threads that does not block it, and libtest
//! runs tests on threads of its own, next to its main thread. So this binary blocks the signals its
//! tests send **before `main`**, from an `.init_array` constructor, while the process has a single
//! thread: every thread inherits that mask, here and in re-executed children. Tests in one process
//! use distinct signals (RTMIN+1: sigqueue; RTMIN+2: kill to self; USR2: raise), and the tests of
//! the one per-process timer (SIGALRM) run in child processes.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use ipckit::signal::{self, Disposition, Signal, SignalCode, SignalFd, SignalInfo, SignalSet};
use ipckit::sysv::shm::Segment;
use ipckit_testkit::{child_role, example_bin, spawn_self, unique_path, Kid};

/// Carries the parent's pid to a re-executed test process.
const PARENT_VAR: &str = "IPCKIT_TEST_PARENT_PID";

/// Long enough never to be reached when things work; only a bound on a broken test.
const PATIENCE: Duration = Duration::from_secs(60);

fn queued_signal() -> Signal {
    Signal::rt(1).unwrap()
}

fn self_kill_signal() -> Signal {
    Signal::rt(2).unwrap()
}

/// The signals this binary's tests send, blocked in every thread.
fn test_signals() -> SignalSet {
    let mut set = SignalSet::from([Signal::USR1, Signal::USR2, Signal::ALRM]);
    set.extend([queued_signal(), self_kill_signal()]);
    set
}

extern "C" fn block_test_signals_before_main() {
    // Nothing can be reported this early; a failure shows up as a test that sees no signal.
    let _ = signal::block(&test_signals());
}

#[used]
#[link_section = ".init_array"]
static BLOCK_BEFORE_MAIN: extern "C" fn() = block_test_signals_before_main;

fn my_pid() -> u32 {
    std::process::id()
}

fn my_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Lines of a child's stdout that start with "ROLE: ", without the prefix.
fn role_lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("ROLE: ").map(str::to_string))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Names and numbers
// ---------------------------------------------------------------------------------------------

/// `bash -c 'kill -l'` as (number, name) pairs: " 1) SIGHUP\t 2) SIGINT ...".
fn kill_l() -> Vec<(i32, String)> {
    let out = Command::new("bash")
        .args(["-c", "kill -l"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let tokens: Vec<&str> = text.split_whitespace().collect();
    tokens
        .chunks(2)
        .map(|pair| {
            let n = pair[0].strip_suffix(')').unwrap().parse().unwrap();
            (n, pair[1].to_string())
        })
        .collect()
}

#[test]
fn names_and_numbers_match_kill_l_both_ways() {
    let listed = kill_l();
    assert!(listed.len() > 60, "{listed:?}");
    for (n, name) in &listed {
        let sig = Signal::from_raw(*n).unwrap();
        assert_eq!(&sig.to_string(), name, "signal {n}");
        assert_eq!(&format!("SIG{}", sig.name()), name);
        assert_eq!(name.parse::<Signal>().unwrap(), sig, "{name}");
        assert_eq!(name[3..].parse::<Signal>().unwrap(), sig, "{name}");
        assert_eq!(n.to_string().parse::<Signal>().unwrap(), sig);
    }
    let ours: Vec<(i32, String)> = Signal::all().map(|s| (s.as_raw(), s.to_string())).collect();
    assert_eq!(ours, listed, "the same signals, in the same order");
}

#[test]
fn parsing_accepts_names_with_or_without_sig_and_numbers() {
    for text in ["INT", "SIGINT", "sigint", "Int", " 2 "] {
        assert_eq!(text.parse::<Signal>().unwrap(), Signal::INT, "{text:?}");
    }
    assert_eq!("IOT".parse::<Signal>().unwrap(), Signal::ABRT);
    assert_eq!("SIGCLD".parse::<Signal>().unwrap(), Signal::CHLD);
    assert_eq!("POLL".parse::<Signal>().unwrap(), Signal::IO);
    let rt3 = "RTMIN+3".parse::<Signal>().unwrap();
    assert_eq!(rt3, Signal::rt(3).unwrap());
    assert!(rt3.is_realtime() && !Signal::USR1.is_realtime());
    assert_eq!("RTMAX-0".parse::<Signal>().unwrap(), Signal::rtmax());
    // Names are canonical whichever way they were written.
    let span = (Signal::rtmax().as_raw() - Signal::rtmin().as_raw()) as u32;
    assert_eq!(Signal::rt(span).unwrap(), Signal::rtmax());
    assert_eq!(
        format!("RTMIN+{}", span - 1)
            .parse::<Signal>()
            .unwrap()
            .name(),
        "RTMAX-1"
    );
    for bad in [
        "", "SIG", "FOO", "SIGFOO", "0", "32", "33", "65", "-2", "RTMIN+", "RTMIN-1", "RTMAX+1",
    ] {
        assert!(bad.parse::<Signal>().is_err(), "{bad:?} parsed");
    }
    assert!(format!("RTMIN+{}", span + 1).parse::<Signal>().is_err());
    assert!(Signal::rt(span + 1).is_err());
    let err = Signal::from_raw(32).unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
}

#[test]
fn signal_sets_add_remove_and_list_in_number_order() {
    let mut set = SignalSet::new();
    assert!(set.is_empty());
    set.add(Signal::TERM).add(Signal::HUP).add(Signal::rtmax());
    assert!(set.contains(Signal::HUP) && set.contains(Signal::TERM));
    assert!(!set.contains(Signal::INT));
    assert_eq!(
        set.iter().collect::<Vec<_>>(),
        [Signal::HUP, Signal::TERM, Signal::rtmax()]
    );
    set.remove(Signal::TERM);
    assert!(!set.contains(Signal::TERM));
    assert_eq!(set, SignalSet::from([Signal::rtmax(), Signal::HUP]));
    assert_eq!(format!("{set:?}"), "{SIGHUP(1), SIGRTMAX(64)}");
}

// ---------------------------------------------------------------------------------------------
// Masks, pending signals, receiving
// ---------------------------------------------------------------------------------------------

#[test]
fn blocked_signal_shows_in_pending_until_received() {
    let sig = Signal::USR2;
    let previous = signal::block(&[sig].into()).unwrap();
    assert!(previous.contains(sig), "blocked before main");
    assert!(signal::mask().unwrap().contains(sig));
    let fd = SignalFd::new(&[sig].into()).unwrap();
    assert_eq!(fd.try_recv().unwrap(), None);
    assert!(!signal::pending().unwrap().contains(sig));

    signal::raise(sig).unwrap(); // to this thread
    assert!(signal::pending().unwrap().contains(sig));
    let info = fd.try_recv().unwrap().expect("pending, so readable");
    assert_eq!(info.signal, sig);
    assert_eq!(info.code, SignalCode::Tkill);
    assert_eq!(info.sender_pid, my_pid());
    assert!(!signal::pending().unwrap().contains(sig), "received");
    assert_eq!(fd.recv_timeout(Duration::from_millis(10)).unwrap(), None);
}

#[test]
fn kill_to_self_arrives_through_signalfd_with_sender() {
    let sig = self_kill_signal();
    let fd = SignalFd::new(&[sig].into()).unwrap();
    signal::kill(my_pid(), sig).unwrap();
    let info = fd.recv_timeout(PATIENCE).unwrap().expect("the signal");
    assert_eq!(
        info,
        SignalInfo {
            signal: sig,
            sender_pid: my_pid(),
            sender_uid: my_uid(),
            value: 0,
            code: SignalCode::User,
        }
    );
    assert!(info.code.is_from_process());
}

#[test]
fn queued_values_arrive_in_order_with_the_senders_pid() {
    let sig = queued_signal();
    let values = [7, -1, i32::MAX];
    if child_role().as_deref() == Some("queuer") {
        let parent: u32 = std::env::var(PARENT_VAR).unwrap().parse().unwrap();
        for value in values {
            signal::queue(parent, sig, value).unwrap();
        }
        return;
    }
    // Already blocked in every thread since before main; blocking here too is what a program
    // with one thread would do before spawning the sender.
    let previous = signal::block(&[sig].into()).unwrap();
    assert!(previous.contains(sig));
    let fd = SignalFd::new(&[sig].into()).unwrap();
    let mut child = spawn_self(
        "queued_values_arrive_in_order_with_the_senders_pid",
        "queuer",
    )
    .env(PARENT_VAR, my_pid().to_string())
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let child_pid = child.id();
    assert!(child.wait().unwrap().success());
    // Real-time signals queue: three sent, three received, in order.
    for value in values {
        let info = fd.recv_timeout(PATIENCE).unwrap().expect("a queued signal");
        assert_eq!(info.signal, sig);
        assert_eq!(info.value, value);
        assert_eq!(info.sender_pid, child_pid);
        assert_eq!(info.sender_uid, my_uid());
        assert_eq!(info.code, SignalCode::Queue);
    }
    assert_eq!(fd.try_recv().unwrap(), None);
}

#[test]
fn kill_group_reaches_a_child_in_a_new_process_group() {
    if child_role().as_deref() == Some("group-member") {
        let fd = SignalFd::new(&[Signal::USR1].into()).unwrap();
        println!("ROLE: ready");
        let info = fd.recv_timeout(PATIENCE).unwrap().expect("SIGUSR1");
        println!(
            "ROLE: {} from {} code {:?}",
            info.signal, info.sender_pid, info.code
        );
        return;
    }
    let mut child = Kid(spawn_self(
        "kill_group_reaches_a_child_in_a_new_process_group",
        "group-member",
    )
    .process_group(0)
    .stdout(Stdio::piped())
    .spawn()
    .unwrap());
    let pid = child.0.id();
    let pgid = rustix::process::getpgid(rustix::process::Pid::from_raw(pid as i32)).unwrap();
    assert_eq!(
        pgid.as_raw_nonzero().get() as u32,
        pid,
        "a group of its own"
    );
    assert_ne!(rustix::process::getpgrp(), pgid, "not ours");

    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut role = lines
        .by_ref()
        .filter_map(|l| l.unwrap().strip_prefix("ROLE: ").map(str::to_string));
    assert_eq!(role.next().as_deref(), Some("ready"));
    signal::kill_group(pid, Signal::USR1).unwrap();
    assert_eq!(
        role.next(),
        Some(format!("SIGUSR1 from {} code User", my_pid()))
    );
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn sending_refuses_pids_that_mean_groups_or_everyone() {
    let e = signal::kill(0, Signal::USR1).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    assert!(signal::kill(u32::MAX, Signal::USR1).is_err());
    assert!(signal::queue(0, Signal::USR1, 1).is_err());
    let e = signal::kill_group(1, Signal::USR1).unwrap_err();
    assert!(e.to_string().contains("every process"), "{e}");
    assert!(signal::kill_group(0, Signal::USR1).is_err());

    // A pid above pid_max names no process.
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let e = signal::kill(pid_max + 1, Signal::USR1).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "{e}");
    assert!(e.to_string().contains("SIGUSR1"), "{e}");
}

#[test]
fn dispositions_can_be_reset_or_ignored_but_not_given_handlers() {
    // SIGWINCH: no test sends it, and its default action is to ignore it anyway.
    let sig = Signal::WINCH;
    assert_eq!(signal::disposition(sig).unwrap(), Disposition::Default);
    assert_eq!(
        signal::set_disposition(sig, Disposition::Ignore).unwrap(),
        Disposition::Default
    );
    assert_eq!(signal::disposition(sig).unwrap(), Disposition::Ignore);
    assert_eq!(
        signal::set_disposition(sig, Disposition::Default).unwrap(),
        Disposition::Ignore
    );
    let e = signal::set_disposition(sig, Disposition::Handler).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = signal::set_disposition(Signal::KILL, Disposition::Ignore).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
    // Rust programs ignore SIGPIPE.
    assert_eq!(
        signal::disposition(Signal::PIPE).unwrap(),
        Disposition::Ignore
    );
}

// ---------------------------------------------------------------------------------------------
// Timers (one per process: each test runs in a child)
// ---------------------------------------------------------------------------------------------

#[test]
fn alarm_delivers_sigalrm_through_signalfd() {
    if child_role().as_deref() == Some("alarm") {
        let fd = SignalFd::new(&[Signal::ALRM].into()).unwrap();
        assert_eq!(signal::alarm(1), 0, "no alarm was set in a new process");
        let info = fd.recv_timeout(PATIENCE).unwrap().expect("SIGALRM");
        assert_eq!(info.signal, Signal::ALRM);
        assert_eq!(info.code, SignalCode::Kernel);
        assert_eq!(signal::alarm(0), 0, "it fired, nothing is left");
        println!("ROLE: alarm received");
        return;
    }
    let out = spawn_self("alarm_delivers_sigalrm_through_signalfd", "alarm")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(role_lines(&out.stdout), ["alarm received"]);
}

#[test]
fn alarm_returns_the_seconds_left_of_the_previous_one() {
    if child_role().as_deref() == Some("alarm-replace") {
        assert_eq!(signal::alarm(1000), 0);
        let left = signal::alarm(0); // cancels
        assert!((1..=1000).contains(&left), "{left}");
        assert_eq!(signal::alarm(0), 0);
        println!("ROLE: ok");
        return;
    }
    let out = spawn_self(
        "alarm_returns_the_seconds_left_of_the_previous_one",
        "alarm-replace",
    )
    .output()
    .unwrap();
    assert_eq!(role_lines(&out.stdout), ["ok"], "{out:?}");
}

#[test]
fn interval_timer_repeats_and_returns_the_previous_setting() {
    if child_role().as_deref() == Some("itimer") {
        let fd = SignalFd::new(&[Signal::ALRM].into()).unwrap();
        let period = Duration::from_millis(20);
        let previous = signal::set_interval_timer(period, period).unwrap();
        assert!(!previous.is_armed(), "{previous:?}");
        for _ in 0..3 {
            let info = fd.recv_timeout(PATIENCE).unwrap().expect("SIGALRM");
            assert_eq!(info.signal, Signal::ALRM);
        }
        let current = signal::interval_timer().unwrap();
        assert_eq!(current.interval, period);
        assert!(current.is_armed() && current.value <= period, "{current:?}");
        let previous = signal::set_interval_timer(Duration::ZERO, Duration::ZERO).unwrap();
        assert_eq!(previous.interval, period);
        assert!(!signal::interval_timer().unwrap().is_armed());
        println!("ROLE: three expiries");
        return;
    }
    let out = spawn_self(
        "interval_timer_repeats_and_returns_the_previous_setting",
        "itimer",
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(role_lines(&out.stdout), ["three expiries"]);
}

#[test]
fn interval_timer_rounds_up_to_microseconds() {
    if child_role().as_deref() == Some("itimer-round") {
        // A nanosecond is not rounded down to zero, which would disarm the timer.
        let fd = SignalFd::new(&[Signal::ALRM].into()).unwrap();
        signal::set_interval_timer(Duration::from_nanos(1), Duration::from_nanos(1500)).unwrap();
        fd.recv_timeout(PATIENCE).unwrap().expect("SIGALRM");
        let previous = signal::set_interval_timer(Duration::ZERO, Duration::ZERO).unwrap();
        assert_eq!(previous.interval, Duration::from_micros(2));
        println!("ROLE: ok");
        return;
    }
    let out = spawn_self("interval_timer_rounds_up_to_microseconds", "itimer-round")
        .output()
        .unwrap();
    assert_eq!(role_lines(&out.stdout), ["ok"], "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// The example
// ---------------------------------------------------------------------------------------------

/// Runs signal_chat with its FIFO at a path of ours; returns its stdout and the FIFO's path.
fn run_chat(extra: &[&str]) -> (String, std::path::PathBuf) {
    let fifo = unique_path("chat-fifo");
    let out = Command::new(example_bin("signal_chat"))
        .arg("--fifo")
        .arg(&fifo)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout, fifo)
}

/// Checks the example's "writer PID created segment ID" line against the kernel: no segment of
/// that writer is left (an id can be reused by a newer segment of someone else).
fn assert_segment_gone(stdout: &str) {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("writer "))
        .expect("the writer's line");
    let (pid, id) = line.split_once(" created segment ").expect(line);
    let (pid, id): (u32, i32) = (pid.parse().unwrap(), id.parse().unwrap());
    if let Ok(stat) = Segment::from_id(id).stat() {
        assert_ne!(
            stat.cpid, pid,
            "segment {id} of writer {pid} was left behind"
        );
    }
}

#[test]
fn example_signal_chat_delivers_every_line_in_order_and_leaves_nothing() {
    let lines = ["first line", "second, with spaces", "ünïcödé", "last"];
    let (stdout, fifo) = run_chat(&lines);
    let received: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("reader: line "))
        .map(|l| l.split_once(": ").unwrap().1)
        .collect();
    assert_eq!(received, lines, "{stdout}");
    assert!(stdout.contains("reader: end"), "{stdout}");
    assert!(!fifo.exists(), "the FIFO was removed");
    assert_segment_gone(&stdout);
}

#[test]
fn example_signal_chat_cleans_up_on_sigint() {
    let (stdout, fifo) = run_chat(&["--interrupt"]);
    assert!(stdout.contains("sending SIGINT"), "{stdout}");
    assert!(
        stdout.contains("reader was interrupted, writer was interrupted"),
        "{stdout}"
    );
    assert!(!stdout.contains("reader: end"), "{stdout}");
    let received: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("reader: line "))
        .collect();
    assert!(received.len() >= 3, "{stdout}");
    assert_eq!(
        &received[..3],
        ["1: message 1", "2: message 2", "3: message 3"]
    );
    assert!(!fifo.exists(), "the FIFO was removed");
    assert_segment_gone(&stdout);
}
