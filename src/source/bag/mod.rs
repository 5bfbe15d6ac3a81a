//! `bag:FILE`: a librealsense `.bag` (ROS1 bag v2) replayed as a camera, in pure Rust.
//!
//! The ROS bag container (chunks, LZ4/bz2 decompression, index records) is read by one
//! hand-written, bounds-checked parser (`records`); the ROS message serialisation
//! (`messages`) and librealsense's topic layout (`topics`) are decoded here too. Topics used (librealsense file format v2/v3):
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
//! [`SourceError::Bag`], never a panic.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod messages;
mod records;
mod topics;

use memmap2::Mmap;
use messages::*;
use records::*;
use topics::*;

use super::{
    stream_id, ColorFrame, DepthFrame, InfraredFrame, Sample, Source, SourceError, SourceInfo,
    StreamId, Timing,
};
use crate::container::format::{ts_domain, MAX_DIMENSION, MAX_DISTORTION_COEFFS};
use crate::container::header::invert_rigid;
use crate::container::{
    DeviceInfo, Distortion, Extrinsics, FrameMetadata, ImuSample, Intrinsics, PixelFormat,
    StreamDescriptor, StreamKind,
};

/// How the bag is replayed: [`Pacing::RealTime`] sleeps so that samples come out at the pace
/// of their bag timestamps (relative to the first sample); [`Pacing::AsFastAsPossible`] never
/// sleeps. (The same type as the other finite sources use.)
pub use super::Pacing;

const MAGIC: &[u8] = b"#ROSBAG V2.0\n";
const OP_MESSAGE_DATA: u8 = 0x02;
const OP_BAG_HEADER: u8 = 0x03;
const OP_INDEX_DATA: u8 = 0x04;
const OP_CHUNK: u8 = 0x05;
const OP_CHUNK_INFO: u8 = 0x06;
const OP_CONNECTION: u8 = 0x07;
/// Largest decompressed chunk accepted (librealsense chunks hold a few frames at most).
const MAX_CHUNK_SIZE: u64 = 256 << 20;
/// Stop reading ahead once this many bytes of decoded samples are buffered (only reached by
/// bags whose chunks overlap badly in time).
const MAX_BUFFERED_BYTES: usize = 512 << 20;
/// How many chunks may be decompressed at open just to collect device/sensor info pairs.
const MAX_INFO_CHUNK_SCANS: usize = 16;
/// `timestamp_domain` metadata is absent: librealsense's default domain.
const DEFAULT_TS_DOMAIN: u8 = ts_domain::HARDWARE_CLOCK;

/// The bytes of a bag: the memory-mapped file, or a buffer.
enum Data {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Data {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Data::Mapped(m) => m,
            Data::Owned(v) => v,
        }
    }
}

/// A librealsense `.bag` file replayed as a [`Source`].
pub struct BagSource {
    info: SourceInfo,
    path: PathBuf,
    map: Data,
    index_pos: u64,
    /// Chunks in file order.
    chunks: Vec<ChunkMeta>,
    /// What to do with the messages of each connection that carries samples or metadata of a
    /// selected stream.
    feeds: HashMap<u32, Feed>,
    /// Image layout of the depth and colour streams (indexed by stream id).
    specs: [Option<ImageSpec>; 6],
    next_chunk: usize,
    queue: Queue,
    pacing: Pacing,
    /// Bag time of the first sample yielded and when it was yielded (real-time pacing).
    clock: Option<(u64, Instant)>,
    /// A damaged chunk ends the replay; the error is repeated on later calls.
    error: Option<String>,
    /// Depth and colour frames without the camera's frame counter are numbered from their
    /// timestamps, as librealsense's playback does in rsrec ([`super::renumber`]).
    renumber: [super::renumber::Renumber; 6],
    /// Streams of the bag that are not replayed, and why (an infrared format rsrec does not
    /// record).
    skipped: Vec<String>,
}

impl BagSource {
    /// Opens `path`, reads its index, device and stream information. Frames are read lazily
    /// by [`Source::next`].
    pub fn open(path: &Path, pacing: Pacing) -> Result<BagSource, SourceError> {
        let fail = |detail: String| SourceError::Bag {
            path: path.to_path_buf(),
            detail,
        };
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
        // SAFETY: the mapping is read-only; like every memory-mapped reader we rely on the file
        // not being truncated while it is open.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Self::from_data(path, Data::Mapped(map), pacing)
    }

