//! `ipckit ls` as util-linux's users expect it: `-i ID` shows one System V object in full, as
//! `ipcs -i` does (each semaphore's value, ncount, zcount and last pid; a queue's qbytes), and
//! lsipc's output control (`-o COLUMNS`, `--raw`, `--export`, `-n`, `--noheadings`, `-b`,
//! `--time-format`) prints lsipc's columns and sizes.
//!
//! Every object is created exclusively under a unique key and owned by a handle that removes it
//! on drop, also when an assertion panics. Where util-linux is installed, the values are compared
//! with what `ipcs`/`lsipc` print for the same object; without it those comparisons are skipped.

use std::process::{Command, Output};

use ipckit::sysv::msg::{MsgQueue, OwnedMsgQueue};
use ipckit::sysv::sem::{OwnedSemSet, SemOp, SemSet};
use ipckit::sysv::shm::{OwnedSegment, Segment};
use ipckit::Key;
use ipckit_testkit::{run, text, unique_key, wait_until};
use serde_json::Value;

fn ipckit(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_ipckit"), args)
}

/// `ipckit ARGS`, which must succeed without a word on stderr; its stdout.
fn ipckit_ok(args: &[&str]) -> String {
    let out = ipckit(args);
    assert!(
        out.status.success(),
        "ipckit {args:?} failed: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stderr), "", "ipckit {args:?} wrote to stderr");
    text(&out.stdout)
}

/// `ipckit ARGS`, which must fail with `status` and one line on stderr; that line.
fn ipckit_err(status: i32, args: &[&str]) -> String {
    let out = ipckit(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(status), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
    assert!(stderr.starts_with("ipckit: "), "{stderr}");
    stderr
}

/// The output of a util-linux tool, or `None` where it is not installed.
fn util_linux(tool: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(tool).args(args).output().ok()?;
    out.status.success().then(|| text(&out.stdout))
}

fn new_sem(nsems: usize) -> OwnedSemSet {
    SemSet::options()
        .nsems(nsems)
        .create(true)
        .exclusive(true)
        .open(Key::new(unique_key()))
        .expect("create set")
        .into_owned()
}

fn new_msg() -> OwnedMsgQueue {
    MsgQueue::options()
        .create(true)
        .exclusive(true)
        .open(Key::new(unique_key()))
        .expect("create queue")
        .into_owned()
}

fn new_shm(size: usize) -> OwnedSegment {
    Segment::options()
        .size(size)
        .mode(0o640)
        .create(true)
        .exclusive(true)
        .open(Key::new(unique_key()))
        .expect("create segment")
        .into_owned()
}

/// The rows of the semaphore table of `ls -s -i` (or `ipcs -s -i`): the lines of five numbers.
fn semaphore_rows(text: &str) -> Vec<[u64; 5]> {
    text.lines()
        .filter_map(|line| {
            let numbers: Vec<u64> = line
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            numbers.try_into().ok()
        })
        .collect()
}

#[test]
fn ls_i_shows_each_semaphore_with_its_waiters_and_last_pid_as_ipcs_does() {
    let set = new_sem(3);
    let id = set.id().to_string();
    let me = u64::from(std::process::id());
    set.set(0, 0).unwrap();
    set.set(1, 5).unwrap();
    set.set(2, 1).unwrap();
    // A thread waits for semaphore 0 to increase (ncount 1) and one for 2 to become zero
    // (zcount 1). Removing the set (on drop, also after a failed assertion) wakes them.
    let raw = SemSet::from_id(set.id());
    std::thread::spawn(move || raw.op(&[SemOp::wait(0)]));
    std::thread::spawn(move || raw.op(&[SemOp::wait_zero(2)]));
    wait_until("the two waiters", || {
        raw.ncnt(0).unwrap_or(0) == 1 && raw.zcnt(2).unwrap_or(0) == 1
    });

    let shown = ipckit_ok(&["ls", "-s", "-i", &id]);
    assert!(
        shown.starts_with(&format!("Semaphore set semid={id} key=")),
        "{shown}"
    );
    assert!(shown.contains("nsems=3\n"), "{shown}");
    let expected = [[0, 0, 1, 0, me], [1, 5, 0, 0, me], [2, 1, 0, 1, me]];
    assert_eq!(semaphore_rows(&shown), expected, "{shown}");
    if let Some(ipcs) = util_linux("ipcs", &["-s", "-i", &id]) {
        assert_eq!(semaphore_rows(&ipcs), expected, "ipcs says:\n{ipcs}");
    }

    // The JSON, of -i and of the whole listing, carries the same semaphores.
    let states = serde_json::json!([
        {"value": 0, "ncount": 1, "zcount": 0, "pid": me},
        {"value": 5, "ncount": 0, "zcount": 0, "pid": me},
        {"value": 1, "ncount": 0, "zcount": 1, "pid": me},
    ]);
    let one: Value = serde_json::from_str(&ipckit_ok(&["ls", "-s", "-i", &id, "--json"])).unwrap();
    assert_eq!(one.as_array().map(Vec::len), Some(1), "{one:#}");
    assert_eq!(one[0]["kind"], "sysv-sem");
    assert_eq!(one[0]["semaphores"], states, "{one:#}");
    let all: Value = serde_json::from_str(&ipckit_ok(&["ls", "-s", "--json"])).unwrap();
    let mine = all
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"].as_i64() == Some(i64::from(set.id())))
        .expect("our set is listed");
    assert_eq!(mine["semaphores"], states, "{mine:#}");
}

#[test]
fn ls_i_shows_a_queues_qbytes_and_every_field() {
    let q = new_msg();
    q.send(3, b"hello").unwrap();
    let id = q.id().to_string();
    let qbytes = q.stat().unwrap().qbytes;
    let shown = ipckit_ok(&["ls", "-q", "-i", &id]);
    assert!(
        shown.contains(&format!(
            "cbytes=5\tqbytes={qbytes}\tqnum=1\tlspid={}\tlrpid=0\n",
            std::process::id()
        )),
        "{shown}"
    );
    for field in [
        "uid=",
        "cuid=",
        "mode=0600",
        "send_time=",
        "rcv_time=",
        "change_time=",
    ] {
        assert!(shown.contains(field), "{field} missing from:\n{shown}");
    }
    if let Some(ipcs) = util_linux("ipcs", &["-q", "-i", &id]) {
        assert!(ipcs.contains(&format!("qbytes={qbytes}")), "{ipcs}");
    }
    let one: Value = serde_json::from_str(&ipckit_ok(&["ls", "-q", "-i", &id, "--json"])).unwrap();
    assert_eq!(one[0]["qbytes"], qbytes as u64, "{one:#}");
    assert_eq!(one[0]["messages"], 1);

    let shm = new_shm(100);
    let shown = ipckit_ok(&["ls", "-m", "-i", &shm.id().to_string()]);
    for field in [
        "bytes=100\t",
        "mode=0640",
        "access_perms=0640",
        &format!("cpid={}", std::process::id()),
        "nattch=0",
        "att_time=",
        "det_time=",
    ] {
        assert!(shown.contains(field), "{field} missing from:\n{shown}");
    }
}

#[test]
fn ls_i_needs_one_system_v_kind_and_an_existing_id() {
    for args in [
        &["ls", "-i", "1"][..],
        &["ls", "-m", "-q", "-i", "1"],
        &["ls", "-M", "-i", "1"],
        &["ls", "-a", "-i", "1"],
        &["ls", "-m", "-l", "-i", "1"],
        &["ls", "-m", "-i", "x"],
        &["ls", "-m", "-i", "1", "--raw"],
        &["ls", "-m", "-i", "1", "-o", "ID"],
    ] {
        ipckit_err(2, args);
    }
    let set = new_sem(1);
    let gone = set.id();
    drop(set);
    let line = ipckit_err(1, &["ls", "-s", "-i", &gone.to_string()]);
    assert!(
        line.contains(&format!("no System V semaphore set with id {gone}")),
        "{line}"
    );
}

/// The cells of our object's line in lsipc-style output whose first column is ID.
fn row_of(out: &str, id: i32) -> Vec<&str> {
    out.lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&id.to_string().as_str()))
        .unwrap_or_else(|| panic!("no row for {id} in:\n{out}"))
}

