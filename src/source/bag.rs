//! `bag:FILE`: a librealsense `.bag` (ROS1 bag v2) replayed as a camera, in pure Rust.
//!
//! The ROS bag container (chunks, LZ4/bz2 decompression, index records) is read with the
//! `rosbag` crate; the ROS message serialisation and librealsense's topic layout are decoded
//! here. Topics used (librealsense file format v2/v3):
//!
//! - `/device_0/info` (`diagnostic_msgs/KeyValue`): device name, serial, firmware, ...
//! - `/device_0/sensor_N/info` (`KeyValue`): sensor name;
//!   `/device_0/sensor_N/option/<Name>/value` (`std_msgs/Float32`): option values
//!   (`Depth Units` gives the depth stream's metres per unit).
//! - `/device_0/sensor_N/<Stream>_M/info` (`realsense_msgs/StreamInfo`): fps and encoding;
//!   `.../info/camera_info` (`sensor_msgs/CameraInfo`): size and intrinsics;
//!   `.../tf/<group>` (`geometry_msgs/Transform`): extrinsics from the group's pin stream.
//! - `.../Depth_M/image/data`, `.../Color_M/image/data` (`sensor_msgs/Image`),
//!   `.../Gyro_M/imu/data`, `.../Accel_M/imu/data` (`sensor_msgs/Imu`): the samples, and
//!   `.../image/metadata`, `.../imu/metadata` (`KeyValue`, one message per key, written with
//!   the same bag time as the frame): per-frame metadata.
//!
//! Samples are yielded in bag-time order across topics. The file is memory-mapped and read
//! chunk by chunk: a chunk is decompressed only when the earliest sample it holds (taken from
//! the index records that follow it) is due, so normally one or two chunks are buffered.
//! Everything read from the file is bounds-checked: damaged, truncated and unindexed bags give
//! [`SourceError::Format`], never a panic.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memmap2::Mmap;
use rosbag::{ChunkRecord, IndexRecord, MessageRecord, RosBag};

use super::{stream_id, ColorFrame, DepthFrame, Sample, Source, SourceError, SourceInfo, Timing};
use crate::container::format::{ts_domain, MAX_DIMENSION, MAX_DISTORTION_COEFFS};
use crate::container::{
    DeviceInfo, Distortion, Extrinsics, ImuSample, Intrinsics, PixelFormat, StreamDescriptor,
    StreamKind,
};

/// How the bag is replayed: [`Pacing::RealTime`] sleeps so that samples come out at the pace
/// of their bag timestamps (relative to the first sample); [`Pacing::AsFastAsPossible`] never
/// sleeps. (The same type as the other finite sources use.)
pub use super::sim::Pacing;

const MAGIC: &[u8] = b"#ROSBAG V2.0\n";
const OP_BAG_HEADER: u8 = 0x03;
const OP_INDEX_DATA: u8 = 0x04;
const OP_CHUNK: u8 = 0x05;
/// Largest decompressed chunk accepted (librealsense chunks hold a few frames at most).
const MAX_CHUNK_SIZE: u64 = 256 << 20;
/// Stop reading ahead once this many bytes of decoded samples are buffered (only reached by
/// bags whose chunks overlap badly in time).
const MAX_BUFFERED_BYTES: usize = 512 << 20;
/// How many chunks may be decompressed at open just to collect device/sensor info pairs.
const MAX_INFO_CHUNK_SCANS: usize = 16;
/// `timestamp_domain` metadata is absent: librealsense's default domain.
const DEFAULT_TS_DOMAIN: u8 = ts_domain::HARDWARE_CLOCK;

/// A librealsense `.bag` file replayed as a [`Source`].
pub struct BagSource {
    info: SourceInfo,
    path: PathBuf,
    bag: RosBag,
    map: Mmap,
    index_pos: u64,
    /// Chunks in file order.
    chunks: Vec<ChunkMeta>,
    /// What to do with the messages of each connection that carries samples or metadata of a
    /// selected stream.
    feeds: HashMap<u32, Feed>,
    /// Image layout of the depth and colour streams (indexed by stream id).
    specs: [Option<ImageSpec>; 2],
    next_chunk: usize,
    queue: Queue,
    pacing: Pacing,
    /// Bag time of the first sample yielded and when it was yielded (real-time pacing).
    clock: Option<(u64, Instant)>,
    /// A damaged chunk ends the replay; the error is repeated on later calls.
    error: Option<String>,
}

impl BagSource {
    /// Opens `path`, reads its index, device and stream information. Frames are read lazily
    /// by [`Source::next`].
    pub fn open(path: &Path, pacing: Pacing) -> Result<BagSource, SourceError> {
        let fail = |m: String| SourceError::Format(format!("{}: {m}", path.display()));
        let io = |e: std::io::Error| SourceError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < MAGIC.len() as u64 {
            return Err(fail(format!(
                "not a ROS bag: the file is only {len} bytes (truncated or empty)"
            )));
        }
        // SAFETY: the mapping is read-only; like every memory-mapped reader (and the `rosbag`
        // crate itself) we rely on the file not being truncated while it is open.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let layout = parse_bag_header(&map).map_err(fail)?;
        let bag = RosBag::new(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => fail(format!("invalid ROS bag header: {e}")),
            _ => io(e),
        })?;
        let (conns, chunks) = read_index(&bag, &layout).map_err(fail)?;

        // What each connection is, and which stream of each kind is replayed.
        let roles: HashMap<u32, Role> = conns
            .iter()
            .map(|(id, (topic, tp))| (*id, classify(topic, tp)))
            .collect();
        let mut selected: BTreeMap<Kind, StreamKey> = BTreeMap::new();
        for role in roles.values() {
            if let Role::ImageData(k) | Role::ImuData(k) = role {
                let e = selected.entry(k.kind).or_insert(*k);
                *e = (*e).min(*k);
            }
        }
        if selected.is_empty() {
            let mut topics: Vec<&str> = conns.values().map(|(t, _)| t.as_str()).collect();
            topics.sort_unstable();
            topics.truncate(12);
            return Err(fail(format!(
                "no librealsense depth, colour, gyro or accel stream in this bag (topics: {})",
                topics.join(", ")
            )));
        }
        let has_camera_info: HashSet<StreamKey> = roles
            .values()
            .filter_map(|r| match r {
                Role::CameraInfo(k) => Some(*k),
                _ => None,
            })
            .collect();

