//! The process backend: [`ProcessPool`] and [`Process`], supervised worker
//! processes that survive crashes and really stop on timeout.
//!
//! * `worker.rs`: what a worker is (the binary re-executed) and its loop.
//! * `spawn.rs`: starting one (socket pair, process group, death signal, limits).
//! * `wire/`: the frames and messages on the socket (fuzzed), and the
//!   descriptors that travel with them.
//! * `supervisor.rs`: one thread, epoll over every worker; timeouts, crashes,
//!   respawn with back-off, recycling.
//! * `single.rs`: [`Process`], one task in one process.
//!
//! Workers find tasks by name in the task core's registry and exchange its
//! batches (`crate::task`), which know nothing of processes; descriptors
//! cross the socket through `crate::shm::passing`.
//!
//! Every system call on a worker as a process (spawning, waiting with epoll,
//! reaping, signalling its group, the SIGTERM-grace-SIGKILL escalation) goes
//! through `crate::child`, the one child-process layer, shared with the
//! `quadriga run` command.

pub(crate) mod worker;

mod notify;
#[cfg(feature = "cluster")]
mod raw;
mod single;
mod spawn;
mod supervisor;
mod wire;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use single::{Process, ProcessHandle};
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub use wire::fuzz_decode;

use crate::context::Cancellable;
use crate::error::{BuildError, TaskError};
use crate::executor::Shutdown;
use crate::handle::{self, Completer, TaskHandle};
use crate::map::{Chunk, Dispatch, Map, MapCancel, MapUnordered, Reply};
use crate::task::Task;
use crate::task::batch::Batch;
use crate::task::outcomes::Outcomes;

use supervisor::{Command, Config, Job, Sink, Supervisor, Waker};

/// A pool of worker processes that runs registered tasks, isolated: a task that
/// crashes, leaks or hangs takes down its worker, never the pool.
///
/// It answers the same calls as [`ThreadPool`](crate::ThreadPool): switching is
/// one line. Workers are this very binary, re-executed; call
/// [`quadriga::init()`](crate::init) first thing in `main` (a constructor does it
/// for you on Linux).
///
/// ```
/// use quadriga::ProcessPool;
///
/// #[quadriga::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = ProcessPool::new(2)?;
/// let squares: Vec<u64> = pool.map(square, 1..=5).map(Result::unwrap).collect();
/// assert_eq!(squares, [1, 4, 9, 16, 25]);
/// # Ok::<(), quadriga::BuildError>(())
/// ```
///
/// A worker that dies fails only the task it was running, with the signal or
/// exit code and its pid; it is replaced (with back-off against crash loops):
///
/// ```
/// #[quadriga::task]
/// fn die(code: i32) -> i32 {
///     std::process::exit(code)
/// }
///
/// let pool = quadriga::ProcessPool::new(1)?;
/// let err = pool.submit(die, 3).join().unwrap_err();
/// assert!(err.is_crashed());
/// assert_eq!(err.exit_code(), Some(3));
/// assert!(err.pid().is_some());
/// # Ok::<(), quadriga::BuildError>(())
/// ```
///
/// Dropping the pool waits for the tasks already submitted, then stops every
/// worker: no zombie, no stray process group, no leaked descriptor.
pub struct ProcessPool {
    tx: Sender<Command>,
    waker: Arc<Waker>,
    thread: Mutex<Option<JoinHandle<()>>>,
    done: Receiver<()>,
    closed: AtomicBool,
    workers: usize,
    timeout: Option<Duration>,
    retries: u32,
    max_frame: usize,
    pids: Arc<Mutex<Vec<u32>>>,
}

