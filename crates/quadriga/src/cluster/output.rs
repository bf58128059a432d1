//! Per-task output streams: what a task writes as it runs (a shell job's
//! stdout and stderr), carried to its client in bounded chunks.
//!
//! Task `id`'s stream is `<record key of id>:out:<seq>`, so it carries the task's
//! shard hash tag (one slot on a Redis Cluster). Its entries have explicit
//! ids `<attempt>-<n>`: the `n`th chunk (from 1) of delivery `attempt`. So
//! an append is safe to repeat (the same id is refused the second time), a
//! superseded attempt cannot write after a newer one began, and the reader
//! tells attempts apart by the id alone.
//!
//! Back-pressure: an append is refused while the stream holds
//! [`MAX_UNREAD`] chunks; the writer waits and tries again. The reader
//! deletes what it consumed. Every append renews the key's time to live, so
//! a stream whose reader went away vanishes.
//!
//! Also here: the client's view of its completions ([`Broker::completions`],
//! [`Broker::outcomes`]), public wrappers of the reply-stream reads.

use std::time::Duration;

use redis::Value;

use super::broker::Broker;
use super::error::{Error, ErrorKind};
use super::keys::TaskId;
use super::outcome::Outcome;
use super::reader::stream_entries;
use super::reply;

/// The most bytes in one chunk.
pub const MAX_CHUNK: usize = 64 * 1024;
/// The most chunks a task's output stream holds unread.
pub const MAX_UNREAD: usize = 32;

/// Which of a task's outputs a chunk belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One piece of a task's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The delivery of the task that wrote it (1 the first).
    pub attempt: u64,
    /// Its place in that attempt's output (from 1).
    pub n: u64,
    /// Standard output or error.
    pub stream: OutputStream,
    /// At most [`MAX_CHUNK`] bytes.
    pub data: Vec<u8>,
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// The chunk is in the stream (now, or by an earlier call with the same
    /// attempt and number).
    Added,
    /// The stream holds [`MAX_UNREAD`] chunks: wait for the reader, then
    /// try again.
    Full,
    /// A later chunk, or a later attempt, was written already: this one is
    /// superseded and dropped.
    Superseded,
}

/// The chunk's stored form: one tag byte (`o` or `e`), then the data.
fn encode(stream: OutputStream, data: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(match stream {
        OutputStream::Stdout => b'o',
        OutputStream::Stderr => b'e',
    });
    bytes.extend_from_slice(data);
    bytes
}

impl Chunk {
    /// Decodes a stored chunk (its entry id and its bytes), refusing more
    /// than [`MAX_CHUNK`] bytes of data.
    pub fn decode(id: &str, bytes: &[u8]) -> Result<Chunk, Error> {
        let codec = |why: &str| Error::new(ErrorKind::Codec, format!("an output chunk: {why}"));
        let (attempt, n) = id.split_once('-').ok_or_else(|| codec("a bad entry id"))?;
        let attempt = attempt.parse().map_err(|_| codec("a bad attempt"))?;
        let n = n.parse().map_err(|_| codec("a bad number"))?;
        let (tag, data) = bytes.split_first().ok_or_else(|| codec("empty"))?;
        let stream = match tag {
            b'o' => OutputStream::Stdout,
            b'e' => OutputStream::Stderr,
            _ => return Err(codec("an unknown stream tag")),
        };
        if data.len() > MAX_CHUNK {
            return Err(codec("over the size limit"));
        }
        Ok(Chunk {
            attempt,
            n,
            stream,
            data: data.to_vec(),
        })
    }
}

/// Fuzzing entry point: decodes arbitrary bytes as a chunk (an id from the
/// first bytes up to a NUL, then the stored bytes); must never panic.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub fn fuzz_decode_chunk(bytes: &[u8]) {
    let (id, rest) = match bytes.iter().position(|&b| b == 0) {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[][..]),
    };
    if let Ok(id) = std::str::from_utf8(id)
        && let Ok(c) = Chunk::decode(id, rest)
    {
        assert!(c.data.len() <= MAX_CHUNK);
    }
}

