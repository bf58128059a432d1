//! Quadriga: one task API over threads, supervised processes and async.
//!
//! Mark a plain function as a task, hand it to a pool, and get back handles,
//! ordered lazy maps and one error type, whichever backend runs it:
//!
//! ```
//! use quadriga::ThreadPool;
//!
//! #[quadriga::task]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     quadriga::init();
//!     let pool = ThreadPool::new(4)?;
//!
//!     // One task: a handle you can join, poll, cancel or `.await`.
//!     let handle = pool.submit(square, 12);
//!     assert_eq!(handle.join()?, 144);
//!
//!     // Many: ordered, lazy, bounded, chunked automatically.
//!     let squares: Vec<u64> = pool.map(square, 1..=5).collect::<Result<_, _>>()?;
//!     assert_eq!(squares, [1, 4, 9, 16, 25]);
//!     Ok(())
//! }
//! ```
//!
//! # The pieces
//!
//! * [`#[task]`](macro@task) and [`Task`]: a function with a stable name, one
//!   input (several arguments become a tuple) and one output. A task returning
//!   `Result<T, E>` ends as *failed* on `Err`, not as a panic.
//! * [`TaskHandle`]: `join`, `wait_timeout` (does not cancel), `is_finished`,
//!   `cancel`, `id`, and `Future` on any executor.
//! * [`TaskError`]: one error type from every backend; its [`TaskErrorKind`] is
//!   panicked, failed, crashed, timed out, cancelled, lost or codec. Panics are
//!   data: message, location and backtrace.
//! * [`ThreadPool`]: `spawn`, `submit`, `map`, `map_unordered`, `scope`,
//!   `shutdown`. [`Executor`] is the trait every backend implements.
//! * [`wait`] and [`as_completed`]: wait on many handles, as
//!   `concurrent.futures` does.
//! * [`cancel_token`] / [`is_cancelled`]: cooperative cancellation inside a task.
//! * [`adapt`]: [`ConcurrencyController`](adapt::ConcurrencyController), the
//!   concurrency chosen by measurement behind `quadriga run -j auto` and
//!   `aio::Limit::auto`.
//! * [`ipc`]: `Queue`, `Pipe`, `Value`, `Array` and `SharedMap` in shared
//!   memory, and [`sync`]: `Lock`, `Semaphore`, `Event`, `Barrier`. Each works
//!   between threads and between processes (pass it in a task's input); a
//!   process that dies holding a lock hands it on, never deadlocks the rest.
//! * `quadriga::aio` (cargo feature `async`): `gather`, `try_gather`,
//!   `TaskGroup`, `timeout` and `bounded` concurrency on tokio, structured
//!   (cancelling is dropping, and nothing outlives its group), and the glue
//!   that awaits pool tasks from async code.
//!
//! Nothing hangs and nothing is lost: every submitted task ends in exactly one
//! output or one [`TaskError`].

// Lets `#[quadriga::task]` expand to `::quadriga::...` inside this crate too.
extern crate self as quadriga;

pub mod adapt;
#[cfg(feature = "async")]
pub mod aio;
pub mod child;
#[cfg(feature = "cluster")]
pub mod cluster;
mod context;
pub mod data;
mod error;
mod executor;
#[cfg(all(feature = "fault-injection", not(quadriga_loom)))]
#[doc(hidden)]
pub mod fault;
mod handle;
mod init;
pub mod ipc;
mod loom;
mod map;
mod panic;
mod process;
mod shm;
pub mod sync;
mod task;
mod thread;
mod wait;

/// A named crash point for the fault-injection tests (see `fault.rs`):
/// nothing at all without the hidden `fault-injection` feature.
macro_rules! fault_point {
    ($name:literal) => {
        #[cfg(all(feature = "fault-injection", not(quadriga_loom)))]
        $crate::fault::point($name);
    };
}
pub(crate) use fault_point;

/// A named failure point for the fault-injection tests (see `fault.rs`): the
/// `rustix::io::Errno` armed for it, if any; always `None` without the hidden
/// `fault-injection` feature.
macro_rules! fault_errno {
    ($name:literal) => {{
        #[cfg(all(feature = "fault-injection", not(quadriga_loom)))]
        let errno = $crate::fault::errno_point($name).map(rustix::io::Errno::from_raw_os_error);
        #[cfg(not(all(feature = "fault-injection", not(quadriga_loom))))]
        let errno: Option<rustix::io::Errno> = None;
        errno
    }};
}
pub(crate) use fault_errno;

pub use context::{CancelToken, cancel_token, is_cancelled};
pub use error::{BuildError, PanicLocation, TaskError, TaskErrorKind};
pub use executor::{Executor, Shutdown};
pub use handle::{AbortOnDrop, TaskHandle};
pub use init::{init, is_worker};
pub use map::{Map, MapUnordered};
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub use process::fuzz_decode;
pub use process::{Process, ProcessHandle, ProcessPool, ProcessPoolBuilder};
#[doc(hidden)]
pub use task::__private;
pub use task::Task;
pub use thread::{Insights, Scope, ThreadPool, ThreadPoolBuilder, WorkerInsights};
pub use wait::{AsCompleted, WaitFor, as_completed, wait};

/// Makes a plain function a [`Task`]: `#[quadriga::task]`.
///
/// The function `fn name(args) -> R` becomes a unit value `name` that
/// implements [`Task`] with the stable name `module::path::name` (or
/// `#[quadriga::task(name = "...")]`), is passed to pools by name, and can
/// still be called as a function. See [`Task`] for the rules.
///
/// ```
/// #[quadriga::task(name = "math.cube")]
/// fn cube(x: i64) -> i64 {
///     x * x * x
/// }
///
/// use quadriga::Task;
/// assert_eq!(cube::NAME, "math.cube");
/// assert_eq!(cube(3), 27);
/// ```
pub use quadriga_macros::task;

/// The README's Rust examples run as doctests, so the tour cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
