//! Generates the format test vectors in `fixtures/` (run through `tools/gen-fixtures.sh`).
//!
//! `gen_fixtures DIR` writes the vectors into DIR; `gen_fixtures --verify DIR` regenerates
//! them in a temporary folder and fails if any byte differs from the files in DIR. Every
//! input is fixed (creation time, writer name, timestamps, index-block spacing), so the
//! output depends only on the format code and the pinned codec crates.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rsrec::codec::{CodecId, DepthCodec};
use rsrec::container::format::{record_type, ts_domain};
use rsrec::container::record::encode_imu_batch;
use rsrec::container::{
    ColorFrameEntry, DeviceInfo, Distortion, Event, Extrinsics, FileHeader, FrameMetadata, Gap,
    GapReason, ImuSample, Intrinsics, PixelFormat, RecordHeader, StreamDescriptor, StreamKind,
    VideoSegment, Writer, WriterOptions,
};
use serde_json::json;

const W: u32 = 16;
/// The infrared stream's id.
const IR: u8 = 4;
const H: u32 = 12;
const T0_US: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

fn header() -> FileHeader {
    let mut depth = StreamDescriptor::depth(0, W, H, 30.0);
    depth.intrinsics = Some(Intrinsics {
        fx: 8.5,
        fy: 8.25,
        ppx: 7.5,
        ppy: 5.75,
        model: Distortion::BrownConrady,
        coeffs: vec![0.125, -0.25, 0.0, 0.0, 0.0625],
    });
    depth.extrinsics = Some(Extrinsics {
        to_stream: 1,
        rotation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        translation: [0.015, 0.0, 0.0],
    });
    let stream = |id, kind, name: &str, w, h, format, fps| StreamDescriptor {
        id,
        kind,
        name: name.into(),
        width: w,
        height: h,
        format,
        fps,
        depth_units: 0.0,
        intrinsics: None,
        extrinsics: None,
        properties: Vec::new(),
    };
    let mut color = stream(
        1,
        StreamKind::Color,
        "color",
        64,
        48,
        PixelFormat::Rgb8,
        30.0,
    );
    color.properties = vec![("video_codec".into(), "libx265".into())];
    FileHeader {
        format_version: 1,
        writer: "rsrec fixtures".into(),
        created_utc_us: T0_US,
        device: DeviceInfo {
            name: "Intel RealSense D435I".into(),
            serial: "000000000001".into(),
            model: "D400".into(),
            firmware: "5.16.0.1".into(),
            properties: vec![("usb_type".into(), "3.2".into())],
        },
        streams: vec![
            depth,
            color,
            stream(
                2,
                StreamKind::Gyro,
                "gyro",
                0,
                0,
                PixelFormat::MotionXyz32f,
                200.0,
            ),
            stream(
                3,
                StreamKind::Accel,
                "accel",
                0,
                0,
                PixelFormat::MotionXyz32f,
                63.0,
            ),
            // §5.9 (version 3): the left imager, as large as the depth.
            StreamDescriptor::infrared(IR, 1, W, H, 30.0),
        ],
        metadata_json: r#"{"fixture":"all-records","note":"test vector"}"#.into(),
    }
}

/// Depth frame `i`: a ramp with holes, a 65535 outlier and per-frame offset.
fn depth_frame(i: u64) -> Vec<u16> {
    (0..W * H)
        .map(|p| match (p as u64 + i) % 23 {
            0 => 0,
            1 if i % 2 == 0 => 65535,
            _ => (1000 + p * 3 + i as u32 * 7) as u16,
        })
        .collect()
}

/// Infrared frame `i`: a ramp over all 256 values with black and saturated pixels.
fn infrared_frame(i: u64) -> Vec<u8> {
    (0..W * H)
        .map(|p| match (p as u64 + i) % 17 {
            0 => 0,
            1 => 255,
            _ => ((p * 5 + i as u32 * 3) % 256) as u8,
        })
        .collect()
}

