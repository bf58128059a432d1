//! The `data` suite: `quadriga::data` map-reduce against Dask dataframe,
//! pandas, Polars and DuckDB, end to end (read the CSV + group + aggregate),
//! on one generated file of the db-benchmark group-by shape.
//!
//! 1. `q1`: the sum of `v1` by `id1` (100 groups): Quadriga's threads against
//!    Dask's best scheduler (goal ≥ 2×), and against pandas, Polars and DuckDB
//!    (no goal: the gap is reported as it is); Quadriga's processes against
//!    its threads (goal: within 15%, a ratio ≥ 0.87).
//! 2. `q2`: the sum of `v1` and the mean of `v3` by `id3` (N/100 groups,
//!    100,000 for 1e7 rows), where the combine step matters: the same rows,
//!    and the tree of combine tasks against the fold in the caller.
//!
//! The file (1e7 rows, about 0.5 GB; `--quick` 1e6; `--large`, or
//! `QUADRIGA_BENCH_LARGE=1` in the environment, 1e8, about 5 GB) is written once by the `gen_groupby` example, built
//! through cargo, into `target/bench-data/` and reused while its size is
//! right. The Python peers install into the bench's virtualenv
//! (`harness::venv`); one that will not install is skipped with the reason.
//!
//! ```text
//! cargo run --release -p quadriga-bench -- data [--quick | --large] [--threads N]
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail, ensure};
use quadriga::data::{DataError, Key, MapReduce, Partition, Partitioner, csv};
use quadriga::{Executor, ProcessPool, ThreadPool};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Ctx, progress};
use crate::harness::peer;
use crate::harness::report::{Goal, Row, Unit};
use crate::harness::timing::{Plan, Stats, measure};
use crate::harness::venv::{self, Package};

/// The suite's name in rows.
const SUITE: &str = "data";

/// Sums of `v1` by key (a [`Key`]: inline, so a lookup misses the cache
/// once, not twice).
type Sums = HashMap<Key, i64, foldhash::fast::FixedState>;
/// By key: the sum of `v1`, the sum of `v3` and the number of rows.
type Aggs = HashMap<Key, (i64, f64, u64), foldhash::fast::FixedState>;

/// Where the columns are.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Cols {
    key: usize,
    v1: usize,
    v3: usize,
    columns: usize,
}

/// Runs `row(key, v1, v3)` on every row of `part`; a row with another number
/// of fields or a value that does not parse is an error with its line.
fn scan(
    part: &Partition,
    cols: Cols,
    mut row: impl FnMut(&[u8], i64, &[u8]) -> Result<(), String>,
) -> Result<(), DataError> {
    let mut records = part.lines()?;
    let mut splitter = csv::FieldSplitter::new();
    while let Some(record) = records.next_record() {
        let record = record?;
        if record.bytes.is_empty() || record.bytes == b"\r" {
            continue;
        }
        let offset = record.offset;
        let fields = splitter.split(record.bytes);
        let result = if fields.len() != cols.columns {
            Err(format!(
                "{} fields, expected {}",
                fields.len(),
                cols.columns
            ))
        } else {
            let field = |i| fields.get(i).unwrap_or_default();
            match csv::parse_int(field(cols.v1)) {
                Some(v1) => row(field(cols.key), v1, field(cols.v3)),
                None => Err("v1 is not an integer".to_owned()),
            }
        };
        if let Err(message) = result {
            return Err(records.malformed(offset, message));
        }
    }
    Ok(())
}

/// q1 over one partition: the sum of `v1` by the key.
#[quadriga::task]
fn q1_part(part: Partition, cols: Cols) -> Result<Sums, DataError> {
    let mut sums = Sums::default();
    scan(&part, cols, |key, v1, _| {
        match sums.get_mut(key) {
            Some(sum) => *sum += v1,
            None => {
                sums.insert(Key::new(key), v1);
            }
        }
        Ok(())
    })?;
    Ok(sums)
}

