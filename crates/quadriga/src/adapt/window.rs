//! The recent samples of one level, and what they say about it.

use std::collections::VecDeque;

/// How many of the latest samples of a level are kept.
const CAPACITY: usize = 16;

/// One finished job, in seconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    /// CPU time (user + system) the job used.
    pub(super) cpu: f64,
    /// Time it spent runnable, waiting for a CPU (0 where the caller cannot
    /// tell).
    pub(super) wait: f64,
    /// Wall time from start to finish.
    pub(super) wall: f64,
    /// How many jobs ran, on average, while this one ran (itself included).
    pub(super) concurrency: f64,
}

/// The latest samples of jobs started at the current level.
#[derive(Debug, Clone, Default)]
pub(super) struct Window {
    samples: VecDeque<Sample>,
}

/// What a window says about its level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Summary {
    /// CPU time per wall time of one job: about 1 for a CPU-bound job, near 0
    /// for one that waits on I/O, above 1 for a multi-threaded one. Run-queue
    /// waits count as CPU time here: the CPU time the job wanted.
    pub(super) cpu_per_wall: f64,
    /// CPU time per wall time of one job, without the run-queue waits: the
    /// CPU time it got.
    pub(super) used_per_wall: f64,
    /// Mean concurrency the jobs ran at.
    pub(super) concurrency: f64,
    /// Completions per second, by Little's law: concurrency / mean wall time.
    pub(super) throughput: f64,
}

impl Summary {
    /// How many cores the jobs keep busy at this level.
    pub(super) fn busy_cores(&self) -> f64 {
        self.concurrency * self.cpu_per_wall
    }

    /// How many cores the jobs actually used at this level.
    pub(super) fn used_cores(&self) -> f64 {
        self.concurrency * self.used_per_wall
    }
}

impl Window {
    pub(super) fn push(&mut self, sample: Sample) {
        if self.samples.len() == CAPACITY {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    pub(super) fn clear(&mut self) {
        self.samples.clear();
    }

    pub(super) fn summary(&self) -> Option<Summary> {
        let n = self.samples.len();
        if n == 0 {
            return None;
        }
        let (mut cpu, mut wait, mut wall, mut conc) = (0.0, 0.0, 0.0, 0.0);
        for s in &self.samples {
            cpu += s.cpu;
            wait += s.wait;
            wall += s.wall;
            conc += s.concurrency;
        }
        let wall = wall.max(1e-9);
        let concurrency = conc / n as f64;
        Some(Summary {
            cpu_per_wall: (cpu + wait) / wall,
            used_per_wall: cpu / wall,
            concurrency,
            throughput: concurrency / (wall / n as f64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_applies_littles_law() {
        let mut w = Window::default();
        assert!(w.summary().is_none());
        for _ in 0..4 {
            w.push(Sample {
                cpu: 0.01,
                wait: 0.0,
                wall: 0.5,
                concurrency: 10.0,
            });
        }
        let s = w.summary().unwrap();
        assert!((s.throughput - 20.0).abs() < 1e-9);
        assert!((s.cpu_per_wall - 0.02).abs() < 1e-9);
        assert!((s.busy_cores() - 0.2).abs() < 1e-9);
    }

    #[test]
    fn keeps_only_the_latest() {
        let mut w = Window::default();
        for i in 0..40 {
            w.push(Sample {
                cpu: 0.0,
                wait: 0.0,
                wall: 1.0,
                concurrency: i as f64,
            });
        }
        let s = w.summary().unwrap();
        // The last 16: 24..=39, mean 31.5.
        assert!((s.concurrency - 31.5).abs() < 1e-9);
    }
}
