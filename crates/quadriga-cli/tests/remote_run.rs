//! `quadriga run --broker` against the real binary, a private
//! `redis-server` and two `quadriga worker` processes: the same output,
//! exit codes and joblog as a local run; `--timeout`, `--halt`,
//! `--retries`, `--resume`; no worker; options that cannot work remotely.

mod common;
#[path = "../../quadriga/tests/common/redis.rs"]
mod redis_server;
mod remote_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use remote_support::{Remote, joblog};

/// The joblog fields that do not depend on where or when: Seq, Send,
/// Receive, Exitval, Signal, Command.
fn portable(rows: &[Vec<String>]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| [0, 4, 5, 6, 7, 8].iter().map(|&i| r[i].clone()).collect())
        .collect()
}

#[test]
fn broker_output_equals_local_output() {
    let mut r = Remote::start();
    r.worker(2, &[]);
    // The other chooses its concurrency by measurement.
    let auto = r.worker_auto();
    assert!(r.log(auto).contains("-j auto (from"), "{}", r.log(auto));
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "-k",
            "--tag",
            "--joblog",
            "JL",
            "echo out {} {#} {/} {//}; echo err {.} >&2; exit {#}",
            ":::",
            "a.txt",
            "b b.txt",
            "c",
        ],
        vec!["-k", "printf", "%s-%s\\n", ":::", "x", "y", ":::", "1", "2"],
        vec![
            "-k",
            "--tagstring",
            "[{}]",
            "sh",
            "-c",
            "echo $PARALLEL_SEQ; exit 3",
            ":::",
            "p",
            "q",
        ],
        vec!["-k", "/nonexistent/program", ":::", "1"],
    ];
    for args in cases {
        let remote_args: Vec<&str> = args
            .iter()
            .map(|&a| if a == "JL" { "remote.log" } else { a })
            .collect();
        let local_args: Vec<&str> = args
            .iter()
            .map(|&a| if a == "JL" { "local.log" } else { a })
            .collect();
        let remote = r.run(&remote_args);
        let local = r.local(&local_args);
        assert_eq!(remote.code, local.code, "{args:?}: {}", remote.err());
        assert_eq!(remote.out(), local.out(), "{args:?}");
        assert_eq!(remote.err(), local.err(), "{args:?}");
        assert!(!remote.out().is_empty() || !remote.err().is_empty());
    }
    let remote = joblog(&r.dir.join("remote.log"));
    let local = joblog(&r.dir.join("local.log"));
    assert_eq!(remote.len(), 3);
    assert_eq!(portable(&remote), portable(&local));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for row in &remote {
        // The worker's host in GNU's Host column (local runs say `:`).
        assert_eq!(row[1], host.trim(), "{row:?}");
    }
    assert!(local.iter().all(|row| row[1] == ":"));
}

#[test]
fn timeout_halt_retries_and_resume_work_remotely() {
    let mut r = Remote::start();
    r.worker(2, &[]);
    r.worker(2, &[]);

    // --timeout: the job is stopped (its worker kills its group).
    let start = Instant::now();
    let done = r.run(&[
        "--timeout",
        "1",
        "--joblog",
        "t.log",
        "sleep {}; echo slept",
        ":::",
        "30",
        "0",
    ]);
    assert_eq!(done.code, Some(1), "{}", done.err());
    assert_eq!(done.out(), "slept\n");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let rows = joblog(&r.dir.join("t.log"));
    assert_eq!(
        (rows[0][6].as_str(), rows[0][7].as_str()),
        ("-1", "15"),
        "{rows:?}"
    );

    // It counts from the job's start on its worker, not from when it was
    // queued: three 0.6 s jobs through a single worker slot, each
    // within its 1.5 s, though the last waits 1.2 s in the queue.
    let mut one = Remote::start();
    one.worker(1, &[]);
    let done = one.run(&[
        "-j",
        "3",
        "--timeout",
        "1.5",
        "-k",
        "sleep 0.6; echo {}",
        ":::",
        "a",
        "b",
        "c",
    ]);
    done.status(0);
    assert_eq!(done.out(), "a\nb\nc\n");
    drop(one);

    // --halt now,fail=1: the first failure cancels the sleeps.
    let start = Instant::now();
    let done = r.run(&[
        "-j",
        "4",
        "--halt",
        "now,fail=1",
        "sleep {}; exit 1",
        ":::",
        "0",
        "30",
        "30",
        "30",
    ]);
    assert_eq!(done.code, Some(1), "{}", done.err());
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );

    // --retries: a job that fails once succeeds the second time.
    let done = r.run(&[
        "--retries",
        "3",
        "if [ -e once.{} ]; then echo ok {}; else touch once.{}; exit 1; fi",
        ":::",
        "a",
        "b",
    ]);
    done.status(0);
    let mut lines = done.lines();
    lines.sort();
    assert_eq!(lines, ["ok a", "ok b"]);

    // --resume: what the joblog has done is skipped.
    let done = r.run(&["-k", "--joblog", "res.log", "echo {}", ":::", "1", "2"]);
    done.status(0);
    let done = r.run(&[
        "-k", "--resume", "--joblog", "res.log", "echo {}", ":::", "1", "2", "3",
    ]);
    done.status(0);
    assert_eq!(done.out(), "3\n");
}

#[test]
fn without_a_worker_the_run_says_so_and_waits_for_one() {
    let mut r = Remote::start();
    let mut child = r
        .run_command(&["echo", "hello", ":::", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("no message");
    assert!(line.contains("no live worker"), "{line}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // It keeps waiting; a worker that comes later runs the job.
    r.worker(1, &[]);
    let code = common::wait_deadline(&mut child, Duration::from_secs(30));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(out, "hello 1\n");
}

#[test]
fn options_that_need_a_local_job_are_refused() {
    let r = Remote::start();
    let done = r.run(&["--pipe", "cat"]);
    done.status(255);
    assert!(
        done.err().contains("cannot be used with --broker"),
        "{}",
        done.err()
    );
    for option in [
        &["--memfree", "1G"][..],
        &["--files"],
        &["--wd", "..."],
        &["--nice", "5"],
        &["--limit", "true"],
    ] {
        let args: Vec<&str> = option.iter().copied().chain(["echo", ":::", "1"]).collect();
        let done = r.run(&args);
        done.status(255);
        assert!(
            done.err().contains("cannot be used with --broker"),
            "{option:?}: {}",
            done.err()
        );
    }
}
