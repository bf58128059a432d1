//! The `python` suite (issue #16): the `quadriga` Python package's
//! `ProcessPool` against Python's process pools, all driven by one script
//! (`peers/python_pools.py`) in one virtualenv (`harness::venv`), into which
//! this suite installs the package from `python/` (a release build) and the
//! peers loky, pebble and mpire from PyPI. A peer that will not install is
//! skipped with the reason.
//!
//! 1. `submit` + `result` of 20,000 trivial tasks against
//!    `ProcessPoolExecutor`, `multiprocessing.Pool.apply_async`, loky,
//!    pebble and mpire (goal ≥ 3× each, so ≥ 3× the best).
//! 2. `map` of 1,000,000 tiny items against the same (goal ≥ 2×).
//! 3. Worker start-up (make the pool, get a result from every worker) and
//!    one task's round trip p50, against `ProcessPoolExecutor` (no goal).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::json;

use super::{Ctx, progress};
use crate::harness::peer;
use crate::harness::report::{Goal, Row, Unit};
use crate::harness::timing::format_seconds;
use crate::harness::venv::{self, Package};

/// The suite's name in rows.
const SUITE: &str = "python";

/// A peer: its name in the script, its name in rows, the package it needs
/// (none: the standard library), and its row ids for submit and map.
struct Peer {
    key: &'static str,
    label: &'static str,
    package: Option<Package>,
    submit_id: &'static str,
    map_id: &'static str,
}

const PEERS: [Peer; 5] = [
    Peer {
        key: "ppe",
        label: "ProcessPoolExecutor",
        package: None,
        submit_id: "submit_vs_ppe",
        map_id: "map_vs_ppe",
    },
    Peer {
        key: "mp",
        label: "multiprocessing.Pool",
        package: None,
        submit_id: "submit_vs_mp",
        map_id: "map_vs_mp",
    },
    Peer {
        key: "loky",
        label: "loky",
        package: Some(Package::named("loky")),
        submit_id: "submit_vs_loky",
        map_id: "map_vs_loky",
    },
    Peer {
        key: "pebble",
        label: "pebble",
        package: Some(Package::named("pebble")),
        submit_id: "submit_vs_pebble",
        map_id: "map_vs_pebble",
    },
    Peer {
        key: "mpire",
        label: "mpire",
        package: Some(Package::named("mpire")),
        submit_id: "submit_vs_mpire",
        map_id: "map_vs_mpire",
    },
];

/// Sizes and repetitions; `--quick` shrinks them.
struct Sizes {
    submit_tasks: u64,
    map_items: u64,
    reps: usize,
    trips: u64,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                submit_tasks: 2_000,
                map_items: 100_000,
                reps: 1,
                trips: 200,
            }
        } else {
            Self {
                submit_tasks: 20_000,
                map_items: 1_000_000,
                reps: 3,
                trips: 2_000,
            }
        }
    }
}

/// Runs the suite.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let sizes = Sizes::new(ctx.quick);
    let python = venv::python_with(&ctx.python, &[Package::named("cloudpickle")])
        .map_err(|why| anyhow::anyhow!("no virtualenv for the Python suite: {why}"))?;
    install_quadriga(&python)?;
    // Each peer's interpreter, or why it is skipped.
    let peers: Vec<(&Peer, Result<PathBuf, String>)> = PEERS
        .iter()
        .map(|p| {
            let py = match p.package {
                None => Ok(python.clone()),
                Some(pkg) => venv::python_with(&ctx.python, &[pkg]),
            };
            (p, py)
        })
        .collect();
    let mut rows = Vec::new();
    for (mode, items, goal) in [
        ("submit", sizes.submit_tasks, 3.0),
        ("map", sizes.map_items, 2.0),
    ] {
        progress(&format!("python {mode} of {items}: quadriga"));
        let (ours, our_note) = rate(&python, "quadriga", mode, items, ctx.threads, sizes.reps)
            .map_err(|why| anyhow::anyhow!("quadriga's {mode} failed: {why}"))?;
        for (p, py) in &peers {
            progress(&format!("python {mode} of {items}: {}", p.label));
            let measured = py
                .clone()
                .and_then(|py| rate(&py, p.key, mode, items, ctx.threads, sizes.reps));
            let (value, note) = match measured {
                Ok((v, note)) => (Ok(v), note),
                Err(why) => (Err(why), String::new()),
            };
            let (id, what) = if mode == "submit" {
                (p.submit_id, format!("submit+result {items} trivial tasks"))
            } else {
                (p.map_id, format!("map {items} tiny items"))
            };
            rows.push(
                Row::new(
                    SUITE,
                    id,
                    what,
                    Unit::ItemsPerSec,
                    ours,
                    p.label,
                    value,
                    Goal::RatioAtLeast { min: goal },
                )
                .note(format!("quadriga {our_note}; {} {note}", p.label)),
            );
        }
    }
    let ppe = &PEERS[0];
    for (mode, id, unit, what) in [
        (
            "startup",
            "startup_vs_ppe",
            Unit::Seconds,
            "start the pool, one result from each worker",
        ),
        (
            "latency",
            "round_trip_p50_vs_ppe",
            Unit::Latency,
            "one task's round trip, p50",
        ),
    ] {
        progress(&format!("python {mode}"));
        let items = if mode == "latency" { sizes.trips } else { 0 };
        let ours = seconds(&python, "quadriga", mode, items, ctx.threads, sizes.reps)
            .map_err(|why| anyhow::anyhow!("quadriga's {mode} failed: {why}"))?;
        let theirs = seconds(&python, ppe.key, mode, items, ctx.threads, sizes.reps);
        let scale = if unit == Unit::Latency { 1e6 } else { 1.0 };
        rows.push(
            Row::new(
                SUITE,
                id,
                what,
                unit,
                ours * scale,
                ppe.label,
                theirs.map(|s| s * scale),
                Goal::None,
            )
            .details(json!({ "workers": ctx.threads })),
        );
    }
    Ok(rows)
}

/// Installs the package from `python/` (release build) into the virtualenv.
fn install_quadriga(python: &Path) -> anyhow::Result<()> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python");
    progress(&format!(
        "pip install {} (a release build of the extension)",
        source.display()
    ));
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--force-reinstall",
        ])
        .arg(&source)
        .status()
        .context("running pip")?;
    if !status.success() {
        bail!("`pip install {}` failed: {status}", source.display());
    }
    Ok(())
}

/// Runs the script; the best run's seconds.
fn seconds(
    python: &Path,
    pool: &str,
    mode: &str,
    items: u64,
    workers: usize,
    reps: usize,
) -> Result<f64, String> {
    let args = vec![
        pool.to_owned(),
        mode.to_owned(),
        items.to_string(),
        workers.to_string(),
        "--reps".to_owned(),
        reps.to_string(),
    ];
    let out = peer::run_script(&python.to_string_lossy(), "python_pools.py", &args)?;
    out["seconds"]
        .as_f64()
        .ok_or_else(|| format!("python_pools.py gave no seconds: {out}"))
}

/// Items per second of the best run, and a note.
fn rate(
    python: &Path,
    pool: &str,
    mode: &str,
    items: u64,
    workers: usize,
    reps: usize,
) -> Result<(f64, String), String> {
    let s = seconds(python, pool, mode, items, workers, reps)?;
    Ok((
        items as f64 / s,
        format!("{} (best of {reps})", format_seconds(s)),
    ))
}
