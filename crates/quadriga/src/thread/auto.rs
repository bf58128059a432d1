//! The admission of a self-sizing pool ([`ThreadPool::auto`](super::ThreadPool::auto)):
//! how many of its threads may run tasks at once, chosen by measurement.
//!
//! The rayon-core pool holds the most threads the pool may ever use; this
//! module lets at most [`limit`](Auto::limit) jobs (tasks, chunks of a
//! streaming map) run at once and queues the rest; a map collected in place
//! runs its pieces on lanes that follow the limit themselves (`run_jobs_auto`
//! in the parent module), counted the same way. Each job is timed
//! (wall, and this thread's CPU time) and fed to the shared
//! [`ConcurrencyController`]: CPU-bound jobs hold the limit at about one per
//! core, jobs that wait raise it while throughput keeps rising. Idle threads
//! sleep in rayon-core and cost only their stacks' touched pages.
//!
//! Three details keep CPU-bound work as fast as on a fixed pool:
//!
//! - A map collected in place takes the same path as on a fixed pool (lanes
//!   that never wait for each other), not an ordered stream of chunks whose
//!   window one preempted chunk can stall.
//! - A thread that finishes a job runs the next queued one itself, instead
//!   of handing it to rayon-core: a hand-over wakes a sleeping thread, and a
//!   woken thread of a pool of hundreds searches every other thread's deque
//!   for a while before it sleeps again, on the cores the work needs.
//! - Time a job spent runnable but waiting for a CPU (Linux's per-thread
//!   `schedstat`) goes to the controller beside its CPU time: hundreds of
//!   CPU-bound jobs at once, after a phase of waiting work, use the cores and
//!   want hundreds of them, which cuts the limit to the cores in one step
//!   (halving it every 64 jobs took seven probes). The limit never goes
//!   below the cores: a thread measures only its own CPU time, so its jobs
//!   read as single-threaded, and fewer of those than cores cannot do more.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::adapt::{ConcurrencyController, JobTicket, LimitBound, LimitDecision};
use crate::loom::Mutex;

/// Decisions kept for [`ThreadPool::decisions`](super::ThreadPool::decisions).
const KEEP_DECISIONS: usize = 256;
/// The default most threads of an auto pool.
pub(super) const DEFAULT_MAX: usize = 256;
/// Memory a thread may need, for the memory bound: its stack (reserved, but
/// a deep task touches it) and some heap.
const STACK_GUESS: u64 = 2 << 20;

/// A job waiting for a free slot.
pub(super) type Queued = Box<dyn FnOnce() + Send>;

/// The CPU time this thread has used.
pub(super) fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// At most this many threads (of every auto pool together) keep their
/// `schedstat` open; the others open it for each reading. A pool may hold
/// hundreds of threads, and descriptors are a limited resource.
const MAX_KEPT_OPEN: usize = 64;
/// Threads that keep theirs open now.
static KEPT_OPEN: AtomicUsize = AtomicUsize::new(0);

/// A thread's `schedstat`, kept open: counted in [`KEPT_OPEN`] while it lives.
struct KeptOpen(File);

