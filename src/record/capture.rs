//! The capture thread of one camera: samples from its source; depth into the bounded
//! compression queue (dropped with a gap record when it is full, unless the pipeline is
//! lossless), colour to the camera's [`super::ColorSink`], IMU batched, gaps in the source's
//! own frame numbers recorded, disconnects turned into outages and reconnects.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use super::outbox::Outbox;

use super::numbering::{Numbering, Step};
use super::stats::CameraStats;
use crate::codec::CodecId;
use crate::container::format::{record_type, ts_domain, NO_STREAM};
use crate::container::record::encode_imu_batch;
use crate::container::{
    ColorFrameEntry, FrameMetadata, GapReason, ImuSample, RecordHeader, StreamKind, VideoSegment,
};
use crate::source::{stream_id, Sample, Source, SourceError, SourceInfo, StreamId, Timing};

use super::pipeline::*;

/// Colour frames the encoder may drop within [`STEP_DOWN_WINDOW`] before colour goes on one
/// preset faster in a new video: half a second of frames at 30 fps, so that a short burst of
/// load costs a few frames, not a restart.
const STEP_DOWN_DROPS: u32 = 15;
/// See [`STEP_DOWN_DROPS`].
const STEP_DOWN_WINDOW: Duration = Duration::from_secs(3);
/// A new video's first seconds do not count towards a step-down: FFmpeg is starting, and the
/// previous encoder is still finishing its queue on the same cores.
#[cfg(not(test))]
const STEP_DOWN_SETTLE: Duration = Duration::from_secs(3);
/// Unit tests settle quicker (the rule is the same).
#[cfg(test)]
const STEP_DOWN_SETTLE: Duration = Duration::from_millis(100);

/// Per-camera colour state in the capture thread.
pub(super) struct ColorState {
    factory: ColorSinkFactory,
    sink: Option<Box<dyn ColorSink>>,
    segment: u32,
    dead: bool,
    /// Presets stepped down so far, whether one more step is possible, the current preset.
    faster: u32,
    can_go_faster: bool,
    preset: Option<String>,
    encoder: String,
    /// When the current video was opened, and the encoder's drops in the current window.
    opened: Instant,
    window: (Instant, u32),
    /// Encoders of earlier videos, finishing their queues on their own threads (so that the
    /// capture thread never waits for FFmpeg), with their segment numbers.
    retired: Vec<(u32, std::thread::JoinHandle<Result<u64, String>>)>,
}

impl ColorState {
    fn new(factory: ColorSinkFactory) -> Self {
        ColorState {
            factory,
            sink: None,
            segment: 0,
            dead: false,
            faster: 0,
            can_go_faster: false,
            preset: None,
            encoder: String::new(),
            opened: Instant::now(),
            window: (Instant::now(), 0),
            retired: Vec::new(),
        }
    }

    /// Opens the next video segment and announces it to the writer.
    fn open(
        &mut self,
        name: &str,
        info: &SourceInfo,
        dir: &Path,
        out: &mut Outbox<'_>,
        videos: &Mutex<Vec<String>>,
        stats: &CameraStats,
    ) -> Result<(), String> {
        let opened = (self.factory)(&ColorRequest {
            camera: name,
            info,
            dir,
            segment: self.segment,
            faster: self.faster,
        })
        .map_err(|e| crate::error::chain(&*e))?;
        self.sink = Some(opened.sink);
        self.can_go_faster = opened.can_go_faster;
        self.preset = opened.preset;
        self.encoder = opened.encoder.clone();
        self.opened = Instant::now();
        self.window = (self.opened, 0);
        *stats.color_preset.lock().unwrap_or_else(|p| p.into_inner()) = self.preset.clone();
        videos
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(opened.file.clone());
        let seg = VideoSegment {
            segment: self.segment,
            file_name: opened.file,
            codec: opened.encoder,
        };
        let mut h = RecordHeader::bare(record_type::VIDEO_SEGMENT);
        h.stream = stream_id::COLOR;
        h.frame_number = self.segment as u64;
        h.host_ts_us = crate::container::now_utc_us();
        out.push(ToWriter::Record {
            header: h,
            payload: seg.encode().map_err(|e| e.to_string())?,
        });
        Ok(())
    }

