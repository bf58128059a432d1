//! [`Semaphore`]: a counting semaphore shared between threads and processes,
//! whose permits come back when their holder dies.
//!
//! # Design
//!
//! A plain shared counter cannot be robust: a process killed between its
//! decrement and its increment takes a permit with it, forever. So each permit
//! is a *slot* holding its own robust mutex, and holding a permit means holding
//! that slot's mutex. The kernel releases a dead thread's robust mutexes and
//! marks them `OWNER_DIED`, so a dead holder's permit is taken by the next
//! `try_lock` on its slot, which learns that it reclaimed it.
//!
//! Layout of the body: a 64-byte header, then `permits` slots.
//!
//! ```text
//! header: bell: u32     a futex::Doorbell: the word sleepers sleep on, whose
//!                       low bit tells a release that someone may sleep, so
//!                       that a release skips the wake syscall when nobody does
//!         hint: u32     where the next scan starts (rotates, spreads contention)
//! slot i: mutex         RawRobustMutex: locked = the permit is held
//!         taken: u32    1 while held (set after locking, cleared before
//!                       unlocking), for the approximate `available()`; 2 if
//!                       its last holder gave it back while panicking, so
//!                       that the next taker is told, as for a death (std's
//!                       poisoning)
//! ```
//!
//! * **Acquire**: scan every slot from `hint` with `try_lock`; the first that
//!   succeeds is the permit (a slot left `OWNER_DIED` succeeds too, and the
//!   acquirer is told). If none does: arm the doorbell, a `SeqCst` fence,
//!   scan again, and if still none, sleep on the armed value at most
//!   [`POLL`], then start over.
//! * **Release**: `taken = 0`, unlock the slot, a `SeqCst` fence, ring the
//!   doorbell (wake one sleeper, if one may be there).
//!
//! No lost wake-up: the doorbell's argument (see `futex::Doorbell`): of the
//! two fences, either the acquirer's second scan sees the unlocked slot, or
//! the release sees the armed bit, changes the word and wakes. A release wakes
//! one sleeper; one that times out after being woken passes the wake on. A
//! death frees a slot without a ring: the kernel wakes only waiters on the
//! mutex word, and our sleepers sleep on the doorbell. That is why a sleeper
//! never sleeps longer than [`POLL`] before scanning again.
//!
//! Everything read from shared memory is bounded before use: the slot count
//! comes from the checked header, not from the body, and `hint` is taken
//! modulo that count.
//!
//! A waiter that dies asleep leaves the doorbell's bit set: the next release
//! finds nobody to wake and clears it. The kernel
//! releases at most 2048 robust mutexes of a dying thread (its robust-list
//! limit), so a single thread holding more permits than that and dying would
//! strand the rest.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::loom::atomic::{AtomicU32, Ordering, fence};
use crate::shm::futex::Doorbell;
use crate::shm::result::{self, LockResult, NotSend, TryLockError, TryLockResult};
use crate::shm::robust::{Acquired, RawRobustMutex};
use crate::shm::{Error, futex};
use crate::shm::{Kind, PARAMS, Region, fingerprint};

use crate::shm::futex::POLL;

/// `Slot::taken`: free, held, or given back by a holder that panicked (the
/// next taker is told, as if it had died).
const FREE: u32 = 0;
const TAKEN: u32 = 1;
const PANICKED: u32 = 2;

/// Bytes before the first slot.
const SLOTS_AT: usize = 64;

/// The header at the start of the body.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Head {
    /// Rung by every release that finds a sleeper may be there.
    bell: Doorbell,
    hint: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Head>() <= SLOTS_AT);

/// One permit.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Slot {
    mutex: RawRobustMutex,
    taken: AtomicU32,
}

#[cfg(quadriga_loom)]
impl Slot {
    pub(crate) fn new() -> Self {
        Self {
            mutex: RawRobustMutex::new(),
            taken: AtomicU32::new(0),
        }
    }
}

/// The algorithm over a header and its slots, wherever they live (shared
/// memory, or the heap in the loom models).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Core<'a> {
    pub(crate) head: &'a Head,
    pub(crate) slots: &'a [Slot],
}

