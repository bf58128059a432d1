//! The cluster under faults, against a real `redis-server` (one per test): a
//! worker paused past its lease (its late result refused, the outcome
//! unchanged, the duplicate run counted), the broker killed and restarted
//! with work in flight, a randomized run with worker kills and a broker
//! restart, and bad input (unreachable broker, wrong password, foreign
//! entries in the stream).
//!
//! Worker processes are this test binary re-executed into
//! `cluster_worker_process` with `QUADRIGA_CLUSTER_WORKER` set, where
//! `quadriga::init()` diverts them; every one is killed and reaped at the end.

#[path = "common/cluster_worker.rs"]
mod cluster_worker;
mod common;
#[path = "common/records.rs"]
mod records;
#[path = "common/redis.rs"]
mod redis_server;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_worker::InProcess;
use quadriga::cluster::{Broker, BrokerConfig, ClusterPool, ErrorKind, WORKER_URL_ENV, Worker};
use quadriga::{TaskErrorKind, TaskHandle};
use redis_server::RedisServer;
use rustix::process::{Pid, Signal, kill_process};

#[quadriga::task]
fn square(x: u64) -> u64 {
    x * x
}

/// `x * x`, after `ms` milliseconds.
#[quadriga::task]
fn slow_square(x: u64, ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    x * x
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

/// Not a test of its own: the body of the worker processes.
#[test]
fn cluster_worker_process() {
    if std::env::var_os(WORKER_URL_ENV).is_some() {
        quadriga::init();
        unreachable!("init serves as a worker and exits");
    }
}

/// Worker processes, killed and reaped when dropped.
struct Workers {
    url: String,
    lease_ms: u64,
    retries: u32,
    concurrency: usize,
    children: Vec<Child>,
}

impl Workers {
    fn start(url: &str, n: usize, concurrency: usize, lease_ms: u64, retries: u32) -> Self {
        let mut w = Workers {
            url: url.to_owned(),
            lease_ms,
            retries,
            concurrency,
            children: Vec::new(),
        };
        for _ in 0..n {
            let c = w.spawn();
            w.children.push(c);
        }
        w
    }

    fn spawn(&self) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .args(["cluster_worker_process", "--exact", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(WORKER_URL_ENV, &self.url)
            .env("QUADRIGA_CLUSTER_QUEUE", "q")
            .env("QUADRIGA_CLUSTER_CONCURRENCY", self.concurrency.to_string())
            .env("QUADRIGA_CLUSTER_LEASE_MS", self.lease_ms.to_string())
            .env("QUADRIGA_CLUSTER_RETRIES", self.retries.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// SIGKILLs worker `i`, reaps it and starts a fresh one in its place.
    fn kill_and_replace(&mut self, i: usize) {
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
        self.children[i] = self.spawn();
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.children {
            // A stopped process dies of SIGKILL too.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(pid: u32, sig: Signal) {
    kill_process(Pid::from_raw(pid as i32).unwrap(), sig).unwrap();
}

fn in_process(url: &str) -> InProcess {
    InProcess::run(
        Worker::builder(url)
            .queue("q")
            .concurrency(1)
            .lease(Duration::from_secs(2))
            .build()
            .unwrap(),
    )
}

fn raw(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).unwrap();
    client
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

/// Every outcome recorded for a task of queue `q`, and its raw bytes.
fn results(url: &str) -> Vec<(String, Vec<u8>)> {
    records::recorded(&mut raw(url), "quadriga:{q.*}:rec:*")
}

fn first_line_pid(path: &std::path::Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?;
    text.ends_with('\n').then(|| line.trim().parse().ok())?
}

#[test]
fn a_worker_paused_past_its_lease_is_refused_and_the_outcome_stands() {
    common::within(120, || {
        let server = RedisServer::start();
        let url = server.url();
        let workers = Workers::start(&url, 2, 1, 1000, 3);
        let pool = ClusterPool::builder(&url)
            .queue("q")
            .lease(Duration::from_secs(1))
            .build()
            .unwrap();
        let path =
            std::env::temp_dir().join(format!("quadriga-cluster-stop-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let h = pool.submit(note_and_sleep, (path.to_string_lossy().into_owned(), 2500));
        assert!(
            common::eventually(Duration::from_secs(30), || first_line_pid(&path).is_some()),
            "no worker started the task"
        );
        let paused = first_line_pid(&path).unwrap();
        assert!(workers.pids().contains(&paused));
        // A partition, as far as the broker can tell: no heartbeat, no ack.
        signal(paused, Signal::STOP);
        let second = h.join().unwrap();
        assert_ne!(second, paused, "the task finished on the other worker");
        let before = results(&url);
        assert_eq!(before.len(), 1, "one recorded outcome");

        signal(paused, Signal::CONT);
        // The paused worker wakes up inside its task, finishes it and tries to
        // complete: refused. Its record (renewed by its heartbeat) says so.
        let mut broker = Broker::connect(BrokerConfig::new(&url).queue("q")).unwrap();
        let refused = common::eventually(Duration::from_secs(30), || {
            broker
                .workers()
                .unwrap()
                .iter()
                .any(|w| w.pid == paused && w.refused >= 1)
        });
        assert!(refused, "{:?}", broker.workers());
        // The outcome is the one recorded first, byte for byte.
        assert_eq!(results(&url), before);
        assert_eq!(pool.pending(), 0);
        // The run was counted as a duplicate by the broker.
        assert!(pool.duplicate_runs().unwrap() >= 1);
        let runs = std::fs::read_to_string(&path).unwrap();
        assert!(runs.lines().count() >= 2, "{runs}");
        let _ = std::fs::remove_file(&path);
    });
}

#[test]
fn a_broker_killed_and_restarted_loses_nothing_and_work_resumes() {
    common::within(120, || {
        let mut server = RedisServer::start();
        let url = server.url();
        let _workers = Workers::start(&url, 2, 2, 1000, 3);
        let pool = ClusterPool::builder(&url)
            .queue("q")
            .lease(Duration::from_secs(1))
            .build()
            .unwrap();
        let handles: Vec<TaskHandle<u64>> = (0..200)
            .map(|x| pool.submit(slow_square, (x, 20)))
            .collect();
        assert!(
            common::eventually(Duration::from_secs(30), || {
                handles.iter().filter(|h| h.is_finished()).count() >= 20
            }),
            "no progress before the restart"
        );
        // kill -9 with entries queued, running and unacknowledged.
        server.kill9();
        let done_at_kill = handles.iter().filter(|h| h.is_finished()).count();
        assert!(done_at_kill < 200, "nothing left in flight");
        std::thread::sleep(Duration::from_millis(500));
        server.restart();
        let restarted = Instant::now();
        // Progress resumes by itself within a bounded time.
        assert!(
            common::eventually(Duration::from_secs(20), || {
                handles.iter().filter(|h| h.is_finished()).count() > done_at_kill
            }),
            "no progress within 20 s of the restart"
        );
        let resumed = restarted.elapsed();
        for (x, h) in handles.into_iter().enumerate() {
            let x = x as u64;
            assert_eq!(h.join().unwrap(), x * x, "task {x}");
        }
        // New work goes through the same pool and workers.
        assert_eq!(pool.submit(square, 12).join().unwrap(), 144);
        eprintln!("progress resumed {resumed:?} after the restart");
    });
}

#[test]
fn a_submission_during_a_broker_restart_waits_for_it() {
    common::within(120, || {
        let mut server = RedisServer::start();
        let url = server.url();
        let _workers = Workers::start(&url, 1, 1, 1000, 3);
        let pool = ClusterPool::builder(&url).queue("q").build().unwrap();
        assert_eq!(pool.submit(square, 2).join().unwrap(), 4);
        server.kill9();
        let restart = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            server.restart();
            server
        });
        // Submitted while the broker is down: enqueued once it is back.
        let h = pool.submit(square, 3);
        let _server = restart.join().unwrap();
        assert_eq!(h.join().unwrap(), 9);
    });
}

/// A small, seeded generator (xorshift64*): the seed is printed, so a failing
/// run can be repeated.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let seed = std::env::var("QUADRIGA_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("QUADRIGA_TEST_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn a_randomized_run_with_kills_and_a_broker_restart_ends_every_task_once() {
    const TASKS: u64 = 3000;
    common::within(120, || {
        let started = Instant::now();
        let mut rng = Rng::seeded();
        let server = RedisServer::start();
        let url = server.url();
        let server = Arc::new(Mutex::new(server));
        let workers = Arc::new(Mutex::new(Workers::start(&url, 3, 2, 1000, 3)));
        let pool = ClusterPool::builder(&url)
            .queue("q")
            .lease(Duration::from_secs(1))
            .build()
            .unwrap();
        let over = Arc::new(AtomicBool::new(false));
        // Chaos: a random worker SIGKILLed (and replaced) every 300-700 ms,
        // the broker SIGKILLed and restarted once.
        let chaos = {
            let (server, workers, over) =
                (Arc::clone(&server), Arc::clone(&workers), Arc::clone(&over));
            let mut rng = Rng(rng.below(u64::MAX) | 1);
            std::thread::spawn(move || {
                let mut kills = 0u32;
                let mut restarted = false;
                let until = Instant::now() + Duration::from_secs(40);
                while !over.load(Ordering::Acquire) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(300 + rng.below(400)));
                    if !restarted && kills == 4 {
                        let mut s = server.lock().unwrap();
                        s.kill9();
                        std::thread::sleep(Duration::from_millis(300));
                        s.restart();
                        restarted = true;
                    } else if kills < 12 {
                        let i = rng.below(3) as usize;
                        workers.lock().unwrap().kill_and_replace(i);
                        kills += 1;
                    }
                }
                (kills, restarted)
            })
        };
        let mut handles = Vec::new();
        for x in 0..TASKS {
            // One in twenty takes a while, so kills land mid-task.
            let ms = if rng.below(20) == 0 { 50 } else { 0 };
            handles.push(pool.submit(slow_square, (x, ms)));
        }
        let mut ok = 0u64;
        let mut lost = 0u64;
        let mut why = Vec::new();
        for (x, h) in handles.into_iter().enumerate() {
            let x = x as u64;
            match h.join() {
                Ok(v) => {
                    assert_eq!(v, x * x, "task {x}");
                    ok += 1;
                }
                Err(e) if e.kind() == TaskErrorKind::Lost => {
                    lost += 1;
                    why.push(e.to_string());
                }
                Err(e) => panic!("task {x}: {e}"),
            }
        }
        over.store(true, Ordering::Release);
        let (kills, restarted) = chaos.join().unwrap();
        assert!(restarted, "the broker restart happened during the run");
        assert_eq!(ok + lost, TASKS);
        assert_eq!(pool.pending(), 0);
        // Every lost task is a dead letter; every other has its result.
        let mut broker = Broker::connect(BrokerConfig::new(&url).queue("q")).unwrap();
        let dead = broker.dead_letters(0, 10_000).unwrap();
        assert_eq!(dead.len() as u64, lost, "{dead:?} {why:?}");
        assert_eq!(results(&url).len() as u64, TASKS);
        // Nothing is left in the stream or pending in the group.
        let mut con = raw(&url);
        let stream = broker.keys().stream(0);
        let left: u64 = redis::cmd("XLEN").arg(&stream).query(&mut con).unwrap();
        assert_eq!(left, 0);
        let dups = pool.duplicate_runs().unwrap();
        eprintln!(
            "{TASKS} tasks: {ok} results, {lost} dead letters, {dups} duplicate runs, \
             {kills} worker kills, one broker restart, in {:?}",
            started.elapsed()
        );
    });
}

#[test]
fn an_unreachable_broker_is_a_clear_error_in_bounded_time() {
    common::within(60, || {
        let port = redis_server::free_port();
        let url = format!("redis://127.0.0.1:{port}/");
        let started = Instant::now();
        let err = ClusterPool::builder(&url)
            .connect_timeout(Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unreachable, "{err}");
        assert!(err.to_string().contains(&port.to_string()), "{err}");
        let err = Worker::builder(&url)
            .connect_timeout(Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unreachable, "{err}");
        assert!(started.elapsed() < Duration::from_secs(20));
    });
}

#[test]
fn a_wrong_password_is_refused_and_the_right_one_works() {
    common::within(60, || {
        let server = RedisServer::with_password("s3cret-pw");
        let port = server.port();
        for url in [
            format!("redis://:wrong@127.0.0.1:{port}/"),
            format!("redis://127.0.0.1:{port}/"),
        ] {
            let err = ClusterPool::builder(&url).build().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
            assert!(!err.to_string().contains("wrong@"), "no URL echoed: {err}");
            let err = Worker::builder(&url).build().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
        }
        let worker = in_process(&server.url());
        let pool = ClusterPool::builder(server.url())
            .queue("q")
            .build()
            .unwrap();
        assert_eq!(pool.submit(square, 7).join().unwrap(), 49);
        drop(pool);
        assert!(worker.stop().completed >= 1);
    });
}

#[test]
fn foreign_entries_in_the_stream_are_dead_lettered_with_a_reason() {
    common::within(60, || {
        let server = RedisServer::start();
        let url = server.url();
        let worker = in_process(&url);
        let mut broker = Broker::connect(BrokerConfig::new(&url).queue("q")).unwrap();
        let stream = broker.keys().stream(0);
        let mut con = raw(&url);
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("job")
            .arg("{\"celery\": true}")
            .query(&mut con)
            .unwrap();
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("e")
            .arg(&b"\xff\x00garbage"[..])
            .query(&mut con)
            .unwrap();
        assert!(
            common::eventually(Duration::from_secs(20), || broker
                .dead_letters(0, 10)
                .unwrap()
                .len()
                == 2),
            "{:?}",
            broker.dead_letters(0, 10)
        );
        let dead = broker.dead_letters(0, 10).unwrap();
        assert!(dead[0].reason.contains("foreign entry"), "{dead:?}");
        assert!(dead[0].reason.contains("job"), "{dead:?}");
        assert!(dead[1].reason.contains("undecodable"), "{dead:?}");
        // Nothing of them stays pending, and the worker carries on.
        let pending: redis::Value = redis::cmd("XPENDING")
            .arg(&stream)
            .arg("quadriga")
            .query(&mut con)
            .unwrap();
        let pool = ClusterPool::builder(&url).queue("q").build().unwrap();
        assert_eq!(pool.submit(square, 6).join().unwrap(), 36);
        drop(pool);
        let report = worker.stop();
        assert_eq!(report.dead_lettered, 2, "{report:?}");
        assert!(
            matches!(&pending, redis::Value::Array(a) if matches!(a.first(), Some(redis::Value::Int(0)))),
            "{pending:?}"
        );
    });
}

#[test]
fn an_acl_user_with_its_password_works_and_a_wrong_one_is_refused() {
    common::within(60, || {
        let server = RedisServer::with_password("admin-pw");
        let port = server.port();
        let mut admin = raw(&server.url());
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("tasks")
            .arg("on")
            .arg(">tasks-pw")
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query(&mut admin)
            .unwrap();
        let wrong = format!("redis://tasks:nope@127.0.0.1:{port}/");
        let err = ClusterPool::builder(&wrong).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
        assert!(
            !err.to_string().contains("nope"),
            "no password echoed: {err}"
        );
        let url = format!("redis://tasks:tasks-pw@127.0.0.1:{port}/");
        let worker = in_process(&url);
        let pool = ClusterPool::builder(&url).queue("q").build().unwrap();
        assert_eq!(pool.submit(square, 8).join().unwrap(), 64);
        drop(pool);
        assert!(worker.stop().completed >= 1);
    });
}
