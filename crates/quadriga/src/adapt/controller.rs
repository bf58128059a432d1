//! The hill-climbing concurrency controller (see the module docs in `mod.rs`).

use std::time::{Duration, Instant};

use super::decision::{LimitBound, LimitDecision, LimitReason};
use super::window::{Sample, Summary, Window};

/// Jobs that keep at least this share of the cores busy are CPU-bound.
const SATURATED: f64 = 0.75;
/// Jobs that are runnable most of their lives and want (CPU time plus
/// run-queue waits, for a caller that tells them) at least this many times
/// the cores are cut at once to fit them.
const OVERSUBSCRIBED: f64 = 2.0;
/// A step up by a factor `r` counts as an improvement when throughput rose by
/// at least this share of the ideal `r - 1`.
const MIN_GAIN: f64 = 0.5;
/// A step whose gain is below `MIN_GAIN` but above this factor was still a
/// gain: the knee lies inside it, so it is refined rather than abandoned.
const SOME_GAIN: f64 = 1.1;
/// Levels within this share of the best throughput are as good as the best.
const NEAR_BEST: f64 = 0.9;
/// A level counts as filled when the jobs ran at this share of it on average.
const FILLED: f64 = 0.8;
/// The largest factor of one step up, except that a step may always reach
/// `MIN_REACH` (so that a few cores do not mean a slow start).
const MAX_STEP: usize = 16;
const MIN_REACH: usize = 64;
/// Refining stops when the bracket is this narrow (`hi / lo`).
const NARROW: f64 = 1.5;
/// Jobs at a settled level before it probes one step higher (with CPU to
/// spare) or lower (with the cores saturated); each doubles after a probe that
/// finds nothing, up to `MAX_PROBE`.
const PROBE_UP: u64 = 16;
const PROBE_DOWN: u64 = 64;
const MAX_PROBE: u64 = 8192;

/// Where the search is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Measuring the limit, reached by raising it from `from` (`None`: the start).
    Climbing { from: Option<usize> },
    /// Measuring the limit, a level between `lo` (too low) and `hi` (enough).
    Refining { lo: usize, hi: usize },
    /// Holding the limit; `samples` jobs measured since.
    Settled { samples: u64 },
    /// Measuring the limit, lowered from `from` because the cores were saturated.
    Descending { from: usize },
}

/// A receipt for a started job: hand it back when the job ends.
///
/// It records when the job started and how much running-job-time had passed,
/// so the controller can work out the concurrency the job ran at.
///
/// ```
/// use std::time::{Duration, Instant};
/// use quadriga::adapt::ConcurrencyController;
///
/// let mut auto = ConcurrencyController::new(2);
/// let t0 = Instant::now();
/// let ticket = auto.job_started(t0);
/// assert_eq!(auto.running(), 1);
/// auto.job_finished(ticket, Duration::from_millis(5), t0 + Duration::from_millis(10));
/// assert_eq!(auto.running(), 0);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct JobTicket {
    epoch: u64,
    clock: f64,
    area: f64,
}

/// Chooses how many jobs to run at once, by measuring them (`-j auto`).
///
/// Feed it every job: [`job_started`](Self::job_started) when one starts and
/// [`job_finished`](Self::job_finished) with its CPU time (user + system, as
/// `wait4` reports it) when it ends, and keep at most
/// [`limit`](Self::limit) running. It starts at the core count; CPU-bound
/// work stays there, work that waits (sleeps, network, disk) climbs until
/// throughput stops improving. Time is whatever the caller passes, so the
/// controller is deterministic and can be driven by a synthetic feed:
///
/// ```
/// use std::time::{Duration, Instant};
/// use quadriga::adapt::ConcurrencyController;
///
/// let ms = Duration::from_millis;
/// let mut auto = ConcurrencyController::new(2).with_max(256);
/// let t0 = Instant::now();
/// // Two jobs that each slept 200 ms and used 1 ms of CPU.
/// let a = auto.job_started(t0);
/// let b = auto.job_started(t0);
/// auto.job_finished(a, ms(1), t0 + ms(200));
/// let decision = auto.job_finished(b, ms(1), t0 + ms(200)).expect("a decision");
/// assert!(auto.limit() > 2, "I/O-bound work climbs: {decision}");
/// ```
#[derive(Debug, Clone)]
pub struct ConcurrencyController {
    cores: usize,
    min: usize,
    max: usize,
    open_files: Option<usize>,
    memory: Option<usize>,
    limit: usize,
    phase: Phase,
    /// Bumped at every change of the limit; samples of jobs started at an
    /// older level are not used to judge the current one.
    epoch: u64,
    window: Window,
    /// Samples of this epoch not yet evaluated.
    fresh: usize,
    /// Throughput measured per level in the current search, and the
    /// concurrency it was measured at.
    measured: Vec<(usize, f64, f64)>,
    probe_up_after: u64,
    probe_down_after: u64,
    running: usize,
    origin: Option<Instant>,
    /// Seconds since `origin` at the last update.
    clock: f64,
    /// Integral of `running` over time, in job-seconds.
    area: f64,
    last: LimitDecision,
}