        // Connections read at open: static information, plus the first image of a stream
        // whose camera_info is missing (for its size).
        let mut wanted: HashSet<u32> = HashSet::new();
        for (id, role) in &roles {
            let want = match role {
                Role::ImageData(k) => {
                    selected.get(&k.kind) == Some(k) && !has_camera_info.contains(k)
                }
                r => r.is_static(),
            };
            if want {
                wanted.insert(*id);
            }
        }
        let mut st = StaticInfo::default();
        let mut seen: HashSet<u32> = HashSet::new();
        let mut kv_scans = 0;
        for chunk in &chunks {
            let unseen = chunk
                .conns
                .iter()
                .any(|c| wanted.contains(c) && !seen.contains(c));
            let kv = chunk
                .conns
                .iter()
                .any(|c| matches!(roles.get(c), Some(Role::DeviceInfo | Role::SensorInfo(_))));
            if !(unseen || (kv && kv_scans < MAX_INFO_CHUNK_SCANS)) {
                continue;
            }
            if kv {
                kv_scans += 1;
            }
            for_each_message(
                &bag,
                &map,
                layout.index_pos,
                chunk.pos,
                &mut |conn, _, data| match roles.get(&conn) {
                    Some(role) if wanted.contains(&conn) => st
                        .absorb(role, data)
                        .map_err(|e| format!("{}: {e}", conns[&conn].0)),
                    _ => Ok(()),
                },
            )
            .map_err(fail)?;
            seen.extend(chunk.conns.iter().filter(|c| wanted.contains(c)));
        }

        // Stream descriptors.
        let mut streams = Vec::new();
        let mut specs: [Option<ImageSpec>; 2] = [None, None];
        let reference = selected
            .get(&Kind::Depth)
            .and_then(|k| st.tf.get(k))
            .filter(|t| t.is_identity())
            .map(|t| t.group);
        for (&kind, key) in &selected {
            let (desc, spec) = st
                .descriptor(kind, key, reference)
                .map_err(|e| fail(format!("{} stream {}: {e}", kind.name(), key.topic())))?;
            if let Some(spec) = spec {
                specs[kind.id() as usize] = Some(spec);
            }
            streams.push(desc);
        }

        let mut feeds = HashMap::new();
        for (id, role) in &roles {
            let feed = match role {
                Role::ImageData(k) if selected.get(&k.kind) == Some(k) => Feed::Image(k.kind),
                Role::ImuData(k) if selected.get(&k.kind) == Some(k) => Feed::Imu(k.kind),
                Role::Metadata(k) if selected.get(&k.kind) == Some(k) => Feed::Metadata(k.kind),
                _ => continue,
            };
            feeds.insert(*id, feed);
        }

        let device = st.device_info(path);
        let name = if device.serial.is_empty() {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "bag".into())
        } else {
            device.serial.clone()
        };
        Ok(BagSource {
            info: SourceInfo {
                name,
                device,
                streams,
            },
            path: path.to_path_buf(),
            bag,
            map,
            index_pos: layout.index_pos,
            chunks,
            feeds,
            specs,
            next_chunk: 0,
            queue: Queue::default(),
            pacing,
            clock: None,
            error: None,
        })
    }

    fn fail(&self, m: String) -> SourceError {
        SourceError::Format(format!("{}: {m}", self.path.display()))
    }

    /// Decompresses chunks (in file order) until every sample due no later than the earliest
    /// buffered one is buffered, together with its metadata.
    fn fill(&mut self) -> Result<(), String> {
        while self.next_chunk < self.chunks.len() {
            let i = self.next_chunk;
            if !self.chunks[i]
                .conns
                .iter()
                .any(|c| self.feeds.contains_key(c))
            {
                self.next_chunk += 1;
                continue;
            }
            let start = match self.chunks[i].data_start {
                Some(t) => t,
                None => {
                    let t =
                        chunk_data_start(&self.map, self.index_pos, &self.chunks[i], &self.feeds)?;
                    self.chunks[i].data_start = Some(t);
                    t
                }
            };
            let load = match self.queue.heap.peek() {
                None => true,
                Some(Reverse(top)) => start <= top.time && self.queue.buffered < MAX_BUFFERED_BYTES,
            };
            if !load {
                break;
            }
            let (feeds, specs, q) = (&self.feeds, &self.specs, &mut self.queue);
            for_each_message(
                &self.bag,
                &self.map,
                self.index_pos,
                self.chunks[i].pos,
                &mut |conn, time, data| match feeds.get(&conn) {
                    Some(&feed) => q.absorb(feed, specs, time, data),
                    None => Ok(()),
                },
            )?;
            self.next_chunk += 1;
        }
        Ok(())
    }

    fn pace(&mut self, time: u64) {
        if self.pacing != Pacing::RealTime {
            return;
        }
        match self.clock {
            None => self.clock = Some((time, Instant::now())),
            Some((t0, i0)) => {
                let target = i0 + Duration::from_nanos(time.saturating_sub(t0));
                let now = Instant::now();
                if target > now {
                    std::thread::sleep(target - now);
                }
            }
        }
    }
}

impl Source for BagSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        if let Some(e) = &self.error {
            return Err(self.fail(e.clone()));
        }
        if let Err(e) = self.fill() {
            self.error = Some(e.clone());
            return Err(self.fail(e));
        }
        let Some(Reverse(p)) = self.queue.heap.pop() else {
            return Ok(None);
        };
        self.queue.buffered = self.queue.buffered.saturating_sub(p.bytes);
        let meta = self.queue.metadata.remove(&(p.time, p.kind));
        // Metadata of earlier bag times can no longer be claimed.
        self.queue.metadata = self.queue.metadata.split_off(&(p.time, Kind::Depth));
        let mut sample = p.sample;
        let pairs = meta.unwrap_or_default();
        match &mut sample {
            Sample::Depth(f) => f.metadata = apply_metadata(&pairs, p.time, &mut f.timing),
            Sample::Color(f) => f.metadata = apply_metadata(&pairs, p.time, &mut f.timing),
            Sample::Imu { sample, .. } => {
                let mut t = Timing {
                    frame_number: sample.frame_number,
                    device_ts_ms: sample.device_ts_ms,
                    ts_domain: DEFAULT_TS_DOMAIN,
                    host_ts_us: 0,
                };
                apply_metadata(&pairs, p.time, &mut t);
                sample.device_ts_ms = t.device_ts_ms;
                sample.host_ts_us = t.host_ts_us;
            }
        }
        self.pace(p.time);
        Ok(Some(sample))
    }
}

