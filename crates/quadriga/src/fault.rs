//! Fault injection for the crash tests: a process dies at a named point of
//! a shared-memory protocol, so a test can prove that every such point leaves
//! the shared state whole.
//!
//! Only with the hidden cargo feature `fault-injection` (the test command
//! builds with it). Without it, `fault_point!` expands to nothing
//! and this module does not exist, so production builds carry no cost.
//!
//! A test arms a point inside the process that should die (typically in a
//! task run by [`Process`](crate::Process)), then calls the operation:
//!
//! ```ignore
//! quadriga::fault::arm("ring.push.copied", 0);
//! queue.put(7)?; // the process is SIGKILLed after the copy, before the commit
//! ```
//!
//! The death is `SIGKILL` sent by the process to itself: no destructor, no
//! unwinding, no atexit handler runs, exactly as if the kernel's OOM killer or
//! an impatient user had struck at that instruction.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The armed point and how many more hits to let pass first.
static ARMED: Mutex<Option<(String, u32)>> = Mutex::new(None);
/// Whether any point is armed: the only cost of an unarmed point.
static ANY: AtomicBool = AtomicBool::new(false);

/// Arms `point`: the process kills itself the `after + 1`-th time it reaches
/// that point. Replaces any point armed before.
pub fn arm(point: &str, after: u32) {
    *ARMED.lock().unwrap_or_else(|e| e.into_inner()) = Some((point.to_owned(), after));
    ANY.store(true, Ordering::SeqCst);
}

/// Disarms whatever point was armed.
pub fn disarm() {
    ANY.store(false, Ordering::SeqCst);
    *ARMED.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Called at a named point (through the crate's `fault_point!` macro).
#[doc(hidden)]
pub fn point(name: &str) {
    if !ANY.load(Ordering::Relaxed) {
        return;
    }
    let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
    let Some((point, after)) = armed.as_mut() else {
        return;
    };
    if point != name {
        return;
    }
    if *after > 0 {
        *after -= 1;
        return;
    }
    // SIGKILL cannot be caught: the process ends here, with the lock of
    // `ARMED` and whatever shared lock the caller holds still taken.
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    // The signal is delivered before kill(2) returns to a single target that
    // is the caller itself; should that ever not hold, do not go on.
    loop {
        std::thread::park();
    }
}