impl ConcurrencyController {
    /// A controller for a machine with `cores` cores (at least 1). It starts
    /// at one job per core, between 1 and 256 jobs.
    ///
    /// ```
    /// let auto = quadriga::adapt::ConcurrencyController::new(4);
    /// assert_eq!(auto.limit(), 4);
    /// ```
    pub fn new(cores: usize) -> Self {
        let cores = cores.max(1);
        let (min, max) = (1, 256);
        let limit = cores.clamp(min, max);
        Self {
            cores,
            min,
            max,
            open_files: None,
            memory: None,
            limit,
            phase: Phase::Climbing { from: None },
            epoch: 0,
            window: Window::default(),
            fresh: 0,
            measured: Vec::new(),
            probe_up_after: PROBE_UP,
            probe_down_after: PROBE_DOWN,
            running: 0,
            origin: None,
            clock: 0.0,
            area: 0.0,
            last: LimitDecision {
                from: limit,
                to: limit,
                reason: LimitReason::Start { cores },
            },
        }
    }

    /// Sets the most jobs it may ever choose (default 256; at least 1).
    ///
    /// ```
    /// let auto = quadriga::adapt::ConcurrencyController::new(8).with_max(4);
    /// assert_eq!(auto.limit(), 4);
    /// ```
    pub fn with_max(mut self, max: usize) -> Self {
        self.max = max.max(1);
        self.min = self.min.min(self.max);
        self.reclamp();
        self
    }

    /// Sets the fewest jobs it may choose (default 1).
    ///
    /// ```
    /// let auto = quadriga::adapt::ConcurrencyController::new(2).with_min(3);
    /// assert_eq!(auto.limit(), 3);
    /// ```
    pub fn with_min(mut self, min: usize) -> Self {
        self.min = min.max(1);
        self.max = self.max.max(self.min);
        self.reclamp();
        self
    }

    fn reclamp(&mut self) {
        let limit = self.cores.clamp(self.min, self.upper().0);
        self.limit = limit;
        self.last.from = limit;
        self.last.to = limit;
    }

    /// The number of jobs to keep running now.
    ///
    /// ```
    /// assert_eq!(quadriga::adapt::ConcurrencyController::new(3).limit(), 3);
    /// ```
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The core count it was made for.
    ///
    /// ```
    /// assert_eq!(quadriga::adapt::ConcurrencyController::new(0).cores(), 1);
    /// ```
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Jobs started and not yet finished or cancelled.
    ///
    /// ```
    /// let mut auto = quadriga::adapt::ConcurrencyController::new(2);
    /// auto.job_started(std::time::Instant::now());
    /// assert_eq!(auto.running(), 1);
    /// ```
    pub fn running(&self) -> usize {
        self.running
    }

    /// The latest decision (at first, the start at one job per core).
    ///
    /// ```
    /// let auto = quadriga::adapt::ConcurrencyController::new(2);
    /// assert_eq!(auto.last_decision().to, 2);
    /// ```
    pub fn last_decision(&self) -> &LimitDecision {
        &self.last
    }

    /// Sets (or with `None` clears) a bound on the limit: the open-file limit
    /// or free memory, in jobs. Returns a decision if it lowers the limit.
    ///
    /// ```
    /// use quadriga::adapt::{ConcurrencyController, LimitBound};
    ///
    /// let mut auto = ConcurrencyController::new(8);
    /// let d = auto.set_bound(LimitBound::Memory, Some(5)).unwrap();
    /// assert_eq!((d.from, d.to), (8, 5));
    /// assert!(auto.set_bound(LimitBound::Memory, None).is_none());
    /// ```
    pub fn set_bound(&mut self, bound: LimitBound, jobs: Option<usize>) -> Option<LimitDecision> {
        match bound {
            LimitBound::OpenFiles => self.open_files = jobs.map(|n| n.max(1)),
            LimitBound::Memory => self.memory = jobs.map(|n| n.max(1)),
            LimitBound::MaxJobs => self.max = jobs.unwrap_or(256).max(1),
        }
        let (upper, bound) = self.upper();
        if self.limit > upper {
            let reason = LimitReason::Bounded {
                bound,
                value: upper,
            };
            return Some(self.change(upper, reason, Phase::Settled { samples: 0 }));
        }
        None
    }