// ---------------------------------------------------------------------------------------
// Streams and connections
// ---------------------------------------------------------------------------------------

/// The stream kinds replayed, each on its fixed stream id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Depth,
    Color,
    Gyro,
    Accel,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "Depth" => Kind::Depth,
            "Color" => Kind::Color,
            "Gyro" => Kind::Gyro,
            "Accel" => Kind::Accel,
            _ => return None,
        })
    }
    fn id(self) -> u8 {
        match self {
            Kind::Depth => stream_id::DEPTH,
            Kind::Color => stream_id::COLOR,
            Kind::Gyro => stream_id::GYRO,
            Kind::Accel => stream_id::ACCEL,
        }
    }
    fn stream_kind(self) -> StreamKind {
        match self {
            Kind::Depth => StreamKind::Depth,
            Kind::Color => StreamKind::Color,
            Kind::Gyro => StreamKind::Gyro,
            Kind::Accel => StreamKind::Accel,
        }
    }
    fn name(self) -> &'static str {
        self.stream_kind().name()
    }
    fn is_image(self) -> bool {
        matches!(self, Kind::Depth | Kind::Color)
    }
}

/// `/device_0/sensor_<sensor>/<Kind>_<index>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct StreamKey {
    kind: Kind,
    sensor: u32,
    index: u32,
}

impl StreamKey {
    fn topic(&self) -> String {
        let k = match self.kind {
            Kind::Depth => "Depth",
            Kind::Color => "Color",
            Kind::Gyro => "Gyro",
            Kind::Accel => "Accel",
        };
        format!("/device_0/sensor_{}/{k}_{}", self.sensor, self.index)
    }
}

/// What a connection (topic) carries.
#[derive(Clone, Debug, PartialEq)]
enum Role {
    FileVersion,
    DeviceInfo,
    SensorInfo(u32),
    OptionValue { sensor: u32, name: String },
    StreamInfo(StreamKey),
    CameraInfo(StreamKey),
    Extrinsics { stream: StreamKey, group: u32 },
    ImageData(StreamKey),
    ImuData(StreamKey),
    Metadata(StreamKey),
    Ignored,
}

impl Role {
    /// Information read once at open.
    fn is_static(&self) -> bool {
        matches!(
            self,
            Role::FileVersion
                | Role::DeviceInfo
                | Role::SensorInfo(_)
                | Role::OptionValue { .. }
                | Role::StreamInfo(_)
                | Role::CameraInfo(_)
                | Role::Extrinsics { .. }
        )
    }
}

fn classify(topic: &str, tp: &str) -> Role {
    let sensor = |s: &str| s.strip_prefix("sensor_")?.parse::<u32>().ok();
    let stream = |s: &str, st: &str| {
        let (kind, index) = st.rsplit_once('_')?;
        Some(StreamKey {
            kind: Kind::parse(kind)?,
            sensor: sensor(s)?,
            index: index.parse().ok()?,
        })
    };
    let parts: Vec<&str> = topic.split('/').collect();
    let role = match parts.as_slice() {
        ["", "file_version"] => Some(Role::FileVersion),
        ["", "device_0", "info"] => Some(Role::DeviceInfo),
        ["", "device_0", s, "info"] => sensor(s).map(Role::SensorInfo),
        ["", "device_0", s, "option", name, "value"] => sensor(s).map(|sensor| Role::OptionValue {
            sensor,
            name: name.to_string(),
        }),
        ["", "device_0", s, st, "info"] => stream(s, st).map(Role::StreamInfo),
        ["", "device_0", s, st, "info", "camera_info"] => stream(s, st).map(Role::CameraInfo),
        ["", "device_0", s, st, "tf", group] => stream(s, st).and_then(|k| {
            Some(Role::Extrinsics {
                stream: k,
                group: group.parse().ok()?,
            })
        }),
        ["", "device_0", s, st, "image", "data"] => stream(s, st)
            .filter(|k| k.kind.is_image())
            .map(Role::ImageData),
        ["", "device_0", s, st, "imu", "data"] => stream(s, st)
            .filter(|k| !k.kind.is_image())
            .map(Role::ImuData),
        ["", "device_0", s, st, "image" | "imu", "metadata"] => stream(s, st).map(Role::Metadata),
        _ => None,
    };
    let Some(role) = role else {
        return Role::Ignored;
    };
    let expected = match role {
        Role::FileVersion => "std_msgs/UInt32",
        Role::DeviceInfo | Role::SensorInfo(_) | Role::Metadata(_) => "diagnostic_msgs/KeyValue",
        Role::OptionValue { .. } => "std_msgs/Float32",
        Role::StreamInfo(_) => "realsense_msgs/StreamInfo",
        Role::CameraInfo(_) => "sensor_msgs/CameraInfo",
        Role::Extrinsics { .. } => "geometry_msgs/Transform",
        Role::ImageData(_) => "sensor_msgs/Image",
        Role::ImuData(_) => "sensor_msgs/Imu",
        Role::Ignored => return Role::Ignored,
    };
    if tp == expected {
        role
    } else {
        Role::Ignored
    }
}

/// How one image stream's frames are laid out and converted.
#[derive(Clone, Copy, Debug)]
struct ImageSpec {
    width: u32,
    height: u32,
    format: PixelFormat,
    bytes_per_pixel: usize,
    /// UYVY in the bag (librealsense's `yuv422`), stored as YUYV.
    uyvy: bool,
}

/// Maps a ROS / librealsense image encoding to a pixel format and its bytes per pixel.
fn parse_encoding(encoding: &str, kind: Kind) -> Option<(PixelFormat, usize, bool)> {
    let e = encoding.to_ascii_lowercase();
    let r = match e.as_str() {
        "mono16" | "16uc1" | "z16" | "y16" => {
            let f = if kind == Kind::Depth {
                PixelFormat::Z16
            } else {
                PixelFormat::Y16
            };
            (f, 2, false)
        }
        _ if kind == Kind::Depth => return None,
        "rgb8" => (PixelFormat::Rgb8, 3, false),
        "bgr8" => (PixelFormat::Bgr8, 3, false),
        "rgba8" => (PixelFormat::Rgba8, 4, false),
        "bgra8" => (PixelFormat::Bgra8, 4, false),
        "yuyv" | "yuy2" => (PixelFormat::Yuyv, 2, false),
        "yuv422" | "uyvy" => (PixelFormat::Yuyv, 2, true),
        "8uc1" | "mono8" | "y8" | "raw8" => (PixelFormat::Y8, 1, false),
        _ => return None,
    };
    Some(r)
}

