//! The fuzz entry point of the frame decoder: compiled only for the tests and
//! for the fuzz crate (hidden feature `fuzzing`), never in the public API.

use super::frame::Decoder;
use super::message::{Down, Up};

/// Decodes everything in `bytes` as frames of [`Up`] and [`Down`], for the fuzz
/// target: must never panic, hang or allocate beyond `max` per frame.
#[doc(hidden)]
pub fn fuzz_decode(bytes: &[u8], max: usize) {
    let mut up = Decoder::new(max);
    up.feed(bytes);
    while let Ok(Some(msg)) = up.next::<Up>() {
        if let Up::Done { outcomes, .. } = msg {
            for item in outcomes.into_items() {
                let _ = item;
            }
        }
    }
    let mut down = Decoder::new(max);
    // Feed in two halves, as a socket would.
    let (a, b) = bytes.split_at(bytes.len() / 2);
    down.feed(a);
    let _ = down.next::<Down>();
    down.feed(b);
    while let Ok(Some(msg)) = down.next::<Down>() {
        if let Down::Run { input, .. } | Down::Init { input, .. } = msg {
            for i in 0..input.len() {
                let _ = input.item(i);
            }
            let _ = input.split();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::wire::frame::{DEFAULT_MAX_FRAME, FrameError, encode};
    use crate::task::batch::Batch;

    fn frame(msg: &Down) -> Vec<u8> {
        let mut out = Vec::new();
        encode(msg, &mut out, DEFAULT_MAX_FRAME).unwrap();
        out
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut dec = Decoder::new(1024);
        dec.feed(&[3, 0, 0, 0, 0xff, 0xff, 0xff]);
        assert!(matches!(dec.next::<Up>(), Err(FrameError::Decode(_))));
        fuzz_decode(
            &[5, 0, 0, 0, 1, 2, 3, 4, 5, 0xff, 0xff, 0xff, 0xff],
            1 << 20,
        );
    }

    /// A stable-toolchain companion of the cargo-fuzz target: seeded random
    /// bytes, and valid frames with random corruption, never panic.
    #[test]
    fn random_and_corrupted_frames_never_panic() {
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut input = Batch::default();
        input.push(&("item", 7_u64)).unwrap();
        let valid = frame(&Down::Run {
            job: 3,
            task: "t".into(),
            input: std::borrow::Cow::Owned(input),
        });
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            fuzz_decode(&bytes, 1 << 16);
            bytes = valid.clone();
            let at = (next() as usize) % bytes.len();
            bytes[at] = next() as u8;
            fuzz_decode(&bytes, 1 << 16);
        }
    }
}
