//! A recording opened for reading (by export, the viewer, `info`): a session folder (`session.json` listing cameras and their files), a
//! folder of `.rsrec` files (e.g. `rsrec import` output), or a single `.rsrec` file.
//!
//! A camera recorded with `--segment` has several files; they are one continuous recording,
//! so positions (`--frames`, frames.csv's `index`) count across all of them in order.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::{Result, SessionError};
use super::manifest::{SessionManifest, SessionStatus};
use crate::container::format::{
    record_type, SECTION_SORTED_BY_DEVICE_TS, SECTION_SORTED_BY_HOST_TS,
};
use crate::container::record::decode_imu_batch;
use crate::container::{
    ColorFrameEntry, ContainerError, FrameMetadata, ImuSample, IndexEntry, Reader, RecordHeader,
    StreamDescriptor, StreamKind, VideoSegment,
};

/// One `.rsrec` file of a camera.
pub struct CameraFile {
    pub path: PathBuf,
    pub reader: Reader,
    /// Id of the file's depth stream, if it has one.
    depth: Option<u8>,
    /// Id of the file's colour stream, if it has one.
    color: Option<u8>,
    /// Ids of the file's left and right infrared streams (§5.9), if it has them.
    infrared: [Option<u8>; 2],
}

/// The streams export works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Depth,
    Color,
    /// Infrared of the left imager (format §5.9).
    IrLeft,
    /// Infrared of the right imager.
    IrRight,
}

impl Stream {
    /// Every stream, in the order of [`Camera`]'s per-stream tables.
    pub const ALL: [Stream; 4] = [
        Stream::Depth,
        Stream::Color,
        Stream::IrLeft,
        Stream::IrRight,
    ];

    fn record_type(self) -> u8 {
        match self {
            Stream::Depth => record_type::DEPTH_FRAME,
            Stream::Color => record_type::COLOR_FRAME,
            Stream::IrLeft | Stream::IrRight => record_type::INFRARED_FRAME,
        }
    }
    /// "depth frames" / "colour frames", for messages.
    pub fn frames_name(self) -> &'static str {
        match self {
            Stream::Depth => "depth frames",
            Stream::Color => "colour frames",
            Stream::IrLeft => "left infrared frames",
            Stream::IrRight => "right infrared frames",
        }
    }
    /// The stream's name in file names and tables: `depth`, `color`, `ir_left`, `ir_right`.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Depth => "depth",
            Stream::Color => "color",
            Stream::IrLeft => "ir_left",
            Stream::IrRight => "ir_right",
        }
    }
    /// The infrared stream of imager `ir_index` (1 left, 2 right).
    pub fn infrared(ir_index: u8) -> Option<Stream> {
        match ir_index {
            1 => Some(Stream::IrLeft),
            2 => Some(Stream::IrRight),
            _ => None,
        }
    }
    /// Whether this is an infrared stream.
    pub fn is_infrared(self) -> bool {
        matches!(self, Stream::IrLeft | Stream::IrRight)
    }
}

/// One IMU sample (§5.3) with the clock of its device timestamp: the timestamp domain
/// (`container::format::ts_domain`) of the batch it was recorded in. A stream can change
/// clocks between batches, never within one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImuReading {
    pub sample: ImuSample,
    pub ts_domain: u8,
}

/// The IMU stream kinds, in the order [`Camera::imu_kinds`] lists them.
const IMU_KINDS: [StreamKind; 2] = [StreamKind::Gyro, StreamKind::Accel];

/// Batches read beyond those the index says can overlap a time range, on each side: host
/// times of samples that jitter across a batch boundary (a sample later than the first one
/// of the next batch) are still found.
const IMU_MARGIN_BATCHES: usize = 1;

/// The clock that puts a camera's frames on the recording's timeline (the viewer's time
/// axis, `export --time`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeline {
    /// Host time (µs since 1970): one clock for every camera.
    Host,
    /// Device time, because the host times are unusable (every frame has the same one, as
    /// in a bag whose system time is 0): a frame is at `offset_us` + its device time, which
    /// puts the first depth frame at its own host time.
    Device { offset_us: i64 },
}

/// One camera: its files in recording order, and where its colour videos are.
pub struct Camera {
    pub name: String,
    pub files: Vec<CameraFile>,
    /// Descriptor of the depth stream (the same in every file).
    pub depth: Option<StreamDescriptor>,
    /// Descriptor of the colour stream.
    pub color: Option<StreamDescriptor>,
    /// Descriptors of the left and right infrared streams (§5.9).
    pub infrared: [Option<StreamDescriptor>; 2],
    /// Video file of each colour segment number (§5.6), resolved next to the `.rsrec` file.
    pub videos: BTreeMap<u32, PathBuf>,
    /// Cumulative counts per [`Stream::ALL`] stream: `starts[s][f]` = position of file f's
    /// first frame.
    starts: [Vec<usize>; 4],
    timeline: Timeline,
}

/// A session, folder or file, opened read-only.
pub struct Recording {
    pub cameras: Vec<Camera>,
    /// What was opened, for messages.
    pub description: String,
    /// The session's manifest, when a session folder was opened.
    pub manifest: Option<SessionManifest>,
}