impl<'a> Core<'a> {
    /// One pass over every slot, starting at the hint.
    fn scan(self) -> Option<(usize, Acquired)> {
        let n = self.slots.len();
        let start = self.head.hint.load(Ordering::Relaxed) as usize % n;
        for k in 0..n {
            let i = (start + k) % n;
            if let Some(how) = self.slots[i].mutex.try_lock() {
                crate::fault_point!("semaphore.acquire.locked");
                // Under the slot's mutex: relaxed is enough.
                let was = self.slots[i].taken.swap(TAKEN, Ordering::Relaxed);
                let how = if was == PANICKED {
                    Acquired::OwnerDied
                } else {
                    how
                };
                self.head
                    .hint
                    .store(((i + 1) % n) as u32, Ordering::Relaxed);
                return Some((i, how));
            }
        }
        None
    }

    /// Takes a permit, waiting until `deadline` (`None`: forever). Returns the
    /// slot held, or `None` if the deadline passed.
    pub(crate) fn acquire(self, deadline: Option<Instant>) -> Option<(usize, Acquired)> {
        let mut slept = false;
        loop {
            if let Some(got) = self.scan() {
                return Some(got);
            }
            if result::expired(deadline) {
                // A release wakes one sleeper: if it was us, pass it on, since
                // we leave without the permit it announced.
                if slept {
                    fence(Ordering::SeqCst);
                    self.head.bell.ring(1);
                }
                return None;
            }
            // Arm, then look once more: a release after the arm either is
            // seen by this scan or rings the bell (futex::Doorbell).
            let armed = self.head.bell.arm();
            fence(Ordering::SeqCst);
            if let Some(got) = self.scan() {
                return Some(got);
            }
            let nap = futex::remaining(deadline).map_or(POLL, |left| left.min(POLL));
            self.head.bell.sleep(armed, Some(nap));
            slept = true;
        }
    }

    /// Takes a permit if one is free now.
    pub(crate) fn try_acquire(self) -> Option<(usize, Acquired)> {
        self.scan()
    }

    /// Gives back the permit of `slot`.
    ///
    /// # Safety
    /// The calling thread holds `slot` (acquired it and has not released it).
    pub(crate) unsafe fn release(self, slot: usize, panicking: bool) {
        let s = &self.slots[slot];
        s.taken
            .store(if panicking { PANICKED } else { FREE }, Ordering::Relaxed);
        crate::fault_point!("semaphore.release.cleared");
        // SAFETY: the caller holds this slot's mutex.
        unsafe { s.mutex.unlock() };
        crate::fault_point!("semaphore.release.unlocked");
        fence(Ordering::SeqCst);
        self.head.bell.ring(1);
    }

    /// Slots not marked taken (a dead holder's counts as taken until
    /// reclaimed).
    fn available(self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.taken.load(Ordering::Relaxed) != TAKEN)
            .count()
    }
}

/// A counting semaphore shared between threads and processes, like Python's
/// `multiprocessing.Semaphore` (bounded: there are never more permits than it
/// was made with), robust against holders that die.
///
/// A [`Permit`] is given back when dropped, by the thread that acquired it.
/// Permits cannot be released by another thread or process (a permit is a lock
/// owned by its thread); to signal between threads use an
/// [`Event`](super::Event) or a queue. When a holder dies (its process killed
/// or crashed, its thread exited), its permit is reclaimed by the next
/// acquirer, which is told so by an [`OwnerDied`](super::OwnerDied).
///
/// ```
/// use quadriga::sync::Semaphore;
///
/// let sem = Semaphore::new(2)?;
/// let a = sem.acquire().unwrap();
/// let b = sem.acquire().unwrap();
/// assert!(sem.try_acquire().is_err(), "both permits are out");
/// drop(a);
/// let c = sem.try_acquire().unwrap();
/// # drop((b, c));
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
///
/// The semaphore is `Send + Sync`; a permit is not `Send`:
///
/// ```compile_fail,E0277
/// fn needs_send<T: Send>(_: T) {}
/// let sem = quadriga::sync::Semaphore::new(1).unwrap();
/// needs_send(sem.acquire().unwrap());
/// ```
///
/// Acquiring scans the permits, so a semaphore is meant for tens or hundreds
/// of permits; [`MAX_PERMITS`](Semaphore::MAX_PERMITS) bounds it.
#[derive(Clone)]
pub struct Semaphore {
    region: Arc<Region>,
    permits: usize,
}

