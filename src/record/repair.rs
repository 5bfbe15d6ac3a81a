//! After a crash: `rsrec recover SESSION` repairs every file of a session and its manifest
//! in one command.
//!
//! A recorder that was killed (kill -9, a power cut, a panic) leaves `session.json` at
//! `recording` with no file list and no statistics, and its `.rsrec` files unclosed. For
//! each camera of the manifest, every file of it (`NAME.rsrec`, `NAME.NNN.rsrec`) that is
//! not closed and verifying is recovered into a hidden temporary file beside it, which must
//! verify before it replaces the original (crash-safe: a repair that is itself interrupted
//! leaves the original). The manifest then gets the file and video lists, statistics read
//! from the files (frames written, frames lost as counted by gap records), a stop time (the
//! last record's host time) and the status `recovered after a crash`; the space reserve
//! and a temporary manifest left by the recorder are removed.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::container::format::record_type;
use crate::container::recover::{recover_with_progress, verify, RecoverReport};
use crate::container::{ContainerError, GapReason, Reader};
use crate::session::manifest::MANIFEST_TMP;
use crate::session::{ManifestError, SessionManifest, SessionStatus, StatsSnapshot, MANIFEST_FILE};
use crate::source::stream_id;

/// Errors of repairing a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepairError {
    #[error("{}: not a session folder (no {MANIFEST_FILE})", dir.display())]
    NotASession { dir: PathBuf },
    #[error("reading the manifest")]
    Manifest(#[source] ManifestError),
    #[error("{}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: ContainerError,
    },
    #[error("{}: the recovered file does not verify ({problem})", path.display())]
    StillBroken { path: PathBuf, problem: String },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the manifest")]
    WriteManifest(#[source] ManifestError),
}

/// What was done to one file.
#[derive(Clone, Debug, Serialize)]
pub struct FileRepair {
    /// The file, relative to the session folder.
    pub file: String,
    /// `None`: it was closed and verified, and was left alone.
    pub recovered: Option<RecoverReport>,
}

/// What [`repair_session`] did.
#[derive(Clone, Debug, Serialize)]
pub struct SessionRepair {
    pub status_before: String,
    pub status_after: String,
    pub files: Vec<FileRepair>,
}

impl SessionRepair {
    /// Whether any file lost more than a torn last record (exit code 3).
    pub fn lossy(&self) -> bool {
        self.files
            .iter()
            .filter_map(|f| f.recovered.as_ref())
            .any(RecoverReport::lost_data_in_middle)
    }
}

/// The `.rsrec` files of camera `name` in `dir`, in recording order.
fn camera_files(dir: &Path, name: &str) -> std::io::Result<(Vec<String>, Vec<String>)> {
    let mut files = Vec::new();
    let mut videos = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let f = e?.file_name().to_string_lossy().into_owned();
        let Some(rest) = f.strip_prefix(name) else {
            continue;
        };
        let numbered = |s: &str| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit());
        if rest == ".rsrec"
            || rest
                .strip_prefix('.')
                .and_then(|r| r.strip_suffix(".rsrec"))
                .is_some_and(numbered)
        {
            files.push(f);
        } else if rest
            .strip_prefix(".color.")
            .and_then(|r| r.strip_suffix(".mkv"))
            .is_some_and(numbered)
        {
            videos.push(f);
        }
    }
    files.sort();
    videos.sort();
    Ok((files, videos))
}

