//! The runner's rules as a state machine, without I/O.
//!
//! The shell (`shell.rs`) tells the [`Core`] what happened, with the time
//! (an input item came, a job was started or could not be, a job exited, a
//! signal came, our output broke, time passed) and takes the [`Action`]s it
//! asks for (signal a job's group, discard, show or log-and-show a job's
//! output, explain). The core reads no clock and touches no process, pipe
//! or file; the machine's readings come through [`Readings`]. So every rule
//! is tested with a synthetic clock.
//!
//! Every job is in exactly one place: the queue (new, or back for a retry or
//! after a memory kill), running (from admission to its end), or done
//! (counted). A job killed by a halt or a signal is shown and dropped,
//! uncounted, so `--resume` runs it again.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use quadriga::adapt::JobTicket;
use quadriga::child::{Escalation, Exit, Signal};

use super::gate::{Gate, Readings};
use super::kill::{KILL_GRACE, Kill, KillReason, Timeouts};
use super::retry::{self, Disposition};
use super::{Outcome, skip};
use crate::args::Resume;
use crate::halt::{self, Counts, Halt, When};
use crate::input::Args;
use crate::joblog::Logged;
use crate::pipe::JobStdin;

/// A job to run (again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    pub(crate) seq: u64,
    pub(crate) args: Args,
    /// Attempts made before this one.
    pub(crate) attempts: u32,
    /// `--retry-failed`: the command from the joblog, run as it is.
    pub(crate) command: Option<Vec<u8>>,
    /// `--pipe`/`--pipepart`: the data for its stdin (kept for a retry).
    pub(crate) stdin: Option<JobStdin>,
}

/// A job from admission to its end.
#[derive(Debug)]
struct Run {
    job: Job,
    slot: usize,
    started: Instant,
    ticket: Option<JobTicket>,
    kill: Option<Kill>,
}

/// What a finished job is logged and counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) id: u64,
    pub(crate) seq: u64,
    pub(crate) runtime: Duration,
    /// The joblog's Exitval: the exit code, or -1 if it timed out.
    pub(crate) exitval: i32,
    /// The joblog's Signal: the signal that ended it, or 0.
    pub(crate) signal: i32,
    pub(crate) failed: bool,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send `signal` to job `id`'s process group.
    Signal { id: u64, signal: Signal },
    /// Job `id`'s attempt is over and comes to nothing: drop its output.
    Discard(u64),
    /// Job `id` was killed by a halt or a signal: show its output only.
    Show(u64),
    /// Job `id` is done: log it, show its output, count it on the progress bar.
    Record(Record),
    /// Job `id` timed out (for `--explain`).
    TimedOut(u64),
    /// A line for `--explain`.
    Explain(String),
}

/// The answer to "may a job start?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Start job `id` now ([`Core::job`], [`Core::slot`]), then report
    /// [`Core::spawned`] or [`Core::spawn_failed`].
    Start(u64),
    /// There is room but nothing queued: read the input
    /// ([`Core::input_item`], [`Core::input_done`], [`Core::input_error`]).
    NeedInput,
    /// Not now.
    Wait,
}

/// How the core is set up (from the plan).
#[derive(Debug)]
pub(crate) struct Config {
    /// `--retries` (0: for ever).
    pub(crate) attempts: u32,
    pub(crate) halt: Option<Halt>,
    pub(crate) resume: Resume,
    /// How many jobs there are, if known.
    pub(crate) total: Option<u64>,
}

/// The runner's state.
#[derive(Debug)]
pub(crate) struct Core {
    cfg: Config,
    gate: Gate,
    timeouts: Timeouts,
    previous: BTreeMap<u64, Logged>,
    queue: VecDeque<Job>,
    running: HashMap<u64, Run>,
    next_id: u64,
    next_seq: u64,
    input_done: bool,
    input_error: Option<String>,
    counts: Counts,
    last_failure: Option<i32>,
    halted: Option<When>,
    stop: Option<Outcome>,
    /// Running jobs with a kill under way.
    killing: usize,
    /// `--broker`: `--timeout` is enforced by the workers.
    timeouts_elsewhere: bool,
    /// When a closed gate is to be looked at again.
    gate_retry: Option<Instant>,
    /// Out of processes or descriptors: start nothing until a job ends.
    spawn_paused: bool,
    jobs_started: u64,
    actions: VecDeque<Action>,
}

impl Core {
    /// `queue`: jobs known before any input (`--retry-failed`); `previous`:
    /// the joblog read for `--resume`.
    pub(crate) fn new(
        cfg: Config,
        gate: Gate,
        timeouts: Timeouts,
        queue: VecDeque<Job>,
        previous: BTreeMap<u64, Logged>,
    ) -> Self {
        Core {
            cfg,
            gate,
            timeouts,
            previous,
            queue,
            running: HashMap::new(),
            next_id: 0,
            next_seq: 1,
            input_done: false,
            input_error: None,
            counts: Counts::default(),
            last_failure: None,
            halted: None,
            stop: None,
            killing: 0,
            timeouts_elsewhere: false,
            gate_retry: None,
            spawn_paused: false,
            jobs_started: 0,
            actions: VecDeque::new(),
        }
    }

