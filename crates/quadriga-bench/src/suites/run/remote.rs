//! Benchmark 4 of the `run` suite: 1,000 × `true` through the broker
//! (`quadriga run --broker`, two local `quadriga worker`s on a private
//! `redis-server`) against the same jobs run locally (the broker's overhead
//! per job; goal ≤ 1 ms) and against GNU parallel `-S` to two ssh logins on
//! localhost (goal ≥ 5×), the latter only where `ssh localhost` works
//! without a password (else the row says why it is skipped).
//!
//! `QUADRIGA_BENCH_RUN=remote cargo run --release -p quadriga-bench -- run`.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;

use super::overhead::run_quiet;
use super::{SUITE, Sizes, tools, write_lines};
use crate::harness::report::{Goal, Row, Unit};
use crate::harness::timing::{Plan, measure_interleaved};
use crate::suites::{Ctx, progress};

/// Processes started here, killed by pid and reaped when dropped.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts a private `redis-server` (durable as deployments run it:
/// `appendfsync everysec`) and waits until it answers; its URL.
fn redis(work: &Path, procs: &mut Procs) -> anyhow::Result<String> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = work.join("redis");
    std::fs::create_dir_all(&dir)?;
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("could not start redis-server (apt-get install redis-server)")?;
    procs.0.push(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tools::runs("redis-cli", &["-p", &port.to_string(), "ping"]) {
        if Instant::now() > deadline {
            bail!("redis-server did not answer within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(format!("redis://127.0.0.1:{port}/"))
}

/// Starts a worker with `slots` and waits (bounded) until it serves.
fn worker(
    quadriga: &Path,
    url: &str,
    key: &Path,
    slots: usize,
    log: PathBuf,
    procs: &mut Procs,
) -> anyhow::Result<()> {
    let child = Command::new(quadriga)
        .args([
            "worker",
            "--broker",
            url,
            "-j",
            &slots.to_string(),
            "--key-file",
        ])
        .arg(key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {} worker", quadriga.display()))?;
    procs.0.push(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("serving queue")
    {
        if Instant::now() > deadline {
            bail!(
                "the worker did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Why GNU parallel `-S` to localhost cannot be measured, if it cannot.
fn ssh_unusable() -> Option<String> {
    if let Err(why) = tools::gnu_parallel() {
        return Some(why);
    }
    let ok = tools::runs(
        "ssh",
        &[
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=3",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "localhost",
            "true",
        ],
    );
    (!ok).then(|| {
        "no passwordless `ssh localhost` here (no sshd, or no key): GNU parallel -S cannot run"
            .to_owned()
    })
}

/// The rows of benchmark 4.
pub(super) fn rows(
    ctx: &Ctx,
    sizes: &Sizes,
    quadriga: &Path,
    work: &Path,
) -> anyhow::Result<Vec<Row>> {
    let n = sizes.true_jobs;
    let width = ctx.threads.max(2);
    let per_worker = (width / 2).max(1);
    progress(&format!(
        "{n} × true through the broker (2 workers × {per_worker}) vs local -j {width} vs GNU -S"
    ));
    let mut procs = Procs(Vec::new());
    let url = redis(work, &mut procs)?;
    let key = work.join("key");
    std::fs::write(&key, "quadriga-bench-remote-key-0123456789\n")?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    for i in 0..2 {
        worker(
            quadriga,
            &url,
            &key,
            per_worker,
            work.join(format!("worker-{i}.log")),
            &mut procs,
        )?;
    }
    let input = work.join("remote-jobs");
    write_lines(&input, n)?;
    let input = input.to_str().context("a non-UTF-8 temporary path")?;
    let key_s = key.to_str().context("a non-UTF-8 temporary path")?;
    let remote_args: Vec<String> = [
        "run",
        "--broker",
        &url,
        "--key-file",
        key_s,
        "true",
        "::::",
        input,
    ]
    .map(str::to_owned)
    .into();
    let w = width.to_string();
    let local_args: Vec<String> = ["run", "-j", &w, "true", "::::", input]
        .map(str::to_owned)
        .into();
    let ssh = ssh_unusable();
    let p_args: Vec<String> = [
        "--will-cite",
        "-S",
        &format!("{per_worker}/localhost,{per_worker}/127.0.0.1"),
        "true",
        "::::",
        input,
    ]
    .map(str::to_owned)
    .into();
    let mut run_r = || run_quiet(quadriga, &remote_args);
    let mut run_l = || run_quiet(quadriga, &local_args);
    let mut run_p = || run_quiet(Path::new("parallel"), &p_args);
    let plan = Plan::new(sizes.warmup, sizes.runs);
    let stats = if ssh.is_none() {
        measure_interleaved(plan, &mut [&mut run_r, &mut run_l, &mut run_p])
    } else {
        measure_interleaved(plan, &mut [&mut run_r, &mut run_l])
    };
    let (r, l) = (&stats[0], &stats[1]);
    let per_job_us = (r.median_s - l.median_s) / n as f64 * 1e6;
    let best_us = (r.min_s - l.min_s) / n as f64 * 1e6;
    let mut rows =
        vec![
        Row::alone(
            SUITE,
            "run_broker_overhead_per_job",
            format!("{n} × true through the broker (2 workers): added time per job"),
            Unit::Latency,
            per_job_us,
            Goal::ValueAtMost { max: 1000.0 },
        )
        .note(format!(
            "(broker − local) ÷ jobs: {per_job_us:.0} µs by median, {best_us:.0} µs by best run \
             (goal ≤ 1 ms); broker {}, local -j {width} {}",
            r.brief(),
            l.brief()
        ))
        .details(json!({ "jobs": n, "workers": 2, "slots_per_worker": per_worker,
                         "broker": r, "local": l })),
    ];
    let row = match (&ssh, stats.get(2)) {
        (None, Some(p)) => Row::new(
            SUITE,
            "run_broker_vs_parallel_ssh",
            format!("{n} × true, 2 hosts: wall time"),
            Unit::Seconds,
            r.median_s,
            "GNU parallel -S (2 ssh logins to localhost)",
            Ok(p.median_s),
            Goal::RatioAtLeast { min: 5.0 },
        )
        .note(format!(
            "parallel -S ÷ broker {:.2} by median; broker {}, parallel {}",
            p.median_s / r.median_s,
            r.brief(),
            p.brief()
        ))
        .details(json!({ "jobs": n, "broker": r, "parallel": p })),
        (why, _) => Row::new(
            SUITE,
            "run_broker_vs_parallel_ssh",
            format!("{n} × true, 2 hosts: wall time"),
            Unit::Seconds,
            r.median_s,
            "GNU parallel -S (2 ssh logins to localhost)",
            Err(why.clone().unwrap_or_else(|| "not measured".into())),
            Goal::RatioAtLeast { min: 5.0 },
        )
        .note(format!("broker {}", r.brief())),
    };
    rows.push(row);
    drop(procs);
    Ok(rows)
}
