//! The blocks or ranges as the runner's input.
//!
//! `--pipe`: a thread reads stdin through the [`Chunker`] and hands each
//! block over a channel of one place, so at most two blocks wait beside the
//! running jobs' own (back-pressure: stdin is not read further until the
//! runner takes a block, which it does only to start a job). It wakes the
//! runner through an eventfd only when told the runner waits (as the
//! argument input does). `--pipepart`: the ranges, found at once.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};

use crossbeam_channel::{Receiver, TryRecvError};
use rustix::event::{EventfdFlags, eventfd};

use super::chunker::Chunker;
use super::part::ranges;
use super::{JobStdin, PipeSpec};

/// Where the jobs' data comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// `--pipepart`: every range, known.
    Ready(VecDeque<JobStdin>),
    /// `--pipe`: blocks read on a thread.
    Stream {
        rx: Receiver<io::Result<JobStdin>>,
        wake: Arc<OwnedFd>,
        waiting: Arc<AtomicBool>,
    },
}

/// The answer to "next block, please".
#[derive(Debug)]
pub(crate) enum Pulled {
    Block(JobStdin),
    Pending,
    Done,
    Error(String),
}

impl Source {
    /// Opens the source: `slots`, the job slots, size `--pipepart`'s ranges
    /// when `--block` is negative or not given.
    pub(crate) fn open(spec: &PipeSpec, slots: usize) -> io::Result<Source> {
        match &spec.part {
            Some(path) => {
                let file = File::open(path).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
                })?;
                let header = Chunker::new(&file, spec.cut.clone()).read_header()?;
                let start = header.len() as u64;
                let file = Arc::new(file);
                let ranges = ranges(path, start, spec.part_block, slots, &spec.cut.splitter)?;
                Ok(Source::Ready(
                    ranges
                        .into_iter()
                        .map(|r| JobStdin::Range {
                            header: header.clone(),
                            file: Arc::clone(&file),
                            start: r.start,
                            end: r.end,
                        })
                        .collect(),
                ))
            }
            None => Self::stream(spec),
        }
    }

    fn stream(spec: &PipeSpec) -> io::Result<Source> {
        let (tx, rx) = crossbeam_channel::bounded::<io::Result<JobStdin>>(1);
        let wake = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        let waiting = Arc::new(AtomicBool::new(false));
        let (thread_wake, thread_waiting) = (Arc::clone(&wake), Arc::clone(&waiting));
        let cut = spec.cut.clone();
        let input: Box<dyn io::Read + Send> = match &spec.file {
            Some(path) => Box::new(File::open(path).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
            })?),
            None => Box::new(io::stdin()),
        };
        std::thread::Builder::new()
            .name("quadriga-pipe".into())
            .spawn(move || {
                let notify = || {
                    // Pairs with the fence in `Source::next`.
                    fence(Ordering::SeqCst);
                    if thread_waiting.swap(false, Ordering::SeqCst) {
                        let _ = rustix::io::write(thread_wake.as_fd(), &1u64.to_ne_bytes());
                    }
                };
                let mut chunker = Chunker::new(input, cut);
                loop {
                    let item = match chunker.next_block() {
                        Ok(Some((header, body))) => Ok(JobStdin::Block { header, body }),
                        Ok(None) => break,
                        Err(e) => Err(e),
                    };
                    let failed = item.is_err();
                    let sent = tx.send(item).is_ok();
                    notify();
                    if !sent || failed {
                        return;
                    }
                }
                drop(tx);
                notify();
            })?;
        Ok(Source::Stream { rx, wake, waiting })
    }

    pub(crate) fn next(&mut self) -> Pulled {
        match self {
            Source::Ready(q) => q.pop_front().map_or(Pulled::Done, Pulled::Block),
            Source::Stream { rx, waiting, .. } => {
                let got = match rx.try_recv() {
                    Err(TryRecvError::Empty) => {
                        waiting.store(true, Ordering::SeqCst);
                        fence(Ordering::SeqCst);
                        rx.try_recv()
                    }
                    other => other,
                };
                match got {
                    Ok(Ok(b)) => Pulled::Block(b),
                    Ok(Err(e)) => Pulled::Error(e.to_string()),
                    Err(TryRecvError::Empty) => Pulled::Pending,
                    Err(TryRecvError::Disconnected) => Pulled::Done,
                }
            }
        }
    }

    /// The next block, waiting for the reading thread if need be (for
    /// `--dry-run`, which has no event loop).
    pub(crate) fn next_blocking(&mut self) -> Pulled {
        match self {
            Source::Ready(_) => self.next(),
            Source::Stream { rx, .. } => match rx.recv() {
                Ok(Ok(b)) => Pulled::Block(b),
                Ok(Err(e)) => Pulled::Error(e.to_string()),
                Err(_) => Pulled::Done,
            },
        }
    }

    /// The eventfd the reading thread signals, if there is one.
    pub(crate) fn wake_fd(&self) -> Option<&OwnedFd> {
        match self {
            Source::Ready(_) => None,
            Source::Stream { wake, .. } => Some(wake),
        }
    }

    /// How many jobs, when known.
    pub(crate) fn total(&self) -> Option<usize> {
        match self {
            Source::Ready(q) => Some(q.len()),
            Source::Stream { .. } => None,
        }
    }
}
