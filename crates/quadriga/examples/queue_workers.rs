//! Queue workers: four processes take the items 0..10 from one shared queue,
//! the classic `multiprocessing` example
//!
//! ```python
//! def worker(q):
//!     while (item := q.get()) is not None:
//!         print(f"Processing {item}")
//!
//! q = Queue()
//! workers = [Process(target=worker, args=(q,)) for _ in range(4)]
//! for w in workers: w.start()
//! for i in range(10): q.put(i)
//! for w in workers: q.put(None)
//! for w in workers: w.join()
//! ```
//!
//! Instead of one `None` per worker, the queue is closed: a worker's `get`
//! takes what is left, then fails with `Closed`. Each item is processed
//! exactly once, by whichever worker got it first:
//!
//! ```text
//! $ cargo run -p quadriga --example queue_workers
//! Processing 0
//! Processing 1
//! ...
//! Processing 9
//! 4 workers processed 10 items
//! ```

use quadriga::Process;
use quadriga::ipc::Queue;

/// Takes items until the queue is closed and empty; returns how many it took.
#[quadriga::task]
fn worker(q: Queue<u32>) -> u32 {
    let mut n = 0;
    while let Ok(item) = q.get() {
        println!("Processing {item}");
        n += 1;
    }
    n
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    quadriga::init();
    let q = Queue::new(16)?;
    let workers = (0..4)
        .map(|_| Process::spawn(worker, q.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    for i in 0..10 {
        q.put(i)?;
    }
    q.close();
    let mut processed = 0;
    for w in workers {
        processed += w.join()?;
    }
    println!("4 workers processed {processed} items");
    Ok(())
}
