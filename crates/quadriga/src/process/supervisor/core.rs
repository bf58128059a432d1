//! The supervisor's rules, without I/O: a state machine fed [`Event`]s with
//! the time they happened, which queues [`Action`]s for the shell to carry out.
//!
//! It owns the queue, each worker's in-flight list, the pipelining depth,
//! timeouts, deaths, retries, splitting, respawn back-off, initializer
//! failures, recycling, cancelling, shutting down and send stalls. It makes no
//! system call, starts no thread and reads no clock: the caller passes `now`,
//! so the tests drive it with a synthetic clock and synthetic workers.
//!
//! The shell answers two actions with an event at once: [`Action::Spawn`]
//! with [`Event::Spawned`] or [`Event::SpawnFailed`], and [`Action::Run`]
//! with [`Event::Pushed`]. At most one spawn is asked for at a time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rustix::io::Errno;

use crate::child::{Escalation, Exit, Signal};
use crate::error::TaskError;
use crate::executor::Shutdown;
use crate::process::wire::Stall;
use crate::task::batch::Batch;
use crate::task::outcomes::Outcomes;

use super::job::{Command, Delivery, Job};
use super::split::split;

/// A worker's slot: stable for its life, reused after it is reaped.
pub(crate) type WorkerId = usize;

/// The rules' settings.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// How many workers to keep running.
    pub(crate) workers: usize,
    /// Between SIGTERM and SIGKILL.
    pub(crate) grace: Duration,
    /// Recycle a worker after this many items.
    pub(crate) max_tasks_per_worker: Option<u64>,
    /// The workers' memory limit, to name it when one dies of a signal.
    pub(crate) memory_limit: Option<u64>,
    /// The supervising process, named in errors of the pool itself.
    pub(crate) own_pid: u32,
}

/// Something that happened, fed to [`Core::handle`].
#[derive(Debug)]
pub(crate) enum Event {
    /// A caller's command.
    Command(Command),
    /// Once per turn of the loop: timers, then starting and retiring
    /// workers, then handing out jobs.
    Tick,
    /// The answer to [`Action::Spawn`]: the worker runs (its initializer is
    /// on its way).
    Spawned { worker: WorkerId, pid: u32 },
    /// The answer to [`Action::Spawn`]: no worker could be started.
    SpawnFailed { worker: WorkerId, why: String },
    /// The worker is up, speaking our protocol.
    Ready { worker: WorkerId },
    /// The worker's initializer failed; it exits.
    InitFailed { worker: WorkerId, error: TaskError },
    /// The worker finished a job.
    Done {
        worker: WorkerId,
        job: u64,
        nanos: u64,
        outcomes: Outcomes,
    },
    /// The worker broke the protocol (a malformed frame, another version).
    ProtocolError { worker: WorkerId, why: String },
    /// The worker's socket reached its end.
    HungUp { worker: WorkerId },
    /// The worker was reaped.
    Died { worker: WorkerId, exit: Exit },
    /// The answer to [`Action::Run`]: where the job's frame ends in the
    /// worker's stream, or why it could not be encoded.
    Pushed {
        worker: WorkerId,
        job: u64,
        frame_end: Result<u64, String>,
    },
    /// The shell tried to write what is pending to a worker.
    Flushed { worker: WorkerId, result: Flush },
    /// The shell cannot go on (it cannot wait for events): fail everything.
    Fatal { why: String },
    /// The shell is going away (its workers are killed and reaped): end every
    /// job still held.
    Stop,
}

/// How a write to a worker went.
#[derive(Debug)]
pub(crate) enum Flush {
    /// Some or all of it went, or the socket was full.
    Sent,
    /// Refused for want of a kernel resource; nothing was lost. `moved`:
    /// some bytes went before; `written`: bytes written over the stream's life.
    Shortage {
        err: Errno,
        moved: bool,
        written: u64,
    },
    /// The worker is gone (its death will tell how); what was pending is
    /// dropped.
    Gone,
    /// Any other error.
    Failed(String),
}

