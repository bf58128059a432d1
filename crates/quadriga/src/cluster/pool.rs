//! [`ClusterPool`]: the client side of the cluster backend, answering the same
//! calls as the local pools ([`Executor`](crate::Executor)).
//!
//! `submit` enqueues a one-item entry; `map` runs on the shared map engine,
//! each chunk one entry of many items. Inputs are encoded with the task
//! registry's codec and refused before anything is sent when they hold IPC
//! objects (a descriptor cannot travel to another host) or make an entry too
//! large. The receiver thread (`receiver.rs`) resolves handles and chunks.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::broker::Broker;
use super::config::BrokerConfig;
use super::entry::{Entry, MAX_ITEMS};
use super::error::{Error, ErrorKind};
use super::outcome::Outcome;
use super::receiver::{self, Collect, Dest, Retry, Table, Waiting};
use super::sender::{self, Job};
use crate::error::TaskError;
use crate::executor::Shutdown;
use crate::handle::{self, Completer, TaskHandle};
use crate::map::{Chunk, Dispatch, Map, MapUnordered, Reply};
use crate::task::Task;
use crate::task::batch::Batch;

/// Configures and connects a [`ClusterPool`].
///
/// ```no_run
/// # #[cfg(feature = "cluster")] {
/// use std::time::Duration;
/// use quadriga::cluster::ClusterPool;
///
/// let pool = ClusterPool::builder("redis://127.0.0.1:6379/")
///     .queue("squares")
///     .max_in_flight(32)
///     .lease(Duration::from_secs(10))
///     .result_ttl(Duration::from_secs(3600))
///     .retries_on_worker_loss(3)
///     .retries_on_task_error(1)
///     .retry_backoff(Duration::from_millis(500))
///     .build()?;
/// # }
/// # Ok::<(), quadriga::cluster::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClusterPoolBuilder {
    config: BrokerConfig,
    max_in_flight: usize,
    retries_on_task_error: u32,
    retry_backoff: Duration,
}

impl ClusterPoolBuilder {
    /// The queue the tasks go to (default `default`); workers serve it.
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.config = self.config.queue(name);
        self
    }

    /// The key prefix (default `quadriga`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config = self.config.prefix(prefix);
        self
    }

    /// How many shards (streams) the queue has (default 1).
    pub fn shards(mut self, shards: u16) -> Self {
        self.config = self.config.shards(shards);
        self
    }

    /// How many entries (a map chunk is one) each `map` keeps on the broker
    /// and unanswered: about `2 × n + 2` (default 16).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// The lease: how long a worker may go silent before its tasks are
    /// reclaimed by another (default 10 s). Workers apply their own.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config = self.config.lease(lease);
        self
    }

    /// How long outcomes are kept under their task ids (default 1 day).
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.config = self.config.result_ttl(ttl);
        self
    }

    /// How many times a task whose worker was lost runs again before it ends
    /// `lost` (default 3). The sweeping worker applies the limit: configure
    /// workers with the same number
    /// ([`WorkerBuilder::retries_on_worker_loss`](super::WorkerBuilder::retries_on_worker_loss)).
    pub fn retries_on_worker_loss(mut self, n: u32) -> Self {
        self.config = self.config.max_deliveries(u64::from(n) + 1);
        self
    }

    /// How many times a task that failed or panicked is run again, under a
    /// new id, before its error is returned (default 0).
    pub fn retries_on_task_error(mut self, n: u32) -> Self {
        self.retries_on_task_error = n;
        self
    }

    /// How long the first retry after a task error waits, doubling for each
    /// later one up to a minute (default 500 ms). The waiting task is held
    /// by the broker as a delayed task, not by this client or a worker.
    pub fn retry_backoff(mut self, first: Duration) -> Self {
        self.retry_backoff = first;
        self
    }

    /// The largest entry (a task's input, or a map chunk's) sent to the
    /// broker, encoded (default 16 MiB). Larger inputs fail as codec errors
    /// before anything is sent; larger chunks are split.
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.config = self.config.max_entry_bytes(bytes);
        self
    }

    /// How long a connection attempt may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.connect_timeout(timeout);
        self
    }

    /// Refuse a broker that does not persist writes (default: warn on
    /// standard error only).
    pub fn require_durable(mut self, yes: bool) -> Self {
        self.config = self.config.require_durable(yes);
        self
    }

    /// Every broker setting at once (URL, queue, limits), replacing those set
    /// so far.
    pub fn config(mut self, config: BrokerConfig) -> Self {
        self.config = config;
        self
    }

    /// Connects, reads the broker's durability (warning when it does not
    /// persist writes) and starts the receiver thread.
    ///
    /// # Errors
    ///
    /// The broker is unreachable (within the connect timeout), refuses the
    /// credentials, is not durable while that is required, or the
    /// configuration is invalid.
    pub fn build(self) -> Result<ClusterPool, Error> {
        let broker = Broker::connect(self.config)?;
        if let Some(warning) = broker.durability().warning() {
            eprintln!("quadriga: warning: {warning}");
        }
        let table = Arc::new(Table::default());
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Job>();
        let sender = {
            let broker = broker.try_clone();
            let table = Arc::clone(&table);
            std::thread::Builder::new()
                .name("quadriga-cluster-sender".into())
                .spawn(move || sender::run(broker, &table, &jobs_rx))
                .map_err(|e| {
                    Error::new(ErrorKind::Config, format!("could not start a thread: {e}"))
                })?
        };
        let receiver = {
            let broker = broker.try_clone();
            let table = Arc::clone(&table);
            std::thread::Builder::new()
                .name("quadriga-cluster-receiver".into())
                .spawn(move || receiver::run(broker, &table))
                .map_err(|e| {
                    Error::new(ErrorKind::Config, format!("could not start a thread: {e}"))
                })?
        };
        Ok(ClusterPool {
            control: Mutex::new(broker),
            table,
            jobs: Mutex::new(Some(jobs_tx)),
            sender: Mutex::new(Some(sender)),
            receiver: Mutex::new(Some(receiver)),
            closed: AtomicBool::new(false),
            max_in_flight: self.max_in_flight,
            retries_on_task_error: self.retries_on_task_error,
            retry_backoff: self.retry_backoff,
        })
    }
}

