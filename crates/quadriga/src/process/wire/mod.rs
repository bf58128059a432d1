//! The wire between the supervisor and its workers: length-delimited frames of
//! `postcard`, over an inherited socket pair.
//!
//! * `frame.rs`: a little-endian `u32` length, then that many bytes of one
//!   postcard-encoded message; the length is checked against a bound *before*
//!   anything is allocated, so a corrupt or hostile peer cannot make the other
//!   side allocate more than the bound ([`encode`], [`Decoder`]);
//! * `message.rs`: [`Down`] to a worker, [`Up`] from it;
//! * `outbox.rs`: frames on their way to a worker, with the descriptors of the
//!   IPC objects in their inputs ([`Outbox`]);
//! * `inbox.rs`: those descriptors on the worker's side, queued until a frame
//!   claims them ([`Inbox`]);
//! * `stall.rs`: how a sender copes with sends refused for want of a kernel
//!   resource ([`Stall`]);
//! * `fuzz.rs`: the decoder's fuzz entry point (tests and fuzzing only).
//!
//! Task inputs and outputs travel as the task core's batches
//! ([`Batch`](crate::task::batch::Batch),
//! [`Outcomes`](crate::task::outcomes::Outcomes)): each item encoded on its own, so
//! the supervisor can split a batch after a crash without knowing the task's
//! types. Descriptors go as `SCM_RIGHTS` through `crate::shm::passing`.

mod frame;
#[cfg(any(test, feature = "fuzzing"))]
mod fuzz;
mod inbox;
mod message;
mod outbox;
mod stall;
#[cfg(test)]
mod tests;

pub(crate) use crate::shm::passing::is_shortage;
pub(crate) use frame::{DEFAULT_MAX_FRAME, Decoder, FrameError, encode};
#[cfg(any(test, feature = "fuzzing"))]
pub use fuzz::fuzz_decode;
pub(crate) use inbox::Inbox;
pub(crate) use message::{Down, PROTOCOL, Up};
pub(crate) use outbox::Outbox;
pub(crate) use stall::Stall;
