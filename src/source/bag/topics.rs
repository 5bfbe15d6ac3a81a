//! librealsense's topic layout in a bag: which topic is which stream's info, samples or
//! metadata, and the static information (device, streams, intrinsics, extrinsics, options)
//! collected before the first sample.

use super::*;

/// The stream kinds replayed, each on its fixed stream id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Kind {
    Depth,
    Color,
    Gyro,
    Accel,
    /// `Infrared_1`: the left imager.
    IrLeft,
    /// `Infrared_2`: the right imager.
    IrRight,
}

impl Kind {
    /// The kind of topic stream `name_index` (`Depth_0`, `Infrared_1`, ...): infrared is two
    /// streams, told apart by librealsense's stream index.
    pub(super) fn parse(s: &str, index: u32) -> Option<Kind> {
        Some(match (s, index) {
            ("Depth", _) => Kind::Depth,
            ("Color", _) => Kind::Color,
            ("Gyro", _) => Kind::Gyro,
            ("Accel", _) => Kind::Accel,
            ("Infrared", 1) => Kind::IrLeft,
            ("Infrared", 2) => Kind::IrRight,
            _ => return None,
        })
    }
    pub(super) fn id(self) -> u8 {
        match self {
            Kind::Depth => stream_id::DEPTH,
            Kind::Color => stream_id::COLOR,
            Kind::Gyro => stream_id::GYRO,
            Kind::Accel => stream_id::ACCEL,
            Kind::IrLeft => stream_id::IR_LEFT,
            Kind::IrRight => stream_id::IR_RIGHT,
        }
    }
    pub(super) fn stream_kind(self) -> StreamKind {
        match self {
            Kind::Depth => StreamKind::Depth,
            Kind::Color => StreamKind::Color,
            Kind::Gyro => StreamKind::Gyro,
            Kind::Accel => StreamKind::Accel,
            Kind::IrLeft | Kind::IrRight => StreamKind::Infrared,
        }
    }
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::IrLeft => "ir_left",
            Kind::IrRight => "ir_right",
            k => k.stream_kind().name(),
        }
    }
    pub(super) fn is_image(self) -> bool {
        !matches!(self, Kind::Gyro | Kind::Accel)
    }
    /// librealsense's imager index of an infrared kind (1 left, 2 right).
    pub(super) fn ir_index(self) -> Option<u8> {
        match self {
            Kind::IrLeft => Some(1),
            Kind::IrRight => Some(2),
            _ => None,
        }
    }
}

/// `/device_0/sensor_<sensor>/<Kind>_<index>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct StreamKey {
    pub(super) kind: Kind,
    pub(super) sensor: u32,
    pub(super) index: u32,
}

impl StreamKey {
    pub(super) fn topic(&self) -> String {
        let k = match self.kind {
            Kind::Depth => "Depth",
            Kind::Color => "Color",
            Kind::Gyro => "Gyro",
            Kind::Accel => "Accel",
            Kind::IrLeft | Kind::IrRight => "Infrared",
        };
        format!("/device_0/sensor_{}/{k}_{}", self.sensor, self.index)
    }
}

/// What a connection (topic) carries.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Role {
    FileVersion,
    DeviceInfo,
    SensorInfo(u32),
    OptionValue { sensor: u32, name: String },
    StreamInfo(StreamKey),
    CameraInfo(StreamKey),
    Extrinsics { stream: StreamKey, group: u32 },
    ImageData(StreamKey),
    ImuData(StreamKey),
    Metadata(StreamKey),
    Ignored,
}

impl Role {
    /// Information read once at open.
    pub(super) fn is_static(&self) -> bool {
        matches!(
            self,
            Role::FileVersion
                | Role::DeviceInfo
                | Role::SensorInfo(_)
                | Role::OptionValue { .. }
                | Role::StreamInfo(_)
                | Role::CameraInfo(_)
                | Role::Extrinsics { .. }
        )
    }
}

