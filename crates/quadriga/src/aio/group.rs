//! [`TaskGroup`]: structured concurrency on tokio.

use std::fmt;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::member::{Member, Shared, tag};
use crate::error::TaskError;
use crate::handle::TaskHandle;

/// A set of tokio tasks that live and die together.
///
/// * [`spawn`](Self::spawn) a future into the group; it starts at once on the
///   current tokio runtime and gets the next index (0, 1, 2, ...).
/// * The **first failure cancels the siblings** (an `Err` or a panic; a panic
///   becomes a [`TaskError`] of kind `Panicked`). Turn this off with
///   [`cancel_on_failure(false)`](Self::cancel_on_failure).
/// * [`join`](Self::join) waits for every task and returns **all outcomes** in
///   spawn order: outputs, the failure, and `Cancelled` for the siblings it
///   stopped. [`try_join`](Self::try_join) returns the outputs or the first
///   failure; [`join_next`](Self::join_next) yields outcomes as they come.
/// * **No task outlives the group**: dropping it aborts every task still
///   running (their futures are dropped, which kills the worker of a process
///   task awaited through [`adopt`](Self::adopt) or
///   [`abort_on_drop`](crate::TaskHandle::abort_on_drop)), unless you
///   [`detach_all`](Self::detach_all).
///
/// Every task's future returns `Result<T, TaskError>` (the convention of
/// [`aio`](super)).
///
/// ```
/// use quadriga::TaskError;
/// use quadriga::aio::TaskGroup;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut group = TaskGroup::new();
/// for i in 0..3_u32 {
///     group.spawn(async move { Ok::<_, TaskError>(i * 10) });
/// }
/// let outcomes = group.join().await;
/// let values: Vec<u32> = outcomes.into_iter().map(Result::unwrap).collect();
/// assert_eq!(values, [0, 10, 20]);
/// # }
/// ```
///
/// The first failure stops the others:
///
/// ```
/// use std::time::Duration;
/// use quadriga::TaskError;
/// use quadriga::aio::TaskGroup;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut group = TaskGroup::new();
/// group.spawn(async {
///     tokio::time::sleep(Duration::from_secs(3600)).await;
///     Ok(1)
/// });
/// group.spawn(async { Err(TaskError::failed("no such page")) });
/// let outcomes = group.join().await; // at once, not in an hour
/// assert!(outcomes[0].as_ref().unwrap_err().is_cancelled());
/// assert!(outcomes[1].as_ref().unwrap_err().is_failed());
/// # }
/// ```
pub struct TaskGroup<T> {
    /// The members' `JoinSet` and the cancellation state. Members hold a
    /// `Weak`: dropping the group drops the set, which aborts them.
    shared: Arc<Shared<T>>,
    /// Tasks spawned so far: the next index.
    spawned: usize,
    /// One bit per index: its outcome was handed out.
    reported: Vec<u64>,
    /// The lowest index that may not have been reported.
    unreported_from: usize,
    /// Tasks that ended without reporting (aborted), to be matched with the
    /// unreported indices once the set is empty.
    orphans: Vec<TaskError>,
}

