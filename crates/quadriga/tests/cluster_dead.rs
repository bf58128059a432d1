//! Dead letters acted on, and failures recorded, against a real
//! `redis-server` (one per test): a requeued dead letter runs again and a
//! `ClusterPool` handle still waiting gets the re-run's result (the `lost`
//! outcome is cleared); requeue and discard are safe to repeat; a foreign
//! dead letter is refused; a worker records a panic's message, location and
//! backtrace in the failures stream.

#[path = "common/cluster_worker.rs"]
mod cluster_worker;
#[path = "common/redis.rs"]
mod redis_server;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster_worker::InProcess;
use quadriga::TaskErrorKind;
use quadriga::cluster::{
    Broker, BrokerConfig, ClusterPool, Delivery, ErrorKind, Outcome, Requeued, TaskId, Worker,
    read_dead_letters, read_failures,
};
use redis_server::RedisServer;

#[quadriga::task]
fn double(x: u64) -> u64 {
    x * 2
}

#[quadriga::task]
fn explode(x: u64) -> u64 {
    panic!("boom on {x}")
}

fn config(url: &str, consumer: &str) -> BrokerConfig {
    BrokerConfig::new(url)
        .queue("q")
        .consumer(consumer)
        .lease(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(2))
        .io_timeout(Duration::from_secs(2))
}

/// Takes one entry off the queue as consumer `thief` (bounded in time).
fn steal(thief: &mut Broker) -> Delivery {
    let mut reader = thief.reader();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(d) = reader.read(1, Duration::from_millis(100)).unwrap().pop() {
            return d;
        }
    }
    panic!("no entry to steal within 10 s");
}

/// A loopback TCP proxy to the broker that can hold every byte in both
/// directions (`freeze`) until `thaw`: a client behind it sees nothing of
/// what happens meanwhile, as if its network paused.
struct Proxy {
    port: u16,
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(to: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (Arc::clone(&frozen), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let server = TcpStream::connect(("127.0.0.1", to)).unwrap();
                        for (a, b) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            let (f, s) = (Arc::clone(&f), Arc::clone(&s));
                            std::thread::spawn(move || pump(a, b, &f, &s));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { port, frozen, stop }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thaw();
    }
}

/// Copies `from` to `to`, holding what it read while `frozen`.
fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool, stop: &AtomicBool) {
    from.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => break,
        };
        while frozen.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

#[test]
fn a_requeued_dead_letter_runs_again_and_a_waiting_handle_gets_its_result() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port());
    let pool = ClusterPool::builder(proxy.url())
        .queue("q")
        .build()
        .unwrap();
    let handle = pool.submit(double, 21);
    let mut thief = Broker::connect(config(&server.url(), "thief")).unwrap();
    let d = steal(&mut thief);

    // The client sees nothing while the entry dies and comes back.
    proxy.freeze();
    thief.dead_letter(&d, "a test's dead letter").unwrap();
    let cfg = config(&server.url(), "reader");
    let dead = read_dead_letters(&cfg, [0], 10).unwrap();
    let [letter] = &dead[..] else {
        panic!("one dead letter: {dead:?}")
    };
    assert!(
        letter.task.as_deref().unwrap().ends_with("double"),
        "{letter:?}"
    );
    assert_eq!((letter.tasks, letter.entry.as_str()), (1, d.id.as_str()));
    assert_eq!(letter.reason, "a test's dead letter");
    let id: TaskId = letter.first_task_id.as_deref().unwrap().parse().unwrap();
    match thief.fetch(id).unwrap() {
        Some(Outcome::Error(e)) => assert_eq!(e.kind(), TaskErrorKind::Lost),
        other => panic!("dead-lettering records `lost`: {other:?}"),
    }

    let Requeued::Requeued { entry, cleared } = thief.requeue_dead(0, &letter.id).unwrap() else {
        panic!("the dead letter is requeued")
    };
    assert_ne!(entry, d.id, "a new stream id");
    assert_eq!(cleared, 1);
    assert_eq!(
        thief.fetch(id).unwrap(),
        None,
        "pending again: `lost` is gone"
    );
    // A repeat changes nothing: one entry waits, no dead letter is left.
    assert_eq!(thief.requeue_dead(0, &letter.id).unwrap(), Requeued::Gone);
    let status = thief.status().unwrap();
    assert_eq!(
        (status.totals.waiting, status.totals.dead_letters),
        (1, 0),
        "{status:#?}"
    );

    proxy.thaw();
    let worker = InProcess::run(
        Worker::builder(server.url())
            .queue("q")
            .concurrency(1)
            .build()
            .unwrap(),
    );
    assert!(
        handle.wait_timeout(Duration::from_secs(30)),
        "the handle resolves after the re-run"
    );
    assert_eq!(handle.join().unwrap(), 42);
    assert!(
        matches!(thief.fetch(id).unwrap(), Some(Outcome::Output(_))),
        "the re-run's result is recorded"
    );
    drop(pool);
    worker.stop();
}

