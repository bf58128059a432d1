//! The one import path for atomics, locks and `Arc` in code with hand-written
//! synchronisation, so that `RUSTFLAGS="--cfg quadriga_loom"` can model-check it (a cfg of our
//! own: plain `loom` is read by tokio too, which then leaves out its `net`).
//!
//! Under `cfg(quadriga_loom)` everything comes from the `loom` crate; otherwise from `std`.
//! The wrappers hide lock poisoning: a panic inside a critical section of ours
//! is a bug, and every caller would only `unwrap` anyway.

//!
//! `Arc` is deliberately not here: shared state lives in `std::sync::Arc` (it is
//! coerced to trait objects, which loom's `Arc` cannot do), and what loom models is
//! the synchronisation *inside* it.

#[cfg(quadriga_loom)]
pub(crate) use loom::sync::atomic;
#[cfg(not(quadriga_loom))]
pub(crate) use std::sync::atomic;

#[cfg(quadriga_loom)]
use loom::sync as imp;
#[cfg(not(quadriga_loom))]
use std::sync as imp;

pub(crate) use imp::MutexGuard;

/// A mutex whose `lock` does not report poisoning.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(imp::Mutex<T>);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(imp::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A condition variable paired with [`Mutex`].
#[derive(Debug, Default)]
pub(crate) struct Condvar(imp::Condvar);

impl Condvar {
    pub(crate) fn new() -> Self {
        Self(imp::Condvar::new())
    }

    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0
            .wait(guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits at most `timeout`. Loom has no clock: there the wait is untimed,
    /// which is the stronger check (a model must not rely on time passing).
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: std::time::Duration,
    ) -> MutexGuard<'a, T> {
        #[cfg(quadriga_loom)]
        {
            let _ = timeout;
            self.wait(guard)
        }
        #[cfg(not(quadriga_loom))]
        {
            self.0
                .wait_timeout(guard, timeout)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0)
        }
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}