impl<T: Send + 'static> TaskGroup<T> {
    /// An empty group whose first failure cancels the rest.
    ///
    /// ```
    /// let group = quadriga::aio::TaskGroup::<u8>::new();
    /// assert!(group.is_empty());
    /// ```
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared::new(true)),
            spawned: 0,
            reported: Vec::new(),
            unreported_from: 0,
            orphans: Vec::new(),
        }
    }

    /// Whether a failing task cancels its siblings (the default, `true`). With
    /// `false` every task runs to its own end, as in
    /// [`gather`](super::gather).
    ///
    /// ```
    /// use quadriga::TaskError;
    /// use quadriga::aio::TaskGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = TaskGroup::new().cancel_on_failure(false);
    /// group.spawn(async { Err(TaskError::failed("one bad page")) });
    /// group.spawn(async {
    ///     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    ///     Ok(2)
    /// });
    /// let outcomes = group.join().await;
    /// assert!(outcomes[0].is_err());
    /// assert_eq!(outcomes[1].as_ref().unwrap(), &2);
    /// # }
    /// ```
    pub fn cancel_on_failure(self, yes: bool) -> Self {
        self.shared.set_fail_fast(yes);
        self
    }

    /// Spawns `future` on the current tokio runtime as a member of the group
    /// and returns its index (spawn order, from 0). A group already cancelled
    /// still accepts it, and it ends at once as `Cancelled` without running.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// ```
    /// use quadriga::TaskError;
    /// use quadriga::aio::TaskGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = TaskGroup::new();
    /// assert_eq!(group.spawn(async { Ok::<_, TaskError>("a") }), 0);
    /// assert_eq!(group.spawn(async { Ok("b") }), 1);
    /// assert_eq!(group.len(), 2);
    /// # let _ = group.join().await;
    /// # }
    /// ```
    pub fn spawn<F>(&mut self, future: F) -> usize
    where
        F: Future<Output = Result<T, TaskError>> + Send + 'static,
    {
        let index = self.spawned;
        self.spawned += 1;
        if index / 64 >= self.reported.len() {
            self.reported.push(0);
        }
        let member = Member::new(future, index, Arc::downgrade(&self.shared));
        let mut set = self.shared.set.lock();
        let task = set.spawn(member);
        // Under the lock that `cancel` aborts under: see `member.rs`.
        if self.shared.is_cancelled() {
            task.abort();
        }
        index
    }

    /// Adopts a pool task (a [`ThreadPool`](crate::ThreadPool) or
    /// [`ProcessPool`](crate::ProcessPool) handle) as a member: the group awaits
    /// it, and if the group is cancelled or dropped first, the task is
    /// cancelled (a process task's worker is killed). Returns its index.
    ///
    /// This is `spawn(handle.abort_on_drop())`. Spawning a future that awaits a
    /// plain [`TaskHandle`] would only *detach* the pool task on cancellation.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// ```
    /// use quadriga::ThreadPool;
    /// use quadriga::aio::TaskGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = ThreadPool::new(2)?;
    /// let mut group = TaskGroup::new();
    /// group.adopt(pool.spawn(|| (1..=10).sum::<u64>()));
    /// group.adopt(pool.spawn(|| (1..=100).sum::<u64>()));
    /// assert_eq!(group.try_join().await?, [55, 5050]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn adopt(&mut self, handle: TaskHandle<T>) -> usize {
        self.spawn(handle.abort_on_drop())
    }

    /// Waits for the next task to end; returns its index and outcome, or
    /// `None` when no task is left.
    ///
    /// ```
    /// use quadriga::TaskError;
    /// use quadriga::aio::TaskGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = TaskGroup::new();
    /// group.spawn(async { Ok::<_, TaskError>('x') });
    /// assert_eq!(group.join_next().await.map(|(i, r)| (i, r.unwrap())), Some((0, 'x')));
    /// assert!(group.join_next().await.is_none());
    /// # }
    /// ```
    pub async fn join_next(&mut self) -> Option<(usize, Result<T, TaskError>)> {
        poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// [`join_next`](Self::join_next) as a poll, for hand-written futures.
    pub(crate) fn poll_join_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(usize, Result<T, TaskError>)>> {
        loop {
            let next = self.shared.set.lock().poll_join_next(cx);
            match next {
                Poll::Ready(Some(Ok((index, result)))) => {
                    self.mark(index);
                    return Poll::Ready(Some((index, result)));
                }
                Poll::Ready(Some(Err(e))) => self.orphans.push(if e.is_cancelled() {
                    self.shared.cancelled_error()
                } else {
                    TaskError::from(e)
                }),
                Poll::Ready(None) => {
                    // Every task has ended: each one that did not report is
                    // one of the orphans (which one is unknowable; they are
                    // cancellations, all alike, or a rare panic in a drop).
                    let Some(err) = self.orphans.pop() else {
                        return Poll::Ready(None);
                    };
                    let index = self.next_unreported();
                    self.mark(index);
                    return Poll::Ready(Some((index, tag(Err(err), index))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Waits for every task and returns their outcomes in spawn order (those
    /// not already returned by [`join_next`](Self::join_next)).
    ///
    /// ```
    /// use quadriga::TaskError;
    /// use quadriga::aio::TaskGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = TaskGroup::new().cancel_on_failure(false);
    /// group.spawn(async { Ok(1) });
    /// group.spawn(async {
    ///     if true {
    ///         panic!("boom");
    ///     }
    ///     Ok(2)
    /// });
    /// let outcomes = group.join().await;
    /// assert_eq!(outcomes[0].as_ref().unwrap(), &1);
    /// let err = outcomes[1].as_ref().unwrap_err();
    /// assert!(err.is_panic());
    /// assert_eq!(err.message(), "boom");
    /// # }
    /// ```
    pub async fn join(mut self) -> Vec<Result<T, TaskError>> {
        let complete = self.len() == self.spawned;
        let slots = self.collect().await;
        if complete {
            // Every slot is filled: converted in place, without a second buffer.
            slots
                .into_iter()
                .map(|slot| slot.expect("every task reports exactly once"))
                .collect()
        } else {
            slots.into_iter().flatten().collect()
        }
    }

    /// Waits for every task; returns their outputs in spawn order, or the
    /// group's first failure (the one that cancelled the others).
    ///
    /// ```
    /// use quadriga::TaskError;
    /// use quadriga::aio::TaskGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = TaskGroup::new();
    /// group.spawn(async { Ok(1) });
    /// group.spawn(async { Err(TaskError::failed("bad input")) });
    /// let err = group.try_join().await.unwrap_err();
    /// assert_eq!(err.message(), "bad input");
    /// # }
    /// ```
    pub async fn try_join(mut self) -> Result<Vec<T>, TaskError> {
        let mut slots = self.collect().await;
        if let Some(slot) = self.shared.first_failure().and_then(|i| slots.get_mut(i))
            && let Some(Err(_)) = slot
            && let Some(Err(e)) = slot.take()
        {
            return Err(e);
        }
        slots.into_iter().flatten().collect()
    }

    /// Lets every task run on by itself, unsupervised: the group no longer
    /// cancels them, and their outcomes are discarded.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use quadriga::aio::TaskGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let done = Arc::new(AtomicBool::new(false));
    /// let mut group = TaskGroup::new();
    /// let flag = Arc::clone(&done);
    /// group.spawn(async move {
    ///     flag.store(true, Ordering::SeqCst);
    ///     Ok(())
    /// });
    /// group.detach_all();
    /// tokio::task::yield_now().await;
    /// assert!(done.load(Ordering::SeqCst));
    /// # }
    /// ```
    pub fn detach_all(self) {
        self.shared.set.lock().detach_all();
    }

    /// Drains the set into one slot per index; `None` for the indices
    /// already returned by `join_next`. Outcomes arrive close to spawn order,
    /// so placing each one at its index writes almost sequentially.
    async fn collect(&mut self) -> Vec<Option<Result<T, TaskError>>> {
        let mut slots: Vec<Option<Result<T, TaskError>>> = Vec::new();
        slots.resize_with(self.spawned, || None);
        poll_fn(|cx| self.poll_drain(cx, &mut slots)).await;
        if !self.orphans.is_empty() {
            // Each index that never reported is one of the orphans, as in
            // `poll_join_next`.
            for (index, slot) in slots.iter_mut().enumerate() {
                if slot.is_none() && !self.is_marked(index) {
                    let Some(err) = self.orphans.pop() else { break };
                    self.mark(index);
                    *slot = Some(tag(Err(err), index));
                }
            }
        }
        slots
    }

    /// Moves every finished outcome into its slot, under one lock of the set
    /// per wake-up (not one per outcome); ready when the set is empty.
    fn poll_drain(
        &mut self,
        cx: &mut Context<'_>,
        slots: &mut [Option<Result<T, TaskError>>],
    ) -> Poll<()> {
        let mut set = self.shared.set.lock();
        loop {
            match set.poll_join_next(cx) {
                Poll::Ready(Some(Ok((index, result)))) => slots[index] = Some(result),
                Poll::Ready(Some(Err(e))) => self.orphans.push(if e.is_cancelled() {
                    self.shared.cancelled_error()
                } else {
                    TaskError::from(e)
                }),
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_marked(&self, index: usize) -> bool {
        self.reported[index / 64] & (1 << (index % 64)) != 0
    }

    fn mark(&mut self, index: usize) {
        self.reported[index / 64] |= 1 << (index % 64);
    }

    fn next_unreported(&mut self) -> usize {
        while self.reported[self.unreported_from / 64] & (1 << (self.unreported_from % 64)) != 0 {
            self.unreported_from += 1;
        }
        self.unreported_from
    }
}

impl<T: 'static> TaskGroup<T> {
    /// How many tasks have not been joined yet (running or finished).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = quadriga::aio::TaskGroup::new();
    /// group.spawn(async { Ok::<_, quadriga::TaskError>(()) });
    /// assert_eq!(group.len(), 1);
    /// group.join_next().await;
    /// assert_eq!(group.len(), 0);
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.shared.set.lock().len() + self.orphans.len()
    }

    /// Whether every task has been joined (or none was spawned).
    ///
    /// ```
    /// assert!(quadriga::aio::TaskGroup::<()>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cancels every task (tokio's abort): a waiting task's future is dropped
    /// at once, a running one's as soon as its current poll returns, and one
    /// not yet started never runs; each ends as `Cancelled`. Tasks spawned
    /// later end so without running. [`join`](Self::join) then returns promptly
    /// with every outcome. Dropping the group aborts its tasks the same way,
    /// without waiting for them.
    ///
    /// ```
    /// use std::time::Duration;
    /// use quadriga::aio::TaskGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = TaskGroup::<()>::new();
    /// group.spawn(async {
    ///     tokio::time::sleep(Duration::from_secs(3600)).await;
    ///     Ok(())
    /// });
    /// group.cancel();
    /// assert!(group.is_cancelled());
    /// let outcomes = group.join().await;
    /// assert!(outcomes[0].as_ref().unwrap_err().is_cancelled());
    /// # }
    /// ```
    pub fn cancel(&self) {
        self.shared.cancel();
    }

    /// Whether the group was cancelled, by [`cancel`](Self::cancel) or by a
    /// failure.
    ///
    /// ```
    /// let group = quadriga::aio::TaskGroup::<()>::new();
    /// assert!(!group.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.shared.is_cancelled()
    }
}

impl<T: Send + 'static> Default for TaskGroup<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: 'static> fmt::Debug for TaskGroup<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("spawned", &self.spawned)
            .field("running", &self.shared.set.lock().len())
            .field("cancelled", &self.shared.is_cancelled())
            .finish_non_exhaustive()
    }
}
