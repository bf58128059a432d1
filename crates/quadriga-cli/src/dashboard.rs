//! `quadriga dashboard`: a live page of a cluster queue, served by the
//! binary with its one page embedded (no external assets). hyper on a
//! one-thread tokio runtime; the broker client is synchronous, so broker
//! reads run on blocking threads.
//!
//! - `feed.rs`: one thread reads the queue every second and publishes the
//!   status, failures and dead letters as server-sent events, keeping a
//!   ring of samples for the chart (`history.rs`);
//! - `events.rs`: `GET /api/events`, the stream to each page;
//! - `guard.rs`: the `Host` check on every request, and the token and
//!   `Origin` checks on actions;
//!
//! It binds to loopback unless `--listen` says otherwise (and then warns),
//! and prints the address it listens on as its first line of stdout; with a
//! key, a second line gives the URL that carries the action token.

mod events;
mod feed;
mod guard;
mod history;

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use quadriga::cluster::{Broker, BrokerConfig, QueueReader, Requeued, read_failures, read_status};

use crate::remote::key::{KEY_ENV, Key, Purpose};
use feed::{Feed, error};
use guard::Guard;

pub(crate) const AFTER_HELP: &str = "Routes:
  GET /                 the live page: workers, shards, a throughput and run-time chart,
                        recent failures, dead letters (with requeue and discard buttons
                        when the actions are on)
  GET /api/status       the `quadriga status --json` document, read fresh (502 with
                        {\"error\": ...} when the broker cannot be read)
  GET /api/events       server-sent events, one set a second: `status` (the document),
                        `failures`, `dead`, or `broker-error`
  GET /api/history      the chart's samples of the last ten minutes, one a second
  GET /api/failures     the recent failures (task, worker, error, location, backtrace)
  GET /api/dead         the dead letters
  GET /api/config       {\"actions\": bool, \"event_streams\": open streams}
  POST /api/dead/SHARD/ID/requeue, POST /api/dead/SHARD/ID/discard
                        the actions: they need a key (--key-file, or QUADRIGA_KEY) and
                        the header X-Quadriga-Token: the token in the URL printed at start

The key has at least 16 bytes; a key file must not be readable by group or others.
Listening on loopback (the default), only requests naming loopback in their Host are
served, against DNS rebinding.

Example:
  quadriga dashboard --broker redis://127.0.0.1:6379/ --listen 127.0.0.1:8470 --key-file ~/.quadriga-key";

/// `quadriga dashboard` options.
#[derive(Debug, Args)]
pub(crate) struct DashboardArgs {
    /// The broker: redis://[user:password@]host:port/[db]
    #[arg(long, value_name = "URL")]
    pub(crate) broker: String,
    /// The queue to show.
    #[arg(long, value_name = "Q", default_value = "default")]
    pub(crate) queue: String,
    /// The key prefix the queue lives under.
    #[arg(long, value_name = "P", default_value = "quadriga")]
    pub(crate) prefix: String,
    /// Where to listen (port 0: any free port; the address is printed). A
    /// non-loopback address is warned about.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8470")]
    pub(crate) listen: SocketAddr,
    /// Turns the actions (requeue, discard) on with the key in F (at least
    /// 16 bytes, readable by its owner only). Without it, QUADRIGA_KEY is
    /// used if set; with neither, the actions are off.
    #[arg(long, value_name = "F")]
    pub(crate) key_file: Option<PathBuf>,
}

/// The embedded page.
const PAGE: &str = include_str!("dashboard.html");

/// What every request sees.
struct App {
    config: BrokerConfig,
    guard: Guard,
    feed: Arc<Feed>,
}

type Body = BoxBody<Bytes, Infallible>;

/// Serves until killed.
pub(crate) fn run(args: &DashboardArgs) -> anyhow::Result<()> {
    let key = Key::load_if_given(args.key_file.as_deref())?;
    let config = BrokerConfig::new(&args.broker)
        .queue(&args.queue)
        .prefix(&args.prefix)
        .connect_timeout(Duration::from_secs(2))
        .io_timeout(Duration::from_secs(3));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the HTTP server's runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            eprintln!(
                "quadriga dashboard: warning: listening on {addr}, not loopback: anyone who \
                 can reach it sees the queue{}",
                if key.is_some() {
                    " (the actions still need the token)"
                } else {
                    ""
                }
            );
        }
        let token = key.as_ref().map(|k| k.subkey(Purpose::Dashboard).hex());
        let mut lines = format!("quadriga dashboard: http://{addr}/\n");
        lines.push_str(&match &token {
            Some(t) => format!(
                "quadriga dashboard: requeue and discard are on at http://{addr}/#token={t}\n"
            ),
            None => format!(
                "quadriga dashboard: requeue and discard are off (no --key-file or {})\n",
                KEY_ENV
            ),
        });
        // One write; a reader that stops reading (or a closed stdout) does
        // not stop the server.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(lines.as_bytes()).and_then(|()| out.flush());
        drop(out);
        let app = Arc::new(App {
            feed: Feed::start(&config)?,
            config,
            guard: Guard::new(addr, token),
        });
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                // Out of descriptors and the like: wait a little, go on.
                Err(e) => {
                    eprintln!("quadriga dashboard: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, Arc::clone(&app)));
                // A client that goes away mid-request is its own business.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

const JSON: &str = "application/json";

fn reply(code: StatusCode, kind: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(Full::new(body.into()).boxed());
    *res.status_mut() = code;
    if let Ok(value) = kind.parse() {
        res.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    if let Ok(value) = "no-store".parse() {
        res.headers_mut()
            .insert(hyper::header::CACHE_CONTROL, value);
    }
    res
}

fn json(code: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => reply(code, JSON, body),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            JSON,
            error(&e).to_string(),
        ),
    }
}

/// Runs a broker call off the runtime's thread: its value as JSON, a broker
/// error as 502.
async fn blocking<T: serde::Serialize + Send + 'static>(
    f: impl FnOnce() -> Result<T, quadriga::cluster::Error> + Send + 'static,
) -> Response<Body> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => json(StatusCode::OK, &v),
        Ok(Err(e)) => json(StatusCode::BAD_GATEWAY, &error(&e)),
        Err(e) => json(StatusCode::INTERNAL_SERVER_ERROR, &error(&e)),
    }
}

