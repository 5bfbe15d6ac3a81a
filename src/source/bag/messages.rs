//! ROS message deserialisation (`sensor_msgs/Image`, `Imu`, `CameraInfo`,
//! `diagnostic_msgs/KeyValue`), bounds-checked: a damaged message is an error, never a
//! panic.

use super::*;

/// `sensor_msgs/CameraInfo`: width, height, intrinsics and the distortion model's name.
pub(super) fn camera_info(r: &mut Rd<'_>) -> Result<(u32, u32, Intrinsics, String), String> {
    r.header()?;
    let height = r.u32("camera_info height")?;
    let width = r.u32("camera_info width")?;
    let model = r.string("distortion model")?;
    let n = r.u32("D length")? as usize;
    if n > r.remaining() / 8 {
        return Err(format!(
            "D has {n} coefficients but the message ends before"
        ));
    }
    let mut coeffs = Vec::with_capacity(n.min(MAX_DISTORTION_COEFFS));
    for i in 0..n {
        let c = r.f64("D")?;
        if i < MAX_DISTORTION_COEFFS {
            coeffs.push(c as f32);
        }
    }
    let mut k = [0f64; 9];
    for v in &mut k {
        *v = r.f64("K")?;
    }
    let intrinsics = Intrinsics {
        fx: k[0] as f32,
        fy: k[4] as f32,
        ppx: k[2] as f32,
        ppy: k[5] as f32,
        model: distortion(&model),
        coeffs,
    };
    Ok((width, height, intrinsics, model))
}

pub(super) fn key_value(r: &mut Rd<'_>) -> Result<(String, String), String> {
    Ok((r.string("key")?, r.string("value")?))
}

// ---------------------------------------------------------------------------------------
// Sample buffer
// ---------------------------------------------------------------------------------------

/// `sensor_msgs/Image` into a depth or colour sample and its buffered size.
pub(super) fn decode_image(
    data: &[u8],
    kind: Kind,
    spec: &ImageSpec,
) -> Result<(Sample, usize), String> {
    let mut r = Rd::new(data);
    let (seq, stamp_ms) = r.header()?;
    let height = r.u32("height")?;
    let width = r.u32("width")?;
    let encoding = r.string("encoding")?;
    let big_endian = r.u8("is_bigendian")? != 0;
    let step = r.u32("step")? as usize;
    let n = r.u32("data length")? as usize;
    let pixels = r.take(n, "image data")?;
    if (width, height) != (spec.width, spec.height) {
        return Err(format!(
            "image is {width}x{height} but the stream is {}x{}",
            spec.width, spec.height
        ));
    }
    match parse_encoding(&encoding, kind) {
        Some((f, _, uyvy)) if f == spec.format && uyvy == spec.uyvy => {}
        _ => {
            return Err(format!(
                "image encoding '{encoding}' differs from the stream's"
            ))
        }
    }
    let row = width as usize * spec.bytes_per_pixel;
    if step < row {
        return Err(format!(
            "row step {step} is shorter than a row ({row} bytes)"
        ));
    }
    let h = height as usize;
    let needed = step
        .checked_mul(h.saturating_sub(1))
        .and_then(|v| v.checked_add(row))
        .ok_or("image size overflows")?;
    if pixels.len() < needed {
        return Err(format!(
            "image data has {} bytes, {needed} needed for {width}x{height} with step {step}",
            pixels.len()
        ));
    }
    let rows = (0..h).map(|y| &pixels[y * step..y * step + row]);
    let timing = Timing {
        frame_number: seq as u64,
        device_ts_ms: stamp_ms,
        ts_domain: DEFAULT_TS_DOMAIN,
        host_ts_us: 0,
    };
    if kind == Kind::Depth {
        let mut out = Vec::with_capacity(width as usize * h);
        for row in rows {
            out.extend(row.chunks_exact(2).map(|b| {
                let b = [b[0], b[1]];
                if big_endian {
                    u16::from_be_bytes(b)
                } else {
                    u16::from_le_bytes(b)
                }
            }));
        }
        let bytes = out.len() * 2;
        let f = DepthFrame {
            timing,
            data: out,
            metadata: Vec::new(),
        };
        Ok((Sample::Depth(f), bytes))
    } else {
        let mut out = Vec::with_capacity(row * h);
        for row in rows {
            out.extend_from_slice(row);
        }
        // UYVY to YUYV, and big-endian 16-bit samples to little-endian, are byte-pair swaps.
        if spec.uyvy || (big_endian && spec.format == PixelFormat::Y16) {
            for pair in out.chunks_exact_mut(2) {
                pair.swap(0, 1);
            }
        }
        let bytes = out.len();
        if let Some(ir_index) = kind.ir_index() {
            let frame = InfraredFrame {
                timing,
                data: out,
                metadata: Vec::new(),
            };
            return Ok((Sample::Infrared { ir_index, frame }, bytes));
        }
        let f = ColorFrame {
            timing,
            data: out,
            metadata: Vec::new(),
        };
        Ok((Sample::Color(f), bytes))
    }
}

