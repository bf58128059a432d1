//! `quadriga::aio` (the `async` feature): groups, gather, timeouts, bounded
//! concurrency, and the bridge to the thread and process pools.
//!
//! Every test runs on a fresh runtime under two guards: `tokio::time::timeout`
//! and a watchdog thread (`common::within`), which still fires if the runtime
//! itself is blocked. Bounds are generous: these run on a shared 2-core machine.

#![cfg(feature = "async")]

mod common;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use quadriga::adapt::LimitReason;
use quadriga::aio::{Limit, TaskGroup, bounded, gather, timeout, try_gather};
use quadriga::{ProcessPool, TaskError, TaskErrorKind, ThreadPool};

const HOUR: Duration = Duration::from_secs(3600);

/// Futures of different types in one list.
type BoxedJob = std::pin::Pin<Box<dyn Future<Output = Result<u32, TaskError>> + Send>>;

/// Runs `body` on a fresh runtime (current-thread, or two worker threads),
/// failing the test if it takes more than `secs` seconds.
fn run<B, F>(current_thread: bool, secs: u64, body: B)
where
    B: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()>,
{
    common::within(secs + 10, move || {
        let mut builder = if current_thread {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        };
        let rt = builder.enable_all().build().expect("a runtime");
        rt.block_on(async move {
            tokio::time::timeout(Duration::from_secs(secs), body())
                .await
                .expect("the test timed out");
        });
    });
}

/// Counts live futures: each holds a guard that decrements on drop.
#[derive(Clone, Default)]
struct Live(Arc<AtomicUsize>);

struct LiveGuard(Arc<AtomicUsize>);

impl Live {
    fn guard(&self) -> LiveGuard {
        self.0.fetch_add(1, SeqCst);
        LiveGuard(Arc::clone(&self.0))
    }

    fn count(&self) -> usize {
        self.0.load(SeqCst)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Polls `cond` every millisecond until it holds; panics after 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + common::SOON;
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A future that counts itself live, marks itself started, then sleeps an
/// hour (and counts a completion if it ever got there).
fn sleeper(
    live: &Live,
    started: &Arc<AtomicUsize>,
    completed: &Arc<AtomicUsize>,
) -> impl Future<Output = Result<u32, TaskError>> + Send + use<> {
    let guard = live.guard();
    let started = Arc::clone(started);
    let completed = Arc::clone(completed);
    async move {
        let _guard = guard;
        started.fetch_add(1, SeqCst);
        tokio::time::sleep(HOUR).await;
        completed.fetch_add(1, SeqCst);
        Ok(1)
    }
}

fn counters() -> (Live, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    (Live::default(), Arc::default(), Arc::default())
}

// ---------------------------------------------------------------- TaskGroup

#[test]
fn a_group_of_100_000_tasks_returns_every_output_in_order() {
    run(false, 120, || async {
        let mut group = TaskGroup::new();
        for i in 0..100_000_u64 {
            let index = group.spawn(async move {
                tokio::task::yield_now().await;
                Ok(i * 2)
            });
            assert_eq!(index as u64, i);
        }
        assert_eq!(group.len(), 100_000);
        let outcomes = group.join().await;
        assert_eq!(outcomes.len(), 100_000);
        for (i, outcome) in outcomes.into_iter().enumerate() {
            assert_eq!(outcome.unwrap(), i as u64 * 2);
        }
    });
}

#[test]
fn cancelling_a_group_reaches_every_member() {
    run(false, 60, || async {
        let (live, started, completed) = counters();
        let mut group = TaskGroup::new();
        for _ in 0..1_000 {
            group.spawn(sleeper(&live, &started, &completed));
        }
        eventually("every member started", || started.load(SeqCst) == 1_000).await;
        assert_eq!(live.count(), 1_000);
        group.cancel();
        assert!(group.is_cancelled());
        let outcomes = group.join().await;
        assert_eq!(outcomes.len(), 1_000);
        for outcome in &outcomes {
            let err = outcome.as_ref().unwrap_err();
            assert_eq!(err.kind(), TaskErrorKind::Cancelled, "{err}");
        }
        assert_eq!(live.count(), 0, "a cancelled member is still alive");
        assert_eq!(completed.load(SeqCst), 0);
    });
}

#[test]
fn a_member_spawned_into_a_cancelled_group_never_runs() {
    run(true, 30, || async {
        let ran = Arc::new(AtomicUsize::new(0));
        let mut group = TaskGroup::new();
        group.cancel();
        let r = Arc::clone(&ran);
        group.spawn(async move {
            r.fetch_add(1, SeqCst);
            Ok(())
        });
        let outcomes = group.join().await;
        assert!(outcomes[0].as_ref().unwrap_err().is_cancelled());
        assert_eq!(ran.load(SeqCst), 0);
    });
}

#[test]
fn the_first_failure_cancels_the_siblings() {
    run(false, 60, || async {
        let (live, started, completed) = counters();
        let mut group = TaskGroup::new();
        for _ in 0..200 {
            group.spawn(sleeper(&live, &started, &completed));
        }
        let failing = group.spawn(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(TaskError::failed("disk full"))
        });
        let t0 = Instant::now();
        let outcomes = group.join().await;
        assert!(t0.elapsed() < Duration::from_secs(30));
        let err = outcomes[failing].as_ref().unwrap_err();
        assert!(err.is_failed());
        assert_eq!(err.message(), "disk full");
        assert_eq!(err.item(), Some(200));
        for outcome in &outcomes[..200] {
            let err = outcome.as_ref().unwrap_err();
            assert!(err.is_cancelled(), "{err}");
            assert!(
                err.message().contains("task 200 of its group failed"),
                "{err}"
            );
        }
        assert_eq!(live.count(), 0);
        assert_eq!(completed.load(SeqCst), 0);
    });
}

#[test]
fn the_first_failure_cancels_the_siblings_even_while_nobody_joins() {
    run(false, 60, || async {
        let (live, started, completed) = counters();
        let mut group = TaskGroup::new();
        for _ in 0..100 {
            group.spawn(sleeper(&live, &started, &completed));
        }
        eventually("every member started", || started.load(SeqCst) == 100).await;
        group.spawn(async { Err(TaskError::failed("no join needed")) });
        // The owner is busy elsewhere: the failure alone stops the siblings.
        eventually("every sibling dropped", || live.count() == 0).await;
        assert!(group.is_cancelled());
        let outcomes = group.join().await;
        assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), 101);
        assert_eq!(completed.load(SeqCst), 0);
    });
}

