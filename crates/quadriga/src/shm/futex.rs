//! Waiting on a 32-bit word in shared memory: `futex(2)` without the
//! process-private flag, so a waiter in one process is woken by a store and a
//! wake in another.
//!
//! The contract is the kernel's: [`wait`] sleeps only if the word still holds
//! `expected` (checked atomically against [`wake`]), and may return spuriously.
//! Every caller re-checks its condition in a loop.
//!
//! Under `cfg(quadriga_loom)` the same contract is modelled with one loom mutex
//! (the kernel's hash-bucket lock) over a list of sleepers: `wait` checks the
//! word and enqueues under the mutex, so a wake after a store is never lost;
//! `wake(word, n)` wakes at most `n` sleepers *of that word* and says how many,
//! as the kernel does, so a wake sent to the wrong word or to too few is a
//! deadlock loom reports. Loom has no clock, so a timed wait is untimed there,
//! which is the stronger check: a model may not rely on a timeout to make
//! progress (see [`poll_tick`] for the one place that does).

use std::time::Duration;

use crate::loom::atomic::{AtomicU32, Ordering};

/// The longest a waiter sleeps before it looks again on its own, in every
/// object whose waiters could otherwise miss a peer's death: a process killed
/// holding a lock, or between its store and its wake, wakes only the waiters
/// of the lock word (the kernel's robust list), or nobody.
///
/// 25 ms: a crash is noticed well within a human's blink, and an idle waiter
/// costs 40 wake-ups a second, each a few loads (a semaphore's: a scan of
/// failed try-locks, a few microseconds even at its most permits).
pub(crate) const POLL: Duration = Duration::from_millis(25);

/// Sleeps while `*word == expected`, at most `timeout` (forever if `None`).
/// Returns on a wake, a timeout, a signal, or at once if the word differs.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    imp::wait(word, expected, timeout);
}

/// Wakes up to `n` waiters on `word` (`u32::MAX`: all of them); how many
/// it woke.
pub(crate) fn wake(word: &AtomicU32, n: u32) -> u32 {
    imp::wake(word, n)
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

    pub(super) fn wake(word: &AtomicU32, n: u32) -> u32 {
        let n = n.min(i32::MAX as u32);
        futex::wake(word, futex::Flags::empty(), n).map_or(0, |woken| woken as u32)
    }
}

#[cfg(quadriga_loom)]
mod imp {
    use std::time::Duration;

    use crate::loom::atomic::{AtomicU32, Ordering};

    /// The kernel's futex hash bucket, modelled exactly enough to catch a
    /// lost or misdirected wake-up: who sleeps on which word, and who was
    /// woken. A sleeper returns only when a `wake` on *its* word chose it (at
    /// most `n` per wake), or a `poll_tick` (the timer) fired.
    #[derive(Debug, Default)]
    struct Bucket {
        next: u64,
        /// (word's address, ticket, woken)
        sleepers: Vec<(usize, u64, bool)>,
    }

    loom::lazy_static! {
        static ref BUCKET: crate::loom::Mutex<Bucket> = crate::loom::Mutex::new(Bucket::default());
        static ref QUEUE: crate::loom::Condvar = crate::loom::Condvar::new();
    }

    fn addr(word: &AtomicU32) -> usize {
        std::ptr::from_ref(word) as usize
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32, _timeout: Option<Duration>) {
        let mut bucket = BUCKET.lock();
        if word.load(Ordering::SeqCst) != expected {
            return;
        }
        let ticket = bucket.next;
        bucket.next += 1;
        bucket.sleepers.push((addr(word), ticket, false));
        loop {
            bucket = QUEUE.wait(bucket);
            let me = bucket
                .sleepers
                .iter()
                .position(|s| s.1 == ticket)
                .expect("a sleeper leaves the bucket only by itself");
            if bucket.sleepers[me].2 {
                bucket.sleepers.remove(me);
                return;
            }
        }
    }

