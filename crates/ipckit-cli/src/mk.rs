//! `ipckit mk`: create System V objects and POSIX objects with ipcmk(1)'s flags (util-linux 2.41
//! for POSIX), and print their ids and names as ipcmk does.
//!
//! Every argument is checked before anything is created, and the objects of one invocation are
//! created all or none: if a later one fails, the earlier ones are removed again.

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ipckit::inspect::{self, PosixKind};
use ipckit::posix::{
    mq::MessageQueue,
    sem::{NamedSemaphore, SEM_VALUE_MAX},
    shm::SharedMemory,
};
use ipckit::sysv::{
    msg::{MsgQueue, OwnedMsgQueue},
    sem::{OwnedSemSet, SemSet},
    shm::{OwnedSegment, Segment},
};
use ipckit::Key;

#[derive(clap::Args)]
#[command(
    group(clap::ArgGroup::new("objects")
        .args(["shmem", "semaphore", "queue", "posix_shmem", "posix_semaphore", "posix_mqueue"])
        .multiple(true)
        .required(true)),
    group(clap::ArgGroup::new("posix")
        .args(["posix_shmem", "posix_semaphore", "posix_mqueue"])
        .multiple(true)),
    group(clap::ArgGroup::new("sysv")
        .args(["shmem", "semaphore", "queue"])
        .multiple(true)),
    after_help = "\
Unlike ipcmk, whose default mode is 0644 (readable by everyone), ipckit creates objects with mode 0600
(owner only) unless -p says otherwise. For POSIX objects the process umask applies, as for files.
System V objects are created with key IPC_PRIVATE (0) unless --key KEY gives one: refer to
private objects by the printed id, e.g. `ipckit rm -m ID`. A KEY already in use by an object of
the same kind is an error, unless --reuse says to use that object. POSIX objects are created under -n NAME (/NAME; NAME alone means /NAME), which
must be free: unlike ipcmk, an existing object of that name is an error, not reused. Remove them
with `ipckit rm --posix-shmem NAME` (--posix-mqueue, --posix-semaphore).
Ids and names are printed in ipcmk's order and words: shared memory, then message queue, then
semaphores, each System V object before its POSIX counterpart."
)]
pub struct Args {
    /// Create a shared-memory segment of SIZE bytes; SIZE may end in K, M, G, T, P or E (or KiB,
    /// MiB…), powers of 1024, or KB, MB…, powers of 1000.
    #[arg(short = 'M', long = "shmem", value_name = "SIZE", value_parser = segment_size)]
    shmem: Option<usize>,
    /// Create a semaphore set of NSEMS semaphores.
    #[arg(short = 'S', long = "semaphore", value_name = "NSEMS", value_parser = parse_nsems)]
    semaphore: Option<usize>,
    /// Create a message queue.
    #[arg(short = 'Q', long = "queue")]
    queue: bool,
    /// Create a POSIX shared-memory object of SIZE bytes (suffixes as for -M); needs -n.
    #[arg(short = 'm', long = "posix-shmem", value_name = "SIZE", value_parser = segment_size,
          requires = "name")]
    posix_shmem: Option<usize>,
    /// Create a POSIX named semaphore; needs -n.
    #[arg(short = 's', long = "posix-semaphore", requires = "name")]
    posix_semaphore: bool,
    /// Create a POSIX message queue; needs -n.
    #[arg(short = 'q', long = "posix-mqueue", requires = "name")]
    posix_mqueue: bool,
    /// The name of the POSIX objects to create: /NAME (NAME alone means /NAME). Any bytes but
    /// NUL and a second slash; printed escaped as `ls` prints names.
    #[arg(short = 'n', long = "name", value_name = "NAME", requires = "posix",
          value_parser = clap::value_parser!(OsString))]
    name: Option<OsString>,
    /// The initial value of the POSIX semaphore [default: 0].
    #[arg(long = "value", value_name = "V", value_parser = parse_value, requires = "posix_semaphore")]
    value: Option<u32>,
    /// The capacity in messages of the POSIX message queue [default: the system's, msg_default in
    /// /proc/sys/fs/mqueue].
    #[arg(long = "maxmsg", value_name = "N", value_parser = parse_positive, requires = "posix_mqueue")]
    maxmsg: Option<usize>,
    /// The largest message in bytes of the POSIX message queue [default: the system's,
    /// msgsize_default].
    #[arg(long = "msgsize", value_name = "BYTES", value_parser = parse_positive,
          requires = "posix_mqueue")]
    msgsize: Option<usize>,
    /// Create the System V objects under KEY (0x and up to 8 hex digits, or a decimal number, as
    /// `ipckit key` and ipcs print it) instead of IPC_PRIVATE, so that programs can open them by
    /// key; a key in use is an error.
    #[arg(short = 'k', long = "key", value_name = "KEY", value_parser = parse_key,
          requires = "sysv")]
    key: Option<Key>,
    /// With --key: an object of the kind already under KEY is used (and printed) instead of being
    /// an error. It keeps its size, semaphores and mode (a larger -M or -S than it has is an
    /// error), and is never removed by this command.
    #[arg(long, requires = "key")]
    reuse: bool,
    /// Permission bits of the new objects, in octal [default: 0600; ipcmk's is 0644].
    #[arg(short = 'p', long = "mode", value_name = "MODE", value_parser = parse_mode,
          default_value = "0600", hide_default_value = true)]
    mode: u32,
}

