//! `ls DIR | wc -l` built by hand: two child processes joined by one `ipckit::pipe`, checked
//! against a count done in Rust.
//!
//! A shell runs `ls | wc -l` by creating a pipe, starting `ls` with the pipe's write end as its
//! stdout and `wc -l` with the read end as its stdin. This example does the same with
//! [`ipckit::pipe::pipe`], each end turned into a `Stdio`. The classic mistake is a copy of the
//! write end left open in the parent: `wc` then never sees end of file and waits forever. The ends
//! here are close-on-exec and are moved into the `Command`s, which are dropped as soon as the
//! children run.
//!
//! It then counts the directory in Rust (`read_dir`): names not starting with a dot, plus one for
//! each newline inside a name, because `ls` writes names unquoted into a pipe and `wc -l` counts
//! newlines. It prints both counts and exits non-zero if they differ.
//!
//! usage: `pipe_ls_wc [DIR]` — without DIR, a fresh temporary directory with 12 files, a hidden one
//! and a name with a newline in it, removed afterwards.

use std::error::Error;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use ipckit::pipe::pipe;

const USAGE: &str = "usage: pipe_ls_wc [DIR]";

/// A temporary directory that is removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn with_sample_files() -> std::io::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("ipckit-pipe-ls-wc-{}", std::process::id()));
        std::fs::create_dir(&dir)?;
        let dir = TempDir(dir);
        for i in 0..12 {
            std::fs::write(dir.0.join(format!("file-{i:02}")), b"")?;
        }
        std::fs::write(dir.0.join(".hidden"), b"")?; // ls skips it
        std::fs::write(dir.0.join("two\nlines"), b"")?; // ls prints it on two lines
        Ok(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The lines `ls DIR` writes into a pipe, counted from `read_dir`.
fn rust_count(dir: &Path) -> std::io::Result<usize> {
    let mut lines = 0;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let bytes = name.as_encoded_bytes();
        if !bytes.starts_with(b".") {
            lines += 1 + bytes.iter().filter(|&&b| b == b'\n').count();
        }
    }
    Ok(lines)
}

/// Runs `ls dir | wc -l` and returns what wc printed, as a number.
fn pipeline_count(dir: &Path) -> Result<usize, Box<dyn Error>> {
    let (reader, writer) = pipe()?;
    // Each Command is a temporary: it is dropped at the end of its statement, closing the
    // parent's copy of the pipe end it was given. Kept alive, it would hold the write end open
    // and wc would wait for end of file forever.
    let mut ls = Command::new("ls").arg(dir).stdout(writer).spawn()?;
    let mut wc = Command::new("wc")
        .arg("-l")
        .stdin(reader)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut output = String::new();
    wc.stdout
        .take()
        .ok_or("wc has no stdout")?
        .read_to_string(&mut output)?;
    let ls_status = ls.wait()?;
    let wc_status = wc.wait()?;
    if !ls_status.success() || !wc_status.success() {
        return Err(format!("ls exited with {ls_status}, wc -l with {wc_status}").into());
    }
    let count = output
        .trim()
        .parse()
        .map_err(|_| format!("wc -l printed {output:?}"))?;
    Ok(count)
}

fn run() -> Result<bool, Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let arg = args.next();
    if args.next().is_some() || arg.as_deref().is_some_and(|a| a == "-h" || a == "--help") {
        return Err(USAGE.into());
    }
    let (_temp, dir) = match arg {
        Some(dir) => (None, PathBuf::from(dir)),
        None => {
            let temp = TempDir::with_sample_files()?;
            let dir = temp.0.clone();
            (Some(temp), dir)
        }
    };
    let piped = pipeline_count(&dir)?;
    let counted = rust_count(&dir)?;
    println!("ls {} | wc -l: {piped}", dir.display());
    println!("read_dir count:  {counted}");
    if piped == counted {
        println!("pipe_ls_wc: both count {piped} lines");
        Ok(true)
    } else {
        println!("pipe_ls_wc: the counts differ (did the directory change meanwhile?)");
        Ok(false)
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pipe_ls_wc: {e}");
            ExitCode::from(2)
        }
    }
}
