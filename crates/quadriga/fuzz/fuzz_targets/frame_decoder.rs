//! Fuzzes the decoder of the frames that cross the process boundary between
//! the supervisor and its workers: no input may panic, hang, or allocate past
//! the frame bound.
//!
//! Run: `cargo +nightly fuzz run frame_decoder` in `crates/quadriga`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quadriga::fuzz_decode(data, 1 << 20);
});
