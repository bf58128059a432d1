//! `quadriga::data`: partition boundaries over random files, block sizes and
//! terminators (every record in exactly one partition, none split, the same
//! records as a sequential read); the group-by equal to a sequential
//! computation on the thread pool, the process pool and (feature `cluster`)
//! a cluster pool with its own redis-server; and the bad inputs: a missing
//! file, a header without the column, a malformed row, an empty file, no
//! trailing newline, CRLF line ends.

mod common;
#[cfg(feature = "cluster")]
#[path = "common/redis.rs"]
mod redis_server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use quadriga::data::{
    Boundary, DataError, MapReduce, Partition, Partitioner, Progress, Terminator, csv,
};
use quadriga::{Executor, ProcessPool, TaskErrorKind, ThreadPool};

/// A temporary directory of this test process, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "quadriga-data-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small seeded generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The records of `bytes` read from the start: (offset, bytes without the
/// terminator); the last one may lack a terminator.
fn sequential(bytes: &[u8], terminator: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + terminator.len() <= bytes.len() {
        if &bytes[i..i + terminator.len()] == terminator {
            out.push((start as u64, bytes[start..i].to_vec()));
            i += terminator.len();
            start = i;
        } else {
            i += 1;
        }
    }
    if start < bytes.len() {
        out.push((start as u64, bytes[start..].to_vec()));
    }
    out
}

fn read_all(part: &Partition, terminator: &Terminator) -> Vec<(u64, Vec<u8>)> {
    let mut records = part.records(terminator).unwrap();
    let mut out = Vec::new();
    while let Some(record) = records.next_record() {
        let record = record.unwrap();
        out.push((record.offset, record.bytes.to_vec()));
    }
    out
}

#[test]
fn every_record_lies_in_exactly_one_partition_and_none_is_split() {
    let dir = TempDir::new();
    let mut rng = Rng(0x5eed_d47a);
    let terminators: [&[u8]; 4] = [b"\n", b"\r\n", b"</r>", b"\0"];
    for round in 0..300 {
        let term = terminators[round % terminators.len()];
        let terminator = Terminator::new(term).unwrap();
        // Records of 0 to 60 bytes, now and then a long one, of bytes that
        // include the terminator's own (but never the whole terminator).
        let mut bytes = Vec::new();
        for _ in 0..rng.below(40) {
            let len = if rng.below(20) == 0 {
                300
            } else {
                rng.below(60)
            };
            for _ in 0..len {
                let b = match rng.below(8) {
                    0 => term[0],
                    _ => b'a' + rng.below(26) as u8,
                };
                bytes.push(b);
                if bytes.ends_with(term) {
                    bytes.pop();
                }
            }
            bytes.extend_from_slice(term);
        }
        if rng.below(3) == 0 {
            // No terminator at the end.
            bytes.extend_from_slice(b"tail");
        }
        let header = rng.below(2) == 0;
        let block = 1 + rng.below(120);
        let path = dir.file(&format!("r{round}"), &bytes);
        let parts = Partitioner::file(&path)
            .terminator(terminator.clone())
            .header(header)
            .block_size(block)
            .partitions()
            .unwrap();

        let mut want = sequential(&bytes, term);
        if header && !want.is_empty() {
            want.remove(0);
        }
        let got: Vec<_> = parts
            .iter()
            .flat_map(|p| read_all(p, &terminator))
            .collect();
        assert_eq!(got, want, "round {round}: block {block}, header {header}");

        // Contiguous, non-empty, on boundaries just after a terminator.
        let data_start = if header {
            sequential(&bytes, term)
                .get(1)
                .map_or(bytes.len() as u64, |r| r.0)
        } else {
            0
        };
        let mut at = data_start;
        for p in &parts {
            assert_eq!(p.start, at, "round {round}: {parts:?}");
            assert!(p.end > p.start, "round {round}: an empty partition");
            let end = p.end as usize;
            assert!(
                end == bytes.len() || bytes[..end].ends_with(term),
                "round {round}: a boundary inside a record: {p:?}"
            );
            // At most one record past the nominal block.
            if p.end < bytes.len() as u64 {
                let records = read_all(p, &terminator);
                let last = records.last().unwrap().0;
                assert!(
                    last < p.start + block,
                    "round {round}: {p:?} runs past its block"
                );
            }
            at = p.end;
        }
        assert_eq!(at, (bytes.len() as u64).max(data_start), "round {round}");
    }
}