    /// Records that a job started at `now`; keep the ticket for when it ends.
    ///
    /// ```
    /// let mut auto = quadriga::adapt::ConcurrencyController::new(2);
    /// let _ticket = auto.job_started(std::time::Instant::now());
    /// ```
    pub fn job_started(&mut self, now: Instant) -> JobTicket {
        self.advance(now);
        self.running += 1;
        JobTicket {
            epoch: self.epoch,
            clock: self.clock,
            area: self.area,
        }
    }

    /// Records that a job ended at `now` having used `cpu` (user + system).
    /// Returns a decision when this sample completed a measurement that
    /// changed the limit or the phase of the search.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let mut auto = quadriga::adapt::ConcurrencyController::new(1);
    /// let t0 = Instant::now();
    /// let t = auto.job_started(t0);
    /// // One sample is not a measurement yet.
    /// assert!(auto.job_finished(t, Duration::ZERO, t0 + Duration::from_secs(1)).is_none());
    /// ```
    pub fn job_finished(
        &mut self,
        ticket: JobTicket,
        cpu: Duration,
        now: Instant,
    ) -> Option<LimitDecision> {
        self.job_finished_waited(ticket, cpu, Duration::ZERO, now)
    }

    /// [`job_finished`](Self::job_finished) for a caller that can also tell
    /// how long the job spent runnable but waiting for a CPU (a thread pool
    /// reads it from the scheduler). The wait counts as CPU time the job
    /// wanted: jobs that use the cores and want several times as many (far
    /// more CPU-bound jobs than cores, after a phase of waiting work) cut the
    /// limit in one step ([`LimitReason::Oversubscribed`]).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use quadriga::adapt::{ConcurrencyController, LimitReason};
    ///
    /// let ms = Duration::from_millis;
    /// let mut auto = ConcurrencyController::new(2).with_max(64);
    /// let t0 = Instant::now();
    /// // Sleep-like jobs raise the limit...
    /// let a = auto.job_started(t0);
    /// let b = auto.job_started(t0);
    /// auto.job_finished(a, ms(1), t0 + ms(200));
    /// auto.job_finished(b, ms(1), t0 + ms(200));
    /// let high = auto.limit();
    /// assert!(high > 2);
    /// // ...then that many CPU-bound jobs share 2 cores: each got 2/high of
    /// // a CPU and waited for one the rest of the time.
    /// let t1 = t0 + ms(200);
    /// let tickets: Vec<_> = (0..high).map(|_| auto.job_started(t1)).collect();
    /// let wall = ms(100);
    /// let cpu = wall * 2 / high as u32;
    /// let mut cut = None;
    /// for t in tickets {
    ///     cut = cut.or(auto.job_finished_waited(t, cpu, wall - cpu, t1 + wall));
    /// }
    /// let cut = cut.expect("a decision");
    /// assert!(matches!(cut.reason, LimitReason::Oversubscribed { .. }), "{cut}");
    /// assert_eq!(auto.limit(), 2);
    /// ```
    pub fn job_finished_waited(
        &mut self,
        ticket: JobTicket,
        cpu: Duration,
        run_wait: Duration,
        now: Instant,
    ) -> Option<LimitDecision> {
        self.advance(now);
        self.running = self.running.saturating_sub(1);
        if ticket.epoch != self.epoch {
            return None;
        }
        let wall = (self.clock - ticket.clock).max(1e-6);
        let concurrency = ((self.area - ticket.area) / wall).max(1.0);
        self.window.push(Sample {
            cpu: cpu.as_secs_f64(),
            wait: run_wait.as_secs_f64(),
            wall,
            concurrency,
        });
        self.fresh += 1;
        if self.fresh < self.needed() {
            return None;
        }
        let fresh = std::mem::take(&mut self.fresh) as u64;
        self.evaluate(fresh)
    }