pub fn run(args: Args) -> Result<ExitCode> {
    // The POSIX name, checked for each kind asked for (their length limits differ): a bad one is
    // a command-line mistake, reported before anything is created.
    let posix_name = |kind: PosixKind, wanted: bool| -> Result<Option<OsString>, String> {
        match (&args.name, wanted) {
            (Some(name), true) => match inspect::posix_name(kind, name) {
                Ok(full) => Ok(Some(full)),
                Err(ipckit::Error::InvalidArgument { reason, .. }) => {
                    Err(format!("mk: {name:?} is not a POSIX name: {reason}"))
                }
                Err(e) => Err(format!("mk: {e}")),
            },
            _ => Ok(None),
        }
    };
    let names = (|| {
        Ok::<_, String>((
            posix_name(PosixKind::Shm, args.posix_shmem.is_some())?,
            posix_name(PosixKind::Mq, args.posix_mqueue)?,
            posix_name(PosixKind::Sem, args.posix_semaphore)?,
        ))
    })();
    let (pshm_name, pmq_name, psem_name) = match names {
        Ok(names) => names,
        Err(line) => {
            eprintln!("ipckit: {line}");
            return Ok(ExitCode::from(2));
        }
    };
    let key = args.key.unwrap_or(Key::PRIVATE);
    // An existing object under KEY is named, not just "File exists".
    let taken = |what: &'static str| {
        move |e: ipckit::Error| {
            if e.raw_os_error() == Some(libc::EEXIST) {
                anyhow::anyhow!("mk: key {key} is in use by another {what}; choose another key")
            } else {
                anyhow::Error::new(e).context("mk")
            }
        }
    };
    // semget answers a set that is too large with a bare EINVAL; say which limit it is instead.
    if let (Some(nsems), Ok(limits)) = (args.semaphore, ipckit::inspect::limits()) {
        if nsems as u64 > limits.semmsl {
            bail!(
                "mk: {nsems} semaphores exceed the limit per set (semmsl, {} on this system)",
                limits.semmsl
            );
        }
    }
    // With --reuse, an object already under KEY is used instead.
    let reuse = |e: &ipckit::Error| args.reuse && e.raw_os_error() == Some(libc::EEXIST);
    // Each System V object as (id, owning handle): anything created so far is removed again if a
    // later step fails; a reused object has no owning handle and is never removed.
    let shm: Option<(i32, Option<OwnedSegment>)> = match args.shmem {
        Some(size) => Some(
            match Segment::options()
                .size(size)
                .mode(args.mode)
                .create(true)
                .exclusive(true)
                .open(key)
            {
                Ok(new) => (new.id(), Some(new.into_owned())),
                Err(e) if reuse(&e) => {
                    let old = Segment::options().size(size).open(key).context("mk")?;
                    (old.id(), None)
                }
                Err(e) => return Err(taken("shared-memory segment")(e)),
            },
        ),
        None => None,
    };
    let pshm = match (args.posix_shmem, &pshm_name) {
        (Some(size), Some(name)) => Some(
            SharedMemory::options()
                .size(size as u64)
                .mode(args.mode)
                .exclusive(true)
                .open(name)
                .context("mk")?
                .into_owned(),
        ),
        _ => None,
    };
    let msg: Option<(i32, Option<OwnedMsgQueue>)> = match args.queue {
        true => Some(
            match MsgQueue::options()
                .mode(args.mode)
                .create(true)
                .exclusive(true)
                .open(key)
            {
                Ok(new) => (new.id(), Some(new.into_owned())),
                Err(e) if reuse(&e) => (MsgQueue::open(key).context("mk")?.id(), None),
                Err(e) => return Err(taken("message queue")(e)),
            },
        ),
        false => None,
    };
    let pmq = match &pmq_name {
        Some(name) => {
            let mut options = MessageQueue::options();
            options.mode(args.mode).exclusive(true);
            if let Some(n) = args.maxmsg {
                options.max_messages(n);
            }
            if let Some(n) = args.msgsize {
                options.message_size(n);
            }
            Some(options.open(name).context("mk")?.into_owned())
        }
        None => None,
    };
    let sem: Option<(i32, Option<OwnedSemSet>)> = match args.semaphore {
        Some(nsems) => Some(
            match SemSet::options()
                .nsems(nsems)
                .mode(args.mode)
                .create(true)
                .exclusive(true)
                .open(key)
            {
                Ok(new) => (new.id(), Some(new.into_owned())),
                Err(e) if reuse(&e) => {
                    let old = SemSet::options().nsems(nsems).open(key).context("mk")?;
                    (old.id(), None)
                }
                Err(e) => return Err(taken("semaphore set")(e)),
            },
        ),
        None => None,
    };
    let psem = match &psem_name {
        Some(name) => Some(
            NamedSemaphore::options()
                .value(args.value.unwrap_or(0))
                .mode(args.mode)
                .exclusive(true)
                .open(name)
                .context("mk")?
                .into_owned(),
        ),
        None => None,
    };

    let mut text = String::new();
    if let Some((id, _)) = &shm {
        text += &format!("Shared memory id: {id}\n");
    }
    if let Some(pshm) = &pshm {
        text += &format!(
            "POSIX shared memory name: {}\n",
            crate::escape::cell(pshm.name())
        );
    }
    if let Some((id, _)) = &msg {
        text += &format!("Message queue id: {id}\n");
    }
    if let Some(pmq) = &pmq {
        text += &format!(
            "POSIX message queue name: {}\n",
            crate::escape::cell(pmq.name())
        );
    }
    if let Some((id, _)) = &sem {
        text += &format!("Semaphore id: {id}\n");
    }
    if let Some(psem) = &psem {
        text += &format!(
            "POSIX semaphore name: {}\n",
            crate::escape::cell(psem.name())
        );
    }
    // Nobody learns the ids of objects whose report was lost; those are removed (on return).
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("mk: write to stdout (the new objects were removed again)")?;

    // Reported: from now on they outlive this process, as the user asked.
    if let Some((_, Some(shm))) = shm {
        shm.into_inner();
    }
    if let Some((_, Some(msg))) = msg {
        msg.into_inner();
    }
    if let Some((_, Some(sem))) = sem {
        sem.into_inner();
    }
    // The POSIX handles are closed; the objects stay.
    drop(pshm.map(|o| o.into_inner()));
    drop(pmq.map(|o| o.into_inner()));
    drop(psem.map(|o| o.into_inner()));
    Ok(ExitCode::SUCCESS)
}

