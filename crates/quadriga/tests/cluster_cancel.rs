//! `cancel()` on cluster tasks, against a real `redis-server`: a waiting task
//! leaves the broker and never runs; a running one is stopped by its worker
//! (its child process killed); the handle resolves once, as cancelled, and
//! the recorded outcome says so.

#[path = "common/cluster_worker.rs"]
mod cluster_worker;
mod common;
#[path = "common/records.rs"]
mod records;
#[path = "common/redis.rs"]
mod redis_server;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster_worker::InProcess;
use quadriga::cluster::{
    Broker, BrokerConfig, Cancelled, ClusterPool, Entry, Isolation, Outcome, Worker,
};
use quadriga::{TaskErrorKind, TaskHandle};
use redis_server::RedisServer;

#[quadriga::task]
fn square(x: u64) -> u64 {
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

fn in_process(url: &str, isolation: Isolation) -> InProcess {
    InProcess::run(
        Worker::builder(url)
            .queue("q")
            .concurrency(1)
            .lease(Duration::from_millis(1500))
            .isolation(isolation)
            .build()
            .unwrap(),
    )
}

fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("quadriga-cancel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

fn xlen(url: &str, stream: &str) -> u64 {
    redis::cmd("XLEN").arg(stream).query(&mut raw(url)).unwrap()
}

/// The decoded outcomes recorded for queue `q`.
fn outcomes(url: &str) -> Vec<Outcome> {
    records::recorded(&mut raw(url), "quadriga:{q.*}:rec:*")
        .iter()
        .map(|(_, v)| Outcome::decode(v, 1 << 20).unwrap())
        .collect()
}

fn is_cancelled(o: &Outcome) -> bool {
    matches!(o, Outcome::Error(e) if e.kind() == TaskErrorKind::Cancelled)
}

fn assert_cancelled_once<T: std::fmt::Debug>(h: &TaskHandle<T>) {
    assert!(h.cancel(), "the first cancel wins");
    assert!(!h.cancel(), "a second cancel changes nothing");
    assert!(h.is_finished());
}

fn first_pid(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.ends_with('\n')
        .then(|| text.lines().next()?.trim().parse().ok())?
}

#[test]
fn a_waiting_task_leaves_the_broker_and_never_runs() {
    common::within(60, || {
        let server = RedisServer::start();
        let url = server.url();
        let pool = ClusterPool::builder(&url).queue("q").build().unwrap();
        let stream = Broker::connect(BrokerConfig::new(&url).queue("q"))
            .unwrap()
            .keys()
            .stream(0);
        let path = temp("waiting");
        // No worker yet: the task waits in the stream (the pool's sender
        // thread enqueues it right after `submit` returns).
        let h = pool.submit(note_and_sleep, (path.to_string_lossy().into_owned(), 0));
        assert!(
            common::eventually(Duration::from_secs(10), || xlen(&url, &stream) == 1),
            "the entry reached the stream"
        );
        assert_cancelled_once(&h);
        assert!(h.join().unwrap_err().is_cancelled());
        assert!(
            common::eventually(Duration::from_secs(10), || xlen(&url, &stream) == 0),
            "the entry left the stream"
        );
        let recorded = outcomes(&url);
        assert!(
            recorded.len() == 1 && is_cancelled(&recorded[0]),
            "{recorded:?}"
        );
        // A worker that comes now never sees it, and serves the next task.
        let worker = in_process(&url, Isolation::Threads);
        assert_eq!(pool.submit(square, 4).join().unwrap(), 16);
        assert!(!path.exists(), "the cancelled task ran");
        assert_eq!(pool.pending(), 0);
        drop(pool);
        assert_eq!(worker.stop().completed, 1);
    });
}

#[test]
fn a_running_task_is_stopped_by_its_worker_and_its_child_killed() {
    common::within(90, || {
        let server = RedisServer::start();
        let url = server.url();
        let worker = in_process(&url, Isolation::Processes);
        let pool = ClusterPool::builder(&url).queue("q").build().unwrap();
        let path = temp("running");
        let h = pool.submit(
            note_and_sleep,
            (path.to_string_lossy().into_owned(), 60_000),
        );
        assert!(
            common::eventually(Duration::from_secs(30), || first_pid(&path).is_some()),
            "the task did not start"
        );
        let child = first_pid(&path).unwrap();
        assert_ne!(child, std::process::id(), "it runs in a child");
        assert_cancelled_once(&h);
        assert!(h.join().unwrap_err().is_cancelled());
        // The worker learns of it at its next heartbeat (a third of a lease)
        // and kills the child: it is gone long before the task's 60 s.
        let proc_dir = PathBuf::from(format!("/proc/{child}"));
        assert!(
            common::eventually(Duration::from_secs(20), || !proc_dir.exists()),
            "the child still runs"
        );
        let recorded = outcomes(&url);
        assert!(
            recorded.len() == 1 && is_cancelled(&recorded[0]),
            "{recorded:?}"
        );
        // The worker carries on.
        assert_eq!(pool.submit(square, 5).join().unwrap(), 25);
        drop(pool);
        let report = worker.stop();
        assert_eq!(report.stopped, 1, "{report:?}");
        assert_eq!(report.completed, 1, "{report:?}");
        let _ = std::fs::remove_file(&path);
    });
}

#[test]
fn cancelling_through_the_broker_says_what_it_did() {
    common::within(60, || {
        let server = RedisServer::start();
        let url = server.url();
        let mut b = Broker::connect(BrokerConfig::new(&url).queue("q")).unwrap();
        // One alone, and a chunk of three.
        let alone = b.entry("t", vec![vec![1]], None);
        let chunk = b.entry("t", vec![vec![2], vec![3], vec![4]], None);
        b.enqueue(&alone).unwrap();
        b.enqueue(&chunk).unwrap();
        let alone_id = alone.ids().next().unwrap();
        let chunk_ids: Vec<_> = chunk.ids().collect();
        assert_eq!(b.cancel(alone_id).unwrap(), Cancelled::Removed);
        assert_eq!(b.cancel(alone_id).unwrap(), Cancelled::Settled, "a repeat");
        for &id in &chunk_ids[..2] {
            assert_eq!(b.cancel(id).unwrap(), Cancelled::Marked);
        }
        // The chunk stays for its third task; the lone entry is gone.
        assert_eq!(xlen(&url, &b.keys().stream(0)), 1);
        assert!(is_cancelled(&b.fetch(chunk_ids[0]).unwrap().unwrap()));
        assert!(b.fetch(chunk_ids[2]).unwrap().is_none(), "still to run");
        // Held by a consumer: the entry leaves its pending list.
        let running = b.entry("t", vec![vec![5]], None);
        b.enqueue(&running).unwrap();
        let mut reader = b.reader();
        let got = reader.read(2, Duration::from_millis(100)).unwrap();
        assert_eq!(got.len(), 2, "the chunk and the new one");
        let id = running.ids().next().unwrap();
        assert_eq!(b.cancel(id).unwrap(), Cancelled::Stopping);
        let d = got
            .iter()
            .find(|d| d.entry.as_ref().unwrap() == &running)
            .unwrap();
        // Its holder's heartbeat reports it lost, and its completion is refused.
        assert_eq!(
            b.heartbeat(&[(0, d.id.clone())]).unwrap(),
            [(0, d.id.clone())]
        );
        let late = b.complete(d, &[Outcome::Output(vec![9])]).unwrap();
        assert_eq!(late, quadriga::cluster::Completion::Refused);
        assert!(is_cancelled(&b.fetch(id).unwrap().unwrap()));
        // An id never enqueued is an error, not a cancellation.
        let mut never = id;
        never.seq += 1000;
        assert!(b.cancel(never).is_err());
    });
}

/// A stream entry as `XRANGE` gives it: its id and field/value pairs.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

/// `submit` hands its entry to the pool's sender thread and returns: tasks
/// cancelled at once, some before their entries went out (never sent),
/// some after (the cancel removes them, or, reaching the broker first,
/// waits for the sender), never run and leave nothing in the stream. Which
/// of these happens is up to the timing; none may let a task run.
#[test]
fn tasks_cancelled_right_after_submit_never_run() {
    common::within(90, || {
        let server = RedisServer::start();
        let url = server.url();
        let pool = ClusterPool::builder(&url).queue("q").build().unwrap();
        let path = temp("right-after");
        let handles: Vec<_> = (0..300)
            .map(|_| pool.submit(note_and_sleep, (path.to_string_lossy().into_owned(), 0)))
            .collect();
        for h in &handles {
            assert!(h.cancel());
        }
        for h in handles {
            assert!(h.join().unwrap_err().is_cancelled());
        }
        // One more task, behind them in the pool's sender: once its entry
        // is in the stream, every earlier one was sent or dropped, and the
        // cancels of those sent reach the broker too. Then only it is left.
        let marker = pool.submit(square, 6);
        let stream = Broker::connect(BrokerConfig::new(&url).queue("q"))
            .unwrap()
            .keys()
            .stream(0);
        let only_square = || {
            let entries: Vec<StreamEntry> = redis::cmd("XRANGE")
                .arg(&stream)
                .arg("-")
                .arg("+")
                .query(&mut raw(&url))
                .unwrap();
            entries.len() == 1
                && Entry::decode(&entries[0].1[0].1, 1 << 20)
                    .is_ok_and(|e| e.task.ends_with("square"))
        };
        assert!(
            common::eventually(Duration::from_secs(20), only_square),
            "{} entries left in the stream",
            xlen(&url, &stream)
        );
        let recorded = outcomes(&url);
        assert!(recorded.iter().all(is_cancelled), "{recorded:?}");
        let worker = in_process(&url, Isolation::Threads);
        assert_eq!(marker.join().unwrap(), 36);
        assert!(!path.exists(), "a cancelled task ran");
        drop(pool);
        assert_eq!(worker.stop().completed, 1);
    });
}
