//! Fault injection for every supervisor path: each fault fails only its own
//! task, with the right kind, while the pool carries on.
//!
//! Workers are this test binary re-executed; the library's constructor turns
//! them into workers before the test harness starts.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use quadriga::{Process, ProcessPool, Shutdown, TaskErrorKind};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[quadriga::task]
fn add_one(x: u64) -> u64 {
    x + 1
}

#[quadriga::task]
fn pid() -> u32 {
    std::process::id()
}

#[quadriga::task]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Misbehaves as told: the fault injector.
#[quadriga::task]
fn fault(kind: String) -> u64 {
    match kind.as_str() {
        "exit3" => std::process::exit(3),
        "abort" => std::process::abort(),
        "segfault" => {
            // SAFETY: deliberately invalid: the point is to die by SIGSEGV.
            unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
            0
        }
        "sigkill" => {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
            std::thread::sleep(Duration::from_secs(10));
            0
        }
        "stack" => recurse(1),
        "oom" => {
            let mut v: Vec<u8> = Vec::new();
            v.resize(1 << 33, 1); // 8 GiB: past any limit the tests set
            v.len() as u64
        }
        "hang" => loop {
            std::thread::sleep(Duration::from_millis(10));
        },
        "panic" => panic!("task blew up"),
        "panic_any" => std::panic::panic_any(42_u32),
        other => other.len() as u64,
    }
}

fn recurse(n: u64) -> u64 {
    let buf = std::hint::black_box([n; 512]);
    if buf[0] == 0 {
        return 0;
    }
    recurse(n + 1) + buf[1]
}

/// Serialises, but never deserialises: an output the parent cannot decode.
#[derive(Debug)]
struct Undecodable;

impl Serialize for Undecodable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(7)
    }
}

impl<'de> Deserialize<'de> for Undecodable {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("this type refuses to be decoded"))
    }
}

#[quadriga::task]
fn undecodable() -> Undecodable {
    Undecodable
}

#[quadriga::task]
fn big(bytes: usize) -> Vec<u8> {
    vec![1; bytes]
}

