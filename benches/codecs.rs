//! Codec benchmark: for every real depth set and every codec, the compression ratio
//! (total raw bytes / total compressed bytes), encode MB/s and decode MB/s of raw depth on
//! one thread, all in one run. Plain LZ4 of the raw Z16 bytes (what users do today) is the
//! reference row.
//!
//! Run: `cargo bench --bench codecs` (data from `$RSREC_DATA_DIR` or `../shared/data`;
//! `RSREC_BENCH_SECONDS` sets the minimum timing per measurement, default 1).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rsrec::codec::{decode, DepthCodec};
use rsrec::pngdir::{depth_dir, list_pngs, read_depth_png, DepthImage};

const SETS: [&str; 3] = [
    "d4xx-lab-robot",
    "d435-ceiling-highacc",
    "d4xx-848x480-desk-holes",
];

/// A codec under test: plain LZ4 of the raw bytes, or one of rsrec's depth codecs.
#[derive(Clone, Copy)]
enum Subject {
    Lz4Raw,
    Rsrec(DepthCodec),
}

impl Subject {
    fn name(&self) -> String {
        match self {
            Self::Lz4Raw => "lz4 of raw bytes (reference)".into(),
            Self::Rsrec(c) => c.to_string(),
        }
    }

    fn encode(&self, f: &DepthImage, raw: &[u8], out: &mut Vec<u8>) {
        match self {
            Self::Lz4Raw => {
                out.resize(lz4_flex::block::get_maximum_output_size(raw.len()), 0);
                let n = lz4_flex::block::compress_into(raw, out).unwrap();
                out.truncate(n);
            }
            Self::Rsrec(c) => c.encode(&f.data, f.width, f.height, out).unwrap(),
        }
    }

    fn decode(&self, f: &DepthImage, enc: &[u8], out: &mut [u16], scratch: &mut [u8]) {
        match self {
            Self::Lz4Raw => {
                let n = lz4_flex::block::decompress_into(enc, scratch).unwrap();
                assert_eq!(n, scratch.len());
                for (o, b) in out.iter_mut().zip(scratch.chunks_exact(2)) {
                    *o = u16::from_le_bytes([b[0], b[1]]);
                }
            }
            Self::Rsrec(c) => decode(c.id(), enc, f.width, f.height, out).unwrap(),
        }
    }
}

/// Runs `f` over all frames repeatedly for at least `min` and returns seconds per pass.
fn time_passes(min: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let t = Instant::now();
    let mut passes = 0u32;
    while t.elapsed() < min || passes < 2 {
        f();
        passes += 1;
    }
    t.elapsed().as_secs_f64() / passes as f64
}

struct Row {
    ratio: f64,
    enc_mbs: f64,
    dec_mbs: f64,
    raw: u64,
    compressed: u64,
}

fn measure(subject: Subject, frames: &[DepthImage], raws: &[Vec<u8>], min: Duration) -> Row {
    let mut encoded: Vec<Vec<u8>> = vec![Vec::new(); frames.len()];
    let enc_s = time_passes(min, || {
        for ((f, raw), out) in frames.iter().zip(raws).zip(encoded.iter_mut()) {
            subject.encode(f, raw, out);
            black_box(&out);
        }
    });
    let raw: u64 = raws.iter().map(|r| r.len() as u64).sum();
    let compressed: u64 = encoded.iter().map(|e| e.len() as u64).sum();
    // Bit-exactness is part of the benchmark: a codec that is fast but wrong is no result.
    let mut out = vec![0u16; frames[0].data.len()];
    let mut scratch = vec![0u8; raws[0].len()];
    for (f, e) in frames.iter().zip(&encoded) {
        subject.decode(f, e, &mut out, &mut scratch);
        assert!(out == f.data, "{} is not lossless", subject.name());
    }
    let dec_s = time_passes(min, || {
        for (f, e) in frames.iter().zip(&encoded) {
            subject.decode(f, e, &mut out, &mut scratch);
            black_box(&out);
        }
    });
    let mb = raw as f64 / 1e6;
    Row {
        ratio: raw as f64 / compressed as f64,
        enc_mbs: mb / enc_s,
        dec_mbs: mb / dec_s,
        raw,
        compressed,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this with no timing wanted.
    let quick = !std::env::args().any(|a| a == "--bench");
    let min = Duration::from_secs_f64(
        std::env::var("RSREC_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(if quick { 0.0 } else { 1.0 }),
    );
    let data = std::env::var_os("RSREC_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    if !data.join(SETS[0]).is_dir() {
        eprintln!(
            "codec benchmark: real data not found at {} (set RSREC_DATA_DIR); nothing measured",
            data.display()
        );
        std::process::exit(if std::env::var("CI").is_ok_and(|v| v == "true") {
            1
        } else {
            0
        });
    }
    let subjects = [
        Subject::Lz4Raw,
        Subject::Rsrec(DepthCodec::Raw),
        Subject::Rsrec(DepthCodec::Lz4Planes),
        Subject::Rsrec(DepthCodec::ZstdPlanes { level: 1 }),
        Subject::Rsrec(DepthCodec::ZstdPlanes { level: 3 }),
        Subject::Rsrec(DepthCodec::ZstdPlanes { level: 9 }),
        Subject::Rsrec(DepthCodec::MED_RANS),
    ];
    println!("rsrec codec benchmark: one thread, MB = 10^6 bytes of raw Z16 depth");
    println!(
        "{:<26} {:<30} {:>8} {:>12} {:>12}",
        "set", "codec", "ratio", "encode MB/s", "decode MB/s"
    );
    let mut totals: Vec<(u64, u64, f64, f64)> = vec![(0, 0, 0.0, 0.0); subjects.len()];
    for set in SETS {
        let files = list_pngs(&depth_dir(&data.join(set))).expect("list PNGs");
        let frames: Vec<DepthImage> = files.iter().map(|f| read_depth_png(f).unwrap()).collect();
        let raws: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| f.data.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        for (i, s) in subjects.iter().enumerate() {
            let r = measure(*s, &frames, &raws, min);
            println!(
                "{:<26} {:<30} {:>7.2}x {:>12.0} {:>12.0}",
                format!("{set} ({})", frames.len()),
                s.name(),
                r.ratio,
                r.enc_mbs,
                r.dec_mbs
            );
            let t = &mut totals[i];
            t.0 += r.raw;
            t.1 += r.compressed;
            t.2 += r.raw as f64 / 1e6 / r.enc_mbs;
            t.3 += r.raw as f64 / 1e6 / r.dec_mbs;
        }
    }
    for (s, t) in subjects.iter().zip(&totals) {
        let mb = t.0 as f64 / 1e6;
        println!(
            "{:<26} {:<30} {:>7.2}x {:>12.0} {:>12.0}",
            "ALL SETS",
            s.name(),
            t.0 as f64 / t.1 as f64,
            mb / t.2,
            mb / t.3
        );
    }
}