    /// The next thing to do, in order.
    pub(crate) fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The gate (limit, `-j auto`'s controller).
    pub(crate) fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Jobs running now.
    pub(crate) fn running(&self) -> usize {
        self.running.len()
    }

    /// Jobs waiting in the queue (new, retries, put back).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Done, failed and succeeded so far.
    pub(crate) fn counts(&self) -> Counts {
        self.counts
    }

    /// Jobs started (or that failed to start and were counted).
    pub(crate) fn jobs_started(&self) -> u64 {
        self.jobs_started
    }

    /// Running job `id`. Panics if it is not running.
    pub(crate) fn job(&self, id: u64) -> &Job {
        &self.running[&id].job
    }

    /// Running job `id`'s data (`--pipe`), for its stdin: a share of it if
    /// a retry may need it again, otherwise taken, so that a block is freed
    /// as soon as it is written out (memory stays at a few blocks however
    /// long the jobs run).
    pub(crate) fn stdin_for(&mut self, id: u64) -> Option<JobStdin> {
        let job = &mut self.running.get_mut(&id)?.job;
        if self.cfg.attempts == 1 {
            job.stdin.take()
        } else {
            job.stdin.clone()
        }
    }

    /// Running job `id`'s slot. Panics if it is not running.
    pub(crate) fn slot(&self, id: u64) -> usize {
        self.running[&id].slot
    }

    /// An input item: queued, or `Some(seq)` if `--resume` skips it.
    pub(crate) fn input_item(&mut self, args: Args) -> Option<u64> {
        self.input_with(args, None)
    }

    /// A block of data (`--pipe`), with `args` for its command: queued, or
    /// `Some(seq)` if `--resume` skips it.
    pub(crate) fn input_block(&mut self, args: Args, stdin: JobStdin) -> Option<u64> {
        self.input_with(args, Some(stdin))
    }

    fn input_with(&mut self, args: Args, stdin: Option<JobStdin>) -> Option<u64> {
        let seq = self.next_seq;
        self.next_seq += 1;
        if skip(self.cfg.resume, &self.previous, seq) {
            return Some(seq);
        }
        self.queue.push_back(Job {
            seq,
            args,
            attempts: 0,
            command: None,
            stdin,
        });
        None
    }

    /// The input is exhausted.
    pub(crate) fn input_done(&mut self) {
        self.input_done = true;
    }

    /// The input failed: no more of it; the run ends in an error.
    pub(crate) fn input_error(&mut self, e: String) {
        self.input_error = Some(e);
        self.input_done = true;
    }

    /// May a job start at `now`?
    pub(crate) fn admit(&mut self, now: Instant, sys: &mut dyn Readings) -> Admit {
        if self.stop.is_some() || self.halted.is_some() {
            return Admit::Wait;
        }
        if self.spawn_paused || self.running.len() >= self.gate.limit() {
            return Admit::Wait;
        }
        if let Err(closed) = self.gate.check(now, self.running.len(), sys) {
            if closed.evict {
                self.evict_youngest(now);
            }
            self.gate_retry = Some(closed.retry_at);
            return Admit::Wait;
        }
        self.gate_retry = None;
        let Some(job) = self.queue.pop_front() else {
            return if self.input_done {
                Admit::Wait
            } else {
                Admit::NeedInput
            };
        };
        let id = self.next_id;
        self.next_id += 1;
        let slot = self.gate.slots.take();
        self.gate.started(now);
        self.running.insert(
            id,
            Run {
                job,
                slot,
                started: now,
                ticket: None,
                kill: None,
            },
        );
        Admit::Start(id)
    }

    /// Job `id` was started.
    pub(crate) fn spawned(&mut self, id: u64) {
        self.jobs_started += 1;
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        if let Some(c) = self.gate.auto_mut() {
            r.ticket = Some(c.job_started(r.started));
        }
    }

    /// Job `id` could not be started. `transient`: out of processes or
    /// descriptors, so it waits for a running job to end and is put back
    /// (`true` is returned); otherwise it ends now with exit code `code`
    /// (the shell shows why first).
    pub(crate) fn spawn_failed(
        &mut self,
        id: u64,
        transient: bool,
        code: i32,
        now: Instant,
        sys: &mut dyn Readings,
    ) -> bool {
        let Some(r) = self.running.remove(&id) else {
            return false;
        };
        if transient && !self.running.is_empty() {
            self.gate.slots.put(r.slot);
            self.queue.push_front(r.job);
            self.spawn_paused = true;
            return true;
        }
        self.jobs_started += 1;
        self.complete(id, r, Exit::status(Some(code), None), now, sys);
        false
    }

    /// Job `id` exited (reaped, its pipes drained).
    pub(crate) fn exited(&mut self, id: u64, exit: Exit, now: Instant, sys: &mut dyn Readings) {
        let Some(mut r) = self.running.remove(&id) else {
            return;
        };
        if let Some(k) = &mut r.kill {
            self.killing -= 1;
            // Whatever of its group is left gets no more grace.
            if let Some(signal) = k.escalation.hurry() {
                self.actions.push_back(Action::Signal { id, signal });
            }
        } else if exit.signal.is_some() {
            // Its first process was killed (a `kill -9` of its shell, say):
            // what it started goes too, rather than run on unwatched.
            self.actions.push_back(Action::Signal {
                id,
                signal: Signal::Kill,
            });
        }
        self.gate.job_exited(exit.max_rss);
        self.spawn_paused = false;
        self.complete(id, r, exit, now, sys);
    }

    /// An attempt ended: retry it, or log, print and count it.
    fn complete(&mut self, id: u64, r: Run, exit: Exit, now: Instant, sys: &mut dyn Readings) {
        self.gate.slots.put(r.slot);
        let runtime = now.saturating_duration_since(r.started);
        let kill_reason = r.kill.map(|k| k.reason);
        let (exitval, signal, failed) = judge(exit, kill_reason == Some(KillReason::Timeout));

        if let (Some(auto), Some(ticket)) = (self.gate.auto_mut(), r.ticket) {
            let decision = if kill_reason.is_some() {
                auto.job_cancelled(ticket, now);
                None
            } else {
                auto.job_finished(ticket, exit.cpu, now)
            };
            if let Some(d) = decision {
                self.actions.push_back(Action::Explain(format!("auto {d}")));
            }
        }
        if let Some(d) = self.gate.bound_by_memory(now, self.running.len(), sys) {
            self.actions.push_back(Action::Explain(format!("auto {d}")));
        }

        let stopping = self.stop.is_some() || self.halted.is_some();
        let mut job = r.job;
        match retry::disposition(
            kill_reason,
            failed,
            stopping,
            self.cfg.attempts,
            job.attempts,
        ) {
            Disposition::RunLater => {
                self.actions.push_back(Action::Discard(id));
                self.queue.push_front(job);
                return;
            }
            Disposition::ShowOnly => {
                self.actions.push_back(Action::Show(id));
                return;
            }
            Disposition::Retry => {
                self.actions.push_back(Action::Discard(id));
                job.attempts += 1;
                self.queue.push_front(job);
                return;
            }
            Disposition::Final => {}
        }

        self.actions.push_back(Action::Record(Record {
            id,
            seq: job.seq,
            runtime,
            exitval,
            signal,
            failed,
        }));
        self.counts.done += 1;
        if failed {
            self.counts.failed += 1;
            self.last_failure = Some(if exitval > 0 {
                exitval
            } else if signal > 0 {
                128 + signal
            } else {
                1
            });
        } else {
            self.counts.succeeded += 1;
            self.timeouts.succeeded(runtime);
        }
        if self.halted.is_none()
            && let Some(h) = self.cfg.halt
            && h.triggered(self.counts, self.cfg.total)
        {
            self.halted = Some(h.when);
            if h.when == When::Now {
                self.kill_all(KillReason::Stop, now);
            }
        }
    }

    /// A signal (SIGINT, SIGTERM, SIGHUP) came: stop, killing every job; a
    /// second one kills without grace.
    pub(crate) fn signal_received(&mut self, sig: i32, now: Instant) {
        if self.stop.is_none() {
            self.stop = Some(Outcome::Interrupted(sig));
            self.kill_all(KillReason::Stop, now);
            return;
        }
        for (&id, r) in &mut self.running {
            self.actions.push_back(Action::Signal {
                id,
                signal: Signal::Kill,
            });
            if let Some(k) = &mut r.kill {
                k.escalation.hurry();
            }
        }
    }

    /// Our stdout's reader went away: stop.
    pub(crate) fn broken_pipe(&mut self, now: Instant) {
        if self.stop.is_none() {
            self.stop = Some(Outcome::BrokenPipe);
            self.kill_all(KillReason::Stop, now);
        }
    }

    fn kill_all(&mut self, reason: KillReason, now: Instant) {
        let mut ids: Vec<u64> = self.running.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.kill(id, reason, now);
        }
    }

