//! `ipckit dump -m ID` shows a segment's bytes exactly as `hexdump -C` shows the same bytes in a
//! file, selects ranges with --offset/--len, writes the bytes themselves with --raw, and ends
//! quietly when its reader goes away.

use std::io::Read;
use std::process::{Command, Output, Stdio};

use ipckit::sysv::shm::{OwnedSegment, Segment};
use ipckit::Key;
use ipckit_testkit::{run, text, unique_path, Defer};

fn ipckit(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_ipckit"), args)
}

/// A private segment holding `bytes` (its size is their length), removed when dropped.
fn segment_with(bytes: &[u8]) -> OwnedSegment {
    let shm = Segment::options()
        .size(bytes.len())
        .create(true)
        .exclusive(true)
        .open(Key::PRIVATE)
        .expect("create segment")
        .into_owned();
    let map = shm.attach().expect("attach");
    map.write_at(0, bytes).expect("write");
    shm
}

/// Bytes with every feature of the layout: a run of identical lines, printable text, all byte
/// values, and a last line that is not full.
fn pattern() -> Vec<u8> {
    let mut bytes = vec![0u8; 64];
    bytes.extend(b"The quick brown fox jumps over the lazy dog. ".repeat(3));
    bytes.extend((0..=255u8).rev());
    bytes.extend([0xab; 40]);
    bytes.extend(b"end");
    bytes
}

/// `ipckit dump ARGS` for a segment, asserting success; its stdout.
fn dump(shm: &OwnedSegment, extra: &[&str]) -> Vec<u8> {
    let id = shm.id().to_string();
    let out = ipckit(&[&["dump", "-m", &id], extra].concat());
    // What the dump recorded for `gc` goes with the test's segment.
    ipckit::inspect::forget_shm_reads(shm.id());
    assert!(
        out.status.success(),
        "dump {extra:?} failed: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stderr), "");
    out.stdout
}

/// `hexdump -C ARGS` of a file holding `bytes`, or None when hexdump is not installed.
fn hexdump_c(bytes: &[u8], extra: &[&str]) -> Option<Vec<u8>> {
    let installed = Command::new("which")
        .arg("hexdump")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("skipped the hexdump comparison: not installed (apt-get install bsdextrautils)");
        return None;
    }
    let path = unique_path("dump");
    let _cleanup = Defer(|| {
        let _ = std::fs::remove_file(&path);
    });
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("hexdump")
        .arg("-C")
        .args(extra)
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "hexdump: {}", text(&out.stderr));
    Some(out.stdout)
}

#[test]
fn dump_shows_a_small_segment_in_hexdump_c_layout() {
    let mut bytes = b"ipckit dump\n".to_vec();
    bytes.extend([0u8; 36]);
    bytes.extend(b"\x01\x7f~");
    let shm = segment_with(&bytes);
    assert_eq!(
        text(&dump(&shm, &[])),
        "00000000  69 70 63 6b 69 74 20 64  75 6d 70 0a 00 00 00 00  |ipckit dump.....|\n\
         00000010  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n\
         *\n\
         00000030  01 7f 7e                                          |..~|\n\
         00000033\n"
    );
}

#[test]
fn dump_matches_hexdump_c_of_the_same_bytes() {
    let bytes = pattern();
    let shm = segment_with(&bytes);
    let ours = dump(&shm, &[]);
    if let Some(theirs) = hexdump_c(&bytes, &[]) {
        assert_eq!(text(&ours), text(&theirs));
    }
}

#[test]
fn offset_and_len_select_a_range_numbered_from_the_segment_start() {
    let bytes = pattern();
    let shm = segment_with(&bytes);
    assert_eq!(
        text(&dump(&shm, &["--offset", "0x40", "--len", "9"])),
        "00000040  54 68 65 20 71 75 69 63  6b                       |The quick|\n\
         00000049\n"
    );
    for (offset, len) in [("5", "30"), ("0", "64"), ("1", "200"), ("300", "120")] {
        let ours = dump(&shm, &["--offset", offset, "--len", len]);
        if let Some(theirs) = hexdump_c(&bytes, &["-s", offset, "-n", len]) {
            assert_eq!(text(&ours), text(&theirs), "--offset {offset} --len {len}");
        }
    }
    // Without --len, up to the end.
    let ours = dump(&shm, &["--offset", "100"]);
    if let Some(theirs) = hexdump_c(&bytes, &["-s", "100"]) {
        assert_eq!(text(&ours), text(&theirs), "--offset 100");
    }
}

#[test]
fn an_empty_range_prints_nothing_but_the_end_offset_without_len() {
    let shm = segment_with(b"abc");
    assert_eq!(text(&dump(&shm, &["--offset", "3"])), "00000003\n");
    assert_eq!(dump(&shm, &["--offset", "1", "--len", "0"]), b"");
}

#[test]
fn raw_writes_the_exact_bytes() {
    let bytes = pattern();
    let shm = segment_with(&bytes);
    assert_eq!(dump(&shm, &["--raw"]), bytes);
    assert_eq!(
        dump(&shm, &["--raw", "--offset", "70", "--len", "300"]),
        &bytes[70..370]
    );
}

#[test]
fn a_reader_that_closes_the_pipe_early_ends_the_dump_quietly() {
    // 1 MiB of varied bytes is about 4 MiB of dump, far more than a pipe holds.
    let bytes: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 / 3) as u8).collect();
    let shm = segment_with(&bytes);
    for raw in [false, true] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ipckit"))
            .args(["dump", "-m", &shm.id().to_string()])
            .args(raw.then_some("--raw"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ipckit");
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 100];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        assert_eq!(text(&out.stderr), "", "raw: {raw}");
        assert!(out.status.success(), "raw: {raw}: {:?}", out.status);
    }
}

#[test]
fn offset_at_the_end_prints_the_end_offset_as_hexdump_does() {
    let shm = segment_with(&[7u8; 4096]);
    assert_eq!(text(&dump(&shm, &["--offset", "4096"])), "00001000\n");
    if let Some(expected) = hexdump_c(&[7u8; 4096], &["-s", "4096"]) {
        assert_eq!(text(&expected), "00001000\n");
    }
    assert_eq!(
        dump(&shm, &["--offset", "4096", "--len", "0"]),
        b"",
        "as -n 0"
    );
}