    /// Records that a job ended without a usable measurement (killed by a
    /// timeout, or cancelled): it no longer counts as running.
    ///
    /// ```
    /// let mut auto = quadriga::adapt::ConcurrencyController::new(2);
    /// let now = std::time::Instant::now();
    /// let t = auto.job_started(now);
    /// auto.job_cancelled(t, now);
    /// assert_eq!(auto.running(), 0);
    /// ```
    pub fn job_cancelled(&mut self, _ticket: JobTicket, now: Instant) {
        self.advance(now);
        self.running = self.running.saturating_sub(1);
    }

    /// Samples needed to judge a level: more for higher levels, whose first
    /// completions are the least representative.
    fn needed(&self) -> usize {
        (self.limit / 4).clamp(2, 8)
    }

    fn advance(&mut self, now: Instant) {
        let origin = *self.origin.get_or_insert(now);
        let t = now.saturating_duration_since(origin).as_secs_f64();
        if t > self.clock {
            self.area += self.running as f64 * (t - self.clock);
            self.clock = t;
        }
    }

    /// The tightest bound and which one it is.
    fn upper(&self) -> (usize, LimitBound) {
        let mut upper = (self.max, LimitBound::MaxJobs);
        for (value, bound) in [
            (self.open_files, LimitBound::OpenFiles),
            (self.memory, LimitBound::Memory),
        ] {
            if let Some(v) = value
                && v < upper.0
            {
                upper = (v, bound);
            }
        }
        (upper.0.max(self.min), upper.1)
    }

    fn throughput_at(&self, level: usize) -> Option<f64> {
        self.measured_at(level).map(|(x, _)| x)
    }

    fn measured_at(&self, level: usize) -> Option<(f64, f64)> {
        self.measured
            .iter()
            .find(|(l, _, _)| *l == level)
            .map(|&(_, x, c)| (x, c))
    }

    fn note(&mut self, level: usize, s: &Summary) {
        self.measured.retain(|(l, _, _)| *l != level);
        self.measured.push((level, s.throughput, s.concurrency));
    }

    /// The lowest measured level whose throughput is near the best.
    fn best_level(&self) -> (usize, f64) {
        let best = self.measured.iter().map(|&(_, x, _)| x).fold(0.0, f64::max);
        let level = self
            .measured
            .iter()
            .filter(|&&(_, x, _)| x >= NEAR_BEST * best)
            .map(|&(l, _, _)| l)
            .min()
            .unwrap_or(self.limit);
        (level, best)
    }

    /// The level at which jobs like these would keep every core busy.
    fn fill_level(&self, cpu_per_wall: f64) -> usize {
        let fill = self.cores as f64 / cpu_per_wall.max(1e-4);
        (fill.ceil() as usize).max(self.min)
    }

