//! `Process`: start one task in its own process and join it, like Python's
//! `multiprocessing.Process(target=print_numbers).start()` and `.join()`.
//!
//! ```text
//! $ cargo run -p quadriga --example process
//! worker 4242: 1
//! ...
//! worker 4242: 5
//! process 4242 exited with code 0; it printed 5 numbers
//! ```

use quadriga::Process;

/// Prints the numbers 1 to `n` from the worker process.
#[quadriga::task]
fn print_numbers(n: u32) -> u32 {
    for i in 1..=n {
        println!("worker {}: {i}", std::process::id());
    }
    n
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    quadriga::init();
    let p = Process::spawn(print_numbers, 5)?;
    let pid = p.pid();
    p.wait();
    let code = p.exit_code();
    let printed = p.join()?;
    println!(
        "process {pid} exited with code {}; it printed {printed} numbers",
        code.map_or("?".to_string(), |c| c.to_string())
    );
    Ok(())
}
