//! `quadriga sem`: GNU parallel's `sem`, a counting semaphore shared by the
//! commands one user starts from any shell.
//!
//! A semaphore is a directory, `$XDG_RUNTIME_DIR/quadriga/sem/ID` (else
//! `~/.quadriga/sem/ID`), made 0700 and refused if anyone else could reach
//! it. It holds one file per slot, `slot-0` ... `slot-N-1`; a slot is taken
//! by an exclusive `flock(2)` on its file. The kernel drops a lock when the
//! last descriptor of it closes, so a holder that dies, even by `kill -9`,
//! frees its slot: nothing is left to clean up. (This is why it is not
//! `quadriga::sync::Semaphore`, whose shared memory needs its holders to
//! release.)
//!
//! - `--fg`: runs the command here, holding the slot, and exits with its status.
//! - Otherwise the command starts in the background and `sem` returns at
//!   once: the command inherits the locked descriptor, so the slot is held
//!   until it (and whatever it started that kept the descriptor) ends.
//! - `--wait`: waits until every slot of the semaphore is free.
//! - `--semaphoretimeout S`: S > 0: after S seconds, run anyway; S < 0:
//!   after -S seconds, give up (status 1).

use std::ffi::OsString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

/// Examples for `quadriga sem --help`.
pub(crate) const AFTER_HELP: &str = "Examples:\n  \
for f in *.log; do quadriga sem -j 4 gzip \"$f\"; done; quadriga sem --wait\n  \
quadriga sem --fg --id db ./migrate.sh    # one at a time, across shells";

/// `quadriga sem [OPTIONS] COMMAND...`
#[derive(Debug, Args)]
pub(crate) struct SemArgs {
    /// Slots: N, N%, +N or -N of the cores (default 1: one at a time).
    #[arg(
        short = 'j',
        long = "jobs",
        default_value = "1",
        allow_hyphen_values = true,
        value_name = "N"
    )]
    pub(crate) jobs: String,

    /// The semaphore's name: commands with the same id share its slots.
    #[arg(long, default_value = "default")]
    pub(crate) id: String,

    /// Run the command in the foreground and exit with its status.
    #[arg(long)]
    pub(crate) fg: bool,

    /// Wait until every command of the semaphore has ended.
    #[arg(long)]
    pub(crate) wait: bool,

    /// S > 0: after S seconds without a slot, run anyway; S < 0: give up
    /// after -S seconds (status 1).
    #[arg(
        long = "semaphoretimeout",
        visible_alias = "st",
        value_name = "S",
        allow_hyphen_values = true
    )]
    pub(crate) timeout: Option<f64>,

    /// Accepted for compatibility with GNU parallel; ignored.
    #[arg(long, hide = true)]
    pub(crate) will_cite: bool,

    /// The command (words joined by spaces, run by the shell).
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub(crate) command: Vec<OsString>,
}

impl SemArgs {
    /// `quadriga run --semaphore ...`: the same request (`-j auto`, run's
    /// default, is sem's 1).
    pub(crate) fn from_run(run: &crate::args::RunArgs) -> Self {
        let e = &run.extra;
        SemArgs {
            jobs: if run.jobs == "auto" {
                "1".into()
            } else {
                run.jobs.clone()
            },
            id: e.id.clone().unwrap_or_else(|| "default".into()),
            fg: e.fg,
            wait: e.wait,
            timeout: e.semaphore_timeout,
            will_cite: false,
            command: run.command.clone(),
        }
    }
}

/// The directory of semaphore `id`: made 0700 if new, checked if not.
fn directory(id: &str) -> Result<PathBuf> {
    let root = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(run) if Path::new(&run).is_dir() => PathBuf::from(run).join("quadriga/sem"),
        _ => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .context("neither $XDG_RUNTIME_DIR nor $HOME is set")?;
            PathBuf::from(home).join(".quadriga/sem")
        }
    };
    let dir = root.join(encode_id(id));
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot make {}", dir.display()))?;
    // Only we may reach it: a lock file others could open is a slot they
    // could hold.
    for d in [&root, &dir] {
        let m = std::fs::symlink_metadata(d)?;
        if !m.is_dir() || m.uid() != rustix::process::getuid().as_raw() || m.mode() & 0o077 != 0 {
            bail!(
                "{} must be a directory of yours that only you can use (mode 0700)",
                d.display()
            );
        }
    }
    Ok(dir)
}

