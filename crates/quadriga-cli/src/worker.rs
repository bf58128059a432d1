//! `quadriga worker`: serves shell jobs from a broker queue.
//!
//! The worker is the library's [`quadriga::cluster::Worker`] serving one
//! task, `quadriga.shell`, registered here: leases, heartbeats, sweeps,
//! re-leasing after a SIGKILL, its status record and the SIGTERM drain all
//! come from it. Before an entry runs, [`admit`] checks its signature and
//! its run's presence; a refused entry goes to the dead-letter stream with
//! the reason and one log line, and never runs.
//!
//! The task body runs the command exactly as `quadriga run` does (its own
//! process group, `/dev/null` stdin, `PARALLEL_SEQ`/`PARALLEL_JOBSLOT`),
//! streams its stdout and stderr to the task's output stream in chunks of
//! at most 64 KiB, at most 32 unread (a full stream stops us reading the
//! pipes, so the job blocks: back-pressure end to end), kills the group on
//! its timeout, when the task is cancelled or its lease lost, or when its
//! runner is gone, and returns the exit status and resource usage.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;
use quadriga::adapt::{ConcurrencyController, JobTicket};
use quadriga::child::{self, Escalation, Event, Interest, Poller, Signal, SignalPipe, Token};
use quadriga::cluster::{
    Appended, Broker, BrokerConfig, Entry, MAX_CHUNK, OutputStream, TaskId, Worker,
};
use rustix::io::Errno;

use crate::program::{self, Program as Run};
use crate::remote::job::{self, Job, JobResult, Presence, Program};
use crate::remote::key::{Key, Purpose, SubKey};
use crate::remote::{PRESENCE_TOLERANCE, connection};
use crate::watchdog::Watchdog;

/// `-j auto`'s most jobs at once (runner threads started).
const AUTO_MAX: usize = 64;
/// How long an output stream outlives its last append.
const OUTPUT_TTL: Duration = Duration::from_secs(300);
/// How long a presence answer is reused.
const PRESENCE_CACHE: Duration = Duration::from_millis(200);
/// From SIGTERM to SIGKILL when a job is killed.
const KILL_GRACE: Duration = Duration::from_millis(300);
/// A chunk with less than a full buffer goes out after this long.
const FLUSH_AFTER: Duration = Duration::from_millis(50);

pub(crate) const AFTER_HELP: &str = "\
The worker runs the shell jobs that `quadriga run --broker URL` submits to the
same queue, signed with the same key (--key-file F or $QUADRIGA_KEY). A job
that is unsigned, tampered with, signed with another key, or whose run is no
longer live is moved to the queue's dead letters with the reason and one line
on stderr; it never runs.

SIGTERM or SIGINT drains: running jobs finish, no more are taken. After a
SIGKILL nothing is lost: the jobs it held are re-leased to other workers
after one lease (10 s).

-j auto chooses how many jobs run at once by measurement, as `quadriga run
-j auto` does: the library's concurrency controller, fed with each job's CPU
and wall time, starting at one job per core (at most 256). The worker's record
(quadriga status) shows its current limit as its slots.

See docs/remote.md for the threat model, a systemd unit and a container recipe.";

/// `quadriga worker`'s options.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// The broker: redis://[user:password@]host:port/[db], rediss://, or
    /// redis+cluster://host:port,host:port/.
    #[arg(long, value_name = "URL")]
    pub(crate) broker: String,
    /// The queue to serve (the runner's --queue).
    #[arg(long, default_value = "shell", value_name = "NAME")]
    pub(crate) queue: String,
    /// Key prefix in Redis.
    #[arg(long, default_value = "quadriga", value_name = "PREFIX")]
    pub(crate) prefix: String,
    /// Jobs at once: N, or auto (chosen by measurement, from one per core).
    #[arg(short = 'j', long = "jobs", default_value = "auto", value_name = "N")]
    pub(crate) jobs: String,
    /// The shared key (mode 0600; at least 16 bytes). Default: $QUADRIGA_KEY.
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// Lease: a job whose worker is silent this long runs elsewhere.
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    pub(crate) lease: f64,
}

