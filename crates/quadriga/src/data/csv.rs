//! CSV within records: [`Header`] (the column names of a file's first line)
//! and [`FieldSplitter`] (a record's fields).
//!
//! A record is one line, so a quoted field may hold the delimiter and quotes
//! but not a newline (the same limit as Dask's `read_csv` with byte-range
//! blocks). Records without a quote are cut at each delimiter, eight bytes
//! at a time, the fast path; a record with a quote goes through `csv-core`'s
//! parser (RFC 4180: `""` is a quote inside a quoted field). [`parse_int`]
//! and [`parse_float`] read numbers straight from a field's bytes.

use std::ops::Range;
use std::path::{Path, PathBuf};

use csv_core::ReadRecordResult;

use super::error::DataError;
use super::partition::Partition;

/// The column names of a CSV file's first line.
///
/// ```
/// use quadriga::data::csv::Header;
///
/// let header = Header::parse("data.csv", b"id1,v1,v3\r");
/// assert_eq!(header.names(), ["id1", "v1", "v3"]);
/// assert_eq!(header.column("v1").unwrap(), 1);
/// let err = header.column("v2").unwrap_err();
/// assert_eq!(err.to_string(), r#"data.csv: no column "v2" in the header (id1,v1,v3)"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    path: PathBuf,
    names: Vec<String>,
}

impl Header {
    /// The header of the file at `path`: its first line (ended by `\n`, a
    /// `\r` before it dropped). An empty file is [`DataError::Empty`].
    pub fn read(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let size = std::fs::metadata(path)
            .map_err(|e| DataError::io(path, e))?
            .len();
        let mut lines = Partition::new(path, 0, size).lines()?;
        match lines.next_record() {
            None => Err(DataError::Empty {
                path: path.to_owned(),
            }),
            Some(record) => Ok(Self::parse(path, record?.bytes)),
        }
    }

    /// The header in `line` (a trailing `\r` dropped), read from `path`.
    pub fn parse(path: impl Into<PathBuf>, line: &[u8]) -> Self {
        let mut splitter = FieldSplitter::new();
        let names = splitter
            .split(line)
            .iter()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .collect();
        Self {
            path: path.into(),
            names,
        }
    }

    /// The column names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The index of the column `name`, or [`DataError::NoColumn`].
    pub fn column(&self, name: &str) -> Result<usize, DataError> {
        self.names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| DataError::NoColumn {
                path: self.path.clone(),
                column: name.to_owned(),
                header: self.names.join(","),
            })
    }
}

/// Splits CSV records into fields, reusing its buffers from record to record.
///
/// A trailing `\r` (a CRLF line read with a `\n` terminator) is dropped
/// first. A record without a `"` is cut at each delimiter as it stands; one
/// with a `"` is parsed by `csv-core` (quotes removed, `""` made `"`).
///
/// ```
/// use quadriga::data::csv::FieldSplitter;
///
/// let mut splitter = FieldSplitter::new();
/// let fields = splitter.split(b"id001,\"a, \"\"b\"\"\",3\r");
/// assert_eq!(fields.len(), 3);
/// assert_eq!(fields.get(1), Some(&b"a, \"b\""[..]));
/// assert_eq!(fields.get(2), Some(&b"3"[..]));
/// assert_eq!(splitter.split(b"").len(), 1);
/// ```
#[derive(Debug)]
pub struct FieldSplitter {
    delimiter: u8,
    fields: Vec<Range<usize>>,
    unquoted: Vec<u8>,
    ends: Vec<usize>,
    parser: csv_core::Reader,
}

impl Default for FieldSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl FieldSplitter {
    /// A splitter on commas.
    pub fn new() -> Self {
        Self::with_delimiter(b',')
    }

    /// A splitter on `delimiter` (`b'\t'` for TSV).
    pub fn with_delimiter(delimiter: u8) -> Self {
        Self {
            delimiter,
            fields: Vec::new(),
            unquoted: Vec::new(),
            ends: Vec::new(),
            parser: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
        }
    }

