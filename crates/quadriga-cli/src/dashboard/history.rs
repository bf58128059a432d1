//! The chart's memory: a ring of one sample per second of the queue's
//! throughput, depth and run times, so that a page opened now shows the last
//! minutes at once (`GET /api/history`).

use std::collections::VecDeque;

use quadriga::cluster::Status;
use serde::Serialize;

/// How many samples are kept: ten minutes at one a second.
pub(crate) const CAPACITY: usize = 600;

/// One point of the chart.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Sample {
    /// The broker's clock (ms since the epoch).
    pub(crate) t_ms: u64,
    /// Entries completed per second, averaged over the last minute.
    pub(crate) per_second: f64,
    /// Entries waiting.
    pub(crate) waiting: u64,
    /// Entries leased.
    pub(crate) leased: u64,
    /// Mean entry run time of the last minute (µs), if any finished.
    pub(crate) run_mean_us: Option<u64>,
    /// Longest entry run time of the last minute (µs).
    pub(crate) run_max_us: Option<u64>,
}

impl Sample {
    pub(crate) fn of(s: &Status) -> Sample {
        Sample {
            t_ms: s.server_time_ms,
            per_second: s.totals.done_last_minute as f64 / 60.0,
            waiting: s.totals.waiting,
            leased: s.totals.leased,
            run_mean_us: s.totals.run_mean_us,
            run_max_us: s.totals.run_max_us,
        }
    }
}

/// The last [`CAPACITY`] samples, oldest first.
#[derive(Debug, Default)]
pub(crate) struct History(VecDeque<Sample>);

impl History {
    /// Adds a sample, dropping the oldest past the capacity.
    pub(crate) fn push(&mut self, sample: Sample) {
        if self.0.len() == CAPACITY {
            self.0.pop_front();
        }
        self.0.push_back(sample);
    }

    /// The samples, oldest first.
    pub(crate) fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_ms: u64) -> Sample {
        Sample {
            t_ms,
            per_second: 0.0,
            waiting: 0,
            leased: 0,
            run_mean_us: None,
            run_max_us: None,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_samples_in_order() {
        let mut h = History::default();
        for t in 0..(CAPACITY as u64 + 5) {
            h.push(at(t));
        }
        let ts: Vec<u64> = h.samples().map(|s| s.t_ms).collect();
        assert_eq!(ts.len(), CAPACITY);
        assert_eq!((ts[0], ts[CAPACITY - 1]), (5, CAPACITY as u64 + 4));
    }
}
