//! Pipes and FIFOs: end of file and blocking reads, EPIPE without SIGPIPE, atomic PIPE_BUF writes
//! from several processes, capacity and its limit, non-blocking mode, ends as a child's stdio, and
//! FIFOs — creation that refuses links and other files, the blocking rules of open, ENXIO,
//! timed opens, removal — and the `pipe_ls_wc` example.
//!
//! "Blocks" is shown without timing: a thread makes the call, and the test waits until
//! /proc/self/task/<tid>/syscall says the thread sits in that system call, then checks that the
//! call has not returned. FIFOs live under unique temporary paths removed by `Defer` guards.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::thread;
use std::time::Duration;

use ipckit::pipe::{self, max_capacity, pipe, Fifo, PipeReader, PipeWriter, PIPE_BUF};
use ipckit::signal::{self, Disposition, Signal};
use ipckit::Error;
use ipckit_testkit::task::{process_in_syscall, task_in_syscall};
use ipckit_testkit::{child_role, example_bin, spawn_self, unique_path, wait_until, Defer, Kid};

/// Carries a FIFO path to a re-executed test process.
const PATH_VAR: &str = "IPCKIT_TEST_FIFO";
/// Carries a writer's tag to a re-executed test process.
const TAG_VAR: &str = "IPCKIT_TEST_TAG";

/// The calling thread's id, as /proc/self/task names it.
fn tid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// Waits until thread `tid` of this process sits in one of the system calls `nrs` (so it is
/// blocked there).
fn wait_until_in_syscall(tid: i32, nrs: &[libc::c_long]) {
    let task = PathBuf::from(format!("/proc/self/task/{tid}"));
    wait_until(
        &format!("{} to enter syscall {nrs:?}", task.display()),
        || task_in_syscall(&task, nrs),
    );
}

/// The system calls that open a file.
const OPEN: &[libc::c_long] = &[libc::SYS_open, libc::SYS_openat];

/// The system calls that sleep.
const SLEEP: &[libc::c_long] = &[libc::SYS_clock_nanosleep, libc::SYS_nanosleep];

/// Runs `f` on a thread; returns the thread's id and a receiver for its result.
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> (i32, Receiver<T>) {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        tid_tx.send(tid()).unwrap();
        let _ = tx.send(f());
    });
    (tid_rx.recv().unwrap(), rx)
}

/// A unique FIFO path, removed (whatever is there) when the guard drops.
fn fifo_path(what: &str) -> (PathBuf, Defer<impl FnMut()>) {
    let path = unique_path(what);
    let cleanup = path.clone();
    (
        path,
        Defer(move || {
            let _ = std::fs::remove_file(&cleanup);
        }),
    )
}

