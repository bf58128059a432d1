//! SIGTERM, a grace period, SIGKILL: as a value told the time.

use std::time::{Duration, Instant};

use super::Signal;

/// The kill escalation of one child: SIGTERM now, SIGKILL once the grace
/// period is over, unless hurried (or SIGKILL at once, with no grace at all:
/// [`without_grace`](Self::without_grace)).
///
/// It does no I/O and reads no clock: the caller sends the signals it
/// returns, and passes the time in. So every event loop shares these rules,
/// and tests drive them with a synthetic clock.
///
/// ```
/// use std::time::{Duration, Instant};
/// use quadriga::child::{Escalation, Signal};
///
/// let t0 = Instant::now();
/// let (mut kill, first) = Escalation::begin(t0, Duration::from_millis(300));
/// assert_eq!(first, Signal::Term); // send it now
/// assert_eq!(kill.deadline(), Some(t0 + Duration::from_millis(300)));
/// assert_eq!(kill.poll(t0 + Duration::from_millis(299)), None);
/// assert_eq!(kill.poll(t0 + Duration::from_millis(300)), Some(Signal::Kill));
/// assert_eq!(kill.poll(t0 + Duration::from_secs(9)), None); // once only
/// assert_eq!(kill.deadline(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalation {
    /// When SIGKILL is due; `None` once it has been sent.
    kill_at: Option<Instant>,
}

impl Escalation {
    /// Starts one at `now`: the caller sends the returned signal (SIGTERM)
    /// to the group now.
    pub fn begin(now: Instant, grace: Duration) -> (Self, Signal) {
        let e = Escalation {
            kill_at: Some(now + grace),
        };
        (e, Signal::Term)
    }

    /// Starts one that skips the grace period (a child killed outright: a
    /// cancelled task, a broken protocol): the caller sends the returned
    /// signal (SIGKILL) to the group now, and nothing is left to send.
    ///
    /// ```
    /// use std::time::Instant;
    /// use quadriga::child::{Escalation, Signal};
    ///
    /// let (mut kill, first) = Escalation::without_grace();
    /// assert_eq!(first, Signal::Kill);
    /// assert!(kill.is_escalated());
    /// assert_eq!(kill.deadline(), None);
    /// assert_eq!(kill.hurry(), None);
    /// assert_eq!(kill.poll(Instant::now()), None);
    /// ```
    pub fn without_grace() -> (Self, Signal) {
        (Escalation { kill_at: None }, Signal::Kill)
    }

    /// When [`poll`](Self::poll) will next return a signal; `None` once
    /// SIGKILL has been sent.
    pub fn deadline(&self) -> Option<Instant> {
        self.kill_at
    }

    /// At `now`: SIGKILL to send, the first time the grace period is seen to
    /// be over.
    pub fn poll(&mut self, now: Instant) -> Option<Signal> {
        if self.kill_at.is_some_and(|at| now >= at) {
            self.kill_at = None;
            return Some(Signal::Kill);
        }
        None
    }

    /// No more grace (a second interrupt, or the child exited while its
    /// group may live on): SIGKILL to send now, unless it was sent already.
    pub fn hurry(&mut self) -> Option<Signal> {
        self.kill_at.take().map(|_| Signal::Kill)
    }

    /// Whether SIGKILL has been sent.
    pub fn is_escalated(&self) -> bool {
        self.kill_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_millis(300);

    #[test]
    fn term_then_kill_at_the_deadline_once() {
        let t0 = Instant::now();
        let (mut e, first) = Escalation::begin(t0, GRACE);
        assert_eq!(first, Signal::Term);
        assert!(!e.is_escalated());
        assert_eq!(e.poll(t0), None);
        assert_eq!(e.poll(t0 + GRACE - Duration::from_nanos(1)), None);
        assert_eq!(e.poll(t0 + GRACE * 2), Some(Signal::Kill));
        assert!(e.is_escalated());
        assert_eq!(e.poll(t0 + GRACE * 3), None);
        assert_eq!(e.hurry(), None);
    }

    #[test]
    fn hurried_kills_at_once_and_only_once() {
        let t0 = Instant::now();
        let (mut e, _) = Escalation::begin(t0, GRACE);
        assert_eq!(e.hurry(), Some(Signal::Kill));
        assert_eq!(e.deadline(), None);
        assert_eq!(e.hurry(), None);
        assert_eq!(e.poll(t0 + GRACE), None);
    }

    #[test]
    fn without_grace_kills_at_once_and_has_nothing_left() {
        let t0 = Instant::now();
        let (mut e, first) = Escalation::without_grace();
        assert_eq!(first, Signal::Kill);
        assert!(e.is_escalated());
        assert_eq!(e.deadline(), None);
        assert_eq!(e.poll(t0), None);
        assert_eq!(e.poll(t0 + GRACE * 10), None);
        assert_eq!(e.hurry(), None, "SIGKILL goes once");
        // Hurrying a graceful one ends in the same state.
        let (mut graceful, _) = Escalation::begin(t0, GRACE);
        graceful.hurry();
        assert_eq!(graceful, e);
    }
}
