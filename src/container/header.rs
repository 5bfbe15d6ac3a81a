//! The file header (`format-spec.md` §2-3): preamble, device info, stream descriptors and
//! free-form JSON metadata. Pure encode/decode, no I/O.

use serde::{Deserialize, Serialize};

use super::bytes::{le_u64, Builder, Cursor};
use super::error::{ContainerError, Result};
use super::format::*;

/// §3.2 What a stream carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    Depth,
    Color,
    Infrared,
    Gyro,
    Accel,
    Other(u8),
}

impl StreamKind {
    pub fn code(self) -> u8 {
        match self {
            Self::Depth => 1,
            Self::Color => 2,
            Self::Infrared => 3,
            Self::Gyro => 4,
            Self::Accel => 5,
            Self::Other(c) => c,
        }
    }
    pub fn from_code(c: u8) -> Self {
        match c {
            1 => Self::Depth,
            2 => Self::Color,
            3 => Self::Infrared,
            4 => Self::Gyro,
            5 => Self::Accel,
            c => Self::Other(c),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Depth => "depth",
            Self::Color => "color",
            Self::Infrared => "infrared",
            Self::Gyro => "gyro",
            Self::Accel => "accel",
            Self::Other(_) => "other",
        }
    }
}

/// §3.3 Pixel (or sample) formats, numbered as in the spec.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    Z16,
    Rgb8,
    Bgr8,
    Rgba8,
    Bgra8,
    Yuyv,
    Y8,
    Y16,
    // The spec's name (§3.3); rsrec 0.1.0 wrote `motionxyz32f` in session.json.
    #[serde(rename = "motion_xyz32f", alias = "motionxyz32f")]
    MotionXyz32f,
    Other(u8),
}

impl PixelFormat {
    pub fn code(self) -> u8 {
        match self {
            Self::Z16 => 1,
            Self::Rgb8 => 2,
            Self::Bgr8 => 3,
            Self::Rgba8 => 4,
            Self::Bgra8 => 5,
            Self::Yuyv => 6,
            Self::Y8 => 7,
            Self::Y16 => 8,
            Self::MotionXyz32f => 9,
            Self::Other(c) => c,
        }
    }
    pub fn from_code(c: u8) -> Self {
        match c {
            1 => Self::Z16,
            2 => Self::Rgb8,
            3 => Self::Bgr8,
            4 => Self::Rgba8,
            5 => Self::Bgra8,
            6 => Self::Yuyv,
            7 => Self::Y8,
            8 => Self::Y16,
            9 => Self::MotionXyz32f,
            c => Self::Other(c),
        }
    }

    /// The spec's name (§3.3): `z16`, `y8`, ...; `other` for a code it does not define.
    pub fn name(self) -> &'static str {
        match self {
            Self::Z16 => "z16",
            Self::Rgb8 => "rgb8",
            Self::Bgr8 => "bgr8",
            Self::Rgba8 => "rgba8",
            Self::Bgra8 => "bgra8",
            Self::Yuyv => "yuyv",
            Self::Y8 => "y8",
            Self::Y16 => "y16",
            Self::MotionXyz32f => "motion_xyz32f",
            Self::Other(_) => "other",
        }
    }
}

/// §3.4 Distortion models, numbered as librealsense's `rs2_distortion`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distortion {
    None,
    ModifiedBrownConrady,
    InverseBrownConrady,
    FTheta,
    BrownConrady,
    KannalaBrandt4,
    Other(u8),
}

impl Distortion {
    pub fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::ModifiedBrownConrady => 1,
            Self::InverseBrownConrady => 2,
            Self::FTheta => 3,
            Self::BrownConrady => 4,
            Self::KannalaBrandt4 => 5,
            Self::Other(c) => c,
        }
    }
    pub fn from_code(c: u8) -> Self {
        match c {
            0 => Self::None,
            1 => Self::ModifiedBrownConrady,
            2 => Self::InverseBrownConrady,
            3 => Self::FTheta,
            4 => Self::BrownConrady,
            5 => Self::KannalaBrandt4,
            c => Self::Other(c),
        }
    }
}

/// §3.4 Pinhole intrinsics of an image stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intrinsics {
    pub fx: f32,
    pub fy: f32,
    pub ppx: f32,
    pub ppy: f32,
    pub model: Distortion,
    pub coeffs: Vec<f32>,
}

