//! Starting jobs, reaping them, and signalling their process groups.
//!
//! A job is started with `std::process::Command` and nothing between fork and
//! exec (no `pre_exec`), so the standard library uses `posix_spawn` (a
//! vfork-style clone: the cheapest way to start a process). Each job is the
//! leader of its own process group, so a timeout or a halt can signal the job
//! and everything it started. Its stdout and stderr are pipes (unless
//! `--ungroup`), its stdin is `/dev/null`.
//!
//! The runner learns of a job's end through a pidfd in its epoll set, then
//! reaps it with `wait4(pid)`, which also gives the job's resource usage (CPU
//! time of the job and of every descendant it waited for; peak RSS). Only the
//! runner reaps, and only pids it holds a pidfd for, so a pid is never reused
//! under it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{Pid, PidfdFlags, Resource, Signal, kill_process_group, pidfd_open};

/// What to execute.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Program<'a> {
    /// argv, executed directly.
    Direct(&'a [Vec<u8>]),
    /// A command line for `shell -c`.
    Shell { shell: &'a OsStr, script: &'a [u8] },
}

/// A started job.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: i32,
    /// Readable once the job has exited.
    pub(crate) pidfd: OwnedFd,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
}

/// How a job ended, and what it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    /// The exit code, if it exited.
    pub(crate) code: Option<i32>,
    /// The signal that killed it, if one did.
    pub(crate) signal: Option<i32>,
    /// User + system CPU time of the job and its waited-for descendants.
    pub(crate) cpu: Duration,
    /// Peak resident set size, in bytes.
    pub(crate) max_rss: u64,
}

/// Starts one job. `capture`: give it pipes for stdout and stderr (else it
/// shares the runner's). `env`: extra variables.
pub(crate) fn spawn(
    program: Program<'_>,
    capture: bool,
    env: &[(&str, &str)],
) -> io::Result<Spawned> {
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
    cmd.stdin(dev_null()?).process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut pipes = None;
    if capture {
        let (out_r, out_w) = pipe_with(PipeFlags::CLOEXEC)?;
        let (err_r, err_w) = pipe_with(PipeFlags::CLOEXEC)?;
        rustix::io::ioctl_fionbio(&out_r, true)?;
        rustix::io::ioctl_fionbio(&err_r, true)?;
        cmd.stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
        pipes = Some((out_r, err_r));
    }
    let child = cmd.spawn()?;
    // The write ends live in `cmd`: close them now, so the job is their only
    // writer.
    drop(cmd);
    let pid = child.id() as i32;
    // Dropped without waiting: the pidfd below is how it is reaped.
    drop(child);
    let raw = Pid::from_raw(pid).ok_or_else(|| io::Error::other("pid 0"))?;
    let pidfd = match pidfd_open(raw, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = kill_process_group(raw, Signal::KILL);
            let _ = reap(pid, true);
            return Err(e.into());
        }
    };
    let (stdout, stderr) = match pipes {
        Some((o, e)) => (Some(o), Some(e)),
        None => (None, None),
    };
    Ok(Spawned {
        pid,
        pidfd,
        stdout,
        stderr,
    })
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

