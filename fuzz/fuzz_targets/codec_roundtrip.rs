//! Every `DepthCodec` must decode exactly what it encoded: bytes 0 and 1 pick the frame size
//! (1..=64 each), the rest are little-endian u16 samples (zero-padded).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rsrec_fuzz::exercise_roundtrip(data);
});
