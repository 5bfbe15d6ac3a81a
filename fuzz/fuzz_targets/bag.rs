//! `BagSource` (the `.bag` reader) on arbitrary bytes: open, then replay every sample.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rsrec_fuzz::exercise_bag(data.to_vec());
});
