//! `--halt`: when to stop early, and the exit status that follows.
//!
//! `when,why=N` or `when,why=N%`: *when* is `now` (kill running jobs) or
//! `soon` (start no more, let running ones finish); *why* counts failed,
//! succeeded or done jobs; a percentage is of all jobs. The old forms `0`,
//! `1`, `2`, `-1`, `-2` and `N%` mean never, soon/now on one failure,
//! soon/now on one success, and soon on N% failures.

/// When to halt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// Kill running jobs and stop.
    Now,
    /// Start no new jobs; wait for running ones.
    Soon,
}

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    Fail,
    Success,
    Done,
}

/// How many.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Threshold {
    Count(u64),
    Percent(f64),
}

/// A `--halt` policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Halt {
    pub(crate) when: When,
    pub(crate) why: Why,
    pub(crate) threshold: Threshold,
}

/// Jobs so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) done: u64,
    pub(crate) failed: u64,
    pub(crate) succeeded: u64,
}

/// Parses `--halt`; `Ok(None)` is never.
pub(crate) fn parse(s: &str) -> Result<Option<Halt>, String> {
    let bad = || format!("bad --halt {s:?} (expected e.g. now,fail=1 or soon,fail=10%)");
    let legacy = |when, why| {
        Ok(Some(Halt {
            when,
            why,
            threshold: Threshold::Count(1),
        }))
    };
    match s {
        "never" | "0" => return Ok(None),
        "1" => return legacy(When::Soon, Why::Fail),
        "2" => return legacy(When::Now, Why::Fail),
        "-1" => return legacy(When::Soon, Why::Success),
        "-2" => return legacy(When::Now, Why::Success),
        _ => {}
    }
    if let Some(p) = s.strip_suffix('%')
        && !s.contains(',')
    {
        let pct: f64 = p.parse().map_err(|_| bad())?;
        return Ok(Some(Halt {
            when: When::Soon,
            why: Why::Fail,
            threshold: Threshold::Percent(pct),
        }));
    }
    let (when, rest) = s.split_once(',').ok_or_else(bad)?;
    let when = match when {
        "now" => When::Now,
        "soon" => When::Soon,
        _ => return Err(bad()),
    };
    let (why, n) = rest.split_once('=').ok_or_else(bad)?;
    let why = match why {
        "fail" => Why::Fail,
        "success" => Why::Success,
        "done" => Why::Done,
        _ => return Err(bad()),
    };
    let threshold = match n.strip_suffix('%') {
        Some(p) => {
            let pct: f64 = p.parse().map_err(|_| bad())?;
            if !(pct > 0.0 && pct <= 100.0) {
                return Err(bad());
            }
            Threshold::Percent(pct)
        }
        None => {
            let c: u64 = n.parse().map_err(|_| bad())?;
            if c == 0 {
                return Err(bad());
            }
            Threshold::Count(c)
        }
    };
    Ok(Some(Halt {
        when,
        why,
        threshold,
    }))
}

impl Halt {
    /// Whether the policy needs the total number of jobs.
    pub(crate) fn needs_total(&self) -> bool {
        matches!(self.threshold, Threshold::Percent(_))
    }

    /// Whether the condition is met.
    pub(crate) fn triggered(&self, c: Counts, total: Option<u64>) -> bool {
        let n = match self.why {
            Why::Fail => c.failed,
            Why::Success => c.succeeded,
            Why::Done => c.done,
        };
        match self.threshold {
            Threshold::Count(k) => n >= k,
            Threshold::Percent(p) => {
                let total = total.unwrap_or(c.done).max(1);
                n > 0 && n as f64 * 100.0 >= p * total as f64
            }
        }
    }
}

/// The exit status of a run: the number of failed jobs, capped at 101; with
/// `--halt` as GNU parallel: the failing job's own status for `fail=1`, the
/// percentage of failed jobs for `fail=N%`, 0 for `success`.
pub(crate) fn exit_status(
    halt: Option<&Halt>,
    halted: bool,
    c: Counts,
    total: Option<u64>,
    last_failure: Option<i32>,
) -> i32 {
    let count = c.failed.min(101) as i32;
    let Some(h) = halt else {
        return count;
    };
    match (h.why, h.threshold) {
        (Why::Fail, Threshold::Count(1)) if halted => last_failure.unwrap_or(count),
        (Why::Fail, Threshold::Percent(_)) => {
            let total = total.unwrap_or(c.done).max(1);
            (c.failed as f64 * 100.0 / total as f64).ceil() as i32
        }
        (Why::Success, _) if halted => 0,
        _ => count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(parse("never").unwrap(), None);
        assert_eq!(parse("0").unwrap(), None);
        let h = parse("now,fail=1").unwrap().unwrap();
        assert_eq!(
            (h.when, h.why, h.threshold),
            (When::Now, Why::Fail, Threshold::Count(1))
        );
        let h = parse("soon,success=30%").unwrap().unwrap();
        assert_eq!(h.threshold, Threshold::Percent(30.0));
        assert_eq!(h.why, Why::Success);
        assert_eq!(parse("2").unwrap().unwrap().when, When::Now);
        assert_eq!(parse("-1").unwrap().unwrap().why, Why::Success);
        assert_eq!(
            parse("20%").unwrap().unwrap().threshold,
            Threshold::Percent(20.0)
        );
        for bad in [
            "later,fail=1",
            "now",
            "now,fail=0",
            "now,oops=1",
            "now,fail=x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn triggers() {
        let h = parse("soon,fail=2").unwrap().unwrap();
        let c = Counts {
            done: 5,
            failed: 1,
            succeeded: 4,
        };
        assert!(!h.triggered(c, None));
        assert!(h.triggered(Counts { failed: 2, ..c }, None));
        let h = parse("now,done=50%").unwrap().unwrap();
        assert!(h.triggered(c, Some(10)));
        assert!(!h.triggered(Counts { done: 4, ..c }, Some(10)));
    }

    #[test]
    fn exit_statuses() {
        let c = Counts {
            done: 6,
            failed: 2,
            succeeded: 4,
        };
        assert_eq!(exit_status(None, false, c, None, Some(3)), 2);
        let big = Counts {
            done: 500,
            failed: 300,
            succeeded: 200,
        };
        assert_eq!(exit_status(None, false, big, None, None), 101);
        let h = parse("now,fail=1").unwrap().unwrap();
        assert_eq!(exit_status(Some(&h), true, c, None, Some(3)), 3);
        let h = parse("soon,fail=50%").unwrap().unwrap();
        assert_eq!(exit_status(Some(&h), false, c, Some(6), None), 34);
        let h = parse("now,success=1").unwrap().unwrap();
        assert_eq!(exit_status(Some(&h), true, c, None, None), 0);
    }
}
