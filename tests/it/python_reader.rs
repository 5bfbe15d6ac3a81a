//! `tools/rsrec_reader.py` (written from format-spec.md alone) against the Rust reader: over
//! the same recordings, they must agree on every index entry, every depth frame (bit for
//! bit), every timestamp, colour entry, gap, event and IMU sample, and on how each file was
//! opened (closed; unclosed through index blocks; unclosed by a full scan).
//!
//! Needs `$RSREC_PYTHON` (a Python with tools/requirements.txt installed); without it the
//! tests print a loud warning and skip, except under `CI=true` where they fail.

use crate::common;

use common::{p, skip};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use rsrec::container::format::record_type;
use rsrec::container::record::decode_imu_batch;
use rsrec::container::scan::{scan, ScanMode};
use rsrec::container::{ColorFrameEntry, OpenedVia, Reader, StreamKind, VideoSegment};
use serde_json::Value;

fn python() -> Option<PathBuf> {
    match std::env::var_os("RSREC_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            skip("RSREC_PYTHON is not set (a Python with tools/requirements.txt installed)");
            None
        }
    }
}

fn have_ffmpeg() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools")
}

fn rsrec_ok(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .args(args)
        .output()
        .expect("run rsrec");
    assert!(
        o.status.success(),
        "rsrec {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs a Python snippet with the reader importable; returns its output.
fn run_py(py: &Path, code: &str, args: &[&str]) -> Output {
    let full = format!(
        "import sys\nsys.path.insert(0, {:?})\n{code}",
        tools_dir().display().to_string()
    );
    Command::new(py)
        .arg("-c")
        .arg(full)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()))
}

fn py_ok(py: &Path, code: &str, args: &[&str]) -> String {
    let o = run_py(py, code, args);
    assert!(
        o.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The Python side: everything the reader sees in a file, as JSON, and the depth frames as
/// one little-endian u16 file.
const DUMP_PY: &str = r#"
import json, struct, sys
import numpy as np
import rsrec_reader as rr

def bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]

def f32bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]