    /// Counts a frame the encoder dropped; true when the drops call for a faster preset:
    /// [`STEP_DOWN_DROPS`] within [`STEP_DOWN_WINDOW`], after the video's first
    /// [`STEP_DOWN_SETTLE`], once the encoder of the video before has finished its queue,
    /// and a faster preset exists. (An encoder still finishing takes CPU from the new one,
    /// so its drops do not yet say what the new preset can do; and at most two encoders and
    /// their queues exist per camera.)
    fn drop_calls_for_step_down(&mut self) -> bool {
        let now = Instant::now();
        if !self.can_go_faster || now.duration_since(self.opened) < STEP_DOWN_SETTLE {
            return false;
        }
        if self.retired.iter().any(|(_, h)| !h.is_finished()) {
            self.window = (now, 0);
            return false;
        }
        if now.duration_since(self.window.0) > STEP_DOWN_WINDOW {
            self.window = (now, 0);
        }
        self.window.1 += 1;
        self.window.1 >= STEP_DOWN_DROPS
    }

    /// Ends the current video without waiting for it: its encoder finishes its queue on a
    /// thread of its own, joined by [`ColorState::finish_retired`].
    fn retire(&mut self, name: &str, out: &mut Outbox<'_>) {
        let Some(old) = self.sink.take() else { return };
        let segment = self.segment;
        let spawned = std::thread::Builder::new()
            .name(format!("rsrec-color-close-{name}-{segment}"))
            .spawn(move || old.finish().map_err(|e| crate::error::chain(&*e)));
        match spawned {
            Ok(h) => self.retired.push((segment, h)),
            // The encoder was dropped with the closure, which closes its file as far as it
            // got; said, not hidden.
            Err(e) => out.push(event_record(
                stream_id::COLOR,
                "color_finish_failed",
                format!("colour video {segment}: no thread to finish it ({e})"),
            )),
        }
    }

    /// Waits for the encoders of earlier videos; each failure is an event and the camera's
    /// error.
    fn finish_retired(&mut self, out: &mut Outbox<'_>, stats: &CameraStats) {
        for (segment, h) in self.retired.drain(..) {
            let result = h
                .join()
                .unwrap_or_else(|_| Err("its closing thread panicked".into()));
            if let Err(e) = result {
                let e = format!("colour video {segment}: {e}");
                out.push(event_record(
                    stream_id::COLOR,
                    "color_finish_failed",
                    e.clone(),
                ));
                stats.set_error(format!("colour: {e}"));
            }
        }
    }
}

/// A frame of `len` samples that is not `width * height` of its stream `d`: a bad-frame gap
/// record, counted; true when it was one (the frame is then not recorded).
fn wrong_size(
    out: &mut Outbox<'_>,
    stream: u8,
    t: &Timing,
    len: usize,
    d: &crate::container::StreamDescriptor,
    stats: &CameraStats,
) -> bool {
    if len == (d.width as usize) * (d.height as usize) {
        return false;
    }
    let n = t.frame_number;
    out.push(gap_record(
        stream,
        t,
        n,
        n,
        GapReason::BadFrame,
        "frame of the wrong size",
    ));
    CameraStats::add(&stats.bad_frames, 1);
    true
}

