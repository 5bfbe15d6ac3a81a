//! Codec benchmark: for every real depth set and every codec, the compression ratio
//! (total raw bytes / total compressed bytes), encode MB/s and decode MB/s of raw depth on
//! one thread, all in one run. Plain LZ4 of the raw Z16 bytes (what users do today) is the
//! reference row. Peers: 16-bit PNG (`png` crate), RVL (implemented here: the `re_rvl` crate
//! needs a newer Rust than rsrec supports), and JPEG XL lossless effort 3 and JPEG-LS through
//! Python's `imagecodecs` (`tools/bench_peers.py`, run with `$RSREC_PYTHON` or `python3`).
//! Then `med-rans` with error bounds: ratio against bound, with the largest error measured.
//! Last, infrared (format §5.9) on proxies made from the real colour frames (the data has no
//! real infrared): the lossless codecs on widened 8-bit frames against byte-wise LZ4, zstd
//! and 8-bit PNG (`RSREC_BENCH_ONLY=infrared` for that table alone).
//!
//! Run: `cargo bench --bench codecs` (data from `$RSREC_DATA_DIR` or `../shared/data`;
//! `RSREC_BENCH_SECONDS` sets the minimum timing per measurement, default 1;
//! `RSREC_BENCH_ONLY=A,B` measures only codecs whose name contains A or B; `=NAME` matches
//! exactly, e.g. `RSREC_BENCH_ONLY==med-rans,=lz4-planes`; `RSREC_BENCH_CPU_TIME=1` times
//! with the thread's CPU clock instead of the wall clock).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rsrec::codec::{decode, DepthCodec, ErrorBound};
use rsrec::source::pngdir::{
    depth_dir, list_images, list_pngs, read_depth_png, read_rgb, DepthImage,
};

const SETS: [&str; 3] = [
    "d4xx-lab-robot",
    "d435-ceiling-highacc",
    "d4xx-848x480-desk-holes",
];

/// A codec under test: plain LZ4 of the raw bytes, or one of rsrec's depth codecs.
#[derive(Clone, Copy)]
enum Subject {
    Lz4Raw,
    Png,
    Rvl,
    Rsrec(DepthCodec),
}

impl Subject {
    fn name(&self) -> String {
        match self {
            Self::Lz4Raw => "lz4 of raw bytes (reference)".into(),
            Self::Png => "PNG 16-bit (png crate, best)".into(),
            Self::Rvl => "RVL".into(),
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
            Self::Png => {
                out.clear();
                let mut e = png::Encoder::new(&mut *out, f.width, f.height);
                e.set_color(png::ColorType::Grayscale);
                e.set_depth(png::BitDepth::Sixteen);
                e.set_compression(png::Compression::Best);
                e.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
                let mut w = e.write_header().unwrap();
                let be: Vec<u8> = f.data.iter().flat_map(|v| v.to_be_bytes()).collect();
                w.write_image_data(&be).unwrap();
            }
            Self::Rvl => rvl::encode(&f.data, out),
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
            Self::Png => {
                let mut r = png::Decoder::new(enc).read_info().unwrap();
                r.next_frame(scratch).unwrap();
                for (o, b) in out.iter_mut().zip(scratch.chunks_exact(2)) {
                    *o = u16::from_be_bytes([b[0], b[1]]);
                }
            }
            Self::Rvl => rvl::decode(enc, out),
            Self::Rsrec(c) => decode(c.id(), enc, f.width, f.height, out).unwrap(),
        }
    }
}

/// This thread's CPU time in seconds.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Runs `f` over all frames repeatedly for at least `min` and returns seconds per pass:
/// wall-clock seconds, or this thread's CPU seconds with `RSREC_BENCH_CPU_TIME=1` (steadier on
/// a loaded machine, where the wall clock also counts time the thread was not running).
fn time_passes(min: Duration, mut f: impl FnMut()) -> f64 {
    let cpu = std::env::var("RSREC_BENCH_CPU_TIME").is_ok_and(|v| v == "1");
    f(); // warm-up
    let t = Instant::now();
    let c = thread_cpu_s();
    let mut passes = 0u32;
    while t.elapsed() < min || passes < 2 {
        f();
        passes += 1;
    }
    let s = if cpu {
        thread_cpu_s() - c
    } else {
        t.elapsed().as_secs_f64()
    };
    s / passes as f64
}