impl Recording {
    /// Opens a session folder (or its `session.json`), a folder of `.rsrec` files or one
    /// `.rsrec` file.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| SessionError::io(path, e))?;
        if meta.is_file() && path.file_name().is_some_and(|n| n == "session.json") {
            let dir = path.parent().unwrap_or(Path::new("."));
            return Self::open_session(dir, path);
        }
        if meta.is_file() {
            let file = open_file(path)?;
            let name = camera_name(&file.reader, path);
            return Ok(Recording {
                cameras: vec![Camera::new(name, vec![file])?],
                description: path.display().to_string(),
                manifest: None,
            });
        }
        let session = path.join("session.json");
        if session.is_file() {
            return Self::open_session(path, &session);
        }
        Self::open_dir(path)
    }

    fn open_session(dir: &Path, json: &Path) -> Result<Self> {
        let manifest = SessionManifest::read(json)?;
        let mut cameras = Vec::new();
        for c in &manifest.cameras {
            if c.files.is_empty() {
                // A camera that failed to start has no files: nothing to read.
                continue;
            }
            // The name becomes a folder name in exports: it must stay a plain name.
            if let Err(why) = super::manifest::check_plain_name(&c.name) {
                return Err(SessionError::Input(format!(
                    "{}: camera name {:?} {why}",
                    json.display(),
                    c.name
                )));
            }
            let mut opened = Vec::new();
            for f in &c.files {
                opened.push(open_file(&dir.join(safe_relative(f, json)?))?);
            }
            cameras.push(Camera::new(c.name.clone(), opened)?);
        }
        if cameras.is_empty() {
            // session.json lists the files when the recording ends: a recorder that was
            // killed leaves none listed, so take the folder's .rsrec files instead.
            if manifest.status == SessionStatus::Recording {
                let mut r = Self::open_dir(dir)?;
                r.description = format!("session {} (unfinished)", dir.display());
                r.manifest = Some(manifest);
                return Ok(r);
            }
            return Err(SessionError::Input(format!(
                "{}: the session has no camera with files",
                dir.display()
            )));
        }
        Ok(Recording {
            cameras,
            description: format!("session {}", dir.display()),
            manifest: Some(manifest),
        })
    }

    fn open_dir(dir: &Path) -> Result<Self> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| SessionError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "rsrec"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(SessionError::Input(format!(
                "{}: not a session folder (no session.json) and no .rsrec files in it",
                dir.display()
            )));
        }
        // Group the files by camera, keeping their (sorted, segment-numbered) order.
        let mut groups: Vec<(String, Vec<CameraFile>)> = Vec::new();
        for p in paths {
            let f = open_file(&p)?;
            let name = camera_name(&f.reader, &p);
            match groups.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(f),
                None => groups.push((name, vec![f])),
            }
        }
        let cameras = groups
            .into_iter()
            .map(|(n, f)| Camera::new(n, f))
            .collect::<Result<Vec<_>>>()?;
        Ok(Recording {
            cameras,
            description: format!("folder {}", dir.display()),
            manifest: None,
        })
    }

    /// The start of the recording: the earliest timeline time ([`Camera::time_us`]; host
    /// time unless a camera's host times are unusable) of any depth or colour frame of any
    /// camera. `--time` counts from here.
    pub fn start_us(&self) -> Option<i64> {
        self.cameras
            .iter()
            .flat_map(|c| Stream::ALL.map(|s| c.first_time_us(s)))
            .flatten()
            .min()
    }

    /// The cameras named in `names` (all when empty), in the order given.
    pub fn select_cameras(&self, names: &[String]) -> Result<Vec<&Camera>> {
        if names.is_empty() {
            return Ok(self.cameras.iter().collect());
        }
        names
            .iter()
            .map(|n| {
                self.cameras.iter().find(|c| &c.name == n).ok_or_else(|| {
                    SessionError::Input(format!(
                        "no camera {n:?} in {} (cameras: {})",
                        self.description,
                        self.cameras
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
            })
            .collect()
    }
}

/// Refuses absolute paths and `..` in names that must stay inside a folder.
fn safe_relative<'a>(name: &'a str, context: &Path) -> Result<&'a Path> {
    let p = Path::new(name);
    let ok = !name.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if ok {
        Ok(p)
    } else {
        Err(SessionError::Input(format!(
            "{}: file name {name:?} is not a plain relative name",
            context.display()
        )))
    }
}

fn open_file(path: &Path) -> Result<CameraFile> {
    let reader = Reader::open(path).map_err(|e| SessionError::container(path, e))?;
    let find = |kind: StreamKind| {
        reader
            .header()
            .streams
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.id)
    };
    let (depth, color) = (find(StreamKind::Depth), find(StreamKind::Color));
    let ir = |index: u8| {
        reader
            .header()
            .streams
            .iter()
            .find(|s| s.kind == StreamKind::Infrared && s.ir_index() == Some(index))
            .map(|s| s.id)
    };
    let infrared = [ir(1), ir(2)];
    Ok(CameraFile {
        path: path.to_path_buf(),
        reader,
        depth,
        color,
        infrared,
    })
}

