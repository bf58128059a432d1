//! [`TaskHandle`]: the caller's side of a submitted task.
//!
//! # The state machine
//!
//! Every task has one `Shared` cell, owned jointly by the handle and by the
//! backend's `Completer`. Its `state` moves only along these edges:
//!
//! ```text
//!   PENDING ──start()──▶ RUNNING ──complete()──▶ COMPLETE
//!      │                    │
//!      └──cancel()──┬───────┘
//!                   ▼
//!               CANCELLED
//! ```
//!
//! * `start` is a CAS `PENDING → RUNNING`; it fails only if `cancel` won, so a
//!   task cancelled while pending never runs.
//! * `cancel` is a CAS from `PENDING` or `RUNNING` to `CANCELLED` taken under the
//!   slot lock; it stores the `Cancelled` error itself, so the handle resolves at
//!   once. A running task sees `CANCELLED` through its token and should stop; its
//!   output, if it still produces one, is dropped by `complete`.
//! * `complete` takes the slot lock and stores the result only if the state is
//!   still `RUNNING`, then publishes `COMPLETE`. Because `cancel` and `complete`
//!   both decide under the lock, exactly one result is ever stored.
//!
//! The result and the waiters live under one mutex (`slot`): blocking joiners
//! sleep on `cond` (notified only when `sleepers > 0`), an async joiner leaves its
//! `Waker`. Every store of a result wakes both, after the state is final. `state`
//! is read without the lock only by `is_finished` and by cancellation tokens
//! (Acquire/Relaxed: a hint, re-checked under the lock where it matters).
//!
//! If a backend drops its `Completer` without completing (the job was discarded),
//! the handle resolves as cancelled: no task is ever left without an answer.
//!
//! The model checks in `loom_tests` below cover these races.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::context::Cancellable;
use crate::error::TaskError;
use crate::loom::atomic::{AtomicU8, Ordering};
use crate::loom::{Condvar, Mutex};

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const COMPLETE: u8 = 2;
const CANCELLED: u8 = 3;

/// Process-wide task ids, starting at 1.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Called (once) when the caller cancels: how a backend that cannot see the
/// state machine (a worker process) hears of it.
type CancelHook = Box<dyn Fn() + Send + Sync>;

struct Shared<T> {
    id: u64,
    name: &'static str,
    on_cancel: Option<CancelHook>,
    state: AtomicU8,
    slot: Mutex<Slot<T>>,
    cond: Condvar,
}

struct Slot<T> {
    result: Option<Result<T, TaskError>>,
    /// The result was handed out; a further poll is a caller bug.
    taken: bool,
    /// The waker of the one task that `.await`s the handle (it owns it).
    waker: Option<Waker>,
    /// Wakers of `wait`/`as_completed` calls, keyed so each call removes its
    /// own: several threads may wait on the same (shared) handle at once.
    watchers: Vec<(u64, Waker)>,
    sleepers: u32,
}

impl<T> Shared<T> {
    /// Stores `result` and wakes every waiter. Caller holds the lock and has
    /// already made `state` final.
    fn publish(&self, slot: &mut Slot<T>, result: Result<T, TaskError>) -> Wakers {
        let result = result.map_err(|e| e.with_task(self.name, Some(self.id)));
        slot.result = Some(result);
        if slot.sleepers > 0 {
            self.cond.notify_all();
        }
        Wakers {
            waker: slot.waker.take(),
            watchers: std::mem::take(&mut slot.watchers),
        }
    }
}

/// Wakers taken under the lock, to be woken after it is released.
struct Wakers {
    waker: Option<Waker>,
    watchers: Vec<(u64, Waker)>,
}

impl Wakers {
    fn wake(self) {
        if let Some(w) = self.waker {
            w.wake();
        }
        for (_, w) in self.watchers {
            w.wake();
        }
    }
}

impl<T: Send> Cancellable for Shared<T> {
    fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Relaxed) == CANCELLED
    }
}

