//! Python peers that need packages from PyPI (Celery, Dask, Polars, loky…):
//! one virtualenv, made by the bench command on first use and reused after,
//! so nothing is installed into the machine's Python and nothing of it reaches
//! CI (the test command never runs a bench).
//!
//! A peer asks for the packages it needs with [`python_with`]; a package that
//! will not install makes that peer, and only that peer, skipped with the
//! reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A package a peer needs: what `pip install` is given, and what Python
/// imports to check it is there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Package {
    /// The requirement, e.g. `"dask[distributed]"` or `"celery==5.4.0"`.
    pub(crate) pip: &'static str,
    /// The module to import, e.g. `"distributed"`.
    pub(crate) import: &'static str,
}

impl Package {
    /// A package whose module has the package's name.
    pub(crate) const fn named(name: &'static str) -> Self {
        Package {
            pip: name,
            import: name,
        }
    }
}

/// Where the virtualenv lives: `QUADRIGA_BENCH_VENV`, or `target/bench-venv`
/// in the workspace.
fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("QUADRIGA_BENCH_VENV") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-venv")
}

/// The virtualenv's interpreter, with every one of `packages` importable:
/// makes the virtualenv from `base` (the `--python` option) if it is missing,
/// and installs what is missing. `Err` says why not (no Python, no venv
/// module, a package that would not install): the caller skips its peer with
/// that reason.
pub(crate) fn python_with(base: &str, packages: &[Package]) -> Result<PathBuf, String> {
    let dir = dir();
    let python = dir.join("bin").join("python");
    if !python.is_file() {
        eprintln!(
            "  … making a virtualenv for Python peers in {}",
            dir.display()
        );
        run(Command::new(base).args(["-m", "venv"]).arg(&dir))
            .map_err(|e| format!("could not make a virtualenv with `{base}`: {e}"))?;
    }
    let missing: Vec<&Package> = packages
        .iter()
        .filter(|p| !imports(&python, p.import))
        .collect();
    for p in missing {
        eprintln!("  … pip install {} (into {})", p.pip, dir.display());
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            p.pip,
        ]))
        .map_err(|e| format!("`pip install {}` failed: {e}", p.pip))?;
        if !imports(&python, p.import) {
            return Err(format!(
                "`{}` installed but `import {}` fails",
                p.pip, p.import
            ));
        }
    }
    Ok(python)
}

/// Whether `python` can import `module`.
fn imports(python: &Path, module: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd`, its output kept; `Err` with the last line it printed on failure.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    Err(format!(
        "{} ({})",
        out.status,
        last.unwrap_or("no message").trim()
    ))
}
