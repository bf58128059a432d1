//! A shared counter: four processes add to one `Value` under one `Lock`, the
//! classic `multiprocessing` example
//!
//! ```python
//! def add(counter, lock, times):
//!     for _ in range(times):
//!         with lock:
//!             counter.value += 1
//! ```
//!
//! and, because the read-add-write is under the lock, no increment is lost.
//!
//! ```text
//! $ cargo run -p quadriga --example shared_counter
//! 4 processes × 10000 increments: counter = 40000
//! ```

use quadriga::Process;
use quadriga::ipc::Value;
use quadriga::sync::Lock;

const PROCESSES: u32 = 4;
const TIMES: u64 = 10_000;

/// Adds 1 to `counter`, `times` times, each under `lock`; returns its pid.
#[quadriga::task]
fn add(counter: Value<u64>, lock: Lock, times: u64) -> u32 {
    for _ in 0..times {
        // A holder that died would leave the counter whole (a set is one
        // write), so its report needs no repair here.
        let _held = lock.lock().unwrap_or_else(|died| died.into_inner());
        counter.set(counter.get() + 1);
    }
    std::process::id()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    quadriga::init();
    let counter = Value::new(0_u64)?;
    let lock = Lock::new()?;
    let processes = (0..PROCESSES)
        .map(|_| Process::spawn(add, (counter.clone(), lock.clone(), TIMES)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut pids = Vec::new();
    for p in processes {
        pids.push(p.join()?);
    }
    pids.sort_unstable();
    pids.dedup();
    println!(
        "{} processes × {TIMES} increments: counter = {}",
        pids.len(),
        counter.get()
    );
    Ok(())
}
