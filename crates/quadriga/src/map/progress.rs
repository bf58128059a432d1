//! [`Map::progress`](super::Map::progress): an `indicatif` bar on stderr, drawn
//! only when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A map's progress bar.
#[derive(Debug)]
pub(super) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for an input whose `size_hint` is `hint`: with a length and an
    /// ETA when the length is exact, a counter and a rate otherwise; hidden
    /// unless stderr is a terminal.
    pub(super) fn new(hint: (usize, Option<usize>)) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = match hint {
            (lo, Some(hi)) if lo == hi => ProgressBar::with_draw_target(Some(hi as u64), target)
                .with_style(
                    ProgressStyle::with_template(
                        "{bar:40} {human_pos}/{human_len} items  {per_sec}  ETA {eta}",
                    )
                    .expect("a valid template"),
                ),
            _ => ProgressBar::with_draw_target(None, target).with_style(
                ProgressStyle::with_template("{spinner} {human_pos} items  {per_sec}  {elapsed}")
                    .expect("a valid template"),
            ),
        };
        Self { bar }
    }

    /// `n` more items done.
    pub(super) fn advance(&self, n: usize) {
        self.bar.inc(n as u64);
    }

    /// The map has ended.
    pub(super) fn finish(&self) {
        self.bar.finish();
    }
}
