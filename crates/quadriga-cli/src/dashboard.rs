//! `quadriga dashboard`: the first slice of the cluster dashboard. A small
//! HTTP server (hyper on a one-thread tokio runtime, both already in the
//! workspace) with two routes:
//!
//! - `GET /api/status`: the `quadriga status --json` document, read fresh
//!   from the broker on each request (502 with `{"error": …}` when the broker
//!   cannot be read);
//! - `GET /`: one embedded page (no external assets) that polls it every
//!   second and draws the workers and shards tables.
//!
//! It binds to loopback unless told otherwise, and prints the address it
//! listens on as its first line of stdout.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use quadriga::cluster::{BrokerConfig, read_status};

pub(crate) const AFTER_HELP: &str = "Routes:
  GET /            a live page: the status tables, refreshed every second
  GET /api/status  the `quadriga status --json` document (502 with {\"error\": ...}
                   when the broker cannot be read)

Example:
  quadriga dashboard --broker redis://127.0.0.1:6379/ --listen 127.0.0.1:8470";

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
    /// Where to listen (port 0: any free port; the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8470")]
    pub(crate) listen: SocketAddr,
}

/// The embedded page.
const PAGE: &str = include_str!("dashboard.html");

/// Serves until killed.
pub(crate) fn run(args: &DashboardArgs) -> anyhow::Result<()> {
    let config = Arc::new(
        BrokerConfig::new(&args.broker)
            .queue(&args.queue)
            .prefix(&args.prefix)
            .connect_timeout(Duration::from_secs(2))
            .io_timeout(Duration::from_secs(3)),
    );
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
        let mut out = std::io::stdout().lock();
        writeln!(out, "quadriga dashboard: http://{addr}/")?;
        out.flush()?;
        drop(out);
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
            let config = Arc::clone(&config);
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, Arc::clone(&config)));
                // A client that goes away mid-request is its own business.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn answer(
    req: Request<Incoming>,
    config: Arc<BrokerConfig>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |code: StatusCode, kind: &str, body: Vec<u8>| {
        let mut res = Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = code;
        if let Ok(value) = kind.parse() {
            res.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
        }
        if let Ok(value) = "no-store".parse() {
            res.headers_mut()
                .insert(hyper::header::CACHE_CONTROL, value);
        }
        res
    };
    const JSON: &str = "application/json";
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            PAGE.as_bytes().to_vec(),
        ),
        (&Method::GET, "/api/status") => {
            // The broker client is synchronous: off the runtime's thread.
            let read = tokio::task::spawn_blocking(move || read_status(&config)).await;
            match read {
                Ok(Ok(status)) => match serde_json::to_vec(&status) {
                    Ok(body) => reply(StatusCode::OK, JSON, body),
                    Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, JSON, error(&e)),
                },
                Ok(Err(e)) => reply(StatusCode::BAD_GATEWAY, JSON, error(&e)),
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, JSON, error(&e)),
            }
        }
        (&Method::GET, _) => reply(StatusCode::NOT_FOUND, JSON, error(&"no such page")),
        _ => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            JSON,
            error(&"only GET is served"),
        ),
    })
}

fn error(e: &dyn std::fmt::Display) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": e.to_string() })).unwrap_or_default()
}
