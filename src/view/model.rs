//! The viewer's model, free of any UI: a recording opened read-only as one session, its
//! global time axis, per-camera frame lookup by time, gap and drop spans, notices about
//! unclosed or recovered files, the info panel's facts, and time parsing and formatting.
//!
//! Time: every frame has a host timestamp (UTC microseconds, the same clock for every camera
//! of a session), so the session's time axis is host time, counted from the earliest frame of
//! any stream of any camera. A camera's frame at time `t` is its last frame whose host
//! timestamp is at or before `t` (found by binary search in the index, so lookups cost the
//! same in a 12-hour file as in a short one).

use std::path::{Path, PathBuf};

use super::error::{Result, ViewError};
use crate::container::{fmt_utc, OpenedVia};
use crate::session::{Camera, Recording, SessionManifest, SessionStatus, Stream};

/// A stretch of the time axis where a stream lost frames, in microseconds from the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: i64,
    pub end: i64,
    pub stream: Stream,
    /// Frames missing in the stretch (from frame numbers, else from the frame period).
    pub missing: u64,
}

/// What the info panel shows for one file.
#[derive(Clone, Debug)]
pub struct FileInfo {
    pub path: PathBuf,
    pub bytes: u64,
    pub closed: bool,
    pub opened_via: OpenedVia,
    pub torn_tail_bytes: u64,
    pub writer: String,
}

/// One camera of the session as the viewer sees it.
pub struct CameraView {
    pub name: String,
    /// Lines for the info panel: device, streams, statistics.
    pub info: Vec<(String, String)>,
    pub files: Vec<FileInfo>,
    /// Frames lost according to the gap records of the files.
    pub gap_record_frames: u64,
    /// Metres per depth unit.
    pub depth_units: f32,
}

/// A recording opened for viewing.
pub struct Session {
    pub recording: Recording,
    pub cameras: Vec<CameraView>,
    /// Host timestamp (UTC µs) of the earliest frame: time 0 of the timeline.
    pub start_us: i64,
    /// Length of the timeline in µs (last frame of any camera).
    pub duration_us: i64,
    /// Things the user must know: unclosed files, recovered files, an unfinished session.
    pub notices: Vec<String>,
    pub description: String,
}

impl Session {
    /// Opens a session folder, a folder of `.rsrec` files or one file, read-only.
    pub fn open(path: &Path) -> Result<Self> {
        let recording = Recording::open(path).map_err(ViewError::Open)?;
        let mut notices = session_notice(recording.manifest.as_ref())
            .into_iter()
            .collect::<Vec<_>>();
        let mut cameras = Vec::new();
        for cam in &recording.cameras {
            let (view, mut n) = camera_view(cam);
            notices.append(&mut n);
            cameras.push(view);
        }
        let start_us = recording.start_us().ok_or_else(|| {
            ViewError::Empty(format!(
                "{}: no depth, colour or infrared frames to show",
                recording.description
            ))
        })?;
        let end_us = recording
            .cameras
            .iter()
            .flat_map(|c| Stream::ALL.map(|s| last_time_us(c, s)))
            .flatten()
            .max()
            .unwrap_or(start_us);
        let description = recording.description.clone();
        Ok(Session {
            recording,
            cameras,
            start_us,
            duration_us: (end_us - start_us).max(0),
            notices,
            description,
        })
    }

    /// The camera's frame to show at time `t` (µs from the start): its last frame at or
    /// before `t`, or its first frame when `t` is before it; `None` without frames.
    pub fn frame_at(&self, cam: usize, stream: Stream, t: i64) -> Option<usize> {
        let c = self.recording.cameras.get(cam)?;
        let n = c.count(stream);
        if n == 0 {
            return None;
        }
        let after = c.seek_time(stream, self.start_us.saturating_add(t).saturating_add(1));
        Some(after.saturating_sub(1).min(n - 1))
    }

    /// Time (µs from the start) of frame `k` of a camera's stream.
    pub fn frame_time(&self, cam: usize, stream: Stream, k: usize) -> Option<i64> {
        let c = self.recording.cameras.get(cam)?;
        c.time_us(stream, k).map(|t| t - self.start_us)
    }

    /// Number of frames of a camera's stream.
    pub fn frame_count(&self, cam: usize, stream: Stream) -> usize {
        self.recording
            .cameras
            .get(cam)
            .map_or(0, |c| c.count(stream))
    }

