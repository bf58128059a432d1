//! `ThreadPool::insights` adds up, and `Map::progress` is silent off a terminal.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::within;
use quadriga::ThreadPool;

#[quadriga::task]
fn nap(i: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(10));
    i
}

#[test]
fn insights_add_up_per_thread() {
    within(60, || {
        let pool = ThreadPool::new(2).unwrap();
        let got: Vec<u32> = pool.map(nap, 0..40).map(Result::unwrap).collect();
        assert_eq!(got.len(), 40);
        let handles: Vec<_> = (0..10).map(|i| pool.submit(nap, i)).collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), i as u32);
        }
        std::thread::sleep(Duration::from_millis(50));
        let insights = pool.insights();
        assert_eq!(insights.tasks(), 50);
        assert_eq!(
            insights.workers.len(),
            2,
            "no caller ran pieces: {insights}"
        );
        let uptime = insights.uptime.as_secs_f64();
        let mut busy_total = 0.0;
        for w in &insights.workers {
            let sum = (w.startup + w.busy + w.idle).as_secs_f64();
            assert!(
                (sum - uptime).abs() <= 0.05 + 0.1 * uptime,
                "{}: start-up + busy + idle = {sum:.3} s, uptime {uptime:.3} s\n{insights}",
                w.name
            );
            assert!(
                w.idle >= Duration::from_millis(40),
                "it idled after the work: {insights}"
            );
            if w.tasks > 0 {
                assert!(w.max_task >= Duration::from_millis(9), "{insights}");
                assert!(w.mean_task >= Duration::from_millis(9), "{insights}");
            }
            busy_total += w.busy.as_secs_f64();
        }
        assert!(busy_total >= 50.0 * 0.009, "50 naps of 10 ms: {insights}");
        let shown = insights.to_string();
        assert!(
            shown.contains("50 tasks") && shown.contains("thread 1"),
            "{shown}"
        );
    });
}

/// Set in the child run of [`progress_is_silent_off_a_terminal`].
const CHILD: &str = "QUADRIGA_TEST_PROGRESS_CHILD";

#[test]
fn progress_is_silent_off_a_terminal() {
    if std::env::var_os(CHILD).is_some() {
        // The child: a map with a bar, its output piped to the parent.
        let pool = ThreadPool::new(2).unwrap();
        let n: usize = pool.map(nap, 0..30).progress().map(Result::unwrap).count();
        let all: Vec<u32> = pool
            .map(nap, 0..30)
            .progress()
            .collect::<Result<_, _>>()
            .unwrap();
        println!("mapped {n} and {}", all.len());
        return;
    }
    within(60, || {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "progress_is_silent_off_a_terminal",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stdout.contains("mapped 30 and 30"), "{stdout}");
        for text in [&stdout, &stderr] {
            assert!(!text.contains("items"), "a bar was drawn: {text:?}");
            assert!(!text.contains('\r') && !text.contains('\u{1b}'), "{text:?}");
        }
    });
}
