//! [`Map::collect`](super::Map::collect) in place: a finite map collected into a
//! `Vec` runs its items split across the threads, each writing its results
//! straight into the `Vec`'s memory, as rayon's indexed iterators do.
//!
//! The streaming engine moves every input and every result through the
//! consumer's thread; for tasks of a few nanoseconds that one thread is the
//! bottleneck. Here the consumer only pulls inputs (a copy loop for a range or
//! a `Vec`) into a block of *pieces*; the backend runs the pieces on all its
//! threads ([`Dispatch::run_jobs`]), each writing its own disjoint slice of
//! the output's spare capacity; then the `Vec`'s length moves past the block.
//!
//! Blocks grow from a few hundred items towards [`BLOCK_TARGET`] of wall time
//! (capped by [`MAX_BLOCK_BYTES`] of inputs), so memory stays bounded beyond
//! the output itself, and slow items still spread evenly over the threads.

use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Dispatch, MapCancel};
use crate::error::TaskError;
use crate::task::Task;

/// How long one block should take (its barrier costs some microseconds).
const BLOCK_TARGET: Duration = Duration::from_millis(5);
/// Cap on one block's inputs, by `size_of`.
const MAX_BLOCK_BYTES: usize = 8 << 20;
/// Items per thread in the first block, before anything is measured.
const FIRST_BLOCK_PER_LANE: usize = 256;
/// Pieces per thread in a block: threads take pieces as they finish the
/// previous one, so a slow piece does not hold the others back.
const PIECES_PER_LANE: usize = 8;

/// One piece of a block, run by a backend thread.
pub(crate) trait Job: Send {
    /// Runs every item of the piece; with `skip` (the map or its pool was
    /// cancelled) every item ends as cancelled without running.
    fn run(&mut self, skip: bool);
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
    inputs: &'a mut Vec<T::Input>,
    out: &'a mut [MaybeUninit<S::Elem>],
    /// Slots `out[..written]` hold a value.
    written: usize,
    /// The error that stopped the piece (only with [`Unwrap`]).
    error: Option<TaskError>,
}

impl<T: Task, S: Slot<T::Output>> Job for Piece<'_, T, S> {
    fn run(&mut self, skip: bool) {
        let task = self.task;
        let base = self.base;
        let tag = |e: TaskError, i: usize| e.with_task(T::NAME, None).with_item(base + i as u64);
        let out = &mut *self.out;
        let mut inputs = self.inputs.drain(..);
        if skip {
            for (i, input) in inputs.by_ref().enumerate() {
                drop(input);
                let err = tag(TaskError::cancelled("the map was cancelled"), i);
                match S::convert(Err(err)) {
                    Ok(elem) => {
                        out[i].write(elem);
                        self.written = i + 1;
                    }
                    Err(e) => {
                        self.error = Some(e);
                        return;
                    }
                }
            }
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
                self.error = Some(e);
                break;
            }
        }
        self.written = next;
    }
}

impl<T: Task, S: Slot<T::Output>> Piece<'_, T, S> {
    /// Drops the values this piece wrote.
    fn drop_written(&mut self) {
        for slot in &mut self.out[..self.written] {
            // SAFETY: `run` wrote `out[..written]` and nothing has read or
            // dropped them since (the `Vec`'s length never covered them).
            unsafe { slot.assume_init_drop() };
        }
        self.written = 0;
    }
}

/// Sizes blocks by the wall time the previous one took.
#[derive(Debug)]
struct BlockSizer {
    size: usize,
    max: usize,
}

impl BlockSizer {
    fn new(lanes: usize, bytes_per_input: usize) -> Self {
        let max = (MAX_BLOCK_BYTES / bytes_per_input.max(1)).max(1);
        Self {
            size: (FIRST_BLOCK_PER_LANE * lanes).clamp(1, max),
            max,
        }
    }