    /// The time of the next frame after `t` of any of the given (camera, stream) pairs, for
    /// stepping forward one frame; `None` at the end.
    pub fn next_frame_time(&self, t: i64, streams: &[(usize, Stream)]) -> Option<i64> {
        streams
            .iter()
            .filter_map(|&(cam, s)| {
                let c = self.recording.cameras.get(cam)?;
                let k = c.seek_time(s, self.start_us.saturating_add(t).saturating_add(1));
                self.frame_time(cam, s, k)
            })
            .min()
    }

    /// The time of the latest frame before `t` of any of the given streams, for stepping
    /// back one frame; `None` at the start.
    pub fn prev_frame_time(&self, t: i64, streams: &[(usize, Stream)]) -> Option<i64> {
        streams
            .iter()
            .filter_map(|&(cam, s)| {
                let c = self.recording.cameras.get(cam)?;
                let k = c.seek_time(s, self.start_us.saturating_add(t));
                k.checked_sub(1).and_then(|k| self.frame_time(cam, s, k))
            })
            .max()
    }

    /// The gap and drop spans of every camera's depth, colour and infrared streams, sorted by start
    /// (one `Vec` per camera). Reads every index entry (about 0.15 µs each: seconds for a
    /// long multi-camera session), so the window runs it on a thread; `stop` ends it early
    /// (returning `None`).
    pub fn scan_gaps(&self, stop: &std::sync::atomic::AtomicBool) -> Option<Vec<Vec<Span>>> {
        self.recording
            .cameras
            .iter()
            .map(|cam| gap_spans(cam, self.start_us, stop))
            .collect()
    }

    /// Wall-clock (UTC) text of time `t`.
    pub fn utc_at(&self, t: i64) -> String {
        fmt_utc(self.start_us.saturating_add(t))
    }
}

fn last_time_us(c: &Camera, s: Stream) -> Option<i64> {
    c.count(s).checked_sub(1).and_then(|k| c.time_us(s, k))
}

/// A notice when the session's manifest says the recording did not finish normally.
fn session_notice(manifest: Option<&SessionManifest>) -> Option<String> {
    match &manifest?.status {
        SessionStatus::Complete => None,
        SessionStatus::Recording => Some(
            "session.json still says \"recording\": the recorder did not finish (killed or still running)"
                .into(),
        ),
        s => Some(format!("the session ended early: {s}")),
    }
}

/// The camera's info-panel facts and its notices.
fn camera_view(cam: &Camera) -> (CameraView, Vec<String>) {
    let mut notices: Vec<String> = cam.timeline_notice().into_iter().collect();
    let mut files = Vec::new();
    let mut gap_record_frames = 0;
    for f in &cam.files {
        let r = &f.reader;
        let name = f.path.display();
        if !r.is_closed() {
            let how = match r.opened_via() {
                OpenedVia::Scan => "a scan of its records",
                _ => "its index blocks",
            };
            notices.push(format!(
                "{name} was not closed (recorder killed or still writing): opened read-only through {how}; `rsrec recover` makes a closed copy"
            ));
        }
        if let Ok(events) = r.events() {
            if events.iter().any(|(_, e)| e.kind == "recovery") {
                notices.push(format!(
                    "{name} was made by `rsrec recover`: lost frames are marked as gaps"
                ));
            }
        }
        if let Ok(gaps) = r.gaps() {
            gap_record_frames += gaps.iter().map(|(_, g)| g.count).sum::<u64>();
        }
        files.push(FileInfo {
            path: f.path.clone(),
            bytes: r.file_len(),
            closed: r.is_closed(),
            opened_via: r.opened_via(),
            torn_tail_bytes: r.torn_tail_bytes(),
            writer: r.header().writer.clone(),
        });
    }
    let mut info = Vec::new();
    if let Some(f) = cam.files.first() {
        let d = &f.reader.header().device;
        let mut text = [
            ("", &d.name),
            ("model ", &d.model),
            ("serial ", &d.serial),
            ("firmware ", &d.firmware),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}{v}"))
        .collect::<Vec<_>>()
        .join(", ");
        for (k, v) in &d.properties {
            text.push_str(&format!("; {k} = {v}"));
        }
        info.push(("device".into(), text));
    }
    for (label, desc, s) in [
        ("depth", cam.depth.as_ref(), Stream::Depth),
        ("colour", cam.color.as_ref(), Stream::Color),
        (
            "ir_left",
            cam.infrared_descriptor(Stream::IrLeft),
            Stream::IrLeft,
        ),
        (
            "ir_right",
            cam.infrared_descriptor(Stream::IrRight),
            Stream::IrRight,
        ),
    ] {
        if let Some(d) = desc {
            info.push((
                label.into(),
                format!(
                    "{}x{} {:?} @ {} fps, {} frames",
                    d.width,
                    d.height,
                    d.format,
                    d.fps,
                    cam.count(s)
                ),
            ));
        }
    }
    let depth_units = cam.depth.as_ref().map_or(0.001, |d| {
        if d.depth_units > 0.0 {
            d.depth_units
        } else {
            0.001
        }
    });
    if cam.depth.is_some() {
        info.push(("depth units".into(), format!("{} mm", depth_units * 1000.0)));
    }
    if let Some(i) = cam.depth.as_ref().and_then(|d| d.intrinsics.as_ref()) {
        info.push((
            "intrinsics".into(),
            format!(
                "fx {:.2}, fy {:.2}, ppx {:.2}, ppy {:.2}, {:?} {:?}",
                i.fx, i.fy, i.ppx, i.ppy, i.model, i.coeffs
            ),
        ));
    }
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    info.push((
        "files".into(),
        format!("{} ({:.1} MB)", files.len(), bytes as f64 / 1e6),
    ));
    let raw = cam.depth_frame_bytes() * cam.count(Stream::Depth) as u64;
    if raw > 0 && bytes > 0 {
        info.push((
            "compression".into(),
            format!("{:.2}x of raw depth", raw as f64 / bytes as f64),
        ));
    }
    info.push((
        "colour videos".into(),
        cam.videos
            .values()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect::<Vec<_>>()
            .join(", "),
    ));
    info.push((
        "gap records".into(),
        format!("{gap_record_frames} frames lost"),
    ));
    (
        CameraView {
            name: cam.name.clone(),
            info,
            files,
            gap_record_frames,
            depth_units,
        },
        notices,
    )
}

