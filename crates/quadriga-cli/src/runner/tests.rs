//! The runner's rules, without processes: a synthetic clock, invented
//! readings of the machine, and jobs that exit when the test says.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use quadriga::child::{Exit, Signal};

use super::gate::{GATE_RECHECK, Gate, GateConfig, Limit, Readings, Slots};
use super::kill::{KILL_GRACE, Timeouts};
use super::state::{Action, Admit, Config, Core, Record};
use super::{Outcome, skip};
use crate::args::{Resume, Timeout};
use crate::halt;
use crate::joblog::Logged;

const MB: u64 = 1 << 20;

/// The machine as the test says it is.
#[derive(Debug, Default)]
struct Fake {
    mem: Option<u64>,
    load: Option<f64>,
}

impl Readings for Fake {
    fn mem_available(&mut self) -> Option<u64> {
        self.mem
    }
    fn runnable_processes(&mut self) -> Option<f64> {
        self.load
    }
}

/// How a test's runner is set up.
struct Setup {
    limit: usize,
    attempts: u32,
    timeout: Option<Timeout>,
    halt: Option<&'static str>,
    gate: GateConfig,
    total: Option<u64>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            limit: 2,
            attempts: 1,
            timeout: None,
            halt: None,
            gate: GateConfig::default(),
            total: None,
        }
    }
}

impl Setup {
    /// A core with `jobs` input items (all read, the input done).
    fn core(self, jobs: u64) -> Core {
        let mut core = Core::new(
            Config {
                attempts: self.attempts,
                halt: self.halt.map(|h| halt::parse(h).unwrap().unwrap()),
                resume: Resume::No,
                total: self.total.or(Some(jobs)),
            },
            Gate::new(self.gate, Limit::Fixed(self.limit)),
            Timeouts::new(self.timeout),
            VecDeque::new(),
            BTreeMap::new(),
        );
        for i in 0..jobs {
            assert_eq!(core.input_item(vec![i.to_string().into_bytes()]), None);
        }
        core.input_done();
        core
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn code(c: i32) -> Exit {
    Exit::status(Some(c), None)
}

fn killed(sig: Signal) -> Exit {
    Exit::status(None, Some(sig.as_raw()))
}

/// Starts jobs while the core admits them; their ids.
fn start_all(core: &mut Core, now: Instant, sys: &mut Fake) -> Vec<u64> {
    let mut ids = Vec::new();
    while let Admit::Start(id) = core.admit(now, sys) {
        core.spawned(id);
        ids.push(id);
    }
    ids
}

fn actions(core: &mut Core) -> Vec<Action> {
    std::iter::from_fn(|| core.next_action()).collect()
}

fn records(actions: &[Action]) -> Vec<Record> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Record(r) => Some(*r),
            _ => None,
        })
        .collect()
}

fn signals(actions: &[Action]) -> Vec<(u64, Signal)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Signal { id, signal } => Some((*id, *signal)),
            _ => None,
        })
        .collect()
}

/// Every job is queued, running or done: never two, never none.
fn assert_census(core: &Core, jobs: u64) {
    let placed = core.queued() as u64 + core.running() as u64 + core.counts().done;
    assert_eq!(placed, jobs, "queued + running + done");
}

#[test]
fn slots_reuse_the_lowest_free() {
    let mut s = Slots::default();
    assert_eq!((s.take(), s.take(), s.take()), (1, 2, 3));
    s.put(2);
    s.put(1);
    assert_eq!(s.take(), 1);
    assert_eq!(s.take(), 2);
    assert_eq!(s.take(), 4);
}

#[test]
fn resume_skips() {
    let logged = |exitval| Logged {
        exitval,
        signal: 0,
        command: Vec::new(),
    };
    let prev = BTreeMap::from([(1, logged(0)), (2, logged(1))]);
    assert!(skip(Resume::Resume, &prev, 1));
    assert!(skip(Resume::Resume, &prev, 2));
    assert!(!skip(Resume::Resume, &prev, 3));
    assert!(skip(Resume::ResumeFailed, &prev, 1));
    assert!(!skip(Resume::ResumeFailed, &prev, 2));
    assert!(!skip(Resume::No, &prev, 1));
}

