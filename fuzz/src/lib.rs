//! Shared code of the rsrec fuzz targets.
//!
//! Almost every structure of an `.rsrec` file is covered by a CRC-32C, so random mutations
//! of a valid file are rejected at the first checksum and never reach the parsers behind it.
//! The targets therefore feed each input twice: once as it is (exercising the checksum and
//! framing checks) and once after [`fix_file`] / [`fix_records`] / [`fix_header`] have
//! recomputed every checksum, so that mutated lengths, counts, offsets and payloads reach
//! the code that interprets them.
//!
//! The `exercise_*` functions are what the targets run; a crash reproduces with
//! `cargo fuzz run TARGET ARTIFACT`, and `cargo run --example gen_seeds -- --fix FILE OUT`
//! writes the checksum-repaired bytes that the second pass saw (for regression tests).

use rsrec::codec::{self, CodecId, DepthCodec};
use rsrec::container::format::*;
use rsrec::container::index::{decode_final_sections, IndexBlock};
use rsrec::container::record::{
    check_payload, decode_imu_batch, parse_header, payload, ColorFrameEntry, Event, Gap, RecordRef,
    VideoSegment,
};
use rsrec::container::recover::verify;
use rsrec::container::scan::{scan, ScanMode};
use rsrec::container::{ContainerError, FileHeader, Reader, StreamKind};

fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Recomputes the header and payload CRC of every record found from `start` on (records are
/// followed by their length; bytes that are not a record are skipped up to the next sync
/// marker). Returns whether anything changed.
pub fn fix_records(buf: &mut [u8], start: usize) -> bool {
    let before = crc32c::crc32c(buf);
    let mut at = start;
    while at + RECORD_HEADER_LEN <= buf.len() {
        if buf[at..at + 4] != RECORD_SYNC {
            match buf[at + 1..].windows(4).position(|w| w == RECORD_SYNC) {
                Some(p) => {
                    at += 1 + p;
                    continue;
                }
                None => break,
            }
        }
        let hcrc = crc32c::crc32c(&buf[at..at + REC_HEADER_CRC]);
        put_u32(buf, at + REC_HEADER_CRC, hcrc);
        let len = le_u32(buf, at + REC_PAYLOAD_LEN) as usize;
        let p = at + RECORD_HEADER_LEN;
        if len as u32 <= MAX_PAYLOAD_LEN && p + len <= buf.len() {
            let pcrc = crc32c::crc32c(&buf[p..p + len]);
            put_u32(buf, at + REC_PAYLOAD_CRC, pcrc);
            at = p + len;
        } else {
            at += 1;
        }
    }
    crc32c::crc32c(buf) != before
}

/// Recomputes every checksum of a whole file: the header CRC, the preamble's index-pointer
/// CRC, every record's CRCs and the footer CRC. Returns whether anything changed.
pub fn fix_file(buf: &mut [u8]) -> bool {
    let before = crc32c::crc32c(buf);
    let mut first_record = PREAMBLE_LEN;
    if buf.len() >= PREAMBLE_LEN && buf[..8] == MAGIC {
        let header_len = le_u32(buf, PRE_HEADER_LEN) as usize;
        let body_end = PREAMBLE_LEN.saturating_add(header_len);
        if header_len <= MAX_HEADER_LEN as usize && body_end + 4 <= buf.len() {
            let crc =
                crc32c::crc32c_append(crc32c::crc32c(&buf[..16]), &buf[PREAMBLE_LEN..body_end]);
            put_u32(buf, body_end, crc);
            first_record = body_end + 4;
        }
        if buf[PRE_INDEX_OFFSET..PRE_INDEX_OFFSET + 8] != [0; 8] {
            let crc = crc32c::crc32c(&buf[PRE_INDEX_OFFSET..PRE_INDEX_OFFSET + 8]);
            put_u32(buf, PRE_INDEX_CRC, crc);
        }
    }
    fix_records(buf, first_record);
    let n = buf.len();
    if n >= first_record + FOOTER_LEN && buf[n - 8..] == FOOTER_MAGIC {
        let f = n - FOOTER_LEN;
        let crc = crc32c::crc32c(&buf[f..f + 16]);
        put_u32(buf, f + 16, crc);
    }
    crc32c::crc32c(buf) != before
}

/// Wraps `body` in a preamble with a matching length and CRC: the bytes of a file header
/// whose body is `body`.
pub fn fix_header(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREAMBLE_LEN + body.len() + 4);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; PREAMBLE_LEN - 16]);
    out.extend_from_slice(body);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..16]), body);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// What the `header` target decodes in its second pass: the input's header body (the input