    fn evaluate(&mut self, fresh: u64) -> Option<LimitDecision> {
        let s = self.window.summary()?;
        // The CPU the jobs got: run-queue waits only inform a cut (below);
        // counted here they would hold waiting work low on a loaded machine,
        // where a thread that wakes from a sleep waits for a CPU too.
        let busy = s.used_cores();
        let cores = self.cores as f64;
        self.note(self.limit, &s);
        let (upper, bound) = self.upper();

        let fill = self.fill_level(s.used_per_wall);

        match self.phase {
            Phase::Climbing { from } => {
                // Did the jobs fill the level? The samples may have run
                // below it while the new jobs were being started; if as many
                // are running now, the level is filled. If neither, the input
                // ran short or jobs end faster than they can be started.
                let level = FILLED * self.limit as f64;
                let filled = s.concurrency >= level;
                let starved = !filled && (self.running as f64) < level;
                if let Some(prev) = from
                    && let Some((before, before_conc)) = self.measured_at(prev)
                {
                    // Judge the step by the concurrency the samples ran at.
                    let r = if filled {
                        self.limit as f64 / prev as f64
                    } else {
                        s.concurrency / before_conc.max(1.0)
                    };
                    if starved && r < 1.2 {
                        return Some(self.unfilled(&s));
                    }
                    if s.throughput < before * (1.0 + MIN_GAIN * (r - 1.0)) {
                        // A step up that did not pay: the next probe waits longer.
                        self.probe_up_after = (self.probe_up_after * 2).min(MAX_PROBE);
                        if filled && r > 2.0 && s.throughput > before * SOME_GAIN {
                            return Some(self.refine(prev, self.limit, &s));
                        }
                        return Some(self.settle_best(&s));
                    }
                    // A step that paid off: probing again soon is worthwhile.
                    self.probe_up_after = PROBE_UP;
                }
                if starved && from.is_some() {
                    return Some(self.unfilled(&s));
                }
                if let Some(d) = self.cut_to_fit(&s) {
                    return Some(d);
                }
                if busy >= cores * SATURATED {
                    let reason = LimitReason::CpuBound {
                        busy_cores: busy,
                        cores: self.cores,
                        cpu_per_wall: s.used_per_wall,
                    };
                    return Some(self.change(self.limit, reason, Phase::Settled { samples: 0 }));
                }
                if self.limit >= upper {
                    let reason = LimitReason::Bounded {
                        bound,
                        value: upper,
                    };
                    return Some(self.change(upper, reason, Phase::Settled { samples: 0 }));
                }
                // Aim past the level that fills the cores: the jobs' own CPU
                // is not the only limit (a server's latency overlaps), and a
                // level too high is found by the throughput check.
                let next = if fill >= 4 * self.limit {
                    (2 * fill).min((MAX_STEP * self.limit).max(MIN_REACH))
                } else {
                    2 * self.limit
                };
                let next = next.clamp(self.limit + 1, upper);
                let reason = LimitReason::Climb {
                    busy_cores: busy,
                    cpu_per_wall: s.used_per_wall,
                    throughput: s.throughput,
                };
                let from = Some(self.limit);
                Some(self.change(next, reason, Phase::Climbing { from }))
            }
            Phase::Refining { lo, hi } => {
                let at_hi = self.throughput_at(hi).unwrap_or(0.0);
                let best = at_hi.max(s.throughput);
                let (lo, hi) = if s.throughput >= NEAR_BEST * best {
                    (lo, self.limit)
                } else {
                    (self.limit, hi)
                };
                if hi as f64 / lo as f64 <= NARROW || hi <= lo + 1 {
                    return Some(self.settle_best(&s));
                }
                Some(self.refine(lo, hi, &s))
            }
            Phase::Descending { from } => {
                let before = self.throughput_at(from).unwrap_or(0.0);
                if s.throughput >= NEAR_BEST * before {
                    // As good with fewer: keep it, and try fewer again soon.
                    self.probe_down_after = PROBE_DOWN;
                    self.measured.retain(|&(l, _, _)| l != from);
                } else {
                    self.probe_down_after = (self.probe_down_after * 2).min(MAX_PROBE);
                }
                Some(self.settle_best(&s))
            }
            Phase::Settled { samples } => {
                if let Some(d) = self.cut_to_fit(&s) {
                    return Some(d);
                }
                let samples = samples + fresh;
                let level = self.limit;
                // At least one job per core, each runnable most of its life
                // (a caller that tells run-queue waits), leaves no CPU to
                // spare either, even when other programs take part of the
                // cores: probing up would only be cut again.
                let saturated = busy >= cores * SATURATED
                    || (level >= self.cores && s.cpu_per_wall >= SATURATED);
                // A probe up costs about one job duration at the higher
                // level: wait for two generations of jobs at this one first.
                // A probe down is cheaper: one generation.
                let generation = level as u64;
                if !saturated && level < upper && samples >= self.probe_up_after.max(2 * generation)
                {
                    self.measured.retain(|&(l, _, _)| l == level);
                    let reason = LimitReason::Probe {
                        throughput: s.throughput,
                    };
                    let from = Some(level);
                    let to = (2 * level).min(upper);
                    return Some(self.change(to, reason, Phase::Climbing { from }));
                }
                if saturated && level > self.min && samples >= self.probe_down_after.max(generation)
                {
                    self.measured.retain(|&(l, _, _)| l == level);
                    let reason = LimitReason::Descend {
                        busy_cores: busy,
                        cores: self.cores,
                    };
                    let to = (level / 2).max(self.min);
                    return Some(self.change(to, reason, Phase::Descending { from: level }));
                }
                self.phase = Phase::Settled { samples };
                None
            }
        }
    }

