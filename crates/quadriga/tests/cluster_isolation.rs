//! Cluster workers with process isolation, against a real `redis-server`:
//! a segfault, an abort, running out of memory or a hang fails that one task
//! (`crashed` / `timed_out`) and the worker carries on; limits need processes;
//! the environment turns isolation on with no code change.
//!
//! The worker's children are this test binary re-executed by the local
//! process pool (diverted before `main`); worker processes of their own are
//! re-executed into `cluster_worker_process`.

#[path = "common/cluster_worker.rs"]
mod cluster_worker;
mod common;
#[path = "common/redis.rs"]
mod redis_server;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster_worker::InProcess;
use quadriga::cluster::{ClusterPool, ErrorKind, Isolation, WORKER_URL_ENV, Worker};
use redis_server::RedisServer;

/// Misbehaves as told, else returns the pid of the process it ran in.
#[quadriga::task]
fn fault(kind: String) -> u32 {
    match kind.as_str() {
        "abort" => std::process::abort(),
        "segfault" => {
            // SAFETY: deliberately invalid: the point is to die by SIGSEGV.
            unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
            0
        }
        "oom" => {
            let mut v: Vec<u8> = Vec::new();
            v.resize(1 << 33, 1); // 8 GiB: past the limit the test sets
            v.len() as u32
        }
        "hang" => loop {
            std::thread::sleep(Duration::from_millis(10));
        },
        _ => std::process::id(),
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

fn pool(url: &str) -> ClusterPool {
    ClusterPool::builder(url).queue("q").build().unwrap()
}

#[test]
fn a_crash_or_hang_fails_one_task_and_the_worker_carries_on() {
    common::within(120, || {
        let server = RedisServer::start();
        let worker = Worker::builder(server.url())
            .queue("q")
            .concurrency(2)
            .lease(Duration::from_secs(2))
            .isolation(Isolation::Processes)
            .timeout(Duration::from_secs(2))
            .memory_limit(1 << 30)
            .build()
            .unwrap();
        let worker = InProcess::run(worker);
        let pool = pool(&server.url());

        // Tasks run in a child, not in this process.
        let pid = pool.submit(fault, "hello".into()).join().unwrap();
        assert_ne!(pid, std::process::id());

        let err = pool.submit(fault, "segfault".into()).join().unwrap_err();
        assert!(err.is_crashed(), "{err}");
        assert_eq!(err.signal(), Some(11), "{err}");
        let err = pool.submit(fault, "abort".into()).join().unwrap_err();
        assert!(err.is_crashed(), "{err}");
        assert_eq!(err.signal(), Some(6), "{err}");
        let err = pool.submit(fault, "oom".into()).join().unwrap_err();
        assert!(err.is_crashed(), "{err}");
        assert!(err.message().contains("memory"), "{err}");
        let started = Instant::now();
        let err = pool.submit(fault, "hang".into()).join().unwrap_err();
        assert!(err.is_timed_out(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(30));

        // In a map chunk only the item that crashes fails.
        let got: Vec<_> = pool
            .map(fault, ["a", "segfault", "b"].map(String::from))
            .collect();
        assert!(got[0].is_ok() && got[2].is_ok(), "{got:?}");
        assert!(got[1].as_ref().unwrap_err().is_crashed(), "{got:?}");

        // The same worker carries on, and completed every one of them.
        assert!(pool.submit(fault, "again".into()).join().is_ok());
        drop(pool);
        let report = worker.stop();
        assert!(report.completed >= 7, "{report:?}");
        assert_eq!(report.refused, 0, "{report:?}");
    });
}

#[test]
fn limits_need_process_isolation() {
    common::within(60, || {
        let server = RedisServer::start();
        for builder in [
            Worker::builder(server.url()).timeout(Duration::from_secs(1)),
            Worker::builder(server.url()).memory_limit(1 << 30),
        ] {
            let err = builder.build().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            assert!(err.to_string().contains("process isolation"), "{err}");
        }
    });
}

#[test]
fn the_environment_turns_process_isolation_on() {
    common::within(90, || {
        let server = RedisServer::start();
        let mut child: Child = Command::new(std::env::current_exe().unwrap())
            .args(["cluster_worker_process", "--exact", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(WORKER_URL_ENV, server.url())
            .env("QUADRIGA_CLUSTER_QUEUE", "q")
            .env("QUADRIGA_CLUSTER_CONCURRENCY", "1")
            .env("QUADRIGA_CLUSTER_ISOLATION", "processes")
            .env("QUADRIGA_CLUSTER_TIMEOUT_MS", "1500")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pool = pool(&server.url());
        let err = pool.submit(fault, "segfault".into()).join().unwrap_err();
        assert!(err.is_crashed(), "{err}");
        let err = pool.submit(fault, "hang".into()).join().unwrap_err();
        assert!(err.is_timed_out(), "{err}");
        // The worker process lived through both, and runs tasks in a child.
        let pid = pool.submit(fault, "x".into()).join().unwrap();
        assert_ne!(pid, child.id());
        assert!(matches!(child.try_wait(), Ok(None)));
        let _ = child.kill();
        let _ = child.wait();
    });
}
