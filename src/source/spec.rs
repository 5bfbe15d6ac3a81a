//! Camera specifications (`sim:N`, `png:DIR`, `bag:FILE`, `rsbag:FILE`, `all`, serial
//! numbers, as `rsrec record --cameras` takes them) and opening them as sources.

use std::path::PathBuf;

use super::bag::BagSource;
use super::config::{CameraSettings, ConfigError, ConfigFile};
use super::png::PngSource;
use super::sim::{SimConfig, SimSource};
use super::{Pacing, Source, SourceError, StreamMode};

/// A camera list that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    #[error(
        "'{0}' is not a camera (use sim:N, png:DIR, bag:FILE, rsbag:FILE, all or a serial number)"
    )]
    NotACamera(String),
    #[error("'{0}': sim:N needs N in 1..=64")]
    SimCount(String),
    #[error("the camera list is empty")]
    Empty,
}

/// A camera that could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The source failed to open; `spec` says which (`png:DIR`, `realsense:SERIAL`).
    #[error("{spec}")]
    Source {
        spec: String,
        #[source]
        source: SourceError,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// RealSense cameras in a build without the `realsense` feature.
    #[error("{0}")]
    Unsupported(String),
}

/// The opened cameras, with what the user should be told about them.
pub struct Opened {
    /// (spec, source) per camera, in the order asked for.
    pub cameras: Vec<(String, Box<dyn Source>)>,
    /// Things to tell the user (a configured camera that is not connected, a camera on USB 2).
    pub warnings: Vec<String>,
    /// RealSense cameras (and `rsbag:` playbacks) that failed to open and were left out, with
    /// why ([`SourceSettings::require_all`] makes that an error instead).
    pub left_out: Vec<(String, String)>,
}

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
    pub fn parse_list(s: &str) -> Result<Vec<CameraSpec>, SpecError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            out.push(if let Some(n) = part.strip_prefix("sim:") {
                let n: usize = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| SpecError::SimCount(part.to_string()))?;
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
                return Err(SpecError::NotACamera(part.to_string()));
            });
        }
        if out.is_empty() {
            return Err(SpecError::Empty);
        }
        Ok(out)
    }
}

pub struct SourceSettings {
    pub depth: StreamMode,
    pub color: Option<StreamMode>,
    pub imu: bool,
    /// Infrared imagers (`--ir`, librealsense indices: 1 left, 2 right) of synthetic
    /// cameras; RealSense cameras take theirs from `camera_cli` and the file.
    pub ir: Vec<u8>,
    pub fps: f64,
    pub pacing: Pacing,
    /// RealSense cameras: the `--camera-config` file and the command line as a settings layer.
    pub camera_file: Option<ConfigFile>,
    pub camera_cli: CameraSettings,
    /// A RealSense camera that fails to open is an error, not left out.
    pub require_all: bool,
}

/// Noise variants a synthetic camera renders once and composes its moving scene from.
const SIM_NOISE_VARIANTS: usize = 15;

