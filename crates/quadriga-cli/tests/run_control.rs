//! `quadriga run`: the joblog, resuming, retries, timeouts, halting, signals,
//! start gates and `-j`, against the real binary.

mod common;

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use common::{Scratch, eventually, process_gone, run, run_in};

const HEADER: &str = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand";

fn log_rows(path: &std::path::Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER));
    let mut rows: Vec<Vec<String>> = lines
        .map(|l| l.splitn(9, '\t').map(str::to_owned).collect())
        .collect();
    rows.sort_by_key(|r| r[0].parse::<u64>().unwrap());
    rows
}

#[test]
fn joblog_format_field_by_field() {
    let dir = Scratch::new();
    let before = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let d = run_in(
        dir.path(),
        &[
            "--joblog",
            "log",
            "-j1",
            "sleep 0.{}; echo {}; exit {}",
            ":::",
            "0",
            "3",
        ],
        None,
    );
    d.status(1);
    let after = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let rows = log_rows(&dir.join("log"));
    assert_eq!(rows.len(), 2);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), 9, "{row:?}");
        // Seq
        assert_eq!(row[0], (i + 1).to_string());
        // Host: this machine
        assert_eq!(row[1], ":");
        // Starttime: epoch seconds, three decimals
        let (secs, frac) = row[2].split_once('.').unwrap();
        assert_eq!(frac.len(), 3, "{}", row[2]);
        assert!(secs.chars().all(|c| c.is_ascii_digit()));
        let start: f64 = row[2].parse().unwrap();
        assert!(start >= before - 1.0 && start <= after + 1.0, "{start}");
        // JobRuntime: seconds, three decimals, right-aligned in 10
        assert_eq!(row[3].len(), 10, "{:?}", row[3]);
        let runtime: f64 = row[3].trim_start().parse().unwrap();
        assert!(row[3].trim_start().split_once('.').unwrap().1.len() == 3);
        assert!((0.0..30.0).contains(&runtime));
        // Send, Receive (stdout bytes)
        assert_eq!(row[4], "0");
        assert_eq!(row[5], "2");
        // Signal
        assert_eq!(row[7], "0");
    }
    assert_eq!(rows[0][6], "0");
    assert_eq!(rows[1][6], "3");
    assert!(rows[1][3].trim_start().parse::<f64>().unwrap() >= 0.29);
    // Command, as it ran (values quoted for the shell).
    assert_eq!(rows[0][8], "sleep 0.0; echo 0; exit 0");
    let d = run_in(
        dir.path(),
        &["--joblog", "log2", "echo", ":::", "a b"],
        None,
    );
    d.status(0);
    assert_eq!(log_rows(&dir.join("log2"))[0][8], "echo 'a b'");
}

#[test]
fn joblog_records_signals_and_timeouts() {
    let dir = Scratch::new();
    // A job killed by a signal: Exitval 0, Signal 9.
    let d = run_in(
        dir.path(),
        &["--joblog", "sig", "-N0", "kill -9 $$", ":::", "x"],
        None,
    );
    d.status(1);
    let rows = log_rows(&dir.join("sig"));
    assert_eq!((rows[0][6].as_str(), rows[0][7].as_str()), ("0", "9"));
    // A job killed by its timeout: Exitval -1, Signal 15 (SIGTERM).
    let d = run_in(
        dir.path(),
        &["--joblog", "to", "--timeout", "0.3", "sleep", ":::", "10"],
        None,
    );
    d.status(1);
    let rows = log_rows(&dir.join("to"));
    assert_eq!((rows[0][6].as_str(), rows[0][7].as_str()), ("-1", "15"));
    assert!(d.elapsed < Duration::from_secs(5));
}

#[test]
fn joblog_plus_appends() {
    let dir = Scratch::new();
    run_in(dir.path(), &["--joblog", "log", "echo", ":::", "a"], None).status(0);
    run_in(dir.path(), &["--joblog", "+log", "echo", ":::", "b"], None).status(0);
    let text = std::fs::read_to_string(dir.join("log")).unwrap();
    assert_eq!(text.lines().filter(|l| *l == HEADER).count(), 1);
    assert_eq!(text.lines().count(), 3);
    // Without +, the log starts over.
    run_in(dir.path(), &["--joblog", "log", "echo", ":::", "c"], None).status(0);
    assert_eq!(
        std::fs::read_to_string(dir.join("log"))
            .unwrap()
            .lines()
            .count(),
        2
    );
}

