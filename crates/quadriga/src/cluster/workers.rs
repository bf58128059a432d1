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
    /// The mean run time (µs) of the entries it finished in about the last
    /// minute, as its runner timed them (0: none, or not recorded).
    pub run_mean_us: u64,
    /// The longest of those run times (µs).
    pub run_max_us: u64,
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
            .arg(info.rss_bytes)
            .arg("run_mean_us")
            .arg(info.run_mean_us)
            .arg("run_max_us")
            .arg(info.run_max_us);
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
                b"run_mean_us" => info.run_mean_us = n(v)?,
                b"run_max_us" => info.run_max_us = n(v)?,
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

/// Run times over a sliding minute, in one-second buckets (count, sum, max),
/// so memory stays fixed however many entries finish.
#[derive(Debug, Default)]
pub(crate) struct RunTimes {
    /// `(second, count, sum µs, max µs)`, a second counted from `start`.
    buckets: std::collections::VecDeque<(u64, u64, u64, u64)>,
    start: Option<std::time::Instant>,
}

impl RunTimes {
    /// Records one entry's run time.
    pub(crate) fn record(&mut self, ran: Duration) {
        let now = self.second();
        let us = u64::try_from(ran.as_micros()).unwrap_or(u64::MAX);
        match self.buckets.back_mut() {
            Some(b) if b.0 == now => {
                b.1 += 1;
                b.2 = b.2.saturating_add(us);
                b.3 = b.3.max(us);
            }
            _ => self.buckets.push_back((now, 1, us, us)),
        }
        self.trim(now);
    }

    /// The mean and the longest run time (µs) of the last minute; `(0, 0)`
    /// when nothing finished in it.
    pub(crate) fn last_minute(&mut self) -> (u64, u64) {
        let now = self.second();
        self.trim(now);
        let (n, sum, max) = self
            .buckets
            .iter()
            .fold((0u64, 0u64, 0u64), |(n, s, m), b| {
                (n + b.1, s.saturating_add(b.2), m.max(b.3))
            });
        (sum.checked_div(n).unwrap_or(0), max)
    }

    fn second(&mut self) -> u64 {
        let start = *self.start.get_or_insert_with(std::time::Instant::now);
        start.elapsed().as_secs()
    }

    fn trim(&mut self, now: u64) {
        while self.buckets.front().is_some_and(|b| b.0 + 60 <= now) {
            self.buckets.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_times_give_the_mean_and_the_max_of_the_minute() {
        let mut r = RunTimes::default();
        assert_eq!(r.last_minute(), (0, 0));
        r.record(Duration::from_millis(2));
        r.record(Duration::from_millis(4));
        r.record(Duration::from_micros(9_000));
        assert_eq!(r.last_minute(), (5_000, 9_000));
        // Buckets older than a minute drop out.
        r.buckets.front_mut().unwrap().0 = 0;
        r.start = Some(std::time::Instant::now() - Duration::from_secs(61));
        assert_eq!(r.last_minute(), (0, 0));
    }
}
