//! The error of every IPC and cross-process synchronisation operation.

use std::fmt;

/// What kind of [`Error`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object was closed (a queue after `close`, a pipe whose peer is gone).
    Closed,
    /// There was no room, and the call was not allowed to wait (or waited in vain).
    Full,
    /// There was nothing to take, and the call was not allowed to wait.
    Empty,
    /// The call's time limit passed first.
    Timeout,
    /// An item is larger than the object's slot or message limit.
    TooLarge,
    /// An item could not be encoded or decoded.
    Codec,
    /// A barrier was broken (a party timed out or it was aborted).
    Broken,
    /// A bad argument: a capacity of zero, a size that does not fit, a shared
    /// object of another type or version.
    Invalid,
    /// The operating system refused (creating or mapping shared memory, a
    /// socket error); the detail says what.
    Os,
}

/// Why an IPC operation did not happen. Nothing was changed when it is
/// returned: an item that was not put is not in the queue, a lock that was not
/// taken is not held.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    detail: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    pub(crate) fn os(what: &str, err: std::io::Error) -> Self {
        Self::new(ErrorKind::Os, format!("{what}: {err}"))
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, detail)
    }

    pub(crate) fn codec(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Codec, detail)
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The object was closed.
    pub fn is_closed(&self) -> bool {
        self.kind == ErrorKind::Closed
    }

    /// The time limit passed.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// No room, and no waiting.
    pub fn is_full(&self) -> bool {
        self.kind == ErrorKind::Full
    }

    /// Nothing to take, and no waiting.
    pub fn is_empty(&self) -> bool {
        self.kind == ErrorKind::Empty
    }

    /// An item over the size limit.
    pub fn is_too_large(&self) -> bool {
        self.kind == ErrorKind::TooLarge
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipc::Error({:?}: {})", self.kind, self.detail)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for Error {}
