//! The cluster broker layer against a real `redis-server` (one per test, on a
//! free loopback port, `appendonly yes` + `appendfsync always`): the round
//! trip, leases and fencing, dead letters, fetch by id, repeats, foreign and
//! oversized entries, bad connections, and a `kill -9` of the server.

#[path = "common/redis.rs"]
mod redis_server;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use quadriga::TaskErrorKind;
use quadriga::cluster::{
    Broker, BrokerConfig, Cancelled, Completion, DeadLettered, Delivery, ErrorKind, Outcome,
    TaskId, WorkerInfo,
};
use redis_server::RedisServer;

const LEASE: Duration = Duration::from_millis(300);
const NO_WAIT: Duration = Duration::from_millis(1);

fn config(server: &RedisServer, consumer: &str) -> BrokerConfig {
    BrokerConfig::new(server.url())
        .queue("q")
        .consumer(consumer)
        .lease(LEASE)
        .connect_timeout(Duration::from_secs(2))
        .io_timeout(Duration::from_secs(2))
}

fn connect(server: &RedisServer, consumer: &str) -> Broker {
    Broker::connect(config(server, consumer)).expect("connect")
}

/// A raw connection, to look behind the broker's back.
fn raw(server: &RedisServer) -> redis::Connection {
    let client = redis::Client::open(server.url()).unwrap();
    let con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    con.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    con
}

fn xlen(con: &mut redis::Connection, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query(con).unwrap()
}

