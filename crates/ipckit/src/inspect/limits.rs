//! System V limits (`ipcs -l`) from `/proc/sys/kernel`, and usage (`ipcs -u`) summed from the
//! `/proc/sysvipc` tables.

use std::path::Path;

use super::procfs::{parse_numbers, read_text};
use super::sysv::{msg_queues, sem_sets, shm_segments, MsgInfo, SemInfo, ShmInfo};
use crate::error::Result;

/// Where the System V limits are.
const PROC_SYS_KERNEL: &str = "/proc/sys/kernel";

/// The System V limits of this IPC namespace, as `/proc/sys/kernel` holds them (`ipcs -l`).
///
/// With the `serde` feature it is (de)serialized with the kernel's names as keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Limits {
    /// `shmmax`: the largest shared-memory segment, in bytes.
    pub shmmax: u64,
    /// `shmall`: all shared memory together, in pages.
    pub shmall: u64,
    /// `shmmni`: the most shared-memory segments.
    pub shmmni: u64,
    /// `semmsl`: the most semaphores in one set.
    pub semmsl: u64,
    /// `semmns`: the most semaphores in all sets together.
    pub semmns: u64,
    /// `semopm`: the most operations in one `semop` call.
    pub semopm: u64,
    /// `semmni`: the most semaphore sets.
    pub semmni: u64,
    /// `msgmax`: the largest message, in bytes.
    pub msgmax: u64,
    /// `msgmnb`: the default capacity of a new message queue, in bytes.
    pub msgmnb: u64,
    /// `msgmni`: the most message queues.
    pub msgmni: u64,
}

/// The System V limits: `/proc/sys/kernel/{shmmax,shmall,shmmni,sem,msgmax,msgmnb,msgmni}`
/// (`sem` holds semmsl, semmns, semopm and semmni in that order).
///
/// # References
/// [proc_sys_kernel(5)](https://man7.org/linux/man-pages/man5/proc_sys_kernel.5.html)
pub fn limits() -> Result<Limits> {
    limits_in(Path::new(PROC_SYS_KERNEL))
}

/// [`limits`] read from the files in `dir`.
pub(crate) fn limits_in(dir: &Path) -> Result<Limits> {
    let one = |name: &str| -> Result<u64> {
        let file = dir.join(name);
        let [n] = parse_numbers::<1>(&file, &read_text(&file)?)?;
        Ok(n)
    };
    let sem_file = dir.join("sem");
    let [semmsl, semmns, semopm, semmni] = parse_numbers::<4>(&sem_file, &read_text(&sem_file)?)?;
    Ok(Limits {
        shmmax: one("shmmax")?,
        shmall: one("shmall")?,
        shmmni: one("shmmni")?,
        semmsl,
        semmns,
        semopm,
        semmni,
        msgmax: one("msgmax")?,
        msgmnb: one("msgmnb")?,
        msgmni: one("msgmni")?,
    })
}

/// What the System V objects of this IPC namespace use (`ipcs -u`).
///
/// With the `serde` feature it is (de)serialized with the field names as keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Usage {
    /// Shared-memory segments.
    pub shm_segments: u64,
    /// Pages the segments take: the sum of each size rounded up to whole pages.
    pub shm_pages_allocated: u64,
    /// Pages of the segments resident in memory.
    pub shm_pages_resident: u64,
    /// Pages of the segments swapped out.
    pub shm_pages_swapped: u64,
    /// Semaphore sets.
    pub sem_arrays: u64,
    /// Semaphores in all sets.
    pub sem_semaphores: u64,
    /// Message queues.
    pub msg_queues: u64,
    /// Messages in all queues.
    pub msg_messages: u64,
    /// Bytes of message text in all queues.
    pub msg_used_bytes: u64,
}