/// Repairs the session in `dir` (see the module docs). `progress(file, offset, len)` is
/// called while a file is recovered.
pub fn repair_session(
    dir: &Path,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<SessionRepair, RepairError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    if !manifest_path.is_file() {
        return Err(RepairError::NotASession {
            dir: dir.to_path_buf(),
        });
    }
    let mut manifest = SessionManifest::read(&manifest_path).map_err(RepairError::Manifest)?;
    let status_before = manifest.status.to_string();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RepairError::Io { path, source }
    };
    let mut done = Vec::new();
    let mut last_host_us = manifest.start_utc_us;
    for cam in &mut manifest.cameras {
        let (files, videos) = camera_files(dir, &cam.name).map_err(io(dir))?;
        let mut stats = StatsSnapshot::default();
        for f in &files {
            let path = dir.join(f);
            let file_err = |source| RepairError::File {
                path: path.clone(),
                source,
            };
            let intact = match Reader::open(&path) {
                Ok(reader) => reader.is_closed() && verify(&reader).ok(),
                Err(e @ ContainerError::Io { .. }) => return Err(file_err(e)),
                // A damaged header: recovery uses its copy (§5.7).
                Err(_) => false,
            };
            let recovered = if intact {
                None
            } else {
                let tmp = dir.join(format!(".{f}.recovering"));
                let report =
                    recover_with_progress(&path, &tmp, true, &mut |at, len| progress(f, at, len))
                        .map_err(|e| {
                        let _ = std::fs::remove_file(&tmp);
                        file_err(e)
                    })?;
                let check = Reader::open(&tmp).map(|r| verify(&r));
                match check {
                    Ok(v) if v.ok() => {}
                    other => {
                        let _ = std::fs::remove_file(&tmp);
                        let problem = match other {
                            Ok(v) => v
                                .problems
                                .first()
                                .map(|p| format!("offset {}: {}", p.offset, p.message))
                                .unwrap_or_default(),
                            Err(e) => crate::error::chain(&e),
                        };
                        return Err(RepairError::StillBroken { path, problem });
                    }
                }
                std::fs::rename(&tmp, &path).map_err(io(&path))?;
                Some(report)
            };
            // Statistics from what the (now closed) file holds.
            let r = Reader::open(&path).map_err(file_err)?;
            let written = r.frame_count(stream_id::DEPTH) as u64;
            stats.depth_written += written;
            stats.depth_stored_bytes += r
                .section(stream_id::DEPTH, record_type::DEPTH_FRAME)
                .map_or(0, |s| s.payload_bytes);
            for (stream, g) in r.gaps().map_err(file_err)? {
                if stream != stream_id::DEPTH {
                    continue;
                }
                match g.reason {
                    GapReason::SourceSkipped => stats.depth_source_skipped += g.count,
                    GapReason::DeviceDisconnected => {}
                    _ => stats.depth_dropped += g.count,
                }
            }
            for st in [stream_id::GYRO, stream_id::ACCEL] {
                for i in 0..r.count(st, record_type::IMU_BATCH) {
                    let (_, p) = r
                        .read_record(st, record_type::IMU_BATCH, i)
                        .map_err(file_err)?;
                    stats.imu_samples += p
                        .get(..4)
                        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64);
                }
            }
            stats.color_queued += r.count(stream_id::COLOR, record_type::COLOR_FRAME) as u64;
            stats.file_bytes += r.file_len();
            // Data records only: recovery's own event is stamped with the time of repair.
            for s in r.sections().iter().filter(|s| {
                matches!(
                    s.record_type,
                    record_type::DEPTH_FRAME | record_type::COLOR_FRAME | record_type::IMU_BATCH
                )
            }) {
                if let Some(e) = r.entries(s.stream, s.record_type).last() {
                    last_host_us = last_host_us.max(e.host_ts_us);
                }
            }
            done.push(FileRepair {
                file: f.clone(),
                recovered,
            });
        }
        if cam.stats.is_none() {
            let (w, h) = cam
                .streams
                .iter()
                .find(|s| s.id == stream_id::DEPTH)
                .map_or((0, 0), |s| (s.width as u64, s.height as u64));
            stats.depth_captured = stats.depth_written + stats.depth_dropped;
            stats.depth_raw_bytes = stats.depth_written * w * h * 2;
            if stats.depth_stored_bytes > 0 {
                stats.compression_ratio =
                    stats.depth_raw_bytes as f64 / stats.depth_stored_bytes as f64;
            }
            stats.segments = files.len() as u64;
            stats.finished = true;
            stats.error = Some(
                "the recorder ended without closing its files (a crash or kill); \
                 repaired by rsrec recover"
                    .into(),
            );
            cam.stats = Some(stats);
        }
        cam.files = files;
        cam.color_videos = videos;
    }
    if manifest.status == SessionStatus::Recording {
        manifest.stop(last_host_us, SessionStatus::Recovered);
    }
    SessionManifest::release_reserve(dir);
    let _ = std::fs::remove_file(dir.join(MANIFEST_TMP));
    manifest.write(dir).map_err(RepairError::WriteManifest)?;
    Ok(SessionRepair {
        status_before,
        status_after: manifest.status.to_string(),
        files: done,
    })
}
