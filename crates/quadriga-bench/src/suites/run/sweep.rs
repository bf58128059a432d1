//! Benchmark 2 of the `run` suite: `-j auto` against a sweep of fixed `-j`
//! on a CPU-bound, an I/O-bound and a download workload.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use serde_json::json;

use super::server::SlowServer;
use super::{SUITE, Sizes, tools, write_lines};
use crate::harness::report::{Goal, Row, Unit};
use crate::harness::timing::format_seconds;
use crate::suites::{Ctx, progress};

/// Where a workload's command takes the `-j` value.
const JOBS: &str = "JOBS";

/// A `-j` setting of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Setting {
    Fixed(usize),
    Auto,
}

impl Setting {
    fn arg(self) -> String {
        match self {
            Setting::Fixed(j) => j.to_string(),
            Setting::Auto => "auto".to_owned(),
        }
    }
}

/// One workload: what `quadriga run` runs, and how it is judged.
#[derive(Debug)]
struct Workload {
    /// The key in the JSON and in row ids: `cpu`, `sleep` or `http`.
    kind: &'static str,
    /// What it is, readable.
    label: String,
    /// The arguments of `quadriga`, with [`JOBS`] where `-j`'s value goes.
    args: Vec<String>,
    /// Fixed `-j` up to this are slow: they run in the first round only.
    slow_up_to: usize,
    /// I/O-bound: auto is also held to ≥ 5× the speed of `-j` cores.
    io_bound: bool,
}

/// The rows of benchmark 2.
pub(super) fn rows(
    ctx: &Ctx,
    sizes: &Sizes,
    quadriga: &Path,
    work: &Path,
) -> anyhow::Result<Vec<Row>> {
    let mut fixed = sizes.sweep.clone();
    // The I/O-bound goal compares with -j at the core count: always measure it.
    fixed.push(ctx.threads);
    fixed.sort_unstable();
    fixed.dedup();
    let mut settings: Vec<Setting> = fixed.into_iter().map(Setting::Fixed).collect();
    settings.push(Setting::Auto);

    let mut rows = Vec::new();
    let cpu = cpu_workload(sizes, work)?;
    rows.extend(sweep(ctx, sizes, quadriga, &settings, &cpu)?);

    let list = work.join("io-jobs");
    write_lines(&list, sizes.io_jobs)?;
    let list = list
        .to_str()
        .context("a non-UTF-8 temporary path")?
        .to_owned();
    let sleep = Workload {
        kind: "sleep",
        label: format!("sleep {} × {}", sizes.sleep, sizes.io_jobs),
        args: words(&[
            "run",
            "-j",
            JOBS,
            "-N0",
            "sleep",
            sizes.sleep,
            "::::",
            &list,
        ]),
        slow_up_to: sizes.slow_sleep,
        io_bound: true,
    };
    rows.extend(sweep(ctx, sizes, quadriga, &settings, &sleep)?);

    match tools::curl() {
        Ok(()) => {
            let latency = Duration::from_millis(sizes.latency_ms);
            let server = SlowServer::start(latency)?;
            let url = server.url_template();
            ensure!(
                tools::runs(
                    "curl",
                    &["-sf", "-o", "/dev/null", &url.replace("{}", "warm")]
                ),
                "the loopback server did not answer curl"
            );
            let http = Workload {
                kind: "http",
                label: format!(
                    "{} downloads, {} ms latency",
                    sizes.io_jobs, sizes.latency_ms
                ),
                args: words(&[
                    "run",
                    "-j",
                    JOBS,
                    "curl",
                    "-sf",
                    "-o",
                    "/dev/null",
                    &url,
                    "::::",
                    &list,
                ]),
                slow_up_to: sizes.slow_http,
                io_bound: true,
            };
            rows.extend(sweep(ctx, sizes, quadriga, &settings, &http)?);
        }
        Err(why) => progress(&format!("downloads skipped: {why}")),
    }
    Ok(rows)
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|&s| s.to_owned()).collect()
}

/// The CPU-bound workload: `sha256sum` of files of pseudo-random bytes,
/// read once first so that every run finds them in the page cache.
fn cpu_workload(sizes: &Sizes, work: &Path) -> anyhow::Result<Workload> {
    let dir = work.join("files");
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    progress(&format!(
        "writing {} files of {} MB",
        sizes.files,
        sizes.file_bytes / 1_000_000
    ));
    let mut list = String::new();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    for i in 1..=sizes.files {
        let path = dir.join(format!("f{i}"));
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        for _ in 0..sizes.file_bytes.div_ceil(8) {
            // splitmix64: incompressible enough for a hash, and fast.
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            file.write_all(&(z ^ (z >> 31)).to_le_bytes())?;
        }
        file.into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
            .ok();
        std::fs::read(&path)?; // into the page cache
        list.push_str(path.to_str().context("a non-UTF-8 temporary path")?);
        list.push('\n');
    }
    let list_path = work.join("files.list");
    std::fs::write(&list_path, list)?;
    let list_path = list_path.to_str().context("a non-UTF-8 temporary path")?;
    Ok(Workload {
        kind: "cpu",
        label: format!(
            "sha256sum {} × {} MB",
            sizes.files,
            sizes.file_bytes / 1_000_000
        ),
        args: words(&["run", "-j", JOBS, "sha256sum", "::::", list_path]),
        slow_up_to: 0,
        io_bound: false,
    })
}

