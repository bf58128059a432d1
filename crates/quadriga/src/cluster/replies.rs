//! The client's side of completions: reading its reply streams (which of its
//! tasks finished) and fetching many outcomes in one round trip per shard.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::Value;

use super::broker::{Broker, Found, random};
use super::error::Error;
use super::keys::{BLOCK, TaskId};
use super::outcome::Outcome;
use super::reader::stream_entries;
use super::reply;
use crate::TaskError;

impl Broker {
    /// Reads this client's notifications on every shard after the ids in
    /// `after` (one per shard, `0-0` at first; moved past what was read),
    /// waiting up to `block` when there are none. Returns the finished task
    /// tasks, with how long their entry ran on the worker (zero when not
    /// told) and their outcomes when small enough to travel inline. A plain
    /// `XREAD`: reading again from the same ids repeats it.
    pub(crate) fn read_replies(
        &mut self,
        after: &mut [String],
        block: Duration,
        count: usize,
    ) -> Result<Vec<Notice>, Error> {
        let shards = self.keys().shards();
        if shards == 1 || !self.link().is_cluster() {
            let all: Vec<u16> = (0..shards).collect();
            return self.xread_replies(&all, after, Some(block), count);
        }
        // A Redis Cluster takes keys of one slot per command: look at every
        // shard without blocking, then wait on one (in turn) for a slice
        // (short after a completion, longer while none come: `Slice`).
        let deadline = Instant::now() + block;
        let mut turn = (random() % u64::from(shards)) as u16;
        loop {
            let mut done = Vec::new();
            for shard in 0..shards {
                done.extend(self.xread_replies(&[shard], after, None, count)?);
            }
            if !done.is_empty() {
                self.reply_slice.found();
                return Ok(done);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = self.reply_slice.next(left);
            turn = (turn + 1) % shards;
            let done = if self.reply_slice.sleeps() {
                std::thread::sleep(wait);
                Vec::new()
            } else {
                self.xread_replies(&[turn], after, Some(wait), count)?
            };
            if done.is_empty() {
                self.reply_slice.idle();
            } else {
                self.reply_slice.found();
            }
            if !done.is_empty() || wait >= left {
                return Ok(done);
            }
        }
    }

    /// One `XREAD` of the reply streams of `shards`, blocking up to `block`
    /// when given.
    fn xread_replies(
        &mut self,
        shards: &[u16],
        after: &mut [String],
        block: Option<Duration>,
        count: usize,
    ) -> Result<Vec<Notice>, Error> {
        let keys = self.keys().clone();
        let client = self.client_id();
        let max = self.config().max_entry_bytes;
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(count.max(1));
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS");
        for &shard in shards {
            cmd.arg(keys.reply(shard, client));
        }
        for &shard in shards {
            cmd.arg(&after[usize::from(shard)]);
        }
        let link = self.link();
        let wait = block.unwrap_or_default() + link.io_timeout();
        let v: Value = link.call("reading completions", wait, |con| cmd.query(con))?;
        let mut done = Vec::new();
        for (stream, list) in stream_entries(&v)? {
            let name = reply::bytes(stream, "a reply stream's name")?;
            let Some(&shard) = shards
                .iter()
                .find(|&&s| keys.reply(s, client).as_bytes() == name)
            else {
                return Err(Error::protocol("XREAD", "a stream that was not asked for"));
            };
            for e in reply::array(list, "notifications")? {
                let [id, fields] = reply::array(e, "a notification")? else {
                    return Err(Error::protocol("XREAD", "an entry is not id, fields"));
                };
                after[usize::from(shard)] = reply::text(id, "a notification id")?;
                done.extend(Notice::parse(shard, client, fields, max)?);
            }
        }
        Ok(done)
    }

    /// What is recorded for each of `ids`, in order: one round trip per
    /// 1,000 entries' records (pipelined; a second one only for entries
    /// with an item cancelled on its own). An entry's outcomes are decoded
    /// once however many of its tasks are asked for; outcomes that do not
    /// decode read as codec errors of their tasks.
    pub(crate) fn look_up(&mut self, ids: &[TaskId]) -> Result<Vec<Found>, Error> {
        let keys = self.keys().clone();
        let max = self.config().max_entry_bytes;
        let mut out = vec![Found::Unknown; ids.len()];
        // The asked ids by record, records in first-asked order.
        let mut records: Vec<(String, Vec<usize>)> = Vec::new();
        let mut at: HashMap<(u16, u64, u64), usize> = HashMap::new();
        let mut last = None;
        for (i, &id) in ids.iter().enumerate() {
            // Named once per entry, not per task (a map chunk has thousands,
            // asked for one after another).
            let block = (id.shard, id.client, id.seq / BLOCK);
            let r = match last {
                Some((b, r)) if b == block => r,
                _ => *at.entry(block).or_insert_with(|| {
                    records.push((keys.record(id), Vec::new()));
                    records.len() - 1
                }),
            };
            last = Some((block, r));
            records[r].1.push(i);
        }
        for batch in records.chunks(1000) {
            let mut pipe = redis::pipe();
            for (key, _) in batch {
                pipe.cmd("HMGET")
                    .arg(key)
                    .arg(&["at", "lo", "n", "out", "dead", "nx"]);
            }
            let rows: Vec<Vec<Option<Vec<u8>>>> =
                self.link().query_pipe("fetching outcomes", &pipe)?;
            if rows.len() != batch.len() {
                return Err(Error::protocol("HMGET", "not one reply per record"));
            }
            let mut singles = Vec::new();
            for ((key, asked), row) in batch.iter().zip(rows) {
                let [located, lo, n, all, dead, nx] = <[Option<Vec<u8>>; 6]>::try_from(row)
                    .map_err(|_| Error::protocol("HMGET", "not six fields"))?;
                if located.is_none() {
                    continue; // unknown
                }
                let number = |v: &Option<Vec<u8>>| {
                    v.as_deref()
                        .and_then(|b| std::str::from_utf8(b).ok())
                        .and_then(|t| t.parse::<u64>().ok())
                };
                let (Some(lo), Some(n)) = (number(&lo), number(&n)) else {
                    return Err(Error::protocol("a record", "no item range"));
                };
                let list = all.map(|b| Outcome::decode_many(&b, max));
                let dead = dead.map(|b| decode_or_codec(&b, max));
                for &i in asked {
                    let index = ids[i].seq % BLOCK;
                    if index < lo || index >= lo + n {
                        continue; // unknown
                    }
                    out[i] = match (&list, &dead) {
                        (Some(Ok(list)), _) => {
                            list.get((index - lo) as usize).cloned().map_or_else(
                                || codec_error("no outcome for this item"),
                                Found::Outcome,
                            )
                        }
                        (Some(Err(e)), _) => codec_error(e.message()),
                        (None, Some(dead)) => Found::Outcome(dead.clone()),
                        (None, None) => Found::Pending,
                    };
                    if number(&nx).unwrap_or(0) > 0 {
                        singles.push((key.clone(), i, index));
                    }
                }
            }
            if singles.is_empty() {
                continue;
            }
            // Items cancelled on their own: their outcome wins.
            let mut pipe = redis::pipe();
            for (key, _, index) in &singles {
                pipe.cmd("HGET").arg(key).arg(format!("x:{index}"));
            }
            let got: Vec<Option<Vec<u8>>> = self.link().query_pipe("fetching outcomes", &pipe)?;
            for ((_, i, _), bytes) in singles.iter().zip(got) {
                if let Some(bytes) = bytes {
                    out[*i] = Found::Outcome(decode_or_codec(&bytes, max));
                }
            }
        }
        Ok(out)
    }

    /// The recorded outcomes of `ids` (`None` where none is recorded yet,
    /// or none is known), in order.
    pub(crate) fn fetch_many(&mut self, ids: &[TaskId]) -> Result<Vec<Option<Outcome>>, Error> {
        Ok(self
            .look_up(ids)?
            .into_iter()
            .map(|f| match f {
                Found::Outcome(o) => Some(o),
                Found::Pending | Found::Unknown => None,
            })
            .collect())
    }
}

/// One notification: the tasks `first.seq .. first.seq + n` finished, their
/// entry ran for `ran` on its worker, and their outcomes when carried
/// inline.
#[derive(Debug)]
pub(crate) struct Notice {
    pub(crate) first: TaskId,
    pub(crate) n: u64,
    pub(crate) ran: Duration,
    pub(crate) inline: Option<Inline>,
}

/// Outcomes a notification carries.
#[derive(Debug)]
pub(crate) enum Inline {
    /// One per task, in order.
    Each(Vec<Outcome>),
    /// The same for every task (a dead letter's `lost`, a cancel).
    All(Outcome),
}

impl Notice {
    /// The ids it names.
    pub(crate) fn ids(&self) -> impl Iterator<Item = TaskId> + '_ {
        (0..self.n).map(|i| TaskId {
            seq: self.first.seq + i,
            ..self.first
        })
    }