async fn answer(req: Request<Incoming>, app: Arc<App>) -> Result<Response<Body>, Infallible> {
    if let Err(refused) = app.guard.request(req.headers()) {
        return Ok(json(StatusCode::FORBIDDEN, &error(&refused.message())));
    }
    let path = req.uri().path().to_owned();
    Ok(match (req.method(), path.as_str()) {
        (&Method::GET, "/") => reply(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        (&Method::GET, "/api/status") => {
            let config = app.config.clone();
            blocking(move || read_status(&config)).await
        }
        (&Method::GET, "/api/failures") => {
            let config = app.config.clone();
            blocking(move || read_failures(&config, feed::FAILURES)).await
        }
        (&Method::GET, "/api/dead") => {
            let config = app.config.clone();
            blocking(move || {
                let mut reader = QueueReader::new(&config)?;
                let status = reader.status()?;
                let shards = status
                    .shards
                    .iter()
                    .filter(|s| s.dead_letters > 0)
                    .map(|s| s.shard);
                reader.dead_letters(shards, feed::DEAD)
            })
            .await
        }
        (&Method::GET, "/api/history") => {
            let samples: Vec<_> = app.feed.history().samples().cloned().collect();
            json(StatusCode::OK, &samples)
        }
        (&Method::GET, "/api/config") => json(
            StatusCode::OK,
            &serde_json::json!({
                "actions": app.guard.actions(),
                "event_streams": app.feed.streams.load(Ordering::Acquire),
            }),
        ),
        (&Method::GET, "/api/events") => match events::open(&app.feed) {
            Some(body) => {
                let mut res = Response::new(body.boxed());
                for (name, value) in [
                    (hyper::header::CONTENT_TYPE, "text/event-stream"),
                    (hyper::header::CACHE_CONTROL, "no-store"),
                ] {
                    if let Ok(v) = value.parse() {
                        res.headers_mut().insert(name, v);
                    }
                }
                res
            }
            None => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &error(&"too many event streams are open; poll /api/status instead"),
            ),
        },
        (&Method::POST, p) if p.starts_with("/api/dead/") => action(&req, &app, p).await,
        (&Method::GET, _) => json(StatusCode::NOT_FOUND, &error(&"no such page")),
        _ => json(
            StatusCode::METHOD_NOT_ALLOWED,
            &error(&"only GET is served, and POST for the actions"),
        ),
    })
}

/// What an action does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Requeue,
    Discard,
}

/// `/api/dead/SHARD/ID/VERB`: the shard, the dead letter's id (a stream id,
/// `<ms>-<n>`) and the verb.
fn parse_action(path: &str) -> Option<(u16, String, Verb)> {
    let rest = path.strip_prefix("/api/dead/")?;
    let mut parts = rest.split('/');
    let shard = parts.next()?.parse().ok()?;
    let id = parts.next()?;
    let verb = match parts.next()? {
        "requeue" => Verb::Requeue,
        "discard" => Verb::Discard,
        _ => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    let (ms, n) = id.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    (digits(ms) && digits(n)).then(|| (shard, id.to_owned(), verb))
}

async fn action(req: &Request<Incoming>, app: &App, path: &str) -> Response<Body> {
    if let Err(refused) = app.guard.action(req.headers()) {
        return json(StatusCode::FORBIDDEN, &error(&refused.message()));
    }
    let Some((shard, id, verb)) = parse_action(path) else {
        return json(
            StatusCode::NOT_FOUND,
            &error(&"not an action: POST /api/dead/SHARD/ID/requeue or …/discard"),
        );
    };
    let config = app.config.clone().shards(shard.saturating_add(1));
    blocking(move || {
        let mut broker = Broker::connect(config)?;
        Ok(match verb {
            Verb::Requeue => match broker.requeue_dead(shard, &id)? {
                Requeued::Requeued { entry, cleared } => serde_json::json!({
                    "result": "requeued", "entry": entry, "cleared": cleared,
                }),
                Requeued::Gone => serde_json::json!({ "result": "gone" }),
            },
            Verb::Discard => {
                let found = broker.discard_dead(shard, &id)?;
                serde_json::json!({ "result": if found { "discarded" } else { "gone" } })
            }
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_paths_name_a_shard_a_stream_id_and_a_verb() {
        assert_eq!(
            parse_action("/api/dead/3/1700000000000-12/requeue"),
            Some((3, "1700000000000-12".into(), Verb::Requeue))
        );
        assert_eq!(
            parse_action("/api/dead/0/1-0/discard"),
            Some((0, "1-0".into(), Verb::Discard))
        );
        for bad in [
            "/api/dead/x/1-0/requeue",
            "/api/dead/0/1-0/delete",
            "/api/dead/0/1/requeue",
            "/api/dead/0/1-0/requeue/more",
            "/api/dead/0/+-0/requeue",
            "/api/dead/70000/1-0/requeue",
        ] {
            assert_eq!(parse_action(bad), None, "{bad}");
        }
    }
}