/// One `tf` message: extrinsics from the pin stream of `group` to this stream.
#[derive(Clone, Copy, Debug)]
struct Transform {
    group: u32,
    translation: [f64; 3],
    /// x, y, z, w.
    rotation: [f64; 4],
}

impl Transform {
    fn is_identity(&self) -> bool {
        let [x, y, z, w] = self.rotation;
        self.translation.iter().all(|v| v.abs() < 1e-6)
            && x.abs() < 1e-6
            && y.abs() < 1e-6
            && z.abs() < 1e-6
            && (w.abs() - 1.0).abs() < 1e-6
    }

    /// The inverse transform (this stream to the pin stream) in librealsense's convention:
    /// rotation column-major.
    fn inverse_to(&self, to_stream: u8) -> Extrinsics {
        let [x, y, z, w] = self.rotation;
        // Column-major rotation of the quaternion, as librealsense's quat2rot.
        let r = [
            1.0 - 2.0 * y * y - 2.0 * z * z,
            2.0 * x * y + 2.0 * z * w,
            2.0 * x * z - 2.0 * y * w,
            2.0 * x * y - 2.0 * z * w,
            1.0 - 2.0 * x * x - 2.0 * z * z,
            2.0 * y * z + 2.0 * x * w,
            2.0 * x * z + 2.0 * y * w,
            2.0 * y * z - 2.0 * x * w,
            1.0 - 2.0 * x * x - 2.0 * y * y,
        ];
        // m[row][col] = r[col * 3 + row]; the inverse rotation is the transpose.
        let mut rotation = [0f32; 9];
        for row in 0..3 {
            for col in 0..3 {
                rotation[col * 3 + row] = r[row * 3 + col] as f32;
            }
        }
        let t = self.translation;
        let mut translation = [0f32; 3];
        for (i, out) in translation.iter_mut().enumerate() {
            // -(R^T t)_i = -sum_j R[j][i] t_j, with R[j][i] = r[i * 3 + j].
            *out = -(0..3).map(|j| r[i * 3 + j] * t[j]).sum::<f64>() as f32;
        }
        Extrinsics {
            to_stream,
            rotation,
            translation,
        }
    }
}

/// Device and stream information collected at open.
#[derive(Default)]
struct StaticInfo {
    file_version: Option<u32>,
    device: Vec<(String, String)>,
    sensor_names: BTreeMap<u32, String>,
    /// Per sensor: option name and value (first value seen).
    options: BTreeMap<u32, Vec<(String, f32)>>,
    /// fps, encoding.
    stream_info: HashMap<StreamKey, (u32, String)>,
    /// width, height, intrinsics, distortion model name.
    camera_info: HashMap<StreamKey, (u32, u32, Intrinsics, String)>,
    tf: HashMap<StreamKey, Transform>,
    /// width, height, encoding of the first image (streams without camera_info).
    first_image: HashMap<StreamKey, (u32, u32, String)>,
}

impl StaticInfo {
    fn absorb(&mut self, role: &Role, data: &[u8]) -> Result<(), String> {
        let mut r = Rd::new(data);
        match role {
            Role::FileVersion => {
                let v = r.u32("file version")?;
                self.file_version.get_or_insert(v);
            }
            Role::DeviceInfo => {
                let (k, v) = key_value(&mut r)?;
                if !self.device.iter().any(|(dk, _)| *dk == k) {
                    self.device.push((k, v));
                }
            }
            Role::SensorInfo(s) => {
                let (k, v) = key_value(&mut r)?;
                if k == "Name" {
                    self.sensor_names.entry(*s).or_insert(v);
                }
            }
            Role::OptionValue { sensor, name } => {
                let v = r.f32("option value")?;
                let opts = self.options.entry(*sensor).or_default();
                if !opts.iter().any(|(n, _)| n == name) {
                    opts.push((name.clone(), v));
                }
            }
            Role::StreamInfo(k) => {
                let fps = r.u32("fps")?;
                let encoding = r.string("encoding")?;
                self.stream_info.entry(*k).or_insert((fps, encoding));
            }
            Role::CameraInfo(k) => {
                if !self.camera_info.contains_key(k) {
                    let ci = camera_info(&mut r)?;
                    self.camera_info.insert(*k, ci);
                }
            }
            Role::Extrinsics { stream, group } => {
                let mut v = [0f64; 7];
                for x in &mut v {
                    *x = r.f64("transform")?;
                }
                self.tf.entry(*stream).or_insert(Transform {
                    group: *group,
                    translation: [v[0], v[1], v[2]],
                    rotation: [v[3], v[4], v[5], v[6]],
                });
            }
            Role::ImageData(k) => {
                if !self.first_image.contains_key(k) {
                    r.header()?;
                    let height = r.u32("image height")?;
                    let width = r.u32("image width")?;
                    let encoding = r.string("image encoding")?;
                    self.first_image.insert(*k, (width, height, encoding));
                }
            }
            Role::ImuData(_) | Role::Metadata(_) | Role::Ignored => {}
        }
        Ok(())
    }

