//! The `aio` suite: `quadriga::aio` against tokio's `JoinSet` and Python's
//! asyncio and aiohttp.
//!
//! 1. **gather of sleeping tasks**: 100,000 tasks that each sleep 10 ms,
//!    gathered, against `asyncio.gather` (goal ≥ 10× faster). Each side runs in
//!    a fresh process of its own (this binary re-executed, and the Python
//!    script), so that its **peak memory** (`VmHWM`, read by the process
//!    itself at the end) can be compared too (goal ≤ 1/3 of Python's).
//! 2. **spawn + join overhead**: 100,000 trivial tasks spawned into a
//!    `TaskGroup` and joined, against raw tokio `JoinSet` on the same runtime
//!    (goal: at most 1.2× the time, so a throughput ratio ≥ 0.83), like for
//!    like, twice: draining outcomes in a `join_next` loop on both sides, and
//!    every outcome in a `Vec` in spawn order (`TaskGroup::join`; the `JoinSet`
//!    side spawns `(index, value)` and places each). `gather` is a reference.
//! 3. **fetching 10,000 loopback pages** (HTTP/1.1, hyper server in this
//!    process on 127.0.0.1, ~2 KB pages after a 1 ms simulated latency): the
//!    hyper-util client through `bounded(.., 100).gather()` against aiohttp
//!    with 100 connections and a semaphore of 100, against the same server
//!    (goal ≥ 5× the throughput). A reference row does the same with
//!    `Limit::auto()`.

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use quadriga::TaskError;
use quadriga::aio::{Limit, TaskGroup, bounded, gather};
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use super::{Ctx, progress};
use crate::harness::peer;
use crate::harness::report::{Goal, Row, Unit};
use crate::harness::timing::{Plan, Stats, format_seconds, measure_interleaved};

/// The suite's name in rows.
const SUITE: &str = "aio";

/// Set in a re-executed child: what to run there (`sleep:TASKS`).
const CHILD_ENV: &str = "QUADRIGA_BENCH_AIO_CHILD";

/// The Python peers.
const SCRIPT: &str = "aio_peers.py";

/// How long each task of benchmark 1 sleeps. A constant, as in the issue
/// (and as application code writes it): the size of a task's future, and so
/// its memory, depends on what it captures.
const SLEEP: Duration = Duration::from_millis(10);

/// Sizes and repetitions; `--quick` shrinks them.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Tasks of benchmark 1.
    sleep_tasks: u64,
    /// Fresh processes per side in benchmark 1.
    sleep_runs: usize,
    /// Tasks of benchmark 2.
    spawn_tasks: u64,
    /// Repetitions of benchmark 2.
    spawn_plan: Plan,
    /// Pages of benchmark 3.
    pages: u64,
    /// Requests in flight in benchmark 3, both sides.
    page_limit: usize,
    /// The server's simulated latency.
    latency: Duration,
    /// Repetitions of benchmark 3 (Rust side).
    fetch_plan: Plan,
    /// Timed runs inside the Python fetch peer (it reports its best).
    python_reps: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                sleep_tasks: 10_000,
                sleep_runs: 1,
                spawn_tasks: 10_000,
                spawn_plan: Plan::new(1, 3),
                pages: 1_000,
                page_limit: 100,
                latency: Duration::from_millis(1),
                fetch_plan: Plan::new(1, 2),
                python_reps: 1,
            }
        } else {
            Self {
                sleep_tasks: 100_000,
                sleep_runs: 3,
                spawn_tasks: 100_000,
                spawn_plan: Plan::new(2, 21),
                pages: 10_000,
                page_limit: 100,
                latency: Duration::from_millis(1),
                fetch_plan: Plan::new(1, 7),
                python_reps: 5,
            }
        }
    }
}

