//! Record framing (`parse_header`), the forward scan in STRICT and OPEN mode, and every
//! payload decoder (index block, final index sections, gap, event, video segment, colour
//! frame entry, IMU batch).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rsrec_fuzz::exercise_records(data);
});
