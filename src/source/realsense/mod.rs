//! RealSense cameras through librealsense (cargo feature `realsense`).
//!
//! [`RealSenseSource`] opens one device - a camera by serial number, every connected camera
//! ([`RealSenseSource::open_all`]), or a `.bag` file played by librealsense's own playback
//! device ([`RealSenseSource::open_bag`]) - and streams depth (Z16), colour and, on a D435i,
//! gyro and accel. Streaming runs inside librealsense: each sensor is opened with the chosen
//! stream profiles and started with a frame callback that runs on librealsense's own threads.
//! The callback copies the frame (pixels, frame number, device timestamp and its domain, the
//! host arrival time and every per-frame metadata value the frame supports) into a bounded
//! channel and returns the frame to librealsense at once; [`Source::next`] reads that channel
//! with a short timeout, so that disconnects and the end of a playback are noticed even when
//! no frame comes.
//!
//! What goes into the file header: the device's name, serial number, firmware and every other
//! camera-info field librealsense reports (USB type, product id/line, physical port, ...), the
//! depth units (the depth sensor's `Depth Units` option), the intrinsics of the image
//! streams, and the extrinsics of colour, gyro and accel to depth. Cameras connected through
//! USB 2 are reported in [`RealSenseSource::warnings`] (a D435 on USB 2 only streams reduced
//! modes). Global timestamps (`Global Time Enabled`) are switched on for every sensor that has
//! the option, so frames of different cameras share one host-based time axis.
//!
//! Faults: when librealsense reports the device removed (its devices-changed callback), or no
//! sample arrives for [`RealSenseConfig::stall_timeout`], `next` returns
//! [`SourceError::Disconnected`]; the recorder then closes that camera's file cleanly and the
//! other cameras carry on. A sample that does not fit into the channel (the recorder fell
//! behind by more than [`RealSenseConfig::queue_samples`]) is dropped and shows up as a gap in
//! the frame numbers; [`RealSenseSource::dropped`] counts them.
//!
//! Playback: a `.bag` is added to a fresh librealsense context as a playback device and
//! streamed exactly like a camera, in real time (as recorded) with [`Pacing::RealTime`], or as
//! fast as the consumer takes the frames (librealsense's non-real-time mode, no frame lost)
//! with [`Pacing::AsFastAsPossible`]. Several bags played at once look like live cameras.
//! (librealsense starts reading a file when its first sensor starts and drops the frames of
//! sensors not started yet: the playback is paused before the sensors start and resumed from
//! the start of the file once all are started.)
//! [`PlaybackControl::unplug`] removes the playback device from its context (librealsense
//! then reports it removed, as it does for an unplugged camera) and stops it: the test of a
//! camera that vanishes mid-recording.
//!
//! The C API is used through `realsense-sys` (the bindings `realsense-rust` is built on) for
//! what `realsense-rust` does not wrap: sensor streaming with a frame callback, playback
//! control and the devices-changed callback. [`list_devices`] uses `realsense-rust`.

use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// Defined before the submodules, which use it too (macros are scoped by text order).
/// Calls `sys::$f(args..., &mut error)`: `Ok(result)` or `Err(librealsense's message)`.
/// Must be used inside `unsafe`.
macro_rules! rs2 {
    ($f:ident($($a:expr),* $(,)?)) => {{
        let mut err: *mut sys::rs2_error = ::std::ptr::null_mut();
        let r = sys::$f($($a,)* &mut err);
        match take_error(err) {
            None => Ok(r),
            Some(m) => Err(m),
        }
    }};
}

mod callback;
mod ffi;
mod hub;
mod listing;
mod profiles;

use callback::*;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender};
pub use ffi::librealsense_version;
use ffi::*;
pub use hub::RealSenseContext;
pub use listing::{list_devices, DeviceListing, ModeListing, SensorListing};
use profiles::*;
use realsense_sys as sys;

use super::{
    stream_id, ColorFrame, DepthFrame, InfraredFrame, Sample, Source, SourceError, SourceInfo,
    SourceLosses, StreamId, Timing,
};
pub use super::{Pacing, StreamMode};
use crate::container::format::ts_domain;
use crate::container::{
    DeviceInfo, Distortion, Extrinsics, ImuSample, Intrinsics, PixelFormat, StreamDescriptor,
    StreamKind,
};

/// How long `next` waits on the channel before it checks for a disconnect or the end of a
/// playback.
const POLL: Duration = Duration::from_millis(50);
/// The first frames of a camera can take a while (sensor power-up, auto exposure).
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Time of arrival metadata before 2001 is not a wall-clock time.
const MIN_WALL_CLOCK_MS: i64 = 978_307_200_000;

