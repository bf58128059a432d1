//! Crash isolation: a map where one input segfaults and one hangs past its
//! time limit. Every other result arrives; the two failures are reported with
//! their kinds, and the pool carries on with fresh workers.
//!
//! ```text
//! $ cargo run -p quadriga --example crash_isolation
//! parse("12") = 144
//! parse("segfault") failed: crashed: worker 4242 was killed by signal 11 (SIGSEGV)
//! parse("hang") failed: timed out: ran past its time limit of 1s; ...
//! ...
//! ```

use std::time::Duration;

use quadriga::ProcessPool;

/// Squares the number in `input`; some inputs misbehave the way native code can.
#[quadriga::task]
fn parse(input: String) -> Result<u64, std::num::ParseIntError> {
    match input.as_str() {
        "segfault" => {
            // SAFETY: deliberately invalid, to show a crash is contained.
            unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
            Ok(0)
        }
        "hang" => loop {
            std::thread::sleep(Duration::from_millis(100));
        },
        n => n.parse::<u64>().map(|n| n * n),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    quadriga::init();
    let pool = ProcessPool::builder()
        .workers(2)
        .timeout(Duration::from_secs(1))
        .build()?;
    let inputs = ["12", "segfault", "7", "hang", "x", "3"].map(String::from);
    for (input, result) in inputs.iter().zip(pool.map(parse, inputs.clone())) {
        match result {
            Ok(v) => println!("parse({input:?}) = {v}"),
            Err(e) => println!("parse({input:?}) failed: {}: {}", e.kind(), e.message()),
        }
    }
    Ok(())
}