/// A pool whose tasks run on cluster workers, through a Redis broker.
///
/// It answers the same calls as [`ProcessPool`](crate::ProcessPool) and
/// [`ThreadPool`](crate::ThreadPool) and returns the same [`TaskHandle`]s and
/// [`TaskError`]s, so switching is one line: `ProcessPool::new(4)?` becomes
/// `ClusterPool::connect(url)?`. Workers are this same binary, started on
/// any host as a [`Worker`](super::Worker) (or with
/// `QUADRIGA_CLUSTER_WORKER=<url>` and [`quadriga::init()`](crate::init)).
///
/// ```no_run
/// use quadriga::cluster::ClusterPool;
///
/// #[quadriga::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     quadriga::init(); // with QUADRIGA_CLUSTER_WORKER set, serves as a worker
///     let pool = ClusterPool::connect("redis://127.0.0.1:6379/")?;
///     assert_eq!(pool.submit(square, 12).join()?, 144);
///     let sum: u64 = pool.map(square, 1..=1000).map(Result::unwrap).sum();
///     assert_eq!(sum, 333_833_500);
///     Ok(())
/// }
/// ```
///
/// A task whose worker is lost (killed, partitioned past its lease) runs
/// again on another, up to the retries on worker loss; then it ends as
/// [`lost`](crate::TaskErrorKind::Lost). Execution is at least once; each
/// handle resolves exactly once. Dropping the pool waits for the tasks
/// submitted ([`Shutdown::Wait`]).
pub struct ClusterPool {
    control: Mutex<Broker>,
    table: Arc<Table>,
    /// Entries for the sender thread (`sender.rs`); `None` once shut down.
    jobs: Mutex<Option<Sender<Job>>>,
    sender: Mutex<Option<JoinHandle<()>>>,
    receiver: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
    max_in_flight: usize,
    retries_on_task_error: u32,
    retry_backoff: Duration,
}

impl ClusterPool {
    /// Connects to the broker at `url` (`redis://[user:password@]host:port/[db]`)
    /// with the defaults: queue `default`, one shard, lease 10 s.
    ///
    /// # Errors
    ///
    /// As [`ClusterPoolBuilder::build`].
    pub fn connect(url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(url).build()
    }

    /// A builder for a configured pool on the broker at `url`.
    pub fn builder(url: impl Into<String>) -> ClusterPoolBuilder {
        ClusterPoolBuilder {
            config: BrokerConfig::new(url),
            max_in_flight: 16,
            retries_on_task_error: 0,
            retry_backoff: Duration::from_millis(500),
        }
    }

