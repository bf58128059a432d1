//! The runner's side of a remote run: one thread owns the broker
//! connection. It submits the jobs the event loop hands it (signed), renews
//! the run's signed presence, reads the running jobs' output chunks
//! (deleting what it read, which is what lets a worker write more) and the
//! run's completions, and passes [`Event`]s back through a bounded channel,
//! with a byte on a pipe to wake the event loop's poller.
//!
//! Chunks of an attempt that a later one superseded (its worker was killed
//! and the job re-leased) are dropped: a chunk of a newer attempt resets the
//! job's output ([`Event::Reset`]), and the result names the attempt that
//! counts.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use quadriga::child::Exit;
use quadriga::cluster::{Broker, Chunk, Outcome, OutputStream, TaskId};

use super::job::{self, Job, JobResult, Presence, Program};
use super::key::{Key, Purpose, SubKey};
use super::{PRESENCE_EVERY, PRESENCE_TTL, RemoteArgs, connection};
use crate::output::Which;

/// Events in the channel at most (each chunk ≤ 64 KiB).
const EVENTS: usize = 64;
/// After this long with jobs out and no live worker, say so.
const NO_WORKER_AFTER: Duration = Duration::from_secs(2);
/// The exit code of a job that could not run (dead-lettered, refused).
pub(crate) const NOT_RUN: i32 = 255;

/// What happened to a remote job.
#[derive(Debug)]
pub(crate) enum Event {
    /// Output of job `id`.
    Chunk {
        id: u64,
        which: Which,
        data: Vec<u8>,
    },
    /// A newer attempt of job `id` began: forget its output so far.
    Reset { id: u64 },
    /// Job `id` ended.
    Done {
        id: u64,
        exit: Exit,
        /// The worker's host, empty when not told.
        host: String,
        start: Option<SystemTime>,
        /// Its worker killed it for its `--timeout`.
        timed_out: bool,
    },
}

/// A job to submit.
#[derive(Debug)]
pub(crate) struct Submit {
    pub(crate) id: u64,
    pub(crate) seq: u64,
    pub(crate) program: Program,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
}

enum Request {
    Submit(Submit),
    Cancel(u64),
}

