//! The classic first example: square the numbers 1 to 5 in parallel.
//!
//! ```text
//! $ cargo run -p quadriga --example squares
//! [1, 4, 9, 16, 25]
//! $ cargo run -p quadriga --example squares -- --processes
//! [1, 4, 9, 16, 25]
//! ```
//!
//! With `--processes` the same task runs in worker processes: the only change
//! is which pool is built.

use quadriga::{Executor, ProcessPool, ThreadPool};

/// Squares a number. `#[quadriga::task]` makes it a task with a stable name.
#[quadriga::task]
fn square(x: u64) -> u64 {
    x * x
}

fn squares(pool: &impl Executor) -> Result<Vec<u64>, quadriga::TaskError> {
    pool.map(square, 1..=5).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    quadriga::init();
    let result = if std::env::args().any(|a| a == "--processes") {
        squares(&ProcessPool::new(4)?)?
    } else {
        squares(&ThreadPool::new(4)?)?
    };
    println!("{result:?}");
    Ok(())
}
