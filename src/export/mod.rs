//! `rsrec export`: recordings to the files training pipelines read.
//!
//! - `png16`: one 16-bit grayscale PNG per depth frame (`NNNNNNNN_<device ms>.png`, frame
//!   number and device timestamp), plus `frames.csv`; with IMU, `gyro.csv` and `accel.csv`
//!   (`frame_number,device_ts_ms,host_ts_us,x,y,z`).
//! - `npy`: `depth.npy` (N x H x W `<u2`), `timestamps.npy` (device, `<f8` ms),
//!   `host_timestamps_us.npy` (`<u8`), `frame_numbers.npy` (`<u8`); with colour,
//!   `color.npy` (N x H x W x 3 `|u1`, the colour frame nearest in time to each depth frame),
//!   `color_offset_ms.npy` and `color_frame_numbers.npy`. Written incrementally: memory does
//!   not grow with N. With IMU, per stream (`gyro`, `accel`): `gyro.npy` (M x 3 `<f4`, rad/s;
//!   m/s² for accel), `gyro_timestamps.npy` (`<f8` device ms), `gyro_host_timestamps_us.npy`
//!   (`<u8`) and `gyro_frame_numbers.npy` (`<u8`).
//! - `ply`: one binary PLY point cloud per depth frame (metres, zeros skipped), coloured when
//!   the camera has colour that can be mapped onto depth.
//! - `color`: colour frames decoded by FFmpeg, as PNG or JPEG, plus `frames.csv`.
//! - `ir`: the infrared streams, as 8-bit PNGs with a CSV each and as `.npy` arrays (module
//!   `ir`).
//!
//! The IMU files (module `imu`) hold every sample when every depth frame is exported, else
//! the samples between the first and the last selected depth frame's time; they are read one
//! batch at a time, twice (memory does not grow with their number). `intrinsics.json`
//! describes them under `"imu"`.
//!
//! Every format goes to `OUT/<camera>/<format>/` with an `intrinsics.json` describing the
//! camera and the selection. Nothing is written until every camera's selection has been
//! checked, and an existing non-empty output folder is replaced only with `force`.

mod color;
pub mod error;
mod imu;
mod ir;
pub mod npy;
mod plan;
pub mod ply;
mod png16;
pub mod progress;
pub mod select;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

pub use crate::session::{Camera, Recording, Stream};
pub use error::{ExportError, Result};
pub use progress::{Progress, Silent};
pub use select::{FrameRange, Selection, TimeRange, Window};

use crate::container::format::ts_domain;
use crate::container::{IndexEntry, RecordHeader};
use crate::session::ColorFrames;
use crate::video::{DecoderConfig, FramePlan, VideoOutput};
use plan::{frame_bytes, plan, prepare_dir};
use ply::ColorMapping;
pub use png16::encode_png16;

/// What to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png16,
    Npy,
    Ply,
    Color,
    /// The infrared streams (§5.9).
    Ir,
}

impl Format {
    pub const NAMES: &'static str = "png16, npy, ply, color, ir";

    /// The format's name, also the name of its output folder.
    pub fn name(self) -> &'static str {
        match self {
            Format::Png16 => "png16",
            Format::Npy => "npy",
            Format::Ply => "ply",
            Format::Color => "color",
            Format::Ir => "ir",
        }
    }

    /// The stream whose frames are selected and counted (for `ir` the left imager's; see
    /// [`Format::stream_of`]).
    pub fn stream(self) -> Stream {
        match self {
            Format::Color => Stream::Color,
            Format::Ir => Stream::IrLeft,
            _ => Stream::Depth,
        }
    }

    /// The stream whose frames are selected and counted for camera `cam`: for `ir` its
    /// first infrared stream.
    pub fn stream_of(self, cam: &Camera) -> Stream {
        match self {
            Format::Ir => cam
                .infrared_streams()
                .first()
                .copied()
                .unwrap_or(Stream::IrLeft),
            f => f.stream(),
        }
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "png16" => Ok(Format::Png16),
            "npy" => Ok(Format::Npy),
            "ply" => Ok(Format::Ply),
            "color" | "colour" => Ok(Format::Color),
            "ir" | "infrared" => Ok(Format::Ir),
            _ => Err(format!(
                "unknown export format {s:?} (expected one of: {})",
                Format::NAMES
            )),
        }
    }
}