/// A segment size: ipcmk's grammar ([`crate::units::parse_size`]), at least 1 byte.
fn segment_size(s: &str) -> Result<usize, String> {
    match usize::try_from(crate::units::parse_size(s)?) {
        Ok(0) => Err("a shared-memory segment needs a size of at least 1 byte".into()),
        Ok(bytes) => Ok(bytes),
        Err(_) => Err(format!("size {s} is too large for this machine")),
    }
}

/// A System V key as ipcs and `ipckit key` print it (`0x1234abcd`) or in decimal (signed, as
/// /proc/sysvipc shows it); 0 is IPC_PRIVATE, as without --key.
fn parse_key(s: &str) -> Result<Key, String> {
    s.parse().map_err(|_| {
        format!("{s:?} is not a key: give 0x and up to 8 hex digits, or a decimal number")
    })
}

/// A semaphore value: from 0 to SEM_VALUE_MAX.
fn parse_value(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(v) if v <= SEM_VALUE_MAX && !s.starts_with('+') => Ok(v),
        Ok(_) => Err(format!("value {s} exceeds SEM_VALUE_MAX ({SEM_VALUE_MAX})")),
        Err(_) => Err(format!(
            "{s:?} is not a semaphore value (0 to {SEM_VALUE_MAX})"
        )),
    }
}

