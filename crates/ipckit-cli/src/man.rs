//! `ipckit man [COMMAND]`: the manual page of the command, or of one subcommand, in roff, from the
//! same definitions as `--help` (clap_mangen).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::output::emit_bytes;

#[derive(clap::Args)]
#[command(after_help = "\
Install the pages where man looks for them, for example:
  ipckit man > ~/.local/share/man/man1/ipckit.1
  ipckit man ls > ~/.local/share/man/man1/ipckit-ls.1
or read one at once: ipckit man | man -l -")]
pub struct Args {
    /// A subcommand (such as `ls`): print its page, ipckit-COMMAND(1), instead of ipckit(1).
    command: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    // As clap_mangen's own generate_to: no page for `help`. Building gives each subcommand its
    // display name (`ipckit-ls`), the title of its page.
    let mut ipckit = crate::Cli::command().disable_help_subcommand(true);
    ipckit.build();
    let source = format!("ipckit {}", env!("CARGO_PKG_VERSION"));
    let page = match &args.command {
        None => ipckit,
        Some(name) => match ipckit
            .get_subcommands()
            .find(|sub| !sub.is_hide_set() && sub.get_name() == name)
        {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = ipckit
                    .get_subcommands()
                    .filter(|sub| !sub.is_hide_set())
                    .map(|sub| sub.get_name())
                    .collect();
                let message = format!(
                    "no subcommand {name:?} has a manual page (the subcommands: {})",
                    names.join(", ")
                );
                let error = clap::Error::raw(clap::error::ErrorKind::InvalidValue, message);
                return Ok(crate::usage_error(error));
            }
        },
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .source(source)
        .render(&mut roff)
        .context("cannot render the manual page")?;
    emit_bytes(&roff)?;
    Ok(ExitCode::SUCCESS)
}
