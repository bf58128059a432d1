//! What the controller decided, and why.

use std::fmt;

/// What caps the concurrency limit from above.
///
/// ```
/// use quadriga::adapt::{ConcurrencyController, LimitBound};
///
/// let mut auto = ConcurrencyController::new(4).with_max(64);
/// auto.set_bound(LimitBound::OpenFiles, Some(3));
/// assert_eq!(auto.limit(), 3);
/// assert_eq!(LimitBound::OpenFiles.to_string(), "the open-file limit");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitBound {
    /// The configured maximum ([`ConcurrencyController::with_max`]; `--max-jobs`).
    ///
    /// [`ConcurrencyController::with_max`]: crate::adapt::ConcurrencyController::with_max
    MaxJobs,
    /// The open-file limit: each job holds a few descriptors.
    OpenFiles,
    /// Free memory: each job needs some.
    Memory,
}

impl fmt::Display for LimitBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitBound::MaxJobs => "the maximum number of jobs",
            LimitBound::OpenFiles => "the open-file limit",
            LimitBound::Memory => "free memory",
        })
    }
}

/// Why the controller moved (or held) its limit. Every decision has one.
///
/// The measurements it quotes are over the latest jobs started at the level
/// the decision is about: `cpu_per_wall` is CPU time over wall time of one job
/// (about 1 for CPU-bound work, near 0 for work that waits), `busy_cores` is
/// that times the mean concurrency, and `throughput` is completions per second.
///
/// ```
/// use quadriga::adapt::{ConcurrencyController, LimitReason};
///
/// let auto = ConcurrencyController::new(8);
/// assert!(matches!(auto.last_decision().reason, LimitReason::Start { cores: 8 }));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LimitReason {
    /// The starting point: one job per core.
    Start {
        /// The core count.
        cores: usize,
    },
    /// The jobs keep the cores busy: more of them would only queue for CPU.
    CpuBound {
        /// Cores the jobs keep busy.
        busy_cores: f64,
        /// The core count.
        cores: usize,
        /// CPU time per wall time of one job.
        cpu_per_wall: f64,
    },
    /// The jobs mostly wait and throughput rose with the last step: go higher.
    Climb {
        /// Cores the jobs keep busy.
        busy_cores: f64,
        /// CPU time per wall time of one job.
        cpu_per_wall: f64,
        /// Completions per second at the level just measured.
        throughput: f64,
    },
    /// The last step raised throughput, but much less than in proportion: the
    /// knee lies between `lo` and `hi`; try between them.
    Refine {
        /// A level known to be too low.
        lo: usize,
        /// A level known to be enough.
        hi: usize,
        /// Completions per second at the level just measured.
        throughput: f64,
    },
    /// Throughput stopped improving: settle at the lowest level that gets
    /// (nearly) the best throughput seen.
    Plateau {
        /// Completions per second at the level just measured.
        throughput: f64,
        /// The best throughput seen in this search.
        best_throughput: f64,
    },
    /// Settled with the cores saturated above the level that fills them:
    /// try fewer jobs, and keep fewer if throughput holds.
    Descend {
        /// Cores the jobs keep busy.
        busy_cores: f64,
        /// The core count.
        cores: usize,
    },
    /// The jobs want far more CPU than the cores give: the CPU time they used
    /// plus the time they spent runnable but waiting for a CPU (as a thread
    /// pool measures it) adds up to `busy_cores` cores. Cut the limit to the
    /// level that would keep the cores just busy.
    Oversubscribed {
        /// Cores the jobs would keep busy.
        busy_cores: f64,
        /// The core count.
        cores: usize,
    },
    /// The jobs did not fill the level (the input ran short, or they end
    /// faster than they can be started): going higher would change nothing.
    Unfilled {
        /// How many jobs ran at once, on average.
        concurrency: f64,
    },
    /// Settled for a while with CPU to spare: probe one step higher, in case
    /// the workload changed.
    Probe {
        /// Completions per second at the settled level.
        throughput: f64,
    },
    /// A bound caps the limit.
    Bounded {
        /// Which bound.
        bound: LimitBound,
        /// Its value.
        value: usize,
    },
}

impl fmt::Display for LimitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LimitReason::Start { cores } => {
                write!(f, "start at one job per core ({cores} cores)")
            }
            LimitReason::CpuBound {
                busy_cores,
                cores,
                cpu_per_wall,
            } => write!(
                f,
                "CPU-bound: jobs keep {busy_cores:.2} of {cores} cores busy \
                 (cpu/wall {cpu_per_wall:.2} per job)"
            ),
            LimitReason::Climb {
                busy_cores,
                cpu_per_wall,
                throughput,
            } => write!(
                f,
                "waiting on I/O: cpu/wall {cpu_per_wall:.3} per job, {busy_cores:.2} cores \
                 busy, {throughput:.1} jobs/s and rising: raise"
            ),
            LimitReason::Refine { lo, hi, throughput } => write!(
                f,
                "{throughput:.1} jobs/s: the gain was less than in proportion, \
                 so the knee is between {lo} and {hi}: try between"
            ),
            LimitReason::Plateau {
                throughput,
                best_throughput,
            } => write!(
                f,
                "{throughput:.1} jobs/s, best {best_throughput:.1}: settle at the lowest \
                 level within 90% of the best"
            ),
            LimitReason::Descend { busy_cores, cores } => write!(
                f,
                "the jobs keep {busy_cores:.2} of {cores} cores busy: try fewer"
            ),
            LimitReason::Oversubscribed { busy_cores, cores } => write!(
                f,
                "the jobs want {busy_cores:.1} of {cores} cores (CPU time plus time waiting \
                 for a CPU): cut to fit"
            ),
            LimitReason::Unfilled { concurrency } => write!(
                f,
                "only {concurrency:.1} jobs ran at once (short input, or jobs end faster than \
                 they start): hold"
            ),
            LimitReason::Probe { throughput } => write!(
                f,
                "settled at {throughput:.1} jobs/s with CPU to spare: probe higher"
            ),
            LimitReason::Bounded { bound, value } => {
                write!(f, "capped at {value} by {bound}")
            }
        }
    }
}

/// One decision of the controller: the limit before, after, and why.
///
/// Its `Display` is one line for a log (`quadriga run -v` prints them):
///
/// ```
/// use quadriga::adapt::ConcurrencyController;
///
/// let auto = ConcurrencyController::new(2);
/// let start = auto.last_decision();
/// assert_eq!((start.from, start.to), (2, 2));
/// assert_eq!(start.to_string(), "-j 2: start at one job per core (2 cores)");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LimitDecision {
    /// The limit before.
    pub from: usize,
    /// The limit after (may equal `from`: a decision to hold).
    pub to: usize,
    /// Why.
    pub reason: LimitReason,
}

impl fmt::Display for LimitDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "-j {}: {}", self.to, self.reason)
        } else {
            write!(f, "-j {} → {}: {}", self.from, self.to, self.reason)
        }
    }
}