/// Image files of `--to color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

impl ImageFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpg",
        }
    }
}

/// zlib effort for PNGs (16-bit depth, and colour PNGs made by FFmpeg).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PngCompression {
    /// Fast (fdeflate for depth, zlib level 1 for colour): about 15x faster than Default.
    #[default]
    Fast,
    Default,
    /// Smallest files, slowest.
    Best,
}

/// Everything an export needs besides its input.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub format: Format,
    /// Output folder; each camera gets `OUT/<camera>/<format>/`.
    pub out: PathBuf,
    /// Cameras to export (all when empty).
    pub cameras: Vec<String>,
    pub window: Window,
    /// Every N-th selected frame (1 = all).
    pub every: usize,
    /// `npy`: add the nearest colour frame to each depth frame (required to exist).
    /// `ply`: colour the points when the camera's colour can be mapped onto depth.
    pub color: bool,
    pub image_format: ImageFormat,
    /// JPEG quality 1-100 (`--to color --image-format jpeg`).
    pub jpeg_quality: u8,
    pub png_compression: PngCompression,
    /// Replace existing output folders.
    pub force: bool,
    pub ffmpeg: PathBuf,
    /// Worker threads decoding depth (0 = automatic: one per core, one fewer for `npy` and
    /// coloured `ply`, whose writing thread is busy too).
    pub threads: usize,
    /// Seek in colour videos when the first wanted frame is later than this (seconds).
    pub seek_after_s: f64,
    /// Export the frames that decode and list the others as gaps (an empty `file` in
    /// `frames.csv`, an all-zero frame and a 1 in `damaged.npy` for `npy`), instead of
    /// failing at the first damaged frame.
    pub skip_damaged: bool,
    /// Set (by Ctrl+C) to stop: the camera being exported is removed, finished ones stay.
    pub stop: Option<Arc<AtomicBool>>,
}

impl ExportOptions {
    pub fn new(format: Format, out: impl Into<PathBuf>) -> Self {
        Self {
            format,
            out: out.into(),
            cameras: Vec::new(),
            window: Window::All,
            every: 1,
            color: format == Format::Ply,
            image_format: ImageFormat::Png,
            jpeg_quality: 90,
            png_compression: PngCompression::Fast,
            force: false,
            ffmpeg: PathBuf::from("ffmpeg"),
            threads: 0,
            seek_after_s: crate::video::DEFAULT_SEEK_AFTER_S,
            skip_damaged: false,
            stop: None,
        }
    }

    /// An error once the stop flag is set.
    fn check_stop(&self) -> Result<()> {
        match &self.stop {
            Some(s) if s.load(Ordering::Relaxed) => Err(ExportError::Interrupted {
                partial: PathBuf::new(),
            }),
            _ => Ok(()),
        }
    }