/// What to stream and how.
#[derive(Clone, Debug)]
pub struct RealSenseConfig {
    /// Depth mode (Z16). Ignored for playback, which plays what the file holds.
    pub depth: StreamMode,
    /// Colour mode, or `None` for no colour. Playback: `None` skips the file's colour.
    pub color: Option<StreamMode>,
    /// Colour pixel format: [`PixelFormat::Rgb8`] (default), `Bgr8`, `Rgba8`, `Bgra8` or
    /// `Yuyv`.
    pub color_format: PixelFormat,
    /// Gyro and accel, where the camera has an IMU: at the camera's default (native) rates
    /// unless `gyro_hz` / `accel_hz` ask for another (D435i: gyro 200 or 400 Hz, accel 63
    /// or 250 Hz; a rate the camera does not offer is an error).
    pub imu: bool,
    pub gyro_hz: Option<u32>,
    pub accel_hz: Option<u32>,
    /// Infrared imagers to stream (librealsense stream indices: 1 left, 2 right), Y8 at the
    /// depth mode (the stereo module streams both at one size and rate). Playback: the
    /// file's infrared streams of these indices, where it has them.
    pub infrared: Vec<u8>,
    /// Switch on `Global Time Enabled` on every sensor that has it (live cameras).
    pub global_time: bool,
    /// Sensor options to set before streaming, in order, by librealsense name (e.g. `Visual
    /// Preset`, `Emitter Enabled`, `Laser Power`, `Inter Cam Sync Mode`). A plain name goes to
    /// every sensor that has the option; `depth:NAME`, `color:NAME` or `motion:NAME` only to
    /// the sensor of that stream (`depth:Exposure` is not `color:Exposure`). An option that no
    /// targeted sensor has is an error. Not applied to playback.
    pub options: Vec<(String, f32)>,
    /// Name of the camera in the session (file names, status lines) instead of its serial.
    pub name: Option<String>,
    /// Capacity of the channel between librealsense's callbacks and `next`, in samples
    /// (`None`: two seconds of every selected stream).
    pub queue_samples: Option<usize>,
    /// No sample for this long means the camera is gone.
    pub stall_timeout: Duration,
    /// Playback only: real time, or as fast as the consumer goes.
    pub pacing: Pacing,
}