/// The camera a file belongs to: `"camera"` in its metadata (written by `rsrec record`),
/// else the file name without `.rsrec` and without a `.NNN` segment number.
fn camera_name(reader: &Reader, path: &Path) -> String {
    let from_meta = serde_json::from_str::<Value>(&reader.header().metadata_json)
        .ok()
        .and_then(|v| v["camera"].as_str().map(str::to_string))
        .filter(|s| !s.is_empty() && !s.contains('/') && !s.starts_with('.'));
    if let Some(n) = from_meta {
        return n;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "camera".into());
    match stem.rsplit_once('.') {
        Some((base, seg)) if !base.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) => {
            base.to_string()
        }
        _ => stem,
    }
}

impl Camera {
    fn new(name: String, files: Vec<CameraFile>) -> Result<Self> {
        let stream_desc = |f: &CameraFile, id: Option<u8>| {
            id.and_then(|id| f.reader.header().stream(id)).cloned()
        };
        let depth = files.iter().find_map(|f| stream_desc(f, f.depth));
        let color = files.iter().find_map(|f| stream_desc(f, f.color));
        let infrared = [0, 1].map(|i| files.iter().find_map(|f| stream_desc(f, f.infrared[i])));
        for f in &files {
            if let (Some(d), Some(fd)) = (&depth, stream_desc(f, f.depth)) {
                if (d.width, d.height) != (fd.width, fd.height) {
                    return Err(SessionError::Input(format!(
                        "{}: depth is {}x{}, the camera's first file has {}x{}",
                        f.path.display(),
                        fd.width,
                        fd.height,
                        d.width,
                        d.height
                    )));
                }
            }
        }
        let mut videos = BTreeMap::new();
        for f in &files {
            let Some(id) = f.color else { continue };
            let dir = f.path.parent().unwrap_or(Path::new("."));
            for i in 0..f.reader.count(id, record_type::VIDEO_SEGMENT) {
                let (r, p) = f
                    .reader
                    .read_record(id, record_type::VIDEO_SEGMENT, i)
                    .map_err(|e| SessionError::container(&f.path, e))?;
                let seg = VideoSegment::decode(p).map_err(|e| {
                    SessionError::container(
                        &f.path,
                        crate::container::ContainerError::BadRecord {
                            offset: r.offset,
                            message: crate::error::chain(&e),
                        },
                    )
                })?;
                let rel = safe_relative(&seg.file_name, &f.path)?;
                videos.insert(seg.segment, dir.join(rel));
            }
        }
        let mut starts: [Vec<usize>; 4] = Default::default();
        for (s, stream) in Stream::ALL.into_iter().enumerate() {
            let mut total = 0;
            for f in &files {
                starts[s].push(total);
                total += f.count(stream);
            }
            starts[s].push(total);
        }
        let mut cam = Camera {
            name,
            files,
            depth,
            color,
            infrared,
            videos,
            starts,
            timeline: Timeline::Host,
        };
        cam.timeline = cam.choose_timeline();
        Ok(cam)
    }

    /// Host time, unless the main stream's host times are all the same (first, middle and
    /// last frame) while its device times advance: then device time.
    fn choose_timeline(&self) -> Timeline {
        let s = if self.count(Stream::Depth) > 0 {
            Stream::Depth
        } else {
            Stream::Color
        };
        let n = self.count(s);
        let (Some(a), Some(m), Some(z)) = (
            self.entry(s, 0),
            self.entry(s, n / 2),
            self.entry(s, n.saturating_sub(1)),
        ) else {
            return Timeline::Host;
        };
        let same_host = n >= 2 && a.host_ts_us == m.host_ts_us && m.host_ts_us == z.host_ts_us;
        if same_host
            && z.device_ts_ms.is_finite()
            && a.device_ts_ms.is_finite()
            && z.device_ts_ms > a.device_ts_ms
        {
            Timeline::Device {
                offset_us: a.host_ts_us - (a.device_ts_ms * 1000.0).round() as i64,
            }
        } else {
            Timeline::Host
        }
    }

    /// The clock this camera's frames are placed by.
    pub fn timeline(&self) -> Timeline {
        self.timeline
    }

    /// What to tell the user about the timeline, if it is not host time.
    pub fn timeline_notice(&self) -> Option<String> {
        matches!(self.timeline, Timeline::Device { .. }).then(|| {
            format!(
                "{}: every frame has the same host time; frames are placed by device time",
                self.name
            )
        })
    }

    /// The time of frame `k` of a stream on the recording's timeline (µs; host time, or
    /// device time moved to the host clock, see [`Timeline`]).
    pub fn time_us(&self, stream: Stream, k: usize) -> Option<i64> {
        self.entry(stream, k).map(|e| self.entry_time_us(&e))
    }

    /// The timeline time of an index entry of this camera.
    pub fn entry_time_us(&self, e: &IndexEntry) -> i64 {
        self.timeline_us(e.host_ts_us, e.device_ts_ms)
    }

