//! `ipckit ls` agrees with util-linux: for the objects a test creates, `ls --json` reports the key,
//! id, perms, size, attachments, semaphores, messages and bytes `ipcs` shows; `ls -l --json` holds
//! the numbers of /proc/sys/kernel and `ipcs -l`; the JSON has the documented types whatever the
//! view flags say; the tables show the objects.
//!
//! Every object is created exclusively under a unique key and owned by a handle that removes it on
//! drop, also when an assertion panics. Other processes create and remove objects meanwhile, so the
//! tests look only at their own objects.
//!
//! The segment is attached by a child process of its own, never by the test process: while another
//! test of this binary starts a program, the new process shares (`posix_spawn`, `vfork`) or copies
//! (`fork`) the test process's memory until it execs, and `ls` rightly lists it as attached to
//! every segment the test process has attached then.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use ipckit::sysv::msg::{MsgQueue, OwnedMsgQueue};
use ipckit::sysv::sem::{OwnedSemSet, SemSet};
use ipckit::sysv::shm::{Attachment, OwnedSegment, Segment};
use ipckit::Key;
use ipckit_testkit::{child_role, run, spawn_self, unique_key, Conversation};
use serde_json::{Map, Value};

fn ipckit(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_ipckit"), args)
}

/// `ipckit ARGS`, which must succeed; its stdout.
fn ipckit_ok(args: &[&str]) -> String {
    let out = ipckit(args);
    assert!(
        out.status.success(),
        "ipckit {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn json(args: &[&str]) -> Value {
    let text = ipckit_ok(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("ipckit {args:?}: {e}\n{text}"))
}

/// util-linux `ipcs ARGS` in the C locale; its stdout.
fn ipcs(args: &[&str]) -> String {
    let out = Command::new("ipcs")
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .expect("run ipcs (install util-linux)");
    assert!(out.status.success(), "ipcs {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The fields of the line of `ipcs ARGS` that starts with `key`.
fn ipcs_row(args: &[&str], key: Key) -> Vec<String> {
    let text = ipcs(args);
    let key = key.to_string();
    text.lines()
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .find(|f| f.first() == Some(&key))
        .unwrap_or_else(|| panic!("ipcs {args:?} has no line for {key}:\n{text}"))
}

/// The test that, re-executed by [`Holder::start`], attaches a segment and holds it.
const HOLDER_TEST: &str = "attachment_holder";

/// Run as a child by [`Holder::start`] (does nothing as a test of its own): attaches the segment
/// whose id is the role, says "attached", and holds the attachment until its stdin closes. It is
/// single-threaded and starts no process, so no other process ever shares its memory.
#[test]
fn attachment_holder() {
    let Some(id) = child_role() else { return };
    let attachment: Attachment = Segment::from_id(id.parse().unwrap()).attach().unwrap();
    println!("attached");
    let _ = std::io::stdin().read_line(&mut String::new());
    drop(attachment);
}

/// A child process holding the only attachment of a segment; killed and reaped on drop.
struct Holder {
    _child: Conversation,
    pid: u32,
}

impl Holder {
    /// Starts the child and returns once it has attached `shm`.
    fn start(shm: &OwnedSegment) -> Holder {
        let mut child = Conversation::start(spawn_self(HOLDER_TEST, &shm.id().to_string()));
        child.wait_for("attached");
        let pid = child.pid();
        Holder { _child: child, pid }
    }
}

/// One object of each System V kind, with state to show: a segment of 12345 bytes and mode 0640
/// attached by one child process ([`Holder`]), a set of 4 semaphores, a queue holding 2 messages of
/// 12 bytes.
struct Objects {
    shm_key: Key,
    shm: OwnedSegment,
    holder: Holder,
    sem_key: Key,
    sem: OwnedSemSet,
    msg_key: Key,
    msg: OwnedMsgQueue,
}

impl Objects {
    fn new() -> Objects {
        let shm_key = Key::new(unique_key());
        let shm = Segment::options()
            .size(12345)
            .mode(0o640)
            .exclusive(true)
            .open(shm_key)
            .unwrap()
            .into_owned();
        let holder = Holder::start(&shm);
        let sem_key = Key::new(unique_key());
        let sem = SemSet::create_exclusive(sem_key, 4).unwrap().into_owned();
        let msg_key = Key::new(unique_key());
        let msg = MsgQueue::create_exclusive(msg_key).unwrap().into_owned();
        msg.send(1, b"hello").unwrap();
        msg.send(2, b"goodbye").unwrap();
        Objects {
            shm_key,
            shm,
            holder,
            sem_key,
            sem,
            msg_key,
            msg,
        }
    }
}

/// The object of `kind` with `key` in a `ls --json` array.
fn entry<'a>(list: &'a Value, kind: &str, key: Key) -> &'a Map<String, Value> {
    let key = key.to_string();
    list.as_array()
        .expect("a JSON array")
        .iter()
        .filter_map(Value::as_object)
        .find(|o| o["kind"] == kind && o["key"] == key.as_str())
        .unwrap_or_else(|| panic!("no {kind} {key} in {list:#}"))
}

fn octal(s: &str) -> u32 {
    u32::from_str_radix(s, 8).unwrap_or_else(|_| panic!("{s:?} is not octal"))
}

fn n(o: &Map<String, Value>, field: &str) -> u64 {
    o[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not an unsigned number: {o:?}"))
}

#[test]
fn json_agrees_with_ipcs_on_our_objects() {
    let objs = Objects::new();
    let list = json(&["ls", "--json"]);

    let shm = entry(&list, "sysv-shm", objs.shm_key);
    let row = ipcs_row(&["-m"], objs.shm_key);
    // key shmid owner perms bytes nattch [status]
    assert_eq!(n(shm, "id"), row[1].parse::<u64>().unwrap());
    assert_eq!(n(shm, "id"), objs.shm.id() as u64);
    assert!(shm["owner"].as_str().unwrap().starts_with(&row[2]));
    assert_eq!(octal(shm["perms"].as_str().unwrap()), octal(&row[3]));
    assert_eq!(shm["perms"], "0640");
    assert_eq!(n(shm, "size"), row[4].parse::<u64>().unwrap());
    assert_eq!(n(shm, "size"), 12345);
    assert_eq!(n(shm, "nattch"), row[5].parse::<u64>().unwrap());
    assert_eq!(n(shm, "nattch"), 1);
    assert_eq!(n(shm, "cpid"), u64::from(std::process::id()));
    assert_eq!(n(shm, "lpid"), u64::from(objs.holder.pid));
    assert_eq!(shm["attached_pids"], serde_json::json!([objs.holder.pid]));

    let sem = entry(&list, "sysv-sem", objs.sem_key);
    let row = ipcs_row(&["-s"], objs.sem_key);
    // key semid owner perms nsems
    assert_eq!(n(sem, "id"), row[1].parse::<u64>().unwrap());
    assert_eq!(n(sem, "id"), objs.sem.id() as u64);
    assert_eq!(octal(sem["perms"].as_str().unwrap()), octal(&row[3]));
    assert_eq!(n(sem, "nsems"), row[4].parse::<u64>().unwrap());
    assert_eq!(n(sem, "nsems"), 4);

    let msg = entry(&list, "sysv-msg", objs.msg_key);
    let row = ipcs_row(&["-q"], objs.msg_key);
    // key msqid owner perms used-bytes messages
    assert_eq!(n(msg, "id"), row[1].parse::<u64>().unwrap());
    assert_eq!(n(msg, "id"), objs.msg.id() as u64);
    assert_eq!(octal(msg["perms"].as_str().unwrap()), octal(&row[3]));
    assert_eq!(n(msg, "used_bytes"), row[4].parse::<u64>().unwrap());
    assert_eq!(n(msg, "messages"), row[5].parse::<u64>().unwrap());
    assert_eq!((n(msg, "messages"), n(msg, "used_bytes")), (2, 12));
    assert_eq!(n(msg, "lspid"), u64::from(std::process::id()));
}

fn is_rfc3339_or_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => {
            s.len() >= 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' && s.ends_with('Z')
        }
        _ => false,
    }
}

