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
        let mut state = self.state.lock();
        if state.controller.running() < state.controller.limit() {
            let started = Self::start(&mut state.controller);
            Some((job, started))
        } else {
            state.queue.push_back(job);
            None
        }
    }

    /// Counts a job that runs without the queue (a piece of an in-place
    /// collect, whose number already follows the limit).
    pub(super) fn begin(&self) -> Started {
        Self::start(&mut self.state.lock().controller)
    }

    fn start(controller: &mut ConcurrencyController) -> Started {
        Started {
            ticket: controller.job_started(Instant::now()),
            cpu: thread_cpu(),
        }
    }

    /// Records that a job begun on this thread ended; returns the queued jobs
    /// that may start now, each with its start.
    pub(super) fn finish(&self, started: Started) -> Vec<(Queued, Started)> {
        let cpu = thread_cpu().saturating_sub(started.cpu);
        let mut state = self.state.lock();
        let State {
            controller,
            queue,
            decisions,
        } = &mut *state;
        if let Some(d) = controller.job_finished(started.ticket, cpu, Instant::now()) {
            if decisions.len() == KEEP_DECISIONS {
                decisions.pop_front();
            }
            decisions.push_back(d);
        }
        self.limit.store(controller.limit(), Ordering::Relaxed);
        let mut ready = Vec::new();
        while controller.running() < controller.limit() {
            let Some(job) = queue.pop_front() else { break };
            ready.push((job, Self::start(controller)));
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

    #[test]
    fn admission_queues_beyond_the_limit_and_releases_on_finish() {
        let auto = Auto::new(2, 8);
        assert_eq!(auto.limit(), 2);
        let a = auto.admit(Box::new(|| {})).expect("a slot");
        let b = auto.admit(Box::new(|| {})).expect("a slot");
        assert!(auto.admit(Box::new(|| {})).is_none(), "the third waits");
        let ready = auto.finish(a.1);
        assert_eq!(ready.len(), 1, "a freed slot lets one in");
        assert!(auto.steal().is_none());
        drop(b);
    }
}
