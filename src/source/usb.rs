//! USB and bandwidth preflight for multi-camera RealSense rigs, from Linux's sysfs alone (no
//! librealsense, so it is in every build): which D4xx cameras are connected, at which USB
//! speed, through which host controller; how many MB/s each camera and each controller's bus
//! will carry at the modes to be streamed; and the kernel's `usbfs_memory_mb` limit.
//!
//! - [`survey`]: every camera found, all at one set of modes (`rsrec devices`).
//! - [`preflight`]: the cameras a recording is about to stream, each at its own modes.
//! - [`UsbReport::warnings`]: what is wrong, what it means and how to fix it, for the user.
//!
//! ```no_run
//! use rsrec::source::usb::{preflight, PlannedCamera, DEFAULT_SYSFS_ROOT};
//!
//! // A camera by its serial number (or librealsense's physical port / ASIC serial number,
//! // see `CameraId`), with the modes it will stream; `PlannedCamera::of_live_realsense`
//! // makes one from an opened camera's `SourceInfo`.
//! let cam = PlannedCamera::new(
//!     "123456789012",
//!     "848x480@30".parse().ok(),
//!     "640x480@30".parse().ok(),
//!     0,
//! );
//! for w in preflight(std::path::Path::new(DEFAULT_SYSFS_ROOT), &[cam]).warnings() {
//!     eprintln!("rsrec: warning: {w}");
//! }
//! ```
//!
//! What is read, under a root that is normally [`DEFAULT_SYSFS_ROOT`] (`/sys`):
//! - `bus/usb/devices/*`: one entry per USB device, a symlink into `devices/...`. A camera
//!   is an entry whose `idVendor` is `8086` and whose `idProduct` is a D400 product id
//!   ([`D400_PRODUCTS`]); of it `serial`, `product`, `speed` (Mbit/s: 480 is USB 2, 5000
//!   USB 3.x Gen 1, 10000, 20000), `busnum`, `devpath` and `version`. Its host controller is
//!   the directory above the root hub `usbN` in the path the entry resolves to:
//!   `devices/pci0000:00/0000:00:14.0/usb2/2-1` is bus 2 of controller `0000:00:14.0`. An
//!   xHCI controller has two root hubs, a USB 2 bus and a USB 3 bus; each bus is checked
//!   against what a bus of its speed carries ([`bus_capacity_mb_s`]).
//! - `module/usbcore/parameters/usbfs_memory_mb`.
//!
//! A tree that cannot hold symlinks (the test fixtures in `fixtures/sysfs/`) may store each
//! symlink of `bus/usb/devices` as a small text file holding the link's target (relative to
//! `bus/usb/devices`, as the kernel's links are), which is how git stores a symlink.
//!
//! Nothing here fails or panics: an attribute that cannot be read is unknown (`None`), every
//! read is capped at [`MAX_ATTR_BYTES`], and a root without `bus/usb/devices` (not Linux, a
//! container without the host's /sys) gives a report that says so
//! ([`SysfsStatus::Unreadable`]).
//!
//! Serial numbers: a D4xx's USB serial number (sysfs `serial`, what `lsusb` and `dmesg`
//! show) is its ASIC serial number (librealsense's `Asic Serial Number`), not the serial
//! number on its label that librealsense and rsrec name it by. [`CameraId`] therefore matches
//! a camera by librealsense's `Physical Port` (the sysfs path of the camera with the kernel
//! backend, `BUS-PORTS-ADDRESS` with the libusb backend) or its ASIC serial number.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::{SourceInfo, StreamMode};
use crate::container::{StreamDescriptor, StreamKind};

/// Where Linux mounts sysfs.
pub const DEFAULT_SYSFS_ROOT: &str = "/sys";
/// The most read from one sysfs attribute (they are a line of text); a larger file is not
/// an attribute and is treated as unreadable.
pub const MAX_ATTR_BYTES: u64 = 4096;
/// The most entries of `bus/usb/devices` looked at (a PC has a few dozen).
const MAX_ENTRIES: usize = 4096;
/// The usbcore parameter, relative to the sysfs root.
pub const USBFS_PARAM: &str = "module/usbcore/parameters/usbfs_memory_mb";
/// Linux's default `usbfs_memory_mb`.
pub const USBFS_DEFAULT_MB: u32 = 16;
/// Below this, with more than one camera, `usbfs_memory_mb` is a warning (rule of thumb:
/// librealsense's libusb backend allocates its USB transfer buffers, several per stream of
/// every camera, from this pool; the default 16 MB is known to fail from the second or
/// third camera on, with `Cannot allocate memory`).
pub const USBFS_MIN_MB: u32 = 256;
/// What librealsense's multi-camera guidance raises `usbfs_memory_mb` to.
pub const USBFS_ADVISED_MB: u32 = 1000;
/// A bus that carries more than this share of its practical capacity is a warning: the
/// estimates count pixel payload only (no UVC headers, metadata or bursts), and scheduling
/// several cameras' transfers needs headroom.
pub const LOAD_WARN_FRACTION: f64 = 0.75;
/// Intel's USB vendor id, as sysfs writes it.
pub const INTEL_VENDOR: &str = "8086";

/// The USB product ids of RealSense D400 cameras, with librealsense's names (without
/// "Intel RealSense "): librealsense's `src/ds/d400/d400-private.h` (`rs400_sku_pid`,
/// `rs400_sku_names`, 2024), USB devices only (the D457 is a MIPI/GMSL camera; recovery and
/// firmware-update ids do not stream). `0ad6` is what a D4xx with older firmware enumerates
/// as on USB 2. D456 cameras have been reported with the D455's id `0b5c`; `0b6b` is, to
/// librealsense, the D585S (a D500 camera), so it is not here.
pub const D400_PRODUCTS: &[(u16, &str)] = &[
    (0x0ad1, "D400"),
    (0x0ad2, "D410"),
    (0x0ad3, "D415"),
    (0x0ad4, "D430"),
    (0x0ad5, "D430 with Tracking Module"),
    (0x0ad6, "USB2"),
    (0x0af2, "IMU"),
    (0x0af6, "D420"),
    (0x0afe, "D420 with Tracking Module"),
    (0x0aff, "D410 with Tracking Module"),
    (0x0b00, "D400 with Tracking Module"),
    (0x0b01, "D430 with Tracking and RGB Modules"),
    (0x0b03, "D460"),
    (0x0b07, "D435"),
    (0x0b0c, "DS5U"),
    (0x0b3a, "D435I"),
    (0x0b49, "F416"),
    (0x0b4b, "D430I"),
    (0x0b52, "F416 with RGB Module"),
    (0x0b5b, "D405"),
    (0x0b5c, "D455"),
    (0x1155, "D421"),
];

/// The product id a D4xx with older firmware enumerates as on USB 2 ("Intel RealSense USB2":
/// depth and infrared only).
pub const USB2_PRODUCT_ID: u16 = 0x0ad6;

/// librealsense's name (without "Intel RealSense ") of a D400 product id, `None` for
/// anything else.
pub fn d400_model(product_id: u16) -> Option<&'static str> {
    D400_PRODUCTS
        .iter()
        .find(|(id, _)| *id == product_id)
        .map(|(_, name)| *name)
}

/// A sysfs attribute that cannot be read (the report treats it as unknown).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SysfsError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than {MAX_ATTR_BYTES} bytes: not a sysfs attribute", path.display())]
    TooLarge { path: PathBuf },
}

