//! The `process` suite: the process pool against Python's process pools,
//! procspawn, and the physical floor of a socket round trip.
//!
//! 1. `submit` + `join` of many trivial tasks against Python's
//!    `ProcessPoolExecutor.submit` + `.result()` (goal ≥ 20×).
//! 2. `map` of 1M tiny items against `multiprocessing.Pool.map` with its
//!    default chunking (goal ≥ 2×).
//! 3. `submit` + `join` against procspawn's `Pool` on the same tasks
//!    (goal ≥ 10×).
//! 4. Round-trip latency of one small task, p50 and p99, next to a raw
//!    socketpair ping-pong between two processes (the floor: no goal).
//! 5. Parallel efficiency `T1 / (n · Tn)` of a CPU-bound `map` on all cores
//!    (goal ≥ 90%).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use quadriga::ProcessPool;
use serde_json::json;

use super::{Ctx, progress};
use crate::harness::peer;
use crate::harness::report::{Goal, Row, Unit};
use crate::harness::timing::{Plan, format_seconds, measure, measure_interleaved};

/// The suite's name in rows.
const SUITE: &str = "process";

/// The argument that turns this binary into the ping-pong peer of benchmark 4.
pub(crate) const PINGPONG_ARG: &str = "__pingpong-child";

/// The trivial task: about a nanosecond of work.
#[quadriga::task]
fn tiny(x: u64) -> u64 {
    x.wrapping_mul(x) ^ (x >> 3)
}

/// The CPU-bound task of benchmark 5: `rounds` rounds of a dependent
/// xorshift-multiply chain.
#[quadriga::task]
fn burn(seed: u64, rounds: u32) -> u64 {
    let mut x = seed | 1;
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
    }
    x
}

/// The same trivial work, as procspawn wants it (a plain `fn`).
fn tiny_fn(x: u64) -> u64 {
    tiny::call(x)
}

/// Sizes and repetitions; `--quick` shrinks them.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    submit_tasks: u64,
    submit_plan: Plan,
    map_items: u64,
    map_plan: Plan,
    python_reps: usize,
    procspawn_tasks: u64,
    latency_trips: usize,
    eff_items: u64,
    eff_item_time: Duration,
    eff_plan: Plan,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                submit_tasks: 2_000,
                submit_plan: Plan::new(1, 3),
                map_items: 100_000,
                map_plan: Plan::new(1, 3),
                python_reps: 1,
                procspawn_tasks: 500,
                latency_trips: 500,
                eff_items: 100,
                eff_item_time: Duration::from_micros(500),
                eff_plan: Plan::new(1, 2),
            }
        } else {
            Self {
                submit_tasks: 20_000,
                submit_plan: Plan::new(2, 10),
                map_items: 1_000_000,
                map_plan: Plan::new(2, 10),
                python_reps: 3,
                procspawn_tasks: 5_000,
                latency_trips: 5_000,
                eff_items: 2_000,
                eff_item_time: Duration::from_micros(500),
                eff_plan: Plan::new(1, 5),
            }
        }
    }
}

/// Runs the suite.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let sizes = Sizes::new(ctx.quick);
    let n = ctx.threads;
    let pool = ProcessPool::new(n).context("building the process pool")?;
    // Warm up: every worker started and answering.
    for h in (0..n as u64 * 4)
        .map(|i| pool.submit(tiny, i))
        .collect::<Vec<_>>()
    {
        h.join().context("warm-up task")?;
    }
    let mut rows = Vec::new();
    progress(&format!(
        "process submit+join of {} tasks",
        sizes.submit_tasks
    ));
    let submit = submit_join(&sizes, &pool)?;
    rows.push(python_row(ctx, &sizes, "submit", submit)?);
    progress(&format!("process map of {} tiny items", sizes.map_items));
    rows.push(map_vs_python(ctx, &sizes, &pool)?);
    progress(&format!("procspawn pool: {} tasks", sizes.procspawn_tasks));
    rows.push(vs_procspawn(&sizes, n, &pool)?);
    progress("round-trip latency");
    rows.extend(latency(&sizes, &pool)?);
    progress("CPU-bound map: parallel efficiency");
    rows.push(efficiency(&sizes, n)?);
    Ok(rows)
}

/// Benchmark 1, Quadriga's side: tasks per second, median and best.
fn submit_join(sizes: &Sizes, pool: &ProcessPool) -> anyhow::Result<(f64, f64, String)> {
    let tasks = sizes.submit_tasks;
    let stats = measure(sizes.submit_plan, &mut || {
        let handles: Vec<_> = (0..tasks).map(|i| pool.submit(tiny, i)).collect();
        let mut acc = 0;
        for h in handles {
            acc ^= h.join().expect("a benchmark task failed");
        }
        std::hint::black_box(acc);
    });
    Ok((
        stats.throughput(tasks),
        stats.best_throughput(tasks),
        stats.brief(),
    ))
}