    fn option(&self, sensor: u32, name: &str) -> Option<f32> {
        self.options
            .get(&sensor)?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// The descriptor of the stream `key`, and how its images are laid out.
    fn descriptor(
        &self,
        kind: Kind,
        key: &StreamKey,
        reference: Option<u32>,
    ) -> Result<(StreamDescriptor, Option<ImageSpec>), String> {
        let (fps, info_encoding) = match self.stream_info.get(key) {
            Some((fps, e)) => (Some(*fps), Some(e.as_str())),
            None => (None, None),
        };
        let mut properties = vec![("bag_stream".to_string(), key.topic())];
        if let Some(n) = self.sensor_names.get(&key.sensor) {
            properties.push(("sensor".into(), n.clone()));
        }
        let fps = match fps {
            Some(f) if f > 0 => f as f64,
            _ => {
                properties.push(("fps_assumed".into(), "true".into()));
                30.0
            }
        };
        let mut desc = StreamDescriptor {
            id: kind.id(),
            kind: kind.stream_kind(),
            name: kind.name().into(),
            width: 0,
            height: 0,
            format: PixelFormat::MotionXyz32f,
            fps,
            depth_units: 0.0,
            intrinsics: None,
            extrinsics: None,
            properties,
        };
        let mut spec = None;
        if kind.is_image() {
            let (width, height, intrinsics, image_encoding) =
                match (self.camera_info.get(key), self.first_image.get(key)) {
                    (Some((w, h, k, model)), _) => {
                        if k.model == Distortion::None && model != "None" {
                            desc.properties
                                .push(("distortion_model".into(), model.clone()));
                        }
                        (*w, *h, Some(k.clone()), None)
                    }
                    (None, Some((w, h, e))) => (*w, *h, None, Some(e.as_str())),
                    (None, None) => return Err("no camera_info and no image to size it".into()),
                };
            if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
                return Err(format!("unsupported image size {width}x{height}"));
            }
            let encoding = info_encoding
                .or(image_encoding)
                .ok_or("no stream info giving the encoding")?;
            let (format, bytes_per_pixel, uyvy) = parse_encoding(encoding, kind)
                .ok_or_else(|| format!("unsupported image encoding '{encoding}'"))?;
            desc.width = width;
            desc.height = height;
            desc.format = format;
            desc.intrinsics = intrinsics;
            desc.properties.push(("encoding".into(), encoding.into()));
            spec = Some(ImageSpec {
                width,
                height,
                format,
                bytes_per_pixel,
                uyvy,
            });
        }
        if kind == Kind::Depth {
            desc.depth_units = self
                .option(key.sensor, "Depth Units")
                .filter(|u| u.is_finite() && *u > 0.0)
                .unwrap_or(0.001);
        } else if let (Some(group), Some(tf)) = (reference, self.tf.get(key)) {
            if tf.group == group {
                desc.extrinsics = Some(tf.inverse_to(stream_id::DEPTH));
            }
        }
        if let Some(opts) = self.options.get(&key.sensor) {
            for (name, v) in opts {
                desc.properties
                    .push((format!("option.{name}"), v.to_string()));
            }
        }
        Ok((desc, spec))
    }

    fn device_info(&self, path: &Path) -> DeviceInfo {
        let get = |k: &str| {
            self.device
                .iter()
                .find(|(dk, _)| dk == k)
                .map(|(_, v)| v.clone())
        };
        let name = get("Name").unwrap_or_default();
        let model = name
            .strip_prefix("Intel RealSense ")
            .map(str::to_string)
            .or_else(|| get("Product Line"))
            .or_else(|| get("Product Id"))
            .unwrap_or_default();
        let mut properties = self.device.clone();
        properties.push(("source".into(), format!("bag:{}", path.display())));
        if let Some(v) = self.file_version {
            properties.push(("bag_file_version".into(), v.to_string()));
        }
        DeviceInfo {
            name,
            serial: get("Serial Number").unwrap_or_default(),
            model,
            firmware: get("Firmware Version").unwrap_or_default(),
            properties,
        }
    }
}

fn distortion(model: &str) -> Distortion {
    match model.to_ascii_lowercase().as_str() {
        "none" => Distortion::None,
        "modified brown conrady" => Distortion::ModifiedBrownConrady,
        "inverse brown conrady" => Distortion::InverseBrownConrady,
        "ftheta" | "f theta" | "f-theta" => Distortion::FTheta,
        "brown conrady" | "plumb_bob" | "rational_polynomial" => Distortion::BrownConrady,
        "kannala brandt4" | "kannala brandt 4" | "equidistant" => Distortion::KannalaBrandt4,
        _ => Distortion::None,
    }
}

/// `sensor_msgs/CameraInfo`: width, height, intrinsics and the distortion model's name.
fn camera_info(r: &mut Rd<'_>) -> Result<(u32, u32, Intrinsics, String), String> {
    r.header()?;
    let height = r.u32("camera_info height")?;
    let width = r.u32("camera_info width")?;
    let model = r.string("distortion model")?;
    let n = r.u32("D length")? as usize;
    if n > r.remaining() / 8 {
        return Err(format!(
            "D has {n} coefficients but the message ends before"
        ));
    }
    let mut coeffs = Vec::with_capacity(n.min(MAX_DISTORTION_COEFFS));
    for i in 0..n {
        let c = r.f64("D")?;
        if i < MAX_DISTORTION_COEFFS {
            coeffs.push(c as f32);
        }
    }
    let mut k = [0f64; 9];
    for v in &mut k {
        *v = r.f64("K")?;
    }
    let intrinsics = Intrinsics {
        fx: k[0] as f32,
        fy: k[4] as f32,
        ppx: k[2] as f32,
        ppy: k[5] as f32,
        model: distortion(&model),
        coeffs,
    };
    Ok((width, height, intrinsics, model))
}

fn key_value(r: &mut Rd<'_>) -> Result<(String, String), String> {
    Ok((r.string("key")?, r.string("value")?))
}

// ---------------------------------------------------------------------------------------
// Sample buffer
// ---------------------------------------------------------------------------------------

/// What to do with one connection's messages during playback.
#[derive(Clone, Copy, Debug)]
enum Feed {
    Image(Kind),
    Imu(Kind),
    Metadata(Kind),
}

/// A decoded sample waiting for its turn.
struct Pending {
    time: u64,
    order: u64,
    kind: Kind,
    bytes: usize,
    sample: Sample,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, self.order).cmp(&(other.time, other.order))
    }
}

#[derive(Default)]
struct Queue {
    /// Samples by (bag time, file order).
    heap: BinaryHeap<Reverse<Pending>>,
    /// Metadata pairs by (bag time, stream).
    metadata: BTreeMap<(u64, Kind), Vec<(String, String)>>,
    buffered: usize,
    order: u64,
}

