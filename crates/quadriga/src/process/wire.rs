//! The wire between the supervisor and its workers: length-delimited frames of
//! `postcard`, over an inherited socket pair.
//!
//! A frame is a little-endian `u32` length followed by that many bytes of one
//! postcard-encoded message ([`Down`] to a worker, [`Up`] from it). The length is
//! checked against a bound *before* anything is allocated, so a corrupt or
//! hostile peer cannot make the other side allocate more than the bound.
//!
//! Task inputs and outputs travel as [`Batch`]es: each item encoded on its own
//! and laid end to end, so a batch can be split into single items (after a
//! crash) and one undecodable item fails alone, without the supervisor knowing
//! the task's types.

use serde::{Deserialize, Serialize};

use crate::error::TaskError;

/// Bumped whenever a message changes shape; a worker of another version refuses.
pub(crate) const PROTOCOL: u32 = 1;

/// The default bound on one frame: 256 MiB.
pub(crate) const DEFAULT_MAX_FRAME: usize = 256 << 20;

/// Items encoded one by one and laid end to end; `ends[i]` is where item `i` ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub(crate) bytes: Vec<u8>,
    pub(crate) ends: Vec<u32>,
}

impl Batch {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Item `i`'s bytes, or `None` if the batch is malformed there.
    pub(crate) fn item(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.bytes.get(start..end)
    }

    /// Appends one item's encoding.
    pub(crate) fn push<T: Serialize>(&mut self, item: &T) -> Result<(), postcard::Error> {
        let bytes = std::mem::take(&mut self.bytes);
        self.bytes = postcard::to_extend(item, bytes)?;
        let end =
            u32::try_from(self.bytes.len()).map_err(|_| postcard::Error::SerializeBufferFull)?;
        self.ends.push(end);
        Ok(())
    }

    /// Appends raw, already encoded bytes as one item.
    pub(crate) fn push_raw(&mut self, raw: &[u8]) {
        self.bytes.extend_from_slice(raw);
        self.ends.push(self.bytes.len() as u32);
    }

    /// One batch per item.
    pub(crate) fn split(&self) -> Vec<Batch> {
        (0..self.len())
            .map(|i| {
                let mut one = Batch::default();
                one.push_raw(self.item(i).unwrap_or_default());
                one
            })
            .collect()
    }
}

/// The outcome of each item of a batch: encoded outputs, or errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outcomes {
    pub(crate) outputs: Batch,
    /// Per item: `None` for an output (the next one in `outputs`), or its error.
    pub(crate) errors: Vec<Option<TaskError>>,
}

impl Outcomes {
    pub(crate) fn push_ok(&mut self, raw: &[u8]) {
        self.outputs.push_raw(raw);
        self.errors.push(None);
    }

    pub(crate) fn push_err(&mut self, err: TaskError) {
        self.errors.push(Some(err));
    }

    /// `n` items, each ending with a clone of `err`.
    pub(crate) fn all_failed(n: usize, err: &TaskError) -> Self {
        Self {
            outputs: Batch::default(),
            errors: (0..n).map(|_| Some(err.clone())).collect(),
        }
    }

    /// How many items.
    pub(crate) fn len(&self) -> usize {
        self.errors.len()
    }

    /// Rewrites every error with `f`.
    pub(crate) fn map_errors(&mut self, f: impl Fn(TaskError) -> TaskError) {
        for slot in &mut self.errors {
            if let Some(err) = slot.take() {
                *slot = Some(f(err));
            }
        }
    }

    /// Makes it exactly `n` items: extra ones are dropped, missing ones end
    /// with `fill()`.
    pub(crate) fn fit(&mut self, n: usize, fill: impl Fn() -> TaskError) {
        self.errors.truncate(n);
        while self.errors.len() < n {
            self.errors.push(Some(fill()));
        }
    }

    /// Each item's encoded output or its error, in order, without copying.
    /// `Err(None)`: the batch claims an output it does not hold (malformed).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Result<&[u8], Option<&TaskError>>> {
        let mut next_output = 0;
        self.errors.iter().map(move |err| match err {
            Some(err) => Err(Some(err)),
            None => {
                let raw = self.outputs.item(next_output);
                next_output += 1;
                raw.ok_or(None)
            }
        })
    }

    /// Iterates over each item's raw output or error, in order.
    pub(crate) fn into_items(self) -> impl Iterator<Item = Result<Vec<u8>, TaskError>> {
        let mut next_output = 0;
        let outputs = self.outputs;
        self.errors.into_iter().map(move |err| match err {
            Some(err) => Err(err),
            None => {
                let raw = outputs.item(next_output).map(<[u8]>::to_vec);
                next_output += 1;
                raw.ok_or_else(|| TaskError::codec("a worker sent fewer outputs than it reported"))
            }
        })
    }
}

/// Supervisor → worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Down {
    /// Run the initializer task once, before any job.
    Init { task: String, input: Batch },
    /// Run `task` on every item of `input`, in order.
    Run {
        job: u64,
        task: String,
        input: Batch,
    },
    /// Finish and exit.
    Exit,
}

/// Worker → supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Up {
    /// The worker is up (after its initializer, if any).
    Ready { pid: u32, protocol: u32 },
    /// The initializer failed; the worker exits.
    InitFailed { error: TaskError },
    /// A job is done: one outcome per input item, and how long it ran.
    Done {
        job: u64,
        nanos: u64,
        outcomes: Outcomes,
    },
}

/// Why bytes could not be read as frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("a frame of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("a frame could not be decoded: {0}")]
    Decode(String),
}