fn is_fifo(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

// ---------------------------------------------------------------------------------------------
// Anonymous pipes
// ---------------------------------------------------------------------------------------------

#[test]
fn bytes_come_out_in_the_order_they_went_in() {
    let (mut r, mut w) = pipe().unwrap();
    w.write_all(b"first ").unwrap();
    w.write_all(b"second").unwrap();
    drop(w);
    let mut got = String::new();
    r.read_to_string(&mut got).unwrap();
    assert_eq!(got, "first second");
}

#[test]
fn read_returns_eof_once_all_writers_closed() {
    let (mut r, w) = pipe().unwrap();
    let clone = w.try_clone().unwrap();
    (&w).write_all(b"abc").unwrap();
    drop(w);

    // One write end (the clone) is still open: after the data, read blocks instead of EOF.
    let mut buf = [0u8; 8];
    assert_eq!(r.read(&mut buf).unwrap(), 3);
    let (reader_tid, result) = on_thread(move || {
        let mut buf = [0u8; 8];
        r.read(&mut buf).map(|n| (n, r))
    });
    wait_until_in_syscall(reader_tid, &[libc::SYS_read]);
    assert_eq!(result.try_recv().unwrap_err(), TryRecvError::Empty);

    drop(clone); // the last write end
    let (n, mut r) = result.recv().unwrap().unwrap();
    assert_eq!(n, 0, "end of file once every writer is closed");
    assert_eq!(r.read(&mut buf).unwrap(), 0, "and it stays at end of file");
}

#[test]
fn read_blocks_while_a_writer_is_open_and_wakes_on_data() {
    let (r, mut w) = pipe().unwrap();
    let (reader_tid, result) = on_thread(move || {
        let mut buf = [0u8; 16];
        (&r).read(&mut buf).map(|n| buf[..n].to_vec())
    });
    wait_until_in_syscall(reader_tid, &[libc::SYS_read]);
    assert_eq!(result.try_recv().unwrap_err(), TryRecvError::Empty);
    w.write_all(b"wake").unwrap();
    assert_eq!(result.recv().unwrap().unwrap(), b"wake");
}

#[test]
fn write_without_reader_is_broken_pipe_and_does_not_raise_sigpipe() {
    if child_role().as_deref() == Some("epipe") {
        // Rust starts programs with SIGPIPE ignored; a C host or a shell would not.
        signal::set_disposition(Signal::PIPE, Disposition::Default).unwrap();
        assert_eq!(
            signal::disposition(Signal::PIPE).unwrap(),
            Disposition::Default
        );
        let (r, mut w) = pipe().unwrap();
        drop(r);
        let err = w.write(b"nobody reads this").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        let err = w.write_atomic(b"nor this").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
        assert!(!signal::pending().unwrap().contains(Signal::PIPE));
        assert!(
            !signal::mask().unwrap().contains(Signal::PIPE),
            "the mask is restored"
        );

        // A caller that blocks SIGPIPE itself keeps it blocked, and the write's SIGPIPE is taken.
        signal::block(&[Signal::PIPE].into()).unwrap();
        w.write(b"x").unwrap_err();
        assert!(!signal::pending().unwrap().contains(Signal::PIPE));
        assert!(signal::mask().unwrap().contains(Signal::PIPE));
        // A SIGPIPE that was pending before the write is someone else's: it is left pending.
        signal::raise(Signal::PIPE).unwrap();
        w.write(b"x").unwrap_err();
        assert!(signal::pending().unwrap().contains(Signal::PIPE));
        println!("ROLE: survived EPIPE");
        return;
    }
    let out = spawn_self(
        "write_without_reader_is_broken_pipe_and_does_not_raise_sigpipe",
        "epipe",
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ROLE: survived EPIPE"),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn plain_write_without_reader_is_killed_by_sigpipe() {
    // The premise of the test above: with SIGPIPE at its default, a raw write(2) kills.
    if child_role().as_deref() == Some("raw-epipe") {
        signal::set_disposition(Signal::PIPE, Disposition::Default).unwrap();
        let (r, w) = pipe().unwrap();
        drop(r);
        let mut file = std::fs::File::from(OwnedFd::from(w));
        let _ = file.write(b"x");
        println!("ROLE: still alive");
        return;
    }
    let out = spawn_self(
        "plain_write_without_reader_is_killed_by_sigpipe",
        "raw-epipe",
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

const RECORDS_PER_WRITER: u32 = 200;
const WRITERS: u8 = 4;

/// A PIPE_BUF-sized record: the writer's tag, the record's number, then the tag again to the end.
fn record(tag: u8, seq: u32) -> Vec<u8> {
    let mut rec = vec![tag; PIPE_BUF];
    rec[1..5].copy_from_slice(&seq.to_le_bytes());
    rec
}

#[test]
fn writes_of_pipe_buf_bytes_are_never_interleaved_between_processes() {
    if child_role().as_deref() == Some("record-writer") {
        let tag: u8 = std::env::var(TAG_VAR).unwrap().parse().unwrap();
        // The pipe is this process's stderr (libtest writes nothing there when the test passes).
        let out = PipeWriter::from(std::io::stderr().as_fd().try_clone_to_owned().unwrap());
        for seq in 0..RECORDS_PER_WRITER {
            out.write_atomic(&record(tag, seq)).unwrap();
        }
        return;
    }
    let (mut r, w) = pipe().unwrap();
    let mut children = Vec::new();
    for i in 0..WRITERS {
        let tag = b'A' + i;
        children.push(
            spawn_self(
                "writes_of_pipe_buf_bytes_are_never_interleaved_between_processes",
                "record-writer",
            )
            .env(TAG_VAR, tag.to_string())
            .stdout(Stdio::null())
            .stderr(w.try_clone().unwrap())
            .spawn()
            .unwrap(),
        );
    }
    drop(w);

    let mut next = [0u32; WRITERS as usize];
    let mut chunk = vec![0u8; PIPE_BUF];
    loop {
        // Fill one PIPE_BUF chunk, or stop at end of file on a chunk boundary.
        let mut filled = 0;
        while filled < PIPE_BUF {
            let n = r.read(&mut chunk[filled..]).unwrap();
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        assert_eq!(filled, PIPE_BUF, "the stream ended inside a record");
        let tag = chunk[0];
        assert!(
            (b'A'..b'A' + WRITERS).contains(&tag),
            "unexpected bytes: {:?}",
            String::from_utf8_lossy(&chunk[..64])
        );
        let seq = u32::from_le_bytes(chunk[1..5].try_into().unwrap());
        let mixed = chunk[5..].iter().position(|&b| b != tag);
        assert_eq!(
            mixed, None,
            "record {seq} of writer {} is interleaved with another write",
            tag as char
        );
        let expected = &mut next[(tag - b'A') as usize];
        assert_eq!(seq, *expected, "writer {}'s records in order", tag as char);
        *expected += 1;
    }
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(next, [RECORDS_PER_WRITER; WRITERS as usize]);
}

#[test]
fn write_atomic_refuses_more_than_pipe_buf() {
    let (_r, w) = pipe().unwrap();
    let err = w.write_atomic(&vec![0u8; PIPE_BUF + 1]).unwrap_err();
    match &err {
        Error::TooLarge {
            len,
            limit,
            limit_name,
            ..
        } => {
            assert_eq!(
                (*len, *limit, *limit_name),
                (PIPE_BUF + 1, PIPE_BUF, "PIPE_BUF")
            );
        }
        other => panic!("expected TooLarge, got {other}"),
    }
    w.write_atomic(&vec![1u8; PIPE_BUF]).unwrap();
}

#[test]
fn capacity_is_what_fits_before_writes_would_block() {
    let page = rustix::param::page_size();
    let (r, w) = pipe().unwrap();
    let cap = w.set_capacity(2 * page).unwrap();
    assert!(cap >= 2 * page, "{cap}");
    assert_eq!(r.capacity().unwrap(), cap, "both ends see one pipe");

    w.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut total = 0;
    loop {
        match (&w).write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(total, cap);

    // The kernel refuses to shrink below the data in the pipe.
    let err = w.set_capacity(page).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");
    assert_eq!(err.op(), "F_SETPIPE_SZ");
    // A request is rounded up to whole pages.
    let (_r, w) = pipe().unwrap();
    assert_eq!(w.set_capacity(1).unwrap(), page);
}

#[test]
fn capacity_above_pipe_max_size_is_refused_naming_the_limit() {
    let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(max_capacity().unwrap(), max);
    let (r, _w) = pipe().unwrap();
    let before = r.capacity().unwrap();
    let err = r.set_capacity(max + 1).unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit, limit_name, .. }
            if limit == max && limit_name == pipe::PIPE_MAX_SIZE_PATH),
        "{err:?}"
    );
    assert!(err.to_string().contains("pipe-max-size"), "{err}");
    assert_eq!(r.capacity().unwrap(), before, "nothing changed");
    assert_eq!(r.set_capacity(max).unwrap(), max);
    assert_eq!(
        r.set_capacity(0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn nonblocking_mode_toggles_and_empty_reads_would_block() {
    let (mut r, mut w) = pipe().unwrap();
    assert!(!r.is_nonblocking().unwrap());
    r.set_nonblocking(true).unwrap();
    assert!(r.is_nonblocking().unwrap());
    assert_eq!(
        r.read(&mut [0u8; 4]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    w.write_all(b"ok").unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(r.read(&mut buf).unwrap(), 2);
    r.set_nonblocking(false).unwrap();
    assert!(!r.is_nonblocking().unwrap());
    assert!(!w.is_nonblocking().unwrap(), "the other end is separate");
}

#[test]
fn pipe_ends_become_a_childs_stdin_and_stdout() {
    let (to_child, mut into) = pipe().unwrap();
    let (mut from, from_child) = pipe().unwrap();
    // The Command is a temporary, dropped at the end of the statement with its copies of the ends.
    let mut child = Command::new("tr")
        .args(["a-z", "A-Z"])
        .stdin(to_child)
        .stdout(from_child)
        .spawn()
        .unwrap();
    into.write_all(b"through two pipes\n").unwrap();
    drop(into);
    let mut got = String::new();
    from.read_to_string(&mut got).unwrap(); // ends when tr exits: it held the last write end
    assert_eq!(got, "THROUGH TWO PIPES\n");
    assert!(child.wait().unwrap().success());
}

#[test]
fn descriptors_are_close_on_exec() {
    let (r, w) = pipe().unwrap();
    let clone = w.try_clone().unwrap();
    for fd in [r.as_fd(), w.as_fd(), clone.as_fd()] {
        let flags = rustix::io::fcntl_getfd(fd).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    }
    // A child given nothing explicitly holds no end of the pipe.
    let child = Kid(Command::new("sleep").arg("600").spawn().unwrap());
    let pid = child.0.id();
    // Once it sleeps, the loader and libc are done opening and closing files.
    wait_until("the child to sleep", || process_in_syscall(pid, SLEEP));
    let inode = rustix::fs::fstat(&r).unwrap().st_ino;
    let ours = format!("pipe:[{inode}]");
    let mut child_fds = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        child_fds.push(std::fs::read_link(entry.unwrap().path()).unwrap());
    }
    assert!(!child_fds.is_empty(), "the child has its stdio");
    assert!(
        child_fds
            .iter()
            .all(|target| target.to_str() != Some(ours.as_str())),
        "{child_fds:?} has {ours}"
    );
    drop((w, clone));
    assert_eq!((&r).read(&mut [0u8; 1]).unwrap(), 0);
    drop(child); // killed and reaped
}

#[test]
fn ends_convert_to_and_from_owned_fds() {
    let (r, w) = pipe().unwrap();
    let (r, mut w) = (
        PipeReader::from(OwnedFd::from(r)),
        PipeWriter::from(OwnedFd::from(w)),
    );
    w.write_all(b"round trip").unwrap();
    drop(w);
    let mut got = String::new();
    (&r).read_to_string(&mut got).unwrap();
    assert_eq!(got, "round trip");
}

// ---------------------------------------------------------------------------------------------
// FIFOs
// ---------------------------------------------------------------------------------------------

#[test]
fn fifo_create_makes_a_fifo_readable_and_writable_by_the_owner_only() {
    let (path, _guard) = fifo_path("fifo-mode");
    let fifo = Fifo::options().create(&path).unwrap();
    assert_eq!(fifo.path(), path);
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let (path, _guard) = fifo_path("fifo-mode-640");
    Fifo::create(&path, 0o640).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode & !0o640,
        0,
        "{mode:o}: only requested bits (minus the umask)"
    );
    assert_eq!(mode & 0o600, 0o600, "{mode:o}");

    let err = Fifo::create(unique_path("fifo-bad-mode"), 0o4700).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn fifo_create_accepts_an_existing_fifo_unless_exclusive() {
    let (path, _guard) = fifo_path("fifo-exists");
    Fifo::create(&path, 0o600).unwrap();
    Fifo::create(&path, 0o600).unwrap();
    let err = Fifo::options().exclusive(true).create(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(err.op(), "mkfifo");
}

#[test]
fn fifo_create_refuses_regular_files_and_symbolic_links() {
    let (file, _g1) = fifo_path("fifo-file");
    std::fs::write(&file, b"precious").unwrap();
    let err = Fifo::create(&file, 0o600).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("regular file"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"precious", "left alone");

    // A link to a FIFO is refused too: it is not followed.
    let (target, _g2) = fifo_path("fifo-target");
    Fifo::create(&target, 0o600).unwrap();
    let (link, _g3) = fifo_path("fifo-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = Fifo::create(&link, 0o600).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    // And so is a dangling link, where mkfifo through the link would create a file elsewhere.
    let (dangling, _g4) = fifo_path("fifo-dangling");
    let (nowhere, _g5) = fifo_path("fifo-nowhere");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    Fifo::create(&dangling, 0o600).unwrap_err();
    assert!(!nowhere.exists());
}

#[test]
fn opening_refuses_symbolic_links_and_files_that_are_not_fifos() {
    let (target, _g1) = fifo_path("open-target");
    Fifo::create(&target, 0o600).unwrap();
    let (link, _g2) = fifo_path("open-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = Fifo::new(&link).open_read_nonblocking().unwrap_err();
    assert!(
        err.to_string().contains("symbolic link") && err.to_string().contains("ELOOP"),
        "{err}"
    );

    let (file, _g3) = fifo_path("open-file");
    std::fs::write(&file, b"data").unwrap();
    let err = Fifo::new(&file).open_read().unwrap_err();
    assert!(err.to_string().contains("not a FIFO"), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn open_read_blocks_until_a_writer_opens() {
    let (path, _guard) = fifo_path("fifo-open-read");
    let fifo = Fifo::create(&path, 0o600).unwrap();
    let waiting = fifo.clone();
    let (reader_tid, result) = on_thread(move || waiting.open_read());
    wait_until_in_syscall(reader_tid, OPEN);
    assert_eq!(result.try_recv().unwrap_err(), TryRecvError::Empty);

    let mut w = fifo.open_write().unwrap(); // a reader is waiting, so this does not block
    let mut r = result.recv().unwrap().unwrap();
    w.write_all(b"met").unwrap();
    drop(w);
    let mut got = String::new();
    r.read_to_string(&mut got).unwrap();
    assert_eq!(got, "met");
}

#[test]
fn open_write_blocks_until_a_reader_opens() {
    let (path, _guard) = fifo_path("fifo-open-write");
    let fifo = Fifo::create(&path, 0o600).unwrap();
    let waiting = fifo.clone();
    let (writer_tid, result) = on_thread(move || waiting.open_write());
    wait_until_in_syscall(writer_tid, OPEN);
    assert_eq!(result.try_recv().unwrap_err(), TryRecvError::Empty);

    let _r = fifo.open_read().unwrap();
    let w = result.recv().unwrap().unwrap();
    assert!(!w.is_nonblocking().unwrap());
}

#[test]
fn open_read_nonblocking_succeeds_alone_and_reads_zero_until_a_writer_comes() {
    let (path, _guard) = fifo_path("fifo-read-nb");
    let fifo = Fifo::create(&path, 0o600).unwrap();
    let mut r = fifo.open_read_nonblocking().unwrap();
    assert!(r.is_nonblocking().unwrap());
    let mut buf = [0u8; 8];
    assert_eq!(r.read(&mut buf).unwrap(), 0, "no writer: 0, not 'finished'");

    let mut w = fifo.open_write_nonblocking().unwrap(); // a reader exists now
    assert_eq!(r.read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    w.write_all(b"hi").unwrap();
    assert_eq!(r.read(&mut buf).unwrap(), 2);
    assert_eq!(&buf[..2], b"hi");
}

#[test]
fn open_write_nonblocking_without_reader_explains_enxio() {
    let (path, _guard) = fifo_path("fifo-enxio");
    let fifo = Fifo::create(&path, 0o600).unwrap();
    let err = fifo.open_write_nonblocking().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("ENXIO") && text.contains("open for reading"),
        "{text}"
    );
    assert!(text.contains(path.to_str().unwrap()), "{text}");
}

#[test]
fn open_write_timeout_gives_up_without_reader() {
    let (path, _guard) = fifo_path("fifo-write-timeout");
    let fifo = Fifo::create(&path, 0o600).unwrap();
    let err = fifo
        .open_write_timeout(Duration::from_millis(30))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
}

#[test]
fn open_write_timeout_succeeds_when_a_reader_comes_later() {
    let (path, _guard) = fifo_path("fifo-write-late");
    let fifo = Fifo::create(&path, 0o600).unwrap();
    let waiting = fifo.clone();
    let (writer_tid, result) = on_thread(move || {
        let mut w = waiting.open_write_timeout(Duration::from_secs(600))?;
        assert!(!w.is_nonblocking()?, "the writer returned is blocking");
        w.write_all(b"late").unwrap();
        Ok::<(), ipckit::Error>(())
    });
    // The writer tried, found no reader and sleeps before the next try.
    wait_until_in_syscall(writer_tid, SLEEP);
    assert!(matches!(result.try_recv(), Err(TryRecvError::Empty)));

    let r = fifo.open_read_nonblocking().unwrap();
    result.recv().unwrap().unwrap();
    r.set_nonblocking(false).unwrap();
    let mut got = String::new();
    (&r).read_to_string(&mut got).unwrap();
    assert_eq!(got, "late");
}

#[test]
fn open_read_timeout_gives_up_without_writer() {
    let (path, _guard) = fifo_path("fifo-read-timeout");
    let fifo = Fifo::create(&path, 0o600).unwrap();
    let err = fifo
        .open_read_timeout(Duration::from_millis(30))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
}

#[test]
fn open_read_timeout_returns_a_blocking_reader_once_a_writer_writes() {
    let (path, _guard) = fifo_path("fifo-read-timed");
    let fifo = Fifo::create(&path, 0o600).unwrap();
    let writer = fifo.clone();
    let (_tid, done) = on_thread(move || {
        let mut w = writer.open_write().unwrap(); // blocks until the timed open below
        w.write_all(b"data").unwrap();
    });
    let mut r = fifo.open_read_timeout(Duration::from_secs(600)).unwrap();
    assert!(!r.is_nonblocking().unwrap());
    let mut got = String::new();
    r.read_to_string(&mut got).unwrap();
    assert_eq!(got, "data");
    done.recv().unwrap();
}

#[test]
fn unrelated_processes_meet_at_a_fifo() {
    if child_role().as_deref() == Some("fifo-writer") {
        let fifo = Fifo::new(std::env::var(PATH_VAR).unwrap());
        let mut w = fifo.open_write().unwrap();
        write!(w, "hello from {}", std::process::id()).unwrap();
        return;
    }
    let (path, _guard) = fifo_path("fifo-processes");
    let fifo = Fifo::create(&path, 0o600).unwrap();
    let mut child = spawn_self("unrelated_processes_meet_at_a_fifo", "fifo-writer")
        .env(PATH_VAR, &path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut r = fifo.open_read().unwrap();
    let mut got = String::new();
    r.read_to_string(&mut got).unwrap();
    assert_eq!(got, format!("hello from {}", child.id()));
    assert!(child.wait().unwrap().success());
}

#[test]
fn remove_unlinks_the_fifo_but_not_other_files() {
    let (path, _guard) = fifo_path("fifo-remove");
    let fifo = Fifo::create(&path, 0o600).unwrap();
    let r = fifo.open_read_nonblocking().unwrap();
    fifo.remove().unwrap();
    assert!(!path.exists());
    assert_eq!((&r).read(&mut [0u8; 1]).unwrap(), 0, "open ends live on");
    assert_eq!(fifo.remove().unwrap_err().kind(), ErrorKind::NotFound);

    std::fs::write(&path, b"not a fifo").unwrap();
    let err = Fifo::new(&path).remove().unwrap_err();
    assert!(err.to_string().contains("not a FIFO"), "{err}");
    assert!(path.exists());
}

#[test]
fn owned_fifo_is_removed_on_drop_unless_released() {
    let (path, _guard) = fifo_path("fifo-owned");
    let owned = Fifo::create(&path, 0o600).unwrap().into_owned();
    assert!(is_fifo(&path));
    drop(owned);
    assert!(!path.exists());

    let released = Fifo::create(&path, 0o600)
        .unwrap()
        .into_owned()
        .into_inner();
    assert!(is_fifo(released.path()));
    Fifo::new(&path).into_owned().remove().unwrap();
    assert!(!path.exists());
}

// ---------------------------------------------------------------------------------------------
// The example
// ---------------------------------------------------------------------------------------------

#[test]
fn example_pipe_ls_wc_agrees_with_read_dir() {
    let out = Command::new(example_bin("pipe_ls_wc")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 12 files and a name with a newline; the hidden file is not listed.
    assert!(stdout.contains("both count 14 lines"), "{stdout}");

    let dir = unique_path("ls-wc-dir");
    std::fs::create_dir(&dir).unwrap();
    let _guard = Defer(|| {
        let _ = std::fs::remove_dir_all(&dir);
    });
    for name in ["a", "b", "c", ".d"] {
        std::fs::write(dir.join(name), b"").unwrap();
    }
    let out = Command::new(example_bin("pipe_ls_wc"))
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("both count 3 lines"), "{stdout}");
}
