//! [`Barrier`]: `parties` threads or processes wait until all have arrived,
//! then all go on; like Python's `multiprocessing.Barrier`, including its
//! *broken* state.
//!
//! # Design
//!
//! The body holds a robust mutex and three words:
//!
//! ```text
//! mutex    RawRobustMutex guarding every change below
//! word     generation << 1 | broken: the futex word waiters sleep on
//! arrived  parties that have arrived in the current generation
//! ring     bit g % 32 set: generation g ended broken (not released)
//! ```
//!
//! * **Arrival** (under the mutex): if broken, fail. Otherwise count the
//!   arrival; the last party (the *leader*) starts the next generation —
//!   `arrived = 0`, clear its ring bit, `word = (g + 1) << 1` — and wakes
//!   everyone. The others sleep on `word` while it holds the value they saw.
//! * **Outcome**: a waiter whose `word` changed reads, under the mutex, how
//!   its generation `g` ended: still `g` with the broken bit → broken; a later
//!   generation → its ring bit says released or broken. The ring is needed
//!   because `reset` starts a new generation right after breaking one, and a
//!   waiter of the broken one may only wake afterwards. A waiter that slept
//!   through 32 or more generations (only possible with more threads than
//!   parties, or repeated resets) cannot tell and reports broken.
//! * **Breaking** (`abort`, a timeout, a repair): set ring bit `g`, set the
//!   broken bit, `arrived = 0`, wake everyone. Every current and later waiter
//!   fails with [`ErrorKind::Broken`](crate::ipc::ErrorKind::Broken) until
//!   `reset`.
//! * **Reset**: if broken or anyone is waiting, mark generation `g` broken in
//!   the ring (its waiters fail), start generation `g + 1`, not broken, with
//!   nobody arrived, and wake everyone.
//!
//! **Repair policy: break.** If taking the mutex reports that its previous
//! holder died, a party died inside a barrier call, possibly halfway through
//! an update. Such a party will never arrive again, so the current generation
//! could not complete anyway: the barrier is broken (which also makes the
//! half-updated count irrelevant), and `reset` makes it usable again.
//!
//! **Nobody sleeps through a death.** The kernel wakes only the waiters of a
//! dead holder's *mutex* word, and ours sleep on `word`. So a waiter sleeps at
//! most [`POLL`] at a time; when a nap brings no change it `try_lock`s the
//! mutex, and finding its holder dead, breaks the barrier itself. The same
//! naps cover a leader killed after its store of `word` but before its wake.
//! A party that dies while *waiting* (outside the mutex) had arrived; one that
//! dies before arriving cannot be told from a slow one: use
//! [`Barrier::wait_timeout`] across processes, whose timeout breaks the
//! barrier for everyone.
//!
//! Memory ordering: every change happens under the mutex (acquire/release);
//! the leader's store of `word` is a release and waiters read it with an
//! acquire, then re-read under the mutex. What each party wrote before
//! arriving is visible to every party after a successful `wait`.
//!
//! Everything read from shared memory is bounded: `parties` comes from the
//! checked header, and an `arrived` count that is out of range (a corrupted
//! body) breaks the barrier. Generations wrap after 2³¹.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::loom::atomic::{AtomicU32, Ordering};
use crate::shm::futex::POLL;
use crate::shm::result::{self, NotSend};
use crate::shm::robust::{Acquired, RawRobustMutex};
use crate::shm::{Error, ErrorKind, futex};
use crate::shm::{Kind, PARAMS, Region, fingerprint};

const BROKEN: u32 = 1;
/// Generations whose outcome the ring remembers.
const RING: u32 = 32;

/// The shared state (the whole body).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct State {
    mutex: RawRobustMutex,
    word: AtomicU32,
    arrived: AtomicU32,
    ring: AtomicU32,
}

/// How a `wait` ended for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Leader,
    Released,
    Broken,
    TimedOut,
}

fn generation(word: u32) -> u32 {
    word >> 1
}

