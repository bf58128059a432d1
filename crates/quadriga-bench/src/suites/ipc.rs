//! The `ipc` suite: `ipc::Queue` and `ipc::Pipe` against Python's
//! `multiprocessing.Queue` and `multiprocessing.Pipe`, with crossbeam-channel
//! between two threads of one process as the ceiling.
//!
//! 1. Queue throughput between two processes: a producer in a process-pool
//!    worker puts `u64`s, the parent gets them; against the same through
//!    `multiprocessing.Queue` (goal ≥ 10×), and a crossbeam `bounded`
//!    channel of the same capacity between two threads (reference).
//! 2. Pipe ping-pong round trip, p50 and p99: the parent sends a `u64` to an
//!    echoing pool worker and waits for it back; against
//!    `multiprocessing.Pipe` with an echoing child (goal ≥ 5× lower at p50),
//!    and two crossbeam `bounded(1)` channels between two threads
//!    (reference; not a ceiling here: crossbeam parks a waiting thread after
//!    a short spin, and a park and unpark cost more than the pipe's spin of
//!    up to 50 µs before it sleeps).
//! 3. `SharedMap` writes from several processes at once against
//!    `multiprocessing.Manager().dict()` (no goal; see `ipc_map.rs`).

use std::time::Instant;

use anyhow::Context as _;
use quadriga::ProcessPool;
use quadriga::ipc::{Pipe, Queue};
use serde_json::json;

use super::{Ctx, progress};
use crate::harness::peer;
use crate::harness::report::{Goal, Row, Unit};
use crate::harness::timing::{Plan, format_seconds, measure_interleaved};

/// The suite's name in rows.
const SUITE: &str = "ipc";

/// Capacity of every queue and channel in benchmark 1.
const CAPACITY: usize = 1024;

/// Puts `0..n` into `q`.
#[quadriga::task]
fn produce(q: Queue<u64>, n: u64) {
    for i in 0..n {
        q.put(i).expect("the benchmark queue refused an item");
    }
}

/// Sends back every message until the other end is gone.
#[quadriga::task]
fn echo(p: Pipe<u64>) -> u64 {
    let mut n = 0;
    while let Ok(x) = p.recv() {
        p.send(x).expect("the benchmark pipe refused a message");
        n += 1;
    }
    n
}

/// Sizes and repetitions; `--quick` shrinks them.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    queue_items: u64,
    queue_plan: Plan,
    python_reps: usize,
    trips: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                queue_items: 20_000,
                queue_plan: Plan::new(1, 3),
                python_reps: 1,
                trips: 2_000,
            }
        } else {
            Self {
                queue_items: 200_000,
                queue_plan: Plan::new(2, 10),
                python_reps: 3,
                trips: 20_000,
            }
        }
    }
}

/// Runs the suite.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let sizes = Sizes::new(ctx.quick);
    // One worker is the other process of every benchmark here.
    let pool = ProcessPool::new(1).context("building the process pool")?;
    let mut rows = Vec::new();
    progress(&format!(
        "queue: {} u64s from a worker process to the parent",
        sizes.queue_items
    ));
    rows.extend(queue_throughput(ctx, &sizes, &pool)?);
    progress(&format!("pipe: {} ping-pong round trips", sizes.trips));
    rows.extend(pipe_latency(ctx, &sizes, &pool)?);
    rows.extend(super::ipc_map::rows(ctx)?);
    Ok(rows)
}

/// Benchmark 1.
fn queue_throughput(ctx: &Ctx, sizes: &Sizes, pool: &ProcessPool) -> anyhow::Result<Vec<Row>> {
    let n = sizes.queue_items;
    let q = Queue::<u64>::new(CAPACITY)?;
    let expect = n * (n - 1) / 2;
    let mut quadriga = || {
        let producer = pool.submit(produce, (q.clone(), n));
        let mut sum = 0;
        for _ in 0..n {
            sum += q.get().expect("the benchmark queue failed");
        }
        producer.join().expect("the producer task failed");
        assert_eq!(sum, expect, "items lost or duplicated");
    };
    let mut crossbeam = || {
        let (tx, rx) = crossbeam_channel::bounded(CAPACITY);
        let producer = std::thread::spawn(move || {
            for i in 0..n {
                tx.send(i).expect("receiver alive");
            }
        });
        let mut sum = 0;
        for _ in 0..n {
            sum += rx.recv().expect("sender alive");
        }
        producer.join().expect("producer thread");
        assert_eq!(sum, expect, "items lost or duplicated");
    };
    let stats = measure_interleaved(sizes.queue_plan, &mut [&mut quadriga, &mut crossbeam]);
    let ours = stats[0].throughput(n);

    let args = [
        "queue".to_owned(),
        n.to_string(),
        CAPACITY.to_string(),
        "--reps".to_owned(),
        sizes.python_reps.to_string(),
    ];
    let py = peer::run_script(&ctx.python, "ipc_peers.py", &args);
    let (py_value, py_note) = match &py {
        Ok(v) => {
            let s = v["seconds"].as_f64().unwrap_or(f64::NAN);
            (
                Ok(n as f64 / s),
                format!(
                    "; Python {} (best of {})",
                    format_seconds(s),
                    sizes.python_reps
                ),
            )
        }
        Err(why) => (Err(why.clone()), String::new()),
    };
    let label = format!("Queue put→get, {n} u64s, worker process → parent");
    Ok(vec![
        Row::new(
            SUITE,
            "queue_throughput_vs_python",
            label.clone(),
            Unit::ItemsPerSec,
            ours,
            "Python multiprocessing.Queue",
            py_value,
            Goal::RatioAtLeast { min: 10.0 },
        )
        .note(format!(
            "quadriga {} (median), capacity {CAPACITY}{py_note}",
            stats[0].brief()
        ))
        .details(json!({ "quadriga": stats[0], "peer": py.ok() })),
        Row::new(
            SUITE,
            "queue_throughput_vs_crossbeam",
            label,
            Unit::ItemsPerSec,
            ours,
            "crossbeam bounded, 2 threads (ceiling)",
            Ok(stats[1].throughput(n)),
            Goal::None,
        )
        .note(format!(
            "quadriga {}; crossbeam {}",
            stats[0].brief(),
            stats[1].brief()
        ))
        .details(json!({ "quadriga": stats[0], "crossbeam": stats[1] })),
    ])
}