/// itself, or the body of an input that is already a whole header) behind a valid preamble
/// and CRC, so that mutations reach the body parser.
pub fn header_pass2(data: &[u8]) -> Vec<u8> {
    let body = match data.get(..8) {
        Some(m) if m == MAGIC && data.len() >= PREAMBLE_LEN + 4 => {
            &data[PREAMBLE_LEN..data.len() - 4]
        }
        _ => data,
    };
    fix_header(body)
}

/// Opens `bytes` as a file and, if that works, uses every read API on it and returns the
/// reader. Must not panic. (`tests/it/fuzz_regressions.rs` runs this same function.)
pub fn exercise_reader(bytes: Vec<u8>) -> Option<Reader> {
    let Ok(reader) = Reader::from_bytes(bytes) else {
        return None;
    };
    let depth_ids: Vec<u8> = reader
        .header()
        .streams
        .iter()
        .filter(|s| s.kind == StreamKind::Depth)
        .map(|s| s.id)
        .collect();
    for id in depth_ids {
        let n = reader.frame_count(id);
        for i in 0..n.min(4) {
            let _ = reader.read_depth(id, i);
        }
        assert!(reader.read_depth(id, n).is_err(), "frame {n} of {n} read");
        assert_eq!(reader.depth_frames(id).take(4).count(), n.min(4));
        let dt = record_type::DEPTH_FRAME;
        for i in [0, n / 2, n.saturating_sub(1)] {
            if let Some(e) = reader.entry(id, dt, i) {
                let _ = reader.find_frame_number(id, dt, e.frame_number);
                let k = reader.seek_device_ts(id, dt, e.device_ts_ms);
                assert!(k <= n, "seek_device_ts returned {k} of {n}");
                let k = reader.seek_host_ts(id, dt, e.host_ts_us);
                assert!(k <= n, "seek_host_ts returned {k} of {n}");
            }
        }
        let _ = reader.find_frame_number(id, dt, u64::MAX);
        for ts in [f64::NAN, f64::NEG_INFINITY, f64::INFINITY, 0.0] {
            assert!(reader.seek_device_ts(id, dt, ts) <= n);
        }
        assert!(reader.seek_host_ts(id, dt, i64::MIN) <= n);
        assert!(reader.seek_host_ts(id, dt, i64::MAX) <= n);
    }
    // §5.9 Infrared frames: decoded (narrowed to bytes) or refused, never a panic.
    let ir_ids: Vec<u8> = reader
        .header()
        .streams
        .iter()
        .filter(|s| s.kind == StreamKind::Infrared)
        .map(|s| s.id)
        .collect();
    for id in ir_ids {
        let n = reader.count(id, record_type::INFRARED_FRAME);
        let mut scratch = Vec::new();
        for i in 0..n.min(4) {
            if let Ok(f) = reader.read_infrared(id, i) {
                assert_eq!(f.data.len(), f.width as usize * f.height as usize);
                let mut again = vec![0u8; f.data.len()];
                let h = reader.read_infrared_into(id, i, &mut scratch, &mut again);
                assert!(h.is_ok() && again == f.data, "read_infrared_into differs");
            }
        }
        assert!(
            reader.read_infrared(id, n).is_err(),
            "frame {n} of {n} read"
        );
    }
    // Every section, whatever its type: entries and the first and last record.
    let sections: Vec<(u8, u8, usize)> = reader
        .sections()
        .iter()
        .map(|s| (s.stream, s.record_type, s.len()))
        .collect();
    for (stream, rt, len) in sections {
        assert_eq!(reader.entries(stream, rt).count(), len);
        let _ = reader.read_record(stream, rt, 0);
        let _ = reader.read_record(stream, rt, len.saturating_sub(1));
        assert!(reader.read_record(stream, rt, len).is_err());
    }
    let _ = reader.gaps();
    let _ = reader.events();
    let _ = reader.is_closed();
    let _ = reader.torn_tail_bytes();
    let report = verify(&reader);
    assert!(report.problems.len() as u64 <= report.problem_count);
    Some(reader)
}