def dump(path, prefix):
    with rr.RsrecFile(path) as f:
        d = {"closed": f.closed, "opened_via": f.opened_via,
             "torn_tail_bytes": f.torn_tail_bytes, "record_count": f.record_count,
             "writer": f.writer, "created_utc_us": f.created_utc_us, "device": f.device,
             "metadata_json": f.metadata_json,
             "streams": [[s.id, s.kind, s.name, s.width, s.height, s.format, bits(s.fps),
                          f32bits(s.depth_units), s.intrinsics is not None,
                          s.extrinsics is not None] for s in f.streams],
             "sections": [], "frames": [], "bad_frames": [], "color": [], "gaps": [],
             "events": [], "imu": {}, "videos": {}}
        for (sid, rt), sec in sorted(f.sections.items()):
            e = sec.entries
            d["sections"].append({
                "stream": sid, "type": rt, "flags": sec.flags, "payload_bytes": sec.payload_bytes,
                "offset": [int(x) for x in e["offset"]],
                "frame_number": [int(x) for x in e["frame_number"]],
                "device_bits": [int(x) for x in np.ascontiguousarray(e["device_ts_ms"]).view(np.uint64)],
                "host": [int(x) for x in e["host_ts_us"]]})
        sid = f.depth_stream
        s = f.stream(sid)
        ts = f.timestamps()
        assert len(ts.device_ms) == f.frame_count() == len(f)
        with open(prefix + ".u16", "wb") as out:
            for k in range(f.frame_count()):
                try:
                    fr = f.depth_frame(k)
                except rr.FrameError as e:
                    d["bad_frames"].append([k, str(e)])
                    out.write(np.zeros((s.height, s.width), "<u2").tobytes())
                    continue
                assert fr.data.dtype == np.uint16 and fr.data.shape == (s.height, s.width)
                # The index (timestamps()) and the record headers agree.
                assert bits(fr.device_ts_ms) == bits(float(ts.device_ms[k]))
                assert fr.host_ts_us == int(ts.host_us[k])
                assert fr.frame_number == int(ts.frame_numbers[k])
                out.write(fr.data.astype("<u2").tobytes())
                d["frames"].append([k, fr.frame_number, bits(fr.device_ts_ms), fr.host_ts_us,
                                    fr.ts_domain, fr.codec])
        # Iteration gives the same frames as random access.
        if not d["bad_frames"]:
            it = [fr.frame_number for fr in f.frames(step=3)]
            assert it == [x[1] for x in d["frames"]][::3], "iteration"
            assert [fr.index for fr in f][-1] == f.frame_count() - 1
        if f.color_stream is not None:
            d["color"] = [[c.frame_number, bits(c.device_ts_ms), c.host_ts_us, c.segment,
                           c.index_in_video, c.video_time_us] for c in f.color_frames()]
            d["videos"] = {str(k): [v.file_name, v.codec] for k, v in f.video_segments().items()}
        if f.depth_stream is not None:
            d["metadata"] = [[k[0], k[1], sorted(m.items())]
                             for k, m in sorted(f.frame_metadata().items())]
        # §5.9 Infrared frames: headers, and the pixels' sum and a hash (bit-exact check).
        d["infrared"] = {}
        for ir in f.infrared_streams:
            rows = []
            for k in range(f.infrared_count(ir)):
                fr = f.infrared_frame(k, ir)
                assert fr.data.dtype == np.uint8
                rows.append([fr.frame_number, bits(fr.device_ts_ms), fr.host_ts_us, fr.codec,
                             fr.data.tobytes().hex()])
            d["infrared"][str(ir)] = rows
        d["gaps"] = [[g.stream, g.first_frame, g.last_frame, g.count, g.reason, g.detail]
                     for g in f.gaps()]
        d["events"] = [[e.stream, e.kind, e.message, e.host_ts_us] for e in f.events()]
        for st in f.streams:
            if st.kind in (4, 5):
                a, doms = f.imu(st.id), f.imu_ts_domains(st.id)
                assert len(doms) == len(a) and doms.dtype == np.uint8
                d["imu"][str(st.id)] = [[int(r["frame_number"]), bits(float(r["device_ts_ms"])),
                                         int(r["host_ts_us"]), f32bits(float(r["x"])),
                                         f32bits(float(r["y"])), f32bits(float(r["z"])), int(dm)]
                                        for r, dm in zip(a, doms)]
        # Seeking agrees with the timestamps.
        if len(ts.host_us):
            mid = int(ts.host_us[len(ts.host_us) // 2])
            d["seek_host_mid"] = f.seek_host_ts(mid)
            d["find_last_number"] = f.find_frame_number(int(ts.frame_numbers[-1]))
    with open(prefix + ".json", "w") as out:
        json.dump(d, out)

for i, path in enumerate(sys.argv[2:]):
    dump(path, sys.argv[1] + "/" + str(i))
print("dumped", len(sys.argv) - 2)
"#;

fn opened_via(v: OpenedVia) -> &'static str {
    match v {
        OpenedVia::FinalIndex => "final_index",
        OpenedVia::IndexBlocks => "index_blocks",
        OpenedVia::Scan => "scan",
    }
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

/// Compares the Python dump of `path` with what the Rust reader reads; returns a
/// description of what was compared.
fn compare(path: &Path, dump: &Value, frames_file: &Path) -> String {
    let r = Reader::open(path).unwrap();
    let what = path.display();
    assert_eq!(dump["closed"], r.is_closed(), "{what}: closed");
    assert_eq!(dump["opened_via"], opened_via(r.opened_via()), "{what}");
    assert_eq!(
        dump["torn_tail_bytes"],
        r.torn_tail_bytes(),
        "{what}: torn tail"
    );
    let h = r.header();
    assert_eq!(dump["writer"], h.writer.as_str());
    assert_eq!(dump["created_utc_us"], h.created_utc_us);
    assert_eq!(dump["device"]["name"], h.device.name.as_str());
    assert_eq!(dump["device"]["serial"], h.device.serial.as_str());
    assert_eq!(dump["metadata_json"], h.metadata_json.as_str());
    let streams = dump["streams"].as_array().unwrap();
    assert_eq!(streams.len(), h.streams.len());
    for (s, d) in streams.iter().zip(&h.streams) {
        assert_eq!(s[0], d.id);
        assert_eq!(s[1], d.kind.code());
        assert_eq!(s[2], d.name.as_str());
        assert_eq!(
            (s[3].as_u64(), s[4].as_u64()),
            (Some(d.width as u64), Some(d.height as u64))
        );
        assert_eq!(s[5], d.format.code());
        assert_eq!(s[6], d.fps.to_bits());
        assert_eq!(s[7], d.depth_units.to_bits());
        assert_eq!(s[8], d.intrinsics.is_some());
        assert_eq!(s[9], d.extrinsics.is_some());
    }
    // Every section and index entry.
    let sections = dump["sections"].as_array().unwrap();
    assert_eq!(sections.len(), r.sections().len(), "{what}: sections");
    let mut entries = 0;
    for (s, rs) in sections.iter().zip(r.sections()) {
        let (sid, rt) = (rs.stream, rs.record_type);
        assert_eq!(
            (s["stream"].as_u64(), s["type"].as_u64()),
            (Some(sid as u64), Some(rt as u64))
        );
        assert_eq!(s["flags"], rs.flags, "{what}: sort flags of ({sid}, {rt})");
        assert_eq!(
            s["payload_bytes"], rs.payload_bytes,
            "{what}: payload bytes"
        );
        let e: Vec<_> = r.entries(sid, rt).collect();
        assert_eq!(
            u64s(&s["offset"]),
            e.iter().map(|x| x.offset).collect::<Vec<_>>()
        );
        assert_eq!(
            u64s(&s["frame_number"]),
            e.iter().map(|x| x.frame_number).collect::<Vec<_>>()
        );
        assert_eq!(
            u64s(&s["device_bits"]),
            e.iter()
                .map(|x| x.device_ts_ms.to_bits())
                .collect::<Vec<_>>()
        );
        let host: Vec<i64> = s["host"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        assert_eq!(host, e.iter().map(|x| x.host_ts_us).collect::<Vec<_>>());
        entries += e.len();
    }
    // Every depth frame, bit for bit, and its header.
    let depth_id = h
        .streams
        .iter()
        .find(|s| s.kind == StreamKind::Depth)
        .unwrap()
        .id;
    let desc = h.stream(depth_id).unwrap();
    let n_px = desc.width as usize * desc.height as usize;
    let bytes = std::fs::read(frames_file).unwrap();
    let n = r.frame_count(depth_id);
    assert_eq!(bytes.len(), n * n_px * 2, "{what}: frames file");
    let bad: Vec<u64> = dump["bad_frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[0].as_u64().unwrap())
        .collect();
    let frames = dump["frames"].as_array().unwrap();
    let mut fi = frames.iter();
    for k in 0..n {
        match r.read_depth(depth_id, k) {
            Ok(fr) => {
                assert!(
                    !bad.contains(&(k as u64)),
                    "{what}: Python failed frame {k}"
                );
                let got: Vec<u16> = bytes[k * n_px * 2..(k + 1) * n_px * 2]
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                assert!(got == fr.data, "{what}: depth frame {k} differs");
                let d = fi.next().unwrap();
                assert_eq!(d[0], k);
                assert_eq!(d[1], fr.header.frame_number);
                assert_eq!(d[2], fr.header.device_ts_ms.to_bits());
                assert_eq!(d[3], fr.header.host_ts_us);
                assert_eq!(d[4], fr.header.ts_domain);
                assert_eq!(d[5], fr.header.codec.0);
            }
            Err(e) => assert!(
                bad.contains(&(k as u64)),
                "{what}: Rust fails frame {k} ({e}) but Python decoded it"
            ),
        }
    }
    // §5.9 Infrared frames, pixel for pixel.
    for ir in h.streams.iter().filter(|s| s.kind == StreamKind::Infrared) {
        let rows = dump["infrared"][ir.id.to_string()].as_array().unwrap();
        assert_eq!(
            rows.len(),
            r.count(ir.id, record_type::INFRARED_FRAME),
            "{what}"
        );
        for (k, d) in rows.iter().enumerate() {
            let fr = r.read_infrared(ir.id, k).unwrap();
            assert_eq!(d[0], fr.header.frame_number);
            assert_eq!(d[1], fr.header.device_ts_ms.to_bits());
            assert_eq!(d[2], fr.header.host_ts_us);
            assert_eq!(d[3], fr.header.codec.0);
            let hex: String = fr.data.iter().map(|b| format!("{b:02x}")).collect();
            assert!(d[4] == hex.as_str(), "{what}: infrared frame {k} differs");
        }
    }
    // Colour entries and video segments.
    if let Some(c) = h.streams.iter().find(|s| s.kind == StreamKind::Color) {
        let color = dump["color"].as_array().unwrap();
        assert_eq!(color.len(), r.count(c.id, record_type::COLOR_FRAME));
        for (i, d) in color.iter().enumerate() {
            let (rec, p) = r.read_record(c.id, record_type::COLOR_FRAME, i).unwrap();
            let e = ColorFrameEntry::decode(p).unwrap();
            assert_eq!(d[0], rec.header.frame_number);
            assert_eq!(d[1], rec.header.device_ts_ms.to_bits());
            assert_eq!(d[2], rec.header.host_ts_us);
            assert_eq!(
                (d[3].as_u64(), d[4].as_u64(), d[5].as_i64()),
                (
                    Some(e.segment as u64),
                    Some(e.index_in_video),
                    e.video_time_us
                )
            );
        }
        let videos = dump["videos"].as_object().unwrap();
        assert_eq!(videos.len(), r.count(c.id, record_type::VIDEO_SEGMENT));
        for i in 0..videos.len() {
            let (_, p) = r.read_record(c.id, record_type::VIDEO_SEGMENT, i).unwrap();
            let v = VideoSegment::decode(p).unwrap();
            let d = &videos[&v.segment.to_string()];
            assert_eq!(
                (d[0].as_str(), d[1].as_str()),
                (Some(v.file_name.as_str()), Some(v.codec.as_str()))
            );
        }
    }
    // §5.8 Frame metadata of the depth stream.
    if let Some(dm) = dump["metadata"].as_array() {
        let d = depth_id;
        let n = r.count(d, record_type::FRAME_METADATA);
        assert_eq!(dm.len(), n, "{what}: metadata records");
        let mut want: Vec<(u64, i64, Pairs)> = (0..n)
            .map(|i| {
                let (rec, p) = r.read_record(d, record_type::FRAME_METADATA, i).unwrap();
                let mut m = rsrec::container::FrameMetadata::decode(p).unwrap().pairs;
                m.sort();
                (rec.header.frame_number, rec.header.host_ts_us, m)
            })
            .collect();
        want.sort();
        for (d, w) in dm.iter().zip(&want) {
            assert_eq!(d[0].as_u64(), Some(w.0));
            assert_eq!(d[1].as_i64(), Some(w.1));
            let pairs: Vec<(String, i64)> = d[2]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_i64().unwrap()))
                .collect();
            assert_eq!(pairs, w.2, "{what}: metadata of frame {}", w.0);
        }
    }
    // Gaps, events, IMU.
    let gaps = r.gaps().unwrap();
    let dg = dump["gaps"].as_array().unwrap();
    assert_eq!(dg.len(), gaps.len(), "{what}: gaps");
    for (d, (s, g)) in dg.iter().zip(&gaps) {
        assert_eq!(d[0], *s);
        assert_eq!(
            (d[1].as_u64(), d[2].as_u64(), d[3].as_u64()),
            (Some(g.first_frame), Some(g.last_frame), Some(g.count))
        );
        assert_eq!(d[4], g.reason.code());
        assert_eq!(d[5], g.detail.as_str());
    }
    let events = r.events().unwrap();
    let de = dump["events"].as_array().unwrap();
    assert_eq!(de.len(), events.len(), "{what}: events");
    for (d, (s, e)) in de.iter().zip(&events) {
        assert_eq!(d[0], *s);
        assert_eq!(d[1], e.kind.as_str());
        assert_eq!(d[2], e.message.as_str());
    }
    let mut imu_samples = 0;
    for s in h
        .streams
        .iter()
        .filter(|s| matches!(s.kind, StreamKind::Gyro | StreamKind::Accel))
    {
        let mut want = Vec::new();
        let mut domains = Vec::new();
        for i in 0..r.count(s.id, record_type::IMU_BATCH) {
            let (rec, p) = r.read_record(s.id, record_type::IMU_BATCH, i).unwrap();
            let batch = decode_imu_batch(p).unwrap();
            domains.extend(std::iter::repeat_n(rec.header.ts_domain, batch.len()));
            want.extend(batch);
        }
        let got = dump["imu"][s.id.to_string()].as_array().unwrap();
        assert_eq!(
            got.len(),
            want.len(),
            "{what}: IMU samples of stream {}",
            s.id
        );
        for ((g, w), dm) in got.iter().zip(&want).zip(&domains) {
            // Each sample on its batch's clock (§5.3).
            assert_eq!(g[6], *dm);
            assert_eq!(g[0], w.frame_number);
            assert_eq!(g[1], w.device_ts_ms.to_bits());
            assert_eq!(g[2], w.host_ts_us);
            for a in 0..3 {
                assert_eq!(g[3 + a], w.xyz[a].to_bits());
            }
        }
        imu_samples += want.len();
    }
    // Seeking.
    if n > 0 {
        let mid = r
            .entry(depth_id, record_type::DEPTH_FRAME, n / 2)
            .unwrap()
            .host_ts_us;
        assert_eq!(
            dump["seek_host_mid"],
            r.seek_host_ts(depth_id, record_type::DEPTH_FRAME, mid)
        );
        let last = r
            .entry(depth_id, record_type::DEPTH_FRAME, n - 1)
            .unwrap()
            .frame_number;
        assert_eq!(
            dump["find_last_number"],
            r.find_frame_number(depth_id, record_type::DEPTH_FRAME, last)
                .map_or(Value::Null, Value::from)
        );
    }
    format!(
        "{}: {} via {}, {entries} index entries, {n} depth frames ({} bad), {} gaps, {} events, {imu_samples} IMU samples",
        path.file_name().unwrap().to_string_lossy(),
        if r.is_closed() { "closed" } else { "unclosed" },
        opened_via(r.opened_via()),
        bad.len(),
        gaps.len(),
        events.len()
    )
}

/// Dumps `files` with Python and compares each with the Rust reader.
/// A frame's metadata pairs.
type Pairs = Vec<(String, i64)>;

fn agree(py: &Path, files: &[PathBuf]) -> Vec<String> {
    let out = tempfile::tempdir().unwrap();
    let mut args = vec![p(out.path()).to_string()];
    args.extend(files.iter().map(|f| p(f).to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    py_ok(py, DUMP_PY, &args);
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let dump: Value = serde_json::from_str(
                &std::fs::read_to_string(out.path().join(format!("{i}.json"))).unwrap(),
            )
            .unwrap();
            compare(f, &dump, &out.path().join(format!("{i}.u16")))
        })
        .collect()
}

/// A folder for fixtures shared by the tests of this process (statics are never dropped):
/// `$CARGO_TARGET_TMPDIR/python-reader-fixtures/<pid>-<n>`. Folders left by earlier runs whose process has
/// ended are removed first, so they do not pile up.
fn keep_dir() -> PathBuf {
    common::keep_dir("python-reader-fixtures")
}

/// A recorded session (2 synthetic cameras, IMU, colour when FFmpeg is there). Gaps and
/// events come from the fixtures (`fixtures/v1`).
fn session() -> &'static Path {
    static S: OnceLock<PathBuf> = OnceLock::new();
    S.get_or_init(|| {
        let root = keep_dir();
        let color = if have_ffmpeg() { "160x120@15" } else { "off" };
        rsrec_ok(&[
            "record",
            "--cameras",
            "sim:2",
            "--duration",
            "2.5s",
            "--depth",
            "212x120@30",
            "--color",
            color,
            "--preset",
            "ultrafast",
            "--imu",
            "--out",
            p(&root),
            "--session",
            "s",
            "--quiet",
        ]);
        root.join("s")
    })
}

fn session_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rsrec"))
        .collect();
    v.sort();
    v
}