pub(super) fn classify(topic: &str, tp: &str) -> Role {
    let sensor = |s: &str| s.strip_prefix("sensor_")?.parse::<u32>().ok();
    let stream = |s: &str, st: &str| {
        let (kind, index) = st.rsplit_once('_')?;
        let index = index.parse().ok()?;
        Some(StreamKey {
            kind: Kind::parse(kind, index)?,
            sensor: sensor(s)?,
            index,
        })
    };
    let parts: Vec<&str> = topic.split('/').collect();
    let role = match parts.as_slice() {
        ["", "file_version"] => Some(Role::FileVersion),
        ["", "device_0", "info"] => Some(Role::DeviceInfo),
        ["", "device_0", s, "info"] => sensor(s).map(Role::SensorInfo),
        ["", "device_0", s, "option", name, "value"] => sensor(s).map(|sensor| Role::OptionValue {
            sensor,
            name: name.to_string(),
        }),
        ["", "device_0", s, st, "info"] => stream(s, st).map(Role::StreamInfo),
        ["", "device_0", s, st, "info", "camera_info"] => stream(s, st).map(Role::CameraInfo),
        ["", "device_0", s, st, "tf", group] => stream(s, st).and_then(|k| {
            Some(Role::Extrinsics {
                stream: k,
                group: group.parse().ok()?,
            })
        }),
        ["", "device_0", s, st, "image", "data"] => stream(s, st)
            .filter(|k| k.kind.is_image())
            .map(Role::ImageData),
        ["", "device_0", s, st, "imu", "data"] => stream(s, st)
            .filter(|k| !k.kind.is_image())
            .map(Role::ImuData),
        ["", "device_0", s, st, "image" | "imu", "metadata"] => stream(s, st).map(Role::Metadata),
        _ => None,
    };
    let Some(role) = role else {
        return Role::Ignored;
    };
    let expected = match role {
        Role::FileVersion => "std_msgs/UInt32",
        Role::DeviceInfo | Role::SensorInfo(_) | Role::Metadata(_) => "diagnostic_msgs/KeyValue",
        Role::OptionValue { .. } => "std_msgs/Float32",
        Role::StreamInfo(_) => "realsense_msgs/StreamInfo",
        Role::CameraInfo(_) => "sensor_msgs/CameraInfo",
        Role::Extrinsics { .. } => "geometry_msgs/Transform",
        Role::ImageData(_) => "sensor_msgs/Image",
        Role::ImuData(_) => "sensor_msgs/Imu",
        Role::Ignored => return Role::Ignored,
    };
    if tp == expected {
        role
    } else {
        Role::Ignored
    }
}

/// How one image stream's frames are laid out and converted.
#[derive(Clone, Copy, Debug)]
pub(super) struct ImageSpec {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) format: PixelFormat,
    pub(super) bytes_per_pixel: usize,
    /// UYVY in the bag (librealsense's `yuv422`), stored as YUYV.
    pub(super) uyvy: bool,
}

/// Maps a ROS / librealsense image encoding to a pixel format and its bytes per pixel.
pub(super) fn parse_encoding(encoding: &str, kind: Kind) -> Option<(PixelFormat, usize, bool)> {
    let e = encoding.to_ascii_lowercase();
    let r = match e.as_str() {
        "mono16" | "16uc1" | "z16" | "y16" => {
            let f = if kind == Kind::Depth {
                PixelFormat::Z16
            } else {
                PixelFormat::Y16
            };
            (f, 2, false)
        }
        _ if kind == Kind::Depth => return None,
        "rgb8" => (PixelFormat::Rgb8, 3, false),
        "bgr8" => (PixelFormat::Bgr8, 3, false),
        "rgba8" => (PixelFormat::Rgba8, 4, false),
        "bgra8" => (PixelFormat::Bgra8, 4, false),
        "yuyv" | "yuy2" => (PixelFormat::Yuyv, 2, false),
        "yuv422" | "uyvy" => (PixelFormat::Yuyv, 2, true),
        "8uc1" | "mono8" | "y8" | "raw8" => (PixelFormat::Y8, 1, false),
        _ => return None,
    };
    Some(r)
}

/// One `tf` message: extrinsics from the pin stream of `group` to this stream.
#[derive(Clone, Copy, Debug)]
pub(super) struct Transform {
    pub(super) group: u32,
    pub(super) translation: [f64; 3],
    /// x, y, z, w.
    pub(super) rotation: [f64; 4],
}

impl Transform {
    pub(super) fn is_identity(&self) -> bool {
        let [x, y, z, w] = self.rotation;
        self.translation.iter().all(|v| v.abs() < 1e-6)
            && x.abs() < 1e-6
            && y.abs() < 1e-6
            && z.abs() < 1e-6
            && (w.abs() - 1.0).abs() < 1e-6
    }

