//! `rsrec export`: recordings to the files training pipelines read.
//!
//! - `png16`: one 16-bit grayscale PNG per depth frame (`NNNNNNNN_<device ms>.png`, frame
//!   number and device timestamp), plus `frames.csv`.
//! - `npy`: `depth.npy` (N x H x W `<u2`), `timestamps.npy` (device, `<f8` ms),
//!   `host_timestamps_us.npy` (`<u8`), `frame_numbers.npy` (`<u8`); with colour,
//!   `color.npy` (N x H x W x 3 `|u1`, the colour frame nearest in time to each depth frame),
//!   `color_offset_ms.npy` and `color_frame_numbers.npy`. Written incrementally: memory does
//!   not grow with N.
//! - `ply`: one binary PLY point cloud per depth frame (metres, zeros skipped), coloured when
//!   the camera has colour that can be mapped onto depth.
//! - `color`: colour frames decoded by FFmpeg, as PNG or JPEG, plus `frames.csv`.
//!
//! Every format goes to `OUT/<camera>/<format>/` with an `intrinsics.json` describing the
//! camera and the selection. Nothing is written until every camera's selection has been
//! checked, and an existing non-empty output folder is replaced only with `force`.

pub mod error;
pub mod input;
pub mod npy;
pub mod ply;
pub mod progress;
pub mod select;
pub mod video;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde_json::json;

pub use error::{ExportError, Result};
pub use input::{Camera, Recording, Stream};
pub use progress::{Progress, Silent};
pub use select::{FrameRange, Selection, TimeRange, Window};

use crate::container::format::ts_domain;
use crate::container::IndexEntry;
use ply::{ColorMapping, Deprojector};
use video::{ColorFrames, DecoderConfig, FramePlan, VideoOutput};

/// What to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png16,
    Npy,
    Ply,
    Color,
}

impl Format {
    pub const NAMES: &'static str = "png16, npy, ply, color";

