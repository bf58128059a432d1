//! [`Records`]: a partition's records, read from its range alone.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::error::DataError;
use super::partition::{Partition, read_full_at};
use super::terminator::Terminator;

/// How much of a partition is read at a time (a record longer than this
/// grows the buffer to hold it).
const CHUNK: usize = 1 << 20;

/// One record: its bytes without the terminator, and where it starts in its
/// file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record's bytes, its terminator left out (a CRLF line keeps its
    /// `\r` when the terminator is `\n`).
    pub bytes: &'a [u8],
    /// The offset of its first byte in the file.
    pub offset: u64,
}

/// The records of one [`Partition`], in order, read 1 MiB at a time from
/// exactly `start..end` (see [`Partition::records`]).
///
/// A lending iterator (each [`Record`] borrows the buffer until the next
/// call), so it is driven by `while let`:
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("quadriga-doc-rec-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let path = dir.join("lines.txt");
/// std::fs::write(&path, "one\ntwo\nthree")?;
/// let part = quadriga::data::Partition::new(&path, 4, 13);
/// let mut records = part.lines()?;
/// let mut seen = Vec::new();
/// while let Some(record) = records.next_record() {
///     let record = record?;
///     seen.push((record.offset, record.bytes.to_vec()));
/// }
/// assert_eq!(seen, [(4, b"two".to_vec()), (8, b"three".to_vec())]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Records {
    file: File,
    path: PathBuf,
    terminator: Terminator,
    /// The file offset of `buf[0]`.
    base: u64,
    /// The next offset to read from the file.
    next: u64,
    end: u64,
    buf: Vec<u8>,
    /// `buf[head..tail]` is read and not yet handed out.
    head: usize,
    tail: usize,
}

impl Records {
    pub(super) fn open(part: &Partition, terminator: Terminator) -> Result<Self, DataError> {
        let file = File::open(&part.path).map_err(|e| DataError::io(&part.path, e))?;
        Ok(Self {
            file,
            path: part.path.clone(),
            terminator,
            base: part.start,
            next: part.start,
            // A range that ends before it starts holds nothing.
            end: part.end.max(part.start),
            buf: Vec::new(),
            head: 0,
            tail: 0,
        })
    }

    /// The next record, `None` after the last, or the error that stopped the
    /// reading (after which it returns `None`).
    pub fn next_record(&mut self) -> Option<Result<Record<'_>, DataError>> {
        let len = self.terminator.as_bytes().len();
        let mut scanned = self.head;
        let (from, to, next_head) = loop {
            if let Some(i) = self.terminator.find(&self.buf[scanned..self.tail]) {
                let at = scanned + i;
                break (self.head, at, at + len);
            }
            if self.next == self.end {
                if self.head == self.tail {
                    return None;
                }
                // The last record of the file, without a terminator.
                break (self.head, self.tail, self.tail);
            }
            // A terminator may straddle what is read and what comes next.
            scanned = self.tail.saturating_sub(len - 1).max(self.head);
            match self.fill() {
                Ok(shift) => scanned -= shift,
                Err(e) => {
                    self.next = self.end;
                    self.head = self.tail;
                    return Some(Err(e));
                }
            }
        };
        self.head = next_head;
        Some(Ok(Record {
            bytes: &self.buf[from..to],
            offset: self.base + from as u64,
        }))
    }

    /// Moves the unread bytes to the front of the buffer (returning by how
    /// much they moved), grows it if they fill it, and reads more after them.
    fn fill(&mut self) -> Result<usize, DataError> {
        let shift = self.head;
        self.buf.copy_within(self.head..self.tail, 0);
        self.base += shift as u64;
        self.tail -= shift;
        self.head = 0;
        if self.tail == self.buf.len() {
            // Never more than the range needs: a small partition, a small
            // buffer.
            let left = usize::try_from(self.end - self.next).unwrap_or(usize::MAX);
            let grown = (self.buf.len() * 2).max(CHUNK).min(self.tail + left);
            self.buf.resize(grown, 0);
        }
        let room = self.buf.len() - self.tail;
        let want = room.min(usize::try_from(self.end - self.next).unwrap_or(usize::MAX));
        let got = read_full_at(
            &self.file,
            &mut self.buf[self.tail..self.tail + want],
            self.next,
        )
        .map_err(|e| DataError::io(&self.path, e))?;
        if got < want {
            return Err(DataError::Truncated {
                path: self.path.clone(),
                len: self.next + got as u64,
                end: self.end,
            });
        }
        self.tail += got;
        self.next += got as u64;
        Ok(shift)
    }

    /// The error for the record at `offset` of this file: [`DataError::Malformed`]
    /// with its record number, counted by reading the file from its start
    /// (only when a record is bad).
    pub fn malformed(&self, offset: u64, message: impl Into<String>) -> DataError {
        match record_number(&self.file, &self.path, &self.terminator, offset) {
            Ok(line) => DataError::Malformed {
                path: self.path.clone(),
                line,
                message: message.into(),
            },
            Err(e) => e,
        }
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The number (from 1) of the record that starts at `offset`: one more than
/// the terminators that end before it.
fn record_number(
    file: &File,
    path: &Path,
    terminator: &Terminator,
    offset: u64,
) -> Result<u64, DataError> {
    let len = terminator.as_bytes().len();
    let mut buf = vec![0; CHUNK.max(2 * len)];
    let mut count = 0u64;
    let mut at = 0u64;
    // Windows overlap by len - 1 bytes; a terminator is counted in the
    // window where it starts, and only if it ends by `offset`.
    while at < offset {
        let want = buf
            .len()
            .min(usize::try_from(offset - at).unwrap_or(usize::MAX));
        let got = read_full_at(file, &mut buf[..want], at).map_err(|e| DataError::io(path, e))?;
        if got == 0 {
            break;
        }
        count += terminator.count(&buf[..got]) as u64;
        if got < want || at + got as u64 >= offset {
            break;
        }
        // Step so that the next window starts len - 1 bytes back; one that
        // straddles is then found there, and no whole one is found twice
        // (a terminator cannot overlap itself).
        at += (got - (len - 1)) as u64;
    }
    Ok(count + 1)
}
