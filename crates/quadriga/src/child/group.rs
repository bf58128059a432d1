//! Signalling a child's process group.

use rustix::process::{Pid, kill_process_group, test_kill_process_group};

/// A signal for a child's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// SIGTERM: please stop.
    Term,
    /// SIGKILL: stop now.
    Kill,
}

impl Signal {
    /// Its number.
    ///
    /// ```
    /// assert_eq!(quadriga::child::Signal::Kill.as_raw(), 9);
    /// ```
    pub fn as_raw(self) -> i32 {
        self.to_rustix().as_raw()
    }

    fn to_rustix(self) -> rustix::process::Signal {
        match self {
            Signal::Term => rustix::process::Signal::TERM,
            Signal::Kill => rustix::process::Signal::KILL,
        }
    }
}

/// Sends `signal` to the whole process group led by `pid` (a [`Child`]'s
/// pid). A group that is already gone is not an error.
///
/// See the module's invariants for when the pid is sure to still be ours.
///
/// [`Child`]: super::Child
pub fn signal_group(pid: u32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid as i32) {
        let _ = kill_process_group(pid, signal.to_rustix());
    }
}

/// Whether any process of the group led by `pid` is alive.
///
/// ```
/// let child = quadriga::child::spawn(std::process::Command::new("true"), false)?;
/// quadriga::child::reap(&child.pidfd, true)?;
/// assert!(!quadriga::child::group_alive(child.pid));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn group_alive(pid: u32) -> bool {
    match Pid::from_raw(pid as i32) {
        Some(p) => test_kill_process_group(p).is_ok(),
        None => false,
    }
}
