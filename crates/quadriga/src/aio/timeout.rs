//! [`timeout`]: a time limit that cancels.

use std::future::Future;
use std::time::Duration;

use crate::error::TaskError;

/// Runs `future` for at most `limit`. If it has not finished by then it is
/// **dropped** (cancelled: whatever it owned is released, and a process task it
/// awaited through [`abort_on_drop`](crate::TaskHandle::abort_on_drop) has its
/// worker killed) and the result is a [`TaskError`] of kind `TimedOut` whose
/// [`timeout()`](TaskError::timeout) is `limit`.
///
/// Compare [`TaskHandle::wait_timeout`](crate::TaskHandle::wait_timeout), which
/// only stops *waiting*.
///
/// # Panics
///
/// When polled outside a tokio runtime with the time driver enabled.
///
/// ```
/// use std::time::Duration;
/// use quadriga::TaskError;
/// use quadriga::aio::timeout;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let quick = timeout(Duration::from_secs(5), async { Ok::<_, TaskError>(7) }).await;
/// assert_eq!(quick.unwrap(), 7);
///
/// let slow = async {
///     tokio::time::sleep(Duration::from_secs(3600)).await;
///     Ok(0)
/// };
/// let err = timeout(Duration::from_millis(20), slow).await.unwrap_err();
/// assert!(err.is_timed_out());
/// assert_eq!(err.timeout(), Some(Duration::from_millis(20)));
/// # }
/// ```
pub async fn timeout<F, T>(limit: Duration, future: F) -> Result<T, TaskError>
where
    F: Future<Output = Result<T, TaskError>>,
{
    let limited = tokio::time::timeout(limit, future);
    match limited.await {
        Ok(result) => result,
        // `limited`, and the future in it, were dropped when `.await` ended.
        Err(_elapsed) => Err(TaskError::deadline_passed(limit)),
    }
}
