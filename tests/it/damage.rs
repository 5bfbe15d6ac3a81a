//! Damaged inputs and interruptions of `export` and `import`: a damaged frame stops an
//! export with a message that says how to repair, or (`--skip-damaged`) is skipped,
//! counted and written as a gap in the output's frame table; Ctrl+C stops both cleanly and
//! leaves nothing that looks complete.

use crate::common::{self, p, rsrec, stderr};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rsrec::codec::DepthCodec;
use rsrec::container::format::{record_type, ts_domain};
use rsrec::container::{
    Distortion, FileHeader, Intrinsics, RecordHeader, StreamDescriptor, Writer, WriterOptions,
};

const W: u32 = 96;
const H: u32 = 64;

/// A closed file of `frames` depth frames; the frames in `damaged` are coded for a frame
/// one row short (valid checksums, but they do not decode).
fn file_with_damage(dir: &Path, frames: u64, damaged: &[u64], w: u32, h: u32) -> PathBuf {
    let path = dir.join("cam.rsrec");
    let mut depth = StreamDescriptor::depth(0, w, h, 30.0);
    depth.intrinsics = Some(Intrinsics {
        fx: w as f32 * 0.5,
        fy: w as f32 * 0.5,
        ppx: w as f32 / 2.0,
        ppy: h as f32 / 2.0,
        model: Distortion::BrownConrady,
        coeffs: vec![0.0; 5],
    });
    let header = FileHeader::new(Default::default(), vec![depth]);
    let mut wr = Writer::create(&path, &header, WriterOptions::deterministic(64)).unwrap();
    let mut payload = Vec::new();
    for i in 0..frames {
        let rows = if damaged.contains(&i) { h - 1 } else { h };
        let f = common::synthetic_frame(w, rows, i);
        DepthCodec::Lz4Planes
            .encode(&f, w, rows, &mut payload)
            .unwrap();
        let hdr = RecordHeader {
            record_type: record_type::DEPTH_FRAME,
            stream: 0,
            codec: DepthCodec::Lz4Planes.id(),
            ts_domain: ts_domain::HARDWARE_CLOCK,
            flags: 0,
            frame_number: i,
            device_ts_ms: i as f64 * 33.3,
            host_ts_us: 1_000_000 + i as i64 * 33_333,
        };
        wr.write_record(&hdr, &payload).unwrap();
    }
    wr.finish().unwrap();
    path
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Regression: one bad frame sank an export (npy wrote nothing, png16 left a partial
/// folder) with a message that did not mention `rsrec recover`.
#[test]
fn a_damaged_frame_stops_an_export_cleanly_and_says_how_to_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let file = file_with_damage(tmp.path(), 20, &[7], W, H);
    for to in ["npy", "png16", "ply"] {
        let out = tmp.path().join(format!("out-{to}"));
        let o = rsrec(&["export", p(&file), "--to", to, "--out", p(&out)]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{to}: {err}");
        assert!(err.contains("rsrec recover"), "{to}: {err}");
        assert!(err.contains("--skip-damaged"), "{to}: {err}");
        assert!(err.contains("depth frame 7"), "{to}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{to}: {err}");
        // Nothing that looks like an export, and no staging folder.
        let cam_dir = out.join("cam");
        assert!(
            entries(&cam_dir).is_empty(),
            "{to}: {:?}",
            entries(&cam_dir)
        );
    }
}

#[test]
fn skip_damaged_exports_the_rest_and_lists_the_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let file = file_with_damage(tmp.path(), 20, &[3, 11], W, H);
    // png16: a row without a file for each damaged frame.
    let out = tmp.path().join("png");
    let o = rsrec(&[
        "export",
        p(&file),
        "--to",
        "png16",
        "--skip-damaged",
        "--out",
        p(&out),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 damaged depth frame(s) skipped"));
    let dir = out.join("cam").join("png16");
    let pngs = entries(&dir).iter().filter(|f| f.ends_with(".png")).count();
    assert_eq!(pngs, 18);
    let csv = std::fs::read_to_string(dir.join("frames.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 20);
    for (i, row) in rows.iter().enumerate() {
        let file = row.rsplit(',').next().unwrap();
        assert_eq!(file.is_empty(), i == 3 || i == 11, "{row}");
    }
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("intrinsics.json")).unwrap())
            .unwrap();
    assert_eq!(info["damaged_frames"]["count"], 2);
    assert_eq!(
        info["damaged_frames"]["positions"],
        serde_json::json!([3, 11])
    );

    // npy: the declared shape holds, a damaged frame is all zero, damaged.npy marks it.
    let out = tmp.path().join("npy");
    let o = rsrec(&[
        "export",
        p(&file),
        "--to",
        "npy",
        "--skip-damaged",
        "--out",
        p(&out),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let dir = out.join("cam").join("npy");
    let depth = std::fs::read(dir.join("depth.npy")).unwrap();
    let frame = (W * H * 2) as usize;
    let data = &depth[depth.len() - 20 * frame..];
    let reader = rsrec::container::Reader::open(&file).unwrap();
    for i in 0..20usize {
        let got = &data[i * frame..(i + 1) * frame];
        if i == 3 || i == 11 {
            assert!(got.iter().all(|&b| b == 0), "frame {i} is not all holes");
        } else {
            let want: Vec<u8> = reader
                .read_depth(0, i)
                .unwrap()
                .data
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            assert!(got == want.as_slice(), "frame {i} differs");
        }
    }
    let flags = std::fs::read(dir.join("damaged.npy")).unwrap();
    let flags = &flags[flags.len() - 20..];
    for (i, &f) in flags.iter().enumerate() {
        assert_eq!(f, u8::from(i == 3 || i == 11), "damaged.npy[{i}]");
    }
    let numbers = std::fs::read(dir.join("frame_numbers.npy")).unwrap();
    let n3 = &numbers[numbers.len() - 20 * 8 + 3 * 8..][..8];
    assert_eq!(u64::from_le_bytes(n3.try_into().unwrap()), 3);
}

fn sigint_after(child: &std::process::Child, after: Duration) {
    std::thread::sleep(after);
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Regression: Ctrl+C killed `export` at once, leaving a png16 folder that looked complete.
#[test]
fn ctrl_c_stops_an_export_and_removes_the_unfinished_output() {
    let tmp = tempfile::tempdir().unwrap();
    // 400 frames of 424x240 at the slowest PNG effort on one thread: many seconds.
    let file = file_with_damage(tmp.path(), 400, &[], 424, 240);
    let out = tmp.path().join("out");
    let child = Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .args([
            "export",
            p(&file),
            "--to",
            "png16",
            "--png-compression",
            "best",
        ])
        .args(["--threads", "1", "--quiet", "--out", p(&out)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sigint_after(&child, Duration::from_millis(1500));
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        entries(&out.join("cam")).is_empty(),
        "{:?}",
        entries(&out.join("cam"))
    );
}

/// Regression: Ctrl+C killed `import` at once, leaving `.partial` files behind.
#[test]
fn ctrl_c_stops_an_import_and_removes_the_partial_output() {
    let tmp = tempfile::tempdir().unwrap();
    let set = tmp.path().join("set");
    std::fs::create_dir(&set).unwrap();
    for i in 0..300 {
        let f = common::synthetic_frame(424, 240, i);
        common::write_png16(&set.join(format!("{i:04}.png")), 424, 240, &f);
    }
    let out = tmp.path().join("out");
    // The slowest zstd level on one thread: many seconds for 300 frames.
    let child = Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .args([
            "import",
            p(&set),
            "--fps",
            "30",
            "--depth-codec",
            "zstd-planes:19",
        ])
        .args(["--quiet", "--out", p(&out)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sigint_after(&child, Duration::from_millis(1000));
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(entries(&out).is_empty(), "{:?}", entries(&out));
}
