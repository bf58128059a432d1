//! The `map` engine shared by every backend: lazy, bounded, automatically
//! chunked, ordered ([`Map`]) or in completion order ([`MapUnordered`]).
//!
//! # How it works
//!
//! The consumer's thread pulls inputs from the iterator only when there is room:
//! at most `window` chunks are dispatched and not yet yielded, so memory stays
//! bounded on an infinite input. A backend runs each [`Chunk`] and answers on its
//! [`Reply`]; a reply dropped unsent answers every item as cancelled, so a lost
//! chunk can never hang the consumer.
//!
//! Chunk sizes adapt: the first chunk holds one item; each reply reports how
//! long its items took, and the size moves (at most ×8 up, ÷2 down per step)
//! towards what fills [`TARGET_CHUNK`] of work, capped by [`MAX_CHUNK_BYTES`]
//! of inputs and outputs and, when the input's length is known, by a share of
//! what is left, so the tail still spreads over every thread. Tiny tasks thus
//! travel in chunks of tens of thousands; slow ones one by one.
//!
//! Dropping a map cancels it: queued chunks are skipped and running tasks see
//! their [`CancelToken`](crate::CancelToken) cancelled.

mod collect;
mod progress;

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::fmt;
use std::iter::Fuse;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::context::Cancellable;
use crate::error::TaskError;
use crate::task::Task;

pub(crate) use collect::Job;

/// How much work one chunk should carry, by default (threads: a chunk costs
/// about a microsecond to hand over, so 100 µs keeps that near 1%).
pub(crate) const TARGET_CHUNK: Duration = Duration::from_micros(100);
/// Cap on the memory one chunk's inputs and outputs may take (by `size_of`).
const MAX_CHUNK_BYTES: usize = 1 << 20;

/// A map's own cancellation flag.
#[derive(Debug, Default)]
pub(crate) struct MapCancel(AtomicBool);

impl Cancellable for MapCancel {
    fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A backend that can run chunks of a map.
pub(crate) trait Dispatch<T: Task>: Sync {
    /// Runs the chunk (now or later) and answers on `chunk.reply`. Dropping the
    /// chunk unanswered is allowed: its items then end as cancelled.
    fn dispatch(&self, chunk: Chunk<T>);

    /// How many chunks may run at once (threads or workers).
    fn parallelism(&self) -> usize;

    /// The largest chunk the backend accepts, if it has a limit.
    fn max_chunk(&self) -> Option<usize> {
        None
    }

    /// How much work a chunk should carry: more where handing one over costs
    /// more (a process round trip).
    fn target_chunk(&self) -> Duration {
        TARGET_CHUNK
    }

    /// Called while the consumer would block; a backend whose consumer may run
    /// on one of its own threads does useful work here instead. Returns whether
    /// it did anything.
    fn help(&self) -> bool {
        false
    }

    /// How many lanes an in-place collect should cut its input for: the most
    /// jobs that may run at once during it (a self-sizing pool's maximum).
    fn collect_lanes(&self) -> usize {
        self.parallelism()
    }

    /// Whether [`run_jobs`](Self::run_jobs) runs jobs in parallel: then a map
    /// collected into a `Vec` writes its results in place.
    fn runs_jobs(&self) -> bool {
        false
    }

    /// Runs the jobs that `next` yields (it is called on this thread until it
    /// returns `None`), spread over the backend's threads, each exactly once;
    /// returns when all have run. A job runs with `skip` when `cancel` or the
    /// backend was cancelled, or the backend is shut down.
    fn run_jobs<'a>(
        &self,
        cancel: &Arc<MapCancel>,
        next: &mut dyn FnMut() -> Option<Box<dyn Job + 'a>>,
    ) {
        while let Some(mut job) = next() {
            job.run(cancel.is_cancelled());
        }
    }
}