#[test]
fn each_job_is_in_exactly_one_place() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let jobs = 7;
    let mut core = Setup {
        limit: 3,
        attempts: 2,
        ..Setup::default()
    }
    .core(jobs);
    assert_census(&core, jobs);
    let mut t = t0;
    let mut step = 0;
    while !core.is_finished() {
        let ids = start_all(&mut core, t, &mut sys);
        assert!(core.running() <= 3);
        assert_census(&core, jobs);
        // Every third attempt fails (and is retried once).
        for id in ids {
            step += 1;
            t += ms(10);
            core.exited(id, code(i32::from(step % 3 == 0)), t, &mut sys);
            assert_census(&core, jobs);
        }
        let _ = actions(&mut core);
    }
    assert_eq!(core.counts().done, jobs);
    assert_eq!(core.running(), 0);
    assert_eq!(core.queued(), 0);
}

#[test]
fn sequence_numbers_and_slots() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let mut core = Setup::default().core(3);
    let ids = start_all(&mut core, t0, &mut sys);
    assert_eq!(ids.len(), 2, "the limit");
    assert_eq!((core.job(ids[0]).seq, core.slot(ids[0])), (1, 1));
    assert_eq!((core.job(ids[1]).seq, core.slot(ids[1])), (2, 2));
    core.exited(ids[0], code(0), t0 + ms(5), &mut sys);
    let next = start_all(&mut core, t0 + ms(5), &mut sys);
    // The freed slot is reused.
    assert_eq!((core.job(next[0]).seq, core.slot(next[0])), (3, 1));
}

#[test]
fn input_is_read_only_when_there_is_room() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    // No input at all, and said so: nothing to do.
    let mut core = Setup::default().core(0);
    // Input not yet read.
    let mut core2 = Core::new(
        Config {
            attempts: 1,
            halt: None,
            resume: Resume::No,
            total: None,
        },
        Gate::new(GateConfig::default(), Limit::Fixed(1)),
        Timeouts::new(None),
        VecDeque::new(),
        BTreeMap::new(),
    );
    assert_eq!(core.admit(t0, &mut sys), Admit::Wait);
    assert!(core.is_finished());
    assert_eq!(core2.admit(t0, &mut sys), Admit::NeedInput);
    assert_eq!(core2.input_item(vec![b"a".to_vec()]), None);
    let Admit::Start(id) = core2.admit(t0, &mut sys) else {
        panic!("a job was queued");
    };
    core2.spawned(id);
    // Full: no input is asked for.
    assert_eq!(core2.admit(t0, &mut sys), Admit::Wait);
    core2.exited(id, code(0), t0, &mut sys);
    assert_eq!(core2.admit(t0, &mut sys), Admit::NeedInput);
    core2.input_error("bad".into());
    assert_eq!(core2.admit(t0, &mut sys), Admit::Wait);
    assert!(core2.is_finished());
    assert_eq!(core2.outcome(), Err("bad".into()));
}

#[test]
fn retries_run_again_first_until_the_attempts_are_used() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let mut core = Setup {
        limit: 1,
        attempts: 3,
        ..Setup::default()
    }
    .core(2);
    for attempt in 0..3 {
        let ids = start_all(&mut core, t0, &mut sys);
        assert_eq!(ids.len(), 1);
        // The retry goes before job 2.
        assert_eq!(core.job(ids[0]).seq, 1);
        assert_eq!(core.job(ids[0]).attempts, attempt);
        core.exited(ids[0], code(4), t0, &mut sys);
        let a = actions(&mut core);
        if attempt < 2 {
            assert_eq!(a, [Action::Discard(ids[0])]);
            assert_eq!(core.counts().done, 0);
        } else {
            let r = records(&a);
            assert_eq!((r[0].seq, r[0].exitval, r[0].failed), (1, 4, true));
        }
    }
    assert_eq!(core.counts().failed, 1);
    let ids = start_all(&mut core, t0, &mut sys);
    assert_eq!(core.job(ids[0]).seq, 2);
    core.exited(ids[0], code(0), t0, &mut sys);
    assert!(core.is_finished());
    assert_eq!(core.outcome(), Ok(Outcome::Finished(1)));
}

