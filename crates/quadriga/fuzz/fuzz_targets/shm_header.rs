//! Fuzzes the check of a shared-memory object's header, which another process
//! wrote: any bytes and any claimed size must give an answer, never a panic,
//! and never an offset past the memory's real size.
//!
//! Run: `cargo +nightly fuzz run shm_header` in `crates/quadriga`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quadriga::ipc::fuzz_header(data);
});
