//! `--pipepart`: a file cut in place into byte ranges that end at record
//! boundaries.
//!
//! Only the bytes near each cut are read (a window, grown while no boundary
//! is found), so a file of any size is split in a few reads per range. The
//! jobs get their ranges from the file itself (`splice`), not through a
//! buffer of ours.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use super::records::Splitter;

/// The first window read after a target cut.
const WINDOW: usize = 64 * 1024;

/// Cuts `len` bytes of `file`, from `start`, into ranges of about `block`
/// bytes, each ending at a record boundary (or the end): as GNU parallel
/// cuts, at the first record separator that begins at or after each target,
/// so a range is never empty and may be longer than `block` by up to one
/// record. The ranges cover `start..len` exactly
/// once, in order.
pub(crate) fn ranges(
    file: &File,
    start: u64,
    len: u64,
    block: u64,
    splitter: &Splitter,
) -> io::Result<Vec<Range<u64>>> {
    let block = block.max(1);
    let mut out = Vec::new();
    let mut from = start;
    while from < len {
        let target = from + block;
        if target >= len {
            out.push(from..len);
            break;
        }
        let end = boundary_at_or_after(file, from, target, len, splitter)?;
        out.push(from..end);
        from = end;
    }
    Ok(out)
}

/// The boundary of the first separator that begins at or after `target`
/// (`from < target`), or `len`.
fn boundary_at_or_after(
    file: &File,
    from: u64,
    target: u64,
    len: u64,
    splitter: &Splitter,
) -> io::Result<u64> {
    debug_assert!(from < target);
    let mut window = WINDOW;
    loop {
        let want = ((len - target) as usize).min(window);
        let mut buf = vec![0; want];
        file.read_exact_at(&mut buf, target)?;
        if let Some(p) = splitter.first_match_from(&buf, 0) {
            return Ok(target + p as u64);
        }
        if target + want as u64 >= len {
            return Ok(len);
        }
        window *= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp(data: &[u8]) -> File {
        let dir = std::env::temp_dir();
        let path = dir.join(format!(
            "quadriga-part-test-{}-{}",
            std::process::id(),
            data.len()
        ));
        let mut f = File::create(&path).unwrap();
        f.write_all(data).unwrap();
        let f = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    fn cut(data: &[u8], block: u64, s: &Splitter) -> Vec<Vec<u8>> {
        let f = temp(data);
        ranges(&f, 0, data.len() as u64, block, s)
            .unwrap()
            .into_iter()
            .map(|r| data[r.start as usize..r.end as usize].to_vec())
            .collect()
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
}
