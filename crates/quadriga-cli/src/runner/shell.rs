//! The I/O around the core: epoll over pipes, pidfds, the signal pipe and
//! the input's eventfd; spawning, reading, reaping, signalling; printing,
//! logging and the progress bar.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use quadriga::adapt::{ConcurrencyController, LimitBound};
use quadriga::child::{self, Event, Exit, Interest, Poller, SignalPipe, Token};
use rustix::io::Errno;

use super::Outcome;
use super::gate::{Gate, GateConfig, Limit, System};
use super::kill::Timeouts;
use super::results::{ResultFiles, open_results};
use super::state::{Action, Admit, Config, Core, Job, Record};
use crate::args::{Jobs, Plan, Tag};
use crate::input::{Feed, Next};
use crate::joblog::{Entry, JobLog, Logged};
use crate::output::{JobOutput, Mode, Output, Which};
use crate::pipe::{Delivery, JobStdin, Pumped, TempPath, Writer};
use crate::program::{self, Program};
use crate::progress;
use crate::remote::client::{Client, Event as RemoteEvent, Submit};
use crate::remote::job::Program as RemoteProgram;
use crate::template::JobContext;
use crate::watchdog::Watchdog;

/// Descriptors a job holds (two pipes, a pidfd) plus margin.
const FDS_PER_JOB: u64 = 4;
/// The longest sleep without looking around (cheap insurance).
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How often `--fifo` named pipes are looked at to see if they were read.
const FIFO_POLL: Duration = Duration::from_millis(2);

/// What a descriptor in the poller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// The caught-signal pipe.
    Signal,
    /// The input thread's eventfd.
    Input,
    /// Job `id`'s stdout.
    Out(u64),
    /// Job `id`'s stderr.
    Err(u64),
    /// Job `id`'s pidfd: it exited.
    Exit(u64),
    /// Job `id`'s stdin (`--pipe`): room to write.
    In(u64),
    /// `--broker`: events from the remote client.
    Remote,
}

impl Token for Tok {
    fn to_parts(self) -> (u8, u64) {
        match self {
            Tok::Signal => (0, 0),
            Tok::Input => (1, 0),
            Tok::Out(id) => (2, id),
            Tok::Err(id) => (3, id),
            Tok::Exit(id) => (4, id),
            Tok::In(id) => (5, id),
            Tok::Remote => (6, 0),
        }
    }

    fn from_parts(kind: u8, index: u64) -> Option<Self> {
        Some(match kind {
            0 => Tok::Signal,
            1 => Tok::Input,
            2 => Tok::Out(index),
            3 => Tok::Err(index),
            4 => Tok::Exit(index),
            5 => Tok::In(index),
            6 => Tok::Remote,
            _ => return None,
        })
    }
}

/// A job's I/O, from its start until the core is done with it.
#[derive(Debug)]
struct JobIo {
    /// `None` if it could not be started.
    pid: Option<u32>,
    /// In the poller while the job runs; what it is reaped by.
    pidfd: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    command: Vec<u8>,
    output: JobOutput,
    results: Option<ResultFiles>,
    started_wall: SystemTime,
    /// `--pipe`: its data on the way into its stdin (in the poller while
    /// the pipe is full).
    stdin: Option<Writer>,
    /// `--cat`/`--fifo`: the file, removed when the job is done.
    _temp: Option<TempPath>,
    /// `--broker`: the job runs on a worker.
    remote: Option<RemoteJob>,
}

/// What a remote job keeps here.
#[derive(Debug, Default)]
struct RemoteJob {
    /// Its tag, to start its output afresh when a newer attempt begins.
    tag: Option<Vec<u8>>,
    /// The worker's host, once it ended.
    host: String,
}

/// Everything the loop owns.
struct Shell {
    plan: Plan,
    core: Core,
    sys: System,
    poller: Poller<Tok>,
    signals: SignalPipe,
    feed: Feed,
    output: Output,
    joblog: Option<JobLog>,
    progress: Option<ProgressBar>,
    jobs: HashMap<u64, JobIo>,
    buf: Vec<u8>,
    started_at: Instant,
    /// `--fifo` jobs whose data is written but not yet read out.
    fifo_draining: Vec<u64>,
    /// Kills our jobs' groups if we are killed.
    watchdog: Watchdog,
    /// `--round-robin`: the blocks, handed to whichever job has room.
    rr: Option<RoundRobin>,
    /// `--broker`: the jobs run on workers, through this.
    remote: Option<Client>,
}

