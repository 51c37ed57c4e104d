//! `ipckit rm`: remove System V objects by id or key, and POSIX objects by name, with ipcrm(1)'s
//! flags (util-linux 2.41 for POSIX).
//!
//! The flags are processed in command-line order, as ipcrm processes them. Every argument is parsed
//! before anything is removed, so a typo cannot leave a half-done removal. An object that is missing
//! or cannot be removed gets one line on stderr; the others are still removed, and the exit status
//! says whether everything went.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::{Arg, ArgAction, ArgGroup, ArgMatches, Command, FromArgMatches};
use ipckit::inspect::{self, PosixKind, PosixMqs};
use ipckit::sysv::{msg::MsgQueue, sem::SemSet, shm::Segment};
use ipckit::{Key, Object};

/// The three kinds of System V object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Shm,
    Msg,
    Sem,
}

impl Kind {
    fn id_object(self, id: i32) -> Object {
        match self {
            Kind::Shm => Object::ShmId(id),
            Kind::Msg => Object::MsgId(id),
            Kind::Sem => Object::SemId(id),
        }
    }

    fn key_object(self, key: Key) -> Object {
        match self {
            Kind::Shm => Object::ShmKey(key),
            Kind::Msg => Object::MsgKey(key),
            Kind::Sem => Object::SemKey(key),
        }
    }
}

/// A System V or a POSIX kind, as `-a` names them (`shm`, `pshm` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Sysv(Kind),
    Posix(PosixKind),
}

impl Class {
    /// What `-a` alone removes, in this order: each System V kind, then its POSIX counterpart.
    const ALL: [Class; 6] = [
        Class::Sysv(Kind::Shm),
        Class::Posix(PosixKind::Shm),
        Class::Sysv(Kind::Msg),
        Class::Posix(PosixKind::Mq),
        Class::Sysv(Kind::Sem),
        Class::Posix(PosixKind::Sem),
    ];
}

/// One thing to remove, in the order it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Id(Kind, i32),
    Key(Kind, Key),
    /// A POSIX object by name (`/NAME`): any bytes a file name may hold, UTF-8 or not.
    Name(PosixKind, OsString),
    /// `-a`: every object of one kind, or of all kinds.
    All(Option<Class>),
}

/// The arguments of `ipckit rm`: the targets in command-line order.
///
/// clap's derive would collect each flag into its own list and lose the order between flags, so
/// the flags are declared by hand and read back with their positions.
#[derive(Debug)]
pub struct Args {
    targets: Vec<Target>,
}

/// The by-id and by-key flags: (clap id, short, long, kind, by key?, help).
const FLAGS: [(&str, char, &str, Kind, bool, &str); 6] = [
    (
        "shmem-id",
        'm',
        "shmem-id",
        Kind::Shm,
        false,
        "Remove the shared-memory segment with this id",
    ),
    (
        "shmem-key",
        'M',
        "shmem-key",
        Kind::Shm,
        true,
        "Remove the shared-memory segment with this key",
    ),
    (
        "queue-id",
        'q',
        "queue-id",
        Kind::Msg,
        false,
        "Remove the message queue with this id",
    ),
    (
        "queue-key",
        'Q',
        "queue-key",
        Kind::Msg,
        true,
        "Remove the message queue with this key",
    ),
    (
        "semaphore-id",
        's',
        "semaphore-id",
        Kind::Sem,
        false,
        "Remove the semaphore set with this id",
    ),
    (
        "semaphore-key",
        'S',
        "semaphore-key",
        Kind::Sem,
        true,
        "Remove the semaphore set with this key",
    ),
];

/// The by-name flags (long only, as in ipcrm 2.41): (clap id and long name, kind, help).
const NAME_FLAGS: [(&str, PosixKind, &str); 3] = [
    (
        "posix-shmem",
        PosixKind::Shm,
        "Remove the POSIX shared-memory object with this name",
    ),
    (
        "posix-mqueue",
        PosixKind::Mq,
        "Remove the POSIX message queue with this name",
    ),
    (
        "posix-semaphore",
        PosixKind::Sem,
        "Remove the POSIX named semaphore with this name",
    ),
];