/// Encodes `msg` as one frame appended to `out`.
pub(crate) fn encode<M: Serialize>(
    msg: &M,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut buf = std::mem::take(out);
    buf = postcard::to_extend(msg, buf).map_err(|e| FrameError::Decode(e.to_string()))?;
    let len = buf.len() - start - 4;
    if len > max {
        buf.truncate(start);
        *out = buf;
        return Err(FrameError::TooLarge { len, max });
    }
    buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    *out = buf;
    Ok(())
}

/// Splits a byte stream into frames and decodes them, bounded by `max`.
#[derive(Debug)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    pos: usize,
    max: usize,
}

impl Decoder {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            max,
        }
    }

    /// Appends bytes read from the peer.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Whether unconsumed bytes are buffered.
    #[cfg(test)]
    pub(crate) fn has_partial(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// The next complete frame, decoded; `Ok(None)` if more bytes are needed.
    /// After an error the stream is unusable (the peer is broken).
    pub(crate) fn next<M: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<M>, FrameError> {
        let avail = &self.buf[self.pos..];
        let Some(header) = avail.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(header.try_into().expect("four bytes")) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        let Some(body) = avail.get(4..4 + len) else {
            return Ok(None);
        };
        let msg = postcard::from_bytes(body).map_err(|e| FrameError::Decode(e.to_string()))?;
        self.pos += 4 + len;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > (1 << 16) && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        Ok(Some(msg))
    }
}

/// Decodes everything in `bytes` as frames of [`Up`] and [`Down`], for the fuzz
/// target: must never panic, hang or allocate beyond `max` per frame.
#[doc(hidden)]
pub fn fuzz_decode(bytes: &[u8], max: usize) {
    let mut up = Decoder::new(max);
    up.feed(bytes);
    while let Ok(Some(msg)) = up.next::<Up>() {
        if let Up::Done { outcomes, .. } = msg {
            for item in outcomes.into_items() {
                let _ = item;
            }
        }
    }
    let mut down = Decoder::new(max);
    // Feed in two halves, as a socket would.
    let (a, b) = bytes.split_at(bytes.len() / 2);
    down.feed(a);
    let _ = down.next::<Down>();
    down.feed(b);
    while let Ok(Some(msg)) = down.next::<Down>() {
        if let Down::Run { input, .. } | Down::Init { input, .. } = msg {
            for i in 0..input.len() {
                let _ = input.item(i);
            }
            let _ = input.split();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(msg: &Down) -> Vec<u8> {
        let mut out = Vec::new();
        encode(msg, &mut out, DEFAULT_MAX_FRAME).unwrap();
        out
    }

    #[test]
    fn round_trip_in_pieces() {
        let mut input = Batch::default();
        input.push(&(1_u32, "two".to_string())).unwrap();
        input.push(&(3_u32, "four".to_string())).unwrap();
        let msgs = [
            Down::Run {
                job: 7,
                task: "t".into(),
                input,
            },
            Down::Exit,
        ];
        let bytes: Vec<u8> = msgs.iter().flat_map(frame).collect();
        let mut dec = Decoder::new(DEFAULT_MAX_FRAME);
        let mut got = Vec::new();
        for byte in bytes {
            dec.feed(&[byte]);
            while let Some(m) = dec.next::<Down>().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, msgs);
        assert!(!dec.has_partial());
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let mut dec = Decoder::new(1024);
        dec.feed(&u32::MAX.to_le_bytes());
        assert_eq!(
            dec.next::<Up>(),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: 1024
            })
        );
    }

    #[test]
    fn encoding_refuses_oversized_messages_and_leaves_output_intact() {
        let mut out = vec![9];
        let mut input = Batch::default();
        input.push_raw(&[0; 2048]);
        let msg = Down::Run {
            job: 1,
            task: "t".into(),
            input,
        };
        assert!(matches!(
            encode(&msg, &mut out, 1024),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(out, [9]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut dec = Decoder::new(1024);
        dec.feed(&[3, 0, 0, 0, 0xff, 0xff, 0xff]);
        assert!(matches!(dec.next::<Up>(), Err(FrameError::Decode(_))));
        fuzz_decode(
            &[5, 0, 0, 0, 1, 2, 3, 4, 5, 0xff, 0xff, 0xff, 0xff],
            1 << 20,
        );
    }

    /// A stable-toolchain companion of the cargo-fuzz target: seeded random
    /// bytes, and valid frames with random corruption, never panic.
    #[test]
    fn random_and_corrupted_frames_never_panic() {
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut input = Batch::default();
        input.push(&("item", 7_u64)).unwrap();
        let valid = frame(&Down::Run {
            job: 3,
            task: "t".into(),
            input,
        });
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            fuzz_decode(&bytes, 1 << 16);
            bytes = valid.clone();
            let at = (next() as usize) % bytes.len();
            bytes[at] = next() as u8;
            fuzz_decode(&bytes, 1 << 16);
        }
    }

    #[test]
    fn batches_split_and_outcomes_align() {
        let mut b = Batch::default();
        for i in 0..3_u64 {
            b.push(&i).unwrap();
        }
        let parts = b.split();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            postcard::from_bytes::<u64>(parts[2].item(0).unwrap()).unwrap(),
            2
        );
        let mut o = Outcomes::default();
        o.push_ok(&[1]);
        o.push_err(TaskError::codec("x"));
        o.push_ok(&[2]);
        let items: Vec<_> = o.into_items().collect();
        assert_eq!(items[0].as_ref().unwrap(), &[1]);
        assert!(items[1].is_err());
        assert_eq!(items[2].as_ref().unwrap(), &[2]);
    }

    #[test]
    fn malformed_batch_items_are_none() {
        let b = Batch {
            bytes: vec![1, 2],
            ends: vec![1, 9, 0],
        };
        assert_eq!(b.item(0), Some(&[1][..]));
        assert_eq!(b.item(1), None);
        assert_eq!(b.item(2), None);
        assert_eq!(b.item(3), None);
    }
}
