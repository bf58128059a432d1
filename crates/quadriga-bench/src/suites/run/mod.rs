//! The `run` suite: the `quadriga run` binary against `xargs -P` and GNU
//! parallel, and its `-j auto` against a sweep of fixed `-j`.
//!
//! 1. **Overhead** ([`overhead`]): 1,000 × `true` at the same width (every
//!    core): the wall time of `quadriga run` against `xargs -P` (goal:
//!    quadriga ÷ xargs ≤ 1.15, so xargs ÷ quadriga ≥ 0.87×) and GNU parallel
//!    (goal: parallel ÷ quadriga ≥ 5×), interleaved after a warm-up run; and
//!    the runner's own CPU time per job (its `getrusage`, children excluded,
//!    as `quadriga run -v` reports it; goal ≤ 0.1 ms).
//! 2. **`-j auto`** ([`sweep`]): `-j 1 2 4 8 16 32 64` (and the core count)
//!    against `-j auto` on a CPU-bound workload (sha256sum of 16 × 20 MB
//!    files), an I/O-bound one (200 × `sleep 0.2`) and 200 `curl` downloads
//!    from a loopback server ([`server`]) with 100 ms of latency: auto within
//!    90% of the best fixed `-j` on each, and ≥ 5× faster than `-j` at the
//!    core count on the I/O-bound ones. The settings run in rounds, each
//!    setting once per round, so the machine's drifting load falls on all
//!    alike, and each keeps its best round; the slow settings (small `-j` on
//!    the I/O-bound workloads) run in the first round only.
//! 3. **Streams** ([`streams`]): `--pipe … wc -l` and `--pipepart -a FILE
//!    … wc -l` over `seq 50000000` (~440 MB) against GNU parallel with the
//!    same options (goals ≥ 3× and ≥ 2×), and the distance to `wc -l` alone.
//!
//! 4. **Remote** ([`remote`]): 1,000 × `true` through the broker with two
//!    local `quadriga worker`s, against local `quadriga run` (overhead per
//!    job ≤ 1 ms) and GNU parallel `-S` to two ssh logins on localhost
//!    (≥ 5×; skipped with the reason where ssh to localhost does not work).
//!
//! `QUADRIGA_BENCH_RUN=streams` (or `overhead`, `sweep`, `remote`, comma-separated)
//! runs only those benchmarks: `QUADRIGA_BENCH_RUN=streams cargo run
//! --release -p quadriga-bench -- run`.
//!
//! The binary measured is the `quadriga` built beside this one (built first
//! with `cargo build -p quadriga-cli`, same profile, when run through cargo),
//! or any other given with `--quadriga PATH`, so an older build can be
//! compared. GNU parallel and curl are installed with `apt-get` when missing
//! ([`tools`]); if that fails the peer, or the downloads, are skipped with a
//! message.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use super::{Ctx, progress};
use crate::harness::report::Row;

mod overhead;
mod remote;
mod server;
mod streams;
mod sweep;
mod tools;

/// The suite's name in rows.
const SUITE: &str = "run";

/// Sizes and repetitions; `--quick` shrinks them.
#[derive(Debug, Clone)]
struct Sizes {
    /// Jobs of `true` in the overhead benchmark.
    true_jobs: usize,
    /// Warm-up runs of each runner before the timed ones.
    warmup: usize,
    /// Timed runs of each runner (and `-v` runs for the runner's CPU).
    runs: usize,
    /// The fixed `-j` of the sweep (the core count is added).
    sweep: Vec<usize>,
    /// Rounds over the sweep.
    rounds: usize,
    /// Files hashed by the CPU-bound workload, and the size of each.
    files: usize,
    /// Bytes in each file.
    file_bytes: usize,
    /// Jobs of the I/O-bound workloads.
    io_jobs: usize,
    /// The argument of `sleep` in the sleep workload.
    sleep: &'static str,
    /// The loopback server's latency, in milliseconds.
    latency_ms: u64,
    /// Fixed `-j` up to this run only in the first round: sleep workload.
    slow_sleep: usize,
    /// The same for the downloads.
    slow_http: usize,
    /// Lines of the stream benchmark's file (`seq`).
    stream_lines: u64,
    /// Timed runs of each stream command.
    stream_runs: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                true_jobs: 200,
                warmup: 1,
                runs: 2,
                sweep: vec![1, 4, 16],
                rounds: 2,
                files: 4,
                file_bytes: 2_000_000,
                io_jobs: 32,
                sleep: "0.05",
                latency_ms: 20,
                slow_sleep: 4,
                slow_http: 4,
                stream_lines: 5_000_000,
                stream_runs: 2,
            }
        } else {
            Self {
                true_jobs: 1000,
                warmup: 1,
                runs: 5,
                sweep: vec![1, 2, 4, 8, 16, 32, 64],
                rounds: 3,
                files: 16,
                file_bytes: 20_000_000,
                io_jobs: 200,
                sleep: "0.2",
                latency_ms: 100,
                slow_sleep: 8,
                slow_http: 4,
                stream_lines: 50_000_000,
                stream_runs: 5,
            }
        }
    }
}

/// Runs the suite.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let sizes = Sizes::new(ctx.quick);
    let quadriga = tools::quadriga_binary(ctx.quadriga.as_deref())?;
    progress(&format!("measuring {}", quadriga.display()));
    let work = WorkDir::new()?;
    let only = std::env::var("QUADRIGA_BENCH_RUN").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|w| w.trim() == name);
    let mut rows = Vec::new();
    if wanted("overhead") {
        rows.extend(overhead::rows(ctx, &sizes, &quadriga, work.path())?);
    }
    if wanted("sweep") {
        rows.extend(sweep::rows(ctx, &sizes, &quadriga, work.path())?);
    }
    if wanted("streams") {
        rows.extend(streams::rows(ctx, &sizes, &quadriga, work.path())?);
    }
    if wanted("remote") {
        rows.extend(remote::rows(ctx, &sizes, &quadriga, work.path())?);
    }
    Ok(rows)
}

/// A scratch directory under the system's temporary directory, removed with
/// everything in it when dropped.
#[derive(Debug)]
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "quadriga-bench-run.{}.{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the numbers `1..=n`, one a line, to `path`: the input of the jobs.
fn write_lines(path: &Path, n: usize) -> anyhow::Result<()> {
    let text: String = (1..=n).map(|i| format!("{i}\n")).collect();
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
