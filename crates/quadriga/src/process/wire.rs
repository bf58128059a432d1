//! The wire between the supervisor and its workers: length-delimited frames of
//! `postcard`, over an inherited socket pair.
//!
//! A frame is a little-endian `u32` length followed by that many bytes of one
//! postcard-encoded message ([`Down`] to a worker, [`Up`] from it). The length is
//! checked against a bound *before* anything is allocated, so a corrupt or
//! hostile peer cannot make the other side allocate more than the bound.
//!
//! Task inputs and outputs travel as [`Batch`]es: each item encoded on its own
//! and laid end to end, so a batch can be split into single items (after a
//! crash) and one undecodable item fails alone, without the supervisor knowing
//! the task's types.

use serde::{Deserialize, Serialize};

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use crate::error::TaskError;
use crate::ipc::transfer::{self, SharedFd};

/// Bumped whenever a message changes shape; a worker of another version refuses.
pub(crate) const PROTOCOL: u32 = 3;

/// The default bound on one frame: 256 MiB.
pub(crate) const DEFAULT_MAX_FRAME: usize = 256 << 20;

/// Items encoded one by one and laid end to end; `ends[i]` is where item `i` ends.
///
/// An item may hold IPC objects (a `Queue`, a `Lock`…): their descriptors ride
/// beside the bytes in `fds` (never encoded; the socket carries them as
/// `SCM_RIGHTS`), each descriptor once per batch however many items name it
/// (a `map` over `(shared.clone(), x)` sends one). Item `i` names its
/// descriptors by its own indices `0..k`, and `fd_refs[fd_ends[i-1]..fd_ends[i]]`
/// says where each of them is in `fds`, so the decoder of an item sees its own
/// descriptors only. `fd_refs` numbers descriptors in order of first use, so
/// the batch carries `max(fd_refs) + 1` of them. While no item has any,
/// `fd_ends` and `fd_refs` stay empty, so a plain batch pays two bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub(crate) bytes: Vec<u8>,
    pub(crate) ends: Vec<u32>,
    pub(crate) fd_ends: Vec<u32>,
    pub(crate) fd_refs: Vec<u32>,
    #[serde(skip)]
    pub(crate) fds: Fds,
}

/// The distinct descriptors of a [`Batch`], equal when they are the same
/// descriptors. On a worker, `None` stands for one lost in transit (see
/// [`Inbox`]); a sender's are all `Some`.
#[derive(Clone, Default)]
pub(crate) struct Fds {
    pub(crate) list: Vec<Option<SharedFd>>,
    /// Where each descriptor (by the address of its `Arc`) is in `list`,
    /// sorted by address. (A sorted `Vec` keeps a `Job` small; a `HashMap`
    /// would double the batch.)
    index: Vec<(usize, u32)>,
}

impl Fds {
    /// The descriptors a worker received for a batch.
    pub(crate) fn received(list: Vec<Option<SharedFd>>) -> Self {
        Self {
            list,
            index: Vec::new(),
        }
    }

    /// `fd`'s place in the list, added if it is not there yet.
    fn place(&mut self, fd: &SharedFd) -> u32 {
        let key = Arc::as_ptr(fd) as usize;
        match self.index.binary_search_by_key(&key, |&(k, _)| k) {
            Ok(found) => self.index[found].1,
            Err(slot) => {
                let at = self.list.len() as u32;
                self.list.push(Some(fd.clone()));
                self.index.insert(slot, (key, at));
                at
            }
        }
    }
}

impl PartialEq for Fds {
    fn eq(&self, other: &Self) -> bool {
        self.list.len() == other.list.len()
            && self.list.iter().zip(&other.list).all(|pair| match pair {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            })
    }
}

impl Eq for Fds {}

impl std::fmt::Debug for Fds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fds({})", self.list.len())
    }
}

/// Why an item's descriptors are not there for its decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FdsError {
    #[error(
        "the IPC objects in this input were lost in transit: the worker process reached its \
         limit of open files (RLIMIT_NOFILE) while receiving their descriptors; send fewer \
         distinct objects per task, or raise the limit"
    )]
    Lost,
    #[error("the input batch's descriptor table is malformed")]
    Malformed,
}

/// A postcard flavor that appends to a `Vec` it borrows, so a failed encoding
/// can be cut off without losing what was there before.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

impl Batch {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Item `i`'s bytes, or `None` if the batch is malformed there.
    pub(crate) fn item(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.bytes.get(start..end)
    }