/// The record header of a depth or infrared frame captured at `t`, with the codec it is
/// expected to get (the worker sets the one it used).
fn frame_header(
    record_type: u8,
    stream: u8,
    codec: crate::codec::DepthCodec,
    t: &Timing,
) -> RecordHeader {
    RecordHeader {
        record_type,
        stream,
        codec: codec.id(),
        ts_domain: t.ts_domain,
        flags: 0,
        frame_number: t.frame_number,
        device_ts_ms: t.device_ts_ms,
        host_ts_us: t.host_ts_us,
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn capture_loop(
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
        (Some(factory), true) => Some(ColorState::new(factory.clone())),
        _ => None,
    };
    let mut out = Outbox::new(w_tx, cfg.lossless, stats);
    if let Some(c) = color.as_mut() {
        if let Err(e) = c.open(name, &info, &cfg.session_dir, &mut out, videos, stats) {
            out.push(event_record(stream_id::COLOR, "color_failed", e.clone()));
            stats.set_error(format!("colour: {e}"));
            c.dead = true;
        }
    }
    let mut seq = 0u64;
    let mut depth_gaps = GapRun::new(stream_id::DEPTH);
    let mut color_gaps = GapRun::new(stream_id::COLOR);
    let mut ir_gaps = [
        GapRun::new(stream_id::IR_LEFT),
        GapRun::new(stream_id::IR_RIGHT),
    ];
    // Infrared frames (§5.9) take a compression-queue slot only while the queue is at most
    // half full: depth first, the other half is depth's alone.
    let ir_limit = (cfg.queue_frames / 2).max(1);
    let mut imu_gaps = [GapRun::new(stream_id::GYRO), GapRun::new(stream_id::ACCEL)];
    // Each stream's frame numbers, with what the source had lost of it when recording began.
    let numbering = |s: StreamId| Numbering::new(source.losses(s));
    let mut numbers = StreamId::ALL.map(numbering);
    // The newest colour frame the encoder dropped, while no later one was queued or lost
    // another way: the encoder holds it for the end of capture.
    let mut last_color_drop: Option<Timing> = None;
    let mut imu: [ImuBatch; 2] = Default::default();
    while !stop.load(Ordering::Relaxed) {
        out.pump();
        let sample = match source.next() {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) => {
                let msg = crate::error::chain(&e);
                let disconnected = matches!(e, SourceError::Disconnected(_));
                let retry = match cfg.reconnect {
                    Some(every) if disconnected && source.can_reconnect() => every,
                    _ => {
                        out.push(event_record(NO_STREAM, "source_error", msg.clone()));
                        stats.set_error(msg);
                        break;
                    }
                };
                // The camera is gone: everything so far is made durable, then it is reopened
                // until it is back or the recording stops; the outage becomes a gap.
                flush_pending(
                    &mut out,
                    [&mut depth_gaps, &mut color_gaps],
                    &mut ir_gaps,
                    &mut imu_gaps,
                    &mut imu,
                    stats,
                );
                note_unplaced(&*source, &numbers, stats);
                out.push(event_record(NO_STREAM, "camera_disconnected", msg.clone()));
                out.push(ToWriter::Flush);
                CameraStats::add(&stats.disconnects, 1);
                stats.disconnected.store(true, Ordering::Relaxed);
                let since = Instant::now();
                let since_us = crate::container::now_utc_us();
                let back = wait_for_reconnect(source.as_mut(), retry, stop, &mut out);
                let away = since.elapsed();
                CameraStats::add(&stats.outage_ms, away.as_millis() as u64);
                // The cause (removed, a stream that stalled, ...) is part of every gap.
                let detail = match &back {
                    Ok(true) => format!(
                        "camera disconnected for {:.1} s ({msg})",
                        away.as_secs_f64()
                    ),
                    _ => format!(
                        "camera disconnected; not back after {:.1} s when capture ended ({msg})",
                        away.as_secs_f64()
                    ),
                };
                for (stream, last) in StreamId::ALL
                    .into_iter()
                    .map(|s| (s.id(), numbers[s as usize].last()))
                {
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
                    out.push(gap_record(
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
                        let why = crate::error::chain(&e);
                        out.push(event_record(NO_STREAM, "reconnect_failed", why.clone()));
                        stats.set_error(format!("{msg}; reconnecting failed: {why}"));
                        break;
                    }
                }
                stats.disconnected.store(false, Ordering::Relaxed);
                CameraStats::add(&stats.reconnects, 1);
                out.push(event_record(NO_STREAM, "camera_reconnected", detail));
                // A reopened source counts its losses afresh, and its numbers restart.
                for s in StreamId::ALL {
                    numbers[s as usize].restart(source.losses(s));
                }
                continue;
            }
        };
        match sample {
            Sample::Depth(f) => {
                let Some(d) = &depth else { continue };
                CameraStats::add(&stats.depth_captured, 1);
                let t = f.timing;
                let step =
                    numbers[StreamId::Depth as usize].frame(&t, source.losses(StreamId::Depth));
                stats.note_depth_clock(t.host_ts_us, t.device_ts_ms, t.ts_domain);
                note_step(&mut out, StreamId::Depth, &t, step, stats);
                if wrong_size(&mut out, stream_id::DEPTH, &t, f.data.len(), d, stats) {
                    continue;
                }
                // The worker sets the codec it actually used.
                let header = frame_header(
                    record_type::DEPTH_FRAME,
                    stream_id::DEPTH,
                    cfg.depth.best(),
                    &t,
                );
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
                            if let Some(m) = depth_gaps.add(
                                &t,
                                GapReason::QueueFull,
                                "compression queue full",
                                out.behind(),
                            ) {
                                out.push(m);
                            }
                            false
                        }
                        Err(TrySendError::Disconnected(_)) => false,
                    }
                };
                if sent {
                    seq += 1;
                    if let Some(m) = depth_gaps.flush() {
                        out.push(m);
                    }
                    // Metadata is a data record: while the writer is far behind it is
                    // lost (the frame is not), and counted in `records_lost`.
                    if let Some(m) = metadata_record(&header, f.metadata) {
                        if out.room_for_data() {
                            out.push(m);
                        } else {
                            CameraStats::add(&stats.records_lost, 1);
                        }
                    }
                }
                stats.set_queue_len(job_tx.len() as u64);
            }
            Sample::Color(f) => {
                CameraStats::add(&stats.color_captured, 1);
                let t = f.timing;
                let n = t.frame_number;
                let step =
                    numbers[StreamId::Color as usize].frame(&t, source.losses(StreamId::Color));
                note_step(&mut out, StreamId::Color, &t, step, stats);
                let Some(c) = color.as_mut() else { continue };
                if c.dead {
                    CameraStats::add(&stats.color_dropped, 1);
                    continue;
                }
                let Some(sink) = c.sink.as_mut() else {
                    continue;
                };
                if !out.room_for_data() {
                    // The writer is far behind: the frame is dropped before it reaches the
                    // video, so that every frame of the video has its entry.
                    last_color_drop = None;
                    CameraStats::add(&stats.color_dropped, 1);
                    if let Some(m) = color_gaps.add(
                        &t,
                        GapReason::QueueFull,
                        "writer queue full (the disk is behind)",
                        true,
                    ) {
                        out.push(m);
                    }
                    continue;
                }
                let pushed = if cfg.lossless {
                    // Conversions wait for the encoder instead of dropping.
                    loop {
                        match sink.push(f.data.clone(), t.host_ts_us) {
                            ColorPush::Dropped => std::thread::sleep(Duration::from_millis(2)),
                            other => break other,
                        }
                    }
                } else {
                    sink.push(f.data, t.host_ts_us)
                };
                match pushed {
                    ColorPush::Queued { index, time_us } => {
                        last_color_drop = None;
                        CameraStats::add(&stats.color_queued, 1);
                        if let Some(m) = color_gaps.flush() {
                            out.push(m);
                        }
                        let (entry, header) = color_entry_record(&t, c.segment, index, time_us);
                        out.push(entry);
                        if let Some(m) = metadata_record(&header, f.metadata) {
                            out.push(m);
                        }
                    }
                    ColorPush::Dropped => {
                        // The encoder keeps the newest dropped frame (see below).
                        last_color_drop = Some(t);
                        CameraStats::add(&stats.color_dropped, 1);
                        if let Some(m) = color_gaps.add(
                            &t,
                            GapReason::QueueFull,
                            "colour encoder queue full",
                            out.behind(),
                        ) {
                            out.push(m);
                        }
                        // Depth first: an encoder that keeps falling behind goes on one
                        // preset faster (a new video) before it loses more frames.
                        if c.drop_calls_for_step_down() {
                            last_color_drop = None;
                            let (from, dropped) = (c.preset.clone(), c.window.1);
                            c.retire(name, &mut out);
                            c.segment += 1;
                            c.faster += 1;
                            CameraStats::add(&stats.color_preset_steps, 1);
                            match c.open(name, &info, &cfg.session_dir, &mut out, videos, stats) {
                                Ok(()) => out.push(event_record(
                                    stream_id::COLOR,
                                    "color_preset_stepped_down",
                                    format!(
                                        "{} dropped {dropped} frames within {} s: preset {} -> {}, \
                                         colour goes on in video {}",
                                        c.encoder,
                                        STEP_DOWN_WINDOW.as_secs(),
                                        from.as_deref().unwrap_or("default"),
                                        c.preset.as_deref().unwrap_or("default"),
                                        c.segment
                                    ),
                                )),
                                Err(e) => {
                                    out.push(event_record(
                                        stream_id::COLOR,
                                        "color_failed",
                                        e.clone(),
                                    ));
                                    stats.set_error(format!("colour: {e}"));
                                    c.dead = true;
                                }
                            }
                        }
                    }
                    ColorPush::Dead(err) => {
                        last_color_drop = None;
                        let why = crate::error::chain(&*err);
                        CameraStats::add(&stats.color_dropped, 1);
                        out.push(gap_record(
                            stream_id::COLOR,
                            &t,
                            n,
                            n,
                            GapReason::EncoderError,
                            &why,
                        ));
                        out.push(event_record(stream_id::COLOR, "color_encoder_died", why));
                        // Restart colour in a new video file; depth carries on regardless.
                        if let Some(old) = c.sink.take() {
                            let _ = old.finish();
                        }
                        c.segment += 1;
                        CameraStats::add(&stats.color_restarts, 1);
                        if let Err(e) =
                            c.open(name, &info, &cfg.session_dir, &mut out, videos, stats)
                        {
                            out.push(event_record(stream_id::COLOR, "color_failed", e.clone()));
                            stats.set_error(format!("colour: {e}"));
                            c.dead = true;
                        }
                    }
                }
            }
            Sample::Infrared { ir_index, frame } => {
                let Some(id) = StreamId::infrared(ir_index) else {
                    continue;
                };
                // Only the infrared streams the source describes are recorded.
                let Some(d) = info.streams.iter().find(|s| s.id == id.id()) else {
                    continue;
                };
                let k = (id == StreamId::InfraredRight) as usize;
                CameraStats::add(&stats.ir_captured, 1);
                let t = frame.timing;
                let step = numbers[id as usize].frame(&t, source.losses(id));
                note_step(&mut out, id, &t, step, stats);
                if wrong_size(&mut out, id.id(), &t, frame.data.len(), d, stats) {
                    continue;
                }
                // The worker sets the codec it actually used (always lossless).
                let header = frame_header(
                    record_type::INFRARED_FRAME,
                    id.id(),
                    cfg.depth.best().lossless(),
                    &t,
                );
                let job = Job {
                    seq,
                    header,
                    data: crate::codec::widen_y8(&frame.data),
                    width: d.width,
                    height: d.height,
                };
                let sent = if cfg.lossless {
                    job_tx.send(job).is_ok()
                } else if job_tx.len() >= ir_limit {
                    false
                } else {
                    job_tx.try_send(job).is_ok()
                };
                if sent {
                    seq += 1;
                    if let Some(m) = ir_gaps[k].flush() {
                        out.push(m);
                    }
                    if let Some(m) = metadata_record(&header, frame.metadata) {
                        if out.room_for_data() {
                            out.push(m);
                        } else {
                            CameraStats::add(&stats.records_lost, 1);
                        }
                    }
                } else if !cfg.lossless {
                    CameraStats::add(&stats.ir_dropped, 1);
                    if let Some(m) = ir_gaps[k].add(
                        &t,
                        GapReason::QueueFull,
                        "compression queue half full (depth first)",
                        out.behind(),
                    ) {
                        out.push(m);
                    }
                }
                stats.set_queue_len(job_tx.len() as u64);
            }
            Sample::Imu {
                kind,
                sample,
                ts_domain,
            } => {
                CameraStats::add(&stats.imu_samples, 1);
                let (k, id) = match kind {
                    StreamKind::Gyro => (0, StreamId::Gyro),
                    _ => (1, StreamId::Accel),
                };
                let stream = id.id();
                let t = Timing {
                    frame_number: sample.frame_number,
                    device_ts_ms: sample.device_ts_ms,
                    ts_domain,
                    host_ts_us: sample.host_ts_us,
                };
                let step = numbers[id as usize].frame(&t, source.losses(id));
                if step != Step::InOrder {
                    // The gap goes after the samples before it.
                    flush_imu(&mut out, &mut imu[k], &mut imu_gaps[k], stream, stats);
                    note_step(&mut out, id, &t, step, stats);
                }
                // A batch has one clock (its record header's): a sample on another clock
                // starts a new batch.
                if imu[k].ts_domain != ts_domain {
                    flush_imu(&mut out, &mut imu[k], &mut imu_gaps[k], stream, stats);
                    imu[k].ts_domain = ts_domain;
                }
                let batch = &mut imu[k].samples;
                batch.push(sample);
                if batch.len() >= IMU_BATCH_SAMPLES
                    || sample.device_ts_ms - batch[0].device_ts_ms >= IMU_BATCH_MS
                {
                    flush_imu(&mut out, &mut imu[k], &mut imu_gaps[k], stream, stats);
                }
            }
        }
    }
    note_unplaced(&*source, &numbers, stats);
    // The video lasts until the capture's last colour frame: if the encoder dropped it, it
    // gets it now (waiting a little for room), and it is no longer lost.
    if let (Some(t), Some(c)) = (last_color_drop, color.as_mut()) {
        if let Some(sink) = c
            .sink
            .as_mut()
            .filter(|_| !c.dead && color_gaps.ends_with(t.frame_number) && out.room_for_data())
        {
            if let Some(ColorPush::Queued { index, time_us }) =
                sink.push_last_dropped(Duration::from_secs(2))
            {
                color_gaps.retract_last(t.frame_number);
                stats.color_dropped.fetch_sub(1, Ordering::Relaxed);
                CameraStats::add(&stats.color_queued, 1);
                out.push(color_entry_record(&t, c.segment, index, time_us).0);
            }
        }
    }
    flush_pending(
        &mut out,
        [&mut depth_gaps, &mut color_gaps],
        &mut ir_gaps,
        &mut imu_gaps,
        &mut imu,
        stats,
    );
    if let Some(c) = color.as_mut() {
        c.finish_retired(&mut out, stats);
    }
    if let Some(sink) = color.and_then(|c| c.sink) {
        if let Err(e) = sink.finish() {
            let e = crate::error::chain(&*e);
            out.push(event_record(
                stream_id::COLOR,
                "color_finish_failed",
                e.clone(),
            ));
            stats.set_error(format!("colour: {e}"));
        }
    }
    drop(job_tx);
    out.push(ToWriter::End { jobs: seq });
    out.close();
    stats.set_queue_len(0);
}

