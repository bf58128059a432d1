//! [`Lock`]: a mutual-exclusion lock shared between threads and processes.
//!
//! The region's body is one `RawRobustMutex` (a process-shared robust pthread
//! mutex; see `shm::robust`) and a `died` word after it. What it protects is
//! up to the caller (a file, a [`Value`](crate::ipc::Value), a section of
//! code).
//!
//! Invariants:
//! * A [`LockGuard`] exists exactly while its thread holds the mutex; dropping
//!   it unlocks. It is `!Send`: the kernel's robust list is per thread, and only
//!   the locking thread may unlock.
//! * A holder that dies (process killed, crashed, thread exited) is reported
//!   once, to the next taker, as [`OwnerDied`](super::OwnerDied); the mutex is
//!   already marked consistent then, so the lock never becomes unusable.
//! * So is a holder whose thread panicked while holding it (its guard was
//!   dropped while unwinding), as `std`'s `Mutex` poisons: the guard stores 1
//!   in `died` before it unlocks, and the next taker swaps it back to 0. With
//!   `panic = "abort"` the same panic is a death, reported the same way.
//!
//! Memory ordering: the pthread mutex is acquire on lock and release on unlock,
//! so whatever a holder wrote before unlocking is visible to the next holder,
//! in any process. A dead holder's writes may be partial: that is what
//! `OwnerDied` warns about.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::AtomicU32;

use crate::shm::result::{self, LockResult, TryLockError, TryLockResult};
use crate::shm::robust::{Acquired, DIED_AT, RawRobustMutex};
use crate::shm::{Error, LockGuard};
use crate::shm::{Kind, PARAMS, Region, fingerprint};

/// A lock shared between threads and processes, like Python's
/// `multiprocessing.Lock`, that survives its holder's death.
///
/// Clone it for another thread, or put it in a task's input to a
/// [`ProcessPool`](crate::ProcessPool) or [`Process`](crate::Process): every
/// clone and copy is the same lock. When a holder dies holding it, the next
/// [`lock`](Lock::lock) gets it with an [`OwnerDied`](super::OwnerDied) error
/// that carries the guard, instead of hanging forever.
///
/// ```
/// use quadriga::sync::Lock;
///
/// let lock = Lock::new()?;
/// let threads: Vec<_> = (0..4)
///     .map(|i| {
///         let lock = lock.clone();
///         std::thread::spawn(move || {
///             let _held = lock.lock().unwrap();
///             println!("thread {i} has the lock");
///         })
///     })
///     .collect();
/// for t in threads {
///     t.join().unwrap();
/// }
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
///
/// It is `Send + Sync`; its guard is not `Send`, because a robust lock belongs
/// to the thread that took it:
///
/// ```compile_fail,E0277
/// fn needs_send<T: Send>(_: T) {}
/// let lock = quadriga::sync::Lock::new().unwrap();
/// needs_send(lock.lock().unwrap());
/// ```
///
/// Locking again on the thread that holds it is a bug, as with std's `Mutex`;
/// here it panics with a clear message instead of deadlocking (the mutex is
/// error-checking), and [`try_lock`](Lock::try_lock) reports
/// [`WouldBlock`](TryLockError::WouldBlock):
///
/// ```should_panic
/// let lock = quadriga::sync::Lock::new().unwrap();
/// let _held = lock.lock().unwrap();
/// let _again = lock.lock(); // panics: "this thread already holds this shared lock"
/// ```
#[derive(Clone)]
pub struct Lock {
    region: Arc<Region>,
}

impl Lock {
    /// A new, unlocked lock in fresh shared memory.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`](crate::ipc::ErrorKind::Os) if the shared memory could
    /// not be created or the mutex not initialised.
    ///
    /// ```
    /// let lock = quadriga::sync::Lock::new()?;
    /// # drop(lock);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn new() -> Result<Self, Error> {
        let region = Region::create(Kind::Lock, fingerprint::<Lock>(), params(), BODY)?;
        // SAFETY: the body is `size` bytes, 128-byte aligned, zeroed and not
        // yet shared with anyone.
        unsafe { RawRobustMutex::init(region.body().cast()) }
            .map_err(|e| Error::os("initialising a shared lock", e))?;
        Ok(Self {
            region: Arc::new(region),
        })
    }

    fn attach(region: Region) -> Result<Self, Error> {
        if region.params() != params() || region.body_len() < BODY {
            return Err(Error::invalid("a shared lock of another layout"));
        }
        Ok(Self {
            region: Arc::new(region),
        })
    }

    fn raw(&self) -> &RawRobustMutex {
        // SAFETY: the body holds an initialised mutex (checked on attach) and
        // lives as long as `self.region`.
        unsafe { &*self.region.body().cast::<RawRobustMutex>() }
    }

    fn died(&self) -> &AtomicU32 {
        // SAFETY: `DIED_AT` is inside the body (`BODY`, checked on attach),
        // 4-aligned (the body is 128-aligned), and only accessed atomically.
        unsafe { AtomicU32::from_ptr(self.region.body().add(DIED_AT).cast()) }
    }

    fn guard(&self, how: Acquired) -> LockResult<LockGuard<'_>> {
        LockGuard::reporting(self.raw(), &self.region, self.died(), how)
    }

    /// Blocks until the lock is held, and returns its guard; the lock is
    /// released when the guard is dropped.
    ///
    /// # Errors
    ///
    /// [`OwnerDied`](super::OwnerDied), carrying the guard, if the previous
    /// holder died holding the lock. The lock is held either way.
    ///
    /// ```
    /// # let lock = quadriga::sync::Lock::new()?;
    /// let guard = lock.lock().unwrap_or_else(|died| died.into_inner());
    /// drop(guard); // unlocks
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn lock(&self) -> LockResult<LockGuard<'_>> {
        self.guard(self.raw().lock())
    }

    /// Takes the lock if it is free now.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`](super::TryLockError::WouldBlock) if another
    /// thread or process holds it; [`TryLockError::OwnerDied`](super::TryLockError::OwnerDied)
    /// (held, with its guard) if its holder had died.
    ///
    /// ```
    /// # let lock = quadriga::sync::Lock::new()?;
    /// if let Ok(_guard) = lock.try_lock() {
    ///     // ...
    /// }
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn try_lock(&self) -> TryLockResult<LockGuard<'_>> {
        self.taken(self.raw().try_lock())
    }

    fn taken(&self, how: Option<Acquired>) -> TryLockResult<LockGuard<'_>> {
        match how {
            None => Err(TryLockError::WouldBlock),
            Some(how) => self.guard(how).map_err(TryLockError::from),
        }
    }

    /// Blocks until the lock is held, at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`try_lock`](Lock::try_lock); `WouldBlock` means that the time
    /// limit passed first.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let lock = quadriga::sync::Lock::new()?;
    /// let held = lock.lock().unwrap();
    /// let other = lock.clone();
    /// let refused = std::thread::spawn(move || other.lock_timeout(Duration::from_millis(10)).is_err());
    /// assert!(refused.join().unwrap());
    /// # drop(held);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>> {
        self.taken(result::lock_raw(self.raw(), result::deadline(timeout)))
    }
}