/// Decodes `data` as a file header; a header that decodes must re-encode, and decoding the
/// re-encoding must give the same header (bit for bit: NaNs included).
pub fn exercise_header(data: &[u8]) {
    let Ok((h, first_record, _ptr)) = FileHeader::decode(data) else {
        return;
    };
    assert!(first_record as usize <= data.len());
    let enc = h.encode().expect("a decoded header must encode");
    let (h2, first2, ptr2) = FileHeader::decode(&enc).expect("a re-encoded header must decode");
    assert_eq!(first2 as usize, enc.len());
    assert_eq!(ptr2, None);
    // Debug prints floats exactly enough to tell NaN, -0.0 and every finite value apart, so
    // this is equality that does not trip over NaN != NaN.
    assert_eq!(format!("{h:?}"), format!("{h2:?}"));
    if !format!("{h:?}").contains("NaN") {
        assert_eq!(h, h2);
    }
    assert_eq!(h2.encode().expect("encodes again"), enc);
}

/// Frame size from the first two bytes (1..=64 each) and the rest as payload.
pub fn split_dims(data: &[u8]) -> Option<(u32, u32, &[u8])> {
    if data.len() < 2 {
        return None;
    }
    Some((1 + data[0] as u32 % 64, 1 + data[1] as u32 % 64, &data[2..]))
}

/// Decodes the payload with one codec. Must not panic; an Ok frame has the declared size.
pub fn exercise_decode(codec: CodecId, data: &[u8]) {
    let Some((w, h, payload)) = split_dims(data) else {
        return;
    };
    let mut out = vec![0u16; (w * h) as usize];
    if codec::decode(codec, payload, w, h, &mut out).is_ok() {
        // A frame that decodes must survive a round trip through the same codec.
        let c = match codec {
            CodecId::RAW => DepthCodec::Raw,
            CodecId::LZ4_PLANES => DepthCodec::Lz4Planes,
            // A lossy frame decodes to exact values, which lossless med-rans keeps.
            CodecId::MED_RANS => DepthCodec::MED_RANS,
            CodecId::GRAD_RANS => DepthCodec::GRAD_RANS,
            CodecId::GRAD_RANS32 => DepthCodec::GRAD_RANS32,
            _ => DepthCodec::ZstdPlanes { level: 1 },
        };
        let mut enc = Vec::new();
        c.encode(&out, w, h, &mut enc).expect("encode");
        assert_eq!(
            codec::decode_to_vec(codec, &enc, w, h).expect("decode"),
            out
        );
    }
    // A buffer of the wrong size must be an error, not a panic or an overrun.
    let mut short = vec![0u16; (w * h) as usize - 1];
    assert!(codec::decode(codec, payload, w, h, &mut short).is_err());
}

