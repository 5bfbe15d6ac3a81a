//! Writes the structured seed corpora of the fuzz targets, or repairs the checksums of an
//! input the way the targets' second pass does.
//!
//! ```text
//! cargo run --release --example gen_seeds -- seeds CORPUS_DIR
//! cargo run --release --example gen_seeds -- fix-file IN OUT     # reader target, pass 2
//! cargo run --release --example gen_seeds -- fix-records IN OUT  # records target, pass 2
//! cargo run --release --example gen_seeds -- fix-header IN OUT   # header target, pass 2
//! ```
//!
//! `seeds` writes CORPUS_DIR/<target>/seed-*: small `.rsrec` files with every record type,
//! index blocks, closed, unclosed, torn and damaged variants for `reader`; their headers
//! for `header`; their records and payloads for `records`; encoded frames for the decoders.

use std::path::{Path, PathBuf};

use rsrec::codec::DepthCodec;
use rsrec::container::format::{record_type, ts_domain, MAGIC, PREAMBLE_LEN};
use rsrec::container::index::{BlockEntry, IndexBlock};
use rsrec::container::record::{encode_imu_batch, parse_header, payload};
use rsrec::container::{
    ColorFrameEntry, DeviceInfo, Distortion, Event, Extrinsics, FileHeader, Gap, GapReason,
    ImuSample, IndexEntry, Intrinsics, PixelFormat, RecordHeader, StreamDescriptor, StreamKind,
    VideoSegment, Writer, WriterOptions,
};

const W: u32 = 8;
const H: u32 = 6;

fn frame(seed: u32, w: u32, h: u32) -> Vec<u16> {
    (0..w * h)
        .map(|i| match (i * 7 + seed) % 11 {
            0 => 0,
            1 => 65535,
            k => (600 + seed * 3 + i + k * 40) as u16,
        })
        .collect()
}

fn header(depth_w: u32, depth_h: u32) -> FileHeader {
    let mut depth = StreamDescriptor::depth(0, depth_w, depth_h, 30.0);
    depth.intrinsics = Some(Intrinsics {
        fx: 421.5,
        fy: 421.25,
        ppx: 4.0,
        ppy: 3.0,
        model: Distortion::BrownConrady,
        coeffs: vec![0.0, 0.1, 0.0, 0.0, -0.01],
    });
    depth.extrinsics = Some(Extrinsics {
        to_stream: 1,
        rotation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        translation: [0.015, 0.0, 0.0],
    });
    let mut color = StreamDescriptor::depth(1, 640, 480, 30.0);
    color.kind = StreamKind::Color;
    color.name = "color".into();
    color.format = PixelFormat::Rgb8;
    color.depth_units = 0.0;
    color.properties = vec![("video_codec".into(), "libx265".into())];
    let mut gyro = StreamDescriptor::depth(2, 0, 0, 200.0);
    gyro.kind = StreamKind::Gyro;
    gyro.name = "gyro".into();
    gyro.format = PixelFormat::MotionXyz32f;
    let mut accel = gyro.clone();
    accel.id = 3;
    accel.kind = StreamKind::Accel;
    accel.name = "accel".into();
    let mut h = FileHeader::new(
        DeviceInfo {
            name: "Intel RealSense D435I".into(),
            serial: "123456789".into(),
            model: "D400".into(),
            firmware: "5.16.0.1".into(),
            properties: vec![("usb".into(), "3.2".into())],
        },
        vec![depth, color, gyro, accel],
    );
    h.created_utc_us = 1_700_000_000_000_000;
    h.writer = "rsrec fuzz seeds".into();
    h.metadata_json = r#"{"site":"lab"}"#.into();
    h
}

fn rec(rt: u8, stream: u8, codec: u8, n: u64) -> RecordHeader {
    RecordHeader {
        record_type: rt,
        stream,
        codec: rsrec::codec::CodecId(codec),
        ts_domain: ts_domain::GLOBAL_TIME,
        flags: 0,
        frame_number: n,
        device_ts_ms: 1000.0 + n as f64 * 33.3,
        host_ts_us: 1_700_000_000_000_000 + n as i64 * 33_333,
    }
}

