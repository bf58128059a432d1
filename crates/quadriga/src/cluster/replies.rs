//! The client's side of completions: reading its reply streams (which of its
//! tasks finished) and fetching many outcomes in one round trip per shard.

use std::time::{Duration, Instant};

use redis::Value;

use super::broker::{Broker, random};
use super::error::Error;
use super::keys::TaskId;
use super::outcome::Outcome;
use super::reader::stream_entries;
use super::reply;
use crate::TaskError;

impl Broker {
    /// Reads this client's notifications on every shard after the ids in
    /// `after` (one per shard, `0-0` at first; moved past what was read),
    /// waiting up to `block` when there are none. Returns the finished task
    /// ids, each with how long its entry ran on the worker (zero when not
    /// told). A plain `XREAD`: reading again from the same ids repeats it.
    pub(crate) fn read_replies(
        &mut self,
        after: &mut [String],
        block: Duration,
        count: usize,
    ) -> Result<Vec<(TaskId, Duration)>, Error> {
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
    ) -> Result<Vec<(TaskId, Duration)>, Error> {
        let keys = self.keys().clone();
        let client = self.client_id();
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
                let mut seqs = String::new();
                let mut ran = Duration::ZERO;
                for (field, value) in reply::pairs(fields, "a notification's fields")? {
                    match reply::bytes(field, "a field")? {
                        b"seqs" => seqs = reply::text(value, "seqs")?,
                        b"ns" => {
                            ran = Duration::from_nanos(reply::int(value, "ns")?.max(0) as u64);
                        }
                        _ => {}
                    }
                }
                for seq in seqs.split_ascii_whitespace() {
                    let seq = seq
                        .parse()
                        .map_err(|_| Error::protocol("XREAD", "a sequence number"))?;
                    done.push((TaskId { shard, client, seq }, ran));
                }
            }
        }
        Ok(done)
    }

    /// The recorded outcomes of `ids` (`None` where none is recorded yet), in
    /// order: one `MGET` per shard and batch of 1,000. An outcome that does
    /// not decode reads as a codec error of that task.
    pub(crate) fn fetch_many(&mut self, ids: &[TaskId]) -> Result<Vec<Option<Outcome>>, Error> {
        let keys = self.keys().clone();
        let max = self.config().max_entry_bytes;
        let mut out = vec![None; ids.len()];
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].shard);
        let link = self.link();
        let io = link.io_timeout();
        for group in order.chunk_by(|&a, &b| ids[a].shard == ids[b].shard) {
            for batch in group.chunks(1000) {
                let mut cmd = redis::cmd("MGET");
                for &i in batch {
                    cmd.arg(keys.result(ids[i]));
                }
                let got: Vec<Option<Vec<u8>>> =
                    link.call("fetching outcomes", io, |con| cmd.query(con))?;
                if got.len() != batch.len() {
                    return Err(Error::protocol("MGET", "not one value per key"));
                }
                for (&i, bytes) in batch.iter().zip(got) {
                    out[i] = bytes.map(|b| {
                        Outcome::decode(&b, max)
                            .unwrap_or_else(|e| Outcome::Error(TaskError::codec(e.to_string())))
                    });
                }
            }
        }
        Ok(out)
    }
}
