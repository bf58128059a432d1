//! [`Broker`]: one client's handle on a sharded queue, and every broker
//! operation but the blocking read (see [`Reader`](super::Reader)).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;

use super::config::BrokerConfig;
use super::conn::Link;
use super::delivery::Delivery;
use super::durability::Durability;
use super::entry::{Entry, Item};
use super::error::{Error, ErrorKind};
use super::keys::{BLOCK, GROUP, Keys, TaskId};
use super::outcome::Outcome;
use super::reader::{Reader, Slice};
use super::reply;
use super::scripts;
use crate::{TaskError, TaskErrorKind};

/// What a fenced completion did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The caller held the entry: outcomes recorded (`written` new ones,
    /// `kept` that another writer had recorded first), entry acknowledged,
    /// client told.
    Done {
        /// Outcomes this call recorded.
        written: u64,
        /// Outcomes already recorded, left as they were.
        kept: u64,
    },
    /// The entry was settled already with exactly these outcomes (a repeat
    /// of this call): nothing changed.
    Again,
    /// The caller no longer holds the entry (its lease lapsed and another
    /// consumer took it, or it was settled otherwise): its late ack and
    /// results were refused; nothing changed. The run was a duplicate.
    Refused,
}

/// What a [`cancel`](Broker::cancel) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// The task was waiting in the stream: removed, no worker will run it.
    Removed,
    /// A worker holds the task: its entry is gone from the pending list, so
    /// the worker stops it at its next heartbeat (with process isolation,
    /// killing its child) and its late completion is refused.
    Stopping,
    /// The task shares its entry with others (a map chunk), which run on;
    /// its outcome is `cancelled` whatever its run gives.
    Marked,
    /// The task already had an outcome: nothing changed.
    Settled,
}

/// What a dead-lettering did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLettered {
    /// The entry moved to the dead-letter stream; its tasks' outcomes are
    /// `lost` unless they had one already.
    Dead,
    /// The entry is no longer pending (a repeat, or settled by another).
    Gone,
    /// Another consumer holds the entry: nothing changed.
    Refused,
}

/// What a sweep found.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Lapsed entries now held by this consumer, within the delivery limit:
    /// run them (or dead-letter the foreign ones).
    pub reclaimed: Vec<Delivery>,
    /// Entries past the delivery limit, now dead letters: `(shard, id)`.
    pub dead: Vec<(u16, String)>,
}

/// One record of a dead-letter stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    /// The id the entry had in its stream.
    pub entry: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// How many times it had been delivered.
    pub deliveries: u64,
}

/// The largest list of outcomes a completion carries inline in its
/// notification (larger ones the client reads from the entry's record).
const INLINE_MAX: usize = 4096;

/// An entry encoded for [`Broker::enqueue_encoded`].
#[derive(Clone, Debug)]
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    /// Its first task.
    pub(crate) first: TaskId,
    /// How many items it has.
    pub(crate) items: usize,
}

/// What a look-up by task id found.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Found {
    /// Never enqueued, or its records expired.
    Unknown,
    /// Enqueued, no outcome yet.
    Pending,
    /// Its outcome.
    Outcome(Outcome),
}

/// The part of a broker handle its clones share.
#[derive(Debug)]
struct Shared {
    config: BrokerConfig,
    keys: Keys,
    consumer: String,
    client: u64,
    next_seq: AtomicU64,
    next_shard: AtomicU64,
    durability: Durability,
}

/// A connected handle on one sharded queue: enqueue, heartbeat, sweep,
/// fenced completion, dead letters, fetch by id, worker records.
///
/// Each handle owns one connection (opened again after any failure) and runs
/// one command at a time; [`try_clone`](Self::try_clone) makes another for
/// another thread. Every write is safe to repeat: when a call fails with
/// [`Error::is_outcome_unknown`], call it again.
#[derive(Debug)]
pub struct Broker {
    link: Link,
    shared: Arc<Shared>,
    /// Where the next sweep of each shard starts.
    cursors: Vec<String>,
    /// How long a read of replies waits on one shard, on a Redis Cluster.
    pub(crate) reply_slice: Slice,
}

