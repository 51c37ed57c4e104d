//! `ipckit gc` on real objects: a System V segment whose creator exited is reported with a reason
//! and removed by `--yes`, while one a live process holds and one this live test process created
//! stay; POSIX shared memory that nobody holds is an orphan once older than `--older-than`, and one
//! a live child holds open is not. (The rules themselves are unit-tested with made-up listings in
//! ipckit's `inspect::gc`.)
//!
//! The machine may hold other people's objects, so every run here is restricted to the test's own
//! objects with the hidden `--only KIND:OBJECT` filter, and every object is removed by a guard
//! even when an assertion fails.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use ipckit::posix::mq::MessageQueue;
use ipckit::posix::shm::SharedMemory;
use ipckit::sysv::msg::MsgQueue;
use ipckit::sysv::sem::SemSet;
use ipckit::sysv::shm::Segment;
use ipckit::Key;
use ipckit_testkit::{
    child_role, is_root, run, spawn, spawn_self, text, unique_name, Conversation, Defer, Kid,
    NOBODY,
};
use serde_json::Value;

fn ipckit(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_ipckit"), args)
}

/// `ipckit gc ARGS --json`, expecting success: the orphans reported.
fn gc_json(args: &[&str]) -> Vec<Value> {
    let out = ipckit(&[&["gc"], args, &["--json"]].concat());
    assert!(out.status.success(), "gc {args:?}: {}", text(&out.stderr));
    match serde_json::from_slice(&out.stdout).expect("valid JSON") {
        Value::Array(v) => v,
        other => panic!("not an array: {other}"),
    }
}

/// `--only` flags for these System V segment ids.
fn only_shm(ids: &[i32]) -> Vec<String> {
    ids.iter()
        .flat_map(|id| ["--only".to_owned(), format!("sysv-shm:{id}")])
        .collect()
}

/// The role of a child that creates a System V object of kind `role`, prints `id=N` and exits:
/// its creator is then dead.
fn create_and_exit(role: &str) {
    let id = match role {
        "shm" => Segment::create(Key::PRIVATE, 4096).unwrap().id(),
        "sem" => SemSet::create(Key::PRIVATE, 2).unwrap().id(),
        "msg" => MsgQueue::create(Key::PRIVATE).unwrap().id(),
        other => panic!("unknown role {other}"),
    };
    println!("id={id}");
}

