//! Starting a worker: the current binary (`/proc/self/exe`, so a rebuilt or
//! moved binary still starts the same code) in its own process group, with its
//! end of a socket pair as its standard input.
//!
//! A worker is a [`crate::child`] like any other: this file adds only what
//! makes it a worker (the socket, the executable, the environment the worker
//! reads). Nothing runs between fork and exec, so a multi-threaded parent is
//! never forked. What a `pre_exec` hook would have done, the worker does to
//! itself first thing (`worker.rs`): it moves the socket off standard input,
//! sets its parent-death signal and then checks that its parent is still the
//! one that started it, and applies its memory limit. Reaping and signalling
//! a worker need nothing of the kind: callers use [`child::reap`] and
//! [`child::signal_group`] directly.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};

use crate::child;
use crate::process::worker::{
    MAX_FRAME_ENV, MEMORY_LIMIT_ENV, PARENT_ENV, PROGRAM_WORKER_ENV, WORKER_ENV,
};

/// What a worker is started with.
#[derive(Debug, Clone)]
pub(crate) struct SpawnConfig {
    pub(crate) memory_limit: Option<u64>,
    pub(crate) max_frame: usize,
    /// Another program (and its arguments) to start instead of this binary;
    /// it serves by calling `ProcessPool::serve_program_worker`.
    pub(crate) program: Option<(OsString, Vec<OsString>)>,
}

/// A started worker process.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: u32,
    /// Readable when the process has exited; used to reap it.
    pub(crate) pidfd: OwnedFd,
    /// The supervisor's end of the socket pair.
    pub(crate) sock: OwnedFd,
}

/// Starts one worker. Its stdout and stderr are the parent's; its stdin is the
/// socket (the worker replaces it with `/dev/null` before any task runs).
///
/// The spawning thread matters: the worker is killed when that thread exits
/// (`PR_SET_PDEATHSIG`), so spawn from a thread that outlives the worker.
pub(crate) fn spawn(cfg: &SpawnConfig) -> io::Result<Spawned> {
    let (parent, child_end) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let mut cmd;
    let marker = match &cfg.program {
        Some((program, args)) => {
            cmd = Command::new(program);
            cmd.args(args);
            PROGRAM_WORKER_ENV
        }
        None => {
            cmd = Command::new("/proc/self/exe");
            if let Ok(exe) = std::env::current_exe() {
                cmd.arg0(exe);
            }
            WORKER_ENV
        }
    };
    cmd.env(marker, "0")
        .env(PARENT_ENV, std::process::id().to_string())
        .env(MAX_FRAME_ENV, cfg.max_frame.to_string())
        .stdin(Stdio::from(child_end));
    match cfg.memory_limit {
        Some(bytes) => cmd.env(MEMORY_LIMIT_ENV, bytes.to_string()),
        None => cmd.env_remove(MEMORY_LIMIT_ENV),
    };
    // `spawn` drops `cmd`, and with it the worker's end of the socket, so the
    // worker's death is seen as end of file.
    let c = child::spawn(cmd, false)?;
    rustix::io::ioctl_fionbio(&parent, true)?;
    Ok(Spawned {
        pid: c.pid,
        pidfd: c.pidfd,
        sock: parent,
    })
}
