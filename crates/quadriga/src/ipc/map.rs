//! [`SharedMap`]: a key-value map in shared memory, for the job Python gives to
//! `Manager().dict()`, without the manager.
//!
//! Python's manager is one server process: every `d[k]` is a pickled round
//! trip through it (tens of microseconds), all clients queue behind it, and
//! `d[k] += 1` is a read and a write with a race between them. Here every
//! process maps the table itself, and an operation takes one lock among many.
//!
//! # Layout and invariants
//!
//! The body is `shards` heads (a power of two of them, 64 bytes each, packed
//! together), then `shards` equal shards. A key lives in the shard its hash
//! picks (FNV-1a of its postcard encoding, then mixed; the same in every
//! process). Shard `s` is:
//!
//! * head `s`: its robust lock, `len`, and a *pending replacement* record;
//! * `per_shard` state bytes, `per_shard` hashes;
//! * `per_shard` entries of `[key_len u32][value_len u32][key][value]`, at
//!   most `entry_bytes` of key and value together.
//!
//! A state byte is `EMPTY` (0) or `FULL`: its high bit set, and seven bits of
//! the key's hash below it, so a lookup reads the key's hash and key only
//! where those bits match. Making a map writes only the heads (the shards are
//! zero pages, and zero is `EMPTY`): one or two bytes per key of capacity.
//!
//! Everything in a shard is read and written under its lock, except `len`,
//! which [`SharedMap::len`] reads without it. An entry is *in the map* exactly
//! when its state is `FULL`, and every change commits with one store:
//!
//! * **insert**: write the entry into an `EMPTY` slot, then store `FULL`;
//! * **remove**: store `EMPTY`;
//! * **replace** (a new value for a present key): write the new entry into an
//!   `EMPTY` slot, record `(old, new)` as pending, store `FULL` in the new
//!   slot, `EMPTY` in the old one, then clear the record.
//!
//! A process killed anywhere in these leaves either the old map or the new
//! one, except for the one window where the key is `FULL` in both slots of a
//! replacement; the next taker of the lock is told its owner died
//! ([`RawRobustMutex`]) and repairs the shard: it finishes the recorded
//! replacement if its new slot is `FULL`, forgets it otherwise, drops entries
//! whose state or lengths do not fit, and recounts `len`. The repair only
//! ever moves towards that end state, so a repairer killed in turn leaves a
//! shard that the next taker repairs the same way. The user sees each
//! operation as done or not done, never half done, and never a deadlock.
//! Each store above, and each step of the repair, is a named
//! `fault_point!`; tests/ipc_map.rs SIGKILLs a process after every one of
//! them and checks the exact contents that the next user sees.
//!
//! Stores that commit use `Release` and the reads of the repair `Acquire`, so
//! a repairer sees what the dead writer stored before its commit.
//!
//! # Room
//!
//! A new key never takes a shard's last free slot: it is kept for a
//! replacement, which needs a free slot beside the old one, so a present key
//! can always be given a new value. The other slots are sized by
//! `Layout::for_capacity`: up to 64 keys, one shard with a slot for each, so
//! `capacity` keys always fit; beyond, shards of 32 to 64 keys on average
//! (fewer below 4096 keys, so that there are at least 64 shards, up to 16
//! keys each: writers in several processes then rarely meet on one lock),
//! with enough slots that `capacity` keys with random hashes fill some shard
//! with odds below 10⁻¹² (a Chernoff bound per shard, times the number of
//! shards). That is about 2 to 3 slots per key of capacity (`capacity` + 1
//! up to 64 keys; up to 5 below 2000 keys, for those smaller shards; fewer,
//! in larger shards, beyond 2²⁶ keys, where the number of shards stops
//! growing), at most 150 per shard up to 2²⁶ keys. A new key whose shard is full gets [`ErrorKind::Full`]
//! and nothing changes.
//!
//! There is no loom model of this module on purpose: it has no lock-free
//! path. Its atomics order commits for a crash, not for a racing reader, and
//! that is what the crash-point tests check.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::shm::robust::RawRobustMutex;
use crate::shm::{self, Kind, Region};
use crate::shm::{Error, ErrorKind};

/// A slot's state byte: `EMPTY`, or `FULL` with seven bits of the key's hash
/// beside it ([`tag`]), so that a lookup compares its key's hash and key only
/// where the tag matches (about one slot in 128 of the others).
const EMPTY: u8 = 0;
const FULL: u8 = 0x80;

/// The state byte of a full slot whose key hashes to `hash`. The shard is
/// picked by the hash's high half, the tag is from its low bits.
fn tag(hash: u64) -> u8 {
    FULL | (hash as u8 & 0x7f)
}

fn is_full(state: u8) -> bool {
    state & FULL != 0
}
const NONE: u32 = u32::MAX;

const MAX_SHARDS: u64 = 1 << 20;
const MAX_PER_SHARD: u64 = 1 << 16;
const MAX_ENTRY_BYTES: u64 = 1 << 26;

/// The fourth layout parameter: which arrangement of the body this is (the
/// first, with each head inside its shard, wrote 0 there).
const ARRANGEMENT: u64 = 2;

/// A capacity up to this gets one shard with a slot for every key: it is
/// certain to hold them all.
const ONE_SHARD_UP_TO: usize = 64;
/// Beyond that, shards are sized for more than half of this many keys each,
/// and at most this many.
const KEYS_PER_SHARD: usize = 64;
/// ... but never fewer than this many shards while they would average 16
/// keys or more: with fewer, writers in several processes meet on the same
/// lock too often (measured, two threads writing 1000 keys: 175 ns a write
/// at 64 shards, 225 ns at 16). Small maps cost more slots per key for it,
/// few in all.
const MIN_SHARDS: usize = 64;
/// ... with enough slots that `capacity` keys with random hashes fill some
/// shard with at most these odds.
const FULL_ODDS: f64 = 1e-12;

#[repr(C)]
struct ShardHead {
    lock: RawRobustMutex,
    len: AtomicU32,
    pending_old: AtomicU32,
    pending_new: AtomicU32,
}

