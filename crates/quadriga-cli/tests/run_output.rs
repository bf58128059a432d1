//! `quadriga run`: output grouping, order, tags, line buffering, results,
//! memory bounds and temp files, against the real binary.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{Scratch, eventually, run, run_in};

#[test]
fn keep_order_prints_in_input_order_when_jobs_finish_out_of_order() {
    let args = ["sleep {}; echo {}", ":::", "0.6", "0.3", "0", "0.45"];
    let mut with_k = vec!["-j4", "-k"];
    with_k.extend(args);
    let d = run(&with_k);
    d.status(0);
    assert_eq!(d.lines(), ["0.6", "0.3", "0", "0.45"]);
    // Without -k: completion order.
    let mut without = vec!["-j4"];
    without.extend(args);
    let d = run(&without);
    assert_eq!(d.lines(), ["0", "0.3", "0.45", "0.6"]);
}

/// Splits into runs of one repeated byte: (byte, length).
fn runs(data: &[u8]) -> Vec<(u8, usize)> {
    let mut out: Vec<(u8, usize)> = Vec::new();
    for &b in data {
        match out.last_mut() {
            Some((c, n)) if *c == b => *n += 1,
            _ => out.push((b, 1)),
        }
    }
    out
}

const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCD";

#[test]
fn thirty_jobs_writing_3mb_bursts_never_interleave() {
    // Each job writes 3 MB of its own letter to stdout and 3 MB to stderr,
    // in pipe-sized pieces, ten jobs at a time.
    let job =
        "head -c 3000000 /dev/zero | tr '\\0' {}; head -c 3000000 /dev/zero | tr '\\0' {} >&2";
    let mut args = vec!["-j10", job, ":::"];
    let letters: Vec<String> = LETTERS.chars().map(String::from).collect();
    args.extend(letters.iter().map(String::as_str));
    let d = run(&args);
    d.status(0);
    for (name, data) in [("stdout", &d.stdout), ("stderr", &d.stderr)] {
        let r = runs(data);
        assert_eq!(r.len(), 30, "{name}: {} runs", r.len());
        assert!(r.iter().all(|&(_, n)| n == 3_000_000), "{name}: {r:?}");
        let mut seen: Vec<u8> = r.iter().map(|&(c, _)| c).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 30);
    }

    // Both streams to one file: each job's stdout then its stderr, together.
    let dir = Scratch::new();
    let file = File::create(dir.join("both")).unwrap();
    let mut cmd = common::bin();
    cmd.current_dir(dir.path())
        .arg("run")
        .args(&args)
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    let mut child = cmd.stdin(Stdio::null()).spawn().unwrap();
    assert_eq!(common::wait_deadline(&mut child, common::DEADLINE), Some(0));
    let data = std::fs::read(dir.join("both")).unwrap();
    let r = runs(&data);
    assert_eq!(r.len(), 30);
    assert!(r.iter().all(|&(_, n)| n == 6_000_000), "{r:?}");
}

/// Peak RSS (VmHWM, bytes) of a running process, polled until it exits.
fn peak_rss_until_exit(child: &mut std::process::Child) -> (u64, Option<i32>) {
    let pid = child.id();
    let mut peak = 0;
    let start = std::time::Instant::now();
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            peak = peak.max(kb * 1024);
        }
        if let Some(s) = child.try_wait().unwrap() {
            return (peak, s.code());
        }
        assert!(start.elapsed() < common::DEADLINE, "did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_gigabyte_of_output_does_not_take_a_gigabyte_of_memory() {
    // 20 jobs × 50 MB, all at once, grouped: the output goes through the
    // runner (to /dev/null here), spilling to temp files.
    let dir = Scratch::new();
    let seqs: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    let mut cmd = common::bin();
    cmd.current_dir(dir.path())
        .args([
            "run",
            "-j20",
            "--joblog",
            "log",
            "head -c 50000000 /dev/zero; : {}",
            ":::",
        ])
        .args(&seqs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let (peak, code) = peak_rss_until_exit(&mut child);
    assert_eq!(code, Some(0));
    assert!(peak > 0);
    assert!(peak < 200 << 20, "runner peak RSS {} MB", peak >> 20);
    // Every byte went through: the joblog's Receive column.
    let log = std::fs::read_to_string(dir.join("log")).unwrap();
    let received: Vec<&str> = log
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(5).unwrap())
        .collect();
    assert_eq!(received.len(), 20);
    assert!(received.iter().all(|r| *r == "50000000"), "{received:?}");
}