impl RealSenseConfig {
    pub fn new(depth: StreamMode, color: Option<StreamMode>, imu: bool) -> Self {
        Self {
            depth,
            color,
            color_format: PixelFormat::Rgb8,
            imu,
            gyro_hz: None,
            infrared: Vec::new(),
            accel_hz: None,
            global_time: true,
            options: Vec::new(),
            name: None,
            queue_samples: None,
            stall_timeout: Duration::from_secs(5),
            pacing: Pacing::RealTime,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The C API: errors and owned handles
// ---------------------------------------------------------------------------------------

/// Context and device of an open source, shared with [`PlaybackControl`] (and with a stop
/// that hangs, see [`STOP_TIMEOUT`]).
struct Handle {
    // Field order is drop order: device before context.
    device: Device,
    hub: RealSenseContext,
    /// The `.bag` of a playback device.
    file: Option<CString>,
}

/// How long stopping and closing a camera's sensors may take. `rs2_stop` is known to hang on
/// a stuck D4xx: it runs on a thread of its own, and the recorder goes on without it after
/// this long (the stuck camera's handles are then left to that thread).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A camera waiting to come back looks at the device list when librealsense reports a device
/// plugged in, and at least this often.
const RESCAN_EVERY: Duration = Duration::from_secs(10);

/// After this many reopen attempts in a row that found the camera but could not start it,
/// it gets a `hardware_reset` (it then re-enumerates).
const RESET_AFTER: u32 = 3;

/// What reconnecting a camera keeps between attempts.
#[derive(Clone, Debug)]
struct Reconnecting {
    /// [`RealSenseContext::additions`] when the device list was last read.
    additions: u64,
    last_scan: Option<Instant>,
    failed_starts: u32,
    resets: u32,
}

/// A RealSense camera, or a `.bag` played through librealsense, as a [`Source`].
pub struct RealSenseSource {
    info: SourceInfo,
    rx: Receiver<Sample>,
    shared: Arc<Shared>,
    /// Raw `Arc<Shared>` references held by librealsense callbacks (frame callbacks of each
    /// started sensor, and the devices-changed callback), released in `Drop`.
    callback_refs: usize,
    /// Started sensors (stopped and closed in `Drop`), then the profile lists that the opened
    /// profiles point into.
    started: Vec<Sensor>,
    opened: Vec<Sensor>,
    profile_lists: Vec<ProfileList>,
    handle: Option<Arc<Handle>>,
    playback: bool,
    warnings: Vec<String>,
    stall_timeout: Duration,
    /// When the sensors were started, and when `next` last looked for a stalled stream.
    started_at: Instant,
    last_check: Instant,
    last_sample: Instant,
    got_sample: bool,
    /// When `next` first saw the playback stopped with nothing buffered.
    stopped_since: Option<Instant>,
    /// Set once the source has ended or failed: repeated by later calls.
    done: Option<Result<(), String>>,
    /// What to open again after a disconnect, and how.
    origin: Origin,
    cfg: RealSenseConfig,
    /// Playback: cleared by [`PlaybackControl::unplug`], set by [`PlaybackControl::replug`].
    plugged: Arc<AtomicBool>,
    reconnecting: Reconnecting,
    /// Set when stopping the sensors took longer than [`STOP_TIMEOUT`].
    stop_hung: bool,
}

/// Where a source's device came from.
#[derive(Clone, Debug)]
enum Origin {
    Serial(String),
    Bag(PathBuf),
}

/// Stops or "unplugs" a playback source from another thread (tests, tools).
#[derive(Clone)]
pub struct PlaybackControl {
    handle: Arc<Handle>,
    plugged: Arc<AtomicBool>,
}

impl PlaybackControl {
    /// Stops the playback, as if the file had ended: the source ends (`Ok(None)`).
    pub fn stop(&self) -> Result<(), SourceError> {
        // SAFETY: valid playback device.
        unsafe { rs2!(rs2_playback_device_stop(self.handle.device.ptr())) }
            .map_err(SourceError::Open)
    }

    /// Simulates unplugging the camera: removes the playback device from its librealsense
    /// context (librealsense reports it removed, as it does for an unplugged camera) and stops
    /// it. The source then fails with [`SourceError::Disconnected`].
    pub fn unplug(&self) -> Result<(), SourceError> {
        self.plugged.store(false, Ordering::SeqCst);
        if let Some(file) = &self.handle.file {
            // SAFETY: valid context and NUL-terminated path.
            unsafe {
                rs2!(rs2_context_remove_device(
                    self.handle.hub.0.ctx.ptr(),
                    file.as_ptr()
                ))
            }
            .map_err(SourceError::Open)?;
        }
        self.stop()
    }

    /// Simulates plugging the camera in again after [`PlaybackControl::unplug`]: the next
    /// [`Source::reconnect`] of the source opens the file again (it plays from the start, as
    /// a camera's frame numbers restart). This control keeps controlling the old device.
    pub fn replug(&self) {
        self.plugged.store(true, Ordering::SeqCst);
    }

    /// Position in the file, nanoseconds.
    pub fn position_ns(&self) -> u64 {
        // SAFETY: valid playback device.
        unsafe { rs2!(rs2_playback_get_position(self.handle.device.ptr())) }.unwrap_or(0)
    }

    /// Length of the file, nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        // SAFETY: valid playback device.
        unsafe { rs2!(rs2_playback_get_duration(self.handle.device.ptr())) }.unwrap_or(0)
    }

    fn stopped(&self) -> bool {
        // SAFETY: valid playback device.
        unsafe {
            rs2!(rs2_playback_device_get_current_status(
                self.handle.device.ptr()
            ))
        }
        .is_ok_and(|s| s == sys::rs2_playback_status_RS2_PLAYBACK_STATUS_STOPPED)
    }
}

/// What was chosen on one sensor.
struct Selection {
    sensor: Sensor,
    profiles: ProfileList,
    chosen: Vec<(Slot, Profile)>,
}

impl RealSenseSource {
    /// Opens the connected camera with serial number `serial`, in a context of its own.
    pub fn open(serial: &str, cfg: &RealSenseConfig) -> Result<RealSenseSource, SourceError> {
        let ctx = RealSenseContext::new()
            .map_err(|e| SourceError::Open(format!("RealSense {serial}: {e}")))?;
        Self::open_in(&ctx, serial, cfg)
    }

    /// Opens camera `serial` of the shared context `ctx`.
    pub fn open_in(
        ctx: &RealSenseContext,
        serial: &str,
        cfg: &RealSenseConfig,
    ) -> Result<RealSenseSource, SourceError> {
        let mut r = Self::open_rig(ctx, &[(serial.to_string(), cfg.clone())]);
        r.pop()
            .unwrap_or_else(|| Err(SourceError::Open(format!("RealSense {serial}"))))
    }

    /// Opens several cameras of one shared context at once, each on a thread of its own: the
    /// device list is read once (each device created once), every camera starts streaming as
    /// soon as it is open instead of after the others, and one that fails does not stop the
    /// others - its error is in its place of the result.
    pub fn open_rig(
        ctx: &RealSenseContext,
        cameras: &[(String, RealSenseConfig)],
    ) -> Vec<Result<RealSenseSource, SourceError>> {
        let open = |serial: &str, m: String| SourceError::Open(format!("RealSense {serial}: {m}"));
        let devices = match query_devices(&ctx.0.ctx) {
            Ok(d) => d,
            Err(e) => {
                return cameras
                    .iter()
                    .map(|(s, _)| Err(open(s, e.clone())))
                    .collect()
            }
        };
        let connected: Vec<String> = devices.iter().map(|(s, _)| s.clone()).collect();
        let mut devices: Vec<Option<(String, Device)>> = devices.into_iter().map(Some).collect();
        let mut take = |serial: &str| {
            devices
                .iter_mut()
                .find(|d| d.as_ref().is_some_and(|(s, _)| s == serial))
                .and_then(Option::take)
                .map(|(_, d)| d)
        };
        let jobs: Vec<(&String, &RealSenseConfig, Option<Device>)> = cameras
            .iter()
            .map(|(serial, cfg)| (serial, cfg, take(serial)))
            .collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(serial, cfg, device)| {
                    let connected = &connected;
                    let work = move || {
                        let Some(device) = device else {
                            return Err(open(
                                serial,
                                if connected.is_empty() {
                                    "no RealSense devices found".into()
                                } else {
                                    format!("not connected (connected: {})", connected.join(", "))
                                },
                            ));
                        };
                        Self::start(ctx.clone(), device, None, cfg).map_err(|e| match e {
                            SourceError::Open(m) => open(serial, m),
                            e => e,
                        })
                    };
                    (
                        serial,
                        std::thread::Builder::new()
                            .name(format!("rs-open-{serial}"))
                            .spawn_scoped(s, work),
                    )
                })
                .collect();
            handles
                .into_iter()
                .map(|(serial, h)| match h {
                    Ok(h) => h
                        .join()
                        .unwrap_or_else(|_| Err(open(serial, "panicked while opening".into()))),
                    Err(e) => Err(open(serial, format!("cannot start a thread: {e}"))),
                })
                .collect()
        })
    }

    /// Serial numbers of the connected cameras, sorted. No camera is an error.
    pub fn connected_serials() -> Result<Vec<String>, SourceError> {
        let serials = RealSenseContext::new()?.serials()?;
        if serials.is_empty() {
            return Err(SourceError::Open(
                "no RealSense devices found (is a camera plugged in? `rsrec devices` lists \
                 what librealsense sees)"
                    .into(),
            ));
        }
        Ok(serials)
    }

    /// Opens every connected camera with the same configuration, in one shared context. No
    /// camera is an error.
    pub fn open_all(cfg: &RealSenseConfig) -> Result<Vec<RealSenseSource>, SourceError> {
        let ctx = RealSenseContext::new()?;
        let serials = ctx.serials()?;
        if serials.is_empty() {
            // The error `connected_serials` gives for no camera.
            return Self::connected_serials().map(|_| Vec::new());
        }
        let cameras: Vec<(String, RealSenseConfig)> =
            serials.into_iter().map(|s| (s, cfg.clone())).collect();
        Self::open_rig(&ctx, &cameras).into_iter().collect()
    }

    /// Plays `path` through librealsense's playback device, as if it were a live camera.
    pub fn open_bag(path: &Path, cfg: &RealSenseConfig) -> Result<RealSenseSource, SourceError> {
        let open = |m: String| SourceError::Open(format!("{}: {m}", path.display()));
        if !path.is_file() {
            return Err(SourceError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let abs = std::fs::canonicalize(path).map_err(|e| SourceError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let file = CString::new(abs.to_string_lossy().as_bytes())
            .map_err(|_| open("path contains a NUL byte".into()))?;
        let ctx = RealSenseContext::new().map_err(|e| open(e.to_string()))?;
        // SAFETY: valid context and NUL-terminated path; the device is owned below.
        let dev = unsafe { rs2!(rs2_context_add_device(ctx.0.ctx.ptr(), file.as_ptr())) }
            .map_err(open)?;
        let device = Device(NonNull::new(dev).ok_or_else(|| open("no playback device".into()))?);
        if !device.is_playback() {
            return Err(open(
                "librealsense did not open it as a playback device".into(),
            ));
        }
        Self::start(ctx, device, Some(file), cfg).map_err(|e| match e {
            SourceError::Open(m) => open(m),
            e => e,
        })
    }

    /// Controls of a playback source (`None` for a camera).
    pub fn playback_control(&self) -> Option<PlaybackControl> {
        match (&self.handle, self.playback) {
            (Some(h), true) => Some(PlaybackControl {
                handle: h.clone(),
                plugged: self.plugged.clone(),
            }),
            _ => None,
        }
    }

    /// Renames the camera in the session (file names, status lines); e.g. a playback named
    /// after its recorded serial number in a camera config file.
    pub fn set_name(&mut self, name: &str) {
        self.info.name = name.to_string();
        self.cfg.name = Some(name.to_string());
    }

    /// Things the user should know (USB 2, no IMU on this camera, ...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Samples dropped because the consumer fell behind (they are gaps in frame numbers).
    pub fn dropped(&self) -> u64 {
        self.shared
            .slots
            .iter()
            .map(|s| s.dropped.load(Ordering::Relaxed))
            .sum()
    }

    /// Frames librealsense delivered that could not be read, and the first reason.
    pub fn bad_frames(&self) -> (u64, Option<String>) {
        let first = self
            .shared
            .first_bad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        (self.shared.bad_frames.load(Ordering::Relaxed), first)
    }

    /// Chooses the profiles, reads the descriptors, opens and starts the sensors.
    fn start(
        ctx: RealSenseContext,
        device: Device,
        file: Option<CString>,
        cfg: &RealSenseConfig,
    ) -> Result<RealSenseSource, SourceError> {
        let playback = file.is_some();
        let mut warnings = Vec::new();
        let infos = device.infos();
        let get = |k: &str| infos.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let serial = get("Serial Number").unwrap_or_default();
        let name = get("Name").unwrap_or_default();
        let label = if serial.is_empty() {
            name.clone()
        } else {
            serial.clone()
        };
        let usb2 = get("Usb Type Descriptor").is_some_and(|u| u.starts_with('2'));
        if let Some(usb) = get("Usb Type Descriptor") {
            if usb2 {
                warnings.push(format!(
                    "camera {label} is connected through USB {usb}: only reduced depth/colour \
                     modes and frame rates are available; use a USB 3 port and cable"
                ));
            }
        }
        if playback {
            // SAFETY: valid playback device.
            unsafe {
                rs2!(rs2_playback_device_set_real_time(
                    device.ptr(),
                    (cfg.pacing == Pacing::RealTime) as i32
                ))
            }
            .map_err(SourceError::Open)?;
        }

        let (selections, depth_units) =
            select_profiles(&device, cfg, playback, usb2, &label, &mut warnings)?;
        let all: Vec<(Slot, Profile, &Selection)> = selections
            .iter()
            .flat_map(|s| s.chosen.iter().map(move |(k, p)| (*k, *p, s)))
            .collect();
        let Some(&(_, depth_profile, _)) = all.iter().find(|(k, _, _)| *k == Slot::Depth) else {
            return Err(SourceError::Open(format!(
                "{label} has no Z16 depth stream"
            )));
        };
        if cfg.imu
            && !playback
            && !all
                .iter()
                .any(|(k, _, _)| matches!(k, Slot::Gyro | Slot::Accel))
        {
            warnings.push(if usb2 {
                format!(
                    "camera {label} offers no IMU on USB 2 (a D435i's IMU needs USB 3): \
                     recording without gyro/accel"
                )
            } else {
                format!("camera {label} has no IMU (a D435i has one): recording without gyro/accel")
            });
        }

        let streams = stream_descriptors(&all, &depth_profile, depth_units);

        let model = name
            .strip_prefix("Intel RealSense ")
            .map(str::to_string)
            .or_else(|| get("Product Line"))
            .unwrap_or_default();
        let mut properties = infos.clone();
        properties.push(("librealsense".into(), librealsense_version()));
        // What a sync rig is checked against (see `crate::source::sync`): the depth sensor's
        // sync mode and the colour sensor's auto-exposure priority, as set for recording.
        for sel in &selections {
            let has = |slot| sel.chosen.iter().any(|(k, _)| *k == slot);
            let read = |o, key: &str| {
                sel.sensor
                    .option(o)
                    .map(|v| (key.to_string(), v.to_string()))
            };
            if has(Slot::Depth) {
                properties.extend(read(
                    sys::rs2_option_RS2_OPTION_INTER_CAM_SYNC_MODE,
                    super::sync::PROP_SYNC_MODE,
                ));
            }
            if has(Slot::Color) {
                properties.extend(read(
                    sys::rs2_option_RS2_OPTION_AUTO_EXPOSURE_PRIORITY,
                    super::sync::PROP_COLOR_AE_PRIORITY,
                ));
            }
        }
        properties.push((
            "source".into(),
            match &file {
                Some(f) => format!("rsbag:{}", f.to_string_lossy()),
                None => format!("realsense:{serial}"),
            },
        ));
        let info = SourceInfo {
            name: match &cfg.name {
                Some(n) => n.clone(),
                None if serial.is_empty() => "realsense".into(),
                None => serial.clone(),
            },
            device: DeviceInfo {
                name: name.clone(),
                serial: serial.clone(),
                model,
                firmware: get("Firmware Version").unwrap_or_default(),
                properties,
            },
            streams,
        };

        // The channel and the callbacks.
        let capacity = cfg.queue_samples.unwrap_or_else(|| {
            let per_second: i64 = all.iter().map(|(_, p, _)| p.fps.max(1) as i64).sum();
            (per_second * 2).clamp(16, 100_000) as usize
        });
        let (tx, rx) = bounded(capacity.max(1));
        let metadata_names = (0..sys::rs2_frame_metadata_value_RS2_FRAME_METADATA_COUNT)
            // SAFETY: static string for a valid enum value.
            .map(|i| (i, cstr(unsafe { sys::rs2_frame_metadata_to_string(i) })))
            .collect();
        let stream_uids: Vec<(i32, Slot)> = all.iter().map(|(k, p, _)| (p.uid, *k)).collect();
        drop(all);
        let shared = Arc::new(Shared {
            tx,
            streams: stream_uids,
            lossless: playback && cfg.pacing == Pacing::AsFastAsPossible,
            metadata_names,
            closing: AtomicBool::new(false),
            last: playback.then(|| Mutex::new([None; 6])),
            slots: Default::default(),
            t0: Instant::now(),
            bad_frames: AtomicU64::new(0),
            first_bad: Mutex::new(None),
            device: Mutex::new(DevicePtr(device.ptr())),
            removed: AtomicBool::new(false),
        });
        ctx.watch(&shared);
        let handle = Arc::new(Handle {
            device,
            hub: ctx,
            file,
        });
        let mut src = RealSenseSource {
            info,
            rx,
            shared: shared.clone(),
            callback_refs: 0,
            started: Vec::new(),
            opened: Vec::new(),
            profile_lists: Vec::new(),
            handle: Some(handle.clone()),
            playback,
            warnings,
            stall_timeout: cfg.stall_timeout,
            started_at: Instant::now(),
            last_check: Instant::now(),
            last_sample: Instant::now(),
            got_sample: false,
            stopped_since: None,
            done: None,
            origin: match &handle.file {
                Some(f) => Origin::Bag(PathBuf::from(f.to_string_lossy().into_owned())),
                None => Origin::Serial(serial.clone()),
            },
            cfg: cfg.clone(),
            plugged: Arc::new(AtomicBool::new(true)),
            reconnecting: Reconnecting {
                additions: 0,
                last_scan: None,
                failed_starts: 0,
                resets: 0,
            },
            stop_hung: false,
        };
        // From here on `src`'s Drop stops whatever was started if anything fails.
        for sel in selections {
            let mut ptrs: Vec<*const sys::rs2_stream_profile> =
                sel.chosen.iter().map(|(_, p)| p.ptr).collect();
            // SAFETY: valid sensor and profiles of its own list.
            unsafe {
                rs2!(rs2_open_multiple(
                    sel.sensor.ptr(),
                    ptrs.as_mut_ptr(),
                    ptrs.len() as i32
                ))
            }
            .map_err(|e| SourceError::Open(format!("opening {}: {e}", sel.sensor.name())))?;
            src.profile_lists.push(sel.profiles);
            src.opened.push(sel.sensor);
        }
        // Start every sensor only once all are open. A playback starts reading with the first
        // started sensor and drops the frames of sensors not started yet, so it is paused
        // before (a paused playback stays paused when it starts) and resumed from the start
        // of the file once every sensor is started.
        if playback {
            // SAFETY: valid playback device.
            unsafe { rs2!(rs2_playback_device_pause(handle.device.ptr())) }
                .map_err(SourceError::Open)?;
        }
        while let Some(sensor) = src.opened.pop() {
            // SAFETY: open sensor; the user pointer is a leaked `Arc<Shared>` reference,
            // released in `Drop` after the sensor was stopped and deleted.
            let r = unsafe {
                let user = Arc::into_raw(shared.clone()) as *mut c_void;
                src.callback_refs += 1;
                rs2!(rs2_start(sensor.ptr(), Some(frame_callback), user))
            };
            let name = sensor.name();
            src.started.push(sensor);
            r.map_err(|e| SourceError::Open(format!("starting {name}: {e}")))?;
        }
        if playback {
            // SAFETY: valid playback device.
            unsafe { rs2!(rs2_playback_device_resume(handle.device.ptr())) }
                .map_err(SourceError::Open)?;
        }
        src.last_sample = Instant::now();
        src.started_at = src.last_sample;
        Ok(src)
    }

    /// The first stream that has delivered nothing for the stall timeout (its first frame:
    /// for [`FIRST_FRAME_TIMEOUT`]), said with the streams that go on.
    fn stalled_stream(&self) -> Option<String> {
        let now = self.shared.t0.elapsed();
        let started = self.started_at.saturating_duration_since(self.shared.t0);
        let mut stalled = None;
        let mut flowing = Vec::new();
        for (_, slot) in &self.shared.streams {
            let last = self.shared.slots[slot.index()]
                .last_arrival
                .load(Ordering::Relaxed);
            let (quiet, limit) = match last {
                0 => (
                    now.saturating_sub(started),
                    self.stall_timeout.max(FIRST_FRAME_TIMEOUT),
                ),
                ms => (
                    now.saturating_sub(Duration::from_millis(ms - 1)),
                    self.stall_timeout,
                ),
            };
            let kind = slot.stream().kind().name();
            if quiet >= limit {
                stalled.get_or_insert((kind, quiet));
            } else {
                flowing.push(kind);
            }
        }
        let (kind, quiet) = stalled?;
        let name = &self.info.name;
        let secs = quiet.as_secs_f64();
        Some(if flowing.is_empty() {
            format!("{name}: no frames for {secs:.1} s")
        } else {
            format!(
                "{name}: the {kind} stream stalled: no frames for {secs:.1} s while {} go on",
                flowing.join(", ")
            )
        })
    }

    fn finish(&mut self, r: Result<(), String>) -> Result<Option<Sample>, SourceError> {
        let r = match (self.stop_streaming(), r) {
            (false, r) => r,
            (true, Ok(())) => Err(self.hung_message()),
            (true, Err(m)) => Err(format!("{m}; {}", self.hung_message())),
        };
        self.done = Some(r.clone());
        match r {
            Ok(()) => Ok(None),
            Err(m) => Err(SourceError::Disconnected(m)),
        }
    }

    /// One attempt to open camera `serial` again in this source's context: the device list
    /// is read only when librealsense reported a device plugged in since the last look (or
    /// [`RESCAN_EVERY`] passed); a camera that is listed but fails to start [`RESET_AFTER`]
    /// times in a row gets a `hardware_reset`. `None`: not back yet.
    fn reopen(&mut self, serial: &str) -> Result<Option<RealSenseSource>, SourceError> {
        let Some(hub) = self.handle.as_ref().map(|h| h.hub.clone()) else {
            return Ok(None);
        };
        let r = &mut self.reconnecting;
        let additions = hub.additions();
        let due = r.last_scan.is_none_or(|t| t.elapsed() >= RESCAN_EVERY);
        if additions == r.additions && !due {
            return Ok(None);
        }
        r.additions = additions;
        r.last_scan = Some(Instant::now());
        let Ok(devices) = query_devices(&hub.0.ctx) else {
            return Ok(None);
        };
        let Some((_, device)) = devices.into_iter().find(|(s, _)| s == serial) else {
            return Ok(None); // not enumerated (yet)
        };
        match Self::start(hub.clone(), device, None, &self.cfg) {
            Ok(s) => Ok(Some(s)),
            // Listed but not starting: still booting, or stuck.
            Err(SourceError::Open(_)) => {
                let r = &mut self.reconnecting;
                r.failed_starts += 1;
                if r.failed_starts >= RESET_AFTER {
                    r.failed_starts = 0;
                    r.resets += 1;
                    if let Some((_, d)) = query_devices(&hub.0.ctx)
                        .unwrap_or_default()
                        .into_iter()
                        .find(|(s, _)| s == serial)
                    {
                        // SAFETY: a valid device; it disconnects and comes back.
                        let _ = unsafe { rs2!(rs2_hardware_reset(d.ptr())) };
                    }
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn hung_message(&self) -> String {
        format!(
            "{}: librealsense did not stop the camera within {} s (a stuck camera: unplug it or \
             power-cycle its hub)",
            self.info.name,
            STOP_TIMEOUT.as_secs()
        )
    }

    /// Stops and closes the started sensors on a thread of its own (`rs2_stop` can hang on a
    /// stuck camera) and waits up to [`STOP_TIMEOUT`]. `true`: it hung; the thread keeps the
    /// sensors, the device and the context until librealsense returns.
    fn stop_streaming(&mut self) -> bool {
        self.shared.closing.store(true, Ordering::SeqCst);
        if self.started.is_empty() {
            return false;
        }
        let sensors: Vec<Sensor> = std::mem::take(&mut self.started);
        let keep = self.handle.clone();
        let (tx, rx) = bounded(1);
        let stop = move || {
            for s in &sensors {
                // SAFETY: valid sensors of a device kept alive by `keep`; errors (already
                // stopped, device gone) are irrelevant.
                unsafe {
                    let _ = rs2!(rs2_stop(s.ptr()));
                    let _ = rs2!(rs2_close(s.ptr()));
                }
            }
            // Back to the source, to be dropped in order; if it gave up waiting, dropped here
            // (sensors, then the device and context).
            let _ = tx.send((sensors, keep));
        };
        match std::thread::Builder::new()
            .name(format!("rs-stop-{}", self.info.name))
            .spawn(stop)
        {
            Ok(_) => match rx.recv_timeout(STOP_TIMEOUT) {
                Ok((sensors, keep)) => {
                    self.opened.extend(sensors);
                    drop(keep);
                    false
                }
                Err(_) => {
                    self.stop_hung = true;
                    true
                }
            },
            // No thread: the sensors are dropped (deleted) without stopping them first.
            Err(_) => false,
        }
    }
}

impl Source for RealSenseSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn can_reconnect(&self) -> bool {
        true
    }

    /// Samples of `stream` the channel had no room for, and frames that could not be read.
    fn losses(&self, stream: StreamId) -> SourceLosses {
        Slot::ALL
            .iter()
            .find(|s| s.stream() == stream)
            .map_or_else(SourceLosses::default, |s| {
                let st = &self.shared.slots[s.index()];
                SourceLosses {
                    host_dropped: st.dropped.load(Ordering::Relaxed),
                    bad: st.bad.load(Ordering::Relaxed),
                }
            })
    }

    /// Opens the camera with the same serial number again (a playback: the same file, once
    /// [`PlaybackControl::replug`] was called) with the same configuration. Not there yet is
    /// `Ok(false)`; back with other streams than before is an error.
    fn reconnect(&mut self) -> Result<bool, SourceError> {
        let fresh = match self.origin.clone() {
            Origin::Serial(serial) => match self.reopen(&serial)? {
                Some(s) => s,
                None => return Ok(false),
            },
            Origin::Bag(path) => {
                if !self.plugged.load(Ordering::SeqCst) {
                    return Ok(false);
                }
                Self::open_bag(&path, &self.cfg)?
            }
        };
        let shape = |i: &SourceInfo| {
            i.streams
                .iter()
                .map(|s| (s.id, s.kind, s.width, s.height, s.format, s.fps.to_bits()))
                .collect::<Vec<_>>()
        };
        if shape(&fresh.info) != shape(&self.info) {
            return Err(SourceError::Open(format!(
                "{} came back with other streams than it had",
                self.info.name
            )));
        }
        let plugged = self.plugged.clone();
        *self = fresh;
        self.plugged = plugged;
        Ok(true)
    }

    fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        if let Some(done) = &self.done {
            return match done {
                Ok(()) => Ok(None),
                Err(m) => Err(SourceError::Disconnected(m.clone())),
            };
        }
        loop {
            // Each stream on its own, also while samples of others flow: depth and colour
            // (UVC) and the IMU (HID) take separate paths, and one can stall while another
            // streams on. Not in a lossless playback, whose callbacks wait for the consumer.
            if !self.shared.lossless && self.last_check.elapsed() >= POLL {
                self.last_check = Instant::now();
                if let Some(m) = self.stalled_stream() {
                    if !self.playback_control().is_some_and(|pc| pc.stopped()) {
                        return self.finish(Err(m));
                    }
                }
            }
            match self.rx.recv_timeout(POLL) {
                Ok(s) => {
                    self.last_sample = Instant::now();
                    self.got_sample = true;
                    self.stopped_since = None;
                    return Ok(Some(s));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self.finish(Ok(())),
            }
            let name = &self.info.name;
            if self.shared.removed.load(Ordering::SeqCst) {
                let m = format!("{name}: librealsense reports the camera removed");
                return self.finish(Err(m));
            }
            if let Some(pc) = self.playback_control() {
                if pc.stopped() {
                    // The end of the file (or a stop): done once nothing more arrives.
                    match self.stopped_since {
                        None => self.stopped_since = Some(Instant::now()),
                        Some(t) if t.elapsed() >= 4 * POLL => return self.finish(Ok(())),
                        Some(_) => {}
                    }
                    continue;
                }
                self.stopped_since = None;
            }
            let limit = if self.got_sample {
                self.stall_timeout
            } else {
                self.stall_timeout.max(FIRST_FRAME_TIMEOUT)
            };
            if self.shared.lossless && self.last_sample.elapsed() >= limit {
                let m = format!(
                    "{name}: no frames for {:.1} s",
                    self.last_sample.elapsed().as_secs_f64()
                );
                return self.finish(Err(m));
            }
        }
    }
}

impl Drop for RealSenseSource {
    fn drop(&mut self) {
        self.stop_streaming();
        if self.stop_hung {
            // The stopping thread still uses the sensors, whose profiles point into these
            // lists, and holds the device and context: all of it is left to it.
            std::mem::forget(std::mem::take(&mut self.profile_lists));
            while self.rx.try_recv().is_ok() {}
            return;
        }
        // Sensors, their profile lists, then the device and context; after that no callback
        // can run any more and the leaked references are released.
        self.opened.clear();
        self.profile_lists.clear();
        let handle = self.handle.take();
        // The frame callbacks are certainly gone once the context is: when this source holds
        // the last reference to its device and to its context (a camera of a shared context
        // that others still use leaves its references leaked, a few bytes, always safe).
        let sole = handle
            .as_ref()
            .is_none_or(|h| Arc::strong_count(h) == 1 && Arc::strong_count(&h.hub.0) == 1);
        drop(handle);
        if sole {
            for _ in 0..self.callback_refs {
                // SAFETY: each of these references was leaked with `Arc::into_raw` when a
                // callback was registered; every callback is gone with the context.
                unsafe { Arc::decrement_strong_count(Arc::as_ptr(&self.shared)) };
            }
        }
        // else: a `PlaybackControl` keeps the context (and so the devices-changed callback)
        // alive; the references stay leaked (a few bytes), which is always safe.
        while self.rx.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_2_56() {
        assert!(librealsense_version().starts_with("2.56."));
    }

    #[test]
    fn option_names_resolve() {
        assert_eq!(
            option_id("Depth Units"),
            Some(sys::rs2_option_RS2_OPTION_DEPTH_UNITS)
        );
        assert_eq!(
            option_id("global_time_enabled"),
            Some(sys::rs2_option_RS2_OPTION_GLOBAL_TIME_ENABLED)
        );
        assert_eq!(option_id("no such option"), None);
    }

    #[test]
    fn formats_map() {
        assert_eq!(
            pixel_format(sys::rs2_format_RS2_FORMAT_Z16),
            Some((PixelFormat::Z16, 2))
        );
        assert_eq!(
            rs2_format_of(PixelFormat::Rgb8),
            Some(sys::rs2_format_RS2_FORMAT_RGB8)
        );
        assert_eq!(format_name(sys::rs2_format_RS2_FORMAT_Z16), "Z16");
    }
}
