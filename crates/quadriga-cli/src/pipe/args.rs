//! The stream options, flattened into `quadriga run`'s.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use clap::Args;

use super::chunker::{Cut, Header};
use super::records::Splitter;
use super::{Delivery, PartBlock, PipeSpec};
use crate::input::parse_delimiter;

/// GNU parallel's default block: 1 MiB.
const DEFAULT_BLOCK: u64 = 1 << 20;
/// GNU parallel's default for `--pipepart` (20221122 does so): ten ranges
/// per job slot, whatever the file's size.
const DEFAULT_PART_BLOCKS_PER_SLOT: u64 = 10;

/// `--pipe`, `--pipepart` and their options.
#[derive(Debug, Args)]
pub(crate) struct PipeArgs {
    /// Split stdin into blocks of whole records, one block on each job's stdin.
    #[arg(long, visible_alias = "spreadstdin")]
    pub(crate) pipe: bool,

    /// Split the file of -a FILE in place into ranges of whole records, one
    /// range on each job's stdin (the data never passes through quadriga).
    #[arg(long, visible_alias = "pipe-part")]
    pub(crate) pipepart: bool,

    /// Bytes per block (K M G T: ×1024; default 1M); with --pipepart, -N
    /// means N blocks per job slot, and the default is -10 (as GNU).
    #[arg(
        long,
        visible_alias = "block-size",
        value_name = "SIZE",
        allow_hyphen_values = true
    )]
    pub(crate) block: Option<String>,

    /// Records end with STR (escapes such as \n; default \n).
    #[arg(long, value_name = "STR", allow_hyphen_values = true)]
    pub(crate) recend: Option<String>,

    /// Records start with STR (default: anything).
    #[arg(long, value_name = "STR", allow_hyphen_values = true)]
    pub(crate) recstart: Option<String>,

    /// --recend and --recstart are regular expressions.
    #[arg(long)]
    pub(crate) regexp: bool,

    /// Keep a header before every block: N records, : for one, or a regular
    /// expression matched at the start.
    #[arg(long, value_name = "N|REGEX", allow_hyphen_values = true)]
    pub(crate) header: Option<String>,

    /// With --pipe: start only the job slots' worth of jobs and give each
    /// block to whichever job is ready for it.
    #[arg(long, visible_alias = "round")]
    pub(crate) round_robin: bool,

    /// Give each job its block as a temporary file, named by {}.
    #[arg(long)]
    pub(crate) cat: bool,

    /// Give each job its block through a named pipe, named by {}.
    #[arg(long, conflicts_with = "cat")]
    pub(crate) fifo: bool,
}

/// Parses `--block`: a size with K M G T P (GNU: ×1024 in either case), or
/// a negative count of blocks per job slot.
fn parse_block(s: &str) -> Result<i64, String> {
    let bad = || format!("bad --block {s:?} (expected e.g. 1M, 500k or -2)");
    let t = s.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let v = crate::args::scaled(t, true).ok_or_else(bad)?;
    if !v.is_finite() || v < 1.0 || v > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(if neg { -(v as i64) } else { v as i64 })
}

impl PipeArgs {
    /// The stream plan, if streaming: `-N` (`records`) counts records per
    /// block; `arg_files` are the `-a` files (`--pipepart` splits the one).
    pub(crate) fn spec(
        &self,
        records: Option<usize>,
        arg_files: &[OsString],
    ) -> Result<Option<PipeSpec>, String> {
        let pipe = self.pipe || (self.round_robin && !self.pipepart);
        if !pipe && !self.pipepart {
            for (set, name) in [
                (self.block.is_some(), "--block"),
                (self.recend.is_some(), "--recend"),
                (self.recstart.is_some(), "--recstart"),
                (self.regexp, "--regexp"),
                (self.cat, "--cat"),
                (self.fifo, "--fifo"),
            ] {
                if set {
                    return Err(format!("{name} needs --pipe or --pipepart"));
                }
            }
            if self.header.is_some() {
                return Err("--header is supported only with --pipe or --pipepart".into());
            }
            return Ok(None);
        }
        if pipe && self.pipepart {
            return Err("use --pipe or --pipepart, not both".into());
        }
        if self.round_robin && self.pipepart {
            return Err("--round-robin with --pipepart is not supported: use --block -N".into());
        }
        let unescape = |s: &str| {
            if self.regexp {
                Ok(s.as_bytes().to_vec())
            } else {
                parse_delimiter(s)
            }
        };
        let recend = match &self.recend {
            Some(s) => unescape(s)?,
            None if self.regexp => b"\\n".to_vec(),
            None => b"\n".to_vec(),
        };
        let recstart = match &self.recstart {
            Some(s) => unescape(s)?,
            None => Vec::new(),
        };
        let splitter = Splitter::new(&recend, &recstart, self.regexp)?;
        let block = match &self.block {
            Some(b) => parse_block(b)?,
            None => DEFAULT_BLOCK as i64,
        };
        if block < 0 && !self.pipepart {
            return Err("a negative --block needs --pipepart".into());
        }
        let header = self.header.as_deref().map(Header::parse).transpose()?;
        let one_file = match arg_files {
            [one] if one.as_bytes() != b"-" => Some(PathBuf::from(one)),
            [] | [_] => None,
            _ => return Err("--pipe and --pipepart read one -a FILE at most".into()),
        };
        let (part, file) = if self.pipepart {
            match one_file {
                Some(f) => (Some(f), None),
                None => return Err("--pipepart needs one file, given with -a FILE".into()),
            }
        } else {
            // --pipe -a FILE: the file instead of stdin, as GNU.
            (None, one_file)
        };
        if self.pipepart && records.is_some() {
            return Err("-N with --pipepart is not supported: use --block".into());
        }
        let delivery = if self.cat {
            Delivery::Cat
        } else if self.fifo {
            Delivery::Fifo
        } else {
            Delivery::Stdin
        };
        if self.round_robin && delivery != Delivery::Stdin {
            return Err("--round-robin with --cat or --fifo is not supported".into());
        }
        Ok(Some(PipeSpec {
            cut: Cut {
                splitter,
                block: block.unsigned_abs().max(1) as usize,
                records,
                header,
            },
            part,
            file,
            part_block: match self.block {
                None => PartBlock::PerSlot(DEFAULT_PART_BLOCKS_PER_SLOT),
                Some(_) if block < 0 => PartBlock::PerSlot(block.unsigned_abs()),
                Some(_) => PartBlock::Bytes(block.unsigned_abs()),
            },
            delivery,
            round_robin: self.round_robin,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_as_gnu() {
        assert_eq!(parse_block("1M"), Ok(1 << 20));
        assert_eq!(parse_block("1m"), Ok(1 << 20));
        assert_eq!(parse_block("10k"), Ok(10240));
        assert_eq!(parse_block("1.5K"), Ok(1536));
        assert_eq!(parse_block("300"), Ok(300));
        assert_eq!(parse_block("-2"), Ok(-2));
        assert!(parse_block("0").is_err());
        assert!(parse_block("x").is_err());
        assert!(parse_block("1Q").is_err());
    }
}
