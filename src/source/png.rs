//! `png:DIR`: a folder of 16-bit depth PNGs (`DIR` or `DIR/depth/`), plus colour images in
//! `DIR/color/` or `DIR/rgb/` (PNG or JPEG) if present, replayed as a camera.
//!
//! Where the folder says when each image was taken, frames keep those times (TUM RGB-D
//! style): `associations.txt` (matched depth/colour pairs), else `depth.txt` and `rgb.txt`
//! (`timestamp file` lines). Otherwise frame i of each stream is due at i / fps and colour is
//! paired with depth by position in natural order. [`PngSource::pairing`] says which, and
//! what did not pair.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Pacing;
use super::{stream_id, ColorFrame, DepthFrame, Sample, Source, SourceError, SourceInfo, Timing};
use crate::container::format::ts_domain;
use crate::container::{DeviceInfo, PixelFormat, StreamDescriptor, StreamKind};
use crate::source::pngdir::{self, PngError};

/// How a folder's colour images were put beside its depth images.
#[derive(Clone, Debug, PartialEq)]
pub enum Pairing {
    /// No colour images.
    DepthOnly,
    /// No timestamps: colour image i beside depth image i.
    ByPosition { depth: usize, color: usize },
    /// Every image at its timestamp from `lists` (export pairs by nearest time).
    ByTimestamp {
        lists: &'static str,
        depth: usize,
        color: usize,
    },
}

impl Pairing {
    /// Frames of one stream have no counterpart in the other (paired by position).
    pub fn unpaired(&self) -> bool {
        matches!(*self, Pairing::ByPosition { depth, color } if depth != color)
    }

    /// What to tell the user, if anything: nothing when every depth image has its colour
    /// image by position.
    pub fn note(&self) -> Option<String> {
        match *self {
            Pairing::DepthOnly => None,
            Pairing::ByPosition { depth, color } if depth == color => None,
            Pairing::ByPosition { depth, color } => {
                Some(format!(
                "{depth} depth and {color} colour images and no timestamps (depth.txt, rgb.txt \
                 or associations.txt): paired by position in name order, so the last {} {} \
                 no {}; frames are 1/fps apart",
                depth.abs_diff(color),
                if depth > color { "depth frames have" } else { "colour frames have" },
                if depth > color { "colour" } else { "depth" },
            ))
            }
            Pairing::ByTimestamp {
                lists,
                depth,
                color,
            } => Some(format!(
                "{depth} depth and {color} colour images at their timestamps from {lists} \
                 (export pairs them by nearest time)"
            )),
        }
    }
}

pub struct PngSource {
    info: SourceInfo,
    /// Images and, from a timestamp list, their times (s).
    depth: Vec<(PathBuf, Option<f64>)>,
    color: Vec<(PathBuf, Option<f64>)>,
    pairing: Pairing,
    /// Time (s) of the first image of a timestamped folder: its time 0.
    t0: f64,
    fps: f64,
    pacing: Pacing,
    /// Next (depth, colour) index.
    next: [usize; 2],
    /// Set by the first `next`: time runs from the first sample, not from opening.
    start: Option<Instant>,
    start_utc_us: i64,
}

/// Timestamps after 2000-01-01 are taken as Unix times (the dataset's own host clock).
const PLAUSIBLE_UNIX_S: f64 = 946_684_800.0;

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
        let (depth, color, pairing) = list_images(dir)?;
        let first = pngdir::read_depth_png(&depth[0].0).map_err(err)?;
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
        if let Some((c0, _)) = color.first() {
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
            t0: depth
                .iter()
                .chain(&color)
                .filter_map(|(_, t)| *t)
                .fold(f64::INFINITY, f64::min),
            depth,
            color,
            pairing,
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

    /// How colour was paired with depth.
    pub fn pairing(&self) -> &Pairing {
        &self.pairing
    }

    /// When image `i` of stream `k` (0 depth, 1 colour) is due, in seconds from the start.
    fn due(&self, k: usize, i: usize) -> f64 {
        let list = if k == 0 { &self.depth } else { &self.color };
        match list[i].1 {
            Some(t) => t - self.t0,
            None => i as f64 / self.fps,
        }
    }
}

