//! Unix domain sockets: stream, datagram and seqpacket, socket files, descriptor passing, peer
//! credentials, SIGPIPE, and TCP on loopback for comparison.

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use ipckit::unix::{
    connect_stream, peer_credentials, recv_fds, send_fds, Addr, DatagramSocket, SeqpacketConn,
    SeqpacketListener, StreamListener, UnixStream, MAX_ADDR_LEN, SCM_MAX_FD,
};
use ipckit_testkit::{child_role, spawn_self, unique_name, unique_path};
use rustix::pipe::{pipe_with, PipeFlags};

/// Carries a socket address to a re-executed test process: a path, or `@name` for an abstract
/// name.
const ADDR_VAR: &str = "IPCKIT_TEST_UNIX_ADDR";

/// A fresh directory for socket files, removed with everything in it when dropped (also when a
/// test panics).
struct SocketDir(PathBuf);

impl SocketDir {
    fn new() -> SocketDir {
        let path = unique_path("unix");
        fs::create_dir(&path).unwrap();
        SocketDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn unique_abstract() -> Addr {
    Addr::abstract_name(unique_name("unix").trim_start_matches('/'))
}

fn addr_to_env(addr: &Addr) -> String {
    match addr {
        Addr::Path(p) => p.to_str().unwrap().to_string(),
        Addr::Abstract(name) => format!("@{}", std::str::from_utf8(name).unwrap()),
    }
}

fn addr_from_env() -> Addr {
    let s = std::env::var(ADDR_VAR).unwrap();
    match s.strip_prefix('@') {
        Some(name) => Addr::abstract_name(name),
        None => Addr::path(s),
    }
}

/// Accepts the child's connection without waiting forever if the child died first.
fn accept_from(listener: &StreamListener, child: &mut Child) -> UnixStream {
    listener.set_nonblocking(true).unwrap();
    loop {
        match listener.accept() {
            Ok(conn) => {
                conn.set_nonblocking(false).unwrap();
                return conn;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("the child exited before connecting: {status:?}");
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn finished(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "child: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The client half of the echo tests: says hello with its pid, expects it back in capitals.
fn echo_client() {
    let mut conn = connect_stream(&addr_from_env()).unwrap();
    let hello = format!("hello from {}\n", std::process::id());
    conn.write_all(hello.as_bytes()).unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, hello.to_uppercase());
}

/// The server half: accepts the child `test` started, reads to EOF, answers in capitals.
fn echo_server(test: &str, addr: &Addr) {
    let listener = StreamListener::bind(addr).unwrap();
    let mut child = spawn_self(test, "echo-client")
        .env(ADDR_VAR, addr_to_env(addr))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut conn = accept_from(&listener, &mut child);
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    assert_eq!(got, format!("hello from {}\n", child.id()));
    conn.write_all(got.to_uppercase().as_bytes()).unwrap();
    drop(conn);
    finished(child);
}

#[test]
fn stream_echo_between_processes_over_a_path_socket() {
    if child_role().as_deref() == Some("echo-client") {
        return echo_client();
    }
    let dir = SocketDir::new();
    let addr = Addr::path(dir.join("echo.sock"));
    echo_server("stream_echo_between_processes_over_a_path_socket", &addr);
}

#[test]
fn stream_echo_between_processes_over_an_abstract_address() {
    if child_role().as_deref() == Some("echo-client") {
        return echo_client();
    }
    let addr = unique_abstract();
    echo_server(
        "stream_echo_between_processes_over_an_abstract_address",
        &addr,
    );
}

#[test]
fn abstract_address_creates_no_file_and_is_free_again_once_closed() {
    let addr = unique_abstract();
    let listener = StreamListener::bind(&addr).unwrap();
    assert!(!listener.remove_on_drop(), "an abstract name has no file");
    let again = StreamListener::bind(&addr).unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AddrInUse, "{again}");
    drop(listener);
    StreamListener::bind(&addr).unwrap();
}

#[test]
fn seqpacket_preserves_message_boundaries() {
    let dir = SocketDir::new();
    let addr = Addr::path(dir.join("seq.sock"));
    let listener = SeqpacketListener::bind(&addr).unwrap();
    let client = SeqpacketConn::connect(&addr).unwrap();
    let server = listener.accept().unwrap();
    assert_eq!(client.peer_addr().unwrap(), Some(addr.clone()));

    let messages: [Vec<u8>; 3] = [vec![1], vec![2; 1000], vec![3; 7]];
    for m in &messages {
        client.send(m).unwrap();
    }
    let mut buf = [0u8; 4096];
    for m in &messages {
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(n, m.len());
        assert_eq!(&buf[..n], &m[..]);
    }
    // And back, over a socketpair too.
    let (a, b) = SeqpacketConn::pair().unwrap();
    a.send(b"ab").unwrap();
    a.send(b"cde").unwrap();
    assert_eq!(b.recv(&mut buf).unwrap(), 2);
    assert_eq!(b.recv(&mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"cde");
}

#[test]
fn seqpacket_recv_reports_a_message_longer_than_the_buffer() {
    let (a, b) = SeqpacketConn::pair().unwrap();
    a.send(&[7; 100]).unwrap();
    a.send(b"next").unwrap();
    assert_eq!(b.peek_len().unwrap(), 100, "peeking leaves it queued");
    let mut small = [0u8; 10];
    let e = b.recv(&mut small).unwrap_err();
    assert!(
        matches!(
            e,
            ipckit::Error::TooLarge {
                len: 100,
                limit: 10,
                ..
            }
        ),
        "{e}"
    );
    // The long message is gone; the next one is whole.
    let mut buf = [0u8; 64];
    assert_eq!(b.recv(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"next");
}

#[test]
fn seqpacket_recv_returns_zero_once_the_peer_closed() {
    let (a, b) = SeqpacketConn::pair().unwrap();
    a.send(b"last").unwrap();
    drop(a);
    let mut buf = [0u8; 16];
    assert_eq!(b.recv(&mut buf).unwrap(), 4);
    assert_eq!(b.recv(&mut buf).unwrap(), 0);
}

#[test]
fn datagram_preserves_message_boundaries() {
    let dir = SocketDir::new();
    let path = dir.join("dgram.sock");
    let receiver = DatagramSocket::bind(&Addr::path(&path)).unwrap();
    let sender = UnixDatagram::unbound().unwrap();
    let messages: [Vec<u8>; 3] = [vec![9; 300], vec![8], vec![7; 20]];
    for m in &messages {
        assert_eq!(sender.send_to(m, &path).unwrap(), m.len());
    }
    let mut buf = [0u8; 4096];
    for m in &messages {
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &m[..]);
    }
}

#[test]
fn datagram_socket_connects_to_an_abstract_address() {
    let addr = unique_abstract();
    let receiver = DatagramSocket::bind(&addr).unwrap();
    let sender = DatagramSocket::bind(&unique_abstract()).unwrap();
    sender.connect(&addr).unwrap();
    sender.send(b"to @name").unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = receiver.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"to @name");
    assert_eq!(Addr::from_std(&from).as_ref(), Some(sender.addr()));
}

/// A socket file whose socket is closed, as a crashed server leaves it.
fn stale_socket_at(path: &Path) {
    let mut listener = StreamListener::bind(&Addr::path(path)).unwrap();
    listener.set_remove_on_drop(false);
    drop(listener);
    assert!(fs::symlink_metadata(path).unwrap().file_type().is_socket());
}

#[test]
fn bind_fails_with_addr_in_use_on_a_stale_socket_file_naming_the_path() {
    let dir = SocketDir::new();
    let path = dir.join("stale.sock");
    stale_socket_at(&path);
    let e = StreamListener::bind(&Addr::path(&path)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    assert!(e.to_string().contains(path.to_str().unwrap()), "{e}");
    let e = SeqpacketListener::bind(&Addr::path(&path)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    let e = DatagramSocket::bind(&Addr::path(&path)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    // Connecting finds nobody there.
    let e = connect_stream(&Addr::path(&path)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
}

#[test]
fn bind_replacing_replaces_a_stale_socket_file() {
    let dir = SocketDir::new();
    let addr = Addr::path(dir.join("stale.sock"));
    for _ in 0..2 {
        stale_socket_at(addr.as_path().unwrap());
        let listener = StreamListener::bind_replacing(&addr).unwrap();
        let mut client = connect_stream(&addr).unwrap();
        let mut server = listener.accept().unwrap();
        client.write_all(b"new").unwrap();
        let mut buf = [0u8; 3];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"new");
    }
    stale_socket_at(addr.as_path().unwrap());
    SeqpacketListener::bind_replacing(&addr).unwrap();
    stale_socket_at(addr.as_path().unwrap());
    DatagramSocket::bind_replacing(&addr).unwrap();
}

#[test]
fn bind_replacing_refuses_to_remove_a_regular_file() {
    let dir = SocketDir::new();
    let path = dir.join("precious.txt");
    fs::write(&path, "keep me").unwrap();
    let e = StreamListener::bind_replacing(&Addr::path(&path)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    assert!(e.to_string().contains("regular file"), "{e}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "keep me");
    let e = DatagramSocket::bind_replacing(&Addr::path(&path)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "keep me");
}

#[test]
fn bind_replacing_does_not_follow_a_symlink_to_a_socket() {
    let dir = SocketDir::new();
    let target = dir.join("target.sock");
    let link = dir.join("link.sock");
    stale_socket_at(&target);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = StreamListener::bind_replacing(&Addr::path(&link)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
    assert!(fs::symlink_metadata(&target)
        .unwrap()
        .file_type()
        .is_socket());
}

#[test]
fn listener_removes_its_socket_file_on_drop() {
    let dir = SocketDir::new();
    let stream = dir.join("stream.sock");
    let seq = dir.join("seq.sock");
    let dgram = dir.join("dgram.sock");
    let a = StreamListener::bind(&Addr::path(&stream)).unwrap();
    let b = SeqpacketListener::bind(&Addr::path(&seq)).unwrap();
    let c = DatagramSocket::bind(&Addr::path(&dgram)).unwrap();
    for p in [&stream, &seq, &dgram] {
        assert!(fs::symlink_metadata(p).unwrap().file_type().is_socket());
    }
    drop((a, b, c));
    for p in [&stream, &seq, &dgram] {
        assert!(!p.exists(), "{} is still there", p.display());
    }
}

#[test]
fn listener_keeps_its_socket_file_when_told_to() {
    let dir = SocketDir::new();
    let path = dir.join("kept.sock");
    let mut listener = StreamListener::bind(&Addr::path(&path)).unwrap();
    assert!(listener.remove_on_drop());
    listener.set_remove_on_drop(false);
    drop(listener);
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());

    let path = dir.join("std.sock");
    let std_listener = StreamListener::bind(&Addr::path(&path)).unwrap().into_std();
    drop(std_listener);
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());
}

#[test]
fn listener_leaves_a_newer_socket_at_its_path_alone() {
    let dir = SocketDir::new();
    let addr = Addr::path(dir.join("taken-over.sock"));
    let old = StreamListener::bind(&addr).unwrap();
    let new = StreamListener::bind_replacing(&addr).unwrap();
    drop(old);
    // The file is the new listener's: it still answers there.
    let _client = connect_stream(&addr).unwrap();
    new.accept().unwrap();
    drop(new);
    assert!(!addr.as_path().unwrap().exists());
}

#[test]
fn listener_bound_to_a_relative_path_removes_its_file_on_drop() {
    let dir = SocketDir::new();
    let cwd = std::env::current_dir().unwrap();
    let rel = pathdiff(&dir.join("rel.sock"), &cwd);
    let listener = StreamListener::bind(&Addr::path(&rel)).unwrap();
    assert!(dir.join("rel.sock").exists());
    drop(listener);
    assert!(!dir.join("rel.sock").exists());
}

/// `path` relative to `base`, with `..` components (both absolute).
fn pathdiff(path: &Path, base: &Path) -> PathBuf {
    let mut rel = PathBuf::new();
    for _ in base.components().skip(1) {
        rel.push("..");
    }
    rel.push(path.strip_prefix("/").unwrap());
    rel
}

#[test]
fn addresses_are_checked_before_any_system_call() {
    let long = Addr::path("/tmp/".to_string() + &"x".repeat(MAX_ADDR_LEN));
    let e = StreamListener::bind(&long).unwrap_err();
    assert!(matches!(e, ipckit::Error::InvalidArgument { .. }), "{e:?}");
    assert!(e.to_string().contains("sun_path"), "{e}");
    let e = connect_stream(&Addr::abstract_name(vec![b'a'; MAX_ADDR_LEN + 1])).unwrap_err();
    assert!(matches!(e, ipckit::Error::InvalidArgument { .. }), "{e:?}");
    assert!(Addr::abstract_name(vec![b'a'; MAX_ADDR_LEN])
        .check("bind")
        .is_ok());
    assert!(Addr::path("").check("bind").is_err());
    assert!(Addr::path(std::ffi::OsStr::new("a\0b"))
        .check("bind")
        .is_err());
}

#[test]
fn addr_displays_paths_as_is_and_abstract_names_with_an_at_sign() {
    assert_eq!(Addr::path("/run/x.sock").to_string(), "/run/x.sock");
    assert_eq!(Addr::abstract_name("ipckit").to_string(), "@ipckit");
    assert_eq!(Addr::abstract_name(b"a\0b").to_string(), "@a\\x00b");
    let e = StreamListener::bind(&Addr::abstract_name(vec![b'z'; 200])).unwrap_err();
    assert!(e.to_string().contains("abstract Unix socket @zzz"), "{e}");
}

/// A pipe whose ends are close-on-exec, so that children spawned by other tests meanwhile do not
/// keep it open.
fn pipe() -> (File, File) {
    let (r, w) = pipe_with(PipeFlags::CLOEXEC).unwrap();
    (File::from(r), File::from(w))
}

#[test]
fn send_fds_passes_a_pipe_and_a_file_to_another_process_which_writes_through_them() {
    if child_role().as_deref() == Some("fd-receiver") {
        let conn = connect_stream(&addr_from_env()).unwrap();
        let mut buf = [0u8; 16];
        let (n, fds) = recv_fds(&conn, &mut buf, 4).unwrap();
        assert_eq!(&buf[..n], b"pipe+file");
        let [pipe, file]: [OwnedFd; 2] = fds.try_into().unwrap();
        let me = std::process::id();
        File::from(pipe)
            .write_all(format!("through the pipe from {me}").as_bytes())
            .unwrap();
        File::from(file)
            .write_all(format!("into the file from {me}").as_bytes())
            .unwrap();
        return;
    }
    let dir = SocketDir::new();
    let addr = Addr::path(dir.join("fds.sock"));
    let listener = StreamListener::bind(&addr).unwrap();
    let mut child = spawn_self(
        "send_fds_passes_a_pipe_and_a_file_to_another_process_which_writes_through_them",
        "fd-receiver",
    )
    .env(ADDR_VAR, addr_to_env(&addr))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let conn = accept_from(&listener, &mut child);
    let (mut r, w) = pipe();
    let file_path = dir.join("written-by-child");
    let file = File::create(&file_path).unwrap();
    let sent = send_fds(&conn, b"pipe+file", &[w.as_fd(), file.as_fd()]).unwrap();
    assert_eq!(sent, 9);
    drop((w, file));
    let mut got = String::new();
    r.read_to_string(&mut got).unwrap(); // EOF once the child's copy is closed
    let pid = child.id();
    finished(child);
    assert_eq!(got, format!("through the pipe from {pid}"));
    assert_eq!(
        fs::read_to_string(&file_path).unwrap(),
        format!("into the file from {pid}")
    );
}

#[test]
fn send_fds_works_over_seqpacket_and_datagram() {
    let (sa, sb) = SeqpacketConn::pair().unwrap();
    let (da, db) = UnixDatagram::pair().unwrap();
    let sockets: [(&dyn AsFd, &dyn AsFd); 2] = [(&sa, &sb), (&da, &db)];
    for (i, (a, b)) in sockets.into_iter().enumerate() {
        let (mut r, w) = pipe();
        // An empty message may carry descriptors on these types.
        assert_eq!(send_fds(&a.as_fd(), b"", &[w.as_fd()]).unwrap(), 0);
        drop(w);
        let mut buf = [0u8; 8];
        let (n, fds) = recv_fds(&b.as_fd(), &mut buf, 1).unwrap();
        assert_eq!((n, fds.len()), (0, 1), "socket {i}");
        let mut w = File::from(fds.into_iter().next().unwrap());
        w.write_all(b"via the copy").unwrap();
        drop(w);
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "via the copy", "socket {i}");
    }
}

#[test]
fn received_fds_are_close_on_exec() {
    let (a, b) = UnixStream::pair().unwrap();
    // FD_CLOEXEC belongs to a descriptor, not to the open file: the received copies have it only
    // if recvmsg asked for it (MSG_CMSG_CLOEXEC), whatever the sent descriptors had.
    let (r, w) = pipe();
    send_fds(&a, b"x", &[r.as_fd(), w.as_fd()]).unwrap();
    let (_, fds) = recv_fds(&b, &mut [0u8; 1], 2).unwrap();
    assert_eq!(fds.len(), 2);
    for fd in &fds {
        let flags = rustix::io::fcntl_getfd(fd).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC), "{flags:?}");
    }
}

/// Whether every write end of the pipe read by `r` is closed: a non-blocking read sees end of
/// file at once, where an open write end anywhere would make it would-block.
fn all_writers_closed(r: File) -> bool {
    rustix::io::ioctl_fionbio(&r, true).unwrap();
    let mut r = r;
    match r.read(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => panic!("nothing was written"),
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("read: {e}"),
    }
}

#[test]
fn truncated_control_data_or_message_is_an_error_and_closes_what_arrived() {
    // Checking that descriptors were closed needs a process where no other test forks meanwhile
    // (a child between fork and exec holds copies of everything).
    if child_role().as_deref() == Some("truncate") {
        let (a, b) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 8];

        // Three sent, room for one: the one that arrived is closed, the kernel drops the others.
        let (r, w) = pipe();
        send_fds(&a, b"abc", &[w.as_fd(), w.as_fd(), w.as_fd()]).unwrap();
        drop(w);
        let e = recv_fds(&b, &mut buf, 1).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("MSG_CTRUNC"), "{text}");
        assert!(text.contains("arrived and were closed: 1;"), "{text}");
        assert!(text.contains("data bytes consumed: 3"), "{text}");
        assert!(all_writers_closed(r), "a write end was leaked");

        // No room at all.
        let (r, w) = pipe();
        send_fds(&a, b"d", &[w.as_fd()]).unwrap();
        drop(w);
        let e = recv_fds(&b, &mut buf, 0).unwrap_err();
        assert!(e.to_string().contains("MSG_CTRUNC"), "{e}");
        assert!(all_writers_closed(r), "a write end was leaked");

        // Exactly as many as asked for is fine, and they stay open until dropped.
        let (r, w) = pipe();
        send_fds(&a, b"e", &[w.as_fd(), w.as_fd()]).unwrap();
        drop(w);
        let (n, fds) = recv_fds(&b, &mut buf, 2).unwrap();
        assert_eq!((n, fds.len()), (1, 2));
        let r2 = r.try_clone().unwrap();
        assert!(!all_writers_closed(r2), "the received write ends are open");
        drop(fds);
        assert!(all_writers_closed(r));

        // A seqpacket message longer than the buffer: its descriptor is closed too.
        let (a, b) = SeqpacketConn::pair().unwrap();
        let (r, w) = pipe();
        send_fds(&a, &[5; 32], &[w.as_fd()]).unwrap();
        drop(w);
        let e = recv_fds(&b, &mut buf, 1).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("MSG_TRUNC"), "{text}");
        assert!(text.contains("arrived and were closed: 1;"), "{text}");
        assert!(all_writers_closed(r), "a write end was leaked");
        println!("checked");
        return;
    }
    let out = finished(
        spawn_self(
            "truncated_control_data_or_message_is_an_error_and_closes_what_arrived",
            "truncate",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("checked"));
}

#[test]
fn send_fds_checks_its_limits_before_any_system_call() {
    let (a, _b) = UnixStream::pair().unwrap();
    let (_r, w) = pipe();
    let e = send_fds(&a, b"", &[w.as_fd()]).unwrap_err();
    assert!(matches!(e, ipckit::Error::InvalidArgument { .. }), "{e:?}");
    let many = vec![w.as_fd(); SCM_MAX_FD + 1];
    let e = send_fds(&a, b"x", &many).unwrap_err();
    assert!(matches!(e, ipckit::Error::InvalidArgument { .. }), "{e:?}");
    assert!(e.to_string().contains("254"), "{e}");
    // SCM_MAX_FD itself goes through.
    let (c, d) = UnixStream::pair().unwrap();
    send_fds(&c, b"x", &many[..SCM_MAX_FD]).unwrap();
    let (_, fds) = recv_fds(&d, &mut [0u8; 1], SCM_MAX_FD).unwrap();
    assert_eq!(fds.len(), SCM_MAX_FD);
}

#[test]
fn peer_credentials_report_the_childs_pid_and_our_ids() {
    if child_role().as_deref() == Some("cred-client") {
        let mut conn = connect_stream(&addr_from_env()).unwrap();
        let theirs = peer_credentials(&conn).unwrap();
        assert_eq!(theirs.pid, std::os::unix::process::parent_id());
        // Stay connected until the parent has looked.
        let mut byte = [0u8; 1];
        conn.read_exact(&mut byte).unwrap();
        return;
    }
    let dir = SocketDir::new();
    let addr = Addr::path(dir.join("cred.sock"));
    let listener = StreamListener::bind(&addr).unwrap();
    let mut child = spawn_self(
        "peer_credentials_report_the_childs_pid_and_our_ids",
        "cred-client",
    )
    .env(ADDR_VAR, addr_to_env(&addr))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut conn = accept_from(&listener, &mut child);
    let cred = peer_credentials(&conn).unwrap();
    conn.write_all(b"k").unwrap();
    let pid = child.id();
    finished(child);
    assert_eq!(cred.pid, pid);
    assert_eq!(cred.uid, rustix::process::geteuid().as_raw());
    assert_eq!(cred.gid, rustix::process::getegid().as_raw());
}

#[test]
fn peer_credentials_of_a_socketpair_are_our_own() {
    let (a, _b) = SeqpacketConn::pair().unwrap();
    let cred = peer_credentials(&a).unwrap();
    assert_eq!(cred.pid, std::process::id());
    assert_eq!(cred.uid, rustix::process::geteuid().as_raw());
}

#[test]
fn peer_credentials_of_a_socket_without_peer_are_not_connected() {
    let lone = UnixDatagram::unbound().unwrap();
    let e = peer_credentials(&lone).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotConnected, "{e}");
    let (a, _b) = UnixDatagram::pair().unwrap();
    assert_eq!(peer_credentials(&a).unwrap().pid, std::process::id());
}

#[test]
fn sending_to_a_closed_peer_is_broken_pipe_not_sigpipe() {
    if child_role().as_deref() == Some("sigpipe") {
        // SAFETY: restores the default action of SIGPIPE (terminate), which a Rust `main` had set
        // to ignore; this child runs only this test, on one thread.
        let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        assert_ne!(old, libc::SIG_ERR);
        let mut now = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: with a NULL new action, sigaction only writes the current one into `now`.
        let rc = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), now.as_mut_ptr()) };
        assert_eq!(rc, 0);
        // SAFETY: sigaction filled it in (and all-zero is a valid sigaction anyway).
        let now = unsafe { now.assume_init() };
        assert_eq!(now.sa_sigaction, libc::SIG_DFL, "SIGPIPE is at its default");

        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let e = send_fds(&a, b"x", &[]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e}");

        let (a, b) = SeqpacketConn::pair().unwrap();
        drop(b);
        let e = a.send(b"x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e}");
        let (_r, w) = pipe();
        let e = send_fds(&a, b"x", &[w.as_fd()]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e}");
        println!("survived");
        return;
    }
    let out = spawn_self(
        "sending_to_a_closed_peer_is_broken_pipe_not_sigpipe",
        "sigpipe",
    )
    .output()
    .unwrap();
    assert_ne!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "the child was killed by SIGPIPE"
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("survived"));
}

#[test]
fn tcp_loopback_echo() {
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_ne!(port, 0, "the kernel picked a port");
    std::thread::scope(|s| {
        s.spawn(|| {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            conn.read_to_end(&mut got).unwrap();
            got.reverse();
            conn.write_all(&got).unwrap();
        });
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client.write_all(b"loopback").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut reply = String::new();
        client.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "kcabpool");
    });
}