/// Reaps `pid` if it has exited (`block`: wait until it has).
pub(crate) fn reap(pid: i32, block: bool) -> io::Result<Option<Exit>> {
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: both pointers are to live, writable locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if r == pid {
            break;
        }
        if r == 0 {
            return Ok(None);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    Ok(Some(Exit {
        code,
        signal,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        max_rss: (usage.ru_maxrss.max(0) as u64) * 1024,
    }))
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

/// Sends `signal` to the job's whole process group. A group that is gone
/// is not an error.
pub(crate) fn signal_group(pid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process_group(pid, signal);
    }
}

/// Whether any process of the group is alive.
pub(crate) fn group_alive(pid: i32) -> bool {
    match Pid::from_raw(pid) {
        Some(p) => rustix::process::test_kill_process_group(p).is_ok(),
        None => false,
    }
}

/// This process's own CPU time (all its threads; not its children).
pub(crate) fn self_cpu() -> Duration {
    // SAFETY: `rusage` is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is to a live, writable local of the right type.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if r != 0 {
        return Duration::ZERO;
    }
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// Raises the soft open-file limit to the hard one; returns the soft limit.
pub(crate) fn raise_nofile_limit() -> u64 {
    let lim = rustix::process::getrlimit(Resource::Nofile);
    if let Some(max) = lim.maximum
        && lim.current != Some(max)
    {
        let new = rustix::process::Rlimit {
            current: Some(max),
            maximum: Some(max),
        };
        if rustix::process::setrlimit(Resource::Nofile, new).is_ok() {
            return max;
        }
    }
    lim.current.unwrap_or(1 << 20)
}

/// `MemAvailable` from /proc/meminfo, in bytes.
pub(crate) fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Processes running or runnable now, from /proc/loadavg (this one excluded).
pub(crate) fn runnable_processes() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let field = text.split_whitespace().nth(3)?;
    let running: f64 = field.split('/').next()?.parse().ok()?;
    Some((running - 1.0).max(0.0))
}

/// The CPUs this process may use (affinity and cgroup quota respected).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The shell for commands that need one: `$PARALLEL_SHELL`, else `/bin/sh`.
pub(crate) fn shell() -> OsString {
    std::env::var_os("PARALLEL_SHELL")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| OsString::from_vec(b"/bin/sh".to_vec()))
}

/// Termination signals caught by the runner, read back by the event loop.
///
/// A handler writes the signal number to a non-blocking pipe (the one
/// async-signal-safe thing it does); the read end is in the runner's epoll.
/// Jobs do not inherit the handler: exec resets caught signals to default.
#[derive(Debug)]
pub(crate) struct Signals {
    read: OwnedFd,
    _write: OwnedFd,
}

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

impl Signals {
    /// Catches SIGINT, SIGTERM and SIGHUP from now on.
    pub(crate) fn install() -> io::Result<Self> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        SIGNAL_PIPE.store(std::os::fd::AsRawFd::as_raw_fd(&write), Ordering::Relaxed);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: `sigaction` is zeroed plain data, then filled in; the
            // handler only calls write(2), which is async-signal-safe.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(Signals {
            read,
            _write: write,
        })
    }

    pub(crate) fn fd(&self) -> impl AsFd + '_ {
        &self.read
    }

    /// The signals received since the last call.
    pub(crate) fn take(&self) -> Vec<i32> {
        let mut buf = [0u8; 16];
        let mut out = Vec::new();
        while let Ok(n) = rustix::io::read(&self.read, &mut buf) {
            if n == 0 {
                break;
            }
            out.extend(buf[..n].iter().map(|&b| i32::from(b)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &[&str]) -> Vec<Vec<u8>> {
        s.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn spawn_and_reap_with_cpu_time() {
        let argv = bytes(&[
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 3",
        ]);
        let s = spawn(Program::Direct(&argv), false, &[]).unwrap();
        let exit = reap(s.pid, true).unwrap().unwrap();
        assert_eq!(exit.code, Some(3));
        assert_eq!(exit.signal, None);
        assert!(exit.cpu > Duration::ZERO);
        assert!(exit.max_rss > 0);
    }

    #[test]
    fn a_job_is_its_own_process_group() {
        let argv = bytes(&["sleep", "30"]);
        let s = spawn(Program::Direct(&argv), false, &[]).unwrap();
        assert!(group_alive(s.pid));
        signal_group(s.pid, Signal::TERM);
        let exit = reap(s.pid, true).unwrap().unwrap();
        assert_eq!(exit.signal, Some(libc::SIGTERM));
        assert!(!group_alive(s.pid));
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let argv = bytes(&["/nonexistent/program"]);
        let err = spawn(Program::Direct(&argv), false, &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn system_readings() {
        assert!(cores() >= 1);
        assert!(mem_available().unwrap() > 0);
        assert!(runnable_processes().is_some());
        assert!(raise_nofile_limit() >= 64);
    }
}
