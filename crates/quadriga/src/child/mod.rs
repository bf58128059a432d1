//! Child processes: start them, watch them, signal them, reap them.
//!
//! The one layer under everything in Quadriga that runs another program: the
//! process pool's workers, [`Process`](crate::Process), and the `quadriga run`
//! command's jobs. It owns the system calls; its users own the policy.
//!
//! - [`spawn`]: a [`Command`](std::process::Command) started as the leader of
//!   its own process group, with a pidfd (and, if asked, pipes for stdout and
//!   stderr): a [`Child`].
//! - [`reap`]: the exit status and resource usage of a child, by its pidfd, as
//!   an [`Exit`] (exit code or signal, CPU time, peak RSS).
//! - [`signal_group`], [`group_alive`]: the child's whole process group.
//! - [`Escalation`]: SIGTERM now, SIGKILL after a grace period (or SIGKILL
//!   at once), as a value that is told the time (no clock, no I/O inside, so
//!   event loops share it and tests drive it with a synthetic clock).
//! - [`Poller`]: `epoll` with typed tokens ([`Token`]) and deadlines.
//! - [`SignalPipe`]: SIGINT, SIGTERM and SIGHUP turned into bytes on a pipe that
//!   an event loop can wait on.
//! - [`mem_available`], [`runnable_processes`], [`raise_nofile_limit`],
//!   [`self_cpu`], [`cores`]: readings of this machine and this process.
//!
//! # Invariants
//!
//! - **No fork of a threaded parent.** [`spawn`] adds nothing between fork and
//!   exec (no `pre_exec` hook), so the standard library uses `posix_spawn`, a
//!   vfork-style clone. Callers must not add a `pre_exec` hook either: what such
//!   a hook would do, the child does to itself (the process pool's worker
//!   does, first thing).
//! - **No pid-reuse race.** A child is reaped only through its pidfd
//!   (`waitid(P_PIDFD)`), and only by whoever holds that pidfd. Until it is
//!   reaped a dead child stays a zombie, so its pid (and its process group id,
//!   the same number) cannot name another process while [`signal_group`] may
//!   still be called with it. Signal a group only before you reap its leader,
//!   or right after, from the same thread.
//! - **One group per child.** Every child leads its own process group, so a
//!   signal reaches everything it started (unless a descendant left the group
//!   on purpose).
//! - **No leaked descriptors.** Every descriptor made here is close-on-exec;
//!   the child's ends of its pipes (and anything else the caller gave its
//!   `Command`) are closed in the parent as soon as it has started.

mod escalation;
mod exit;
mod group;
mod poller;
mod signals;
mod spawn;
mod sys;

pub use escalation::Escalation;
pub use exit::{Exit, reap};
pub use group::{Signal, group_alive, signal_group};
pub use poller::{Event, Interest, Poller, Token};
pub use signals::SignalPipe;
pub use spawn::{Child, spawn};
pub use sys::{cores, mem_available, raise_nofile_limit, runnable_processes, self_cpu};