/// Something for the shell to do, from [`Core::poll_action`].
#[derive(Debug)]
pub(crate) enum Action {
    /// Start a worker in this slot, send it the initializer, and answer.
    Spawn { worker: WorkerId },
    /// Send the worker this job (its task and input: [`Core::sent`]), and
    /// answer with [`Event::Pushed`].
    Run { worker: WorkerId, job: u64 },
    /// Tell the worker to finish and exit.
    Exit { worker: WorkerId },
    /// Signal the worker's process group.
    Signal { worker: WorkerId, sig: Signal },
    /// Drop whatever is pending for the worker, never to be sent.
    Abandon { worker: WorkerId },
    /// A job ended: hand its outcomes to its sink.
    Finish(Delivery),
}

/// A job sent to a worker.
struct InFlight {
    job: Job,
    /// Cancelled by its handle after it was sent: discard its outcome, and
    /// kill the worker if it starts running it.
    cancelled: bool,
    /// Where its frame ends in the worker's stream (see `Outbox::written`);
    /// `u64::MAX` until the shell says.
    frame_end: u64,
}

/// What the core knows of a worker.
struct Worker {
    pid: u32,
    /// Said it is up.
    ready: bool,
    /// Told to exit (recycled or shutting down), or its initializer failed:
    /// no more jobs.
    retiring: bool,
    /// Its socket reached end of file (it is dying or dead).
    hung_up: bool,
    /// `None` while we let it be; once we stop it (timed out: SIGTERM, then
    /// SIGKILL after the grace period; cancelled, broken: SIGKILL at once),
    /// where that stands.
    stopping: Option<Escalation>,
    /// Why the head would fail if it dies now, beyond its exit status.
    detail: String,
    /// In the order sent; the head is the one running.
    outstanding: VecDeque<InFlight>,
    /// When the head became the head.
    head_started: Instant,
    items_done: u64,
    items_sent: u64,
    /// A send failed for want of a kernel resource: retry at this time.
    retry_at: Option<Instant>,
    /// How long such sends have waited, and made no progress.
    stall: Stall,
}

impl Worker {
    fn new(pid: u32, now: Instant) -> Self {
        Self {
            pid,
            ready: false,
            retiring: false,
            hung_up: false,
            stopping: None,
            detail: String::new(),
            outstanding: VecDeque::new(),
            head_started: now,
            items_done: 0,
            items_sent: 0,
            retry_at: None,
            stall: Stall::default(),
        }
    }

    /// Not on its way out.
    fn is_live(&self) -> bool {
        !self.retiring && self.stopping.is_none() && !self.hung_up
    }

    /// Sent SIGKILL by us (at once, or after its grace period).
    fn is_killed(&self) -> bool {
        self.stopping.is_some_and(|e| e.is_escalated())
    }

    /// SIGKILL to send now (none if it was sent already).
    fn kill(&mut self) -> Option<Signal> {
        match &mut self.stopping {
            Some(e) => e.hurry(),
            None => {
                let (e, sig) = Escalation::without_grace();
                self.stopping = Some(e);
                Some(sig)
            }
        }
    }

    fn accepts_jobs(&self) -> bool {
        self.ready && self.is_live()
    }

    fn head_deadline(&self) -> Option<Instant> {
        if self.stopping.is_some() {
            return None;
        }
        let head = self.outstanding.front()?;
        head.job.timeout.map(|t| self.head_started + t)
    }
}

/// The supervisor's state machine (see the module docs).
pub(crate) struct Core {
    rules: Rules,
    workers: Vec<Option<Worker>>,
    queue: VecDeque<Job>,
    actions: VecDeque<Action>,
    /// A slot asked to be spawned, not answered yet.
    spawning: Option<WorkerId>,
    /// Moving average of a job's run time, for the pipeline depth.
    ewma_nanos: Option<f64>,
    /// Unexpected worker deaths since the last completed job (for back-off).
    crashes_in_row: u32,
    init_failures_in_row: u32,
    spawn_failures_in_row: u32,
    next_spawn_at: Instant,
    /// Set when workers cannot be started: every job fails with it.
    broken: Option<TaskError>,
    closing: Option<Shutdown>,
}