/// Offsets of every index block of a file.
fn index_blocks(bytes: &[u8], first: u64) -> Vec<u64> {
    let mut v = Vec::new();
    scan(bytes, first, ScanMode::OPEN, |r, _| {
        if r.header.record_type == record_type::INDEX_BLOCK {
            v.push(r.offset);
        }
        Ok(())
    });
    v
}

#[test]
fn python_and_rust_agree_on_a_recorded_session() {
    let Some(py) = python() else {
        return;
    };
    let files = session_files(session());
    assert_eq!(files.len(), 2);
    let tmp = tempfile::tempdir().unwrap();
    let mut all = files.clone();
    // The same file cut short (a killed writer): opened through its index blocks.
    let bytes = std::fs::read(&files[0]).unwrap();
    let cut = tmp.path().join("cut.rsrec");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 5 + 17]).unwrap();
    assert_eq!(
        Reader::open(&cut).unwrap().opened_via(),
        OpenedVia::IndexBlocks
    );
    all.push(cut);
    // Every index block damaged: opened by a full forward scan.
    let first = Reader::open(&files[0]).unwrap().first_record();
    let mut noindex = bytes[..bytes.len() * 4 / 5].to_vec();
    let blocks = index_blocks(&noindex, first);
    assert!(!blocks.is_empty());
    for b in blocks {
        noindex[b as usize + 48 + 3] ^= 0xFF; // prev_block pointer: payload CRC fails
    }
    let scanned = tmp.path().join("noindex.rsrec");
    std::fs::write(&scanned, &noindex).unwrap();
    assert_eq!(
        Reader::open(&scanned).unwrap().opened_via(),
        OpenedVia::Scan
    );
    all.push(scanned);
    // A damaged depth payload: that frame alone fails, in both readers.
    let r = Reader::open(&files[1]).unwrap();
    let e = r.entry(0, record_type::DEPTH_FRAME, 7).unwrap();
    let mut bad = std::fs::read(&files[1]).unwrap();
    bad[e.offset as usize + 48 + 20] ^= 0x01;
    let damaged = tmp.path().join("damaged.rsrec");
    std::fs::write(&damaged, &bad).unwrap();
    all.push(damaged);
    // The spec's own test vectors, of both format versions (v1 entries have no video time).
    for version in ["v1", "v2", "v3"] {
        let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(version);
        all.push(fixtures.join("all-records.rsrec"));
        all.push(fixtures.join("unclosed.rsrec"));
    }

    let report = agree(&py, &all);
    for line in &report {
        eprintln!("agree: {line}");
    }
    assert!(report[2].contains("via index_blocks"));
    assert!(report[3].contains("via scan"));
    assert!(report[4].contains("(1 bad)"), "{}", report[4]);
    assert!(report[5].contains("IMU samples") && report[5].contains("1 gaps"));
}

