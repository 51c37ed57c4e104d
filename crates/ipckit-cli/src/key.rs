//! `ipckit key PATH PROJ`: the ftok(3) key of a path and project id.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

#[derive(clap::Args)]
pub struct Args {
    /// An existing file or directory (symbolic links are followed).
    path: PathBuf,
    /// The project id: one character (such as `a`) or a number from 1 to 255.
    proj: String,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let proj = parse_proj(&args.proj)?;
    let key = ipckit::Key::from_path(&args.path, proj)?;
    println!("{key}");
    Ok(ExitCode::SUCCESS)
}

fn parse_proj(s: &str) -> Result<u8> {
    if let Ok(n) = s.parse::<u32>() {
        if (1..=255).contains(&n) {
            return Ok(n as u8);
        }
        bail!("project id {s} is out of range: give one character or a number from 1 to 255");
    }
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii() && c != '\0' => Ok(c as u8),
        _ => bail!("project id {s:?} is not one ASCII character or a number from 1 to 255"),
    }
}
