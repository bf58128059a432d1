//! The pool's sender thread: enqueues what `submit` and `map` hand it, many
//! entries per round trip.
//!
//! A submission puts its tasks in the waiting table first (so a notification
//! can never come before them), then hands its entry to the sender and
//! returns. The sender takes every entry waiting for it (up to
//! [`MAX_BATCH`]), encodes them, and enqueues those of one shard with one
//! script call (`ENQUEUE` takes many entries). A task cancelled (or a pool
//! shut down with `Shutdown::Cancel`) before its entry went out is never
//! sent. An entry too large for the broker is split in halves; a single
//! item that is too large, or a broker that does not answer within
//! [`ENQUEUE_PATIENCE`], ends its tasks with that error.
//!
//! The table counts entries handed over and entries settled (`pushed`,
//! `sent`), in order: a cancel that finds its task unknown to the broker
//! waits until every entry handed over before it was settled, so that it
//! never misses an entry still on its way.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::broker::{Broker, Encoded};
use super::entry::Entry;
use super::error::{Error, ErrorKind};
use super::outcome::Outcome;
use super::receiver::{Table, deliver};

/// How long a submission waits for a broker that does not answer (restarting,
/// failing over) before its tasks end with the error.
pub(crate) const ENQUEUE_PATIENCE: Duration = Duration::from_secs(15);

/// The most entries taken from the queue at once.
const MAX_BATCH: usize = 512;

/// The most entries, and bytes, in one script call.
const MAX_CALL_ENTRIES: usize = 256;
const MAX_CALL_BYTES: usize = 4 << 20;

/// An entry to enqueue; its tasks wait in the table already.
pub(crate) struct Job {
    pub(crate) entry: Entry,
    /// Held by the broker this long first (a countdown, sent at once by the
    /// submitting thread rather than by the sender thread).
    pub(crate) delay: Option<Duration>,
}

/// The sender thread's body: runs until the queue's senders are gone and the
/// queue is empty.
pub(crate) fn run(mut broker: Broker, table: &Arc<Table>, jobs: &Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter().take(MAX_BATCH - 1));
        let n = batch.len() as u64;
        send(&mut broker, table, batch);
        table.sent.fetch_add(n, Ordering::AcqRel);
    }
}

/// Enqueues `jobs`: those of one shard in as few script calls as the limits
/// allow; delayed ones one by one. Every task ends up enqueued, or resolved
/// with the error that kept it from the broker, or (cancelled meanwhile)
/// not sent at all.
pub(crate) fn send(broker: &mut Broker, table: &Table, jobs: Vec<Job>) {
    let mut todo: VecDeque<Job> = jobs.into();
    let mut ready: Vec<(Job, Encoded)> = Vec::new();
    while let Some(job) = todo.pop_front() {
        // Cancelled (or the pool shut down) before it went out: keep it.
        if !job.entry.ids().any(|id| table.contains(id)) {
            continue;
        }
        match broker.encode(&job.entry) {
            Ok(encoded) => ready.push((job, encoded)),
            Err(e) if e.kind() == ErrorKind::TooLarge && job.entry.items.len() > 1 => {
                let [front, back] = split(broker, table, job);
                todo.push_front(back);
                todo.push_front(front);
            }
            Err(e) => fail(table, &job, &e),
        }
    }
    let (delayed, now): (Vec<_>, Vec<_>) = ready
        .into_iter()
        .partition(|(job, _)| job.delay.is_some_and(|d| !d.is_zero()));
    for (job, _) in delayed {
        let delay = job.delay.unwrap_or_default();
        if let Err(e) = patiently(|| broker.enqueue_after(&job.entry, delay)) {
            fail(table, &job, &e);
        }
    }
    let mut by_shard: Vec<(u16, Vec<(Job, Encoded)>)> = Vec::new();
    for (job, encoded) in now {
        let shard = job.entry.shard;
        match by_shard.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, list)) => list.push((job, encoded)),
            None => by_shard.push((shard, vec![(job, encoded)])),
        }
    }
    for (shard, list) in by_shard {
        let mut rest = &list[..];
        while !rest.is_empty() {
            let mut take = 0;
            let mut bytes = 0;
            while take < rest.len()
                && take < MAX_CALL_ENTRIES
                && (take == 0 || bytes + rest[take].1.bytes.len() <= MAX_CALL_BYTES)
            {
                bytes += rest[take].1.bytes.len();
                take += 1;
            }
            let (call, later) = rest.split_at(take);
            let encoded: Vec<Encoded> = call.iter().map(|(_, e)| e.clone()).collect();
            if let Err(e) = patiently(|| broker.enqueue_encoded(shard, &encoded)) {
                for (job, _) in call {
                    fail(table, job, &e);
                }
            }
            rest = later;
        }
    }
}

/// Runs `f` until it succeeds, fails otherwise than by an unreachable
/// broker, or [`ENQUEUE_PATIENCE`] passed (each repeat is safe).
fn patiently<T>(mut f: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    let give_up = Instant::now() + ENQUEUE_PATIENCE;
    let mut tries = 0u32;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e)
                if Instant::now() < give_up
                    && matches!(e.kind(), ErrorKind::Connection | ErrorKind::Unreachable) =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis((25 << tries.min(5)).min(500)));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Splits a job in halves, each a new entry with new ids; the tasks waiting
/// under the old ids wait under the new ones.
fn split(broker: &Broker, table: &Table, job: Job) -> [Job; 2] {
    let Job { entry, delay } = job;
    let mut old = entry.ids().collect::<Vec<_>>().into_iter();
    let mut items = entry.items;
    let back = items.split_off(items.len() / 2);
    [items, back].map(|part| {
        let new = broker.entry(
            &entry.task,
            part.into_iter().map(|i| i.input).collect(),
            None,
        );
        for (id, old_id) in new.ids().zip(old.by_ref()) {
            table.rename(old_id, id);
        }
        Job { entry: new, delay }
    })
}

/// Ends the job's waiting tasks with `err`.
fn fail(table: &Table, job: &Job, err: &Error) {
    let task_err = err.to_task_error();
    for id in job.entry.ids() {
        if let Some(w) = table.remove(id) {
            deliver(
                &w.dest,
                w.index,
                Outcome::Error(task_err.clone()),
                Duration::ZERO,
            );
        }
    }
}