/// Creates a pending task's two halves.
pub(crate) fn pair<T>(name: &'static str) -> (TaskHandle<T>, Completer<T>) {
    pair_with(next_id(), name, None)
}

/// Creates a pending task's two halves with a given id and a hook that runs
/// after a successful `cancel`.
pub(crate) fn pair_with<T>(
    id: u64,
    name: &'static str,
    on_cancel: Option<CancelHook>,
) -> (TaskHandle<T>, Completer<T>) {
    let shared = Arc::new(Shared {
        id,
        name,
        on_cancel,
        state: AtomicU8::new(PENDING),
        slot: Mutex::new(Slot {
            result: None,
            taken: false,
            waker: None,
            watchers: Vec::new(),
            sleepers: 0,
        }),
        cond: Condvar::new(),
    });
    (
        TaskHandle {
            shared: Arc::clone(&shared),
        },
        Completer {
            shared: Some(shared),
        },
    )
}

/// The backend's half: starts the task and stores its result, exactly once.
pub(crate) struct Completer<T> {
    shared: Option<Arc<Shared<T>>>,
}

impl<T: Send + 'static> Completer<T> {
    /// The task's cancellation source, for its [`CancelToken`](crate::CancelToken).
    pub(crate) fn cancellable(&self) -> Arc<dyn Cancellable> {
        self.shared.clone().expect("completer used after complete")
    }
}

impl<T> Completer<T> {
    /// `PENDING → RUNNING`. `false` means the task was cancelled and must not run.
    pub(crate) fn start(&self) -> bool {
        let shared = self.shared.as_ref().expect("completer used after complete");
        shared
            .state
            .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Stores the task's result, unless the task was cancelled meanwhile (then the
    /// result is dropped: the handle already holds `Cancelled`).
    pub(crate) fn complete(mut self, result: Result<T, TaskError>) {
        let shared = self.shared.take().expect("completer used after complete");
        Self::finish(&shared, result);
    }

    fn finish(shared: &Shared<T>, result: Result<T, TaskError>) {
        let mut slot = shared.slot.lock();
        let state = shared.state.load(Ordering::Acquire);
        if state == CANCELLED || state == COMPLETE {
            drop(slot);
            drop(result);
            return;
        }
        shared.state.store(COMPLETE, Ordering::Release);
        let wakers = shared.publish(&mut slot, result);
        drop(slot);
        wakers.wake();
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        // Discarded without a result: resolve as cancelled, never leave it hanging.
        let mut slot = shared.slot.lock();
        let state = shared.state.load(Ordering::Acquire);
        if state == PENDING || state == RUNNING {
            shared.state.store(CANCELLED, Ordering::Release);
            let waker = shared.publish(
                &mut slot,
                Err(TaskError::cancelled(
                    "the task was discarded before it finished",
                )),
            );
            drop(slot);
            waker.wake();
        }
    }
}

/// A handle to a submitted task: wait for it, poll it, cancel it, or `.await` it.
///
/// `join` consumes the handle, so a result is taken exactly once; a handle
/// can be dropped to detach the task (it still runs). The handle is a
/// [`Future`] that works on any executor, no tokio needed.
///
/// ```
/// use quadriga::ThreadPool;
///
/// #[quadriga::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = ThreadPool::new(2)?;
/// let handle = pool.submit(square, 12);
/// assert!(handle.id() > 0);
/// assert_eq!(handle.join().unwrap(), 144);
/// # Ok::<(), quadriga::BuildError>(())
/// ```
///
/// A handle is consumed by `join`, so joining twice does not compile:
///
/// ```compile_fail,E0382
/// # let pool = quadriga::ThreadPool::new(1).unwrap();
/// let handle = pool.spawn(|| 1);
/// let a = handle.join();
/// let b = handle.join(); // error: use of moved value
/// ```
#[must_use = "dropping a handle detaches the task; call `join` to get its result"]
pub struct TaskHandle<T> {
    shared: Arc<Shared<T>>,
}

impl<T> TaskHandle<T> {
    /// The task's id, unique in this process.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Whether the task has ended (with an output, an error, or cancelled).
    /// Never blocks.
    ///
    /// ```
    /// # let pool = quadriga::ThreadPool::new(1)?;
    /// let h = pool.spawn(|| 7);
    /// h.wait_timeout(std::time::Duration::from_secs(10));
    /// assert!(h.is_finished());
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn is_finished(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) >= COMPLETE
    }