    /// The format's name, also the name of its output folder.
    pub fn name(self) -> &'static str {
        match self {
            Format::Png16 => "png16",
            Format::Npy => "npy",
            Format::Ply => "ply",
            Format::Color => "color",
        }
    }

    /// The stream whose frames are selected and counted.
    pub fn stream(self) -> Stream {
        match self {
            Format::Color => Stream::Color,
            _ => Stream::Depth,
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
            seek_after_s: video::DEFAULT_SEEK_AFTER_S,
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
    let jobs = plan(rec, opts, progress)?;
    for j in &jobs {
        prepare_dir(&j.dir, opts.force)?;
    }
    let stream = opts.format.stream();
    let total_frames: u64 = jobs.iter().map(|j| j.sel.len() as u64).sum();
    let total_bytes: u64 = jobs
        .iter()
        .map(|j| j.sel.len() as u64 * frame_bytes(j.camera, stream))
        .sum();
    progress.begin(total_frames, total_bytes);
    let mut report = Report::default();
    let result = (|| {
        for j in &jobs {
            progress.camera(&j.camera.name);
            let r = match opts.format {
                Format::Png16 => run_png16(j, opts, progress),
                Format::Npy => run_npy(j, opts, progress),
                Format::Ply => run_ply(j, opts, progress),
                Format::Color => run_color(j, opts, progress),
            }?;
            report.cameras.push(r);
        }
        Ok(())
    })();
    progress.end();
    result?;
    report.elapsed = t0.elapsed();
    Ok(report)
}

fn frame_bytes(c: &Camera, stream: Stream) -> u64 {
    match stream {
        Stream::Depth => c.depth_frame_bytes(),
        Stream::Color => c
            .color
            .as_ref()
            .map_or(0, |d| d.width as u64 * d.height as u64 * 3),
    }
}

fn plan<'a>(
    rec: &'a Recording,
    opts: &ExportOptions,
    progress: &mut dyn Progress,
) -> Result<Vec<Job<'a>>> {
    let cams = rec.select_cameras(&opts.cameras)?;
    let explicit = !opts.cameras.is_empty();
    let stream = opts.format.stream();
    let start_us = rec.start_host_us();
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for cam in cams {
        if cam.count(stream) == 0 {
            let msg = format!("{}: no {} to export", cam.name, stream.frames_name());
            if explicit {
                return Err(ExportError::Input(msg));
            }
            skipped.push(format!("{msg}; skipping it"));
            continue;
        }
        let sel = select(cam, stream, opts.window, opts.every, start_us)?;
        let dir = opts.out.join(&cam.name).join(opts.format.name());
        let mut job = Job {
            camera: cam,
            sel,
            dir,
            pairing: None,
            mapping: None,
            warnings: Vec::new(),
        };
        match opts.format {
            Format::Ply => {
                let depth = cam
                    .depth
                    .as_ref()
                    .expect("depth frames imply a depth stream");
                if depth.intrinsics.is_none() {
                    return Err(ExportError::Input(format!(
                        "{}: the depth stream has no intrinsics, which PLY needs (for PNG folders: rsrec import --intrinsics)",
                        cam.name
                    )));
                }
                if opts.color {
                    match (&cam.color, cam.count(Stream::Color)) {
                        (Some(c), n) if n > 0 => match ColorMapping::choose(depth, c) {
                            Ok(m) => {
                                job.mapping = Some(m);
                                job.pairing = Some(pairing_clock(cam));
                            }
                            Err(why) => job
                                .warnings
                                .push(format!("{}: point clouds without colour: {why}", cam.name)),
                        },
                        _ => {}
                    }
                }
            }
            Format::Npy if opts.color => {
                if cam.count(Stream::Color) == 0 {
                    return Err(ExportError::Input(format!(
                        "{}: --with-color: the camera has no colour frames",
                        cam.name
                    )));
                }
                job.pairing = Some(pairing_clock(cam));
            }
            _ => {}
        }
        if job.pairing.is_some() || opts.format == Format::Color {
            for (seg, path) in &cam.videos {
                if !path.is_file() {
                    return Err(ExportError::Input(format!(
                        "{}: colour video {} (segment {seg}) is missing",
                        cam.name,
                        path.display()
                    )));
                }
            }
        }
        jobs.push(job);
    }
    if jobs.is_empty() {
        return Err(ExportError::Input(format!(
            "nothing to export: no camera of {} has {}",
            rec.description,
            stream.frames_name()
        )));
    }
    for j in &jobs {
        if !opts.force && is_nonempty(&j.dir) {
            return Err(ExportError::Exists {
                path: j.dir.clone(),
            });
        }
    }
    if opts.format == Format::Color || jobs.iter().any(|j| j.pairing.is_some()) {
        check_ffmpeg(&opts.ffmpeg)?;
    }
    for w in skipped.iter().chain(jobs.iter().flat_map(|j| &j.warnings)) {
        progress.warn(w);
    }
    Ok(jobs)
}

fn pairing_clock(cam: &Camera) -> Clock {
    match (cam.ts_domain(Stream::Depth), cam.ts_domain(Stream::Color)) {
        (Some(a), Some(b)) if a == b && a != ts_domain::NONE => Clock::Device,
        _ => Clock::Host,
    }
}

/// Applies the window to one camera's stream.
fn select(
    cam: &Camera,
    stream: Stream,
    window: Window,
    every: usize,
    start_us: Option<i64>,
) -> Result<Selection> {
    let count = cam.count(stream);
    match window {
        Window::All => Ok(Selection {
            start: 0,
            end: count,
            step: every,
        }),
        Window::Frames(r) => {
            select::frames_selection(r, count, every, &cam.name, stream.frames_name())
                .map_err(ExportError::Selection)
        }
        Window::Time(t) => {
            let start = start_us.unwrap_or(0);
            let at = |s: f64| start.saturating_add((s * 1e6).round() as i64);
            let a = t.start_s.map_or(0, |s| cam.seek_host(stream, at(s)));
            let b = t.end_s.map_or(count, |s| cam.seek_host(stream, at(s)));
            if a >= b {
                let rel = |k: usize| {
                    cam.entry(stream, k)
                        .map_or(f64::NAN, |e| (e.host_ts_us - start) as f64 / 1e6)
                };
                return Err(ExportError::Selection(format!(
                    "--time {t} selects no {} of {}: they span {:.3} s to {:.3} s from the start of the recording",
                    stream.frames_name(),
                    cam.name,
                    rel(0),
                    rel(count - 1)
                )));
            }
            Ok(Selection {
                start: a,
                end: b,
                step: every,
            })
        }
    }
}

