//! `session.json`, the manifest of a session folder, as a type: written by the recorder
//! ([`crate::record`]) when recording starts (status `recording`) and again at the end with
//! the final statistics, read by export, the viewer and `info`. `docs/session.md` documents
//! every field.
//!
//! Why a type: the writer and every reader agree on one definition, and readers accept
//! manifests from older and newer rsrec versions: missing fields take their defaults
//! (`#[serde(default)]`), unknown fields are ignored, a status this version does not know
//! is kept as text. `manifest_version` changes when a field changes meaning; a reader reads
//! a manifest newer than [`MANIFEST_VERSION`] as far as it understands it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::container::{DeviceInfo, StreamDescriptor};

/// The manifest version this rsrec writes. 1: the first typed manifest (files written
/// before the field existed have the same layout and read as version 1).
pub const MANIFEST_VERSION: u32 = 1;

/// The file name of the manifest in a session folder.
pub const MANIFEST_FILE: &str = "session.json";

/// The name of the temporary file a manifest is written to before it replaces the old one.
/// The temporary file a manifest is written to before it replaces `session.json`.
pub const MANIFEST_TMP: &str = ".session.json.tmp";
/// The space kept for the final manifest while recording (see
/// [`SessionManifest::reserve_space`]); `rsrec recover SESSION` removes a leftover one.
pub const MANIFEST_RESERVE: &str = ".session.reserve";
/// Its size: far more than the manifest of eight cameras needs.
pub const MANIFEST_RESERVE_BYTES: usize = 1 << 20;

/// Longest manifest read (a manifest of 8 cameras is a few tens of KiB).
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// Errors reading or writing a manifest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a session manifest", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {size} bytes is too large for a session manifest (at most {max})", path.display())]
    TooLarge { path: PathBuf, size: u64, max: u64 },
}

/// How a session ended, or that it is still being recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    /// Still recording, or the recorder was killed (the files are still readable; `rsrec
    /// recover` closes them).
    Recording,
    /// Stopped normally (Ctrl+C, `--duration`, the end of finite sources).
    Complete,
    /// Stopped cleanly because free disk space fell below `--min-free`.
    DiskFull,
    /// Stopped because a camera failed (its error is in its `stats.error`).
    Error,
    /// The recorder ended without closing its files (a crash, kill -9, a power cut) and
    /// `rsrec recover SESSION` repaired them.
    Recovered,
    /// A status written by another rsrec version, kept as it was.
    Other(String),
}

impl SessionStatus {
    pub fn as_str(&self) -> &str {
        match self {
            SessionStatus::Recording => "recording",
            SessionStatus::Complete => "complete",
            SessionStatus::DiskFull => "stopped: disk nearly full",
            SessionStatus::Error => "stopped: error",
            SessionStatus::Recovered => "recovered after a crash",
            SessionStatus::Other(s) => s,
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "recording" => SessionStatus::Recording,
            "complete" => SessionStatus::Complete,
            "stopped: disk nearly full" => SessionStatus::DiskFull,
            "stopped: error" => SessionStatus::Error,
            "recovered after a crash" => SessionStatus::Recovered,
            other => SessionStatus::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SessionStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SessionStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SessionStatus::parse(&String::deserialize(d)?))
    }
}

impl Default for SessionStatus {
    fn default() -> Self {
        SessionStatus::Other(String::new())
    }
}

/// The recording settings, as chosen on the command line (or by a library caller).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordSettings {
    /// The depth codec (`grad-rans32`, `lz4-planes`, `zstd-planes:3`, ...).
    pub depth_codec: String,
    /// The colour codec asked for (`auto`, `libx265`, ...); `None` without colour.
    pub color_codec: Option<String>,
    pub crf: Option<u8>,
    pub preset: Option<String>,
    /// The segment limit (`10m`, `5GB`), if files are split.
    pub segment: Option<String>,
    /// When files are fsynced: `flush`, `close` or `never`.
    pub fsync: String,
    /// `--duration` in seconds.
    pub duration_s: Option<f64>,
}

/// The camera a manifest entry describes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceManifest {
    pub name: String,
    pub serial: String,
    pub model: String,
    pub firmware: String,
    pub properties: BTreeMap<String, String>,
}

