//! `quadriga dashboard` against the real binary and a private `redis-server`:
//! `GET /api/status` is the status document, `GET /` the embedded page, a
//! broker that cannot be read is a 502 with the error, and the server binds
//! where it is told and says where.

mod common;
#[path = "../../quadriga/tests/common/redis.rs"]
mod redis_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
        Self::start_with(broker, &[], &[]).0
    }

    /// Starts one with more arguments and environment; also returns its
    /// second line of stdout (about the actions).
    fn start_with(broker: &str, args: &[&str], env: &[(&str, &str)]) -> (Self, String) {
        let mut child = bin()
            .args(["dashboard", "--broker", broker, "--queue", "jobs"])
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("QUADRIGA_KEY")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for _ in 0..2 {
                let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
            }
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
        let second = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        (dash, second)
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

    /// `METHOD path` with `headers` (and `Host: <addr>` unless given): the
    /// status code and the body as JSON.
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("Content-Length: 0\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = serde_json::from_slice(&raw[split + 4..])
            .unwrap_or_else(|e| panic!("JSON from {method} {path}: {e}: {head}"));
        (code, body)
    }

    /// Opens `GET /api/events` and reads until `n` `status` events came
    /// (within 20 s); returns the open stream and what it read.
    fn events(&self, n: usize) -> (TcpStream, String) {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(s, "GET /api/events HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut text = String::new();
        let mut buf = [0u8; 8192];
        while text.matches("event: status\n").count() < n {
            assert!(
                Instant::now() < deadline,
                "{n} status events in 20 s: {text}"
            );
            let got = s.read(&mut buf).unwrap();
            assert!(got > 0, "the stream ended: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..got]));
        }
        (s, text)
    }

    /// `/api/config`'s count of open event streams.
    fn streams(&self) -> u64 {
        self.send("GET", "/api/config", &[]).1["event_streams"]
            .as_u64()
            .unwrap()
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

/// A queue with one dead letter (and a worker record): returns its shard and
/// id.
fn dead_letter(server: &RedisServer) -> (u16, String) {
    let config = BrokerConfig::new(server.url()).queue("jobs");
    let mut client = Broker::connect(config.clone().consumer("client")).unwrap();
    let mut thief = Broker::connect(config.consumer("thief")).unwrap();
    let entry = client.entry("sh", vec![vec![1]], None);
    client.enqueue(&entry).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let d = loop {
        assert!(Instant::now() < deadline, "nothing to read");
        if let Some(d) = thief
            .reader()
            .read(1, Duration::from_millis(100))
            .unwrap()
            .pop()
        {
            break d;
        }
    };
    thief.dead_letter(&d, "a test's dead letter").unwrap();
    let letter = thief.dead_letters(0, 10).unwrap().remove(0);
    (0, letter.id)
}

#[test]
fn events_stream_the_status_each_second_and_closed_streams_are_let_go() {
    let server = RedisServer::start();
    let (shard, id) = dead_letter(&server);
    let dash = Dashboard::start(&server.url());
    let (first, text) = dash.events(2);
    let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    let data = |name: &str| -> serde_json::Value {
        let at = text.find(&format!("event: {name}\ndata: ")).unwrap();
        let line = text[at..].lines().nth(1).unwrap();
        serde_json::from_str(line.strip_prefix("data: ").unwrap()).unwrap()
    };
    assert_eq!(data("status")["queue"], "jobs");
    assert_eq!(data("status")["totals"]["dead_letters"], 1);
    assert_eq!(data("dead")[0]["id"], id.as_str());
    assert_eq!(data("dead")[0]["shard"], shard);
    assert_eq!(data("failures"), serde_json::json!([]));
    // One reading a second: the two documents are about a second apart on
    // the broker's clock.
    let times: Vec<u64> = text
        .split("event: status\ndata: ")
        .skip(1)
        .map(|rest| {
            let doc: serde_json::Value =
                serde_json::from_str(rest.lines().next().unwrap()).unwrap();
            doc["server_time_ms"].as_u64().unwrap()
        })
        .collect();
    assert!(times[1] >= times[0] + 500, "{times:?}");

    // Three more, then all closed: the server lets each go.
    let more: Vec<_> = (0..3).map(|_| dash.events(1).0).collect();
    assert_eq!(dash.streams(), 4);
    drop(first);
    drop(more);
    let deadline = Instant::now() + Duration::from_secs(10);
    while dash.streams() > 0 {
        assert!(Instant::now() < deadline, "closed streams still counted");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Meanwhile the chart's history grew, one sample a second.
    let (code, history) = dash.send("GET", "/api/history", &[]);
    assert_eq!(code, 200);
    let samples = history.as_array().unwrap();
    assert!(samples.len() >= 2, "{history}");
    let t = |i: usize| samples[i]["t_ms"].as_u64().unwrap();
    assert!(t(1) > t(0), "{history}");
    assert!(samples[0]["per_second"].is_number() && samples[0]["waiting"].is_u64());
}

#[test]
fn actions_are_off_without_a_key() {
    let server = RedisServer::start();
    let (shard, id) = dead_letter(&server);
    let (dash, note) = Dashboard::start_with(&server.url(), &[], &[]);
    assert!(note.contains("are off"), "{note}");
    assert_eq!(dash.send("GET", "/api/config", &[]).1["actions"], false);
    let (code, body) = dash.send("POST", &format!("/api/dead/{shard}/{id}/requeue"), &[]);
    assert_eq!(code, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("--key-file"),
        "{body}"
    );
    assert_eq!(dash.send("GET", "/api/dead", &[]).1[0]["id"], id.as_str());
}

#[test]
fn actions_need_the_token_a_loopback_host_and_the_same_origin() {
    let server = RedisServer::start();
    let (shard, id) = dead_letter(&server);
    let dir = std::env::temp_dir().join(format!("quadriga-dash-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key");
    std::fs::write(&key, "a test key of more than 16 bytes\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key_arg = key.to_str().unwrap();
    let (dash, note) = Dashboard::start_with(&server.url(), &["--key-file", key_arg], &[]);
    let token = note
        .rsplit_once("#token=")
        .map(|(_, t)| t.trim().to_owned())
        .unwrap_or_else(|| panic!("a URL with the token: {note}"));
    assert_eq!(token.len(), 64, "{note}");
    assert_eq!(dash.send("GET", "/api/config", &[]).1["actions"], true);
    let requeue = format!("/api/dead/{shard}/{id}/requeue");
    let evil_host = format!("evil.example:{}", dash.addr.port());
    let own_origin = format!("http://{}", dash.addr);
    for (headers, why) in [
        (vec![], "no token"),
        (vec![("X-Quadriga-Token", "0".repeat(64))], "a wrong token"),
        (
            vec![
                ("X-Quadriga-Token", token.clone()),
                ("Origin", "http://evil.example".to_owned()),
            ],
            "another origin",
        ),
        (
            vec![
                ("X-Quadriga-Token", token.clone()),
                ("Host", evil_host.clone()),
            ],
            "a rebound name",
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, body) = dash.send("POST", &requeue, &headers);
        assert_eq!(code, 403, "{why}: {body}");
    }
    // A rebound name cannot read either.
    assert_eq!(
        dash.send("GET", "/api/status", &[("Host", &evil_host)]).0,
        403
    );
    assert_eq!(dash.send("GET", "/api/dead", &[]).1[0]["id"], id.as_str());

    let good = [
        ("X-Quadriga-Token", token.as_str()),
        ("Origin", own_origin.as_str()),
    ];
    let (code, body) = dash.send("POST", &requeue, &good);
    assert_eq!(
        (code, &body["result"]),
        (200, &serde_json::json!("requeued")),
        "{body}"
    );
    let (code, body) = dash.send("POST", &requeue, &good);
    assert_eq!(
        (code, &body["result"]),
        (200, &serde_json::json!("gone")),
        "a repeat: {body}"
    );
    assert_eq!(dash.send("GET", "/api/dead", &[]).1, serde_json::json!([]));
    let status = dash.send("GET", "/api/status", &[]).1;
    assert_eq!(
        status["totals"]["waiting"], 1,
        "back in the queue: {status}"
    );

    let (shard, id) = dead_letter(&server);
    let discard = format!("/api/dead/{shard}/{id}/discard");
    let (code, body) = dash.send("POST", &discard, &good);
    assert_eq!(
        (code, &body["result"]),
        (200, &serde_json::json!("discarded")),
        "{body}"
    );
    assert_eq!(dash.send("GET", "/api/dead", &[]).1, serde_json::json!([]));
    drop(dash);

    // The same key from the environment gives the same token.
    let (_dash, note) = Dashboard::start_with(
        &server.url(),
        &[],
        &[("QUADRIGA_KEY", "a test key of more than 16 bytes")],
    );
    assert!(note.ends_with(&format!("#token={token}")), "{note}");

    // A key file others may read is refused, as is a short key.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = bin();
    cmd.args([
        "dashboard",
        "--broker",
        &server.url(),
        "--listen",
        "127.0.0.1:0",
    ])
    .args(["--key-file", key_arg]);
    let done = common::spawn_and_wait(cmd, None);
    done.status(255);
    assert!(done.err().contains("chmod 600"), "{}", done.err());
    let mut cmd = bin();
    cmd.args([
        "dashboard",
        "--broker",
        &server.url(),
        "--listen",
        "127.0.0.1:0",
    ])
    .env("QUADRIGA_KEY", "short");
    let done = common::spawn_and_wait(cmd, None);
    done.status(255);
    assert!(done.err().contains("at least 16"), "{}", done.err());
    let _ = std::fs::remove_dir_all(&dir);
}
