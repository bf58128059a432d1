//! Cross-process communication: typed queues and pipes, plain data in shared
//! memory, and a shared key-value map.
//!
//! Every object here works between threads *and* between processes: clone it
//! for another thread, or put it in a task's input to a
//! [`ProcessPool`](crate::ProcessPool) or [`Process`](crate::Process), the way
//! Python passes a `Queue` in `args`. Its shared memory is an anonymous memfd,
//! private to the user and gone with the last process that maps it.
//!
//! The shared building blocks (crate-private) are:
//! * `shm`: a sealed memfd mapping with a self-describing header;
//! * `transfer`: descriptors passed beside a task's input (`SCM_RIGHTS`);
//! * `robust`: the process-shared robust mutex (a dead holder is reported to
//!   the next taker, never a deadlock);
//! * `futex`: waiting on a word in shared memory.

mod error;
pub(crate) mod futex;
mod map;
mod pipe;
mod queue;
mod ring;
pub(crate) mod robust;
pub(crate) mod shm;
pub(crate) mod transfer;
mod value;

pub use bytemuck;
pub use error::{Error, ErrorKind};
pub use map::SharedMap;
pub use pipe::{Pipe, PipeBuilder, pipe};
pub use queue::{DEFAULT_CAPACITY, DEFAULT_SLOT_BYTES, PutError, Queue, QueueBuilder};
#[doc(hidden)]
pub use shm::fuzz_header;
pub use value::{Array, ArrayGuard, AtomicArray, AtomicPlain, AtomicValue, Value, ValueGuard};
