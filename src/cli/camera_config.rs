//! The RealSense flags of `rsrec record` (stream modes come from `record`'s own flags), as
//! one settings layer of [`rsrec::source::config`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use rsrec::source::config::{CameraSettings, NumOrText};
use rsrec::source::StreamMode;

use super::util::usage;

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
    /// Gyro rate in Hz with --imu (D435i: 200 or 400) [default: the camera's native rate].
    #[arg(long, value_name = "HZ")]
    pub gyro_hz: Option<u32>,
    /// Accel rate in Hz with --imu (D435i: 63 or 250) [default: the camera's native rate].
    #[arg(long, value_name = "HZ")]
    pub accel_hz: Option<u32>,
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
    /// Refuse to start unless every camera opens (by default one that fails is left out,
    /// said, and listed in session.json, and the others are recorded).
    #[arg(long)]
    pub require_all: bool,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("'{s}': use on or off")),
    }
}

impl RealSenseArgs {
    /// The command line as one settings layer (`depth`, `color`, `imu` and `ir` come from
    /// the record command's own flags).
    pub fn layer(
        &self,
        depth: Option<&StreamMode>,
        color: Option<&str>,
        imu: bool,
        ir: Option<&[u8]>,
    ) -> anyhow::Result<CameraSettings> {
        let mut options = BTreeMap::new();
        for o in &self.rs_options {
            let (k, v) = o
                .rsplit_once('=')
                .ok_or_else(|| usage(format!("--rs-option '{o}': use NAME=VALUE")))?;
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| usage(format!("--rs-option '{o}': the value is not a number")))?;
            options.insert(k.trim().to_string(), v);
        }
        let text = |s: &Option<String>| s.clone().map(NumOrText::Text);
        Ok(CameraSettings {
            name: None,
            depth: depth.map(|d| d.to_string()),
            color: color.map(str::to_string),
            color_format: self.color_format.clone(),
            imu: imu.then_some(true),
            gyro_hz: self.gyro_hz,
            accel_hz: self.accel_hz,
            ir: ir
                .map(|v| {
                    v.iter()
                        .map(|&i| if i == 2 { "right" } else { "left" })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .map(|s| if s.is_empty() { "off".to_string() } else { s }),
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
            && self.gyro_hz.is_none()
            && self.accel_hz.is_none()
            && self.rs_options.is_empty()
            && !self.require_all
            && self.camera_config.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsrec::source::config::{resolve, Resolved};

    fn opt(r: &Resolved, name: &str) -> Option<f32> {
        r.options.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    #[test]
    fn command_line_layer() {
        let args = RealSenseArgs {
            exposure: Some("auto".into()),
            rs_options: vec!["depth:Laser Power=120".into(), "Gain = 16".into()],
            ..Default::default()
        };
        let layer = args.layer(None, Some("off"), false, Some(&[2])).unwrap();
        let r = resolve(None, &layer, "1").unwrap();
        assert_eq!(opt(&r, "depth:Laser Power"), Some(120.0));
        assert_eq!(opt(&r, "Gain"), Some(16.0));
        assert_eq!(opt(&r, "depth:Enable Auto Exposure"), Some(1.0));
        assert_eq!(r.color, None);
        assert_eq!(r.ir, vec![2]);
        let none = args.layer(None, None, false, Some(&[])).unwrap();
        assert_eq!(resolve(None, &none, "1").unwrap().ir, Vec::<u8>::new());
        let bad = RealSenseArgs {
            rs_options: vec!["Gain".into()],
            ..Default::default()
        };
        assert!(bad.layer(None, None, false, None).is_err());
    }
}