impl Semaphore {
    /// The most permits a semaphore may have.
    pub const MAX_PERMITS: usize = 4096;

    /// A new semaphore with `permits` permits, all free.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Invalid`](crate::ipc::ErrorKind::Invalid) for 0 permits or
    /// more than [`MAX_PERMITS`](Semaphore::MAX_PERMITS);
    /// [`ErrorKind::Os`](crate::ipc::ErrorKind::Os) if the shared memory could
    /// not be made.
    ///
    /// ```
    /// use quadriga::{ipc::ErrorKind, sync::Semaphore};
    ///
    /// let sem = Semaphore::new(3)?;
    /// assert_eq!(sem.permits(), 3);
    /// assert_eq!(Semaphore::new(0).unwrap_err().kind(), ErrorKind::Invalid);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn new(permits: usize) -> Result<Self, Error> {
        check_permits(permits as u64)?;
        let region = Region::create(
            Kind::Semaphore,
            fingerprint::<Semaphore>(),
            params(permits),
            body_len(permits).expect("bounded by MAX_PERMITS"),
        )?;
        let slots = region.body().wrapping_add(SLOTS_AT).cast::<Slot>();
        for i in 0..permits {
            // SAFETY: slot `i` lies inside the body (sized by `body_len`),
            // aligned (the body is 128-aligned, SLOTS_AT and the slot size are
            // multiples of the slot's alignment), zeroed, and not shared yet.
            // The header and `taken` words are valid zeroed.
            unsafe { RawRobustMutex::init(std::ptr::addr_of_mut!((*slots.add(i)).mutex)) }
                .map_err(|e| Error::os("initialising a shared semaphore", e))?;
        }
        Ok(Self {
            region: Arc::new(region),
            permits,
        })
    }

    fn attach(region: Region) -> Result<Self, Error> {
        let p = region.params();
        check_permits(p[0])?;
        let permits = p[0] as usize;
        if p != params(permits) || body_len(permits).is_none_or(|need| region.body_len() < need) {
            return Err(Error::invalid("a shared semaphore of another layout"));
        }
        Ok(Self {
            region: Arc::new(region),
            permits,
        })
    }

    fn core(&self) -> Core<'_> {
        let body = self.region.body();
        // SAFETY: the body holds the header and `permits` initialised slots
        // (sizes checked on create and attach); they live as long as the
        // region, which `self` keeps.
        unsafe {
            Core {
                head: &*body.cast::<Head>(),
                slots: std::slice::from_raw_parts(body.add(SLOTS_AT).cast::<Slot>(), self.permits),
            }
        }
    }

    /// Blocks until a permit is free, and takes it. The permit is given back
    /// when dropped.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`](super::OwnerDied), carrying the permit, if it was
    /// reclaimed from a holder that died. The permit is held either way.
    ///
    /// ```
    /// # let sem = quadriga::sync::Semaphore::new(1)?;
    /// let permit = sem.acquire().unwrap_or_else(|died| died.into_inner());
    /// drop(permit);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn acquire(&self) -> LockResult<Permit<'_>> {
        let core = self.core();
        let (slot, how) = core.acquire(None).expect("no deadline");
        result::blocking(how, Permit::new(core, slot, &self.region))
    }

    /// Takes a permit if one is free now.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if none is; [`TryLockError::OwnerDied`]
    /// (held) if it was reclaimed from a dead holder.
    ///
    /// ```
    /// # let sem = quadriga::sync::Semaphore::new(1)?;
    /// let first = sem.try_acquire();
    /// assert!(first.is_ok());
    /// assert!(sem.try_acquire().is_err());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn try_acquire(&self) -> TryLockResult<Permit<'_>> {
        self.taken(self.core().try_acquire())
    }

    /// Blocks until a permit is free, at most `timeout`, and takes it.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Semaphore::try_acquire); `WouldBlock` means that the
    /// time limit passed first.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let sem = quadriga::sync::Semaphore::new(1)?;
    /// let permit = sem.acquire_timeout(Duration::from_secs(1));
    /// assert!(permit.is_ok());
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<Permit<'_>> {
        self.taken(self.core().acquire(result::deadline(timeout)))
    }

    fn taken(&self, got: Option<(usize, Acquired)>) -> TryLockResult<Permit<'_>> {
        match got {
            None => Err(TryLockError::WouldBlock),
            Some((slot, how)) => {
                result::blocking(how, Permit::new(self.core(), slot, &self.region))
                    .map_err(Into::into)
            }
        }
    }

    /// About how many permits are free now: exact when nothing changes
    /// meanwhile, and a dead holder's permit counts as taken until an acquirer
    /// reclaims it.
    ///
    /// ```
    /// # let sem = quadriga::sync::Semaphore::new(3)?;
    /// let p = sem.acquire().unwrap();
    /// assert_eq!(sem.available(), 2);
    /// drop(p);
    /// assert_eq!(sem.available(), 3);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn available(&self) -> usize {
        self.core().available()
    }

    /// How many permits the semaphore was made with.
    ///
    /// ```
    /// # let sem = quadriga::sync::Semaphore::new(3)?;
    /// assert_eq!(sem.permits(), 3);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn permits(&self) -> usize {
        self.permits
    }
}

