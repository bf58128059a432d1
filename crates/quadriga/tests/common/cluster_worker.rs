//! A cluster worker on a thread of the test process, stopped (and joined)
//! when dropped, so that no test leaves a worker behind.

#![allow(dead_code)]

use std::thread::JoinHandle;

use quadriga::cluster::{Worker, WorkerReport, WorkerStop};

/// A running worker and how to stop it.
pub(crate) struct InProcess {
    stop: WorkerStop,
    thread: Option<JoinHandle<WorkerReport>>,
}

impl InProcess {
    /// Runs `worker` on its own thread until stopped.
    pub(crate) fn run(worker: Worker) -> Self {
        let stop = worker.stopper();
        let thread = std::thread::spawn(move || worker.run().unwrap());
        InProcess {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the worker (it finishes what it holds) and returns its report.
    pub(crate) fn stop(mut self) -> WorkerReport {
        self.stop.stop();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
