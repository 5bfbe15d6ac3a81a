//! Point clouds: depth pixels deprojected with the depth stream's intrinsics into metres
//! (librealsense's convention: x right, y down, z forward), written as binary little-endian
//! PLY. Pixels with depth 0 (no measurement) are skipped.
//!
//! Deprojection follows librealsense's `rs2_deproject_pixel_to_point` (`rsutil.h`) for every
//! distortion model it can invert; colour is looked up with `rs2_transform_point_to_point`
//! and `rs2_project_point_to_pixel` when the file has depth-to-colour extrinsics.

use crate::container::{Distortion, Extrinsics, Intrinsics, StreamDescriptor};
// The export plan and helpers shared by the formats.
#[allow(unused_imports)]
use super::*;

fn coeff(k: &Intrinsics, i: usize) -> f32 {
    k.coeffs.get(i).copied().unwrap_or(0.0)
}

/// `rs2_deproject_pixel_to_point` for a depth of 1: the ray (x/z, y/z) through pixel (u, v).
fn deproject(k: &Intrinsics, u: f32, v: f32) -> [f32; 2] {
    let mut x = (u - k.ppx) / k.fx;
    let mut y = (v - k.ppy) / k.fy;
    let (xo, yo) = (x, y);
    let c = |i| coeff(k, i);
    match k.model {
        Distortion::InverseBrownConrady => {
            for _ in 0..10 {
                let r2 = x * x + y * y;
                let icdist = 1.0 / (1.0 + ((c(4) * r2 + c(1)) * r2 + c(0)) * r2);
                let xq = x / icdist;
                let yq = y / icdist;
                let dx = 2.0 * c(2) * xq * yq + c(3) * (r2 + 2.0 * xq * xq);
                let dy = 2.0 * c(3) * xq * yq + c(2) * (r2 + 2.0 * yq * yq);
                x = (xo - dx) * icdist;
                y = (yo - dy) * icdist;
            }
        }
        Distortion::BrownConrady => {
            for _ in 0..10 {
                let r2 = x * x + y * y;
                let icdist = 1.0 / (1.0 + ((c(4) * r2 + c(1)) * r2 + c(0)) * r2);
                let dx = 2.0 * c(2) * x * y + c(3) * (r2 + 2.0 * x * x);
                let dy = 2.0 * c(3) * x * y + c(2) * (r2 + 2.0 * y * y);
                x = (xo - dx) * icdist;
                y = (yo - dy) * icdist;
            }
        }
        Distortion::KannalaBrandt4 => {
            let rd = (x * x + y * y).sqrt().max(f32::EPSILON);
            let mut theta = rd;
            let mut theta2 = rd * rd;
            for _ in 0..4 {
                let f = theta
                    * (1.0 + theta2 * (c(0) + theta2 * (c(1) + theta2 * (c(2) + theta2 * c(3)))))
                    - rd;
                if f.abs() < f32::EPSILON {
                    break;
                }
                let df = 1.0
                    + theta2
                        * (3.0 * c(0)
                            + theta2 * (5.0 * c(1) + theta2 * (7.0 * c(2) + 9.0 * theta2 * c(3))));
                theta -= f / df;
                theta2 = theta * theta;
            }
            let r = theta.tan();
            x *= r / rd;
            y *= r / rd;
        }
        Distortion::FTheta => {
            let rd = (x * x + y * y).sqrt().max(f32::EPSILON);
            // The exact inverse of the f-theta projection below. (librealsense divides by
            // atan(2 tan(w/2)) here, which does not invert its own projection.)
            let w = c(0) as f64;
            let r = ((w * rd as f64).tan() / (2.0 * (w / 2.0).tan())) as f32;
            x *= r / rd;
            y *= r / rd;
        }
        Distortion::None | Distortion::ModifiedBrownConrady | Distortion::Other(_) => {}
    }
    [x, y]
}

