//! [`Event`]: a flag that threads and processes wait on, like Python's
//! `multiprocessing.Event`.
//!
//! # Design
//!
//! Two words in the body:
//!
//! ```text
//! word: u32     bit 0: set; bits 1..: how many times it went clear → set
//!               (wrapping); the futex word waiters sleep on
//! waiters: u32  how many waiters sleep (or are about to), so that `set`
//!               skips the wake syscall when nobody waits
//! ```
//!
//! * `set`: if clear, `word = (word | 1) + 2` (a compare-exchange loop), then
//!   wake **all** sleepers if `waiters > 0`. Setting a set event does nothing.
//! * `clear`: `word &= !1`.
//! * `wait`: read `word`; if set, return. Otherwise `waiters += 1`, and sleep
//!   while `word` is unchanged. Any change means a `set` happened since the
//!   read (a `clear` of a clear event changes nothing), so a waiter returns
//!   `true` even if the event was cleared again before it ran: `set` releases
//!   everyone waiting at that moment, as Python's does.
//!
//! No lost wake-up: the waiter increments `waiters` before its futex check,
//! and `set` reads `waiters` after its change of `word`, with a
//! read-modify-write, so the two are ordered in `waiters`' modification order;
//! either `set` sees the waiter and wakes it, or the waiter's increment
//! synchronises with `set`'s read and its futex check sees the new `word`.
//!
//! Memory ordering: `set` is a release and a successful `wait` an acquire, so
//! what was written before `set` is visible after `wait` returns `true`.
//!
//! A setter killed between its change of `word` and its wake would leave the
//! sleepers asleep, so they sleep at most [`POLL`] at a time and look again.
//!
//! The counter of sets wraps after 2³¹ of them; a waiter that slept through
//! exactly that many would miss them, which is not a practical concern. A
//! waiter that dies while counted leaves `waiters` too high: `set` then makes
//! a wake syscall it could have skipped, nothing worse.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::loom::atomic::{AtomicU32, Ordering};
use crate::shm::futex::POLL;
use crate::shm::result;
use crate::shm::{Error, futex};
use crate::shm::{Kind, PARAMS, Region, fingerprint};

const SET: u32 = 1;

/// The shared state (the whole body).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct State {
    word: AtomicU32,
    waiters: AtomicU32,
}

impl State {
    pub(crate) fn set(&self) {
        let was = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w & SET == 0).then(|| (w | SET).wrapping_add(2))
            });
        crate::fault_point!("event.set.stored");
        if was.is_ok() && self.waiters.fetch_add(0, Ordering::SeqCst) > 0 {
            futex::wake(&self.word, u32::MAX);
        }
    }

    pub(crate) fn clear(&self) {
        self.word.fetch_and(!SET, Ordering::AcqRel);
    }

    pub(crate) fn is_set(&self) -> bool {
        self.word.load(Ordering::Acquire) & SET != 0
    }

    /// Waits until set, or until `deadline`; whether it was set.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        let seen = self.word.load(Ordering::Acquire);
        if seen & SET != 0 {
            return true;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let set = loop {
            // Naps of at most POLL: a setter killed between its change of
            // `word` and its wake must not leave us asleep for ever.
            let nap = futex::remaining(deadline).map_or(POLL, |left| left.min(POLL));
            futex::wait(&self.word, seen, Some(nap));
            if self.word.load(Ordering::Acquire) != seen {
                break true;
            }
            if result::expired(deadline) {
                break false;
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        set
    }
}

/// A flag shared between threads and processes: [`set`](Event::set) wakes
/// every [`wait`](Event::wait)er, [`clear`](Event::clear) resets it.
///
/// Clone it for another thread or put it in a task's input to a
/// [`ProcessPool`](crate::ProcessPool) or [`Process`](crate::Process).
///
/// ```
/// use quadriga::sync::Event;
///
/// let ready = Event::new()?;
/// let r = ready.clone();
/// let t = std::thread::spawn(move || {
///     r.wait();
///     "went"
/// });
/// ready.set();
/// assert_eq!(t.join().unwrap(), "went");
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    region: Arc<Region>,
}