/// Runs the suite (or, in a re-executed child, its part and exits).
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let code = match child(&spec, ctx.threads) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("aio child {spec:?}: {e:#}");
                1
            }
        };
        // The parent reads one JSON line; the table and the JSON file are its.
        std::process::exit(code);
    }
    let sizes = Sizes::new(ctx.quick);
    let mut rows = Vec::new();
    progress(&format!(
        "gather of {} tasks sleeping {} ms, each side in fresh processes",
        sizes.sleep_tasks,
        SLEEP.as_millis()
    ));
    rows.push(sleep_gather(ctx, &sizes)?);
    progress(&format!(
        "spawn+join of {} trivial tasks",
        sizes.spawn_tasks
    ));
    let rt = runtime(ctx.threads)?;
    rows.extend(spawn_join(&rt, &sizes)?);
    progress(&format!("fetching {} loopback pages", sizes.pages));
    rows.extend(fetch_pages(ctx, &sizes)?);
    Ok(rows)
}

/// A multi-threaded tokio runtime with `threads` workers.
fn runtime(threads: usize) -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("building a tokio runtime")
}

/// A `VmXXX:` field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

// ------------------------------------------------------------ benchmark 1

/// The child's side of benchmark 1: one gather in this fresh process, then
/// one JSON line with its wall time and peak memory.
fn child(spec: &str, threads: usize) -> anyhow::Result<()> {
    let tasks: u64 = match spec.split_once(':') {
        Some(("sleep", tasks)) => tasks.parse()?,
        _ => bail!("unknown child spec"),
    };
    let baseline = status_kib("VmRSS");
    let rt = runtime(threads)?;
    let wall = rt.block_on(async move {
        // In a task, as application code is: spawning from a worker thread.
        tokio::spawn(async move {
            let started = Instant::now();
            let outcomes = gather((0..tasks).map(|_| async {
                tokio::time::sleep(SLEEP).await;
                Ok::<_, TaskError>(())
            }))
            .await;
            let wall = started.elapsed();
            (wall, outcomes.iter().filter(|o| o.is_ok()).count())
        })
        .await
    })?;
    ensure!(
        wall.1 as u64 == tasks,
        "only {} of {tasks} tasks ended well",
        wall.1
    );
    println!(
        "{}",
        json!({
            "tasks": tasks,
            "sleep_ms": SLEEP.as_millis() as u64,
            "wall_s": wall.0.as_secs_f64(),
            "baseline_rss_kib": baseline,
            "peak_rss_kib": status_kib("VmHWM"),
            "threads": threads,
        })
    );
    Ok(())
}

/// Runs this binary as a benchmark-1 child; its JSON line.
fn rust_child(ctx: &Ctx, sizes: &Sizes) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let out = Command::new(exe)
        .args(["aio", "--threads", &ctx.threads.to_string()])
        .args(["--json", "/dev/null"])
        .env(CHILD_ENV, format!("sleep:{}", sizes.sleep_tasks))
        .output()
        .context("running the Rust child")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "the Rust child failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).with_context(|| format!("the Rust child printed {last:?}"))
}

/// `(median wall seconds, median peak KiB, median baseline KiB)` of runs.
fn summarise(runs: &[Value]) -> Option<(f64, f64, f64)> {
    let median = |key: &str| -> Option<f64> {
        let mut v: Vec<f64> = runs
            .iter()
            .map(|r| r[key].as_f64())
            .collect::<Option<_>>()?;
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return None;
        }
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    };
    Some((
        median("wall_s")?,
        median("peak_rss_kib")?,
        median("baseline_rss_kib")?,
    ))
}

