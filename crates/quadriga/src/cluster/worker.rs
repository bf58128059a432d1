//! [`Worker`]: serves a queue from this binary (only it knows its tasks).
//!
//! One loop reads at most as many entries as there are free slots (no
//! hoarding), sweeps lapsed entries of any worker and moves due delayed
//! entries into the stream (`delayed.rs`); `concurrency` runner
//! threads each run one entry at a time through the task registry and
//! complete it with the fenced script; a heartbeat thread extends the leases
//! of the entries held and renews the worker's record. A broker that goes
//! away is waited for (with back-off), never a reason to stop.
//!
//! Isolation is by threads (a task that crashes the process takes the whole
//! worker with it, and its entries come back to other workers after one
//! lease, dead-lettered past the delivery limit) or by processes
//! ([`Isolation::Processes`]: each entry in a supervised child of the local
//! process pool, so a crash or a hang fails that one task). An entry the
//! heartbeat finds settled elsewhere (cancelled by its client, or reclaimed
//! after a pause) is stopped: with processes its child is killed.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::broker::{Broker, Completion};
use super::config::BrokerConfig;
use super::delivery::Delivery;
use super::entry::Entry;
use super::error::{Error, ErrorKind};
use super::execute::{run_entry, run_entry_isolated};
use super::isolation::Isolation;
use super::outcome::Outcome;
use super::workers::WorkerInfo;
use crate::process::ProcessPool;

/// Configures and connects a [`Worker`].
///
/// ```no_run
/// # #[cfg(feature = "cluster")] {
/// use std::time::Duration;
/// use quadriga::cluster::Worker;
///
/// let worker = Worker::builder("redis://127.0.0.1:6379/")
///     .queue("squares")
///     .concurrency(4)
///     .lease(Duration::from_secs(10))
///     .build()?;
/// let stop = worker.stopper();
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_secs(60));
///     stop.stop();
/// });
/// worker.run()?;
/// # }
/// # Ok::<(), quadriga::cluster::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct WorkerBuilder {
    config: BrokerConfig,
    concurrency: Option<usize>,
    isolation: Isolation,
    timeout: Option<Duration>,
    memory_limit: Option<u64>,
    admit: Option<Admit>,
    limit: Option<Arc<AtomicUsize>>,
}

/// A check every entry passes before it runs: `Err(reason)` dead-letters it.
type AdmitFn = dyn Fn(&Entry) -> Result<(), String> + Send + Sync;

#[derive(Clone)]
struct Admit(Arc<AdmitFn>);

impl fmt::Debug for Admit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Admit(..)")
    }
}

