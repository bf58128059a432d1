//! The cluster pool and workers against a Redis Cluster of 3 masters on
//! loopback (`redis+cluster://` URLs): a map and single tasks through 2
//! worker processes, every result checked, the outcomes spread over the
//! cluster's nodes; an idle multi-shard read waits its block time and no
//! more; durability is read from every master; an unreachable cluster is
//! reported within a bounded time.
//!
//! Worker processes are this test binary re-executed into
//! `cluster_worker_process` with `QUADRIGA_CLUSTER_WORKER` set; the servers
//! and workers are killed by pid and reaped when dropped (also when an
//! assertion fails, as they belong to the test's own thread).

mod common;
#[path = "common/records.rs"]
mod records;
#[path = "common/redis.rs"]
mod redis_server;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quadriga::Shutdown;
use quadriga::cluster::{
    Broker, BrokerConfig, Cancelled, ClusterPool, ErrorKind, TaskId, WORKER_URL_ENV,
};
use redis_server::{RedisCluster, free_port};

const SHARDS: u16 = 6;

#[quadriga::task]
fn square(x: u64) -> u64 {
    x * x
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
    fn start(url: &str, n: usize) -> Self {
        let exe = std::env::current_exe().unwrap();
        let children = (0..n)
            .map(|_| {
                Command::new(&exe)
                    .args(["cluster_worker_process", "--exact", "--nocapture"])
                    .args(["--test-threads", "1"])
                    .env(WORKER_URL_ENV, url)
                    .env("QUADRIGA_CLUSTER_QUEUE", "q")
                    .env("QUADRIGA_CLUSTER_SHARDS", SHARDS.to_string())
                    .env("QUADRIGA_CLUSTER_CONCURRENCY", "2")
                    .env("QUADRIGA_CLUSTER_LEASE_MS", "3000")
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        Workers(children)
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

/// How many task outcomes of queue `q` the node on `port` holds.
fn outcomes_on(port: u16) -> usize {
    let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    records::recorded(&mut con, "quadriga:{q.*}:rec:*").len()
}

/// How many keys matching `pattern` the node on `port` holds.
fn keys_on(port: u16, pattern: &str) -> usize {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--raw"])
        .args(["KEYS", pattern])
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .count()
}

#[test]
fn a_map_runs_on_a_cluster_of_three_masters_spread_over_its_nodes() {
    let cluster = RedisCluster::start(3);
    let url = cluster.url();
    let mut workers = Workers::start(&url, 2);
    let body_url = url.clone();
    common::within(120, move || {
        let pool = ClusterPool::builder(body_url.as_str())
            .queue("q")
            .shards(SHARDS)
            .build()
            .unwrap();
        let n = 3000u64;
        let got: Vec<u64> = pool.map(square, 1..=n).map(Result::unwrap).collect();
        assert_eq!(got, (1..=n).map(|x| x * x).collect::<Vec<_>>());
        // Single tasks, one per shard at least (round robin), each joined.
        let handles: Vec<_> = (0..2 * u64::from(SHARDS))
            .map(|i| pool.submit(square, i))
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), (i as u64) * (i as u64));
        }
        pool.shutdown(Shutdown::Wait);
    });
    assert_eq!(workers.alive(), 2, "no worker died");
    // Every task's outcome lives in its shard's slot: they are spread over
    // the nodes, and every one was recorded.
    let per_node: Vec<usize> = cluster
        .nodes()
        .iter()
        .map(|n| outcomes_on(n.port()))
        .collect();
    assert_eq!(
        per_node.iter().sum::<usize>(),
        3000 + 2 * usize::from(SHARDS),
        "one outcome per task: {per_node:?}"
    );
    assert!(
        per_node.iter().filter(|&&k| k > 0).count() >= 2,
        "outcomes on more than one node: {per_node:?}"
    );
    let streams: Vec<usize> = cluster
        .nodes()
        .iter()
        .map(|n| keys_on(n.port(), "quadriga:{q.*}:stream"))
        .collect();
    assert_eq!(streams.iter().sum::<usize>(), usize::from(SHARDS));
    assert!(
        streams.iter().filter(|&&k| k > 0).count() >= 2,
        "{streams:?}"
    );
    // `quadriga status` reads a cluster too: every shard, across the nodes,
    // both workers, nothing left waiting or leased.
    let status = quadriga::cluster::read_status(&BrokerConfig::new(url.as_str()).queue("q"))
        .expect("a status read on a cluster");
    assert_eq!(status.shards.len(), usize::from(SHARDS), "{status:?}");
    assert_eq!(status.totals.workers, 2, "{status:?}");
    assert_eq!(
        status.totals.waiting + status.totals.leased,
        0,
        "{status:?}"
    );
}

#[test]
fn an_idle_read_over_shards_on_several_nodes_waits_its_block_time() {
    let cluster = RedisCluster::start(3);
    let url = cluster.url();
    common::within(60, move || {
        let config = BrokerConfig::new(url).queue("idle").shards(SHARDS);
        let mut broker = Broker::connect(config).unwrap();
        let mut reader = broker.reader();
        let block = Duration::from_millis(400);
        for free in [1, 4] {
            let started = Instant::now();
            let got = reader.read(free, block).unwrap();
            let took = started.elapsed();
            assert!(got.is_empty());
            assert!(took >= block, "returned early: {took:?}");
            assert!(took < block + Duration::from_secs(3), "took {took:?}");
        }
        // An entry on any shard is found by a later read (each shard in turn);
        // fetch and cancel by id work on whichever node holds the shard.
        let mut ids = Vec::new();
        for _ in 0..SHARDS {
            let entry = broker.entry("tests.nothing", vec![vec![1]], None);
            broker.enqueue(&entry).unwrap();
            ids.extend(entry.ids());
        }
        for &id in &ids {
            assert_eq!(broker.fetch(id).unwrap(), None, "pending");
        }
        let unknown = TaskId {
            seq: 999_999,
            ..ids[0]
        };
        assert_eq!(
            broker.fetch(unknown).unwrap_err().kind(),
            ErrorKind::UnknownTask
        );
        // Cancelling the last shard's task removes it from its stream.
        let cancelled = ids.pop().unwrap();
        assert_eq!(broker.cancel(cancelled).unwrap(), Cancelled::Removed);
        assert!(broker.fetch(cancelled).unwrap().is_some());
        let mut taken = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while taken < ids.len() && Instant::now() < deadline {
            taken += reader.read(2, block).unwrap().len();
        }
        assert_eq!(taken, ids.len());
        assert!(
            reader
                .read(2, Duration::from_millis(100))
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn durability_is_read_from_every_master() {
    let cluster = RedisCluster::start(3);
    let url = cluster.url();
    let connect = move || Broker::connect(BrokerConfig::new(url.as_str()).queue("d"));
    let ports: Vec<u16> = cluster.nodes().iter().map(|n| n.port()).collect();
    common::within(60, move || {
        let broker = connect().unwrap();
        assert!(broker.durability().is_durable(), "{}", broker.durability());
        // One master of three stops persisting: the cluster is not durable,
        // whichever node a client happens to ask first.
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &ports[1].to_string()])
            .args(["CONFIG", "SET", "appendonly", "no"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        for _ in 0..3 {
            let broker = connect().unwrap();
            assert_eq!(broker.durability().appendonly, Some(false));
            assert!(broker.durability().warning().is_some());
        }
    });
}

#[test]
fn an_unreachable_cluster_is_an_error_within_a_bounded_time() {
    common::within(60, || {
        let url = format!(
            "redis+cluster://127.0.0.1:{},127.0.0.1:{}/",
            free_port(),
            free_port()
        );
        let started = Instant::now();
        let err =
            Broker::connect(BrokerConfig::new(url).connect_timeout(Duration::from_millis(500)))
                .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unreachable, "{err}");
        assert!(started.elapsed() < Duration::from_secs(15));
        let bad =
            Broker::connect(BrokerConfig::new("redis+cluster://:secret@nohostport/")).unwrap_err();
        assert_eq!(bad.kind(), ErrorKind::Config);
        assert!(!bad.to_string().contains("secret"));
    });
}
