//! Descriptors over a Unix stream socket: `SCM_RIGHTS` sent with one message
//! and received with the bytes they came with.
//!
//! The kernel attaches a message's descriptors to its bytes and ends a read
//! after a message that carries some, so one [`recv`] gives at most one group.
//! A receiver that cannot install the whole group (its limit of open files)
//! gets `MSG_CTRUNC` and what fit; [`recv`] closes that part at once and says
//! the group was [`Received::Lost`], so the caller can fail only what named it.

use std::os::fd::BorrowedFd;
use std::sync::Arc;

use rustix::io::Errno;

use crate::task::transfer::SharedFd;

/// Most descriptors the kernel passes in one message (`SCM_MAX_FD`).
pub(crate) const MAX_FDS_PER_MESSAGE: usize = 253;

/// Whether a failed send only lacked a kernel resource for now, so the same
/// bytes may go later: `ETOOMANYREFS` (this user has more descriptors in
/// flight than its `RLIMIT_NOFILE`, until receivers take theirs), `ENOBUFS`,
/// `ENOMEM`.
pub(crate) fn is_shortage(err: Errno) -> bool {
    matches!(err, Errno::TOOMANYREFS | Errno::NOBUFS | Errno::NOMEM)
}

/// Sends `bytes` with `fds` (at most [`MAX_FDS_PER_MESSAGE`]) attached to the
/// first of them; returns how many bytes the socket took. With no
/// descriptors it is a plain `send`.
pub(crate) fn send(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    flags: rustix::net::SendFlags,
) -> rustix::io::Result<usize> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, sendmsg};
    if fds.is_empty() {
        return rustix::net::send(sock, bytes, flags);
    }
    let mut space =
        [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(fds));
    sendmsg(sock, &[std::io::IoSlice::new(bytes)], &mut control, flags)
}

/// The descriptors one read brought.
#[derive(Debug)]
pub(crate) enum Received {
    /// None came with these bytes.
    Nothing,
    /// A whole group, in the order it was sent.
    Group(Vec<SharedFd>),
    /// A group cut short (`MSG_CTRUNC`); what did arrive is already closed.
    Lost,
}

/// Reads into `buf` (retrying `EINTR`), with the descriptors that came with
/// the bytes, installed close-on-exec. Returns how many bytes were read.
pub(crate) fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<(usize, Received)> {
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
            Err(Errno::INTR) => continue,
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
    let received = if msg.flags.contains(ReturnFlags::CTRUNC) {
        // Part of the group is gone: the rest is of no use, close it now.
        drop(group);
        Received::Lost
    } else {
        group.map_or(Received::Nothing, Received::Group)
    };
    Ok((msg.bytes, received))
}

#[cfg(all(test, not(quadriga_loom)))]
mod tests {
    use super::*;

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
}