/// `--round-robin`'s state. Jobs start as blocks come, one per slot, each
/// with its first block; once the slots are full, each block goes to a job
/// whose last block is written out (in turn). A job whose pipe is full
/// waits in the poller; one that has written its block out waits here, out
/// of the poller, for the next.
#[derive(Debug, Default)]
struct RoundRobin {
    /// Jobs whose last block is written out.
    idle: VecDeque<u64>,
    /// The stream has ended: close each job's stdin once written out.
    done: bool,
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("running", &self.jobs.len())
            .finish_non_exhaustive()
    }
}

/// Runs the plan's jobs.
pub(super) fn run(
    plan: Plan,
    feed: Feed,
    queue: VecDeque<Job>,
    previous: BTreeMap<u64, Logged>,
    mut output: Output,
) -> Result<Outcome> {
    let total = feed.total().map(|n| n as u64 + queue.len() as u64);
    let joblog = match &plan.joblog {
        Some((path, append)) => Some(
            JobLog::open(path, *append)
                .with_context(|| format!("cannot open the joblog {}", path.display()))?,
        ),
        None => None,
    };

    let nofile = child::raise_nofile_limit();
    let per_job = if plan.mode == Mode::Ungroup {
        2
    } else {
        FDS_PER_JOB
    };
    let fd_bound = (nofile.saturating_sub(64) / per_job).max(1) as usize;
    let remote = match &plan.remote {
        Some(args) => Some(Client::start(args)?),
        None => None,
    };
    let limit = match (plan.jobs, &remote) {
        // Remote jobs hold no descriptors here; auto keeps every live
        // worker slot fed with one job waiting behind it.
        (Jobs::Auto, Some(client)) => {
            Limit::Fixed((2 * client.live_slots).clamp(4, plan.max_jobs.max(4)))
        }
        (Jobs::Fixed(n), Some(_)) => Limit::Fixed(n.max(1)),
        (jobs, None) => match jobs {
            Jobs::Auto => {
                let mut c = ConcurrencyController::new(plan.cores).with_max(plan.max_jobs);
                c.set_bound(LimitBound::OpenFiles, Some(fd_bound));
                Limit::Auto(Box::new(c))
            }
            Jobs::Fixed(n) => {
                if n > fd_bound {
                    eprintln!(
                        "quadriga: warning: -j {n} needs more open files than allowed; using {fd_bound}"
                    );
                }
                Limit::Fixed(n.min(fd_bound).max(1))
            }
        },
    };

    let poller = Poller::new()?;
    let signals = SignalPipe::install().context("cannot catch signals")?;
    poller.add(signals.fd(), Tok::Signal, Interest::READ)?;
    if let Some(fd) = feed.wake_fd() {
        poller.add(fd, Tok::Input, Interest::READ)?;
    }
    if let Some(client) = &remote {
        poller.add(client.wake_fd(), Tok::Remote, Interest::READ)?;
    }

    let progress = plan.progress.map(|kind| {
        let bar = progress::new(kind, total);
        output.set_progress(bar.clone());
        bar
    });

    let gate = Gate::new(
        GateConfig {
            delay: plan.delay,
            memfree: plan.memfree,
            load: plan.load,
            limit: plan.limit,
        },
        limit,
    );
    let core = Core::new(
        Config {
            attempts: plan.attempts,
            halt: plan.halt,
            resume: plan.resume,
            total,
        },
        gate,
        Timeouts::new(plan.timeout),
        queue,
        previous,
    );
    let mut shell = Shell {
        plan,
        core,
        sys: System,
        poller,
        signals,
        feed,
        output,
        joblog,
        progress,
        jobs: HashMap::new(),
        buf: vec![0; 64 * 1024],
        started_at: Instant::now(),
        fifo_draining: Vec::new(),
        watchdog: Watchdog::start(),
        rr: None,
        remote,
    };
    if shell.remote.is_some() {
        shell.core.time_out_elsewhere();
    }
    if shell.plan.pipe.as_ref().is_some_and(|p| p.round_robin) {
        shell.rr = Some(RoundRobin::default());
    }
    shell.announce();
    shell.main_loop()?;
    shell.finish()
}

