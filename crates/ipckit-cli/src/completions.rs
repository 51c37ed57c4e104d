//! `ipckit completions SHELL`: a completion script for the shell, from the same definitions as
//! `--help` (clap_complete).

use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::output::emit_bytes;

#[derive(clap::Args)]
#[command(after_help = "\
Install (or evaluate at start-up) the script where the shell looks for completions, for example:
  bash:  ipckit completions bash > ~/.local/share/bash-completion/completions/ipckit
  zsh:   ipckit completions zsh > ~/.zfunc/_ipckit   (with fpath+=(~/.zfunc) before compinit)
  fish:  ipckit completions fish > ~/.config/fish/completions/ipckit.fish")]
pub struct Args {
    /// The shell the script is for.
    shell: Shell,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut command = crate::Cli::command();
    // The generators panic when their writer fails (a closed pipe); a buffer cannot fail.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "ipckit", &mut script);
    emit_bytes(&script)?;
    Ok(ExitCode::SUCCESS)
}
