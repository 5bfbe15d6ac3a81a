//! `Reader::from_bytes` on arbitrary files, then every read API and `verify`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rsrec_fuzz::exercise_reader(data.to_vec());
    // Same bytes with every checksum repaired, to get past the CRCs.
    let mut fixed = data.to_vec();
    if rsrec_fuzz::fix_file(&mut fixed) {
        rsrec_fuzz::exercise_reader(fixed);
    }
});
