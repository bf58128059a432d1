//! [`Map::collect`](super::Map::collect) in place: a finite map collected into a
//! `Vec` runs its items split across the threads, each writing its results
//! straight into the `Vec`'s memory, as rayon's indexed iterators do.
//!
//! The streaming engine moves every input and every result through the
//! consumer's thread; for tasks of a few nanoseconds that one thread is the
//! bottleneck. Here the consumer only pulls inputs (a copy loop for a range or
//! a `Vec`) into *pieces*, handing each to the backend as soon as it is
//! pulled ([`Dispatch::run_jobs`]); the backend's threads run them, each
//! writing its own disjoint slice of the output's spare capacity; once all
//! have run, the `Vec`'s length moves past them.
//!
//! A block is as many items as the input has left, at most
//! [`MAX_BLOCK_BYTES`] of inputs, so memory stays bounded beyond the output
//! itself; a block of a larger input is followed by the next. Pieces grow from
//! [`FIRST_PIECE`] items (the threads start at once) to a share of what the
//! block has left, then shrink with it (guided scheduling), so the last pieces
//! are small and slow items still end together on every thread.

use std::mem::MaybeUninit;
use std::sync::Arc;

use super::{Dispatch, MapCancel};
use crate::error::TaskError;
use crate::loom::Mutex;
use crate::task::Task;

/// Cap on one block's inputs, by `size_of`.
const MAX_BLOCK_BYTES: usize = 8 << 20;
/// Items of the first piece of a block.
const FIRST_PIECE: usize = 256;
/// A piece takes at most this share of the block's remaining items per thread.
const SHARE_PER_LANE: usize = 2;
/// Cap on one piece's inputs, by `size_of` (buffers this small are reused
/// from the allocator's free lists, not mapped and faulted in afresh).
const MAX_PIECE_BYTES: usize = 128 << 10;

/// One piece of a block, run by a backend thread.
pub(crate) trait Job: Send {
    /// Runs every item of the piece; with `skip` (the map or its pool was
    /// cancelled) every item ends as cancelled without running.
    fn run(&mut self, skip: bool);

    /// The number of items it runs.
    fn len(&self) -> usize;
}

/// How an item's result is stored: as it is, or unwrapped (stopping at the
/// first error).
pub(super) trait Slot<O>: Send + 'static {
    /// The element of the output `Vec`.
    type Elem: Send;
    /// The element for `result`, or the error that ends the collection.
    fn convert(result: Result<O, TaskError>) -> Result<Self::Elem, TaskError>;
}

/// Collects into `Vec<Result<O, TaskError>>`: every result kept.
pub(super) struct Keep;

impl<O: Send + 'static> Slot<O> for Keep {
    type Elem = Result<O, TaskError>;

    #[inline(always)]
    fn convert(result: Result<O, TaskError>) -> Result<Self::Elem, TaskError> {
        Ok(result)
    }
}

/// Collects into `Result<Vec<O>, TaskError>`: the first error ends it.
pub(super) struct Unwrap;

impl<O: Send + 'static> Slot<O> for Unwrap {
    type Elem = O;

    #[inline(always)]
    fn convert(result: Result<O, TaskError>) -> Result<O, TaskError> {
        result
    }
}

/// Consecutive inputs and the output slots they fill.
struct Piece<'a, T: Task, S: Slot<T::Output>> {
    task: T,
    /// Input index of the first item.
    base: u64,
    inputs: Vec<T::Input>,
    out: &'a mut [MaybeUninit<S::Elem>],
    /// Where the piece reports when it has run.
    report: &'a Mutex<Vec<Ran<'a, S::Elem>>>,
    /// Where it leaves its emptied input buffer, for a later piece.
    free: &'a Mutex<Vec<Vec<T::Input>>>,
}

/// What a piece reports when it has run.
struct Ran<'a, E> {
    base: u64,
    out: &'a mut [MaybeUninit<E>],
    /// Slots `out[..written]` hold a value.
    written: usize,
    /// The error that stopped the piece (only with [`Unwrap`]).
    error: Option<TaskError>,
}

impl<T: Task, S: Slot<T::Output>> Job for Piece<'_, T, S> {
    fn len(&self) -> usize {
        self.inputs.len()
    }

    fn run(&mut self, skip: bool) {
        let task = self.task;
        let base = self.base;
        let tag = |e: TaskError, i: usize| e.with_task(T::NAME, None).with_item(base + i as u64);
        let out = std::mem::take(&mut self.out);
        let mut buffer = std::mem::take(&mut self.inputs);
        let mut inputs = buffer.drain(..);
        let mut ran = Ran {
            base,
            out: &mut [],
            written: 0,
            error: None,
        };
        if skip {
            for (i, input) in inputs.by_ref().enumerate() {
                drop(input);
                let err = tag(TaskError::cancelled("the map was cancelled"), i);
                match S::convert(Err(err)) {
                    Ok(elem) => {
                        out[i].write(elem);
                        ran.written = i + 1;
                    }
                    Err(e) => {
                        ran.error = Some(e);
                        break;
                    }
                }
            }
            drop(inputs);
            self.done(ran, out, buffer);
            return;
        }
        // One panic guard around the whole loop, not one per item (a guard
        // costs more than a tiny task): after a panic the loop resumes at the
        // next item, and the panicking one gets its error.
        let mut next = 0;
        loop {
            let run = crate::panic::catch(|| {
                for input in inputs.by_ref() {
                    let result = task.run(input).map_err(|e| tag(e, next));
                    match S::convert(result) {
                        Ok(elem) => {
                            out[next].write(elem);
                            next += 1;
                        }
                        Err(e) => return Some(e),
                    }
                }
                None
            });
            let stop = match run {
                Ok(None) => break,
                Ok(Some(e)) => Some(e),
                Err(panicked) => match S::convert(Err(tag(panicked, next))) {
                    Ok(elem) => {
                        out[next].write(elem);
                        next += 1;
                        None
                    }
                    Err(e) => Some(e),
                },
            };
            if let Some(e) = stop {
                ran.error = Some(e);
                break;
            }
        }
        ran.written = next;
        drop(inputs);
        self.done(ran, out, buffer);
    }
}