/// One batch of consecutive items.
///
/// Buffers go round: a backend takes the items from the end (`pop`), so the
/// results it pushes into `out` come out in *reverse* input order, and the
/// consumer `pop`s them back into order. Both vectors keep their capacity and
/// return (the emptied input in [`Done`], the drained results with the next
/// chunk), so a long map allocates no fresh memory per chunk.
pub(crate) struct Chunk<T: Task> {
    pub(crate) task: T,
    /// Index of the first item in the input.
    pub(crate) base: u64,
    /// The items, in input order.
    pub(crate) items: Vec<T::Input>,
    /// An empty buffer for the results (with capacity from an earlier chunk).
    pub(crate) out: Vec<Result<T::Output, TaskError>>,
    pub(crate) cancel: Arc<MapCancel>,
    pub(crate) reply: Reply<T::Input, T::Output>,
}

/// What a backend sends back for a chunk.
pub(crate) struct Done<I, O> {
    seq: u64,
    base: u64,
    elapsed: Duration,
    /// One result per item, in reverse input order.
    results: Vec<Result<O, TaskError>>,
    /// The chunk's input buffer, emptied, for reuse.
    spare: Vec<I>,
}

/// The answer slot of one chunk. Answers exactly once, even if dropped.
pub(crate) struct Reply<I, O> {
    seq: u64,
    base: u64,
    len: usize,
    name: &'static str,
    tx: Option<Sender<Done<I, O>>>,
    /// Set when the map was dropped: nobody reads the answer any more.
    abandoned: Arc<MapCancel>,
}

impl<I, O> Reply<I, O> {
    /// The task's name, for errors.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Sends the chunk's results (one per item, in **reverse** input order),
    /// how long they took, and the emptied input buffer.
    pub(crate) fn send(
        mut self,
        elapsed: Duration,
        results: Vec<Result<O, TaskError>>,
        spare: Vec<I>,
    ) {
        debug_assert_eq!(results.len(), self.len);
        if let Some(tx) = self.tx.take() {
            // The consumer may be gone (map dropped): nothing to deliver then.
            let _ = tx.send(Done {
                seq: self.seq,
                base: self.base,
                elapsed,
                results,
                spare,
            });
        }
    }

    /// Whether the map was dropped: then the answer can be skipped.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.is_cancelled()
    }

    /// Every item ended with a clone of `err` (nothing is built if the map
    /// was dropped: the errors would only be thrown away).
    pub(crate) fn fail_all(mut self, err: &TaskError) {
        if self.is_abandoned() {
            self.tx = None;
            return;
        }
        let results = (0..self.len as u64)
            .rev()
            .map(|i| {
                Err(err
                    .clone()
                    .with_task(self.name, None)
                    .with_item(self.base + i))
            })
            .collect();
        self.send(Duration::ZERO, results, Vec::new());
    }
}

impl<I, O> Drop for Reply<I, O> {
    fn drop(&mut self) {
        if self.tx.is_some() && !self.is_abandoned() {
            let err = TaskError::cancelled("the chunk was discarded before it ran");
            let reply = Reply {
                seq: self.seq,
                base: self.base,
                len: self.len,
                name: self.name,
                tx: self.tx.take(),
                abandoned: Arc::clone(&self.abandoned),
            };
            reply.fail_all(&err);
        }
    }
}

/// Runs a chunk's items on this thread, each under `catch`, so one panicking
/// item does not lose the others. Takes the items from the end of `items` and
/// pushes each result to `out`, which therefore holds them in reverse order.
/// With `skip` (the map or its pool was cancelled) every item ends as
/// cancelled without running.
pub(crate) fn run_items<T: Task>(
    task: T,
    base: u64,
    items: &mut Vec<T::Input>,
    out: &mut Vec<Result<T::Output, TaskError>>,
    skip: bool,
) {
    out.reserve(items.len());
    if skip {
        let err = TaskError::cancelled("the map was cancelled");
        while items.pop().is_some() {
            let index = base + items.len() as u64;
            out.push(Err(err.clone().with_task(T::NAME, None).with_item(index)));
        }
        return;
    }
    while let Some(input) = items.pop() {
        out.push(match crate::panic::catch(|| task.run(input)) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) | Err(e) => {
                let index = base + items.len() as u64;
                Err(e.with_task(T::NAME, None).with_item(index))
            }
        });
    }
}

/// Picks chunk sizes from observed per-item time.
#[derive(Debug, Clone)]
pub(crate) struct ChunkSizer {
    size: usize,
    max: usize,
    target: Duration,
}

