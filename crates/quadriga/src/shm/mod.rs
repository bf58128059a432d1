//! The shared-memory foundation under [`ipc`](crate::ipc) and
//! [`sync`](crate::sync), which both build on it and never on each other.
//!
//! * `region`: a sealed 0600 memfd, mapped shared, with a self-describing
//!   header that an attaching process checks (fuzzed) before any offset is
//!   used;
//! * `robust`: the process-shared, robust, error-checking mutex (a dead holder
//!   is reported to the next taker, never a deadlock)  ⚠ loom model;
//! * `futex`: waiting on a word in shared memory, and the `Doorbell`  ⚠ loom
//!   model;
//! * `guard`: [`LockGuard`], the guard of one robust mutex in a region;
//! * `result`: [`LockResult`], [`OwnerDied`], [`TryLockError`], what taking a
//!   robust lock returns, and the helpers every taker shares;
//! * `error`: [`Error`] and [`ErrorKind`], the error of every IPC and
//!   cross-process synchronisation operation;
//! * `passing`: descriptors over a Unix socket (`SCM_RIGHTS`).
//!
//! The public types here are re-exported where users see them:
//! `quadriga::ipc::{Error, ErrorKind}` and
//! `quadriga::sync::{LockGuard, LockResult, OwnerDied, TryLockError, TryLockResult}`.

mod error;
pub(crate) mod futex;
mod guard;
pub(crate) mod passing;
mod region;
pub(crate) mod result;
pub(crate) mod robust;

pub use error::{Error, ErrorKind};
pub use guard::LockGuard;
#[cfg(any(test, feature = "fuzzing"))]
pub use region::fuzz_header;
pub(crate) use region::{HEADER, Kind, PARAMS, Region, fingerprint};
pub use result::{LockResult, OwnerDied, TryLockError, TryLockResult};
