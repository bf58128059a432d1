//! A private `redis-server`, a key file and `quadriga worker` processes for
//! the `--broker` tests; every process is stopped by pid on drop.

#![allow(dead_code)]

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Done, Scratch, bin, spawn_and_wait};
use crate::redis_server::RedisServer;

pub(crate) const KEY: &str = "remote-test-key-0123456789";

/// A broker, a key file and workers.
pub(crate) struct Remote {
    pub(crate) server: RedisServer,
    pub(crate) dir: Scratch,
    pub(crate) key_file: PathBuf,
    pub(crate) workers: Vec<(Child, PathBuf)>,
}

impl Remote {
    pub(crate) fn start() -> Self {
        let server = RedisServer::start();
        let dir = Scratch::new();
        let key_file = write_key(&dir, "key", KEY);
        Remote {
            server,
            dir,
            key_file,
            workers: Vec::new(),
        }
    }

    pub(crate) fn url(&self) -> String {
        self.server.url()
    }

    /// Starts `quadriga worker -j slots` with `extra` options; its stderr
    /// goes to a log file. Returns its index.
    pub(crate) fn worker(&mut self, slots: usize, extra: &[&str]) -> usize {
        let key = self.key_file.clone();
        self.worker_with_key(&slots.to_string(), extra, &key)
    }

    /// A worker with `-j auto`.
    pub(crate) fn worker_auto(&mut self) -> usize {
        let key = self.key_file.clone();
        self.worker_with_key("auto", &[], &key)
    }

    pub(crate) fn worker_with_key(&mut self, jobs: &str, extra: &[&str], key: &PathBuf) -> usize {
        let n = self.workers.len();
        let log = self.dir.join(format!("worker-{n}.log"));
        let child = bin()
            .current_dir(self.dir.path())
            .args(["worker", "--broker", &self.url(), "-j", jobs])
            .arg("--key-file")
            .arg(key)
            .args(extra)
            .env_remove("QUADRIGA_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("spawn quadriga worker");
        self.workers.push((child, log));
        // Ready when it says so (its record is written by then or soon).
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log(n).contains("serving queue") {
            assert!(
                Instant::now() < deadline,
                "the worker did not start: {}",
                self.log(n)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    pub(crate) fn log(&self, n: usize) -> String {
        std::fs::read_to_string(&self.workers[n].1).unwrap_or_default()
    }

    pub(crate) fn pid(&self, n: usize) -> u32 {
        self.workers[n].0.id()
    }

    pub(crate) fn signal(&self, n: usize, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid(n).to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Waits (bounded) for worker `n` to exit; its exit code.
    pub(crate) fn wait(&mut self, n: usize, within: Duration) -> Option<i32> {
        crate::common::wait_deadline(&mut self.workers[n].0, within)
    }

    /// `quadriga run --broker URL --key-file KEY ARGS...` in the scratch
    /// directory, to its end.
    pub(crate) fn run(&self, args: &[&str]) -> Done {
        let mut cmd = self.run_command(args);
        cmd.current_dir(self.dir.path());
        spawn_and_wait(cmd, None)
    }

    pub(crate) fn run_command(&self, args: &[&str]) -> Command {
        let mut cmd = bin();
        cmd.current_dir(self.dir.path())
            .args(["run", "--broker", &self.url()])
            .arg("--key-file")
            .arg(&self.key_file)
            .env_remove("QUADRIGA_KEY")
            .args(args);
        cmd
    }

    /// The same command run locally, in the same directory.
    pub(crate) fn local(&self, args: &[&str]) -> Done {
        let mut cmd = bin();
        cmd.current_dir(self.dir.path()).arg("run").args(args);
        spawn_and_wait(cmd, None)
    }

    /// A raw connection, for playing an attacker with write access.
    pub(crate) fn redis(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        for (child, _) in &mut self.workers {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A key file (mode 0600) in `dir`.
pub(crate) fn write_key(dir: &Scratch, name: &str, key: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A joblog's rows as fields, header skipped, sorted by sequence number.
pub(crate) fn joblog(path: &std::path::Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut rows: Vec<Vec<String>> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    rows.sort_by_key(|r| r[0].parse::<u64>().unwrap());
    rows
}

/// How many jobs a worker runs: processes whose parent is `pid`, but for
/// its watchdog (`quadriga __watchdog`).
pub(crate) fn children(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                return false;
            };
            // The parent's pid is the second field after the name's ')'.
            let parent = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            parent == Some(pid)
                && !std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == b"__watchdog"))
        })
        .count()
}