/// Real frames the Python reader decodes in every codec.
const SAMPLE_FRAMES: usize = 8;

#[test]
fn python_and_rust_agree_on_every_codec_with_real_data() {
    let _cpu = crate::common::cpu_exclusive();
    let Some(py) = python() else {
        return;
    };
    let Some(data) = common::data_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // The first 8 frames of the set (pure-Python rANS decoding takes 0.2-0.7 s a frame; every
    // frame of every set goes through every codec in Rust in real_data).
    let set = tmp.path().join("desk");
    std::fs::create_dir_all(set.join("depth")).unwrap();
    let all =
        rsrec::source::pngdir::list_pngs(&data.join("d4xx-848x480-desk-holes/depth")).unwrap();
    for f in all.iter().take(SAMPLE_FRAMES) {
        std::os::unix::fs::symlink(f, set.join("depth").join(f.file_name().unwrap())).unwrap();
    }
    let mut files = Vec::new();
    for (i, codec) in [
        "raw",
        "lz4-planes",
        "zstd-planes:3",
        "zstd-planes:19",
        "med-rans",
        "grad-rans",
        "grad-rans:1",
        "grad-rans32",
        "grad-rans32:1",
    ]
    .iter()
    .enumerate()
    {
        let out = tmp.path().join(format!("c{i}"));
        rsrec_ok(&[
            "import",
            p(&set),
            "--fps",
            "30",
            "--depth-codec",
            codec,
            "--color-codec",
            "off",
            "--out",
            p(&out),
            "--quiet",
        ]);
        files.push(out.join("desk.rsrec"));
    }
    // Bit for bit against the Rust reader, the lossy grad-rans:1 and grad-rans32:1 frames
    // included.
    let report = agree(&py, &files);
    for line in &report {
        eprintln!("agree: {line}");
        assert!(
            line.contains(&format!("{SAMPLE_FRAMES} depth frames (0 bad)")),
            "{line}"
        );
    }
    // So Python decodes what Rust decodes; and Rust's frames are the original PNGs, lossy
    // ones (grad-rans:1, grad-rans32:1) within 1 unit of them, holes exact.
    let pngs = rsrec::source::pngdir::list_pngs(&set.join("depth")).unwrap();
    for (i, file) in files.iter().enumerate() {
        let lossy = i == 6 || i == 8;
        let reader = Reader::open(file).unwrap();
        assert_eq!(reader.frame_count(0), pngs.len(), "{}", file.display());
        for (n, png) in pngs.iter().enumerate() {
            let want = rsrec::source::pngdir::read_depth_png(png).unwrap().data;
            let got = reader.read_depth(0, n).unwrap().data;
            let ok = got
                .iter()
                .zip(&want)
                .all(|(&g, &w)| (g == 0) == (w == 0) && g.abs_diff(w) <= u16::from(lossy));
            assert!(ok && (lossy || got == want), "{} frame {n}", file.display());
            assert!(
                !lossy || got != want,
                "{} frame {n} is not lossy",
                file.display()
            );
        }
    }
    // And the Python reader's frames open as what Pillow reads from the PNGs (mode I;16), and
    // it reads the lossy frames' (after "--") declared bound: the first frames of each file
    // (decoding all of them again in pure Python took a minute of CI).
    let out = py_ok(
        &py,
        r#"
import os, re
import numpy as np
from PIL import Image
import rsrec_reader as rr
key = lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]
src = os.path.join(sys.argv[1], "depth")
names = sorted(os.listdir(src), key=key)
lossy = False
for path in sys.argv[2:]:
    if path == "--":
        lossy = True
        continue
    with rr.RsrecFile(path) as f:
        codecs, bounds = set(), set()
        for name, fr in zip(names[:3], f):
            img = Image.open(os.path.join(src, name))
            assert img.mode == "I;16", img.mode
            want = np.array(img)
            if lossy:
                _, payload = f.read_record(f.depth_stream, rr.DEPTH_FRAME, fr.index)
                bound = rr.med_rans_bound(payload)
                bounds.add(bound)
                assert bound[0] == "units", bound
                err = np.abs(fr.data.astype(np.int64) - want.astype(np.int64))
                assert np.array_equal(fr.data == 0, want == 0), (path, name)
                assert err.max() <= bound[1], (path, name, int(err.max()))
                assert not np.array_equal(fr.data, want), (path, name)
            else:
                assert np.array_equal(fr.data, want), (path, name)
            codecs.add(rr.CODECS[fr.codec])
        print(path, sorted(codecs), "lossy" if lossy else "exact", sorted(bounds))
"#,
        &[
            p(&set),
            p(&files[0]),
            p(&files[1]),
            p(&files[2]),
            p(&files[4]),
            p(&files[5]),
            p(&files[7]),
            "--",
            p(&files[6]),
            p(&files[8]),
        ],
    );
    assert!(
        out.contains("['raw']")
            && out.contains("['lz4-planes']")
            && out.contains("['zstd-planes']")
            && out.contains("['med-rans']")
            && out.contains("['grad-rans'] exact")
            && out.contains("['grad-rans'] lossy [('units', 1)]")
            && out.contains("['grad-rans32'] exact")
            && out.contains("['grad-rans32'] lossy [('units', 1)]"),
        "{out}"
    );
}

