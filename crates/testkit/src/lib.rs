//! Test support shared by ipckit's test suites, examples and CLI tests.
//!
//! - unique System V keys and POSIX names per test (pid + counter), so tests never collide with each
//!   other or with anything else on the machine;
//! - [`Defer`], a guard that runs cleanup even when an assertion panics;
//! - re-executing the current test binary as a child process with a role ([`spawn_self`],
//!   [`child_role`]);
//! - compiling small C programs with the system `cc` ([`compile_c`]);
//! - child processes that are killed and reaped on drop ([`Kid`]), talked to line by line
//!   ([`Conversation`]) or run to the end for their output ([`run_for_stdout`]), and a guard that
//!   holds those starts back while a test asserts which processes use its objects
//!   ([`no_process_starts`]);
//! - waiting for a condition without assuming anything about timing ([`wait_until`]), and seeing
//!   which system call a thread sleeps in ([`task`]);
//! - interrupting a blocked call with a signal ([`interrupt`]);
//! - the process's umask and credentials: [`umask`], [`is_root`], [`become_nobody`].
#![warn(missing_docs)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{PoisonError, RwLock, RwLockWriteGuard};
use std::time::{Duration, Instant};

pub mod interrupt;
pub mod task;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A System V key no other test process uses: 0x49 in the top byte, then 14 bits of the pid and a
/// 10-bit counter, skipping keys that an object on the machine has now. Create objects with it
/// exclusively (`IPC_EXCL`) so that a collision with a foreign object fails loudly instead of
/// sharing it.
///
/// 14 bits do not hold every pid (pid_max is 32768 or more), so two live processes whose pids
/// differ by a multiple of 16384 get the same sequence of keys, and the counter wraps after 1024
/// keys: the skip keeps both from handing out a key that is taken.
pub fn unique_key() -> i32 {
    let pid = std::process::id();
    let taken = sysv_keys_in_use();
    loop {
        let n = next();
        let key = (0x4900_0000u32 | ((pid & 0x3fff) << 10) | (n & 0x3ff)) as i32;
        if !taken.contains(&key) {
            return key;
        }
    }
}

/// The keys of every System V object on the machine now, from /proc/sysvipc (empty where that
/// cannot be read).
fn sysv_keys_in_use() -> std::collections::HashSet<i32> {
    ["shm", "sem", "msg"]
        .iter()
        .filter_map(|kind| std::fs::read_to_string(format!("/proc/sysvipc/{kind}")).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| line.split_whitespace().next()?.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// A POSIX IPC name (`/ipckit-test-<what>-<pid>-<n>`) no other test process uses.
pub fn unique_name(what: &str) -> String {
    format!("/ipckit-test-{what}-{}-{}", std::process::id(), next())
}

/// A fresh path in the temporary directory (not created), unique per process and call.
pub fn unique_path(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "ipckit-test-{what}-{}-{}",
        std::process::id(),
        next()
    ))
}

/// Runs a closure when dropped, including during a panic: the cleanup guard of every test.
pub struct Defer<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// The environment variable that carries a child's role.
pub const ROLE_VAR: &str = "IPCKIT_TEST_ROLE";

/// The role this process was started with by [`spawn_self`], if it is such a child.
pub fn child_role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// A command that re-runs the current test binary, running only the test `test_path` (as libtest
/// names it, e.g. `writer_reader_handshake`), with [`child_role`] returning `role` inside it.
///
/// The test function checks [`child_role`] first and, when it is set, plays that role and returns.
pub fn spawn_self(test_path: &str, role: &str) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        test_path,
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "--quiet",
    ])
    .env(ROLE_VAR, role);
    cmd
}