/// Written frame k uses `CODECS[k]`. A new codec goes at the end, with one more frame, so
/// that the frames already in the fixtures stay exactly as they are.
const CODECS: [DepthCodec; 6] = [
    DepthCodec::Raw,
    DepthCodec::Lz4Planes,
    DepthCodec::ZstdPlanes { level: 3 },
    DepthCodec::MED_RANS,
    DepthCodec::GRAD_RANS,
    DepthCodec::GRAD_RANS32,
];
/// Frame numbers 0..FRAMES; number 3 is a gap, so FRAMES - 1 depth frames are written.
const FRAMES: u64 = CODECS.len() as u64 + 1;

fn rec(t: u8, stream: u8, frame: u64, codec: CodecId) -> RecordHeader {
    RecordHeader {
        record_type: t,
        stream,
        codec,
        ts_domain: ts_domain::HARDWARE_CLOCK,
        flags: 0,
        frame_number: frame,
        device_ts_ms: 1000.0 + frame as f64 * 100.0 / 3.0,
        host_ts_us: T0_US + frame as i64 * 33_333,
    }
}

/// Writes all record types; returns the expected content as JSON.
fn write_records(w: &mut Writer) -> serde_json::Value {
    let seg = VideoSegment {
        segment: 0,
        file_name: "cam.color.000.mkv".into(),
        codec: "libx265".into(),
    };
    w.write_record(
        &rec(record_type::VIDEO_SEGMENT, 1, 0, CodecId::NONE),
        &seg.encode().unwrap(),
    )
    .unwrap();
    let mut depth = Vec::new();
    let mut infrared = Vec::new();
    let mut payload = Vec::new();
    for i in 0..FRAMES {
        if i == 3 {
            let gap = Gap {
                first_frame: 3,
                last_frame: 3,
                count: 1,
                reason: GapReason::QueueFull,
                detail: "fixture gap".into(),
            };
            w.write_record(
                &rec(record_type::GAP, 0, 3, CodecId::NONE),
                &gap.encode().unwrap(),
            )
            .unwrap();
            continue;
        }
        // Frame 3 is a gap: count written frames so that every codec appears.
        let codec = CODECS[(i - (i > 3) as u64) as usize % CODECS.len()];
        let d = depth_frame(i);
        codec.encode(&d, W, H, &mut payload).unwrap();
        let h = rec(record_type::DEPTH_FRAME, 0, i, codec.id());
        w.write_record(&h, &payload).unwrap();
        // §5.8 The frame's metadata (version 2).
        let meta = FrameMetadata {
            pairs: vec![
                ("frame_counter".into(), i as i64),
                ("actual_exposure".into(), 8500 + i as i64),
            ],
        };
        let mh = RecordHeader {
            record_type: record_type::FRAME_METADATA,
            codec: CodecId::NONE,
            ..h
        };
        w.write_record(&mh, &meta.encode().unwrap()).unwrap();
        depth.push(json!({
            "frame_number": i, "device_ts_ms": h.device_ts_ms, "host_ts_us": h.host_ts_us,
            "codec": codec.id().name(), "codec_id": codec.id().0, "samples": d,
            "metadata": {"frame_counter": i, "actual_exposure": 8500 + i},
        }));
        // §5.9 The infrared frame of the same exposure, with the same codec (version 3).
        let ir = infrared_frame(i);
        codec
            .encode(&rsrec::codec::widen_y8(&ir), W, H, &mut payload)
            .unwrap();
        let ih = rec(record_type::INFRARED_FRAME, IR, i, codec.id());
        w.write_record(&ih, &payload).unwrap();
        infrared.push(json!({
            "frame_number": i, "device_ts_ms": ih.device_ts_ms, "host_ts_us": ih.host_ts_us,
            "codec": codec.id().name(), "codec_id": codec.id().0, "pixels": ir,
        }));
        let c = ColorFrameEntry {
            segment: 0,
            index_in_video: i,
            video_time_us: Some(i as i64 * 33_000),
        };
        w.write_record(
            &rec(record_type::COLOR_FRAME, 1, i, CodecId::NONE),
            &c.encode(),
        )
        .unwrap();
        let gyro: Vec<ImuSample> = (0..3)
            .map(|k| ImuSample {
                frame_number: i * 3 + k,
                device_ts_ms: 1000.0 + (i * 3 + k) as f64 * 5.0,
                host_ts_us: T0_US + (i * 3 + k) as i64 * 5_000,
                xyz: [0.5 * k as f32, -0.25, 0.125],
            })
            .collect();
        w.write_record(
            &rec(record_type::IMU_BATCH, 2, i * 3, CodecId::NONE),
            &encode_imu_batch(&gyro),
        )
        .unwrap();
    }
    let ev = Event {
        kind: "note".into(),
        message: "end of fixture".into(),
    };
    let mut eh = RecordHeader::bare(record_type::EVENT);
    eh.host_ts_us = T0_US + 1_000_000;
    w.write_record(&eh, &ev.encode().unwrap()).unwrap();
    json!({
        "depth_stream": 0, "width": W, "height": H, "depth_frames": depth,
        "streams": 5, "infrared_stream": IR, "infrared_frames": infrared,
        "gaps": [{"stream": 0, "first_frame": 3, "last_frame": 3, "count": 1, "reason": "queue_full"}],
        "color_frames": FRAMES - 1, "color_video_time_step_us": 33_000, "imu_batches": FRAMES - 1, "events": 1,
    })
}