/// Appends a chunk unless the stream is full; fenced by the explicit id.
/// KEYS[1] the stream; ARGV: max unread, ttl ms, id, bytes.
const APPEND: &str = r"
local function repeat_of_last()
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1] == ARGV[3] end
  end
  return false
end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  if repeat_of_last() then return 'added' end
  return 'full'
end
local ok = redis.pcall('XADD', KEYS[1], ARGV[3], 'c', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if type(ok) == 'table' and ok.err then
  -- Our own earlier append (a repeat), or a later one wrote: superseded.
  if repeat_of_last() then return 'added' end
  return 'stale'
end
return 'added'
";

impl Broker {
    /// The name of task `id`'s output stream.
    pub fn output_key(&self, id: TaskId) -> String {
        format!("{}:out:{}", self.keys().record(id), id.seq)
    }

    /// Appends `data` (at most [`MAX_CHUNK`] bytes) as chunk `n` (from 1)
    /// of delivery `attempt` (from 1) of task `id`'s output, renewing the
    /// stream's time to live to `ttl`. Safe to repeat.
    pub fn append_output(
        &mut self,
        id: TaskId,
        attempt: u64,
        n: u64,
        stream: OutputStream,
        data: &[u8],
        ttl: Duration,
    ) -> Result<Appended, Error> {
        if data.len() > MAX_CHUNK || attempt == 0 || n == 0 {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "an output chunk of {} bytes (attempt {attempt}, number {n}); \
                     at most {MAX_CHUNK} bytes, numbered from 1",
                    data.len()
                ),
            ));
        }
        let key = self.output_key(id);
        let script = redis::Script::new(APPEND);
        let mut call = script.key(key);
        call.arg(MAX_UNREAD)
            .arg(ttl.as_millis().max(1) as u64)
            .arg(format!("{attempt}-{n}"))
            .arg(encode(stream, data));
        let link = self.link();
        let io = link.io_timeout();
        let v: Value = link.call("appending output", io, |con| call.invoke(con))?;
        match reply::bytes(&v, "append's status")? {
            b"added" => Ok(Appended::Added),
            b"full" => Ok(Appended::Full),
            b"stale" => Ok(Appended::Superseded),
            other => Err(Error::protocol(
                "append output",
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }

    /// Reads up to `count` chunks of each task's output after the entry id
    /// given with it (`0-0` at first), and deletes the chunks up to and
    /// including that id (consumed by the previous call). Returns the chunks
    /// in order per task. A plain read and delete: repeating it is safe.
    pub fn read_output(
        &mut self,
        tasks: &[(TaskId, String)],
        count: usize,
    ) -> Result<Vec<(TaskId, Chunk)>, Error> {
        let mut out = Vec::new();
        if tasks.is_empty() {
            return Ok(out);
        }
        let mut order: Vec<usize> = (0..tasks.len()).collect();
        order.sort_by_key(|&i| tasks[i].0.shard);
        let keys: Vec<String> = tasks.iter().map(|(id, _)| self.output_key(*id)).collect();
        for group in order.chunk_by(|&a, &b| tasks[a].0.shard == tasks[b].0.shard) {
            let mut pipe = redis::pipe();
            for &i in group {
                if tasks[i].1 != "0-0" {
                    pipe.cmd("XTRIM")
                        .arg(&keys[i])
                        .arg("MINID")
                        .arg(after(&tasks[i].1))
                        .ignore();
                }
            }
            let read = pipe.cmd("XREAD").arg("COUNT").arg(count.max(1));
            read.arg("STREAMS");
            for &i in group {
                read.arg(&keys[i]);
            }
            for &i in group {
                read.arg(&tasks[i].1);
            }
            let (v,): (Value,) = self.link().query_pipe("reading output", &pipe)?;
            for (stream, list) in stream_entries(&v)? {
                let name = reply::bytes(stream, "an output stream's name")?;
                let Some(&i) = group.iter().find(|&&i| keys[i].as_bytes() == name) else {
                    return Err(Error::protocol("XREAD", "a stream that was not asked for"));
                };
                for e in reply::array(list, "chunks")? {
                    let [eid, fields] = reply::array(e, "a chunk")? else {
                        return Err(Error::protocol("XREAD", "an entry is not id, fields"));
                    };
                    let eid = reply::text(eid, "a chunk id")?;
                    let mut data = None;
                    for (field, value) in reply::pairs(fields, "a chunk's fields")? {
                        if reply::bytes(field, "a field")? == b"c" {
                            data = Some(reply::bytes(value, "a chunk")?);
                        }
                    }
                    let chunk = Chunk::decode(&eid, data.unwrap_or_default())?;
                    out.push((tasks[i].0, chunk));
                }
            }
        }
        Ok(out)
    }

    /// Deletes task `id`'s output stream (the reader is done with it).
    pub fn delete_output(&mut self, id: TaskId) -> Result<(), Error> {
        let key = self.output_key(id);
        let link = self.link();
        let io = link.io_timeout();
        link.call("deleting output", io, |con| {
            redis::cmd("DEL").arg(&key).query::<()>(con)
        })
    }

    /// This client's finished tasks: reads its reply streams after the ids
    /// in `after` (one per shard, `0-0` at first; moved past what was read),
    /// waiting up to `block` when there are none. Repeating a read from the
    /// same ids repeats its answer.
    pub fn completions(
        &mut self,
        after: &mut [String],
        block: Duration,
        count: usize,
    ) -> Result<Vec<TaskId>, Error> {
        if after.len() != usize::from(self.keys().shards()) {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "{} reply positions for {} shards",
                    after.len(),
                    self.keys().shards()
                ),
            ));
        }
        Ok(self
            .read_replies(after, block, count)?
            .iter()
            .flat_map(|notice| notice.ids())
            .collect())
    }

    /// The recorded outcomes of `ids`, in order (`None` where none is yet).
    pub fn outcomes(&mut self, ids: &[TaskId]) -> Result<Vec<Option<Outcome>>, Error> {
        self.fetch_many(ids)
    }
}

