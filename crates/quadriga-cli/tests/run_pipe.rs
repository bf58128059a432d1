//! `quadriga run --pipe` and `--pipepart`: streams cut into blocks of whole
//! records, each on a job's stdin; and the watchdog: no job outlives a
//! killed runner. Against the real binary. Where GNU parallel's answers are
//! quoted, they were recorded from GNU parallel 20221122; with `parallel`
//! installed, the tests also ask it again.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Scratch, eventually, run_in, run_stdin};

/// A small generator (no dependency): xorshift.
struct Rng(u64);

impl Rng {
    fn below(&mut self, m: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % m
    }
}

/// Records `<i:xxx>\n` of random lengths (some longer than the block).
fn records(rng: &mut Rng, n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        let len = if rng.below(40) == 0 {
            3000
        } else {
            rng.below(80)
        };
        v.extend_from_slice(format!("<{i}:").as_bytes());
        v.extend(std::iter::repeat_n(b'x', len as usize));
        v.extend_from_slice(b">\n");
    }
    v
}

/// GNU parallel, if installed.
fn gnu() -> Option<Command> {
    let ok = Command::new("parallel")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| {
        let mut c = Command::new("parallel");
        c.arg("--will-cite");
        c
    })
}

fn gnu_output(args: &[&str], stdin: &[u8]) -> Option<String> {
    let mut cmd = gnu()?;
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().ok()?;
    let mut input = child.stdin.take()?;
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().ok()?;
    let _ = feeder.join();
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Blocks, marked off by a line `=====` after each.
const MARKED: &str = "cat; printf '=====\\n'";

fn blocks(out: &str) -> Vec<String> {
    out.split("=====\n")
        .filter(|b| !b.is_empty())
        .map(str::to_owned)
        .collect()
}

fn seq(n: u32) -> Vec<u8> {
    (1..=n)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn blocks_never_split_a_record() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for (round, extra) in [
        &["--recend", ">\\n", "--recstart", "<"][..],
        &["--recend", ">\\n"][..],
        &["--regexp", "--recend", ">\\n", "--recstart", "<[0-9]+:"][..],
    ]
    .iter()
    .enumerate()
    {
        let input = records(&mut rng, 400);
        let block = (200 + rng.below(3000)).to_string();
        let mut args = vec!["--pipe", "-k", "-j3", "--block", &block];
        args.extend_from_slice(extra);
        args.push(MARKED);
        let done = run_stdin(&args, &input);
        done.status(0);
        let b = blocks(&done.out());
        assert!(b.len() > 3, "round {round}: {} blocks", b.len());
        for blk in &b {
            assert!(
                blk.starts_with('<') && blk.ends_with(">\n"),
                "round {round}: a block cuts a record: {blk:?}"
            );
        }
        // In order, nothing lost, nothing twice.
        assert_eq!(b.concat().as_bytes(), &input[..], "round {round}");
    }
}

#[test]
fn per_block_counts_add_up_to_the_whole() {
    let input = seq(200_000);
    for jobs in ["-j2", "-jauto"] {
        let done = run_stdin(&["--pipe", jobs, "--block", "64k", "wc", "-l"], &input);
        done.status(0);
        let counts: Vec<u64> = done
            .lines()
            .iter()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        assert!(counts.len() > 10, "{jobs}: {} blocks", counts.len());
        assert_eq!(counts.iter().sum::<u64>(), 200_000, "{jobs}");
    }
}

#[test]
fn keep_order_keeps_block_order_whatever_finishes_first() {
    // Later blocks finish first; -k prints them in input order.
    let done = run_stdin(
        &[
            "--pipe",
            "-k",
            "-j4",
            "-N1",
            "read x; sleep 0.$((9 - x)); echo $x",
        ],
        &seq(8),
    );
    done.status(0);
    assert_eq!(
        done.lines(),
        (1..=8).map(|i| i.to_string()).collect::<Vec<_>>()
    );
}

/// GNU parallel's answers for the same commands (recorded; asked again when
/// installed): `-N`, `--header`, `--recstart`, `--recend`, `--block`,
/// `--regexp`.
#[test]
fn same_blocks_as_gnu_parallel() {
    let cases: &[(&[&str], &[u8], &str)] = &[
        (
            &["-N3"],
            b"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
            "X|1|2|3|X|4|5|6|X|7|8|9|X|10|",
        ),
        (
            &["--header", "1", "-N2"],
            b"1\n2\n3\n4\n5\n",
            "X|1|2|3|X|1|4|5|",
        ),
        (
            &["--header", "#.*\\n", "-N2"],
            b"#h\n1\n2\n3\n",
            "X|#h|1|2|X|#h|3|",
        ),
        (
            &["--recstart", "a", "-N1"],
            b"a1\nb\na2\nc\na3\n",
            "X|a1|b|X|a2|c|X|a3|",
        ),
        (
            &["--regexp", "--recstart", "a[0-9]", "--recend", "\\n", "-N1"],
            b"a1\nb\na2\nc\na3\n",
            "X|a1|b|X|a2|c|X|a3|",
        ),
        (
            &["--block", "3"],
            b"1\n2\n3\n4\n5\n",
            "X|1|X|2|X|3|X|4|X|5|",
        ),
    ];
    for (opts, input, want) in cases {
        let mut args = vec!["--pipe", "-k"];
        args.extend_from_slice(opts);
        args.push("echo X; cat");
        let done = run_stdin(&args, input);
        done.status(0);
        let got = done.out().replace('\n', "|");
        assert_eq!(&got, want, "{opts:?}");
        if let Some(g) = gnu_output(&args, input) {
            assert_eq!(g.replace('\n', "|"), got, "GNU parallel differs: {opts:?}");
        }
    }
    // --recend without a newline: GNU's answer, then ours.
    let done = run_stdin(
        &["--pipe", "-k", "--recend", ",", "-N1", "echo X; cat; echo"],
        b"a,b,c",
    );
    assert_eq!(done.out().replace('\n', "|"), "X|a,|X|b,|X|c|");
}

#[test]
fn empty_input_runs_nothing() {
    let done = run_stdin(&["--pipe", "echo ran"], b"");
    done.status(0);
    assert_eq!(done.out(), "");
}

#[test]
fn a_failing_block_counts_and_halt_stops_the_stream() {
    // Block 5 fails: one failed job, the exit status says so.
    let done = run_stdin(&["--pipe", "-N1", "-j2", "read x; [ $x != 5 ]"], &seq(20));
    done.status(1);
    // --halt now,fail=1: the run stops at the first failure, far from the end.
    let done = run_stdin(
        &[
            "--pipe",
            "-N1",
            "-j1",
            "--halt",
            "now,fail=1",
            "read x; echo $x; [ $x != 3 ]",
        ],
        &seq(1000),
    );
    done.status(1);
    assert_eq!(done.lines(), ["1", "2", "3"]);
    // --retries: a retried block gets its data again (GNU: the same).
    let done = run_stdin(
        &[
            "--pipe",
            "-N5",
            "--retries",
            "2",
            "-k",
            "wc -l; echo try >&2; exit 1",
        ],
        &seq(10),
    );
    done.status(2);
    assert_eq!(done.lines(), ["5", "5"]);
}

#[test]
fn a_job_that_closes_its_stdin_early_is_its_own_business() {
    // Each job reads 10 bytes of its 256 KiB block and exits: the rest of
    // its block meets a closed pipe. The runner goes on, every job succeeds.
    let input = seq(300_000);
    let done = run_stdin(
        &[
            "--pipe",
            "-j2",
            "--block",
            "256k",
            "head -c 10 > /dev/null; echo ok",
        ],
        &input,
    );
    done.status(0);
    let n = done.lines().len();
    assert!(n >= 7, "{n} jobs");
    assert!(done.lines().iter().all(|l| l == "ok"));
}

#[test]
fn cat_and_fifo_name_the_block_and_clean_up() {
    let input = seq(1000);
    for how in ["--cat", "--fifo"] {
        let done = run_stdin(
            &[
                "--pipe",
                how,
                "-k",
                "--block",
                "500",
                "-j3",
                "cat {}; echo {} >&2",
            ],
            &input,
        );
        done.status(0);
        assert_eq!(done.stdout, input, "{how}");
        let names: Vec<String> = done.err().lines().map(str::to_owned).collect();
        assert!(names.len() > 5, "{how}: {} blocks", names.len());
        for n in &names {
            assert!(!std::path::Path::new(n).exists(), "{how}: {n} left behind");
        }
    }
}

fn pipepart_file(dir: &Scratch, rng: &mut Rng) -> (std::path::PathBuf, Vec<u8>) {
    let data = records(rng, 3000);
    let path = dir.join("data");
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

#[test]
fn pipepart_ranges_cover_the_file_exactly_once() {
    let dir = Scratch::new();
    let mut rng = Rng(0xDEAD_BEEF_1234_5678);
    let (path, data) = pipepart_file(&dir, &mut rng);
    let p = path.to_str().unwrap();
    for block in ["1k", "10k", "1M"] {
        let done = run_in(
            dir.path(),
            &["--pipepart", "-a", p, "-k", "-j3", "--block", block, MARKED],
            None,
        );
        done.status(0);
        let b = blocks(&done.out());
        for blk in &b {
            assert!(
                blk.starts_with('<') && blk.ends_with(">\n"),
                "--block {block}"
            );
        }
        assert_eq!(b.concat().as_bytes(), &data[..], "--block {block}");
    }
    // A negative --block: that many ranges per job slot.
    let done = run_in(
        dir.path(),
        &["--pipepart", "-a", p, "-j2", "--block", "-3", "wc", "-l"],
        None,
    );
    done.status(0);
    assert_eq!(done.lines().len(), 6);
    let total: u64 = done
        .lines()
        .iter()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 3000);
    // GNU's cut (recorded): the separator is looked for from the target on.
    std::fs::write(dir.join("six"), b"1\n2\n3\n4\n5\n6\n").unwrap();
    let done = run_in(
        dir.path(),
        &[
            "--pipepart",
            "-a",
            "six",
            "--block",
            "4",
            "-k",
            "echo X; cat",
        ],
        None,
    );
    assert_eq!(done.out().replace('\n', "|"), "X|1|2|3|X|4|5|6|");
    // A header on every range.
    std::fs::write(dir.join("csv"), b"a,b\n1,2\n3,4\n5,6\n").unwrap();
    let done = run_in(
        dir.path(),
        &[
            "--pipepart",
            "-a",
            "csv",
            "--header",
            "1",
            "--block",
            "1",
            "-k",
            "cat",
        ],
        None,
    );
    assert_eq!(done.out(), "a,b\n1,2\na,b\n3,4\na,b\n5,6\n");
}

#[test]
fn pipepart_without_block_makes_ten_ranges_per_job_slot_as_gnu() {
    // GNU parallel 20221122 (recorded): without --block, --pipepart cuts
    // ten ranges per job slot whatever the file's size (not 1 MiB ones).
    let dir = Scratch::new();
    let line = [&[b'x'; 99][..], b"\n"].concat();
    let lines = (12 << 20) / 100;
    std::fs::write(dir.join("big"), line.repeat(lines)).unwrap();
    std::fs::write(dir.join("small"), line.repeat(1000)).unwrap();
    for (file, j, jobs, want) in [("big", "-j2", 20, lines), ("small", "-j3", 30, 1000)] {
        let done = run_in(dir.path(), &["--pipepart", "-a", file, j, "wc", "-l"], None);
        done.status(0);
        let counts: Vec<usize> = done
            .lines()
            .iter()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        assert_eq!(counts.len(), jobs, "{file}: {counts:?}");
        assert_eq!(counts.iter().sum::<usize>(), want, "{file}");
    }
}

/// The runner's peak resident memory while `bytes` of generated lines go
/// through `--pipe` into `cat > /dev/null`.
fn stream_through(bytes: u64) -> (u64, Duration) {
    let mut cmd = common::bin();
    cmd.args(["run", "--pipe", "-j2", "--block", "4M", "cat > /dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopq\n";
        let chunk: Vec<u8> = line.repeat((1 << 20) / line.len());
        let mut sent = 0u64;
        while sent < bytes {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
    });
    let status_path = format!("/proc/{}/status", child.id());
    let mut hwm_kib = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path)
            && let Some(v) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            hwm_kib = hwm_kib.max(v);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the stream did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    feeder.join().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    (hwm_kib * 1024, start.elapsed())
}

#[test]
fn a_large_stream_goes_through_in_bounded_memory() {
    // 1 GiB in 4 MiB blocks: 2 running, 1 waiting, 1 being read, and the
    // binary itself; far below what holding the stream would take.
    let (peak, took) = stream_through(1 << 30);
    assert!(peak < 96 << 20, "peak RSS {} MiB", peak >> 20);
    eprintln!(
        "1 GiB through --pipe in {took:?}, peak RSS {} MiB",
        peak >> 20
    );
}

/// The 20 GB stream; too long for CI (run with `--ignored`).
#[test]
#[ignore]
fn a_20_gb_stream_goes_through_in_bounded_memory() {
    let (peak, took) = stream_through(20 << 30);
    assert!(peak < 96 << 20, "peak RSS {} MiB", peak >> 20);
    eprintln!(
        "20 GiB through --pipe in {took:?}, peak RSS {} MiB",
        peak >> 20
    );
}

/// Starts `-j3` jobs that record their group and leave a child `sleep 60`.
fn start_sleepers(dir: &Scratch) -> (std::process::Child, Vec<u32>) {
    let mut cmd = common::bin();
    cmd.current_dir(dir.path())
        .args([
            "run",
            "-j3",
            "sleep 60 & echo $$ > pid-{}; wait",
            ":::",
            "a",
            "b",
            "c",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().unwrap();
    let mut groups = Vec::new();
    assert!(eventually(Duration::from_secs(10), || {
        groups = ["a", "b", "c"]
            .iter()
            .filter_map(|n| {
                let s = std::fs::read_to_string(dir.join(format!("pid-{n}"))).ok()?;
                s.strip_suffix('\n')?.parse().ok()
            })
            .collect();
        groups.len() == 3
    }));
    // Each group has its shell and its sleep.
    assert!(eventually(Duration::from_secs(5), || {
        groups.iter().all(|&g| common::group_members(g).len() >= 2)
    }));
    (child, groups)
}

#[test]
fn kill_9_of_the_runner_leaves_no_job_behind() {
    let dir = Scratch::new();
    let (mut runner, groups) = start_sleepers(&dir);
    let status = Command::new("kill")
        .args(["-9", &runner.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = runner.wait();
    for &g in &groups {
        assert!(
            eventually(Duration::from_secs(5), || common::group_members(g)
                .is_empty()),
            "group {g} survived the runner: {:?}",
            common::group_members(g)
        );
    }
}

#[test]
fn kill_9_of_a_jobs_shell_takes_its_children() {
    let dir = Scratch::new();
    let (mut runner, groups) = start_sleepers(&dir);
    // The job's first process (its shell) is killed from outside.
    let status = Command::new("kill")
        .args(["-9", &groups[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        eventually(Duration::from_secs(5), || common::group_members(groups[0])
            .is_empty()),
        "the shell's sleep survived"
    );
    // The others run on until we stop the run.
    assert!(
        groups[1..]
            .iter()
            .all(|&g| !common::group_members(g).is_empty())
    );
    let _ = Command::new("kill")
        .args(["-TERM", &runner.id().to_string()])
        .status();
    let _ = common::wait_deadline(&mut runner, Duration::from_secs(10));
    for &g in &groups {
        assert!(eventually(Duration::from_secs(5), || {
            common::group_members(g).is_empty()
        }));
    }
}

#[test]
fn round_robin_spreads_the_stream_over_one_job_per_slot() {
    let input = seq(300_000);
    let done = run_stdin(
        &["--round-robin", "-j3", "--block", "10k", "wc", "-l"],
        &input,
    );
    done.status(0);
    let counts: Vec<u64> = done
        .lines()
        .iter()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    // One job per slot, each fed many blocks, nothing lost (GNU: the same).
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert_eq!(counts.iter().sum::<u64>(), 300_000);
    assert!(counts.iter().all(|&c| c > 1000), "{counts:?}");
    // Whole records only: every line of every job is a number of the input.
    let done = run_stdin(
        &["--pipe", "--round-robin", "-j2", "--block", "1k", "cat"],
        &input,
    );
    let mut lines: Vec<u64> = done.lines().iter().map(|l| l.parse().unwrap()).collect();
    lines.sort_unstable();
    assert_eq!(lines, (1..=300_000).collect::<Vec<u64>>());
    // Fewer blocks than slots, and none: as GNU, a job per block, or none.
    let done = run_stdin(&["--round-robin", "-j4", "-N1", "wc", "-l"], &seq(3));
    assert_eq!(done.status(0).lines(), ["1", "1", "1"]);
    let done = run_stdin(&["--round-robin", "-j2", "wc", "-l"], b"");
    assert_eq!(done.status(0).out(), "");
}

#[test]
fn pipe_reads_an_arg_file_instead_of_stdin_and_dry_run_prints_each_block() {
    let dir = Scratch::new();
    std::fs::write(dir.join("in"), seq(1000)).unwrap();
    let done = run_in(
        dir.path(),
        &["--pipe", "-a", "in", "--block", "1k", "wc", "-l"],
        None,
    );
    done.status(0);
    let total: u64 = done
        .lines()
        .iter()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 1000);
    assert!(done.lines().len() > 2);
    // GNU's answer (recorded): one command per block, nothing run.
    let done = run_stdin(&["--pipe", "-N2", "--dry-run", "wc -l {#}"], &seq(5));
    assert_eq!(done.status(0).lines(), ["wc -l 1", "wc -l 2", "wc -l 3"]);
}