/// One sysfs attribute, trimmed; at most [`MAX_ATTR_BYTES`] are read.
pub fn read_attr(path: &Path) -> Result<String, SysfsError> {
    let read_err = |source| SysfsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_ATTR_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_ATTR_BYTES {
        return Err(SysfsError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(String::from_utf8_lossy(&bytes).trim().to_string())
}

/// An attribute of a device directory, `None` when unreadable or empty.
fn attr(dir: &Path, name: &str) -> Option<String> {
    read_attr(&dir.join(name)).ok().filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------
// Bandwidth

/// Practical throughput of one USB bus (one root hub of a host controller) of `speed_mbps`,
/// in MB/s (10^6 bytes) of payload. Rules of thumb, not measurements of this host:
/// - 480 (USB 2 High-Speed): the 480 Mbit/s signalling rate is 60 MB/s, the protocol's bulk
///   ceiling 13 packets of 512 bytes per 125 µs microframe (53 MB/s); host controllers move
///   35-40 MB/s in practice: **35**.
/// - 5000 (USB 3.x Gen 1): 8b/10b coding leaves 500 MB/s, link and protocol overhead about
///   450; hosts sustain 350-400 MB/s, the figure USB 3 camera makers give per host
///   controller: **400**.
/// - 10000 (Gen 2, 128b/132b coding, about 1200 MB/s on the wire): twice Gen 1, **800**;
///   20000 (Gen 2x2): **1600**. (A D4xx itself is a 5 Gbit/s device: its own link stays at
///   5000 on a faster port.)
/// - 12 and 1.5 Mbit/s (USB 1): 1.
pub fn bus_capacity_mb_s(speed_mbps: u32) -> Option<f64> {
    match speed_mbps {
        0 => None,
        s if s >= 20_000 => Some(1600.0),
        s if s >= 10_000 => Some(800.0),
        s if s >= 5_000 => Some(400.0),
        s if s >= 480 => Some(35.0),
        _ => Some(1.0),
    }
}

/// "USB 2 (480 Mbit/s)", "USB 3 (5 Gbit/s)", ... for a speed in Mbit/s.
pub fn usb_label(speed_mbps: Option<u32>) -> String {
    match speed_mbps {
        None => "USB speed unknown".into(),
        Some(s) if s >= 5_000 => format!("USB 3 ({} Gbit/s)", s / 1000),
        Some(480) => "USB 2 (480 Mbit/s)".into(),
        Some(12) => "USB 1 (12 Mbit/s)".into(),
        Some(s) if s < 12 => "USB 1 (1.5 Mbit/s)".into(),
        Some(s) => format!("USB ({s} Mbit/s)"),
    }
}

/// Bytes per second of a depth stream on the wire: Z16, 2 bytes a pixel.
pub fn depth_bytes_per_s(m: &StreamMode) -> f64 {
    f64::from(m.width) * f64::from(m.height) * 2.0 * m.fps
}

/// Bytes per second of a colour stream on the wire: the camera sends YUYV (2 bytes a pixel)
/// whatever format is stored (librealsense converts to RGB on the host).
pub fn color_bytes_per_s(m: &StreamMode) -> f64 {
    f64::from(m.width) * f64::from(m.height) * 2.0 * m.fps
}

/// Bytes per second of one infrared stream on the wire: Y8, 1 byte a pixel.
pub fn infrared_bytes_per_s(m: &StreamMode) -> f64 {
    f64::from(m.width) * f64::from(m.height) * m.fps
}

/// What one camera streams over USB. The IMU is left out: gyro and accel at 400 and 250 Hz
/// are a few kB/s.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamPlan {
    #[serde(serialize_with = "ser_mode")]
    pub depth: Option<StreamMode>,
    #[serde(serialize_with = "ser_mode")]
    pub color: Option<StreamMode>,
    /// One mode per infrared stream (Y8).
    #[serde(serialize_with = "ser_modes")]
    pub infrared: Vec<StreamMode>,
}

fn ser_mode<S: Serializer>(m: &Option<StreamMode>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_some(&m.to_string()),
        None => s.serialize_none(),
    }
}

fn ser_modes<S: Serializer>(m: &[StreamMode], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(m.iter().map(|m| m.to_string()))
}

impl StreamPlan {
    /// Depth and colour, and `infrared_streams` infrared streams at the depth mode (the
    /// stereo module streams depth and infrared at one size and rate).
    pub fn new(
        depth: Option<StreamMode>,
        color: Option<StreamMode>,
        infrared_streams: u32,
    ) -> StreamPlan {
        let infrared = match depth {
            Some(d) => vec![d; infrared_streams as usize],
            None => Vec::new(),
        };
        StreamPlan {
            depth,
            color,
            infrared,
        }
    }

    /// rsrec's default modes: [`super::config::DEFAULT_DEPTH`] depth and
    /// [`super::config::DEFAULT_COLOR`] colour, no infrared.
    pub fn rsrec_defaults() -> StreamPlan {
        let parse = |m: &str| m.parse::<StreamMode>().ok();
        StreamPlan::new(
            parse(super::config::DEFAULT_DEPTH),
            parse(super::config::DEFAULT_COLOR),
            0,
        )
    }

    /// The streams a recorded camera delivers: its depth, colour and infrared descriptors.
    pub fn of_source(info: &SourceInfo) -> StreamPlan {
        let mode = |d: &StreamDescriptor| StreamMode {
            width: d.width,
            height: d.height,
            fps: d.fps,
        };
        StreamPlan {
            depth: info.stream(StreamKind::Depth).map(mode),
            color: info.stream(StreamKind::Color).map(mode),
            infrared: info
                .streams
                .iter()
                .filter(|s| s.kind == StreamKind::Infrared)
                .map(mode)
                .collect(),
        }
    }

    /// Bytes per second on the wire.
    pub fn bytes_per_s(&self) -> f64 {
        self.depth.as_ref().map_or(0.0, depth_bytes_per_s)
            + self.color.as_ref().map_or(0.0, color_bytes_per_s)
            + self.infrared.iter().map(infrared_bytes_per_s).sum::<f64>()
    }

    /// MB/s (10^6 bytes) on the wire.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes_per_s() / 1e6
    }

    /// "848x480@30 depth + 640x480@30 colour + 2 x 848x480@30 infrared".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = &self.depth {
            parts.push(format!("{d} depth"));
        }
        if let Some(c) = &self.color {
            parts.push(format!("{c} colour"));
        }
        if let Some(first) = self.infrared.first() {
            if self.infrared.iter().all(|m| m == first) {
                match self.infrared.len() {
                    1 => parts.push(format!("{first} infrared")),
                    n => parts.push(format!("{n} x {first} infrared")),
                }
            } else {
                for m in &self.infrared {
                    parts.push(format!("{m} infrared"));
                }
            }
        }
        if parts.is_empty() {
            "no streams".into()
        } else {
            parts.join(" + ")
        }
    }
}

// ---------------------------------------------------------------------------------------
// Which camera is which

/// A camera as librealsense knows it, to find it in sysfs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CameraId {
    /// The serial number librealsense reports (the one on the label); names the camera in
    /// the report and the warnings.
    pub serial: String,
    /// What finds it in sysfs, any of: librealsense's `Physical Port` (kernel backend: the
    /// sysfs path of one of its video devices, `.../usb2/2-1/2-1:1.0/video4linux/video0`;
    /// libusb backend: `BUS-PORTS-ADDRESS`, `2-1-5`), its `Asic Serial Number` (= the USB
    /// serial number), or a USB port name (`2-1`).
    pub keys: Vec<String>,
}

impl CameraId {
    /// Whether `cam` is this camera.
    pub fn matches(&self, cam: &UsbCamera) -> bool {
        std::iter::once(&self.serial)
            .chain(&self.keys)
            .map(|k| k.trim())
            .filter(|k| !k.is_empty())
            .any(|k| {
                cam.usb_serial.as_deref() == Some(k)
                    || k == cam.port
                    || port_of_physical_port(k) == Some(cam.port.as_str())
            })
    }
}

/// The USB port name (`2-1.4`: bus 2, port 1, port 4 of the hub there) in a librealsense
/// `Physical Port`: the last component of a sysfs path that names a USB device, or
/// `BUS-PORTS` of the libusb backend's `BUS-PORTS-ADDRESS`.
pub fn port_of_physical_port(physical_port: &str) -> Option<&str> {
    if physical_port.contains('/') {
        return physical_port.split('/').rfind(|c| is_port_name(c));
    }
    if is_port_name(physical_port) {
        return Some(physical_port);
    }
    let (head, address) = physical_port.rsplit_once('-')?;
    (is_digits(address) && is_port_name(head)).then_some(head)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `B-P` or `B-P.P...`: a USB device's name in sysfs.
fn is_port_name(s: &str) -> bool {
    s.split_once('-')
        .is_some_and(|(bus, ports)| is_digits(bus) && ports.split('.').all(is_digits))
}

/// `usbN`: a root hub's name in sysfs.
fn is_root_hub_name(s: &str) -> bool {
    s.strip_prefix("usb").is_some_and(is_digits)
}

/// A camera a recording will stream, with its modes.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedCamera {
    pub id: CameraId,
    pub streams: StreamPlan,
}

impl PlannedCamera {
    /// A camera by its serial number (or any [`CameraId::keys`] value) and modes.
    pub fn new(
        serial: impl Into<String>,
        depth: Option<StreamMode>,
        color: Option<StreamMode>,
        infrared_streams: u32,
    ) -> PlannedCamera {
        PlannedCamera {
            id: CameraId {
                serial: serial.into(),
                keys: Vec::new(),
            },
            streams: StreamPlan::new(depth, color, infrared_streams),
        }
    }