impl clap::Args for Args {
    fn augment_args(cmd: Command) -> Command {
        let mut cmd = cmd.after_help(
            "\
Flags may be repeated and mixed; they are processed in the order given. Every id, key and name is
checked before anything is removed. Keys are 0x followed by up to 8 hex digits, or decimal; key 0
(IPC_PRIVATE) names no object and is refused: remove private objects by id. POSIX names are given
as `ipckit ls` shows them, /NAME (NAME alone means /NAME); a name may hold any bytes, not only
UTF-8 (pass them as the shell allows, such as bash's $'...' quoting).
A missing object or one that cannot be removed is reported on its own line and the others are still
removed; the exit status is then 1.
-a removes every object of the kind (shm, pshm, msg, pmsg, sem or psem), or of every kind, that you
may remove, other programs' objects included (all of them, for root); an object that vanishes
meanwhile is not an error. POSIX queues can only be enumerated while an mqueue file system is
mounted (mount -t mqueue none /dev/mqueue).",
        );
        for (id, short, long, _, by_key, help) in FLAGS {
            let arg = Arg::new(id)
                .short(short)
                .long(long)
                .help(help)
                .action(ArgAction::Append)
                .allow_negative_numbers(true);
            cmd = cmd.arg(if by_key {
                arg.value_name("KEY").value_parser(parse_key)
            } else {
                arg.value_name("ID").value_parser(parse_id)
            });
        }
        for (long, kind, help) in NAME_FLAGS {
            cmd = cmd.arg(
                Arg::new(long)
                    .long(long)
                    .help(help)
                    .value_name("NAME")
                    .action(ArgAction::Append)
                    .value_parser(
                        OsStringValueParser::new().try_map(move |s| parse_name(kind, &s)),
                    ),
            );
        }
        cmd.arg(
            Arg::new("all")
                .short('a')
                .long("all")
                .help(
                    "Remove every object of one kind (shm, pshm, msg, pmsg, sem or psem), or of all kinds",
                )
                .value_name("KIND")
                .num_args(0..=1)
                .default_missing_value("all")
                .value_parser(["shm", "pshm", "msg", "pmsg", "sem", "psem", "all"])
                .hide_possible_values(true)
                .action(ArgAction::Append),
        )
        .group(
            ArgGroup::new("targets")
                .args(FLAGS.map(|f| f.0))
                .args(NAME_FLAGS.map(|f| f.0))
                .arg("all")
                .multiple(true)
                .required(true),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for Args {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut positioned: Vec<(usize, Target)> = Vec::new();
        for (id, _, _, kind, by_key, _) in FLAGS {
            let Some(indices) = m.indices_of(id) else {
                continue;
            };
            if by_key {
                let keys = m.get_many::<Key>(id).into_iter().flatten();
                positioned.extend(indices.zip(keys).map(|(i, &k)| (i, Target::Key(kind, k))));
            } else {
                let ids = m.get_many::<i32>(id).into_iter().flatten();
                positioned.extend(indices.zip(ids).map(|(i, &n)| (i, Target::Id(kind, n))));
            }
        }
        for (id, kind, _) in NAME_FLAGS {
            let Some(indices) = m.indices_of(id) else {
                continue;
            };
            let names = m.get_many::<OsString>(id).into_iter().flatten();
            positioned.extend(
                indices
                    .zip(names)
                    .map(|(i, n)| (i, Target::Name(kind, n.clone()))),
            );
        }
        if let Some(indices) = m.indices_of("all") {
            let kinds = m.get_many::<String>("all").into_iter().flatten();
            positioned.extend(indices.zip(kinds).map(|(i, k)| {
                let class = match k.as_str() {
                    "shm" => Some(Class::Sysv(Kind::Shm)),
                    "msg" => Some(Class::Sysv(Kind::Msg)),
                    "sem" => Some(Class::Sysv(Kind::Sem)),
                    "pshm" => Some(Class::Posix(PosixKind::Shm)),
                    "pmsg" => Some(Class::Posix(PosixKind::Mq)),
                    "psem" => Some(Class::Posix(PosixKind::Sem)),
                    _ => None,
                };
                (i, Target::All(class))
            }));
        }
        positioned.sort_by_key(|&(i, _)| i);
        Ok(Args {
            targets: positioned.into_iter().map(|(_, t)| t).collect(),
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut ok = true;
    for target in args.targets {
        match target {
            Target::Id(kind, id) => {
                if let Err(e) = remove_by_id(kind, id) {
                    complain(&kind.id_object(id), &e);
                    ok = false;
                }
            }
            Target::Key(kind, key) => {
                if let Err(e) = remove_by_key(kind, key) {
                    complain(&kind.key_object(key), &e);
                    ok = false;
                }
            }
            Target::Name(kind, name) => {
                if let Err(e) = remove_by_name(kind, &name) {
                    complain(&name_object(kind, &name), &e);
                    ok = false;
                }
            }
            Target::All(classes) => {
                for class in classes.map_or(Class::ALL.to_vec(), |class| vec![class]) {
                    ok &= match class {
                        Class::Sysv(kind) => remove_all(kind),
                        Class::Posix(kind) => remove_all_posix(kind),
                    };
                }
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn remove_by_id(kind: Kind, id: i32) -> ipckit::Result<()> {
    match kind {
        Kind::Shm => Segment::from_id(id).remove(),
        Kind::Msg => MsgQueue::from_id(id).remove(),
        Kind::Sem => SemSet::from_id(id).remove(),
    }
}

fn remove_by_key(kind: Kind, key: Key) -> ipckit::Result<()> {
    match kind {
        Kind::Shm => Segment::open(key)?.remove(),
        Kind::Msg => MsgQueue::open(key)?.remove(),
        Kind::Sem => SemSet::open(key)?.remove(),
    }
}

fn remove_by_name(kind: PosixKind, name: &OsStr) -> ipckit::Result<()> {
    inspect::unlink_posix(kind, name)
}

/// The object named `name`, for messages: its name escaped as a table shows it.
fn name_object(kind: PosixKind, name: &OsStr) -> Object {
    kind.object(&crate::escape::cell(name))
}

/// Removes every POSIX object of `kind` that is listed now, as [`remove_all`] does; queues cannot
/// be listed without a mounted mqueue file system, which is reported as a failure.
fn remove_all_posix(kind: PosixKind) -> bool {
    let names: ipckit::Result<Vec<OsString>> = match kind {
        PosixKind::Shm => {
            inspect::posix_shm_objects().map(|v| v.into_iter().map(|s| s.name).collect())
        }
        PosixKind::Sem => {
            inspect::posix_semaphores().map(|v| v.into_iter().map(|s| s.name).collect())
        }
        PosixKind::Mq => match inspect::posix_mqueues() {
            Ok(PosixMqs::Listed(v)) => Ok(v.into_iter().map(|q| q.name).collect()),
            Ok(PosixMqs::NotMounted) => {
                say(&format!(
                    "ipckit: rm: POSIX message queues cannot be listed: no mqueue file system is \
                     mounted; mount one with `{}`",
                    inspect::MOUNT_MQUEUE
                ));
                return false;
            }
            Err(e) => Err(e),
        },
    };
    let names = match names {
        Ok(names) => names,
        Err(e) => {
            say(&format!("ipckit: rm: {e}"));
            return false;
        }
    };
    let mut ok = true;
    for name in names {
        match remove_by_name(kind, &name) {
            Err(e) if !is_missing(&e) => {
                complain(&name_object(kind, &name), &e);
                ok = false;
            }
            _ => {}
        }
    }
    ok
}

/// Removes every object of `kind` that is listed now; reports failures and returns whether there
/// were none. An object that disappears between the listing and its removal is not a failure.
fn remove_all(kind: Kind) -> bool {
    let ids: ipckit::Result<Vec<i32>> = match kind {
        Kind::Shm => inspect::shm_segments().map(|v| v.iter().map(|s| s.id).collect()),
        Kind::Msg => inspect::msg_queues().map(|v| v.iter().map(|q| q.id).collect()),
        Kind::Sem => inspect::sem_sets().map(|v| v.iter().map(|s| s.id).collect()),
    };
    let ids = match ids {
        Ok(ids) => ids,
        Err(e) => {
            say(&format!("ipckit: rm: {e}"));
            return false;
        }
    };
    let mut ok = true;
    for id in ids {
        match remove_by_id(kind, id) {
            Err(e) if !is_missing(&e) => {
                complain(&kind.id_object(id), &e);
                ok = false;
            }
            _ => {}
        }
    }
    ok
}

/// Whether an error means the object does not exist: `ENOENT` from a lookup by key, `EINVAL` or
/// `EIDRM` from an operation on an id that names nothing (any more).
fn is_missing(e: &ipckit::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::EINVAL | libc::EIDRM)
    )
}

/// "`object`: why", for an error of an operation on `object`: missing objects and permission
/// problems in plain words, anything else as the library says it.
pub fn describe(object: &Object, e: &ipckit::Error) -> String {
    let why = match e.raw_os_error() {
        _ if is_missing(e) => "no such object".to_owned(),
        Some(libc::EPERM) => format!(
            "Permission denied: not its owner or creator (os error {})",
            libc::EPERM
        ),
        Some(n) => io::Error::from_raw_os_error(n).to_string(),
        None => match e {
            ipckit::Error::InvalidArgument { reason, .. } => reason.clone(),
            _ => e.to_string(),
        },
    };
    format!("{object}: {why}")
}

fn complain(object: &Object, e: &ipckit::Error) {
    say(&format!("ipckit: rm: {}", describe(object, e)));
}

/// One line on stderr; a closed stderr is not worth a panic.
fn say(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// An object id: a decimal number from 0 to 2147483647, as ipcs prints them.
pub fn parse_id(s: &str) -> Result<i32, String> {
    match s.parse::<i32>() {
        Ok(id) if id >= 0 && !s.starts_with('+') => Ok(id),
        _ => Err(format!(
            "{s:?} is not an id: give a decimal number from 0 to 2147483647"
        )),
    }
}

/// A POSIX name for removal: `/NAME` as ls shows it, or `NAME`; any bytes but a slash past the
/// first and NUL.
fn parse_name(kind: PosixKind, s: &OsStr) -> Result<OsString, String> {
    inspect::posix_name(kind, s).map_err(|e| match e {
        ipckit::Error::InvalidArgument { reason, .. } => {
            format!(
                "\"{}\" is not a POSIX name: {reason}",
                crate::escape::cell(s)
            )
        }
        e => e.to_string(),
    })
}

/// A key for removal: as ipcs prints it, and never `IPC_PRIVATE`.
fn parse_key(s: &str) -> Result<Key, String> {
    let key: Key = s.parse().map_err(|_| {
        format!("{s:?} is not a key: give 0x and up to 8 hex digits, or a decimal number")
    })?;
    if key.is_private() {
        return Err(
            "key 0 is IPC_PRIVATE, which names no object: remove private objects by id".into(),
        );
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    use clap::Args as _;

    fn parse(argv: &[&str]) -> Result<Vec<Target>, clap::Error> {
        let cmd = Args::augment_args(Command::new("rm"));
        let m = cmd.try_get_matches_from(std::iter::once("rm").chain(argv.iter().copied()))?;
        Ok(Args::from_arg_matches(&m)?.targets)
    }

    #[test]
    fn flags_keep_their_command_line_order() {
        assert_eq!(
            parse(&[
                "-q", "3", "-M", "0x10", "-m", "1", "-S", "17", "-q", "2", "-s", "0", "-Q", "-1"
            ])
            .unwrap(),
            [
                Target::Id(Kind::Msg, 3),
                Target::Key(Kind::Shm, Key::new(16)),
                Target::Id(Kind::Shm, 1),
                Target::Key(Kind::Sem, Key::new(17)),
                Target::Id(Kind::Msg, 2),
                Target::Id(Kind::Sem, 0),
                Target::Key(Kind::Msg, Key::new(-1)),
            ]
        );
    }

    #[test]
    fn long_forms_are_ipcrms() {
        assert_eq!(
            parse(&[
                "--shmem-id",
                "1",
                "--shmem-key",
                "2",
                "--queue-id",
                "3",
                "--queue-key",
                "4",
                "--semaphore-id",
                "5",
                "--semaphore-key=6",
            ])
            .unwrap(),
            [
                Target::Id(Kind::Shm, 1),
                Target::Key(Kind::Shm, Key::new(2)),
                Target::Id(Kind::Msg, 3),
                Target::Key(Kind::Msg, Key::new(4)),
                Target::Id(Kind::Sem, 5),
                Target::Key(Kind::Sem, Key::new(6)),
            ]
        );
    }

    #[test]
    fn posix_names_mix_with_system_v_flags_in_order() {
        assert_eq!(
            parse(&[
                "--posix-shmem",
                "/a",
                "-m",
                "1",
                "--posix-mqueue=b",
                "--posix-semaphore",
                "/c",
                "--posix-shmem",
                "d",
            ])
            .unwrap(),
            [
                Target::Name(PosixKind::Shm, "/a".into()),
                Target::Id(Kind::Shm, 1),
                Target::Name(PosixKind::Mq, "/b".into()),
                Target::Name(PosixKind::Sem, "/c".into()),
                Target::Name(PosixKind::Shm, "/d".into()),
            ]
        );
        for argv in [
            ["--posix-shmem", "/a/b"],
            ["--posix-mqueue", "/"],
            ["--posix-semaphore", ".."],
            ["--posix-shmem", ""],
        ] {
            assert!(parse(&argv).is_err(), "{argv:?} parsed");
        }
        let long = "x".repeat(252);
        assert!(
            parse(&["--posix-semaphore", &long]).is_err(),
            "past SEM_NAME_MAX"
        );
        assert!(parse(&["--posix-mqueue", &long]).is_ok());
    }

    #[test]
    fn all_takes_an_optional_kind() {
        assert_eq!(parse(&["-a"]).unwrap(), [Target::All(None)]);
        assert_eq!(
            parse(&[
                "-m",
                "4",
                "-a",
                "shm",
                "--all=msg",
                "-a",
                "-s",
                "5",
                "--all",
                "sem"
            ])
            .unwrap(),
            [
                Target::Id(Kind::Shm, 4),
                Target::All(Some(Class::Sysv(Kind::Shm))),
                Target::All(Some(Class::Sysv(Kind::Msg))),
                Target::All(None),
                Target::Id(Kind::Sem, 5),
                Target::All(Some(Class::Sysv(Kind::Sem))),
            ]
        );
        assert_eq!(
            parse(&["-a", "pshm", "--all=pmsg", "-a", "psem"]).unwrap(),
            [
                Target::All(Some(Class::Posix(PosixKind::Shm))),
                Target::All(Some(Class::Posix(PosixKind::Mq))),
                Target::All(Some(Class::Posix(PosixKind::Sem))),
            ]
        );
        assert!(parse(&["-a", "files"]).is_err());
        assert!(parse(&["-a", "-m", "x"]).is_err());
    }

    #[test]
    fn nothing_to_remove_is_a_usage_error() {
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn malformed_ids_and_keys_are_rejected_while_parsing() {
        for argv in [
            ["-m", "abc"],
            ["-m", "-1"],
            ["-q", "2147483648"],
            ["-s", ""],
            ["-M", "0xZZ"],
            ["-Q", "0x123456789"],
            ["-S", "key"],
            ["-M", "0"],
            ["-Q", "0x0"],
            ["-S", "0x00000000"],
        ] {
            assert!(parse(&argv).is_err(), "{argv:?} parsed");
        }
    }

    #[test]
    fn missing_posix_objects_are_described_in_plain_words() {
        let name = "/ipckit-rm-unit-never-created";
        let e = remove_by_name(PosixKind::Mq, name.as_ref()).unwrap_err();
        assert_eq!(
            describe(&PosixKind::Mq.object(name), &e),
            format!("POSIX message queue {name}: no such object")
        );
    }

    #[test]
    fn missing_objects_are_described_in_plain_words() {
        let e = Segment::from_id(i32::MAX).remove().unwrap_err();
        assert_eq!(
            describe(&Object::ShmId(i32::MAX), &e),
            "System V shared memory id 2147483647: no such object"
        );
    }

    /// `EIDRM` is 43 on x86 and ARM but 36 on MIPS and 77 on SPARC: the number comes from
    /// libc, so an object removed under an operation reads as missing on every architecture.
    #[test]
    fn removed_under_an_operation_is_missing() {
        let e = ipckit::Error::Os {
            op: "semop",
            object: Object::SemId(7),
            os_error: io::Error::from_raw_os_error(libc::EIDRM),
        };
        assert!(is_missing(&e));
        assert_eq!(
            describe(&Object::SemId(7), &e),
            "System V semaphore set id 7: no such object"
        );
    }
}
