//! The cluster pool and worker against a real `redis-server` (one per test):
//! submit and join, a map of 10,000 items, task errors and panics, an unknown
//! task name, inputs refused before sending, a worker SIGKILLed mid-task, and
//! a poison task that kills every worker that runs it.
//!
//! Worker processes are this test binary re-executed into
//! `cluster_worker_process` with `QUADRIGA_CLUSTER_WORKER` set, where
//! `quadriga::init()` diverts them; every one is killed and reaped at the end.

#[path = "common/cluster_worker.rs"]
mod cluster_worker;
mod common;
#[path = "common/redis.rs"]
mod redis_server;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster_worker::InProcess;
use quadriga::cluster::{Broker, BrokerConfig, ClusterPool, WORKER_URL_ENV, Worker};
use quadriga::{Executor, Shutdown, Task, TaskError, TaskErrorKind};
use redis_server::RedisServer;

#[quadriga::task]
fn square(x: u64) -> u64 {
    x * x
}

#[quadriga::task]
fn inverse(x: i32) -> Result<i32, String> {
    if x == 0 {
        Err("division by zero".into())
    } else {
        Ok(100 / x)
    }
}

#[quadriga::task]
fn boom(what: String) -> u8 {
    panic!("boom: {what}")
}

#[quadriga::task]
fn len(bytes: Vec<u8>) -> usize {
    bytes.len()
}