/// Configures and builds a [`ProcessPool`].
///
/// ```
/// use std::time::Duration;
/// use quadriga::ProcessPool;
///
/// #[quadriga::task]
/// fn warm_up() {}
///
/// let pool = ProcessPool::builder()
///     .workers(2)
///     .timeout(Duration::from_secs(30))
///     .grace(Duration::from_millis(200))
///     .retries(1)
///     .max_tasks_per_worker(1000)
///     .memory_limit(1 << 30)
///     .initializer(warm_up, ())
///     .build()?;
/// assert_eq!(pool.workers(), 2);
/// # Ok::<(), quadriga::BuildError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
#[derive(Debug, Clone)]
pub struct ProcessPoolBuilder {
    workers: Option<usize>,
    timeout: Option<Duration>,
    grace: Duration,
    retries: u32,
    max_tasks_per_worker: Option<u64>,
    memory_limit: Option<u64>,
    max_frame: usize,
    initializer: Option<(&'static str, Result<Batch, String>)>,
    program: Option<(std::ffi::OsString, Vec<std::ffi::OsString>)>,
}

impl Default for ProcessPoolBuilder {
    fn default() -> Self {
        Self {
            workers: None,
            timeout: None,
            grace: Duration::from_millis(500),
            retries: 0,
            max_tasks_per_worker: None,
            memory_limit: None,
            max_frame: wire::DEFAULT_MAX_FRAME,
            initializer: None,
            program: None,
        }
    }
}

impl ProcessPoolBuilder {
    /// Defaults: one worker per available core; no timeout; 500 ms grace; no
    /// retries, recycling or memory limit; frames of at most 256 MiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of worker processes. Zero is an error at [`build`](Self::build).
    ///
    /// There is no `auto` here, unlike [`ThreadPool::auto`](crate::ThreadPool::auto):
    /// a process pool is for CPU-bound work that must be isolated (a crash,
    /// a leak or a hang takes down only its worker), and for CPU-bound work
    /// the measured answer is the default, one worker per core. Work that
    /// waits (network, disk, sleeps) gains from many more at once, but a
    /// process each would cost its start-up and its memory where a thread
    /// or a future costs almost nothing: run it on `ThreadPool::auto()`, or
    /// on tokio with `quadriga::aio` and `Limit::auto()`. A CPU-bound job that is
    /// itself multi-threaded wants fewer workers: set them here.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// The default time limit of each task. A task past it ends as *timed out*
    /// and its worker's whole process group is killed (SIGTERM, then SIGKILL
    /// after [`grace`](Self::grace)). Override per task with
    /// [`ProcessPool::submit_timeout`].
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// How long a worker has between SIGTERM and SIGKILL.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How many times a task whose worker crashed is run again before it ends
    /// as *crashed*. Timeouts and panics are not retried.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Replace a worker after it has run this many tasks (or `map` items):
    /// against leaks in native code.
    pub fn max_tasks_per_worker(mut self, n: u64) -> Self {
        self.max_tasks_per_worker = Some(n.max(1));
        self
    }

    /// Limit each worker's address space to `bytes` (`RLIMIT_AS`). An allocation
    /// past it fails, which aborts the worker: the task ends as *crashed*.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// The largest frame (one job's inputs or outputs) either side accepts.
    pub fn max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame = bytes.clamp(1024, u32::MAX as usize);
        self
    }

    /// A task each worker runs once when it starts, before any other: load a
    /// model, open a connection, fill a cache (keep the state in a `static`).
    /// If it fails three times in a row, the pool stops and every task fails
    /// with its error.
    pub fn initializer<T: Task>(mut self, task: T, input: T::Input) -> Self {
        let _ = task;
        let mut batch = Batch::default();
        let encoded = batch
            .push(&input)
            .map(|()| batch)
            .map_err(|e| e.to_string());
        self.initializer = Some((T::NAME, encoded));
        self
    }