    /// The outcome of the `i`th task it names, if carried inline.
    pub(crate) fn outcome(&self, i: usize) -> Option<Outcome> {
        match &self.inline {
            Some(Inline::Each(list)) => list.get(i).cloned(),
            Some(Inline::All(o)) => Some(o.clone()),
            None => None,
        }
    }

    /// Reads a notification's fields. A count past [`BLOCK`] is refused;
    /// inline outcomes that do not decode are left to be fetched.
    fn parse(shard: u16, client: u64, fields: &Value, max: usize) -> Result<Option<Notice>, Error> {
        let mut first = None;
        let mut n = 0u64;
        let mut ran = Duration::ZERO;
        let mut inline = None;
        for (field, value) in reply::pairs(fields, "a notification's fields")? {
            match reply::bytes(field, "a field")? {
                b"first" => first = Some(reply::int(value, "first")?.max(0) as u64),
                b"n" => n = reply::int(value, "n")?.max(0) as u64,
                b"ns" => ran = Duration::from_nanos(reply::int(value, "ns")?.max(0) as u64),
                b"out" => {
                    inline = Outcome::decode_many(reply::bytes(value, "out")?, max)
                        .ok()
                        .map(Inline::Each);
                }
                b"all" => {
                    inline = Outcome::decode(reply::bytes(value, "all")?, max)
                        .ok()
                        .map(Inline::All);
                }
                _ => {}
            }
        }
        let Some(seq) = first else {
            return Ok(None);
        };
        if n > BLOCK || matches!(&inline, Some(Inline::Each(l)) if l.len() as u64 != n) {
            return Err(Error::protocol("XREAD", "a notification's count"));
        }
        Ok(Some(Notice {
            first: TaskId { shard, client, seq },
            n,
            ran,
            inline,
        }))
    }
}

fn decode_or_codec(bytes: &[u8], max: usize) -> Outcome {
    Outcome::decode(bytes, max).unwrap_or_else(|e| Outcome::Error(TaskError::codec(e.to_string())))
}

fn codec_error(why: &str) -> Found {
    Found::Outcome(Outcome::Error(TaskError::codec(why)))
}
