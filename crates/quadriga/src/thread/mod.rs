//! The thread backend: [`ThreadPool`], on rayon-core's work-stealing scheduler.
//!
//! rayon-core owns the threads and the deques; this module adds what a task pool
//! needs on top: handles, panics as data, cancellation tokens, the admission
//! [`gate`] for shutdown, and the shared `map` engine's dispatcher.

mod auto;
mod gate;
mod insights;
mod scope;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use insights::{Insights, WorkerInsights};
pub use scope::Scope;

use crate::context::{self, CancelToken};
use crate::error::{BuildError, TaskError};
use crate::executor::Shutdown;
use crate::handle::{self, Completer, TaskHandle};
use crate::map::{self, Chunk, Dispatch, Job, Map, MapCancel, MapUnordered};
use crate::panic::{self, InTask};
use crate::task::Task;

use crate::adapt::LimitDecision;
use auto::Auto;
use gate::Gate;
use insights::Stats;

/// State shared by the pool and its running jobs.
#[derive(Debug)]
struct Shared {
    gate: Gate,
    /// Set by `Shutdown::Cancel`: queued tasks are skipped, running ones see it
    /// through their token.
    cancelled: Arc<AtomicBool>,
    /// What each thread did, for [`ThreadPool::insights`].
    stats: Stats,
}

/// A pool of threads that runs tasks, closures and parallel maps.
///
/// Threads give true parallelism in Rust (there is no GIL): this is the backend
/// for CPU-bound Rust code and for blocking I/O. Scheduling is rayon-core's work
/// stealing.
///
/// ```
/// use quadriga::ThreadPool;
///
/// #[quadriga::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = ThreadPool::new(4)?;
/// let squares: Vec<u64> = pool.map(square, 1..=5).map(Result::unwrap).collect();
/// assert_eq!(squares, [1, 4, 9, 16, 25]);
/// # Ok::<(), quadriga::BuildError>(())
/// ```
///
/// Dropping the pool lets tasks already submitted run to completion in the
/// background (their handles still resolve); [`shutdown`](Self::shutdown) waits
/// for them, or cancels them.
pub struct ThreadPool {
    rayon: rayon_core::ThreadPool,
    shared: Arc<Shared>,
    threads: usize,
    /// The admission of a self-sizing pool ([`ThreadPool::auto`]).
    auto: Option<Arc<Auto>>,
}

/// Configures and builds a [`ThreadPool`].
///
/// ```
/// use quadriga::ThreadPool;
///
/// let pool = ThreadPool::builder()
///     .threads(2)
///     .name("resize")
///     .stack_size(4 << 20)
///     .build()?;
/// assert_eq!(pool.threads(), 2);
/// let name = pool.spawn(|| std::thread::current().name().map(str::to_owned)).join().unwrap();
/// assert!(name.unwrap().starts_with("resize-"));
/// # Ok::<(), quadriga::BuildError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
#[derive(Debug, Clone)]
pub struct ThreadPoolBuilder {
    threads: Option<usize>,
    name: String,
    stack_size: Option<usize>,
    auto: bool,
    max_threads: Option<usize>,
}

impl Default for ThreadPoolBuilder {
    fn default() -> Self {
        Self {
            threads: None,
            name: "quadriga".to_owned(),
            stack_size: None,
            auto: false,
            max_threads: None,
        }
    }
}

