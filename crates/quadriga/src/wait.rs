//! [`wait`] and [`as_completed`]: waiting on many handles at once, as
//! `concurrent.futures` does.
//!
//! Both leave a waker in each handle that sends the handle's index over a
//! channel when it ends, so waiting costs no polling and no thread per handle.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use crate::error::TaskError;
use crate::handle::TaskHandle;

/// What [`wait`] waits for.
///
/// ```
/// use quadriga::WaitFor;
/// let modes = [WaitFor::FirstCompleted, WaitFor::FirstError, WaitFor::All];
/// assert_eq!(modes.len(), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WaitFor {
    /// Until any task ends.
    FirstCompleted,
    /// Until any task ends with an error, or all have ended.
    FirstError,
    /// Until all tasks have ended.
    All,
}

struct Signal {
    index: usize,
    tx: Sender<usize>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        let _ = self.tx.send(self.index);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let _ = self.tx.send(self.index);
    }
}

/// Adds a signalling waker under `key` to every handle; returns the channel
/// and the indices already finished.
fn watch<'a, T: 'a>(
    key: u64,
    handles: impl Iterator<Item = &'a TaskHandle<T>>,
) -> (Sender<usize>, Receiver<usize>, Vec<usize>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut ready = Vec::new();
    for (index, handle) in handles.enumerate() {
        let waker = Waker::from(Arc::new(Signal {
            index,
            tx: tx.clone(),
        }));
        if handle.watch(key, &waker) {
            ready.push(index);
        }
    }
    (tx, rx, ready)
}

