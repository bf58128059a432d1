//! Fuzzes the decoder of output chunks (`cluster/output.rs`), which anyone
//! with access to the broker can write: no input may panic, and what
//! decodes stays within the chunk bound.
//!
//! Run: `cargo +nightly fuzz run cluster_chunk` in `crates/quadriga`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quadriga::cluster::fuzz_decode_chunk(data);
});
