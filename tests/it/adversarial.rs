//! The adversarial campaign, small scale: a file holding every record type (depth frames of
//! every codec, a colour entry, a video segment, an IMU batch, a gap, an event, index blocks,
//! the final index and footer) is damaged in every way the campaign of the reliability pass
//! used - bit flips as they are, bit flips with every checksum recomputed (so that the
//! damage reaches the parsers), every header field of every record and words of every
//! payload and of the file header set to extremes, and truncations - and each damaged copy
//! goes through the reader (every read API), `verify` and `recover`.
//!
//! Asserted for every input: no panic, and a recovery that succeeds gives a file that is
//! closed and verifies (recover never calls a broken file good). The outcome table is
//! printed (`--nocapture`). The long run is `fuzz/soak.sh` (CONTRIBUTING.md).

use std::collections::BTreeMap;

use rsrec::codec::{CodecId, DepthCodec};
use rsrec::container::format::*;
use rsrec::container::record::{encode_imu_batch, parse_header};
use rsrec::container::recover::{recover, verify};
use rsrec::container::{
    ColorFrameEntry, Event, FileHeader, Gap, GapReason, ImuSample, PixelFormat, Reader,
    RecordHeader, StreamDescriptor, StreamKind, VideoSegment, Writer, WriterOptions,
};

use crate::fuzz_regressions::harness::{exercise_reader, fix_file};

const W: u32 = 32;
const H: u32 = 24;

/// The file every mutation starts from, and the (start, end) of each of its records.
fn base(dir: &std::path::Path) -> (Vec<u8>, Vec<(usize, usize)>, usize) {
    let path = dir.join("base.rsrec");
    let mut color = StreamDescriptor::depth(1, W, H, 30.0);
    color.kind = StreamKind::Color;
    color.name = "color".into();
    color.format = PixelFormat::Rgb8;
    let mut gyro = StreamDescriptor::depth(2, 0, 0, 200.0);
    gyro.kind = StreamKind::Gyro;
    gyro.name = "gyro".into();
    gyro.format = PixelFormat::MotionXyz32f;
    let mut header = FileHeader::new(
        Default::default(),
        vec![StreamDescriptor::depth(0, W, H, 30.0), color, gyro],
    );
    header.created_utc_us = 1_700_000_000_000_000;
    let mut w = Writer::create(&path, &header, WriterOptions::deterministic(3)).unwrap();
    let at = |rt: u8, stream: u8, codec: CodecId, n: u64| RecordHeader {
        record_type: rt,
        stream,
        codec,
        ts_domain: ts_domain::HARDWARE_CLOCK,
        flags: 0,
        frame_number: n,
        device_ts_ms: n as f64 * 33.3,
        host_ts_us: 1_700_000_000_000_000 + n as i64 * 33_333,
    };
    let codecs = [
        DepthCodec::Raw,
        DepthCodec::Lz4Planes,
        "zstd-planes".parse().unwrap(),
        "med-rans".parse().unwrap(),
        "grad-rans".parse().unwrap(),
        "grad-rans32".parse().unwrap(),
    ];
    let mut payload = Vec::new();
    let segment = VideoSegment {
        segment: 0,
        file_name: "cam.color.000.mkv".into(),
        codec: "libx265".into(),
    };
    w.write_record(
        &at(record_type::VIDEO_SEGMENT, 1, CodecId::NONE, 0),
        &segment.encode().unwrap(),
    )
    .unwrap();
    for (n, c) in codecs.iter().enumerate() {
        let f = crate::common::synthetic_frame(W, H, n as u64);
        c.encode(&f, W, H, &mut payload).unwrap();
        w.write_record(&at(record_type::DEPTH_FRAME, 0, c.id(), n as u64), &payload)
            .unwrap();
        let entry = ColorFrameEntry {
            segment: 0,
            index_in_video: n as u64,
            video_time_us: Some(n as i64 * 33_000),
        };
        w.write_record(
            &at(record_type::COLOR_FRAME, 1, CodecId::NONE, n as u64),
            &entry.encode(),
        )
        .unwrap();
    }
    let imu: Vec<ImuSample> = (0..5)
        .map(|i| ImuSample {
            frame_number: i,
            device_ts_ms: i as f64 * 5.0,
            host_ts_us: 1_700_000_000_000_000 + i as i64 * 5000,
            xyz: [0.1, -0.2, 9.81],
        })
        .collect();
    w.write_record(
        &at(record_type::IMU_BATCH, 2, CodecId::NONE, 0),
        &encode_imu_batch(&imu),
    )
    .unwrap();
    let gap = Gap {
        first_frame: 6,
        last_frame: 7,
        count: 2,
        reason: GapReason::QueueFull,
        detail: "compression queue full".into(),
    };
    w.write_record(
        &at(record_type::GAP, 0, CodecId::NONE, 6),
        &gap.encode().unwrap(),
    )
    .unwrap();
    let event = Event {
        kind: "note".into(),
        message: "campaign".into(),
    };
    w.write_record(
        &at(record_type::EVENT, NO_STREAM, CodecId::NONE, 0),
        &event.encode().unwrap(),
    )
    .unwrap();
    w.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, first, _) = FileHeader::decode(&bytes).unwrap();
    let first = first as usize;
    let mut spans = Vec::new();
    let mut at = first;
    while at + FOOTER_LEN < bytes.len() {
        let r = parse_header(&bytes, at as u64).unwrap();
        spans.push((at, r.end() as usize));
        at = r.end() as usize;
    }
    assert!(spans.len() >= 20, "{} records", spans.len());
    (bytes, spans, first)
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[derive(Default)]
struct Outcomes {
    inputs: u64,
    opened: u64,
    verified_ok: u64,
    recovered_clean: u64,
    recovered_lossy: u64,
    recover_refused: u64,
}

