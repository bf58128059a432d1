//! [`Isolation`]: how a cluster worker runs the tasks it takes.

/// How a [`Worker`](super::Worker) runs its tasks.
///
/// With [`Threads`](Self::Threads) an entry runs on one of the worker's
/// threads: cheapest, but a task that crashes the process (a segfault, an
/// abort, running out of memory) takes the worker down, and its entries come
/// back to other workers only after a lease. With
/// [`Processes`](Self::Processes) each entry runs in a supervised child
/// process of the worker (the local [`ProcessPool`](crate::ProcessPool)): a
/// crash or a hang fails that one task (`crashed`, `timed_out`), the worker
/// carries on, a time limit kills there, and a cancelled task's child is
/// killed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Isolation {
    /// Each entry on a thread of the worker process (the default).
    #[default]
    Threads,
    /// Each entry in a supervised child process of the worker.
    Processes,
}
