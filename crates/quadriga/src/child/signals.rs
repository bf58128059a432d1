//! SIGINT, SIGTERM and SIGHUP as bytes on a pipe.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use rustix::pipe::{PipeFlags, pipe_with};

/// The termination signals a runner catches.
const CAUGHT: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The write end of the installed pipe, or -1.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP caught and turned into bytes on a pipe, which
/// an event loop waits on like any other descriptor.
///
/// The handler only writes the signal's number to a non-blocking pipe (the
/// one async-signal-safe thing it does). Children do not inherit it: exec
/// resets caught signals to their defaults. One may be installed at a time;
/// dropping it puts back the handlers it replaced.
///
/// ```no_run
/// let signals = quadriga::child::SignalPipe::install()?;
/// // ... poller.add(signals.fd(), ...) and, when it is readable:
/// for sig in signals.take() {
///     eprintln!("caught signal {sig}");
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct SignalPipe {
    read: OwnedFd,
    write: OwnedFd,
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl std::fmt::Debug for SignalPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalPipe")
            .field("read", &self.read)
            .field("write", &self.write)
            .finish_non_exhaustive()
    }
}

impl SignalPipe {
    /// Catches SIGINT, SIGTERM and SIGHUP from now on. Fails with
    /// `AlreadyExists` while another one is installed.
    pub fn install() -> io::Result<Self> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        SIGNAL_PIPE
            .compare_exchange(-1, write.as_raw_fd(), Ordering::Relaxed, Ordering::Relaxed)
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a SignalPipe is already installed",
                )
            })?;
        let mut pipe = SignalPipe {
            read,
            write,
            previous: Vec::new(),
        };
        for sig in CAUGHT {
            // SAFETY: `sigaction` is plain old data, zeroed then filled in;
            // the handler only calls write(2), which is async-signal-safe;
            // `old` is a live, writable local.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &action, &mut old) != 0 {
                    // Dropping `pipe` restores what was replaced so far.
                    return Err(io::Error::last_os_error());
                }
                pipe.previous.push((sig, old));
            }
        }
        Ok(pipe)
    }

    /// The read end, to wait on: readable when a signal has come.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// The signals received since the last call, by number, in order.
    pub fn take(&self) -> Vec<i32> {
        let mut buf = [0u8; 16];
        let mut out = Vec::new();
        while let Ok(n) = rustix::io::read(&self.read, &mut buf) {
            if n == 0 {
                break;
            }
            out.extend(buf[..n].iter().map(|&b| i32::from(b)));
        }
        out
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        for (sig, old) in self.previous.drain(..).rev() {
            // SAFETY: `old` is what sigaction(2) gave back for `sig`.
            unsafe {
                libc::sigaction(sig, &old, std::ptr::null_mut());
            }
        }
        SIGNAL_PIPE.store(-1, Ordering::Relaxed);
        // The pipe closes after this. Only a handler already running on
        // another thread at this very moment could still write its byte to
        // the old number: the window is this drop, not the rest of the run.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_signal_is_read_back_and_the_old_handler_restored() {
        let signals = SignalPipe::install().unwrap();
        assert_eq!(
            SignalPipe::install().unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::HUP)
            .unwrap();
        // Delivery may be to another thread, a moment later.
        let mut got = signals.take();
        let start = std::time::Instant::now();
        while got.is_empty() && start.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(1));
            got = signals.take();
        }
        assert_eq!(got, [libc::SIGHUP]);
        assert!(signals.take().is_empty());
        drop(signals);
        // SAFETY: a query only (null new action); `old` is a live local.
        let handler = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old);
            old.sa_sigaction
        };
        assert_ne!(handler, on_signal as *const () as libc::sighandler_t);
        // And a new one may be installed.
        drop(SignalPipe::install().unwrap());
    }
}
