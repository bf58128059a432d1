//! [`Partition`] (a byte range of one file, record-aligned) and
//! [`Partitioner`] (a file, a list or a glob cut into partitions).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::boundary::Boundary;
use super::error::DataError;
use super::records::Records;
use super::terminator::Terminator;

/// The smallest block [`Partitioner`] chooses by itself: 1 MiB.
pub const MIN_AUTO_BLOCK: u64 = 1 << 20;
/// The largest block [`Partitioner`] chooses by itself: 256 MiB.
pub const MAX_AUTO_BLOCK: u64 = 256 << 20;
/// Partitions per worker that [`Partitioner`] aims for when it chooses the
/// block size: enough that a slow partition does not leave workers idle.
pub const PARTITIONS_PER_WORKER: u64 = 4;

/// The window in which a boundary is looked for, read after read.
const SCAN: usize = 64 << 10;

/// The bytes `start..end` of one file: whole records, and only those.
///
/// A plain serde value, so it travels to a worker process or a cluster
/// worker, which then opens `path` itself: **every worker must see the file
/// at the same path** (the same machine, or a shared file system mounted at
/// the same place on every host). A path that is not UTF-8 cannot be
/// serialised.
///
/// A partition made by [`Partitioner`] starts at the start of the file's data
/// or just after a terminator, and ends just after a terminator or at the end
/// of the file: reading it ([`records`](Self::records),
/// [`reader`](Self::reader)) reads exactly `start..end`, nothing before and
/// nothing past it.
///
/// ```
/// use quadriga::data::Partition;
///
/// let p = Partition::new("data.csv", 100, 250);
/// let json = serde_json::to_string(&p).unwrap();
/// assert_eq!(json, r#"{"path":"data.csv","start":100,"end":250}"#);
/// assert_eq!(p.len(), 150);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Partition {
    /// The file.
    pub path: PathBuf,
    /// The offset of its first byte.
    pub start: u64,
    /// The offset just past its last byte.
    pub end: u64,
}

impl Partition {
    /// The bytes `start..end` of `path`.
    pub fn new(path: impl Into<PathBuf>, start: u64, end: u64) -> Self {
        assert!(
            start <= end,
            "a partition's start {start} is past its end {end}"
        );
        Self {
            path: path.into(),
            start,
            end,
        }
    }

    /// Its length in bytes (none if `end` is before `start`, as a value
    /// deserialised from elsewhere may say).
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader of exactly its bytes.
    pub fn reader(&self) -> Result<io::Take<File>, DataError> {
        let mut file = File::open(&self.path).map_err(|e| DataError::io(&self.path, e))?;
        file.seek(SeekFrom::Start(self.start))
            .map_err(|e| DataError::io(&self.path, e))?;
        Ok(file.take(self.len()))
    }

    /// Its records, each ended by `terminator` (the last of the file perhaps
    /// not), read from its range alone.
    pub fn records(&self, terminator: &Terminator) -> Result<Records, DataError> {
        Records::open(self, terminator.clone())
    }

    /// Its lines: [`records`](Self::records) ended by `\n`.
    pub fn lines(&self) -> Result<Records, DataError> {
        self.records(&Terminator::newline())
    }
}

/// What to partition, as given.
#[derive(Clone, Debug)]
enum Sources {
    Files(Vec<PathBuf>),
    Glob(String),
}

/// Cuts files into [`Partition`]s of about one block each, every boundary
/// just after a record terminator, so that every record lies in exactly one
/// partition and none is split.
///
/// A boundary is found from the block's nominal end `o`: it is the end of the
/// first terminator that ends at `o` or later (the file's end if none does),
/// found by reading forward from `o - len(terminator)`; so the partitioner
/// reads at most one record (and a window of 64 KiB) per boundary, and a
/// worker reads its partition alone. Another rule than a terminator can be
/// given as a [`Boundary`] (`quadriga run --pipepart` cuts by its own). A partition never spans two files, a
/// file smaller than a block is one partition, an empty file is none, and a
/// record longer than a block makes its partition longer than a block.
///
/// The block size is [`block_size`](Self::block_size) if given, else the
/// total size over [`workers`](Self::workers) × [`PARTITIONS_PER_WORKER`],
/// kept between [`MIN_AUTO_BLOCK`] and [`MAX_AUTO_BLOCK`].
///
/// ```
/// use quadriga::data::Partitioner;
///
/// let dir = std::env::temp_dir().join(format!("quadriga-doc-part-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("data.csv");
/// std::fs::write(&path, "k,v\na,1\nbb,2\nccc,3\n")?;
///
/// let parts = Partitioner::file(&path).header(true).block_size(5).partitions()?;
/// let mut lines = Vec::new();
/// for part in &parts {
///     let mut records = part.lines()?;
///     while let Some(record) = records.next_record() {
///         lines.push(String::from_utf8(record?.bytes.to_vec()).unwrap());
///     }
/// }
/// assert_eq!(lines, ["a,1", "bb,2", "ccc,3"]);
/// assert_eq!(parts.len(), 2);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Partitioner {
    sources: Sources,
    block_size: Option<u64>,
    workers: Option<usize>,
    boundary: Arc<dyn Boundary>,
    header: bool,
    skip: u64,
}