#[test]
fn resume_skips_jobs_the_joblog_shows_as_run() {
    let dir = Scratch::new();
    let job = "touch ran-{}; echo {}";
    run_in(
        dir.path(),
        &["-k", "--joblog", "log", job, ":::", "a", "b"],
        None,
    )
    .status(0);
    std::fs::remove_file(dir.join("ran-a")).unwrap();
    std::fs::remove_file(dir.join("ran-b")).unwrap();
    let d = run_in(
        dir.path(),
        &[
            "-k", "--resume", "--joblog", "log", job, ":::", "a", "b", "c", "d",
        ],
        None,
    );
    d.status(0);
    assert_eq!(d.lines(), ["c", "d"]);
    assert!(!dir.join("ran-a").exists() && !dir.join("ran-b").exists());
    assert!(dir.join("ran-c").exists() && dir.join("ran-d").exists());
    let seqs: Vec<String> = log_rows(&dir.join("log"))
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(seqs, ["1", "2", "3", "4"]);
    // Nothing left to do.
    let d = run_in(
        dir.path(),
        &[
            "--resume", "--joblog", "log", job, ":::", "a", "b", "c", "d",
        ],
        None,
    );
    d.status(0);
    assert!(d.stdout.is_empty());
}

#[test]
fn resume_failed_and_retry_failed() {
    let dir = Scratch::new();
    // Jobs 2 and 4 fail the first time.
    run_in(
        dir.path(),
        &[
            "-k", "--joblog", "log", "exit {}", ":::", "0", "1", "0", "2",
        ],
        None,
    )
    .status(2);
    // --resume-failed runs the failed ones again (with the new command) and
    // the ones never run.
    let d = run_in(
        dir.path(),
        &[
            "-k",
            "--resume-failed",
            "--joblog",
            "log",
            "echo {#}",
            ":::",
            "0",
            "1",
            "0",
            "2",
            "5",
        ],
        None,
    );
    d.status(0);
    assert_eq!(d.lines(), ["2", "4", "5"]);
    // --retry-failed takes the commands from the joblog.
    let dir = Scratch::new();
    run_in(
        dir.path(),
        &[
            "--joblog",
            "log",
            "echo {} >> ran; exit {}",
            ":::",
            "0",
            "3",
        ],
        None,
    )
    .status(1);
    std::fs::remove_file(dir.join("ran")).unwrap();
    let d = run_in(
        dir.path(),
        &["--retry-failed", "--joblog", "log", "this is ignored"],
        None,
    );
    d.status(1);
    assert_eq!(std::fs::read_to_string(dir.join("ran")).unwrap(), "3\n");
}

