//! Camera settings for `rsrec record`: the command-line flags (stream modes, visual preset,
//! emitter, laser power, exposure, inter-camera sync, raw librealsense options) and the
//! per-camera TOML file (`--camera-config`), merged into one [`Resolved`] setting per camera.
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

use anyhow::{bail, Context};
use rsrec::container::PixelFormat;
use rsrec::source::sim::StreamMode;
use serde::Deserialize;

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
    pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the camera config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("camera config {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<ConfigFile> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        // Check every layer now, so a typo stops the recording before it starts.
        resolve_layers(&[&file.defaults]).context("[defaults]")?;
        let mut names = BTreeMap::new();
        for (serial, s) in &file.camera {
            resolve_layers(&[&file.defaults, s]).with_context(|| format!("[camera.{serial}]"))?;
            if let Some(n) = &s.name {
                if let Some(other) = names.insert(n.clone(), serial.clone()) {
                    bail!("cameras {other} and {serial} are both named '{n}'");
                }
            }
        }
        Ok(file)
    }
}

/// Flags of `rsrec record` for RealSense cameras (ignored by other sources).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RealSenseArgs {
    /// Inter-camera hardware sync: off, master, slave, full-slave, or a genlock mode 4..258.
    #[arg(long)]
    pub sync: Option<String>,
    /// Depth visual preset: default, hand, high_accuracy, high_density, medium_density,
    /// remove_ir_pattern, custom, or its number.
    #[arg(long)]
    pub visual_preset: Option<String>,
    /// Depth projector (IR emitter): on or off.
    #[arg(long, value_parser = parse_on_off)]
    pub emitter: Option<bool>,
    /// Laser power in mW (D435: 0-360).
    #[arg(long)]
    pub laser_power: Option<f64>,
    /// Depth exposure in microseconds, or `auto`.
    #[arg(long)]
    pub exposure: Option<String>,
    /// Colour pixel format: rgb8, bgr8, rgba8, bgra8 or yuyv.
    #[arg(long)]
    pub color_format: Option<String>,
    /// A librealsense option, `NAME=VALUE` (repeatable), e.g. `depth:Enable Auto Exposure=0`.
    #[arg(long = "rs-option", value_name = "NAME=VALUE")]
    pub rs_options: Vec<String>,
    /// TOML file with per-camera settings and names, keyed by serial number (README).
    #[arg(long)]
    pub camera_config: Option<PathBuf>,
    /// Do not reopen a camera that disconnects (its file is closed, the others go on).
    #[arg(long)]
    pub no_reconnect: bool,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("'{s}': use on or off")),
    }
}

impl RealSenseArgs {
    /// The command line as one settings layer (`depth`, `color` and `imu` come from the
    /// record command's own flags).
    pub fn layer(
        &self,
        depth: Option<&StreamMode>,
        color: Option<&str>,
        imu: bool,
    ) -> anyhow::Result<CameraSettings> {
        let mut options = BTreeMap::new();
        for o in &self.rs_options {
            let (k, v) = o
                .rsplit_once('=')
                .with_context(|| format!("--rs-option '{o}': use NAME=VALUE"))?;
            let v: f64 = v
                .trim()
                .parse()
                .with_context(|| format!("--rs-option '{o}': the value is not a number"))?;
            options.insert(k.trim().to_string(), v);
        }
        let text = |s: &Option<String>| s.clone().map(NumOrText::Text);
        Ok(CameraSettings {
            name: None,
            depth: depth.map(|d| d.to_string()),
            color: color.map(str::to_string),
            color_format: self.color_format.clone(),
            imu: imu.then_some(true),
            visual_preset: text(&self.visual_preset),
            emitter: self.emitter,
            laser_power: self.laser_power,
            exposure: text(&self.exposure),
            sync: text(&self.sync),
            options,
        })
    }

