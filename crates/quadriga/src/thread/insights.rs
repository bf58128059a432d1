//! [`Insights`]: what each thread of a pool did — tasks, busy and idle time,
//! start-up, mean and longest task — as mpire's `insights` shows it.
//!
//! Every job (a task, a map chunk, a piece of an in-place collect) is timed
//! on the thread that runs it, with two clock reads; the counters are
//! per thread and written only by it, so recording costs no contention.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One thread's counters, in nanoseconds since the pool started.
#[derive(Debug, Default)]
struct Worker {
    tasks: AtomicU64,
    busy: AtomicU64,
    idle: AtomicU64,
    /// The longest task, or a chunk's mean per item.
    max: AtomicU64,
    /// When the thread started (0 until it has).
    ready: AtomicU64,
    /// When its latest job ended, or it started.
    last_end: AtomicU64,
    /// When its current job started (0: none running).
    busy_since: AtomicU64,
}

/// The counters of a pool: one per thread.
#[derive(Debug)]
pub(super) struct Stats {
    origin: Instant,
    workers: Box<[Worker]>,
}

/// A job being timed: hand it to [`Stats::end`].
#[derive(Debug)]
pub(super) struct Timing {
    worker: usize,
    start: u64,
}

impl Stats {
    /// Counters for `threads` threads.
    pub(super) fn new(threads: usize) -> Self {
        Self {
            origin: Instant::now(),
            workers: (0..threads).map(|_| Worker::default()).collect(),
        }
    }

    fn now(&self) -> u64 {
        (self.origin.elapsed().as_nanos() as u64).max(1)
    }

    /// Records that thread `index` has started (rayon-core's start handler).
    pub(super) fn ready(&self, index: usize) {
        if let Some(w) = self.workers.get(index) {
            let now = self.now();
            w.ready.store(now, Ordering::Relaxed);
            w.last_end.store(now, Ordering::Relaxed);
        }
    }

    /// Starts timing a job on thread `index` (`None`: not one of the pool's
    /// threads, which is not recorded).
    pub(super) fn begin(&self, index: Option<usize>) -> Timing {
        let worker = index.unwrap_or(usize::MAX);
        let start = self.now();
        if let Some(w) = self.workers.get(worker) {
            let gap = start.saturating_sub(w.last_end.load(Ordering::Relaxed));
            w.idle.fetch_add(gap, Ordering::Relaxed);
            w.busy_since.store(start, Ordering::Relaxed);
        }
        Timing { worker, start }
    }

    /// Ends a job of `tasks` tasks begun with [`begin`](Self::begin).
    pub(super) fn end(&self, timing: Timing, tasks: u64) {
        let end = self.now();
        let Some(w) = self.workers.get(timing.worker) else {
            return;
        };
        let took = end.saturating_sub(timing.start);
        w.tasks.fetch_add(tasks, Ordering::Relaxed);
        w.busy.fetch_add(took, Ordering::Relaxed);
        w.max.fetch_max(took / tasks.max(1), Ordering::Relaxed);
        w.busy_since.store(0, Ordering::Relaxed);
        w.last_end.store(end, Ordering::Relaxed);
    }

    /// A snapshot.
    pub(super) fn insights(&self, limit: usize) -> Insights {
        let now = self.now();
        let ns = Duration::from_nanos;
        let workers = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let tasks = w.tasks.load(Ordering::Relaxed);
                let mut busy = w.busy.load(Ordering::Relaxed);
                let mut idle = w.idle.load(Ordering::Relaxed);
                let ready = w.ready.load(Ordering::Relaxed);
                let since = w.busy_since.load(Ordering::Relaxed);
                if since > 0 {
                    busy += now.saturating_sub(since);
                } else if ready > 0 {
                    idle += now.saturating_sub(w.last_end.load(Ordering::Relaxed).max(ready));
                }
                WorkerInsights {
                    name: format!("thread {i}"),
                    tasks,
                    busy: ns(busy),
                    idle: ns(idle),
                    startup: ns(ready),
                    mean_task: ns(busy.checked_div(tasks).unwrap_or(0)),
                    max_task: ns(w.max.load(Ordering::Relaxed)),
                }
            })
            .collect();
        Insights {
            uptime: ns(now),
            limit,
            workers,
        }
    }
}

/// What each thread of a pool has done since it started: a snapshot taken by
/// [`ThreadPool::insights`](super::ThreadPool::insights), after or during a
/// run. Its `Display` is a one-table summary.
///
/// ```
/// #[quadriga::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = quadriga::ThreadPool::new(2)?;
/// let _: Vec<u64> = pool.map(square, 0..10_000).collect::<Result<_, _>>().unwrap();
/// let insights = pool.insights();
/// assert_eq!(insights.tasks(), 10_000);
/// println!("{insights}");
/// # Ok::<(), quadriga::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Insights {
    /// Time since the pool was built.
    pub uptime: Duration,
    /// How many threads ran tasks at once at the snapshot (an auto pool's
    /// current choice).
    pub limit: usize,
    /// One entry per thread.
    pub workers: Vec<WorkerInsights>,
}

/// One thread's share of [`Insights`].
#[derive(Debug, Clone)]
pub struct WorkerInsights {
    /// `thread N`.
    pub name: String,
    /// Tasks (map items count one each) it ran.
    pub tasks: u64,
    /// Time spent running them.
    pub busy: Duration,
    /// Time since it started spent waiting for work.
    pub idle: Duration,
    /// Time from the pool's start until the thread was ready.
    pub startup: Duration,
    /// Mean time per task.
    pub mean_task: Duration,
    /// The longest task (for map items, which run in chunks: the longest
    /// chunk's mean per item).
    pub max_task: Duration,
}

impl Insights {
    /// Tasks run, over all threads.
    pub fn tasks(&self) -> u64 {
        self.workers.iter().map(|w| w.tasks).sum()
    }

    /// Busy time over busy and idle time, over all threads (0 to 1).
    pub fn utilisation(&self) -> f64 {
        let busy: f64 = self.workers.iter().map(|w| w.busy.as_secs_f64()).sum();
        let idle: f64 = self.workers.iter().map(|w| w.idle.as_secs_f64()).sum();
        if busy + idle > 0.0 {
            busy / (busy + idle)
        } else {
            0.0
        }
    }

    /// Prints the summary to stderr.
    pub fn print(&self) {
        eprintln!("{self}");
    }
}

impl fmt::Display for Insights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} tasks in {:.3?} on {} running threads; utilisation {:.0}%",
            self.tasks(),
            self.uptime,
            self.limit,
            100.0 * self.utilisation()
        )?;
        writeln!(
            f,
            "{:<10} {:>10} {:>12} {:>12} {:>10} {:>11} {:>11}",
            "worker", "tasks", "busy", "idle", "start-up", "mean task", "max task"
        )?;
        for w in self
            .workers
            .iter()
            .filter(|w| w.tasks > 0 || w.name != "callers")
        {
            writeln!(
                f,
                "{:<10} {:>10} {:>12.3?} {:>12.3?} {:>10.1?} {:>11.1?} {:>11.1?}",
                w.name, w.tasks, w.busy, w.idle, w.startup, w.mean_task, w.max_task
            )?;
        }
        Ok(())
    }
}
