//! What a thread or process is doing right now, from `/proc/<pid>/task/<tid>/syscall` (see
//! [proc(5)](https://man7.org/linux/man-pages/man5/proc.5.html)), and signals aimed at one thread.
//!
//! Tests that need "the other side is blocked now" wait until `/proc` shows the thread sleeping in
//! the system call instead of sleeping for a while and hoping, so they never depend on timing.

use std::path::Path;

/// A thread of this process: its kernel thread id (for `/proc/self/task/<tid>`) and its pthread
/// handle (for `pthread_kill`). `Copy` and `Send`, so a helper thread can watch and signal it.
#[derive(Clone, Copy, Debug)]
pub struct Task {
    tid: libc::pid_t,
    thread: libc::pthread_t,
}

impl Task {
    /// The calling thread.
    pub fn current() -> Task {
        // SAFETY: gettid and pthread_self have no preconditions and touch no memory.
        let (tid, thread) = unsafe { (libc::gettid(), libc::pthread_self()) };
        Task { tid, thread }
    }

    /// The kernel thread id (`gettid()`).
    pub fn tid(&self) -> libc::pid_t {
        self.tid
    }

    /// Whether the thread sleeps in one of the system calls `nrs` (`libc::SYS_*`).
    pub fn in_syscall(&self, nrs: &[libc::c_long]) -> bool {
        task_in_syscall(Path::new(&format!("/proc/self/task/{}", self.tid)), nrs)
    }

    /// `pthread_kill(thread, signal)` — sends `signal` to this thread only; panics if that fails.
    ///
    /// The thread must still be running: keep it alive (e.g. by joining the caller) until then.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: pthread_kill reads no memory of ours; the caller keeps the thread alive, as the
        // doc says, so the handle still names it.
        let rc = unsafe { libc::pthread_kill(self.thread, signal) };
        assert_eq!(rc, 0, "pthread_kill({signal})");
    }
}

/// Whether the thread whose `/proc` directory is `task` (`/proc/<pid>/task/<tid>`, or
/// `/proc/<pid>` for a process's main thread) sleeps in one of the system calls `nrs`: the first
/// field of its `syscall` file is the number of the call it is blocked in.
pub fn task_in_syscall(task: &Path, nrs: &[libc::c_long]) -> bool {
    std::fs::read_to_string(task.join("syscall")).is_ok_and(|text| {
        text.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .is_some_and(|n| nrs.contains(&n))
    })
}

/// Whether some thread of process `pid` sleeps in one of the system calls `nrs`.
pub fn process_in_syscall(pid: u32, nrs: &[libc::c_long]) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .is_ok_and(|tasks| tasks.flatten().any(|t| task_in_syscall(&t.path(), nrs)))
}