    /// The inverse transform (this stream to the pin stream) in librealsense's convention:
    /// rotation column-major.
    pub(super) fn inverse_to(&self, to_stream: u8) -> Extrinsics {
        let [x, y, z, w] = self.rotation;
        // Column-major rotation of the quaternion, as librealsense's quat2rot.
        let r = [
            1.0 - 2.0 * y * y - 2.0 * z * z,
            2.0 * x * y + 2.0 * z * w,
            2.0 * x * z - 2.0 * y * w,
            2.0 * x * y - 2.0 * z * w,
            1.0 - 2.0 * x * x - 2.0 * z * z,
            2.0 * y * z + 2.0 * x * w,
            2.0 * x * z + 2.0 * y * w,
            2.0 * y * z - 2.0 * x * w,
            1.0 - 2.0 * x * x - 2.0 * y * y,
        ];
        let (rotation, translation) = invert_rigid(&r, &self.translation);
        Extrinsics {
            to_stream,
            rotation: rotation.map(|v| v as f32),
            translation: translation.map(|v| v as f32),
        }
    }
}

/// Device and stream information collected at open.
#[derive(Default)]
pub(super) struct StaticInfo {
    pub(super) file_version: Option<u32>,
    pub(super) device: Vec<(String, String)>,
    pub(super) sensor_names: BTreeMap<u32, String>,
    /// Per sensor: option name and value (first value seen).
    pub(super) options: BTreeMap<u32, Vec<(String, f32)>>,
    /// fps, encoding.
    pub(super) stream_info: HashMap<StreamKey, (u32, String)>,
    /// width, height, intrinsics, distortion model name.
    pub(super) camera_info: HashMap<StreamKey, (u32, u32, Intrinsics, String)>,
    pub(super) tf: HashMap<StreamKey, Transform>,
    /// width, height, encoding of the first image (streams without camera_info).
    pub(super) first_image: HashMap<StreamKey, (u32, u32, String)>,
}

impl StaticInfo {
    pub(super) fn absorb(&mut self, role: &Role, data: &[u8]) -> Result<(), String> {
        let mut r = Rd::new(data);
        match role {
            Role::FileVersion => {
                let v = r.u32("file version")?;
                self.file_version.get_or_insert(v);
            }
            Role::DeviceInfo => {
                let (k, v) = key_value(&mut r)?;
                if !self.device.iter().any(|(dk, _)| *dk == k) {
                    self.device.push((k, v));
                }
            }
            Role::SensorInfo(s) => {
                let (k, v) = key_value(&mut r)?;
                if k == "Name" {
                    self.sensor_names.entry(*s).or_insert(v);
                }
            }
            Role::OptionValue { sensor, name } => {
                let v = r.f32("option value")?;
                let opts = self.options.entry(*sensor).or_default();
                if !opts.iter().any(|(n, _)| n == name) {
                    opts.push((name.clone(), v));
                }
            }
            Role::StreamInfo(k) => {
                let fps = r.u32("fps")?;
                let encoding = r.string("encoding")?;
                self.stream_info.entry(*k).or_insert((fps, encoding));
            }
            Role::CameraInfo(k) => {
                if !self.camera_info.contains_key(k) {
                    let ci = camera_info(&mut r)?;
                    self.camera_info.insert(*k, ci);
                }
            }
            Role::Extrinsics { stream, group } => {
                let mut v = [0f64; 7];
                for x in &mut v {
                    *x = r.f64("transform")?;
                }
                self.tf.entry(*stream).or_insert(Transform {
                    group: *group,
                    translation: [v[0], v[1], v[2]],
                    rotation: [v[3], v[4], v[5], v[6]],
                });
            }
            Role::ImageData(k) => {
                if !self.first_image.contains_key(k) {
                    r.header()?;
                    let height = r.u32("image height")?;
                    let width = r.u32("image width")?;
                    let encoding = r.string("image encoding")?;
                    self.first_image.insert(*k, (width, height, encoding));
                }
            }
            Role::ImuData(_) | Role::Metadata(_) | Role::Ignored => {}
        }
        Ok(())
    }

