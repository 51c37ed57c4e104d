//! `ipckit gc`: find the IPC objects that processes left behind, say why each is an orphan, and
//! with `--yes` remove them.
//!
//! The rules and the removal are `ipckit::inspect::gc`'s; this file parses the flags and prints.
//! Without `--yes` nothing is changed and the exit status is 0. With `--yes` each orphan is
//! checked again right before it is removed; one that cannot be removed gets a line on stderr and
//! the exit status is 1.
//!
//! JSON is one array with an object per orphan: `"kind"` (as in `ls --json`), `"id"` and `"key"`
//! (System V) or `"name"` (POSIX), `"reason"`, and `"action"`: `"reported"` without `--yes`, else
//! `"removed"`, `"gone"` (removed by someone else meanwhile), `"in-use"` (no longer an orphan,
//! kept) or `"failed"` with `"error"`.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::builder::{OsStringValueParser, TypedValueParser};
use ipckit::inspect::gc::{self, format_duration, Kind, Orphan, Policy, ProcLiveness, Removal};
use ipckit::inspect::{self, PosixKind, PosixMqs};
use ipckit::Object;
use serde::Serialize;

use crate::output::{self, key_hex};

#[derive(clap::Args)]
#[command(after_help = "\
An object is an orphan when:
  System V shared memory: nothing is attached, its creator and last user (cpid, lpid) have exited
    and it was not attached, detached or changed within --older-than;
  System V semaphore sets: the processes that last operated on its semaphores have exited (the
    kernel records no creator) and it was not operated on or changed within --older-than;
  System V message queues: the last sender and receiver have exited and nothing was sent, received
    or changed within --older-than;
  POSIX shared memory and semaphores: no live process maps it or holds it open and its file was not
    modified or changed within --older-than;
  POSIX message queues: no live process holds it open or waits for its notification, and nothing
    was sent or received, nor was it created, within --older-than (its file's mtime: reading the
    queue's file, as listing does, changes its ctime); a queue you cannot read is kept.
Every kind must be untouched for --older-than: System V segments count their creation, last attach
and last detach (ctime, atime, dtime), so one made by `ipckit mk -M` is safe until a program
attaches it.
A process counts as alive while /proc/PID exists and is not a zombie: a PID reused by another
process keeps an object (the safe side). Without privilege, other users' processes cannot be inspected, so their use of an
object is not seen; their objects cannot be removed by you either.
With --yes, each orphan is checked again right before it is removed; an object that is in use
again, or gone, is reported and left alone.")]
pub struct Args {
    /// Remove the orphans found (without it, only report them).
    #[arg(long)]
    yes: bool,
    /// Print JSON instead of lines.
    #[arg(long)]
    json: bool,
    /// How long an object must have been untouched: 30s, 10m, 2h, 1d, or combined (1h30m).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = crate::units::parse_duration)]
    older_than: Duration,
    /// Consider only this object (KIND:ID or KIND:NAME, e.g. sysv-shm:5 or posix-shm:/x); may be
    /// repeated. Used by the tests to stay within their own objects.
    #[arg(long = "only", value_name = "KIND:OBJECT", hide = true,
          value_parser = OsStringValueParser::new().try_map(|s| parse_only(&s)))]
    only: Vec<(Kind, Object)>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let snapshot = gc::Snapshot::read(&Kind::ALL).context("gc: cannot list the IPC objects")?;
    if snapshot.posix_mq == Some(PosixMqs::NotMounted) {
        say(&format!(
            "ipckit: gc: POSIX message queues are not checked: no mqueue file system is mounted; \
             mount one with `{}`",
            inspect::MOUNT_MQUEUE
        ));
    }
    let unreadable = snapshot
        .posix_mq
        .as_ref()
        .map_or(&[][..], PosixMqs::queues)
        .iter()
        .filter(|q| q.used_bytes.is_none())
        .count();
    if unreadable > 0 {
        say(&format!(
            "ipckit: gc: {unreadable} POSIX message queue(s) could not be read (no read \
             permission) and are kept"
        ));
    }
    let policy = Policy::new(args.older_than);
    let orphans: Vec<Orphan> = gc::find_orphans(&snapshot, &policy, &ProcLiveness)
        .into_iter()
        .filter(|o| {
            args.only.is_empty()
                || args
                    .only
                    .iter()
                    .any(|(kind, object)| o.kind == *kind && o.object == *object)
        })
        .collect();

    let mut ok = true;
    let mut rows = Vec::new();
    for orphan in &orphans {
        let (action, error) = if args.yes {
            match gc::remove_orphan(orphan, args.older_than, &ProcLiveness) {
                Ok(Removal::Removed) => ("removed", None),
                Ok(Removal::Gone) => ("gone", None),
                Ok(Removal::InUse) => ("in-use", None),
                Ok(_) => ("in-use", None),
                Err(e) => {
                    ok = false;
                    say(&format!(
                        "ipckit: gc: {}",
                        crate::rm::describe(&orphan.object, &e)
                    ));
                    ("failed", Some(e.to_string()))
                }
            }
        } else {
            ("reported", None)
        };
        rows.push(Row::new(orphan, action, error));
    }

    if args.json {
        output::print_json(&rows)?;
    } else {
        output::emit(&text(&rows, &args))?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One orphan, as printed: the library's serialization of it (`kind`, `id` and `key` or `name`,
/// `reason`) and what this run did.
#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    orphan: &'a Orphan,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl<'a> Row<'a> {
    fn new(orphan: &'a Orphan, action: &'static str, error: Option<String>) -> Row<'a> {
        Row {
            orphan,
            action,
            error,
        }
    }

    /// `id 5 (key 0x00000000)` or `/name`.
    fn object(&self) -> String {
        let o = self.orphan;
        match (o.os_name(), o.id(), o.key) {
            (Some(name), _, _) => crate::escape::cell(name),
            (None, Some(id), Some(key)) => format!("id {id} (key {})", key_hex(key)),
            (None, Some(id), None) => format!("id {id}"),
            _ => String::new(),
        }
    }
}