/// Runs `quadriga` once with `-j setting`, output discarded: its wall time.
fn time_once(quadriga: &Path, workload: &Workload, setting: Setting) -> anyhow::Result<f64> {
    let j = setting.arg();
    let args: Vec<&str> = workload
        .args
        .iter()
        .map(|a| if a == JOBS { j.as_str() } else { a.as_str() })
        .collect();
    let started = Instant::now();
    let status = Command::new(quadriga)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {}", quadriga.display()))?;
    let wall = started.elapsed().as_secs_f64();
    ensure!(
        status.success(),
        "quadriga {} failed: {status}",
        args.join(" ")
    );
    Ok(wall)
}

/// Sweeps one workload in rounds and makes its rows.
fn sweep(
    ctx: &Ctx,
    sizes: &Sizes,
    quadriga: &Path,
    settings: &[Setting],
    workload: &Workload,
) -> anyhow::Result<Vec<Row>> {
    progress(&format!("-j auto vs fixed -j: {}", workload.label));
    let mut runs: BTreeMap<Setting, Vec<f64>> = BTreeMap::new();
    for round in 0..sizes.rounds {
        for &setting in settings {
            if round > 0 && matches!(setting, Setting::Fixed(j) if j <= workload.slow_up_to) {
                continue;
            }
            let t = time_once(quadriga, workload, setting)?;
            eprintln!("    {} -j {}: {t:.3} s", workload.kind, setting.arg());
            runs.entry(setting).or_default().push(t);
        }
    }
    let best = |s: Setting| runs[&s].iter().copied().fold(f64::INFINITY, f64::min);
    let mean = |s: Setting| runs[&s].iter().sum::<f64>() / runs[&s].len() as f64;
    let auto = best(Setting::Auto);
    let (best_j, best_fixed) = runs
        .keys()
        .filter_map(|&s| match s {
            Setting::Fixed(j) => Some((j, best(s))),
            Setting::Auto => None,
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .context("no fixed -j was measured")?;
    let share = best_fixed / auto;
    let share_by_mean = mean(Setting::Fixed(best_j)) / mean(Setting::Auto);

    let cells: Vec<String> = runs
        .keys()
        .map(|&s| {
            let mark = if s == Setting::Fixed(best_j) { "*" } else { "" };
            format!("-j {} {}{mark}", s.arg(), format_seconds(best(s)))
        })
        .collect();
    let runs_json: BTreeMap<String, &Vec<f64>> = runs.iter().map(|(s, v)| (s.arg(), v)).collect();
    let best_json: BTreeMap<String, f64> = runs.keys().map(|&s| (s.arg(), best(s))).collect();
    let mut details = json!({
        "workload": workload.label,
        "rounds": sizes.rounds,
        "runs_s": runs_json,
        "best_of_rounds_s": best_json,
        "best_fixed_j": best_j,
        "best_fixed_s": best_fixed,
        "auto_s": auto,
        "auto_share_of_best": share,
        "auto_share_of_best_by_mean": share_by_mean,
    });

    let (id_best, id_nproc) = match workload.kind {
        "cpu" => ("run_auto_cpu_vs_best", "run_auto_cpu_vs_nproc"),
        "sleep" => ("run_auto_sleep_vs_best", "run_auto_sleep_vs_nproc"),
        _ => ("run_auto_http_vs_best", "run_auto_http_vs_nproc"),
    };
    let mut rows = vec![
        Row::new(
            SUITE,
            id_best,
            format!("-j auto vs best fixed -j: {}", workload.label),
            Unit::Seconds,
            auto,
            format!("quadriga -j {best_j}"),
            Ok(best_fixed),
            Goal::RatioAtLeast { min: 0.9 },
        )
        .note(format!(
            "best of {} rounds: {}; auto ÷ best by mean of rounds {:.0}%",
            sizes.rounds,
            cells.join(", "),
            share_by_mean * 100.0
        ))
        .details(details.clone()),
    ];
    if workload.io_bound {
        let nproc = best(Setting::Fixed(ctx.threads));
        details["speedup_over_nproc"] = json!(nproc / auto);
        rows.push(
            Row::new(
                SUITE,
                id_nproc,
                format!("-j auto vs -j cores: {}", workload.label),
                Unit::Seconds,
                auto,
                format!("quadriga -j {}", ctx.threads),
                Ok(nproc),
                Goal::RatioAtLeast { min: 5.0 },
            )
            .details(details),
        );
    }
    Ok(rows)
}