    fn kill(&mut self, id: u64, reason: KillReason, now: Instant) {
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        match &mut r.kill {
            Some(k) => {
                // Already dying; a stop overrides a timeout's bookkeeping.
                if reason == KillReason::Stop {
                    k.reason = KillReason::Stop;
                }
            }
            None => {
                let (escalation, signal) = Escalation::begin(now, KILL_GRACE);
                self.actions.push_back(Action::Signal { id, signal });
                r.kill = Some(Kill { reason, escalation });
                self.killing += 1;
            }
        }
    }

    /// Memory is short: the youngest job not already dying makes room.
    fn evict_youngest(&mut self, now: Instant) {
        let youngest = self
            .running
            .iter()
            .filter(|(_, r)| r.kill.is_none())
            .max_by_key(|&(&id, r)| (r.started, id))
            .map(|(&id, _)| id);
        if let Some(id) = youngest {
            self.actions.push_back(Action::Explain(
                "memory below half of --memfree, or --limit said 2: killing the youngest job to run it later".into(),
            ));
            self.kill(id, KillReason::Memory, now);
        }
    }

    /// Time passed: escalate kills whose grace is over, time out jobs.
    pub(crate) fn tick(&mut self, now: Instant) {
        if !self.timeouts.is_set() && self.killing == 0 {
            return;
        }
        let timeout = self.timeouts.current().filter(|_| !self.timeouts_elsewhere);
        let mut expired = Vec::new();
        for (&id, r) in &mut self.running {
            match &mut r.kill {
                Some(k) => {
                    if let Some(signal) = k.escalation.poll(now) {
                        self.actions.push_back(Action::Signal { id, signal });
                    }
                }
                None => {
                    if let Some(t) = timeout
                        && now >= r.started + t
                    {
                        expired.push(id);
                    }
                }
            }
        }
        expired.sort_unstable();
        for id in expired {
            self.actions.push_back(Action::TimedOut(id));
            self.kill(id, KillReason::Timeout, now);
        }
    }

