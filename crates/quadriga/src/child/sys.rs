//! Readings of this machine and this process: /proc, rlimits, rusage.

use std::time::Duration;

use rustix::process::Resource;

use super::exit::timeval;

/// `MemAvailable` from `/proc/meminfo`, in bytes.
///
/// ```
/// assert!(quadriga::child::mem_available().unwrap_or(1) > 0);
/// ```
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Processes running or runnable now, from `/proc/loadavg` (the caller not
/// counted).
pub fn runnable_processes() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let field = text.split_whitespace().nth(3)?;
    let running: f64 = field.split('/').next()?.parse().ok()?;
    Some((running - 1.0).max(0.0))
}

/// Raises this process's soft open-file limit to the hard one; returns the
/// soft limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let lim = rustix::process::getrlimit(Resource::Nofile);
    if let Some(max) = lim.maximum
        && lim.current != Some(max)
    {
        let new = rustix::process::Rlimit {
            current: Some(max),
            maximum: Some(max),
        };
        if rustix::process::setrlimit(Resource::Nofile, new).is_ok() {
            return max;
        }
    }
    lim.current.unwrap_or(1 << 20)
}

/// This process's own CPU time, user + system (all its threads; not its
/// children).
pub fn self_cpu() -> Duration {
    // SAFETY: `rusage` is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is to a live, writable local of the right type.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if r != 0 {
        return Duration::ZERO;
    }
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// The CPUs this process may use (affinity and cgroup quota respected; at
/// least 1).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_readings() {
        assert!(cores() >= 1);
        assert!(mem_available().unwrap() > 0);
        assert!(runnable_processes().is_some());
        assert!(raise_nofile_limit() >= 64);
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(20) {}
        assert!(self_cpu() > Duration::ZERO);
    }
}
