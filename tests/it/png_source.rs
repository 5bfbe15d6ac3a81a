//! PNG folders as a source (`rsrec import DIR`, `png:DIR`): TUM RGB-D style timestamp lists
//! (`depth.txt`, `rgb.txt`, `associations.txt`), and folders without them, which pair colour
//! with depth by position and say so when the counts differ.

use crate::common::{self, p};

use std::path::Path;
use std::process::Output;

use rsrec::container::format::record_type;
use rsrec::container::Reader;

fn write_rgb(path: &Path, width: u32, height: u32, shade: u8) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&vec![shade; (width * height * 3) as usize])
        .unwrap();
}

/// A TUM-like folder: `depth/<t>.png` and `rgb/<t>.png` at the given times (s), and the
/// `depth.txt` / `rgb.txt` lists when `lists` is set.
fn dataset(dir: &Path, depth: &[f64], rgb: &[f64], lists: bool) {
    std::fs::create_dir_all(dir.join("depth")).unwrap();
    std::fs::create_dir_all(dir.join("rgb")).unwrap();
    let mut dl = String::from("# depth maps\n# file: 'rgbd_dataset'\n# timestamp filename\n");
    for (i, t) in depth.iter().enumerate() {
        let name = format!("depth/{t:.6}.png");
        common::write_png16(
            &dir.join(&name),
            64,
            48,
            &common::synthetic_frame(64, 48, i as u64),
        );
        dl += &format!("{t:.6} {name}\n");
    }
    let mut rl = String::from("# color images\n# timestamp filename\n");
    for (i, t) in rgb.iter().enumerate() {
        let name = format!("rgb/{t:.6}.png");
        write_rgb(&dir.join(&name), 64, 48, (i * 20) as u8);
        rl += &format!("{t:.6} {name}\n");
    }
    if lists {
        std::fs::write(dir.join("depth.txt"), dl).unwrap();
        std::fs::write(dir.join("rgb.txt"), rl).unwrap();
    }
}

fn import(dir: &Path, out: &Path, extra: &[&str]) -> Output {
    common::rsrec(
        &[
            &[
                "import",
                p(dir),
                "--fps",
                "30",
                "--out",
                p(out),
                "--name",
                "d",
            ][..],
            extra,
        ]
        .concat(),
    )
}

fn host_times(r: &Reader, stream: u8, ty: u8) -> Vec<i64> {
    r.entries(stream, ty).map(|e| e.host_ts_us).collect()
}

/// Issue 16: a folder with fewer colour than depth images was paired by position without a
/// word. With TUM's `depth.txt` and `rgb.txt`, every frame keeps its timestamp (host time is
/// the dataset's Unix time), and import says how it paired.
#[test]
fn tum_lists_give_every_frame_its_timestamp() {
    if !common::have_ffmpeg() {
        return common::skip("tum_lists_give_every_frame_its_timestamp: no ffmpeg");
    }
    let tmp = tempfile::tempdir().unwrap();
    let set = tmp.path().join("tum");
    let depth = [
        1_305_031_102.160_4,
        1_305_031_102.194_3,
        1_305_031_102.226_7,
        1_305_031_102.262_9,
    ];
    let rgb = [1_305_031_102.175_3, 1_305_031_102.243_2];
    dataset(&set, &depth, &rgb, true);
    let out = tmp.path().join("out");
    let o = import(&set, &out, &["--preset", "ultrafast"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("4 depth and 2 colour images at their timestamps from depth.txt and rgb.txt"),
        "{err}"
    );
    let r = Reader::open(out.join("d.rsrec")).unwrap();
    let us = |t: &[f64]| {
        t.iter()
            .map(|t| (t * 1e6).round() as i64)
            .collect::<Vec<_>>()
    };
    assert_eq!(host_times(&r, 0, record_type::DEPTH_FRAME), us(&depth));
    assert_eq!(host_times(&r, 1, record_type::COLOR_FRAME), us(&rgb));
    // Device time runs from the first image (ms).
    let first = r.entry(0, record_type::DEPTH_FRAME, 0).unwrap();
    assert_eq!(first.device_ts_ms, 0.0);
    let meta: serde_json::Value = serde_json::from_str(&r.header().metadata_json).unwrap();
    assert!(
        meta["import"]["pairing"]
            .as_str()
            .is_some_and(|s| s.contains("timestamps")),
        "{meta}"
    );
}

/// `associations.txt` (TUM's associate.py; either column order) pairs images one to one.
#[test]
fn associations_pair_depth_and_colour_one_to_one() {
    let tmp = tempfile::tempdir().unwrap();
    let set = tmp.path().join("assoc");
    let depth = [10.0, 10.5, 11.0];
    let rgb = [10.01, 10.52, 11.03];
    dataset(&set, &depth, &rgb, false);
    // rgb first, as `associate.py rgb.txt depth.txt` writes it.
    let lines: String = depth
        .iter()
        .zip(&rgb)
        .map(|(d, c)| format!("{c:.6} rgb/{c:.6}.png {d:.6} depth/{d:.6}.png\n"))
        .collect();
    std::fs::write(set.join("associations.txt"), lines).unwrap();
    let out = tmp.path().join("out");
    let o = import(&set, &out, &["--color-codec", "off"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("from associations.txt"), "{err}");
    let r = Reader::open(out.join("d.rsrec")).unwrap();
    assert_eq!(r.frame_count(0), 3);
    // Times before 2000 are not Unix times: frames are at their offsets from the first.
    let t: Vec<f64> = r
        .entries(0, record_type::DEPTH_FRAME)
        .map(|e| e.device_ts_ms)
        .collect();
    assert_eq!(t, [0.0, 500.0, 1000.0]);
    let h = host_times(&r, 0, record_type::DEPTH_FRAME);
    assert_eq!([h[1] - h[0], h[2] - h[0]], [500_000, 1_000_000]);
}

/// Without timestamps, unequal counts are paired by position and the user is told what has
/// no partner, even with --quiet.
#[test]
fn fewer_colour_images_without_timestamps_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let set = tmp.path().join("plain");
    dataset(&set, &[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0, 2.0, 3.0], false);
    let out = tmp.path().join("out");
    let o = import(&set, &out, &["--color-codec", "off", "--quiet"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning")
            && err.contains("5 depth and 3 colour images")
            && err.contains("the last 2 depth frames have no colour"),
        "{err}"
    );
}

/// A list whose times go backwards, or that names a missing file, is refused with its line.
#[test]
fn bad_timestamp_lists_are_refused_with_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let set = tmp.path().join("bad");
    dataset(&set, &[1.0, 2.0, 3.0], &[], true);
    let list = set.join("depth.txt");
    std::fs::write(
        &list,
        "# x\n1.0 depth/1.000000.png\n3.0 depth/3.000000.png\n2.0 depth/2.000000.png\n",
    )
    .unwrap();
    let o = import(&set, &tmp.path().join("o1"), &["--color-codec", "off"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("depth.txt, line 4") && err.contains("not after"),
        "{err}"
    );
    std::fs::write(&list, "1.0 depth/missing.png\n").unwrap();
    let o = import(&set, &tmp.path().join("o2"), &["--color-codec", "off"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 1") && err.contains("does not exist"),
        "{err}"
    );
    std::fs::write(&list, "yesterday depth/1.000000.png\n").unwrap();
    let o = import(&set, &tmp.path().join("o3"), &["--color-codec", "off"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a timestamp"));
}
