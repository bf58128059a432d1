//! Dask's `dd.read_csv(FILE).groupby("id1").v1.sum().compute()`, on threads
//! or processes:
//!
//! ```text
//! $ cargo run --release -p quadriga --example gen_groupby -- 10000000 G1_1e7.csv
//! $ cargo run --release -p quadriga --example groupby -- G1_1e7.csv [--processes]
//! id001,299930
//! id002,300568
//! ...
//! ```
//!
//! The file is cut into byte ranges that end just after a newline (a few per
//! core); each range is parsed and summed by a task, and the partial sums are
//! added up in the caller as they arrive. A row that cannot be parsed stops
//! the run with its line number.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use quadriga::data::{DataError, Key, MapReduce, Partition, Partitioner, csv};
use quadriga::{Executor, ProcessPool, ThreadPool};

/// Sums by key, keyed by the key's bytes, inline (no allocation for a key,
/// and one cache miss per lookup, not two).
type Sums = HashMap<Key, i64, foldhash::fast::FixedState>;

/// Sums column `value` by column `key` over one partition of a CSV file of
/// `columns` columns. Blank lines are skipped; a row with another number of
/// fields, or a value that is not an integer, is an error with its line.
#[quadriga::task]
fn sum_by(part: Partition, key: usize, value: usize, columns: usize) -> Result<Sums, DataError> {
    let mut sums = Sums::default();
    let mut records = part.lines()?;
    let mut splitter = csv::FieldSplitter::new();
    while let Some(record) = records.next_record() {
        let record = record?;
        if record.bytes.is_empty() || record.bytes == b"\r" {
            continue;
        }
        let offset = record.offset;
        let fields = splitter.split(record.bytes);
        if fields.len() != columns {
            let message = format!("{} fields, expected {columns}", fields.len());
            return Err(records.malformed(offset, message));
        }
        let (Some(k), Some(v)) = (fields.get(key), fields.get(value)) else {
            unreachable!("both columns are below `columns`");
        };
        let Some(v) = csv::parse_int(v) else {
            let message = format!("{:?} is not an integer", String::from_utf8_lossy(v));
            return Err(records.malformed(offset, message));
        };
        match sums.get_mut(k) {
            Some(sum) => *sum += v,
            None => {
                sums.insert(Key::new(k), v);
            }
        }
    }
    Ok(sums)
}

/// Adds `b`'s sums into `a`'s.
fn merge(mut a: Sums, b: Sums) -> Sums {
    for (k, v) in b {
        *a.entry(k).or_default() += v;
    }
    a
}

/// The sum of `v1` by `id1` of the CSV file at `path`, through `pool`.
fn sum_v1_by_id1(
    pool: &impl Executor,
    workers: usize,
    path: &Path,
) -> Result<Vec<(String, i64)>, Box<dyn std::error::Error>> {
    let header = csv::Header::read(path)?;
    let (key, value) = (header.column("id1")?, header.column("v1")?);
    let columns = header.names().len();
    let parts = Partitioner::file(path)
        .header(true)
        .workers(workers)
        .partitions()?;
    let inputs = parts.into_iter().map(|p| (p, key, value, columns));
    let sums = MapReduce::new(pool, sum_by, inputs).reduce(merge)?;
    let mut sums: Vec<(String, i64)> = sums
        .into_iter()
        .map(|(k, v)| (k.to_string_lossy(), v))
        .collect();
    sums.sort();
    Ok(sums)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    quadriga::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let processes = args.iter().any(|a| a == "--processes");
    let Some(path) = args.iter().find(|a| !a.starts_with("--")) else {
        return Err("usage: groupby FILE [--processes]".into());
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let sums = if processes {
        sum_v1_by_id1(&ProcessPool::new(workers)?, workers, Path::new(path))?
    } else {
        sum_v1_by_id1(&ThreadPool::new(workers)?, workers, Path::new(path))?
    };
    let mut out = String::new();
    for (id1, sum) in &sums {
        out += &format!("{id1},{sum}\n");
    }
    print!("{out}");
    eprintln!(
        "{} groups in {:.3} s on {workers} {}",
        sums.len(),
        started.elapsed().as_secs_f64(),
        if processes { "processes" } else { "threads" }
    );
    Ok(())
}
