//! Planning an export: every camera's selection, output folder and colour pairing are
//! checked before anything is written.

use super::*;

pub(super) fn plan<'a>(
    rec: &'a Recording,
    opts: &ExportOptions,
    progress: &mut dyn Progress,
) -> Result<Vec<Job<'a>>> {
    let cams = rec.select_cameras(&opts.cameras)?;
    let explicit = !opts.cameras.is_empty();
    let start_us = rec.start_us();
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for cam in cams {
        let stream = opts.format.stream_of(cam);
        if let (Window::Time(_), Some(n)) = (opts.window, cam.timeline_notice()) {
            skipped.push(format!("{n} (--time counts by it)"));
        }
        if cam.count(stream) == 0 {
            let msg = format!("{}: no {} to export", cam.name, stream.frames_name());
            if explicit {
                return Err(ExportError::Input(msg));
            }
            skipped.push(format!("{msg}; skipping it"));
            continue;
        }
        if stream == Stream::Depth {
            // Frames above the reader's limit fail here, before any folder is made.
            cam.depth_frame_len()?;
        }
        let sel = select(cam, stream, opts.window, opts.every, start_us)?;
        let dir = opts.out.join(&cam.name).join(opts.format.name());
        let mut job = Job {
            camera: cam,
            sel,
            dir,
            pairing: None,
            mapping: None,
            warnings: Vec::new(),
            streams: Vec::new(),
        };
        if opts.format == Format::Ir {
            for s in cam.infrared_streams() {
                // Frames above the reader's limit fail here, before any folder is made.
                cam.infrared_frame_len(s)?;
                if cam.count(s) > 0 {
                    job.streams
                        .push((s, select(cam, s, opts.window, opts.every, start_us)?));
                }
            }
        }
        match opts.format {
            Format::Ply => {
                let depth = cam
                    .depth
                    .as_ref()
                    .expect("depth frames imply a depth stream");
                if depth.intrinsics.is_none() {
                    return Err(ExportError::Input(format!(
                        "{}: the depth stream has no intrinsics, which PLY needs (for PNG folders: rsrec import --intrinsics)",
                        cam.name
                    )));
                }
                if opts.color {
                    match (&cam.color, cam.count(Stream::Color)) {
                        (Some(c), n) if n > 0 => match ColorMapping::choose(depth, c) {
                            Ok(m) => {
                                job.mapping = Some(m);
                                job.pairing = Some(pairing_clock(cam));
                            }
                            Err(why) => job
                                .warnings
                                .push(format!("{}: point clouds without colour: {why}", cam.name)),
                        },
                        _ => {}
                    }
                }
            }
            Format::Npy if opts.color => {
                if cam.count(Stream::Color) == 0 {
                    return Err(ExportError::Input(format!(
                        "{}: --with-color: the camera has no colour frames",
                        cam.name
                    )));
                }
                job.pairing = Some(pairing_clock(cam));
            }
            _ => {}
        }
        if job.pairing.is_some() || opts.format == Format::Color {
            cam.color_frame_len()?;
            for (seg, path) in &cam.videos {
                if !path.is_file() {
                    return Err(ExportError::Input(format!(
                        "{}: colour video {} (segment {seg}) is missing",
                        cam.name,
                        path.display()
                    )));
                }
            }
        }
        jobs.push(job);
    }
    if jobs.is_empty() {
        return Err(ExportError::Input(format!(
            "nothing to export: no camera of {} has {}",
            rec.description,
            match opts.format {
                Format::Ir => "infrared frames (record with --ir)",
                f => f.stream().frames_name(),
            }
        )));
    }
    for j in &jobs {
        if !opts.force && is_nonempty(&j.dir) {
            return Err(ExportError::Exists {
                path: j.dir.clone(),
            });
        }
    }
    if opts.format == Format::Color || jobs.iter().any(|j| j.pairing.is_some()) {
        check_ffmpeg(&opts.ffmpeg)?;
    }
    for w in skipped.iter().chain(jobs.iter().flat_map(|j| &j.warnings)) {
        progress.warn(w);
    }
    Ok(jobs)
}

pub(super) fn frame_bytes(c: &Camera, stream: Stream) -> u64 {
    match stream {
        Stream::Depth => c.depth_frame_bytes(),
        Stream::Color => c
            .color
            .as_ref()
            .map_or(0, |d| d.width as u64 * d.height as u64 * 3),
        Stream::IrLeft | Stream::IrRight => c
            .infrared_descriptor(stream)
            .map_or(0, |d| d.width as u64 * d.height as u64),
    }
}

pub(super) fn pairing_clock(cam: &Camera) -> Clock {
    match (cam.ts_domain(Stream::Depth), cam.ts_domain(Stream::Color)) {
        (Some(a), Some(b)) if a == b && a != ts_domain::NONE => Clock::Device,
        _ => Clock::Host,
    }
}

/// Applies the window to one camera's stream.
pub(super) fn select(
    cam: &Camera,
    stream: Stream,
    window: Window,
    every: usize,
    start_us: Option<i64>,
) -> Result<Selection> {
    let count = cam.count(stream);
    match window {
        Window::All => Ok(Selection {
            start: 0,
            end: count,
            step: every,
        }),
        Window::Frames(r) => {
            select::frames_selection(r, count, every, &cam.name, stream.frames_name())
                .map_err(ExportError::Selection)
        }
        Window::Time(t) => {
            let start = start_us.unwrap_or(0);
            let at = |s: f64| start.saturating_add((s * 1e6).round() as i64);
            let a = t.start_s.map_or(0, |s| cam.seek_time(stream, at(s)));
            let b = t.end_s.map_or(count, |s| cam.seek_time(stream, at(s)));
            if a >= b {
                let rel = |k: usize| {
                    cam.time_us(stream, k)
                        .map_or(f64::NAN, |t| (t - start) as f64 / 1e6)
                };
                return Err(ExportError::Selection(format!(
                    "--time {t} selects no {} of {}: they span {:.3} s to {:.3} s from the start of the recording",
                    stream.frames_name(),
                    cam.name,
                    rel(0),
                    rel(count - 1)
                )));
            }
            Ok(Selection {
                start: a,
                end: b,
                step: every,
            })
        }
    }
}

pub(super) fn is_nonempty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut it) => it.next().is_some(),
        // A file (or something unreadable) in the way counts as existing output.
        Err(_) => dir.symlink_metadata().is_ok(),
    }
}

pub(super) fn prepare_dir(dir: &Path, force: bool) -> Result<()> {
    if force {
        match dir.symlink_metadata() {
            Ok(m) if m.is_dir() => {
                std::fs::remove_dir_all(dir).map_err(|e| ExportError::io(dir, e))?
            }
            Ok(_) => std::fs::remove_file(dir).map_err(|e| ExportError::io(dir, e))?,
            Err(_) => {}
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| ExportError::io(dir, e))
}

pub(super) fn check_ffmpeg(ffmpeg: &Path) -> Result<()> {
    match std::process::Command::new(ffmpeg)
        .arg("-version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(ExportError::Video(format!(
            "`{} -version` failed ({s}); FFmpeg is needed to decode colour",
            ffmpeg.display()
        ))),
        Err(e) => Err(ExportError::Video(format!(
            "ffmpeg not found at {:?} ({e}); install FFmpeg or pass --ffmpeg PATH: it is needed to decode colour",
            ffmpeg
        ))),
    }
}
