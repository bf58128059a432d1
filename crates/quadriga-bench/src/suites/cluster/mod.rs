//! The `cluster` suite: issue #12's benchmarks of `quadriga::cluster` against
//! Python's distributed task queues, on one `redis-server` that the suite
//! starts (free loopback port, temp dir, stopped by pid at the end), with 2
//! worker processes for every system.
//!
//! Quadriga's workers are this binary re-executed with
//! `QUADRIGA_CLUSTER_WORKER` set (see `workers.rs`), with the default
//! concurrency (one entry per core at once, on threads) and the default lease
//! (10 s). The peers run in `peers/cluster_peers.py`, installed into the
//! bench's virtualenv; one that will not install is skipped.
//!
//! 1. `submit` + `join` of many trivial tasks against Celery (goal ≥ 20×),
//!    RQ (no goal), Dask distributed (≥ 5×) and Ray (≥ 2×).
//! 2. One task's round trip on the idle cluster, p50 (goal ≤ 0.5 ms) and p99,
//!    next to the same peers' and to a bare Redis `PING` (the floor).
//! 3. A 1,000,000-item `map` through the broker (goal ≥ 1M items/s), next to
//!    a local `ProcessPool` map of the same items (no broker: the ceiling).
//! 4. The time from a worker's SIGKILL to its task completing on the other
//!    worker (goal ≤ one lease, 10 s), against Celery with its defaults (and,
//!    in full runs, with `acks_late`), capped at 60 s.
//!
//! `QUADRIGA_BENCH_CLUSTER=submit,latency,map,kill,peers` (any of them,
//! comma-separated; default all) picks the phases, so that Quadriga's own
//! rows can be rerun quickly without the peers, e.g.
//! `QUADRIGA_BENCH_CLUSTER=submit,latency,map cargo run --release -p
//! quadriga-bench -- cluster --quick`. A row whose phase was left out is not
//! printed; with `peers` left out, the peers' columns say so.
//!
//! Every Quadriga phase is profiled (`profile.rs`): round trips and
//! in-script commands per task from the broker's counters, and the CPU time
//! of Redis, the client and the workers; the rows' notes and the JSON carry
//! it.

mod peers;
mod profile;
mod server;
mod workers;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use quadriga::ProcessPool;
use quadriga::cluster::ClusterPool;
use serde_json::json;

use self::peers::System;
use self::profile::Profile;
use self::server::RedisServer;
use self::workers::Workers;
use super::{Ctx, progress};
use crate::harness::report::{Goal, Row, Unit};
use crate::harness::timing::{Plan, Stats, format_seconds, measure};

/// The suite's name in rows.
const SUITE: &str = "cluster";
/// Quadriga's key prefix and queue, in database 0.
const PREFIX: &str = "qbench";
const QUEUE: &str = "bench";
/// Database numbers: Quadriga's, and each Redis-backed peer's.
const DB_QUADRIGA: u8 = 0;
const DB_CELERY: u8 = 1;
const DB_RQ: u8 = 2;
/// Worker processes for every system.
const WORKERS: usize = 2;
/// Quadriga's default lease, which the kill benchmark is held to.
const LEASE: Duration = Duration::from_secs(10);

/// The trivial task: about a nanosecond of work.
#[quadriga::task]
fn tiny(x: u64) -> u64 {
    x.wrapping_mul(x) ^ (x >> 3)
}