/// The `p`-quantile of microsecond samples (sorted in place).
fn quantile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

/// Times `trips` round trips of `trip` individually, after 1,000 warm-ups;
/// microseconds.
fn round_trips(trips: usize, mut trip: impl FnMut(u64)) -> Vec<f64> {
    for i in 0..1_000 {
        trip(i);
    }
    (0..trips as u64)
        .map(|i| {
            let t = Instant::now();
            trip(i);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// Benchmark 2.
fn pipe_latency(ctx: &Ctx, sizes: &Sizes, pool: &ProcessPool) -> anyhow::Result<Vec<Row>> {
    let trips = sizes.trips;
    let (here, there) = Pipe::<u64>::new()?;
    let echoer = pool.submit(echo, there);
    let mut ours = round_trips(trips, |i| {
        here.send(i).expect("the benchmark pipe refused a message");
        assert_eq!(here.recv().expect("the echo worker is gone"), i);
    });
    drop(here);
    let echoed = echoer.join().context("the echo task")?;
    anyhow::ensure!(
        echoed == trips as u64 + 1_000,
        "the echo task lost messages"
    );

    let (to_tx, to_rx) = crossbeam_channel::bounded::<u64>(1);
    let (back_tx, back_rx) = crossbeam_channel::bounded::<u64>(1);
    let mirror = std::thread::spawn(move || {
        while let Ok(x) = to_rx.recv() {
            back_tx.send(x).expect("pinger alive");
        }
    });
    let mut ceiling = round_trips(trips, |i| {
        to_tx.send(i).expect("mirror alive");
        assert_eq!(back_rx.recv().expect("mirror alive"), i);
    });
    drop(to_tx);
    mirror.join().expect("mirror thread");

    let py = peer::run_script(
        &ctx.python,
        "ipc_peers.py",
        &["pipe".to_owned(), trips.to_string()],
    );
    let mut rows = Vec::new();
    for (p, key, label, goal) in [
        (0.5, "p50_us", "p50", Goal::RatioAtLeast { min: 5.0 }),
        (0.99, "p99_us", "p99", Goal::None),
    ] {
        let q = quantile(&mut ours, p);
        let py_value = match &py {
            Ok(v) => v[key]
                .as_f64()
                .ok_or_else(|| format!("ipc_peers.py gave no {key}")),
            Err(why) => Err(why.clone()),
        };
        let benchmark = format!("Pipe ping-pong round trip, {label}");
        rows.push(
            Row::new(
                SUITE,
                if p < 0.9 {
                    "pipe_p50_vs_python"
                } else {
                    "pipe_p99_vs_python"
                },
                benchmark.clone(),
                Unit::Latency,
                q,
                "Python multiprocessing.Pipe",
                py_value,
                goal,
            )
            .note(format!(
                "{trips} round trips each, u64 messages, worker process ↔ parent"
            ))
            .details(json!({ "peer": py.as_ref().ok() })),
        );
        rows.push(
            Row::new(
                SUITE,
                if p < 0.9 {
                    "pipe_p50_vs_crossbeam"
                } else {
                    "pipe_p99_vs_crossbeam"
                },
                benchmark,
                Unit::Latency,
                q,
                "crossbeam bounded(1) ×2, 2 threads (reference)",
                Ok(quantile(&mut ceiling, p)),
                Goal::None,
            )
            .note(format!("{trips} round trips each")),
        );
    }
    Ok(rows)
}
