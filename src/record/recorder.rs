//! The library recorder: a validated [`RecordPlan`] becomes a session folder. It owns what
//! a recording needs around the [`Pipeline`]: the session folder, the disk preflight and
//! the disk watchdog (stop cleanly before the disk is full), `--duration`, and the
//! `session.json` lifecycle (status `recording` at the start, the outcome and statistics at
//! the end). `rsrec record` is this plus status lines; a ROS node or the Python bindings get
//! the same behaviour.
//!
//! ```no_run
//! use std::sync::{atomic::AtomicBool, Arc};
//! use rsrec::record::{CameraPlan, RecordPlan, Recorder};
//! use rsrec::source::sim::{SimConfig, SimSource};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source = SimSource::new(SimConfig::new(0, "848x480@30".parse()?));
//! let mut plan = RecordPlan::new("/data/recordings".into(), vec![CameraPlan::new("sim:1", Box::new(source))]);
//! plan.duration = Some(std::time::Duration::from_secs(10));
//! let stop = Arc::new(AtomicBool::new(false));
//! let mut recorder = Recorder::start(plan.validate()?, stop)?;
//! while recorder.poll().running {
//!     std::thread::sleep(std::time::Duration::from_millis(100));
//! }
//! let outcome = recorder.finish()?;
//! println!("{}: {}", outcome.dir.display(), outcome.status);
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::encoding::DepthEncoding;
use super::limits::SegmentLimit;
use super::pipeline::{camera_names, CameraOutcome, ColorSinkFactory, Pipeline, PipelineConfig};
use super::session::{camera_manifest, default_session_name, free_bytes, outcomes_manifest};
use super::stats::StatsSnapshot;
use crate::codec::DepthCodec;
use crate::container::{StreamKind, WriterOptions};
pub use crate::session::manifest::LeftOutCamera;
use crate::session::{Losses, ManifestError, RecordSettings, SessionManifest, SessionStatus};
use crate::source::Source;

/// Errors of planning and running a recording.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The plan is not valid (see [`RecordPlan::validate`]): `field` says which part.
    #[error("{why}")]
    InvalidPlan { field: PlanField, why: String },
    #[error("{} already exists and is not empty", dir.display())]
    SessionExists { dir: PathBuf },
    #[error("creating {}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "only {} free on the disk of {} (the minimum is {}); not starting",
        super::limits::format_size(*free),
        dir.display(),
        super::limits::format_size(*min_free)
    )]
    LowDisk {
        dir: PathBuf,
        free: u64,
        min_free: u64,
    },
    #[error("writing session.json")]
    Manifest(#[source] ManifestError),
    #[error("starting the pipeline")]
    Pipeline(#[source] std::io::Error),
}

/// The part of a [`RecordPlan`] that [`RecordPlan::validate`] refused (the CLI names its
/// flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanField {
    Cameras,
    Session,
    QueueFrames,
    Workers,
    Segment,
    MinFree,
    Color,
}

/// The longest queue a camera may have: 10,000 frames (over 5 minutes at 30 fps). A longer
/// queue does not save frames; it hides a CPU or disk that cannot keep up, and costs memory.
pub const MAX_QUEUE_FRAMES: usize = 10_000;
/// The most compression workers a plan may ask for.
pub const MAX_WORKERS: usize = 256;

fn invalid(field: PlanField, why: impl Into<String>) -> RecordError {
    RecordError::InvalidPlan {
        field,
        why: why.into(),
    }
}

/// The nearest folder of `path` (itself or a parent) that exists: where free space is
/// measured before the session folder is created.
fn existing_ancestor(path: &std::path::Path) -> Option<&std::path::Path> {
    let mut p = Some(path);
    while let Some(q) = p {
        if q.as_os_str().is_empty() {
            return Some(std::path::Path::new("."));
        }
        if q.is_dir() {
            return Some(q);
        }
        p = q.parent();
    }
    None
}

