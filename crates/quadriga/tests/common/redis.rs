//! A private `redis-server` per test: a free loopback port, a temp dir,
//! `appendonly yes` with `appendfsync always` and no snapshots, stopped by pid
//! (SIGKILL) when dropped. `scripts/test.sh` installs the server.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running `redis-server` that this test owns.
#[derive(Debug)]
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    password: Option<String>,
    appendonly: bool,
    /// Extra `redis-server` arguments (cluster mode, TLS files).
    extra: Vec<String>,
    /// Whether its port speaks TLS only (see [`RedisServer::with_tls`]).
    tls: bool,
}

impl RedisServer {
    /// A durable server (`appendonly yes`, `appendfsync always`).
    pub(crate) fn start() -> Self {
        Self::with(None, true)
    }

    /// A server that demands `password`.
    pub(crate) fn with_password(password: &str) -> Self {
        Self::with(Some(password.to_owned()), true)
    }

    /// A server that keeps nothing on disk (`appendonly no`).
    pub(crate) fn not_durable() -> Self {
        Self::with(None, false)
    }

    fn with(password: Option<String>, appendonly: bool) -> Self {
        Self::with_args(password, appendonly, Vec::new())
    }

    /// A durable server whose port speaks TLS only, with the certificate
    /// and key files given (clients are not asked for certificates).
    pub(crate) fn with_tls(cert: &std::path::Path, key: &std::path::Path) -> Self {
        Self::tls_with(cert, key, Vec::new())
    }

    /// [`with_tls`](Self::with_tls), with more arguments.
    fn tls_with(cert: &std::path::Path, key: &std::path::Path, more: Vec<String>) -> Self {
        let mut server = Self::with_args_deferred(None, true, Vec::new());
        server.tls = true;
        server.extra = vec![
            "--tls-cert-file".into(),
            cert.display().to_string(),
            "--tls-key-file".into(),
            key.display().to_string(),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        server.extra.extend(more);
        server.spawn();
        server
    }

    fn with_args(password: Option<String>, appendonly: bool, extra: Vec<String>) -> Self {
        let mut server = Self::with_args_deferred(password, appendonly, extra);
        server.spawn();
        server
    }

    /// Makes its directory and picks its port; does not start it.
    fn with_args_deferred(password: Option<String>, appendonly: bool, extra: Vec<String>) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "quadriga-redis-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("make the server's temp dir");
        RedisServer {
            child: None,
            port: free_port(),
            dir,
            password,
            appendonly,
            extra,
            tls: false,
        }
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        if self.tls {
            cmd.args(["--port", "0", "--tls-port"]);
        } else {
            cmd.arg("--port");
        }
        cmd.arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
            .args(["--appendonly", if self.appendonly { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
        }
        cmd.args(&self.extra);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("could not start redis-server ({e}): install it (apt-get install redis-server; scripts/test.sh does)")
        });
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits (at most 10 s) until the server answers on its port.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // A TLS port: listening is ready enough (an empty data dir
            // loads at once).
            if self.tls && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if !self.tls
                && let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port))
            {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 64];
                if s.write_all(b"PING\r\n").is_ok() {
                    // +PONG, or -NOAUTH when a password is required; -LOADING
                    // while the append-only file is replayed.
                    if let Ok(n) = s.read(&mut buf)
                        && n > 0
                        && !buf[..n].starts_with(b"-LOADING")
                    {
                        return;
                    }
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                panic!("redis-server exited ({status}) before it was ready:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>/` (`rediss://` with TLS), with the password
    /// if there is one.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        match &self.password {
            Some(pw) => format!("{scheme}://:{pw}@127.0.0.1:{}/", self.port),
            None => format!("{scheme}://127.0.0.1:{}/", self.port),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The server's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL, as `kill -9` does, and reap it. Its files stay.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory (after [`kill9`]).
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "kill it first");
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port that nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("its address").port()
}

/// A Redis Cluster of `masters` durable `redis-server`s (no replicas) on
/// loopback, each in its own temp dir, with every slot assigned; each server
/// is stopped by pid when dropped.
#[derive(Debug)]
pub(crate) struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the servers in cluster mode, assigns the slots
    /// (`redis-cli --cluster create`) and waits (at most 30 s) until every
    /// node reports `cluster_state:ok`.
    pub(crate) fn start(masters: usize) -> Self {
        let nodes = (0..masters)
            .map(|_| RedisServer::with_args(None, true, cluster_args()))
            .collect();
        Self::create(nodes, None)
    }

    /// [`start`](Self::start) with TLS on every port and on the cluster bus:
    /// `cert`/`key` signed by `ca`, which the nodes trust.
    pub(crate) fn start_tls(
        masters: usize,
        cert: &std::path::Path,
        key: &std::path::Path,
        ca: &std::path::Path,
    ) -> Self {
        let nodes = (0..masters)
            .map(|_| {
                let mut more = cluster_args();
                more.extend(["--tls-cluster".into(), "yes".into()]);
                more.extend(["--tls-ca-cert-file".into(), ca.display().to_string()]);
                RedisServer::tls_with(cert, key, more)
            })
            .collect();
        Self::create(nodes, Some(ca))
    }

    fn create(nodes: Vec<RedisServer>, tls_ca: Option<&std::path::Path>) -> Self {
        let cli = |cmd: &mut Command| {
            if let Some(ca) = tls_ca {
                cmd.arg("--tls").arg("--cacert").arg(ca);
            }
        };
        let mut create = Command::new("redis-cli");
        cli(&mut create);
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = |port: u16| {
            let mut info = Command::new("redis-cli");
            cli(&mut info);
            info.args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "CLUSTER",
                "INFO",
            ])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
        };
        while !cluster.nodes.iter().all(|n| ready(n.port)) {
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// `redis+cluster://127.0.0.1:<port>,...` (`rediss+cluster://` with
    /// TLS) naming every node as a seed.
    pub(crate) fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let tls = self.nodes.first().is_some_and(|n| n.tls);
        let scheme = if tls {
            "rediss+cluster"
        } else {
            "redis+cluster"
        };
        format!("{scheme}://{}/", seeds.join(","))
    }

    /// The nodes.
    pub(crate) fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// The arguments of a cluster node. The bus port is given: the default
/// (port + 10000) may be taken or past 65535.
fn cluster_args() -> Vec<String> {
    [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "5000",
        "--cluster-port",
        &free_port().to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}
