//! Stopping a worker as a value: alive, asked to stop (SIGTERM sent, SIGKILL
//! due after the grace period), or killed (SIGKILL sent). The core keeps one
//! per worker and turns each step into a [`Sig`] action; the shell sends it to
//! the worker's process group.

use std::time::{Duration, Instant};

/// A signal for a worker's whole process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sig {
    /// Asked to stop: the grace period runs.
    Term,
    /// Killed outright.
    Kill,
}

/// Where a worker stands on the way from alive to killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Kill {
    /// Not being stopped by us.
    #[default]
    Alive,
    /// Sent SIGTERM; SIGKILL goes at `at` if it is still alive.
    Term { at: Instant },
    /// Sent SIGKILL, on purpose (timeout, cancel, protocol error).
    Killed,
}

impl Kill {
    /// Not being stopped by us.
    pub(super) fn is_alive(self) -> bool {
        self == Self::Alive
    }

    /// Starts the escalation: SIGTERM now, SIGKILL after `grace`.
    pub(super) fn term(&mut self, now: Instant, grace: Duration) -> Sig {
        *self = Self::Term { at: now + grace };
        Sig::Term
    }

    /// SIGKILL now.
    pub(super) fn kill(&mut self) -> Sig {
        *self = Self::Killed;
        Sig::Kill
    }

    /// When SIGKILL is due, while the grace period runs.
    pub(super) fn deadline(self) -> Option<Instant> {
        match self {
            Self::Term { at } => Some(at),
            Self::Alive | Self::Killed => None,
        }
    }

    /// At `now`: SIGKILL if the grace period is over (and it is then killed).
    pub(super) fn escalate(&mut self, now: Instant) -> Option<Sig> {
        match *self {
            Self::Term { at } if now >= at => Some(self.kill()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn term_then_kill_after_grace() {
        let t0 = Instant::now();
        let grace = Duration::from_millis(500);
        let mut k = Kill::default();
        assert!(k.is_alive());
        assert_eq!(k.escalate(t0), None);
        assert_eq!(k.term(t0, grace), Sig::Term);
        assert!(!k.is_alive());
        assert_eq!(k.deadline(), Some(t0 + grace));
        assert_eq!(k.escalate(t0 + grace / 2), None);
        assert_eq!(k.escalate(t0 + grace), Some(Sig::Kill));
        assert_eq!(k, Kill::Killed);
        assert_eq!(k.deadline(), None);
        assert_eq!(k.escalate(t0 + grace * 10), None, "SIGKILL goes once");
    }
}