fn generate(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let closed = dir.join("all-records.rsrec");
    let unclosed = dir.join("unclosed.rsrec");
    let opts = || WriterOptions {
        overwrite: true,
        ..WriterOptions::deterministic(4)
    };
    let mut w = Writer::create(&closed, &header(), opts()).unwrap();
    let expected = write_records(&mut w);
    w.finish().unwrap();

    // The same records, writer dropped without finishing, then the last 10 bytes torn off.
    let mut w = Writer::create(&unclosed, &header(), opts()).unwrap();
    write_records(&mut w);
    drop(w);
    let bytes = std::fs::read(&unclosed).unwrap();
    std::fs::write(&unclosed, &bytes[..bytes.len() - 10]).unwrap();

    let doc = json!({
        "format_version": rsrec::container::format::FORMAT_VERSION,
        "files": {
            "all-records.rsrec": {"closed": true, "content": expected},
            "unclosed.rsrec": {"closed": false, "torn_tail_bytes": "last record cut by 10 bytes",
                "note": "same records as all-records.rsrec, no final index; the index block written on drop is torn"},
        },
    });
    std::fs::write(
        dir.join("expected.json"),
        serde_json::to_string_pretty(&doc).unwrap() + "\n",
    )
    .unwrap();
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (verify, dir) = match args.as_slice() {
        [flag, d] if flag == "--verify" => (true, PathBuf::from(d)),
        [d] => (false, PathBuf::from(d)),
        _ => {
            eprintln!("usage: gen_fixtures [--verify] DIR");
            return ExitCode::from(2);
        }
    };
    if !verify {
        generate(&dir);
        println!("fixtures written to {}", dir.display());
        return ExitCode::SUCCESS;
    }
    let tmp = std::env::temp_dir().join(format!("rsrec-fixtures-{}", std::process::id()));
    generate(&tmp);
    let mut ok = true;
    for name in ["all-records.rsrec", "unclosed.rsrec", "expected.json"] {
        let want = std::fs::read(tmp.join(name)).unwrap();
        match std::fs::read(dir.join(name)) {
            Ok(have) if have == want => println!("{name}: identical"),
            Ok(_) => {
                eprintln!(
                    "{name}: DIFFERS from a fresh generation (format or codec output changed)"
                );
                ok = false;
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                ok = false;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