impl<'a, T: Task, S: Slot<T::Output>> Piece<'a, T, S> {
    /// Reports the piece and returns its input buffer.
    fn done(
        &self,
        mut ran: Ran<'a, S::Elem>,
        out: &'a mut [MaybeUninit<S::Elem>],
        mut buffer: Vec<T::Input>,
    ) {
        ran.out = out;
        self.report.lock().push(ran);
        buffer.clear();
        self.free.lock().push(buffer);
    }
}

impl<E> Ran<'_, E> {
    /// Drops the values this piece wrote.
    fn drop_written(&mut self) {
        for slot in &mut self.out[..self.written] {
            // SAFETY: the piece wrote `out[..written]` and nothing has read or
            // dropped them since (the `Vec`'s length never covered them).
            unsafe { slot.assume_init_drop() };
        }
        self.written = 0;
    }
}

/// Runs every input through `task` on `backend`, block by block, writing
/// results in input order into one `Vec`. With [`Unwrap`], returns the error
/// of the first failed item (in input order) instead.
pub(super) fn collect<T, I, S>(
    backend: &dyn Dispatch<T>,
    task: T,
    inputs: &mut I,
    cancel: &Arc<MapCancel>,
) -> Result<Vec<S::Elem>, TaskError>
where
    T: Task,
    I: Iterator<Item = T::Input>,
    S: Slot<T::Output>,
{
    let cap = (MAX_BLOCK_BYTES / size_of::<T::Input>().max(1)).max(1);
    let max_piece = (MAX_PIECE_BYTES / size_of::<T::Input>().max(1)).max(1);
    let mut out: Vec<S::Elem> = Vec::new();
    let free = Mutex::new(Vec::new());
    loop {
        let Some(upper) = inputs.size_hint().1 else {
            // Only an input whose length is bounded comes here; one that
            // lost its bound still ends, item by item.
            return Err(TaskError::cancelled("the input's length became unknown"));
        };
        let block = upper.clamp(1, cap);
        out.reserve(block);
        let done = out.len();
        let report = Mutex::new(Vec::new());
        let mut spare = &mut out.spare_capacity_mut()[..block];
        let mut base = done as u64;
        let mut pieces = 0;
        let mut piece = FIRST_PIECE;
        let lanes = backend.collect_lanes().max(1);
        let mut next = || -> Option<Box<dyn Job + '_>> {
            let left = spare.len();
            let len = piece
                .min(max_piece)
                .min(left.div_ceil(SHARE_PER_LANE * lanes))
                .max(1);
            piece = piece.saturating_mul(2);
            let mut piece_inputs: Vec<T::Input> = free.lock().pop().unwrap_or_default();
            piece_inputs.extend(inputs.by_ref().take(len.min(left)));
            if piece_inputs.is_empty() {
                return None;
            }
            let (head, tail) = std::mem::take(&mut spare).split_at_mut(piece_inputs.len());
            spare = tail;
            let first = base;
            base += piece_inputs.len() as u64;
            pieces += 1;
            Some(Box::new(Piece::<T, S> {
                task,
                base: first,
                inputs: piece_inputs,
                out: head,
                report: &report,
                free: &free,
            }))
        };
        backend.run_jobs(cancel, &mut next);
        let pulled = (base - done as u64) as usize;
        let mut ran = std::mem::take(&mut *report.lock());
        ran.sort_unstable_by_key(|r| r.base);
        let complete = ran.len() == pieces && ran.iter().all(|r| r.written == r.out.len());
        if !complete {
            let error = ran.iter_mut().find_map(|r| r.error.take());
            ran.iter_mut().for_each(Ran::drop_written);
            // A backend runs every job before `run_jobs` returns, and only an
            // error stops a piece early.
            return Err(error.expect("a piece of an in-place map did not run"));
        }
        drop(ran);
        // SAFETY: the pieces cover `spare_capacity_mut()[..pulled]` end to
        // end (split in order above), and each wrote every slot of its part.
        unsafe { out.set_len(done + pulled) };
        if pulled < block {
            return Ok(out);
        }
    }
}