#[test]
fn output_columns_raw_and_sizes_are_lsipcs() {
    let shm = new_shm(1536);
    let id = shm.id();
    // (Not CGID: lsipc 2.38-2.41 prints the creator's uid under it.)
    let cols = "ID,KEY,SIZE,PERMS,NATTCH,CPID,OWNER,CUID,LPID";
    let raw = ipckit_ok(&["ls", "-m", "-o", cols, "--raw"]);
    assert_eq!(
        raw.lines().next(),
        Some("ID KEY SIZE PERMS NATTCH CPID OWNER CUID LPID")
    );
    let row = row_of(&raw, id);
    let key = shm.stat().unwrap().perm.key.to_string();
    let me = std::process::id().to_string();
    assert_eq!(
        row[..6],
        [id.to_string().as_str(), &key, "1.5K", "rw-r-----", "0", &me]
    );
    if let Some(lsipc) = util_linux("lsipc", &["-m", "-o", cols, "--raw"]) {
        assert_eq!(row, row_of(&lsipc, id), "lsipc says:\n{lsipc}");
    }
    // -b: bytes; -P: octal permissions; --noheadings: no header line.
    let bytes = ipckit_ok(&[
        "ls",
        "-m",
        "-o",
        "ID,SIZE,PERMS",
        "-r",
        "-b",
        "-P",
        "--noheadings",
    ]);
    assert!(!bytes.contains("SIZE"), "{bytes}");
    assert_eq!(
        row_of(&bytes, id),
        [id.to_string().as_str(), "1536", "0640"]
    );
    // +LIST adds to lsipc's default columns.
    let plus = ipckit_ok(&["ls", "-m", "-o", "+ATTACH", "-r"]);
    assert_eq!(
        plus.lines().next(),
        Some("KEY ID PERMS OWNER SIZE NATTCH STATUS CTIME CPID LPID COMMAND ATTACH")
    );
    // The aligned table has the same header.
    let table = ipckit_ok(&["ls", "-m", "-o", "ID,SIZE"]);
    let head: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(head, ["ID", "SIZE"]);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq([id.to_string().as_str(), "1.5K"])),
        "{table}"
    );

    // Column names and kinds are checked before anything is printed.
    for (args, complaint) in [
        (&["ls", "-m", "-o", "MSGS"][..], "does not apply"),
        (&["ls", "-M", "-o", "KEY"], "does not apply"),
        (&["ls", "-m", "-o", "BOGUS"], "unknown column"),
        (&["ls", "-o", "KEY"], "one kind at a time"),
        (&["ls", "-m", "-q", "--raw"], "one kind at a time"),
        (&["ls", "-m", "--raw", "--export"], "cannot be used with"),
        (&["ls", "-m", "--time-format", "long"], "invalid value"),
    ] {
        let line = ipckit_err(2, args);
        assert!(line.contains(complaint), "{args:?}: {line}");
    }
}

