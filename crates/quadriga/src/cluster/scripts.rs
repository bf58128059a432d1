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

/// Enqueue entries, each once.
///
/// `KEYS[1]` the shard's stream, `KEYS[2..]` the records of the entries
/// (`keys.rs`), one per entry. `ARGV[1]` the records' TTL (s), then for each
/// entry its bytes, its first item's index in its block and its item count.
/// Returns the entries' stream ids, in order.
///
/// An entry whose record exists was added before (this is a repeat): its
/// stream id is returned and nothing is added. Otherwise the entry is added
/// and its record made (`at`, `lo`, `n`).
pub(crate) static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for k = 2, #KEYS do
  local a = 2 + (k - 2) * 3
  local id = redis.call('HGET', KEYS[k], 'at')
  if not id then
    id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[a])
    redis.call('HSET', KEYS[k], 'at', id, 'lo', ARGV[a + 1], 'n', ARGV[a + 2])
    redis.call('EXPIRE', KEYS[k], ARGV[1])
  end
  out[#out + 1] = id
end
return out
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
/// client's duplicate-run counter, `KEYS[4]` the entry's record. `ARGV[1]`
/// the group, `ARGV[2]` the caller, `ARGV[3]` the entry id, `ARGV[4]` the
/// outcomes' TTL (s), `ARGV[5]` the reply stream's length cap, `ARGV[6]` the
/// entry's first sequence number, `ARGV[7]` its item count, `ARGV[8]` how
/// long the entry ran on the worker (ns, for the notification), `ARGV[9]`
/// the encoded outcomes (one list, item order), `ARGV[10]` the largest list
/// carried inline in the notification (bytes). Returns `{status, written,
/// kept}`:
///
/// * `done`: the caller held the entry. The outcomes were stored in the
///   record's `out` unless it had them (first writer wins); items that had
///   an outcome already (`x:<index>`, a cancel) keep it (`kept`), the rest
///   are `written`. The entry was acknowledged and deleted, and the client
///   notified, with the outcomes inline when no item kept an earlier one and
///   they are small. An entry delivered `d > 1` times adds `items × (d - 1)`
///   to the duplicate-run counter (once: a repeat finds the entry settled).
/// * `again`: the entry is no longer pending and its record holds exactly
///   these outcomes: a repeat (or an identical late result). Nothing changed.
/// * `stale`: another consumer holds the entry, or it was settled otherwise:
///   the caller's lease lapsed. Nothing changed.
pub(crate) static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = tonumber(ARGV[7])
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 then
  if redis.call('HGET', KEYS[4], 'out') == ARGV[9] then return {'again', 0, 0} end
  return {'stale', 0, 0}
end
if p[1][2] ~= ARGV[2] then return {'stale', 0, 0} end
local d = tonumber(p[1][4])
if d > 1 then
  redis.call('INCRBY', KEYS[3], n * (d - 1))
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
local kept = tonumber(redis.call('HGET', KEYS[4], 'nx') or '0')
local written = n - kept
if redis.call('HSETNX', KEYS[4], 'out', ARGV[9]) == 0 then
  written = 0
  kept = n
end
redis.call('EXPIRE', KEYS[4], ARGV[4])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
if kept == 0 and #ARGV[9] <= tonumber(ARGV[10]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'entry', ARGV[3], 'first', ARGV[6], 'n', ARGV[7], 'ns', ARGV[8], 'out', ARGV[9])
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'entry', ARGV[3], 'first', ARGV[6], 'n', ARGV[7], 'ns', ARGV[8])
end
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {'done', written, kept}
",
    )
});

