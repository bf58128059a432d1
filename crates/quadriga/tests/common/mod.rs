//! Helpers shared by the integration tests: a watchdog so that no test can
//! hang, and a tiny `block_on` (no tokio) that polls only when woken.

#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// A generous bound for anything that should happen "soon".
pub(crate) const SOON: Duration = Duration::from_secs(10);

/// Runs `f` on its own thread and fails the test if it does not return within
/// `secs` seconds (a deadlock then fails instead of hanging the suite). A panic
/// in `f` is re-raised here with its message.
#[track_caller]
pub(crate) fn within<R, F>(secs: u64, f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let worker = thread::Builder::new()
        .name("test-body".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn the test body");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(r) => {
            worker.join().expect("test body thread");
            r
        }
        Err(RecvTimeoutError::Disconnected) => match worker.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => unreachable!("the body neither answered nor panicked"),
        },
        Err(RecvTimeoutError::Timeout) => {
            panic!("test body did not finish within {secs} s (deadlock or hang)")
        }
    }
}

/// Polls until `cond` holds, at most `timeout`. Returns whether it held.
pub(crate) fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// A waker that records that it was woken and unparks its thread.
#[derive(Debug)]
pub(crate) struct Flag {
    pub(crate) woken: AtomicBool,
    thread: Thread,
}

impl Flag {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Flag {
            woken: AtomicBool::new(false),
            thread: thread::current(),
        })
    }

    pub(crate) fn was_woken(&self) -> bool {
        self.woken.load(Ordering::SeqCst)
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Drives `fut` to completion on this thread, polling again **only after a
/// wake-up** (so a future that forgets to wake makes this time out, not spin).
/// Returns the output and the number of polls, or `None` after `timeout`.
pub(crate) fn block_on<F: Future>(fut: F, timeout: Duration) -> Option<(F::Output, usize)> {
    let mut fut = pin!(fut);
    let flag = Flag::new();
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + timeout;
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some((out, polls));
        }
        while !flag.woken.swap(false, Ordering::SeqCst) {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            thread::park_timeout(deadline - now);
        }
    }
}

/// The path of an example, which cargo builds next to the test binaries:
/// `target/<profile>/deps/<test>-<hash>` → `target/<profile>/examples/<name>`.
pub(crate) fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "example not built: {}", path.display());
    path
}
