//! The entry codec: what one stream entry carries, and the bounded decoder
//! for bytes read back from Redis.
//!
//! An entry is a batch: one task name, one submitting client, a deadline, an
//! attempt number, and items (each a sequence number and the task's encoded
//! input, opaque here). It travels as one stream field, `e`, holding a format
//! version byte and the postcard encoding of the rest.
//!
//! Anything can be written into a stream, so the decoder trusts nothing: the
//! whole entry is measured against the limit before decoding, the item count
//! is checked against [`MAX_ITEMS`] before any list is allocated, names and
//! inputs are borrowed from the input while being checked (so a claimed length
//! can never allocate more than the bytes that are there), and trailing bytes
//! are refused. A failure is an [`ErrorKind::Codec`] error whose message is the
//! dead-letter reason.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{Error, ErrorKind};
use super::keys::{BLOCK, TaskId};

/// The stream field an entry travels in.
pub const FIELD: &str = "e";

/// The entry format's version (the first byte of the field). Version 2
/// numbers an entry's items within one block (see `check_seqs`), whose
/// outcomes live in one record; a worker of version 1 refuses it rather than
/// write outcomes where no client looks.
const VERSION: u8 = 2;

/// The most items one entry may carry (a `map` chunk's cap as well).
pub const MAX_ITEMS: usize = 65_536;

/// The longest task name accepted.
pub const MAX_TASK_NAME: usize = 1024;

/// The default cap on one entry's encoded size (16 MiB).
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 16 << 20;

/// One task of an entry: its sequence number (with the entry's client and
/// shard, its [`TaskId`]) and its encoded input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The client's sequence number for this task.
    pub seq: u64,
    /// The task's input, encoded by the task registry's codec (opaque here).
    pub input: Vec<u8>,
}

/// One stream entry: a batch of items of one task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The task's stable name.
    pub task: String,
    /// The submitting client (where completions are announced).
    pub client: u64,
    /// The shard whose stream carries the entry.
    pub shard: u16,
    /// When the tasks stop being worth running: milliseconds since the Unix
    /// epoch, if any.
    pub deadline_ms: Option<u64>,
    /// Which attempt this is after task errors (0 for the first); worker-loss
    /// redeliveries are counted by the broker instead.
    pub attempt: u32,
    /// The tasks, at least one.
    pub items: Vec<Item>,
}

impl Entry {
    /// The ids of the entry's tasks, in order.
    pub fn ids(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.items.iter().map(|item| TaskId {
            shard: self.shard,
            client: self.client,
            seq: item.seq,
        })
    }

    /// Encodes the entry, refusing (before anything is sent) one that breaks a
    /// limit: more than `max_bytes` encoded, no items or more than
    /// [`MAX_ITEMS`], or a task name that is empty or longer than
    /// [`MAX_TASK_NAME`].
    pub fn encode(&self, max_bytes: usize) -> Result<Vec<u8>, Error> {
        check_shape(&self.task, self.items.len())?;
        check_seqs(self.items.iter().map(|i| i.seq))?;
        let inputs: usize = self.items.iter().map(|i| i.input.len()).sum();
        // Cheap refusal before encoding anything huge.
        if inputs > max_bytes {
            return Err(too_large(inputs, max_bytes));
        }
        let wire = Wire {
            task: &self.task,
            client: self.client,
            shard: self.shard,
            deadline_ms: self.deadline_ms,
            attempt: self.attempt,
            items: Items(
                self.items
                    .iter()
                    .map(|i| (i.seq, Bytes(&i.input)))
                    .collect(),
            ),
        };
        let mut out = vec![VERSION];
        out = postcard::to_extend(&wire, out).map_err(|e| {
            Error::new(ErrorKind::Codec, format!("could not encode the entry: {e}"))
        })?;
        if out.len() > max_bytes {
            return Err(too_large(out.len(), max_bytes));
        }
        Ok(out)
    }