type Listed = Vec<(PathBuf, Option<f64>)>;

fn untimed(v: Vec<PathBuf>) -> Listed {
    v.into_iter().map(|p| (p, None)).collect()
}

fn timed(v: Vec<pngdir::Stamped>) -> Listed {
    v.into_iter().map(|s| (s.path, Some(s.t))).collect()
}

/// The depth and colour images of a folder, with times where it has timestamp lists.
fn list_images(dir: &Path) -> Result<(Listed, Listed, Pairing), SourceError> {
    let assoc = dir.join("associations.txt");
    if assoc.is_file() {
        let (d, c) = pngdir::read_associations(&assoc, dir).map_err(err)?;
        let pairing = Pairing::ByTimestamp {
            lists: "associations.txt",
            depth: d.len(),
            color: c.len(),
        };
        return Ok((timed(d), timed(c), pairing));
    }
    let depth_txt = dir.join("depth.txt");
    if depth_txt.is_file() {
        let d = pngdir::read_stamped(&depth_txt, dir).map_err(err)?;
        let rgb_txt = dir.join("rgb.txt");
        let c = if rgb_txt.is_file() {
            pngdir::read_stamped(&rgb_txt, dir).map_err(err)?
        } else {
            Vec::new()
        };
        let pairing = if c.is_empty() {
            Pairing::DepthOnly
        } else {
            Pairing::ByTimestamp {
                lists: "depth.txt and rgb.txt",
                depth: d.len(),
                color: c.len(),
            }
        };
        return Ok((timed(d), timed(c), pairing));
    }
    let d = pngdir::list_pngs(&pngdir::depth_dir(dir)).map_err(err)?;
    let c = ["color", "rgb"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_dir())
        .and_then(|p| pngdir::list_images(&p, &["png", "jpg", "jpeg"]).ok())
        .unwrap_or_default();
    let pairing = if c.is_empty() {
        Pairing::DepthOnly
    } else {
        Pairing::ByPosition {
            depth: d.len(),
            color: c.len(),
        }
    };
    Ok((untimed(d), untimed(c), pairing))
}

impl Source for PngSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        let depth_left = self.next[0] < self.depth.len();
        let color_left = self.next[1] < self.color.len();
        // In time order; a colour frame due with a depth frame goes right after it.
        let k = match (depth_left, color_left) {
            (false, false) => return Ok(None),
            (true, true) if self.due(1, self.next[1]) < self.due(0, self.next[0]) => 1,
            (true, _) => 0,
            (false, true) => 1,
        };
        let i = self.next[k];
        self.next[k] += 1;
        let t = self.due(k, i);
        // A dataset's own timestamps are Unix times (TUM's are): host time is that time.
        let stamp = if k == 0 {
            self.depth[i].1
        } else {
            self.color[i].1
        };
        let unix_us = stamp
            .filter(|&s| s > PLAUSIBLE_UNIX_S)
            .map(|s| (s * 1e6).round() as i64);
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
            host_ts_us: match (unix_us, self.pacing) {
                (Some(us), _) => us,
                (None, Pacing::RealTime) => crate::container::now_utc_us(),
                (None, Pacing::AsFastAsPossible) => self.start_utc_us + (t * 1e6).round() as i64,
            },
        };
        let want = &self.info.streams[k];
        if k == 0 {
            let img = pngdir::read_depth_png(&self.depth[i].0).map_err(err)?;
            if (img.width, img.height) != (want.width, want.height) {
                return Err(SourceError::Format(format!(
                    "{}: {}x{}, earlier frames are {}x{}",
                    self.depth[i].0.display(),
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
            let img = pngdir::read_rgb(&self.color[i].0).map_err(err)?;
            if (img.width, img.height) != (want.width, want.height) {
                return Err(SourceError::Format(format!(
                    "{}: colour image size changed",
                    self.color[i].0.display()
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