fn is_u64_or_null(v: &Value) -> bool {
    v.is_null() || v.is_u64()
}

fn is_pid_array(o: &Map<String, Value>, name: &str) -> bool {
    o[name]
        .as_array()
        .is_some_and(|pids| pids.iter().all(Value::is_u64))
}

/// Checks every documented field of one `ls --json` object and its type. The listing holds every
/// object of the machine, POSIX ones included, whoever made them.
fn check_types(o: &Map<String, Value>) {
    let kind = o["kind"].as_str().expect("kind is a string");
    if kind.starts_with("sysv-") {
        let key = o["key"].as_str().expect("key is a string");
        assert!(
            key.len() == 10
                && key.starts_with("0x")
                && key[2..].bytes().all(|b| b.is_ascii_hexdigit()),
            "key {key:?}"
        );
        assert!(o["id"].is_i64(), "id {o:?}");
        for name in ["creator", "creator_group"] {
            assert!(o[name].is_string(), "{name} in {o:?}");
        }
        for name in ["cuid", "cgid"] {
            assert!(o[name].is_u64(), "{name} in {o:?}");
        }
    } else {
        let name = o["name"].as_str().expect("name is a string");
        assert!(name.starts_with('/'), "name {name:?}");
    }
    for name in ["owner", "group"] {
        assert!(o[name].is_string(), "{name} in {o:?}");
    }
    for name in ["uid", "gid"] {
        assert!(o[name].is_u64(), "{name} in {o:?}");
    }
    let perms = o["perms"].as_str().expect("perms is a string");
    assert!(
        perms.len() == 4 && perms.starts_with('0') && octal(perms) <= 0o777,
        "perms {perms:?}"
    );
    let (numbers, maybe_numbers, pid_lists, times): (&[&str], &[&str], &[&str], &[&str]) =
        match kind {
            "sysv-shm" => {
                assert!(o["dest"].is_boolean() && o["locked"].is_boolean(), "{o:?}");
                (
                    &["size", "nattch", "cpid", "lpid", "rss", "swap"],
                    &[],
                    &["attached_pids"],
                    &["atime", "dtime", "ctime"],
                )
            }
            "sysv-sem" => (&["nsems"], &[], &[], &["otime", "ctime"]),
            "sysv-msg" => (
                &["messages", "used_bytes", "lspid", "lrpid"],
                &[],
                &[],
                &["stime", "rtime", "ctime"],
            ),
            "posix-shm" => (
                &["size"],
                &[],
                &["attached_pids", "open_pids"],
                &["mtime", "ctime"],
            ),
            "posix-sem" => (
                &[],
                &["value"],
                &["attached_pids", "open_pids"],
                &["mtime", "ctime"],
            ),
            "posix-mq" => (
                &["used_bytes"],
                &["messages", "maxmsg", "msgsize", "notify_pid"],
                &["open_pids"],
                &["mtime", "ctime"],
            ),
            other => panic!("unknown kind {other:?}"),
        };
    for name in numbers {
        assert!(o[*name].is_u64(), "{name} in {o:?}");
    }
    for name in maybe_numbers {
        assert!(is_u64_or_null(&o[*name]), "{name} in {o:?}");
    }
    for name in pid_lists {
        assert!(is_pid_array(o, name), "{name} in {o:?}");
    }
    for name in times {
        assert!(is_rfc3339_or_null(&o[*name]), "{name} in {o:?}");
    }
}

