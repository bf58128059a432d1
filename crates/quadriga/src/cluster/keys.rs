//! The key layout: every Redis key the broker touches is named here, and only
//! here.
//!
//! A queue is sharded over `shards` streams. Shard `s` of queue `q` under
//! prefix `p` owns every key that starts with its tag `p:{q.s}`; the braces
//! are a Redis Cluster hash tag, so each shard lives in one slot (its scripts
//! may touch all of its keys) and the shards spread over the cluster:
//!
//! | key | what |
//! |---|---|
//! | `p:{q.s}:stream` | the shard's entries; consumer group [`GROUP`] |
//! | `p:{q.s}:dead` | its dead letters (reason, deliveries, the original fields) |
//! | `p:{q.s}:rec:<client>-<block>` | an entry's record, a hash (below), with a TTL |
//! | `p:{q.s}:reply:<client>` | the client's notifications: which of its tasks finished (small outcomes inline) |
//! | `p:{q.s}:delayed` | sorted set of delayed entries (token) by due time (server clock, ms) |
//! | `p:{q.s}:delayed:<client>-<seq>` | a delayed entry's bytes, under its first task's token |
//! | `p:{q.s}:dups:<client>` | how many of the client's tasks ran again after a lost worker |
//! | `p:{q}:workers` | sorted set of worker names by last heartbeat (server time, ms) |
//! | `p:{q}:worker:<name>` | one worker's record (a hash, with a TTL) |
//! | `p:{q}:failures` | recent task failures with their errors (a stream capped near 200) |
//!
//! A task's shard is part of its [`TaskId`], so anyone holding the id finds
//! its keys without asking anything else. A client numbers its entries'
//! tasks in blocks of [`BLOCK`] sequence numbers, one block per entry (an
//! entry has at most that many items), so the block of a task's `seq`
//! names its entry's record: one key per entry, not per task, whatever the
//! entry's size. The record's fields:
//!
//! | field | what |
//! |---|---|
//! | `at` | where the entry is: its stream id, or `d:<token>` while delayed (written at enqueue: the tasks exist) |
//! | `lo`, `n` | its first item's index in the block, and how many items it has |
//! | `out` | the outcomes, one per item in order ([`Outcome::encode_many`](super::Outcome::encode_many)); first writer wins |
//! | `dead` | the one `lost` outcome of every item, when the entry was dead-lettered |
//! | `x:<index>` | an outcome recorded for one item before the rest (a cancel); it wins over `out` |
//! | `nx` | how many `x:` fields there are |

use std::fmt;
use std::str::FromStr;

use super::error::{Error, ErrorKind};

/// The consumer group every shard's stream is read through.
pub const GROUP: &str = "quadriga";

/// How many sequence numbers a client gives each entry: an entry's tasks
/// share `seq / BLOCK`, which names its record.
pub const BLOCK: u64 = 1 << 16;

/// The most shards a queue may have.
pub const MAX_SHARDS: u16 = 1024;

/// A task's cluster-wide id: the shard its entry went to, the client that
/// submitted it (a random 64-bit id per connected client) and that client's
/// sequence number. Written `<client hex>-<shard>-<seq>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The shard whose keys hold this task.
    pub shard: u16,
    /// The submitting client.
    pub client: u64,
    /// The client's sequence number for this task.
    pub seq: u64,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}-{}", self.client, self.shard, self.seq)
    }
}