/// Dead-letter an entry, fenced.
///
/// `KEYS[1]` the stream, `KEYS[2]` the dead-letter stream, `KEYS[3]` the
/// client's reply stream, `KEYS[4]` the entry's record (absent for a foreign
/// entry). `ARGV[1]` the group, `ARGV[2]` the caller, `ARGV[3]` the entry
/// id, `ARGV[4]` the outcomes' TTL (s), `ARGV[5]` the reply stream's cap,
/// `ARGV[6]` the reason, `ARGV[7]` the delivery count, `ARGV[8]` the entry's
/// first sequence number, `ARGV[9]` its item count, `ARGV[10]` the encoded
/// `lost` outcome. Returns `dead`, `gone` or `stale`:
///
/// * `dead`: the caller held the entry. A dead letter (`dead.entry`,
///   `dead.reason`, `dead.deliveries`, then the entry's own fields, at most
///   500 of them) was added, the record's `dead` set to the `lost` outcome
///   unless the entry has outcomes (items with an outcome of their own keep
///   it), the entry acknowledged and deleted, the client notified. The
///   notice never carries the outcome inline: the client reads the record,
///   so a dead letter requeued before the client looked (`dead.rs`) leaves
///   its handle waiting for the re-run instead of `lost`.
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
if #KEYS >= 4 then
  if redis.call('HEXISTS', KEYS[4], 'out') == 0 then
    redis.call('HSETNX', KEYS[4], 'dead', ARGV[10])
  end
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
if #KEYS >= 4 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'entry', ARGV[3], 'first', ARGV[8], 'n', ARGV[9])
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
/// `KEYS[1]` the stream, `KEYS[2]` the task's entry's record, `KEYS[3]` the
/// client's reply stream, `KEYS[4]` the shard's delayed set, `KEYS[5]` the
/// delayed entry key under this task's token. `ARGV[1]` the group, `ARGV[2]`
/// the TTL (s), `ARGV[3]` the encoded `cancelled` outcome, `ARGV[4]` the
/// reply stream's cap, `ARGV[5]` the task's sequence number, `ARGV[6]` its
/// token, `ARGV[7]` its index in its block. Returns:
///
/// * `unknown`: no such task was enqueued (no record, or the index is not
///   one of its items), or its records expired.
/// * `settled`: it has an outcome already; nothing changed.
/// * `removed`: it was waiting in the stream, or delayed (its record's `at`
///   reads `d:<token>`); the entry is deleted, so no worker will take it, and
///   its outcome is `cancelled`.
/// * `stopping`: a worker holds it; the entry is acknowledged and deleted,
///   so that worker's next heartbeat reports it lost (the worker stops it)
///   and its late completion is refused; its outcome is `cancelled`.
/// * `marked`: it shares its entry with other tasks (a map chunk), which go
///   on; its outcome is `cancelled` (`x:<index>`), which a later completion
///   keeps.
///
/// A repeat finds the outcome recorded: `settled`.
pub(crate) static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local f = redis.call('HMGET', KEYS[2], 'at', 'lo', 'n', 'out', 'dead')
local id = f[1]
if not id then return 'unknown' end
local i, lo, n = tonumber(ARGV[7]), tonumber(f[2]), tonumber(f[3])
if not lo or not n or i < lo or i >= lo + n then return 'unknown' end
if f[4] or f[5] then return 'settled' end
if redis.call('HSETNX', KEYS[2], 'x:' .. ARGV[7], ARGV[3]) == 0 then return 'settled' end
redis.call('HINCRBY', KEYS[2], 'nx', 1)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'entry', id, 'first', ARGV[5], 'n', 1, 'all', ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[2])
if n > 1 then return 'marked' end
if string.sub(id, 1, 2) == 'd:' then
  redis.call('ZREM', KEYS[4], ARGV[6])
  redis.call('DEL', KEYS[5])
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
/// `KEYS[3]` its record. `ARGV[1]` the entry's bytes, `ARGV[2]` the TTL of
/// the record and the entry (s), `ARGV[3]` the delay (ms, from the server's
/// clock now), `ARGV[4]` the entry's token, `ARGV[5]` its first item's index
/// in its block, `ARGV[6]` its item count. Returns the marker, `d:<token>`.
///
/// If the record exists this is a repeat: its `at` is returned and nothing
/// changes. Otherwise the bytes are stored, the token scored by its due time
/// on the server's clock (so clients' clocks do not matter), and the record
/// made with `at` = `d:<token>`.
pub(crate) static ENQUEUE_DELAYED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local done = redis.call('HGET', KEYS[3], 'at')
if done then return done end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
local m = 'd:' .. ARGV[4]
redis.call('HSET', KEYS[3], 'at', m, 'lo', ARGV[5], 'n', ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[2])
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
/// delayed entry's key, `KEYS[4]` the record of the entry whose first task
/// the token names. `ARGV[1]` the token. Returns the new stream id, or nil
/// when the token is no longer in the set (promoted by another worker, or
/// cancelled): safe to repeat. A record whose `at` still reads `d:<token>`
/// is pointed at the stream id (its TTL kept), so a cancel finds the entry
/// there. Bytes that do not decode travel as they are (their worker
/// dead-letters them).
pub(crate) static PROMOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return false end
redis.call('ZREM', KEYS[1], ARGV[1])
local bytes = redis.call('GET', KEYS[3])
if not bytes then return false end
local id = redis.call('XADD', KEYS[2], '*', 'e', bytes)
redis.call('DEL', KEYS[3])
if redis.call('HGET', KEYS[4], 'at') == 'd:' .. ARGV[1] then
  redis.call('HSET', KEYS[4], 'at', id)
end
return id
",
    )
});
