//! POSIX names are file names, so they may hold a newline or bytes that are not UTF-8. `ls`
//! lists such objects (escaped in tables as lsipc does, losslessly in JSON), `gc` reports and
//! removes them, and `rm` takes their names as the shell passes them.
//!
//! The objects are made as their files, which is what `shm_open` makes, or by `mk`, and removed by
//! guards even when an assertion fails.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ipckit_testkit::{spawn, text, unique_name, Defer};
use serde_json::Value;

fn ipckit(args: &[&OsStr]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipckit"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    spawn(&mut cmd)
        .and_then(std::process::Child::wait_with_output)
        .expect("run ipckit")
}

/// A unique name `/ipckit-test-…` followed by `tail`.
fn odd_name(tail: &[u8]) -> OsString {
    let mut name = unique_name("odd").into_bytes();
    name.extend_from_slice(tail);
    OsString::from_vec(name)
}

/// Makes the shared-memory object `name` as its file in /dev/shm; the guard removes it.
fn make_shm(name: &OsStr) -> (PathBuf, Defer<impl FnMut()>) {
    let path = PathBuf::from("/dev/shm").join(OsStr::from_bytes(&name.as_bytes()[1..]));
    std::fs::write(&path, [0u8; 16]).unwrap();
    let p = path.clone();
    (
        path,
        Defer(move || {
            let _ = std::fs::remove_file(&p);
        }),
    )
}

#[test]
fn a_name_with_a_newline_and_bytes_not_utf8_is_listed_removed_by_gc_and_by_rm() {
    let name = odd_name(b"-\xff\nz");
    let (path, _guard) = make_shm(&name);
    // The UTF-8 part before the odd tail: /ipckit-test-odd-PID-N.
    let prefix = &String::from_utf8(name.as_bytes()[..name.len() - 4].to_vec()).unwrap();

    // The table: one row, the newline and the byte escaped.
    let out = ipckit(&[OsStr::new("ls"), OsStr::new("-M")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert!(
        rows[0].starts_with(&format!("{prefix}-\\xff\\x0az ")),
        "{}",
        rows[0]
    );

    // JSON: the name escaped, and every byte.
    let out = ipckit(&[OsStr::new("ls"), OsStr::new("-M"), OsStr::new("--json")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let entry = listed
        .iter()
        .find(|o| o["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .expect("listed in JSON");
    assert_eq!(entry["name"], format!("{prefix}-\\xff\nz"));
    let bytes: Vec<u8> = entry["name_bytes"]
        .as_array()
        .expect("name_bytes")
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(bytes, name.as_bytes());

    // gc, restricted to it by its bytes.
    let mut only = OsString::from("posix-shm:");
    only.push(&name);
    let gc = |yes: bool| {
        let mut args = vec![
            OsStr::new("gc"),
            OsStr::new("--older-than"),
            OsStr::new("0s"),
        ];
        args.extend([OsStr::new("--only"), only.as_os_str()]);
        if yes {
            args.push(OsStr::new("--yes"));
        }
        args.push(OsStr::new("--json"));
        let out = ipckit(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    };
    let found = gc(false);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["name_bytes"].as_array().unwrap().len(), name.len());
    let done = gc(true);
    assert_eq!(done[0]["action"], "removed", "{done:?}");
    assert!(!path.exists());

    // rm, by the bytes the shell passes.
    let (path, _guard2) = make_shm(&name);
    let out = ipckit(&[OsStr::new("rm"), OsStr::new("--posix-shmem"), &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!path.exists(), "rm removed it");
    let out = ipckit(&[OsStr::new("rm"), OsStr::new("--posix-shmem"), &name]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("\\xff\\x0az: no such object"), "{stderr}");
}

#[test]
fn a_bad_name_that_is_not_utf8_is_a_usage_error() {
    let out = ipckit(&[
        OsStr::new("rm"),
        OsStr::new("--posix-shmem"),
        OsStr::from_bytes(b"/a/\xff"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/a/\\xff"), "{stderr}");
}

#[test]
fn mk_creates_objects_under_a_name_that_is_not_utf8_and_rm_removes_them() {
    let name = odd_name(b"-\xfe");
    let file = OsStr::from_bytes(&name.as_bytes()[1..]);
    let shm = PathBuf::from("/dev/shm").join(file);
    let mut sem_file = OsString::from("sem.");
    sem_file.push(file);
    let sem = PathBuf::from("/dev/shm").join(sem_file);
    let queue = PathBuf::from("/dev/mqueue").join(file);
    let _guard = Defer(|| {
        for path in [&shm, &sem, &queue] {
            let _ = std::fs::remove_file(path);
        }
    });
    let out = ipckit(&[
        OsStr::new("mk"),
        OsStr::new("-m"),
        OsStr::new("4K"),
        OsStr::new("-s"),
        OsStr::new("-q"),
        OsStr::new("-n"),
        &name,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let shown = format!("{}-\\xfe", unique_prefix(&name));
    assert_eq!(stdout.matches(&shown).count(), 3, "{stdout}");
    assert_eq!(std::fs::metadata(&shm).unwrap().len(), 4096);
    assert!(sem.exists());
    if PathBuf::from("/dev/mqueue").is_dir() {
        assert!(queue.exists(), "the queue's file");
    }
    for flag in ["--posix-shmem", "--posix-semaphore", "--posix-mqueue"] {
        let out = ipckit(&[OsStr::new("rm"), OsStr::new(flag), &name]);
        assert!(out.status.success(), "{flag}: {}", text(&out.stderr));
    }
    assert!(!shm.exists() && !sem.exists() && !queue.exists());
}

/// The UTF-8 part of a name made by [`odd_name`]: `/ipckit-test-odd-…`.
fn unique_prefix(name: &OsStr) -> String {
    let bytes = name.as_bytes();
    let end = bytes.iter().position(|&b| b >= 0x80).unwrap_or(bytes.len());
    String::from_utf8(bytes[..end - 1].to_vec()).unwrap()
}
