//! Dead letters, looked at and acted on: [`Broker::requeue_dead`] puts a dead
//! entry back in its stream, [`Broker::discard_dead`] drops it, and
//! [`read_dead_letters`] lists them with their task for a dashboard.
//!
//! A dead letter keeps the entry's own field (`e`, its bytes) beside why it
//! died (`scripts.rs`, DEAD_LETTER), so a requeue re-adds exactly the bytes
//! that were enqueued: same tasks, same ids, same inputs.
//!
//! Dead-lettering recorded `lost` for the entry's tasks (the `dead` field of
//! the entry's record), and outcomes are first-writer-wins, so a requeue that
//! left it would make the re-run's result unrecordable. The requeue therefore
//! removes `dead` (an outcome a cancel wrote for one task stays), points the
//! record at the new stream id (a cancel finds the entry there), and deletes
//! the dead letter in the same script, so a repeat finds it gone and adds
//! nothing: requeue is idempotent.

use std::sync::LazyLock;

use redis::{Script, Value};
use serde::{Deserialize, Serialize};

use super::broker::{Broker, secs};
use super::config::BrokerConfig;
use super::conn::Link;
use super::entry::{Entry, FIELD};
use super::error::{Error, ErrorKind};
use super::failures::clip;
use super::keys::{BLOCK, Keys, MAX_SHARDS};
use super::reply;

/// What a [`requeue_dead`](Broker::requeue_dead) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requeued {
    /// The entry is back in its stream under the new id `entry`; `cleared`
    /// of its tasks' `lost` outcomes were removed so the re-run's results
    /// are recorded (and a client still waiting gets them).
    Requeued {
        /// The entry's new stream id.
        entry: String,
        /// How many `lost` outcomes were removed.
        cleared: u64,
    },
    /// No such dead letter: requeued or discarded already (a repeat), or
    /// never there. Nothing changed.
    Gone,
}

/// A dead letter as a dashboard shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterInfo {
    /// Its shard.
    pub shard: u16,
    /// Its id in the shard's dead-letter stream.
    pub id: String,
    /// When it was dead-lettered (the broker's clock, ms since the epoch).
    pub at_ms: u64,
    /// The id the entry had in its stream.
    pub entry: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// How many times it had been delivered.
    pub deliveries: u64,
    /// Its task's name; `None` for bytes that are not a quadriga entry
    /// (which cannot be requeued, only discarded).
    pub task: Option<String>,
    /// How many tasks the entry carries (a map chunk carries several).
    pub tasks: u64,
    /// Its first task's id.
    pub first_task_id: Option<String>,
}

/// Requeue a dead letter, once.
///
/// `KEYS[1]` the dead-letter stream, `KEYS[2]` the shard's stream, `KEYS[3]`
/// the entry's record (`keys.rs`). `ARGV[1]` the dead letter's id, `ARGV[2]`
/// the record's TTL (s), `ARGV[3]` the entry's first item's index in its
/// block, `ARGV[4]` its item count. Returns `{status, new id, cleared}`:
/// `gone` (no such dead letter: nothing changed), `foreign` (it holds no
/// entry field: nothing changed) or `requeued` (its bytes re-added, the
/// record pointed at the new id with its `dead` outcome removed, the dead
/// letter deleted); `cleared` is the item count when a `dead` outcome was
/// removed, else 0.
///
/// Dead-lettering sets the record's `dead` only while it has no `out`, and
/// a fenced completion can no longer write `out` for the dead entry, so
/// removing `dead` removes exactly the `lost` the dead-lettering recorded;
/// an outcome a cancel wrote for one item (`x:<index>`) stays and wins.
static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local r = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #r == 0 then return {'gone', '', 0} end
local f = r[1][2]
local bytes = nil
for i = 1, #f - 1, 2 do
  if f[i] == 'e' then bytes = f[i + 1] end
end
if not bytes then return {'foreign', '', 0} end
local id = redis.call('XADD', KEYS[2], '*', 'e', bytes)
local cleared = 0
if redis.call('HDEL', KEYS[3], 'dead') == 1 then cleared = tonumber(ARGV[4]) end
redis.call('HSET', KEYS[3], 'at', id, 'lo', ARGV[3], 'n', ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[1])
return {'requeued', id, cleared}
",
    )
});