/// Records what a frame's number says: the gaps before it (counted by cause), or a restart.
fn note_step(out: &mut Outbox<'_>, stream: StreamId, t: &Timing, step: Step, stats: &CameraStats) {
    match step {
        Step::InOrder => {}
        Step::Gap(m) => {
            let (skipped, host) = stats.loss_counters(stream);
            CameraStats::add(skipped, m.source_skipped);
            CameraStats::add(host, m.host_dropped);
            CameraStats::add(&stats.bad_frames, m.bad);
            for (first, last, reason, detail) in m.gaps() {
                out.push(gap_record(stream.id(), t, first, last, reason, detail));
            }
        }
        Step::Restarted { from } => out.push(event_record(
            stream.id(),
            "frame_numbers_restarted",
            format!(
                "{} frame number went from {from} to {}",
                stream.kind().name(),
                t.frame_number
            ),
        )),
    }
}

/// Losses the source counted after each stream's last frame (at the end of capture, or
/// before an outage): counted, with no gap record (no later frame says which numbers).
/// `numbers`: every stream's, in [`StreamId::ALL`] order.
fn note_unplaced(source: &dyn Source, numbers: &[Numbering; 6], stats: &CameraStats) {
    for (stream, n) in StreamId::ALL.into_iter().zip(numbers) {
        let u = n.unplaced(source.losses(stream));
        CameraStats::add(stats.loss_counters(stream).1, u.host_dropped);
        CameraStats::add(&stats.bad_frames, u.bad);
    }
}