/// The kill benchmark's task: appends this process's pid to `path`, then
/// sleeps `ms` milliseconds; returns the pid.
#[quadriga::task]
fn hold(path: String, ms: u64) -> u32 {
    if let Ok(mut f) = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = writeln!(f, "{}", std::process::id());
    }
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Sizes and repetitions; `--quick` shrinks them.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    submit_tasks: u64,
    submit_plan: Plan,
    latency_trips: usize,
    map_items: u64,
    map_reps: usize,
    kill_trials: usize,
    /// How long Celery's task gets to come back after the kill.
    celery_cap: Duration,
    /// Whether Celery's `acks_late` variant is measured too.
    celery_acks_late: bool,
    peer_reps: usize,
    peer_deadline: Duration,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                submit_tasks: 2_000,
                submit_plan: Plan::new(1, 3),
                latency_trips: 300,
                map_items: 100_000,
                map_reps: 2,
                kill_trials: 1,
                celery_cap: Duration::from_secs(30),
                celery_acks_late: false,
                peer_reps: 1,
                peer_deadline: Duration::from_secs(240),
            }
        } else {
            Self {
                submit_tasks: 20_000,
                submit_plan: Plan::new(1, 5),
                latency_trips: 2_000,
                map_items: 1_000_000,
                map_reps: 3,
                kill_trials: 3,
                celery_cap: Duration::from_secs(60),
                celery_acks_late: true,
                peer_reps: 3,
                peer_deadline: Duration::from_secs(600),
            }
        }
    }

    /// Tasks and round trips for a peer: each as many as it finishes in
    /// tens of seconds on a small machine.
    fn peer(&self, system: System) -> (u64, usize) {
        let quick = self.submit_tasks < 10_000;
        match (system, quick) {
            (System::Celery, true) => (200, 30),
            (System::Celery, false) => (2_000, 200),
            (System::Rq, true) => (30, 10),
            (System::Rq, false) => (100, 30),
            (System::Dask | System::Ray, true) => (300, 30),
            (System::Dask | System::Ray, false) => (5_000, 200),
        }
    }
}

/// What a peer's `bench` run gave: tasks per second, latency p50 and p99
/// (µs), and its raw answer; or why it was skipped.
type PeerRun = Result<(f64, f64, f64, serde_json::Value), String>;

/// The environment variable that picks the phases.
const PHASES_ENV: &str = "QUADRIGA_BENCH_CLUSTER";

/// Whether `phase` runs: every phase unless [`PHASES_ENV`] names some.
fn runs(phase: &str) -> bool {
    match std::env::var(PHASES_ENV) {
        Ok(list) if !list.trim().is_empty() => list.split(',').any(|p| p.trim() == phase),
        _ => true,
    }
}

/// Runs the suite.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let sizes = Sizes::new(ctx.quick);
    let server = RedisServer::start()?;
    let logs = Logs::new()?;
    progress(&format!(
        "redis-server {} on {} (appendonly yes, appendfsync everysec); logs in {}",
        server.version(),
        server.url(DB_QUADRIGA),
        logs.dir.display()
    ));
    let mut workers = Workers::start(
        &server,
        DB_QUADRIGA,
        PREFIX,
        QUEUE,
        WORKERS,
        ctx.threads,
        &logs.path("quadriga-workers.log"),
    )?;
    let pool = ClusterPool::builder(server.url(DB_QUADRIGA))
        .prefix(PREFIX)
        .queue(QUEUE)
        .build()
        .context("connecting the cluster pool")?;
    for h in (0..200).map(|i| pool.submit(tiny, i)).collect::<Vec<_>>() {
        h.join().context("warm-up task")?;
    }

    // The peers first, one system at a time, while Quadriga's workers idle.
    let mut peer_runs = Vec::new();
    for system in System::ALL {
        if !runs("peers") {
            peer_runs.push((system, Err(format!("not run ({PHASES_ENV})"))));
            continue;
        }
        let db = match system {
            System::Celery => DB_CELERY,
            System::Rq => DB_RQ,
            System::Dask | System::Ray => DB_QUADRIGA + 3,
        };
        let (tasks, trips) = sizes.peer(system);
        let got = peers::bench(
            ctx,
            system,
            &server.url(db),
            (tasks, trips, sizes.peer_reps),
            &logs.path(&format!("{}.log", system.arg())),
            sizes.peer_deadline,
        );
        if let Err(why) = &got {
            eprintln!("  … {} skipped: {why}", system.arg());
        }
        peer_runs.push((system, got.map(|v| peer_numbers(tasks, v))));
        let _ = server.flush(db);
    }

    let mut rows = Vec::new();
    if runs("submit") {
        progress(&format!(
            "quadriga submit+join of {} tasks",
            sizes.submit_tasks
        ));
        rows.extend(throughput(&sizes, &server, &workers, &pool, &peer_runs)?);
    }
    if runs("latency") {
        progress(&format!(
            "quadriga round trips: {} on the idle cluster",
            sizes.latency_trips
        ));
        rows.extend(latency(&sizes, &server, &workers, &pool, &peer_runs)?);
    }
    if runs("map") {
        progress(&format!(
            "quadriga map of {} items through the broker",
            sizes.map_items
        ));
        rows.push(map_row(ctx, &sizes, &server, &workers, &pool)?);
    }
    if runs("kill") {
        progress(&format!(
            "SIGKILL of a worker mid-task: {} trial(s), lease {} s",
            sizes.kill_trials,
            LEASE.as_secs()
        ));
        rows.extend(kill_rows(ctx, &sizes, &server, &mut workers, &pool, &logs)?);
    }
    drop(pool);
    drop(workers);
    drop(server);
    logs.remove();
    Ok(rows)
}

