//! `ipckit key PATH PROJ`: the ftok(3) key of a path and project id.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// An existing file or directory (symbolic links are followed).
    path: PathBuf,
    /// The project id: one character (such as `a`) or a number from 1 to 255.
    #[arg(value_parser = parse_proj)]
    proj: u8,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let key = ipckit::Key::from_path(&args.path, args.proj)?;
    println!("{key}");
    Ok(ExitCode::SUCCESS)
}

/// A project id, checked as the command line is read (a bad one is a usage error, exit 2).
fn parse_proj(s: &str) -> Result<u8, String> {
    if let Ok(n) = s.parse::<u32>() {
        if (1..=255).contains(&n) {
            return Ok(n as u8);
        }
        return Err(format!(
            "project id {s} is out of range: give one character or a number from 1 to 255"
        ));
    }
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii() && c != '\0' => Ok(c as u8),
        _ => Err(format!(
            "project id {s:?} is not one ASCII character or a number from 1 to 255"
        )),
    }
}