    /// Reads depth frame `pos` into `buf`: `Ok(Err(why))` for a damaged frame when
    /// [`ExportOptions::skip_damaged`] is set (the buffer is then all zero).
    fn read_depth(
        &self,
        cam: &Camera,
        pos: usize,
        buf: &mut [u16],
    ) -> Result<std::result::Result<RecordHeader, String>> {
        match cam.read_depth_into(pos, buf) {
            Ok(h) => Ok(Ok(h)),
            Err(e @ crate::session::SessionError::Frame { .. }) => {
                if self.skip_damaged {
                    buf.fill(0);
                    Ok(Err(crate::error::chain(&e)))
                } else {
                    let file = match &e {
                        crate::session::SessionError::Frame { file, .. } => file.clone(),
                        _ => String::new(),
                    };
                    Err(ExportError::Damaged {
                        file,
                        source: Box::new(e),
                    })
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Decode workers. `busy_consumer`: the thread receiving their results also does heavy
    /// work (writing the arrays, colouring), so it gets a core of its own by default.
    fn workers(&self, busy_consumer: bool) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        if busy_consumer {
            cores.saturating_sub(1).max(1)
        } else {
            cores
        }
    }
}

/// What was exported for one camera.
#[derive(Clone, Debug, Default)]
pub struct CameraReport {
    pub camera: String,
    pub dir: PathBuf,
    /// Frames exported (depth frames, or colour frames for `color`).
    pub frames: u64,
    /// Raw bytes of those frames (depth: W x H x 2; colour: W x H x 3).
    pub raw_bytes: u64,
    /// Bytes of the files written.
    pub bytes_written: u64,
    /// Colour frames listed in the file but missing from the video.
    pub missing_color: u64,
    /// Positions of the depth frames that did not decode and were skipped
    /// ([`ExportOptions::skip_damaged`]).
    pub damaged: Vec<usize>,
    pub warnings: Vec<String>,
}

/// What an export did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub cameras: Vec<CameraReport>,
    pub elapsed: Duration,
}

impl Report {
    pub fn frames(&self) -> u64 {
        self.cameras.iter().map(|c| c.frames).sum()
    }
    pub fn raw_bytes(&self) -> u64 {
        self.cameras.iter().map(|c| c.raw_bytes).sum()
    }
}

/// Opens `input` (session folder, folder of `.rsrec` files, or one file) and exports it.
pub fn export(input: &Path, opts: &ExportOptions, progress: &mut dyn Progress) -> Result<Report> {
    let rec = Recording::open(input)?;
    export_recording(&rec, opts, progress)
}

/// Which clock pairs colour with depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    /// Device timestamps (depth and colour in the same timestamp domain).
    Device,
    /// Host timestamps.
    Host,
}

impl Clock {
    fn name(self) -> &'static str {
        match self {
            Clock::Device => "device",
            Clock::Host => "host",
        }
    }
    fn ms(self, e: &IndexEntry) -> f64 {
        match self {
            Clock::Device => e.device_ts_ms,
            Clock::Host => e.host_ts_us as f64 / 1000.0,
        }
    }
}

/// One camera's part of an export, checked before anything is written.
struct Job<'a> {
    camera: &'a Camera,
    sel: Selection,
    dir: PathBuf,
    /// Colour paired with depth (npy, ply).
    pairing: Option<Clock>,
    /// How PLY points get their colour.
    mapping: Option<ColorMapping>,
    /// Said once the plan is complete (never before an error).
    warnings: Vec<String>,
    /// `ir`: every infrared stream with its own selection (the window applied to it).
    streams: Vec<(Stream, Selection)>,
}

impl Job<'_> {
    /// Frames this job exports (over every stream of an `ir` export).
    fn frames(&self) -> u64 {
        match self.streams.as_slice() {
            [] => self.sel.len() as u64,
            s => s.iter().map(|(_, sel)| sel.len() as u64).sum(),
        }
    }
}

/// Exports an opened recording.
pub fn export_recording(
    rec: &Recording,
    opts: &ExportOptions,
    progress: &mut dyn Progress,
) -> Result<Report> {
    let t0 = Instant::now();
    if opts.every == 0 {
        return Err(ExportError::Selection("--every must be at least 1".into()));
    }
    let mut jobs = plan(rec, opts, progress)?;
    let total_frames: u64 = jobs.iter().map(Job::frames).sum();
    let total_bytes: u64 = jobs
        .iter()
        .map(|j| match j.streams.as_slice() {
            [] => j.sel.len() as u64 * frame_bytes(j.camera, opts.format.stream_of(j.camera)),
            s => s
                .iter()
                .map(|(st, sel)| sel.len() as u64 * frame_bytes(j.camera, *st))
                .sum(),
        })
        .sum();
    progress.begin(total_frames, total_bytes);
    let mut report = Report::default();
    let result = (|| -> Result<()> {
        for j in &mut jobs {
            // Each camera is written into `<dir>.partial` and moved into place when
            // complete: a failed or interrupted export leaves nothing that looks finished.
            let dir = j.dir.clone();
            let staging = staging_dir(&dir);
            prepare_dir(&staging, true)?;
            j.dir = staging.clone();
            progress.camera(&j.camera.name);
            let r = match opts.format {
                Format::Png16 => png16::run_png16(j, opts, progress),
                Format::Npy => npy::run_npy(j, opts, progress),
                Format::Ply => ply::run_ply(j, opts, progress),
                Format::Color => color::run_color(j, opts, progress),
                Format::Ir => ir::run_ir(j, opts, progress),
            }
            .and_then(|r| opts.check_stop().map(|()| r));
            let mut r = match r {
                Ok(r) => r,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&staging);
                    return Err(match e {
                        ExportError::Interrupted { .. } => {
                            ExportError::Interrupted { partial: staging }
                        }
                        e => e,
                    });
                }
            };
            prepare_dir(&dir, opts.force)?;
            std::fs::remove_dir(&dir)
                .and_then(|()| std::fs::rename(&staging, &dir))
                .map_err(|e| ExportError::io(&dir, e))?;
            r.dir = dir;
            report.cameras.push(r);
        }
        Ok(())
    })();
    progress.end();
    result?;
    report.elapsed = t0.elapsed();
    Ok(report)
}

