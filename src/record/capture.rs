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

/// Per-camera colour state in the capture thread.
pub(super) struct ColorState {
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
        out: &mut Outbox<'_>,
        videos: &Mutex<Vec<String>>,
    ) -> Result<(), String> {
        let (sink, file, codec) =
            (self.factory)(name, info, dir, self.segment).map_err(|e| crate::error::chain(&*e))?;
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
        out.push(ToWriter::Record {
            header: h,
            payload: seg.encode().map_err(|e| e.to_string())?,
        });
        Ok(())
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
        (Some(factory), true) => Some(ColorState {
            factory: factory.clone(),
            sink: None,
            segment: 0,
            dead: false,
        }),
        _ => None,
    };
    let mut out = Outbox::new(w_tx, cfg.lossless, stats);
    if let Some(c) = color.as_mut() {
        if let Err(e) = c.open(name, &info, &cfg.session_dir, &mut out, videos) {
            out.push(event_record(stream_id::COLOR, "color_failed", e.clone()));
            stats.set_error(format!("colour: {e}"));
            c.dead = true;
        }
    }
    let mut seq = 0u64;
    let mut depth_gaps = GapRun::new(stream_id::DEPTH);
    let mut color_gaps = GapRun::new(stream_id::COLOR);
    let mut imu_gaps = [GapRun::new(stream_id::GYRO), GapRun::new(stream_id::ACCEL)];
    // Each stream's frame numbers, with what the source had lost of it when recording began.
    let numbering = |s: StreamId| Numbering::new(source.losses(s));
    let mut depth_numbers = numbering(StreamId::Depth);
    let mut color_numbers = numbering(StreamId::Color);
    let mut imu_numbers = [numbering(StreamId::Gyro), numbering(StreamId::Accel)];
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
                    &mut imu_gaps,
                    &mut imu,
                    stats,
                );
                note_unplaced(
                    &*source,
                    [
                        &depth_numbers,
                        &color_numbers,
                        &imu_numbers[0],
                        &imu_numbers[1],
                    ],
                    stats,
                );
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
                for (stream, last) in [
                    (stream_id::DEPTH, depth_numbers.last()),
                    (stream_id::COLOR, color_numbers.last()),
                    (stream_id::GYRO, imu_numbers[0].last()),
                    (stream_id::ACCEL, imu_numbers[1].last()),
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
                depth_numbers.restart(source.losses(StreamId::Depth));
                color_numbers.restart(source.losses(StreamId::Color));
                imu_numbers[0].restart(source.losses(StreamId::Gyro));
                imu_numbers[1].restart(source.losses(StreamId::Accel));
                continue;
            }
        };
        match sample {
            Sample::Depth(f) => {
                let Some(d) = &depth else { continue };
                CameraStats::add(&stats.depth_captured, 1);
                let t = f.timing;
                let n = t.frame_number;
                let step = depth_numbers.frame(&t, source.losses(StreamId::Depth));
                stats.note_depth_clock(t.host_ts_us, t.device_ts_ms, t.ts_domain);
                note_step(&mut out, StreamId::Depth, &t, step, stats);
                if f.data.len() != (d.width * d.height) as usize {
                    out.push(gap_record(
                        stream_id::DEPTH,
                        &t,
                        n,
                        n,
                        GapReason::BadFrame,
                        "frame of the wrong size",
                    ));
                    CameraStats::add(&stats.bad_frames, 1);
                    continue;
                }
                let header = RecordHeader {
                    record_type: record_type::DEPTH_FRAME,
                    stream: stream_id::DEPTH,
                    // The worker sets the codec it actually used.
                    codec: cfg.depth.best().id(),
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
                let step = color_numbers.frame(&t, source.losses(StreamId::Color));
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
                        if let Err(e) = c.open(name, &info, &cfg.session_dir, &mut out, videos) {
                            out.push(event_record(stream_id::COLOR, "color_failed", e.clone()));
                            stats.set_error(format!("colour: {e}"));
                            c.dead = true;
                        }
                    }
                }
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
                let step = imu_numbers[k].frame(&t, source.losses(id));
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
    note_unplaced(
        &*source,
        [
            &depth_numbers,
            &color_numbers,
            &imu_numbers[0],
            &imu_numbers[1],
        ],
        stats,
    );
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
        &mut imu_gaps,
        &mut imu,
        stats,
    );
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
            let (skipped, host) = match stream {
                StreamId::Depth => (&stats.depth_source_skipped, &stats.depth_host_dropped),
                StreamId::Color => (&stats.color_source_skipped, &stats.color_host_dropped),
                _ => (&stats.imu_source_skipped, &stats.imu_host_dropped),
            };
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
/// `numbers`: depth, colour, gyro, accel.
fn note_unplaced(source: &dyn Source, numbers: [&Numbering; 4], stats: &CameraStats) {
    let streams = [
        StreamId::Depth,
        StreamId::Color,
        StreamId::Gyro,
        StreamId::Accel,
    ];
    for (stream, n) in streams.into_iter().zip(numbers) {
        let u = n.unplaced(source.losses(stream));
        let host = match stream {
            StreamId::Depth => &stats.depth_host_dropped,
            StreamId::Color => &stats.color_host_dropped,
            _ => &stats.imu_host_dropped,
        };
        CameraStats::add(host, u.host_dropped);
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
    frame_gaps: [&mut GapRun; 2],
    imu_gaps: &mut [GapRun; 2],
    imu: &mut [ImuBatch; 2],
    stats: &CameraStats,
) {
    for g in frame_gaps {
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