/// Bytes per head: the heads are packed together at the start of the body,
/// so that making a map writes `shards * HEAD` bytes, not a page per shard.
const HEAD: usize = 64;
const _: () = assert!(std::mem::size_of::<ShardHead>() <= HEAD);
const _: () = assert!(std::mem::align_of::<ShardHead>() <= HEAD);

/// State bytes compared at once by a lookup.
const GROUP: usize = 16;

fn round_up(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|n| n / to * to)
}

/// Where things are in the body; computed from the header's parameters with
/// checked arithmetic, so a hostile header cannot point outside the memory.
///
/// The body is `shards` heads of `HEAD` bytes, then `shards` shards of
/// `stride` bytes from `data` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    shards: usize,
    per_shard: usize,
    entry_bytes: usize,
    /// Where the first shard starts.
    data: usize,
    /// Offsets within a shard.
    states: usize,
    hashes: usize,
    entries: usize,
    entry_stride: usize,
    /// Bytes per shard, and in all.
    stride: usize,
    total: usize,
}

impl Layout {
    fn new(shards: u64, per_shard: u64, entry_bytes: u64) -> Option<Self> {
        if !shards.is_power_of_two()
            || shards > MAX_SHARDS
            // One slot is kept for replacements: a shard needs another.
            || !(2..=MAX_PER_SHARD).contains(&per_shard)
            || entry_bytes == 0
            || entry_bytes > MAX_ENTRY_BYTES
        {
            return None;
        }
        let (shards, per_shard, entry_bytes) =
            (shards as usize, per_shard as usize, entry_bytes as usize);
        let data = round_up(shards.checked_mul(HEAD)?, 128)?;
        let states = 0;
        // The state bytes are read 16 at a time; the padding stays EMPTY.
        let hashes = round_up(per_shard, GROUP)?;
        let entries = hashes.checked_add(per_shard.checked_mul(8)?)?;
        let entry_stride = round_up(entry_bytes.checked_add(8)?, 8)?;
        let stride = round_up(
            entries.checked_add(entry_stride.checked_mul(per_shard)?)?,
            64,
        )?;
        let total = data.checked_add(stride.checked_mul(shards)?)?;
        Some(Self {
            shards,
            per_shard,
            entry_bytes,
            data,
            states,
            hashes,
            entries,
            entry_stride,
            stride,
            total,
        })
    }

    /// A layout for at least `capacity` entries: one shard with a slot for
    /// each up to `ONE_SHARD_UP_TO`, else shards for `KEYS_PER_SHARD / 2` to
    /// `KEYS_PER_SHARD` keys each (more once there are `MAX_SHARDS`; fewer,
    /// 8 to 64, while that makes fewer than `MIN_SHARDS` shards), with
    /// the slots [`slots_for`] says. Each shard has one slot more, kept for
    /// replacements.
    fn for_capacity(capacity: usize, entry_bytes: usize) -> Option<Self> {
        let (shards, slots) = if capacity <= ONE_SHARD_UP_TO {
            (1, capacity)
        } else {
            let by_size = capacity
                .div_ceil(KEYS_PER_SHARD)
                .checked_next_power_of_two()?;
            let for_writers = capacity.div_ceil(16).next_power_of_two().min(MIN_SHARDS);
            let shards = by_size.max(for_writers).min(MAX_SHARDS as usize);
            (shards, slots_for(capacity, shards))
        };
        Self::new(
            shards as u64,
            slots.checked_add(1)? as u64,
            entry_bytes as u64,
        )
    }
}

