//! `sim:N`: synthetic cameras. Depth is a tilted wall with a moving box in front of it, sensor
//! noise, hole speckle and dropout around the box edges, and rare 65535 outliers; colour is a
//! moving pattern; the IMU yields gyro (~200 Hz) and accel (~63 Hz) samples. Samples are
//! paced in real time, or produced as fast as possible for conversion benchmarks.

use std::time::{Duration, Instant};

use super::{
    stream_id, ColorFrame, DepthFrame, InfraredFrame, Pacing, Sample, Source, SourceError,
    SourceInfo, SourceLosses, StreamId, StreamMode, Timing,
};
use crate::container::format::ts_domain;
use crate::container::{
    DeviceInfo, Distortion, ImuSample, Intrinsics, PixelFormat, StreamDescriptor, StreamKind,
};

#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Camera number (0-based): varies the scene and the serial number.
    pub index: usize,
    pub depth: StreamMode,
    pub color: Option<StreamMode>,
    pub imu: bool,
    pub pacing: Pacing,
    /// Stop after this many depth frames (`None`: endless).
    pub max_depth_frames: Option<u64>,
    /// Skip (never deliver) every Nth depth frame number, to exercise gap accounting.
    pub skip_every: Option<u64>,
    /// Render this many noise variants once and compose depth frames from them (the scene
    /// still moves), and replay a loop of this many colour frames, so that benchmarks measure
    /// the pipeline rather than the renderer (a real camera costs no CPU to render).
    pub prerendered: Option<usize>,
    /// With `prerendered`: still render colour frames live (they are cheap), so that every
    /// colour frame shows its own number and stays identifiable by its content.
    pub live_color: bool,
    /// Infrared streams (§5.9) at the depth mode: librealsense's imager indices (1 left,
    /// 2 right).
    pub infrared: Vec<u8>,
}

impl SimConfig {
    pub fn new(index: usize, depth: StreamMode) -> Self {
        Self {
            index,
            depth,
            color: None,
            imu: false,
            pacing: Pacing::RealTime,
            max_depth_frames: None,
            skip_every: None,
            prerendered: None,
            live_color: false,
            infrared: Vec::new(),
        }
    }
}

const GYRO_HZ: f64 = 200.0;
const ACCEL_HZ: f64 = 63.0;

pub struct SimSource {
    cfg: SimConfig,
    info: SourceInfo,
    /// Set by the first `next`: time runs from the first sample, not from opening.
    start: Option<Instant>,
    start_utc_us: i64,
    /// Next due time (seconds since start) and counter per stream.
    /// Streams in [`StreamId::ALL`] order: depth, colour, gyro, accel, infrared left, right.
    due: [(f64, u64); 6],
    periods: [f64; 6],
    enabled: [bool; 6],
    /// Samples per stream that were gone before anyone took them (host-side losses).
    late: [u64; 6],
    /// Device clock offset, ms (cameras do not start at 0).
    clock_offset_ms: f64,
    /// With `prerendered`: the depth layers and the loop of colour frames.
    layers: Option<DepthLayers>,
    color_loop: Vec<Vec<u8>>,
}