/// Benchmark 1: gather of sleeping tasks, wall time and peak memory.
fn sleep_gather(ctx: &Ctx, sizes: &Sizes) -> anyhow::Result<Row> {
    let tasks = sizes.sleep_tasks;
    let mut rust_runs = Vec::new();
    let mut python_runs = Vec::new();
    let mut python_error = None;
    // Interleaved: Rust, Python, Rust, Python, ...
    for _ in 0..sizes.sleep_runs {
        rust_runs.push(rust_child(ctx, sizes)?);
        if python_error.is_none() {
            match peer::run_script(
                &ctx.python,
                SCRIPT,
                &[
                    "sleep".to_owned(),
                    tasks.to_string(),
                    SLEEP.as_millis().to_string(),
                ],
            ) {
                Ok(v) => python_runs.push(v),
                Err(why) => python_error = Some(why),
            }
        }
    }
    let (q_wall, q_peak, q_base) = summarise(&rust_runs).context("the Rust child's JSON")?;
    let python = match (&python_error, summarise(&python_runs)) {
        (Some(why), _) => Err(why.clone()),
        (None, None) => Err("no wall_s/peak_rss_kib in its JSON".to_owned()),
        (None, Some(s)) => Ok(s),
    };
    let mib = |kib: f64| kib / 1024.0;
    let per_task = |peak: f64, base: f64| (peak - base) * 1024.0 / tasks as f64;
    let memory_ratio = python.as_ref().ok().map(|p| q_peak / p.1);
    let note = match &python {
        Ok((p_wall, p_peak, p_base)) => format!(
            "wall {} vs {} (medians of {} fresh processes each); peak RSS {:.1} MiB vs \
             {:.1} MiB = {:.2}× Python's (goal ≤ 0.33×: {}); above the baseline, \
             {:.0} vs {:.0} bytes per task; {}",
            format_seconds(q_wall),
            format_seconds(*p_wall),
            sizes.sleep_runs,
            mib(q_peak),
            mib(*p_peak),
            q_peak / p_peak,
            if q_peak * 3.0 <= *p_peak {
                "met"
            } else {
                "NOT met"
            },
            per_task(q_peak, q_base),
            per_task(*p_peak, *p_base),
            python_runs
                .first()
                .and_then(|v| v["python"].as_str())
                .unwrap_or("python ?"),
        ),
        Err(_) => format!(
            "wall {}; peak RSS {:.1} MiB ({:.0} bytes per task above the baseline)",
            format_seconds(q_wall),
            mib(q_peak),
            per_task(q_peak, q_base)
        ),
    };
    Ok(Row::new(
        SUITE,
        "gather_sleep_vs_asyncio",
        format!(
            "gather {} tasks sleeping {} ms",
            count(tasks),
            SLEEP.as_millis()
        ),
        Unit::ItemsPerSec,
        tasks as f64 / q_wall,
        "Python asyncio.gather",
        python
            .as_ref()
            .map(|p| tasks as f64 / p.0)
            .map_err(Clone::clone),
        Goal::RatioAtLeast { min: 10.0 },
    )
    .note(note)
    .details(json!({
        "tasks": tasks,
        "sleep_ms": SLEEP.as_millis() as u64,
        "quadriga_runs": rust_runs,
        "python_runs": python_runs,
        "python_skipped": python_error,
        "quadriga_median_wall_s": q_wall,
        "quadriga_median_peak_rss_kib": q_peak,
        "python_median_wall_s": python.as_ref().ok().map(|p| p.0),
        "python_median_peak_rss_kib": python.as_ref().ok().map(|p| p.1),
        "peak_rss_ratio_quadriga_over_python": memory_ratio,
        "memory_goal": "quadriga peak RSS <= 1/3 of Python's",
        "memory_goal_met": memory_ratio.map(|r| r <= 1.0 / 3.0),
        "method": "each side in a fresh process, timed and measured (VmHWM) by itself",
    })))
}

// ------------------------------------------------------------ benchmark 2