/// Counts a skipped damaged frame; says so for the first few.
fn damaged_warning(report: &mut CameraReport, pos: usize, why: &str, progress: &mut dyn Progress) {
    const LISTED: usize = 10;
    if report.damaged.len() < LISTED {
        progress.warn(&format!("skipped damaged depth frame {pos}: {why}"));
    } else if report.damaged.len() == LISTED {
        progress.warn("more damaged depth frames skipped (all listed in intrinsics.json)");
    }
    report.damaged.push(pos);
}

/// `intrinsics.json`'s account of the damaged frames that were skipped.
fn damaged_info(report: &CameraReport) -> serde_json::Value {
    if report.damaged.is_empty() {
        return json!({});
    }
    json!({
        "damaged_frames": {
            "count": report.damaged.len(),
            "positions": report.damaged,
            "note": "depth frames that did not decode and were skipped (--skip-damaged); \
                     `rsrec recover` repairs the file",
        }
    })
}

/// Where a camera's export is written until it is complete.
fn staging_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dir.with_file_name(name)
}

/// Runs `work(j)` for every selected frame on `workers` threads and hands the results to
/// `consume` in selection order. Memory is bounded: each worker is at most two results ahead.
fn ordered<T: Send>(
    n: usize,
    workers: usize,
    work: impl Fn(usize) -> Result<T> + Sync,
    mut consume: impl FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    let workers = workers.clamp(1, n.max(1));
    std::thread::scope(|s| {
        let mut rxs = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = crossbeam_channel::bounded::<Result<T>>(2);
            rxs.push(rx);
            let work = &work;
            std::thread::Builder::new()
                .name(format!("export-{w}"))
                .spawn_scoped(s, move || {
                    let mut j = w;
                    while j < n {
                        let r = work(j);
                        let failed = r.is_err();
                        if tx.send(r).is_err() || failed {
                            break;
                        }
                        j += workers;
                    }
                })
                .map_err(|e| ExportError::Internal(format!("cannot start a thread: {e}")))?;
        }
        let result = (|| {
            for j in 0..n {
                let item = rxs[j % workers]
                    .recv()
                    .map_err(|_| ExportError::Internal("an export worker stopped".into()))??;
                consume(j, item)?;
            }
            Ok(())
        })();
        // Dropping the receivers stops workers that are ahead (their sends fail).
        drop(rxs);
        result
    })
}

/// `NNNNNNNN_<device ms>.<ext>`; a frame identical in both to the previous selected one gets
/// its position appended, so names never collide.
fn frame_file_name(cam: &Camera, stream: Stream, sel: &Selection, j: usize, ext: &str) -> String {
    let base = |pos: usize| {
        cam.entry(stream, pos).map_or_else(
            || format!("frame_{pos}"),
            |e| format!("{:08}_{:.3}", e.frame_number, e.device_ts_ms),
        )
    };
    let pos = sel.position(j);
    let name = base(pos);
    if j > 0 && base(sel.position(j - 1)) == name {
        format!("{name}_{pos}.{ext}")
    } else {
        format!("{name}.{ext}")
    }
}

/// Writes a new file (never replaces one).
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| ExportError::io(path, e))?;
    f.write_all(bytes).map_err(|e| ExportError::io(path, e))
}

/// `frames.csv` (and the other CSV files: `gyro.csv`, `accel.csv`).
struct Csv {
    out: BufWriter<File>,
    path: PathBuf,
}