    /// An opened camera, from its source info: the serial number, the `Asic Serial Number`
    /// and `Physical Port` properties librealsense reported, and its streams.
    pub fn of_source(info: &SourceInfo) -> PlannedCamera {
        let keys = ["Asic Serial Number", "Physical Port"]
            .iter()
            .filter_map(|k| {
                info.device
                    .properties
                    .iter()
                    .find(|(name, _)| name == k)
                    .map(|(_, v)| v.clone())
            })
            .filter(|v| !v.is_empty())
            .collect();
        PlannedCamera {
            id: CameraId {
                serial: if info.device.serial.is_empty() {
                    info.name.clone()
                } else {
                    info.device.serial.clone()
                },
                keys,
            },
            streams: StreamPlan::of_source(info),
        }
    }

    /// [`PlannedCamera::of_source`] for a live RealSense camera (its `source` property is
    /// `realsense:SERIAL`); `None` for every other source (synthetic, PNG, bags, playback).
    pub fn of_live_realsense(info: &SourceInfo) -> Option<PlannedCamera> {
        info.device
            .properties
            .iter()
            .any(|(k, v)| k == "source" && v.starts_with("realsense:"))
            .then(|| PlannedCamera::of_source(info))
    }
}

// ---------------------------------------------------------------------------------------
// The report

/// Whether sysfs could be read and had cameras.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SysfsStatus {
    /// RealSense cameras found.
    Ok,
    /// `bus/usb/devices` was read and has no RealSense D4xx camera.
    NoRealsenseCamera,
    /// `bus/usb/devices` cannot be read: not Linux, or a container without the host's /sys.
    Unreadable,
}

/// One RealSense camera on USB.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsbCamera {
    /// Its sysfs name, the bus and port path: `2-1.4` is bus 2, port 1, port 4 of a hub.
    pub port: String,
    /// `idProduct`, 4 hex digits.
    pub product_id: String,
    /// librealsense's name for the product id (`D435I`).
    pub model: String,
    /// The USB product string.
    pub product: Option<String>,
    /// The USB serial number: librealsense's `Asic Serial Number`, not the label's.
    pub usb_serial: Option<String>,
    /// The serial number librealsense reports, when the camera was matched to it.
    pub serial: Option<String>,
    /// Link speed in Mbit/s.
    pub speed_mbps: Option<u32>,
    /// The link as text: `USB 3 (5 Gbit/s)`.
    pub usb: String,
    /// The USB version the device declares (`3.20`; not the link speed).
    pub usb_version: Option<String>,
    pub busnum: Option<u32>,
    /// Port path on the bus (`1.4`).
    pub devpath: Option<String>,
    /// Hubs between the camera and the computer's port (0: plugged straight in).
    pub hubs: Option<usize>,
    /// Its host controller (a PCI address such as `0000:00:14.0`, or a platform device).
    pub controller: Option<String>,
    /// The root hub of its bus (`usb2`).
    pub root_hub: Option<String>,
    /// Where the device is, relative to the sysfs root (`devices/pci0000:00/.../usb2/2-1`).
    pub sysfs_path: Option<String>,
    /// What it will stream; `None`: not streamed (a connected camera a recording leaves out).
    pub streams: Option<StreamPlan>,
    /// The estimate of `streams` on the wire, MB/s.
    pub mb_per_s: f64,
}

impl UsbCamera {
    /// How the warnings name the camera.
    pub fn label(&self) -> String {
        let model = if self.product_id == format!("{USB2_PRODUCT_ID:04x}") {
            "D4xx (enumerated as USB2)"
        } else {
            &self.model
        };
        match (&self.serial, &self.usb_serial) {
            (Some(s), _) => format!("camera {s} ({model}, USB port {})", self.port),
            (None, Some(u)) => format!("the {model} at USB port {} (USB serial {u})", self.port),
            (None, None) => format!("the {model} at USB port {}", self.port),
        }
    }
}

/// One bus (root hub) of a host controller.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsbBus {
    pub busnum: u32,
    pub root_hub: String,
    pub speed_mbps: Option<u32>,
    pub usb: String,
    /// What such a bus carries in practice ([`bus_capacity_mb_s`]).
    pub capacity_mb_s: Option<f64>,
    /// Ports of the cameras that stream on it.
    pub cameras: Vec<String>,
    /// Their estimated sum, MB/s.
    pub load_mb_s: f64,
}

/// One USB host controller and its buses.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsbController {
    /// Its sysfs name (a PCI address, a platform device), or `unknown (usbN)`.
    pub id: String,
    /// Relative to the sysfs root.
    pub sysfs_path: Option<String>,
    /// Cameras that stream through it.
    pub cameras: usize,
    /// Their estimated sum, MB/s.
    pub load_mb_s: f64,
    pub buses: Vec<UsbBus>,
}

/// Everything the preflight found; [`UsbReport::warnings`] turns it into advice.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsbReport {
    /// The sysfs root read.
    pub sysfs_root: String,
    pub status: SysfsStatus,
    /// One line: how many cameras on how many controllers, or why none.
    pub summary: String,
    /// Sorted by bus and port.
    pub cameras: Vec<UsbCamera>,
    /// Every host controller, with or without cameras, in bus order.
    pub controllers: Vec<UsbController>,
    /// `None`: unknown. 0 means no limit.
    pub usbfs_memory_mb: Option<u32>,
    /// Serial numbers of cameras to be streamed that are not in sysfs (not checked; their
    /// MB/s are in no controller's sum).
    pub not_in_sysfs: Vec<String>,
    /// What could not be checked.
    pub notes: Vec<String>,
}

/// Every RealSense camera in the sysfs tree at `sysfs_root`, each streaming `streams`;
/// `known` (librealsense's cameras) names those it matches. A known camera not in sysfs is
/// in [`UsbReport::not_in_sysfs`] and counts for `usbfs_memory_mb`.
pub fn survey(sysfs_root: &Path, streams: &StreamPlan, known: &[CameraId]) -> UsbReport {
    let scan = scan(sysfs_root);
    assemble(sysfs_root, scan, Assign::Every(streams, known))
}

/// The cameras a recording is about to stream, each at its own modes, against the sysfs tree
/// at `sysfs_root` (normally [`DEFAULT_SYSFS_ROOT`]). Connected cameras that are not in
/// `cameras` are listed without streams and count for nothing.
pub fn preflight(sysfs_root: &Path, cameras: &[PlannedCamera]) -> UsbReport {
    let scan = scan(sysfs_root);
    assemble(sysfs_root, scan, Assign::Only(cameras))
}

// ---------------------------------------------------------------------------------------
// Reading sysfs

#[derive(Clone, Debug)]
struct RootHub {
    busnum: u32,
    name: String,
    speed: Option<u32>,
    controller: Option<String>,
    controller_path: Option<String>,
}

struct Scan {
    readable: bool,
    cameras: Vec<UsbCamera>,
    hubs: BTreeMap<u32, RootHub>,
    usbfs: Option<u32>,
}

/// Where an entry of `bus/usb/devices` leads: a symlink or directory canonicalized, or (in a
/// tree without symlinks) a small regular file holding a symlink's target, relative to the
/// entry's directory. `None` when it leads nowhere.
fn resolve(entry: &Path) -> Option<PathBuf> {
    let md = fs::symlink_metadata(entry).ok()?;
    let target = if md.file_type().is_symlink() || md.is_dir() {
        entry.to_path_buf()
    } else if md.is_file() {
        let link = read_attr(entry).ok()?;
        if link.is_empty() || link.contains('\n') {
            return None;
        }
        entry.parent()?.join(link)
    } else {
        return None;
    };
    fs::canonicalize(target).ok()
}

fn parse_speed(s: &str) -> Option<u32> {
    let v: f64 = s.parse().ok()?;
    (v.is_finite() && v > 0.0 && v < 1e6).then_some(v as u32)
}

/// `p` relative to the sysfs root, for display.
fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

fn file_name(p: &Path) -> Option<&str> {
    p.file_name().and_then(|n| n.to_str())
}

/// The root hub `usbN` directory at or above `p`.
fn root_hub_dir(p: &Path) -> Option<&Path> {
    p.ancestors()
        .find(|a| file_name(a).is_some_and(is_root_hub_name))
}

