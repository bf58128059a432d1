//! `--bar`, `--eta`, `--progress`: an indicatif bar on stderr.
//!
//! Drawn only when stderr is a terminal (indicatif hides it otherwise), at
//! most 10 times a second; job output is written around it.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Which display was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--bar`: percentage and bar.
    Bar,
    /// `--eta`: with the estimated time left.
    Eta,
    /// `--progress`: counts.
    Progress,
}

/// A progress display for `total` jobs (if known).
pub(crate) fn new(kind: Kind, total: Option<u64>) -> ProgressBar {
    let target = ProgressDrawTarget::stderr_with_hz(10);
    let bar = ProgressBar::with_draw_target(total, target);
    let template = match (kind, total.is_some()) {
        (Kind::Bar, true) => "{percent:>3}% {wide_bar} {pos}/{len} {msg}",
        (Kind::Eta, true) => "ETA {eta} {wide_bar} {pos}/{len} {msg}",
        (Kind::Progress, true) => "{elapsed} {pos}/{len} done, {msg}",
        (_, false) => "{spinner} {elapsed} {pos} done, {msg}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    if total.is_none() {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    bar
}

/// The message: running jobs and the current limit.
pub(crate) fn message(running: usize, limit: usize) -> String {
    format!("{running} running (-j {limit})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_every_kind() {
        for kind in [Kind::Bar, Kind::Eta, Kind::Progress] {
            for total in [Some(10), None] {
                let bar = new(kind, total);
                bar.inc(1);
                bar.set_message(message(1, 2));
                bar.finish_and_clear();
            }
        }
    }
}
