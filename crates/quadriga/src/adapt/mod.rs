//! `adapt`: how many jobs to run at once, decided by measurement.
//!
//! [`ConcurrencyController`] is the engine of `quadriga run -j auto`, and is
//! meant to be shared by anything that runs jobs with a variable concurrency
//! (a pool's size, an async limit). It knows nothing about processes: its
//! caller tells it when each job started, when it finished and how much CPU
//! time it used, and reads back [`limit`](ConcurrencyController::limit).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use quadriga::adapt::ConcurrencyController;
//!
//! let mut auto = ConcurrencyController::new(4);
//! let t0 = Instant::now();
//! let tickets: Vec<_> = (0..auto.limit()).map(|_| auto.job_started(t0)).collect();
//! for t in tickets {
//!     // CPU-bound: each job used its whole wall time on a CPU.
//!     if let Some(d) = auto.job_finished(t, Duration::from_millis(100), t0 + Duration::from_millis(100)) {
//!         println!("{d}");
//!     }
//! }
//! assert_eq!(auto.limit(), 4);
//! ```
//!
//! # How it decides
//!
//! Per job it learns two things: CPU time over wall time (`cpu/wall`: about
//! 1 for CPU-bound work, near 0 for a job that waits), and the concurrency
//! the job ran at (the time-average of the running count over its life,
//! from an integral the controller keeps). Over the latest jobs started at
//! the current level, Little's law gives the throughput: mean concurrency
//! over mean wall time. Then:
//!
//! 1. It starts at the core count. If the jobs keep at least 75% of the
//!    cores busy (concurrency × cpu/wall), it holds: CPU-bound.
//! 2. Otherwise it climbs: ×2, or, when cpu/wall says the cores would only
//!    fill at four or more times the current level, towards twice that level
//!    (at most ×16 per step, or up to 64): a sleep-like job reaches hundreds
//!    of jobs in two job-durations, and a job whose wait overlaps someone else's CPU (a
//!    local server) is not held at the level its own CPU time suggests.
//! 3. Each step up by a factor r must raise throughput by at least half the
//!    ideal (1 + (r − 1)/2). A step that gained less, but still gained, has
//!    the knee inside it: it bisects (geometrically) until the bracket is
//!    narrow, then settles at the lowest level measured within 90% of the
//!    best throughput. A step that gained nothing settles back the same way.
//! 4. Settled with CPU to spare, it probes one step higher after 16 jobs
//!    (the workload may have changed); with the cores saturated above the
//!    minimum, it tries half as many after 64 jobs and keeps that if
//!    throughput holds within 90% (oversubscribed CPUs show as saturated, not
//!    as more than saturated, so only a step down can tell: multi-threaded
//!    jobs, or a workload that turned CPU-bound). A probe up also waits for
//!    two generations of jobs (twice the level), a probe down for one; each
//!    interval doubles after a probe, or a climb, that finds nothing.
//!
//! 5. A caller that can tell how long each job waited, runnable, for a CPU
//!    ([`job_finished_waited`](ConcurrencyController::job_finished_waited);
//!    the thread pool does) counts that wait as CPU time the job wanted. If
//!    the jobs were runnable for at least 75% of their wall time and want at
//!    least twice the cores, the level is oversubscribed: it is cut at once to the level
//!    whose demand the cores meet (never below one job per core for
//!    single-threaded jobs), and settles there.
//!
//! Bounds ([`LimitBound`]): a maximum (256 by default), the open-file limit
//! and free memory, set by the caller in jobs; a bound below the limit lowers
//! it at once. Every change, and every change of phase, is a
//! [`LimitDecision`] with a [`LimitReason`] that quotes the measurement
//! behind it.
//!
//! # Invariants
//!
//! - `min ≤ limit ≤ max(min, the tightest bound)`, always.
//! - A level is judged only by jobs started at that level: every change of
//!   the limit starts a new epoch, and samples from older epochs only update
//!   the running count.
//! - Time comes only from the caller (`Instant`s passed in), so the
//!   controller is deterministic and the unit tests drive it with synthetic
//!   feeds; timestamps out of order are tolerated (time never runs back).

mod controller;
mod decision;
mod window;

pub use controller::{ConcurrencyController, JobTicket};
pub use decision::{LimitBound, LimitDecision, LimitReason};