impl ThreadPoolBuilder {
    /// A builder with the defaults: one thread per available core, threads named
    /// `quadriga-N`, the platform's stack size.
    ///
    /// ```
    /// let pool = quadriga::ThreadPoolBuilder::new().build()?;
    /// assert!(pool.threads() >= 1);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of threads. Zero is an error at [`build`](Self::build).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self.auto = false;
        self
    }

    /// Lets measurement choose how many threads run tasks at once, as
    /// [`ThreadPool::auto`] does: about one per core for CPU-bound tasks, more
    /// while throughput keeps rising for tasks that wait (blocking I/O,
    /// sleeps), at most [`max_threads`](Self::max_threads).
    ///
    /// ```
    /// let pool = quadriga::ThreadPool::builder().auto().max_threads(32).build()?;
    /// assert!(pool.is_auto());
    /// assert_eq!(pool.max_threads(), 32);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn auto(mut self) -> Self {
        self.auto = true;
        self
    }

    /// The most threads an [`auto`](Self::auto) pool may run at once (default
    /// 256, and no more than free memory allows for their stacks). Zero is an
    /// error at [`build`](Self::build).
    pub fn max_threads(mut self, max: usize) -> Self {
        self.max_threads = Some(max);
        self
    }

    /// The threads' name prefix: threads are named `{name}-{index}`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The threads' stack size in bytes.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Starts the threads.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroThreads`] if zero threads were asked for;
    /// [`BuildError::Spawn`] if the system refused to start a thread.
    pub fn build(self) -> Result<ThreadPool, BuildError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let (threads, auto) = if self.auto {
            let max = match self.max_threads {
                Some(0) => return Err(BuildError::ZeroThreads),
                Some(n) => n,
                None => auto::DEFAULT_MAX,
            };
            (max, Some(Arc::new(Auto::new(cores, max))))
        } else {
            match self.threads {
                Some(0) => return Err(BuildError::ZeroThreads),
                Some(n) => (n, None),
                None => (cores, None),
            }
        };
        // The panic hook only: diverting a worker process is the process
        // backend's job (its constructor in `.init_array`, which Linux's loaders
        // run before `main`, and `ProcessPool::build`), not a thread pool's.
        crate::panic::install_hook();
        let name = self.name;
        let shared = Arc::new(Shared {
            gate: Gate::new(),
            cancelled: Arc::new(AtomicBool::new(false)),
            stats: Stats::new(threads),
        });
        let started = Arc::clone(&shared);
        let mut builder = rayon_core::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("{name}-{i}"))
            .start_handler(move |i| started.stats.ready(i));
        if let Some(bytes) = self.stack_size {
            builder = builder.stack_size(bytes);
        }
        let rayon = builder
            .build()
            .map_err(|e| BuildError::Spawn(std::io::Error::other(e.to_string())))?;
        Ok(ThreadPool {
            rayon,
            shared,
            threads,
            auto,
        })
    }
}

impl ThreadPool {
    /// A pool of `threads` threads.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroThreads`] for `threads == 0`.
    ///
    /// ```
    /// let pool = quadriga::ThreadPool::new(2)?;
    /// assert_eq!(pool.threads(), 2);
    /// assert!(quadriga::ThreadPool::new(0).is_err());
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn new(threads: usize) -> Result<Self, BuildError> {
        Self::builder().threads(threads).build()
    }

