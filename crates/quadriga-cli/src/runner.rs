//! The event loop: start jobs up to the limit, carry their output, reap them,
//! time them out, log them, retry them, halt.
//!
//! One thread does it all, sleeping in `epoll_wait` on every job's stdout and
//! stderr pipes and pidfd, the caught-signal pipe and the input thread's
//! eventfd, with a timeout for the nearest timer (a job's timeout, a kill's
//! escalation, `--delay`, a `--memfree`/`--load` recheck).
//!
//! A job's life: rendered from its arguments, spawned (slot and controller
//! ticket taken), its pipes read as they fill, and, when its pidfd says it
//! exited, reaped with `wait4`, its pipes drained to what is buffered, and
//! finished: retried, or logged, printed and counted, after which the halt
//! policy is checked. Killing (timeout, halt, a signal, `--memfree`) is
//! SIGTERM to the job's process group, then SIGKILL 300 ms later (and at
//! once to whatever of the group outlives the job).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use quadriga::adapt::{ConcurrencyController, JobTicket, LimitBound};
use rustix::event::epoll;
use rustix::process::Signal;

use crate::args::{Jobs, Plan, Results, Resume, Tag, Timeout};
use crate::exec::{self, Exit, Program, Signals};
use crate::halt::{self, Counts, When};
use crate::input::{Args, Feed, Next, OpenInput};
use crate::joblog::{self, Entry, JobLog, Logged};
use crate::output::{JobOutput, Mode, Output, Which};
use crate::progress;
use crate::template::JobContext;

/// From SIGTERM to SIGKILL.
const KILL_GRACE: Duration = Duration::from_millis(300);
/// How often a closed `--memfree`/`--load` gate is checked again.
const GATE_RECHECK: Duration = Duration::from_millis(100);
/// Descriptors a job holds (two pipes, a pidfd) plus margin.
const FDS_PER_JOB: u64 = 4;

const TOKEN_SIGNAL: u64 = u64::MAX;
const TOKEN_INPUT: u64 = u64::MAX - 1;
const KIND_OUT: u64 = 0;
const KIND_ERR: u64 = 1;
const KIND_PID: u64 = 2;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Ran to the end (or halted): the exit status by the policy.
    Finished(i32),
    /// Stopped by a signal.
    Interrupted(i32),
    /// Our stdout was closed by its reader.
    BrokenPipe,
}

/// A job to run (again).
#[derive(Debug)]
struct Job {
    seq: u64,
    args: Args,
    /// Attempts made before this one.
    attempts: u32,
    /// `--retry-failed`: the command from the joblog, run as it is.
    command: Option<Vec<u8>>,
}

/// Why a job is being killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillReason {
    Timeout,
    /// `--halt now`, or a signal to the runner.
    Stop,
    /// `--memfree`: put it back in the queue.
    Memory,
}

#[derive(Debug, Clone, Copy)]
struct Kill {
    reason: KillReason,
    escalate_at: Instant,
    escalated: bool,
}

/// Result files of one job.
#[derive(Debug)]
struct ResultFiles {
    out: File,
    err: File,
}

/// A running job.
#[derive(Debug)]
struct Running {
    job: Job,
    slot: usize,
    command: Vec<u8>,
    output: JobOutput,
    results: Option<ResultFiles>,
    started: Instant,
    started_wall: SystemTime,
    ticket: Option<JobTicket>,
    pid: i32,
    /// Held open while the job runs: it is in the epoll set.
    _pidfd: OwnedFd,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    kill: Option<Kill>,
}

/// Job slots ({%}): the lowest free number is taken.
#[derive(Debug, Default)]
struct Slots {
    free: BinaryHeap<Reverse<usize>>,
    next: usize,
}

impl Slots {
    fn take(&mut self) -> usize {
        match self.free.pop() {
            Some(Reverse(s)) => s,
            None => {
                self.next += 1;
                self.next
            }
        }
    }

    fn put(&mut self, slot: usize) {
        self.free.push(Reverse(slot));
    }
}

