//! `ipckit demo robust`: a process is killed inside a robust mutex's critical section; the next
//! process is told, repairs the data and marks the mutex consistent; after that it works as before.

use std::sync::Arc;
use std::time::Duration;

use bytemuck::{Pod, Zeroable};

use anyhow::{anyhow, Context, Result};
use ipckit::shared::SharedRegion;
use ipckit::sync::{Event, EventMode, LockError, Mutex};
use ipckit::sysv::shm::{Attachment, OwnedSegment, Segment};
use ipckit::Key;

use super::launch::{Launcher, Workers};

/// One step of [`run_robust`], as it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// A short name: `create`, `lock`, `kill`, `owner-died`, `repair`, `relock`.
    pub name: &'static str,
    /// What happened, in a sentence.
    pub detail: String,
}

/// What [`run_robust`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobustReport {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Whether the lock after the kill reported the dead owner (`EOWNERDEAD`).
    pub owner_died: bool,
    /// Whether, after the repair, another process locked the mutex normally and found the data
    /// consistent.
    pub recovered: bool,
}

/// Two accounts whose sum must stay [`TOTAL`]; a transfer changes both inside the lock.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct Accounts {
    a: i64,
    b: i64,
}

const TOTAL: i64 = 100;
const AMOUNT: i64 = 30;

type Lock = Mutex<Accounts>;

fn cut(map: Attachment, init: bool) -> Result<(Lock, Event)> {
    let mut r = SharedRegion::new(Arc::new(map))?;
    let m = r.take(Lock::SIZE, Lock::ALIGN)?;
    let e = r.take(Event::SIZE, Event::ALIGN)?;
    if init {
        Ok((
            Mutex::init_in(m, Accounts { a: TOTAL, b: 0 })?,
            Event::init_in(e, EventMode::Manual, false)?,
        ))
    } else {
        Ok((Mutex::open_in(m)?, Event::open_in(e)?))
    }
}

/// Runs the demo with workers started through `launcher`, calling `on_step` as each step
/// happens. The segment is removed before returning, also on error.
pub fn run_robust(launcher: &Launcher, mut on_step: impl FnMut(&Step)) -> Result<RobustReport> {
    let seg: OwnedSegment = Segment::options()
        .size(4096)
        .exclusive(true)
        .open(Key::PRIVATE)?
        .into_owned();
    let (m, inside) = cut(seg.attach()?, true)?;
    let mut steps = Vec::new();
    let mut step = |name: &'static str, detail: String| {
        let s = Step { name, detail };
        on_step(&s);
        steps.push(s);
    };
    step(
        "create",
        format!(
            "robust mutex in System V segment {} guards accounts a={TOTAL}, b=0 (a+b must stay {TOTAL})",
            seg.id()
        ),
    );

    let mut workers = Workers::new();
    workers
        .children
        .push(launcher.spawn(&format!("robust:hold:{}", seg.id()))?);
    let holder = workers.children[0].id();
    workers.wait_until(Duration::from_secs(30), "the holder locking", || {
        inside.is_set()
    })?;
    step(
        "lock",
        format!("process {holder} locked the mutex and moved {AMOUNT} out of a, not yet into b"),
    );

    let mut child = workers.children.remove(0);
    let killed = child.kill();
    let reaped = child.wait();
    killed.with_context(|| format!("kill process {holder}"))?;
    let status = reaped.with_context(|| format!("waitpid process {holder}"))?;
    step(
        "kill",
        format!(
            "sent SIGKILL to process {holder} inside the critical section; it ended ({status})"
        ),
    );

    let me = std::process::id();
    let (owner_died, mut guard) = match m.lock() {
        Err(LockError::OwnerDied(g)) => (true, g),
        Ok(g) => (false, g),
        Err(e) => return Err(ipckit::Error::from(e).into()),
    };
    let found = *guard;
    step(
        "owner-died",
        if owner_died {
            format!(
                "process {me} locked it and was told the owner died (EOWNERDEAD); it found a={}, b={} (sum {})",
                found.a,
                found.b,
                found.a + found.b
            )
        } else {
            format!("process {me} locked it without being told the owner died")
        },
    );
    if !owner_died {
        return Ok(RobustReport {
            steps,
            owner_died,
            recovered: false,
        });
    }
    guard.b = TOTAL - guard.a;
    guard.mark_consistent()?;
    let repaired = *guard;
    drop(guard);
    step(
        "repair",
        format!(
            "process {me} completed the transfer (a={}, b={}), marked the mutex consistent and unlocked",
            repaired.a, repaired.b
        ),
    );

    workers
        .children
        .push(launcher.spawn(&format!("robust:check:{}", seg.id()))?);
    let checker = workers.children[0].id();
    let recovered = workers.wait_all().is_ok();
    step(
        "relock",
        if recovered {
            format!("process {checker} locked the mutex normally and found a+b={TOTAL}")
        } else {
            format!("process {checker} could not lock the mutex normally or found a+b≠{TOTAL}")
        },
    );
    Ok(RobustReport {
        steps,
        owner_died,
        recovered,
    })
}

/// One worker: `hold:SHMID` (lock, break the invariant, announce, wait to be killed) or
/// `check:SHMID` (lock normally and check the invariant). `None` for a malformed spec.
pub fn worker(spec: &str) -> Option<Result<()>> {
    let (role, id) = spec.split_once(':')?;
    let id: i32 = id.parse().ok()?;
    let run = |hold: bool| -> Result<()> {
        let (m, inside) = cut(Segment::from_id(id).attach()?, false)?;
        let mut g = m.lock().map_err(ipckit::Error::from)?;
        if hold {
            g.a -= AMOUNT;
            inside.set();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        if g.a + g.b != TOTAL {
            return Err(anyhow!("demo robust: found a={}, b={}", g.a, g.b));
        }
        Ok(())
    };
    match role {
        "hold" => Some(run(true)),
        "check" => Some(run(false)),
        _ => None,
    }
}
