//! [`BrokerConfig`]: where the broker is, which queue, and every timeout and
//! limit of the broker layer, with defaults.

use std::time::Duration;

use super::entry::DEFAULT_MAX_ENTRY_BYTES;

/// How to reach the broker and how to use it. Built with chained setters:
///
/// ```
/// # #[cfg(feature = "cluster")] {
/// use std::time::Duration;
/// use quadriga::cluster::BrokerConfig;
///
/// let config = BrokerConfig::new("redis://127.0.0.1:6379/")
///     .queue("squares")
///     .shards(4)
///     .lease(Duration::from_secs(5));
/// assert_eq!(config.max_deliveries, 4); // one delivery and 3 retries on worker loss
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `redis://[user:password@]host:port/[db]` (or `unix://`) for one
    /// server; `redis+cluster://[user:password@]host:port[,host:port...]/`
    /// for a Redis Cluster, given by one or more seed nodes (the client
    /// learns the others; each shard's keys share a hash tag, so the shards
    /// spread over the cluster's nodes). `rediss://` and `rediss+cluster://`
    /// connect over TLS, trusting the system's root certificates (or the
    /// bundle named by `SSL_CERT_FILE`).
    pub url: String,
    /// The first part of every key (default `quadriga`).
    pub prefix: String,
    /// The queue's name (default `default`).
    pub queue: String,
    /// How many streams the queue is sharded over (default 1).
    pub shards: u16,
    /// This client's consumer name in the group; by default
    /// `<host>-<pid>-<random>`, unique per broker handle family.
    pub consumer: Option<String>,
    /// How long a connection attempt (TCP and handshake) may take (default 2 s).
    pub connect_timeout: Duration,
    /// How long a command may wait for its reply (default 5 s). A blocking
    /// read waits its block time plus this.
    pub io_timeout: Duration,
    /// The longest a task waits after its worker is lost before it runs
    /// elsewhere (default 10 s): holders heartbeat every third of it, and an
    /// entry without a heartbeat for four fifths of it is reclaimed by the
    /// next sweep (every tenth of it).
    pub lease: Duration,
    /// Deliveries after which a reclaimed entry is dead-lettered instead of
    /// run again: 1 + retries on worker loss (default 4).
    pub max_deliveries: u64,
    /// How long an outcome is kept under its task id (default 1 day).
    pub result_ttl: Duration,
    /// How long an entry's record is kept until it completes (then
    /// `result_ttl` applies): fetching an id after this says unknown
    /// (default 7 days).
    pub task_ttl: Duration,
    /// The largest entry accepted, encoded (default 16 MiB); larger inputs are
    /// refused before anything is sent.
    pub max_entry_bytes: usize,
    /// Refuse to connect to a server that does not persist writes
    /// (`appendonly no`, or settings that cannot be read). Default: warn only.
    pub require_durable: bool,
    /// About how many notifications a client's reply stream keeps (default
    /// 100,000).
    pub reply_maxlen: usize,
}

impl BrokerConfig {
    /// The defaults, for the broker at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "quadriga".into(),
            queue: "default".into(),
            shards: 1,
            consumer: None,
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(5),
            lease: Duration::from_secs(10),
            max_deliveries: 4,
            result_ttl: Duration::from_secs(24 * 3600),
            task_ttl: Duration::from_secs(7 * 24 * 3600),
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            require_durable: false,
            reply_maxlen: 100_000,
        }
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the queue's name.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Sets the number of shards.
    pub fn shards(mut self, shards: u16) -> Self {
        self.shards = shards;
        self
    }

    /// Sets this client's consumer name.
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = Some(name.into());
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the reply timeout of ordinary commands.
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// Sets the lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets the number of deliveries before an entry is dead-lettered.
    pub fn max_deliveries(mut self, n: u64) -> Self {
        self.max_deliveries = n;
        self
    }

    /// Sets how long outcomes are kept.
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = ttl;
        self
    }

    /// Sets the largest entry accepted.
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry_bytes = bytes;
        self
    }

    /// Refuses a server that does not persist writes.
    pub fn require_durable(mut self, yes: bool) -> Self {
        self.require_durable = yes;
        self
    }
}
