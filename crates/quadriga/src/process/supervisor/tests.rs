//! The supervisor's rules, driven without processes: a synthetic clock, and
//! synthetic workers that answer what the test says. After every step, each
//! item of each job is in exactly one place: queued, in flight on one worker,
//! or delivered (once); only a cancelled job's items may vanish.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::child::{Exit, Signal};
use crate::error::TaskError;
use crate::executor::Shutdown;
use crate::task::batch::Batch;
use crate::task::outcomes::Outcomes;

use super::core::{Action, Core, Event, Flush, Rules, WorkerId, backoff};
use super::job::{Command, Job, Sink};

const MS: Duration = Duration::from_millis(1);
const KILLED: Exit = Exit::status(None, Some(9));
const EXITED: Exit = Exit::status(Some(0), None);

/// What the test sinks saw.
#[derive(Default)]
struct Log {
    /// Each item: its tag, or its error.
    finished: HashMap<u64, Vec<Result<u32, TaskError>>>,
    dropped: HashSet<u64>,
    starts: HashMap<u64, u32>,
}

struct TestSink {
    id: u64,
    log: Arc<Mutex<Log>>,
    refuse: bool,
    finished: bool,
}

impl Sink for TestSink {
    fn start(&mut self) -> bool {
        *self.log.lock().unwrap().starts.entry(self.id).or_default() += 1;
        !self.refuse
    }

    fn finish(mut self: Box<Self>, outcomes: Outcomes, _elapsed: Duration) {
        self.finished = true;
        let items = outcomes
            .iter()
            .map(|raw| match raw {
                Ok(bytes) => Ok(u32::from_le_bytes(bytes.try_into().unwrap())),
                Err(Some(err)) => Err(err.clone()),
                Err(None) => panic!("a malformed outcome"),
            })
            .collect();
        let old = self.log.lock().unwrap().finished.insert(self.id, items);
        assert!(old.is_none(), "job {} finished twice", self.id);
    }
}

impl Drop for TestSink {
    fn drop(&mut self) {
        if !self.finished {
            self.log.lock().unwrap().dropped.insert(self.id);
        }
    }
}

/// An action as the test records it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Spawn(WorkerId),
    Run(WorkerId, u64),
    Exit(WorkerId),
    Signal(WorkerId, Signal),
    Abandon(WorkerId),
    Finish(u64),
}

fn tags(batch: &Batch) -> Vec<u32> {
    (0..batch.len())
        .map(|i| u32::from_le_bytes(batch.item(i).unwrap().try_into().unwrap()))
        .collect()
}

fn rules(workers: usize) -> Rules {
    Rules {
        workers,
        grace: 500 * MS,
        max_tasks_per_worker: None,
        memory_limit: None,
        own_pid: 1,
    }
}

struct Sim {
    core: Core,
    now: Instant,
    log: Arc<Mutex<Log>>,
    next_tag: u32,
    /// Every tag submitted, and its job.
    tags: HashMap<u32, u64>,
    /// Every job seen (submitted, or a part of a split chunk): its tags.
    jobs: HashMap<u64, Vec<u32>>,
    /// How many times each tag was delivered.
    done: HashMap<u32, u32>,
    /// Jobs the test cancelled (or whose sink refuses to start).
    cancelled: HashSet<u64>,
    seen: Vec<Seen>,
    /// Answer `Spawn` at once with a running worker.
    auto_spawn: bool,
    /// Answer the next `Run` with this encoding error.
    push_error: Option<String>,
    written: u64,
    pids: HashMap<WorkerId, u32>,
    next_pid: u32,
}

impl Sim {
    fn new(rules: Rules) -> Self {
        let now = Instant::now();
        Self {
            core: Core::new(rules, now),
            now,
            log: Arc::default(),
            next_tag: 0,
            tags: HashMap::new(),
            jobs: HashMap::new(),
            done: HashMap::new(),
            cancelled: HashSet::new(),
            seen: Vec::new(),
            auto_spawn: true,
            push_error: None,
            written: 0,
            pids: HashMap::new(),
            next_pid: 100,
        }
    }

