//! Killing jobs: why, the escalation, and `--timeout` (fixed or `N%`).

use std::time::Duration;

use quadriga::child::Escalation;

use crate::args::Timeout;

/// From SIGTERM to SIGKILL.
pub(crate) const KILL_GRACE: Duration = Duration::from_millis(300);
/// How many run times `--timeout N%` keeps (a sample beyond).
const MAX_RUNTIMES: usize = 20_000;

/// Why a job is being killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KillReason {
    Timeout,
    /// `--halt now`, or a signal to the runner.
    Stop,
    /// `--memfree`: put it back in the queue.
    Memory,
}

/// A job being killed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kill {
    pub(crate) reason: KillReason,
    pub(crate) escalation: Escalation,
}

/// `--timeout`: fixed, or a percentage of the median run time of the jobs
/// that succeeded.
#[derive(Debug, Default)]
pub(crate) struct Timeouts {
    timeout: Option<Timeout>,
    /// Run times of succeeded jobs (`N%` only), at most `MAX_RUNTIMES`.
    runtimes: Vec<Duration>,
    /// The median of `runtimes`, and how many it was taken over.
    median: Option<(usize, Duration)>,
}

impl Timeouts {
    pub(crate) fn new(timeout: Option<Timeout>) -> Self {
        Timeouts {
            timeout,
            ..Timeouts::default()
        }
    }

    /// Whether there is a `--timeout` at all.
    pub(crate) fn is_set(&self) -> bool {
        self.timeout.is_some()
    }

    /// The current timeout, if any (a percentage needs three successes).
    pub(crate) fn current(&mut self) -> Option<Duration> {
        match self.timeout? {
            Timeout::Fixed(d) => Some(d),
            Timeout::Percent(p) => {
                let n = self.runtimes.len();
                if n < 3 {
                    return None;
                }
                if self.median.is_none_or(|(count, _)| count != n) {
                    let (_, median, _) = self.runtimes.select_nth_unstable(n / 2);
                    self.median = Some((n, *median));
                }
                self.median.map(|(_, m)| m.mul_f64(p / 100.0))
            }
        }
    }

    /// A job succeeded after `runtime`.
    pub(crate) fn succeeded(&mut self, runtime: Duration) {
        if !matches!(self.timeout, Some(Timeout::Percent(_))) {
            return;
        }
        if self.runtimes.len() >= MAX_RUNTIMES {
            // Keep a sample: every other one.
            let mut i = 0;
            self.runtimes.retain(|_| {
                i += 1;
                i % 2 == 0
            });
        }
        self.runtimes.push(runtime);
    }
}
