//! The `foundation` suite: the thread pool against rayon and Python.
//!
//! 1. `ThreadPool::map` of many tiny tasks against rayon's
//!    `par_iter().map().collect()` on a pool of the same size (goal ≥ 0.8×),
//!    once with a ~1 ns task and once with a ~100 ns one, since "tiny" is
//!    ambiguous.
//! 2. `submit` + `join` of many trivial tasks against rayon `spawn` + a channel,
//!    and against Python's `ThreadPoolExecutor.submit` + `.result()` (goal ≥ 20×
//!    Python).
//! 3. Parallel efficiency `T1 / (n · Tn)` of a CPU-bound `map` on all cores
//!    (goal ≥ 90%), with rayon's efficiency on the same work as reference.
//! 4. `ThreadPool::auto()` against the best fixed size of a sweep, on an
//!    I/O-bound map (tasks that sleep; goal ≥ 90% of the best, and ≥ 5×
//!    `new(ncores)`) and on a CPU-bound one (goal ≥ 90% of the best); Python's
//!    `ThreadPoolExecutor` of its default size on the same I/O-bound map, for
//!    reference. The auto pool is built once and reused across repetitions,
//!    as a program's pool is: it keeps what it has learnt.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use quadriga::{Task, ThreadPool};
use rayon::prelude::*;
use serde_json::json;

use super::{Ctx, progress};
use crate::harness::peer;
use crate::harness::report::{Goal, Row, Unit};
use crate::harness::timing::{Plan, Stats, format_seconds, measure, measure_interleaved};

/// The suite's name in rows.
const SUITE: &str = "foundation";

/// Rounds of [`mix`] in the [`light`](struct@light) task (about 100–200 ns).
const LIGHT_ROUNDS: u32 = 32;

/// Runs `rounds` rounds of xorshift-then-multiply: a dependent chain that the
/// compiler can neither shorten nor vectorise across rounds.
#[inline(always)]
fn mix(mut x: u64, rounds: u32) -> u64 {
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
    }
    x
}

/// The "tiny" task of benchmarks 1 and 2: about a nanosecond of work.
#[quadriga::task]
fn tiny(x: u64) -> u64 {
    x.wrapping_mul(x) ^ (x >> 3)
}

/// The "light" task of benchmark 1: [`LIGHT_ROUNDS`] rounds of [`mix`].
#[quadriga::task]
fn light(x: u64) -> u64 {
    mix(x, LIGHT_ROUNDS)
}

/// The CPU-bound task of benchmark 3: `rounds` rounds of [`mix`], calibrated to
/// a target time per item.
#[quadriga::task]
fn burn(seed: u64, rounds: u32) -> u64 {
    mix(seed | 1, rounds)
}

/// Sizes and repetitions; `--quick` shrinks them.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Items of each map in benchmark 1.
    map_items: u64,
    /// Repetitions of benchmark 1.
    map_plan: Plan,
    /// Tasks submitted in benchmark 2.
    submit_tasks: u64,
    /// Repetitions of benchmark 2 (Rust sides).
    submit_plan: Plan,
    /// Repetitions inside the Python peer (it reports its best).
    python_reps: usize,
    /// Items of the CPU-bound map in benchmark 3.
    eff_items: u64,
    /// Target single-thread time of one CPU-bound item.
    eff_item_time: Duration,
    /// Repetitions of benchmark 3.
    eff_plan: Plan,
    /// Tasks of the I/O-bound map of benchmark 4, and how long each sleeps.
    io_tasks: u64,
    io_sleep: Duration,
    /// Items of the CPU-bound map of benchmark 4.
    auto_cpu_items: u64,
    /// Repetitions of benchmark 4.
    auto_plan: Plan,
}

