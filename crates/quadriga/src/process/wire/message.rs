//! The messages on a worker's socket: [`Down`] to it, [`Up`] from it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::task::batch::Batch;
use crate::task::outcomes::Outcomes;

/// Bumped whenever a message changes shape; a worker of another version refuses.
pub(crate) const PROTOCOL: u32 = 3;

/// Supervisor → worker.
///
/// The supervisor encodes borrowed names and inputs (the job keeps its own
/// for retries and splitting: no copy per send); the worker decodes owned
/// ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Down<'a> {
    /// Run the initializer task once, before any job.
    Init {
        task: Cow<'a, str>,
        input: Cow<'a, Batch>,
    },
    /// Run `task` on every item of `input`, in order.
    Run {
        job: u64,
        task: Cow<'a, str>,
        input: Cow<'a, Batch>,
    },
    /// Finish and exit.
    Exit,
}

/// Worker → supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Up {
    /// The worker is up (after its initializer, if any).
    Ready { pid: u32, protocol: u32 },
    /// The initializer failed; the worker exits.
    InitFailed { error: TaskError },
    /// A job is done: one outcome per input item, and how long it ran.
    Done {
        job: u64,
        nanos: u64,
        outcomes: Outcomes,
    },
}
