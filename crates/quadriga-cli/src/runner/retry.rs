//! What becomes of an attempt that ended: `--retries`, and the kills that
//! are not the job's fault.

use super::kill::KillReason;

/// The fate of an ended attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Killed for memory: back to the front of the queue, output discarded,
    /// not counted (it runs again when there is room).
    RunLater,
    /// Killed by a halt or a signal: its output is shown, but it is neither
    /// logged nor counted (so `--resume` runs it again).
    ShowOnly,
    /// Failed with attempts left: back to the front of the queue, output
    /// discarded.
    Retry,
    /// Done: logged, shown and counted.
    Final,
}

/// Decides an ended attempt's fate. `attempts`: `--retries` (0 = forever);
/// `made`: attempts before this one; `stopping`: halting or stopped, when a
/// failure is final.
pub(crate) fn disposition(
    kill: Option<KillReason>,
    failed: bool,
    stopping: bool,
    attempts: u32,
    made: u32,
) -> Disposition {
    match kill {
        Some(KillReason::Memory) => return Disposition::RunLater,
        Some(KillReason::Stop) => return Disposition::ShowOnly,
        Some(KillReason::Timeout) | None => {}
    }
    if failed && !stopping && (attempts == 0 || made + 1 < attempts) {
        return Disposition::Retry;
    }
    Disposition::Final
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_retry_until_the_attempts_are_used() {
        // --retries 3: attempts 0 and 1 retry, the third is final.
        assert_eq!(disposition(None, true, false, 3, 0), Disposition::Retry);
        assert_eq!(disposition(None, true, false, 3, 1), Disposition::Retry);
        assert_eq!(disposition(None, true, false, 3, 2), Disposition::Final);
        // --retries 1 (the default): never.
        assert_eq!(disposition(None, true, false, 1, 0), Disposition::Final);
        // 0: for ever.
        assert_eq!(disposition(None, true, false, 0, 1000), Disposition::Retry);
        // Successes are final, and so is anything while stopping.
        assert_eq!(disposition(None, false, false, 3, 0), Disposition::Final);
        assert_eq!(disposition(None, true, true, 3, 0), Disposition::Final);
        // A timeout is a failure like any other.
        let t = Some(KillReason::Timeout);
        assert_eq!(disposition(t, true, false, 2, 0), Disposition::Retry);
    }

    #[test]
    fn kills_that_are_not_the_jobs_fault() {
        let m = Some(KillReason::Memory);
        let s = Some(KillReason::Stop);
        assert_eq!(disposition(m, true, false, 1, 0), Disposition::RunLater);
        assert_eq!(disposition(m, true, true, 1, 5), Disposition::RunLater);
        assert_eq!(disposition(s, true, false, 3, 0), Disposition::ShowOnly);
    }
}