/// A rule of the caller's own, as `quadriga run --pipepart` has: a cut just
/// after the first `sep` that *begins* at or after the nominal end (GNU
/// parallel's rule), with the longest match known or not.
#[derive(Debug)]
struct Sep {
    sep: Vec<u8>,
    bounded: bool,
}

impl Boundary for Sep {
    fn find(&self, window: &[u8]) -> Option<usize> {
        memchr::memmem::find(window, &self.sep).map(|i| i + self.sep.len())
    }

    fn max_match(&self) -> Option<usize> {
        self.bounded.then_some(self.sep.len())
    }
}

#[test]
fn a_boundary_rule_of_the_callers_own_cuts_where_it_says_after_a_skipped_header() {
    let dir = TempDir::new();
    let mut rng = Rng(0xb0_da_27);
    for round in 0..200 {
        let sep: &[u8] = [&b"\n"[..], b"--\n", b"\0"][round % 3];
        let mut bytes = Vec::new();
        for _ in 0..rng.below(30) {
            // Now and then a record longer than the 64 KiB window.
            let len = match rng.below(40) {
                0 => 70_000 + rng.below(200_000),
                _ => rng.below(50),
            };
            bytes.extend((0..len).map(|_| b'a' + rng.below(26) as u8));
            bytes.extend_from_slice(sep);
        }
        let skip = rng.below(bytes.len() as u64 / 2 + 1);
        let block = 1 + rng.below(3000);
        let rule = Sep {
            sep: sep.to_vec(),
            bounded: round % 2 == 0,
        };
        let path = dir.file(&format!("s{round}"), &bytes);
        let got: Vec<(u64, u64)> = Partitioner::file(&path)
            .boundary(rule)
            .skip(skip)
            .block_size(block)
            .partitions()
            .unwrap()
            .iter()
            .map(|p| (p.start, p.end))
            .collect();

        // The cuts, found the plain way.
        let len = bytes.len() as u64;
        let mut want = Vec::new();
        let mut from = skip;
        while from < len {
            let target = from + block;
            let end = if target >= len {
                len
            } else {
                let t = target as usize;
                memchr::memmem::find(&bytes[t..], sep).map_or(len, |i| (t + i + sep.len()) as u64)
            };
            want.push((from, end));
            from = end;
        }
        assert_eq!(got, want, "round {round}: block {block}, skip {skip}");
    }
}

#[test]
fn a_file_smaller_than_a_block_is_one_partition_and_the_block_follows_the_workers() {
    let dir = TempDir::new();
    let small = dir.file("small.txt", "a\nb\nc\n");
    let parts = Partitioner::file(&small).partitions().unwrap();
    assert_eq!(parts, [Partition::new(&small, 0, 6)]);

    // 8 MiB over 2 workers: blocks of 1 MiB, so about 2 × 4 partitions.
    let line = "x".repeat(99) + "\n";
    let big = dir.file("big.txt", line.repeat((8 << 20) / 100));
    let parts = Partitioner::file(&big).workers(2).partitions().unwrap();
    assert!((7..=8).contains(&parts.len()), "{} partitions", parts.len());
    assert!(parts.iter().all(|p| p.len() % 100 == 0));
}