#[test]
fn try_join_returns_the_failure_not_a_cancellation() {
    run(false, 60, || async {
        let (live, started, completed) = counters();
        let mut group = TaskGroup::new();
        for _ in 0..50 {
            group.spawn(sleeper(&live, &started, &completed));
        }
        group.spawn(async { Err(TaskError::failed("first")) });
        let err = group.try_join().await.unwrap_err();
        assert!(err.is_failed(), "{err}");
        assert_eq!(err.message(), "first");
        assert_eq!(live.count(), 0);
    });
}

#[test]
fn without_fail_fast_every_member_runs_to_its_end() {
    run(false, 60, || async {
        let mut group = TaskGroup::new().cancel_on_failure(false);
        group.spawn(async { Err(TaskError::failed("one")) });
        for i in 1..20_u32 {
            group.spawn(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(i)
            });
        }
        let outcomes = group.join().await;
        assert!(outcomes[0].is_err());
        for (i, outcome) in outcomes.iter().enumerate().skip(1) {
            assert_eq!(*outcome.as_ref().unwrap() as usize, i);
        }
    });
}

#[test]
fn dropping_a_group_aborts_its_tasks() {
    run(false, 60, || async {
        let (live, started, completed) = counters();
        let mut group = TaskGroup::new();
        for _ in 0..500 {
            group.spawn(sleeper(&live, &started, &completed));
        }
        eventually("every member started", || started.load(SeqCst) == 500).await;
        drop(group);
        eventually("every member dropped", || live.count() == 0).await;
        assert_eq!(completed.load(SeqCst), 0);
    });
}