#[test]
fn json_is_one_array_of_objects_with_the_documented_types() {
    let objs = Objects::new();
    let list = json(&["ls", "--json"]);
    let array = list.as_array().expect("one JSON array");
    assert!(array.len() >= 3);
    for o in array {
        check_types(o.as_object().expect("objects"));
    }
    // Our segment was attached and our queue written to: those times are set, never-done ones null.
    let shm = entry(&list, "sysv-shm", objs.shm_key);
    assert!(shm["atime"].is_string() && shm["ctime"].is_string());
    assert!(shm["dtime"].is_null());
    let sem = entry(&list, "sysv-sem", objs.sem_key);
    assert!(sem["otime"].is_null());
    let msg = entry(&list, "sysv-msg", objs.msg_key);
    assert!(msg["stime"].is_string() && msg["rtime"].is_null());
}

#[test]
fn view_flags_do_not_trim_json_and_kind_flags_select() {
    let objs = Objects::new();
    let fields = |args: &[&str]| -> BTreeSet<String> {
        entry(&json(args), "sysv-shm", objs.shm_key)
            .keys()
            .cloned()
            .collect()
    };
    let all = fields(&["ls", "--json"]);
    assert_eq!(fields(&["ls", "-t", "--json"]), all);
    assert_eq!(fields(&["ls", "-p", "-c", "--json"]), all);

    let kinds = |args: &[&str]| -> BTreeSet<String> {
        json(args)
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        kinds(&["ls", "-m", "--json"]),
        BTreeSet::from(["sysv-shm".into()])
    );
    assert_eq!(
        kinds(&["ls", "-s", "-q", "--json"]),
        BTreeSet::from(["sysv-sem".into(), "sysv-msg".into()])
    );
    // -a and no flag list every kind: ours, and POSIX objects if the machine has any now.
    let ours = BTreeSet::from(["sysv-shm".into(), "sysv-sem".into(), "sysv-msg".into()]);
    let documented: BTreeSet<String> = [
        "sysv-shm",
        "sysv-sem",
        "sysv-msg",
        "posix-shm",
        "posix-sem",
        "posix-mq",
    ]
    .map(String::from)
    .into();
    for args in [&["ls", "-a", "-m", "--json"][..], &["ls", "--json"]] {
        let listed = kinds(args);
        assert!(
            listed.is_superset(&ours) && listed.is_subset(&documented),
            "{args:?}: {listed:?}"
        );
    }
}

