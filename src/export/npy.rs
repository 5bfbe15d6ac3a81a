//! NumPy `.npy` files written incrementally: the header, with the final shape, is written
//! first, then the data is streamed, so an array of N frames never has to be in memory.
//!
//! Format: <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>,
//! version 1.0 (header length < 64 KiB): magic `\x93NUMPY`, version 1.0, `u16` little-endian
//! header length, then a Python dict literal padded with spaces and a final `\n` so that the
//! data starts at a multiple of 64 bytes (which also keeps it aligned for `mmap_mode`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::error::{ExportError, Result};
// The export plan and helpers shared by the formats.
#[allow(unused_imports)]
use super::*;

/// The `.npy` header (magic to padding) for a C-order array.
/// `descr` is a NumPy type string such as `<u2`, `<f8`, `|u1`.
pub fn header(descr: &str, shape: &[u64]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // 6 magic + 2 version + 2 length, then the dict, spaces and '\n' to a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

/// An `.npy` file being written: created as `NAME.partial`, renamed to `NAME` by
/// [`NpyWriter::finish`] once exactly the declared number of bytes has been written. A writer
/// dropped before that (the export failed) removes its partial file.
pub struct NpyWriter {
    out: Option<BufWriter<File>>,
    partial: PathBuf,
    path: PathBuf,
    expected: u64,
    written: u64,
}

impl NpyWriter {
    /// Creates the file and writes the header. `shape[0]` is the number of items, the rest
    /// the shape of one item; `item_bytes` is the byte size of one element.
    pub fn create(path: &Path, descr: &str, item_bytes: u64, shape: &[u64]) -> Result<Self> {
        let partial = partial_path(path);
        let file = File::create(&partial).map_err(|e| ExportError::io(&partial, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header(descr, shape))
            .map_err(|e| ExportError::io(&partial, e))?;
        let expected = shape.iter().product::<u64>() * item_bytes;
        Ok(Self {
            out: Some(out),
            partial,
            path: path.to_path_buf(),
            expected,
            written: 0,
        })
    }

    /// Appends raw little-endian element bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.written += bytes.len() as u64;
        if self.written > self.expected {
            return Err(ExportError::Internal(format!(
                "{}: more data than the declared shape",
                self.path.display()
            )));
        }
        self.out
            .as_mut()
            .expect("open until finished")
            .write_all(bytes)
            .map_err(|e| ExportError::io(&self.partial, e))
    }

    pub fn write_u16s(&mut self, v: &[u16]) -> Result<()> {
        // In chunks, so that a frame costs a small buffer, not a copy of itself.
        let mut buf = [0u8; 8192];
        for chunk in v.chunks(buf.len() / 2) {
            for (b, x) in buf.chunks_exact_mut(2).zip(chunk) {
                b.copy_from_slice(&x.to_le_bytes());
            }
            self.write(&buf[..chunk.len() * 2])?;
        }
        Ok(())
    }

    pub fn write_f64(&mut self, v: f64) -> Result<()> {
        self.write(&v.to_le_bytes())
    }

    pub fn write_u64(&mut self, v: u64) -> Result<()> {
        self.write(&v.to_le_bytes())
    }

    /// Flushes, checks that the declared shape was filled, and renames into place.
    pub fn finish(mut self) -> Result<PathBuf> {
        if self.written != self.expected {
            return Err(ExportError::Internal(format!(
                "{}: wrote {} bytes of data, the header declares {}",
                self.path.display(),
                self.written,
                self.expected
            )));
        }
        let mut out = self.out.take().expect("open until finished");
        out.flush().map_err(|e| ExportError::io(&self.partial, e))?;
        drop(out);
        std::fs::rename(&self.partial, &self.path).map_err(|e| ExportError::io(&self.path, e))?;
        Ok(self.path.clone())
    }
}

impl Drop for NpyWriter {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// `depth_metadata.npy`'s value for a key a frame does not have.
const METADATA_MISSING: i64 = i64::MIN;

pub(super) fn run_npy(
    job: &Job,
    opts: &ExportOptions,
    progress: &mut dyn Progress,
) -> Result<CameraReport> {
    let cam = job.camera;
    let d = cam.depth.as_ref().expect("planned with depth");
    let (w, h) = (d.width as u64, d.height as u64);
    let n_px = cam.depth_frame_len()?;
    let sel = job.sel;
    let n = sel.len() as u64;
    let raw = cam.depth_frame_bytes();
    let dir = &job.dir;
    let mut report = report_for(job);
    let imu = imu::read(job)?;

    let mut depth = npy::NpyWriter::create(&dir.join("depth.npy"), "<u2", 2, &[n, h, w])?;
    let mut ts = npy::NpyWriter::create(&dir.join("timestamps.npy"), "<f8", 8, &[n])?;
    let mut host = npy::NpyWriter::create(&dir.join("host_timestamps_us.npy"), "<u8", 8, &[n])?;
    let mut numbers = npy::NpyWriter::create(&dir.join("frame_numbers.npy"), "<u8", 8, &[n])?;
    // Per-frame metadata (§5.8): N x K int64, one column per key.
    let keys = metadata_keys(cam, Stream::Depth, &sel)?;
    let mut meta = if keys.is_empty() {
        None
    } else {
        Some(npy::NpyWriter::create(
            &dir.join("depth_metadata.npy"),
            "<i8",
            8,
            &[n, keys.len() as u64],
        )?)
    };
    let mut damaged = if opts.skip_damaged {
        Some(npy::NpyWriter::create(
            &dir.join("damaged.npy"),
            "|u1",
            1,
            &[n],
        )?)
    } else {
        None
    };

    struct ColorOut<'a> {
        frames: ColorFrames<'a>,
        pairing: Pairing<'a>,
        color: npy::NpyWriter,
        offset: npy::NpyWriter,
        numbers: npy::NpyWriter,
        zeros: Vec<u8>,
    }
    let mut color = match job.pairing {
        Some(clock) => {
            let c = cam.color.as_ref().expect("planned with colour");
            let (cw, ch) = (c.width, c.height);
            let plans = pairing_plans(cam, &sel, clock)?;
            let cfg = decoder_config(
                cam,
                opts,
                VideoOutput::Raw {
                    width: cw,
                    height: ch,
                },
            );
            Some(ColorOut {
                frames: ColorFrames::new(cam, cfg, plans),
                pairing: Pairing::new(cam, clock),
                color: npy::NpyWriter::create(
                    &dir.join("color.npy"),
                    "|u1",
                    1,
                    &[n, ch as u64, cw as u64, 3],
                )?,
                offset: npy::NpyWriter::create(&dir.join("color_offset_ms.npy"), "<f8", 8, &[n])?,
                numbers: npy::NpyWriter::create(
                    &dir.join("color_frame_numbers.npy"),
                    "<u8",
                    8,
                    &[n],
                )?,
                zeros: vec![0u8; cw as usize * ch as usize * 3],
            })
        }
        None => None,
    };
    let mut missing = 0u64;
    ordered(
        sel.len(),
        opts.workers(true),
        |j| {
            let mut buf = vec![0u16; n_px];
            let hdr = opts.read_depth(cam, sel.position(j), &mut buf)?;
            Ok((hdr, buf))
        },
        |j, (hdr, buf)| {
            opts.check_stop()?;
            let hdr = match hdr {
                Ok(h) => h,
                Err(why) => {
                    // A gap: an all-zero frame (all holes), its index entry's times, and a
                    // 1 in damaged.npy.
                    let pos = sel.position(j);
                    damaged_warning(&mut report, pos, &why, progress);
                    let e = depth_entry(cam, pos)?;
                    RecordHeader {
                        frame_number: e.frame_number,
                        device_ts_ms: e.device_ts_ms,
                        host_ts_us: e.host_ts_us,
                        ..RecordHeader::bare(crate::container::format::record_type::DEPTH_FRAME)
                    }
                }
            };
            if let Some(d) = damaged.as_mut() {
                d.write(&[u8::from(report.damaged.last() == Some(&sel.position(j)))])?;
            }
            depth.write_u16s(&buf)?;
            ts.write_f64(hdr.device_ts_ms)?;
            // The spec's host time is i64; the array is uint64 (times before 1970 clamp to 0).
            host.write_u64(hdr.host_ts_us.max(0) as u64)?;
            numbers.write_u64(hdr.frame_number)?;
            if let Some(m) = meta.as_mut() {
                for v in metadata_values(cam, Stream::Depth, sel.position(j), &keys)? {
                    m.write(&v.unwrap_or(METADATA_MISSING).to_le_bytes())?;
                }
            }
            if let Some(c) = color.as_mut() {
                let e = depth_entry(cam, sel.position(j))?;
                let (cpos, offset) = c.pairing.nearest(&e);
                let (chdr, centry) = cam.color_frame(cpos)?;
                match c.frames.get(centry.segment, centry.index_in_video)? {
                    Some(rgb) => {
                        c.color.write(rgb)?;
                        c.offset.write_f64(offset)?;
                        c.numbers.write_u64(chdr.frame_number)?;
                    }
                    None => {
                        missing += 1;
                        c.color.write(&c.zeros)?;
                        c.offset.write_f64(f64::NAN)?;
                        c.numbers.write_u64(u64::MAX)?;
                    }
                }
            }
            report.frames += 1;
            report.raw_bytes += raw;
            progress.advance(1, raw);
            Ok(())
        },
    )?;
    let mut paths = vec![
        depth.finish()?,
        ts.finish()?,
        host.finish()?,
        numbers.finish()?,
    ];
    if let Some(d) = damaged {
        paths.push(d.finish()?);
    }
    let meta_written = meta.is_some();
    if let Some(m) = meta {
        paths.push(m.finish()?);
    }
    let mut extra = json!({
        "arrays": {
            "depth.npy": "N x H x W uint16 depth (x depth_units = metres, 0 = no data)",
            "timestamps.npy": "N float64 device timestamps, ms",
            "host_timestamps_us.npy": "N uint64 host timestamps, UTC microseconds",
            "frame_numbers.npy": "N uint64 frame numbers",
        }
    });
    if let Some(c) = color {
        paths.push(c.color.finish()?);
        paths.push(c.offset.finish()?);
        paths.push(c.numbers.finish()?);
        let clock = job.pairing.expect("colour implies a pairing");
        extra["color_pairing"] = json!({
            "clock": clock.name(),
            "rule": "for each depth frame, the colour frame whose timestamp is nearest",
            "missing_frames": missing,
        });
        extra["arrays"]["color.npy"] = json!("N x Hc x Wc x 3 uint8 RGB, nearest colour frame");
        extra["arrays"]["color_offset_ms.npy"] =
            json!("N float64: colour timestamp - depth timestamp, ms (NaN: missing)");
        extra["arrays"]["color_frame_numbers.npy"] =
            json!("N uint64 colour frame numbers (2^64-1: missing)");
    }
    report.missing_color = missing;
    report
        .warnings
        .extend(missing_warning(cam, missing, progress));
    for p in paths {
        report.bytes_written += std::fs::metadata(&p).map_or(0, |m| m.len());
    }
    if meta_written {
        extra["arrays"]["depth_metadata.npy"] = json!(format!(
            "N x K int64 per-frame metadata, columns in `metadata_keys` ({METADATA_MISSING}: the frame does not have it)"
        ));
        extra["metadata_keys"] = json!(keys);
    }
    if opts.skip_damaged {
        extra["arrays"]["damaged.npy"] =
            json!("N uint8: 1 = the depth frame was damaged and skipped (its depth is all 0)");
    }
    if let (Some(o), Some(d)) = (extra.as_object_mut(), damaged_info(&report).as_object()) {
        o.extend(d.clone());
    }
    imu::write(
        job,
        imu,
        imu::ImuFiles::Npy,
        &mut report,
        &mut extra,
        progress,
    )?;
    report.bytes_written += write_info(job, opts, extra)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let h = header("<u2", &[3, 240, 424]);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([h[8], h[9]]) as usize;
        assert_eq!(len + 10, h.len());
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(
            text.starts_with("{'descr': '<u2', 'fortran_order': False, 'shape': (3, 240, 424), }")
        );
        assert!(text.ends_with(" \n"));
        let one = header("<f8", &[7]);
        assert!(std::str::from_utf8(&one[10..])
            .unwrap()
            .contains("'shape': (7,), }"));
        assert_eq!(one.len() % 64, 0);
    }

    #[test]
    fn writer_checks_the_declared_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let mut w = NpyWriter::create(&p, "<u2", 2, &[2, 2]).unwrap();
        w.write_u16s(&[1, 2, 3]).unwrap();
        assert!(!p.exists());
        w.write_u16s(&[0xABCD]).unwrap();
        assert!(w.write_u16s(&[5]).is_err());
        drop(w);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "partial removed"
        );
        let dir2 = tempfile::tempdir().unwrap();
        let q = dir2.path().join("b.npy");
        let mut w = NpyWriter::create(&q, "<u2", 2, &[2]).unwrap();
        w.write_u16s(&[7, 8]).unwrap();
        assert_eq!(w.finish().unwrap(), q);
        let bytes = std::fs::read(&q).unwrap();
        assert_eq!(&bytes[bytes.len() - 4..], &[7, 0, 8, 0]);
        let short = NpyWriter::create(&dir2.path().join("c.npy"), "<u2", 2, &[2]).unwrap();
        assert!(short.finish().is_err());
    }
}