#[test]
fn a_timeout_is_sigterm_then_sigkill_after_the_grace() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let mut core = Setup {
        limit: 1,
        timeout: Some(Timeout::Fixed(ms(1000))),
        ..Setup::default()
    }
    .core(1);
    let id = start_all(&mut core, t0, &mut sys)[0];
    assert_eq!(core.next_deadline(), Some(t0 + ms(1000)));
    core.tick(t0 + ms(999));
    assert!(actions(&mut core).is_empty());
    core.tick(t0 + ms(1000));
    assert_eq!(
        actions(&mut core),
        [
            Action::TimedOut(id),
            Action::Signal {
                id,
                signal: Signal::Term
            }
        ]
    );
    assert_eq!(core.next_deadline(), Some(t0 + ms(1000) + KILL_GRACE));
    core.tick(t0 + ms(1100));
    assert!(actions(&mut core).is_empty());
    core.tick(t0 + ms(1000) + KILL_GRACE);
    assert_eq!(signals(&actions(&mut core)), [(id, Signal::Kill)]);
    assert_eq!(core.next_deadline(), None);
    // It dies of the SIGKILL: logged as a timeout, no third signal.
    core.exited(id, killed(Signal::Kill), t0 + ms(1350), &mut sys);
    let a = actions(&mut core);
    assert!(signals(&a).is_empty());
    let r = records(&a)[0];
    assert_eq!((r.exitval, r.signal, r.failed), (-1, 9, true));
    assert_eq!(r.runtime, ms(1350));
}

#[test]
fn a_job_that_dies_of_the_sigterm_gets_sigkill_for_its_group() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let mut core = Setup {
        limit: 1,
        timeout: Some(Timeout::Fixed(ms(10))),
        ..Setup::default()
    }
    .core(1);
    let id = start_all(&mut core, t0, &mut sys)[0];
    core.tick(t0 + ms(10));
    let _ = actions(&mut core);
    core.exited(id, code(0), t0 + ms(20), &mut sys);
    let a = actions(&mut core);
    assert_eq!(signals(&a), [(id, Signal::Kill)]);
    // A timed-out job failed, whatever its exit code: -1 and SIGTERM.
    let r = records(&a)[0];
    assert_eq!((r.exitval, r.signal, r.failed), (-1, 15, true));
}

#[test]
fn a_percent_timeout_follows_the_median_of_three_or_more_successes() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let mut core = Setup {
        limit: 1,
        timeout: Some(Timeout::Percent(200.0)),
        ..Setup::default()
    }
    .core(5);
    let mut t = t0;
    for run in [ms(100), ms(300), ms(200)] {
        let id = start_all(&mut core, t, &mut sys)[0];
        // Fewer than three successes: no timeout yet.
        assert_eq!(core.next_deadline(), None);
        core.tick(t + ms(10_000));
        assert!(signals(&actions(&mut core)).is_empty());
        t += run;
        core.exited(id, code(0), t, &mut sys);
        let _ = actions(&mut core);
    }
    // The median is 200 ms: 200% of it is 400 ms.
    let id = start_all(&mut core, t, &mut sys)[0];
    assert_eq!(core.next_deadline(), Some(t + ms(400)));
    core.tick(t + ms(399));
    assert!(actions(&mut core).is_empty());
    core.tick(t + ms(400));
    assert_eq!(signals(&actions(&mut core)), [(id, Signal::Term)]);
    // Failures do not move the median.
    core.exited(id, killed(Signal::Term), t + ms(401), &mut sys);
    let _ = actions(&mut core);
    t += ms(401);
    let _id = start_all(&mut core, t, &mut sys)[0];
    assert_eq!(core.next_deadline(), Some(t + ms(400)));
}