    /// How many distinct descriptors the batch says it carries (what a worker
    /// must have received with it).
    pub(crate) fn fd_count(&self) -> usize {
        self.fd_refs.iter().max().map_or(0, |&n| n as usize + 1)
    }

    /// Item `i`'s descriptors, in the order its IPC objects name them.
    pub(crate) fn item_fds(&self, i: usize) -> Result<Vec<SharedFd>, FdsError> {
        let Some(&end) = self.fd_ends.get(i) else {
            return Ok(Vec::new()); // no item of the batch has any
        };
        let start = if i == 0 { 0 } else { self.fd_ends[i - 1] };
        let refs = self
            .fd_refs
            .get(start as usize..end as usize)
            .ok_or(FdsError::Malformed)?;
        refs.iter()
            .map(|&r| match self.fds.list.get(r as usize) {
                Some(Some(fd)) => Ok(fd.clone()),
                Some(None) => Err(FdsError::Lost),
                None => Err(FdsError::Malformed),
            })
            .collect()
    }

    /// Appends one item's encoding, with the descriptors of the IPC objects in
    /// it. On error the batch is unchanged.
    pub(crate) fn push<T: Serialize>(&mut self, item: &T) -> Result<(), postcard::Error> {
        let start = self.bytes.len();
        let (encoded, fds) =
            transfer::collect(|| postcard::serialize_with_flavor(item, Append(&mut self.bytes)));
        let end = encoded.and_then(|()| {
            u32::try_from(self.bytes.len()).map_err(|_| postcard::Error::SerializeBufferFull)
        });
        match end {
            Ok(end) => {
                self.ends.push(end);
                self.note_fds(&fds);
                Ok(())
            }
            Err(err) => {
                self.bytes.truncate(start);
                Err(err)
            }
        }
    }

    /// Records the descriptors of the item just appended: each goes into
    /// `fds` once per batch, and the item's references point there.
    fn note_fds(&mut self, fds: &[SharedFd]) {
        if fds.is_empty() && self.fd_ends.is_empty() {
            return;
        }
        // The first item with descriptors: the ones before it had none.
        self.fd_ends.resize(self.ends.len() - 1, 0);
        for fd in fds {
            let at = self.fds.place(fd);
            self.fd_refs.push(at);
        }
        self.fd_ends.push(self.fd_refs.len() as u32);
    }

    /// Appends raw, already encoded bytes as one item, with its descriptors.
    pub(crate) fn push_raw(&mut self, raw: &[u8], fds: &[SharedFd]) {
        self.bytes.extend_from_slice(raw);
        self.ends.push(self.bytes.len() as u32);
        self.note_fds(fds);
    }

    /// One batch per item.
    pub(crate) fn split(&self) -> Vec<Batch> {
        (0..self.len())
            .map(|i| {
                let mut one = Batch::default();
                // A sender's batch is never malformed; were it, the item would
                // fail alone, naming descriptors it does not have.
                let fds = self.item_fds(i).unwrap_or_default();
                one.push_raw(self.item(i).unwrap_or_default(), &fds);
                one
            })
            .collect()
    }
}

/// The outcome of each item of a batch: encoded outputs, or errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outcomes {
    pub(crate) outputs: Batch,
    /// Per item: `None` for an output (the next one in `outputs`), or its error.
    pub(crate) errors: Vec<Option<TaskError>>,
}

impl Outcomes {
    pub(crate) fn push_ok(&mut self, raw: &[u8]) {
        self.outputs.push_raw(raw, &[]);
        self.errors.push(None);
    }

    pub(crate) fn push_err(&mut self, err: TaskError) {
        self.errors.push(Some(err));
    }

    /// `n` items, each ending with a clone of `err`.
    pub(crate) fn all_failed(n: usize, err: &TaskError) -> Self {
        Self {
            outputs: Batch::default(),
            errors: (0..n).map(|_| Some(err.clone())).collect(),
        }
    }

    /// How many items.
    pub(crate) fn len(&self) -> usize {
        self.errors.len()
    }

    /// Rewrites every error with `f`.
    pub(crate) fn map_errors(&mut self, f: impl Fn(TaskError) -> TaskError) {
        for slot in &mut self.errors {
            if let Some(err) = slot.take() {
                *slot = Some(f(err));
            }
        }
    }

