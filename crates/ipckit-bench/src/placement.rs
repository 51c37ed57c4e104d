//! Where the two processes of a pinned run (`--pin`) run, and what the two CPUs share: a core
//! (SMT siblings, `topology/thread_siblings_list`), a cache (`cache/index*/shared_cpu_list`, the
//! lowest level shared), or neither. A cache line bounced between SMT siblings never leaves the
//! core; between cores it crosses a shared cache or the interconnect, so the floor and every
//! shared-memory latency depend on it, and the report says which it was.
//!
//! # References
//! [sysfs-devices-system-cpu](https://www.kernel.org/doc/Documentation/ABI/stable/sysfs-devices-system-cpu),
//! [cpu-lists in cpuset(7)](https://man7.org/linux/man-pages/man7/cpuset.7.html)

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Where sysfs describes the CPUs.
pub const SYSFS_CPUS: &str = "/sys/devices/system/cpu";

/// What the two CPUs share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// One core: SMT siblings (hyper-threads).
    Core,
    /// Different cores sharing a cache.
    Cache,
    /// Neither a core nor a cache (different sockets or clusters).
    Neither,
    /// sysfs does not say.
    Unknown,
}

/// Where a pinned run's two processes ran. In the JSON file under the optional top-level
/// `placement`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// The CPU of the measuring process.
    pub host_cpu: usize,
    /// The CPU of the peer process.
    pub peer_cpu: usize,
    /// What they share.
    pub sharing: Sharing,
    /// The same in words, with what sysfs said.
    pub detail: String,
}

/// Parses a kernel CPU list (`0-3,8,10-11`); `None` if it is not one.
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if a > b || b - a > 1 << 16 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

fn read_list(path: &Path) -> Option<Vec<usize>> {
    parse_cpu_list(&std::fs::read_to_string(path).ok()?)
}

/// What CPUs `a` and `b` share, from the sysfs tree at `root` (normally [`SYSFS_CPUS`]).
pub fn placement(root: &Path, a: usize, b: usize) -> Placement {
    let cpu = root.join(format!("cpu{a}"));
    let (sharing, detail) = classify(&cpu, b);
    Placement {
        host_cpu: a,
        peer_cpu: b,
        sharing,
        detail,
    }
}

fn classify(cpu: &Path, other: usize) -> (Sharing, String) {
    let siblings = read_list(&cpu.join("topology/thread_siblings_list"));
    if let Some(s) = &siblings {
        if s.contains(&other) {
            return (
                Sharing::Core,
                format!("one core: SMT siblings (CPU {other} is in its thread_siblings_list)"),
            );
        }
    }
    // The lowest cache level both appear in.
    let mut shared: Option<(u32, String)> = None;
    let mut any_cache = false;
    if let Ok(entries) = std::fs::read_dir(cpu.join("cache")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("index") {
                continue;
            }
            let Some(list) = read_list(&e.path().join("shared_cpu_list")) else {
                continue;
            };
            any_cache = true;
            let level = std::fs::read_to_string(e.path().join("level"))
                .ok()
                .and_then(|l| l.trim().parse::<u32>().ok())
                .unwrap_or(u32::MAX);
            if list.contains(&other) && shared.as_ref().is_none_or(|(l, _)| level < *l) {
                shared = Some((level, name));
            }
        }
    }
    match shared {
        Some((level, index)) => (
            Sharing::Cache,
            format!("different cores sharing the L{level} cache ({index}/shared_cpu_list)"),
        ),
        None if siblings.is_some() || any_cache => (
            Sharing::Neither,
            "different cores sharing no cache (the line crosses the interconnect)".to_string(),
        ),
        None => (
            Sharing::Unknown,
            "sysfs does not describe the CPUs' topology".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0\n"), Some(vec![0]));
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a"), None);
    }

    /// A fake sysfs tree, removed at the end (also on panic).
    struct Tree(std::path::PathBuf);

    impl Tree {
        fn new() -> Tree {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("ipckit-bench-sysfs-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Tree(dir)
        }

        fn put(&self, path: &str, text: &str) {
            let p = self.0.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }

        fn cache(&self, cpu: usize, index: usize, level: u32, list: &str) {
            self.put(
                &format!("cpu{cpu}/cache/index{index}/level"),
                &format!("{level}\n"),
            );
            self.put(
                &format!("cpu{cpu}/cache/index{index}/shared_cpu_list"),
                &format!("{list}\n"),
            );
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn two_cpus_share_a_core_a_cache_or_neither() {
        let t = Tree::new();
        // CPU 0 and 4 are SMT siblings; 0-3 share an L3; 8 is on another die.
        t.put("cpu0/topology/thread_siblings_list", "0,4\n");
        t.cache(0, 0, 1, "0,4");
        t.cache(0, 2, 2, "0,4");
        t.cache(0, 3, 3, "0-7");
        let p = placement(&t.0, 0, 4);
        assert_eq!(p.sharing, Sharing::Core, "{p:?}");
        let p = placement(&t.0, 0, 1);
        assert_eq!(p.sharing, Sharing::Cache, "{p:?}");
        assert!(p.detail.contains("L3"), "{p:?}");
        let p = placement(&t.0, 0, 8);
        assert_eq!(p.sharing, Sharing::Neither, "{p:?}");
        // This machine's layout: no SMT, L3 shared by both vCPUs.
        t.put("cpu1/topology/thread_siblings_list", "1\n");
        t.cache(1, 0, 1, "1");
        t.cache(1, 3, 3, "0-1");
        let p = placement(&t.0, 1, 0);
        assert_eq!((p.sharing, p.host_cpu, p.peer_cpu), (Sharing::Cache, 1, 0));
        // Nothing in sysfs: unknown, not "neither".
        assert_eq!(placement(&t.0, 5, 0).sharing, Sharing::Unknown);
    }
}