#[test]
fn halt_now_on_a_failure_kills_the_others_uncounted() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let mut core = Setup {
        limit: 3,
        halt: Some("now,fail=1"),
        ..Setup::default()
    }
    .core(5);
    let ids = start_all(&mut core, t0, &mut sys);
    assert_eq!(ids.len(), 3);
    core.exited(ids[0], code(3), t0 + ms(5), &mut sys);
    let a = actions(&mut core);
    assert_eq!(records(&a).len(), 1);
    assert_eq!(
        signals(&a),
        [(ids[1], Signal::Term), (ids[2], Signal::Term)]
    );
    assert_eq!(core.admit(t0 + ms(5), &mut sys), Admit::Wait);
    core.exited(ids[1], killed(Signal::Term), t0 + ms(6), &mut sys);
    core.exited(ids[2], killed(Signal::Term), t0 + ms(7), &mut sys);
    let a = actions(&mut core);
    assert!(a.contains(&Action::Show(ids[1])) && a.contains(&Action::Show(ids[2])));
    assert!(records(&a).is_empty());
    assert!(core.is_finished());
    assert_eq!(core.counts().done, 1);
    // fail=1: the failing job's own status.
    assert_eq!(core.outcome(), Ok(Outcome::Finished(3)));
}

#[test]
fn halt_soon_on_a_percentage_lets_running_jobs_finish_without_retries() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let mut core = Setup {
        limit: 2,
        attempts: 2,
        halt: Some("soon,fail=25%"),
        ..Setup::default()
    }
    .core(4);
    let ids = start_all(&mut core, t0, &mut sys);
    // A failure with attempts left is retried, not yet counted.
    core.exited(ids[0], code(1), t0, &mut sys);
    assert_eq!(actions(&mut core), [Action::Discard(ids[0])]);
    let retry = start_all(&mut core, t0, &mut sys);
    assert_eq!(core.job(retry[0]).seq, 1);
    // Its second failure is final: 1 of 4 is 25%, so the run halts soon.
    core.exited(retry[0], code(1), t0, &mut sys);
    let a = actions(&mut core);
    assert_eq!(records(&a).len(), 1);
    // Soon: nothing is killed, and nothing new starts.
    assert!(signals(&a).is_empty());
    assert_eq!(core.admit(t0, &mut sys), Admit::Wait);
    // The job still running finishes; while halting, a failure is final.
    core.exited(ids[1], code(1), t0, &mut sys);
    let a = actions(&mut core);
    assert_eq!(records(&a)[0].seq, 2);
    assert!(core.is_finished());
    assert_eq!(core.counts().failed, 2);
    // fail=N%: the percentage of failed jobs.
    assert_eq!(core.outcome(), Ok(Outcome::Finished(50)));
}

#[test]
fn halt_on_successes_counts_and_percentages() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let mut core = Setup {
        limit: 1,
        halt: Some("now,success=2"),
        ..Setup::default()
    }
    .core(5);
    for _ in 0..2 {
        assert!(!core.is_finished());
        let id = start_all(&mut core, t0, &mut sys)[0];
        core.exited(id, code(0), t0, &mut sys);
    }
    assert_eq!(core.counts().succeeded, 2);
    assert_eq!(core.admit(t0, &mut sys), Admit::Wait);
    assert!(core.is_finished());
    assert_eq!(core.outcome(), Ok(Outcome::Finished(0)));

    let mut core = Setup {
        limit: 1,
        halt: Some("soon,done=50%"),
        ..Setup::default()
    }
    .core(4);
    for _ in 0..2 {
        let id = start_all(&mut core, t0, &mut sys)[0];
        core.exited(id, code(1), t0, &mut sys);
    }
    assert!(core.is_finished());
    assert_eq!(core.counts().done, 2);
    assert_eq!(core.outcome(), Ok(Outcome::Finished(2)));
}

