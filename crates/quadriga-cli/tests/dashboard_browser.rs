//! The dashboard in a real headless browser (Debian's chromium, driven over
//! the DevTools protocol by `headless_chrome`): against a private
//! `redis-server`, two library workers (threads of this test), a failure and
//! a dead letter, the page loads with no console error, shows both workers
//! and the queue depth, updates when jobs finish, and requeues the dead
//! letter with its button (the task then runs and its result is recorded).
//!
//! Skipped, with a message, where no chromium is installed;
//! `scripts/test.sh` installs it, so CI runs it. With
//! `QUADRIGA_SCREENSHOT=path.png` it also saves a 1280×800 screenshot.

mod common;
#[path = "../../quadriga/tests/common/redis.rs"]
mod redis_server;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Emulation::SetDeviceMetricsOverride;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::protocol::cdp::Runtime::ConsoleAPICalledEventTypeOption;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions, Tab};
use quadriga::TaskErrorKind;
use quadriga::cluster::{
    Broker, BrokerConfig, ClusterPool, Outcome, TaskId, Worker, WorkerStop, read_dead_letters,
};
use redis_server::RedisServer;

#[quadriga::task]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[quadriga::task]
fn boom(x: u64) -> u64 {
    panic!("boom on {x}")
}

/// The system's chromium, if any.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| {
            std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .map(move |dir| dir.join(name))
        })
        .find(|p| p.is_file())
}

/// Two library workers on threads of this process, stopped when dropped.
struct Workers(Vec<(WorkerStop, Option<JoinHandle<()>>)>);