/// Pending entries of the group on `stream`.
fn pending(con: &mut redis::Connection, stream: &str) -> u64 {
    let (n, ..): (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(stream)
        .arg(quadriga::cluster::GROUP)
        .query(con)
        .unwrap();
    n
}

fn enqueue_one(b: &mut Broker, input: &[u8]) -> (String, Vec<TaskId>) {
    let entry = b.entry("demo::echo", vec![input.to_vec()], None);
    let id = b.enqueue(&entry).unwrap();
    (id, entry.ids().collect())
}

fn read_one(b: &Broker) -> Delivery {
    let mut got = b.reader().read(1, Duration::from_secs(2)).unwrap();
    assert_eq!(got.len(), 1, "one entry read");
    got.pop().unwrap()
}

fn output(bytes: &[u8]) -> Outcome {
    Outcome::Output(bytes.to_vec())
}

#[test]
fn enqueue_read_complete_round_trip() {
    let server = RedisServer::start();
    let mut client = connect(&server, "client");
    let mut worker = connect(&server, "worker");
    assert_eq!(
        client.durability().warning(),
        None,
        "{}",
        client.durability()
    );

    let entry = client.entry("demo::echo", vec![b"a".to_vec(), b"bc".to_vec()], Some(42));
    let ids: Vec<TaskId> = entry.ids().collect();
    let stream_id = client.enqueue(&entry).unwrap();
    assert_eq!(client.fetch(ids[0]).unwrap(), None, "pending until done");

    // The read waits for nothing when there is work; it takes only what it asked for.
    let started = Instant::now();
    let got = worker.reader().read(8, Duration::from_secs(5)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(got.len(), 1);
    let d = &got[0];
    assert_eq!(d.id, stream_id);
    assert_eq!(d.deliveries, 1);
    assert_eq!(d.entry.as_ref().unwrap(), &entry);

    let outcomes = [
        output(b"A"),
        Outcome::Error(quadriga::TaskError::failed("nope")),
    ];
    assert_eq!(
        worker.complete(d, &outcomes).unwrap(),
        Completion::Done {
            written: 2,
            kept: 0
        }
    );
    assert_eq!(client.fetch(ids[0]).unwrap(), Some(outcomes[0].clone()));
    assert_eq!(client.fetch(ids[1]).unwrap(), Some(outcomes[1].clone()));

    // Acknowledged and deleted; the client was told, once.
    let mut con = raw(&server);
    let keys = client.keys().clone();
    assert_eq!(pending(&mut con, &keys.stream(0)), 0);
    assert_eq!(xlen(&mut con, &keys.stream(0)), 0);
    assert_eq!(xlen(&mut con, &keys.reply(0, client.client_id())), 1);

    // An empty queue: the read blocks for its time, then returns nothing.
    let started = Instant::now();
    let none = worker.reader().read(4, Duration::from_millis(200)).unwrap();
    assert!(none.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[test]
fn a_read_takes_no_more_than_the_free_slots_across_shards() {
    let server = RedisServer::start();
    let mut client = Broker::connect(config(&server, "client").shards(4)).unwrap();
    let worker = Broker::connect(config(&server, "worker").shards(4)).unwrap();
    let mut shards = Vec::new();
    for i in 0..8u8 {
        let e = client.entry("demo::echo", vec![vec![i]], None);
        shards.push(e.shard);
        client.enqueue(&e).unwrap();
    }
    assert_eq!(
        shards,
        [0, 1, 2, 3, 0, 1, 2, 3],
        "round robin over the shards"
    );
    let mut reader = worker.reader();
    let mut total = 0;
    for free in [3, 1, 2, 5] {
        let got = reader.read(free, NO_WAIT).unwrap();
        assert!(got.len() <= free, "{} > {free}", got.len());
        assert!(
            got.iter()
                .all(|d| d.entry.as_ref().unwrap().shard == d.shard)
        );
        total += got.len();
    }
    total += reader.read(8, NO_WAIT).unwrap().len();
    assert_eq!(total, 8);
    assert_eq!(reader.read(0, NO_WAIT).unwrap().len(), 0);
}

#[test]
fn the_sweeper_reclaims_after_the_lease_and_counts_deliveries() {
    let server = RedisServer::start();
    let mut client = connect(&server, "client");
    let mut a = connect(&server, "a");
    let mut b = connect(&server, "b");
    let (id, _) = enqueue_one(&mut client, b"x");
    let d = read_one(&a);
    let held = [(d.shard, d.id.clone())];

    // Heartbeats keep the lease: nothing to reclaim while they come.
    for _ in 0..4 {
        std::thread::sleep(LEASE / 2);
        assert!(a.heartbeat(&held).unwrap().is_empty());
        assert!(b.sweep(10).unwrap().reclaimed.is_empty());
    }
    // No heartbeat past the lease: b takes it, delivery count 2 (the
    // heartbeats did not count as deliveries).
    std::thread::sleep(LEASE + LEASE / 2);
    let swept = b.sweep(10).unwrap();
    assert!(swept.dead.is_empty());
    assert_eq!(swept.reclaimed.len(), 1);
    assert_eq!(swept.reclaimed[0].id, id);
    assert_eq!(swept.reclaimed[0].deliveries, 2);
    assert_eq!(swept.reclaimed[0].entry, d.entry);
    // a's heartbeat now says it lost the entry.
    assert_eq!(a.heartbeat(&held).unwrap(), held);
}

#[test]
fn a_stale_holder_cannot_ack_or_write_a_result() {
    let server = RedisServer::start();
    let mut client = connect(&server, "client");
    let mut a = connect(&server, "a");
    let mut b = connect(&server, "b");
    let (_, ids) = enqueue_one(&mut client, b"x");
    let da = read_one(&a);

    // a pauses past its lease; b reclaims.
    std::thread::sleep(LEASE * 2);
    let db = b.sweep(10).unwrap().reclaimed.pop().expect("reclaimed");

    // a's late completion is refused, whether b has finished or not.
    assert_eq!(
        a.complete(&da, &[output(b"from a")]).unwrap(),
        Completion::Refused
    );
    assert_eq!(client.fetch(ids[0]).unwrap(), None, "no result from a");
    let mut con = raw(&server);
    assert_eq!(
        pending(&mut con, &client.keys().stream(0)),
        1,
        "a did not ack b's entry"
    );

    assert!(matches!(
        b.complete(&db, &[output(b"from b")]).unwrap(),
        Completion::Done { written: 1, .. }
    ));
    assert_eq!(
        a.complete(&da, &[output(b"from a")]).unwrap(),
        Completion::Refused
    );
    assert_eq!(a.dead_letter(&da, "late").unwrap(), DeadLettered::Gone);
    assert_eq!(client.fetch(ids[0]).unwrap(), Some(output(b"from b")));
}

#[test]
fn past_the_delivery_limit_an_entry_is_dead_lettered_and_its_tasks_lost() {
    let server = RedisServer::start();
    let mut client = connect(&server, "client");
    let mut a = Broker::connect(config(&server, "a").max_deliveries(2)).unwrap();
    let mut b = Broker::connect(config(&server, "b").max_deliveries(2)).unwrap();
    let (id, ids) = enqueue_one(&mut client, b"poison");
    read_one(&a); // delivery 1
    std::thread::sleep(LEASE * 2);
    assert_eq!(b.sweep(10).unwrap().reclaimed.len(), 1); // delivery 2
    std::thread::sleep(LEASE * 2);
    let swept = a.sweep(10).unwrap(); // delivery 3: past the limit
    assert!(swept.reclaimed.is_empty());
    assert_eq!(swept.dead, [(0, id.clone())]);

    let letters = client.dead_letters(0, 10).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].entry, id);
    assert_eq!(letters[0].deliveries, 3);
    assert!(
        letters[0]
            .reason
            .contains("retries on worker loss exhausted")
    );
    match client.fetch(ids[0]).unwrap() {
        Some(Outcome::Error(e)) => {
            assert_eq!(e.kind(), TaskErrorKind::Lost);
            assert_eq!(e.task_name(), Some("demo::echo"));
            assert!(e.message().contains("delivered 3 times"), "{e}");
        }
        other => panic!("expected lost, got {other:?}"),
    }
    let mut con = raw(&server);
    let keys = client.keys().clone();
    assert_eq!(pending(&mut con, &keys.stream(0)), 0);
    assert_eq!(xlen(&mut con, &keys.stream(0)), 0);
    assert_eq!(
        xlen(&mut con, &keys.reply(0, client.client_id())),
        1,
        "client told"
    );
}

#[test]
fn the_first_outcome_recorded_wins() {
    let server = RedisServer::start();
    let mut client = connect(&server, "client");
    let mut w = connect(&server, "w");
    let entry = client.entry("demo::echo", vec![vec![1], vec![2]], None);
    let ids: Vec<TaskId> = entry.ids().collect();
    client.enqueue(&entry).unwrap();
    // Another writer recorded task 0's outcome first: its client cancelled
    // it, alone, while its entry (shared with task 1) waited.
    assert_eq!(client.cancel(ids[0]).unwrap(), Cancelled::Marked);
    let first = client.fetch(ids[0]).unwrap().unwrap();
    assert!(
        matches!(&first, Outcome::Error(e) if e.is_cancelled()),
        "{first:?}"
    );
    let d = read_one(&w);
    assert_eq!(
        w.complete(&d, &[output(b"second"), output(b"two")])
            .unwrap(),
        Completion::Done {
            written: 1,
            kept: 1
        }
    );
    assert_eq!(client.fetch(ids[0]).unwrap(), Some(first));
    assert_eq!(client.fetch(ids[1]).unwrap(), Some(output(b"two")));
}

#[test]
fn fetch_by_id_knows_pending_done_and_unknown() {
    let server = RedisServer::start();
    let mut client = connect(&server, "client");
    let (_, ids) = enqueue_one(&mut client, b"x");
    assert_eq!(client.fetch(ids[0]).unwrap(), None);

    // A restarted client (a new connection, new client id) asks by id.
    let mut other = connect(&server, "other");
    assert_ne!(other.client_id(), client.client_id());
    let id_text = ids[0].to_string();
    assert_eq!(other.fetch(id_text.parse().unwrap()).unwrap(), None);

    let never = TaskId {
        seq: ids[0].seq + 1000,
        ..ids[0]
    };
    let err = other.fetch(never).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTask);
    assert!(err.to_string().contains(&never.to_string()), "{err}");
    let err = other.fetch(TaskId { shard: 9, ..ids[0] }).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTask);

    let mut w = connect(&server, "w");
    let d = read_one(&w);
    w.complete(&d, &[output(b"ok")]).unwrap();
    assert_eq!(other.fetch(ids[0]).unwrap(), Some(output(b"ok")));
}