const LIMIT_NAMES: [&str; 13] = [
    "shmmax", "shmall", "shmmni", "semmsl", "semmns", "semopm", "semmni", "msgmax", "msgmnb",
    "msgmni", "shmmin", "semvmx", "mqueue",
];

fn proc_numbers(name: &str) -> Vec<u64> {
    std::fs::read_to_string(Path::new("/proc/sys/kernel").join(name))
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect()
}

/// The number after `label = ` in `ipcs -l`.
fn ipcs_limit(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(label)?
                .trim()
                .strip_prefix('=')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {label:?} in ipcs -l:\n{text}"))
}

#[test]
fn limits_json_holds_proc_values_and_agrees_with_ipcs() {
    let limits = json(&["ls", "-l", "--json"]);
    let o = limits.as_object().expect("a JSON object");
    let keys: BTreeSet<&str> = o.keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(LIMIT_NAMES));

    let sem = proc_numbers("sem");
    for (name, expected) in [
        ("shmmax", proc_numbers("shmmax")[0]),
        ("shmall", proc_numbers("shmall")[0]),
        ("shmmni", proc_numbers("shmmni")[0]),
        ("semmsl", sem[0]),
        ("semmns", sem[1]),
        ("semopm", sem[2]),
        ("semmni", sem[3]),
        ("msgmax", proc_numbers("msgmax")[0]),
        ("msgmnb", proc_numbers("msgmnb")[0]),
        ("msgmni", proc_numbers("msgmni")[0]),
    ] {
        assert_eq!(n(o, name), expected, "{name}");
    }

    let text = ipcs(&["-l"]);
    for (name, label) in [
        ("shmmni", "max number of segments"),
        ("semmni", "max number of arrays"),
        ("semmsl", "max semaphores per array"),
        ("semmns", "max semaphores system wide"),
        ("semopm", "max ops per semop call"),
        ("msgmni", "max queues system wide"),
        ("msgmax", "max size of message (bytes)"),
        ("msgmnb", "default max size of queue (bytes)"),
        ("shmmin", "min seg size (bytes)"),
        ("semvmx", "semaphore max value"),
    ] {
        assert_eq!(n(o, name), ipcs_limit(&text, label), "{name} vs {label:?}");
    }
    // The POSIX queue limits, from /proc/sys/fs/mqueue.
    let mqueue = o["mqueue"].as_object().expect("mqueue limits");
    for name in [
        "queues_max",
        "msg_max",
        "msgsize_max",
        "msg_default",
        "msgsize_default",
    ] {
        let file = Path::new("/proc/sys/fs/mqueue").join(name);
        let expected: u64 = std::fs::read_to_string(&file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(n(mqueue, name), expected, "{name}");
    }
    let table = ipckit_ok(&["ls", "-l"]);
    for name in [
        "shmmin",
        "semvmx",
        "queues_max",
        "msgsize_max",
        "msg_default",
    ] {
        assert!(
            table.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{table}"
        );
    }
    // ipcs shows shmmax in KiB, and shmall converted from pages to KiB, saturating near 2^64
    // (where the kernel's default lies) at the largest multiple of KiB-per-page.
    assert_eq!(
        n(o, "shmmax") / 1024,
        ipcs_limit(&text, "max seg size (kbytes)")
    );
    let kib_per_page = page_size() / 1024;
    let shmall_kib = n(o, "shmall")
        .checked_mul(kib_per_page)
        .unwrap_or(u64::MAX - u64::MAX % kib_per_page);
    assert_eq!(
        shmall_kib,
        ipcs_limit(&text, "max total shared memory (kbytes)")
    );
}

