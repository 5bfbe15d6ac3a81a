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
use crate::container::format::{record_type, PROP_DEPTH_MAX_ERROR};
use crate::container::{FileHeader, GapReason, RecordHeader, StreamKind, Writer};
use crate::source::{stream_id, SourceInfo, Timing};

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
    if let Err(e) = sw.open(files) {
        failed = Some(crate::error::chain(&e));
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
            Ok(m) => {
                #[cfg(test)]
                stall::wait_while_stalled(name);
                m
            }
            Err(RecvTimeoutError::Timeout) => {
                if failed.is_none() {
                    if let Some(w) = sw.writer.as_mut() {
                        if let Err(e) = w.tick() {
                            failed = Some(crate::error::chain(&e));
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
                failed = Some(crate::error::chain(&e));
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