#[test]
fn python_session_reads_segments_as_one_recording() {
    let Some(py) = python() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    rsrec_ok(&[
        "record",
        "--cameras",
        "sim:1",
        "--duration",
        "2.5s",
        "--depth",
        "64x48@30",
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
    let dir = root.path().join("seg");
    let files = session_files(&dir);
    assert!(files.len() >= 2, "{files:?}");
    let mut numbers = Vec::new();
    let mut frames: Vec<u16> = Vec::new();
    for f in &files {
        let r = Reader::open(f).unwrap();
        for i in 0..r.frame_count(0) {
            let fr = r.read_depth(0, i).unwrap();
            numbers.push(fr.header.frame_number);
            frames.extend(fr.data);
        }
    }
    let out = tempfile::tempdir().unwrap();
    let raw = out.path().join("all.u16");
    let text = py_ok(
        &py,
        r#"
import numpy as np
import rsrec_reader as rr
with rr.Session(sys.argv[1]) as s:
    cam = s.camera("sim0")
    ts = cam.timestamps()
    assert len(ts.frame_numbers) == cam.frame_count() == len(cam)
    np.stack([fr.data for fr in cam]).astype("<u2").tofile(sys.argv[2])
    print(",".join(str(int(x)) for x in ts.frame_numbers))
"#,
        &[p(&dir), p(&raw)],
    );
    let got: Vec<u64> = text.trim().split(',').map(|x| x.parse().unwrap()).collect();
    assert_eq!(got, numbers);
    let bytes = std::fs::read(&raw).unwrap();
    let v: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert!(v == frames, "session frames differ");
}

#[test]
fn python_crc32c_and_errors() {
    let Some(py) = python() else {
        return;
    };
    // The numpy CRC-32C against the table-driven reference, at every length class.
    let out = py_ok(
        &py,
        r#"
import os, random
import rsrec_reader as rr
assert rr.crc32c(b"123456789") == 0xE3069283 and rr.crc32c(b"") == 0
assert rr._crc32c_builtin(b"123456789") == 0xE3069283
rnd = random.Random(5)
for n in [1, 7, 4095, 4096, 4097, 8191, 65537, 300001, 1 << 20]:
    d = bytes(rnd.getrandbits(8) for _ in range(n)) if n < 70000 else os.urandom(n)
    ref = rr._crc_update_py(0xFFFFFFFF, d) ^ 0xFFFFFFFF
    assert rr._crc32c_builtin(d) == ref, n
    k = n // 3
    assert rr._crc32c_builtin(d[k:], rr._crc32c_builtin(d[:k])) == ref, n
print("crc ok", rr.CRC_BACKEND)
"#,
        &[],
    );
    assert!(out.contains("crc ok"), "{out}");

    // Errors: one line from the CLI, exit 1; exceptions from the API.
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.rsrec");
    std::fs::write(&junk, b"definitely not an rsrec file").unwrap();
    let short = tmp.path().join("short.rsrec");
    std::fs::write(&short, b"\x89RSR").unwrap();
    let script = tools_dir().join("rsrec_reader.py");
    for (f, msg) in [
        (junk.as_path(), "not an rsrec file"),
        (short.as_path(), "too short"),
        (tmp.path().join("missing.rsrec").as_path(), "No such file"),
    ] {
        let o = Command::new(&py).arg(&script).arg(f).output().unwrap();
        assert_eq!(o.status.code(), Some(1));
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(e.contains(msg), "{e}");
    }
    // A damaged header CRC: the file is read through its header copy (§5.7), with a
    // warning; rsrec's reader refuses it and `rsrec recover` repairs it.
    let good = &session_files(session())[0];
    let mut bytes = std::fs::read(good).unwrap();
    bytes[40] ^= 1;
    let bad_header = tmp.path().join("bad-header.rsrec");
    std::fs::write(&bad_header, &bytes).unwrap();
    let o = Command::new(&py)
        .arg(&script)
        .arg(&bad_header)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("the file header is damaged"));
    assert!(Reader::open(&bad_header).is_err());
    // The CLI summary and --check on a good file.
    let o = Command::new(&py)
        .arg(&script)
        .arg(good)
        .args(["--check", "--frame", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("closed cleanly"), "{text}");
    assert!(text.contains("frames OK, 0 bad"), "{text}");
    assert!(text.contains("frame 3: number 3"), "{text}");
    // The frame-size limit (format-spec §3) applies to this reader too.
    let o = Command::new(&py)
        .arg(&script)
        .arg(good)
        .args(["--check"])
        .env("RSREC_MAX_FRAME_PIXELS", "1000")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("above this reader's limit of 1000 pixels"),
        "{text}"
    );
    let o = Command::new(&py)
        .arg(&script)
        .arg(good)
        .arg("--json")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["closed"], true);
    assert_eq!(
        v["streams"][0]["frames"],
        Reader::open(good).unwrap().frame_count(0)
    );
}