    pub(super) fn option(&self, sensor: u32, name: &str) -> Option<f32> {
        self.options
            .get(&sensor)?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// The descriptor of the stream `key`, and how its images are laid out.
    pub(super) fn descriptor(
        &self,
        kind: Kind,
        key: &StreamKey,
        reference: Option<u32>,
    ) -> Result<(StreamDescriptor, Option<ImageSpec>), String> {
        let (fps, info_encoding) = match self.stream_info.get(key) {
            Some((fps, e)) => (Some(*fps), Some(e.as_str())),
            None => (None, None),
        };
        let mut properties = vec![("bag_stream".to_string(), key.topic())];
        if let Some(n) = self.sensor_names.get(&key.sensor) {
            properties.push(("sensor".into(), n.clone()));
        }
        let fps = match fps {
            Some(f) if f > 0 => f as f64,
            _ => {
                properties.push(("fps_assumed".into(), "true".into()));
                30.0
            }
        };
        let mut desc = StreamDescriptor {
            id: kind.id(),
            kind: kind.stream_kind(),
            name: kind.name().into(),
            width: 0,
            height: 0,
            format: PixelFormat::MotionXyz32f,
            fps,
            depth_units: 0.0,
            intrinsics: None,
            extrinsics: None,
            properties,
        };
        let mut spec = None;
        if kind.is_image() {
            let (width, height, intrinsics, image_encoding) =
                match (self.camera_info.get(key), self.first_image.get(key)) {
                    (Some((w, h, k, model)), _) => {
                        if k.model == Distortion::None && model != "None" {
                            desc.properties
                                .push(("distortion_model".into(), model.clone()));
                        }
                        (*w, *h, Some(k.clone()), None)
                    }
                    (None, Some((w, h, e))) => (*w, *h, None, Some(e.as_str())),
                    (None, None) => return Err("no camera_info and no image to size it".into()),
                };
            if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
                return Err(format!("unsupported image size {width}x{height}"));
            }
            let encoding = info_encoding
                .or(image_encoding)
                .ok_or("no stream info giving the encoding")?;
            let (format, bytes_per_pixel, uyvy) = parse_encoding(encoding, kind)
                .ok_or_else(|| format!("unsupported image encoding '{encoding}'"))?;
            // §5.9: infrared is stored as 8-bit frames.
            if kind.ir_index().is_some() && format != PixelFormat::Y8 {
                return Err(format!(
                    "infrared in '{encoding}' is not supported (rsrec records Y8 infrared)"
                ));
            }
            desc.width = width;
            desc.height = height;
            desc.format = format;
            desc.intrinsics = intrinsics;
            desc.properties.push(("encoding".into(), encoding.into()));
            spec = Some(ImageSpec {
                width,
                height,
                format,
                bytes_per_pixel,
                uyvy,
            });
        }
        if kind == Kind::Depth {
            desc.depth_units = self
                .option(key.sensor, "Depth Units")
                .filter(|u| u.is_finite() && *u > 0.0)
                .unwrap_or(0.001);
        } else if let (Some(group), Some(tf)) = (reference, self.tf.get(key)) {
            if tf.group == group {
                desc.extrinsics = Some(tf.inverse_to(stream_id::DEPTH));
            }
        }
        if let Some(i) = kind.ir_index() {
            desc.properties.push((
                crate::container::format::PROP_IR_INDEX.into(),
                i.to_string(),
            ));
        }
        if let Some(opts) = self.options.get(&key.sensor) {
            for (name, v) in opts {
                desc.properties
                    .push((format!("option.{name}"), v.to_string()));
            }
        }
        Ok((desc, spec))
    }

    pub(super) fn device_info(&self, path: &Path) -> DeviceInfo {
        let get = |k: &str| {
            self.device
                .iter()
                .find(|(dk, _)| dk == k)
                .map(|(_, v)| v.clone())
        };
        let name = get("Name").unwrap_or_default();
        let model = name
            .strip_prefix("Intel RealSense ")
            .map(str::to_string)
            .or_else(|| get("Product Line"))
            .or_else(|| get("Product Id"))
            .unwrap_or_default();
        let mut properties = self.device.clone();
        properties.push(("source".into(), format!("bag:{}", path.display())));
        if let Some(v) = self.file_version {
            properties.push(("bag_file_version".into(), v.to_string()));
        }
        DeviceInfo {
            name,
            serial: get("Serial Number").unwrap_or_default(),
            model,
            firmware: get("Firmware Version").unwrap_or_default(),
            properties,
        }
    }
}

