//! `codec::decode` with CodecId::GRAD_RANS32: bytes 0 and 1 pick the frame size (1..=64
//! each), the rest is the payload.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rsrec_fuzz::exercise_decode(rsrec::codec::CodecId::GRAD_RANS32, data);
});
