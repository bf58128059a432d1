//! The loopback HTTP server the download workload fetches from: every `GET`
//! is answered with 16 KiB after a fixed latency, as a slow remote server
//! would, on two tokio threads of this process.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::runtime::Runtime;

/// The body of every answer.
static BODY: [u8; 16384] = [b'x'; 16384];

/// A running server; dropping it stops it.
#[derive(Debug)]
pub(super) struct SlowServer {
    /// Owns the server's task: dropping the runtime stops it.
    _rt: Runtime,
    addr: SocketAddr,
}

impl SlowServer {
    /// Starts serving on 127.0.0.1 (a free port), answering after `latency`.
    pub(super) fn start(latency: Duration) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("building the server's runtime")?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
            .context("binding the loopback server")?;
        let addr = listener.local_addr()?;
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let service = hyper::service::service_fn(move |_: Request<Incoming>| async move {
                    tokio::time::sleep(latency).await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(&BODY))))
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { _rt: rt, addr })
    }

    /// The URL of item `{}` (a template for `quadriga run`'s replacement).
    pub(super) fn url_template(&self) -> String {
        format!("http://{}/{{}}", self.addr)
    }
}