/// The root hub in directory `dir` (`.../CONTROLLER/usbN`).
fn root_hub(root: &Path, busnum: u32, dir: &Path) -> RootHub {
    let ctrl = dir
        .parent()
        .filter(|c| file_name(c).is_some_and(|n| n != "devices") && c.starts_with(root));
    RootHub {
        busnum,
        name: file_name(dir).unwrap_or_default().to_string(),
        speed: attr(dir, "speed").and_then(|s| parse_speed(&s)),
        controller: ctrl.and_then(file_name).map(str::to_string),
        controller_path: ctrl.map(|c| rel(root, c)),
    }
}

/// Numbers of `2-1.4` for sorting: [2, 1, 4].
fn port_key(port: &str) -> Vec<u32> {
    port.split(['-', '.'])
        .map(|n| n.parse().unwrap_or(u32::MAX))
        .collect()
}

fn scan(sysfs_root: &Path) -> Scan {
    let usbfs = read_attr(&sysfs_root.join(USBFS_PARAM))
        .ok()
        .and_then(|v| v.parse().ok());
    let dir = sysfs_root.join("bus/usb/devices");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Scan {
            readable: false,
            cameras: Vec::new(),
            hubs: BTreeMap::new(),
            usbfs,
        };
    };
    let root = fs::canonicalize(sysfs_root).unwrap_or_else(|_| sysfs_root.to_path_buf());
    let mut names: Vec<String> = entries
        .take(MAX_ENTRIES)
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        // `2-1:1.0` and the like are interfaces of a device, not devices.
        .filter(|n| !n.contains(':'))
        .collect();
    names.sort();

    let mut hubs = BTreeMap::new();
    let mut cameras = Vec::new();
    for name in names {
        let Some(path) = resolve(&dir.join(&name)) else {
            continue;
        };
        if let Some(n) = name.strip_prefix("usb").filter(|n| is_digits(n)) {
            if let Ok(busnum) = n.parse::<u32>() {
                hubs.insert(busnum, root_hub(&root, busnum, &path));
            }
            continue;
        }
        let is_intel =
            attr(&path, "idVendor").is_some_and(|v| v.eq_ignore_ascii_case(INTEL_VENDOR));
        if !is_intel {
            continue;
        }
        let Some(product_id) =
            attr(&path, "idProduct").and_then(|p| u16::from_str_radix(&p, 16).ok())
        else {
            continue;
        };
        let Some(model) = d400_model(product_id) else {
            continue;
        };
        let busnum = attr(&path, "busnum")
            .and_then(|b| b.parse().ok())
            .or_else(|| name.split('-').next()?.parse().ok());
        let hub = root_hub_dir(&path);
        if let (Some(b), Some(h)) = (busnum, hub) {
            hubs.entry(b).or_insert_with(|| root_hub(&root, b, h));
        }
        let devpath = attr(&path, "devpath");
        let speed_mbps = attr(&path, "speed").and_then(|s| parse_speed(&s));
        cameras.push(UsbCamera {
            port: name.clone(),
            product_id: format!("{product_id:04x}"),
            model: model.to_string(),
            product: attr(&path, "product"),
            usb_serial: attr(&path, "serial"),
            serial: None,
            speed_mbps,
            usb: usb_label(speed_mbps),
            usb_version: attr(&path, "version"),
            busnum,
            hubs: devpath.as_ref().map(|d| d.matches('.').count()),
            devpath,
            controller: None,
            root_hub: hub.and_then(file_name).map(str::to_string),
            sysfs_path: Some(rel(&root, &path)),
            streams: None,
            mb_per_s: 0.0,
        });
    }
    for c in &mut cameras {
        if let Some(h) = c.busnum.and_then(|b| hubs.get(&b)) {
            c.controller.clone_from(&h.controller);
            if c.root_hub.is_none() {
                c.root_hub = Some(h.name.clone());
            }
        }
    }
    cameras.sort_by_key(|c| port_key(&c.port));
    Scan {
        readable: true,
        cameras,
        hubs,
        usbfs,
    }
}

// ---------------------------------------------------------------------------------------
// Putting it together