    /// Jobs that are runnable most of their lives and want several times the
    /// cores (a caller that tells run-queue waits, see
    /// [`job_finished_waited`](Self::job_finished_waited)):
    /// cut the limit at once to the level whose demand the cores would just
    /// meet, and settle there. Fewer jobs on oversubscribed cores lose no
    /// throughput, so the cut is not judged against the level it left (whose
    /// measurement may mix in an earlier workload); a cut that went too far
    /// (jobs that also wait) leaves CPU to spare, and the probe up climbs back.
    /// A CPU-bound burst after a phase of waiting work falls from hundreds of
    /// jobs to the core count in one step.
    fn cut_to_fit(&mut self, s: &Summary) -> Option<LimitDecision> {
        let cores = self.cores as f64;
        let busy = s.busy_cores();
        // And the jobs were runnable most of their lives (on a CPU or waiting
        // for one): jobs that sleep and then wait for a CPU on a machine busy
        // with other programs are not cut, fewer of them would not wait less.
        if busy < OVERSUBSCRIBED * cores || s.cpu_per_wall < SATURATED {
            return None;
        }
        let level = self.limit;
        // The level whose demand the cores would meet, and never below the
        // level that fills them with jobs like these (one per core for
        // single-threaded jobs, whose demand is at most their wall time).
        let fit = (level as f64 * cores / busy).round() as usize;
        let to = fit.max(self.fill_level(s.cpu_per_wall.max(1.0)));
        if to >= level {
            return None;
        }
        self.measured.clear();
        let reason = LimitReason::Oversubscribed {
            busy_cores: busy,
            cores: self.cores,
        };
        Some(self.change(to, reason, Phase::Settled { samples: 0 }))
    }

    /// Tries the geometric middle of `lo..hi`.
    fn refine(&mut self, lo: usize, hi: usize, s: &Summary) -> LimitDecision {
        let mid = ((lo as f64 * hi as f64).sqrt().round() as usize).clamp(lo + 1, hi - 1);
        let reason = LimitReason::Refine {
            lo,
            hi,
            throughput: s.throughput,
        };
        self.change(mid, reason, Phase::Refining { lo, hi })
    }

    /// The jobs did not fill the level (the input ran short, or jobs end
    /// faster than they start): going higher would change nothing.
    fn unfilled(&mut self, s: &Summary) -> LimitDecision {
        let reason = LimitReason::Unfilled {
            concurrency: s.concurrency,
        };
        self.change(self.limit, reason, Phase::Settled { samples: 0 })
    }

    fn settle_best(&mut self, s: &Summary) -> LimitDecision {
        let (level, best) = self.best_level();
        let reason = LimitReason::Plateau {
            throughput: s.throughput,
            best_throughput: best,
        };
        self.change(level, reason, Phase::Settled { samples: 0 })
    }

