//! The Matroska stream rsrec feeds FFmpeg's stdin: raw frames (`V_UNCOMPRESSED`), each in its
//! own cluster stamped with the frame's time, so that the encoded video keeps every frame's
//! capture time (a raw stream at a fixed `-framerate` put frame *i* at *i* / fps, and every
//! dropped frame shortened the video). Pure byte building, no I/O.
//!
//! Layout: EBML header; a Segment of unknown size (a live stream has no end known in
//! advance); Info (TimecodeScale 1 ms: Matroska's default, and what FFmpeg writes); Tracks
//! with one video track whose `ColourSpace` is the FourCC FFmpeg's raw decoder maps to the
//! pixel format; then per frame one Cluster (Timecode = the frame's time in ms) holding one
//! SimpleBlock (track 1, relative time 0, keyframe).

use crate::container::PixelFormat;

const EBML: u32 = 0x1A45_DFA3;
const EBML_VERSION: u32 = 0x4286;
const EBML_READ_VERSION: u32 = 0x42F7;
const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
const DOC_TYPE: u32 = 0x4282;
const DOC_TYPE_VERSION: u32 = 0x4287;
const DOC_TYPE_READ_VERSION: u32 = 0x4285;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const MUXING_APP: u32 = 0x4D80;
const WRITING_APP: u32 = 0x5741;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_UID: u32 = 0x73C5;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const FLAG_LACING: u32 = 0x9C;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const COLOUR_SPACE: u32 = 0x2E_B524;
const CLUSTER: u32 = 0x1F43_B675;
const TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;

/// The size field of an element whose size is not known ("unknown size", 8 bytes).
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// The FourCC FFmpeg's raw-video decoder maps to each frame layout (its `PIX_FMT_LIST_RAW`).
pub fn fourcc(format: PixelFormat) -> Option<[u8; 4]> {
    match format {
        PixelFormat::Rgb8 => Some(*b"RGB\x18"),
        PixelFormat::Bgr8 => Some(*b"BGR\x18"),
        PixelFormat::Rgba8 => Some(*b"RGBA"),
        PixelFormat::Bgra8 => Some(*b"BGRA"),
        PixelFormat::Yuyv => Some(*b"YUY2"),
        PixelFormat::Y8 => Some(*b"Y800"),
        _ => None,
    }
}

fn id(out: &mut Vec<u8>, id: u32) {
    let n = (32 - id.leading_zeros()).div_ceil(8) as usize;
    out.extend_from_slice(&id.to_be_bytes()[4 - n..]);
}

/// An 8-byte size field (`0x01` marker + 7 bytes): one width for every element keeps the
/// writer simple; sizes up to 2^56 - 2.
fn size(out: &mut Vec<u8>, len: usize) {
    let mut b = (len as u64).to_be_bytes();
    b[0] = 0x01;
    out.extend_from_slice(&b);
}

fn element(out: &mut Vec<u8>, el: u32, payload: &[u8]) {
    id(out, el);
    size(out, payload.len());
    out.extend_from_slice(payload);
}

fn uint(out: &mut Vec<u8>, el: u32, v: u64) {
    element(out, el, &v.to_be_bytes());
}