    /// A pool that sizes itself by measurement, for work that blocks (file
    /// and network I/O, sleeps, calls into blocking libraries) or whose nature
    /// is unknown: it starts at one thread per core, keeps that for CPU-bound
    /// tasks, and runs more at once while throughput keeps rising, on the same
    /// controller as `quadriga run -j auto` ([`adapt`](crate::adapt)). It
    /// holds up to [`max_threads`](Self::max_threads) threads (256, fewer if
    /// memory is short) but lets only [`threads`](Self::threads) run tasks at
    /// a time; [`decisions`](Self::decisions) says why.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[quadriga::task]
    /// fn fetch(i: u32) -> u32 {
    ///     std::thread::sleep(Duration::from_millis(20)); // a blocking call
    ///     i
    /// }
    ///
    /// let pool = quadriga::ThreadPool::auto()?;
    /// let got: Vec<u32> = pool.map(fetch, 0..64).collect::<Result<_, _>>().unwrap();
    /// assert_eq!(got.len(), 64);
    /// for d in pool.decisions() {
    ///     println!("{d}");
    /// }
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`BuildError::Spawn`] if the system refused to start a thread.
    pub fn auto() -> Result<Self, BuildError> {
        Self::builder().auto().build()
    }

    /// A builder for a configured pool.
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::new()
    }

    /// The number of threads that run tasks at once: fixed, or for an
    /// [`auto`](Self::auto) pool the number measurement chose so far.
    pub fn threads(&self) -> usize {
        match &self.auto {
            Some(auto) => auto.limit(),
            None => self.threads,
        }
    }

    /// The most threads the pool may run at once: [`threads`](Self::threads),
    /// or an [`auto`](Self::auto) pool's maximum.
    pub fn max_threads(&self) -> usize {
        self.threads
    }

    /// Whether the pool sizes itself ([`ThreadPool::auto`]).
    pub fn is_auto(&self) -> bool {
        self.auto.is_some()
    }

    /// An [`auto`](Self::auto) pool's changes of size so far, oldest first,
    /// each with the measurement behind it (as `quadriga run -j auto -v`
    /// prints them); empty for a fixed pool.
    ///
    /// ```
    /// let pool = quadriga::ThreadPool::builder().auto().build()?;
    /// let start = &pool.decisions()[0];
    /// assert_eq!(start.to, pool.threads());
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn decisions(&self) -> Vec<LimitDecision> {
        self.auto.as_ref().map_or_else(Vec::new, |a| a.decisions())
    }

    /// What each thread has done so far: tasks, busy and idle time, start-up,
    /// mean and longest task. `println!("{}", pool.insights())` prints a
    /// summary table.
    ///
    /// ```
    /// let pool = quadriga::ThreadPool::new(2)?;
    /// pool.spawn(|| std::thread::sleep(std::time::Duration::from_millis(5))).join().unwrap();
    /// let insights = pool.insights();
    /// assert_eq!(insights.tasks(), 1);
    /// assert_eq!(insights.workers.len(), 2);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn insights(&self) -> Insights {
        self.shared.stats.insights(self.threads())
    }

    /// Runs `job` on the pool: at once, or through an auto pool's admission.
    fn start<F: FnOnce() + Send + 'static>(&self, job: F) {
        match &self.auto {
            None => self.rayon.spawn(job),
            Some(auto) => {
                if let Some((job, started)) = auto.admit(Box::new(job)) {
                    let auto = Arc::clone(auto);
                    self.rayon.spawn(move || auto.run(job, started));
                }
            }
        }
    }

    /// Runs `task(input)` on the pool and returns its handle.
    ///
    /// After [`shutdown`](Self::shutdown) the handle resolves at once as
    /// cancelled.
    ///
    /// ```
    /// #[quadriga::task]
    /// fn add(a: i64, b: i64) -> i64 {
    ///     a + b
    /// }
    ///
    /// let pool = quadriga::ThreadPool::new(2)?;
    /// assert_eq!(pool.submit(add, (2, 40)).join().unwrap(), 42);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn submit<T: Task>(&self, task: T, input: T::Input) -> TaskHandle<T::Output> {
        let (handle, completer) = handle::pair(T::NAME);
        self.launch(completer, move || task.run(input));
        handle
    }

    /// Runs a closure on the pool and returns its handle. A panic in `f` ends the
    /// task as `Panicked`; the pool carries on.
    ///
    /// ```
    /// let pool = quadriga::ThreadPool::new(2)?;
    /// let h = pool.spawn(|| "hello".len());
    /// assert_eq!(h.join().unwrap(), 5);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    ///
    /// The closure runs on another thread, so it must be `Send`:
    ///
    /// ```compile_fail,E0277
    /// let pool = quadriga::ThreadPool::new(1).unwrap();
    /// let shared = std::rc::Rc::new(5);
    /// pool.spawn(move || *shared); // error: `Rc<i32>` cannot be sent between threads
    /// ```
    ///
    /// and `'static`, since it may outlive the caller's stack (borrow with
    /// [`scope`](Self::scope) instead):
    ///
    /// ```compile_fail,E0373
    /// let pool = quadriga::ThreadPool::new(1).unwrap();
    /// let local = vec![1, 2, 3];
    /// let h = pool.spawn(|| local.len()); // error: `local` does not live long enough
    /// # drop(local);
    /// ```
    ///
    /// Its result must be `Send` too:
    ///
    /// ```compile_fail,E0277
    /// let pool = quadriga::ThreadPool::new(1).unwrap();
    /// let h = pool.spawn(|| std::rc::Rc::new(1)); // error: `Rc` is not `Send`
    /// ```
    pub fn spawn<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (handle, completer) = handle::pair(std::any::type_name::<F>());
        self.launch(completer, move || Ok(f()));
        handle
    }

    fn launch<R, F>(&self, completer: Completer<R>, f: F)
    where
        R: Send + 'static,
        F: FnOnce() -> Result<R, TaskError> + Send + 'static,
    {
        if !self.shared.gate.enter() {
            if completer.start() {
                completer.complete(Err(TaskError::cancelled("the pool is shut down")));
            }
            return;
        }
        let shared = Arc::clone(&self.shared);
        self.start(move || {
            if shared.cancelled.load(Ordering::Relaxed) {
                if completer.start() {
                    completer.complete(Err(TaskError::cancelled(
                        "the pool was shut down before the task started",
                    )));
                }
            } else if completer.start() {
                let token = CancelToken::new(
                    Some(completer.cancellable()),
                    Some(Arc::clone(&shared.cancelled)),
                );
                let timing = shared.stats.begin(rayon_core::current_thread_index());
                let result = {
                    let _ctx = context::Enter::new(token);
                    let _in_task = InTask::enter();
                    panic::catch(f)
                };
                shared.stats.end(timing, 1);
                completer.complete(result.and_then(|r| r));
            }
            shared.gate.leave();
        });
    }

    /// Applies `task` to every input in parallel and yields the results **in
    /// input order**.
    ///
    /// Lazy and bounded: inputs are pulled only as results are consumed (a few
    /// chunks ahead), so an infinite iterator is fine and memory stays flat.
    /// Chunked automatically: tiny tasks travel in large chunks, slow ones one
    /// by one. Each item is its own outcome: a panicking item does not lose the
    /// others.
    ///
    /// ```
    /// #[quadriga::task]
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let pool = quadriga::ThreadPool::new(2)?;
    /// // An infinite input: only what is taken is computed (plus a few chunks).
    /// let first: Vec<u64> = pool.map(square, 1..).take(5).map(Result::unwrap).collect();
    /// assert_eq!(first, [1, 4, 9, 16, 25]);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn map<T, I>(&self, task: T, inputs: I) -> Map<'_, T, I::IntoIter>
    where
        T: Task,
        I: IntoIterator<Item = T::Input>,
    {
        Map::new(self, task, inputs.into_iter())
    }

    /// Like [`map`](Self::map), but yields `(input index, result)` as results
    /// complete, in no particular order.
    ///
    /// ```
    /// #[quadriga::task]
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let pool = quadriga::ThreadPool::new(2)?;
    /// let mut got: Vec<(usize, u64)> =
    ///     pool.map_unordered(square, [3, 4, 5]).map(|(i, r)| (i, r.unwrap())).collect();
    /// got.sort();
    /// assert_eq!(got, [(0, 9), (1, 16), (2, 25)]);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn map_unordered<T, I>(&self, task: T, inputs: I) -> MapUnordered<'_, T, I::IntoIter>
    where
        T: Task,
        I: IntoIterator<Item = T::Input>,
    {
        MapUnordered::new(self, task, inputs.into_iter())
    }

    /// Runs `op` with a [`Scope`] whose tasks may borrow from the caller's stack;
    /// returns once every task spawned in it has finished.
    ///
    /// ```
    /// let pool = quadriga::ThreadPool::new(2)?;
    /// let words = vec!["a".to_string(), "bb".to_string(), "ccc".to_string()];
    /// let total: usize = pool.scope(|s| {
    ///     let handles: Vec<_> = words.iter().map(|w| s.spawn(move |_| w.len())).collect();
    ///     handles.into_iter().map(|h| h.join().unwrap()).sum()
    /// });
    /// assert_eq!(total, 6);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'_, 'scope>) -> R + Send,
        R: Send,
    {
        let cancelled = Arc::clone(&self.shared.cancelled);
        self.rayon.scope(move |s| op(&Scope::new(s, cancelled)))
    }

    /// Stops accepting work, then waits for what was submitted
    /// ([`Shutdown::Wait`]) or cancels it ([`Shutdown::Cancel`]: pending tasks
    /// never run, running tasks see their token cancelled) and waits for the
    /// running ones to return.
    ///
    /// Later submissions resolve at once as cancelled. Called from one of the
    /// pool's own threads it does not wait (that would wait for itself).
    ///
    /// ```
    /// use quadriga::{Shutdown, ThreadPool};
    ///
    /// let pool = ThreadPool::new(2)?;
    /// let h = pool.spawn(|| 1);
    /// pool.shutdown(Shutdown::Wait);
    /// assert!(h.is_finished());
    /// assert!(pool.spawn(|| 2).join().unwrap_err().is_cancelled());
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn shutdown(&self, mode: Shutdown) {
        self.shutdown_timeout(mode, None);
    }

    /// [`shutdown`](Self::shutdown) that waits at most `timeout`; returns whether
    /// every task has finished.
    ///
    /// ```
    /// use std::time::Duration;
    /// use quadriga::{Shutdown, ThreadPool};
    ///
    /// let pool = ThreadPool::new(1)?;
    /// let (started, is_started) = std::sync::mpsc::channel();
    /// // A task that ignores its cancellation token.
    /// let stubborn = pool.spawn(move || {
    ///     started.send(()).unwrap();
    ///     std::thread::sleep(Duration::from_millis(300));
    ///     "finished anyway"
    /// });
    /// let queued = pool.spawn(|| "never runs");
    /// is_started.recv().unwrap();
    /// assert!(!pool.shutdown_timeout(Shutdown::Cancel, Some(Duration::from_millis(10))));
    /// assert!(pool.shutdown_timeout(Shutdown::Wait, Some(Duration::from_secs(30))));
    /// assert_eq!(stubborn.join().unwrap(), "finished anyway");
    /// assert!(queued.join().unwrap_err().is_cancelled());
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn shutdown_timeout(&self, mode: Shutdown, timeout: Option<Duration>) -> bool {
        if mode == Shutdown::Cancel {
            self.shared.cancelled.store(true, Ordering::Relaxed);
        }
        if self.rayon.current_thread_index().is_some() {
            self.shared.gate.close();
            return false;
        }
        self.shared.gate.close_and_wait(timeout)
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    ///
    /// ```
    /// let pool = quadriga::ThreadPool::new(1)?;
    /// assert!(!pool.is_shut_down());
    /// pool.shutdown(quadriga::Shutdown::Wait);
    /// assert!(pool.is_shut_down());
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn is_shut_down(&self) -> bool {
        self.shared.gate.is_closed()
    }
}

