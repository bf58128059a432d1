//! [`Reader`]: the blocking read of new entries, on a connection of its own.
//!
//! `XREADGROUP ... BLOCK` holds its connection for the whole block, so it gets
//! one to itself, with a read timeout of the block time plus the ordinary
//! reply timeout: a dead server is noticed, a quiet queue is not mistaken for
//! one.
//!
//! `COUNT` bounds each stream separately, so a read over several shards could
//! return more than was asked. The reader therefore first reads the shards
//! one by one without blocking, from a rotating start (never more than the
//! free slots left), and blocks only when all were empty; a blocking read over
//! several shards asks for one entry per shard, and over fewer shards when
//! fewer slots are free.
//!
//! On a Redis Cluster one command may only name keys of one hash slot, and
//! each shard has its own slot, so a read cannot wait on several shards at
//! once. There the reader waits on one shard at a time (in turn) for a
//! slice ([`Slice`]), then looks at every shard again without blocking. The
//! slice is short (2 ms) for 250 ms after something came, so a busy queue is
//! served at once, then doubles while nothing comes, up to 50 ms. Slices
//! shorter than that are slept through (a short `BLOCK` ends only at the
//! server's next periodic tick, up to 100 ms later); the longest block on a
//! shard. An idle worker sends about `shards + 1` reads per 50 ms; an entry on
//! a shard it is not waiting on is taken within one slice (once idle, up to
//! about 100 ms: the server's tick again).

use std::time::{Duration, Instant};

use redis::Value;

use super::broker::create_group;
use super::conn::Link;
use super::delivery::Delivery;
use super::error::Error;
use super::keys::{GROUP, Keys};
use super::reply;

/// On a Redis Cluster, how long a read waits on one shard before it looks at
/// the others again: [`MIN`](Self::MIN) for [`HOT`](Self::HOT) after
/// something came, then doubling while nothing does, up to
/// [`MAX`](Self::MAX).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slice {
    wait: Duration,
    found_at: Instant,
}

impl Slice {
    pub(crate) const MIN: Duration = Duration::from_millis(2);
    pub(crate) const MAX: Duration = Duration::from_millis(50);
    pub(crate) const HOT: Duration = Duration::from_millis(250);

    pub(crate) fn new() -> Self {
        Slice {
            wait: Self::MIN,
            found_at: Instant::now(),
        }
    }

    /// The wait of the next slice, at most `left`.
    pub(crate) fn next(&self, left: Duration) -> Duration {
        left.min(self.wait)
    }

    /// Whether the next slice is short enough to sleep through rather than
    /// block in the server: a server times out blocked reads in its periodic
    /// task (`hz`, 10 per second by default), so a short `BLOCK` may last far
    /// longer than asked.
    pub(crate) fn sleeps(&self) -> bool {
        self.wait < Self::MAX
    }

    /// Something came: wait briefly again.
    pub(crate) fn found(&mut self) {
        self.wait = Self::MIN;
        self.found_at = Instant::now();
    }

    /// A slice passed with nothing: once the queue has been quiet for a
    /// while, wait longer next time.
    pub(crate) fn idle(&mut self) {
        if self.found_at.elapsed() >= Self::HOT {
            self.wait = (self.wait * 2).min(Self::MAX);
        }
    }
}

/// Reads new entries for one consumer, blocking up to a given time. Made by
/// [`Broker::reader`](super::Broker::reader).
#[derive(Debug)]
pub struct Reader {
    link: Link,
    keys: Keys,
    consumer: String,
    max_entry_bytes: usize,
    /// The shard the next read starts at.
    next: u16,
    /// The wait on one shard, on a Redis Cluster.
    slice: Slice,
}

impl Reader {
    pub(crate) fn new(link: Link, keys: Keys, consumer: String, max_entry_bytes: usize) -> Self {
        Self {
            link,
            keys,
            consumer,
            max_entry_bytes,
            next: 0,
            slice: Slice::new(),
        }
    }