#[test]
fn a_list_and_a_glob_give_each_file_its_own_partitions() {
    let dir = TempDir::new();
    let a = dir.file("a.csv", "k\n1\n2\n");
    let b = dir.file("b.csv", "k\n3\n");
    dir.file("c.txt", "not csv\n");
    let pattern = format!("{}/*.csv", dir.0.display());
    let by_glob = Partitioner::glob(&pattern)
        .header(true)
        .partitions()
        .unwrap();
    assert_eq!(
        by_glob,
        [Partition::new(&a, 2, 6), Partition::new(&b, 2, 4)]
    );
    let by_list = Partitioner::files([&a, &b])
        .header(true)
        .partitions()
        .unwrap();
    assert_eq!(by_list, by_glob);

    let none = format!("{}/*.parquet", dir.0.display());
    let err = Partitioner::glob(&none).partitions().unwrap_err();
    assert!(matches!(err, DataError::NoMatch { .. }), "{err}");
    let err = Partitioner::glob("[").partitions().unwrap_err();
    assert!(matches!(err, DataError::Pattern { .. }), "{err}");
}

#[test]
fn a_partition_travels_as_a_plain_value() {
    let p = Partition::new("/data/x.csv", 10, 99);
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<Partition>(&json).unwrap(), p);
    let t = Terminator::new(b"\r\n").unwrap();
    let json = serde_json::to_string(&t).unwrap();
    assert_eq!(serde_json::from_str::<Terminator>(&json).unwrap(), t);
    // A terminator that overlaps itself is refused on the way in too.
    assert!(serde_json::from_str::<Terminator>("[10,10]").is_err());
}

// ---- the group-by -------------------------------------------------------

type Sums = BTreeMap<String, i64>;

/// Sums column `v` by column `k` over one partition of a CSV file: blank
/// lines skipped, a row with the wrong number of fields or a bad number an
/// error naming its line.
#[quadriga::task]
fn sum_by(part: Partition, k: usize, v: usize, columns: usize) -> Result<Sums, DataError> {
    let mut sums = Sums::new();
    let mut records = part.lines()?;
    let mut splitter = csv::FieldSplitter::new();
    while let Some(record) = records.next_record() {
        let record = record?;
        let offset = record.offset;
        if record.bytes.is_empty() || record.bytes == b"\r" {
            continue;
        }
        let fields = splitter.split(record.bytes);
        let problem = if fields.len() == columns {
            let value = std::str::from_utf8(fields.get(v).unwrap())
                .ok()
                .and_then(|s| s.parse::<i64>().ok());
            match value {
                Some(value) => {
                    let key = String::from_utf8_lossy(fields.get(k).unwrap()).into_owned();
                    *sums.entry(key).or_default() += value;
                    None
                }
                None => Some("not an integer".to_owned()),
            }
        } else {
            Some(format!("{} fields, expected {columns}", fields.len()))
        };
        if let Some(message) = problem {
            return Err(records.malformed(offset, message));
        }
    }
    Ok(sums)
}

fn merge(mut a: Sums, b: Sums) -> Sums {
    for (k, v) in b {
        *a.entry(k).or_default() += v;
    }
    a
}

#[quadriga::task]
fn merge_all(parts: Vec<Sums>) -> Sums {
    parts.into_iter().fold(Sums::new(), merge)
}

/// The sums by the named columns of a CSV file, through `pool`.
fn group_sum(
    pool: &impl Executor,
    path: &Path,
    key: &str,
    value: &str,
    block: u64,
) -> Result<Sums, Box<dyn std::error::Error>> {
    let header = csv::Header::read(path)?;
    let (k, v, n) = (
        header.column(key)?,
        header.column(value)?,
        header.names().len(),
    );
    let parts = Partitioner::file(path)
        .header(true)
        .block_size(block)
        .partitions()?;
    let inputs = parts.into_iter().map(|p| (p, k, v, n));
    Ok(MapReduce::new(pool, sum_by, inputs).reduce(merge)?)
}

/// A CSV file of `rows` rows `id1,id2,v1` and its sums of v1 by id1,
/// computed the plain way.
fn random_csv(dir: &TempDir, name: &str, rows: usize, seed: u64, crlf: bool) -> (PathBuf, Sums) {
    let mut rng = Rng(seed);
    let nl = if crlf { "\r\n" } else { "\n" };
    let mut text = format!("id1,id2,v1{nl}");
    let mut want = Sums::new();
    for _ in 0..rows {
        let id1 = format!("id{:03}", rng.below(17));
        let v1 = rng.below(200) as i64 - 50;
        text += &format!("{id1},x{},{v1}{nl}", rng.below(1000));
        *want.entry(id1).or_default() += v1;
    }
    (dir.file(name, text), want)
}

