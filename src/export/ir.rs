//! `--to ir`: the infrared streams (format §5.9) of each camera, each on its own clock:
//! `ir_left/NNNNNNNN_<device ms>.png` (8-bit grayscale, the frame number and device time of
//! the frame), `ir_left.csv` (`index,frame_number,device_ts_ms,host_ts_us,file` and the
//! per-frame metadata), and the same frames as arrays: `ir_left.npy` (N x H x W `|u1`),
//! `ir_left_timestamps.npy` (`<f8` device ms), `ir_left_host_timestamps_us.npy` (`<u8`) and
//! `ir_left_frame_numbers.npy` (`<u8`); likewise `ir_right`. The two imagers of a D4xx
//! expose together: a left and a right frame of one exposure share frame number and device
//! time. Written incrementally: memory does not grow with the number of frames.

use super::npy::NpyWriter;
use super::*;

/// Encodes an 8-bit grayscale PNG.
pub fn encode_png8(
    data: &[u8],
    width: u32,
    height: u32,
    compression: PngCompression,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 2);
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(match compression {
            PngCompression::Fast => png::Compression::Fast,
            PngCompression::Default => png::Compression::Default,
            PngCompression::Best => png::Compression::Best,
        });
        let err = |e: png::EncodingError| ExportError::Internal(format!("PNG encoding: {e}"));
        let mut w = enc.write_header().map_err(err)?;
        w.write_image_data(data).map_err(err)?;
        w.finish().map_err(err)?;
    }
    Ok(out)
}

pub(super) fn run_ir(
    job: &Job,
    opts: &ExportOptions,
    progress: &mut dyn Progress,
) -> Result<CameraReport> {
    let cam = job.camera;
    let mut report = report_for(job);
    let mut streams_info = serde_json::Map::new();
    for (stream, sel) in &job.streams {
        let (stream, sel) = (*stream, *sel);
        let d = cam
            .infrared_descriptor(stream)
            .expect("planned with this infrared stream");
        let (w, h) = (d.width, d.height);
        let n = cam.infrared_frame_len(stream)?;
        let raw = n as u64;
        let name = stream.name();
        let images = job.dir.join(name);
        std::fs::create_dir_all(&images).map_err(|e| ExportError::io(&images, e))?;
        let keys = metadata_keys(cam, stream, &sel)?;
        let mut columns = String::from("index,frame_number,device_ts_ms,host_ts_us,file");
        for k in &keys {
            columns.push(',');
            columns.push_str(k);
        }
        let mut csv = Csv::create_at(job.dir.join(format!("{name}.csv")), &columns)?;
        let count = sel.len() as u64;
        let arr = |suffix: &str, descr: &str, bytes: u64, shape: &[u64]| {
            NpyWriter::create(
                &job.dir.join(format!("{name}{suffix}.npy")),
                descr,
                bytes,
                shape,
            )
        };
        let mut pixels = arr("", "|u1", 1, &[count, h as u64, w as u64])?;
        let mut device = arr("_timestamps", "<f8", 8, &[count])?;
        let mut host = arr("_host_timestamps_us", "<u8", 8, &[count])?;
        let mut numbers = arr("_frame_numbers", "<u8", 8, &[count])?;
        ordered(
            sel.len(),
            opts.workers(true),
            |j| {
                let pos = sel.position(j);
                let mut scratch = Vec::new();
                let mut buf = vec![0u8; n];
                let decoded = cam.read_infrared_into(stream, pos, &mut scratch, &mut buf);
                match decoded {
                    Ok(_) => {}
                    Err(e @ crate::session::SessionError::Frame { .. }) if opts.skip_damaged => {
                        buf.fill(0);
                        return Ok((buf, Err(crate::error::chain(&e))));
                    }
                    Err(e @ crate::session::SessionError::Frame { .. }) => {
                        let file = match &e {
                            crate::session::SessionError::Frame { file, .. } => file.clone(),
                            _ => String::new(),
                        };
                        return Err(ExportError::Damaged {
                            file,
                            source: Box::new(e),
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
                let file = frame_file_name(cam, stream, &sel, j, "png");
                let png = encode_png8(&buf, w, h, opts.png_compression)?;
                write_new(&images.join(&file), &png)?;
                Ok((buf, Ok((format!("{name}/{file}"), png.len() as u64))))
            },
            |j, (buf, item)| {
                opts.check_stop()?;
                let pos = sel.position(j);
                let e = cam
                    .entry(stream, pos)
                    .ok_or_else(|| ExportError::Internal(format!("no index entry {pos}")))?;
                let meta = metadata_values(cam, stream, pos, &keys)?;
                pixels.write(&buf)?;
                device.write_f64(e.device_ts_ms)?;
                host.write_u64(e.host_ts_us.max(0) as u64)?;
                numbers.write_u64(e.frame_number)?;
                match item {
                    Ok((file, len)) => {
                        csv.row_with_metadata(pos, &e, &file, &meta)?;
                        report.frames += 1;
                        report.bytes_written += len;
                    }
                    Err(why) => {
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
        for a in [pixels, device, host, numbers] {
            a.finish()?;
        }
        report.bytes_written += count * (raw + 24);
        streams_info.insert(
            name.into(),
            json!({
                "stream": d,
                "frames": count,
                "start": sel.start,
                "end": sel.end,
                "every": sel.step,
            }),
        );
    }
    let mut extra = damaged_info(&report);
    if let Some(o) = extra.as_object_mut() {
        o.insert("infrared".into(), serde_json::Value::Object(streams_info));
    }
    report.bytes_written += write_info(job, opts, extra)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bit_pngs_decode_to_their_pixels() {
        let pixels: Vec<u8> = (0..=255u8).cycle().take(37 * 11).collect();
        for c in [PngCompression::Fast, PngCompression::Best] {
            let png = encode_png8(&pixels, 37, 11, c).unwrap();
            let dec = png::Decoder::new(std::io::Cursor::new(png));
            let mut r = dec.read_info().unwrap();
            let mut out = vec![0u8; r.output_buffer_size()];
            let info = r.next_frame(&mut out).unwrap();
            assert_eq!((info.width, info.height), (37, 11));
            assert_eq!(info.bit_depth, png::BitDepth::Eight);
            assert_eq!(&out[..info.buffer_size()], &pixels[..]);
        }
    }
}
