//! The Lua scripts: every broker write that must be atomic or fenced. Each
//! script touches only the keys of one shard (one hash tag), so it runs on
//! Redis Cluster too, and each is safe to run twice (a reply lost with a
//! dropped connection leaves the caller unsure whether it ran).
//!
//! Ownership ("fencing") is read from the group's pending list: entry `id` is
//! the caller's while `XPENDING stream group id id 1` names the caller as its
//! consumer. A sweeper that reclaims a lapsed entry becomes its consumer, so
//! the old holder's late writes are refused.

use std::sync::LazyLock;

use redis::Script;

/// Enqueue, once.
///
/// `KEYS[1]` the shard's stream, `KEYS[2..]` the queued markers of the
/// entry's tasks. `ARGV[1]` the entry's bytes, `ARGV[2]` the markers' TTL (s).
/// Returns the stream id.
///
/// If the first task's marker exists, the entry was added before (this is a
/// repeat): its stream id is returned and nothing is added. Otherwise the entry
/// is added and every marker is set to its stream id.
pub(crate) static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local done = redis.call('GET', KEYS[2])
if done then return done end
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], id, 'EX', ARGV[2])
end
return id
",
    )
});

/// Heartbeat: extend the caller's leases.
///
/// `KEYS[1]` the stream. `ARGV[1]` the group, `ARGV[2]` the caller,
/// `ARGV[3..]` entry ids. Returns the ids the caller no longer holds.
///
/// Each entry still pending to the caller is re-claimed with `XCLAIM ...
/// JUSTID`, which resets its idle time and keeps its delivery count. An entry
/// that another consumer holds, or that is no longer pending, is left alone
/// and reported lost (its task should be stopped).
pub(crate) static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
",
    )
});

/// Sweep: reclaim lapsed entries.
///
/// `KEYS[1]` the stream. `ARGV[1]` the group, `ARGV[2]` the caller,
/// `ARGV[3]` the lease (ms), `ARGV[4]` the scan cursor, `ARGV[5]` the most
/// entries to take. Returns `{next cursor, {{id, deliveries, {field, value,
/// ...}}, ...}}`.
///
/// `XAUTOCLAIM` without `JUSTID` moves entries idle past the lease to the
/// caller and raises their delivery counts; the new counts are read back from
/// the pending list. A repeat finds them no longer idle and takes nothing
/// more: a lost reply costs one more lease, never an entry.
pub(crate) static SWEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {}
for _, e in ipairs(r[2]) do
  if type(e) == 'table' and e[1] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local n = 0
    if #p == 1 then n = p[1][4] end
    out[#out + 1] = {e[1], n, e[2] or {}}
  end
end
return {r[1], out}
",
    )
});

/// Complete: record outcomes and acknowledge, fenced.
///
/// `KEYS[1]` the stream, `KEYS[2]` the client's reply stream, `KEYS[3]` the
/// client's duplicate-run counter, `KEYS[4..]` the result keys of the entry's
/// tasks. `ARGV[1]` the group, `ARGV[2]` the
/// caller, `ARGV[3]` the entry id, `ARGV[4]` the results' TTL (s), `ARGV[5]`
/// the reply stream's length cap, `ARGV[6]` the finished sequence numbers
/// (text, for the notification), `ARGV[7]` how long the entry ran on the
/// worker (ns, for the notification), `ARGV[8..]` one encoded outcome per
/// result key. Returns `{status, written, kept}`:
///
/// * `done`: the caller held the entry. Each outcome was `SET ... NX EX`
///   (`written` new, `kept` already there: first writer wins), the entry was
///   acknowledged and deleted, and the client was notified. An entry
///   delivered `d > 1` times adds `items × (d - 1)` to the duplicate-run
///   counter (once: a repeat finds the entry settled).
/// * `again`: the entry is no longer pending and every result key already
///   holds exactly these outcomes: a repeat (or an identical late result).
///   Nothing changed.
/// * `stale`: another consumer holds the entry, or it was settled with other
///   outcomes: the caller's lease lapsed. Nothing changed.
pub(crate) static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = #KEYS - 3
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 then
  for i = 1, n do
    if redis.call('GET', KEYS[3 + i]) ~= ARGV[7 + i] then return {'stale', 0, 0} end
  end
  return {'again', 0, 0}