impl Event {
    /// A new event, not set.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`](crate::ipc::ErrorKind::Os) if the shared memory could
    /// not be made.
    ///
    /// ```
    /// let e = quadriga::sync::Event::new()?;
    /// assert!(!e.is_set());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn new() -> Result<Self, Error> {
        // The zeroed body is a valid, clear state.
        let region = Region::create(
            Kind::Event,
            fingerprint::<Event>(),
            params(),
            std::mem::size_of::<State>(),
        )?;
        Ok(Self {
            region: Arc::new(region),
        })
    }

    fn attach(region: Region) -> Result<Self, Error> {
        if region.params() != params() || region.body_len() < std::mem::size_of::<State>() {
            return Err(Error::invalid("a shared event of another layout"));
        }
        Ok(Self {
            region: Arc::new(region),
        })
    }

    fn state(&self) -> &State {
        // SAFETY: the body holds a `State` (any bits are a valid one; size
        // checked on create and attach) for as long as the region lives.
        unsafe { &*self.region.body().cast::<State>() }
    }

    /// Sets the flag and wakes every waiter.
    ///
    /// ```
    /// # let e = quadriga::sync::Event::new()?;
    /// e.set();
    /// assert!(e.is_set());
    /// assert!(e.wait_timeout(std::time::Duration::ZERO));
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn set(&self) {
        self.state().set();
    }

    /// Clears the flag: later waiters block until the next [`set`](Event::set).
    ///
    /// ```
    /// # let e = quadriga::sync::Event::new()?;
    /// e.set();
    /// e.clear();
    /// assert!(!e.is_set());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn clear(&self) {
        self.state().clear();
    }

    /// Whether the flag is set now.
    ///
    /// ```
    /// # let e = quadriga::sync::Event::new()?;
    /// assert!(!e.is_set());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn is_set(&self) -> bool {
        self.state().is_set()
    }

    /// Blocks until the flag is set (returns at once if it is).
    ///
    /// ```
    /// # let e = quadriga::sync::Event::new()?;
    /// e.set();
    /// e.wait();
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn wait(&self) {
        self.state().wait(None);
    }

    /// Blocks until the flag is set, at most `timeout`. Returns `true` if it
    /// was set (even if cleared again since), `false` if the time ran out.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let e = quadriga::sync::Event::new()?;
    /// assert!(!e.wait_timeout(Duration::from_millis(1)));
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.state().wait(result::deadline(timeout))
    }
}

fn params() -> [u64; PARAMS] {
    let mut p = [0; PARAMS];
    p[0] = std::mem::size_of::<State>() as u64;
    p
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("is_set", &self.is_set())
            .finish()
    }
}

super::serde_by_region!(Event, Kind::Event);

#[cfg(all(test, not(quadriga_loom)))]
mod tests {
    use super::*;

    #[test]
    fn set_releases_every_waiter_even_if_cleared_at_once() {
        let e = Event::new().unwrap();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let e = e.clone();
                std::thread::spawn(move || e.wait_timeout(Duration::from_secs(30)))
            })
            .collect();
        while e.state().waiters.load(Ordering::SeqCst) < 3 {
            std::thread::yield_now();
        }
        e.set();
        e.clear();
        for w in waiters {
            assert!(w.join().unwrap());
        }
        assert!(!e.is_set());
        assert!(!e.wait_timeout(Duration::from_millis(1)));
    }
}

#[cfg(all(test, quadriga_loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    /// `set` races a waiter going to sleep: the waiter always wakes (a lost
    /// wake-up would leave it asleep, which loom reports as a deadlock), and
    /// sees what was written before `set`.
    #[test]
    fn set_is_never_lost() {
        loom::model(|| {
            let state = std::sync::Arc::new(State::default());
            let data = std::sync::Arc::new(AtomicU32::new(0));
            let (s, d) = (state.clone(), data.clone());
            let waiter = thread::spawn(move || {
                assert!(s.wait(None));
                assert_eq!(d.load(Ordering::Relaxed), 7);
            });
            data.store(7, Ordering::Relaxed);
            state.set();
            waiter.join().unwrap();
        });
    }

    /// Two waiters, then one set at once followed by a clear: both are
    /// released, even one that only runs after the clear.
    #[test]
    fn set_then_clear_releases_all_waiters() {
        loom::model(|| {
            let state = std::sync::Arc::new(State::default());
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let s = state.clone();
                    thread::spawn(move || assert!(s.wait(None)))
                })
                .collect();
            // Both are waiting (counted after reading the clear flag); one
            // arriving after the clear would rightly wait for the next set.
            while state.waiters.load(Ordering::SeqCst) < 2 {
                thread::yield_now();
            }
            state.set();
            state.clear();
            for w in waiters {
                w.join().unwrap();
            }
        });
    }
}
