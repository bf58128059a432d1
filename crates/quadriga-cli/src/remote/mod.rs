//! Shell jobs across machines: `quadriga run --broker URL` submits each job
//! to a cluster queue; `quadriga worker` (`../worker.rs`) runs them.
//!
//! - `key.rs`: the shared key (`--key-file` or `$QUADRIGA_KEY`) and its
//!   per-purpose subkeys.
//! - `job.rs`: the signed job, the signed presence record, the result.
//! - `client.rs`: the runner's side: a thread that submits, renews the
//!   run's presence, reads output chunks and completions, and hands the
//!   runner's event loop events through a channel and a wake pipe.
//!
//! Threat model and recipes: `docs/remote.md`.

pub(crate) mod client;
pub(crate) mod job;
pub(crate) mod key;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use quadriga::cluster::BrokerConfig;

/// How far a presence record's signed time may be from a worker's clock.
pub(crate) const PRESENCE_TOLERANCE: Duration = Duration::from_secs(30);
/// How often the runner renews its presence.
pub(crate) const PRESENCE_EVERY: Duration = Duration::from_secs(2);
/// How long a presence record lives unless renewed.
pub(crate) const PRESENCE_TTL: Duration = Duration::from_secs(10);

/// `quadriga run`'s remote options.
#[derive(Debug, Clone, Args)]
pub(crate) struct RemoteArgs {
    /// Run the jobs on `quadriga worker`s of this broker instead of here
    /// (redis://host:port/, rediss://, redis+cluster://host:port,.../).
    #[arg(long, value_name = "URL", help_heading = "Remote")]
    pub(crate) broker: Option<String>,
    /// With --broker: the shared key file (mode 0600). Default: $QUADRIGA_KEY.
    #[arg(
        long,
        value_name = "FILE",
        requires = "broker",
        help_heading = "Remote"
    )]
    pub(crate) key_file: Option<PathBuf>,
    /// With --broker: the workers' queue.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "shell",
        help_heading = "Remote"
    )]
    pub(crate) queue: String,
    /// With --broker: the key prefix in Redis.
    #[arg(
        long = "broker-prefix",
        value_name = "PREFIX",
        default_value = "quadriga",
        help_heading = "Remote"
    )]
    pub(crate) prefix: String,
}

/// The broker settings a runner and its workers share.
pub(crate) fn connection(url: &str, queue: &str, prefix: &str) -> BrokerConfig {
    BrokerConfig::new(url).queue(queue).prefix(prefix)
}

/// Refuses the options that cannot work with `--broker`.
pub(crate) fn check(plan: &crate::args::Plan) -> Result<(), String> {
    let why = if plan.pipe.is_some() {
        "--pipe, --pipepart, --cat and --fifo feed data to a local job's stdin"
    } else if plan.memfree.is_some() {
        "--memfree measures this host's memory, not the workers'"
    } else if plan.load.is_some() {
        "--load measures this host's load, not the workers'"
    } else if plan.tee {
        "--tee feeds this host's stdin to local jobs"
    } else if plan.limit {
        "--limit asks a command on this host before each local job"
    } else if plan.setup.workdir.is_some() || plan.setup.files.is_some() {
        "--workdir and --files name directories on this host"
    } else if plan.setup.nice.is_some() {
        "--nice sets the priority of local jobs (run the worker under nice instead)"
    } else {
        return Ok(());
    };
    Err(format!("{why}: it cannot be used with --broker"))
}