/// Benchmark 2: `TaskGroup` (and `gather`) spawn+join against raw `JoinSet`,
/// like for like: a loop over outcomes as they come (both sides), and every
/// outcome in a `Vec` in spawn order (what `join` returns; the `JoinSet`
/// side spawns `(index, value)` and places each into a `Vec`).
fn spawn_join(rt: &Runtime, sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let n = sizes.spawn_tasks;
    let len = usize::try_from(n)?;
    let xor = |v: Vec<Result<u64, TaskError>>| {
        v.into_iter()
            .fold(0, |acc, r| acc ^ r.expect("a trivial task failed"))
    };
    // Each body runs inside a spawned task, as application code does.
    let group_loop = || -> u64 {
        rt.block_on(rt.spawn(async move {
            let mut group = TaskGroup::new();
            for i in 0..n {
                group.spawn(async move { Ok::<_, TaskError>(i) });
            }
            let mut acc = 0;
            while let Some((_, r)) = group.join_next().await {
                acc ^= r.expect("a trivial task failed");
            }
            acc
        }))
        .expect("the benchmark task")
    };
    let joinset_loop = || -> u64 {
        rt.block_on(rt.spawn(async move {
            let mut set = JoinSet::new();
            for i in 0..n {
                set.spawn(async move { i });
            }
            let mut acc = 0;
            while let Some(r) = set.join_next().await {
                acc ^= r.expect("a trivial task failed");
            }
            acc
        }))
        .expect("the benchmark task")
    };
    let group_vec = || -> u64 {
        rt.block_on(rt.spawn(async move {
            let mut group = TaskGroup::new();
            for i in 0..n {
                group.spawn(async move { Ok::<_, TaskError>(i) });
            }
            xor(group.join().await)
        }))
        .expect("the benchmark task")
    };
    let gather_vec = || -> u64 {
        rt.block_on(rt.spawn(async move {
            xor(gather((0..n).map(|i| async move { Ok::<_, TaskError>(i) })).await)
        }))
        .expect("the benchmark task")
    };
    let joinset_vec = || -> u64 {
        rt.block_on(rt.spawn(async move {
            let mut set = JoinSet::new();
            for i in 0..n {
                set.spawn(async move { (i as usize, i) });
            }
            let mut slots: Vec<Option<u64>> = vec![None; len];
            while let Some(r) = set.join_next().await {
                let (index, value) = r.expect("a trivial task failed");
                slots[index] = Some(value);
            }
            let values: Vec<u64> = slots.into_iter().map(Option::unwrap).collect();
            values.into_iter().fold(0, |acc, v| acc ^ v)
        }))
        .expect("the benchmark task")
    };
    let expected = (0..n).fold(0, |acc, i| acc ^ i);
    ensure!(
        group_loop() == expected,
        "TaskGroup join_next: wrong results"
    );
    ensure!(joinset_loop() == expected, "JoinSet loop: wrong results");
    ensure!(group_vec() == expected, "TaskGroup join: wrong results");
    ensure!(gather_vec() == expected, "gather: wrong results");
    ensure!(
        joinset_vec() == expected,
        "JoinSet into a Vec: wrong results"
    );
    let stats = measure_interleaved(
        sizes.spawn_plan,
        &mut [
            &mut || {
                black_box(group_loop());
            },
            &mut || {
                black_box(joinset_loop());
            },
            &mut || {
                black_box(group_vec());
            },
            &mut || {
                black_box(gather_vec());
            },
            &mut || {
                black_box(joinset_vec());
            },
        ],
    );
    let row = |id, what: &str, s: &Stats, peer: &str, p: &Stats, goal| {
        Row::new(
            SUITE,
            id,
            format!("{what}, {} trivial tasks", count(n)),
            Unit::ItemsPerSec,
            s.throughput(n),
            peer,
            Ok(p.throughput(n)),
            goal,
        )
        .note(format!(
            "{n} tasks; quadriga {} ({:.0} ns/task), JoinSet {} ({:.0} ns/task): {:.2}× the time",
            s.brief(),
            s.median_s / n as f64 * 1e9,
            p.brief(),
            p.median_s / n as f64 * 1e9,
            s.median_s / p.median_s,
        ))
        .details(json!({
            "tasks": n,
            "quadriga": s,
            "joinset": p,
            "time_ratio": s.median_s / p.median_s,
            "goal": "time <= 1.2x JoinSet's, i.e. throughput ratio >= 1/1.2",
        }))
    };
    let goal = Goal::RatioAtLeast { min: 0.83 };
    Ok(vec![
        row(
            "taskgroup_join_next_vs_joinset",
            "TaskGroup spawn + join_next loop",
            &stats[0],
            "JoinSet spawn + join_next loop",
            &stats[1],
            goal,
        ),
        row(
            "taskgroup_join_vs_joinset_vec",
            "TaskGroup spawn + join (Vec, spawn order)",
            &stats[2],
            "JoinSet + join_next into a Vec",
            &stats[4],
            goal,
        ),
        row(
            "gather_vs_joinset_vec",
            "gather (Vec, input order)",
            &stats[3],
            "JoinSet + join_next into a Vec",
            &stats[4],
            Goal::None,
        ),
    ])
}