fn is_nonempty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut it) => it.next().is_some(),
        // A file (or something unreadable) in the way counts as existing output.
        Err(_) => dir.symlink_metadata().is_ok(),
    }
}

fn prepare_dir(dir: &Path, force: bool) -> Result<()> {
    if force {
        match dir.symlink_metadata() {
            Ok(m) if m.is_dir() => {
                std::fs::remove_dir_all(dir).map_err(|e| ExportError::io(dir, e))?
            }
            Ok(_) => std::fs::remove_file(dir).map_err(|e| ExportError::io(dir, e))?,
            Err(_) => {}
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| ExportError::io(dir, e))
}

fn check_ffmpeg(ffmpeg: &Path) -> Result<()> {
    match std::process::Command::new(ffmpeg)
        .arg("-version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(ExportError::Video(format!(
            "`{} -version` failed ({s}); FFmpeg is needed to decode colour",
            ffmpeg.display()
        ))),
        Err(e) => Err(ExportError::Video(format!(
            "ffmpeg not found at {:?} ({e}); install FFmpeg or pass --ffmpeg PATH: it is needed to decode colour",
            ffmpeg
        ))),
    }
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

/// `frames.csv`.
struct Csv {
    out: BufWriter<File>,
    path: PathBuf,
}

impl Csv {
    fn create(dir: &Path, columns: &str) -> Result<Self> {
        let path = dir.join("frames.csv");
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
    fn finish(mut self) -> Result<()> {
        self.out.flush().map_err(|e| ExportError::io(&self.path, e))
    }
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
            "stream": match opts.format.stream() { Stream::Depth => "depth", Stream::Color => "color" },
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

/// Encodes a 16-bit grayscale PNG (samples big-endian, as PNG requires).
pub fn encode_png16(
    data: &[u16],
    width: u32,
    height: u32,
    compression: PngCompression,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Sixteen);
        enc.set_compression(match compression {
            PngCompression::Fast => png::Compression::Fast,
            PngCompression::Default => png::Compression::Default,
            PngCompression::Best => png::Compression::Best,
        });
        let err = |e: png::EncodingError| ExportError::Internal(format!("PNG encoding: {e}"));
        let mut w = enc.write_header().map_err(err)?;
        let mut be = Vec::with_capacity(data.len() * 2);
        for v in data {
            be.extend_from_slice(&v.to_be_bytes());
        }
        w.write_image_data(&be).map_err(err)?;
        w.finish().map_err(err)?;
    }
    Ok(out)
}