impl Core {
    pub(crate) fn new(rules: Rules, now: Instant) -> Self {
        Self {
            rules,
            workers: Vec::new(),
            queue: VecDeque::new(),
            actions: VecDeque::new(),
            spawning: None,
            ewma_nanos: None,
            crashes_in_row: 0,
            init_failures_in_row: 0,
            spawn_failures_in_row: 0,
            next_spawn_at: now,
            broken: None,
            closing: None,
        }
    }

    /// The next thing for the shell to do.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest time at which a [`Event::Tick`] has something to do, or
    /// (for a held send) the shell should write again.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for w in self.workers.iter().flatten() {
            if let Some(at) = w.stopping.and_then(|e| e.deadline()) {
                consider(at);
            }
            if let Some(at) = w.retry_at {
                consider(at);
            }
            if let Some(d) = w.head_deadline() {
                consider(d);
            }
        }
        let want_more = self.broken.is_none()
            && (self.closing.is_none() || !self.queue.is_empty())
            && self.live_workers() < self.rules.workers;
        if want_more {
            consider(self.next_spawn_at);
        }
        next
    }

    /// Shut down, nothing left, every worker reaped: the loop may end.
    pub(crate) fn is_finished(&self) -> bool {
        self.closing.is_some()
            && self.queue.is_empty()
            && self.spawning.is_none()
            && self.workers.iter().all(Option::is_none)
    }

    /// The task and input of `job`, sent to `worker` and not yet answered:
    /// what an [`Action::Run`] sends (the core keeps the input, for retries
    /// and splitting, so the shell encodes it from here without a copy).
    pub(crate) fn sent(&self, worker: WorkerId, job: u64) -> Option<(&'static str, &Batch)> {
        self.worker(worker)?
            .outstanding
            .iter()
            .rev()
            .find(|f| f.job.id == job)
            .map(|f| (f.job.task, &f.job.input))
    }

    /// Whether a write to `worker` waits for a retry at `now` (after a
    /// shortage): the shell does not try before.
    pub(crate) fn send_held(&self, worker: WorkerId, now: Instant) -> bool {
        self.worker(worker)
            .is_some_and(|w| w.retry_at.is_some_and(|at| now < at))
    }

    /// Whether writes to `worker` wait on the retry timer rather than on the
    /// socket's room.
    pub(crate) fn send_on_timer(&self, worker: WorkerId) -> bool {
        self.worker(worker).is_some_and(|w| w.retry_at.is_some())
    }

    /// Feeds one event that happened at `now`.
    pub(crate) fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::Command(cmd) => self.command(cmd),
            Event::Tick => {
                self.check_timers(now);
                self.maintain(now);
                self.dispatch(now);
            }
            Event::Spawned { worker, pid } => self.spawned(worker, pid, now),
            Event::SpawnFailed { worker, why } => self.spawn_failed(worker, &why, now),
            Event::Ready { worker } => {
                if let Some(w) = self.worker_mut(worker) {
                    w.ready = true;
                    self.init_failures_in_row = 0;
                }
            }
            Event::InitFailed { worker, error } => self.init_failed(worker, &error),
            Event::Done {
                worker,
                job,
                nanos,
                outcomes,
            } => self.done(worker, job, nanos, outcomes, now),
            Event::ProtocolError { worker, why } => self.protocol_error(worker, &why),
            Event::HungUp { worker } => {
                if let Some(w) = self.worker_mut(worker) {
                    w.hung_up = true;
                }
            }
            Event::Died { worker, exit } => self.died(worker, exit, now),
            Event::Pushed {
                worker,
                job,
                frame_end,
            } => self.pushed(worker, job, frame_end, now),
            Event::Flushed { worker, result } => self.flushed(worker, result, now),
            Event::Fatal { why } => {
                let err = TaskError::crashed(self.rules.own_pid, None, None, &why);
                self.broken = Some(err.clone());
                self.closing = Some(Shutdown::Cancel);
                self.cancel_everything(&err);
            }
            Event::Stop => self.stop(),
        }
    }

    fn worker(&self, worker: WorkerId) -> Option<&Worker> {
        self.workers.get(worker).and_then(Option::as_ref)
    }

    fn worker_mut(&mut self, worker: WorkerId) -> Option<&mut Worker> {
        self.workers.get_mut(worker).and_then(Option::as_mut)
    }

    fn fail(&mut self, job: Job, err: &TaskError) {
        self.actions
            .push_back(Action::Finish(Delivery::failed(job, err)));
    }

    fn signal(&mut self, worker: WorkerId, sig: Option<Signal>) {
        if let Some(sig) = sig {
            self.actions.push_back(Action::Signal { worker, sig });
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Submit(job) => {
                if let Some(err) = self.broken.clone() {
                    self.fail(job, &err);
                } else if self.closing.is_some() {
                    self.fail(job, &TaskError::cancelled("the pool is shut down"));
                } else {
                    self.queue.push_back(job);
                }
            }
            Command::Cancel(id) => self.cancel(id),
            Command::Shutdown(mode) => {
                if self.closing != Some(Shutdown::Cancel) {
                    self.closing = Some(mode);
                }
                if mode == Shutdown::Cancel {
                    self.cancel_everything(&TaskError::cancelled("the pool was shut down"));
                }
            }
        }
    }

    /// A handle was cancelled: drop its job if queued; kill its worker if it
    /// runs; mark it if it waits in a worker's pipeline.
    fn cancel(&mut self, id: u64) {
        if let Some(at) = self.queue.iter().position(|j| j.id == id) {
            self.queue.remove(at);
            return;
        }
        for slot in 0..self.workers.len() {
            let Some(w) = self.workers[slot].as_mut() else {
                continue;
            };
            let Some(at) = w.outstanding.iter().position(|f| f.job.id == id) else {
                continue;
            };
            w.outstanding[at].cancelled = true;
            if at == 0 {
                self.kill_now(slot, "its task was cancelled");
            }
            return;
        }
    }

    fn cancel_everything(&mut self, err: &TaskError) {
        for job in std::mem::take(&mut self.queue) {
            self.fail(job, err);
        }
        for slot in 0..self.workers.len() {
            let Some(w) = self.workers[slot].as_mut() else {
                continue;
            };
            if w.outstanding.is_empty() {
                continue;
            }
            for f in std::mem::take(&mut w.outstanding) {
                if !f.cancelled {
                    self.fail(f.job, err);
                }
            }
            self.kill_now(slot, "the pool was shut down");
        }
    }

    /// SIGKILL to the worker's group now; its jobs must already be handled.
    fn kill_now(&mut self, slot: WorkerId, why: &str) {
        let Some(w) = self.worker_mut(slot) else {
            return;
        };
        let head = w.outstanding.pop_front().filter(|h| !h.cancelled);
        let pid = w.pid;
        let rest: Vec<InFlight> = w.outstanding.drain(..).collect();
        let sig = w.kill();
        w.detail = why.to_owned();
        if let Some(head) = head {
            // Only a cancelled head is killed on purpose; anything else that
            // was running when we kill is a bug upstream: fail it, never lose it.
            self.fail(head.job, &TaskError::crashed(pid, Some(9), None, why));
        }
        self.signal(slot, sig);
        self.requeue_front(rest);
    }

    /// Puts never-started jobs back at the front of the queue, in order.
    fn requeue_front(&mut self, rest: Vec<InFlight>) {
        for f in rest.into_iter().rev() {
            if !f.cancelled {
                self.queue.push_front(f.job);
            }
        }
    }

    fn live_workers(&self) -> usize {
        self.workers
            .iter()
            .flatten()
            .filter(|w| w.is_live())
            .count()
    }

    /// Asks for workers as needed; retires idle ones when shutting down.
    fn maintain(&mut self, now: Instant) {
        if let Some(err) = self.broken.clone() {
            for job in std::mem::take(&mut self.queue) {
                self.fail(job, &err);
            }
        }
        let want = match self.closing {
            _ if self.broken.is_some() => 0,
            Some(_) if self.queue.is_empty() => 0,
            _ => self.rules.workers,
        };
        if self.spawning.is_none() && self.live_workers() < want && now >= self.next_spawn_at {
            let slot = match self.workers.iter().position(Option::is_none) {
                Some(free) => free,
                None => {
                    self.workers.push(None);
                    self.workers.len() - 1
                }
            };
            self.spawning = Some(slot);
            self.actions.push_back(Action::Spawn { worker: slot });
        }
        if self.closing.is_some() && self.queue.is_empty() {
            for slot in 0..self.workers.len() {
                let Some(w) = self.workers[slot].as_mut() else {
                    continue;
                };
                if w.outstanding.is_empty() && !w.retiring && !w.is_killed() {
                    w.retiring = true;
                    self.actions.push_back(Action::Exit { worker: slot });
                }
            }
        }
    }

    fn spawned(&mut self, slot: WorkerId, pid: u32, now: Instant) {
        if self.spawning != Some(slot) {
            return;
        }
        self.spawning = None;
        self.spawn_failures_in_row = 0;
        self.workers[slot] = Some(Worker::new(pid, now));
        // Start the others the pool lacks, one at a time.
        self.maintain(now);
    }

    fn spawn_failed(&mut self, slot: WorkerId, why: &str, now: Instant) {
        if self.spawning != Some(slot) {
            return;
        }
        self.spawning = None;
        self.spawn_failures_in_row += 1;
        if self.spawn_failures_in_row >= 3 {
            self.broken = Some(TaskError::crashed(
                self.rules.own_pid,
                None,
                None,
                &format!("could not start a worker process: {why}"),
            ));
            self.maintain(now);
            return;
        }
        self.next_spawn_at = now + backoff(self.spawn_failures_in_row);
    }

    fn init_failed(&mut self, slot: WorkerId, error: &TaskError) {
        let Some(w) = self.worker_mut(slot) else {
            return;
        };
        w.retiring = true;
        let pid = w.pid;
        self.init_failures_in_row += 1;
        if self.init_failures_in_row >= 3 {
            self.broken = Some(TaskError::crashed(
                pid,
                None,
                None,
                &format!("the worker initializer failed three times in a row: {error}"),
            ));
        }
    }

    /// How many jobs a worker may hold: more when jobs are short, so the round
    /// trip is hidden; one when they are long, so none waits behind another.
    fn depth(&self) -> usize {
        match self.ewma_nanos {
            None => 1,
            Some(ns) => (200_000.0 / ns.max(1.0)).clamp(1.0, 16.0) as usize,
        }
    }

    fn dispatch(&mut self, now: Instant) {
        let depth = self.depth();
        while !self.queue.is_empty() {
            let Some(slot) = self
                .workers
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.as_ref().filter(|w| w.accepts_jobs()).map(|w| (i, w)))
                .filter(|(_, w)| {
                    self.rules
                        .max_tasks_per_worker
                        .is_none_or(|max| w.items_sent < max)
                })
                .min_by_key(|(_, w)| w.outstanding.len())
                .map(|(i, _)| i)
            else {
                break;
            };
            let w = self.workers[slot].as_mut().expect("chosen above");
            if w.outstanding.len() >= depth {
                break;
            }
            let mut job = self.queue.pop_front().expect("not empty");
            if !job.started {
                if !job.sink.start() {
                    continue; // cancelled before it was sent: never runs
                }
                job.started = true;
            }
            if w.outstanding.is_empty() {
                w.head_started = now;
            }
            w.items_sent += job.input.len() as u64;
            self.actions.push_back(Action::Run {
                worker: slot,
                job: job.id,
            });
            w.outstanding.push_back(InFlight {
                job,
                cancelled: false,
                frame_end: u64::MAX,
            });
        }
    }

    fn pushed(&mut self, slot: WorkerId, id: u64, frame_end: Result<u64, String>, now: Instant) {
        let Some(w) = self.worker_mut(slot) else {
            return;
        };
        let Some(at) = w.outstanding.iter().position(|f| f.job.id == id) else {
            return;
        };
        match frame_end {
            Ok(end) => w.outstanding[at].frame_end = end,
            Err(why) => {
                // Its frame never went: as if it had never been sent.
                let f = w.outstanding.remove(at).expect("found above");
                w.items_sent -= f.job.input.len() as u64;
                if at == 0 {
                    w.head_started = now;
                }
                if !f.cancelled {
                    let err = TaskError::codec(format!("could not send the input: {why}"));
                    self.fail(f.job, &err);
                }
            }
        }
    }

    fn flushed(&mut self, slot: WorkerId, result: Flush, now: Instant) {
        let Some(w) = self.worker_mut(slot) else {
            return;
        };
        w.retry_at = None;
        match result {
            Flush::Sent => w.stall.moved(),
            Flush::Shortage {
                err,
                moved,
                written,
            } => {
                // Nothing is lost; try again soon (see `wire::Stall`).
                if moved {
                    w.stall.moved();
                }
                // Does the worker wait for what is stuck? Not if its head job's
                // frame is all there: then it will read the rest (freeing
                // descriptors in flight) when done, however long that takes.
                let waits = w
                    .outstanding
                    .front()
                    .is_none_or(|head| written < head.frame_end);
                match w.stall.refused(err, waits, now) {
                    Ok(wait) => w.retry_at = Some(now + wait),
                    Err(why) => self.abandon(slot, &why),
                }
            }
            Flush::Gone => {}
            Flush::Failed(why) => self.abandon(slot, &why),
        }
    }

    fn done(&mut self, slot: WorkerId, id: u64, nanos: u64, outcomes: Outcomes, now: Instant) {
        let max_tasks = self.rules.max_tasks_per_worker;
        let Some(w) = self.worker_mut(slot) else {
            return;
        };
        if w.outstanding.front().is_none_or(|f| f.job.id != id) {
            self.protocol_error(slot, "the worker answered a job it was not running");
            return;
        }
        let head = w.outstanding.pop_front().expect("checked");
        let pid = w.pid;
        let n = head.job.input.len();
        w.items_done += n as u64;
        w.head_started = now;
        let next_cancelled = w.outstanding.front().is_some_and(|f| f.cancelled);
        let retire = max_tasks.is_some_and(|max| w.items_done >= max) && w.outstanding.is_empty();
        if retire && !w.retiring {
            w.retiring = true;
            self.actions.push_back(Action::Exit { worker: slot });
        }
        let per_job = nanos as f64;
        self.ewma_nanos = Some(match self.ewma_nanos {
            None => per_job,
            Some(avg) => 0.8 * avg + 0.2 * per_job,
        });
        self.crashes_in_row = 0;
        if next_cancelled {
            self.kill_now(slot, "its task was cancelled");
        }
        if head.cancelled {
            return;
        }
        let mut outcomes = outcomes;
        outcomes.map_errors(|e| e.with_pid(pid));
        outcomes.fit(n, || {
            TaskError::codec("the worker sent fewer outcomes than inputs").with_pid(pid)
        });
        self.actions.push_back(Action::Finish(Delivery {
            job: id,
            sink: head.job.sink,
            outcomes,
            elapsed: Duration::from_nanos(nanos),
        }));
    }

    /// The worker cannot be sent its frames: drop what is pending (never a
    /// part of it: the stream would be cut inside a frame) and kill it; its
    /// jobs go the way of any death, the head failing with `why`.
    fn abandon(&mut self, slot: WorkerId, why: &str) {
        let Some(w) = self.worker_mut(slot) else {
            return;
        };
        w.retry_at = None;
        self.actions.push_back(Action::Abandon { worker: slot });
        self.protocol_error(slot, why);
    }

    /// The worker broke the protocol: kill it; its head job fails as crashed
    /// when it is reaped.
    fn protocol_error(&mut self, slot: WorkerId, why: &str) {
        let Some(w) = self.worker_mut(slot) else {
            return;
        };
        w.detail = why.to_owned();
        let sig = w.kill();
        self.signal(slot, sig);
    }

    /// The worker was reaped: settle its jobs.
    fn died(&mut self, slot: WorkerId, exit: Exit, now: Instant) {
        let Some(w) = self.workers.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let expected = (w.retiring || w.stopping.is_some()) && w.outstanding.is_empty();
        if !expected {
            if !w.ready && !w.retiring {
                self.init_failures_in_row += 1;
            }
            self.crashes_in_row += 1;
            self.next_spawn_at = now + backoff(self.crashes_in_row);
        }
        let mut outstanding = w.outstanding;
        if let Some(head) = outstanding.pop_front()
            && !head.cancelled
        {
            self.crashed(head.job, w.pid, exit, &w.detail);
        }
        self.requeue_front(outstanding.into_iter().collect());
    }

    /// The job a dead worker was running: split a chunk into single items,
    /// retry if allowed, or fail it as crashed.
    fn crashed(&mut self, mut job: Job, pid: u32, exit: Exit, detail: &str) {
        if job.input.len() > 1 {
            for part in split(job).into_iter().rev() {
                self.queue.push_front(part);
            }
            return;
        }
        if job.retries > 0 {
            job.retries -= 1;
            self.queue.push_front(job);
            return;
        }
        let mut detail = detail.to_owned();
        if let Some(limit) = self.rules.memory_limit
            && exit.signal.is_some()
            && detail.is_empty()
        {
            detail = format!("the pool limits workers to {limit} bytes of memory");
        }
        self.fail(
            job,
            &TaskError::crashed(pid, exit.signal, exit.code, &detail),
        );
    }

    fn check_timers(&mut self, now: Instant) {
        for slot in 0..self.workers.len() {
            let Some(w) = self.workers[slot].as_mut() else {
                continue;
            };
            if let Some(sig) = w.stopping.as_mut().and_then(|e| e.poll(now)) {
                self.signal(slot, Some(sig));
                continue;
            }
            if w.head_deadline().is_some_and(|d| now >= d) {
                let head = w.outstanding.pop_front().expect("a deadline has a head");
                let limit = head.job.timeout.unwrap_or_default();
                let pid = w.pid;
                let rest: Vec<InFlight> = w.outstanding.drain(..).collect();
                let (escalation, sig) = Escalation::begin(now, self.rules.grace);
                w.stopping = Some(escalation);
                w.detail = "it ran past its time limit".to_owned();
                self.signal(slot, Some(sig));
                if !head.cancelled {
                    self.fail(head.job, &TaskError::timed_out(Some(pid), limit));
                }
                self.requeue_front(rest);
            }
        }
    }

    /// The shell is going away: end every job still held.
    fn stop(&mut self) {
        let err = TaskError::cancelled("the pool's supervisor stopped");
        for job in std::mem::take(&mut self.queue) {
            self.fail(job, &err);
        }
        for w in self
            .workers
            .iter_mut()
            .filter_map(Option::take)
            .collect::<Vec<_>>()
        {
            for f in w.outstanding {
                if !f.cancelled {
                    self.fail(f.job, &err);
                }
            }
        }
        self.spawning = None;
    }
}