impl ChunkSizer {
    pub(crate) fn new(bytes_per_item: usize, target: Duration) -> Self {
        let max = (MAX_CHUNK_BYTES / bytes_per_item.max(1)).clamp(1, 1 << 16);
        Self {
            size: 1,
            max,
            target,
        }
    }

    /// The next chunk's size, given how many items may be left (if known) and
    /// how many chunks can run at once.
    pub(crate) fn next(&self, left: Option<usize>, parallelism: usize) -> usize {
        let share = left.map_or(usize::MAX, |n| n.div_ceil(2 * parallelism.max(1)));
        self.size.min(share).max(1)
    }

    /// Learns from a finished chunk of `len` items that took `elapsed`.
    pub(crate) fn observe(&mut self, len: usize, elapsed: Duration) {
        if len == 0 {
            return;
        }
        let per_item = (elapsed.as_nanos() / len as u128).max(1);
        let ideal = (self.target.as_nanos() / per_item).clamp(1, self.max as u128) as usize;
        // Move towards the ideal, boldly up (tiny tasks ramp fast: ×64 when a
        // chunk took under 1% of the target), gently down.
        let growth = if elapsed * 100 < self.target { 64 } else { 8 };
        self.size = ideal
            .clamp((self.size / 2).max(1), self.size.saturating_mul(growth))
            .min(self.max);
    }

    #[cfg(test)]
    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

/// The results of one chunk, one per item, in input order.
type Results<O> = Vec<Result<O, TaskError>>;

/// The part common to ordered and unordered maps.
struct Engine<'p, T: Task, I: Iterator<Item = T::Input>> {
    backend: &'p dyn Dispatch<T>,
    task: T,
    inputs: Fuse<I>,
    cancel: Arc<MapCancel>,
    tx: Sender<Done<T::Input, T::Output>>,
    rx: Receiver<Done<T::Input, T::Output>>,
    /// Emptied buffers, to carry the next chunks (at most `window` of each).
    free_in: Vec<Vec<T::Input>>,
    free_out: Vec<Results<T::Output>>,
    sizer: ChunkSizer,
    next_seq: u64,
    next_index: u64,
    in_flight: usize,
}

impl<'p, T: Task, I: Iterator<Item = T::Input>> Engine<'p, T, I> {
    fn new(backend: &'p dyn Dispatch<T>, task: T, inputs: I) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Self {
            backend,
            task,
            inputs: inputs.fuse(),
            cancel: Arc::new(MapCancel::default()),
            tx,
            rx,
            free_in: Vec::new(),
            free_out: Vec::new(),
            sizer: ChunkSizer::new(
                size_of::<T::Input>() + size_of::<Result<T::Output, TaskError>>(),
                backend.target_chunk(),
            ),
            next_seq: 0,
            next_index: 0,
            in_flight: 0,
        }
    }

    /// How many chunks may be dispatched and not yet yielded: read each time,
    /// since a self-sizing pool changes its parallelism as it runs.
    fn window(&self) -> usize {
        2 * self.backend.parallelism().max(1) + 2
    }

    /// Pulls and dispatches one chunk. Returns `false` when the input is exhausted.
    fn dispatch_one(&mut self) -> bool {
        let left = self.inputs.size_hint().1;
        let mut size = self.sizer.next(left, self.backend.parallelism());
        if let Some(max) = self.backend.max_chunk() {
            size = size.min(max.max(1));
        }
        let mut items = self.free_in.pop().unwrap_or_default();
        items.reserve(size);
        items.extend(self.inputs.by_ref().take(size));
        if items.is_empty() {
            return false;
        }
        let len = items.len();
        let reply = Reply {
            seq: self.next_seq,
            base: self.next_index,
            len,
            name: T::NAME,
            tx: Some(self.tx.clone()),
            abandoned: Arc::clone(&self.cancel),
        };
        self.backend.dispatch(Chunk {
            task: self.task,
            base: self.next_index,
            items,
            out: self.free_out.pop().unwrap_or_default(),
            cancel: Arc::clone(&self.cancel),
            reply,
        });
        self.next_seq += 1;
        self.next_index += len as u64;
        self.in_flight += 1;
        true
    }

    /// Keeps an emptied result buffer for a later chunk.
    fn recycle(&mut self, mut out: Results<T::Output>) {
        if out.capacity() > 0 && self.free_out.len() < self.window() {
            out.clear();
            self.free_out.push(out);
        }
    }

    /// Waits for the next finished chunk. Only called with chunks in flight.
    fn receive(&mut self) -> Done<T::Input, T::Output> {
        debug_assert!(self.in_flight > 0);
        let mut done = loop {
            match self.rx.try_recv() {
                Ok(done) => break done,
                Err(_) if self.backend.help() => continue,
                Err(_) => {
                    // Every reply answers even when dropped, and we hold a sender:
                    // this cannot disconnect.
                    break self
                        .rx
                        .recv()
                        .expect("map channel closed while chunks are in flight");
                }
            }
        };
        self.in_flight -= 1;
        self.sizer.observe(done.results.len(), done.elapsed);
        if done.spare.capacity() > 0 && self.free_in.len() < self.window() {
            let mut spare = std::mem::take(&mut done.spare);
            spare.clear();
            self.free_in.push(spare);
        }
        done
    }

    /// Every input not yet pulled yields one item; chunks in flight add an
    /// unknown number, so only the lower bound is known.
    fn size_hint(&self, buffered: usize) -> (usize, Option<usize>) {
        (self.inputs.size_hint().0.saturating_add(buffered), None)
    }
}

