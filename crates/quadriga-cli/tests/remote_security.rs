//! Nobody else runs commands on the workers: a job signed with another key,
//! an unsigned job and a replayed one (its entry written again after its
//! run ended) never run; each is dead-lettered with the reason and one log
//! line. A marker file proves what ran.

mod common;
#[path = "../../quadriga/tests/common/redis.rs"]
mod redis_server;
mod remote_support;

use std::time::{Duration, Instant};

use quadriga::cluster::{Broker, BrokerConfig};
use redis::Value;
use remote_support::{Remote, write_key};

fn dead_letters(r: &Remote) -> Vec<String> {
    let mut b = Broker::connect(BrokerConfig::new(r.url()).queue("shell")).unwrap();
    b.dead_letters(0, 100)
        .unwrap()
        .into_iter()
        .map(|d| d.reason)
        .collect()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    assert!(
        common::eventually(Duration::from_secs(20), &mut cond),
        "{what}"
    );
}

#[test]
fn a_job_signed_with_another_key_never_runs() {
    let mut r = Remote::start();
    let w = r.worker(1, &[]);
    let other = write_key(&r.dir, "other", "another-key-9876543210");
    let marker = r.dir.join("marker");
    let mut cmd = common::bin();
    cmd.current_dir(r.dir.path())
        .args(["run", "--broker", &r.url(), "--key-file"])
        .arg(&other)
        .args(["touch marker", ":::", "1"]);
    let done = common::spawn_and_wait(cmd, None);
    // The job could not run: GNU's status for that, and the reason.
    assert_eq!(done.code, Some(1), "{}", done.err());
    assert!(done.err().contains("did not run"), "{}", done.err());
    assert!(
        done.err().contains("not signed with this worker's key"),
        "{}",
        done.err()
    );
    assert!(!marker.exists());
    assert!(r.log(w).contains("refused entry"), "{}", r.log(w));
    let reasons = dead_letters(&r);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("not signed"), "{reasons:?}");
}

#[test]
fn an_unsigned_job_never_runs() {
    let mut r = Remote::start();
    let w = r.worker(1, &[]);
    // Someone with write access enqueues a well-formed entry of the shell
    // task, without a valid tag.
    let mut b = Broker::connect(BrokerConfig::new(r.url()).queue("shell")).unwrap();
    let input = postcard::to_allocvec(&b"touch marker".to_vec()).unwrap();
    let entry = b.entry("quadriga.shell", vec![input], None);
    b.enqueue(&entry).unwrap();
    wait_for("dead-lettered", || !dead_letters(&r).is_empty());
    assert!(!r.dir.join("marker").exists());
    assert!(r.log(w).contains("refused entry"), "{}", r.log(w));
}

#[test]
fn a_replayed_job_never_runs() {
    let mut r = Remote::start();
    let w = r.worker(1, &[]);
    let mut run = r
        .run_command(&["echo ran >> marker; sleep 1", ":::", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = common::collect(&mut run);
    // The attacker copies the entry while it is in the stream.
    let mut con = r.redis();
    let deadline = Instant::now() + Duration::from_secs(20);
    let fields = loop {
        let v: Value = redis::cmd("XRANGE")
            .arg("quadriga:{shell.0}:stream")
            .arg("-")
            .arg("+")
            .query(&mut con)
            .unwrap();
        if let Value::Array(entries) = v
            && let Some(Value::Array(e)) = entries.into_iter().next()
            && let Some(Value::Array(fields)) = e.into_iter().nth(1)
        {
            break fields;
        }
        assert!(Instant::now() < deadline, "no entry to copy");
        std::thread::sleep(Duration::from_millis(5));
    };
    let code = common::wait_deadline(&mut run, Duration::from_secs(30));
    let _ = out.join();
    let err = String::from_utf8(err.join().unwrap()).unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(r.dir.join("marker")).unwrap(),
        "ran\n"
    );
    // The run is over: write the very same entry again.
    let mut xadd = redis::cmd("XADD");
    xadd.arg("quadriga:{shell.0}:stream").arg("*");
    for f in &fields {
        let Value::BulkString(bytes) = f else {
            panic!("a field is not a string: {f:?}");
        };
        xadd.arg(bytes.as_slice());
    }
    let _: Value = xadd.query(&mut con).unwrap();
    wait_for("the replay dead-lettered", || !dead_letters(&r).is_empty());
    let reasons = dead_letters(&r);
    assert!(reasons[0].contains("replay"), "{reasons:?}");
    assert_eq!(
        std::fs::read_to_string(r.dir.join("marker")).unwrap(),
        "ran\n"
    );
    assert!(r.log(w).contains("refused entry"), "{}", r.log(w));
}

#[test]
fn the_worker_refuses_a_key_file_others_can_read() {
    let r = Remote::start();
    let key = r.dir.join("open-key");
    std::fs::write(&key, "0123456789abcdef0123").unwrap();
    let mut cmd = common::bin();
    cmd.args(["worker", "--broker", &r.url(), "--key-file"])
        .arg(&key);
    let done = common::spawn_and_wait(cmd, None);
    done.status(255);
    assert!(done.err().contains("group or others"), "{}", done.err());
}