/// §3.5 Rigid transform from this stream to a reference stream (librealsense convention:
/// 3x3 rotation column-major, translation in metres).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Extrinsics {
    pub to_stream: u8,
    pub rotation: [f32; 9],
    pub translation: [f32; 3],
}

impl Extrinsics {
    /// The inverse transform, pointing at `to_stream` (computed in f64, see [`invert_rigid`]).
    pub fn inverse(&self, to_stream: u8) -> Extrinsics {
        let (r, t) = invert_rigid(
            &self.rotation.map(f64::from),
            &self.translation.map(f64::from),
        );
        Extrinsics {
            to_stream,
            rotation: r.map(|v| v as f32),
            translation: t.map(|v| v as f32),
        }
    }
}

/// The inverse of the rigid transform `p -> R p + t`: `(R^T, -R^T t)`. Rotations are stored
/// column-major as librealsense does: `R[row][col] = r[col * 3 + row]`.
pub fn invert_rigid(r: &[f64; 9], t: &[f64; 3]) -> ([f64; 9], [f64; 3]) {
    let mut rotation = [0f64; 9];
    for row in 0..3 {
        for col in 0..3 {
            rotation[col * 3 + row] = r[row * 3 + col];
        }
    }
    let mut translation = [0f64; 3];
    for (i, out) in translation.iter_mut().enumerate() {
        // -(R^T t)_i = -sum_j R[j][i] t_j, with R[j][i] = r[i * 3 + j].
        *out = -(0..3).map(|j| r[i * 3 + j] * t[j]).sum::<f64>();
    }
    (rotation, translation)
}

/// §3.2 One stream of the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamDescriptor {
    pub id: u8,
    pub kind: StreamKind,
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    pub fps: f64,
    /// Metres per depth unit (0.001 for millimetres); 0 for streams that are not depth.
    pub depth_units: f32,
    pub intrinsics: Option<Intrinsics>,
    pub extrinsics: Option<Extrinsics>,
    /// Free key/value pairs (for example the colour video codec). In JSON an object (older
    /// session.json files wrote a list of pairs; both read).
    #[serde(with = "properties_json")]
    pub properties: Vec<(String, String)>,
}

/// Key/value properties as a JSON object, in their order; reads an object or a list of
/// `[key, value]` pairs.
pub mod properties_json {
    use serde::de::Deserializer;
    use serde::ser::{SerializeMap, Serializer};
    use serde::Deserialize;

    pub fn serialize<S: Serializer>(p: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(p.len()))?;
        for (k, v) in p {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Map(std::collections::BTreeMap<String, String>),
            Pairs(Vec<(String, String)>),
        }
        Ok(match Either::deserialize(d)? {
            Either::Map(m) => m.into_iter().collect(),
            Either::Pairs(p) => p,
        })
    }
}

impl StreamDescriptor {
    /// A depth stream with the defaults of a D4xx camera (Z16, 1 mm units).
    pub fn depth(id: u8, width: u32, height: u32, fps: f64) -> Self {
        Self {
            id,
            kind: StreamKind::Depth,
            name: "depth".into(),
            width,
            height,
            format: PixelFormat::Z16,
            fps,
            depth_units: 0.001,
            intrinsics: None,
            extrinsics: None,
            properties: Vec::new(),
        }
    }

    /// An infrared stream (§5.9) of imager `ir_index` (1 left, 2 right), named `ir_left` or
    /// `ir_right`.
    pub fn infrared(id: u8, ir_index: u8, width: u32, height: u32, fps: f64) -> Self {
        Self {
            id,
            kind: StreamKind::Infrared,
            name: if ir_index == 2 { "ir_right" } else { "ir_left" }.into(),
            width,
            height,
            format: PixelFormat::Y8,
            fps,
            depth_units: 0.0,
            intrinsics: None,
            extrinsics: None,
            properties: vec![(
                crate::container::format::PROP_IR_INDEX.to_string(),
                ir_index.to_string(),
            )],
        }
    }