impl Drop for KeptOpen {
    fn drop(&mut self) {
        KEPT_OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What this thread knows of its `schedstat`.
enum Schedstat {
    /// Not looked at yet.
    Unknown,
    /// The kernel has none.
    Missing,
    /// Kept open.
    Open(KeptOpen),
    /// Opened for each reading (too many threads keep theirs).
    Reopen,
}

const SCHEDSTAT_PATH: &str = "/proc/thread-self/schedstat";

thread_local! {
    static SCHEDSTAT: RefCell<Schedstat> = const { RefCell::new(Schedstat::Unknown) };
}

/// How long this thread has been runnable but waiting for a CPU (the second
/// field of Linux's `schedstat`, in ns); zero where that is unknown.
pub(super) fn thread_run_wait() -> Duration {
    SCHEDSTAT.with(|cell| {
        let mut state = cell.borrow_mut();
        if matches!(*state, Schedstat::Unknown) {
            *state = match File::open(SCHEDSTAT_PATH) {
                Err(_) => Schedstat::Missing,
                Ok(file) => {
                    if KEPT_OPEN.fetch_add(1, Ordering::Relaxed) < MAX_KEPT_OPEN {
                        Schedstat::Open(KeptOpen(file))
                    } else {
                        KEPT_OPEN.fetch_sub(1, Ordering::Relaxed);
                        Schedstat::Reopen
                    }
                }
            };
        }
        let mut buf = [0u8; 96];
        let read = match &*state {
            Schedstat::Open(kept) => kept.0.read_at(&mut buf, 0),
            Schedstat::Reopen => File::open(SCHEDSTAT_PATH).and_then(|f| f.read_at(&mut buf, 0)),
            Schedstat::Unknown | Schedstat::Missing => return Duration::ZERO,
        };
        read.ok()
            .and_then(|n| parse_run_wait(&buf[..n]))
            .unwrap_or(Duration::ZERO)
    })
}

/// The run-queue wait of a `schedstat` line: `on-cpu-ns wait-ns timeslices`.
fn parse_run_wait(line: &[u8]) -> Option<Duration> {
    let line = std::str::from_utf8(line).ok()?;
    let wait = line.split_ascii_whitespace().nth(1)?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(wait))
}

/// This thread's clocks: CPU time used, and time spent waiting for a CPU.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ThreadClock {
    cpu: Duration,
    wait: Duration,
}

impl ThreadClock {
    /// This thread's clocks now.
    pub(super) fn now() -> Self {
        Self {
            cpu: thread_cpu(),
            wait: thread_run_wait(),
        }
    }

    /// The time each clock moved since `earlier`.
    fn since(self, earlier: Self) -> Self {
        Self {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            wait: self.wait.saturating_sub(earlier.wait),
        }
    }
}

/// What is guarded by the lock.
struct State {
    controller: ConcurrencyController,
    queue: VecDeque<Queued>,
    decisions: VecDeque<LimitDecision>,
}

/// The admission of an auto pool.
pub(super) struct Auto {
    state: Mutex<State>,
    /// The controller's limit, readable without the lock.
    limit: AtomicUsize,
}

/// An admitted job: hand it to [`Auto::finish`].
pub(super) struct Started {
    ticket: JobTicket,
}

impl Auto {
    /// Admission for `cores` cores and at most `max` threads.
    pub(super) fn new(cores: usize, max: usize) -> Self {
        // Never fewer than one per core (or the maximum): a thread measures
        // only its own CPU time, so its jobs read as single-threaded, and
        // fewer of those than cores cannot finish more. Under load from
        // other programs, a probe down to fewer measured as well as it (each
        // thread then gets a smaller share) and stuck below the cores.
        let mut controller = ConcurrencyController::new(cores)
            .with_max(max)
            .with_min(cores.min(max));
        let memory = crate::child::mem_available().map(|b| (b / STACK_GUESS) as usize);
        let mut decisions = VecDeque::new();
        if let Some(d) = controller.set_bound(LimitBound::Memory, memory) {
            decisions.push_back(d);
        }
        decisions.push_front(controller.last_decision().clone());
        Self {
            limit: AtomicUsize::new(controller.limit()),
            state: Mutex::new(State {
                controller,
                queue: VecDeque::new(),
                decisions,
            }),
        }
    }

    /// How many jobs may run at once now.
    pub(super) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// The decisions so far, oldest first (the latest [`KEEP_DECISIONS`]).
    pub(super) fn decisions(&self) -> Vec<LimitDecision> {
        self.state.lock().decisions.iter().cloned().collect()
    }

    /// Admits `job`: returns it with its start if a slot is free (the caller
    /// runs it, through [`run`](Self::run)), or queues it.
    pub(super) fn admit(&self, job: Queued) -> Option<(Queued, Started)> {
        self.admit_at(job, Instant::now())
    }