    /// The fields of `record` (an empty record is one empty field).
    pub fn split<'a>(&'a mut self, record: &'a [u8]) -> Fields<'a> {
        let record = record.strip_suffix(b"\r").unwrap_or(record);
        self.fields.clear();
        let quoted = split_plain(record, self.delimiter, &mut self.fields);
        if !quoted {
            Fields {
                data: record,
                fields: &self.fields,
            }
        } else {
            self.fields.clear();
            self.split_quoted(record);
            Fields {
                data: &self.unquoted,
                fields: &self.fields,
            }
        }
    }

    /// Parses `record` with `csv-core` into `unquoted` and `fields`.
    fn split_quoted(&mut self, record: &[u8]) {
        self.parser.reset();
        // Unquoting never lengthens a field.
        self.unquoted.clear();
        self.unquoted.resize(record.len(), 0);
        if self.ends.len() < 16 {
            self.ends.resize(16, 0);
        }
        let (mut input, mut nout, mut nends) = (record, 0, 0);
        loop {
            let (result, nin, out, ends) =
                self.parser
                    .read_record(input, &mut self.unquoted[nout..], &mut self.ends[nends..]);
            input = &input[nin..];
            nout += out;
            nends += ends;
            match result {
                // Everything fed: an empty input then tells the parser the
                // record ends here.
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    let len = self.unquoted.len();
                    self.unquoted.resize(2 * len + 1, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len();
                    self.ends.resize(2 * len, 0);
                }
                ReadRecordResult::Record | ReadRecordResult::End => break,
            }
        }
        self.unquoted.truncate(nout);
        let mut start = 0;
        for &end in &self.ends[..nends] {
            self.fields.push(start..end);
            start = end;
        }
        if self.fields.is_empty() {
            self.fields.push(0..0);
        }
    }
}

/// Eight bytes of `b`, for [`split_plain`]'s word-at-a-time search.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// The high bit of each byte of `word` that equals `b`'s, and no other bit.
fn bytes_equal(word: u64, b: u64) -> u64 {
    const LOW7: u64 = splat(0x7f);
    let x = word ^ b;
    // A byte of `x` is zero exactly where the bytes were equal; adding 0x7f
    // to its low seven bits sets its high bit unless they are all zero, and
    // no carry crosses into the next byte.
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// Pushes the ranges of `record`'s fields, cut at every `delimiter`, onto
/// `fields`, and says whether it holds a `"` (then they are not the fields:
/// quotes need the real parser).
///
/// Eight bytes at a time (a word-wide compare, then one step per delimiter
/// found): a plain loop per byte took about 20% more CPU time over the
/// `data` bench suite's file (1e7 rows of 9 short fields).
fn split_plain(record: &[u8], delimiter: u8, fields: &mut Vec<Range<usize>>) -> bool {
    let (delims, quotes) = (splat(delimiter), splat(b'"'));
    let mut start = 0;
    let mut quoted = 0;
    let mut words = record.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        quoted |= bytes_equal(word, quotes);
        let mut hits = bytes_equal(word, delims);
        // Lowest bit first: the delimiters in the order they appear.
        while hits != 0 {
            let at = base + (hits.trailing_zeros() / 8) as usize;
            fields.push(start..at);
            start = at + 1;
            hits &= hits - 1;
        }
        base += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == delimiter {
            fields.push(start..base + i);
            start = base + i + 1;
        }
        quoted |= u64::from(b == b'"');
    }
    fields.push(start..record.len());
    quoted != 0
}