/// `rs2_project_point_to_pixel`.
fn project(k: &Intrinsics, p: [f32; 3]) -> [f32; 2] {
    let mut x = p[0] / p[2];
    let mut y = p[1] / p[2];
    let c = |i| coeff(k, i);
    match k.model {
        Distortion::ModifiedBrownConrady | Distortion::InverseBrownConrady => {
            let r2 = x * x + y * y;
            let f = 1.0 + c(0) * r2 + c(1) * r2 * r2 + c(4) * r2 * r2 * r2;
            x *= f;
            y *= f;
            let dx = x + 2.0 * c(2) * x * y + c(3) * (r2 + 2.0 * x * x);
            let dy = y + 2.0 * c(3) * x * y + c(2) * (r2 + 2.0 * y * y);
            x = dx;
            y = dy;
        }
        Distortion::BrownConrady => {
            let r2 = x * x + y * y;
            let f = 1.0 + c(0) * r2 + c(1) * r2 * r2 + c(4) * r2 * r2 * r2;
            let dx = x * f + 2.0 * c(2) * x * y + c(3) * (r2 + 2.0 * x * x);
            let dy = y * f + 2.0 * c(3) * x * y + c(2) * (r2 + 2.0 * y * y);
            x = dx;
            y = dy;
        }
        Distortion::FTheta => {
            let r = (x * x + y * y).sqrt().max(f32::EPSILON);
            let rd =
                (1.0 / c(0) as f64 * (2.0 * r as f64 * (c(0) as f64 / 2.0).tan()).atan()) as f32;
            x *= rd / r;
            y *= rd / r;
        }
        Distortion::KannalaBrandt4 => {
            let r = (x * x + y * y).sqrt().max(f32::EPSILON);
            let theta = r.atan();
            let theta2 = theta * theta;
            let series = 1.0 + theta2 * (c(0) + theta2 * (c(1) + theta2 * (c(2) + theta2 * c(3))));
            let rd = theta * series;
            x *= rd / r;
            y *= rd / r;
        }
        Distortion::None | Distortion::Other(_) => {}
    }
    [x * k.fx + k.ppx, y * k.fy + k.ppy]
}

/// `rs2_transform_point_to_point` (rotation column-major).
fn transform(e: &Extrinsics, p: [f32; 3]) -> [f32; 3] {
    let r = &e.rotation;
    let t = &e.translation;
    [
        r[0] * p[0] + r[3] * p[1] + r[6] * p[2] + t[0],
        r[1] * p[0] + r[4] * p[1] + r[7] * p[2] + t[1],
        r[2] * p[0] + r[5] * p[1] + r[8] * p[2] + t[2],
    ]
}

/// Precomputed rays of every depth pixel.
pub struct Deprojector {
    width: u32,
    rays: Vec<[f32; 2]>,
    depth_units: f32,
    /// Why the distortion model was not inverted, if it was not.
    pub note: Option<String>,
}

impl Deprojector {
    pub fn new(depth: &StreamDescriptor, intrinsics: &Intrinsics) -> Self {
        let (w, h) = (depth.width, depth.height);
        let mut rays = Vec::with_capacity(w as usize * h as usize);
        for v in 0..h {
            for u in 0..w {
                rays.push(deproject(intrinsics, u as f32, v as f32));
            }
        }
        let nonzero = intrinsics.coeffs.iter().any(|c| *c != 0.0);
        let note = match intrinsics.model {
            Distortion::ModifiedBrownConrady | Distortion::Other(_) if nonzero => Some(format!(
                "the depth distortion model {:?} cannot be inverted (as in librealsense): points use the pinhole model",
                intrinsics.model
            )),
            _ => None,
        };
        Self {
            width: w,
            rays,
            depth_units: depth.depth_units,
            note,
        }
    }

    /// Appends the points of every non-zero pixel of `depth` (metres) and their pixel index.
    pub fn points(&self, depth: &[u16], points: &mut Vec<[f32; 3]>, pixels: &mut Vec<u32>) {
        points.clear();
        pixels.clear();
        for (i, (&d, ray)) in depth.iter().zip(&self.rays).enumerate() {
            if d != 0 {
                let z = d as f32 * self.depth_units;
                points.push([z * ray[0], z * ray[1], z]);
                pixels.push(i as u32);
            }
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }
}

/// How a depth point finds its colour.
#[derive(Clone, Debug)]
pub enum ColorMapping {
    /// Colour image of the same size with no extrinsics: taken as already aligned to depth
    /// (as datasets saved after `rs2::align`); pixel (u, v) takes colour pixel (u, v).
    Aligned { width: u32 },
    /// Transformed into the colour camera and projected with its intrinsics.
    Projected {
        extrinsics: Extrinsics,
        intrinsics: Intrinsics,
        width: u32,
        height: u32,
    },
}

impl ColorMapping {
    /// How to colour `depth` points from `color`, or why it cannot be done.
    pub fn choose(depth: &StreamDescriptor, color: &StreamDescriptor) -> Result<Self, String> {
        let extr = match (&depth.extrinsics, &color.extrinsics) {
            (Some(e), _) if e.to_stream == color.id => Some(e.clone()),
            (_, Some(e)) if e.to_stream == depth.id => Some(e.inverse(color.id)),
            _ => None,
        };
        match (extr, &color.intrinsics) {
            (Some(extrinsics), Some(k)) => Ok(Self::Projected {
                extrinsics,
                intrinsics: k.clone(),
                width: color.width,
                height: color.height,
            }),
            _ if (color.width, color.height) == (depth.width, depth.height) => Ok(Self::Aligned {
                width: color.width,
            }),
            _ => Err(format!(
                "colour ({}x{}) and depth ({}x{}) differ in size and the file has no extrinsics between them",
                color.width, color.height, depth.width, depth.height
            )),
        }
    }

