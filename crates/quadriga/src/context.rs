//! The running task's context: its cooperative cancellation token.
//!
//! A thread task cannot be killed; it can be asked to stop. The pool publishes the
//! running task's token in a thread-local for the duration of the task body, so
//! any code in the task (however deep) can ask [`is_cancelled`].

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Something that can say whether it was cancelled.
pub(crate) trait Cancellable: Send + Sync {
    fn is_cancelled(&self) -> bool;
}

impl Cancellable for AtomicBool {
    fn is_cancelled(&self) -> bool {
        self.load(Ordering::Relaxed)
    }
}

/// A cooperative cancellation token: a long task checks it and stops early.
///
/// Inside a task, [`cancel_token`] returns the task's own token. It becomes
/// cancelled when the task's handle is cancelled, when the `map` it belongs to is
/// dropped, or when its pool shuts down with [`Shutdown::Cancel`](crate::Shutdown).
///
/// ```
/// use std::time::Duration;
/// use quadriga::ThreadPool;
///
/// let pool = ThreadPool::new(1)?;
/// let handle = pool.spawn(|| {
///     let token = quadriga::cancel_token();
///     let mut rounds = 0_u64;
///     while !token.is_cancelled() {
///         rounds += 1;
///         std::thread::sleep(Duration::from_millis(1));
///     }
///     rounds
/// });
/// std::thread::sleep(Duration::from_millis(20));
/// assert!(handle.cancel());
/// assert!(handle.join().unwrap_err().is_cancelled());
/// # Ok::<(), quadriga::BuildError>(())
/// ```
#[derive(Clone, Default)]
pub struct CancelToken {
    task: Option<Arc<dyn Cancellable>>,
    scope: Option<Arc<AtomicBool>>,
}

impl CancelToken {
    pub(crate) fn new(task: Option<Arc<dyn Cancellable>>, scope: Option<Arc<AtomicBool>>) -> Self {
        Self { task, scope }
    }

    /// Whether the task was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.task.as_ref().is_some_and(|t| t.is_cancelled())
            || self.scope.as_ref().is_some_and(|s| s.is_cancelled())
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<CancelToken>> = const { RefCell::new(None) };
}

/// Publishes `token` as the current task's for as long as the guard lives.
pub(crate) struct Enter(Option<CancelToken>);

impl Enter {
    pub(crate) fn new(token: CancelToken) -> Self {
        Enter(CURRENT.with(|c| c.borrow_mut().replace(token)))
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// The cancellation token of the task running on this thread; outside a task, a
/// token that is never cancelled.
///
/// ```
/// assert!(!quadriga::cancel_token().is_cancelled());
/// ```
pub fn cancel_token() -> CancelToken {
    CURRENT.with(|c| c.borrow().clone()).unwrap_or_default()
}

/// Whether the task running on this thread was asked to stop. Always `false`
/// outside a task. Long-running thread tasks should check it now and then.
///
/// ```
/// use quadriga::ThreadPool;
///
/// let pool = ThreadPool::new(1)?;
/// let h = pool.spawn(|| quadriga::is_cancelled());
/// assert_eq!(h.join().unwrap(), false);
/// # Ok::<(), quadriga::BuildError>(())
/// ```
pub fn is_cancelled() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(CancelToken::is_cancelled))
}
