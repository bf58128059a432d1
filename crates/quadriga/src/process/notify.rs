//! Waking the supervisor without a system call per command.
//!
//! Callers push a command on a channel, then ask [`Notify::should_signal`];
//! only the caller that flips the flag from clear to set writes the eventfd.
//! The supervisor, woken, clears the flag with [`Notify::reset`] *before* it
//! drains the channel. Both sides use read-modify-writes on one flag, so the
//! supervisor's `reset` synchronises with the last caller's `should_signal`:
//! either that caller saw the flag clear and signals, or the supervisor's drain
//! sees its command. The model in `loom_tests` checks there is no lost wake-up.

use crate::loom::atomic::{AtomicBool, Ordering::AcqRel};

#[derive(Debug, Default)]
pub(crate) struct Notify {
    pending: AtomicBool,
}

impl Notify {
    /// After pushing a command: whether this caller must signal the supervisor.
    pub(crate) fn should_signal(&self) -> bool {
        !self.pending.swap(true, AcqRel)
    }

    /// Before draining the commands.
    pub(crate) fn reset(&self) {
        self.pending.swap(false, AcqRel);
    }
}

#[cfg(all(test, quadriga_loom))]
mod loom_tests {
    use super::*;
    use crate::loom::{Condvar, Mutex};
    use loom::sync::Arc;
    use loom::thread;

    /// Two producers and a consumer that sleeps on an "eventfd" (a counter under
    /// a mutex): the consumer always gets both commands; a lost wake-up would
    /// leave it asleep forever, which loom reports as a deadlock.
    #[test]
    fn no_lost_wakeup() {
        loom::model(|| {
            let notify = Arc::new(Notify::default());
            let queue = Arc::new(Mutex::new(0_u32));
            let efd = Arc::new((Mutex::new(0_u32), Condvar::new()));
            let producers: Vec<_> = (0..2)
                .map(|_| {
                    let (n, q, e) = (Arc::clone(&notify), Arc::clone(&queue), Arc::clone(&efd));
                    thread::spawn(move || {
                        *q.lock() += 1;
                        if n.should_signal() {
                            *e.0.lock() += 1;
                            e.1.notify_all();
                        }
                    })
                })
                .collect();
            let mut got = 0;
            loop {
                notify.reset();
                got += std::mem::take(&mut *queue.lock());
                if got == 2 {
                    break;
                }
                let mut signals = efd.0.lock();
                while *signals == 0 {
                    signals = efd.1.wait(signals);
                }
                *signals = 0;
            }
            for p in producers {
                p.join().unwrap();
            }
        });
    }
}
