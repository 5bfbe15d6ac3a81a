//! IMU (gyro, accel) samples in `rsrec export --to npy` and `--to png16`, checked against
//! the samples read directly from the `.rsrec` files.
//!
//! A synthetic session recorded with `--imu` (one camera, `--segment 1s`, so the samples
//! span several files) is exported whole and through windows; a file written with the
//! library has a gyro stream that changes clocks between batches, an id that is not the
//! usual one, an accel stream without samples, and a damaged batch. The npy files are also
//! loaded with numpy through `$RSREC_PYTHON` (a loud skip without it).

use crate::common;
use crate::export::{python, read_npy, session_cameras, u64s};

use common::{p, rsrec, stderr};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use rsrec::codec::{CodecId, DepthCodec};
use rsrec::container::format::{record_type, ts_domain};
use rsrec::container::record::{decode_imu_batch, encode_imu_batch};
use rsrec::container::{
    FileHeader, ImuSample, PixelFormat, Reader, RecordHeader, StreamDescriptor, StreamKind, Writer,
    WriterOptions,
};
use rsrec::session::{Recording, SessionError};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Helpers

fn run_ok(args: &[&str]) -> Output {
    let o = rsrec(args);
    assert!(o.status.success(), "rsrec {args:?} failed: {}", stderr(&o));
    o
}

/// A recorded session with IMU: one synthetic camera, depth 212x120@30, no colour, 2.5 s,
/// a new file every second. Recorded once per test run.
fn imu_session() -> &'static Path {
    static S: OnceLock<PathBuf> = OnceLock::new();
    S.get_or_init(|| {
        let root = common::keep_dir("imu-export-fixtures");
        run_ok(&[
            "record",
            "--cameras",
            "sim:1",
            "--duration",
            "2.5s",
            "--depth",
            "212x120@30",
            "--color",
            "off",
            "--depth-codec",
            "lz4-planes",
            "--imu",
            "--segment",
            "1s",
            "--out",
            p(&root),
            "--session",
            "s",
            "--quiet",
        ]);
        root.join("s")
    })
}

/// A sample as read from the file, with its batch's timestamp domain.
type Sample = (ImuSample, u8);

/// Every sample of the stream of `kind` in `files` (in order), read with the container
/// reader: the reference the exports are checked against.
fn reference(files: &[PathBuf], kind: StreamKind) -> Vec<Sample> {
    let mut out = Vec::new();
    for f in files {
        let r = Reader::open(f).unwrap();
        let Some(id) = r
            .header()
            .streams
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.id)
        else {
            continue;
        };
        for i in 0..r.count(id, record_type::IMU_BATCH) {
            let (rec, payload) = r.read_record(id, record_type::IMU_BATCH, i).unwrap();
            let d = rec.header.ts_domain;
            out.extend(
                decode_imu_batch(payload)
                    .unwrap()
                    .into_iter()
                    .map(|s| (s, d)),
            );
        }
    }
    out
}