fn run_png16(job: &Job, opts: &ExportOptions, progress: &mut dyn Progress) -> Result<CameraReport> {
    let cam = job.camera;
    let d = cam.depth.as_ref().expect("planned with depth");
    let (w, h) = (d.width, d.height);
    let n = w as usize * h as usize;
    let raw = cam.depth_frame_bytes();
    let mut report = report_for(job);
    let mut csv = Csv::create(&job.dir, "index,frame_number,device_ts_ms,host_ts_us,file")?;
    let sel = job.sel;
    ordered(
        sel.len(),
        opts.workers(false),
        |j| {
            let pos = sel.position(j);
            let mut buf = vec![0u16; n];
            cam.read_depth_into(pos, &mut buf)?;
            let name = frame_file_name(cam, Stream::Depth, &sel, j, "png");
            let png = encode_png16(&buf, w, h, opts.png_compression)?;
            write_new(&job.dir.join(&name), &png)?;
            Ok((name, png.len() as u64))
        },
        |j, (name, len)| {
            let pos = sel.position(j);
            let e = cam
                .entry(Stream::Depth, pos)
                .ok_or_else(|| ExportError::Internal(format!("no index entry {pos}")))?;
            csv.row(pos, &e, &name, None)?;
            report.frames += 1;
            report.raw_bytes += raw;
            report.bytes_written += len;
            progress.advance(1, raw);
            Ok(())
        },
    )?;
    csv.finish()?;
    report.bytes_written += write_info(job, opts, json!({}))?;
    Ok(report)
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
        plans.entry(e.segment).or_default().push(e.index_in_video);
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

fn run_npy(job: &Job, opts: &ExportOptions, progress: &mut dyn Progress) -> Result<CameraReport> {
    let cam = job.camera;
    let d = cam.depth.as_ref().expect("planned with depth");
    let (w, h) = (d.width as u64, d.height as u64);
    let n_px = (w * h) as usize;
    let sel = job.sel;
    let n = sel.len() as u64;
    let raw = cam.depth_frame_bytes();
    let dir = &job.dir;
    let mut report = report_for(job);

    let mut depth = npy::NpyWriter::create(&dir.join("depth.npy"), "<u2", 2, &[n, h, w])?;
    let mut ts = npy::NpyWriter::create(&dir.join("timestamps.npy"), "<f8", 8, &[n])?;
    let mut host = npy::NpyWriter::create(&dir.join("host_timestamps_us.npy"), "<u8", 8, &[n])?;
    let mut numbers = npy::NpyWriter::create(&dir.join("frame_numbers.npy"), "<u8", 8, &[n])?;

    struct ColorOut<'a> {
        frames: ColorFrames<'a>,
        pairing: Pairing<'a>,
        color: npy::NpyWriter,
        offset: npy::NpyWriter,
        numbers: npy::NpyWriter,
        zeros: Vec<u8>,
    }
    let mut color = match job.pairing {
        Some(clock) => {
            let c = cam.color.as_ref().expect("planned with colour");
            let (cw, ch) = (c.width, c.height);
            let plans = pairing_plans(cam, &sel, clock)?;
            let cfg = decoder_config(
                cam,
                opts,
                VideoOutput::Raw {
                    width: cw,
                    height: ch,
                },
            );
            Some(ColorOut {
                frames: ColorFrames::new(cam, cfg, plans),
                pairing: Pairing::new(cam, clock),
                color: npy::NpyWriter::create(
                    &dir.join("color.npy"),
                    "|u1",
                    1,
                    &[n, ch as u64, cw as u64, 3],
                )?,
                offset: npy::NpyWriter::create(&dir.join("color_offset_ms.npy"), "<f8", 8, &[n])?,
                numbers: npy::NpyWriter::create(
                    &dir.join("color_frame_numbers.npy"),
                    "<u8",
                    8,
                    &[n],
                )?,
                zeros: vec![0u8; cw as usize * ch as usize * 3],
            })
        }
        None => None,
    };
    let mut missing = 0u64;
    ordered(
        sel.len(),
        opts.workers(true),
        |j| {
            let mut buf = vec![0u16; n_px];
            let hdr = cam.read_depth_into(sel.position(j), &mut buf)?;
            Ok((hdr, buf))
        },
        |j, (hdr, buf)| {
            depth.write_u16s(&buf)?;
            ts.write_f64(hdr.device_ts_ms)?;
            // The spec's host time is i64; the array is uint64 (times before 1970 clamp to 0).
            host.write_u64(hdr.host_ts_us.max(0) as u64)?;
            numbers.write_u64(hdr.frame_number)?;
            if let Some(c) = color.as_mut() {
                let e = depth_entry(cam, sel.position(j))?;
                let (cpos, offset) = c.pairing.nearest(&e);
                let (chdr, centry) = cam.color_frame(cpos)?;
                match c.frames.get(centry.segment, centry.index_in_video)? {
                    Some(rgb) => {
                        c.color.write(rgb)?;
                        c.offset.write_f64(offset)?;
                        c.numbers.write_u64(chdr.frame_number)?;
                    }
                    None => {
                        missing += 1;
                        c.color.write(&c.zeros)?;
                        c.offset.write_f64(f64::NAN)?;
                        c.numbers.write_u64(u64::MAX)?;
                    }
                }
            }
            report.frames += 1;
            report.raw_bytes += raw;
            progress.advance(1, raw);
            Ok(())
        },
    )?;
    let mut paths = vec![
        depth.finish()?,
        ts.finish()?,
        host.finish()?,
        numbers.finish()?,
    ];
    let mut extra = json!({
        "arrays": {
            "depth.npy": "N x H x W uint16 depth (x depth_units = metres, 0 = no data)",
            "timestamps.npy": "N float64 device timestamps, ms",
            "host_timestamps_us.npy": "N uint64 host timestamps, UTC microseconds",
            "frame_numbers.npy": "N uint64 frame numbers",
        }
    });
    if let Some(c) = color {
        paths.push(c.color.finish()?);
        paths.push(c.offset.finish()?);
        paths.push(c.numbers.finish()?);
        let clock = job.pairing.expect("colour implies a pairing");
        extra["color_pairing"] = json!({
            "clock": clock.name(),
            "rule": "for each depth frame, the colour frame whose timestamp is nearest",
            "missing_frames": missing,
        });
        extra["arrays"]["color.npy"] = json!("N x Hc x Wc x 3 uint8 RGB, nearest colour frame");
        extra["arrays"]["color_offset_ms.npy"] =
            json!("N float64: colour timestamp - depth timestamp, ms (NaN: missing)");
        extra["arrays"]["color_frame_numbers.npy"] =
            json!("N uint64 colour frame numbers (2^64-1: missing)");
    }
    report.missing_color = missing;
    report
        .warnings
        .extend(missing_warning(cam, missing, progress));
    for p in paths {
        report.bytes_written += std::fs::metadata(&p).map_or(0, |m| m.len());
    }
    report.bytes_written += write_info(job, opts, extra)?;
    Ok(report)
}