/// `MemAvailable` of `/proc/meminfo` in bytes (`None` where unknown).
fn memory_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// One camera to record: the spec it was opened from (kept in `session.json`) and the open
/// source.
pub struct CameraPlan {
    pub spec: String,
    pub source: Box<dyn Source>,
}

impl CameraPlan {
    pub fn new(spec: impl Into<String>, source: Box<dyn Source>) -> Self {
        CameraPlan {
            spec: spec.into(),
            source,
        }
    }
}

/// Everything a recording is made of. Fill it in, then [`RecordPlan::validate`] it.
pub struct RecordPlan {
    /// Parent folder of the session folder.
    pub out: PathBuf,
    /// Session folder name: a plain name inside `out` [default: the UTC start time,
    /// `YYYYmmdd-HHMMSS`].
    pub session: Option<String>,
    pub cameras: Vec<CameraPlan>,
    /// Depth codec, or `auto` (the default).
    pub depth_codec: DepthEncoding,
    /// The colour encoder of cameras with a colour stream (`None`: no colour recorded).
    pub color: Option<ColorSinkFactory>,
    /// Colour codec name, CRF and preset, for `session.json`.
    pub color_codec: Option<String>,
    pub crf: Option<u8>,
    pub preset: Option<String>,
    /// Per-camera queue between capture and compression, in frames [default: 2 s of the
    /// fastest depth stream].
    pub queue_frames: Option<usize>,
    /// Compression workers shared by all cameras [default: number of cores].
    pub workers: Option<usize>,
    pub writer: WriterOptions,
    pub segment: Option<SegmentLimit>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop cleanly when free disk space falls below this many bytes; refuse to start below.
    pub min_free: u64,
    /// Reopen a disconnected camera every so often (`None`: its capture ends).
    pub reconnect: Option<Duration>,
    /// The command line, for `session.json`.
    pub command_line: Vec<String>,
    /// Cameras asked for that could not be opened and were left out (`session.json`).
    pub left_out: Vec<LeftOutCamera>,
}

impl RecordPlan {
    /// A plan with the defaults of `rsrec record`: the default depth codec
    /// ([`DepthCodec::default`]), no colour, [`DEFAULT_MIN_FREE`] minimum free space.
    pub fn new(out: PathBuf, cameras: Vec<CameraPlan>) -> Self {
        RecordPlan {
            out,
            session: None,
            cameras,
            depth_codec: DepthEncoding::default(),
            color: None,
            color_codec: None,
            crf: None,
            preset: None,
            queue_frames: None,
            workers: None,
            writer: WriterOptions::default(),
            segment: None,
            duration: None,
            min_free: DEFAULT_MIN_FREE,
            reconnect: None,
            command_line: Vec::new(),
            left_out: Vec::new(),
        }
    }