#[test]
fn the_group_by_equals_a_sequential_sum_on_threads() {
    let dir = TempDir::new();
    let pool = ThreadPool::new(3).unwrap();
    for (seed, block) in [(1, 1), (2, 37), (3, 1000), (4, 1 << 30)] {
        let (path, want) = random_csv(&dir, &format!("t{seed}.csv"), 2_000, seed, false);
        assert_eq!(group_sum(&pool, &path, "id1", "v1", block).unwrap(), want);
    }
}

#[test]
fn the_group_by_equals_a_sequential_sum_on_processes() {
    common::within(120, || {
        let dir = TempDir::new();
        let pool = ProcessPool::new(2).unwrap();
        for (seed, block) in [(5, 64), (6, 5_000)] {
            let (path, want) = random_csv(&dir, &format!("p{seed}.csv"), 3_000, seed, false);
            assert_eq!(group_sum(&pool, &path, "id1", "v1", block).unwrap(), want);
        }
    });
}

#[test]
fn a_tree_of_combine_tasks_gives_the_same_sums_with_progress() {
    let dir = TempDir::new();
    let (path, want) = random_csv(&dir, "tree.csv", 3_000, 7, false);
    let header = csv::Header::read(&path).unwrap();
    let (k, v) = (header.column("id1").unwrap(), header.column("v1").unwrap());
    let parts = Partitioner::file(&path)
        .header(true)
        .block_size(700)
        .partitions()
        .unwrap();
    let total = parts.len();
    assert!(total > 20, "{total} partitions");
    let inputs: Vec<_> = parts.into_iter().map(|p| (p, k, v, 3)).collect();
    let threads = ThreadPool::new(2).unwrap();
    let mut seen = Vec::new();
    let sums = MapReduce::new(&threads, sum_by, inputs.clone())
        .on_progress(|p: Progress| seen.push(p))
        .reduce_tree(merge_all, 3)
        .unwrap();
    assert_eq!(sums, want);
    assert_eq!(seen.len(), total);
    assert_eq!(seen.last(), Some(&Progress { done: total, total }));
    assert!(seen.windows(2).all(|w| w[0].done + 1 == w[1].done));

    common::within(120, move || {
        let processes = ProcessPool::new(2).unwrap();
        let sums = MapReduce::new(&processes, sum_by, inputs)
            .reduce_tree(merge_all, 4)
            .unwrap();
        assert_eq!(sums, want);
    });

    // No input: the identity.
    let none = MapReduce::new(&threads, sum_by, Vec::new()).reduce_tree(merge_all, 2);
    assert_eq!(none.unwrap(), Sums::new());
}

// ---- bad input ------------------------------------------------------------

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let dir = TempDir::new();
    let missing = dir.0.join("missing.csv");
    for err in [
        Partitioner::file(&missing).partitions().unwrap_err(),
        csv::Header::read(&missing).unwrap_err(),
    ] {
        assert!(matches!(err, DataError::Io { .. }), "{err}");
        assert!(err.to_string().contains("missing.csv"), "{err}");
    }
}