/// Benchmark 1, the row: Quadriga's median against Python's best run.
fn python_row(
    ctx: &Ctx,
    sizes: &Sizes,
    mode: &str,
    (median, _best, brief): (f64, f64, String),
) -> anyhow::Result<Row> {
    let tasks = sizes.submit_tasks;
    let (peer_value, peer_note, peer) = python_peer(ctx, mode, tasks, sizes.python_reps);
    Ok(Row::new(
        SUITE,
        "submit_join_vs_python",
        format!("submit+join {tasks} trivial tasks"),
        Unit::ItemsPerSec,
        median,
        "Python ProcessPoolExecutor",
        peer_value,
        Goal::RatioAtLeast { min: 20.0 },
    )
    .note(format!("quadriga {brief} (median); {peer_note}"))
    .details(json!({ "peer": peer.ok() })))
}

/// Runs `process_peers.py MODE ITEMS WORKERS`: the peer's items per second
/// (or why it was skipped), a note, and its raw answer.
fn python_peer(
    ctx: &Ctx,
    mode: &str,
    items: u64,
    reps: usize,
) -> (
    Result<f64, String>,
    String,
    Result<serde_json::Value, String>,
) {
    let args = vec![
        mode.to_owned(),
        items.to_string(),
        ctx.threads.to_string(),
        "--reps".to_owned(),
        reps.to_string(),
    ];
    let peer = peer::run_script(&ctx.python, "process_peers.py", &args);
    match &peer {
        Ok(v) => {
            let s = v["seconds"].as_f64().unwrap_or(f64::NAN);
            let note = format!("Python {} (best of {reps})", format_seconds(s));
            (Ok(items as f64 / s), note, peer)
        }
        Err(why) => (Err(why.clone()), String::new(), peer),
    }
}

/// Benchmark 2: `map` of tiny items against `multiprocessing.Pool.map`.
fn map_vs_python(ctx: &Ctx, sizes: &Sizes, pool: &ProcessPool) -> anyhow::Result<Row> {
    let items = sizes.map_items;
    let check: u64 = pool
        .map(tiny, 0..items)
        .map(|r| r.expect("task"))
        .fold(0, |a, b| a ^ b);
    let expect = (0..items).map(tiny::call).fold(0, |a, b| a ^ b);
    ensure!(check == expect, "process map returned wrong results");
    let stats = measure(sizes.map_plan, &mut || {
        let v: Vec<u64> = pool
            .map(tiny, 0..items)
            .collect::<Result<_, _>>()
            .expect("a benchmark task failed");
        std::hint::black_box(v);
    });
    let (peer_value, peer_note, peer) = python_peer(ctx, "map", items, sizes.python_reps);
    Ok(Row::new(
        SUITE,
        "map_vs_python_pool",
        format!("map {items} tiny items"),
        Unit::ItemsPerSec,
        stats.throughput(items),
        "Python multiprocessing.Pool.map",
        peer_value,
        Goal::RatioAtLeast { min: 2.0 },
    )
    .note(format!("quadriga {} (median); {peer_note}", stats.brief()))
    .details(json!({ "peer": peer.ok() })))
}

/// Benchmark 3: submit+join against procspawn's pool, same tasks, same width.
fn vs_procspawn(sizes: &Sizes, n: usize, pool: &ProcessPool) -> anyhow::Result<Row> {
    let tasks = sizes.procspawn_tasks;
    let ppool = procspawn::Pool::new(n).map_err(|e| anyhow::anyhow!("procspawn pool: {e}"))?;
    for h in (0..n as u64 * 2)
        .map(|i| ppool.spawn(i, tiny_fn))
        .collect::<Vec<_>>()
    {
        h.join()
            .map_err(|e| anyhow::anyhow!("procspawn warm-up: {e}"))?;
    }
    let mut quadriga = || {
        let handles: Vec<_> = (0..tasks).map(|i| pool.submit(tiny, i)).collect();
        for h in handles {
            std::hint::black_box(h.join().expect("a benchmark task failed"));
        }
    };
    let mut peer = || {
        let handles: Vec<_> = (0..tasks).map(|i| ppool.spawn(i, tiny_fn)).collect();
        for h in handles {
            std::hint::black_box(h.join().expect("a procspawn task failed"));
        }
    };
    let stats = measure_interleaved(sizes.submit_plan, &mut [&mut quadriga, &mut peer]);
    ppool.shutdown();
    Ok(Row::new(
        SUITE,
        "submit_join_vs_procspawn",
        format!("submit+join {tasks} trivial tasks"),
        Unit::ItemsPerSec,
        stats[0].throughput(tasks),
        "procspawn Pool",
        Ok(stats[1].throughput(tasks)),
        Goal::RatioAtLeast { min: 10.0 },
    )
    .note(format!(
        "quadriga {}; procspawn {}",
        stats[0].brief(),
        stats[1].brief()
    )))
}

