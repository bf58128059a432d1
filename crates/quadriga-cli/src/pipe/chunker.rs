//! `--pipe`: a stream cut into blocks at record boundaries.
//!
//! A block ends at the last record boundary at or before `--block` bytes
//! (or, when one record is longer, at the end of that record); with `-N`,
//! after exactly N records (the last block may have fewer). A header
//! (`--header`) is taken from the start of the stream and comes before every
//! block's records. The chunker is plain code over any [`Read`], so it is
//! tested without processes.

use std::io::{self, Read};

use bytes::Bytes;
use regex::bytes::Regex;

use super::records::Splitter;

/// How much to read at once when looking for the end of a long record.
const READ_MORE: usize = 1 << 20;

/// `--header`.
#[derive(Debug, Clone)]
pub(crate) enum Header {
    /// The first N records.
    Records(usize),
    /// What this expression matches at the very start.
    Regex(Regex),
}

impl Header {
    /// GNU's forms: a number of lines, `:` for one, or a regular expression.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        if s == ":" {
            return Ok(Header::Records(1));
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(Header::Records)
                .map_err(|_| format!("bad --header {s:?}"));
        }
        Regex::new(&format!("^(?:{s})"))
            .map(Header::Regex)
            .map_err(|e| format!("bad --header regular expression: {e}"))
    }
}

/// How blocks are cut.
#[derive(Debug, Clone)]
pub(crate) struct Cut {
    pub(crate) splitter: Splitter,
    /// Bytes per block (a target: whole records only).
    pub(crate) block: usize,
    /// `-N`: records per block instead.
    pub(crate) records: Option<usize>,
    pub(crate) header: Option<Header>,
}

/// Cuts a stream into blocks.
#[derive(Debug)]
pub(crate) struct Chunker<R> {
    input: R,
    cut: Cut,
    /// Read, not yet handed out.
    pending: Vec<u8>,
    eof: bool,
    /// The header, once read (empty if none).
    header: Option<Bytes>,
}

impl<R: Read> Chunker<R> {
    pub(crate) fn new(input: R, cut: Cut) -> Self {
        Chunker {
            input,
            cut,
            pending: Vec::new(),
            eof: false,
            header: None,
        }
    }

    /// Reads until `pending` holds at least `want` bytes or the input ends.
    fn fill(&mut self, want: usize) -> io::Result<()> {
        while !self.eof && self.pending.len() < want {
            let need = (want - self.pending.len()) as u64;
            let n = (&mut self.input)
                .take(need)
                .read_to_end(&mut self.pending)?;
            if n == 0 {
                self.eof = true;
            }
        }
        Ok(())
    }

    /// The header (read first, once; empty if none).
    pub(crate) fn read_header(&mut self) -> io::Result<Bytes> {
        self.header()
    }

    /// The header (read first, once).
    fn header(&mut self) -> io::Result<Bytes> {
        if let Some(h) = &self.header {
            return Ok(h.clone());
        }
        let len = match self.cut.header.clone() {
            None => 0,
            Some(Header::Records(n)) => self.nth_boundary(n, 0)?,
            Some(Header::Regex(re)) => {
                self.fill(READ_MORE)?;
                re.find(&self.pending).map_or(0, |m| m.end())
            }
        };
        let h = Bytes::copy_from_slice(&self.pending[..len]);
        self.pending.drain(..len);
        self.header = Some(h.clone());
        Ok(h)
    }

    /// The end of the `n`th record from `from` (or of the input, if it
    /// ends first), reading as needed.
    fn nth_boundary(&mut self, n: usize, from: usize) -> io::Result<usize> {
        let mut at = from;
        for _ in 0..n {
            loop {
                if let Some(p) = self.cut.splitter.next(&self.pending, at) {
                    at = p;
                    break;
                }
                if self.eof {
                    return Ok(self.pending.len());
                }
                let want = self.pending.len() + READ_MORE;
                self.fill(want)?;
            }
        }
        Ok(at)
    }

