//! Streams: `--pipe` (stdin cut into blocks, one per job, on its stdin) and
//! `--pipepart` (a file cut in place into ranges, each spliced into its
//! job's stdin).
//!
//! - `records.rs`: where records end (`--recend`, `--recstart`, `--regexp`).
//! - `chunker.rs`: a stream into blocks of whole records (`--block`, `-N`,
//!   `--header`).
//! - `part.rs`: a file into ranges of whole records, reading only near the
//!   cuts (by `quadriga::data::Partitioner`, with the record rule of
//!   `records.rs`).
//! - `source.rs`: the blocks or ranges as the runner's input: a thread
//!   reading stdin with back-pressure (a bounded channel), or the ranges.
//! - `args.rs`: the options.
//!
//! A job's data is a [`JobStdin`], kept with the job (a retry gets it
//! again); the runner's shell writes it into the job's stdin pipe as the
//! pipe has room (`--cat`: into a temporary file; `--fifo`: into a named
//! pipe), never blocking its loop.

mod args;
mod chunker;
mod part;
mod records;
mod source;
mod writer;

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;

pub(crate) use args::PipeArgs;
pub(crate) use source::{Pulled, Source};
pub(crate) use writer::{Pumped, TempPath, Writer};

use self::chunker::Cut;

/// How a job gets its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// On its stdin.
    Stdin,
    /// `--cat`: in a temporary file named by `{}`.
    Cat,
    /// `--fifo`: through a named pipe named by `{}`.
    Fifo,
}

/// The checked stream options.
#[derive(Debug, Clone)]
pub(crate) struct PipeSpec {
    pub(crate) cut: Cut,
    /// `--pipepart -a FILE`.
    pub(crate) part: Option<std::path::PathBuf>,
    /// `--pipe -a FILE`: the stream, instead of stdin.
    pub(crate) file: Option<std::path::PathBuf>,
    /// How `--pipepart` sizes its ranges.
    pub(crate) part_block: PartBlock,
    pub(crate) delivery: Delivery,
    /// `--round-robin`: a job per slot, fed block after block.
    pub(crate) round_robin: bool,
}

/// How `--pipepart` sizes its ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartBlock {
    /// `--block SIZE`.
    Bytes(u64),
    /// `--block -N`: N ranges per job slot.
    PerSlot(u64),
}

/// A job's input data.
#[derive(Debug, Clone)]
pub(crate) enum JobStdin {
    /// A block: header, then records.
    Block { header: Bytes, body: Bytes },
    /// `--pipepart`: a header, then this range of the file.
    Range {
        header: Bytes,
        file: Arc<File>,
        start: u64,
        end: u64,
    },
}

impl JobStdin {
    /// Its length in bytes.
    pub(crate) fn len(&self) -> u64 {
        match self {
            JobStdin::Block { header, body } => (header.len() + body.len()) as u64,
            JobStdin::Range {
                header, start, end, ..
            } => header.len() as u64 + (end - start),
        }
    }
}

impl PartialEq for JobStdin {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                JobStdin::Block { header, body },
                JobStdin::Block {
                    header: h2,
                    body: b2,
                },
            ) => header == h2 && body == b2,
            (
                JobStdin::Range {
                    header,
                    file,
                    start,
                    end,
                },
                JobStdin::Range {
                    header: h2,
                    file: f2,
                    start: s2,
                    end: e2,
                },
            ) => header == h2 && Arc::ptr_eq(file, f2) && start == s2 && end == e2,
            _ => false,
        }
    }
}

impl Eq for JobStdin {}