impl Csv {
    fn create(dir: &Path, columns: &str) -> Result<Self> {
        Self::create_at(dir.join("frames.csv"), columns)
    }
    /// A new CSV file at `path` (never replaces one) with the header line `columns`.
    fn create_at(path: PathBuf, columns: &str) -> Result<Self> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| ExportError::io(&path, e))?;
        let mut c = Csv {
            out: BufWriter::new(f),
            path,
        };
        c.line(columns)?;
        Ok(c)
    }
    fn line(&mut self, s: &str) -> Result<()> {
        writeln!(self.out, "{s}").map_err(|e| ExportError::io(&self.path, e))
    }
    /// `index,frame_number,device_ts_ms,host_ts_us,file[,extra]`.
    fn row(&mut self, pos: usize, e: &IndexEntry, file: &str, extra: Option<u64>) -> Result<()> {
        // `{}` of an f64 is the shortest text that parses back to the same value.
        let mut s = format!(
            "{pos},{},{},{},{file}",
            e.frame_number, e.device_ts_ms, e.host_ts_us
        );
        if let Some(x) = extra {
            s.push_str(&format!(",{x}"));
        }
        self.line(&s)
    }
    /// [`row`](Self::row) followed by one column per metadata key (empty: the frame does
    /// not have it).
    fn row_with_metadata(
        &mut self,
        pos: usize,
        e: &IndexEntry,
        file: &str,
        values: &[Option<i64>],
    ) -> Result<()> {
        let mut s = format!(
            "{pos},{},{},{},{file}",
            e.frame_number, e.device_ts_ms, e.host_ts_us
        );
        for v in values {
            s.push(',');
            if let Some(v) = v {
                s.push_str(&v.to_string());
            }
        }
        self.line(&s)
    }
    fn finish(mut self) -> Result<()> {
        self.out.flush().map_err(|e| ExportError::io(&self.path, e))
    }
}

/// The per-frame metadata keys (§5.8) of the selected frames, sorted: the extra columns of
/// `frames.csv` and of `depth_metadata.npy`. Reads every selected frame's metadata record
/// (a few hundred bytes each).
fn metadata_keys(cam: &Camera, stream: Stream, sel: &Selection) -> Result<Vec<String>> {
    if !cam.has_metadata(stream) {
        return Ok(Vec::new());
    }
    let mut keys = std::collections::BTreeSet::new();
    for pos in sel.iter() {
        if let Some(m) = cam.metadata(stream, pos)? {
            keys.extend(m.pairs.into_iter().map(|(k, _)| k));
        }
    }
    Ok(keys.into_iter().collect())
}

/// The values of `keys` in the metadata of frame `pos` (`None`: absent).
fn metadata_values(
    cam: &Camera,
    stream: Stream,
    pos: usize,
    keys: &[String],
) -> Result<Vec<Option<i64>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let m = cam.metadata(stream, pos)?.unwrap_or_default();
    Ok(keys.iter().map(|k| m.get(k)).collect())
}

