//! Running one delivered entry: its items through the task registry, on the
//! calling thread, one outcome per item.

use super::entry::Entry;
use super::outcome::Outcome;
use crate::task::batch::Batch;
use crate::task::registry;
use crate::{TaskError, TaskErrorKind};

/// Runs every item of `entry` and returns one outcome per item, in order. A
/// task this binary does not know ends each item with a codec error that
/// says so (never a retry: another delivery would meet the same binary).
pub(crate) fn run_entry(entry: &Entry, worker: &str) -> Vec<Outcome> {
    let n = entry.items.len();
    let task = match registry::lookup(&entry.task) {
        Ok(task) => task,
        Err(err) => {
            let err = TaskError::new(
                TaskErrorKind::Codec,
                format!(
                    "worker {worker} does not know the task `{}` ({}); run workers built \
                     from the program that defines it",
                    entry.task,
                    err.message()
                ),
            )
            .with_task(&entry.task, None);
            return (0..n).map(|_| Outcome::Error(err.clone())).collect();
        }
    };
    let mut batch = Batch::default();
    for item in &entry.items {
        batch.push_raw(&item.input, &[]);
    }
    let (mut outcomes, _elapsed) = registry::run(task, &batch);
    outcomes.fit(n, || {
        TaskError::codec("the task gave no outcome for this item")
    });
    outcomes
        .into_items()
        .map(|r| match r {
            Ok(bytes) => Outcome::Output(bytes),
            Err(err) => Outcome::Error(err),
        })
        .collect()
}