impl<T: Task, I: Iterator<Item = T::Input>> Drop for Engine<'_, T, I> {
    fn drop(&mut self) {
        self.cancel.0.store(true, Ordering::Relaxed);
    }
}

/// `value` as `C`, which the caller checked is its very type.
fn cast<V: 'static, C: 'static>(value: V) -> C {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<C>>()
        .and_then(Option::take)
        .expect("cast to the same type")
}

/// An ordered, lazy, bounded parallel map: yields each input's result in input
/// order. Created by [`ThreadPool::map`](crate::ThreadPool::map).
///
/// Each item is its own outcome: an item that panics or fails yields its error
/// (with [`TaskError::item`] set to its index) and the others carry on.
/// Dropping the map cancels what it has not yielded.
///
/// ```
/// #[quadriga::task]
/// fn inverse(x: i32) -> Result<i32, String> {
///     if x == 0 { Err("division by zero".into()) } else { Ok(100 / x) }
/// }
///
/// let pool = quadriga::ThreadPool::new(2)?;
/// let results: Vec<_> = pool.map(inverse, [1, 0, 4]).collect();
/// assert_eq!(results[0].as_ref().unwrap(), &100);
/// assert_eq!(results[1].as_ref().unwrap_err().item(), Some(1));
/// assert_eq!(results[2].as_ref().unwrap(), &25);
/// # Ok::<(), quadriga::BuildError>(())
/// ```
#[must_use = "a map is lazy: it dispatches nothing until iterated, and dropping it cancels what it has not yielded"]
pub struct Map<'p, T: Task, I: Iterator<Item = T::Input>> {
    engine: Engine<'p, T, I>,
    /// Dispatched chunks not yet yielded, in order; `None` until it arrives.
    pending: VecDeque<Option<Results<T::Output>>>,
    /// Sequence number of `pending[0]`.
    front_seq: u64,
    /// The chunk being yielded, in reverse order: `pop` gives the next item.
    current: Results<T::Output>,
    /// The progress bar, if asked for.
    progress: Option<progress::Progress>,
}

impl<'p, T: Task, I: Iterator<Item = T::Input>> Map<'p, T, I> {
    pub(crate) fn new(backend: &'p dyn Dispatch<T>, task: T, inputs: I) -> Self {
        Self {
            engine: Engine::new(backend, task, inputs),
            pending: VecDeque::new(),
            front_seq: 0,
            current: Vec::new(),
            progress: None,
        }
    }

    /// Shows a progress bar on the terminal while the map runs, as tqdm does:
    /// items done, the rate and, when the input's length is known, the time
    /// left. It draws on stderr only when stderr is a terminal: in a pipe, a
    /// file or CI it is silent and costs next to nothing.
    ///
    /// ```
    /// #[quadriga::task]
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let pool = quadriga::ThreadPool::new(2)?;
    /// let squares: Vec<u64> = pool.map(square, 0..1_000).progress().map(Result::unwrap).collect();
    /// assert_eq!(squares.len(), 1_000);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    pub fn progress(mut self) -> Self {
        self.progress = Some(progress::Progress::new(self.engine.inputs.size_hint()));
        self
    }
}

