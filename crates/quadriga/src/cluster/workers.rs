//! Worker records: who is serving a queue, with what, and how it is doing.
//! Each worker renews its record with its heartbeat; a record not renewed
//! within its TTL disappears, so the list shows live workers only.

use std::time::Duration;

use redis::Value;

use super::broker::{Broker, host_name};
use super::conn::Link;
use super::error::Error;
use super::keys::Keys;
use super::reply;
use super::scripts;

/// What a worker says about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Its consumer name.
    pub name: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// How many tasks it runs at once.
    pub concurrency: u32,
    /// The version of the program it runs.
    pub version: String,
    /// The task names it knows.
    pub tasks: Vec<String>,
    /// Tasks it completed.
    pub done: u64,
    /// Completions refused because its lease had lapsed (duplicate runs).
    pub refused: u64,
    /// Completed entries with at least one failed task.
    pub failed: u64,
    /// Entries completed in about the last minute.
    pub done_last_minute: u64,
    /// Its resident memory in bytes when it last heartbeat (0: not recorded).
    pub rss_bytes: u64,
    /// When the broker last heard from it (server clock, ms since the epoch);
    /// set by the broker, ignored on registration.
    pub seen_ms: u64,
}

impl WorkerInfo {
    /// A record for this process: consumer `name`, this host and pid.
    pub fn this_process(name: &str, concurrency: u32, tasks: Vec<String>) -> Self {
        WorkerInfo {
            name: name.to_owned(),
            host: host_name(),
            pid: std::process::id(),
            concurrency,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            tasks,
            ..WorkerInfo::default()
        }
    }
}

impl Broker {
    /// Writes (or renews) `info` as this queue's worker record, kept for
    /// `ttl` unless renewed. Safe to repeat.
    pub fn register(&mut self, info: &WorkerInfo, ttl: Duration) -> Result<(), Error> {
        let keys = self.keys().clone();
        let mut call = scripts::REGISTER.key(keys.workers());
        call.key(keys.worker(&info.name));
        call.arg(&info.name)
            .arg(ttl.as_millis().max(1) as u64)
            .arg("host")
            .arg(&info.host)
            .arg("pid")
            .arg(info.pid)
            .arg("concurrency")
            .arg(info.concurrency)
            .arg("version")
            .arg(&info.version)
            .arg("tasks")
            .arg(info.tasks.join("\n"))
            .arg("done")
            .arg(info.done)
            .arg("refused")
            .arg(info.refused)
            .arg("failed")
            .arg(info.failed)
            .arg("done_1m")
            .arg(info.done_last_minute)
            .arg("rss")
            .arg(info.rss_bytes);
        let link = self.link();
        let io = link.io_timeout();
        link.call("registering a worker", io, |con| call.invoke::<Value>(con))?;
        Ok(())
    }

    /// The queue's live workers (at most 1,000), by name.
    pub fn workers(&mut self) -> Result<Vec<WorkerInfo>, Error> {
        let keys = self.keys().clone();
        read_workers(self.link(), &keys)
    }
}

/// The live worker records of `keys`' queue (at most 1,000), by name.
pub(crate) fn read_workers(link: &mut Link, keys: &Keys) -> Result<Vec<WorkerInfo>, Error> {
    let io = link.io_timeout();
    let names: Vec<String> = link.call("listing workers", io, |con| {
        redis::cmd("ZRANGE")
            .arg(keys.workers())
            .arg(0)
            .arg(999)
            .query(con)
    })?;
    let mut out = Vec::new();
    for name in names {
        let v: Value = link.call("reading a worker record", io, |con| {
            redis::cmd("HGETALL").arg(keys.worker(&name)).query(con)
        })?;
        let fields = reply::pairs(&v, "a worker record")?;
        if fields.is_empty() {
            continue; // expired since the listing
        }
        let mut info = WorkerInfo {
            name,
            ..WorkerInfo::default()
        };
        for (k, v) in fields {
            let n = |v| reply::int(v, "a worker count").map(|n| n.max(0) as u64);
            match reply::bytes(k, "a field")? {
                b"host" => info.host = reply::text(v, "host")?,
                b"pid" => info.pid = n(v)? as u32,
                b"concurrency" => info.concurrency = n(v)? as u32,
                b"version" => info.version = reply::text(v, "version")?,
                b"tasks" => {
                    let t = reply::text(v, "tasks")?;
                    info.tasks = t.lines().map(str::to_owned).collect();
                }
                b"done" => info.done = n(v)?,
                b"refused" => info.refused = n(v)?,
                b"failed" => info.failed = n(v)?,
                b"done_1m" => info.done_last_minute = n(v)?,
                b"rss" => info.rss_bytes = n(v)?,
                b"seen_ms" => info.seen_ms = n(v)?,
                _ => {}
            }
        }
        out.push(info);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// This process's resident memory in bytes (`VmRSS`, Linux; 0 where unknown).
pub(crate) fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib.saturating_mul(1024))
}

/// Completions over a sliding minute, from samples of a running total taken
/// at each heartbeat.
#[derive(Debug, Default)]
pub(crate) struct LastMinute(std::collections::VecDeque<(std::time::Instant, u64)>);

impl LastMinute {
    /// Records `total` now; returns how much it grew over the last minute.
    pub(crate) fn sample(&mut self, total: u64) -> u64 {
        let now = std::time::Instant::now();
        self.0.push_back((now, total));
        while let Some(&(at, _)) = self.0.front()
            && now.duration_since(at) > Duration::from_secs(60)
        {
            self.0.pop_front();
        }
        self.0
            .front()
            .map_or(0, |&(_, first)| total.saturating_sub(first))
    }
}
