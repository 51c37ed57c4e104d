//! `ipckit ls` shows how many times each process has a System V segment attached: a process that
//! attaches a segment again and again without detaching (a leak `nattch` shows only as a sum)
//! appears in `--json` as `{"pid": P, "count": N}` and in the `-p` table as `P(xN)`.
//!
//! The segment is attached by a re-executed child, never by the test process (a process another
//! test starts would copy the test process's attachments until it execs), and owned by a handle
//! that removes it even when an assertion fails.

use std::process::Output;

use ipckit::sysv::shm::Segment;
use ipckit::Key;
use ipckit_testkit::{child_role, run, spawn_self, text, Conversation};
use serde_json::Value;

fn ipckit(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_ipckit"), args)
}

#[test]
fn a_pid_holding_a_segment_several_times_shows_its_count() {
    const TEST: &str = "a_pid_holding_a_segment_several_times_shows_its_count";
    if let Some(id) = child_role() {
        let segment = Segment::from_id(id.parse().unwrap());
        let _held: Vec<_> = (0..3).map(|_| segment.attach().unwrap()).collect();
        println!("attached");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return;
    }
    let segment = Segment::create(Key::PRIVATE, 4096).unwrap().into_owned();
    let id = segment.id();
    let mut child = Conversation::start(spawn_self(TEST, &id.to_string()));
    child.wait_for("attached");
    let pid = child.pid();

    let out = ipckit(&["ls", "-m", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let entry = listed
        .iter()
        .find(|s| s["id"] == id)
        .expect("the segment is listed");
    assert_eq!(entry["nattch"], 3);
    let attachments = entry["attachments"].as_array().expect("attachments");
    let of_child: Vec<&Value> = attachments.iter().filter(|a| a["pid"] == pid).collect();
    assert_eq!(of_child.len(), 1, "{attachments:?}");
    assert_eq!(of_child[0]["count"], 3, "{attachments:?}");
    assert!(entry["attached_pids"]
        .as_array()
        .unwrap()
        .contains(&Value::from(pid)));

    let out = ipckit(&["ls", "-m", "-p"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(&id.to_string()))
        .unwrap_or_else(|| panic!("a row for {id}: {table}"));
    assert!(row.contains(&format!("{pid}(x3)")), "{row}");

    child.say("done");
    assert!(child.finish().success());
}