impl<T: Task, I: Iterator<Item = T::Input>> Iterator for Map<'_, T, I> {
    type Item = Result<T::Output, TaskError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(item) = self.current.pop() {
            return Some(item);
        }
        self.next_chunk()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.engine.size_hint(self.current.len())
    }
}

impl<T: Task, I: Iterator<Item = T::Input>> Map<'_, T, I> {
    /// Collects the results, like [`Iterator::collect`], which it shadows so
    /// that the common cases are fast: collected straight from the map into
    /// `Result<Vec<_>, TaskError>` or `Vec<Result<_, TaskError>>`, an input
    /// of known length (a range, a `Vec`, a slice, anything whose
    /// [`size_hint`](Iterator::size_hint) has an upper bound) is split across
    /// the pool's threads, and each thread writes its results in place, as
    /// rayon's `par_iter().map().collect()` does. Any other target, or an
    /// input of unknown length, streams through [`Iterator::collect`].
    ///
    /// Into `Result<Vec<_>, _>`, the answer is the error of the first failed
    /// item in input order, as with `Iterator::collect`.
    ///
    /// ```
    /// #[quadriga::task]
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let pool = quadriga::ThreadPool::new(2)?;
    /// let squares: Vec<u64> = pool.map(square, 0..100_000).collect::<Result<_, _>>().unwrap();
    /// assert_eq!(squares[300], 90_000);
    /// # Ok::<(), quadriga::BuildError>(())
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn collect<C>(mut self) -> C
    where
        C: FromIterator<Result<T::Output, TaskError>> + 'static,
    {
        let fresh = self.engine.next_seq == 0;
        let bounded = self.engine.inputs.size_hint().1.is_some();
        if fresh && bounded && self.progress.is_none() && self.engine.backend.runs_jobs() {
            if TypeId::of::<C>() == TypeId::of::<Result<Vec<T::Output>, TaskError>>() {
                let collected = self.collect_in_place::<collect::Unwrap>();
                return cast(collected);
            }
            if TypeId::of::<C>() == TypeId::of::<Vec<Result<T::Output, TaskError>>>() {
                let collected = self
                    .collect_in_place::<collect::Keep>()
                    .expect("a kept result is never an error");
                return cast(collected);
            }
        }
        Iterator::collect(self)
    }

    fn collect_in_place<S: collect::Slot<T::Output>>(&mut self) -> Result<Vec<S::Elem>, TaskError> {
        let engine = &mut self.engine;
        collect::collect::<T, _, S>(
            engine.backend,
            engine.task,
            &mut engine.inputs,
            &engine.cancel,
        )
    }

    #[cold]
    fn next_chunk(&mut self) -> Option<Result<T::Output, TaskError>> {
        let item = self.next_chunk_inner();
        if let Some(progress) = &self.progress {
            // The item about to be yielded and the rest of its chunk: the bar
            // moves a chunk at a time (bars of tiny items redraw rarely).
            match &item {
                Some(_) => progress.advance(self.current.len() + 1),
                None => progress.finish(),
            }
        }
        item
    }

    fn next_chunk_inner(&mut self) -> Option<Result<T::Output, TaskError>> {
        let drained = std::mem::take(&mut self.current);
        self.engine.recycle(drained);
        loop {
            while self.pending.len() < self.engine.window() && self.engine.dispatch_one() {
                self.pending.push_back(None);
            }
            match self.pending.front_mut() {
                None => return None,
                Some(slot @ Some(_)) => {
                    let results = slot.take().expect("checked above");
                    self.pending.pop_front();
                    self.front_seq += 1;
                    self.current = results;
                    if let Some(item) = self.current.pop() {
                        return Some(item);
                    }
                }
                Some(None) => {
                    let done = self.engine.receive();
                    let at = (done.seq - self.front_seq) as usize;
                    self.pending[at] = Some(done.results);
                }
            }
        }
    }
}

