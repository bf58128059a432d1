//! Chaos on a cluster: `cargo run --example cluster_chaos --features cluster
//! -- redis://127.0.0.1:6379/`.
//!
//! It starts three workers from its own binary, submits 5,000 tasks (one in
//! fifty takes 200 ms) and, while they run, SIGKILLs a random worker every
//! few hundred milliseconds and starts a fresh one in its place, and once
//! SIGSTOPs a worker for longer than its lease before SIGCONTing it. At the
//! end it reconciles every task's outcome against the expected value and asks
//! the broker how many runs were duplicates (a task run again because its
//! worker was lost), then prints, as its last line:
//!
//! ```text
//! 5000 tasks: 5000 outcomes, 0 lost, N duplicate runs
//! ```
//!
//! `QUADRIGA_CHAOS_TASKS` sets another number of tasks (the test suite uses
//! the full 5,000; a smaller number gives a quicker run).

use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quadriga::TaskErrorKind;
use quadriga::cluster::{ClusterPool, WORKER_URL_ENV};
use rustix::process::{Pid, Signal, kill_process};

const WORKERS: usize = 3;
const LEASE_MS: u64 = 1000;
/// Enough retries on worker loss that kills every few hundred milliseconds
/// do not exhaust them: a task is lost only if it is killed this many times.
const RETRIES: u32 = 20;

/// `x * x`, after `ms` milliseconds.
#[quadriga::task]
fn slow_square(x: u64, ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    x * x
}

/// The worker processes, killed (SIGKILL) and reaped when dropped.
struct Workers {
    exe: std::path::PathBuf,
    url: String,
    queue: String,
    children: Vec<Child>,
}

impl Workers {
    fn spawn(&self) -> std::io::Result<Child> {
        Command::new(&self.exe)
            .env(WORKER_URL_ENV, &self.url)
            .env("QUADRIGA_CLUSTER_QUEUE", &self.queue)
            .env("QUADRIGA_CLUSTER_CONCURRENCY", "4")
            .env("QUADRIGA_CLUSTER_LEASE_MS", LEASE_MS.to_string())
            .env("QUADRIGA_CLUSTER_RETRIES", RETRIES.to_string())
            // Killed workers' reconnect notices would drown the output.
            .stderr(std::process::Stdio::null())
            .spawn()
    }

    fn replace(&mut self, i: usize) -> std::io::Result<()> {
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
        self.children[i] = self.spawn()?;
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A small xorshift generator, seeded from the clock.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn signal(pid: u32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pid as i32) {
        let _ = kill_process(pid, sig);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In a worker process this serves the queue and never returns.
    quadriga::init();

    let url = std::env::args()
        .nth(1)
        .ok_or("usage: cluster_chaos redis://host:port/")?;
    let tasks: u64 = match std::env::var("QUADRIGA_CHAOS_TASKS") {
        Ok(n) => n.parse()?,
        Err(_) => 5000,
    };
    let queue = format!("cluster_chaos-{}", std::process::id());
    let mut workers = Workers {
        exe: std::env::current_exe()?,
        url: url.clone(),
        queue: queue.clone(),
        children: Vec::new(),
    };
    for _ in 0..WORKERS {
        let child = workers.spawn()?;
        workers.children.push(child);
    }
    let workers = Arc::new(Mutex::new(workers));

    let pool = ClusterPool::builder(&url)
        .queue(&queue)
        .lease(Duration::from_millis(LEASE_MS))
        .retries_on_worker_loss(RETRIES)
        .build()?;

    // The chaos: a random worker SIGKILLed and replaced every 200-500 ms;
    // once, a worker SIGSTOPped for 2.5 leases, then SIGCONTed.
    let over = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (workers, over) = (Arc::clone(&workers), Arc::clone(&over));
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64;
        let mut rng = Rng(seed | 1);
        std::thread::spawn(move || -> std::io::Result<(u32, u32)> {
            let (mut kills, mut stops) = (0, 0);
            let mut stopped: Option<(usize, u32, Instant)> = None;
            let started = Instant::now();
            while !over.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(200 + rng.below(300)));
                let mut w = workers.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((_, pid, since)) = stopped
                    && since.elapsed() > Duration::from_millis(LEASE_MS * 5 / 2)
                {
                    signal(pid, Signal::CONT);
                    stopped = None;
                }
                if stops == 0 && started.elapsed() > Duration::from_secs(1) {
                    let i = rng.below(WORKERS as u64) as usize;
                    let pid = w.children[i].id();
                    signal(pid, Signal::STOP);
                    stopped = Some((i, pid, Instant::now()));
                    stops += 1;
                    continue;
                }
                let i = rng.below(WORKERS as u64) as usize;
                if stopped.is_some_and(|(s, _, _)| s == i) {
                    continue; // it is SIGCONTed, not killed
                }
                w.replace(i)?;
                kills += 1;
            }
            if let Some((_, pid, _)) = stopped {
                signal(pid, Signal::CONT);
            }
            Ok((kills, stops))
        })
    };

    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|x| {
            let ms = if x % 50 == 7 { 200 } else { 0 };
            pool.submit(slow_square, (x, ms))
        })
        .collect();

    // Reconcile: each handle resolves exactly once, with the right value, or
    // as lost (a dead letter, after the retries on worker loss).
    let (mut outcomes, mut lost) = (0u64, 0u64);
    for (x, handle) in (0..tasks).zip(handles) {
        match handle.join() {
            Ok(v) if v == x * x => outcomes += 1,
            Ok(v) => return Err(format!("task {x}: got {v}, want {}", x * x).into()),
            Err(e) if e.kind() == TaskErrorKind::Lost => lost += 1,
            Err(e) => return Err(format!("task {x}: {e}").into()),
        }
    }
    let elapsed = started.elapsed();
    over.store(true, Ordering::Release);
    let (kills, stops) = chaos.join().map_err(|_| "the chaos thread panicked")??;
    // Counted by the broker as each task completed: entries delivered again
    // after their worker was lost, times their items.
    let duplicates = pool.duplicate_runs()?;
    drop(pool);
    drop(workers);
    println!(
        "{kills} workers SIGKILLed and replaced, {stops} SIGSTOPped past its lease, in {:.1} s",
        elapsed.as_secs_f64()
    );
    println!("{tasks} tasks: {outcomes} outcomes, {lost} lost, {duplicates} duplicate runs");
    Ok(())
}
