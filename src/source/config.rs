//! Camera settings of a recording: layers of settings (stream modes, visual preset, emitter,
//! laser power, exposure, inter-camera sync, raw librealsense options) from the per-camera
//! TOML file (`--camera-config`) and the command line, merged into one [`Resolved`] setting
//! per camera and checked before anything starts.
//!
//! Precedence, lowest first: built-in defaults, the file's `[defaults]`, the command line,
//! the file's `[camera.SERIAL]`. The file is strict: an unknown key, a bad mode or an unknown
//! preset is an error that names the file and the camera, before anything starts.
//!
//! ```toml
//! [defaults]
//! depth = "848x480@30"
//! color = "640x480@30"        # or "off"
//! imu = true
//! gyro_hz = 400               # D435i: 200 or 400 (default: the camera's native rate)
//! accel_hz = 250              # D435i: 63 or 250
//! ir = "left,right"           # infrared imagers: left, right, left,right or off
//! visual_preset = "high_accuracy"  # or a number
//! sync = "slave"              # off | master | slave | full-slave | 4..258 (genlock)
//!
//! [camera.123456789012]
//! name = "front"              # file names front.rsrec, front.color.000.mkv
//! sync = "master"
//! exposure = 8500             # depth exposure in microseconds, or "auto"
//! laser_power = 150           # mW
//! emitter = true
//! options = { "color:Enable Auto White Balance" = 0 }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::StreamMode;
use crate::container::PixelFormat;

/// A camera configuration that cannot be used; displays where (the file, the section, the
/// camera) and `source()` what.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("reading the camera config {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("camera config {}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: Box<ConfigError>,
    },
    /// The file is not valid TOML or has an unknown key (toml's message).
    #[error("{0}")]
    Toml(String),
    /// A section (`[defaults]`, `[camera.SERIAL]`) or a camera (`camera SERIAL`) is wrong.
    #[error("{place}")]
    In {
        place: String,
        #[source]
        source: Box<ConfigError>,
    },
    /// One setting is wrong.
    #[error("{setting}: {detail}")]
    Invalid {
        setting: &'static str,
        detail: String,
    },
    #[error("cameras {first} and {second} are both named '{name}'")]
    DuplicateName {
        first: String,
        second: String,
        name: String,
    },
}

fn invalid(setting: &'static str, detail: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        detail: detail.into(),
    }
}

fn within(place: impl Into<String>) -> impl FnOnce(ConfigError) -> ConfigError {
    let place = place.into();
    move |e| ConfigError::In {
        place,
        source: Box::new(e),
    }
}

/// A number or a word in the TOML file (`visual_preset = 3` or `visual_preset = "high_accuracy"`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum NumOrText {
    Num(f64),
    Text(String),
}

impl std::fmt::Display for NumOrText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Num(n) => write!(f, "{n}"),
            Self::Text(t) => f.write_str(t),
        }
    }
}

/// One layer of settings; `None` leaves the lower layer's value.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraSettings {
    pub name: Option<String>,
    pub depth: Option<String>,
    pub color: Option<String>,
    pub color_format: Option<String>,
    pub imu: Option<bool>,
    pub gyro_hz: Option<u32>,
    pub accel_hz: Option<u32>,
    /// Infrared imagers to record: `left`, `right`, `left,right` (or `both`), `off`.
    pub ir: Option<String>,
    pub visual_preset: Option<NumOrText>,
    pub emitter: Option<bool>,
    pub laser_power: Option<f64>,
    pub exposure: Option<NumOrText>,
    pub sync: Option<NumOrText>,
    /// Raw librealsense options by name (`depth:`, `color:` or `motion:` prefix to target one
    /// sensor), applied after the named settings above.
    #[serde(default)]
    pub options: BTreeMap<String, f64>,
}

impl CameraSettings {
    /// `over`'s values win.
    pub fn merge(mut self, over: &CameraSettings) -> CameraSettings {
        macro_rules! take {
            ($($f:ident),*) => {$( if over.$f.is_some() { self.$f = over.$f.clone(); } )*};
        }
        take!(
            name,
            depth,
            color,
            color_format,
            imu,
            gyro_hz,
            accel_hz,
            ir,
            visual_preset,
            emitter,
            laser_power,
            exposure,
            sync
        );
        for (k, v) in &over.options {
            self.options.insert(k.clone(), *v);
        }
        self
    }
}

/// The `--camera-config` file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub defaults: CameraSettings,
    /// Keyed by serial number.
    #[serde(default)]
    pub camera: BTreeMap<String, CameraSettings>,
}