impl Sizes {
    /// The sizes the issue asks for, or a smoke-run's.
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                map_items: 100_000,
                map_plan: Plan::new(1, 5),
                submit_tasks: 10_000,
                submit_plan: Plan::new(1, 3),
                python_reps: 2,
                eff_items: 100,
                eff_item_time: Duration::from_micros(500),
                eff_plan: Plan::new(1, 2),
                io_tasks: 200,
                io_sleep: Duration::from_millis(20),
                auto_cpu_items: 200,
                auto_plan: Plan::new(1, 2),
            }
        } else {
            Self {
                map_items: 1_000_000,
                map_plan: Plan::new(3, 25),
                submit_tasks: 100_000,
                submit_plan: Plan::new(2, 15),
                python_reps: 3,
                eff_items: 2_000,
                eff_item_time: Duration::from_micros(500),
                eff_plan: Plan::new(1, 5),
                io_tasks: 1_000,
                io_sleep: Duration::from_millis(20),
                auto_cpu_items: 2_000,
                auto_plan: Plan::new(1, 3),
            }
        }
    }
}

/// Runs the suite.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let sizes = Sizes::new(ctx.quick);
    let n = ctx.threads;
    let qpool = ThreadPool::new(n).context("building the quadriga pool")?;
    let rpool = rayon_pool(n)?;

    let mut rows = Vec::new();
    progress(&format!("map of {} tiny tasks", count(sizes.map_items)));
    rows.push(map_vs_rayon(
        "map_tiny_vs_rayon",
        "tiny",
        tiny,
        tiny::call,
        &sizes,
        &qpool,
        &rpool,
    )?);
    progress(&format!("map of {} light tasks", count(sizes.map_items)));
    rows.push(map_vs_rayon(
        "map_light_vs_rayon",
        "light",
        light,
        light::call,
        &sizes,
        &qpool,
        &rpool,
    )?);
    progress(&format!(
        "submit+join of {} tasks",
        count(sizes.submit_tasks)
    ));
    rows.extend(submit_join(ctx, &sizes, &qpool, &rpool)?);
    progress("CPU-bound map: parallel efficiency");
    rows.push(efficiency(&sizes, n, &qpool, &rpool)?);
    progress("auto-sized pool: I/O-bound and CPU-bound sweeps");
    rows.extend(auto_vs_sweep(ctx, &sizes, n)?);
    Ok(rows)
}

/// A rayon pool of `threads` threads.
fn rayon_pool(threads: usize) -> anyhow::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("rayon-peer-{i}"))
        .build()
        .context("building the rayon pool")
}