impl Shell {
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
        match self.core.gate().auto() {
            Some(c) => self.explain(format_args!("auto {}", c.last_decision())),
            None => self.explain(format_args!("-j {}", self.core.gate().limit())),
        }
    }

    fn main_loop(&mut self) -> Result<()> {
        let mut events: Vec<Event<Tok>> = Vec::with_capacity(256);
        loop {
            self.core.tick(Instant::now());
            self.apply();
            self.start_jobs()?;
            self.feed_lanes();
            if self.core.is_finished() {
                return Ok(());
            }
            let now = Instant::now();
            let cap = now + MAX_SLEEP;
            let mut deadline = self.core.next_deadline().map_or(cap, |d| d.min(cap));
            if !self.fifo_draining.is_empty() {
                self.check_fifos();
                deadline = deadline.min(now + FIFO_POLL);
            }
            self.poller
                .wait(Some(deadline), &mut events)
                .context("epoll_wait")?;
            let mut exited = Vec::new();
            for ev in &events {
                match ev.token {
                    Tok::Signal => {
                        for sig in self.signals.take() {
                            self.core.signal_received(sig, Instant::now());
                        }
                        self.apply();
                    }
                    Tok::Input => {
                        self.feed.drain_wake();
                        self.feed_lanes();
                    }
                    Tok::Out(id) => self.on_readable(id, Which::Out),
                    Tok::Err(id) => self.on_readable(id, Which::Err),
                    Tok::Exit(id) => exited.push(id),
                    Tok::In(id) => self.on_writable(id),
                    Tok::Remote => self.on_remote(),
                }
            }
            for id in exited {
                self.on_exit(id);
            }
        }
    }

    /// Starts jobs while the core lets them, reading input as it asks.
    fn start_jobs(&mut self) -> Result<()> {
        loop {
            match self.core.admit(Instant::now(), &mut self.sys) {
                Admit::Start(id) => self.start(id)?,
                Admit::NeedInput => match self.feed.next() {
                    Next::Job(args) => {
                        if let Some(seq) = self.core.input_item(args) {
                            self.output.skip(seq)?;
                        }
                    }
                    Next::Block(data) => {
                        if let Some(seq) = self.core.input_block(Vec::new(), data) {
                            self.output.skip(seq)?;
                        }
                    }
                    Next::Pending => break,
                    Next::Done => {
                        self.core.input_done();
                        if let Some(rr) = &mut self.rr {
                            rr.done = true;
                        }
                    }
                    Next::Error(e) => {
                        eprintln!("quadriga: error reading the input: {e}");
                        self.core.input_error(e);
                    }
                },
                Admit::Wait => break,
            }
            self.apply();
        }
        self.apply();
        Ok(())
    }

    fn start(&mut self, id: u64) -> Result<()> {
        let data = self.core.stdin_for(id);
        let job = self.core.job(id);
        let slot = self.core.slot(id);
        let seq = job.seq;
        // --pipe: the data goes on a pipe, into a file or a named pipe.
        let delivery = self.plan.pipe.as_ref().map(|p| p.delivery);
        let (stdin_fd, mut writer, temp, file_args) =
            match prepare_stdin(data, delivery, seq, job.attempts) {
                Ok(v) => v,
                Err(e) => {
                    return Err(anyhow::Error::new(e).context("cannot prepare a job's input"));
                }
            };
        let ctx = JobContext {
            args: file_args.as_deref().unwrap_or(&job.args),
            seq,
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
        if let Some(client) = &self.remote {
            let program = match argv {
                Some(a) => RemoteProgram::Direct(a),
                None => RemoteProgram::Shell {
                    shell: self.plan.shell.as_bytes().to_vec(),
                    script: command.clone(),
                },
            };
            client.submit(Submit {
                id,
                seq,
                program,
                env: vec![
                    ("PARALLEL_SEQ".into(), seq.to_string()),
                    ("PARALLEL_JOBSLOT".into(), slot.to_string()),
                ],
                timeout: self.core.current_timeout(),
            });
            let output = self.output.start(seq, tag.clone());
            self.core.spawned(id);
            self.jobs.insert(
                id,
                JobIo {
                    pid: None,
                    pidfd: None,
                    stdout: None,
                    stderr: None,
                    command,
                    output,
                    results,
                    started_wall: SystemTime::now(),
                    stdin: None,
                    _temp: temp,
                    remote: Some(RemoteJob {
                        tag,
                        host: String::new(),
                    }),
                },
            );
            self.update_progress();
            return Ok(());
        }
        let mut output = self.output.start(seq, tag);
        let program = match &argv {
            Some(a) => Program::Direct(a),
            None => Program::Shell {
                shell: &self.plan.shell,
                script: &command,
            },
        };
        let seq_s = seq.to_string();
        let slot_s = slot.to_string();
        let env = [
            ("PARALLEL_SEQ", seq_s.as_str()),
            ("PARALLEL_JOBSLOT", slot_s.as_str()),
        ];
        let capture = self.output.mode() != Mode::Ungroup;
        let started_wall = SystemTime::now();
        let c = match program::spawn_with_stdin(program, capture, &env, stdin_fd) {
            Ok(c) => c,
            Err(e) => {
                let transient = matches!(
                    Errno::from_io_error(&e),
                    Some(Errno::MFILE | Errno::NFILE | Errno::AGAIN | Errno::NOMEM)
                );
                // What a shell would say: 127 not found, 126 not executable.
                let code = match e.kind() {
                    io::ErrorKind::PermissionDenied => 126,
                    _ => 127,
                };
                let name = match &argv {
                    Some(a) => a[0].clone(),
                    None => self.plan.shell.as_bytes().to_vec(),
                };
                if self
                    .core
                    .spawn_failed(id, transient, code, Instant::now(), &mut self.sys)
                {
                    // Out of processes or descriptors: wait for a job to end.
                    self.explain(format_args!(
                        "cannot start more jobs now ({e}): waiting for one to end"
                    ));
                    return Ok(());
                }
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
                self.jobs.insert(
                    id,
                    JobIo {
                        pid: None,
                        pidfd: None,
                        stdout: None,
                        stderr: None,
                        command,
                        output,
                        results,
                        started_wall,
                        stdin: None,
                        _temp: temp,
                        remote: None,
                    },
                );
                self.apply();
                return Ok(());
            }
        };
        self.watchdog.started(c.pid);
        self.core.spawned(id);
        self.poller.add(&c.pidfd, Tok::Exit(id), Interest::READ)?;
        if let Some(fd) = &c.stdout {
            self.poller.add(fd, Tok::Out(id), Interest::READ)?;
        }
        if let Some(fd) = &c.stderr {
            self.poller.add(fd, Tok::Err(id), Interest::READ)?;
        }
        // Write what the pipe takes now; wait for room for the rest.
        if let Some(w) = &mut writer {
            match w.pump() {
                Pumped::Blocked => self.poller.add(w.fd(), Tok::In(id), Interest::READ_WRITE)?,
                Pumped::Done if self.rr.is_some() => {
                    if let Some(rr) = &mut self.rr {
                        rr.idle.push_back(id);
                    }
                }
                Pumped::Done if w.is_named() => self.fifo_draining.push(id),
                Pumped::Done | Pumped::Closed => writer = None,
            }
        }
        self.jobs.insert(
            id,
            JobIo {
                pid: Some(c.pid),
                pidfd: Some(c.pidfd),
                stdout: c.stdout,
                stderr: c.stderr,
                command,
                output,
                results,
                started_wall,
                stdin: writer,
                _temp: temp,
                remote: None,
            },
        );
        if self.rr.is_some() {
            self.feed_lanes();
        }
        self.update_progress();
        Ok(())
    }

    /// Room in job `id`'s stdin pipe.
    fn on_writable(&mut self, id: u64) {
        let Some(j) = self.jobs.get_mut(&id) else {
            return;
        };
        let Some(w) = &mut j.stdin else {
            return;
        };
        match w.pump() {
            Pumped::Blocked => {}
            Pumped::Done if self.rr.is_some() => {
                let _ = self.poller.delete(w.fd());
                if let Some(rr) = &mut self.rr {
                    rr.idle.push_back(id);
                }
                self.feed_lanes();
            }
            Pumped::Done if w.is_named() => {
                // Out of the poller (always writable now), but open until read.
                let _ = self.poller.delete(w.fd());
                self.fifo_draining.push(id);
            }
            // Closing it takes it out of the poller; the job sees end of file.
            Pumped::Done | Pumped::Closed => j.stdin = None,
        }
    }

    /// `--round-robin`: hands blocks to the jobs that have written out their
    /// last, as long as the stream has some ready; at its end, closes their
    /// stdin.
    fn feed_lanes(&mut self) {
        let Some(rr) = &mut self.rr else {
            return;
        };
        // While a slot is free, blocks start new jobs instead (the core).
        if !rr.done && self.core.running() < self.core.gate().limit() {
            return;
        }
        while let Some(id) = rr.idle.pop_front() {
            let Some(w) = self.jobs.get_mut(&id).and_then(|j| j.stdin.as_mut()) else {
                continue;
            };
            if rr.done {
                if let Some(j) = self.jobs.get_mut(&id) {
                    j.stdin = None;
                }
                continue;
            }
            match self.feed.next() {
                Next::Block(b) => {
                    w.refill(b);
                    match w.pump() {
                        // Written out at once: its turn comes again later.
                        Pumped::Done => rr.idle.push_back(id),
                        Pumped::Blocked => {
                            if let Err(e) =
                                self.poller.add(w.fd(), Tok::In(id), Interest::READ_WRITE)
                            {
                                eprintln!("quadriga: error: epoll: {e}");
                            }
                        }
                        Pumped::Closed => {
                            if let Some(j) = self.jobs.get_mut(&id) {
                                j.stdin = None;
                            }
                        }
                    }
                }
                Next::Pending => {
                    rr.idle.push_front(id);
                    return;
                }
                Next::Done | Next::Job(_) => {
                    rr.idle.push_front(id);
                    rr.done = true;
                }
                Next::Error(e) => {
                    eprintln!("quadriga: error reading the input: {e}");
                    self.core.input_error(e);
                    rr.idle.push_front(id);
                    rr.done = true;
                }
            }
        }
    }

    /// `--fifo`: close the named pipes whose data has been read out.
    fn check_fifos(&mut self) {
        let jobs = &mut self.jobs;
        self.fifo_draining.retain(|id| {
            let Some(j) = jobs.get_mut(id) else {
                return false;
            };
            match &j.stdin {
                Some(w) if !w.finished() => true,
                _ => {
                    j.stdin = None;
                    false
                }
            }
        });
    }

    fn on_readable(&mut self, id: u64, which: Which) {
        let Some(j) = self.jobs.get_mut(&id) else {
            return;
        };
        if let Err(e) = drain(&mut self.buf, &mut self.output, j, which, false) {
            self.output_error(e);
            self.apply();
        }
    }

    /// `--broker`: output and endings of remote jobs.
    fn on_remote(&mut self) {
        let Some(client) = &self.remote else {
            return;
        };
        for ev in client.events() {
            match ev {
                RemoteEvent::Chunk { id, which, data } => {
                    let Some(j) = self.jobs.get_mut(&id) else {
                        continue;
                    };
                    if let Some(res) = &mut j.results {
                        let f = match which {
                            Which::Out => &mut res.out,
                            Which::Err => &mut res.err,
                        };
                        if let Err(e) = f.write_all(&data) {
                            eprintln!("quadriga: warning: cannot write --results: {e}");
                            j.results = None;
                        }
                    }
                    if let Err(e) = self.output.data(&mut j.output, which, &data) {
                        self.output_error(e);
                    }
                }
                RemoteEvent::Reset { id } => {
                    let Some(j) = self.jobs.get_mut(&id) else {
                        continue;
                    };
                    let tag = j.remote.as_ref().and_then(|r| r.tag.clone());
                    let fresh = self.output.start(j.output.seq, tag);
                    let old = std::mem::replace(&mut j.output, fresh);
                    self.output.discard(old);
                }
                RemoteEvent::Done {
                    id,
                    exit,
                    host,
                    start,
                    timed_out,
                } => {
                    if let Some(j) = self.jobs.get_mut(&id) {
                        if let Some(r) = &mut j.remote {
                            r.host = host;
                        }
                        if let Some(s) = start {
                            j.started_wall = s;
                        }
                        j.results = None;
                    }
                    if timed_out {
                        self.core.timed_out_elsewhere(id);
                    }
                    self.core.exited(id, exit, Instant::now(), &mut self.sys);
                }
            }
        }
        self.apply();
    }

    /// Our output failed: a broken pipe stops the run; anything else is
    /// reported.
    fn output_error(&mut self, e: io::Error) {
        if self.output.broken_pipe {
            self.core.broken_pipe(Instant::now());
        } else {
            eprintln!("quadriga: error writing output: {e}");
        }
    }

    fn on_exit(&mut self, id: u64) {
        let Some(j) = self.jobs.get_mut(&id) else {
            return;
        };
        let Some(pidfd) = &j.pidfd else {
            return;
        };
        if let Some(pid) = j.pid {
            self.watchdog.reaping(pid);
        }
        let exit = match child::reap(pidfd, false) {
            Ok(Some(exit)) => exit,
            // Not yet (spurious readiness): keep waiting.
            Ok(None) => return,
            Err(e) => {
                eprintln!("quadriga: cannot reap job {}: {e}", j.output.seq);
                Exit::status(None, None)
            }
        };
        let now = Instant::now();
        // What the job wrote before it exited is in the pipes; anything a
        // background process of it writes later is not waited for.
        let errors: Vec<io::Error> = [Which::Out, Which::Err]
            .into_iter()
            .filter_map(|which| drain(&mut self.buf, &mut self.output, j, which, true).err())
            .collect();
        // Out of the poller; the pid stays, for a last SIGKILL. What it did
        // not read of its stdin is dropped (its business, as GNU).
        j.pidfd = None;
        j.stdin = None;
        j.results = None;
        for e in errors {
            self.output_error(e);
        }
        self.core.exited(id, exit, now, &mut self.sys);
        self.apply();
    }

    /// Does what the core asks, in order.
    fn apply(&mut self) {
        while let Some(action) = self.core.next_action() {
            match action {
                Action::Signal { id, signal } => {
                    if let Some(pid) = self.jobs.get(&id).and_then(|j| j.pid) {
                        child::signal_group(pid, signal);
                    } else if let (Some(client), Some(_)) = (
                        &self.remote,
                        self.jobs.get(&id).and_then(|j| j.remote.as_ref()),
                    ) {
                        // Its worker kills its group.
                        client.cancel(id);
                    }
                }
                Action::Explain(msg) => self.explain(msg),
                Action::TimedOut(id) => {
                    if let Some(j) = self.jobs.get(&id) {
                        let mut cmd = j.command.clone();
                        cmd.truncate(200);
                        self.explain(format_args!(
                            "job {} timed out: {}",
                            j.output.seq,
                            String::from_utf8_lossy(&cmd)
                        ));
                    }
                }
                Action::Discard(id) => {
                    if let Some(j) = self.jobs.remove(&id) {
                        self.output.discard(j.output);
                    }
                }
                Action::Show(id) => {
                    if let Some(j) = self.jobs.remove(&id)
                        && let Err(e) = self.output.finish(j.output)
                    {
                        self.output_error(e);
                    }
                }
                Action::Record(r) => self.record(r),
            }
        }
    }

    /// A job is done: log it, print it, count it.
    fn record(&mut self, r: Record) {
        let Some(j) = self.jobs.remove(&r.id) else {
            return;
        };
        if let Some(log) = &mut self.joblog {
            let entry = Entry {
                seq: r.seq,
                start: j.started_wall,
                runtime: r.runtime,
                receive: j.output.out.bytes,
                exitval: r.exitval,
                signal: r.signal,
                command: &j.command,
                host: j.remote.as_ref().map(|r| r.host.as_str()),
            };
            if let Err(e) = log.write(&entry) {
                eprintln!("quadriga: error writing the joblog: {e}");
            }
        }
        if let Err(e) = self.output.finish(j.output) {
            self.output_error(e);
        }
        if let Some(bar) = &self.progress {
            bar.inc(1);
        }
        self.update_progress();
        if self.plan.keep_order && self.plan.mode == Mode::LineBuffer {
            let next = self.output.next_seq();
            if let Some(j) = self.jobs.values_mut().find(|j| j.output.seq == next)
                && let Err(e) = self.output.promote(&mut j.output)
            {
                self.output_error(e);
            }
        }
    }

    fn update_progress(&self) {
        if let Some(bar) = &self.progress {
            bar.set_message(progress::message(
                self.core.running(),
                self.core.gate().limit(),
            ));
        }
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
            let cpu = child::self_cpu().as_secs_f64() * 1e3;
            let started = self.core.jobs_started();
            let per_job = if started > 0 {
                cpu / started as f64
            } else {
                0.0
            };
            let limit = match self.core.gate().auto() {
                Some(c) => format!("; -j auto ended at {}", c.limit()),
                None => String::new(),
            };
            let counts = self.core.counts();
            self.explain(format_args!(
                "{} jobs ({} failed) in {elapsed:.3} s; runner CPU {cpu:.1} ms ({per_job:.4} ms per job){limit}",
                counts.done, counts.failed
            ));
        }
        self.core
            .outcome()
            .map_err(|e| anyhow::anyhow!("the input could not be read to the end: {e}"))
    }
}

