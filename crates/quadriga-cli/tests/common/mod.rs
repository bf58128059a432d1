//! Helpers for the `quadriga run` integration tests: run the real binary with
//! a deadline (a hung run fails the test, never the suite), in a scratch
//! directory of its own.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long any one run may take before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// The binary under test.
pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quadriga"))
}

/// A finished run.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) elapsed: Duration,
}

impl Done {
    pub(crate) fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub(crate) fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub(crate) fn lines(&self) -> Vec<String> {
        self.out().lines().map(str::to_owned).collect()
    }
    /// Asserts the exit status, showing stderr if it differs.
    pub(crate) fn status(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "stderr: {}", self.err());
        self
    }
}

/// A scratch directory, removed on drop.
#[derive(Debug)]
pub(crate) struct Scratch(PathBuf);

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Scratch {
    pub(crate) fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("quadriga-cli-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
    pub(crate) fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `quadriga run ARGS...` in `dir`, with `stdin` (or /dev/null).
pub(crate) fn run_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Done {
    let mut cmd = bin();
    cmd.current_dir(dir).arg("run").args(args);
    spawn_and_wait(cmd, stdin)
}

/// `quadriga run ARGS...` in a scratch directory.
pub(crate) fn run(args: &[&str]) -> Done {
    let dir = Scratch::new();
    run_in(dir.path(), args, None)
}

/// `quadriga run ARGS...` with input on stdin.
pub(crate) fn run_stdin(args: &[&str], stdin: &[u8]) -> Done {
    let dir = Scratch::new();
    run_in(dir.path(), args, Some(stdin))
}

/// Runs a prepared command to its end (or the deadline), collecting output.
pub(crate) fn spawn_and_wait(mut cmd: Command, stdin: Option<&[u8]>) -> Done {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn quadriga");
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let (out, err) = collect(&mut child);
    let code = wait_deadline(&mut child, DEADLINE);
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    if let Some(f) = feeder {
        let _ = f.join();
    }
    Done {
        code,
        stdout,
        stderr,
        elapsed: start.elapsed(),
    }
}

type Reader = std::thread::JoinHandle<Vec<u8>>;

/// Reads the child's stdout and stderr on threads.
pub(crate) fn collect(child: &mut Child) -> (Reader, Reader) {
    let mut o = child.stdout.take().unwrap();
    let mut e = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = o.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = e.read_to_end(&mut v);
        v
    });
    (out, err)
}

/// Waits for the child; kills it and panics at the deadline.
pub(crate) fn wait_deadline(child: &mut Child, deadline: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("quadriga did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a process is gone (or a zombie: dead, not yet reaped by init).
pub(crate) fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            // The state follows the command name in parentheses.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            state.starts_with('Z') || state.starts_with('X')
        }
    }
}

/// Polls `cond` until it holds or `timeout` passes.
pub(crate) fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// The live members (zombies aside) of process group `pgid`.
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: state, ppid, pgrp.
        let rest: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if rest.len() > 2 && rest[0] != "Z" && rest[2].parse() == Ok(pgid) {
            v.push(pid);
        }
    }
    v
}