impl SimSource {
    pub fn new(cfg: SimConfig) -> Self {
        let d = cfg.depth;
        let mut depth = StreamDescriptor::depth(stream_id::DEPTH, d.width, d.height, d.fps);
        let f = d.width as f32 * 0.5;
        depth.intrinsics = Some(Intrinsics {
            fx: f,
            fy: f,
            ppx: d.width as f32 / 2.0,
            ppy: d.height as f32 / 2.0,
            model: Distortion::BrownConrady,
            coeffs: vec![0.0; 5],
        });
        let mut streams = vec![depth];
        if let Some(c) = cfg.color {
            let mut color = StreamDescriptor::depth(stream_id::COLOR, c.width, c.height, c.fps);
            color.kind = StreamKind::Color;
            color.name = "color".into();
            color.format = PixelFormat::Rgb8;
            color.depth_units = 0.0;
            color.intrinsics = Some(Intrinsics {
                fx: c.width as f32 * 0.6,
                fy: c.width as f32 * 0.6,
                ppx: c.width as f32 / 2.0,
                ppy: c.height as f32 / 2.0,
                model: Distortion::InverseBrownConrady,
                coeffs: vec![0.0; 5],
            });
            streams.push(color);
        }
        if cfg.imu {
            for (id, kind, name, hz) in [
                (stream_id::GYRO, StreamKind::Gyro, "gyro", GYRO_HZ),
                (stream_id::ACCEL, StreamKind::Accel, "accel", ACCEL_HZ),
            ] {
                streams.push(StreamDescriptor {
                    id,
                    kind,
                    name: name.into(),
                    width: 0,
                    height: 0,
                    format: PixelFormat::MotionXyz32f,
                    fps: hz,
                    depth_units: 0.0,
                    intrinsics: None,
                    extrinsics: None,
                    properties: Vec::new(),
                });
            }
        }
        for &ir_index in &cfg.infrared {
            let Some(id) = StreamId::infrared(ir_index).map(StreamId::id) else {
                continue;
            };
            let mut ir = StreamDescriptor::infrared(id, ir_index, d.width, d.height, d.fps);
            ir.intrinsics = streams[0].intrinsics.clone();
            streams.push(ir);
        }
        let name = format!("sim{}", cfg.index);
        let info = SourceInfo {
            name: name.clone(),
            device: DeviceInfo {
                name: "rsrec simulated D435i".into(),
                serial: format!("SIM{:09}", cfg.index),
                model: "sim".into(),
                firmware: env!("CARGO_PKG_VERSION").into(),
                properties: vec![("source".into(), format!("sim:{}", cfg.index))],
            },
            streams,
        };
        let periods = [
            1.0 / d.fps,
            cfg.color.map_or(f64::INFINITY, |c| 1.0 / c.fps),
            1.0 / GYRO_HZ,
            1.0 / ACCEL_HZ,
            1.0 / d.fps,
            1.0 / d.fps,
        ];
        let enabled = [
            true,
            cfg.color.is_some(),
            cfg.imu,
            cfg.imu,
            cfg.infrared.contains(&1),
            cfg.infrared.contains(&2),
        ];
        let layers = cfg
            .prerendered
            .map(|k| DepthLayers::new(d.width, d.height, cfg.index, k));
        let color_loop = match (cfg.prerendered, cfg.color) {
            (Some(k), Some(c)) if !cfg.live_color => (0..k as u64)
                .map(|n| render_color(c.width, c.height, n))
                .collect(),
            _ => Vec::new(),
        };
        Self {
            layers,
            color_loop,
            clock_offset_ms: 1_000_000.0 + cfg.index as f64 * 12_345.678,
            cfg,
            info,
            start: None,
            start_utc_us: crate::container::now_utc_us(),
            due: [(0.0, 0); 6],
            late: [0; 6],
            periods,
            enabled,
        }
    }

    fn timing(&self, t: f64, n: u64) -> Timing {
        let host_ts_us = match self.cfg.pacing {
            Pacing::RealTime => crate::container::now_utc_us(),
            Pacing::AsFastAsPossible => self.start_utc_us + (t * 1e6) as i64,
        };
        Timing {
            frame_number: n,
            device_ts_ms: self.clock_offset_ms + t * 1000.0,
            ts_domain: ts_domain::HARDWARE_CLOCK,
            host_ts_us,
        }
    }
}

/// Frames a real-time synthetic stream holds for a reader that falls behind before it loses
/// them, as librealsense's per-stream frame queue (16 frames) does.
const QUEUE_FRAMES: f64 = 16.0;

/// Cheap per-pixel hash (a few cycles), for noise and speckle.
#[inline]
fn hash(x: u32, y: u32, f: u64, salt: u64) -> u32 {
    let mut h = (x as u64).wrapping_mul(0x9E37_79B9)
        ^ (y as u64).wrapping_mul(0x85EB_CA6B)
        ^ f.wrapping_mul(0xC2B2_AE35)
        ^ salt;
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h as u32
}