/// The log files of the workers and peers, in a temp dir removed after a
/// run that got through (kept, and named, when it did not).
struct Logs {
    dir: PathBuf,
}

impl Logs {
    fn new() -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("quadriga-bench-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("making {}", dir.display()))?;
        Ok(Logs { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A peer's answer as (tasks/s, p50 µs, p99 µs, raw).
fn peer_numbers(tasks: u64, v: serde_json::Value) -> (f64, f64, f64, serde_json::Value) {
    let seconds = v["seconds"].as_f64().unwrap_or(f64::NAN);
    let p50 = v["latency_us"]["p50"].as_f64().unwrap_or(f64::NAN);
    let p99 = v["latency_us"]["p99"].as_f64().unwrap_or(f64::NAN);
    let mut raw = v;
    // The samples are in the peer's JSON; the row keeps the summary.
    if let Some(l) = raw["latency_us"].as_object_mut() {
        l.remove("samples");
    }
    (tasks as f64 / seconds, p50, p99, raw)
}

/// Deletes the entry records a phase left (where each entry was, its
/// outcomes), so that repetitions do not pile them up in the broker's
/// memory.
fn clean(server: &RedisServer) -> anyhow::Result<()> {
    server.unlink_matching(DB_QUADRIGA, &format!("{PREFIX}:*:rec:*"))?;
    Ok(())
}

/// Benchmark 1: submit + join of trivial tasks, profiled once.
fn throughput(
    sizes: &Sizes,
    server: &RedisServer,
    workers: &Workers,
    pool: &ClusterPool,
    peer_runs: &[(System, PeerRun)],
) -> anyhow::Result<Vec<Row>> {
    let tasks = sizes.submit_tasks;
    let mut body = || {
        let handles: Vec<_> = (0..tasks).map(|i| pool.submit(tiny, i)).collect();
        let mut acc = 0;
        for h in handles {
            acc ^= h.join().expect("a benchmark task failed");
        }
        std::hint::black_box(acc);
    };
    let stats = measure(sizes.submit_plan, &mut body);
    clean(server)?;
    // One more run, profiled (outside the timing above).
    let probe = profile::start(server, workers)?;
    body();
    let prof = profile::finish(probe, server, workers, tasks)?;
    clean(server)?;
    let quadriga = stats.throughput(tasks);
    let rows = peer_runs
        .iter()
        .map(|(system, run)| {
            let goal = match system {
                System::Celery => Goal::RatioAtLeast { min: 20.0 },
                System::Rq => Goal::None,
                System::Dask => Goal::RatioAtLeast { min: 5.0 },
                System::Ray => Goal::RatioAtLeast { min: 2.0 },
            };
            let (peer_tasks, _) = sizes.peer(*system);
            let (value, peer_note, raw) = match run {
                Ok((rate, _, _, raw)) => (
                    Ok(*rate),
                    format!(
                        "{} {} tasks in {} (best of {})",
                        system.arg(),
                        peer_tasks,
                        format_seconds(raw["seconds"].as_f64().unwrap_or(f64::NAN)),
                        sizes.peer_reps
                    ),
                    raw.clone(),
                ),
                Err(why) => (Err(why.clone()), String::new(), serde_json::Value::Null),
            };
            Row::new(
                SUITE,
                throughput_id(*system),
                format!("submit+join trivial tasks, 2 workers ({tasks} for quadriga)"),
                Unit::ItemsPerSec,
                quadriga,
                system.label(),
                value,
                goal,
            )
            .note(format!(
                "quadriga {tasks} tasks in {} (median); {peer_note}; {}",
                stats.brief(),
                if *system == System::Celery {
                    prof.summary()
                } else {
                    "profile: see submit_join_vs_celery".to_owned()
                }
            ))
            .details(json!({ "quadriga": stats, "profile": prof.json(), "peer": raw }))
        })
        .collect();
    Ok(rows)
}

fn throughput_id(system: System) -> &'static str {
    match system {
        System::Celery => "submit_join_vs_celery",
        System::Rq => "submit_join_vs_rq",
        System::Dask => "submit_join_vs_dask",
        System::Ray => "submit_join_vs_ray",
    }
}

/// The `p`-quantile of `sorted`.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Benchmark 2: one task's round trip on the idle cluster.
fn latency(
    sizes: &Sizes,
    server: &RedisServer,
    workers: &Workers,
    pool: &ClusterPool,
    peer_runs: &[(System, PeerRun)],
) -> anyhow::Result<Vec<Row>> {
    let trips = sizes.latency_trips;
    for i in 0..50 {
        pool.submit(tiny, i).join().context("warm-up")?;
    }
    std::thread::sleep(Duration::from_millis(100));
    let probe = profile::start(server, workers)?;
    let mut ours = Vec::with_capacity(trips);
    for i in 0..trips as u64 {
        let t = Instant::now();
        std::hint::black_box(pool.submit(tiny, i).join().context("a round trip")?);
        ours.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let prof = profile::finish(probe, server, workers, trips as u64)?;
    clean(server)?;
    ours.sort_by(f64::total_cmp);
    let floor = ping_floor(server, trips)?;
    let mut rows = Vec::new();
    for (p, label) in [(0.5, "p50"), (0.99, "p99")] {
        let q = quantile(&ours, p);
        let goal = if p == 0.5 {
            Goal::ValueAtMost { max: 500.0 }
        } else {
            Goal::None
        };
        for (system, run) in peer_runs {
            let (value, raw) = match run {
                Ok((_, p50, p99, raw)) => (Ok(if p == 0.5 { *p50 } else { *p99 }), raw.clone()),
                Err(why) => (Err(why.clone()), serde_json::Value::Null),
            };
            let peer_trips = raw["latency_us"]["trips"].as_u64().unwrap_or(0);
            rows.push(
                Row::new(
                    SUITE,
                    latency_id(*system, p == 0.5),
                    format!("one task's round trip, idle cluster, {label}"),
                    Unit::Latency,
                    q,
                    system.label(),
                    value,
                    goal,
                )
                .note(format!(
                    "quadriga {trips} round trips, {} {peer_trips}",
                    system.arg()
                ))
                .details(json!({ "profile": prof.json(), "peer": raw })),
            );
        }
        rows.push(
            Row::new(
                SUITE,
                if p == 0.5 {
                    "latency_p50_vs_ping"
                } else {
                    "latency_p99_vs_ping"
                },
                format!("one task's round trip, idle cluster, {label}"),
                Unit::Latency,
                q,
                "Redis PING round trip (floor)",
                Ok(quantile(&floor, p)),
                Goal::None,
            )
            .note(format!(
                "{trips} round trips each: a task costs about {:.1} PINGs; {}",
                q / quantile(&floor, p),
                prof.summary()
            ))
            .details(json!({ "profile": prof.json() })),
        );
    }
    Ok(rows)
}

fn latency_id(system: System, p50: bool) -> &'static str {
    match (system, p50) {
        (System::Celery, true) => "latency_p50_vs_celery",
        (System::Celery, false) => "latency_p99_vs_celery",
        (System::Rq, true) => "latency_p50_vs_rq",
        (System::Rq, false) => "latency_p99_vs_rq",
        (System::Dask, true) => "latency_p50_vs_dask",
        (System::Dask, false) => "latency_p99_vs_dask",
        (System::Ray, true) => "latency_p50_vs_ray",
        (System::Ray, false) => "latency_p99_vs_ray",
    }
}

/// `trips` timed `PING`s on one connection (sorted, µs): the broker's own
/// round trip, under any task system.
fn ping_floor(server: &RedisServer, trips: usize) -> anyhow::Result<Vec<f64>> {
    let mut con = server.connect(DB_QUADRIGA)?;
    for _ in 0..100 {
        redis::cmd("PING").query::<String>(&mut con)?;
    }
    let mut out = Vec::with_capacity(trips);
    for _ in 0..trips {
        let t = Instant::now();
        redis::cmd("PING").query::<String>(&mut con)?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

/// Benchmark 3: a map of many tiny items through the broker, against the
/// same map on a local process pool (no broker).
fn map_row(
    ctx: &Ctx,
    sizes: &Sizes,
    server: &RedisServer,
    workers: &Workers,
    pool: &ClusterPool,
) -> anyhow::Result<Row> {
    let items = sizes.map_items;
    let expect = (0..items).map(tiny::call).fold(0, |a, b| a ^ b);
    let mut samples = Vec::with_capacity(sizes.map_reps);
    let mut profiled: Option<Profile> = None;
    for rep in 0..sizes.map_reps {
        // The first run is profiled and checked; all are timed.
        let probe = (rep == 0)
            .then(|| profile::start(server, workers))
            .transpose()?;
        let t = Instant::now();
        let got = pool
            .map(tiny, 0..items)
            .try_fold(0, |a, r| r.map(|b| a ^ b))
            .context("a map item failed")?;
        samples.push(t.elapsed().as_secs_f64());
        if let Some(probe) = probe {
            profiled = Some(profile::finish(probe, server, workers, items)?);
        }
        ensure!(got == expect, "the cluster map returned wrong results");
        clean(server)?;
    }
    let stats = Stats::from_samples(0, samples);
    let local = ProcessPool::new(ctx.threads).context("building the local process pool")?;
    let local_stats = measure(Plan::new(1, sizes.map_reps), &mut || {
        let acc = local
            .map(tiny, 0..items)
            .map(|r| r.expect("task"))
            .fold(0, |a, b| a ^ b);
        std::hint::black_box(acc);
    });
    let prof = profiled.expect("the first run is profiled");
    Ok(Row::new(
        SUITE,
        "map_through_broker",
        format!("map {items} tiny items through the broker"),
        Unit::ItemsPerSec,
        stats.throughput(items),
        format!("local ProcessPool({}) map, no broker", ctx.threads),
        Ok(local_stats.throughput(items)),
        Goal::ValueAtLeast { min: 1e6 },
    )
    .note(format!(
        "quadriga {} (median of {}); local {}; {}",
        stats.brief(),
        sizes.map_reps,
        local_stats.brief(),
        prof.summary()
    ))
    .details(json!({ "quadriga": stats, "local": local_stats, "profile": prof.json() })))
}

/// Benchmark 4: SIGKILL the worker running a task; time until the task
/// completes on the other one. Against Celery's defaults (capped).
fn kill_rows(
    ctx: &Ctx,
    sizes: &Sizes,
    server: &RedisServer,
    workers: &mut Workers,
    pool: &ClusterPool,
    logs: &Logs,
) -> anyhow::Result<Vec<Row>> {
    let mut trials = Vec::new();
    for trial in 0..sizes.kill_trials {
        let path = logs.path(&format!("hold-{trial}"));
        let (took, killed, finisher) = kill_trial(pool, workers, &path)?;
        progress(&format!(
            "worker {killed} killed: its task completed on {finisher} after {}",
            format_seconds(took)
        ));
        trials.push(took);
        // Back to 2 workers for the next trial (the killed one's record
        // lingers in the broker for a few leases; it holds nothing).
        workers.replace()?;
        std::thread::sleep(Duration::from_millis(500));
    }
    let stats = Stats::from_samples(0, trials);
    let mut rows = Vec::new();
    let variants: &[bool] = if sizes.celery_acks_late {
        &[false, true]
    } else {
        &[false]
    };
    for &acks_late in variants {
        let cap = sizes.celery_cap;
        let got = peers::kill_celery(
            ctx,
            &server.url(DB_CELERY),
            cap,
            acks_late,
            &logs.path("celery-kill.log"),
        );
        let _ = server.flush(DB_CELERY);
        let (value, peer_note, raw) = match got {
            Ok(v) => {
                let recovered = v["recovered"].as_bool().unwrap_or(false);
                let secs = v["seconds"].as_f64().unwrap_or(f64::NAN);
                let outcome = v["outcome"].as_str().unwrap_or("?").to_owned();
                let vt = v["visibility_timeout_s"].as_f64().unwrap_or(3600.0);
                let note = if recovered {
                    format!("Celery: completed after {}", format_seconds(secs))
                } else if acks_late {
                    format!(
                        "Celery: > {} s ({outcome}: unacked until the visibility timeout, {vt} s)",
                        cap.as_secs()
                    )
                } else {
                    format!(
                        "Celery: > {} s ({outcome}: acked when received, the default, so the \
                         task is lost; with acks_late it waits for the visibility timeout, {vt} s)",
                        cap.as_secs()
                    )
                };
                (Ok(secs.max(0.0)), note, v)
            }
            Err(why) => (Err(why), String::new(), serde_json::Value::Null),
        };
        rows.push(
            Row::new(
                SUITE,
                if acks_late {
                    "kill_recovery_vs_celery_acks_late"
                } else {
                    "kill_recovery_vs_celery"
                },
                "SIGKILL of a worker mid-task → task completed elsewhere",
                Unit::Seconds,
                stats.median_s,
                format!(
                    "Celery {}(capped at {} s)",
                    if acks_late { "acks_late " } else { "defaults " },
                    cap.as_secs()
                ),
                value,
                Goal::ValueAtMost {
                    max: LEASE.as_secs_f64(),
                },
            )
            .note(format!(
                "quadriga lease {} s, median of {} (max {}); {peer_note}",
                LEASE.as_secs(),
                sizes.kill_trials,
                format_seconds(stats.max_s)
            ))
            .details(json!({ "quadriga": stats, "peer": raw })),
        );
    }
    Ok(rows)
}

/// One kill: a task that sleeps 100 ms; once it runs, SIGKILL its worker and
/// time until its handle resolves (bounded: 60 s). Returns the time, the
/// killed pid and the pid that completed it.
fn kill_trial(
    pool: &ClusterPool,
    workers: &mut Workers,
    path: &Path,
) -> anyhow::Result<(f64, u32, u32)> {
    let _ = std::fs::remove_file(path);
    let handle = pool.submit(hold, (path.display().to_string(), 100));
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
        {
            break pid;
        }
        if Instant::now() >= deadline {
            bail!("the held task did not start within 30 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let killed_at = Instant::now();
    workers.kill(pid)?;
    ensure!(
        handle.wait_timeout(Duration::from_secs(60)),
        "the task did not complete within 60 s of its worker's SIGKILL"
    );
    let took = killed_at.elapsed().as_secs_f64();
    let finisher = handle.join().context("the held task")?;
    ensure!(finisher != pid, "the killed worker completed the task");
    Ok((took, pid, finisher))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_answer_gives_its_rate_and_quantiles_without_samples() {
        let v = json!({
            "seconds": 0.5,
            "latency_us": { "trips": 3, "p50": 900.0, "p99": 4000.0, "samples": [1.0, 2.0] },
        });
        let (rate, p50, p99, raw) = peer_numbers(1000, v);
        assert_eq!((rate, p50, p99), (2000.0, 900.0, 4000.0));
        assert!(raw["latency_us"].get("samples").is_none());
        assert_eq!(raw["latency_us"]["trips"], 3);
    }

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let v: Vec<f64> = (1..=101).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 51.0);
        assert_eq!(quantile(&v, 0.99), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
    }
}
