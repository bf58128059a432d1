//! [`TaskError`]: the one error type every backend reports a task's failure with.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a task did not produce its output.
///
/// Every submitted task ends in exactly one output or one [`TaskError`]; its kind
/// says which of these happened.
///
/// ```
/// use quadriga::{TaskErrorKind, ThreadPool};
///
/// let pool = ThreadPool::new(1)?;
/// let err = pool.spawn(|| -> u32 { panic!("boom") }).join().unwrap_err();
/// assert_eq!(err.kind(), TaskErrorKind::Panicked);
/// # Ok::<(), quadriga::BuildError>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskErrorKind {
    /// The task panicked; the panic message, location and (when captured)
    /// backtrace are kept.
    Panicked,
    /// The task returned its own error (`Err(e)` from a task returning `Result`).
    Failed,
    /// The process running the task died: killed by a signal or exited.
    Crashed,
    /// The task ran past its time limit and was stopped.
    TimedOut,
    /// The task was cancelled before it produced an output.
    Cancelled,
    /// The task was lost: retries were exhausted without any result (cluster).
    Lost,
    /// The task's input or output could not be encoded or decoded.
    Codec,
}

impl fmt::Display for TaskErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Panicked => "panicked",
            Self::Failed => "failed",
            Self::Crashed => "crashed",
            Self::TimedOut => "timed out",
            Self::Cancelled => "cancelled",
            Self::Lost => "lost",
            Self::Codec => "codec error",
        })
    }
}

/// Where a panic happened: file, line and column.
///
/// ```
/// use quadriga::ThreadPool;
///
/// let pool = ThreadPool::new(1)?;
/// let err = pool.spawn(|| -> () { panic!("here") }).join().unwrap_err();
/// let at = err.location().expect("the panic hook records locations");
/// assert!(at.file().ends_with(".rs"));
/// # Ok::<(), quadriga::BuildError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanicLocation {
    file: String,
    line: u32,
    column: u32,
}

impl PanicLocation {
    pub(crate) fn new(file: &str, line: u32, column: u32) -> Self {
        Self {
            file: file.to_owned(),
            line,
            column,
        }
    }

    /// The source file.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line, starting at 1.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The column, starting at 1.
    pub fn column(&self) -> u32 {
        self.column
    }
}

impl fmt::Display for PanicLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The error a task ends with when it produces no output: a panic, its own
/// error, a crash, a timeout, a cancellation, a loss, or a codec failure.
///
/// Opaque on purpose (like tokio's `JoinError`): ask [`kind`](Self::kind) and the
/// accessors. It is `Serialize`/`Deserialize`, so it crosses process boundaries
/// unchanged, and its `Display` reads like a remote traceback:
///
/// ```text
/// task `squares::square` (#7) panicked at src/main.rs:4:5:
/// attempt to multiply with overflow
/// ```
///
/// ```
/// use quadriga::{ThreadPool, TaskErrorKind};
///
/// #[quadriga::task]
/// fn parse(s: String) -> Result<u32, std::num::ParseIntError> {
///     s.parse()
/// }
///
/// let pool = ThreadPool::new(2)?;
/// let err = pool.submit(parse, "x1".to_string()).join().unwrap_err();
/// assert!(err.is_failed());
/// assert_eq!(err.message(), "invalid digit found in string");
/// assert!(err.to_string().contains("failed: invalid digit"));
/// # Ok::<(), quadriga::BuildError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    repr: Box<Repr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Repr {
    kind: TaskErrorKind,
    message: String,
    task: Option<String>,
    id: Option<u64>,
    item: Option<u64>,
    location: Option<PanicLocation>,
    backtrace: Option<String>,
    pid: Option<u32>,
    signal: Option<i32>,
    exit_code: Option<i32>,
    timeout: Option<Duration>,
}

impl TaskError {
    pub(crate) fn new(kind: TaskErrorKind, message: impl Into<String>) -> Self {
        Self {
            repr: Box::new(Repr {
                kind,
                message: message.into(),
                task: None,
                id: None,
                item: None,
                location: None,
                backtrace: None,
                pid: None,
                signal: None,
                exit_code: None,
                timeout: None,
            }),
        }
    }

    /// A task's own error, with `error`'s message. Used by `#[task]` functions
    /// that return `Err`.
    pub fn failed(error: impl fmt::Display) -> Self {
        Self::new(TaskErrorKind::Failed, error.to_string())
    }

