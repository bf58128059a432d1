//! Running one delivered entry: its items through the task registry, on the
//! calling thread or in a supervised child process, one outcome per item.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::entry::Entry;
use super::keys::TaskId;
use super::outcome::Outcome;
use crate::context::{self, CancelToken};
use crate::process::ProcessPool;
use crate::task::batch::Batch;
use crate::task::outcomes::Outcomes;
use crate::task::registry;
use crate::{TaskError, TaskErrorKind};

/// The cluster task running on this thread, as [`current_task`] tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CurrentTask {
    /// Its id.
    pub id: TaskId,
    /// Which delivery of its entry this run is (1 the first; a worker lost
    /// past its lease makes the next run 2, and so on; 0 when not known).
    pub delivery: u64,
}

thread_local! {
    static CURRENT: Cell<Option<CurrentTask>> = const { Cell::new(None) };
}

/// The cluster task running on this thread (on a [`Worker`](super::Worker)
/// with thread isolation, for an entry of one item): its id and delivery
/// number. `None` anywhere else, and for the items of a `map` chunk.
///
/// A task that writes somewhere keyed by its id (its output, say) can tell
/// a rerun after a lost worker from the first run by `delivery`.
pub fn current_task() -> Option<CurrentTask> {
    CURRENT.with(Cell::get)
}

/// Publishes the current task for as long as it lives.
struct Enter(Option<CurrentTask>);

impl Enter {
    fn new(task: Option<CurrentTask>) -> Self {
        Enter(CURRENT.with(|c| c.replace(task)))
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Runs every item of `entry` on this thread and returns one outcome per
/// item, in order. A task this binary does not know ends each item with a
/// codec error that says so (never a retry: another delivery would meet the
/// same binary). The task sees `cancel` as its cancel token and, alone in
/// its entry, itself as [`current_task`] (delivered for the `delivery`th
/// time).
pub(crate) fn run_entry(
    entry: &Entry,
    worker: &str,
    delivery: u64,
    cancel: Arc<AtomicBool>,
) -> Vec<Outcome> {
    let n = entry.items.len();
    let task = match registry::lookup(&entry.task) {
        Ok(task) => task,
        Err(err) => return unknown(entry, worker, &err),
    };
    let current = match entry.ids().collect::<Vec<_>>()[..] {
        [id] => Some(CurrentTask { id, delivery }),
        _ => None,
    };
    let _task = Enter::new(current);
    let _cancel = context::Enter::new(CancelToken::new(Some(cancel), None));
    let (outcomes, _elapsed) = registry::run(task, &batch(entry));
    to_outcomes(outcomes, n)
}

/// Runs every item of `entry` in one of `pool`'s worker processes, killed
/// after `timeout` if one is given. `started` is told the job's id first (to
/// cancel it with [`ProcessPool::cancel_raw`]). `None` when the job was
/// cancelled before it finished: it has no outcomes.
pub(crate) fn run_entry_isolated(
    pool: &ProcessPool,
    entry: &Entry,
    worker: &str,
    timeout: Option<Duration>,
    started: impl FnOnce(u64),
) -> Option<Vec<Outcome>> {
    let n = entry.items.len();
    // The supervisor wants the registry's own `'static` name.
    let Some(name) = registry::names().into_iter().find(|&t| t == entry.task) else {
        let err = registry::lookup(&entry.task)
            .err()
            .unwrap_or_else(|| TaskError::codec("not registered"));
        return Some(unknown(entry, worker, &err));
    };
    let job = pool.submit_raw(name, batch(entry), timeout);
    started(job.id);
    let (outcomes, _elapsed) = job.outcomes.recv().ok()?;
    Some(to_outcomes(outcomes, n))
}

fn batch(entry: &Entry) -> Batch {
    let mut batch = Batch::default();
    for item in &entry.items {
        batch.push_raw(&item.input, &[]);
    }
    batch
}

fn to_outcomes(mut outcomes: Outcomes, n: usize) -> Vec<Outcome> {
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

/// Every item ends with a codec error naming the task and this worker.
fn unknown(entry: &Entry, worker: &str, err: &TaskError) -> Vec<Outcome> {
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
    (0..entry.items.len())
        .map(|_| Outcome::Error(err.clone()))
        .collect()
}