    /// Waits for the task and returns its output or its error.
    ///
    /// ```
    /// # let pool = quadriga::ThreadPool::new(1)?;
    /// assert_eq!(pool.spawn(|| 6 * 7).join().unwrap(), 42);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn join(self) -> Result<T, TaskError> {
        self.help_while_pending();
        let mut slot = self.shared.slot.lock();
        loop {
            if let Some(result) = slot.result.take() {
                slot.taken = true;
                return result;
            }
            slot.sleepers += 1;
            slot = self.shared.cond.wait(slot);
            slot.sleepers -= 1;
        }
    }

    /// Waits at most `timeout` for the task to end, without cancelling it.
    /// Returns whether it has ended; then [`join`](Self::join) returns at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let pool = quadriga::ThreadPool::new(1)?;
    /// let h = pool.spawn(|| std::thread::sleep(Duration::from_millis(200)));
    /// assert!(!h.wait_timeout(Duration::from_millis(1)));
    /// assert!(h.wait_timeout(Duration::from_secs(30)));
    /// h.join().unwrap();
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut slot = self.shared.slot.lock();
        loop {
            if slot.result.is_some() || slot.taken {
                return true;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
                None => Duration::from_secs(3600),
            };
            slot.sleepers += 1;
            slot = self.shared.cond.wait_timeout(slot, left);
            slot.sleepers -= 1;
        }
    }

    /// Asks the task to stop. A pending task never runs; a running thread task
    /// sees its [`CancelToken`](crate::CancelToken) cancelled (it cannot be killed,
    /// so it should check). Either way the handle resolves at once with a
    /// `Cancelled` error and a late output is dropped.
    ///
    /// Returns `true` if this call cancelled the task, `false` if it had already
    /// ended.
    ///
    /// ```
    /// # let pool = quadriga::ThreadPool::new(1)?;
    /// let done = pool.spawn(|| 1);
    /// done.wait_timeout(std::time::Duration::from_secs(10));
    /// assert!(!done.cancel());
    /// assert_eq!(done.join().unwrap(), 1);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn cancel(&self) -> bool {
        let shared = &*self.shared;
        let mut slot = shared.slot.lock();
        let mut state = shared.state.load(Ordering::Acquire);
        loop {
            if state == COMPLETE || state == CANCELLED {
                return false;
            }
            match shared.state.compare_exchange(
                state,
                CANCELLED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        let why = if state == PENDING {
            "cancelled before it started"
        } else {
            "cancelled while running"
        };
        let wakers = shared.publish(&mut slot, Err(TaskError::cancelled(why)));
        drop(slot);
        wakers.wake();
        if let Some(hook) = &shared.on_cancel {
            hook();
        }
        true
    }

    /// On one of a thread pool's own threads, blocking could wait for a task
    /// queued behind us (a task joining a sibling, a scope on a one-thread
    /// pool): run queued work instead, until the task ends.
    fn help_while_pending(&self) {
        #[cfg(not(quadriga_loom))]
        if rayon_core::current_thread_index().is_some() {
            while !self.is_finished() {
                if !matches!(rayon_core::yield_now(), Some(rayon_core::Yield::Executed)) {
                    self.wait_timeout(Duration::from_millis(1));
                }
            }
        }
    }

    /// Takes the result if the task has ended, without blocking.
    pub(crate) fn try_take(&self) -> Option<Result<T, TaskError>> {
        let mut slot = self.shared.slot.lock();
        let result = slot.result.take();
        if result.is_some() {
            slot.taken = true;
        }
        result
    }

    /// Whether the task ended with an error (`None` while it runs).
    pub(crate) fn peek_is_err(&self) -> Option<bool> {
        let slot = self.shared.slot.lock();
        slot.result.as_ref().map(Result::is_err)
    }

    /// Adds `waker` under `key`, to be woken when the task ends. Returns `true`
    /// (and keeps nothing) if it has ended already.
    pub(crate) fn watch(&self, key: u64, waker: &Waker) -> bool {
        let mut slot = self.shared.slot.lock();
        if slot.result.is_some() || slot.taken {
            return true;
        }
        slot.watchers.push((key, waker.clone()));
        false
    }

    /// Removes the waker added under `key`, if it is still there.
    pub(crate) fn unwatch(&self, key: u64) {
        let mut slot = self.shared.slot.lock();
        slot.watchers.retain(|(k, _)| *k != key);
    }
}

