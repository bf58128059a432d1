//! Peers outside Rust: scripts under `crates/quadriga-bench/peers/`, run as child
//! processes that time themselves and print one JSON object on stdout.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Command;

/// The path of a peer script shipped in `peers/`.
pub(crate) fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(name)
}

/// Runs `interpreter script args...` and parses its stdout as JSON.
///
/// `Err` carries why the peer could not be measured (interpreter missing,
/// script failed, bad output): the caller records the peer as skipped.
pub(crate) fn run_script(
    interpreter: &str,
    name: &str,
    args: &[String],
) -> Result<serde_json::Value, String> {
    let path = script(name);
    if !path.is_file() {
        return Err(format!("{} not found", path.display()));
    }
    let out = match Command::new(interpreter).arg(&path).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(format!("`{interpreter}` not found on PATH"));
        }
        Err(e) => return Err(format!("could not run `{interpreter}`: {e}")),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").trim();
        return Err(format!("{name} exited with {}: {last}", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).map_err(|e| format!("{name} printed no JSON ({e}): {last:?}"))
}