impl From<&DeviceInfo> for DeviceManifest {
    fn from(d: &DeviceInfo) -> Self {
        DeviceManifest {
            name: d.name.clone(),
            serial: d.serial.clone(),
            model: d.model.clone(),
            firmware: d.firmware.clone(),
            properties: d.properties.iter().cloned().collect(),
        }
    }
}

/// A camera's counters at the end of a recording (and in `--status-json` lines).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StatsSnapshot {
    pub depth_captured: u64,
    pub depth_written: u64,
    pub depth_dropped: u64,
    pub depth_source_skipped: u64,
    /// Depth frames lost on the host before rsrec had them (the source's own buffer was
    /// full); not included in `depth_source_skipped`.
    pub depth_host_dropped: u64,
    /// The smallest host time minus device time over the depth frames, µs, and the clock of
    /// the device times: in a rig on global time, how far apart the cameras' clocks are
    /// (the spread of these values, give or take USB latency).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth_clock_offset_us: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth_ts_domain: Option<String>,
    pub depth_raw_bytes: u64,
    pub depth_stored_bytes: u64,
    pub compression_ratio: f64,
    /// Depth frames written with each codec (name -> frames): with `--depth-codec auto` the
    /// mix of the strong codec and the fast one used under load.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub depth_codec_frames: BTreeMap<String, u64>,
    pub queue_len: u64,
    pub queue_capacity: u64,
    pub queue_high_water: u64,
    pub color_captured: u64,
    pub color_queued: u64,
    pub color_dropped: u64,
    pub color_source_skipped: u64,
    pub color_host_dropped: u64,
    pub color_restarts: u64,
    /// Times the colour encoder kept dropping frames and went on one preset faster in a new
    /// video (depth first: colour sheds load by quality before it sheds frames).
    pub color_preset_steps: u64,
    /// The encoder preset of the camera's last colour video (after any step-downs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color_preset: Option<String>,
    /// Infrared frames of both imagers together (`--ir`, format §5.9): captured, written,
    /// dropped by rsrec (depth first: the compression queue was half full), skipped by the
    /// source, lost on the host; raw (1 byte a pixel) and stored bytes.
    pub ir_captured: u64,
    pub ir_written: u64,
    pub ir_dropped: u64,
    pub ir_source_skipped: u64,
    pub ir_host_dropped: u64,
    pub ir_raw_bytes: u64,
    pub ir_stored_bytes: u64,
    pub imu_samples: u64,
    /// IMU samples dropped because the writer was far behind (gap records say which).
    pub imu_dropped: u64,
    /// IMU sample numbers skipped by the source, and IMU samples lost on the host.
    pub imu_source_skipped: u64,
    pub imu_host_dropped: u64,
    /// Frames or samples the driver delivered that could not be read (gaps `bad_frame`).
    pub bad_frames: u64,
    /// Gap and event records lost because the writer was stuck so long that the capture
    /// thread's backlog reached its memory bound (0 unless the disk hung for hours).
    pub records_lost: u64,
    pub file_bytes: u64,
    pub segments: u64,
    pub disconnects: u64,
    pub reconnects: u64,
    pub outage_ms: u64,
    pub disconnected: bool,
    pub finished: bool,
    /// The disk filled up and the camera's file was closed early (a `disk_full` event and a
    /// `DiskFull` gap in the file say when).
    pub disk_full: bool,
    pub error: Option<String>,
}

