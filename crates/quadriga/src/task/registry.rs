//! Every `#[quadriga::task]` registers itself (through `inventory`) under its
//! stable name, with a type-erased runner: so a worker, which is the same binary
//! re-executed, can find a task by name and run it on encoded inputs.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use super::Task;
use super::batch::Batch;
use super::outcomes::Outcomes;
use crate::error::TaskError;

/// One registered task. Built by `#[quadriga::task]`; not a public API.
#[doc(hidden)]
#[derive(Debug)]
pub struct TaskEntry {
    name: &'static str,
    run: fn(&Batch) -> Outcomes,
}

impl TaskEntry {
    /// The entry for task `T`.
    pub const fn of<T: Task + Default>() -> Self {
        Self {
            name: T::NAME,
            run: run_batch::<T>,
        }
    }
}

inventory::collect!(TaskEntry);

/// Decodes each item, runs the task on it under `catch`, encodes each output.
/// One bad item fails alone.
fn run_batch<T: Task + Default>(input: &Batch) -> Outcomes {
    let task = T::default();
    let mut outcomes = Outcomes::default();
    let mut scratch = Vec::new();
    let _in_task = crate::panic::InTask::enter();
    for i in 0..input.len() {
        let item = input
            .item(i)
            .ok_or_else(|| TaskError::codec("the input batch is malformed"))
            .and_then(|bytes| {
                let fds = input
                    .item_fds(i)
                    .map_err(|e| TaskError::codec(format!("could not decode the input: {e}")))?;
                super::transfer::provide(&fds, || postcard::from_bytes::<T::Input>(bytes))
                    .map_err(|e| TaskError::codec(format!("could not decode the input: {e}")))
            })
            .and_then(|input| crate::panic::catch(|| task.run(input)).and_then(|r| r))
            .and_then(|output| {
                scratch.clear();
                postcard::to_extend(&output, std::mem::take(&mut scratch))
                    .map_err(|e| TaskError::codec(format!("could not encode the output: {e}")))
            });
        match item {
            Ok(bytes) => {
                outcomes.push_ok(&bytes);
                scratch = bytes;
            }
            Err(err) => outcomes.push_err(err),
        }
    }
    outcomes
}

fn registry() -> &'static HashMap<&'static str, Result<&'static TaskEntry, ()>> {
    static REGISTRY: OnceLock<HashMap<&'static str, Result<&'static TaskEntry, ()>>> =
        OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut map = HashMap::new();
        for entry in inventory::iter::<TaskEntry> {
            map.entry(entry.name)
                .and_modify(|slot| *slot = Err(())) // registered twice: ambiguous
                .or_insert(Ok(entry));
        }
        map
    })
}

/// The names of every registered task (a cluster worker's record lists them).
#[cfg(feature = "cluster")]
pub(crate) fn names() -> Vec<&'static str> {
    registry().keys().copied().collect()
}

/// Finds the task registered as `name`.
pub(crate) fn lookup(name: &str) -> Result<&'static TaskEntry, TaskError> {
    match registry().get(name) {
        Some(Ok(entry)) => Ok(entry),
        Some(Err(())) => Err(TaskError::codec(format!(
            "two tasks are registered as `{name}`; give one another name with #[quadriga::task(name = \"...\")]"
        ))),
        None => Err(TaskError::codec(format!(
            "no task is registered as `{name}`: only #[quadriga::task] functions run in worker processes"
        ))),
    }
}

/// Runs a registered task on a batch; returns the outcomes and how long it took.
pub(crate) fn run(entry: &TaskEntry, input: &Batch) -> (Outcomes, u64) {
    let started = Instant::now();
    let outcomes = (entry.run)(input);
    (outcomes, started.elapsed().as_nanos() as u64)
}
