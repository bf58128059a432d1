//! Reaping a child by its pidfd, with its resource usage.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

/// How a child ended, and what it used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exit {
    /// Its exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// User + system CPU time of the child and of the descendants it waited
    /// for.
    pub cpu: Duration,
    /// Peak resident set size (of it, or of the largest descendant it waited
    /// for), in bytes.
    pub max_rss: u64,
}

impl Exit {
    /// An ending known only by its code or signal, with no usage (a child
    /// that never started, or one whose status could not be read: both
    /// `None`).
    ///
    /// ```
    /// let e = quadriga::child::Exit::status(Some(127), None);
    /// assert_eq!((e.code, e.signal, e.max_rss), (Some(127), None, 0));
    /// ```
    pub const fn status(code: Option<i32>, signal: Option<i32>) -> Self {
        Exit {
            code,
            signal,
            cpu: Duration::ZERO,
            max_rss: 0,
        }
    }
}

/// Reaps the child of `pidfd` if it has exited (`block`: wait until it has).
///
/// `Ok(None)`: it is still running (only without `block`). This is
/// `waitid(P_PIDFD)` with the kernel's resource usage (the same figures
/// `wait4` gives), so no pid is involved and none can have been reused.
///
/// ```
/// let mut cmd = std::process::Command::new("true");
/// let child = quadriga::child::spawn(cmd, false)?;
/// let exit = quadriga::child::reap(&child.pidfd, true)?;
/// assert_eq!(exit.map(|e| e.code), Some(Some(0)));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn reap(pidfd: impl AsFd, block: bool) -> io::Result<Option<Exit>> {
    let fd = pidfd.as_fd().as_raw_fd();
    let mut options = libc::WEXITED;
    if !block {
        options |= libc::WNOHANG;
    }
    loop {
        // SAFETY: `siginfo_t` is plain old data; all-zero is a valid value
        // (and `si_pid` 0 is how WNOHANG says "not yet").
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `rusage` is plain old data; all-zero is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waitid(idtype, id, infop, options, rusage): both pointers
        // are to live, writable locals of the types the kernel writes; `fd`
        // is borrowed for the duration of the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_waitid,
                libc::c_long::from(libc::P_PIDFD),
                libc::c_long::from(fd),
                &mut info as *mut libc::siginfo_t,
                libc::c_long::from(options),
                &mut usage as *mut libc::rusage,
            )
        };
        if r < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // SAFETY: the kernel filled in a SIGCHLD `siginfo_t` (or left it
        // zeroed), whose union holds the pid and status fields read here.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        let (code, signal) = match info.si_code {
            libc::CLD_EXITED => (Some(status), None),
            libc::CLD_KILLED | libc::CLD_DUMPED => (None, Some(status)),
            _ => (None, None),
        };
        return Ok(Some(Exit {
            code,
            signal,
            cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
            max_rss: (usage.ru_maxrss.max(0) as u64) * 1024,
        }));
    }
}

pub(super) fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child::spawn;
    use std::process::Command;

    #[test]
    fn not_yet_without_block() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let c = spawn(cmd, false).unwrap();
        assert_eq!(reap(&c.pidfd, false).unwrap(), None);
        crate::child::signal_group(c.pid, crate::child::Signal::Kill);
        let exit = reap(&c.pidfd, true).unwrap().unwrap();
        assert_eq!(exit.signal, Some(libc::SIGKILL));
        assert_eq!(exit.code, None);
        // Reaped once: a second reap is an error, not another status.
        assert!(reap(&c.pidfd, true).is_err());
    }
}