    /// Start workers as `program args…` instead of re-executing this binary:
    /// for a library loaded into another program (the Python package starts
    /// `python -c …`). That program must link this library and call
    /// [`ProcessPool::serve_program_worker`] early, before it starts threads;
    /// the worker's environment marks it as such a worker, not as an ordinary
    /// one, so the library's constructor does not divert it while it loads.
    ///
    /// ```
    /// use quadriga::ProcessPool;
    ///
    /// #[quadriga::task]
    /// fn pid() -> u32 {
    ///     std::process::id()
    /// }
    ///
    /// // First thing in the program: a worker serves here and never returns.
    /// ProcessPool::serve_program_worker();
    /// let exe = std::env::current_exe().unwrap();
    /// let pool = ProcessPool::builder()
    ///     .workers(1)
    ///     .worker_program(exe, ["--this-is-ignored-by-the-worker"])
    ///     .build()?;
    /// let worker = pool.submit(pid, ()).join().unwrap();
    /// assert_ne!(worker, std::process::id());
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn worker_program<S, A>(mut self, program: S, args: A) -> Self
    where
        S: Into<std::ffi::OsString>,
        A: IntoIterator,
        A::Item: Into<std::ffi::OsString>,
    {
        self.program = Some((program.into(), args.into_iter().map(Into::into).collect()));
        self
    }

