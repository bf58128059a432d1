//! [`gather`] and [`try_gather`]: run many futures at once, collect in order.

use std::future::Future;

use super::group::TaskGroup;
use crate::error::TaskError;

/// Runs every future concurrently (each as a tokio task) and returns every
/// outcome **in input order**, errors kept per item: Python's
/// `asyncio.gather(*aws, return_exceptions=True)`, except that a panic is
/// contained as a `Panicked` [`TaskError`] (its `item()` is the input's index)
/// instead of tearing down the caller.
///
/// Nothing starts until the returned future is first polled. Dropping it
/// before it ends cancels every future still running (see the
/// [module docs](super) for what that does to pool tasks).
///
/// # Panics
///
/// When polled outside a tokio runtime.
///
/// ```
/// use std::time::Duration;
/// use quadriga::TaskError;
/// use quadriga::aio::gather;
///
/// async fn page(i: u64) -> Result<String, TaskError> {
///     tokio::time::sleep(Duration::from_millis(10 * (3 - i))).await;
///     if i == 1 {
///         return Err(TaskError::failed("404"));
///     }
///     Ok(format!("page {i}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let results = gather((0..3).map(page)).await;
/// assert_eq!(results[0].as_ref().unwrap(), "page 0");
/// assert_eq!(results[1].as_ref().unwrap_err().item(), Some(1));
/// assert_eq!(results[2].as_ref().unwrap(), "page 2");
/// # }
/// ```
pub async fn gather<I, F, T>(futures: I) -> Vec<Result<T, TaskError>>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, TaskError>> + Send + 'static,
    T: Send + 'static,
{
    let mut group = TaskGroup::new().cancel_on_failure(false);
    for future in futures {
        group.spawn(future);
    }
    group.join().await
}

/// Runs every future concurrently and returns their outputs in input order,
/// or the **first error**: that error cancels every other future at once
/// (each is dropped, as by [`TaskGroup::cancel`](super::TaskGroup::cancel)),
/// and `try_gather` returns once they are all gone, so nothing it started is
/// left running.
///
/// Unlike `asyncio.gather`, which leaves the siblings of a failed awaitable
/// running.
///
/// # Panics
///
/// When polled outside a tokio runtime.
///
/// ```
/// use std::time::Duration;
/// use quadriga::TaskError;
/// use quadriga::aio::try_gather;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ok = try_gather((1..=3_u32).map(|i| async move { Ok(i * i) })).await;
/// assert_eq!(ok.unwrap(), [1, 4, 9]);
///
/// let rows = (0..2).map(|i| async move {
///     if i == 1 {
///         return Err(TaskError::failed("bad row"));
///     }
///     tokio::time::sleep(Duration::from_secs(3600)).await;
///     Ok(i)
/// });
/// let err = try_gather(rows).await.unwrap_err(); // at once, not in an hour
/// assert_eq!(err.message(), "bad row");
/// # }
/// ```
pub async fn try_gather<I, F, T>(futures: I) -> Result<Vec<T>, TaskError>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, TaskError>> + Send + 'static,
    T: Send + 'static,
{
    let mut group = TaskGroup::new();
    for future in futures {
        group.spawn(future);
    }
    group.try_join().await
}