fn run_ply(job: &Job, opts: &ExportOptions, progress: &mut dyn Progress) -> Result<CameraReport> {
    let cam = job.camera;
    let d = cam.depth.as_ref().expect("planned with depth");
    let intr = d.intrinsics.as_ref().expect("planned with intrinsics");
    let deproj = Deprojector::new(d, intr);
    let mut report = report_for(job);
    if let Some(note) = &deproj.note {
        let w = format!("{}: {note}", cam.name);
        progress.warn(&w);
        report.warnings.push(w);
    }
    let n_px = d.width as usize * d.height as usize;
    let raw = cam.depth_frame_bytes();
    let sel = job.sel;
    let mut csv = Csv::create(
        &job.dir,
        "index,frame_number,device_ts_ms,host_ts_us,file,points",
    )?;
    let mut color = match (job.pairing, &job.mapping, &cam.color) {
        (Some(clock), Some(_), Some(c)) => {
            let plans = pairing_plans(cam, &sel, clock)?;
            let cfg = decoder_config(
                cam,
                opts,
                VideoOutput::Raw {
                    width: c.width,
                    height: c.height,
                },
            );
            Some((ColorFrames::new(cam, cfg, plans), Pairing::new(cam, clock)))
        }
        _ => None,
    };
    let mut missing = 0u64;
    let mut rgb = Vec::new();
    let colored = color.is_some();
    let comments = |hdr: &crate::container::RecordHeader, pos: usize| {
        vec![
            format!(
                "rsrec export: camera {}, frame {}",
                cam.name, hdr.frame_number
            ),
            format!(
                "device_ts_ms {} host_ts_us {} index {pos}",
                hdr.device_ts_ms, hdr.host_ts_us
            ),
            "units metres; x right, y down, z forward (librealsense); depth 0 skipped".into(),
        ]
    };
    /// What a worker hands over: a finished file, or points still to be coloured.
    enum Item {
        Written { points: usize, bytes: u64 },
        Points(crate::container::RecordHeader, Vec<[f32; 3]>, Vec<u32>),
    }
    ordered(
        sel.len(),
        opts.workers(colored),
        |j| {
            let pos = sel.position(j);
            let mut buf = vec![0u16; n_px];
            let hdr = cam.read_depth_into(pos, &mut buf)?;
            let (mut pts, mut px) = (Vec::new(), Vec::new());
            deproj.points(&buf, &mut pts, &mut px);
            if colored {
                return Ok(Item::Points(hdr, pts, px));
            }
            // No colour: the whole file is made here, in parallel.
            let bytes = ply::encode(&pts, None, &comments(&hdr, pos));
            let name = frame_file_name(cam, Stream::Depth, &sel, j, "ply");
            write_new(&job.dir.join(&name), &bytes)?;
            Ok(Item::Written {
                points: pts.len(),
                bytes: bytes.len() as u64,
            })
        },
        |j, item| {
            let pos = sel.position(j);
            let e = depth_entry(cam, pos)?;
            let name = frame_file_name(cam, Stream::Depth, &sel, j, "ply");
            let (points, written) = match item {
                Item::Written { points, bytes } => (points, bytes),
                Item::Points(hdr, pts, px) => {
                    let (frames, pairing) = color.as_mut().expect("colour items need colour");
                    let mapping = job.mapping.as_ref().expect("colour needs a mapping");
                    let mut comments = comments(&hdr, pos);
                    let (cpos, offset) = pairing.nearest(&e);
                    let (chdr, centry) = cam.color_frame(cpos)?;
                    match frames.get(centry.segment, centry.index_in_video)? {
                        Some(image) => {
                            mapping.colors(&pts, &px, image, &mut rgb);
                            comments.push(format!(
                                "colour frame {} offset_ms {offset}",
                                chdr.frame_number
                            ));
                        }
                        None => {
                            missing += 1;
                            rgb.clear();
                            rgb.resize(pts.len(), [0, 0, 0]);
                            comments.push("colour frame missing from the video".into());
                        }
                    }
                    let bytes = ply::encode(&pts, Some(&rgb), &comments);
                    write_new(&job.dir.join(&name), &bytes)?;
                    (pts.len(), bytes.len() as u64)
                }
            };
            csv.row(pos, &e, &name, Some(points as u64))?;
            report.frames += 1;
            report.raw_bytes += raw;
            report.bytes_written += written;
            progress.advance(1, raw);
            Ok(())
        },
    )?;
    csv.finish()?;
    report.missing_color = missing;
    report
        .warnings
        .extend(missing_warning(cam, missing, progress));
    let extra = json!({
        "ply": {
            "coordinates": "metres, x right, y down, z forward (librealsense deprojection)",
            "color": job.mapping.as_ref().map(|m| match m {
                ColorMapping::Aligned { .. } => "aligned: colour image of the same size, pixel for pixel",
                ColorMapping::Projected { .. } => "projected through depth-to-colour extrinsics and colour intrinsics",
            }),
            "color_clock": job.pairing.map(Clock::name),
        }
    });
    report.bytes_written += write_info(job, opts, extra)?;
    Ok(report)
}