fn bit(generation: u32) -> u32 {
    1 << (generation % RING)
}

/// The mutex, held; unlocks when dropped.
struct Held<'a> {
    mutex: &'a RawRobustMutex,
    _not_send: NotSend,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // SAFETY: made only by `State::enter`, on the locking thread, and
        // `!Send`.
        unsafe { self.mutex.unlock() };
    }
}

impl State {
    #[cfg(quadriga_loom)]
    pub(crate) fn new() -> Self {
        Self {
            mutex: RawRobustMutex::new(),
            word: AtomicU32::new(0),
            arrived: AtomicU32::new(0),
            ring: AtomicU32::new(0),
        }
    }

    /// Takes the mutex; if its holder had died, breaks the barrier first (the
    /// repair policy; see the module docs).
    fn enter(&self) -> Held<'_> {
        let how = self.mutex.lock();
        let held = Held {
            mutex: &self.mutex,
            _not_send: NotSend::default(),
        };
        if how == Acquired::OwnerDied {
            self.break_locked(&held);
        }
        held
    }

    /// Breaks the current generation (under the mutex, which `_held` proves).
    fn break_locked(&self, _held: &Held<'_>) {
        let w = self.word.load(Ordering::Relaxed);
        self.arrived.store(0, Ordering::Relaxed);
        if w & BROKEN == 0 {
            self.ring.fetch_or(bit(generation(w)), Ordering::Relaxed);
            self.word.store(w | BROKEN, Ordering::Release);
            futex::wake(&self.word, u32::MAX);
        }
    }

    /// Arrives and waits for the others, until `deadline` (`None`: forever).
    pub(crate) fn wait(&self, parties: u32, deadline: Option<Instant>) -> Outcome {
        let held = self.enter();
        crate::fault_point!("barrier.wait.locked");
        let seen = self.word.load(Ordering::Relaxed);
        if seen & BROKEN != 0 {
            return Outcome::Broken;
        }
        let arrived = self.arrived.load(Ordering::Relaxed);
        if arrived >= parties {
            // Impossible unless the shared memory was corrupted.
            self.break_locked(&held);
            return Outcome::Broken;
        }
        if arrived + 1 == parties {
            let next = generation(seen).wrapping_add(1);
            self.arrived.store(0, Ordering::Relaxed);
            self.ring.fetch_and(!bit(next), Ordering::Relaxed);
            self.word.store(next << 1, Ordering::Release);
            crate::fault_point!("barrier.lead.released");
            drop(held);
            crate::fault_point!("barrier.lead.unlocked");
            futex::wake(&self.word, u32::MAX);
            return Outcome::Leader;
        }
        self.arrived.store(arrived + 1, Ordering::Relaxed);
        crate::fault_point!("barrier.wait.arrived");
        drop(held);
        loop {
            let nap = futex::remaining(deadline).map_or(POLL, |left| left.min(POLL));
            futex::wait(&self.word, seen, Some(nap));
            let changed = self.word.load(Ordering::Acquire) != seen;
            if changed || result::expired(deadline) {
                let held = self.enter();
                let now = self.word.load(Ordering::Relaxed);
                if now == seen {
                    // Still our generation, unbroken: the time ran out.
                    self.break_locked(&held);
                    return Outcome::TimedOut;
                }
                return self.outcome(generation(seen), now);
            }
            // Nothing for a nap. A party killed inside the mutex wakes nobody
            // sleeping here (the kernel wakes waiters of the mutex word only):
            // look whether that happened, and break the barrier if so.
            if let Some(how) = self.mutex.try_lock() {
                let held = Held {
                    mutex: &self.mutex,
                    _not_send: NotSend::default(),
                };
                if how == Acquired::OwnerDied {
                    crate::fault_point!("barrier.repair.locked");
                    self.break_locked(&held);
                }
                let now = self.word.load(Ordering::Relaxed);
                if now != seen {
                    return self.outcome(generation(seen), now);
                }
            }
        }
    }

    /// How generation `g` ended, seen from `now` (under the mutex).
    fn outcome(&self, g: u32, now: u32) -> Outcome {
        let since = generation(now).wrapping_sub(g) & (u32::MAX >> 1);
        if since == 0 || since >= RING || self.ring.load(Ordering::Relaxed) & bit(g) != 0 {
            Outcome::Broken
        } else {
            Outcome::Released
        }
    }

    pub(crate) fn abort(&self) {
        let held = self.enter();
        self.break_locked(&held);
    }

    pub(crate) fn reset(&self) {
        let _held = self.enter();
        let w = self.word.load(Ordering::Relaxed);
        if w & BROKEN == 0 && self.arrived.load(Ordering::Relaxed) == 0 {
            return; // already fresh
        }
        let g = generation(w);
        let next = g.wrapping_add(1);
        self.arrived.store(0, Ordering::Relaxed);
        self.ring.fetch_or(bit(g), Ordering::Relaxed);
        self.ring.fetch_and(!bit(next), Ordering::Relaxed);
        self.word.store(next << 1, Ordering::Release);
        futex::wake(&self.word, u32::MAX);
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.word.load(Ordering::Acquire) & BROKEN != 0
    }

    fn n_waiting(&self, parties: u32) -> u32 {
        self.arrived.load(Ordering::Relaxed).min(parties)
    }
}

