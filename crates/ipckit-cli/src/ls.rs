//! `ipckit ls`: the IPC objects of the machine, their limits and their usage (what `ipcs` shows),
//! as tables or as JSON.
//!
//! JSON is one array with an object per IPC object. Every object has `"kind"` (`"sysv-shm"`,
//! `"sysv-sem"`, `"sysv-msg"`, `"posix-shm"`, `"posix-sem"`, `"posix-mq"`), the owner fields and
//! `"perms"`; System V objects add `"key"` and `"id"`, POSIX objects `"name"` and their file's
//! `"mtime"` and `"ctime"`, and each kind its own fields. A POSIX name is a file name and need not
//! be UTF-8: `"name"` is the name itself when it is UTF-8, otherwise the name with each byte that
//! is not part of a UTF-8 character written `\xNN`, followed by `"name_bytes"`, every byte of the
//! name as a number. Tables escape names as lsipc does: control characters, bytes that are not
//! UTF-8 and a backslash before `x` as `\xNN`. A value that cannot be read (the value of
//! a semaphore this user may not open, the counts of such a queue) is `null`. When no `mqueue` file
//! system is mounted, POSIX queues cannot be listed: stderr says so and how to mount it, and the
//! JSON simply has none. `-l --json` and `-u --json` print one object with every System V limit or
//! count, whatever the kind flags. A System V segment's `"attachments"` lists each attached PID
//! with how many times it has the segment attached (`[{"pid": 12, "count": 211}]`, from its
//! maps); the `-p` table shows such a PID as `12(x211)`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result};
use ipckit::inspect::{
    self, Attachments, FileId, Limits, MsgInfo, Names, PosixMqInfo, PosixMqs, PosixSemInfo,
    PosixShmInfo, SemInfo, ShmInfo, Usage, Users,
};
use serde::Serialize;

use crate::output::{self, key_hex, local_time, perms_short, Align, Table};

#[derive(clap::Args)]
pub struct Args {
    /// System V shared-memory segments.
    #[arg(short = 'm', long = "shmems")]
    shm: bool,
    /// System V message queues.
    #[arg(short = 'q', long = "queues")]
    msg: bool,
    /// System V semaphore sets.
    #[arg(short = 's', long = "semaphores")]
    sem: bool,
    /// POSIX shared memory (/dev/shm).
    #[arg(short = 'M', long = "posix-shmems")]
    posix_shm: bool,
    /// POSIX message queues (/dev/mqueue).
    #[arg(short = 'Q', long = "posix-mqueues")]
    posix_mq: bool,
    /// POSIX named semaphores (/dev/shm/sem.*).
    #[arg(short = 'S', long = "posix-semaphores")]
    posix_sem: bool,
    /// Every kind, System V and POSIX (the default).
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Show the times: attached/detached/changed, last operation, send/receive.
    #[arg(short = 't', long = "time", conflicts_with_all = ["limits", "usage"])]
    time: bool,
    /// Show the PIDs: creator and last user, and for segments the processes attached now.
    #[arg(short = 'p', long = "pid", conflicts_with_all = ["limits", "usage"])]
    pid: bool,
    /// Show creator and owner: user and group names.
    #[arg(short = 'c', long = "creator", conflicts_with_all = ["limits", "usage"])]
    creator: bool,
    /// Show the system's limits instead of the objects.
    #[arg(short = 'l', long = "limits", conflicts_with = "usage")]
    limits: bool,
    /// Show what the objects use instead of the objects.
    #[arg(short = 'u', long = "summary")]
    usage: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// The kinds of objects `ls` knows, in the order it lists them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    SysvShm,
    SysvSem,
    SysvMsg,
    PosixShm,
    PosixSem,
    PosixMq,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::SysvShm,
        Kind::SysvSem,
        Kind::SysvMsg,
        Kind::PosixShm,
        Kind::PosixSem,
        Kind::PosixMq,
    ];
}

