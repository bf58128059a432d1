//! Benchmark 1 of the `run` suite: the runner's own overhead, 1,000 × `true`
//! at the width of the machine, against `xargs -P` and GNU parallel.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context as _;
use serde_json::json;

use super::{SUITE, Sizes, tools, write_lines};
use crate::harness::report::{Goal, Row, Unit};
use crate::harness::timing::{Plan, Stats, measure_interleaved};
use crate::suites::{Ctx, progress};

/// Runs `program args`, output discarded; panics if it fails, as a timed
/// body must not go on with a broken peer.
pub(super) fn run_quiet(program: &Path, args: &[String]) {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", program.display()));
    assert!(
        status.success(),
        "{} {args:?} failed: {status}",
        program.display()
    );
}

/// The rows of benchmark 1.
pub(super) fn rows(
    ctx: &Ctx,
    sizes: &Sizes,
    quadriga: &Path,
    work: &Path,
) -> anyhow::Result<Vec<Row>> {
    let n = sizes.true_jobs;
    let width = ctx.threads.to_string();
    let input = work.join("jobs");
    write_lines(&input, n)?;
    let input = input.to_str().context("a non-UTF-8 temporary path")?;
    progress(&format!(
        "{n} × true at -j {width}: quadriga, xargs -P, GNU parallel"
    ));

    let parallel = tools::gnu_parallel();
    if let Err(why) = &parallel {
        progress(&format!("GNU parallel skipped: {why}"));
    }
    let q_args: Vec<String> = ["run", "-j", &width, "true", "::::", input]
        .map(str::to_owned)
        .into();
    let x_args: Vec<String> = ["-P", &width, "-n", "1", "-a", input, "true"]
        .map(str::to_owned)
        .into();
    let p_args: Vec<String> = ["--will-cite", "-j", &width, "true", "::::", input]
        .map(str::to_owned)
        .into();
    let xargs = Path::new("xargs");
    let gnu = Path::new("parallel");
    let mut run_q = || run_quiet(quadriga, &q_args);
    let mut run_x = || run_quiet(xargs, &x_args);
    let mut run_p = || run_quiet(gnu, &p_args);
    let plan = Plan::new(sizes.warmup, sizes.runs);
    let stats = if parallel.is_ok() {
        measure_interleaved(plan, &mut [&mut run_q, &mut run_x, &mut run_p])
    } else {
        measure_interleaved(plan, &mut [&mut run_q, &mut run_x])
    };
    let (q, x, p) = (&stats[0], &stats[1], stats.get(2));

    // Seconds of `a` over seconds of `b`, by median and by best run.
    let over = |a: &Stats, b: &Stats| (a.median_s / b.median_s, a.min_s / b.min_s);
    let (qx, qx_best) = over(q, x);
    let mut rows = vec![
        Row::new(
            SUITE,
            "run_true_vs_xargs",
            format!("{n} × true, -j {width}: wall time"),
            Unit::Seconds,
            q.median_s,
            format!("xargs -P {width}"),
            Ok(x.median_s),
            Goal::RatioAtLeast { min: 1.0 / 1.15 },
        )
        .note(format!(
            "quadriga ÷ xargs {qx:.2} by median, {qx_best:.2} by best run (goal ≤ 1.15); \
             quadriga {}, xargs {}",
            q.brief(),
            x.brief()
        ))
        .details(json!({ "jobs": n, "width": ctx.threads, "quadriga": q, "xargs": x })),
    ];
    let (p_value, p_note, p_details) = match (p, &parallel) {
        (Some(p), Ok(version)) => {
            let (pq, pq_best) = over(p, q);
            (
                Ok(p.median_s),
                format!(
                    "parallel ÷ quadriga {pq:.2} by median, {pq_best:.2} by best run; \
                     quadriga {}, parallel {} ({version})",
                    q.brief(),
                    p.brief()
                ),
                json!({ "jobs": n, "width": ctx.threads, "quadriga": q, "parallel": p, "version": version }),
            )
        }
        (_, Err(why)) => (
            Err(why.clone()),
            format!("quadriga {}", q.brief()),
            json!(null),
        ),
        (None, Ok(_)) => unreachable!("GNU parallel was measured when it was found"),
    };
    rows.push(
        Row::new(
            SUITE,
            "run_true_vs_parallel",
            format!("{n} × true, -j {width}: wall time"),
            Unit::Seconds,
            q.median_s,
            format!("GNU parallel -j {width}"),
            p_value,
            Goal::RatioAtLeast { min: 5.0 },
        )
        .note(p_note)
        .details(p_details),
    );
    rows.push(runner_cpu(sizes, quadriga, &q_args, n)?);
    Ok(rows)
}

/// The runner's own CPU time per job, from what `quadriga run -v` reports
/// (`runner CPU X ms`: its `getrusage(RUSAGE_SELF)`, children excluded), over
/// separate runs of the same command.
fn runner_cpu(
    sizes: &Sizes,
    quadriga: &Path,
    q_args: &[String],
    jobs: usize,
) -> anyhow::Result<Row> {
    let mut args = q_args.to_vec();
    args.insert(1, "-v".to_owned());
    let mut per_job_ms = Vec::new();
    for _ in 0..sizes.runs {
        let out = Command::new(quadriga)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running {}", quadriga.display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(ms) = stderr.lines().find_map(runner_cpu_ms) {
            per_job_ms.push(ms / jobs as f64);
        }
    }
    let row = if per_job_ms.is_empty() {
        // An older binary that does not report its CPU time.
        Row::alone(
            SUITE,
            "run_runner_cpu_per_job",
            format!("{jobs} × true: runner's own CPU per job"),
            Unit::CpuMsPerJob,
            f64::NAN,
            Goal::None,
        )
        .note("`quadriga run -v` printed no `runner CPU` line (an older binary?)")
    } else {
        let stats = Stats::from_samples(0, per_job_ms.clone());
        Row::alone(
            SUITE,
            "run_runner_cpu_per_job",
            format!("{jobs} × true: runner's own CPU per job"),
            Unit::CpuMsPerJob,
            stats.median_s,
            Goal::ValueAtMost { max: 0.1 },
        )
        .note(format!(
            "median {:.4} ms, best {:.4} ms per job over {} runs (getrusage of the runner, children excluded)",
            stats.median_s,
            stats.min_s,
            per_job_ms.len()
        ))
        .details(json!({ "ms_per_job": per_job_ms, "median_ms": stats.median_s, "best_ms": stats.min_s }))
    };
    Ok(row)
}

/// `X` of a line `... runner CPU X ms ...`.
fn runner_cpu_ms(line: &str) -> Option<f64> {
    let rest = line.split_once("runner CPU ")?.1;
    rest.split_once(" ms")?.0.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_runner_cpu_line() {
        let line =
            "quadriga: 1000 jobs (0 failed) in 1.234 s; runner CPU 42.5 ms (0.0425 ms per job)";
        assert_eq!(runner_cpu_ms(line), Some(42.5));
        assert_eq!(runner_cpu_ms("quadriga: something else"), None);
    }
}
