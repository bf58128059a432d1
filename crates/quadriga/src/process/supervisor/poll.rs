//! The shell's one use of `epoll`, with typed tokens: the waker's eventfd, and
//! per worker its socket and its pidfd.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use rustix::event::epoll;

use super::core::WorkerId;

/// What a readiness event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    /// The waker: commands are waiting.
    Wake,
    /// A worker's socket: `readable` covers end of file and errors.
    Socket {
        worker: WorkerId,
        readable: bool,
        writable: bool,
    },
    /// A worker's pidfd: it has exited.
    Exit(WorkerId),
}

const WAKE: u64 = u64::MAX;

/// An epoll instance.
#[derive(Debug)]
pub(super) struct Poller {
    epoll: OwnedFd,
}

impl Poller {
    /// A poller that watches `waker`.
    pub(super) fn new(waker: impl AsFd) -> std::io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            waker,
            epoll::EventData::new_u64(WAKE),
            epoll::EventFlags::IN,
        )?;
        Ok(Self { epoll })
    }

    /// Watches a worker's socket (readable) and pidfd.
    pub(super) fn add_worker(
        &self,
        worker: WorkerId,
        sock: impl AsFd,
        pidfd: impl AsFd,
    ) -> std::io::Result<()> {
        let token = (worker as u64) << 1;
        epoll::add(
            &self.epoll,
            sock,
            epoll::EventData::new_u64(token),
            epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
        )?;
        epoll::add(
            &self.epoll,
            pidfd,
            epoll::EventData::new_u64(token | 1),
            epoll::EventFlags::IN,
        )?;
        Ok(())
    }

    /// Also waits for room to write on a worker's socket, or stops.
    pub(super) fn watch_writable(&self, worker: WorkerId, sock: impl AsFd, writable: bool) {
        let mut flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
        if writable {
            flags |= epoll::EventFlags::OUT;
        }
        let _ = epoll::modify(
            &self.epoll,
            sock,
            epoll::EventData::new_u64((worker as u64) << 1),
            flags,
        );
    }

    /// Stops watching a descriptor.
    pub(super) fn remove(&self, fd: impl AsFd) {
        let _ = epoll::delete(&self.epoll, fd);
    }

    /// Waits until something is ready or `deadline` passes (for ever if
    /// `None`), and puts what is ready in `ready` (nothing if interrupted).
    pub(super) fn wait(
        &self,
        deadline: Option<Instant>,
        ready: &mut Vec<Token>,
    ) -> rustix::io::Result<()> {
        ready.clear();
        let timeout = deadline.map(|at| {
            let d = at.saturating_duration_since(Instant::now());
            rustix::time::Timespec {
                tv_sec: d.as_secs() as _,
                tv_nsec: d.subsec_nanos() as _,
            }
        });
        let mut events = [std::mem::MaybeUninit::<epoll::Event>::uninit(); 64];
        match epoll::wait(&self.epoll, &mut events[..], timeout.as_ref()) {
            Ok((events, _)) => ready.extend(events.iter().map(token)),
            Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err),
        }
        Ok(())
    }
}

fn token(ev: &epoll::Event) -> Token {
    let data = ev.data.u64();
    if data == WAKE {
        return Token::Wake;
    }
    let worker = (data >> 1) as WorkerId;
    if data & 1 == 1 {
        return Token::Exit(worker);
    }
    let flags = ev.flags;
    Token::Socket {
        worker,
        writable: flags.intersects(epoll::EventFlags::OUT),
        readable: flags.intersects(
            epoll::EventFlags::IN
                | epoll::EventFlags::HUP
                | epoll::EventFlags::RDHUP
                | epoll::EventFlags::ERR,
        ),
    }
}