    fn change(&mut self, to: usize, reason: LimitReason, phase: Phase) -> LimitDecision {
        let from = self.limit;
        let to = to.clamp(self.min, self.upper().0);
        if to != from {
            self.epoch += 1;
            self.window.clear();
        }
        self.limit = to;
        self.phase = phase;
        self.fresh = 0;
        self.last = LimitDecision { from, to, reason };
        self.last.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use super::*;

    /// A discrete-event simulation: `work(concurrency)` gives one job's
    /// (wall, cpu) in seconds when started with that many jobs running.
    struct Trace {
        /// (time in seconds, limit) after every decision.
        limits: Vec<(f64, usize)>,
        decisions: Vec<LimitDecision>,
        finish: f64,
    }

    impl Trace {
        fn max_limit(&self) -> usize {
            self.limits.iter().map(|&(_, l)| l).max().unwrap()
        }
        fn final_limit(&self) -> usize {
            self.limits.last().unwrap().1
        }
        fn max_limit_after(&self, t: f64) -> usize {
            self.limits
                .iter()
                .filter(|&&(at, _)| at >= t)
                .map(|&(_, l)| l)
                .max()
                .unwrap_or(0)
        }
    }

    fn simulate(
        auto: ConcurrencyController,
        jobs: usize,
        work: impl Fn(usize) -> (f64, f64),
    ) -> Trace {
        simulate_capped(auto, jobs, usize::MAX, work)
    }

    /// As `simulate`, with at most `cap` jobs running whatever the limit
    /// (a runner that cannot start them faster).
    fn simulate_capped(
        mut auto: ConcurrencyController,
        jobs: usize,
        cap: usize,
        work: impl Fn(usize) -> (f64, f64),
    ) -> Trace {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut now = 0.0;
        let mut started = 0;
        let mut heap = BinaryHeap::new();
        let mut tickets = Vec::new();
        let mut trace = Trace {
            limits: vec![(0.0, auto.limit())],
            decisions: Vec::new(),
            finish: 0.0,
        };
        loop {
            let room = auto.limit().min(cap).saturating_sub(auto.running());
            let batch = room.min(jobs - started);
            let concurrency = auto.running() + batch;
            for _ in 0..batch {
                let (wall, cpu) = work(concurrency);
                let ticket = auto.job_started(at(now));
                tickets.push((ticket, cpu));
                let end = ((now + wall) * 1e9) as u64;
                heap.push(Reverse((end, tickets.len() - 1)));
                started += 1;
            }
            let Some(Reverse((end, id))) = heap.pop() else {
                break;
            };
            now = end as f64 / 1e9;
            let (ticket, cpu) = tickets[id];
            if let Some(d) = auto.job_finished(ticket, Duration::from_secs_f64(cpu), at(now)) {
                assert!(!d.to_string().is_empty());
                if std::env::var_os("ADAPT_TRACE").is_some() {
                    eprintln!("{now:8.3} s  {d}");
                }
                trace.limits.push((now, d.to));
                trace.decisions.push(d);
            }
            assert!(auto.limit() >= 1);
        }
        trace.finish = now;
        trace
    }

    #[test]
    fn cpu_bound_work_stays_at_the_core_count() {
        for cores in [1, 2, 4, 16] {
            let auto = ConcurrencyController::new(cores);
            // 50 ms of CPU per job; more jobs than cores share the CPUs.
            let trace = simulate(auto, 3000, |l| {
                (0.05 * (l as f64 / cores as f64).max(1.0), 0.05)
            });
            assert!(
                trace.max_limit() <= cores + 1,
                "cores {cores}: went to {}: {:?}",
                trace.max_limit(),
                trace.decisions
            );
            assert!(
                trace
                    .decisions
                    .iter()
                    .any(|d| matches!(d.reason, LimitReason::CpuBound { .. }))
            );
        }
    }

    #[test]
    fn mostly_cpu_work_with_a_little_io_stays_near_the_cores() {
        // 90% CPU: one job per core is right; at most one extra.
        let cores = 4;
        let trace = simulate(ConcurrencyController::new(cores), 2000, |l| {
            let cpu = 0.045;
            let wall = (0.05f64).max(cpu * l as f64 / cores as f64 + 0.005);
            (wall, cpu)
        });
        assert!(trace.max_limit() <= cores + 1, "{:?}", trace.decisions);
    }

    #[test]
    fn io_bound_work_climbs_while_throughput_follows() {
        // sleep 0.2: throughput proportional to concurrency.
        let trace = simulate(ConcurrencyController::new(2).with_max(256), 4000, |_| {
            (0.2, 0.001)
        });
        let reached = trace
            .limits
            .iter()
            .find(|&&(_, l)| l == 256)
            .map(|&(t, _)| t);
        let reached = reached.unwrap_or_else(|| panic!("never reached 256: {:?}", trace.decisions));
        assert!(reached < 1.0, "took {reached} s to climb");
        assert_eq!(trace.final_limit(), 256);
        // 4000 jobs at 256 at a time take about 16 waves of 0.2 s.
        assert!(trace.finish < 4.0, "finished at {}", trace.finish);
    }

    #[test]
    fn a_plateau_stops_the_climb_near_the_knee() {
        // A server that serves 20 requests at once: beyond that, requests queue.
        let trace = simulate(ConcurrencyController::new(4), 20_000, |l| {
            (0.1 * (l as f64 / 20.0).max(1.0), 0.001)
        });
        let settled = trace.final_limit();
        assert!(
            (16..=48).contains(&settled),
            "settled at {settled}: {:?}",
            trace.decisions
        );
        // After finding the knee it may probe one step up, never far beyond.
        assert!(trace.max_limit() <= 64, "{:?}", trace.decisions);
        assert!(trace.max_limit_after(5.0) <= 2 * 48);
        assert!(
            trace
                .decisions
                .iter()
                .any(|d| matches!(d.reason, LimitReason::Plateau { .. }))
        );
    }

    #[test]
    fn throughput_that_gets_worse_returns_to_the_better_level() {
        // Disk thrash: beyond 4 jobs, everything slows down more than in proportion.
        let trace = simulate(ConcurrencyController::new(4), 3000, |l| {
            let wall = if l <= 4 {
                0.1
            } else {
                0.1 * (l as f64 / 4.0).powi(2)
            };
            (wall, 0.002)
        });
        assert_eq!(trace.final_limit(), 4, "{:?}", trace.decisions);
    }

    #[test]
    fn multi_threaded_jobs_never_go_above_the_cores_and_come_down() {
        // Each job runs 4 threads on an 8-core machine: at 8 jobs they share
        // the cores (cpu/wall 1); at 4 each gets 2 cores for the same throughput.
        let trace = simulate(ConcurrencyController::new(8), 3000, |l| {
            (0.1 * (4.0 * l as f64 / 8.0).max(1.0), 0.4)
        });
        assert!(trace.max_limit() <= 8, "{:?}", trace.decisions);
        assert!(trace.final_limit() <= 4, "{:?}", trace.decisions);
        assert!(
            trace
                .decisions
                .iter()
                .any(|d| matches!(d.reason, LimitReason::Descend { .. }))
        );
    }

    #[test]
    fn a_workload_that_turns_cpu_bound_comes_back_down() {
        // Sleep-like for the first 2000 jobs, then CPU-bound (cores shared).
        let cores = 4;
        let count = std::cell::Cell::new(0usize);
        let trace = simulate(ConcurrencyController::new(cores), 12_000, |l| {
            count.set(count.get() + 1);
            if count.get() <= 2000 {
                (0.2, 0.001)
            } else {
                (0.01 * (l as f64 / cores as f64).max(1.0), 0.01)
            }
        });
        assert!(trace.max_limit() >= 128, "{:?}", trace.decisions);
        assert!(trace.final_limit() <= 2 * cores, "{:?}", trace.decisions);
    }

    #[test]
    fn bounds_are_respected() {
        let io = |_| (0.2, 0.001);
        let trace = simulate(ConcurrencyController::new(2).with_max(8), 500, io);
        assert_eq!(trace.max_limit(), 8);
        assert!(trace.decisions.iter().any(|d| matches!(
            d.reason,
            LimitReason::Bounded {
                bound: LimitBound::MaxJobs,
                ..
            }
        )));

        let mut auto = ConcurrencyController::new(2);
        assert!(auto.set_bound(LimitBound::OpenFiles, Some(10)).is_none());
        let trace = simulate(auto.clone(), 500, io);
        assert_eq!(trace.max_limit(), 10);

        auto.set_bound(LimitBound::Memory, Some(6));
        let trace = simulate(auto.clone(), 500, io);
        assert_eq!(trace.max_limit(), 6);

        // A bound below the current limit lowers it at once.
        let mut auto = ConcurrencyController::new(16);
        let d = auto.set_bound(LimitBound::Memory, Some(3)).unwrap();
        assert_eq!((d.from, d.to, auto.limit()), (16, 3, 3));
        // The minimum wins over a bound.
        let mut auto = ConcurrencyController::new(4).with_min(2);
        auto.set_bound(LimitBound::Memory, Some(1));
        assert_eq!(auto.limit(), 2);
    }

    #[test]
    fn a_level_the_jobs_do_not_fill_is_not_judged_as_a_knee() {
        // The input ends early: 12 sleeps.
        let trace = simulate(ConcurrencyController::new(2), 12, |_| (0.2, 0.001));
        assert!(
            !trace.decisions.iter().any(|d| matches!(
                d.reason,
                LimitReason::Refine { .. } | LimitReason::Plateau { .. }
            )),
            "{:?}",
            trace.decisions
        );
        // Jobs cannot be started faster than 6 at a time.
        let trace = simulate_capped(ConcurrencyController::new(2), 2000, 6, |_| (0.2, 0.001));
        assert!(trace.final_limit() >= 6, "{:?}", trace.decisions);
        assert!(
            trace
                .decisions
                .iter()
                .any(|d| matches!(d.reason, LimitReason::Unfilled { .. })),
            "{:?}",
            trace.decisions
        );
    }

    #[test]
    fn samples_from_an_older_level_do_not_judge_the_new_one() {
        let mut auto = ConcurrencyController::new(2);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let a = auto.job_started(ms(0));
        let b = auto.job_started(ms(0));
        let late = auto.job_started(ms(0));
        auto.job_finished(a, Duration::from_micros(100), ms(100));
        let d = auto
            .job_finished(b, Duration::from_micros(100), ms(100))
            .unwrap();
        assert!(d.to > 2);
        // `late` started at the old level: it must not trigger a decision.
        assert!(auto.job_finished(late, Duration::ZERO, ms(5000)).is_none());
        assert_eq!(auto.running(), 0);
    }

    #[test]
    fn out_of_order_timestamps_do_not_break_it() {
        let mut auto = ConcurrencyController::new(2);
        let t0 = Instant::now();
        let a = auto.job_started(t0 + Duration::from_secs(1));
        let b = auto.job_started(t0);
        auto.job_finished(a, Duration::ZERO, t0);
        auto.job_finished(b, Duration::ZERO, t0);
        assert!(auto.limit() >= 1);
    }
}
