//! The examples print what they should. Cargo builds examples before it runs
//! integration tests, next to this test's own binary.

mod common;
#[cfg(feature = "cluster")]
#[path = "common/redis.rs"]
mod redis_server;

use std::process::Command;
use std::time::Instant;

#[test]
fn squares_prints_the_squares() {
    let out = Command::new(common::example("squares")).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[1, 4, 9, 16, 25]\n");
}

#[test]
fn downloads_overlap() {
    let started = Instant::now();
    let out = Command::new(common::example("downloads"))
        .env("QUADRIGA_DOWNLOAD_SECS", "1")
        .output()
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for file in ["report.pdf", "photo.jpg", "data.csv"] {
        assert!(
            stdout.contains(&format!("Downloading {file}...")),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("Finished {file}")), "{stdout}");
    }
    // The three "Downloading" lines come before any "Finished": they overlap.
    let last_start = stdout.rfind("Downloading").unwrap();
    let first_finish = stdout.find("Finished").unwrap();
    assert!(
        last_start < first_finish,
        "downloads did not overlap:\n{stdout}"
    );
    assert!(stdout.contains("All 3 downloads done in"), "{stdout}");
    // The overlap is proven by the line order above; the clock only guards
    // against a hang (timings belong in quadriga-bench).
    assert!(wall < 60.0, "took {wall:.2} s");
}

#[test]
fn squares_with_processes_prints_the_same() {
    let out = Command::new(common::example("squares"))
        .arg("--processes")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[1, 4, 9, 16, 25]\n");
}

#[test]
fn crash_isolation_reports_each_failure_and_every_other_result() {
    let out = Command::new(common::example("crash_isolation"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert_eq!(lines[0], "parse(\"12\") = 144");
    assert!(
        lines[1].starts_with("parse(\"segfault\") failed: crashed: worker "),
        "{stdout}"
    );
    assert!(lines[1].contains("SIGSEGV"), "{stdout}");
    assert_eq!(lines[2], "parse(\"7\") = 49");
    assert!(
        lines[3].starts_with("parse(\"hang\") failed: timed out"),
        "{stdout}"
    );
    assert_eq!(
        lines[4],
        "parse(\"x\") failed: failed: invalid digit found in string"
    );
    assert_eq!(lines[5], "parse(\"3\") = 9");
}

#[test]
fn process_prints_numbers_from_another_process() {
    let out = Command::new(common::example("process")).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    let worker = lines[0].split(':').next().unwrap();
    assert_ne!(worker, format!("worker {}", std::process::id()));
    for (i, line) in lines[..5].iter().enumerate() {
        assert_eq!(*line, format!("{worker}: {}", i + 1));
    }
    assert!(
        lines[5].ends_with("exited with code 0; it printed 5 numbers"),
        "{stdout}"
    );
}

#[cfg(feature = "cluster")]
#[test]
fn cluster_squares_prints_the_sum_through_a_broker() {
    let server = redis_server::RedisServer::start();
    let out = Command::new(common::example("cluster_squares"))
        .arg(server.url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some("sum of squares of 1..=10000 = 333383335000"),
        "{stdout}"
    );
}

#[cfg(feature = "cluster")]
#[test]
fn cluster_chaos_reconciles_every_task_through_kills_and_a_pause() {
    let server = redis_server::RedisServer::start();
    let started = Instant::now();
    let out = Command::new(common::example("cluster_chaos"))
        .arg(server.url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let dups = last
        .strip_prefix("5000 tasks: 5000 outcomes, 0 lost, ")
        .and_then(|rest| rest.strip_suffix(" duplicate runs"))
        .unwrap_or_else(|| panic!("{stdout}"));
    // Workers were killed mid-task and one was paused past its lease: some
    // task ran twice, and the broker counted it.
    assert!(dups.parse::<u64>().unwrap() >= 1, "{stdout}");
    let chaos = stdout.lines().next().unwrap_or_default();
    assert!(chaos.contains("1 SIGSTOPped past its lease"), "{stdout}");
    assert!(!chaos.starts_with("0 workers"), "{stdout}");
    // A guard against a hang only; timings belong in quadriga-bench.
    assert!(started.elapsed().as_secs() < 120, "{:?}", started.elapsed());
}

#[test]
fn groupby_prints_the_sums_by_id1_on_threads_and_processes() {
    let dir = std::env::temp_dir().join(format!("quadriga-groupby-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("g.csv");
    let gen_out = Command::new(common::example("gen_groupby"))
        .arg("20000")
        .arg(&path)
        .output()
        .unwrap();
    assert!(gen_out.status.success(), "{gen_out:?}");
    // The sums computed here, the plain way.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut want = std::collections::BTreeMap::<String, i64>::new();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id1,id2,id3,id4,id5,id6,v1,v2,v3"));
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        *want.entry(fields[0].to_owned()).or_default() += fields[6].parse::<i64>().unwrap();
    }
    assert_eq!(want.len(), 100);
    let want: String = want.iter().map(|(k, v)| format!("{k},{v}\n")).collect();
    for args in [&[][..], &["--processes"][..]] {
        let out = Command::new(common::example("groupby"))
            .arg(&path)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
