//! The programs the `run` suite needs: the `quadriga` binary to measure, and
//! the peers and workloads from the system (GNU parallel, curl), installed
//! with `apt-get` when missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::suites::progress;

/// The `quadriga` binary to measure: `given` if there is one; otherwise the
/// one beside this binary, built first with `cargo build -p quadriga-cli`
/// (same profile, same target directory) when cargo is at hand, as it is
/// under `cargo run`.
pub(super) fn quadriga_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        if !path.is_file() {
            bail!("--quadriga {}: no such file", path.display());
        }
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe().context("locating this binary")?;
    let dir = exe.parent().context("this binary has no directory")?;
    let binary = dir.join("quadriga");
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    // `target/<profile>/quadriga-bench`: build into the same place. A layout
    // that is not this one (a `--target` triple, a copied binary) is left as
    // it is.
    let target_dir = dir
        .parent()
        .filter(|_| dir.file_name().is_some_and(|n| n == profile));
    match (std::env::var_os("CARGO"), target_dir) {
        (Some(cargo), Some(target_dir)) => {
            progress("building quadriga-cli");
            let mut build = Command::new(cargo);
            build.args(["build", "--quiet", "-p", "quadriga-cli", "--target-dir"]);
            build.arg(target_dir);
            if profile == "release" {
                build.arg("--release");
            }
            let status = build
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .context("running cargo build -p quadriga-cli")?;
            if !status.success() {
                bail!("cargo build -p quadriga-cli failed: {status}");
            }
        }
        _ => progress("not under cargo: measuring the quadriga binary as it is"),
    }
    if !binary.is_file() {
        bail!(
            "{} not found: build it (cargo build --release -p quadriga-cli) or give --quadriga PATH",
            binary.display()
        );
    }
    Ok(binary)
}

/// Whether `program args` runs and succeeds, its output discarded.
pub(super) fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The first line `program --version` prints, if it runs.
pub(super) fn version(program: &str) -> Option<String> {
    let out = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_owned())
}

/// Makes sure GNU parallel (not moreutils' `parallel`, which has another
/// syntax) is on `PATH`, installing Debian's `parallel` package if it is
/// not. `Err` says why it is not there.
pub(super) fn gnu_parallel() -> Result<String, String> {
    let is_gnu = || version("parallel").filter(|v| v.starts_with("GNU parallel"));
    if let Some(v) = is_gnu() {
        return Ok(v);
    }
    apt_install("parallel")?;
    is_gnu().ok_or_else(|| "`parallel` on PATH is not GNU parallel".to_owned())
}

/// Makes sure curl is on `PATH`, installing it if it is not.
pub(super) fn curl() -> Result<(), String> {
    if runs("curl", &["--version"]) {
        return Ok(());
    }
    apt_install("curl")?;
    if runs("curl", &["--version"]) {
        Ok(())
    } else {
        Err("curl is not on PATH after installing it".to_owned())
    }
}

/// `apt-get install -y PACKAGE` (through `sudo` unless root), once more
/// after `apt-get update` if the first try fails.
fn apt_install(package: &str) -> Result<(), String> {
    progress(&format!("installing {package} with apt-get"));
    let root = output("id", &["-u"]).is_some_and(|u| u == "0");
    let apt = |args: &[&str]| {
        let (program, mut all) = if root {
            ("apt-get", Vec::new())
        } else {
            ("sudo", vec!["-n", "apt-get"])
        };
        all.extend_from_slice(args);
        // apt's chatter goes to stderr: stdout carries only the results.
        Command::new(program)
            .args(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if apt(&["install", "-y", "-q", package])
        || (apt(&["update", "-q"]) && apt(&["install", "-y", "-q", package]))
    {
        Ok(())
    } else {
        Err(format!(
            "`{package}` is missing and apt-get could not install it"
        ))
    }
}

/// A command's trimmed stdout, if it ran and succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