impl Queue {
    fn absorb(
        &mut self,
        feed: Feed,
        specs: &[Option<ImageSpec>; 2],
        time: u64,
        data: &[u8],
    ) -> Result<(), String> {
        let (kind, sample, bytes) = match feed {
            Feed::Metadata(kind) => {
                let (k, v) = key_value(&mut Rd::new(data))
                    .map_err(|e| format!("{} metadata at bag time {time} ns: {e}", kind.name()))?;
                self.metadata.entry((time, kind)).or_default().push((k, v));
                return Ok(());
            }
            Feed::Image(kind) => {
                let spec = specs[kind.id() as usize]
                    .as_ref()
                    .ok_or_else(|| format!("{} stream has no layout", kind.name()))?;
                let (sample, bytes) = decode_image(data, kind, spec)
                    .map_err(|e| format!("{} frame at bag time {time} ns: {e}", kind.name()))?;
                (kind, sample, bytes)
            }
            Feed::Imu(kind) => {
                let sample = decode_imu(data, kind)
                    .map_err(|e| format!("{} sample at bag time {time} ns: {e}", kind.name()))?;
                (kind, sample, ImuSample::LEN)
            }
        };
        self.order += 1;
        self.buffered += bytes;
        self.heap.push(Reverse(Pending {
            time,
            order: self.order,
            kind,
            bytes,
            sample,
        }));
        Ok(())
    }
}

/// Fills `timing` from the frame's metadata pairs and returns the numeric ones.
fn apply_metadata(
    pairs: &[(String, String)],
    bag_time: u64,
    timing: &mut Timing,
) -> Vec<(String, i64)> {
    let mut numeric = Vec::with_capacity(pairs.len());
    let mut system_time_ms = None;
    let mut arrival_ms = None;
    timing.ts_domain = DEFAULT_TS_DOMAIN;
    for (k, v) in pairs {
        let v = v.trim();
        match k.as_str() {
            "timestamp_domain" | "clock_domain" => {
                timing.ts_domain = match v {
                    "Hardware Clock" => ts_domain::HARDWARE_CLOCK,
                    "System Time" => ts_domain::SYSTEM_TIME,
                    "Global Time" => ts_domain::GLOBAL_TIME,
                    _ => timing.ts_domain,
                };
                continue;
            }
            "system_time" => system_time_ms = v.parse::<f64>().ok().filter(|t| t.is_finite()),
            "Time Of Arrival" => arrival_ms = v.parse::<f64>().ok().filter(|t| t.is_finite()),
            _ => {}
        }
        if let Ok(n) = v.parse::<i64>() {
            numeric.push((k.clone(), n));
        } else if let Ok(x) = v.parse::<f64>() {
            if x.is_finite() {
                numeric.push((k.clone(), x.round() as i64));
            }
        }
    }
    timing.host_ts_us = match system_time_ms.or(arrival_ms) {
        Some(ms) => (ms * 1000.0).round() as i64,
        None => (bag_time / 1000) as i64,
    };
    numeric
}

/// `sensor_msgs/Image` into a depth or colour sample and its buffered size.
fn decode_image(data: &[u8], kind: Kind, spec: &ImageSpec) -> Result<(Sample, usize), String> {
    let mut r = Rd::new(data);
    let (seq, stamp_ms) = r.header()?;
    let height = r.u32("height")?;
    let width = r.u32("width")?;
    let encoding = r.string("encoding")?;
    let big_endian = r.u8("is_bigendian")? != 0;
    let step = r.u32("step")? as usize;
    let n = r.u32("data length")? as usize;
    let pixels = r.take(n, "image data")?;
    if (width, height) != (spec.width, spec.height) {
        return Err(format!(
            "image is {width}x{height} but the stream is {}x{}",
            spec.width, spec.height
        ));
    }
    match parse_encoding(&encoding, kind) {
        Some((f, _, uyvy)) if f == spec.format && uyvy == spec.uyvy => {}
        _ => {
            return Err(format!(
                "image encoding '{encoding}' differs from the stream's"
            ))
        }
    }
    let row = width as usize * spec.bytes_per_pixel;
    if step < row {
        return Err(format!(
            "row step {step} is shorter than a row ({row} bytes)"
        ));
    }
    let h = height as usize;
    let needed = step
        .checked_mul(h.saturating_sub(1))
        .and_then(|v| v.checked_add(row))
        .ok_or("image size overflows")?;
    if pixels.len() < needed {
        return Err(format!(
            "image data has {} bytes, {needed} needed for {width}x{height} with step {step}",
            pixels.len()
        ));
    }
    let rows = (0..h).map(|y| &pixels[y * step..y * step + row]);
    let timing = Timing {
        frame_number: seq as u64,
        device_ts_ms: stamp_ms,
        ts_domain: DEFAULT_TS_DOMAIN,
        host_ts_us: 0,
    };
    if kind == Kind::Depth {
        let mut out = Vec::with_capacity(width as usize * h);
        for row in rows {
            out.extend(row.chunks_exact(2).map(|b| {
                let b = [b[0], b[1]];
                if big_endian {
                    u16::from_be_bytes(b)
                } else {
                    u16::from_le_bytes(b)
                }
            }));
        }
        let bytes = out.len() * 2;
        let f = DepthFrame {
            timing,
            data: out,
            metadata: Vec::new(),
        };
        Ok((Sample::Depth(f), bytes))
    } else {
        let mut out = Vec::with_capacity(row * h);
        for row in rows {
            out.extend_from_slice(row);
        }
        // UYVY to YUYV, and big-endian 16-bit samples to little-endian, are byte-pair swaps.
        if spec.uyvy || (big_endian && spec.format == PixelFormat::Y16) {
            for pair in out.chunks_exact_mut(2) {
                pair.swap(0, 1);
            }
        }
        let bytes = out.len();
        let f = ColorFrame {
            timing,
            data: out,
            metadata: Vec::new(),
        };
        Ok((Sample::Color(f), bytes))
    }
}

/// `sensor_msgs/Imu` into a gyro (angular velocity) or accel (linear acceleration) sample.
fn decode_imu(data: &[u8], kind: Kind) -> Result<Sample, String> {
    let mut r = Rd::new(data);
    let (seq, stamp_ms) = r.header()?;
    let mut v = [0f64; 4 + 9 + 3 + 9 + 3];
    for x in &mut v {
        *x = r.f64("imu")?;
    }
    let xyz = match kind {
        Kind::Gyro => &v[13..16],
        _ => &v[25..28],
    };
    Ok(Sample::Imu {
        kind: kind.stream_kind(),
        sample: ImuSample {
            frame_number: seq as u64,
            device_ts_ms: stamp_ms,
            host_ts_us: 0,
            xyz: [xyz[0] as f32, xyz[1] as f32, xyz[2] as f32],
        },
    })
}