/// An IMU batch (§5.3) holds at most this many samples...
const IMU_BATCH_SAMPLES: usize = 64;
/// ...and at most this long a stretch of device time, so that a slow stream is written
/// (and survives a crash) within about a tenth of a second.
const IMU_BATCH_MS: f64 = 100.0;

/// IMU samples of one stream waiting to become one batch record: samples on one clock.
struct ImuBatch {
    samples: Vec<ImuSample>,
    /// The clock of every sample in `samples` (`container::format::ts_domain`).
    ts_domain: u8,
}

impl Default for ImuBatch {
    fn default() -> Self {
        Self {
            samples: Vec::with_capacity(IMU_BATCH_SAMPLES),
            ts_domain: ts_domain::HARDWARE_CLOCK,
        }
    }
}

/// Hands a batch of IMU samples to the writer, or, when the writer is far behind, drops it
/// (counted in `imu_dropped`, recorded as a gap of its sample numbers).
fn flush_imu(
    out: &mut Outbox<'_>,
    pending: &mut ImuBatch,
    gaps: &mut GapRun,
    stream: u8,
    stats: &CameraStats,
) {
    let batch = &mut pending.samples;
    let (Some(first), Some(last)) = (batch.first().copied(), batch.last().copied()) else {
        return;
    };
    let t = Timing {
        frame_number: first.frame_number,
        device_ts_ms: first.device_ts_ms,
        ts_domain: pending.ts_domain,
        host_ts_us: first.host_ts_us,
    };
    if !out.room_for_data() {
        CameraStats::add(&stats.imu_dropped, batch.len() as u64);
        if let Some(m) = gaps.add_range(
            &t,
            last.frame_number.max(first.frame_number),
            GapReason::QueueFull,
            "writer queue full (the disk is behind)",
            true,
        ) {
            out.push(m);
        }
        batch.clear();
        return;
    }
    if let Some(m) = gaps.flush() {
        out.push(m);
    }
    let header = RecordHeader {
        record_type: record_type::IMU_BATCH,
        stream,
        codec: CodecId::NONE,
        ts_domain: t.ts_domain,
        flags: 0,
        frame_number: first.frame_number,
        device_ts_ms: first.device_ts_ms,
        host_ts_us: first.host_ts_us,
    };
    out.push(ToWriter::Record {
        header,
        payload: encode_imu_batch(batch),
    });
    batch.clear();
}