    fn control(&self) -> MutexGuard<'_, Broker> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many tasks wait for an outcome.
    pub fn pending(&self) -> usize {
        self.table.len()
    }

    /// Runs `task(input)` on a cluster worker.
    ///
    /// Returns at once: the pool's sender thread enqueues the task, with
    /// whatever else was submitted meanwhile, in one round trip. A broker
    /// that does not answer within 15 s resolves the handle with that error.
    /// The input is refused (the handle resolves as a codec error, nothing
    /// sent) if it holds IPC objects or is larger than the entry limit.
    /// [`cancel`](TaskHandle::cancel) resolves the handle at once, as
    /// cancelled; then the pool cancels the task on the broker: a waiting
    /// task leaves the queue and never runs, a running one is stopped by its
    /// worker at its next heartbeat (with process isolation its child is
    /// killed; a thread runs on, and its late result is refused). The task's
    /// recorded outcome is `cancelled`.
    pub fn submit<T: Task>(&self, task: T, input: T::Input) -> TaskHandle<T::Output> {
        self.submit_with(task, input, None)
    }

    /// Runs `task(input)` on a cluster worker once `delay` has passed (a
    /// countdown). Until then the task is held by the broker, not by this
    /// client or a worker: it survives a restart of either, and
    /// [`cancel`](TaskHandle::cancel) removes it. Workers move due tasks into
    /// the queue within about their poll interval (at most half a second).
    /// Unlike [`submit`](Self::submit), it returns once the broker holds
    /// the task (or gave up).
    pub fn submit_after<T: Task>(
        &self,
        task: T,
        input: T::Input,
        delay: Duration,
    ) -> TaskHandle<T::Output> {
        self.submit_with(task, input, Some(delay))
    }