/// Whether process `worker` is gone (killed and reaped) within `limit`. The
/// supervisor reaps asynchronously, so a killed worker may be a zombie for a
/// moment after the caller learns of the kill.
fn gone_within(worker: u32, limit: Duration) -> bool {
    let worker = rustix::process::Pid::from_raw(worker as i32).unwrap();
    let deadline = Instant::now() + limit;
    while rustix::process::test_kill_process(worker).is_ok() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// Runs `kind` next to a healthy task on a 2-worker pool; returns the error.
fn inject(pool: &ProcessPool, kind: &str) -> quadriga::TaskError {
    let good = pool.submit(add_one, 41);
    let bad = pool.submit(fault, kind.to_string());
    let err = bad.join().expect_err("a fault must not produce an output");
    assert_eq!(
        good.join().unwrap(),
        42,
        "a healthy task failed beside `{kind}`"
    );
    // The pool still works afterwards.
    assert_eq!(pool.submit(add_one, 1).join().unwrap(), 2);
    err
}

fn pool() -> ProcessPool {
    ProcessPool::new(2).unwrap()
}

#[test]
fn exit_code_is_a_crash_with_the_code_and_pid() {
    let p = pool();
    let err = inject(&p, "exit3");
    assert_eq!(err.kind(), TaskErrorKind::Crashed);
    assert_eq!(err.exit_code(), Some(3));
    assert_eq!(err.signal(), None);
    assert!(err.pid().is_some());
    assert!(err.task_name().unwrap().ends_with("::fault"), "{err}");
    assert!(err.to_string().contains("exited with code 3"), "{err}");
}

#[test]
fn abort_is_sigabrt() {
    let err = inject(&pool(), "abort");
    assert!(err.is_crashed());
    assert_eq!(err.signal(), Some(6), "{err}");
    assert!(err.to_string().contains("SIGABRT"), "{err}");
}

#[test]
fn segfault_is_sigsegv() {
    let err = inject(&pool(), "segfault");
    assert!(err.is_crashed());
    assert_eq!(err.signal(), Some(11), "{err}");
}

#[test]
fn sigkill_mid_task_is_sigkill() {
    let err = inject(&pool(), "sigkill");
    assert!(err.is_crashed());
    assert_eq!(err.signal(), Some(9), "{err}");
}

#[test]
fn external_sigkill_of_a_busy_worker_fails_only_its_task() {
    let p = ProcessPool::new(1).unwrap();
    let victim = p.submit(nap, 30_000);
    // Wait until it runs, then kill its worker from outside.
    let deadline = Instant::now() + Duration::from_secs(30);
    let worker = loop {
        if let Some(&w) = p.worker_pids().first() {
            std::thread::sleep(Duration::from_millis(100));
            break w;
        }
        assert!(Instant::now() < deadline, "no worker started");
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(worker as i32).unwrap(),
        rustix::process::Signal::KILL,
    );
    let err = victim.join().unwrap_err();
    assert!(err.is_crashed());
    assert_eq!(err.signal(), Some(9));
    assert_eq!(err.pid(), Some(worker));
    assert_eq!(p.submit(add_one, 9).join().unwrap(), 10);
}

#[test]
fn stack_overflow_is_a_crash() {
    let err = inject(&pool(), "stack");
    assert!(err.is_crashed(), "{err}");
    // Rust's guard page handler aborts; without it the kernel sends SIGSEGV.
    assert!(matches!(err.signal(), Some(6) | Some(11)), "{err}");
}

#[test]
fn oom_under_memory_limit_is_a_crash_that_names_the_limit() {
    let p = ProcessPool::builder()
        .workers(2)
        .memory_limit(1 << 30)
        .build()
        .unwrap();
    let err = inject(&p, "oom");
    assert!(err.is_crashed(), "{err}");
    assert!(err.message().contains("memory"), "{err}");
}

#[test]
fn infinite_loop_times_out_and_the_group_is_killed() {
    let p = ProcessPool::builder()
        .workers(2)
        .timeout(Duration::from_millis(300))
        .grace(Duration::from_millis(100))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = inject(&p, "hang");
    assert!(err.is_timed_out(), "{err}");
    assert_eq!(err.timeout(), Some(Duration::from_millis(300)));
    assert!(err.pid().is_some());
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn panics_keep_message_location_and_pid() {
    let p = pool();
    let err = inject(&p, "panic");
    assert!(err.is_panic());
    assert_eq!(err.message(), "task blew up");
    assert!(
        err.location()
            .unwrap()
            .file()
            .ends_with("process_faults.rs")
    );
    assert!(err.pid().is_some());
    let err = inject(&p, "panic_any");
    assert!(err.is_panic());
    assert!(err.message().contains("non-string"), "{err}");
}

#[test]
fn an_output_that_cannot_be_decoded_is_a_codec_error() {
    let p = pool();
    let err = p.submit(undecodable, ()).join().unwrap_err();
    assert_eq!(err.kind(), TaskErrorKind::Codec);
    assert!(
        err.message().contains("could not decode the output"),
        "{err}"
    );
    assert_eq!(p.submit(add_one, 1).join().unwrap(), 2);
}

#[test]
fn an_oversized_output_is_a_codec_error_and_the_worker_survives() {
    let p = ProcessPool::builder()
        .workers(1)
        .max_frame_bytes(64 << 10)
        .build()
        .unwrap();
    let before = p.submit(pid, ()).join().unwrap();
    let err = p.submit(big, 1 << 20).join().unwrap_err();
    assert_eq!(err.kind(), TaskErrorKind::Codec, "{err}");
    assert!(err.message().contains("frame limit"), "{err}");
    assert_eq!(p.submit(big, 10).join().unwrap().len(), 10);
    assert_eq!(
        p.submit(pid, ()).join().unwrap(),
        before,
        "the worker was replaced"
    );
}

#[test]
fn an_oversized_input_is_a_codec_error() {
    let p = ProcessPool::builder()
        .workers(1)
        .max_frame_bytes(64 << 10)
        .build()
        .unwrap();
    let err = p.submit(fault, "x".repeat(1 << 20)).join().unwrap_err();
    assert_eq!(err.kind(), TaskErrorKind::Codec, "{err}");
    assert_eq!(p.submit(add_one, 1).join().unwrap(), 2);
}

#[test]
fn crashed_tasks_are_retried_when_asked() {
    let dir = std::env::temp_dir().join(format!("quadriga-retry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("first-attempt");
    let p = ProcessPool::builder()
        .workers(1)
        .retries(1)
        .build()
        .unwrap();
    let h = p.submit(crash_once, marker.display().to_string());
    assert_eq!(h.join().unwrap(), "second attempt");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Crashes the first time (leaving a marker file), succeeds the second.
#[quadriga::task]
fn crash_once(marker: String) -> String {
    if std::fs::metadata(&marker).is_err() {
        std::fs::write(&marker, b"x").unwrap();
        std::process::abort();
    }
    "second attempt".to_string()
}

#[test]
fn cancelling_a_running_task_kills_its_worker() {
    let p = ProcessPool::new(1).unwrap();
    let first = p.submit(pid, ()).join().unwrap();
    let h = p.submit(nap, 60_000);
    std::thread::sleep(Duration::from_millis(200));
    assert!(h.cancel());
    assert!(h.join().unwrap_err().is_cancelled());
    let started = Instant::now();
    let second = p.submit(pid, ()).join().unwrap();
    assert_ne!(first, second, "the cancelled task's worker was replaced");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The old worker is gone.
    assert!(
        gone_within(first, Duration::from_secs(20)),
        "worker {first} still exists"
    );
}

#[test]
fn cancelling_a_queued_task_means_it_never_runs() {
    let p = ProcessPool::new(1).unwrap();
    let busy = p.submit(nap, 300);
    let queued = p.submit(fault, "exit3".to_string());
    assert!(queued.cancel());
    assert!(queued.join().unwrap_err().is_cancelled());
    assert_eq!(busy.join().unwrap(), 300);
    assert_eq!(p.worker_pids().len(), 1);
}

#[test]
fn workers_are_recycled_after_max_tasks() {
    let p = ProcessPool::builder()
        .workers(1)
        .max_tasks_per_worker(3)
        .build()
        .unwrap();
    let pids: Vec<u32> = (0..9).map(|_| p.submit(pid, ()).join().unwrap()).collect();
    let distinct: HashSet<_> = pids.iter().collect();
    assert_eq!(distinct.len(), 3, "{pids:?}");
    assert!(
        pids.chunks(3).all(|c| c[0] == c[1] && c[1] == c[2]),
        "{pids:?}"
    );
}

static INITIALIZED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[quadriga::task]
fn set_up(value: u32) {
    INITIALIZED.store(value, std::sync::atomic::Ordering::SeqCst);
}

#[quadriga::task]
fn read_state() -> u32 {
    INITIALIZED.load(std::sync::atomic::Ordering::SeqCst)
}

#[quadriga::task]
fn broken_setup() {
    panic!("cannot load the model");
}

#[test]
fn initializer_runs_once_per_worker_before_tasks() {
    let p = ProcessPool::builder()
        .workers(2)
        .initializer(set_up, 77)
        .build()
        .unwrap();
    let got: Vec<u32> = (0..6)
        .map(|_| p.submit(read_state, ()).join().unwrap())
        .collect();
    assert!(got.iter().all(|&v| v == 77), "{got:?}");
}

#[test]
fn a_failing_initializer_fails_tasks_with_its_error_instead_of_looping() {
    let p = ProcessPool::builder()
        .workers(1)
        .initializer(broken_setup, ())
        .build()
        .unwrap();
    let err = p.submit(add_one, 1).join().unwrap_err();
    assert!(err.is_crashed(), "{err}");
    assert!(err.message().contains("cannot load the model"), "{err}");
}

#[test]
fn map_isolates_a_crashing_item_in_a_chunk() {
    let p = pool();
    let inputs: Vec<String> = (0..200)
        .map(|i| {
            if i == 137 {
                "segfault".to_string()
            } else {
                "ok".repeat(i % 5)
            }
        })
        .collect();
    let results: Vec<_> = p.map(fault, inputs.clone()).collect();
    assert_eq!(results.len(), 200);
    for (i, r) in results.iter().enumerate() {
        if i == 137 {
            let err = r.as_ref().unwrap_err();
            assert!(err.is_crashed(), "{err}");
            assert_eq!(err.item(), Some(137));
        } else {
            assert_eq!(*r.as_ref().unwrap(), inputs[i].len() as u64, "item {i}");
        }
    }
}

#[test]
fn map_with_a_hang_and_a_segfault_delivers_everything_else() {
    let p = ProcessPool::builder()
        .workers(2)
        .timeout(Duration::from_millis(500))
        .grace(Duration::from_millis(100))
        .build()
        .unwrap();
    let inputs = ["a", "hang", "bb", "segfault", "ccc"].map(String::from);
    let results: Vec<_> = p.map(fault, inputs).collect();
    assert_eq!(*results[0].as_ref().unwrap(), 1);
    assert!(results[1].as_ref().unwrap_err().is_timed_out());
    assert_eq!(*results[2].as_ref().unwrap(), 2);
    assert!(results[3].as_ref().unwrap_err().is_crashed());
    assert_eq!(*results[4].as_ref().unwrap(), 3);
}

#[test]
fn shutdown_cancel_kills_running_and_drops_queued() {
    let p = ProcessPool::new(1).unwrap();
    let running = p.submit(nap, 60_000);
    let queued = p.submit(nap, 1);
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    p.shutdown(Shutdown::Cancel);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(running.join().unwrap_err().is_cancelled());
    assert!(queued.join().unwrap_err().is_cancelled());
    assert!(p.worker_pids().is_empty());
}

#[test]
fn process_join_kill_and_exit_status() {
    let p = Process::spawn(add_one, 1).unwrap();
    let child = p.pid();
    p.wait();
    assert_eq!(p.exit_code(), Some(0));
    assert_eq!(p.join().unwrap(), 2);
    assert_ne!(child, std::process::id());

    let p = Process::spawn(fault, "exit3".to_string()).unwrap();
    p.wait();
    assert_eq!(p.exit_code(), Some(3));
    assert!(p.join().unwrap_err().is_crashed());

    let p = Process::spawn(nap, 60_000).unwrap();
    assert!(!p.wait_timeout(Duration::from_millis(100)));
    p.kill();
    assert!(p.wait_timeout(Duration::from_secs(20)));
    assert_eq!(p.signal(), Some(9));
}

/// Reads all of standard input.
#[quadriga::task]
fn read_stdin() -> usize {
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).unwrap();
    buf.len()
}

/// The worker's socket arrives as its stdin; a task must never see it there.
#[test]
fn a_task_reading_stdin_sees_dev_null_not_the_protocol() {
    let p = ProcessPool::new(1).unwrap();
    assert_eq!(p.submit(read_stdin, ()).join().unwrap(), 0);
    assert_eq!(
        p.submit(add_one, 1).join().unwrap(),
        2,
        "the protocol survived"
    );
}

#[test]
fn dropping_an_abort_on_drop_handle_kills_the_running_worker() {
    let p = ProcessPool::new(1).unwrap();
    let first = p.submit(pid, ()).join().unwrap();
    let guard = p.submit(nap, 60_000).abort_on_drop();
    std::thread::sleep(Duration::from_millis(200));
    drop(guard);
    let second = p.submit(pid, ()).join().unwrap();
    assert_ne!(
        first, second,
        "the worker running the dropped task was replaced"
    );
    assert!(
        gone_within(first, Duration::from_secs(20)),
        "worker {first} still runs the dropped task"
    );
}
