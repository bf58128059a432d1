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
//! quadriga::fault::arm("ring.push.copied");
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// What happens at the armed point.
enum Action {
    /// The process kills itself.
    Kill,
    /// The system call fails with `errno`, `times` times (`u32::MAX`: for
    /// good).
    Fail { errno: i32, times: u32 },
}

/// The armed point: its name, how many passes to let through first, and
/// what happens then.
struct Armed {
    point: String,
    after: u32,
    action: Action,
}

static ARMED: Mutex<Option<Armed>> = Mutex::new(None);
/// Whether a point is armed: the only cost of an unarmed point.
static ANY: AtomicBool = AtomicBool::new(false);

fn armed() -> MutexGuard<'static, Option<Armed>> {
    ARMED.lock().unwrap_or_else(|e| e.into_inner())
}

fn set(armed_now: Option<Armed>) {
    let any = armed_now.is_some();
    *armed() = armed_now;
    ANY.store(any, Ordering::SeqCst);
}

/// Arms crash point `point`: the process kills itself the next time it
/// reaches it. Replaces whatever was armed before.
pub fn arm(point: &str) {
    set(Some(Armed {
        point: point.to_owned(),
        after: 0,
        action: Action::Kill,
    }));
}

/// Arms failure point `point`: after letting `after` passes through, its next
/// `times` passes fail with `errno` (`u32::MAX`: every pass, until
/// [`disarm`]). Replaces whatever was armed before.
pub fn arm_errno(point: &str, errno: i32, after: u32, times: u32) {
    set(Some(Armed {
        point: point.to_owned(),
        after,
        action: Action::Fail { errno, times },
    }));
}

/// Disarms whatever was armed.
pub fn disarm() {
    set(None);
}

/// The armed action if `name` is the armed point and its passes to let
/// through are used up (counting this one).
fn reached(name: &str, what: impl FnOnce(&mut Action) -> Option<i32>) -> Option<i32> {
    if !ANY.load(Ordering::Relaxed) {
        return None;
    }
    let mut armed = armed();
    let a = armed.as_mut().filter(|a| a.point == name)?;
    if a.after > 0 {
        a.after -= 1;
        return None;
    }
    what(&mut a.action)
}

/// Called at a named crash point (through the crate's `fault_point!` macro).
#[doc(hidden)]
pub fn point(name: &str) {
    if reached(name, |action| matches!(action, Action::Kill).then_some(0)).is_none() {
        return;
    }
    // SIGKILL cannot be caught: the process ends here, with whatever shared
    // lock the caller holds still taken.
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    // The signal is delivered before kill(2) returns to a single target that
    // is the caller itself; should that ever not hold, do not go on.
    loop {
        std::thread::park();
    }
}

/// Called at a named failure point (through the crate's `fault_errno!`
/// macro): the error number to fail with, if armed.
#[doc(hidden)]
pub fn errno_point(name: &str) -> Option<i32> {
    reached(name, |action| match action {
        Action::Fail { times: 0, .. } | Action::Kill => None,
        Action::Fail { errno, times } => {
            if *times != u32::MAX {
                *times -= 1;
            }
            Some(*errno)
        }
    })
}
