//! `quadriga status` against the real binary and a private `redis-server`:
//! the workers and shards tables, the `--json` document, an unreachable
//! broker, and the documented field names.

mod common;
#[path = "../../quadriga/tests/common/redis.rs"]
mod redis_server;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Done, bin, spawn_and_wait};
use quadriga::cluster::{Broker, BrokerConfig, WorkerInfo};
use redis_server::RedisServer;

/// `quadriga ARGS...` to its end (within the common deadline).
fn run(args: &[&str]) -> Done {
    let mut cmd = bin();
    cmd.args(args);
    spawn_and_wait(cmd, None)
}

fn config(server: &RedisServer, consumer: &str) -> BrokerConfig {
    BrokerConfig::new(server.url())
        .queue("jobs")
        .shards(2)
        .consumer(consumer)
        .lease(Duration::from_secs(30))
}

/// Two workers; four entries: one leased by w1, one dead-lettered by w2, two
/// waiting.
fn populate(server: &RedisServer) {
    let mut client = Broker::connect(config(server, "client")).unwrap();
    let mut w1 = Broker::connect(config(server, "w1")).unwrap();
    let mut w2 = Broker::connect(config(server, "w2")).unwrap();
    let ttl = Duration::from_secs(60);
    let info = |name: &str, slots: u32, done: u64, failed: u64| WorkerInfo {
        done,
        failed,
        rss_bytes: 3 << 20,
        ..WorkerInfo::this_process(name, slots, vec!["sh".into()])
    };
    w1.register(&info("w1", 8, 12, 1), ttl).unwrap();
    w2.register(&info("w2", 3, 4, 0), ttl).unwrap();
    for i in 0..4u8 {
        let entry = client.entry("sh", vec![vec![i]], None);
        client.enqueue(&entry).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let one = |b: &Broker| loop {
        let mut got = b.reader().read(1, Duration::from_millis(200)).unwrap();
        if let Some(d) = got.pop() {
            return d;
        }
        assert!(Instant::now() < deadline, "nothing to read");
    };
    let _held = one(&w1);
    let dead = one(&w2);
    w2.dead_letter(&dead, "test").unwrap();
}

#[test]
fn tables_show_workers_and_shards_aligned() {
    let server = RedisServer::start();
    populate(&server);
    let done = run(&["status", "--broker", &server.url(), "--queue", "jobs"]);
    done.status(0);
    let out = done.out();
    assert!(
        out.starts_with("queue jobs: 2 workers (11 slots), 2 waiting, 1 leased, 1 dead letters"),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    let header = lines.iter().position(|l| l.starts_with("WORKER")).unwrap();
    let w1: Vec<&str> = lines[header + 1].split_whitespace().collect();
    let w2: Vec<&str> = lines[header + 2].split_whitespace().collect();
    // WORKER HOST PID SLOTS RUNNING DONE FAILED LAST-MIN HEARTBEAT(2) RSS(2) VERSION
    assert_eq!(
        (w1[0], w1[3], w1[4], w1[5], w1[6]),
        ("w1", "8", "1", "12", "1"),
        "{out}"
    );
    assert_eq!(
        (w2[0], w2[3], w2[4], w2[5], w2[6]),
        ("w2", "3", "0", "4", "0"),
        "{out}"
    );
    assert_eq!(w1[2], std::process::id().to_string());
    assert!(
        w1[9] == "s" || w1[9] == "ms",
        "a heartbeat age with its unit: {out}"
    );
    assert_eq!((w1[10], w1[11]), ("3.0", "MiB"), "{out}");
    // Columns line up: each right-aligned number ends under its header.
    let end = |line: &str, col: &str| line.find(col).unwrap() + col.len();
    let done_end = end(lines[header], "DONE");
    assert_eq!(&lines[header + 1][done_end - 2..done_end], "12", "{out}");
    assert_eq!(&lines[header + 2][done_end - 1..done_end], "4", "{out}");

    let shards = lines.iter().position(|l| l.starts_with("SHARD")).unwrap();
    let rows = &lines[shards + 1..];
    assert_eq!(rows.len(), 2, "{out}");
    let mut waiting = 0;
    for r in rows {
        // All of the shards table is right-aligned: equal widths.
        assert_eq!(r.len(), lines[shards].len(), "{out}");
        waiting += r.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
    }
    assert_eq!(waiting, 2);
}

#[test]
fn json_prints_the_status_document() {
    let server = RedisServer::start();
    populate(&server);
    let done = run(&[
        "status",
        "--broker",
        &server.url(),
        "--queue",
        "jobs",
        "--json",
    ]);
    done.status(0);
    let doc: serde_json::Value = serde_json::from_str(&done.out()).expect("one JSON document");
    assert_eq!(doc["queue"], "jobs");
    let t = &doc["totals"];
    assert_eq!(
        [
            &t["workers"],
            &t["slots"],
            &t["waiting"],
            &t["leased"],
            &t["dead_letters"]
        ],
        [2, 11, 2, 1, 1]
    );
    assert_eq!(doc["workers"][0]["name"], "w1");
    assert_eq!(doc["workers"][0]["running"], 1);
    assert_eq!(doc["workers"][1]["failed"], 0);
    assert_eq!(doc["workers"][1]["rss_bytes"], 3 << 20);
    assert_eq!(doc["shards"].as_array().unwrap().len(), 2);
    for shard in doc["shards"].as_array().unwrap() {
        let waiting = shard["waiting"].as_u64().unwrap();
        assert_eq!(
            shard["oldest_waiting_age_ms"].is_u64(),
            waiting > 0,
            "{shard}"
        );
        assert_eq!(
            shard["oldest_waiting_age_ms"].is_null(),
            waiting == 0,
            "{shard}"
        );
    }

    // Another queue on the same broker: nothing there, and nothing made.
    let other = run(&[
        "status",
        "--broker",
        &server.url(),
        "--queue",
        "none",
        "--json",
    ]);
    other.status(0);
    let doc: serde_json::Value = serde_json::from_str(&other.out()).unwrap();
    assert_eq!(doc["shards"], serde_json::json!([]));
    assert_eq!(doc["workers"], serde_json::json!([]));
}

#[test]
fn an_unreachable_broker_is_one_line_and_255_within_seconds() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let done = run(&["status", "--broker", &url]);
    done.status(255);
    assert!(done.elapsed < Duration::from_secs(10), "{:?}", done.elapsed);
    let err = done.err();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("quadriga: error: "), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(done.out().is_empty());
}

#[test]
fn help_documents_the_json_fields() {
    let done = run(&["status", "--help"]);
    done.status(0);
    let help = done.out();
    for field in [
        "--broker",
        "--json",
        "heartbeat_age_ms",
        "oldest_waiting_age_ms",
        "dead_letters",
        "done_last_minute",
        "rss_bytes",
    ] {
        assert!(help.contains(field), "{field} in {help}");
    }
}

#[test]
fn run_times_show_in_the_summary_the_table_and_the_document() {
    let server = RedisServer::start();
    let mut w = Broker::connect(config(&server, "w1")).unwrap();
    let record = |name: &str, mean: u64, max: u64, done: u64| WorkerInfo {
        run_mean_us: mean,
        run_max_us: max,
        done_last_minute: done,
        ..WorkerInfo::this_process(name, 2, vec!["sh".into()])
    };
    let ttl = Duration::from_secs(60);
    w.register(&record("w1", 2_000, 9_000, 3), ttl).unwrap();
    w.register(&record("w2", 10_000, 12_500, 1), ttl).unwrap();
    w.register(&record("w3", 0, 0, 0), ttl).unwrap();

    let done = run(&["status", "--broker", &server.url(), "--queue", "jobs"]);
    done.status(0);
    let out = done.out();
    // Weighted by completions: (2 ms × 3 + 10 ms × 1) / 4 = 4 ms.
    assert!(
        out.lines()
            .next()
            .unwrap()
            .ends_with("; entries ran 4.0 ms on average, 12.5 ms at most"),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    let header = lines.iter().position(|l| l.starts_with("WORKER")).unwrap();
    let end = |line: &str, col: &str| line.find(col).unwrap() + col.len();
    let mean_end = end(lines[header], "RUN MEAN");
    let max_end = end(lines[header], "RUN MAX");
    assert!(lines[header + 1][..mean_end].ends_with("2.0 ms"), "{out}");
    assert!(lines[header + 1][..max_end].ends_with("9.0 ms"), "{out}");
    assert!(
        lines[header + 3][..max_end].ends_with('-'),
        "none ran: {out}"
    );

    let done = run(&[
        "status",
        "--broker",
        &server.url(),
        "--queue",
        "jobs",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&done.out()).unwrap();
    assert_eq!(doc["workers"][0]["run_mean_us"], 2_000);
    assert_eq!(doc["workers"][1]["run_max_us"], 12_500);
    assert!(doc["workers"][2]["run_mean_us"].is_null());
    assert_eq!(doc["totals"]["run_mean_us"], 4_000);
    assert_eq!(doc["totals"]["run_max_us"], 12_500);
}