fn check_permits(permits: u64) -> Result<(), Error> {
    if permits == 0 || permits > Semaphore::MAX_PERMITS as u64 {
        return Err(Error::invalid(format!(
            "a semaphore needs between 1 and {} permits, not {permits}",
            Semaphore::MAX_PERMITS
        )));
    }
    Ok(())
}

fn params(permits: usize) -> [u64; PARAMS] {
    let mut p = [0; PARAMS];
    p[0] = permits as u64;
    p[1] = std::mem::size_of::<Slot>() as u64;
    p[2] = SLOTS_AT as u64;
    p
}

fn body_len(permits: usize) -> Option<usize> {
    permits
        .checked_mul(std::mem::size_of::<Slot>())?
        .checked_add(SLOTS_AT)
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("permits", &self.permits)
            .field("available", &self.available())
            .finish()
    }
}

super::serde_by_region!(Semaphore, Kind::Semaphore);

/// One permit of a [`Semaphore`], given back when dropped. Not `Send`: it must
/// be dropped on the thread that acquired it.
///
/// ```
/// # let sem = quadriga::sync::Semaphore::new(1)?;
/// {
///     let _permit = sem.acquire().unwrap();
///     assert_eq!(sem.available(), 0);
/// }
/// assert_eq!(sem.available(), 1);
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct Permit<'a> {
    core: Core<'a>,
    slot: usize,
    /// Keeps the slot's memory mapped even if the permit is leaked (see
    /// `LockGuard`: a held robust mutex must never be unmapped).
    _mapping: Arc<Region>,
    _not_send: NotSend,
}

