//! Timing: warm-up runs, then N measured repetitions, summarised as median and
//! min. Several bodies can be measured *interleaved* (A, B, A, B, ...), so slow
//! drifts of the machine (other load, frequency changes) hit every side alike.

use std::time::{Duration, Instant};

use serde::Serialize;

/// How a body is run: warm-up runs (not recorded), measured repetitions, and a
/// pause before each run so that one side's idle threads settle (rayon spins a
/// little before it sleeps) before the next side starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Runs before measuring, not recorded.
    pub(crate) warmup: usize,
    /// Measured runs.
    pub(crate) reps: usize,
    /// Pause before every run.
    pub(crate) pause: Duration,
}

impl Plan {
    /// A plan of `warmup` + `reps` runs with a 5 ms pause between runs.
    pub(crate) fn new(warmup: usize, reps: usize) -> Self {
        Self {
            warmup,
            reps: reps.max(1),
            pause: Duration::from_millis(5),
        }
    }
}

/// The recorded wall-clock times of one body, in seconds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Stats {
    /// Warm-up runs that were not recorded.
    pub(crate) warmup: usize,
    /// Median of the samples.
    pub(crate) median_s: f64,
    /// Fastest sample.
    pub(crate) min_s: f64,
    /// Slowest sample.
    pub(crate) max_s: f64,
    /// Arithmetic mean of the samples.
    pub(crate) mean_s: f64,
    /// Every sample, in the order measured.
    pub(crate) samples_s: Vec<f64>,
}

impl Stats {
    /// Summarises `samples` (seconds; must not be empty).
    pub(crate) fn from_samples(warmup: usize, samples: Vec<f64>) -> Self {
        assert!(!samples.is_empty(), "no samples");
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Self {
            warmup,
            median_s: median,
            min_s: sorted[0],
            max_s: sorted[n - 1],
            mean_s: sorted.iter().sum::<f64>() / n as f64,
            samples_s: samples,
        }
    }

    /// Items per second at the median time.
    pub(crate) fn throughput(&self, items: u64) -> f64 {
        items as f64 / self.median_s
    }

    /// Items per second at the best (min) time.
    pub(crate) fn best_throughput(&self, items: u64) -> f64 {
        items as f64 / self.min_s
    }

    /// `median (min)` in a readable unit, for notes.
    pub(crate) fn brief(&self) -> String {
        format!(
            "{} (min {})",
            format_seconds(self.median_s),
            format_seconds(self.min_s)
        )
    }
}

/// Measures one body.
pub(crate) fn measure(plan: Plan, body: &mut dyn FnMut()) -> Stats {
    measure_interleaved(plan, &mut [body])
        .pop()
        .expect("one body, one result")
}

/// Measures several bodies interleaved: every repetition runs each body once,
/// rotating which goes first. Returns one [`Stats`] per body, in order.
pub(crate) fn measure_interleaved(plan: Plan, bodies: &mut [&mut dyn FnMut()]) -> Vec<Stats> {
    let k = bodies.len();
    for _ in 0..plan.warmup {
        for body in bodies.iter_mut() {
            std::thread::sleep(plan.pause);
            body();
        }
    }
    let mut samples = vec![Vec::with_capacity(plan.reps); k];
    for rep in 0..plan.reps {
        for j in 0..k {
            let i = (rep + j) % k;
            std::thread::sleep(plan.pause);
            let started = Instant::now();
            (bodies[i])();
            samples[i].push(started.elapsed().as_secs_f64());
        }
    }
    samples
        .into_iter()
        .map(|s| Stats::from_samples(plan.warmup, s))
        .collect()
}

/// A duration in seconds, printed in s, ms or µs.
pub(crate) fn format_seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_min() {
        let s = Stats::from_samples(0, vec![3.0, 1.0, 2.0, 10.0]);
        assert_eq!(s.median_s, 2.5);
        assert_eq!(s.min_s, 1.0);
        assert_eq!(s.max_s, 10.0);
        assert_eq!(s.samples_s, [3.0, 1.0, 2.0, 10.0]);
    }

    #[test]
    fn interleaved_runs_every_body_reps_times() {
        let (mut a, mut b) = (0, 0);
        let plan = Plan {
            warmup: 1,
            reps: 3,
            pause: Duration::ZERO,
        };
        let stats = measure_interleaved(plan, &mut [&mut || a += 1, &mut || b += 1]);
        assert_eq!((a, b), (4, 4));
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].samples_s.len(), 3);
    }
}
