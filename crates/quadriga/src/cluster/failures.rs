//! Recent failures: the errors of tasks that ended badly, kept in one capped
//! stream per queue (`p:{q}:failures`, about the last 200) for dashboards.
//!
//! A worker that completes an entry with an error outcome adds one record
//! per failed task (at most [`MAX_PER_ENTRY`] per entry) in one round trip,
//! *after* the fenced completion and outside it: the record is a view, never
//! part of the outcome, so it costs the completion nothing and its failure
//! never fails the completion. Each text field is cut to a bound on write
//! and again on read (anyone who can write to Redis can write here too).

use redis::Value;
use serde::{Deserialize, Serialize};

use super::broker::Broker;
use super::config::BrokerConfig;
use super::conn::Link;
use super::delivery::Delivery;
use super::error::Error;
use super::keys::{Keys, MAX_SHARDS};
use super::outcome::Outcome;
use super::reply;

/// About how many failures the stream keeps (`XADD … MAXLEN ~`).
pub const MAX_FAILURES_KEPT: usize = 200;

/// The most failures recorded for one entry (a map chunk whose items all
/// fail records the first few).
pub const MAX_PER_ENTRY: usize = 5;

/// The most bytes kept of a message or a location.
const MAX_TEXT: usize = 4096;

/// The most bytes kept of a backtrace.
const MAX_BACKTRACE: usize = 16 * 1024;

/// One failed task, as its worker recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Its id in the failures stream.
    pub id: String,
    /// When it was recorded (the broker's clock, ms since the epoch).
    pub at_ms: u64,
    /// The worker that ran it.
    pub worker: String,
    /// The task's name.
    pub task: String,
    /// The task's id (`<client>-<shard>-<seq>`).
    pub task_id: String,
    /// The stream id its entry had.
    pub entry: String,
    /// The error's kind: `panicked`, `failed`, `crashed`, `timed out`…
    pub kind: String,
    /// The error's message (a panic's message, the task's own error).
    pub message: String,
    /// Where a panic happened (`file:line:column`), when known.
    pub location: Option<String>,
    /// The panic's backtrace, when one was captured.
    pub backtrace: Option<String>,
}

impl Broker {
    /// Records the failed tasks of a completed entry in the queue's failures
    /// stream (capped near [`MAX_FAILURES_KEPT`]): one `XADD` per failed
    /// task, at most [`MAX_PER_ENTRY`], in one round trip. Returns how many
    /// were recorded (0, sending nothing, when no outcome is an error).
    pub fn record_failures(
        &mut self,
        delivery: &Delivery,
        outcomes: &[Outcome],
    ) -> Result<usize, Error> {
        let Ok(entry) = &delivery.entry else {
            return Ok(0);
        };
        let key = self.keys().failures();
        let worker = self.consumer().to_owned();
        let mut pipe = redis::pipe();
        let mut n = 0;
        for (id, outcome) in entry.ids().zip(outcomes) {
            let Outcome::Error(e) = outcome else { continue };
            if n == MAX_PER_ENTRY {
                break;
            }
            n += 1;
            let cmd = pipe
                .cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(MAX_FAILURES_KEPT)
                .arg("*")
                .arg("worker")
                .arg(&worker)
                .arg("task")
                .arg(clip(&entry.task, MAX_TEXT))
                .arg("task_id")
                .arg(id.to_string())
                .arg("entry")
                .arg(&delivery.id)
                .arg("kind")
                .arg(e.kind().to_string())
                .arg("message")
                .arg(clip(e.message(), MAX_TEXT));
            if let Some(at) = e.location() {
                cmd.arg("location").arg(clip(&at.to_string(), MAX_TEXT));
            }
            if let Some(bt) = e.backtrace() {
                cmd.arg("backtrace").arg(clip(bt, MAX_BACKTRACE));
            }
            cmd.ignore();
        }
        if n > 0 {
            self.link().query_pipe::<()>("recording failures", &pipe)?;
        }
        Ok(n)
    }

    /// The queue's most recent failures, newest first, at most `max`.
    pub fn failures(&mut self, max: usize) -> Result<Vec<Failure>, Error> {
        let keys = self.keys().clone();
        read(self.link(), &keys, max)
    }
}

/// The most recent failures of the queue that `config` names, newest first,
/// at most `max`, without connecting a [`Broker`] (read-only; within the
/// config's timeouts).
pub fn read_failures(config: &BrokerConfig, max: usize) -> Result<Vec<Failure>, Error> {
    let keys = Keys::new(&config.prefix, &config.queue, MAX_SHARDS)?;
    let mut link = Link::new(&config.url, config.connect_timeout, config.io_timeout)?;
    read(&mut link, &keys, max)
}

