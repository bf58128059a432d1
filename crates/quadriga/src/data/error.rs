//! [`DataError`] (a file, a pattern, a header or a record that cannot be
//! used) and [`MapReduceError`] (the partitions whose task failed).

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::error::TaskError;

/// Why files could not be partitioned, read or parsed.
///
/// A task that parses a partition returns it as its error (`Result<_,
/// DataError>`), so its message, with the file and line, reaches the caller
/// inside the task's [`TaskError`] from any backend.
///
/// ```
/// use quadriga::data::Partitioner;
///
/// let err = Partitioner::file("/no/such/file.csv").partitions().unwrap_err();
/// assert!(err.to_string().starts_with("/no/such/file.csv: "), "{err}");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file could not be opened, measured or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A glob pattern is not valid.
    #[error("bad glob pattern {pattern:?}: {message}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// A glob pattern matches no file.
    #[error("no file matches {pattern:?}")]
    NoMatch {
        /// The pattern.
        pattern: String,
    },
    /// A record terminator that cannot split a file unambiguously.
    #[error("bad record terminator {terminator:?}: {message}")]
    Terminator {
        /// The terminator's bytes, lossily as text.
        terminator: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file that should start with a header is empty.
    #[error("{}: empty file, no header", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The header has no column of that name.
    #[error("{}: no column {column:?} in the header ({header})", path.display())]
    NoColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The header's columns, comma-separated.
        header: String,
    },
    /// A record that cannot be parsed.
    #[error("{}:{line}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The record's number in its file, from 1 (the line number when the
        /// terminator is a newline).
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A file is shorter than a partition of it says: it changed after it
    /// was partitioned.
    #[error("{}: ends at byte {len}, before the partition's end {end}: the file changed", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length now.
        len: u64,
        /// The partition's end.
        end: u64,
    },
}

impl DataError {
    pub(super) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// The partitions whose task did not produce an output, each with its
/// [`TaskError`]; every other partition ran to its end.
///
/// ```
/// use quadriga::ThreadPool;
/// use quadriga::data::MapReduce;
///
/// #[quadriga::task]
/// fn parse(s: String) -> Result<u64, std::num::ParseIntError> {
///     s.parse()
/// }
///
/// let pool = ThreadPool::new(2)?;
/// let inputs = ["1", "x", "3"].map(String::from);
/// let err = MapReduce::new(&pool, parse, inputs).reduce(|a, b| a + b).unwrap_err();
/// assert_eq!(err.total(), 3);
/// assert_eq!(err.failures().len(), 1);
/// assert_eq!(err.failures()[0].0, 1);
/// # Ok::<(), quadriga::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MapReduceError {
    failures: Vec<(usize, TaskError)>,
    total: usize,
}

impl MapReduceError {
    pub(super) fn new(failures: Vec<(usize, TaskError)>, total: usize) -> Self {
        debug_assert!(!failures.is_empty());
        Self { failures, total }
    }

    /// Each failed task as (the index of its input, its error), in input
    /// order. Never empty. A failed combine task is reported at the index of
    /// the first input it combined.
    pub fn failures(&self) -> &[(usize, TaskError)] {
        &self.failures
    }

    /// How many inputs there were.
    pub fn total(&self) -> usize {
        self.total
    }
}

impl fmt::Display for MapReduceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, err) = &self.failures[0];
        write!(
            f,
            "{} of {} partitions failed; the first, #{first}: {err}",
            self.failures.len(),
            self.total
        )
    }
}

impl std::error::Error for MapReduceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.failures[0].1)
    }
}