    /// [`admit`](Self::admit) at a given time.
    fn admit_at(&self, job: Queued, now: Instant) -> Option<(Queued, Started)> {
        let mut state = self.state.lock();
        if state.controller.running() < state.controller.limit() {
            let ticket = state.controller.job_started(now);
            Some((job, Started { ticket }))
        } else {
            state.queue.push_back(job);
            None
        }
    }

    /// Records that an admitted job ended, having used `clock` (its thread's
    /// clocks over the job); returns the queued jobs that may start now, each
    /// with its start.
    pub(super) fn finish(&self, started: Started, clock: ThreadClock) -> Vec<(Queued, Started)> {
        self.finish_at(started, Instant::now(), clock)
    }

    /// [`finish`](Self::finish) at a given time. Queued jobs that start now
    /// are counted from `now`.
    fn finish_at(
        &self,
        started: Started,
        now: Instant,
        clock: ThreadClock,
    ) -> Vec<(Queued, Started)> {
        let mut state = self.state.lock();
        let State {
            controller,
            queue,
            decisions,
        } = &mut *state;
        if let Some(d) = controller.job_finished_waited(started.ticket, clock.cpu, clock.wait, now)
        {
            if decisions.len() == KEEP_DECISIONS {
                decisions.pop_front();
            }
            decisions.push_back(d);
        }
        self.limit.store(controller.limit(), Ordering::Relaxed);
        let mut ready = Vec::new();
        while controller.running() < controller.limit() {
            let Some(job) = queue.pop_front() else { break };
            let ticket = controller.job_started(now);
            ready.push((job, Started { ticket }));
        }
        ready
    }

    /// Counts a job that starts now outside the queue (a lane of an
    /// in-place map, whose lanes follow the limit themselves).
    fn begin(&self) -> Started {
        let ticket = self.state.lock().controller.job_started(Instant::now());
        Started { ticket }
    }

    /// Runs `job` on this thread (one of the pool's), timed and counted like
    /// an admitted one; then starts on other threads whatever queued jobs the
    /// freed slot lets in. Returns the limit after the measurement.
    pub(super) fn run_counted(self: &Arc<Self>, job: impl FnOnce()) -> usize {
        let started = self.begin();
        let before = ThreadClock::now();
        job();
        let used = ThreadClock::now().since(before);
        for (other, other_started) in self.finish(started, used) {
            let auto = Arc::clone(self);
            rayon_core::spawn(move || auto.run(other, other_started));
        }
        self.limit()
    }

    /// Takes a queued job to run inline (a consumer that would otherwise block
    /// a thread of the pool helps instead).
    pub(super) fn steal(&self) -> Option<Queued> {
        self.state.lock().queue.pop_front()
    }

    /// Runs an admitted job on this thread (one of the pool's), then what the
    /// freed slot lets in, here, while there is some; what a raised limit
    /// lets in besides goes to other threads through `spawn`.
    pub(super) fn run(self: &Arc<Self>, mut job: Queued, mut started: Started) {
        loop {
            // Measured on the thread that runs the job.
            let before = ThreadClock::now();
            job();
            let used = ThreadClock::now().since(before);
            let mut ready = self.finish(started, used).into_iter();
            let Some((next, next_started)) = ready.next() else {
                return;
            };
            for (other, other_started) in ready {
                let auto = Arc::clone(self);
                rayon_core::spawn(move || auto.run(other, other_started));
            }
            (job, started) = (next, next_started);
        }
    }
}

