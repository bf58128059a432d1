//! `--pipepart`: a file cut in place into byte ranges that end at record
//! boundaries, by `quadriga::data::Partitioner` (the one range finder of the
//! project) with this crate's record rule ([`Splitter`]) as its
//! [`Boundary`].
//!
//! Only the bytes near each cut are read, so a file of any size is split in
//! a few reads per range. The jobs get their ranges from the file itself
//! (`splice`), not through a buffer of ours.

use std::io;
use std::ops::Range;
use std::path::Path;

use quadriga::data::{Boundary, Partitioner};

use super::PartBlock;
use super::records::Splitter;

/// As GNU parallel cuts: at the first record separator (end, then start)
/// that begins at or after each target.
impl Boundary for Splitter {
    fn find(&self, window: &[u8]) -> Option<usize> {
        self.first_match_from(window, 0)
    }

    fn max_match(&self) -> Option<usize> {
        match self {
            Splitter::Literal { pattern_len, .. } => Some(*pattern_len),
            Splitter::Regex(_) => None,
        }
    }
}

/// Cuts the file at `path` after its first `start` bytes (the header) into
/// ranges of `block`, each ending at a record boundary (or the end): as GNU
/// parallel cuts, at the first record separator that begins at or after each
/// target, so a range is never empty and may be longer than its block by up
/// to one record. `slots` (the job slots) size the blocks of
/// [`PartBlock::PerSlot`]. The ranges cover
/// `start..` exactly once, in order.
pub(crate) fn ranges(
    path: &Path,
    start: u64,
    block: PartBlock,
    slots: usize,
    splitter: &Splitter,
) -> io::Result<Vec<Range<u64>>> {
    let slots = slots.max(1);
    let len = std::fs::metadata(path)?.len();
    let partitioner = Partitioner::file(path)
        .skip(start)
        .boundary(splitter.clone());
    let partitioner = match block {
        PartBlock::Bytes(bytes) => partitioner.block_size(bytes),
        PartBlock::PerSlot(n) => {
            partitioner.block_size(len.saturating_sub(start).div_ceil(slots as u64 * n.max(1)))
        }
    };
    let parts = partitioner.partitions().map_err(io::Error::other)?;
    Ok(parts.into_iter().map(|p| p.start..p.end).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut_at(data: &[u8], start: u64, block: PartBlock, s: &Splitter) -> Vec<Vec<u8>> {
        let path = std::env::temp_dir().join(format!(
            "quadriga-part-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, data).unwrap();
        let got = ranges(&path, start, block, 2, s);
        std::fs::remove_file(&path).unwrap();
        got.unwrap()
            .into_iter()
            .map(|r| data[r.start as usize..r.end as usize].to_vec())
            .collect()
    }

    fn cut(data: &[u8], block: u64, s: &Splitter) -> Vec<Vec<u8>> {
        cut_at(data, 0, PartBlock::Bytes(block), s)
    }

    #[test]
    fn ranges_end_at_newlines() {
        let nl = Splitter::new(b"\n", b"", false).unwrap();
        let got = cut(b"aa\nbb\ncc\ndd\n", 4, &nl);
        assert_eq!(got, [b"aa\nbb\n".to_vec(), b"cc\ndd\n".to_vec()]);
        // As GNU: the separator is looked for from the target on, so a
        // target just past a newline runs to the next one.
        let got = cut(b"1\n2\n3\n4\n5\n6\n", 4, &nl);
        assert_eq!(got, [b"1\n2\n3\n".to_vec(), b"4\n5\n6\n".to_vec()]);
        assert_eq!(cut(b"abc", 1, &nl), [b"abc".to_vec()]);
        assert!(cut(b"", 1, &nl).is_empty());
    }

    #[test]
    fn random_files_are_covered_exactly_once_at_boundaries() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut rnd = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let splitters = [
            Splitter::new(b"\n", b"", false).unwrap(),
            Splitter::new(b">\n", b"<", false).unwrap(),
            Splitter::new(b">\\n", b"<", true).unwrap(),
        ];
        for round in 0..30 {
            let mut data = Vec::new();
            // Long records now and then, past the first window.
            for i in 0..rnd(300) {
                let n = if rnd(50) == 0 { 100_000 } else { rnd(60) };
                data.extend_from_slice(format!("<{i}").as_bytes());
                data.extend(std::iter::repeat_n(b'x', n as usize));
                data.extend_from_slice(b">\n");
            }
            let s = &splitters[round % 3];
            let block = 1 + rnd(5000);
            let parts = cut(&data, block, s);
            assert_eq!(parts.concat(), data);
            for p in &parts {
                assert!(p.starts_with(b"<") && p.ends_with(b">\n"), "round {round}");
            }
        }
    }

    #[test]
    fn blocks_per_slot_and_a_header_left_out() {
        let nl = Splitter::new(b"\n", b"", false).unwrap();
        let data: Vec<u8> = (0..1000)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        // --block -2 at two job slots: four ranges.
        let parts = cut_at(&data, 0, PartBlock::PerSlot(2), &nl);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts.concat(), data);
        // After a header of two lines: the rest, in ranges of whole lines.
        let parts = cut_at(&data, 4, PartBlock::PerSlot(1), &nl);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts.concat(), data[4..]);
        assert!(parts[0].starts_with(b"2\n") && parts[0].ends_with(b"\n"));
    }
}
