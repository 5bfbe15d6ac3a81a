//! The writer thread of one camera: records in frame order into the camera's `.rsrec`
//! file, a new file at each segment limit with no frame lost or repeated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::limits::SegmentLimit;
use super::stats::CameraStats;
use crate::container::format::{record_type, NO_STREAM, PROP_DEPTH_MAX_ERROR};
use crate::container::{FileHeader, GapReason, RecordHeader, StreamKind, Writer};
use crate::source::{SourceInfo, Timing};

use super::pipeline::*;

/// File name of segment `k` of a camera.
pub(super) fn segment_path(dir: &Path, name: &str, segmented: bool, k: u64) -> PathBuf {
    if segmented {
        dir.join(format!("{name}.{k:03}.rsrec"))
    } else {
        dir.join(format!("{name}.rsrec"))
    }
}

pub(super) struct SegmentWriter<'a> {
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
        let bound = self.cfg.depth.best().bound();
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

/// What the writer keeps after the disk filled up: the frames it could not write become
/// one gap record, written in the space the file kept for closing.
struct DiskFull {
    error: String,
    /// Per stream (depth, infrared): timing and frame numbers of the first and last frame
    /// not written.
    frames: BTreeMap<u8, (Timing, u64, u64)>,
}

impl DiskFull {
    /// Counts a record that could not be written (the disk is full).
    fn lost(&mut self, m: &Lost, stats: &CameraStats) {
        match *m {
            Lost::Frame(h) => {
                stats.frame_not_written(h.record_type);
                let n = h.frame_number;
                match self.frames.get_mut(&h.stream) {
                    Some((_, _, last)) => *last = (*last).max(n),
                    None => {
                        let t = Timing {
                            frame_number: n,
                            device_ts_ms: h.device_ts_ms,
                            ts_domain: h.ts_domain,
                            host_ts_us: h.host_ts_us,
                        };
                        self.frames.insert(h.stream, (t, n, n));
                    }
                }
            }
            Lost::Color => CameraStats::add(&stats.color_dropped, 1),
            Lost::Imu(n) => CameraStats::add(&stats.imu_dropped, n),
            Lost::Control => CameraStats::add(&stats.records_lost, 1),
            Lost::Nothing => {}
        }
    }

    /// The gap and the event that say why the file ends, in the space kept for them.
    fn close(self, sw: &mut SegmentWriter<'_>, stats: &CameraStats) {
        let Some(w) = sw.writer.as_mut() else { return };
        let mut closing = Vec::new();
        for (stream, (t, first, last)) in self.frames {
            closing.push(gap_record(
                stream,
                &t,
                first,
                last,
                GapReason::DiskFull,
                "the disk was full",
            ));
        }
        closing.push(event_record(NO_STREAM, "disk_full", self.error));
        for m in closing {
            if let ToWriter::Record { header, payload } = m {
                if w.write_closing_record(&header, &payload).is_err() {
                    CameraStats::add(&stats.records_lost, 1);
                }
            }
        }
    }
}

/// What a message to the writer was, for counting it when it cannot be written.
#[derive(Clone, Copy)]
enum Lost {
    /// A depth or infrared frame.
    Frame(RecordHeader),
    Color,
    Imu(u64),
    Control,
    Nothing,
}

impl Lost {
    fn of(m: &ToWriter) -> Lost {
        match m {
            ToWriter::Depth { header, .. } => Lost::Frame(*header),
            ToWriter::EncodeFailed { .. } => Lost::Control,
            ToWriter::Record { header, payload } => match header.record_type {
                record_type::COLOR_FRAME => Lost::Color,
                record_type::IMU_BATCH => Lost::Imu(
                    payload
                        .get(..4)
                        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64),
                ),
                _ => Lost::Control,
            },
            ToWriter::Flush | ToWriter::End { .. } => Lost::Nothing,
        }
    }
}

/// Writes one message; returns the error of a write that failed.
fn write_one(
    sw: &mut SegmentWriter<'_>,
    m: ToWriter,
    stats: &CameraStats,
    files: &Mutex<Vec<PathBuf>>,
) -> crate::container::Result<()> {
    match m {
        ToWriter::Depth {
            header,
            raw_bytes,
            payload,
            ..
        } => sw.write(&header, &payload, stats, files).map(|_| {
            if header.record_type == record_type::INFRARED_FRAME {
                CameraStats::add(&stats.ir_written, 1);
                CameraStats::add(&stats.ir_raw_bytes, raw_bytes);
                CameraStats::add(&stats.ir_stored_bytes, payload.len() as u64);
                return;
            }
            CameraStats::add(&stats.depth_written, 1);
            if let Some(n) = stats.depth_by_codec.get(header.codec.0 as usize) {
                CameraStats::add(n, 1);
            }
            CameraStats::add(&stats.depth_raw_bytes, raw_bytes);
            CameraStats::add(&stats.depth_stored_bytes, payload.len() as u64);
        }),
        ToWriter::EncodeFailed { header, error, .. } => {
            stats.frame_not_written(header.record_type);
            let t = Timing {
                frame_number: header.frame_number,
                device_ts_ms: header.device_ts_ms,
                ts_domain: header.ts_domain,
                host_ts_us: header.host_ts_us,
            };
            match gap_record(
                header.stream,
                &t,
                t.frame_number,
                t.frame_number,
                GapReason::EncoderError,
                &error,
            ) {
                ToWriter::Record { header, payload } => sw.write(&header, &payload, stats, files),
                _ => Ok(()),
            }
        }
        ToWriter::Record { header, payload } => sw.write(&header, &payload, stats, files),
        ToWriter::Flush => match sw.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        },
        ToWriter::End { .. } => Ok(()),
    }
}

