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
//! count, whatever the kind flags; `-l --json` adds `shmmin`, `semvmx` and, under `"mqueue"`,
//! the POSIX queue limits of /proc/sys/fs/mqueue. A System V segment's `"attachments"` lists each
//! attached PID with how many times it has the segment attached (`[{"pid": 12, "count": 211}]`,
//! from its maps); the `-p` table shows such a PID as `12(x211)`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result};
use ipckit::inspect::{
    self, Attachments, FileId, Limits, MsgInfo, Names, PosixMqInfo, PosixMqs, PosixSemInfo,
    PosixShmInfo, SemInfo, SemaphoreState, ShmInfo, Usage, Users,
};
use serde::Serialize;

use crate::columns::{self, Column, Format, Kind, Mode, Record, TimeFormat};
use crate::output::{self, key_hex, local_time, perms_short, Align, Table};

#[derive(clap::Args)]
#[command(after_help = "\
Columns of -o (lsipc's names, in any case):
  every kind:  OWNER PERMS CUID CUSER CGID CGROUP UID USER GID GROUP CTIME
  System V:    KEY ID
  -m:          SIZE NATTCH STATUS ATTACH DETACH COMMAND (the creator's command line while it
               runs) CPID LPID
  -q:          USEDBYTES MSGS SEND RECV LSPID LRPID
  -s:          NSEMS OTIME
  POSIX:       NAME MTIME; -M: SIZE; -Q: USEDBYTES MSGS; -S: SVAL
Without -o, lsipc's default columns of the kind.")]
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
    #[arg(long, conflicts_with_all = ["raw", "export", "newline"])]
    json: bool,
    /// Show System V object ID in full, as `ipcs -i`: with -m, -q or -s to say its kind. A
    /// semaphore set shows each semaphore's value, ncount, zcount and last pid.
    #[arg(short = 'i', long = "id", value_name = "ID", allow_negative_numbers = true,
          conflicts_with_all = ["limits", "usage", "all", "posix_shm", "posix_sem", "posix_mq",
                                "output", "raw", "export", "newline", "noheadings"])]
    id: Option<i32>,
    /// lsipc's columns, comma-separated (`KEY,ID,SIZE`; `+LIST` adds to the defaults); one kind
    /// flag says which objects. The columns are listed at the end of --help.
    #[arg(short = 'o', long = "output", value_name = "COLUMNS",
          conflicts_with_all = ["time", "pid", "creator"], help_heading = "Output as lsipc")]
    output: Option<String>,
    /// Leave out the header line.
    #[arg(long, help_heading = "Output as lsipc")]
    noheadings: bool,
    /// Unaligned: cells separated by one space; spaces and control characters in a cell are
    /// written as hex escapes, as lsipc writes them.
    #[arg(short = 'r', long, conflicts_with_all = ["export", "newline"],
          help_heading = "Output as lsipc")]
    raw: bool,
    /// NAME="value" pairs, a line per object (for `eval` in a shell).
    #[arg(
        short = 'e',
        long,
        conflicts_with = "newline",
        help_heading = "Output as lsipc"
    )]
    export: bool,
    /// NAME="value" pairs, one per line.
    #[arg(short = 'n', long, help_heading = "Output as lsipc")]
    newline: bool,
    /// Sizes in bytes, not as 1.5K.
    #[arg(short = 'b', long, help_heading = "Output as lsipc")]
    bytes: bool,
    /// Times as short (17:30, Dec06, 2025-Dec06), full (ctime) or iso (2026-12-06T17:30:47+00:00).
    #[arg(long, value_name = "FORMAT", help_heading = "Output as lsipc")]
    time_format: Option<TimeFormat>,
    /// Permissions in octal (0640), not as rw-r-----.
    #[arg(short = 'P', long, help_heading = "Output as lsipc")]
    numeric_perms: bool,
}

impl Args {
    /// The kinds selected by flags; none (or -a) means every kind.
    fn kinds(&self) -> Vec<Kind> {
        if self.id.is_some() {
            // -i ID: the one kind named (checked in run()).
            return self.chosen_kinds();
        }
        let chosen = self.chosen_kinds();
        if self.all || chosen.is_empty() {
            Kind::ALL.to_vec()
        } else {
            chosen
        }
    }