/// What the lanes of an auto pool's in-place map share.
struct AutoLanes<'p, 'a> {
    pool: &'p ThreadPool,
    auto: &'p Arc<Auto>,
    cancel: &'p Arc<MapCancel>,
    rx: crossbeam_channel::Receiver<Box<dyn Job + 'a>>,
    /// Lanes running now.
    active: std::sync::atomic::AtomicUsize,
}

impl ThreadPool {
    /// `run_jobs` on an auto pool: lanes as for a fixed pool, as many as the
    /// measured limit, each job timed and fed to the controller; a lane that
    /// sees the limit above the lanes running starts more (see `grow`), and
    /// one that sees it below ends (never the last).
    fn run_jobs_auto<'a>(
        &self,
        auto: &Arc<Auto>,
        cancel: &Arc<MapCancel>,
        next: &mut dyn FnMut() -> Option<Box<dyn Job + 'a>>,
    ) {
        let (tx, rx) = if self.rayon.current_thread_index().is_some() {
            crossbeam_channel::unbounded::<Box<dyn Job + 'a>>()
        } else {
            crossbeam_channel::bounded::<Box<dyn Job + 'a>>(2 * self.threads.clamp(1, 256))
        };
        let lanes = AutoLanes {
            pool: self,
            auto,
            cancel,
            rx,
            active: std::sync::atomic::AtomicUsize::new(0),
        };
        // One lane to begin with; it starts the others (see `grow`).
        lanes.active.store(1, Ordering::Relaxed);
        self.rayon.in_place_scope(|s| {
            s.spawn(|s| auto_lane(&lanes, s));
            while let Some(job) = next() {
                // The lanes hold a receiver until this sender is dropped.
                let _ = tx.send(job);
            }
            drop(tx);
        });
    }
}

