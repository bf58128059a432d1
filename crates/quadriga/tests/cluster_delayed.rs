//! Delayed tasks (`submit_after`, `submit_at`) and the back-off between
//! retries after task errors, against a real `redis-server`: held by the
//! broker until due (not by the client or a worker), run when due, removed
//! by a cancel.

#[path = "common/cluster_worker.rs"]
mod cluster_worker;
mod common;
#[path = "common/redis.rs"]
mod redis_server;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cluster_worker::InProcess;
use quadriga::cluster::{Broker, BrokerConfig, ClusterPool, Worker};
use redis_server::RedisServer;

#[quadriga::task]
fn square(x: u64) -> u64 {
    x * x
}

/// Appends the time (ms since the epoch) to `path`; fails until it has run
/// `succeed_on` times.
#[quadriga::task]
fn flaky(path: String, succeed_on: usize) -> Result<usize, String> {
    use std::io::Write;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(f, "{now}").unwrap();
    drop(f);
    let runs = std::fs::read_to_string(&path).unwrap().lines().count();
    if runs < succeed_on {
        Err(format!("run {runs} fails"))
    } else {
        Ok(runs)
    }
}

fn in_process(url: &str) -> InProcess {
    InProcess::run(
        Worker::builder(url)
            .queue("q")
            .concurrency(2)
            .lease(Duration::from_secs(2))
            .build()
            .unwrap(),
    )
}

fn pool(url: &str) -> ClusterPool {
    ClusterPool::builder(url).queue("q").build().unwrap()
}

fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

/// (entries in the stream, delayed entries held).
fn queued(url: &str) -> (u64, u64) {
    let keys = Broker::connect(BrokerConfig::new(url).queue("q"))
        .unwrap()
        .keys()
        .clone();
    let mut con = raw(url);
    let stream: u64 = redis::cmd("XLEN")
        .arg(keys.stream(0))
        .query(&mut con)
        .unwrap();
    let delayed: u64 = redis::cmd("ZCARD")
        .arg(keys.delayed(0))
        .query(&mut con)
        .unwrap();
    (stream, delayed)
}

#[test]
fn a_countdown_is_held_by_the_broker_and_runs_when_due() {
    common::within(60, || {
        let server = RedisServer::start();
        let url = server.url();
        let pool = pool(&url);
        let started = Instant::now();
        let h = pool.submit_after(square, 3, Duration::from_millis(1500));
        // Held by the broker, not in the stream where a worker would take it.
        assert_eq!(queued(&url), (0, 1));
        let _worker = in_process(&url);
        assert_eq!(h.join().unwrap(), 9);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(1400),
            "ran early: {waited:?}"
        );
        assert_eq!(queued(&url), (0, 0));
        // A time already past runs at once; one ahead waits for it.
        let past = SystemTime::now() - Duration::from_secs(60);
        assert_eq!(pool.submit_at(square, 4, past).join().unwrap(), 16);
        let started = Instant::now();
        let at = SystemTime::now() + Duration::from_millis(800);
        assert_eq!(pool.submit_at(square, 5, at).join().unwrap(), 25);
        assert!(started.elapsed() >= Duration::from_millis(700));
    });
}

#[test]
fn a_cancelled_countdown_leaves_the_broker() {
    common::within(60, || {
        let server = RedisServer::start();
        let url = server.url();
        let _worker = in_process(&url);
        let pool = pool(&url);
        let h = pool.submit_after(square, 3, Duration::from_secs(60));
        assert_eq!(queued(&url), (0, 1));
        assert!(h.cancel());
        assert!(h.join().unwrap_err().is_cancelled());
        assert!(
            common::eventually(Duration::from_secs(10), || queued(&url) == (0, 0)),
            "{:?}",
            queued(&url)
        );
        let mut con = raw(&url);
        let left: Vec<String> = redis::cmd("KEYS")
            .arg("quadriga:{q.0}:delayed:*")
            .query(&mut con)
            .unwrap();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(pool.submit(square, 2).join().unwrap(), 4);
    });
}

