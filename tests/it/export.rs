//! `rsrec export`: every format checked against the recording it came from, bit-exact.
//!
//! Recordings are made with the real binary: a synthetic session (`rsrec record --cameras
//! sim:2`, depth + H.265 colour) and real RealSense PNG sets imported with `rsrec import`.
//! The reference frames come from `rsrec::container::Reader` (or, for imported sets, the
//! original PNG files). The exports are then opened with real numpy (`np.load`, also
//! memory-mapped), Pillow (16-bit PNG, mode I;16) and a strict binary-PLY parser written with
//! numpy, by a Python script run with `$RSREC_PYTHON`; checks that need no Python run always.
//!
//! Without FFmpeg, real data or `$RSREC_PYTHON`, the affected tests print a loud warning and
//! skip; under `CI=true` they fail instead.

use crate::common;

use common::{p, rsrec, skip, stderr};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use rsrec::container::format::record_type;
use rsrec::container::{ColorFrameEntry, Reader};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Helpers

use common::have_ffmpeg;

/// `$RSREC_PYTHON`: a Python with numpy, Pillow, lz4 and zstandard (tools/requirements.txt).
pub(crate) fn python() -> Option<PathBuf> {
    match std::env::var_os("RSREC_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            skip("RSREC_PYTHON is not set (a Python with tools/requirements.txt installed)");
            None
        }
    }
}

fn run_ok(args: &[&str]) -> Output {
    let o = rsrec(args);
    assert!(o.status.success(), "rsrec {args:?} failed: {}", stderr(&o));
    o
}

/// A folder for fixtures shared by the tests of this process (statics are never dropped):
/// `$CARGO_TARGET_TMPDIR/export-fixtures/<pid>-<n>`. Folders left by earlier runs whose process has
/// ended are removed first, so they do not pile up.
fn keep_dir() -> PathBuf {
    common::keep_dir("export-fixtures")
}

/// Synthetic session: 2 cameras, depth 424x240@30 (lz4-planes), colour 320x240@15 (H.265),
/// 3 s. `None` without FFmpeg.
fn sim_session() -> Option<&'static Path> {
    have_ffmpeg().then(common::sim_session)
}

/// A real PNG set imported with `rsrec import` (depth + colour video); `None` without data.
fn real_import(set: &str) -> Option<(PathBuf, PathBuf)> {
    let data = common::data_dir()?;
    if !have_ffmpeg() {
        return None;
    }
    let out = keep_dir();
    run_ok(&[
        "import",
        p(&data.join(set)),
        "--fps",
        "30",
        "--out",
        p(&out),
        "--preset",
        "ultrafast",
        "--quiet",
    ]);
    Some((out.join(format!("{set}.rsrec")), data.join(set)))
}

fn ceiling() -> Option<&'static (PathBuf, PathBuf)> {
    static S: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    S.get_or_init(|| real_import("d435-ceiling-highacc"))
        .as_ref()
}

fn desk() -> Option<&'static (PathBuf, PathBuf)> {
    static S: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    S.get_or_init(|| real_import("d4xx-848x480-desk-holes"))
        .as_ref()
}

/// Camera names and files of a session, from session.json.
pub(crate) fn session_cameras(dir: &Path) -> Vec<(String, Vec<PathBuf>)> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("session.json")).unwrap()).unwrap();
    v["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| dir.join(f.as_str().unwrap()))
                    .collect(),
            )
        })
        .collect()
}

/// One camera as the container reader sees it (all its files, in order).
struct Reference {
    width: u32,
    height: u32,
    frames: Vec<Vec<u16>>,
    /// frame number, device ms, host us of every depth frame.
    depth: Vec<(u64, f64, i64)>,
    /// frame number, device ms, host us, segment, index in video of every colour frame.
    color: Vec<(u64, f64, i64, u32, u64)>,
    intrinsics: Option<rsrec::container::Intrinsics>,
    depth_units: f32,
    color_size: Option<(u32, u32)>,
}

fn reference(files: &[PathBuf]) -> Reference {
    let mut r = Reference {
        width: 0,
        height: 0,
        frames: Vec::new(),
        depth: Vec::new(),
        color: Vec::new(),
        intrinsics: None,
        depth_units: 0.0,
        color_size: None,
    };
    for f in files {
        let reader = Reader::open(f).unwrap();
        let d = reader.header().stream(0).unwrap();
        r.width = d.width;
        r.height = d.height;
        r.intrinsics = d.intrinsics.clone();
        r.depth_units = d.depth_units;
        if let Some(c) = reader.header().stream(1) {
            r.color_size = Some((c.width, c.height));
        }
        for i in 0..reader.frame_count(0) {
            let fr = reader.read_depth(0, i).unwrap();
            r.depth.push((
                fr.header.frame_number,
                fr.header.device_ts_ms,
                fr.header.host_ts_us,
            ));
            r.frames.push(fr.data);
        }
        for i in 0..reader.count(1, record_type::COLOR_FRAME) {
            let (rec, payload) = reader.read_record(1, record_type::COLOR_FRAME, i).unwrap();
            let e = ColorFrameEntry::decode(payload).unwrap();
            let h = rec.header;
            r.color.push((
                h.frame_number,
                h.device_ts_ms,
                h.host_ts_us,
                e.segment,
                e.index_in_video,
            ));
        }
    }
    r
}