impl Partitioner {
    /// One file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::files([path])
    }

    /// Files in this order (none makes no partition).
    pub fn files<P: Into<PathBuf>>(paths: impl IntoIterator<Item = P>) -> Self {
        Self::with(Sources::Files(paths.into_iter().map(Into::into).collect()))
    }

    /// The files matching a glob pattern (`data/*.csv`, `logs/**/*.log`),
    /// sorted by path; a pattern that matches nothing is an error when the
    /// partitions are made.
    pub fn glob(pattern: impl Into<String>) -> Self {
        Self::with(Sources::Glob(pattern.into()))
    }

    fn with(sources: Sources) -> Self {
        Self {
            sources,
            block_size: None,
            workers: None,
            boundary: Arc::new(Terminator::default()),
            header: false,
            skip: 0,
        }
    }

    /// The block size in bytes (at least 1): a partition's nominal length.
    pub fn block_size(mut self, bytes: u64) -> Self {
        self.block_size = Some(bytes.max(1));
        self
    }

    /// The number of workers the block size is chosen for, when it is not
    /// given [default: the number of CPUs].
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n.max(1));
        self
    }

    /// The record terminator [default: `\n`].
    pub fn terminator(mut self, terminator: Terminator) -> Self {
        self.boundary = Arc::new(terminator);
        self
    }

    /// Cuts by `rule` instead of a terminator (see [`Boundary`]).
    pub fn boundary(mut self, rule: impl Boundary + 'static) -> Self {
        self.boundary = Arc::new(rule);
        self
    }

    /// Leaves the first `bytes` of every file out of every partition (a
    /// header the caller has read by its own rule) [default: 0]; a
    /// [`header`](Self::header) record is then looked for after them.
    pub fn skip(mut self, bytes: u64) -> Self {
        self.skip = bytes;
        self
    }

    /// Whether each file starts with a header record, which then lies in no
    /// partition (read it with [`csv::Header::read`](super::csv::Header::read)).
    pub fn header(mut self, yes: bool) -> Self {
        self.header = yes;
        self
    }

    /// The files, in partition order: the list as given, or the glob's
    /// matches sorted.
    pub fn paths(&self) -> Result<Vec<PathBuf>, DataError> {
        match &self.sources {
            Sources::Files(paths) => Ok(paths.clone()),
            Sources::Glob(pattern) => {
                let bad = |message: String| DataError::Pattern {
                    pattern: pattern.clone(),
                    message,
                };
                let mut paths = Vec::new();
                for entry in glob::glob(pattern).map_err(|e| bad(e.to_string()))? {
                    let path = entry.map_err(|e| {
                        let path = e.path().to_owned();
                        DataError::io(path, e.into())
                    })?;
                    if path.is_file() {
                        paths.push(path);
                    }
                }
                if paths.is_empty() {
                    return Err(DataError::NoMatch {
                        pattern: pattern.clone(),
                    });
                }
                paths.sort();
                Ok(paths)
            }
        }
    }

    /// The partitions, file by file, in file order.
    pub fn partitions(&self) -> Result<Vec<Partition>, DataError> {
        let mut files = Vec::new();
        for path in self.paths()? {
            let file = File::open(&path).map_err(|e| DataError::io(&path, e))?;
            let size = file.metadata().map_err(|e| DataError::io(&path, e))?.len();
            let skip = self.skip.min(size);
            let start = if self.header && skip < size {
                boundary(&file, &path, skip, skip, size, &*self.boundary)?
            } else {
                skip
            };
            files.push((path, file, start, size));
        }
        let total: u64 = files.iter().map(|(_, _, start, size)| size - start).sum();
        let block = self.block_size.unwrap_or_else(|| {
            let workers = self
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                as u64;
            total
                .div_ceil(workers * PARTITIONS_PER_WORKER)
                .clamp(MIN_AUTO_BLOCK, MAX_AUTO_BLOCK)
        });
        let mut parts = Vec::new();
        for (path, file, mut start, size) in files {
            while start < size {
                let end = match start.checked_add(block) {
                    Some(nominal) if nominal < size => {
                        boundary(&file, &path, start, nominal, size, &*self.boundary)?
                    }
                    _ => size,
                };
                parts.push(Partition::new(path.clone(), start, end));
                start = end;
            }
        }
        Ok(parts)
    }
}

/// The first boundary of `rule` past `from` (a record's start) that
/// `rule` finds from `max(nominal - lookback, from)` on; `size` if none.
fn boundary(
    file: &File,
    path: &Path,
    from: u64,
    nominal: u64,
    size: u64,
    rule: &dyn Boundary,
) -> Result<u64, DataError> {
    let mut at = nominal.saturating_sub(rule.lookback()).max(from);
    let overlap = rule.max_match().map(|m| m.max(1) - 1);
    let mut window = SCAN.max(2 * overlap.unwrap_or(0));
    let mut buf = Vec::new();
    while at < size {
        let want = window.min(usize::try_from(size - at).unwrap_or(usize::MAX));
        buf.resize(want, 0);
        let got = read_full_at(file, &mut buf, at).map_err(|e| DataError::io(path, e))?;
        if got < want {
            // The file shrank since it was measured.
            return Err(DataError::Truncated {
                path: path.to_owned(),
                len: at + got as u64,
                end: size,
            });
        }
        let found = match rule.find(&buf) {
            // A cut at `from` itself would leave an empty partition: look on.
            Some(0) if at == from => buf.get(1..).and_then(|w| rule.find(w)).map(|i| i + 1),
            found => found,
        };
        if let Some(i) = found {
            return Ok(at + i as u64);
        }
        if at + got as u64 >= size {
            break;
        }
        match overlap {
            // Keep the last `overlap` bytes: a match may straddle two reads.
            Some(overlap) => at += (got - overlap) as u64,
            // A match of any length: read again from `at`, four times more.
            None => window = window.saturating_mul(4),
        }
    }
    Ok(size)
}

/// Reads `buf.len()` bytes at `offset`, or fewer at the end of the file.
pub(super) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
