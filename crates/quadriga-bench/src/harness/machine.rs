//! What the numbers were measured on: cores, CPU, OS, date, toolchain, load.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The machine and build a run was measured on.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    /// `std::thread::available_parallelism()`.
    pub(crate) cores: usize,
    /// The CPU's model name, from `/proc/cpuinfo` where there is one.
    pub(crate) cpu_model: Option<String>,
    /// `std::env::consts::OS`.
    pub(crate) os: &'static str,
    /// `std::env::consts::ARCH`.
    pub(crate) arch: &'static str,
    /// When the run started, UTC, ISO 8601 (`date -u`; seconds since the epoch
    /// if `date` is missing).
    pub(crate) date_utc: String,
    /// When the run started, seconds since the Unix epoch.
    pub(crate) unix_time: u64,
    /// `rustc --version` of the `rustc` on `PATH` (the toolchain that built this,
    /// when run through `cargo run`).
    pub(crate) rustc: Option<String>,
    /// `git rev-parse HEAD` of the working directory, with `-dirty` if it has
    /// uncommitted changes.
    pub(crate) git_commit: Option<String>,
    /// `release` or `debug`: debug numbers are meaningless.
    pub(crate) build: &'static str,
    /// `/proc/loadavg` when the run started: other load skews every number.
    pub(crate) loadavg_start: Option<String>,
    /// `/proc/loadavg` when the run ended.
    pub(crate) loadavg_end: Option<String>,
    /// Share of the machine's CPU time, during the run, that went to *other*
    /// processes (from `/proc/stat` less this process and its children): above a
    /// few percent, every number is suspect.
    pub(crate) foreign_cpu_share: Option<f64>,
}

impl Machine {
    /// Probes the machine now.
    pub(crate) fn probe() -> Self {
        let unix_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            }),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            date_utc: output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])
                .unwrap_or_else(|| format!("@{unix_time}")),
            unix_time,
            rustc: output("rustc", &["--version"]),
            git_commit: output("git", &["rev-parse", "HEAD"]).map(|c| {
                let dirty = output("git", &["status", "--porcelain", "--untracked-files=no"])
                    .is_some_and(|s| !s.is_empty());
                if dirty { c + "-dirty" } else { c }
            }),
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            loadavg_start: loadavg(),
            loadavg_end: None,
            foreign_cpu_share: None,
        }
    }

    /// One line for the top of the printed report.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} cores ({}), {}/{}, {}, {} build, {}, load {}",
            self.cores,
            self.cpu_model.as_deref().unwrap_or("unknown CPU"),
            self.os,
            self.arch,
            self.rustc.as_deref().unwrap_or("rustc ?"),
            self.build,
            self.date_utc,
            self.loadavg_start.as_deref().unwrap_or("?"),
        )
    }
}

/// The first three fields of `/proc/loadavg`.
pub(crate) fn loadavg() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// A command's trimmed stdout, if it ran and succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// CPU time counters: the whole machine's and this process's (with its
/// waited-for children), in clock ticks. Linux only.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuTimes {
    /// Ticks every CPU spent busy (not idle or waiting on I/O).
    busy: u64,
    /// Ticks every CPU spent in total.
    total: u64,
    /// Ticks this process and its waited-for children ran.
    own: u64,
}

impl CpuTimes {
    /// Reads the counters now; `None` off Linux.
    pub(crate) fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal
        let total: u64 = cpu.iter().sum();
        let busy = total - cpu.get(3)? - cpu.get(4)?;
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the `(comm)`, which may contain spaces: state is field 3,
        // utime stime cutime cstime are fields 14..=17.
        let after = own_stat.rsplit_once(')')?.1;
        let own = after
            .split_whitespace()
            .skip(11)
            .take(4)
            .map(|v| v.parse::<u64>().ok())
            .sum::<Option<u64>>()?;
        Some(Self { busy, total, own })
    }

    /// The share of all CPU time since `start` that other processes used.
    pub(crate) fn foreign_share_since(self, start: Self) -> f64 {
        let total = self.total.saturating_sub(start.total).max(1) as f64;
        let busy = self.busy.saturating_sub(start.busy);
        let own = self.own.saturating_sub(start.own);
        (busy.saturating_sub(own) as f64 / total).clamp(0.0, 1.0)
    }
}