#[test]
fn spilled_output_leaves_no_temp_file_even_after_kill_9() {
    let dir = Scratch::new();
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut cmd = common::bin();
    cmd.current_dir(dir.path())
        .env("TMPDIR", &tmp)
        .args([
            "run",
            "-j3",
            "head -c 3000000 /dev/zero; sleep 2; : {}",
            ":::",
            "1",
            "2",
            "3",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    // Wait until the runner holds spill files (more than 1 MiB per job).
    let tmp_str = tmp.to_string_lossy().into_owned();
    let spilled = eventually(Duration::from_secs(10), || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter(|l| {
                        let l = l.to_string_lossy();
                        l.starts_with(&tmp_str) && l.ends_with("(deleted)")
                    })
                    .count()
                    >= 1
            })
            .unwrap_or(false)
    });
    assert!(spilled, "no spill file seen");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "named temp files"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temp files left"
    );
}

#[test]
fn tags_prefix_every_line() {
    let d = run(&["-k", "--tag", "echo o; echo e >&2", ":::", "a", "b"]);
    assert_eq!(d.out(), "a\to\nb\to\n");
    assert_eq!(d.err(), "a\te a\nb\te b\n");
    let d = run(&["-k", "--tag", "echo", "x", ":::", "a", ":::", "1", "2"]);
    assert_eq!(d.lines(), ["a 1\tx a 1", "a 2\tx a 2"]);
    let d = run(&[
        "-k",
        "--tagstring",
        "<{#}:{}>",
        "printf 'l1\\nl2'",
        ":::",
        "a",
    ]);
    assert_eq!(d.out(), "<1:a>\tl1\n<1:a>\tl2");
}

#[test]
fn line_buffer_prints_lines_as_they_come() {
    // Job 6 prints its first line long before job 3 prints its second.
    let args = ["echo {}1; sleep 0.{}; echo {}2", ":::", "3", "6"];
    let mut lb = vec!["-j2", "--line-buffer"];
    lb.extend(args);
    let d = run(&lb);
    let lines = d.lines();
    let pos = |s: &str| lines.iter().position(|l| l == s).unwrap();
    assert!(pos("61") < pos("32"), "{lines:?}");
    assert!(pos("31") < pos("32") && pos("61") < pos("62"));
    // Grouped (the default): each job's lines together.
    let mut grouped = vec!["-j2"];
    grouped.extend(args);
    assert_eq!(run(&grouped).lines(), ["31", "32", "61", "62"]);
    // -k --line-buffer: the first job streams, the second waits its turn.
    let d = run(&[
        "-j2",
        "-k",
        "--lb",
        "echo {}1; sleep 0.{}; echo {}2",
        ":::",
        "6",
        "3",
    ]);
    assert_eq!(d.lines(), ["61", "62", "31", "32"]);
    // An unfinished last line is printed at the end.
    let d = run(&["--lb", "printf 'a\\nb'", ":::", "x"]);
    assert_eq!(d.out(), "a\nb");
}

#[test]
fn ungrouped_output_goes_straight_through() {
    let d = run(&["-u", "-k", "echo o{}; echo e{} >&2", ":::", "1", "2"]);
    d.status(0);
    let mut out = d.lines();
    out.sort();
    assert_eq!(out, ["o1", "o2"]);
    assert!(d.err().contains("e1") && d.err().contains("e2"));
}

