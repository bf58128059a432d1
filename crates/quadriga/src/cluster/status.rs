//! [`Status`]: a read-only snapshot of one queue — its live workers, each
//! shard's depth, leases, dead letters and delayed entries, and the
//! completions of the last minute — for `quadriga status` and dashboards.
//!
//! Every read is bounded: a fixed number of commands per shard (`XLEN`,
//! `XPENDING` summary, `XINFO GROUPS`, one `XRANGE … COUNT 1`, `ZCARD`), the
//! worker list capped at 1,000, and no `KEYS` or `SCAN`. Nothing is written:
//! [`read_status`] does not even create a missing stream.
//!
//! The throughput needs no extra broker work: each worker keeps a sliding
//! minute of its completions and writes it into its record with its
//! heartbeat; the snapshot sums the live workers' figures. The run times
//! (mean and longest entry run of the last minute) come the same way.

use redis::Value;
use serde::{Deserialize, Serialize};

use super::broker::Broker;
use super::config::BrokerConfig;
use super::conn::Link;
use super::dead::DeadLetterInfo;
use super::error::Error;
use super::failures::Failure;
use super::keys::{GROUP, Keys, MAX_SHARDS};
use super::reply;
use super::workers::{WorkerInfo, read_workers};

/// A snapshot of one queue. Field names are stable: they are the
/// `quadriga status --json` document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The queue's name.
    pub queue: String,
    /// The broker's clock when the snapshot was taken (ms since the epoch);
    /// every age is measured against it.
    pub server_time_ms: u64,
    /// The live workers (a record renewed within its TTL), by name; at most
    /// 1,000.
    pub workers: Vec<WorkerStatus>,
    /// One row per shard, in order. Empty when the queue has no stream yet.
    pub shards: Vec<ShardStatus>,
    /// Sums over the workers and shards.
    pub totals: Totals,
}

/// One live worker, as it reports itself plus what the broker sees it hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Its consumer name.
    pub name: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// How many entries it runs at once.
    pub slots: u32,
    /// Entries it holds now (leased to it in the pending lists).
    pub running: u64,
    /// Entries it completed.
    pub done: u64,
    /// Completed entries with at least one failed task.
    pub failed: u64,
    /// Completions refused because its lease had lapsed.
    pub refused: u64,
    /// Entries it completed in about the last minute.
    pub done_last_minute: u64,
    /// How long ago (ms) it last heartbeat.
    pub heartbeat_age_ms: u64,
    /// Its resident memory at its last heartbeat, when it records it.
    pub rss_bytes: Option<u64>,
    /// The mean run time (µs) of the entries it finished in about the last
    /// minute, timed on the worker from start to outcome (queueing not
    /// counted; a map chunk is one entry); `None` when none finished.
    pub run_mean_us: Option<u64>,
    /// The longest of those run times (µs).
    pub run_max_us: Option<u64>,
    /// The version of the program it runs.
    pub version: String,
    /// The task names it knows.
    pub tasks: Vec<String>,
}

/// One shard of the queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStatus {
    /// The shard's number.
    pub shard: u16,
    /// Entries waiting for a worker.
    pub waiting: u64,
    /// Entries leased to a worker (running, or held by a lost worker until
    /// a sweep reclaims them).
    pub leased: u64,
    /// Age (ms since enqueue) of the oldest waiting entry.
    pub oldest_waiting_age_ms: Option<u64>,
    /// Age (ms since enqueue) of the oldest leased entry.
    pub oldest_leased_age_ms: Option<u64>,
    /// Entries in the dead-letter stream.
    pub dead_letters: u64,
    /// Delayed entries (a countdown or a retry's back-off) not yet due.
    pub delayed: u64,
}

/// Sums over the snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Live workers.
    pub workers: u64,
    /// Their slots.
    pub slots: u64,
    /// Entries waiting, over all shards.
    pub waiting: u64,
    /// Entries leased, over all shards.
    pub leased: u64,
    /// Dead letters, over all shards.
    pub dead_letters: u64,
    /// Delayed entries, over all shards.
    pub delayed: u64,
    /// Entries the live workers completed in about the last minute.
    pub done_last_minute: u64,
    /// The mean entry run time (µs) over the live workers' last minute,
    /// each worker's mean weighted by its completions; `None` when none
    /// finished.
    pub run_mean_us: Option<u64>,
    /// The longest entry run time (µs) of the last minute over the workers.
    pub run_max_us: Option<u64>,
}