impl Args {
    /// The kinds selected by flags; none (or -a) means every kind.
    fn kinds(&self) -> Vec<Kind> {
        let chosen: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| match k {
                Kind::SysvShm => self.shm,
                Kind::SysvSem => self.sem,
                Kind::SysvMsg => self.msg,
                Kind::PosixShm => self.posix_shm,
                Kind::PosixSem => self.posix_sem,
                Kind::PosixMq => self.posix_mq,
            })
            .collect();
        if self.all || chosen.is_empty() {
            Kind::ALL.to_vec()
        } else {
            chosen
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let kinds = args.kinds();
    if args.limits {
        let limits = inspect::limits().context("cannot read the IPC limits")?;
        show_limits(&limits, &kinds, args.json)?;
    } else if args.usage {
        let usage = inspect::usage().context("cannot read the IPC usage")?;
        show_usage(&usage, &kinds, args.json)?;
    } else {
        let listing = Listing::read(&kinds, args.json || args.pid)?;
        if listing.mqueue_not_mounted {
            eprintln!(
                "ipckit: ls: POSIX message queues cannot be listed: no mqueue file system is \
                 mounted; mount one with `{}`",
                inspect::MOUNT_MQUEUE
            );
        }
        let unreadable = listing
            .posix_mq
            .iter()
            .filter(|q| q.used_bytes.is_none())
            .count();
        if unreadable > 0 {
            eprintln!(
                "ipckit: ls: {unreadable} POSIX message queue(s) could not be read (no read \
                 permission): listed with owner and mode only"
            );
        }
        if args.json {
            output::print_json(&listing.json())?;
        } else {
            output::emit(&listing.tables(&args))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Everything a listing shows, read once.
struct Listing {
    kinds: Vec<Kind>,
    shm: Vec<ShmInfo>,
    sem: Vec<SemInfo>,
    msg: Vec<MsgInfo>,
    /// shmid → attached PIDs and how many times each (read only when shown).
    attached: BTreeMap<i32, Vec<Attachments>>,
    posix_shm: Vec<PosixShmInfo>,
    posix_sem: Vec<PosixSemInfo>,
    posix_mq: Vec<PosixMqInfo>,
    /// POSIX queues were asked for, but no mqueue file system is mounted.
    mqueue_not_mounted: bool,
    /// The processes using each POSIX object (read only when shown).
    users: BTreeMap<FileId, Users>,
    names: Names,
}

impl Listing {
    fn read(kinds: &[Kind], with_pids: bool) -> Result<Listing> {
        let has = |k| kinds.contains(&k);
        let mut l = Listing {
            kinds: kinds.to_vec(),
            shm: Vec::new(),
            sem: Vec::new(),
            msg: Vec::new(),
            attached: BTreeMap::new(),
            posix_shm: Vec::new(),
            posix_sem: Vec::new(),
            posix_mq: Vec::new(),
            mqueue_not_mounted: false,
            users: BTreeMap::new(),
            names: Names::load(),
        };
        if has(Kind::SysvShm) {
            l.shm = inspect::shm_segments()?;
            if with_pids {
                l.attached = inspect::shm_attachments()?;
            }
        }
        if has(Kind::SysvSem) {
            l.sem = inspect::sem_sets()?;
        }
        if has(Kind::SysvMsg) {
            l.msg = inspect::msg_queues()?;
        }
        if has(Kind::PosixShm) {
            l.posix_shm = inspect::posix_shm_objects()?;
        }
        if has(Kind::PosixSem) {
            l.posix_sem = inspect::posix_semaphores()?;
        }
        if has(Kind::PosixMq) {
            match inspect::posix_mqueues()? {
                PosixMqs::Listed(queues) => l.posix_mq = queues,
                PosixMqs::NotMounted => l.mqueue_not_mounted = true,
            }
        }
        // Shared memory shows its attached PIDs in every view.
        if with_pids || has(Kind::PosixShm) {
            l.users = inspect::posix_users(&l.posix_shm, &l.posix_sem, &l.posix_mq)?;
        }
        Ok(l)
    }

    fn users(&self, file: FileId) -> Users {
        self.users.get(&file).cloned().unwrap_or_default()
    }

    fn attachments(&self, shmid: i32) -> Vec<Attachments> {
        self.attached.get(&shmid).cloned().unwrap_or_default()
    }

    fn attached_pids(&self, shmid: i32) -> Vec<u32> {
        self.attachments(shmid).iter().map(|a| a.pid).collect()
    }

    /// The `--json` array: each object as the library serializes it (kind, ids, permissions,
    /// times…), with the user names and the PIDs this listing found added.
    fn json(&self) -> Vec<Entry<'_>> {
        let mut out = Vec::new();
        for kind in &self.kinds {
            match kind {
                Kind::SysvShm => out.extend(self.shm.iter().map(|s| {
                    Entry::SysvShm(Listed {
                        object: s,
                        extra: ShmExtra {
                            names: self.sysv_names([s.uid, s.gid, s.cuid, s.cgid]),
                            attached_pids: self.attached_pids(s.id),
                            attachments: self.attachments(s.id),
                        },
                    })
                })),
                Kind::SysvSem => out.extend(self.sem.iter().map(|s| {
                    Entry::SysvSem(Listed {
                        object: s,
                        extra: self.sysv_names([s.uid, s.gid, s.cuid, s.cgid]),
                    })
                })),
                Kind::SysvMsg => out.extend(self.msg.iter().map(|q| {
                    Entry::SysvMsg(Listed {
                        object: q,
                        extra: self.sysv_names([q.uid, q.gid, q.cuid, q.cgid]),
                    })
                })),
                Kind::PosixShm => out.extend(self.posix_shm.iter().map(|s| {
                    Entry::PosixShm(Listed {
                        object: s,
                        extra: self.posix_extra(s.uid, s.gid, s.file),
                    })
                })),
                Kind::PosixSem => out.extend(self.posix_sem.iter().map(|s| {
                    Entry::PosixSem(Listed {
                        object: s,
                        extra: self.posix_extra(s.uid, s.gid, s.file),
                    })
                })),
                Kind::PosixMq => out.extend(self.posix_mq.iter().map(|q| {
                    Entry::PosixMq(Listed {
                        object: q,
                        extra: PosixMqExtra {
                            names: self.posix_names(q.uid, q.gid),
                            open_pids: self.users(q.file).open,
                        },
                    })
                })),
            }
        }
        out
    }

    fn posix_names(&self, uid: u32, gid: u32) -> PosixNames {
        PosixNames {
            owner: self.names.user(uid),
            group: self.names.group(gid),
        }
    }

    fn posix_extra(&self, uid: u32, gid: u32, file: FileId) -> PosixExtra {
        let users = self.users(file);
        PosixExtra {
            names: self.posix_names(uid, gid),
            attached_pids: users.mapped,
            open_pids: users.open,
        }
    }

    fn sysv_names(&self, [uid, gid, cuid, cgid]: [u32; 4]) -> SysvNames {
        SysvNames {
            owner: self.names.user(uid),
            group: self.names.group(gid),
            creator: self.names.user(cuid),
            creator_group: self.names.group(cgid),
        }
    }

    /// One table per kind, under a heading, as the flags ask.
    fn tables(&self, args: &Args) -> String {
        let plain = !(args.time || args.pid || args.creator);
        let mut sections = Vec::new();
        for kind in &self.kinds {
            let (title, table) = match kind {
                Kind::SysvShm => (
                    "System V shared memory segments",
                    self.shm_table(args, plain),
                ),
                Kind::SysvSem => ("System V semaphore sets", self.sem_table(args, plain)),
                Kind::SysvMsg => ("System V message queues", self.msg_table(args, plain)),
                Kind::PosixShm => ("POSIX shared memory", self.posix_shm_table(args, plain)),
                Kind::PosixSem => ("POSIX named semaphores", self.posix_sem_table(args, plain)),
                Kind::PosixMq => ("POSIX message queues", self.posix_mq_table(args, plain)),
            };
            sections.push(format!("------ {title} ------\n{}", table.render()));
        }
        sections.join("\n")
    }

    /// Columns shared by every view: key, id, and who owns it (names with -c, else the owner).
    fn ident_columns(id: &'static str, args: &Args) -> Vec<(&'static str, Align)> {
        let mut cols = vec![("key", Align::Left), (id, Align::Right)];
        if args.creator {
            cols.extend([
                ("perms", Align::Left),
                ("cuid", Align::Left),
                ("cgid", Align::Left),
                ("uid", Align::Left),
                ("gid", Align::Left),
            ]);
        } else {
            cols.push(("owner", Align::Left));
        }
        cols
    }

    fn ident_cells(
        &self,
        key: ipckit::Key,
        id: i32,
        mode: u32,
        ids: [u32; 4],
        args: &Args,
    ) -> Vec<String> {
        let [uid, gid, cuid, cgid] = ids;
        let mut cells = vec![key_hex(key), id.to_string()];
        if args.creator {
            cells.extend([
                perms_short(mode),
                self.names.user(cuid),
                self.names.group(cgid),
                self.names.user(uid),
                self.names.group(gid),
            ]);
        } else {
            cells.push(self.names.user(uid));
        }
        cells
    }

    fn shm_table(&self, args: &Args, plain: bool) -> Table {
        let mut cols = Self::ident_columns("shmid", args);
        if plain {
            cols.extend([
                ("perms", Align::Left),
                ("bytes", Align::Right),
                ("nattch", Align::Right),
                ("status", Align::Left),
            ]);
        }
        if args.time {
            cols.extend([
                ("attached", Align::Left),
                ("detached", Align::Left),
                ("changed", Align::Left),
            ]);
        }
        if args.pid {
            cols.extend([
                ("cpid", Align::Right),
                ("lpid", Align::Right),
                ("attached pids", Align::Left),
            ]);
        }
        let mut table = Table::new(&cols);
        for s in &self.shm {
            let mut cells =
                self.ident_cells(s.key, s.id, s.mode, [s.uid, s.gid, s.cuid, s.cgid], args);
            if plain {
                let status: Vec<&str> = [
                    (s.is_marked_for_removal(), "dest"),
                    (s.is_locked(), "locked"),
                ]
                .into_iter()
                .filter_map(|(on, word)| on.then_some(word))
                .collect();
                cells.extend([
                    perms_short(s.mode),
                    s.size.to_string(),
                    s.nattch.to_string(),
                    status.join(" "),
                ]);
            }
            if args.time {
                cells.extend([
                    local_time(s.atime),
                    local_time(s.dtime),
                    local_time(s.ctime),
                ]);
            }
            if args.pid {
                cells.extend([
                    s.cpid.to_string(),
                    s.lpid.to_string(),
                    attach_cell(&self.attachments(s.id)),
                ]);
            }
            table.row(cells);
        }
        table
    }

    fn sem_table(&self, args: &Args, plain: bool) -> Table {
        let mut cols = Self::ident_columns("semid", args);
        if plain {
            cols.extend([("perms", Align::Left), ("nsems", Align::Right)]);
        }
        if args.time {
            cols.extend([("last-op", Align::Left), ("last-changed", Align::Left)]);
        }
        let mut table = Table::new(&cols);
        for s in &self.sem {
            let mut cells =
                self.ident_cells(s.key, s.id, s.mode, [s.uid, s.gid, s.cuid, s.cgid], args);
            if plain {
                cells.extend([perms_short(s.mode), s.nsems.to_string()]);
            }
            if args.time {
                cells.extend([local_time(s.otime), local_time(s.ctime)]);
            }
            table.row(cells);
        }
        table
    }

    fn msg_table(&self, args: &Args, plain: bool) -> Table {
        let mut cols = Self::ident_columns("msqid", args);
        if plain {
            cols.extend([
                ("perms", Align::Left),
                ("used-bytes", Align::Right),
                ("messages", Align::Right),
            ]);
        }
        if args.time {
            cols.extend([
                ("send", Align::Left),
                ("recv", Align::Left),
                ("change", Align::Left),
            ]);
        }
        if args.pid {
            cols.extend([("lspid", Align::Right), ("lrpid", Align::Right)]);
        }
        let mut table = Table::new(&cols);
        for q in &self.msg {
            let mut cells =
                self.ident_cells(q.key, q.id, q.mode, [q.uid, q.gid, q.cuid, q.cgid], args);
            if plain {
                cells.extend([
                    perms_short(q.mode),
                    q.cbytes.to_string(),
                    q.qnum.to_string(),
                ]);
            }
            if args.time {
                cells.extend([
                    local_time(q.stime),
                    local_time(q.rtime),
                    local_time(q.ctime),
                ]);
            }
            if args.pid {
                cells.extend([q.lspid.to_string(), q.lrpid.to_string()]);
            }
            table.row(cells);
        }
        table
    }
}

/// The POSIX tables: a name instead of key and id, the file's times, the PIDs from /proc.
impl Listing {
    /// Columns shared by the POSIX views: name, and who owns it (with -c: perms, user, group).
    fn posix_ident_columns(args: &Args) -> Vec<(&'static str, Align)> {
        let mut cols = vec![("name", Align::Left)];
        if args.creator {
            cols.extend([
                ("perms", Align::Left),
                ("uid", Align::Left),
                ("gid", Align::Left),
            ]);
        } else {
            cols.push(("owner", Align::Left));
        }
        cols
    }

    fn posix_ident_cells(
        &self,
        name: &OsStr,
        mode: u32,
        uid: u32,
        gid: u32,
        args: &Args,
    ) -> Vec<String> {
        let mut cells = vec![crate::escape::cell(name)];
        if args.creator {
            cells.extend([
                perms_short(mode),
                self.names.user(uid),
                self.names.group(gid),
            ]);
        } else {
            cells.push(self.names.user(uid));
        }
        cells
    }

    /// The -t columns of every POSIX view.
    const TIME_COLUMNS: [(&'static str, Align); 2] =
        [("modified", Align::Left), ("changed", Align::Left)];

    fn time_cells(mtime: SystemTime, ctime: SystemTime) -> [String; 2] {
        [local_time(Some(mtime)), local_time(Some(ctime))]
    }

    fn posix_shm_table(&self, args: &Args, plain: bool) -> Table {
        let mut cols = Self::posix_ident_columns(args);
        if plain {
            cols.extend([
                ("perms", Align::Left),
                ("bytes", Align::Right),
                ("modified", Align::Left),
                ("attached pids", Align::Left),
            ]);
        }
        if args.time {
            cols.extend(Self::TIME_COLUMNS);
        }
        if args.pid {
            cols.extend([("attached pids", Align::Left), ("open pids", Align::Left)]);
        }
        let mut table = Table::new(&cols);
        for s in &self.posix_shm {
            let users = self.users(s.file);
            let mut cells = self.posix_ident_cells(&s.name, s.mode, s.uid, s.gid, args);
            if plain {
                cells.extend([
                    perms_short(s.mode),
                    s.size.to_string(),
                    local_time(Some(s.mtime)),
                    pid_cell(&users.mapped),
                ]);
            }
            if args.time {
                cells.extend(Self::time_cells(s.mtime, s.ctime));
            }
            if args.pid {
                cells.extend([pid_cell(&users.mapped), pid_cell(&users.open)]);
            }
            table.row(cells);
        }
        table
    }

    fn posix_sem_table(&self, args: &Args, plain: bool) -> Table {
        let mut cols = Self::posix_ident_columns(args);
        if plain {
            cols.extend([("perms", Align::Left), ("value", Align::Right)]);
        }
        if args.time {
            cols.extend(Self::TIME_COLUMNS);
        }
        if args.pid {
            cols.push(("attached pids", Align::Left));
        }
        let mut table = Table::new(&cols);
        for s in &self.posix_sem {
            let mut cells = self.posix_ident_cells(&s.name, s.mode, s.uid, s.gid, args);
            if plain {
                cells.extend([perms_short(s.mode), optional(s.value)]);
            }
            if args.time {
                cells.extend(Self::time_cells(s.mtime, s.ctime));
            }
            if args.pid {
                cells.push(pid_cell(&self.users(s.file).pids()));
            }
            table.row(cells);
        }
        table
    }

    fn posix_mq_table(&self, args: &Args, plain: bool) -> Table {
        let mut cols = Self::posix_ident_columns(args);
        if plain {
            cols.extend([
                ("perms", Align::Left),
                ("messages", Align::Right),
                ("max-messages", Align::Right),
                ("message-size", Align::Right),
                ("used-bytes", Align::Right),
            ]);
        }
        if args.time {
            cols.extend(Self::TIME_COLUMNS);
        }
        if args.pid {
            cols.extend([("open pids", Align::Left), ("notify pid", Align::Right)]);
        }
        let mut table = Table::new(&cols);
        for q in &self.posix_mq {
            let mut cells = self.posix_ident_cells(&q.name, q.mode, q.uid, q.gid, args);
            if plain {
                cells.extend([
                    perms_short(q.mode),
                    optional(q.messages),
                    optional(q.max_messages),
                    optional(q.message_size),
                    optional(q.used_bytes),
                ]);
            }
            if args.time {
                cells.extend(Self::time_cells(q.mtime, q.ctime));
            }
            if args.pid {
                cells.extend([pid_cell(&self.users(q.file).open), optional(q.notify_pid)]);
            }
            table.row(cells);
        }
        table
    }
}

/// PIDs as one cell: `12,13`.
fn pid_cell(pids: &[u32]) -> String {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    pids.join(",")
}

/// Attached PIDs as one cell: `12,13`, and a PID holding the segment more than once flagged
/// with its count, `12(x211)`.
fn attach_cell(attachments: &[Attachments]) -> String {
    let cells: Vec<String> = attachments
        .iter()
        .map(|a| match a.count {
            1 => a.pid.to_string(),
            n => format!("{}(x{n})", a.pid),
        })
        .collect();
    cells.join(",")
}

/// A value that may be unknown (left empty, as lsipc does).
fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(String::new, |v| v.to_string())
}

/// One IPC object in `ls --json`: the library's serialization of it (which holds `"kind"`) and
/// what the command adds.
#[derive(Serialize)]
#[serde(untagged)]
enum Entry<'a> {
    SysvShm(Listed<'a, ShmInfo, ShmExtra>),
    SysvSem(Listed<'a, SemInfo, SysvNames>),
    SysvMsg(Listed<'a, MsgInfo, SysvNames>),
    PosixShm(Listed<'a, PosixShmInfo, PosixExtra>),
    PosixSem(Listed<'a, PosixSemInfo, PosixExtra>),
    PosixMq(Listed<'a, PosixMqInfo, PosixMqExtra>),
}

/// An object as `ipckit::inspect` serializes it, followed by the fields the command adds.
#[derive(Serialize)]
struct Listed<'a, T, X> {
    #[serde(flatten)]
    object: &'a T,
    #[serde(flatten)]
    extra: X,
}

/// The names of a System V object's owner and creator (or their ids as text).
#[derive(Serialize)]
struct SysvNames {
    owner: String,
    group: String,
    creator: String,
    creator_group: String,
}

#[derive(Serialize)]
struct ShmExtra {
    #[serde(flatten)]
    names: SysvNames,
    /// PIDs attached now, as far as /proc lets us see.
    attached_pids: Vec<u32>,
    /// Each attached PID and how many times it has the segment attached.
    attachments: Vec<Attachments>,
}

/// The names of a POSIX object's owner (or the ids as text).
#[derive(Serialize)]
struct PosixNames {
    owner: String,
    group: String,
}

#[derive(Serialize)]
struct PosixExtra {
    #[serde(flatten)]
    names: PosixNames,
    /// PIDs that map it now, as far as /proc lets us see.
    attached_pids: Vec<u32>,
    /// PIDs that hold a descriptor of it.
    open_pids: Vec<u32>,
}

#[derive(Serialize)]
struct PosixMqExtra {
    #[serde(flatten)]
    names: PosixNames,
    /// The processes that hold it open.
    open_pids: Vec<u32>,
}

fn show_limits(l: &Limits, kinds: &[Kind], json: bool) -> Result<()> {
    if json {
        // The library's serialization: the kernel's names as keys.
        return output::print_json(l);
    }
    let rows: &[(Kind, &str, u64, &str)] = &[
        (Kind::SysvShm, "shmmax", l.shmmax, "largest segment (bytes)"),
        (
            Kind::SysvShm,
            "shmall",
            l.shmall,
            "all segments together (pages)",
        ),
        (Kind::SysvShm, "shmmni", l.shmmni, "most segments"),
        (Kind::SysvSem, "semmsl", l.semmsl, "most semaphores per set"),
        (
            Kind::SysvSem,
            "semmns",
            l.semmns,
            "most semaphores in all sets",
        ),
        (
            Kind::SysvSem,
            "semopm",
            l.semopm,
            "most operations per semop call",
        ),
        (Kind::SysvSem, "semmni", l.semmni, "most semaphore sets"),
        (Kind::SysvMsg, "msgmax", l.msgmax, "largest message (bytes)"),
        (
            Kind::SysvMsg,
            "msgmnb",
            l.msgmnb,
            "default queue capacity (bytes)",
        ),
        (Kind::SysvMsg, "msgmni", l.msgmni, "most message queues"),
    ];
    output::emit(&name_value_table(rows, kinds))
}

fn show_usage(u: &Usage, kinds: &[Kind], json: bool) -> Result<()> {
    if json {
        return output::print_json(u);
    }
    let rows: &[(Kind, &str, u64, &str)] = &[
        (
            Kind::SysvShm,
            "shm_segments",
            u.shm_segments,
            "segments allocated",
        ),
        (
            Kind::SysvShm,
            "shm_pages_allocated",
            u.shm_pages_allocated,
            "pages allocated",
        ),
        (
            Kind::SysvShm,
            "shm_pages_resident",
            u.shm_pages_resident,
            "pages resident",
        ),
        (
            Kind::SysvShm,
            "shm_pages_swapped",
            u.shm_pages_swapped,
            "pages swapped",
        ),
        (
            Kind::SysvSem,
            "sem_arrays",
            u.sem_arrays,
            "semaphore sets used",
        ),
        (
            Kind::SysvSem,
            "sem_semaphores",
            u.sem_semaphores,
            "semaphores allocated",
        ),
        (
            Kind::SysvMsg,
            "msg_queues",
            u.msg_queues,
            "message queues used",
        ),
        (
            Kind::SysvMsg,
            "msg_messages",
            u.msg_messages,
            "messages queued",
        ),
        (
            Kind::SysvMsg,
            "msg_used_bytes",
            u.msg_used_bytes,
            "bytes queued",
        ),
    ];
    output::emit(&name_value_table(rows, kinds))
}

/// A three-column table (name, value, meaning) of the rows of the selected kinds.
fn name_value_table(rows: &[(Kind, &str, u64, &str)], kinds: &[Kind]) -> String {
    let mut table = Table::new(&[
        ("name", Align::Left),
        ("value", Align::Right),
        ("meaning", Align::Left),
    ]);
    for (kind, name, value, meaning) in rows {
        if kinds.contains(kind) {
            table.row(vec![
                name.to_string(),
                value.to_string(),
                meaning.to_string(),
            ]);
        }
    }
    table.render()
}
