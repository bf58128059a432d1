//! Fetching pages concurrently: the classic aiohttp example, with Quadriga's
//! async glue.
//!
//! It starts a small HTTP server on the loopback interface (127.0.0.1, a free
//! port) that serves numbered pages after a simulated latency, fetches them all
//! concurrently through [`bounded`]`(..).gather()` (so at most `--limit` at a
//! time), and sends the CPU-heavy step of each page (counting its words) to a
//! pool, awaiting it without blocking the runtime.
//!
//! ```text
//! $ cargo run -p quadriga --features async --example fetch_pages
//! Page 0 length: 817 characters
//! Page 1 length: 1112 characters
//! ...
//! Page 19 length: 1640 characters
//! 20 pages, 38970 characters, 4870 words (counted on 2 threads), in 0.16 s: 50 ms latency each, 8 at a time
//! ```
//!
//! Options: `PAGES` (default 20, at most 10,000), `--latency-ms N` (default 50),
//! `--limit N` (default 8), and `--processes` to count words in worker
//! processes instead of threads (the same `submit`, one line changed).

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use quadriga::aio::{Limit, bounded};
use quadriga::{ProcessPool, TaskError, TaskHandle, ThreadPool};

/// The CPU-heavy step: words and distinct words of a page.
#[quadriga::task]
fn word_stats(text: String) -> (usize, usize) {
    let words: Vec<&str> = text.split_whitespace().collect();
    let distinct: HashSet<&str> = words.iter().copied().collect();
    (words.len(), distinct.len())
}

/// Where the CPU-heavy step runs: switching backend is one line.
enum Pool {
    Threads(ThreadPool),
    Processes(ProcessPool),
}

impl Pool {
    fn submit(&self, text: String) -> TaskHandle<(usize, usize)> {
        match self {
            Pool::Threads(p) => p.submit(word_stats, text),
            Pool::Processes(p) => p.submit(word_stats, text),
        }
    }

    fn describe(&self) -> String {
        match self {
            Pool::Threads(p) => format!("{} threads", p.threads()),
            Pool::Processes(p) => format!("{} worker processes", p.workers()),
        }
    }
}

/// Page `i`'s text: a few hundred words, a different number per page.
fn page(i: usize) -> String {
    const WORDS: [&str; 8] = [
        "quadriga",
        "chariot",
        "horses",
        "abreast",
        "threads",
        "processes",
        "async",
        "cluster",
    ];
    let n = 100 + (i * 37) % 300;
    let mut text = format!("<h1>Page {i}</h1>\n");
    for k in 0..n {
        text.push_str(WORDS[(i + k * 7) % WORDS.len()]);
        text.push(if k % 12 == 11 { '\n' } else { ' ' });
    }
    text
}

/// Serves `GET /page/{i}` for `i < pages` on 127.0.0.1 (a free port), each
/// after `latency`; returns the address.
async fn serve(pages: usize, latency: Duration) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                let found = req
                    .uri()
                    .path()
                    .strip_prefix("/page/")
                    .and_then(|i| i.parse::<usize>().ok())
                    .filter(|&i| i < pages);
                tokio::time::sleep(latency).await;
                let response = match found {
                    Some(i) => Response::new(Full::new(Bytes::from(page(i)))),
                    None => {
                        let mut r = Response::new(Full::new(Bytes::from_static(b"no such page")));
                        *r.status_mut() = StatusCode::NOT_FOUND;
                        r
                    }
                };
                Ok::<_, Infallible>(response)
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// `GET url` and the body as text; any failure is a `TaskError`.
async fn fetch(client: &HttpClient, url: hyper::Uri) -> Result<String, TaskError> {
    let response = client.get(url).await.map_err(TaskError::failed)?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(TaskError::failed)?
        .to_bytes();
    if !status.is_success() {
        return Err(TaskError::failed(format!("HTTP {status}")));
    }
    String::from_utf8(body.to_vec()).map_err(TaskError::failed)
}

struct Options {
    pages: usize,
    latency: Duration,
    limit: usize,
    processes: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        pages: 20,
        latency: Duration::from_millis(50),
        limit: 8,
        processes: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--latency-ms" => o.latency = Duration::from_millis(value("--latency-ms")?),
            "--limit" => o.limit = value("--limit")?.max(1) as usize,
            "--processes" => o.processes = true,
            n => o.pages = n.parse().map_err(|_| format!("unknown argument {n:?}"))?,
        }
    }
    if o.pages > 10_000 {
        return Err("at most 10,000 pages".into());
    }
    Ok(o)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    quadriga::init(); // first: a worker process of `--processes` diverts here
    let o = options()?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let pool = if o.processes {
        Pool::Processes(ProcessPool::new(cores)?)
    } else {
        Pool::Threads(ThreadPool::new(cores)?)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let pool = Arc::new(pool);
    runtime.block_on(async {
        let addr = serve(o.pages, o.latency).await?;
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let started = Instant::now();

        let fetches = (0..o.pages).map(|i| {
            let client = client.clone();
            let pool = Arc::clone(&pool);
            let url: hyper::Uri = format!("http://{addr}/page/{i}").parse().expect("a URL");
            async move {
                let text = fetch(&client, url).await?;
                let length = text.chars().count();
                // The CPU-heavy step goes to the pool; awaiting it parks this
                // future, not the runtime. `abort_on_drop`: if this future is
                // cancelled, so is the pool task.
                let (words, _distinct) = pool.submit(text).abort_on_drop().await?;
                Ok::<_, TaskError>((length, words))
            }
        });
        let pages = bounded(fetches, Limit::Fixed(o.limit)).gather().await;

        let (mut characters, mut words, mut fetched) = (0, 0, 0);
        for (i, page) in pages.into_iter().enumerate() {
            match page {
                Ok((length, w)) => {
                    println!("Page {i} length: {length} characters");
                    characters += length;
                    words += w;
                    fetched += 1;
                }
                Err(e) => println!("Page {i} failed: {e}"),
            }
        }
        println!(
            "{fetched} pages, {characters} characters, {words} words (counted on {}), in {:.2} s: {} ms latency each, {} at a time",
            pool.describe(),
            started.elapsed().as_secs_f64(),
            o.latency.as_millis(),
            o.limit,
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
