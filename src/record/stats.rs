//! Live per-camera counters, shared lock-free between the pipeline threads and the status
//! display. Every frame a source delivers ends up in exactly one of: written, dropped
//! (queue full / encoder), or lost in a failure that is recorded as a gap.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;

use crate::codec::CodecId;

#[derive(Default, Debug)]
pub struct CameraStats {
    pub depth_captured: AtomicU64,
    pub depth_written: AtomicU64,
    /// Dropped by rsrec: the compression queue was full.
    pub depth_dropped: AtomicU64,
    /// Missing in the source's own frame numbers (dropped in camera, USB or driver).
    pub depth_source_skipped: AtomicU64,
    /// Lost on the host before rsrec had them (the source's buffer overflowed).
    pub depth_host_dropped: AtomicU64,
    pub depth_raw_bytes: AtomicU64,
    pub depth_stored_bytes: AtomicU64,
    /// The smallest host time minus device time of a depth frame, µs (once
    /// `depth_clock_seen`), and the clock of the device times: how this camera's clock sits
    /// against the host's, for comparing the cameras of a rig.
    pub depth_clock_offset_us: AtomicI64,
    pub depth_clock_seen: AtomicBool,
    pub depth_ts_domain: AtomicU8,
    /// Depth frames written, by codec id (`format-spec.md` §8; ids above 7 are not counted
    /// here, none exists).
    pub depth_by_codec: [AtomicU64; 8],
    pub queue_len: AtomicU64,
    pub queue_capacity: AtomicU64,
    pub queue_high_water: AtomicU64,
    pub color_captured: AtomicU64,
    pub color_queued: AtomicU64,
    pub color_dropped: AtomicU64,
    pub color_source_skipped: AtomicU64,
    pub color_host_dropped: AtomicU64,
    pub color_restarts: AtomicU64,
    /// Times the colour encoder kept dropping frames and was restarted one preset faster.
    pub color_preset_steps: AtomicU64,
    /// The preset of the current colour video (after any step-downs).
    pub color_preset: Mutex<Option<String>>,
    /// Infrared frames (both imagers together, §5.9): captured, written, dropped by rsrec
    /// (the compression queue was half full: depth first), skipped by the source, lost on the
    /// host; their raw (1 byte a pixel) and stored sizes.
    pub ir_captured: AtomicU64,
    pub ir_written: AtomicU64,
    pub ir_dropped: AtomicU64,
    pub ir_source_skipped: AtomicU64,
    pub ir_host_dropped: AtomicU64,
    pub ir_raw_bytes: AtomicU64,
    pub ir_stored_bytes: AtomicU64,
    pub imu_samples: AtomicU64,
    /// IMU samples dropped because the writer was far behind (recorded as gaps).
    pub imu_dropped: AtomicU64,
    /// IMU sample numbers the source skipped, and IMU samples it lost on the host.
    pub imu_source_skipped: AtomicU64,
    pub imu_host_dropped: AtomicU64,
    /// Frames or samples of any stream the driver delivered but that could not be read.
    pub bad_frames: AtomicU64,
    /// Records (gaps, events) lost because the writer was stuck for so long that the
    /// capture thread's backlog reached its memory bound.
    pub records_lost: AtomicU64,
    pub file_bytes: AtomicU64,
    pub segments: AtomicU64,
    /// Times the camera disconnected, came back, and how long it was away in total.
    pub disconnects: AtomicU64,
    pub reconnects: AtomicU64,
    pub outage_ms: AtomicU64,
    /// The camera is disconnected right now (rsrec is trying to reopen it).
    pub disconnected: AtomicBool,
    pub finished: AtomicBool,
    /// The disk filled up: the camera's file was closed early.
    pub disk_full: AtomicBool,
    pub error: Mutex<Option<String>>,
}

/// A snapshot of [`CameraStats`] for status lines and `session.json` (the manifest type).
pub use crate::session::StatsSnapshot;

impl CameraStats {
    /// A depth frame's host and device times (device in clock `ts_domain`).
    pub fn note_depth_clock(&self, host_ts_us: i64, device_ts_ms: f64, ts_domain: u8) {
        let d = (device_ts_ms * 1000.0).round();
        if d.is_finite() && host_ts_us != 0 {
            let offset = host_ts_us.saturating_sub(d as i64);
            if self.depth_clock_seen.swap(true, Relaxed) {
                self.depth_clock_offset_us.fetch_min(offset, Relaxed);
            } else {
                self.depth_clock_offset_us.store(offset, Relaxed);
            }
            self.depth_ts_domain.store(ts_domain, Relaxed);
        }
    }