impl Broker {
    /// A snapshot of this handle's queue (its configured shards). Read-only.
    pub fn status(&mut self) -> Result<Status, Error> {
        let keys = self.keys().clone();
        let workers = self.workers()?;
        snapshot(self.link(), &keys, keys.shards(), workers)
    }
}

/// A snapshot of the queue that `config` names, without connecting a
/// [`Broker`] (which would create missing streams): the shards are found on
/// the server (those that exist, from 0 on; at least `config.shards` are
/// looked at). Within the config's connect and reply timeouts, so an
/// unreachable broker fails fast.
pub fn read_status(config: &BrokerConfig) -> Result<Status, Error> {
    QueueReader::new(config)?.status()
}

/// A read-only view of one queue on one connection, kept between reads
/// (and opened again after a failure): for tools that look again and again,
/// like a dashboard, without a connection per look. Like [`read_status`], it
/// writes nothing and creates nothing.
///
/// ```no_run
/// # #[cfg(feature = "cluster")] {
/// use quadriga::cluster::{BrokerConfig, QueueReader};
///
/// let mut reader = QueueReader::new(&BrokerConfig::new("redis://127.0.0.1:6379/"))?;
/// let status = reader.status()?;
/// let dead = reader.dead_letters(status.shards.iter().map(|s| s.shard), 50)?;
/// println!("{} waiting, {} dead letters", status.totals.waiting, dead.len());
/// # }
/// # Ok::<(), quadriga::cluster::Error>(())
/// ```
#[derive(Debug)]
pub struct QueueReader {
    link: Link,
    /// The queue's keys with the most shards (the shards are found by
    /// looking).
    probe: Keys,
    prefix: String,
    max_entry_bytes: usize,
}

impl QueueReader {
    /// A reader of the queue that `config` names (nothing is sent yet: the
    /// connection opens on the first read, within the config's timeouts).
    pub fn new(config: &BrokerConfig) -> Result<QueueReader, Error> {
        Ok(QueueReader {
            probe: Keys::new(&config.prefix, &config.queue, MAX_SHARDS)?,
            link: Link::new(&config.url, config.connect_timeout, config.io_timeout)?,
            prefix: config.prefix.clone(),
            max_entry_bytes: config.max_entry_bytes,
        })
    }

    /// A snapshot, as [`read_status`] reads it.
    pub fn status(&mut self) -> Result<Status, Error> {
        let shards = count_shards(&mut self.link, &self.probe)?;
        let keys = Keys::new(&self.prefix, self.probe.queue(), shards.max(1))?;
        let workers = read_workers(&mut self.link, &keys)?;
        snapshot(&mut self.link, &keys, shards, workers)
    }

    /// The most recent failures, newest first, at most `max`, as
    /// [`read_failures`](super::read_failures) reads them.
    pub fn failures(&mut self, max: usize) -> Result<Vec<Failure>, Error> {
        super::failures::read(&mut self.link, &self.probe, max)
    }

    /// Up to `max` dead letters of `shards`, as
    /// [`read_dead_letters`](super::read_dead_letters) reads them.
    pub fn dead_letters(
        &mut self,
        shards: impl IntoIterator<Item = u16>,
        max: usize,
    ) -> Result<Vec<DeadLetterInfo>, Error> {
        super::dead::read(
            &mut self.link,
            &self.probe,
            shards,
            max,
            self.max_entry_bytes,
        )
    }
}

/// How many consecutive shard streams exist, from shard 0 (`EXISTS` in
/// pipelined batches of 64).
fn count_shards(link: &mut Link, probe: &Keys) -> Result<u16, Error> {
    let mut n = 0u16;
    while n < MAX_SHARDS {
        let batch: Vec<u16> = (n..MAX_SHARDS.min(n + 64)).collect();
        let mut pipe = redis::pipe();
        for &s in &batch {
            pipe.cmd("EXISTS").arg(probe.stream(s));
        }
        // One command per key: on a Redis Cluster each goes to its shard's node.
        let found: Vec<u8> = link.query_pipe("looking for the queue's shards", &pipe)?;
        for (&s, &exists) in batch.iter().zip(&found) {
            if exists == 0 {
                return Ok(s);
            }
        }
        n = batch[batch.len() - 1] + 1;
    }
    Ok(MAX_SHARDS)
}

