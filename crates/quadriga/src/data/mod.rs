//! `quadriga::data`: big files cut into partitions and map-reduced on any
//! [`Executor`](crate::Executor), the way Dask's `read_csv(...).groupby(...)`
//! works, with the task API of every other backend.
//!
//! * [`Partitioner`]: one file, a list, or a glob, cut into [`Partition`]s,
//!   byte ranges whose boundaries fall just after a record [`Terminator`]
//!   (`\n` by default), so every record lies in exactly one partition, and
//!   none is split. The block size is chosen from the total size and the
//!   number of workers, or given; another rule than a terminator is a
//!   [`Boundary`].
//! * [`Partition`]: `{ path, start, end }`, a plain serde value that travels
//!   to a worker process or a cluster worker, which reads exactly its range
//!   ([`Partition::records`], [`Partition::reader`]). Cluster workers must
//!   see the file at the same path.
//! * [`MapReduce`]: a registered task mapped over the partitions, the partial
//!   results folded in the caller or by a tree of combine tasks.
//! * [`csv`]: a file's [`Header`](csv::Header), a record's fields
//!   ([`FieldSplitter`](csv::FieldSplitter)) and numbers
//!   ([`parse_int`](csv::parse_int), [`parse_float`](csv::parse_float));
//!   [`DataError`] says which file and which line is wrong.
//! * [`Key`]: a group's key for a hash map of partial aggregates, inline
//!   when short, so a lookup costs one cache miss and not two.
//!
//! The sum of `v` by `k` of a CSV file, on threads (a
//! [`ProcessPool`](crate::ProcessPool) or a cluster pool in its place gives
//! the same result):
//!
//! ```
//! use std::collections::BTreeMap;
//! use quadriga::ThreadPool;
//! use quadriga::data::{DataError, MapReduce, Partition, Partitioner, csv};
//!
//! /// Sums column `v` by column `k` over one partition.
//! #[quadriga::task]
//! fn sum_by(part: Partition, k: usize, v: usize) -> Result<BTreeMap<String, i64>, DataError> {
//!     let mut sums = BTreeMap::new();
//!     let mut records = part.lines()?;
//!     let mut splitter = csv::FieldSplitter::new();
//!     while let Some(record) = records.next_record() {
//!         let record = record?;
//!         let fields = splitter.split(record.bytes);
//!         let (Some(key), Some(value)) = (fields.get(k), fields.get(v)) else {
//!             let offset = record.offset;
//!             return Err(records.malformed(offset, "too few fields"));
//!         };
//!         let value: i64 = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()).unwrap();
//!         *sums.entry(String::from_utf8_lossy(key).into_owned()).or_default() += value;
//!     }
//!     Ok(sums)
//! }
//!
//! # let dir = std::env::temp_dir().join(format!("quadriga-doc-data-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let path = dir.join("data.csv");
//! std::fs::write(&path, "k,v\na,1\nb,2\na,3\n")?;
//! let header = csv::Header::read(&path)?;
//! let (k, v) = (header.column("k")?, header.column("v")?);
//! let parts = Partitioner::file(&path).header(true).block_size(4).partitions()?;
//!
//! let pool = ThreadPool::new(2)?;
//! let sums = MapReduce::new(&pool, sum_by, parts.into_iter().map(|p| (p, k, v)))
//!     .reduce(|mut a, b| {
//!         for (key, n) in b {
//!             *a.entry(key).or_default() += n;
//!         }
//!         a
//!     })?;
//! assert_eq!(sums, BTreeMap::from([("a".into(), 4), ("b".into(), 2)]));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod boundary;
pub mod csv;
mod error;
mod key;
mod map_reduce;
mod partition;
mod records;
mod terminator;

pub use boundary::Boundary;
pub use error::{DataError, MapReduceError};
pub use key::Key;
pub use map_reduce::{MapReduce, Progress};
pub use partition::{
    MAX_AUTO_BLOCK, MIN_AUTO_BLOCK, PARTITIONS_PER_WORKER, Partition, Partitioner,
};
pub use records::{Record, Records};
pub use terminator::Terminator;