/// A queue capacity or message size: at least 1.
fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 && !s.starts_with('+') => Ok(n),
        _ => Err(format!("{s:?} is not a number of at least 1")),
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
    fn segment_sizes_are_at_least_one_byte() {
        assert_eq!(segment_size("1"), Ok(1));
        assert_eq!(segment_size("4K"), Ok(4096));
        assert!(segment_size("0").unwrap_err().contains("at least 1 byte"));
        assert!(segment_size("0K").unwrap_err().contains("at least 1 byte"));
        assert!(segment_size("12Q").unwrap_err().contains("not a size"));
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
    fn posix_values_and_queue_sizes_are_checked() {
        assert_eq!(parse_value("0"), Ok(0));
        assert_eq!(parse_value("2147483647"), Ok(SEM_VALUE_MAX));
        for bad in ["", "-1", "+1", "2147483648", "x"] {
            assert!(parse_value(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(parse_positive("10"), Ok(10));
        for bad in ["", "0", "-1", "+1", "x"] {
            assert!(parse_positive(bad).is_err(), "{bad:?} parsed");
        }
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        use clap::{Args as _, FromArgMatches};
        let cmd = Args::augment_args(clap::Command::new("mk"));
        let m = cmd.try_get_matches_from(std::iter::once("mk").chain(argv.iter().copied()))?;
        Args::from_arg_matches(&m)
    }

    #[test]
    fn posix_flags_are_ipcmks_and_need_a_name() {
        let a = parse(&[
            "-m", "4K", "-s", "-q", "-n", "x", "--value", "2", "--maxmsg", "3",
        ])
        .unwrap();
        assert_eq!(a.posix_shmem, Some(4096));
        assert!(a.posix_semaphore && a.posix_mqueue);
        assert_eq!(
            (a.name.as_deref(), a.value, a.maxmsg),
            (Some(std::ffi::OsStr::new("x")), Some(2), Some(3))
        );
        assert!(
            parse(&["-M", "4K", "-S", "2", "-Q"]).is_ok(),
            "System V needs no name"
        );
        for argv in [
            &["-m", "4K"][..],
            &["-s"],
            &["-q"],
            &["-M", "4K", "-n", "x"],
            &["-s", "-n", "x", "--maxmsg", "3"],
            &["-q", "-n", "x", "--value", "1"],
            &["-n", "x"],
        ] {
            assert!(parse(argv).is_err(), "{argv:?} parsed");
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