impl<T> TaskHandle<T> {
    /// Ties the task's life to the returned guard: dropping the guard before the
    /// task ends cancels it (a pending task never runs; a running thread task
    /// sees its token; a process task's worker is killed). This is what
    /// structured async code wants, since dropping a future there means "no
    /// longer needed". A plain `TaskHandle` detaches on drop instead.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[quadriga::task]
    /// fn slow() -> u8 {
    ///     std::thread::sleep(Duration::from_secs(60));
    ///     1
    /// }
    ///
    /// let pool = quadriga::ProcessPool::new(1)?;
    /// let guard = pool.submit(slow, ()).abort_on_drop();
    /// let id = guard.id();
    /// drop(guard); // the worker running `slow` is killed
    /// # let _ = id;
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn abort_on_drop(self) -> AbortOnDrop<T> {
        AbortOnDrop { handle: Some(self) }
    }
}

/// A [`TaskHandle`] that cancels its task when dropped unfinished. Made by
/// [`TaskHandle::abort_on_drop`]; awaits and joins like the handle.
#[must_use = "dropping it cancels the task"]
pub struct AbortOnDrop<T> {
    handle: Option<TaskHandle<T>>,
}

impl<T> AbortOnDrop<T> {
    /// The task's id.
    pub fn id(&self) -> u64 {
        self.handle.as_ref().map_or(0, TaskHandle::id)
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_some_and(TaskHandle::is_finished)
    }

    /// Waits for the task (see [`TaskHandle::join`]).
    pub fn join(mut self) -> Result<T, TaskError> {
        self.handle
            .take()
            .expect("present until joined or dropped")
            .join()
    }

    /// Gives the plain handle back: dropping it then detaches again.
    pub fn detach(mut self) -> TaskHandle<T> {
        self.handle.take().expect("present until joined or dropped")
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let handle = self
            .handle
            .as_mut()
            .expect("polled after it returned Ready");
        Pin::new(handle).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle
            && !handle.is_finished()
        {
            handle.cancel();
        }
    }
}

impl<T> fmt::Debug for AbortOnDrop<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortOnDrop")
            .field("handle", &self.handle)
            .finish()
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    /// Resolves to the task's output or error.
    ///
    /// # Panics
    ///
    /// If polled again after it returned `Ready` (as `Future` allows).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.shared.slot.lock();
        if let Some(result) = slot.result.take() {
            slot.taken = true;
            return Poll::Ready(result);
        }
        assert!(!slot.taken, "TaskHandle polled after it returned Ready");
        match &mut slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            other => *other = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.shared.state.load(Ordering::Acquire) {
            PENDING => "pending",
            RUNNING => "running",
            COMPLETE => "complete",
            _ => "cancelled",
        };
        f.debug_struct("TaskHandle")
            .field("id", &self.shared.id)
            .field("task", &self.shared.name)
            .field("state", &state)
            .finish()
    }
}

#[cfg(all(test, not(quadriga_loom)))]
mod tests {
    use super::*;

