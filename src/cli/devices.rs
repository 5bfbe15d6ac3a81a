//! `rsrec devices`: list connected RealSense cameras (serial, name, firmware, USB type and the
//! stream modes of every sensor). Needs the `realsense` feature; without it the command says
//! so and how to get it.

use std::process::ExitCode;

/// List connected RealSense cameras: serial, name, firmware, USB type, stream modes.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (an array of cameras; `[]` when there is none).
    #[arg(long)]
    pub json: bool,
}

#[cfg(not(feature = "realsense"))]
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "this build of rsrec has no RealSense support: install librealsense2-dev and build with \
         `cargo install --path . --features realsense` (see README)"
    )
}

#[cfg(feature = "realsense")]
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use rsrec::source::realsense::{librealsense_version, list_devices};

    let devices = list_devices().context("listing RealSense devices")?;
    if args.json {
        super::util::outln!("{}", serde_json::to_string_pretty(&devices)?);
        if devices.is_empty() {
            eprintln!("no RealSense devices found");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if devices.is_empty() {
        super::util::outln!("no RealSense devices found");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", text(&devices));
    eprintln!("(librealsense {})", librealsense_version());
    Ok(ExitCode::SUCCESS)
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