    /// Makes it exactly `n` items: extra ones are dropped, missing ones end
    /// with `fill()`.
    pub(crate) fn fit(&mut self, n: usize, fill: impl Fn() -> TaskError) {
        self.errors.truncate(n);
        while self.errors.len() < n {
            self.errors.push(Some(fill()));
        }
    }

    /// Each item's encoded output or its error, in order, without copying.
    /// `Err(None)`: the batch claims an output it does not hold (malformed).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Result<&[u8], Option<&TaskError>>> {
        let mut next_output = 0;
        self.errors.iter().map(move |err| match err {
            Some(err) => Err(Some(err)),
            None => {
                let raw = self.outputs.item(next_output);
                next_output += 1;
                raw.ok_or(None)
            }
        })
    }

    /// Iterates over each item's raw output or error, in order.
    pub(crate) fn into_items(self) -> impl Iterator<Item = Result<Vec<u8>, TaskError>> {
        let mut next_output = 0;
        let outputs = self.outputs;
        self.errors.into_iter().map(move |err| match err {
            Some(err) => Err(err),
            None => {
                let raw = outputs.item(next_output).map(<[u8]>::to_vec);
                next_output += 1;
                raw.ok_or_else(|| TaskError::codec("a worker sent fewer outputs than it reported"))
            }
        })
    }
}

/// Supervisor → worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Down {
    /// Run the initializer task once, before any job.
    Init { task: String, input: Batch },
    /// Run `task` on every item of `input`, in order.
    Run {
        job: u64,
        task: String,
        input: Batch,
    },
    /// Finish and exit.
    Exit,
}

/// Worker → supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Up {
    /// The worker is up (after its initializer, if any).
    Ready { pid: u32, protocol: u32 },
    /// The initializer failed; the worker exits.
    InitFailed { error: TaskError },
    /// A job is done: one outcome per input item, and how long it ran.
    Done {
        job: u64,
        nanos: u64,
        outcomes: Outcomes,
    },
}

/// Most descriptors the kernel passes in one message (`SCM_MAX_FD`).
const MAX_FDS_PER_MESSAGE: usize = 253;

/// Whether a failed send only lacked a kernel resource for now, so the same
/// bytes may go later: `ETOOMANYREFS` (this user has more descriptors in
/// flight than its `RLIMIT_NOFILE`, until receivers take theirs), `ENOBUFS`,
/// `ENOMEM`.
pub(crate) fn is_shortage(err: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    matches!(err, Errno::TOOMANYREFS | Errno::NOBUFS | Errno::NOMEM)
}

/// How a sender copes with sends refused for want of a kernel resource
/// ([`is_shortage`]), the same for the supervisor and for a lone `Process`:
/// it retries after a wait that starts at 5 ms and doubles up to 250 ms
/// (not on writability: the socket has room, so that would wake at once,
/// again and again), and gives up once a receiver that waits for the stuck
/// frame has seen nothing move for [`Stall::LIMIT`].
#[derive(Debug)]
pub(crate) struct Stall {
    /// The wait before the next retry.
    delay: std::time::Duration,
    /// Since when nothing has moved while the receiver waits.
    since: Option<std::time::Instant>,
}

impl Default for Stall {
    fn default() -> Self {
        Self {
            delay: Self::FIRST,
            since: None,
        }
    }
}

impl Stall {
    /// How long a receiver that waits may see nothing move before the sender
    /// gives it up.
    pub(crate) const LIMIT: std::time::Duration = std::time::Duration::from_secs(5);
    const FIRST: std::time::Duration = std::time::Duration::from_millis(5);
    const MOST: std::time::Duration = std::time::Duration::from_millis(250);

    /// Something was sent: the next shortage starts afresh.
    pub(crate) fn moved(&mut self) {
        *self = Self::default();
    }

    /// A send refused with `err`, a shortage: how long to wait before the
    /// next try, or, once the receiver has waited (`waiting`: it waits for
    /// what is stuck; if not, the time does not count) for [`Stall::LIMIT`],
    /// why the sender gives up.
    pub(crate) fn refused(
        &mut self,
        err: rustix::io::Errno,
        waiting: bool,
        now: std::time::Instant,
    ) -> Result<std::time::Duration, String> {
        if !waiting {
            self.since = None;
        } else if now.duration_since(*self.since.get_or_insert(now)) >= Self::LIMIT {
            return Err(format!(
                "for {:?} the descriptors of its input could not be passed to it ({err}: too \
                 many descriptors in flight for this user's limit of open files, \
                 RLIMIT_NOFILE, or the kernel is short of memory)",
                Self::LIMIT
            ));
        }
        let wait = self.delay;
        self.delay = (self.delay * 2).min(Self::MOST);
        Ok(wait)
    }
}

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
    marks: VecDeque<(usize, Vec<SharedFd>)>,
}