    fn job(&mut self, items: usize, timeout: Option<Duration>, retries: u32, refuse: bool) -> Job {
        let id = crate::handle::next_id();
        let mut input = Batch::default();
        let mut mine = Vec::new();
        for _ in 0..items {
            let tag = self.next_tag;
            self.next_tag += 1;
            input.push_raw(&tag.to_le_bytes(), &[]);
            self.tags.insert(tag, id);
            mine.push(tag);
        }
        self.jobs.insert(id, mine);
        if refuse {
            self.cancelled.insert(id);
        }
        Job {
            id,
            task: "test",
            input,
            timeout,
            retries,
            sink: Box::new(TestSink {
                id,
                log: Arc::clone(&self.log),
                refuse,
                finished: false,
            }),
            started: false,
        }
    }

    fn submit_with(&mut self, items: usize, timeout: Option<Duration>, retries: u32) -> u64 {
        let job = self.job(items, timeout, retries, false);
        let id = job.id;
        self.step(Event::Command(Command::Submit(job)));
        id
    }

    fn submit(&mut self) -> u64 {
        self.submit_with(1, None, 0)
    }

    fn cancel(&mut self, id: u64) {
        self.cancelled.insert(id);
        self.step(Event::Command(Command::Cancel(id)));
    }

    fn tick(&mut self) {
        self.step(Event::Tick);
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Ticks, and makes every worker started so far ready.
    fn ready_all(&mut self) {
        self.tick();
        for (w, ready) in self.core.workers() {
            if !ready {
                self.step(Event::Ready { worker: w });
            }
        }
        self.tick();
    }

    fn head(&self, worker: WorkerId) -> Option<u64> {
        self.core.outstanding(worker).first().copied()
    }

    /// The worker ends its head job, each item answering its own tag.
    fn finish_head(&mut self, worker: WorkerId, nanos: u64) -> u64 {
        let job = self.head(worker).expect("a head");
        let mut outcomes = Outcomes::default();
        for tag in &self.jobs[&job] {
            outcomes.push_ok(&tag.to_le_bytes());
        }
        self.step(Event::Done {
            worker,
            job,
            nanos,
            outcomes,
        });
        job
    }

    fn die(&mut self, worker: WorkerId, exit: Exit) {
        self.step(Event::Died { worker, exit });
    }

    fn result(&self, id: u64) -> Option<Vec<Result<u32, TaskError>>> {
        self.log.lock().unwrap().finished.get(&id).cloned()
    }

    fn error(&self, id: u64) -> TaskError {
        let items = self.result(id).expect("finished");
        items[0].clone().expect_err("failed")
    }

    fn dropped(&self, id: u64) -> bool {
        self.log.lock().unwrap().dropped.contains(&id)
    }

    fn starts(&self, id: u64) -> u32 {
        self.log
            .lock()
            .unwrap()
            .starts
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    /// What was done from `mark` on.
    fn since(&self, mark: usize) -> &[Seen] {
        &self.seen[mark..]
    }

    fn spawns(&self) -> usize {
        self.seen
            .iter()
            .filter(|s| matches!(s, Seen::Spawn(_)))
            .count()
    }

    /// Feeds `event`, carries out what the core asks (answering spawns and
    /// sends as a shell would), then checks the invariant.
    fn step(&mut self, event: Event) {
        let mut next = Some(event);
        let mut replies = VecDeque::new();
        while let Some(event) = next {
            self.core.handle(self.now, event);
            while let Some(action) = self.core.poll_action() {
                match action {
                    Action::Spawn { worker } => {
                        self.seen.push(Seen::Spawn(worker));
                        if self.auto_spawn {
                            self.next_pid += 1;
                            self.pids.insert(worker, self.next_pid);
                            replies.push_back(Event::Spawned {
                                worker,
                                pid: self.next_pid,
                            });
                        }
                    }
                    Action::Run { worker, job } => {
                        let (_, input) =
                            self.core.sent(worker, job).expect("a run names a held job");
                        self.seen.push(Seen::Run(worker, job));
                        self.jobs.entry(job).or_insert_with(|| tags(input));
                        let frame_end = match self.push_error.take() {
                            Some(why) => Err(why),
                            None => {
                                self.written += 8 + input.bytes.len() as u64;
                                Ok(self.written)
                            }
                        };
                        replies.push_back(Event::Pushed {
                            worker,
                            job,
                            frame_end,
                        });
                    }
                    Action::Exit { worker } => self.seen.push(Seen::Exit(worker)),
                    Action::Signal { worker, sig } => self.seen.push(Seen::Signal(worker, sig)),
                    Action::Abandon { worker } => self.seen.push(Seen::Abandon(worker)),
                    Action::Finish(delivery) => {
                        self.seen.push(Seen::Finish(delivery.job));
                        let mine = self
                            .jobs
                            .get(&delivery.job)
                            .unwrap_or_else(|| panic!("job {} delivered unseen", delivery.job));
                        assert_eq!(delivery.outcomes.len(), mine.len());
                        for tag in mine {
                            let n = self.done.entry(*tag).or_default();
                            *n += 1;
                            assert_eq!(*n, 1, "item {tag} delivered twice");
                        }
                        delivery.deliver();
                    }
                }
            }
            next = replies.pop_front();
        }
        self.check();
    }

    /// Each item in exactly one place.
    fn check(&mut self) {
        let mut count: HashMap<u32, usize> = HashMap::new();
        let mut ids = HashSet::new();
        for (id, _, batch) in self.core.places() {
            assert!(ids.insert(id), "job {id} is in two places");
            let mine = tags(batch);
            for &tag in &mine {
                *count.entry(tag).or_default() += 1;
            }
            self.jobs.entry(id).or_insert(mine);
        }
        for (&tag, &job) in &self.tags {
            let n = count.get(&tag).copied().unwrap_or(0)
                + self.done.get(&tag).copied().unwrap_or(0) as usize;
            if self.cancelled.contains(&job) {
                assert!(n <= 1, "item {tag} of cancelled job {job} is in {n} places");
            } else {
                assert_eq!(n, 1, "item {tag} of job {job} is in {n} places");
            }
        }
    }

    /// Runs one very short job so that workers take several jobs at once.
    fn deepen(&mut self, worker: WorkerId) {
        let id = self.submit();
        self.tick();
        assert_eq!(self.head(worker), Some(id));
        self.finish_head(worker, 1_000);
    }
}

#[test]
fn backoff_grows_and_is_capped() {
    assert_eq!(backoff(0), Duration::ZERO);
    assert_eq!(backoff(1), Duration::ZERO);
    assert_eq!(backoff(2), Duration::from_millis(10));
    assert_eq!(backoff(3), Duration::from_millis(20));
    assert_eq!(backoff(50), Duration::from_secs(2));
}

#[test]
fn workers_start_one_at_a_time_and_take_jobs_once_ready() {
    let mut sim = Sim::new(rules(3));
    let a = sim.submit();
    sim.tick();
    assert_eq!(sim.spawns(), 3, "all the missing workers are asked for");
    assert_eq!(sim.core.queued(), [a], "nothing goes to a worker not ready");
    sim.step(Event::Ready { worker: 1 });
    sim.tick();
    assert_eq!(sim.core.outstanding(1), [a]);
    assert_eq!(sim.starts(a), 1);
    sim.finish_head(1, 5_000_000);
    assert_eq!(sim.result(a).unwrap()[0].as_ref().unwrap(), &0);
}

#[test]
fn only_the_head_of_a_dead_worker_fails_the_rest_go_back_unstarted() {
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    sim.deepen(0);
    let (a, b, c) = (sim.submit(), sim.submit(), sim.submit());
    sim.tick();
    assert_eq!(sim.core.outstanding(0), [a, b, c], "pipelined");
    sim.die(0, KILLED);
    let err = sim.error(a);
    assert!(err.is_crashed());
    assert_eq!(err.signal(), Some(9));
    assert_eq!(err.pid(), Some(sim.pids[&0]));
    assert_eq!(sim.core.queued(), [b, c], "back at the front, in order");
    assert!(sim.result(b).is_none() && sim.result(c).is_none());
    // A first crash respawns at once; the others run on the new worker,
    // never started twice.
    sim.ready_all();
    assert_eq!(sim.core.outstanding(0), [b, c]);
    sim.finish_head(0, 1_000);
    sim.finish_head(0, 1_000);
    assert!(sim.result(b).unwrap()[0].is_ok());
    assert!(sim.result(c).unwrap()[0].is_ok());
    assert_eq!((sim.starts(b), sim.starts(c)), (1, 1));
}

#[test]
fn a_crashed_job_is_retried_as_many_times_as_allowed() {
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    let a = sim.submit_with(1, None, 1);
    sim.tick();
    sim.die(0, KILLED);
    assert_eq!(sim.core.queued(), [a], "retried");
    sim.ready_all();
    assert_eq!(sim.head(0), Some(a));
    sim.die(0, Exit::status(Some(3), None));
    let err = sim.error(a);
    assert!(err.is_crashed());
    assert_eq!(err.exit_code(), Some(3));
    assert_eq!(sim.starts(a), 1);
}

#[test]
fn a_crashed_chunk_is_split_so_only_the_crashing_item_fails() {
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    let chunk = sim.submit_with(3, None, 0);
    sim.tick();
    sim.die(0, KILLED);
    let parts = sim.core.queued();
    assert_eq!(parts.len(), 3, "one job per item");
    assert!(sim.result(chunk).is_none());
    sim.ready_all();
    assert_eq!(sim.head(0), Some(parts[0]));
    sim.finish_head(0, 5_000_000);
    sim.tick();
    assert_eq!(sim.head(0), Some(parts[1]));
    sim.die(0, KILLED);
    sim.ready_all();
    assert_eq!(sim.head(0), Some(parts[2]));
    sim.finish_head(0, 5_000_000);
    let items = sim
        .result(chunk)
        .expect("the chunk answers once every part has");
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok() && items[2].is_ok());
    assert!(items[1].as_ref().unwrap_err().is_crashed());
}

#[test]
fn a_timeout_counts_from_becoming_head_then_term_then_kill_after_grace() {
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    sim.deepen(0);
    let a = sim.submit();
    let b = sim.submit_with(1, Some(100 * MS), 0);
    let c = sim.submit();
    sim.tick();
    assert_eq!(sim.core.outstanding(0), [a, b, c]);
    // A runs for a second: B's clock has not started.
    sim.advance(1000 * MS);
    sim.tick();
    assert!(sim.result(b).is_none());
    sim.finish_head(0, 1_000);
    assert_eq!(sim.core.next_deadline(), Some(sim.now + 100 * MS));
    sim.advance(99 * MS);
    sim.tick();
    assert!(sim.result(b).is_none());
    let mark = sim.seen.len();
    sim.advance(MS);
    sim.tick();
    let err = sim.error(b);
    assert!(err.is_timed_out());
    assert_eq!(err.timeout(), Some(100 * MS));
    assert!(sim.since(mark).contains(&Seen::Signal(0, Signal::Term)));
    assert!(sim.core.queued().contains(&c) || sim.core.outstanding(1) == [c]);
    // SIGKILL exactly when the grace period ends.
    assert_eq!(sim.core.next_deadline(), Some(sim.now + 500 * MS));
    let mark = sim.seen.len();
    sim.advance(499 * MS);
    sim.tick();
    assert!(!sim.since(mark).contains(&Seen::Signal(0, Signal::Kill)));
    sim.advance(MS);
    sim.tick();
    assert!(sim.since(mark).contains(&Seen::Signal(0, Signal::Kill)));
    // A death we caused: no back-off, C runs on its replacement.
    sim.die(0, KILLED);
    sim.ready_all();
    assert!(sim.core.outstanding(0) == [c] || sim.core.outstanding(1) == [c]);
}

#[test]
fn three_failed_initializers_in_a_row_break_the_pool() {
    let mut sim = Sim::new(rules(1));
    let a = sim.submit();
    let error = TaskError::failed("no model");
    for round in 0..3 {
        if round == 1 {
            // A worker that comes up resets the count.
            sim.tick();
            sim.step(Event::Ready { worker: 0 });
            sim.step(Event::Died {
                worker: 0,
                exit: EXITED,
            });
        }
        sim.tick();
        sim.step(Event::InitFailed {
            worker: 0,
            error: error.clone(),
        });
        sim.die(0, Exit::status(Some(1), None));
        assert!(!sim.core.is_broken(), "round {round}");
    }
    sim.tick();
    sim.step(Event::InitFailed { worker: 0, error });
    assert!(sim.core.is_broken());
    sim.die(0, EXITED);
    let spawns = sim.spawns();
    sim.tick();
    let err = sim.error(a);
    assert!(err.is_crashed());
    assert!(
        err.message().contains("initializer failed three times"),
        "{err}"
    );
    assert_eq!(sim.spawns(), spawns, "a broken pool starts no worker");
    let b = sim.submit();
    assert!(sim.error(b).message().contains("initializer"));
}

#[test]
fn failed_spawns_back_off_then_break_the_pool() {
    let mut sim = Sim::new(rules(1));
    sim.auto_spawn = false;
    let a = sim.submit();
    let fail = |sim: &mut Sim| {
        let Some(Seen::Spawn(worker)) = sim.seen.last().cloned() else {
            panic!("a spawn was asked for");
        };
        sim.step(Event::SpawnFailed {
            worker,
            why: "EAGAIN".into(),
        });
    };
    sim.tick();
    fail(&mut sim);
    sim.tick();
    assert_eq!(sim.spawns(), 2, "no wait after the first failure");
    fail(&mut sim);
    sim.advance(9 * MS);
    sim.tick();
    assert_eq!(sim.spawns(), 2, "10 ms after the second");
    sim.advance(MS);
    sim.tick();
    assert_eq!(sim.spawns(), 3);
    fail(&mut sim);
    assert!(sim.core.is_broken());
    let err = sim.error(a);
    assert!(
        err.message()
            .contains("could not start a worker process: EAGAIN")
    );
    assert_eq!(err.pid(), Some(1), "the pool's own pid");
}

#[test]
fn respawns_after_crashes_back_off_from_10ms_doubling_to_2s() {
    let mut sim = Sim::new(rules(1));
    let mut waits = Vec::new();
    sim.tick();
    for _ in 0..11 {
        sim.step(Event::Ready { worker: 0 });
        sim.die(0, KILLED);
        let died = sim.now;
        let spawns = sim.spawns();
        loop {
            sim.tick();
            if sim.spawns() > spawns {
                break;
            }
            let next = sim.core.next_deadline().expect("a respawn is due");
            sim.now = next;
        }
        waits.push((sim.now - died).as_millis());
    }
    assert_eq!(
        waits,
        [0, 10, 20, 40, 80, 160, 320, 640, 1280, 2000, 2000],
        "a first crash restarts at once"
    );
    // A completed job resets the count.
    let a = sim.submit();
    sim.step(Event::Ready { worker: 0 });
    sim.tick();
    assert_eq!(sim.head(0), Some(a));
    sim.finish_head(0, 1_000);
    sim.die(0, KILLED);
    let spawns = sim.spawns();
    sim.tick();
    assert_eq!(sim.spawns(), spawns + 1);
}

#[test]
fn a_worker_is_recycled_after_its_quota_of_items() {
    let mut sim = Sim::new(Rules {
        max_tasks_per_worker: Some(2),
        ..rules(1)
    });
    sim.ready_all();
    sim.deepen(0);
    let (a, b) = (sim.submit(), sim.submit());
    sim.tick();
    assert_eq!(sim.core.outstanding(0), [a], "one item left in its quota");
    assert_eq!(sim.core.queued(), [b]);
    let mark = sim.seen.len();
    sim.finish_head(0, 1_000);
    assert_eq!(sim.since(mark).first(), Some(&Seen::Exit(0)));
    sim.tick();
    assert!(sim.since(mark).contains(&Seen::Spawn(1)), "a replacement");
    sim.die(0, EXITED);
    sim.step(Event::Ready { worker: 1 });
    sim.tick();
    assert_eq!(sim.core.outstanding(1), [b]);
    // Its exit was expected: no back-off was armed.
    sim.finish_head(1, 1_000);
}

#[test]
fn a_cancelled_queued_job_never_starts() {
    let mut sim = Sim::new(rules(1));
    let a = sim.submit();
    sim.cancel(a);
    assert!(sim.dropped(a) && sim.starts(a) == 0);
    sim.ready_all();
    assert!(sim.core.outstanding(0).is_empty());
    // A sink that says it was cancelled meanwhile is dropped unrun.
    let job = sim.job(1, None, 0, true);
    let b = job.id;
    sim.step(Event::Command(Command::Submit(job)));
    sim.tick();
    assert!(sim.dropped(b) && sim.core.outstanding(0).is_empty());
}

#[test]
fn a_cancelled_running_job_kills_its_worker_and_is_not_failed() {
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    let a = sim.submit();
    sim.tick();
    let mark = sim.seen.len();
    sim.cancel(a);
    assert_eq!(sim.since(mark), [Seen::Signal(0, Signal::Kill)]);
    assert!(sim.dropped(a) && sim.result(a).is_none());
    sim.die(0, KILLED);
    let spawns = sim.spawns();
    sim.tick();
    assert_eq!(sim.spawns(), spawns + 1, "an expected death: no back-off");
}

#[test]
fn a_cancelled_pipelined_job_is_discarded_when_it_would_start() {
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    sim.deepen(0);
    let (a, b, c) = (sim.submit(), sim.submit(), sim.submit());
    sim.tick();
    sim.cancel(b);
    assert_eq!(sim.core.outstanding(0), [a, b, c], "only marked");
    let mark = sim.seen.len();
    sim.finish_head(0, 1_000);
    assert!(sim.result(a).is_some());
    assert!(sim.since(mark).contains(&Seen::Signal(0, Signal::Kill)));
    assert!(sim.dropped(b));
    assert_eq!(sim.core.queued(), [c], "the rest never started");
}

#[test]
fn shutdown_wait_runs_what_is_pending_then_retires_the_workers() {
    let mut sim = Sim::new(rules(2));
    sim.ready_all();
    let (a, b, c) = (sim.submit(), sim.submit(), sim.submit());
    sim.tick();
    sim.step(Event::Command(Command::Shutdown(Shutdown::Wait)));
    let late = sim.submit();
    assert!(sim.error(late).is_cancelled());
    sim.finish_head(0, 5_000_000);
    sim.tick();
    sim.finish_head(1, 5_000_000);
    let mark = sim.seen.len();
    sim.tick();
    assert!(sim.since(mark).contains(&Seen::Exit(1)));
    sim.finish_head(0, 5_000_000);
    sim.tick();
    assert!(sim.seen.contains(&Seen::Exit(0)));
    for id in [a, b, c] {
        assert!(sim.result(id).unwrap()[0].is_ok());
    }
    assert!(!sim.core.is_finished());
    sim.die(0, EXITED);
    sim.die(1, EXITED);
    sim.tick();
    assert!(sim.core.is_finished());
}

#[test]
fn shutdown_cancel_ends_pending_and_running_jobs_and_kills() {
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    let (a, b) = (sim.submit(), sim.submit());
    sim.tick();
    let mark = sim.seen.len();
    sim.step(Event::Command(Command::Shutdown(Shutdown::Cancel)));
    assert!(sim.error(a).is_cancelled());
    assert!(sim.error(b).is_cancelled());
    assert_eq!(sim.starts(b), 0);
    assert!(sim.since(mark).contains(&Seen::Signal(0, Signal::Kill)));
    sim.die(0, KILLED);
    sim.tick();
    assert!(sim.core.is_finished());
}

#[test]
fn a_stalled_send_gives_up_only_while_the_worker_waits_for_it() {
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    let a = sim.submit();
    sim.tick();
    let err = rustix::io::Errno::TOOMANYREFS;
    // Its frame is all written: the worker does not wait, however long.
    let written = sim.written;
    for _ in 0..100 {
        sim.step(Event::Flushed {
            worker: 0,
            result: Flush::Shortage {
                err,
                moved: false,
                written,
            },
        });
        assert!(sim.core.send_held(0, sim.now));
        sim.advance(250 * MS);
    }
    assert!(!sim.seen.contains(&Seen::Abandon(0)));
    // Now a frame it waits for is stuck (after a write that went: the back-off
    // starts afresh).
    sim.step(Event::Flushed {
        worker: 0,
        result: Flush::Sent,
    });
    sim.finish_head(0, 5_000_000);
    let b = sim.submit();
    sim.tick();
    assert_eq!(sim.head(0), Some(b));
    let start = sim.now;
    let mut delays = Vec::new();
    while !sim.seen.contains(&Seen::Abandon(0)) {
        sim.step(Event::Flushed {
            worker: 0,
            result: Flush::Shortage {
                err,
                moved: false,
                written,
            },
        });
        if sim.seen.contains(&Seen::Abandon(0)) {
            break;
        }
        let at = sim.core.next_deadline().expect("a retry is due");
        delays.push((at - sim.now).as_millis());
        sim.now = at;
    }
    assert_eq!(delays[..7], [5, 10, 20, 40, 80, 160, 250]);
    assert!(sim.now - start >= crate::process::wire::Stall::LIMIT);
    assert!(sim.seen.contains(&Seen::Signal(0, Signal::Kill)));
    sim.die(0, KILLED);
    let e = sim.error(b);
    assert!(e.is_crashed() && e.message().contains("descriptors"), "{e}");
    assert!(sim.result(a).unwrap()[0].is_ok());
}

#[test]
fn a_write_error_abandons_the_worker() {
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    let a = sim.submit();
    sim.tick();
    sim.step(Event::Flushed {
        worker: 0,
        result: Flush::Failed("could not write to the worker: EIO".into()),
    });
    assert!(sim.seen.contains(&Seen::Abandon(0)));
    sim.die(0, KILLED);
    assert!(sim.error(a).message().contains("EIO"));
}

#[test]
fn a_job_whose_frame_cannot_be_encoded_fails_alone() {
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    sim.push_error = Some("a frame of 9 bytes is larger than the limit".into());
    let a = sim.submit();
    sim.tick();
    let err = sim.error(a);
    assert!(err.message().contains("could not send the input"), "{err}");
    assert!(sim.core.outstanding(0).is_empty());
    let b = sim.submit();
    sim.tick();
    assert_eq!(sim.head(0), Some(b));
}

#[test]
fn a_worker_that_breaks_the_protocol_is_killed_and_its_head_crashes() {
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    let a = sim.submit();
    sim.tick();
    sim.step(Event::Done {
        worker: 0,
        job: a + 1_000_000,
        nanos: 1,
        outcomes: Outcomes::default(),
    });
    assert!(sim.seen.contains(&Seen::Signal(0, Signal::Kill)));
    sim.die(0, KILLED);
    let err = sim.error(a);
    assert!(
        err.is_crashed() && err.message().contains("not running"),
        "{err}"
    );
}

#[test]
fn a_worker_that_answers_too_few_outcomes_fails_the_missing_items() {
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    let a = sim.submit_with(2, None, 0);
    sim.tick();
    let mut outcomes = Outcomes::default();
    outcomes.push_ok(&sim.jobs[&a][0].to_le_bytes());
    sim.step(Event::Done {
        worker: 0,
        job: a,
        nanos: 1,
        outcomes,
    });
    let items = sim.result(a).unwrap();
    assert!(items[0].is_ok());
    assert_eq!(items[1].as_ref().unwrap_err().pid(), Some(sim.pids[&0]));
}

/// Random commands and worker behaviour (a fixed seed), checking the
/// invariant after every step; at the end every job not cancelled has ended
/// exactly once.
#[test]
fn random_events_keep_every_item_in_exactly_one_place() {
    for seed in 1..=20_u64 {
        let mut rng = seed;
        let mut rand = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut sim = Sim::new(Rules {
            max_tasks_per_worker: Some(5),
            ..rules(3)
        });
        let mut ids = Vec::new();
        for _ in 0..400 {
            let workers = sim.core.workers();
            let pick = |r: u64| workers[(r % workers.len().max(1) as u64) as usize];
            match rand(10) {
                0 | 1 => {
                    let items = 1 + rand(4) as usize;
                    let timeout = (rand(3) == 0).then(|| MS * (1 + rand(50) as u32));
                    ids.push(sim.submit_with(items, timeout, rand(2) as u32));
                }
                2 if !ids.is_empty() && rand(4) == 0 => {
                    let id = ids[rand(ids.len() as u64) as usize];
                    sim.cancel(id);
                }
                3 => sim.advance(MS * rand(30) as u32),
                4 | 5 if !workers.is_empty() => {
                    let (w, ready) = pick(rand(100));
                    if !ready {
                        sim.step(Event::Ready { worker: w });
                    } else if sim.head(w).is_some() {
                        sim.finish_head(w, rand(400_000));
                    }
                }
                6 if !workers.is_empty() && rand(3) == 0 => {
                    let (w, _) = pick(rand(100));
                    sim.die(w, KILLED);
                }
                7 if !workers.is_empty() && rand(8) == 0 => {
                    let (w, _) = pick(rand(100));
                    sim.step(Event::HungUp { worker: w });
                }
                _ => sim.tick(),
            }
        }
        sim.step(Event::Stop);
        for (&tag, &job) in &sim.tags {
            if !sim.cancelled.contains(&job) {
                assert_eq!(sim.done.get(&tag), Some(&1), "seed {seed}: item {tag}");
            }
        }
        let log = sim.log.lock().unwrap();
        for id in &ids {
            if !sim.cancelled.contains(id) {
                assert!(log.finished.contains_key(id), "seed {seed}: job {id}");
            }
        }
    }
}

#[test]
fn a_signal_death_under_a_memory_limit_names_the_limit() {
    let mut sim = Sim::new(Rules {
        memory_limit: Some(1 << 20),
        ..rules(1)
    });
    sim.ready_all();
    let a = sim.submit();
    sim.tick();
    sim.die(0, Exit::status(None, Some(6)));
    let err = sim.error(a);
    assert_eq!(err.signal(), Some(6));
    assert!(err.message().contains("1048576 bytes of memory"), "{err}");
}

#[test]
fn a_fatal_shell_error_ends_every_job_and_the_pool() {
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    let (a, b) = (sim.submit(), sim.submit());
    sim.tick();
    sim.step(Event::Fatal {
        why: "the supervisor could not wait for events: EBADF".into(),
    });
    for id in [a, b] {
        assert!(sim.error(id).message().contains("EBADF"));
    }
    assert!(sim.seen.contains(&Seen::Signal(0, Signal::Kill)));
    let c = sim.submit();
    assert!(sim.error(c).is_crashed());
    sim.die(0, KILLED);
    sim.tick();
    assert!(sim.core.is_finished());
}

#[test]
fn a_stopped_worker_is_sent_sigkill_once() {
    // Timed out: SIGTERM and the grace period. It then breaks the protocol:
    // SIGKILL at once, and never again (not when the grace period would have
    // ended, not on a second offence).
    let mut sim = Sim::new(rules(1));
    sim.ready_all();
    let a = sim.submit_with(1, Some(100 * MS), 0);
    sim.tick();
    let mark = sim.seen.len();
    sim.advance(100 * MS);
    sim.tick();
    assert!(sim.error(a).is_timed_out());
    let garbage = || Event::ProtocolError {
        worker: 0,
        why: "garbage".to_owned(),
    };
    sim.step(garbage());
    sim.advance(1000 * MS);
    sim.tick();
    sim.step(garbage());
    sim.tick();
    let signals: Vec<&Seen> = sim
        .since(mark)
        .iter()
        .filter(|s| matches!(s, Seen::Signal(0, _)))
        .collect();
    assert_eq!(
        signals,
        [
            &Seen::Signal(0, Signal::Term),
            &Seen::Signal(0, Signal::Kill)
        ]
    );
    // Its death settles nothing more (the sim checks every job's place).
    sim.die(0, KILLED);
    sim.tick();
}
