//! The benchmark suites, one module each. To add one: write `suites/<name>.rs`
//! with a `run(&Ctx) -> anyhow::Result<Vec<Row>>`, add a [`Suite`] variant and
//! its two match arms below.

use std::path::PathBuf;

use clap::ValueEnum;

use crate::harness::report::Row;

pub(crate) mod aio;
mod cluster;
pub(crate) mod data;
pub(crate) mod foundation;
pub(crate) mod ipc;
pub(crate) mod ipc_map;
pub(crate) mod process;
mod python;
mod run;

/// A suite that can be named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Suite {
    /// The thread pool against rayon and Python: map, submit+join, efficiency.
    Foundation,
    /// `quadriga::aio` against tokio's JoinSet and Python's asyncio/aiohttp.
    Aio,
    /// The process pool against Python's process pools, procspawn, and a raw
    /// socket round trip.
    Process,
    /// `ipc::Queue` and `ipc::Pipe` against Python's `multiprocessing.Queue`
    /// and `Pipe`, with crossbeam-channel as the ceiling.
    Ipc,
    /// The `quadriga` Python package's ProcessPool against
    /// ProcessPoolExecutor, multiprocessing.Pool, loky, pebble and mpire.
    Python,
    /// The `quadriga run` binary against `xargs -P` and GNU parallel, and its
    /// `-j auto` against a sweep of fixed `-j`.
    Run,
    /// `quadriga::cluster` on Redis against Celery, RQ, Dask distributed and
    /// Ray: throughput, round trip, a map through the broker, kill recovery.
    Cluster,
    /// `quadriga::data` map-reduce over a CSV file against Dask dataframe,
    /// pandas, Polars and DuckDB (1e7 rows; `--quick` 1e6; `--large` or
    /// `QUADRIGA_BENCH_LARGE=1` 1e8).
    Data,
}

impl Suite {
    /// The suite's name, as typed on the command line and written in the JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Suite::Foundation => "foundation",
            Suite::Aio => "aio",
            Suite::Process => "process",
            Suite::Ipc => "ipc",
            Suite::Python => "python",
            Suite::Run => "run",
            Suite::Cluster => "cluster",
            Suite::Data => "data",
        }
    }

    /// Runs the suite.
    pub(crate) fn run(self, ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
        match self {
            Suite::Foundation => foundation::run(ctx),
            Suite::Aio => aio::run(ctx),
            Suite::Process => process::run(ctx),
            Suite::Ipc => ipc::run(ctx),
            Suite::Python => python::run(ctx),
            Suite::Run => run::run(ctx),
            Suite::Cluster => cluster::run(ctx),
            Suite::Data => data::run(ctx),
        }
    }
}

/// What every suite is given.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// Smaller sizes and fewer repetitions: a smoke run, not comparable.
    pub(crate) quick: bool,
    /// Larger sizes, where a suite has them (`--large` or
    /// `QUADRIGA_BENCH_LARGE=1`).
    pub(crate) large: bool,
    /// Threads for every pool, Quadriga's and the peers'.
    pub(crate) threads: usize,
    /// The Python interpreter for Python peers.
    pub(crate) python: String,
    /// The `quadriga` binary the `run` suite measures, if not the one built
    /// beside this binary.
    pub(crate) quadriga: Option<PathBuf>,
}

/// Prints a progress line on stderr (stdout carries only the results).
pub(crate) fn progress(msg: &str) {
    eprintln!("  … {msg}");
}