    /// Takes up to `free_slots` new entries for this consumer, waiting up to
    /// `block` for the first if there are none (an empty list then). Taken
    /// entries are this consumer's until acknowledged or reclaimed: heartbeat
    /// them. A reply lost to a broken connection leaves its entries pending
    /// to this consumer; a sweep or [`Broker::resume`](super::Broker::resume)
    /// finds them again.
    pub fn read(&mut self, free_slots: usize, block: Duration) -> Result<Vec<Delivery>, Error> {
        if free_slots == 0 {
            return Ok(Vec::new());
        }
        let shards = self.keys.shards();
        let start = self.next;
        self.next = (self.next + 1) % shards;
        let order: Vec<u16> = (0..shards).map(|i| (start + i) % shards).collect();
        let sliced = shards > 1 && self.link.is_cluster();
        let deadline = Instant::now() + block;
        let mut turn = 0;
        loop {
            let mut out = Vec::new();
            if shards > 1 {
                for &shard in &order {
                    let room = free_slots - out.len();
                    if room == 0 {
                        self.slice.found();
                        return Ok(out);
                    }
                    out.extend(self.xreadgroup(&[shard], room, None)?);
                }
                if !out.is_empty() {
                    self.slice.found();
                    return Ok(out);
                }
            }
            if sliced {
                // One slot per command: wait on one shard, for a slice, in turn.
                let left = deadline.saturating_duration_since(Instant::now());
                let wait = self.slice.next(left);
                let shard = order[turn % order.len()];
                turn += 1;
                let got = if self.slice.sleeps() {
                    std::thread::sleep(wait);
                    Vec::new()
                } else {
                    self.xreadgroup(&[shard], free_slots, Some(wait))?
                };
                if got.is_empty() {
                    self.slice.idle();
                } else {
                    self.slice.found();
                }
                if !got.is_empty() || wait >= left {
                    return Ok(got);
                }
                continue;
            }
            // All empty: block on as many shards as there are free slots, one
            // entry each (or on the only shard, for all the free slots).
            let (watch, count) = if shards == 1 {
                (&order[..], free_slots)
            } else {
                (&order[..free_slots.min(order.len())], 1)
            };
            return self.xreadgroup(watch, count, Some(block));
        }
    }

    fn xreadgroup(
        &mut self,
        shards: &[u16],
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Delivery>, Error> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count);
        let wait = block.unwrap_or_default();
        if block.is_some() {
            cmd.arg("BLOCK").arg(wait.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS");
        for &s in shards {
            cmd.arg(self.keys.stream(s));
        }
        for _ in shards {
            cmd.arg(">");
        }
        let reply_timeout = wait + self.link.io_timeout();
        let v: Value = match self
            .link
            .call("reading entries", reply_timeout, |con| cmd.query(con))
        {
            // The stream or group vanished (a flushed or restarted server
            // without persistence): make them again, read next time.
            Err(e) if e.message().contains("NOGROUP") => {
                for &s in shards {
                    create_group(&mut self.link, &self.keys.stream(s))?;
                }
                return Ok(Vec::new());
            }
            other => other?,
        };
        let mut out = Vec::new();
        for (stream, list) in stream_entries(&v)? {
            let stream = reply::bytes(stream, "a stream's name")?;
            let shard = self
                .keys
                .shard_of_stream(stream)
                .ok_or_else(|| Error::protocol("XREADGROUP", "a stream that was not asked for"))?;
            for e in reply::array(list, "entries")? {
                let [id, fields] = reply::array(e, "an entry")? else {
                    return Err(Error::protocol("XREADGROUP", "an entry is not id, fields"));
                };
                let id = reply::text(id, "an entry id")?;
                out.push(Delivery::parse(shard, id, 1, fields, self.max_entry_bytes));
            }
        }
        Ok(out)
    }
}

/// The `(stream name, entries)` pairs of an `XREAD`/`XREADGROUP` reply: an
/// array of pairs (RESP2) or a map (RESP3); nil when nothing came.
pub(crate) fn stream_entries(v: &Value) -> Result<Vec<(&Value, &Value)>, Error> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Map(m) => Ok(m.iter().map(|(k, v)| (k, v)).collect()),
        other => reply::array(other, "XREADGROUP")?
            .iter()
            .map(|pair| match reply::array(pair, "a stream's entries")? {
                [name, list] => Ok((name, list)),
                _ => Err(Error::protocol(
                    "XREADGROUP",
                    "not a stream name and entries",
                )),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_stays_short_while_hot_then_grows_to_a_blocking_one() {
        let mut slice = Slice::new();
        slice.idle();
        assert_eq!(slice.next(Duration::from_secs(1)), Slice::MIN, "still hot");
        assert!(slice.sleeps());
        // Quiet for longer than HOT: it doubles up to MAX, then blocks.
        slice.found_at = Instant::now() - Slice::HOT;
        let mut waits = Vec::new();
        for _ in 0..8 {
            slice.idle();
            waits.push(slice.next(Duration::from_secs(1)));
        }
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        assert_eq!(*waits.last().unwrap(), Slice::MAX);
        assert!(!slice.sleeps());
        assert_eq!(
            slice.next(Duration::from_millis(7)),
            Duration::from_millis(7)
        );
        slice.found();
        assert_eq!(slice.next(Duration::from_secs(1)), Slice::MIN);
    }
}