impl Outbox {
    /// Appends `msg` as one frame (see [`encode`]); on error nothing is added.
    /// Returns the frame's end as a count of bytes over the outbox's life:
    /// the frame is all written once [`written`](Self::written) reaches it.
    pub(crate) fn push(&mut self, msg: &Down, max: usize) -> Result<u64, FrameError> {
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
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, send, sendmsg};
        let flags = flags | rustix::net::SendFlags::NOSIGNAL;
        self.flush_with(|bytes, fds| {
            if fds.is_empty() {
                return send(sock, bytes, flags);
            }
            if let Some(err) = crate::fault_errno!("wire.send_fds") {
                return Err(err);
            }
            let mut space = [std::mem::MaybeUninit::uninit();
                rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            control.push(SendAncillaryMessage::ScmRights(fds));
            sendmsg(sock, &[std::io::IoSlice::new(bytes)], &mut control, flags)
        })
    }

    /// [`flush`](Self::flush) through `write`, which sends bytes with the
    /// descriptors (if any) attached to the first, and returns how many bytes
    /// it took.
    fn flush_with(
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

/// What a worker received beside the bytes, in order of arrival: each group of
/// descriptors one `sendmsg` attached, or the mark of a group lost in transit.
///
/// A group is lost when the worker cannot install it (it reached its limit of
/// open files, `EMFILE`): the kernel then sets `MSG_CTRUNC` and drops what did
/// not fit. That is no reason to stop reading, nor to blame the job that is
/// running: what did arrive of the group is closed at once (so the frames
/// behind it have room), and the frame that claims the group gets `None` for
/// each of its descriptors, so its items fail alone ([`FdsError::Lost`]).
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    groups: VecDeque<Option<Vec<SharedFd>>>,
}

impl Inbox {
    /// Reads what the supervisor sent into `buf`, queueing any descriptors that
    /// came with it. One call takes at most one group (the kernel ends a read
    /// after a message that carries descriptors).
    pub(crate) fn recv(&mut self, sock: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<usize> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};
        let mut space =
            [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let msg = loop {
            match rustix::net::recvmsg(
                sock,
                &mut [std::io::IoSliceMut::new(buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                other => break other?,
            }
        };
        let mut group = None;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                group
                    .get_or_insert_with(Vec::new)
                    .extend(received.map(Arc::new));
            }
        }
        if msg.flags.contains(ReturnFlags::CTRUNC) {
            // Part of the group is gone: the rest is of no use, close it now.
            drop(group);
            self.groups.push_back(None);
        } else if let Some(group) = group {
            self.groups.push_back(Some(group));
        }
        Ok(msg.bytes)
    }

    /// Takes the `n` descriptors of the next frame, in the groups the sender
    /// made of them (253 each, the last one smaller): `None` for each one of a
    /// lost group. `Err` if they are not what the sender would have sent (the
    /// peer is broken).
    pub(crate) fn claim(&mut self, n: usize) -> std::io::Result<Vec<Option<SharedFd>>> {
        let mut fds = Vec::with_capacity(n);
        while fds.len() < n {
            let due = (n - fds.len()).min(MAX_FDS_PER_MESSAGE);
            match self.groups.pop_front() {
                None => {
                    return Err(std::io::Error::other(format!(
                        "a job carries {n} descriptors but {} arrived",
                        fds.len()
                    )));
                }
                Some(None) => fds.resize(fds.len() + due, None),
                Some(Some(group)) if group.len() == due => fds.extend(group.into_iter().map(Some)),
                Some(Some(group)) => {
                    return Err(std::io::Error::other(format!(
                        "a group of {} descriptors arrived where {due} were due",
                        group.len()
                    )));
                }
            }
        }
        Ok(fds)
    }
}

/// Why bytes could not be read as frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("a frame of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("a frame could not be decoded: {0}")]
    Decode(String),
    #[error("an input holds a descriptor that was lost in transit")]
    LostDescriptor,
}