impl Workers {
    fn start(url: &str) -> Workers {
        Workers(
            ["worker-a", "worker-b"]
                .into_iter()
                .map(|name| {
                    let worker = Worker::builder(url)
                        .queue("jobs")
                        .name(name)
                        .concurrency(1)
                        // A heartbeat (and record) every second.
                        .lease(Duration::from_secs(3))
                        .build()
                        .unwrap();
                    let stop = worker.stopper();
                    let thread = std::thread::spawn(move || {
                        worker.run().unwrap();
                    });
                    (stop, Some(thread))
                })
                .collect(),
        )
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (stop, _) in &self.0 {
            stop.stop();
        }
        for (_, thread) in &mut self.0 {
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// A dashboard process with a key, killed when dropped: its URL with the
/// token.
struct Dashboard(Child, String);

impl Dashboard {
    fn start(broker: &str, key_dir: &std::path::Path) -> Dashboard {
        use std::os::unix::fs::PermissionsExt;
        let key = key_dir.join("key");
        std::fs::write(&key, "the browser test's key, 32 bytes").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut child = common::bin()
            .args(["dashboard", "--broker", broker, "--queue", "jobs"])
            .args(["--listen", "127.0.0.1:0", "--key-file"])
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().take(2) {
                let _ = tx.send(line.unwrap_or_default());
            }
        });
        let mut dash = Dashboard(child, String::new());
        for _ in 0..2 {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("the dashboard prints its URLs");
            if let Some((_, url)) = line.split_once(" are on at ") {
                dash.1 = url.trim().to_owned();
            }
        }
        assert!(dash.1.contains("#token="), "a URL with the token");
        dash
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `expr` evaluated in the page, as a string.
fn text(tab: &Tab, expr: &str) -> String {
    let v = tab
        .evaluate(&format!("String({expr})"), false)
        .unwrap_or_else(|e| panic!("evaluating {expr}: {e}"));
    match v.value {
        Some(serde_json::Value::String(s)) => s,
        other => panic!("{expr} gave {other:?}"),
    }
}

/// Waits (at most `secs`) until `ok` holds for the page's `expr`.
fn wait_for(tab: &Tab, expr: &str, secs: u64, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = text(tab, expr);
        if ok(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: within {secs} s; the page has {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The number before `label` in the summary line ("… 3 waiting, …").
fn count_before(summary: &str, label: &str) -> Option<u64> {
    let at = summary.find(label)?;
    summary[..at].split_whitespace().last()?.parse().ok()
}

#[test]
fn the_page_shows_workers_depth_failures_and_requeues_a_dead_letter() {
    let Some(chrome) = chromium() else {
        eprintln!(
            "skipping the dashboard's browser test: no chromium on PATH \
             (scripts/test.sh installs Debian's chromium)"
        );
        return;
    };
    let started = Instant::now();
    let server = RedisServer::start();
    let url = server.url();
    let cfg = BrokerConfig::new(&url).queue("jobs");

    // A dead letter: a task taken by a consumer that gives up on it.
    let pool = ClusterPool::builder(&url).queue("jobs").build().unwrap();
    let lost = pool.submit(nap, 5);
    let mut thief = Broker::connect(cfg.clone().consumer("thief")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let d = loop {
        assert!(Instant::now() < deadline, "no entry to take");
        if let Some(d) = thief
            .reader()
            .read(1, Duration::from_millis(100))
            .unwrap()
            .pop()
        {
            break d;
        }
    };
    thief.dead_letter(&d, "given up by the test").unwrap();
    assert_eq!(lost.join().unwrap_err().kind(), TaskErrorKind::Lost);
    let letter = read_dead_letters(&cfg, [0], 10).unwrap().remove(0);
    let dead_task: TaskId = letter.first_task_id.unwrap().parse().unwrap();

    // Two workers, a failure, then both busy for a while with three waiting.
    let workers = Workers::start(&url);
    let err = pool.submit(boom, 1).join().unwrap_err();
    assert_eq!(err.kind(), TaskErrorKind::Panicked);

    let key_dir = common::Scratch::new();
    let dash = Dashboard::start(&url, key_dir.path());
    let browser = Browser::new(
        LaunchOptions::default_builder()
            .path(Some(chrome))
            .sandbox(false)
            .window_size(Some((1280, 800)))
            .idle_browser_timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
    )
    .unwrap();
    let tab = browser.new_tab().unwrap();
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let errors = Arc::clone(&errors);
        tab.add_event_listener(Arc::new(move |event: &Event| {
            let msg = match event {
                Event::RuntimeExceptionThrown(e) => {
                    Some(format!("{:?}", e.params.exception_details))
                }
                Event::RuntimeConsoleAPICalled(e)
                    if e.params.Type == ConsoleAPICalledEventTypeOption::Error =>
                {
                    Some(format!("console.error: {:?}", e.params.args))
                }
                Event::LogEntryAdded(e)
                    if format!("{:?}", e.params.entry.level).eq_ignore_ascii_case("error") =>
                {
                    Some(format!("log: {}", e.params.entry.text))
                }
                _ => None,
            };
            if let Some(m) = msg {
                errors.lock().unwrap().push(m);
            }
        }))
        .unwrap();
    }
    tab.enable_runtime().unwrap();
    tab.enable_log().unwrap();
    tab.navigate_to(&dash.1).unwrap();
    tab.wait_until_navigated().unwrap();

    // Both workers; then the queue depth while they are busy.
    let summary = "document.getElementById('summary').textContent";
    wait_for(&tab, summary, 15, "two workers", |s| {
        count_before(s, " workers") == Some(2)
    });
    // Counted before the jobs below start, however slow the page is.
    let done_before = count_before(&text(&tab, summary), " done in the last minute").unwrap();
    let long: Vec<_> = (0..2).map(|_| pool.submit(nap, 4_000)).collect();
    let short: Vec<_> = (0..3).map(|_| pool.submit(nap, 10)).collect();
    wait_for(&tab, summary, 10, "three waiting", |s| {
        count_before(s, " waiting") == Some(3)
    });
    let workers_table = text(&tab, "document.getElementById('workers').textContent");
    assert!(
        workers_table.contains("worker-a") && workers_table.contains("worker-b"),
        "{workers_table}"
    );
    // The failure with its message and location, the dead letter with its
    // buttons (the token came with the URL).
    let failures = wait_for(
        &tab,
        "document.getElementById('failures').textContent",
        10,
        "the failure",
        |s| s.contains("boom on 1"),
    );
    assert!(failures.contains("dashboard_browser.rs:"), "{failures}");
    assert_eq!(
        text(
            &tab,
            "document.querySelectorAll('#dead button.requeue').length"
        ),
        "1"
    );

    // Updates as jobs finish: the queue drains and the count goes up.
    for h in long.into_iter().chain(short) {
        assert!(h.join().is_ok());
    }
    wait_for(&tab, summary, 15, "the finished jobs", |s| {
        count_before(s, " waiting") == Some(0)
            && count_before(s, " done in the last minute").is_some_and(|n| n >= done_before + 5)
    });

    if let Some(path) = std::env::var_os("QUADRIGA_SCREENSHOT") {
        // For the picture only: a minute of steady work (past the long
        // naps' minute), so the chart has something to show, in a viewport
        // of exactly 1280×800.
        let sizes: Vec<u64> = (0..10_000).map(|i| 20 + (i * 37) % 60).collect();
        let until = Instant::now() + Duration::from_secs(65);
        for chunk in sizes.chunks(8) {
            if Instant::now() > until {
                break;
            }
            let hs: Vec<_> = chunk.iter().map(|&ms| pool.submit(nap, ms)).collect();
            for h in hs {
                h.join().unwrap();
            }
        }
        tab.call_method(SetDeviceMetricsOverride {
            width: 1280,
            height: 800,
            device_scale_factor: 1.0,
            mobile: false,
            scale: None,
            screen_width: None,
            screen_height: None,
            position_x: None,
            position_y: None,
            dont_set_visible_size: None,
            screen_orientation: None,
            viewport: None,
            display_feature: None,
            device_posture: None,
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let png = tab
            .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
            .unwrap();
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot saved to {}", PathBuf::from(path).display());
    }

    // Requeue from the page: the dead letter goes, the task runs again and
    // its result is recorded in place of `lost`.
    tab.find_element("#dead button.requeue")
        .unwrap()
        .click()
        .unwrap();
    wait_for(
        &tab,
        "document.getElementById('action-result').textContent",
        10,
        "the requeue's answer",
        |s| s.contains("requeued"),
    );
    wait_for(
        &tab,
        "document.getElementById('dead').textContent",
        10,
        "an empty dead-letter list",
        |s| s.contains("no dead letters"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match thief.fetch(dead_task).unwrap() {
            Some(Outcome::Output(_)) => break,
            other => assert!(
                Instant::now() < deadline,
                "the requeued task's result: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // The polling fallback reads the same numbers.
    let polled = tab
        .evaluate(
            "poll().then(() => document.getElementById('error').textContent + '|' + \
             document.getElementById('summary').textContent)",
            true,
        )
        .unwrap()
        .value;
    let polled = polled.as_ref().and_then(|v| v.as_str()).unwrap_or_default();
    assert!(polled.starts_with("|queue jobs: 2 workers"), "{polled}");
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    drop(tab);
    drop(browser);
    drop(dash);
    drop(pool);
    drop(workers);
    eprintln!("the browser test took {:?}", started.elapsed());
}