fn f32s_bits(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn xyz_bits(want: &[Sample]) -> Vec<u32> {
    want.iter()
        .flat_map(|(s, _)| s.xyz.map(f32::to_bits))
        .collect()
}

/// The four arrays of `name` in an npy export folder hold exactly `want`.
fn check_npy(dir: &Path, name: &str, want: &[Sample]) {
    let n = want.len() as u64;
    let (descr, shape, data) = read_npy(&dir.join(format!("{name}.npy")));
    assert_eq!((descr.as_str(), shape), ("<f4", vec![n, 3]), "{name}.npy");
    assert_eq!(f32s_bits(&data), xyz_bits(want), "{name}.npy values");
    let (descr, shape, data) = read_npy(&dir.join(format!("{name}_timestamps.npy")));
    assert_eq!((descr.as_str(), shape), ("<f8", vec![n]));
    assert_eq!(
        u64s(&data),
        want.iter()
            .map(|(s, _)| s.device_ts_ms.to_bits())
            .collect::<Vec<_>>()
    );
    let (descr, shape, data) = read_npy(&dir.join(format!("{name}_host_timestamps_us.npy")));
    // The dtype of the depth host timestamps.
    let (depth_descr, _, _) = read_npy(&dir.join("host_timestamps_us.npy"));
    assert_eq!((descr.as_str(), shape), (depth_descr.as_str(), vec![n]));
    assert_eq!(
        u64s(&data),
        want.iter()
            .map(|(s, _)| s.host_ts_us.max(0) as u64)
            .collect::<Vec<_>>()
    );
    let (descr, shape, data) = read_npy(&dir.join(format!("{name}_frame_numbers.npy")));
    assert_eq!((descr.as_str(), shape), ("<u8", vec![n]));
    assert_eq!(
        u64s(&data),
        want.iter().map(|(s, _)| s.frame_number).collect::<Vec<_>>()
    );
}

/// `name.csv` of a png16 export folder holds exactly `want` (numbers parse back bit-exact).
fn check_csv(dir: &Path, name: &str, want: &[Sample]) {
    let text = std::fs::read_to_string(dir.join(format!("{name}.csv"))).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("frame_number,device_ts_ms,host_ts_us,x,y,z")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), want.len(), "{name}.csv rows");
    for (row, (s, _)) in rows.iter().zip(want) {
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!(f.len(), 6, "{row}");
        assert_eq!(f[0].parse::<u64>().unwrap(), s.frame_number, "{row}");
        assert_eq!(
            f[1].parse::<f64>().unwrap().to_bits(),
            s.device_ts_ms.to_bits(),
            "{row}"
        );
        assert_eq!(f[2].parse::<i64>().unwrap(), s.host_ts_us, "{row}");
        for (k, v) in s.xyz.iter().enumerate() {
            assert_eq!(
                f[3 + k].parse::<f32>().unwrap().to_bits(),
                v.to_bits(),
                "{row}"
            );
        }
    }
}

fn intrinsics(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("intrinsics.json")).unwrap()).unwrap()
}

/// Names of the files of an export folder that belong to the IMU.
fn imu_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gyro") || n.starts_with("accel"))
        .collect();
    v.sort();
    v
}

fn export(input: &Path, format: &str, out: &Path, window: &[&str]) -> PathBuf {
    let mut args = vec![
        "export",
        p(input),
        "--to",
        format,
        "--out",
        p(out),
        "--quiet",
    ];
    args.extend_from_slice(window);
    run_ok(&args);
    out.to_path_buf()
}

/// The samples of `all` whose host time lies in `[a, b]`, checking that the window leaves
/// samples out on both sides.
fn inside(all: &[Sample], a: i64, b: i64) -> Vec<Sample> {
    let want: Vec<Sample> = all
        .iter()
        .filter(|(s, _)| (a..=b).contains(&s.host_ts_us))
        .copied()
        .collect();
    assert!(!want.is_empty(), "no sample in [{a}, {b}]");
    assert!(
        all.iter().any(|(s, _)| s.host_ts_us < a) && all.iter().any(|(s, _)| s.host_ts_us > b),
        "the window [{a}, {b}] leaves no sample out on both sides"
    );
    want
}

const CHECK_PY: &str = r#"
import json, sys
import numpy as np

def check(cond, msg):
    if not cond:
        print("FAIL:", msg)
        sys.exit(1)

args = json.loads(sys.argv[1])
with open(args["expected"]) as f:
    expected = json.load(f)
with open(args["npy"] + "/intrinsics.json") as f:
    info = json.load(f)