    #[test]
    fn complete_then_join() {
        let (h, c) = pair::<u32>("t");
        assert!(c.start());
        c.complete(Ok(5));
        assert!(h.is_finished());
        assert_eq!(h.join().unwrap(), 5);
    }

    #[test]
    fn cancel_pending_means_never_runs() {
        let (h, c) = pair::<u32>("t");
        assert!(h.cancel());
        assert!(!c.start());
        assert!(!h.cancel(), "second cancel is a no-op");
        drop(c);
        let err = h.join().unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(err.message(), "cancelled before it started");
        assert_eq!(err.task_name(), Some("t"));
    }

    #[test]
    fn late_result_after_cancel_is_dropped() {
        let (h, c) = pair::<u32>("t");
        assert!(c.start());
        assert!(h.cancel());
        c.complete(Ok(1));
        assert!(h.join().unwrap_err().is_cancelled());
    }

    #[test]
    fn dropped_completer_resolves_as_cancelled() {
        let (h, c) = pair::<u32>("t");
        drop(c);
        assert!(h.join().unwrap_err().is_cancelled());
    }

    #[test]
    fn wait_timeout_does_not_cancel() {
        let (h, c) = pair::<u32>("t");
        assert!(!h.wait_timeout(Duration::from_millis(5)));
        assert!(c.start());
        c.complete(Ok(2));
        assert!(h.wait_timeout(Duration::ZERO));
        assert_eq!(h.join().unwrap(), 2);
    }

    #[test]
    #[should_panic(expected = "polled after it returned Ready")]
    fn poll_after_ready_panics_instead_of_hanging() {
        let (mut h, c) = pair::<u32>("t");
        assert!(c.start());
        c.complete(Ok(1));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut h).poll(&mut cx).is_ready());
        let _ = Pin::new(&mut h).poll(&mut cx);
    }
}

#[cfg(all(test, quadriga_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::thread;

    /// A result stored on one thread is seen by a joiner on another.
    #[test]
    fn complete_races_join() {
        loom::model(|| {
            let (h, c) = pair::<u32>("t");
            let t = thread::spawn(move || {
                assert!(c.start());
                c.complete(Ok(7));
            });
            assert_eq!(h.join().unwrap(), 7);
            t.join().unwrap();
        });
    }

    /// Cancel racing start and complete: exactly one outcome, and a task
    /// cancelled while pending never runs.
    #[test]
    fn cancel_races_start_and_complete() {
        loom::model(|| {
            let (h, c) = pair::<u32>("t");
            let ran = Arc::new(AtomicBool::new(false));
            let ran2 = Arc::clone(&ran);
            let t = thread::spawn(move || {
                if c.start() {
                    ran2.store(true, Ordering::SeqCst);
                    c.complete(Ok(1));
                }
            });
            let cancelled = h.cancel();
            let result = h.join();
            t.join().unwrap();
            match result {
                Ok(v) => {
                    assert!(!cancelled);
                    assert_eq!(v, 1);
                }
                Err(e) => {
                    assert!(cancelled);
                    assert!(e.is_cancelled());
                    if e.message() == "cancelled before it started" {
                        assert!(!ran.load(Ordering::SeqCst), "a cancelled pending task ran");
                    }
                }
            }
        });
    }

    /// An async joiner is woken by a completion on another thread.
    #[test]
    fn complete_wakes_the_future() {
        loom::model(|| {
            let (h, c) = pair::<u32>("t");
            let t = thread::spawn(move || {
                assert!(c.start());
                c.complete(Ok(3));
            });
            assert_eq!(loom::future::block_on(h).unwrap(), 3);
            t.join().unwrap();
        });
    }

    /// A completer discarded on another thread still resolves the handle.
    #[test]
    fn dropped_completer_wakes_joiner() {
        loom::model(|| {
            let (h, c) = pair::<u32>("t");
            let t = thread::spawn(move || drop(c));
            assert!(h.join().unwrap_err().is_cancelled());
            t.join().unwrap();
        });
    }
}