/// The moving box of depth frame `n` of camera `index`: centre and half sizes, in pixels.
fn box_at(width: u32, height: u32, n: u64, index: usize) -> (f64, f64, f64, f64) {
    let t = n as f64 / 30.0;
    let (w, h) = (width as f64, height as f64);
    // A box moving left-right at 1.2 m in front of a tilted wall at ~2-3 m.
    let bx = (0.5 + 0.3 * (t * 0.7 + index as f64).sin()) * w;
    let by = (0.5 + 0.2 * (t * 0.45).cos()) * h;
    (bx, by, 0.15 * w, 0.2 * h)
}

/// Depth (mm) of the box's face at column `x`, and of the tilted wall at (`x`, `y`).
fn box_mm(x: f64, w: f64) -> f64 {
    1200.0 + 0.2 * x * 848.0 / w
}
fn wall_mm(x: f64, y: f64, w: f64, h: f64) -> f64 {
    2000.0 + 1.5 * y * 480.0 / h + 0.8 * x * 848.0 / w
}

/// One pixel at true distance `base` mm with random bits `r`: speckle holes, rare 65535
/// outliers, and stereo quantisation (the step grows with the square of the distance) with
/// about one step of noise.
#[inline]
fn sensed(base: f64, r: u32) -> u16 {
    if r % 97 < 5 {
        0
    } else if r % 20_011 == 0 {
        65535
    } else {
        let step = (base * base / 400_000.0).max(1.0);
        let noise = match (r >> 8) % 8 {
            0 => -1.0,
            1 => 1.0,
            _ => 0.0,
        };
        ((base / step).round() + noise) as u16 * step as u16
    }
}

/// Whether a pixel `d` pixels outside (> 0) or inside (< 0) the box's outline is a dropout
/// (random bits `r`): stereo loses most pixels along depth edges.
#[inline]
fn edge_dropout(d: f64, r: u32) -> bool {
    d > -3.0 && d < 4.0 && r % 3 != 0
}

/// Renders depth frame `n` of camera `index` into a new buffer.
pub fn render_depth(width: u32, height: u32, n: u64, index: usize) -> Vec<u16> {
    let mut out = vec![0u16; (width * height) as usize];
    let (w, h) = (width as f64, height as f64);
    let (bx, by, hw, hh) = box_at(width, height, n, index);
    let salt = index as u64 * 0x1234_5678;
    for y in 0..height {
        let row = &mut out[(y * width) as usize..((y + 1) * width) as usize];
        let fy = y as f64;
        for (x, px) in row.iter_mut().enumerate() {
            let fx = x as f64;
            let r = hash(x as u32, y, n, salt);
            let d = ((fx - bx).abs() - hw).max((fy - by).abs() - hh);
            *px = if edge_dropout(d, r) {
                0
            } else if d < 0.0 {
                sensed(box_mm(fx, w), r)
            } else {
                sensed(wall_mm(fx, fy, w, h), r)
            };
        }
    }
    out
}

/// Depth frames composed from pre-rendered layers: a real camera costs the host no rendering,
/// so benchmarks and `sim:` cameras should measure the pipeline, not the renderer. `k` noisy
/// renderings of the wall and of the box's face are made once; frame `n` is a copy of wall
/// layer `n % k` with the box, at its position for frame `n`, copied from box layer `n % k`
/// and its outline dropped out. The scene moves as in [`render_depth`] (seeking in a long
/// recording shows different frames); only the noise repeats.
struct DepthLayers {
    width: u32,
    height: u32,
    index: usize,
    wall: Vec<Vec<u16>>,
    face: Vec<Vec<u16>>,
}

impl DepthLayers {
    fn new(width: u32, height: u32, index: usize, k: usize) -> Self {
        let (w, h) = (width as f64, height as f64);
        let salt = index as u64 * 0x1234_5678;
        let layer = |n: u64, mm: &dyn Fn(f64, f64) -> f64| -> Vec<u16> {
            (0..height)
                .flat_map(|y| (0..width).map(move |x| (x, y)))
                .map(|(x, y)| sensed(mm(x as f64, y as f64), hash(x, y, n, salt)))
                .collect()
        };
        let k = k.max(1) as u64;
        Self {
            width,
            height,
            index,
            wall: (0..k)
                .map(|n| layer(n, &|x, y| wall_mm(x, y, w, h)))
                .collect(),
            face: (0..k).map(|n| layer(n + k, &|x, _| box_mm(x, w))).collect(),
        }
    }

