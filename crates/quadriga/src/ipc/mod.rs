//! Cross-process communication: typed queues and pipes, plain data in shared
//! memory, and a shared key-value map.
//!
//! Every object here works between threads *and* between processes: clone it
//! for another thread, or put it in a task's input to a
//! [`ProcessPool`](crate::ProcessPool) or [`Process`](crate::Process), the way
//! Python passes a `Queue` in `args`. Its shared memory is an anonymous memfd,
//! private to the user and gone with the last process that maps it.
//!
//! They stand on the crate-private shared-memory foundation (`crate::shm`: the
//! sealed memfd region with its self-describing header, the robust mutex, the
//! futex, the lock guard and results) and on the task core's descriptor scope
//! (`crate::task::transfer`: descriptors passed beside a task's input). They
//! never use [`sync`](crate::sync), nor it them.

mod map;
mod pipe;
mod queue;
mod ring;
mod value;

#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub use crate::shm::fuzz_header;
pub use crate::shm::{Error, ErrorKind};
pub use bytemuck;
pub use map::SharedMap;
pub use pipe::{Pipe, PipeBuilder, pipe};
pub use queue::{DEFAULT_CAPACITY, DEFAULT_SLOT_BYTES, PutError, Queue, QueueBuilder};
pub use value::{Array, ArrayGuard, AtomicArray, AtomicPlain, AtomicValue, Value, ValueGuard};
