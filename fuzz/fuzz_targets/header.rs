//! `FileHeader::decode`, and encode/decode round trip of whatever decodes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rsrec_fuzz::exercise_header(data);
    // The input's header body behind a valid preamble and CRC, to reach the body parser.
    rsrec_fuzz::exercise_header(&rsrec_fuzz::header_pass2(data));
});