#[test]
fn export_and_newline_print_name_value_pairs_and_command_is_the_creators() {
    let shm = new_shm(4096);
    let id = shm.id().to_string();
    let export = ipckit_ok(&["ls", "-m", "-e", "-o", "ID,SIZE,STATUS,COMMAND"]);
    let line = export
        .lines()
        .find(|l| l.starts_with(&format!("ID=\"{id}\" ")))
        .unwrap_or_else(|| panic!("no line for {id}:\n{export}"));
    // This test process created the segment and still runs: COMMAND is its command line.
    let exe = std::env::args().next().unwrap();
    assert!(
        line.starts_with(&format!(
            "ID=\"{id}\" SIZE=\"4K\" STATUS=\"\" COMMAND=\"{exe}"
        )),
        "{line}"
    );
    let newline = ipckit_ok(&["ls", "-m", "-n", "-o", "ID,SIZE", "-b"]);
    let lines: Vec<&str> = newline.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("ID=\"{id}\""))
        .unwrap_or_else(|| panic!("no ID line for {id}:\n{newline}"));
    assert_eq!(lines[at + 1], "SIZE=\"4096\"");
}

#[test]
fn time_formats_are_lsipcs() {
    let set = new_sem(1);
    let id = set.id();
    let ctime = |format: &str| {
        let out = ipckit_ok(&[
            "ls",
            "-s",
            "-r",
            "-o",
            "ID,CTIME,OTIME",
            "--time-format",
            format,
        ]);
        let row = row_of(&out, id);
        (row[1].to_owned(), row[2].to_owned())
    };
    // Never operated on: OTIME is empty, as lsipc leaves it.
    let (iso, otime) = ctime("iso");
    assert_eq!(otime, "");
    // 2026-12-06T17:30:47+00:00
    assert_eq!(iso.len(), 25, "{iso}");
    assert_eq!(&iso[10..11], "T");
    // Created just now: short is HH:MM of today, unless midnight has passed since (then MonDD,
    // or YYYY-MonDD at new year).
    let (short, _) = ctime("short");
    let today = short.len() == 5 && &short[2..3] == ":";
    let since_midnight = short.len() == 5 || short.len() == 10;
    assert!(today || since_midnight, "{short} vs {iso}");
    let (full, _) = ctime("full");
    // Raw mode escapes the spaces of "Sun Dec  6 17:30:47 2026".
    assert!(full.contains("\\x20"), "{full}");
    if let Some(lsipc) = util_linux(
        "lsipc",
        &["-s", "-r", "-o", "ID,CTIME", "--time-format", "iso"],
    ) {
        assert_eq!(row_of(&lsipc, id)[1], iso, "lsipc says:\n{lsipc}");
    }
}
