//! Workers that die or are stopped: a SIGKILLed worker loses no job (each
//! is in the joblog once, with its final exit code), and SIGTERM drains
//! (running jobs finish, no more are taken); and a `kill -9` of a worker
//! leaves none of its jobs running (its watchdog kills their groups).

mod common;
#[path = "../../quadriga/tests/common/redis.rs"]
mod redis_server;
mod remote_support;

use std::time::Duration;

use remote_support::{Remote, joblog};

#[test]
fn a_sigkilled_worker_loses_no_job() {
    let mut r = Remote::start();
    let a = r.worker(2, &["--lease", "1"]);
    r.worker(2, &["--lease", "1"]);
    let mut run = r
        .run_command(&[
            "-j",
            "8",
            "-k",
            "--joblog",
            "kill.log",
            "sleep 1.5; echo done {}; exit {}",
            ":::",
            "0",
            "1",
            "2",
            "3",
            "4",
            "5",
            "6",
            "7",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = common::collect(&mut run);
    // Kill one worker mid-sleep, once it runs jobs.
    let pid = r.pid(a);
    assert!(
        common::eventually(Duration::from_secs(20), || remote_support::children(pid)
            > 0),
        "the worker never ran a job"
    );
    r.signal(a, "-KILL");
    let code = common::wait_deadline(&mut run, Duration::from_secs(60));
    let out = String::from_utf8(out.join().unwrap()).unwrap();
    let err = String::from_utf8(err.join().unwrap()).unwrap();
    // Seven failed jobs (exit 1..7): the exit status counts them.
    assert_eq!(code, Some(7), "{err}");
    let want: String = (0..8).map(|i| format!("done {i}\n")).collect();
    assert_eq!(out, want, "{err}");
    let rows = joblog(&r.dir.join("kill.log"));
    let seqs: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(seqs, ["1", "2", "3", "4", "5", "6", "7", "8"], "{rows:?}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[6], i.to_string(), "{row:?}");
    }
    // The killed worker's jobs did run again elsewhere: the broker counted
    // the duplicate deliveries.
    let mut con = r.redis();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("quadriga:*:dups:*")
        .query(&mut con)
        .unwrap();
    let mut dups = 0u64;
    for k in keys {
        let n: Option<u64> = redis::cmd("GET").arg(&k).query(&mut con).unwrap();
        dups += n.unwrap_or(0);
    }
    assert!(dups >= 1, "no job was re-leased");
}

#[test]
fn sigterm_drains_the_worker() {
    let mut r = Remote::start();
    let w = r.worker(2, &[]);
    let mut run = r
        .run_command(&[
            "-j",
            "4",
            "-k",
            "sleep 1; echo finished {}",
            ":::",
            "a",
            "b",
            "c",
            "d",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = common::collect(&mut run);
    // Two jobs running, two waiting: stop the worker.
    let pid = r.pid(w);
    assert!(
        common::eventually(Duration::from_secs(20), || remote_support::children(pid)
            == 2),
        "the worker never ran two jobs"
    );
    r.signal(w, "-TERM");
    let code = r.wait(w, Duration::from_secs(20));
    assert_eq!(code, Some(0), "{}", r.log(w));
    assert!(r.log(w).contains("stopping"), "{}", r.log(w));
    // It finished the two it held and took no more; a new worker runs the
    // rest.
    assert!(r.log(w).contains("stopped after 2 jobs"), "{}", r.log(w));
    r.worker(2, &[]);
    let code = common::wait_deadline(&mut run, Duration::from_secs(30));
    let out = String::from_utf8(out.join().unwrap()).unwrap();
    let err = String::from_utf8(err.join().unwrap()).unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "finished a\nfinished b\nfinished c\nfinished d\n");
}

#[test]
fn kill_9_of_a_worker_leaves_no_job_behind() {
    let mut r = Remote::start();
    let w = r.worker(2, &[]);
    let pids = r.dir.join("pids");
    std::fs::create_dir(&pids).unwrap();
    let script = format!("sleep 60 & echo $$ > {}/{{}}; wait", pids.display());
    let mut run = r
        .run_command(&["-j", "2", &script, ":::", "a", "b"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut groups: Vec<u32> = Vec::new();
    assert!(
        common::eventually(Duration::from_secs(20), || {
            groups = ["a", "b"]
                .iter()
                .filter_map(|n| {
                    let s = std::fs::read_to_string(pids.join(n)).ok()?;
                    s.strip_suffix('\n')?.parse().ok()
                })
                .collect();
            groups.len() == 2 && groups.iter().all(|&g| common::group_members(g).len() >= 2)
        }),
        "both jobs (a shell and its sleep each) never ran"
    );
    r.signal(w, "-KILL");
    for &g in &groups {
        assert!(
            common::eventually(Duration::from_secs(5), || common::group_members(g)
                .is_empty()),
            "job group {g} outlived its worker: {:?}",
            common::group_members(g)
        );
    }
    let _ = run.kill();
    let _ = run.wait();
}