    fn frame(&self, n: u64) -> Vec<u16> {
        let v = (n % self.wall.len() as u64) as usize;
        let mut out = self.wall[v].clone();
        let (face, width) = (&self.face[v], self.width as usize);
        let (bx, by, hw, hh) = box_at(self.width, self.height, n, self.index);
        // The box and its outline band (4 px outside it), clipped to the frame.
        let clip = |lo: f64, hi: f64, max: u32| {
            (
                lo.floor().max(0.0) as usize,
                (hi.ceil().max(0.0) as usize).min(max as usize),
            )
        };
        let (x0, x1) = clip(bx - hw - 4.0, bx + hw + 4.0, self.width);
        let (y0, y1) = clip(by - hh - 4.0, by + hh + 4.0, self.height);
        for y in y0..y1 {
            let fy = y as f64;
            for x in x0..x1 {
                let d = ((x as f64 - bx).abs() - hw).max((fy - by).abs() - hh);
                let i = y * width + x;
                if edge_dropout(d, hash(x as u32, y as u32, n, 0x5eed)) {
                    out[i] = 0;
                } else if d < 0.0 {
                    out[i] = face[i];
                }
            }
        }
        out
    }
}

/// Infrared frame `n` of camera `index` (the right imager's shifted by the box's disparity):
/// the scene's brightness falling off with distance, the projector's fixed dot pattern, and
/// sensor noise, so that frames compress like an imager's, not like a flat test card.
pub fn render_infrared(width: u32, height: u32, n: u64, index: usize, right: bool) -> Vec<u8> {
    let (bx, by, hw, hh) = box_at(width, height, n, index);
    let shift = if right { 0.05 * width as f64 } else { 0.0 };
    let salt = index as u64 * 0x9e37_79b9;
    let mut out = Vec::with_capacity((width * height) as usize);
    for y in 0..height {
        let fy = y as f64;
        for x in 0..width {
            let fx = x as f64 + shift;
            let inside = (fx - bx).abs() < hw && (fy - by).abs() < hh;
            let base = if inside {
                170.0
            } else {
                60.0 + 50.0 * fy / height as f64
            };
            let dot = if hash(x, y, 0, salt) % 19 == 0 {
                70.0
            } else {
                0.0
            };
            let noise = (hash(x, y, n, salt ^ 0x5eed) % 7) as f64 - 3.0;
            out.push((base + dot + noise).clamp(0.0, 255.0) as u8);
        }
    }
    out
}

fn render_color(width: u32, height: u32, n: u64) -> Vec<u8> {
    let mut out = vec![0u8; (width * height * 3) as usize];
    let sq = (n * 4 % width as u64) as u32;
    for y in 0..height {
        for x in 0..width {
            let i = ((y * width + x) * 3) as usize;
            let inside =
                x >= sq && x < sq + height / 4 && y >= height / 3 && y < height / 3 + height / 4;
            out[i] = if inside { 240 } else { (x * 255 / width) as u8 };
            out[i + 1] = ((y * 255 / height) as u64 + n) as u8;
            out[i + 2] = if inside { 30 } else { 128 };
        }
    }
    out
}