impl Broker {
    /// Connects (within the connect timeout), reads the server's durability
    /// settings (refusing a non-durable server when
    /// [`require_durable`](BrokerConfig::require_durable) is set) and makes
    /// sure every shard's stream and consumer group exist.
    pub fn connect(config: BrokerConfig) -> Result<Broker, Error> {
        let keys = Keys::new(&config.prefix, &config.queue, config.shards)?;
        let mut link = Link::new(&config.url, config.connect_timeout, config.io_timeout)?;
        let io = link.io_timeout();
        link.call("connecting", io, |con| {
            redis::cmd("PING").query::<Value>(con).map(drop)
        })?;
        let durability = read_durability(&mut link)?;
        if config.require_durable && !durability.is_durable() {
            return Err(Error::new(
                ErrorKind::NotDurable,
                format!(
                    "the broker at {} does not persist writes ({durability}); \
                     set `appendonly yes` (and `appendfsync always`), or do not require durability",
                    link.addr()
                ),
            ));
        }
        let consumer = match &config.consumer {
            Some(name) => name.clone(),
            None => format!(
                "{}-{}-{:08x}",
                host_name(),
                std::process::id(),
                random() as u32
            ),
        };
        if consumer.is_empty() || consumer.len() > 200 {
            return Err(Error::new(
                ErrorKind::Config,
                "a consumer name has 1 to 200 bytes",
            ));
        }
        let shards = usize::from(keys.shards());
        let mut broker = Broker {
            link,
            shared: Arc::new(Shared {
                config,
                keys,
                consumer,
                client: random(),
                next_seq: AtomicU64::new(0),
                next_shard: AtomicU64::new(0),
                durability,
            }),
            cursors: vec!["0-0".into(); shards],
            reply_slice: Slice::new(),
        };
        broker.ensure_groups()?;
        Ok(broker)
    }

    /// Another handle with its own connection: same queue, same consumer
    /// name, same client id and sequence.
    pub fn try_clone(&self) -> Broker {
        Broker {
            link: self.link.fresh(),
            shared: Arc::clone(&self.shared),
            cursors: self.cursors.clone(),
            reply_slice: Slice::new(),
        }
    }

    /// A handle for blocking reads, on its own connection.
    pub fn reader(&self) -> Reader {
        Reader::new(
            self.link.fresh(),
            self.shared.keys.clone(),
            self.shared.consumer.clone(),
            self.shared.config.max_entry_bytes,
        )
    }

