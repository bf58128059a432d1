//! The supervisor: one thread that multiplexes every worker of a pool with
//! `epoll` over their sockets and pidfds, plus an eventfd for commands.
//!
//! # Invariants
//!
//! * Each job is in exactly one place: the queue, one worker's `outstanding`
//!   list, or finished (its sink consumed). A job's sink is called at most once;
//!   a sink dropped unfinished resolves its handle or chunk as cancelled.
//! * A worker runs its `outstanding` jobs in order, so the head is the one
//!   running; the others have not started. When a worker dies, only the head is
//!   failed (or retried, or split into single items if it was a chunk); the
//!   others go back to the front of the queue.
//! * Timeouts apply to the head, from when it became the head. A timed-out job
//!   fails at once; its worker's process group gets SIGTERM, then SIGKILL after
//!   the grace period.
//! * Every worker is reaped through its pidfd; after it dies its process group
//!   gets SIGKILL, so no grandchild outlives it; its descriptors are closed.
//! * A worker's byte stream is never cut inside a frame. A send that fails for
//!   want of a kernel resource (`ETOOMANYREFS`: too many descriptors in
//!   flight) keeps everything and is retried on a timer, backing off; if the
//!   worker waits for that very frame and nothing moves for
//!   `wire::Stall::LIMIT`, or on any other error, the worker is killed and its
//!   jobs go the way of any death (the head is retried, split or failed).

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use rustix::event::epoll;
use rustix::event::{EventfdFlags, eventfd};
use rustix::net::{RecvFlags, SendFlags, recv};
use rustix::process::Signal;

use crate::error::TaskError;
use crate::executor::Shutdown;
use crate::process::notify::Notify;
use crate::process::spawn::{self, Exit, SpawnConfig, Spawned};
use crate::process::wire::{self, Batch, Decoder, Down, Outcomes, Up};

/// Where a job's outcomes go. Called on the supervisor thread.
pub(crate) trait Sink: Send {
    /// Just before the job first goes to a worker: `false` if it was cancelled
    /// meanwhile (it is then dropped without running).
    fn start(&mut self) -> bool;
    /// One outcome per input item, in order, and the time the job ran.
    fn finish(self: Box<Self>, outcomes: Outcomes, elapsed: Duration);
}

/// One unit of work: a task and a batch of inputs (one for `submit`, many for a
/// `map` chunk).
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) task: &'static str,
    pub(crate) input: Batch,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) sink: Box<dyn Sink>,
    /// `start` was called (a requeued job is not started twice).
    pub(crate) started: bool,
}

impl Job {
    /// Ends every item of the job with `err`.
    fn fail(self, err: &TaskError) {
        let n = self.input.len();
        self.sink
            .finish(Outcomes::all_failed(n, err), Duration::ZERO);
    }
}

/// What the pool asks of the supervisor.
pub(crate) enum Command {
    Submit(Job),
    Cancel(u64),
    Shutdown(Shutdown),
}

/// The pool's configuration, as the supervisor needs it.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) spawn: SpawnConfig,
    pub(crate) grace: Duration,
    pub(crate) max_tasks_per_worker: Option<u64>,
    /// Initializer task name ("" for none) and its encoded input.
    pub(crate) initializer: (String, Batch),
}

/// The handle the pool keeps to wake its supervisor.
#[derive(Debug)]
pub(crate) struct Waker {
    notify: Notify,
    efd: OwnedFd,
}

impl Waker {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self {
            notify: Notify::default(),
            efd: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
        })
    }

    /// Call after pushing a command.
    pub(crate) fn wake(&self) {
        if self.notify.should_signal() {
            // Cannot block: the counter would have to reach u64::MAX - 1.
            let _ = rustix::io::write(&self.efd, &1_u64.to_ne_bytes());
        }
    }
}

const EFD_TOKEN: u64 = u64::MAX;

struct InFlight {
    job: Job,
    /// Cancelled by its handle after it was sent: discard its outcome, and
    /// kill the worker if it starts running it.
    cancelled: bool,
    /// Where its frame ends in the worker's outbox (see `Outbox::written`).
    frame_end: u64,
}