impl ConfigFile {
    /// Longest camera config read (a real one is a few KiB).
    pub const MAX_BYTES: u64 = 1 << 20;

    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > Self::MAX_BYTES {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                source: Box::new(ConfigError::Toml(format!(
                    "{len} bytes is too large for a camera config"
                ))),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::parse(&text).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    pub fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
        // Check every layer now, so a typo stops the recording before it starts.
        resolve_layers(&[&file.defaults]).map_err(within("[defaults]"))?;
        let mut names = BTreeMap::new();
        for (serial, s) in &file.camera {
            resolve_layers(&[&file.defaults, s]).map_err(within(format!("[camera.{serial}]")))?;
            if let Some(n) = &s.name {
                if let Some(other) = names.insert(n.clone(), serial.clone()) {
                    return Err(ConfigError::DuplicateName {
                        first: other,
                        second: serial.clone(),
                        name: n.clone(),
                    });
                }
            }
        }
        Ok(file)
    }
}

/// Settings of one camera, checked and in librealsense's terms.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub name: Option<String>,
    pub depth: StreamMode,
    pub color: Option<StreamMode>,
    pub color_format: PixelFormat,
    pub imu: bool,
    /// IMU rates asked for (`None`: the camera's native rate).
    pub gyro_hz: Option<u32>,
    pub accel_hz: Option<u32>,
    /// Infrared imagers to record, librealsense's stream indices (1 left, 2 right), sorted.
    pub ir: Vec<u8>,
    /// Options in the order they are applied (the preset first: it changes the others).
    pub options: Vec<(String, f32)>,
}

pub const DEFAULT_DEPTH: &str = "848x480@30";
pub const DEFAULT_COLOR: &str = "640x480@30";

/// Settings of the camera with serial `serial`: defaults < file `[defaults]` < command line
/// < file `[camera.SERIAL]`.
pub fn resolve(
    file: Option<&ConfigFile>,
    cli: &CameraSettings,
    serial: &str,
) -> Result<Resolved, ConfigError> {
    let empty = CameraSettings::default();
    let (defaults, own) = match file {
        Some(f) => (&f.defaults, f.camera.get(serial).unwrap_or(&empty)),
        None => (&empty, &empty),
    };
    resolve_layers(&[defaults, cli, own]).map_err(within(format!("camera {serial}")))
}

fn resolve_layers(layers: &[&CameraSettings]) -> Result<Resolved, ConfigError> {
    let s = layers
        .iter()
        .fold(CameraSettings::default(), |acc, l| acc.merge(l));
    let depth: StreamMode = s
        .depth
        .as_deref()
        .unwrap_or(DEFAULT_DEPTH)
        .parse()
        .map_err(|e: super::ModeError| invalid("depth", e.to_string()))?;
    let color = match s.color.as_deref().unwrap_or(DEFAULT_COLOR) {
        "off" | "none" => None,
        m => Some(
            m.parse::<StreamMode>()
                .map_err(|e| invalid("color", e.to_string()))?,
        ),
    };
    let color_format = match s.color_format.as_deref().unwrap_or("rgb8") {
        "rgb8" | "rgb" => PixelFormat::Rgb8,
        "bgr8" | "bgr" => PixelFormat::Bgr8,
        "rgba8" | "rgba" => PixelFormat::Rgba8,
        "bgra8" | "bgra" => PixelFormat::Bgra8,
        "yuyv" => PixelFormat::Yuyv,
        f => {
            return Err(invalid(
                "color_format",
                format!("'{f}': use rgb8, bgr8, rgba8, bgra8 or yuyv"),
            ))
        }
    };
    for (what, hz) in [("gyro_hz", s.gyro_hz), ("accel_hz", s.accel_hz)] {
        if hz.is_some_and(|hz| !(1..=4000).contains(&hz)) {
            return Err(invalid(
                what,
                format!("{} Hz is out of range", hz.unwrap_or(0)),
            ));
        }
    }
    let ir = match s.ir.as_deref() {
        None => Vec::new(),
        Some(v) => parse_ir(v).map_err(|e| invalid("ir", e))?,
    };
    let mut options: Vec<(String, f32)> = Vec::new();
    if let Some(p) = &s.visual_preset {
        options.push(("depth:Visual Preset".into(), preset_value(p)?));
    }
    if let Some(e) = s.emitter {
        options.push(("depth:Emitter Enabled".into(), e as u8 as f32));
    }
    if let Some(p) = s.laser_power {
        if !(0.0..=1000.0).contains(&p) {
            return Err(invalid("laser_power", format!("{p} mW is out of range")));
        }
        options.push(("depth:Laser Power".into(), p as f32));
    }
    match &s.exposure {
        None => {}
        Some(NumOrText::Text(t)) if t == "auto" => {
            options.push(("depth:Enable Auto Exposure".into(), 1.0));
        }
        Some(e) => {
            let us = match e {
                NumOrText::Num(n) => *n,
                NumOrText::Text(t) => t
                    .trim_end_matches("us")
                    .parse()
                    .map_err(|_| invalid("exposure", format!("'{t}': microseconds or auto")))?,
            };
            if !(1.0..=200_000.0).contains(&us) {
                return Err(invalid(
                    "exposure",
                    format!("{us} us is out of range (1..200000)"),
                ));
            }
            options.push(("depth:Enable Auto Exposure".into(), 0.0));
            options.push(("depth:Exposure".into(), us as f32));
        }
    }
    if let Some(m) = &s.sync {
        options.push(("depth:Inter Cam Sync Mode".into(), sync_value(m)?));
    }
    for (k, v) in &s.options {
        options.push((k.clone(), *v as f32));
    }
    if let Some(n) = &s.name {
        let ok = !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !ok {
            return Err(invalid(
                "name",
                format!("'{n}': use 1-64 letters, digits, - or _ (it becomes a file name)"),
            ));
        }
    }
    Ok(Resolved {
        name: s.name,
        depth,
        color,
        color_format,
        imu: s.imu.unwrap_or(false),
        gyro_hz: s.gyro_hz,
        accel_hz: s.accel_hz,
        ir,
        options,
    })
}

