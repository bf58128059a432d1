//! What a job executes, and how it is started.
//!
//! A job is a [`quadriga::child`]: the leader of its own process group, with a
//! pidfd, reaped with its resource usage. This file adds what is the
//! command's own: argv executed directly or a script for `$PARALLEL_SHELL`,
//! `/dev/null` as stdin, and the `PARALLEL_*` variables; and the run's
//! [`JobSetup`] (`--workdir`, `--files`, `--nice`), set once before the
//! first job.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use quadriga::child::{self, Child};

use crate::template::quote_into;

/// `--workdir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Workdir {
    /// Every job runs in this directory.
    Dir(PathBuf),
    /// `...`: each job in a new directory of its own under `--tmpdir`,
    /// removed by the job's shell when the command ends (or by [`cleanup`]).
    PerJob(PathBuf),
}

/// How every job of the run is started, beyond its command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JobSetup {
    pub(crate) workdir: Option<Workdir>,
    /// `--files`: stdout goes to a new file in this directory, whose name
    /// the job prints instead.
    pub(crate) files: Option<PathBuf>,
    /// `--nice`.
    pub(crate) nice: Option<i32>,
}

fn temp_root() -> PathBuf {
    std::env::var_os("TMPDIR")
        .filter(|t| !t.is_empty())
        .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
}

impl JobSetup {
    /// Checks the options: `--workdir`, `--files`, `--tmpdir` (where
    /// `--files` and `--wd ...` make theirs; default `$TMPDIR`, else
    /// `/tmp`), `--nice`.
    pub(crate) fn new(
        workdir: Option<&OsStr>,
        files: bool,
        tmpdir: Option<PathBuf>,
        nice: Option<i32>,
    ) -> Result<Self, String> {
        if let Some(t) = &tmpdir
            && !t.is_dir()
        {
            return Err(format!("--tmpdir {}: not a directory", t.display()));
        }
        let tmpdir = tmpdir.unwrap_or_else(temp_root);
        let workdir = match workdir {
            None => None,
            Some(w) if w.as_bytes() == b"..." => Some(Workdir::PerJob(tmpdir.clone())),
            Some(w) => {
                let p = PathBuf::from(w);
                if !p.is_dir() {
                    return Err(format!("--workdir {}: not a directory", p.display()));
                }
                Some(Workdir::Dir(p))
            }
        };
        let files = files.then_some(tmpdir);
        if let Some(n) = nice
            && !(-20..=19).contains(&n)
        {
            return Err(format!("--nice {n}: must be from -20 to 19"));
        }
        Ok(JobSetup {
            workdir,
            files,
            nice,
        })
    }

    /// Makes this the run's setup; `--nice` is taken on by the runner now,
    /// and its jobs inherit it.
    pub(crate) fn install(self) {
        if let Some(n) = self.nice
            && let Err(e) = rustix::process::setpriority_process(None, n)
        {
            eprintln!("quadriga: warning: --nice {n}: {e}");
        }
        let _ = SETUP.set(self);
    }
}

static SETUP: OnceLock<JobSetup> = OnceLock::new();