/// Encodes `msg` as one frame appended to `out`.
pub(crate) fn encode<M: Serialize>(
    msg: &M,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut buf = std::mem::take(out);
    buf = postcard::to_extend(msg, buf).map_err(|e| FrameError::Decode(e.to_string()))?;
    let len = buf.len() - start - 4;
    if len > max {
        buf.truncate(start);
        *out = buf;
        return Err(FrameError::TooLarge { len, max });
    }
    buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    *out = buf;
    Ok(())
}

/// Splits a byte stream into frames and decodes them, bounded by `max`.
#[derive(Debug)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    pos: usize,
    max: usize,
}

impl Decoder {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            max,
        }
    }

    /// Appends bytes read from the peer.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Whether unconsumed bytes are buffered.
    #[cfg(test)]
    pub(crate) fn has_partial(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// The next complete frame, decoded; `Ok(None)` if more bytes are needed.
    /// After an error the stream is unusable (the peer is broken).
    pub(crate) fn next<M: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<M>, FrameError> {
        let avail = &self.buf[self.pos..];
        let Some(header) = avail.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(header.try_into().expect("four bytes")) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        let Some(body) = avail.get(4..4 + len) else {
            return Ok(None);
        };
        let msg = postcard::from_bytes(body).map_err(|e| FrameError::Decode(e.to_string()))?;
        self.pos += 4 + len;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > (1 << 16) && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        Ok(Some(msg))
    }
}