/// How many keys each of `shards` shards must take so that `capacity` keys,
/// spread by a random hash, overflow none with odds above `FULL_ODDS`; never
/// more than `capacity` (then none can overflow).
///
/// A shard's load is binomial, `n = capacity` draws of `p = 1 / shards`, with
/// mean `mu = n p`. By the Chernoff bound, `P(load >= (1 + d) mu) <=
/// exp(-mu ((1 + d) ln(1 + d) - d))` for `d > 0`, and by the union bound the
/// odds that some shard gets more than `slots` are at most `shards` times
/// that. The answer is the least `slots` that brings this under `FULL_ODDS`.
fn slots_for(capacity: usize, shards: usize) -> usize {
    let mu = capacity as f64 / shards as f64;
    let allowed = (FULL_ODDS / shards as f64).ln();
    let mut slots = mu.ceil() as usize;
    // Past the largest shard the layout is refused anyway: stop counting.
    while slots < capacity && slots <= MAX_PER_SHARD as usize {
        let d = (slots + 1) as f64 / mu - 1.0;
        if -mu * ((1.0 + d) * d.ln_1p() - d) <= allowed {
            return slots;
        }
        slots += 1;
    }
    capacity
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV alone spreads short keys badly over the high bits that pick the
    // shard; a 64-bit finaliser (murmur3's) mixes every bit into every other.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A key-value map in shared memory, usable from every thread and process
/// that holds a clone. It stays consistent when a process dies mid-write:
/// every change commits with one store, and the next user of a dead writer's
/// shard finishes or forgets what it left.
///
/// Keys and values are any serde types; they are stored encoded, so `get`
/// returns a copy. Equal keys must encode to equal bytes (true of integers,
/// strings, tuples and derived structs; not of maps with unordered keys).
/// As with `HashMap`, a key is looked up by any borrowed form of it (`&str`
/// for a `String` key), which must encode as the owned form does.
///
/// ```
/// use quadriga::ipc::SharedMap;
///
/// let scores: SharedMap<String, u64> = SharedMap::new(1000)?;
/// scores.insert("ada", &36)?;
/// // An atomic read-modify-write, unlike `d[k] += 1` on a Manager dict.
/// scores.update("ada", |v| Some(v.unwrap_or(0) + 1))?;
/// assert_eq!(scores.get("ada")?, Some(37));
/// assert_eq!(scores.remove("ada")?, Some(37));
/// assert!(scores.is_empty());
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
///
/// Passed in a task's input, the map reaches a worker process:
///
/// ```
/// use quadriga::ipc::SharedMap;
/// use quadriga::ProcessPool;
///
/// #[quadriga::task]
/// fn count_words(map: SharedMap<String, u32>, text: String) {
///     for word in text.split_whitespace() {
///         map.update(word, |n| Some(n.unwrap_or(0) + 1)).unwrap();
///     }
/// }
///
/// let pool = ProcessPool::new(2)?;
/// let map = SharedMap::new(100)?;
/// let lines = ["a b", "b c", "c c"].map(|l| (map.clone(), l.to_string()));
/// for done in pool.map(count_words, lines) {
///     done?;
/// }
/// assert_eq!(map.get("c")?, Some(3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Limits
///
/// * **Fixed size.** The capacity and the largest entry are set when the map
///   is made ([`SharedMap::new`], [`SharedMap::with_entry_bytes`]; a
///   capacity of 0 is refused), and the map never grows. A new key that finds
///   no room gets [`ErrorKind::Full`]; an entry whose key and value encode to
///   more than [`SharedMap::entry_bytes`] gets [`ErrorKind::TooLarge`].
///   Giving a present key a new value never fails for lack of room.
/// * **Capacity is odds, not a promise, beyond 64 keys.** Keys are spread
///   over shards by their hash. Up to a capacity of 64 there is one shard,
///   and `capacity` keys always fit. Beyond that each shard has room for 2
///   to 3 times its share, so that `capacity` keys fill a shard first with
///   odds below 10⁻¹² if their hashes behave randomly. The hash is not keyed:
///   keys chosen to collide (by an adversary, say) fill one shard after as
///   few keys as a shard holds (under 150 up to a capacity of 2²⁶), so do not
///   count on the capacity for keys from untrusted input.
/// * **Memory.** The map reserves address space for its slots (about 2 to 3
///   per key of capacity, up to 5 for maps under 2000 keys, each about `entry_bytes` + 17 bytes; about 630 MB for
///   `SharedMap::<u64, u64>::new(1_000_000)`), but only the pages written are
///   allocated: a new map writes 1 to 2 bytes per key of capacity (1 MiB for
///   that million), a shard in use takes a page or two, and a full map about
///   1.3 times what its slots in use take (330 MiB for that million). Every
///   process that holds the map maps all of it, so a worker with a
///   [`memory_limit`](crate::ProcessPoolBuilder::memory_limit) (`RLIMIT_AS`)
///   counts the whole reservation.
/// * **Costs.** An operation locks one shard and scans that shard's state
///   bytes (at most 150 of them up to 2²⁶ keys of capacity, 16 compared at
///   once). [`SharedMap::len`] and `Debug` read every shard's count;
///   [`SharedMap::clear`] and [`SharedMap::to_vec`] lock every shard in turn.
pub struct SharedMap<K, V> {
    region: Arc<Region>,
    layout: Layout,
    // Keys and values live encoded in shared memory: the map is Send + Sync
    // whatever K and V are.
    _types: PhantomData<Types<K, V>>,
}

/// Neither owned nor shared across threads: only named.
type Types<K, V> = fn(K, V) -> (K, V);

impl<K, V> Clone for SharedMap<K, V> {
    fn clone(&self) -> Self {
        Self {
            region: Arc::clone(&self.region),
            layout: self.layout,
            _types: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for SharedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMap")
            .field("len", &self.len())
            .field("shards", &self.layout.shards)
            .field("entry_bytes", &self.layout.entry_bytes)
            .finish()
    }
}

/// A shard's lock, held; unlocks on drop.
struct Held<'a, K, V> {
    map: &'a SharedMap<K, V>,
    shard: usize,
}

impl<K, V> Drop for Held<'_, K, V> {
    fn drop(&mut self) {
        // SAFETY: `Held` exists only while this thread holds the shard's lock.
        unsafe { self.map.head(self.shard).lock.unlock() };
    }
}