    /// The timeline time of an IMU sample of this camera (as [`Camera::entry_time_us`]).
    pub fn sample_time_us(&self, s: &ImuSample) -> i64 {
        self.timeline_us(s.host_ts_us, s.device_ts_ms)
    }

    fn timeline_us(&self, host_ts_us: i64, device_ts_ms: f64) -> i64 {
        match self.timeline {
            Timeline::Host => host_ts_us,
            Timeline::Device { offset_us } => {
                offset_us.saturating_add((device_ts_ms * 1000.0).round() as i64)
            }
        }
    }

    /// Position of the first frame of a stream at or after timeline time `t_us` (the count
    /// when there is none).
    pub fn seek_time(&self, stream: Stream, t_us: i64) -> usize {
        match self.timeline {
            Timeline::Host => self.seek_host(stream, t_us),
            Timeline::Device { offset_us } => {
                let ms = t_us.saturating_sub(offset_us) as f64 / 1000.0;
                let starts = &self.starts[Self::slot(stream)];
                for (fi, f) in self.files.iter().enumerate() {
                    let Some(id) = f.stream_id(stream) else {
                        continue;
                    };
                    let i = f.reader.seek_device_ts(id, stream.record_type(), ms);
                    if i < f.count(stream) {
                        return starts[fi] + i;
                    }
                }
                self.count(stream)
            }
        }
    }

    fn slot(stream: Stream) -> usize {
        match stream {
            Stream::Depth => 0,
            Stream::Color => 1,
            Stream::IrLeft => 2,
            Stream::IrRight => 3,
        }
    }

    /// The infrared streams (§5.9) this camera recorded, left first.
    pub fn infrared_streams(&self) -> Vec<Stream> {
        [Stream::IrLeft, Stream::IrRight]
            .into_iter()
            .filter(|s| self.infrared_descriptor(*s).is_some())
            .collect()
    }

    /// The descriptor of infrared stream `stream` (`None` for another stream or one not
    /// recorded).
    pub fn infrared_descriptor(&self, stream: Stream) -> Option<&StreamDescriptor> {
        match stream {
            Stream::IrLeft => self.infrared[0].as_ref(),
            Stream::IrRight => self.infrared[1].as_ref(),
            _ => None,
        }
    }

    /// Decodes infrared frame `k` of `stream` into `out` (`width * height` bytes), with
    /// `scratch` for the codec's 16-bit samples.
    pub fn read_infrared_into(
        &self,
        stream: Stream,
        k: usize,
        scratch: &mut Vec<u16>,
        out: &mut [u8],
    ) -> Result<RecordHeader> {
        let what = "infrared frame";
        let (f, i) = self
            .locate(stream, k)
            .ok_or_else(|| SessionError::OutOfRange {
                camera: self.name.clone(),
                what,
                position: k,
                count: self.count(stream),
            })?;
        let id = f
            .stream_id(stream)
            .expect("a file with infrared frames has the stream");
        f.reader
            .read_infrared_into(id, i, scratch, out)
            .map_err(|source| SessionError::Frame {
                camera: self.name.clone(),
                what,
                position: k,
                file: f.path.display().to_string(),
                source,
            })
    }

    /// Pixels in one frame of infrared stream `stream`: what to allocate for
    /// [`Camera::read_infrared_into`]. Errors above the reader's limits (§3).
    pub fn infrared_frame_len(&self, stream: Stream) -> Result<usize> {
        let (Some(f), Some(d)) = (self.files.first(), self.infrared_descriptor(stream)) else {
            return Err(SessionError::Input(format!(
                "{}: no {} stream",
                self.name,
                stream.name()
            )));
        };
        f.reader
            .limits()
            .frame_pixels(d)
            .map_err(|source| SessionError::container(&f.path, source))
    }

    /// Number of frames of a stream over all files.
    pub fn count(&self, stream: Stream) -> usize {
        *self.starts[Self::slot(stream)].last().unwrap_or(&0)
    }

    /// The file holding frame `k` of a stream and the frame's position in that file.
    pub fn locate(&self, stream: Stream, k: usize) -> Option<(&CameraFile, usize)> {
        let starts = &self.starts[Self::slot(stream)];
        if k >= self.count(stream) {
            return None;
        }
        // The last file whose start is <= k and that holds frames of this stream.
        let f = starts.partition_point(|&s| s <= k) - 1;
        Some((&self.files[f], k - starts[f]))
    }

    /// Index entry (frame number, timestamps) of frame `k` of a stream.
    pub fn entry(&self, stream: Stream, k: usize) -> Option<IndexEntry> {
        let (f, i) = self.locate(stream, k)?;
        f.reader
            .entry(f.stream_id(stream)?, stream.record_type(), i)
    }

    /// Host timestamp of the first frame of a stream.
    pub fn first_host_us(&self, stream: Stream) -> Option<i64> {
        (self.count(stream) > 0)
            .then(|| self.entry(stream, 0).map(|e| e.host_ts_us))
            .flatten()
    }

    /// Whether any file of the camera has metadata records (§5.8) for a stream.
    pub fn has_metadata(&self, stream: Stream) -> bool {
        self.files.iter().any(|f| {
            f.stream_id(stream)
                .is_some_and(|id| f.reader.count(id, record_type::FRAME_METADATA) > 0)
        })
    }

