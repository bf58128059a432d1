//! Fuzzes the decoder of cluster stream entries, which anyone with access to
//! the broker can write: no input may panic, hang, or allocate past the
//! entry bound, and whatever decodes must re-encode to an equal entry.
//!
//! Run: `cargo +nightly fuzz run cluster_entry` in `crates/quadriga`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quadriga::cluster::fuzz_decode_entry(data);
});