/// Everything before the first frame: EBML header, the start of the Segment, Info and Tracks.
pub fn stream_header(width: u32, height: u32, fourcc: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut h = Vec::new();
    uint(&mut h, EBML_VERSION, 1);
    uint(&mut h, EBML_READ_VERSION, 1);
    uint(&mut h, EBML_MAX_ID_LENGTH, 4);
    uint(&mut h, EBML_MAX_SIZE_LENGTH, 8);
    element(&mut h, DOC_TYPE, b"matroska");
    uint(&mut h, DOC_TYPE_VERSION, 4);
    uint(&mut h, DOC_TYPE_READ_VERSION, 2);
    element(&mut out, EBML, &h);

    id(&mut out, SEGMENT);
    out.extend_from_slice(&UNKNOWN_SIZE);

    let app = concat!("rsrec ", env!("CARGO_PKG_VERSION"));
    let mut info = Vec::new();
    uint(&mut info, TIMECODE_SCALE, 1_000_000);
    element(&mut info, MUXING_APP, app.as_bytes());
    element(&mut info, WRITING_APP, app.as_bytes());
    element(&mut out, INFO, &info);

    let mut video = Vec::new();
    uint(&mut video, PIXEL_WIDTH, width.into());
    uint(&mut video, PIXEL_HEIGHT, height.into());
    element(&mut video, COLOUR_SPACE, &fourcc);
    let mut track = Vec::new();
    uint(&mut track, TRACK_NUMBER, 1);
    uint(&mut track, TRACK_UID, 1);
    uint(&mut track, TRACK_TYPE, 1);
    element(&mut track, CODEC_ID, b"V_UNCOMPRESSED");
    uint(&mut track, FLAG_LACING, 0);
    element(&mut track, VIDEO, &video);
    let mut tracks = Vec::new();
    element(&mut tracks, TRACK_ENTRY, &track);
    element(&mut out, TRACKS, &tracks);
    out
}

/// Bytes of a frame's cluster that come before the frame's pixels.
pub const FRAME_PREFIX_LEN: usize = 4 + 8 + 1 + 8 + 8 + 1 + 8 + 4;

/// The start of the cluster of one frame of `frame_len` bytes at `time_ms`: write it, then
/// the frame's bytes. (Split so that the frame is not copied.)
pub fn frame_prefix(time_ms: u64, frame_len: usize) -> [u8; FRAME_PREFIX_LEN] {
    let mut out = Vec::with_capacity(FRAME_PREFIX_LEN);
    // SimpleBlock: track number 1 (vint 0x81), relative time 0 (i16), flags: keyframe.
    let block_len = 4 + frame_len;
    let cluster_len = 1 + 8 + 8 + 1 + 8 + block_len;
    id(&mut out, CLUSTER);
    size(&mut out, cluster_len);
    uint(&mut out, TIMECODE, time_ms);
    id(&mut out, SIMPLE_BLOCK);
    size(&mut out, block_len);
    out.extend_from_slice(&[0x81, 0x00, 0x00, 0x80]);
    out.try_into().expect("fixed layout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_written_with_their_own_length() {
        let mut v = Vec::new();
        id(&mut v, CLUSTER);
        id(&mut v, TIMECODE);
        id(&mut v, COLOUR_SPACE);
        assert_eq!(v, [0x1F, 0x43, 0xB6, 0x75, 0xE7, 0x2E, 0xB5, 0x24]);
    }

    #[test]
    fn a_frame_prefix_gives_the_sizes_of_its_cluster_and_block() {
        let p = frame_prefix(1234, 100);
        assert_eq!(&p[..4], &[0x1F, 0x43, 0xB6, 0x75]);
        let cluster = u64::from_be_bytes(p[4..12].try_into().unwrap()) & 0x00FF_FFFF_FFFF_FFFF;
        assert_eq!(cluster as usize, FRAME_PREFIX_LEN - 12 + 100);
        assert_eq!(p[12], 0xE7);
        assert_eq!(u64::from_be_bytes(p[21..29].try_into().unwrap()), 1234);
        assert_eq!(p[29], 0xA3);
        let block = u64::from_be_bytes(p[30..38].try_into().unwrap()) & 0x00FF_FFFF_FFFF_FFFF;
        assert_eq!(block, 104);
        assert_eq!(&p[38..], &[0x81, 0, 0, 0x80]);
    }

    #[test]
    fn every_supported_layout_has_a_fourcc() {
        for f in [
            PixelFormat::Rgb8,
            PixelFormat::Bgr8,
            PixelFormat::Rgba8,
            PixelFormat::Bgra8,
            PixelFormat::Yuyv,
            PixelFormat::Y8,
        ] {
            assert!(fourcc(f).is_some(), "{f:?}");
            assert!(super::super::encoder::ffmpeg_pixel_format(f).is_some());
        }
        assert!(fourcc(PixelFormat::Z16).is_none());
    }
}
