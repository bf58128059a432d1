//! What a job executes, and how it is started.
//!
//! A job is a [`quadriga::child`]: the leader of its own process group, with a
//! pidfd, reaped with its resource usage. This file adds what is the
//! command's own: argv executed directly or a script for `$PARALLEL_SHELL`,
//! `/dev/null` as stdin, and the `PARALLEL_*` variables.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use quadriga::child::{self, Child};

/// What to execute.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Program<'a> {
    /// argv, executed directly.
    Direct(&'a [Vec<u8>]),
    /// A command line for `shell -c`.
    Shell { shell: &'a OsStr, script: &'a [u8] },
}

/// Starts one job. `capture`: give it pipes for stdout and stderr (else it
/// shares the runner's). `env`: extra variables.
#[cfg(test)]
pub(crate) fn spawn(
    program: Program<'_>,
    capture: bool,
    env: &[(&str, &str)],
) -> io::Result<Child> {
    spawn_with_stdin(program, capture, env, None)
}

/// [`spawn`], with `stdin` (a pipe's read end, for `--pipe`) instead of
/// `/dev/null` if given.
pub(crate) fn spawn_with_stdin(
    program: Program<'_>,
    capture: bool,
    env: &[(&str, &str)],
    stdin: Option<std::os::fd::OwnedFd>,
) -> io::Result<Child> {
    let mut cmd = match program {
        Program::Direct(argv) => {
            let (first, rest) = argv
                .split_first()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
            let mut cmd = Command::new(OsStr::from_bytes(first));
            cmd.args(rest.iter().map(|a| OsStr::from_bytes(a)));
            cmd
        }
        Program::Shell { shell, script } => {
            let mut cmd = Command::new(shell);
            cmd.arg("-c").arg(OsStr::from_bytes(script));
            cmd
        }
    };
    match stdin {
        Some(fd) => cmd.stdin(Stdio::from(fd)),
        None => cmd.stdin(dev_null()?),
    };
    for (k, v) in env {
        cmd.env(k, v);
    }
    child::spawn(cmd, capture)
}

/// `/dev/null` for a job's stdin: opened once, duplicated per job (cheaper
/// than `Stdio::null()`, which opens it by path every time).
fn dev_null() -> io::Result<Stdio> {
    static DEV_NULL: OnceLock<Option<File>> = OnceLock::new();
    match DEV_NULL.get_or_init(|| File::open("/dev/null").ok()) {
        Some(f) => Ok(Stdio::from(f.try_clone()?)),
        None => Ok(Stdio::null()),
    }
}

/// The shell for commands that need one: `$PARALLEL_SHELL`, else `/bin/sh`.
pub(crate) fn shell() -> OsString {
    std::env::var_os("PARALLEL_SHELL")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| OsString::from_vec(b"/bin/sh".to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &[&str]) -> Vec<Vec<u8>> {
        s.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn direct_and_shell_programs_run_with_the_variables() {
        let argv = bytes(&["sh", "-c", "exit $PARALLEL_SEQ"]);
        let c = spawn(Program::Direct(&argv), false, &[("PARALLEL_SEQ", "7")]).unwrap();
        let exit = child::reap(&c.pidfd, true).unwrap().unwrap();
        assert_eq!(exit.code, Some(7));
        let c = spawn(
            Program::Shell {
                shell: OsStr::new("/bin/sh"),
                script: b"read x; exit $?",
            },
            true,
            &[],
        )
        .unwrap();
        // stdin is /dev/null: `read` meets end of file.
        let exit = child::reap(&c.pidfd, true).unwrap().unwrap();
        assert_eq!(exit.code, Some(1));
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let argv = bytes(&["/nonexistent/program"]);
        let err = spawn(Program::Direct(&argv), false, &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let empty: Vec<Vec<u8>> = Vec::new();
        let err = spawn(Program::Direct(&empty), false, &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