    /// The metadata (§5.8) of frame `k` of a stream: the camera's exposure, gain, laser power
    /// and so on, if it was recorded (format v2, from cameras and bags that report it).
    pub fn metadata(&self, stream: Stream, k: usize) -> Result<Option<FrameMetadata>> {
        let Some(e) = self.entry(stream, k) else {
            return Ok(None);
        };
        // In its frame's file, or (a segment boundary between them) in the next or the one
        // before.
        let (home, _) = self.locate(stream, k).expect("entry exists");
        let at = self
            .files
            .iter()
            .position(|f| std::ptr::eq(f, home))
            .expect("the file is the camera's");
        let near = [Some(at), at.checked_add(1), at.checked_sub(1)];
        for f in near.into_iter().flatten().filter_map(|i| self.files.get(i)) {
            let Some(id) = f.stream_id(stream) else {
                continue;
            };
            if let Some(m) = f
                .reader
                .frame_metadata(id, &e)
                .map_err(|err| SessionError::container(&f.path, err))?
            {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// Timeline time of the first frame of a stream.
    pub fn first_time_us(&self, stream: Stream) -> Option<i64> {
        self.time_us(stream, 0)
    }

    /// Position of the first frame of a stream whose host timestamp is at or after `ts_us`
    /// (the count when there is none).
    pub fn seek_host(&self, stream: Stream, ts_us: i64) -> usize {
        let starts = &self.starts[Self::slot(stream)];
        for (fi, f) in self.files.iter().enumerate() {
            let Some(id) = f.stream_id(stream) else {
                continue;
            };
            let n = f.count(stream);
            let i = f.reader.seek_host_ts(id, stream.record_type(), ts_us);
            if i < n {
                return starts[fi] + i;
            }
        }
        self.count(stream)
    }

    /// Decodes depth frame `k` into `out` (`width * height` samples).
    pub fn read_depth_into(&self, k: usize, out: &mut [u16]) -> Result<RecordHeader> {
        let (f, i) = self
            .locate(Stream::Depth, k)
            .ok_or_else(|| SessionError::OutOfRange {
                camera: self.name.clone(),
                what: "depth frame",
                position: k,
                count: self.count(Stream::Depth),
            })?;
        let id = f
            .depth
            .expect("a file with depth frames has a depth stream");
        f.reader
            .read_depth_into(id, i, out)
            .map_err(|source| SessionError::Frame {
                camera: self.name.clone(),
                what: "depth frame",
                position: k,
                file: f.path.display().to_string(),
                source,
            })
    }

    /// Record header and video location of colour frame `k`.
    pub fn color_frame(&self, k: usize) -> Result<(RecordHeader, ColorFrameEntry)> {
        let (f, i) = self
            .locate(Stream::Color, k)
            .ok_or_else(|| SessionError::OutOfRange {
                camera: self.name.clone(),
                what: "colour frame",
                position: k,
                count: self.count(Stream::Color),
            })?;
        let id = f
            .color
            .expect("a file with colour frames has a colour stream");
        let frame_err = |source| SessionError::Frame {
            camera: self.name.clone(),
            what: "colour frame",
            position: k,
            file: f.path.display().to_string(),
            source,
        };
        let (r, p) = f
            .reader
            .read_record(id, record_type::COLOR_FRAME, i)
            .map_err(frame_err)?;
        let e = ColorFrameEntry::decode(p).map_err(frame_err)?;
        Ok((r.header, e))
    }

    /// Timestamp domain of the first record of a stream (`None` without frames).
    pub fn ts_domain(&self, stream: Stream) -> Option<u8> {
        let (f, i) = self.locate(stream, 0)?;
        let id = f.stream_id(stream)?;
        f.reader
            .read_record(id, stream.record_type(), i)
            .ok()
            .map(|(r, _)| r.header.ts_domain)
    }

    /// Samples in one depth frame: what to allocate for [`Camera::read_depth_into`]. Errors,
    /// before anything is allocated, when the frames are above the reader's limits (§3, frame-size limit).
    pub fn depth_frame_len(&self) -> Result<usize> {
        let Some(f) = self.files.iter().find(|f| f.depth.is_some()) else {
            return Err(SessionError::Input(format!(
                "{}: no depth stream",
                self.name
            )));
        };
        let id = f.depth.expect("found above");
        f.reader
            .depth_frame_len(id)
            .map_err(|source| SessionError::container(&f.path, source))
    }

    /// Pixels in one colour frame (`width * height`, 3 bytes each when decoded). Errors when
    /// the frames are above the reader's limits, before a decoder is started.
    pub fn color_frame_len(&self) -> Result<usize> {
        let (Some(f), Some(c)) = (self.files.first(), self.color.as_ref()) else {
            return Err(SessionError::Input(format!(
                "{}: no colour stream",
                self.name
            )));
        };
        f.reader
            .limits()
            .frame_pixels(c)
            .map_err(|source| SessionError::container(&f.path, source))
    }

    /// Raw bytes of one depth frame (`width * height * 2`).
    pub fn depth_frame_bytes(&self) -> u64 {
        self.depth
            .as_ref()
            .map_or(0, |d| d.width as u64 * d.height as u64 * 2)
    }

    /// The IMU streams (gyro, then accel) that any of the camera's files declares, whether
    /// or not they hold samples.
    pub fn imu_kinds(&self) -> Vec<StreamKind> {
        IMU_KINDS
            .into_iter()
            .filter(|&k| self.imu_stream(k).is_some())
            .collect()
    }

    /// The descriptor of the camera's stream of an IMU kind (from the first file declaring
    /// it).
    pub fn imu_stream(&self, kind: StreamKind) -> Option<&StreamDescriptor> {
        self.files
            .iter()
            .find_map(|f| f.reader.header().streams.iter().find(|s| s.kind == kind))
    }

    /// The samples of the camera's IMU stream of `kind` (gyro or accel; found by kind in
    /// each file's header, so its id may differ between files), in recording order, each
    /// with its batch's timestamp domain. With `range`, only the samples whose timeline time
    /// ([`Camera::sample_time_us`]) lies in it (inclusive).
    ///
    /// The samples are decoded one batch at a time, when the iterator reaches the batch:
    /// memory holds one batch, whatever the length of the recording, and an iterator
    /// dropped early has read no batch after the one it stopped in.
    ///
    /// A range reads only the batches its index entries say can overlap it (an entry has
    /// the times of its batch's first sample, and batches are in time order), plus one
    /// batch on each side; a section whose entries are not sorted by the timeline's clock
    /// is read whole. A batch that fails its checksum or does not decode is
    /// a [`SessionError::ImuBatch`] item, the last one. Empty when no file has the stream.
    pub fn imu_readings(
        &self,
        kind: StreamKind,
        range: Option<RangeInclusive<i64>>,
    ) -> ImuReadings<'_> {
        ImuReadings {
            cam: self,
            kind,
            range,
            next_file: 0,
            file: None,
            batch: Vec::new().into_iter(),
            ts_domain: 0,
            batches_read: 0,
        }
    }

    /// Every sample [`Camera::imu_readings`] yields, collected: memory grows with their
    /// number (48 bytes a sample), so long recordings should be read with
    /// [`Camera::imu_readings`] (as export does).
    pub fn imu_samples(
        &self,
        kind: StreamKind,
        range: Option<RangeInclusive<i64>>,
    ) -> Result<Vec<ImuReading>> {
        self.imu_readings(kind, range).collect()
    }

    /// The batches of IMU stream `id` of file `f` that can hold samples in `range`, by their
    /// index entries (see [`Camera::imu_readings`]).
    fn imu_batches_overlapping(
        &self,
        f: &CameraFile,
        id: u8,
        range: &RangeInclusive<i64>,
    ) -> std::ops::Range<usize> {
        let rt = record_type::IMU_BATCH;
        let n = f.reader.count(id, rt);
        if range.is_empty() {
            return 0..0;
        }
        let flag = match self.timeline {
            Timeline::Host => SECTION_SORTED_BY_HOST_TS,
            Timeline::Device { .. } => SECTION_SORTED_BY_DEVICE_TS,
        };
        // Unsorted entries say nothing about where the range is.
        let sorted = f
            .reader
            .section(id, rt)
            .is_some_and(|s| s.flags & flag != 0);
        if !sorted {
            return 0..n;
        }
        let first_us = |i: usize| f.reader.entry(id, rt, i).map(|e| self.entry_time_us(&e));
        // Batches starting before the range / no later than its end. A batch ends no later
        // than the next one starts, so the last batch starting before the range is the first
        // one that can reach into it.
        let before = partition(n, |i| first_us(i).is_some_and(|t| t < *range.start()));
        let upto = partition(n, |i| first_us(i).is_some_and(|t| t <= *range.end()));
        before.saturating_sub(1 + IMU_MARGIN_BATCHES)..(upto + IMU_MARGIN_BATCHES).min(n)
    }

    /// Paths of the camera's files, for messages and metadata.
    pub fn file_names(&self) -> Vec<String> {
        self.files
            .iter()
            .map(|f| f.path.display().to_string())
            .collect()
    }
}

/// The number of leading positions of `0..n` for which `before` holds (`before` must hold
/// for a prefix).
fn partition(n: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The samples of one IMU stream of a camera, decoded one batch at a time: see
/// [`Camera::imu_readings`]. Ends after its first error.
pub struct ImuReadings<'a> {
    cam: &'a Camera,
    kind: StreamKind,
    range: Option<RangeInclusive<i64>>,
    /// The next of the camera's files to look for the stream in.
    next_file: usize,
    /// The file being read, its stream id and the batches of it still to read.
    file: Option<(&'a CameraFile, u8, std::ops::Range<usize>)>,
    /// What is left of the current batch.
    batch: std::vec::IntoIter<ImuSample>,
    /// The current batch's timestamp domain.
    ts_domain: u8,
    batches_read: usize,
}

impl ImuReadings<'_> {
    /// How many batches have been read and decoded so far (each at most once).
    pub fn batches_read(&self) -> usize {
        self.batches_read
    }

    /// Reads the next batch to read into `self.batch`; `Ok(false)` when there is none left.
    fn next_batch(&mut self) -> Result<bool> {
        let rt = record_type::IMU_BATCH;
        loop {
            if let Some((f, id, batches)) = &mut self.file {
                if let Some(i) = batches.next() {
                    let (f, id) = (*f, *id);
                    let err = |source| SessionError::ImuBatch {
                        camera: self.cam.name.clone(),
                        stream: self.kind.name(),
                        batch: i,
                        file: f.path.display().to_string(),
                        source: Box::new(source),
                    };
                    let (r, p) = f.reader.read_record(id, rt, i).map_err(err)?;
                    let samples = decode_imu_batch(p).map_err(|e| {
                        err(ContainerError::BadRecord {
                            offset: r.offset,
                            message: crate::error::chain(&e),
                        })
                    })?;
                    self.batches_read += 1;
                    self.ts_domain = r.header.ts_domain;
                    self.batch = samples.into_iter();
                    return Ok(true);
                }
            }
            let Some(f) = self.cam.files.get(self.next_file) else {
                self.file = None;
                return Ok(false);
            };
            self.next_file += 1;
            self.file = f.stream_of_kind(self.kind).map(|id| {
                let batches = match &self.range {
                    None => 0..f.reader.count(id, rt),
                    Some(r) => self.cam.imu_batches_overlapping(f, id, r),
                };
                (f, id, batches)
            });
        }
    }

    /// Nothing more after an error.
    fn stop(&mut self) {
        self.next_file = self.cam.files.len();
        self.file = None;
        self.batch = Vec::new().into_iter();
    }
}

impl Iterator for ImuReadings<'_> {
    type Item = Result<ImuReading>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (cam, range, ts_domain) = (self.cam, &self.range, self.ts_domain);
            if let Some(sample) = self.batch.by_ref().find(|s| {
                range
                    .as_ref()
                    .is_none_or(|t| t.contains(&cam.sample_time_us(s)))
            }) {
                return Some(Ok(ImuReading { sample, ts_domain }));
            }
            match self.next_batch() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.stop();
                    return Some(Err(e));
                }
            }
        }
    }
}