#[test]
fn repeating_each_write_is_harmless() {
    let server = RedisServer::start();
    let mut client = connect(&server, "client");
    let mut w = connect(&server, "w");
    let keys = client.keys().clone();
    let mut con = raw(&server);

    // Enqueue twice: one entry, the same id.
    let entry = client.entry("demo::echo", vec![b"x".to_vec()], None);
    let first = client.enqueue(&entry).unwrap();
    assert_eq!(client.enqueue(&entry).unwrap(), first);
    assert_eq!(xlen(&mut con, &keys.stream(0)), 1);

    let d = read_one(&w);
    let held = [(d.shard, d.id.clone())];
    assert!(w.heartbeat(&held).unwrap().is_empty());
    assert!(w.heartbeat(&held).unwrap().is_empty());

    // Sweeping twice takes nothing held by a live lease.
    assert!(w.sweep(10).unwrap().reclaimed.is_empty());
    assert!(w.sweep(10).unwrap().reclaimed.is_empty());

    // Complete twice: done, then recognised as a repeat; one notification.
    let outcome = [output(b"X")];
    assert!(matches!(
        w.complete(&d, &outcome).unwrap(),
        Completion::Done { .. }
    ));
    assert_eq!(w.complete(&d, &outcome).unwrap(), Completion::Again);
    assert_eq!(xlen(&mut con, &keys.reply(0, client.client_id())), 1);
    let ids: Vec<TaskId> = entry.ids().collect();
    assert_eq!(client.fetch(ids[0]).unwrap(), Some(output(b"X")));
    // The enqueue repeated after completion does not bring the task back.
    assert_eq!(client.enqueue(&entry).unwrap(), first);
    assert_eq!(xlen(&mut con, &keys.stream(0)), 0);

    // Dead-letter twice: one dead letter.
    let (_, ids2) = enqueue_one(&mut client, b"y");
    let d2 = read_one(&w);
    assert_eq!(w.dead_letter(&d2, "given up").unwrap(), DeadLettered::Dead);
    assert_eq!(w.dead_letter(&d2, "given up").unwrap(), DeadLettered::Gone);
    assert_eq!(client.dead_letters(0, 10).unwrap().len(), 1);
    assert!(matches!(
        client.fetch(ids2[0]).unwrap(),
        Some(Outcome::Error(e)) if e.kind() == TaskErrorKind::Lost && e.message() == "given up"
    ));

    // Register twice: one record.
    let info = WorkerInfo::this_process("w", 4, vec!["demo::echo".into()]);
    w.register(&info, Duration::from_secs(30)).unwrap();
    w.register(&info, Duration::from_secs(30)).unwrap();
    let workers = client.workers().unwrap();
    assert_eq!(workers.len(), 1);
}

