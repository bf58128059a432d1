//! `Send`, `Sync` and `Unpin` of every public type, pinned at compile time.
//!
//! Auto traits change silently: one new field (an `Rc`, a raw pointer, a
//! `PhantomData<T>` where `PhantomData<fn(T) -> T>` was meant) and a type
//! stops being `Send`, or starts being `Sync`, with no error anywhere in the
//! crate. This file states what is true today, both ways, so that any such
//! change breaks the build here and has to be made on purpose.
//!
//! Compiling this file is the test. `Type => [Send, !Sync, Unpin]` asserts
//! that `Type` is `Send`, is **not** `Sync`, and is `Unpin`:
//!
//! * a missing impl fails with the usual "`X` cannot be sent between threads
//!   safely" (or shared, or unpinned) pointing at the row;
//! * an impl that appeared where `!Trait` is pinned fails with "type
//!   annotations needed" (E0283/E0790) at the row: two impls of a helper trait
//!   then apply, one for every type and one for types with the trait.
//!
//! Generic types are pinned with stand-ins for their parameters: `u64`
//! (`Send + Sync + Unpin`), `Cell<u64>` (`Send`, not `Sync`), `Rc<u64>`
//! (neither) and `PhantomPinned` (not `Unpin`), so that each row also says
//! whether the type follows its parameter or not.

#![allow(dead_code)]

use std::cell::Cell;
use std::marker::PhantomPinned;
use std::rc::Rc;

/// Asserts the listed auto traits of each type, present or `!`absent.
macro_rules! pin_traits {
    ($($t:ty => [$($flags:tt)+]),+ $(,)?) => {
        $(pin_traits!(@one [$t] $($flags)+);)+
    };
    (@one [$t:ty] ! $tr:ident $(, $($rest:tt)+)?) => {
        const _: fn() = || {
            // Two candidate impls for types with `$tr`, one for the rest: the
            // inferred `_` below is ambiguous exactly when `$t: $tr`.
            trait Ambiguous<A> {
                fn check() {}
            }
            impl<T: ?Sized> Ambiguous<()> for T {}
            struct WhenImplemented;
            impl<T: ?Sized + $tr> Ambiguous<WhenImplemented> for T {}
            let _ = <$t as Ambiguous<_>>::check;
        };
        $(pin_traits!(@one [$t] $($rest)+);)?
    };
    (@one [$t:ty] $tr:ident $(, $($rest:tt)+)?) => {
        const _: fn() = || {
            fn check<T: ?Sized + $tr>() {}
            check::<$t>();
        };
        $(pin_traits!(@one [$t] $($rest)+);)?
    };
}

#[quadriga::task]
fn square(x: u64) -> u64 {
    x * x
}

/// An iterator that may not leave its thread.
type LocalIter = Box<dyn Iterator<Item = u64>>;
/// An iterator that may move but not be shared.
type SendIter = Box<dyn Iterator<Item = u64> + Send>;

// Pools, builders, scopes: everything is shareable, so a pool can sit in an
// `Arc` or a `static` and be used from any thread.
pin_traits! {
    quadriga::ThreadPool => [Send, Sync, Unpin],
    quadriga::ThreadPoolBuilder => [Send, Sync, Unpin],
    quadriga::ProcessPool => [Send, Sync, Unpin],
    quadriga::ProcessPoolBuilder => [Send, Sync, Unpin],
    quadriga::Scope<'static, 'static> => [Send, Sync, Unpin],
    quadriga::Process => [Send, Sync, Unpin],
    quadriga::Shutdown => [Send, Sync, Unpin],
    quadriga::WaitFor => [Send, Sync, Unpin],
    quadriga::CancelToken => [Send, Sync, Unpin],
    quadriga::Insights => [Send, Sync, Unpin],
    quadriga::WorkerInsights => [Send, Sync, Unpin],
}