/// Writes a small file with every record type; `close` finishes it, else it is dropped
/// unclosed (index blocks and a tail of unindexed records).
fn write_file(path: &Path, codec: DepthCodec, index_every: usize, close: bool) -> Vec<u8> {
    let mut w = Writer::create(
        path,
        &header(W, H),
        WriterOptions {
            overwrite: true,
            ..WriterOptions::deterministic(index_every)
        },
    )
    .unwrap();
    let seg = VideoSegment {
        segment: 0,
        file_name: "cam.color.000.mkv".into(),
        codec: "libx265".into(),
    };
    w.write_record(
        &rec(record_type::VIDEO_SEGMENT, 1, 0, 0),
        &seg.encode().unwrap(),
    )
    .unwrap();
    let mut enc = Vec::new();
    for n in 0..5u64 {
        codec
            .encode(&frame(n as u32, W, H), W, H, &mut enc)
            .unwrap();
        let fnum = if n >= 3 { n + 2 } else { n }; // frames 3 and 4 lost
        w.write_record(&rec(record_type::DEPTH_FRAME, 0, codec.id().0, fnum), &enc)
            .unwrap();
        let c = ColorFrameEntry {
            segment: 0,
            index_in_video: n,
            video_time_us: Some(n as i64 * 33_000),
        };
        w.write_record(&rec(record_type::COLOR_FRAME, 1, 0, n), &c.encode())
            .unwrap();
        let imu: Vec<ImuSample> = (0..2)
            .map(|k| ImuSample {
                frame_number: n * 2 + k,
                device_ts_ms: 1000.0 + (n * 2 + k) as f64 * 5.0,
                host_ts_us: 1_700_000_000_000_000 + (n * 2 + k) as i64 * 5000,
                xyz: [0.1, -9.8, 0.0],
            })
            .collect();
        w.write_record(
            &rec(record_type::IMU_BATCH, 2 + (n % 2) as u8, 0, n),
            &encode_imu_batch(&imu),
        )
        .unwrap();
        if n == 3 {
            let g = Gap {
                first_frame: 3,
                last_frame: 4,
                count: 2,
                reason: GapReason::QueueFull,
                detail: "compression queue full".into(),
            };
            w.write_record(&rec(record_type::GAP, 0, 0, 3), &g.encode().unwrap())
                .unwrap();
            let e = Event {
                kind: "camera_reconnected".into(),
                message: r#"{"serial":"123456789"}"#.into(),
            };
            let mut eh = RecordHeader::bare(record_type::EVENT);
            eh.host_ts_us = 1_700_000_000_100_000;
            w.write_record(&eh, &e.encode().unwrap()).unwrap();
        }
    }
    if close {
        w.finish().unwrap();
    } else {
        drop(w);
    }
    let bytes = std::fs::read(path).unwrap();
    std::fs::remove_file(path).unwrap();
    bytes
}

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn seeds(out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    let tmp = out.join(".gen_seeds.tmp.rsrec");
    let reader = out.join("reader");
    let hdr = out.join("header");
    let records = out.join("records");
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (cname, codec) in [
        ("raw", DepthCodec::Raw),
        ("lz4", DepthCodec::Lz4Planes),
        ("zstd", DepthCodec::ZstdPlanes { level: 1 }),
        ("med-rans", DepthCodec::MED_RANS),
        ("grad-rans", DepthCodec::GRAD_RANS),
        ("grad-rans32", DepthCodec::GRAD_RANS32),
    ] {
        files.push((format!("closed-{cname}"), write_file(&tmp, codec, 4, true)));
    }
    let open = write_file(&tmp, DepthCodec::Lz4Planes, 4, false);
    files.push(("unclosed-blocks".into(), open.clone()));
    files.push(("unclosed-torn".into(), open[..open.len() - 7].to_vec()));
    files.push((
        "unclosed-noblocks".into(),
        write_file(&tmp, DepthCodec::Raw, 1 << 20, false),
    ));
    // The format's own test vectors (every record type, infrared frames of every codec).
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/v3");
    for name in ["all-records.rsrec", "unclosed.rsrec"] {
        let bytes = std::fs::read(vectors.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", vectors.join(name).display()));
        files.push((format!("fixture-v3-{name}"), bytes));
    }
    // Looked up by name: positions move whenever a codec is added above.
    fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a (String, Vec<u8>) {
        files
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no seed file {name}"))
    }
    let closed = file(&files, "closed-lz4").1.clone();
    // Final index cut off: opens through the index blocks.
    files.push(("closed-cut".into(), closed[..closed.len() - 40].to_vec()));
    // A flipped byte in the middle: damage that verify must report.
    let mut flipped = closed.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    files.push(("closed-flipped".into(), flipped));

    for (name, bytes) in &files {
        put(&reader, name, bytes);
        let (_, first, _) = FileHeader::decode(bytes).unwrap();
        let first = first as usize;
        put(&hdr, name, &bytes[..first]);
        put(&records, &format!("{name}-all"), &bytes[first..]);
    }
    // Every single record and payload of one closed and one unclosed file.
    for (name, bytes) in [file(&files, "closed-lz4"), file(&files, "unclosed-blocks")] {
        let (_, first, _) = FileHeader::decode(bytes).unwrap();
        let mut at = first;
        let mut i = 0;
        while let Ok(r) = parse_header(bytes, at) {
            let whole = &bytes[r.offset as usize..r.end() as usize];
            let t = r.header.record_type;
            put(&records, &format!("{name}-rec{i:02}-type{t:02x}"), whole);
            put(
                &records,
                &format!("{name}-payload{i:02}-type{t:02x}"),
                payload(bytes, &r),
            );
            at = r.end();
            i += 1;
        }
    }
    // A hand-made index block and header variants.
    let e = IndexEntry {
        offset: 100,
        frame_number: 1,
        device_ts_ms: 1.0,
        host_ts_us: 2,
    };
    let be = BlockEntry {
        stream: 0,
        record_type: record_type::DEPTH_FRAME,
        payload_len: 96,
        entry: e,
    };
    put(&records, "index-block", &IndexBlock::encode(0, &[be, be]));
    let mut empty = header(W, H);
    empty.streams.clear();
    empty.device = DeviceInfo::default();
    empty.metadata_json.clear();
    put(&hdr, "no-streams", &empty.encode().unwrap());
    let mut big = header(16384, 16384);
    big.streams[0].intrinsics.as_mut().unwrap().coeffs = vec![0.5; 16];
    put(&hdr, "max-dims", &big.encode().unwrap());
    put(&hdr, "magic-only", &MAGIC);
    let mut pre = big.encode().unwrap();
    pre.truncate(PREAMBLE_LEN);
    put(&hdr, "preamble-only", &pre);

    // Codec payloads: two size bytes, then the encoded frame.
    for (dir, codec) in [
        ("decode_raw", DepthCodec::Raw),
        ("decode_lz4_planes", DepthCodec::Lz4Planes),
        ("decode_zstd_planes", DepthCodec::ZstdPlanes { level: 1 }),
        ("decode_med_rans", DepthCodec::MED_RANS),
        ("decode_med_rans", "med-rans:3".parse().unwrap()),
        ("decode_grad_rans", DepthCodec::GRAD_RANS),
        ("decode_grad_rans", "grad-rans:3".parse().unwrap()),
        ("decode_grad_rans32", DepthCodec::GRAD_RANS32),
        ("decode_grad_rans32", "grad-rans32:3".parse().unwrap()),
    ] {
        for (w, h, s) in [(1, 1, 0), (8, 6, 1), (64, 64, 2), (13, 7, 3), (64, 1, 4)] {
            let f = frame(s, w, h);
            let mut enc = Vec::new();
            codec.encode(&f, w, h, &mut enc).unwrap();
            let mut input = vec![(w - 1) as u8, (h - 1) as u8];
            input.extend_from_slice(&enc);
            let tag = codec.to_string().replace([':', '%'], "_");
            put(&out.join(dir), &format!("{w}x{h}-{tag}"), &input);
            if dir == "decode_raw" {
                let mut input = vec![(w - 1) as u8, (h - 1) as u8];
                for v in &f {
                    input.extend_from_slice(&v.to_le_bytes());
                }
                put(&out.join("codec_roundtrip"), &format!("{w}x{h}"), &input);
            }
        }
    }
    put(&out.join("codec_roundtrip"), "zeros", &[63, 63]);
    println!("seeds written under {}", out.display());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| PathBuf::from(args.get(i).expect("missing argument"));
    match args.first().map(String::as_str) {
        Some("seeds") => seeds(&arg(1)),
        Some(cmd @ ("fix-file" | "fix-records" | "fix-header")) => {
            let mut b = std::fs::read(arg(1)).unwrap();
            match cmd {
                "fix-file" => {
                    rsrec_fuzz::fix_file(&mut b);
                }
                "fix-records" => {
                    rsrec_fuzz::fix_records(&mut b, 0);
                }
                _ => b = rsrec_fuzz::header_pass2(&b),
            }
            std::fs::write(arg(2), b).unwrap();
        }
        _ => {
            eprintln!("usage: gen_seeds seeds DIR | fix-file|fix-records|fix-header IN OUT");
            std::process::exit(2);
        }
    }
}