end
if p[1][2] ~= ARGV[2] then return {'stale', 0, 0} end
local d = tonumber(p[1][4])
if d > 1 then
  redis.call('INCRBY', KEYS[3], n * (d - 1))
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
local written, kept = 0, 0
for i = 1, n do
  if redis.call('SET', KEYS[3 + i], ARGV[7 + i], 'NX', 'EX', ARGV[4]) then
    written = written + 1
  else
    kept = kept + 1
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'entry', ARGV[3], 'seqs', ARGV[6], 'ns', ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {'done', written, kept}
",
    )
});

/// Dead-letter an entry, fenced.
///
/// `KEYS[1]` the stream, `KEYS[2]` the dead-letter stream, `KEYS[3]` the
/// client's reply stream, `KEYS[4..]` the result keys of the entry's tasks
/// (none for a foreign entry). `ARGV[1]` the group, `ARGV[2]` the caller,
/// `ARGV[3]` the entry id, `ARGV[4]` the results' TTL (s), `ARGV[5]` the reply
/// stream's cap, `ARGV[6]` the reason, `ARGV[7]` the delivery count,
/// `ARGV[8]` the sequence numbers (text), `ARGV[9]` the encoded `lost`
/// outcome. Returns `dead`, `gone` or `stale`:
///
/// * `dead`: the caller held the entry. A dead letter (`dead.entry`,
///   `dead.reason`, `dead.deliveries`, then the entry's own fields, at most
///   500 of them) was added, each task's outcome set to `lost` unless one was
///   recorded already (`NX`), the entry acknowledged and deleted, the client
///   notified.
/// * `gone`: the entry is no longer pending (a repeat, or settled by another).
/// * `stale`: another consumer holds it.
pub(crate) static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 then return 'gone' end
if p[1][2] ~= ARGV[2] then return 'stale' end
local fields = {'dead.entry', ARGV[3], 'dead.reason', ARGV[6], 'dead.deliveries', ARGV[7]}
local r = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
if #r == 1 and type(r[1][2]) == 'table' then
  local f = r[1][2]
  for i = 1, math.min(#f, 1000) - 1, 2 do
    fields[#fields + 1] = f[i]
    fields[#fields + 1] = f[i + 1]
  end
end
redis.call('XADD', KEYS[2], '*', unpack(fields))
for i = 4, #KEYS do
  redis.call('SET', KEYS[i], ARGV[9], 'NX', 'EX', ARGV[4])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
if #KEYS >= 4 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'entry', ARGV[3], 'seqs', ARGV[8])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
return 'dead'
",
    )
});

/// Register a worker, or renew its record.
///
/// `KEYS[1]` the worker set, `KEYS[2]` the worker's record. `ARGV[1]` the
/// worker's name, `ARGV[2]` the record's TTL (ms), `ARGV[3..]` field, value
/// pairs. Sets the record (replacing the old one) with the TTL, scores the
/// worker by the server's clock (ms) and drops names not seen for a TTL.
/// Returns the server time (ms).
pub(crate) static REGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'seen_ms', now, unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return now
",
    )
});