/// The page size, from `getconf` (this crate does not depend on libc or rustix).
fn page_size() -> u64 {
    let out = Command::new("getconf").arg("PAGESIZE").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn usage_json_counts_at_least_our_objects() {
    let _objs = Objects::new();
    let usage = json(&["ls", "-u", "--json"]);
    let o = usage.as_object().expect("a JSON object");
    let keys: BTreeSet<&str> = o.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "shm_segments",
            "shm_pages_allocated",
            "shm_pages_resident",
            "shm_pages_swapped",
            "sem_arrays",
            "sem_semaphores",
            "msg_queues",
            "msg_messages",
            "msg_used_bytes",
        ])
    );
    assert!(n(o, "shm_segments") >= 1);
    // 12345 bytes take 4 pages of 4 KiB (fewer with bigger pages, never fewer than 1).
    assert!(n(o, "shm_pages_allocated") >= 12345_u64.div_ceil(page_size()));
    assert!(n(o, "sem_arrays") >= 1 && n(o, "sem_semaphores") >= 4);
    assert!(n(o, "msg_queues") >= 1 && n(o, "msg_messages") >= 2 && n(o, "msg_used_bytes") >= 12);
}

#[test]
fn tables_show_our_objects_under_each_view() {
    let objs = Objects::new();
    let keys = [objs.shm_key, objs.sem_key, objs.msg_key].map(|k| k.to_string());
    let row_of = |text: &str, key: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .find(|f| f.first().map(String::as_str) == Some(key))
            .unwrap_or_else(|| panic!("no line for {key} in:\n{text}"))
    };

    let plain = ipckit_ok(&["ls"]);
    for key in &keys {
        row_of(&plain, key);
    }
    let shm = row_of(&plain, &keys[0]);
    assert_eq!(shm[1], objs.shm.id().to_string());
    assert_eq!(&shm[3..6], ["640", "12345", "1"]);
    let msg = row_of(&plain, &keys[2]);
    assert_eq!(&msg[4..6], ["12", "2"]);

    let pids = ipckit_ok(&["ls", "-m", "-p"]);
    let holder = objs.holder.pid.to_string();
    let shm = row_of(&pids, &keys[0]);
    assert_eq!(shm.last(), Some(&holder), "attached pids column: {shm:?}");
    assert!(!pids.contains(&keys[1]), "-m lists segments only");

    let times = ipckit_ok(&["ls", "-t"]);
    assert!(times.contains("attached") && times.contains("last-op") && times.contains("send"));
    assert!(row_of(&times, &keys[1]).join(" ").contains("Not set"));

    let creator = ipckit_ok(&["ls", "-c", "-q"]);
    assert!(creator.contains("cuid") && creator.contains("cgid"));
    assert_eq!(row_of(&creator, &keys[2])[2], "600");

    let limits = ipckit_ok(&["ls", "-l", "-s"]);
    assert!(limits.contains("semmsl") && !limits.contains("shmmax"));
}

#[test]
fn limits_and_usage_together_are_a_usage_error() {
    let out = ipckit(&["ls", "-l", "-u"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
