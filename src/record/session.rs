//! The session folder: `OUT/<session>/` with one `.rsrec` file (or one per segment) and one
//! colour video per camera, plus `session.json` describing the session. `session.json` is
//! written when recording starts (status `recording`) and rewritten at the end with the
//! final statistics; it is replaced atomically (write to a temporary file, then rename).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::pipeline::CameraOutcome;
use super::stats::StatsSnapshot;
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
pub fn camera_json(
    name: &str,
    spec: &str,
    info: &SourceInfo,
    files: &[PathBuf],
    videos: &[String],
    stats: Option<&StatsSnapshot>,
) -> Value {
    let file_names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    json!({
        "name": name,
        "source": spec,
        "device": {
            "name": info.device.name,
            "serial": info.device.serial,
            "model": info.device.model,
            "firmware": info.device.firmware,
            "properties": info.device.properties.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        },
        "streams": info.streams,
        "files": file_names,
        "color_videos": videos,
        "stats": stats,
    })
}

/// Builds the session description.
#[allow(clippy::too_many_arguments)]
pub fn session_json(
    session: &str,
    command_line: &[String],
    start_utc_us: i64,
    stop_utc_us: Option<i64>,
    status: &str,
    settings: Value,
    cameras: Vec<Value>,
) -> Value {
    json!({
        "rsrec_version": env!("CARGO_PKG_VERSION"),
        "format_version": crate::container::format::FORMAT_VERSION,
        "session": session,
        "host": hostname(),
        "command_line": command_line,
        "start_utc": crate::container::fmt_utc(start_utc_us),
        "start_utc_us": start_utc_us,
        "stop_utc": stop_utc_us.map(crate::container::fmt_utc),
        "stop_utc_us": stop_utc_us,
        "status": status,
        "settings": settings,
        "cameras": cameras,
    })
}

/// Writes `session.json` atomically.
pub fn write_session_json(dir: &Path, v: &Value) -> std::io::Result<()> {
    let tmp = dir.join(".session.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_string_pretty(v).unwrap_or_default() + "\n",
    )?;
    std::fs::rename(&tmp, dir.join("session.json"))
}

/// Per-camera outcome as `session.json` camera entries.
pub fn outcomes_json(outcomes: &[CameraOutcome], specs: &[String]) -> Vec<Value> {
    outcomes
        .iter()
        .zip(specs)
        .map(|(o, spec)| camera_json(&o.name, spec, &o.info, &o.files, &o.videos, Some(&o.stats)))
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Free bytes on the file system holding `path` (statvfs), or `None` if unknown.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a properly sized out-parameter.
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (r == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
}