impl<K, V> Held<'_, K, V> {
    fn base(&self) -> *mut u8 {
        let layout = &self.map.layout;
        // SAFETY: `shard < shards`, so the shard is inside the body.
        unsafe {
            self.map
                .region
                .body()
                .add(layout.data + self.shard * layout.stride)
        }
    }

    fn state(&self, i: usize) -> &AtomicU8 {
        debug_assert!(i < self.map.layout.per_shard);
        // SAFETY: `i < per_shard`: inside the shard's state bytes.
        unsafe {
            &*self
                .base()
                .add(self.map.layout.states + i)
                .cast::<AtomicU8>()
        }
    }

    fn hash(&self, i: usize) -> *mut u64 {
        // SAFETY: `i < per_shard`: inside the shard's hashes, 8-byte aligned.
        unsafe { self.base().add(self.map.layout.hashes + 8 * i).cast() }
    }

    fn entry(&self, i: usize) -> *mut u8 {
        // SAFETY: `i < per_shard`: inside the shard's entries.
        unsafe {
            self.base()
                .add(self.map.layout.entries + i * self.map.layout.entry_stride)
        }
    }

    /// The entry's key and value, or `None` if its lengths do not fit (the
    /// memory was written by someone else than this code).
    fn parts(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let e = self.entry(i);
        // SAFETY: the entry holds two u32 lengths then `entry_bytes` bytes;
        // each length is read once (volatile: another process may write it,
        // and the value checked must be the value used) and checked before
        // any slice is made.
        unsafe {
            let klen = e.cast::<u32>().read_volatile() as usize;
            let vlen = e.add(4).cast::<u32>().read_volatile() as usize;
            if klen.checked_add(vlen)? > self.map.layout.entry_bytes {
                return None;
            }
            let key = std::slice::from_raw_parts(e.add(8), klen);
            let value = std::slice::from_raw_parts(e.add(8 + klen), vlen);
            Some((key, value))
        }
    }

    /// The first slot below `per_shard` whose state is `want` and that
    /// passes `check`. The states are compared a group at a time, which the
    /// compiler turns into a few vector instructions.
    fn scan(&self, want: u8, mut check: impl FnMut(usize) -> bool) -> Option<usize> {
        let per_shard = self.map.layout.per_shard;
        let len = per_shard.next_multiple_of(GROUP);
        // SAFETY: the state bytes and their padding are `len` bytes inside the
        // shard. Only the holder of the shard's lock writes them, that is us,
        // and not while this slice lives: the atomics are for a crash, not
        // for a racing writer (see the module docs).
        let states =
            unsafe { std::slice::from_raw_parts(self.base().add(self.map.layout.states), len) };
        for (g, group) in states.chunks_exact(GROUP).enumerate() {
            let mut hits = 0_u32;
            for (j, &s) in group.iter().enumerate() {
                hits |= u32::from(s == want) << j;
            }
            while hits != 0 {
                let i = g * GROUP + hits.trailing_zeros() as usize;
                if i >= per_shard {
                    return None;
                }
                if check(i) {
                    return Some(i);
                }
                hits &= hits - 1;
            }
        }
        None
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        self.scan(tag(hash), |i| {
            // SAFETY: in range; under the lock.
            let stored = unsafe { self.hash(i).read() };
            stored == hash && self.parts(i).is_some_and(|(k, _)| k == key)
        })
    }

    fn free_slot(&self) -> Option<usize> {
        self.scan(EMPTY, |_| true)
    }

    /// Writes an entry into an `EMPTY` slot (not yet in the map).
    fn write(&self, i: usize, hash: u64, key: &[u8], value: &[u8]) {
        debug_assert!(key.len() + value.len() <= self.map.layout.entry_bytes);
        let e = self.entry(i);
        // SAFETY: the slot is EMPTY and we hold the lock: no one reads it;
        // the caller checked that key and value fit.
        unsafe {
            self.hash(i).write(hash);
            e.cast::<u32>().write(key.len() as u32);
            e.add(4).cast::<u32>().write(value.len() as u32);
            std::ptr::copy_nonoverlapping(key.as_ptr(), e.add(8), key.len());
            std::ptr::copy_nonoverlapping(value.as_ptr(), e.add(8 + key.len()), value.len());
        }
    }

    fn head(&self) -> &ShardHead {
        self.map.head(self.shard)
    }

    /// Stores `key` → `value`: into a free slot, then committed as a new
    /// entry, or as the replacement of the entry at `old`. Returns `false`,
    /// changing nothing, if there is no room.
    ///
    /// A new key may not take a shard's last free slot: that one is kept for
    /// replacements, which write the new value beside the old one before the
    /// old one is let go. So a key that is present can always be given a new
    /// value, even in a full shard.
    fn put(&self, hash: u64, key: &[u8], value: &[u8], old: Option<usize>) -> bool {
        if old.is_none()
            && self.head().len.load(Ordering::Relaxed) as usize + 1 >= self.map.layout.per_shard
        {
            return false;
        }
        // With one slot kept back there is always one free; only memory
        // overwritten by someone else could make this fail.
        let Some(slot) = self.free_slot() else {
            return false;
        };
        self.write(slot, hash, key, value);
        match old {
            Some(o) => self.commit_replace(o, slot, hash),
            None => self.commit_insert(slot, hash),
        }
        true
    }

    // The `fault_point!`s below name every step of every change, for the
    // crash tests (tests/ipc_map.rs): a process can be SIGKILLed after any
    // of them, holding the lock.

    fn commit_insert(&self, i: usize, hash: u64) {
        crate::fault_point!("map.insert.written");
        // The commit.
        self.state(i).store(tag(hash), Ordering::Release);
        crate::fault_point!("map.insert.committed");
        self.head().len.fetch_add(1, Ordering::Relaxed);
        crate::fault_point!("map.insert.counted");
    }

    fn commit_replace(&self, old: usize, new: usize, hash: u64) {
        let head = self.head();
        crate::fault_point!("map.replace.written");
        head.pending_old.store(old as u32, Ordering::Release);
        crate::fault_point!("map.replace.recorded_old");
        head.pending_new.store(new as u32, Ordering::Release);
        crate::fault_point!("map.replace.recorded");
        // The commit: the key is in both slots until the next store, and the
        // record says which one goes.
        self.state(new).store(tag(hash), Ordering::Release);
        crate::fault_point!("map.replace.new_full");
        self.state(old).store(EMPTY, Ordering::Release);
        crate::fault_point!("map.replace.old_empty");
        head.pending_new.store(NONE, Ordering::Release);
        crate::fault_point!("map.replace.done");
    }

    fn commit_remove(&self, i: usize) {
        // The commit.
        self.state(i).store(EMPTY, Ordering::Release);
        crate::fault_point!("map.remove.committed");
        // Saturating: hostile state bytes (a FULL the count never counted)
        // must not wrap the count round to four billion.
        let _ = self
            .head()
            .len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        crate::fault_point!("map.remove.counted");
    }

    /// Restores the invariants after a holder died; see the module docs.
    /// Killed anywhere, it leaves a shard that it repairs again to the same
    /// end: it finishes the replacement before it forgets the record, and
    /// only stores `EMPTY` where the end state has it.
    fn repair(&self) {
        crate::fault_point!("map.repair.started");
        let head = self.head();
        let per_shard = self.map.layout.per_shard;
        let new = head.pending_new.load(Ordering::Acquire) as usize;
        let old = head.pending_old.load(Ordering::Acquire) as usize;
        if new < per_shard
            && old < per_shard
            && new != old
            && is_full(self.state(new).load(Ordering::Acquire))
        {
            self.state(old).store(EMPTY, Ordering::Release);
            crate::fault_point!("map.repair.finished");
        }
        head.pending_new.store(NONE, Ordering::Release);
        crate::fault_point!("map.repair.forgotten");
        let mut len = 0;
        for i in 0..per_shard {
            match self.state(i).load(Ordering::Acquire) {
                EMPTY => {}
                // SAFETY: in range; under the lock.
                s if s == tag(unsafe { self.hash(i).read() }) && self.parts(i).is_some() => {
                    len += 1
                }
                _ => self.state(i).store(EMPTY, Ordering::Release),
            }
        }
        crate::fault_point!("map.repair.recounted");
        head.len.store(len, Ordering::Release);
        crate::fault_point!("map.repair.done");
    }
}