#[test]
fn a_panicking_member_is_a_panicked_error_and_cancels_the_rest() {
    run(false, 60, || async {
        let (live, started, completed) = counters();
        let mut group = TaskGroup::new();
        group.spawn(sleeper(&live, &started, &completed));
        group.spawn(async {
            tokio::task::yield_now().await;
            let v: Vec<u32> = Vec::new();
            Ok(v[3])
        });
        let outcomes = group.join().await;
        let err = outcomes[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), TaskErrorKind::Panicked);
        assert!(err.message().contains("index out of bounds"), "{err}");
        let at = err.location().expect("the location is recorded");
        assert!(at.file().ends_with("aio.rs"), "{at}");
        assert!(outcomes[0].as_ref().unwrap_err().is_cancelled());
        assert_eq!(live.count(), 0);
    });
}

#[test]
fn join_next_yields_in_completion_order_with_indices() {
    run(true, 30, || async {
        let mut group = TaskGroup::new();
        for (i, ms) in [400_u64, 10, 200].into_iter().enumerate() {
            group.spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(i)
            });
        }
        let mut order = Vec::new();
        while let Some((index, outcome)) = group.join_next().await {
            assert_eq!(outcome.unwrap(), index);
            order.push(index);
        }
        assert_eq!(order, [1, 2, 0]);
        assert!(group.is_empty());
    });
}

#[test]
fn join_error_becomes_task_error() {
    run(true, 30, || async {
        let joined = tokio::spawn(async {
            if true {
                panic!("plain tokio panic");
            }
        })
        .await;
        let err = TaskError::from(joined.unwrap_err());
        assert!(err.is_panic());
        assert_eq!(err.message(), "plain tokio panic");
        let h = tokio::spawn(tokio::time::sleep(HOUR));
        h.abort();
        assert!(TaskError::from(h.await.unwrap_err()).is_cancelled());
    });
}

// ---------------------------------------------------------- gather, timeout

#[test]
fn gather_keeps_every_outcome_in_input_order() {
    run(false, 60, || async {
        let futures = (0..10_u64).map(|i| async move {
            // Later inputs finish first.
            tokio::time::sleep(Duration::from_millis(2 * (10 - i))).await;
            match i {
                3 => Err(TaskError::failed("three")),
                7 => panic!("seven"),
                _ => Ok(i * i),
            }
        });
        let outcomes = gather(futures).await;
        assert_eq!(outcomes.len(), 10);
        for (i, outcome) in outcomes.iter().enumerate() {
            match i {
                3 => {
                    let err = outcome.as_ref().unwrap_err();
                    assert!(err.is_failed());
                    assert_eq!(err.item(), Some(3));
                }
                7 => {
                    let err = outcome.as_ref().unwrap_err();
                    assert!(err.is_panic());
                    assert_eq!(err.message(), "seven");
                    assert_eq!(err.item(), Some(7));
                }
                _ => assert_eq!(*outcome.as_ref().unwrap(), (i * i) as u64),
            }
        }
    });
}

#[test]
fn try_gather_stops_the_rest_on_the_first_error() {
    run(false, 60, || async {
        let (live, started, completed) = counters();
        let mut futures: Vec<BoxedJob> = Vec::new();
        for i in 0..100 {
            if i == 37 {
                futures.push(Box::pin(async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Err(TaskError::failed("item 37 is bad"))
                }));
            } else {
                futures.push(Box::pin(sleeper(&live, &started, &completed)));
            }
        }
        let t0 = Instant::now();
        let err = try_gather(futures).await.unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(30));
        assert!(err.is_failed(), "{err}");
        assert_eq!(err.message(), "item 37 is bad");
        assert_eq!(err.item(), Some(37));
        // try_gather returns only once every sibling is gone.
        assert_eq!(live.count(), 0);
        assert_eq!(completed.load(SeqCst), 0);
    });
}

#[test]
fn dropping_gather_cancels_what_it_started() {
    run(false, 60, || async {
        let (live, started, completed) = counters();
        let futures: Vec<_> = (0..100)
            .map(|_| sleeper(&live, &started, &completed))
            .collect();
        let gathered = tokio::time::timeout(Duration::from_millis(50), gather(futures)).await;
        assert!(gathered.is_err(), "gather of hour-long sleeps ended");
        eventually("every future dropped", || live.count() == 0).await;
        assert_eq!(completed.load(SeqCst), 0);
    });
}