/// Reads what a job's pipe holds: up to 1 MiB (fairness) or, with `all`
/// (the job has exited), what is buffered now, and no more: a background
/// process of the job that keeps writing cannot keep us here.
fn drain(
    buf: &mut [u8],
    output: &mut Output,
    j: &mut JobIo,
    which: Which,
    all: bool,
) -> io::Result<()> {
    let mut reads = 0;
    let mut left = usize::MAX;
    if all {
        let fd = match which {
            Which::Out => j.stdout.as_ref(),
            Which::Err => j.stderr.as_ref(),
        };
        if let Some(fd) = fd {
            left = rustix::io::ioctl_fionread(fd).map_or(usize::MAX, |n| n as usize);
        }
    }
    loop {
        let fd = match which {
            Which::Out => j.stdout.as_ref(),
            Which::Err => j.stderr.as_ref(),
        };
        let Some(fd) = fd else {
            return Ok(());
        };
        if all && left == 0 {
            close(j, which);
            return Ok(());
        }
        let want = buf.len().min(left);
        match rustix::io::read(fd, &mut buf[..want]) {
            Ok(0) => {
                close(j, which);
                return Ok(());
            }
            Ok(n) => {
                if all {
                    left -= n;
                }
                if let Some(res) = &mut j.results {
                    let f = match which {
                        Which::Out => &mut res.out,
                        Which::Err => &mut res.err,
                    };
                    if let Err(e) = f.write_all(&buf[..n]) {
                        eprintln!("quadriga: warning: cannot write --results: {e}");
                        j.results = None;
                    }
                }
                output.data(&mut j.output, which, &buf[..n])?;
            }
            Err(Errno::AGAIN) => {
                if all {
                    close(j, which);
                }
                return Ok(());
            }
            Err(Errno::INTR) => continue,
            Err(_) => {
                close(j, which);
                return Ok(());
            }
        }
        reads += 1;
        if !all && reads >= 16 {
            return Ok(());
        }
    }
}

