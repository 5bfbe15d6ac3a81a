//! `rsrec devices`: list connected RealSense cameras (serial, name, firmware, USB type and the
//! stream modes of every sensor, through librealsense: feature `realsense`) and the USB
//! report from sysfs (in every build): per camera its USB link and host controller, per
//! controller the cameras and the MB/s they carry at rsrec's default modes,
//! `usbfs_memory_mb`, and the warnings ([`rsrec::source::usb`]).
//!
//! Output: text, or with `--json` the array of cameras (`[]` when there is none), as it has
//! always been; `--usb` (implied by `--sysfs`, and in a build without the `realsense`
//! feature) makes the JSON an object `{"cameras": [...] | null, "usb": {...}}`. In text the
//! USB section follows the cameras whenever librealsense finds one, and always with `--usb`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rsrec::source::usb::{self, CameraId, StreamPlan, UsbReport};

/// List connected RealSense cameras: serial, name, firmware, USB type, stream modes; and the
/// USB links, host controllers, bandwidth and usbfs_memory_mb (from sysfs).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON: an array of cameras (`[]` when there is none); with --usb, and in a build
    /// without the realsense feature, an object {"cameras": [...] or null, "usb": {...}}.
    #[arg(long)]
    pub json: bool,
    /// Add the USB report: per camera its USB link and host controller, per controller the
    /// estimated MB/s at rsrec's default modes (848x480@30 depth, 640x480@30 colour),
    /// usbfs_memory_mb, and warnings.
    #[arg(long)]
    pub usb: bool,
    /// Read the USB topology from this sysfs tree instead of /sys (tests, or a copy of
    /// another machine's; implies --usb).
    #[arg(long, value_name = "DIR", hide = true)]
    pub sysfs: Option<PathBuf>,
}

/// The USB report as JSON: the report's fields, the modes it estimated, its warnings.
#[derive(serde::Serialize)]
struct UsbJson<'a> {
    #[serde(flatten)]
    report: &'a UsbReport,
    modes: &'a StreamPlan,
    warnings: &'a [String],
}

/// `rsrec devices --usb --json`.
#[derive(serde::Serialize)]
struct DevicesJson<'a, T: serde::Serialize> {
    /// librealsense's cameras; `null` in a build without librealsense.
    cameras: Option<&'a T>,
    usb: UsbJson<'a>,
}

/// The USB report at rsrec's default modes; `known` (librealsense's cameras) names them.
struct Usb {
    report: UsbReport,
    modes: StreamPlan,
    warnings: Vec<String>,
}

impl Usb {
    fn survey(root: &Path, known: &[CameraId]) -> Usb {
        let modes = StreamPlan::rsrec_defaults();
        let report = usb::survey(root, &modes, known);
        let warnings = report.warnings();
        Usb {
            report,
            modes,
            warnings,
        }
    }