/// One lane of [`ThreadPool::run_jobs_auto`].
fn auto_lane<'s, 'a: 's>(lanes: &'s AutoLanes<'s, 'a>, s: &rayon_core::Scope<'s>) {
    grow(lanes, s);
    let token = CancelToken::new(
        Some(Arc::clone(lanes.cancel) as Arc<dyn context::Cancellable>),
        Some(Arc::clone(&lanes.pool.shared.cancelled)),
    );
    let _ctx = context::Enter::new(token.clone());
    let _in_task = InTask::enter();
    let stats = &lanes.pool.shared.stats;
    for mut job in lanes.rx.iter() {
        let timing = stats.begin(rayon_core::current_thread_index());
        let len = job.len() as u64;
        let limit = lanes.auto.run_counted(|| job.run(token.is_cancelled()));
        stats.end(timing, len);
        grow(lanes, s);
        let active = lanes.active.load(Ordering::Relaxed);
        if active > limit.max(1)
            && lanes
                .active
                .compare_exchange(active, active - 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
    }
}

/// Starts up to two more lanes while fewer run than the limit. Each new lane
/// does the same as it starts, so the lanes grow as a tree: rayon-core wakes
/// a sleeping thread per job pushed, but a thread that takes a lane never
/// looks for more work, so lanes pushed in one burst would wait.
fn grow<'s, 'a: 's>(lanes: &'s AutoLanes<'s, 'a>, s: &rayon_core::Scope<'s>) {
    let limit = lanes.auto.limit();
    let mut active = lanes.active.load(Ordering::Relaxed);
    let mut started = 0;
    while active < limit && started < 2 {
        match lanes.active.compare_exchange(
            active,
            active + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                s.spawn(|s| auto_lane(lanes, s));
                active += 1;
                started += 1;
            }
            Err(now) => active = now,
        }
    }
}