#[test]
fn a_timeout_cancels_the_future() {
    run(true, 30, || async {
        let (live, started, completed) = counters();
        let t0 = Instant::now();
        let limit = Duration::from_millis(50);
        let err = timeout(limit, sleeper(&live, &started, &completed))
            .await
            .unwrap_err();
        assert!(t0.elapsed() >= limit);
        assert!(t0.elapsed() < Duration::from_secs(20));
        assert_eq!(err.kind(), TaskErrorKind::TimedOut);
        assert_eq!(err.timeout(), Some(limit));
        assert_eq!(started.load(SeqCst), 1);
        assert_eq!(live.count(), 0, "the timed-out future was not dropped");
        // A future that makes it in time keeps its output.
        let ok = timeout(Duration::from_secs(10), async { Ok::<_, TaskError>(5) }).await;
        assert_eq!(ok.unwrap(), 5);
    });
}

// ------------------------------------------------------------------ bounded

#[test]
fn bounded_never_exceeds_its_limit_and_reaches_it() {
    run(false, 60, || async {
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let futures = (0..200_usize).map(|i| {
            let now = Arc::clone(&now);
            let peak = Arc::clone(&peak);
            async move {
                let running = now.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(running, SeqCst);
                // Stay until 7 ran at once (or 10 s: then the test fails).
                let deadline = Instant::now() + Duration::from_secs(10);
                while peak.load(SeqCst) < 7 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                now.fetch_sub(1, SeqCst);
                Ok(i)
            }
        });
        let outcomes = bounded(futures, Limit::Fixed(7)).gather().await;
        assert_eq!(outcomes.len(), 200);
        for (i, outcome) in outcomes.into_iter().enumerate() {
            assert_eq!(outcome.unwrap(), i);
        }
        assert!(peak.load(SeqCst) <= 7, "peak {}", peak.load(SeqCst));
        assert_eq!(peak.load(SeqCst), 7);
    });
}

#[test]
fn bounded_is_lazy_on_an_endless_iterator() {
    run(true, 30, || async {
        let made = Arc::new(AtomicUsize::new(0));
        let m = Arc::clone(&made);
        let endless = (0_u64..).map(move |i| {
            m.fetch_add(1, SeqCst);
            async move { Ok::<_, TaskError>(i) }
        });
        let mut running = bounded(endless, 4);
        let mut seen = 0;
        while let Some((_, outcome)) = running.next().await {
            outcome.unwrap();
            seen += 1;
            if seen == 50 {
                break;
            }
        }
        drop(running);
        assert!(made.load(SeqCst) <= 50 + 4, "made {}", made.load(SeqCst));
    });
}

#[test]
fn bounded_try_gather_stops_at_the_first_error() {
    run(false, 60, || async {
        let (live, started, completed) = counters();
        let made = Arc::new(AtomicUsize::new(0));
        let (l, s, c, m) = (
            live.clone(),
            Arc::clone(&started),
            Arc::clone(&completed),
            Arc::clone(&made),
        );
        let futures = (0_usize..).map(move |i| {
            m.fetch_add(1, SeqCst);
            let sleeping = sleeper(&l, &s, &c);
            async move {
                if i == 20 {
                    Err(TaskError::failed("twenty"))
                } else {
                    sleeping.await
                }
            }
        });
        let err = bounded(futures, 32).try_gather().await.unwrap_err();
        assert_eq!(err.message(), "twenty");
        assert_eq!(err.item(), Some(20));
        assert_eq!(live.count(), 0);
        assert_eq!(completed.load(SeqCst), 0);
        assert!(made.load(SeqCst) <= 32 + 1, "made {}", made.load(SeqCst));
    });
}

#[test]
fn bounded_auto_climbs_for_futures_that_wait() {
    run(false, 60, || async {
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let futures = (0..600).map(|_| {
            let now = Arc::clone(&now);
            let peak = Arc::clone(&peak);
            async move {
                peak.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                now.fetch_sub(1, SeqCst);
                Ok::<_, TaskError>(())
            }
        });
        let mut running = bounded(futures, Limit::Auto { max: 200 });
        let mut n = 0;
        while let Some((_, outcome)) = running.next().await {
            outcome.unwrap();
            n += 1;
            assert!(running.limit() <= 200);
        }
        assert_eq!(n, 600);
        let decisions: Vec<String> = running.decisions().iter().map(|d| d.to_string()).collect();
        // It starts at the runtime's 2 threads; sleeping futures must climb.
        assert!(
            peak.load(SeqCst) > 2,
            "peak {}; {decisions:#?}",
            peak.load(SeqCst)
        );
        assert!(peak.load(SeqCst) <= 200);
        assert!(
            running.decisions().iter().any(|d| d.to > d.from),
            "{decisions:#?}"
        );
    });
}