impl<K, V> SharedMap<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// A map for at least `capacity` entries of up to [`SharedMap::DEFAULT_ENTRY_BYTES`]
    /// (key and value encoded together).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Invalid`] for a capacity of 0; [`ErrorKind::Os`] if the
    /// shared memory cannot be made.
    pub fn new(capacity: usize) -> Result<Self, Error> {
        Self::with_entry_bytes(capacity, Self::DEFAULT_ENTRY_BYTES)
    }

    /// A map for at least `capacity` entries of up to `entry_bytes` bytes each
    /// (key and value encoded together). Address space is reserved for about 2
    /// to 3 times `capacity` entries (`capacity` + 1 up to 64), and only the pages
    /// written are allocated: at first only the shards' heads, one or two
    /// bytes per key of capacity. See the [limits](SharedMap#limits).
    ///
    /// ```
    /// use quadriga::ipc::SharedMap;
    ///
    /// let docs: SharedMap<u32, String> = SharedMap::with_entry_bytes(10, 4096)?;
    /// docs.insert(&1, &"x".repeat(4000))?;
    /// let err = docs.insert(&2, &"x".repeat(5000)).unwrap_err();
    /// assert!(err.is_too_large());
    /// assert!(SharedMap::<u32, u32>::new(0).is_err());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`SharedMap::new`]; also [`ErrorKind::Invalid`] if the sizes do not
    /// fit in memory.
    pub fn with_entry_bytes(capacity: usize, entry_bytes: usize) -> Result<Self, Error> {
        if capacity == 0 {
            return Err(Error::invalid("a SharedMap needs a capacity of at least 1"));
        }
        if entry_bytes == 0 {
            return Err(Error::invalid(
                "a SharedMap needs entries of at least 1 byte (key and value encoded)",
            ));
        }
        let layout = Layout::for_capacity(capacity, entry_bytes).ok_or_else(|| {
            Error::invalid(format!(
                "a SharedMap of {capacity} entries of {entry_bytes} bytes is too large"
            ))
        })?;
        let params = [
            layout.shards as u64,
            layout.per_shard as u64,
            layout.entry_bytes as u64,
            ARRANGEMENT,
            0,
            0,
            0,
            0,
        ];
        let region = Region::create(
            Kind::Map,
            shm::fingerprint::<(K, V)>(),
            params,
            layout.total,
        )?;
        let map = Self {
            region: Arc::new(region),
            layout,
            _types: PhantomData,
        };
        for s in 0..layout.shards {
            let head = map.head_ptr(s);
            // SAFETY: a fresh zeroed mapping no one else has yet; each head
            // is inside it and suitably aligned (the body is 128-byte aligned,
            // the heads are `HEAD` bytes apart, `HEAD` a multiple of their
            // alignment).
            unsafe {
                RawRobustMutex::init(std::ptr::addr_of_mut!((*head).lock))
                    .map_err(|e| Error::os("initialising a shared lock", e))?;
                (*head).pending_new = AtomicU32::new(NONE);
            }
        }
        Ok(map)
    }

    fn from_region(region: Region) -> Result<Self, Error> {
        let [shards, per_shard, entry_bytes, arrangement, ..] = region.params();
        let layout = Layout::new(shards, per_shard, entry_bytes)
            .filter(|l| arrangement == ARRANGEMENT && l.total == region.body_len())
            .ok_or_else(|| Error::invalid("a SharedMap whose layout does not match its memory"))?;
        Ok(Self {
            region: Arc::new(region),
            layout,
            _types: PhantomData,
        })
    }

    fn encode<T: Serialize + ?Sized>(what: &str, value: &T) -> Result<Vec<u8>, Error> {
        postcard::to_stdvec(value)
            .map_err(|e| Error::codec(format!("could not encode the {what}: {e}")))
    }

    fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, Error> {
        postcard::from_bytes(bytes)
            .map_err(|e| Error::codec(format!("could not decode the {what}: {e}")))
    }

    /// Locks the shard of `key`'s hash; repairs it if its last holder died.
    fn lock(&self, hash: u64) -> Held<'_, K, V> {
        self.lock_shard((hash >> 32) as usize & (self.layout.shards - 1))
    }

    /// Locks a shard; repairs it if its last holder died.
    fn lock_shard(&self, shard: usize) -> Held<'_, K, V> {
        let acquired = self.head(shard).lock.lock();
        let held = Held { map: self, shard };
        if acquired.owner_died() {
            held.repair();
        }
        crate::fault_point!("map.locked");
        held
    }

    fn check_size(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let size = key.len() + value.len();
        if size > self.layout.entry_bytes {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "an entry of {size} bytes (key {} + value {}) is larger than the map's entry size of {} bytes",
                    key.len(),
                    value.len(),
                    self.layout.entry_bytes
                ),
            ));
        }
        Ok(())
    }

    /// An entry that `find` had just matched no longer reads as one: another
    /// process wrote into the shard without its lock.
    fn overwritten() -> Error {
        Error::codec("a map entry was overwritten while its shard was locked")
    }

    fn full(&self) -> Error {
        Error::new(
            ErrorKind::Full,
            format!(
                "the map's shard for this key is full ({} entries); make the map with a larger capacity",
                self.layout.per_shard - 1
            ),
        )
    }

    /// Sets `key` to `value`; returns the value it replaces.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TooLarge`] if the two do not fit in an entry,
    /// [`ErrorKind::Full`] if the key is new and its shard is full (giving a
    /// present key a new value never fails for lack of room),
    /// [`ErrorKind::Codec`] if either cannot be encoded or the old value
    /// cannot be decoded. The map is unchanged on error ([`SharedMap::remove`]
    /// drops an entry whose value no longer decodes).
    pub fn insert<Q>(&self, key: &Q, value: &V) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let key = Self::encode("key", key)?;
        let value = Self::encode("value", value)?;
        self.check_size(&key, &value)?;
        let hash = fnv1a(&key);
        let held = self.lock(hash);
        let old = held.find(hash, &key);
        // Decoded before anything changes, so that an error leaves the map as
        // it was.
        let previous = match old {
            Some(o) => Some(Self::decode(
                "old value",
                held.parts(o).ok_or_else(Self::overwritten)?.1,
            )?),
            None => None,
        };
        if !held.put(hash, &key, &value, old) {
            return Err(self.full());
        }
        Ok(previous)
    }

    /// A copy of the value for `key`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Codec`] if the key cannot be encoded or the value decoded.
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let key = Self::encode("key", key)?;
        let hash = fnv1a(&key);
        let value = {
            let held = self.lock(hash);
            held.find(hash, &key)
                .and_then(|i| held.parts(i).map(|(_, v)| v.to_vec()))
        };
        value.map(|v| Self::decode("value", &v)).transpose()
    }

    /// Whether `key` is in the map.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Codec`] if the key cannot be encoded.
    pub fn contains_key<Q>(&self, key: &Q) -> Result<bool, Error>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let key = Self::encode("key", key)?;
        let hash = fnv1a(&key);
        Ok(self.lock(hash).find(hash, &key).is_some())
    }

    /// Removes `key`; returns its value.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Codec`] if the key cannot be encoded or the value decoded
    /// (the entry is removed all the same).
    pub fn remove<Q>(&self, key: &Q) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let key = Self::encode("key", key)?;
        let hash = fnv1a(&key);
        let value = {
            let held = self.lock(hash);
            let Some(i) = held.find(hash, &key) else {
                return Ok(None);
            };
            let value = held.parts(i).map(|(_, v)| v.to_vec());
            held.commit_remove(i);
            value
        };
        value.map(|v| Self::decode("value", &v)).transpose()
    }

    /// Atomically replaces the value of `key` by `f(current)`: `Some` sets it,
    /// `None` removes it. No other thread or process changes the key between
    /// the read and the write (`f` runs under the key's shard lock: keep it
    /// short, and do not touch the same map from it). Returns the new value.
    ///
    /// ```
    /// use quadriga::ipc::SharedMap;
    ///
    /// let hits: SharedMap<String, u64> = SharedMap::new(10)?;
    /// for _ in 0..3 {
    ///     hits.update("/", |n| Some(n.unwrap_or(0) + 1))?;
    /// }
    /// assert_eq!(hits.get("/")?, Some(3));
    /// assert_eq!(hits.update("/", |_| None)?, None);
    /// assert_eq!(hits.len(), 0);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`SharedMap::insert`]; the map is unchanged on error.
    pub fn update<Q, F>(&self, key: &Q, f: F) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
        F: FnOnce(Option<V>) -> Option<V>,
    {
        let key = Self::encode("key", key)?;
        let hash = fnv1a(&key);
        let held = self.lock(hash);
        let old = held.find(hash, &key);
        let current = match old {
            Some(o) => Some(Self::decode::<V>(
                "value",
                held.parts(o).ok_or_else(Self::overwritten)?.1,
            )?),
            None => None,
        };
        let new = f(current);
        crate::fault_point!("map.update.computed");
        let Some(new) = new else {
            if let Some(o) = old {
                held.commit_remove(o);
            }
            return Ok(None);
        };
        let value = Self::encode("value", &new)?;
        self.check_size(&key, &value)?;
        if !held.put(hash, &key, &value, old) {
            return Err(self.full());
        }
        Ok(Some(new))
    }

    /// Removes every entry (shard by shard: not one atomic step).
    pub fn clear(&self) {
        for shard in 0..self.layout.shards {
            let held = self.lock_shard(shard);
            for i in 0..self.layout.per_shard {
                if is_full(held.state(i).load(Ordering::Relaxed)) {
                    held.commit_remove(i);
                }
            }
        }
    }

    /// A copy of every entry, in no particular order (each shard is copied
    /// under its lock; the whole is not one atomic snapshot).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Codec`] if an entry cannot be decoded.
    pub fn to_vec(&self) -> Result<Vec<(K, V)>, Error> {
        let mut raw = Vec::new();
        for shard in 0..self.layout.shards {
            let held = self.lock_shard(shard);
            for i in 0..self.layout.per_shard {
                if is_full(held.state(i).load(Ordering::Relaxed))
                    && let Some((k, v)) = held.parts(i)
                {
                    raw.push((k.to_vec(), v.to_vec()));
                }
            }
        }
        raw.iter()
            .map(|(k, v)| Ok((Self::decode("key", k)?, Self::decode("value", v)?)))
            .collect()
    }
}

