//! `quadriga-bench`: Quadriga measured against its peers, as ratios.
//!
//! Benchmarks are not tests: they measure Quadriga and a peer (rayon, Python,
//! ...) in the same run, print a table of ratios against the goals the issues
//! set, and write every raw number as JSON. Goals that are not met do not make
//! the run fail.
//!
//! ```text
//! cargo run --release -p quadriga-bench -- foundation [--quick] [--json PATH]
//! cargo run --release -p quadriga-bench -- aio [--quick] [--json PATH]
//! cargo run --release -p quadriga-bench -- process [--quick] [--json PATH]
//! cargo run --release -p quadriga-bench -- ipc [--quick] [--json PATH]
//! cargo run --release -p quadriga-bench -- run [--quick] [--json PATH] [--quadriga PATH]
//! cargo run --release -p quadriga-bench -- cluster [--quick] [--json PATH]
//! cargo run --release -p quadriga-bench -- data [--quick | --large] [--json PATH]
//! cargo run -p quadriga-bench -- report [INPUT...] [--out PATH] [--svg PATH]
//! ```
//!
//! The code: [`harness`] (timing, table, JSON, machine info, external peers),
//! [`suites`] (one module per suite) and [`charts`] (`report`: past results as charts).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::ensure;
use clap::Parser;

// `report/`: named `charts` here, beside the harness's `report` (the table
// and the JSON of one run).
#[path = "report/mod.rs"]
mod charts;
mod harness;
mod suites;

use harness::machine::{self, CpuTimes, Machine};
use harness::report::{self, Report};
use suites::{Ctx, Suite};

/// Benchmarks of Quadriga against its peers (rayon, Python), as ratios
/// measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "quadriga-bench", version, about, long_about = None)]
struct Cli {
    /// The suite to run.
    suite: Suite,
    /// Smaller sizes and fewer repetitions: a smoke run, not for comparing.
    #[arg(long)]
    quick: bool,
    /// Larger sizes, where a suite has them (data: 1e8 rows, about 5 GB;
    /// the same as QUADRIGA_BENCH_LARGE=1 in the environment).
    #[arg(long, conflicts_with = "quick")]
    large: bool,
    /// Where to write the JSON results [default: bench-results/SUITE.json].
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Threads for every pool, Quadriga's and the peers' [default: all cores].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// The Python interpreter for Python peers (skipped if it is missing).
    #[arg(long, value_name = "PROGRAM", default_value = "python3")]
    python: String,
    /// The `quadriga` binary the `run` suite measures [default: the one built
    /// beside this binary, rebuilt first through cargo].
    #[arg(long, value_name = "PATH")]
    quadriga: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    // Peers that re-execute this binary divert here, before anything else.
    procspawn::init();
    if std::env::args().nth(1).as_deref() == Some(suites::process::PINGPONG_ARG) {
        suites::process::pingpong_child();
    }
    quadriga::init();
    if std::env::args().nth(1).as_deref() == Some("report") {
        return charts::main(std::env::args().skip(2));
    }
    let cli = Cli::parse();
    let mut machine = Machine::probe();
    let threads = cli.threads.unwrap_or(machine.cores);
    ensure!(threads > 0, "--threads must be at least 1");
    let ctx = Ctx {
        quick: cli.quick,
        large: cli.large || std::env::var_os("QUADRIGA_BENCH_LARGE").is_some_and(|v| v != "0"),
        threads,
        python: cli.python,
        quadriga: cli.quadriga,
    };
    let json = cli
        .json
        .unwrap_or_else(|| PathBuf::from(format!("bench-results/{}.json", cli.suite.name())));

    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful numbers");
    }
    eprintln!(
        "quadriga-bench {}{}: {threads} threads; {}",
        cli.suite.name(),
        if ctx.quick { " --quick" } else { "" },
        machine.summary()
    );
    let started = Instant::now();
    let cpu_start = CpuTimes::now();
    let rows = cli.suite.run(&ctx)?;
    let elapsed_s = started.elapsed().as_secs_f64();
    machine.loadavg_end = machine::loadavg();
    machine.foreign_cpu_share = cpu_start
        .zip(CpuTimes::now())
        .map(|(start, end)| end.foreign_share_since(start));

    println!(
        "quadriga-bench {}{} — {threads} threads; {}",
        cli.suite.name(),
        if ctx.quick { " --quick" } else { "" },
        machine.summary()
    );
    println!();
    print!("{}", report::table(&rows));
    let report = Report {
        schema: 1,
        suites: vec![cli.suite.name()],
        quick: ctx.quick,
        threads,
        machine,
        elapsed_s,
        rows,
    };
    report::write_json(&json, &report)?;
    println!();
    if let Some(share) = report.machine.foreign_cpu_share {
        println!(
            "Other processes used {:.1}% of the machine's CPU time during the run{}",
            share * 100.0,
            if share > 0.05 {
                ": the numbers are suspect, run again on a quiet machine"
            } else {
                "."
            }
        );
    }
    println!("{elapsed_s:.1} s; JSON: {}", json.display());
    Ok(())
}