/// A barrier for `parties` threads or processes, like Python's
/// `multiprocessing.Barrier`: each [`wait`](Barrier::wait) blocks until
/// `parties` calls have arrived, then all return, and the barrier is ready for
/// the next round (a *generation*). One of each round is its
/// [leader](BarrierWaitResult::is_leader).
///
/// A barrier can be **broken**: by [`abort`](Barrier::abort), by a
/// [`wait_timeout`](Barrier::wait_timeout) whose time runs out, or when a
/// party dies inside a barrier call. Then every current and later `wait` fails
/// with [`ErrorKind::Broken`] until [`reset`](Barrier::reset). Across processes,
/// prefer `wait_timeout`: a party that dies before arriving would otherwise
/// leave the others waiting forever.
///
/// ```
/// use quadriga::sync::Barrier;
///
/// let barrier = Barrier::new(3)?;
/// let threads: Vec<_> = (0..3)
///     .map(|_| {
///         let b = barrier.clone();
///         std::thread::spawn(move || b.wait().map(|r| r.is_leader()))
///     })
///     .collect();
/// let mut leaders = 0;
/// for t in threads {
///     if t.join().unwrap()? {
///         leaders += 1;
///     }
/// }
/// assert_eq!(leaders, 1);
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    region: Arc<Region>,
    parties: u32,
}

/// What a successful [`Barrier::wait`] tells its caller.
///
/// ```
/// let b = quadriga::sync::Barrier::new(1)?;
/// assert!(b.wait()?.is_leader(), "a party of one leads");
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    leader: bool,
}

impl BarrierWaitResult {
    /// Whether this caller was the last to arrive (exactly one per
    /// generation), e.g. to do the round's bookkeeping once.
    ///
    /// ```
    /// let b = quadriga::sync::Barrier::new(1)?;
    /// if b.wait()?.is_leader() {
    ///     println!("everyone is here");
    /// }
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}

impl Barrier {
    /// The most parties a barrier may have.
    pub const MAX_PARTIES: usize = 1 << 30;