/// A stream's description has one JSON shape: `rsrec info --json`, the Python reader's
/// `--json` and export's `intrinsics.json` give the same keys with the same values.
#[test]
fn stream_descriptions_have_one_json_shape() {
    let Some(py) = python() else {
        return;
    };
    const KEYS: [&str; 11] = [
        "id",
        "kind",
        "name",
        "width",
        "height",
        "format",
        "fps",
        "depth_units",
        "intrinsics",
        "extrinsics",
        "properties",
    ];
    let dir = session();
    let file = dir.join("sim0.rsrec");
    let o = Command::new(env!("CARGO_BIN_EXE_rsrec"))
        .args(["info", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success());
    let info: Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = Command::new(&py)
        .arg(tools_dir().join("rsrec_reader.py"))
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pyj: Value = serde_json::from_slice(&o.stdout).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    rsrec_ok(&[
        "export",
        p(dir),
        "--to",
        "npy",
        "--cameras",
        "sim0",
        "--frames",
        "0:2",
        "--out",
        p(tmp.path()),
    ]);
    let intr: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("sim0/npy/intrinsics.json")).unwrap(),
    )
    .unwrap();
    // Floats written by Python from f32 values carry more digits; compare as f32.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x as f32 == y as f32,
                _ => x == y,
            },
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }
    let streams = info["streams"].as_array().unwrap();
    let py_streams = pyj["streams"].as_array().unwrap();
    assert_eq!(streams.len(), py_streams.len());
    for (r, q) in streams.iter().zip(py_streams) {
        for k in KEYS {
            assert!(r.get(k).is_some(), "info --json stream has no {k}: {r}");
            assert!(
                same(&r[k], &q[k]),
                "{k}: info --json {} vs Python {}",
                r[k],
                q[k]
            );
        }
    }
    let depth = streams.iter().find(|s| s["kind"] == "depth").unwrap();
    for k in KEYS {
        assert!(
            same(&depth[k], &intr["depth"][k]),
            "{k}: info --json {} vs intrinsics.json {}",
            depth[k],
            intr["depth"][k]
        );
    }
    assert!(depth["properties"].is_object(), "{}", depth["properties"]);
}

