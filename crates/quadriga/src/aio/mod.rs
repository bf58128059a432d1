//! Async on tokio, structured: [`gather`], [`try_gather`], [`TaskGroup`],
//! [`timeout`] and [`bounded`] concurrency, glued to the thread and process
//! pools. Behind the `async` feature.
//!
//! ```
//! use std::time::Duration;
//! use quadriga::{TaskError, ThreadPool};
//! use quadriga::aio::{Limit, bounded, timeout};
//!
//! async fn fetch(i: usize) -> Result<String, TaskError> {
//!     tokio::time::sleep(Duration::from_millis(5)).await; // the network
//!     Ok("word ".repeat(i))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = ThreadPool::new(2)?;
//! // Ten fetches, four at a time, each with a time limit that cancels.
//! let pages = bounded((0..10).map(|i| timeout(Duration::from_secs(5), fetch(i))), Limit::Fixed(4))
//!     .try_gather()
//!     .await?;
//! // CPU-heavy work goes to the pool; awaiting it does not block the runtime.
//! let words = pool.spawn(move || pages.iter().map(|p| p.split_whitespace().count()).sum::<usize>()).await?;
//! assert_eq!(words, 45);
//! # Ok(())
//! # }
//! ```
//!
//! # The convention
//!
//! Every future handed to this module returns `Result<T, TaskError>`, the
//! crate's one error type, as a [`TaskHandle`](crate::TaskHandle) does; so pool
//! handles, [`timeout`]s and your own async functions mix freely. A future that
//! cannot fail returns `Ok::<_, TaskError>(value)`; one with its own error maps
//! it with [`TaskError::failed`]. A panic in a future run here becomes a
//! `TaskError` of kind `Panicked` (message and location kept, nothing printed);
//! a future stopped by its group ends as `Cancelled`; one past its
//! [`timeout`] as `TimedOut`. Errors of [`gather`] and [`bounded`] name the
//! input's index ([`TaskError::item`]).
//!
//! Futures run as tokio tasks (so they must be `Send + 'static`), on the
//! runtime of the caller: these functions panic outside a tokio runtime.
//! [`TaskError`] converts from tokio's `JoinError` (`?` on a
//! `JoinHandle`'s result).
//!
//! # Cancellation is dropping
//!
//! An async task is cancelled by dropping its future; whatever the future
//! owns is dropped with it. For a pool task awaited from async code, what
//! happens depends on what the future holds:
//!
//! | the future holds                                   | dropped or cancelled ⇒ the pool task is |
//! |----------------------------------------------------|------------------------------------------|
//! | a plain [`TaskHandle`](crate::TaskHandle)          | **detached**: it runs on, its result is discarded |
//! | [`handle.abort_on_drop()`](crate::TaskHandle::abort_on_drop), or the handle given to [`TaskGroup::adopt`] | **cancelled**: a pending task never runs; a running thread task sees its [`CancelToken`](crate::CancelToken) (threads cannot be killed); a running **process task's worker is killed** (its whole process group, SIGKILL) and replaced |
//!
//! A future is dropped, so cancelled, when: a [`TaskGroup`] is cancelled (by
//! [`cancel`](TaskGroup::cancel) or by a member's failure) or dropped; a
//! [`try_gather`] or [`Bounded::try_gather`] meets its first error; a
//! [`timeout`] expires; or a [`gather`], [`bounded`] or `tokio::select!` branch
//! holding it is dropped. Structured code therefore awaits pool tasks through
//! `abort_on_drop()` or `adopt`, so that nothing outlives the code that
//! started it:
//!
//! ```
//! use std::time::Duration;
//! use quadriga::ProcessPool;
//! use quadriga::aio::timeout;
//!
//! #[quadriga::task]
//! fn crunch(n: u64) -> u64 {
//!     std::thread::sleep(Duration::from_secs(n)); // stuck
//!     n
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), quadriga::BuildError> {
//! let pool = ProcessPool::new(1)?;
//! let stuck = pool.submit(crunch, 3600).abort_on_drop();
//! let err = timeout(Duration::from_millis(200), stuck).await.unwrap_err();
//! assert!(err.is_timed_out()); // and the worker that ran `crunch` was killed
//! # Ok(())
//! # }
//! ```
//!
//! # The bridge to the pools
//!
//! [`TaskHandle`](crate::TaskHandle) is a `Future` on any executor: awaiting it
//! parks the async task, never the runtime's thread, so blocking or CPU-heavy
//! work belongs in a pool and is awaited from async code: `pool.spawn(|| ...)
//! .await` on a [`ThreadPool`](crate::ThreadPool), `pool.submit(task, input)
//! .await` on either pool. Several pool tasks are awaited together with
//! [`gather`]/[`try_gather`] over `handle.abort_on_drop()`, or with
//! [`TaskGroup::adopt`].

mod bounded;
mod gather;
mod group;
mod member;
mod timeout;

pub use bounded::{Bounded, FromIter, Limit, bounded, bounded_stream};
pub use gather::{gather, try_gather};
pub use group::TaskGroup;
pub use timeout::timeout;

use crate::error::TaskError;

/// A tokio task's failure as a [`TaskError`]: a panic becomes `Panicked` with
/// its message (the location is not known here), an abort becomes
/// `Cancelled`.
///
/// ```
/// use quadriga::TaskError;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let joined = tokio::spawn(async { panic!("in a plain tokio task") }).await;
/// let err = TaskError::from(joined.unwrap_err());
/// assert!(err.is_panic());
/// assert_eq!(err.message(), "in a plain tokio task");
///
/// let sleeper = tokio::spawn(tokio::time::sleep(std::time::Duration::from_secs(3600)));
/// sleeper.abort();
/// assert!(TaskError::from(sleeper.await.unwrap_err()).is_cancelled());
/// # }
/// ```
impl From<tokio::task::JoinError> for TaskError {
    fn from(err: tokio::task::JoinError) -> Self {
        match err.try_into_panic() {
            Ok(payload) => TaskError::panicked(crate::panic::payload_message(payload), None, None),
            Err(err) if err.is_cancelled() => TaskError::cancelled("the tokio task was aborted"),
            Err(err) => TaskError::cancelled(&format!("the tokio task failed: {err}")),
        }
    }
}
