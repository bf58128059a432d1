//! The admission of a self-sizing pool ([`ThreadPool::auto`](super::ThreadPool::auto)):
//! how many of its threads may run tasks at once, chosen by measurement.
//!
//! The rayon-core pool holds the most threads the pool may ever use; this
//! module lets at most [`limit`](Auto::limit) jobs (tasks, map chunks, pieces
//! of an in-place collect) run at once and queues the rest. Each job is timed
//! (wall, and this thread's CPU time) and fed to the shared
//! [`ConcurrencyController`]: CPU-bound jobs hold the limit at about one per
//! core, jobs that wait raise it while throughput keeps rising. Idle threads
//! sleep in rayon-core and cost only their stacks' touched pages.

use std::collections::VecDeque;
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

/// A started job: hand it to [`Auto::finish`].
pub(super) struct Started {
    ticket: JobTicket,
    cpu: Duration,
}

impl Auto {
    /// Admission for `cores` cores and at most `max` threads.
    pub(super) fn new(cores: usize, max: usize) -> Self {
        let mut controller = ConcurrencyController::new(cores).with_max(max);
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
        self.admit_at(job, Instant::now(), thread_cpu())
    }

    /// [`admit`](Self::admit) at a given time, this thread having used `cpu`.
    fn admit_at(&self, job: Queued, now: Instant, cpu: Duration) -> Option<(Queued, Started)> {
        let mut state = self.state.lock();
        if state.controller.running() < state.controller.limit() {
            let started = Self::start(&mut state.controller, now, cpu);
            Some((job, started))
        } else {
            state.queue.push_back(job);
            None
        }
    }

    fn start(controller: &mut ConcurrencyController, now: Instant, cpu: Duration) -> Started {
        Started {
            ticket: controller.job_started(now),
            cpu,
        }
    }

    /// Records that a job begun on this thread ended; returns the queued jobs
    /// that may start now, each with its start.
    pub(super) fn finish(&self, started: Started) -> Vec<(Queued, Started)> {
        self.finish_at(started, Instant::now(), thread_cpu())
    }

    /// [`finish`](Self::finish) at a given time, this thread's CPU clock
    /// reading `cpu_now`. Queued jobs that start now are counted from `now`,
    /// on the same CPU clock.
    fn finish_at(
        &self,
        started: Started,
        now: Instant,
        cpu_now: Duration,
    ) -> Vec<(Queued, Started)> {
        let cpu = cpu_now.saturating_sub(started.cpu);
        let mut state = self.state.lock();
        let State {
            controller,
            queue,
            decisions,
        } = &mut *state;
        if let Some(d) = controller.job_finished(started.ticket, cpu, now) {
            if decisions.len() == KEEP_DECISIONS {
                decisions.pop_front();
            }
            decisions.push_back(d);
        }
        self.limit.store(controller.limit(), Ordering::Relaxed);
        let mut ready = Vec::new();
        while controller.running() < controller.limit() {
            let Some(job) = queue.pop_front() else { break };
            ready.push((job, Self::start(controller, now, cpu_now)));
        }
        ready
    }

    /// Takes a queued job to run inline (a consumer that would otherwise block
    /// a thread of the pool helps instead).
    pub(super) fn steal(&self) -> Option<Queued> {
        self.state.lock().queue.pop_front()
    }

    /// Runs an admitted job on this thread (one of the pool's), then starts
    /// whatever the freed slot (and a raised limit) lets in, through `spawn`.
    pub(super) fn run(self: &Arc<Self>, job: Queued, started: Started) {
        job();
        for (next, started) in self.finish(started) {
            let auto = Arc::clone(self);
            rayon_core::spawn(move || auto.run(next, started));
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
    /// limit allows. Returns the limits seen.
    fn drive(auto: &Auto, jobs: usize, wall: Duration, cpu_share: f64) -> Vec<usize> {
        let t0 = Instant::now();
        let mut now = t0;
        let mut cpu = Duration::ZERO;
        let mut running: VecDeque<(Started, Instant)> = VecDeque::new();
        let mut submitted = 0;
        let mut limits = Vec::new();
        while submitted < jobs || !running.is_empty() {
            while submitted < jobs {
                submitted += 1;
                match auto.admit_at(nothing(), now, cpu) {
                    Some((_, s)) => running.push_back((s, now + wall)),
                    None => break,
                }
            }
            let (started, ends) = running.pop_front().expect("a running job");
            now = now.max(ends);
            cpu += wall.mul_f64(cpu_share);
            for (_, s) in auto.finish_at(started, now, cpu) {
                running.push_back((s, now + wall));
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
        let (_, a) = auto
            .admit_at(nothing(), now, Duration::ZERO)
            .expect("a slot");
        let (_, _b) = auto
            .admit_at(nothing(), now, Duration::ZERO)
            .expect("a slot");
        assert!(
            auto.admit_at(nothing(), now, Duration::ZERO).is_none(),
            "the third waits"
        );
        assert!(
            auto.steal().is_some(),
            "a queued job can be taken to run inline"
        );
        assert!(auto.admit_at(nothing(), now, Duration::ZERO).is_none());
        let ready = auto.finish_at(a, now + Duration::from_millis(1), Duration::ZERO);
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