/// Runs one damaged input through everything; panics (the test fails) on a broken promise.
fn run_one(bytes: Vec<u8>, what: &str, dir: &std::path::Path, out: &mut Outcomes) {
    out.inputs += 1;
    if let Some(reader) = exercise_reader(bytes.clone()) {
        out.opened += 1;
        if verify(&reader).ok() {
            out.verified_ok += 1;
        }
    }
    let input = dir.join("in.rsrec");
    let output = dir.join("out.rsrec");
    std::fs::write(&input, &bytes).unwrap();
    let _ = std::fs::remove_file(&output);
    match recover(&input, &output, true) {
        Ok(report) => {
            let rec = Reader::open(&output)
                .unwrap_or_else(|e| panic!("{what}: the recovered file does not open: {e}"));
            assert!(rec.is_closed(), "{what}: the recovered file is not closed");
            let v = verify(&rec);
            assert!(
                v.ok(),
                "{what}: recover said {report:?} but its output fails verify: {:?}",
                v.problems
            );
            if report.lost_data_in_middle() {
                out.recovered_lossy += 1;
            } else {
                out.recovered_clean += 1;
            }
        }
        Err(_) => out.recover_refused += 1,
    }
}

#[test]
fn adversarial_campaign_over_every_record_type() {
    let tmp = tempfile::tempdir().unwrap();
    let (bytes, spans, first) = base(tmp.path());
    let mut table: BTreeMap<&str, Outcomes> = BTreeMap::new();
    // `RSREC_CAMPAIGN_SCALE=N` (fuzz/soak.sh) multiplies the random mutations and reseeds.
    let scale: u64 = std::env::var("RSREC_CAMPAIGN_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut rng = 0xC0FF_EE12_3456_789Au64 ^ scale.wrapping_mul(0x9E37_79B9_7F4A_7C15);

    // Bit flips as they are: the checksums catch them.
    let o = table.entry("bit flip").or_default();
    for i in 0..150 * scale {
        let mut b = bytes.clone();
        let pos = (xorshift(&mut rng) % b.len() as u64) as usize;
        b[pos] ^= 1 << (xorshift(&mut rng) % 8);
        run_one(b, &format!("flip {i} at {pos}"), tmp.path(), o);
    }
    // Bit flips with every checksum recomputed: the damage reaches the parsers.
    let o = table.entry("bit flip, CRCs fixed").or_default();
    for i in 0..150 * scale {
        let mut b = bytes.clone();
        let pos = (xorshift(&mut rng) % b.len() as u64) as usize;
        b[pos] ^= 1 << (xorshift(&mut rng) % 8);
        fix_file(&mut b);
        run_one(b, &format!("fixed flip {i} at {pos}"), tmp.path(), o);
    }
    // Every record-header field of every record set to extremes (CRCs fixed).
    let fields: [(usize, usize); 9] = [
        (REC_PAYLOAD_LEN, 4),
        (REC_TYPE, 1),
        (REC_STREAM, 1),
        (REC_CODEC, 1),
        (REC_DOMAIN, 1),
        (REC_FLAGS, 1),
        (REC_FRAME_NUMBER, 8),
        (REC_DEVICE_TS, 8),
        (REC_HOST_TS, 8),
    ];
    let o = table.entry("record field extremes").or_default();
    for (k, &(start, _)) in spans.iter().enumerate() {
        for &(off, len) in &fields {
            for fill in [0x00u8, 0xFF, 0x7F] {
                let mut b = bytes.clone();
                b[start + off..start + off + len].fill(fill);
                fix_file(&mut b);
                run_one(
                    b,
                    &format!("record {k} field +{off} = {fill:#04x}"),
                    tmp.path(),
                    o,
                );
            }
        }
    }
    // Words of every payload set to extremes (counts, lengths, dimensions, offsets).
    let o = table.entry("payload word extremes").or_default();
    for (k, &(start, end)) in spans.iter().enumerate() {
        let payload = start + RECORD_HEADER_LEN..end;
        for off in payload.step_by(4).take(12 * scale as usize) {
            for word in [u32::MAX, 0, 0x8000_0000] {
                let mut b = bytes.clone();
                let n = 4.min(end - off);
                b[off..off + n].copy_from_slice(&word.to_le_bytes()[..n]);
                fix_file(&mut b);
                run_one(
                    b,
                    &format!("record {k} payload +{off} = {word:#x}"),
                    tmp.path(),
                    o,
                );
            }
        }
    }
    // Words of the file header set to extremes (stream counts, sizes, string lengths).
    let o = table.entry("header word extremes").or_default();
    for off in (PREAMBLE_LEN..first - 4).step_by(4) {
        for word in [u32::MAX, 0] {
            let mut b = bytes.clone();
            b[off..off + 4].copy_from_slice(&word.to_le_bytes());
            fix_file(&mut b);
            run_one(b, &format!("header +{off} = {word:#x}"), tmp.path(), o);
        }
    }
    // Truncations anywhere.
    let o = table.entry("truncation").or_default();
    for i in 0..80 * scale {
        let cut = (xorshift(&mut rng) % bytes.len() as u64) as usize;
        run_one(
            bytes[..cut].to_vec(),
            &format!("cut {i} at {cut}"),
            tmp.path(),
            o,
        );
    }

    eprintln!(
        "{:<24} {:>7} {:>7} {:>9} {:>10} {:>9} {:>8}",
        "mutation", "inputs", "opened", "verify ok", "rec. clean", "rec. lossy", "refused"
    );
    let mut total = 0;
    for (name, o) in &table {
        total += o.inputs;
        eprintln!(
            "{name:<24} {:>7} {:>7} {:>9} {:>10} {:>9} {:>8}",
            o.inputs,
            o.opened,
            o.verified_ok,
            o.recovered_clean,
            o.recovered_lossy,
            o.recover_refused
        );
    }
    assert!(total >= 1000 * scale.min(1), "{total} inputs");
}
