//! What the machine has: hardware threads, physical cores and sockets, for
//! `--number-of-threads`, `--number-of-cores` and `--number-of-sockets`.
//!
//! Read from `/sys/devices/system/cpu/cpuN/topology` (each online hardware
//! thread says which core of which package it is), as GNU parallel reads
//! the same facts; without it, every thread counts as a core of one socket.

use std::collections::BTreeSet;
use std::path::Path;

/// The machine's processors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Topology {
    pub(crate) threads: usize,
    pub(crate) cores: usize,
    pub(crate) sockets: usize,
}

impl Topology {
    /// This machine's.
    pub(crate) fn read() -> Self {
        Self::from_sys(Path::new("/sys/devices/system/cpu")).unwrap_or_else(|| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            Topology {
                threads: n,
                cores: n,
                sockets: 1,
            }
        })
    }

    /// From a sysfs-like tree: `cpuN/topology/{core_id,physical_package_id}`.
    fn from_sys(dir: &Path) -> Option<Self> {
        let mut threads = 0;
        let mut cores = BTreeSet::new();
        let mut sockets = BTreeSet::new();
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Some(n) = name.strip_prefix("cpu") else {
                continue;
            };
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let topo = entry.path().join("topology");
            let read = |f: &str| {
                std::fs::read_to_string(topo.join(f))
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
            };
            let (Some(core), Some(package)) = (read("core_id"), read("physical_package_id")) else {
                // Offline threads have no topology.
                continue;
            };
            threads += 1;
            cores.insert((package, core));
            sockets.insert(package);
        }
        (threads > 0).then_some(Topology {
            threads,
            cores: cores.len(),
            sockets: sockets.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_threads_cores_and_sockets() {
        let dir = std::env::temp_dir().join(format!("quadriga-cpus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Two sockets, two cores each, two threads per core; cpu8 offline.
        for cpu in 0..8 {
            let t = dir.join(format!("cpu{cpu}/topology"));
            std::fs::create_dir_all(&t).unwrap();
            std::fs::write(t.join("core_id"), format!("{}\n", (cpu / 2) % 2)).unwrap();
            std::fs::write(t.join("physical_package_id"), format!("{}\n", cpu / 4)).unwrap();
        }
        std::fs::create_dir_all(dir.join("cpu8")).unwrap();
        std::fs::create_dir_all(dir.join("cpufreq")).unwrap();
        let t = Topology::from_sys(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            t,
            Topology {
                threads: 8,
                cores: 4,
                sockets: 2
            }
        );
        let here = Topology::read();
        assert!(here.threads >= here.cores && here.cores >= here.sockets && here.sockets >= 1);
    }
}