/// The `--wd ...` directories made so far: what a killed job's shell did not
/// remove, [`cleanup`] does.
static JOB_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes the `--wd ...` directories that are still there (their jobs were
/// killed before their shell could). Called when the run ends.
pub(crate) fn cleanup() {
    let dirs = std::mem::take(&mut *JOB_DIRS.lock().unwrap_or_else(|e| e.into_inner()));
    for d in dirs {
        if d.exists() {
            let _ = std::fs::remove_dir_all(&d);
        }
    }
}

/// A new file or directory under `dir` that nobody else has: `prefix`, the
/// job's number, and random letters.
fn fresh(dir: &Path, prefix: &str, seq: &str, make_dir: bool) -> io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    loop {
        let tag: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(8)
            .collect();
        let p = dir.join(format!("{prefix}{seq}-{tag}"));
        let made = if make_dir {
            std::fs::DirBuilder::new().mode(0o700).create(&p)
        } else {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&p)
                .map(drop)
        };
        match made {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The job's command as shell text, wrapped for `--files` and
/// `--workdir ...`.
fn wrap(program: Program<'_>, setup: &JobSetup, seq: &str) -> io::Result<Option<Vec<u8>>> {
    let per_job = match &setup.workdir {
        Some(Workdir::PerJob(root)) => {
            let d = fresh(root, "quadriga-wd-", seq, true)?;
            JOB_DIRS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(d.clone());
            Some(d)
        }
        _ => None,
    };
    if setup.files.is_none() && per_job.is_none() {
        return Ok(None);
    }
    let mut script = Vec::new();
    if let Some(d) = &per_job {
        script.extend_from_slice(b"cd ");
        quote_into(d.as_os_str().as_bytes(), &mut script);
        script.extend_from_slice(b" || exit 1\n");
    }
    script.extend_from_slice(b"(");
    match program {
        Program::Direct(argv) => {
            for (i, a) in argv.iter().enumerate() {
                if i > 0 {
                    script.push(b' ');
                }
                quote_into(a, &mut script);
            }
        }
        Program::Shell { script: s, .. } => script.extend_from_slice(s),
    }
    script.extend_from_slice(b"\n)");
    let file = match &setup.files {
        Some(dir) => {
            let f = fresh(dir, "quadriga-", seq, false)?;
            let mut quoted = Vec::new();
            quote_into(f.as_os_str().as_bytes(), &mut quoted);
            script.extend_from_slice(b" >");
            script.extend_from_slice(&quoted);
            Some(quoted)
        }
        None => None,
    };
    script.extend_from_slice(b"\ns=$?\n");
    if let Some(d) = &per_job {
        script.extend_from_slice(b"cd / && rm -rf -- ");
        quote_into(d.as_os_str().as_bytes(), &mut script);
        script.push(b'\n');
    }
    if let Some(q) = file {
        script.extend_from_slice(b"printf '%s\\n' ");
        script.extend_from_slice(&q);
        script.push(b'\n');
    }
    script.extend_from_slice(b"exit $s\n");
    Ok(Some(script))
}

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
    let setup = SETUP.get();
    let seq = env
        .iter()
        .find(|(k, _)| *k == "PARALLEL_SEQ")
        .map_or("0", |(_, v)| *v);
    let wrapped = match setup {
        Some(s) => wrap(program, s, seq)?,
        None => None,
    };
    let default_shell;
    let program = match &wrapped {
        Some(script) => {
            default_shell = shell();
            let shell = match program {
                Program::Shell { shell, .. } => shell,
                Program::Direct(_) => &default_shell,
            };
            Program::Shell { shell, script }
        }
        None => program,
    };
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
    let stdin = match stdin {
        Some(fd) => Some(fd),
        None => crate::tee::job_stdin()?,
    };
    match stdin {
        Some(fd) => cmd.stdin(Stdio::from(fd)),
        None => cmd.stdin(dev_null()?),
    };
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(JobSetup {
        workdir: Some(Workdir::Dir(d)),
        ..
    }) = setup
    {
        cmd.current_dir(d);
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
    fn wrapping_for_files_and_per_job_directories() {
        let dir = std::env::temp_dir().join(format!("quadriga-wrap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let setup = JobSetup {
            workdir: Some(Workdir::PerJob(dir.clone())),
            files: Some(dir.clone()),
            nice: None,
        };
        let argv = bytes(&["sh", "-c", "pwd; exit 3"]);
        let script = wrap(Program::Direct(&argv), &setup, "5").unwrap().unwrap();
        let c = spawn(
            Program::Shell {
                shell: OsStr::new("/bin/sh"),
                script: &script,
            },
            true,
            &[],
        )
        .unwrap();
        let exit = child::reap(&c.pidfd, true).unwrap().unwrap();
        assert_eq!(exit.code, Some(3), "the command's status");
        let mut out = String::new();
        use std::io::Read;
        File::from(c.stdout.unwrap())
            .read_to_string(&mut out)
            .unwrap();
        // The file's name is printed; it holds the output: the job's own
        // directory, which is gone now.
        let name = out.trim_end();
        assert!(name.starts_with(dir.to_str().unwrap()), "{out:?}");
        let content = std::fs::read_to_string(name).unwrap();
        assert!(content.contains("quadriga-wd-5-"), "{content:?}");
        assert!(!Path::new(content.trim_end()).exists());
        std::fs::remove_dir_all(&dir).unwrap();
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