    /// A bag held in memory (`name` is used in messages): what the fuzz target parses.
    pub fn from_bytes(
        name: &Path,
        bytes: Vec<u8>,
        pacing: Pacing,
    ) -> Result<BagSource, SourceError> {
        Self::from_data(name, Data::Owned(bytes), pacing)
    }

    fn from_data(path: &Path, map: Data, pacing: Pacing) -> Result<BagSource, SourceError> {
        let fail = |detail: String| SourceError::Bag {
            path: path.to_path_buf(),
            detail,
        };
        if map.len() < MAGIC.len() {
            return Err(fail(format!(
                "not a ROS bag: the file is only {} bytes (truncated or empty)",
                map.len()
            )));
        }
        let layout = parse_bag_header(&map).map_err(fail)?;
        let (conns, chunks) = read_index(&map, &layout).map_err(fail)?;

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
        let mut specs: [Option<ImageSpec>; 6] = Default::default();
        let mut skipped = Vec::new();
        let reference = selected
            .get(&Kind::Depth)
            .and_then(|k| st.tf.get(k))
            .filter(|t| t.is_identity())
            .map(|t| t.group);
        for (&kind, key) in &selected.clone() {
            let (desc, spec) = match st.descriptor(kind, key, reference) {
                Ok(d) => d,
                // Infrared rsrec cannot store is left out, and said; the rest is replayed.
                Err(e) if kind.ir_index().is_some() => {
                    skipped.push(format!("{} stream {}: {e}", kind.name(), key.topic()));
                    selected.remove(&kind);
                    continue;
                }
                Err(e) => return Err(fail(format!("{} stream {}: {e}", kind.name(), key.topic()))),
            };
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
            renumber: Default::default(),
            skipped,
        })
    }

    fn fail(&self, detail: String) -> SourceError {
        SourceError::Bag {
            path: self.path.clone(),
            detail,
        }
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

impl BagSource {
    /// Streams of the bag that are not replayed, and why.
    pub fn skipped_streams(&self) -> &[String] {
        &self.skipped
    }

    /// A frame without a `frame_counter` in its metadata gets its number from its timestamp.
    fn renumber(&mut self, id: u8, t: &mut Timing, metadata: &mut Vec<(String, i64)>) {
        use super::renumber::{COUNTER_KEY, ORIGINAL_NUMBER_KEY};
        // A counter that is the frame number (as librealsense numbers frames with one).
        let counted = metadata.iter().any(|(k, v)| {
            FrameMetadata::key_of(k).as_deref() == Some(COUNTER_KEY)
                && u64::try_from(*v) == Ok(t.frame_number)
        });
        if counted {
            return;
        }
        let fps = self
            .info
            .streams
            .iter()
            .find(|s| s.id == id)
            .map_or(30.0, |s| s.fps);
        let Some(slot) = self.renumber.get_mut(id as usize) else {
            return;
        };
        metadata.push((ORIGINAL_NUMBER_KEY.into(), t.frame_number as i64));
        t.frame_number = slot.next(t.frame_number, t.device_ts_ms, fps);
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
            Sample::Depth(f) => {
                f.metadata = apply_metadata(&pairs, p.time, &mut f.timing);
                self.renumber(stream_id::DEPTH, &mut f.timing, &mut f.metadata);
            }
            Sample::Color(f) => {
                f.metadata = apply_metadata(&pairs, p.time, &mut f.timing);
                self.renumber(stream_id::COLOR, &mut f.timing, &mut f.metadata);
            }
            Sample::Infrared { ir_index, frame } => {
                frame.metadata = apply_metadata(&pairs, p.time, &mut frame.timing);
                let id = StreamId::infrared(*ir_index).map_or(stream_id::IR_LEFT, StreamId::id);
                self.renumber(id, &mut frame.timing, &mut frame.metadata);
            }
            Sample::Imu {
                sample, ts_domain, ..
            } => {
                let mut t = Timing {
                    frame_number: sample.frame_number,
                    device_ts_ms: sample.device_ts_ms,
                    ts_domain: DEFAULT_TS_DOMAIN,
                    host_ts_us: 0,
                };
                apply_metadata(&pairs, p.time, &mut t);
                sample.device_ts_ms = t.device_ts_ms;
                sample.host_ts_us = t.host_ts_us;
                *ts_domain = t.ts_domain;
            }
        }
        self.pace(p.time);
        Ok(Some(sample))
    }
}

// ---------------------------------------------------------------------------------------
// Streams and connections
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
        specs: &[Option<ImageSpec>; 6],
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
