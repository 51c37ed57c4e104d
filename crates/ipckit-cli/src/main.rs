//! `ipckit`: list, create, remove and inspect Linux IPC objects.
//!
//! This file wires the subcommands together and owns error reporting: any error ends the program
//! with one human-readable line on stderr and a non-zero exit status. Each subcommand lives in a file
//! of its own that parses its flags, calls the library and prints; no IPC logic lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod columns;
mod completions;
mod demo;
mod dump;
mod escape;
mod gc;
mod key;
mod leave;
mod ls;
mod man;
mod mk;
mod output;
mod recv;
mod rm;
mod send;
mod units;

/// Safe Linux inter-process communication: inspect and manage IPC objects.
#[derive(Parser)]
#[command(name = "ipckit", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the System V key ftok(3) derives from a path and a project id.
    Key(key::Args),
    /// List IPC objects, their limits (-l) or their usage (-u), like ipcs.
    ///
    /// Without a kind flag, or with -a, every kind is listed. -t, -p and -c choose the columns of
    /// the tables and can be combined; --json prints every field whatever they say. -i ID shows
    /// one System V object in full (ipcs -i); -o, --raw, --export… print one kind as lsipc does.
    Ls(ls::Args),
    /// Remove System V objects by id or key, and POSIX objects by name (ipcrm's flags).
    Rm(rm::Args),
    /// Create System V objects (printing their ids) and POSIX objects (printing their names), with
    /// ipcmk's flags; default mode 0600.
    Mk(mk::Args),
    /// Show the bytes of a shared-memory segment as `hexdump -C` does, or raw.
    Dump(dump::Args),
    /// Find IPC objects left behind by processes that are gone, and say why; --yes removes them.
    Gc(gc::Args),
    /// Measure latency and throughput of every transport between two processes.
    ///
    /// Latency is a ping-pong (one-way = round trip / 2, from an HDR histogram); throughput a
    /// one-way stream the receiver acknowledges. Every message carries its full size of real
    /// bytes and is checked (sequence number, checksum). `bench merge` joins result files.
    Bench(bench::Args),
    /// Send standard input to `ipckit recv NAME`, a line (or chunk) per message.
    Send(send::Args),
    /// Receive what `ipckit send NAME` sends and write it to standard output.
    Recv(recv::Args),
    /// Run a demonstration: processes contending for a lock in shared memory (`demo mutex`), or a
    /// robust mutex whose holder is killed (`demo robust`).
    Demo(demo::Args),
    /// Print a completion script for bash, zsh, fish, elvish or powershell.
    Completions(completions::Args),
    /// Print the manual page of ipckit, or of one of its subcommands, in roff.
    Man(man::Args),
    /// The peer process of `ipckit bench` (started by it).
    #[command(name = "bench-peer", hide = true)]
    BenchPeer {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let result = match cli.command {
        Command::Key(args) => key::run(args),
        Command::Ls(args) => ls::run(args),
        Command::Rm(args) => rm::run(args),
        Command::Mk(args) => mk::run(args),
        Command::Dump(args) => dump::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Send(args) => send::run(args),
        Command::Recv(args) => recv::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
        Command::BenchPeer { args } => bench::peer(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            ExitCode::FAILURE
        }
    }
}

/// Reports a command-line error as one line (clap's own text up to its first blank line), exit
/// status 2; help and version requests are printed as clap prints them.
pub(crate) fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        err.exit();
    }
    let text = err.to_string();
    let first_paragraph = text.split("\n\n").next().unwrap_or_default();
    let line: Vec<&str> = first_paragraph.split_whitespace().collect();
    let line = line.join(" ");
    eprintln!("ipckit: {}", line.strip_prefix("error: ").unwrap_or(&line));
    ExitCode::from(2)
}

/// Prints an error as one line: the context chain joined by ": " (an ipckit error's `Display`
/// carries its OS error and is the end of its chain, so the OS error appears once).
fn report(err: &anyhow::Error) {
    eprintln!("ipckit: {err:#}");
}
