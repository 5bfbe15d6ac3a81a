//! `--to color`: colour frames decoded by FFmpeg, as PNG or JPEG, plus `frames.csv`.

use super::*;

/// JPEG quality 1-100 to FFmpeg's `-q:v` (2 best .. 31 worst).
pub(super) fn jpeg_qscale(quality: u8) -> u8 {
    let q = quality.clamp(1, 100) as f64;
    (31.0 - (q - 1.0) * 29.0 / 99.0).round() as u8
}

pub(super) fn run_color(
    job: &Job,
    opts: &ExportOptions,
    progress: &mut dyn Progress,
) -> Result<CameraReport> {
    let cam = job.camera;
    let sel = job.sel;
    let raw = frame_bytes(cam, Stream::Color);
    let mut report = report_for(job);
    let output = match opts.image_format {
        ImageFormat::Png => VideoOutput::Png {
            level: match opts.png_compression {
                PngCompression::Fast => Some(1),
                PngCompression::Default => None,
                PngCompression::Best => Some(9),
            },
        },
        ImageFormat::Jpeg => VideoOutput::Jpeg {
            qscale: jpeg_qscale(opts.jpeg_quality),
        },
    };
    let ext = opts.image_format.extension();
    let mut plans: BTreeMap<u32, FramePlan> = BTreeMap::new();
    for pos in sel.iter() {
        let (_, e) = cam.color_frame(pos)?;
        plans
            .entry(e.segment)
            .or_default()
            .push_timed(e.index_in_video, e.video_time_us);
    }
    let mut frames = ColorFrames::new(cam, decoder_config(cam, opts, output), plans);
    let mut csv = Csv::create(&job.dir, "index,frame_number,device_ts_ms,host_ts_us,file")?;
    let mut missing = 0u64;
    for (j, pos) in sel.iter().enumerate() {
        opts.check_stop()?;
        let (_, ce) = cam.color_frame(pos)?;
        let e = cam
            .entry(Stream::Color, pos)
            .ok_or_else(|| ExportError::Internal(format!("no colour index entry {pos}")))?;
        match frames.get(ce.segment, ce.index_in_video)? {
            Some(bytes) => {
                let name = frame_file_name(cam, Stream::Color, &sel, j, ext);
                write_new(&job.dir.join(&name), bytes)?;
                report.bytes_written += bytes.len() as u64;
                csv.row(pos, &e, &name, None)?;
                report.frames += 1;
                report.raw_bytes += raw;
            }
            None => missing += 1,
        }
        progress.advance(1, raw);
    }
    csv.finish()?;
    report.missing_color = missing;
    report
        .warnings
        .extend(missing_warning(cam, missing, progress));
    report.bytes_written += write_info(
        job,
        opts,
        json!({"image_format": ext, "missing_frames": missing}),
    )?;
    Ok(report)
}