/// Bytes of body: the mutex, then the `died` word.
const BODY: usize = DIED_AT + 4;

fn params() -> [u64; PARAMS] {
    let mut p = [0; PARAMS];
    p[0] = std::mem::size_of::<RawRobustMutex>() as u64;
    p[1] = DIED_AT as u64;
    p
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").finish_non_exhaustive()
    }
}

super::serde_by_region!(Lock, Kind::Lock);

#[cfg(all(test, not(quadriga_loom)))]
mod tests {
    use super::*;

    #[test]
    fn mutual_exclusion_between_threads() {
        let lock = Lock::new().unwrap();
        let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (lock, counter) = (lock.clone(), Arc::clone(&counter));
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let _g = lock.lock().unwrap();
                        let inside = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(inside, 0, "two holders at once");
                        counter.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn a_dead_holder_is_reported_once_and_the_guard_works() {
        let lock = Lock::new().unwrap();
        let other = lock.clone();
        std::thread::spawn(move || std::mem::forget(other.lock().unwrap()))
            .join()
            .unwrap();
        let died = lock.try_lock().unwrap_err();
        assert!(matches!(died, crate::shm::TryLockError::OwnerDied(_)));
        drop(died);
        assert!(lock.lock_timeout(Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn a_region_of_another_kind_is_refused() {
        let r = Region::create(Kind::Event, fingerprint::<Lock>(), params(), 64).unwrap();
        let err = Region::attach(r.fd().clone(), Kind::Lock, fingerprint::<Lock>()).unwrap_err();
        assert!(err.to_string().contains("kind"), "{err}");
    }
}

#[cfg(all(test, quadriga_loom))]
mod loom_tests {
    use super::*;
    use crate::shm::robust::Acquired;
    use loom::cell::UnsafeCell;
    use loom::thread;

    /// The guard of a held `mutex` on the heap, as its acquisition went: what
    /// `Lock::lock` does, without a mapping.
    fn guard_of(mutex: &RawRobustMutex, how: Acquired) -> LockResult<LockGuard<'_>> {
        result::blocking(how, LockGuard::new(mutex, None, None))
    }

    /// A holder abandons the lock (its death); whoever takes it next is told,
    /// exactly once, and no two threads are ever inside together.
    #[test]
    fn owner_died_is_reported_to_the_next_taker() {
        loom::model(|| {
            let mutex = std::sync::Arc::new(RawRobustMutex::new());
            let inside = std::sync::Arc::new(UnsafeCell::new(0_u32));
            let told = std::sync::Arc::new(crate::loom::atomic::AtomicU32::new(0));
            let spawn = |abandon: bool| {
                let (m, inside, told) = (mutex.clone(), inside.clone(), told.clone());
                thread::spawn(move || {
                    let taken = guard_of(&m, m.lock());
                    let guard = match taken {
                        Ok(g) => g,
                        Err(died) => {
                            told.fetch_add(1, crate::loom::atomic::Ordering::SeqCst);
                            died.into_inner()
                        }
                    };
                    // Exclusive: loom reports a concurrent access as a race.
                    inside.with_mut(|n| {
                        // SAFETY: under the lock (which is what is checked).
                        unsafe { *n += 1 }
                    });
                    if abandon {
                        std::mem::forget(guard);
                        m.abandon();
                    }
                })
            };
            let dying = spawn(true);
            let living = spawn(false);
            dying.join().unwrap();
            living.join().unwrap();
            let after = guard_of(&mutex, mutex.lock());
            // The abandoned lock was reported exactly once: to `living` if it
            // came after, else to us.
            let to_us = u32::from(after.is_err());
            assert_eq!(told.load(crate::loom::atomic::Ordering::SeqCst) + to_us, 1);
            drop(after);
            inside.with(|n| {
                // SAFETY: every thread has been joined.
                assert_eq!(unsafe { *n }, 2)
            });
        });
    }
}
