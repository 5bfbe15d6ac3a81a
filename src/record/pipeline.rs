//! The recording pipeline: per-camera capture thread -> bounded queue -> shared pool of
//! compression workers -> per-camera writer thread that writes in frame order.
//!
//! Capture never waits on compression or disk: when a camera's queue is full the frame is
//! dropped and a gap record says so (unless `lossless` is set, for conversions, where capture
//! waits instead). Gaps in the source's own frame numbers become gap records too. Colour goes
//! to a [`ColorSink`] (FFmpeg) from the capture thread, which records each frame's index in the
//! video; IMU samples are batched. One stop flag ends capture; the queues then drain, the
//! writers close their files with full indexes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Select, Sender, TrySendError};

use super::stats::CameraStats;
use crate::codec::{CodecId, DepthCodec};
use crate::container::format::{record_type, ts_domain, NO_STREAM, PROP_DEPTH_MAX_ERROR};
use crate::container::record::encode_imu_batch;
use crate::container::{
    ColorFrameEntry, Event, FileHeader, Gap, GapReason, ImuSample, RecordHeader, StreamKind,
    VideoSegment, Writer, WriterOptions,
};
use crate::source::{stream_id, Sample, Source, SourceError, SourceInfo, Timing};

/// When to start a new file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SegmentLimit {
    Duration(Duration),
    Bytes(u64),
}

impl std::str::FromStr for SegmentLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let v: f64 = num
            .parse()
            .map_err(|_| format!("'{s}' is not a size (5GB) or a duration (10m)"))?;
        if !(v > 0.0 && v.is_finite()) {
            return Err(format!("'{s}' must be positive"));
        }
        let bytes = |m: f64| Ok(SegmentLimit::Bytes((v * m) as u64));
        match unit.to_ascii_lowercase().as_str() {
            "s" => Ok(SegmentLimit::Duration(Duration::from_secs_f64(v))),
            "m" | "min" => Ok(SegmentLimit::Duration(Duration::from_secs_f64(v * 60.0))),
            "h" => Ok(SegmentLimit::Duration(Duration::from_secs_f64(v * 3600.0))),
            "b" => bytes(1.0),
            "kb" => bytes(1e3),
            "mb" => bytes(1e6),
            "gb" => bytes(1e9),
            "tb" => bytes(1e12),
            "kib" => bytes(1024.0),
            "mib" => bytes(1024.0 * 1024.0),
            "gib" => bytes(1024.0 * 1024.0 * 1024.0),
            _ => Err(format!(
                "'{s}': unit must be s, m, h (duration) or B, KB, MB, GB, TB, KiB, MiB, GiB (size)"
            )),
        }
    }
}

/// Parses a duration like `10s`, `5m`, `2h`, `1h30m` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let mut total = 0.0;
    let mut num = String::new();
    let bad = || format!("'{s}' is not a duration (e.g. 10s, 5m, 2h, 1h30m)");
    for c in s.trim().chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let v: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += v * match c {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86400.0,
            _ => return Err(bad()),
        };
    }
    if !num.is_empty() {
        total += num.parse::<f64>().map_err(|_| bad())?;
    }
    if !(total > 0.0 && total.is_finite()) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Result of offering a colour frame to the encoder.
#[derive(Debug)]
pub enum ColorPush {
    /// Accepted; `index` is its position in the current video file.
    Queued { index: u64 },
    /// The encoder's queue was full: the frame is lost (a gap is recorded).
    Dropped,
    /// The encoder died; the message says why. The frame is lost.
    Dead(String),
}

/// A colour encoder for one camera (FFmpeg in production).
pub trait ColorSink: Send {
    fn push(&mut self, frame: Vec<u8>) -> ColorPush;
    /// Finishes the video. Returns frames written.
    fn finish(self: Box<Self>) -> Result<u64, String>;
}

