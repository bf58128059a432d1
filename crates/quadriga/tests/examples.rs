//! The examples print what they should. Cargo builds examples before it runs
//! integration tests, next to this test's own binary.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/examples-<hash>  →  target/<profile>/examples/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "example not built: {}", path.display());
    path
}

#[test]
fn squares_prints_the_squares() {
    let out = Command::new(example("squares")).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[1, 4, 9, 16, 25]\n");
}

#[test]
fn downloads_overlap() {
    let started = Instant::now();
    let out = Command::new(example("downloads"))
        .env("QUADRIGA_DOWNLOAD_SECS", "1")
        .output()
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for file in ["report.pdf", "photo.jpg", "data.csv"] {
        assert!(
            stdout.contains(&format!("Downloading {file}...")),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("Finished {file}")), "{stdout}");
    }
    // The three "Downloading" lines come before any "Finished": they overlap.
    let last_start = stdout.rfind("Downloading").unwrap();
    let first_finish = stdout.find("Finished").unwrap();
    assert!(
        last_start < first_finish,
        "downloads did not overlap:\n{stdout}"
    );
    assert!(stdout.contains("All 3 downloads done in"), "{stdout}");
    // Sequential would take 3 s; a generous bound that still tells them apart.
    assert!(wall < 2.9, "took {wall:.2} s");
}