/// One line per orphan, then a summary.
fn text(rows: &[Row], args: &Args) -> String {
    let mut out = String::new();
    for r in rows {
        let verb = match r.action {
            "reported" => "",
            "removed" => "removed ",
            "gone" => "gone already: ",
            "in-use" => "kept, no longer an orphan: ",
            _ => "not removed: ",
        };
        out += &format!(
            "{verb}{} {}: {}\n",
            r.orphan.kind.as_str(),
            r.object(),
            r.orphan.reason
        );
    }
    let n = rows.len();
    out += &match (n, args.yes) {
        (0, _) => format!(
            "no orphans found (untouched for at least {})\n",
            format_duration(args.older_than)
        ),
        (_, false) => format!("{n} orphan(s) found; run with --yes to remove them\n"),
        (_, true) => {
            let removed = rows.iter().filter(|r| r.action == "removed").count();
            format!("{removed} of {n} orphan(s) removed\n")
        }
    };
    out
}

/// One line on stderr; a closed stderr is not worth a panic.
fn say(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// `KIND:ID` (System V) or `KIND:NAME` (POSIX, any bytes), kinds as `ls --json` names them.
fn parse_only(s: &OsStr) -> Result<(Kind, Object), String> {
    let bytes = s.as_bytes();
    let colon = bytes
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| format!("\"{}\" is not KIND:ID or KIND:NAME", crate::escape::cell(s)))?;
    let kind = String::from_utf8_lossy(&bytes[..colon]);
    let what = OsStr::from_bytes(&bytes[colon + 1..]);
    let id = || crate::rm::parse_id(&what.to_string_lossy());
    // Orphans name their objects by inspect::display_name.
    let name = |k: PosixKind| {
        inspect::posix_name(k, what)
            .map(|n| inspect::display_name(&n).into_owned())
            .map_err(|e| e.to_string())
    };
    Ok(match kind.as_ref() {
        "sysv-shm" => (Kind::SysvShm, Object::ShmId(id()?)),
        "sysv-sem" => (Kind::SysvSem, Object::SemId(id()?)),
        "sysv-msg" => (Kind::SysvMsg, Object::MsgId(id()?)),
        "posix-shm" => (
            Kind::PosixShm,
            Object::PosixShm(name(PosixKind::Shm)?.into()),
        ),
        "posix-sem" => (
            Kind::PosixSem,
            Object::PosixSem(name(PosixKind::Sem)?.into()),
        ),
        "posix-mq" => (Kind::PosixMq, Object::PosixMq(name(PosixKind::Mq)?.into())),
        _ => {
            return Err(format!(
                "unknown kind {kind:?} in \"{}\"",
                crate::escape::cell(s)
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_a_kind_and_an_object() {
        let parse_only = |s: &str| parse_only(OsStr::new(s));
        assert_eq!(
            parse_only("sysv-shm:5"),
            Ok((Kind::SysvShm, Object::ShmId(5)))
        );
        assert_eq!(
            parse_only("posix-mq:jobs"),
            Ok((Kind::PosixMq, Object::PosixMq("/jobs".into())))
        );
        for bad in ["sysv-shm", "sysv-shm:x", "posix-shm:/a/b", "files:1"] {
            assert!(parse_only(bad).is_err(), "{bad:?} parsed");
        }
    }
}
