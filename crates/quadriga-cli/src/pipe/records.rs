//! Where records end: `--recend`, `--recstart`, `--regexp`.
//!
//! A record boundary is a position `p` where the bytes before `p` end with
//! the record end and the bytes from `p` start with the record start. With
//! `--regexp` both are regular expressions; otherwise plain strings (the
//! default: end `\n`, start empty, so a boundary follows every newline).

use memchr::memmem;
use regex::bytes::Regex;

/// Finds record boundaries.
#[derive(Debug, Clone)]
pub(crate) enum Splitter {
    /// Plain strings: the boundary lies `end_len` bytes into each match of
    /// `end ++ start`.
    Literal {
        pattern: Box<memmem::Finder<'static>>,
        end_len: usize,
        pattern_len: usize,
    },
    /// `--regexp`: `(END)(START)`; the boundary is where group 1 ends.
    Regex(Regex),
}

impl Splitter {
    /// `--recend`, `--recstart` (escapes already decoded), `--regexp`.
    pub(crate) fn new(end: &[u8], start: &[u8], regexp: bool) -> Result<Self, String> {
        if regexp {
            let end = std::str::from_utf8(end).map_err(|_| "--recend is not UTF-8")?;
            let start = std::str::from_utf8(start).map_err(|_| "--recstart is not UTF-8")?;
            let re = Regex::new(&format!("({end})(?:{start})"))
                .map_err(|e| format!("bad --recend/--recstart regular expression: {e}"))?;
            return Ok(Splitter::Regex(re));
        }
        if end.is_empty() && start.is_empty() {
            return Err("--recend and --recstart cannot both be empty".into());
        }
        let mut pattern = end.to_vec();
        pattern.extend_from_slice(start);
        Ok(Splitter::Literal {
            pattern_len: pattern.len(),
            end_len: end.len(),
            pattern: Box::new(memmem::Finder::new(&pattern).into_owned()),
        })
    }

    /// The first boundary `p` with `from < p <= data.len()` whose whole
    /// match lies in `data`, if any. (A boundary at 0 would make an empty
    /// record, so none is.)
    pub(crate) fn next(&self, data: &[u8], from: usize) -> Option<usize> {
        match self {
            Splitter::Literal {
                pattern, end_len, ..
            } => {
                // A match starting at `s` gives boundary `s + end_len > from`.
                let s0 = (from + 1).saturating_sub(*end_len);
                if s0 > data.len() {
                    return None;
                }
                pattern.find(&data[s0..]).map(|s| s0 + s + end_len)
            }
            Splitter::Regex(re) => {
                let mut at = from;
                loop {
                    let caps = re.captures_at(data, at)?;
                    let p = caps.get(1).map_or(0, |m| m.end());
                    if p > from {
                        return Some(p);
                    }
                    // An empty end matched at or before `from`: move on.
                    at = caps.get(0).map_or(at, |m| m.start()) + 1;
                    if at > data.len() {
                        return None;
                    }
                }
            }
        }
    }

    /// The boundary of the first match (end and start) that begins at or
    /// after `s` and lies whole in `data`, if any: GNU's cut for
    /// `--pipepart`, which looks for the record separator from the target
    /// on.
    pub(crate) fn first_match_from(&self, data: &[u8], s: usize) -> Option<usize> {
        if s > data.len() {
            return None;
        }
        match self {
            Splitter::Literal {
                pattern, end_len, ..
            } => pattern.find(&data[s..]).map(|i| s + i + end_len),
            Splitter::Regex(re) => re
                .captures_at(data, s)
                .and_then(|c| c.get(1))
                .map(|m| m.end()),
        }
    }

    /// The last boundary `p` with `0 < p <= limit` whose whole match lies in
    /// `data`, if any.
    pub(crate) fn last_before(&self, data: &[u8], limit: usize) -> Option<usize> {
        match self {
            Splitter::Literal {
                pattern,
                end_len,
                pattern_len,
            } => {
                // Matches starting at or before `limit - end_len`.
                let start_max = limit.checked_sub(*end_len)?;
                let hay_end = (start_max + pattern_len).min(data.len());
                let found = memmem::rfind(&data[..hay_end], pattern.needle())?;
                let p = found + end_len;
                (p > 0).then_some(p)
            }
            Splitter::Regex(_) => {
                // Forward scan: regular expressions do not search backwards.
                let mut last = None;
                let mut from = 0;
                while let Some(p) = self.next(data, from) {
                    if p > limit {
                        break;
                    }
                    last = Some(p);
                    from = p;
                }
                last
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &Splitter, data: &[u8]) -> Vec<usize> {
        let mut v = Vec::new();
        let mut from = 0;
        while let Some(p) = s.next(data, from) {
            v.push(p);
            from = p;
        }
        v
    }

    #[test]
    fn newline_ends_records() {
        let s = Splitter::new(b"\n", b"", false).unwrap();
        assert_eq!(all(&s, b"a\nbb\nc"), [2, 5]);
        assert_eq!(s.last_before(b"a\nbb\nc", 4), Some(2));
        assert_eq!(s.last_before(b"a\nbb\nc", 5), Some(5));
        assert_eq!(s.last_before(b"abc", 3), None);
    }

    #[test]
    fn start_and_end_together() {
        // A boundary needs "\n" before it and "a" after it.
        let s = Splitter::new(b"\n", b"a", false).unwrap();
        let data = b"a1\nb\na2\nc\na3\n";
        assert_eq!(all(&s, data), [5, 10]);
        assert_eq!(s.last_before(data, 9), Some(5));
        // Only a start: a boundary before each "<" but the first.
        let s = Splitter::new(b"", b"<", false).unwrap();
        assert_eq!(all(&s, b"<a><b><c>"), [3, 6]);
        assert_eq!(s.last_before(b"<a><b><c>", 6), Some(6));
        assert_eq!(s.last_before(b"<a><b><c>", 5), Some(3));
    }

    #[test]
    fn regular_expressions() {
        let s = Splitter::new(b"\\n", b"[0-9]", true).unwrap();
        assert_eq!(all(&s, b"1a\nx\n2b\n3"), [5, 8]);
        assert_eq!(s.last_before(b"1a\nx\n2b\n3", 7), Some(5));
        let s = Splitter::new(b"END\\n?", b"", true).unwrap();
        assert_eq!(all(&s, b"aEND\nbENDc"), [5, 9]);
        assert!(Splitter::new(b"(", b"", true).is_err());
        assert!(Splitter::new(b"", b"", false).is_err());
    }
}