/// Compiles the C program `source` with the system `cc` and returns the executable's path.
///
/// Panics (failing the test) with the compiler's output when compilation fails.
pub fn compile_c(name: &str, source: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ipckit-cc-{}-{}", std::process::id(), next()));
    std::fs::create_dir_all(&dir).expect("create cc dir");
    let src = dir.join(format!("{name}.c"));
    let exe = dir.join(name);
    std::fs::write(&src, source).expect("write C source");
    let out = Command::new("cc")
        .args(["-std=gnu11", "-Wall", "-Werror", "-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .args(["-lrt", "-pthread"])
        .output()
        .expect("run cc (is a C compiler installed?)");
    assert!(
        out.status.success(),
        "cc failed for {name}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Removes a directory made by [`compile_c`] for the executable `exe` (best effort).
pub fn remove_compiled(exe: &Path) {
    if let Some(dir) = exe.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A C program compiled by [`compile_c`] whose directory is removed when it drops, also when an
/// assertion fails. Derefs to the executable's path; `Command::new(&program)` runs it.
pub struct CProgram(PathBuf);

impl CProgram {
    /// Compiles `source` as [`compile_c`] does (panicking with the compiler's output on failure).
    pub fn compile(name: &str, source: &str) -> CProgram {
        CProgram(compile_c(name, source))
    }
}

impl std::ops::Deref for CProgram {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<OsStr> for CProgram {
    fn as_ref(&self) -> &OsStr {
        self.0.as_os_str()
    }
}

impl Drop for CProgram {
    fn drop(&mut self) {
        remove_compiled(&self.0);
    }
}

/// The path of an example binary built by `cargo test` (examples are built alongside the tests:
/// `target/<profile>/examples/<name>`).
pub fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "example {name} not built at {} (run the tests with cargo test)",
        bin.display()
    );
    bin
}

/// Held (shared) while a helper of this crate starts a process, and exclusively by
/// [`no_process_starts`].
static STARTING: RwLock<()> = RwLock::new(());

/// Spawns `cmd` (as `cmd.spawn()`) unless a test holds [`no_process_starts`]; the other helpers
/// of this crate start their processes with it. `spawn` returns once the child has executed its
/// program (or failed to), so the child no longer shares or copies this process's memory and
/// descriptors when it lets other tests go on.
pub fn spawn(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    let _starting = STARTING.read().unwrap_or_else(PoisonError::into_inner);
    cmd.spawn()
}

/// Keeps the helpers of this crate ([`spawn`], [`start`], [`run`], [`run_for_stdout`],
/// [`Conversation::start`]) from starting a process in this test binary until the guard drops.
///
/// Until it execs, a new process shares (`posix_spawn`, `vfork`) or copies (`fork`) the memory
/// and the descriptor table of the test process, so /proc shows it mapping every object the test
/// process maps and holding every descriptor it holds (a forked child even counts as a System V
/// attachment and as a writable mapping that makes `F_SEAL_WRITE` fail with EBUSY). A test that
/// asserts exactly which processes map or hold its object takes this guard around the assertion,
/// so that another test of the same binary, starting a process meanwhile, cannot add one. Do not start a process while
/// holding it (that would wait for ever); processes started otherwise than through these helpers
/// are not held back.
pub fn no_process_starts() -> RwLockWriteGuard<'static, ()> {
    STARTING.write().unwrap_or_else(PoisonError::into_inner)
}

/// A child process that is killed and reaped when dropped, so a failing test never leaves one
/// running (or a zombie). Start one with [`start`].
pub struct Kid(pub std::process::Child);

impl Kid {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Waits for the child to exit on its own.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.0.wait().expect("wait for child")
    }

    /// Kills the child (SIGKILL) and reaps it.
    pub fn kill(mut self) -> std::process::ExitStatus {
        self.0.kill().expect("kill child");
        self.0.wait().expect("wait for child")
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `cmd` with stdout discarded and stderr shared with the test, as a [`Kid`].
pub fn start(mut cmd: Command) -> Kid {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    Kid(spawn(&mut cmd).expect("spawn child"))
}

/// Polls `cond` until it holds; fails the test (naming `what`) after a generous bound instead of
/// hanging. The bound only guards against a hang: tests must not rely on it for correctness.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The process umask, from /proc/self/status (reading it with umask(2) would change it for every
/// thread).
pub fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("Umask:"))
        .expect("Umask: line in /proc/self/status");
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).expect("octal umask")
}

/// The unprivileged user and group id of `nobody` / `nogroup` on Debian-like systems.
pub const NOBODY: u32 = 65534;

/// Whether this process runs with effective user id 0, so it may create objects another user
/// must not touch and then become that user.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// `setresgid(NOBODY, ..)` then `setresuid(NOBODY, ..)` — makes this process the unprivileged
/// user [`NOBODY`] for good (needs root; panics otherwise). Only for a single-purpose child
/// process: it affects every thread.
pub fn become_nobody() {
    // SAFETY: plain system calls on integers.
    let gid = unsafe { libc::setresgid(NOBODY, NOBODY, NOBODY) };
    assert_eq!(gid, 0, "setresgid(nobody)");
    // SAFETY: as above.
    let uid = unsafe { libc::setresuid(NOBODY, NOBODY, NOBODY) };
    assert_eq!(uid, 0, "setresuid(nobody)");
}

/// Runs the program `exe` with `args` to the end, capturing stdout and stderr. For a crate's own
/// binary pass `env!("CARGO_BIN_EXE_<name>")` (set only while compiling its integration tests).
pub fn run(exe: impl AsRef<OsStr>, args: &[&str]) -> Output {
    let exe = exe.as_ref();
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    spawn(&mut cmd)
        .and_then(std::process::Child::wait_with_output)
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.to_string_lossy()))
}