/// Benchmark 4: one task's round trip, p50 and p99, against a raw socketpair
/// ping-pong with a child process (this binary in ping-pong mode).
fn latency(sizes: &Sizes, pool: &ProcessPool) -> anyhow::Result<Vec<Row>> {
    let trips = sizes.latency_trips;
    let mut ours = Vec::with_capacity(trips);
    for i in 0..trips as u64 {
        let t = Instant::now();
        std::hint::black_box(pool.submit(tiny, i).join().expect("task"));
        ours.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let floor = pingpong(trips)?;
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    let mut floor_v = floor;
    let rows = [(0.5, "latency_p50", "p50"), (0.99, "latency_p99", "p99")]
        .into_iter()
        .map(|(p, id, label)| {
            let q = pct(&mut ours, p);
            let f = pct(&mut floor_v, p);
            Row::new(
                SUITE,
                id,
                format!("one small task's round trip, {label}"),
                Unit::Latency,
                q,
                "raw socketpair ping-pong (floor)",
                Ok(f),
                Goal::None,
            )
            .note(format!("{trips} round trips each"))
        })
        .collect();
    Ok(rows)
}

/// `trips` round trips of 16 bytes with a child process over a socketpair.
fn pingpong(trips: usize) -> anyhow::Result<Vec<f64>> {
    let (mut ours, theirs) = UnixStream::pair()?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg(PINGPONG_ARG)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .spawn()
        .context("starting the ping-pong peer")?;
    let mut buf = [7_u8; 16];
    // Warm-up.
    for _ in 0..100 {
        ours.write_all(&buf)?;
        ours.read_exact(&mut buf)?;
    }
    let mut samples = Vec::with_capacity(trips);
    for _ in 0..trips {
        let t = Instant::now();
        ours.write_all(&buf)?;
        ours.read_exact(&mut buf)?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(ours);
    child.wait()?;
    Ok(samples)
}

/// The ping-pong peer: echoes 16-byte messages on its stdin (a socket) until
/// end of file.
pub(crate) fn pingpong_child() -> ! {
    let stdin = std::io::stdin();
    let fd = std::os::fd::AsFd::as_fd(&stdin)
        .try_clone_to_owned()
        .expect("stdin is open");
    let mut sock = UnixStream::from(fd);
    let mut buf = [0_u8; 16];
    while sock.read_exact(&mut buf).is_ok() {
        if sock.write_all(&buf).is_err() {
            break;
        }
    }
    std::process::exit(0)
}

/// Benchmark 5: parallel efficiency of a CPU-bound map, 1 worker vs `n`.
fn efficiency(sizes: &Sizes, n: usize) -> anyhow::Result<Row> {
    let rounds = calibrate(sizes.eff_item_time);
    let items = sizes.eff_items;
    let one = ProcessPool::new(1)?;
    let all = ProcessPool::new(n)?;
    let run = |pool: &ProcessPool| {
        let acc = pool
            .map(burn, (0..items).map(|i| (i, rounds)))
            .map(|r| r.expect("task"))
            .fold(0, |a, b| a ^ b);
        std::hint::black_box(acc);
    };
    run(&one);
    run(&all);
    let mut t1 = || run(&one);
    let mut tn = || run(&all);
    let stats = measure_interleaved(sizes.eff_plan, &mut [&mut t1, &mut tn]);
    let eff = stats[0].median_s / (n as f64 * stats[1].median_s);
    Ok(Row::new(
        SUITE,
        "cpu_map_efficiency",
        format!(
            "CPU-bound map {items} × ~{} µs, 1 vs {n} workers",
            sizes.eff_item_time.as_micros()
        ),
        Unit::Efficiency,
        eff,
        "ideal",
        Ok(1.0),
        Goal::ValueAtLeast { min: 0.9 },
    )
    .note(format!(
        "T1 {}; T{n} {}",
        stats[0].brief(),
        stats[1].brief()
    )))
}

/// Rounds of [`burn`](struct@burn) that take about `target` on this machine.
fn calibrate(target: Duration) -> u32 {
    let mut rounds = 1_000_u32;
    loop {
        let t = Instant::now();
        std::hint::black_box(burn::call(7, rounds));
        let took = t.elapsed();
        if took >= Duration::from_millis(5) || rounds >= 1 << 30 {
            let per_round = took.as_secs_f64() / f64::from(rounds);
            return ((target.as_secs_f64() / per_round) as u32).max(1);
        }
        rounds *= 2;
    }
}