/// JPEG quality 1-100 to FFmpeg's `-q:v` (2 best .. 31 worst).
fn jpeg_qscale(quality: u8) -> u8 {
    let q = quality.clamp(1, 100) as f64;
    (31.0 - (q - 1.0) * 29.0 / 99.0).round() as u8
}

fn run_color(job: &Job, opts: &ExportOptions, progress: &mut dyn Progress) -> Result<CameraReport> {
    let cam = job.camera;
    let sel = job.sel;
    let raw = frame_bytes(cam, Stream::Color);
    let mut report = report_for(job);
    let output = match opts.image_format {
        ImageFormat::Png => VideoOutput::Png {
            level: match opts.png_compression {
                PngCompression::Fast => Some(1),
                PngCompression::Default => None,
                PngCompression::Best => Some(9),
            },
        },
        ImageFormat::Jpeg => VideoOutput::Jpeg {
            qscale: jpeg_qscale(opts.jpeg_quality),
        },
    };
    let ext = opts.image_format.extension();
    let mut plans: BTreeMap<u32, FramePlan> = BTreeMap::new();
    for pos in sel.iter() {
        let (_, e) = cam.color_frame(pos)?;
        plans.entry(e.segment).or_default().push(e.index_in_video);
    }
    let mut frames = ColorFrames::new(cam, decoder_config(cam, opts, output), plans);
    let mut csv = Csv::create(&job.dir, "index,frame_number,device_ts_ms,host_ts_us,file")?;
    let mut missing = 0u64;
    for (j, pos) in sel.iter().enumerate() {
        let (_, ce) = cam.color_frame(pos)?;
        let e = cam
            .entry(Stream::Color, pos)
            .ok_or_else(|| ExportError::Internal(format!("no colour index entry {pos}")))?;
        match frames.get(ce.segment, ce.index_in_video)? {
            Some(bytes) => {
                let name = frame_file_name(cam, Stream::Color, &sel, j, ext);
                write_new(&job.dir.join(&name), bytes)?;
                report.bytes_written += bytes.len() as u64;
                csv.row(pos, &e, &name, None)?;
                report.frames += 1;
                report.raw_bytes += raw;
            }
            None => missing += 1,
        }
        progress.advance(1, raw);
    }
    csv.finish()?;
    report.missing_color = missing;
    report
        .warnings
        .extend(missing_warning(cam, missing, progress));
    report.bytes_written += write_info(
        job,
        opts,
        json!({"image_format": ext, "missing_frames": missing}),
    )?;
    Ok(report)
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
        assert_eq!(jpeg_qscale(100), 2);
        assert_eq!(jpeg_qscale(1), 31);
        assert_eq!(jpeg_qscale(90), 5);
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
