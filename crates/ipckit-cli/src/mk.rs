//! `ipckit mk`: create System V objects with ipcmk(1)'s flags, and print their ids as ipcmk does.
//!
//! Every argument is checked before anything is created, and the objects of one invocation are
//! created all or none: if a later one fails, the earlier ones are removed again.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ipckit::sysv::{msg::MsgQueue, sem::SemSet, shm::Segment};
use ipckit::Key;

#[derive(clap::Args)]
#[command(
    group(clap::ArgGroup::new("objects").args(["shmem", "semaphore", "queue"]).multiple(true).required(true)),
    after_help = "\
Unlike ipcmk, whose default mode is 0644 (readable by everyone), ipckit creates objects with mode 0600
(owner only) unless -p says otherwise.
Objects are created with key IPC_PRIVATE (0): refer to them by the printed id, e.g. `ipckit rm -m ID`.
The ids are printed in ipcmk's order and words: shared memory, then message queue, then semaphores."
)]
pub struct Args {
    /// Create a shared-memory segment of SIZE bytes; SIZE may end in K, M, G or T (or KiB, MiB,
    /// GiB, TiB), powers of 1024.
    #[arg(short = 'M', long = "shmem", value_name = "SIZE", value_parser = parse_size)]
    shmem: Option<usize>,
    /// Create a semaphore set of NSEMS semaphores.
    #[arg(short = 'S', long = "semaphore", value_name = "NSEMS", value_parser = parse_nsems)]
    semaphore: Option<usize>,
    /// Create a message queue.
    #[arg(short = 'Q', long = "queue")]
    queue: bool,
    /// Permission bits of the new objects, in octal [default: 0600; ipcmk's is 0644].
    #[arg(short = 'p', long = "mode", value_name = "MODE", value_parser = parse_mode,
          default_value = "0600", hide_default_value = true)]
    mode: u32,
}

pub fn run(args: Args) -> Result<ExitCode> {
    // semget answers a set that is too large with a bare EINVAL; say which limit it is instead.
    if let (Some(nsems), Ok(limits)) = (args.semaphore, ipckit::inspect::limits()) {
        if nsems as u64 > limits.semmsl {
            bail!(
                "mk: {nsems} semaphores exceed the limit per set (semmsl, {} on this system)",
                limits.semmsl
            );
        }
    }
    // Owning handles: anything created so far is removed again if a later step fails.
    let shm = match args.shmem {
        Some(size) => Some(
            Segment::options()
                .size(size)
                .mode(args.mode)
                .create(true)
                .exclusive(true)
                .open(Key::PRIVATE)
                .context("mk")?
                .into_owned(),
        ),
        None => None,
    };
    let msg = match args.queue {
        true => Some(
            MsgQueue::options()
                .mode(args.mode)
                .create(true)
                .exclusive(true)
                .open(Key::PRIVATE)
                .context("mk")?
                .into_owned(),
        ),
        false => None,
    };
    let sem = match args.semaphore {
        Some(nsems) => Some(
            SemSet::options()
                .nsems(nsems)
                .mode(args.mode)
                .create(true)
                .exclusive(true)
                .open(Key::PRIVATE)
                .context("mk")?
                .into_owned(),
        ),
        None => None,
    };

    let mut text = String::new();
    if let Some(shm) = &shm {
        text += &format!("Shared memory id: {}\n", shm.id());
    }
    if let Some(msg) = &msg {
        text += &format!("Message queue id: {}\n", msg.id());
    }
    if let Some(sem) = &sem {
        text += &format!("Semaphore id: {}\n", sem.id());
    }
    // Nobody learns the ids of objects whose report was lost; those are removed (on return).
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("mk: write to stdout (the new objects were removed again)")?;

    // Reported: from now on they outlive this process, as the user asked.
    if let Some(shm) = shm {
        shm.into_inner();
    }
    if let Some(msg) = msg {
        msg.into_inner();
    }
    if let Some(sem) = sem {
        sem.into_inner();
    }
    Ok(ExitCode::SUCCESS)
}

/// A segment size: a decimal number of bytes, optionally followed by K, M, G or T (also KiB, MiB,
/// GiB, TiB; the letter in either case), each a power of 1024.
fn parse_size(s: &str) -> Result<usize, String> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits);
    let bad = || {
        format!("{s:?} is not a size: give a number of bytes, optionally followed by K, M, G or T")
    };
    if number.is_empty() {
        return Err(bad());
    }
    let shift = match suffix.strip_suffix("iB").unwrap_or(suffix) {
        "" if suffix.is_empty() => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return Err(bad()),
    };
    let too_large = || format!("size {s} is too large for this machine");
    let bytes = number
        .parse::<u64>()
        .map_err(|_| too_large())?
        .checked_mul(1 << shift)
        .ok_or_else(too_large)?;
    match usize::try_from(bytes) {
        Ok(0) => Err("a shared-memory segment needs a size of at least 1 byte".into()),
        Ok(bytes) => Ok(bytes),
        Err(_) => Err(too_large()),
    }
}

/// A number of semaphores: at least 1.
fn parse_nsems(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("a semaphore set needs at least 1 semaphore".into()),
        Ok(n) if !s.starts_with('+') => Ok(n),
        _ => Err(format!("{s:?} is not a number of semaphores")),
    }
}

/// Permission bits in octal, with or without a leading 0 or 0o: at most 0777.
fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("{s:?} is not an octal mode such as 0640"));
    }
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "mode {s} has bits outside 0777: only the read, write and execute bits apply"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("1"), Ok(1));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("3M"), Ok(3 << 20));
        assert_eq!(parse_size("3MiB"), Ok(3 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in [
            "", "0", "0K", "K", "12Q", "4KB", "4 K", "-4", "+4", "4iB", "4Ki", "0x10", "1.5M",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn sizes_that_overflow_are_refused() {
        let too_large = |s: &str| parse_size(s).unwrap_err().contains("too large");
        assert!(too_large("18446744073709551616"));
        assert!(too_large("99999999999999999999999G"));
        assert!(too_large("16777216T"));
        assert!(too_large("17179869184G"));
    }

    #[test]
    fn modes_are_octal_permission_bits() {
        assert_eq!(parse_mode("640"), Ok(0o640));
        assert_eq!(parse_mode("0640"), Ok(0o640));
        assert_eq!(parse_mode("0o640"), Ok(0o640));
        assert_eq!(parse_mode("0"), Ok(0));
        assert_eq!(parse_mode("777"), Ok(0o777));
        for bad in [
            "",
            "999",
            "0o",
            "1777",
            "4000",
            "0x1ff",
            "rw",
            "-640",
            "99999999999999",
        ] {
            assert!(parse_mode(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn semaphore_counts_are_positive() {
        assert_eq!(parse_nsems("3"), Ok(3));
        for bad in ["", "0", "-1", "+1", "x"] {
            assert!(parse_nsems(bad).is_err(), "{bad:?} parsed");
        }
    }
}