    pub(crate) fn cancelled(why: &str) -> Self {
        Self::new(TaskErrorKind::Cancelled, why)
    }

    pub(crate) fn codec(why: impl Into<String>) -> Self {
        Self::new(TaskErrorKind::Codec, why)
    }

    /// A worker process died: by `signal`, or exiting with `exit_code`.
    pub(crate) fn crashed(
        pid: u32,
        signal: Option<i32>,
        exit_code: Option<i32>,
        detail: &str,
    ) -> Self {
        let how = match (signal, exit_code) {
            (Some(sig), _) => format!(
                "worker {pid} was killed by signal {sig} ({})",
                signal_name(sig)
            ),
            (None, Some(code)) => format!("worker {pid} exited with code {code}"),
            (None, None) => format!("worker {pid} died"),
        };
        let message = if detail.is_empty() {
            how
        } else {
            format!("{how}; {detail}")
        };
        let mut err = Self::new(TaskErrorKind::Crashed, message);
        err.repr.pid = Some(pid);
        err.repr.signal = signal;
        err.repr.exit_code = exit_code;
        err
    }

    /// A task ran past `limit` and its worker was stopped.
    pub(crate) fn timed_out(pid: Option<u32>, limit: std::time::Duration) -> Self {
        let mut err = Self::new(
            TaskErrorKind::TimedOut,
            format!("ran past its time limit of {limit:?}; its worker's process group was killed"),
        );
        err.repr.pid = pid;
        err.repr.timeout = Some(limit);
        err
    }

    /// A future did not finish within `limit` and was dropped
    /// ([`aio::timeout`](crate::aio::timeout)).
    #[cfg(feature = "async")]
    pub(crate) fn deadline_passed(limit: Duration) -> Self {
        let mut err = Self::new(
            TaskErrorKind::TimedOut,
            format!("did not finish within {limit:?}; it was cancelled (dropped)"),
        );
        err.repr.timeout = Some(limit);
        err
    }

    /// Records the worker process that ran the task.
    pub(crate) fn with_pid(mut self, pid: u32) -> Self {
        if self.repr.pid.is_none() {
            self.repr.pid = Some(pid);
        }
        self
    }

    pub(crate) fn panicked(
        message: String,
        location: Option<PanicLocation>,
        backtrace: Option<String>,
    ) -> Self {
        let mut err = Self::new(TaskErrorKind::Panicked, message);
        err.repr.location = location;
        err.repr.backtrace = backtrace;
        err
    }

    /// Names the task this error belongs to, unless it is named already.
    pub(crate) fn with_task(mut self, name: &str, id: Option<u64>) -> Self {
        if self.repr.task.is_none() {
            self.repr.task = Some(name.to_owned());
        }
        if self.repr.id.is_none() {
            self.repr.id = id;
        }
        self
    }

    /// Records which item of a `map` this error belongs to.
    pub(crate) fn with_item(mut self, index: u64) -> Self {
        self.repr.item = Some(index);
        self
    }

    /// What happened.
    pub fn kind(&self) -> TaskErrorKind {
        self.repr.kind
    }

    /// The message: the panic message, the task's own error message, or a
    /// description of the crash, timeout or cancellation.
    pub fn message(&self) -> &str {
        &self.repr.message
    }

    /// The task's stable name, when known.
    pub fn task_name(&self) -> Option<&str> {
        self.repr.task.as_deref()
    }

    /// The id of the task (see [`TaskHandle::id`](crate::TaskHandle::id)), when
    /// the error came from a submitted task.
    pub fn task_id(&self) -> Option<u64> {
        self.repr.id
    }

    /// The index of the input, when the error came from an item of a `map`.
    pub fn item(&self) -> Option<u64> {
        self.repr.item
    }

    /// Where the task panicked, when it panicked and the location was captured.
    pub fn location(&self) -> Option<&PanicLocation> {
        self.repr.location.as_ref()
    }

    /// The backtrace of a panic, when one was captured (set `RUST_BACKTRACE=1`,
    /// or `RUST_LIB_BACKTRACE=1` for task panics only). Resolving symbols is not
    /// free: the first panic in a process spends about 150 ms loading them (a
    /// worker process pays it once), later ones about a millisecond.
    pub fn backtrace(&self) -> Option<&str> {
        self.repr.backtrace.as_deref()
    }

