//! Framing: a little-endian `u32` length, then that many bytes of one
//! postcard-encoded message, bounded on both sides.

use serde::{Deserialize, Serialize};

/// The default bound on one frame: 256 MiB.
pub(crate) const DEFAULT_MAX_FRAME: usize = 256 << 20;

/// Why bytes could not be read as frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("a frame of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("a frame could not be decoded: {0}")]
    Decode(String),
    #[error("an input holds a descriptor that was lost in transit")]
    LostDescriptor,
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
