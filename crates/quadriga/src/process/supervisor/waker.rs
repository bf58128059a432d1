//! How callers wake the supervisor: a flag ([`Notify`]) and an eventfd that is
//! written only when the flag goes from clear to set.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{EventfdFlags, eventfd};

use crate::process::notify::Notify;

/// The handle the pool keeps to wake its supervisor.
#[derive(Debug)]
pub(crate) struct Waker {
    notify: Notify,
    efd: OwnedFd,
}

impl Waker {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self {
            notify: Notify::default(),
            efd: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
        })
    }

    /// Call after pushing a command.
    pub(crate) fn wake(&self) {
        if self.notify.should_signal() {
            // Cannot block: the counter would have to reach u64::MAX - 1.
            let _ = rustix::io::write(&self.efd, &1_u64.to_ne_bytes());
        }
    }

    /// The supervisor, before it drains the commands: later ones wake it
    /// again.
    pub(super) fn reset(&self) {
        self.notify.reset();
    }

    /// The supervisor, woken: empties the eventfd.
    pub(super) fn clear(&self) {
        let mut buf = [0_u8; 8];
        let _ = rustix::io::read(&self.efd, &mut buf);
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }
}
