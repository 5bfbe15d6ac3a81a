//! Choosing a camera's stream profiles (modes, formats, the IMU's native rates), applying
//! its options, and describing the chosen streams for the file header.

use super::*;

/// Modes a camera on USB 2 falls back to, best first, when the mode asked for is not
/// available there (librealsense's own default on USB 2 is 640x480@15).
const USB2_MODES: [StreamMode; 3] = [
    StreamMode {
        width: 640,
        height: 480,
        fps: 15.0,
    },
    StreamMode {
        width: 640,
        height: 480,
        fps: 6.0,
    },
    StreamMode {
        width: 424,
        height: 240,
        fps: 30.0,
    },
];

/// Chooses the stream profiles, sensor by sensor, and applies the options (global time,
/// then the user's): what [`RealSenseSource::start`] opens. Also returns the depth units.
/// On USB 2 (`usb2`), a mode that is not available falls back to a USB-2 mode, said in
/// `warnings`.
pub(super) fn select_profiles(
    device: &Device,
    cfg: &RealSenseConfig,
    playback: bool,
    usb2: bool,
    label: &str,
    warnings: &mut Vec<String>,
) -> Result<(Vec<Selection>, Option<f32>), SourceError> {
    let sensors = device.sensors().map_err(SourceError::Open)?;
    let mut selections: Vec<Selection> = Vec::new();
    let mut depth_units = None;
    let mut option_hits = vec![false; cfg.options.len()];
    let option_ids: Vec<(OptionTarget, sys::rs2_option)> = cfg
        .options
        .iter()
        .map(|(n, _)| {
            let (target, bare) = option_target(n);
            option_id(bare).map(|id| (target, id)).ok_or_else(|| {
                SourceError::Open(format!("'{bare}' is not a librealsense option name"))
            })
        })
        .collect::<Result<_, _>>()?;
    for sensor in sensors {
        let profiles = sensor.profiles().map_err(SourceError::Open)?;
        let mut chosen: Vec<(Slot, Profile)> = Vec::new();
        let ps = &profiles.profiles;
        let exact = |stream: sys::rs2_stream, format: sys::rs2_format, m: &StreamMode| {
            ps.iter().copied().find(|p| {
                p.stream == stream
                    && p.format == format
                    && p.width as u32 == m.width
                    && p.height as u32 == m.height
                    && (p.fps as f64 - m.fps).abs() < 0.5
            })
        };
        let mut fallbacks = Vec::new();
        let mut pick_video = |stream: sys::rs2_stream, format: sys::rs2_format, m: &StreamMode| {
            exact(stream, format, m).or_else(|| {
                let (fm, p) = USB2_MODES
                    .iter()
                    .filter(|_| usb2)
                    .find_map(|fm| exact(stream, format, fm).map(|p| (fm, p)))?;
                fallbacks.push(format!(
                    "camera {label} is on USB 2, where {} {m} is not available: recording {fm} \
                     (use a USB 3 port and cable for the full modes)",
                    stream_name(stream)
                ));
                Some(p)
            })
        };
        // Playback: the file's streams as recorded.
        let first_of = |stream: sys::rs2_stream| {
            ps.iter()
                .copied()
                .filter(|p| p.stream == stream)
                .min_by_key(|p| p.index)
        };
        let has = |stream| ps.iter().any(|p| p.stream == stream);
        let taken = |slot: Slot| {
            selections
                .iter()
                .any(|s| s.chosen.iter().any(|(k, _)| *k == slot))
        };
        if has(sys::rs2_stream_RS2_STREAM_DEPTH) && !taken(Slot::Depth) {
            let p = if playback {
                first_of(sys::rs2_stream_RS2_STREAM_DEPTH)
                    .filter(|p| p.format == sys::rs2_format_RS2_FORMAT_Z16)
            } else {
                pick_video(
                    sys::rs2_stream_RS2_STREAM_DEPTH,
                    sys::rs2_format_RS2_FORMAT_Z16,
                    &cfg.depth,
                )
            };
            match p {
                Some(p) => chosen.push((Slot::Depth, p)),
                None if playback => {} // "has no Z16 depth stream" below
                None => {
                    return Err(SourceError::Open(format!(
                        "depth mode {} Z16 is not available on {label} ({}); available: {}",
                        cfg.depth,
                        sensor.name(),
                        modes_text(ps, sys::rs2_stream_RS2_STREAM_DEPTH)
                    )))
                }
            }
            depth_units = sensor.option(sys::rs2_option_RS2_OPTION_DEPTH_UNITS);
            // Infrared (Y8) of the imagers asked for, at the depth's mode: the stereo module
            // streams depth and infrared at one size and rate.
            let depth_mode = chosen
                .iter()
                .find(|(k, _)| *k == Slot::Depth)
                .map(|(_, p)| StreamMode {
                    width: p.width.max(0) as u32,
                    height: p.height.max(0) as u32,
                    fps: p.fps as f64,
                });
            for &index in &cfg.infrared {
                let Some(slot) = Slot::infrared(index as i32) else {
                    continue;
                };
                let of_index = |p: &&Profile| {
                    p.stream == sys::rs2_stream_RS2_STREAM_INFRARED
                        && p.index == index as i32
                        && p.format == sys::rs2_format_RS2_FORMAT_Y8
                };
                let p = match (&depth_mode, playback) {
                    (_, true) => ps.iter().filter(of_index).min_by_key(|p| p.uid).copied(),
                    (Some(m), false) => ps
                        .iter()
                        .filter(of_index)
                        .find(|p| {
                            p.width as u32 == m.width
                                && p.height as u32 == m.height
                                && (p.fps as f64 - m.fps).abs() < 0.5
                        })
                        .copied(),
                    (None, false) => None,
                };
                let side = if index == 2 { "right" } else { "left" };
                match p {
                    Some(p) => chosen.push((slot, p)),
                    None if playback => warnings.push(format!(
                        "{label} has no {side} infrared (Y8) stream: recording without it"
                    )),
                    None => {
                        return Err(SourceError::Open(format!(
                            "{side} infrared Y8 at the depth mode {} is not available on {label}                              ({}); available: {}",
                            depth_mode.map_or_else(|| cfg.depth.to_string(), |m| m.to_string()),
                            sensor.name(),
                            modes_text(ps, sys::rs2_stream_RS2_STREAM_INFRARED)
                        )))
                    }
                }
            }
        }
        if let Some(mode) = &cfg.color {
            if has(sys::rs2_stream_RS2_STREAM_COLOR) && !taken(Slot::Color) {
                let p = if playback {
                    first_of(sys::rs2_stream_RS2_STREAM_COLOR)
                        .filter(|p| pixel_format(p.format).is_some())
                } else {
                    let f = rs2_format_of(cfg.color_format).ok_or_else(|| {
                        SourceError::Open(format!(
                            "colour format {:?} is not supported",
                            cfg.color_format
                        ))
                    })?;
                    pick_video(sys::rs2_stream_RS2_STREAM_COLOR, f, mode)
                };
                match p {
                    Some(p) => chosen.push((Slot::Color, p)),
                    None if playback => {} // a colour format rsrec does not store
                    None => {
                        return Err(SourceError::Open(format!(
                            "colour mode {mode} {} is not available on {label} ({}); \
                             available: {}",
                            format_name(rs2_format_of(cfg.color_format).unwrap_or(0)),
                            sensor.name(),
                            modes_text(ps, sys::rs2_stream_RS2_STREAM_COLOR)
                        )))
                    }
                }
            }
        }
        if cfg.imu || playback {
            for (stream, slot) in [
                (sys::rs2_stream_RS2_STREAM_GYRO, Slot::Gyro),
                (sys::rs2_stream_RS2_STREAM_ACCEL, Slot::Accel),
            ] {
                let candidates: Vec<Profile> = ps
                    .iter()
                    .copied()
                    .filter(|p| {
                        p.stream == stream && p.format == sys::rs2_format_RS2_FORMAT_MOTION_XYZ32F
                    })
                    .collect();
                if candidates.is_empty() {
                    continue;
                }
                let wanted = match slot {
                    Slot::Gyro => cfg.gyro_hz,
                    _ => cfg.accel_hz,
                }
                .filter(|_| !playback);
                // The rate asked for; else the default profile (the native rate); else the
                // lowest rate.
                let p = match wanted {
                    Some(hz) => Some(candidates.iter().find(|p| p.fps as u32 == hz).ok_or_else(
                        || {
                            let mut rates: Vec<i32> = candidates.iter().map(|p| p.fps).collect();
                            rates.sort_unstable();
                            rates.dedup();
                            SourceError::Open(format!(
                                "{} at {hz} Hz is not available on {label}; available: {} Hz",
                                if slot == Slot::Gyro { "gyro" } else { "accel" },
                                rates
                                    .iter()
                                    .map(|r| r.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        },
                    )?),
                    None => candidates
                        .iter()
                        .find(|p| p.default)
                        .or_else(|| candidates.iter().min_by_key(|p| p.fps)),
                };
                if let Some(p) = p {
                    chosen.push((slot, *p));
                }
            }
        }
        warnings.append(&mut fallbacks);
        // Options: global time, then the user's.
        if !playback {
            if cfg.global_time {
                let _ = sensor.set_option(sys::rs2_option_RS2_OPTION_GLOBAL_TIME_ENABLED, 1.0);
            }
            let role = if has(sys::rs2_stream_RS2_STREAM_DEPTH) {
                OptionTarget::Depth
            } else if has(sys::rs2_stream_RS2_STREAM_COLOR) {
                OptionTarget::Color
            } else if has(sys::rs2_stream_RS2_STREAM_GYRO) || has(sys::rs2_stream_RS2_STREAM_ACCEL)
            {
                OptionTarget::Motion
            } else {
                OptionTarget::Any
            };
            for (i, ((n, v), (target, id))) in cfg.options.iter().zip(&option_ids).enumerate() {
                if *target != OptionTarget::Any && *target != role {
                    continue;
                }
                match sensor.set_option(*id, *v) {
                    Ok(true) => option_hits[i] = true,
                    Ok(false) => {}
                    Err(e) => {
                        return Err(SourceError::Open(format!(
                            "setting '{n}' to {v} on {}: {e}",
                            sensor.name()
                        )))
                    }
                }
            }
        }
        if !chosen.is_empty() {
            selections.push(Selection {
                sensor,
                profiles,
                chosen,
            });
        }
    }
    if let Some((i, _)) = option_hits
        .iter()
        .enumerate()
        .find(|(_, hit)| !playback && !**hit)
    {
        return Err(SourceError::Open(format!(
            "no (targeted) sensor of {label} has a writable option '{}'",
            cfg.options[i].0
        )));
    }
    Ok((selections, depth_units))
}

/// The stream descriptors of the chosen profiles, in stream-id order: sizes, formats,
/// rates, depth units, intrinsics, extrinsics to depth and the sensor's options.
pub(super) fn stream_descriptors(
    all: &[(Slot, Profile, &Selection)],
    depth_profile: &Profile,
    depth_units: Option<f32>,
) -> Vec<StreamDescriptor> {
    let mut streams = Vec::new();
    let mut sorted = all.to_vec();
    sorted.sort_by_key(|(k, _, _)| k.id());
    for (slot, p, sel) in sorted {
        let mut properties = vec![
            ("sensor".to_string(), sel.sensor.name()),
            ("rs2_stream".to_string(), stream_name(p.stream)),
            ("rs2_format".to_string(), format_name(p.format)),
            ("rs2_stream_index".to_string(), p.index.to_string()),
        ];
        for (n, v) in sel.sensor.options() {
            properties.push((format!("option.{n}"), v.to_string()));
        }
        let (kind, format) = match slot {
            Slot::Depth => (StreamKind::Depth, PixelFormat::Z16),
            Slot::Color => (
                StreamKind::Color,
                pixel_format(p.format)
                    .map(|(f, _)| f)
                    .unwrap_or(PixelFormat::Rgb8),
            ),
            Slot::Gyro => (StreamKind::Gyro, PixelFormat::MotionXyz32f),
            Slot::Accel => (StreamKind::Accel, PixelFormat::MotionXyz32f),
            Slot::IrLeft | Slot::IrRight => (StreamKind::Infrared, PixelFormat::Y8),
        };
        let image = slot.is_image();
        let name = match slot {
            Slot::IrLeft | Slot::IrRight => {
                // §3.2 `ir_index`: which imager.
                properties.push((
                    crate::container::format::PROP_IR_INDEX.into(),
                    p.index.to_string(),
                ));
                if slot == Slot::IrRight {
                    "ir_right"
                } else {
                    "ir_left"
                }
                .to_string()
            }
            _ => kind.name().into(),
        };
        if !image {
            if let Some(m) = p.motion_intrinsics() {
                properties.push(("motion_intrinsics".into(), m));
            }
        }
        streams.push(StreamDescriptor {
            id: slot.id(),
            kind,
            name,
            width: if image { p.width.max(0) as u32 } else { 0 },
            height: if image { p.height.max(0) as u32 } else { 0 },
            format,
            fps: p.fps as f64,
            depth_units: if slot == Slot::Depth {
                depth_units
                    .filter(|u| u.is_finite() && *u > 0.0)
                    .unwrap_or(0.001)
            } else {
                0.0
            },
            intrinsics: if image { p.intrinsics() } else { None },
            extrinsics: if slot == Slot::Depth {
                None
            } else {
                p.extrinsics_to(depth_profile, stream_id::DEPTH)
            },
            properties,
        });
    }

    streams
}

pub(super) fn modes_text(ps: &[Profile], stream: sys::rs2_stream) -> String {
    let mut modes: Vec<String> = ps
        .iter()
        .filter(|p| p.stream == stream)
        .map(|p| {
            format!(
                "{}x{}@{} {}",
                p.width,
                p.height,
                p.fps,
                format_name(p.format)
            )
        })
        .collect();
    modes.sort();
    modes.dedup();
    if modes.is_empty() {
        "none".into()
    } else {
        modes.join(", ")
    }
}

// ---------------------------------------------------------------------------------------
// Device listing (`rsrec devices`), through realsense-rust
// ---------------------------------------------------------------------------------------