impl Usage {
    /// Sums the tables; `page_size` in bytes (`rss` and `swap` are bytes, usage counts pages).
    pub fn from_tables(shm: &[ShmInfo], sem: &[SemInfo], msg: &[MsgInfo], page_size: u64) -> Usage {
        let page = page_size.max(1);
        let sum = |it: &mut dyn Iterator<Item = u64>| it.fold(0u64, u64::saturating_add);
        Usage {
            shm_segments: shm.len() as u64,
            shm_pages_allocated: sum(&mut shm.iter().map(|s| s.size.div_ceil(page))),
            shm_pages_resident: sum(&mut shm.iter().map(|s| s.rss / page)),
            shm_pages_swapped: sum(&mut shm.iter().map(|s| s.swap / page)),
            sem_arrays: sem.len() as u64,
            sem_semaphores: sum(&mut sem.iter().map(|s| s.nsems)),
            msg_queues: msg.len() as u64,
            msg_messages: sum(&mut msg.iter().map(|q| q.qnum)),
            msg_used_bytes: sum(&mut msg.iter().map(|q| q.cbytes)),
        }
    }
}

/// What the System V objects use now, summed from [`shm_segments`], [`sem_sets`] and
/// [`msg_queues`] with the system's page size.
///
/// # References
/// [ipcs(1)](https://man7.org/linux/man-pages/man1/ipcs.1.html)
pub fn usage() -> Result<Usage> {
    Ok(Usage::from_tables(
        &shm_segments()?,
        &sem_sets()?,
        &msg_queues()?,
        rustix::param::page_size() as u64,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::sysv::{parse_msg, parse_sem, parse_shm};
    use super::*;
    use crate::error::Object;

    #[test]
    fn limits_are_read_from_their_files() {
        let dir = ipckit_testkit::unique_path("limits");
        let _cleanup = ipckit_testkit::Defer(|| {
            let _ = std::fs::remove_dir_all(&dir);
        });
        std::fs::create_dir_all(&dir).unwrap();
        for (name, value) in [
            ("shmmax", "18446744073692774399\n"),
            ("shmall", "2097152\n"),
            ("shmmni", "4096\n"),
            ("sem", "250\t32000\t32\t128\n"),
            ("msgmax", "8192\n"),
            ("msgmnb", "16384\n"),
            ("msgmni", "32000\n"),
        ] {
            std::fs::write(dir.join(name), value).unwrap();
        }
        let l = limits_in(&dir).unwrap();
        assert_eq!(
            l,
            Limits {
                shmmax: 18446744073692774399,
                shmall: 2097152,
                shmmni: 4096,
                semmsl: 250,
                semmns: 32000,
                semopm: 32,
                semmni: 128,
                msgmax: 8192,
                msgmnb: 16384,
                msgmni: 32000,
            }
        );
        std::fs::write(dir.join("sem"), "250 32000 32\n").unwrap();
        let e = limits_in(&dir).unwrap_err();
        assert_eq!(e.object(), &Object::Path(dir.join("sem").into()));
        std::fs::remove_file(dir.join("msgmni")).unwrap();
        assert_eq!(
            limits_in(&dir).unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn usage_rounds_sizes_up_to_pages() {
        let shm = parse_shm(
            "key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap\n\
             1 1 600 1 0 0 0 0 0 0 0 0 0 0 4096 0\n\
             2 2 600 8193 0 0 0 0 0 0 0 0 0 0 8192 4096\n",
            Path::new("shm"),
        )
        .unwrap();
        let sem = parse_sem(
            "key semid perms nsems uid gid cuid cgid otime ctime\n\
             1 1 600 3 0 0 0 0 0 0\n2 2 600 5 0 0 0 0 0 0\n",
            Path::new("sem"),
        )
        .unwrap();
        let msg = parse_msg(
            "key msqid perms cbytes qnum lspid lrpid uid gid cuid cgid stime rtime ctime\n\
             1 1 600 10 2 0 0 0 0 0 0 0 0 0\n2 2 600 7 1 0 0 0 0 0 0 0 0 0\n",
            Path::new("msg"),
        )
        .unwrap();
        let u = Usage::from_tables(&shm, &sem, &msg, 4096);
        assert_eq!(
            u,
            Usage {
                shm_segments: 2,
                shm_pages_allocated: 1 + 3,
                shm_pages_resident: 1 + 2,
                shm_pages_swapped: 1,
                sem_arrays: 2,
                sem_semaphores: 8,
                msg_queues: 2,
                msg_messages: 3,
                msg_used_bytes: 17,
            }
        );
        assert_eq!(Usage::from_tables(&[], &[], &[], 4096), Usage::default());
    }
}