/// Spans where a stream lost frames: a jump in frame numbers, or, where frame numbers do not
/// advance (sources without them), a host-time step longer than 1.8 frame periods.
/// Neighbouring spans closer than a period are merged.
fn gap_spans(
    cam: &Camera,
    start_us: i64,
    stop: &std::sync::atomic::AtomicBool,
) -> Option<Vec<Span>> {
    let mut spans = Vec::new();
    for s in Stream::ALL {
        let desc = match s {
            Stream::Depth => cam.depth.as_ref(),
            Stream::Color => cam.color.as_ref(),
            Stream::IrLeft | Stream::IrRight => cam.infrared_descriptor(s),
        };
        let Some(d) = desc else { continue };
        let period_us = if d.fps > 0.0 { 1e6 / d.fps } else { 0.0 };
        let mut prev = None;
        for k in 0..cam.count(s) {
            if k % 65_536 == 0 && stop.load(std::sync::atomic::Ordering::Relaxed) {
                return None;
            }
            let Some(e) = cam.entry(s, k) else { break };
            if let Some(p) = prev {
                let p: crate::container::IndexEntry = p;
                let dn = e.frame_number.saturating_sub(p.frame_number);
                let dt = (cam.entry_time_us(&e) - cam.entry_time_us(&p)) as f64;
                let by_time = if period_us > 0.0 && dt > 1.8 * period_us {
                    (dt / period_us).round() as u64 - 1
                } else {
                    0
                };
                // Consecutive frame numbers: nothing lost, however late the frame came (a
                // busy host delays frames). Without usable numbers, time decides.
                let missing = if dn >= 1 { dn - 1 } else { by_time };
                if missing > 0 {
                    let span = Span {
                        start: cam.entry_time_us(&p) - start_us,
                        end: cam.entry_time_us(&e) - start_us,
                        stream: s,
                        missing,
                    };
                    match spans.last_mut() {
                        Some(l @ Span { .. })
                            if l.stream == s && (span.start - l.end) as f64 <= period_us =>
                        {
                            l.end = span.end;
                            l.missing += missing;
                        }
                        _ => spans.push(span),
                    }
                }
            }
            prev = Some(e);
        }
    }
    spans.sort_by_key(|s| s.start);
    Some(spans)
}