/// `sensor_msgs/Imu` into a gyro (angular velocity) or accel (linear acceleration) sample.
pub(super) fn decode_imu(data: &[u8], kind: Kind) -> Result<Sample, String> {
    let mut r = Rd::new(data);
    let (seq, stamp_ms) = r.header()?;
    let mut v = [0f64; 4 + 9 + 3 + 9 + 3];
    for x in &mut v {
        *x = r.f64("imu")?;
    }
    let xyz = match kind {
        Kind::Gyro => &v[13..16],
        _ => &v[25..28],
    };
    Ok(Sample::Imu {
        kind: kind.stream_kind(),
        sample: ImuSample {
            frame_number: seq as u64,
            device_ts_ms: stamp_ms,
            host_ts_us: 0,
            xyz: [xyz[0] as f32, xyz[1] as f32, xyz[2] as f32],
        },
        // Set from the sample's metadata (its `timestamp_domain`) when it is played.
        ts_domain: super::DEFAULT_TS_DOMAIN,
    })
}

// ---------------------------------------------------------------------------------------
// ROS message reader
// ---------------------------------------------------------------------------------------

/// Bounds-checked little-endian reader of one serialised ROS message.
pub(super) struct Rd<'a> {
    pub(super) b: &'a [u8],
    pub(super) p: usize,
}

impl<'a> Rd<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        Self { b, p: 0 }
    }
    pub(super) fn remaining(&self) -> usize {
        self.b.len() - self.p
    }
    pub(super) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "message ends inside {what} ({n} bytes needed, {} left)",
                self.remaining()
            ));
        }
        let s = &self.b[self.p..self.p + n];
        self.p += n;
        Ok(s)
    }
    pub(super) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    pub(super) fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(super) fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(super) fn f32(&mut self, what: &str) -> Result<f32, String> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    pub(super) fn f64(&mut self, what: &str) -> Result<f64, String> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }
    pub(super) fn string(&mut self, what: &str) -> Result<String, String> {
        let n = self.u32(what)? as usize;
        Ok(String::from_utf8_lossy(self.take(n, what)?).into_owned())
    }
    /// `std_msgs/Header`: sequence number and stamp in milliseconds (frame id skipped).
    pub(super) fn header(&mut self) -> Result<(u32, f64), String> {
        let seq = self.u32("header seq")?;
        let sec = self.u32("header stamp")?;
        let nsec = self.u32("header stamp")?;
        let n = self.u32("header frame_id")? as usize;
        self.take(n, "header frame_id")?;
        Ok((seq, sec as f64 * 1e3 + nsec as f64 / 1e6))
    }
}

// ---------------------------------------------------------------------------------------
// ROS bag records (checked before handing chunks to the `rosbag` crate)
// ---------------------------------------------------------------------------------------
