//! The broker layer's error: what went wrong talking to Redis, said plainly,
//! and how it maps onto a task's [`TaskError`].

use std::fmt;

use crate::{TaskError, TaskErrorKind};

/// What kind of failure a broker call met.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No connection could be made (refused, no route, or no answer within the
    /// connect timeout), or the server is not serving yet (loading its data
    /// after a restart, failing over). Nothing was done: try again later.
    Unreachable,
    /// The server refused the credentials (wrong password or ACL user), or
    /// demanded some that were not given.
    Auth,
    /// The connection broke or timed out while a command was in flight: its
    /// outcome is unknown. Every broker write is safe to repeat.
    Connection,
    /// The server answered with an error, or with a reply of an unexpected shape.
    Protocol,
    /// An entry or a stored outcome could not be encoded or decoded.
    Codec,
    /// An input was larger than the broker accepts; it was refused before
    /// anything was sent.
    TooLarge,
    /// No task with this id was ever enqueued here, or its record expired.
    UnknownTask,
    /// The server does not persist writes (`appendonly no`) and the
    /// configuration requires it.
    NotDurable,
    /// The configuration is invalid (an empty queue name, zero shards, a bad URL).
    Config,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unreachable => "broker unreachable",
            Self::Auth => "broker refused the credentials",
            Self::Connection => "connection to the broker lost mid-call (outcome unknown)",
            Self::Protocol => "broker protocol error",
            Self::Codec => "broker entry codec error",
            Self::TooLarge => "too large for the broker",
            Self::UnknownTask => "unknown task id",
            Self::NotDurable => "broker is not durable",
            Self::Config => "invalid cluster configuration",
        })
    }
}

/// A broker call failed: a [kind](Self::kind) and a message that says what,
/// where and, when it helps, what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The detail, without the kind's prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The call may or may not have taken effect: repeat it (every broker
    /// write is safe to repeat) once the broker is reachable again.
    pub fn is_outcome_unknown(&self) -> bool {
        self.kind == ErrorKind::Connection
    }

    /// The task error a task ends with when the broker failed it in this way:
    /// [`Codec`](TaskErrorKind::Codec) for an input that could not travel,
    /// [`Lost`](TaskErrorKind::Lost) for everything else (the broker could not
    /// carry the task to a result).
    pub fn to_task_error(&self) -> TaskError {
        let kind = match self.kind {
            ErrorKind::Codec | ErrorKind::TooLarge => TaskErrorKind::Codec,
            _ => TaskErrorKind::Lost,
        };
        TaskError::new(kind, self.to_string())
    }

    /// Maps a client error: credentials, connection and timeouts apart from
    /// server answers. `sent` says whether a command may have reached the
    /// server (then a broken connection leaves its outcome unknown).
    pub(crate) fn from_redis(err: &redis::RedisError, sent: bool, what: &str) -> Self {
        let text = err.to_string();
        let code = err.code().unwrap_or("");
        let auth = err.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(code, "WRONGPASS" | "NOAUTH" | "NOPERM")
            || text.contains("WRONGPASS")
            || text.contains("NOAUTH");
        if auth {
            return Self::new(
                ErrorKind::Auth,
                format!("{what}: {text} (check the password or ACL user in the URL)"),
            );
        }
        // The server refused to run the command for now (replaying its
        // append-only file after a restart, failing over, a script running):
        // nothing was done, and asking again later is the cure.
        if matches!(
            code,
            "LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "BUSY"
        ) {
            return Self::new(
                ErrorKind::Unreachable,
                format!("{what}: the broker is not serving yet: {text}"),
            );
        }
        let broken = err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal();
        if broken && !sent {
            return Self::new(ErrorKind::Unreachable, format!("{what}: {text}"));
        }
        if broken {
            return Self::new(
                ErrorKind::Connection,
                format!("{what}: {text}; the call may or may not have taken effect"),
            );
        }
        Self::new(ErrorKind::Protocol, format!("{what}: {text}"))
    }

    pub(crate) fn protocol(what: &str, detail: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::Protocol,
            format!("{what}: unexpected reply: {detail}"),
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_onto_task_error_kinds() {
        let too_big = Error::new(ErrorKind::TooLarge, "input of 9 MiB");
        assert_eq!(too_big.to_task_error().kind(), TaskErrorKind::Codec);
        let gone = Error::new(ErrorKind::Unreachable, "127.0.0.1:1");
        assert_eq!(gone.to_task_error().kind(), TaskErrorKind::Lost);
        assert!(gone.to_task_error().message().contains("127.0.0.1:1"));
        assert!(Error::new(ErrorKind::Connection, "x").is_outcome_unknown());
        assert!(!gone.is_outcome_unknown());
    }

    #[test]
    fn a_server_still_loading_is_unreachable_for_now_not_a_protocol_error() {
        let reply = redis::parse_redis_value(b"-LOADING Redis is loading the dataset\r\n")
            .and_then(redis::Value::extract_error)
            .unwrap_err();
        let err = Error::from_redis(&reply, true, "enqueueing");
        assert_eq!(err.kind(), ErrorKind::Unreachable, "{err}");
        assert!(err.message().contains("not serving yet"), "{err}");
        let other = redis::parse_redis_value(b"-ERR unknown command\r\n")
            .and_then(redis::Value::extract_error)
            .unwrap_err();
        assert_eq!(
            Error::from_redis(&other, true, "x").kind(),
            ErrorKind::Protocol
        );
    }
}