impl StatsSnapshot {
    /// The share of depth frames of each codec, most used first: `grad-rans32 93.1 %,
    /// lz4-planes 6.9 %` (empty when nothing was written).
    pub fn codec_mix(&self) -> String {
        let total: u64 = self.depth_codec_frames.values().sum();
        let mut v: Vec<(&String, &u64)> = self.depth_codec_frames.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.iter()
            .map(|(name, &n)| format!("{name} {:.1} %", n as f64 * 100.0 / total.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One camera of the session.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CameraManifest {
    /// The camera's name; its files are named after it (`NAME.rsrec`, `NAME.color.000.mkv`).
    pub name: String,
    /// The camera spec it was opened from (`sim:0`, `bag:FILE`, `realsense:SERIAL`).
    pub source: String,
    pub device: DeviceManifest,
    pub streams: Vec<StreamDescriptor>,
    /// The camera's `.rsrec` files in recording order, relative to the session folder
    /// (several with `--segment`). Empty until the recording ends.
    pub files: Vec<String>,
    /// The camera's colour videos, relative to the session folder.
    pub color_videos: Vec<String>,
    /// Final counters (`None` while recording).
    pub stats: Option<StatsSnapshot>,
}

/// The whole `session.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionManifest {
    /// [`MANIFEST_VERSION`] of the writer.
    pub manifest_version: u32,
    /// The rsrec version that wrote it.
    pub rsrec_version: String,
    /// The `.rsrec` format version of the files.
    pub format_version: u16,
    /// The session (folder) name.
    pub session: String,
    /// The recording host's name.
    pub host: String,
    pub command_line: Vec<String>,
    /// Start time, ISO 8601 UTC, and the same in microseconds since the Unix epoch.
    pub start_utc: String,
    pub start_utc_us: i64,
    /// Stop time (absent while recording).
    pub stop_utc: Option<String>,
    pub stop_utc_us: Option<i64>,
    pub status: SessionStatus,
    pub settings: RecordSettings,
    pub cameras: Vec<CameraManifest>,
    /// What rsrec itself lost, over every camera (written when the recording ends; absent
    /// while recording and in manifests of older versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub losses: Option<Losses>,
    /// Cameras asked for that could not be opened, and why: the others were recorded
    /// without them (`rsrec record --require-all` refuses to start instead).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cameras_left_out: Vec<LeftOutCamera>,
}

/// A camera that was asked for but not recorded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeftOutCamera {
    /// Its spec (`realsense:SERIAL`, `rsbag:FILE`).
    pub source: String,
    /// Why it could not be opened.
    pub error: String,
}

/// Frames and samples the cameras delivered that rsrec could not keep (queues full, an
/// encoder that fell behind or died, a writer far behind, and - `*_host_dropped` - those
/// lost on the host before rsrec had them because it fell behind), summed over the cameras.
/// Every one of them is also a gap record in its camera's file. What the cameras themselves
/// skipped is not counted here (`depth_source_skipped` in each camera's stats).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Losses {
    pub depth_captured: u64,
    pub depth_dropped: u64,
    pub depth_host_dropped: u64,
    pub color_captured: u64,
    pub color_dropped: u64,
    pub color_host_dropped: u64,
    /// Infrared frames (both imagers).
    pub ir_captured: u64,
    pub ir_dropped: u64,
    pub ir_host_dropped: u64,
    pub imu_samples: u64,
    pub imu_dropped: u64,
    pub imu_host_dropped: u64,
    /// Gap and event records lost (only when a writer was stuck for hours).
    pub records_lost: u64,
}

impl Losses {
    /// The sum over `cameras` (those with statistics).
    pub fn of(cameras: &[CameraManifest]) -> Self {
        let mut l = Losses::default();
        for s in cameras.iter().filter_map(|c| c.stats.as_ref()) {
            l.depth_captured += s.depth_captured;
            l.depth_dropped += s.depth_dropped;
            l.depth_host_dropped += s.depth_host_dropped;
            l.color_captured += s.color_captured;
            l.color_dropped += s.color_dropped;
            l.color_host_dropped += s.color_host_dropped;
            l.imu_samples += s.imu_samples;
            l.ir_captured += s.ir_captured;
            l.ir_dropped += s.ir_dropped;
            l.ir_host_dropped += s.ir_host_dropped;
            l.imu_dropped += s.imu_dropped;
            l.imu_host_dropped += s.imu_host_dropped;
            l.records_lost += s.records_lost;
        }
        l
    }

    /// Whether anything was lost.
    pub fn any(&self) -> bool {
        self.depth_dropped
            + self.depth_host_dropped
            + self.color_dropped
            + self.color_host_dropped
            + self.ir_dropped
            + self.ir_host_dropped
            + self.imu_dropped
            + self.imu_host_dropped
            + self.records_lost
            > 0
    }

