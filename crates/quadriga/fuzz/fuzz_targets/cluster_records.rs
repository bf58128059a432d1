//! Fuzzes the readers of the failures stream's and the dead-letter streams'
//! records, which anyone with access to the broker can write: no input may
//! panic, and every text stays within its bound.
//!
//! Run: `cargo +nightly fuzz run cluster_records` in `crates/quadriga`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quadriga::cluster::fuzz_parse_records(data);
});
