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
//!
//! A *failure* point (`fault_errno!`) instead makes a system call fail with an
//! armed error number, for errors a test cannot provoke for real (the kernel
//! does not enforce `ETOOMANYREFS` on root, which CI runs as):
//!
//! ```ignore
//! quadriga::fault::arm_errno("wire.send_fds", libc::ETOOMANYREFS, 1, 3);
//! ```

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

/// The armed failure: point, error number, passes to let through first, and
/// how many failures to give after those.
struct Failing {
    point: String,
    errno: i32,
    after: u32,
    times: u32,
}

static FAILING: Mutex<Option<Failing>> = Mutex::new(None);
static ANY_FAILING: AtomicBool = AtomicBool::new(false);

/// Arms failure point `point`: after letting `after` passes through, its next
/// `times` passes fail with `errno` (`u32::MAX`: every pass, until
/// [`disarm_errno`]). Replaces any failure armed before.
pub fn arm_errno(point: &str, errno: i32, after: u32, times: u32) {
    *FAILING.lock().unwrap_or_else(|e| e.into_inner()) = Some(Failing {
        point: point.to_owned(),
        errno,
        after,
        times,
    });
    ANY_FAILING.store(true, Ordering::SeqCst);
}

/// Disarms whatever failure point was armed.
pub fn disarm_errno() {
    ANY_FAILING.store(false, Ordering::SeqCst);
    *FAILING.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Called at a named failure point (through the crate's `fault_errno!`
/// macro): the error number to fail with, if armed.
#[doc(hidden)]
pub fn errno_point(name: &str) -> Option<i32> {
    if !ANY_FAILING.load(Ordering::Relaxed) {
        return None;
    }
    let mut failing = FAILING.lock().unwrap_or_else(|e| e.into_inner());
    let f = failing.as_mut().filter(|f| f.point == name)?;
    if f.after > 0 {
        f.after -= 1;
        return None;
    }
    if f.times == 0 {
        return None;
    }
    if f.times != u32::MAX {
        f.times -= 1;
    }
    Some(f.errno)
}
