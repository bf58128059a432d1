//! Squares on a cluster: `cargo run --example cluster_squares --features
//! cluster -- redis://127.0.0.1:6379/`.
//!
//! It starts two workers from its own binary (re-executed with
//! `QUADRIGA_CLUSTER_WORKER` set, which `quadriga::init()` turns into a
//! worker), maps `square` over 1..=10000 through the broker, prints the sum
//! and stops its workers. On other hosts, the same binary started with that
//! variable would serve the queue just the same.

use std::process::{Child, Command};

use quadriga::cluster::{ClusterPool, WORKER_URL_ENV};

#[quadriga::task]
fn square(x: u64) -> u64 {
    x * x
}

/// The worker processes, stopped (SIGKILL) and reaped when dropped.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In a worker process this serves the queue and never returns.
    quadriga::init();

    let url = std::env::args()
        .nth(1)
        .ok_or("usage: cluster_squares redis://host:port/")?;
    let queue = format!("cluster_squares-{}", std::process::id());
    let exe = std::env::current_exe()?;
    let workers = Workers(
        (0..2)
            .map(|_| {
                Command::new(&exe)
                    .env(WORKER_URL_ENV, &url)
                    .env("QUADRIGA_CLUSTER_QUEUE", &queue)
                    .env("QUADRIGA_CLUSTER_CONCURRENCY", "2")
                    .spawn()
            })
            .collect::<Result<_, _>>()?,
    );

    // The one line that differs from a local pool: `ProcessPool::new(4)?`.
    let pool = ClusterPool::builder(&url).queue(&queue).build()?;
    let mut sum = 0u64;
    for result in pool.map(square, 1..=10_000) {
        sum += result?;
    }
    drop(pool);
    drop(workers);
    println!("sum of squares of 1..=10000 = {sum}");
    Ok(())
}