#[test]
fn results_are_saved_per_argument() {
    let dir = Scratch::new();
    let d = run_in(
        dir.path(),
        &[
            "--results",
            "res",
            "echo {}; echo err{} >&2",
            ":::",
            "a b",
            "x/y",
        ],
        None,
    );
    d.status(0);
    let base = dir.join("res/1/a b");
    assert_eq!(
        std::fs::read_to_string(base.join("stdout")).unwrap(),
        "a b\n"
    );
    assert_eq!(
        std::fs::read_to_string(base.join("stderr")).unwrap(),
        "erra b\n"
    );
    let seq = std::fs::read_to_string(base.join("seq")).unwrap();
    assert!(seq == "1\n" || seq == "2\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("res/1/x\\_y/stdout")).unwrap(),
        "x/y\n"
    );
    // Still printed too.
    assert_eq!(d.out().lines().count(), 2);
    // A name with replacement strings: files named by it.
    let d = run_in(
        dir.path(),
        &["--results", "out/{}.txt", "echo", ":::", "p", "q"],
        None,
    );
    d.status(0);
    assert_eq!(
        std::fs::read_to_string(dir.join("out/p.txt")).unwrap(),
        "p\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("out/q.txt.err")).unwrap(),
        ""
    );
    assert!(dir.join("out/q.txt.seq").exists());
}

#[test]
fn a_closed_stdout_stops_the_run() {
    let mut cmd = common::bin();
    let seqs: Vec<String> = (1..=200).map(|i| i.to_string()).collect();
    cmd.args(["run", "-k", "-j2", "seq 100000; sleep 1; : {}", ":::"])
        .args(&seqs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let start = std::time::Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "1\n");
    // The reader is gone now: like `| head -1`.
    let code = common::wait_deadline(&mut child, Duration::from_secs(30));
    assert_eq!(code, Some(141));
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn progress_options_are_quiet_off_a_terminal() {
    for opt in ["--bar", "--eta", "--progress"] {
        let d = run(&[opt, "-k", "echo", ":::", "a", "b"]);
        d.status(0);
        assert_eq!(d.lines(), ["a", "b"]);
        assert!(d.stderr.is_empty(), "{opt}: {:?}", d.err());
    }
}

#[test]
fn output_of_a_shell_command_with_many_small_writes_is_complete() {
    // 2000 lines from each of 8 jobs, in many small writes.
    let d = run(&[
        "-j4",
        "-k",
        "seq {} 2000 | tr -d x",
        ":::",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
        "8",
    ]);
    d.status(0);
    let total: usize = (1..=8).map(|i| 2000 - i + 1).sum();
    assert_eq!(d.lines().len(), total);
}

#[test]
fn stdout_and_stderr_of_one_job_are_kept_apart() {
    let d = run(&["echo out; echo err >&2; : {}", ":::", "x"]);
    assert_eq!(d.out(), "out\n");
    assert_eq!(d.err(), "err\n");
}

#[test]
fn a_background_writer_does_not_hold_the_job_open() {
    // The job exits while a background loop it started keeps writing to the
    // same stdout: the job ends with what was written so far (the runner does
    // not wait for the pipe's end), and the loop dies of SIGPIPE once the
    // runner closes the pipe.
    let dir = Scratch::new();
    let d = run_in(
        dir.path(),
        &[
            "sh -c 'echo $$ > writer; while :; do echo x; done' & sleep 0.3; echo done {}",
            ":::",
            "a",
        ],
        None,
    );
    d.status(0);
    assert!(d.out().contains("done a"));
    assert!(d.elapsed < Duration::from_secs(20), "{:?}", d.elapsed);
    let pid: u32 = std::fs::read_to_string(dir.join("writer"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || common::process_gone(pid)),
        "writer survived"
    );
}
