//! No job outlives a killed runner: a watchdog process.
//!
//! At its start the runner spawns this binary again as `quadriga
//! __watchdog`, in a process group of its own, with the read end of a pipe
//! as its stdin; only the runner holds the write end (close-on-exec, so no
//! job inherits it). The runner tells it each job's process group when the
//! job starts (`+pid`) and when it reaps it (`-pid`). When the runner dies,
//! however it dies (`kill -9` included), the kernel closes the write end;
//! the watchdog reads what is left in the pipe, then end of file, sends
//! SIGKILL to every group it still knows, and exits. After a normal end the
//! set is empty and it just exits.
//!
//! Why this and not the kernel's own tools:
//!
//! - `PR_SET_PDEATHSIG` must be set in each job between fork and exec (a
//!   `pre_exec` hook, which `quadriga::child` rules out: no fork of a
//!   threaded parent), reaches only the job's first process (not what its
//!   shell started: `sh -c 'sleep 60; …'` leaves `sleep`), fires on the
//!   death of the forking *thread*, not the process, and is cleared by a
//!   set-user-ID exec.
//! - `PR_SET_CHILD_SUBREAPER` adopts orphans while the runner lives; it
//!   does nothing once the runner itself is gone.
//! - A cgroup per run would be the soundest, but needs a delegated cgroup
//!   tree, which an ordinary user's shell does not have.
//!
//! The watchdog kills whole groups, which the runner already uses for
//! timeouts and halts. What it cannot cover: a job started in the
//! microseconds between its spawn and the runner's `+pid` write; a
//! descendant that left its group on purpose (`setsid`); and the watchdog
//! itself killed first. A group is forgotten before its leader is reaped,
//! so the watchdog never signals a group number the runner has given up.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use quadriga::child::{self, Signal};
use rustix::pipe::{PipeFlags, pipe_with};

/// The hidden subcommand the watchdog runs as.
pub(crate) const SUBCOMMAND: &str = "__watchdog";

/// One message: `+` or `-`, then a pid (little-endian), well under
/// `PIPE_BUF`, so each write is atomic.
const MSG: usize = 5;

/// The runner's end: tells the watchdog which groups to kill if it dies.
#[derive(Debug)]
pub(crate) struct Watchdog {
    pipe: Option<OwnedFd>,
}

impl Watchdog {
    /// Starts the watchdog. If it cannot be started, the run goes on without
    /// one (with a warning): jobs then outlive a `kill -9` of the runner, as
    /// GNU parallel's do.
    pub(crate) fn start() -> Watchdog {
        match Self::spawn() {
            Ok(fd) => Watchdog { pipe: Some(fd) },
            Err(e) => {
                eprintln!(
                    "quadriga: warning: cannot start the watchdog ({e}): jobs may outlive a killed runner"
                );
                Watchdog { pipe: None }
            }
        }
    }

    fn spawn() -> io::Result<OwnedFd> {
        let (r, w) = pipe_with(PipeFlags::CLOEXEC)?;
        // This very binary, even if its file was replaced since it started.
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg(OsStr::new(SUBCOMMAND))
            .stdin(Stdio::from(r))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own group (so a terminal's ^C to ours does not reach it); its
        // pidfd is dropped: it outlives us, and init reaps it.
        let c = child::spawn(cmd, false)?;
        drop(c);
        Ok(w)
    }

    fn send(&mut self, op: u8, pid: u32) {
        let Some(fd) = &self.pipe else {
            return;
        };
        let mut msg = [0u8; MSG];
        msg[0] = op;
        msg[1..].copy_from_slice(&pid.to_le_bytes());
        loop {
            match rustix::io::write(fd, &msg) {
                Ok(_) => return,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    eprintln!(
                        "quadriga: warning: the watchdog is gone ({e}): jobs may outlive a killed runner"
                    );
                    self.pipe = None;
                    return;
                }
            }
        }
    }

    /// A job started: its group is to be killed if we die.
    pub(crate) fn started(&mut self, pid: u32) {
        self.send(b'+', pid);
    }

    /// A job is about to be reaped: forget its group.
    pub(crate) fn reaping(&mut self, pid: u32) {
        self.send(b'-', pid);
    }
}

/// What the watchdog knows: the groups it was told of, decoded from the
/// runner's bytes however they were cut by the reads. Bounded: one
/// partial message at most, and a set of at most the runner's live jobs.
#[derive(Debug, Default)]
struct Ledger {
    groups: HashSet<u32>,
    partial: [u8; MSG],
    have: usize,
}

impl Ledger {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = (MSG - self.have).min(bytes.len());
            self.partial[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            self.have += take;
            bytes = &bytes[take..];
            if self.have == MSG {
                self.have = 0;
                let m = self.partial;
                let pid = u32::from_le_bytes([m[1], m[2], m[3], m[4]]);
                // Only a real group leader's number: never 0, init, or a
                // value that would turn "group" into "process" (negative).
                if pid <= 1 || pid > i32::MAX as u32 {
                    continue;
                }
                match m[0] {
                    b'+' => {
                        self.groups.insert(pid);
                    }
                    b'-' => {
                        self.groups.remove(&pid);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The watchdog's life: read the runner's messages until end of file, then
/// kill every group still known. Returns how many.
pub(crate) fn run(mut input: impl Read) -> io::Result<usize> {
    let mut ledger = Ledger::default();
    let mut buf = [0u8; 4096];
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => ledger.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Any other error: as good as end of file.
            Err(_) => break,
        }
    }
    for &pid in &ledger.groups {
        child::signal_group(pid, Signal::Kill);
    }
    Ok(ledger.groups.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_the_groups_still_known_at_end_of_file() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let a = child::spawn(cmd, false).unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let b = child::spawn(cmd, false).unwrap();
        let mut msgs = Vec::new();
        for (op, pid) in [(b'+', a.pid), (b'+', b.pid), (b'-', b.pid)] {
            msgs.push(op);
            msgs.extend_from_slice(&pid.to_le_bytes());
        }
        // Messages cut anywhere still add up.
        let reader = io::Read::chain(&msgs[..3], &msgs[3..]);
        assert_eq!(run(reader).unwrap(), 1);
        let exit = child::reap(&a.pidfd, true).unwrap().unwrap();
        assert_eq!(exit.signal, Some(libc_sigkill()));
        // The forgotten one lives on.
        assert!(child::group_alive(b.pid));
        child::signal_group(b.pid, Signal::Kill);
        child::reap(&b.pidfd, true).unwrap();
    }

    fn libc_sigkill() -> i32 {
        Signal::Kill.as_raw()
    }

    #[test]
    fn random_bytes_in_random_cuts_decode_alike_and_stay_bounded() {
        // The decoder of bytes from another process, with seeded random
        // input (nothing is signalled: only the ledger is looked at).
        let mut x: u64 = 0x0123_4567_89AB_CDEF;
        let mut rnd = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for _ in 0..200 {
            let len = rnd(600) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rnd(4) {
                    0 => b'+',
                    1 => b'-',
                    _ => rnd(256) as u8,
                })
                .collect();
            let mut whole = Ledger::default();
            whole.feed(&bytes);
            let mut cut = Ledger::default();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let n = (1 + rnd(13) as usize).min(rest.len());
                cut.feed(&rest[..n]);
                rest = &rest[n..];
            }
            assert_eq!(whole.groups, cut.groups);
            assert_eq!(whole.have, len % MSG);
            assert!(whole.groups.len() <= len / MSG);
            assert!(whole.groups.iter().all(|&p| p > 1 && p <= i32::MAX as u32));
        }
    }
}
