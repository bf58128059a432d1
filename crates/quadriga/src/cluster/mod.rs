//! The cluster backend's broker layer (cargo feature `cluster`): tasks carried
//! by Redis Streams with consumer groups, so that workers on many hosts share
//! a queue and nothing the broker confirmed is lost when a worker, the
//! network or the broker fails.
//!
//! This is the layer the cluster pool and worker stand on; it is not yet a
//! stable API (hence hidden from the docs). Everything here is synchronous,
//! on the `redis` crate's blocking connections with explicit timeouts: no
//! async runtime.
//!
//! # The model
//!
//! * A queue is sharded over N streams, one consumer group each (key layout in
//!   `keys.rs`). An **entry** is a batch of items of one task (`entry.rs`):
//!   task name, client, shard, deadline, attempt, and per item a sequence
//!   number and the encoded input. A [`TaskId`] is (shard, client, sequence).
//! * **Enqueue** adds the entry and an "enqueued" marker per task, once.
//! * A worker **reads** only as many entries as it has free slots
//!   ([`Reader`], its own connection for `BLOCK`).
//! * **Lease = idle time** in the pending list. The holder's
//!   [`heartbeat`](Broker::heartbeat) re-claims its entries (`XCLAIM ...
//!   JUSTID`: idle reset, delivery count kept). A [`sweep`](Broker::sweep)
//!   reclaims entries idle past the lease (`XAUTOCLAIM`, count raised); past
//!   the delivery limit the entry becomes a dead letter and its tasks `lost`.
//! * **Fenced completion**: outcomes are recorded (first writer wins, with a
//!   TTL), the entry acknowledged and the client told in one script, only if
//!   the caller still holds the entry: a worker whose lease lapsed (paused,
//!   partitioned) cannot ack or overwrite what a newer holder does.
//! * [`fetch`](Broker::fetch) by task id: the outcome, pending, or an error
//!   for an id never enqueued (never "pending" for ever).
//! * Every write is a script or command that is **safe to repeat**, because a
//!   reply lost with a dropped connection leaves the caller unsure whether it
//!   ran ([`Error::is_outcome_unknown`]).
//! * Durability is read on connect ([`Durability`]), not assumed.
//!
//! The scripts' exact contracts are in `scripts.rs`.

// Not a stable API yet: the pool and worker built on it will be.
#![doc(hidden)]

mod broker;
mod config;
mod conn;
mod delivery;
mod durability;
mod entry;
mod error;
mod keys;
mod outcome;
mod reader;
mod reply;
mod scripts;
mod workers;

pub use broker::{Broker, Completion, DeadLetter, DeadLettered, Sweep};
pub use config::BrokerConfig;
pub use delivery::Delivery;
pub use durability::Durability;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub use entry::fuzz_decode_entry;
pub use entry::{DEFAULT_MAX_ENTRY_BYTES, Entry, FIELD, Item, MAX_ITEMS, MAX_TASK_NAME};
pub use error::{Error, ErrorKind};
pub use keys::{GROUP, Keys, MAX_SHARDS, TaskId};
pub use outcome::Outcome;
pub use reader::Reader;
pub use workers::WorkerInfo;
