//! [`Process`]: one task in one new process, like Python's
//! `multiprocessing.Process`.

use std::fmt;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::child::{self, Exit, Signal};
use crate::error::{BuildError, TaskError};
use crate::handle::{self, TaskHandle};
use crate::process::spawn::{self, SpawnConfig};
use std::borrow::Cow;

use crate::process::wire::{self, Decoder, Down, Up};
use crate::process::worker;
use crate::task::Task;
use crate::task::batch::Batch;

/// Starts one task in a new process of its own.
///
/// ```
/// use quadriga::Process;
///
/// #[quadriga::task]
/// fn count(n: u32) -> u32 {
///     (1..=n).sum()
/// }
///
/// let p = Process::spawn(count, 10)?;
/// assert_ne!(p.pid(), std::process::id());
/// assert_eq!(p.join().unwrap(), 55);
/// # Ok::<(), quadriga::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Process;

impl Process {
    /// Starts `task(input)` in a new worker process and returns its handle.
    ///
    /// # Errors
    ///
    /// [`BuildError::Spawn`] if the process could not be started.
    pub fn spawn<T: Task>(
        task: T,
        input: T::Input,
    ) -> Result<ProcessHandle<T::Output>, BuildError> {
        let _ = task;
        worker::bootstrap();
        let mut batch = Batch::default();
        batch.push(&input).map_err(|e| {
            BuildError::Spawn(std::io::Error::other(format!(
                "could not encode the input: {e}"
            )))
        })?;
        let (handle, completer) = handle::pair::<T::Output>(T::NAME);
        let exit = Arc::new(Mutex::new(None));
        let exit2 = Arc::clone(&exit);
        let (pid_tx, pid_rx) = crossbeam_channel::bounded(1);
        // The waiter thread starts the process (its death signal is tied to the
        // spawning thread, which must live as long as the process) and reaps it.
        std::thread::Builder::new()
            .name("quadriga-process".into())
            .spawn(move || {
                let cfg = SpawnConfig {
                    memory_limit: None,
                    max_frame: wire::DEFAULT_MAX_FRAME,
                    program: None,
                };
                let worker = match spawn::spawn(&cfg) {
                    Ok(w) => w,
                    Err(err) => {
                        let _ = pid_tx.send(Err(err));
                        return;
                    }
                };
                let _ = pid_tx.send(Ok(worker.pid));
                let _ = completer.start();
                let outcome = converse(worker.sock, T::NAME, batch);
                if outcome.is_err() {
                    // It may wait for the rest of a frame: do not wait for it.
                    child::signal_group(worker.pid, Signal::Kill);
                }
                let status = child::reap(&worker.pidfd, true)
                    .ok()
                    .flatten()
                    .unwrap_or(Exit::status(None, None));
                child::signal_group(worker.pid, Signal::Kill);
                *exit2.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
                let result = match outcome {
                    Ok(Some(raw)) => super::decode(raw.as_deref().map_err(Some)),
                    Ok(None) => Err(TaskError::crashed(
                        worker.pid,
                        status.signal,
                        status.code,
                        "",
                    )),
                    Err(why) => Err(TaskError::crashed(
                        worker.pid,
                        status.signal,
                        status.code,
                        &why,
                    )),
                };
                completer.complete(result.map_err(|e| e.with_pid(worker.pid)));
            })
            .map_err(BuildError::Spawn)?;
        let pid = match pid_rx.recv() {
            Ok(Ok(pid)) => pid,
            Ok(Err(err)) => return Err(BuildError::Spawn(err)),
            Err(_) => {
                return Err(BuildError::Spawn(std::io::Error::other(
                    "the waiter thread died",
                )));
            }
        };
        Ok(ProcessHandle { handle, pid, exit })
    }
}