    /// Decodes an entry read back from Redis, within the limits (see the
    /// module docs). The error's message says why the bytes were refused.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Entry, Error> {
        if bytes.len() > max_bytes {
            return Err(codec(format!(
                "the entry is {} bytes, over the limit of {max_bytes}",
                bytes.len()
            )));
        }
        let (&version, body) = bytes
            .split_first()
            .ok_or_else(|| codec("the entry is empty".into()))?;
        if version != VERSION {
            return Err(codec(format!(
                "unknown entry format version {version} (this build reads {VERSION})"
            )));
        }
        let (wire, rest) = postcard::take_from_bytes::<Wire<'_>>(body)
            .map_err(|e| codec(format!("the entry does not decode: {e}")))?;
        if !rest.is_empty() {
            return Err(codec(format!(
                "{} unexpected bytes after the entry",
                rest.len()
            )));
        }
        check_shape(wire.task, wire.items.0.len()).map_err(|e| codec(e.message().into()))?;
        check_seqs(wire.items.0.iter().map(|(seq, _)| *seq))?;
        Ok(Entry {
            task: wire.task.to_owned(),
            client: wire.client,
            shard: wire.shard,
            deadline_ms: wire.deadline_ms,
            attempt: wire.attempt,
            items: wire
                .items
                .0
                .into_iter()
                .map(|(seq, input)| Item {
                    seq,
                    input: input.0.to_vec(),
                })
                .collect(),
        })
    }
}

fn codec(why: String) -> Error {
    Error::new(ErrorKind::Codec, why)
}

fn too_large(size: usize, max: usize) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("the entry's inputs take {size} bytes, over the limit of {max}; nothing was sent"),
    )
}

fn check_shape(task: &str, items: usize) -> Result<(), Error> {
    if task.is_empty() || task.len() > MAX_TASK_NAME {
        return Err(codec(format!(
            "a task name has 1 to {MAX_TASK_NAME} bytes (got {})",
            task.len()
        )));
    }
    if items == 0 || items > MAX_ITEMS {
        return Err(codec(format!(
            "an entry has 1 to {MAX_ITEMS} items (got {items})"
        )));
    }
    Ok(())
}

/// The items' sequence numbers must follow one another within one block of
/// [`MAX_ITEMS`] (`seq >> 16` the same for all): the entry's outcomes live in
/// one record named by that block (see `keys.rs`), so a task id alone finds
/// them.
fn check_seqs(mut seqs: impl Iterator<Item = u64>) -> Result<(), Error> {
    let Some(first) = seqs.next() else {
        return Ok(());
    };
    let mut expect = first;
    for seq in seqs {
        expect = expect.wrapping_add(1);
        if seq != expect || seq / BLOCK != first / BLOCK {
            return Err(codec(format!(
                "the items' sequence numbers must follow one another within one block \
                 of {BLOCK} (item {seq} after {first})"
            )));
        }
    }
    Ok(())
}

/// The encoded form, borrowing from the bytes it is decoded from.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    task: &'a str,
    client: u64,
    shard: u16,
    deadline_ms: Option<u64>,
    attempt: u32,
    #[serde(borrow)]
    items: Items<'a>,
}

/// The item list, whose decoder refuses a count over [`MAX_ITEMS`] before it
/// allocates.
struct Items<'a>(Vec<(u64, Bytes<'a>)>);

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Items<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bounded<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Bounded<'a> {
            type Value = Items<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {MAX_ITEMS} items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let claimed = seq.size_hint().unwrap_or(0);
                if claimed > MAX_ITEMS {
                    return Err(de::Error::invalid_length(claimed, &self));
                }
                let mut items = Vec::with_capacity(claimed);
                while let Some(item) = seq.next_element()? {
                    if items.len() == MAX_ITEMS {
                        return Err(de::Error::invalid_length(MAX_ITEMS + 1, &self));
                    }
                    items.push(item);
                }
                Ok(Items(items))
            }
        }
        d.deserialize_seq(Bounded(std::marker::PhantomData))
    }
}

/// Bytes encoded as one length-prefixed run, borrowed when decoded.
#[derive(Clone, Copy)]
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Borrowed<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Borrowed<'a> {
            type Value = Bytes<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("borrowed bytes")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_bytes(Borrowed(std::marker::PhantomData))
    }
}

