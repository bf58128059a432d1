//! Three simulated downloads of 2 seconds each, on threads: they overlap, so
//! the whole takes about 2 seconds, not 6.
//!
//! ```text
//! $ cargo run -p quadriga --example downloads
//! Downloading report.pdf...
//! Downloading photo.jpg...
//! Downloading data.csv...
//! Finished report.pdf (2.00 s)
//! ...
//! All 3 downloads done in 2.00 s
//! ```
//!
//! `QUADRIGA_DOWNLOAD_SECS` changes the simulated time of each download.

use std::time::{Duration, Instant};

use quadriga::ThreadPool;

/// Pretends to download `name`: blocking I/O is what threads are for.
#[quadriga::task]
fn download(name: String, seconds: f64) -> String {
    println!("Downloading {name}...");
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    println!("Finished {name} ({:.2} s)", started.elapsed().as_secs_f64());
    name
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    quadriga::init();
    let seconds: f64 = match std::env::var("QUADRIGA_DOWNLOAD_SECS") {
        Ok(s) => s.parse()?,
        Err(_) => 2.0,
    };
    let files = ["report.pdf", "photo.jpg", "data.csv"];
    let pool = ThreadPool::new(files.len())?;

    let started = Instant::now();
    let handles: Vec<_> = files
        .iter()
        .map(|f| pool.submit(download, (f.to_string(), seconds)))
        .collect();
    for handle in handles {
        handle.join()?;
    }
    println!(
        "All {} downloads done in {:.2} s",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