#[test]
fn a_header_without_the_column_is_an_error_listing_the_columns() {
    let dir = TempDir::new();
    let (path, _) = random_csv(&dir, "h.csv", 10, 8, false);
    let pool = ThreadPool::new(1).unwrap();
    let err = group_sum(&pool, &path, "id1", "v9", 100).unwrap_err();
    assert!(
        err.to_string()
            .ends_with(r#"h.csv: no column "v9" in the header (id1,id2,v1)"#),
        "{err}"
    );
}

#[test]
fn a_malformed_row_names_its_line_and_leaves_the_other_partitions_alone() {
    let dir = TempDir::new();
    let mut text = String::from("id1,id2,v1\n");
    for i in 0..100 {
        text += &match i {
            41 => "id001,x,1,extra\n".to_owned(),
            77 => "id002,x,seven\n".to_owned(),
            _ => format!("id{:03},x,{i}\n", i % 3),
        };
    }
    let path = dir.file("bad.csv", text);
    let parts = Partitioner::file(&path)
        .header(true)
        .block_size(200)
        .partitions()
        .unwrap();
    assert!(parts.len() > 5, "{} partitions", parts.len());
    let pool = ThreadPool::new(2).unwrap();
    let inputs: Vec<_> = parts.iter().map(|p| (p.clone(), 0, 2, 3)).collect();

    let err = MapReduce::new(&pool, sum_by, inputs.clone())
        .reduce(merge)
        .unwrap_err();
    assert_eq!(err.total(), parts.len());
    let messages: Vec<String> = err.failures().iter().map(|(_, e)| e.to_string()).collect();
    assert_eq!(err.failures().len(), 2, "{messages:?}");
    // Line 1 is the header, so row i is line i + 2.
    assert!(
        messages[0].ends_with("bad.csv:43: 4 fields, expected 3"),
        "{messages:?}"
    );
    assert!(
        messages[1].ends_with("bad.csv:79: not an integer"),
        "{messages:?}"
    );
    assert!(
        err.failures()
            .iter()
            .all(|(_, e)| e.kind() == TaskErrorKind::Failed)
    );

    // Every other partition has its sums.
    let bad: Vec<usize> = err.failures().iter().map(|(i, _)| *i).collect();
    let mut want = Sums::new();
    let mut got = Sums::new();
    for (i, result) in pool.map(sum_by, inputs).enumerate() {
        if bad.contains(&i) {
            assert!(result.is_err());
            continue;
        }
        got = merge(got, result.unwrap());
        for (offset, line) in sequential(&std::fs::read(&path).unwrap(), b"\n") {
            if offset >= parts[i].start && offset < parts[i].end {
                let line = String::from_utf8(line).unwrap();
                let f: Vec<&str> = line.split(',').collect();
                *want.entry(f[0].to_owned()).or_default() += f[2].parse::<i64>().unwrap();
            }
        }
    }
    assert_eq!(got, want);
    assert!(!got.is_empty());
}

#[test]
fn an_empty_file_has_no_header_and_a_header_alone_sums_to_nothing() {
    let dir = TempDir::new();
    let empty = dir.file("empty.csv", "");
    let err = csv::Header::read(&empty).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("empty.csv: empty file, no header"),
        "{err}"
    );
    assert!(
        Partitioner::file(&empty)
            .header(true)
            .partitions()
            .unwrap()
            .is_empty()
    );
    assert!(Partitioner::file(&empty).partitions().unwrap().is_empty());

    let pool = ThreadPool::new(1).unwrap();
    for (name, text) in [("header.csv", "id1,id2,v1\n"), ("bare.csv", "id1,id2,v1")] {
        let path = dir.file(name, text);
        assert_eq!(
            group_sum(&pool, &path, "id1", "v1", 4).unwrap(),
            Sums::new()
        );
    }
}

#[test]
fn no_trailing_newline_and_crlf_line_ends_give_the_right_sums() {
    let dir = TempDir::new();
    let pool = ThreadPool::new(2).unwrap();
    let (crlf, want) = random_csv(&dir, "crlf.csv", 500, 9, true);
    for block in [1, 13, 256, 1 << 20] {
        assert_eq!(group_sum(&pool, &crlf, "id1", "v1", block).unwrap(), want);
    }
    let (plain, want) = random_csv(&dir, "plain.csv", 500, 10, false);
    let mut text = std::fs::read(&plain).unwrap();
    assert_eq!(text.pop(), Some(b'\n'));
    let cut = dir.file("cut.csv", &text);
    // And one of them blank lines between the rows.
    let blank = dir.file(
        "blank.csv",
        String::from_utf8(std::fs::read(&plain).unwrap())
            .unwrap()
            .replace("\n", "\n\n"),
    );
    for block in [1, 13, 256, 1 << 20] {
        assert_eq!(group_sum(&pool, &cut, "id1", "v1", block).unwrap(), want);
        assert_eq!(group_sum(&pool, &blank, "id1", "v1", block).unwrap(), want);
    }
}