/// Writes the reference for the Python checks: `NAME.u16` (all frames, little-endian) and
/// `NAME.json` (sizes, timestamps with device times as f64 bit patterns, colour entries).
fn write_reference(r: &Reference, dir: &Path, name: &str) {
    let mut bytes = Vec::new();
    for f in &r.frames {
        for v in f {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(dir.join(format!("{name}.u16")), bytes).unwrap();
    let meta = json!({
        "width": r.width,
        "height": r.height,
        "frame_numbers": r.depth.iter().map(|d| d.0).collect::<Vec<_>>(),
        "device_ts_bits": r.depth.iter().map(|d| d.1.to_bits()).collect::<Vec<_>>(),
        "host_ts_us": r.depth.iter().map(|d| d.2).collect::<Vec<_>>(),
        "depth_units": r.depth_units,
        "intrinsics": r.intrinsics,
        "color": r.color_size.map(|(w, h)| json!({"width": w, "height": h})),
        "color_frame_numbers": r.color.iter().map(|c| c.0).collect::<Vec<_>>(),
        "color_device_ts_bits": r.color.iter().map(|c| c.1.to_bits()).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join(format!("{name}.json")), meta.to_string()).unwrap();
}

/// Parses an `.npy` file: (descr, shape, data bytes).
pub(crate) fn read_npy(path: &Path) -> (String, Vec<u64>, Vec<u8>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY", "{}", path.display());
    assert_eq!(b[6], 1);
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    assert_eq!((10 + hl) % 64, 0, "data is 64-byte aligned");
    let text = std::str::from_utf8(&b[10..10 + hl]).unwrap();
    let descr = text.split("'descr': '").nth(1).unwrap();
    let descr = descr[..descr.find('\'').unwrap()].to_string();
    assert!(text.contains("'fortran_order': False"));
    let shape = text.split("'shape': (").nth(1).unwrap();
    let shape: Vec<u64> = shape[..shape.find(')').unwrap()]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (descr, shape, b[10 + hl..].to_vec())
}

fn u16s(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

pub(crate) fn u64s(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// frames.csv rows: (index, frame number, device ms, host us, file, rest).
fn read_csv(path: &Path) -> Vec<(usize, u64, f64, i64, String, Vec<String>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("index,frame_number,device_ts_ms,host_ts_us,file"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].to_string(),
                f[5..].iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect()
}

fn decode_png16(path: &Path) -> (u32, u32, Vec<u16>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    assert_eq!(info.bit_depth, png::BitDepth::Sixteen);
    let v = buf[..info.buffer_size()]
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    (info.width, info.height, v)
}

/// The Python side of the checks (numpy, Pillow, a strict PLY parser).
const CHECK_PY: &str = r#"
import csv, json, os, re, struct, sys
import numpy as np
from PIL import Image

def fail(msg):
    print("CHECK FAILED: " + msg)
    sys.exit(1)

def check(cond, msg):
    if not cond:
        fail(msg)

def bits_to_f64(bits):
    return np.array(bits, dtype=np.uint64).view(np.float64)

def load_ref(refdir, name):
    with open(os.path.join(refdir, name + ".json")) as f:
        meta = json.load(f)
    w, h = meta["width"], meta["height"]
    frames = np.fromfile(os.path.join(refdir, name + ".u16"), dtype="<u2").reshape(-1, h, w)
    return meta, frames

def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))

def sim_square_frame(img):
    """The synthetic colour frame number, from the position of its moving square."""
    h = img.shape[0]
    band = img[h // 3 + 2: h // 3 + h // 4 - 2, :, 2].astype(int)
    cols = np.nonzero(band.mean(axis=0) < 79)[0]
    return int(cols[0]) // 4 if len(cols) else None

def nearest_colour(meta, positions):
    """Independent pairing: for each depth frame, argmin |t_colour - t_depth| (first on ties)."""
    td = bits_to_f64(meta["device_ts_bits"])[positions]
    tc = bits_to_f64(meta["color_device_ts_bits"])
    d = np.abs(tc[None, :] - td[:, None])
    idx = np.argmin(d, axis=1)
    return idx, tc[idx] - td

def check_npy(out, refdir, name, positions, color, sim):
    meta, frames = load_ref(refdir, name)
    pos = np.array(positions, dtype=np.int64)
    n, h, w = len(pos), meta["height"], meta["width"]
    d = np.load(os.path.join(out, "depth.npy"))
    m = np.load(os.path.join(out, "depth.npy"), mmap_mode="r")
    check(isinstance(m, np.memmap), "mmap_mode='r' did not give a memmap")
    check(d.dtype == np.uint16 and d.shape == (n, h, w), f"depth.npy is {d.dtype} {d.shape}")
    check(np.array_equal(d, frames[pos]), "depth.npy differs from the recording")
    check(np.array_equal(np.asarray(m), frames[pos]), "memory-mapped depth.npy differs")
    ts = np.load(os.path.join(out, "timestamps.npy"))
    check(ts.dtype == np.float64 and ts.shape == (n,), f"timestamps.npy is {ts.dtype} {ts.shape}")
    check(np.array_equal(ts.view(np.uint64), np.array(meta["device_ts_bits"], np.uint64)[pos]),
          "device timestamps differ (bit for bit)")
    host = np.load(os.path.join(out, "host_timestamps_us.npy"))
    check(host.dtype == np.uint64, f"host_timestamps_us.npy is {host.dtype}")
    check(np.array_equal(host, np.array(meta["host_ts_us"], np.uint64)[pos]), "host timestamps differ")
    fn = np.load(os.path.join(out, "frame_numbers.npy"), mmap_mode="r")
    check(fn.dtype == np.uint64 and np.array_equal(fn, np.array(meta["frame_numbers"], np.uint64)[pos]),
          "frame numbers differ")
    with open(os.path.join(out, "intrinsics.json")) as f:
        info = json.load(f)
    check(info["depth"]["width"] == w and info["depth"]["height"] == h, "intrinsics.json size")
    check(info["selection"]["frames"] == n, "intrinsics.json frame count")
    if color:
        c = np.load(os.path.join(out, "color.npy"), mmap_mode="r")
        cw, ch = meta["color"]["width"], meta["color"]["height"]
        check(c.dtype == np.uint8 and c.shape == (n, ch, cw, 3), f"color.npy is {c.dtype} {c.shape}")
        cfn = np.load(os.path.join(out, "color_frame_numbers.npy"))
        off = np.load(os.path.join(out, "color_offset_ms.npy"))
        idx, expect_off = nearest_colour(meta, pos)
        check(np.array_equal(cfn, np.array(meta["color_frame_numbers"], np.uint64)[idx]),
              f"colour pairing differs: {cfn[:10]} vs {np.array(meta['color_frame_numbers'])[idx][:10]}")
        check(np.array_equal(off, expect_off), "colour offsets differ")
        check(info["color_pairing"]["clock"] == "device", "pairing clock")
        if sim:
            got = [sim_square_frame(np.asarray(c[k])) for k in range(n)]
            want = [int(x) * 4 % cw // 4 for x in cfn]
            check(got == want, f"decoded colour frames are not the paired ones: {got[:12]} vs {want[:12]}")
        else:
            check(float(np.asarray(c).std()) > 5, "colour frames look empty")

def natural_key(s):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]

def check_png16(out, refdir, name, positions, original):
    meta, frames = load_ref(refdir, name)
    rows = read_csv(os.path.join(out, "frames.csv"))
    check([int(r["index"]) for r in rows] == list(positions), "frames.csv indices")
    origs = None
    if original:
        d = os.path.join(original, "depth") if os.path.isdir(os.path.join(original, "depth")) else original
        origs = sorted([f for f in os.listdir(d) if f.endswith(".png")], key=natural_key)
        origs = [os.path.join(d, f) for f in origs]
    dev = bits_to_f64(meta["device_ts_bits"])
    for r in rows:
        k = int(r["index"])
        img = Image.open(os.path.join(out, r["file"]))
        check(img.mode == "I;16", f"{r['file']}: Pillow mode {img.mode}, expected I;16")
        a = np.array(img)
        check(a.dtype == np.uint16 and np.array_equal(a, frames[k]), f"{r['file']} differs from frame {k}")
        check(int(r["frame_number"]) == meta["frame_numbers"][k], "csv frame number")
        check(float(r["device_ts_ms"]) == dev[k], "csv device timestamp (exact)")
        check(int(r["host_ts_us"]) == meta["host_ts_us"][k], "csv host timestamp")
        check(r["file"].startswith("%08d_" % meta["frame_numbers"][k]), "file named by frame number")
        if origs:
            o = np.array(Image.open(origs[k]))
            check(np.array_equal(a, o), f"{r['file']} differs from the original {origs[k]}")

PLY_TYPES = {"float": "<f4", "float32": "<f4", "double": "<f8", "uchar": "u1", "uint8": "u1",
             "int": "<i4", "uint": "<u4", "short": "<i2", "ushort": "<u2", "char": "i1"}

def read_ply(path):
    """A strict binary little-endian PLY reader (vertex element only)."""
    data = open(path, "rb").read()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    lines = data[:end].decode("ascii").split("\n")[:-1]
    check(lines[0] == "ply", "PLY magic")
    check(lines[1] == "format binary_little_endian 1.0", "PLY format line")
    count, props = None, []
    for l in lines[2:-1]:
        t = l.split()
        if t[0] == "comment":
            continue
        if t[0] == "element":
            check(t[1] == "vertex" and count is None, f"unexpected element {l}")
            count = int(t[2])
        elif t[0] == "property":
            check(t[1] in PLY_TYPES, f"unknown property type {l}")
            props.append((t[2], PLY_TYPES[t[1]]))
        else:
            fail(f"unexpected header line {l!r}")
    check(lines[-1] == "end_header", "end_header")
    dt = np.dtype(props)
    body = data[end:]
    check(len(body) == count * dt.itemsize, f"PLY body is {len(body)} bytes, expected {count * dt.itemsize}")
    return np.frombuffer(body, dtype=dt)

def check_ply(out, refdir, name, positions, color_npy):
    meta, frames = load_ref(refdir, name)
    k_ = meta["intrinsics"]
    check(k_["model"] == "none" or not any(k_["coeffs"]), "test expects no distortion")
    f32 = np.float32
    units = f32(meta["depth_units"])
    rows = read_csv(os.path.join(out, "frames.csv"))
    check([int(r["index"]) for r in rows] == list(positions), "frames.csv indices")
    colors = np.load(color_npy, mmap_mode="r") if color_npy else None
    for j, r in enumerate(rows):
        k = int(r["index"])
        v = read_ply(os.path.join(out, r["file"]))
        d = frames[k].ravel()
        nz = np.nonzero(d)[0]
        check(len(v) == len(nz) == int(r["points"]), f"{r['file']}: {len(v)} points, {len(nz)} non-zero pixels")
        u, row = (nz % meta["width"]).astype(f32), (nz // meta["width"]).astype(f32)
        z = d[nz].astype(f32) * units
        x = z * ((u - f32(k_["ppx"])) / f32(k_["fx"]))
        y = z * ((row - f32(k_["ppy"])) / f32(k_["fy"]))
        check(np.array_equal(v["z"], z), f"{r['file']}: z differs")
        check(np.array_equal(v["x"], x) and np.array_equal(v["y"], y), f"{r['file']}: x/y differ")
        back = np.rint(v["z"].astype(np.float64) / float(units)).astype(np.int64)
        check(np.array_equal(back, d[nz].astype(np.int64)), f"{r['file']}: depth does not round-trip")
        if colors is not None:
            check(v.dtype.names[3:] == ("red", "green", "blue"), "PLY colour properties")
            img = np.asarray(colors[j]).reshape(-1, 3)
            rgb = np.stack([v["red"], v["green"], v["blue"]], axis=1)
            check(np.array_equal(rgb, img[nz]), f"{r['file']}: colours differ from the paired colour frame")
        else:
            check(v.dtype.names == ("x", "y", "z"), "PLY without colour has x y z only")

def check_color(out, refdir, name, ext, npy_dir, sim):
    meta, _ = load_ref(refdir, name)
    cw, ch = meta["color"]["width"], meta["color"]["height"]
    rows = read_csv(os.path.join(out, "frames.csv"))
    check(len(rows) > 0, "no colour frames exported")
    paired = {}
    if npy_dir:
        c = np.load(os.path.join(npy_dir, "color.npy"))
        for fnum, img in zip(np.load(os.path.join(npy_dir, "color_frame_numbers.npy")), c):
            paired[int(fnum)] = img
    compared = 0
    for r in rows:
        k = int(r["index"])
        check(int(r["frame_number"]) == meta["color_frame_numbers"][k], "csv colour frame number")
        img = Image.open(os.path.join(out, r["file"]))
        check(img.format == ("PNG" if ext == "png" else "JPEG"), f"{r['file']} is {img.format}")
        check(img.mode == "RGB" and img.size == (cw, ch), f"{r['file']}: {img.mode} {img.size}")
        a = np.array(img)
        if sim:
            check(sim_square_frame(a) == int(r["frame_number"]) * 4 % cw // 4,
                  f"{r['file']} is not colour frame {r['frame_number']}")
        ref = paired.get(int(r["frame_number"]))
        if ref is not None:
            compared += 1
            if ext == "png":
                check(np.array_equal(a, ref), f"{r['file']} differs from the same frame in color.npy")
            else:
                diff = np.abs(a.astype(int) - ref.astype(int)).mean()
                check(diff < 8, f"{r['file']}: JPEG differs from the frame by {diff:.1f} on average")
    check(not npy_dir or compared > 0, "no frame compared with color.npy")

if __name__ == "__main__":
    kind, args = sys.argv[1], json.loads(sys.argv[2])
    {"npy": check_npy, "png16": check_png16, "ply": check_ply, "color": check_color}[kind](**args)
    print("OK")
"#;

/// Runs the Python checks; `false` (skip) without `$RSREC_PYTHON`.
fn py_check(kind: &str, args: Value) -> bool {
    let Some(py) = python() else {
        return false;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("check_export.py");
    std::fs::write(&script, CHECK_PY).unwrap();
    let o = Command::new(&py)
        .arg(&script)
        .arg(kind)
        .arg(args.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    assert!(
        o.status.success(),
        "Python check {kind} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    true
}

fn assert_one_line_error(o: &Output, code: i32, contains: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {e}");
    let lines: Vec<&str> = e.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {e:?}");
    assert!(lines[0].starts_with("rsrec: error: "), "{e}");
    assert!(
        lines[0].contains(contains),
        "{e:?} should mention {contains:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn npy_with_colour_matches_the_recording() {
    let Some(session) = sim_session() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let refs = tempfile::tempdir().unwrap();
    let o = run_ok(&[
        "export",
        p(session),
        "--to",
        "npy",
        "--with-color",
        "--out",
        p(out.path()),
    ]);
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.contains("MB/s of raw depth"), "{summary}");
    for (name, files) in session_cameras(session) {
        let r = reference(&files);
        let dir = out.path().join(&name).join("npy");
        // Rust-side: the arrays hold exactly the recording.
        let (descr, shape, data) = read_npy(&dir.join("depth.npy"));
        assert_eq!(descr, "<u2");
        assert_eq!(
            shape,
            vec![r.frames.len() as u64, r.height as u64, r.width as u64]
        );
        assert_eq!(u16s(&data), r.frames.concat());
        let (descr, shape, data) = read_npy(&dir.join("timestamps.npy"));
        assert_eq!(
            (descr.as_str(), shape),
            ("<f8", vec![r.frames.len() as u64])
        );
        let ts: Vec<u64> = u64s(&data);
        assert_eq!(
            ts,
            r.depth.iter().map(|d| d.1.to_bits()).collect::<Vec<_>>()
        );
        let (_, _, data) = read_npy(&dir.join("frame_numbers.npy"));
        assert_eq!(u64s(&data), r.depth.iter().map(|d| d.0).collect::<Vec<_>>());
        let (_, _, data) = read_npy(&dir.join("host_timestamps_us.npy"));
        assert_eq!(
            u64s(&data),
            r.depth.iter().map(|d| d.2 as u64).collect::<Vec<_>>()
        );
        let (descr, shape, data) = read_npy(&dir.join("color.npy"));
        let (cw, ch) = r.color_size.unwrap();
        assert_eq!(descr, "|u1");
        assert_eq!(shape, vec![r.frames.len() as u64, ch as u64, cw as u64, 3]);
        assert_eq!(data.len() as u64, shape.iter().product::<u64>());
        // Within the span of the colour stream, every pairing is within half a colour
        // frame period (15 fps: 33.3 ms).
        let (_, _, off) = read_npy(&dir.join("color_offset_ms.npy"));
        let (c0, c1) = (r.color[0].1, r.color.last().unwrap().1);
        let mut inside = 0;
        for (o, d) in u64s(&off).into_iter().zip(&r.depth) {
            let o = f64::from_bits(o);
            assert!(o.is_finite());
            if d.1 >= c0 && d.1 <= c1 {
                inside += 1;
                assert!(o.abs() <= 1000.0 / 15.0 / 2.0 + 1e-6, "offset {o}");
            }
        }
        assert!(inside > r.depth.len() / 2);
        assert!(!dir.join("depth.npy.partial").exists());
        let info: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("intrinsics.json")).unwrap())
                .unwrap();
        assert_eq!(info["camera"], name.as_str());
        assert_eq!(info["depth"]["intrinsics"]["fx"], 212.0);

        write_reference(&r, refs.path(), &name);
        let positions: Vec<usize> = (0..r.frames.len()).collect();
        py_check(
            "npy",
            json!({"out": dir, "refdir": refs.path(), "name": name, "positions": positions,
                   "color": true, "sim": true}),
        );
    }
}

#[test]
fn png16_round_trips_real_pngs_bit_exact() {
    let Some((file, original)) = desk() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    run_ok(&[
        "export",
        p(file),
        "--to",
        "png16",
        "--out",
        p(out.path()),
        "--quiet",
    ]);
    let cam = "d4xx-848x480-desk-holes";
    let dir = out.path().join(cam).join("png16");
    let r = reference(std::slice::from_ref(file));
    let rows = read_csv(&dir.join("frames.csv"));
    assert_eq!(rows.len(), r.frames.len());
    let mut originals: Vec<PathBuf> = std::fs::read_dir(original.join("depth"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    originals.sort_by(|a, b| {
        rsrec::source::pngdir::natural_cmp(
            &a.file_name().unwrap().to_string_lossy(),
            &b.file_name().unwrap().to_string_lossy(),
        )
    });
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row.0, k);
        assert_eq!(row.1, r.depth[k].0);
        assert_eq!(row.2.to_bits(), r.depth[k].1.to_bits());
        assert_eq!(row.3, r.depth[k].2);
        assert_eq!(
            row.4,
            format!("{:08}_{:.3}.png", r.depth[k].0, r.depth[k].1)
        );
        let (w, h, v) = decode_png16(&dir.join(&row.4));
        assert_eq!((w, h), (r.width, r.height));
        assert_eq!(v, r.frames[k], "frame {k}");
        let (_, _, orig) = decode_png16(&originals[k]);
        assert_eq!(v, orig, "frame {k} differs from {}", originals[k].display());
    }
    let refs = tempfile::tempdir().unwrap();
    write_reference(&r, refs.path(), cam);
    py_check(
        "png16",
        json!({"out": dir, "refdir": refs.path(), "name": cam,
               "positions": (0..r.frames.len()).collect::<Vec<_>>(), "original": original}),
    );
}

#[test]
fn ply_points_are_the_depth_deprojected() {
    let Some((file, _)) = ceiling() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let cam = "d435-ceiling-highacc";
    // Every 10th frame, coloured (colour is 640x480 like depth: aligned pixel for pixel).
    for to in ["ply", "npy"] {
        let mut a = vec![
            "export",
            p(file),
            "--to",
            to,
            "--every",
            "10",
            "--out",
            p(out.path()),
            "--quiet",
        ];
        if to == "npy" {
            a.push("--with-color");
        }
        run_ok(&a);
    }
    let dir = out.path().join(cam).join("ply");
    let r = reference(std::slice::from_ref(file));
    let positions: Vec<usize> = (0..r.frames.len()).step_by(10).collect();
    let rows = read_csv(&dir.join("frames.csv"));
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        positions,
        "every 10th frame"
    );
    let k = r.intrinsics.clone().expect("the set has intrinsics");
    for row in &rows {
        let bytes = std::fs::read(dir.join(&row.4)).unwrap();
        let end = bytes
            .windows(11)
            .position(|w| w == b"end_header\n")
            .unwrap()
            + 11;
        let header = std::str::from_utf8(&bytes[..end]).unwrap();
        assert!(header.starts_with("ply\nformat binary_little_endian 1.0\n"));
        assert!(header.contains("property uchar red"), "{header}");
        let depth = &r.frames[row.0];
        let nz: Vec<usize> = (0..depth.len()).filter(|&i| depth[i] != 0).collect();
        assert!(header.contains(&format!("element vertex {}\n", nz.len())));
        assert_eq!(row.5[0].parse::<usize>().unwrap(), nz.len());
        assert_eq!(bytes.len() - end, nz.len() * 15);
        // Spot-check points: z = depth x units, x = z (u - ppx) / fx.
        for (j, &i) in nz.iter().enumerate().step_by(997) {
            let at = end + j * 15;
            let f = |o: usize| f32::from_le_bytes(bytes[at + o..at + o + 4].try_into().unwrap());
            let z = depth[i] as f32 * r.depth_units;
            let u = (i % r.width as usize) as f32;
            assert_eq!(f(8), z);
            assert_eq!(f(0), z * ((u - k.ppx) / k.fx));
        }
    }
    let refs = tempfile::tempdir().unwrap();
    write_reference(&r, refs.path(), cam);
    py_check(
        "ply",
        json!({"out": dir, "refdir": refs.path(), "name": cam, "positions": positions,
               "color_npy": out.path().join(cam).join("npy").join("color.npy")}),
    );
}

#[test]
fn colour_frames_are_the_indexed_frames() {
    let Some(session) = sim_session() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    run_ok(&[
        "export",
        p(session),
        "--to",
        "color",
        "--cameras",
        "sim1",
        "--out",
        p(out.path()),
        "--quiet",
    ]);
    let jpg = tempfile::tempdir().unwrap();
    run_ok(&[
        "export",
        p(session),
        "--to",
        "color",
        "--image-format",
        "jpeg",
        "--jpeg-quality",
        "95",
        "--frames",
        "5:40",
        "--every",
        "3",
        "--cameras",
        "sim1",
        "--out",
        p(jpg.path()),
        "--quiet",
    ]);
    let npy = tempfile::tempdir().unwrap();
    run_ok(&[
        "export",
        p(session),
        "--to",
        "npy",
        "--with-color",
        "--cameras",
        "sim1",
        "--out",
        p(npy.path()),
        "--quiet",
    ]);
    let (_, files) = session_cameras(session)
        .into_iter()
        .find(|c| c.0 == "sim1")
        .unwrap();
    let r = reference(&files);
    assert!(!out.path().join("sim0").exists(), "only the chosen camera");
    let dir = out.path().join("sim1").join("color");
    let rows = read_csv(&dir.join("frames.csv"));
    assert_eq!(rows.len(), r.color.len(), "every colour frame");
    for (k, row) in rows.iter().enumerate() {
        assert_eq!((row.0, row.1), (k, r.color[k].0));
        assert!(row.4.ends_with(".png"));
        let b = std::fs::read(dir.join(&row.4)).unwrap();
        assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
    }
    let jrows = read_csv(&jpg.path().join("sim1/color/frames.csv"));
    assert_eq!(
        jrows.iter().map(|r| r.0).collect::<Vec<_>>(),
        (5..40).step_by(3).collect::<Vec<_>>()
    );
    for row in &jrows {
        let b = std::fs::read(jpg.path().join("sim1/color").join(&row.4)).unwrap();
        assert_eq!(&b[..2], &[0xFF, 0xD8]);
        assert_eq!(&b[b.len() - 2..], &[0xFF, 0xD9]);
    }
    let refs = tempfile::tempdir().unwrap();
    write_reference(&r, refs.path(), "sim1");
    let npy_dir = npy.path().join("sim1/npy");
    py_check(
        "color",
        json!({"out": dir, "refdir": refs.path(), "name": "sim1", "ext": "png",
               "npy_dir": npy_dir, "sim": true}),
    );
    py_check(
        "color",
        json!({"out": jpg.path().join("sim1/color"), "refdir": refs.path(), "name": "sim1",
               "ext": "jpg", "npy_dir": npy_dir, "sim": true}),
    );
}

/// Seeking far into a colour video (instead of decoding from the start) yields exactly the
/// frames that decoding from the start yields.
#[test]
fn seeking_in_colour_video_gives_the_same_frames() {
    let Some(session) = sim_session() else {
        return;
    };
    let rec = rsrec::export::Recording::open(session).unwrap();
    let mut outputs = Vec::new();
    for seek_after in [1e9, 0.5] {
        let out = tempfile::tempdir().unwrap();
        let mut o = rsrec::export::ExportOptions::new(rsrec::export::Format::Npy, out.path());
        o.cameras = vec!["sim0".into()];
        o.color = true;
        o.seek_after_s = seek_after;
        o.window = rsrec::export::Window::Frames("50:".parse().unwrap());
        let report = rsrec::export::export_recording(&rec, &o, &mut rsrec::export::Silent).unwrap();
        assert_eq!(report.cameras[0].missing_color, 0);
        let (_, shape, data) = read_npy(&out.path().join("sim0/npy/color.npy"));
        let (_, _, numbers) = read_npy(&out.path().join("sim0/npy/color_frame_numbers.npy"));
        outputs.push((shape, data, u64s(&numbers)));
    }
    assert_eq!(outputs[0].0, outputs[1].0);
    assert_eq!(outputs[0].2, outputs[1].2);
    assert!(
        outputs[0].2[0] >= 15,
        "the window starts well into the video"
    );
    assert!(
        outputs[0].1 == outputs[1].1,
        "seeking changed the decoded frames"
    );
    // And they are the right frames: the synthetic square moves 4 px per colour frame.
    let (w, h) = (outputs[0].0[2] as usize, outputs[0].0[1] as usize);
    for (k, &n) in outputs[1].2.iter().enumerate() {
        let img = &outputs[1].1[k * w * h * 3..(k + 1) * w * h * 3];
        let band = (h / 3 + 2)..(h / 3 + h / 4 - 2);
        let col = (0..w)
            .find(|&x| {
                let s: u32 = band.clone().map(|y| img[(y * w + x) * 3 + 2] as u32).sum();
                (s as f64 / band.len() as f64) < 79.0
            })
            .unwrap();
        assert_eq!(
            col / 4,
            (n as usize * 4 % w) / 4,
            "colour frame {k} is not frame {n}"
        );
    }
}

#[test]
fn windows_select_the_right_frames() {
    let Some(session) = sim_session() else {
        return;
    };
    let cams = session_cameras(session);
    let r = reference(&cams[0].1);
    let name = &cams[0].0;
    let out = tempfile::tempdir().unwrap();
    // --frames A:B with --every.
    run_ok(&[
        "export",
        p(session),
        "--to",
        "png16",
        "--cameras",
        name,
        "--frames",
        "10:50",
        "--every",
        "7",
        "--out",
        p(out.path()),
        "--quiet",
    ]);
    let rows = read_csv(&out.path().join(name).join("png16/frames.csv"));
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![10, 17, 24, 31, 38, 45]
    );
    let files = std::fs::read_dir(out.path().join(name).join("png16"))
        .unwrap()
        .count();
    assert_eq!(files, 6 + 2, "6 PNGs + frames.csv + intrinsics.json");
    for row in &rows {
        let (_, _, v) = decode_png16(&out.path().join(name).join("png16").join(&row.4));
        assert_eq!(v, r.frames[row.0]);
    }
    // --time T0:T1: host time from the start of the recording (earliest frame of any camera).
    let start = cams
        .iter()
        .flat_map(|(_, f)| {
            let rr = reference(f);
            [rr.depth.first().map(|d| d.2), rr.color.first().map(|c| c.2)]
        })
        .flatten()
        .min()
        .unwrap();
    run_ok(&[
        "export",
        p(session),
        "--to",
        "npy",
        "--cameras",
        name,
        "--time",
        "1:2.5",
        "--out",
        p(out.path()),
        "--quiet",
    ]);
    let want: Vec<u64> = r
        .depth
        .iter()
        .filter(|d| d.2 >= start + 1_000_000 && d.2 < start + 2_500_000)
        .map(|d| d.0)
        .collect();
    assert!(want.len() > 30, "{}", want.len());
    let (_, shape, numbers) = read_npy(&out.path().join(name).join("npy/frame_numbers.npy"));
    assert_eq!(shape, vec![want.len() as u64]);
    assert_eq!(u64s(&numbers), want);
    // Open-ended windows.
    run_ok(&[
        "export",
        p(session),
        "--to",
        "npy",
        "--cameras",
        name,
        "--frames",
        "80:",
        "--out",
        p(out.path()),
        "--force",
        "--quiet",
    ]);
    let (_, shape, _) = read_npy(&out.path().join(name).join("npy/depth.npy"));
    assert_eq!(shape[0] as usize, r.frames.len() - 80);
}

#[test]
fn segment_files_are_one_recording() {
    if !have_ffmpeg() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
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
        "--segment",
        "1s",
        "--out",
        p(root.path()),
        "--session",
        "seg",
        "--quiet",
    ]);
    let session = root.path().join("seg");
    let cams = session_cameras(&session);
    assert!(
        cams[0].1.len() >= 2,
        "several segment files: {:?}",
        cams[0].1
    );
    let r = reference(&cams[0].1);
    let out = tempfile::tempdir().unwrap();
    run_ok(&[
        "export",
        p(&session),
        "--to",
        "npy",
        "--out",
        p(out.path()),
        "--quiet",
    ]);
    let dir = out.path().join(&cams[0].0).join("npy");
    let (_, shape, data) = read_npy(&dir.join("depth.npy"));
    assert_eq!(shape[0] as usize, r.frames.len());
    assert_eq!(u16s(&data), r.frames.concat());
    let (_, _, numbers) = read_npy(&dir.join("frame_numbers.npy"));
    let numbers = u64s(&numbers);
    assert_eq!(numbers, r.depth.iter().map(|d| d.0).collect::<Vec<_>>());
    // No frame lost or repeated at the boundaries.
    assert!(numbers.windows(2).all(|w| w[1] > w[0]), "{numbers:?}");
    // A position across the boundary: --frames counts over all files.
    let first_file = Reader::open(&cams[0].1[0]).unwrap().frame_count(0);
    let a = first_file - 2;
    let range = format!("{a}:{}", a + 4);
    run_ok(&[
        "export",
        p(&session),
        "--to",
        "png16",
        "--frames",
        &range,
        "--out",
        p(out.path()),
        "--quiet",
    ]);
    let rows = read_csv(&out.path().join(&cams[0].0).join("png16/frames.csv"));
    assert_eq!(rows.len(), 4);
    for row in rows {
        let (_, _, v) = decode_png16(&out.path().join(&cams[0].0).join("png16").join(&row.4));
        assert_eq!(v, r.frames[row.0]);
        assert_eq!(row.1, r.depth[row.0].0);
    }
}

#[test]
fn unclosed_and_damaged_files() {
    let Some(session) = sim_session() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = &session_cameras(session)[0].1[0];
    let bytes = std::fs::read(src).unwrap();
    // A writer killed mid-record: the file opens through its index blocks.
    let cut = tmp.path().join("cut.rsrec");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let reader = Reader::open(&cut).unwrap();
    assert!(!reader.is_closed());
    let n = reader.frame_count(0);
    let out = tmp.path().join("out");
    run_ok(&[
        "export",
        p(&cut),
        "--to",
        "npy",
        "--out",
        p(&out),
        "--quiet",
    ]);
    let name = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let (_, shape, data) = read_npy(&out.join(&name).join("npy/depth.npy"));
    assert_eq!(shape[0] as usize, n);
    let want: Vec<u16> = (0..n)
        .flat_map(|i| reader.read_depth(0, i).unwrap().data)
        .collect();
    assert_eq!(u16s(&data), want);

    // A damaged depth payload: a one-line error naming the frame, exit 1.
    let r = Reader::open(src).unwrap();
    let e = r.entry(0, record_type::DEPTH_FRAME, 5).unwrap();
    let mut bad = bytes.clone();
    bad[e.offset as usize + 48 + 10] ^= 0x40;
    let damaged = tmp.path().join("damaged.rsrec");
    std::fs::write(&damaged, &bad).unwrap();
    let o = rsrec(&[
        "export",
        p(&damaged),
        "--to",
        "npy",
        "--out",
        p(&tmp.path().join("out2")),
    ]);
    assert_one_line_error(&o, 1, "depth frame 5");
    assert!(stderr(&o).contains("checksum"), "{}", stderr(&o));
    let cam_dir = std::fs::read_dir(tmp.path().join("out2"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Neither the npy folder nor its staging folder (`npy.partial`) is left.
    let left: Vec<_> = std::fs::read_dir(&cam_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "incomplete output is removed: {left:?}");
    assert!(stderr(&o).contains("rsrec recover"), "{}", stderr(&o));

    // Colour without FFmpeg: one line, before anything is written.
    let o = rsrec(&[
        "export",
        p(session),
        "--to",
        "npy",
        "--with-color",
        "--ffmpeg",
        "/nonexistent/ffmpeg",
        "--out",
        p(&tmp.path().join("out3")),
    ]);
    assert_one_line_error(&o, 1, "ffmpeg not found");
    assert!(!tmp.path().join("out3").exists());
}

#[test]
fn bad_input_gives_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let missing = tmp.path().join("nope.rsrec");
    let o = rsrec(&["export", p(&missing), "--to", "npy", "--out", p(&out)]);
    assert_one_line_error(&o, 1, "No such file");
    assert!(stderr(&o).contains("nope.rsrec"));

    let junk = tmp.path().join("junk.rsrec");
    std::fs::write(&junk, b"this is not a recording at all, just text").unwrap();
    let o = rsrec(&["export", p(&junk), "--to", "png16", "--out", p(&out)]);
    assert_one_line_error(&o, 1, "not an rsrec file");

    let empty_dir = tmp.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    let o = rsrec(&["export", p(&empty_dir), "--to", "npy", "--out", p(&out)]);
    assert_one_line_error(&o, 1, "no .rsrec files");

    // Bad arguments are clap's (exit 2).
    for args in [
        vec!["export", "x", "--to", "tiff", "--out", "o"],
        vec![
            "export", "x", "--to", "npy", "--out", "o", "--frames", "5:2",
        ],
        vec!["export", "x", "--to", "npy", "--out", "o", "--every", "0"],
        vec![
            "export", "x", "--to", "npy", "--out", "o", "--frames", "1:2", "--time", "0:1",
        ],
    ] {
        let o = rsrec(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }

    // A small real file for the rest (synthetic PNG folder, no colour).
    let set = tmp.path().join("set");
    std::fs::create_dir_all(set.join("depth")).unwrap();
    for i in 0..6 {
        common::write_png16(
            &set.join("depth").join(format!("{i}.png")),
            16,
            8,
            &common::synthetic_frame(16, 8, i),
        );
    }
    run_ok(&[
        "import",
        p(&set),
        "--fps",
        "30",
        "--out",
        p(&tmp.path().join("imp")),
        "--quiet",
    ]);
    let file = tmp.path().join("imp/set.rsrec");
    let o = rsrec(&[
        "export",
        p(&file),
        "--to",
        "npy",
        "--frames",
        "4:9",
        "--out",
        p(&out),
    ]);
    assert_one_line_error(&o, 1, "out of range");
    assert!(stderr(&o).contains("6 depth frames"), "{}", stderr(&o));
    let o = rsrec(&[
        "export",
        p(&file),
        "--to",
        "npy",
        "--frames",
        "6:",
        "--out",
        p(&out),
    ]);
    assert_one_line_error(&o, 1, "out of range");
    let o = rsrec(&[
        "export",
        p(&file),
        "--to",
        "npy",
        "--time",
        "30:40",
        "--out",
        p(&out),
    ]);
    assert_one_line_error(&o, 1, "selects no depth frames");
    let o = rsrec(&[
        "export",
        p(&file),
        "--to",
        "npy",
        "--cameras",
        "cam9",
        "--out",
        p(&out),
    ]);
    assert_one_line_error(&o, 1, "no camera \"cam9\"");
    let o = rsrec(&["export", p(&file), "--to", "ply", "--out", p(&out)]);
    assert_one_line_error(&o, 1, "no intrinsics");
    let o = rsrec(&["export", p(&file), "--to", "color", "--out", p(&out)]);
    assert_one_line_error(&o, 1, "nothing to export");
    assert!(stderr(&o).contains("has colour frames"));
    let o = rsrec(&[
        "export",
        p(&file),
        "--to",
        "npy",
        "--with-color",
        "--out",
        p(&out),
    ]);
    assert_one_line_error(&o, 1, "no colour frames");
    let o = rsrec(&[
        "export",
        p(&file),
        "--to",
        "png16",
        "--with-color",
        "--out",
        p(&out),
    ]);
    assert_one_line_error(&o, 2, "--with-color applies to --to npy");
    // Unwritable output: a path below a regular file (permissions do not stop root).
    let blocker = tmp.path().join("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let o = rsrec(&[
        "export",
        p(&file),
        "--to",
        "npy",
        "--out",
        p(&blocker.join("out")),
    ]);
    assert_one_line_error(&o, 1, "blocker");
    assert!(!out.exists(), "nothing written by the failed exports");
}

#[test]
fn existing_output_needs_force() {
    let tmp = tempfile::tempdir().unwrap();
    let set = tmp.path().join("cam");
    std::fs::create_dir_all(&set).unwrap();
    for i in 0..4 {
        common::write_png16(
            &set.join(format!("{i}.png")),
            8,
            4,
            &common::synthetic_frame(8, 4, i),
        );
    }
    run_ok(&[
        "import",
        p(&set),
        "--fps",
        "10",
        "--out",
        p(&tmp.path().join("imp")),
        "--quiet",
    ]);
    let file = tmp.path().join("imp/cam.rsrec");
    let out = tmp.path().join("out");
    let args = ["export", p(&file), "--to", "png16", "--out", p(&out)];
    let o = run_ok(&args);
    assert!(String::from_utf8_lossy(&o.stdout).contains("cam: 4 depth frames"));
    let dir = out.join("cam/png16");
    let marker = dir.join("user-file.txt");
    std::fs::write(&marker, b"mine").unwrap();
    let o = rsrec(&args);
    assert_one_line_error(&o, 1, "already exists (use --force");
    assert!(marker.exists(), "nothing touched without --force");
    // Other formats go to their own folders and do not conflict.
    run_ok(&[
        "export",
        p(&file),
        "--to",
        "npy",
        "--out",
        p(&out),
        "--quiet",
    ]);
    let o = run_ok(&[
        "export",
        p(&file),
        "--to",
        "png16",
        "--out",
        p(&out),
        "--force",
        "--quiet",
    ]);
    assert!(o.stdout.is_empty(), "--quiet prints nothing");
    assert!(o.stderr.is_empty(), "--quiet prints nothing");
    assert!(!marker.exists(), "--force replaces the folder");
    assert_eq!(read_csv(&dir.join("frames.csv")).len(), 4);
    assert!(out.join("cam/npy/depth.npy").exists());
}

/// A file whose every frame has the same host time (a bag whose system time is 0, imported
/// before rsrec took arrival times for it): 90 depth frames 33.3 ms apart on the device clock.
fn same_host_time_file(dir: &Path) -> PathBuf {
    use rsrec::codec::DepthCodec;
    use rsrec::container::format::ts_domain;
    use rsrec::container::{FileHeader, RecordHeader, StreamDescriptor, Writer, WriterOptions};
    let path = dir.join("cam.rsrec");
    let header = FileHeader::new(
        Default::default(),
        vec![StreamDescriptor::depth(0, 16, 12, 30.0)],
    );
    let mut w = Writer::create(&path, &header, WriterOptions::deterministic(8)).unwrap();
    let mut payload = Vec::new();
    for n in 0..90u64 {
        let f = common::synthetic_frame(16, 12, n);
        DepthCodec::Lz4Planes
            .encode(&f, 16, 12, &mut payload)
            .unwrap();
        let h = RecordHeader {
            record_type: record_type::DEPTH_FRAME,
            stream: 0,
            codec: DepthCodec::Lz4Planes.id(),
            ts_domain: ts_domain::HARDWARE_CLOCK,
            flags: 0,
            frame_number: n,
            device_ts_ms: 5000.0 + n as f64 * 1000.0 / 30.0,
            host_ts_us: 0,
        };
        w.write_record(&h, &payload).unwrap();
    }
    w.finish().unwrap();
    path
}

/// Issue 16: with every host time the same, the recording had length 0 for `export --time`
/// and the viewer. Such a camera is placed by its device time, and export says so.
#[test]
fn export_time_falls_back_to_device_time_when_host_times_are_all_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let file = same_host_time_file(tmp.path());
    let out = tmp.path().join("out");
    let o = rsrec(&[
        "export",
        p(&file),
        "--to",
        "png16",
        "--time",
        "1:2",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("same host time; frames are placed by device time"),
        "{}",
        stderr(&o)
    );
    let csv = walk(&out)
        .into_iter()
        .find(|f| f.ends_with("frames.csv"))
        .expect("frames.csv");
    let numbers: Vec<u64> = read_csv(&csv).iter().map(|r| r.1).collect();
    // Device time 1 s .. 2 s after the first frame: frames 30..59.
    assert_eq!(numbers, (30..60).collect::<Vec<_>>());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
