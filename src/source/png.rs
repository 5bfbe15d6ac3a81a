//! `png:DIR`: a folder of 16-bit depth PNGs (`DIR` or `DIR/depth/`), plus colour images in
//! `DIR/color/` (PNG or JPEG) if present, replayed as a camera at a given frame rate.
//! Frame i of each stream is due at i / fps; colour is paired by position in natural order.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Pacing;
use super::{stream_id, ColorFrame, DepthFrame, Sample, Source, SourceError, SourceInfo, Timing};
use crate::container::format::ts_domain;
use crate::container::{DeviceInfo, PixelFormat, StreamDescriptor, StreamKind};
use crate::source::pngdir::{self, PngError};

pub struct PngSource {
    info: SourceInfo,
    depth: Vec<PathBuf>,
    color: Vec<PathBuf>,
    fps: f64,
    pacing: Pacing,
    /// Next (depth, colour) index.
    next: [usize; 2],
    /// Set by the first `next`: time runs from the first sample, not from opening.
    start: Option<Instant>,
    start_utc_us: i64,
}

fn err(e: PngError) -> SourceError {
    SourceError::Png(e)
}

impl PngSource {
    /// Opens a dataset folder. `intrinsics` names an Open3D `camera_intrinsic.json`;
    /// without it, `DIR/camera_intrinsic.json` is used when present.
    pub fn open(
        dir: &Path,
        fps: f64,
        depth_units: f32,
        intrinsics: Option<&Path>,
        pacing: Pacing,
    ) -> Result<Self, SourceError> {
        if !super::fps_in_range(fps) {
            return Err(SourceError::Open(format!(
                "--fps {fps} must be {}..={}",
                super::MIN_FPS,
                super::MAX_FPS
            )));
        }
        if !(depth_units.is_finite() && depth_units > 0.0) {
            return Err(SourceError::Open(format!(
                "depth units {depth_units} must be a positive number of metres"
            )));
        }
        if !dir.is_dir() {
            return Err(SourceError::Open(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let depth = pngdir::list_pngs(&pngdir::depth_dir(dir)).map_err(err)?;
        let first = pngdir::read_depth_png(&depth[0]).map_err(err)?;
        let mut d = StreamDescriptor::depth(stream_id::DEPTH, first.width, first.height, fps);
        d.depth_units = depth_units;
        let auto = dir.join("camera_intrinsic.json");
        let intr = intrinsics
            .map(Path::to_path_buf)
            .or_else(|| auto.is_file().then_some(auto));
        if let Some(p) = intr {
            let (w, h, k) = pngdir::read_open3d_intrinsics(&p).map_err(err)?;
            if (w, h) != (first.width, first.height) {
                return Err(SourceError::Format(format!(
                    "{}: intrinsics are for {w}x{h}, the images are {}x{}",
                    p.display(),
                    first.width,
                    first.height
                )));
            }
            d.intrinsics = Some(k);
        }
        let mut streams = vec![d];
        let color_dir = dir.join("color");
        let color = if color_dir.is_dir() {
            pngdir::list_images(&color_dir, &["png", "jpg", "jpeg"]).unwrap_or_default()
        } else {
            Vec::new()
        };
        if let Some(c0) = color.first() {
            let img = pngdir::read_rgb(c0).map_err(err)?;
            let mut c = StreamDescriptor::depth(stream_id::COLOR, img.width, img.height, fps);
            c.kind = StreamKind::Color;
            c.name = "color".into();
            c.format = PixelFormat::Rgb8;
            c.depth_units = 0.0;
            streams.push(c);
        }
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "png".into());
        Ok(Self {
            info: SourceInfo {
                name,
                device: DeviceInfo {
                    name: "PNG folder".into(),
                    model: "png-folder".into(),
                    properties: vec![("source".into(), format!("png:{}", dir.display()))],
                    ..Default::default()
                },
                streams,
            },
            depth,
            color,
            fps,
            pacing,
            next: [0, 0],
            start: None,
            start_utc_us: crate::container::now_utc_us(),
        })
    }

    pub fn depth_frames(&self) -> usize {
        self.depth.len()
    }
}

impl Source for PngSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        let depth_left = self.next[0] < self.depth.len();
        let color_left = self.next[1] < self.color.len();
        // Colour frame i goes right after depth frame i (same due time).
        let k = match (depth_left, color_left) {
            (false, false) => return Ok(None),
            (true, true) if self.next[1] < self.next[0] => 1,
            (true, _) => 0,
            (false, true) => 1,
        };
        let i = self.next[k];
        self.next[k] += 1;
        let t = i as f64 / self.fps;
        let start = *self.start.get_or_insert_with(Instant::now);
        if self.pacing == Pacing::RealTime {
            let target = start + Duration::from_secs_f64(t);
            let now = Instant::now();
            if target > now {
                std::thread::sleep(target - now);
            }
        }
        let timing = Timing {
            frame_number: i as u64,
            device_ts_ms: t * 1000.0,
            ts_domain: ts_domain::SYNTHETIC,
            host_ts_us: match self.pacing {
                Pacing::RealTime => crate::container::now_utc_us(),
                Pacing::AsFastAsPossible => self.start_utc_us + (t * 1e6).round() as i64,
            },
        };
        let want = &self.info.streams[k];
        if k == 0 {
            let img = pngdir::read_depth_png(&self.depth[i]).map_err(err)?;
            if (img.width, img.height) != (want.width, want.height) {
                return Err(SourceError::Format(format!(
                    "{}: {}x{}, earlier frames are {}x{}",
                    self.depth[i].display(),
                    img.width,
                    img.height,
                    want.width,
                    want.height
                )));
            }
            Ok(Some(Sample::Depth(DepthFrame {
                timing,
                data: img.data,
                metadata: Vec::new(),
            })))
        } else {
            let img = pngdir::read_rgb(&self.color[i]).map_err(err)?;
            if (img.width, img.height) != (want.width, want.height) {
                return Err(SourceError::Format(format!(
                    "{}: colour image size changed",
                    self.color[i].display()
                )));
            }
            Ok(Some(Sample::Color(ColorFrame {
                timing,
                data: img.data,
                metadata: Vec::new(),
            })))
        }
    }
}