/// Appends this process's pid to `path`, sleeps, returns the pid.
#[quadriga::task]
fn note_and_sleep(path: String, ms: u64) -> u32 {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(f, "{}", std::process::id()).unwrap();
    drop(f);
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Kills the worker that runs it, every time.
#[quadriga::task]
fn poison() {
    std::process::abort()
}

/// A task no worker knows: implemented by hand, so never registered.
#[derive(Clone, Copy, Default)]
struct Ghost;

impl Task for Ghost {
    type Input = u32;
    type Output = u32;
    const NAME: &'static str = "tests.ghost_never_registered";

    fn run(&self, input: u32) -> Result<u32, TaskError> {
        Ok(input)
    }
}

/// Not a test of its own: the body of the worker processes.
#[test]
fn cluster_worker_process() {
    if std::env::var_os(WORKER_URL_ENV).is_some() {
        quadriga::init();
        unreachable!("init serves as a worker and exits");
    }
}

/// Worker processes, killed and reaped when dropped.
struct Workers(Vec<Child>);

impl Workers {
    fn start(server: &RedisServer, n: usize, lease_ms: u64, retries: u32) -> Self {
        let exe = std::env::current_exe().unwrap();
        let children = (0..n)
            .map(|_| {
                Command::new(&exe)
                    .args(["cluster_worker_process", "--exact", "--nocapture"])
                    .args(["--test-threads", "1"])
                    .env(WORKER_URL_ENV, server.url())
                    .env("QUADRIGA_CLUSTER_QUEUE", "q")
                    .env("QUADRIGA_CLUSTER_CONCURRENCY", "1")
                    .env("QUADRIGA_CLUSTER_LEASE_MS", lease_ms.to_string())
                    .env("QUADRIGA_CLUSTER_RETRIES", retries.to_string())
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        Workers(children)
    }

    fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }

    fn alive(&mut self) -> usize {
        let mut n = 0;
        for c in &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                n += 1;
            }
        }
        n
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn in_process(server: &RedisServer, concurrency: usize) -> InProcess {
    InProcess::run(
        Worker::builder(server.url())
            .queue("q")
            .concurrency(concurrency)
            .lease(Duration::from_secs(2))
            .build()
            .unwrap(),
    )
}

fn pool(server: &RedisServer) -> ClusterPool {
    ClusterPool::builder(server.url())
        .queue("q")
        .build()
        .unwrap()
}

#[test]
fn submit_and_join() {
    common::within(60, || {
        let server = RedisServer::start();
        let worker = in_process(&server, 2);
        let pool = pool(&server);
        let h = pool.submit(square, 12);
        assert_eq!(h.join().unwrap(), 144);
        // Through the trait, as any backend.
        assert_eq!(Executor::submit(&pool, square, 3).join().unwrap(), 9);
        let hs: Vec<_> = (0..20).map(|i| pool.submit(square, i)).collect();
        let got: Vec<u64> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(got, (0..20).map(|i| i * i).collect::<Vec<_>>());
        pool.shutdown(Shutdown::Wait);
        assert_eq!(pool.pending(), 0);
        assert!(pool.submit(square, 1).join().unwrap_err().is_cancelled());
        let report = worker.stop();
        assert!(report.completed >= 22, "{report:?}");
    });
}

/// `n` bytes, each its index mod 251.
#[quadriga::task]
fn bytes_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Small outcomes travel inline in the completion notice; larger ones (over
/// a few KiB) are read from the entry's record. Both reach their handles,
/// interleaved.
#[test]
fn small_and_large_outcomes_both_reach_their_handles() {
    common::within(60, || {
        let server = RedisServer::start();
        let worker = in_process(&server, 2);
        let pool = pool(&server);
        let sizes = [0, 10, 100_000, 3, 20_000, 5000, 1];
        let hs: Vec<_> = sizes.iter().map(|&n| pool.submit(bytes_of, n)).collect();
        for (h, &n) in hs.into_iter().zip(&sizes) {
            assert_eq!(h.join().unwrap(), bytes_of::call(n), "{n} bytes");
        }
        drop(pool);
        assert_eq!(worker.stop().completed, sizes.len() as u64);
    });
}

#[test]
fn map_of_ten_thousand_items_equals_the_sequential_result() {
    common::within(120, || {
        let server = RedisServer::start();
        let _worker = in_process(&server, 2);
        let pool = pool(&server);
        let got: Vec<u64> = pool.map(square, 1..=10_000).map(Result::unwrap).collect();
        let want: Vec<u64> = (1..=10_000u64).map(|x| x * x).collect();
        assert_eq!(got, want);
        let mut unordered: Vec<(usize, u64)> = pool
            .map_unordered(square, 1..=1000)
            .map(|(i, r)| (i, r.unwrap()))
            .collect();
        unordered.sort_unstable();
        assert!(
            unordered
                .iter()
                .enumerate()
                .all(|(k, &(i, v))| k == i && v == (i as u64 + 1).pow(2))
        );
    });
}

#[test]
fn task_errors_fail_and_panics_panic() {
    common::within(60, || {
        let server = RedisServer::start();
        let _worker = in_process(&server, 2);
        let pool = pool(&server);
        let err = pool.submit(inverse, 0).join().unwrap_err();
        assert_eq!(err.kind(), TaskErrorKind::Failed);
        assert!(err.message().contains("division by zero"), "{err}");
        let err = pool.submit(boom, "here".into()).join().unwrap_err();
        assert_eq!(err.kind(), TaskErrorKind::Panicked);
        assert!(err.message().contains("boom: here"), "{err}");
        assert!(err.location().is_some(), "{err:?}");
        // In a map, each item is its own outcome.
        let results: Vec<_> = pool.map(inverse, [1, 0, 4]).collect();
        assert_eq!(results[0].as_ref().unwrap(), &100);
        let err = results[1].as_ref().unwrap_err();
        assert_eq!((err.kind(), err.item()), (TaskErrorKind::Failed, Some(1)));
        assert_eq!(results[2].as_ref().unwrap(), &25);
    });
}

#[test]
fn an_unknown_task_name_ends_with_a_clear_error() {
    common::within(60, || {
        let server = RedisServer::start();
        let _worker = in_process(&server, 1);
        let pool = pool(&server);
        let started = Instant::now();
        let err = pool.submit(Ghost, 1).join().unwrap_err();
        assert_eq!(err.kind(), TaskErrorKind::Codec);
        assert!(err.message().contains("does not know the task"), "{err}");
        assert!(err.message().contains(Ghost::NAME), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        // The worker carries on.
        assert_eq!(pool.submit(square, 5).join().unwrap(), 25);
    });
}

#[test]
fn inputs_that_cannot_travel_are_refused_before_sending() {
    common::within(60, || {
        let server = RedisServer::start();
        let pool = ClusterPool::builder(server.url())
            .queue("q")
            .max_entry_bytes(1024)
            .build()
            .unwrap();
        let err = pool.submit(len, vec![7; 4096]).join().unwrap_err();
        assert_eq!(err.kind(), TaskErrorKind::Codec);
        assert!(err.message().contains("nothing was sent"), "{err}");
        let queue = quadriga::ipc::Queue::<u32>::new(4).unwrap();
        #[quadriga::task]
        fn take_queue(q: quadriga::ipc::Queue<u32>) -> u32 {
            q.len() as u32
        }
        let err = pool.submit(take_queue, queue).join().unwrap_err();
        assert_eq!(err.kind(), TaskErrorKind::Codec);
        assert!(err.message().contains("IPC objects"), "{err}");
        // Nothing reached the stream.
        let client = redis::Client::open(server.url()).unwrap();
        let mut con = client.get_connection().unwrap();
        let stream = Broker::connect(BrokerConfig::new(server.url()).queue("q"))
            .unwrap()
            .keys()
            .stream(0);
        let n: u64 = redis::cmd("XLEN").arg(&stream).query(&mut con).unwrap();
        assert_eq!(n, 0);
        assert_eq!(pool.pending(), 0);
    });
}

#[test]
fn a_worker_killed_mid_task_hands_it_to_another() {
    common::within(90, || {
        let server = RedisServer::start();
        let mut workers = Workers::start(&server, 2, 1000, 3);
        let pool = ClusterPool::builder(server.url())
            .queue("q")
            .lease(Duration::from_secs(1))
            .build()
            .unwrap();
        let dir =
            std::env::temp_dir().join(format!("quadriga-cluster-kill-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let path = dir.to_string_lossy().into_owned();
        let h = pool.submit(note_and_sleep, (path.clone(), 3000));
        assert!(
            common::eventually(Duration::from_secs(30), || std::fs::read_to_string(&dir)
                .is_ok_and(|s| s.ends_with('\n'))),
            "no worker started the task"
        );
        let first: u32 = std::fs::read_to_string(&dir)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(workers.pids().contains(&first));
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(first as i32).unwrap(),
            rustix::process::Signal::KILL,
        )
        .unwrap();
        let started = Instant::now();
        let second = h.join().unwrap();
        assert_ne!(second, first, "ran again on another worker");
        assert!(workers.pids().contains(&second));
        // Rerun within about one lease (plus the sweep interval and the task).
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
        let runs = std::fs::read_to_string(&dir).unwrap();
        // Two runs at least (a third only if a heartbeat came late under load).
        assert!(runs.lines().count() >= 2, "{runs}");
        assert_eq!(pool.pending(), 0);
        assert_eq!(workers.alive(), 1);
        let _ = std::fs::remove_file(&dir);
    });
}

#[test]
fn a_poison_task_is_dead_lettered_and_ends_lost() {
    common::within(120, || {
        let server = RedisServer::start();
        // One delivery and one retry: the poison kills two of three workers.
        let mut workers = Workers::start(&server, 3, 1000, 1);
        let pool = ClusterPool::builder(server.url())
            .queue("q")
            .lease(Duration::from_secs(1))
            .retries_on_worker_loss(1)
            .build()
            .unwrap();
        let err = pool.submit(poison, ()).join().unwrap_err();
        assert_eq!(err.kind(), TaskErrorKind::Lost, "{err}");
        assert!(err.message().contains("retries on worker loss"), "{err}");
        // The others carry on.
        assert_eq!(workers.alive(), 1);
        assert_eq!(pool.submit(square, 9).join().unwrap(), 81);
        let mut broker = Broker::connect(BrokerConfig::new(server.url()).queue("q")).unwrap();
        let dead = broker.dead_letters(0, 10).unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].deliveries, 3);
    });
}