#[test]
fn foreign_entries_are_dead_lettered_with_a_reason() {
    let server = RedisServer::start();
    let client = connect(&server, "client");
    let mut w = connect(&server, "w");
    let stream = client.keys().stream(0);
    let mut con = raw(&server);
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("job")
        .arg("celery-ish")
        .query(&mut con)
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("e")
        .arg(&b"\x01\xff\xff\xff"[..])
        .query(&mut con)
        .unwrap();

    let got = w.reader().read(10, Duration::from_secs(1)).unwrap();
    assert_eq!(got.len(), 2);
    let reasons: Vec<String> = got
        .iter()
        .map(|d| d.entry.as_ref().unwrap_err().message().to_owned())
        .collect();
    assert!(
        reasons[0].contains("foreign entry") && reasons[0].contains("job"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("undecodable"), "{reasons:?}");
    for (d, reason) in got.iter().zip(&reasons) {
        assert_eq!(w.dead_letter(d, reason).unwrap(), DeadLettered::Dead);
    }
    let mut client = client;
    let letters = client.dead_letters(0, 10).unwrap();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].reason, reasons[0]);
    // The original fields travel with the dead letter.
    type Fields = Vec<(Vec<u8>, Vec<u8>)>;
    let raw_letters: Vec<(String, Fields)> = redis::cmd("XRANGE")
        .arg(client.keys().dead(0))
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    assert!(
        raw_letters[0]
            .1
            .contains(&(b"job".to_vec(), b"celery-ish".to_vec()))
    );
    assert!(
        raw_letters[1]
            .1
            .contains(&(b"e".to_vec(), b"\x01\xff\xff\xff".to_vec()))
    );
    assert_eq!(pending(&mut con, &stream), 0);
}