#[test]
fn discard_is_for_good_and_a_foreign_dead_letter_cannot_be_requeued() {
    let server = RedisServer::start();
    let pool = ClusterPool::builder(server.url())
        .queue("q")
        .build()
        .unwrap();
    let handle = pool.submit(double, 1);
    let mut thief = Broker::connect(config(&server.url(), "thief")).unwrap();
    let d = steal(&mut thief);
    thief.dead_letter(&d, "dead").unwrap();
    let err = handle.join().unwrap_err();
    assert_eq!(err.kind(), TaskErrorKind::Lost, "{err}");
    let cfg = config(&server.url(), "reader");
    let letter = read_dead_letters(&cfg, [0], 10).unwrap().remove(0);
    let id: TaskId = letter.first_task_id.as_deref().unwrap().parse().unwrap();

    assert!(thief.discard_dead(0, &letter.id).unwrap());
    assert!(!thief.discard_dead(0, &letter.id).unwrap(), "a repeat");
    assert_eq!(thief.requeue_dead(0, &letter.id).unwrap(), Requeued::Gone);
    assert!(read_dead_letters(&cfg, [0], 10).unwrap().is_empty());
    assert!(
        matches!(thief.fetch(id).unwrap(), Some(Outcome::Error(e)) if e.kind() == TaskErrorKind::Lost),
        "a discarded task stays lost"
    );

    // Bytes that are not a quadriga entry die as they are, and stay dead.
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(thief.keys().stream(0))
        .arg("*")
        .arg("not")
        .arg("ours")
        .query(&mut con)
        .unwrap();
    let d = steal(&mut thief);
    assert!(d.entry.is_err());
    thief.dead_letter(&d, "foreign").unwrap();
    let letter = read_dead_letters(&cfg, [0], 10).unwrap().remove(0);
    assert_eq!((letter.task.as_deref(), letter.tasks), (None, 0));
    let err = thief.requeue_dead(0, &letter.id).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec, "{err}");
    assert_eq!(read_dead_letters(&cfg, [0], 10).unwrap().len(), 1);
    let err = thief.requeue_dead(3, &letter.id).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Config,
        "a shard the queue lacks: {err}"
    );
}

#[test]
fn a_worker_records_a_panic_with_its_message_location_and_backtrace() {
    let server = RedisServer::start();
    let worker = Worker::builder(server.url())
        .queue("q")
        .concurrency(1)
        .name("w-fail")
        .build()
        .unwrap();
    let worker = InProcess::run(worker);
    let pool = ClusterPool::builder(server.url())
        .queue("q")
        .build()
        .unwrap();
    assert_eq!(pool.submit(double, 4).join().unwrap(), 8);
    let err = pool.submit(explode, 7).join().unwrap_err();
    assert_eq!(err.kind(), TaskErrorKind::Panicked, "{err}");

    // Recorded after the completion: look again for a while.
    let cfg = config(&server.url(), "reader");
    let deadline = Instant::now() + Duration::from_secs(10);
    let failures = loop {
        let f = read_failures(&cfg, 10).unwrap();
        if !f.is_empty() || Instant::now() > deadline {
            break f;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let [f] = &failures[..] else {
        panic!("one failure (the success records none): {failures:?}")
    };
    assert_eq!(f.worker, "w-fail");
    assert!(f.task.ends_with("explode"), "{f:?}");
    assert_eq!(f.kind, "panicked");
    assert_eq!(f.message, err.message());
    assert!(f.message.contains("boom on 7"), "{f:?}");
    let at = f.location.as_deref().unwrap();
    assert!(at.contains("cluster_dead.rs:"), "{at}");
    assert_eq!(f.backtrace.as_deref(), err.backtrace());
    assert!(f.task_id.parse::<TaskId>().is_ok(), "{f:?}");
    assert!(f.at_ms > 0);
    drop(pool);
    worker.stop();
}