/// The failures of `keys`' queue on `link`, newest first, at most `max`.
pub(super) fn read(link: &mut Link, keys: &Keys, max: usize) -> Result<Vec<Failure>, Error> {
    let key = keys.failures();
    let io = link.io_timeout();
    let v: Value = link.call("reading failures", io, |con| {
        redis::cmd("XREVRANGE")
            .arg(&key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(max.max(1))
            .query(con)
    })?;
    let mut out = Vec::new();
    for e in reply::array(&v, "failures")?.iter().take(max) {
        out.push(parse(e)?);
    }
    Ok(out)
}

/// One record: its id and fields; unknown fields are ignored, text is cut to
/// its bound and read lossily (it is for people).
fn parse(e: &Value) -> Result<Failure, Error> {
    let [id, fields] = reply::array(e, "a failure")? else {
        return Err(Error::protocol("failures", "a record is not id, fields"));
    };
    let id = reply::text(id, "a failure's id")?;
    let mut f = Failure {
        at_ms: id
            .split_once('-')
            .and_then(|(ms, _)| ms.parse().ok())
            .unwrap_or(0),
        id,
        worker: String::new(),
        task: String::new(),
        task_id: String::new(),
        entry: String::new(),
        kind: String::new(),
        message: String::new(),
        location: None,
        backtrace: None,
    };
    for (name, value) in reply::pairs(fields, "a failure's fields")? {
        let text = |max| {
            reply::bytes(value, "a failure's field")
                .map(|b| clip(&String::from_utf8_lossy(&b[..b.len().min(max)]), max))
        };
        match reply::bytes(name, "a field name")? {
            b"worker" => f.worker = text(MAX_TEXT)?,
            b"task" => f.task = text(MAX_TEXT)?,
            b"task_id" => f.task_id = text(MAX_TEXT)?,
            b"entry" => f.entry = text(MAX_TEXT)?,
            b"kind" => f.kind = text(MAX_TEXT)?,
            b"message" => f.message = text(MAX_TEXT)?,
            b"location" => f.location = Some(text(MAX_TEXT)?),
            b"backtrace" => f.backtrace = Some(text(MAX_BACKTRACE)?),
            _ => {}
        }
    }
    Ok(f)
}

/// Runs the failure and dead-letter record readers on a record cut from
/// arbitrary bytes (split at `0xff`: the id, then field, value, ...): the
/// fuzz target's entry point. It must return, never panic, and keep every
/// text within its bound.
#[doc(hidden)]
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_parse_records(bytes: &[u8]) {
    let mut parts = bytes
        .split(|&b| b == 0xff)
        .map(|p| Value::BulkString(p.to_vec()));
    let id = parts.next().unwrap_or(Value::Nil);
    let record = Value::Array(vec![id, Value::Array(parts.collect())]);
    if let Ok(f) = parse(&record) {
        for text in [
            &f.worker, &f.task, &f.task_id, &f.entry, &f.kind, &f.message,
        ] {
            assert!(text.len() <= MAX_TEXT);
        }
        assert!(f.location.as_ref().is_none_or(|l| l.len() <= MAX_TEXT));
        assert!(
            f.backtrace
                .as_ref()
                .is_none_or(|b| b.len() <= MAX_BACKTRACE)
        );
    }
    if let Ok(d) = super::dead::info(&record, 0, 1 << 20) {
        assert!(d.reason.len() <= 4096 && d.entry.len() <= 4096);
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub(super) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_character_boundary() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc");
        // `é` is two bytes: cutting inside it keeps the character out.
        assert_eq!(clip("aé", 2), "a");
    }

    #[test]
    fn a_record_is_read_with_its_optional_fields_and_bounds() {
        let bulk = |s: &[u8]| Value::BulkString(s.to_vec());
        let long = vec![b'x'; MAX_TEXT + 10];
        let v = Value::Array(vec![
            bulk(b"1700000000123-0"),
            Value::Array(vec![
                bulk(b"worker"),
                bulk(b"w1"),
                bulk(b"kind"),
                bulk(b"panicked"),
                bulk(b"message"),
                bulk(&long),
                bulk(b"location"),
                bulk(b"src/main.rs:4:5"),
                bulk(b"odd"),
                bulk(b"ignored"),
            ]),
        ]);
        let f = parse(&v).unwrap();
        assert_eq!(f.at_ms, 1_700_000_000_123);
        assert_eq!(f.worker, "w1");
        assert_eq!(f.kind, "panicked");
        assert_eq!(f.message.len(), MAX_TEXT);
        assert_eq!(f.location.as_deref(), Some("src/main.rs:4:5"));
        assert_eq!(f.backtrace, None);
        assert!(parse(&Value::Array(vec![bulk(b"1-0")])).is_err());
    }

    #[test]
    fn seeded_random_records_never_panic() {
        let names: [&[u8]; 12] = [
            b"worker",
            b"task",
            b"task_id",
            b"entry",
            b"kind",
            b"message",
            b"location",
            b"backtrace",
            b"dead.entry",
            b"dead.reason",
            b"dead.deliveries",
            b"e",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..500 {
            let mut bytes = b"1700000000000-1".to_vec();
            for _ in 0..next() % 12 {
                bytes.push(0xff);
                bytes.extend_from_slice(names[(next() % 12) as usize]);
                bytes.push(0xff);
                let len = match next() % 8 {
                    0 => 0,
                    1 => MAX_TEXT + (next() % 64) as usize,
                    2 => MAX_BACKTRACE + 1,
                    _ => (next() % 16) as usize,
                };
                bytes.extend((0..len).map(|_| (next() % 255) as u8));
            }
            fuzz_parse_records(&bytes);
        }
    }
}