    /// The process id of the worker that ran the task, when it ran in a worker
    /// process.
    pub fn pid(&self) -> Option<u32> {
        self.repr.pid
    }

    /// The signal that killed the worker, for a crash by signal.
    pub fn signal(&self) -> Option<i32> {
        self.repr.signal
    }

    /// The exit code of the worker, for a crash by exit.
    pub fn exit_code(&self) -> Option<i32> {
        self.repr.exit_code
    }

    /// The limit that was exceeded, for a timeout.
    pub fn timeout(&self) -> Option<Duration> {
        self.repr.timeout
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        self.kind() == TaskErrorKind::Panicked
    }

    /// The task returned its own error.
    pub fn is_failed(&self) -> bool {
        self.kind() == TaskErrorKind::Failed
    }

    /// The process running the task died.
    pub fn is_crashed(&self) -> bool {
        self.kind() == TaskErrorKind::Crashed
    }

    /// The task ran past its time limit.
    pub fn is_timed_out(&self) -> bool {
        self.kind() == TaskErrorKind::TimedOut
    }

    /// The task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.kind() == TaskErrorKind::Cancelled
    }
}

/// The conventional name of a signal, for messages.
fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => "signal",
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &*self.repr;
        match &r.task {
            Some(name) => write!(f, "task `{name}`")?,
            None => f.write_str("task")?,
        }
        if let Some(id) = r.id {
            write!(f, " (#{id})")?;
        }
        if let Some(item) = r.item {
            write!(f, " on item {item}")?;
        }
        if let Some(pid) = r.pid {
            write!(f, " in worker {pid}")?;
        }
        match r.kind {
            TaskErrorKind::Panicked => {
                f.write_str(" panicked")?;
                if let Some(at) = &r.location {
                    write!(f, " at {at}")?;
                }
                write!(f, ":\n{}", r.message)?;
                if let Some(bt) = &r.backtrace {
                    write!(f, "\nstack backtrace:\n{bt}")?;
                }
                Ok(())
            }
            kind => write!(f, " {kind}: {}", r.message),
        }
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The Display form is what a reader wants when `unwrap` fails.
        write!(f, "TaskError({:?}) ", self.repr.kind)?;
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for TaskError {}

/// A pool could not be built.
///
/// ```
/// use quadriga::{BuildError, ThreadPool};
///
/// let err = ThreadPool::new(0).unwrap_err();
/// assert!(matches!(err, BuildError::ZeroThreads));
/// assert_eq!(err.to_string(), "a pool needs at least one thread (got 0)");
/// ```
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Zero threads (or workers) were asked for.
    #[error("a pool needs at least one thread (got 0)")]
    ZeroThreads,
    /// The operating system refused to start a thread.
    #[error("could not start the pool's threads: {0}")]
    Spawn(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_like_a_traceback() {
        let err = TaskError::panicked(
            "boom".into(),
            Some(PanicLocation::new("src/a.rs", 3, 9)),
            None,
        )
        .with_task("demo::square", Some(7));
        assert_eq!(
            err.to_string(),
            "task `demo::square` (#7) panicked at src/a.rs:3:9:\nboom"
        );
        let err = TaskError::cancelled("cancelled before it ran").with_task("t", None);
        assert_eq!(
            err.to_string(),
            "task `t` cancelled: cancelled before it ran"
        );
    }

    #[test]
    fn with_task_keeps_the_first_name() {
        let err = TaskError::failed("x")
            .with_task("a", Some(1))
            .with_task("b", Some(2));
        assert_eq!(err.task_name(), Some("a"));
        assert_eq!(err.task_id(), Some(1));
    }

    #[test]
    fn survives_a_serde_round_trip() {
        let err = TaskError::panicked(
            "p".into(),
            Some(PanicLocation::new("f.rs", 1, 2)),
            Some("bt".into()),
        )
        .with_task("t", Some(3))
        .with_item(4);
        let json = serde_json::to_string(&err).unwrap();
        let back: TaskError = serde_json::from_str(&json).unwrap();
        assert_eq!(back, err);
        assert_eq!(back.item(), Some(4));
        assert_eq!(back.backtrace(), Some("bt"));
    }
}