    /// RGB of each point from the packed RGB `image`; black where the point falls outside.
    pub fn colors(
        &self,
        points: &[[f32; 3]],
        pixels: &[u32],
        image: &[u8],
        out: &mut Vec<[u8; 3]>,
    ) {
        out.clear();
        let at = |x: usize, y: usize, w: usize| {
            let i = (y * w + x) * 3;
            image
                .get(i..i + 3)
                .map_or([0, 0, 0], |p| [p[0], p[1], p[2]])
        };
        match self {
            Self::Aligned { width } => {
                let w = *width as usize;
                out.extend(
                    pixels
                        .iter()
                        .map(|&i| at(i as usize % w, i as usize / w, w)),
                );
            }
            Self::Projected {
                extrinsics,
                intrinsics,
                width,
                height,
            } => {
                out.extend(points.iter().map(|&p| {
                    let q = transform(extrinsics, p);
                    if q[2] <= 0.0 {
                        return [0, 0, 0];
                    }
                    let [px, py] = project(intrinsics, q);
                    let (x, y) = (px.round(), py.round());
                    if x >= 0.0 && y >= 0.0 && x < *width as f32 && y < *height as f32 {
                        at(x as usize, y as usize, *width as usize)
                    } else {
                        [0, 0, 0]
                    }
                }));
            }
        }
    }
}

/// A binary little-endian PLY file: `x y z` as `float` (metres), plus `red green blue` as
/// `uchar` when `colors` is given.
pub fn encode(points: &[[f32; 3]], colors: Option<&[[u8; 3]]>, comments: &[String]) -> Vec<u8> {
    let mut h = String::from("ply\nformat binary_little_endian 1.0\n");
    for c in comments {
        h.push_str("comment ");
        h.push_str(&c.replace(['\n', '\r'], " "));
        h.push('\n');
    }
    h.push_str(&format!(
        "element vertex {}\nproperty float x\nproperty float y\nproperty float z\n",
        points.len()
    ));
    if colors.is_some() {
        h.push_str("property uchar red\nproperty uchar green\nproperty uchar blue\n");
    }
    h.push_str("end_header\n");
    let per = if colors.is_some() { 15 } else { 12 };
    let mut out = vec![0u8; h.len() + per * points.len()];
    out[..h.len()].copy_from_slice(h.as_bytes());
    let body = &mut out[h.len()..];
    match colors {
        None => {
            for (chunk, p) in body.chunks_exact_mut(12).zip(points) {
                chunk[0..4].copy_from_slice(&p[0].to_le_bytes());
                chunk[4..8].copy_from_slice(&p[1].to_le_bytes());
                chunk[8..12].copy_from_slice(&p[2].to_le_bytes());
            }
        }
        Some(c) => {
            for ((chunk, p), c) in body.chunks_exact_mut(15).zip(points).zip(c) {
                chunk[0..4].copy_from_slice(&p[0].to_le_bytes());
                chunk[4..8].copy_from_slice(&p[1].to_le_bytes());
                chunk[8..12].copy_from_slice(&p[2].to_le_bytes());
                chunk[12..15].copy_from_slice(c);
            }
        }
    }
    out
}

pub(super) fn run_ply(
    job: &Job,
    opts: &ExportOptions,
    progress: &mut dyn Progress,
) -> Result<CameraReport> {
    let cam = job.camera;
    let d = cam.depth.as_ref().expect("planned with depth");
    let intr = d.intrinsics.as_ref().expect("planned with intrinsics");
    let deproj = Deprojector::new(d, intr);
    let mut report = report_for(job);
    if let Some(note) = &deproj.note {
        let w = format!("{}: {note}", cam.name);
        progress.warn(&w);
        report.warnings.push(w);
    }
    let n_px = cam.depth_frame_len()?;
    let raw = cam.depth_frame_bytes();
    let sel = job.sel;
    let mut csv = Csv::create(
        &job.dir,
        "index,frame_number,device_ts_ms,host_ts_us,file,points",
    )?;
    let mut color = match (job.pairing, &job.mapping, &cam.color) {
        (Some(clock), Some(_), Some(c)) => {
            let plans = pairing_plans(cam, &sel, clock)?;
            let cfg = decoder_config(
                cam,
                opts,
                VideoOutput::Raw {
                    width: c.width,
                    height: c.height,
                },
            );
            Some((ColorFrames::new(cam, cfg, plans), Pairing::new(cam, clock)))
        }
        _ => None,
    };
    let mut missing = 0u64;
    let mut rgb = Vec::new();
    let colored = color.is_some();
    let comments = |hdr: &crate::container::RecordHeader, pos: usize| {
        vec![
            format!(
                "rsrec export: camera {}, frame {}",
                cam.name, hdr.frame_number
            ),
            format!(
                "device_ts_ms {} host_ts_us {} index {pos}",
                hdr.device_ts_ms, hdr.host_ts_us
            ),
            "units metres; x right, y down, z forward (librealsense); depth 0 skipped".into(),
        ]
    };
    /// What a worker hands over: a finished file, or points still to be coloured.
    enum Item {
        Written {
            points: usize,
            bytes: u64,
        },
        Points(crate::container::RecordHeader, Vec<[f32; 3]>, Vec<u32>),
        /// A damaged frame, skipped (`skip_damaged`).
        Damaged(String),
    }
    ordered(
        sel.len(),
        opts.workers(colored),
        |j| {
            let pos = sel.position(j);
            let mut buf = vec![0u16; n_px];
            let hdr = match opts.read_depth(cam, pos, &mut buf)? {
                Ok(h) => h,
                Err(why) => return Ok(Item::Damaged(why)),
            };
            let (mut pts, mut px) = (Vec::new(), Vec::new());
            deproj.points(&buf, &mut pts, &mut px);
            if colored {
                return Ok(Item::Points(hdr, pts, px));
            }
            // No colour: the whole file is made here, in parallel.
            let bytes = ply::encode(&pts, None, &comments(&hdr, pos));
            let name = frame_file_name(cam, Stream::Depth, &sel, j, "ply");
            write_new(&job.dir.join(&name), &bytes)?;
            Ok(Item::Written {
                points: pts.len(),
                bytes: bytes.len() as u64,
            })
        },
        |j, item| {
            opts.check_stop()?;
            let pos = sel.position(j);
            let e = depth_entry(cam, pos)?;
            let name = frame_file_name(cam, Stream::Depth, &sel, j, "ply");
            let (points, written) = match item {
                Item::Damaged(why) => {
                    // A gap in the frame table: the row without a file.
                    csv.row(pos, &e, "", Some(0))?;
                    damaged_warning(&mut report, pos, &why, progress);
                    report.raw_bytes += raw;
                    progress.advance(1, raw);
                    return Ok(());
                }
                Item::Written { points, bytes } => (points, bytes),
                Item::Points(hdr, pts, px) => {
                    let (frames, pairing) = color.as_mut().expect("colour items need colour");
                    let mapping = job.mapping.as_ref().expect("colour needs a mapping");
                    let mut comments = comments(&hdr, pos);
                    let (cpos, offset) = pairing.nearest(&e);
                    let (chdr, centry) = cam.color_frame(cpos)?;
                    match frames.get(centry.segment, centry.index_in_video)? {
                        Some(image) => {
                            mapping.colors(&pts, &px, image, &mut rgb);
                            comments.push(format!(
                                "colour frame {} offset_ms {offset}",
                                chdr.frame_number
                            ));
                        }
                        None => {
                            missing += 1;
                            rgb.clear();
                            rgb.resize(pts.len(), [0, 0, 0]);
                            comments.push("colour frame missing from the video".into());
                        }
                    }
                    let bytes = ply::encode(&pts, Some(&rgb), &comments);
                    write_new(&job.dir.join(&name), &bytes)?;
                    (pts.len(), bytes.len() as u64)
                }
            };
            csv.row(pos, &e, &name, Some(points as u64))?;
            report.frames += 1;
            report.raw_bytes += raw;
            report.bytes_written += written;
            progress.advance(1, raw);
            Ok(())
        },
    )?;
    csv.finish()?;
    report.missing_color = missing;
    report
        .warnings
        .extend(missing_warning(cam, missing, progress));
    let extra = json!({
        "ply": {
            "coordinates": "metres, x right, y down, z forward (librealsense deprojection)",
            "color": job.mapping.as_ref().map(|m| match m {
                ColorMapping::Aligned { .. } => "aligned: colour image of the same size, pixel for pixel",
                ColorMapping::Projected { .. } => "projected through depth-to-colour extrinsics and colour intrinsics",
            }),
            "color_clock": job.pairing.map(Clock::name),
        }
    });
    let mut extra = extra;
    if let (Some(o), Some(d)) = (extra.as_object_mut(), damaged_info(&report).as_object()) {
        o.extend(d.clone());
    }
    report.bytes_written += write_info(job, opts, extra)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(model: Distortion, coeffs: Vec<f32>) -> Intrinsics {
        Intrinsics {
            fx: 420.0,
            fy: 418.5,
            ppx: 212.3,
            ppy: 119.7,
            model,
            coeffs,
        }
    }

    #[test]
    fn pinhole_is_the_plain_formula() {
        for model in [Distortion::None, Distortion::BrownConrady] {
            let intr = k(model, vec![0.0; 5]);
            let [x, y] = deproject(&intr, 10.0, 200.0);
            assert_eq!(x, (10.0 - 212.3f32) / 420.0);
            assert_eq!(y, (200.0 - 119.7f32) / 418.5);
        }
    }

    #[test]
    fn deprojection_inverts_projection() {
        let cases = [
            (
                Distortion::BrownConrady,
                vec![0.1, -0.05, 0.001, -0.002, 0.01],
            ),
            (
                Distortion::InverseBrownConrady,
                vec![-0.05, 0.06, 0.0005, 0.0007, -0.02],
            ),
            (Distortion::KannalaBrandt4, vec![0.01, -0.02, 0.003, -0.001]),
            (Distortion::FTheta, vec![0.9]),
        ];
        for (model, coeffs) in cases {
            let intr = k(model, coeffs);
            for (u, v) in [(10.0, 20.0), (212.0, 120.0), (400.0, 230.0)] {
                let [x, y] = deproject(&intr, u, v);
                let [pu, pv] = project(&intr, [x * 2.0, y * 2.0, 2.0]);
                assert!(
                    (pu - u).abs() < 0.05 && (pv - v).abs() < 0.05,
                    "{model:?}: ({u}, {v}) -> ({pu}, {pv})"
                );
            }
        }
    }

    #[test]
    fn extrinsics_invert() {
        let c = 0.8f32.cos();
        let s = 0.8f32.sin();
        // Rotation about z, column-major.
        let e = Extrinsics {
            to_stream: 1,
            rotation: [c, s, 0.0, -s, c, 0.0, 0.0, 0.0, 1.0],
            translation: [0.015, -0.002, 0.001],
        };
        let p = [0.3, -0.2, 1.5];
        let q = transform(&e.inverse(0), transform(&e, p));
        for i in 0..3 {
            assert!((q[i] - p[i]).abs() < 1e-6, "{q:?}");
        }
    }

    #[test]
    fn points_skip_zeros_and_colour_aligned() {
        let mut depth = StreamDescriptor::depth(0, 3, 2, 30.0);
        depth.intrinsics = Some(k(Distortion::None, vec![]));
        let d = Deprojector::new(&depth, depth.intrinsics.as_ref().unwrap());
        let (mut pts, mut px) = (Vec::new(), Vec::new());
        d.points(&[0, 1000, 0, 500, 0, 2], &mut pts, &mut px);
        assert_eq!(px, vec![1, 3, 5]);
        assert_eq!(pts[0][2], 1000.0 * 0.001);
        let mut color = StreamDescriptor::depth(1, 3, 2, 30.0);
        color.kind = crate::container::StreamKind::Color;
        let m = ColorMapping::choose(&depth, &color).unwrap();
        let image: Vec<u8> = (0..18).collect();
        let mut out = Vec::new();
        m.colors(&pts, &px, &image, &mut out);
        assert_eq!(out, vec![[3, 4, 5], [9, 10, 11], [15, 16, 17]]);
        color.width = 4;
        assert!(ColorMapping::choose(&depth, &color).is_err());
    }

    #[test]
    fn ply_layout() {
        let b = encode(
            &[[1.0, 2.0, 3.0]],
            Some(&[[7, 8, 9]]),
            &["hello\nworld".into()],
        );
        let text = String::from_utf8_lossy(&b);
        assert!(text.starts_with(
            "ply\nformat binary_little_endian 1.0\ncomment hello world\nelement vertex 1\n"
        ));
        let end = text.find("end_header\n").unwrap() + "end_header\n".len();
        assert_eq!(b.len() - end, 15);
        assert_eq!(&b[end..end + 4], &1.0f32.to_le_bytes());
        assert_eq!(&b[b.len() - 3..], &[7, 8, 9]);
    }
}
