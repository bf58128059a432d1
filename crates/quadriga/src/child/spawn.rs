//! Starting a child: its own process group, a pidfd, optional output pipes.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{Pid, PidfdFlags, Signal, kill_process_group, pidfd_open};

/// A started child process: the leader of its own process group.
///
/// Nothing here waits for it or kills it on drop: reap it with
/// [`reap`](super::reap) on [`pidfd`](Child::pidfd) (which becomes readable
/// when it exits), and signal its group with
/// [`signal_group`](super::signal_group).
#[derive(Debug)]
#[non_exhaustive]
pub struct Child {
    /// Its process id, which is also its process group id.
    pub pid: u32,
    /// Readable once the child has exited; the handle it is reaped by.
    pub pidfd: OwnedFd,
    /// The read end of its stdout, non-blocking (with `capture`).
    pub stdout: Option<OwnedFd>,
    /// The read end of its stderr, non-blocking (with `capture`).
    pub stderr: Option<OwnedFd>,
}

/// Starts `cmd` as the leader of a new process group and opens its pidfd.
///
/// `capture`: give it pipes for stdout and stderr, whose read ends (close-on-
/// exec, non-blocking) come back in the [`Child`]; otherwise it has what `cmd`
/// says (by default, this process's). Its stdin, environment and arguments
/// are whatever `cmd` was given. `cmd` is consumed, so that the child's ends
/// of its pipes and of anything else it was given (a socket as stdin, say)
/// are closed here once it has started: the child is then their only holder,
/// and its death is seen as end of file.
///
/// `cmd` must have no `pre_exec` hook (see the module's invariants). If the
/// pidfd cannot be opened, the child's group is killed and it is reaped
/// before the error is returned.
///
/// ```
/// use std::process::Command;
///
/// let mut cmd = Command::new("sh");
/// cmd.args(["-c", "echo hi; exit 3"]);
/// let child = quadriga::child::spawn(cmd, true)?;
/// let exit = quadriga::child::reap(&child.pidfd, true)?.expect("waited for it");
/// assert_eq!(exit.code, Some(3));
/// // It has exited, and the write end was its alone: read to end of file.
/// let mut out = String::new();
/// std::io::Read::read_to_string(&mut std::fs::File::from(child.stdout.unwrap()), &mut out)?;
/// assert_eq!(out, "hi\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn spawn(mut cmd: Command, capture: bool) -> io::Result<Child> {
    cmd.process_group(0);
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
    // The child's ends (pipes, a socket) live in `cmd`: close them now.
    drop(cmd);
    let pid = child.id();
    // Dropped without waiting: the pidfd below is how it is reaped.
    drop(child);
    let raw = Pid::from_raw(pid as i32).ok_or_else(|| io::Error::other("pid 0"))?;
    let pidfd = match pidfd_open(raw, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = kill_process_group(raw, Signal::KILL);
            // Without a pidfd, the pid is all there is; it is still ours
            // (a zombie at worst), as nobody else reaps it.
            let _ = reap_by_pid(pid);
            return Err(e.into());
        }
    };
    let (stdout, stderr) = match pipes {
        Some((o, e)) => (Some(o), Some(e)),
        None => (None, None),
    };
    Ok(Child {
        pid,
        pidfd,
        stdout,
        stderr,
    })
}

/// Reaps a child we could not open a pidfd for (blocking).
fn reap_by_pid(pid: u32) -> io::Result<()> {
    let pid = Pid::from_raw(pid as i32).ok_or_else(|| io::Error::other("pid 0"))?;
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child::{group_alive, reap, signal_group};
    use std::time::Duration;

    #[test]
    fn spawn_and_reap_with_cpu_time() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 3",
        ]);
        let c = spawn(cmd, false).unwrap();
        let exit = reap(&c.pidfd, true).unwrap().unwrap();
        assert_eq!(exit.code, Some(3));
        assert_eq!(exit.signal, None);
        assert!(exit.cpu > Duration::ZERO);
        assert!(exit.max_rss > 0);
    }

    #[test]
    fn a_child_is_its_own_process_group() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let c = spawn(cmd, false).unwrap();
        assert!(group_alive(c.pid));
        signal_group(c.pid, crate::child::Signal::Term);
        let exit = reap(&c.pidfd, true).unwrap().unwrap();
        assert_eq!(exit.signal, Some(libc::SIGTERM));
        assert!(!group_alive(c.pid));
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = spawn(Command::new("/nonexistent/program"), false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn captured_output_comes_through_the_pipes() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "printf out; printf err >&2"]);
        let c = spawn(cmd, true).unwrap();
        let exit = reap(&c.pidfd, true).unwrap().unwrap();
        assert_eq!(exit.code, Some(0));
        let mut buf = [0u8; 16];
        let n = rustix::io::read(c.stdout.as_ref().unwrap(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"out");
        let n = rustix::io::read(c.stderr.as_ref().unwrap(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"err");
        // Our write ends are closed: end of file, not "would block".
        assert_eq!(
            rustix::io::read(c.stdout.as_ref().unwrap(), &mut buf),
            Ok(0)
        );
    }
}