/// Back-off before starting a worker after `n` failures in a row: none after
/// the first, then 10 ms doubling up to 2 s.
pub(super) fn backoff(n: u32) -> Duration {
    if n <= 1 {
        return Duration::ZERO;
    }
    Duration::from_millis(10 << (n - 2).min(8)).min(Duration::from_secs(2))
}

/// What the tests look at.
#[cfg(test)]
impl Core {
    /// Every job held, where: `None` for the queue, or the worker.
    pub(super) fn places(&self) -> Vec<(u64, Option<WorkerId>, &Batch)> {
        let queued = self.queue.iter().map(|j| (j.id, None, &j.input));
        let sent = self.workers.iter().enumerate().flat_map(|(slot, w)| {
            w.iter()
                .flat_map(|w| w.outstanding.iter())
                .map(move |f| (f.job.id, Some(slot), &f.job.input))
        });
        queued.chain(sent).collect()
    }

    /// The jobs in the queue, in order.
    pub(super) fn queued(&self) -> Vec<u64> {
        self.queue.iter().map(|j| j.id).collect()
    }

    /// A worker's in-flight list, head first.
    pub(super) fn outstanding(&self, worker: WorkerId) -> Vec<u64> {
        self.worker(worker)
            .map(|w| w.outstanding.iter().map(|f| f.job.id).collect())
            .unwrap_or_default()
    }

    /// The workers started and not yet reaped, and whether each is ready.
    pub(super) fn workers(&self) -> Vec<(WorkerId, bool)> {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(slot, w)| w.as_ref().map(|w| (slot, w.ready)))
            .collect()
    }

    pub(super) fn is_broken(&self) -> bool {
        self.broken.is_some()
    }
}