impl<T: Task> Dispatch<T> for ThreadPool {
    fn dispatch(&self, chunk: Chunk<T>) {
        let Chunk {
            task,
            base,
            mut items,
            mut out,
            cancel,
            reply,
        } = chunk;
        if !self.shared.gate.enter() {
            reply.fail_all(&TaskError::cancelled("the pool is shut down"));
            return;
        }
        let shared = Arc::clone(&self.shared);
        self.start(move || {
            if reply.is_abandoned() {
                // The map was dropped: skip the work and build no answer.
                drop(reply);
                shared.gate.leave();
                return;
            }
            let started = Instant::now();
            let timing = shared.stats.begin(rayon_core::current_thread_index());
            let len = items.len() as u64;
            {
                let token = CancelToken::new(
                    Some(Arc::clone(&cancel) as Arc<dyn context::Cancellable>),
                    Some(Arc::clone(&shared.cancelled)),
                );
                let skip = token.is_cancelled();
                let _ctx = context::Enter::new(token);
                let _in_task = InTask::enter();
                map::run_items(task, base, &mut items, &mut out, skip);
            }
            shared.stats.end(timing, len);
            reply.send(started.elapsed(), out, items);
            shared.gate.leave();
        });
    }

    fn parallelism(&self) -> usize {
        self.threads()
    }

