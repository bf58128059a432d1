//! [`init`]: the hook that turns a re-executed binary into a worker process.
//!
//! It sits above the process backend and calls down into its bootstrap
//! (`process::worker::bootstrap`); nothing in the process backend calls back
//! into it.

use crate::process::worker::{self, WORKER_ENV};

/// Prepares Quadriga in this process. Call it first thing in `main`.
///
/// In an ordinary process it only installs the panic hook that records where
/// tasks panic; it is idempotent and cheap. A process pool re-executes the
/// current binary with a marker in the environment to start its workers; in such
/// a process `init` will turn it into a worker and never return. Calling it in
/// every `main` keeps a binary ready for the process pool.
///
/// With the `cluster` feature, a process started with
/// `QUADRIGA_CLUSTER_WORKER=redis://...` in its environment becomes a
/// cluster worker here (see `quadriga::cluster`) and never returns.
///
/// ```
/// quadriga::init();
/// quadriga::init(); // idempotent
/// assert!(!quadriga::is_worker());
/// ```
pub fn init() {
    worker::bootstrap();
    // With `QUADRIGA_CLUSTER_WORKER=<url>`, serve that broker's queue instead.
    #[cfg(feature = "cluster")]
    crate::cluster::divert_if_worker();
}

/// Whether this process was started as a Quadriga worker (and `init` has not
/// yet turned it into one).
///
/// ```
/// assert!(!quadriga::is_worker());
/// ```
pub fn is_worker() -> bool {
    std::env::var_os(WORKER_ENV).is_some()
}