#[test]
fn bounded_auto_sees_futures_that_compute_in_their_polls_as_cpu_bound() {
    run(false, 60, || async {
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let futures = (0..200).map(|_| {
            let now = Arc::clone(&now);
            let peak = Arc::clone(&peak);
            async move {
                peak.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
                // Busy in the poll itself: it competes for the runtime's threads.
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_millis(2) {
                    std::hint::spin_loop();
                }
                now.fetch_sub(1, SeqCst);
                Ok::<_, TaskError>(())
            }
        });
        let mut running = bounded(futures, Limit::auto());
        while let Some((_, outcome)) = running.next().await {
            outcome.unwrap();
        }
        let decisions: Vec<String> = running.decisions().iter().map(|d| d.to_string()).collect();
        // The time spent in polls reaches the controller as CPU time: it sees
        // the cores saturated, holding (CpuBound) or, when a first reading on
        // a loaded machine made it climb, stepping back down (Descend) — what
        // it then does is the controller's policy. Were poll time not counted,
        // neither would appear.
        assert!(
            running.decisions().iter().any(|d| matches!(
                d.reason,
                LimitReason::CpuBound { .. } | LimitReason::Descend { .. }
            )),
            "{decisions:#?}"
        );
    });
}

// ------------------------------------------------------ the bridge to pools

#[quadriga::task]
fn worker_pid() -> u32 {
    std::process::id()
}

/// Creates `path`, then sleeps for an hour: a running task to cancel.
#[quadriga::task]
fn mark_then_hang(path: String) -> u32 {
    std::fs::write(&path, b"started").expect("write the marker");
    std::thread::sleep(HOUR);
    0
}

/// Waits (up to 20 s) for `path` to exist; says whether it did.
#[quadriga::task]
fn wait_for_file(path: String) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::path::Path::new(&path).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// A fresh path in the temp directory, removed on drop.
struct Marker(PathBuf);

impl Marker {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Marker(std::env::temp_dir().join(format!(
            "quadriga-aio-{tag}-{}-{n}-{nanos}",
            std::process::id()
        )))
    }

    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }

    fn exists(&self) -> bool {
        self.0.exists()
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn is_alive(pid: u32) -> bool {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a valid pid");
    rustix::process::test_kill_process(pid).is_ok()
}

#[test]
fn awaiting_a_thread_pool_handle_does_not_block_a_current_thread_runtime() {
    run(true, 60, || async {
        let pool = ThreadPool::new(1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        // The pool task can only finish once a task on this same one-thread
        // runtime has sent it a value: if awaiting blocked the runtime, it
        // would time out (and fail) instead.
        let blocking = pool.spawn(move || rx.recv_timeout(Duration::from_secs(20)).ok());
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(42).unwrap();
        });
        assert_eq!(blocking.await.unwrap(), Some(42));
        sender.await.unwrap();
    });
}

#[test]
fn awaiting_a_process_pool_handle_does_not_block_a_current_thread_runtime() {
    run(true, 60, || async {
        let pool = ProcessPool::new(1).unwrap();
        let marker = Marker::new("bridge");
        let waiting = pool.submit(wait_for_file, marker.path());
        let path = marker.0.clone();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::fs::write(path, b"go").unwrap();
        });
        assert!(waiting.await.unwrap(), "the runtime was blocked");
        writer.await.unwrap();
    });
}

#[test]
fn blocking_closures_sent_to_a_thread_pool_are_awaited_and_gathered() {
    run(false, 60, || async {
        let pool = ThreadPool::new(2).unwrap();
        let one = pool.spawn(|| (1..=1000_u64).sum::<u64>()).await.unwrap();
        assert_eq!(one, 500_500);
        let handles = (0..8_u64).map(|i| pool.spawn(move || i * i).abort_on_drop());
        let squares = try_gather(handles).await.unwrap();
        assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49]);
    });
}