enum Assign<'a> {
    Every(&'a StreamPlan, &'a [CameraId]),
    Only(&'a [PlannedCamera]),
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn assemble(sysfs_root: &Path, scan: Scan, assign: Assign<'_>) -> UsbReport {
    let mut cameras = scan.cameras;
    let mut not_in_sysfs = Vec::new();
    let mut notes = Vec::new();
    match assign {
        Assign::Every(streams, known) => {
            for c in &mut cameras {
                c.streams = Some(streams.clone());
            }
            for id in known {
                match cameras
                    .iter_mut()
                    .find(|c| c.serial.is_none() && id.matches(c))
                {
                    Some(c) => c.serial = Some(id.serial.clone()),
                    None => not_in_sysfs.push(id.serial.clone()),
                }
            }
        }
        Assign::Only(planned) => {
            for p in planned {
                match cameras
                    .iter_mut()
                    .find(|c| c.serial.is_none() && p.id.matches(c))
                {
                    Some(c) => {
                        c.serial = Some(p.id.serial.clone());
                        c.streams = Some(p.streams.clone());
                    }
                    None => not_in_sysfs.push(p.id.serial.clone()),
                }
            }
        }
    }
    let raw: Vec<f64> = cameras
        .iter()
        .map(|c| c.streams.as_ref().map_or(0.0, StreamPlan::mb_per_s))
        .collect();
    for (c, mb) in cameras.iter_mut().zip(&raw) {
        c.mb_per_s = round1(*mb);
    }

    // Buses: every root hub, and any bus a camera is on that has none.
    let mut hubs = scan.hubs;
    for c in &cameras {
        if let Some(b) = c.busnum {
            hubs.entry(b).or_insert_with(|| RootHub {
                busnum: b,
                name: format!("usb{b}"),
                speed: None,
                controller: None,
                controller_path: None,
            });
        }
    }
    let mut controllers: Vec<UsbController> = Vec::new();
    // Unrounded loads of `controllers`.
    let mut controller_raw: Vec<f64> = Vec::new();
    for hub in hubs.values() {
        let on_bus: Vec<usize> = (0..cameras.len())
            .filter(|&i| cameras[i].busnum == Some(hub.busnum) && cameras[i].streams.is_some())
            .collect();
        let load: f64 = on_bus.iter().map(|&i| raw[i]).sum();
        let bus = UsbBus {
            busnum: hub.busnum,
            root_hub: hub.name.clone(),
            speed_mbps: hub.speed,
            usb: usb_label(hub.speed),
            capacity_mb_s: hub.speed.and_then(bus_capacity_mb_s),
            cameras: on_bus.iter().map(|&i| cameras[i].port.clone()).collect(),
            load_mb_s: round1(load),
        };
        let id = hub
            .controller
            .clone()
            .unwrap_or_else(|| format!("unknown ({})", hub.name));
        match controllers.iter().position(|c| c.id == id) {
            Some(i) => {
                let c = &mut controllers[i];
                controller_raw[i] += load;
                c.cameras += on_bus.len();
                c.load_mb_s = round1(controller_raw[i]);
                c.buses.push(bus);
            }
            None => {
                controller_raw.push(load);
                controllers.push(UsbController {
                    id,
                    sysfs_path: hub.controller_path.clone(),
                    cameras: on_bus.len(),
                    load_mb_s: round1(load),
                    buses: vec![bus],
                });
            }
        }
    }

    let root_text = sysfs_root.display().to_string();
    let devices_dir = sysfs_root.join("bus/usb/devices");
    let (status, summary) = if !scan.readable {
        (
            SysfsStatus::Unreadable,
            format!(
                "{} cannot be read (not Linux, or a container without the host's /sys): USB \
                 links, controllers and usbfs_memory_mb not checked",
                devices_dir.display()
            ),
        )
    } else if cameras.is_empty() {
        (
            SysfsStatus::NoRealsenseCamera,
            format!("no RealSense D4xx camera in {}", devices_dir.display()),
        )
    } else {
        let with_cameras = controllers
            .iter()
            .filter(|c| {
                c.buses
                    .iter()
                    .any(|b| cameras.iter().any(|cam| cam.busnum == Some(b.busnum)))
            })
            .count();
        (
            SysfsStatus::Ok,
            format!(
                "{} on {}",
                plural(cameras.len(), "RealSense camera", "RealSense cameras"),
                plural(with_cameras, "USB controller", "USB controllers")
            ),
        )
    };

    for c in &cameras {
        if c.speed_mbps.is_none() {
            notes.push(format!(
                "{}: USB speed unknown (no readable `speed`)",
                c.label()
            ));
        }
        if c.controller.is_none() {
            notes.push(format!(
                "{}: host controller unknown (its sysfs entry does not lead through a root \
                 hub usbN inside a controller)",
                c.label()
            ));
        }
    }
    for s in &not_in_sysfs {
        notes.push(format!(
            "camera {s}: not found in sysfs, so its USB link and controller are not checked \
             and its MB/s are in no controller's sum"
        ));
    }
    let streaming = cameras.iter().filter(|c| c.streams.is_some()).count() + not_in_sysfs.len();
    if scan.readable && streaming > 1 && scan.usbfs.is_none() {
        notes.push(format!(
            "usbfs_memory_mb unknown ({} cannot be read)",
            sysfs_root.join(USBFS_PARAM).display()
        ));
    }
    UsbReport {
        sysfs_root: root_text,
        status,
        summary,
        cameras,
        controllers,
        usbfs_memory_mb: scan.usbfs,
        not_in_sysfs,
        notes,
    }
}

// ---------------------------------------------------------------------------------------
// Warnings

/// The commands that raise `usbfs_memory_mb`, now and for every boot.
pub fn usbfs_fix() -> String {
    format!(
        "raise it now: `echo {USBFS_ADVISED_MB} | sudo tee /sys/module/usbcore/parameters/usbfs_memory_mb`; \
         for every boot: add `usbcore.usbfs_memory_mb={USBFS_ADVISED_MB}` to the kernel command \
         line (GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, then `sudo update-grub` and \
         reboot)"
    )
}

impl UsbReport {
    /// Cameras that will stream, with those not found in sysfs.
    pub fn streaming_cameras(&self) -> usize {
        self.cameras.iter().filter(|c| c.streams.is_some()).count() + self.not_in_sysfs.len()
    }

    /// What the user should be told, one sentence each with what it means and the fix:
    /// cameras on USB 2, buses carrying more than [`LOAD_WARN_FRACTION`] of what they can,
    /// `usbfs_memory_mb` below [`USBFS_MIN_MB`] with more than one camera. Empty when all is
    /// well, and when sysfs has nothing to say.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.cameras {
            let Some(streams) = &c.streams else { continue };
            let Some(speed) = c.speed_mbps else { continue };
            let need = streams.mb_per_s();
            if speed < 5000 {
                out.push(usb2_warning(c, streams));
            } else if let Some(cap) = bus_capacity_mb_s(speed.min(5000)) {
                // A D4xx links at 5 Gbit/s at most, whatever the port.
                if need > cap {
                    out.push(format!(
                        "{} needs ~{need:.1} MB/s at {}, more than its {} link carries \
                         (~{cap:.0} MB/s): stream smaller modes or lower frame rates",
                        c.label(),
                        streams.describe(),
                        c.usb
                    ));
                }
            }
        }
        let free: Vec<String> = self
            .controllers
            .iter()
            .filter(|c| c.cameras == 0)
            .filter_map(|c| {
                let fastest = c.buses.iter().filter_map(|b| b.speed_mbps).max()?;
                (fastest >= 5000).then(|| format!("{} ({} Gbit/s)", c.id, fastest / 1000))
            })
            .collect();
        for ctrl in &self.controllers {
            for bus in &ctrl.buses {
                let (Some(cap), Some(speed)) = (bus.capacity_mb_s, bus.speed_mbps) else {
                    continue;
                };
                let n = bus.cameras.len();
                // One camera on a USB 2 bus: its own warning says it all.
                if n == 0 || (speed < 5000 && n == 1) {
                    continue;
                }
                let ratio = bus.load_mb_s / cap;
                if ratio <= LOAD_WARN_FRACTION {
                    continue;
                }
                let verdict = if ratio > 1.0 {
                    "more than it can carry: frames will be dropped".to_string()
                } else {
                    format!(
                        "over {:.0} % of what such a bus carries in practice: frames may be \
                         dropped under load",
                        LOAD_WARN_FRACTION * 100.0
                    )
                };
                let free_text = if free.is_empty() {
                    String::new()
                } else {
                    format!("; controllers without a camera: {}", free.join(", "))
                };
                out.push(format!(
                    "controller {} carries {} and {:.1} MB/s of its ~{cap:.0} MB/s ({:.0} %) on \
                     bus {}, {}: {verdict}. Fix: spread the cameras over several controllers \
                     (one camera per root port or controller where possible; a PCIe USB 3 card \
                     adds controllers){free_text}, or stream smaller modes or lower frame rates",
                    ctrl.id,
                    plural(n, "camera", "cameras"),
                    bus.load_mb_s,
                    ratio * 100.0,
                    bus.busnum,
                    bus.usb,
                ));
            }
        }
        let n = self.streaming_cameras();
        if let Some(m) = self.usbfs_memory_mb {
            if n > 1 && m != 0 && m < USBFS_MIN_MB {
                out.push(format!(
                    "usbfs_memory_mb is {m}{} with {n} RealSense cameras: librealsense's USB \
                     transfer buffers, several per stream of every camera, come out of this \
                     limit, and with too little, streams fail to start (`Cannot allocate \
                     memory`) or drop frames (rule of thumb: at least {USBFS_MIN_MB} MB for \
                     several cameras; librealsense's multi-camera advice is {USBFS_ADVISED_MB}). \
                     Fix: {}",
                    if m == USBFS_DEFAULT_MB {
                        " (the Linux default)"
                    } else {
                        ""
                    },
                    usbfs_fix()
                ));
            }
        }
        out
    }
}

