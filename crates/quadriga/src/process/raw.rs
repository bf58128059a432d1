//! Raw jobs: an already encoded (task name, [`Batch`]) run by the pool's
//! supervised workers, its [`Outcomes`] handed back on a channel. For the
//! cluster worker's process isolation, which receives encoded entries and
//! never sees the task's types.

use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::ProcessPool;
use super::supervisor::{Command, Job, Sink};
use crate::handle;
use crate::task::batch::Batch;
use crate::task::outcomes::Outcomes;

/// A raw job in flight: its id (to cancel it) and where its outcomes come.
/// The channel closes without a message when the job was cancelled (or the
/// pool shut down) before it finished.
pub(crate) struct RawJob {
    pub(crate) id: u64,
    pub(crate) outcomes: Receiver<(Outcomes, Duration)>,
}

struct RawSink(Sender<(Outcomes, Duration)>);

impl Sink for RawSink {
    fn start(&mut self) -> bool {
        true
    }

    fn finish(self: Box<Self>, outcomes: Outcomes, elapsed: Duration) {
        let _ = self.0.send((outcomes, elapsed));
    }
}

impl ProcessPool {
    /// Runs `input` (items encoded for the registered task `task`) in a worker
    /// process, with `timeout` per job (the pool's when `None`) and no
    /// retries: a crash or a timeout is the items' outcome.
    pub(crate) fn submit_raw(
        &self,
        task: &'static str,
        input: Batch,
        timeout: Option<Duration>,
    ) -> RawJob {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let id = handle::next_id();
        let job = Job {
            id,
            task,
            input,
            timeout: timeout.or(self.timeout),
            retries: 0,
            sink: Box::new(RawSink(tx)),
            started: false,
        };
        // Refused after shutdown: the job, and its sender, are dropped.
        let _ = self.send(Command::Submit(job));
        RawJob { id, outcomes: rx }
    }

    /// Cancels raw job `id`: dropped if queued, its worker killed if running.
    pub(crate) fn cancel_raw(&self, id: u64) {
        let _ = self.send(Command::Cancel(id));
    }
}
