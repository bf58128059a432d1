//! `--limit COMMAND`: GNU parallel's dynamic job limit. Before a job starts,
//! COMMAND runs (by the shell, stdout discarded) and its exit status says:
//! 0 start it; 1 start nothing now (asked again 100 ms later); 2 kill the
//! youngest job (it is run again later) and start nothing. Other statuses,
//! and a command that cannot run, count as 1. GNU's shorthands (`"mem N"`,
//! `"load N"`, `"io N"`) are not built in: `--memfree` and `--load` do the
//! first two.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

static COMMAND: OnceLock<Vec<u8>> = OnceLock::new();

/// Makes `command` the run's `--limit`.
pub(crate) fn install(command: Vec<u8>) {
    let _ = COMMAND.set(command);
}

/// Runs the `--limit` command, if there is one: its verdict, 0 to 2.
pub(crate) fn status() -> Option<i32> {
    let command = COMMAND.get()?;
    let status = Command::new(crate::program::shell())
        .arg("-c")
        .arg(OsStr::from_bytes(command))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
    Some(match status.map(|s| s.code()) {
        Ok(Some(0)) => 0,
        Ok(Some(2)) => 2,
        _ => 1,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn statuses() {
        // One global per process: each verdict through a file the command reads.
        let f = std::env::temp_dir().join(format!("quadriga-limit-{}", std::process::id()));
        super::install(format!("exit $(cat {})", f.display()).into_bytes());
        for (code, want) in [("0", 0), ("1", 1), ("2", 2), ("7", 1), ("", 0)] {
            std::fs::write(&f, code).unwrap();
            assert_eq!(super::status(), Some(want), "exit {code:?}");
        }
        std::fs::remove_file(&f).unwrap();
    }
}