impl<'a> Permit<'a> {
    /// Only for a slot of `core`, in `mapping`, that the calling thread has
    /// just locked.
    fn new(core: Core<'a>, slot: usize, mapping: &Arc<Region>) -> Self {
        Self {
            core,
            slot,
            _mapping: Arc::clone(mapping),
            _not_send: NotSend::default(),
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        // SAFETY: a permit is made only for a slot this thread has locked, and
        // it is `!Send`, so this is the acquiring thread.
        unsafe { self.core.release(self.slot, std::thread::panicking()) };
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("slot", &self.slot).finish()
    }
}

#[cfg(all(test, not(quadriga_loom)))]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        assert!(Semaphore::new(0).is_err());
        assert!(Semaphore::new(Semaphore::MAX_PERMITS + 1).is_err());
        let sem = Semaphore::new(Semaphore::MAX_PERMITS).unwrap();
        assert_eq!(sem.available(), Semaphore::MAX_PERMITS);
    }

    #[test]
    fn never_more_holders_than_permits() {
        let sem = Semaphore::new(3).unwrap();
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (sem, inside) = (sem.clone(), Arc::clone(&inside));
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        let _p = sem.acquire().unwrap();
                        let n = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert!(n < 3, "{} holders of 3 permits", n + 1);
                        inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(sem.available(), 3);
    }

    #[test]
    fn a_dead_holders_permit_is_reclaimed_by_a_sleeping_waiter() {
        let sem = Semaphore::new(1).unwrap();
        let held = Arc::new(std::sync::Barrier::new(2));
        let (s, h) = (sem.clone(), Arc::clone(&held));
        let holder = std::thread::spawn(move || {
            std::mem::forget(s.acquire().unwrap());
            h.wait();
            // Give the waiter time to go to sleep; the thread then exits
            // holding the permit (a death that wakes nobody on `seq`).
            std::thread::sleep(Duration::from_millis(50));
        });
        held.wait();
        let got = sem.acquire_timeout(Duration::from_secs(30));
        assert!(matches!(got, Err(TryLockError::OwnerDied(_))), "{got:?}");
        drop(got);
        holder.join().unwrap();
        assert_eq!(sem.available(), 1);
    }
}

#[cfg(all(test, quadriga_loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    fn semaphore(permits: usize) -> (std::sync::Arc<Head>, std::sync::Arc<Vec<Slot>>) {
        (
            std::sync::Arc::new(Head::default()),
            std::sync::Arc::new((0..permits).map(|_| Slot::new()).collect()),
        )
    }

    /// Two permits, three threads: never more than two inside, and everyone
    /// gets in (a lost wake-up would be a deadlock, which loom reports).
    #[test]
    fn two_permits_three_threads() {
        loom::model(|| {
            let (head, slots) = semaphore(2);
            let inside = std::sync::Arc::new(AtomicU32::new(0));
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let (head, slots, inside) = (head.clone(), slots.clone(), inside.clone());
                    thread::spawn(move || {
                        let core = Core {
                            head: &head,
                            slots: &slots,
                        };
                        let (slot, how) = core.acquire(None).unwrap();
                        assert_eq!(how, Acquired::Clean);
                        let n = inside.fetch_add(1, Ordering::SeqCst);
                        assert!(n < 2, "three holders of two permits");
                        inside.fetch_sub(1, Ordering::SeqCst);
                        // SAFETY: acquired above by this thread.
                        unsafe { core.release(slot, false) };
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        });
    }

    /// The only permit's holder dies (abandons it) while another thread waits:
    /// the waiter is not left asleep (the poll tick) and is told it reclaimed
    /// the permit.
    #[test]
    fn a_dead_holder_does_not_strand_the_waiter() {
        loom::model(|| {
            let (head, slots) = semaphore(1);
            let core = Core {
                head: &head,
                slots: &slots,
            };
            let (slot, _) = core.acquire(None).unwrap();
            let (h, s) = (head.clone(), slots.clone());
            let done = std::sync::Arc::new(crate::loom::atomic::AtomicBool::new(false));
            let d = done.clone();
            let waiter = thread::spawn(move || {
                let core = Core {
                    head: &h,
                    slots: &s,
                };
                let (slot, how) = core.acquire(None).unwrap();
                assert_eq!(how, Acquired::OwnerDied);
                // SAFETY: acquired above by this thread.
                unsafe { core.release(slot, false) };
                d.store(true, Ordering::SeqCst);
            });
            // Death of the holder: the mutex is freed without a release.
            slots[slot].mutex.abandon();
            // The waiters' poll timer: it keeps firing until the waiter is
            // through (loom's timed waits never time out by themselves).
            while !done.load(Ordering::SeqCst) {
                futex::poll_tick();
                thread::yield_now();
            }
            waiter.join().unwrap();
        });
    }
}