    /// `--timeout` as it stands now (`--broker` sends it with each job).
    pub(crate) fn current_timeout(&mut self) -> Option<Duration> {
        self.timeouts.current()
    }

    /// `--broker`: jobs are timed out where they run (from their start
    /// there, not from their submission), and told of with
    /// [`timed_out_elsewhere`](Self::timed_out_elsewhere).
    pub(crate) fn time_out_elsewhere(&mut self) {
        self.timeouts_elsewhere = true;
    }

    /// `--broker`: job `id` was killed by its worker for its `--timeout`;
    /// it ends as a local timeout would (Exitval -1, retried by the same
    /// rules).
    pub(crate) fn timed_out_elsewhere(&mut self, id: u64) {
        if let Some(r) = self.running.get_mut(&id)
            && r.kill.is_none()
        {
            let (escalation, _) = Escalation::without_grace();
            r.kill = Some(Kill {
                reason: KillReason::Timeout,
                escalation,
            });
            self.killing += 1;
            self.actions.push_back(Action::TimedOut(id));
        }
    }

    /// The next time [`tick`](Self::tick) or [`admit`](Self::admit) has
    /// something to do, if any.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        let mut next: Option<Instant> = self.gate_retry;
        let mut consider = |t: Instant| {
            next = Some(next.map_or(t, |n| n.min(t)));
        };
        if self.killing > 0 || self.timeouts.is_set() {
            let timeout = self.timeouts.current().filter(|_| !self.timeouts_elsewhere);
            for r in self.running.values() {
                match &r.kill {
                    Some(k) => {
                        if let Some(t) = k.escalation.deadline() {
                            consider(t);
                        }
                    }
                    None => {
                        if let Some(t) = timeout {
                            consider(r.started + t);
                        }
                    }
                }
            }
        }
        next
    }

    /// Nothing runs and nothing more will start.
    pub(crate) fn is_finished(&self) -> bool {
        let no_more = self.stop.is_some()
            || self.halted.is_some()
            || (self.input_done && self.queue.is_empty());
        self.running.is_empty() && no_more
    }

    /// How the run ended (once finished): `Err` if the input failed.
    pub(crate) fn outcome(&self) -> Result<Outcome, String> {
        if let Some(outcome) = self.stop {
            return Ok(outcome);
        }
        if let Some(e) = &self.input_error {
            return Err(e.clone());
        }
        Ok(Outcome::Finished(halt::exit_status(
            self.cfg.halt.as_ref(),
            self.halted.is_some(),
            self.counts,
            self.cfg.total,
            self.last_failure,
        )))
    }
}

/// The joblog's Exitval and Signal of an attempt, and whether it failed.
fn judge(exit: Exit, timed_out: bool) -> (i32, i32, bool) {
    let (exitval, signal) = if timed_out {
        (-1, exit.signal.unwrap_or(Signal::Term.as_raw()))
    } else {
        (exit.code.unwrap_or(0), exit.signal.unwrap_or(0))
    };
    let failed =
        timed_out || exitval != 0 || signal != 0 || (exit.code.is_none() && exit.signal.is_none());
    (exitval, signal, failed)
}
