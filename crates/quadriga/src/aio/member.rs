//! [`Member`]: one task of a [`TaskGroup`](super::TaskGroup) as the runtime
//! sees it, and the state ([`Shared`]) it shares with its group.
//!
//! # Cancellation
//!
//! The group's tokio `JoinSet` lives in `Shared`, under a mutex. Cancelling
//! the group (explicitly, or by a member's failure when the group fails fast)
//! sets `cancelled` and calls `JoinSet::abort_all` under that mutex: tokio
//! then drops the future of every member that is not running, at once, and of
//! a running one when its poll returns `Pending`; a member never polled never
//! runs. A member spawned later is aborted as it is spawned. Because `spawn`
//! reads `cancelled` under the same mutex that the canceller holds while it
//! aborts, no member escapes: either it was in the set when `abort_all` ran,
//! or its spawner sees the flag.
//!
//! This costs nothing per member (no waker registered anywhere): a member is
//! its future, its index and a `Weak` to the group. Members hold a `Weak`, not
//! an `Arc`, so that dropping the group drops the `JoinSet`, which aborts
//! whatever is left: no member outlives its group by accident.
//!
//! A member that fails aborts its siblings from its own poll, so the first
//! failure stops the others at once, whether or not anyone is joining the
//! group. `abort_all` also marks the failing member itself, but a task whose
//! poll returns `Ready` completes with its output regardless (tokio checks
//! for cancellation only after a `Pending`), so the failure is reported.
//!
//! An aborted member reports no index (tokio answers `JoinError`); the group
//! matches such outcomes with the indices that never reported once its set is
//! empty (they are all alike: cancelled).
//!
//! # Panics
//!
//! Every poll, and the drop of the future once it is ready, run under the
//! crate's panic guard (`panic::catch` with an `InTask` mark), so a panic
//! becomes a `Panicked` error with its message and location, and the hook
//! prints nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::task::JoinSet;

use crate::error::TaskError;
use crate::loom::Mutex;
use crate::loom::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::panic::{self, InTask};

/// No member has failed yet.
const NONE: usize = usize::MAX;

/// What a member reports: its index and its outcome.
pub(super) type Report<T> = (usize, Result<T, TaskError>);

/// What a group and its members share.
///
/// Aligned to 128 bytes so that, inside its `Arc`, it starts on another
/// cache line than the reference counts: every spawn takes the set's lock on
/// the spawning thread while every member that ends drops its `Weak` on a
/// worker, and on one line those two streams of writes would bounce it
/// between cores for every task.
#[repr(align(128))]
pub(super) struct Shared<T> {
    /// The members' tasks.
    pub(super) set: Mutex<JoinSet<Report<T>>>,
    /// The group was cancelled (explicitly, or by a failure).
    cancelled: AtomicBool,
    /// Whether a failing member cancels the group.
    fail_fast: AtomicBool,
    /// The index of the first member that failed, or `NONE`.
    first_failure: AtomicUsize,
}

impl<T: 'static> Shared<T> {
    pub(super) fn new(fail_fast: bool) -> Self {
        Self {
            set: Mutex::new(JoinSet::new()),
            cancelled: AtomicBool::new(false),
            fail_fast: AtomicBool::new(fail_fast),
            first_failure: AtomicUsize::new(NONE),
        }
    }

    /// Cancels every member: see the module docs.
    pub(super) fn cancel(&self) {
        if !self.cancelled.swap(true, Ordering::AcqRel) {
            self.set.lock().abort_all();
        }
    }

    /// Records that member `index` failed; cancels the group if it fails fast.
    fn failed(&self, index: usize) {
        let _ =
            self.first_failure
                .compare_exchange(NONE, index, Ordering::AcqRel, Ordering::Acquire);
        if self.fail_fast.load(Ordering::Relaxed) {
            self.cancel();
        }
    }
}

impl<T> Shared<T> {
    pub(super) fn set_fail_fast(&self, yes: bool) {
        self.fail_fast.store(yes, Ordering::Relaxed);
    }

    pub(super) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// The index of the first member that failed, if one did.
    pub(super) fn first_failure(&self) -> Option<usize> {
        match self.first_failure.load(Ordering::Acquire) {
            NONE => None,
            i => Some(i),
        }
    }

    /// The error of a member stopped by the group's cancellation.
    pub(super) fn cancelled_error(&self) -> TaskError {
        match self.first_failure() {
            Some(i) if self.fail_fast.load(Ordering::Relaxed) => {
                TaskError::cancelled(&format!("cancelled: task {i} of its group failed"))
            }
            _ => TaskError::cancelled("cancelled with its group"),
        }
    }
}

pin_project! {
    /// A group's future: polls the user's future under the panic guard and
    /// reports `(index, outcome)`; a failure may cancel the group.
    pub(super) struct Member<F, T> {
        #[pin]
        future: Option<F>,
        index: usize,
        group: Weak<Shared<T>>,
    }
}

impl<F, T> Member<F, T> {
    pub(super) fn new(future: F, index: usize, group: Weak<Shared<T>>) -> Self {
        Self {
            future: Some(future),
            index,
            group,
        }
    }
}

impl<F, T> Future for Member<F, T>
where
    F: Future<Output = Result<T, TaskError>>,
    T: Send + 'static,
{
    type Output = Report<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let index = *this.index;
        let polled = {
            let _in_task = InTask::enter();
            let mut future = this.future.as_mut();
            panic::catch(|| match future.as_mut().as_pin_mut() {
                Some(f) => f.poll(cx),
                None => Poll::Ready(Err(TaskError::cancelled("polled after it ended"))),
            })
        };
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => drop_future(this.future).and(result),
            Err(panicked) => {
                let _ = drop_future(this.future);
                Err(panicked)
            }
        };
        if result.is_err()
            && let Some(group) = this.group.upgrade()
        {
            group.failed(index);
        }
        Poll::Ready((index, tag(result, index)))
    }
}

/// Drops the future in place, under the panic guard: a destructor that panics
/// becomes the member's error instead of unwinding into the runtime.
fn drop_future<F>(future: Pin<&mut Option<F>>) -> Result<(), TaskError> {
    let _in_task = InTask::enter();
    let mut future = future;
    panic::catch(move || future.set(None))
}

/// Records which member an error belongs to, unless it already names an item.
pub(super) fn tag<T>(result: Result<T, TaskError>, index: usize) -> Result<T, TaskError> {
    result.map_err(|e| {
        if e.item().is_none() {
            e.with_item(index as u64)
        } else {
            e
        }
    })
}
