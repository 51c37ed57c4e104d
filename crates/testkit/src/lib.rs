//! Test support shared by ipckit's test suites, examples and CLI tests.
//!
//! - unique System V keys and POSIX names per test (pid + counter), so tests never collide with each
//!   other or with anything else on the machine;
//! - [`Defer`], a guard that runs cleanup even when an assertion panics;
//! - re-executing the current test binary as a child process with a role ([`spawn_self`],
//!   [`child_role`]);
//! - compiling small C programs with the system `cc` ([`compile_c`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A System V key no other test process uses: 0x49 in the top byte, then 14 bits of the pid and a
/// 10-bit counter. Create objects with it exclusively (`IPC_EXCL`) so that a collision with a
/// foreign object fails loudly instead of sharing it.
pub fn unique_key() -> i32 {
    let pid = std::process::id();
    let n = next();
    (0x4900_0000u32 | ((pid & 0x3fff) << 10) | (n & 0x3ff)) as i32
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
    Kid(cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn child"))
}
