//! Waiting on a 32-bit word in shared memory: `futex(2)` without the
//! process-private flag, so a waiter in one process is woken by a store and a
//! wake in another.
//!
//! The contract is the kernel's: [`wait`] sleeps only if the word still holds
//! `expected` (checked atomically against [`wake`]), and may return spuriously.
//! Every caller re-checks its condition in a loop.
//!
//! Under `cfg(quadriga_loom)` the same contract is modelled with one loom mutex
//! and condition variable per model: `wait` checks the word under the mutex,
//! `wake` takes the mutex, so a wake after a store is never lost, exactly as
//! with the kernel's hash-bucket lock. Loom has no clock, so a timed wait is
//! untimed there, which is the stronger check: a model may not rely on a
//! timeout to make progress (see [`poll_tick`] for the one place that does).

use std::time::Duration;

use crate::loom::atomic::AtomicU32;

/// Sleeps while `*word == expected`, at most `timeout` (forever if `None`).
/// Returns on a wake, a timeout, a signal, or at once if the word differs.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    imp::wait(word, expected, timeout);
}

/// Wakes up to `n` waiters on `word` (`u32::MAX`: all of them).
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    imp::wake(word, n);
}

/// Wakes every waiter of every word. Only loom models call it, to stand for
/// the timer that makes a polling waiter look again (a dead lock holder is
/// noticed by polling, since the kernel wakes waiters on the lock word only).
#[cfg(quadriga_loom)]
pub(crate) fn poll_tick() {
    imp::wake_everyone();
}

#[cfg(not(quadriga_loom))]
mod imp {
    use std::time::Duration;

    use rustix::thread::futex;

    use crate::loom::atomic::AtomicU32;

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let ts = timeout.map(|t| rustix::time::Timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        // EAGAIN (the word changed), ETIMEDOUT and EINTR all mean "look again".
        let _ = futex::wait(word, futex::Flags::empty(), expected, ts.as_ref());
    }

    pub(super) fn wake(word: &AtomicU32, n: u32) {
        let n = n.min(i32::MAX as u32);
        let _ = futex::wake(word, futex::Flags::empty(), n);
    }
}

#[cfg(quadriga_loom)]
mod imp {
    use std::time::Duration;

    use crate::loom::atomic::{AtomicU32, Ordering};

    loom::lazy_static! {
        static ref BUCKET: crate::loom::Mutex<()> = crate::loom::Mutex::new(());
        static ref QUEUE: crate::loom::Condvar = crate::loom::Condvar::new();
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32, _timeout: Option<Duration>) {
        let guard = BUCKET.lock();
        if word.load(Ordering::SeqCst) != expected {
            return;
        }
        drop(QUEUE.wait(guard));
    }

    pub(super) fn wake(_word: &AtomicU32, _n: u32) {
        // Waking everyone is allowed: futex waiters must tolerate spurious wakes.
        wake_everyone();
    }

    pub(super) fn wake_everyone() {
        let guard = BUCKET.lock();
        QUEUE.notify_all();
        drop(guard);
    }
}

/// A deadline-aware helper: what is left of `timeout` since `start`, `None`
/// meaning no limit; `Some(ZERO)` once it has passed.
pub(crate) fn remaining(deadline: Option<std::time::Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()))
}