    /// The kinds named by their flags.
    fn chosen_kinds(&self) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| match k {
                Kind::SysvShm => self.shm,
                Kind::SysvSem => self.sem,
                Kind::SysvMsg => self.msg,
                Kind::PosixShm => self.posix_shm,
                Kind::PosixSem => self.posix_sem,
                Kind::PosixMq => self.posix_mq,
            })
            .collect()
    }

    /// Whether an lsipc output option is given: then objects are printed as lsipc prints them.
    fn lsipc_output(&self) -> bool {
        self.output.is_some()
            || self.noheadings
            || self.raw
            || self.export
            || self.newline
            || self.bytes
            || self.time_format.is_some()
            || self.numeric_perms
    }

    /// The lsipc format these flags ask for.
    fn format(&self) -> Format {
        Format {
            mode: if self.raw {
                Mode::Raw
            } else if self.export {
                Mode::Export
            } else if self.newline {
                Mode::Newline
            } else {
                Mode::Table
            },
            headings: !self.noheadings,
            bytes: self.bytes,
            numeric_perms: self.numeric_perms,
            time: self.time_format.unwrap_or(TimeFormat::Short),
        }
    }
}

/// A command-line mistake found after parsing: one line, exit status 2.
fn usage(line: &str) -> ExitCode {
    eprintln!("ipckit: ls: {line}");
    ExitCode::from(2)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let kinds = args.kinds();
    let one_kind = args.chosen_kinds().len() == 1 && !args.all;
    if let Some(id) = args.id {
        let sysv = matches!(
            kinds.as_slice(),
            [Kind::SysvShm] | [Kind::SysvSem] | [Kind::SysvMsg]
        );
        if !(one_kind && sysv) {
            return Ok(usage(
                "-i ID needs exactly one of -m, -q or -s, to say which kind of object ID is",
            ));
        }
        return show_one(&args, kinds[0], id);
    }
    let lsipc = args.lsipc_output() && !(args.limits || args.usage);
    let mut columns = Vec::new();
    if lsipc {
        if !one_kind {
            return Ok(usage(
                "lsipc's output options (-o, --raw, --export, -n, --noheadings, -b, \
                 --time-format, -P) show one kind at a time: add -m, -q, -s, -M, -Q or -S",
            ));
        }
        columns = match &args.output {
            Some(list) => match columns::parse_columns(list, kinds[0]) {
                Ok(columns) => columns,
                Err(line) => return Ok(usage(&line)),
            },
            None => Column::defaults(kinds[0]),
        };
    }
    if args.limits {
        let limits = inspect::limits().context("cannot read the IPC limits")?;
        show_limits(&limits, &kinds, args.json)?;
    } else if args.usage {
        let usage = inspect::usage().context("cannot read the IPC usage")?;
        show_usage(&usage, &kinds, args.json)?;
    } else {
        let listing = Listing::read(&kinds, args.json || args.pid, args.json)?;
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
        } else if lsipc {
            let records = listing.records(kinds[0], &args.format());
            output::emit(&columns::render(&records, &columns, &args.format()))?;
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
    /// semid → each semaphore's state (read for JSON and -i; missing where not readable).
    semaphores: BTreeMap<i32, Vec<SemaphoreState>>,
    /// msqid → the queue's capacity in bytes (read for JSON and -i; missing where not readable).
    qbytes: BTreeMap<i32, u64>,
}

impl Listing {
    fn read(kinds: &[Kind], with_pids: bool, with_details: bool) -> Result<Listing> {
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
            semaphores: BTreeMap::new(),
            qbytes: BTreeMap::new(),
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
        if with_details {
            l.read_details();
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

    /// What only the objects' *ctl calls tell: each semaphore, each queue's capacity. An object
    /// that cannot be read (no read permission, or removed meanwhile) has none: `null` in JSON.
    fn read_details(&mut self) {
        for s in &self.sem {
            if let Ok(states) = inspect::semaphores(s.id) {
                self.semaphores.insert(s.id, states);
            }
        }
        for q in &self.msg {
            if let Ok(qbytes) = inspect::msg_qbytes(q.id) {
                self.qbytes.insert(q.id, qbytes);
            }
        }
    }

    /// Keeps only the System V object `id` of `kind`; whether there is one.
    fn keep_only(&mut self, kind: Kind, id: i32) -> bool {
        match kind {
            Kind::SysvShm => {
                self.shm.retain(|s| s.id == id);
                !self.shm.is_empty()
            }
            Kind::SysvSem => {
                self.sem.retain(|s| s.id == id);
                !self.sem.is_empty()
            }
            Kind::SysvMsg => {
                self.msg.retain(|q| q.id == id);
                !self.msg.is_empty()
            }
            _ => false,
        }
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
                        extra: SemExtra {
                            names: self.sysv_names([s.uid, s.gid, s.cuid, s.cgid]),
                            semaphores: self.semaphores.get(&s.id).map(Vec::as_slice),
                        },
                    })
                })),
                Kind::SysvMsg => out.extend(self.msg.iter().map(|q| {
                    Entry::SysvMsg(Listed {
                        object: q,
                        extra: MsgExtra {
                            names: self.sysv_names([q.uid, q.gid, q.cuid, q.cgid]),
                            qbytes: self.qbytes.get(&q.id).copied(),
                        },
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

/// The records of lsipc's output: each object's cells for every column of its kind.
impl Listing {
    fn records(&self, kind: Kind, f: &Format) -> Vec<Record> {
        match kind {
            Kind::SysvShm => self.shm.iter().map(|s| self.shm_record(s, f)).collect(),
            Kind::SysvSem => self.sem.iter().map(|s| self.sem_record(s, f)).collect(),
            Kind::SysvMsg => self.msg.iter().map(|q| self.msg_record(q, f)).collect(),
            Kind::PosixShm => self
                .posix_shm
                .iter()
                .map(|s| {
                    let mut r = self.posix_record(&s.name, s.mode, s.uid, s.gid, s.ctime, f);
                    r.push((Column::Mtime, f.time.format(Some(s.mtime))));
                    r.push((Column::Size, size_cell(s.size, f)));
                    r
                })
                .collect(),
            Kind::PosixSem => self
                .posix_sem
                .iter()
                .map(|s| {
                    let mut r = self.posix_record(&s.name, s.mode, s.uid, s.gid, s.ctime, f);
                    r.push((Column::Mtime, f.time.format(Some(s.mtime))));
                    r.push((Column::Sval, optional(s.value)));
                    r
                })
                .collect(),
            Kind::PosixMq => self
                .posix_mq
                .iter()
                .map(|q| {
                    let mut r = self.posix_record(&q.name, q.mode, q.uid, q.gid, q.ctime, f);
                    r.push((Column::Mtime, f.time.format(Some(q.mtime))));
                    r.push((
                        Column::Usedbytes,
                        q.used_bytes.map_or_else(String::new, |b| size_cell(b, f)),
                    ));
                    r.push((Column::Msgs, optional(q.messages)));
                    r
                })
                .collect(),
        }
    }

    /// Key, id, owner and creator: the columns every System V object has.
    fn sysv_record(
        &self,
        key: ipckit::Key,
        id: i32,
        mode: u32,
        [uid, gid, cuid, cgid]: [u32; 4],
        ctime: Option<SystemTime>,
        f: &Format,
    ) -> Record {
        let mut r = vec![(Column::Key, key_hex(key)), (Column::Id, id.to_string())];
        r.extend(self.owner_cells(mode, [uid, gid, cuid, cgid], ctime, f));
        r
    }

    /// Owner, creator, permissions and change time: the columns every object has.
    fn owner_cells(
        &self,
        mode: u32,
        [uid, gid, cuid, cgid]: [u32; 4],
        ctime: Option<SystemTime>,
        f: &Format,
    ) -> Record {
        vec![
            (Column::Owner, self.names.user(uid)),
            (Column::Perms, columns::perms(mode, f.numeric_perms)),
            (Column::Cuid, cuid.to_string()),
            (Column::Cuser, self.names.user(cuid)),
            (Column::Cgid, cgid.to_string()),
            (Column::Cgroup, self.names.group(cgid)),
            (Column::Uid, uid.to_string()),
            (Column::User, self.names.user(uid)),
            (Column::Gid, gid.to_string()),
            (Column::Group, self.names.group(gid)),
            (Column::Ctime, f.time.format(ctime)),
        ]
    }

    /// Name, owner and times: the columns every POSIX object has (its file's owner is also its
    /// creator).
    fn posix_record(
        &self,
        name: &OsStr,
        mode: u32,
        uid: u32,
        gid: u32,
        ctime: SystemTime,
        f: &Format,
    ) -> Record {
        let mut r = vec![(Column::Name, crate::escape::cell(name))];
        r.extend(self.owner_cells(mode, [uid, gid, uid, gid], Some(ctime), f));
        r
    }

    fn shm_record(&self, s: &ShmInfo, f: &Format) -> Record {
        let ids = [s.uid, s.gid, s.cuid, s.cgid];
        let mut r = self.sysv_record(s.key, s.id, s.mode, ids, s.ctime, f);
        let status: Vec<&str> = [
            (s.is_marked_for_removal(), "dest"),
            (s.is_locked(), "locked"),
        ]
        .into_iter()
        .filter_map(|(on, word)| on.then_some(word))
        .collect();
        r.extend([
            (Column::Size, size_cell(s.size, f)),
            (Column::Nattch, s.nattch.to_string()),
            (Column::Status, status.join(",")),
            (Column::Attach, f.time.format(s.atime)),
            (Column::Detach, f.time.format(s.dtime)),
            (
                Column::Command,
                inspect::creator_command_line(s.cpid, s.ctime).unwrap_or_default(),
            ),
            (Column::Cpid, s.cpid.to_string()),
            (Column::Lpid, s.lpid.to_string()),
        ]);
        r
    }

    fn sem_record(&self, s: &SemInfo, f: &Format) -> Record {
        let ids = [s.uid, s.gid, s.cuid, s.cgid];
        let mut r = self.sysv_record(s.key, s.id, s.mode, ids, s.ctime, f);
        r.extend([
            (Column::Nsems, s.nsems.to_string()),
            (Column::Otime, f.time.format(s.otime)),
        ]);
        r
    }

    fn msg_record(&self, q: &MsgInfo, f: &Format) -> Record {
        let ids = [q.uid, q.gid, q.cuid, q.cgid];
        let mut r = self.sysv_record(q.key, q.id, q.mode, ids, q.ctime, f);
        r.extend([
            (Column::Usedbytes, size_cell(q.cbytes, f)),
            (Column::Msgs, q.qnum.to_string()),
            (Column::Send, f.time.format(q.stime)),
            (Column::Recv, f.time.format(q.rtime)),
            (Column::Lspid, q.lspid.to_string()),
            (Column::Lrpid, q.lrpid.to_string()),
        ]);
        r
    }
}

/// A size: bytes with -b, else as lsipc prints it (`1.5K`).
fn size_cell(bytes: u64, f: &Format) -> String {
    if f.bytes {
        bytes.to_string()
    } else {
        columns::human_size(bytes)
    }
}

/// `ls -i ID` with -m, -q or -s: one System V object in full, as `ipcs -i` shows it (or its
/// `--json` entry, in an array of one).
fn show_one(args: &Args, kind: Kind, id: i32) -> Result<ExitCode> {
    let mut listing = Listing::read(&[kind], true, true)?;
    if !listing.keep_only(kind, id) {
        let what = match kind {
            Kind::SysvShm => "shared-memory segment",
            Kind::SysvSem => "semaphore set",
            _ => "message queue",
        };
        anyhow::bail!("ls: there is no System V {what} with id {id}");
    }
    if args.json {
        output::print_json(&listing.json())?;
        return Ok(ExitCode::SUCCESS);
    }
    let time = |t: Option<SystemTime>| match args.time_format {
        Some(format) if t.is_some() => format.format(t),
        _ => local_time(t),
    };
    let octal = |mode: u32| format!("{mode:#o}").replacen("0o", "0", 1);
    let ids = |[uid, gid, cuid, cgid]: [u32; 4]| {
        format!("uid={uid}\tgid={gid}\tcuid={cuid}\tcgid={cgid}")
    };
    let names = &listing.names;
    let owners = |[uid, gid, cuid, cgid]: [u32; 4]| {
        format!(
            "owner={}\tgroup={}\tcreator={}\tcreator_group={}",
            names.user(uid),
            names.group(gid),
            names.user(cuid),
            names.group(cgid)
        )
    };
    let mut text = String::new();
    match kind {
        Kind::SysvShm => {
            let s = &listing.shm[0];
            let i = [s.uid, s.gid, s.cuid, s.cgid];
            text += &format!("Shared memory segment shmid={} key={}\n", s.id, s.key);
            text += &format!("{}\n{}\n", ids(i), owners(i));
            text += &format!(
                "mode={}\taccess_perms={}\n",
                octal(s.mode),
                octal(s.permissions())
            );
            text += &format!(
                "bytes={}\tlpid={}\tcpid={}\tnattch={}\n",
                s.size, s.lpid, s.cpid, s.nattch
            );
            text += &format!("rss={}\tswap={}\n", s.rss, s.swap);
            text += &format!("att_time={}\n", time(s.atime));
            text += &format!("det_time={}\n", time(s.dtime));
            text += &format!("change_time={}\n", time(s.ctime));
            text += &format!("attached_pids={}\n", pid_cell(&listing.attached_pids(s.id)));
        }
        Kind::SysvSem => {
            let s = &listing.sem[0];
            let i = [s.uid, s.gid, s.cuid, s.cgid];
            text += &format!("Semaphore set semid={} key={}\n", s.id, s.key);
            text += &format!("{}\n{}\n", ids(i), owners(i));
            text += &format!(
                "mode={}\taccess_perms={}\n",
                octal(s.mode),
                octal(s.permissions())
            );
            text += &format!("nsems={}\n", s.nsems);
            text += &format!("otime={}\n", time(s.otime));
            text += &format!("ctime={}\n", time(s.ctime));
            match listing.semaphores.get(&s.id) {
                Some(states) => {
                    let mut table = Table::new(&[
                        ("semnum", Align::Right),
                        ("value", Align::Right),
                        ("ncount", Align::Right),
                        ("zcount", Align::Right),
                        ("pid", Align::Right),
                    ]);
                    for (num, st) in states.iter().enumerate() {
                        table.row(vec![
                            num.to_string(),
                            st.value.to_string(),
                            st.ncount.to_string(),
                            st.zcount.to_string(),
                            st.pid.to_string(),
                        ]);
                    }
                    text += &table.render();
                }
                None => {
                    let why = inspect::semaphores(s.id)
                        .err()
                        .map_or_else(String::new, |e| format!(": {e}"));
                    eprintln!(
                        "ipckit: ls: the semaphores of set {} cannot be read{why}",
                        s.id
                    );
                }
            }
        }
        _ => {
            let q = &listing.msg[0];
            let i = [q.uid, q.gid, q.cuid, q.cgid];
            text += &format!("Message queue msqid={} key={}\n", q.id, q.key);
            text += &format!("{}\tmode={}\n{}\n", ids(i), octal(q.mode), owners(i));
            let qbytes = listing
                .qbytes
                .get(&q.id)
                .map_or_else(|| "-".to_owned(), u64::to_string);
            text += &format!(
                "cbytes={}\tqbytes={}\tqnum={}\tlspid={}\tlrpid={}\n",
                q.cbytes, qbytes, q.qnum, q.lspid, q.lrpid
            );
            text += &format!("send_time={}\n", time(q.stime));
            text += &format!("rcv_time={}\n", time(q.rtime));
            text += &format!("change_time={}\n", time(q.ctime));
        }
    }
    output::emit(&text)?;
    Ok(ExitCode::SUCCESS)
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
    SysvSem(Listed<'a, SemInfo, SemExtra<'a>>),
    SysvMsg(Listed<'a, MsgInfo, MsgExtra>),
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
struct SemExtra<'a> {
    #[serde(flatten)]
    names: SysvNames,
    /// Each semaphore: `{"value", "ncount", "zcount", "pid"}`; `null` if they cannot be read.
    semaphores: Option<&'a [SemaphoreState]>,
}

#[derive(Serialize)]
struct MsgExtra {
    #[serde(flatten)]
    names: SysvNames,
    /// The queue's capacity in bytes (`msg_qbytes`); `null` if it cannot be read.
    qbytes: Option<u64>,
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

/// `ls -l --json`: the System V limits under the kernel's names, the two fixed ones ipcs adds
/// (`shmmin`, `semvmx`), and the POSIX queue limits of /proc/sys/fs/mqueue under theirs (`null`
/// where that directory cannot be read).
#[derive(Serialize)]
struct AllLimits<'a> {
    #[serde(flatten)]
    sysv: &'a Limits,
    shmmin: u64,
    semvmx: u64,
    mqueue: Option<MqueueLimits>,
}

/// /proc/sys/fs/mqueue/*.
#[derive(Serialize)]
struct MqueueLimits {
    queues_max: u64,
    msg_max: u64,
    msgsize_max: u64,
    msg_default: u64,
    msgsize_default: u64,
}

fn show_limits(l: &Limits, kinds: &[Kind], json: bool) -> Result<()> {
    let shmmin = ipckit::sysv::shm::SHMMIN as u64;
    let semvmx = ipckit::sysv::sem::SEMVMX as u64;
    let mqueue = if json || kinds.contains(&Kind::PosixMq) {
        match ipckit::posix::mq::limits() {
            Ok(m) => Some(MqueueLimits {
                queues_max: m.queues_max as u64,
                msg_max: m.msg_max as u64,
                msgsize_max: m.msgsize_max as u64,
                msg_default: m.msg_default as u64,
                msgsize_default: m.msgsize_default as u64,
            }),
            Err(e) => {
                eprintln!("ipckit: ls: the POSIX message queue limits cannot be read: {e}");
                None
            }
        }
    } else {
        None
    };
    if json {
        // The library's serialization: the kernel's names as keys.
        return output::print_json(&AllLimits {
            sysv: l,
            shmmin,
            semvmx,
            mqueue,
        });
    }
    let mut rows: Vec<(Kind, &str, u64, &str)> = vec![
        (Kind::SysvShm, "shmmax", l.shmmax, "largest segment (bytes)"),
        (Kind::SysvShm, "shmmin", shmmin, "smallest segment (bytes)"),
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
        (Kind::SysvSem, "semvmx", semvmx, "largest semaphore value"),
        (Kind::SysvMsg, "msgmax", l.msgmax, "largest message (bytes)"),
        (
            Kind::SysvMsg,
            "msgmnb",
            l.msgmnb,
            "default queue capacity (bytes)",
        ),
        (Kind::SysvMsg, "msgmni", l.msgmni, "most message queues"),
    ];
    if let Some(m) = &mqueue {
        rows.extend([
            (
                Kind::PosixMq,
                "queues_max",
                m.queues_max,
                "most POSIX queues",
            ),
            (
                Kind::PosixMq,
                "msg_max",
                m.msg_max,
                "most messages per queue (mq_maxmsg)",
            ),
            (
                Kind::PosixMq,
                "msgsize_max",
                m.msgsize_max,
                "largest message (bytes, mq_msgsize)",
            ),
            (
                Kind::PosixMq,
                "msg_default",
                m.msg_default,
                "messages of a queue made without attributes",
            ),
            (
                Kind::PosixMq,
                "msgsize_default",
                m.msgsize_default,
                "message size of a queue made without attributes",
            ),
        ]);
    }
    output::emit(&name_value_table(&rows, kinds))
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