impl<T: Task, I: Iterator<Item = T::Input>> fmt::Debug for Map<'_, T, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("task", &T::NAME)
            .field("chunks_pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// A lazy, bounded parallel map that yields `(input index, result)` in
/// completion order. Created by
/// [`ThreadPool::map_unordered`](crate::ThreadPool::map_unordered).
///
/// Dropping it cancels what it has not yielded.
///
/// ```
/// #[quadriga::task]
/// fn double(x: u32) -> u32 {
///     2 * x
/// }
///
/// let pool = quadriga::ThreadPool::new(2)?;
/// let mut out = vec![0; 100];
/// for (index, result) in pool.map_unordered(double, 0..100) {
///     out[index] = result.unwrap();
/// }
/// assert!(out.iter().enumerate().all(|(i, &v)| v == 2 * i as u32));
/// # Ok::<(), quadriga::BuildError>(())
/// ```
#[must_use = "a map is lazy: it dispatches nothing until iterated, and dropping it cancels what it has not yielded"]
pub struct MapUnordered<'p, T: Task, I: Iterator<Item = T::Input>> {
    engine: Engine<'p, T, I>,
    /// Input index of the next item `current` yields.
    index: u64,
    /// The chunk being yielded, in reverse order.
    current: Results<T::Output>,
}

impl<'p, T: Task, I: Iterator<Item = T::Input>> MapUnordered<'p, T, I> {
    pub(crate) fn new(backend: &'p dyn Dispatch<T>, task: T, inputs: I) -> Self {
        Self {
            engine: Engine::new(backend, task, inputs),
            index: 0,
            current: Vec::new(),
        }
    }
}

impl<T: Task, I: Iterator<Item = T::Input>> Iterator for MapUnordered<'_, T, I> {
    type Item = (usize, Result<T::Output, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.current.pop() {
                let index = self.index as usize;
                self.index += 1;
                return Some((index, item));
            }
            let drained = std::mem::take(&mut self.current);
            self.engine.recycle(drained);
            while self.engine.in_flight < self.engine.window() && self.engine.dispatch_one() {}
            if self.engine.in_flight == 0 {
                return None;
            }
            let done = self.engine.receive();
            self.index = done.base;
            self.current = done.results;
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.engine.size_hint(self.current.len())
    }
}

impl<T: Task, I: Iterator<Item = T::Input>> fmt::Debug for MapUnordered<'_, T, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapUnordered")
            .field("task", &T::NAME)
            .field("chunks_in_flight", &self.engine.in_flight)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizer_ramps_up_for_tiny_items_and_down_for_slow_ones() {
        let mut s = ChunkSizer::new(16, TARGET_CHUNK);
        assert_eq!(s.size(), 1);
        for _ in 0..10 {
            let n = s.size();
            s.observe(n, Duration::from_nanos(n as u64));
        }
        assert_eq!(s.size(), 1 << 16, "1 ns items reach the cap");
        for _ in 0..40 {
            let n = s.size();
            s.observe(n, Duration::from_millis(10) * n as u32);
        }
        assert_eq!(s.size(), 1, "10 ms items travel one by one");
    }

    #[test]
    fn sizer_ramps_by_64_when_chunks_are_far_below_target() {
        let mut s = ChunkSizer::new(16, TARGET_CHUNK);
        s.observe(1, Duration::from_nanos(2));
        assert_eq!(s.size(), 64);
        s.observe(64, Duration::from_nanos(128));
        assert_eq!(s.size(), 4096);
        // Near the target, growth slows to ×8 at most.
        let mut s = ChunkSizer::new(16, TARGET_CHUNK);
        s.observe(1, Duration::from_micros(5));
        assert_eq!(s.size(), 8);
    }

    #[test]
    fn sizer_respects_byte_cap_and_tail_share() {
        let s = ChunkSizer::new(1 << 19, TARGET_CHUNK);
        assert_eq!(s.max, 2);
        let mut s = ChunkSizer::new(8, TARGET_CHUNK);
        for _ in 0..10 {
            let n = s.size();
            s.observe(n, Duration::from_nanos(n as u64));
        }
        assert_eq!(s.next(Some(100), 2), 25);
        assert_eq!(s.next(Some(0), 2), 1);
        assert_eq!(s.next(None, 2), s.size());
    }
}