/// Runs the entry decoder on arbitrary bytes: the fuzz target's entry point.
/// It must return, never panic, whatever the bytes.
#[doc(hidden)]
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_decode_entry(bytes: &[u8]) {
    if let Ok(entry) = Entry::decode(bytes, 1 << 20) {
        // What decodes re-encodes within the same limit, to an equal entry.
        let again = entry.encode(1 << 20).expect("a decoded entry re-encodes");
        assert_eq!(Entry::decode(&again, 1 << 20).as_ref(), Ok(&entry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        Entry {
            task: "demo::square".into(),
            client: 0xdead_beef,
            shard: 2,
            deadline_ms: Some(1_700_000_000_000),
            attempt: 1,
            items: (0..5)
                .map(|seq| Item {
                    seq: 100 + seq,
                    input: vec![seq as u8; seq as usize],
                })
                .collect(),
        }
    }

    #[test]
    fn round_trips() {
        let e = sample();
        let bytes = e.encode(DEFAULT_MAX_ENTRY_BYTES).unwrap();
        assert_eq!(bytes[0], VERSION);
        assert_eq!(Entry::decode(&bytes, DEFAULT_MAX_ENTRY_BYTES).unwrap(), e);
        let ids: Vec<_> = e.ids().map(|id| id.seq).collect();
        assert_eq!(ids, [100, 101, 102, 103, 104]);
        assert!(e.ids().all(|id| id.shard == 2 && id.client == 0xdead_beef));
    }

    #[test]
    fn oversized_entries_are_refused_before_encoding() {
        let mut e = sample();
        e.items[0].input = vec![0; 2000];
        let err = e.encode(1000).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        // Just over, counting the framing: refused too.
        e.items[0].input = vec![0; 990];
        assert_eq!(e.encode(1000).unwrap_err().kind(), ErrorKind::TooLarge);
        let bytes = sample().encode(1000).unwrap();
        assert_eq!(
            Entry::decode(&bytes, bytes.len() - 1).unwrap_err().kind(),
            ErrorKind::Codec
        );
    }

    #[test]
    fn shapes_outside_the_limits_are_refused() {
        let mut e = sample();
        e.items[2].seq += 1;
        assert!(e.encode(DEFAULT_MAX_ENTRY_BYTES).is_err(), "a gap");
        let mut e = sample();
        for (i, item) in e.items.iter_mut().enumerate() {
            item.seq = BLOCK - 2 + i as u64;
        }
        assert!(e.encode(DEFAULT_MAX_ENTRY_BYTES).is_err(), "two blocks");
        let mut e = sample();
        e.items.clear();
        assert!(e.encode(DEFAULT_MAX_ENTRY_BYTES).is_err());
        let mut e = sample();
        e.task = "x".repeat(MAX_TASK_NAME + 1);
        assert!(e.encode(DEFAULT_MAX_ENTRY_BYTES).is_err());
    }

    #[test]
    fn a_huge_claimed_item_count_is_refused_without_allocating() {
        // version, task "t", client 0, shard 0, no deadline, attempt 0, then
        // an item count of 2^35 (varint) with nothing behind it.
        let mut bytes = vec![VERSION, 1, b't', 0, 0, 0, 0];
        bytes.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        let err = Entry::decode(&bytes, 1 << 20).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Codec);
        // A claimed input length past the end is refused too.
        let mut bytes = vec![VERSION, 1, b't', 0, 0, 0, 0, 1, 7];
        bytes.extend([0xff, 0xff, 0xff, 0x0f, 1, 2]);
        assert!(Entry::decode(&bytes, 1 << 20).is_err());
    }

    #[test]
    fn foreign_bytes_give_a_reason() {
        for (bytes, says) in [
            (&b""[..], "empty"),
            (b"\x09rest", "version 9"),
            (b"{\"json\":1}", "version 123"),
        ] {
            let err = Entry::decode(bytes, 1 << 20).unwrap_err();
            assert!(err.message().contains(says), "{err}");
        }
        let mut bytes = sample().encode(1 << 20).unwrap();
        bytes.push(0);
        let err = Entry::decode(&bytes, 1 << 20).unwrap_err();
        assert!(err.message().contains("unexpected bytes"), "{err}");
    }

    /// A seeded stream of random and mutated inputs through the decoder: it
    /// answers every one without panicking (the fuzz target's check, in CI).
    #[test]
    fn seeded_random_bytes_never_panic() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = sample().encode(1 << 20).unwrap();
        for round in 0..20_000 {
            let bytes: Vec<u8> = if round % 2 == 0 {
                let len = (next() % 64) as usize;
                let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if let Some(first) = b.first_mut() {
                    *first = VERSION;
                }
                b
            } else {
                let mut b = valid.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
                b.truncate(b.len() - (next() % 3) as usize);
                b
            };
            fuzz_decode_entry(&bytes);
        }
    }
}