#[test]
fn an_oversized_input_is_refused_before_it_is_sent() {
    let server = RedisServer::start();
    let mut client = Broker::connect(config(&server, "client").max_entry_bytes(1024)).unwrap();
    let entry = client.entry("demo::echo", vec![vec![7; 2000]], None);
    let err = client.enqueue(&entry).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert!(err.message().contains("nothing was sent"), "{err}");
    assert_eq!(err.to_task_error().kind(), TaskErrorKind::Codec);
    let mut con = raw(&server);
    assert_eq!(xlen(&mut con, &client.keys().stream(0)), 0);
    let id = entry.ids().next().unwrap();
    assert_eq!(client.fetch(id).unwrap_err().kind(), ErrorKind::UnknownTask);
}

#[test]
fn an_unreachable_broker_is_a_clear_error_in_bounded_time() {
    // Nobody listens: refused at once.
    let port = redis_server::free_port();
    let started = Instant::now();
    let err = Broker::connect(
        BrokerConfig::new(format!("redis://127.0.0.1:{port}/"))
            .connect_timeout(Duration::from_millis(500)),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unreachable, "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Something listens but never answers: the handshake times out.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let err = Broker::connect(
        BrokerConfig::new(format!("redis://127.0.0.1:{port}/"))
            .connect_timeout(Duration::from_millis(500))
            .io_timeout(Duration::from_millis(500)),
    )
    .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Unreachable | ErrorKind::Connection),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.to_task_error().kind(), TaskErrorKind::Lost);
    drop(silent);
}