impl Source for SimSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// The frames nobody took in time (see `next`): lost on the host, as a camera's frames
    /// are when librealsense's queue overflows.
    fn losses(&self, stream: StreamId) -> SourceLosses {
        SourceLosses {
            host_dropped: self.late[stream as usize],
            bad: 0,
        }
    }

    fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        loop {
            if let Some(max) = self.cfg.max_depth_frames {
                if self.due[0].1 >= max {
                    return Ok(None);
                }
            }
            let k = (0..6)
                .filter(|&k| self.enabled[k])
                .min_by(|&a, &b| self.due[a].0.total_cmp(&self.due[b].0))
                .expect("depth is always enabled");
            let (t, n) = self.due[k];
            self.due[k] = (t + self.periods[k], n + 1);
            let start = *self.start.get_or_insert_with(Instant::now);
            if self.cfg.pacing == Pacing::RealTime {
                let target = start + Duration::from_secs_f64(t);
                let now = Instant::now();
                if target > now {
                    std::thread::sleep(target - now);
                } else if now - target > Duration::from_secs_f64(self.periods[k] * QUEUE_FRAMES) {
                    // Like a camera whose frames nobody took in time: the frame is gone and
                    // its number is skipped (the recording reports it as lost on the host:
                    // `losses`), instead of the clock slowing down to what the host keeps up
                    // with.
                    self.late[k] += 1;
                    continue;
                }
            }
            let timing = self.timing(t, n);
            let d = self.cfg.depth;
            return Ok(Some(match k {
                0 => {
                    if self.cfg.skip_every.is_some_and(|e| e > 0 && n % e == e - 1) {
                        continue;
                    }
                    let data = match &self.layers {
                        Some(l) => l.frame(n),
                        None => render_depth(d.width, d.height, n, self.cfg.index),
                    };
                    Sample::Depth(DepthFrame {
                        timing,
                        data,
                        metadata: vec![("exposure_us".into(), 8500), ("laser_power".into(), 150)],
                    })
                }
                1 => {
                    let c = self.cfg.color.expect("colour enabled");
                    let data = match self.color_loop.len() {
                        0 => render_color(c.width, c.height, n),
                        k => self.color_loop[n as usize % k].clone(),
                    };
                    Sample::Color(ColorFrame {
                        timing,
                        data,
                        metadata: Vec::new(),
                    })
                }
                4 | 5 => Sample::Infrared {
                    ir_index: k as u8 - 3,
                    frame: InfraredFrame {
                        timing,
                        data: render_infrared(d.width, d.height, n, self.cfg.index, k == 5),
                        metadata: vec![("exposure_us".into(), 8500)],
                    },
                },
                _ => {
                    let s = (t * 2.0).sin() as f32;
                    let (kind, xyz) = if k == 2 {
                        (StreamKind::Gyro, [0.01 * s, -0.02, 0.005 * s])
                    } else {
                        (StreamKind::Accel, [0.1 * s, -9.81, 0.2])
                    };
                    Sample::Imu {
                        kind,
                        sample: ImuSample {
                            frame_number: timing.frame_number,
                            device_ts_ms: timing.device_ts_ms,
                            host_ts_us: timing.host_ts_us,
                            xyz,
                        },
                        ts_domain: timing.ts_domain,
                    }
                }
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        let m: StreamMode = "848x480@30".parse().unwrap();
        assert_eq!((m.width, m.height, m.fps), (848, 480, 30.0));
        assert!("848x480".parse::<StreamMode>().is_err());
        assert!("0x480@30".parse::<StreamMode>().is_err());
        assert!("848x480@0".parse::<StreamMode>().is_err());
    }

    /// Holes, rare outliers, the box at ~1.2 m and the wall at 2-3 m.
    fn assert_d4xx_like(d: &[u16]) {
        let holes = d.iter().filter(|&&v| v == 0).count() as f64 / d.len() as f64;
        let far = d.iter().filter(|&&v| v == 65535).count();
        assert!((0.03..0.3).contains(&holes), "hole fraction {holes}");
        assert!(far > 0 && far < 200, "{far} outliers");
        assert!(d.iter().any(|&v| (1100..1400).contains(&v)));
        assert!(d.iter().any(|&v| (2000..4000).contains(&v)));
    }

    #[test]
    fn depth_looks_like_a_d4xx() {
        let d = render_depth(848, 480, 10, 0);
        assert_d4xx_like(&d);
        assert_ne!(d, render_depth(848, 480, 11, 0), "frames change");
    }

    /// Regression: `sim:` cameras replayed a loop of 15 whole depth frames, so the end of a
    /// 3 s recording showed almost the frame of its start (the viewer's seek test failed).
    /// Composed frames keep the scene moving; only the noise repeats.
    #[test]
    fn composed_depth_looks_like_a_d4xx_and_the_scene_moves() {
        let l = DepthLayers::new(848, 480, 0, 15);
        let d = l.frame(10);
        assert_d4xx_like(&d);
        let near = |f: &[u16]| f.iter().filter(|&&v| (1100..1400).contains(&v)).count();
        // The box covers 12 % of the frame (less its outline) wherever it is.
        assert!(near(&d) > d.len() / 20, "{} box pixels", near(&d));
        // A whole loop later the box has moved: most of its pixels are elsewhere.
        let later = l.frame(10 + 15 * 6);
        let both = d
            .iter()
            .zip(&later)
            .filter(|(a, b)| (1100..1400).contains(*a) && (1100..1400).contains(*b))
            .count();
        assert!(
            both * 2 < near(&d),
            "{both} of {} box pixels stayed",
            near(&d)
        );
        // At the frame's border the box is clipped, not a panic.
        for n in 0..300 {
            assert_eq!(DepthLayers::new(64, 32, 3, 2).frame(n).len(), 64 * 32);
        }
    }

    /// Issue 16: the synthetic camera's clock followed the frames, so a host too slow for it
    /// "recorded" 7 fps with 0 drops. Now it behaves like a camera: frames nobody took for
    /// longer than its queue holds are gone, and their numbers are skipped.
    #[test]
    fn a_reader_that_falls_behind_loses_frames_like_a_camera() {
        let mut cfg = SimConfig::new(1, "16x8@100".parse().unwrap());
        cfg.prerendered = Some(2);
        let mut s = SimSource::new(cfg);
        let number = |s: &mut SimSource| match s.next().unwrap() {
            Some(Sample::Depth(f)) => f.timing.frame_number,
            _ => panic!("depth only"),
        };
        assert_eq!(number(&mut s), 0);
        // 0.5 s away: 50 frame periods, far more than the 16 frames a camera holds.
        std::thread::sleep(Duration::from_millis(500));
        let after = number(&mut s);
        assert!(
            (50 - QUEUE_FRAMES as u64 - 1..=60).contains(&after),
            "frame {after} after 0.5 s at 100 fps"
        );
        // Read on time again: no more numbers skipped.
        let next = number(&mut s);
        assert!(next - after <= 2, "{after} -> {next}");
    }

    #[test]
    fn yields_all_streams_in_time_order_and_skips() {
        let mut cfg = SimConfig::new(1, "64x48@30".parse().unwrap());
        cfg.color = Some("32x24@15".parse().unwrap());
        cfg.imu = true;
        cfg.pacing = Pacing::AsFastAsPossible;
        cfg.max_depth_frames = Some(30);
        cfg.skip_every = Some(10);
        cfg.infrared = vec![1, 2];
        let mut s = SimSource::new(cfg);
        let ir: Vec<_> = s
            .info()
            .streams
            .iter()
            .filter(|d| d.kind == StreamKind::Infrared)
            .map(|d| (d.id, d.ir_index(), d.format))
            .collect();
        assert_eq!(
            ir,
            [
                (stream_id::IR_LEFT, Some(1), PixelFormat::Y8),
                (stream_id::IR_RIGHT, Some(2), PixelFormat::Y8)
            ]
        );
        let (mut depth, mut color, mut gyro, mut accel) = (vec![], 0, 0, 0);
        let mut infrared = [0, 0];
        let mut last = 0.0;
        while let Some(x) = s.next().unwrap() {
            let t = match &x {
                Sample::Depth(f) => {
                    depth.push(f.timing.frame_number);
                    f.timing.device_ts_ms
                }
                Sample::Color(f) => {
                    color += 1;
                    assert_eq!(f.data.len(), 32 * 24 * 3);
                    f.timing.device_ts_ms
                }
                Sample::Imu { kind, sample, .. } => {
                    if *kind == StreamKind::Gyro {
                        gyro += 1
                    } else {
                        accel += 1
                    }
                    sample.device_ts_ms
                }
                Sample::Infrared { ir_index, frame } => {
                    infrared[*ir_index as usize - 1] += 1;
                    assert_eq!(frame.data.len(), 64 * 48);
                    frame.timing.device_ts_ms
                }
            };
            assert!(t >= last);
            last = t;
        }
        assert_eq!(depth.len(), 27);
        // Infrared at the depth rate, without depth's skipped numbers.
        assert!(
            infrared.iter().all(|&n| (29..=31).contains(&n)),
            "{infrared:?}"
        );
        assert!(!depth.contains(&9) && !depth.contains(&19) && !depth.contains(&29));
        assert!((14..=16).contains(&color), "{color}");
        assert!((190..=205).contains(&gyro), "{gyro}");
        assert!((60..=66).contains(&accel), "{accel}");
    }
}