#[test]
fn retries_run_a_failing_job_again() {
    let dir = Scratch::new();
    // Succeeds on the third attempt.
    let job = ": {}; echo x >> count; n=$(wc -l < count); echo try$n; [ $n -ge 3 ]";
    let d = run_in(
        dir.path(),
        &["--retries", "3", "--joblog", "log", job, ":::", "a"],
        None,
    );
    d.status(0);
    assert_eq!(d.lines(), ["try3"], "only the last attempt's output");
    assert_eq!(
        std::fs::read_to_string(dir.join("count"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    assert_eq!(log_rows(&dir.join("log")).len(), 1);
    // Never succeeds: tried exactly N times, then counted as failed.
    let dir = Scratch::new();
    let d = run_in(
        dir.path(),
        &[
            "--retries",
            "2",
            ": {}; echo x >> count; exit 1",
            ":::",
            "a",
        ],
        None,
    );
    d.status(1);
    assert_eq!(
        std::fs::read_to_string(dir.join("count"))
            .unwrap()
            .lines()
            .count(),
        2
    );
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let dir = Scratch::new();
    // The job starts a background grandchild and records its pid.
    let job = "sleep 60 & echo $! > grandchild-{}; echo $$ > child-{}; sleep 60";
    let d = run_in(
        dir.path(),
        &["--timeout", "0.5", job, ":::", "a", "b"],
        None,
    );
    d.status(2);
    assert!(d.elapsed < Duration::from_secs(10), "{:?}", d.elapsed);
    for name in ["grandchild-a", "grandchild-b", "child-a", "child-b"] {
        let pid: u32 = std::fs::read_to_string(dir.join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            eventually(Duration::from_secs(5), || process_gone(pid)),
            "{name} (pid {pid}) survived the timeout"
        );
    }
}

#[test]
fn timeout_as_a_percentage_of_the_median() {
    // Five quick jobs set the median; the slow one exceeds 300% of it.
    let d = run(&[
        "-j1",
        "-k",
        "--timeout",
        "300%",
        "sleep {}; echo {}",
        ":::",
        "0.1",
        "0.1",
        "0.1",
        "0.1",
        "5",
    ]);
    d.status(1);
    assert_eq!(d.lines(), ["0.1", "0.1", "0.1", "0.1"]);
    assert!(d.elapsed < Duration::from_secs(4), "{:?}", d.elapsed);
}

#[test]
fn halt_now_on_the_first_failure() {
    // Exit status: the failing job's own.
    let d = run(&[
        "-j1",
        "--halt",
        "now,fail=1",
        "echo {}; exit {}",
        ":::",
        "0",
        "3",
        "4",
    ]);
    d.status(3);
    assert_eq!(d.lines(), ["0", "3"]);
    // Running jobs are killed, not waited for.
    let d = run(&[
        "-j2",
        "--halt",
        "now,fail=1",
        "sleep {}; exit 5",
        ":::",
        "60",
        "0.2",
    ]);
    d.status(5);
    assert!(d.elapsed < Duration::from_secs(10), "{:?}", d.elapsed);
    // The old form 2 means now,fail=1.
    let d = run(&["-j1", "--halt", "2", "exit {}", ":::", "0", "7", "0"]);
    d.status(7);
}

#[test]
fn halt_soon_and_other_conditions() {
    // soon,fail=2: no new jobs after the second failure; status: the count.
    let d = run(&[
        "-j1",
        "--halt",
        "soon,fail=2",
        "echo {}; exit {}",
        ":::",
        "0",
        "3",
        "4",
        "5",
        "0",
    ]);
    d.status(2);
    assert_eq!(d.lines(), ["0", "3", "4"]);
    // soon waits for running jobs.
    let d = run(&[
        "-j2",
        "-k",
        "--halt",
        "soon,fail=1",
        "sleep {}; echo {}; exit 1",
        ":::",
        "0.5",
        "0",
    ]);
    assert_eq!(d.lines(), ["0.5", "0"]);
    // success=1: stop at the first success, status 0.
    let d = run(&[
        "-j1",
        "--halt",
        "now,success=1",
        "echo {}; exit {}",
        ":::",
        "3",
        "0",
        "4",
    ]);
    d.status(0);
    assert_eq!(d.lines(), ["3", "0"]);
    // done=N counts both.
    let d = run(&[
        "-j1",
        "--halt",
        "now,done=2",
        "echo {}; exit {}",
        ":::",
        "0",
        "1",
        "0",
    ]);
    d.status(1);
    assert_eq!(d.lines(), ["0", "1"]);
    // fail=N%: of all jobs; the status is the percentage failed.
    let d = run(&[
        "-j1",
        "--halt",
        "soon,fail=50%",
        "exit {}",
        ":::",
        "1",
        "0",
        "0",
        "0",
        "0",
        "0",
    ]);
    d.status(17);
}

#[test]
fn a_signal_stops_the_run_and_its_jobs() {
    let dir = Scratch::new();
    let mut cmd = common::bin();
    cmd.current_dir(dir.path())
        .args([
            "run",
            "-j3",
            "echo $$ > pid-{}; exec sleep 60",
            ":::",
            "a",
            "b",
            "c",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    assert!(eventually(Duration::from_secs(10), || {
        ["a", "b", "c"].iter().all(|n| {
            std::fs::read_to_string(dir.join(format!("pid-{n}"))).is_ok_and(|s| s.ends_with('\n'))
        })
    }));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = common::wait_deadline(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(130));
    for n in ["a", "b", "c"] {
        let pid: u32 = std::fs::read_to_string(dir.join(format!("pid-{n}")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            eventually(Duration::from_secs(5), || process_gone(pid)),
            "job {n} survived"
        );
    }
}

#[test]
fn delay_spaces_out_the_starts() {
    let d = run(&[
        "-j4", "--delay", "0.3", "-N0", "true", ":::", "1", "2", "3", "4",
    ]);
    d.status(0);
    assert!(d.elapsed >= Duration::from_millis(850), "{:?}", d.elapsed);
}

#[test]
fn memfree_and_load_gates_open_when_there_is_room() {
    run(&["--memfree", "1M", "-k", "echo", ":::", "a", "b"]).status(0);
    run(&["--load", "1000", "-k", "echo", ":::", "a", "b"]).status(0);
    let d = run(&["--load", "100%", "-k", "echo", ":::", "a"]);
    d.status(0);
}

#[test]
fn jobs_option_forms() {
    for j in ["1", "3", "50%", "+1", "-1", "0", "auto"] {
        let d = run(&["-j", j, "-k", "echo", ":::", "a", "b", "c"]);
        d.status(0);
        assert_eq!(d.lines(), ["a", "b", "c"], "-j {j}");
    }
    // -j 1: one at a time (three 0.2 s sleeps take at least 0.6 s).
    let d = run(&["-j1", "-N0", "sleep", "0.2", ":::", "1", "2", "3"]);
    assert!(d.elapsed >= Duration::from_millis(550));
}

#[test]
fn auto_climbs_for_jobs_that_wait_and_explains_why() {
    // 40 sleeps of 0.3 s: one per core would take 6 s on 2 cores.
    let seqs: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    let mut args = vec!["-v", "-N0", "sleep", "0.3", ":::"];
    args.extend(seqs.iter().map(String::as_str));
    let d = run(&args);
    d.status(0);
    let err = d.err();
    assert!(err.contains("start at one job per core"), "{err}");
    assert!(err.contains("waiting on I/O"), "{err}");
    assert!(err.contains("runner CPU"), "{err}");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let one_per_core = 40.0 * 0.3 / cores as f64;
    assert!(
        d.elapsed.as_secs_f64() < one_per_core / 2.0 + 1.0,
        "{:?} (one per core: {one_per_core} s)\n{err}",
        d.elapsed
    );
}

#[test]
fn auto_decisions_follow_the_measured_cpu_use() {
    // Busy loops. On an idle machine they hold -j at the core count; on a
    // shared one they may get less than a core each, and then climbing is
    // right. Either way each decision must match the measurement it quotes:
    // raise only with under 75% of the cores busy, hold as CPU-bound only
    // with at least that.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let seqs: Vec<String> = (1..=(4 * cores)).map(|i| i.to_string()).collect();
    let mut args = vec![
        "-v",
        "-N0",
        "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done",
        ":::",
    ];
    args.extend(seqs.iter().map(String::as_str));
    let d = run(&args);
    d.status(0);
    let err = d.err();
    let busy = |line: &str, marker: &str| -> f64 {
        let rest = line.split(marker).nth(1).unwrap();
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let mut decisions = 0;
    for line in err.lines() {
        if line.contains("waiting on I/O") {
            decisions += 1;
            let b = busy(line, "per job, ");
            assert!(
                b < 0.75 * cores as f64,
                "raised with {b} cores busy: {line}"
            );
        }
        if line.contains("CPU-bound") {
            decisions += 1;
            let b = busy(line, "jobs keep ");
            assert!(b >= 0.75 * cores as f64, "held with {b} cores busy: {line}");
        }
    }
    assert!(decisions >= 1, "no decision:\n{err}");
}