impl FromStr for TaskId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::new(ErrorKind::UnknownTask, format!("`{s}` is not a task id"));
        let mut parts = s.splitn(3, '-');
        let client = parts.next().ok_or_else(bad)?;
        let shard = parts.next().ok_or_else(bad)?;
        let seq = parts.next().ok_or_else(bad)?;
        Ok(TaskId {
            client: u64::from_str_radix(client, 16).map_err(|_| bad())?,
            shard: shard.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// A delayed entry's name in its shard's sorted set: its first task's
/// `<client hex>-<seq>`.
pub(crate) fn token(id: TaskId) -> String {
    format!("{:016x}-{}", id.client, id.seq)
}

/// The names of one queue's keys (see the module docs for the layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
    queue: String,
    shards: u16,
}

impl Keys {
    /// The keys of `queue` under `prefix`, sharded over `shards` streams.
    /// Names must be non-empty and free of braces and whitespace (a brace would
    /// move the hash tag).
    pub fn new(prefix: &str, queue: &str, shards: u16) -> Result<Self, Error> {
        for (what, name) in [("prefix", prefix), ("queue name", queue)] {
            if name.is_empty()
                || name.len() > 200
                || name
                    .chars()
                    .any(|c| c == '{' || c == '}' || c.is_whitespace())
            {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "the {what} `{name}` must be 1 to 200 characters without braces or whitespace"
                    ),
                ));
            }
        }
        if shards == 0 || shards > MAX_SHARDS {
            return Err(Error::new(
                ErrorKind::Config,
                format!("a queue has 1 to {MAX_SHARDS} shards (got {shards})"),
            ));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            queue: queue.to_owned(),
            shards,
        })
    }

    /// How many shards (streams) the queue has.
    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    fn tag(&self, shard: u16) -> String {
        format!("{}:{{{}.{}}}", self.prefix, self.queue, shard)
    }

    /// The stream of `shard`.
    pub fn stream(&self, shard: u16) -> String {
        format!("{}:stream", self.tag(shard))
    }

    /// The dead-letter stream of `shard`.
    pub fn dead(&self, shard: u16) -> String {
        format!("{}:dead", self.tag(shard))
    }

    /// The record of the entry that carries task `id`: where it is, and its
    /// tasks' outcomes (see the module docs).
    pub fn record(&self, id: TaskId) -> String {
        format!(
            "{}:rec:{:016x}-{}",
            self.tag(id.shard),
            id.client,
            id.seq / BLOCK
        )
    }

    /// Where `client` is told which of its tasks on `shard` finished.
    pub fn reply(&self, shard: u16, client: u64) -> String {
        format!("{}:reply:{client:016x}", self.tag(shard))
    }

    /// The sorted set of `shard`'s delayed entries, by due time.
    pub fn delayed(&self, shard: u16) -> String {
        format!("{}:delayed", self.tag(shard))
    }

    /// Where a delayed entry whose first task is `id` keeps its bytes until
    /// it is due.
    pub fn delayed_entry(&self, id: TaskId) -> String {
        format!("{}:delayed:{}", self.tag(id.shard), token(id))
    }

    /// How many of `client`'s tasks on `shard` were delivered again after
    /// their worker was lost (duplicate runs), counted at completion.
    pub fn dups(&self, shard: u16, client: u64) -> String {
        format!("{}:dups:{client:016x}", self.tag(shard))
    }

    /// The sorted set of the queue's workers by last heartbeat.
    pub fn workers(&self) -> String {
        format!("{}:{{{}}}:workers", self.prefix, self.queue)
    }

    /// One worker's record.
    pub fn worker(&self, name: &str) -> String {
        format!("{}:{{{}}}:worker:{name}", self.prefix, self.queue)
    }

    /// The queue's recent failures (see `failures.rs`).
    pub fn failures(&self) -> String {
        format!("{}:{{{}}}:failures", self.prefix, self.queue)
    }

    /// Which shard the `stream` key belongs to, if it is one of this queue's.
    pub(crate) fn shard_of_stream(&self, stream: &[u8]) -> Option<u16> {
        (0..self.shards).find(|&s| self.stream(s).as_bytes() == stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_keeps_its_keys_in_one_hash_slot() {
        let keys = Keys::new("qd", "squares", 4).unwrap();
        let id = TaskId {
            shard: 3,
            client: 0xab,
            seq: 9,
        };
        let tag = "{squares.3}";
        for key in [
            keys.stream(3),
            keys.dead(3),
            keys.record(id),
            keys.reply(3, 0xab),
            keys.dups(3, 0xab),
            keys.delayed(3),
            keys.delayed_entry(id),
        ] {
            // Redis hashes the text between the first `{` and the next `}`.
            let open = key.find('{').unwrap();
            let close = open + key[open..].find('}').unwrap();
            assert_eq!(&key[open..=close], tag, "{key}");
        }
        assert_eq!(keys.stream(0), "qd:{squares.0}:stream");
        // The tasks of one entry share a record; the next block is another.
        let block = |seq| keys.record(TaskId { seq, ..id });
        assert_eq!(block(0), block(BLOCK - 1));
        assert_ne!(block(BLOCK - 1), block(BLOCK));
        assert_eq!(keys.shard_of_stream(b"qd:{squares.2}:stream"), Some(2));
        assert_eq!(keys.shard_of_stream(b"qd:{other.2}:stream"), None);
    }

    #[test]
    fn task_ids_round_trip_through_text() {
        let id = TaskId {
            shard: 7,
            client: u64::MAX - 3,
            seq: 12_345,
        };
        assert_eq!(id.to_string().parse::<TaskId>().unwrap(), id);
        let err = "nope".parse::<TaskId>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownTask);
    }

    #[test]
    fn names_that_would_move_the_hash_tag_are_refused() {
        assert!(Keys::new("p", "a{b", 1).is_err());
        assert!(Keys::new("p}", "a", 1).is_err());
        assert!(Keys::new("p", "", 1).is_err());
        assert!(Keys::new("p", "q", 0).is_err());
        assert!(Keys::new("p", "q", MAX_SHARDS + 1).is_err());
    }
}
