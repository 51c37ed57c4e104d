//! `ipckit demo`: the library's demonstration scenarios, run from the command line.
//!
//! `demo mutex` has N processes increment a shared counter inside a critical section guarded by
//! one of several locks and reports lost updates and overlaps; `demo robust` kills a process
//! inside a robust mutex and shows the next one recover. The scenarios are in `demo/` (`mutex.rs`,
//! `robust.rs`, built on ipckit's public API); this file parses, calls them and prints. Workers are
//! this program again, started as the hidden `ipckit demo worker SPEC` (`demo/launch.rs`). Every
//! System V object a demo creates is removed at the end, on failure too; the shared segment is even
//! marked for removal as soon as every worker has attached, so not even a killed demo leaves it
//! behind.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::output::emit;

mod launch;
mod mutex;
mod robust;

use launch::Launcher;
use mutex::{Algo, MutexDemo, MutexReport};
use robust::RobustReport;

/// The arguments of `ipckit demo`.
#[derive(Debug, Parser)]
pub struct Args {
    #[command(subcommand)]
    command: DemoCommand,
}

#[derive(Debug, Subcommand)]
enum DemoCommand {
    /// N processes each add 1 to a shared counter M times inside a critical section.
    ///
    /// Each increment reads the counter, pauses, and writes it back, so a lock that lets two
    /// processes in at once loses updates; an occupancy check also counts every moment two were
    /// inside. Exits 0 only when the count is exact and nobody overlapped (`none` fails).
    Mutex(MutexArgs),
    /// Kill (SIGKILL) a process inside a robust mutex and watch the next one recover.
    Robust {
        /// Print one JSON object instead of the steps.
        #[arg(long)]
        json: bool,
    },
    /// A worker process of a demo (started by the demo itself).
    #[command(hide = true)]
    Worker {
        /// What the worker does, as the demo encoded it.
        spec: String,
    },
}

#[derive(Debug, clap::Args)]
struct MutexArgs {
    /// The lock: futex, sysv-sem, posix-sem, dekker, peterson, filter, szymanski, bakery, none.
    #[arg(long, value_parser = parse_algo)]
    algo: Algo,
    /// Worker processes (dekker and peterson take exactly 2).
    #[arg(long, default_value_t = 2)]
    procs: usize,
    /// Increments per process.
    #[arg(long, default_value_t = 10_000)]
    iters: u64,
    /// Print one JSON object: algo, procs, iters, expected, counted, overlaps, ops_per_sec.
    #[arg(long)]
    json: bool,
}

fn parse_algo(s: &str) -> std::result::Result<Algo, String> {
    s.parse()
}

/// Runs `ipckit demo …`.
pub fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        DemoCommand::Mutex(args) => mutex(args),
        DemoCommand::Robust { json } => robust(json),
        DemoCommand::Worker { spec } => {
            launch::run_worker(&spec)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn launcher() -> Result<Launcher> {
    Launcher::current_exe(["demo", "worker"])
}

#[derive(Serialize)]
struct MutexJson {
    algo: String,
    procs: usize,
    iters: u64,
    expected: u64,
    counted: u64,
    overlaps: u64,
    ops_per_sec: f64,
}

fn mutex(args: MutexArgs) -> Result<ExitCode> {
    let spec = MutexDemo {
        algo: args.algo,
        procs: args.procs,
        iters: args.iters,
    };
    // A command-line mistake is found before anything is created: exit 2.
    if let Err(e) = mutex::check(&spec) {
        return Ok(crate::send::usage(&format!("{e:#}")));
    }
    let report = mutex::run_mutex(&spec, &launcher()?)?;
    if args.json {
        let json = MutexJson {
            algo: report.algo.to_string(),
            procs: report.procs,
            iters: report.iters,
            expected: report.expected,
            counted: report.counted,
            overlaps: report.overlaps,
            ops_per_sec: report.ops_per_sec,
        };
        emit(&format!("{}\n", serde_json::to_string(&json)?))?;
    } else {
        emit(&mutex_text(&report))?;
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn mutex_text(r: &MutexReport) -> String {
    let verdict = if r.passed() {
        "ok: every increment counted, never two inside".to_string()
    } else {
        format!(
            "FAILED: {} increments lost, {} overlaps",
            r.expected.saturating_sub(r.counted),
            r.overlaps
        )
    };
    format!(
        "algo        {}\nprocs       {}\niters       {}\nexpected    {}\ncounted     {}\noverlaps    {}\nelapsed     {:.3} s\nthroughput  {:.0} increments/s\nresult      {verdict}\n",
        r.algo,
        r.procs,
        r.iters,
        r.expected,
        r.counted,
        r.overlaps,
        r.elapsed.as_secs_f64(),
        r.ops_per_sec,
    )
}

#[derive(Serialize)]
struct StepJson {
    step: &'static str,
    detail: String,
}

#[derive(Serialize)]
struct RobustJson {
    steps: Vec<StepJson>,
    owner_died: bool,
    recovered: bool,
}

fn robust(json: bool) -> Result<ExitCode> {
    let report: RobustReport = robust::run_robust(&launcher()?, |step| {
        if !json {
            let _ = emit(&format!("{:<11} {}\n", step.name, step.detail));
        }
    })?;
    if json {
        let doc = RobustJson {
            steps: report
                .steps
                .iter()
                .map(|s| StepJson {
                    step: s.name,
                    detail: s.detail.clone(),
                })
                .collect(),
            owner_died: report.owner_died,
            recovered: report.recovered,
        };
        emit(&format!("{}\n", serde_json::to_string(&doc)?))?;
    } else {
        emit(&format!(
            "result      owner died reported: {}, recovered: {}\n",
            yes(report.owner_died),
            yes(report.recovered)
        ))?;
    }
    Ok(if report.owner_died && report.recovered {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
