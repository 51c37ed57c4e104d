//! What IPC objects exist on the machine, what they use, and who has them attached: the
//! information `ipcs` prints, as typed values read from `/proc`.
//!
//! System V objects outlive the processes that made them, so finding and removing leftovers is part
//! of using them. This module removes the trap of scraping `ipcs` output, which is meant for people
//! and changes between versions: it parses the kernel's own tables (`/proc/sysvipc/*`) by column
//! name, reads the limits from `/proc/sys/kernel`, and finds the processes attached to a segment
//! from their memory maps, which `ipcs` does not show at all.
//!
//! - [`shm_segments`], [`sem_sets`], [`msg_queues`]: every object, all columns ([`ShmInfo`],
//!   [`SemInfo`], [`MsgInfo`]); [`parse_shm`], [`parse_sem`], [`parse_msg`] parse captured text.
//! - [`shm_detail`], [`sem_detail`], [`msg_detail`]: one object in full, as `ipcs -i ID` shows it,
//!   with each semaphore's state ([`semaphores`]) and a queue's capacity ([`msg_qbytes`]).
//! - [`limits`] (`ipcs -l`) and [`usage`] (`ipcs -u`).
//! - [`shm_attached_pids`]: shmid → PIDs, from one scan of `/proc/<pid>/maps` ([`scan_maps`]);
//!   [`shm_attachments`]: with how many times each PID has the segment attached.
//! - [`Names`]: user and group names for the ids, through NSS as `ipcs` finds them.
//! - POSIX objects, which have no such table, from their files: [`posix_shm_objects`],
//!   [`posix_semaphores`], [`posix_mqueues`] (or [`PosixMqs::NotMounted`] when `/dev/mqueue` is
//!   not mounted), and the processes that map them or hold them open ([`posix_users`]).
//! - [`gc`]: objects left behind by processes that are gone, by rules over these listings;
//!   [`record_shm_read`] and [`shm_reads`]: what `ipckit dump`'s attachment changed, so that
//!   `gc` is not fooled by it.
//! - With the `serde` feature, the objects, [`Attachments`], [`gc::Orphan`], [`Limits`] and
//!   [`Usage`] implement `serde::Serialize` in the shape `ipckit ls --json` and `ipckit gc --json`
//!   print (each object with its `"kind"`, keys `"0x%08x"`, permissions `"0640"`, times RFC 3339
//!   in UTC or `null`; a POSIX name that is not UTF-8 as [`display_name`] plus `"name_bytes"`).
//!
//! Only plain files are read (POSIX semaphores and queues are also opened, to read a value and
//! attributes); nothing here needs privilege, though without it the maps and descriptors of other
//! users' processes are not readable and their attachments not seen.
//!
//! # References
//! [proc_sysvipc(5)](https://man7.org/linux/man-pages/man5/proc_sysvipc.5.html),
//! [proc_pid_maps(5)](https://man7.org/linux/man-pages/man5/proc_pid_maps.5.html),
//! [ipcs(1)](https://man7.org/linux/man-pages/man1/ipcs.1.html),
//! [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html),
//! [shm_overview(7)](https://man7.org/linux/man-pages/man7/shm_overview.7.html),
//! [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html),
//! [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)

mod detail;
pub mod gc;
mod limits;
mod posix;
mod procfs;
mod reads;
#[cfg(feature = "serde")]
mod serialize;
mod sysv;
mod users;

pub use detail::{
    command_line, creator_command_line, msg_detail, msg_qbytes, sem_detail, semaphores, shm_detail,
    MsgDetail, SemDetail, SemaphoreState,
};
pub use limits::{limits, usage, Limits, Usage};
pub use posix::{
    display_name, mqueue_mount_point, posix_mqueues, posix_name, posix_semaphores,
    posix_shm_objects, posix_users, unlink_posix, FileId, PosixKind, PosixMqInfo, PosixMqs,
    PosixSemInfo, PosixShmInfo, Users, DEV_MQUEUE, DEV_SHM, MOUNT_MQUEUE,
};
pub use procfs::{scan_maps, MapsEntry};
pub use reads::{forget_shm_reads, record_shm_read, shm_reads, ShmRead, SHM_READS_DIR};
pub use sysv::{
    msg_queues, parse_msg, parse_sem, parse_shm, sem_sets, shm_attached_pids, shm_attachments,
    shm_segments, sysv_shmid_of_mapping, Attachments, MsgInfo, SemInfo, ShmInfo, PROC_SYSVIPC_MSG,
    PROC_SYSVIPC_SEM, PROC_SYSVIPC_SHM,
};
pub use users::Names;