/// Everything the loop owns.
struct Runner {
    plan: Plan,
    epoll: OwnedFd,
    signals: Signals,
    running: HashMap<u64, Running>,
    next_id: u64,
    queue: VecDeque<Job>,
    feed: Feed,
    input_done: bool,
    input_error: Option<String>,
    next_seq: u64,
    total: Option<u64>,
    previous: BTreeMap<u64, Logged>,
    auto: Option<ConcurrencyController>,
    fixed_limit: usize,
    slots: Slots,
    output: Output,
    joblog: Option<JobLog>,
    counts: Counts,
    last_failure: Option<i32>,
    halted: Option<When>,
    stop: Option<Outcome>,
    /// Run times of succeeded jobs (`--timeout N%`), at most 20,000.
    succeeded_runtimes: Vec<Duration>,
    /// The median of `succeeded_runtimes`, and how many it was taken over.
    median: Option<(usize, Duration)>,
    last_start: Option<Instant>,
    gate_retry: Option<Instant>,
    spawn_paused: bool,
    killing: usize,
    mem_reading: Option<(Instant, u64)>,
    mean_rss: Option<f64>,
    progress: Option<ProgressBar>,
    buf: Vec<u8>,
    started_at: Instant,
    jobs_started: u64,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("running", &self.running.len())
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

/// Runs the plan.
pub(crate) fn run(plan: Plan) -> Result<Outcome> {
    let previous = match (&plan.joblog, plan.resume) {
        (Some((path, _)), r) if r != Resume::No => joblog::read(path)
            .with_context(|| format!("cannot read the joblog {}", path.display()))?,
        _ => BTreeMap::new(),
    };
    let mut queue = VecDeque::new();
    let feed = match &plan.input {
        Some(spec) => {
            let materialize = plan.dry_run
                || plan.progress.is_some()
                || plan.halt.as_ref().is_some_and(|h| h.needs_total());
            OpenInput::open(spec.clone())
                .map_err(UsageError)?
                .into_feed(materialize)
                .context("cannot read the input")?
        }
        None => {
            // --retry-failed: the failed commands of the joblog, by sequence.
            for (&seq, logged) in &previous {
                if !logged.succeeded() {
                    queue.push_back(Job {
                        seq,
                        args: Vec::new(),
                        attempts: 0,
                        command: Some(logged.command.clone()),
                    });
                }
            }
            Feed::Ready(VecDeque::new())
        }
    };
    let mut output = Output::new(
        plan.mode,
        plan.keep_order && plan.resume != Resume::RetryFailed,
    );

    if plan.dry_run {
        return dry_run(&plan, feed, queue, &previous, &mut output);
    }

    let total = feed.total().map(|n| n as u64 + queue.len() as u64);
    let joblog = match &plan.joblog {
        Some((path, append)) => Some(
            JobLog::open(path, *append)
                .with_context(|| format!("cannot open the joblog {}", path.display()))?,
        ),
        None => None,
    };

    let nofile = exec::raise_nofile_limit();
    let per_job = if plan.mode == Mode::Ungroup {
        2
    } else {
        FDS_PER_JOB
    };
    let fd_bound = (nofile.saturating_sub(64) / per_job).max(1) as usize;
    let (auto, fixed_limit) = match plan.jobs {
        Jobs::Auto => {
            let mut c = ConcurrencyController::new(plan.cores).with_max(plan.max_jobs);
            c.set_bound(LimitBound::OpenFiles, Some(fd_bound));
            (Some(c), 0)
        }
        Jobs::Fixed(n) => {
            if n > fd_bound {
                eprintln!(
                    "quadriga: warning: -j {n} needs more open files than allowed; using {fd_bound}"
                );
            }
            (None, n.min(fd_bound).max(1))
        }
    };

    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let signals = Signals::install().context("cannot catch signals")?;
    epoll::add(
        &epoll,
        signals.fd(),
        epoll::EventData::new_u64(TOKEN_SIGNAL),
        epoll::EventFlags::IN,
    )?;
    if let Some(fd) = feed.wake_fd() {
        epoll::add(
            &epoll,
            fd,
            epoll::EventData::new_u64(TOKEN_INPUT),
            epoll::EventFlags::IN,
        )?;
    }

    let progress = plan.progress.map(|kind| {
        let bar = progress::new(kind, total);
        output.set_progress(bar.clone());
        bar
    });

    let mut runner = Runner {
        epoll,
        signals,
        running: HashMap::new(),
        next_id: 0,
        queue,
        feed,
        input_done: false,
        input_error: None,
        next_seq: 1,
        total,
        previous,
        auto,
        fixed_limit,
        slots: Slots::default(),
        output,
        joblog,
        counts: Counts::default(),
        last_failure: None,
        halted: None,
        stop: None,
        succeeded_runtimes: Vec::new(),
        median: None,
        last_start: None,
        gate_retry: None,
        spawn_paused: false,
        killing: 0,
        mem_reading: None,
        mean_rss: None,
        progress,
        buf: vec![0; 64 * 1024],
        started_at: Instant::now(),
        jobs_started: 0,
        plan,
    };
    runner.announce();
    runner.main_loop()?;
    runner.finish()
}

/// `--dry-run`: print every command, run nothing.
fn dry_run(
    plan: &Plan,
    mut feed: Feed,
    queue: VecDeque<Job>,
    previous: &BTreeMap<u64, Logged>,
    output: &mut Output,
) -> Result<Outcome> {
    for job in queue {
        output.line(Which::Out, job.command.as_deref().unwrap_or_default())?;
    }
    let mut seq = 0;
    loop {
        let args = match feed.next() {
            Next::Job(a) => a,
            Next::Done => break,
            Next::Pending => unreachable!("the dry run reads its input first"),
            Next::Error(e) => anyhow::bail!("reading the input: {e}"),
        };
        seq += 1;
        if skip(plan.resume, previous, seq) {
            continue;
        }
        let ctx = JobContext {
            args: &args,
            seq,
            slot: 1,
        };
        output.line(Which::Out, &plan.template.render(ctx).shell)?;
    }
    Ok(Outcome::Finished(0))
}

/// Whether `--resume`/`--resume-failed` skips this sequence number.
fn skip(resume: Resume, previous: &BTreeMap<u64, Logged>, seq: u64) -> bool {
    match resume {
        Resume::Resume => previous.contains_key(&seq),
        Resume::ResumeFailed => previous.get(&seq).is_some_and(Logged::succeeded),
        Resume::No | Resume::RetryFailed => false,
    }
}

/// An error that is the user's, not ours (exit status 255 either way, but no
/// "error:" chain).
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl Runner {
    fn limit(&self) -> usize {
        match &self.auto {
            Some(c) => c.limit(),
            None => self.fixed_limit,
        }
    }

    fn explain(&self, msg: impl std::fmt::Display) {
        if self.plan.explain > 0 {
            let t = self.started_at.elapsed().as_secs_f64();
            let line = format!("quadriga: {t:7.3} s  {msg}");
            match &self.progress {
                Some(bar) => bar.suspend(|| eprintln!("{line}")),
                None => eprintln!("{line}"),
            }
        }
    }

    fn announce(&self) {
        if self.plan.explain == 0 {
            return;
        }
        let how = if self.plan.template.is_plain() {
            "plain words: jobs are executed directly, without a shell".to_string()
        } else {
            format!(
                "shell syntax: jobs run with {} -c",
                self.plan.shell.to_string_lossy()
            )
        };
        self.explain(format_args!("command: {how}"));
        match &self.auto {
            Some(c) => self.explain(format_args!("auto {}", c.last_decision())),
            None => self.explain(format_args!("-j {}", self.fixed_limit)),
        }
    }

    fn main_loop(&mut self) -> Result<()> {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
        loop {
            let now = Instant::now();
            self.check_timers(now);
            if self.stop.is_none() && self.halted.is_none() {
                self.start_jobs()?;
            }
            let no_more = self.stop.is_some()
                || self.halted.is_some()
                || (self.input_done && self.queue.is_empty());
            if self.running.is_empty() && no_more {
                return Ok(());
            }
            let timeout = self.next_wakeup(Instant::now());
            let ts = timeout.map(|d| rustix::time::Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: i64::from(d.subsec_nanos()),
            });
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                ts.as_ref(),
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e).context("epoll_wait"),
            }
            let mut exited = Vec::new();
            for ev in &events {
                let token = ev.data.u64();
                match token {
                    TOKEN_SIGNAL => self.on_signals(),
                    TOKEN_INPUT => self.feed.drain_wake(),
                    _ => {
                        let id = token >> 2;
                        match token & 3 {
                            KIND_OUT => self.on_readable(id, Which::Out),
                            KIND_ERR => self.on_readable(id, Which::Err),
                            KIND_PID => exited.push(id),
                            _ => {}
                        }
                    }
                }
            }
            for id in exited {
                self.on_exit(id)?;
            }
        }
    }

    /// Starts jobs while there is room, input and an open gate.
    fn start_jobs(&mut self) -> Result<()> {
        while !self.spawn_paused && self.running.len() < self.limit() {
            let now = Instant::now();
            if let Err(retry) = self.gate(now) {
                self.gate_retry = Some(retry);
                return Ok(());
            }
            self.gate_retry = None;
            let job = match self.queue.pop_front() {
                Some(j) => j,
                None => {
                    if self.input_done {
                        return Ok(());
                    }
                    match self.feed.next() {
                        Next::Job(args) => {
                            let seq = self.next_seq;
                            self.next_seq += 1;
                            if skip(self.plan.resume, &self.previous, seq) {
                                self.output.skip(seq)?;
                                continue;
                            }
                            Job {
                                seq,
                                args,
                                attempts: 0,
                                command: None,
                            }
                        }
                        Next::Pending => return Ok(()),
                        Next::Done => {
                            self.input_done = true;
                            return Ok(());
                        }
                        Next::Error(e) => {
                            eprintln!("quadriga: error reading the input: {e}");
                            self.input_error = Some(e);
                            self.input_done = true;
                            return Ok(());
                        }
                    }
                }
            };
            self.start(job)?;
        }
        Ok(())
    }

    /// `--delay`, `--memfree`, `--load`: `Err(when to look again)` if closed.
    fn gate(&mut self, now: Instant) -> Result<(), Instant> {
        if let (Some(delay), Some(last)) = (self.plan.delay, self.last_start)
            && now < last + delay
        {
            return Err(last + delay);
        }
        if let Some(min) = self.plan.memfree {
            let avail = self.mem_available(now);
            if avail < min {
                if avail < min / 2 && self.running.len() > 1 {
                    self.kill_youngest_for_memory(now);
                }
                return Err(now + GATE_RECHECK);
            }
        }
        if let Some(max) = self.plan.load
            && exec::runnable_processes().is_some_and(|n| n >= max)
        {
            return Err(now + GATE_RECHECK);
        }
        Ok(())
    }

    fn mem_available(&mut self, now: Instant) -> u64 {
        if let Some((at, v)) = self.mem_reading
            && now.duration_since(at) < Duration::from_millis(20)
        {
            return v;
        }
        let v = exec::mem_available().unwrap_or(u64::MAX);
        self.mem_reading = Some((now, v));
        v
    }

    fn kill_youngest_for_memory(&mut self, now: Instant) {
        let youngest = self
            .running
            .iter()
            .filter(|(_, r)| r.kill.is_none())
            .max_by_key(|(_, r)| r.started)
            .map(|(&id, _)| id);
        if let Some(id) = youngest {
            self.explain(
                "memory below half of --memfree: killing the youngest job to run it later",
            );
            self.kill(id, KillReason::Memory, now);
        }
    }

    fn start(&mut self, job: Job) -> Result<()> {
        let slot = self.slots.take();
        let ctx = JobContext {
            args: &job.args,
            seq: job.seq,
            slot,
        };
        let (command, argv) = match &job.command {
            Some(c) => (c.clone(), None),
            None => {
                let r = self.plan.template.render(ctx);
                (r.shell, r.argv)
            }
        };
        if self.plan.print_commands {
            self.output.line(Which::Err, &command)?;
        }
        let tag = match &self.plan.tag {
            Some(Tag::Args) => Some(job.args.join(&b' ')),
            Some(Tag::Template(t)) => Some(t.render_unquoted(ctx)),
            None => None,
        };
        let results = match &self.plan.results {
            Some(r) => match open_results(r, ctx) {
                Ok(f) => Some(f),
                Err(e) => {
                    eprintln!("quadriga: warning: cannot write --results: {e}");
                    None
                }
            },
            None => None,
        };
        let mut output = self.output.start(job.seq, tag);
        let program = match &argv {
            Some(a) => Program::Direct(a),
            None => Program::Shell {
                shell: &self.plan.shell,
                script: &command,
            },
        };
        let seq_s = job.seq.to_string();
        let slot_s = slot.to_string();
        let env = [
            ("PARALLEL_SEQ", seq_s.as_str()),
            ("PARALLEL_JOBSLOT", slot_s.as_str()),
        ];
        let capture = self.output.mode() != Mode::Ungroup;
        let started = Instant::now();
        let started_wall = SystemTime::now();
        self.last_start = Some(started);
        let spawned = exec::spawn(program, capture, &env);
        let s = match spawned {
            Ok(s) => s,
            Err(e) => {
                let transient = matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM)
                );
                if transient && !self.running.is_empty() {
                    // Out of processes or descriptors: wait for a job to end.
                    self.slots.put(slot);
                    self.queue.push_front(job);
                    self.spawn_paused = true;
                    self.explain(format_args!(
                        "cannot start more jobs now ({e}): waiting for one to end"
                    ));
                    return Ok(());
                }
                // What a shell would say: 127 not found, 126 not executable.
                let code = match e.kind() {
                    io::ErrorKind::NotFound => 127,
                    io::ErrorKind::PermissionDenied => 126,
                    _ => 127,
                };
                let name = match (&argv, &job.command) {
                    (Some(a), _) => a[0].clone(),
                    _ => self.plan.shell.as_bytes().to_vec(),
                };
                let mut msg = b"quadriga: ".to_vec();
                msg.extend_from_slice(&name);
                if code == 127 && e.kind() == io::ErrorKind::NotFound {
                    msg.extend_from_slice(b": command not found\n");
                } else {
                    msg.extend_from_slice(format!(": {e}\n").as_bytes());
                }
                if capture {
                    self.output.data(&mut output, Which::Err, &msg)?;
                } else {
                    let _ = io::stderr().write_all(&msg);
                }
                self.jobs_started += 1;
                let exit = Exit {
                    code: Some(code),
                    signal: None,
                    cpu: Duration::ZERO,
                    max_rss: 0,
                };
                return self.complete(
                    Attempt {
                        job,
                        slot,
                        command,
                        output,
                        started,
                        started_wall,
                        ticket: None,
                        kill: None,
                    },
                    exit,
                    Instant::now(),
                );
            }
        };
        self.jobs_started += 1;
        let id = self.next_id;
        self.next_id += 1;
        let add = |fd: &OwnedFd, kind: u64| {
            epoll::add(
                &self.epoll,
                fd.as_fd(),
                epoll::EventData::new_u64(id << 2 | kind),
                epoll::EventFlags::IN,
            )
        };
        add(&s.pidfd, KIND_PID)?;
        if let Some(fd) = &s.stdout {
            add(fd, KIND_OUT)?;
        }
        if let Some(fd) = &s.stderr {
            add(fd, KIND_ERR)?;
        }
        let ticket = self.auto.as_mut().map(|c| c.job_started(started));
        self.running.insert(
            id,
            Running {
                job,
                slot,
                command,
                output,
                results,
                started,
                started_wall,
                ticket,
                pid: s.pid,
                _pidfd: s.pidfd,
                stdout: s.stdout,
                stderr: s.stderr,
                kill: None,
            },
        );
        self.update_progress();
        Ok(())
    }

    fn on_readable(&mut self, id: u64, which: Which) {
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        if let Err(e) = drain(&mut self.buf, &mut self.output, r, which, false) {
            self.output_error(e);
        }
    }

    fn output_error(&mut self, e: io::Error) {
        if self.output.broken_pipe {
            if self.stop.is_none() {
                self.stop = Some(Outcome::BrokenPipe);
                self.kill_all(KillReason::Stop);
            }
        } else {
            eprintln!("quadriga: error writing output: {e}");
        }
    }

    fn on_exit(&mut self, id: u64) -> Result<()> {
        let Some(mut r) = self.running.remove(&id) else {
            return Ok(());
        };
        let exit = match exec::reap(r.pid, false) {
            Ok(Some(exit)) => exit,
            Ok(None) => {
                // Not yet (spurious readiness): keep waiting.
                self.running.insert(id, r);
                return Ok(());
            }
            Err(e) => {
                eprintln!("quadriga: cannot reap job {}: {e}", r.job.seq);
                Exit {
                    code: None,
                    signal: None,
                    cpu: Duration::ZERO,
                    max_rss: 0,
                }
            }
        };
        let now = Instant::now();
        // What the job wrote before it exited is in the pipes; anything a
        // background process of it writes later is not waited for.
        for which in [Which::Out, Which::Err] {
            if let Err(e) = drain(&mut self.buf, &mut self.output, &mut r, which, true) {
                self.output_error(e);
            }
        }
        if let Some(k) = &r.kill {
            self.killing -= 1;
            if exec::group_alive(r.pid) && !k.escalated {
                exec::signal_group(r.pid, Signal::KILL);
            }
        }
        if let Some(m) = &mut self.mean_rss {
            *m = 0.8 * *m + 0.2 * exit.max_rss as f64;
        } else if self.plan.memfree.is_some() {
            self.mean_rss = Some(exit.max_rss as f64);
        }
        self.spawn_paused = false;
        let Running {
            job,
            slot,
            command,
            output,
            results,
            started,
            started_wall,
            ticket,
            kill,
            ..
        } = r;
        drop(results);
        self.complete(
            Attempt {
                job,
                slot,
                command,
                output,
                started,
                started_wall,
                ticket,
                kill,
            },
            exit,
            now,
        )
    }

    /// An attempt ended: retry it, or log, print and count it.
    fn complete(&mut self, a: Attempt, exit: Exit, now: Instant) -> Result<()> {
        self.slots.put(a.slot);
        let runtime = now.saturating_duration_since(a.started);
        let kill_reason = a.kill.map(|k| k.reason);
        let timed_out = kill_reason == Some(KillReason::Timeout);
        let (exitval, signal) = if timed_out {
            (-1, exit.signal.unwrap_or(libc::SIGTERM))
        } else {
            (exit.code.unwrap_or(0), exit.signal.unwrap_or(0))
        };
        let failed = timed_out
            || exitval != 0
            || signal != 0
            || (exit.code.is_none() && exit.signal.is_none());

        if let (Some(auto), Some(ticket)) = (self.auto.as_mut(), a.ticket) {
            let decision = if kill_reason.is_some() {
                auto.job_cancelled(ticket, now);
                None
            } else {
                auto.job_finished(ticket, exit.cpu, now)
            };
            if let Some(d) = decision {
                self.explain(format_args!("auto {d}"));
            }
        }
        if let (Some(min), Some(rss), true) =
            (self.plan.memfree, self.mean_rss, self.auto.is_some())
        {
            // Room for as many more jobs as fit above --memfree, at the mean
            // peak RSS of the jobs so far.
            let avail = self.mem_available(now);
            let room = (avail.saturating_sub(min) as f64 / rss.max(1e6)) as usize;
            let bound = self.running.len() + room;
            if let Some(d) = self
                .auto
                .as_mut()
                .and_then(|c| c.set_bound(LimitBound::Memory, Some(bound)))
            {
                self.explain(format_args!("auto {d}"));
            }
        }

        match kill_reason {
            Some(KillReason::Memory) => {
                // Put back, to run when there is memory again.
                self.output.discard(a.output);
                self.queue.push_front(a.job);
                return Ok(());
            }
            Some(KillReason::Stop) => {
                // Halted or interrupted: show what it wrote; not logged, so
                // --resume runs it again.
                if let Err(e) = self.output.finish(a.output) {
                    self.output_error(e);
                }
                return Ok(());
            }
            _ => {}
        }

        // Halting (now or soon) or stopped: a failure is final.
        let stopping = self.stop.is_some() || self.halted.is_some();
        if failed && !stopping {
            let attempts = self.plan.attempts;
            if attempts == 0 || a.job.attempts + 1 < attempts {
                self.output.discard(a.output);
                let mut job = a.job;
                job.attempts += 1;
                self.queue.push_front(job);
                return Ok(());
            }
        }

        if let Some(log) = &mut self.joblog {
            let entry = Entry {
                seq: a.job.seq,
                start: a.started_wall,
                runtime,
                receive: a.output.out.bytes,
                exitval,
                signal,
                command: &a.command,
            };
            if let Err(e) = log.write(&entry) {
                eprintln!("quadriga: error writing the joblog: {e}");
            }
        }
        if let Err(e) = self.output.finish(a.output) {
            self.output_error(e);
        }
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
            if matches!(self.plan.timeout, Some(Timeout::Percent(_))) {
                if self.succeeded_runtimes.len() >= 20_000 {
                    // Keep a sample: every other one.
                    let mut i = 0;
                    self.succeeded_runtimes.retain(|_| {
                        i += 1;
                        i % 2 == 0
                    });
                }
                self.succeeded_runtimes.push(runtime);
            }
        }
        if let Some(bar) = &self.progress {
            bar.inc(1);
        }
        self.update_progress();
        if self.plan.keep_order && self.plan.mode == Mode::LineBuffer {
            let next = self.output.next_seq();
            if let Some(r) = self.running.values_mut().find(|r| r.output.seq == next) {
                if let Err(e) = self.output.promote(&mut r.output) {
                    self.output_error(e);
                }
            }
        }
        if self.halted.is_none()
            && let Some(h) = self.plan.halt
            && h.triggered(self.counts, self.total)
        {
            self.halted = Some(h.when);
            if h.when == When::Now {
                self.kill_all(KillReason::Stop);
            }
        }
        Ok(())
    }

    fn update_progress(&self) {
        if let Some(bar) = &self.progress {
            bar.set_message(progress::message(self.running.len(), self.limit()));
        }
    }

    fn on_signals(&mut self) {
        for sig in self.signals.take() {
            if self.stop.is_none() {
                self.stop = Some(Outcome::Interrupted(sig));
                self.kill_all(KillReason::Stop);
            } else {
                // A second signal: no grace.
                for r in self.running.values_mut() {
                    exec::signal_group(r.pid, Signal::KILL);
                    if let Some(k) = &mut r.kill {
                        k.escalated = true;
                    }
                }
            }
        }
    }

    fn kill_all(&mut self, reason: KillReason) {
        let now = Instant::now();
        let ids: Vec<u64> = self.running.keys().copied().collect();
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
                exec::signal_group(r.pid, Signal::TERM);
                r.kill = Some(Kill {
                    reason,
                    escalate_at: now + KILL_GRACE,
                    escalated: false,
                });
                self.killing += 1;
            }
        }
    }

    /// The current `--timeout`, if any (a percentage needs three successes).
    fn current_timeout(&mut self) -> Option<Duration> {
        match self.plan.timeout? {
            Timeout::Fixed(d) => Some(d),
            Timeout::Percent(p) => {
                let n = self.succeeded_runtimes.len();
                if n < 3 {
                    return None;
                }
                if self.median.is_none_or(|(count, _)| count != n) {
                    let (_, median, _) = self.succeeded_runtimes.select_nth_unstable(n / 2);
                    self.median = Some((n, *median));
                }
                self.median.map(|(_, m)| m.mul_f64(p / 100.0))
            }
        }
    }

    fn check_timers(&mut self, now: Instant) {
        if self.plan.timeout.is_none() && self.killing == 0 {
            return;
        }
        let timeout = self.current_timeout();
        let mut expired = Vec::new();
        for (&id, r) in &mut self.running {
            match &mut r.kill {
                Some(k) => {
                    if !k.escalated && now >= k.escalate_at {
                        exec::signal_group(r.pid, Signal::KILL);
                        k.escalated = true;
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
        for id in expired {
            if let Some(r) = self.running.get(&id) {
                let mut cmd = r.command.clone();
                cmd.truncate(200);
                self.explain(format_args!(
                    "job {} timed out: {}",
                    r.job.seq,
                    String::from_utf8_lossy(&cmd)
                ));
            }
            self.kill(id, KillReason::Timeout, now);
        }
    }

    /// How long the loop may sleep.
    fn next_wakeup(&mut self, now: Instant) -> Option<Duration> {
        let mut next: Option<Instant> = self.gate_retry;
        let mut consider = |t: Instant| {
            next = Some(next.map_or(t, |n| n.min(t)));
        };
        if self.killing > 0 || self.plan.timeout.is_some() {
            let timeout = self.current_timeout();
            for r in self.running.values() {
                match &r.kill {
                    Some(k) if !k.escalated => consider(k.escalate_at),
                    Some(_) => {}
                    None => {
                        if let Some(t) = timeout {
                            consider(r.started + t);
                        }
                    }
                }
            }
        }
        // Never sleep long without looking around (cheap insurance).
        let cap = now + Duration::from_secs(1);
        let at = next.map_or(cap, |n| n.min(cap));
        Some(at.saturating_duration_since(now))
    }

    fn finish(mut self) -> Result<Outcome> {
        if let Err(e) = self.output.flush_all() {
            self.output_error(e);
        }
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
        if self.plan.explain > 0 {
            let elapsed = self.started_at.elapsed().as_secs_f64();
            let cpu = exec::self_cpu().as_secs_f64() * 1e3;
            let per_job = if self.jobs_started > 0 {
                cpu / self.jobs_started as f64
            } else {
                0.0
            };
            let limit = match &self.auto {
                Some(c) => format!("; -j auto ended at {}", c.limit()),
                None => String::new(),
            };
            self.explain(format_args!(
                "{} jobs ({} failed) in {elapsed:.3} s; runner CPU {cpu:.1} ms ({per_job:.4} ms per job){limit}",
                self.counts.done, self.counts.failed
            ));
        }
        if let Some(outcome) = self.stop {
            return Ok(outcome);
        }
        if let Some(e) = &self.input_error {
            anyhow::bail!("the input could not be read to the end: {e}");
        }
        Ok(Outcome::Finished(halt::exit_status(
            self.plan.halt.as_ref(),
            self.halted.is_some(),
            self.counts,
            self.total,
            self.last_failure,
        )))
    }
}

/// A finished attempt, whatever ran it.
#[derive(Debug)]
struct Attempt {
    job: Job,
    slot: usize,
    command: Vec<u8>,
    output: JobOutput,
    started: Instant,
    started_wall: SystemTime,
    ticket: Option<JobTicket>,
    kill: Option<Kill>,
}

/// Reads what a job's pipe holds: up to 1 MiB (fairness) or, with `all`
/// (the job has exited), what is buffered now, and no more: a background
/// process of the job that keeps writing cannot keep us here.
fn drain(
    buf: &mut [u8],
    output: &mut Output,
    r: &mut Running,
    which: Which,
    all: bool,
) -> io::Result<()> {
    let mut reads = 0;
    let mut left = usize::MAX;
    if all {
        let fd = match which {
            Which::Out => r.stdout.as_ref(),
            Which::Err => r.stderr.as_ref(),
        };
        if let Some(fd) = fd {
            left = rustix::io::ioctl_fionread(fd).map_or(usize::MAX, |n| n as usize);
        }
    }
    loop {
        let fd = match which {
            Which::Out => r.stdout.as_ref(),
            Which::Err => r.stderr.as_ref(),
        };
        let Some(fd) = fd else {
            return Ok(());
        };
        if all && left == 0 {
            close(r, which);
            return Ok(());
        }
        let want = buf.len().min(left);
        match rustix::io::read(fd, &mut buf[..want]) {
            Ok(0) => {
                close(r, which);
                return Ok(());
            }
            Ok(n) => {
                if all {
                    left -= n;
                }
                if let Some(res) = &mut r.results {
                    let f = match which {
                        Which::Out => &mut res.out,
                        Which::Err => &mut res.err,
                    };
                    if let Err(e) = f.write_all(&buf[..n]) {
                        eprintln!("quadriga: warning: cannot write --results: {e}");
                        r.results = None;
                    }
                }
                output.data(&mut r.output, which, &buf[..n])?;
            }
            Err(rustix::io::Errno::AGAIN) => {
                if all {
                    close(r, which);
                }
                return Ok(());
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => {
                close(r, which);
                return Ok(());
            }
        }
        reads += 1;
        if !all && reads >= 16 {
            return Ok(());
        }
    }
}

/// Closing the descriptor also takes it out of the epoll set.
fn close(r: &mut Running, which: Which) {
    match which {
        Which::Out => r.stdout = None,
        Which::Err => r.stderr = None,
    }
}

/// Creates a job's `--results` files.
fn open_results(results: &Results, ctx: JobContext<'_>) -> io::Result<ResultFiles> {
    let (out, err, seq) = match results {
        Results::Dir(dir) => {
            let mut path = dir.clone();
            for (i, a) in ctx.args.iter().enumerate() {
                path.push((i + 1).to_string());
                path.push(OsStr::from_bytes(&escape_path_part(a)));
            }
            std::fs::create_dir_all(&path)?;
            (path.join("stdout"), path.join("stderr"), path.join("seq"))
        }
        Results::Named(t) => {
            let name = t.render_unquoted(ctx);
            if name.ends_with(b"/") {
                let path = PathBuf::from(OsStr::from_bytes(&name));
                std::fs::create_dir_all(&path)?;
                (path.join("stdout"), path.join("stderr"), path.join("seq"))
            } else {
                let path = PathBuf::from(OsStr::from_bytes(&name));
                if let Some(parent) = path.parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent)?;
                }
                let with = |ext: &str| {
                    let mut n = name.clone();
                    n.extend_from_slice(ext.as_bytes());
                    PathBuf::from(OsStr::from_bytes(&n))
                };
                (path.clone(), with(".err"), with(".seq"))
            }
        }
    };
    std::fs::write(seq, format!("{}\n", ctx.seq))?;
    Ok(ResultFiles {
        out: File::create(out)?,
        err: File::create(err)?,
    })
}

/// An argument as one path component, as GNU parallel writes it: `\` → `\\`,
/// `/` → `\_`.
fn escape_path_part(a: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    for &b in a {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\_"),
            _ => out.push(b),
        }
    }
    if out.is_empty() || out == b"." || out == b".." {
        out.insert(0, b'\\');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_reuse_the_lowest_free() {
        let mut s = Slots::default();
        assert_eq!((s.take(), s.take(), s.take()), (1, 2, 3));
        s.put(2);
        s.put(1);
        assert_eq!(s.take(), 1);
        assert_eq!(s.take(), 2);
        assert_eq!(s.take(), 4);
    }

    #[test]
    fn result_path_parts() {
        assert_eq!(escape_path_part(b"x/y"), b"x\\_y");
        assert_eq!(escape_path_part(b"a\\b"), b"a\\\\b");
        assert_eq!(escape_path_part(b".."), b"\\..");
        assert_eq!(escape_path_part(b""), b"\\");
    }

    #[test]
    fn resume_skips() {
        let mut prev = BTreeMap::new();
        prev.insert(
            1,
            Logged {
                exitval: 0,
                signal: 0,
                command: Vec::new(),
            },
        );
        prev.insert(
            2,
            Logged {
                exitval: 1,
                signal: 0,
                command: Vec::new(),
            },
        );
        assert!(skip(Resume::Resume, &prev, 1));
        assert!(skip(Resume::Resume, &prev, 2));
        assert!(!skip(Resume::Resume, &prev, 3));
        assert!(skip(Resume::ResumeFailed, &prev, 1));
        assert!(!skip(Resume::ResumeFailed, &prev, 2));
        assert!(!skip(Resume::No, &prev, 1));
    }
}
