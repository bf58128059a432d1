//! [`Outbox`]: frames on their way to a worker, with their descriptors.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};

use super::frame::{FrameError, encode};
use super::message::Down;
use crate::shm::passing::{self, MAX_FDS_PER_MESSAGE};
use crate::task::transfer::SharedFd;

/// Frames on their way to a worker, with the descriptors of the IPC objects in
/// their inputs.
///
/// A frame's descriptors are attached to its first bytes: one `sendmsg` of one
/// byte per group of up to 253. On a stream socket the receiver gets them no
/// later than that byte, so a worker holding a whole frame holds its
/// descriptors too (it queues what arrives, and each frame takes its count).
/// A frame has at least one byte per descriptor (each is encoded as an index),
/// so its groups never spill past its own end.
///
/// A write that fails takes nothing: the outbox keeps every byte and
/// descriptor not yet sent, so a caller that retries later continues the
/// stream exactly where it stopped. Dropping the rest of a half-sent frame
/// would leave the worker waiting for bytes that never come, and glue the
/// next frame onto the truncated one.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    bytes: Vec<u8>,
    /// How much of `bytes` is written.
    sent: usize,
    /// How many bytes were written before `bytes[0]`, over the outbox's life.
    base: u64,
    /// Descriptors to attach from the byte at this offset of `bytes` on.
    pub(super) marks: VecDeque<(usize, Vec<SharedFd>)>,
}

impl Outbox {
    /// Appends `msg` as one frame (see [`encode`]); on error nothing is added.
    /// Returns the frame's end as a count of bytes over the outbox's life:
    /// the frame is all written once [`written`](Self::written) reaches it.
    pub(crate) fn push(&mut self, msg: &Down<'_>, max: usize) -> Result<u64, FrameError> {
        let fds: Vec<SharedFd> = match msg {
            Down::Run { input, .. } | Down::Init { input, .. } => input
                .fds
                .list
                .iter()
                .map(|fd| fd.clone().ok_or(FrameError::LostDescriptor))
                .collect::<Result<_, _>>()?,
            Down::Exit => Vec::new(),
        };
        let at = self.bytes.len();
        encode(msg, &mut self.bytes, max)?;
        if !fds.is_empty() {
            self.marks.push_back((at, fds));
        }
        Ok(self.base + self.bytes.len() as u64)
    }

    /// Nothing is waiting to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.sent == self.bytes.len()
    }

    /// How many bytes were written over the outbox's life.
    pub(crate) fn written(&self) -> u64 {
        self.base + self.sent as u64
    }

    /// Drops everything pending (the worker is gone).
    pub(crate) fn clear(&mut self) {
        self.base += self.sent as u64;
        self.bytes.clear();
        self.sent = 0;
        self.marks.clear();
    }

    /// Writes as much as `sock` takes. `Ok(true)` once everything is written;
    /// `Ok(false)` if the socket is full (with `DONTWAIT`). On `Err` nothing
    /// is lost: what is left goes on the next call.
    pub(crate) fn flush(
        &mut self,
        sock: BorrowedFd<'_>,
        flags: rustix::net::SendFlags,
    ) -> rustix::io::Result<bool> {
        let flags = flags | rustix::net::SendFlags::NOSIGNAL;
        self.flush_with(|bytes, fds| {
            if !fds.is_empty()
                && let Some(err) = crate::fault_errno!("wire.send_fds")
            {
                return Err(err);
            }
            passing::send(sock, bytes, fds, flags)
        })
    }

    /// [`flush`](Self::flush) through `write`, which sends bytes with the
    /// descriptors (if any) attached to the first, and returns how many bytes
    /// it took.
    pub(super) fn flush_with(
        &mut self,
        mut write: impl FnMut(&[u8], &[BorrowedFd<'_>]) -> rustix::io::Result<usize>,
    ) -> rustix::io::Result<bool> {
        while self.sent < self.bytes.len() {
            let result = match self.marks.front_mut() {
                Some((at, fds)) if *at == self.sent => {
                    let group = fds.len().min(MAX_FDS_PER_MESSAGE);
                    let borrowed: Vec<BorrowedFd<'_>> =
                        fds[..group].iter().map(|fd| fd.as_fd()).collect();
                    let result = write(&self.bytes[*at..*at + 1], &borrowed);
                    if matches!(result, Ok(n) if n > 0) {
                        fds.drain(..group);
                        *at += 1;
                        if fds.is_empty() {
                            self.marks.pop_front();
                        }
                    }
                    result
                }
                next => {
                    let end = next.map_or(self.bytes.len(), |(at, _)| *at);
                    write(&self.bytes[self.sent..end], &[])
                }
            };
            match result {
                Ok(n) => self.sent += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => break,
                Err(err) => return Err(err),
            }
        }
        if self.sent == self.bytes.len() {
            self.base += self.sent as u64;
            self.bytes.clear();
            self.sent = 0;
            return Ok(true);
        }
        if self.sent > (1 << 16) && self.sent * 2 > self.bytes.len() {
            // Keep the buffer from growing while a slow reader catches up.
            self.bytes.drain(..self.sent);
            for (at, _) in &mut self.marks {
                *at -= self.sent;
            }
            self.base += self.sent as u64;
            self.sent = 0;
        }
        Ok(false)
    }
}