/// Pending gap runs and IMU batches go to the writer (before an outage, at the end).
fn flush_pending(
    out: &mut Outbox<'_>,
    depth_color: [&mut GapRun; 2],
    ir_gaps: &mut [GapRun; 2],
    imu_gaps: &mut [GapRun; 2],
    imu: &mut [ImuBatch; 2],
    stats: &CameraStats,
) {
    for g in depth_color.into_iter().chain(ir_gaps.iter_mut()) {
        if let Some(m) = g.flush() {
            out.push(m);
        }
    }
    let [g0, g1] = imu_gaps;
    let [b0, b1] = imu;
    flush_imu(out, b0, g0, stream_id::GYRO, stats);
    flush_imu(out, b1, g1, stream_id::ACCEL, stats);
    for g in imu_gaps.iter_mut() {
        if let Some(m) = g.flush() {
            out.push(m);
        }
    }
}

/// Calls `source.reconnect()` every `every` until it is back (`Ok(true)`), the recording
/// stops (`Ok(false)`) or it gives up (`Err`).
pub(super) fn wait_for_reconnect(
    source: &mut dyn Source,
    every: Duration,
    stop: &AtomicBool,
    out: &mut Outbox<'_>,
) -> Result<bool, SourceError> {
    loop {
        let until = Instant::now() + every;
        while Instant::now() < until {
            out.pump();
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

/// The colour-frame entry (§5.2) of a frame captured with timing `t`, queued as frame `index`
/// of video segment `segment` at `time_us` in it; and the entry's header.
fn color_entry_record(
    t: &Timing,
    segment: u32,
    index: u64,
    time_us: i64,
) -> (ToWriter, RecordHeader) {
    let header = RecordHeader {
        record_type: record_type::COLOR_FRAME,
        stream: stream_id::COLOR,
        codec: CodecId::NONE,
        ts_domain: t.ts_domain,
        flags: 0,
        frame_number: t.frame_number,
        device_ts_ms: t.device_ts_ms,
        host_ts_us: t.host_ts_us,
    };
    let entry = ColorFrameEntry {
        segment,
        index_in_video: index,
        video_time_us: Some(time_us),
    };
    (
        ToWriter::Record {
            header,
            payload: entry.encode(),
        },
        header,
    )
}

/// The §5.8 metadata record of a frame written with `frame` as its header, if the source gave
/// the frame metadata. Names become keys ([`FrameMetadata::key_of`]: `Actual Exposure` ->
/// `actual_exposure`); the first of equal keys and at most [`FrameMetadata::MAX_PAIRS`] pairs
/// are kept (a source never gives more).
fn metadata_record(frame: &RecordHeader, pairs: Vec<(String, i64)>) -> Option<ToWriter> {
    if pairs.is_empty() {
        return None;
    }
    let mut seen = std::collections::BTreeSet::new();
    let meta = FrameMetadata {
        pairs: pairs
            .into_iter()
            .filter_map(|(k, v)| Some((FrameMetadata::key_of(&k)?, v)))
            .filter(|(k, _)| seen.insert(k.clone()))
            .take(FrameMetadata::MAX_PAIRS)
            .collect(),
    };
    if meta.pairs.is_empty() {
        return None;
    }
    let payload = meta.encode().ok()?;
    Some(ToWriter::Record {
        header: RecordHeader {
            record_type: record_type::FRAME_METADATA,
            codec: CodecId::NONE,
            ..*frame
        },
        payload,
    })
}