// Handles follow their output (`Send`/`Sync` only if `T: Send`; the output
// sits behind the handle's lock, so `Cell` is fine) and are always `Unpin`:
// a handle is awaited without pinning it.
pin_traits! {
    quadriga::TaskHandle<u64> => [Send, Sync, Unpin],
    quadriga::TaskHandle<Cell<u64>> => [Send, Sync, Unpin],
    quadriga::TaskHandle<Rc<u64>> => [!Send, !Sync, Unpin],
    quadriga::TaskHandle<PhantomPinned> => [Send, Sync, Unpin],
    quadriga::AbortOnDrop<u64> => [Send, Sync, Unpin],
    quadriga::AbortOnDrop<Cell<u64>> => [Send, Sync, Unpin],
    quadriga::AbortOnDrop<Rc<u64>> => [!Send, !Sync, Unpin],
    quadriga::AbortOnDrop<PhantomPinned> => [Send, Sync, Unpin],
    quadriga::ProcessHandle<u64> => [Send, Sync, Unpin],
    quadriga::ProcessHandle<Cell<u64>> => [Send, Sync, Unpin],
    quadriga::ProcessHandle<Rc<u64>> => [!Send, !Sync, Unpin],
    quadriga::ProcessHandle<PhantomPinned> => [Send, Sync, Unpin],
    quadriga::AsCompleted<u64> => [Send, Sync, Unpin],
    quadriga::AsCompleted<Cell<u64>> => [Send, Sync, Unpin],
    quadriga::AsCompleted<Rc<u64>> => [!Send, !Sync, Unpin],
}

// Maps follow their input iterator, which they hold and advance.
pin_traits! {
    quadriga::Map<'static, square, std::ops::Range<u64>> => [Send, Sync, Unpin],
    quadriga::Map<'static, square, SendIter> => [Send, !Sync, Unpin],
    quadriga::Map<'static, square, LocalIter> => [!Send, !Sync, Unpin],
    quadriga::MapUnordered<'static, square, std::ops::Range<u64>> => [Send, Sync, Unpin],
    quadriga::MapUnordered<'static, square, SendIter> => [Send, !Sync, Unpin],
    quadriga::MapUnordered<'static, square, LocalIter> => [!Send, !Sync, Unpin],
}

// Errors: plain data, so they cross threads and fit in `Box<dyn Error + Send
// + Sync>`.
pin_traits! {
    quadriga::TaskError => [Send, Sync, Unpin],
    quadriga::TaskErrorKind => [Send, Sync, Unpin],
    quadriga::PanicLocation => [Send, Sync, Unpin],
    quadriga::BuildError => [Send, Sync, Unpin],
    quadriga::ipc::Error => [Send, Sync, Unpin],
    quadriga::ipc::ErrorKind => [Send, Sync, Unpin],
}

// IPC objects. Queue, Pipe and SharedMap hold their items encoded in shared
// memory, so they are `Send + Sync` whatever the item type. Value and Array
// hold a `T` in place and follow it; the atomics follow it too.
pin_traits! {
    quadriga::ipc::Queue<u64> => [Send, Sync, Unpin],
    quadriga::ipc::Queue<Cell<u64>> => [Send, Sync, Unpin],
    quadriga::ipc::Queue<Rc<u64>> => [Send, Sync, Unpin],
    quadriga::ipc::QueueBuilder<u64> => [Send, Sync, Unpin],
    quadriga::ipc::QueueBuilder<Rc<u64>> => [Send, Sync, Unpin],
    quadriga::ipc::PutError<u64> => [Send, Sync, Unpin],
    quadriga::ipc::PutError<Cell<u64>> => [Send, !Sync, Unpin],
    quadriga::ipc::PutError<Rc<u64>> => [!Send, !Sync, Unpin],
    quadriga::ipc::Pipe<u64> => [Send, Sync, Unpin],
    quadriga::ipc::Pipe<Cell<u64>> => [Send, Sync, Unpin],
    quadriga::ipc::Pipe<Rc<u64>> => [Send, Sync, Unpin],
    quadriga::ipc::PipeBuilder<u64> => [Send, Sync, Unpin],
    quadriga::ipc::SharedMap<u64, u64> => [Send, Sync, Unpin],
    quadriga::ipc::SharedMap<Rc<u64>, Cell<u64>> => [Send, Sync, Unpin],
    quadriga::ipc::Value<u64> => [Send, Sync, Unpin],
    quadriga::ipc::Value<Cell<u64>> => [Send, !Sync, Unpin],
    quadriga::ipc::Value<Rc<u64>> => [!Send, !Sync, Unpin],
    quadriga::ipc::Array<u64> => [Send, Sync, Unpin],
    quadriga::ipc::Array<Rc<u64>> => [!Send, !Sync, Unpin],
    quadriga::ipc::AtomicValue<u64> => [Send, Sync, Unpin],
    quadriga::ipc::AtomicValue<Rc<u64>> => [!Send, !Sync, Unpin],
    quadriga::ipc::AtomicArray<u64> => [Send, Sync, Unpin],
    quadriga::ipc::AtomicArray<Rc<u64>> => [!Send, !Sync, Unpin],
}