/// An id as one file name: bytes other than letters, digits, `-`, `_`
/// and inner `.` become `%XX`.
fn encode_id(id: &str) -> String {
    let mut out = String::new();
    for (i, b) in id.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

fn open_slot(dir: &Path, i: usize) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(dir.join(format!("slot-{i}")))
}

/// Tries each slot once; the locked file if one was free.
fn try_take(dir: &Path, slots: usize) -> io::Result<Option<File>> {
    for i in 0..slots {
        let f = open_slot(dir, i)?;
        match flock(f.as_fd(), FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Some(f)),
            Err(Errno::WOULDBLOCK) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Waits for a slot. `None`: the timeout said to go on without one.
fn take(dir: &Path, slots: usize, timeout: Option<f64>) -> Result<Option<File>> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(f) = try_take(dir, slots)? {
            return Ok(Some(f));
        }
        if let Some(t) = timeout
            && t != 0.0
            && start.elapsed().as_secs_f64() >= t.abs()
        {
            if t > 0.0 {
                eprintln!("quadriga: warning: semaphore timed out: running without a slot");
                return Ok(None);
            }
            bail!(Timeout);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// `--semaphoretimeout` with S < 0 ran out.
#[derive(Debug)]
pub(crate) struct Timeout;

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("semaphore timed out: giving up")
    }
}

impl std::error::Error for Timeout {}

/// Waits until every slot file of the directory can be locked.
fn wait_all(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_name().as_bytes().starts_with(b"slot-") {
            continue;
        }
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(entry.path())?;
        flock(f.as_fd(), FlockOperation::LockExclusive)?;
        // Unlocked as `f` closes.
    }
    Ok(())
}

/// Runs `quadriga sem`: the exit status to return.
pub(crate) fn run(args: &SemArgs) -> Result<i32> {
    let dir = directory(&args.id)?;
    if args.wait {
        if !args.command.is_empty() {
            bail!("--wait takes no command");
        }
        wait_all(&dir)?;
        return Ok(0);
    }
    if args.command.is_empty() {
        bail!("no command given");
    }
    let cores = quadriga::child::cores();
    let slots = crate::args::parse_count(&args.jobs, cores)
        .map_err(anyhow::Error::msg)?
        .round()
        .max(1.0) as usize;
    let script = args
        .command
        .iter()
        .map(|w| w.as_bytes())
        .collect::<Vec<_>>()
        .join(&b' ');
    let lock = take(&dir, slots, args.timeout)?;
    let mut cmd = Command::new(crate::program::shell());
    cmd.arg("-c")
        .arg(std::ffi::OsStr::from_bytes(&script))
        .env("PARALLEL_SEMAPHORE_ID", &args.id);
    if args.fg {
        // The lock stays here (close-on-exec): it ends with this process.
        let status = cmd.status().context("cannot start the shell")?;
        drop(lock);
        return Ok(
            match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(c), _) => c,
                (None, Some(sig)) => 128 + sig,
                (None, None) => 1,
            },
        );
    }
    // In the background: the command inherits the locked descriptor.
    if let Some(f) = &lock {
        rustix::io::fcntl_setfd(f.as_fd(), rustix::io::FdFlags::empty())?;
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.stdin(std::process::Stdio::null());
    cmd.spawn().context("cannot start the shell")?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_one_file_name() {
        assert_eq!(encode_id("db-1.x"), "db-1.x");
        assert_eq!(encode_id("../etc"), "%2E.%2Fetc");
        assert_eq!(encode_id("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_id(""), "%");
    }

    #[test]
    fn slots_are_counted_and_freed_when_closed() {
        let dir = std::env::temp_dir().join(format!("quadriga-sem-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = try_take(&dir, 2).unwrap().expect("first slot");
        let b = try_take(&dir, 2).unwrap().expect("second slot");
        assert!(try_take(&dir, 2).unwrap().is_none(), "only two slots");
        assert!(take(&dir, 2, Some(-0.05)).unwrap_err().is::<Timeout>());
        assert!(take(&dir, 2, Some(0.05)).unwrap().is_none(), "ran anyway");
        drop(a);
        let c = try_take(&dir, 2).unwrap().expect("a freed slot");
        drop((b, c));
        wait_all(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
