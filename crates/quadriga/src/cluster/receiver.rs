//! The client's table of tasks waiting for an outcome, and the one receiver
//! thread per pool that resolves them.
//!
//! A task is put in the table *before* its entry is enqueued, so its
//! notification can never arrive first and be missed. The receiver blocks on
//! the client's reply streams (its own connection), fetches the outcomes
//! named there and hands each to its destination: a handle, or one item of a
//! map chunk. After any broker failure it asks again for every task still
//! waiting, so a notification lost with a connection costs a round trip, not
//! a task. A task that ended with a task error and has retries left is
//! enqueued again, under a new id, for the same destination, after a
//! back-off held by the broker (a delayed entry). Cancelled
//! handles leave their ids here, and the receiver cancels them on the broker
//! (removing a waiting task, stopping a running one) before its next read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::broker::Broker;
use super::error::{Error, ErrorKind};
use super::keys::{self, TaskId};
use super::outcome::Outcome;
use super::replies::Notice;
use crate::TaskErrorKind;

/// How long one blocking read of the reply streams waits (and so how long a
/// shutdown may wait for the receiver).
const BLOCK: Duration = Duration::from_millis(100);

/// Where an outcome goes: a handle, or a map chunk's item `index`.
pub(crate) trait Collect: Send {
    /// Takes the outcome of item `index`, whose entry ran for `ran` on its
    /// worker (zero when not known).
    fn put(&mut self, index: usize, outcome: Outcome, ran: Duration);
}

/// A shared destination.
pub(crate) type Dest = Arc<Mutex<dyn Collect>>;

/// Hands `outcome` to `dest`'s item `index`.
pub(crate) fn deliver(dest: &Dest, index: usize, outcome: Outcome, ran: Duration) {
    dest.lock()
        .unwrap_or_else(|p| p.into_inner())
        .put(index, outcome, ran);
}

/// What it takes to run a task again after a task error.
#[derive(Debug)]
pub(crate) struct Retry {
    pub(crate) task: String,
    pub(crate) input: Vec<u8>,
    pub(crate) left: u32,
    /// How long the next retry waits (doubling, at most a minute).
    pub(crate) backoff: Duration,
    /// Retries made so far.
    pub(crate) attempt: u32,
    /// The id the task was submitted under (its handle's cancel names it).
    pub(crate) first: TaskId,
}

/// One task waiting for its outcome.
pub(crate) struct Waiting {
    pub(crate) dest: Dest,
    pub(crate) index: usize,
    pub(crate) retry: Option<Retry>,
}

/// The waiting tasks, grouped by entry: a client's entries each have their
/// own block of sequence numbers (`keys.rs`), so a task is found by its
/// block, then by its place in it, and a map chunk of many thousand tasks
/// costs one hash-map slot, not one per task.
#[derive(Default)]
pub(crate) struct Waits {
    blocks: HashMap<u64, Block>,
    tasks: usize,
}

/// The waiting tasks of one block: slot `i` is sequence number `lo + i`.
struct Block {
    shard: u16,
    client: u64,
    lo: u64,
    slots: Vec<Option<Waiting>>,
    live: usize,
}

impl Waits {
    fn insert(&mut self, id: TaskId, waiting: Waiting) {
        let block = self
            .blocks
            .entry(id.seq / keys::BLOCK)
            .or_insert_with(|| Block {
                shard: id.shard,
                client: id.client,
                lo: id.seq,
                slots: Vec::new(),
                live: 0,
            });
        if id.seq < block.lo {
            let more = (block.lo - id.seq) as usize;
            block
                .slots
                .splice(0..0, std::iter::repeat_with(|| None).take(more));
            block.lo = id.seq;
        }
        let i = (id.seq - block.lo) as usize;
        if block.slots.len() <= i {
            block.slots.resize_with(i + 1, || None);
        }
        if block.slots[i].replace(waiting).is_none() {
            block.live += 1;
            self.tasks += 1;
        }
    }

    pub(crate) fn remove(&mut self, id: TaskId) -> Option<Waiting> {
        let key = id.seq / keys::BLOCK;
        let block = self.blocks.get_mut(&key)?;
        if block.shard != id.shard || block.client != id.client || id.seq < block.lo {
            return None;
        }
        let w = block.slots.get_mut((id.seq - block.lo) as usize)?.take()?;
        block.live -= 1;
        self.tasks -= 1;
        if block.live == 0 {
            self.blocks.remove(&key);
        }
        Some(w)
    }

