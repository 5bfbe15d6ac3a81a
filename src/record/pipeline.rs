//! The recording pipeline: per-camera capture thread -> bounded queue -> shared pool of
//! compression workers -> per-camera writer thread that writes in frame order.
//!
//! Capture never waits on compression or disk: when a camera's queue is full the frame is
//! dropped and a gap record says so (unless `lossless` is set, for conversions, where capture
//! waits instead). Gaps in the source's own frame numbers become gap records too. Colour goes
//! to a [`ColorSink`] (FFmpeg) from the capture thread, which records each frame's index in the
//! video; IMU samples are batched. One stop flag ends capture; the queues then drain, the
//! writers close their files with full indexes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::bounded;

use super::encoding::DepthEncoding;
use super::limits::SegmentLimit;
use super::stats::CameraStats;
#[cfg(test)]
use crate::codec::DepthCodec;
use crate::container::format::record_type;
use crate::container::{Event, Gap, GapReason, RecordHeader, WriterOptions};
use crate::source::{Source, SourceInfo, Timing};

use super::capture::capture_loop;
use super::compress::compress_loop;
use super::outbox::WRITER_QUEUE;
use super::segment::write_loop;

/// Result of offering a colour frame to the encoder.
#[derive(Debug)]
pub enum ColorPush {
    /// Accepted; `index` is its position in the current video file and `time_us` its time
    /// there (from the video's start).
    Queued { index: u64, time_us: i64 },
    /// The encoder's queue was full: the frame is lost (a gap is recorded).
    Dropped,
    /// The encoder died; the error says why. The frame is lost.
    Dead(ColorError),
}

/// Why a colour sink failed: the encoder's own error type (for FFmpeg a
/// [`crate::video::VideoError`] or [`crate::video::FfmpegFailure`], downcastable), printed
/// with its sources by [`crate::error::chain`].
pub type ColorError = Box<dyn std::error::Error + Send + Sync>;

/// A colour encoder for one camera (FFmpeg in production).
pub trait ColorSink: Send {
    /// Queues a frame captured at `host_ts_us` (the video keeps the capture times).
    fn push(&mut self, frame: Vec<u8>, host_ts_us: i64) -> ColorPush;
    /// At the end of capture: queues the newest dropped frame if it came after the last
    /// queued one, waiting up to `timeout` (so that the video lasts as long as the capture).
    /// `None`: nothing queued (the frame stays dropped). Sinks that keep no frames: `None`.
    fn push_last_dropped(&mut self, _timeout: Duration) -> Option<ColorPush> {
        None
    }
    /// Finishes the video. Returns frames written.
    fn finish(self: Box<Self>) -> Result<u64, ColorError>;
}

/// What the capture thread asks a [`ColorSinkFactory`] for: one video segment of a camera.
#[derive(Clone, Copy, Debug)]
pub struct ColorRequest<'a> {
    /// The camera's name (file names start with it).
    pub camera: &'a str,
    pub info: &'a SourceInfo,
    /// The session folder.
    pub dir: &'a Path,
    /// The segment's number: 0, then one more per restart.
    pub segment: u32,
    /// How many presets faster than the configured one to encode (the capture thread steps
    /// down when the encoder keeps dropping frames: depth first).
    pub faster: u32,
}

/// One video segment a [`ColorSinkFactory`] opened.
pub struct OpenedColor {
    pub sink: Box<dyn ColorSink>,
    /// The video's file name, relative to the session folder.
    pub file: String,
    /// The encoder's name (e.g. `libx265`).
    pub encoder: String,
    /// The encoder preset of this segment, if the encoder takes one.
    pub preset: Option<String>,
    /// Whether asking with `faster + 1` would give a faster preset.
    pub can_go_faster: bool,
}

/// Opens a colour video segment for a camera (FFmpeg in production).
pub type ColorSinkFactory =
    Arc<dyn Fn(&ColorRequest<'_>) -> Result<OpenedColor, ColorError> + Send + Sync>;

#[derive(Clone)]
pub struct PipelineConfig {
    pub session_dir: PathBuf,
    /// Depth codec, or `auto` (chosen per frame from the camera's queue).
    pub depth: DepthEncoding,
    /// Per-camera queue between capture and compression, in frames.
    pub queue_frames: usize,
    /// Compression workers shared by all cameras.
    pub workers: usize,
    pub writer: WriterOptions,
    pub segment: Option<SegmentLimit>,
    /// Capture waits for a free queue slot instead of dropping (conversions, not live).
    pub lossless: bool,
    pub color: Option<ColorSinkFactory>,
    /// JSON merged into every file's metadata (session name, command line, ...).
    pub metadata: serde_json::Value,
    /// A camera that disconnects is reopened, trying every `reconnect` until the recording
    /// stops; the outage becomes a gap record. `None`: its capture ends (file closed).
    pub reconnect: Option<Duration>,
}

pub(super) enum ToWriter {
    Depth {
        seq: u64,
        header: RecordHeader,
        raw_bytes: u64,
        payload: Vec<u8>,
    },
    EncodeFailed {
        seq: u64,
        header: RecordHeader,
        error: String,
    },
    Record {
        header: RecordHeader,
        payload: Vec<u8>,
    },
    /// Make everything written so far durable now (flush, index block, fsync per policy).
    Flush,
    /// Capture has ended after handing `jobs` depth frames to compression.
    End { jobs: u64 },
}

pub(super) struct Job {
    pub(super) seq: u64,
    pub(super) header: RecordHeader,
    pub(super) data: Vec<u16>,
    pub(super) width: u32,
    pub(super) height: u32,
}

/// What one camera produced.
#[derive(Clone, Debug)]
pub struct CameraOutcome {
    pub name: String,
    pub info: SourceInfo,
    pub files: Vec<PathBuf>,
    pub videos: Vec<String>,
    pub stats: super::stats::StatsSnapshot,
}

struct CameraHandle {
    name: String,
    info: SourceInfo,
    stats: Arc<CameraStats>,
    files: Arc<Mutex<Vec<PathBuf>>>,
    videos: Arc<Mutex<Vec<String>>>,
    capture: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
}

pub struct Pipeline {
    stop: Arc<AtomicBool>,
    cameras: Vec<CameraHandle>,
    workers: Vec<JoinHandle<()>>,
}

pub(super) fn spawn<F: FnOnce() + Send + 'static>(
    name: String,
    f: F,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(f)
}