struct Worker {
    pid: u32,
    pidfd: OwnedFd,
    sock: OwnedFd,
    dec: Decoder,
    out: wire::Outbox,
    /// Listening for writability (the socket buffer was full).
    want_write: bool,
    /// A send failed for want of a kernel resource: retry at this time.
    retry_at: Option<Instant>,
    /// How long such sends have waited, and made no progress.
    stall: wire::Stall,
    /// Its socket reached end of file (it is dying or dead).
    hung_up: bool,
    ready: bool,
    /// Sent `Exit` (recycled or shutting down): no more jobs.
    retiring: bool,
    /// We are killing it: SIGKILL at this time if it is still alive.
    kill_at: Option<Instant>,
    /// Set when we killed it on purpose (timeout, cancel, protocol error).
    killed: bool,
    /// Why the last job would fail if it dies now, beyond its exit status.
    detail: String,
    outstanding: VecDeque<InFlight>,
    head_started: Instant,
    items_done: u64,
    items_sent: u64,
}

impl Worker {
    fn accepts_jobs(&self) -> bool {
        self.ready && !self.retiring && self.kill_at.is_none() && !self.killed && !self.hung_up
    }

    fn head_deadline(&self) -> Option<Instant> {
        if self.kill_at.is_some() || self.killed {
            return None;
        }
        let head = self.outstanding.front()?;
        head.job.timeout.map(|t| self.head_started + t)
    }
}

pub(crate) struct Supervisor {
    cfg: Config,
    epoll: OwnedFd,
    waker: Arc<Waker>,
    rx: Receiver<Command>,
    pids: Arc<Mutex<Vec<u32>>>,
    workers: Vec<Option<Worker>>,
    queue: VecDeque<Job>,
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
    /// Where socket reads land before they are fed to a worker's decoder.
    scratch: Box<[u8]>,
}