/// `intrinsics.json`: the camera, its streams and what was selected.
fn write_info(job: &Job, opts: &ExportOptions, extra: serde_json::Value) -> Result<u64> {
    let cam = job.camera;
    let device = cam.files.first().map(|f| f.reader.header().device.clone());
    let mut v = json!({
        "camera": cam.name,
        "files": cam.file_names(),
        "device": device,
        "format": opts.format.name(),
        "depth": cam.depth,
        "color": cam.color,
        "selection": {
            "stream": opts.format.stream_of(cam).name(),
            "start": job.sel.start,
            "end": job.sel.end,
            "every": job.sel.step,
            "frames": job.sel.len(),
        },
        "rsrec_version": env!("CARGO_PKG_VERSION"),
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    let text = serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    write_new(&job.dir.join("intrinsics.json"), text.as_bytes())?;
    Ok(text.len() as u64)
}

fn report_for(job: &Job) -> CameraReport {
    CameraReport {
        camera: job.camera.name.clone(),
        dir: job.dir.clone(),
        warnings: job.warnings.clone(),
        ..Default::default()
    }
}

/// Nearest colour frame of each depth frame, for depth frames in increasing time order:
/// a cursor that only moves forward.
struct Pairing<'a> {
    cam: &'a Camera,
    clock: Clock,
    count: usize,
    cursor: usize,
}

impl<'a> Pairing<'a> {
    fn new(cam: &'a Camera, clock: Clock) -> Self {
        Self {
            cam,
            clock,
            count: cam.count(Stream::Color),
            cursor: 0,
        }
    }

    fn color_ms(&self, i: usize) -> f64 {
        self.cam
            .entry(Stream::Color, i)
            .map_or(f64::NAN, |e| self.clock.ms(&e))
    }

    /// Position of the colour frame nearest to `depth` and its offset (colour - depth, ms).
    fn nearest(&mut self, depth: &IndexEntry) -> (usize, f64) {
        let t = self.clock.ms(depth);
        let mut tc = self.color_ms(self.cursor);
        let mut best = (tc - t).abs();
        while self.cursor + 1 < self.count {
            let next = self.color_ms(self.cursor + 1);
            let d = (next - t).abs();
            // Ties go to the earlier frame, except across repeated timestamps.
            if d < best || (d == best && next == tc) {
                self.cursor += 1;
                tc = next;
                best = d;
            } else {
                break;
            }
        }
        (self.cursor, tc - t)
    }
}

fn depth_entry(cam: &Camera, pos: usize) -> Result<IndexEntry> {
    cam.entry(Stream::Depth, pos)
        .ok_or_else(|| ExportError::Internal(format!("{}: no depth index entry {pos}", cam.name)))
}

/// The colour frames a pairing will ask for, per video segment.
fn pairing_plans(cam: &Camera, sel: &Selection, clock: Clock) -> Result<BTreeMap<u32, FramePlan>> {
    let mut p = Pairing::new(cam, clock);
    let mut plans: BTreeMap<u32, FramePlan> = BTreeMap::new();
    let mut last = None;
    for pos in sel.iter() {
        let (c, _) = p.nearest(&depth_entry(cam, pos)?);
        if last == Some(c) {
            continue;
        }
        last = Some(c);
        let (_, e) = cam.color_frame(c)?;
        plans
            .entry(e.segment)
            .or_default()
            .push_timed(e.index_in_video, e.video_time_us);
    }
    Ok(plans)
}

fn decoder_config(cam: &Camera, opts: &ExportOptions, output: VideoOutput) -> DecoderConfig {
    DecoderConfig {
        ffmpeg: opts.ffmpeg.clone(),
        output,
        fps: cam.color.as_ref().map_or(0.0, |c| c.fps),
        seek_after_s: opts.seek_after_s,
    }
}

fn missing_warning(cam: &Camera, missing: u64, progress: &mut dyn Progress) -> Option<String> {
    (missing > 0).then(|| {
        let w = format!(
            "{}: {missing} colour frames listed in the recording are missing from its video (a recording cut short loses the frames still in the encoder)",
            cam.name
        );
        progress.warn(&w);
        w
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!("npy".parse::<Format>().unwrap(), Format::Npy);
        assert_eq!("colour".parse::<Format>().unwrap(), Format::Color);
        assert!("tiff".parse::<Format>().unwrap_err().contains("png16, npy"));
        assert_eq!(Format::Color.stream(), Stream::Color);
        assert_eq!(Format::Ply.stream(), Stream::Depth);
    }

    #[test]
    fn jpeg_quality_maps_to_qscale() {
        assert_eq!(color::jpeg_qscale(100), 2);
        assert_eq!(color::jpeg_qscale(1), 31);
        assert_eq!(color::jpeg_qscale(90), 5);
    }

    #[test]
    fn ordered_keeps_order_and_stops_on_error() {
        let mut seen = Vec::new();
        ordered(
            50,
            3,
            |j| Ok(j * 10),
            |j, v| {
                seen.push((j, v));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..50).map(|j| (j, j * 10)).collect::<Vec<_>>());
        let mut count = 0;
        let err = ordered(
            50,
            2,
            |j| {
                if j == 7 {
                    Err(ExportError::Internal("boom".into()))
                } else {
                    Ok(j)
                }
            },
            |_, _| {
                count += 1;
                Ok(())
            },
        )
        .unwrap_err();
        assert_eq!(count, 7);
        assert!(err.to_string().contains("boom"));
        ordered(0, 4, |_| Ok(()), |_, _| Ok(())).unwrap();
    }

    #[test]
    fn png16_is_big_endian_16_bit_grey() {
        let data = [0u16, 1000, 65535, 258, 7, 9];
        let bytes = encode_png16(&data, 3, 2, PngCompression::Best).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::Sixteen);
        let back: Vec<u16> = buf[..info.buffer_size()]
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(back, data);
    }
}
