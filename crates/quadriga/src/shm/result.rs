//! The results of taking a robust lock, shared by [`Lock`](crate::sync::Lock),
//! [`Semaphore`](crate::sync::Semaphore), [`Value`](crate::ipc::Value) and
//! [`Array`](crate::ipc::Array): in the style of std's `PoisonError`, but what
//! they report is a *dead holder*, not a panic.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::robust::{Acquired, RawRobustMutex};

/// The result of a blocking `lock` or `acquire`: the guard, or the guard inside
/// an [`OwnerDied`] when the previous holder died holding it.
///
/// Either way the lock **is held** and the guard is usable; the error only
/// tells you that the state it protects may be half-updated.
///
/// ```
/// use quadriga::sync::{Lock, LockResult, LockGuard};
///
/// let lock = Lock::new()?;
/// let taken: LockResult<LockGuard<'_>> = lock.lock();
/// // A holder that died is the exception; repair and carry on, or ignore it:
/// let guard = taken.unwrap_or_else(|died| died.into_inner());
/// drop(guard);
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
pub type LockResult<G> = Result<G, OwnerDied<G>>;

/// The result of `try_lock`, `lock_timeout`, `try_acquire` and
/// `acquire_timeout`.
///
/// ```
/// use quadriga::sync::{Lock, TryLockError};
///
/// let lock = Lock::new()?;
/// let held = lock.lock().unwrap();
/// assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
/// drop(held);
/// assert!(lock.try_lock().is_ok());
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
pub type TryLockResult<G> = Result<G, TryLockError<G>>;

/// The previous holder died holding the lock (its process was killed or
/// crashed, or its thread exited), or its thread panicked while holding it:
/// the lock is now held by the caller, whose guard this carries, and the data
/// it protects may be half-updated.
///
/// Like std's `PoisonError`, it gives the guard back: repair what the dead
/// holder may have left, then use the guard as usual. The lock stays usable:
/// the next taker after you is *not* told again.
///
/// ```
/// use quadriga::sync::Lock;
///
/// let lock = Lock::new()?;
/// let lock2 = lock.clone();
/// // A thread that exits holding the lock stands for a crashed process.
/// std::thread::spawn(move || std::mem::forget(lock2.lock())).join().unwrap();
///
/// let died = lock.lock().unwrap_err();
/// assert!(died.to_string().contains("died"));
/// let guard = died.into_inner(); // held, and usable
/// drop(guard);
/// assert!(lock.lock().is_ok(), "reported once");
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
pub struct OwnerDied<G> {
    guard: G,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G) -> Self {
        Self { guard }
    }

    /// The guard: the lock is held.
    ///
    /// ```
    /// # use quadriga::sync::Lock;
    /// # let lock = Lock::new()?;
    /// let guard = lock.lock().unwrap_or_else(|died| died.into_inner());
    /// # drop(guard);
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn into_inner(self) -> G {
        self.guard
    }

    /// A reference to the guard.
    ///
    /// ```
    /// # use quadriga::ipc::Value;
    /// # let v = Value::new(3_u32)?;
    /// if let Err(died) = v.lock() {
    ///     println!("the value was {} when its writer died", **died.get_ref());
    /// }
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// A mutable reference to the guard, to repair the data in place.
    ///
    /// ```
    /// # use quadriga::ipc::Value;
    /// # let v = Value::new(3_u32)?;
    /// if let Err(mut died) = v.lock() {
    ///     **died.get_mut() = 0; // reset what the dead writer left
    /// }
    /// # Ok::<(), quadriga::ipc::Error>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDied").finish_non_exhaustive()
    }
}

impl<G> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the previous holder died holding the lock; it is held now, \
             but the data it protects may be half-updated",
        )
    }
}

impl<G> std::error::Error for OwnerDied<G> {}

/// Why `try_lock`, `lock_timeout`, `try_acquire` or `acquire_timeout` returned
/// without a plain guard.
///
/// ```
/// use std::time::Duration;
/// use quadriga::sync::{Semaphore, TryLockError};
///
/// let sem = Semaphore::new(1)?;
/// let permit = sem.acquire().unwrap();
/// match sem.acquire_timeout(Duration::from_millis(1)) {
///     Err(TryLockError::WouldBlock) => {} // not within the time limit
///     other => panic!("{other:?}"),
/// }
/// drop(permit);
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
#[derive(thiserror::Error)]
pub enum TryLockError<G> {
    /// Not free now (`try_*`), or not within the time limit (`*_timeout`).
    /// Nothing is held.
    #[error("the lock is held by another thread or process")]
    WouldBlock,
    /// Taken, but the previous holder had died holding it: see [`OwnerDied`].
    #[error(transparent)]
    OwnerDied(#[from] OwnerDied<G>),
}

impl<G> fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WouldBlock => f.write_str("WouldBlock"),
            Self::OwnerDied(d) => f.debug_tuple("OwnerDied").field(d).finish(),
        }
    }
}

/// Makes the guard types `!Send` (and `!Sync`): a robust mutex is owned by the
/// thread that locked it, and only that thread may unlock it.
pub(crate) type NotSend = PhantomData<*const ()>;

/// `now + timeout`, or `None` (no limit) when that does not fit in an
/// `Instant`.
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Whether `deadline` (if any) has passed.
pub(crate) fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Takes `mutex`, within `deadline` if there is one.
pub(crate) fn lock_raw(mutex: &RawRobustMutex, deadline: Option<Instant>) -> Option<Acquired> {
    match deadline {
        None => Some(mutex.lock()),
        Some(d) => mutex.lock_until(d),
    }
}

/// Wraps an acquired `guard` the way its acquisition went.
pub(crate) fn blocking<G>(how: Acquired, guard: G) -> LockResult<G> {
    match how {
        Acquired::Clean => Ok(guard),
        Acquired::OwnerDied => Err(OwnerDied::new(guard)),
    }
}
