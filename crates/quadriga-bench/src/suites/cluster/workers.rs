//! Quadriga's cluster workers: this binary re-executed with
//! `QUADRIGA_CLUSTER_WORKER` set, which `quadriga::init()` (first thing in
//! `main`) turns into a worker of the suite's queue. Stopped by pid (SIGKILL)
//! and reaped when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use quadriga::cluster::WORKER_URL_ENV;

use super::server::RedisServer;

/// The suite's worker processes.
#[derive(Debug)]
pub(super) struct Workers {
    children: Vec<Child>,
    url: String,
    queue: String,
    prefix: String,
    concurrency: usize,
    log: PathBuf,
}

impl Workers {
    /// Starts `n` workers of `queue` (key prefix `prefix`) on `url`, each
    /// running `concurrency` entries at once, their standard error appended
    /// to `log`; waits (at most 30 s) until all have registered.
    pub(super) fn start(
        server: &RedisServer,
        db: u8,
        prefix: &str,
        queue: &str,
        n: usize,
        concurrency: usize,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let mut workers = Workers {
            children: Vec::new(),
            url: server.url(db),
            queue: queue.to_owned(),
            prefix: prefix.to_owned(),
            concurrency,
            log: log.to_owned(),
        };
        for _ in 0..n {
            workers.spawn_one()?;
        }
        workers.wait_registered(server, db, n)?;
        Ok(workers)
    }

    fn spawn_one(&mut self) -> anyhow::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = Command::new(std::env::current_exe()?)
            .env(WORKER_URL_ENV, &self.url)
            .env("QUADRIGA_CLUSTER_QUEUE", &self.queue)
            .env("QUADRIGA_CLUSTER_PREFIX", &self.prefix)
            .env("QUADRIGA_CLUSTER_CONCURRENCY", self.concurrency.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting a cluster worker")?;
        self.children.push(child);
        Ok(())
    }

    /// Waits until `n` live workers are in the queue's worker set.
    fn wait_registered(&mut self, server: &RedisServer, db: u8, n: usize) -> anyhow::Result<()> {
        let key = format!("{}:{{{}}}:workers", self.prefix, self.queue);
        let mut con = server.connect(db)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let alive: usize = redis::cmd("ZCARD").arg(&key).query(&mut con)?;
            if alive >= n {
                return Ok(());
            }
            for c in &mut self.children {
                if let Some(status) = c.try_wait()? {
                    bail!(
                        "a cluster worker exited ({status}) at start; its log: {}",
                        self.log.display()
                    );
                }
            }
            if Instant::now() >= deadline {
                bail!("{alive} of {n} cluster workers registered within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The workers' pids.
    pub(super) fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// SIGKILLs and reaps our worker `pid`; `Err` if it is not one of ours.
    pub(super) fn kill(&mut self, pid: u32) -> anyhow::Result<()> {
        let Some(at) = self.children.iter().position(|c| c.id() == pid) else {
            bail!("pid {pid} is not one of the suite's workers");
        };
        let mut child = self.children.remove(at);
        let killed = child.kill();
        child.wait()?;
        Ok(killed?)
    }

    /// Starts one more worker (after [`kill`](Self::kill)). It does not wait
    /// for its registration: the killed one's record lingers for a few
    /// leases, so the count of records would not tell.
    pub(super) fn replace(&mut self) -> anyhow::Result<()> {
        self.spawn_one()
    }

    /// CPU time (user + system) the workers used so far, in seconds.
    pub(super) fn cpu_s(&self) -> f64 {
        self.pids().into_iter().filter_map(cpu_s_of).sum()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU time (user + system) process `pid` used so far, in seconds, from
/// `/proc/<pid>/stat` (in clock ticks of 1/100 s, Linux's `USER_HZ`).
pub(super) fn cpu_s_of(pid: u32) -> Option<f64> {
    stat_cpu_s(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// User + system CPU seconds from a `/proc/<pid>/stat` line.
fn stat_cpu_s(stat: &str) -> Option<f64> {
    // The command name may hold spaces: count fields after its `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 3 0";
        assert_eq!(stat_cpu_s(line), Some(2.87));
        assert_eq!(stat_cpu_s("4242 (x) S 1"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(cpu_s_of(std::process::id()).is_some_and(|s| s >= 0.0));
    }
}
