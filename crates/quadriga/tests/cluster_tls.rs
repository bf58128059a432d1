//! The cluster pool and a worker over TLS (`rediss://`) against a
//! `redis-server` whose port speaks TLS only, with a certificate made at test
//! time by `openssl` (a throwaway CA and a server certificate for
//! 127.0.0.1): tasks run when the client trusts the CA (`SSL_CERT_FILE`),
//! and a client that trusts another CA is refused with an error, in bounded
//! time, instead of hanging; the same over TLS to a Redis Cluster of 3
//! masters (`rediss+cluster://`, TLS on the cluster bus too).
//!
//! `SSL_CERT_FILE` is read by every TLS connection, so each client runs in a
//! child process (this test binary re-executed into `tls_client_body`) with
//! the variable set in its own environment.

mod common;
#[path = "common/redis.rs"]
mod redis_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use quadriga::Shutdown;
use quadriga::cluster::{Broker, BrokerConfig, ClusterPool, Worker};
use redis_server::{RedisCluster, RedisServer};

/// Tells the child what to do: `ok` or `refused`.
const MODE_ENV: &str = "QUADRIGA_TEST_TLS_MODE";
const URL_ENV: &str = "QUADRIGA_TEST_TLS_URL";
/// The queue's shards in the child (default 1).
const SHARDS_ENV: &str = "QUADRIGA_TEST_TLS_SHARDS";

#[quadriga::task]
fn square(x: u64) -> u64 {
    x * x
}

/// Not a test of its own: the body of the client processes.
#[test]
fn tls_client_body() {
    let (Ok(mode), Ok(url)) = (std::env::var(MODE_ENV), std::env::var(URL_ENV)) else {
        return;
    };
    if mode == "refused" {
        let started = Instant::now();
        let err = Broker::connect(BrokerConfig::new(url).queue("q")).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
        eprintln!("refused as expected: {err}");
        return;
    }
    let shards: u16 = std::env::var(SHARDS_ENV).map_or(1, |s| s.parse().unwrap());
    let worker = Worker::builder(url.as_str())
        .queue("q")
        .shards(shards)
        .concurrency(2)
        .build()
        .unwrap();
    let stop = worker.stopper();
    let thread = std::thread::spawn(move || worker.run().unwrap());
    let pool = ClusterPool::builder(url.as_str())
        .queue("q")
        .shards(shards)
        .build()
        .unwrap();
    assert_eq!(pool.submit(square, 12).join().unwrap(), 144);
    let sum: u64 = pool.map(square, 1..=1000).map(Result::unwrap).sum();
    assert_eq!(sum, (1..=1000u64).map(|x| x * x).sum::<u64>());
    pool.shutdown(Shutdown::Wait);
    stop.stop();
    let report = thread.join().unwrap();
    assert!(report.completed > 0);
}

/// A temp dir with `ca.crt`, `other-ca.crt` (an unrelated CA) and
/// `server.crt`/`server.key` (signed by `ca.crt`, for 127.0.0.1), removed when
/// dropped.
struct Certs(PathBuf);

impl Certs {
    fn make() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "quadriga-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        for ca in ["ca", "other-ca"] {
            openssl(
                &dir,
                &["req", "-x509", "-nodes", "-days", "2"],
                &ec,
                &[
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.crt"),
                    "-subj",
                    &format!("/CN=quadriga test {ca}"),
                ],
            );
        }
        openssl(
            &dir,
            &["req", "-nodes"],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(
            &dir,
            &["x509", "-req", "-in", "server.csr", "-days", "2"],
            &[],
            &[
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                "ext.cnf",
                "-out",
                "server.crt",
            ],
        );
        Certs(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, a: &[&str], b: &[&str], c: &[&str]) {
    let out = Command::new("openssl")
        .args(a)
        .args(b)
        .args(c)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (install it to run this test)");
    assert!(
        out.status.success(),
        "openssl {a:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `tls_client_body` in a child trusting `ca`, in `mode`; whether it
/// passed, with its output.
fn client(url: &str, ca: &Path, mode: &str, shards: u16) -> (bool, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(SHARDS_ENV, shards.to_string())
        .args(["tls_client_body", "--exact", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(MODE_ENV, mode)
        .env(URL_ENV, url)
        .env("SSL_CERT_FILE", ca)
        .env_remove("SSL_CERT_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn tasks_run_over_tls_with_a_trusted_certificate_and_an_untrusted_one_is_refused() {
    let certs = Certs::make();
    let server = RedisServer::with_tls(&certs.path("server.crt"), &certs.path("server.key"));
    let url = server.url();
    assert!(url.starts_with("rediss://"));
    let ca = certs.path("ca.crt");
    let other = certs.path("other-ca.crt");
    common::within(120, move || {
        let (ok, out) = client(&url, &ca, "ok", 1);
        assert!(ok, "the client trusting the CA failed:\n{out}");
        let (ok, out) = client(&url, &other, "refused", 1);
        assert!(ok, "the client trusting another CA was not refused:\n{out}");
        assert!(out.contains("refused as expected"), "{out}");
        // A plain-text client on the TLS port gets an error, not a hang.
        let plain = url.replacen("rediss://", "redis://", 1);
        let started = Instant::now();
        let err = Broker::connect(
            BrokerConfig::new(plain)
                .connect_timeout(Duration::from_secs(1))
                .io_timeout(Duration::from_secs(1)),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    });
}

#[test]
fn tasks_run_over_tls_on_a_redis_cluster() {
    let certs = Certs::make();
    let ca = certs.path("ca.crt");
    let cluster =
        RedisCluster::start_tls(3, &certs.path("server.crt"), &certs.path("server.key"), &ca);
    let url = cluster.url();
    assert!(url.starts_with("rediss+cluster://"));
    common::within(120, move || {
        let (ok, out) = client(&url, &ca, "ok", 6);
        assert!(ok, "the client on the TLS cluster failed:\n{out}");
    });
}