/// The smallest stream id after `id` (`<ms>-<n+1>`), for `XTRIM MINID`.
fn after(id: &str) -> String {
    match id.split_once('-') {
        Some((ms, n)) => match n.parse::<u64>() {
            Ok(n) => format!("{ms}-{}", n.saturating_add(1)),
            Err(_) => id.to_owned(),
        },
        None => id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_decode_within_bounds() {
        let bytes = encode(OutputStream::Stderr, b"hello");
        let c = Chunk::decode("3-7", &bytes).unwrap();
        assert_eq!(
            c,
            Chunk {
                attempt: 3,
                n: 7,
                stream: OutputStream::Stderr,
                data: b"hello".to_vec()
            }
        );
        assert!(Chunk::decode("3-7", b"").is_err());
        assert!(Chunk::decode("3-7", b"xdata").is_err());
        assert!(Chunk::decode("37", b"odata").is_err());
        let big = encode(OutputStream::Stdout, &vec![0; MAX_CHUNK + 1]);
        assert!(Chunk::decode("1-1", &big).is_err());
        let max = encode(OutputStream::Stdout, &vec![0; MAX_CHUNK]);
        assert_eq!(Chunk::decode("1-1", &max).unwrap().data.len(), MAX_CHUNK);
        fuzz_decode_chunk(b"1-2\0ohi");
        fuzz_decode_chunk(b"\xff\0");
    }

    #[test]
    fn after_moves_one_past() {
        assert_eq!(after("2-5"), "2-6");
        assert_eq!(after("0-0"), "0-1");
    }
}