/// Runs this test as a child in `role` and returns the id it printed.
fn id_from_child(test: &str, role: &str) -> i32 {
    let out = spawn_self(test, role).output().unwrap();
    assert!(out.status.success(), "child failed: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("id=").and_then(|n| n.trim().parse().ok()))
        .expect("child printed its id")
}

#[test]
fn segment_whose_creator_exited_is_reported_and_only_it_is_removed() {
    const TEST: &str = "segment_whose_creator_exited_is_reported_and_only_it_is_removed";
    if let Some(role) = child_role() {
        return create_and_exit(&role);
    }
    // The orphan: made by a child that has exited, never attached.
    let orphan = id_from_child(TEST, "shm");
    let _orphan = Defer(|| {
        let _ = Segment::from_id(orphan).remove();
    });
    // Made by a child that has exited too, but attached by this live process.
    let held = id_from_child(TEST, "shm");
    let _held = Segment::from_id(held).into_owned();
    let _attachment = Segment::from_id(held).attach().unwrap();
    // Made by this live process.
    let mine = Segment::create(Key::PRIVATE, 4096).unwrap().into_owned();
    let only = only_shm(&[orphan, held, mine.id()]);
    let only: Vec<&str> = only.iter().map(String::as_str).collect();

    assert!(
        gc_json(&only).is_empty(),
        "made within the default 10m: not yet"
    );
    let only = [&["--older-than", "0s"][..], &only].concat();
    let found = gc_json(&only);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["kind"], "sysv-shm");
    assert_eq!(found[0]["id"], orphan);
    assert_eq!(found[0]["key"], "0x00000000");
    assert_eq!(found[0]["action"], "reported");
    let reason = found[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("never attached; its creator (pid "),
        "{reason}"
    );
    assert!(
        Segment::from_id(orphan).stat().is_ok(),
        "reporting removes nothing"
    );

    let out = ipckit(&[&["gc", "--yes"], &only[..]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&format!("removed sysv-shm id {orphan} (key 0x00000000): ")),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 of 1 orphan(s) removed\n"), "{stdout}");
    assert!(
        Segment::from_id(orphan).stat().is_err(),
        "the orphan is gone"
    );
    assert!(Segment::from_id(held).stat().is_ok(), "the held one stays");
    assert!(mine.stat().is_ok(), "ours stays");

    assert!(gc_json(&only).is_empty(), "nothing left to report");
}

#[test]
fn sets_and_queues_of_exited_processes_are_orphans_only_once_old_enough() {
    const TEST: &str = "sets_and_queues_of_exited_processes_are_orphans_only_once_old_enough";
    if let Some(role) = child_role() {
        return create_and_exit(&role);
    }
    let sem = id_from_child(TEST, "sem");
    let _sem = SemSet::from_id(sem).into_owned();
    let msg = id_from_child(TEST, "msg");
    let _msg = MsgQueue::from_id(msg).into_owned();
    let used = id_from_child(TEST, "msg");
    let used_queue = MsgQueue::from_id(used).into_owned();
    used_queue.send(1, b"from a live process").unwrap();
    let only = [
        "--only".to_owned(),
        format!("sysv-sem:{sem}"),
        "--only".to_owned(),
        format!("sysv-msg:{msg}"),
        "--only".to_owned(),
        format!("sysv-msg:{used}"),
    ];
    let only: Vec<&str> = only.iter().map(String::as_str).collect();

    assert!(
        gc_json(&only).is_empty(),
        "just created: younger than the default 10m"
    );
    let found = gc_json(&[&["--older-than", "0s"], &only[..]].concat());
    let kinds: Vec<(&str, i64)> = found
        .iter()
        .map(|o| (o["kind"].as_str().unwrap(), o["id"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("sysv-sem", i64::from(sem)), ("sysv-msg", i64::from(msg))],
        "the queue this live process sent to is not an orphan"
    );
    assert!(found[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("no process has operated on it"));
    assert!(found[1]["reason"]
        .as_str()
        .unwrap()
        .starts_with("nothing was ever sent or received"));
}

#[test]
fn posix_shm_nobody_holds_is_an_orphan_and_one_a_live_child_holds_is_not() {
    if let Some(name) = child_role() {
        // The child: hold the object open until the parent closes our stdin.
        let _held = SharedMemory::open(&name).unwrap();
        println!("holding");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return;
    }
    let free = unique_name("gc-free");
    let held = unique_name("gc-held");
    let _cleanup = Defer(|| {
        let _ = SharedMemory::unlink(&free);
        let _ = SharedMemory::unlink(&held);
    });
    // Created and closed again: this process does not hold them.
    drop(SharedMemory::create_exclusive(&free, 100).unwrap());
    drop(SharedMemory::create_exclusive(&held, 100).unwrap());
    let mut child = Conversation::start(spawn_self(
        "posix_shm_nobody_holds_is_an_orphan_and_one_a_live_child_holds_is_not",
        &held,
    ));
    child.wait_for("holding");

    let only = [
        "--only".to_owned(),
        format!("posix-shm:{free}"),
        "--only".to_owned(),
        format!("posix-shm:{held}"),
    ];
    let only: Vec<&str> = only.iter().map(String::as_str).collect();
    assert!(
        gc_json(&only).is_empty(),
        "younger than the default 10m: not yet"
    );
    let found = gc_json(&[&["--older-than", "0s"], &only[..]].concat());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["kind"], "posix-shm");
    assert_eq!(found[0]["name"], free.as_str());
    assert!(found[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("no process maps it or holds it open; unchanged for "));

    let out_yes = ipckit(&[&["gc", "--yes", "--older-than", "0s"], &only[..]].concat());
    assert!(out_yes.status.success(), "{}", text(&out_yes.stderr));
    assert!(
        SharedMemory::open(&free).is_err(),
        "the free one is removed"
    );
    assert!(SharedMemory::open(&held).is_ok(), "the held one stays");

    // Once the child lets go, the other one is an orphan too.
    child.say("done");
    assert!(child.finish().success());
    let found = gc_json(&[&["--older-than", "0s"], &only[..]].concat());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["name"], held.as_str());
}

#[test]
fn bad_durations_and_filters_are_usage_errors() {
    for args in [
        &["gc", "--older-than", "10"][..],
        &["gc", "--older-than", "soon"],
        &["gc", "--only", "sysv-shm:x"],
        &["gc", "--only", "files:/x"],
    ] {
        let out = ipckit(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&out.stderr).lines().count(), 1, "{args:?}");
    }
}

/// `ipckit ARGS` run as the user nobody (the test runs as root).
fn ipckit_as_nobody(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipckit"));
    cmd.args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    spawn(&mut cmd)
        .and_then(std::process::Child::wait_with_output)
        .expect("run ipckit as nobody")
}

/// Where the queue `name` shows as a file, if /dev/mqueue is mounted.
fn mqueue_file(name: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new("/dev/mqueue").join(&name[1..]);
    path.exists().then_some(path)
}

#[test]
fn queue_another_user_cannot_read_is_listed_and_kept_with_a_warning() {
    if !is_root() {
        eprintln!("skipped: needs root to make a queue that the user nobody cannot read");
        return;
    }
    let name = unique_name("gc-unreadable");
    let _q = MessageQueue::options()
        .mode(0o600)
        .exclusive(true)
        .open(&name)
        .unwrap()
        .into_owned();
    if mqueue_file(&name).is_none() {
        eprintln!("skipped: /dev/mqueue is not mounted");
        return;
    }

    let out = ipckit_as_nobody(&["ls", "-Q", "--json"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "ls as nobody: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one warning line: {stderr}");
    assert!(stderr.contains("could not be read"), "{stderr}");
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let q = listed
        .iter()
        .find(|q| q["name"] == name.as_str())
        .expect("the queue is listed");
    assert_eq!(
        (&q["uid"], &q["perms"]),
        (&Value::from(0), &Value::from("0600"))
    );
    for field in ["messages", "maxmsg", "msgsize", "used_bytes", "notify_pid"] {
        assert_eq!(q[field], Value::Null, "{field}");
    }

    let out = ipckit_as_nobody(&["ls", "-Q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let row = text(&out.stdout)
        .lines()
        .find(|l| l.starts_with(&name))
        .map(str::to_owned)
        .expect("a row for the queue");
    assert!(row.contains("root"), "{row}");

    let only = format!("posix-mq:{name}");
    let out = ipckit_as_nobody(&["gc", "--older-than", "0s", "--json", "--only", &only]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "gc as nobody: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one warning line: {stderr}");
    let found: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(found.is_empty(), "an unreadable queue is kept: {found:?}");
}

#[test]
fn listing_a_queue_does_not_make_it_look_used() {
    let name = unique_name("gc-mq-age");
    drop(MessageQueue::create_exclusive(&name, ipckit::posix::mq::Attr::new(1, 8)).unwrap());
    let _cleanup = Defer(|| {
        let _ = MessageQueue::unlink(&name);
    });
    let Some(path) = mqueue_file(&name) else {
        eprintln!("skipped: /dev/mqueue is not mounted");
        return;
    };
    // Nothing sent or received for two days; the ctime this sets, and every read of the file
    // (any listing) sets, is now.
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    assert!(ipckit(&["ls", "-Q"]).status.success());

    let only = ["--only".to_owned(), format!("posix-mq:{name}")];
    let only: Vec<&str> = only.iter().map(String::as_str).collect();
    let found = gc_json(&[&["--older-than", "1d"], &only[..]].concat());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["name"], name.as_str());
    let reason = found[0]["reason"].as_str().unwrap();
    assert!(reason.contains("unchanged for 2d"), "{reason}");
    assert!(gc_json(&[&["--older-than", "3d"], &only[..]].concat()).is_empty());
}

#[test]
fn segment_just_made_by_mk_is_not_an_orphan_within_older_than() {
    let out = ipckit(&["mk", "-M", "4K"]);
    let id: i32 = text(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Shared memory id: ")?.parse().ok())
        .unwrap_or_else(|| panic!("mk printed an id: {}", text(&out.stderr)));
    let _segment = Segment::from_id(id).into_owned();
    assert!(out.status.success());
    let only = only_shm(&[id]);
    let only: Vec<&str> = only.iter().map(String::as_str).collect();

    assert!(
        gc_json(&[&["--older-than", "1d"], &only[..]].concat()).is_empty(),
        "made a moment ago: its creator has exited, but it is younger than 1d"
    );
    let found = gc_json(&[&["--older-than", "0s"], &only[..]].concat());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("never attached; its creator (pid "));
}

#[test]
fn segment_of_a_killed_unreaped_creator_is_an_orphan() {
    const TEST: &str = "segment_of_a_killed_unreaped_creator_is_an_orphan";
    if child_role().is_some() {
        // The child: make a segment, say its id, and wait to be killed.
        let id = Segment::create(Key::PRIVATE, 4096).unwrap().id();
        println!("id={id}");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return;
    }
    let mut cmd = spawn_self(TEST, "zombie");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    // Killed and reaped when dropped, whatever happens.
    let mut kid = Kid(spawn(&mut cmd).unwrap());
    let stdout = kid.0.stdout.take().unwrap();
    let id: i32 = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("id=").and_then(|n| n.trim().parse().ok()))
        .expect("child printed its id");
    let _segment = Segment::from_id(id).into_owned();
    let only = only_shm(&[id]);
    let only: Vec<&str> = only.iter().map(String::as_str).collect();
    let only = [&["--older-than", "0s"][..], &only].concat();
    assert!(gc_json(&only).is_empty(), "its creator is alive");

    // SIGKILL, then wait until it has died without collecting its status: a zombie.
    kid.0.kill().unwrap();
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: `info` is valid for writes of a siginfo_t; WNOWAIT leaves the child unreaped.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            kid.0.id(),
            info.as_mut_ptr(),
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(r, 0, "waitid: {}", std::io::Error::last_os_error());
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", kid.0.id())).unwrap();
    assert!(stat.contains(") Z "), "a zombie: {stat}");

    let found = gc_json(&only);
    assert_eq!(found.len(), 1, "a zombie creator counts as dead: {found:?}");
    assert_eq!(found[0]["id"], id);
    drop(kid);
}

#[test]
fn a_dump_does_not_make_a_segment_whose_last_user_lives_an_orphan() {
    const TEST: &str = "a_dump_does_not_make_a_segment_whose_last_user_lives_an_orphan";
    if let Some(role) = child_role() {
        if role == "shm" {
            return create_and_exit(&role);
        }
        // The last user: attach, detach, and stay alive until told.
        let segment = Segment::from_id(role.parse().unwrap());
        drop(segment.attach().unwrap());
        println!("detached");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return;
    }
    let id = id_from_child(TEST, "shm");
    let _segment = Segment::from_id(id).into_owned();
    let _records = Defer(|| ipckit::inspect::forget_shm_reads(id));
    let mut user = Conversation::start(spawn_self(TEST, &id.to_string()));
    user.wait_for("detached");
    let only = only_shm(&[id]);
    let only: Vec<&str> = only.iter().map(String::as_str).collect();
    let only = [&["--older-than", "0s"][..], &only].concat();
    assert!(gc_json(&only).is_empty(), "its last user is alive");

    let out = ipckit(&["dump", "-m", &id.to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    assert_ne!(
        Segment::from_id(id).stat().unwrap().lpid,
        user.pid(),
        "the dump is the last user now"
    );
    assert!(
        gc_json(&only).is_empty(),
        "the dump, which has exited, is not taken for the last user"
    );

    user.say("done");
    assert!(user.finish().success());
    let found = gc_json(&only);
    assert_eq!(found.len(), 1, "once the real last user is gone: {found:?}");
    let reason = found[0]["reason"].as_str().unwrap();
    assert!(reason.contains("was `ipckit dump`"), "{reason}");
}
