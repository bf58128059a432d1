//! `epoll` with typed tokens and deadlines.

use std::io;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use rustix::event::epoll;

/// What a caller registers a descriptor under, and gets back with its
/// readiness: an enum, typically, that the [`Poller`] packs into the 64 bits
/// epoll carries.
///
/// The caller says what kind of thing it is (a small number of its choice)
/// and which one (an index below 2⁵⁶); the packing is the poller's, so no
/// caller shifts bits.
///
/// ```
/// use quadriga::child::Token;
///
/// #[derive(Debug, Clone, Copy, PartialEq)]
/// enum Tok { Wakeup, Job(u64) }
///
/// impl Token for Tok {
///     fn to_parts(self) -> (u8, u64) {
///         match self { Tok::Wakeup => (0, 0), Tok::Job(i) => (1, i) }
///     }
///     fn from_parts(kind: u8, index: u64) -> Option<Self> {
///         match kind { 0 => Some(Tok::Wakeup), 1 => Some(Tok::Job(index)), _ => None }
///     }
/// }
/// ```
pub trait Token: Copy {
    /// The kind (any `u8`) and the index (below 2⁵⁶).
    fn to_parts(self) -> (u8, u64);
    /// The token back from what [`to_parts`](Token::to_parts) gave; `None`
    /// for parts it never gives (such events are skipped).
    fn from_parts(kind: u8, index: u64) -> Option<Self>;
}

/// The most events one [`Poller::wait`] reports (the rest wait for the next
/// call: the set is level-triggered).
const MAX_EVENTS: usize = 256;

const INDEX_BITS: u32 = 56;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

fn pack<T: Token>(token: T) -> io::Result<u64> {
    let (kind, index) = token.to_parts();
    if index > INDEX_MASK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a poller token's index must be below 2^56",
        ));
    }
    Ok(u64::from(kind) << INDEX_BITS | index)
}

fn unpack<T: Token>(raw: u64) -> Option<T> {
    T::from_parts((raw >> INDEX_BITS) as u8, raw & INDEX_MASK)
}

/// What a registration waits for. Hang-ups and errors are always reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    read: bool,
    write: bool,
}

impl Interest {
    /// Readable (or the peer hung up).
    pub const READ: Interest = Interest {
        read: true,
        write: false,
    };
    /// Readable or writable.
    pub const READ_WRITE: Interest = Interest {
        read: true,
        write: true,
    };

    fn flags(self) -> epoll::EventFlags {
        let mut f = epoll::EventFlags::empty();
        if self.read {
            f |= epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
        }
        if self.write {
            f |= epoll::EventFlags::OUT;
        }
        f
    }
}

/// One readiness report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<T> {
    /// What the descriptor was registered under.
    pub token: T,
    flags: epoll::EventFlags,
}

impl<T> Event<T> {
    /// There is something to read (or end of file).
    pub fn is_readable(&self) -> bool {
        self.flags.contains(epoll::EventFlags::IN)
    }

    /// There is room to write.
    pub fn is_writable(&self) -> bool {
        self.flags.contains(epoll::EventFlags::OUT)
    }

    /// The peer hung up (or shut down its writing side).
    pub fn is_hangup(&self) -> bool {
        self.flags
            .intersects(epoll::EventFlags::HUP | epoll::EventFlags::RDHUP)
    }

    /// An error is pending on the descriptor.
    pub fn is_error(&self) -> bool {
        self.flags.contains(epoll::EventFlags::ERR)
    }
}

/// An epoll set whose registrations carry tokens of type `T`.
///
/// Level-triggered. A descriptor closed while registered leaves the set by
/// itself (when its last duplicate closes). It may move to another thread
/// (an event loop built on one thread and run on its own).
///
/// ```
/// use std::time::{Duration, Instant};
/// use quadriga::child::{Interest, Poller, Token};
///
/// #[derive(Debug, Clone, Copy, PartialEq)]
/// struct Pipe(u64);
/// impl Token for Pipe {
///     fn to_parts(self) -> (u8, u64) { (0, self.0) }
///     fn from_parts(_: u8, index: u64) -> Option<Self> { Some(Pipe(index)) }
/// }
///
/// let (r, w) = std::io::pipe()?;
/// let mut poller = Poller::new()?;
/// poller.add(&r, Pipe(7), Interest::READ)?;
/// let mut events = Vec::new();
/// // Nothing yet: back at the deadline.
/// poller.wait(Some(Instant::now() + Duration::from_millis(10)), &mut events)?;
/// assert!(events.is_empty());
/// std::io::Write::write_all(&mut &w, b"x")?;
/// poller.wait(None, &mut events)?;
/// assert_eq!(events[0].token, Pipe(7));
/// assert!(events[0].is_readable());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Poller<T> {
    epoll: OwnedFd,
    _token: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for Poller<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("epoll", &self.epoll)
            .finish_non_exhaustive()
    }
}

impl<T: Token> Poller<T> {
    /// A new, empty set.
    pub fn new() -> io::Result<Self> {
        Ok(Poller {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            _token: PhantomData,
        })
    }

