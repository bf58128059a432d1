//! The status snapshot against a real `redis-server` (one per test): two
//! workers registered, entries waiting, leased, dead-lettered and delayed,
//! counted per shard and per worker; a real worker's own figures (done,
//! failed, the last minute, RSS); a missing queue read without creating it;
//! an unreachable broker failing fast.

#[path = "common/cluster_worker.rs"]
mod cluster_worker;
#[path = "common/redis.rs"]
mod redis_server;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use cluster_worker::InProcess;
use quadriga::TaskErrorKind;
use quadriga::cluster::{
    Broker, BrokerConfig, ClusterPool, ErrorKind, QueueReader, Status, Worker, WorkerInfo,
    read_status,
};
use redis_server::RedisServer;

#[quadriga::task]
fn halve(x: u32) -> Result<u32, String> {
    if x % 2 == 1 {
        Err(format!("{x} is odd"))
    } else {
        Ok(x / 2)
    }
}

fn config(server: &RedisServer, consumer: &str) -> BrokerConfig {
    BrokerConfig::new(server.url())
        .queue("q")
        .shards(2)
        .consumer(consumer)
        .lease(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(2))
        .io_timeout(Duration::from_secs(2))
}

fn record(name: &str, slots: u32, done: u64, failed: u64, rss: u64) -> WorkerInfo {
    WorkerInfo {
        done,
        failed,
        rss_bytes: rss,
        done_last_minute: done,
        ..WorkerInfo::this_process(name, slots, vec!["tests::halve".into()])
    }
}

#[test]
fn a_snapshot_counts_workers_and_waiting_leased_dead_and_delayed_entries() {
    let server = RedisServer::start();
    let mut client = Broker::connect(config(&server, "client")).unwrap();
    let mut w1 = Broker::connect(config(&server, "w1")).unwrap();
    let mut w2 = Broker::connect(config(&server, "w2")).unwrap();
    let ttl = Duration::from_secs(30);
    w1.register(&record("w1", 4, 7, 2, 5 << 20), ttl).unwrap();
    w2.register(&record("w2", 2, 3, 0, 0), ttl).unwrap();

    // Six entries, three per shard (round robin), and one delayed.
    for i in 0..6u8 {
        let entry = client.entry("tests::halve", vec![vec![i]], None);
        client.enqueue(&entry).unwrap();
    }
    let later = client.entry("tests::halve", vec![vec![9]], None);
    client
        .enqueue_after(&later, Duration::from_secs(3600))
        .unwrap();
    // w1 leases two; w2 leases one and dead-letters it.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.len() < 2 && Instant::now() < deadline {
        let room = 2 - held.len();
        held.extend(w1.reader().read(room, Duration::from_millis(200)).unwrap());
    }
    assert_eq!(held.len(), 2);
    let mut taken = Vec::new();
    while taken.is_empty() && Instant::now() < deadline {
        taken = w2.reader().read(1, Duration::from_millis(200)).unwrap();
    }
    assert_eq!(taken.len(), 1);
    w2.dead_letter(&taken[0], "a test's dead letter").unwrap();

    let status = client.status().unwrap();
    assert_eq!(status.queue, "q");
    assert_eq!(status.shards.len(), 2);
    let t = &status.totals;
    assert_eq!(
        (
            t.workers,
            t.slots,
            t.waiting,
            t.leased,
            t.dead_letters,
            t.delayed
        ),
        (2, 6, 3, 2, 1, 1),
        "{status:#?}"
    );
    assert_eq!(t.done_last_minute, 10);
    for s in &status.shards {
        assert_eq!(s.waiting + s.leased + s.dead_letters, 3, "{s:?}");
        assert_eq!(s.oldest_waiting_age_ms.is_some(), s.waiting > 0, "{s:?}");
        assert_eq!(s.oldest_leased_age_ms.is_some(), s.leased > 0, "{s:?}");
        for age in [s.oldest_waiting_age_ms, s.oldest_leased_age_ms]
            .into_iter()
            .flatten()
        {
            assert!(age < 60_000, "an age measured on the server's clock: {age}");
        }
    }
    let [a, b] = &status.workers[..] else {
        panic!("two workers: {status:#?}")
    };
    assert_eq!((a.name.as_str(), b.name.as_str()), ("w1", "w2"));
    assert_eq!((a.slots, a.running, a.done, a.failed), (4, 2, 7, 2));
    assert_eq!((b.slots, b.running, b.done, b.failed), (2, 0, 3, 0));
    assert_eq!((a.rss_bytes, b.rss_bytes), (Some(5 << 20), None));
    assert_eq!(a.pid, std::process::id());
    assert_eq!(a.tasks, ["tests::halve"]);
    assert!(a.heartbeat_age_ms < 30_000, "{a:?}");

    // The same snapshot without a broker handle: the shards are found.
    let read = read_status(&config(&server, "status").shards(1)).unwrap();
    assert_eq!(read.shards.len(), 2);
    assert_eq!(read.totals, status.totals);
    assert_eq!(read.workers.len(), 2);

    // And the JSON document keeps its field names.
    let json = serde_json::to_value(&read).unwrap();
    assert_eq!(json["totals"]["dead_letters"], 1);
    assert!(json["workers"][0]["heartbeat_age_ms"].is_u64());
    assert_eq!(json["shards"][1]["shard"], 1);
    let back: Status = serde_json::from_value(json).unwrap();
    assert_eq!(back, read);
}