/// `HH:MM:SS.mmm` for `t` µs (negative times get a `-`).
pub fn format_time(t: i64) -> String {
    let sign = if t < 0 { "-" } else { "" };
    let ms = t.unsigned_abs() / 1000;
    format!(
        "{sign}{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Parses a time on the timeline: `SS[.fff]`, `MM:SS[.fff]` or `HH:MM:SS[.fff]`, with an
/// optional trailing `s`; returns µs.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_suffix('s').unwrap_or(s);
    let parts: Vec<&str> = s.split(':').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let (last, rest) = parts.split_last()?;
    let secs: f64 = last.parse().ok()?;
    if !secs.is_finite() || secs < 0.0 || (!rest.is_empty() && secs >= 60.0) {
        return None;
    }
    let mut total = 0.0;
    for (i, p) in rest.iter().enumerate() {
        let v: u64 = p.parse().ok()?;
        if i > 0 && v >= 60 {
            return None;
        }
        total = total * 60.0 + v as f64;
    }
    let us = (total * 60.0 + secs) * 1e6;
    (us < 1e17).then(|| us.round() as i64)
}

/// "1234 mm (1.234 m)" for a raw depth value; "no depth" for 0.
pub fn distance_label(raw: u16, depth_units: f32) -> String {
    if raw == 0 {
        return "no depth".into();
    }
    let m = raw as f64 * depth_units as f64;
    format!("{:.0} mm ({m:.3} m)", m * 1000.0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn times_format_and_parse() {
        assert_eq!(format_time(0), "00:00:00.000");
        assert_eq!(format_time(192_500_000), "00:03:12.500");
        assert_eq!(format_time(45_296_789_000), "12:34:56.789");
        assert_eq!(format_time(-1_500), "-00:00:00.001");
        assert_eq!(parse_time("03:12"), Some(192_000_000));
        assert_eq!(parse_time("1:02:03.5"), Some(3_723_500_000));
        assert_eq!(parse_time(" 12.25s "), Some(12_250_000));
        assert_eq!(parse_time("0"), Some(0));
        for bad in [
            "", "a", "1:60", "1:2:3:4", "-3", "1::2", "nan", "inf", "1:60:00",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(
            parse_time(&format_time(45_296_789_000)),
            Some(45_296_789_000)
        );
    }

    use crate::codec::{CodecId, DepthCodec};
    use crate::container::format::{record_type, ts_domain};
    use crate::container::{FileHeader, RecordHeader, StreamDescriptor, Writer, WriterOptions};

    /// A 4x2 depth file at 30 fps: frames 0..10, then 20..30 (frames 10..19 dropped), each
    /// frame filled with 1000 + its number; frame n at host time 1e9 + n * 33_333 µs.
    pub(crate) fn write_file(path: &Path, close: bool) {
        let header = FileHeader::new(
            Default::default(),
            vec![StreamDescriptor::depth(0, 4, 2, 30.0)],
        );
        let mut w = Writer::create(path, &header, WriterOptions::default()).unwrap();
        for n in (0..10).chain(20..30) {
            let mut payload = Vec::new();
            DepthCodec::Lz4Planes
                .encode(&[1000 + n as u16; 8], 4, 2, &mut payload)
                .unwrap();
            let h = RecordHeader {
                record_type: record_type::DEPTH_FRAME,
                stream: 0,
                codec: CodecId::LZ4_PLANES,
                ts_domain: ts_domain::HARDWARE_CLOCK,
                flags: 0,
                frame_number: n,
                device_ts_ms: n as f64 * 33.333,
                host_ts_us: 1_000_000_000 + n as i64 * 33_333,
            };
            w.write_record(&h, &payload).unwrap();
        }
        if close {
            w.finish().unwrap();
        } else {
            w.flush().unwrap();
            std::mem::forget(w);
        }
    }

    #[test]
    fn frames_by_time_gaps_and_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cam.rsrec");
        write_file(&path, true);
        let s = Session::open(&path).unwrap();
        assert!(s.notices.is_empty(), "{:?}", s.notices);
        assert_eq!(s.cameras.len(), 1);
        assert_eq!(s.duration_us, 29 * 33_333);
        assert_eq!(s.frame_count(0, Stream::Depth), 20);
        // Before, at and between frames; inside the gap the last frame before it stays.
        assert_eq!(s.frame_at(0, Stream::Depth, -5), Some(0));
        assert_eq!(s.frame_at(0, Stream::Depth, 0), Some(0));
        assert_eq!(s.frame_at(0, Stream::Depth, 33_332), Some(0));
        assert_eq!(s.frame_at(0, Stream::Depth, 33_333), Some(1));
        assert_eq!(s.frame_at(0, Stream::Depth, 15 * 33_333), Some(9));
        assert_eq!(s.frame_at(0, Stream::Depth, 20 * 33_333), Some(10));
        assert_eq!(s.frame_at(0, Stream::Depth, i64::MAX / 2), Some(19));
        assert_eq!(s.frame_at(0, Stream::Color, 0), None);
        assert_eq!(s.frame_at(1, Stream::Depth, 0), None);
        // The drop is one span from frame 9 to frame 20, with 10 frames missing.
        let stop = std::sync::atomic::AtomicBool::new(false);
        assert_eq!(
            s.scan_gaps(&stop).unwrap()[0],
            vec![Span {
                start: 9 * 33_333,
                end: 20 * 33_333,
                stream: Stream::Depth,
                missing: 10
            }]
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(s.scan_gaps(&stop), None);
        let st = [(0, Stream::Depth)];
        assert_eq!(s.next_frame_time(0, &st), Some(33_333));
        assert_eq!(s.next_frame_time(9 * 33_333, &st), Some(20 * 33_333));
        assert_eq!(s.next_frame_time(29 * 33_333, &st), None);
        assert_eq!(s.prev_frame_time(20 * 33_333, &st), Some(9 * 33_333));
        assert_eq!(s.prev_frame_time(0, &st), None);
        assert!(s.utc_at(0).starts_with("1970-01-01T00:16:40"));
        let info = &s.cameras[0].info;
        let get = |k: &str| info.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("depth"), Some("4x2 Z16 @ 30 fps, 20 frames"));
        assert_eq!(get("depth units"), Some("1 mm"));
        assert_eq!(get("gap records"), Some("0 frames lost"));
    }

    #[test]
    fn unclosed_files_open_with_a_notice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cam.rsrec");
        write_file(&path, false);
        let s = Session::open(&path).unwrap();
        assert_eq!(s.frame_count(0, Stream::Depth), 20);
        assert_eq!(s.notices.len(), 1, "{:?}", s.notices);
        assert!(s.notices[0].contains("not closed"), "{:?}", s.notices);
        assert!(!s.cameras[0].files[0].closed);
        // `rsrec recover` makes a closed copy, which says where it came from.
        let fixed = dir.path().join("fixed.rsrec");
        crate::container::recover::recover(&path, &fixed, false).unwrap();
        let s = Session::open(&fixed).unwrap();
        assert_eq!(s.frame_count(0, Stream::Depth), 20);
        assert_eq!(s.notices.len(), 1, "{:?}", s.notices);
        assert!(s.notices[0].contains("rsrec recover"), "{:?}", s.notices);
    }

    #[test]
    fn a_killed_session_opens_from_its_files() {
        // What a killed `rsrec record` leaves: session.json still "recording", no files listed.
        let dir = tempfile::tempdir().unwrap();
        write_file(&dir.path().join("cam0.rsrec"), false);
        std::fs::write(
            dir.path().join("session.json"),
            r#"{"status": "recording", "cameras": [{"name": "cam0", "files": []}]}"#,
        )
        .unwrap();
        let s = Session::open(dir.path()).unwrap();
        assert_eq!(s.frame_count(0, Stream::Depth), 20);
        assert!(s.description.contains("unfinished"), "{}", s.description);
        assert_eq!(s.notices.len(), 2, "{:?}", s.notices);
        assert!(
            s.notices[0].contains("still says \"recording\""),
            "{:?}",
            s.notices
        );
        assert!(s.notices[1].contains("not closed"), "{:?}", s.notices);
        // A finished session without files is still an error.
        std::fs::write(
            dir.path().join("session.json"),
            r#"{"status": "complete", "cameras": [{"name": "cam0", "files": []}]}"#,
        )
        .unwrap();
        assert!(Session::open(dir.path()).is_err());
    }

    #[test]
    fn bad_paths_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Session::open(&dir.path().join("missing")).is_err());
        assert!(Session::open(dir.path()).is_err());
        let junk = dir.path().join("junk.rsrec");
        std::fs::write(&junk, b"not an rsrec file at all").unwrap();
        assert!(Session::open(&junk).is_err());
    }

    #[test]
    fn distances() {
        assert_eq!(distance_label(0, 0.001), "no depth");
        assert_eq!(distance_label(1234, 0.001), "1234 mm (1.234 m)");
        assert_eq!(distance_label(1000, 0.0001), "100 mm (0.100 m)");
    }
}
