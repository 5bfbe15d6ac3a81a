//! Every frame of every real depth set round-trips bit-exact through every codec and
//! through `rsrec import` + the reader; `rsrec verify` passes on the imported files.

use crate::common;

use std::process::Command;

use rsrec::codec::{decode_to_vec, payload_bound, DepthCodec, ErrorBound};
use rsrec::container::Reader;
use rsrec::record::import::{import, ImportOutcome, ImportPlan};
use rsrec::source::png::PngSource;
use rsrec::source::pngdir::{depth_dir, list_pngs, read_depth_png};
use rsrec::source::Pacing;

/// `rsrec import DIR --fps 30` as it ships: the PNG source through the recording pipeline
/// (lossless mode), depth only.
fn import_pngs(
    dir: &std::path::Path,
    out: &std::path::Path,
    name: &str,
    codec: DepthCodec,
) -> ImportOutcome {
    let source = PngSource::open(dir, 30.0, 0.001, None, Pacing::AsFastAsPossible).unwrap();
    import(
        ImportPlan {
            source: Box::new(source),
            name: name.to_string(),
            out: out.to_path_buf(),
            depth_codec: rsrec::record::DepthEncoding::Fixed(codec),
            color: None,
            force: false,
            metadata: serde_json::json!({}),
            workers: None,
            stop: None,
        },
        |_| {},
    )
    .unwrap()
}

const CODECS: [DepthCodec; 7] = [
    DepthCodec::Raw,
    DepthCodec::Lz4Planes,
    DepthCodec::ZstdPlanes { level: 1 },
    DepthCodec::ZstdPlanes { level: 3 },
    DepthCodec::MED_RANS,
    DepthCodec::GRAD_RANS,
    DepthCodec::GRAD_RANS32,
];

#[test]
fn every_real_frame_round_trips_through_every_codec_and_file() {
    let _cpu = crate::common::cpu_exclusive();
    let Some(data) = common::data_dir() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    for set in common::PNG_SETS {
        let dir = data.join(set);
        let files = list_pngs(&depth_dir(&dir)).unwrap();
        let frames: Vec<_> = files.iter().map(|f| read_depth_png(f).unwrap()).collect();
        assert!(frames.len() >= 25, "{set}: only {} frames", frames.len());

        // Codec level: every frame, every codec.
        let mut enc = Vec::new();
        for codec in CODECS {
            for (i, f) in frames.iter().enumerate() {
                codec.encode(&f.data, f.width, f.height, &mut enc).unwrap();
                let back = decode_to_vec(codec.id(), &enc, f.width, f.height).unwrap();
                assert!(back == f.data, "{set} frame {i}: {codec} is not bit-exact");
            }
        }

        // File level: import with each codec, read every frame back.
        for codec in [
            DepthCodec::Lz4Planes,
            DepthCodec::ZstdPlanes { level: 3 },
            DepthCodec::MED_RANS,
            DepthCodec::GRAD_RANS,
            DepthCodec::GRAD_RANS32,
        ] {
            let report = import_pngs(
                &dir,
                out.path(),
                &format!("{set}-{}", codec.id().name()),
                codec,
            );
            assert_eq!(report.stats.depth_written as usize, frames.len());
            assert_eq!(report.stats.depth_dropped, 0);
            let reader = Reader::open(&report.path).unwrap();
            assert!(reader.is_closed());
            assert_eq!(reader.frame_count(0), frames.len());
            for (i, f) in frames.iter().enumerate() {
                let got = reader.read_depth(0, i).unwrap();
                assert_eq!(got.header.frame_number, i as u64);
                assert!(
                    got.data == f.data,
                    "{set} frame {i} differs after import ({codec})"
                );
            }

            let verify = Command::new(env!("CARGO_BIN_EXE_rsrec"))
                .arg("verify")
                .arg(&report.path)
                .output()
                .unwrap();
            assert!(
                verify.status.success(),
                "rsrec verify failed on {set}: {}",
                String::from_utf8_lossy(&verify.stderr)
            );
        }
    }
}

#[test]
fn ceiling_set_intrinsics_are_imported() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let report = import_pngs(
        &data.join("d435-ceiling-highacc"),
        out.path(),
        "ceiling",
        DepthCodec::Lz4Planes,
    );
    let reader = Reader::open(&report.path).unwrap();
    let k = reader.header().streams[0].intrinsics.clone().unwrap();
    assert_eq!(k.fx, 615.231_628_417_968_8_f64 as f32);
    assert_eq!(k.ppy, 244.246_765_136_718_75_f64 as f32);
    assert_eq!(reader.header().streams[0].depth_units, 0.001);
}

/// The portable scalar code of the grad-rans codecs (what CPUs without AVX2 run) against the
/// SIMD code on every real frame: the same payload bytes, and the scalar decoder is
/// bit-exact too. (On a CPU without AVX2 both sides are the scalar code.)
#[test]
fn grad_rans_scalar_and_simd_code_agree_on_every_real_frame() {
    let _cpu = crate::common::cpu_exclusive();
    let Some(data) = common::data_dir() else {
        return;
    };
    for set in common::PNG_SETS {
        let files = list_pngs(&depth_dir(&data.join(set))).unwrap();
        for (i, file) in files.iter().enumerate() {
            let f = read_depth_png(file).unwrap();
            for codec in [DepthCodec::GRAD_RANS32, DepthCodec::GRAD_RANS] {
                let (mut simd, mut scalar) = (Vec::new(), Vec::new());
                codec.encode(&f.data, f.width, f.height, &mut simd).unwrap();
                rsrec::codec::set_scalar_only(true);
                codec
                    .encode(&f.data, f.width, f.height, &mut scalar)
                    .unwrap();
                let back = decode_to_vec(codec.id(), &scalar, f.width, f.height);
                rsrec::codec::set_scalar_only(false);
                assert!(simd == scalar, "{set} frame {i}: {codec} payloads differ");
                assert!(back.unwrap() == f.data, "{set} frame {i}: scalar {codec}");
            }
        }
    }
}

/// Lossy med-rans, grad-rans and grad-rans32: every decoded pixel of every real frame within
/// the bound, holes exact, and every payload declares its bound.
#[test]
fn lossy_rans_codecs_stay_within_the_bound_on_every_real_frame() {
    let _cpu = crate::common::cpu_exclusive();
    let Some(data) = common::data_dir() else {
        return;
    };
    let bounds: Vec<ErrorBound> = ["1", "2", "5", "0.5%", "1%"]
        .iter()
        .map(|b| b.parse().unwrap())
        .collect();
    let mut enc = Vec::new();
    for set in common::PNG_SETS {
        let files = list_pngs(&depth_dir(&data.join(set))).unwrap();
        for (i, file) in files.iter().enumerate() {
            let f = read_depth_png(file).unwrap();
            for codec in bounds.iter().flat_map(|&bound| {
                [
                    DepthCodec::MedRans { bound },
                    DepthCodec::GradRans { bound },
                    DepthCodec::GradRans32 { bound },
                ]
            }) {
                let bound = codec.bound();
                codec.encode(&f.data, f.width, f.height, &mut enc).unwrap();
                assert_eq!(
                    payload_bound(codec.id(), &enc, f.width, f.height).unwrap(),
                    bound
                );
                let back = decode_to_vec(codec.id(), &enc, f.width, f.height).unwrap();
                for (&o, &v) in back.iter().zip(&f.data) {
                    assert!(
                        (o == 0) == (v == 0) && o.abs_diff(v) as u32 <= bound.allowed(v),
                        "{set} frame {i}, {codec}: {v} decoded as {o}"
                    );
                }
            }
        }
    }
}