#[test]
fn memfree_closes_the_gate_and_evicts_the_youngest_when_short() {
    let t0 = Instant::now();
    let mut sys = Fake {
        mem: Some(4096 * MB),
        load: None,
    };
    let mut core = Setup {
        limit: 4,
        gate: GateConfig {
            memfree: Some(1024 * MB),
            ..GateConfig::default()
        },
        ..Setup::default()
    }
    .core(4);
    let first = start_all(&mut core, t0, &mut sys);
    assert_eq!(first.len(), 4);
    for &id in &first[2..] {
        core.exited(id, code(0), t0 + ms(1), &mut sys);
    }
    // Below --memfree: closed, looked at again shortly; nothing killed.
    sys.mem = Some(800 * MB);
    let t1 = t0 + ms(50);
    assert_eq!(core.admit(t1, &mut sys), Admit::Wait);
    assert_eq!(core.next_deadline(), Some(t1 + GATE_RECHECK));
    assert!(signals(&actions(&mut core)).is_empty());
    // Below half of it, with two running: the youngest makes room.
    let mut core = Setup {
        limit: 4,
        gate: GateConfig {
            memfree: Some(1024 * MB),
            ..GateConfig::default()
        },
        ..Setup::default()
    }
    .core(3);
    sys.mem = Some(4096 * MB);
    let a = start_all(&mut core, t0, &mut sys);
    assert_eq!(a.len(), 3);
    core.exited(a[2], code(0), t0 + ms(1), &mut sys);
    let _ = actions(&mut core);
    sys.mem = Some(400 * MB);
    let t2 = t0 + ms(100);
    assert_eq!(core.admit(t2, &mut sys), Admit::Wait);
    let acts = actions(&mut core);
    // Both started at t0: the later id is the younger.
    assert_eq!(signals(&acts), [(a[1], Signal::Term)]);
    // Killed for memory: back in the queue, not counted, output dropped.
    core.exited(a[1], killed(Signal::Term), t2 + ms(1), &mut sys);
    let acts = actions(&mut core);
    assert!(acts.contains(&Action::Discard(a[1])));
    assert!(records(&acts).is_empty());
    assert_eq!(core.queued(), 1);
    assert_census(&core, 3);
    // Memory back: it runs again, as the same job.
    sys.mem = Some(4096 * MB);
    let again = start_all(&mut core, t2 + ms(200), &mut sys);
    assert_eq!(core.job(again[0]).seq, 2);
}

#[test]
fn delay_and_load_close_the_gate_until_a_time() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let mut core = Setup {
        limit: 4,
        gate: GateConfig {
            delay: Some(ms(500)),
            ..GateConfig::default()
        },
        ..Setup::default()
    }
    .core(3);
    assert_eq!(start_all(&mut core, t0, &mut sys).len(), 1);
    assert_eq!(core.next_deadline(), Some(t0 + ms(500)));
    assert_eq!(start_all(&mut core, t0 + ms(499), &mut sys).len(), 0);
    assert_eq!(start_all(&mut core, t0 + ms(500), &mut sys).len(), 1);

    let mut sys = Fake {
        mem: None,
        load: Some(8.0),
    };
    let mut core = Setup {
        limit: 4,
        gate: GateConfig {
            load: Some(4.0),
            ..GateConfig::default()
        },
        ..Setup::default()
    }
    .core(2);
    assert_eq!(core.admit(t0, &mut sys), Admit::Wait);
    assert_eq!(core.next_deadline(), Some(t0 + GATE_RECHECK));
    sys.load = Some(3.0);
    assert_eq!(start_all(&mut core, t0 + GATE_RECHECK, &mut sys).len(), 2);
}

