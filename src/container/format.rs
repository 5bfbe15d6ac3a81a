//! Format constants of the `.rsrec` container: the single source of truth in code.
//!
//! Every value here is quoted from `format-spec.md`; the two change together, and any change
//! to the byte layout bumps [`FORMAT_VERSION`]. Section numbers refer to the spec.

/// §2 Preamble, offset 0: `\x89RSREC\r\n`. The high byte catches 7-bit transfers, the CR LF
/// catches newline translation (the same trick as PNG).
pub const MAGIC: [u8; 8] = *b"\x89RSREC\r\n";

/// §2 Preamble, offset 8: the format version this code writes. Version 3 added the infrared
/// frame (§5.9); version 2 the colour frame's time in its video (§5.2 `video_time_us`) and
/// the frame metadata record (§5.8).
pub const FORMAT_VERSION: u16 = 3;
/// Oldest format version this code still reads.
pub const MIN_READ_VERSION: u16 = 1;

/// §2 Size of the fixed preamble in bytes.
pub const PREAMBLE_LEN: usize = 32;
/// §2 Offsets inside the preamble.
pub const PRE_VERSION: usize = 8;
pub const PRE_FLAGS: usize = 10;
pub const PRE_HEADER_LEN: usize = 12;
pub const PRE_INDEX_OFFSET: usize = 16;
pub const PRE_INDEX_CRC: usize = 24;

/// §3 Upper bound on the header body (device info, stream descriptors, JSON metadata).
pub const MAX_HEADER_LEN: u32 = 16 << 20;
/// §3 Upper bound on the number of streams in one file.
pub const MAX_STREAMS: usize = 64;
/// §3 Upper bound on the free-form JSON metadata.
pub const MAX_METADATA_LEN: u32 = 8 << 20;
/// §3 Upper bound on key/value pairs in a map.
pub const MAX_MAP_ENTRIES: usize = 4096;
/// §3 Upper bound on width and height of an image stream (defined in the codec layer, whose
/// decoders refuse larger frames before allocating).
pub use crate::codec::spec::MAX_DIMENSION;
/// §3 (frame-size limit) The largest image frame (`width * height` pixels) rsrec's reader decodes and its
/// writer writes unless `RSREC_MAX_FRAME_PIXELS` says otherwise: 2^25 (64 MiB of depth).
pub const DEFAULT_MAX_FRAME_PIXELS: u64 = 1 << 25;
/// §3 (frame-size limit) The environment variable that sets it.
pub const MAX_FRAME_PIXELS_ENV: &str = "RSREC_MAX_FRAME_PIXELS";
/// §3 Upper bound on distortion coefficients.
pub const MAX_DISTORTION_COEFFS: usize = 16;

/// §4 Record sync marker: the first four bytes of every record, so that recovery can find the
/// next record after a damaged one.
pub const RECORD_SYNC: [u8; 4] = *b"\x1eRSR";
/// §4 Size of the fixed record header in bytes.
pub const RECORD_HEADER_LEN: usize = 48;
/// §4 Upper bound on the payload of a data record (a raw 16384x16384 Z16 frame is 512 MiB).
pub const MAX_PAYLOAD_LEN: u32 = 1 << 30;

/// §4 Record header field offsets.
pub const REC_PAYLOAD_LEN: usize = 4;
pub const REC_TYPE: usize = 8;
pub const REC_STREAM: usize = 9;
pub const REC_CODEC: usize = 10;
pub const REC_DOMAIN: usize = 11;
pub const REC_FLAGS: usize = 12;
pub const REC_FRAME_NUMBER: usize = 16;
pub const REC_DEVICE_TS: usize = 24;
pub const REC_HOST_TS: usize = 32;
pub const REC_HEADER_CRC: usize = 40;
pub const REC_PAYLOAD_CRC: usize = 44;