#[test]
fn a_wrong_password_is_a_clear_error() {
    let server = RedisServer::with_password("s3cret");
    let port = server.port();
    for url in [
        format!("redis://:wrong@127.0.0.1:{port}/"),
        format!("redis://127.0.0.1:{port}/"),
    ] {
        let started = Instant::now();
        let err = Broker::connect(BrokerConfig::new(&url)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
        assert!(err.to_string().contains("password"), "{err}");
        assert!(
            !err.to_string().contains("wrong@"),
            "no URL with a password in {err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert!(Broker::connect(BrokerConfig::new(server.url())).is_ok());
}

#[test]
fn durability_is_read_and_can_be_required() {
    let server = RedisServer::not_durable();
    let b = Broker::connect(BrokerConfig::new(server.url())).unwrap();
    assert!(!b.durability().is_durable());
    assert!(b.durability().warning().unwrap().contains("appendonly no"));
    let err = Broker::connect(BrokerConfig::new(server.url()).require_durable(true)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotDurable);
    assert!(err.message().contains("appendonly yes"), "{err}");

    let durable = RedisServer::start();
    let b = Broker::connect(BrokerConfig::new(durable.url()).require_durable(true)).unwrap();
    assert!(b.durability().is_durable());
}

#[test]
fn workers_register_with_a_ttl() {
    let server = RedisServer::start();
    let mut w = connect(&server, "w1");
    let mut info = WorkerInfo::this_process("w1", 8, vec!["a::b".into(), "c::d".into()]);
    info.done = 5;
    w.register(&info, Duration::from_millis(400)).unwrap();
    let listed = w.workers().unwrap();
    assert_eq!(listed.len(), 1);
    let got = &listed[0];
    assert_eq!(got.name, "w1");
    assert_eq!(got.pid, std::process::id());
    assert_eq!(got.concurrency, 8);
    assert_eq!(got.tasks, ["a::b", "c::d"]);
    assert_eq!(got.done, 5);
    assert_eq!(got.version, info.version);
    assert!(got.seen_ms > 0);
    // Not renewed: gone after its TTL.
    std::thread::sleep(Duration::from_millis(700));
    assert!(w.workers().unwrap().is_empty());
}

/// `kill -9` of redis-server with unacknowledged work, then a restart on the
/// same directory: the entries and the pending list survived (`appendfsync
/// always`), and the old handles reconnect by themselves.
#[test]
fn entries_and_the_pending_list_survive_a_kill_9_of_the_server() {
    let mut server = RedisServer::start();
    let mut client = connect(&server, "client");
    let mut w = connect(&server, "w");
    let mut ids = Vec::new();
    for i in 0..100u8 {
        ids.extend(enqueue_one(&mut client, &[i]).1);
    }
    let held = w.reader().read(10, NO_WAIT).unwrap();
    assert_eq!(held.len(), 10);
    for d in &held[..3] {
        w.complete(d, &[output(b"done")]).unwrap();
    }

    let pid = server.pid();
    server.kill9();
    // Down: a call fails clearly and quickly, never hangs.
    let started = Instant::now();
    let err = client.fetch(ids[0]).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Unreachable | ErrorKind::Connection),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    server.restart();
    assert_ne!(server.pid(), pid);

    // Every write that was acknowledged is there.
    let mut con = raw(&server);
    let stream = client.keys().stream(0);
    assert_eq!(xlen(&mut con, &stream), 97);
    assert_eq!(pending(&mut con, &stream), 7);
    assert_eq!(client.fetch(ids[0]).unwrap(), Some(output(b"done")));

    // The old handles reconnect: each call is retried while it fails, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let resumed = loop {
        match w.resume(100) {
            Ok(r) => break r,
            Err(e) => {
                assert!(Instant::now() < deadline, "no reconnection: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_eq!(resumed.len(), 7);
    assert!(resumed.iter().all(|d| d.deliveries == 2));
    for d in &resumed {
        assert!(matches!(
            w.complete(d, &[output(b"after")]).unwrap(),
            Completion::Done { written: 1, .. }
        ));
    }
    let rest = w.reader().read(200, NO_WAIT).unwrap();
    assert_eq!(rest.len(), 90);
    assert_eq!(pending(&mut con, &stream), 90);
    assert_eq!(client.fetch(ids[3]).unwrap(), Some(output(b"after")));
}

/// A server that lost its streams (flushed, or restarted without
/// persistence): the reader makes the groups again instead of failing for
/// ever, and new work flows.
#[test]
fn a_reader_makes_lost_groups_again() {
    let server = RedisServer::start();
    let mut client = connect(&server, "client");
    let w = connect(&server, "w");
    let mut reader = w.reader();
    let mut con = raw(&server);
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    // The stream now exists without its group.
    enqueue_one(&mut client, b"x");
    assert!(reader.read(1, NO_WAIT).unwrap().is_empty());
    let got = reader.read(1, Duration::from_secs(1)).unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].entry.is_ok());
}