#[test]
fn signals_stop_the_run_and_a_second_one_kills_without_grace() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let mut core = Setup::default().core(5);
    let ids = start_all(&mut core, t0, &mut sys);
    core.signal_received(2, t0 + ms(1));
    assert_eq!(
        signals(&actions(&mut core)),
        [(ids[0], Signal::Term), (ids[1], Signal::Term)]
    );
    assert_eq!(core.admit(t0 + ms(1), &mut sys), Admit::Wait);
    core.signal_received(2, t0 + ms(2));
    let mut s = signals(&actions(&mut core));
    s.sort_unstable_by_key(|&(id, _)| id);
    assert_eq!(s, [(ids[0], Signal::Kill), (ids[1], Signal::Kill)]);
    // Already escalated: no SIGKILL at the end of the grace, nor at the exit.
    core.tick(t0 + ms(1) + KILL_GRACE);
    assert!(signals(&actions(&mut core)).is_empty());
    for &id in &ids {
        core.exited(id, killed(Signal::Kill), t0 + ms(3), &mut sys);
    }
    let a = actions(&mut core);
    assert!(signals(&a).is_empty());
    assert_eq!(a, [Action::Show(ids[0]), Action::Show(ids[1])]);
    assert!(core.is_finished());
    assert_eq!(core.outcome(), Ok(Outcome::Interrupted(2)));
}

#[test]
fn a_broken_pipe_stops_the_run() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let mut core = Setup::default().core(3);
    let ids = start_all(&mut core, t0, &mut sys);
    core.broken_pipe(t0);
    assert_eq!(signals(&actions(&mut core)).len(), ids.len());
    for id in ids {
        core.exited(id, killed(Signal::Term), t0, &mut sys);
    }
    assert!(core.is_finished());
    assert_eq!(core.outcome(), Ok(Outcome::BrokenPipe));
}

#[test]
fn spawn_failures_wait_when_transient_and_end_the_job_otherwise() {
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let mut core = Setup {
        limit: 3,
        ..Setup::default()
    }
    .core(3);
    let Admit::Start(a) = core.admit(t0, &mut sys) else {
        panic!()
    };
    core.spawned(a);
    let Admit::Start(b) = core.admit(t0, &mut sys) else {
        panic!()
    };
    // Out of processes with a job running: put back, and nothing more
    // starts until a job ends.
    assert!(core.spawn_failed(b, true, 127, t0, &mut sys));
    assert_eq!(core.queued(), 2);
    assert_eq!(core.admit(t0, &mut sys), Admit::Wait);
    core.exited(a, code(0), t0, &mut sys);
    let Admit::Start(c) = core.admit(t0, &mut sys) else {
        panic!()
    };
    assert_eq!(core.job(c).seq, 2);
    // Not found: the job ends with 127.
    assert!(!core.spawn_failed(c, false, 127, t0, &mut sys));
    let r = records(&actions(&mut core));
    assert_eq!((r.last().unwrap().seq, r.last().unwrap().exitval), (2, 127));
    assert_census(&core, 3);
}

#[test]
fn a_job_killed_from_outside_takes_its_group_along() {
    // Its first process died of a signal nobody here sent (a `kill -9` of
    // its shell): whatever it started gets SIGKILL too. A job that exits
    // by itself leaves its group alone, as before.
    let t0 = Instant::now();
    let mut sys = Fake::default();
    let mut core = Setup::default().core(2);
    let ids = start_all(&mut core, t0, &mut sys);
    core.exited(ids[0], killed(Signal::Kill), t0 + ms(5), &mut sys);
    let a = actions(&mut core);
    assert_eq!(signals(&a), [(ids[0], Signal::Kill)]);
    assert!(records(&a)[0].failed);
    core.exited(ids[1], code(3), t0 + ms(6), &mut sys);
    assert!(signals(&actions(&mut core)).is_empty());
}