impl<K, V> SharedMap<K, V> {
    /// The entry size [`SharedMap::new`] uses: key and value encodings together.
    pub const DEFAULT_ENTRY_BYTES: usize = 256;

    /// The most bytes a key and a value may take together, encoded.
    pub fn entry_bytes(&self) -> usize {
        self.layout.entry_bytes
    }

    /// How many entries there are (a sum over shards, each read without its
    /// lock: exact when no one is writing).
    pub fn len(&self) -> usize {
        (0..self.layout.shards)
            .map(|s| self.head(s).len.load(Ordering::Acquire) as usize)
            .sum()
    }

    /// Whether [`SharedMap::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn head_ptr(&self, shard: usize) -> *mut ShardHead {
        debug_assert!(shard < self.layout.shards);
        // SAFETY: `shard < shards`: the head is inside the body, before `data`.
        unsafe { self.region.body().add(shard * HEAD).cast::<ShardHead>() }
    }

    fn head(&self, shard: usize) -> &ShardHead {
        // SAFETY: initialised by `with_entry_bytes` before the map was shared;
        // lives as long as the region.
        unsafe { &*self.head_ptr(shard) }
    }
}

impl<K, V> Serialize for SharedMap<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.region.serialize(s)
    }
}

impl<'de, K, V> serde::Deserialize<'de> for SharedMap<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let region = Region::deserialize(d, Kind::Map, shm::fingerprint::<(K, V)>())?;
        Self::from_region(region).map_err(serde::de::Error::custom)
    }
}

#[cfg(all(test, not(quadriga_loom)))]
mod tests {
    use super::*;

    /// The odds that `capacity` keys with random hashes put more than
    /// `slots` in some shard, by the binomial distribution itself (not the
    /// Chernoff bound `slots_for` uses), times the number of shards.
    fn overflow_odds(capacity: usize, shards: usize, slots: usize) -> f64 {
        let (n, p) = (capacity as f64, 1.0 / shards as f64);
        // P(load = k), from P(load = 0) = (1 - p)^n upwards.
        let mut pk = (n * (-p).ln_1p()).exp();
        let mut above = 0.0;
        for k in 0..=capacity.min(slots + 400) {
            if k > slots {
                above += pk;
            }
            pk *= (n - k as f64) / (k as f64 + 1.0) * p / (1.0 - p);
        }
        shards as f64 * above
    }

