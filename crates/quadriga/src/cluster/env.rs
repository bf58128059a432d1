//! The worker diversion by environment: `QUADRIGA_CLUSTER_WORKER=<url>`
//! makes [`crate::init`] serve the queue instead of running `main`, so any
//! program that calls `init` first is a cluster worker with no code change.
//!
//! | variable | what | default |
//! |---|---|---|
//! | `QUADRIGA_CLUSTER_WORKER` | the broker URL | (not a worker) |
//! | `QUADRIGA_CLUSTER_QUEUE` | the queue | `default` |
//! | `QUADRIGA_CLUSTER_PREFIX` | the key prefix | `quadriga` |
//! | `QUADRIGA_CLUSTER_SHARDS` | the queue's shards (as its clients have) | 1 |
//! | `QUADRIGA_CLUSTER_CONCURRENCY` | entries run at once | one per core |
//! | `QUADRIGA_CLUSTER_LEASE_MS` | the lease, in ms | 10,000 |
//! | `QUADRIGA_CLUSTER_RETRIES` | retries on worker loss | 3 |
//! | `QUADRIGA_CLUSTER_ISOLATION` | `threads` or `processes` | `threads` |
//! | `QUADRIGA_CLUSTER_TIMEOUT_MS` | a time limit per entry, in ms (processes only) | none |

use std::time::Duration;

use super::isolation::Isolation;
use super::worker::Worker;

/// The variable that makes a process a cluster worker.
pub const WORKER_URL_ENV: &str = "QUADRIGA_CLUSTER_WORKER";

/// If [`WORKER_URL_ENV`] is set, serves that broker's queue until the
/// process is killed, then exits (status 0, or 1 if the broker could not be
/// reached at start); otherwise returns.
pub(crate) fn divert_if_worker() {
    let Some(url) = std::env::var(WORKER_URL_ENV).ok().filter(|u| !u.is_empty()) else {
        return;
    };
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let number = |name: &str| var(name).and_then(|v| v.parse::<u64>().ok());
    let mut builder = Worker::builder(url);
    if let Some(queue) = var("QUADRIGA_CLUSTER_QUEUE") {
        builder = builder.queue(queue);
    }
    if let Some(prefix) = var("QUADRIGA_CLUSTER_PREFIX") {
        builder = builder.prefix(prefix);
    }
    if let Some(n) = number("QUADRIGA_CLUSTER_SHARDS") {
        builder = builder.shards(n.min(u64::from(u16::MAX)) as u16);
    }
    if let Some(n) = number("QUADRIGA_CLUSTER_CONCURRENCY") {
        builder = builder.concurrency(n as usize);
    }
    if let Some(ms) = number("QUADRIGA_CLUSTER_LEASE_MS") {
        builder = builder.lease(Duration::from_millis(ms.max(1)));
    }
    if let Some(n) = number("QUADRIGA_CLUSTER_RETRIES") {
        builder = builder.retries_on_worker_loss(n.min(u64::from(u32::MAX)) as u32);
    }
    match var("QUADRIGA_CLUSTER_ISOLATION").as_deref() {
        Some("processes") => builder = builder.isolation(Isolation::Processes),
        Some("threads") | None => {}
        Some(other) => {
            eprintln!(
                "quadriga cluster worker: QUADRIGA_CLUSTER_ISOLATION is `threads` or `processes`, not `{other}`"
            );
            std::process::exit(1);
        }
    }
    if let Some(ms) = number("QUADRIGA_CLUSTER_TIMEOUT_MS") {
        builder = builder.timeout(Duration::from_millis(ms.max(1)));
    }
    let code = match builder.build().and_then(Worker::run) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("quadriga cluster worker: {e}");
            1
        }
    };
    std::process::exit(code);
}
