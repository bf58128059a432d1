//! Writes a CSV file of the db-benchmark group-by shape, with a fixed seed:
//!
//! ```text
//! $ cargo run --release -p quadriga --example gen_groupby -- 10000000 G1_1e7.csv
//! id1,id2,id3,id4,id5,id6,v1,v2,v3
//! id016,id046,id0000072164,57,13,7355,4,7,81.541823
//! ...
//! ```
//!
//! With N rows and K = 100: `id1` and `id2` are `id%03d` of K groups, `id3`
//! is `id%010d` of N/K groups, `id4` and `id5` are integers of K groups,
//! `id6` of N/K groups, `v1` is 1..=5, `v2` 1..=15 and `v3` a float in
//! [0, 100) with six decimals, each drawn uniformly, as db-benchmark's
//! generator draws them. The same ROWS always give the same bytes.

use std::fs::File;
use std::io::{BufWriter, Write};

/// The number of groups of `id1`, `id2`, `id4` and `id5`.
const K: u64 = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: gen_groupby ROWS FILE";
    let rows: u64 = match args.next() {
        // Accept 1e7 as well as 10000000.
        Some(n) => n
            .parse::<u64>()
            .or_else(|_| n.parse::<f64>().map(|f| f as u64))?,
        None => return Err(usage.into()),
    };
    let path = args.next().ok_or(usage)?;
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
    write(&mut out, rows)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    eprintln!("wrote {rows} rows to {path}");
    Ok(())
}

/// The file's bytes: the header and `rows` rows.
fn write(out: &mut impl Write, rows: u64) -> std::io::Result<()> {
    let mut rng = fastrand::Rng::with_seed(20_161_124);
    let big = (rows / K).max(1);
    writeln!(out, "id1,id2,id3,id4,id5,id6,v1,v2,v3")?;
    for _ in 0..rows {
        writeln!(
            out,
            "id{:03},id{:03},id{:010},{},{},{},{},{},{:.6}",
            rng.u64(1..=K),
            rng.u64(1..=K),
            rng.u64(1..=big),
            rng.u64(1..=K),
            rng.u64(1..=K),
            rng.u64(1..=big),
            rng.u64(1..=5),
            rng.u64(1..=15),
            rng.f64() * 100.0,
        )?;
    }
    Ok(())
}
