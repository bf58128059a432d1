//! A randomized stress test of the process pool, bounded in time: 2,000 tasks
//! with about 5% faults on 2 workers. Every healthy result must be right, every
//! fault must end with its own kind, and afterwards no child process, zombie,
//! process group or descriptor may be left. It is alone in this test binary so
//! that "no children at all" is a meaningful check.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use quadriga::{ProcessPool, TaskErrorKind};

/// `(value, worker pid)` for healthy inputs; misbehaves for the others.
#[quadriga::task]
fn work(input: (u64, u8)) -> (u64, u32) {
    let (value, fault) = input;
    match fault {
        1 => std::process::exit(7),
        2 => std::process::abort(),
        3 => panic!("planned panic {value}"),
        4 => loop {
            std::thread::sleep(Duration::from_millis(5));
        },
        _ => (value.wrapping_mul(value) ^ 0x5a5a, std::process::id()),
    }
}

fn fault_for(rng: &mut u64) -> u8 {
    // xorshift64*: deterministic, so a failure can be replayed.
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    let r = rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % 1000;
    match r {
        0..=14 => 1,  // 1.5% exit(7)
        15..=29 => 2, // 1.5% abort
        30..=47 => 3, // 1.8% panic
        48..=49 => 4, // 0.2% hang past the time limit
        _ => 0,
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn two_thousand_tasks_with_five_percent_faults() {
    let started = Instant::now();
    let fds_before = open_fds();
    let mut seen_workers = HashSet::new();
    let mut counts = [0_usize; 5];
    {
        let pool = ProcessPool::builder()
            .workers(2)
            // Generous: with RUST_BACKTRACE=1 a worker's first panic spends
            // ~150 ms loading symbols, and CI machines are shared.
            .timeout(Duration::from_secs(2))
            .grace(Duration::from_millis(50))
            .build()
            .unwrap();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let inputs: Vec<(u64, u8)> = (0..2000).map(|i| (i, fault_for(&mut rng))).collect();
        let handles: Vec<_> = inputs
            .iter()
            .map(|&input| pool.submit(work, input))
            .collect();
        for (&(value, fault), handle) in inputs.iter().zip(handles) {
            counts[fault as usize] += 1;
            match (fault, handle.join()) {
                (0, Ok((out, pid))) => {
                    assert_eq!(
                        out,
                        value.wrapping_mul(value) ^ 0x5a5a,
                        "wrong result for {value}"
                    );
                    seen_workers.insert(pid);
                }
                (1, Err(e)) => {
                    assert_eq!(e.kind(), TaskErrorKind::Crashed, "{e}");
                    assert_eq!(e.exit_code(), Some(7), "{e}");
                    seen_workers.insert(e.pid().unwrap());
                }
                (2, Err(e)) => {
                    assert_eq!(e.kind(), TaskErrorKind::Crashed, "{e}");
                    assert_eq!(e.signal(), Some(6), "{e}");
                    seen_workers.insert(e.pid().unwrap());
                }
                (3, Err(e)) => {
                    assert_eq!(e.kind(), TaskErrorKind::Panicked, "{e}");
                    assert_eq!(e.message(), format!("planned panic {value}"));
                }
                (4, Err(e)) => {
                    assert_eq!(e.kind(), TaskErrorKind::TimedOut, "{e}");
                    seen_workers.insert(e.pid().unwrap());
                }
                (fault, other) => panic!("input {value} with fault {fault} ended as {other:?}"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "stress test ran too long"
            );
        }
    } // the pool is dropped: it shuts down and reaps every worker
    assert!(
        counts[1] + counts[2] + counts[3] + counts[4] >= 60,
        "too few faults: {counts:?}"
    );
    assert!(
        seen_workers.len() > 2,
        "crashed workers were replaced: {seen_workers:?}"
    );

    // No child process is left, alive or zombie.
    match rustix::process::waitid(
        rustix::process::WaitId::All,
        rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOHANG,
    ) {
        Err(rustix::io::Errno::CHILD) => {}
        other => panic!("a child process is left behind: {other:?}"),
    }
    // No worker's process group survives (no orphaned grandchildren).
    for pid in &seen_workers {
        let group = rustix::process::Pid::from_raw(*pid as i32).unwrap();
        let alive = rustix::process::test_kill_process_group(group);
        assert!(alive.is_err(), "process group {pid} still exists");
    }
    // No descriptor leaked.
    assert_eq!(open_fds(), fds_before, "descriptors leaked");
    eprintln!(
        "stress: {counts:?} (healthy, exit, abort, panic, hang) in {:?}",
        started.elapsed()
    );
}