/// `--ir`: `left`, `right`, `left,right` (also `both`, `1`, `2`), or `off`; librealsense's
/// infrared stream indices, sorted and unique.
pub fn parse_ir(v: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim) {
        match part {
            "off" | "none" if v.trim() == part => return Ok(Vec::new()),
            "left" | "1" => out.push(1),
            "right" | "2" => out.push(2),
            "both" => out.extend([1, 2]),
            other => return Err(format!("'{other}': use left, right, left,right or off")),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// librealsense's `rs2_rs400_visual_preset`.
fn preset_value(p: &NumOrText) -> Result<f32, ConfigError> {
    const NAMES: [&str; 7] = [
        "custom",
        "default",
        "hand",
        "high_accuracy",
        "high_density",
        "medium_density",
        "remove_ir_pattern",
    ];
    match p {
        NumOrText::Num(n) if *n >= 0.0 && n.fract() == 0.0 && *n < NAMES.len() as f64 => {
            Ok(*n as f32)
        }
        NumOrText::Text(t) => {
            let t = t.to_ascii_lowercase().replace([' ', '-'], "_");
            NAMES
                .iter()
                .position(|n| *n == t)
                .map(|i| i as f32)
                .ok_or_else(|| {
                    invalid(
                        "visual_preset",
                        format!("'{t}': use one of {}", NAMES.join(", ")),
                    )
                })
        }
        n => Err(invalid(
            "visual_preset",
            format!("{n}: use 0..{} or a name", NAMES.len() - 1),
        )),
    }
}

/// librealsense's `Inter Cam Sync Mode` of the D400 depth sensor.
fn sync_value(m: &NumOrText) -> Result<f32, ConfigError> {
    match m {
        NumOrText::Text(t) => match t.as_str() {
            "off" | "default" => Ok(0.0),
            "master" => Ok(1.0),
            "slave" => Ok(2.0),
            "full-slave" | "full_slave" => Ok(3.0),
            t => match t.parse::<f64>() {
                Ok(n) => sync_value(&NumOrText::Num(n)),
                Err(_) => Err(invalid(
                    "sync",
                    format!("'{t}': use off, master, slave, full-slave or 4..258"),
                )),
            },
        },
        NumOrText::Num(n) if n.fract() == 0.0 && (0.0..=258.0).contains(n) => Ok(*n as f32),
        NumOrText::Num(n) => Err(invalid(
            "sync",
            format!("{n}: use off, master, slave, full-slave or 4..258"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[defaults]
color = "off"
visual_preset = "high_accuracy"
sync = "slave"

[camera.111]
name = "front"
sync = "master"
exposure = 8500
options = { "color:Enable Auto White Balance" = 0 }

[camera.222]
name = "left"
depth = "1280x720@15"
exposure = "auto"
emitter = false
"#;

    fn opt(r: &Resolved, name: &str) -> Option<f32> {
        r.options.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    #[test]
    fn infrared_choices_parse() {
        assert_eq!(parse_ir("left,right"), Ok(vec![1, 2]));
        assert_eq!(parse_ir("right, left,left"), Ok(vec![1, 2]));
        assert_eq!(parse_ir("right"), Ok(vec![2]));
        assert_eq!(parse_ir("both"), Ok(vec![1, 2]));
        assert_eq!(parse_ir("off"), Ok(vec![]));
        assert!(parse_ir("left,off").is_err());
        assert!(parse_ir("middle").unwrap_err().contains("left, right"));
    }

    #[test]
    fn file_defaults_command_line_and_per_camera_layers() {
        let f = ConfigFile::parse(FILE).unwrap();
        let cli = CameraSettings {
            laser_power: Some(200.0),
            sync: Some(NumOrText::Text("off".into())),
            imu: Some(true),
            ..Default::default()
        };
        let front = resolve(Some(&f), &cli, "111").unwrap();
        assert_eq!(front.name.as_deref(), Some("front"));
        assert_eq!(front.color, None);
        assert!(front.imu);
        // The file's camera section beats the command line, which beats [defaults].
        assert_eq!(opt(&front, "depth:Inter Cam Sync Mode"), Some(1.0));
        assert_eq!(opt(&front, "depth:Laser Power"), Some(200.0));
        assert_eq!(opt(&front, "depth:Visual Preset"), Some(3.0));
        assert_eq!(opt(&front, "depth:Exposure"), Some(8500.0));
        assert_eq!(opt(&front, "depth:Enable Auto Exposure"), Some(0.0));
        assert_eq!(opt(&front, "color:Enable Auto White Balance"), Some(0.0));
        // The preset goes first: setting it changes the other options.
        assert_eq!(front.options[0].0, "depth:Visual Preset");

        let left = resolve(Some(&f), &cli, "222").unwrap();
        assert_eq!(left.depth.to_string(), "1280x720@15");
        assert_eq!(opt(&left, "depth:Enable Auto Exposure"), Some(1.0));
        assert_eq!(opt(&left, "depth:Exposure"), None);
        assert_eq!(opt(&left, "depth:Emitter Enabled"), Some(0.0));
        assert_eq!(opt(&left, "depth:Inter Cam Sync Mode"), Some(0.0));

        // A camera the file does not name gets [defaults] and the command line.
        let other = resolve(Some(&f), &CameraSettings::default(), "333").unwrap();
        assert_eq!(other.name, None);
        assert_eq!(opt(&other, "depth:Inter Cam Sync Mode"), Some(2.0));
        assert_eq!(other.depth.to_string(), DEFAULT_DEPTH);
        assert!(!other.imu);
    }

    #[test]
    fn bad_files_are_rejected_with_the_place() {
        for (text, want) in [
            ("[camera.1]\nsink = 3\n", "unknown field"),
            ("[camera.1]\nvisual_preset = \"fast\"\n", "[camera.1]"),
            ("[defaults]\ndepth = \"848x480\"\n", "[defaults]"),
            ("[camera.1]\nsync = 300\n", "sync"),
            ("[camera.1]\nname = \"a/b\"\n", "name"),
            ("[camera.1]\nexposure = 0\n", "exposure"),
            ("[camera.1]\ncolor_format = \"nv12\"\n", "color_format"),
            (
                "[camera.1]\nname = \"x\"\n[camera.2]\nname = \"x\"\n",
                "both named",
            ),
            ("[camera.1\n", "TOML"),
        ] {
            let e = crate::error::chain(&ConfigFile::parse(text).unwrap_err());
            assert!(
                e.contains(want) || (want == "TOML" && !e.is_empty()),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn presets_and_sync_modes() {
        let t = |s: &str| NumOrText::Text(s.into());
        assert_eq!(preset_value(&t("High Accuracy")).unwrap(), 3.0);
        assert_eq!(preset_value(&NumOrText::Num(5.0)).unwrap(), 5.0);
        assert!(preset_value(&NumOrText::Num(9.0)).is_err());
        assert_eq!(sync_value(&t("master")).unwrap(), 1.0);
        assert_eq!(sync_value(&t("full-slave")).unwrap(), 3.0);
        assert_eq!(sync_value(&t("10")).unwrap(), 10.0);
        assert!(sync_value(&t("leader")).is_err());
    }
}
