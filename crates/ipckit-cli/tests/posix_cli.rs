//! POSIX objects through the command line: `ls -M/-S/-Q` lists what a test creates with the
//! documented JSON types, `mk -m/-s/-q -n NAME` creates what ipcmk 2.41 would and prints its lines,
//! and `rm --posix-*` removes exactly the named objects, reporting each missing one on its own line.
//!
//! Every object has a unique name and a guard that unlinks it, so nothing is left in /dev/shm or
//! /dev/mqueue when an assertion fails. `rm -a` is never run: it would remove other people's
//! objects too (its parsing is tested in src/rm.rs).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use ipckit::inspect::{self, PosixMqs};
use ipckit::posix::mq::MessageQueue;
use ipckit::posix::sem::NamedSemaphore;
use ipckit::posix::shm::SharedMemory;
use ipckit::sysv::shm::Segment;
use ipckit::Key;
use ipckit_testkit::{run, text, unique_key, unique_name, Defer};
use serde_json::Value;

fn ipckit(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_ipckit"), args)
}

/// Runs `ipckit ARGS --json`, expecting success, and returns the array.
fn json(args: &[&str]) -> Vec<Value> {
    let out = ipckit(&[args, &["--json"]].concat());
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    match serde_json::from_slice(&out.stdout).expect("valid JSON") {
        Value::Array(v) => v,
        other => panic!("not an array: {other}"),
    }
}

fn entry<'a>(entries: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|e| e["kind"] == kind && e["name"] == name)
}

fn mqueue_mounted() -> bool {
    match inspect::posix_mqueues().unwrap() {
        PosixMqs::Listed(_) => true,
        PosixMqs::NotMounted => {
            eprintln!(
                "note: /dev/mqueue is not mounted, queue listings are not checked ({})",
                inspect::MOUNT_MQUEUE
            );
            false
        }
    }
}

/// Unlinks the shared memory, semaphore and queue named `name` at the end of the test.
fn unlink_all(name: String) -> Defer<impl FnMut()> {
    Defer(move || {
        let _ = SharedMemory::unlink(&name);
        let _ = NamedSemaphore::unlink(&name);
        let _ = MessageQueue::unlink(&name);
    })
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.parse::<jiff::Timestamp>().is_ok())
}

#[test]
fn ls_json_shows_posix_objects_with_the_documented_types() {
    let name = unique_name("cli-ls");
    let _cleanup = unlink_all(name.clone());
    let shm = SharedMemory::options()
        .size(5000)
        .exclusive(true)
        .open(&name)
        .unwrap();
    let _map = shm.map().unwrap();
    let sem = NamedSemaphore::options()
        .value(2)
        .exclusive(true)
        .open(&name)
        .unwrap();
    let q = MessageQueue::options()
        .max_messages(3)
        .message_size(128)
        .exclusive(true)
        .open(&name)
        .unwrap();
    q.send(b"hello", 0).unwrap();
    let me = serde_json::json!(std::process::id());

    let all = json(&["ls", "-M", "-S", "-Q"]);
    let s = entry(&all, "posix-shm", &name).expect("shared memory listed");
    assert_eq!(s["size"], 5000);
    assert_eq!(s["perms"], "0600");
    assert!(s["owner"].is_string() && s["group"].is_string());
    assert!(s["uid"].is_u64() && s["gid"].is_u64());
    assert!(is_rfc3339(&s["mtime"]) && is_rfc3339(&s["ctime"]), "{s}");
    assert!(s["attached_pids"].as_array().unwrap().contains(&me), "{s}");
    assert!(s["open_pids"].as_array().unwrap().contains(&me), "{s}");

    let e = entry(&all, "posix-sem", &name).expect("semaphore listed");
    assert_eq!(e["value"], 2);
    assert_eq!(e["perms"], "0600");
    assert!(is_rfc3339(&e["mtime"]));
    assert!(e["attached_pids"].as_array().unwrap().contains(&me), "{e}");
    sem.post().unwrap();
    let again = json(&["ls", "-S"]);
    assert_eq!(entry(&again, "posix-sem", &name).unwrap()["value"], 3);
    assert!(
        again.iter().all(|e| e["kind"] == "posix-sem"),
        "-S lists only semaphores"
    );

    if mqueue_mounted() {
        let m = entry(&all, "posix-mq", &name).expect("queue listed");
        assert_eq!(m["messages"], 1);
        assert_eq!(m["maxmsg"], 3);
        assert_eq!(m["msgsize"], 128);
        assert!(m["used_bytes"].as_u64().unwrap() >= 5, "{m}");
        assert_eq!(m["notify_pid"], Value::Null);
        assert!(m["open_pids"].as_array().unwrap().contains(&me), "{m}");
        assert!(is_rfc3339(&m["mtime"]));
        // Listing received nothing.
        let mut buf = [0u8; 128];
        assert_eq!(q.try_recv(&mut buf).unwrap(), Some((5, 0)));
    }
}