    #[test]
    fn layouts_are_bounded_and_fit_their_capacity() {
        for cap in [1, 2, 15, 64] {
            let l = Layout::for_capacity(cap, 64).unwrap();
            assert_eq!((l.shards, l.per_shard), (1, cap + 1), "{cap}: certain");
        }
        for cap in [65, 100, 1000, 4097, 100_000, 1_000_000, 16_920_348] {
            let l = Layout::for_capacity(cap, 64).unwrap();
            let slots = l.per_shard - 1;
            let odds = overflow_odds(cap, l.shards, slots);
            assert!(odds <= FULL_ODDS, "{cap}: {odds:e} {l:?}");
            // Not much more room than that takes (or room for all).
            assert!(
                odds > FULL_ODDS * 1e-6 || slots == cap,
                "{cap}: {odds:e} {l:?}"
            );
            // Small maps get more shards (MIN_SHARDS), so more slack.
            let most = if cap >= 2000 { 3 } else { 5 };
            assert!(l.shards * l.per_shard <= most * cap, "{cap}: {l:?}");
            assert!(l.per_shard <= 150, "{cap}: {l:?}");
            assert_eq!(l.total, l.data + l.stride * l.shards);
            assert!(l.data >= l.shards * HEAD && l.hashes >= l.per_shard);
        }
        // What the type's docs say of a million.
        let l = Layout::for_capacity(1_000_000, 16).unwrap();
        assert_eq!((l.shards, l.per_shard), (16_384, 141));
        let l = Layout::for_capacity(1_000_000, 256).unwrap();
        assert_eq!(l.total / 10_000_000, 63, "{l:?}");
        assert_eq!(Layout::new(3, 4, 4), None, "shards must be a power of two");
        assert_eq!(Layout::new(1, 1, 4), None, "a slot must be kept back");
        assert_eq!(Layout::new(1 << 40, 1 << 40, 1 << 40), None);
        assert_eq!(Layout::new(4, 4, u64::MAX), None);
    }

    #[test]
    fn basic_operations() {
        let m: SharedMap<u32, String> = SharedMap::new(100).unwrap();
        assert_eq!(m.insert(&1, &"one".into()).unwrap(), None);
        assert_eq!(m.insert(&1, &"uno".into()).unwrap(), Some("one".into()));
        assert_eq!(m.get(&1).unwrap(), Some("uno".into()));
        assert!(m.contains_key(&1).unwrap() && !m.contains_key(&2).unwrap());
        for k in 2..=100 {
            m.insert(&k, &k.to_string()).unwrap();
        }
        assert_eq!(m.len(), 100);
        let mut all = m.to_vec().unwrap();
        all.sort();
        assert_eq!(all.len(), 100);
        assert_eq!(all[0], (1, "uno".into()));
        assert_eq!(m.remove(&50).unwrap(), Some("50".into()));
        assert_eq!(m.remove(&50).unwrap(), None);
        assert_eq!(m.len(), 99);
        m.clear();
        assert!(m.is_empty() && m.get(&1).unwrap().is_none());
    }

    #[test]
    fn it_takes_its_whole_capacity() {
        for cap in [1, 10, 1000, 50_000] {
            let ints: SharedMap<u64, u64> = SharedMap::new(cap).unwrap();
            let strings: SharedMap<String, ()> = SharedMap::new(cap).unwrap();
            for k in 0..cap as u64 {
                ints.insert(&(k * 7919), &k).unwrap();
                strings.insert(&format!("key-{k}"), &()).unwrap();
            }
            assert_eq!((ints.len(), strings.len()), (cap, cap));
        }
    }

    #[test]
    fn a_full_shard_is_an_error_that_changes_nothing() {
        let m: SharedMap<u64, u8> = SharedMap::new(1).unwrap();
        // One slot is kept for replacements.
        let room = m.layout.per_shard as u64 - 1;
        for k in 0..room {
            m.insert(&k, &1).unwrap();
        }
        let err = m.insert(&room, &1).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Full, "{err}");
        let err = m.update(&room, |_| Some(1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Full, "{err}");
        assert_eq!(m.len() as u64, room);
        assert_eq!(m.get(&room).unwrap(), None);
    }

    #[test]
    fn impossible_sizes_are_clear_errors() {
        let err = SharedMap::<u8, u8>::with_entry_bytes(10, 0).unwrap_err();
        assert!(err.to_string().contains("at least 1 byte"), "{err}");
        let err = SharedMap::<u8, u8>::new(0).unwrap_err();
        assert!(err.to_string().contains("capacity of at least 1"), "{err}");
        // Refused (and quickly: the sizing loop stops at the largest shard).
        let err = SharedMap::<u8, u8>::new(usize::MAX).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    }

    /// A FULL state byte the count never counted (written by someone else
    /// than this code) must not wrap the count when it is removed.
    #[test]
    fn removing_an_uncounted_entry_does_not_wrap_the_count() {
        let m: SharedMap<u64, u8> = SharedMap::new(1).unwrap();
        {
            let held = m.lock_shard(0);
            held.state(0).store(tag(0), Ordering::Relaxed);
        }
        m.clear();
        assert_eq!(m.len(), 0);
        m.insert(&1, &1).unwrap();
        assert_eq!(m.len(), 1);
    }

