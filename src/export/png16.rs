//! `--to png16`: one 16-bit grayscale PNG per depth frame (`NNNNNNNN_<device ms>.png`)
//! plus `frames.csv`.

use super::*;

/// Encodes a 16-bit grayscale PNG (samples big-endian, as PNG requires).
pub fn encode_png16(
    data: &[u16],
    width: u32,
    height: u32,
    compression: PngCompression,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Sixteen);
        enc.set_compression(match compression {
            PngCompression::Fast => png::Compression::Fast,
            PngCompression::Default => png::Compression::Default,
            PngCompression::Best => png::Compression::Best,
        });
        let err = |e: png::EncodingError| ExportError::Internal(format!("PNG encoding: {e}"));
        let mut w = enc.write_header().map_err(err)?;
        let mut be = Vec::with_capacity(data.len() * 2);
        for v in data {
            be.extend_from_slice(&v.to_be_bytes());
        }
        w.write_image_data(&be).map_err(err)?;
        w.finish().map_err(err)?;
    }
    Ok(out)
}

pub(super) fn run_png16(
    job: &Job,
    opts: &ExportOptions,
    progress: &mut dyn Progress,
) -> Result<CameraReport> {
    let cam = job.camera;
    let d = cam.depth.as_ref().expect("planned with depth");
    let (w, h) = (d.width, d.height);
    let n = cam.depth_frame_len()?;
    let raw = cam.depth_frame_bytes();
    let mut report = report_for(job);
    let imu = imu::read(job)?;
    let sel = job.sel;
    // One column per per-frame metadata key (exposure, gain, laser power, ...).
    let keys = metadata_keys(cam, Stream::Depth, &sel)?;
    let mut columns = String::from("index,frame_number,device_ts_ms,host_ts_us,file");
    for k in &keys {
        columns.push(',');
        columns.push_str(k);
    }
    let mut csv = Csv::create(&job.dir, &columns)?;
    ordered(
        sel.len(),
        opts.workers(false),
        |j| {
            let pos = sel.position(j);
            let mut buf = vec![0u16; n];
            if let Err(why) = opts.read_depth(cam, pos, &mut buf)? {
                return Ok(Err(why));
            }
            let name = frame_file_name(cam, Stream::Depth, &sel, j, "png");
            let png = encode_png16(&buf, w, h, opts.png_compression)?;
            write_new(&job.dir.join(&name), &png)?;
            Ok(Ok((name, png.len() as u64)))
        },
        |j, item| {
            opts.check_stop()?;
            let pos = sel.position(j);
            let e = cam
                .entry(Stream::Depth, pos)
                .ok_or_else(|| ExportError::Internal(format!("no index entry {pos}")))?;
            let meta = metadata_values(cam, Stream::Depth, pos, &keys)?;
            match item {
                Ok((name, len)) => {
                    csv.row_with_metadata(pos, &e, &name, &meta)?;
                    report.frames += 1;
                    report.bytes_written += len;
                }
                Err(why) => {
                    // A gap in the frame table: the row without a file.
                    csv.row_with_metadata(pos, &e, "", &meta)?;
                    damaged_warning(&mut report, pos, &why, progress);
                }
            }
            report.raw_bytes += raw;
            progress.advance(1, raw);
            Ok(())
        },
    )?;
    csv.finish()?;
    let mut extra = damaged_info(&report);
    imu::write(
        job,
        imu,
        imu::ImuFiles::Csv,
        &mut report,
        &mut extra,
        progress,
    )?;
    report.bytes_written += write_info(job, opts, extra)?;
    Ok(report)
}
