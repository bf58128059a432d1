//! `quadriga dashboard` against the real binary and a private `redis-server`:
//! `GET /api/status` is the status document, `GET /` the embedded page, a
//! broker that cannot be read is a 502 with the error, and the server binds
//! where it is told and says where.

mod common;
#[path = "../../quadriga/tests/common/redis.rs"]
mod redis_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::bin;
use quadriga::cluster::{Broker, BrokerConfig, WorkerInfo};
use redis_server::RedisServer;

/// A dashboard process, killed and reaped when dropped.
struct Dashboard {
    child: Child,
    addr: SocketAddr,
}

impl Dashboard {
    fn start(broker: &str) -> Self {
        let mut child = bin()
            .args(["dashboard", "--broker", broker, "--queue", "jobs"])
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(20));
        let mut dash = Dashboard {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        let line = line.expect("the dashboard says where it listens");
        let url = line
            .trim()
            .strip_prefix("quadriga dashboard: http://")
            .and_then(|rest| rest.strip_suffix('/'))
            .unwrap_or_else(|| panic!("a first line with the address: {line:?}"));
        dash.addr = url.parse().unwrap();
        assert!(dash.addr.ip().is_loopback());
        dash
    }

    /// `GET path`: the status code, the headers and the body.
    fn get(&self, path: &str) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        (code, head, raw[split + 4..].to_vec())
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn api_status_is_the_status_document_and_root_is_the_page() {
    let server = RedisServer::start();
    let config = BrokerConfig::new(server.url()).queue("jobs").consumer("w1");
    let mut broker = Broker::connect(config).unwrap();
    let info = WorkerInfo::this_process("w1", 5, vec!["sh".into()]);
    broker.register(&info, Duration::from_secs(60)).unwrap();
    for i in 0..3u8 {
        let entry = broker.entry("sh", vec![vec![i]], None);
        broker.enqueue(&entry).unwrap();
    }
    let dash = Dashboard::start(&server.url());

    let (code, head, body) = dash.get("/api/status");
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["queue"], "jobs");
    assert_eq!(doc["totals"]["waiting"], 3);
    assert_eq!(doc["workers"][0]["name"], "w1");
    assert_eq!(doc["workers"][0]["slots"], 5);

    // Fresh on each request.
    let entry = broker.entry("sh", vec![vec![9]], None);
    broker.enqueue(&entry).unwrap();
    let (_, _, body) = dash.get("/api/status");
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["totals"]["waiting"], 4);

    let (code, head, page) = dash.get("/");
    assert_eq!(code, 200);
    assert!(head.to_ascii_lowercase().contains("text/html"), "{head}");
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains("fetch(\"/api/status\""),
        "the page polls the API"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external assets"
    );

    assert_eq!(dash.get("/nope").0, 404);
}

#[test]
fn a_broker_that_cannot_be_read_is_a_502_with_the_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dash = Dashboard::start(&format!("redis://127.0.0.1:{port}/"));
    let (code, _, body) = dash.get("/api/status");
    assert_eq!(code, 502);
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let msg = doc["error"].as_str().unwrap();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
}

#[test]
fn an_address_in_use_is_one_line_and_255() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut cmd = bin();
    cmd.args(["dashboard", "--broker", "redis://127.0.0.1:1/"])
        .args(["--listen", &addr]);
    let done = common::spawn_and_wait(cmd, None);
    done.status(255);
    let err = done.err();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&addr), "{err}");
}
