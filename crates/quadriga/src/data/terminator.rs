//! [`Terminator`]: the bytes that end a record (a newline by default).

use serde::{Deserialize, Serialize};

use super::error::DataError;

/// The bytes that end a record: `b"\n"` by default, or any non-empty sequence
/// that cannot overlap itself (`b"\r\n"`, `b"\0"`, `b"</rec>"`).
///
/// A record is the bytes up to and including its terminator; the last record
/// of a file may lack one. A terminator that overlaps itself (a proper prefix
/// equal to a suffix, as in `b"\n\n"` or `b"aa"`) is refused: where its
/// occurrences begin would depend on where a reader starts looking, so
/// partitions cut from the middle of a file could disagree with a read from
/// its start.
///
/// ```
/// use quadriga::data::Terminator;
///
/// assert_eq!(Terminator::default().as_bytes(), b"\n");
/// assert!(Terminator::new(b"\r\n").is_ok());
/// assert!(Terminator::new(b"\n\n").is_err());
/// assert!(Terminator::new(b"").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>", into = "Vec<u8>")]
pub struct Terminator(Box<[u8]>);

impl Terminator {
    /// The terminator `bytes`, or [`DataError::Terminator`] when it is empty
    /// or overlaps itself.
    pub fn new(bytes: impl AsRef<[u8]>) -> Result<Self, DataError> {
        let bytes = bytes.as_ref();
        let refuse = |message: &str| DataError::Terminator {
            terminator: String::from_utf8_lossy(bytes).into_owned(),
            message: message.to_owned(),
        };
        if bytes.is_empty() {
            return Err(refuse("empty"));
        }
        if (1..bytes.len()).any(|k| bytes[..k] == bytes[bytes.len() - k..]) {
            return Err(refuse(
                "it overlaps itself (a prefix equals a suffix), so records would depend on where reading starts",
            ));
        }
        Ok(Self(bytes.into()))
    }

    /// A newline, `b"\n"` (which also ends CRLF lines; their `\r` stays in
    /// the record for the parser to drop).
    pub fn newline() -> Self {
        Self(Box::new(*b"\n"))
    }

    /// The terminator's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Where the first occurrence in `haystack` begins.
    pub(super) fn find(&self, haystack: &[u8]) -> Option<usize> {
        match *self.0 {
            [b] => memchr::memchr(b, haystack),
            _ => memchr::memmem::find(haystack, &self.0),
        }
    }

    /// How many occurrences `haystack` holds, not counting one cut at its end.
    pub(super) fn count(&self, haystack: &[u8]) -> usize {
        match *self.0 {
            [b] => memchr::memchr_iter(b, haystack).count(),
            _ => memchr::memmem::find_iter(haystack, &self.0).count(),
        }
    }
}

impl Default for Terminator {
    fn default() -> Self {
        Self::newline()
    }
}

impl TryFrom<Vec<u8>> for Terminator {
    type Error = DataError;

    fn try_from(bytes: Vec<u8>) -> Result<Self, DataError> {
        Self::new(bytes)
    }
}

impl From<Terminator> for Vec<u8> {
    fn from(t: Terminator) -> Vec<u8> {
        t.0.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_overlapping_terminators_are_refused() {
        for bad in [&b"aa"[..], b"aba", b"\n\n", b"abcab"] {
            assert!(Terminator::new(bad).is_err(), "{bad:?}");
        }
        for good in [&b"\n"[..], b"\r\n", b"ab", b"abc", b"aab", b"</rec>"] {
            assert!(Terminator::new(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn find_and_count_agree_for_one_and_many_bytes() {
        let t = Terminator::new(b"\r\n").unwrap();
        assert_eq!(t.find(b"ab\r\ncd\r\n"), Some(2));
        assert_eq!(t.count(b"ab\r\ncd\r\nx\r"), 2);
        let n = Terminator::newline();
        assert_eq!(n.find(b"abc"), None);
        assert_eq!(n.count(b"a\nb\n\n"), 3);
    }
}