fn usb2_warning(c: &UsbCamera, streams: &StreamPlan) -> String {
    let need = streams.mb_per_s();
    let cap = bus_capacity_mb_s(480).unwrap_or(35.0);
    let need_text = if need > cap {
        format!(
            " ({} need ~{need:.1} MB/s; USB 2 carries ~{cap:.0})",
            streams.describe()
        )
    } else {
        String::new()
    };
    let this = if c.product_id == format!("{USB2_PRODUCT_ID:04x}") {
        " - this one does"
    } else {
        ""
    };
    format!(
        "{} is connected at {}: a D4xx camera on USB 2 streams only reduced modes and frame \
         rates{need_text}, and may have no IMU or colour camera (with older firmware it \
         enumerates as 'Intel RealSense USB2', product 0ad6, with neither{this}). Fix: a USB 3 \
         port (blue, or marked SS) and a USB 3 cable, plugged in firmly in one go (a USB 2 or \
         charge-only cable, a USB 2 hub or extension, or a slowly inserted plug make it \
         enumerate as USB 2); `lsusb -t` then shows it at 5000M",
        c.label(),
        c.usb
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(tree: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/sysfs")
            .join(tree)
    }

    fn mode(s: &str) -> StreamMode {
        s.parse().unwrap()
    }

    fn defaults() -> StreamPlan {
        StreamPlan::rsrec_defaults()
    }

    /// The one warning that contains `needle`.
    fn one<'a>(warnings: &'a [String], needle: &str) -> &'a str {
        let hits: Vec<&String> = warnings.iter().filter(|w| w.contains(needle)).collect();
        assert_eq!(
            hits.len(),
            1,
            "one warning with {needle:?} in {warnings:#?}"
        );
        hits[0]
    }

    #[test]
    fn estimates_follow_the_wire_formats() {
        let d = defaults();
        assert_eq!(d.depth, Some(mode("848x480@30")));
        assert_eq!(d.color, Some(mode("640x480@30")));
        // Z16: 848 * 480 * 2 * 30; YUYV: 640 * 480 * 2 * 30.
        assert_eq!(depth_bytes_per_s(&mode("848x480@30")), 24_422_400.0);
        assert_eq!(color_bytes_per_s(&mode("640x480@30")), 18_432_000.0);
        // Y8: one byte a pixel, per infrared stream.
        assert_eq!(infrared_bytes_per_s(&mode("848x480@30")), 12_211_200.0);
        assert_eq!(d.bytes_per_s(), 42_854_400.0);
        // Eight cameras at rsrec's defaults: ~343 MB/s.
        assert!((8.0 * d.mb_per_s() - 342.8352).abs() < 1e-9);
        let ir = StreamPlan::new(Some(mode("848x480@30")), None, 2);
        assert_eq!(ir.bytes_per_s(), 24_422_400.0 * 2.0);
        assert_eq!(ir.describe(), "848x480@30 depth + 2 x 848x480@30 infrared");
        assert_eq!(d.describe(), "848x480@30 depth + 640x480@30 colour");
        assert_eq!(bus_capacity_mb_s(480), Some(35.0));
        assert_eq!(bus_capacity_mb_s(5000), Some(400.0));
        assert_eq!(bus_capacity_mb_s(10000), Some(800.0));
        assert_eq!(bus_capacity_mb_s(20000), Some(1600.0));
        assert_eq!(bus_capacity_mb_s(0), None);
    }

    /// The bandwidth table of docs/realsense.md ("Running 8 cameras"), computed here: run
    /// `cargo test --lib usb::tests::bandwidth_table -- --nocapture` to print it.
    #[test]
    fn bandwidth_table_for_the_docs() {
        let rows: &[(&str, Option<&str>, u32)] = &[
            ("848x480@30", Some("640x480@30"), 0),
            ("848x480@30", None, 0),
            ("640x480@30", Some("640x480@30"), 0),
            ("848x480@15", Some("640x480@15"), 0),
            ("848x480@60", Some("640x480@60"), 0),
            ("848x480@90", None, 0),
            ("1280x720@30", Some("1280x720@30"), 0),
            ("1280x720@30", Some("640x480@30"), 0),
            ("1280x720@15", Some("1280x720@15"), 0),
            ("848x480@30", Some("1920x1080@30"), 0),
            ("848x480@30", Some("640x480@30"), 2),
        ];
        let usb3 = bus_capacity_mb_s(5000).unwrap() * LOAD_WARN_FRACTION;
        let mut table = vec![
            "| streams | MB/s per camera | 8 cameras | cameras per 5 Gbit/s bus (under 75 % of ~400 MB/s) | fits USB 2 (~35 MB/s) |".to_string(),
            "|---|---:|---:|---:|---|".to_string(),
        ];
        for (d, c, ir) in rows {
            let p = StreamPlan::new(Some(mode(d)), c.map(mode), *ir);
            let mb = p.mb_per_s();
            table.push(format!(
                "| {} | {:.1} | {:.1} | {} | {} |",
                p.describe(),
                mb,
                8.0 * mb,
                (usb3 / mb).floor(),
                if mb <= 35.0 { "yes" } else { "no" }
            ));
        }
        let table = table.join("\n");
        println!("{table}");
        let expected = "\
| streams | MB/s per camera | 8 cameras | cameras per 5 Gbit/s bus (under 75 % of ~400 MB/s) | fits USB 2 (~35 MB/s) |
|---|---:|---:|---:|---|
| 848x480@30 depth + 640x480@30 colour | 42.9 | 342.8 | 7 | no |
| 848x480@30 depth | 24.4 | 195.4 | 12 | yes |
| 640x480@30 depth + 640x480@30 colour | 36.9 | 294.9 | 8 | no |
| 848x480@15 depth + 640x480@15 colour | 21.4 | 171.4 | 14 | yes |
| 848x480@60 depth + 640x480@60 colour | 85.7 | 685.7 | 3 | no |
| 848x480@90 depth | 73.3 | 586.1 | 4 | no |
| 1280x720@30 depth + 1280x720@30 colour | 110.6 | 884.7 | 2 | no |
| 1280x720@30 depth + 640x480@30 colour | 73.7 | 589.8 | 4 | no |
| 1280x720@15 depth + 1280x720@15 colour | 55.3 | 442.4 | 5 | no |
| 848x480@30 depth + 1920x1080@30 colour | 148.8 | 1190.7 | 2 | no |
| 848x480@30 depth + 640x480@30 colour + 2 x 848x480@30 infrared | 67.3 | 538.2 | 4 | no |";
        assert_eq!(table, expected);
    }

    #[test]
    fn physical_ports_name_the_usb_device() {
        let v4l = "/sys/devices/pci0000:00/0000:00:14.0/usb4/4-5/4-5.4/4-5.4.2/4-5.4.2:1.0/video4linux/video0";
        assert_eq!(port_of_physical_port(v4l), Some("4-5.4.2"));
        assert_eq!(port_of_physical_port("2-1-5"), Some("2-1"));
        assert_eq!(port_of_physical_port("4-5.4.4.3-33"), Some("4-5.4.4.3"));
        assert_eq!(port_of_physical_port("2-1.3"), Some("2-1.3"));
        assert_eq!(port_of_physical_port(""), None);
        assert_eq!(port_of_physical_port("video0"), None);
        assert!(is_root_hub_name("usb12"));
        assert!(!is_root_hub_name("usb"));
        assert!(!is_root_hub_name("usb1-1"));
    }

    #[test]
    fn mixed_rig_warns_about_usb2_cameras_and_the_default_usbfs_limit() {
        let r = survey(&fixture("rig-mixed"), &defaults(), &[]);
        assert_eq!(r.status, SysfsStatus::Ok);
        assert_eq!(r.summary, "5 RealSense cameras on 2 USB controllers");
        // The webcam, the hubs and the T265 (8086:0b37, not a D4xx) are not cameras here.
        let ports: Vec<&str> = r.cameras.iter().map(|c| c.port.as_str()).collect();
        assert_eq!(ports, ["1-3", "2-1", "2-2.1", "3-2", "4-1"]);
        let c = &r.cameras[0];
        assert_eq!(c.model, "D435I");
        assert_eq!(c.product_id, "0b3a");
        assert_eq!(c.usb_serial.as_deref(), Some("926623051347"));
        assert_eq!(c.speed_mbps, Some(480));
        assert_eq!(c.usb, "USB 2 (480 Mbit/s)");
        assert_eq!(c.controller.as_deref(), Some("xhci-hcd.0"));
        assert_eq!(c.root_hub.as_deref(), Some("usb1"));
        assert_eq!(c.hubs, Some(0));
        assert_eq!(
            c.sysfs_path.as_deref(),
            Some("devices/platform/xhci-hcd.0/usb1/1-3")
        );
        assert_eq!(c.mb_per_s, 42.9);
        let behind_hub = &r.cameras[2];
        assert_eq!(behind_hub.hubs, Some(1));
        assert_eq!(behind_hub.usb, "USB 3 (5 Gbit/s)");
        // An unreadable (here: missing) attribute is unknown.
        assert_eq!(r.cameras[4].usb_serial, None);
        assert_eq!(r.cameras[4].model, "D455");
        assert_eq!(r.cameras[4].controller.as_deref(), Some("3610000.xhci"));
        assert_eq!(r.cameras[3].model, "USB2");

        let ids: Vec<&str> = r.controllers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["xhci-hcd.0", "3610000.xhci", "xhci-hcd.1"]);
        let c0 = &r.controllers[0];
        assert_eq!(c0.cameras, 3);
        assert_eq!(
            c0.sysfs_path.as_deref(),
            Some("devices/platform/xhci-hcd.0")
        );
        assert_eq!(c0.buses[1].cameras, ["2-1", "2-2.1"]);
        assert_eq!(c0.buses[1].load_mb_s, 85.7);
        assert_eq!(c0.buses[1].capacity_mb_s, Some(400.0));
        assert_eq!(r.controllers[1].buses[1].usb, "USB 3 (10 Gbit/s)");
        assert_eq!(r.controllers[1].buses[1].capacity_mb_s, Some(800.0));
        assert_eq!(r.controllers[2].cameras, 0);
        assert_eq!(r.usbfs_memory_mb, Some(16));
        assert!(r.notes.is_empty(), "{:?}", r.notes);

        let w = r.warnings();
        assert_eq!(w.len(), 3, "{w:#?}");
        let usb2 = one(&w, "USB port 1-3");
        assert!(
            usb2.starts_with(
                "the D435I at USB port 1-3 (USB serial 926623051347) is connected at USB 2 \
             (480 Mbit/s): a D4xx camera on USB 2 streams only reduced modes and frame rates \
             (848x480@30 depth + 640x480@30 colour need ~42.9 MB/s; USB 2 carries ~35)"
            ),
            "{usb2}"
        );
        assert!(usb2.contains("Fix: a USB 3 port"), "{usb2}");
        assert!(usb2.contains("USB 3 cable"), "{usb2}");
        assert!(!usb2.contains("this one does"), "{usb2}");
        let old_fw = one(&w, "USB port 3-2");
        assert!(
            old_fw.starts_with("the D4xx (enumerated as USB2) at USB port 3-2"),
            "{old_fw}"
        );
        assert!(old_fw.contains("with neither - this one does"), "{old_fw}");
        let usbfs = one(&w, "usbfs_memory_mb");
        assert!(
            usbfs.starts_with("usbfs_memory_mb is 16 (the Linux default) with 5 RealSense cameras"),
            "{usbfs}"
        );
        assert!(
            usbfs.contains("`echo 1000 | sudo tee /sys/module/usbcore/parameters/usbfs_memory_mb`"),
            "{usbfs}"
        );
        assert!(usbfs.contains("`usbcore.usbfs_memory_mb=1000`"), "{usbfs}");
        // No controller is overloaded at the defaults: bus 2 carries 86 of ~400 MB/s.
        assert!(!w.iter().any(|w| w.starts_with("controller")), "{w:#?}");
    }

    #[test]
    fn eight_cameras_on_one_controller_are_too_many_at_the_defaults() {
        let r = survey(&fixture("eight-on-one-controller"), &defaults(), &[]);
        assert_eq!(r.summary, "8 RealSense cameras on 1 USB controller");
        assert_eq!(r.usbfs_memory_mb, Some(1000));
        let c = &r.controllers[0];
        assert_eq!(
            (c.id.as_str(), c.cameras, c.load_mb_s),
            ("xhci-hcd.0", 8, 342.8)
        );
        assert!(r.cameras.iter().all(|c| c.hubs == Some(1)));
        let w = r.warnings();
        assert_eq!(w.len(), 1, "{w:#?}");
        assert_eq!(
            w[0],
            "controller xhci-hcd.0 carries 8 cameras and 342.8 MB/s of its ~400 MB/s (86 %) on \
             bus 2, USB 3 (5 Gbit/s): over 75 % of what such a bus carries in practice: frames \
             may be dropped under load. Fix: spread the cameras over several controllers (one \
             camera per root port or controller where possible; a PCIe USB 3 card adds \
             controllers); controllers without a camera: xhci-hcd.1 (5 Gbit/s), or stream \
             smaller modes or lower frame rates"
        );
        // At 1280x720@30 depth they are more than the bus can carry.
        let big = StreamPlan::new(Some(mode("1280x720@30")), Some(mode("640x480@30")), 0);
        let w = survey(&fixture("eight-on-one-controller"), &big, &[]).warnings();
        let over = one(&w, "controller xhci-hcd.0");
        assert!(over.contains("589.8 MB/s of its ~400 MB/s"), "{over}");
        assert!(over.contains("(147 %) on bus 2, USB 3 (5 Gbit/s): more than it can carry: frames will be dropped"), "{over}");
        // Depth only at 848x480@30: 195 MB/s, fine.
        let small = StreamPlan::new(Some(mode("848x480@30")), None, 0);
        assert!(survey(&fixture("eight-on-one-controller"), &small, &[])
            .warnings()
            .is_empty());
    }

    #[test]
    fn one_camera_on_usb3_is_fine_even_with_the_default_usbfs_limit() {
        let r = survey(&fixture("one-camera"), &defaults(), &[]);
        assert_eq!(r.status, SysfsStatus::Ok);
        assert_eq!(r.cameras.len(), 1);
        assert_eq!(r.usbfs_memory_mb, Some(16));
        assert!(r.warnings().is_empty(), "{:?}", r.warnings());
    }

    #[test]
    fn no_realsense_camera_and_no_sysfs_are_not_errors() {
        let r = survey(&fixture("no-realsense"), &defaults(), &[]);
        assert_eq!(r.status, SysfsStatus::NoRealsenseCamera);
        assert!(
            r.summary.starts_with("no RealSense D4xx camera in "),
            "{}",
            r.summary
        );
        assert!(r.cameras.is_empty());
        assert_eq!(r.controllers.len(), 1);
        assert!(r.warnings().is_empty());

        let missing = fixture("does-not-exist");
        for r in [
            survey(&missing, &defaults(), &[]),
            preflight(&missing, &[PlannedCamera::new("123", None, None, 0)]),
        ] {
            assert_eq!(r.status, SysfsStatus::Unreadable);
            assert!(
                r.summary.contains("cannot be read (not Linux"),
                "{}",
                r.summary
            );
            assert!(r.controllers.is_empty());
            assert_eq!(r.usbfs_memory_mb, None);
            assert!(r.warnings().is_empty());
        }
    }

    #[test]
    fn preflight_checks_only_the_cameras_to_be_recorded() {
        let root = fixture("rig-mixed");
        let hd = Some(mode("1280x720@30"));
        let planned = [
            // By ASIC (USB) serial number, as librealsense reports it.
            PlannedCamera {
                id: CameraId {
                    serial: "111111111111".into(),
                    keys: vec!["047423051028".into()],
                },
                streams: StreamPlan::new(hd, hd, 0),
            },
            // By librealsense's physical port (kernel backend: a sysfs path).
            PlannedCamera {
                id: CameraId {
                    serial: "222222222222".into(),
                    keys: vec![
                        "/sys/devices/platform/xhci-hcd.0/usb2/2-1/2-1:1.0/video4linux/video2"
                            .into(),
                    ],
                },
                streams: StreamPlan::new(Some(mode("848x480@30")), None, 0),
            },
            // Not connected.
            PlannedCamera::new("333333333333", Some(mode("848x480@30")), None, 0),
        ];
        let r = preflight(&root, &planned);
        let by_port = |p: &str| r.cameras.iter().find(|c| c.port == p).unwrap();
        assert_eq!(by_port("2-2.1").serial.as_deref(), Some("111111111111"));
        assert_eq!(by_port("2-2.1").mb_per_s, 110.6);
        assert_eq!(by_port("2-1").serial.as_deref(), Some("222222222222"));
        assert_eq!(by_port("1-3").streams, None);
        assert_eq!(by_port("1-3").mb_per_s, 0.0);
        assert_eq!(r.controllers[0].buses[1].load_mb_s, 135.0);
        assert_eq!(r.not_in_sysfs, ["333333333333"]);
        assert!(r.notes[0].starts_with("camera 333333333333: not found in sysfs"));
        let w = r.warnings();
        // The USB 2 cameras are not recorded: no warning for them. Three cameras with the
        // default usbfs limit is one.
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(w[0].starts_with("usbfs_memory_mb is 16 (the Linux default) with 3 RealSense"));

        // A recorded USB 2 camera named by librealsense's libusb-backend port.
        let r = preflight(
            &root,
            &[PlannedCamera {
                id: CameraId {
                    serial: "444444444444".into(),
                    keys: vec!["1-3-7".into()],
                },
                streams: StreamPlan::new(Some(mode("640x480@15")), None, 0),
            }],
        );
        let w = r.warnings();
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(
            w[0].starts_with(
                "camera 444444444444 (D435I, USB port 1-3) is connected at USB 2 (480 Mbit/s): a \
             D4xx camera on USB 2 streams only reduced modes and frame rates, and may"
            ),
            "{}",
            w[0]
        );
    }

    #[test]
    fn planned_cameras_come_from_source_info() {
        use crate::container::{DeviceInfo, PixelFormat};
        let desc = |kind, w, h, fps| StreamDescriptor {
            id: 0,
            kind,
            name: String::new(),
            width: w,
            height: h,
            format: PixelFormat::Z16,
            fps,
            depth_units: 0.0,
            intrinsics: None,
            extrinsics: None,
            properties: Vec::new(),
        };
        let info = |source: &str| SourceInfo {
            name: "front".into(),
            device: DeviceInfo {
                name: "Intel RealSense D435I".into(),
                serial: "123456789012".into(),
                model: "D435I".into(),
                firmware: String::new(),
                properties: vec![
                    ("Asic Serial Number".into(), "926623051347".into()),
                    ("Physical Port".into(), "1-3-7".into()),
                    ("source".into(), source.into()),
                ],
            },
            streams: vec![
                desc(StreamKind::Depth, 848, 480, 30.0),
                desc(StreamKind::Color, 1280, 720, 15.0),
                desc(StreamKind::Gyro, 0, 0, 200.0),
            ],
        };
        let p = PlannedCamera::of_live_realsense(&info("realsense:123456789012")).unwrap();
        assert_eq!(p.id.serial, "123456789012");
        assert_eq!(p.id.keys, ["926623051347", "1-3-7"]);
        assert_eq!(
            p.streams.describe(),
            "848x480@30 depth + 1280x720@15 colour"
        );
        assert!(PlannedCamera::of_live_realsense(&info("rsbag:/x.bag")).is_none());
        let r = preflight(&fixture("rig-mixed"), &[p]);
        assert_eq!(r.cameras[0].serial.as_deref(), Some("123456789012"));
    }

    /// The lines `rsrec record` runs on its opened cameras (see the module docs): only live
    /// RealSense cameras are checked, a synthetic camera is not.
    #[test]
    fn record_preflight_takes_only_live_realsense_cameras() {
        use crate::source::sim::{SimConfig, SimSource};
        use crate::source::Source;
        let opened: Vec<(String, Box<dyn Source>)> = vec![(
            "sim:1".into(),
            Box::new(SimSource::new(SimConfig::new(0, mode("848x480@30")))),
        )];
        let mut said = Vec::new();
        let planned: Vec<PlannedCamera> = opened
            .iter()
            .filter_map(|(_, s)| PlannedCamera::of_live_realsense(s.info()))
            .collect();
        if !planned.is_empty() {
            let root = Path::new(DEFAULT_SYSFS_ROOT);
            for w in preflight(root, &planned).warnings() {
                said.push(format!("rsrec: warning: {w}"));
            }
        }
        assert!(planned.is_empty());
        assert!(said.is_empty());
    }

    #[test]
    fn survey_names_the_cameras_librealsense_knows() {
        let known = [
            CameraId {
                serial: "123456789012".into(),
                keys: vec![
                    "/sys/devices/platform/xhci-hcd.0/usb1/1-3/1-3:1.0/video4linux/video0".into(),
                ],
            },
            CameraId {
                serial: "999999999999".into(),
                keys: vec!["7-1-2".into()],
            },
        ];
        let r = survey(&fixture("rig-mixed"), &defaults(), &known);
        assert_eq!(r.cameras[0].serial.as_deref(), Some("123456789012"));
        assert_eq!(r.not_in_sysfs, ["999999999999"]);
        let w = r.warnings();
        one(
            &w,
            "camera 123456789012 (D435I, USB port 1-3) is connected at USB 2",
        );
        one(&w, "with 6 RealSense cameras");
    }

    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dst = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &dst);
            } else {
                fs::copy(e.path(), dst).unwrap();
            }
        }
    }

    /// Recreates fixture `tree` in a temporary directory as the kernel's sysfs has it: real
    /// symlinks in bus/usb/devices, and each controller directory moved by `moves` (PCI
    /// names cannot be committed: cargo does not package file names with `:`).
    fn with_symlinks(tree: &str, moves: &[(&str, &str)]) -> tempfile::TempDir {
        let src = fixture(tree);
        let tmp = tempfile::tempdir().unwrap();
        let relocate = |mut p: String| {
            for (from, to) in moves {
                p = p.replace(&format!("devices/{from}/"), &format!("devices/{to}/"));
            }
            p
        };
        copy_dir(&src.join("module"), &tmp.path().join("module"));
        let mut todo = vec![src.join("devices")];
        while let Some(dir) = todo.pop() {
            for e in fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    let r = relocate(rel(&src, &p));
                    let dst = tmp.path().join(r);
                    fs::create_dir_all(dst.parent().unwrap()).unwrap();
                    fs::copy(&p, dst).unwrap();
                }
            }
        }
        let links = tmp.path().join("bus/usb/devices");
        fs::create_dir_all(&links).unwrap();
        for e in fs::read_dir(src.join("bus/usb/devices")).unwrap() {
            let e = e.unwrap();
            let target = relocate(read_attr(&e.path()).unwrap() + "/");
            let target = target.trim_end_matches('/');
            std::os::unix::fs::symlink(target, links.join(e.file_name())).unwrap();
        }
        tmp
    }

    #[test]
    fn real_symlinks_and_pci_controllers_read_the_same() {
        let plain = survey(&fixture("rig-mixed"), &defaults(), &[]);
        let tmp = with_symlinks("rig-mixed", &[]);
        assert!(fs::symlink_metadata(tmp.path().join("bus/usb/devices/2-1"))
            .unwrap()
            .file_type()
            .is_symlink());
        let linked = survey(tmp.path(), &defaults(), &[]);
        assert_eq!(linked.cameras, plain.cameras);
        assert_eq!(linked.controllers, plain.controllers);
        assert_eq!(linked.warnings(), plain.warnings());

        // A PC's layout: xHCI controllers on PCI, two behind PCIe root ports, and an
        // interface entry (`2-1:1.0`) in bus/usb/devices, which is not a device.
        let tmp = with_symlinks(
            "rig-mixed",
            &[
                ("platform/xhci-hcd.0", "pci0000:00/0000:00:14.0"),
                (
                    "platform/soc/3610000.xhci",
                    "pci0000:00/0000:00:1c.0/0000:03:00.0",
                ),
                (
                    "platform/xhci-hcd.1",
                    "pci0000:00/0000:00:1c.4/0000:05:00.0",
                ),
            ],
        );
        let iface = tmp
            .path()
            .join("devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0");
        fs::create_dir_all(&iface).unwrap();
        fs::write(iface.join("idVendor"), "8086\n").unwrap();
        fs::write(iface.join("idProduct"), "0b07\n").unwrap();
        std::os::unix::fs::symlink(
            "../../../devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0",
            tmp.path().join("bus/usb/devices/2-1:1.0"),
        )
        .unwrap();
        let r = survey(tmp.path(), &defaults(), &[]);
        let ids: Vec<&str> = r.controllers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["0000:00:14.0", "0000:03:00.0", "0000:05:00.0"]);
        assert_eq!(r.cameras.len(), 5);
        assert_eq!(r.cameras[0].controller.as_deref(), Some("0000:00:14.0"));
        assert_eq!(
            r.cameras[0].sysfs_path.as_deref(),
            Some("devices/pci0000:00/0000:00:14.0/usb1/1-3")
        );
        assert_eq!(
            r.controllers[1].sysfs_path.as_deref(),
            Some("devices/pci0000:00/0000:00:1c.0/0000:03:00.0")
        );
        let w = r.warnings();
        assert_eq!(w.len(), 3, "{w:#?}");
    }

    #[test]
    fn attributes_are_capped_and_unreadable_ones_unknown() {
        let tmp = tempfile::tempdir().unwrap();
        let big = tmp.path().join("big");
        fs::write(&big, vec![b'1'; MAX_ATTR_BYTES as usize + 1]).unwrap();
        assert!(matches!(read_attr(&big), Err(SysfsError::TooLarge { .. })));
        let exact = tmp.path().join("exact");
        fs::write(&exact, vec![b'1'; MAX_ATTR_BYTES as usize]).unwrap();
        assert_eq!(read_attr(&exact).unwrap().len(), MAX_ATTR_BYTES as usize);
        assert!(matches!(
            read_attr(&tmp.path().join("missing")),
            Err(SysfsError::Read { .. })
        ));
        // A directory where an attribute should be.
        fs::create_dir(tmp.path().join("speed")).unwrap();
        assert_eq!(attr(tmp.path(), "speed"), None);
        assert_eq!(parse_speed("5000"), Some(5000));
        assert_eq!(parse_speed("1.5"), Some(1));
        assert_eq!(parse_speed("fast"), None);
        assert_eq!(parse_speed("-1"), None);

        // A camera whose every attribute but the ids is garbage or missing, and a link that
        // leads nowhere: unknown, no panic.
        let root = tmp.path().join("sys");
        let dev = root.join("devices/platform/x/usb9/9-1");
        fs::create_dir_all(&dev).unwrap();
        fs::write(dev.join("idVendor"), "8086\n").unwrap();
        fs::write(dev.join("idProduct"), "0B07\n").unwrap();
        fs::write(dev.join("speed"), "warp\n").unwrap();
        fs::write(dev.join("busnum"), vec![b'9'; 10_000]).unwrap();
        fs::create_dir_all(root.join("bus/usb/devices")).unwrap();
        fs::write(
            root.join("bus/usb/devices/9-1"),
            "../../../devices/platform/x/usb9/9-1\n",
        )
        .unwrap();
        fs::write(
            root.join("bus/usb/devices/9-2"),
            "../../../devices/nowhere\n",
        )
        .unwrap();
        let r = survey(&root, &defaults(), &[]);
        assert_eq!(r.cameras.len(), 1);
        let c = &r.cameras[0];
        assert_eq!(
            (c.model.as_str(), c.busnum, c.speed_mbps),
            ("D435", Some(9), None)
        );
        assert_eq!(c.controller.as_deref(), Some("x"));
        assert_eq!(c.usb, "USB speed unknown");
        assert!(
            r.notes.iter().any(|n| n.contains("USB speed unknown")),
            "{:?}",
            r.notes
        );
        assert!(r.warnings().is_empty());
    }
}
