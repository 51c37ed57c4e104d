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
//! - [`limits`] (`ipcs -l`) and [`usage`] (`ipcs -u`).
//! - [`shm_attached_pids`]: shmid → PIDs, from one scan of `/proc/<pid>/maps` ([`scan_maps`]).
//! - [`Names`]: user and group names for the ids.
//!
//! Only plain files are read; nothing here needs privilege, though without it the maps of other
//! users' processes are not readable and their attachments not seen.
//!
//! # References
//! [proc_sysvipc(5)](https://man7.org/linux/man-pages/man5/proc_sysvipc.5.html),
//! [proc_pid_maps(5)](https://man7.org/linux/man-pages/man5/proc_pid_maps.5.html),
//! [ipcs(1)](https://man7.org/linux/man-pages/man1/ipcs.1.html),
//! [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)

mod limits;
mod procfs;
mod sysv;
mod users;

pub use limits::{limits, usage, Limits, Usage};
pub use procfs::{scan_maps, MapsEntry};
pub use sysv::{
    msg_queues, parse_msg, parse_sem, parse_shm, sem_sets, shm_attached_pids, shm_segments,
    sysv_shmid_of_mapping, MsgInfo, SemInfo, ShmInfo, PROC_SYSVIPC_MSG, PROC_SYSVIPC_SEM,
    PROC_SYSVIPC_SHM,
};
pub use users::Names;
