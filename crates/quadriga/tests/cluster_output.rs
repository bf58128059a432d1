//! Per-task output streams and presence records against a real
//! `redis-server`: chunks in order, back-pressure at `MAX_UNREAD`, repeat-
//! safe appends, a superseded attempt refused, a time to live on every key;
//! presence announced, read, expired and withdrawn; a worker's task sees
//! its id and delivery (`current_task`); an entry refused by `admit` is
//! dead-lettered and never runs.

#[path = "common/redis.rs"]
mod redis_server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quadriga::cluster::{
    Appended, Broker, BrokerConfig, ClusterPool, MAX_CHUNK, MAX_UNREAD, OutputStream, Worker,
};
use redis_server::RedisServer;

fn broker(server: &RedisServer, queue: &str) -> Broker {
    Broker::connect(BrokerConfig::new(server.url()).queue(queue)).unwrap()
}

#[test]
fn output_chunks_flow_with_back_pressure() {
    let server = RedisServer::start();
    let mut writer = broker(&server, "out");
    let mut reader = broker(&server, "out");
    let entry = reader.entry("t", vec![vec![0]], None);
    let id = entry.ids().next().unwrap();
    let ttl = Duration::from_secs(60);
    for n in 1..=MAX_UNREAD as u64 {
        let which = if n.is_multiple_of(2) {
            OutputStream::Stderr
        } else {
            OutputStream::Stdout
        };
        let got = writer
            .append_output(id, 1, n, which, format!("chunk {n}").as_bytes(), ttl)
            .unwrap();
        assert_eq!(got, Appended::Added);
    }
    // A repeat of the last append is recognised as done.
    let again = writer
        .append_output(id, 1, MAX_UNREAD as u64, OutputStream::Stderr, b"x", ttl)
        .unwrap();
    assert_eq!(again, Appended::Added);
    // Full: the writer must wait for the reader.
    let next = MAX_UNREAD as u64 + 1;
    assert_eq!(
        writer
            .append_output(id, 1, next, OutputStream::Stdout, b"late", ttl)
            .unwrap(),
        Appended::Full
    );
    let read = reader.read_output(&[(id, "0-0".into())], 10).unwrap();
    assert_eq!(read.len(), 10);
    assert!(read.iter().all(|(t, _)| *t == id));
    for (i, (_, c)) in read.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!((c.attempt, c.n), (1, n));
        assert_eq!(c.data, format!("chunk {n}").as_bytes());
        let which = if n.is_multiple_of(2) {
            OutputStream::Stderr
        } else {
            OutputStream::Stdout
        };
        assert_eq!(c.stream, which);
    }
    // The next read deletes what the last one returned: room again.
    let more = reader.read_output(&[(id, "1-10".into())], 100).unwrap();
    assert_eq!(more.len(), MAX_UNREAD - 10);
    assert_eq!(
        writer
            .append_output(id, 1, next, OutputStream::Stdout, b"late", ttl)
            .unwrap(),
        Appended::Added
    );
    // A newer attempt supersedes the old one's later chunks.
    assert_eq!(
        writer
            .append_output(id, 2, 1, OutputStream::Stdout, b"rerun", ttl)
            .unwrap(),
        Appended::Added
    );
    assert_eq!(
        writer
            .append_output(id, 1, next + 1, OutputStream::Stdout, b"stale", ttl)
            .unwrap(),
        Appended::Superseded
    );
    let last = reader
        .read_output(&[(id, format!("1-{}", MAX_UNREAD))], 100)
        .unwrap();
    let ids: Vec<(u64, u64)> = last.iter().map(|(_, c)| (c.attempt, c.n)).collect();
    assert_eq!(ids, [(1, next), (2, 1)]);
    // Every key has a time to live; deleting ends it.
    let key = reader.output_key(id);
    assert!(key.contains("{out.0}"), "{key}");
    let mut con = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut con).unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "{pttl}");
    reader.delete_output(id).unwrap();
    let exists: bool = redis::cmd("EXISTS").arg(&key).query(&mut con).unwrap();
    assert!(!exists);
    // Oversize chunks are refused before anything is sent.
    assert!(
        writer
            .append_output(id, 3, 1, OutputStream::Stdout, &vec![0; MAX_CHUNK + 1], ttl)
            .is_err()
    );
}

