//! [`MapReduce`]: a task mapped over partitions on any [`Executor`], its
//! partial results folded in the caller or by a tree of combine tasks.

use std::fmt;

use crate::error::TaskError;
use crate::executor::Executor;
use crate::handle::TaskHandle;
use crate::task::Task;

use super::error::MapReduceError;

/// How far a [`MapReduce`] has come: told after each partial result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Inputs whose task has ended (done or failed).
    pub done: usize,
    /// Inputs in all.
    pub total: usize,
}

/// Maps a task over inputs (usually one per [`Partition`](super::Partition))
/// on any [`Executor`] and folds the partial results into one.
///
/// * [`reduce`](Self::reduce) folds in the caller, in input order, as the
///   partials arrive (so the fold overlaps the map): the choice when partials
///   are small (a few groups).
/// * [`reduce_tree`](Self::reduce_tree) folds with a combine *task* on the
///   pool, `fan_in` partials at a time, level by level, the first level
///   starting while the map still runs: the choice when partials are large
///   (many groups) and combining them is real work.
///
/// Every input runs even when some fail; the failures come back together as
/// a [`MapReduceError`]. The fold is left to right in input order (the tree
/// groups neighbours), so the result does not depend on the backend or on
/// timing; `combine` should be associative, and `Default` its identity (the
/// result of no input).
///
/// ```
/// use std::collections::BTreeMap;
/// use quadriga::ThreadPool;
/// use quadriga::data::MapReduce;
///
/// /// Counts the words of one text.
/// #[quadriga::task]
/// fn count(text: String) -> BTreeMap<String, u64> {
///     let mut counts = BTreeMap::new();
///     for word in text.split_whitespace() {
///         *counts.entry(word.to_owned()).or_default() += 1;
///     }
///     counts
/// }
///
/// fn merge(mut a: BTreeMap<String, u64>, b: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
///     for (word, n) in b {
///         *a.entry(word).or_default() += n;
///     }
///     a
/// }
///
/// /// The same fold as a task, for `reduce_tree`.
/// #[quadriga::task]
/// fn merge_all(parts: Vec<BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
///     parts.into_iter().fold(BTreeMap::new(), merge)
/// }
///
/// quadriga::init();
/// let texts = ["a b a", "b c", "a"].map(String::from);
/// let pool = ThreadPool::new(2)?;
/// let counts = MapReduce::new(&pool, count, texts.clone()).reduce(merge)?;
/// assert_eq!(counts["a"], 3);
/// let tree = MapReduce::new(&pool, count, texts).reduce_tree(merge_all, 2)?;
/// assert_eq!(tree, counts);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MapReduce<'p, E, T: Task> {
    pool: &'p E,
    task: T,
    inputs: Vec<T::Input>,
    progress: Option<Box<dyn FnMut(Progress) + 'p>>,
}

impl<E, T: Task> fmt::Debug for MapReduce<'_, E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapReduce")
            .field("task", &T::NAME)
            .field("inputs", &self.inputs.len())
            .finish_non_exhaustive()
    }
}

impl<'p, E: Executor, T: Task> MapReduce<'p, E, T> {
    /// `task` over `inputs` on `pool`.
    pub fn new(pool: &'p E, task: T, inputs: impl IntoIterator<Item = T::Input>) -> Self {
        Self {
            pool,
            task,
            inputs: inputs.into_iter().collect(),
            progress: None,
        }
    }

    /// Calls `f` in the caller after each input's task ends.
    pub fn on_progress(mut self, f: impl FnMut(Progress) + 'p) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Folds the partials in the caller with `combine`, in input order, as
    /// they arrive.
    pub fn reduce(
        self,
        mut combine: impl FnMut(T::Output, T::Output) -> T::Output,
    ) -> Result<T::Output, MapReduceError>
    where
        T::Output: Default,
    {
        let Self {
            pool,
            task,
            inputs,
            mut progress,
        } = self;
        let total = inputs.len();
        let mut acc = None;
        let mut failures = Vec::new();
        for (i, result) in pool.map(task, inputs).enumerate() {
            match result {
                Ok(part) if failures.is_empty() => {
                    acc = Some(match acc {
                        None => part,
                        Some(acc) => combine(acc, part),
                    });
                }
                Ok(_) => {}
                Err(e) => failures.push((i, e)),
            }
            if let Some(f) = progress.as_mut() {
                f(Progress { done: i + 1, total });
            }
        }
        if !failures.is_empty() {
            return Err(MapReduceError::new(failures, total));
        }
        Ok(acc.unwrap_or_default())
    }

    /// Folds the partials with the task `combine` on the pool, `fan_in`
    /// (at least 2) neighbours at a time, level by level, until one is left.
    pub fn reduce_tree<C>(self, combine: C, fan_in: usize) -> Result<T::Output, MapReduceError>
    where
        C: Task<Input = Vec<T::Output>, Output = T::Output>,
        T::Output: Default,
    {
        let Self {
            pool,
            task,
            inputs,
            mut progress,
        } = self;
        let fan_in = fan_in.max(2);
        let total = inputs.len();
        let mut failures: Vec<(usize, TaskError)> = Vec::new();
        // Partials waiting for a group, and groups being combined, each
        // under the index of its first input.
        let mut ready: Vec<(usize, T::Output)> = Vec::new();
        let mut combining: Vec<(usize, TaskHandle<T::Output>)> = Vec::new();
        let submit = |group: Vec<(usize, T::Output)>, into: &mut Vec<_>| {
            let first = group[0].0;
            let parts = group.into_iter().map(|(_, p)| p).collect();
            into.push((first, pool.submit(combine, parts)));
        };
        for (i, result) in pool.map(task, inputs).enumerate() {
            match result {
                Ok(part) if failures.is_empty() => {
                    ready.push((i, part));
                    if ready.len() == fan_in {
                        submit(std::mem::take(&mut ready), &mut combining);
                    }
                }
                Ok(_) => {}
                Err(e) => failures.push((i, e)),
            }
            if let Some(f) = progress.as_mut() {
                f(Progress { done: i + 1, total });
            }
        }
        loop {
            // This level, in input order: the groups' results, then the
            // partials left over (all later than every group's).
            let mut level = Vec::with_capacity(combining.len() + ready.len());
            for (first, handle) in combining.drain(..) {
                match handle.join() {
                    Ok(part) => level.push((first, part)),
                    Err(e) => failures.push((first, e)),
                }
            }
            level.append(&mut ready);
            if !failures.is_empty() {
                failures.sort_by_key(|(i, _)| *i);
                return Err(MapReduceError::new(failures, total));
            }
            if level.len() <= 1 {
                return Ok(level.pop().map(|(_, p)| p).unwrap_or_default());
            }
            let mut rest = level.into_iter().peekable();
            while rest.peek().is_some() {
                let group: Vec<_> = rest.by_ref().take(fan_in).collect();
                if group.len() == 1 {
                    ready.extend(group);
                } else {
                    submit(group, &mut combining);
                }
            }
        }
    }
}