    /// The reviewer's case: a counter in a full shard must keep counting.
    #[test]
    fn a_present_key_takes_a_new_value_in_a_full_shard() {
        let m: SharedMap<u64, u64> = SharedMap::new(1).unwrap();
        // New keys until the shard says it is full.
        let mut room = 0;
        while m.insert(&room, &room).is_ok() {
            room += 1;
        }
        assert!(m.insert(&room, &0).unwrap_err().is_full());
        assert_eq!(m.len() as u64, room);
        // Many rounds, so that the kept slot moves around the shard.
        for round in 1..=3 * room {
            for k in 0..room {
                assert_eq!(m.insert(&k, &(k + round)).unwrap(), Some(k + round - 1));
            }
            for k in 0..room {
                let v = m.update(&k, |v| Some(v.unwrap() + 1)).unwrap();
                assert_eq!(v, Some(k + round + 1));
                assert_eq!(m.insert(&k, &(k + round)).unwrap(), Some(k + round + 1));
            }
            assert_eq!(m.len() as u64, room);
        }
        let mut all = m.to_vec().unwrap();
        all.sort();
        let want: Vec<_> = (0..room).map(|k| (k, k + 3 * room)).collect();
        assert_eq!(all, want);
        // Still full for a new key; room again after a removal.
        assert!(m.insert(&room, &0).unwrap_err().is_full());
        assert_eq!(m.remove(&0).unwrap(), Some(3 * room));
        assert_eq!(m.insert(&room, &7).unwrap(), None);
        assert_eq!(m.get(&room).unwrap(), Some(7));
    }

    /// Encodes any byte; refuses to decode 13.
    #[derive(Debug, Clone, PartialEq)]
    struct Picky(u8);

    impl Serialize for Picky {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_u8(self.0)
        }
    }

    impl<'de> serde::Deserialize<'de> for Picky {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            match <u8 as serde::Deserialize>::deserialize(d)? {
                13 => Err(serde::de::Error::custom("unlucky")),
                v => Ok(Picky(v)),
            }
        }
    }

    fn raw_value(m: &SharedMap<u32, Picky>, key: u32) -> Option<Vec<u8>> {
        let key = postcard::to_stdvec(&key).unwrap();
        let hash = fnv1a(&key);
        let held = m.lock(hash);
        held.find(hash, &key)
            .map(|i| held.parts(i).unwrap().1.to_vec())
    }

    #[test]
    fn an_old_value_that_does_not_decode_leaves_the_map_unchanged() {
        let m: SharedMap<u32, Picky> = SharedMap::new(4).unwrap();
        assert_eq!(m.insert(&1, &Picky(13)).unwrap(), None);
        let err = m.insert(&1, &Picky(2)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Codec, "{err}");
        assert_eq!(raw_value(&m, 1), Some(vec![13]));
        let err = m.update(&1, |_| Some(Picky(2))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Codec, "{err}");
        assert_eq!(raw_value(&m, 1), Some(vec![13]));
        assert_eq!(m.len(), 1);
        // `remove` is the way out: it drops the entry and says why it
        // could not return it.
        assert_eq!(m.remove(&1).unwrap_err().kind(), ErrorKind::Codec);
        assert_eq!((raw_value(&m, 1), m.len()), (None, 0));
        assert_eq!(m.insert(&1, &Picky(2)).unwrap(), None);
    }

    #[test]
    fn threads_updating_one_key_lose_nothing() {
        let m: SharedMap<String, u64> = SharedMap::new(10).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        m.update("k", |v| Some(v.unwrap_or(0) + 1)).unwrap();
                    }
                });
            }
        });
        assert_eq!(m.get("k").unwrap(), Some(8000));
    }

    /// The repair, on what a writer killed after each store of a replacement
    /// leaves (tests/ipc_map.rs kills real processes there), plus a wrong
    /// count and state bytes no writer stores: the old value or the new one,
    /// once, and a right `len`; a second repair changes nothing.
    #[test]
    fn repair_finishes_or_forgets_a_replacement_and_recounts() {
        let enc = |v: u32| postcard::to_stdvec(&v).unwrap();
        for stores in 0..=4 {
            let m: SharedMap<u32, u32> = SharedMap::new(10).unwrap();
            m.insert(&7, &1).unwrap();
            m.insert(&8, &1).unwrap();
            let (key, hash) = (enc(7), fnv1a(&enc(7)));
            let snapshot = || {
                let held = m.lock(hash);
                let states: Vec<u8> = (0..m.layout.per_shard)
                    .map(|i| held.state(i).load(Ordering::Relaxed))
                    .collect();
                let head = held.head();
                let record = head.pending_new.load(Ordering::Relaxed);
                (states, record, head.len.load(Ordering::Relaxed))
            };
            {
                let held = m.lock(hash);
                let old = held.find(hash, &key).unwrap();
                let new = held.free_slot().unwrap();
                held.write(new, hash, &key, &enc(2));
                let head = held.head();
                let steps: [&dyn Fn(); 4] = [
                    &|| head.pending_old.store(old as u32, Ordering::Release),
                    &|| head.pending_new.store(new as u32, Ordering::Release),
                    &|| held.state(new).store(tag(hash), Ordering::Release),
                    &|| held.state(old).store(EMPTY, Ordering::Release),
                ];
                for step in &steps[..stores] {
                    step();
                }
                head.len.store(40, Ordering::Relaxed);
                // A byte no writer stores, and a tag that is not its hash's.
                let last = m.layout.per_shard - 1;
                held.state(last).store(0x01, Ordering::Relaxed);
                held.state(last - 1).store(tag(hash) ^ 1, Ordering::Relaxed);
                held.repair();
            }
            let want = if stores >= 3 { 2 } else { 1 };
            assert_eq!(m.get(&7).unwrap(), Some(want), "{stores} stores");
            assert_eq!(m.len(), 2, "{stores} stores");
            let mut all = m.to_vec().unwrap();
            all.sort();
            assert_eq!(all, [(7, want), (8, 1)], "{stores} stores");
            let (states, record, _) = snapshot();
            assert_eq!(record, NONE, "{stores} stores");
            assert_eq!(states.iter().filter(|&&s| s != EMPTY).count(), 2);
            m.lock(hash).repair();
            assert_eq!(snapshot(), (states, NONE, 2), "{stores} stores: again");
            // And it works on.
            assert_eq!(m.insert(&7, &3).unwrap(), Some(want));
            assert_eq!(m.insert(&9, &9).unwrap(), None);
            assert_eq!(m.len(), 3);
        }
    }

    #[test]
    fn a_map_of_another_type_is_refused() {
        let m: SharedMap<u32, u32> = SharedMap::new(4).unwrap();
        let region = Region::attach(
            m.region.fd().clone(),
            Kind::Map,
            shm::fingerprint::<(u32, u64)>(),
        );
        assert!(region.unwrap_err().to_string().contains("type"));
    }
}
