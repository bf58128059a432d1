//! What callers hand the supervisor: jobs, with a sink for their outcomes, and
//! commands.

use std::time::Duration;

use crate::error::TaskError;
use crate::executor::Shutdown;
use crate::task::batch::Batch;
use crate::task::outcomes::Outcomes;

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

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("task", &self.task)
            .field("items", &self.input.len())
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

/// What the pool asks of the supervisor.
#[derive(Debug)]
pub(crate) enum Command {
    Submit(Job),
    Cancel(u64),
    Shutdown(Shutdown),
}

/// A job's end, for the shell to hand to its sink (the core never calls
/// `finish` itself, so its tests can see every delivery).
pub(crate) struct Delivery {
    pub(crate) job: u64,
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) outcomes: Outcomes,
    pub(crate) elapsed: Duration,
}

impl Delivery {
    /// Every item of `job` ends with `err`.
    pub(crate) fn failed(job: Job, err: &TaskError) -> Self {
        Self {
            job: job.id,
            outcomes: Outcomes::all_failed(job.input.len(), err),
            sink: job.sink,
            elapsed: Duration::ZERO,
        }
    }

    /// Hands the outcomes to the sink.
    pub(crate) fn deliver(self) {
        self.sink.finish(self.outcomes, self.elapsed);
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("job", &self.job)
            .field("outcomes", &self.outcomes)
            .field("elapsed", &self.elapsed)
            .finish_non_exhaustive()
    }
}