/// Regression: one flipped header bit made the Python reader refuse the whole file. It now
/// opens such a file through its header copy (§5.7) and reads every frame the intact file
/// has; a file without any intact copy is still refused with the header's error.
#[test]
fn python_reader_opens_a_damaged_header_through_its_copy() {
    let Some(py) = python() else {
        return;
    };
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1/all-records.rsrec");
    let tmp = tempfile::tempdir().unwrap();
    let out = py_ok(
        &py,
        r#"
import sys
import rsrec_reader as rr
src, tmp = sys.argv[1], sys.argv[2]
data = bytearray(open(src, "rb").read())
good = rr.RsrecFile(src)
n = good.frame_count()
for pos in (0, 8, 12, 60):
    bad = bytearray(data)
    bad[pos] ^= 0x10
    open(tmp, "wb").write(bad)
    with rr.RsrecFile(tmp) as f:
        assert f.header_restored, pos
        assert f.frame_count() == n, (pos, f.frame_count(), n)
        for k in range(n):
            assert (f.depth(k) == good.depth(k)).all(), (pos, k)
old = open(src.replace("all-records.rsrec", "all-records-0.1.0.rsrec"), "rb").read()
bad = bytearray(old)
bad[8] ^= 0x10
open(tmp, "wb").write(bad)
try:
    rr.RsrecFile(tmp)
    raise SystemExit("a file without header copies opened with a damaged header")
except rr.RsrecError as e:
    print("refused:", e)
print("ok", n)
"#,
        &[
            src.to_str().unwrap(),
            tmp.path().join("bad.rsrec").to_str().unwrap(),
        ],
    );
    assert!(out.contains("ok "), "{out}");
    assert!(out.contains("refused: unsupported format version"), "{out}");
}