/// A child's captured output as text, invalid UTF-8 replaced.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cmd` to the end with stdout captured and stderr shared with the test; fails the test
/// if it exits unsuccessfully. Returns the child's pid and its stdout.
pub fn run_for_stdout(mut cmd: Command) -> (i32, String) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let child = spawn(&mut cmd).expect("spawn child");
    let pid = child.id() as i32;
    let out = child.wait_with_output().expect("wait for child");
    assert!(out.status.success(), "{cmd:?} failed: {}", out.status);
    (pid, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A child process the test talks to line by line: its stdin and stdout are pipes, it is killed
/// and reaped when dropped (as a [`Kid`]). Typically a re-executed test ([`spawn_self`]) that
/// prints a marker once it holds something and waits for a line before letting go.
pub struct Conversation {
    kid: Kid,
    out: BufReader<ChildStdout>,
    input: Option<ChildStdin>,
}

impl Conversation {
    /// Spawns `cmd` with piped stdin and stdout (stderr shared with the test).
    pub fn start(mut cmd: Command) -> Conversation {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = spawn(&mut cmd).expect("spawn child");
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let input = child.stdin.take();
        Conversation {
            kid: Kid(child),
            out,
            input,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.kid.0.id()
    }

    /// Reads the child's output until a line that is `marker` (trimmed), skipping what libtest
    /// prints around a test; fails the test if the child's output ends first.
    pub fn wait_for(&mut self, marker: &str) {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).expect("read child's stdout");
            assert!(n > 0, "child ended before printing {marker:?}");
            if line.trim() == marker {
                return;
            }
        }
    }

    /// Writes `line` and a newline to the child's stdin.
    pub fn say(&mut self, line: &str) {
        let input = self.input.as_mut().expect("stdin still open");
        writeln!(input, "{line}").expect("write to child's stdin");
    }

    /// Closes the child's stdin (it reads end of file) and waits for it to exit.
    pub fn finish(mut self) -> ExitStatus {
        drop(self.input.take());
        self.kid.0.wait().expect("wait for child")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_key_skips_a_key_an_object_has() {
        // The key the counter gives next, taken by a segment first (as by another test process
        // whose pid has the same low 14 bits, or by this one before its counter wrapped).
        let before = unique_key();
        let next_key = before + 1;
        // SAFETY: plain system calls on integers.
        let id = unsafe { libc::shmget(next_key, 64, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        let _remove = Defer(|| {
            if id >= 0 {
                // SAFETY: as above; removes only the segment made here.
                unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            }
        });
        assert!(
            id >= 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST),
            "shmget: {}",
            std::io::Error::last_os_error()
        );
        let key = unique_key();
        assert_ne!(key, next_key, "a key in use was handed out");
    }
}