/// The event loop's handle on the thread.
pub(crate) struct Client {
    tx: Option<Sender<Request>>,
    rx: Receiver<Event>,
    wake: OwnedFd,
    thread: Option<JoinHandle<()>>,
    /// Slots of the workers live at the start (for `-j auto`).
    pub(crate) live_slots: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// Connects, announces the run and starts the thread.
    pub(crate) fn start(args: &RemoteArgs) -> Result<Client> {
        let url = args.broker.as_deref().unwrap_or_default();
        let key = Key::load(args.key_file.as_deref())?;
        let config = connection(url, &args.queue, &args.prefix);
        let mut broker = Broker::connect(config)
            .with_context(|| format!("cannot connect to the broker at {url}"))?;
        let live_slots = live_workers(&mut broker).map_or(0, |w| w.1);
        let mut state = State {
            jobs: key.subkey(Purpose::Jobs),
            presence: key.subkey(Purpose::Presence),
            nonce: random_nonce(),
            after: vec!["0-0".to_owned(); usize::from(broker.keys().shards())],
            running: HashMap::new(),
            by_job: HashMap::new(),
            queue: args.queue.clone(),
            broker,
            last_presence: Instant::now(),
            no_worker_since: None,
            said_no_worker: false,
        };
        state
            .announce()
            .context("cannot announce the run to the broker")?;
        let (req_tx, req_rx) = crossbeam_channel::unbounded();
        let (ev_tx, ev_rx) = crossbeam_channel::bounded(EVENTS);
        let (wake_r, wake_w) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC,
        )?;
        let thread = std::thread::Builder::new()
            .name("quadriga-remote".into())
            .spawn(move || {
                state.run(
                    &req_rx,
                    &Events {
                        tx: ev_tx,
                        wake: wake_w,
                    },
                )
            })?;
        Ok(Client {
            tx: Some(req_tx),
            rx: ev_rx,
            wake: wake_r,
            thread: Some(thread),
            live_slots,
        })
    }

    /// The descriptor that becomes readable when events wait.
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Every event waiting now (and the wake bytes read).
    pub(crate) fn events(&self) -> Vec<Event> {
        let mut buf = [0u8; 256];
        while matches!(rustix::io::read(&self.wake, &mut buf), Ok(n) if n > 0) {}
        self.rx.try_iter().collect()
    }

    pub(crate) fn submit(&self, job: Submit) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Request::Submit(job));
        }
    }

    /// Asks for job `id` to be stopped (its worker kills its group).
    pub(crate) fn cancel(&self, id: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Request::Cancel(id));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.tx = None;
        // Unblock a thread waiting for room in the channel.
        while let Some(t) = &self.thread {
            if t.is_finished() {
                break;
            }
            let _ = self.rx.recv_timeout(Duration::from_millis(10));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Events {
    tx: Sender<Event>,
    wake: OwnedFd,
}

impl Events {
    /// False when the event loop is gone.
    fn send(&self, e: Event) -> bool {
        let ok = self.tx.send(e).is_ok();
        let _ = rustix::io::write(&self.wake, b"x");
        ok
    }
}

/// A submitted job.
struct Track {
    id: u64,
    /// The last output entry read.
    after: String,
    /// The attempt whose output is being collected (0: none yet).
    attempt: u64,
}

struct State {
    broker: Broker,
    jobs: SubKey,
    presence: SubKey,
    nonce: u64,
    after: Vec<String>,
    running: HashMap<TaskId, Track>,
    by_job: HashMap<u64, TaskId>,
    queue: String,
    last_presence: Instant,
    no_worker_since: Option<Instant>,
    said_no_worker: bool,
}

impl State {
    fn announce(&mut self) -> Result<(), quadriga::cluster::Error> {
        let record = Presence {
            version: job::VERSION,
            client: self.broker.client_id(),
            nonce: self.nonce,
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64,
        };
        self.last_presence = Instant::now();
        self.broker
            .announce(&record.seal(&self.presence), PRESENCE_TTL)
    }

    fn run(mut self, requests: &Receiver<Request>, events: &Events) {
        loop {
            // New work and cancellations.
            loop {
                let r = if self.running.is_empty() {
                    match requests.recv_timeout(Duration::from_millis(100)) {
                        Ok(r) => Ok(r),
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                            Err(TryRecvError::Empty)
                        }
                        Err(_) => Err(TryRecvError::Disconnected),
                    }
                } else {
                    requests.try_recv()
                };
                match r {
                    Ok(Request::Submit(s)) => self.submit(s, events),
                    Ok(Request::Cancel(id)) => {
                        if let Some(&task) = self.by_job.get(&id)
                            && let Err(e) = self.broker.cancel(task)
                        {
                            eprintln!("quadriga: cannot cancel job {id} on the broker: {e}");
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.finish();
                        return;
                    }
                }
            }
            if self.last_presence.elapsed() >= PRESENCE_EVERY
                && let Err(e) = self.announce()
            {
                eprintln!("quadriga: cannot renew the run's presence: {e}");
            }
            if self.running.is_empty() {
                continue;
            }
            if !self.poll(events) {
                self.finish();
                return;
            }
            self.check_workers();
        }
    }

    fn submit(&mut self, s: Submit, events: &Events) {
        let mut entry = self.broker.entry(job::TASK, vec![Vec::new()], None);
        let task_seq = entry.items[0].seq;
        let signed = Job {
            version: job::VERSION,
            nonce: self.nonce,
            client: self.broker.client_id(),
            task_seq,
            seq: s.seq,
            program: s.program,
            env: s.env,
            timeout_ms: s.timeout.map(|d| d.as_millis() as u64),
        }
        .seal(&self.jobs);
        entry.items[0].input = postcard::to_allocvec(&signed).unwrap_or_default();
        let task = entry.ids().next().expect("one item");
        let mut tries = 0;
        loop {
            match self.broker.enqueue(&entry) {
                Ok(_) => break,
                Err(e) if tries < 20 && e.is_outcome_unknown() => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50 * tries));
                }
                Err(e) => {
                    let msg = format!("quadriga: job {} could not be submitted: {e}\n", s.seq);
                    events.send(Event::Chunk {
                        id: s.id,
                        which: Which::Err,
                        data: msg.into_bytes(),
                    });
                    events.send(Event::Done {
                        id: s.id,
                        exit: Exit::status(Some(NOT_RUN), None),
                        host: String::new(),
                        start: None,
                        timed_out: false,
                    });
                    return;
                }
            }
        }
        self.running.insert(
            task,
            Track {
                id: s.id,
                after: "0-0".into(),
                attempt: 0,
            },
        );
        self.by_job.insert(s.id, task);
    }

    /// One round: output of the running jobs, then completions. False when
    /// the event loop is gone.
    fn poll(&mut self, events: &Events) -> bool {
        let tasks: Vec<(TaskId, String)> = self
            .running
            .iter()
            .map(|(t, tr)| (*t, tr.after.clone()))
            .collect();
        let mut got_output = false;
        match self.broker.read_output(&tasks, 8) {
            Ok(chunks) => {
                got_output = !chunks.is_empty();
                for (task, chunk) in chunks {
                    if !self.deliver(task, chunk, events) {
                        return false;
                    }
                }
            }
            Err(e) => {
                eprintln!("quadriga: reading output from the broker: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let block = if got_output {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(5)
        };
        let done = match self.broker.completions(&mut self.after, block, 512) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("quadriga: reading completions from the broker: {e}");
                std::thread::sleep(Duration::from_millis(100));
                return true;
            }
        };
        let done: Vec<TaskId> = done
            .into_iter()
            .filter(|t| self.running.contains_key(t))
            .collect();
        if done.is_empty() {
            return true;
        }
        self.no_worker_since = None;
        // The rest of their output, then their results.
        for &task in &done {
            loop {
                let after = self.running[&task].after.clone();
                match self.broker.read_output(&[(task, after)], 32) {
                    Ok(chunks) if chunks.is_empty() => break,
                    Ok(chunks) => {
                        for (task, chunk) in chunks {
                            if !self.deliver(task, chunk, events) {
                                return false;
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("quadriga: reading output from the broker: {e}");
                        break;
                    }
                }
            }
        }
        let outcomes = loop {
            match self.broker.outcomes(&done) {
                Ok(o) => break o,
                Err(e) => {
                    eprintln!("quadriga: fetching results from the broker: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        };
        for (task, outcome) in done.into_iter().zip(outcomes) {
            let Some(track) = self.running.remove(&task) else {
                continue;
            };
            self.by_job.remove(&track.id);
            let _ = self.broker.delete_output(task);
            let end = judge(outcome);
            if let Some(a) = end.attempt
                && a > track.attempt
                && track.attempt != 0
                && !events.send(Event::Reset { id: track.id })
            {
                return false;
            }
            if let Some(m) = end.message
                && !events.send(Event::Chunk {
                    id: track.id,
                    which: Which::Err,
                    data: m.into_bytes(),
                })
            {
                return false;
            }
            if !events.send(Event::Done {
                id: track.id,
                exit: end.exit,
                host: end.host,
                start: end.start,
                timed_out: end.timed_out,
            }) {
                return false;
            }
        }
        true
    }

    /// Passes a chunk on, unless a newer attempt superseded it.
    fn deliver(&mut self, task: TaskId, chunk: Chunk, events: &Events) -> bool {
        let Some(track) = self.running.get_mut(&task) else {
            return true;
        };
        track.after = format!("{}-{}", chunk.attempt, chunk.n);
        if chunk.attempt < track.attempt {
            return true;
        }
        if chunk.attempt > track.attempt {
            let first = track.attempt == 0;
            track.attempt = chunk.attempt;
            if !first && !events.send(Event::Reset { id: track.id }) {
                return false;
            }
        }
        events.send(Event::Chunk {
            id: track.id,
            which: match chunk.stream {
                OutputStream::Stdout => Which::Out,
                OutputStream::Stderr => Which::Err,
            },
            data: chunk.data,
        })
    }

    /// Says once, within a few seconds, that no worker serves the queue
    /// (and goes on waiting: the jobs stay queued for the first that comes).
    fn check_workers(&mut self) {
        let since = *self.no_worker_since.get_or_insert_with(Instant::now);
        if since.elapsed() < NO_WORKER_AFTER {
            return;
        }
        self.no_worker_since = Some(Instant::now());
        let live = live_workers(&mut self.broker).map_or(1, |w| w.0);
        if live == 0 && !self.said_no_worker {
            self.said_no_worker = true;
            eprintln!(
                "quadriga: no live worker serves the queue `{}`; the jobs wait in the \
                 queue until one starts (`quadriga worker --broker URL --queue {}`), \
                 or press Ctrl-C",
                self.queue, self.queue
            );
        } else if live > 0 && self.said_no_worker {
            self.said_no_worker = false;
            eprintln!(
                "quadriga: a worker is serving the queue `{}` now",
                self.queue
            );
        }
    }

    /// The run is over: cancel what is left, withdraw the presence.
    fn finish(&mut self) {
        for &task in self.running.keys() {
            let _ = self.broker.cancel(task);
            let _ = self.broker.delete_output(task);
        }
        let _ = self.broker.withdraw();
    }
}

/// The live shell workers of the queue and their slots.
fn live_workers(broker: &mut Broker) -> Result<(usize, usize), quadriga::cluster::Error> {
    let workers = broker.workers()?;
    let shell: Vec<_> = workers
        .iter()
        .filter(|w| w.tasks.iter().any(|t| t == job::TASK))
        .collect();
    Ok((
        shell.len(),
        shell.iter().map(|w| w.concurrency as usize).sum(),
    ))
}

/// How a job ended, as the runner sees it.
struct Ending {
    exit: Exit,
    /// The worker's host (empty when not told).
    host: String,
    start: Option<SystemTime>,
    /// The attempt that counts, when the worker told it.
    attempt: Option<u64>,
    /// For its stderr, when it did not run.
    message: Option<String>,
    /// Killed by its worker for its `--timeout`.
    timed_out: bool,
}

impl Ending {
    fn not_run(message: String) -> Self {
        Ending {
            exit: Exit::status(Some(NOT_RUN), None),
            host: String::new(),
            start: None,
            attempt: None,
            message: Some(message),
            timed_out: false,
        }
    }
}

/// The ending a recorded outcome says.
fn judge(outcome: Option<Outcome>) -> Ending {
    match outcome {
        Some(Outcome::Output(bytes)) => match JobResult::decode(&bytes) {
            Some(r) => {
                let mut exit = Exit::status(r.code, r.signal);
                exit.cpu = Duration::from_nanos(r.cpu_ns);
                exit.max_rss = r.max_rss;
                Ending {
                    exit,
                    host: r.host,
                    start: Some(UNIX_EPOCH + Duration::from_millis(r.start_ms)),
                    attempt: Some(r.attempt),
                    message: None,
                    timed_out: r.timed_out,
                }
            }
            None => Ending::not_run("quadriga: the worker's result does not decode\n".into()),
        },
        // Stopped on our request (--timeout, --halt, a signal).
        Some(Outcome::Error(e)) if e.is_cancelled() => Ending {
            exit: Exit::status(None, Some(15)),
            host: String::new(),
            start: None,
            attempt: None,
            message: None,
            timed_out: false,
        },
        Some(Outcome::Error(e)) => {
            Ending::not_run(format!("quadriga: the job did not run: {}\n", e.message()))
        }
        None => Ending::not_run("quadriga: the job's result expired on the broker\n".into()),
    }
}

fn random_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish()
}
