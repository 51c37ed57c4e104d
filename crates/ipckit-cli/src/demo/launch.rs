//! Starting and watching the demos' worker processes: a [`Launcher`] (this program again, with the
//! hidden `demo worker SPEC`), [`run_worker`] on the worker's side, and [`Workers`], which kills
//! and reaps whatever is still running when a demo fails.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::{mutex, robust};

/// How to start a worker process: a program and the arguments that come before the worker's spec
/// (for the `ipckit` tool: its own executable and `demo worker`).
#[derive(Debug, Clone)]
pub struct Launcher {
    program: PathBuf,
    args: Vec<OsString>,
}

impl Launcher {
    /// Workers run this executable again (`/proc/self/exe`) with `args… SPEC`, and that command
    /// must call [`run_worker`] with `SPEC`.
    pub fn current_exe(args: impl IntoIterator<Item = impl Into<OsString>>) -> Result<Launcher> {
        Ok(Launcher {
            program: std::env::current_exe().context("the path of this program")?,
            args: args.into_iter().map(Into::into).collect(),
        })
    }

    pub fn spawn(&self, spec: &str) -> Result<Child> {
        Command::new(&self.program)
            .args(&self.args)
            .arg(spec)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {}", self.program.display()))
    }
}

/// The worker side of every demo: `spec` is what the demo passed to the [`Launcher`]. Returns
/// once the worker's part is done (a holder in [`run_robust`](super::robust::run_robust) never returns: it is killed).
pub fn run_worker(spec: &str) -> Result<()> {
    let bad = || anyhow!("demo worker: unknown worker spec {spec:?}");
    let (kind, rest) = spec.split_once(':').ok_or_else(bad)?;
    match kind {
        "mutex" => mutex::worker(rest).ok_or_else(bad)?,
        "robust" => robust::worker(rest).ok_or_else(bad)?,
        _ => Err(bad()),
    }
}

/// Worker processes that are killed and reaped if they are still running when this is dropped
/// (an error path), so a failed demo leaves no process behind.
pub struct Workers {
    pub children: Vec<Child>,
}

impl Workers {
    pub fn new() -> Workers {
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
    pub fn wait_until(
        &mut self,
        limit: Duration,
        what: &str,
        ready: impl Fn() -> bool,
    ) -> Result<()> {
        let start = Instant::now();
        while !ready() {
            self.check_running()?;
            if start.elapsed() > limit {
                bail!("demo: {what} did not happen within {} s", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Waits for every worker; the first that did not exit with status 0 is an error.
    pub fn wait_all(&mut self) -> Result<()> {
        let mut first_error = None;
        for mut child in self.children.drain(..) {
            let status = child
                .wait()
                .with_context(|| format!("waitpid process {}", child.id()))?;
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

fn worker_failed(pid: u32, status: ExitStatus) -> anyhow::Error {
    anyhow!("demo worker process {pid} exited with {status}")
}