#[test]
fn a_running_worker_reports_done_failed_last_minute_and_rss() {
    let server = RedisServer::start();
    let worker = Worker::builder(server.url())
        .queue("q")
        .concurrency(2)
        .lease(Duration::from_millis(300))
        .build()
        .unwrap();
    let running = InProcess::run(worker);
    let pool = ClusterPool::builder(server.url())
        .queue("q")
        .build()
        .unwrap();
    let handles: Vec<_> = (0..10u32).map(|x| pool.submit(halve, x)).collect();
    let mut failed = 0;
    for h in handles {
        match h.join() {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.kind(), TaskErrorKind::Failed, "{e}");
                failed += 1;
            }
        }
    }
    assert_eq!(failed, 5);
    // The record is renewed with the heartbeat (every 100 ms here).
    let cfg = BrokerConfig::new(server.url()).queue("q");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = read_status(&cfg).unwrap();
        if status.workers.first().is_some_and(|w| w.done == 10) || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let [w] = &status.workers[..] else {
        panic!("one worker: {status:#?}")
    };
    assert_eq!((w.done, w.failed, w.slots), (10, 5, 2), "{w:?}");
    assert_eq!(w.done_last_minute, 10, "{w:?}");
    assert_eq!(status.totals.done_last_minute, 10);
    assert!(w.rss_bytes.is_some_and(|r| r > 1 << 20), "{w:?}");
    assert_eq!(w.running, 0);
    assert_eq!((status.totals.waiting, status.totals.leased), (0, 0));
    assert!(w.tasks.iter().any(|t| t.ends_with("halve")), "{w:?}");
    running.stop();
}

#[test]
fn reading_a_missing_queue_creates_nothing() {
    let server = RedisServer::start();
    let status = read_status(&BrokerConfig::new(server.url()).queue("nobody")).unwrap();
    assert!(status.shards.is_empty() && status.workers.is_empty());
    assert_eq!(status.totals.waiting, 0);
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let keys: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(keys, 0, "a status read writes nothing");
}

#[test]
fn an_unreachable_broker_fails_within_the_connect_timeout() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = BrokerConfig::new(format!("redis://127.0.0.1:{port}/"))
        .connect_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let err = read_status(&cfg).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unreachable, "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[quadriga::task]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn a_worker_reports_the_run_times_of_its_last_minute() {
    let server = RedisServer::start();
    let worker = Worker::builder(server.url())
        .queue("q")
        .concurrency(2)
        .lease(Duration::from_millis(300))
        .build()
        .unwrap();
    let running = InProcess::run(worker);
    let pool = ClusterPool::builder(server.url())
        .queue("q")
        .build()
        .unwrap();
    assert_eq!(pool.submit(nap, 20).join().unwrap(), 20);
    assert_eq!(pool.submit(nap, 60).join().unwrap(), 60);
    let cfg = BrokerConfig::new(server.url()).queue("q");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = read_status(&cfg).unwrap();
        if status.workers.first().is_some_and(|w| w.done == 2) || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let [w] = &status.workers[..] else {
        panic!("one worker: {status:#?}")
    };
    let (mean, max) = (w.run_mean_us.unwrap(), w.run_max_us.unwrap());
    // Each ran at least as long as it slept: (20 + 60) / 2 and 60 ms.
    assert!(mean >= 40_000 && max >= 60_000, "{w:?}");
    assert!(mean < max && max < 30_000_000, "{w:?}");
    assert_eq!(
        (status.totals.run_mean_us, status.totals.run_max_us),
        (Some(mean), Some(max))
    );
    running.stop();
}

#[test]
fn a_queue_reader_looks_again_and_again_on_one_connection() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let connections = |con: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(con).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let mut client_broker = Broker::connect(config(&server, "client")).unwrap();
    let entry = client_broker.entry("tests::halve", vec![vec![2]], None);
    client_broker.enqueue(&entry).unwrap();
    let before = connections(&mut con);
    let mut reader = QueueReader::new(&config(&server, "reader")).unwrap();
    for _ in 0..5 {
        let status = reader.status().unwrap();
        assert_eq!((status.shards.len(), status.totals.waiting), (2, 1));
        assert!(reader.failures(10).unwrap().is_empty());
        assert!(reader.dead_letters(0..2, 10).unwrap().is_empty());
    }
    assert_eq!(connections(&mut con) - before, 1, "one connection, kept");
    assert_eq!(
        reader.status().unwrap().totals,
        read_status(&config(&server, "x")).unwrap().totals
    );
}