/// Decodes everything in `bytes` as frames of [`Up`] and [`Down`], for the fuzz
/// target: must never panic, hang or allocate beyond `max` per frame.
#[doc(hidden)]
pub fn fuzz_decode(bytes: &[u8], max: usize) {
    let mut up = Decoder::new(max);
    up.feed(bytes);
    while let Ok(Some(msg)) = up.next::<Up>() {
        if let Up::Done { outcomes, .. } = msg {
            for item in outcomes.into_items() {
                let _ = item;
            }
        }
    }
    let mut down = Decoder::new(max);
    // Feed in two halves, as a socket would.
    let (a, b) = bytes.split_at(bytes.len() / 2);
    down.feed(a);
    let _ = down.next::<Down>();
    down.feed(b);
    while let Ok(Some(msg)) = down.next::<Down>() {
        if let Down::Run { input, .. } | Down::Init { input, .. } = msg {
            for i in 0..input.len() {
                let _ = input.item(i);
            }
            let _ = input.split();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(msg: &Down) -> Vec<u8> {
        let mut out = Vec::new();
        encode(msg, &mut out, DEFAULT_MAX_FRAME).unwrap();
        out
    }

    #[test]
    fn round_trip_in_pieces() {
        let mut input = Batch::default();
        input.push(&(1_u32, "two".to_string())).unwrap();
        input.push(&(3_u32, "four".to_string())).unwrap();
        let msgs = [
            Down::Run {
                job: 7,
                task: "t".into(),
                input,
            },
            Down::Exit,
        ];
        let bytes: Vec<u8> = msgs.iter().flat_map(frame).collect();
        let mut dec = Decoder::new(DEFAULT_MAX_FRAME);
        let mut got = Vec::new();
        for byte in bytes {
            dec.feed(&[byte]);
            while let Some(m) = dec.next::<Down>().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, msgs);
        assert!(!dec.has_partial());
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let mut dec = Decoder::new(1024);
        dec.feed(&u32::MAX.to_le_bytes());
        assert_eq!(
            dec.next::<Up>(),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: 1024
            })
        );
    }

    #[test]
    fn encoding_refuses_oversized_messages_and_leaves_output_intact() {
        let mut out = vec![9];
        let mut input = Batch::default();
        input.push_raw(&[0; 2048], &[]);
        let msg = Down::Run {
            job: 1,
            task: "t".into(),
            input,
        };
        assert!(matches!(
            encode(&msg, &mut out, 1024),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(out, [9]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut dec = Decoder::new(1024);
        dec.feed(&[3, 0, 0, 0, 0xff, 0xff, 0xff]);
        assert!(matches!(dec.next::<Up>(), Err(FrameError::Decode(_))));
        fuzz_decode(
            &[5, 0, 0, 0, 1, 2, 3, 4, 5, 0xff, 0xff, 0xff, 0xff],
            1 << 20,
        );
    }

    /// A stable-toolchain companion of the cargo-fuzz target: seeded random
    /// bytes, and valid frames with random corruption, never panic.
    #[test]
    fn random_and_corrupted_frames_never_panic() {
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut input = Batch::default();
        input.push(&("item", 7_u64)).unwrap();
        let valid = frame(&Down::Run {
            job: 3,
            task: "t".into(),
            input,
        });
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            fuzz_decode(&bytes, 1 << 16);
            bytes = valid.clone();
            let at = (next() as usize) % bytes.len();
            bytes[at] = next() as u8;
            fuzz_decode(&bytes, 1 << 16);
        }
    }

    #[test]
    fn batches_split_and_outcomes_align() {
        let mut b = Batch::default();
        for i in 0..3_u64 {
            b.push(&i).unwrap();
        }
        let parts = b.split();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            postcard::from_bytes::<u64>(parts[2].item(0).unwrap()).unwrap(),
            2
        );
        let mut o = Outcomes::default();
        o.push_ok(&[1]);
        o.push_err(TaskError::codec("x"));
        o.push_ok(&[2]);
        let items: Vec<_> = o.into_items().collect();
        assert_eq!(items[0].as_ref().unwrap(), &[1]);
        assert!(items[1].is_err());
        assert_eq!(items[2].as_ref().unwrap(), &[2]);
    }

    #[test]
    fn malformed_batch_items_are_none() {
        let b = Batch {
            bytes: vec![1, 2],
            ends: vec![1, 9, 0],
            ..Batch::default()
        };
        assert_eq!(b.item(0), Some(&[1][..]));
        assert_eq!(b.item(1), None);
        assert_eq!(b.item(2), None);
        assert_eq!(b.item(3), None);
    }

    /// Before: `postcard::to_extend` consumed the buffer, so an item whose
    /// encoding failed took every earlier item of the batch with it (a map
    /// chunk then sent malformed items).
    #[test]
    fn regression_a_failed_push_kept_the_earlier_items() {
        struct Fussy(u32);
        impl Serialize for Fussy {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if self.0 == 3 {
                    Err(serde::ser::Error::custom("not this one"))
                } else {
                    (self.0, "padding").serialize(s)
                }
            }
        }
        let mut b = Batch::default();
        for i in 0..5 {
            assert_eq!(b.push(&Fussy(i)).is_err(), i == 3);
        }
        let got: Vec<u32> = (0..b.len())
            .map(|i| {
                postcard::from_bytes::<(u32, String)>(b.item(i).unwrap())
                    .unwrap()
                    .0
            })
            .collect();
        assert_eq!(got, [0, 1, 2, 4]);
    }

    /// Serialises as its descriptor, like an IPC object.
    struct Obj(SharedFd);

    impl Serialize for Obj {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            transfer::serialize_fd(&self.0, s)
        }
    }

    fn some_fd() -> SharedFd {
        Arc::new(rustix::fs::memfd_create(c"t", rustix::fs::MemfdFlags::CLOEXEC).unwrap())
    }

    fn run(input: Batch) -> Down {
        Down::Run {
            job: 1,
            task: "t".into(),
            input,
        }
    }

    /// Before: a descriptor went once per item that named it (a `map` over
    /// `(shared.clone(), x)` sent it once per item, and the worker opened it
    /// that many times).
    #[test]
    fn regression_a_batch_sent_a_shared_descriptor_once_per_item() {
        let (shared, other) = (some_fd(), some_fd());
        let mut b = Batch::default();
        b.push(&7_u32).unwrap(); // an item without any, first
        for i in 0..200_u32 {
            b.push(&(Obj(shared.clone()), i)).unwrap();
        }
        b.push(&(Obj(other.clone()), Obj(shared.clone()))).unwrap();
        assert_eq!(b.fds.list.len(), 2);
        assert_eq!(b.fd_count(), 2);
        assert!(b.item_fds(0).unwrap().is_empty());
        for i in 1..=200 {
            let fds = b.item_fds(i).unwrap();
            assert_eq!(fds.len(), 1);
            assert!(Arc::ptr_eq(&fds[0], &shared));
        }
        // The last item names `other` first: its own indices follow its order.
        let last = b.item_fds(201).unwrap();
        assert!(Arc::ptr_eq(&last[0], &other) && Arc::ptr_eq(&last[1], &shared));
        // Split after a crash, each part carries just its item's descriptors.
        let parts = b.split();
        assert_eq!(parts[0].fd_count(), 0);
        assert_eq!(parts[5].fds.list.len(), 1);
        assert_eq!(parts[201].fds.list.len(), 2);
        assert!(Arc::ptr_eq(&parts[201].item_fds(0).unwrap()[1], &shared));
        // And the frame takes two descriptors, whatever the number of items.
        let mut out = Outbox::default();
        out.push(&run(b), DEFAULT_MAX_FRAME).unwrap();
        let attached: usize = out.marks.iter().map(|(_, fds)| fds.len()).sum();
        assert_eq!(attached, 2);
    }

    /// Before: the supervisor dropped what was left of a frame when a send
    /// failed, whatever the error; after `ETOOMANYREFS` halfway through a
    /// frame, the worker waited forever for the rest. The outbox keeps all
    /// of it, and a later flush goes on exactly where the failed one stopped.
    #[test]
    fn regression_a_refused_descriptor_group_kept_the_rest_of_the_frame() {
        let fds: Vec<SharedFd> = (0..300).map(|_| some_fd()).collect();
        let mut big = Batch::default();
        big.push(&fds.iter().cloned().map(Obj).collect::<Vec<_>>())
            .unwrap();
        let mut small = Batch::default();
        small.push(&(Obj(fds[0].clone()), "small")).unwrap();
        let msgs = [run(big), run(small), Down::Exit];
        let mut out = Outbox::default();
        let ends: Vec<u64> = msgs
            .iter()
            .map(|m| out.push(m, DEFAULT_MAX_FRAME).unwrap())
            .collect();
        let mut stream = Vec::new();
        let mut groups = Vec::new();
        let mut refusals = 0;
        // The first group passes; the second is refused three times.
        let result = out.flush_with(|bytes, fds| {
            if !fds.is_empty() && !groups.is_empty() {
                refusals += 1;
                return Err(rustix::io::Errno::TOOMANYREFS);
            }
            if !fds.is_empty() {
                groups.push(fds.len());
            }
            stream.extend_from_slice(bytes);
            Ok(bytes.len())
        });
        assert_eq!(result, Err(rustix::io::Errno::TOOMANYREFS));
        assert_eq!(refusals, 1);
        assert!(!out.is_empty(), "the rest of the frame was dropped");
        assert_eq!(out.written(), 1, "only the first group's byte is out");
        for _ in 0..2 {
            assert!(
                out.flush_with(|_, _| Err(rustix::io::Errno::TOOMANYREFS))
                    .is_err()
            );
            assert_eq!(out.written(), 1);
        }
        // Room again: partial writes, as a socket may take.
        let done = out.flush_with(|bytes, fds| {
            if !fds.is_empty() {
                groups.push(fds.len());
            }
            let n = bytes.len().min(7);
            stream.extend_from_slice(&bytes[..n]);
            Ok(n)
        });
        assert_eq!(done, Ok(true));
        assert_eq!(groups, [253, 47, 1]);
        assert_eq!(out.written(), *ends.last().unwrap());
        assert_eq!(stream.len() as u64, out.written());
        let mut dec = Decoder::new(DEFAULT_MAX_FRAME);
        dec.feed(&stream);
        for msg in msgs {
            // Descriptors are not in the bytes: compare the rest.
            let mut bare = msg;
            if let Down::Run { input, .. } = &mut bare {
                input.fds = Fds::default();
            }
            assert_eq!(dec.next::<Down>().unwrap().unwrap(), bare);
        }
        assert!(!dec.has_partial());
    }

    #[test]
    fn a_stall_backs_off_and_gives_up_only_while_the_receiver_waits() {
        use std::time::{Duration, Instant};
        let err = rustix::io::Errno::TOOMANYREFS;
        let mut stall = Stall::default();
        let t0 = Instant::now();
        let waits: Vec<_> = (0..8)
            .map(|_| stall.refused(err, true, t0).unwrap())
            .collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 250, 250].map(ms));
        // Nothing moved for the limit while the receiver waited: give up.
        let why = stall.refused(err, true, t0 + Stall::LIMIT).unwrap_err();
        assert!(why.contains("RLIMIT_NOFILE"), "{why}");
        // A receiver busy with something else: the time does not count.
        assert!(stall.refused(err, false, t0 + Stall::LIMIT * 2).is_ok());
        assert!(stall.refused(err, true, t0 + Stall::LIMIT * 2).is_ok());
        // Progress starts the waits over.
        stall.moved();
        assert_eq!(stall.refused(err, true, t0), Ok(ms(5)));
    }

    #[test]
    fn shortages_are_told_from_other_errors() {
        use rustix::io::Errno;
        for e in [Errno::TOOMANYREFS, Errno::NOBUFS, Errno::NOMEM] {
            assert!(is_shortage(e), "{e}");
        }
        for e in [Errno::PIPE, Errno::BADF, Errno::AGAIN, Errno::INVAL] {
            assert!(!is_shortage(e), "{e}");
        }
    }

    /// Frames and descriptors through a real socket: each frame claims its
    /// own, in the groups they were sent in.
    #[test]
    fn descriptors_cross_a_socket_frame_by_frame() {
        use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
        let (tx, rx) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let fds: Vec<SharedFd> = (0..300).map(|_| some_fd()).collect();
        let mut big = Batch::default();
        big.push(&fds.iter().cloned().map(Obj).collect::<Vec<_>>())
            .unwrap();
        let mut small = Batch::default();
        small.push(&Obj(fds[299].clone())).unwrap();
        small.push(&Obj(fds[299].clone())).unwrap();
        let mut out = Outbox::default();
        out.push(&run(big), DEFAULT_MAX_FRAME).unwrap();
        out.push(&run(small), DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(
            out.flush(tx.as_fd(), rustix::net::SendFlags::empty()),
            Ok(true)
        );
        drop(tx);
        let mut inbox = Inbox::default();
        let mut dec = Decoder::new(DEFAULT_MAX_FRAME);
        let mut buf = vec![0; 1 << 16];
        let mut got = Vec::new();
        loop {
            while let Some(Down::Run { mut input, .. }) = dec.next::<Down>().unwrap() {
                input.fds = Fds::received(inbox.claim(input.fd_count()).unwrap());
                got.push(input);
            }
            let n = inbox.recv(rx.as_fd(), &mut buf).unwrap();
            if n == 0 {
                break;
            }
            dec.feed(&buf[..n]);
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].item_fds(0).unwrap().len(), 300);
        assert_eq!(got[1].fd_count(), 1, "one descriptor for both items");
        let same = |a: &SharedFd, b: &SharedFd| {
            let (a, b) = (rustix::fs::fstat(a).unwrap(), rustix::fs::fstat(b).unwrap());
            (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
        };
        assert!(same(&got[0].item_fds(0).unwrap()[299], &fds[299]));
        assert!(same(&got[1].item_fds(1).unwrap()[0], &fds[299]));
        assert!(inbox.groups.is_empty());
    }

    /// A group lost in transit (`MSG_CTRUNC`, the worker out of descriptors)
    /// fails the items that name its descriptors, not the frame's others and
    /// not the frames behind it.
    #[test]
    fn a_lost_group_fails_only_the_items_that_name_it() {
        let fds: Vec<SharedFd> = (0..300).map(|_| some_fd()).collect();
        let mut b = Batch::default();
        b.push(&fds[..253].iter().cloned().map(Obj).collect::<Vec<_>>())
            .unwrap();
        b.push(&"no descriptors").unwrap();
        b.push(&fds[253..].iter().cloned().map(Obj).collect::<Vec<_>>())
            .unwrap();
        let mut inbox = Inbox::default();
        inbox.groups.push_back(None); // the first group: lost
        inbox.groups.push_back(Some(fds[253..].to_vec()));
        inbox.groups.push_back(Some(vec![fds[0].clone()])); // the next frame's
        let mut got = b.clone();
        got.fds = Fds::received(inbox.claim(b.fd_count()).unwrap());
        assert_eq!(got.item_fds(0).unwrap_err(), FdsError::Lost);
        assert!(FdsError::Lost.to_string().contains("RLIMIT_NOFILE"));
        assert_eq!(got.item_fds(1).unwrap().len(), 0);
        assert_eq!(got.item_fds(2).unwrap().len(), 47);
        assert_eq!(inbox.claim(1).unwrap().len(), 1);
        // A lost descriptor is never sent on.
        let mut out = Outbox::default();
        assert_eq!(
            out.push(&run(got), DEFAULT_MAX_FRAME),
            Err(FrameError::LostDescriptor)
        );
        assert!(out.is_empty());
        // A group that is not what the sender would have sent is an error.
        inbox.groups.push_back(Some(fds[..2].to_vec()));
        assert!(inbox.claim(3).is_err());
        assert!(inbox.claim(1).is_err(), "nothing left");
    }
}