    /// `depth lost 0.3 % (12 frames), colour lost 12.0 % (1,234 frames)`; empty when
    /// nothing was lost.
    pub fn describe(&self) -> String {
        let pct = |n: u64, of: u64| n as f64 * 100.0 / of.max(1) as f64;
        let mut parts = Vec::new();
        // Frames lost on the host never reached rsrec: they are part of what the camera
        // delivered, not of what rsrec captured.
        for (what, unit, n, host, of) in [
            (
                "depth",
                "frames",
                self.depth_dropped,
                self.depth_host_dropped,
                self.depth_captured,
            ),
            (
                "colour",
                "frames",
                self.color_dropped,
                self.color_host_dropped,
                self.color_captured,
            ),
            (
                "infrared",
                "frames",
                self.ir_dropped,
                self.ir_host_dropped,
                self.ir_captured,
            ),
            (
                "IMU",
                "samples",
                self.imu_dropped,
                self.imu_host_dropped,
                self.imu_samples,
            ),
        ] {
            if n + host > 0 {
                let on_host = if host > 0 {
                    format!(", {host} of them on the host before rsrec had them")
                } else {
                    String::new()
                };
                parts.push(format!(
                    "{what} lost {:.1} % ({} {unit}{on_host})",
                    pct(n + host, of + host),
                    n + host
                ));
            }
        }
        if self.records_lost > 0 {
            parts.push(format!("{} gap/event records lost", self.records_lost));
        }
        parts.join(", ")
    }
}

impl Default for SessionManifest {
    fn default() -> Self {
        SessionManifest {
            // A manifest without the field predates it: version 1.
            manifest_version: 1,
            rsrec_version: String::new(),
            format_version: 0,
            session: String::new(),
            host: String::new(),
            command_line: Vec::new(),
            start_utc: String::new(),
            start_utc_us: 0,
            stop_utc: None,
            stop_utc_us: None,
            status: SessionStatus::default(),
            settings: RecordSettings::default(),
            cameras: Vec::new(),
            losses: None,
            cameras_left_out: Vec::new(),
        }
    }
}

impl SessionManifest {
    /// A manifest for a session starting now-ish at `start_utc_us`, written by this rsrec.
    pub fn new(session: &str, start_utc_us: i64) -> Self {
        SessionManifest {
            manifest_version: MANIFEST_VERSION,
            rsrec_version: env!("CARGO_PKG_VERSION").to_string(),
            format_version: crate::container::format::FORMAT_VERSION,
            session: session.to_string(),
            host: hostname(),
            start_utc: crate::container::fmt_utc(start_utc_us),
            start_utc_us,
            status: SessionStatus::Recording,
            ..SessionManifest::default()
        }
    }

    /// Marks the session stopped at `stop_utc_us` with `status`.
    pub fn stop(&mut self, stop_utc_us: i64, status: SessionStatus) {
        self.stop_utc = Some(crate::container::fmt_utc(stop_utc_us));
        self.stop_utc_us = Some(stop_utc_us);
        self.status = status;
    }

    /// Parses a manifest.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The manifest as pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).expect("a manifest serialises") + "\n"
    }

    /// Reads `path` (a `session.json`), refusing files too large to be one.
    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let io = |source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge {
                path: path.to_path_buf(),
                size,
                max: MAX_MANIFEST_BYTES,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::from_json(&text).map_err(|source| ManifestError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes `dir/session.json` atomically: a temporary file, fsynced, then renamed over
    /// the old manifest, so a reader (or a crash) sees the old or the new one, never half.
    pub fn write(&self, dir: &Path) -> Result<(), ManifestError> {
        use std::io::Write;
        let tmp = dir.join(MANIFEST_TMP);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ManifestError::Io { path, source }
        };
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(self.to_json().as_bytes())?;
            f.sync_all()
        })();
        if let Err(e) = result {
            // Never leave a partial temporary file behind (a full disk is the usual cause).
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&tmp)(e));
        }
        let dest = dir.join(MANIFEST_FILE);
        std::fs::rename(&tmp, &dest).map_err(io(&dest))
    }

    /// Keeps [`MANIFEST_RESERVE_BYTES`] of the disk for the final `session.json`: a file
    /// that [`SessionManifest::release_reserve`] deletes just before the last write, so that
    /// a disk that filled up during the recording still takes the manifest that says so.
    pub fn reserve_space(dir: &Path) -> std::io::Result<()> {
        let path = dir.join(MANIFEST_RESERVE);
        let r = std::fs::write(&path, vec![0u8; MANIFEST_RESERVE_BYTES]);
        if r.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        r
    }

    /// Deletes the file of [`SessionManifest::reserve_space`] (if any).
    pub fn release_reserve(dir: &Path) {
        let _ = std::fs::remove_file(dir.join(MANIFEST_RESERVE));
    }

    /// The camera named `name`.
    pub fn camera(&self, name: &str) -> Option<&CameraManifest> {
        self.cameras.iter().find(|c| c.name == name)
    }
}