// ---------------------------------------------------------------------------------------
// ROS message reader
// ---------------------------------------------------------------------------------------

/// Bounds-checked little-endian reader of one serialised ROS message.
struct Rd<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Rd<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, p: 0 }
    }
    fn remaining(&self) -> usize {
        self.b.len() - self.p
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "message ends inside {what} ({n} bytes needed, {} left)",
                self.remaining()
            ));
        }
        let s = &self.b[self.p..self.p + n];
        self.p += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn f32(&mut self, what: &str) -> Result<f32, String> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    fn f64(&mut self, what: &str) -> Result<f64, String> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String, String> {
        let n = self.u32(what)? as usize;
        Ok(String::from_utf8_lossy(self.take(n, what)?).into_owned())
    }
    /// `std_msgs/Header`: sequence number and stamp in milliseconds (frame id skipped).
    fn header(&mut self) -> Result<(u32, f64), String> {
        let seq = self.u32("header seq")?;
        let sec = self.u32("header stamp")?;
        let nsec = self.u32("header stamp")?;
        let n = self.u32("header frame_id")? as usize;
        self.take(n, "header frame_id")?;
        Ok((seq, sec as f64 * 1e3 + nsec as f64 / 1e6))
    }
}

// ---------------------------------------------------------------------------------------
// ROS bag records (checked before handing chunks to the `rosbag` crate)
// ---------------------------------------------------------------------------------------

/// Where the bag's sections are.
struct Layout {
    /// First record after the bag header.
    start_pos: u64,
    index_pos: u64,
    conn_count: u32,
    chunk_count: u32,
}

/// One raw record: header fields and where its data is.
struct RawRecord<'a> {
    header: &'a [u8],
    data: &'a [u8],
    end: u64,
}

/// Reads the record at `pos`, which must end at or before `limit`.
fn raw_record(map: &[u8], pos: u64, limit: u64) -> Result<RawRecord<'_>, String> {
    let limit = limit.min(map.len() as u64);
    let u32_at = |p: u64, what: &str| -> Result<u64, String> {
        if p.checked_add(4).is_none_or(|e| e > limit) {
            return Err(format!(
                "record at byte {pos}: {what} length past the end of its section (byte {limit}): truncated or damaged file"
            ));
        }
        let p = p as usize;
        Ok(u32::from_le_bytes([map[p], map[p + 1], map[p + 2], map[p + 3]]) as u64)
    };
    let header_len = u32_at(pos, "header")?;
    let header_start = pos + 4;
    let data_len = u32_at(header_start + header_len, "data")?;
    let data_start = header_start + header_len + 4;
    let end = data_start + data_len;
    if end > limit {
        return Err(format!(
            "record at byte {pos} ends at byte {end}, past the end of its section (byte {limit}): truncated or damaged file"
        ));
    }
    Ok(RawRecord {
        header: &map[header_start as usize..(header_start + header_len) as usize],
        data: &map[data_start as usize..end as usize],
        end,
    })
}

/// `name=value` fields of a record header.
type Fields<'a> = Vec<(&'a [u8], &'a [u8])>;

/// Splits a record header into its fields.
fn fields(mut h: &[u8]) -> Result<Fields<'_>, String> {
    let mut out = Vec::new();
    while !h.is_empty() {
        if h.len() < 4 {
            return Err("record header ends inside a field length".into());
        }
        let n = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        h = &h[4..];
        if n > h.len() {
            return Err("record header field runs past the header".into());
        }
        let (f, rest) = h.split_at(n);
        h = rest;
        let eq = f
            .iter()
            .position(|&c| c == b'=')
            .ok_or("record header field without '='")?;
        out.push((&f[..eq], &f[eq + 1..]));
    }
    Ok(out)
}

fn field<'a>(fields: &[(&[u8], &'a [u8])], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(n, _)| *n == name.as_bytes())
        .map(|(_, v)| *v)
}

fn field_u32(fields: &[(&[u8], &[u8])], name: &str) -> Result<u32, String> {
    match field(fields, name) {
        Some(v) if v.len() == 4 => Ok(u32::from_le_bytes([v[0], v[1], v[2], v[3]])),
        _ => Err(format!(
            "record header field '{name}' missing or not 4 bytes"
        )),
    }
}

fn field_op(fields: &[(&[u8], &[u8])]) -> Option<u8> {
    match field(fields, "op") {
        Some([op]) => Some(*op),
        _ => None,
    }
}

fn parse_bag_header(map: &[u8]) -> Result<Layout, String> {
    if !map.starts_with(MAGIC) {
        let first: Vec<u8> = map
            .iter()
            .take(16)
            .copied()
            .take_while(|&c| c != b'\n')
            .collect();
        return Err(if first.starts_with(b"#ROSBAG V") {
            format!(
                "unsupported ROS bag version '{}' (only V2.0 is read)",
                String::from_utf8_lossy(&first)
            )
        } else {
            "not a ROS bag (the file does not start with '#ROSBAG V2.0')".into()
        });
    }
    let len = map.len() as u64;
    let rec = raw_record(map, MAGIC.len() as u64, len).map_err(|e| format!("bag header: {e}"))?;
    let f = fields(rec.header).map_err(|e| format!("bag header: {e}"))?;
    if field_op(&f) != Some(OP_BAG_HEADER) {
        return Err("the first record is not a bag header".into());
    }
    let index_pos = match field(&f, "index_pos") {
        Some(v) if v.len() == 8 => u64::from_le_bytes(v.try_into().unwrap_or_default()),
        _ => return Err("bag header has no index_pos".into()),
    };
    let conn_count = field_u32(&f, "conn_count").map_err(|e| format!("bag header: {e}"))?;
    let chunk_count = field_u32(&f, "chunk_count").map_err(|e| format!("bag header: {e}"))?;
    let start_pos = rec.end;
    if index_pos == 0 {
        return Err("the bag is not indexed (its recorder did not close it); \
                    reindex it first (`rosbag reindex`)"
            .into());
    }
    if index_pos > len {
        return Err(format!(
            "truncated: the index should start at byte {index_pos} but the file has only {len} bytes"
        ));
    }
    if index_pos < start_pos {
        return Err(format!(
            "damaged bag header: index position {index_pos} lies inside the header"
        ));
    }
    Ok(Layout {
        start_pos,
        index_pos,
        conn_count,
        chunk_count,
    })
}

