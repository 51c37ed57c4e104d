//! `ipckit demo`: every lock keeps the counter exact with no overlap and exits 0; `none` loses
//! updates and exits non-zero; Dekker refuses three processes in one line; --json prints one object
//! of the documented shape; `demo robust` reports the dead owner and the recovery. No demo leaves
//! a System V object behind.
//!
//! The leak check runs each demo in an IPC namespace of its own, where the objects left when it
//! ends are the demo's: other processes of the machine create and remove objects meanwhile.

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

use ipckit_testkit::{run, spawn, text, unique_path, Defer};
use serde_json::Value;

/// The tests of this file run one at a time: the demos measure contention.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn ipckit(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_ipckit"), args)
}

/// Whether this machine lets us make an IPC namespace (`unshare --ipc`, which needs privilege).
fn namespaces_allowed() -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| {
        let allowed = Command::new("unshare")
            .args(["--ipc", "true"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !allowed {
            eprintln!("note: cannot create an IPC namespace here; the leak checks are skipped");
        }
        allowed
    })
}

/// `ipckit ARGS` in a new IPC namespace when the machine allows it, with the System V objects
/// ("shm ID", "sem ID", "msg ID") left in that namespace when the command ended: exactly what it
/// left behind. Without a namespace, plain `ipckit ARGS` and `None`.
fn ipckit_in_namespace(args: &[&str]) -> (Output, Option<Vec<String>>) {
    if !namespaces_allowed() {
        return (ipckit(args), None);
    }
    let left = unique_path("demo-left");
    let _remove = Defer(|| {
        let _ = std::fs::remove_file(&left);
    });
    let script = r#""$IPCKIT" "$@"; rc=$?
for k in shm sem msg; do awk -v k="$k" 'FNR > 1 { print k, $2 }' "/proc/sysvipc/$k"; done >"$LEFT"
exit $rc"#;
    let mut cmd = Command::new("unshare");
    cmd.args(["--ipc", "sh", "-c", script, "sh"])
        .args(args)
        .env("IPCKIT", env!("CARGO_BIN_EXE_ipckit"))
        .env("LEFT", &left)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = spawn(&mut cmd)
        .and_then(|c| c.wait_with_output())
        .expect("run unshare");
    let listed = std::fs::read_to_string(&left).expect("the objects left in the namespace");
    (out, Some(listed.lines().map(String::from).collect()))
}

/// Fails the test if `left` names objects (when the namespace could be made).
fn assert_nothing_left(what: &str, left: Option<Vec<String>>) {
    if let Some(left) = left {
        assert!(left.is_empty(), "{what} left behind: {left:?}");
    }
}

/// `demo mutex --json` for one algorithm; the parsed object and the exit status.
fn mutex_json(algo: &str, procs: usize, iters: u64) -> (Value, bool) {
    let (v, ok, _) = mutex_json_left(algo, procs, iters);
    (v, ok)
}

/// [`mutex_json`] in an IPC namespace, with the objects it left there (see
/// [`ipckit_in_namespace`]).
fn mutex_json_left(algo: &str, procs: usize, iters: u64) -> (Value, bool, Option<Vec<String>>) {
    let (out, left) = ipckit_in_namespace(&[
        "demo",
        "mutex",
        "--algo",
        algo,
        "--procs",
        &procs.to_string(),
        "--iters",
        &iters.to_string(),
        "--json",
    ]);
    let stdout = text(&out.stdout);
    let value: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{algo}: not JSON ({e}): {stdout:?} {}", text(&out.stderr)));
    (value, out.status.success(), left)
}

#[test]
fn every_lock_counts_exactly_without_overlap_and_leaves_nothing_behind() {
    let _serial = serial();
    for (algo, procs, iters) in [
        ("futex", 3, 300),
        ("sysv-sem", 3, 300),
        ("posix-sem", 3, 300),
        ("dekker", 2, 300),
        ("peterson", 2, 300),
        ("filter", 3, 150),
        ("szymanski", 3, 100),
        ("bakery", 3, 100),
    ] {
        let (v, ok, left) = mutex_json_left(algo, procs, iters);
        assert_nothing_left(algo, left);
        let expected = procs as u64 * iters;
        assert_eq!(v["expected"], expected, "{algo}: {v}");
        assert_eq!(v["counted"], expected, "{algo}: {v}");
        assert_eq!(v["overlaps"], 0, "{algo}: {v}");
        assert!(
            ok,
            "{algo}: exit status non-zero although the count is exact: {v}"
        );
    }
}