    fn runs_jobs(&self) -> bool {
        true
    }

    fn collect_lanes(&self) -> usize {
        // An auto pool may grow to its maximum during one collect.
        self.threads
    }

    fn run_jobs<'a>(
        &self,
        cancel: &Arc<MapCancel>,
        next: &mut dyn FnMut() -> Option<Box<dyn Job + 'a>>,
    ) {
        if !self.shared.gate.enter() {
            while let Some(mut job) = next() {
                job.run(true);
            }
            return;
        }
        if let Some(auto) = &self.auto {
            self.run_jobs_auto(auto, cancel, next);
            self.shared.gate.leave();
            return;
        }
        // One lane per thread that may run, fed through a channel as this
        // thread pulls the jobs: the lanes start on the first job while the
        // next ones are pulled, and a lane that finishes early takes the next.
        let lanes = self.threads.max(1);
        // A few jobs queued per lane keep the lanes fed and bound the inputs
        // pulled ahead; on one of the pool's own threads, which the lanes may
        // need, the queue is unbounded so that pulling never waits for them.
        let (tx, rx) = if self.rayon.current_thread_index().is_some() {
            crossbeam_channel::unbounded::<Box<dyn Job + 'a>>()
        } else {
            crossbeam_channel::bounded::<Box<dyn Job + 'a>>(2 * lanes)
        };
        let token = || {
            CancelToken::new(
                Some(Arc::clone(cancel) as Arc<dyn context::Cancellable>),
                Some(Arc::clone(&self.shared.cancelled)),
            )
        };
        self.rayon.in_place_scope(|s| {
            for _ in 0..lanes {
                let rx = rx.clone();
                s.spawn(move |_| {
                    let token = token();
                    let _ctx = context::Enter::new(token.clone());
                    let _in_task = InTask::enter();
                    for mut job in rx {
                        let timing = self.shared.stats.begin(rayon_core::current_thread_index());
                        let len = job.len() as u64;
                        job.run(token.is_cancelled());
                        self.shared.stats.end(timing, len);
                    }
                });
            }
            drop(rx);
            // This thread pulls and hands out; it runs nothing itself, so the
            // pool's size is the number of tasks running at once.
            while let Some(job) = next() {
                // The lanes hold a receiver until this sender is dropped.
                let _ = tx.send(job);
            }
            drop(tx);
        });
        self.shared.gate.leave();
    }

    fn help(&self) -> bool {
        // A map consumed on one of our own threads must not block it: run queued
        // work instead (which may be the very chunk it waits for, queued in
        // rayon-core or in an auto pool's admission).
        if self.rayon.current_thread_index().is_none() {
            return false;
        }
        if matches!(rayon_core::yield_now(), Some(rayon_core::Yield::Executed)) {
            return true;
        }
        match self.auto.as_ref().and_then(|a| a.steal()) {
            Some(job) => {
                job();
                true
            }
            None => false,
        }
    }
}

crate::executor::forward_executor!(ThreadPool);

impl Drop for ThreadPool {
    fn drop(&mut self) {
        // Refuse new work; what was admitted runs on (rayon-core lets its threads
        // finish queued jobs before they exit), so every handle still resolves.
        self.shared.gate.close();
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads())
            .field("auto", &self.is_auto())
            .field("shut_down", &self.is_shut_down())
            .finish_non_exhaustive()
    }
}