struct Row {
    max_err: u32,
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
    let bound = match subject {
        Subject::Rsrec(c) => c.bound(),
        _ => ErrorBound::Lossless,
    };
    let mut max_err = 0u32;
    for (f, e) in frames.iter().zip(&encoded) {
        subject.decode(f, e, &mut out, &mut scratch);
        for (&o, &v) in out.iter().zip(&f.data) {
            let err = o.abs_diff(v) as u32;
            assert!(
                err <= bound.allowed(v) && (v == 0) == (o == 0),
                "{}: {v} decoded as {o}",
                subject.name()
            );
            max_err = max_err.max(err);
        }
    }
    let dec_s = time_passes(min, || {
        for (f, e) in frames.iter().zip(&encoded) {
            subject.decode(f, e, &mut out, &mut scratch);
            black_box(&out);
        }
    });
    let mb = raw as f64 / 1e6;
    Row {
        max_err,
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
    // The lossy rows: the default lossy codec (grad-rans32, what --depth-max-error records
    // with the default codec) and med-rans, at the same bounds.
    let lossy: Vec<DepthCodec> = ["grad-rans32", "med-rans"]
        .iter()
        .flat_map(|c| ["1", "2", "5", "0.5%", "1%"].map(|b| format!("{c}:{b}")))
        .map(|name| name.parse().unwrap())
        .collect();
    let mut subjects = vec![
        Subject::Lz4Raw,
        Subject::Rsrec(DepthCodec::Raw),
        Subject::Rsrec(DepthCodec::Lz4Planes),
        Subject::Rsrec(DepthCodec::ZstdPlanes { level: 1 }),
        Subject::Rsrec(DepthCodec::ZstdPlanes { level: 3 }),
        Subject::Rsrec(DepthCodec::ZstdPlanes { level: 9 }),
        Subject::Png,
        Subject::Rvl,
        Subject::Rsrec(DepthCodec::MED_RANS),
        Subject::Rsrec(DepthCodec::GRAD_RANS),
        Subject::Rsrec(DepthCodec::GRAD_RANS32),
    ];
    subjects.extend(lossy.iter().map(|c| Subject::Rsrec(*c)));
    let only = std::env::var("RSREC_BENCH_ONLY").ok();
    // Comma-separated; an item matches names containing it, or exactly with a leading '='.
    let wanted = |name: &str| {
        only.as_ref().is_none_or(|o| {
            o.split(',').any(|it| match it.strip_prefix('=') {
                Some(exact) => name == exact,
                None => name.contains(it),
            })
        })
    };
    println!("rsrec codec benchmark: one thread, MB = 10^6 bytes of raw Z16 depth");
    println!("lossy rows (CODEC:BOUND, bound in depth units = mm here, or % of the depth):");
    println!("every decoded pixel checked against the bound; 'max err' is the largest error seen");
    println!(
        "{:<30} {:<32} {:>8} {:>12} {:>12} {:>8}",
        "set", "codec", "ratio", "encode MB/s", "decode MB/s", "max err"
    );
    let line = |set: &str, name: &str, ratio: f64, enc: f64, dec: f64, err: &str| {
        println!("{set:<30} {name:<32} {ratio:>7.2}x {enc:>12.0} {dec:>12.0} {err:>8}");
    };
    // (raw bytes, compressed bytes, encode seconds, decode seconds, max error)
    let mut totals: Vec<(u64, u64, f64, f64, u32)> = vec![(0, 0, 0.0, 0.0, 0); subjects.len()];
    for set in SETS {
        if only.as_deref() == Some("infrared") {
            break;
        }
        let files = list_pngs(&depth_dir(&data.join(set))).expect("list PNGs");
        // Test mode (`cargo test --benches`) checks every codec on a few frames only.
        let take = if quick { 3 } else { files.len() };
        let frames: Vec<DepthImage> = files
            .iter()
            .take(take)
            .map(|f| read_depth_png(f).unwrap())
            .collect();
        let raws: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| f.data.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        for (i, s) in subjects.iter().enumerate() {
            if !wanted(&s.name()) {
                continue;
            }
            let r = measure(*s, &frames, &raws, min);
            let label = format!("{set} ({})", frames.len());
            line(
                &label,
                &s.name(),
                r.ratio,
                r.enc_mbs,
                r.dec_mbs,
                &r.max_err.to_string(),
            );
            let t = &mut totals[i];
            t.0 += r.raw;
            t.1 += r.compressed;
            t.2 += r.raw as f64 / 1e6 / r.enc_mbs;
            t.3 += r.raw as f64 / 1e6 / r.dec_mbs;
            t.4 = t.4.max(r.max_err);
        }
    }
    for (s, t) in subjects.iter().zip(&totals) {
        if t.0 > 0 {
            let mb = t.0 as f64 / 1e6;
            let ratio = t.0 as f64 / t.1 as f64;
            line(
                "ALL SETS",
                &s.name(),
                ratio,
                mb / t.2,
                mb / t.3,
                &t.4.to_string(),
            );
        }
    }
    python_peers(&data, &line, &wanted, quick);
    if only.is_none() || only.as_deref() == Some("infrared") {
        infrared_proxies(&data, quick, min);
    }
}

/// Infrared (format §5.9). The test data has no real D4xx infrared, so the proxies are 8-bit
/// grey images of the same scenes: the luma (BT.601) of each set's real colour frames, and
/// the same with a fixed projector-dot pattern added (one pixel in 19 brightened by 70, as
/// the D435's emitter leaves dots on every surface). Each is coded as rsrec stores infrared
/// (widened to 16-bit samples through the lossless depth codecs) and, for reference, as
/// bytes by LZ4, zstd level 1 and 8-bit PNG. Ratios are against 1 byte a pixel, speeds in MB
/// of 8-bit pixels; every frame is decoded and compared.
fn infrared_proxies(data: &std::path::Path, quick: bool, min: Duration) {
    println!();
    println!("infrared proxies (format §5.9; no real infrared in the data): luma of the real");
    println!("colour frames, and with a projector-dot pattern; ratio against 1 byte a pixel");
    println!(
        "{:<40} {:<28} {:>8} {:>12} {:>12}",
        "set", "codec", "ratio", "encode MB/s", "decode MB/s"
    );
    let codecs = [
        DepthCodec::Lz4Planes,
        DepthCodec::ZstdPlanes { level: 1 },
        DepthCodec::MED_RANS,
        DepthCodec::GRAD_RANS,
        DepthCodec::GRAD_RANS32,
    ];
    let bytes_names = [
        "lz4 of the bytes",
        "zstd-1 of the bytes",
        "PNG 8-bit (best)",
    ];
    // Per row: (raw bytes, compressed bytes, encode seconds).
    let mut totals = vec![(0u64, 0u64, 0.0f64); 2 * (codecs.len() + bytes_names.len())];
    for set in SETS {
        let files = list_images(&data.join(set).join("color"), &["png", "jpg", "jpeg"])
            .expect("list colour images");
        let take = if quick { 2 } else { files.len().min(100) };
        let luma: Vec<DepthImage> = files
            .iter()
            .take(take)
            .map(|f| {
                let img = read_rgb(f).unwrap();
                let data = img
                    .data
                    .chunks_exact(3)
                    .map(|p| {
                        let y = 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
                        y.round().min(255.0) as u16
                    })
                    .collect();
                DepthImage {
                    width: img.width,
                    height: img.height,
                    data,
                }
            })
            .collect();
        let dotted: Vec<DepthImage> = luma
            .iter()
            .map(|f| {
                let mut data = f.data.clone();
                for (i, v) in data.iter_mut().enumerate() {
                    let h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
                    if h % 19 == 0 {
                        *v = (*v + 70).min(255);
                    }
                }
                DepthImage { data, ..*f }
            })
            .collect();
        for (variant, frames) in [("luma", &luma), ("luma + dots", &dotted)] {
            let label = format!("{set} {variant} ({})", frames.len());
            let t0 = if variant == "luma" {
                0
            } else {
                totals.len() / 2
            };
            let raws: Vec<Vec<u8>> = frames
                .iter()
                .map(|f| f.data.iter().flat_map(|v| v.to_le_bytes()).collect())
                .collect();
            for (i, c) in codecs.iter().enumerate() {
                let r = measure(Subject::Rsrec(*c), frames, &raws, min);
                // `measure` counts 2 bytes a sample; infrared has 1.
                let (ratio, enc, dec) = (r.ratio / 2.0, r.enc_mbs / 2.0, r.dec_mbs / 2.0);
                println!(
                    "{label:<40} {:<28} {ratio:>7.2}x {enc:>12.0} {dec:>12.0}",
                    c.to_string()
                );
                let t = &mut totals[t0 + i];
                t.0 += r.raw / 2;
                t.1 += r.compressed;
                t.2 += r.raw as f64 / 2.0 / 1e6 / enc;
            }
            let bytes: Vec<Vec<u8>> = frames
                .iter()
                .map(|f| f.data.iter().map(|&v| v as u8).collect())
                .collect();
            for (j, name) in bytes_names.iter().enumerate() {
                let encode = |f: &DepthImage, b: &[u8]| -> Vec<u8> {
                    match j {
                        0 => lz4_flex::block::compress(b),
                        1 => zstd::bulk::compress(b, 1).unwrap(),
                        _ => {
                            let mut out = Vec::new();
                            let mut e = png::Encoder::new(&mut out, f.width, f.height);
                            e.set_color(png::ColorType::Grayscale);
                            e.set_depth(png::BitDepth::Eight);
                            e.set_compression(png::Compression::Best);
                            e.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
                            let mut w = e.write_header().unwrap();
                            w.write_image_data(b).unwrap();
                            drop(w);
                            out
                        }
                    }
                };
                let mut encoded = Vec::new();
                let s = time_passes(min, || {
                    encoded = frames
                        .iter()
                        .zip(&bytes)
                        .map(|(f, b)| encode(f, b))
                        .collect();
                });
                // The references must give the frames back too.
                for ((f, b), e) in frames.iter().zip(&bytes).zip(&encoded) {
                    let back = match j {
                        0 => lz4_flex::block::decompress(e, b.len()).unwrap(),
                        1 => zstd::bulk::decompress(e, b.len()).unwrap(),
                        _ => {
                            let mut r = png::Decoder::new(e.as_slice()).read_info().unwrap();
                            let mut out = vec![0u8; (f.width * f.height) as usize];
                            r.next_frame(&mut out).unwrap();
                            out
                        }
                    };
                    assert!(&back == b, "{name}: a frame did not come back");
                }
                let raw: u64 = bytes.iter().map(|b| b.len() as u64).sum();
                let comp: u64 = encoded.iter().map(|e| e.len() as u64).sum();
                let enc = raw as f64 / 1e6 / s;
                println!(
                    "{label:<40} {name:<28} {:>7.2}x {enc:>12.0} {:>12}",
                    raw as f64 / comp as f64,
                    "-"
                );
                let t = &mut totals[t0 + codecs.len() + j];
                t.0 += raw;
                t.1 += comp;
                t.2 += s;
            }
        }
    }
    let names: Vec<String> = codecs
        .iter()
        .map(|c| c.to_string())
        .chain(bytes_names.iter().map(|s| s.to_string()))
        .collect();
    for (k, t) in totals.iter().enumerate() {
        let variant = if k < names.len() {
            "luma"
        } else {
            "luma + dots"
        };
        let name = &names[k % names.len()];
        println!(
            "{:<40} {name:<28} {:>7.2}x {:>12.0} {:>12}",
            format!("ALL SETS {variant}"),
            t.0 as f64 / t.1.max(1) as f64,
            t.0 as f64 / 1e6 / t.2.max(1e-12),
            ""
        );
    }
}

/// Prints one result row: set, codec, ratio, encode MB/s, decode MB/s, max error.
type PrintRow = dyn Fn(&str, &str, f64, f64, f64, &str);

/// JPEG XL and JPEG-LS through `tools/bench_peers.py` (imagecodecs); says so loudly when
/// the package or Python is missing instead of printing a figure.
fn python_peers(
    data: &std::path::Path,
    line: &PrintRow,
    wanted: &dyn Fn(&str) -> bool,
    quick: bool,
) {
    if quick || !(wanted("JPEG XL") || wanted("JPEG-LS")) {
        return;
    }
    let python = std::env::var("RSREC_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/bench_peers.py");
    println!("JPEG XL / JPEG-LS: imagecodecs (libjxl, CharLS) from {python}, one thread, one pass; times cover the C codec calls only");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(data)
        .args(SETS)
        .output();
    let out = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => format!(
            "{{\"error\": \"{} failed: {}\"}}",
            script.display(),
            String::from_utf8_lossy(&o.stderr).trim().replace('"', "'")
        ),
        Err(e) => format!("{{\"error\": \"cannot run {python}: {e}\"}}"),
    };
    let mut totals: Vec<(String, u64, u64, f64, f64)> = Vec::new();
    for l in out.lines() {
        let field = |k: &str| -> Option<&str> {
            let i = l.find(&format!("\"{k}\": "))? + k.len() + 4;
            let rest = &l[i..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            Some(rest[..end].trim().trim_matches('"'))
        };
        if let Some(e) = field("error") {
            println!("!!!! PEER UNAVAILABLE: JPEG XL / JPEG-LS not measured: {e}");
            println!("!!!! install it with: {python} -m pip install -r tools/requirements.txt");
            continue;
        }
        let (Some(set), Some(codec), Some(raw), Some(comp), Some(es), Some(ds)) = (
            field("set"),
            field("codec"),
            field("raw").and_then(|v| v.parse::<u64>().ok()),
            field("compressed").and_then(|v| v.parse::<u64>().ok()),
            field("enc_s").and_then(|v| v.parse::<f64>().ok()),
            field("dec_s").and_then(|v| v.parse::<f64>().ok()),
        ) else {
            println!("!!!! unreadable line from {}: {l}", script.display());
            continue;
        };
        let mb = raw as f64 / 1e6;
        line(set, codec, raw as f64 / comp as f64, mb / es, mb / ds, "0");
        match totals.iter_mut().find(|t| t.0 == codec) {
            Some(t) => {
                t.1 += raw;
                t.2 += comp;
                t.3 += es;
                t.4 += ds;
            }
            None => totals.push((codec.to_string(), raw, comp, es, ds)),
        }
    }
    for (codec, raw, comp, es, ds) in totals {
        let mb = raw as f64 / 1e6;
        line(
            "ALL SETS",
            &codec,
            raw as f64 / comp as f64,
            mb / es,
            mb / ds,
            "0",
        );
    }
}

/// RVL (Wilson, "Fast Lossless Depth Image Compression", 2017): runs of zeros and non-zeros
/// and zigzag deltas between successive non-zero values, as 4-bit variable-length nibbles
/// packed into 32-bit words, most significant nibble first.
mod rvl {
    struct Writer<'a> {
        out: &'a mut Vec<u8>,
        word: u32,
        nibbles: u32,
    }
    impl Writer<'_> {
        fn vle(&mut self, mut v: u32) {
            loop {
                let mut nib = v & 7;
                v >>= 3;
                if v != 0 {
                    nib |= 8;
                }
                self.word = self.word << 4 | nib;
                self.nibbles += 1;
                if self.nibbles == 8 {
                    self.out.extend_from_slice(&self.word.to_le_bytes());
                    self.word = 0;
                    self.nibbles = 0;
                }
                if v == 0 {
                    break;
                }
            }
        }
    }

    pub fn encode(depth: &[u16], out: &mut Vec<u8>) {
        out.clear();
        let mut w = Writer {
            out,
            word: 0,
            nibbles: 0,
        };
        let (mut i, mut prev) = (0, 0i32);
        while i < depth.len() {
            let z = depth[i..].iter().take_while(|&&v| v == 0).count();
            w.vle(z as u32);
            i += z;
            let nz = depth[i..].iter().take_while(|&&v| v != 0).count();
            w.vle(nz as u32);
            for &v in &depth[i..i + nz] {
                let d = v as i32 - prev;
                w.vle(((d << 1) ^ (d >> 31)) as u32);
                prev = v as i32;
            }
            i += nz;
        }
        if w.nibbles > 0 {
            let word = w.word << (4 * (8 - w.nibbles));
            w.out.extend_from_slice(&word.to_le_bytes());
        }
    }

    struct Reader<'a> {
        data: &'a [u8],
        pos: usize,
        word: u32,
        nibbles: u32,
    }
    impl Reader<'_> {
        fn vle(&mut self) -> u32 {
            let (mut v, mut shift) = (0u32, 0);
            loop {
                if self.nibbles == 0 {
                    self.word =
                        u32::from_le_bytes(self.data[self.pos..self.pos + 4].try_into().unwrap());
                    self.pos += 4;
                    self.nibbles = 8;
                }
                let nib = self.word >> 28;
                self.word <<= 4;
                self.nibbles -= 1;
                v |= (nib & 7) << shift;
                shift += 3;
                if nib & 8 == 0 {
                    return v;
                }
            }
        }
    }

    pub fn decode(data: &[u8], out: &mut [u16]) {
        let mut r = Reader {
            data,
            pos: 0,
            word: 0,
            nibbles: 0,
        };
        let (mut i, mut prev) = (0, 0i32);
        while i < out.len() {
            let z = r.vle() as usize;
            out[i..i + z].fill(0);
            i += z;
            let nz = r.vle() as usize;
            for o in &mut out[i..i + nz] {
                let u = r.vle();
                prev += (u >> 1) as i32 ^ -((u & 1) as i32);
                *o = prev as u16;
            }
            i += nz;
        }
    }
}