    fn json<'a, T: serde::Serialize>(&'a self, cameras: Option<&'a T>) -> String {
        let v = DevicesJson {
            cameras,
            usb: UsbJson {
                report: &self.report,
                modes: &self.modes,
                warnings: &self.warnings,
            },
        };
        serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

fn sysfs_root(args: &Args) -> PathBuf {
    args.sysfs
        .clone()
        .unwrap_or_else(|| PathBuf::from(usb::DEFAULT_SYSFS_ROOT))
}

#[cfg(not(feature = "realsense"))]
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Without librealsense there is only the USB report.
    let usb = Usb::survey(&sysfs_root(&args), &[]);
    if args.json {
        super::util::outln!("{}", usb.json::<()>(None));
    } else {
        super::util::write_bytes(usb_text(&usb).as_bytes());
    }
    eprintln!(
        "note: this build of rsrec has no RealSense support, so only the USB report from sysfs: \
         install librealsense2-dev and build with `cargo install --path . --features realsense` \
         for serial numbers, firmware and stream modes (see README)"
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "realsense")]
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use rsrec::source::realsense::{librealsense_version, list_devices};

    let devices = list_devices().context("listing RealSense devices")?;
    let show_usb = args.usb || args.sysfs.is_some();
    // librealsense's physical ports are paths of this machine's own /sys: they name the
    // cameras of no other tree.
    let known: Vec<CameraId> = if args.sysfs.is_none() {
        devices
            .iter()
            .map(|d| CameraId {
                serial: d.serial.clone(),
                keys: vec![d.physical_port.clone()],
            })
            .collect()
    } else {
        Vec::new()
    };
    let usb = Usb::survey(&sysfs_root(&args), &known);
    if args.json {
        if show_usb {
            super::util::outln!("{}", usb.json(Some(&devices)));
        } else {
            super::util::outln!("{}", serde_json::to_string_pretty(&devices)?);
            for w in &usb.warnings {
                eprintln!("rsrec: warning: {w}");
            }
        }
        if devices.is_empty() {
            eprintln!("no RealSense devices found");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if devices.is_empty() {
        super::util::outln!("no RealSense devices found");
        if show_usb {
            super::util::write_bytes(usb_text(&usb).as_bytes());
        } else if usb.report.status == usb::SysfsStatus::Ok {
            eprintln!(
                "note: sysfs shows {} that librealsense does not list (permissions? install \
                 librealsense2-udev-rules and replug); `rsrec devices --usb` shows them",
                usb.report.summary
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", text(&devices));
    super::util::write_bytes(usb_text(&usb).as_bytes());
    eprintln!("(librealsense {})", librealsense_version());
    Ok(ExitCode::SUCCESS)
}

/// The USB section: one line per camera, one block per controller with a line per bus,
/// usbfs_memory_mb, notes and warnings.
fn usb_text(usb: &Usb) -> String {
    use std::fmt::Write;

    let r = &usb.report;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "USB (sysfs {}; estimates at {} per camera, on the wire):",
        r.sysfs_root,
        usb.modes.describe()
    );
    let _ = writeln!(out, "  {}", r.summary);
    for c in &r.cameras {
        let id = match (&c.serial, &c.usb_serial) {
            (Some(s), _) => format!("serial {s}"),
            (None, Some(u)) => format!("USB serial {u}"),
            (None, None) => String::new(),
        };
        let at = match (&c.controller, c.busnum) {
            (Some(ctrl), Some(b)) => format!("controller {ctrl}, bus {b}"),
            (None, Some(b)) => format!("controller unknown, bus {b}"),
            _ => "controller unknown".to_string(),
        };
        let hubs = match c.hubs {
            Some(0) | None => String::new(),
            Some(1) => " (through a hub)".to_string(),
            Some(n) => format!(" (through {n} hubs)"),
        };
        let mb = match &c.streams {
            Some(_) => format!("{:.1} MB/s", c.mb_per_s),
            None => "not streamed".to_string(),
        };
        let parts: Vec<String> = [format!("{at}{hubs}"), id, mb]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        let _ = writeln!(
            out,
            "  {:<9} {:<6} {:<20} {}",
            c.port,
            c.model,
            c.usb,
            parts.join("  ")
        );
    }
    for ctrl in &r.controllers {
        if ctrl.cameras == 0 {
            let _ = writeln!(out, "  controller {}: no camera", ctrl.id);
        } else {
            let _ = writeln!(
                out,
                "  controller {}: {} camera{}, {:.1} MB/s",
                ctrl.id,
                ctrl.cameras,
                if ctrl.cameras == 1 { "" } else { "s" },
                ctrl.load_mb_s
            );
        }
        for b in &ctrl.buses {
            let load = match b.capacity_mb_s {
                Some(cap) if !b.cameras.is_empty() => format!(
                    "{:.1} of ~{cap:.0} MB/s ({:.0} %)",
                    b.load_mb_s,
                    b.load_mb_s / cap * 100.0
                ),
                Some(cap) => format!("~{cap:.0} MB/s free"),
                None => format!("{:.1} MB/s", b.load_mb_s),
            };
            let _ = writeln!(
                out,
                "    bus {:<3} {:<20} {:<9} {load}",
                b.busnum,
                b.usb,
                match b.cameras.len() {
                    0 => "-".to_string(),
                    1 => "1 camera".to_string(),
                    n => format!("{n} cameras"),
                }
            );
        }
    }
    if r.status != usb::SysfsStatus::Unreadable {
        let _ = writeln!(
            out,
            "  usbfs_memory_mb: {}",
            match r.usbfs_memory_mb {
                Some(0) => "0 (no limit)".to_string(),
                Some(m) => m.to_string(),
                None => "unknown".to_string(),
            }
        );
    }
    for n in &r.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    for w in &usb.warnings {
        let _ = writeln!(out, "  WARNING: {w}");
    }
    out
}

/// The human-readable listing: one block per camera, one line per stream and format with its
/// sizes and frame rates (`*` marks librealsense's default mode).
#[cfg(feature = "realsense")]
fn text(devices: &[rsrec::source::realsense::DeviceListing]) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write;

    let mut out = String::new();
    for d in devices {
        let _ = writeln!(
            out,
            "{}  {}  firmware {}  USB {}{}",
            d.serial,
            d.name,
            d.firmware,
            if d.usb_type.is_empty() {
                "?"
            } else {
                &d.usb_type
            },
            if d.product_line.is_empty() {
                String::new()
            } else {
                format!("  ({})", d.product_line)
            }
        );
        if d.usb2 {
            let _ = writeln!(
                out,
                "  WARNING: connected through USB {}: only reduced modes and frame rates; use a \
                 USB 3 port and cable",
                d.usb_type
            );
        }
        for s in &d.sensors {
            let _ = writeln!(out, "  {}", s.name);
            // (stream, index, format) -> [(size, rates)]
            type Sizes = Vec<((u32, u32), Vec<String>)>;
            let mut groups: BTreeMap<(String, usize, String), Sizes> = BTreeMap::new();
            for m in &s.modes {
                let sizes = groups
                    .entry((m.stream.clone(), m.index, m.format.clone()))
                    .or_default();
                let rate = format!("{}{}", m.fps, if m.default { "*" } else { "" });
                match sizes.iter_mut().find(|(wh, _)| *wh == (m.width, m.height)) {
                    Some((_, rates)) => rates.push(rate),
                    None => sizes.push(((m.width, m.height), vec![rate])),
                }
            }
            for ((stream, index, format), sizes) in groups {
                let stream = if index > 0 {
                    format!("{stream} {index}")
                } else {
                    stream
                };
                let modes: Vec<String> = sizes
                    .into_iter()
                    .map(|((w, h), rates)| {
                        if w == 0 {
                            format!("{} Hz", rates.join("/"))
                        } else {
                            format!("{w}x{h}@{}", rates.join("/"))
                        }
                    })
                    .collect();
                let _ = writeln!(out, "    {stream:<10} {format:<14} {}", modes.join("  "));
            }
        }
    }
    out
}

#[cfg(all(test, feature = "realsense"))]
mod tests {
    use rsrec::source::realsense::{DeviceListing, ModeListing, SensorListing};

    fn mode(stream: &str, format: &str, w: u32, h: u32, fps: u32, default: bool) -> ModeListing {
        ModeListing {
            stream: stream.into(),
            index: 0,
            format: format.into(),
            width: w,
            height: h,
            fps,
            default,
        }
    }

    #[test]
    fn listing_groups_modes_and_warns_on_usb2() {
        let d = DeviceListing {
            name: "Intel RealSense D435I".into(),
            serial: "123456789012".into(),
            firmware: "5.16.0.1".into(),
            usb_type: "2.1".into(),
            product_line: "D400".into(),
            physical_port: String::new(),
            usb2: true,
            sensors: vec![
                SensorListing {
                    name: "Stereo Module".into(),
                    modes: vec![
                        mode("Depth", "Z16", 848, 480, 30, true),
                        mode("Depth", "Z16", 848, 480, 15, false),
                        mode("Depth", "Z16", 640, 480, 30, false),
                    ],
                },
                SensorListing {
                    name: "Motion Module".into(),
                    modes: vec![
                        mode("Gyro", "MOTION_XYZ32F", 0, 0, 200, true),
                        mode("Gyro", "MOTION_XYZ32F", 0, 0, 400, false),
                    ],
                },
            ],
        };
        let t = super::text(&[d]);
        assert!(t.starts_with("123456789012  Intel RealSense D435I  firmware 5.16.0.1  USB 2.1"));
        assert!(t.contains("WARNING: connected through USB 2.1"), "{t}");
        assert!(
            t.contains("Depth      Z16            848x480@30*/15  640x480@30"),
            "{t}"
        );
        assert!(t.contains("Gyro       MOTION_XYZ32F  200*/400 Hz"), "{t}");
    }
}
