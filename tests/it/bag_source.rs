//! `BagSource`: replays a genuine librealsense `.bag` (ROS1 bag v2, LZ4 chunks) and turns
//! damaged, truncated and foreign files into errors, never panics.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rsrec::container::{Distortion, PixelFormat, StreamKind};
use rsrec::source::bag::{BagSource, Pacing};
use rsrec::source::{stream_id, Sample, Source, SourceError};

const BAG: &str = "d435-librealsense-bag/single_depth_color_640x480.bag";

/// The real bag: `$RSREC_DATA_DIR` or `../shared/data`. Absent data is a loud skip, except
/// under CI (`CI=true`) where it fails the test.
fn bag_path() -> Option<PathBuf> {
    let dir = std::env::var_os("RSREC_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let path = dir.join(BAG);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "real librealsense bag not found at {} (set RSREC_DATA_DIR); CI requires it",
            path.display()
        );
    }
    eprintln!(
        "\n**********\nWARNING: real librealsense bag not found at {} (set RSREC_DATA_DIR): SKIPPING this test\n**********\n",
        path.display()
    );
    None
}

fn drain(src: &mut BagSource) -> Result<Vec<Sample>, SourceError> {
    let mut out = Vec::new();
    while let Some(s) = src.next()? {
        out.push(s);
        assert!(out.len() < 100_000, "source does not end");
    }
    Ok(out)
}

/// Opens and replays `path`; the first error, from open or from next.
fn replay(path: &Path) -> Result<Vec<Sample>, SourceError> {
    let mut src = BagSource::open(path, Pacing::AsFastAsPossible)?;
    drain(&mut src)
}