// ------------------------------------------------------------ benchmark 3

/// Page `i`: about 2 KB of text, as the `fetch_pages` example serves.
fn page(i: u64) -> String {
    const WORDS: [&str; 8] = [
        "quadriga",
        "chariot",
        "horses",
        "abreast",
        "threads",
        "processes",
        "async",
        "cluster",
    ];
    let i = i as usize;
    let mut text = format!("<h1>Page {i}</h1>\n");
    for k in 0..250 {
        text.push_str(WORDS[(i + k * 7) % WORDS.len()]);
        text.push(if k % 12 == 11 { '\n' } else { ' ' });
    }
    text
}

/// Serves `GET /page/{i}` on 127.0.0.1 (a free port) after `latency`, on
/// `rt`; counts the pages served.
fn serve(rt: &Runtime, latency: Duration, served: Arc<AtomicU64>) -> anyhow::Result<SocketAddr> {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
        .context("binding the loopback server")?;
    let addr = listener.local_addr()?;
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let served = Arc::clone(&served);
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let served = Arc::clone(&served);
                async move {
                    let i = req
                        .uri()
                        .path()
                        .strip_prefix("/page/")
                        .and_then(|i| i.parse::<u64>().ok());
                    if !latency.is_zero() {
                        tokio::time::sleep(latency).await;
                    }
                    let mut response = Response::new(Full::new(Bytes::from(
                        i.map_or_else(|| "no such page".to_owned(), page),
                    )));
                    match i {
                        Some(_) => {
                            served.fetch_add(1, Ordering::Relaxed);
                            response.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
                            );
                        }
                        None => *response.status_mut() = hyper::StatusCode::NOT_FOUND,
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// `GET url`, the body's length in characters.
async fn fetch(client: HttpClient, url: hyper::Uri) -> Result<u64, TaskError> {
    let response = client.get(url).await.map_err(TaskError::failed)?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(TaskError::failed)?
        .to_bytes();
    if !status.is_success() {
        return Err(TaskError::failed(format!("HTTP {status}")));
    }
    let text = std::str::from_utf8(&body).map_err(TaskError::failed)?;
    Ok(text.chars().count() as u64)
}

/// Fetches every page with a fresh client, `limit` at a time; the total
/// characters.
fn fetch_all(rt: &Runtime, addr: SocketAddr, pages: u64, limit: Limit) -> (u64, Vec<String>) {
    rt.block_on(rt.spawn(async move {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
        let fetches = (0..pages).map(move |i| {
            let url: hyper::Uri = format!("http://{addr}/page/{i}").parse().expect("a URL");
            fetch(client.clone(), url)
        });
        let mut running = bounded(fetches, limit);
        let mut total = 0;
        while let Some((i, outcome)) = running.next().await {
            match outcome {
                Ok(n) => total += n,
                Err(e) => panic!("page {i}: {e}"),
            }
        }
        let decisions = running.decisions().iter().map(|d| d.to_string()).collect();
        (total, decisions)
    }))
    .expect("the fetch task")
}

/// Benchmark 3: loopback pages, Quadriga (fixed and auto limits) against
/// aiohttp on the same server.
fn fetch_pages(ctx: &Ctx, sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let pages = sizes.pages;
    let limit = sizes.page_limit;
    let server_rt = runtime(ctx.threads)?;
    let served = Arc::new(AtomicU64::new(0));
    let addr = serve(&server_rt, sizes.latency, Arc::clone(&served))?;
    let client_rt = runtime(ctx.threads)?;

    let expected: u64 = (0..pages).map(|i| page(i).chars().count() as u64).sum();
    let (got, _) = fetch_all(&client_rt, addr, pages, Limit::Fixed(limit));
    ensure!(
        got == expected,
        "fetched {got} characters, expected {expected}"
    );

    let mut auto_decisions = Vec::new();
    let stats = measure_interleaved(
        sizes.fetch_plan,
        &mut [
            &mut || {
                black_box(fetch_all(&client_rt, addr, pages, Limit::Fixed(limit)));
            },
            &mut || {
                let (_, decisions) = fetch_all(&client_rt, addr, pages, Limit::auto());
                auto_decisions = decisions;
            },
        ],
    );
    let (fixed, auto) = (&stats[0], &stats[1]);

    progress("python aiohttp peer");
    let python = peer::run_script(
        &ctx.python,
        SCRIPT,
        &[
            "fetch".to_owned(),
            format!("http://{addr}"),
            pages.to_string(),
            limit.to_string(),
            "--reps".to_owned(),
            sizes.python_reps.to_string(),
        ],
    );
    let python_rate = python.as_ref().map_err(Clone::clone).and_then(|v| {
        let secs = v["seconds"].as_f64().ok_or("no `seconds` in its JSON")?;
        let chars = v["characters"]
            .as_u64()
            .ok_or("no `characters` in its JSON")?;
        if chars != expected {
            return Err(format!("it read {chars} characters, expected {expected}"));
        }
        Ok(pages as f64 / secs)
    });
    let python_note = match &python {
        Ok(v) => format!(
            "aiohttp {} (best of {}; aiohttp {}, {})",
            format_seconds(v["seconds"].as_f64().unwrap_or(f64::NAN)),
            sizes.python_reps,
            v["aiohttp"].as_str().unwrap_or("?"),
            v["python"].as_str().unwrap_or("python ?"),
        ),
        Err(_) => "aiohttp skipped".to_owned(),
    };
    let python_details = match &python {
        Ok(v) => v.clone(),
        Err(why) => json!({ "skipped": why }),
    };
    let server = json!({
        "address": addr.to_string(),
        "latency_ms": sizes.latency.as_secs_f64() * 1e3,
        "page_bytes_mean": expected as f64 / pages as f64,
        "runtime_threads": ctx.threads,
        "pages_served_total": served.load(Ordering::Relaxed),
    });
    let fixed_row = Row::new(
        SUITE,
        "fetch_pages_vs_aiohttp",
        format!("fetch {} loopback pages, {limit} at a time", count(pages)),
        Unit::ItemsPerSec,
        fixed.throughput(pages),
        "Python aiohttp",
        python_rate.clone(),
        Goal::RatioAtLeast { min: 5.0 },
    )
    .note(format!(
        "{pages} pages, {:.1} ms latency; quadriga {} (median); {python_note}",
        sizes.latency.as_secs_f64() * 1e3,
        fixed.brief()
    ))
    .details(json!({
        "pages": pages,
        "limit": limit,
        "quadriga": fixed,
        "python": python_details,
        "server": server,
        "ratio_basis": "quadriga median time vs Python's best time",
    }));
    let auto_row = Row::new(
        SUITE,
        "fetch_pages_auto_vs_aiohttp",
        format!("fetch {} loopback pages, Limit::auto()", count(pages)),
        Unit::ItemsPerSec,
        auto.throughput(pages),
        "Python aiohttp",
        python_rate,
        Goal::None,
    )
    .note(format!(
        "quadriga {} (median); last run's controller: {}",
        auto.brief(),
        auto_decisions
            .last()
            .map_or("no decision".to_owned(), Clone::clone)
    ))
    .details(json!({
        "pages": pages,
        "quadriga": auto,
        "decisions_last_run": auto_decisions,
    }));
    Ok(vec![fixed_row, auto_row])
}

/// `100k`, `10k`, or the plain number.
fn count(n: u64) -> String {
    if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}