    /// Nothing RealSense-specific was asked for.
    pub fn is_empty(&self) -> bool {
        self.sync.is_none()
            && self.visual_preset.is_none()
            && self.emitter.is_none()
            && self.laser_power.is_none()
            && self.exposure.is_none()
            && self.color_format.is_none()
            && self.rs_options.is_empty()
            && self.camera_config.is_none()
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
    /// Options in the order they are applied (the preset first: it changes the others).
    pub options: Vec<(String, f32)>,
}

pub const DEFAULT_DEPTH: &str = "848x480@30";
pub const DEFAULT_COLOR: &str = "640x480@30";

/// Settings of the camera with serial `serial`: defaults < file `[defaults]` < command line
/// < file `[camera.SERIAL]`.
#[cfg_attr(not(feature = "realsense"), allow(dead_code))]
pub fn resolve(
    file: Option<&ConfigFile>,
    cli: &CameraSettings,
    serial: &str,
) -> anyhow::Result<Resolved> {
    let empty = CameraSettings::default();
    let (defaults, own) = match file {
        Some(f) => (&f.defaults, f.camera.get(serial).unwrap_or(&empty)),
        None => (&empty, &empty),
    };
    resolve_layers(&[defaults, cli, own]).with_context(|| format!("camera {serial}"))
}

fn resolve_layers(layers: &[&CameraSettings]) -> anyhow::Result<Resolved> {
    let s = layers
        .iter()
        .fold(CameraSettings::default(), |acc, l| acc.merge(l));
    let depth: StreamMode = s
        .depth
        .as_deref()
        .unwrap_or(DEFAULT_DEPTH)
        .parse()
        .map_err(anyhow::Error::msg)
        .context("depth")?;
    let color = match s.color.as_deref().unwrap_or(DEFAULT_COLOR) {
        "off" | "none" => None,
        m => Some(
            m.parse::<StreamMode>()
                .map_err(anyhow::Error::msg)
                .context("color")?,
        ),
    };
    let color_format = match s.color_format.as_deref().unwrap_or("rgb8") {
        "rgb8" | "rgb" => PixelFormat::Rgb8,
        "bgr8" | "bgr" => PixelFormat::Bgr8,
        "rgba8" | "rgba" => PixelFormat::Rgba8,
        "bgra8" | "bgra" => PixelFormat::Bgra8,
        "yuyv" => PixelFormat::Yuyv,
        f => bail!("color_format '{f}': use rgb8, bgr8, rgba8, bgra8 or yuyv"),
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
            bail!("laser_power {p} mW is out of range");
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
                    .ok()
                    .with_context(|| format!("exposure '{t}': microseconds or auto"))?,
            };
            if !(1.0..=200_000.0).contains(&us) {
                bail!("exposure {us} us is out of range (1..200000)");
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
            bail!("name '{n}': use 1-64 letters, digits, - or _ (it becomes a file name)");
        }
    }
    Ok(Resolved {
        name: s.name,
        depth,
        color,
        color_format,
        imu: s.imu.unwrap_or(false),
        options,
    })
}

/// librealsense's `rs2_rs400_visual_preset`.
fn preset_value(p: &NumOrText) -> anyhow::Result<f32> {
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
                .with_context(|| format!("visual_preset '{t}': use one of {}", NAMES.join(", ")))
        }
        n => bail!("visual_preset {n}: use 0..{} or a name", NAMES.len() - 1),
    }
}

/// librealsense's `Inter Cam Sync Mode` of the D400 depth sensor.
fn sync_value(m: &NumOrText) -> anyhow::Result<f32> {
    match m {
        NumOrText::Text(t) => match t.as_str() {
            "off" | "default" => Ok(0.0),
            "master" => Ok(1.0),
            "slave" => Ok(2.0),
            "full-slave" | "full_slave" => Ok(3.0),
            t => match t.parse::<f64>() {
                Ok(n) => sync_value(&NumOrText::Num(n)),
                Err(_) => bail!("sync '{t}': use off, master, slave, full-slave or 4..258"),
            },
        },
        NumOrText::Num(n) if n.fract() == 0.0 && (0.0..=258.0).contains(n) => Ok(*n as f32),
        NumOrText::Num(n) => bail!("sync {n}: use off, master, slave, full-slave or 4..258"),
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
            let e = format!("{:#}", ConfigFile::parse(text).unwrap_err());
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

    #[test]
    fn command_line_layer() {
        let args = RealSenseArgs {
            exposure: Some("auto".into()),
            rs_options: vec!["depth:Laser Power=120".into(), "Gain = 16".into()],
            ..Default::default()
        };
        let layer = args.layer(None, Some("off"), false).unwrap();
        let r = resolve(None, &layer, "1").unwrap();
        assert_eq!(opt(&r, "depth:Laser Power"), Some(120.0));
        assert_eq!(opt(&r, "Gain"), Some(16.0));
        assert_eq!(opt(&r, "depth:Enable Auto Exposure"), Some(1.0));
        assert_eq!(r.color, None);
        let bad = RealSenseArgs {
            rs_options: vec!["Gain".into()],
            ..Default::default()
        };
        assert!(bad.layer(None, None, false).is_err());
    }
}