#[test]
fn retries_after_task_errors_back_off_doubling() {
    common::within(60, || {
        let server = RedisServer::start();
        let url = server.url();
        let _worker = in_process(&url);
        let pool = ClusterPool::builder(&url)
            .queue("q")
            .retries_on_task_error(3)
            .retry_backoff(Duration::from_millis(400))
            .build()
            .unwrap();
        let path: PathBuf =
            std::env::temp_dir().join(format!("quadriga-backoff-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let runs = pool
            .submit(flaky, (path.to_string_lossy().into_owned(), 3))
            .join()
            .unwrap();
        assert_eq!(runs, 3);
        let times: Vec<u128> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let _ = std::fs::remove_file(&path);
        assert_eq!(times.len(), 3);
        // 400 ms, then 800 ms (less a little for the clocks' granularity).
        assert!(times[1] - times[0] >= 350, "{times:?}");
        assert!(times[2] - times[1] >= 750, "{times:?}");
        // With no retries left the error is returned.
        let _ = std::fs::remove_file(&path);
        let err = pool
            .submit(flaky, (path.to_string_lossy().into_owned(), 10))
            .join()
            .unwrap_err();
        assert!(err.message().contains("run 4 fails"), "{err}");
        let _ = std::fs::remove_file(&path);
    });
}

#[test]
fn promotion_moves_each_due_entry_once_and_a_cancel_finds_it_after() {
    common::within(60, || {
        let server = RedisServer::start();
        let url = server.url();
        let mut b = Broker::connect(BrokerConfig::new(&url).queue("q")).unwrap();
        let due = b.entry("t", vec![vec![1]], None);
        let later = b.entry("t", vec![vec![2]], None);
        let marker = b.enqueue_after(&due, Duration::ZERO).unwrap();
        assert!(marker.starts_with("d:"), "{marker}");
        assert_eq!(
            b.enqueue_after(&due, Duration::ZERO).unwrap(),
            marker,
            "a repeat"
        );
        b.enqueue_after(&later, Duration::from_secs(60)).unwrap();
        assert_eq!(queued(&url), (0, 2));
        let id = due.ids().next().unwrap();
        assert!(b.fetch(id).unwrap().is_none(), "known, pending");

        let p = b.promote_due(10).unwrap();
        assert_eq!(p.moved, 1);
        let next = p.next_due.expect("the later one");
        assert!(next > Duration::from_secs(50), "{next:?}");
        assert_eq!(queued(&url), (1, 1));
        assert_eq!(b.promote_due(10).unwrap().moved, 0, "moved once");
        // Its marker now names its stream entry: a cancel removes it there.
        assert_eq!(b.cancel(id).unwrap(), quadriga::cluster::Cancelled::Removed);
        assert_eq!(queued(&url), (0, 1));
    });
}

#[test]
fn cancelling_a_task_between_retries_removes_the_waiting_retry() {
    common::within(60, || {
        let server = RedisServer::start();
        let url = server.url();
        let _worker = in_process(&url);
        let pool = ClusterPool::builder(&url)
            .queue("q")
            .retries_on_task_error(3)
            .retry_backoff(Duration::from_secs(30))
            .build()
            .unwrap();
        let path: PathBuf =
            std::env::temp_dir().join(format!("quadriga-retry-cancel-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let h = pool.submit(flaky, (path.to_string_lossy().into_owned(), 10));
        // The first run fails; its retry waits 30 s in the broker.
        assert!(
            common::eventually(Duration::from_secs(20), || queued(&url) == (0, 1)),
            "{:?}",
            queued(&url)
        );
        assert!(h.cancel());
        assert!(
            common::eventually(Duration::from_secs(10), || queued(&url) == (0, 0)),
            "the retry was not removed: {:?}",
            queued(&url)
        );
        assert_eq!(pool.pending(), 0);
        let runs = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(runs, 1);
        let _ = std::fs::remove_file(&path);
    });
}