    /// A new barrier for `parties` parties.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Invalid`] for 0 parties (or more than
    /// [`MAX_PARTIES`](Barrier::MAX_PARTIES)); [`ErrorKind::Os`] if the shared
    /// memory could not be made.
    ///
    /// ```
    /// use quadriga::{ipc::ErrorKind, sync::Barrier};
    ///
    /// assert_eq!(Barrier::new(4)?.parties(), 4);
    /// assert_eq!(Barrier::new(0).unwrap_err().kind(), ErrorKind::Invalid);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn new(parties: usize) -> Result<Self, Error> {
        let parties = check_parties(parties as u64)?;
        let region = Region::create(
            Kind::Barrier,
            fingerprint::<Barrier>(),
            params(parties),
            std::mem::size_of::<State>(),
        )?;
        let state = region.body().cast::<State>();
        // SAFETY: the body is a zeroed, 128-byte aligned `State` (valid zero
        // words) that nobody else sees yet.
        unsafe { RawRobustMutex::init(std::ptr::addr_of_mut!((*state).mutex)) }
            .map_err(|e| Error::os("initialising a shared barrier", e))?;
        Ok(Self {
            region: Arc::new(region),
            parties,
        })
    }

    fn attach(region: Region) -> Result<Self, Error> {
        let parties = check_parties(region.params()[0])?;
        if region.params() != params(parties) || region.body_len() < std::mem::size_of::<State>() {
            return Err(Error::invalid("a shared barrier of another layout"));
        }
        Ok(Self {
            region: Arc::new(region),
            parties,
        })
    }

    fn state(&self) -> &State {
        // SAFETY: the body holds an initialised `State` (size checked on
        // create and attach) for as long as the region lives.
        unsafe { &*self.region.body().cast::<State>() }
    }

    /// Arrives and blocks until all parties have arrived.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Broken`] if the barrier is broken, or breaks while this
    /// party waits.
    ///
    /// ```
    /// # let b = quadriga::sync::Barrier::new(2)?;
    /// let other = b.clone();
    /// let t = std::thread::spawn(move || other.wait().map(|r| r.is_leader()));
    /// let me = b.wait()?.is_leader();
    /// assert!(me != t.join().unwrap()?, "exactly one leader");
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn wait(&self) -> Result<BarrierWaitResult, Error> {
        self.finish(self.state().wait(self.parties, None))
    }

    /// Arrives and blocks until all parties have arrived, at most `timeout`.
    /// If the time runs out first, the barrier **breaks** for everyone (the
    /// other waiters fail with [`ErrorKind::Broken`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] for the caller whose time ran out (the barrier
    /// is broken now); [`ErrorKind::Broken`] if it was broken.
    ///
    /// ```
    /// use std::time::Duration;
    /// use quadriga::{ipc::ErrorKind, sync::Barrier};
    ///
    /// let b = Barrier::new(2)?;
    /// let err = b.wait_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Timeout);
    /// assert!(b.is_broken());
    /// assert_eq!(b.wait().unwrap_err().kind(), ErrorKind::Broken);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult, Error> {
        self.finish(self.state().wait(self.parties, result::deadline(timeout)))
    }

    fn finish(&self, outcome: Outcome) -> Result<BarrierWaitResult, Error> {
        match outcome {
            Outcome::Leader => Ok(BarrierWaitResult { leader: true }),
            Outcome::Released => Ok(BarrierWaitResult { leader: false }),
            Outcome::Broken => Err(Error::new(
                ErrorKind::Broken,
                "the barrier is broken (a party timed out, it was aborted, \
                 or a party died inside it); reset it to use it again",
            )),
            Outcome::TimedOut => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "not all {} parties arrived at the barrier in time; it is broken now",
                    self.parties
                ),
            )),
        }
    }

    /// Breaks the barrier: every current and later waiter fails with
    /// [`ErrorKind::Broken`] until [`reset`](Barrier::reset).
    ///
    /// ```
    /// # let b = quadriga::sync::Barrier::new(2)?;
    /// b.abort();
    /// assert!(b.is_broken());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn abort(&self) {
        self.state().abort();
    }

    /// Returns the barrier to a fresh generation with nobody waiting. Parties
    /// waiting now fail with [`ErrorKind::Broken`].
    ///
    /// ```
    /// # let b = quadriga::sync::Barrier::new(1)?;
    /// b.abort();
    /// b.reset();
    /// assert!(!b.is_broken());
    /// assert!(b.wait().is_ok());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn reset(&self) {
        self.state().reset();
    }

    /// Whether the barrier is broken.
    ///
    /// ```
    /// # let b = quadriga::sync::Barrier::new(2)?;
    /// assert!(!b.is_broken());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn is_broken(&self) -> bool {
        self.state().is_broken()
    }

    /// How many parties the barrier waits for.
    ///
    /// ```
    /// # let b = quadriga::sync::Barrier::new(2)?;
    /// assert_eq!(b.parties(), 2);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn parties(&self) -> usize {
        self.parties as usize
    }

    /// How many parties are waiting in the current generation (a snapshot).
    ///
    /// ```
    /// # let b = quadriga::sync::Barrier::new(2)?;
    /// assert_eq!(b.n_waiting(), 0);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn n_waiting(&self) -> usize {
        self.state().n_waiting(self.parties) as usize
    }
}