/// What the task body needs, set once before the worker starts.
struct Shared {
    jobs: SubKey,
    presence: SubKey,
    config: BrokerConfig,
    host: String,
    /// `-j auto`: the controller and the limit the worker reads.
    auto: Option<Auto>,
}

/// `-j auto`'s state.
struct Auto {
    controller: Mutex<ConcurrencyController>,
    limit: Arc<AtomicUsize>,
}

impl Auto {
    fn started(&self) -> JobTicket {
        self.lock().job_started(Instant::now())
    }

    /// A job ended; `cpu` when it ran to its end, `None` when it was stopped.
    fn finished(&self, ticket: JobTicket, cpu: Option<Duration>) {
        let mut c = self.lock();
        let decision = match cpu {
            Some(cpu) => c.job_finished(ticket, cpu, Instant::now()),
            None => {
                c.job_cancelled(ticket, Instant::now());
                None
            }
        };
        self.limit.store(c.limit(), Ordering::Relaxed);
        if let Some(d) = decision
            && d.from != d.to
        {
            eprintln!("quadriga worker: -j auto: {d}");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConcurrencyController> {
        self.controller.lock().unwrap_or_else(|p| p.into_inner())
    }
}

static CONTEXT: OnceLock<Shared> = OnceLock::new();

/// The watchdog process that kills every running job's group if this worker
/// dies, even by `kill -9` (their entries are re-leased to other workers, so
/// a job left running here would run twice at once). Shared by the runner
/// threads; each message is one atomic pipe write.
static WATCHDOG: OnceLock<Mutex<Watchdog>> = OnceLock::new();

fn watchdog(f: impl FnOnce(&mut Watchdog)) {
    if let Some(w) = WATCHDOG.get() {
        f(&mut w.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

thread_local! {
    /// Each runner thread's own connection.
    static BROKER: RefCell<Option<Broker>> = const { RefCell::new(None) };
}

/// Runs `quadriga worker`.
pub(crate) fn run(args: &WorkerArgs) -> Result<()> {
    let key = Key::load(args.key_file.as_deref())?;
    let cores = child::cores();
    let auto = (args.jobs == "auto").then(|| {
        let controller = ConcurrencyController::new(cores).with_max(AUTO_MAX);
        Auto {
            limit: Arc::new(AtomicUsize::new(controller.limit())),
            controller: Mutex::new(controller),
        }
    });
    let slots = match args.jobs.as_str() {
        "auto" => AUTO_MAX,
        n => n
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("-j {n}: expected a positive number or auto"))?,
    };
    if !(args.lease.is_finite() && args.lease >= 0.1) {
        anyhow::bail!("--lease {}: expected seconds, at least 0.1", args.lease);
    }
    let config = connection(&args.broker, &args.queue, &args.prefix)
        .lease(Duration::from_secs_f64(args.lease));
    let context = Shared {
        jobs: key.subkey(Purpose::Jobs),
        presence: key.subkey(Purpose::Presence),
        config: config.clone(),
        host: host_name(),
        auto,
    };
    let checker = Mutex::new(Checker {
        broker: None,
        config: config.clone(),
        jobs: context.jobs.clone(),
        presence: context.presence.clone(),
        cache: HashMap::new(),
    });
    let limit = context.auto.as_ref().map(|a| Arc::clone(&a.limit));
    let _ = CONTEXT.set(context);
    let mut builder = Worker::builder(&args.broker)
        .config(config)
        .concurrency(slots);
    if let Some(limit) = limit {
        builder = builder.limit(limit);
    }
    let worker = builder
        .admit(move |entry| {
            checker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .admit(entry)
        })
        .build()
        .with_context(|| format!("cannot connect to the broker at {}", args.broker))?;
    let name = worker.name().to_owned();
    let how = if args.jobs == "auto" {
        format!("-j auto (from {cores}, at most {slots})")
    } else {
        format!("{slots} slots")
    };
    eprintln!(
        "quadriga worker {name}: serving queue `{}` with {how}",
        args.queue
    );
    let stop = worker.stopper();
    let _ = WATCHDOG.set(Mutex::new(Watchdog::start()));
    let signals = SignalPipe::install().context("cannot catch signals")?;
    std::thread::Builder::new()
        .name("quadriga-worker-signals".into())
        .spawn(move || {
            let Ok(mut poller) = Poller::<Sig>::new() else {
                return;
            };
            if poller.add(signals.fd(), Sig, Interest::READ).is_err() {
                return;
            }
            let mut events = Vec::new();
            loop {
                let _ = poller.wait(None, &mut events);
                if !signals.take().is_empty() {
                    eprintln!("quadriga worker: stopping: running jobs finish, no more are taken");
                    stop.stop();
                }
            }
        })
        .context("cannot start a thread")?;
    let report = worker.run().context("the worker stopped")?;
    eprintln!(
        "quadriga worker {name}: stopped after {} jobs ({} refused at completion, {} dead-lettered)",
        report.completed, report.refused, report.dead_lettered
    );
    Ok(())
}

/// The signal pipe's one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sig;

impl Token for Sig {
    fn to_parts(self) -> (u8, u64) {
        (0, 0)
    }
    fn from_parts(_: u8, _: u64) -> Option<Self> {
        Some(Sig)
    }
}

/// The admission check, on the worker's reading thread.
struct Checker {
    broker: Option<Broker>,
    config: BrokerConfig,
    jobs: SubKey,
    presence: SubKey,
    /// Per client: when its presence was read, and the nonce it named (if
    /// it was live).
    cache: HashMap<u64, (Instant, Option<u64>)>,
}

impl Checker {
    fn admit(&mut self, entry: &Entry) -> Result<(), String> {
        if entry.task != job::TASK {
            return Err(format!("task `{}` is not a shell job", entry.task));
        }
        let [item] = &entry.items[..] else {
            return Err("a shell job travels alone in its entry".into());
        };
        let signed: Vec<u8> =
            postcard::from_bytes(&item.input).map_err(|_| "the job does not decode".to_owned())?;
        let job = Job::open(&signed, &self.jobs).map_err(|r| r.to_string())?;
        if job.client != entry.client || job.task_seq != item.seq {
            return Err("a signed job moved to another task (a replay)".into());
        }
        match self.live_nonce(job.client)? {
            Some(nonce) if nonce == job.nonce => Ok(()),
            Some(_) => Err("its run is over (the live run has another nonce): a replay".into()),
            None => Err(
                "its run is not live (no fresh signed presence): a replay, or the runner is gone"
                    .into(),
            ),
        }
    }

    /// The nonce of `client`'s live run, if its presence is fresh.
    fn live_nonce(&mut self, client: u64) -> Result<Option<u64>, String> {
        if let Some(&(at, nonce)) = self.cache.get(&client)
            && at.elapsed() < PRESENCE_CACHE
        {
            return Ok(nonce);
        }
        if self.cache.len() > 1000 {
            self.cache.clear();
        }
        let broker = match &mut self.broker {
            Some(b) => b,
            None => self.broker.insert(
                Broker::connect(self.config.clone())
                    .map_err(|e| format!("cannot read the run's presence: {e}"))?,
            ),
        };
        let record = broker
            .presence(client)
            .map_err(|e| format!("cannot read the run's presence: {e}"))?;
        let nonce = record
            .and_then(|r| Presence::open(&r, &self.presence))
            .filter(|p| p.client == client && fresh(p.time_ms))
            .map(|p| p.nonce);
        self.cache.insert(client, (Instant::now(), nonce));
        Ok(nonce)
    }
}

/// Whether a signed time is within the tolerance of this host's clock.
fn fresh(time_ms: u64) -> bool {
    now_ms().abs_diff(time_ms) <= PRESENCE_TOLERANCE.as_millis() as u64
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The shell-job task: `input` is a signed job.
#[quadriga::task(name = "quadriga.shell")]
fn shell_job(input: Vec<u8>) -> Result<JobResult, String> {
    let ctx = CONTEXT
        .get()
        .ok_or("this process is not a `quadriga worker`")?;
    let job = Job::open(&input, &ctx.jobs).map_err(|r| format!("refused: {r}"))?;
    let current = quadriga::cluster::current_task()
        .ok_or("a shell job runs only on a `quadriga worker`'s threads")?;
    BROKER.with(|b| {
        let mut b = b.borrow_mut();
        let broker = match &mut *b {
            Some(broker) => broker,
            None => b.insert(
                Broker::connect(ctx.config.clone())
                    .map_err(|e| format!("cannot connect to the broker: {e}"))?,
            ),
        };
        let sink = Sink {
            broker,
            presence: &ctx.presence,
            id: current.id,
            attempt: current.delivery.max(1),
            n: 0,
            nonce: job.nonce,
            last_check: Instant::now(),
        };
        let ticket = ctx.auto.as_ref().map(Auto::started);
        let result = execute(&job, sink, ctx);
        if let (Some(auto), Some(ticket)) = (&ctx.auto, ticket) {
            let ran_out = !result.timed_out && !result.spawn_error && !quadriga::is_cancelled();
            auto.finished(ticket, ran_out.then(|| Duration::from_nanos(result.cpu_ns)));
        }
        Ok(result)
    })
}

/// Where a job's output goes: its task's output stream.
struct Sink<'a> {
    broker: &'a mut Broker,
    presence: &'a SubKey,
    id: TaskId,
    attempt: u64,
    /// Chunks appended so far.
    n: u64,
    nonce: u64,
    last_check: Instant,
}

/// Why a job must stop early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Cancelled, or its lease was lost.
    Cancelled,
    /// A newer attempt runs it.
    Superseded,
    /// Its runner is gone.
    RunnerGone,
}

impl Sink<'_> {
    /// Appends `data` (≤ 64 KiB), waiting while the stream is full.
    fn append(&mut self, which: OutputStream, data: &[u8]) -> Result<(), Stop> {
        let mut wait = Duration::from_millis(1);
        let mut failures = 0;
        loop {
            if quadriga::is_cancelled() {
                return Err(Stop::Cancelled);
            }
            match self.broker.append_output(
                self.id,
                self.attempt,
                self.n + 1,
                which,
                data,
                OUTPUT_TTL,
            ) {
                Ok(Appended::Added) => {
                    self.n += 1;
                    return Ok(());
                }
                Ok(Appended::Superseded) => return Err(Stop::Superseded),
                Ok(Appended::Full) => {}
                Err(e) => {
                    failures += 1;
                    if failures > 600 {
                        eprintln!(
                            "quadriga worker: giving up on the output of {}: {e}",
                            self.id
                        );
                        return Err(Stop::RunnerGone);
                    }
                }
            }
            // Full (or a failure): the reader is behind. Wait, and make sure
            // it is still there.
            if self.last_check.elapsed() >= Duration::from_secs(1) {
                self.last_check = Instant::now();
                if !self.runner_live() {
                    return Err(Stop::RunnerGone);
                }
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(50));
        }
    }

    fn runner_live(&mut self) -> bool {
        match self.broker.presence(self.id.client) {
            Ok(Some(r)) => Presence::open(&r, self.presence)
                .is_some_and(|p| p.nonce == self.nonce && fresh(p.time_ms)),
            Ok(None) => false,
            // The broker is away: not a reason to kill the job.
            Err(_) => true,
        }
    }
}

/// The job's descriptors in the poller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Out,
    Err,
    Exit,
}

impl Token for Tok {
    fn to_parts(self) -> (u8, u64) {
        (self as u8, 0)
    }
    fn from_parts(kind: u8, _: u64) -> Option<Self> {
        Some(match kind {
            0 => Tok::Out,
            1 => Tok::Err,
            2 => Tok::Exit,
            _ => return None,
        })
    }
}

/// One captured stream: its pipe and what is read but not yet sent.
struct Pipe {
    fd: Option<OwnedFd>,
    buf: Vec<u8>,
    which: OutputStream,
    since: Option<Instant>,
}

/// Runs the job to its end.
fn execute(job: &Job, mut sink: Sink<'_>, ctx: &Shared) -> JobResult {
    let start = SystemTime::now();
    let t0 = Instant::now();
    let mut result = JobResult {
        attempt: sink.attempt,
        code: None,
        signal: None,
        timed_out: false,
        spawn_error: false,
        start_ms: start
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64,
        runtime_ns: 0,
        cpu_ns: 0,
        max_rss: 0,
        host: ctx.host.clone(),
    };
    let program = match &job.program {
        Program::Direct(argv) => Run::Direct(argv),
        Program::Shell { shell, script } => Run::Shell {
            shell: OsStr::from_bytes(shell),
            script,
        },
    };
    let env: Vec<(&str, &str)> = job
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let c = match program::spawn_with_stdin(program, true, &env, None) {
        Ok(c) => c,
        Err(e) => {
            // What a shell would say: 127 not found, 126 not executable.
            let code = if e.kind() == std::io::ErrorKind::PermissionDenied {
                126
            } else {
                127
            };
            let name = match &job.program {
                Program::Direct(a) => a.first().cloned().unwrap_or_default(),
                Program::Shell { shell, .. } => shell.clone(),
            };
            let mut msg = b"quadriga: ".to_vec();
            msg.extend_from_slice(&name);
            if code == 127 && e.kind() == std::io::ErrorKind::NotFound {
                msg.extend_from_slice(b": command not found\n");
            } else {
                msg.extend_from_slice(format!(": {e}\n").as_bytes());
            }
            let _ = sink.append(OutputStream::Stderr, &msg);
            result.code = Some(code);
            result.spawn_error = true;
            return result;
        }
    };
    watchdog(|w| w.started(c.pid));
    let Ok(mut poller) = Poller::<Tok>::new() else {
        watchdog(|w| w.reaping(c.pid));
        child::signal_group(c.pid, Signal::Kill);
        let _ = child::reap(&c.pidfd, true);
        result.code = Some(255);
        return result;
    };
    let mut pipes = [
        Pipe {
            fd: c.stdout,
            buf: Vec::with_capacity(MAX_CHUNK),
            which: OutputStream::Stdout,
            since: None,
        },
        Pipe {
            fd: c.stderr,
            buf: Vec::with_capacity(MAX_CHUNK),
            which: OutputStream::Stderr,
            since: None,
        },
    ];
    for (p, tok) in pipes.iter().zip([Tok::Out, Tok::Err]) {
        if let Some(fd) = &p.fd {
            let _ = poller.add(fd, tok, Interest::READ);
        }
    }
    let _ = poller.add(&c.pidfd, Tok::Exit, Interest::READ);
    let timeout = job.timeout_ms.map(|ms| t0 + Duration::from_millis(ms));
    let mut kill: Option<Escalation> = None;
    let mut stopped: Option<Stop> = None;
    let mut events: Vec<Event<Tok>> = Vec::new();
    let mut exit = None;
    let begin_kill = |kill: &mut Option<Escalation>| {
        if kill.is_none() {
            let (e, sig) = Escalation::begin(Instant::now(), KILL_GRACE);
            child::signal_group(c.pid, sig);
            *kill = Some(e);
        }
    };
    while exit.is_none() {
        let now = Instant::now();
        let mut deadline = now + Duration::from_millis(100);
        if let Some(t) = timeout {
            deadline = deadline.min(t);
        }
        if let Some(d) = kill.as_ref().and_then(Escalation::deadline) {
            deadline = deadline.min(d);
        }
        for p in &pipes {
            if let Some(since) = p.since {
                deadline = deadline.min(since + FLUSH_AFTER);
            }
        }
        let _ = poller.wait(Some(deadline.max(now)), &mut events);
        let mut exited = false;
        for ev in &events {
            match ev.token {
                Tok::Out => read(&mut pipes[0], &mut poller),
                Tok::Err => read(&mut pipes[1], &mut poller),
                Tok::Exit => exited = true,
            }
        }
        let now = Instant::now();
        // Send full buffers, and old partial ones.
        for p in &mut pipes {
            let due = p.buf.len() >= MAX_CHUNK || p.since.is_some_and(|s| now >= s + FLUSH_AFTER);
            if due
                && stopped.is_none()
                && let Err(why) = flush(p, &mut sink)
            {
                stopped = Some(why);
            }
            if stopped.is_some() {
                p.buf.clear();
                p.since = None;
            }
        }
        if stopped.is_none() && quadriga::is_cancelled() {
            stopped = Some(Stop::Cancelled);
        }
        if stopped.is_some() {
            begin_kill(&mut kill);
        }
        if timeout.is_some_and(|t| now >= t) && kill.is_none() {
            result.timed_out = true;
            begin_kill(&mut kill);
        }
        if let Some(k) = &mut kill
            && let Some(sig) = k.poll(now)
        {
            child::signal_group(c.pid, sig);
        }
        if exited {
            // Forgotten before the reap frees the pid for reuse.
            watchdog(|w| w.reaping(c.pid));
            match child::reap(&c.pidfd, false) {
                Ok(Some(e)) => exit = Some(e),
                Ok(None) => watchdog(|w| w.started(c.pid)),
                Err(_) => exit = Some(child::Exit::status(None, None)),
            }
        }
    }
    // What it wrote before it exited is in the pipes (what a background
    // process of it writes later is not waited for).
    for p in &mut pipes {
        drain(p);
        while stopped.is_none() && !p.buf.is_empty() {
            if let Err(why) = flush(p, &mut sink) {
                stopped = Some(why);
            }
        }
    }
    if kill.is_some() {
        // Whatever of the group outlives the job goes too.
        child::signal_group(c.pid, Signal::Kill);
    }
    let exit = exit.unwrap_or(child::Exit::status(None, None));
    result.code = exit.code;
    result.signal = exit.signal;
    result.cpu_ns = exit.cpu.as_nanos() as u64;
    result.max_rss = exit.max_rss;
    result.runtime_ns = t0.elapsed().as_nanos() as u64;
    if stopped == Some(Stop::RunnerGone) {
        eprintln!(
            "quadriga worker: job {} of run {:016x}: its runner is gone; killed",
            job.seq, job.client
        );
    }
    result
}

/// Reads what the pipe has, up to a full chunk buffer.
fn read(p: &mut Pipe, poller: &mut Poller<Tok>) {
    let Some(fd) = &p.fd else {
        return;
    };
    let room = MAX_CHUNK - p.buf.len();
    if room == 0 {
        return;
    }
    let len = p.buf.len();
    p.buf.resize(MAX_CHUNK, 0);
    match rustix::io::read(fd, &mut p.buf[len..]) {
        Ok(0) => {
            p.buf.truncate(len);
            let _ = poller.delete(fd);
            p.fd = None;
        }
        Ok(n) => {
            p.buf.truncate(len + n);
            p.since.get_or_insert_with(Instant::now);
        }
        Err(Errno::AGAIN | Errno::INTR) => p.buf.truncate(len),
        Err(_) => {
            p.buf.truncate(len);
            let _ = poller.delete(fd);
            p.fd = None;
        }
    }
}

/// Reads what is buffered in the pipe now, and no more.
fn drain(p: &mut Pipe) {
    let Some(fd) = p.fd.take() else {
        return;
    };
    let mut left = rustix::io::ioctl_fionread(&fd).map_or(0, |n| n as usize);
    let mut buf = vec![0; MAX_CHUNK];
    while left > 0 {
        match rustix::io::read(&fd, &mut buf[..left.min(MAX_CHUNK)]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                p.buf.extend_from_slice(&buf[..n]);
                left -= n;
            }
        }
    }
}

/// Sends the buffer in chunks of at most 64 KiB.
fn flush(p: &mut Pipe, sink: &mut Sink<'_>) -> Result<(), Stop> {
    while !p.buf.is_empty() {
        let n = p.buf.len().min(MAX_CHUNK);
        sink.append(p.which, &p.buf[..n])?;
        p.buf.drain(..n);
    }
    p.since = None;
    Ok(())
}
