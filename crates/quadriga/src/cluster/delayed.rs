//! Delayed entries (`submit_at`, countdowns, back-off between retries), held
//! by the broker, not in any worker's memory: a shard's sorted set scores
//! each entry's token by its due time on the server's clock, its bytes wait
//! under their own key, and workers move due entries into the stream
//! (`scripts.rs`: ENQUEUE_DELAYED, DUE, PROMOTE).

use std::time::Duration;

use redis::Value;

use super::broker::{Broker, secs};
use super::entry::Entry;
use super::error::{Error, ErrorKind};
use super::keys::{BLOCK, token};
use super::reply;
use super::scripts;

/// What a [`Broker::promote_due`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Promoted {
    /// Entries moved into their streams.
    pub moved: usize,
    /// How long until the next delayed entry is due (`None` when there is
    /// none), as the server's clock told it.
    pub next_due: Option<Duration>,
}

impl Broker {
    /// Adds `entry` to be run once `delay` has passed on the broker's clock:
    /// until then it waits in the broker (not in any worker), and a cancel
    /// removes it. Returns its marker (`d:<token>`). Refused before anything
    /// is sent when the entry is too large, or the delay outlasts the tasks'
    /// records. Repeating it adds nothing.
    pub fn enqueue_after(&mut self, entry: &Entry, delay: Duration) -> Result<String, Error> {
        let keys = self.keys().clone();
        let config = self.config().clone();
        if entry.shard >= keys.shards() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "shard {} of a queue with {} shards",
                    entry.shard,
                    keys.shards()
                ),
            ));
        }
        if delay >= config.task_ttl {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "a delay of {delay:?} outlasts the tasks' records ({:?})",
                    config.task_ttl
                ),
            ));
        }
        let first = entry
            .ids()
            .next()
            .ok_or_else(|| Error::new(ErrorKind::Config, "an entry without tasks"))?;
        let bytes = entry.encode(config.max_entry_bytes)?;
        let mut call = scripts::ENQUEUE_DELAYED.key(keys.delayed(entry.shard));
        call.key(keys.delayed_entry(first)).key(keys.record(first));
        call.arg(bytes)
            .arg(secs(config.task_ttl))
            .arg(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
            .arg(token(first))
            .arg(first.seq % BLOCK)
            .arg(entry.items.len());
        let link = self.link();
        let io = link.io_timeout();
        let v: Value = link.call("enqueueing a delayed entry", io, |con| call.invoke(con))?;
        reply::text(&v, "a delayed entry's marker")
    }

    /// Moves up to `max` due delayed entries of every shard into their
    /// streams, and says when the next is due. Any worker may call it; each
    /// entry moves once.
    pub fn promote_due(&mut self, max: usize) -> Result<Promoted, Error> {
        let keys = self.keys().clone();
        let mut out = Promoted::default();
        for shard in 0..keys.shards() {
            let delayed = keys.delayed(shard);
            let mut call = scripts::DUE.key(&delayed);
            call.arg(max.max(1));
            let link = self.link();
            let io = link.io_timeout();
            let v: Value = link.call("finding due entries", io, |con| call.invoke(con))?;
            let [wait, due] = reply::array(&v, "due entries")? else {
                return Err(Error::protocol("due entries", "not a wait and a list"));
            };
            let wait = reply::int(wait, "the wait until due")?;
            if let Ok(ms) = u64::try_from(wait) {
                let d = Duration::from_millis(ms);
                out.next_due = Some(out.next_due.map_or(d, |n| n.min(d)));
            }
            for t in reply::array(due, "due tokens")? {
                let t = reply::text(t, "a due token")?;
                let (client, seq) = parse_token(&t)?;
                let first = super::keys::TaskId { shard, client, seq };
                let mut call = scripts::PROMOTE.key(&delayed);
                call.key(keys.stream(shard))
                    .key(keys.delayed_entry(first))
                    .key(keys.record(first));
                call.arg(&t);
                let v: Value = link.call("promoting a due entry", io, |con| call.invoke(con))?;
                if v != Value::Nil {
                    out.moved += 1;
                }
            }
        }
        Ok(out)
    }
}

fn parse_token(t: &str) -> Result<(u64, u64), Error> {
    let bad = || Error::protocol("due entries", format!("`{t}` is not a token"));
    let (client, seq) = t.split_once('-').ok_or_else(bad)?;
    Ok((
        u64::from_str_radix(client, 16).map_err(|_| bad())?,
        seq.parse().map_err(|_| bad())?,
    ))
}