pub(super) fn event_header(stream: u8) -> RecordHeader {
    let mut h = RecordHeader::bare(record_type::EVENT);
    h.stream = stream;
    h.host_ts_us = crate::container::now_utc_us();
    h
}

pub(super) fn gap_record(
    stream: u8,
    t: &Timing,
    first: u64,
    last: u64,
    reason: GapReason,
    detail: &str,
) -> ToWriter {
    let mut header = RecordHeader::bare(record_type::GAP);
    header.stream = stream;
    header.frame_number = first;
    header.device_ts_ms = t.device_ts_ms;
    header.ts_domain = t.ts_domain;
    header.host_ts_us = t.host_ts_us;
    let gap = Gap {
        first_frame: first,
        last_frame: last,
        count: last - first + 1,
        reason,
        detail: detail.into(),
    };
    ToWriter::Record {
        header,
        payload: gap.encode().unwrap_or_default(),
    }
}

/// Consecutive drops of one stream for one reason, merged into one gap record. Flushed when
/// the run ends, after [`GapRun::MAX`] frames (so a crash loses little of it) unless the
/// writer is behind anyway, and at stop.
pub(super) struct GapRun {
    pub(super) stream: u8,
    pub(super) run: Option<(Timing, u64, u64, GapReason, &'static str)>,
}

impl GapRun {
    const MAX: u64 = 30;

    pub(super) fn new(stream: u8) -> Self {
        Self { stream, run: None }
    }

    /// Adds dropped frame `t.frame_number`; returns a finished run to write, if any.
    /// `unbounded`: the writer is behind, so the run is not cut at [`GapRun::MAX`].
    pub(super) fn add(
        &mut self,
        t: &Timing,
        reason: GapReason,
        detail: &'static str,
        unbounded: bool,
    ) -> Option<ToWriter> {
        self.add_range(t, t.frame_number, reason, detail, unbounded)
    }

    /// Adds dropped frames `t.frame_number..=last`, as [`GapRun::add`].
    pub(super) fn add_range(
        &mut self,
        t: &Timing,
        last: u64,
        reason: GapReason,
        detail: &'static str,
        unbounded: bool,
    ) -> Option<ToWriter> {
        let n = t.frame_number;
        let last = last.max(n);
        let mut out = None;
        match &mut self.run {
            Some((_, first, end, r, _))
                if *r == reason
                    && end.checked_add(1) == Some(n)
                    && (unbounded || last - *first < Self::MAX) =>
            {
                *end = last;
                return None;
            }
            Some(_) => out = self.flush(),
            None => {}
        }
        self.run = Some((*t, n, last, reason, detail));
        out
    }

    /// Takes frame `n` out of the pending run if it is the run's last frame (it was not
    /// lost after all); false if the run (already written, or another) does not end with it.
    pub(super) fn retract_last(&mut self, n: u64) -> bool {
        match &mut self.run {
            Some((_, first, end, _, _)) if *end == n => {
                if *first == n {
                    self.run = None;
                } else {
                    *end -= 1;
                }
                true
            }
            _ => false,
        }
    }

    /// Whether frame `n` is the last frame of the pending run.
    pub(super) fn ends_with(&self, n: u64) -> bool {
        matches!(&self.run, Some((_, _, end, _, _)) if *end == n)
    }

    pub(super) fn flush(&mut self) -> Option<ToWriter> {
        self.run.take().map(|(t, first, last, reason, detail)| {
            gap_record(self.stream, &t, first, last, reason, detail)
        })
    }
}

pub(super) fn event_record(stream: u8, kind: &str, message: String) -> ToWriter {
    ToWriter::Record {
        header: event_header(stream),
        payload: Event {
            kind: kind.into(),
            message,
        }
        .encode()
        .unwrap_or_default(),
    }
}

/// The names the pipeline gives cameras (and their files): the source names made
/// file-system safe (anything but ASCII letters, digits, `-` and `_` becomes `_`; an empty
/// name becomes `camera`), with `_N` (N = the camera's position) added to repeats.
pub fn camera_names<'a>(source_names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (cam, raw) in source_names.into_iter().enumerate() {
        let mut name: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if name.is_empty() {
            name = "camera".into();
        }
        if names.contains(&name) {
            name = format!("{name}_{cam}");
        }
        names.push(name);
    }
    names
}