#[test]
fn a_dropped_plain_handle_detaches_its_task() {
    run(true, 60, || async {
        let pool = ThreadPool::new(1).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let d = Arc::clone(&done);
        let (release, released) = std::sync::mpsc::channel::<()>();
        let handle = pool.spawn(move || {
            let _ = released.recv_timeout(Duration::from_secs(20));
            // 1: ran to its end uncancelled; 2: its token was cancelled.
            d.store(if quadriga::is_cancelled() { 2 } else { 1 }, SeqCst);
        });
        // Dropped by a timeout before it finished: detached, not cancelled.
        let waited = tokio::time::timeout(Duration::from_millis(1), handle).await;
        assert!(waited.is_err());
        release.send(()).unwrap();
        eventually("the detached task finished", || done.load(SeqCst) != 0).await;
        assert_eq!(
            done.load(SeqCst),
            1,
            "dropping a plain handle cancelled its task"
        );
    });
}

#[test]
fn a_process_task_timed_out_from_async_code_leaves_no_worker_running_it() {
    run(false, 90, || async {
        let pool = ProcessPool::new(1).unwrap();
        let worker = pool.submit(worker_pid, ()).await.unwrap();
        assert!(is_alive(worker));
        let marker = Marker::new("timeout");
        let task = pool.submit(mark_then_hang, marker.path()).abort_on_drop();
        let err = timeout(Duration::from_secs(2), task).await.unwrap_err();
        assert!(err.is_timed_out(), "{err}");
        assert!(marker.exists(), "the task never started in its worker");
        eventually("the worker running the task is gone", || !is_alive(worker)).await;
        // The pool carries on with a new worker.
        let next = pool.submit(worker_pid, ()).await.unwrap();
        assert_ne!(next, worker);
    });
}

#[test]
fn a_process_task_cancelled_with_its_group_leaves_no_worker_running_it() {
    run(false, 90, || async {
        let pool = ProcessPool::new(2).unwrap();
        let mut workers = Vec::new();
        // Two hanging tasks, one per worker; learn each worker's pid from a
        // task that ran there first.
        let mut group = TaskGroup::new();
        let markers = [Marker::new("group-a"), Marker::new("group-b")];
        for m in &markers {
            group.adopt(pool.submit(mark_then_hang, m.path()));
        }
        eventually("both tasks started", || markers.iter().all(Marker::exists)).await;
        eventually("both workers known", || {
            workers = pool.worker_pids();
            workers.len() == 2
        })
        .await;
        group.cancel();
        let outcomes = group.join().await;
        for outcome in &outcomes {
            assert!(outcome.as_ref().unwrap_err().is_cancelled());
        }
        for &w in &workers {
            eventually("a worker that ran a cancelled task is gone", || {
                !is_alive(w)
            })
            .await;
        }
    });
}

// ------------------------------------------------------------------ example

#[test]
fn fetch_pages_prints_every_page_in_order_and_overlaps_the_fetches() {
    let started = Instant::now();
    let out = std::process::Command::new(common::example("fetch_pages"))
        .args(["24", "--latency-ms", "500", "--limit", "8"])
        .output()
        .unwrap();
    let wall = started.elapsed();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 25, "{stdout}");
    for (i, line) in lines[..24].iter().enumerate() {
        let length = line
            .strip_prefix(&format!("Page {i} length: "))
            .and_then(|rest| rest.strip_suffix(" characters"))
            .unwrap_or_else(|| panic!("line {i}: {line:?}"));
        assert!(length.parse::<usize>().unwrap() > 500, "{line}");
    }
    assert!(lines[24].starts_with("24 pages, "), "{stdout}");
    assert!(lines[24].contains("counted on"), "{stdout}");
    // One at a time would take 12 s; 8 at a time about 1.5 s. The bound sits
    // more than 5x from both, so only a lost overlap (or a hang) trips it.
    assert!(wall < Duration::from_secs(8), "took {wall:?}");
}

#[test]
fn fetch_pages_counts_words_in_worker_processes_too() {
    let out = std::process::Command::new(common::example("fetch_pages"))
        .args(["3", "--latency-ms", "1", "--processes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("Page 0 length: 817 characters\n"),
        "{stdout}"
    );
    assert!(stdout.contains("worker processes"), "{stdout}");
}
