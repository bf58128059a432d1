//! [`Scope`]: tasks that borrow from the caller's stack.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::context::{self, CancelToken};
use crate::handle::{self, TaskHandle};
use crate::panic::{self, InTask};

/// A scope in which tasks may borrow non-`'static` data. Created by
/// [`ThreadPool::scope`](crate::ThreadPool::scope), which returns only when
/// every task spawned in it has finished.
///
/// Tasks get a [`TaskHandle`]; a panic is caught into it as with any task. A
/// handle dropped unjoined discards its result. After the pool's
/// [`Shutdown::Cancel`](crate::Shutdown), scoped tasks end as cancelled
/// without running, like submitted ones. A running scoped task's token follows
/// its pool's shutdown; `cancel()` on its handle stops it only if it has not
/// started.
///
/// A scoped task may not outlive the data it borrows:
///
/// ```compile_fail,E0373
/// let pool = quadriga::ThreadPool::new(1).unwrap();
/// let escaped = pool.scope(|s| {
///     let local = vec![1, 2, 3];
///     s.spawn(|_| local.len()) // error: `local` does not live long enough
/// });
/// ```
pub struct Scope<'a, 'scope> {
    inner: &'a rayon_core::Scope<'scope>,
    cancelled: Arc<AtomicBool>,
}

impl<'a, 'scope> Scope<'a, 'scope> {
    pub(super) fn new(inner: &'a rayon_core::Scope<'scope>, cancelled: Arc<AtomicBool>) -> Self {
        Self { inner, cancelled }
    }

    /// Spawns `f` into the scope. `f` gets the scope, to spawn more tasks.
    ///
    /// ```
    /// let pool = quadriga::ThreadPool::new(2)?;
    /// let mut counts = [0_usize; 2];
    /// let data = [1, 2, 3, 4];
    /// pool.scope(|s| {
    ///     let (a, b) = counts.split_at_mut(1);
    ///     let h1 = s.spawn(|_| a[0] = data[..2].iter().sum());
    ///     let h2 = s.spawn(|_| b[0] = data[2..].iter().sum());
    ///     h1.join().unwrap();
    ///     h2.join().unwrap();
    /// });
    /// assert_eq!(counts, [3, 7]);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn spawn<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: for<'b> FnOnce(&Scope<'b, 'scope>) -> R + Send + 'scope,
        R: Send + 'scope,
    {
        let (handle, completer) = handle::pair(std::any::type_name::<F>());
        let cancelled = Arc::clone(&self.cancelled);
        self.inner.spawn(move |s| {
            if !completer.start() {
                return;
            }
            if cancelled.load(std::sync::atomic::Ordering::Relaxed) {
                completer.complete(Err(crate::TaskError::cancelled(
                    "the pool was shut down before the task started",
                )));
                return;
            }
            let token = CancelToken::new(None, Some(Arc::clone(&cancelled)));
            let scope = Scope::new(s, cancelled);
            let result = {
                let _ctx = context::Enter::new(token);
                let _in_task = InTask::enter();
                panic::catch(|| f(&scope))
            };
            completer.complete(result);
        });
        handle
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").finish_non_exhaustive()
    }
}