// Locks. The objects are shared freely; their guards are neither `Send` nor
// `Sync`, whatever they guard: a robust mutex belongs to the thread that
// took it (its robust list), so a guard must be dropped there.
pin_traits! {
    quadriga::ipc::ValueGuard<'static, u64> => [!Send, !Sync, Unpin],
    quadriga::ipc::ArrayGuard<'static, u64> => [!Send, !Sync, Unpin],
    quadriga::sync::Lock => [Send, Sync, Unpin],
    quadriga::sync::LockGuard<'static> => [!Send, !Sync, Unpin],
    quadriga::sync::Semaphore => [Send, Sync, Unpin],
    quadriga::sync::Permit<'static> => [!Send, !Sync, Unpin],
    quadriga::sync::Event => [Send, Sync, Unpin],
    quadriga::sync::Barrier => [Send, Sync, Unpin],
    quadriga::sync::BarrierWaitResult => [Send, Sync, Unpin],
    quadriga::sync::OwnerDied<quadriga::sync::LockGuard<'static>> => [!Send, !Sync, Unpin],
    quadriga::sync::OwnerDied<quadriga::sync::Permit<'static>> => [!Send, !Sync, Unpin],
    quadriga::sync::OwnerDied<quadriga::ipc::ValueGuard<'static, u64>> => [!Send, !Sync, Unpin],
    quadriga::sync::OwnerDied<u64> => [Send, Sync, Unpin],
    quadriga::sync::TryLockError<quadriga::sync::LockGuard<'static>> => [!Send, !Sync, Unpin],
    quadriga::sync::TryLockError<u64> => [Send, Sync, Unpin],
}

// The concurrency controller and what it reports: plain data.
pin_traits! {
    quadriga::adapt::ConcurrencyController => [Send, Sync, Unpin],
    quadriga::adapt::JobTicket => [Send, Sync, Unpin],
    quadriga::adapt::LimitBound => [Send, Sync, Unpin],
    quadriga::adapt::LimitDecision => [Send, Sync, Unpin],
    quadriga::adapt::LimitReason => [Send, Sync, Unpin],
}

/// The futures `bounded` is given in the rows below.
#[cfg(feature = "async")]
type Ready = std::future::Ready<Result<u64, quadriga::TaskError>>;
/// A stream of them.
#[cfg(feature = "async")]
type Source = quadriga::aio::FromIter<std::vec::IntoIter<Ready>>;

// Async. A group is `Send + Sync` when its output is `Send` (`Cell` is
// fine) and `Unpin` whatever it holds; `Bounded` follows its
// source stream in all three and its output in `Send`/`Sync`; `FromIter` is
// `Unpin` always (it never pins its iterator).
#[cfg(feature = "async")]
pin_traits! {
    quadriga::aio::Limit => [Send, Sync, Unpin],
    quadriga::aio::TaskGroup<u64> => [Send, Sync, Unpin],
    quadriga::aio::TaskGroup<Cell<u64>> => [Send, Sync, Unpin],
    quadriga::aio::TaskGroup<Rc<u64>> => [!Send, !Sync, Unpin],
    quadriga::aio::TaskGroup<PhantomPinned> => [Send, Sync, Unpin],
    Source => [Send, Sync, Unpin],
    quadriga::aio::FromIter<std::vec::IntoIter<Rc<u64>>> => [!Send, !Sync, Unpin],
    quadriga::aio::FromIter<std::vec::IntoIter<PhantomPinned>> => [Send, Sync, Unpin],
    quadriga::aio::Bounded<Source, u64> => [Send, Sync, Unpin],
    quadriga::aio::Bounded<Source, Cell<u64>> => [Send, Sync, Unpin],
    quadriga::aio::Bounded<Source, Rc<u64>> => [!Send, !Sync, Unpin],
    quadriga::aio::Bounded<Cell<u64>, u64> => [Send, !Sync, Unpin],
    quadriga::aio::Bounded<Rc<u64>, u64> => [!Send, !Sync, Unpin],
    quadriga::aio::Bounded<PhantomPinned, u64> => [Send, Sync, !Unpin],
}

/// A `Token` for the poller rows.
#[derive(Clone, Copy)]
struct Tok;
impl quadriga::child::Token for Tok {
    fn to_parts(self) -> (u8, u64) {
        (0, 0)
    }
    fn from_parts(_: u8, _: u64) -> Option<Self> {
        Some(Tok)
    }
}