/// q2 over one partition: the sum of `v1`, the sum of `v3` and the count by
/// the key.
#[quadriga::task]
fn q2_part(part: Partition, cols: Cols) -> Result<Aggs, DataError> {
    let mut aggs = Aggs::default();
    scan(&part, cols, |key, v1, v3| {
        let v3 = csv::parse_float(v3).ok_or("v3 is not a number")?;
        match aggs.get_mut(key) {
            Some(a) => *a = (a.0 + v1, a.1 + v3, a.2 + 1),
            None => {
                aggs.insert(Key::new(key), (v1, v3, 1));
            }
        }
        Ok(())
    })?;
    Ok(aggs)
}

fn merge_sums(mut a: Sums, b: Sums) -> Sums {
    for (k, v) in b {
        *a.entry(k).or_default() += v;
    }
    a
}

fn merge_aggs(mut a: Aggs, b: Aggs) -> Aggs {
    if a.len() < b.len() {
        return merge_aggs(b, a);
    }
    for (k, (v1, v3, n)) in b {
        let e = a.entry(k).or_default();
        *e = (e.0 + v1, e.1 + v3, e.2 + n);
    }
    a
}

/// q2's combine task, for the tree.
#[quadriga::task]
fn q2_merge(parts: Vec<Aggs>) -> Aggs {
    parts.into_iter().reduce(merge_aggs).unwrap_or_default()
}

/// What an answer is checked by: groups, the total of the `v1` sums, the
/// total of the `v3` means.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Check {
    groups: usize,
    v1_total: i64,
    v3_means_total: f64,
}

impl Check {
    fn agrees(&self, peer: &serde_json::Value) -> bool {
        let groups = peer["groups"].as_u64() == Some(self.groups as u64);
        let v1 = peer["v1_total"].as_i64() == Some(self.v1_total);
        let v3 = peer["v3_means_total"].as_f64().is_some_and(|t| {
            (t - self.v3_means_total).abs() <= 1e-6 * self.v3_means_total.abs().max(1.0)
        });
        groups && v1 && v3
    }
}

/// The query, end to end on `pool`: header, partitions, map, combine.
fn query(
    pool: &impl Executor,
    workers: usize,
    path: &Path,
    q2: bool,
    tree: bool,
) -> anyhow::Result<Check> {
    let header = csv::Header::read(path)?;
    let cols = Cols {
        key: header.column(if q2 { "id3" } else { "id1" })?,
        v1: header.column("v1")?,
        v3: header.column("v3")?,
        columns: header.names().len(),
    };
    let parts = Partitioner::file(path)
        .header(true)
        .workers(workers)
        .partitions()?;
    let inputs = parts.into_iter().map(|p| (p, cols));
    if !q2 {
        let sums = MapReduce::new(pool, q1_part, inputs).reduce(merge_sums)?;
        return Ok(Check {
            groups: sums.len(),
            v1_total: sums.values().sum(),
            v3_means_total: 0.0,
        });
    }
    let map = MapReduce::new(pool, q2_part, inputs);
    let aggs = if tree {
        map.reduce_tree(q2_merge, 4)?
    } else {
        map.reduce(merge_aggs)?
    };
    Ok(Check {
        groups: aggs.len(),
        v1_total: aggs.values().map(|a| a.0).sum(),
        v3_means_total: aggs.values().map(|a| a.1 / a.2 as f64).sum(),
    })
}

