//! CSV within records: [`Header`] (the column names of a file's first line)
//! and [`FieldSplitter`] (a record's fields).
//!
//! A record is one line, so a quoted field may hold the delimiter and quotes
//! but not a newline (the same limit as Dask's `read_csv` with byte-range
//! blocks). Records without a quote are split with `memchr` on the
//! delimiter, the fast path; a record with a quote goes through `csv-core`'s
//! parser (RFC 4180: `""` is a quote inside a quoted field).

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
        // One pass over the bytes: fields are short, so a plain loop beats
        // a memchr call per field (measured: see the `data` bench suite).
        let mut start = 0;
        let mut quoted = false;
        for (at, &b) in record.iter().enumerate() {
            if b == self.delimiter {
                self.fields.push(start..at);
                start = at + 1;
            }
            quoted |= b == b'"';
        }
        if !quoted {
            self.fields.push(start..record.len());
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
    fn a_long_quoted_record_grows_the_buffers() {
        let fields: Vec<String> = (0..100).map(|i| format!("\"f{i}\"")).collect();
        let line = fields.join(",");
        let got = split(line.as_bytes());
        assert_eq!(got.len(), 100);
        assert_eq!(got[99], "f99");
    }
}