// Child processes: plain values and owned descriptors, all movable and
// shareable (an event loop is built on one thread and run on another).
pin_traits! {
    quadriga::child::Child => [Send, Sync, Unpin],
    quadriga::child::Exit => [Send, Sync, Unpin],
    quadriga::child::Signal => [Send, Sync, Unpin],
    quadriga::child::Escalation => [Send, Sync, Unpin],
    quadriga::child::Interest => [Send, Sync, Unpin],
    quadriga::child::Event<Tok> => [Send, Sync, Unpin],
    quadriga::child::Poller<Tok> => [Send, Sync, Unpin],
    quadriga::child::SignalPipe => [Send, Sync, Unpin],
}

#[quadriga::task]
fn count_lines(part: quadriga::data::Partition) -> u64 {
    part.len()
}

// Data: partitions and their readers are plain values; `MapReduce` holds a
// progress callback that need not be `Send`, so it stays on its thread.
pin_traits! {
    quadriga::data::Partition => [Send, Sync, Unpin],
    quadriga::data::Partitioner => [Send, Sync, Unpin],
    quadriga::data::Terminator => [Send, Sync, Unpin],
    quadriga::data::Key => [Send, Sync, Unpin],
    quadriga::data::Records => [Send, Sync, Unpin],
    quadriga::data::Record<'static> => [Send, Sync, Unpin],
    quadriga::data::Progress => [Send, Sync, Unpin],
    quadriga::data::DataError => [Send, Sync, Unpin],
    quadriga::data::MapReduceError => [Send, Sync, Unpin],
    quadriga::data::csv::Header => [Send, Sync, Unpin],
    quadriga::data::csv::FieldSplitter => [Send, Sync, Unpin],
    quadriga::data::csv::Fields<'static> => [Send, Sync, Unpin],
    quadriga::data::MapReduce<'static, quadriga::ThreadPool, count_lines> => [!Send, !Sync, Unpin],
}

// The cluster: the pool is shared by threads like the local pools. The
// broker, reader and worker own a connection each (the redis crate's cluster
// client keeps its slot map in `RefCell`s): they move between threads but are
// used by one at a time; a worker is stopped through its `WorkerStop`.
#[cfg(feature = "cluster")]
pin_traits! {
    quadriga::cluster::ClusterPool => [Send, Sync, Unpin],
    quadriga::cluster::ClusterPoolBuilder => [Send, Sync, Unpin],
    quadriga::cluster::Worker => [Send, !Sync, Unpin],
    quadriga::cluster::WorkerBuilder => [Send, Sync, Unpin],
    quadriga::cluster::WorkerStop => [Send, Sync, Unpin],
    quadriga::cluster::WorkerReport => [Send, Sync, Unpin],
    quadriga::cluster::Isolation => [Send, Sync, Unpin],
    quadriga::cluster::Broker => [Send, !Sync, Unpin],
    quadriga::cluster::BrokerConfig => [Send, Sync, Unpin],
    quadriga::cluster::Reader => [Send, !Sync, Unpin],
    quadriga::cluster::TaskId => [Send, Sync, Unpin],
    quadriga::cluster::Entry => [Send, Sync, Unpin],
    quadriga::cluster::Outcome => [Send, Sync, Unpin],
    quadriga::cluster::Error => [Send, Sync, Unpin],
    quadriga::cluster::ErrorKind => [Send, Sync, Unpin],
    quadriga::cluster::Status => [Send, Sync, Unpin],
    quadriga::cluster::WorkerInfo => [Send, Sync, Unpin],
    quadriga::cluster::QueueReader => [Send, !Sync, Unpin],
    quadriga::cluster::DeadLetterInfo => [Send, Sync, Unpin],
    quadriga::cluster::Requeued => [Send, Sync, Unpin],
    quadriga::cluster::Failure => [Send, Sync, Unpin],
    quadriga::cluster::CurrentTask => [Send, Sync, Unpin],
    quadriga::cluster::Chunk => [Send, Sync, Unpin],
    quadriga::cluster::Appended => [Send, Sync, Unpin],
    quadriga::cluster::OutputStream => [Send, Sync, Unpin],
}

/// The assertions above are checked by the compiler; this only gives the
/// file a test to list, so that `cargo test --test send_sync` shows it ran.
#[test]
fn auto_traits_are_pinned_at_compile_time() {}
