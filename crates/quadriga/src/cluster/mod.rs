//! The cluster backend (cargo feature `cluster`): tasks carried by Redis
//! Streams with consumer groups, so that workers on many hosts share a queue
//! and nothing the broker confirmed is lost when a worker, the network or the
//! broker fails.
//!
//! [`ClusterPool`] is the client: it answers the same calls as the local
//! pools, so switching is one line. [`Worker`] serves a queue; workers are
//! the user's own binary, because only it knows its tasks:
//!
//! ```no_run
//! use quadriga::cluster::ClusterPool;
//!
//! #[quadriga::task]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Started as `QUADRIGA_CLUSTER_WORKER=redis://broker:6379/ ./app`
//!     // (on any host), this process serves the queue instead.
//!     quadriga::init();
//!     let pool = ClusterPool::connect("redis://broker:6379/")?; // was ProcessPool::new(4)?
//!     let sum: u64 = pool.map(square, 1..=10_000).map(Result::unwrap).sum();
//!     println!("sum of squares of 1..=10000 = {sum}");
//!     Ok(())
//! }
//! ```
//!
//! Everything here is synchronous, on the `redis` crate's blocking
//! connections with explicit timeouts: no async runtime. The broker layer
//! below the pool and the worker ([`Broker`], [`Reader`], [`Entry`]…) is
//! public for tools and tests, but less settled than the pool and worker.
//!
//! # The model
//!
//! * A queue is sharded over N streams, one consumer group each (key layout in
//!   `keys.rs`). An **entry** is a batch of items of one task (`entry.rs`):
//!   task name, client, shard, deadline, attempt, and per item a sequence
//!   number and the encoded input. A [`TaskId`] is (shard, client, sequence).
//! * **Enqueue** adds the entry and its **record**, once. An entry's tasks
//!   share a block of [`BLOCK`] sequence numbers, so a task id names its
//!   entry's record (one key per entry, however many tasks): where the entry
//!   is, and later its outcomes. The pool's sender thread enqueues many
//!   entries per round trip.
//! * A worker **reads** only as many entries as it has free slots
//!   ([`Reader`], its own connection for `BLOCK`).
//! * **Lease = idle time** in the pending list. The holder's
//!   [`heartbeat`](Broker::heartbeat) re-claims its entries (`XCLAIM ...
//!   JUSTID`: idle reset, delivery count kept). A [`sweep`](Broker::sweep)
//!   reclaims entries idle past the lease (`XAUTOCLAIM`, count raised); past
//!   the delivery limit the entry becomes a dead letter and its tasks `lost`.
//! * **Fenced completion**: outcomes are recorded in the entry's record
//!   (first writer wins, with a TTL), the entry acknowledged and the client
//!   told (small outcomes inline, so it reads nothing more) in one script,
//!   only if the caller still holds the entry: a worker whose lease lapsed
//!   (paused, partitioned) cannot ack or overwrite what a newer holder does.
//! * [`fetch`](Broker::fetch) by task id: the outcome, pending, or an error
//!   for an id never enqueued (never "pending" for ever).
//! * **Cancel** ([`Broker::cancel`]): the task's outcome becomes `cancelled`;
//!   a task alone in its entry leaves the queue (waiting: deleted; running:
//!   dropped from the pending list, so its holder's heartbeat reports it
//!   lost and the worker stops it).
//! * **Delayed entries** (`delayed.rs`): a countdown or a back-off waits in a
//!   per-shard sorted set on the server's clock, not in any process; workers
//!   move due entries into the stream ([`Broker::promote_due`]).
//! * **Duplicate runs** are counted by the broker as entries complete
//!   ([`Broker::duplicate_runs`]): an entry delivered `d` times adds its
//!   items × (`d` − 1).
//! * Every write is a script or command that is **safe to repeat**, because a
//!   reply lost with a dropped connection leaves the caller unsure whether it
//!   ran ([`Error::is_outcome_unknown`]).
//! * **Dead letters** can be requeued or discarded (`dead.rs`); workers
//!   record their tasks' failures in a capped stream per queue
//!   (`failures.rs`) for dashboards.
//! * Durability is read on connect ([`Durability`]), not assumed.
//! * **Redis Cluster** (`redis+cluster://host:port,host:port/`, see
//!   `address.rs`): every script and command names keys of one shard (one
//!   hash tag, one slot) only, so the shards spread over the nodes. As one
//!   command cannot wait on several slots, readers there wait on one shard at
//!   a time for a short slice, then look at all of them (`reader.rs`).
//!
//! The scripts' exact contracts are in `scripts.rs`.
//!
//! # The pool and the worker
//!
//! * [`ClusterPool`] (`pool.rs`): the client; the same calls, handles and
//!   errors as the local pools. Its receiver thread (`receiver.rs`) resolves
//!   handles from the client's reply streams (`replies.rs`).
//! * [`Worker`] (`worker.rs`): serves a queue from this binary, running
//!   entries through the task registry (`execute.rs`) on threads or, with
//!   [`Isolation::Processes`], in the local process pool's supervised
//!   children (a crash, OOM or time limit fails one task);
//!   `QUADRIGA_CLUSTER_WORKER=<url>` makes [`init`](crate::init) one
//!   (`env.rs`).

mod address;
mod broker;
mod config;
mod conn;
mod dead;
mod delayed;
mod delivery;
mod durability;
mod entry;
mod env;
mod error;
mod execute;
mod failures;
mod isolation;
mod keys;
mod outcome;
mod output;
mod pool;
mod presence;
mod reader;
mod receiver;
mod replies;
mod reply;
mod scripts;
mod sender;
mod status;
mod worker;
mod workers;

pub(crate) use env::divert_if_worker;

pub use broker::{Broker, Cancelled, Completion, DeadLetter, DeadLettered, Sweep};
pub use config::BrokerConfig;
pub use dead::{DeadLetterInfo, Requeued, read_dead_letters};
pub use delayed::Promoted;
pub use delivery::Delivery;
pub use durability::Durability;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub use entry::fuzz_decode_entry;
pub use entry::{DEFAULT_MAX_ENTRY_BYTES, Entry, FIELD, Item, MAX_ITEMS, MAX_TASK_NAME};
pub use env::WORKER_URL_ENV;
pub use error::{Error, ErrorKind};
pub use execute::{CurrentTask, current_task};
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub use failures::fuzz_parse_records;
pub use failures::{Failure, MAX_FAILURES_KEPT, MAX_PER_ENTRY, read_failures};
pub use isolation::Isolation;
pub use keys::{BLOCK, GROUP, Keys, MAX_SHARDS, TaskId};
pub use outcome::Outcome;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub use output::fuzz_decode_chunk;
pub use output::{Appended, Chunk, MAX_CHUNK, MAX_UNREAD, OutputStream};
pub use pool::{ClusterPool, ClusterPoolBuilder};
pub use presence::MAX_PRESENCE;
pub use reader::Reader;
pub use status::{QueueReader, ShardStatus, Status, Totals, WorkerStatus, read_status};
pub use worker::{Worker, WorkerBuilder, WorkerReport, WorkerStop};
pub use workers::WorkerInfo;