/// Cancel one task.
///
/// `KEYS[1]` the stream, `KEYS[2]` the task's queued marker, `KEYS[3]` and
/// `KEYS[4]` the markers of the client's previous and next sequence numbers
/// on the same shard, `KEYS[5]` the task's result key, `KEYS[6]` the client's
/// reply stream, `KEYS[7]` the shard's delayed set, `KEYS[8]` the delayed
/// entry key under this task's token. `ARGV[1]` the group, `ARGV[2]` the TTL
/// (s), `ARGV[3]` the encoded `cancelled` outcome, `ARGV[4]` the reply
/// stream's cap, `ARGV[5]` the task's sequence number (text), `ARGV[6]` its
/// token. Returns:
///
/// * `unknown`: no such task was enqueued (or its records expired).
/// * `settled`: it has an outcome already; nothing changed.
/// * `removed`: it was waiting in the stream, or delayed (its marker reads
///   `d:<token>`); the entry is deleted, so no worker will take it, and its
///   outcome is `cancelled`.
/// * `stopping`: a worker holds it; the entry is acknowledged and deleted,
///   so that worker's next heartbeat reports it lost (the worker stops it)
///   and its late completion is refused; its outcome is `cancelled`.
/// * `marked`: it shares its entry with other tasks (a map chunk), which go
///   on; its outcome is `cancelled`, which a later completion keeps.
///
/// The entry's other tasks are found through the markers: every task of an
/// entry has consecutive sequence numbers and a marker holding the entry's
/// stream id. A repeat finds the outcome recorded: `settled`.
pub(crate) static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local id = redis.call('GET', KEYS[2])
if not id then return 'unknown' end
if not redis.call('SET', KEYS[5], ARGV[3], 'NX', 'EX', ARGV[2]) then return 'settled' end
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[4], '*', 'entry', id, 'seqs', ARGV[5])
redis.call('EXPIRE', KEYS[6], ARGV[2])
if redis.call('GET', KEYS[3]) == id or redis.call('GET', KEYS[4]) == id then
  return 'marked'
end
if string.sub(id, 1, 2) == 'd:' then
  redis.call('ZREM', KEYS[7], ARGV[6])
  redis.call('DEL', KEYS[8])
  return 'removed'
end
local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
redis.call('XACK', KEYS[1], ARGV[1], id)
redis.call('XDEL', KEYS[1], id)
if #p == 1 then return 'stopping' end
return 'removed'
",
    )
});

/// Enqueue a delayed entry, once.
///
/// `KEYS[1]` the shard's delayed set, `KEYS[2]` the delayed entry's key,
/// `KEYS[3..]` the queued markers of its tasks. `ARGV[1]` the entry's bytes,
/// `ARGV[2]` the TTL of the markers and the entry (s), `ARGV[3]` the delay
/// (ms, from the server's clock now), `ARGV[4]` the entry's token. Returns
/// the marker, `d:<token>`.
///
/// If the first task's marker exists this is a repeat: the marker is
/// returned and nothing changes. Otherwise the bytes are stored, the token
/// scored by its due time on the server's clock (so clients' clocks do not
/// matter), and every marker set to `d:<token>`.
pub(crate) static ENQUEUE_DELAYED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local done = redis.call('GET', KEYS[3])
if done then return done end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
local m = 'd:' .. ARGV[4]
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], m, 'EX', ARGV[2])
end
return m
",
    )
});

/// Which delayed entries are due.
///
/// `KEYS[1]` the shard's delayed set. `ARGV[1]` the most tokens to return.
/// Returns `{wait, {token, ...}}`: the entries due now on the server's
/// clock, and how many ms until the first entry not returned is due (0 when
/// more are due than were returned, -1 when there is none). Reads only.
pub(crate) static DUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local wait = -1
if #due >= tonumber(ARGV[1]) then
  wait = 0
else
  local first = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #first == 2 then wait = math.max(0, tonumber(first[2]) - now) end
end
return {wait, due}
",
    )
});

/// Move one due delayed entry into the stream.
///
/// `KEYS[1]` the delayed set, `KEYS[2]` the shard's stream, `KEYS[3]` the
/// delayed entry's key, `KEYS[4..]` its tasks' queued markers (none for bytes
/// that do not decode: the entry then travels as it is and its worker
/// dead-letters it). `ARGV[1]` the token. Returns the new stream id, or nil
/// when the token is no longer in the set (promoted by another worker, or
/// cancelled): safe to repeat. Markers still reading `d:<token>` are set to
/// the stream id (keeping their TTL), so a cancel finds the entry there.
pub(crate) static PROMOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return false end
redis.call('ZREM', KEYS[1], ARGV[1])
local bytes = redis.call('GET', KEYS[3])
if not bytes then return false end
local id = redis.call('XADD', KEYS[2], '*', 'e', bytes)
redis.call('DEL', KEYS[3])
local m = 'd:' .. ARGV[1]
for i = 4, #KEYS do
  if redis.call('GET', KEYS[i]) == m then
    redis.call('SET', KEYS[i], id, 'KEEPTTL')
  end
end
return id
",
    )
});