impl std::iter::FusedIterator for ImuReadings<'_> {}

impl CameraFile {
    /// Id of the file's first stream of `kind`.
    fn stream_of_kind(&self, kind: StreamKind) -> Option<u8> {
        self.reader
            .header()
            .streams
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.id)
    }

    fn stream_id(&self, stream: Stream) -> Option<u8> {
        match stream {
            Stream::Depth => self.depth,
            Stream::Color => self.color,
            Stream::IrLeft => self.infrared[0],
            Stream::IrRight => self.infrared[1],
        }
    }

    fn count(&self, stream: Stream) -> usize {
        self.stream_id(stream)
            .map_or(0, |id| self.reader.count(id, stream.record_type()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session.json whose camera name would become a path outside the export folder
    /// (`../../x`) is refused before any file is opened.
    #[test]
    fn camera_names_that_are_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../../../x", "/abs", ".hidden", "a/b", ""] {
            let m = format!(
                r#"{{"status": "complete", "cameras": [{{"name": {bad:?}, "files": ["x.rsrec"]}}]}}"#
            );
            std::fs::write(dir.path().join("session.json"), m).unwrap();
            let e = match Recording::open(dir.path()) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{bad:?} accepted"),
            };
            assert!(e.contains("camera name"), "{bad:?}: {e}");
        }
    }

    /// Samples per batch and batches per file of [`imu_files`].
    const PER_BATCH: u64 = 20;
    const BATCHES_PER_FILE: u64 = 5;
    const BASE_US: i64 = 1_800_000_000_000_000;

    /// Two segment files of camera "cam" (`cam.000.rsrec`, `cam.001.rsrec`) holding a gyro
    /// stream (id 3, then id 5) of 5 batches of 20 samples each, 5 ms apart on the host
    /// clock, and no depth or colour. Returns the files.
    fn imu_files(dir: &Path) -> Vec<PathBuf> {
        use crate::codec::CodecId;
        use crate::container::format::ts_domain;
        use crate::container::record::encode_imu_batch;
        use crate::container::{FileHeader, PixelFormat, Writer, WriterOptions};
        let mut paths = Vec::new();
        for (file, id) in [(0u64, 3u8), (1, 5)] {
            let mut gyro = StreamDescriptor::depth(id, 0, 0, 200.0);
            gyro.kind = StreamKind::Gyro;
            gyro.name = "gyro".into();
            gyro.format = PixelFormat::MotionXyz32f;
            gyro.depth_units = 0.0;
            let header = FileHeader::new(Default::default(), vec![gyro]);
            let path = dir.join(format!("cam.{file:03}.rsrec"));
            let mut w = Writer::create(&path, &header, WriterOptions::deterministic(16)).unwrap();
            for b in 0..BATCHES_PER_FILE {
                let first = (file * BATCHES_PER_FILE + b) * PER_BATCH;
                let samples: Vec<ImuSample> = (first..first + PER_BATCH)
                    .map(|k| ImuSample {
                        frame_number: k,
                        device_ts_ms: 5.0 * k as f64,
                        host_ts_us: BASE_US + 5000 * k as i64,
                        xyz: [k as f32, 0.0, 0.0],
                    })
                    .collect();
                let h = RecordHeader {
                    record_type: record_type::IMU_BATCH,
                    stream: id,
                    codec: CodecId::NONE,
                    ts_domain: ts_domain::HARDWARE_CLOCK,
                    flags: 0,
                    frame_number: first,
                    device_ts_ms: samples[0].device_ts_ms,
                    host_ts_us: samples[0].host_ts_us,
                };
                w.write_record(&h, &encode_imu_batch(&samples)).unwrap();
            }
            w.finish().unwrap();
            paths.push(path);
        }
        paths
    }

    /// The streaming reader decodes a batch only when it reaches it: after k samples it has
    /// read exactly the batches holding them (so memory holds one batch, however long the
    /// recording), across files; a window reads its batches and one on each side.
    #[test]
    fn imu_readings_read_one_batch_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        imu_files(dir.path());
        let rec = Recording::open(dir.path()).unwrap();
        let cam = &rec.cameras[0];
        assert_eq!(cam.files.len(), 2);
        let total = 2 * BATCHES_PER_FILE * PER_BATCH;
        let mut it = cam.imu_readings(StreamKind::Gyro, None);
        assert_eq!(it.batches_read(), 0);
        for k in 0..total {
            let r = it.next().unwrap().unwrap();
            assert_eq!(r.sample.frame_number, k);
            // Sample k is in batch k / PER_BATCH: that one and those before are read.
            assert_eq!(it.batches_read() as u64, k / PER_BATCH + 1, "sample {k}");
        }
        assert!(it.next().is_none());
        assert_eq!(it.batches_read() as u64, 2 * BATCHES_PER_FILE);
        // Stopping early: a consumer that takes 25 samples has read two batches.
        let mut it = cam.imu_readings(StreamKind::Gyro, None);
        assert_eq!(it.by_ref().take(25).count(), 25);
        assert_eq!(it.batches_read(), 2);
        // Samples 50 to 59 (in batch 2): batches 1 to 3 read, and the first one of the second
        // file (the margin after the window, per file).
        let range = BASE_US + 250_000..=BASE_US + 295_000;
        let mut it = cam.imu_readings(StreamKind::Gyro, Some(range));
        let got: Vec<u64> = it
            .by_ref()
            .map(|r| r.unwrap().sample.frame_number)
            .collect();
        assert_eq!(got, (50..60).collect::<Vec<_>>());
        assert_eq!(it.batches_read(), 4);
        // The collecting call yields the same samples.
        let all = cam.imu_samples(StreamKind::Gyro, None).unwrap();
        assert_eq!(all.len() as u64, total);
        assert!(cam.imu_readings(StreamKind::Accel, None).next().is_none());
    }

    /// A damaged batch is an error when the reader reaches it, not before (the samples of
    /// the batches before it come first), and the last item.
    #[test]
    fn imu_readings_fail_at_the_damaged_batch() {
        let dir = tempfile::tempdir().unwrap();
        let files = imu_files(dir.path());
        // Batch 2 of the second file (batch 7 of the camera).
        let offset = {
            let r = Reader::open(&files[1]).unwrap();
            r.record_header(5, record_type::IMU_BATCH, 2)
                .unwrap()
                .payload_offset
        };
        let mut bytes = std::fs::read(&files[1]).unwrap();
        bytes[offset as usize + 20] ^= 0x40;
        std::fs::write(&files[1], bytes).unwrap();
        let rec = Recording::open(dir.path()).unwrap();
        let cam = &rec.cameras[0];
        let mut it = cam.imu_readings(StreamKind::Gyro, None);
        let good = (BATCHES_PER_FILE + 2) * PER_BATCH;
        for k in 0..good {
            assert_eq!(it.next().unwrap().unwrap().sample.frame_number, k);
        }
        match it.next() {
            Some(Err(SessionError::ImuBatch {
                stream,
                batch,
                file,
                ..
            })) => {
                assert_eq!((stream, batch), ("gyro", 2));
                assert!(file.ends_with("cam.001.rsrec"), "{file}");
            }
            other => panic!("expected the damaged batch, got {other:?}"),
        }
        assert!(it.next().is_none());
        assert!(matches!(
            cam.imu_samples(StreamKind::Gyro, None),
            Err(SessionError::ImuBatch { batch: 2, .. })
        ));
    }

    #[test]
    fn relative_names_stay_inside() {
        let ctx = Path::new("s/session.json");
        assert!(safe_relative("cam.rsrec", ctx).is_ok());
        assert!(safe_relative("sub/cam.rsrec", ctx).is_ok());
        for bad in ["", "/etc/passwd", "../x.rsrec", "a/../../b", "./x"] {
            assert!(safe_relative(bad, ctx).is_err(), "{bad}");
        }
    }
}