/// Opens colour video segment `segment` for a camera: returns the sink, the video's file
/// name (relative to the session folder) and the encoder name.
pub type ColorSinkFactory = Arc<
    dyn Fn(&str, &SourceInfo, &Path, u32) -> Result<(Box<dyn ColorSink>, String, String), String>
        + Send
        + Sync,
>;

#[derive(Clone)]
pub struct PipelineConfig {
    pub session_dir: PathBuf,
    pub depth_codec: DepthCodec,
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

enum ToWriter {
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

struct Job {
    seq: u64,
    header: RecordHeader,
    data: Vec<u16>,
    width: u32,
    height: u32,
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

fn spawn<F: FnOnce() + Send + 'static>(name: String, f: F) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(f)
}

fn event_header(stream: u8) -> RecordHeader {
    let mut h = RecordHeader::bare(record_type::EVENT);
    h.stream = stream;
    h.host_ts_us = crate::container::now_utc_us();
    h
}

fn gap_record(
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
/// the run ends, after [`GapRun::MAX`] frames (so a crash loses little of it), and at stop.
struct GapRun {
    stream: u8,
    run: Option<(Timing, u64, u64, GapReason, &'static str)>,
}

impl GapRun {
    const MAX: u64 = 30;

    fn new(stream: u8) -> Self {
        Self { stream, run: None }
    }

    /// Adds dropped frame `n`; returns a finished run to write, if any.
    fn add(&mut self, t: &Timing, reason: GapReason, detail: &'static str) -> Option<ToWriter> {
        let n = t.frame_number;
        let mut out = None;
        match &mut self.run {
            Some((_, first, last, r, _))
                if *r == reason && *last + 1 == n && n - *first < Self::MAX =>
            {
                *last = n;
                return None;
            }
            Some(_) => out = self.flush(),
            None => {}
        }
        self.run = Some((*t, n, n, reason, detail));
        out
    }

    fn flush(&mut self) -> Option<ToWriter> {
        self.run.take().map(|(t, first, last, reason, detail)| {
            gap_record(self.stream, &t, first, last, reason, detail)
        })
    }
}

fn event_record(stream: u8, kind: &str, message: String) -> ToWriter {
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
        let mut names: Vec<String> = Vec::new();
        for (cam, source) in sources.into_iter().enumerate() {
            let info = source.info().clone();
            // Unique, file-system-safe camera names.
            let mut name: String = info
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if names.contains(&name) {
                name = format!("{name}_{cam}");
            }
            names.push(name.clone());
            let stats = Arc::new(CameraStats::default());
            stats
                .queue_capacity
                .store(cfg.queue_frames as u64, Ordering::Relaxed);
            let (job_tx, job_rx) = bounded::<Job>(cfg.queue_frames.max(1));
            // Large enough for a few seconds of colour entries and IMU batches; the
            // compression pool blocks on it, which backs up into the capture queue.
            let (w_tx, w_rx) = bounded::<ToWriter>(4096);
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
            let (rxs, txs, codec) = (job_rxs.clone(), writer_txs.clone(), cfg.depth_codec);
            workers.push(spawn(format!("compress-{i}"), move || {
                compress_loop(codec, rxs, txs)
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

/// Per-camera colour state in the capture thread.
struct ColorState {
    factory: ColorSinkFactory,
    sink: Option<Box<dyn ColorSink>>,
    segment: u32,
    dead: bool,
}

impl ColorState {
    /// Opens the next video segment and announces it to the writer.
    fn open(
        &mut self,
        name: &str,
        info: &SourceInfo,
        dir: &Path,
        w_tx: &Sender<ToWriter>,
        videos: &Mutex<Vec<String>>,
    ) -> Result<(), String> {
        let (sink, file, codec) = (self.factory)(name, info, dir, self.segment)?;
        self.sink = Some(sink);
        videos
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(file.clone());
        let seg = VideoSegment {
            segment: self.segment,
            file_name: file,
            codec,
        };
        let mut h = RecordHeader::bare(record_type::VIDEO_SEGMENT);
        h.stream = stream_id::COLOR;
        h.frame_number = self.segment as u64;
        h.host_ts_us = crate::container::now_utc_us();
        let _ = w_tx.send(ToWriter::Record {
            header: h,
            payload: seg.encode().map_err(|e| e.to_string())?,
        });
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn capture_loop(
    name: &str,
    mut source: Box<dyn Source>,
    cfg: &PipelineConfig,
    stats: &CameraStats,
    stop: &AtomicBool,
    job_tx: Sender<Job>,
    w_tx: Sender<ToWriter>,
    videos: &Mutex<Vec<String>>,
) {
    let info = source.info().clone();
    let depth = info.stream(StreamKind::Depth).cloned();
    let has_color = info.stream(StreamKind::Color).is_some();
    let mut color = match (&cfg.color, has_color) {
        (Some(factory), true) => Some(ColorState {
            factory: factory.clone(),
            sink: None,
            segment: 0,
            dead: false,
        }),
        _ => None,
    };
    // Records from the capture thread must not wait on the writer: a full writer channel
    // (disk stalled for seconds) loses the record, which is counted.
    let send = |m: ToWriter| {
        if let Err(TrySendError::Full(m)) = w_tx.try_send(m) {
            if cfg.lossless {
                let _ = w_tx.send(m);
            }
        }
    };
    if let Some(c) = color.as_mut() {
        if let Err(e) = c.open(name, &info, &cfg.session_dir, &w_tx, videos) {
            send(event_record(stream_id::COLOR, "color_failed", e.clone()));
            stats.set_error(format!("colour: {e}"));
            c.dead = true;
        }
    }
    let mut seq = 0u64;
    let mut depth_gaps = GapRun::new(stream_id::DEPTH);
    let mut color_gaps = GapRun::new(stream_id::COLOR);
    let mut last_depth: Option<u64> = None;
    let mut last_color: Option<u64> = None;
    let mut imu: [Vec<ImuSample>; 2] = [Vec::new(), Vec::new()];
    let flush_imu = |batch: &mut Vec<ImuSample>, stream: u8| {
        if batch.is_empty() {
            return;
        }
        let first = batch[0];
        let header = RecordHeader {
            record_type: record_type::IMU_BATCH,
            stream,
            codec: CodecId::NONE,
            ts_domain: ts_domain::HARDWARE_CLOCK,
            flags: 0,
            frame_number: first.frame_number,
            device_ts_ms: first.device_ts_ms,
            host_ts_us: first.host_ts_us,
        };
        send(ToWriter::Record {
            header,
            payload: encode_imu_batch(batch),
        });
        batch.clear();
    };
    // Pending gap runs and IMU batches go to the writer (before an outage, at the end).
    let flush_pending =
        |depth_gaps: &mut GapRun, color_gaps: &mut GapRun, imu: &mut [Vec<ImuSample>; 2]| {
            for m in [depth_gaps.flush(), color_gaps.flush()]
                .into_iter()
                .flatten()
            {
                send(m);
            }
            flush_imu(&mut imu[0], stream_id::GYRO);
            flush_imu(&mut imu[1], stream_id::ACCEL);
        };
    while !stop.load(Ordering::Relaxed) {
        let sample = match source.next() {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) => {
                let msg = crate::container::error::error_chain(&e);
                let disconnected = matches!(e, SourceError::Disconnected(_));
                let retry = match cfg.reconnect {
                    Some(every) if disconnected && source.can_reconnect() => every,
                    _ => {
                        send(event_record(NO_STREAM, "source_error", msg.clone()));
                        stats.set_error(msg);
                        break;
                    }
                };
                // The camera is gone: everything so far is made durable, then it is reopened
                // until it is back or the recording stops; the outage becomes a gap.
                flush_pending(&mut depth_gaps, &mut color_gaps, &mut imu);
                send(event_record(NO_STREAM, "camera_disconnected", msg.clone()));
                send(ToWriter::Flush);
                CameraStats::add(&stats.disconnects, 1);
                stats.disconnected.store(true, Ordering::Relaxed);
                let since = Instant::now();
                let since_us = crate::container::now_utc_us();
                let back = wait_for_reconnect(source.as_mut(), retry, stop);
                let away = since.elapsed();
                CameraStats::add(&stats.outage_ms, away.as_millis() as u64);
                let detail = match &back {
                    Ok(true) => format!("camera disconnected for {:.1} s", away.as_secs_f64()),
                    _ => format!(
                        "camera disconnected; not back after {:.1} s when capture ended",
                        away.as_secs_f64()
                    ),
                };
                for (stream, last) in [
                    (stream_id::DEPTH, last_depth),
                    (stream_id::COLOR, last_color),
                ] {
                    let Some(d) = info.streams.iter().find(|s| s.id == stream) else {
                        continue;
                    };
                    // Frames the camera would have delivered while away (its frame numbers
                    // restart after a reconnect, so this is from the stream's rate).
                    let missed = (away.as_secs_f64() * d.fps).round().max(1.0) as u64;
                    let first = last.map_or(0, |l| l + 1);
                    let t = Timing {
                        frame_number: first,
                        device_ts_ms: 0.0,
                        ts_domain: ts_domain::NONE,
                        host_ts_us: since_us,
                    };
                    send(gap_record(
                        stream,
                        &t,
                        first,
                        first + missed - 1,
                        GapReason::DeviceDisconnected,
                        &detail,
                    ));
                }
                match back {
                    Ok(true) => {}
                    Ok(false) => {
                        stats.set_error(format!("{msg}; not back when the recording stopped"));
                        break;
                    }
                    Err(e) => {
                        let why = crate::container::error::error_chain(&e);
                        send(event_record(NO_STREAM, "reconnect_failed", why.clone()));
                        stats.set_error(format!("{msg}; reconnecting failed: {why}"));
                        break;
                    }
                }
                stats.disconnected.store(false, Ordering::Relaxed);
                CameraStats::add(&stats.reconnects, 1);
                send(event_record(NO_STREAM, "camera_reconnected", detail));
                last_depth = None;
                last_color = None;
                continue;
            }
        };
        match sample {
            Sample::Depth(f) => {
                let Some(d) = &depth else { continue };
                CameraStats::add(&stats.depth_captured, 1);
                let t = f.timing;
                let n = t.frame_number;
                match last_depth {
                    Some(l) if n > l + 1 => {
                        CameraStats::add(&stats.depth_source_skipped, n - l - 1);
                        send(gap_record(
                            stream_id::DEPTH,
                            &t,
                            l + 1,
                            n - 1,
                            GapReason::SourceSkipped,
                            "frame numbers skipped by the source",
                        ));
                    }
                    Some(l) if n <= l => send(event_record(
                        stream_id::DEPTH,
                        "frame_numbers_restarted",
                        format!("depth frame number went from {l} to {n}"),
                    )),
                    _ => {}
                }
                last_depth = Some(n);
                if f.data.len() != (d.width * d.height) as usize {
                    send(gap_record(
                        stream_id::DEPTH,
                        &t,
                        n,
                        n,
                        GapReason::Other(100),
                        "frame of the wrong size",
                    ));
                    CameraStats::add(&stats.depth_dropped, 1);
                    continue;
                }
                let header = RecordHeader {
                    record_type: record_type::DEPTH_FRAME,
                    stream: stream_id::DEPTH,
                    codec: cfg.depth_codec.id(),
                    ts_domain: t.ts_domain,
                    flags: 0,
                    frame_number: n,
                    device_ts_ms: t.device_ts_ms,
                    host_ts_us: t.host_ts_us,
                };
                let job = Job {
                    seq,
                    header,
                    data: f.data,
                    width: d.width,
                    height: d.height,
                };
                let sent = if cfg.lossless {
                    job_tx.send(job).is_ok()
                } else {
                    match job_tx.try_send(job) {
                        Ok(()) => true,
                        Err(TrySendError::Full(_)) => {
                            CameraStats::add(&stats.depth_dropped, 1);
                            if let Some(m) =
                                depth_gaps.add(&t, GapReason::QueueFull, "compression queue full")
                            {
                                send(m);
                            }
                            false
                        }
                        Err(TrySendError::Disconnected(_)) => false,
                    }
                };
                if sent {
                    seq += 1;
                    if let Some(m) = depth_gaps.flush() {
                        send(m);
                    }
                }
                stats.set_queue_len(job_tx.len() as u64);
            }
            Sample::Color(f) => {
                CameraStats::add(&stats.color_captured, 1);
                let t = f.timing;
                let n = t.frame_number;
                if let Some(l) = last_color {
                    if n > l + 1 {
                        CameraStats::add(&stats.color_source_skipped, n - l - 1);
                        send(gap_record(
                            stream_id::COLOR,
                            &t,
                            l + 1,
                            n - 1,
                            GapReason::SourceSkipped,
                            "frame numbers skipped by the source",
                        ));
                    }
                }
                last_color = Some(n);
                let Some(c) = color.as_mut() else { continue };
                if c.dead {
                    CameraStats::add(&stats.color_dropped, 1);
                    continue;
                }
                let Some(sink) = c.sink.as_mut() else {
                    continue;
                };
                let pushed = if cfg.lossless {
                    // Conversions wait for the encoder instead of dropping.
                    loop {
                        match sink.push(f.data.clone()) {
                            ColorPush::Dropped => std::thread::sleep(Duration::from_millis(2)),
                            other => break other,
                        }
                    }
                } else {
                    sink.push(f.data)
                };
                match pushed {
                    ColorPush::Queued { index } => {
                        CameraStats::add(&stats.color_queued, 1);
                        if let Some(m) = color_gaps.flush() {
                            send(m);
                        }
                        let header = RecordHeader {
                            record_type: record_type::COLOR_FRAME,
                            stream: stream_id::COLOR,
                            codec: CodecId::NONE,
                            ts_domain: t.ts_domain,
                            flags: 0,
                            frame_number: n,
                            device_ts_ms: t.device_ts_ms,
                            host_ts_us: t.host_ts_us,
                        };
                        let entry = ColorFrameEntry {
                            segment: c.segment,
                            index_in_video: index,
                        };
                        send(ToWriter::Record {
                            header,
                            payload: entry.encode(),
                        });
                    }
                    ColorPush::Dropped => {
                        CameraStats::add(&stats.color_dropped, 1);
                        if let Some(m) =
                            color_gaps.add(&t, GapReason::QueueFull, "colour encoder queue full")
                        {
                            send(m);
                        }
                    }
                    ColorPush::Dead(why) => {
                        CameraStats::add(&stats.color_dropped, 1);
                        send(gap_record(
                            stream_id::COLOR,
                            &t,
                            n,
                            n,
                            GapReason::EncoderError,
                            &why,
                        ));
                        send(event_record(stream_id::COLOR, "color_encoder_died", why));
                        // Restart colour in a new video file; depth carries on regardless.
                        if let Some(old) = c.sink.take() {
                            let _ = old.finish();
                        }
                        c.segment += 1;
                        CameraStats::add(&stats.color_restarts, 1);
                        if let Err(e) = c.open(name, &info, &cfg.session_dir, &w_tx, videos) {
                            send(event_record(stream_id::COLOR, "color_failed", e.clone()));
                            stats.set_error(format!("colour: {e}"));
                            c.dead = true;
                        }
                    }
                }
            }
            Sample::Imu { kind, sample } => {
                CameraStats::add(&stats.imu_samples, 1);
                let (k, stream) = match kind {
                    StreamKind::Gyro => (0, stream_id::GYRO),
                    _ => (1, stream_id::ACCEL),
                };
                imu[k].push(sample);
                if imu[k].len() >= 64 || sample.device_ts_ms - imu[k][0].device_ts_ms >= 100.0 {
                    flush_imu(&mut imu[k], stream);
                }
            }
        }
    }
    flush_pending(&mut depth_gaps, &mut color_gaps, &mut imu);
    if let Some(sink) = color.and_then(|c| c.sink) {
        if let Err(e) = sink.finish() {
            send(event_record(
                stream_id::COLOR,
                "color_finish_failed",
                e.clone(),
            ));
            stats.set_error(format!("colour: {e}"));
        }
    }
    drop(job_tx);
    let _ = w_tx.send(ToWriter::End { jobs: seq });
    stats.set_queue_len(0);
}

/// Calls `source.reconnect()` every `every` until it is back (`Ok(true)`), the recording
/// stops (`Ok(false)`) or it gives up (`Err`).
fn wait_for_reconnect(
    source: &mut dyn Source,
    every: Duration,
    stop: &AtomicBool,
) -> Result<bool, SourceError> {
    loop {
        let until = Instant::now() + every;
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20).min(every));
        }
        if source.reconnect()? {
            return Ok(true);
        }
    }
}

fn compress_loop(codec: DepthCodec, rxs: Vec<Receiver<Job>>, txs: Vec<Sender<ToWriter>>) {
    let mut live: Vec<usize> = (0..rxs.len()).collect();
    let mut payload_cap = 0;
    while !live.is_empty() {
        let mut sel = Select::new();
        for &i in &live {
            sel.recv(&rxs[i]);
        }
        let op = sel.select();
        let k = op.index();
        let cam = live[k];
        match op.recv(&rxs[cam]) {
            Ok(job) => {
                let mut payload = Vec::with_capacity(payload_cap);
                let msg = match codec.encode(&job.data, job.width, job.height, &mut payload) {
                    Ok(()) => {
                        payload_cap = payload_cap.max(payload.len());
                        ToWriter::Depth {
                            seq: job.seq,
                            header: job.header,
                            raw_bytes: job.data.len() as u64 * 2,
                            payload,
                        }
                    }
                    Err(e) => ToWriter::EncodeFailed {
                        seq: job.seq,
                        header: job.header,
                        error: e.to_string(),
                    },
                };
                let _ = txs[cam].send(msg);
            }
            Err(_) => {
                live.remove(k);
            }
        }
    }
}

/// File name of segment `k` of a camera.
fn segment_path(dir: &Path, name: &str, segmented: bool, k: u64) -> PathBuf {
    if segmented {
        dir.join(format!("{name}.{k:03}.rsrec"))
    } else {
        dir.join(format!("{name}.rsrec"))
    }
}

struct SegmentWriter<'a> {
    cfg: &'a PipelineConfig,
    name: &'a str,
    info: &'a SourceInfo,
    writer: Option<Writer>,
    index: u64,
    opened: Instant,
    /// The current video segment record, repeated at the start of each file.
    video_segment: Option<(RecordHeader, Vec<u8>)>,
    /// Bytes of the files already finished.
    closed_bytes: u64,
}

impl SegmentWriter<'_> {
    fn open(&mut self, files: &Mutex<Vec<PathBuf>>) -> crate::container::Result<()> {
        let path = segment_path(
            &self.cfg.session_dir,
            self.name,
            self.cfg.segment.is_some(),
            self.index,
        );
        let mut streams = self.info.streams.clone();
        let bound = self.cfg.depth_codec.bound();
        for st in streams.iter_mut().filter(|s| s.kind == StreamKind::Depth) {
            // §3.2: a lossy stream says so, with its bound, so readers know it is not exact.
            if !bound.is_lossless() {
                st.properties
                    .push((PROP_DEPTH_MAX_ERROR.into(), bound.to_string()));
            }
        }
        let mut header = FileHeader::new(self.info.device.clone(), streams);
        let mut meta = self.cfg.metadata.clone();
        if let Some(m) = meta.as_object_mut() {
            m.insert("camera".into(), self.name.into());
            m.insert("segment".into(), self.index.into());
        }
        header.metadata_json = meta.to_string();
        let mut w = Writer::create(&path, &header, self.cfg.writer.clone())?;
        if let Some((h, p)) = &self.video_segment {
            w.write_record(h, p)?;
        }
        files.lock().unwrap_or_else(|p| p.into_inner()).push(path);
        self.writer = Some(w);
        self.opened = Instant::now();
        Ok(())
    }

    fn write(
        &mut self,
        h: &RecordHeader,
        p: &[u8],
        stats: &CameraStats,
        files: &Mutex<Vec<PathBuf>>,
    ) -> crate::container::Result<()> {
        if h.record_type == record_type::VIDEO_SEGMENT {
            self.video_segment = Some((*h, p.to_vec()));
        }
        let rotate = match (self.cfg.segment, &self.writer) {
            (Some(SegmentLimit::Duration(d)), Some(_)) => self.opened.elapsed() >= d,
            (Some(SegmentLimit::Bytes(b)), Some(w)) => w.bytes_written() + p.len() as u64 + 48 > b,
            _ => false,
        };
        // A file always gets at least one record, so an oversized record cannot produce a
        // string of empty files.
        let has_data = self
            .writer
            .as_ref()
            .is_some_and(|w| w.records_written() > 0);
        if rotate && has_data && h.record_type != record_type::VIDEO_SEGMENT {
            if let Some(w) = self.writer.take() {
                self.closed_bytes += w.finish()?.bytes;
            }
            self.index += 1;
            CameraStats::add(&stats.segments, 1);
            self.open(files)?;
        }
        let w = self.writer.as_mut().expect("a writer is open");
        w.write_record(h, p)?;
        Ok(())
    }
}

fn write_loop(
    cfg: &PipelineConfig,
    name: &str,
    info: &SourceInfo,
    stats: &CameraStats,
    files: &Mutex<Vec<PathBuf>>,
    stop: &AtomicBool,
    rx: Receiver<ToWriter>,
) {
    let mut sw = SegmentWriter {
        cfg,
        name,
        info,
        writer: None,
        index: 0,
        opened: Instant::now(),
        video_segment: None,
        closed_bytes: 0,
    };
    let mut failed: Option<String> = None;
    if let Err(e) = sw.open(files) {
        failed = Some(crate::container::error::error_chain(&e));
    } else {
        CameraStats::add(&stats.segments, 1);
    }
    let mut pending: BTreeMap<u64, ToWriter> = BTreeMap::new();
    let mut next_seq = 0u64;
    let mut expected: Option<u64> = None;
    loop {
        if expected.is_some_and(|e| next_seq >= e) {
            break;
        }
        let msg = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                if failed.is_none() {
                    if let Some(w) = sw.writer.as_mut() {
                        if let Err(e) = w.tick() {
                            failed = Some(crate::container::error::error_chain(&e));
                        }
                    }
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut ready = Vec::new();
        match msg {
            ToWriter::End { jobs } => expected = Some(jobs),
            m @ (ToWriter::Depth { .. } | ToWriter::EncodeFailed { .. }) => {
                let seq = match &m {
                    ToWriter::Depth { seq, .. } | ToWriter::EncodeFailed { seq, .. } => *seq,
                    _ => unreachable!(),
                };
                pending.insert(seq, m);
                while let Some(m) = pending.remove(&next_seq) {
                    ready.push(m);
                    next_seq += 1;
                }
            }
            m @ (ToWriter::Record { .. } | ToWriter::Flush) => ready.push(m),
        }
        for m in ready {
            if failed.is_some() {
                if matches!(m, ToWriter::Depth { .. }) {
                    CameraStats::add(&stats.depth_dropped, 1);
                }
                continue;
            }
            let r = match m {
                ToWriter::Depth {
                    header,
                    raw_bytes,
                    payload,
                    ..
                } => sw.write(&header, &payload, stats, files).map(|_| {
                    CameraStats::add(&stats.depth_written, 1);
                    CameraStats::add(&stats.depth_raw_bytes, raw_bytes);
                    CameraStats::add(&stats.depth_stored_bytes, payload.len() as u64);
                }),
                ToWriter::EncodeFailed { header, error, .. } => {
                    CameraStats::add(&stats.depth_dropped, 1);
                    let t = Timing {
                        frame_number: header.frame_number,
                        device_ts_ms: header.device_ts_ms,
                        ts_domain: header.ts_domain,
                        host_ts_us: header.host_ts_us,
                    };
                    match gap_record(
                        stream_id::DEPTH,
                        &t,
                        t.frame_number,
                        t.frame_number,
                        GapReason::EncoderError,
                        &error,
                    ) {
                        ToWriter::Record { header, payload } => {
                            sw.write(&header, &payload, stats, files)
                        }
                        _ => Ok(()),
                    }
                }
                ToWriter::Record { header, payload } => sw.write(&header, &payload, stats, files),
                ToWriter::Flush => match sw.writer.as_mut() {
                    Some(w) => w.flush(),
                    None => Ok(()),
                },
                ToWriter::End { .. } => Ok(()),
            };
            if let Err(e) = r {
                failed = Some(crate::container::error::error_chain(&e));
            }
        }
        if let Some(w) = &sw.writer {
            stats
                .file_bytes
                .store(sw.closed_bytes + w.bytes_written(), Ordering::Relaxed);
        }
    }
    if let Some(e) = failed {
        stats.set_error(format!("writing {name}: {e}"));
        // A writer that cannot write stops the recording cleanly everywhere.
        stop.store(true, Ordering::SeqCst);
        // Keep draining so that the compression pool never blocks on us.
        for m in rx.iter() {
            if matches!(m, ToWriter::Depth { .. }) {
                CameraStats::add(&stats.depth_dropped, 1);
            }
        }
    } else if let Some(w) = sw.writer.take() {
        match w.finish() {
            Ok(f) => stats
                .file_bytes
                .store(sw.closed_bytes + f.bytes, Ordering::Relaxed),
            Err(e) => {
                stats.set_error(format!(
                    "closing {name}: {}",
                    crate::container::error::error_chain(&e)
                ));
                stop.store(true, Ordering::SeqCst);
            }
        }
    }
    stats.finished.store(true, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::Reader;
    use crate::source::sim::{Pacing, SimConfig, SimSource};

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

    /// Records `src`; returns its outcome, the frame numbers in its file, its gaps and the
    /// kinds of its events.
    fn run(src: Unplugged, reconnect: Option<Duration>, stop_after: Duration) -> Recorded {
        let dir = tempfile::tempdir().unwrap();
        let cfg = PipelineConfig {
            session_dir: dir.path().to_path_buf(),
            depth_codec: DepthCodec::Lz4Planes,
            queue_frames: 8,
            workers: 1,
            writer: WriterOptions::default(),
            segment: None,
            lossless: true,
            color: None,
            metadata: serde_json::json!({}),
            reconnect,
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

    #[test]
    fn segment_limits_parse() {
        assert_eq!(
            "10m".parse(),
            Ok(SegmentLimit::Duration(Duration::from_secs(600)))
        );
        assert_eq!(
            "1.5h".parse(),
            Ok(SegmentLimit::Duration(Duration::from_secs(5400)))
        );
        assert_eq!("5GB".parse(), Ok(SegmentLimit::Bytes(5_000_000_000)));
        assert_eq!("2GiB".parse(), Ok(SegmentLimit::Bytes(2 << 30)));
        assert_eq!("100B".parse(), Ok(SegmentLimit::Bytes(100)));
        assert!("10".parse::<SegmentLimit>().is_err());
        assert!("0m".parse::<SegmentLimit>().is_err());
        assert!("5XB".parse::<SegmentLimit>().is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