/// The data file of `rows` rows, written by the `gen_groupby` example unless
/// it is already there at a size that only those rows give.
fn data_file(rows: u64) -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("G1_{rows}.csv"));
    let size_file = dir.join(format!("G1_{rows}.size"));
    let size = std::fs::metadata(&path).map(|m| m.len()).ok();
    let recorded = std::fs::read_to_string(&size_file)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if size.is_some() && size == recorded {
        return Ok(path);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    progress("building the gen_groupby example");
    let status = Command::new(&cargo)
        .args(["build", "--quiet", "--release", "-p", "quadriga"])
        .args(["--example", "gen_groupby"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .context("running cargo build --example gen_groupby")?;
    ensure!(
        status.success(),
        "cargo build --example gen_groupby failed: {status}"
    );
    let generator =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/examples/gen_groupby");
    progress(&format!("writing {rows} rows to {}", path.display()));
    let status = Command::new(&generator)
        .arg(rows.to_string())
        .arg(&path)
        .status()
        .with_context(|| format!("running {}", generator.display()))?;
    if !status.success() {
        bail!("{} failed: {status}", generator.display());
    }
    let size = std::fs::metadata(&path)?.len();
    std::fs::write(&size_file, size.to_string())?;
    Ok(path)
}

/// The peers, by the name the script knows, with what each needs installed.
const PEERS: &[(&str, &str, &[Package])] = &[
    ("dask_threads", "Dask (threads)", DASK),
    ("dask_processes", "Dask (processes)", DASK),
    ("pandas", "pandas", &[Package::named("pandas")]),
    ("polars", "Polars", &[Package::named("polars")]),
    ("duckdb", "DuckDB", &[Package::named("duckdb")]),
];
const DASK: &[Package] = &[
    Package::named("pandas"),
    Package {
        pip: "dask[dataframe]",
        import: "dask.dataframe",
    },
];

/// A peer's median time, or why it has none.
fn peer_time(
    ctx: &Ctx,
    engine: &str,
    packages: &[Package],
    query: &str,
    path: &Path,
    reps: usize,
    check: Check,
) -> (Result<f64, String>, serde_json::Value) {
    let python = match venv::python_with(&ctx.python, packages) {
        Ok(python) => python,
        Err(why) => return (Err(why), serde_json::Value::Null),
    };
    progress(&format!("{engine} {query}"));
    let args = [
        engine.to_owned(),
        query.to_owned(),
        path.display().to_string(),
        ctx.threads.to_string(),
        reps.to_string(),
    ];
    match peer::run_script(&python.to_string_lossy(), "data_peers.py", &args) {
        Ok(out) => {
            if !check.agrees(&out) {
                return (
                    Err(format!("its answer differs from Quadriga's: {out}")),
                    out,
                );
            }
            let times: Vec<f64> = out["times_s"]
                .as_array()
                .map(|a| a.iter().filter_map(|t| t.as_f64()).collect())
                .unwrap_or_default();
            if times.is_empty() {
                return (Err("no times".into()), out);
            }
            let stats = Stats::from_samples(0, times);
            (Ok(stats.median_s), out)
        }
        Err(why) => (Err(why), serde_json::Value::Null),
    }
}

/// Runs the suite.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let rows: u64 = match (ctx.quick, ctx.large) {
        (_, true) => 100_000_000,
        (true, false) => 1_000_000,
        (false, false) => 10_000_000,
    };
    let (plan, peer_reps) = if ctx.quick {
        (Plan::new(1, 2), 1)
    } else {
        (Plan::new(1, 5), 3)
    };
    let path = data_file(rows)?;
    let n = ctx.threads;
    let threads = ThreadPool::new(n).context("building the thread pool")?;
    let processes = ProcessPool::new(n).context("building the process pool")?;
    let mut out = Vec::new();
    for (q, q2, what) in [
        ("q1", false, "sum v1 by id1 (100 groups)"),
        ("q2", true, "sum v1, mean v3 by id3 (N/100 groups)"),
    ] {
        progress(&format!("quadriga {q} on {rows} rows"));
        let check = query(&threads, n, &path, q2, false)?;
        let timed = |pool: &dyn Fn() -> anyhow::Result<Check>| -> anyhow::Result<Stats> {
            let mut err = None;
            let stats = measure(plan, &mut || match pool() {
                Ok(c) if c.groups == check.groups && c.v1_total == check.v1_total => {}
                Ok(c) => err = Some(anyhow::anyhow!("answers differ: {c:?} vs {check:?}")),
                Err(e) => err = Some(e),
            });
            err.map_or(Ok(stats), Err)
        };
        let t = timed(&|| query(&threads, n, &path, q2, false))?;
        let p = timed(&|| query(&processes, n, &path, q2, false))?;
        let (tt, pt) = if q2 {
            (
                Some(timed(&|| query(&threads, n, &path, q2, true))?),
                Some(timed(&|| query(&processes, n, &path, q2, true))?),
            )
        } else {
            (None, None)
        };
        // The best of the caller's fold and the tree, per backend.
        let best = |a: &Stats, b: &Option<Stats>| {
            b.as_ref()
                .filter(|b| b.median_s < a.median_s)
                .map_or(a.median_s, |b| b.median_s)
        };
        let q_threads = best(&t, &tt);
        let q_processes = best(&p, &pt);
        let mut note = format!("threads {}; processes {}", t.brief(), p.brief());
        if let (Some(tt), Some(pt)) = (&tt, &pt) {
            note += &format!("; tree: threads {}, processes {}", tt.brief(), pt.brief());
        }
        let base = json!({
            "rows": rows,
            "file": path.display().to_string(),
            "check": check,
            "threads": t,
            "processes": p,
            "threads_tree": tt,
            "processes_tree": pt,
        });

        let mut peers = Vec::new();
        for &(engine, name, packages) in PEERS {
            let (time, raw) = peer_time(ctx, engine, packages, q, &path, peer_reps, check);
            peers.push((engine, name, time, raw));
        }
        let dask_best = peers
            .iter()
            .filter(|p| p.0.starts_with("dask"))
            .filter_map(|p| p.2.as_ref().ok().copied())
            .reduce(f64::min)
            .ok_or_else(|| {
                peers
                    .iter()
                    .find(|p| p.0.starts_with("dask"))
                    .and_then(|p| p.2.clone().err())
                    .unwrap_or_default()
            });
        out.push(
            Row::new(
                SUITE,
                if q2 {
                    "q2_threads_vs_dask"
                } else {
                    "q1_threads_vs_dask"
                },
                format!("{q} {what}, threads vs Dask's best scheduler"),
                Unit::Seconds,
                q_threads,
                "Dask (best of threads, processes)",
                dask_best,
                Goal::RatioAtLeast { min: 2.0 },
            )
            .note(note.clone())
            .details(base.clone()),
        );
        for (engine, name, time, raw) in &peers {
            let row_id = match (q2, *engine) {
                (false, "dask_threads") => "q1_threads_vs_dask_threads",
                (false, "dask_processes") => "q1_threads_vs_dask_processes",
                (false, "pandas") => "q1_threads_vs_pandas",
                (false, "polars") => "q1_threads_vs_polars",
                (false, "duckdb") => "q1_threads_vs_duckdb",
                (true, "dask_threads") => "q2_threads_vs_dask_threads",
                (true, "dask_processes") => "q2_threads_vs_dask_processes",
                (true, "pandas") => "q2_threads_vs_pandas",
                (true, "polars") => "q2_threads_vs_polars",
                _ => "q2_threads_vs_duckdb",
            };
            out.push(
                Row::new(
                    SUITE,
                    row_id,
                    format!("{q} {what}, threads vs {name}"),
                    Unit::Seconds,
                    q_threads,
                    *name,
                    time.clone(),
                    Goal::None,
                )
                .details(json!({ "peer": raw })),
            );
        }
        out.push(
            Row::new(
                SUITE,
                if q2 {
                    "q2_processes_vs_threads"
                } else {
                    "q1_processes_vs_threads"
                },
                format!("{q} {what}, processes vs threads (within 15%)"),
                Unit::Seconds,
                q_processes,
                "Quadriga threads",
                Ok(q_threads),
                Goal::RatioAtLeast { min: 1.0 / 1.15 },
            )
            .note(note.clone()),
        );
        if let (Some(tt), Some(pt)) = (&tt, &pt) {
            out.push(
                Row::new(
                    SUITE,
                    "q2_tree_vs_caller_threads",
                    format!("{q} {what}: tree of combine tasks vs fold in the caller, threads"),
                    Unit::Seconds,
                    tt.median_s,
                    "fold in the caller",
                    Ok(t.median_s),
                    Goal::None,
                )
                .note(note.clone()),
            );
            out.push(
                Row::new(
                    SUITE,
                    "q2_tree_vs_caller_processes",
                    format!("{q} {what}: tree of combine tasks vs fold in the caller, processes"),
                    Unit::Seconds,
                    pt.median_s,
                    "fold in the caller",
                    Ok(p.median_s),
                    Goal::None,
                )
                .note(note),
            );
        }
    }
    Ok(out)
}