for name, want in expected.items():
    n = len(want["frame_numbers"])
    xyz = np.load(f"{args['npy']}/{name}.npy", mmap_mode="r")
    check(xyz.dtype == np.dtype("<f4") and xyz.shape == (n, 3), f"{name}.npy: {xyz.dtype} {xyz.shape}")
    bits = np.array(want["xyz_bits"], dtype=np.uint32).reshape(n, 3)
    check(np.array_equal(np.asarray(xyz).view(np.uint32), bits), f"{name}.npy values")
    ts = np.load(f"{args['npy']}/{name}_timestamps.npy")
    check(ts.dtype == np.float64 and ts.shape == (n,), f"{name}_timestamps.npy {ts.dtype} {ts.shape}")
    check(np.array_equal(ts.view(np.uint64), np.array(want["device_bits"], dtype=np.uint64)), "device times")
    host = np.load(f"{args['npy']}/{name}_host_timestamps_us.npy")
    depth_host = np.load(f"{args['npy']}/host_timestamps_us.npy")
    check(host.dtype == depth_host.dtype and host.shape == (n,), f"host {host.dtype}")
    check(np.array_equal(host, np.array(want["host"], dtype=np.uint64)), "host times")
    fn = np.load(f"{args['npy']}/{name}_frame_numbers.npy")
    check(fn.dtype == np.uint64 and np.array_equal(fn, np.array(want["frame_numbers"], dtype=np.uint64)), "frame numbers")
    check(info["imu"][name]["samples"] == n, "intrinsics sample count")
    # The png16 CSV, read as Python does: the same numbers.
    with open(f"{args['csv']}/{name}.csv") as f:
        lines = f.read().splitlines()
    check(lines[0] == "frame_number,device_ts_ms,host_ts_us,x,y,z", lines[0])
    check(len(lines) == n + 1, f"{name}.csv has {len(lines) - 1} rows")
    rows = [l.split(",") for l in lines[1:]]
    check([int(r[0]) for r in rows] == want["frame_numbers"], "csv frame numbers")
    check(np.array_equal(np.array([float(r[1]) for r in rows]).view(np.uint64), ts.view(np.uint64)), "csv device times")
    x = np.array([[float(v) for v in r[3:]] for r in rows], dtype=np.float32).reshape(n, 3)
    check(np.array_equal(x.view(np.uint32), bits), "csv x, y, z")
print("OK")
"#;