/// Why a session name or camera name is not a plain name, if it is not: it must be
/// non-empty, not `.` or `..`, without `/`, `\` or NUL, and not start with `.` (hidden files
/// and the manifest's temporary file).
pub fn check_plain_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("is empty")
    } else if name.contains(['/', '\\', '\0']) {
        Err("must not contain a path separator")
    } else if name.starts_with('.') {
        Err("must not start with '.'")
    } else {
        Ok(())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_unknown_statuses() {
        let mut m = SessionManifest::new("s", 1_700_000_000_000_000);
        m.cameras.push(CameraManifest {
            name: "cam0".into(),
            files: vec!["cam0.rsrec".into()],
            stats: Some(StatsSnapshot {
                depth_written: 7,
                ..Default::default()
            }),
            ..Default::default()
        });
        m.stop(1_700_000_010_000_000, SessionStatus::DiskFull);
        let back = SessionManifest::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
        assert!(m.to_json().contains("\"stopped: disk nearly full\""));
        let other =
            SessionManifest::from_json(r#"{"status": "paused by a future rsrec"}"#).unwrap();
        assert_eq!(
            other.status,
            SessionStatus::Other("paused by a future rsrec".into())
        );
    }

    #[test]
    fn an_old_manifest_without_version_reads_as_version_1() {
        let m = SessionManifest::from_json(
            r#"{"session": "x", "status": "complete", "cameras": [{"name": "a", "files": ["a.rsrec"], "extra": 1}], "future_field": true}"#,
        )
        .unwrap();
        assert_eq!(m.manifest_version, 1);
        assert_eq!(m.status, SessionStatus::Complete);
        assert_eq!(m.cameras[0].files, ["a.rsrec"]);
    }

    #[test]
    fn streams_written_by_rsrec_0_1_still_read() {
        // 0.1.0 wrote properties as [key, value] pairs and the IMU format as motionxyz32f.
        let m = SessionManifest::from_json(
            r#"{"cameras": [{"name": "a", "streams": [{"id": 2, "kind": "gyro", "name": "gyro",
                "width": 0, "height": 0, "format": "motionxyz32f", "fps": 200.0,
                "depth_units": 0.0, "intrinsics": null, "extrinsics": null,
                "properties": [["sensor", "Motion Module"]]}]}]}"#,
        )
        .unwrap();
        let s = &m.cameras[0].streams[0];
        assert_eq!(s.format, crate::container::PixelFormat::MotionXyz32f);
        assert_eq!(
            s.properties,
            [("sensor".to_string(), "Motion Module".to_string())]
        );
        // Written back in today's shape.
        let text = m.to_json();
        assert!(text.contains("\"motion_xyz32f\""), "{text}");
        assert!(text.contains("\"sensor\": \"Motion Module\""), "{text}");
    }

    #[test]
    fn write_is_atomic_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = SessionManifest::new("s", 0);
        m.write(dir.path()).unwrap();
        assert!(!dir.path().join(MANIFEST_TMP).exists());
        let back = SessionManifest::read(&dir.path().join(MANIFEST_FILE)).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn a_huge_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(MANIFEST_FILE);
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(MAX_MANIFEST_BYTES + 1).unwrap();
        assert!(matches!(
            SessionManifest::read(&p),
            Err(ManifestError::TooLarge { .. })
        ));
    }
}