    pub(super) fn wake(word: &AtomicU32, n: u32) -> u32 {
        let mut bucket = BUCKET.lock();
        let mut woken = 0;
        for s in bucket.sleepers.iter_mut() {
            if woken < n && s.0 == addr(word) && !s.2 {
                s.2 = true;
                woken += 1;
            }
        }
        if woken > 0 {
            QUEUE.notify_all();
        }
        woken
    }

    pub(super) fn wake_everyone() {
        let mut bucket = BUCKET.lock();
        for s in bucket.sleepers.iter_mut() {
            s.2 = true;
        }
        QUEUE.notify_all();
    }
}

/// A futex word for "wait until something changes", whose lowest bit says
/// *someone may be asleep here*, so that a waker with nobody to wake makes
/// no system call.
///
/// * **Sleeper**: [`arm`](Self::arm) (sets the bit, returns the value to sleep
///   on), then a `SeqCst` fence, then a fresh look at its condition, then
///   [`sleep`](Self::sleep) only if it still must wait.
/// * **Waker**: makes its change, then a `SeqCst` fence, then
///   [`ring`](Self::ring): if the bit is set, it adds 2 to the word (the bit
///   stays) and wakes up to `n` sleepers.
///
/// No lost wake-up: of the two fences, either the sleeper's comes first and
/// the waker's load sees the bit, so the waker changes the word (a sleeper
/// not yet asleep then finds it changed and returns) and wakes; or the
/// waker's comes first, and the sleeper's fresh look sees the change (when
/// its `arm` read the waker's add, the fences synchronise through it).
///
/// **Self-healing.** A sleeper killed while asleep leaves the bit set. A
/// waker whose wake finds nobody asleep clears it again (only if the word did
/// not change meanwhile), then wakes once more, for a sleeper that went to
/// sleep on the old value between its wake and its clear (the kernel checks
/// the value and queues the sleeper under the bucket lock that `wake` takes,
/// so that second wake finds it). A sleeper that was armed but not yet asleep
/// sees the word changed and returns, then arms again. So a death costs the
/// wakers a few system calls once, not one on every later wake (which is what
/// the counter of waiters this replaced cost).
///
/// The all-zero word (`Default`, or zeroed shared memory) is a doorbell
/// nobody waits at.
#[derive(Debug, Default)]
#[repr(transparent)]
pub(crate) struct Doorbell(AtomicU32);

impl Doorbell {
    /// Marks a sleeper present; the value to pass to [`sleep`](Self::sleep).
    /// The caller issues a `SeqCst` fence next, then re-checks its condition.
    pub(crate) fn arm(&self) -> u32 {
        self.0.fetch_or(1, Ordering::Relaxed) | 1
    }

    /// Sleeps while nothing was rung since `armed` was read, at most
    /// `timeout`; may return early.
    pub(crate) fn sleep(&self, armed: u32, timeout: Option<Duration>) {
        wait(&self.0, armed, timeout);
    }

    /// Wakes up to `n` sleepers if any may be asleep. The caller has made its
    /// change and issued a `SeqCst` fence first.
    pub(crate) fn ring(&self, n: u32) {
        if self.0.load(Ordering::Relaxed) & 1 == 0 {
            return;
        }
        let rung = self.0.fetch_add(2, Ordering::Relaxed).wrapping_add(2);
        if wake(&self.0, n) == 0
            && self
                .0
                .compare_exchange(rung, rung & !1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // The bit is cleared; anyone who fell asleep on `rung` between
            // the wake and the clear is woken here (see the type's docs).
            wake(&self.0, n);
        }
    }

    /// Wakes every sleeper, whether or not the bit says one may be there.
    pub(crate) fn ring_all(&self) {
        self.0.fetch_add(2, Ordering::Release);
        wake(&self.0, u32::MAX);
    }
}

/// A deadline-aware helper: what is left of `timeout` since `start`, `None`
/// meaning no limit; `Some(ZERO)` once it has passed.
pub(crate) fn remaining(deadline: Option<std::time::Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()))
}