/// Opens every camera.
pub fn open_sources(specs: &[CameraSpec], s: &SourceSettings) -> Result<Opened, OpenError> {
    let mut out: Vec<(String, Box<dyn Source>)> = Vec::new();
    #[cfg_attr(not(feature = "realsense"), allow(unused_mut))]
    let mut warnings = Vec::new();
    let failed = |spec: String| move |source| OpenError::Source { spec, source };
    // One bad camera of a rig does not stop the others: it is left out and said, unless
    // every camera is required (or none opens at all).
    let mut left_out: Vec<(String, String)> = Vec::new();
    let mut first_failure: Option<OpenError> = None;
    #[cfg_attr(not(feature = "realsense"), allow(unused_mut, unused_variables))]
    let mut leave_out = |e: OpenError| -> Result<(), OpenError> {
        if s.require_all {
            return Err(e);
        }
        let spec = match &e {
            OpenError::Source { spec, .. } => spec.clone(),
            _ => String::new(),
        };
        left_out.push((spec, crate::error::chain(&e)));
        first_failure.get_or_insert(e);
        Ok(())
    };
    let mut sim_index = 0;
    #[cfg(feature = "realsense")]
    let mut rs_context: Option<super::realsense::RealSenseContext> = None;
    for spec in specs {
        match spec {
            CameraSpec::Sim(n) => {
                for _ in 0..*n {
                    let mut cfg = SimConfig::new(sim_index, s.depth);
                    cfg.color = s.color;
                    cfg.imu = s.imu;
                    cfg.infrared = s.ir.clone();
                    cfg.pacing = s.pacing;
                    // Like a real camera, a synthetic one costs the host (almost) no
                    // rendering: depth frames are composed from layers rendered once (the
                    // scene moves, the noise repeats); colour stays live, each frame showing
                    // its number.
                    cfg.prerendered = Some(SIM_NOISE_VARIANTS);
                    cfg.live_color = true;
                    out.push((format!("sim:{sim_index}"), Box::new(SimSource::new(cfg))));
                    sim_index += 1;
                }
            }
            CameraSpec::Png(dir) => {
                let src = PngSource::open(dir, s.fps, 0.001, None, s.pacing)
                    .map_err(failed(format!("png:{}", dir.display())))?;
                if let Some(note) = src.pairing().note() {
                    warnings.push(format!("png:{}: {note}", dir.display()));
                }
                out.push((format!("png:{}", dir.display()), Box::new(src)));
            }
            CameraSpec::Bag(file) => {
                let src = BagSource::open(file, s.pacing)
                    .map_err(failed(format!("bag:{}", file.display())))?;
                for skipped in src.skipped_streams() {
                    warnings.push(format!("bag:{}: not recorded: {skipped}", file.display()));
                }
                out.push((format!("bag:{}", file.display()), Box::new(src)));
            }
            CameraSpec::RsBag(file) => {
                #[cfg(feature = "realsense")]
                {
                    use super::realsense::RealSenseSource;
                    let r = super::config::resolve(s.camera_file.as_ref(), &s.camera_cli, "")?;
                    let mut cfg = realsense_config(&r);
                    cfg.pacing = s.pacing;
                    let mut src = match RealSenseSource::open_bag(file, &cfg) {
                        Ok(src) => src,
                        Err(e) => {
                            leave_out(failed(format!("rsbag:{}", file.display()))(e))?;
                            continue;
                        }
                    };
                    // A name for the recorded camera's serial number in the config file.
                    let serial = src.info().device.serial.clone();
                    let named = s.camera_file.as_ref().and_then(|f| f.camera.get(&serial));
                    if let Some(name) = named.and_then(|c| c.name.clone()) {
                        src.set_name(&name);
                    }
                    out.push((format!("rsbag:{}", file.display()), Box::new(src)));
                }
                #[cfg(not(feature = "realsense"))]
                return Err(OpenError::Unsupported(format!(
                    "rsbag:{}: this build of rsrec has no RealSense support (use bag:FILE for \
                     rsrec's own .bag reader, or build with `--features realsense`, see README)",
                    file.display()
                )));
            }
            CameraSpec::AllRealSense | CameraSpec::Serial(_) => {
                #[cfg(feature = "realsense")]
                {
                    use super::realsense::{RealSenseContext, RealSenseSource};
                    // One librealsense context for every camera of the rig.
                    let ctx = match &rs_context {
                        Some(c) => c,
                        None => rs_context.insert(
                            RealSenseContext::new().map_err(failed("realsense".to_string()))?,
                        ),
                    };
                    let serials = match spec {
                        CameraSpec::Serial(serial) => vec![serial.clone()],
                        _ => {
                            let serials = ctx.serials().map_err(failed("all".to_string()))?;
                            if serials.is_empty() {
                                RealSenseSource::connected_serials()
                                    .map_err(failed("all".to_string()))?;
                            }
                            serials
                        }
                    };
                    if let Some(f) = &s.camera_file {
                        for serial in f.camera.keys() {
                            if !serials.contains(serial) && matches!(spec, CameraSpec::AllRealSense)
                            {
                                warnings.push(format!(
                                    "camera {serial} of --camera-config is not connected"
                                ));
                            }
                        }
                    }
                    let mut cameras = Vec::new();
                    for serial in serials {
                        let r =
                            super::config::resolve(s.camera_file.as_ref(), &s.camera_cli, &serial)?;
                        cameras.push((serial, realsense_config(&r)));
                    }
                    // All at once, each streaming as soon as it is open.
                    let opened = RealSenseSource::open_rig(ctx, &cameras);
                    for ((serial, _), cam) in cameras.iter().zip(opened) {
                        let cam = match cam {
                            Ok(cam) => cam,
                            Err(e) => {
                                leave_out(failed(format!("realsense:{serial}"))(e))?;
                                continue;
                            }
                        };
                        warnings.extend(cam.warnings().iter().cloned());
                        out.push((format!("realsense:{serial}"), Box::new(cam)));
                    }
                }
                #[cfg(not(feature = "realsense"))]
                return Err(OpenError::Unsupported(
                    "this build of rsrec has no RealSense support: install librealsense2-dev and \
                     build with `cargo install --path . --features realsense` (see README)"
                        .into(),
                ));
            }
        }
    }
    if out.is_empty() {
        if let Some(e) = first_failure {
            return Err(e);
        }
    }
    warnings.extend(super::sync::check(
        out.iter().map(|(_, s)| (s.info().name.as_str(), s.info())),
    ));
    for (spec, why) in &left_out {
        warnings.push(format!(
            "{spec} left out (the other cameras are recorded; --require-all makes this an \
             error): {why}"
        ));
    }
    Ok(Opened {
        cameras: out,
        warnings,
        left_out,
    })
}

/// The librealsense configuration of one resolved camera.
#[cfg(feature = "realsense")]
fn realsense_config(r: &super::config::Resolved) -> super::realsense::RealSenseConfig {
    let mut cfg = super::realsense::RealSenseConfig::new(r.depth, r.color, r.imu);
    cfg.gyro_hz = r.gyro_hz;
    cfg.accel_hz = r.accel_hz;
    cfg.infrared = r.ir.clone();
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
