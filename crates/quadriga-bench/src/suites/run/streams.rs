//! Benchmark 3 of the `run` suite: streams. `--pipe … wc -l` (stdin cut
//! into 1 MiB blocks) and `--pipepart -a FILE … wc -l` (the file cut in
//! place) over a generated file of ~440 MB (`seq 50000000`), against GNU
//! parallel with the same options in the same run (goals: ≥ 3× GNU on
//! `--pipe`, ≥ 2× on `--pipepart`), and the floor: `wc -l` alone over the
//! same file, reported as the distance to it. Each command's count is
//! checked against the file's, so a fast wrong answer cannot pass.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context as _;
use serde_json::json;

use super::{SUITE, Sizes, tools};
use crate::harness::report::{Goal, Row, Unit};
use crate::harness::timing::{Plan, Stats, measure_interleaved};
use crate::suites::{Ctx, progress};

/// Runs `sh -c script` (stdin from `input` if given) and returns the sum of
/// the numbers it prints, one a line (the per-block counts of `wc -l`).
fn run_sum(script: &str, input: Option<&Path>) -> u64 {
    let stdin = match input {
        Some(p) => Stdio::from(File::open(p).expect("the stream's file")),
        None => Stdio::null(),
    };
    let out = Command::new("sh")
        .args(["-c", script])
        .stdin(stdin)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("could not run {script}: {e}"));
    assert!(out.status.success(), "{script} failed: {}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .sum()
}

/// Writes `1..=n`, one a line, with `seq`: the stream.
fn write_seq(path: &Path, n: u64) -> anyhow::Result<u64> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let status = Command::new("seq")
        .args(["1", &n.to_string()])
        .stdout(f)
        .status()
        .context("running seq")?;
    anyhow::ensure!(status.success(), "seq failed: {status}");
    Ok(std::fs::metadata(path)?.len())
}

fn q(s: &Path) -> String {
    format!("'{}'", s.display().to_string().replace('\'', "'\\''"))
}

/// The rows of benchmark 3.
pub(super) fn rows(
    ctx: &Ctx,
    sizes: &Sizes,
    quadriga: &Path,
    work: &Path,
) -> anyhow::Result<Vec<Row>> {
    let lines = sizes.stream_lines;
    let file = work.join("stream");
    let bytes = write_seq(&file, lines)?;
    let mb = bytes as f64 / 1e6;
    let width = ctx.threads.to_string();
    progress(&format!(
        "streams: {mb:.0} MB through --pipe and --pipepart wc -l at -j {width}: quadriga, GNU parallel, wc -l"
    ));
    let parallel = tools::gnu_parallel();
    if let Err(why) = &parallel {
        progress(&format!("GNU parallel skipped: {why}"));
    }
    let qb = q(quadriga);
    let f = q(&file);
    let q_pipe = format!("{qb} run -j {width} --pipe wc -l");
    let p_pipe = format!("parallel --will-cite -j {width} --pipe wc -l");
    let q_part = format!("{qb} run -j {width} --pipepart -a {f} wc -l");
    let p_part = format!("parallel --will-cite -j {width} --pipepart -a {f} wc -l");
    let floor = "wc -l";

    let check = |what: &str, got: u64| {
        assert_eq!(got, lines, "{what} counted {got} lines, not {lines}");
    };
    let plan = Plan::new(sizes.warmup, sizes.stream_runs);
    let mut run_floor = || check(floor, run_sum(floor, Some(&file)));
    let mut run_qp = || check(&q_pipe, run_sum(&q_pipe, Some(&file)));
    let mut run_pp = || check(&p_pipe, run_sum(&p_pipe, Some(&file)));
    let mut run_qa = || check(&q_part, run_sum(&q_part, None));
    let mut run_pa = || check(&p_part, run_sum(&p_part, None));
    let stats = if parallel.is_ok() {
        measure_interleaved(
            plan,
            &mut [
                &mut run_floor,
                &mut run_qp,
                &mut run_pp,
                &mut run_qa,
                &mut run_pa,
            ],
        )
    } else {
        measure_interleaved(plan, &mut [&mut run_floor, &mut run_qp, &mut run_qa])
    };
    let (wc, qp, qa) = if parallel.is_ok() {
        (&stats[0], &stats[1], &stats[3])
    } else {
        (&stats[0], &stats[1], &stats[2])
    };
    let gnu = parallel
        .as_ref()
        .ok()
        .map(|v| (v.clone(), &stats[2], &stats[4]));

    let rate = |s: &Stats| mb / s.median_s;
    let mut rows = Vec::new();
    for (id, what, ours, gnu_stats, min) in [
        (
            "run_pipe_wc_vs_parallel",
            "--pipe",
            qp,
            gnu.as_ref().map(|g| g.1),
            3.0,
        ),
        (
            "run_pipepart_wc_vs_parallel",
            "--pipepart",
            qa,
            gnu.as_ref().map(|g| g.2),
            2.0,
        ),
    ] {
        let floor_note = format!(
            "{:.1}× the floor (wc -l alone {}, {:.0} MB/s)",
            ours.median_s / wc.median_s,
            wc.brief(),
            rate(wc)
        );
        let (value, note, details) = match (&gnu, gnu_stats) {
            (Some((version, _, _)), Some(p)) => (
                Ok(p.median_s),
                format!(
                    "parallel ÷ quadriga {:.2} by median, {:.2} by best run; quadriga {} ({:.0} MB/s), \
                     parallel {} ({:.0} MB/s, {version}); quadriga is {floor_note}",
                    p.median_s / ours.median_s,
                    p.min_s / ours.min_s,
                    ours.brief(),
                    rate(ours),
                    p.brief(),
                    rate(p)
                ),
                json!({ "bytes": bytes, "width": ctx.threads, "quadriga": ours, "parallel": p,
                        "wc": wc, "version": version }),
            ),
            _ => (
                Err(parallel.clone().err().unwrap_or_default()),
                format!(
                    "quadriga {} ({:.0} MB/s); {floor_note}",
                    ours.brief(),
                    rate(ours)
                ),
                json!({ "bytes": bytes, "width": ctx.threads, "quadriga": ours, "wc": wc }),
            ),
        };
        rows.push(
            Row::new(
                SUITE,
                id,
                format!("{mb:.0} MB, {what} wc -l, -j {width}: wall time"),
                Unit::Seconds,
                ours.median_s,
                format!("GNU parallel {what}"),
                value,
                Goal::RatioAtLeast { min },
            )
            .note(note)
            .details(details),
        );
        rows.push(
            Row::new(
                SUITE,
                if what == "--pipe" {
                    "run_pipe_wc_vs_wc"
                } else {
                    "run_pipepart_wc_vs_wc"
                },
                format!("{mb:.0} MB, {what} wc -l, -j {width}: distance to the floor"),
                Unit::Seconds,
                ours.median_s,
                "wc -l alone",
                Ok(wc.median_s),
                Goal::None,
            )
            .note(floor_note)
            .details(json!({ "quadriga": ours, "wc": wc })),
        );
    }
    Ok(rows)
}