impl WorkerBuilder {
    /// Serves the queue `name` (default `default`).
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.config = self.config.queue(name);
        self
    }

    /// The key prefix (default `quadriga`); the same as the clients'.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config = self.config.prefix(prefix);
        self
    }

    /// How many shards the queue has (default 1); the same as the clients'.
    pub fn shards(mut self, shards: u16) -> Self {
        self.config = self.config.shards(shards);
        self
    }

    /// How many entries (tasks or map chunks) run at once, each on its own
    /// thread (default: one per available core).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n.max(1));
        self
    }

    /// How tasks run: on the worker's threads (the default) or each entry in
    /// a supervised child process ([`Isolation::Processes`]), where a
    /// segfault, an abort, running out of memory or a time limit fails that
    /// one task and the worker carries on.
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// A time limit per entry (a task, or a map chunk), enforced with
    /// [`Isolation::Processes`]: past it the child is killed and the tasks
    /// end `timed_out`. Threads cannot be killed, so with
    /// [`Isolation::Threads`] it is refused by [`build`](Self::build).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// A memory limit for each child process (`RLIMIT_AS`), with
    /// [`Isolation::Processes`]: a task that goes past it fails as `crashed`
    /// and names the limit. Refused by [`build`](Self::build) with threads.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// How long an entry may go without a heartbeat before another worker
    /// reclaims it (default 10 s). Heartbeats go every third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config = self.config.lease(lease);
        self
    }

    /// How many times an entry whose worker was lost (its lease lapsed) is
    /// run again before it becomes a dead letter and its tasks end `lost`
    /// (default 3). This worker applies it when it sweeps.
    pub fn retries_on_worker_loss(mut self, n: u32) -> Self {
        self.config = self.config.max_deliveries(u64::from(n) + 1);
        self
    }

    /// A check every delivered entry passes before it runs (a signature, a
    /// policy): `Err(reason)` moves the entry to the dead-letter stream with
    /// that reason and one line on standard error, and it never runs. Called
    /// on the worker's reading thread: keep it quick.
    pub fn admit(
        mut self,
        check: impl Fn(&Entry) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.admit = Some(Admit(Arc::new(check)));
        self
    }

    /// A live limit on how many entries run at once, read before every read
    /// of the queue: between 1 and [`concurrency`](Self::concurrency) (the
    /// runner threads started). Whoever holds the other end may change it
    /// at any time (a concurrency controller fed by the tasks' measurements,
    /// say); entries already running are never stopped for it.
    pub fn limit(mut self, limit: Arc<AtomicUsize>) -> Self {
        self.limit = Some(limit);
        self
    }

    /// This worker's consumer name (default `<host>-<pid>-<random>`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config = self.config.consumer(name);
        self
    }

    /// How long a connection attempt may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.connect_timeout(timeout);
        self
    }

    /// Every broker setting at once (URL, queue, limits), replacing those set
    /// so far.
    pub fn config(mut self, config: BrokerConfig) -> Self {
        self.config = config;
        self
    }

    /// Connects to the broker and makes sure the queue exists.
    ///
    /// # Errors
    ///
    /// The broker is unreachable, refuses the credentials, or the
    /// configuration is invalid (a time limit with thread isolation).
    pub fn build(self) -> Result<Worker, Error> {
        let concurrency = self
            .concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        if (self.timeout.is_some() || self.memory_limit.is_some())
            && self.isolation == Isolation::Threads
        {
            return Err(Error::new(
                ErrorKind::Config,
                "a time or memory limit needs process isolation \
                 (`.isolation(Isolation::Processes)`): a thread cannot be killed",
            ));
        }
        crate::panic::install_hook();
        let broker = Broker::connect(self.config)?;
        Ok(Worker {
            broker,
            concurrency,
            isolation: self.isolation,
            timeout: self.timeout,
            memory_limit: self.memory_limit,
            admit: self.admit,
            limit: self.limit,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// Stops a running [`Worker`]: it takes nothing more, finishes and completes
/// what it holds, and [`run`](Worker::run) returns.
#[derive(Clone, Debug)]
pub struct WorkerStop(Arc<AtomicBool>);

impl WorkerStop {
    /// Asks the worker to stop (returns at once).
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What a worker did, returned by [`Worker::run`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Entries run and completed by this worker.
    pub completed: u64,
    /// Entries whose completion was refused: their lease had lapsed and
    /// another worker took them (duplicate runs).
    pub refused: u64,
    /// Entries this worker moved to the dead-letter stream (past the delivery
    /// limit, or foreign).
    pub dead_lettered: u64,
    /// Entries stopped while they ran because they were settled elsewhere
    /// (cancelled by their client, or reclaimed by another worker after this
    /// one paused): with process isolation, their children were killed.
    pub stopped: u64,
}

/// A cluster worker: takes entries of a queue from the broker and runs their
/// tasks, which this binary registered with `#[quadriga::task]`.
///
/// ```no_run
/// # #[cfg(feature = "cluster")] {
/// let worker = quadriga::cluster::Worker::builder("redis://127.0.0.1:6379/").build()?;
/// worker.run()?; // until stopped
/// # }
/// # Ok::<(), quadriga::cluster::Error>(())
/// ```
pub struct Worker {
    broker: Broker,
    concurrency: usize,
    isolation: Isolation,
    timeout: Option<Duration>,
    memory_limit: Option<u64>,
    admit: Option<Admit>,
    limit: Option<Arc<AtomicUsize>>,
    stop: Arc<AtomicBool>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.broker.consumer())
            .field("queue", &self.broker.keys().queue())
            .field("concurrency", &self.concurrency)
            .field("isolation", &self.isolation)
            .finish_non_exhaustive()
    }
}

/// What the loop, the runners and the heartbeat share.
#[derive(Debug, Default)]
struct State {
    /// Entries held: `(shard, id)`.
    held: Mutex<HashSet<(u16, String)>>,
    /// Entries running in a child process: their raw job ids.
    running: Mutex<HashMap<(u16, String), u64>>,
    /// Entries running on a thread: their cancel tokens.
    cancels: Mutex<HashMap<(u16, String), Arc<AtomicBool>>>,
    busy: AtomicUsize,
    completed: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    dead: AtomicU64,
    stopped: AtomicU64,
    /// Run times of the last minute, for the worker's record.
    runs: Mutex<super::workers::RunTimes>,
}

impl State {
    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<(u16, String)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<(u16, String), u64>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cancels(&self) -> std::sync::MutexGuard<'_, HashMap<(u16, String), Arc<AtomicBool>>> {
        self.cancels.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where a runner runs its entries.
#[derive(Clone)]
struct Exec {
    /// The child processes, with process isolation.
    pool: Option<Arc<ProcessPool>>,
    timeout: Option<Duration>,
}

impl Worker {
    /// A builder for a worker of the broker at `url`
    /// (`redis://[user:password@]host:port/[db]`).
    pub fn builder(url: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            config: BrokerConfig::new(url),
            concurrency: None,
            isolation: Isolation::Threads,
            timeout: None,
            memory_limit: None,
            admit: None,
            limit: None,
        }
    }

    /// This worker's consumer name.
    pub fn name(&self) -> &str {
        self.broker.consumer()
    }

    /// A handle that stops [`run`](Self::run) from another thread.
    pub fn stopper(&self) -> WorkerStop {
        WorkerStop(Arc::clone(&self.stop))
    }

    /// Serves the queue until stopped. Broker failures are waited out with
    /// back-off (and reported on standard error), never fatal.
    ///
    /// # Errors
    ///
    /// Only if its threads (or, with process isolation, its child processes)
    /// could not be started.
    pub fn run(mut self) -> Result<WorkerReport, Error> {
        let lease = self.broker.config().lease;
        let poll = (lease / 4).clamp(Duration::from_millis(10), Duration::from_millis(500));
        let state = Arc::new(State::default());
        let name = self.name().to_owned();
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<Delivery>(self.concurrency);
        let (freed_tx, freed_rx) = crossbeam_channel::unbounded::<()>();
        let spawn_error = |e: std::io::Error| {
            Error::new(ErrorKind::Config, format!("could not start a thread: {e}"))
        };
        let pool = match self.isolation {
            Isolation::Threads => None,
            Isolation::Processes => Some(Arc::new(
                {
                    let mut b = ProcessPool::builder().workers(self.concurrency);
                    if let Some(bytes) = self.memory_limit {
                        b = b.memory_limit(bytes);
                    }
                    b
                }
                .build()
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        format!("could not start the worker's child processes: {e}"),
                    )
                })?,
            )),
        };
        let exec = Exec {
            pool: pool.clone(),
            timeout: self.timeout,
        };

        let mut runners = Vec::new();
        for i in 0..self.concurrency {
            let broker = self.broker.try_clone();
            let (jobs, freed, state, name, exec) = (
                jobs_rx.clone(),
                freed_tx.clone(),
                Arc::clone(&state),
                name.clone(),
                exec.clone(),
            );
            runners.push(
                std::thread::Builder::new()
                    .name(format!("quadriga-cluster-run-{i}"))
                    .spawn(move || runner(broker, &jobs, &freed, &state, &name, &exec))
                    .map_err(spawn_error)?,
            );
        }
        drop(jobs_rx);
        let beat_stop = Arc::new(AtomicBool::new(false));
        let heartbeat = {
            let broker = self.broker.try_clone();
            let state = Arc::clone(&state);
            let stop = Arc::clone(&beat_stop);
            let pool = pool.clone();
            let limit = self.limit.clone();
            let info = WorkerInfo::this_process(
                &name,
                self.concurrency as u32,
                crate::task::registry::names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            );
            std::thread::Builder::new()
                .name("quadriga-cluster-heartbeat".into())
                .spawn(move || {
                    heartbeat(
                        broker,
                        &state,
                        &stop,
                        info,
                        lease,
                        pool.as_deref(),
                        limit.as_deref(),
                    )
                })
                .map_err(spawn_error)?
        };

        let mut reader = self.broker.reader();
        let mut next_sweep = Instant::now();
        let mut next_promote = Instant::now();
        let mut backoff = Backoff::default();
        while !self.stop.load(Ordering::Acquire) {
            if Instant::now() >= next_promote {
                // Delayed entries that are due move into the stream; look
                // again when the next is due, and at least every poll.
                let wait = match self.broker.promote_due(64) {
                    Ok(p) => p.next_due.map_or(poll, |d| d.min(poll)),
                    Err(e) => {
                        eprintln!("quadriga cluster worker {name}: delayed entries: {e}");
                        poll
                    }
                };
                next_promote = Instant::now() + wait;
            }
            let cap = self.limit.as_ref().map_or(self.concurrency, |l| {
                l.load(Ordering::Relaxed).clamp(1, self.concurrency)
            });
            let free = cap.saturating_sub(state.busy.load(Ordering::Acquire));
            if free == 0 {
                let _ = freed_rx.recv_timeout(poll);
                continue;
            }
            let got = if Instant::now() >= next_sweep {
                // Every tenth of a lease: a lost worker's entry lapses at
                // four fifths, so its task runs again within one lease.
                next_sweep = Instant::now() + (lease / 10).max(Duration::from_millis(50));
                self.broker.sweep(free).map(|s| {
                    state.dead.fetch_add(s.dead.len() as u64, Ordering::Relaxed);
                    s.reclaimed
                })
            } else {
                let block = next_promote.saturating_duration_since(Instant::now());
                reader.read(free, block.clamp(Duration::from_millis(1), poll))
            };
            match got {
                Ok(deliveries) => {
                    backoff.reset();
                    for d in deliveries {
                        self.take(d, &state, &jobs_tx);
                    }
                }
                Err(e) => {
                    eprintln!("quadriga cluster worker {name}: {e}; trying again");
                    backoff.wait(&self.stop);
                }
            }
        }
        // Finish what is held, then stop the heartbeat.
        drop(jobs_tx);
        for r in runners {
            let _ = r.join();
        }
        beat_stop.store(true, Ordering::Release);
        let _ = heartbeat.join();
        drop(pool); // the last reference: stops the child processes
        Ok(WorkerReport {
            completed: state.completed.load(Ordering::Relaxed),
            refused: state.refused.load(Ordering::Relaxed),
            dead_lettered: state.dead.load(Ordering::Relaxed),
            stopped: state.stopped.load(Ordering::Relaxed),
        })
    }

    /// Hands a delivery to a runner, or dead-letters one that is not ours.
    fn take(&mut self, d: Delivery, state: &State, jobs: &Sender<Delivery>) {
        if let Err(why) = &d.entry {
            let reason = why.message().to_owned();
            match self.broker.dead_letter(&d, &reason) {
                Ok(_) => {
                    state.dead.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => eprintln!(
                    "quadriga cluster worker {}: could not dead-letter {}: {e}",
                    self.broker.consumer(),
                    d.id
                ),
            }
            return;
        }
        if let (Some(admit), Ok(entry)) = (&self.admit, &d.entry)
            && let Err(reason) = (admit.0)(entry)
        {
            eprintln!(
                "quadriga cluster worker {}: refused entry {} of task `{}`: {reason}",
                self.broker.consumer(),
                d.id,
                entry.task
            );
            match self.broker.dead_letter(&d, &reason) {
                Ok(_) => {
                    state.dead.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => eprintln!(
                    "quadriga cluster worker {}: could not dead-letter {}: {e}",
                    self.broker.consumer(),
                    d.id
                ),
            }
            return;
        }
        state.held().insert((d.shard, d.id.clone()));
        state.busy.fetch_add(1, Ordering::AcqRel);
        // The channel holds `concurrency` and at most that many are busy.
        let _ = jobs.send(d);
    }
}

/// A runner thread: one entry at a time, completed with the fenced script.
fn runner(
    mut broker: Broker,
    jobs: &Receiver<Delivery>,
    freed: &Sender<()>,
    state: &State,
    name: &str,
    exec: &Exec,
) {
    for d in jobs {
        if let Ok(entry) = &d.entry {
            let started = Instant::now();
            let key = (d.shard, d.id.clone());
            let outcomes = match &exec.pool {
                None => {
                    let cancel = Arc::new(AtomicBool::new(false));
                    state.cancels().insert(key.clone(), Arc::clone(&cancel));
                    let out = run_entry(entry, name, d.deliveries, cancel);
                    state.cancels().remove(&key);
                    Some(out)
                }
                Some(pool) => {
                    let out = run_entry_isolated(pool, entry, name, exec.timeout, |job| {
                        state.running().insert(key.clone(), job);
                    });
                    state.running().remove(&key);
                    out
                }
            };
            let ran = started.elapsed();
            state
                .runs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(ran);
            match outcomes {
                Some(outcomes) => complete(&mut broker, &d, &outcomes, ran, state, name),
                // Stopped: the entry was settled elsewhere, nothing to say.
                None => {
                    state.stopped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        state.held().remove(&(d.shard, d.id.clone()));
        state.busy.fetch_sub(1, Ordering::AcqRel);
        let _ = freed.send(());
    }
}

/// Completes, repeating while the outcome is unknown (each repeat is safe),
/// for at most about a minute; after that the entry is left to lapse and be
/// reclaimed.
fn complete(
    broker: &mut Broker,
    d: &Delivery,
    outcomes: &[Outcome],
    ran: Duration,
    state: &State,
    name: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut backoff = Backoff::default();
    loop {
        match broker.complete_timed(d, outcomes, ran) {
            Ok(done @ (Completion::Done { .. } | Completion::Again)) => {
                state.completed.fetch_add(1, Ordering::Relaxed);
                if outcomes.iter().any(|o| matches!(o, Outcome::Error(_))) {
                    state.failed.fetch_add(1, Ordering::Relaxed);
                    // For dashboards, after the completion and never failing it.
                    if let Completion::Done { .. } = done
                        && let Err(e) = broker.record_failures(d, outcomes)
                    {
                        eprintln!("quadriga cluster worker {name}: recording a failure: {e}");
                    }
                }
                return;
            }
            Ok(Completion::Refused) => {
                state.refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) if Instant::now() < deadline && e.kind() != ErrorKind::Protocol => {
                eprintln!("quadriga cluster worker {name}: completing {}: {e}", d.id);
                backoff.wait(&AtomicBool::new(false));
            }
            Err(e) => {
                eprintln!(
                    "quadriga cluster worker {name}: giving up completing {}: {e}",
                    d.id
                );
                return;
            }
        }
    }
}

/// The heartbeat thread: extends the held entries' leases every third of a
/// lease, stops those no longer held (cancelled, or reclaimed after a pause:
/// with process isolation their children are killed) and renews the
/// worker's record.
fn heartbeat(
    mut broker: Broker,
    state: &State,
    stop: &AtomicBool,
    mut info: WorkerInfo,
    lease: Duration,
    pool: Option<&ProcessPool>,
    limit: Option<&AtomicUsize>,
) {
    let every = (lease / 3).max(Duration::from_millis(5));
    let threads = info.concurrency.max(1);
    let mut next = Instant::now();
    let mut minute = super::workers::LastMinute::default();
    while !stop.load(Ordering::Acquire) {
        if Instant::now() >= next {
            next = Instant::now() + every;
            let held: Vec<(u16, String)> = state.held().iter().cloned().collect();
            match broker.heartbeat(&held) {
                Ok(lost) => {
                    let cancels = state.cancels();
                    for key in &lost {
                        if let Some(flag) = cancels.get(key) {
                            flag.store(true, Ordering::Relaxed);
                        }
                    }
                    drop(cancels);
                    if let Some(pool) = pool {
                        let running = state.running();
                        for key in &lost {
                            if let Some(&job) = running.get(key) {
                                pool.cancel_raw(job);
                            }
                        }
                    }
                }
                Err(e) => eprintln!("quadriga cluster worker {}: heartbeat: {e}", info.name),
            }
            info.done = state.completed.load(Ordering::Relaxed);
            if let Some(limit) = limit {
                // The slots it has now, under a live limit.
                info.concurrency = (limit.load(Ordering::Relaxed) as u32).clamp(1, threads);
            }
            info.refused = state.refused.load(Ordering::Relaxed);
            info.failed = state.failed.load(Ordering::Relaxed);
            info.done_last_minute = minute.sample(info.done);
            info.rss_bytes = super::workers::rss_bytes();
            (info.run_mean_us, info.run_max_us) = state
                .runs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .last_minute();
            let ttl = (lease * 3).max(Duration::from_secs(3));
            if let Err(e) = broker.register(&info, ttl) {
                eprintln!("quadriga cluster worker {}: record: {e}", info.name);
            }
        }
        std::thread::sleep(every.min(Duration::from_millis(50)));
    }
}

/// Doubling waits after failures, 50 ms to 2 s.
#[derive(Debug, Default)]
struct Backoff(u32);

impl Backoff {
    fn reset(&mut self) {
        self.0 = 0;
    }

    fn wait(&mut self, stop: &AtomicBool) {
        let ms = (50u64 << self.0.min(6)).min(2000);
        self.0 += 1;
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until && !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
