//! One lazily opened connection with explicit timeouts. A connection that
//! broke, or timed out, mid-call is thrown away (a late reply must never be
//! read as the answer to the next command) and the next call opens a new one.
//!
//! The connection is to one server or, for a `redis+cluster://` URL, to a
//! Redis Cluster (the `redis` crate's cluster client, which routes each
//! command by its first key and follows `MOVED`/`ASK`). Every command the
//! broker sends names keys of one hash tag only, so either works the same.
//!
//! `rediss://` (and `rediss+cluster://`) connect over TLS (rustls, with the
//! system's root certificates; `SSL_CERT_FILE` names another CA bundle).
//! rustls takes its crypto provider from its crate features (ring, enabled by
//! our `cluster` feature); a program that also enables another provider
//! installs one as the process default before connecting.

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterConnection, ClusterPipeline};
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::io::tcp::TcpSettings;
use redis::{Client, Connection, ConnectionLike, FromRedisValue, Pipeline, Value};

use super::address::Address;
use super::error::{Error, ErrorKind};

/// How often the cluster client tries a command again after a failure (it
/// also follows redirections), and its waits between tries, in ms: short, so
/// that an unreachable cluster is reported within a bounded time.
const CLUSTER_RETRIES: u32 = 3;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 10;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 200;

#[derive(Clone)]
enum Target {
    Single(Client),
    Cluster(ClusterClient),
}

enum Con {
    Single(Connection),
    /// Boxed: the cluster client's connection is several times larger.
    Cluster(Box<ClusterConnection>),
}

impl Con {
    fn set_timeouts(&self, read: Duration, write: Duration) -> redis::RedisResult<()> {
        match self {
            Con::Single(c) => c
                .set_read_timeout(Some(read))
                .and_then(|()| c.set_write_timeout(Some(write))),
            Con::Cluster(c) => c
                .set_read_timeout(Some(read))
                .and_then(|()| c.set_write_timeout(Some(write))),
        }
    }

    fn as_dyn(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Con::Single(c) => c,
            Con::Cluster(c) => &mut **c,
        }
    }
}

/// A connection to the broker, opened on first use and after any failure.
pub(crate) struct Link {
    target: Target,
    con: Option<Con>,
    connect_timeout: Duration,
    io_timeout: Duration,
    /// `host:port`, or `cluster host:port,...` (never the URL, which may hold
    /// a password).
    addr: String,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("addr", &self.addr)
            .field("connected", &self.con.is_some())
            .finish()
    }
}

impl Link {
    pub(crate) fn new(
        url: &str,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Result<Self, Error> {
        // The parser's message does not repeat the URL (which may hold a
        // password), so it is safe to show.
        let bad =
            |e: redis::RedisError| Error::new(ErrorKind::Config, format!("bad broker URL: {e}"));
        let (target, addr) = match Address::parse(url)? {
            Address::Single(url) => {
                let client = Client::open(url.as_str()).map_err(bad)?;
                let addr = client.get_connection_info().addr().to_string();
                (Target::Single(client), addr)
            }
            Address::Cluster(seeds) => {
                let mut addrs = Vec::new();
                for seed in &seeds {
                    let client = Client::open(seed.as_str()).map_err(bad)?;
                    addrs.push(client.get_connection_info().addr().to_string());
                }
                let client = ClusterClient::builder(seeds)
                    .connection_timeout(connect_timeout)
                    .response_timeout(io_timeout)
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
                    .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
                    .tcp_settings(TcpSettings::default().set_nodelay(true))
                    .build()
                    .map_err(bad)?;
                (
                    Target::Cluster(client),
                    format!("cluster {}", addrs.join(",")),
                )
            }
        };
        Ok(Self {
            target,
            con: None,
            connect_timeout,
            io_timeout,
            addr,
        })
    }

    /// A second link to the same broker, with its own connection.
    pub(crate) fn fresh(&self) -> Self {
        Self {
            target: self.target.clone(),
            con: None,
            connect_timeout: self.connect_timeout,
            io_timeout: self.io_timeout,
            addr: self.addr.clone(),
        }
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    pub(crate) fn io_timeout(&self) -> Duration {
        self.io_timeout
    }

    /// Whether the broker is a Redis Cluster, where one command may only
    /// name keys of one hash slot (one shard).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    fn open(&self) -> redis::RedisResult<Con> {
        match &self.target {
            Target::Single(c) => c
                .get_connection_with_timeout(self.connect_timeout)
                .map(Con::Single),
            Target::Cluster(c) => c.get_connection().map(|c| Con::Cluster(Box::new(c))),
        }
    }

    /// Runs `f` on the connection, opening it first if needed, with `reply`
    /// as the read timeout. Any failure that leaves the connection in doubt
    /// drops it.
    pub(crate) fn call<T>(
        &mut self,
        what: &str,
        reply: Duration,
        f: impl FnOnce(&mut dyn ConnectionLike) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        self.call_con(what, reply, |con| f(con.as_dyn()))
    }

    /// Sends `pipe` in one round trip per server: as it is to one server; on
    /// a Redis Cluster as a cluster pipeline, each command routed to the
    /// node of its key (the cluster connection takes no plain pipeline).
    /// Replies come back in order either way.
    pub(crate) fn query_pipe<T: FromRedisValue>(
        &mut self,
        what: &str,
        pipe: &Pipeline,
    ) -> Result<T, Error> {
        let io = self.io_timeout;
        self.call_con(what, io, |con| match con {
            Con::Single(c) => pipe.query(c),
            Con::Cluster(c) => {
                let mut cluster = ClusterPipeline::new();
                for cmd in pipe.cmd_iter() {
                    cluster.add_command(cmd.clone());
                }
                cluster.query(c)
            }
        })
    }

    /// Runs `cmd` (a command without keys) on every master of a cluster, or
    /// on the one server: one reply per server.
    pub(crate) fn call_on_masters(
        &mut self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Result<Vec<Value>, Error> {
        let io = self.io_timeout;
        self.call_con(what, io, |con| match con {
            Con::Single(c) => cmd.query(c).map(|v| vec![v]),
            Con::Cluster(c) => {
                let every = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                // Without a response policy the reply maps each node's
                // address to its answer.
                match c.route_command(cmd, every)? {
                    Value::Map(pairs) => Ok(pairs.into_iter().map(|(_, v)| v).collect()),
                    other => Ok(vec![other]),
                }
            }
        })
    }

    fn call_con<T>(
        &mut self,
        what: &str,
        reply: Duration,
        f: impl FnOnce(&mut Con) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        let con = match self.con {
            Some(ref mut con) => con,
            None => {
                let con = self.open().map_err(|e| {
                    let mut err = Error::from_redis(&e, false, what);
                    if err.kind() == ErrorKind::Unreachable {
                        err = Error::new(
                            ErrorKind::Unreachable,
                            format!(
                                "{what}: no connection to the broker at {} within {:?}: {e}",
                                self.addr, self.connect_timeout
                            ),
                        );
                    }
                    err
                })?;
                self.con.insert(con)
            }
        };
        let result = con
            .set_timeouts(reply, self.io_timeout)
            .and_then(|()| f(con));
        result.map_err(|e| {
            let err = Error::from_redis(&e, true, what);
            if err.kind() != ErrorKind::Protocol {
                self.con = None;
            }
            err
        })
    }
}
