//! The admission gate: whether another job may start now, and in which slot.
//!
//! The limit (`-j N`, or `-j auto`'s controller), `--delay`, `--memfree`,
//! `--load` and `--limit`. Readings of the machine come from the caller ([`Readings`]), so
//! the rules run under a synthetic clock and invented readings in tests.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use quadriga::adapt::{ConcurrencyController, LimitBound, LimitDecision};

/// How often a closed `--memfree`/`--load` gate is checked again.
pub(crate) const GATE_RECHECK: Duration = Duration::from_millis(100);
/// How long a reading of free memory is good for.
const MEM_READING_TTL: Duration = Duration::from_millis(20);

/// What the gate reads of the machine.
pub(crate) trait Readings {
    /// Available memory, in bytes.
    fn mem_available(&mut self) -> Option<u64>;
    /// Processes running or runnable now.
    fn runnable_processes(&mut self) -> Option<f64>;
    /// `--limit`'s verdict (0 start, 1 wait, 2 kill the youngest).
    fn limit_status(&mut self) -> Option<i32> {
        None
    }
}

/// The real machine.
#[derive(Debug, Default)]
pub(crate) struct System;

impl Readings for System {
    fn mem_available(&mut self) -> Option<u64> {
        quadriga::child::mem_available()
    }

    fn runnable_processes(&mut self) -> Option<f64> {
        quadriga::child::runnable_processes()
    }

    fn limit_status(&mut self) -> Option<i32> {
        crate::limit::status()
    }
}

/// Job slots ({%}): the lowest free number is taken.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    free: BinaryHeap<Reverse<usize>>,
    next: usize,
}

impl Slots {
    pub(crate) fn take(&mut self) -> usize {
        match self.free.pop() {
            Some(Reverse(s)) => s,
            None => {
                self.next += 1;
                self.next
            }
        }
    }

    pub(crate) fn put(&mut self, slot: usize) {
        self.free.push(Reverse(slot));
    }
}

/// How many jobs may run: fixed, or chosen by measurement.
#[derive(Debug)]
pub(crate) enum Limit {
    Fixed(usize),
    Auto(Box<ConcurrencyController>),
}

/// `--delay`, `--memfree`, `--load`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GateConfig {
    pub(crate) delay: Option<Duration>,
    pub(crate) memfree: Option<u64>,
    pub(crate) load: Option<f64>,
    /// `--limit`: ask [`Readings::limit_status`].
    pub(crate) limit: bool,
}

/// The gate is closed until `retry_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed {
    pub(crate) retry_at: Instant,
    /// Memory is below half of `--memfree` with more than one job running:
    /// the youngest should make room.
    pub(crate) evict: bool,
}

/// The admission gate.
#[derive(Debug)]
pub(crate) struct Gate {
    cfg: GateConfig,
    limit: Limit,
    pub(crate) slots: Slots,
    last_start: Option<Instant>,
    mem_reading: Option<(Instant, u64)>,
    /// Moving average of the jobs' peak RSS (`--memfree` with `-j auto`).
    mean_rss: Option<f64>,
}

impl Gate {
    pub(crate) fn new(cfg: GateConfig, limit: Limit) -> Self {
        Gate {
            cfg,
            limit,
            slots: Slots::default(),
            last_start: None,
            mem_reading: None,
            mean_rss: None,
        }
    }

    /// How many jobs may run at once now.
    pub(crate) fn limit(&self) -> usize {
        match &self.limit {
            Limit::Auto(c) => c.limit(),
            Limit::Fixed(n) => *n,
        }
    }

    /// The `-j auto` controller, if any.
    pub(crate) fn auto(&self) -> Option<&ConcurrencyController> {
        match &self.limit {
            Limit::Auto(c) => Some(c),
            Limit::Fixed(_) => None,
        }
    }

    pub(crate) fn auto_mut(&mut self) -> Option<&mut ConcurrencyController> {
        match &mut self.limit {
            Limit::Auto(c) => Some(c),
            Limit::Fixed(_) => None,
        }
    }

    /// `--delay`, `--memfree`, `--load` at `now`, with `running` jobs.
    pub(crate) fn check(
        &mut self,
        now: Instant,
        running: usize,
        sys: &mut dyn Readings,
    ) -> Result<(), Closed> {
        if let (Some(delay), Some(last)) = (self.cfg.delay, self.last_start)
            && now < last + delay
        {
            return Err(Closed {
                retry_at: last + delay,
                evict: false,
            });
        }
        if let Some(min) = self.cfg.memfree {
            let avail = self.mem_available(now, sys);
            if avail < min {
                return Err(Closed {
                    retry_at: now + GATE_RECHECK,
                    evict: avail < min / 2 && running > 1,
                });
            }
        }
        if let Some(max) = self.cfg.load
            && sys.runnable_processes().is_some_and(|n| n >= max)
        {
            return Err(Closed {
                retry_at: now + GATE_RECHECK,
                evict: false,
            });
        }
        if self.cfg.limit {
            match sys.limit_status() {
                Some(0) | None => {}
                Some(verdict) => {
                    return Err(Closed {
                        retry_at: now + GATE_RECHECK,
                        evict: verdict == 2 && running > 0,
                    });
                }
            }
        }
        Ok(())
    }

    /// A job was let through at `now` (`--delay` counts from here).
    pub(crate) fn started(&mut self, now: Instant) {
        self.last_start = Some(now);
    }

    fn mem_available(&mut self, now: Instant, sys: &mut dyn Readings) -> u64 {
        if let Some((at, v)) = self.mem_reading
            && now.duration_since(at) < MEM_READING_TTL
        {
            return v;
        }
        let v = sys.mem_available().unwrap_or(u64::MAX);
        self.mem_reading = Some((now, v));
        v
    }

    /// A job ended having used `max_rss` bytes at its peak.
    pub(crate) fn job_exited(&mut self, max_rss: u64) {
        if let Some(m) = &mut self.mean_rss {
            *m = 0.8 * *m + 0.2 * max_rss as f64;
        } else if self.cfg.memfree.is_some() {
            self.mean_rss = Some(max_rss as f64);
        }
    }

    /// `--memfree` with `-j auto`: bound the controller to as many more jobs
    /// as fit above `--memfree` at the mean peak RSS so far.
    pub(crate) fn bound_by_memory(
        &mut self,
        now: Instant,
        running: usize,
        sys: &mut dyn Readings,
    ) -> Option<LimitDecision> {
        let (Some(min), Some(rss), true) = (self.cfg.memfree, self.mean_rss, self.auto().is_some())
        else {
            return None;
        };
        let avail = self.mem_available(now, sys);
        let room = (avail.saturating_sub(min) as f64 / rss.max(1e6)) as usize;
        self.auto_mut()?
            .set_bound(LimitBound::Memory, Some(running + room))
    }
}