impl Pipeline {
    /// Starts capture, compression and writing for every source.
    pub fn start(
        sources: Vec<Box<dyn Source>>,
        cfg: PipelineConfig,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Pipeline> {
        std::fs::create_dir_all(&cfg.session_dir)?;
        let mut job_rxs = Vec::new();
        let mut writer_txs = Vec::new();
        let mut cameras = Vec::new();
        let names = camera_names(sources.iter().map(|s| s.info().name.as_str()));
        for (source, name) in sources.into_iter().zip(names) {
            let info = source.info().clone();
            let stats = Arc::new(CameraStats::default());
            stats
                .queue_capacity
                .store(cfg.queue_frames as u64, Ordering::Relaxed);
            let (job_tx, job_rx) = bounded::<Job>(cfg.queue_frames.max(1));
            // Producers stop adding at WRITER_QUEUE (capture keeps a backlog, workers take
            // other cameras' frames); one more slot per worker so that a worker never blocks.
            let (w_tx, w_rx) = bounded::<ToWriter>(WRITER_QUEUE + cfg.workers.max(1) + 1);
            job_rxs.push(job_rx);
            writer_txs.push(w_tx.clone());
            let files = Arc::new(Mutex::new(Vec::new()));
            let videos = Arc::new(Mutex::new(Vec::new()));
            let writer = {
                let (cfg, info, stats, files, stop, name) = (
                    cfg.clone(),
                    info.clone(),
                    stats.clone(),
                    files.clone(),
                    stop.clone(),
                    name.clone(),
                );
                spawn(format!("write-{name}"), move || {
                    write_loop(&cfg, &name, &info, &stats, &files, &stop, w_rx)
                })?
            };
            let capture = {
                let (cfg, stats, stop, name, videos) = (
                    cfg.clone(),
                    stats.clone(),
                    stop.clone(),
                    name.clone(),
                    videos.clone(),
                );
                spawn(format!("capture-{name}"), move || {
                    capture_loop(&name, source, &cfg, &stats, &stop, job_tx, w_tx, &videos)
                })?
            };
            cameras.push(CameraHandle {
                name,
                info,
                stats,
                files,
                videos,
                capture: Some(capture),
                writer: Some(writer),
            });
        }
        let mut workers = Vec::new();
        for i in 0..cfg.workers.max(1) {
            let (rxs, txs, depth) = (job_rxs.clone(), writer_txs.clone(), cfg.depth);
            let capacity = cfg.queue_frames.max(1);
            workers.push(spawn(format!("compress-{i}"), move || {
                compress_loop(depth, capacity, rxs, txs)
            })?);
        }
        Ok(Pipeline {
            stop,
            cameras,
            workers,
        })
    }

    pub fn camera_names(&self) -> Vec<String> {
        self.cameras.iter().map(|c| c.name.clone()).collect()
    }

    pub fn stats(&self) -> Vec<(String, super::stats::StatsSnapshot)> {
        self.cameras
            .iter()
            .map(|c| (c.name.clone(), c.stats.snapshot()))
            .collect()
    }

    /// Whether every camera has finished (finite sources, failures).
    pub fn all_finished(&self) -> bool {
        self.cameras
            .iter()
            .all(|c| c.stats.finished.load(Ordering::Relaxed))
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Stops capture, drains the queues, closes every file and returns what was recorded.
    pub fn finish(mut self) -> Vec<CameraOutcome> {
        self.request_stop();
        self.join()
    }

    fn join(&mut self) -> Vec<CameraOutcome> {
        for c in &mut self.cameras {
            if let Some(h) = c.capture.take() {
                if h.join().is_err() {
                    c.stats.set_error("capture thread panicked".into());
                }
            }
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        for c in &mut self.cameras {
            if let Some(h) = c.writer.take() {
                if h.join().is_err() {
                    c.stats.set_error("writer thread panicked".into());
                }
            }
        }
        self.cameras
            .iter()
            .map(|c| CameraOutcome {
                name: c.name.clone(),
                info: c.info.clone(),
                files: c.files.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                videos: c.videos.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                stats: c.stats.snapshot(),
            })
            .collect()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.request_stop();
        self.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::CodecId;
    use crate::container::format::ts_domain;
    use crate::container::Reader;
    use crate::source::sim::{SimConfig, SimSource};
    use crate::source::{stream_id, Pacing, Sample, SourceError};
    use std::time::Instant;

    /// A synthetic camera that is unplugged after `after` depth frames and is back on the
    /// `back_on`-th reconnect attempt, its frame numbers restarting as a real camera's do.
    struct Unplugged {
        inner: SimSource,
        cfg: SimConfig,
        depth_seen: u64,
        after: u64,
        attempts: u32,
        back_on: Option<u32>,
        gone: bool,
    }

    impl Unplugged {
        fn new(after: u64, back_on: Option<u32>) -> Self {
            let mut cfg = SimConfig::new(0, "64x48@30".parse().unwrap());
            cfg.color = None;
            cfg.pacing = Pacing::AsFastAsPossible;
            cfg.max_depth_frames = Some(20);
            Unplugged {
                inner: SimSource::new(cfg.clone()),
                cfg,
                depth_seen: 0,
                after,
                attempts: 0,
                back_on,
                gone: false,
            }
        }
    }

    impl Source for Unplugged {
        fn info(&self) -> &SourceInfo {
            self.inner.info()
        }
        fn next(&mut self) -> Result<Option<Sample>, SourceError> {
            if self.gone {
                return Err(SourceError::Disconnected("unplugged".into()));
            }
            let s = self.inner.next()?;
            if let Some(Sample::Depth(_)) = &s {
                self.depth_seen += 1;
                self.gone = self.depth_seen == self.after;
            }
            Ok(s)
        }
        fn can_reconnect(&self) -> bool {
            true
        }
        fn reconnect(&mut self) -> Result<bool, SourceError> {
            self.attempts += 1;
            match self.back_on {
                Some(k) if self.attempts >= k => {
                    self.inner = SimSource::new(self.cfg.clone());
                    self.gone = false;
                    self.after = u64::MAX;
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
    }

    type Recorded = (CameraOutcome, Vec<u64>, Vec<(u8, Gap)>, Vec<String>);

    /// The tests' pipeline: queues of 8 frames, one compression worker, no colour.
    fn test_config(dir: &std::path::Path, depth: DepthEncoding, lossless: bool) -> PipelineConfig {
        PipelineConfig {
            session_dir: dir.to_path_buf(),
            depth,
            queue_frames: 8,
            workers: 1,
            writer: WriterOptions::default(),
            segment: None,
            lossless,
            color: None,
            metadata: serde_json::json!({}),
            reconnect: None,
        }
    }

    /// Records `src`; returns its outcome, the frame numbers in its file, its gaps and the
    /// kinds of its events.
    fn run(src: Unplugged, reconnect: Option<Duration>, stop_after: Duration) -> Recorded {
        let dir = tempfile::tempdir().unwrap();
        let cfg = PipelineConfig {
            reconnect,
            ..test_config(
                dir.path(),
                DepthEncoding::Fixed(DepthCodec::Lz4Planes),
                true,
            )
        };
        let stop = Arc::new(AtomicBool::new(false));
        let p = Pipeline::start(vec![Box::new(src)], cfg, stop.clone()).unwrap();
        let t0 = Instant::now();
        while !p.all_finished() {
            if t0.elapsed() >= stop_after {
                stop.store(true, Ordering::SeqCst);
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "does not end");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut out = p.finish();
        let o = out.remove(0);
        // Read here, while the folder exists.
        let r = Reader::open(&o.files[0]).unwrap();
        assert!(r.is_closed());
        assert!(crate::container::recover::verify(&r).ok());
        let numbers = r
            .depth_frames(stream_id::DEPTH)
            .map(|f| f.unwrap().header.frame_number)
            .collect();
        let events = r
            .events()
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.kind)
            .collect();
        (o, numbers, r.gaps().unwrap(), events)
    }

    /// Regression: a full writer channel dropped gap records, events, IMU batches and colour
    /// entries uncounted, and one stalled writer blocked the compression worker shared by
    /// every camera. Now camera A's stalled writer costs only A's frames, each one counted
    /// and described by a gap record, and camera B records on at full rate meanwhile.
    #[test]
    fn a_stalled_writer_loses_nothing_uncounted_and_does_not_stop_other_cameras() {
        let dir = tempfile::tempdir().unwrap();
        let cam = |index| {
            let mut c = SimConfig::new(index, "212x120@100".parse().unwrap());
            c.imu = true;
            c.prerendered = Some(16);
            Box::new(SimSource::new(c)) as Box<dyn Source>
        };
        let cfg = test_config(
            dir.path(),
            DepthEncoding::Fixed(DepthCodec::Lz4Planes),
            false,
        );
        let stall = Arc::new(AtomicBool::new(true));
        super::super::segment::stall::stall("sim900", stall.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let p = Pipeline::start(vec![cam(900), cam(901)], cfg, stop.clone()).unwrap();
        assert_eq!(p.camera_names(), ["sim900", "sim901"]);
        let written_b = |p: &Pipeline| p.stats()[1].1.depth_written;
        // 0.8 s fills A's writer channel (64 records at 100 fps and IMU batches), then B is
        // watched for 1.5 s while A stays stalled.
        std::thread::sleep(Duration::from_millis(800));
        let (b0, t0) = (written_b(&p), Instant::now());
        std::thread::sleep(Duration::from_millis(1500));
        let (b1, dt) = (written_b(&p), t0.elapsed().as_secs_f64());
        stall.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        let out = p.finish();
        let due = dt * 100.0;
        assert!(
            (b1 - b0) as f64 >= due * 0.5,
            "camera B wrote {} of {due:.0} due frames while A's writer was stalled",
            b1 - b0
        );
        let a = &out[0];
        let s = &a.stats;
        assert_eq!(s.error, None);
        assert!(s.depth_dropped > 0, "A dropped nothing: {s:?}");
        assert_eq!(s.depth_captured, s.depth_written + s.depth_dropped, "{s:?}");
        assert_eq!(s.records_lost, 0);
        let r = Reader::open(&a.files[0]).unwrap();
        assert!(r.is_closed());
        assert!(crate::container::recover::verify(&r).ok());
        let gaps = r.gaps().unwrap();
        let gap_count = |stream: u8| -> u64 {
            gaps.iter()
                .filter(|(st, g)| *st == stream && g.reason == GapReason::QueueFull)
                .map(|(_, g)| g.count)
                .sum()
        };
        assert_eq!(gap_count(stream_id::DEPTH), s.depth_dropped, "{gaps:?}");
        assert_eq!(r.frame_count(stream_id::DEPTH) as u64, s.depth_written);
        // Every IMU sample is in the file or counted as dropped and in a gap.
        let imu_in_file: u64 = [stream_id::GYRO, stream_id::ACCEL]
            .iter()
            .map(|&st| {
                (0..r.count(st, record_type::IMU_BATCH))
                    .map(|i| {
                        let (_, p) = r.read_record(st, record_type::IMU_BATCH, i).unwrap();
                        crate::container::record::decode_imu_batch(p).unwrap().len() as u64
                    })
                    .sum::<u64>()
            })
            .sum();
        assert!(s.imu_samples > 0);
        assert_eq!(imu_in_file + s.imu_dropped, s.imu_samples, "{s:?}");
        assert_eq!(
            gap_count(stream_id::GYRO) + gap_count(stream_id::ACCEL),
            s.imu_dropped
        );
    }

    /// Issue 16: the default codec was lz4-planes because grad-rans32 might not keep up.
    /// `auto` uses grad-rans32 while the workers keep up and lz4-planes for frames of a
    /// camera whose queue fills: on a CPU too slow for grad-rans32 (30 ms a frame at
    /// 100 fps, one worker) it loses no frame where grad-rans32 alone drops most of them.
    #[test]
    fn auto_falls_back_to_the_fast_codec_instead_of_dropping_frames() {
        const WIDTH: u32 = 214;
        super::super::compress::slow::slow_best(WIDTH, Duration::from_millis(30));
        // `queue`: frames of slack. With 8 (80 ms at 100 fps) a busy test machine that did
        // not run the worker for that long dropped frames with `auto` too (CI, other tests
        // on both cores); 24 leave 240 ms, and the fallback still starts at a quarter.
        let record = |depth: DepthEncoding, queue: usize| {
            let dir = tempfile::tempdir().unwrap();
            let mut c = SimConfig::new(910, format!("{WIDTH}x120@100").parse().unwrap());
            c.prerendered = Some(16);
            let cfg = PipelineConfig {
                queue_frames: queue,
                ..test_config(dir.path(), depth, false)
            };
            let stop = Arc::new(AtomicBool::new(false));
            let p = Pipeline::start(vec![Box::new(SimSource::new(c))], cfg, stop.clone()).unwrap();
            std::thread::sleep(Duration::from_millis(1500));
            stop.store(true, Ordering::SeqCst);
            let o = p.finish().remove(0);
            let r = Reader::open(&o.files[0]).unwrap();
            assert!(crate::container::recover::verify(&r).ok());
            let in_file: Vec<CodecId> = (0..r.frame_count(stream_id::DEPTH))
                .map(|i| r.read_depth(stream_id::DEPTH, i).unwrap().header.codec)
                .collect();
            (o.stats, in_file)
        };
        let (s, codecs) = record(DepthEncoding::AUTO, 24);
        assert!(s.depth_captured >= 50, "{s:?}");
        assert_eq!(s.depth_dropped, 0, "{s:?}");
        assert_eq!(s.depth_written, s.depth_captured);
        let count = |id: CodecId| codecs.iter().filter(|&&c| c == id).count() as u64;
        let (grad, lz4) = (count(CodecId::GRAD_RANS32), count(CodecId::LZ4_PLANES));
        assert!(grad > 0 && lz4 > 0, "{s:?}");
        assert_eq!(grad + lz4, s.depth_written);
        assert_eq!(s.depth_codec_frames["grad-rans32"], grad);
        assert_eq!(s.depth_codec_frames["lz4-planes"], lz4);
        // The same CPU with grad-rans32 alone: most frames dropped.
        let (fixed, _) = record(DepthEncoding::Fixed(DepthCodec::GRAD_RANS32), 8);
        assert!(fixed.depth_dropped > fixed.depth_written, "{fixed:?}");
    }

    /// Issue 17: infrared (format §5.9) goes through the compression workers with depth and
    /// is stored bit-exact, left and right on their own streams, on the camera's frame
    /// numbers.
    #[test]
    fn infrared_frames_are_recorded_bit_exact() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = SimConfig::new(3, "96x72@30".parse().unwrap());
        c.infrared = vec![1, 2];
        c.pacing = Pacing::AsFastAsPossible;
        c.max_depth_frames = Some(12);
        let cfg = test_config(dir.path(), DepthEncoding::AUTO, true);
        let stop = Arc::new(AtomicBool::new(false));
        let p = Pipeline::start(vec![Box::new(SimSource::new(c))], cfg, stop).unwrap();
        let t0 = Instant::now();
        while !p.all_finished() {
            assert!(t0.elapsed() < Duration::from_secs(20), "does not end");
            std::thread::sleep(Duration::from_millis(5));
        }
        let o = p.finish().remove(0);
        let s = &o.stats;
        assert_eq!(s.ir_written, s.ir_captured);
        assert_eq!(s.ir_dropped, 0);
        assert_eq!(s.ir_raw_bytes, s.ir_written * 96 * 72);
        assert!(
            s.ir_stored_bytes > 0 && s.ir_stored_bytes < s.ir_raw_bytes,
            "{s:?}"
        );
        // Depth's counters are depth's alone.
        assert_eq!(s.depth_written, 12);
        assert_eq!(s.depth_raw_bytes, 12 * 96 * 72 * 2);
        let r = Reader::open(&o.files[0]).unwrap();
        assert!(crate::container::recover::verify(&r).ok());
        let mut total = 0;
        for (id, right) in [(stream_id::IR_LEFT, false), (stream_id::IR_RIGHT, true)] {
            let n = r.count(id, record_type::INFRARED_FRAME);
            assert!((11..=12).contains(&n), "{n}");
            for k in 0..n {
                let f = r.read_infrared(id, k).unwrap();
                let want =
                    crate::source::sim::render_infrared(96, 72, f.header.frame_number, 3, right);
                assert!(f.data == want, "stream {id} frame {k}");
                // Always a lossless codec of `auto` (the fast one while the workers are
                // behind, as here where frames come as fast as they can), never a bounded one.
                let c = f.header.codec;
                assert!(
                    c == CodecId::GRAD_RANS32 || c == CodecId::LZ4_PLANES,
                    "{c:?}"
                );
            }
            total += n as u64;
        }
        assert_eq!(total, s.ir_written);
    }

    /// Depth first: infrared frames take a compression-queue slot only while the queue is at
    /// most half full, so a CPU that cannot keep up loses infrared before depth, and every
    /// infrared frame lost is counted and a gap.
    #[test]
    fn infrared_yields_the_compression_queue_to_depth() {
        const WIDTH: u32 = 218;
        super::super::compress::slow::slow_best(WIDTH, Duration::from_millis(30));
        let dir = tempfile::tempdir().unwrap();
        let mut c = SimConfig::new(911, format!("{WIDTH}x64@100").parse().unwrap());
        c.infrared = vec![1, 2];
        c.prerendered = Some(4);
        let cfg = test_config(
            dir.path(),
            DepthEncoding::Fixed(DepthCodec::GRAD_RANS32),
            false,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let p = Pipeline::start(vec![Box::new(SimSource::new(c))], cfg, stop.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        stop.store(true, Ordering::SeqCst);
        let o = p.finish().remove(0);
        let s = &o.stats;
        assert_eq!(s.ir_captured, s.ir_written + s.ir_dropped, "{s:?}");
        assert!(s.ir_dropped > 0, "{s:?}");
        // Of what was captured, infrared kept a smaller share than depth.
        let share = |w: u64, c: u64| w as f64 / c.max(1) as f64;
        assert!(
            share(s.ir_written, s.ir_captured) < share(s.depth_written, s.depth_captured),
            "{s:?}"
        );
        let r = Reader::open(&o.files[0]).unwrap();
        let ir_gaps: u64 = r
            .gaps()
            .unwrap()
            .iter()
            .filter(|(st, g)| {
                matches!(*st, stream_id::IR_LEFT | stream_id::IR_RIGHT)
                    && g.reason == GapReason::QueueFull
            })
            .map(|(_, g)| g.count)
            .sum();
        assert_eq!(ir_gaps, s.ir_dropped);
    }

    fn outages(gaps: &[(u8, Gap)]) -> Vec<&Gap> {
        gaps.iter()
            .filter(|(s, g)| *s == stream_id::DEPTH && g.reason == GapReason::DeviceDisconnected)
            .map(|(_, g)| g)
            .collect()
    }

    #[test]
    fn a_camera_that_comes_back_goes_on_in_the_same_file_after_a_gap() {
        let (o, numbers, gaps, events) = run(
            Unplugged::new(10, Some(3)),
            Some(Duration::from_millis(10)),
            Duration::from_secs(20),
        );
        assert_eq!(o.stats.error, None);
        assert_eq!((o.stats.disconnects, o.stats.reconnects), (1, 1));
        assert!(!o.stats.disconnected);
        // 10 frames, the outage, then the camera's 20 frames from its first number again.
        assert_eq!(numbers.len(), 30, "{numbers:?}");
        assert_eq!(numbers[10], numbers[0]);
        let out = outages(&gaps);
        assert_eq!(out.len(), 1, "{gaps:?}");
        assert_eq!(out[0].first_frame, numbers[9] + 1);
        assert!(out[0].count >= 1);
        assert!(
            out[0].detail.contains("disconnected for"),
            "{}",
            out[0].detail
        );
        for k in ["camera_disconnected", "camera_reconnected"] {
            assert!(events.iter().any(|e| e == k), "{events:?}");
        }
        assert_eq!(o.stats.depth_written, 30);
    }

    #[test]
    fn a_camera_that_stays_away_is_an_error_with_its_outage_in_the_file() {
        let (o, numbers, gaps, events) = run(
            Unplugged::new(10, None),
            Some(Duration::from_millis(10)),
            Duration::from_millis(400),
        );
        let e = o.stats.error.as_deref().unwrap();
        assert!(e.contains("not back"), "{e}");
        assert_eq!((o.stats.disconnects, o.stats.reconnects), (1, 0));
        assert_eq!(numbers.len(), 10);
        let out = outages(&gaps);
        assert_eq!(out.len(), 1, "{gaps:?}");
        assert!(out[0].detail.contains("not back"), "{}", out[0].detail);
        assert!(events.iter().any(|e| e == "camera_disconnected"));
        assert!(!events.iter().any(|e| e == "camera_reconnected"));
    }

    #[test]
    fn without_reconnect_a_disconnect_ends_the_camera_and_closes_its_file() {
        let (o, numbers, gaps, events) =
            run(Unplugged::new(10, Some(1)), None, Duration::from_secs(20));
        let e = o.stats.error.as_deref().unwrap();
        assert!(e.contains("unplugged"), "{e}");
        assert_eq!(o.stats.disconnects, 0);
        assert_eq!(numbers.len(), 10);
        assert!(outages(&gaps).is_empty());
        assert!(events.iter().any(|e| e == "source_error"), "{events:?}");
    }

    /// A source that plays a script: samples, and changes of what it says it lost.
    enum Act {
        Give(Sample),
        Lost(crate::source::StreamId, crate::source::SourceLosses),
    }

    struct Scripted {
        info: SourceInfo,
        script: std::collections::VecDeque<Act>,
        losses: std::collections::HashMap<crate::source::StreamId, crate::source::SourceLosses>,
    }

    impl Scripted {
        fn new(script: Vec<Act>) -> Self {
            let mut cfg = SimConfig::new(0, "8x6@30".parse().unwrap());
            cfg.color = None;
            cfg.imu = true;
            Scripted {
                info: SimSource::new(cfg).info().clone(),
                script: script.into(),
                losses: Default::default(),
            }
        }
    }

    impl Source for Scripted {
        fn info(&self) -> &SourceInfo {
            &self.info
        }
        fn next(&mut self) -> Result<Option<Sample>, SourceError> {
            loop {
                match self.script.pop_front() {
                    None => return Ok(None),
                    Some(Act::Give(s)) => return Ok(Some(s)),
                    Some(Act::Lost(stream, l)) => {
                        self.losses.insert(stream, l);
                    }
                }
            }
        }
        fn losses(&self, stream: crate::source::StreamId) -> crate::source::SourceLosses {
            self.losses.get(&stream).copied().unwrap_or_default()
        }
    }

    fn depth(n: u64) -> Act {
        Act::Give(Sample::Depth(crate::source::DepthFrame {
            timing: crate::source::Timing {
                frame_number: n,
                device_ts_ms: n as f64 * 33.3,
                ts_domain: ts_domain::HARDWARE_CLOCK,
                host_ts_us: 1_700_000_000_000_000 + n as i64 * 33_333,
            },
            data: vec![n as u16; 48],
            metadata: Vec::new(),
        }))
    }

    fn gyro(n: u64, domain: u8) -> Act {
        Act::Give(Sample::Imu {
            kind: crate::container::StreamKind::Gyro,
            sample: crate::container::ImuSample {
                frame_number: n,
                device_ts_ms: n as f64 * 5.0,
                host_ts_us: 1_700_000_000_000_000 + n as i64 * 5000,
                xyz: [n as f32, 0.0, -1.0],
            },
            ts_domain: domain,
        })
    }

    fn record_script(script: Vec<Act>) -> (CameraOutcome, Reader, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = test_config(
            dir.path(),
            DepthEncoding::Fixed(DepthCodec::Lz4Planes),
            true,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let p = Pipeline::start(vec![Box::new(Scripted::new(script))], cfg, stop).unwrap();
        let t0 = Instant::now();
        while !p.all_finished() {
            assert!(t0.elapsed() < Duration::from_secs(20), "does not end");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut out = p.finish();
        let o = out.remove(0);
        let r = Reader::open(&o.files[0]).unwrap();
        assert!(crate::container::recover::verify(&r).ok());
        (o, r, dir)
    }

    /// A colour sink that drops every frame (an encoder that cannot keep up) or takes every
    /// one, and counts what it took.
    struct FakeSink {
        drops: bool,
        taken: u64,
    }

    impl ColorSink for FakeSink {
        fn push(&mut self, _frame: Vec<u8>, _host_ts_us: i64) -> ColorPush {
            if self.drops {
                return ColorPush::Dropped;
            }
            self.taken += 1;
            ColorPush::Queued {
                index: self.taken - 1,
                time_us: 0,
            }
        }
        fn finish(self: Box<Self>) -> Result<u64, ColorError> {
            Ok(self.taken)
        }
    }

    /// Records `frames` frames of a 32x24@100 synthetic camera with colour through
    /// `factory` (depth lz4-planes) into `dir`.
    fn record_colour(
        dir: &std::path::Path,
        factory: ColorSinkFactory,
        frames: u64,
    ) -> CameraOutcome {
        let mut sim = SimConfig::new(0, "32x24@100".parse().unwrap());
        sim.color = Some("32x24@100".parse().unwrap());
        sim.max_depth_frames = Some(frames);
        let cfg = PipelineConfig {
            color: Some(factory),
            ..test_config(dir, DepthEncoding::Fixed(DepthCodec::Lz4Planes), false)
        };
        let stop = Arc::new(AtomicBool::new(false));
        let p = Pipeline::start(vec![Box::new(SimSource::new(sim))], cfg, stop).unwrap();
        let t0 = Instant::now();
        while !p.all_finished() {
            assert!(t0.elapsed() < Duration::from_secs(20), "does not end");
            std::thread::sleep(Duration::from_millis(5));
        }
        p.finish().remove(0)
    }

    /// Depth first: a colour encoder that keeps dropping frames is restarted one preset
    /// faster in a new video (never while it is settling in), and the step is an event and
    /// a counter; the frames dropped before it stay gaps.
    #[test]
    fn a_colour_encoder_that_keeps_dropping_goes_on_one_preset_faster() {
        let dir = tempfile::tempdir().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let factory: ColorSinkFactory = Arc::new(move |req: &ColorRequest<'_>| {
            log.lock().unwrap().push((req.segment, req.faster));
            Ok(OpenedColor {
                // The configured preset cannot keep up; one step faster can.
                sink: Box::new(FakeSink {
                    drops: req.faster == 0,
                    taken: 0,
                }),
                file: format!("{}.color.{:03}.mkv", req.camera, req.segment),
                encoder: "fake".into(),
                preset: Some(["medium", "fast", "faster"][req.faster.min(2) as usize].into()),
                can_go_faster: req.faster < 2,
            })
        });
        let o = record_colour(dir.path(), factory, 100);
        assert_eq!(*asked.lock().unwrap(), vec![(0, 0), (1, 1)]);
        let s = &o.stats;
        assert_eq!(s.color_preset_steps, 1);
        assert_eq!(s.color_preset.as_deref(), Some("fast"));
        assert_eq!(s.color_captured, s.color_queued + s.color_dropped);
        // The settling time and the window's drops went by before the step.
        assert!(s.color_dropped >= 15, "{s:?}");
        assert!(s.color_queued > 0, "{s:?}");
        let r = Reader::open(&o.files[0]).unwrap();
        let events = r.events().unwrap();
        let step = events
            .iter()
            .find(|(_, e)| e.kind == "color_preset_stepped_down")
            .expect("a step-down event");
        assert!(
            step.1.message.contains("medium -> fast"),
            "{}",
            step.1.message
        );
        let dropped: u64 = r
            .gaps()
            .unwrap()
            .iter()
            .filter(|(st, _)| *st == stream_id::COLOR)
            .map(|(_, g)| g.count)
            .sum();
        assert_eq!(dropped, s.color_dropped);
        assert_eq!(o.videos, vec!["sim0.color.000.mkv", "sim0.color.001.mkv"]);
    }

    /// Drops every frame; its `finish` takes `delay` and then notes when it returned.
    struct SlowToFinish {
        delay: Duration,
        finished: Arc<Mutex<Vec<Instant>>>,
    }

    impl ColorSink for SlowToFinish {
        fn push(&mut self, _frame: Vec<u8>, _host_ts_us: i64) -> ColorPush {
            ColorPush::Dropped
        }
        fn finish(self: Box<Self>) -> Result<u64, ColorError> {
            std::thread::sleep(self.delay);
            self.finished.lock().unwrap().push(Instant::now());
            Ok(0)
        }
    }

    /// At most two encoders per camera: no further step-down while the encoder of the video
    /// before is still finishing its queue (it takes the CPU the new one is judged on, and
    /// every encoder holds a queue of frames).
    #[test]
    fn no_second_step_down_while_the_retired_encoder_is_still_finishing() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Arc::new(Mutex::new(Vec::new()));
        let finished = Arc::new(Mutex::new(Vec::new()));
        let (log, fin) = (opened.clone(), finished.clone());
        let factory: ColorSinkFactory = Arc::new(move |req: &ColorRequest<'_>| {
            log.lock().unwrap().push(Instant::now());
            Ok(OpenedColor {
                sink: Box::new(SlowToFinish {
                    delay: Duration::from_millis(if req.segment == 0 { 700 } else { 0 }),
                    finished: fin.clone(),
                }),
                file: format!("{}.color.{:03}.mkv", req.camera, req.segment),
                encoder: "fake".into(),
                preset: Some(["slow", "medium", "fast"][req.faster.min(2) as usize].into()),
                can_go_faster: req.faster < 2,
            })
        });
        let o = record_colour(dir.path(), factory, 250);
        let opened = opened.lock().unwrap().clone();
        // Both steps were taken (2.5 s of frames, every one dropped) ...
        assert_eq!(opened.len(), 3, "{:?}", o.stats);
        assert_eq!(o.stats.color_preset_steps, 2);
        // ... the second only after the first video's encoder had finished.
        let first_finished = finished.lock().unwrap()[0];
        assert!(
            opened[2] >= first_finished,
            "video 2 opened {:?} before video 0 finished",
            first_finished - opened[2]
        );
        assert!(opened[2] - opened[1] >= Duration::from_millis(700));
    }

    /// Regression: every IMU batch was written as hardware clock, so a bag whose IMU is in
    /// global time got depth in global time and gyro in hardware clock. A batch now has the
    /// clock of its samples, and a change of clock starts a new batch.
    #[test]
    fn imu_batches_carry_the_clock_of_their_samples() {
        let mut script = vec![depth(1)];
        script.extend((1..=10).map(|n| gyro(n, ts_domain::HARDWARE_CLOCK)));
        script.extend((11..=20).map(|n| gyro(n, ts_domain::GLOBAL_TIME)));
        let (o, r, _dir) = record_script(script);
        assert_eq!(o.stats.imu_samples, 20);
        let batches = r.count(stream_id::GYRO, record_type::IMU_BATCH);
        let mut seen = Vec::new();
        for i in 0..batches {
            let (rec, p) = r
                .read_record(stream_id::GYRO, record_type::IMU_BATCH, i)
                .unwrap();
            for s in crate::container::record::decode_imu_batch(p).unwrap() {
                seen.push((s.frame_number, rec.header.ts_domain));
            }
        }
        let want: Vec<(u64, u8)> = (1..=20)
            .map(|n| {
                let d = if n <= 10 {
                    ts_domain::HARDWARE_CLOCK
                } else {
                    ts_domain::GLOBAL_TIME
                };
                (n, d)
            })
            .collect();
        assert_eq!(seen, want);
    }

    /// Regression: the source's own overflow counters were never read, so frames lost on the
    /// host were recorded as "skipped by the camera". A jump in frame numbers is now blamed on
    /// the host as far as the source counted such losses, on the camera for the rest; IMU
    /// sample numbers that jump are gaps too.
    #[test]
    fn host_side_losses_are_told_apart_from_frames_the_camera_skipped() {
        use crate::source::{SourceLosses, StreamId};
        let lost =
            |stream, host_dropped, bad| Act::Lost(stream, SourceLosses { host_dropped, bad });
        let script = vec![
            depth(1),
            depth(2),
            // 3 missing: 2 dropped on the host, 1 skipped by the camera.
            lost(StreamId::Depth, 2, 0),
            depth(6),
            gyro(1, ts_domain::HARDWARE_CLOCK),
            gyro(2, ts_domain::HARDWARE_CLOCK),
            // Gyro 3..=5 missing: 1 unreadable, the rest the camera's.
            lost(StreamId::Gyro, 0, 1),
            gyro(6, ts_domain::HARDWARE_CLOCK),
            depth(7),
            // Lost after the last frame: counted, no gap.
            lost(StreamId::Depth, 3, 0),
        ];
        let (o, r, _dir) = record_script(script);
        let s = &o.stats;
        assert_eq!(
            (s.depth_host_dropped, s.depth_source_skipped),
            (3, 1),
            "{s:?}"
        );
        assert_eq!((s.imu_source_skipped, s.bad_frames), (2, 1), "{s:?}");
        let gaps: Vec<(u8, u64, u64, GapReason)> = r
            .gaps()
            .unwrap()
            .into_iter()
            .map(|(st, g)| (st, g.first_frame, g.last_frame, g.reason))
            .collect();
        assert_eq!(
            gaps,
            [
                (stream_id::DEPTH, 3, 4, GapReason::HostDropped),
                (stream_id::DEPTH, 5, 5, GapReason::SourceSkipped),
                (stream_id::GYRO, 3, 3, GapReason::BadFrame),
                (stream_id::GYRO, 4, 5, GapReason::SourceSkipped),
            ]
        );
        // The batch before the gap holds 1..=2, the one after 6.
        let numbers: Vec<u64> = (0..r.count(stream_id::GYRO, record_type::IMU_BATCH))
            .flat_map(|i| {
                let (_, p) = r
                    .read_record(stream_id::GYRO, record_type::IMU_BATCH, i)
                    .unwrap();
                crate::container::record::decode_imu_batch(p)
                    .unwrap()
                    .into_iter()
                    .map(|s| s.frame_number)
            })
            .collect();
        assert_eq!(numbers, [1, 2, 6]);
    }
}