/// Every codec must give back exactly the frame it encoded.
pub fn exercise_roundtrip(data: &[u8]) {
    let Some((w, h, rest)) = split_dims(data) else {
        return;
    };
    let n = (w * h) as usize;
    let mut depth: Vec<u16> = rest
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .take(n)
        .collect();
    depth.resize(n, 0);
    for c in [
        DepthCodec::Raw,
        DepthCodec::Lz4Planes,
        DepthCodec::ZstdPlanes { level: 1 },
        DepthCodec::MED_RANS,
        DepthCodec::GRAD_RANS,
        DepthCodec::GRAD_RANS32,
    ] {
        let mut enc = Vec::new();
        c.encode(&depth, w, h, &mut enc).expect("encode");
        let back = codec::decode_to_vec(c.id(), &enc, w, h).expect("decode");
        assert_eq!(back, depth, "{c} round trip {w}x{h}");
    }
    // Lossy med-rans, grad-rans and grad-rans32: within the bound, holes exact.
    let bound = codec::ErrorBound::Absolute {
        units: 1 + (w % 7) as u16,
    };
    for c in [
        DepthCodec::MedRans { bound },
        DepthCodec::GradRans { bound },
        DepthCodec::GradRans32 { bound },
    ] {
        let mut enc = Vec::new();
        c.encode(&depth, w, h, &mut enc).expect("encode");
        let back = codec::decode_to_vec(c.id(), &enc, w, h).expect("decode");
        for (&o, &v) in back.iter().zip(&depth) {
            assert!(
                (o == 0) == (v == 0) && o.abs_diff(v) as u32 <= bound.allowed(v),
                "{c} {w}x{h}: {v} decoded as {o}"
            );
        }
    }
}

/// Parses the payload of a record by its type, as `verify` does.
fn decode_payload(r: &RecordRef, p: &[u8]) -> Result<(), ContainerError> {
    match r.header.record_type {
        record_type::COLOR_FRAME => ColorFrameEntry::decode(p).map(drop),
        record_type::IMU_BATCH => decode_imu_batch(p).map(drop),
        record_type::GAP => Gap::decode(p).map(drop),
        record_type::EVENT => Event::decode(p).map(drop),
        record_type::VIDEO_SEGMENT => VideoSegment::decode(p).map(drop),
        record_type::INDEX_BLOCK => IndexBlock::decode(p).map(drop),
        record_type::FINAL_INDEX => decode_final_sections(p).map(drop),
        _ => Ok(()),
    }
}

/// Every payload decoder on the same bytes.
fn all_payload_decoders(p: &[u8]) {
    let _ = IndexBlock::decode(p);
    let _ = IndexBlock::prev_of(p);
    let _ = decode_final_sections(p);
    let _ = Gap::decode(p);
    let _ = Event::decode(p);
    let _ = VideoSegment::decode(p);
    let _ = ColorFrameEntry::decode(p);
    if let Ok(s) = decode_imu_batch(p) {
        assert_eq!(8 + s.len() * 40, p.len());
    }
}

/// Record framing, the forward scan in both modes and every payload decoder.
pub fn exercise_records(data: &[u8]) {
    all_payload_decoders(data);
    for buf in [data.to_vec(), {
        let mut b = data.to_vec();
        fix_records(&mut b, 0);
        b
    }] {
        if let Ok(r) = parse_header(&buf, 0) {
            assert!(r.end() as usize <= buf.len());
            let p = payload(&buf, &r);
            let _ = check_payload(&buf, &r);
            all_payload_decoders(p);
        }
        for mode in [ScanMode::STRICT, ScanMode::OPEN] {
            let mut n = 0u64;
            let summary = scan(&buf, 0, mode, |r, p| {
                assert!(r.end() as usize <= buf.len());
                n += 1;
                decode_payload(r, p)
            });
            assert!(summary.records <= n);
            for d in &summary.damage {
                assert!(d.offset + d.len <= buf.len() as u64);
            }
        }
    }
}

/// Opens `bytes` as a librealsense `.bag` and replays it to the end (at most 10,000
/// samples). Must not panic; every sample has the size its stream declares.
pub fn exercise_bag(bytes: Vec<u8>) {
    use rsrec::source::bag::BagSource;
    use rsrec::source::{Pacing, Sample, Source};
    let Ok(mut src) = BagSource::from_bytes(
        std::path::Path::new("fuzz.bag"),
        bytes,
        Pacing::AsFastAsPossible,
    ) else {
        return;
    };
    let streams = src.info().streams.clone();
    for _ in 0..10_000 {
        match src.next() {
            Ok(Some(Sample::Depth(f))) => {
                let d = streams
                    .iter()
                    .find(|s| s.kind == StreamKind::Depth)
                    .expect("a depth frame comes from a declared depth stream");
                assert_eq!(f.data.len(), d.width as usize * d.height as usize);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
}