#[test]
fn ls_without_flags_shows_system_v_and_posix_objects_and_tables_name_them() {
    let name = unique_name("cli-ls-all");
    let _cleanup = unlink_all(name.clone());
    let _shm = SharedMemory::create_exclusive(&name, 100).unwrap();
    let seg = Segment::create_exclusive(Key::new(unique_key()), 64)
        .unwrap()
        .into_owned();

    let all = json(&["ls"]);
    assert!(entry(&all, "posix-shm", &name).is_some());
    assert!(all
        .iter()
        .any(|e| e["kind"] == "sysv-shm" && e["id"] == seg.id()));
    let only_posix = json(&["ls", "-M"]);
    assert!(only_posix.iter().all(|e| e["kind"] == "posix-shm"));

    let out = ipckit(&["ls"]);
    let tables = text(&out.stdout);
    for heading in [
        "------ System V shared memory segments ------",
        "------ POSIX shared memory ------",
        "------ POSIX named semaphores ------",
        "------ POSIX message queues ------",
    ] {
        assert!(tables.contains(heading), "{heading} missing:\n{tables}");
    }
    let row = tables
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .expect("a row for the object");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[2..4], ["600", "100"], "{row}");
}

#[test]
fn mk_creates_each_posix_kind_and_prints_ipcmks_lines() {
    let name = unique_name("cli-mk");
    let _cleanup = unlink_all(name.clone());
    // A name without its slash gets one, as glibc's shm_open and sem_open do.
    let out = ipckit(&[
        "mk",
        "-m",
        "8K",
        "-s",
        "-q",
        "-n",
        &name[1..],
        "--value",
        "3",
        "--maxmsg",
        "4",
        "--msgsize",
        "64",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "POSIX shared memory name: {name}\nPOSIX message queue name: {name}\nPOSIX semaphore name: {name}\n"
        )
    );

    let file = std::fs::metadata(format!("/dev/shm{name}")).expect("/dev/shm/NAME");
    assert_eq!((file.size(), file.mode() & 0o777), (8192, 0o600));
    assert!(Path::new(&format!("/dev/shm/sem.{}", &name[1..])).exists());
    assert_eq!(NamedSemaphore::open(&name).unwrap().value().unwrap(), 3);
    let q = MessageQueue::open(&name).unwrap();
    assert_eq!((q.max_messages(), q.message_size()), (4, 64));
    if mqueue_mounted() {
        assert!(Path::new(&format!("/dev/mqueue{name}")).exists());
    }
}

#[test]
fn mk_refuses_a_taken_name_or_a_bad_one_and_leaves_nothing() {
    let name = unique_name("cli-mk-taken");
    let _cleanup = unlink_all(name.clone());
    let _taken = SharedMemory::create_exclusive(&name, 10).unwrap();

    // ipcmk's order creates the System V segment first, then the POSIX object, which fails: the
    // segment is removed again.
    let child = Command::new(env!("CARGO_BIN_EXE_ipckit"))
        .args(["mk", "-M", "4K", "-m", "4K", "-n", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let leftover: Vec<Segment> = inspect::shm_segments()
        .unwrap()
        .iter()
        .filter(|s| s.cpid == pid)
        .map(|s| Segment::from_id(s.id))
        .collect();
    for seg in &leftover {
        let _ = seg.remove();
    }
    assert!(leftover.is_empty(), "mk left its System V segment behind");
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "");
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&name) && err.contains("exists"), "{err}");
    assert_eq!(
        std::fs::metadata(format!("/dev/shm{name}")).unwrap().size(),
        10
    );

    let out = ipckit(&["mk", "-q", "-n", "a/b"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a POSIX name"),
        "{}",
        text(&out.stderr)
    );
    let out = ipckit(&["mk", "-s"]);
    assert_eq!(out.status.code(), Some(2), "a POSIX kind needs -n");
}