    /// Runs `task(input)` on a cluster worker at `when` (as this host's
    /// clock reads it; the broker then counts down on its own clock), as
    /// [`submit_after`](Self::submit_after) does. A time already past runs
    /// at once.
    pub fn submit_at<T: Task>(
        &self,
        task: T,
        input: T::Input,
        when: std::time::SystemTime,
    ) -> TaskHandle<T::Output> {
        let delay = when
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO);
        self.submit_with(task, input, Some(delay))
    }

    fn submit_with<T: Task>(
        &self,
        task: T,
        input: T::Input,
        delay: Option<Duration>,
    ) -> TaskHandle<T::Output> {
        let _ = task;
        let id = handle::next_id();
        let encoded = encode(&input);
        let mut broker = self.control();
        let bytes = match encoded {
            Ok(bytes) => bytes,
            Err(err) => {
                let (handle, completer) = handle::pair_with(id, T::NAME, None);
                fail(completer, err);
                return handle;
            }
        };
        let entry = broker.entry(T::NAME, vec![bytes], None);
        let tid = entry.ids().next().expect("one item");
        let hook = {
            let table = Arc::downgrade(&self.table);
            Box::new(move || {
                if let Some(table) = table.upgrade() {
                    table.cancel(tid);
                }
            })
        };
        let (handle, completer) = handle::pair_with(id, T::NAME, Some(hook));
        if self.closed.load(Ordering::Acquire) {
            fail(completer, TaskError::cancelled("the pool is shut down"));
            return handle;
        }
        let dest: Dest = Arc::new(Mutex::new(HandleSink {
            completer: Some(completer),
        }));
        self.send(&mut broker, entry, &[0], &dest, delay);
        handle
    }

    /// How many of this pool's tasks were run again because their worker was
    /// lost (killed, paused or cut off past its lease): execution is at least
    /// once, and this counts the "more than once", as the broker recorded it
    /// when the tasks completed (see [`Broker::duplicate_runs`]).
    ///
    /// # Errors
    ///
    /// The broker could not be asked.
    pub fn duplicate_runs(&self) -> Result<u64, Error> {
        self.control().duplicate_runs()
    }

    /// Puts `entry`'s tasks in the table (item `i` of the entry answers
    /// `dest`'s item `indices[i]`), then has it enqueued: by the sender
    /// thread, which sends many entries per round trip, or, when it is held
    /// for a `delay`, at once by this thread (while `broker`, the control
    /// handle, is held). Either way an entry that is too large is split in
    /// halves (a single item that is, fails as a codec error) and a broker
    /// that does not answer (restarting, say) is tried again with back-off
    /// for up to [`ENQUEUE_PATIENCE`](sender::ENQUEUE_PATIENCE); each repeat
    /// is safe.
    fn send(
        &self,
        broker: &mut Broker,
        entry: Entry,
        indices: &[usize],
        dest: &Dest,
        delay: Option<Duration>,
    ) {
        self.table
            .add_all(
                entry
                    .ids()
                    .zip(indices)
                    .zip(&entry.items)
                    .map(|((id, &index), item)| {
                        let retry = (self.retries_on_task_error > 0).then(|| Retry {
                            task: entry.task.clone(),
                            input: item.input.clone(),
                            left: self.retries_on_task_error,
                            backoff: self.retry_backoff,
                            attempt: 0,
                            first: id,
                        });
                        let waiting = Waiting {
                            dest: Arc::clone(dest),
                            index,
                            retry,
                        };
                        (id, waiting)
                    }),
            );
        let job = Job { entry, delay };
        if delay.is_some_and(|d| !d.is_zero()) {
            sender::send(broker, &self.table, vec![job]);
            return;
        }
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        match jobs.as_ref() {
            Some(jobs) => {
                // Counted before it is queued: a cancel taken after this
                // waits for the sender to settle it (see `sender.rs`).
                self.table.pushed.fetch_add(1, Ordering::AcqRel);
                if let Err(unsent) = jobs.send(job) {
                    self.table.sent.fetch_add(1, Ordering::AcqRel);
                    sender::send(broker, &self.table, vec![unsent.0]);
                }
            }
            None => {
                drop(jobs);
                sender::send(broker, &self.table, vec![job]);
            }
        }
    }

    /// Applies `task` to every input on cluster workers; yields results in
    /// input order. Lazy, bounded (see
    /// [`max_in_flight`](ClusterPoolBuilder::max_in_flight)) and chunked:
    /// many items travel in one stream entry.
    pub fn map<T, I>(&self, task: T, inputs: I) -> Map<'_, T, I::IntoIter>
    where
        T: Task,
        I: IntoIterator<Item = T::Input>,
    {
        Map::new(self, task, inputs.into_iter())
    }

    /// Like [`map`](Self::map), yielding `(input index, result)` in
    /// completion order.
    pub fn map_unordered<T, I>(&self, task: T, inputs: I) -> MapUnordered<'_, T, I::IntoIter>
    where
        T: Task,
        I: IntoIterator<Item = T::Input>,
    {
        MapUnordered::new(self, task, inputs.into_iter())
    }

    /// Stops accepting work (later submissions resolve as cancelled), then
    /// waits for every submitted task's outcome ([`Shutdown::Wait`]) or
    /// resolves them all as cancelled at once ([`Shutdown::Cancel`]; workers
    /// may still run them), and stops the receiver thread.
    pub fn shutdown(&self, mode: Shutdown) {
        self.closed.store(true, Ordering::Release);
        match mode {
            Shutdown::Wait => self.table.wait_empty(),
            Shutdown::Cancel => self.table.clear(),
        }
        // The sender finishes what it holds (nothing waits for it now: it
        // drops what it has), then stops.
        drop(self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take());
        let thread = self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        self.table.stop();
        let thread = self
            .receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Encodes one input with the task codec, refusing IPC objects.
fn encode<I: Serialize>(input: &I) -> Result<Vec<u8>, TaskError> {
    let mut batch = Batch::default();
    batch
        .push(input)
        .map_err(|e| TaskError::codec(format!("could not encode the input: {e}")))?;
    if batch.fd_count() > 0 {
        return Err(TaskError::codec(
            "the input holds IPC objects (queues, locks, shared memory): their descriptors \
             cannot travel to a cluster worker on another host; nothing was sent",
        ));
    }
    Ok(batch.item(0).unwrap_or_default().to_vec())
}

fn fail<O>(completer: Completer<O>, err: TaskError) {
    if completer.start() {
        completer.complete(Err(err));
    }
}

/// Decodes a recorded outcome as the task's output.
fn decode<O: DeserializeOwned>(outcome: Outcome) -> Result<O, TaskError> {
    match outcome {
        Outcome::Error(err) => Err(err),
        Outcome::Output(bytes) => std::panic::catch_unwind(|| postcard::from_bytes::<O>(&bytes))
            .map_err(|_| TaskError::codec("decoding the output panicked"))?
            .map_err(|e| TaskError::codec(format!("could not decode the output: {e}"))),
    }
}

/// A `submit`'s destination: its handle.
struct HandleSink<O> {
    completer: Option<Completer<O>>,
}

impl<O: DeserializeOwned + Send + 'static> Collect for HandleSink<O> {
    fn put(&mut self, _index: usize, outcome: Outcome, _ran: Duration) {
        if let Some(completer) = self.completer.take()
            && completer.start()
        {
            completer.complete(decode(outcome));
        }
    }
}

