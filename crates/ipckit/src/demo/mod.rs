//! The scenarios behind `ipckit demo`: real processes contending for a lock in shared memory, and a
//! robust mutex whose holder is killed — runnable from the command line, checked, and cleaned up.
//!
//! [`run_mutex`] starts N worker processes that each increment a shared counter M times inside a
//! critical section guarded by the chosen [`Algo`], counting any moment two were inside at once;
//! [`run_robust`] kills a process inside a robust [`Mutex`](crate::sync::Mutex) and shows the next
//! one recover. Workers are this same program started again through a [`Launcher`]: the command
//! line tool passes the hidden subcommand that leads to [`run_worker`]. Every System V object the
//! demos create is removed at the end, on failure too; the shared segment is even marked for removal
//! as soon as every worker has attached, so not even a killed demo leaves it behind.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Object, Result};

mod mutex;
mod robust;

pub use mutex::{run_mutex, Algo, MutexDemo, MutexReport};
pub use robust::{run_robust, RobustReport, Step};

/// How to start a worker process: a program and the arguments that come before the worker's spec
/// (for the `ipckit` tool: its own executable and `demo worker`).
#[derive(Debug, Clone)]
pub struct Launcher {
    program: PathBuf,
    args: Vec<OsString>,
}

impl Launcher {
    /// Workers run `program args… SPEC`, and that command must call [`run_worker`] with `SPEC`.
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Launcher {
        Launcher {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// Workers run this executable again (`/proc/self/exe`) with `args… SPEC`.
    pub fn current_exe(args: impl IntoIterator<Item = impl Into<OsString>>) -> Result<Launcher> {
        let exe = std::env::current_exe()
            .map_err(|e| Error::os("current_exe", Object::Other("this program".into()), e))?;
        Ok(Launcher::new(exe, args))
    }

    fn spawn(&self, spec: &str) -> Result<Child> {
        Command::new(&self.program)
            .args(&self.args)
            .arg(spec)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| Error::os("spawn", Object::Path(self.program.as_path().into()), e))
    }
}

/// The worker side of every demo: `spec` is what the demo passed to the [`Launcher`]. Returns
/// once the worker's part is done (a holder in [`run_robust`] never returns: it is killed).
pub fn run_worker(spec: &str) -> Result<()> {
    let bad = || {
        Error::invalid(
            "demo worker",
            Object::Other("worker spec".into()),
            format!("unknown worker spec {spec:?}"),
        )
    };
    let (kind, rest) = spec.split_once(':').ok_or_else(bad)?;
    match kind {
        "mutex" => mutex::worker(rest).ok_or_else(bad)?,
        "robust" => robust::worker(rest).ok_or_else(bad)?,
        _ => Err(bad()),
    }
}

/// Worker processes that are killed and reaped if they are still running when this is dropped
/// (an error path), so a failed demo leaves no process behind.
struct Workers {
    children: Vec<Child>,
}

impl Workers {
    fn new() -> Workers {
        Workers {
            children: Vec::new(),
        }
    }

    /// Fails if a worker has already exited (it could not attach or start): the exit status.
    fn check_running(&mut self) -> Result<()> {
        for child in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(worker_failed(child.id(), status));
            }
        }
        Ok(())
    }

    /// Waits until `ready()` holds, failing if a worker exits first or `limit` passes.
    fn wait_until(&mut self, limit: Duration, what: &str, ready: impl Fn() -> bool) -> Result<()> {
        let start = Instant::now();
        while !ready() {
            self.check_running()?;
            if start.elapsed() > limit {
                return Err(Error::os(
                    "demo",
                    Object::Other("worker processes".into()),
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("{what} did not happen within {} s", limit.as_secs()),
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Waits for every worker; the first that did not exit with status 0 is an error.
    fn wait_all(&mut self) -> Result<()> {
        let mut first_error = None;
        for mut child in self.children.drain(..) {
            let status = child.wait().map_err(|e| {
                Error::os(
                    "waitpid",
                    Object::Other(format!("process {}", child.id()).into()),
                    e,
                )
            })?;
            if !status.success() && first_error.is_none() {
                first_error = Some(worker_failed(child.id(), status));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn worker_failed(pid: u32, status: ExitStatus) -> Error {
    Error::os(
        "demo worker",
        Object::Other(format!("process {pid}").into()),
        std::io::Error::other(format!("exited with {status}")),
    )
}