/// One chunk, from the index.
struct ChunkMeta {
    pos: u64,
    /// Earliest message of any connection (from the index).
    start_time: u64,
    /// Connections with messages in the chunk.
    conns: Vec<u32>,
    /// Earliest message of a replayed connection (from the chunk's index data records).
    data_start: Option<u64>,
}

type Connections = BTreeMap<u32, (String, String)>;

/// Connections (id -> topic, type) and chunks (in file order) from the index section.
fn read_index(bag: &RosBag, layout: &Layout) -> Result<(Connections, Vec<ChunkMeta>), String> {
    let mut conns = BTreeMap::new();
    let mut chunks = Vec::new();
    for rec in bag.index_records() {
        match rec.map_err(|e| format!("damaged or truncated index: {e}"))? {
            IndexRecord::Connection(c) => {
                conns
                    .entry(c.id)
                    .or_insert_with(|| (c.topic.to_string(), c.tp.to_string()));
            }
            IndexRecord::ChunkInfo(ci) => {
                if ci.chunk_pos < layout.start_pos || ci.chunk_pos >= layout.index_pos {
                    return Err(format!(
                        "damaged index: chunk position {} outside the chunk section",
                        ci.chunk_pos
                    ));
                }
                chunks.push(ChunkMeta {
                    pos: ci.chunk_pos,
                    start_time: ci.start_time,
                    conns: ci.entries().map(|e| e.conn_id).collect(),
                    data_start: None,
                });
            }
            IndexRecord::IndexData(_) => {}
        }
    }
    if chunks.len() != layout.chunk_count as usize {
        return Err(format!(
            "incomplete index: it lists {} chunks but the bag header says {} (truncated or damaged)",
            chunks.len(),
            layout.chunk_count
        ));
    }
    if conns.len() != layout.conn_count as usize {
        return Err(format!(
            "incomplete index: it lists {} connections but the bag header says {} (truncated or damaged)",
            conns.len(),
            layout.conn_count
        ));
    }
    chunks.sort_by_key(|c| c.pos);
    chunks.dedup_by_key(|c| c.pos);
    Ok((conns, chunks))
}

/// Checks the chunk record at `pos` (size limits) and returns its end.
fn check_chunk(map: &[u8], index_pos: u64, pos: u64) -> Result<u64, String> {
    let rec = raw_record(map, pos, index_pos)?;
    let f = fields(rec.header).map_err(|e| format!("chunk at byte {pos}: {e}"))?;
    if field_op(&f) != Some(OP_CHUNK) {
        return Err(format!("damaged index: no chunk at byte {pos}"));
    }
    let size = field_u32(&f, "size").map_err(|e| format!("chunk at byte {pos}: {e}"))? as u64;
    if size > MAX_CHUNK_SIZE {
        return Err(format!(
            "chunk at byte {pos} claims {size} bytes uncompressed, over the {MAX_CHUNK_SIZE} byte limit"
        ));
    }
    match field(&f, "compression") {
        Some(b"none") if size != rec.data.len() as u64 => Err(format!(
            "chunk at byte {pos}: size {size} differs from its {} stored bytes",
            rec.data.len()
        )),
        Some(b"none" | b"lz4" | b"bz2") => Ok(rec.end),
        Some(c) => Err(format!(
            "chunk at byte {pos}: unsupported compression '{}'",
            String::from_utf8_lossy(c)
        )),
        None => Err(format!("chunk at byte {pos}: no compression field")),
    }
}

/// The earliest bag time of a replayed connection in the chunk, from the index data records
/// that follow it (falls back to the chunk's start time from the index).
fn chunk_data_start(
    map: &[u8],
    index_pos: u64,
    chunk: &ChunkMeta,
    feeds: &HashMap<u32, Feed>,
) -> Result<u64, String> {
    let mut pos = check_chunk(map, index_pos, chunk.pos)?;
    let mut earliest: Option<u64> = None;
    while pos < index_pos {
        let rec = raw_record(map, pos, index_pos)?;
        let f = fields(rec.header).map_err(|e| format!("index data at byte {pos}: {e}"))?;
        if field_op(&f) != Some(OP_INDEX_DATA) {
            break;
        }
        let conn = field_u32(&f, "conn").map_err(|e| format!("index data at byte {pos}: {e}"))?;
        if feeds.contains_key(&conn) {
            if rec.data.len() % 12 != 0 {
                return Err(format!(
                    "index data at byte {pos}: length not a multiple of 12"
                ));
            }
            for e in rec.data.chunks_exact(12) {
                let sec = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as u64;
                let nsec = u32::from_le_bytes([e[4], e[5], e[6], e[7]]) as u64;
                let t = sec * 1_000_000_000 + nsec;
                earliest = Some(earliest.map_or(t, |x| x.min(t)));
            }
        }
        pos = rec.end;
    }
    Ok(earliest.unwrap_or(chunk.start_time))
}

/// Receives (connection, bag time ns, message bytes).
type MessageFn<'a> = dyn FnMut(u32, u64, &[u8]) -> Result<(), String> + 'a;

/// Decompresses the chunk at `pos` and calls `f(connection, bag time ns, message bytes)` for
/// each message in it, in stored order.
fn for_each_message(
    bag: &RosBag,
    map: &[u8],
    index_pos: u64,
    pos: u64,
    f: &mut MessageFn<'_>,
) -> Result<(), String> {
    check_chunk(map, index_pos, pos)?;
    let mut records = bag.chunk_records();
    records
        .seek(pos)
        .map_err(|e| format!("chunk at byte {pos}: {e}"))?;
    let chunk = match records.next() {
        Some(Ok(ChunkRecord::Chunk(c))) => c,
        Some(Ok(ChunkRecord::IndexData(_))) | None => {
            return Err(format!("damaged index: no chunk at byte {pos}"))
        }
        Some(Err(e)) => return Err(format!("chunk at byte {pos}: {e}")),
    };
    for m in chunk.messages() {
        match m.map_err(|e| format!("chunk at byte {pos}: damaged message record: {e}"))? {
            MessageRecord::MessageData(m) => f(m.conn_id, m.time, m.data)?,
            MessageRecord::Connection(_) => {}
        }
    }
    Ok(())
}