/// §4.1 Record types. Readers skip types they do not know.
pub mod record_type {
    /// §5.1 One compressed depth frame.
    pub const DEPTH_FRAME: u8 = 0x01;
    /// §5.2 Where a colour frame lives in the colour video.
    pub const COLOR_FRAME: u8 = 0x02;
    /// §5.3 A batch of IMU samples.
    pub const IMU_BATCH: u8 = 0x03;
    /// §5.4 Frames lost, with the reason.
    pub const GAP: u8 = 0x04;
    /// §5.5 An event or annotation.
    pub const EVENT: u8 = 0x05;
    /// §5.6 A colour video file (segment) that colour-frame records refer to.
    pub const VIDEO_SEGMENT: u8 = 0x06;
    /// §5.7 A copy of the file header (the first record, and the last data record of a
    /// closed file), for recovery when the header itself is damaged.
    pub const HEADER_COPY: u8 = 0x07;
    /// §5.8 A frame's metadata (exposure, gain, laser power, ...), format version 2.
    pub const FRAME_METADATA: u8 = 0x08;
    /// §5.9 One infrared (Y8) frame, coded by a depth codec as 16-bit samples, format
    /// version 3.
    pub const INFRARED_FRAME: u8 = 0x09;
    /// §6.1 Periodic index block.
    pub const INDEX_BLOCK: u8 = 0x10;
    /// §6.2 Final index, written once on close.
    pub const FINAL_INDEX: u8 = 0x11;
}

/// §4.2 Timestamp domains (numbered as librealsense's `rs2_timestamp_domain`).
pub mod ts_domain {
    pub const HARDWARE_CLOCK: u8 = 0;
    pub const SYSTEM_TIME: u8 = 1;
    pub const GLOBAL_TIME: u8 = 2;
    /// Not from a device: derived from a nominal rate (for example `rsrec import --fps`).
    pub const SYNTHETIC: u8 = 254;
    /// Record has no timestamp (index blocks, stream-less events).
    pub const NONE: u8 = 255;

    /// The spec's name of a domain (`hardware_clock`, ...); `None` for a code the spec does
    /// not define (unknown codes are not an error, §4.2).
    pub fn name(code: u8) -> Option<&'static str> {
        match code {
            HARDWARE_CLOCK => Some("hardware_clock"),
            SYSTEM_TIME => Some("system_time"),
            GLOBAL_TIME => Some("global_time"),
            SYNTHETIC => Some("synthetic"),
            NONE => Some("none"),
            _ => None,
        }
    }
}

/// §4.3 Stream id used by records that belong to no stream (events about the whole file).
pub const NO_STREAM: u8 = 0xFF;

/// §6 Index entry sizes.
pub const INDEX_BLOCK_HEADER_LEN: usize = 16;
pub const INDEX_BLOCK_ENTRY_LEN: usize = 40;
pub const FINAL_INDEX_HEADER_LEN: usize = 8;
pub const FINAL_SECTION_LEN: usize = 32;
pub const FINAL_ENTRY_LEN: usize = 32;
/// §6.1 An index block holds at most this many entries.
pub const MAX_INDEX_BLOCK_ENTRIES: u32 = 1 << 20;
/// §6.2 Final index section flags.
pub const SECTION_SORTED_BY_FRAME: u8 = 0x01;
pub const SECTION_SORTED_BY_DEVICE_TS: u8 = 0x02;
pub const SECTION_SORTED_BY_HOST_TS: u8 = 0x04;

/// §7 Footer: the last 32 bytes of a closed file.
pub const FOOTER_LEN: usize = 32;
pub const FOOTER_MAGIC: [u8; 8] = *b"RSRECEND";

/// §3.2 Stream property of an infrared stream: librealsense's stream index, `1` (left imager)
/// or `2` (right).
pub const PROP_IR_INDEX: &str = "ir_index";

/// §3.2 Stream property of a depth stream recorded with a lossy bound (§8.4.6): `N` (depth
/// units) or `P%`. Its frames are not bit-exact.
pub const PROP_DEPTH_MAX_ERROR: &str = "depth_max_error";

/// §8.4-8.6 Codec constants live with their codecs (the codec layer is a leaf that imports
/// nothing from the container); quoted here so that this module still lists every constant of
/// the spec.
pub use crate::codec::spec::{grad_rans, grad_rans32, med_rans};