#[test]
fn presence_is_announced_read_expired_and_withdrawn() {
    let server = RedisServer::start();
    let mut client = broker(&server, "p");
    let mut other = broker(&server, "p");
    let me = client.client_id();
    assert_eq!(other.presence(me).unwrap(), None);
    client.announce(b"here", Duration::from_secs(30)).unwrap();
    assert_eq!(other.presence(me).unwrap().as_deref(), Some(&b"here"[..]));
    assert_eq!(other.presence(other.client_id()).unwrap(), None);
    client.withdraw().unwrap();
    assert_eq!(other.presence(me).unwrap(), None);
    client
        .announce(b"brief", Duration::from_millis(150))
        .unwrap();
    assert!(other.presence(me).unwrap().is_some());
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(other.presence(me).unwrap(), None);
}

static SEEN_DELIVERY: AtomicU64 = AtomicU64::new(0);
static SEEN_SEQ: AtomicU64 = AtomicU64::new(u64::MAX);

#[quadriga::task]
fn whoami(x: u64) -> u64 {
    if let Some(t) = quadriga::cluster::current_task() {
        SEEN_DELIVERY.store(t.delivery, Ordering::SeqCst);
        SEEN_SEQ.store(t.id.seq, Ordering::SeqCst);
    }
    x + 1
}

#[quadriga::task]
fn forbidden(x: u64) -> u64 {
    x
}

#[test]
fn tasks_see_themselves_and_admit_refuses_entries() {
    let server = RedisServer::start();
    let worker = Worker::builder(server.url())
        .queue("who")
        .concurrency(1)
        .admit(|entry| {
            if entry.task.ends_with("forbidden") {
                Err("forbidden by policy".into())
            } else {
                Ok(())
            }
        })
        .build()
        .unwrap();
    let stop = worker.stopper();
    let thread = std::thread::spawn(move || worker.run().unwrap());
    let pool = ClusterPool::builder(server.url())
        .queue("who")
        .build()
        .unwrap();
    assert_eq!(pool.submit(whoami, 41).join().unwrap(), 42);
    assert_eq!(SEEN_DELIVERY.load(Ordering::SeqCst), 1);
    assert_ne!(SEEN_SEQ.load(Ordering::SeqCst), u64::MAX);
    assert!(quadriga::cluster::current_task().is_none());
    let err = pool.submit(forbidden, 1).join().unwrap_err();
    assert!(err.to_string().contains("forbidden by policy"), "{err}");
    let mut b = broker(&server, "who");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dead = b.dead_letters(0, 10).unwrap();
        if let Some(d) = dead.first() {
            assert_eq!(d.reason, "forbidden by policy");
            break;
        }
        assert!(Instant::now() < deadline, "no dead letter");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.stop();
    let report = thread.join().unwrap();
    assert_eq!((report.completed, report.dead_lettered), (1, 1));
}

static RUNNING: AtomicU64 = AtomicU64::new(0);
static MOST: AtomicU64 = AtomicU64::new(0);

#[quadriga::task]
fn hold(ms: u64) -> u64 {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MOST.fetch_max(now, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(ms));
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    ms
}

#[test]
fn a_live_limit_caps_the_entries_running_at_once() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    let server = RedisServer::start();
    let limit = Arc::new(AtomicUsize::new(1));
    let worker = Worker::builder(server.url())
        .queue("limit")
        .concurrency(4)
        .limit(Arc::clone(&limit))
        .build()
        .unwrap();
    let stop = worker.stopper();
    let thread = std::thread::spawn(move || worker.run().unwrap());
    let pool = ClusterPool::builder(server.url())
        .queue("limit")
        .build()
        .unwrap();
    let handles: Vec<_> = (0..4).map(|_| pool.submit(hold, 100)).collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(MOST.swap(0, Ordering::SeqCst), 1);
    // Raised: up to three at once (never more than the threads, four).
    limit.store(3, Ordering::SeqCst);
    let handles: Vec<_> = (0..6).map(|_| pool.submit(hold, 300)).collect();
    for h in handles {
        h.join().unwrap();
    }
    let most = MOST.load(Ordering::SeqCst);
    assert!((2..=3).contains(&most), "{most} at once");
    stop.stop();
    thread.join().unwrap();
}
