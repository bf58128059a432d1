//! [`Boundary`]: the rule a [`Partitioner`](super::Partitioner) cuts files
//! by (a [`Terminator`] unless told otherwise).

use std::fmt;

use super::terminator::Terminator;

/// Where a record ends, as a [`Partitioner`](super::Partitioner) looks for
/// it when it cuts a file: a [`Terminator`] (the default), or a rule of the
/// caller's own, such as `quadriga run --pipepart`'s record end followed by
/// a record start, or a regular expression.
///
/// For a block whose nominal end is `o`, the partitioner reads the file from
/// `o - lookback()` on (never before the partition's start) and cuts at the
/// first boundary [`find`](Self::find) reports there (at the file's end if
/// there is none). A cut at the partition's very start is passed over, so no
/// partition is empty.
///
/// ```
/// use quadriga::data::Boundary;
///
/// /// Records that end with a line of `--`.
/// #[derive(Debug)]
/// struct Dashes;
///
/// impl Boundary for Dashes {
///     fn find(&self, window: &[u8]) -> Option<usize> {
///         memchr::memmem::find(window, b"\n--\n").map(|i| i + 4)
///     }
///     fn lookback(&self) -> u64 {
///         4
///     }
///     fn max_match(&self) -> Option<usize> {
///         Some(4)
///     }
/// }
///
/// assert_eq!(Dashes.find(b"a\nb\n--\nc"), Some(7));
/// ```
pub trait Boundary: fmt::Debug + Send + Sync {
    /// The first boundary in `window`: the position, in `0..=window.len()`,
    /// where a record ends, of the first match that begins at `window[0]` or
    /// later and lies whole in `window`; `None` when no match does.
    fn find(&self, window: &[u8]) -> Option<usize>;

    /// How many bytes before a block's nominal end the search begins
    /// [default: 0, so a match must begin at the nominal end or after it, as
    /// GNU parallel's `--pipepart` cuts]. A [`Terminator`] of `n` bytes says
    /// `n`: the cut is the end of the first terminator that *ends* at the
    /// nominal end or after it.
    fn lookback(&self) -> u64 {
        0
    }

    /// The longest match, if it is bounded [default: unbounded]. With a
    /// bound the file is read in windows of 64 KiB that overlap by one byte
    /// less than it; without one (a regular expression) the window grows
    /// from the same start until a match lies whole in it, so memory grows
    /// with the record.
    fn max_match(&self) -> Option<usize> {
        None
    }
}

impl Boundary for Terminator {
    fn find(&self, window: &[u8]) -> Option<usize> {
        Terminator::find(self, window).map(|i| i + self.as_bytes().len())
    }

    fn lookback(&self) -> u64 {
        self.as_bytes().len() as u64
    }

    fn max_match(&self) -> Option<usize> {
        Some(self.as_bytes().len())
    }
}
