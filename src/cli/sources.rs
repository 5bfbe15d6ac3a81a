//! Camera specifications on the command line (`sim:N`, `png:DIR`, `bag:FILE`, `rsbag:FILE`,
//! `all`, serial numbers) and opening them as sources.

use std::path::PathBuf;

use anyhow::{bail, Context};
use rsrec::source::png::PngSource;
use rsrec::source::sim::{Pacing, SimConfig, SimSource, StreamMode};
use rsrec::source::Source;

use super::camera_config::{CameraSettings, ConfigFile};

#[derive(Clone, Debug, PartialEq)]
pub enum CameraSpec {
    Sim(usize),
    Png(PathBuf),
    Bag(PathBuf),
    /// A `.bag` played through librealsense's playback device (feature `realsense`).
    RsBag(PathBuf),
    AllRealSense,
    Serial(String),
}

impl CameraSpec {
    pub fn parse_list(s: &str) -> anyhow::Result<Vec<CameraSpec>> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            out.push(if let Some(n) = part.strip_prefix("sim:") {
                let n: usize = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .with_context(|| format!("'{part}': sim:N needs N in 1..=64"))?;
                CameraSpec::Sim(n)
            } else if let Some(p) = part.strip_prefix("png:") {
                CameraSpec::Png(PathBuf::from(p))
            } else if let Some(p) = part.strip_prefix("rsbag:") {
                CameraSpec::RsBag(PathBuf::from(p))
            } else if let Some(p) = part.strip_prefix("bag:") {
                CameraSpec::Bag(PathBuf::from(p))
            } else if part == "all" {
                CameraSpec::AllRealSense
            } else if part.chars().all(|c| c.is_ascii_alphanumeric()) {
                CameraSpec::Serial(part.to_string())
            } else {
                bail!("'{part}' is not a camera (use sim:N, png:DIR, bag:FILE, rsbag:FILE, all or a serial number)");
            });
        }
        if out.is_empty() {
            bail!("--cameras is empty");
        }
        Ok(out)
    }
}

pub struct SourceSettings {
    pub depth: StreamMode,
    pub color: Option<StreamMode>,
    pub imu: bool,
    pub fps: f64,
    pub pacing: Pacing,
    /// RealSense cameras: the `--camera-config` file and the command line as a settings layer.
    pub camera_file: Option<ConfigFile>,
    #[cfg_attr(not(feature = "realsense"), allow(dead_code))]
    pub camera_cli: CameraSettings,
}

/// Opens every camera; returns (spec text, source) pairs.
pub fn open_sources(
    specs: &[CameraSpec],
    s: &SourceSettings,
) -> anyhow::Result<Vec<(String, Box<dyn Source>)>> {
    let mut out: Vec<(String, Box<dyn Source>)> = Vec::new();
    let mut sim_index = 0;
    for spec in specs {
        match spec {
            CameraSpec::Sim(n) => {
                for _ in 0..*n {
                    let mut cfg = SimConfig::new(sim_index, s.depth);
                    cfg.color = s.color;
                    cfg.imu = s.imu;
                    cfg.pacing = s.pacing;
                    out.push((format!("sim:{sim_index}"), Box::new(SimSource::new(cfg))));
                    sim_index += 1;
                }
            }
            CameraSpec::Png(dir) => {
                let src = PngSource::open(dir, s.fps, 0.001, None, s.pacing)
                    .with_context(|| format!("png:{}", dir.display()))?;
                out.push((format!("png:{}", dir.display()), Box::new(src)));
            }
            CameraSpec::Bag(file) => {
                let src = super::bag::open(file, s.pacing)
                    .with_context(|| format!("bag:{}", file.display()))?;
                out.push((format!("bag:{}", file.display()), src));
            }
            CameraSpec::RsBag(file) => {
                #[cfg(feature = "realsense")]
                {
                    use rsrec::source::realsense::RealSenseSource;
                    let r =
                        super::camera_config::resolve(s.camera_file.as_ref(), &s.camera_cli, "")?;
                    let mut cfg = realsense_config(&r);
                    cfg.pacing = s.pacing;
                    let mut src = RealSenseSource::open_bag(file, &cfg)
                        .with_context(|| format!("rsbag:{}", file.display()))?;
                    // A name for the recorded camera's serial number in the config file.
                    let serial = src.info().device.serial.clone();
                    let named = s.camera_file.as_ref().and_then(|f| f.camera.get(&serial));
                    if let Some(name) = named.and_then(|c| c.name.clone()) {
                        src.set_name(&name);
                    }
                    out.push((format!("rsbag:{}", file.display()), Box::new(src)));
                }
                #[cfg(not(feature = "realsense"))]
                bail!(
                    "rsbag:{}: this build of rsrec has no RealSense support (use bag:FILE for \
                     rsrec's own .bag reader, or build with `--features realsense`, see README)",
                    file.display()
                )
            }
            CameraSpec::AllRealSense | CameraSpec::Serial(_) => {
                #[cfg(feature = "realsense")]
                {
                    use rsrec::source::realsense::RealSenseSource;
                    let serials = match spec {
                        CameraSpec::Serial(serial) => vec![serial.clone()],
                        _ => RealSenseSource::connected_serials().context("--cameras all")?,
                    };
                    if let Some(f) = &s.camera_file {
                        for serial in f.camera.keys() {
                            if !serials.contains(serial) && matches!(spec, CameraSpec::AllRealSense)
                            {
                                eprintln!(
                                    "rsrec: warning: camera {serial} of --camera-config is not connected"
                                );
                            }
                        }
                    }
                    for serial in serials {
                        let r = super::camera_config::resolve(
                            s.camera_file.as_ref(),
                            &s.camera_cli,
                            &serial,
                        )?;
                        // The error names the camera.
                        let cam = RealSenseSource::open(&serial, &realsense_config(&r))?;
                        for w in cam.warnings() {
                            eprintln!("rsrec: warning: {w}");
                        }
                        out.push((format!("realsense:{serial}"), Box::new(cam)));
                    }
                }
                #[cfg(not(feature = "realsense"))]
                bail!(
                    "this build of rsrec has no RealSense support: install librealsense2-dev and \
                     build with `cargo install --path . --features realsense` (see README)"
                )
            }
        }
    }
    Ok(out)
}

/// The librealsense configuration of one resolved camera.
#[cfg(feature = "realsense")]
fn realsense_config(
    r: &super::camera_config::Resolved,
) -> rsrec::source::realsense::RealSenseConfig {
    let mut cfg = rsrec::source::realsense::RealSenseConfig::new(r.depth, r.color, r.imu);
    cfg.color_format = r.color_format;
    cfg.options = r.options.clone();
    cfg.name = r.name.clone();
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_lists_parse() {
        assert_eq!(
            CameraSpec::parse_list("sim:2, png:/d,bag:x.bag,rsbag:y.bag,all,123456").unwrap(),
            vec![
                CameraSpec::Sim(2),
                CameraSpec::Png("/d".into()),
                CameraSpec::Bag("x.bag".into()),
                CameraSpec::RsBag("y.bag".into()),
                CameraSpec::AllRealSense,
                CameraSpec::Serial("123456".into())
            ]
        );
        assert!(CameraSpec::parse_list("sim:0").is_err());
        assert!(CameraSpec::parse_list("sim:x").is_err());
        assert!(CameraSpec::parse_list("").is_err());
        assert!(CameraSpec::parse_list("web:cam").is_err());
    }
}