#[test]
fn no_lock_loses_updates_or_overlaps_and_fails() {
    let _serial = serial();
    // Contention is up to the scheduler: retry with more work before concluding.
    let mut last = Value::Null;
    for iters in [20_000u64, 100_000, 400_000] {
        let (v, ok) = mutex_json("none", 4, iters);
        let lost = v["counted"].as_u64().unwrap() < v["expected"].as_u64().unwrap();
        let overlapped = v["overlaps"].as_u64().unwrap() > 0;
        if lost || overlapped {
            assert!(
                !ok,
                "a run with lost updates or overlaps must exit non-zero: {v}"
            );
            return;
        }
        assert!(ok, "a clean run exits 0: {v}");
        last = v;
    }
    panic!("no race observed without a lock: {last}");
}

#[test]
fn json_is_one_object_with_the_documented_fields() {
    let _serial = serial();
    let (v, ok) = mutex_json("futex", 2, 50);
    assert!(ok);
    let obj = v.as_object().expect("an object");
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "algo",
            "procs",
            "iters",
            "expected",
            "counted",
            "overlaps",
            "ops_per_sec"
        ])
    );
    assert_eq!(v["algo"], "futex");
    assert_eq!(v["procs"], 2);
    assert_eq!(v["iters"], 50);
    assert!(v["ops_per_sec"].as_f64().unwrap() > 0.0);
}

#[test]
fn human_output_names_every_figure() {
    let _serial = serial();
    let out = ipckit(&[
        "demo", "mutex", "--algo", "peterson", "--procs", "2", "--iters", "100",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    for field in [
        "expected    200",
        "counted     200",
        "overlaps    0",
        "throughput",
        "result      ok",
    ] {
        assert!(s.contains(field), "{field:?} missing in:\n{s}");
    }
}

#[test]
fn two_process_algorithms_refuse_three_processes_in_one_line() {
    let _serial = serial();
    for algo in ["dekker", "peterson"] {
        let out = ipckit(&[
            "demo", "mutex", "--algo", algo, "--procs", "3", "--iters", "10",
        ]);
        assert!(!out.status.success());
        assert_eq!(text(&out.stdout), "");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("ipckit: "), "{err}");
        assert!(
            err.contains(&format!("{algo} is a 2-process algorithm: use --procs 2")),
            "{err}"
        );
    }
}

#[test]
fn unknown_algorithm_is_a_usage_error() {
    let _serial = serial();
    let out = ipckit(&["demo", "mutex", "--algo", "spinny"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown algorithm"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn robust_demo_reports_the_dead_owner_and_the_recovery() {
    let _serial = serial();
    let (out, left) = ipckit_in_namespace(&["demo", "robust"]);
    assert_nothing_left("demo robust", left);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}{}", text(&out.stderr));
    for step in ["create", "lock", "kill", "owner-died", "repair", "relock"] {
        assert!(
            s.lines().any(|l| l.starts_with(step)),
            "step {step} missing:\n{s}"
        );
    }
    assert!(s.contains("SIGKILL"), "{s}");
    assert!(s.contains("EOWNERDEAD"), "{s}");
    assert!(
        s.contains("owner died reported: yes, recovered: yes"),
        "{s}"
    );

    let (out, left) = ipckit_in_namespace(&["demo", "robust", "--json"]);
    assert_nothing_left("demo robust --json", left);
    assert!(out.status.success());
    let v: Value = serde_json::from_str(&text(&out.stdout)).expect("JSON");
    assert_eq!(v["owner_died"], true);
    assert_eq!(v["recovered"], true);
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["create", "lock", "kill", "owner-died", "repair", "relock"]
    );
}

/// Issue #13: --procs 0 (and other impossible parameters) is a command-line mistake: exit 2.
#[test]
fn impossible_parameters_are_usage_errors() {
    let _serial = serial();
    for args in [
        &["demo", "mutex", "--algo", "futex", "--procs", "0"][..],
        &["demo", "mutex", "--algo", "futex", "--iters", "0"],
        &["demo", "mutex", "--algo", "dekker", "--procs", "3"],
    ] {
        let out = ipckit(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&out.stdout), "");
        assert_eq!(
            text(&out.stderr).lines().count(),
            1,
            "{}",
            text(&out.stderr)
        );
    }
}