    /// Starts the supervisor; workers start as it runs.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroThreads`] for zero workers; [`BuildError::Spawn`] if the
    /// supervisor could not be set up or the initializer's input could not be
    /// encoded.
    pub fn build(self) -> Result<ProcessPool, BuildError> {
        let workers = match self.workers {
            Some(0) => return Err(BuildError::ZeroThreads),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        worker::bootstrap();
        let initializer = match self.initializer {
            None => (String::new(), Batch::default()),
            Some((name, Ok(batch))) => (name.to_owned(), batch),
            Some((_, Err(e))) => {
                return Err(BuildError::Spawn(std::io::Error::other(format!(
                    "could not encode the initializer's input: {e}"
                ))));
            }
        };
        let cfg = Config {
            workers,
            spawn: spawn::SpawnConfig {
                memory_limit: self.memory_limit,
                max_frame: self.max_frame,
                program: self.program,
            },
            grace: self.grace,
            max_tasks_per_worker: self.max_tasks_per_worker,
            initializer,
        };
        let waker = Arc::new(Waker::new().map_err(BuildError::Spawn)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let pids = Arc::new(Mutex::new(Vec::new()));
        let supervisor = Supervisor::new(cfg, Arc::clone(&waker), rx, Arc::clone(&pids))
            .map_err(BuildError::Spawn)?;
        let thread = std::thread::Builder::new()
            .name("quadriga-supervisor".into())
            .spawn(move || {
                supervisor.run();
                let _ = done_tx.send(());
            })
            .map_err(BuildError::Spawn)?;
        Ok(ProcessPool {
            tx,
            waker,
            thread: Mutex::new(Some(thread)),
            done,
            closed: AtomicBool::new(false),
            workers,
            timeout: self.timeout,
            retries: self.retries,
            max_frame: self.max_frame,
            pids,
        })
    }
}

impl ProcessPool {
    /// A pool of `workers` worker processes.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroThreads`] for zero workers.
    ///
    /// ```
    /// assert!(quadriga::ProcessPool::new(0).is_err());
    /// ```
    pub fn new(workers: usize) -> Result<Self, BuildError> {
        Self::builder().workers(workers).build()
    }

    /// A builder for a configured pool.
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder::new()
    }

    /// In a program started by a pool built with
    /// [`worker_program`](ProcessPoolBuilder::worker_program): runs the worker
    /// loop and exits the process. Anywhere else it returns at once.
    pub fn serve_program_worker() {
        worker::serve_program_worker();
    }

    /// The number of workers the pool keeps running.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The process ids of the workers alive now (they change as workers are
    /// replaced).
    ///
    /// ```
    /// #[quadriga::task]
    /// fn pid() -> u32 {
    ///     std::process::id()
    /// }
    ///
    /// let pool = quadriga::ProcessPool::new(1)?;
    /// let worker = pool.submit(pid, ()).join().unwrap();
    /// assert_ne!(worker, std::process::id());
    /// assert_eq!(pool.worker_pids(), [worker]);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn worker_pids(&self) -> Vec<u32> {
        self.pids.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    // The error gives the command back so its job can be failed; it is moved
    // once per submit, and boxing it would cost an allocation instead.
    #[allow(clippy::result_large_err)]
    fn send(&self, cmd: Command) -> Result<(), Command> {
        if self.closed.load(Ordering::Acquire)
            && let Command::Submit(_) = cmd
        {
            return Err(cmd);
        }
        self.tx.send(cmd).map_err(|e| e.0)?;
        self.waker.wake();
        Ok(())
    }

    /// Runs `task(input)` in a worker process, with the pool's default time
    /// limit.
    ///
    /// ```
    /// #[quadriga::task]
    /// fn shout(s: String) -> String {
    ///     s.to_uppercase()
    /// }
    ///
    /// let pool = quadriga::ProcessPool::new(1)?;
    /// assert_eq!(pool.submit(shout, "hi".into()).join().unwrap(), "HI");
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn submit<T: Task>(&self, task: T, input: T::Input) -> TaskHandle<T::Output> {
        self.submit_with(task, input, self.timeout)
    }

    /// Runs `task(input)` with its own time limit, overriding the pool's.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[quadriga::task]
    /// fn nap(ms: u64) {
    ///     std::thread::sleep(Duration::from_millis(ms));
    /// }
    ///
    /// let pool = quadriga::ProcessPool::new(1)?;
    /// let err = pool.submit_timeout(nap, 60_000, Duration::from_millis(100)).join().unwrap_err();
    /// assert!(err.is_timed_out());
    /// // The pool carries on with a fresh worker.
    /// assert!(pool.submit(nap, 1).join().is_ok());
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn submit_timeout<T: Task>(
        &self,
        task: T,
        input: T::Input,
        limit: Duration,
    ) -> TaskHandle<T::Output> {
        self.submit_with(task, input, Some(limit))
    }

    fn submit_with<T: Task>(
        &self,
        task: T,
        input: T::Input,
        timeout: Option<Duration>,
    ) -> TaskHandle<T::Output> {
        let _ = task;
        let id = handle::next_id();
        let hook = {
            let tx = self.tx.clone();
            let waker = Arc::clone(&self.waker);
            Box::new(move || {
                if tx.send(Command::Cancel(id)).is_ok() {
                    waker.wake();
                }
            })
        };
        let (handle, completer) = handle::pair_with(id, T::NAME, Some(hook));
        let mut batch = Batch::default();
        if let Err(e) = batch.push(&input) {
            if completer.start() {
                completer.complete(Err(TaskError::codec(format!(
                    "could not encode the input: {e}"
                ))));
            }
            return handle;
        }
        let job = Job {
            id,
            task: T::NAME,
            input: batch,
            timeout,
            retries: self.retries,
            sink: Box::new(HandleSink::<T::Output> {
                completer: Some(completer),
            }),
            started: false,
        };
        if let Err(Command::Submit(job)) = self.send(Command::Submit(job)) {
            fail_job(job, &TaskError::cancelled("the pool is shut down"));
        }
        handle
    }

    /// Applies `task` to every input in worker processes; yields results in
    /// input order. Lazy, bounded and chunked like
    /// [`ThreadPool::map`](crate::ThreadPool::map). A chunk whose worker dies is
    /// run again item by item, so only the item that crashes fails (items of
    /// that chunk may run twice). With a time limit, items travel one by one so
    /// each gets its own.
    ///
    /// ```
    /// #[quadriga::task]
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let pool = quadriga::ProcessPool::new(2)?;
    /// let total: u64 = pool.map(square, 1..=1000).map(Result::unwrap).sum();
    /// assert_eq!(total, 333_833_500);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn map<T, I>(&self, task: T, inputs: I) -> Map<'_, T, I::IntoIter>
    where
        T: Task,
        I: IntoIterator<Item = T::Input>,
    {
        Map::new(self, task, inputs.into_iter())
    }

    /// Like [`map`](Self::map), yielding `(input index, result)` in completion
    /// order.
    ///
    /// ```
    /// #[quadriga::task]
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let pool = quadriga::ProcessPool::new(2)?;
    /// let mut got: Vec<_> = pool.map_unordered(square, [1, 2, 3]).map(|(i, r)| (i, r.unwrap())).collect();
    /// got.sort();
    /// assert_eq!(got, [(0, 1), (1, 4), (2, 9)]);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn map_unordered<T, I>(&self, task: T, inputs: I) -> MapUnordered<'_, T, I::IntoIter>
    where
        T: Task,
        I: IntoIterator<Item = T::Input>,
    {
        MapUnordered::new(self, task, inputs.into_iter())
    }

    /// Stops accepting work, then waits for what was submitted
    /// ([`Shutdown::Wait`]) or cancels it ([`Shutdown::Cancel`]: queued tasks
    /// never run, running ones are killed), and stops every worker. Later
    /// submissions resolve at once as cancelled.
    ///
    /// ```
    /// use quadriga::{ProcessPool, Shutdown};
    ///
    /// #[quadriga::task]
    /// fn one() -> u8 {
    ///     1
    /// }
    ///
    /// let pool = ProcessPool::new(1)?;
    /// let h = pool.submit(one, ());
    /// pool.shutdown(Shutdown::Wait);
    /// assert_eq!(h.join().unwrap(), 1);
    /// assert!(pool.worker_pids().is_empty());
    /// assert!(pool.submit(one, ()).join().unwrap_err().is_cancelled());
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn shutdown(&self, mode: Shutdown) {
        self.shutdown_timeout(mode, None);
    }

    /// [`shutdown`](Self::shutdown) that waits at most `timeout`; returns whether
    /// the pool has fully stopped.
    pub fn shutdown_timeout(&self, mode: Shutdown, timeout: Option<Duration>) -> bool {
        self.closed.store(true, Ordering::Release);
        let _ = self.tx.send(Command::Shutdown(mode));
        self.waker.wake();
        let stopped = match timeout {
            None => self.done.recv().is_ok() || self.done.is_empty(),
            Some(t) => match self.done.recv_timeout(t) {
                Ok(()) => true,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => true,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => false,
            },
        };
        if stopped
            && let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            let _ = thread.join();
        }
        stopped
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl<T: Task> Dispatch<T> for ProcessPool {
    fn dispatch(&self, chunk: Chunk<T>) {
        let Chunk {
            base,
            mut items,
            out,
            cancel,
            reply,
            ..
        } = chunk;
        let mut batch = Batch::default();
        let mut encode_errors = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Err(e) = batch.push(item) {
                batch.push_raw(&[], &[]);
                encode_errors.push((
                    i,
                    TaskError::codec(format!("could not encode the input: {e}")),
                ));
            }
        }
        items.clear();
        let job = Job {
            id: handle::next_id(),
            task: T::NAME,
            input: batch,
            timeout: self.timeout,
            retries: self.retries,
            sink: Box::new(ChunkSink::<T::Input, T::Output> {
                reply: Some(reply),
                cancel,
                base,
                encode_errors,
                spare: items,
                out,
            }),
            started: false,
        };
        if let Err(Command::Submit(job)) = self.send(Command::Submit(job)) {
            fail_job(job, &TaskError::cancelled("the pool is shut down"));
        }
    }

    fn parallelism(&self) -> usize {
        self.workers
    }

    fn max_chunk(&self) -> Option<usize> {
        // With a time limit each item must be its own job, to get its own clock.
        self.timeout.map(|_| 1)
    }

    fn target_chunk(&self) -> Duration {
        // A process round trip costs tens of microseconds: aim for chunks of
        // about a millisecond so it stays near 1% of the work.
        Duration::from_millis(1)
    }
}

/// Ends a job that never reached the supervisor.
fn fail_job(job: Job, err: &TaskError) {
    let outcomes = Outcomes::all_failed(job.input.len(), err);
    let mut sink = job.sink;
    if job.started || sink.start() {
        sink.finish(outcomes, Duration::ZERO);
    }
}

/// Decodes one output in place, containing a panicking `Deserialize` as a
/// codec error.
fn decode<O: DeserializeOwned>(raw: Result<&[u8], Option<&TaskError>>) -> Result<O, TaskError> {
    let bytes = match raw {
        Ok(bytes) => bytes,
        Err(Some(err)) => return Err(err.clone()),
        Err(None) => {
            return Err(TaskError::codec(
                "a worker sent fewer outputs than it reported",
            ));
        }
    };
    std::panic::catch_unwind(|| postcard::from_bytes::<O>(bytes))
        .map_err(|_| TaskError::codec("decoding the output panicked"))?
        .map_err(|e| TaskError::codec(format!("could not decode the output: {e}")))
}

/// Delivers a `submit`'s outcome to its handle.
struct HandleSink<O> {
    completer: Option<Completer<O>>,
}

impl<O: Serialize + DeserializeOwned + Send + 'static> Sink for HandleSink<O> {
    fn start(&mut self) -> bool {
        self.completer.as_ref().is_some_and(Completer::start)
    }