fn check_parties(parties: u64) -> Result<u32, Error> {
    if parties == 0 || parties > Barrier::MAX_PARTIES as u64 {
        return Err(Error::invalid(format!(
            "a barrier needs between 1 and {} parties, not {parties}",
            Barrier::MAX_PARTIES
        )));
    }
    Ok(parties as u32)
}

fn params(parties: u32) -> [u64; PARAMS] {
    let mut p = [0; PARAMS];
    p[0] = u64::from(parties);
    p[1] = std::mem::size_of::<State>() as u64;
    p
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish()
    }
}

super::serde_by_region!(Barrier, Kind::Barrier);

#[cfg(all(test, not(quadriga_loom)))]
mod tests {
    use super::*;

    fn run(b: &Barrier, n: usize, rounds: usize) -> Vec<Result<bool, ErrorKind>> {
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    (0..rounds)
                        .map(|_| b.wait().map(|r| r.is_leader()).map_err(|e| e.kind()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }

    #[test]
    fn one_leader_per_generation() {
        let b = Barrier::new(4).unwrap();
        let results = run(&b, 4, 50);
        assert_eq!(results.iter().filter(|r| **r == Ok(true)).count(), 50);
        assert_eq!(results.iter().filter(|r| **r == Ok(false)).count(), 150);
    }

    #[test]
    fn a_timeout_breaks_it_for_everyone_until_reset() {
        let b = Barrier::new(3).unwrap();
        let other = b.clone();
        let waiter = std::thread::spawn(move || other.wait().unwrap_err().kind());
        while b.n_waiting() < 1 {
            std::thread::yield_now();
        }
        let err = b.wait_timeout(Duration::from_millis(20)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(waiter.join().unwrap(), ErrorKind::Broken);
        assert_eq!(b.wait().unwrap_err().kind(), ErrorKind::Broken);
        b.reset();
        assert!(!b.is_broken());
        assert_eq!(run(&b, 3, 2).iter().filter(|r| **r == Ok(true)).count(), 2);
    }

    #[test]
    fn reset_fails_the_parties_waiting() {
        let b = Barrier::new(3).unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || b.wait().unwrap_err().kind())
            })
            .collect();
        while b.n_waiting() < 2 {
            std::thread::yield_now();
        }
        b.reset();
        for w in waiters {
            assert_eq!(w.join().unwrap(), ErrorKind::Broken);
        }
        assert!(!b.is_broken(), "reset leaves it usable");
    }

    #[test]
    fn a_party_dying_inside_breaks_it() {
        let b = Barrier::new(2).unwrap();
        let other = b.clone();
        // A thread that exits holding the barrier's mutex: a party that died
        // halfway through an update.
        std::thread::spawn(move || std::mem::forget(other.state().enter()))
            .join()
            .unwrap();
        assert_eq!(b.wait().unwrap_err().kind(), ErrorKind::Broken);
        assert!(b.is_broken());
        b.reset();
        assert_eq!(run(&b, 2, 3).iter().filter(|r| **r == Ok(true)).count(), 3);
    }

    #[test]
    fn bounds_are_checked() {
        assert_eq!(Barrier::new(0).unwrap_err().kind(), ErrorKind::Invalid);
        assert!(Barrier::new(Barrier::MAX_PARTIES + 1).is_err());
    }
}

