//! The supervisor: one thread that multiplexes every worker of a pool with
//! `epoll` over their sockets and pidfds, plus an eventfd for commands.
//!
//! It is two halves:
//!
//! * `core.rs`, the rules as a state machine without I/O: it is fed events
//!   (a caller's command, a worker spawned, a frame from a worker, a death, a
//!   write's result, a tick) with the time they happened, and returns actions
//!   (spawn, send, signal, deliver outcomes). Its tests (`tests.rs`) drive it
//!   with a synthetic clock and synthetic workers, no process involved.
//! * `shell.rs`, the I/O: the sockets, and the child-process layer
//!   ([`crate::child`]: its `Poller`, `reap`, `signal_group`) for epoll,
//!   reaping and signalling, turning what happens into events and actions into
//!   system calls.
//!
//! Beside them: `job.rs` (jobs, sinks, commands), `split.rs` (a crashed chunk
//! rerun item by item), `waker.rs` (how callers wake the thread). Stopping a
//! worker (SIGTERM, grace, SIGKILL) is a [`crate::child::Escalation`] that the
//! core keeps per worker and tells the time.
//!
//! # Invariants
//!
//! * Each job is in exactly one place: the queue, one worker's `outstanding`
//!   list, or finished (its sink consumed). A job's sink is called at most once;
//!   a sink dropped unfinished resolves its handle or chunk as cancelled.
//! * A worker runs its `outstanding` jobs in order, so the head is the one
//!   running; the others have not started. When a worker dies, only the head is
//!   failed (or retried, or split into single items if it was a chunk); the
//!   others go back to the front of the queue.
//! * Timeouts apply to the head, from when it became the head. A timed-out job
//!   fails at once; its worker's process group gets SIGTERM, then SIGKILL after
//!   the grace period.
//! * Every worker is reaped through its pidfd; after it dies its process group
//!   gets SIGKILL, so no grandchild outlives it; its descriptors are closed.
//! * A worker's byte stream is never cut inside a frame. A send that fails for
//!   want of a kernel resource (`ETOOMANYREFS`: too many descriptors in
//!   flight) keeps everything and is retried on a timer, backing off; if the
//!   worker waits for that very frame and nothing moves for
//!   `wire::Stall::LIMIT`, or on any other error, the worker is killed and its
//!   jobs go the way of any death (the head is retried, split or failed).

mod core;
mod job;
mod shell;
mod split;
mod waker;

#[cfg(test)]
mod tests;

pub(crate) use job::{Command, Job, Sink};
pub(crate) use shell::{Config, Supervisor};
pub(crate) use waker::Waker;
