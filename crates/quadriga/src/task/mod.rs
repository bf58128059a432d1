//! The task model: a plain function marked `#[quadriga::task]` becomes a value
//! implementing [`Task`], with a stable name, one input and one output.
//!
//! This is the backend-neutral task core: it knows nothing of threads,
//! processes or brokers, so every backend that runs tasks by name builds on it.
//!
//! * `registry.rs`: every task by its stable name, with a type-erased runner
//!   over encoded batches (what a worker process, or a remote worker, runs);
//! * `batch.rs`: [`Batch`](batch::Batch), items encoded one by one and laid
//!   end to end, so a batch splits into items and one bad item fails alone;
//! * `outcomes.rs`: [`Outcomes`](outcomes::Outcomes), one encoded output or
//!   one error per item of a batch;
//! * `fds.rs`: the descriptors of the IPC objects in a batch's items;
//! * `transfer.rs`: the encoding scope in which an IPC object serialises as an
//!   index into its item's descriptors.

pub(crate) mod batch;
pub(crate) mod fds;
pub(crate) mod outcomes;
pub(crate) mod registry;
pub(crate) mod transfer;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::TaskError;

/// A unit of work that any backend can run: what `#[quadriga::task]` generates.
///
/// A task has a stable [`NAME`](Self::NAME), one [`Input`](Self::Input) (several
/// arguments become a tuple, none become `()`) and one [`Output`](Self::Output). A
/// function returning `Result<T, E>` (with `E: Display`) has output `T`; its
/// `Err(e)` ends the task as [`TaskErrorKind::Failed`](crate::TaskErrorKind::Failed)
/// with `e`'s message.
///
/// The attribute turns `fn square` into a unit value `square` that implements
/// `Task`, is passed to pools by name, and can still be called like the function:
///
/// ```
/// use quadriga::Task;
///
/// /// Squares a number.
/// #[quadriga::task]
/// pub fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// #[quadriga::task]
/// fn add(a: i32, b: i32) -> i32 {
///     a + b
/// }
///
/// assert_eq!(square(3), 9);               // still callable
/// assert_eq!(add.run((2, 3)).unwrap(), 5); // input is the tuple of arguments
/// assert!(square::NAME.ends_with("::square"));
/// ```
///
/// The value `square` is a constant of the unit-like type `square`; in doc
/// links, name the type: ``[`square`](struct@square)``.
///
/// Inputs and outputs are serde-serialisable, so that the same task can run in a
/// worker process or on a remote worker. For closures over arbitrary data on
/// threads, use [`ThreadPool::spawn`](crate::ThreadPool::spawn) instead.
///
/// A custom stable name: `#[quadriga::task(name = "images.resize")]`. Give one
/// to tasks defined inside function bodies: `module_path!()` does not include
/// the function, so two such tasks of the same name in one module would share
/// a name (the process pool then refuses both, rather than guess).
pub trait Task: Copy + Send + Sync + 'static {
    /// The input: the single argument, or a tuple of several.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The output: the return type, or `T` of a returned `Result<T, E>`.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The task's stable name: by default `module::path::function`.
    const NAME: &'static str;

    /// Runs the task on the calling thread. A returned `Err(e)` is reported as a
    /// failed task; panics are caught by the backend, not here.
    fn run(&self, input: Self::Input) -> Result<Self::Output, TaskError>;
}

/// Support for the code `#[quadriga::task]` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    use super::TaskError;
    use std::fmt::Display;

    pub use super::registry::TaskEntry;
    pub use inventory;

    #[inline(always)]
    pub fn ok<T>(value: T) -> Result<T, TaskError> {
        Ok(value)
    }

    #[inline(always)]
    pub fn from_result<T, E: Display>(result: Result<T, E>) -> Result<T, TaskError> {
        result.map_err(TaskError::failed)
    }
}