    /// This handle's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.shared.consumer
    }

    /// This client's id (the first part of its task ids).
    pub fn client_id(&self) -> u64 {
        self.shared.client
    }

    /// The queue's keys.
    pub fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    /// The configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.shared.config
    }

    /// The server's persistence settings, as read on connect; its
    /// [`warning`](Durability::warning) is what to tell the user.
    pub fn durability(&self) -> &Durability {
        &self.shared.durability
    }

    /// Creates each shard's stream and group if missing (`MKSTREAM`, from the
    /// start of the stream, so entries added before the group are read too).
    pub fn ensure_groups(&mut self) -> Result<(), Error> {
        for shard in 0..self.shared.keys.shards() {
            create_group(&mut self.link, &self.shared.keys.stream(shard))?;
        }
        Ok(())
    }

    /// A new entry of `task` with one item per input, on the next shard (round
    /// robin), with fresh task ids: a block of [`BLOCK`](super::BLOCK)
    /// sequence numbers of its own (more than that many inputs make an entry
    /// that [`enqueue`](Self::enqueue) refuses). Nothing is sent: enqueue it
    /// (as often as needed; it is added once).
    pub fn entry(&self, task: &str, inputs: Vec<Vec<u8>>, deadline_ms: Option<u64>) -> Entry {
        let s = &self.shared;
        let shard =
            (s.next_shard.fetch_add(1, Ordering::Relaxed) % u64::from(s.keys.shards())) as u16;
        let blocks = (inputs.len() as u64).div_ceil(BLOCK).max(1);
        let first = s.next_seq.fetch_add(blocks * BLOCK, Ordering::Relaxed);
        Entry {
            task: task.to_owned(),
            client: s.client,
            shard,
            deadline_ms,
            attempt: 0,
            items: inputs
                .into_iter()
                .zip(first..)
                .map(|(input, seq)| Item { seq, input })
                .collect(),
        }
    }

    /// Adds `entry` to its shard's stream and makes its record (so its tasks
    /// are known); returns its stream id. An entry over the size limit is
    /// refused before anything is sent. Repeating it adds nothing and returns
    /// the same id.
    pub fn enqueue(&mut self, entry: &Entry) -> Result<String, Error> {
        let encoded = self.encode(entry)?;
        let mut ids = self.enqueue_encoded(entry.shard, &[encoded])?;
        ids.pop()
            .ok_or_else(|| Error::protocol("enqueue", "no stream id"))
    }

    /// `entry`'s bytes for [`enqueue_encoded`](Self::enqueue_encoded),
    /// checked against the queue's shards and the size limit.
    pub(crate) fn encode(&self, entry: &Entry) -> Result<Encoded, Error> {
        let s = &self.shared;
        if entry.shard >= s.keys.shards() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "shard {} of a queue with {} shards",
                    entry.shard,
                    s.keys.shards()
                ),
            ));
        }
        let bytes = entry.encode(s.config.max_entry_bytes)?;
        let first = entry
            .ids()
            .next()
            .ok_or_else(|| Error::new(ErrorKind::Config, "an entry without tasks"))?;
        Ok(Encoded {
            bytes,
            first,
            items: entry.items.len(),
        })
    }

    /// Adds encoded entries of `shard` in one script call (one round trip),
    /// each once; returns their stream ids in order. Safe to repeat.
    pub(crate) fn enqueue_encoded(
        &mut self,
        shard: u16,
        entries: &[Encoded],
    ) -> Result<Vec<String>, Error> {
        let s = &self.shared;
        let mut call = scripts::ENQUEUE.key(s.keys.stream(shard));
        for e in entries {
            debug_assert_eq!(e.first.shard, shard);
            call.key(s.keys.record(e.first));
        }
        call.arg(secs(s.config.task_ttl));
        for e in entries {
            call.arg(&e.bytes[..]).arg(e.first.seq % BLOCK).arg(e.items);
        }
        let io = self.link.io_timeout();
        let v: Value = self.link.call("enqueueing", io, |con| call.invoke(con))?;
        let ids = reply::array(&v, "enqueue's stream ids")?;
        if ids.len() != entries.len() {
            return Err(Error::protocol("enqueue", "not one stream id per entry"));
        }
        ids.iter()
            .map(|id| reply::text(id, "enqueue's stream id"))
            .collect()
    }

    /// Extends the leases of entries this consumer holds (`(shard, id)`),
    /// keeping their delivery counts. Returns those it no longer holds: their
    /// tasks were reclaimed or settled elsewhere and should be stopped.
    pub fn heartbeat(&mut self, held: &[(u16, String)]) -> Result<Vec<(u16, String)>, Error> {
        let mut lost = Vec::new();
        for shard in 0..self.shared.keys.shards() {
            let ids: Vec<&str> = held
                .iter()
                .filter(|(s, _)| *s == shard)
                .map(|(_, id)| id.as_str())
                .collect();
            if ids.is_empty() {
                continue;
            }
            let mut call = scripts::HEARTBEAT.key(self.shared.keys.stream(shard));
            call.arg(GROUP).arg(&self.shared.consumer).arg(&ids);
            let io = self.link.io_timeout();
            let v: Value = self.link.call("heartbeat", io, |con| call.invoke(con))?;
            for id in reply::array(&v, "heartbeat")? {
                lost.push((shard, reply::text(id, "heartbeat's lost id")?));
            }
        }
        Ok(lost)
    }

    /// Reclaims up to `max` entries whose holders' leases lapsed, raising
    /// their delivery counts. An entry counts as lapsed once four fifths of a
    /// lease passed without a heartbeat (holders beat every third of a
    /// lease), so that a worker's loss, found by sweeps every tenth of a
    /// lease, costs its task at most one lease. Those past the delivery limit become dead
    /// letters (their tasks' outcomes `lost`); the rest are now this
    /// consumer's to run. Each shard is scanned from where the last sweep
    /// stopped.
    pub fn sweep(&mut self, max: usize) -> Result<Sweep, Error> {
        let mut found = Sweep::default();
        let lapsed_ms = (self.shared.config.lease.as_millis() * 4 / 5).max(1) as u64;
        for shard in 0..self.shared.keys.shards() {
            let room = max.saturating_sub(found.reclaimed.len() + found.dead.len());
            if room == 0 {
                break;
            }
            let mut call = scripts::SWEEP.key(self.shared.keys.stream(shard));
            call.arg(GROUP)
                .arg(&self.shared.consumer)
                .arg(lapsed_ms)
                .arg(&self.cursors[usize::from(shard)])
                .arg(room);
            let io = self.link.io_timeout();
            let v: Value = self.link.call("sweeping", io, |con| call.invoke(con))?;
            let parts = reply::array(&v, "sweep")?;
            let [cursor, claimed] = parts else {
                return Err(Error::protocol("sweep", "not a cursor and a list"));
            };
            self.cursors[usize::from(shard)] = reply::text(cursor, "sweep's cursor")?;
            for e in reply::array(claimed, "sweep's entries")? {
                let [id, count, fields] = reply::array(e, "a swept entry")? else {
                    return Err(Error::protocol(
                        "sweep",
                        "an entry is not id, count, fields",
                    ));
                };
                let id = reply::text(id, "a swept id")?;
                let count = reply::int(count, "a delivery count")?.max(0) as u64;
                let d =
                    Delivery::parse(shard, id, count, fields, self.shared.config.max_entry_bytes);
                if count > self.shared.config.max_deliveries {
                    let reason = format!(
                        "delivered {count} times, and each holder stopped heartbeating for \
                         longer than the lease ({:?}): retries on worker loss exhausted",
                        self.shared.config.lease
                    );
                    self.dead_letter(&d, &reason)?;
                    found.dead.push((d.shard, d.id));
                } else {
                    found.reclaimed.push(d);
                }
            }
        }
        Ok(found)
    }

    /// Entries this consumer held before (say, before a restart of it or of
    /// the broker) and has not settled: up to `max` of them, to run again.
    /// Reading them counts as a delivery.
    pub fn resume(&mut self, max: usize) -> Result<Vec<Delivery>, Error> {
        let mut out = Vec::new();
        for shard in 0..self.shared.keys.shards() {
            let room = max.saturating_sub(out.len());
            if room == 0 {
                break;
            }
            let stream = self.shared.keys.stream(shard);
            let consumer = &self.shared.consumer;
            let io = self.link.io_timeout();
            let v: Value = self.link.call("resuming", io, |con| {
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(room)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg("0")
                    .query(con)
            })?;
            let entries = super::reader::stream_entries(&v)?;
            for (_, list) in entries {
                for e in reply::array(list, "resumed entries")? {
                    let [id, fields] = reply::array(e, "a resumed entry")? else {
                        return Err(Error::protocol("resume", "an entry is not id, fields"));
                    };
                    let id = reply::text(id, "a resumed id")?;
                    let count = self.delivery_count(shard, &id)?;
                    out.push(Delivery::parse(
                        shard,
                        id,
                        count,
                        fields,
                        self.shared.config.max_entry_bytes,
                    ));
                }
            }
        }
        Ok(out)
    }

    /// The delivery count of a pending entry (0 when it is not pending).
    fn delivery_count(&mut self, shard: u16, id: &str) -> Result<u64, Error> {
        let stream = self.shared.keys.stream(shard);
        let io = self.link.io_timeout();
        let v: Value = self.link.call("reading the pending list", io, |con| {
            redis::cmd("XPENDING")
                .arg(&stream)
                .arg(GROUP)
                .arg(id)
                .arg(id)
                .arg(1)
                .query(con)
        })?;
        match reply::array(&v, "XPENDING")? {
            [row] => match reply::array(row, "a pending row")? {
                [_, _, _, count] => Ok(reply::int(count, "a delivery count")?.max(0) as u64),
                _ => Err(Error::protocol(
                    "XPENDING",
                    "a row is not id, consumer, idle, count",
                )),
            },
            _ => Ok(0),
        }
    }

    /// Records the outcomes of a delivered entry (one per item, in order),
    /// acknowledges it and tells its client, if and only if this consumer
    /// still holds it (see [`Completion`]). The first outcome recorded for a
    /// task id wins.
    pub fn complete(
        &mut self,
        delivery: &Delivery,
        outcomes: &[Outcome],
    ) -> Result<Completion, Error> {
        self.complete_timed(delivery, outcomes, Duration::ZERO)
    }

    /// [`complete`](Self::complete), telling the client how long the entry
    /// ran (a `map` sizes its chunks by it).
    pub fn complete_timed(
        &mut self,
        delivery: &Delivery,
        outcomes: &[Outcome],
        ran: Duration,
    ) -> Result<Completion, Error> {
        let entry = delivery.entry.as_ref().map_err(Clone::clone)?;
        if outcomes.len() != entry.items.len() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "{} outcomes for an entry of {} items",
                    outcomes.len(),
                    entry.items.len()
                ),
            ));
        }
        let s = &self.shared;
        let first = entry
            .ids()
            .next()
            .ok_or_else(|| Error::new(ErrorKind::Config, "an entry without tasks"))?;
        let mut call = scripts::COMPLETE.key(s.keys.stream(delivery.shard));
        call.key(s.keys.reply(delivery.shard, entry.client))
            .key(s.keys.dups(delivery.shard, entry.client))
            .key(s.keys.record(first));
        call.arg(GROUP)
            .arg(&s.consumer)
            .arg(&delivery.id)
            .arg(secs(s.config.result_ttl))
            .arg(s.config.reply_maxlen)
            .arg(first.seq)
            .arg(entry.items.len())
            .arg(u64::try_from(ran.as_nanos()).unwrap_or(u64::MAX))
            .arg(Outcome::encode_many(outcomes))
            .arg(INLINE_MAX);
        let io = self.link.io_timeout();
        let v: Value = self.link.call("completing", io, |con| call.invoke(con))?;
        let [status, written, kept] = reply::array(&v, "complete")? else {
            return Err(Error::protocol("complete", "not status, written, kept"));
        };
        match reply::bytes(status, "complete's status")? {
            b"done" => Ok(Completion::Done {
                written: reply::int(written, "written")?.max(0) as u64,
                kept: reply::int(kept, "kept")?.max(0) as u64,
            }),
            b"again" => Ok(Completion::Again),
            b"stale" => Ok(Completion::Refused),
            other => Err(Error::protocol(
                "complete",
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }

    /// Moves a delivered entry this consumer holds to the dead-letter stream
    /// with `reason`; its tasks' outcomes become `lost` with that reason
    /// unless they have one. A foreign entry (no tasks) is moved the same way.
    pub fn dead_letter(
        &mut self,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<DeadLettered, Error> {
        let s = &self.shared;
        let mut call = scripts::DEAD_LETTER.key(s.keys.stream(delivery.shard));
        call.key(s.keys.dead(delivery.shard));
        let (client, task, first, n) = match &delivery.entry {
            Ok(entry) => (
                entry.client,
                entry.task.as_str(),
                entry.ids().next(),
                entry.items.len(),
            ),
            Err(_) => (0, "", None, 0),
        };
        call.key(s.keys.reply(delivery.shard, client));
        if let Some(first) = first {
            call.key(s.keys.record(first));
        }
        let mut lost = TaskError::new(TaskErrorKind::Lost, reason);
        if !task.is_empty() {
            lost = lost.with_task(task, None);
        }
        call.arg(GROUP)
            .arg(&s.consumer)
            .arg(&delivery.id)
            .arg(secs(s.config.result_ttl))
            .arg(s.config.reply_maxlen)
            .arg(reason)
            .arg(delivery.deliveries)
            .arg(first.map_or(0, |f| f.seq))
            .arg(n)
            .arg(Outcome::Error(lost).encode());
        let io = self.link.io_timeout();
        let v: Value = self
            .link
            .call("dead-lettering", io, |con| call.invoke(con))?;
        match reply::bytes(&v, "dead letter's status")? {
            b"dead" => Ok(DeadLettered::Dead),
            b"gone" => Ok(DeadLettered::Gone),
            b"stale" => Ok(DeadLettered::Refused),
            other => Err(Error::protocol(
                "dead letter",
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }

    /// The outcome of task `id`: `Some` once recorded, `None` while it is
    /// enqueued or running. An id never enqueued here (or whose records
    /// expired) is an [`ErrorKind::UnknownTask`] error, never "pending".
    pub fn fetch(&mut self, id: TaskId) -> Result<Option<Outcome>, Error> {
        if id.shard >= self.shared.keys.shards() {
            return Err(unknown(id, &self.shared.keys));
        }
        match self.look_up(&[id])?.pop() {
            Some(Found::Outcome(outcome)) => Ok(Some(outcome)),
            Some(Found::Pending) => Ok(None),
            Some(Found::Unknown) | None => Err(unknown(id, &self.shared.keys)),
        }
    }

    /// How many of this client's tasks were run again because a worker was
    /// lost (killed, paused or cut off past its lease): for each completed
    /// entry delivered `d` times, its items × (`d` − 1). Execution is at
    /// least once; this is how often "more than once" happened. Counted by
    /// the broker at completion, kept as long as outcomes are.
    pub fn duplicate_runs(&mut self) -> Result<u64, Error> {
        let keys = self.shared.keys.clone();
        let client = self.shared.client;
        let io = self.link.io_timeout();
        let mut total = 0u64;
        for shard in 0..keys.shards() {
            let key = keys.dups(shard, client);
            let mut read = || {
                self.link
                    .call("reading the duplicate-run count", io, |con| {
                        redis::cmd("GET").arg(&key).query::<Option<u64>>(con)
                    })
            };
            // A read is safe to repeat: once more on a fresh connection when
            // the one kept from before went stale (the broker restarted while
            // this handle was idle).
            let n = match read() {
                Err(e) if e.kind() == ErrorKind::Connection => read()?,
                other => other?,
            };
            total += n.unwrap_or(0);
        }
        Ok(total)
    }

    /// Cancels task `id`: its outcome becomes `cancelled` (unless it has one)
    /// and, when it travels alone in its entry, the entry leaves the queue,
    /// so a waiting task never runs and a running one is stopped by its
    /// worker (see [`Cancelled`]). Safe to repeat.
    pub fn cancel(&mut self, id: TaskId) -> Result<Cancelled, Error> {
        let s = &self.shared;
        if id.shard >= s.keys.shards() {
            return Err(unknown(id, &s.keys));
        }
        let outcome = Outcome::Error(TaskError::cancelled("cancelled by its client"));
        let mut call = scripts::CANCEL.key(s.keys.stream(id.shard));
        call.key(s.keys.record(id))
            .key(s.keys.reply(id.shard, id.client))
            .key(s.keys.delayed(id.shard))
            .key(s.keys.delayed_entry(id));
        call.arg(GROUP)
            .arg(secs(s.config.result_ttl))
            .arg(outcome.encode())
            .arg(s.config.reply_maxlen)
            .arg(id.seq)
            .arg(super::keys::token(id))
            .arg(id.seq % BLOCK);
        let io = self.link.io_timeout();
        let v: Value = self.link.call("cancelling", io, |con| call.invoke(con))?;
        match reply::bytes(&v, "cancel's status")? {
            b"removed" => Ok(Cancelled::Removed),
            b"stopping" => Ok(Cancelled::Stopping),
            b"marked" => Ok(Cancelled::Marked),
            b"settled" => Ok(Cancelled::Settled),
            b"unknown" => Err(unknown(id, &s.keys)),
            other => Err(Error::protocol(
                "cancel",
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }

    /// Up to `max` dead letters of `shard`, oldest first.
    pub fn dead_letters(&mut self, shard: u16, max: usize) -> Result<Vec<DeadLetter>, Error> {
        let dead = self.shared.keys.dead(shard);
        let io = self.link.io_timeout();
        let v: Value = self.link.call("reading dead letters", io, |con| {
            redis::cmd("XRANGE")
                .arg(&dead)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(max)
                .query(con)
        })?;
        let mut out = Vec::new();
        for e in reply::array(&v, "dead letters")? {
            let [id, fields] = reply::array(e, "a dead letter")? else {
                return Err(Error::protocol(
                    "dead letters",
                    "an entry is not id, fields",
                ));
            };
            let mut letter = DeadLetter {
                id: reply::text(id, "a dead letter's id")?,
                entry: String::new(),
                reason: String::new(),
                deliveries: 0,
            };
            for (name, value) in reply::pairs(fields, "a dead letter's fields")? {
                match reply::bytes(name, "field")? {
                    b"dead.entry" => letter.entry = reply::text(value, "entry")?,
                    b"dead.reason" => letter.reason = reply::text(value, "reason")?,
                    b"dead.deliveries" => {
                        letter.deliveries = reply::int(value, "deliveries")?.max(0) as u64;
                    }
                    _ => {}
                }
            }
            out.push(letter);
        }
        Ok(out)
    }

    /// Runs `f` on this handle's connection (worker records live in
    /// `workers.rs`).
    pub(crate) fn link(&mut self) -> &mut Link {
        &mut self.link
    }
}

/// Creates `stream` and its consumer group unless the group exists.
pub(crate) fn create_group(link: &mut Link, stream: &str) -> Result<(), Error> {
    let io = link.io_timeout();
    let made = link.call("creating a consumer group", io, |con| {
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query::<Value>(con)
    });
    match made {
        Err(e) if !e.message().contains("BUSYGROUP") => Err(e),
        _ => Ok(()),
    }
}

fn unknown(id: TaskId, keys: &Keys) -> Error {
    Error::new(
        ErrorKind::UnknownTask,
        format!(
            "no task {id} was enqueued on queue `{}`, or its records expired",
            keys.queue()
        ),
    )
}

/// Whole seconds, at least one (Redis refuses a TTL of 0).
pub(crate) fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

fn read_durability(link: &mut Link) -> Result<Durability, Error> {
    // Every master's settings (one server: its own): a promise holds only if
    // every node that holds shards keeps it.
    let mut get = |name: &str| -> Result<Vec<Option<String>>, Error> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg(name);
        match link.call_on_masters("reading the persistence settings", &cmd) {
            Ok(replies) => replies
                .iter()
                .map(|v| {
                    let pairs = reply::pairs(v, "CONFIG GET")?;
                    Ok(match pairs.first() {
                        Some((_, value)) => Some(reply::text(value, "a setting")?),
                        None => None,
                    })
                })
                .collect(),
            // CONFIG may be renamed away or refused to this user (managed
            // services): the settings are then unknown, not an error.
            Err(e) if e.kind() == ErrorKind::Protocol || e.kind() == ErrorKind::Auth => {
                Ok(vec![None])
            }
            Err(e) => Err(e),
        }
    };
    let appendonly = weakest_appendonly(&get("appendonly")?);
    let appendfsync = weakest_appendfsync(&get("appendfsync")?);
    Ok(Durability {
        appendonly,
        appendfsync,
    })
}

/// `appendonly` over several servers: off if any is off, unknown if any is
/// unknown, else on.
fn weakest_appendonly(values: &[Option<String>]) -> Option<bool> {
    if values
        .iter()
        .any(|v| v.as_deref().is_some_and(|v| v != "yes"))
    {
        Some(false)
    } else if values.is_empty() || values.iter().any(Option::is_none) {
        None
    } else {
        Some(true)
    }
}

/// `appendfsync` over several servers: the weakest (`no` < `everysec` <
/// `always`); unknown if any is unknown.
fn weakest_appendfsync(values: &[Option<String>]) -> Option<String> {
    let rank = |v: &str| match v {
        "always" => 2,
        "everysec" => 1,
        _ => 0,
    };
    let mut weakest: Option<&str> = None;
    for v in values {
        let v = v.as_deref()?;
        if weakest.is_none_or(|w| rank(v) < rank(w)) {
            weakest = Some(v);
        }
    }
    weakest.map(str::to_owned)
}

/// A random 64-bit number (std's hasher keys are random per process; the
/// time and a counter make each call differ).
pub(crate) fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.finish()
}

/// This host's name, for consumer names and worker records.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 64 && !s.contains(char::is_whitespace))
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some((*s).to_owned())).collect()
    }

    #[test]
    fn the_weakest_node_decides_the_durability_of_a_cluster() {
        assert_eq!(
            weakest_appendonly(&some(&["yes", "yes", "yes"])),
            Some(true)
        );
        assert_eq!(
            weakest_appendonly(&some(&["yes", "no", "yes"])),
            Some(false)
        );
        let mut unknown = some(&["yes", "yes"]);
        unknown.push(None);
        assert_eq!(weakest_appendonly(&unknown), None);
        assert_eq!(weakest_appendonly(&[]), None);
        assert_eq!(
            weakest_appendfsync(&some(&["always", "everysec", "always"])).as_deref(),
            Some("everysec")
        );
        assert_eq!(
            weakest_appendfsync(&some(&["always", "no"])).as_deref(),
            Some("no")
        );
        assert_eq!(weakest_appendfsync(&unknown), None);
    }
}