    /// librealsense's index of an infrared stream's imager (§3.2 `ir_index`: 1 left, 2 right).
    pub fn ir_index(&self) -> Option<u8> {
        self.property(crate::container::format::PROP_IR_INDEX)?
            .parse()
            .ok()
    }

    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// §3.1 The device that recorded the file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub name: String,
    pub serial: String,
    pub model: String,
    pub firmware: String,
    #[serde(with = "properties_json")]
    pub properties: Vec<(String, String)>,
}

/// §3 The whole header body.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileHeader {
    /// Format version read from the preamble (on write: always [`FORMAT_VERSION`]).
    pub format_version: u16,
    /// Name and version of the program that wrote the file, e.g. `rsrec 0.1.0`.
    pub writer: String,
    /// When the file was created, UTC microseconds since the Unix epoch.
    pub created_utc_us: i64,
    pub device: DeviceInfo,
    pub streams: Vec<StreamDescriptor>,
    /// Free-form JSON text (`{}` when there is none).
    pub metadata_json: String,
}

impl FileHeader {
    pub fn new(device: DeviceInfo, streams: Vec<StreamDescriptor>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            writer: format!("rsrec {}", env!("CARGO_PKG_VERSION")),
            created_utc_us: crate::container::now_utc_us(),
            device,
            streams,
            metadata_json: "{}".into(),
        }
    }

    pub fn stream(&self, id: u8) -> Option<&StreamDescriptor> {
        self.streams.iter().find(|s| s.id == id)
    }

    fn validate(&self) -> Result<()> {
        if self.streams.len() > MAX_STREAMS {
            return Err(ContainerError::LimitExceeded {
                what: "stream count",
                value: self.streams.len() as u64,
                limit: MAX_STREAMS as u64,
            });
        }
        for (i, s) in self.streams.iter().enumerate() {
            if s.id == NO_STREAM {
                return Err(ContainerError::InvalidValue {
                    what: "stream id (255 is reserved)",
                    value: s.id as u64,
                });
            }
            if self.streams[..i].iter().any(|o| o.id == s.id) {
                return Err(ContainerError::InvalidValue {
                    what: "duplicate stream id",
                    value: s.id as u64,
                });
            }
            if s.width > MAX_DIMENSION || s.height > MAX_DIMENSION {
                return Err(ContainerError::LimitExceeded {
                    what: "stream width/height",
                    value: s.width.max(s.height) as u64,
                    limit: MAX_DIMENSION as u64,
                });
            }
            if s.kind == StreamKind::Depth && (s.width == 0 || s.height == 0) {
                return Err(ContainerError::InvalidValue {
                    what: "depth stream width/height",
                    value: 0,
                });
            }
        }
        Ok(())
    }

    /// Encodes preamble + header body + header CRC: the first bytes of the file.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let mut b = Builder::new();
        const W: &str = "header";
        b.string(&self.writer, W)?.i64(self.created_utc_us);
        let d = &self.device;
        b.string(&d.name, W)?
            .string(&d.serial, W)?
            .string(&d.model, W)?
            .string(&d.firmware, W)?
            .map(&d.properties, MAX_MAP_ENTRIES, W)?;
        b.u8(self.streams.len() as u8);
        for s in &self.streams {
            b.u8(s.id).u8(s.kind.code()).string(&s.name, W)?;
            b.u32(s.width)
                .u32(s.height)
                .u8(s.format.code())
                .f64(s.fps)
                .f32(s.depth_units);
            match &s.intrinsics {
                None => {
                    b.u8(0);
                }
                Some(k) => {
                    if k.coeffs.len() > MAX_DISTORTION_COEFFS {
                        return Err(ContainerError::LimitExceeded {
                            what: "distortion coefficients",
                            value: k.coeffs.len() as u64,
                            limit: MAX_DISTORTION_COEFFS as u64,
                        });
                    }
                    b.u8(1).f32(k.fx).f32(k.fy).f32(k.ppx).f32(k.ppy);
                    b.u8(k.model.code()).u8(k.coeffs.len() as u8);
                    for c in &k.coeffs {
                        b.f32(*c);
                    }
                }
            }
            match &s.extrinsics {
                None => {
                    b.u8(0);
                }
                Some(e) => {
                    b.u8(1).u8(e.to_stream);
                    for v in e.rotation.iter().chain(&e.translation) {
                        b.f32(*v);
                    }
                }
            }
            b.map(&s.properties, MAX_MAP_ENTRIES, W)?;
        }
        b.blob(
            self.metadata_json.as_bytes(),
            MAX_METADATA_LEN,
            "metadata JSON",
        )?;
        let body = b.buf;
        if body.len() as u64 > MAX_HEADER_LEN as u64 {
            return Err(ContainerError::LimitExceeded {
                what: "header length",
                value: body.len() as u64,
                limit: MAX_HEADER_LEN as u64,
            });
        }
        let mut out = Vec::with_capacity(PREAMBLE_LEN + body.len() + 4);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0u8; PREAMBLE_LEN - 16]); // index pointer, its CRC, reserved
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..16]), &body);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Decodes the header at the start of `file`. Returns the header, the offset of the first
    /// record and the index pointer of the preamble (`None` when unset or its CRC fails).
    pub fn decode(file: &[u8]) -> Result<(FileHeader, u64, Option<u64>)> {
        if file.len() < 8 || file[..8] != MAGIC {
            return Err(if file.len() < 8 && MAGIC.starts_with(file) {
                ContainerError::TooShort {
                    len: file.len() as u64,
                }
            } else {
                ContainerError::BadMagic
            });
        }
        if file.len() < PREAMBLE_LEN {
            return Err(ContainerError::TooShort {
                len: file.len() as u64,
            });
        }
        let version = u16::from_le_bytes([file[PRE_VERSION], file[PRE_VERSION + 1]]);
        if !(MIN_READ_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(ContainerError::UnsupportedVersion {
                found: version,
                min: MIN_READ_VERSION,
                max: FORMAT_VERSION,
            });
        }
        let header_len = super::bytes::le_u32(file, PRE_HEADER_LEN);
        if header_len > MAX_HEADER_LEN {
            return Err(ContainerError::LimitExceeded {
                what: "header length",
                value: header_len as u64,
                limit: MAX_HEADER_LEN as u64,
            });
        }
        let body_end = PREAMBLE_LEN + header_len as usize;
        if file.len() < body_end + 4 {
            return Err(ContainerError::Truncated {
                what: "file header",
                needed: (body_end + 4) as u64,
                available: file.len() as u64,
            });
        }
        let body = &file[PREAMBLE_LEN..body_end];
        let expected = super::bytes::le_u32(file, body_end);
        let actual = crc32c::crc32c_append(crc32c::crc32c(&file[..16]), body);
        if expected != actual {
            return Err(ContainerError::BadHeaderCrc { expected, actual });
        }
        let index_ptr = {
            let ptr = le_u64(file, PRE_INDEX_OFFSET);
            let crc = super::bytes::le_u32(file, PRE_INDEX_CRC);
            (ptr != 0 && crc32c::crc32c(&file[PRE_INDEX_OFFSET..PRE_INDEX_OFFSET + 8]) == crc)
                .then_some(ptr)
        };
        let header = Self::decode_body(body, version)?;
        Ok((header, (body_end + 4) as u64, index_ptr))
    }

    fn decode_body(body: &[u8], version: u16) -> Result<FileHeader> {
        let mut c = Cursor::new(body, "header");
        let writer = c.string()?;
        let created_utc_us = c.i64()?;
        let device = DeviceInfo {
            name: c.string()?,
            serial: c.string()?,
            model: c.string()?,
            firmware: c.string()?,
            properties: c.map(MAX_MAP_ENTRIES)?,
        };
        let n = c.u8()? as usize;
        if n > MAX_STREAMS {
            return Err(ContainerError::LimitExceeded {
                what: "stream count",
                value: n as u64,
                limit: MAX_STREAMS as u64,
            });
        }
        let mut streams = Vec::with_capacity(n);
        for _ in 0..n {
            let id = c.u8()?;
            let kind = StreamKind::from_code(c.u8()?);
            let name = c.string()?;
            let width = c.u32()?;
            let height = c.u32()?;
            let format = PixelFormat::from_code(c.u8()?);
            let fps = c.f64()?;
            let depth_units = c.f32()?;
            let intrinsics = match c.u8()? {
                0 => None,
                1 => {
                    let (fx, fy, ppx, ppy) = (c.f32()?, c.f32()?, c.f32()?, c.f32()?);
                    let model = Distortion::from_code(c.u8()?);
                    let nc = c.u8()? as usize;
                    if nc > MAX_DISTORTION_COEFFS {
                        return Err(ContainerError::LimitExceeded {
                            what: "distortion coefficients",
                            value: nc as u64,
                            limit: MAX_DISTORTION_COEFFS as u64,
                        });
                    }
                    let coeffs = (0..nc).map(|_| c.f32()).collect::<Result<Vec<_>>>()?;
                    Some(Intrinsics {
                        fx,
                        fy,
                        ppx,
                        ppy,
                        model,
                        coeffs,
                    })
                }
                v => {
                    return Err(ContainerError::InvalidValue {
                        what: "intrinsics flag",
                        value: v as u64,
                    })
                }
            };
            let extrinsics = match c.u8()? {
                0 => None,
                1 => {
                    let to_stream = c.u8()?;
                    let mut rotation = [0f32; 9];
                    for r in &mut rotation {
                        *r = c.f32()?;
                    }
                    let mut translation = [0f32; 3];
                    for t in &mut translation {
                        *t = c.f32()?;
                    }
                    Some(Extrinsics {
                        to_stream,
                        rotation,
                        translation,
                    })
                }
                v => {
                    return Err(ContainerError::InvalidValue {
                        what: "extrinsics flag",
                        value: v as u64,
                    })
                }
            };
            let properties = c.map(MAX_MAP_ENTRIES)?;
            streams.push(StreamDescriptor {
                id,
                kind,
                name,
                width,
                height,
                format,
                fps,
                depth_units,
                intrinsics,
                extrinsics,
                properties,
            });
        }
        let metadata = c.blob(MAX_METADATA_LEN)?;
        let metadata_json =
            String::from_utf8(metadata.to_vec()).map_err(|_| ContainerError::BadUtf8 {
                what: "metadata JSON",
            })?;
        // Bytes after the known fields are ignored (§11): room for optional additions.
        let header = FileHeader {
            format_version: version,
            writer,
            created_utc_us,
            device,
            streams,
            metadata_json,
        };
        header.validate()?;
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> FileHeader {
        let mut depth = StreamDescriptor::depth(0, 848, 480, 30.0);
        depth.intrinsics = Some(Intrinsics {
            fx: 421.5,
            fy: 421.25,
            ppx: 424.0,
            ppy: 240.5,
            model: Distortion::BrownConrady,
            coeffs: vec![0.0, 0.1, 0.0, 0.0, -0.01],
        });
        depth.extrinsics = Some(Extrinsics {
            to_stream: 1,
            rotation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            translation: [0.015, 0.0, 0.0],
        });
        let mut color = StreamDescriptor::depth(1, 640, 480, 30.0);
        color.kind = StreamKind::Color;
        color.format = PixelFormat::Rgb8;
        color.depth_units = 0.0;
        color.properties = vec![("video_codec".into(), "libx265".into())];
        FileHeader {
            format_version: FORMAT_VERSION,
            writer: "rsrec test".into(),
            created_utc_us: 1_700_000_000_000_000,
            device: DeviceInfo {
                name: "Intel RealSense D435I".into(),
                serial: "123456789".into(),
                model: "D400".into(),
                firmware: "5.16.0.1".into(),
                properties: vec![("usb".into(), "3.2".into())],
            },
            streams: vec![depth, color],
            metadata_json: r#"{"site":"lab"}"#.into(),
        }
    }

    #[test]
    fn header_round_trips() {
        let h = sample();
        let bytes = h.encode().unwrap();
        let (back, first_record, ptr) = FileHeader::decode(&bytes).unwrap();
        assert_eq!(back, h);
        assert_eq!(first_record, bytes.len() as u64);
        assert_eq!(ptr, None);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let bytes = sample().encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(FileHeader::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            if (PRE_INDEX_OFFSET..PREAMBLE_LEN).contains(&i) {
                continue; // index pointer and reserved bytes are not covered by the header CRC
            }
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(FileHeader::decode(&b).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn not_rsrec_is_bad_magic() {
        assert!(matches!(
            FileHeader::decode(b"PK\x03\x04 this is a zip file, not rsrec"),
            Err(ContainerError::BadMagic)
        ));
    }

    #[test]
    fn duplicate_stream_ids_are_rejected() {
        let mut h = sample();
        h.streams[1].id = 0;
        assert!(h.encode().is_err());
    }
}
