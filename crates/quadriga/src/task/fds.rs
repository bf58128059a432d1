//! The descriptors of the IPC objects in a [`Batch`](super::batch::Batch)'s
//! items: each distinct descriptor once per batch, however many items name it.

use std::sync::Arc;

use super::transfer::SharedFd;

/// The distinct descriptors of a [`Batch`], equal when they are the same
/// descriptors. On a worker, `None` stands for one lost in transit (see
/// the process backend's `wire::Inbox`); a sender's are all `Some`.
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
    pub(super) fn place(&mut self, fd: &SharedFd) -> u32 {
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
