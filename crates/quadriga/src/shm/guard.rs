//! [`LockGuard`]: the guard of one robust mutex in a shared-memory region,
//! shared by [`Lock`](crate::sync::Lock) and the locked values
//! ([`Value`](crate::ipc::Value), [`Array`](crate::ipc::Array)).
//!
//! Invariants:
//! * A guard exists exactly while its thread holds the mutex; dropping it
//!   unlocks. It is `!Send`: the kernel's robust list is per thread, and only
//!   the locking thread may unlock.
//! * A guard dropped while its thread panics stores 1 in the object's `died`
//!   word (if it has one) before it unlocks, so the next taker is told, as
//!   `std`'s `Mutex` poisons; [`LockGuard::reporting`] swaps it back to 0.
//! * It keeps its `Arc<Region>` alive, so even a leaked guard never leaves a
//!   robust-list entry pointing at unmapped memory.

use std::fmt;
use std::sync::Arc;

use std::sync::atomic::{AtomicU32, Ordering};

use super::region::Region;
use super::result::{self, LockResult, NotSend};
use super::robust::{Acquired, RawRobustMutex};

/// Holds a [`Lock`](crate::sync::Lock); unlocks it when dropped. Not `Send`: it must be dropped
/// on the thread that locked.
///
/// ```
/// # let lock = quadriga::sync::Lock::new()?;
/// {
///     let _guard = lock.lock().unwrap();
///     assert!(lock.try_lock().is_err());
/// }
/// assert!(lock.try_lock().is_ok());
/// # Ok::<(), quadriga::ipc::Error>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    mutex: &'a RawRobustMutex,
    /// Set to 1 if the guard is dropped while its thread panics (module docs).
    died: Option<&'a AtomicU32>,
    /// Keeps the mapping of `mutex` (in shared memory) alive as long as the
    /// guard, also when the guard is leaked (`mem::forget`): a held robust
    /// mutex is on its thread's robust list, which glibc walks on later
    /// unlocks and the kernel at thread exit, so it must never be unmapped.
    _mapping: Option<Arc<Region>>,
    _not_send: NotSend,
}

impl<'a> LockGuard<'a> {
    /// Only for a mutex the calling thread has just locked, in `mapping` (or
    /// on the heap, in the loom models), with the word that reports a holder
    /// that panicked, if the object has one.
    pub(crate) fn new(
        mutex: &'a RawRobustMutex,
        mapping: Option<&Arc<Region>>,
        died: Option<&'a AtomicU32>,
    ) -> Self {
        Self {
            mutex,
            died,
            _mapping: mapping.cloned(),
            _not_send: NotSend::default(),
        }
    }
}

impl<'a> LockGuard<'a> {
    /// The guard for `mutex`, which this thread has just taken `how`, in an
    /// object whose `died` word keeps a report for the next taker (a holder
    /// that panicked, or a dead one that a quiet taker met): the report is
    /// given, and cleared, here.
    pub(crate) fn reporting(
        mutex: &'a RawRobustMutex,
        mapping: &Arc<Region>,
        died: &'a AtomicU32,
        how: Acquired,
    ) -> LockResult<Self> {
        let guard = Self::new(mutex, Some(mapping), Some(died));
        // Under the lock: relaxed is enough.
        let kept = died.swap(0, Ordering::Relaxed) != 0;
        result::blocking(if kept { Acquired::OwnerDied } else { how }, guard)
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if let Some(died) = self.died.filter(|_| std::thread::panicking()) {
            // Before the unlock, which publishes it to the next taker.
            died.store(1, Ordering::Relaxed);
        }
        // SAFETY: a guard is made only for a mutex this thread has locked, and
        // it is `!Send`, so this is the locking thread.
        unsafe { self.mutex.unlock() };
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}