    fn finish(mut self: Box<Self>, outcomes: Outcomes, _elapsed: Duration) {
        let result = match outcomes.iter().next() {
            Some(raw) => decode(raw),
            None => Err(TaskError::codec("no outcome for the task")),
        };
        if let Some(completer) = self.completer.take() {
            completer.complete(result);
        }
    }
}

/// Delivers a `map` chunk's outcomes to the map.
struct ChunkSink<I, O> {
    reply: Option<Reply<I, O>>,
    cancel: Arc<MapCancel>,
    base: u64,
    encode_errors: Vec<(usize, TaskError)>,
    /// The chunk's emptied input buffer, to hand back for reuse.
    spare: Vec<I>,
    /// A buffer for the results, from an earlier chunk.
    out: Vec<Result<O, TaskError>>,
}

impl<I, O> Sink for ChunkSink<I, O>
where
    I: Send + 'static,
    O: Serialize + DeserializeOwned + Send + 'static,
{
    fn start(&mut self) -> bool {
        // A dropped map: answer as cancelled without running (the reply does).
        !self.cancel.is_cancelled()
    }

    fn finish(mut self: Box<Self>, outcomes: Outcomes, elapsed: Duration) {
        let Some(reply) = self.reply.take() else {
            return;
        };
        let name = reply.name();
        let base = self.base;
        let mut out = std::mem::take(&mut self.out);
        out.reserve(outcomes.len());
        // Decoded straight from the frame's bytes, then reversed: the map
        // wants results in reverse input order.
        for (i, raw) in outcomes.iter().enumerate() {
            out.push(decode(raw).map_err(|e| e.with_task(name, None).with_item(base + i as u64)));
        }
        out.reverse();
        let n = out.len();
        for (i, err) in self.encode_errors.drain(..) {
            if let Some(slot) = n.checked_sub(i + 1).and_then(|at| out.get_mut(at)) {
                *slot = Err(err.with_task(name, None).with_item(base + i as u64));
            }
        }
        reply.send(elapsed, out, std::mem::take(&mut self.spare));
    }
}

crate::executor::forward_executor!(ProcessPool);

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.shutdown(Shutdown::Wait);
    }
}

impl fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPool")
            .field("workers", &self.workers)
            .field("timeout", &self.timeout)
            .field("max_frame", &self.max_frame)
            .field("shut_down", &self.is_shut_down())
            .finish_non_exhaustive()
    }
}