    /// The next block (header, records), or `None` at the end.
    pub(crate) fn next_block(&mut self) -> io::Result<Option<(Bytes, Bytes)>> {
        let header = self.header()?;
        let end = match self.cut.records {
            Some(n) => self.nth_boundary(n.max(1), 0)?,
            None => {
                let block = self.cut.block.max(1);
                self.fill(block)?;
                if self.pending.len() <= block && self.eof {
                    self.pending.len()
                } else {
                    match self.cut.splitter.last_before(&self.pending, block) {
                        Some(p) => p,
                        // One record longer than a block: to its end.
                        None => self.nth_boundary(1, block.min(self.pending.len()))?,
                    }
                }
            }
        };
        if end == 0 {
            return Ok(None);
        }
        // Hand out the front, keep the rest (at most one partial record
        // plus what was read past the block) for the next block.
        let mut rest = Vec::with_capacity(self.cut.block.clamp(1, 64 << 20) + 4096);
        rest.extend_from_slice(&self.pending[end..]);
        self.pending.truncate(end);
        let body = std::mem::replace(&mut self.pending, rest);
        Ok(Some((header, Bytes::from(body))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(input: &[u8], cut: Cut) -> Vec<Vec<u8>> {
        let mut c = Chunker::new(input, cut);
        let mut out = Vec::new();
        while let Some((h, b)) = c.next_block().unwrap() {
            let mut v = h.to_vec();
            v.extend_from_slice(&b);
            out.push(v);
        }
        out
    }

    fn lines(block: usize, records: Option<usize>, header: Option<Header>) -> Cut {
        Cut {
            splitter: Splitter::new(b"\n", b"", false).unwrap(),
            block,
            records,
            header,
        }
    }

    fn s(v: &[Vec<u8>]) -> Vec<String> {
        v.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn blocks_end_at_the_last_record_that_fits() {
        let b = blocks(b"aa\nbb\ncc\ndd\n", lines(7, None, None));
        assert_eq!(s(&b), ["aa\nbb\n", "cc\ndd\n"]);
        // A record longer than the block goes whole.
        let b = blocks(b"a\nbbbbbbbb\nc\n", lines(4, None, None));
        assert_eq!(s(&b), ["a\n", "bbbbbbbb\n", "c\n"]);
        // No final newline: the tail is the last block.
        let b = blocks(b"aa\nbb", lines(3, None, None));
        assert_eq!(s(&b), ["aa\n", "bb"]);
        assert!(blocks(b"", lines(3, None, None)).is_empty());
    }

    #[test]
    fn records_per_block_and_headers() {
        let b = blocks(b"1\n2\n3\n4\n5\n", lines(1, Some(2), None));
        assert_eq!(s(&b), ["1\n2\n", "3\n4\n", "5\n"]);
        let b = blocks(b"h\n1\n2\n3\n", lines(1, Some(2), Some(Header::Records(1))));
        assert_eq!(s(&b), ["h\n1\n2\n", "h\n3\n"]);
        let re = Header::parse("#.*\\n").unwrap();
        let b = blocks(b"#x\n1\n2\n", lines(2, None, Some(re)));
        assert_eq!(s(&b), ["#x\n1\n", "#x\n2\n"]);
        assert!(matches!(Header::parse(":"), Ok(Header::Records(1))));
        assert!(matches!(Header::parse("3"), Ok(Header::Records(3))));
    }

    #[test]
    fn random_records_are_never_split() {
        // A small generator (no dependency): records of random sizes.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for round in 0..50 {
            let mut input = Vec::new();
            let mut recs = Vec::new();
            for i in 0..rnd(200) {
                let mut r = format!("<{i}:").into_bytes();
                r.extend(std::iter::repeat_n(b'x', rnd(40) as usize));
                r.extend_from_slice(b">\n");
                recs.push(r.clone());
                input.extend_from_slice(&r);
            }
            let cut = Cut {
                splitter: if round % 2 == 0 {
                    Splitter::new(b">\n", b"<", false).unwrap()
                } else {
                    Splitter::new(b">\\n", b"<", true).unwrap()
                },
                block: 1 + rnd(120) as usize,
                records: None,
                header: None,
            };
            let b = blocks(&input, cut);
            assert_eq!(b.concat(), input);
            for block in &b {
                assert!(block.starts_with(b"<") && block.ends_with(b">\n"));
            }
        }
    }
}
