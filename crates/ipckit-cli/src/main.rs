//! `ipckit`: list, create, remove and inspect Linux IPC objects.
//!
//! This file wires the subcommands together and owns error reporting: any error ends the program
//! with one human-readable line on stderr and a non-zero exit status. Each subcommand lives in a file
//! of its own that parses its flags, calls the library and prints; no IPC logic lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod key;

/// Safe Linux inter-process communication: inspect and manage IPC objects.
#[derive(Parser)]
#[command(name = "ipckit", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the System V key ftok(3) derives from a path and a project id.
    Key(key::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Key(args) => key::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error as one line: the context chain joined by ": ".
fn report(err: &anyhow::Error) {
    let mut line = String::from("ipckit: ");
    let mut first = true;
    for cause in err.chain() {
        let text = cause.to_string();
        // ipckit errors already include their source's text; skip a cause repeated verbatim.
        if !first && line.ends_with(&text) {
            continue;
        }
        if !first {
            line.push_str(": ");
        }
        line.push_str(&text);
        first = false;
    }
    eprintln!("{line}");
}