/// Reads shards `0..shards` of `keys`' queue and joins in the workers.
fn snapshot(
    link: &mut Link,
    keys: &Keys,
    shards: u16,
    infos: Vec<WorkerInfo>,
) -> Result<Status, Error> {
    let io = link.io_timeout();
    let (secs, micros): (u64, u64) = link.call("reading the broker's clock", io, |con| {
        redis::cmd("TIME").query(con)
    })?;
    let now = secs * 1000 + micros / 1000;
    let mut held: Vec<(String, u64)> = Vec::new();
    let count = shards;
    let mut shards = Vec::with_capacity(usize::from(count));
    for shard in 0..count {
        let stream = keys.stream(shard);
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN")
            .arg(&stream)
            .cmd("XPENDING")
            .arg(&stream)
            .arg(GROUP)
            .cmd("XINFO")
            .arg("GROUPS")
            .arg(&stream)
            .cmd("XLEN")
            .arg(keys.dead(shard))
            .cmd("ZCARD")
            .arg(keys.delayed(shard));
        // A shard's keys share one hash tag: one node, one round trip.
        let (len, pending, groups, dead, delayed): (u64, Value, Value, u64, u64) =
            link.query_pipe("reading a shard's status", &pipe)?;
        let (leased, oldest_leased) = pending_summary(&pending, &mut held)?;
        let after = last_delivered(&groups)?;
        let first_waiting: Value = link.call("reading the oldest waiting entry", io, |con| {
            redis::cmd("XRANGE")
                .arg(&stream)
                .arg(format!("({after}"))
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .query(con)
        })?;
        let oldest_waiting = match reply::array(&first_waiting, "XRANGE")? {
            [entry, ..] => match reply::array(entry, "an entry")? {
                [id, ..] => Some(reply::text(id, "an entry id")?),
                [] => None,
            },
            [] => None,
        };
        let age = |id: Option<String>| id.and_then(|id| id_ms(&id)).map(|t| now.saturating_sub(t));
        shards.push(ShardStatus {
            shard,
            // Completed, cancelled and dead-lettered entries leave the
            // stream: what stays is waiting or leased.
            waiting: len.saturating_sub(leased),
            leased,
            oldest_waiting_age_ms: age(oldest_waiting),
            oldest_leased_age_ms: age(oldest_leased),
            dead_letters: dead,
            delayed,
        });
    }
    let workers: Vec<WorkerStatus> = infos
        .into_iter()
        .map(|w| WorkerStatus {
            running: held
                .iter()
                .filter(|(c, _)| *c == w.name)
                .map(|(_, n)| n)
                .sum(),
            heartbeat_age_ms: now.saturating_sub(w.seen_ms),
            rss_bytes: (w.rss_bytes > 0).then_some(w.rss_bytes),
            run_mean_us: (w.run_max_us > 0).then_some(w.run_mean_us),
            run_max_us: (w.run_max_us > 0).then_some(w.run_max_us),
            name: w.name,
            host: w.host,
            pid: w.pid,
            slots: w.concurrency,
            done: w.done,
            failed: w.failed,
            refused: w.refused,
            done_last_minute: w.done_last_minute,
            version: w.version,
            tasks: w.tasks,
        })
        .collect();
    let totals = Totals {
        workers: workers.len() as u64,
        slots: workers.iter().map(|w| u64::from(w.slots)).sum(),
        waiting: shards.iter().map(|s| s.waiting).sum(),
        leased: shards.iter().map(|s| s.leased).sum(),
        dead_letters: shards.iter().map(|s| s.dead_letters).sum(),
        delayed: shards.iter().map(|s| s.delayed).sum(),
        done_last_minute: workers.iter().map(|w| w.done_last_minute).sum(),
        run_mean_us: weighted_mean(&workers),
        run_max_us: workers.iter().filter_map(|w| w.run_max_us).max(),
    };
    Ok(Status {
        queue: keys.queue().to_owned(),
        server_time_ms: now,
        workers,
        shards,
        totals,
    })
}

