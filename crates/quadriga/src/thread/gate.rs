//! The pool's admission gate: counts tasks from submission to completion, so
//! that `shutdown` can refuse new work and wait for what was admitted.
//!
//! One atomic word holds both facts: bit 0 is *closed*, the rest counts admitted
//! tasks (in steps of 2). Read-modify-writes on one word are totally ordered,
//! which is what makes the protocol provable (loom models it in `loom_tests`);
//! an earlier version kept the flag and the count in two atomics and relied on
//! `SeqCst` store-load ordering between them, which loom cannot check.
//!
//! * `enter`: `fetch_add(2)`; if the previous word was closed, undo (`leave`)
//!   and refuse. So a task is either refused, or counted before `close`.
//! * `close`: `fetch_or(1)`.
//! * `leave`: `fetch_sub(2)`; if the previous word was exactly *closed, one
//!   task* (3), this was the last task after closing: take the lock and notify
//!   a waiter if one sleeps.
//! * `close_and_wait`: close, then under the lock mark itself waiting and sleep
//!   until the count is 0. The last leaver takes the same lock before it
//!   notifies, so the wake-up cannot fall between the waiter's check and its
//!   sleep, and its decrement happens-before the waiter's next check.

use std::time::{Duration, Instant};

use crate::loom::atomic::{AtomicUsize, Ordering::AcqRel, Ordering::Acquire};
use crate::loom::{Condvar, Mutex};

const CLOSED: usize = 1;
const ONE: usize = 2;

#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// `active * 2 | closed`.
    word: AtomicUsize,
    /// How many `close_and_wait` callers sleep on `cond`.
    waiting: Mutex<usize>,
    cond: Condvar,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Admits one task; `false` if the gate is closed (nothing to undo then).
    pub(crate) fn enter(&self) -> bool {
        if self.word.fetch_add(ONE, AcqRel) & CLOSED != 0 {
            self.leave();
            return false;
        }
        true
    }

    /// One admitted task has finished.
    pub(crate) fn leave(&self) {
        if self.word.fetch_sub(ONE, AcqRel) == ONE | CLOSED {
            let waiting = self.waiting.lock();
            if *waiting > 0 {
                self.cond.notify_all();
            }
        }
    }

    pub(crate) fn close(&self) {
        self.word.fetch_or(CLOSED, AcqRel);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.word.load(Acquire) & CLOSED != 0
    }

    /// Closes the gate and waits until every admitted task has left, or until
    /// `timeout`. Returns whether all have left.
    pub(crate) fn close_and_wait(&self, timeout: Option<Duration>) -> bool {
        if self.word.fetch_or(CLOSED, AcqRel) < ONE {
            return true;
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut waiting = self.waiting.lock();
        *waiting += 1;
        let all_left = loop {
            if self.word.load(Acquire) < ONE {
                break true;
            }
            match deadline {
                None => waiting = self.cond.wait(waiting),
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => {
                        waiting = self.cond.wait_timeout(waiting, left)
                    }
                    _ => break false,
                },
            }
        };
        *waiting -= 1;
        all_left
    }
}

#[cfg(all(test, quadriga_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use loom::thread;

    /// A task admitted concurrently with shutdown is either refused or waited
    /// for: shutdown never returns while an admitted task is still running.
    #[test]
    fn close_races_enter_and_leave() {
        loom::model(|| {
            let gate = Arc::new(Gate::new());
            let running = Arc::new(AtomicBool::new(false));
            let (g, r) = (Arc::clone(&gate), Arc::clone(&running));
            let t = thread::spawn(move || {
                if g.enter() {
                    r.store(true, SeqCst);
                    r.store(false, SeqCst);
                    g.leave();
                }
            });
            assert!(gate.close_and_wait(None));
            assert!(!running.load(SeqCst), "shutdown returned while a task ran");
            assert!(!gate.enter(), "gate admits after close");
            t.join().unwrap();
        });
    }

    /// Two concurrent shutdowns both return once the last task leaves.
    #[test]
    fn two_waiters_both_wake() {
        loom::model(|| {
            let gate = Arc::new(Gate::new());
            assert!(gate.enter());
            let (g1, g2) = (Arc::clone(&gate), Arc::clone(&gate));
            let w = thread::spawn(move || assert!(g1.close_and_wait(None)));
            let t = thread::spawn(move || g2.leave());
            assert!(gate.close_and_wait(None));
            w.join().unwrap();
            t.join().unwrap();
        });
    }

    #[test]
    fn waiter_wakes_when_last_task_leaves() {
        loom::model(|| {
            let gate = Arc::new(Gate::new());
            assert!(gate.enter());
            let g = Arc::clone(&gate);
            let t = thread::spawn(move || g.leave());
            assert!(gate.close_and_wait(None));
            t.join().unwrap();
        });
    }
}