fn meta(m: &[(String, i64)], key: &str) -> Option<i64> {
    m.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

#[test]
fn real_bag_device_and_streams() {
    let Some(path) = bag_path() else { return };
    let src = BagSource::open(&path, Pacing::AsFastAsPossible).unwrap();
    let info = src.info();
    let d = &info.device;
    assert_eq!(d.name, "Intel RealSense D435");
    assert_eq!(d.model, "D435");
    assert_eq!(d.serial, "728612070259");
    assert!(
        d.firmware.starts_with("05.09.14"),
        "firmware {}",
        d.firmware
    );
    assert_eq!(info.name, d.serial);
    let prop = |k: &str| {
        d.properties
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(prop("Product Id"), Some("0B07"));
    assert_eq!(prop("Serial Number"), Some("728612070259"));
    assert_eq!(prop("bag_file_version"), Some("3"));

    assert_eq!(info.streams.len(), 2, "{:?}", info.streams);
    assert!(info.stream(StreamKind::Gyro).is_none());
    assert!(info.stream(StreamKind::Accel).is_none());

    let depth = info.stream(StreamKind::Depth).unwrap();
    assert_eq!(depth.id, stream_id::DEPTH);
    assert_eq!((depth.width, depth.height), (640, 480));
    assert_eq!(depth.format, PixelFormat::Z16);
    assert_eq!(depth.depth_units, 0.001);
    assert_eq!(depth.fps, 6.0);
    assert_eq!(depth.property("sensor"), Some("Stereo Module"));
    assert_eq!(depth.property("option.Laser Power"), Some("150"));
    let k = depth.intrinsics.as_ref().expect("depth intrinsics");
    assert!(
        k.fx > 300.0 && k.fx < 700.0 && k.fy > 300.0 && k.fy < 700.0,
        "{k:?}"
    );
    assert!(
        (k.ppx - 320.0).abs() < 40.0 && (k.ppy - 240.0).abs() < 40.0,
        "{k:?}"
    );
    assert_eq!(k.model, Distortion::BrownConrady);
    assert_eq!(k.coeffs.len(), 5);
    assert!(depth.extrinsics.is_none(), "depth is the reference stream");

    let color = info.stream(StreamKind::Color).unwrap();
    assert_eq!(color.id, stream_id::COLOR);
    assert_eq!((color.width, color.height), (640, 480));
    assert_eq!(color.format, PixelFormat::Rgb8);
    assert_eq!(color.depth_units, 0.0);
    assert_eq!(color.property("sensor"), Some("RGB Camera"));
    let k = color.intrinsics.as_ref().expect("colour intrinsics");
    assert!(k.fx > 300.0 && k.fx < 1000.0, "{k:?}");
    // Colour to depth: a near-identity rotation and a baseline of a centimetre or two.
    let e = color.extrinsics.as_ref().expect("colour extrinsics");
    assert_eq!(e.to_stream, stream_id::DEPTH);
    for i in [0, 4, 8] {
        assert!(e.rotation[i] > 0.99, "{e:?}");
    }
    let baseline = e.translation.iter().map(|t| t * t).sum::<f32>().sqrt();
    assert!((0.005..0.05).contains(&baseline), "{e:?}");
}

#[test]
fn real_bag_frames() {
    let Some(path) = bag_path() else { return };
    let samples = replay(&path).unwrap();
    let kinds: Vec<&str> = samples
        .iter()
        .map(|s| match s {
            Sample::Depth(_) => "depth",
            Sample::Color(_) => "color",
            Sample::Imu { .. } => "imu",
            Sample::Infrared { .. } => "ir",
        })
        .collect();
    // Bag-time order: depth at 1.5 us, colour at 54 ms, depth at 168 ms.
    assert_eq!(kinds, ["depth", "color", "depth"]);
    let depth: Vec<_> = samples
        .iter()
        .filter_map(|s| match s {
            Sample::Depth(f) => Some(f),
            _ => None,
        })
        .collect();
    let color = samples
        .iter()
        .find_map(|s| match s {
            Sample::Color(f) => Some(f),
            _ => None,
        })
        .unwrap();

    assert_eq!(depth[0].timing.frame_number, 169);
    assert_eq!(depth[1].timing.frame_number, 170);
    assert_eq!(color.timing.frame_number, 162);
    for (f, ts) in [(depth[0], 360_815.089), (depth[1], 360_981.765)] {
        assert!((f.timing.device_ts_ms - ts).abs() < 0.01, "{:?}", f.timing);
        assert_eq!(f.timing.ts_domain, 0, "hardware clock");
        assert_eq!(
            meta(&f.metadata, "Frame Counter"),
            Some(f.timing.frame_number as i64)
        );
        assert_eq!(meta(&f.metadata, "Actual Exposure"), Some(6452));
        assert_eq!(meta(&f.metadata, "Frame Laser Power"), Some(150));
        assert_eq!(f.data.len(), 640 * 480);
    }
    assert!((color.timing.device_ts_ms - 360_713.523).abs() < 0.01);
    assert_eq!(meta(&color.metadata, "Frame Counter"), Some(162));
    assert_eq!(meta(&color.metadata, "Gamma"), Some(300));
    // Host time: the frames' system_time (ms since the epoch, August 2018).
    assert_eq!(depth[0].timing.host_ts_us, 1_534_232_519_732_936);
    assert_eq!(color.timing.host_ts_us, 1_534_232_519_786_195);
    assert_eq!(depth[1].timing.host_ts_us, 1_534_232_519_900_648);

    for f in &depth {
        let valid: Vec<u16> = f.data.iter().copied().filter(|&v| v != 0).collect();
        assert!(
            valid.len() > 640 * 480 / 4,
            "only {} valid pixels",
            valid.len()
        );
        let mut sorted = valid.clone();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        assert!((200..10_000).contains(&median), "median depth {median} mm");
    }
    assert_ne!(
        depth[0].data, depth[1].data,
        "frames differ by sensor noise"
    );

    assert_eq!(color.data.len(), 640 * 480 * 3);
    // The first pixels of the colour image as stored in the bag.
    assert_eq!(&color.data[..6], &[172, 150, 115, 171, 149, 114]);
    let distinct: std::collections::HashSet<u8> = color.data.iter().copied().collect();
    assert!(distinct.len() > 100);
}

#[test]
fn real_time_pacing_follows_bag_time() {
    let Some(path) = bag_path() else { return };
    let mut src = BagSource::open(&path, Pacing::RealTime).unwrap();
    let start = Instant::now();
    let samples = drain(&mut src).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(samples.len(), 3);
    // The samples span 168 ms of bag time; allow generous slack below.
    assert!(
        elapsed.as_millis() >= 120,
        "real-time replay took only {elapsed:?}"
    );
    // As fast as possible: the same samples.
    let fast = replay(&path).unwrap();
    assert_eq!(fast.len(), 3);
}

#[test]
fn usable_as_a_boxed_source_on_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<BagSource>();
    let Some(path) = bag_path() else { return };
    let mut src: Box<dyn Source> =
        Box::new(BagSource::open(&path, Pacing::AsFastAsPossible).unwrap());
    let n = std::thread::spawn(move || {
        let mut n = 0;
        while src.next().unwrap().is_some() {
            n += 1;
        }
        n
    })
    .join()
    .unwrap();
    assert_eq!(n, 3);
}

fn expect_format_error(r: Result<Vec<Sample>, SourceError>, what: &str) -> String {
    match r {
        Err(e @ SourceError::Bag { .. }) => {
            let m = e.to_string();
            assert!(!m.is_empty());
            m
        }
        Err(e) => panic!("{what}: expected a format error, got {e:?}"),
        Ok(s) => panic!("{what}: expected an error, got {} samples", s.len()),
    }
}

#[test]
fn truncated_bags_are_errors() {
    let Some(path) = bag_path() else { return };
    let bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    let dir = tempfile::tempdir().unwrap();
    let cuts = [
        0,
        1,
        12,
        13,
        16,
        100,
        4_000,
        4_117,
        4_200,
        len / 4,
        len / 2,
        3 * len / 4,
        997_561, // exactly where the index starts
        997_600,
        len - 1_000,
        len - 100,
        len - 1,
    ];
    for cut in cuts {
        let p = dir.path().join(format!("cut{cut}.bag"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let m = expect_format_error(replay(&p), &format!("cut at {cut}"));
        assert!(m.contains(&*p.to_string_lossy()), "{m}");
    }
    // The message says what is wrong.
    let p = dir.path().join(format!("cut{}.bag", len / 2));
    let m = expect_format_error(replay(&p), "half");
    assert!(m.contains("truncated"), "{m}");
}

#[test]
fn garbage_and_foreign_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let garbage: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", garbage.clone()),
        (
            "magic then garbage",
            [b"#ROSBAG V2.0\n".as_slice(), &garbage].concat(),
        ),
        ("bag v1.2", b"#ROSBAG V1.2\nsomething".to_vec()),
        ("png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()),
    ];
    for (name, data) in cases {
        let p = dir.path().join(format!("{name}.bag"));
        std::fs::write(&p, &data).unwrap();
        let m = expect_format_error(replay(&p), name);
        if name == "bag v1.2" {
            assert!(m.contains("V1.2"), "{m}");
        }
        if name == "garbage" || name == "png" {
            assert!(m.contains("not a ROS bag"), "{m}");
        }
    }
    match BagSource::open(&dir.path().join("missing.bag"), Pacing::AsFastAsPossible) {
        Err(SourceError::Io { .. }) => {}
        Err(e) => panic!("missing file: {e:?}"),
        Ok(_) => panic!("missing file opened"),
    }
}

#[test]
fn unindexed_bag_is_an_error() {
    let Some(path) = bag_path() else { return };
    let mut bytes = std::fs::read(&path).unwrap();
    // What a recorder killed mid-way leaves: index_pos still 0 in the bag header.
    let at = bytes
        .windows(10)
        .position(|w| w == b"index_pos=")
        .expect("index_pos field")
        + 10;
    bytes[at..at + 8].fill(0);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("unindexed.bag");
    std::fs::write(&p, &bytes).unwrap();
    let m = expect_format_error(replay(&p), "unindexed");
    assert!(m.contains("not indexed"), "{m}");
}

#[test]
fn damaged_bags_never_panic() {
    let Some(path) = bag_path() else { return };
    let bytes = std::fs::read(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("damaged.bag");
    let mut errors = 0;
    // Flip bytes across headers, chunk data and the index, then replay as far as possible.
    let positions = (13..bytes.len()).step_by(bytes.len() / 61).chain([
        13, 17, 30, 4_117, 4_121, 4_140, 4_180, 756_751, 756_800, 997_561, 997_570,
    ]);
    for pos in positions {
        let mut bad = bytes.clone();
        bad[pos] ^= 0xA5;
        bad[pos.saturating_sub(1)] ^= 0xFF;
        std::fs::write(&p, &bad).unwrap();
        if replay(&p).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 0, "no damage was noticed at all");
}

// ---------------------------------------------------------------------------------------
// Synthetic bags: a minimal ROS bag v2 writer (uncompressed chunks) to cover what the real
// bag lacks: IMU, several overlapping chunks, big-endian padded depth rows, UYVY colour.
// ---------------------------------------------------------------------------------------

fn field(name: &str, value: &[u8]) -> Vec<u8> {
    let mut f = ((name.len() + 1 + value.len()) as u32)
        .to_le_bytes()
        .to_vec();
    f.extend_from_slice(name.as_bytes());
    f.push(b'=');
    f.extend_from_slice(value);
    f
}

fn record(out: &mut Vec<u8>, fields: &[(&str, &[u8])], data: &[u8]) {
    let header: Vec<u8> = fields.iter().flat_map(|(n, v)| field(n, v)).collect();
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
}

fn time(ns: u64) -> [u8; 8] {
    let mut t = [0u8; 8];
    t[..4].copy_from_slice(&((ns / 1_000_000_000) as u32).to_le_bytes());
    t[4..].copy_from_slice(&((ns % 1_000_000_000) as u32).to_le_bytes());
    t
}

/// ROS serialisation helpers.
#[derive(Default)]
struct Msg(Vec<u8>);
impl Msg {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn f32(mut self, v: f32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn f64(mut self, v: f64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(mut self, s: &str) -> Self {
        self = self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self = self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
    /// std_msgs/Header with the stamp in milliseconds.
    fn header(self, seq: u32, stamp_ms: f64) -> Self {
        let ns = (stamp_ms * 1e6).round() as u64;
        self.u32(seq)
            .u32((ns / 1_000_000_000) as u32)
            .u32((ns % 1_000_000_000) as u32)
            .str("0")
    }
}

fn kv(k: &str, v: &str) -> Vec<u8> {
    Msg::default().str(k).str(v).0
}
fn stream_info(fps: u32, enc: &str) -> Vec<u8> {
    Msg::default().u32(fps).str(enc).u8(1).0
}
fn camera_info(w: u32, h: u32, model: &str, fx: f64) -> Vec<u8> {
    let mut m = Msg::default()
        .header(0, 0.0)
        .u32(h)
        .u32(w)
        .str(model)
        .u32(5);
    for d in [0.1, 0.2, 0.0, 0.0, 0.05] {
        m = m.f64(d);
    }
    for k in [
        fx,
        0.0,
        w as f64 / 2.0,
        0.0,
        fx,
        h as f64 / 2.0,
        0.0,
        0.0,
        1.0,
    ] {
        m = m.f64(k);
    }
    for _ in 0..(9 + 12) {
        m = m.f64(0.0);
    }
    m.u32(0).u32(0).u32(0).u32(0).u32(0).u32(0).u8(0).0
}
#[allow(clippy::too_many_arguments)]
fn image(
    seq: u32,
    ms: f64,
    w: u32,
    h: u32,
    enc: &str,
    be: bool,
    step: u32,
    data: &[u8],
) -> Vec<u8> {
    Msg::default()
        .header(seq, ms)
        .u32(h)
        .u32(w)
        .str(enc)
        .u8(be as u8)
        .u32(step)
        .bytes(data)
        .0
}
fn imu(seq: u32, ms: f64, gyro: [f64; 3], accel: [f64; 3]) -> Vec<u8> {
    let mut m = Msg::default().header(seq, ms);
    for v in [0.0, 0.0, 0.0, 1.0] {
        m = m.f64(v);
    }
    for group in [gyro, accel] {
        for _ in 0..9 {
            m = m.f64(0.0);
        }
        for v in group {
            m = m.f64(v);
        }
    }
    for _ in 0..9 {
        m = m.f64(0.0);
    }
    m.0
}

#[derive(Default)]
struct BagWriter {
    body: Vec<u8>,
    conns: Vec<(u32, String, String)>,
    written: Vec<u32>,
    chunk_infos: Vec<Vec<u8>>,
}

impl BagWriter {
    fn conn(&mut self, topic: &str, tp: &str) -> u32 {
        let id = self.conns.len() as u32;
        self.conns.push((id, topic.into(), tp.into()));
        id
    }
    fn conn_record(&self, out: &mut Vec<u8>, id: u32) {
        let (_, topic, tp) = &self.conns[id as usize];
        let data: Vec<u8> = [
            field("topic", topic.as_bytes()),
            field("type", tp.as_bytes()),
            field("md5sum", &[b'0'; 32]),
            field("message_definition", b"# test"),
        ]
        .concat();
        record(
            out,
            &[
                ("op", &[7]),
                ("conn", &id.to_le_bytes()),
                ("topic", topic.as_bytes()),
            ],
            &data,
        );
    }
    /// One uncompressed chunk holding `msgs` (connection, bag time ns, message) in order.
    fn chunk(&mut self, msgs: &[(u32, u64, Vec<u8>)]) {
        let mut data = Vec::new();
        let mut index: std::collections::BTreeMap<u32, Vec<(u64, u32)>> = Default::default();
        for (conn, t, msg) in msgs {
            if !self.written.contains(conn) {
                self.conn_record(&mut data, *conn);
                self.written.push(*conn);
            }
            index
                .entry(*conn)
                .or_default()
                .push((*t, data.len() as u32));
            record(
                &mut data,
                &[
                    ("op", &[2]),
                    ("conn", &conn.to_le_bytes()),
                    ("time", &time(*t)),
                ],
                msg,
            );
        }
        let pos = (13 + 4096 + self.body.len()) as u64;
        let size = (data.len() as u32).to_le_bytes();
        record(
            &mut self.body,
            &[("op", &[5]), ("compression", b"none"), ("size", &size)],
            &data,
        );
        let mut counts = Vec::new();
        for (conn, entries) in &index {
            let mut d = Vec::new();
            for (t, off) in entries {
                d.extend_from_slice(&time(*t));
                d.extend_from_slice(&off.to_le_bytes());
            }
            let n = (entries.len() as u32).to_le_bytes();
            record(
                &mut self.body,
                &[
                    ("op", &[4]),
                    ("ver", &1u32.to_le_bytes()),
                    ("conn", &conn.to_le_bytes()),
                    ("count", &n),
                ],
                &d,
            );
            counts.extend_from_slice(&conn.to_le_bytes());
            counts.extend_from_slice(&n);
        }
        let start = msgs.iter().map(|m| m.1).min().unwrap();
        let end = msgs.iter().map(|m| m.1).max().unwrap();
        let mut ci = Vec::new();
        let n = (index.len() as u32).to_le_bytes();
        record(
            &mut ci,
            &[
                ("op", &[6]),
                ("ver", &1u32.to_le_bytes()),
                ("chunk_pos", &pos.to_le_bytes()),
                ("start_time", &time(start)),
                ("end_time", &time(end)),
                ("count", &n),
            ],
            &counts,
        );
        self.chunk_infos.push(ci);
    }
    fn finish(self) -> Vec<u8> {
        let mut index = Vec::new();
        for (id, ..) in &self.conns {
            self.conn_record(&mut index, *id);
        }
        for ci in &self.chunk_infos {
            index.extend_from_slice(ci);
        }
        let index_pos = (13 + 4096 + self.body.len()) as u64;
        let mut out = b"#ROSBAG V2.0\n".to_vec();
        let mut header = Vec::new();
        let (nc, nk) = (self.conns.len() as u32, self.chunk_infos.len() as u32);
        record(
            &mut header,
            &[
                ("op", &[3]),
                ("index_pos", &index_pos.to_le_bytes()),
                ("conn_count", &nc.to_le_bytes()),
                ("chunk_count", &nk.to_le_bytes()),
            ],
            &[],
        );
        // Pad the bag header record to 4096 bytes, as rosbag does.
        let pad = 4096 - header.len();
        header.truncate(header.len() - 4);
        header.extend_from_slice(&(pad as u32).to_le_bytes());
        header.resize(4096, b' ');
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&index);
        out
    }
}

const S: u64 = 1; // librealsense's "static info" bag time
const MS: u64 = 1_000_000;

#[test]
fn synthetic_bag_imu_order_and_layouts() {
    let (w, h) = (4u32, 3u32);
    let mut b = BagWriter::default();
    let dev = b.conn("/device_0/info", "diagnostic_msgs/KeyValue");
    let units = b.conn(
        "/device_0/sensor_0/option/Depth Units/value",
        "std_msgs/Float32",
    );
    let d_info = b.conn(
        "/device_0/sensor_0/Depth_0/info",
        "realsense_msgs/StreamInfo",
    );
    let d_cam = b.conn(
        "/device_0/sensor_0/Depth_0/info/camera_info",
        "sensor_msgs/CameraInfo",
    );
    let d_img = b.conn("/device_0/sensor_0/Depth_0/image/data", "sensor_msgs/Image");
    let d_md = b.conn(
        "/device_0/sensor_0/Depth_0/image/metadata",
        "diagnostic_msgs/KeyValue",
    );
    let c_info = b.conn(
        "/device_0/sensor_1/Color_0/info",
        "realsense_msgs/StreamInfo",
    );
    let c_cam = b.conn(
        "/device_0/sensor_1/Color_0/info/camera_info",
        "sensor_msgs/CameraInfo",
    );
    let c_img = b.conn("/device_0/sensor_1/Color_0/image/data", "sensor_msgs/Image");
    let g_info = b.conn(
        "/device_0/sensor_2/Gyro_0/info",
        "realsense_msgs/StreamInfo",
    );
    let g_imu = b.conn("/device_0/sensor_2/Gyro_0/imu/data", "sensor_msgs/Imu");
    let a_info = b.conn(
        "/device_0/sensor_2/Accel_0/info",
        "realsense_msgs/StreamInfo",
    );
    let a_imu = b.conn("/device_0/sensor_2/Accel_0/imu/data", "sensor_msgs/Imu");
    let a_md = b.conn(
        "/device_0/sensor_2/Accel_0/imu/metadata",
        "diagnostic_msgs/KeyValue",
    );
    let ir = b.conn(
        "/device_0/sensor_0/Infrared_1/image/data",
        "sensor_msgs/Image",
    );

    // Depth: big-endian samples, rows padded to 12 bytes.
    let depth_values: Vec<u16> = (0..w * h).map(|i| 1000 + i as u16 * 257).collect();
    let step = w * 2 + 4;
    let mut depth_bytes = Vec::new();
    for row in depth_values.chunks(w as usize) {
        for v in row {
            depth_bytes.extend_from_slice(&v.to_be_bytes());
        }
        depth_bytes.extend_from_slice(&[0xEE; 4]);
    }
    // Colour: UYVY (librealsense writes it as "yuv422"), stored as YUYV.
    let uyvy: Vec<u8> = (0..(w * h * 2) as u8).collect();

    b.chunk(&[
        (dev, S, kv("Name", "Intel RealSense D435I")),
        (dev, S, kv("Firmware Version", "05.12.07.100")),
        (units, S, Msg::default().f32(0.0001).0),
        (d_info, S, stream_info(30, "mono16")),
        (d_cam, S, camera_info(w, h, "Brown Conrady", 3.0)),
        (c_info, S, stream_info(15, "yuv422")),
        (c_cam, S, camera_info(w, h, "Inverse Brown Conrady", 4.0)),
        (g_info, S, stream_info(200, "MOTION_XYZ32F")),
        (a_info, S, stream_info(63, "MOTION_XYZ32F")),
        (g_imu, 15 * MS, imu(3, 1015.0, [0.3, 0.0, 0.0], [0.0; 3])),
        (
            d_img,
            10 * MS,
            image(7, 1010.0, w, h, "mono16", true, step, &depth_bytes),
        ),
        (g_imu, 5 * MS, imu(1, 1005.0, [0.1, 0.2, 0.3], [9.0; 3])),
        (
            ir,
            10 * MS,
            image(7, 1010.0, w, h, "8UC1", false, w, &[0; 12]),
        ),
    ]);
    // Overlaps the first chunk in time, and holds the metadata of its depth frame.
    b.chunk(&[
        (d_md, 10 * MS, kv("timestamp_domain", "Global Time")),
        (d_md, 10 * MS, kv("system_time", "1700000000123.456")),
        (d_md, 10 * MS, kv("Actual Exposure", "33000")),
        (a_imu, 12 * MS, imu(2, 1012.0, [7.0; 3], [0.0, -9.8, 0.5])),
        (a_md, 12 * MS, kv("system_time", "1700000000125")),
        (
            c_img,
            20 * MS,
            image(4, 1020.0, w, h, "yuv422", false, w * 2, &uyvy),
        ),
    ]);
    b.chunk(&[
        (g_imu, 25 * MS, imu(4, 1025.0, [0.4, 0.0, 0.0], [0.0; 3])),
        (
            d_img,
            30 * MS,
            image(8, 1030.0, w, h, "mono16", true, step, &depth_bytes),
        ),
    ]);

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("synthetic_d435i.bag");
    std::fs::write(&p, b.finish()).unwrap();
    let mut src = BagSource::open(&p, Pacing::AsFastAsPossible).unwrap();
    let info = src.info().clone();
    assert_eq!(info.name, "synthetic_d435i", "no serial: the file stem");
    assert_eq!(info.device.model, "D435I");
    assert_eq!(info.device.firmware, "05.12.07.100");
    let ids: Vec<u8> = info.streams.iter().map(|s| s.id).collect();
    // Infrared_1 has no stream info: it is kept from its 8-bit images (issue 17: bag import
    // keeps infrared), on the left-infrared stream id.
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    let ir_desc = info.stream(StreamKind::Infrared).unwrap();
    assert_eq!(
        (ir_desc.id, ir_desc.format, ir_desc.ir_index()),
        (stream_id::IR_LEFT, PixelFormat::Y8, Some(1))
    );
    let depth = info.stream(StreamKind::Depth).unwrap();
    assert_eq!(depth.depth_units, 0.0001);
    assert_eq!((depth.width, depth.height, depth.fps), (w, h, 30.0));
    let k = depth.intrinsics.as_ref().unwrap();
    assert_eq!((k.fx, k.ppx, k.ppy), (3.0, 2.0, 1.5));
    assert_eq!(k.coeffs, [0.1, 0.2, 0.0, 0.0, 0.05]);
    let color = info.stream(StreamKind::Color).unwrap();
    assert_eq!(color.format, PixelFormat::Yuyv);
    assert_eq!(
        color.intrinsics.as_ref().unwrap().model,
        Distortion::InverseBrownConrady
    );
    let gyro = info.stream(StreamKind::Gyro).unwrap();
    assert_eq!(
        (gyro.id, gyro.format, gyro.fps),
        (stream_id::GYRO, PixelFormat::MotionXyz32f, 200.0)
    );
    assert_eq!(info.stream(StreamKind::Accel).unwrap().fps, 63.0);

    let samples = drain(&mut src).unwrap();
    let order: Vec<String> = samples
        .iter()
        .map(|s| match s {
            Sample::Depth(f) => format!("depth{}", f.timing.frame_number),
            Sample::Color(f) => format!("color{}", f.timing.frame_number),
            Sample::Imu { kind, sample, .. } => format!("{}{}", kind.name(), sample.frame_number),
            Sample::Infrared { ir_index, frame } => {
                format!("ir{ir_index}-{}", frame.timing.frame_number)
            }
        })
        .collect();
    assert_eq!(
        order,
        ["gyro1", "depth7", "ir1-7", "accel2", "gyro3", "color4", "gyro4", "depth8"]
    );

    let Sample::Depth(d7) = &samples[1] else {
        unreachable!()
    };
    assert_eq!(d7.data, depth_values, "big-endian, padded rows");
    assert!((d7.timing.device_ts_ms - 1010.0).abs() < 1e-6);
    assert_eq!(d7.timing.ts_domain, 2, "Global Time");
    assert_eq!(d7.timing.host_ts_us, 1_700_000_000_123_456);
    assert_eq!(meta(&d7.metadata, "Actual Exposure"), Some(33_000));
    let Sample::Infrared { ir_index, frame } = &samples[2] else {
        unreachable!()
    };
    assert_eq!((*ir_index, frame.data.as_slice()), (1, &[0u8; 12][..]));
    let Sample::Depth(d8) = &samples[7] else {
        unreachable!()
    };
    // No frame counter: numbered from the timestamps, the number it came with kept.
    assert_eq!(
        d8.metadata,
        [("librealsense_frame_number".to_string(), 8)],
        "no metadata but the original number"
    );
    assert_eq!(d8.timing.ts_domain, 0);
    assert_eq!(d8.timing.host_ts_us, 30_000, "no metadata: the bag time");

    let Sample::Imu { sample: g1, .. } = &samples[0] else {
        unreachable!()
    };
    assert_eq!(g1.xyz, [0.1, 0.2, 0.3]);
    assert!((g1.device_ts_ms - 1005.0).abs() < 1e-6);
    let Sample::Imu {
        kind, sample: a2, ..
    } = &samples[3]
    else {
        unreachable!()
    };
    assert_eq!(*kind, StreamKind::Accel);
    assert_eq!(a2.xyz, [0.0, -9.8, 0.5]);
    assert_eq!(a2.host_ts_us, 1_700_000_000_125_000);

    let Sample::Color(c4) = &samples[5] else {
        unreachable!()
    };
    let yuyv: Vec<u8> = uyvy.chunks(2).flat_map(|p| [p[1], p[0]]).collect();
    assert_eq!(c4.data, yuyv);

    // Pacing follows bag time: 25 ms from the first to the last sample.
    let mut src = BagSource::open(&p, Pacing::RealTime).unwrap();
    let t = Instant::now();
    assert_eq!(drain(&mut src).unwrap().len(), 8);
    assert!(t.elapsed().as_millis() >= 20, "{:?}", t.elapsed());
}

#[test]
fn synthetic_bag_bad_frames_are_errors() {
    let good = image(1, 10.0, 4, 3, "mono16", false, 8, &[1; 24]);
    let mut huge = good.clone();
    let n = huge.len();
    huge[n - 28..n - 24].copy_from_slice(&u32::MAX.to_le_bytes()); // data length
    let cases = [
        (
            image(1, 10.0, 4, 3, "mono16", false, 8, &[1; 10]),
            "image data has 10 bytes",
        ),
        (
            image(1, 10.0, 5, 3, "mono16", false, 10, &[1; 30]),
            "image is 5x3",
        ),
        (
            image(1, 10.0, 4, 3, "mono16", false, 6, &[1; 24]),
            "row step 6",
        ),
        (
            image(1, 10.0, 4, 3, "rgb8", false, 12, &[1; 36]),
            "encoding 'rgb8'",
        ),
        (huge, "message ends inside image data"),
        (good[..20].to_vec(), "message ends inside"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (frame, expected)) in cases.into_iter().enumerate() {
        let mut b = BagWriter::default();
        let d_info = b.conn(
            "/device_0/sensor_0/Depth_0/info",
            "realsense_msgs/StreamInfo",
        );
        let d_cam = b.conn(
            "/device_0/sensor_0/Depth_0/info/camera_info",
            "sensor_msgs/CameraInfo",
        );
        let d_img = b.conn("/device_0/sensor_0/Depth_0/image/data", "sensor_msgs/Image");
        b.chunk(&[
            (d_info, S, stream_info(30, "mono16")),
            (d_cam, S, camera_info(4, 3, "Brown Conrady", 3.0)),
            (d_img, 10 * MS, good.clone()),
        ]);
        b.chunk(&[(d_img, 20 * MS, frame)]);
        let p = dir.path().join(format!("bad{i}.bag"));
        std::fs::write(&p, b.finish()).unwrap();
        let mut src = BagSource::open(&p, Pacing::AsFastAsPossible).unwrap();
        assert!(matches!(src.next(), Ok(Some(Sample::Depth(_)))), "case {i}");
        let e = match src.next() {
            Err(e @ SourceError::Bag { .. }) => e.to_string(),
            other => panic!("case {i}: {other:?}"),
        };
        assert!(
            e.contains(expected) && e.contains("depth frame at bag time 20000000 ns"),
            "case {i}: {e}"
        );
        // The error repeats rather than looking like a clean end.
        assert!(src.next().is_err());
    }
}

/// Issue 16: per-frame metadata was read from cameras and bags and never written. Imported
/// from the real bag, every depth frame's metadata (exposure, gain, laser power, frame
/// counter, ...) is in the file (§5.8), `info` shows it, png16's frames.csv has a column per
/// key and npy export a `depth_metadata.npy`, all with the bag's values.
#[test]
fn bag_metadata_round_trips_into_info_and_frames_csv() {
    use crate::common::{p, rsrec};
    let Some(bag) = bag_path() else {
        return;
    };
    // What the bag holds, as keys (`Actual Exposure` -> `actual_exposure`).
    let want: Vec<Vec<(String, i64)>> = replay(&bag)
        .unwrap()
        .into_iter()
        .filter_map(|s| match s {
            Sample::Depth(f) => Some(
                f.metadata
                    .iter()
                    .filter_map(|(k, v)| Some((rsrec::container::FrameMetadata::key_of(k)?, *v)))
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    assert!(
        !want.is_empty() && want.iter().all(|m| m.len() >= 10),
        "{want:?}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("imp");
    let o = rsrec(&[
        "import",
        p(&bag),
        "--out",
        p(&out),
        "--color-codec",
        "off",
        "--name",
        "b",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let file = out.join("b.rsrec");

    let o = rsrec(&["info", p(&file), "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let depth = &info["streams"][0];
    assert_eq!(depth["metadata_frames"], want.len(), "{info}");
    for (k, v) in &want[0] {
        assert_eq!(depth["first_frame_metadata"][k], *v, "{k}: {info}");
    }
    let text = String::from_utf8(rsrec(&["info", p(&file)]).stdout).unwrap();
    assert!(
        text.contains("metadata: ") && text.contains("actual_exposure="),
        "{text}"
    );

    let csv_dir = tmp.path().join("png");
    let o = rsrec(&["export", p(&file), "--to", "png16", "--out", p(&csv_dir)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(csv_dir.join("b/png16/frames.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header[..5],
        [
            "index",
            "frame_number",
            "device_ts_ms",
            "host_ts_us",
            "file"
        ]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), want.len());
    for (row, m) in rows.iter().zip(&want) {
        for (k, v) in m {
            let col = header
                .iter()
                .position(|h| h == k)
                .unwrap_or_else(|| panic!("no column {k}"));
            assert_eq!(row[col], v.to_string(), "{k}");
        }
    }
    let npy_dir = tmp.path().join("npy");
    let o = rsrec(&["export", p(&file), "--to", "npy", "--out", p(&npy_dir)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(npy_dir.join("b/npy/intrinsics.json")).unwrap(),
    )
    .unwrap();
    let keys: Vec<&str> = info["metadata_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let bytes = std::fs::read(npy_dir.join("b/npy/depth_metadata.npy")).unwrap();
    // The array's data: the last N x K x 8 bytes (after the .npy header).
    let data = &bytes[bytes.len() - want.len() * keys.len() * 8..];
    for (i, m) in want.iter().enumerate() {
        for (k, v) in m {
            let j = keys.iter().position(|x| x == k).unwrap();
            let at = (i * keys.len() + j) * 8;
            assert_eq!(
                i64::from_le_bytes(data[at..at + 8].try_into().unwrap()),
                *v,
                "{k}"
            );
        }
    }
}