#[test]
fn quoted_fields_are_unquoted_and_may_hold_the_delimiter() {
    let dir = TempDir::new();
    let path = dir.file(
        "quoted.csv",
        "\"id1\",id2,v1\n\"a,1\",\"x \"\"q\"\"\",5\nb,y,2\n\"a,1\",z,\"-1\"\n",
    );
    let pool = ThreadPool::new(1).unwrap();
    let sums = group_sum(&pool, &path, "id1", "v1", 8).unwrap();
    assert_eq!(sums, Sums::from([("a,1".into(), 4), ("b".into(), 2)]));
}

// ---- the cluster ----------------------------------------------------------

/// Not a test of its own: the body of the cluster worker processes.
#[cfg(feature = "cluster")]
#[test]
fn cluster_worker_process() {
    if std::env::var_os(quadriga::cluster::WORKER_URL_ENV).is_some() {
        quadriga::init();
        unreachable!("init serves as a worker and exits");
    }
}

/// Two worker processes on their own redis-server open the partitions by
/// path, as workers on other hosts would on a shared file system.
#[cfg(feature = "cluster")]
#[test]
fn the_group_by_equals_a_sequential_sum_on_a_cluster() {
    use std::process::{Child, Command, Stdio};

    struct Workers(Vec<Child>);
    impl Drop for Workers {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    common::within(120, || {
        let server = redis_server::RedisServer::start();
        let exe = std::env::current_exe().unwrap();
        let _workers = Workers(
            (0..2)
                .map(|_| {
                    Command::new(&exe)
                        .args(["cluster_worker_process", "--exact", "--nocapture"])
                        .args(["--test-threads", "1"])
                        .env(quadriga::cluster::WORKER_URL_ENV, server.url())
                        .env("QUADRIGA_CLUSTER_QUEUE", "data")
                        .env("QUADRIGA_CLUSTER_CONCURRENCY", "2")
                        .stdout(Stdio::null())
                        .spawn()
                        .unwrap()
                })
                .collect(),
        );
        let pool = quadriga::cluster::ClusterPool::builder(server.url())
            .queue("data")
            .build()
            .unwrap();
        let dir = TempDir::new();
        let (path, want) = random_csv(&dir, "cluster.csv", 3_000, 11, false);
        assert_eq!(group_sum(&pool, &path, "id1", "v1", 2_000).unwrap(), want);
        let header = csv::Header::read(&path).unwrap();
        let (k, v) = (header.column("id1").unwrap(), header.column("v1").unwrap());
        let parts = Partitioner::file(&path)
            .header(true)
            .block_size(900)
            .partitions()
            .unwrap();
        let tree = MapReduce::new(&pool, sum_by, parts.into_iter().map(|p| (p, k, v, 3)))
            .reduce_tree(merge_all, 3)
            .unwrap();
        assert_eq!(tree, want);
    });
}

#[test]
fn a_partition_whose_end_is_before_its_start_reads_nothing() {
    let dir = TempDir::new();
    let path = dir.file("x.txt", "a\nb\n");
    let backwards: Partition = serde_json::from_str(&format!(
        r#"{{"path":{:?},"start":3,"end":1}}"#,
        path.display().to_string()
    ))
    .unwrap();
    assert!(backwards.is_empty());
    assert!(read_all(&backwards, &Terminator::newline()).is_empty());
    // And one past the end of the file is a clear error.
    let past = Partition::new(&path, 0, 10);
    let mut records = past.lines().unwrap();
    let err = loop {
        match records.next_record() {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e,
            None => panic!("no error for a range past the end"),
        }
    };
    assert!(
        matches!(
            err,
            DataError::Truncated {
                len: 4,
                end: 10,
                ..
            }
        ),
        "{err}"
    );
    assert!(records.next_record().is_none());
}