    /// The counters of frames of `stream` the source skipped and lost on the host.
    pub fn loss_counters(&self, stream: crate::source::StreamId) -> (&AtomicU64, &AtomicU64) {
        use crate::source::StreamId;
        match stream {
            StreamId::Depth => (&self.depth_source_skipped, &self.depth_host_dropped),
            StreamId::Color => (&self.color_source_skipped, &self.color_host_dropped),
            StreamId::Gyro | StreamId::Accel => (&self.imu_source_skipped, &self.imu_host_dropped),
            StreamId::InfraredLeft | StreamId::InfraredRight => {
                (&self.ir_source_skipped, &self.ir_host_dropped)
            }
        }
    }

    /// Counts a compressed frame (depth or infrared, by its record type) that rsrec could
    /// not write.
    pub fn frame_not_written(&self, record_type: u8) {
        let c = if record_type == crate::container::format::record_type::INFRARED_FRAME {
            &self.ir_dropped
        } else {
            &self.depth_dropped
        };
        c.fetch_add(1, Relaxed);
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub fn set_queue_len(&self, len: u64) {
        self.queue_len.store(len, Relaxed);
        self.queue_high_water.fetch_max(len, Relaxed);
    }

    pub fn set_error(&self, e: String) {
        let mut g = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e);
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Relaxed);
        let raw = g(&self.depth_raw_bytes);
        let stored = g(&self.depth_stored_bytes);
        StatsSnapshot {
            depth_captured: g(&self.depth_captured),
            depth_written: g(&self.depth_written),
            depth_dropped: g(&self.depth_dropped),
            depth_source_skipped: g(&self.depth_source_skipped),
            depth_host_dropped: g(&self.depth_host_dropped),
            depth_clock_offset_us: self
                .depth_clock_seen
                .load(Relaxed)
                .then(|| self.depth_clock_offset_us.load(Relaxed)),
            depth_ts_domain: self.depth_clock_seen.load(Relaxed).then(|| {
                crate::container::format::ts_domain::name(self.depth_ts_domain.load(Relaxed))
                    .unwrap_or("other")
                    .to_string()
            }),
            depth_raw_bytes: raw,
            depth_stored_bytes: stored,
            compression_ratio: if stored > 0 {
                raw as f64 / stored as f64
            } else {
                0.0
            },
            depth_codec_frames: self
                .depth_by_codec
                .iter()
                .enumerate()
                .filter(|(_, n)| g(n) > 0)
                .map(|(id, n)| (CodecId(id as u8).name().to_string(), g(n)))
                .collect(),
            queue_len: g(&self.queue_len),
            queue_capacity: g(&self.queue_capacity),
            queue_high_water: g(&self.queue_high_water),
            color_captured: g(&self.color_captured),
            color_queued: g(&self.color_queued),
            color_dropped: g(&self.color_dropped),
            color_source_skipped: g(&self.color_source_skipped),
            color_host_dropped: g(&self.color_host_dropped),
            color_restarts: g(&self.color_restarts),
            color_preset_steps: g(&self.color_preset_steps),
            color_preset: self
                .color_preset
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            ir_captured: g(&self.ir_captured),
            ir_written: g(&self.ir_written),
            ir_dropped: g(&self.ir_dropped),
            ir_source_skipped: g(&self.ir_source_skipped),
            ir_host_dropped: g(&self.ir_host_dropped),
            ir_raw_bytes: g(&self.ir_raw_bytes),
            ir_stored_bytes: g(&self.ir_stored_bytes),
            imu_samples: g(&self.imu_samples),
            imu_dropped: g(&self.imu_dropped),
            imu_source_skipped: g(&self.imu_source_skipped),
            imu_host_dropped: g(&self.imu_host_dropped),
            bad_frames: g(&self.bad_frames),
            records_lost: g(&self.records_lost),
            file_bytes: g(&self.file_bytes),
            segments: g(&self.segments),
            disconnects: g(&self.disconnects),
            reconnects: g(&self.reconnects),
            outage_ms: g(&self.outage_ms),
            disconnected: self.disconnected.load(Relaxed),
            finished: self.finished.load(Relaxed),
            disk_full: self.disk_full.load(Relaxed),
            error: self.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}