/// `1M`, `100k`, or the plain number.
fn count(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// Benchmark 1 for one task: `pool.map(task, 0..N)` collected into a `Vec`
/// against rayon's `(0..N).into_par_iter().map(f).collect()` inside
/// `pool.install`, where `f` is the task's plain function. Rayon gets a `usize`
/// range (its `u64` ranges are not indexed, hence slower to collect): the
/// strongest form of the peer.
fn map_vs_rayon<T, F>(
    id: &'static str,
    label: &str,
    task: T,
    f: F,
    sizes: &Sizes,
    qpool: &ThreadPool,
    rpool: &rayon::ThreadPool,
) -> anyhow::Result<Row>
where
    T: Task<Input = u64, Output = u64>,
    F: Fn(u64) -> u64 + Sync + Send + Copy,
{
    let items = sizes.map_items;
    let len = usize::try_from(items)?;
    let quadriga_map = || -> Vec<u64> {
        qpool
            .map(task, 0..items)
            .collect::<Result<_, _>>()
            .expect("a benchmark task failed")
    };
    let rayon_map = || -> Vec<u64> {
        rpool.install(|| (0..len).into_par_iter().map(|i| f(i as u64)).collect())
    };

    // Both sides must compute the same thing; checked once, outside the timing.
    let expected: Vec<u64> = (0..items).map(f).collect();
    ensure!(quadriga_map() == expected, "quadriga map: wrong results");
    ensure!(rayon_map() == expected, "rayon map: wrong results");
    drop(expected);

    let seq = measure(sizes.map_plan, &mut || {
        black_box((0..items).map(|x| f(black_box(x))).collect::<Vec<u64>>());
    });
    let stats = measure_interleaved(
        sizes.map_plan,
        &mut [
            &mut || {
                black_box(quadriga_map());
            },
            &mut || {
                black_box(rayon_map());
            },
        ],
    );
    let (q, r) = (&stats[0], &stats[1]);
    let ns_per_item = seq.median_s / items as f64 * 1e9;
    Ok(Row::new(
        SUITE,
        id,
        format!(
            "map {} {label} tasks (~{ns_per_item:.1} ns each)",
            count(items)
        ),
        Unit::ItemsPerSec,
        q.throughput(items),
        "rayon par_iter",
        Ok(r.throughput(items)),
        Goal::RatioAtLeast { min: 0.8 },
    )
    .note(format!(
        "{} items; quadriga {}, rayon {}, one thread without a pool {}",
        items,
        q.brief(),
        r.brief(),
        seq.brief()
    ))
    .details(json!({
        "items": items,
        "task": label,
        "sequential_ns_per_item": ns_per_item,
        "quadriga": q,
        "rayon": r,
        "sequential": seq,
        "quadriga_items_per_s": q.throughput(items),
        "rayon_items_per_s": r.throughput(items),
        "quadriga_best_items_per_s": q.best_throughput(items),
        "rayon_best_items_per_s": r.best_throughput(items),
    })))
}

/// Benchmark 2: `submit` every task, keep the handles, `join` them all; against
/// rayon `spawn` of closures that send their result down a crossbeam channel,
/// and against Python's `ThreadPoolExecutor`.
fn submit_join(
    ctx: &Ctx,
    sizes: &Sizes,
    qpool: &ThreadPool,
    rpool: &rayon::ThreadPool,
) -> anyhow::Result<Vec<Row>> {
    let tasks = sizes.submit_tasks;
    let quadriga_submit = || -> u64 {
        let handles: Vec<_> = (0..tasks).map(|i| qpool.submit(tiny, i)).collect();
        handles
            .into_iter()
            .fold(0, |acc, h| acc ^ h.join().expect("a benchmark task failed"))
    };
    let rayon_spawn = || -> u64 {
        let (tx, rx) = crossbeam_channel::unbounded();
        for i in 0..tasks {
            let tx = tx.clone();
            rpool.spawn(move || {
                let _ = tx.send(tiny::call(i));
            });
        }
        drop(tx);
        rx.iter().take(tasks as usize).fold(0, |acc, v| acc ^ v)
    };
    let expected = (0..tasks).fold(0, |acc, i| acc ^ tiny::call(i));
    ensure!(
        quadriga_submit() == expected,
        "quadriga submit: wrong results"
    );
    ensure!(rayon_spawn() == expected, "rayon spawn: wrong results");

    let stats = measure_interleaved(
        sizes.submit_plan,
        &mut [
            &mut || {
                black_box(quadriga_submit());
            },
            &mut || {
                black_box(rayon_spawn());
            },
        ],
    );
    let (q, r) = (&stats[0], &stats[1]);
    let benchmark = format!("submit+join {} trivial tasks", count(tasks));
    let vs_rayon = Row::new(
        SUITE,
        "submit_join_vs_rayon",
        benchmark.clone(),
        Unit::ItemsPerSec,
        q.throughput(tasks),
        "rayon spawn+channel",
        Ok(r.throughput(tasks)),
        Goal::None,
    )
    .note(format!(
        "{tasks} tasks; quadriga {}, rayon {}",
        q.brief(),
        r.brief()
    ))
    .details(json!({
        "tasks": tasks,
        "quadriga": q,
        "rayon": r,
        "quadriga_items_per_s": q.throughput(tasks),
        "rayon_items_per_s": r.throughput(tasks),
    }));

    progress("python ThreadPoolExecutor peer");
    let python = peer::run_script(
        &ctx.python,
        "thread_submit.py",
        &[
            tasks.to_string(),
            ctx.threads.to_string(),
            "--reps".to_owned(),
            sizes.python_reps.to_string(),
        ],
    );
    let python_rate = python.as_ref().map_err(Clone::clone).and_then(|v| {
        let secs = v["seconds"].as_f64().ok_or("no `seconds` in its JSON")?;
        let ran = v["tasks"].as_u64().ok_or("no `tasks` in its JSON")?;
        if ran == tasks && secs > 0.0 {
            Ok(ran as f64 / secs)
        } else {
            Err(format!("it ran {ran} tasks in {secs} s"))
        }
    });
    let note = match (&python, &python_rate) {
        (Ok(v), Ok(_)) => format!(
            "{tasks} tasks; quadriga {} (median), Python {} (best of {}; {})",
            q.brief(),
            format_seconds(v["seconds"].as_f64().unwrap_or(f64::NAN)),
            sizes.python_reps,
            v["python"].as_str().unwrap_or("python ?"),
        ),
        _ => format!("{tasks} tasks; quadriga {}", q.brief()),
    };
    let vs_python = Row::new(
        SUITE,
        "submit_join_vs_python",
        benchmark,
        Unit::ItemsPerSec,
        q.throughput(tasks),
        "Python ThreadPoolExecutor",
        python_rate,
        Goal::RatioAtLeast { min: 20.0 },
    )
    .note(note)
    .details(json!({
        "tasks": tasks,
        "quadriga": q,
        "quadriga_items_per_s": q.throughput(tasks),
        "python": match &python {
            Ok(v) => v.clone(),
            Err(why) => json!({ "skipped": why }),
        },
        "ratio_basis": "quadriga median time vs Python's best time",
    }));
    Ok(vec![vs_rayon, vs_python])
}

/// How many [`mix`] rounds take `target` on this thread.
fn calibrate(target: Duration) -> u32 {
    const PROBE: u32 = 1 << 20;
    let best = (0..5)
        .map(|i| {
            let started = Instant::now();
            black_box(mix(black_box(i + 1), black_box(PROBE)));
            started.elapsed()
        })
        .min()
        .unwrap_or(Duration::from_millis(1));
    let per_round = best.as_secs_f64() / f64::from(PROBE);
    (target.as_secs_f64() / per_round).clamp(1.0, f64::from(u32::MAX)) as u32
}

/// Benchmark 3: the same CPU-bound map on a 1-thread pool (T1) and an n-thread
/// pool (Tn), for Quadriga and for rayon; efficiency is `T1 / (n · Tn)`.
fn efficiency(
    sizes: &Sizes,
    n: usize,
    qpool: &ThreadPool,
    rpool: &rayon::ThreadPool,
) -> anyhow::Result<Row> {
    let items = sizes.eff_items;
    let len = usize::try_from(items)?;
    let rounds = calibrate(sizes.eff_item_time);
    let q1 = ThreadPool::new(1).context("building the 1-thread quadriga pool")?;
    let r1 = rayon_pool(1)?;
    let quadriga_map = |pool: &ThreadPool| -> Vec<u64> {
        pool.map(burn, (0..items).map(|i| (i, rounds)))
            .collect::<Result<_, _>>()
            .expect("a benchmark task failed")
    };
    let rayon_map = |pool: &rayon::ThreadPool| -> Vec<u64> {
        pool.install(|| {
            (0..len)
                .into_par_iter()
                .map(|i| burn::call(i as u64, rounds))
                .collect()
        })
    };
    let stats = measure_interleaved(
        sizes.eff_plan,
        &mut [
            &mut || {
                black_box(quadriga_map(&q1));
            },
            &mut || {
                black_box(quadriga_map(qpool));
            },
            &mut || {
                black_box(rayon_map(&r1));
            },
            &mut || {
                black_box(rayon_map(rpool));
            },
        ],
    );
    let (q1s, qns, r1s, rns) = (&stats[0], &stats[1], &stats[2], &stats[3]);
    let eff = |t1: &Stats, tn: &Stats| t1.median_s / (n as f64 * tn.median_s);
    let (q_eff, r_eff) = (eff(q1s, qns), eff(r1s, rns));
    let us_per_item = q1s.median_s / items as f64 * 1e6;
    Ok(Row::new(
        SUITE,
        "cpu_map_efficiency",
        format!(
            "CPU-bound map {} × ~{us_per_item:.0} µs, 1 vs {n} threads",
            count(items)
        ),
        Unit::Efficiency,
        q_eff,
        "rayon par_iter",
        Ok(r_eff),
        Goal::ValueAtLeast { min: 0.9 },
    )
    .note(format!(
        "{items} items of {rounds} rounds; quadriga T1 {}, T{n} {}; rayon T1 {}, T{n} {}",
        q1s.brief(),
        qns.brief(),
        r1s.brief(),
        rns.brief()
    ))
    .details(json!({
        "items": items,
        "rounds_per_item": rounds,
        "threads": n,
        "quadriga_t1": q1s,
        "quadriga_tn": qns,
        "rayon_t1": r1s,
        "rayon_tn": rns,
        "quadriga_efficiency": q_eff,
        "rayon_efficiency": r_eff,
        "quadriga_efficiency_best": q1s.min_s / (n as f64 * qns.min_s),
        "rayon_efficiency_best": r1s.min_s / (n as f64 * rns.min_s),
    })))
}

/// The I/O-bound task of benchmark 4: a blocking sleep of `micros` µs.
#[quadriga::task]
fn nap(i: u64, micros: u64) -> u64 {
    std::thread::sleep(Duration::from_micros(micros));
    i
}

/// Benchmark 4: `ThreadPool::auto()` against a sweep of fixed sizes, on an
/// I/O-bound and a CPU-bound map, and Python's default `ThreadPoolExecutor`
/// on the I/O-bound one.
fn auto_vs_sweep(ctx: &Ctx, sizes: &Sizes, n: usize) -> anyhow::Result<Vec<Row>> {
    let auto = ThreadPool::auto().context("building the auto pool")?;
    let io_tasks = sizes.io_tasks;
    let micros = u64::try_from(sizes.io_sleep.as_micros())?;
    let io_map = |pool: &ThreadPool| -> Vec<u64> {
        pool.map(nap, (0..io_tasks).map(|i| (i, micros)))
            .collect::<Result<_, _>>()
            .expect("a benchmark task failed")
    };
    let rounds = calibrate(sizes.eff_item_time);
    let cpu_items = sizes.auto_cpu_items;
    let cpu_map = |pool: &ThreadPool| -> Vec<u64> {
        pool.map(burn, (0..cpu_items).map(|i| (i, rounds)))
            .collect::<Result<_, _>>()
            .expect("a benchmark task failed")
    };
    let sweep = |workload: &dyn Fn(&ThreadPool) -> Vec<u64>,
                 levels: &[usize]|
     -> anyhow::Result<(Stats, Vec<(usize, Stats)>)> {
        let pools = levels
            .iter()
            .map(|&k| ThreadPool::new(k).map(|p| (k, p)))
            .collect::<Result<Vec<_>, _>>()
            .context("building the sweep's pools")?;
        let mut bodies: Vec<Box<dyn FnMut()>> = vec![Box::new(|| {
            black_box(workload(&auto));
        })];
        for (_, pool) in &pools {
            bodies.push(Box::new(move || {
                black_box(workload(pool));
            }));
        }
        let mut refs: Vec<&mut dyn FnMut()> = bodies.iter_mut().map(|b| &mut **b as _).collect();
        let mut stats = measure_interleaved(sizes.auto_plan, &mut refs);
        let fixed = levels.iter().copied().zip(stats.drain(1..)).collect();
        Ok((stats.pop().expect("the auto body"), fixed))
    };
    let best = |fixed: &[(usize, Stats)]| -> (usize, Stats) {
        fixed
            .iter()
            .min_by(|a, b| a.1.median_s.total_cmp(&b.1.median_s))
            .map(|(k, s)| (*k, s.clone()))
            .expect("a sweep of at least one size")
    };

    let mut levels: Vec<usize> = [n, 2 * n, 8, 16, 32, 64, 128, 256]
        .into_iter()
        .filter(|&k| k >= n)
        .collect();
    levels.sort_unstable();
    levels.dedup();
    let (io_auto, io_fixed) = sweep(&io_map, &levels)?;
    let (io_best_k, io_best) = best(&io_fixed);
    let io_ncores = io_fixed
        .iter()
        .find(|(k, _)| *k == n)
        .map(|(_, s)| s.clone())
        .expect("the sweep includes n");
    let io_decisions: Vec<String> = auto.decisions().iter().map(ToString::to_string).collect();
    let io_limit = auto.threads();
    let io_label = format!(
        "map {io_tasks} × {} ms sleeps (I/O-bound)",
        sizes.io_sleep.as_millis()
    );
    let sweep_json = |fixed: &[(usize, Stats)]| -> serde_json::Value {
        fixed
            .iter()
            .map(|(k, s)| json!({ "threads": k, "stats": s }))
            .collect()
    };
    let mut rows = vec![
        Row::new(
            SUITE,
            "auto_io_vs_best_fixed",
            io_label.clone(),
            Unit::ItemsPerSec,
            io_auto.throughput(io_tasks),
            "best fixed size of a sweep",
            Ok(io_best.throughput(io_tasks)),
            Goal::RatioAtLeast { min: 0.9 },
        )
        .note(format!(
            "auto {} (now {io_limit} threads); best fixed: {io_best_k} threads {}",
            io_auto.brief(),
            io_best.brief()
        ))
        .details(json!({
            "auto": io_auto,
            "auto_threads_after": io_limit,
            "auto_decisions": io_decisions,
            "sweep": sweep_json(&io_fixed),
            "best_threads": io_best_k,
        })),
        Row::new(
            SUITE,
            "auto_io_vs_ncores",
            io_label.clone(),
            Unit::ItemsPerSec,
            io_auto.throughput(io_tasks),
            "ThreadPool::new(ncores)",
            Ok(io_ncores.throughput(io_tasks)),
            Goal::RatioAtLeast { min: 5.0 },
        )
        .note(format!(
            "auto {}; {n} threads {}",
            io_auto.brief(),
            io_ncores.brief()
        )),
    ];

    progress("python ThreadPoolExecutor (default size) on the I/O-bound map");
    let python = peer::run_script(
        &ctx.python,
        "sleep_pool.py",
        &[
            io_tasks.to_string(),
            sizes.io_sleep.as_millis().to_string(),
            "--reps".to_owned(),
            sizes.python_reps.to_string(),
        ],
    );
    let python_rate = python.as_ref().map_err(Clone::clone).and_then(|v| {
        let secs = v["seconds"].as_f64().ok_or("no `seconds` in its JSON")?;
        if secs > 0.0 {
            Ok(io_tasks as f64 / secs)
        } else {
            Err(format!("it took {secs} s"))
        }
    });
    rows.push(
        Row::new(
            SUITE,
            "auto_io_vs_python",
            io_label,
            Unit::ItemsPerSec,
            io_auto.throughput(io_tasks),
            "Python ThreadPoolExecutor (default size)",
            python_rate,
            Goal::None,
        )
        .note(match &python {
            Ok(v) => format!(
                "auto {} (median); Python {} workers, best {}",
                io_auto.brief(),
                v["workers"],
                format_seconds(v["seconds"].as_f64().unwrap_or(f64::NAN))
            ),
            Err(why) => format!("Python skipped: {why}"),
        })
        .details(json!({
            "auto": io_auto,
            "python": match &python {
                Ok(v) => v.clone(),
                Err(why) => json!({ "skipped": why }),
            },
        })),
    );

    let cpu_levels: Vec<usize> = {
        let mut l = vec![1, n.div_ceil(2), n, 2 * n, 4 * n];
        l.sort_unstable();
        l.dedup();
        l
    };
    let (cpu_auto, cpu_fixed) = sweep(&cpu_map, &cpu_levels)?;
    let (cpu_best_k, cpu_best) = best(&cpu_fixed);
    rows.push(
        Row::new(
            SUITE,
            "auto_cpu_vs_best_fixed",
            format!(
                "CPU-bound map {cpu_items} × ~{} µs",
                sizes.eff_item_time.as_micros()
            ),
            Unit::ItemsPerSec,
            cpu_auto.throughput(cpu_items),
            "best fixed size of a sweep",
            Ok(cpu_best.throughput(cpu_items)),
            Goal::RatioAtLeast { min: 0.9 },
        )
        .note(format!(
            "auto {} (now {} threads); best fixed: {cpu_best_k} threads {}",
            cpu_auto.brief(),
            auto.threads(),
            cpu_best.brief()
        ))
        .details(json!({
            "auto": cpu_auto,
            "auto_threads_after": auto.threads(),
            "auto_decisions": auto.decisions().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "sweep": sweep_json(&cpu_fixed),
            "best_threads": cpu_best_k,
        })),
    );
    Ok(rows)
}