/// A field as an integer: an optional `+` or `-`, then ASCII digits only;
/// `None` for anything else, an empty field, or one out of range.
///
/// ```
/// use quadriga::data::csv::parse_int;
///
/// assert_eq!(parse_int(b"42"), Some(42));
/// assert_eq!(parse_int(b"-7"), Some(-7));
/// assert_eq!(parse_int(b"9223372036854775808"), None);
/// assert_eq!(parse_int(b"4.0"), None);
/// assert_eq!(parse_int(b""), None);
/// ```
pub fn parse_int(field: &[u8]) -> Option<i64> {
    let (negative, digits) = match field {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, field),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulated negative, so that i64::MIN fits.
    let mut n: i64 = 0;
    for &d in digits {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

/// A field as a float, all of it (what Rust's `f64::from_str` accepts:
/// `1.5`, `-2e-3`, `inf`, `NaN`...); `None` otherwise. Parsed from the
/// bytes by the `fast-float2` crate, with no UTF-8 check first: about twice
/// as fast as `std::str::from_utf8` and `str::parse` on short fields.
///
/// ```
/// use quadriga::data::csv::parse_float;
///
/// assert_eq!(parse_float(b"81.541823"), Some(81.541823));
/// assert_eq!(parse_float(b"-1e3"), Some(-1000.0));
/// assert_eq!(parse_float(b"1.5x"), None);
/// assert_eq!(parse_float(b""), None);
/// ```
pub fn parse_float(field: &[u8]) -> Option<f64> {
    fast_float2::parse(field).ok()
}

/// The fields of one record, as [`FieldSplitter::split`] found them.
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a> {
    data: &'a [u8],
    fields: &'a [Range<usize>],
}

impl<'a> Fields<'a> {
    /// How many fields the record has.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether it has none (never: an empty record is one empty field).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The field at `index`, unquoted.
    pub fn get(&self, index: usize) -> Option<&'a [u8]> {
        let range = self.fields.get(index)?;
        Some(&self.data[range.clone()])
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let data = self.data;
        self.fields.iter().map(move |r| &data[r.clone()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &[u8]) -> Vec<String> {
        let mut s = FieldSplitter::new();
        s.split(line)
            .iter()
            .map(|f| String::from_utf8(f.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn unquoted_and_quoted_records_split_alike() {
        assert_eq!(split(b"a,b,,c"), ["a", "b", "", "c"]);
        assert_eq!(split(b"a,\"b\",,c"), ["a", "b", "", "c"]);
        assert_eq!(split(b"\"x,y\",\"\"\"q\"\"\"\r"), ["x,y", "\"q\""]);
        assert_eq!(split(b","), ["", ""]);
        assert_eq!(split(b"\"\""), [""]);
    }

    #[test]
    fn the_word_at_a_time_search_agrees_with_a_byte_loop() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Bytes next to the delimiter's and the quote's in value, and with
        // the high bit set, where a word-wide compare could go wrong.
        let alphabet = [
            b',', b'"', b'a', 0xac, 0xa2, b'-', b'+', b'!', 0, 0xff, 0x80, b'\t',
        ];
        let mut fields = Vec::new();
        for round in 0..5000 {
            let len = (next() % 40) as usize;
            let record: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            for delimiter in [b',', b'\t'] {
                fields.clear();
                let quoted = split_plain(&record, delimiter, &mut fields);
                let mut want = Vec::new();
                let mut start = 0;
                for (i, &b) in record.iter().enumerate() {
                    if b == delimiter {
                        want.push(start..i);
                        start = i + 1;
                    }
                }
                want.push(start..record.len());
                assert_eq!(fields, want, "round {round}: {record:?}");
                assert_eq!(quoted, record.contains(&b'"'), "round {round}: {record:?}");
            }
        }
    }

    #[test]
    fn numbers_parse_as_the_standard_library_parses_them() {
        let cases = [
            "0",
            "-0",
            "+5",
            "007",
            "42",
            "-9223372036854775808",
            "9223372036854775807",
            "9223372036854775808",
            "12345678901234567890",
            "",
            "-",
            "+",
            "--1",
            " 1",
            "1 ",
            "1e5",
            "81.541823",
            "-1.5e-3",
            ".5",
            "5.",
            "inf",
            "-infinity",
            "NaN",
            "1_000",
            "0x10",
            "1e400",
        ];
        for s in cases {
            assert_eq!(parse_int(s.as_bytes()), s.parse::<i64>().ok(), "{s:?}");
            let (ours, std) = (parse_float(s.as_bytes()), s.parse::<f64>().ok());
            let both_nan = ours.is_some_and(f64::is_nan) && std.is_some_and(f64::is_nan);
            assert!(ours == std || both_nan, "{s:?}: {ours:?} vs {std:?}");
        }
    }

    #[test]
    fn a_long_quoted_record_grows_the_buffers() {
        let fields: Vec<String> = (0..100).map(|i| format!("\"f{i}\"")).collect();
        let line = fields.join(",");
        let got = split(line.as_bytes());
        assert_eq!(got.len(), 100);
        assert_eq!(got[99], "f99");
    }
}
