//! `quadriga-bench report`: the JSON results of past runs as one HTML page
//! of charts, and the headline chart as an SVG file for the docs.
//!
//! ```text
//! cargo run -p quadriga-bench -- report [INPUT...] [--out PATH] [--svg PATH] [--quick]
//! ```
//!
//! INPUTs are results files or folders searched for them (default
//! `docs/bench-results`, where each run's files are kept in a folder named
//! by its date). Per suite, the page draws every row's ratio to its peer
//! with one line per run, so that a regression shows as a line below the
//! others; the headline chart shows each goal in the newest run of each
//! suite, met or not.

mod html;
mod load;
mod svg;

use std::path::PathBuf;

use anyhow::{Context as _, ensure};
use clap::Parser;

/// The report's command line (after `report`).
#[derive(Debug, Parser)]
#[command(name = "quadriga-bench report")]
pub(crate) struct ReportCli {
    /// Results files, or folders searched for `*.json` [default: docs/bench-results].
    inputs: Vec<PathBuf>,
    /// Where to write the HTML page.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "target/bench-report/index.html"
    )]
    out: PathBuf,
    /// Where to write the headline chart.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "docs/bench-results/headline.svg"
    )]
    svg: PathBuf,
    /// Include `--quick` runs (smoke runs, left out by default).
    #[arg(long)]
    quick: bool,
}

/// Runs `quadriga-bench report`: `args` are the words after `report`.
pub(crate) fn main(args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let cli =
        ReportCli::parse_from(std::iter::once("quadriga-bench report".to_owned()).chain(args));
    let inputs = if cli.inputs.is_empty() {
        vec![PathBuf::from("docs/bench-results")]
    } else {
        cli.inputs
    };
    let suites = load::load(&inputs, cli.quick)?;
    ensure!(
        !suites.is_empty(),
        "no results found in {}",
        inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let latest: Vec<_> = suites
        .values()
        .filter_map(|runs| runs.last())
        .flat_map(|run| {
            run.rows
                .iter()
                .filter(|row| row.goal.is_some())
                .map(move |row| (run, row))
        })
        .collect();
    let headline = svg::headline_chart(&latest);
    let page = html::page(&suites, &headline);
    for (path, text) in [(&cli.out, &page), (&cli.svg, &headline)] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let runs: usize = suites.values().map(Vec::len).sum();
    println!(
        "{runs} runs of {} suites; page: {}; headline chart: {}",
        suites.len(),
        cli.out.display(),
        cli.svg.display()
    );
    Ok(())
}