    pub(crate) fn contains(&self, id: TaskId) -> bool {
        self.blocks.get(&(id.seq / keys::BLOCK)).is_some_and(|b| {
            b.shard == id.shard
                && b.client == id.client
                && id.seq >= b.lo
                && b.slots
                    .get((id.seq - b.lo) as usize)
                    .is_some_and(Option::is_some)
        })
    }

    fn ids(&self) -> Vec<TaskId> {
        let mut out = Vec::with_capacity(self.tasks);
        for b in self.blocks.values() {
            for (i, slot) in b.slots.iter().enumerate() {
                if slot.is_some() {
                    out.push(TaskId {
                        shard: b.shard,
                        client: b.client,
                        seq: b.lo + i as u64,
                    });
                }
            }
        }
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.tasks
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tasks == 0
    }
}

/// The tasks waiting for an outcome, by id.
#[derive(Default)]
pub(crate) struct Table {
    map: Mutex<Waits>,
    empty: Condvar,
    stop: AtomicBool,
    /// Tasks whose handles were cancelled, to cancel on the broker, each
    /// with the count of entries handed to the sender by then.
    cancels: Mutex<Vec<(TaskId, u64)>>,
    /// Entries handed to the sender thread (`sender.rs`), and entries it
    /// settled (enqueued, failed or dropped as cancelled), in order.
    pub(crate) pushed: AtomicU64,
    pub(crate) sent: AtomicU64,
    /// Retried tasks: the id submitted → the id of the current attempt.
    retried: Mutex<HashMap<TaskId, TaskId>>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("waiting", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl Table {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Waits> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add(&self, id: TaskId, waiting: Waiting) {
        self.lock().insert(id, waiting);
    }

    /// Adds many tasks at once.
    pub(crate) fn add_all(&self, tasks: impl IntoIterator<Item = (TaskId, Waiting)>) {
        let mut map = self.lock();
        for (id, w) in tasks {
            map.insert(id, w);
        }
    }

    /// Whether task `id` waits.
    pub(crate) fn contains(&self, id: TaskId) -> bool {
        self.lock().contains(id)
    }

    /// The task waiting under `old` waits under `new` instead (its entry was
    /// split); the table is never empty in between.
    pub(crate) fn rename(&self, old: TaskId, new: TaskId) {
        let mut map = self.lock();
        if let Some(mut w) = map.remove(old) {
            if let Some(retry) = &mut w.retry
                && retry.first == old
            {
                retry.first = new;
            }
            map.insert(new, w);
        }
    }

    /// Takes a task out of the table (its outcome came, or it was cancelled).
    pub(crate) fn remove(&self, id: TaskId) -> Option<Waiting> {
        let mut map = self.lock();
        let w = map.remove(id);
        if map.is_empty() {
            self.empty.notify_all();
        }
        w
    }

    /// How many tasks wait.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Blocks until no task waits.
    pub(crate) fn wait_empty(&self) {
        let mut map = self.lock();
        while !map.is_empty() {
            map = self.empty.wait(map).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Forgets every waiting task: their destinations, dropped, resolve them
    /// as cancelled.
    pub(crate) fn clear(&self) {
        let all = std::mem::take(&mut *self.lock());
        self.empty.notify_all();
        drop(all);
    }

    /// Takes a cancelled task out of the table and asks the receiver to
    /// cancel it on the broker.
    pub(crate) fn cancel(&self, id: TaskId) {
        let id = self
            .retried
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
            .unwrap_or(id);
        if self.remove(id).is_some() {
            let ticket = self.pushed.load(Ordering::Acquire);
            self.cancels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((id, ticket));
        }
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The receiver thread's body: runs until [`Table::stop`].
pub(crate) fn run(mut broker: Broker, table: &Table) {
    let shards = usize::from(broker.keys().shards());
    let mut after = vec!["0-0".to_owned(); shards];
    let mut recheck = false;
    let mut failures = 0u32;
    while !table.stop.load(Ordering::Acquire) {
        let step = if let Err(e) = cancel(&mut broker, table) {
            Err(e)
        } else if recheck {
            let ids: Vec<TaskId> = table.lock().ids();
            fetch_and_settle(&mut broker, table, &ids, Duration::ZERO).map(|()| recheck = false)
        } else {
            broker
                .read_replies(&mut after, BLOCK, 4096)
                .and_then(|notices| settle(&mut broker, table, notices))
        };
        match step {
            Ok(()) => failures = 0,
            Err(e) => {
                if failures == 0 {
                    eprintln!("quadriga cluster client: {e}; trying again");
                }
                recheck = true;
                failures += 1;
                let wait = Duration::from_millis((50u64 << failures.min(5)).min(2000));
                let until = std::time::Instant::now() + wait;
                while std::time::Instant::now() < until && !table.stop.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}

/// Cancels on the broker the tasks whose handles were cancelled; those not
/// done when the broker fails are kept for the next turn, and so are those
/// the broker does not know yet while their entry may still be on its way
/// (handed to the sender before the cancel, not settled by it yet).
fn cancel(broker: &mut Broker, table: &Table) -> Result<(), Error> {
    let ids = std::mem::take(&mut *table.cancels.lock().unwrap_or_else(|p| p.into_inner()));
    let mut later = Vec::new();
    for (i, &(id, ticket)) in ids.iter().enumerate() {
        match broker.cancel(id) {
            Ok(_) => {}
            Err(e)
                if e.kind() == ErrorKind::UnknownTask
                    && table.sent.load(Ordering::Acquire) < ticket =>
            {
                later.push((id, ticket));
            }
            // Never enqueued (its submission failed, or the sender dropped
            // it as cancelled): nothing to cancel.
            Err(e) if e.kind() == ErrorKind::UnknownTask => {}
            Err(e) => {
                table
                    .cancels
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(later.into_iter().chain(ids[i..].iter().copied()));
                return Err(e);
            }
        }
    }
    table
        .cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(later);
    Ok(())
}

/// Settles the tasks named by `notices` that are still waiting: with the
/// outcomes carried inline, or fetched from their entries' records.
fn settle(broker: &mut Broker, table: &Table, notices: Vec<Notice>) -> Result<(), Error> {
    let mut known = Vec::new();
    let mut fetch: Vec<(TaskId, Duration)> = Vec::new();
    {
        let mut map = table.lock();
        for notice in &notices {
            for (i, id) in notice.ids().enumerate() {
                if !map.contains(id) {
                    continue;
                }
                match notice.outcome(i) {
                    Some(outcome) => {
                        if let Some(w) = map.remove(id) {
                            known.push((w, outcome, notice.ran));
                        }
                    }
                    None => fetch.push((id, notice.ran)),
                }
            }
        }
    }
    resolve_all(broker, table, known);
    if !fetch.is_empty() {
        let ids: Vec<TaskId> = fetch.iter().map(|&(id, _)| id).collect();
        let outcomes = broker.fetch_many(&ids)?;
        let mut found = Vec::new();
        {
            let mut map = table.lock();
            for ((id, ran), outcome) in fetch.into_iter().zip(outcomes) {
                if let Some(outcome) = outcome
                    && let Some(w) = map.remove(id)
                {
                    found.push((w, outcome, ran));
                }
            }
        }
        resolve_all(broker, table, found);
    }
    Ok(())
}

/// Fetches the outcomes of those of `ids` still waiting and delivers them.
fn fetch_and_settle(
    broker: &mut Broker,
    table: &Table,
    ids: &[TaskId],
    ran: Duration,
) -> Result<(), Error> {
    let waiting: Vec<TaskId> = {
        let map = table.lock();
        ids.iter().copied().filter(|&id| map.contains(id)).collect()
    };
    if waiting.is_empty() {
        return Ok(());
    }
    let outcomes = broker.fetch_many(&waiting)?;
    let mut found = Vec::new();
    {
        let mut map = table.lock();
        for (id, outcome) in waiting.into_iter().zip(outcomes) {
            if let Some(outcome) = outcome
                && let Some(w) = map.remove(id)
            {
                found.push((w, outcome, ran));
            }
        }
    }
    resolve_all(broker, table, found);
    Ok(())
}

/// Resolves tasks taken out of the table with their outcomes (see
/// [`resolve`]), handing runs of one destination over under one lock, and
/// wakes a shutdown waiting for the table to empty.
fn resolve_all(broker: &mut Broker, table: &Table, done: Vec<(Waiting, Outcome, Duration)>) {
    if done.is_empty() {
        return;
    }
    let mut run: Vec<(usize, Outcome, Duration)> = Vec::new();
    let mut run_dest: Option<Dest> = None;
    for (w, outcome, ran) in done {
        let Some((w, outcome)) = resolve(broker, table, w, outcome) else {
            continue;
        };
        if run_dest.as_ref().is_some_and(|d| !Arc::ptr_eq(d, &w.dest)) {
            deliver_run(run_dest.take(), &mut run);
        }
        run_dest.get_or_insert(w.dest);
        run.push((w.index, outcome, ran));
    }
    deliver_run(run_dest, &mut run);
    let map = table.lock();
    if map.is_empty() {
        table.empty.notify_all();
    }
}

fn deliver_run(dest: Option<Dest>, run: &mut Vec<(usize, Outcome, Duration)>) {
    if let Some(dest) = dest {
        let mut d = dest.lock().unwrap_or_else(|p| p.into_inner());
        for (index, outcome, ran) in run.drain(..) {
            d.put(index, outcome, ran);
        }
    }
}

/// A task taken out of the table with its outcome: enqueued again (under a
/// new id, waiting again) when it failed and has retries left, else handed
/// back to be delivered.
fn resolve(
    broker: &mut Broker,
    table: &Table,
    mut w: Waiting,
    outcome: Outcome,
) -> Option<(Waiting, Outcome)> {
    if let Some(retry) = w
        .retry
        .as_mut()
        .filter(|r| r.left > 0 && retryable(&outcome))
    {
        retry.left -= 1;
        let mut entry = broker.entry(&retry.task, vec![retry.input.clone()], None);
        retry.attempt += 1;
        entry.attempt = retry.attempt;
        let delay = retry.backoff;
        retry.backoff = (retry.backoff * 2).min(Duration::from_secs(60));
        let new_id = entry.ids().next().expect("one item");
        let first = retry.first;
        table.add(new_id, w);
        table
            .retried
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(first, new_id);
        let sent = if delay.is_zero() {
            broker.enqueue(&entry)
        } else {
            broker.enqueue_after(&entry, delay)
        };
        if let Err(e) = sent
            && let Some(w) = table.remove(new_id)
        {
            table
                .retried
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&first);
            return Some((w, Outcome::Error(e.to_task_error())));
        }
        return None;
    }
    if let Some(retry) = &w.retry
        && retry.attempt > 0
    {
        table
            .retried
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&retry.first);
    }
    Some((w, outcome))
}

/// Task errors are retried; `lost`, codec and cancellation are not.
fn retryable(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Error(e)
        if matches!(e.kind(), TaskErrorKind::Failed | TaskErrorKind::Panicked))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sink;

    impl Collect for Sink {
        fn put(&mut self, _index: usize, _outcome: Outcome, _ran: Duration) {}
    }

    fn waiting(index: usize) -> Waiting {
        Waiting {
            dest: Arc::new(Mutex::new(Sink)),
            index,
            retry: None,
        }
    }

    fn id(shard: u16, seq: u64) -> TaskId {
        TaskId {
            shard,
            client: 7,
            seq,
        }
    }

    #[test]
    fn waits_find_tasks_by_block_and_place() {
        let mut w = Waits::default();
        let block = keys::BLOCK;
        // A chunk of three, a single task in the next block, and a task
        // added before the first of its block (the slots shift).
        for seq in [5, 6, 7] {
            w.insert(id(0, seq), waiting(seq as usize));
        }
        w.insert(id(1, block), waiting(100));
        w.insert(id(0, 2), waiting(2));
        assert_eq!(w.len(), 5);
        assert!(w.contains(id(0, 6)) && w.contains(id(0, 2)));
        assert!(!w.contains(id(0, 4)), "a gap");
        assert!(!w.contains(id(0, 8)), "past the end");
        assert!(!w.contains(id(1, 6)), "another shard");
        assert!(!w.contains(id(0, block)), "same block number, other shard");
        let mut ids = w.ids();
        ids.sort();
        assert_eq!(ids, [id(0, 2), id(0, 5), id(0, 6), id(0, 7), id(1, block)]);
        assert_eq!(w.remove(id(0, 6)).map(|w| w.index), Some(6));
        assert!(w.remove(id(0, 6)).is_none(), "once");
        for seq in [2, 5, 7] {
            assert!(w.remove(id(0, seq)).is_some());
        }
        assert!(w.blocks.len() == 1 && w.len() == 1, "an emptied block goes");
        assert!(w.remove(id(1, block)).is_some());
        assert!(w.is_empty() && w.blocks.is_empty());
    }
}