impl Supervisor {
    pub(crate) fn new(
        cfg: Config,
        waker: Arc<Waker>,
        rx: Receiver<Command>,
        pids: Arc<Mutex<Vec<u32>>>,
    ) -> std::io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            &waker.efd,
            epoll::EventData::new_u64(EFD_TOKEN),
            epoll::EventFlags::IN,
        )?;
        Ok(Self {
            cfg,
            epoll,
            waker,
            rx,
            pids,
            workers: Vec::new(),
            queue: VecDeque::new(),
            ewma_nanos: None,
            crashes_in_row: 0,
            init_failures_in_row: 0,
            spawn_failures_in_row: 0,
            next_spawn_at: Instant::now(),
            broken: None,
            closing: None,
            scratch: vec![0; 1 << 16].into_boxed_slice(),
        })
    }

    /// Runs until shut down and every worker is reaped.
    pub(crate) fn run(mut self) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        loop {
            self.take_commands();
            self.maintain();
            self.dispatch();
            self.flush_all();
            if self.finished() {
                break;
            }
            let timeout = self.next_timer().map(|at| {
                let d = at.saturating_duration_since(Instant::now());
                rustix::time::Timespec {
                    tv_sec: d.as_secs() as _,
                    tv_nsec: d.subsec_nanos() as _,
                }
            });
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            ) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(err) => {
                    // Cannot wait: nothing can make progress. Fail everything.
                    self.broken = Some(TaskError::crashed(
                        std::process::id(),
                        None,
                        None,
                        &format!("the supervisor could not wait for events: {err}"),
                    ));
                    self.closing = Some(Shutdown::Cancel);
                    self.cancel_everything(&self.broken.clone().expect("just set"));
                }
            }
            for ev in events.iter() {
                let token = ev.data.u64();
                if token == EFD_TOKEN {
                    let mut buf = [0_u8; 8];
                    let _ = rustix::io::read(&self.waker.efd, &mut buf);
                    continue;
                }
                let slot = (token >> 1) as usize;
                if token & 1 == 0 {
                    let flags = ev.flags;
                    if flags.intersects(epoll::EventFlags::OUT) {
                        self.flush(slot);
                    }
                    if flags.intersects(
                        epoll::EventFlags::IN
                            | epoll::EventFlags::HUP
                            | epoll::EventFlags::RDHUP
                            | epoll::EventFlags::ERR,
                    ) {
                        self.read(slot);
                    }
                } else {
                    self.poll_exit(slot);
                }
            }
            self.check_timers();
        }
    }

    fn take_commands(&mut self) {
        self.waker.notify.reset();
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Submit(job) => {
                    if let Some(err) = &self.broken {
                        job.fail(err);
                    } else if self.closing.is_some() {
                        job.fail(&TaskError::cancelled("the pool is shut down"));
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
        for job in self.queue.drain(..) {
            job.fail(err);
        }
        for slot in 0..self.workers.len() {
            let Some(w) = self.workers[slot].as_mut() else {
                continue;
            };
            if w.outstanding.is_empty() {
                continue;
            }
            for f in w.outstanding.drain(..) {
                if !f.cancelled {
                    f.job.fail(err);
                }
            }
            self.kill_now(slot, "the pool was shut down");
        }
    }

    /// SIGKILL to the worker's group now; its jobs must already be handled.
    fn kill_now(&mut self, slot: usize, why: &str) {
        let Some(w) = self.workers[slot].as_mut() else {
            return;
        };
        if let Some(head) = w.outstanding.pop_front().filter(|h| !h.cancelled) {
            // Only a cancelled head is killed on purpose; anything else that
            // was running when we kill is a bug upstream: fail it, never lose it.
            head.job
                .fail(&TaskError::crashed(w.pid, Some(9), None, why));
        }
        let rest: Vec<InFlight> = w.outstanding.drain(..).collect();
        w.killed = true;
        w.kill_at = None;
        w.detail = why.to_owned();
        spawn::signal_group(w.pid, Signal::KILL);
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
            .filter(|w| !w.retiring && !w.killed && w.kill_at.is_none() && !w.hung_up)
            .count()
    }

    /// Starts workers as needed; retires idle ones when shutting down.
    fn maintain(&mut self) {
        if let Some(err) = self.broken.clone() {
            for job in self.queue.drain(..) {
                job.fail(&err);
            }
        }
        let want = match self.closing {
            _ if self.broken.is_some() => 0,
            Some(_) if self.queue.is_empty() => 0,
            _ => self.cfg.workers,
        };
        while self.live_workers() < want && Instant::now() >= self.next_spawn_at {
            if let Err(err) = self.start_worker() {
                self.spawn_failures_in_row += 1;
                if self.spawn_failures_in_row >= 3 {
                    self.broken = Some(TaskError::crashed(
                        std::process::id(),
                        None,
                        None,
                        &format!("could not start a worker process: {err}"),
                    ));
                    return self.maintain();
                }
                self.next_spawn_at = Instant::now() + backoff(self.spawn_failures_in_row);
                break;
            }
            self.spawn_failures_in_row = 0;
        }
        if self.closing.is_some() && self.queue.is_empty() {
            for w in self.workers.iter_mut().flatten() {
                if w.outstanding.is_empty() && !w.retiring && !w.killed {
                    w.retiring = true;
                    let _ = w.out.push(&Down::Exit, usize::MAX);
                }
            }
        }
    }

    fn start_worker(&mut self) -> std::io::Result<()> {
        let Spawned { pid, pidfd, sock } = spawn::spawn(&self.cfg.spawn)?;
        let slot = match self.workers.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.workers.push(None);
                self.workers.len() - 1
            }
        };
        let token = (slot as u64) << 1;
        epoll::add(
            &self.epoll,
            &sock,
            epoll::EventData::new_u64(token),
            epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
        )?;
        epoll::add(
            &self.epoll,
            &pidfd,
            epoll::EventData::new_u64(token | 1),
            epoll::EventFlags::IN,
        )?;
        let mut out = wire::Outbox::default();
        let (task, input) = &self.cfg.initializer;
        out.push(
            &Down::Init {
                task: task.clone(),
                input: input.clone(),
            },
            self.cfg.spawn.max_frame,
        )
        .map_err(std::io::Error::other)?;
        self.pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pid);
        self.workers[slot] = Some(Worker {
            pid,
            pidfd,
            sock,
            dec: Decoder::new(self.cfg.spawn.max_frame),
            out,
            want_write: false,
            retry_at: None,
            stall: wire::Stall::default(),
            hung_up: false,
            ready: false,
            retiring: false,
            kill_at: None,
            killed: false,
            detail: String::new(),
            outstanding: VecDeque::new(),
            head_started: Instant::now(),
            items_done: 0,
            items_sent: 0,
        });
        Ok(())
    }

    /// How many jobs a worker may hold: more when jobs are short, so the round
    /// trip is hidden; one when they are long, so none waits behind another.
    fn depth(&self) -> usize {
        match self.ewma_nanos {
            None => 1,
            Some(ns) => (200_000.0 / ns.max(1.0)).clamp(1.0, 16.0) as usize,
        }
    }

    fn dispatch(&mut self) {
        let depth = self.depth();
        let max_frame = self.cfg.spawn.max_frame;
        while !self.queue.is_empty() {
            let Some(slot) = self
                .workers
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.as_ref().filter(|w| w.accepts_jobs()).map(|w| (i, w)))
                .filter(|(_, w)| {
                    self.cfg
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
            let msg = Down::Run {
                job: job.id,
                task: job.task.to_owned(),
                input: job.input.clone(),
            };
            let frame_end = match w.out.push(&msg, max_frame) {
                Ok(end) => end,
                Err(err) => {
                    job.fail(&TaskError::codec(format!(
                        "could not send the input: {err}"
                    )));
                    continue;
                }
            };
            if w.outstanding.is_empty() {
                w.head_started = Instant::now();
            }
            w.items_sent += job.input.len() as u64;
            w.outstanding.push_back(InFlight {
                job,
                cancelled: false,
                frame_end,
            });
        }
    }

    fn flush_all(&mut self) {
        for slot in 0..self.workers.len() {
            self.flush(slot);
        }
    }

    /// Writes what is pending to a worker, without blocking.
    fn flush(&mut self, slot: usize) {
        let Some(w) = self.workers[slot].as_mut() else {
            return;
        };
        let now = Instant::now();
        if w.retry_at.is_some_and(|at| now < at) {
            return;
        }
        w.retry_at = None;
        let before = w.out.written();
        let result = w
            .out
            .flush(std::os::fd::AsFd::as_fd(&w.sock), SendFlags::DONTWAIT);
        let moved = w.out.written() > before;
        match result {
            Ok(_) => w.stall.moved(),
            Err(err) if wire::is_shortage(err) => {
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
                    .is_none_or(|head| w.out.written() < head.frame_end);
                match w.stall.refused(err, waits, now) {
                    Ok(wait) => w.retry_at = Some(now + wait),
                    Err(why) => {
                        self.abandon(slot, &why);
                        return;
                    }
                }
            }
            Err(rustix::io::Errno::PIPE | rustix::io::Errno::CONNRESET) => {
                // The worker is gone: its pidfd will tell how.
                w.out.clear();
            }
            Err(err) => {
                self.abandon(slot, &format!("could not write to the worker: {err}"));
                return;
            }
        }
        let Some(w) = self.workers[slot].as_mut() else {
            return;
        };
        let want_write = !w.out.is_empty() && w.retry_at.is_none();
        if want_write != w.want_write && !w.hung_up {
            w.want_write = want_write;
            let mut flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
            if want_write {
                flags |= epoll::EventFlags::OUT;
            }
            let _ = epoll::modify(
                &self.epoll,
                &w.sock,
                epoll::EventData::new_u64((slot as u64) << 1),
                flags,
            );
        }
    }

    /// Reads and handles what a worker sent.
    fn read(&mut self, slot: usize) {
        loop {
            let Some(w) = self.workers[slot].as_mut() else {
                return;
            };
            if w.hung_up {
                return;
            }
            match recv(&w.sock, &mut self.scratch[..], RecvFlags::DONTWAIT) {
                Ok((0, _)) => {
                    w.hung_up = true;
                    let _ = epoll::delete(&self.epoll, &w.sock);
                    self.handle_messages(slot);
                    return;
                }
                Ok((n, _)) => {
                    w.dec.feed(&self.scratch[..n]);
                    self.handle_messages(slot);
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return,
                Err(_) => {
                    w.hung_up = true;
                    let _ = epoll::delete(&self.epoll, &w.sock);
                    return;
                }
            }
        }
    }

    fn handle_messages(&mut self, slot: usize) {
        loop {
            let Some(w) = self.workers[slot].as_mut() else {
                return;
            };
            let msg = match w.dec.next::<Up>() {
                Ok(Some(msg)) => msg,
                Ok(None) => return,
                Err(err) => {
                    let why = format!("the worker sent a malformed frame ({err})");
                    self.protocol_error(slot, &why);
                    return;
                }
            };
            match msg {
                Up::Ready { protocol, .. } if protocol == wire::PROTOCOL => {
                    w.ready = true;
                    self.init_failures_in_row = 0;
                }
                Up::Ready { protocol, .. } => {
                    let why = format!(
                        "the worker speaks protocol {protocol}, not {}",
                        wire::PROTOCOL
                    );
                    self.protocol_error(slot, &why);
                    return;
                }
                Up::InitFailed { error } => {
                    w.retiring = true;
                    self.init_failures_in_row += 1;
                    if self.init_failures_in_row >= 3 {
                        self.broken = Some(TaskError::crashed(
                            w.pid,
                            None,
                            None,
                            &format!("the worker initializer failed three times in a row: {error}"),
                        ));
                    }
                }
                Up::Done {
                    job,
                    nanos,
                    outcomes,
                } => self.done(slot, job, nanos, outcomes),
            }
        }
    }

    fn done(&mut self, slot: usize, id: u64, nanos: u64, outcomes: wire::Outcomes) {
        let w = self.workers[slot].as_mut().expect("caller checked");
        if w.outstanding.front().is_none_or(|f| f.job.id != id) {
            self.protocol_error(slot, "the worker answered a job it was not running");
            return;
        }
        let head = w.outstanding.pop_front().expect("checked");
        let pid = w.pid;
        let n = head.job.input.len();
        w.items_done += n as u64;
        w.head_started = Instant::now();
        let next_cancelled = w.outstanding.front().is_some_and(|f| f.cancelled);
        let retire = self
            .cfg
            .max_tasks_per_worker
            .is_some_and(|max| w.items_done >= max)
            && w.outstanding.is_empty();
        if retire && !w.retiring {
            w.retiring = true;
            let _ = w.out.push(&Down::Exit, usize::MAX);
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
        head.job.sink.finish(outcomes, Duration::from_nanos(nanos));
    }

    /// The worker cannot be sent its frames: drop what is pending (never a
    /// part of it: the stream would be cut inside a frame) and kill it; its
    /// jobs go the way of any death, the head failing with `why`.
    fn abandon(&mut self, slot: usize, why: &str) {
        let Some(w) = self.workers[slot].as_mut() else {
            return;
        };
        w.out.clear();
        w.retry_at = None;
        self.protocol_error(slot, why);
    }

    /// The worker broke the protocol: kill it; its head job fails as crashed.
    fn protocol_error(&mut self, slot: usize, why: &str) {
        let Some(w) = self.workers[slot].as_mut() else {
            return;
        };
        w.detail = why.to_owned();
        w.killed = true;
        spawn::signal_group(w.pid, Signal::KILL);
    }

    /// The pidfd is readable: reap the worker and settle its jobs.
    fn poll_exit(&mut self, slot: usize) {
        let Some(w) = self.workers[slot].as_mut() else {
            return;
        };
        let exit = match spawn::reap(&w.pidfd, false) {
            Ok(Some(exit)) => exit,
            Ok(None) => return,
            Err(_) => Exit {
                signal: None,
                code: None,
            },
        };
        // Read what it sent before dying: completed jobs must not be lost.
        self.read(slot);
        self.handle_messages(slot);
        let w = self.workers[slot].take().expect("checked above");
        let _ = epoll::delete(&self.epoll, &w.pidfd);
        if !w.hung_up {
            let _ = epoll::delete(&self.epoll, &w.sock);
        }
        // No grandchild outlives its worker.
        spawn::signal_group(w.pid, Signal::KILL);
        self.pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|&p| p != w.pid);
        let expected = (w.retiring || w.killed || w.kill_at.is_some()) && w.outstanding.is_empty();
        if !expected {
            if !w.ready && !w.retiring {
                self.init_failures_in_row += 1;
            }
            self.crashes_in_row += 1;
            self.next_spawn_at = Instant::now() + backoff(self.crashes_in_row);
        }
        let mut outstanding = w.outstanding;
        if let Some(head) = outstanding.pop_front() {
            if !head.cancelled {
                self.crashed(head.job, w.pid, exit, &w.detail);
            }
        }
        self.requeue_front(outstanding.into_iter().collect());
        // `w.pidfd` and `w.sock` close here.
    }

    /// The job a dead worker was running: split a chunk into single items,
    /// retry if allowed, or fail it as crashed.
    fn crashed(&mut self, mut job: Job, pid: u32, exit: Exit, detail: &str) {
        if job.input.len() > 1 {
            let parts = job.input.split();
            let assembly = Arc::new(Mutex::new(Assembly {
                sink: Some(job.sink),
                items: (0..parts.len()).map(|_| None).collect(),
                left: parts.len(),
                elapsed: Duration::ZERO,
            }));
            for (index, input) in parts.into_iter().enumerate().rev() {
                self.queue.push_front(Job {
                    id: crate::handle::next_id(),
                    task: job.task,
                    input,
                    timeout: job.timeout,
                    retries: job.retries,
                    sink: Box::new(Part {
                        assembly: Arc::clone(&assembly),
                        index,
                    }),
                    started: true,
                });
            }
            return;
        }
        if job.retries > 0 {
            job.retries -= 1;
            self.queue.push_front(job);
            return;
        }
        let mut detail = detail.to_owned();
        if let Some(limit) = self.cfg.spawn.memory_limit {
            if exit.signal.is_some() && detail.is_empty() {
                detail = format!("the pool limits workers to {limit} bytes of memory");
            }
        }
        job.fail(&TaskError::crashed(pid, exit.signal, exit.code, &detail));
    }

    fn check_timers(&mut self) {
        let now = Instant::now();
        for slot in 0..self.workers.len() {
            let Some(w) = self.workers[slot].as_mut() else {
                continue;
            };
            if let Some(at) = w.kill_at {
                if now >= at {
                    w.kill_at = None;
                    w.killed = true;
                    spawn::signal_group(w.pid, Signal::KILL);
                }
                continue;
            }
            if w.head_deadline().is_some_and(|d| now >= d) {
                let head = w.outstanding.pop_front().expect("a deadline has a head");
                let limit = head.job.timeout.unwrap_or_default();
                let pid = w.pid;
                let rest: Vec<InFlight> = w.outstanding.drain(..).collect();
                w.kill_at = Some(now + self.cfg.grace);
                w.detail = "it ran past its time limit".to_owned();
                spawn::signal_group(pid, Signal::TERM);
                if !head.cancelled {
                    head.job.fail(&TaskError::timed_out(Some(pid), limit));
                }
                self.requeue_front(rest);
            }
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for w in self.workers.iter().flatten() {
            if let Some(at) = w.kill_at {
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
            && self.live_workers() < self.cfg.workers;
        if want_more {
            consider(self.next_spawn_at);
        }
        next
    }

    fn finished(&self) -> bool {
        self.closing.is_some() && self.queue.is_empty() && self.workers.iter().all(Option::is_none)
    }
}

impl Drop for Supervisor {
    /// Whatever way the loop ended (even by a panic), no worker is left behind:
    /// kill each group and reap each process.
    fn drop(&mut self) {
        let err = TaskError::cancelled("the pool's supervisor stopped");
        for job in self.queue.drain(..) {
            job.fail(&err);
        }
        for w in self.workers.iter_mut().filter_map(Option::take) {
            spawn::signal_group(w.pid, Signal::KILL);
            let _ = spawn::reap(&w.pidfd, true);
            for f in w.outstanding {
                if !f.cancelled {
                    f.job.fail(&err);
                }
            }
        }
        self.pids.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Back-off before starting a worker after `n` failures in a row.
fn backoff(n: u32) -> Duration {
    if n <= 1 {
        return Duration::ZERO;
    }
    Duration::from_millis(10 << (n - 2).min(8)).min(Duration::from_secs(2))
}

/// Gathers the single-item jobs a crashed chunk was split into.
struct Assembly {
    sink: Option<Box<dyn Sink>>,
    items: Vec<Option<Result<Vec<u8>, TaskError>>>,
    left: usize,
    elapsed: Duration,
}

struct Part {
    assembly: Arc<Mutex<Assembly>>,
    index: usize,
}

impl Sink for Part {
    fn start(&mut self) -> bool {
        true
    }

    fn finish(self: Box<Self>, outcomes: Outcomes, elapsed: Duration) {
        let mut a = self.assembly.lock().unwrap_or_else(|p| p.into_inner());
        let item = match outcomes.iter().next() {
            Some(Ok(bytes)) => Ok(bytes.to_vec()),
            Some(Err(Some(err))) => Err(err.clone()),
            Some(Err(None)) | None => Err(TaskError::codec("no outcome for a split item")),
        };
        if a.items[self.index].replace(item).is_none() {
            a.left -= 1;
        }
        a.elapsed += elapsed;
        if a.left == 0 {
            let sink = a.sink.take();
            let mut whole = Outcomes::default();
            for item in a.items.iter_mut() {
                match item.take().expect("every part answered") {
                    Ok(bytes) => whole.push_ok(&bytes),
                    Err(err) => whole.push_err(err),
                }
            }
            let elapsed = a.elapsed;
            drop(a);
            if let Some(sink) = sink {
                sink.finish(whole, elapsed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_millis(10));
        assert_eq!(backoff(3), Duration::from_millis(20));
        assert_eq!(backoff(50), Duration::from_secs(2));
    }
}