impl Broker {
    /// Puts dead letter `dead_id` of `shard` back in the shard's stream, so a
    /// worker runs it again (with a fresh delivery count), and removes the
    /// `lost` outcomes its dead-lettering recorded. Safe to repeat: a repeat
    /// finds it gone ([`Requeued::Gone`]).
    ///
    /// # Errors
    ///
    /// A dead letter whose bytes are not a quadriga entry of this shard
    /// cannot be requeued ([`ErrorKind::Codec`]: discard it); and the
    /// broker's errors.
    pub fn requeue_dead(&mut self, shard: u16, dead_id: &str) -> Result<Requeued, Error> {
        let keys = self.keys().clone();
        check_shard(&keys, shard)?;
        let dead = keys.dead(shard);
        let max_bytes = self.config().max_entry_bytes;
        let ttl = secs(self.config().task_ttl);
        let link = self.link();
        let io = link.io_timeout();
        let v: Value = link.call("reading a dead letter", io, |con| {
            redis::cmd("XRANGE")
                .arg(&dead)
                .arg(dead_id)
                .arg(dead_id)
                .query(con)
        })?;
        let Some(record) = reply::array(&v, "a dead letter")?.first() else {
            return Ok(Requeued::Gone);
        };
        let [_, fields] = reply::array(record, "a dead letter")? else {
            return Err(Error::protocol("a dead letter", "not id, fields"));
        };
        let entry = entry_of(fields, shard, max_bytes)?;
        let Some(first) = entry.ids().next() else {
            return Err(foreign(dead_id, "its entry has no tasks"));
        };
        let mut call = REQUEUE.key(&dead);
        call.key(keys.stream(shard)).key(keys.record(first));
        call.arg(dead_id)
            .arg(ttl)
            .arg(first.seq % BLOCK)
            .arg(entry.items.len());
        let v: Value = link.call("requeueing a dead letter", io, |con| call.invoke(con))?;
        let [status, id, cleared] = reply::array(&v, "requeue")? else {
            return Err(Error::protocol("requeue", "not status, id, cleared"));
        };
        match reply::bytes(status, "requeue's status")? {
            b"requeued" => Ok(Requeued::Requeued {
                entry: reply::text(id, "requeue's new id")?,
                cleared: reply::int(cleared, "cleared")?.max(0) as u64,
            }),
            b"gone" => Ok(Requeued::Gone),
            b"foreign" => Err(foreign(dead_id, "it holds no entry")),
            other => Err(Error::protocol(
                "requeue",
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }

    /// Deletes dead letter `dead_id` of `shard` for good (its tasks stay
    /// `lost`). Returns whether it was there; safe to repeat.
    pub fn discard_dead(&mut self, shard: u16, dead_id: &str) -> Result<bool, Error> {
        let keys = self.keys().clone();
        check_shard(&keys, shard)?;
        let dead = keys.dead(shard);
        let link = self.link();
        let io = link.io_timeout();
        let n: u64 = link.call("discarding a dead letter", io, |con| {
            redis::cmd("XDEL").arg(&dead).arg(dead_id).query(con)
        })?;
        Ok(n > 0)
    }
}

/// Up to `max` dead letters of the queue that `config` names, oldest first,
/// from `shards` in order, with their tasks; read-only, without connecting a
/// [`Broker`] (within the config's timeouts).
pub fn read_dead_letters(
    config: &BrokerConfig,
    shards: impl IntoIterator<Item = u16>,
    max: usize,
) -> Result<Vec<DeadLetterInfo>, Error> {
    let keys = Keys::new(&config.prefix, &config.queue, MAX_SHARDS)?;
    let mut link = Link::new(&config.url, config.connect_timeout, config.io_timeout)?;
    read(&mut link, &keys, shards, max, config.max_entry_bytes)
}

/// The dead letters of `keys`' queue on `link` (see [`read_dead_letters`]).
pub(super) fn read(
    link: &mut Link,
    keys: &Keys,
    shards: impl IntoIterator<Item = u16>,
    max: usize,
    max_bytes: usize,
) -> Result<Vec<DeadLetterInfo>, Error> {
    let io = link.io_timeout();
    let mut out = Vec::new();
    for shard in shards {
        if out.len() >= max || shard >= MAX_SHARDS {
            break;
        }
        let dead = keys.dead(shard);
        let room = max - out.len();
        let v: Value = link.call("reading dead letters", io, |con| {
            redis::cmd("XRANGE")
                .arg(&dead)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(room)
                .query(con)
        })?;
        for record in reply::array(&v, "dead letters")?.iter().take(room) {
            out.push(info(record, shard, max_bytes)?);
        }
    }
    Ok(out)
}

/// A dead-letter record as [`DeadLetterInfo`].
pub(super) fn info(record: &Value, shard: u16, max_bytes: usize) -> Result<DeadLetterInfo, Error> {
    let [id, fields] = reply::array(record, "a dead letter")? else {
        return Err(Error::protocol(
            "dead letters",
            "a record is not id, fields",
        ));
    };
    let id = reply::text(id, "a dead letter's id")?;
    let mut out = DeadLetterInfo {
        shard,
        at_ms: id
            .split_once('-')
            .and_then(|(ms, _)| ms.parse().ok())
            .unwrap_or(0),
        id,
        entry: String::new(),
        reason: String::new(),
        deliveries: 0,
        task: None,
        tasks: 0,
        first_task_id: None,
    };
    let lossy = |v: &Value| -> Result<String, Error> {
        let b = reply::bytes(v, "a dead letter's field")?;
        // Cut before and after: a lossy read can triple invalid bytes.
        Ok(clip(
            &String::from_utf8_lossy(&b[..b.len().min(4096)]),
            4096,
        ))
    };
    for (name, value) in reply::pairs(fields, "a dead letter's fields")? {
        match reply::bytes(name, "a field name")? {
            b"dead.entry" => out.entry = lossy(value)?,
            b"dead.reason" => out.reason = lossy(value)?,
            b"dead.deliveries" => {
                out.deliveries = reply::int(value, "deliveries")?.max(0) as u64;
            }
            _ => {}
        }
    }
    if let Ok(entry) = entry_of(fields, shard, max_bytes) {
        out.tasks = entry.items.len() as u64;
        out.first_task_id = entry.ids().next().map(|id| id.to_string());
        out.task = Some(entry.task);
    }
    Ok(out)
}

/// The entry a dead letter keeps (its `e` field), decoded within
/// `max_bytes`, and checked to belong to `shard`.
fn entry_of(fields: &Value, shard: u16, max_bytes: usize) -> Result<Entry, Error> {
    let pairs = reply::pairs(fields, "a dead letter's fields")?;
    let bytes = pairs
        .iter()
        .find(|(name, _)| reply::bytes(name, "a field name").is_ok_and(|n| n == FIELD.as_bytes()))
        .map(|(_, v)| reply::bytes(v, "the entry field"))
        .transpose()?
        .ok_or_else(|| foreign("", "it holds no entry"))?;
    let entry = Entry::decode(bytes, max_bytes).map_err(|e| foreign("", e.message()))?;
    if entry.shard != shard {
        return Err(foreign(
            "",
            &format!("its entry names shard {}, not {shard}", entry.shard),
        ));
    }
    Ok(entry)
}

fn foreign(id: &str, why: &str) -> Error {
    let which = if id.is_empty() {
        String::new()
    } else {
        format!(" {id}")
    };
    Error::new(
        ErrorKind::Codec,
        format!("dead letter{which} cannot be requeued: {why} (discard it instead)"),
    )
}

fn check_shard(keys: &Keys, shard: u16) -> Result<(), Error> {
    if shard >= keys.shards() {
        return Err(Error::new(
            ErrorKind::Config,
            format!("shard {shard} of a queue with {} shards", keys.shards()),
        ));
    }
    Ok(())
}