    /// Learns from a block of `len` items that took `elapsed` on `lanes`
    /// threads. A block keeps at least two items per thread, so that slow
    /// items still run on every thread.
    fn observe(&mut self, len: usize, elapsed: Duration, lanes: usize) {
        if len == 0 {
            return;
        }
        let per_item = (elapsed.as_nanos() / len as u128).max(1);
        let ideal = (BLOCK_TARGET.as_nanos() / per_item).clamp(1, self.max as u128) as usize;
        let growth = if elapsed * 100 < BLOCK_TARGET { 64 } else { 8 };
        self.size = ideal
            .clamp((self.size / 2).max(1), self.size.saturating_mul(growth))
            .max(2 * lanes)
            .min(self.max);
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
    let mut out: Vec<S::Elem> = Vec::with_capacity(inputs.size_hint().0);
    let mut sizer = BlockSizer::new(backend.parallelism().max(1), size_of::<T::Input>());
    let mut buffers: Vec<Vec<T::Input>> = Vec::new();
    loop {
        // Pull the next block into pieces (the buffers keep their capacity).
        let lanes = backend.parallelism().max(1);
        let pieces = (PIECES_PER_LANE * lanes).clamp(1, sizer.size);
        let piece_len = sizer.size.div_ceil(pieces);
        let mut used = 0;
        let mut total = 0;
        while used < pieces {
            if buffers.len() == used {
                buffers.push(Vec::new());
            }
            let buffer = &mut buffers[used];
            buffer.clear();
            buffer.extend(inputs.by_ref().take(piece_len));
            let len = buffer.len();
            if len == 0 {
                break;
            }
            total += len;
            used += 1;
            if len < piece_len {
                break;
            }
        }
        if total == 0 {
            return Ok(out);
        }

        out.reserve(total);
        let done = out.len();
        let started = Instant::now();
        let mut spare = &mut out.spare_capacity_mut()[..total];
        let mut block: Vec<Piece<'_, T, S>> = Vec::with_capacity(used);
        let mut base = done as u64;
        for inputs in &mut buffers[..used] {
            let (head, tail) = std::mem::take(&mut spare).split_at_mut(inputs.len());
            spare = tail;
            let len = inputs.len() as u64;
            block.push(Piece {
                task,
                base,
                inputs,
                out: head,
                written: 0,
                error: None,
            });
            base += len;
        }
        {
            let mut jobs: Vec<&mut dyn Job> = block.iter_mut().map(|p| p as &mut dyn Job).collect();
            backend.run_jobs(cancel, &mut jobs);
        }
        let complete = block.iter().all(|p| p.written == p.out.len());
        if !complete {
            let error = block.iter_mut().find_map(|p| p.error.take());
            block.iter_mut().for_each(Piece::drop_written);
            // A backend runs every job before `run_jobs` returns, and only an
            // error stops a piece early.
            return Err(error.expect("a piece of an in-place map did not run"));
        }
        drop(block);
        // SAFETY: the pieces cover `spare_capacity_mut()[..total]` end to end
        // (split in order above), and each wrote every slot of its part.
        unsafe { out.set_len(done + total) };
        sizer.observe(total, started.elapsed(), lanes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizer_ramps_up_for_tiny_items_and_down_for_slow_ones() {
        let mut s = BlockSizer::new(2, 8);
        assert_eq!(s.size, 512);
        for _ in 0..5 {
            let n = s.size;
            s.observe(n, Duration::from_nanos(n as u64), 2);
        }
        assert_eq!(s.size, s.max, "1 ns items reach the byte cap");
        assert_eq!(s.max, 1 << 20);
        for _ in 0..40 {
            let n = s.size;
            s.observe(n, Duration::from_millis(5) * n as u32, 2);
        }
        assert_eq!(s.size, 4, "slow items: two per thread per block");
    }

    #[test]
    fn block_sizer_respects_the_byte_cap() {
        let s = BlockSizer::new(64, MAX_BLOCK_BYTES / 4);
        assert_eq!((s.size, s.max), (4, 4));
    }
}