    /// Registers `fd` under `token`.
    pub fn add(&self, fd: impl AsFd, token: T, interest: Interest) -> io::Result<()> {
        epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(pack(token)?),
            interest.flags(),
        )?;
        Ok(())
    }

    /// Changes what `fd` is registered under, or waits for.
    pub fn modify(&self, fd: impl AsFd, token: T, interest: Interest) -> io::Result<()> {
        epoll::modify(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(pack(token)?),
            interest.flags(),
        )?;
        Ok(())
    }

    /// Takes `fd` out of the set.
    pub fn delete(&self, fd: impl AsFd) -> io::Result<()> {
        epoll::delete(&self.epoll, fd)?;
        Ok(())
    }

    /// Waits until something is ready or `deadline` (`None`: no deadline)
    /// passes, and puts what is ready in `out` (cleared first). An
    /// interrupted wait returns early with `out` empty, as does one whose
    /// deadline has already passed (after one look).
    pub fn wait(&mut self, deadline: Option<Instant>, out: &mut Vec<Event<T>>) -> io::Result<()> {
        out.clear();
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            rustix::time::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            }
        });
        // On the stack, not in the poller: rustix's events are not `Send`.
        let mut buf = [MaybeUninit::<epoll::Event>::uninit(); MAX_EVENTS];
        let events = match epoll::wait(&self.epoll, &mut buf[..], timeout.as_ref()) {
            Ok((events, _)) => events,
            Err(rustix::io::Errno::INTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        out.extend(events.iter().filter_map(|ev| {
            Some(Event {
                token: unpack(ev.data.u64())?,
                flags: ev.flags,
            })
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Tok {
        Signal,
        Out(u64),
        Err(u64),
    }

    impl Token for Tok {
        fn to_parts(self) -> (u8, u64) {
            match self {
                Tok::Signal => (0, 0),
                Tok::Out(i) => (1, i),
                Tok::Err(i) => (2, i),
            }
        }
        fn from_parts(kind: u8, index: u64) -> Option<Self> {
            match kind {
                0 => Some(Tok::Signal),
                1 => Some(Tok::Out(index)),
                2 => Some(Tok::Err(index)),
                _ => None,
            }
        }
    }

    #[test]
    fn tokens_round_trip_through_the_packing() {
        for t in [
            Tok::Signal,
            Tok::Out(0),
            Tok::Err(1),
            Tok::Out(INDEX_MASK),
            Tok::Err(12345),
        ] {
            assert_eq!(unpack::<Tok>(pack(t).unwrap()), Some(t));
        }
        assert!(pack(Tok::Out(INDEX_MASK + 1)).is_err());
        assert_eq!(unpack::<Tok>(3 << INDEX_BITS), None);
    }

    #[test]
    fn events_come_back_with_their_tokens() {
        let mut p = Poller::new().unwrap();
        let (r1, mut w1) = std::io::pipe().unwrap();
        let (r2, mut w2) = std::io::pipe().unwrap();
        p.add(&r1, Tok::Out(5), Interest::READ).unwrap();
        p.add(&r2, Tok::Err(9), Interest::READ).unwrap();
        w2.write_all(b"x").unwrap();
        let mut ev = Vec::new();
        p.wait(None, &mut ev).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].token, Tok::Err(9));
        assert!(ev[0].is_readable() && !ev[0].is_hangup());
        w1.write_all(b"y").unwrap();
        drop(w2);
        p.wait(None, &mut ev).unwrap();
        let mut tokens: Vec<_> = ev.iter().map(|e| e.token).collect();
        tokens.sort_by_key(|t| t.to_parts());
        assert_eq!(tokens, [Tok::Out(5), Tok::Err(9)]);
        assert!(ev.iter().any(|e| e.token == Tok::Err(9) && e.is_hangup()));
        p.delete(&r2).unwrap();
        p.modify(&r1, Tok::Signal, Interest::READ).unwrap();
        p.wait(None, &mut ev).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].token, Tok::Signal);
    }

    #[test]
    fn a_deadline_ends_the_wait() {
        let mut p = Poller::<Tok>::new().unwrap();
        let (r, _w) = std::io::pipe().unwrap();
        p.add(&r, Tok::Out(1), Interest::READ).unwrap();
        let mut ev = vec![Event {
            token: Tok::Signal,
            flags: epoll::EventFlags::IN,
        }];
        let start = Instant::now();
        let deadline = start + Duration::from_millis(30);
        p.wait(Some(deadline), &mut ev).unwrap();
        assert!(ev.is_empty());
        assert!(Instant::now() >= deadline);
        // A deadline in the past: one look, no sleep.
        let start = Instant::now();
        p.wait(Some(start - Duration::from_millis(1)), &mut ev)
            .unwrap();
        assert!(ev.is_empty());
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_poller_can_move_to_another_thread() {
        fn send<S: Send>(s: S) -> S {
            s
        }
        let p = send(Poller::<Tok>::new().unwrap());
        let (r, mut w) = std::io::pipe().unwrap();
        p.add(&r, Tok::Out(3), Interest::READ).unwrap();
        w.write_all(b"x").unwrap();
        let tokens = std::thread::spawn(move || {
            let mut p = p;
            let mut ev = Vec::new();
            p.wait(None, &mut ev).unwrap();
            ev.iter().map(|e| e.token).collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        assert_eq!(tokens, [Tok::Out(3)]);
    }

    #[test]
    fn writable_interest() {
        let mut p = Poller::new().unwrap();
        let (_r, w) = std::io::pipe().unwrap();
        p.add(&w, Tok::Out(2), Interest::READ_WRITE).unwrap();
        let mut ev = Vec::new();
        p.wait(Some(Instant::now()), &mut ev).unwrap();
        assert_eq!(ev.len(), 1);
        assert!(ev[0].is_writable());
    }
}