impl std::fmt::Debug for Auto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auto")
            .field("limit", &self.limit())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing() -> Queued {
        Box::new(|| {})
    }

    /// Drives `auto` with a synthetic clock: `jobs` jobs, each taking `wall`
    /// and using `cpu_share` of it on a CPU, always as many running as the
    /// limit allows, on as many cores as there are jobs. Returns the limits
    /// seen.
    fn drive(auto: &Auto, jobs: usize, wall: Duration, cpu_share: f64) -> Vec<usize> {
        let work = |_| (wall, wall.mul_f64(cpu_share));
        drive_from(auto, Instant::now(), jobs, &work).0
    }

    /// [`drive`] from `t0`, each job's wall time and demand (CPU time plus
    /// run-queue wait, here all CPU time) given by `work(jobs running as it starts)`; also
    /// returns when the last job ended.
    fn drive_from(
        auto: &Auto,
        t0: Instant,
        jobs: usize,
        work: &dyn Fn(usize) -> (Duration, Duration),
    ) -> (Vec<usize>, Instant) {
        let mut now = t0;
        // (started, ends, demand), in no order.
        let mut running: Vec<(Started, Instant, Duration)> = Vec::new();
        let mut submitted = 0;
        let mut limits = Vec::new();
        let begin = |s: Started, now: Instant, running: &mut Vec<_>| {
            let (wall, demand) = work(running.len() + 1);
            running.push((s, now + wall, demand));
        };
        while submitted < jobs || !running.is_empty() {
            while submitted < jobs {
                submitted += 1;
                match auto.admit_at(nothing(), now) {
                    Some((_, s)) => begin(s, now, &mut running),
                    None => break,
                }
            }
            let first = (0..running.len())
                .min_by_key(|&i| running[i].1)
                .expect("a running job");
            let (started, ends, demand) = running.swap_remove(first);
            now = now.max(ends);
            let clock = ThreadClock {
                cpu: demand,
                wait: Duration::ZERO,
            };
            for (_, s) in auto.finish_at(started, now, clock) {
                begin(s, now, &mut running);
            }
            limits.push(auto.limit());
        }
        (limits, now)
    }

    /// Drives `auto` from `t0` with `jobs` CPU-bound jobs of `work` CPU time
    /// each on `cores` cores shared fairly (n jobs at once each run at
    /// `cores / n` of a core), always as many running as the limit allows.
    /// A job is runnable all its life, so its demand is its wall time.
    fn drive_cpu(
        auto: &Auto,
        t0: Instant,
        jobs: usize,
        work: Duration,
        cores: usize,
    ) -> Vec<usize> {
        let mut now = t0;
        // (started, began, CPU time left in seconds).
        let mut running: Vec<(Started, Instant, f64)> = Vec::new();
        let mut submitted = 0;
        let mut limits = Vec::new();
        while submitted < jobs || !running.is_empty() {
            while submitted < jobs {
                submitted += 1;
                match auto.admit_at(nothing(), now) {
                    Some((_, s)) => running.push((s, now, work.as_secs_f64())),
                    None => break,
                }
            }
            let rate = (cores as f64 / running.len() as f64).min(1.0);
            let first = (0..running.len())
                .min_by(|&a, &b| running[a].2.total_cmp(&running[b].2))
                .expect("a running job");
            let step = running[first].2 / rate;
            now += Duration::from_secs_f64(step);
            for job in &mut running {
                job.2 -= step * rate;
            }
            let (started, began, _) = running.swap_remove(first);
            let wall = now - began;
            let clock = ThreadClock {
                cpu: work.min(wall),
                wait: wall.saturating_sub(work),
            };
            for (_, s) in auto.finish_at(started, now, clock) {
                running.push((s, now, work.as_secs_f64()));
            }
            limits.push(auto.limit());
        }
        limits
    }

    #[test]
    fn admission_queues_beyond_the_limit_and_releases_on_finish() {
        let auto = Auto::new(2, 8);
        assert_eq!(auto.limit(), 2);
        let now = Instant::now();
        let (_, a) = auto.admit_at(nothing(), now).expect("a slot");
        let (_, _b) = auto.admit_at(nothing(), now).expect("a slot");
        assert!(auto.admit_at(nothing(), now).is_none(), "the third waits");
        assert!(
            auto.steal().is_some(),
            "a queued job can be taken to run inline"
        );
        assert!(auto.admit_at(nothing(), now).is_none());
        let ready = auto.finish_at(a, now + Duration::from_millis(1), ThreadClock::default());
        assert_eq!(ready.len(), 1, "a freed slot lets one in");
    }

    #[test]
    fn sleeping_jobs_raise_the_limit_with_reasons() {
        let auto = Auto::new(2, 256);
        let limits = drive(&auto, 2_000, Duration::from_millis(50), 0.001);
        let top = *limits.iter().max().unwrap();
        assert!(
            top >= 32,
            "sleeping jobs climb well past the cores: {limits:?}"
        );
        let decisions = auto.decisions();
        assert!(decisions.len() >= 2, "the start and at least one climb");
        assert_eq!(decisions[0].to, 2, "it starts at one per core");
        assert!(decisions.iter().any(|d| d.to > d.from), "{decisions:?}");
        assert!(decisions.iter().all(|d| !d.to_string().is_empty()));
    }

    #[test]
    fn cpu_bound_jobs_hold_about_one_per_core() {
        let auto = Auto::new(4, 256);
        let limits = drive(&auto, 2_000, Duration::from_millis(5), 1.0);
        assert!(
            limits.iter().all(|&l| l <= 4),
            "never above the cores: {limits:?}"
        );
        assert!(
            *limits.last().unwrap() >= 2,
            "and not far below: {limits:?}"
        );
    }

    #[test]
    fn cpu_bound_jobs_after_sleeping_ones_cut_the_limit_to_the_cores_at_once() {
        let auto = Auto::new(2, 256);
        let naps = |_| (Duration::from_millis(50), Duration::from_micros(50));
        let (_, end) = drive_from(&auto, Instant::now(), 3_000, &naps);
        let high = auto.limit();
        assert!(high >= 32, "the sleeping phase climbs: {high}");
        let before = auto.decisions().len();
        // The same many threads now run CPU-bound jobs of 5 ms on 2 cores.
        let limits = drive_cpu(&auto, end, 2_000, Duration::from_millis(5), 2);
        let cut = auto.decisions()[before..]
            .iter()
            .find(|d| matches!(d.reason, crate::adapt::LimitReason::Oversubscribed { .. }))
            .cloned()
            .expect("an oversubscribed cut");
        let said = || {
            auto.decisions()[before..]
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert!(cut.from >= 32 && cut.to <= 8, "{:#?}", said());
        let at = limits
            .iter()
            .position(|&l| l == 2)
            .unwrap_or_else(|| panic!("reaches 2: {:#?}", said()));
        // The jobs running at the switch finish first, and the first window
        // mixes both kinds: within two generations, where halving every 64
        // jobs took seven probes.
        assert!(
            at <= 2 * high,
            "within two generations of jobs: {at}; {:#?}",
            said()
        );
        assert!(*limits.last().unwrap() <= 2, "and stays: {:#?}", said());
    }

    #[test]
    fn schedstat_lines_give_the_run_queue_wait() {
        assert_eq!(
            parse_run_wait(b"67317 1500 1\n"),
            Some(Duration::from_nanos(1500))
        );
        assert_eq!(parse_run_wait(b"67317"), None);
        assert_eq!(parse_run_wait(b"x y z"), None);
        // This thread's wait never runs back.
        let a = thread_run_wait();
        assert!(thread_run_wait() >= a);
    }

    #[test]
    fn the_limit_stays_under_the_maximum() {
        let auto = Auto::new(2, 12);
        let limits = drive(&auto, 2_000, Duration::from_millis(50), 0.0);
        assert!(limits.iter().all(|&l| l <= 12), "{limits:?}");
        assert_eq!(
            *limits.iter().max().unwrap(),
            12,
            "sleeping jobs reach the maximum"
        );
    }
}