#[cfg(all(test, quadriga_loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    fn spawn_waits(
        state: &std::sync::Arc<State>,
        parties: u32,
        rounds: usize,
    ) -> thread::JoinHandle<Vec<Outcome>> {
        let s = state.clone();
        thread::spawn(move || (0..rounds).map(|_| s.wait(parties, None)).collect())
    }

    /// Two parties, two generations: both are released each time (a lost
    /// wake-up would be a deadlock), with exactly one leader per generation.
    #[test]
    fn two_parties_two_generations() {
        loom::model(|| {
            let state = std::sync::Arc::new(State::new());
            let other = spawn_waits(&state, 2, 2);
            let mine: Vec<_> = (0..2).map(|_| state.wait(2, None)).collect();
            let theirs = other.join().unwrap();
            for (a, b) in mine.into_iter().zip(theirs) {
                let leaders = [a, b].iter().filter(|o| **o == Outcome::Leader).count();
                assert_eq!(leaders, 1, "{a:?} {b:?}");
                assert!([a, b].contains(&Outcome::Released), "{a:?} {b:?}");
            }
        });
    }

    /// Three parties, one generation: one leader, two released.
    #[test]
    fn three_parties() {
        loom::model(|| {
            let state = std::sync::Arc::new(State::new());
            let others = [spawn_waits(&state, 3, 1), spawn_waits(&state, 3, 1)];
            let mut all = vec![state.wait(3, None)];
            for o in others {
                all.extend(o.join().unwrap());
            }
            assert_eq!(all.iter().filter(|o| **o == Outcome::Leader).count(), 1);
            assert_eq!(all.iter().filter(|o| **o == Outcome::Released).count(), 2);
        });
    }

    /// Breaking (what a timeout does; here `abort`, since loom has no clock)
    /// releases every waiter with `Broken`, and later arrivals fail at once.
    #[test]
    fn breaking_releases_everyone() {
        loom::model(|| {
            let state = std::sync::Arc::new(State::new());
            let others = [spawn_waits(&state, 3, 1), spawn_waits(&state, 3, 1)];
            state.abort();
            for o in others {
                assert_eq!(o.join().unwrap(), [Outcome::Broken]);
            }
        });
    }

    /// A party that dies inside the barrier's mutex (here: takes it and
    /// abandons it) wakes nobody who sleeps on the barrier's word; a waiter
    /// still ends, `Broken`, on its next nap (the poll timer, which keeps
    /// firing here until the waiter is through, since loom's timed waits
    /// never time out by themselves).
    #[test]
    fn a_party_dying_inside_the_mutex_breaks_it_for_a_sleeper() {
        loom::model(|| {
            let state = std::sync::Arc::new(State::new());
            let done = std::sync::Arc::new(crate::loom::atomic::AtomicBool::new(false));
            let (s, d) = (state.clone(), done.clone());
            let waiter = thread::spawn(move || {
                let outcome = s.wait(3, None);
                d.store(true, Ordering::SeqCst);
                outcome
            });
            state.mutex.lock();
            state.mutex.abandon();
            while !done.load(Ordering::SeqCst) {
                futex::poll_tick();
                thread::yield_now();
            }
            assert_eq!(waiter.join().unwrap(), Outcome::Broken);
            assert!(state.is_broken());
        });
    }

    /// A waiter of a generation that is broken and then reset at once, before
    /// the waiter runs again, still learns that its generation broke (the
    /// ring), instead of taking the reset for a release.
    #[test]
    fn reset_right_after_breaking_still_fails_the_waiter() {
        loom::model(|| {
            let state = std::sync::Arc::new(State::new());
            let waiter = spawn_waits(&state, 2, 1);
            while state.n_waiting(2) == 0 {
                thread::yield_now();
            }
            state.abort();
            state.reset();
            assert_eq!(waiter.join().unwrap(), [Outcome::Broken]);
            assert!(!state.is_broken());
        });
    }
}
