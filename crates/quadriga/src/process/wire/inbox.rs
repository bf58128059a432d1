//! [`Inbox`]: the descriptors a worker received, queued until a frame claims
//! them.

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;

use crate::shm::passing::{self, MAX_FDS_PER_MESSAGE, Received};
use crate::task::transfer::SharedFd;

/// What a worker received beside the bytes, in order of arrival: each group of
/// descriptors one `sendmsg` attached, or the mark of a group lost in transit.
///
/// A group is lost when the worker cannot install it (it reached its limit of
/// open files, `EMFILE`): the kernel then sets `MSG_CTRUNC` and drops what did
/// not fit. That is no reason to stop reading, nor to blame the job that is
/// running: what did arrive of the group is closed at once (so the frames
/// behind it have room), and the frame that claims the group gets `None` for
/// each of its descriptors, so its items fail alone ([`FdsError::Lost`](crate::task::fds::FdsError::Lost)).
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    pub(super) groups: VecDeque<Option<Vec<SharedFd>>>,
}

impl Inbox {
    /// Reads what the supervisor sent into `buf`, queueing any descriptors that
    /// came with it. One call takes at most one group (the kernel ends a read
    /// after a message that carries descriptors).
    pub(crate) fn recv(&mut self, sock: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<usize> {
        let (n, received) = passing::recv(sock, buf)?;
        match received {
            Received::Nothing => {}
            Received::Group(group) => self.groups.push_back(Some(group)),
            Received::Lost => self.groups.push_back(None),
        }
        Ok(n)
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
