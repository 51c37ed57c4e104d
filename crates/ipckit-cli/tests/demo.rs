//! `ipckit demo`: every lock keeps the counter exact with no overlap and exits 0; `none` loses
//! updates and exits non-zero; Dekker refuses three processes in one line; --json prints one object
//! of the documented shape; `demo robust` reports the dead owner and the recovery. No demo leaves
//! a System V object behind.

use std::collections::BTreeSet;
use std::process::Output;
use std::sync::{Mutex, MutexGuard};

use ipckit_testkit::{run, text};
use serde_json::Value;

/// The tests of this file run one at a time, so that one's objects never show up in another's
/// leak check.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn ipckit(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_ipckit"), args)
}

/// The System V objects on the machine (kind and id), from /proc/sysvipc.
fn sysv_objects() -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for kind in ["shm", "sem", "msg"] {
        let table = std::fs::read_to_string(format!("/proc/sysvipc/{kind}")).unwrap_or_default();
        for line in table.lines().skip(1) {
            let id = line.split_whitespace().nth(1).unwrap_or_default();
            set.insert(format!("{kind} {id}"));
        }
    }
    set
}

/// `demo mutex --json` for one algorithm; the parsed object and the exit status.
fn mutex_json(algo: &str, procs: usize, iters: u64) -> (Value, bool) {
    let out = ipckit(&[
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
    (value, out.status.success())
}

#[test]
fn every_lock_counts_exactly_without_overlap_and_leaves_nothing_behind() {
    let _serial = serial();
    let before = sysv_objects();
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
        let (v, ok) = mutex_json(algo, procs, iters);
        let expected = procs as u64 * iters;
        assert_eq!(v["expected"], expected, "{algo}: {v}");
        assert_eq!(v["counted"], expected, "{algo}: {v}");
        assert_eq!(v["overlaps"], 0, "{algo}: {v}");
        assert!(
            ok,
            "{algo}: exit status non-zero although the count is exact: {v}"
        );
    }
    let leaked: Vec<_> = sysv_objects().difference(&before).cloned().collect();
    assert!(leaked.is_empty(), "left behind: {leaked:?}");
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
    let before = sysv_objects();
    let out = ipckit(&["demo", "robust"]);
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

    let out = ipckit(&["demo", "robust", "--json"]);
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
    let leaked: Vec<_> = sysv_objects().difference(&before).cloned().collect();
    assert!(leaked.is_empty(), "left behind: {leaked:?}");
}