    /// Checks every value of the plan before anything is created: at least one camera, a
    /// session name that stays inside `out`, a queue of 1..=[`MAX_QUEUE_FRAMES`] frames
    /// whose memory fits in half the available RAM, 1..=[`MAX_WORKERS`] workers, a segment
    /// limit of at least [`SegmentLimit::MIN_BYTES`] / [`SegmentLimit::MIN_DURATION`],
    /// colour sizes a video can hold, a minimum free space that the disk has (refused before
    /// the session folder is made), and a session folder that is absent or empty.
    pub fn validate(self) -> Result<ValidPlan, RecordError> {
        if self.cameras.is_empty() {
            return Err(invalid(PlanField::Cameras, "no camera to record"));
        }
        let session = match &self.session {
            Some(s) => {
                check_plain_name(s)
                    .map_err(|why| invalid(PlanField::Session, format!("{s:?} {why}")))?;
                s.clone()
            }
            None => default_session_name(),
        };
        if let Some(q) = self.queue_frames {
            if !(1..=MAX_QUEUE_FRAMES).contains(&q) {
                return Err(invalid(
                    PlanField::QueueFrames,
                    format!(
                        "{q} frames is outside 1..={MAX_QUEUE_FRAMES} (a longer queue only \
                         hides a CPU or disk that cannot keep up)"
                    ),
                ));
            }
            let frame_bytes: u64 = self
                .cameras
                .iter()
                .filter_map(|c| c.source.info().stream(StreamKind::Depth))
                .map(|d| d.width as u64 * d.height as u64 * 2)
                .sum();
            let need = frame_bytes.saturating_mul(q as u64);
            if let Some(avail) = memory_available() {
                if need > avail / 2 {
                    return Err(invalid(
                        PlanField::QueueFrames,
                        format!(
                            "{q} frames for every camera would hold up to {} in memory; \
                             more than half of the {} available",
                            super::limits::format_size(need),
                            super::limits::format_size(avail)
                        ),
                    ));
                }
            }
        }
        if let Some(w) = self.workers {
            if !(1..=MAX_WORKERS).contains(&w) {
                return Err(invalid(
                    PlanField::Workers,
                    format!("{w} compression workers is outside 1..={MAX_WORKERS}"),
                ));
            }
        }
        if let Some(seg) = self.segment {
            seg.check()
                .map_err(|why| invalid(PlanField::Segment, why))?;
        }
        if self.color.is_some() {
            for c in &self.cameras {
                if let Some(st) = c.source.info().stream(StreamKind::Color) {
                    if st.width == 0 || st.height == 0 || st.width % 2 == 1 || st.height % 2 == 1 {
                        return Err(invalid(
                            PlanField::Color,
                            format!(
                                "{}: colour {}x{} cannot be encoded (4:2:0 video needs an even, \
                                 non-zero width and height)",
                                c.spec, st.width, st.height
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(base) = existing_ancestor(&self.out) {
            if let Ok(total) = fs4::total_space(base) {
                if self.min_free >= total {
                    return Err(invalid(
                        PlanField::MinFree,
                        format!(
                            "{} is more than the whole disk of {} ({})",
                            super::limits::format_size(self.min_free),
                            base.display(),
                            super::limits::format_size(total)
                        ),
                    ));
                }
            }
            if let Some(free) = free_bytes(base) {
                if free < self.min_free {
                    return Err(RecordError::LowDisk {
                        dir: self.out.join(&session),
                        free,
                        min_free: self.min_free,
                    });
                }
            }
        }
        let dir = self.out.join(&session);
        if dir.exists()
            && std::fs::read_dir(&dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(RecordError::SessionExists { dir });
        }
        Ok(ValidPlan {
            plan: self,
            session,
            dir,
        })
    }
}

/// The default of [`RecordPlan::min_free`]: 2 GB.
pub const DEFAULT_MIN_FREE: u64 = 2_000_000_000;

pub use crate::session::manifest::check_plain_name;

/// A plan that passed [`RecordPlan::validate`].
pub struct ValidPlan {
    plan: RecordPlan,
    session: String,
    dir: PathBuf,
}

impl ValidPlan {
    /// The session folder that will be written.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

/// How long the disk will last, estimated before recording starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiskForecast {
    /// Free bytes on the session's disk (`None`: unknown).
    pub free: Option<u64>,
    /// Expected bytes per second of all cameras together.
    pub bytes_per_s: f64,
    /// Seconds until free space reaches the minimum at that rate.
    pub seconds: Option<f64>,
}

/// Conservative compression ratios for the disk forecast: below what each codec reaches on
/// the real D4xx depth sets (docs/performance.md), so that the forecast errs short. The
/// status line replaces the forecast with the measured rate once recording runs.
fn planning_ratio(codec: DepthCodec) -> f64 {
    match codec {
        DepthCodec::Raw => 1.0,
        DepthCodec::Lz4Planes => 2.7,
        DepthCodec::ZstdPlanes { .. } => 4.0,
        DepthCodec::MedRans { .. }
        | DepthCodec::GradRans { .. }
        | DepthCodec::GradRans32 { .. } => 8.0,
    }
}

/// Conservative ratios for infrared (8-bit samples through the depth codecs, format §5.9):
/// below the 1.8-3.0x of the predictive codecs and the 1.1-1.4x of the plane codecs on
/// the infrared proxies measured there.
fn planning_ir_ratio(codec: DepthCodec) -> f64 {
    match codec {
        DepthCodec::Raw | DepthCodec::Lz4Planes | DepthCodec::ZstdPlanes { .. } => 1.0,
        DepthCodec::MedRans { .. }
        | DepthCodec::GradRans { .. }
        | DepthCodec::GradRans32 { .. } => 1.6,
    }
}

/// The disk forecast's bytes per second for cameras delivering `infos`' streams: depth and
/// infrared at the planning ratios of `codec`, colour (when recorded) at
/// [`PLANNING_COLOR_BYTES_PER_PIXEL`]; IMU is negligible.
fn planned_bytes_per_s<'a>(
    infos: impl Iterator<Item = &'a crate::source::SourceInfo>,
    codec: DepthCodec,
    any_color: bool,
) -> f64 {
    let mut bytes_per_s = 0.0;
    for info in infos {
        for st in &info.streams {
            let pixels = st.width as f64 * st.height as f64 * st.fps;
            match st.kind {
                StreamKind::Depth => bytes_per_s += pixels * 2.0 / planning_ratio(codec),
                StreamKind::Color if any_color => {
                    bytes_per_s += pixels * PLANNING_COLOR_BYTES_PER_PIXEL
                }
                StreamKind::Infrared => bytes_per_s += pixels / planning_ir_ratio(codec),
                _ => {}
            }
        }
    }
    bytes_per_s
}

/// A colour stream's expected bytes per pixel after video encoding (a CRF-23 H.265 of a
/// D435 scene is well below this).
const PLANNING_COLOR_BYTES_PER_PIXEL: f64 = 0.1;

/// What [`Recorder::poll`] found.
#[derive(Clone, Debug)]
pub struct RecorderStatus {
    /// Still recording: poll again.
    pub running: bool,
    pub elapsed: Duration,
    /// Free bytes on the session's disk.
    pub free: Option<u64>,
    /// The stop was caused by low disk space.
    pub disk_stop: bool,
}

/// A finished recording.
#[derive(Debug)]
pub struct RecordOutcome {
    pub dir: PathBuf,
    pub status: SessionStatus,
    pub cameras: Vec<CameraOutcome>,
    pub start_utc_us: i64,
    pub stop_utc_us: i64,
    /// `camera: error` for each camera that failed.
    pub errors: Vec<String>,
    /// What rsrec lost (also in session.json).
    pub losses: Losses,
}

/// A recording in progress.
pub struct Recorder {
    pipeline: Option<Pipeline>,
    dir: PathBuf,
    manifest: SessionManifest,
    specs: Vec<String>,
    stop: Arc<AtomicBool>,
    started: Instant,
    duration: Option<Duration>,
    min_free: u64,
    forecast: DiskForecast,
    disk_stop: bool,
}

impl Recorder {
    /// Creates the session folder, checks the disk, writes `session.json` (status
    /// `recording`) and starts the pipeline. Setting `stop` ends the recording cleanly.
    pub fn start(plan: ValidPlan, stop: Arc<AtomicBool>) -> Result<Recorder, RecordError> {
        let ValidPlan { plan, session, dir } = plan;
        // Checked again (validate may be long ago), and before the folder is made, so that
        // a refused start leaves nothing behind.
        let free = free_bytes(existing_ancestor(&dir).unwrap_or(&dir));
        if let Some(free) = free {
            if free < plan.min_free {
                return Err(RecordError::LowDisk {
                    dir,
                    free,
                    min_free: plan.min_free,
                });
            }
        }
        std::fs::create_dir_all(&dir).map_err(|source| RecordError::CreateDir {
            dir: dir.clone(),
            source,
        })?;
        let any_color = plan.color.is_some();
        let bytes_per_s = planned_bytes_per_s(
            plan.cameras.iter().map(|c| c.source.info()),
            plan.depth_codec.planning_codec(),
            any_color,
        );
        let forecast = DiskForecast {
            free,
            bytes_per_s,
            seconds: free.map(|f| f.saturating_sub(plan.min_free) as f64 / bytes_per_s.max(1.0)),
        };

        let start_us = crate::container::now_utc_us();
        let names = camera_names(plan.cameras.iter().map(|c| c.source.info().name.as_str()));
        let mut manifest = SessionManifest::new(&session, start_us);
        manifest.command_line = plan.command_line.clone();
        manifest.cameras_left_out = plan.left_out.clone();
        manifest.settings = RecordSettings {
            depth_codec: plan.depth_codec.to_string(),
            color_codec: if any_color {
                plan.color_codec.clone()
            } else {
                None
            },
            crf: plan.crf,
            preset: plan.preset.clone(),
            segment: plan.segment.map(|s| s.to_string()),
            fsync: plan.writer.fsync.to_string(),
            duration_s: plan.duration.map(|d| d.as_secs_f64()),
        };
        manifest.cameras = plan
            .cameras
            .iter()
            .zip(&names)
            .map(|(c, name)| camera_manifest(name, &c.spec, c.source.info(), &[], &[], None))
            .collect();
        manifest.write(&dir).map_err(RecordError::Manifest)?;
        // Best effort: without it, a disk that fills up may refuse the final manifest.
        let _ = SessionManifest::reserve_space(&dir);

        let queue = plan.queue_frames.unwrap_or_else(|| {
            let fps = plan
                .cameras
                .iter()
                .filter_map(|c| c.source.info().stream(StreamKind::Depth).map(|d| d.fps))
                .fold(30.0, f64::max);
            (fps * 2.0).ceil() as usize
        });
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let cfg = PipelineConfig {
            session_dir: dir.clone(),
            depth: plan.depth_codec,
            queue_frames: queue.max(1),
            workers: plan.workers.unwrap_or(cores).max(1),
            writer: plan.writer,
            segment: plan.segment,
            lossless: false,
            color: plan.color,
            metadata: serde_json::json!({"session": session, "rsrec_version": env!("CARGO_PKG_VERSION")}),
            reconnect: plan.reconnect,
        };
        let specs = plan.cameras.iter().map(|c| c.spec.clone()).collect();
        let sources = plan.cameras.into_iter().map(|c| c.source).collect();
        let pipeline = match Pipeline::start(sources, cfg, stop.clone()) {
            Ok(p) => p,
            Err(e) => {
                manifest.stop(crate::container::now_utc_us(), SessionStatus::Error);
                let _ = manifest.write(&dir);
                return Err(RecordError::Pipeline(e));
            }
        };
        Ok(Recorder {
            pipeline: Some(pipeline),
            dir,
            manifest,
            specs,
            stop,
            started: Instant::now(),
            duration: plan.duration,
            min_free: plan.min_free,
            forecast,
            disk_stop: false,
        })
    }

    /// The session folder.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The disk forecast made at the start.
    pub fn forecast(&self) -> DiskForecast {
        self.forecast
    }

    /// The minimum free space the watchdog keeps.
    pub fn min_free(&self) -> u64 {
        self.min_free
    }

    /// Each camera's name and counters now.
    pub fn stats(&self) -> Vec<(String, StatsSnapshot)> {
        self.pipeline
            .as_ref()
            .map(Pipeline::stats)
            .unwrap_or_default()
    }

    /// Asks the recording to stop (as Ctrl+C does); [`Recorder::finish`] then drains it.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Checks the duration, the disk watchdog and the cameras; call it every 100 ms or so.
    /// `running` is false once the recording should be finished.
    pub fn poll(&mut self) -> RecorderStatus {
        let elapsed = self.started.elapsed();
        if self.duration.is_some_and(|d| elapsed >= d) {
            self.request_stop();
        }
        let free = free_bytes(&self.dir);
        if free.is_some_and(|f| f < self.min_free) && !self.stop.load(Ordering::SeqCst) {
            self.disk_stop = true;
            self.request_stop();
        }
        let finished = self.pipeline.as_ref().is_none_or(Pipeline::all_finished);
        RecorderStatus {
            running: !self.stop.load(Ordering::SeqCst) && !finished,
            elapsed,
            free,
            disk_stop: self.disk_stop,
        }
    }

    /// Stops capture, drains the queues, closes every file and rewrites `session.json` with
    /// the outcome.
    pub fn finish(mut self) -> Result<RecordOutcome, RecordError> {
        let outcomes = match self.pipeline.take() {
            Some(p) => p.finish(),
            None => Vec::new(),
        };
        let stop_us = crate::container::now_utc_us();
        let errors: Vec<String> = outcomes
            .iter()
            .filter_map(|o| o.stats.error.as_ref().map(|e| format!("{}: {e}", o.name)))
            .collect();
        // A disk that filled up (ENOSPC) ends the recording like the watchdog does; the
        // errors it caused (a colour encoder that could not write) are in the camera stats.
        let disk_full = outcomes.iter().any(|o| o.stats.disk_full);
        let status = if self.disk_stop || disk_full {
            SessionStatus::DiskFull
        } else if !errors.is_empty() {
            SessionStatus::Error
        } else {
            SessionStatus::Complete
        };
        self.manifest.stop(stop_us, status.clone());
        self.manifest.cameras = outcomes_manifest(&outcomes, &self.specs);
        let losses = Losses::of(&self.manifest.cameras);
        self.manifest.losses = Some(losses.clone());
        SessionManifest::release_reserve(&self.dir);
        self.manifest
            .write(&self.dir)
            .map_err(RecordError::Manifest)?;
        Ok(RecordOutcome {
            dir: self.dir.clone(),
            status,
            cameras: outcomes,
            start_utc_us: self.manifest.start_utc_us,
            stop_utc_us: stop_us,
            errors,
            losses,
        })
    }
}

impl Drop for Recorder {
    /// A recorder dropped without [`Recorder::finish`] (an early return, a panic in the
    /// caller) still stops and drains its pipeline, so every file is closed and indexed.
    fn drop(&mut self) {
        if let Some(p) = self.pipeline.take() {
            self.stop.store(true, Ordering::SeqCst);
            let outcomes = p.finish();
            self.manifest
                .stop(crate::container::now_utc_us(), SessionStatus::Error);
            self.manifest.cameras = outcomes_manifest(&outcomes, &self.specs);
            SessionManifest::release_reserve(&self.dir);
            let _ = self.manifest.write(&self.dir);
        }
    }
}

/// Ctrl+C / SIGTERM handling for a recording process: the first signal sets `stop` (the
/// recording ends cleanly), a second one exits the process at once with status 130 (the
/// files are then unclosed; `rsrec recover` restores them).
pub fn stop_on_signals(stop: &Arc<AtomicBool>) -> std::io::Result<()> {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::sim::{SimConfig, SimSource};
    use crate::source::Source;

    /// The disk forecast counts infrared: with `--ir left,right` a camera writes two more
    /// 8-bit streams at the depth mode.
    #[test]
    fn the_disk_forecast_counts_infrared_streams() {
        let mode = "848x480@30".parse().unwrap();
        let plain = SimSource::new(SimConfig::new(0, mode));
        let mut c = SimConfig::new(1, mode);
        c.infrared = vec![1, 2];
        let with_ir = SimSource::new(c);
        let codec = DepthCodec::GRAD_RANS32;
        let depth = planned_bytes_per_s([plain.info()].into_iter(), codec, false);
        let both = planned_bytes_per_s([with_ir.info()].into_iter(), codec, false);
        let pixels = 848.0 * 480.0 * 30.0;
        assert!((depth - pixels * 2.0 / 8.0).abs() < 1.0, "{depth}");
        assert!(
            (both - depth - 2.0 * pixels / 1.6).abs() < 1.0,
            "{both} vs {depth}"
        );
        // The fast codec is planned at no infrared compression.
        let lz4 = planned_bytes_per_s([with_ir.info()].into_iter(), DepthCodec::Lz4Planes, false);
        let lz4_depth =
            planned_bytes_per_s([plain.info()].into_iter(), DepthCodec::Lz4Planes, false);
        assert!((lz4 - lz4_depth - 2.0 * pixels).abs() < 1.0);
    }
}