/// The writer thread of one camera. A write error stops the whole recording (the stop
/// flag); a full disk ends the camera's file cleanly: what could not be written is counted
/// (`depth_dropped`, `color_dropped`, `imu_dropped`, `records_lost`), the depth frames
/// become a `DiskFull` gap, a `disk_full` event says why, and the file is closed and
/// indexed in the space its writer kept for that.
pub(super) fn write_loop(
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
    let mut full: Option<DiskFull> = None;
    let on_error = |e: crate::container::ContainerError,
                    writer_ok: bool,
                    failed: &mut Option<String>,
                    full: &mut Option<DiskFull>| {
        let error = crate::error::chain(&e);
        if e.is_disk_full() {
            stats.disk_full.store(true, Ordering::SeqCst);
            // The disk is shared: every camera stops, each closing its file.
            stop.store(true, Ordering::SeqCst);
            if writer_ok {
                *full = Some(DiskFull {
                    error,
                    frames: BTreeMap::new(),
                });
                return;
            }
        }
        *failed = Some(error);
    };
    if let Err(e) = sw.open(files) {
        on_error(e, false, &mut failed, &mut full);
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
        let msg = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => {
                #[cfg(test)]
                stall::wait_while_stalled(name);
                m
            }
            Err(RecvTimeoutError::Timeout) => {
                if failed.is_none() && full.is_none() {
                    if let Some(w) = sw.writer.as_mut() {
                        if let Err(e) = w.tick() {
                            on_error(e, false, &mut failed, &mut full);
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
                if let ToWriter::Depth { header, .. } = &m {
                    stats.frame_not_written(header.record_type);
                }
                continue;
            }
            let what = Lost::of(&m);
            if let Some(f) = full.as_mut() {
                f.lost(&what, stats);
                continue;
            }
            if let Err(e) = write_one(&mut sw, m, stats, files) {
                let disk_full = e.is_disk_full();
                // A segment rotation that failed to open the next file leaves no writer.
                let writer_ok = sw.writer.is_some()
                    && matches!(e, crate::container::ContainerError::DiskFull { .. });
                on_error(e, writer_ok, &mut failed, &mut full);
                match full.as_mut() {
                    Some(f) if disk_full => f.lost(&what, stats),
                    _ => {
                        if let Lost::Frame(h) = what {
                            stats.frame_not_written(h.record_type);
                        }
                    }
                }
            }
        }
        if let Some(w) = &sw.writer {
            stats
                .file_bytes
                .store(sw.closed_bytes + w.bytes_written(), Ordering::Relaxed);
        }
    }
    if let Some(f) = full.take() {
        let error = f.error.clone();
        f.close(&mut sw, stats);
        stats.set_error(format!("writing {name}: {error}"));
    }
    if let Some(e) = failed {
        stats.set_error(format!("writing {name}: {e}"));
        // A writer that cannot write stops the recording cleanly everywhere.
        stop.store(true, Ordering::SeqCst);
        // Keep draining so that the compression pool never blocks on us.
        for m in rx.iter() {
            if let ToWriter::Depth { header, .. } = &m {
                stats.frame_not_written(header.record_type);
            }
        }
    } else if let Some(w) = sw.writer.take() {
        match w.finish() {
            Ok(f) => stats
                .file_bytes
                .store(sw.closed_bytes + f.bytes, Ordering::Relaxed),
            Err(e) => {
                stats.set_error(format!("closing {name}: {}", crate::error::chain(&e)));
                stop.store(true, Ordering::SeqCst);
            }
        }
    }
    stats.finished.store(true, Ordering::SeqCst);
}

/// Tests stall a named camera's writer (as a disk that stops answering would) to check that
/// nothing is lost uncounted and the other cameras go on.
#[cfg(test)]
pub(super) mod stall {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    static STALLED: Mutex<Vec<(String, Arc<AtomicBool>)>> = Mutex::new(Vec::new());

    /// While `flag` is set, the writer of camera `name` stops before each record.
    pub(in crate::record) fn stall(name: &str, flag: Arc<AtomicBool>) {
        STALLED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.into(), flag));
    }

    pub(super) fn wait_while_stalled(name: &str) {
        loop {
            let stalled = STALLED
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|(n, f)| n == name && f.load(Ordering::SeqCst));
            if !stalled {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