/// A map chunk's destination: its items' results, sent once all are in.
struct ChunkSink<I, O> {
    reply: Option<Reply<I, O>>,
    name: &'static str,
    base: u64,
    results: Vec<Option<Result<O, TaskError>>>,
    left: usize,
    /// The longest run time of the chunk's entries, on their workers.
    ran: Duration,
    spare: Vec<I>,
    out: Vec<Result<O, TaskError>>,
}

impl<I: Send, O: DeserializeOwned + Send> ChunkSink<I, O> {
    fn set(&mut self, index: usize, result: Result<O, TaskError>) {
        let Some(slot) = self.results.get_mut(index) else {
            return;
        };
        if slot.is_some() {
            return;
        }
        let result = result.map_err(|e| {
            e.with_task(self.name, None)
                .with_item(self.base + index as u64)
        });
        *slot = Some(result);
        self.left -= 1;
        if self.left == 0
            && let Some(reply) = self.reply.take()
        {
            let mut out = std::mem::take(&mut self.out);
            out.clear();
            // The map wants results in reverse input order.
            out.extend(
                self.results.drain(..).rev().map(|r| {
                    r.unwrap_or_else(|| Err(TaskError::codec("no outcome for this item")))
                }),
            );
            // The map sizes chunks by their work as the worker measured
            // it: the wall time here would count the queue and the round
            // trip too, and shrink chunks as the queue grows.
            reply.send(self.ran, out, std::mem::take(&mut self.spare));
        }
    }
}

impl<I: Send, O: DeserializeOwned + Send> Collect for ChunkSink<I, O> {
    fn put(&mut self, index: usize, outcome: Outcome, ran: Duration) {
        self.ran = self.ran.max(ran);
        self.set(index, decode(outcome));
    }
}

impl<T: Task> Dispatch<T> for ClusterPool {
    fn dispatch(&self, chunk: Chunk<T>) {
        let Chunk {
            base,
            mut items,
            out,
            reply,
            ..
        } = chunk;
        if self.closed.load(Ordering::Acquire) {
            reply.fail_all(&TaskError::cancelled("the pool is shut down"));
            return;
        }
        let n = items.len();
        let mut sink = ChunkSink::<T::Input, T::Output> {
            reply: Some(reply),
            name: T::NAME,
            base,
            results: (0..n).map(|_| None).collect(),
            left: n,
            ran: Duration::ZERO,
            spare: Vec::new(),
            out,
        };
        let mut inputs = Vec::with_capacity(n);
        let mut indices = Vec::with_capacity(n);
        for (i, item) in items.iter().enumerate() {
            match encode(item) {
                Ok(bytes) => {
                    inputs.push(bytes);
                    indices.push(i);
                }
                Err(err) => sink.set(i, Err(err)),
            }
        }
        items.clear();
        sink.spare = items;
        if inputs.is_empty() {
            return;
        }
        let dest: Dest = Arc::new(Mutex::new(sink));
        let mut broker = self.control();
        let entry = broker.entry(T::NAME, inputs, None);
        self.send(&mut broker, entry, &indices, &dest, None);
    }

    fn parallelism(&self) -> usize {
        self.max_in_flight
    }

    fn max_chunk(&self) -> Option<usize> {
        Some(MAX_ITEMS)
    }

    fn target_chunk(&self) -> Duration {
        // A chunk's time here is its round trip through the broker (about a
        // millisecond and more): aim well above it.
        Duration::from_millis(20)
    }
}

crate::executor::forward_executor!(ClusterPool);

impl Drop for ClusterPool {
    fn drop(&mut self) {
        self.shutdown(Shutdown::Wait);
    }
}

impl fmt::Debug for ClusterPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterPool")
            .field("broker", &*self.control())
            .field("pending", &self.pending())
            .field("shut_down", &self.is_shut_down())
            .finish_non_exhaustive()
    }
}
