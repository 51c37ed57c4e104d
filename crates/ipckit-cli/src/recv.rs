//! `ipckit recv NAME`: receives what `ipckit send NAME` sends and writes it to standard output,
//! until every sender that connected closed. It waits up to --timeout for a first sender; SIGINT,
//! SIGTERM and SIGHUP make it remove what it created and leave with 130, 143 or 129.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ipckit::transport::TransportKind;

use crate::send::Framing;

#[derive(clap::Args)]
pub struct Args {
    /// The name the senders use.
    name: String,
    /// The transport (as for send; default channel).
    #[arg(long, default_value = "channel", value_name = "TRANSPORT")]
    via: String,
    /// The buffer between the sides when this side creates it (as for send).
    #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size)]
    capacity: Option<u64>,
    /// lines: each message is written with a newline after it; bytes: as it is.
    #[arg(long, value_enum, default_value = "lines")]
    framing: Framing,
    /// How long to wait for a first sender: a number with a unit (500ms, 2s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::units::parse_duration)]
    timeout: std::time::Duration,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let interrupts = crate::leave::install()?;
    let result = recv(args, &interrupts);
    // After a signal, whatever failed failed because of it: the receiver was dropped (what it
    // created is removed, its senders see it go); leave as the signal says.
    if let Some(code) = interrupts.exit_code() {
        return Ok(code);
    }
    result
}

fn recv(args: Args, interrupts: &crate::leave::Interrupts) -> Result<ExitCode> {
    let kind: TransportKind = args.via.parse()?;
    let mut options = crate::send::options(args.capacity, args.timeout)?;
    interrupts.cancel(&mut options);
    let mut rx = kind
        .named_receiver(&args.name, &options)
        .with_context(|| format!("receive {:?} over {kind}", args.name))?;
    interrupts.watch(rx.abort_handle());
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut buf = Vec::new();
    // Each message is written whole and flushed before the next is awaited, so whatever ends the
    // stream (a sender that died, a corrupt channel), what was printed is whole messages.
    while rx.recv_into(&mut buf).context("receive")?.is_some() {
        out.write_all(&buf).context("write standard output")?;
        if args.framing == Framing::Lines {
            out.write_all(b"\n").context("write standard output")?;
        }
        out.flush().context("write standard output")?;
    }
    Ok(ExitCode::SUCCESS)
}