/// Loads the npy arrays (and the CSV) of every stream in `want` with numpy; `false` (a loud
/// skip) without `$RSREC_PYTHON`.
fn py_check(npy: &Path, csv: &Path, want: &[(&str, &[Sample])]) -> bool {
    let Some(py) = python() else {
        return false;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut expected = serde_json::Map::new();
    for (name, samples) in want {
        expected.insert(
            name.to_string(),
            json!({
                "frame_numbers": samples.iter().map(|(s, _)| s.frame_number).collect::<Vec<_>>(),
                "device_bits": samples.iter().map(|(s, _)| s.device_ts_ms.to_bits()).collect::<Vec<_>>(),
                "host": samples.iter().map(|(s, _)| s.host_ts_us.max(0) as u64).collect::<Vec<_>>(),
                "xyz_bits": xyz_bits(samples),
            }),
        );
    }
    let exp = tmp.path().join("expected.json");
    std::fs::write(&exp, Value::Object(expected).to_string()).unwrap();
    let script = tmp.path().join("check_imu.py");
    std::fs::write(&script, CHECK_PY).unwrap();
    let args = json!({"expected": p(&exp), "npy": p(npy), "csv": p(csv)});
    let o = Command::new(&py)
        .arg(&script)
        .arg(args.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    assert!(
        o.status.success(),
        "Python IMU check failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    true
}

// ---------------------------------------------------------------------------------------
// A file written with the library

const W: u32 = 8;
const H: u32 = 6;
const BASE_US: i64 = 1_800_000_000_000_000;
const GYRO_ID: u8 = 7;
const BATCHES: usize = 10;
const PER_BATCH: usize = 20;

/// The gyro samples of [`library_file`]: 200 at 5 ms, 10 batches of 20; batches 0-4 on
/// the hardware clock, 5-9 on global time. Values include -0.0, a subnormal and odd bits.
fn library_gyro() -> Vec<Vec<Sample>> {
    (0..BATCHES)
        .map(|b| {
            let domain = if b < 5 {
                ts_domain::HARDWARE_CLOCK
            } else {
                ts_domain::GLOBAL_TIME
            };
            (0..PER_BATCH)
                .map(|i| {
                    let k = (b * PER_BATCH + i) as u64;
                    let device_ts_ms = if b < 5 {
                        1000.0 + 5.0 * k as f64
                    } else {
                        1.8e12 + 5.0 * k as f64 + 0.1
                    };
                    let s = ImuSample {
                        frame_number: 1000 + k,
                        device_ts_ms,
                        host_ts_us: BASE_US + 5000 * k as i64,
                        xyz: [
                            k as f32 * 0.001 + 0.1,
                            if k == 3 { -0.0 } else { -(k as f32) / 3.0 },
                            if k == 4 {
                                f32::from_bits(1)
                            } else {
                                f32::from_bits(0x3f80_0001 + k as u32)
                            },
                        ],
                    };
                    (s, domain)
                })
                .collect()
        })
        .collect()
}

/// 30 depth frames (8x6, raw) at 30 fps with host times, a gyro stream with id 7 (not the
/// id rsrec record uses) holding [`library_gyro`], and an accel stream without samples.
/// With `host_fixed`, every record has the same host time (the camera is placed by
/// device time).
fn library_file(path: &Path, host_fixed: bool) {
    let mut gyro = StreamDescriptor::depth(GYRO_ID, 0, 0, 200.0);
    gyro.kind = StreamKind::Gyro;
    gyro.name = "gyro".into();
    gyro.format = PixelFormat::MotionXyz32f;
    gyro.depth_units = 0.0;
    let mut accel = gyro.clone();
    accel.id = 9;
    accel.kind = StreamKind::Accel;
    accel.name = "accel".into();
    accel.fps = 63.0;
    let header = FileHeader::new(
        Default::default(),
        vec![StreamDescriptor::depth(0, W, H, 30.0), gyro, accel],
    );
    let mut w = Writer::create(path, &header, WriterOptions::deterministic(16)).unwrap();
    let host = |us: i64| if host_fixed { BASE_US } else { us };
    let mut payload = Vec::new();
    for n in 0..30u64 {
        let f = common::synthetic_frame(W, H, n);
        DepthCodec::Raw.encode(&f, W, H, &mut payload).unwrap();
        let h = RecordHeader {
            record_type: record_type::DEPTH_FRAME,
            stream: 0,
            codec: CodecId::RAW,
            ts_domain: ts_domain::HARDWARE_CLOCK,
            flags: 0,
            frame_number: n,
            device_ts_ms: 1000.0 + n as f64 * 100.0 / 3.0,
            host_ts_us: host(BASE_US + n as i64 * 33_333),
        };
        w.write_record(&h, &payload).unwrap();
    }
    for batch in library_gyro() {
        let (first, domain) = batch[0];
        let samples: Vec<ImuSample> = batch
            .iter()
            .map(|(s, _)| ImuSample {
                host_ts_us: host(s.host_ts_us),
                ..*s
            })
            .collect();
        let h = RecordHeader {
            record_type: record_type::IMU_BATCH,
            stream: GYRO_ID,
            codec: CodecId::NONE,
            ts_domain: domain,
            flags: 0,
            frame_number: first.frame_number,
            device_ts_ms: first.device_ts_ms,
            host_ts_us: host(first.host_ts_us),
        };
        w.write_record(&h, &encode_imu_batch(&samples)).unwrap();
    }
    w.finish().unwrap();
}

/// Flips a payload byte of gyro batch `batch` (its checksum no longer holds).
fn damage_batch(path: &Path, batch: usize) {
    let offset = {
        let r = Reader::open(path).unwrap();
        r.record_header(GYRO_ID, record_type::IMU_BATCH, batch)
            .unwrap()
            .payload_offset
    };
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize + 20] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

// ---------------------------------------------------------------------------------------
// Tests

/// The default window exports every sample of both streams, bit-exact, in npy and png16,
/// across segment files; intrinsics.json describes them; numpy loads them.
#[test]
fn every_imu_sample_is_exported_to_npy_and_png16() {
    let session = imu_session();
    let cams = session_cameras(session);
    assert_eq!(cams.len(), 1);
    let (name, files) = &cams[0];
    assert!(files.len() >= 2, "segment files: {files:?}");
    let gyro = reference(files, StreamKind::Gyro);
    let accel = reference(files, StreamKind::Accel);
    assert!(
        gyro.len() > 300 && accel.len() > 100,
        "{} {}",
        gyro.len(),
        accel.len()
    );
    // Samples of more than one file.
    assert!(reference(&files[1..], StreamKind::Gyro).len() > 50);
    let out = tempfile::tempdir().unwrap();
    let npy = export(session, "npy", out.path(), &[])
        .join(name)
        .join("npy");
    let png = export(session, "png16", out.path(), &[])
        .join(name)
        .join("png16");
    check_npy(&npy, "gyro", &gyro);
    check_npy(&npy, "accel", &accel);
    check_csv(&png, "gyro", &gyro);
    check_csv(&png, "accel", &accel);
    assert_eq!(
        imu_files(&npy),
        [
            "accel.npy",
            "accel_frame_numbers.npy",
            "accel_host_timestamps_us.npy",
            "accel_timestamps.npy",
            "gyro.npy",
            "gyro_frame_numbers.npy",
            "gyro_host_timestamps_us.npy",
            "gyro_timestamps.npy"
        ]
    );
    assert_eq!(imu_files(&png), ["accel.csv", "gyro.csv"]);
    for (dir, files_of) in [
        (&npy, vec!["gyro.npy", "gyro_timestamps.npy"]),
        (&png, vec!["gyro.csv"]),
    ] {
        let info = intrinsics(dir);
        for (stream, want, units, hz) in [
            ("gyro", &gyro, "rad/s", 200.0),
            ("accel", &accel, "m/s²", 63.0),
        ] {
            let s = &info["imu"][stream];
            assert_eq!(s["samples"], want.len(), "{s}");
            assert_eq!(s["units"], units);
            assert_eq!(s["timestamp_domains"], json!(["hardware_clock"]));
            assert_eq!(
                s["timestamp_domain_runs"],
                json!([{"first_sample": 0, "domain": "hardware_clock"}])
            );
            assert_eq!(s["nominal_rate_hz"], hz);
            assert_eq!(s["rate_clock"], "device");
            // The synthetic camera keeps its rate on the device clock (a loaded machine
            // can lose a few samples).
            let rate = s["rate_hz"].as_f64().unwrap();
            assert!((rate - hz).abs() < hz * 0.1, "{stream}: {rate} Hz");
            assert_eq!(s["time_range_us"], Value::Null);
            assert_eq!(s["timeline"], "host");
        }
        let listed: Vec<&str> = info["imu"]["gyro"]["files"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for f in files_of {
            assert!(listed.contains(&f), "{f} not in {listed:?}");
        }
    }
    py_check(&npy, &png, &[("gyro", &gyro), ("accel", &accel)]);
}

/// `--frames`, `--every` and `--time` export the samples between the first and the last
/// selected depth frame (inclusive), leaving the others out.
#[test]
fn a_window_exports_only_the_imu_samples_inside_it() {
    let session = imu_session();
    let cams = session_cameras(session);
    let (name, files) = &cams[0];
    let gyro = reference(files, StreamKind::Gyro);
    let accel = reference(files, StreamKind::Accel);
    for window in [
        &["--frames", "10:40"][..],
        &["--frames", "20:50", "--every", "7"][..],
        &["--time", "0.8:1.6"][..],
    ] {
        let out = tempfile::tempdir().unwrap();
        let npy = export(session, "npy", out.path(), window)
            .join(name)
            .join("npy");
        let png = export(session, "png16", out.path(), window)
            .join(name)
            .join("png16");
        // The selected depth frames' host times, as exported.
        let (_, _, host) = read_npy(&npy.join("host_timestamps_us.npy"));
        let host = u64s(&host);
        let (a, b) = (host[0] as i64, *host.last().unwrap() as i64);
        assert!(host.len() >= 3, "{window:?}: {host:?}");
        for (stream, all) in [("gyro", &gyro), ("accel", &accel)] {
            let want = inside(all, a, b);
            check_npy(&npy, stream, &want);
            check_csv(&png, stream, &want);
            for dir in [&npy, &png] {
                let s = &intrinsics(dir)["imu"][stream];
                assert_eq!(s["samples"], want.len(), "{window:?} {stream}: {s}");
                assert_eq!(s["time_range_us"], json!([a, b]), "{window:?}");
            }
        }
    }
}

/// A recording without IMU gets no IMU files and no "imu" key.
#[test]
fn a_recording_without_imu_exports_no_imu_files() {
    let root = tempfile::tempdir().unwrap();
    run_ok(&[
        "record",
        "--cameras",
        "sim:1",
        "--duration",
        "1s",
        "--depth",
        "212x120@30",
        "--color",
        "off",
        "--out",
        p(root.path()),
        "--session",
        "s",
        "--quiet",
    ]);
    let session = root.path().join("s");
    let out = tempfile::tempdir().unwrap();
    for format in ["npy", "png16"] {
        let dir = export(&session, format, out.path(), &[])
            .join("sim0")
            .join(format);
        assert!(dir.join("intrinsics.json").is_file());
        assert!(imu_files(&dir).is_empty(), "{:?}", imu_files(&dir));
        let info = intrinsics(&dir);
        assert!(info.get("imu").is_none(), "{info}");
    }
}

/// A stream that switches clocks between batches lists every domain and where each run
/// starts; the stream is found by kind (id 7); a declared stream without samples gives
/// empty files.
#[test]
fn imu_clock_changes_and_empty_streams_are_described() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cam.rsrec");
    library_file(&file, false);
    let gyro: Vec<Sample> = library_gyro().concat();
    assert_eq!(
        reference(std::slice::from_ref(&file), StreamKind::Gyro),
        gyro
    );
    let out = tempfile::tempdir().unwrap();
    let npy = export(&file, "npy", out.path(), &[])
        .join("cam")
        .join("npy");
    let png = export(&file, "png16", out.path(), &[])
        .join("cam")
        .join("png16");
    check_npy(&npy, "gyro", &gyro);
    check_csv(&png, "gyro", &gyro);
    check_npy(&npy, "accel", &[]);
    check_csv(&png, "accel", &[]);
    for dir in [&npy, &png] {
        let info = intrinsics(dir);
        let g = &info["imu"]["gyro"];
        assert_eq!(g["samples"], 200);
        assert_eq!(
            g["timestamp_domains"],
            json!(["hardware_clock", "global_time"])
        );
        assert_eq!(
            g["timestamp_domain_runs"],
            json!([
                {"first_sample": 0, "domain": "hardware_clock"},
                {"first_sample": 100, "domain": "global_time"}
            ])
        );
        // Two clocks: measured on host time (199 intervals of 5 ms).
        assert_eq!(g["rate_clock"], "host");
        assert_eq!(g["rate_hz"], 200.0);
        let a = &info["imu"]["accel"];
        assert_eq!(a["samples"], 0);
        assert_eq!(a["rate_hz"], Value::Null);
        assert_eq!(a["timestamp_domains"], json!([]));
        assert_eq!(a["nominal_rate_hz"], 63.0);
    }
    // Depth frames 3 to 6: host times BASE + 99_999 .. BASE + 199_998, samples 20 to 39.
    let win = export(&file, "npy", out.path(), &["--frames", "3:7", "--force"])
        .join("cam")
        .join("npy");
    check_npy(&win, "gyro", &gyro[20..40]);
    assert_eq!(
        intrinsics(&win)["imu"]["gyro"]["time_range_us"],
        json!([BASE_US + 99_999, BASE_US + 199_998])
    );
}

/// The library call: a window reads only the batches that can overlap it (a damaged batch
/// far away does not matter), the whole stream reads every batch and names the damaged one;
/// export stops with one line naming it, and leaves nothing behind.
#[test]
fn imu_windows_skip_far_batches_and_damage_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cam.rsrec");
    library_file(&file, false);
    let gyro: Vec<Sample> = library_gyro().concat();
    damage_batch(&file, 9);
    let rec = Recording::open(&file).unwrap();
    let cam = &rec.cameras[0];
    assert_eq!(cam.imu_kinds(), [StreamKind::Gyro, StreamKind::Accel]);
    let range = BASE_US + 99_999..=BASE_US + 199_998;
    let got = cam.imu_samples(StreamKind::Gyro, Some(range)).unwrap();
    let got: Vec<Sample> = got.iter().map(|r| (r.sample, r.ts_domain)).collect();
    assert_eq!(got, gyro[20..40]);
    // A range between samples, before and after them all.
    let between = BASE_US + 5001..=BASE_US + 9999;
    assert!(cam
        .imu_samples(StreamKind::Gyro, Some(between))
        .unwrap()
        .is_empty());
    assert!(cam
        .imu_samples(StreamKind::Gyro, Some(0..=BASE_US - 1))
        .unwrap()
        .is_empty());
    assert!(cam.imu_samples(StreamKind::Accel, None).unwrap().is_empty());
    match cam.imu_samples(StreamKind::Gyro, None) {
        Err(SessionError::ImuBatch {
            stream,
            batch,
            source,
            ..
        }) => {
            assert_eq!((stream, batch), ("gyro", 9));
            assert!(source.to_string().contains("checksum"), "{source}");
        }
        other => panic!("expected a damaged-batch error, got {other:?}"),
    }
    let out = tempfile::tempdir().unwrap();
    for format in ["npy", "png16"] {
        let o = rsrec(&[
            "export",
            p(&file),
            "--to",
            format,
            "--out",
            p(out.path()),
            "--quiet",
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let e = stderr(&o);
        let lines: Vec<&str> = e.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{e}");
        assert!(lines[0].starts_with("rsrec: error: "), "{e}");
        for part in ["gyro IMU batch 9", "rsrec recover", "checksum"] {
            assert!(lines[0].contains(part), "{part:?} not in {e}");
        }
        let cam_dir = out.path().join("cam");
        let left: Vec<_> = std::fs::read_dir(&cam_dir)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }
    // A window away from the damage exports.
    let win = export(&file, "npy", out.path(), &["--frames", "3:7"])
        .join("cam")
        .join("npy");
    check_npy(&win, "gyro", &gyro[20..40]);
}

/// The library's streaming reader decodes one batch at a time, so memory does not grow with
/// the recording: after k samples it has read only the batches holding them, and with batch
/// 9 damaged the 180 samples of batches 0 to 8 come out before the error (the last item).
#[test]
fn imu_samples_are_read_one_batch_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cam.rsrec");
    library_file(&file, false);
    let gyro: Vec<Sample> = library_gyro().concat();
    damage_batch(&file, 9);
    let rec = Recording::open(&file).unwrap();
    let cam = &rec.cameras[0];
    let mut it = cam.imu_readings(StreamKind::Gyro, None);
    assert_eq!(it.batches_read(), 0);
    for (k, want) in gyro[..9 * PER_BATCH].iter().enumerate() {
        let r = it.next().unwrap().unwrap();
        assert_eq!((r.sample, r.ts_domain), *want, "sample {k}");
        assert_eq!(it.batches_read(), k / PER_BATCH + 1, "sample {k}");
    }
    match it.next() {
        Some(Err(SessionError::ImuBatch { stream, batch, .. })) => {
            assert_eq!((stream, batch), ("gyro", 9))
        }
        other => panic!("expected the damaged batch, got {other:?}"),
    }
    assert!(it.next().is_none());
    assert_eq!(it.batches_read(), 9);
    // A consumer that stops after 30 samples has read two batches.
    let mut it = cam.imu_readings(StreamKind::Gyro, None);
    assert_eq!(it.by_ref().take(30).count(), 30);
    assert_eq!(it.batches_read(), 2);
}

/// A gyro stream that switches clocks at every batch (1201 runs): intrinsics.json lists the
/// first 1000 runs and gives their total, so it does not grow with the recording; the
/// samples are all exported.
#[test]
fn imu_clock_runs_are_listed_up_to_a_limit() {
    const RUNS: usize = 1201;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cam.rsrec");
    let mut gyro = StreamDescriptor::depth(1, 0, 0, 200.0);
    gyro.kind = StreamKind::Gyro;
    gyro.name = "gyro".into();
    gyro.format = PixelFormat::MotionXyz32f;
    gyro.depth_units = 0.0;
    let header = FileHeader::new(
        Default::default(),
        vec![StreamDescriptor::depth(0, W, H, 30.0), gyro],
    );
    let mut w = Writer::create(&file, &header, WriterOptions::deterministic(16)).unwrap();
    let mut payload = Vec::new();
    for n in 0..3u64 {
        let f = common::synthetic_frame(W, H, n);
        DepthCodec::Raw.encode(&f, W, H, &mut payload).unwrap();
        let h = RecordHeader {
            record_type: record_type::DEPTH_FRAME,
            stream: 0,
            codec: CodecId::RAW,
            ts_domain: ts_domain::HARDWARE_CLOCK,
            flags: 0,
            frame_number: n,
            device_ts_ms: 1000.0 + n as f64 * 1000.0,
            host_ts_us: BASE_US + n as i64 * 1_000_000,
        };
        w.write_record(&h, &payload).unwrap();
    }
    let mut want = Vec::new();
    for b in 0..RUNS {
        let domain = if b % 2 == 0 {
            ts_domain::HARDWARE_CLOCK
        } else {
            ts_domain::GLOBAL_TIME
        };
        let samples: Vec<ImuSample> = (0..2)
            .map(|i| {
                let k = (2 * b + i) as u64;
                ImuSample {
                    frame_number: k,
                    device_ts_ms: 1000.0 + k as f64,
                    host_ts_us: BASE_US + 1000 * k as i64,
                    xyz: [k as f32, 1.0, -1.0],
                }
            })
            .collect();
        want.extend(samples.iter().map(|s| (*s, domain)));
        let h = RecordHeader {
            record_type: record_type::IMU_BATCH,
            stream: 1,
            codec: CodecId::NONE,
            ts_domain: domain,
            flags: 0,
            frame_number: samples[0].frame_number,
            device_ts_ms: samples[0].device_ts_ms,
            host_ts_us: samples[0].host_ts_us,
        };
        w.write_record(&h, &encode_imu_batch(&samples)).unwrap();
    }
    w.finish().unwrap();
    let out = tempfile::tempdir().unwrap();
    let npy = export(&file, "npy", out.path(), &[])
        .join("cam")
        .join("npy");
    check_npy(&npy, "gyro", &want);
    let g = &intrinsics(&npy)["imu"]["gyro"];
    assert_eq!(g["samples"], 2 * RUNS);
    let runs = g["timestamp_domain_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1000);
    assert_eq!(
        runs[999],
        json!({"first_sample": 2 * 999, "domain": "global_time"})
    );
    assert_eq!(g["timestamp_domain_runs_total"], RUNS);
    assert_eq!(
        g["timestamp_domains"],
        json!(["hardware_clock", "global_time"])
    );
    assert_eq!(g["rate_clock"], "host");
}

/// A camera placed by device time (every host time the same): the window is on device time.
#[test]
fn imu_windows_follow_a_device_timeline() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cam.rsrec");
    library_file(&file, true);
    let rec = Recording::open(&file).unwrap();
    let cam = &rec.cameras[0];
    assert!(matches!(
        cam.timeline(),
        rsrec::session::recording::Timeline::Device { .. }
    ));
    // Depth frames 3 and 6 on the timeline; the hardware-clock samples between them.
    let t = |pos| cam.time_us(rsrec::session::Stream::Depth, pos).unwrap();
    let (a, b) = (t(3), t(6));
    let got = cam.imu_samples(StreamKind::Gyro, Some(a..=b)).unwrap();
    let frames: Vec<u64> = got.iter().map(|r| r.sample.frame_number).collect();
    // Device ms 1100 .. 1200: samples 20 to 40.
    assert_eq!(frames, (1020..=1040).collect::<Vec<u64>>());
    assert!(got.iter().all(|r| cam.sample_time_us(&r.sample) <= b));
    let out = tempfile::tempdir().unwrap();
    let o = run_ok(&[
        "export",
        p(&file),
        "--to",
        "npy",
        "--out",
        p(out.path()),
        "--frames",
        "3:7",
    ]);
    let info = intrinsics(&out.path().join("cam").join("npy"));
    assert_eq!(info["imu"]["gyro"]["timeline"], "device");
    assert_eq!(info["imu"]["gyro"]["samples"], 21);
    // The window holds only hardware-clock samples: no warning about clocks.
    assert!(!stderr(&o).contains("another clock"), "{}", stderr(&o));
}