/// Receives the next signal, until `deadline`. On one of a thread pool's own
/// threads it runs queued work meanwhile (like `join`), since the tasks waited
/// for may be queued behind the waiting one.
fn recv_helping(rx: &Receiver<usize>, deadline: Option<Instant>) -> Option<usize> {
    if rayon_core::current_thread_index().is_none() {
        return match deadline {
            None => rx.recv().ok(),
            Some(d) => rx.recv_deadline(d).ok(),
        };
    }
    loop {
        match rx.try_recv() {
            Ok(i) => return Some(i),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return None;
        }
        if !matches!(rayon_core::yield_now(), Some(rayon_core::Yield::Executed)) {
            let slice = now + Duration::from_millis(1);
            match rx.recv_deadline(deadline.map_or(slice, |d| d.min(slice))) {
                Ok(i) => return Some(i),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

struct Tally {
    finished: Vec<bool>,
    count: usize,
    any_err: bool,
}

impl Tally {
    /// Records handle `i` if it has ended (a wake may be spurious or repeated).
    fn mark<T>(&mut self, handles: &[TaskHandle<T>], i: usize) {
        if !self.finished[i] && handles[i].is_finished() {
            self.finished[i] = true;
            self.count += 1;
            self.any_err |= handles[i].peek_is_err() == Some(true);
        }
    }
}

/// Waits until the condition `mode` holds or `timeout` passes (`None`: no
/// limit), without cancelling anything. Returns the indices of the handles that
/// have ended and of those still pending, each in ascending order.
///
/// ```
/// use std::time::Duration;
/// use quadriga::{ThreadPool, WaitFor};
///
/// let pool = ThreadPool::new(2)?;
/// let handles = vec![
///     pool.spawn(|| { std::thread::sleep(Duration::from_millis(300)); 1 }),
///     pool.spawn(|| 2),
/// ];
/// let (done, pending) = quadriga::wait(&handles, WaitFor::FirstCompleted, None);
/// assert!(done.contains(&1));
/// let (done, pending) = quadriga::wait(&handles, WaitFor::All, Some(Duration::from_secs(30)));
/// assert_eq!((done, pending), (vec![0, 1], vec![]));
/// # Ok::<(), quadriga::BuildError>(())
/// ```
pub fn wait<T>(
    handles: &[TaskHandle<T>],
    mode: WaitFor,
    timeout: Option<Duration>,
) -> (Vec<usize>, Vec<usize>) {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let key = crate::handle::next_id();
    let (_tx, rx, ready) = watch(key, handles.iter());
    let mut tally = Tally {
        finished: vec![false; handles.len()],
        count: 0,
        any_err: false,
    };
    for i in ready {
        tally.mark(handles, i);
    }
    loop {
        let satisfied = match mode {
            WaitFor::FirstCompleted => tally.count > 0 || handles.is_empty(),
            WaitFor::FirstError => tally.any_err || tally.count == handles.len(),
            WaitFor::All => tally.count == handles.len(),
        };
        if satisfied {
            break;
        }
        match recv_helping(&rx, deadline) {
            Some(i) => tally.mark(handles, i),
            None => break,
        }
    }
    for handle in handles {
        handle.unwatch(key);
    }
    let finished = tally.finished;
    let (done, pending): (Vec<usize>, Vec<usize>) = (0..handles.len()).partition(|&i| finished[i]);
    (done, pending)
}

/// Yields each task's `(index, result)` as it ends, in completion order.
///
/// ```
/// use std::time::Duration;
/// use quadriga::ThreadPool;
///
/// let pool = ThreadPool::new(2)?;
/// let handles = vec![
///     pool.spawn(|| { std::thread::sleep(Duration::from_millis(200)); "slow" }),
///     pool.spawn(|| "fast"),
/// ];
/// let order: Vec<_> = quadriga::as_completed(handles).map(|(i, r)| (i, r.unwrap())).collect();
/// assert_eq!(order, [(1, "fast"), (0, "slow")]);
/// # Ok::<(), quadriga::BuildError>(())
/// ```
pub fn as_completed<T, I>(handles: I) -> AsCompleted<T>
where
    I: IntoIterator<Item = TaskHandle<T>>,
{
    let handles: Vec<TaskHandle<T>> = handles.into_iter().collect();
    let key = crate::handle::next_id();
    let (tx, rx, ready) = watch(key, handles.iter());
    AsCompleted {
        key,
        remaining: handles.len(),
        handles: handles.into_iter().map(Some).collect(),
        ready: ready.into(),
        _tx: tx,
        rx,
    }
}

/// The iterator returned by [`as_completed`]: `(index, result)` pairs, each
/// handle exactly once, in the order the tasks end.
///
/// ```
/// let pool = quadriga::ThreadPool::new(2)?;
/// let handles: Vec<_> = (0..3).map(|i| pool.spawn(move || i * 10)).collect();
/// let mut seen: Vec<_> = quadriga::as_completed(handles).map(|(i, r)| (i, r.unwrap())).collect();
/// seen.sort();
/// assert_eq!(seen, [(0, 0), (1, 10), (2, 20)]);
/// # Ok::<(), quadriga::BuildError>(())
/// ```
#[must_use = "iterate it to receive the results; dropping it detaches the tasks, which run on unobserved"]
pub struct AsCompleted<T> {
    key: u64,
    handles: Vec<Option<TaskHandle<T>>>,
    ready: VecDeque<usize>,
    remaining: usize,
    /// Kept so the channel never disconnects while handles are outstanding.
    _tx: Sender<usize>,
    rx: Receiver<usize>,
}

impl<T> Iterator for AsCompleted<T> {
    type Item = (usize, Result<T, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        while self.remaining > 0 {
            let index = match self.ready.pop_front() {
                Some(i) => i,
                None => recv_helping(&self.rx, None).expect("as_completed holds a sender"),
            };
            let Some(handle) = &self.handles[index] else {
                continue; // a second wake for one already yielded
            };
            if let Some(result) = handle.try_take() {
                self.handles[index] = None;
                self.remaining -= 1;
                return Some((index, result));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T> Drop for AsCompleted<T> {
    fn drop(&mut self) {
        for handle in self.handles.iter().flatten() {
            handle.unwatch(self.key);
        }
    }
}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}