#[test]
fn rm_posix_removes_exactly_the_named_objects_and_reports_each_missing_one() {
    let [a, b, kept, missing] =
        ["a", "b", "kept", "missing"].map(|w| unique_name(&format!("cli-rm-{w}")));
    let _cleanup = [a.clone(), b.clone(), kept.clone()].map(unlink_all);
    for n in [&a, &b, &kept] {
        drop(SharedMemory::create_exclusive(n, 10).unwrap());
    }
    drop(NamedSemaphore::create_exclusive(&a, 0).unwrap());
    drop(NamedSemaphore::create_exclusive(&kept, 0).unwrap());
    drop(MessageQueue::create_exclusive(&b, ipckit::posix::mq::Attr::new(2, 16)).unwrap());
    drop(MessageQueue::create_exclusive(&kept, ipckit::posix::mq::Attr::new(2, 16)).unwrap());
    let seg = Segment::create_exclusive(Key::new(unique_key()), 64).unwrap();
    let _seg = Defer(|| {
        let _ = seg.remove();
    });
    let seg_id = seg.id().to_string();

    let out = ipckit(&[
        "rm",
        "--posix-shmem",
        &a,
        "--posix-semaphore",
        &a,
        "--posix-shmem",
        &missing,
        "-m",
        &seg_id,
        "--posix-mqueue",
        &b[1..],
        "--posix-mqueue",
        &missing,
        "--posix-shmem",
        &b,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "ipckit: rm: POSIX shared memory {missing}: no such object\n\
             ipckit: rm: POSIX message queue {missing}: no such object\n"
        )
    );
    assert!(SharedMemory::open(&a).is_err() && SharedMemory::open(&b).is_err());
    assert!(NamedSemaphore::open(&a).is_err());
    assert!(MessageQueue::open(&b).is_err());
    assert!(
        seg.stat().is_err(),
        "the System V segment in between went too"
    );
    assert!(SharedMemory::open(&kept).is_ok());
    assert!(NamedSemaphore::open(&kept).is_ok());
    assert!(MessageQueue::open(&kept).is_ok());
    if mqueue_mounted() {
        assert!(!Path::new(&format!("/dev/mqueue{b}")).exists());
        assert!(Path::new(&format!("/dev/mqueue{kept}")).exists());
    }

    // A bad name is a usage error, and nothing is removed.
    let out = ipckit(&["rm", "--posix-shmem", &kept, "--posix-shmem", "/x/y"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(SharedMemory::open(&kept).is_ok());
}

/// Runs `script` with `sh -e` in new IPC and mount namespaces (fresh System V objects and
/// queues, and a fresh tmpfs on /dev/shm and mqueue on /dev/mqueue), so that `rm -a` and
/// `gc --yes` can run unrestricted without touching anyone's objects. `None` when this machine
/// does not let us (no unshare, no privilege): the caller then says so and stops.
fn in_private_namespaces(script: &str) -> Option<String> {
    let full = format!(
        "mount -t tmpfs tmpfs /dev/shm\n\
         if [ -d /dev/mqueue ]; then mount -t mqueue none /dev/mqueue; fi\n\
         {script}"
    );
    let probe = Command::new("unshare")
        .args(["--ipc", "--mount", "--propagation", "private", "true"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("note: cannot create IPC and mount namespaces here; skipped");
        return None;
    }
    let out = Command::new("unshare")
        .args([
            "--ipc",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-e",
            "-c",
        ])
        .arg(&full)
        .env("IPCKIT", env!("CARGO_BIN_EXE_ipckit"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "script failed: {}\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    Some(text(&out.stdout))
}

/// The kinds in each `ls --json` document of `stdout`, split at lines `---`.
fn kinds_per_listing(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .split("---\n")
        .filter(|doc| !doc.trim().is_empty())
        .map(|doc| {
            let v: Vec<Value> = serde_json::from_str(doc).expect("ls --json");
            let mut kinds: Vec<String> = v
                .iter()
                .map(|e| e["kind"].as_str().unwrap().to_owned())
                .collect();
            kinds.sort();
            kinds
        })
        .collect()
}

const ALL_KINDS: [&str; 6] = [
    "posix-mq",
    "posix-sem",
    "posix-shm",
    "sysv-msg",
    "sysv-sem",
    "sysv-shm",
];

#[test]
fn rm_all_removes_every_kind_and_rm_all_pshm_only_posix_shared_memory() {
    let Some(stdout) = in_private_namespaces(
        r#"
"$IPCKIT" mk -M 4K -S 1 -Q -m 4K -s -q -n one >/dev/null
"$IPCKIT" ls --json; echo ---
"$IPCKIT" rm -a pshm
"$IPCKIT" ls --json; echo ---
"$IPCKIT" rm -a
"$IPCKIT" ls --json; echo ---
"#,
    ) else {
        return;
    };
    let listings = kinds_per_listing(&stdout);
    let mounted = Path::new("/dev/mqueue").is_dir();
    let expected: Vec<String> = ALL_KINDS
        .iter()
        .filter(|k| mounted || **k != "posix-mq")
        .map(|k| k.to_string())
        .collect();
    assert_eq!(listings[0], expected);
    let without_pshm: Vec<String> = expected
        .iter()
        .filter(|k| *k != "posix-shm")
        .cloned()
        .collect();
    assert_eq!(listings[1], without_pshm);
    assert_eq!(listings[2], Vec::<String>::new());
}

#[test]
fn gc_yes_unrestricted_removes_what_exited_processes_left_of_every_kind() {
    let Some(stdout) = in_private_namespaces(
        r#"
"$IPCKIT" mk -M 4K -S 1 -Q -m 4K -s -q -n left >/dev/null
"$IPCKIT" gc --older-than 0s >/dev/null
"$IPCKIT" ls --json; echo ---
"$IPCKIT" gc --yes --older-than 0s >/dev/null
"$IPCKIT" ls --json; echo ---
"#,
    ) else {
        return;
    };
    let listings = kinds_per_listing(&stdout);
    assert_eq!(
        listings[0].len(),
        if Path::new("/dev/mqueue").is_dir() {
            6
        } else {
            5
        }
    );
    assert_eq!(listings[1], Vec::<String>::new(), "every orphan removed");
}
