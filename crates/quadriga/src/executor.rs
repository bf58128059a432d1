//! The [`Executor`] trait: the calls every backend answers the same way.

use crate::error::TaskError;
use crate::handle::TaskHandle;
use crate::task::Task;

/// How [`Executor::shutdown`] treats work already submitted.
///
/// ```
/// use quadriga::Shutdown;
/// assert_ne!(Shutdown::Wait, Shutdown::Cancel);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Run everything already submitted, then stop.
    Wait,
    /// Cancel what has not started (it never runs), signal what runs, then stop.
    Cancel,
}

/// What every backend offers ([`ThreadPool`](crate::ThreadPool) and
/// [`ProcessPool`](crate::ProcessPool) today; a cluster client later), so a
/// program switches backend by changing one line.
///
/// ```
/// use quadriga::{Executor, Shutdown, ThreadPool};
///
/// #[quadriga::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn sum_of_squares(pool: &impl Executor, n: u64) -> u64 {
///     pool.map(square, 1..=n).map(Result::unwrap).sum()
/// }
///
/// let pool = ThreadPool::new(2)?;
/// assert_eq!(sum_of_squares(&pool, 3), 14);
/// Executor::shutdown(&pool, Shutdown::Wait);
/// # Ok::<(), quadriga::BuildError>(())
/// ```
pub trait Executor {
    /// Runs `task(input)` and returns its handle.
    fn submit<T: Task>(&self, task: T, input: T::Input) -> TaskHandle<T::Output>;

    /// An ordered, lazy, bounded, automatically chunked parallel map.
    fn map<T, I>(&self, task: T, inputs: I) -> impl Iterator<Item = Result<T::Output, TaskError>>
    where
        T: Task,
        I: IntoIterator<Item = T::Input>;

    /// Like `map`, yielding `(input index, result)` in completion order.
    fn map_unordered<T, I>(
        &self,
        task: T,
        inputs: I,
    ) -> impl Iterator<Item = (usize, Result<T::Output, TaskError>)>
    where
        T: Task,
        I: IntoIterator<Item = T::Input>;

    /// Stops accepting work and waits for, or cancels, what was submitted.
    fn shutdown(&self, mode: Shutdown);
}

/// Implements [`Executor`] for a pool by forwarding to its inherent methods of
/// the same names, so every backend answers the trait exactly as it answers
/// direct calls.
macro_rules! forward_executor {
    ($pool:ty) => {
        impl $crate::executor::Executor for $pool {
            fn submit<T: $crate::task::Task>(
                &self,
                task: T,
                input: T::Input,
            ) -> $crate::handle::TaskHandle<T::Output> {
                <$pool>::submit(self, task, input)
            }

            fn map<T, I>(
                &self,
                task: T,
                inputs: I,
            ) -> impl Iterator<Item = Result<T::Output, $crate::error::TaskError>>
            where
                T: $crate::task::Task,
                I: IntoIterator<Item = T::Input>,
            {
                <$pool>::map(self, task, inputs)
            }

            fn map_unordered<T, I>(
                &self,
                task: T,
                inputs: I,
            ) -> impl Iterator<Item = (usize, Result<T::Output, $crate::error::TaskError>)>
            where
                T: $crate::task::Task,
                I: IntoIterator<Item = T::Input>,
            {
                <$pool>::map_unordered(self, task, inputs)
            }

            fn shutdown(&self, mode: $crate::executor::Shutdown) {
                <$pool>::shutdown(self, mode);
            }
        }
    };
}

pub(crate) use forward_executor;