pub(super) fn distortion(model: &str) -> Distortion {
    match model.to_ascii_lowercase().as_str() {
        "none" => Distortion::None,
        "modified brown conrady" => Distortion::ModifiedBrownConrady,
        "inverse brown conrady" => Distortion::InverseBrownConrady,
        "ftheta" | "f theta" | "f-theta" => Distortion::FTheta,
        "brown conrady" | "plumb_bob" | "rational_polynomial" => Distortion::BrownConrady,
        "kannala brandt4" | "kannala brandt 4" | "equidistant" => Distortion::KannalaBrandt4,
        _ => Distortion::None,
    }
}

/// Fills `timing` from the frame's metadata pairs and returns the numeric ones.
pub(super) fn apply_metadata(
    pairs: &[(String, String)],
    bag_time: u64,
    timing: &mut Timing,
) -> Vec<(String, i64)> {
    let mut numeric = Vec::with_capacity(pairs.len());
    let mut system_time_ms = None;
    let mut arrival_ms = None;
    timing.ts_domain = DEFAULT_TS_DOMAIN;
    for (k, v) in pairs {
        let v = v.trim();
        match k.as_str() {
            "timestamp_domain" | "clock_domain" => {
                timing.ts_domain = match v {
                    "Hardware Clock" => ts_domain::HARDWARE_CLOCK,
                    "System Time" => ts_domain::SYSTEM_TIME,
                    "Global Time" => ts_domain::GLOBAL_TIME,
                    _ => timing.ts_domain,
                };
                continue;
            }
            // A zero (or otherwise pre-2000) host time is "not known", not 1970: some
            // recorders leave it 0, which would give every frame the same host time.
            "system_time" => system_time_ms = v.parse::<f64>().ok().filter(plausible_utc_ms),
            "Time Of Arrival" => arrival_ms = v.parse::<f64>().ok().filter(plausible_utc_ms),
            _ => {}
        }
        if let Ok(n) = v.parse::<i64>() {
            numeric.push((k.clone(), n));
        } else if let Ok(x) = v.parse::<f64>() {
            if x.is_finite() {
                numeric.push((k.clone(), x.round() as i64));
            }
        }
    }
    timing.host_ts_us = match system_time_ms.or(arrival_ms) {
        Some(ms) => (ms * 1000.0).round() as i64,
        None => (bag_time / 1000) as i64,
    };
    numeric
}

/// 2000-01-01T00:00:00Z in milliseconds since the Unix epoch.
const YEAR_2000_MS: f64 = 946_684_800_000.0;

/// Whether `ms` can be a host time in UTC milliseconds (finite, after 2000).
fn plausible_utc_ms(ms: &f64) -> bool {
    ms.is_finite() && *ms >= YEAR_2000_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_time(pairs: &[(&str, &str)], bag_time_ns: u64) -> i64 {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut t = Timing {
            frame_number: 0,
            device_ts_ms: 0.0,
            ts_domain: 0,
            host_ts_us: 0,
        };
        apply_metadata(&pairs, bag_time_ns, &mut t);
        t.host_ts_us
    }

    /// Issue 16: a bag whose system time is 0 gave every frame host time 1970, so the viewer
    /// and `export --time` saw a session of length 0. A zero host time means "not known".
    #[test]
    fn a_zero_system_time_falls_back_to_arrival_then_bag_time() {
        let bag_ns = 1_795_000_000_123_000_000u64;
        assert_eq!(
            host_time(&[("system_time", "1795000000456.5")], bag_ns),
            1_795_000_000_456_500
        );
        assert_eq!(
            host_time(
                &[("system_time", "0"), ("Time Of Arrival", "1795000000789")],
                bag_ns
            ),
            1_795_000_000_789_000
        );
        assert_eq!(
            host_time(&[("system_time", "0"), ("Time Of Arrival", "0")], bag_ns),
            1_795_000_000_123_000
        );
        assert_eq!(
            host_time(&[("system_time", "nan")], bag_ns),
            1_795_000_000_123_000
        );
    }
}