/// Runs the one job over the socket: `Ok(None)` if the process died first,
/// `Err` (why) if the job could not be sent to it: the caller kills it.
fn converse(
    sock: std::os::fd::OwnedFd,
    task: &str,
    input: Batch,
) -> Result<Option<Result<Vec<u8>, TaskError>>, String> {
    let mut sock = UnixStream::from(sock);
    if sock.set_nonblocking(false).is_err() {
        return Ok(None);
    }
    let mut out = wire::Outbox::default();
    let max = wire::DEFAULT_MAX_FRAME;
    let init = Down::Init {
        task: "".into(),
        input: Cow::Owned(Batch::default()),
    };
    if out.push(&init, max).is_err() {
        return Ok(None);
    }
    let job = Down::Run {
        job: 1,
        task: task.into(),
        input: Cow::Owned(input),
    };
    if let Err(err) = out.push(&job, max) {
        return Ok(Some(Err(TaskError::codec(format!(
            "could not send the input: {err}"
        )))));
    }
    if out.push(&Down::Exit, max).is_err() {
        return Ok(None);
    }
    // A blocking socket: this returns once everything is written, or on an
    // error, which leaves the rest whole for another try.
    let mut stall = wire::Stall::default();
    loop {
        let before = out.written();
        match out.flush(
            std::os::fd::AsFd::as_fd(&sock),
            rustix::net::SendFlags::empty(),
        ) {
            Ok(true) => break,
            Ok(false) => continue,
            Err(err) if wire::is_shortage(err) => {
                if out.written() > before {
                    stall.moved();
                }
                // The process waits for this very frame.
                std::thread::sleep(stall.refused(err, true, std::time::Instant::now())?);
            }
            Err(rustix::io::Errno::PIPE | rustix::io::Errno::CONNRESET) => return Ok(None),
            Err(err) => return Err(format!("could not write to it: {err}")),
        }
    }
    let mut dec = Decoder::new(max);
    let mut scratch = vec![0_u8; 1 << 16];
    loop {
        match dec.next::<Up>() {
            Ok(Some(Up::Done { outcomes, .. })) => return Ok(outcomes.into_items().next()),
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(_) => return Ok(None),
        }
        let n = sock.read(&mut scratch).unwrap_or(0);
        dec.feed(&scratch[..n]);
        if n == 0 {
            return Ok(None);
        }
    }
}

/// A task running in its own process: join it, wait with a time limit, kill
/// it, read its pid and, once it has ended, its exit status.
///
/// ```
/// use std::time::Duration;
/// use quadriga::Process;
///
/// #[quadriga::task]
/// fn forever() {
///     loop {
///         std::thread::sleep(Duration::from_secs(1));
///     }
/// }
///
/// let p = Process::spawn(forever, ())?;
/// assert!(!p.wait_timeout(Duration::from_millis(50)));
/// p.kill();
/// p.wait();
/// assert_eq!(p.signal(), Some(9));
/// assert!(p.join().unwrap_err().is_crashed());
/// # Ok::<(), quadriga::BuildError>(())
/// ```
pub struct ProcessHandle<T> {
    handle: TaskHandle<T>,
    pid: u32,
    exit: Arc<Mutex<Option<Exit>>>,
}

impl<T> ProcessHandle<T> {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the process to end and returns the task's output or error.
    pub fn join(self) -> Result<T, TaskError> {
        self.handle.join()
    }

    /// Waits for the process to end, keeping the result for [`join`](Self::join).
    pub fn wait(&self) {
        while !self.handle.wait_timeout(Duration::from_secs(3600)) {}
    }

    /// Waits at most `timeout`; returns whether the process has ended. Does not
    /// kill it.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.handle.wait_timeout(timeout)
    }

    /// Whether the process has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Kills the process and everything in its process group (SIGKILL). The
    /// task then ends as *crashed* by signal 9, unless it had already finished.
    pub fn kill(&self) {
        if !self.handle.is_finished() {
            child::signal_group(self.pid, Signal::Kill);
        }
    }

    /// The exit code, once the process has exited normally.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .and_then(|e| e.code)
    }

    /// The signal that ended the process, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.exit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .and_then(|e| e.signal)
    }

    /// The underlying task handle (a `Future`, usable with `wait` and
    /// `as_completed`).
    pub fn into_handle(self) -> TaskHandle<T> {
        self.handle
    }
}

impl<T> fmt::Debug for ProcessHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessHandle")
            .field("pid", &self.pid)
            .field("finished", &self.handle.is_finished())
            .finish_non_exhaustive()
    }
}
