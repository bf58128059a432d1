//! The classic first example: square the numbers 1 to 5 in parallel.
//!
//! ```text
//! $ cargo run -p quadriga --example squares
//! [1, 4, 9, 16, 25]
//! ```

use quadriga::ThreadPool;

/// Squares a number. `#[quadriga::task]` makes it a task with a stable name.
#[quadriga::task]
fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    quadriga::init();
    let pool = ThreadPool::new(4)?;
    let squares: Vec<u64> = pool.map(square, 1..=5).collect::<Result<_, _>>()?;
    println!("{squares:?}");
    Ok(())
}
