//! The session folder: `OUT/<session>/` with one `.rsrec` file (or one per segment) and one
//! colour video per camera, plus `session.json` ([`crate::session::SessionManifest`]),
//! written when recording starts (status `recording`) and rewritten at the end with the
//! final statistics.

use std::path::{Path, PathBuf};

use super::pipeline::CameraOutcome;
use super::stats::StatsSnapshot;
use crate::session::{CameraManifest, DeviceManifest};
use crate::source::SourceInfo;

/// Session name from the current UTC time: `YYYYmmdd-HHMMSS`.
pub fn default_session_name() -> String {
    let us = crate::container::now_utc_us();
    let iso = crate::container::fmt_utc(us); // 2026-11-22T04:14:34.123456Z
    format!(
        "{}{}{}-{}{}{}",
        &iso[0..4],
        &iso[5..7],
        &iso[8..10],
        &iso[11..13],
        &iso[14..16],
        &iso[17..19]
    )
}

/// Everything `session.json` says about one camera.
pub fn camera_manifest(
    name: &str,
    spec: &str,
    info: &SourceInfo,
    files: &[PathBuf],
    videos: &[String],
    stats: Option<&StatsSnapshot>,
) -> CameraManifest {
    CameraManifest {
        name: name.to_string(),
        source: spec.to_string(),
        device: DeviceManifest::from(&info.device),
        streams: info.streams.clone(),
        files: files
            .iter()
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
        color_videos: videos.to_vec(),
        stats: stats.cloned(),
    }
}

/// Per-camera outcome as `session.json` camera entries.
pub fn outcomes_manifest(outcomes: &[CameraOutcome], specs: &[String]) -> Vec<CameraManifest> {
    outcomes
        .iter()
        .zip(specs)
        .map(|(o, spec)| {
            camera_manifest(&o.name, spec, &o.info, &o.files, &o.videos, Some(&o.stats))
        })
        .collect()
}

/// Free bytes (available to this user) on the file system holding `path`, or `None` if
/// unknown.
pub fn free_bytes(path: &Path) -> Option<u64> {
    fs4::available_space(path).ok()
}