/// What a job's stdin needs before it starts: the pipe's read end, the
/// writer that fills it, the temporary file (`--cat`, `--fifo`) and `{}`'s
/// value, its name.
type Prepared = (
    Option<OwnedFd>,
    Option<Writer>,
    Option<TempPath>,
    Option<Vec<Vec<u8>>>,
);

fn prepare_stdin(
    data: Option<JobStdin>,
    delivery: Option<Delivery>,
    seq: u64,
    attempt: u32,
) -> io::Result<Prepared> {
    let (Some(data), Some(delivery)) = (data, delivery) else {
        return Ok((None, None, None, None));
    };
    match delivery {
        Delivery::Stdin => {
            let (r, w) = Writer::pipe(data)?;
            Ok((Some(r), Some(w), None, None))
        }
        Delivery::Cat => {
            let t = TempPath::new(seq, attempt);
            t.write(&data)?;
            let name = vec![t.path().as_os_str().as_bytes().to_vec()];
            Ok((None, None, Some(t), Some(name)))
        }
        Delivery::Fifo => {
            let t = TempPath::new(seq, attempt);
            let w = Writer::fifo(t.path(), data)?;
            let name = vec![t.path().as_os_str().as_bytes().to_vec()];
            Ok((None, Some(w), Some(t), Some(name)))
        }
    }
}

/// Closing the descriptor also takes it out of the poller.
fn close(j: &mut JobIo, which: Which) {
    match which {
        Which::Out => j.stdout = None,
        Which::Err => j.stderr = None,
    }
}
