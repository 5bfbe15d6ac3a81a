//! Device listing (`rsrec devices`), through realsense-rust.

use super::*;

/// One stream mode a sensor offers.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ModeListing {
    pub stream: String,
    pub index: usize,
    pub format: String,
    /// 0 for motion streams.
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub default: bool,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SensorListing {
    pub name: String,
    pub modes: Vec<ModeListing>,
}

/// A connected camera as `rsrec devices` shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeviceListing {
    pub name: String,
    pub serial: String,
    pub firmware: String,
    pub usb_type: String,
    pub product_line: String,
    pub physical_port: String,
    /// Connected through USB 2 (reduced modes).
    pub usb2: bool,
    pub sensors: Vec<SensorListing>,
}

/// Every connected RealSense camera with its sensors and stream modes.
pub fn list_devices() -> Result<Vec<DeviceListing>, SourceError> {
    use realsense_rust::context::Context as RsContext;
    use realsense_rust::kind::{Rs2CameraInfo, Rs2StreamKind};

    let ctx = RsContext::new().map_err(|e| SourceError::Open(format!("librealsense: {e}")))?;
    let mut out = Vec::new();
    for dev in ctx.query_devices(Default::default()) {
        let info = |k| {
            dev.info(k)
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let usb_type = info(Rs2CameraInfo::UsbTypeDescriptor);
        let mut sensors = Vec::new();
        for s in dev.sensors() {
            let name = s
                .info(Rs2CameraInfo::Name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut modes = Vec::new();
            for p in s.stream_profiles() {
                let motion = matches!(p.kind(), Rs2StreamKind::Gyro | Rs2StreamKind::Accel);
                let (width, height) = if motion {
                    (0, 0)
                } else {
                    match p.intrinsics() {
                        Ok(k) => (k.width() as u32, k.height() as u32),
                        Err(_) => (0, 0),
                    }
                };
                modes.push(ModeListing {
                    stream: p.kind().to_string(),
                    index: p.index(),
                    format: format_name(p.format() as sys::rs2_format),
                    width,
                    height,
                    fps: p.framerate().max(0) as u32,
                    default: p.is_default(),
                });
            }
            modes.sort_by(|a, b| {
                (&a.stream, a.index, &a.format, b.width, b.height, b.fps)
                    .cmp(&(&b.stream, b.index, &b.format, a.width, a.height, a.fps))
            });
            sensors.push(SensorListing { name, modes });
        }
        out.push(DeviceListing {
            name: info(Rs2CameraInfo::Name),
            serial: info(Rs2CameraInfo::SerialNumber),
            firmware: info(Rs2CameraInfo::FirmwareVersion),
            usb2: usb_type.starts_with('2'),
            usb_type,
            product_line: info(Rs2CameraInfo::ProductLine),
            physical_port: info(Rs2CameraInfo::PhysicalPort),
            sensors,
        });
    }
    out.sort_by(|a, b| a.serial.cmp(&b.serial));
    Ok(out)
}
