//! The suite's own `redis-server`: a free loopback port, a temp dir, stopped
//! by pid (SIGKILL) and its dir removed when dropped. Every system measured
//! uses it, each in its own database number.
//!
//! It runs with `appendonly yes` and `appendfsync everysec`, the durable
//! setting most deployments run (Quadriga warns on anything less durable;
//! `always` would add an fsync to every write, for every system alike).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A running `redis-server` that this process started.
#[derive(Debug)]
pub(super) struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    version: String,
}

impl RedisServer {
    /// Starts the server and waits (at most 10 s) until it answers.
    pub(super) fn start() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("quadriga-bench-redis-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("making {}", dir.display()))?;
        let port = free_port()?;
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            .args(["--databases", "16"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "could not start redis-server: install it (`apt-get install redis-server`; \
                 scripts/test.sh does)",
            )?;
        let mut server = RedisServer {
            child,
            port,
            dir,
            version: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(info) = server.info("server") {
                server.version = info
                    .get("redis_version")
                    .cloned()
                    .unwrap_or_else(|| "?".into());
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(server.dir.join("redis.log")).unwrap_or_default();
                bail!("redis-server exited ({status}) before it was ready:\n{log}");
            }
            if Instant::now() >= deadline {
                bail!("redis-server did not answer within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>/<db>`.
    pub(super) fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// The server's pid (for its CPU time).
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's version.
    pub(super) fn version(&self) -> &str {
        &self.version
    }

    /// A fresh connection to database `db`, with timeouts.
    pub(super) fn connect(&self, db: u8) -> anyhow::Result<redis::Connection> {
        let client = redis::Client::open(self.url(db))?;
        let con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        con.set_read_timeout(Some(Duration::from_secs(30)))?;
        con.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(con)
    }

    /// `INFO <section>` as name → value.
    pub(super) fn info(&self, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let mut con = self.connect(0)?;
        let text: String = redis::cmd("INFO").arg(section).query(&mut con)?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect())
    }

    /// `CONFIG RESETSTAT`: zeroes the command counters.
    pub(super) fn reset_stats(&self) -> anyhow::Result<()> {
        let mut con = self.connect(0)?;
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query::<()>(&mut con)?;
        Ok(())
    }

    /// Deletes the keys of database `db` matching `pattern` (`SCAN` +
    /// `UNLINK`, so a pool and its workers can go on using the rest).
    pub(super) fn unlink_matching(&self, db: u8, pattern: &str) -> anyhow::Result<u64> {
        let mut con = self.connect(db)?;
        let mut cursor: u64 = 0;
        let mut gone = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(10_000)
                .query(&mut con)?;
            if !keys.is_empty() {
                gone += redis::cmd("UNLINK").arg(&keys).query::<u64>(&mut con)?;
            }
            if next == 0 {
                return Ok(gone);
            }
            cursor = next;
        }
    }

    /// `FLUSHDB` of database `db`.
    pub(super) fn flush(&self, db: u8) -> anyhow::Result<()> {
        let mut con = self.connect(db)?;
        redis::cmd("FLUSHDB").query::<()>(&mut con)?;
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port that nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    Ok(l.local_addr()?.port())
}