/// The workers' mean run times, each weighted by its completions of the
/// last minute (at least 1, as a worker with a run time ran something).
fn weighted_mean(workers: &[WorkerStatus]) -> Option<u64> {
    let (mut n, mut sum) = (0u128, 0u128);
    for w in workers {
        if let Some(mean) = w.run_mean_us {
            let weight = u128::from(w.done_last_minute.max(1));
            n += weight;
            sum += u128::from(mean) * weight;
        }
    }
    (n > 0).then(|| (sum / n) as u64)
}

/// The `XPENDING` summary: the count, the smallest id, and per consumer how
/// many entries it holds (added to `held`). A missing group reads as empty.
fn pending_summary(
    v: &Value,
    held: &mut Vec<(String, u64)>,
) -> Result<(u64, Option<String>), Error> {
    let parts = match v {
        Value::ServerError(_) => return Ok((0, None)),
        v => reply::array(v, "XPENDING")?,
    };
    let [count, min, _max, consumers] = parts else {
        return Ok((0, None));
    };
    let count = reply::int(count, "a pending count")?.max(0) as u64;
    let min = match min {
        Value::Nil => None,
        v => Some(reply::text(v, "a pending id")?),
    };
    for row in reply::array(consumers, "pending consumers")? {
        let [name, n] = reply::array(row, "a pending consumer")? else {
            return Err(Error::protocol(
                "XPENDING",
                "a consumer row is not name, count",
            ));
        };
        let n = reply::int(n, "a consumer's pending count")?.max(0) as u64;
        let name = reply::text(name, "a consumer name")?;
        match held.iter_mut().find(|(c, _)| *c == name) {
            Some((_, total)) => *total += n,
            None => held.push((name, n)),
        }
    }
    Ok((count, min))
}

/// Our group's last delivered id from `XINFO GROUPS` (`0-0` when the group
/// or the stream is missing).
fn last_delivered(v: &Value) -> Result<String, Error> {
    let groups = match v {
        Value::ServerError(_) => return Ok("0-0".into()),
        v => reply::array(v, "XINFO GROUPS")?,
    };
    for g in groups {
        let fields = reply::pairs(g, "a group")?;
        let field = |name: &[u8]| {
            fields
                .iter()
                .find(|(k, _)| reply::bytes(k, "a field").is_ok_and(|k| k == name))
                .map(|(_, v)| *v)
        };
        if let Some(n) = field(b"name")
            && reply::bytes(n, "a group name")? == GROUP.as_bytes()
        {
            return match field(b"last-delivered-id") {
                Some(id) => reply::text(id, "last-delivered-id"),
                None => Ok("0-0".into()),
            };
        }
    }
    Ok("0-0".into())
}

/// The millisecond part of a stream id (`<ms>-<seq>`): when it was added.
fn id_ms(id: &str) -> Option<u64> {
    id.split_once('-').map_or(id, |(ms, _)| ms).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_give_their_time() {
        assert_eq!(id_ms("1700000000123-4"), Some(1_700_000_000_123));
        assert_eq!(id_ms("oops"), None);
    }

    #[test]
    fn the_pending_summary_is_read_per_consumer() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let v = Value::Array(vec![
            Value::Int(3),
            bulk("5-0"),
            bulk("9-0"),
            Value::Array(vec![
                Value::Array(vec![bulk("a"), bulk("2")]),
                Value::Array(vec![bulk("b"), bulk("1")]),
            ]),
        ]);
        let mut held = vec![("a".to_owned(), 1)];
        assert_eq!(
            pending_summary(&v, &mut held).unwrap(),
            (3, Some("5-0".into()))
        );
        assert_eq!(held, [("a".to_owned(), 3), ("b".to_owned(), 1)]);
        let empty = Value::Array(vec![Value::Int(0), Value::Nil, Value::Nil, Value::Nil]);
        assert_eq!(pending_summary(&empty, &mut held).unwrap(), (0, None));
    }
}
