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

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender};
use realsense_sys as sys;

pub use super::sim::{Pacing, StreamMode};
use super::{stream_id, ColorFrame, DepthFrame, Sample, Source, SourceError, SourceInfo, Timing};
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
    /// Gyro and accel at the camera's default (native) rates, where the camera has an IMU.
    pub imu: bool,
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

fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: librealsense returns NUL-terminated strings that live at least as long as
        // the object they were read from; they are copied at once.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Takes ownership of a librealsense error: its message, or `None` when there is none.
///
/// # Safety
/// `err` is null or an error returned through an `rs2_error**` argument, not yet freed.
unsafe fn take_error(err: *mut sys::rs2_error) -> Option<String> {
    if err.is_null() {
        return None;
    }
    let msg = cstr(sys::rs2_get_error_message(err));
    let func = cstr(sys::rs2_get_failed_function(err));
    let args = cstr(sys::rs2_get_failed_args(err));
    sys::rs2_free_error(err);
    Some(if func.is_empty() {
        msg
    } else {
        format!("{func}({args}): {msg}")
    })
}

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

/// Version of the librealsense that is linked, e.g. `2.56.5`.
pub fn librealsense_version() -> String {
    // SAFETY: no arguments besides the error slot.
    let v = unsafe { rs2!(rs2_get_api_version()) }.unwrap_or(0);
    format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
}

struct Context(NonNull<sys::rs2_context>);
// SAFETY: librealsense contexts are thread-safe.
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

impl Context {
    fn new() -> Result<Context, String> {
        // SAFETY: plain constructor; the result is checked for null.
        let p = unsafe { rs2!(rs2_create_context(sys::RS2_API_VERSION as i32)) }?;
        NonNull::new(p)
            .map(Context)
            .ok_or_else(|| "rs2_create_context returned no context".into())
    }
    fn ptr(&self) -> *mut sys::rs2_context {
        self.0.as_ptr()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: owned, deleted once.
        unsafe { sys::rs2_delete_context(self.0.as_ptr()) }
    }
}

struct Device(NonNull<sys::rs2_device>);
// SAFETY: librealsense devices are thread-safe.
unsafe impl Send for Device {}
unsafe impl Sync for Device {}

impl Device {
    fn ptr(&self) -> *mut sys::rs2_device {
        self.0.as_ptr()
    }

    fn info(&self, what: sys::rs2_camera_info) -> Option<String> {
        // SAFETY: valid device; the string is copied at once.
        unsafe {
            if rs2!(rs2_supports_device_info(self.ptr(), what)).ok()? == 0 {
                return None;
            }
            rs2!(rs2_get_device_info(self.ptr(), what)).ok().map(cstr)
        }
    }

    /// Every camera-info field the device has, by librealsense's name.
    fn infos(&self) -> Vec<(String, String)> {
        (0..sys::rs2_camera_info_RS2_CAMERA_INFO_COUNT)
            .filter_map(|i| {
                let v = self.info(i)?;
                // SAFETY: static string for a valid enum value.
                let name = cstr(unsafe { sys::rs2_camera_info_to_string(i) });
                Some((name, v))
            })
            .collect()
    }

    fn is_playback(&self) -> bool {
        // SAFETY: valid device.
        unsafe {
            rs2!(rs2_is_device_extendable_to(
                self.ptr(),
                sys::rs2_extension_RS2_EXTENSION_PLAYBACK
            ))
        }
        .is_ok_and(|v| v != 0)
    }

    fn sensors(&self) -> Result<Vec<Sensor>, String> {
        // SAFETY: the list is deleted after the sensors were created from it (sensors outlive
        // their list).
        unsafe {
            let list = rs2!(rs2_query_sensors(self.ptr()))?;
            if list.is_null() {
                return Err("rs2_query_sensors returned no list".into());
            }
            let result = (|| {
                let n = rs2!(rs2_get_sensors_count(list))?;
                let mut out = Vec::new();
                for i in 0..n {
                    let s = rs2!(rs2_create_sensor(list, i))?;
                    if let Some(s) = NonNull::new(s) {
                        out.push(Sensor(s));
                    }
                }
                Ok(out)
            })();
            sys::rs2_delete_sensor_list(list);
            result
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: owned, deleted once.
        unsafe { sys::rs2_delete_device(self.0.as_ptr()) }
    }
}

/// Devices currently connected (`rs2_query_devices`), each with its serial number.
fn query_devices(ctx: &Context) -> Result<Vec<(String, Device)>, String> {
    // SAFETY: the list is deleted after the devices were created from it.
    unsafe {
        let list = rs2!(rs2_query_devices(ctx.ptr()))?;
        if list.is_null() {
            return Ok(Vec::new());
        }
        let result = (|| {
            let n = rs2!(rs2_get_device_count(list))?;
            let mut out = Vec::new();
            for i in 0..n {
                let d = rs2!(rs2_create_device(list, i))?;
                if let Some(d) = NonNull::new(d) {
                    let d = Device(d);
                    let serial = d
                        .info(sys::rs2_camera_info_RS2_CAMERA_INFO_SERIAL_NUMBER)
                        .unwrap_or_default();
                    out.push((serial, d));
                }
            }
            Ok(out)
        })();
        sys::rs2_delete_device_list(list);
        result
    }
}

struct Sensor(NonNull<sys::rs2_sensor>);
// SAFETY: librealsense sensors are thread-safe.
unsafe impl Send for Sensor {}
unsafe impl Sync for Sensor {}

impl Sensor {
    fn ptr(&self) -> *mut sys::rs2_sensor {
        self.0.as_ptr()
    }
    fn options_ptr(&self) -> *const sys::rs2_options {
        self.0.as_ptr() as *const sys::rs2_options
    }

    fn name(&self) -> String {
        let what = sys::rs2_camera_info_RS2_CAMERA_INFO_NAME;
        // SAFETY: valid sensor; the string is copied at once.
        unsafe {
            match rs2!(rs2_supports_sensor_info(self.ptr(), what)) {
                Ok(v) if v != 0 => rs2!(rs2_get_sensor_info(self.ptr(), what))
                    .map(cstr)
                    .unwrap_or_default(),
                _ => String::new(),
            }
        }
    }

    fn option(&self, o: sys::rs2_option) -> Option<f32> {
        // SAFETY: valid sensor (a sensor is an `rs2_options`).
        unsafe {
            if rs2!(rs2_supports_option(self.options_ptr(), o)).ok()? == 0 {
                return None;
            }
            rs2!(rs2_get_option(self.options_ptr(), o)).ok()
        }
    }

    fn set_option(&self, o: sys::rs2_option, v: f32) -> Result<bool, String> {
        // SAFETY: valid sensor.
        unsafe {
            if rs2!(rs2_supports_option(self.options_ptr(), o))? == 0 {
                return Ok(false);
            }
            if rs2!(rs2_is_option_read_only(self.options_ptr(), o))? != 0 {
                return Ok(false);
            }
            rs2!(rs2_set_option(self.options_ptr(), o, v))?;
            Ok(true)
        }
    }

    /// Every readable option and its value, by librealsense's name.
    fn options(&self) -> Vec<(String, f32)> {
        let mut out = Vec::new();
        // SAFETY: the list is deleted at the end; option ids come from it.
        unsafe {
            let Ok(list) = rs2!(rs2_get_options_list(self.options_ptr())) else {
                return out;
            };
            if list.is_null() {
                return out;
            }
            let n = rs2!(rs2_get_options_list_size(list)).unwrap_or(0);
            for i in 0..n {
                let Ok(o) = rs2!(rs2_get_option_from_list(list, i)) else {
                    continue;
                };
                if let Ok(v) = rs2!(rs2_get_option(self.options_ptr(), o)) {
                    out.push((cstr(sys::rs2_option_to_string(o)), v));
                }
            }
            sys::rs2_delete_options_list(list);
        }
        out
    }

    fn profiles(&self) -> Result<ProfileList, String> {
        // SAFETY: valid sensor; the list is owned by the returned value.
        unsafe {
            let list = rs2!(rs2_get_stream_profiles(self.ptr()))?;
            let list = NonNull::new(list).ok_or("rs2_get_stream_profiles returned no list")?;
            let mut out = ProfileList {
                list,
                profiles: Vec::new(),
            };
            let n = rs2!(rs2_get_stream_profiles_count(list.as_ptr()))?;
            for i in 0..n {
                let p = rs2!(rs2_get_stream_profile(list.as_ptr(), i))?;
                if !p.is_null() {
                    out.profiles.push(Profile::read(p)?);
                }
            }
            Ok(out)
        }
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        // SAFETY: owned, deleted once.
        unsafe { sys::rs2_delete_sensor(self.0.as_ptr()) }
    }
}

/// A sensor's stream profiles; the [`Profile`] pointers are valid while this lives.
struct ProfileList {
    list: NonNull<sys::rs2_stream_profile_list>,
    profiles: Vec<Profile>,
}
// SAFETY: the list is immutable once read.
unsafe impl Send for ProfileList {}
unsafe impl Sync for ProfileList {}

impl Drop for ProfileList {
    fn drop(&mut self) {
        // SAFETY: owned, deleted once.
        unsafe { sys::rs2_delete_stream_profiles_list(self.list.as_ptr()) }
    }
}

#[derive(Clone, Copy, Debug)]
struct Profile {
    ptr: *const sys::rs2_stream_profile,
    stream: sys::rs2_stream,
    format: sys::rs2_format,
    index: i32,
    uid: i32,
    fps: i32,
    width: i32,
    height: i32,
    default: bool,
}
// SAFETY: read-only handle into a `ProfileList` that outlives every use.
unsafe impl Send for Profile {}
unsafe impl Sync for Profile {}

impl Profile {
    /// # Safety
    /// `p` is a valid stream profile.
    unsafe fn read(p: *const sys::rs2_stream_profile) -> Result<Profile, String> {
        let (mut stream, mut format, mut index, mut uid, mut fps) = (0, 0, 0, 0, 0);
        rs2!(rs2_get_stream_profile_data(
            p,
            &mut stream,
            &mut format,
            &mut index,
            &mut uid,
            &mut fps
        ))?;
        let (mut width, mut height) = (0, 0);
        let video = rs2!(rs2_stream_profile_is(
            p,
            sys::rs2_extension_RS2_EXTENSION_VIDEO_PROFILE
        ))
        .unwrap_or(0)
            != 0;
        if video {
            rs2!(rs2_get_video_stream_resolution(p, &mut width, &mut height))?;
        }
        let default = rs2!(rs2_is_stream_profile_default(p)).unwrap_or(0) != 0;
        Ok(Profile {
            ptr: p,
            stream,
            format,
            index,
            uid,
            fps,
            width,
            height,
            default,
        })
    }

    fn intrinsics(&self) -> Option<Intrinsics> {
        // SAFETY: valid profile; plain-old-data out parameter.
        let k = unsafe {
            let mut k: sys::rs2_intrinsics = std::mem::zeroed();
            rs2!(rs2_get_video_stream_intrinsics(self.ptr, &mut k)).ok()?;
            k
        };
        Some(Intrinsics {
            fx: k.fx,
            fy: k.fy,
            ppx: k.ppx,
            ppy: k.ppy,
            model: Distortion::from_code(k.model as u8),
            coeffs: k.coeffs.to_vec(),
        })
    }

    /// The rigid transform from this stream to `to` (librealsense convention).
    fn extrinsics_to(&self, to: &Profile, to_stream: u8) -> Option<Extrinsics> {
        // SAFETY: valid profiles; plain-old-data out parameter.
        let e = unsafe {
            let mut e: sys::rs2_extrinsics = std::mem::zeroed();
            rs2!(rs2_get_extrinsics(self.ptr, to.ptr, &mut e)).ok()?;
            e
        };
        Some(Extrinsics {
            to_stream,
            rotation: e.rotation,
            translation: e.translation,
        })
    }

    fn motion_intrinsics(&self) -> Option<String> {
        // SAFETY: valid profile; plain-old-data out parameter.
        let m = unsafe {
            let mut m: sys::rs2_motion_device_intrinsic = std::mem::zeroed();
            rs2!(rs2_get_motion_intrinsics(self.ptr, &mut m)).ok()?;
            m
        };
        Some(
            serde_json::json!({
                "data": m.data, "noise_variances": m.noise_variances,
                "bias_variances": m.bias_variances,
            })
            .to_string(),
        )
    }
}

fn format_name(f: sys::rs2_format) -> String {
    // SAFETY: static string for any value.
    cstr(unsafe { sys::rs2_format_to_string(f) })
}

fn stream_name(s: sys::rs2_stream) -> String {
    // SAFETY: static string for any value.
    cstr(unsafe { sys::rs2_stream_to_string(s) })
}

fn pixel_format(f: sys::rs2_format) -> Option<(PixelFormat, usize)> {
    Some(match f {
        sys::rs2_format_RS2_FORMAT_Z16 => (PixelFormat::Z16, 2),
        sys::rs2_format_RS2_FORMAT_RGB8 => (PixelFormat::Rgb8, 3),
        sys::rs2_format_RS2_FORMAT_BGR8 => (PixelFormat::Bgr8, 3),
        sys::rs2_format_RS2_FORMAT_RGBA8 => (PixelFormat::Rgba8, 4),
        sys::rs2_format_RS2_FORMAT_BGRA8 => (PixelFormat::Bgra8, 4),
        sys::rs2_format_RS2_FORMAT_YUYV => (PixelFormat::Yuyv, 2),
        sys::rs2_format_RS2_FORMAT_Y8 => (PixelFormat::Y8, 1),
        sys::rs2_format_RS2_FORMAT_Y16 => (PixelFormat::Y16, 2),
        _ => return None,
    })
}

fn rs2_format_of(f: PixelFormat) -> Option<sys::rs2_format> {
    Some(match f {
        PixelFormat::Rgb8 => sys::rs2_format_RS2_FORMAT_RGB8,
        PixelFormat::Bgr8 => sys::rs2_format_RS2_FORMAT_BGR8,
        PixelFormat::Rgba8 => sys::rs2_format_RS2_FORMAT_RGBA8,
        PixelFormat::Bgra8 => sys::rs2_format_RS2_FORMAT_BGRA8,
        PixelFormat::Yuyv => sys::rs2_format_RS2_FORMAT_YUYV,
        _ => return None,
    })
}

/// The option id of a librealsense option name (`Visual Preset`, `Laser Power`, ...), matched
/// case-insensitively, with `_` and ` ` equivalent.
/// Which sensors an option of [`RealSenseConfig::options`] is meant for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OptionTarget {
    Any,
    Depth,
    Color,
    Motion,
}

/// `depth:Exposure` -> (Depth, "Exposure"); `Laser Power` -> (Any, "Laser Power").
fn option_target(name: &str) -> (OptionTarget, &str) {
    for (prefix, t) in [
        ("depth:", OptionTarget::Depth),
        ("color:", OptionTarget::Color),
        ("motion:", OptionTarget::Motion),
    ] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return (t, rest.trim());
        }
    }
    (OptionTarget::Any, name.trim())
}

fn option_id(name: &str) -> Option<sys::rs2_option> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('_', " ");
    let want = norm(name);
    (0..sys::rs2_option_RS2_OPTION_COUNT).find(|&o| {
        // SAFETY: static string for a valid enum value.
        norm(&cstr(unsafe { sys::rs2_option_to_string(o) })) == want
    })
}

// ---------------------------------------------------------------------------------------
// Callbacks: librealsense threads -> channel
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Depth,
    Color,
    Gyro,
    Accel,
}

impl Slot {
    fn id(self) -> u8 {
        match self {
            Slot::Depth => stream_id::DEPTH,
            Slot::Color => stream_id::COLOR,
            Slot::Gyro => stream_id::GYRO,
            Slot::Accel => stream_id::ACCEL,
        }
    }
}

/// Frame number and timestamp of the last sample delivered, per [`Slot`].
type LastDelivered = [Option<(u64, f64)>; 4];

/// State shared with librealsense's callbacks. Lives until every callback that may use it is
/// gone (see `Drop for RealSenseSource`).
struct Shared {
    tx: Sender<Sample>,
    /// Unique id of each opened stream profile and what it is.
    streams: Vec<(i32, Slot)>,
    /// Block (non-real-time playback) instead of dropping when the channel is full.
    lossless: bool,
    /// Frame metadata ids and names, for asking each frame what it has.
    metadata_names: Vec<(sys::rs2_frame_metadata_value, String)>,
    /// Set before streaming is stopped: a blocked lossless send gives up.
    closing: AtomicBool,
    /// Playback: the frame number and timestamp last delivered per slot (a frame read while
    /// the playback was starting may come again when it resumes from the start).
    last: Option<Mutex<LastDelivered>>,
    /// Samples dropped because the channel was full.
    dropped: AtomicU64,
    /// Frames that could not be read, and the first reason.
    bad_frames: AtomicU64,
    first_bad: Mutex<Option<String>>,
    /// The device, for recognising it in the devices-changed callback.
    device: *const sys::rs2_device,
    /// librealsense reported the device removed.
    removed: AtomicBool,
}
// SAFETY: `device` is only passed to thread-safe librealsense calls while the device lives.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn note_bad(&self, why: String) {
        self.bad_frames.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_bad.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(why);
    }

    fn deliver(&self, sample: Sample) {
        if self.lossless {
            let mut s = sample;
            loop {
                match self.tx.send_timeout(s, Duration::from_millis(50)) {
                    Ok(()) => return,
                    Err(SendTimeoutError::Timeout(back)) => {
                        if self.closing.load(Ordering::Relaxed) {
                            return;
                        }
                        s = back;
                    }
                    Err(SendTimeoutError::Disconnected(_)) => return,
                }
            }
        } else if self.tx.try_send(sample).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Copies one frame into a sample and delivers it.
    ///
    /// # Safety
    /// `frame` is a valid frame, released by the caller afterwards.
    unsafe fn on_frame(&self, frame: *mut sys::rs2_frame) -> Result<(), String> {
        let profile = rs2!(rs2_get_frame_stream_profile(frame))?;
        if profile.is_null() {
            return Err("frame without a stream profile".into());
        }
        let (mut stream, mut format, mut index, mut uid, mut fps) = (0, 0, 0, 0, 0);
        rs2!(rs2_get_stream_profile_data(
            profile,
            &mut stream,
            &mut format,
            &mut index,
            &mut uid,
            &mut fps
        ))?;
        let Some(&(_, slot)) = self.streams.iter().find(|(u, _)| *u == uid) else {
            return Ok(()); // a stream that was not asked for
        };
        let number = rs2!(rs2_get_frame_number(frame))?;
        let ts = rs2!(rs2_get_frame_timestamp(frame))?;
        if let Some(last) = &self.last {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            let i = slot.id() as usize;
            if last[i] == Some((number, ts)) {
                return Ok(()); // the same frame again
            }
            last[i] = Some((number, ts));
        }
        let domain = rs2!(rs2_get_frame_timestamp_domain(frame))?;
        let mut metadata = Vec::new();
        let mut arrival_ms = None;
        for (id, name) in &self.metadata_names {
            if rs2!(rs2_supports_frame_metadata(frame, *id)).unwrap_or(0) == 0 {
                continue;
            }
            if let Ok(v) = rs2!(rs2_get_frame_metadata(frame, *id)) {
                if *id == sys::rs2_frame_metadata_value_RS2_FRAME_METADATA_TIME_OF_ARRIVAL {
                    arrival_ms = Some(v);
                }
                metadata.push((name.clone(), v));
            }
        }
        let host_ts_us = match arrival_ms {
            Some(ms) if ms >= MIN_WALL_CLOCK_MS => ms.saturating_mul(1000),
            _ => crate::container::now_utc_us(),
        };
        let timing = Timing {
            frame_number: number,
            device_ts_ms: ts,
            ts_domain: if domain < sys::rs2_timestamp_domain_RS2_TIMESTAMP_DOMAIN_COUNT {
                domain as u8
            } else {
                ts_domain::NONE
            },
            host_ts_us,
        };
        let data = rs2!(rs2_get_frame_data(frame))? as *const u8;
        let size = rs2!(rs2_get_frame_data_size(frame))?.max(0) as usize;
        if data.is_null() {
            return Err(format!("{slot:?} frame {number} has no data"));
        }
        let bytes = std::slice::from_raw_parts(data, size);
        let sample = match slot {
            Slot::Depth | Slot::Color => {
                let w = rs2!(rs2_get_frame_width(frame))?.max(0) as usize;
                let h = rs2!(rs2_get_frame_height(frame))?.max(0) as usize;
                let stride = rs2!(rs2_get_frame_stride_in_bytes(frame))?.max(0) as usize;
                let bpp = pixel_format(format)
                    .map(|(_, b)| b)
                    .ok_or_else(|| format!("unsupported pixel format {}", format_name(format)))?;
                let row = w * bpp;
                if h > 0 && (stride < row || stride * (h - 1) + row > bytes.len()) {
                    return Err(format!(
                        "{slot:?} frame {number}: {w}x{h}, stride {stride}, only {} bytes",
                        bytes.len()
                    ));
                }
                let rows = (0..h).map(|y| &bytes[y * stride..y * stride + row]);
                if slot == Slot::Depth {
                    let mut out = Vec::with_capacity(w * h);
                    for r in rows {
                        out.extend(r.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])));
                    }
                    Sample::Depth(DepthFrame {
                        timing,
                        data: out,
                        metadata,
                    })
                } else {
                    let mut out = Vec::with_capacity(row * h);
                    for r in rows {
                        out.extend_from_slice(r);
                    }
                    Sample::Color(ColorFrame {
                        timing,
                        data: out,
                        metadata,
                    })
                }
            }
            Slot::Gyro | Slot::Accel => {
                if bytes.len() < 12 {
                    return Err(format!("motion frame {number} has {} bytes", bytes.len()));
                }
                let f = |i: usize| f32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
                Sample::Imu {
                    kind: if slot == Slot::Gyro {
                        StreamKind::Gyro
                    } else {
                        StreamKind::Accel
                    },
                    sample: ImuSample {
                        frame_number: number,
                        device_ts_ms: ts,
                        host_ts_us,
                        xyz: [f(0), f(4), f(8)],
                    },
                }
            }
        };
        self.deliver(sample);
        Ok(())
    }
}

/// librealsense's frame callback (runs on librealsense's threads).
unsafe extern "C" fn frame_callback(frame: *mut sys::rs2_frame, user: *mut c_void) {
    if frame.is_null() {
        return;
    }
    if !user.is_null() {
        // SAFETY: `user` is the `Shared` registered with this callback, alive until the
        // sensors are stopped and deleted.
        let shared = &*(user as *const Shared);
        match std::panic::catch_unwind(AssertUnwindSafe(|| shared.on_frame(frame))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => shared.note_bad(e),
            Err(_) => shared.note_bad("panic while reading a frame".into()),
        }
    }
    // The callback owns the frame.
    sys::rs2_release_frame(frame);
}

/// librealsense's devices-changed callback: notes when our device is among the removed ones.
unsafe extern "C" fn devices_changed_callback(
    removed: *mut sys::rs2_device_list,
    added: *mut sys::rs2_device_list,
    user: *mut c_void,
) {
    if !user.is_null() && !removed.is_null() {
        // SAFETY: `user` is the `Shared` registered with the context, alive until the context
        // is deleted.
        let shared = &*(user as *const Shared);
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if rs2!(rs2_device_list_contains(removed, shared.device)).unwrap_or(0) != 0 {
                shared.removed.store(true, Ordering::SeqCst);
            }
        }));
    }
    // The callee owns both lists.
    if !removed.is_null() {
        sys::rs2_delete_device_list(removed);
    }
    if !added.is_null() {
        sys::rs2_delete_device_list(added);
    }
}

// ---------------------------------------------------------------------------------------
// The source
// ---------------------------------------------------------------------------------------

/// Context and device of an open source, shared with [`PlaybackControl`].
struct Handle {
    // Field order is drop order: device before context.
    device: Device,
    ctx: Context,
    /// The `.bag` of a playback device.
    file: Option<CString>,
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
                    self.handle.ctx.ptr(),
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
    /// Opens the connected camera with serial number `serial`.
    pub fn open(serial: &str, cfg: &RealSenseConfig) -> Result<RealSenseSource, SourceError> {
        let open = |m: String| SourceError::Open(format!("RealSense {serial}: {m}"));
        let ctx = Context::new().map_err(open)?;
        let devices = query_devices(&ctx).map_err(open)?;
        let serials: Vec<String> = devices.iter().map(|(s, _)| s.clone()).collect();
        let Some((_, device)) = devices.into_iter().find(|(s, _)| s == serial) else {
            return Err(open(if serials.is_empty() {
                "no RealSense devices found".into()
            } else {
                format!("not connected (connected: {})", serials.join(", "))
            }));
        };
        Self::start(ctx, device, None, cfg).map_err(|e| match e {
            SourceError::Open(m) => open(m),
            e => e,
        })
    }

    /// Serial numbers of the connected cameras, sorted. No camera is an error.
    pub fn connected_serials() -> Result<Vec<String>, SourceError> {
        let ctx = Context::new().map_err(SourceError::Open)?;
        let mut serials: Vec<String> = query_devices(&ctx)
            .map_err(SourceError::Open)?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        drop(ctx);
        serials.sort();
        serials.dedup();
        if serials.is_empty() {
            return Err(SourceError::Open(
                "no RealSense devices found (is a camera plugged in? `rsrec devices` lists \
                 what librealsense sees)"
                    .into(),
            ));
        }
        Ok(serials)
    }

    /// Opens every connected camera with the same configuration. No camera is an error.
    pub fn open_all(cfg: &RealSenseConfig) -> Result<Vec<RealSenseSource>, SourceError> {
        Self::connected_serials()?
            .iter()
            .map(|s| Self::open(s, cfg))
            .collect()
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
        let ctx = Context::new().map_err(open)?;
        // SAFETY: valid context and NUL-terminated path; the device is owned below.
        let dev =
            unsafe { rs2!(rs2_context_add_device(ctx.ptr(), file.as_ptr())) }.map_err(open)?;
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
        self.shared.dropped.load(Ordering::Relaxed)
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
        ctx: Context,
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
        if let Some(usb) = get("Usb Type Descriptor") {
            if usb.starts_with('2') {
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

        // Choose the stream profiles, sensor by sensor.
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
            let pick_video = |stream: sys::rs2_stream, format: sys::rs2_format, m: &StreamMode| {
                ps.iter().copied().find(|p| {
                    p.stream == stream
                        && p.format == format
                        && p.width as u32 == m.width
                        && p.height as u32 == m.height
                        && (p.fps as f64 - m.fps).abs() < 0.5
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
                            p.stream == stream
                                && p.format == sys::rs2_format_RS2_FORMAT_MOTION_XYZ32F
                        })
                        .collect();
                    // The default profile is the native rate; else the lowest rate.
                    let p = candidates
                        .iter()
                        .find(|p| p.default)
                        .or_else(|| candidates.iter().min_by_key(|p| p.fps));
                    if let Some(p) = p {
                        chosen.push((slot, *p));
                    }
                }
            }
            // Options: global time, then the user's.
            if !playback {
                if cfg.global_time {
                    let _ = sensor.set_option(sys::rs2_option_RS2_OPTION_GLOBAL_TIME_ENABLED, 1.0);
                }
                let role = if has(sys::rs2_stream_RS2_STREAM_DEPTH) {
                    OptionTarget::Depth
                } else if has(sys::rs2_stream_RS2_STREAM_COLOR) {
                    OptionTarget::Color
                } else if has(sys::rs2_stream_RS2_STREAM_GYRO)
                    || has(sys::rs2_stream_RS2_STREAM_ACCEL)
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
            warnings.push(format!(
                "camera {label} has no IMU (a D435i has one): recording without gyro/accel"
            ));
        }

        // Stream descriptors, in stream-id order.
        let mut streams = Vec::new();
        let mut sorted = all.clone();
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
            };
            let image = matches!(slot, Slot::Depth | Slot::Color);
            if !image {
                if let Some(m) = p.motion_intrinsics() {
                    properties.push(("motion_intrinsics".into(), m));
                }
            }
            streams.push(StreamDescriptor {
                id: slot.id(),
                kind,
                name: kind.name().into(),
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
                    p.extrinsics_to(&depth_profile, stream_id::DEPTH)
                },
                properties,
            });
        }

        let model = name
            .strip_prefix("Intel RealSense ")
            .map(str::to_string)
            .or_else(|| get("Product Line"))
            .unwrap_or_default();
        let mut properties = infos.clone();
        properties.push(("librealsense".into(), librealsense_version()));
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
            last: playback.then(|| Mutex::new([None; 4])),
            dropped: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
            first_bad: Mutex::new(None),
            device: device.ptr(),
            removed: AtomicBool::new(false),
        });
        let handle = Arc::new(Handle { device, ctx, file });
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
        };
        // From here on `src`'s Drop stops whatever was started if anything fails.
        // SAFETY: the registered pointer is a leaked `Arc<Shared>` reference, released in
        // `Drop` after the context is gone.
        unsafe {
            let user = Arc::into_raw(shared.clone()) as *mut c_void;
            src.callback_refs += 1;
            rs2!(rs2_set_devices_changed_callback(
                handle.ctx.ptr(),
                Some(devices_changed_callback),
                user
            ))
            .map_err(SourceError::Open)?;
        }
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
        Ok(src)
    }

    fn finish(&mut self, r: Result<(), String>) -> Result<Option<Sample>, SourceError> {
        self.stop_streaming();
        self.done = Some(r.clone());
        match r {
            Ok(()) => Ok(None),
            Err(m) => Err(SourceError::Disconnected(m)),
        }
    }

    fn stop_streaming(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        for s in self.started.drain(..) {
            // SAFETY: valid sensors; errors (already stopped, device gone) are irrelevant.
            unsafe {
                let _ = rs2!(rs2_stop(s.ptr()));
                let _ = rs2!(rs2_close(s.ptr()));
            }
            self.opened.push(s);
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

    /// Opens the camera with the same serial number again (a playback: the same file, once
    /// [`PlaybackControl::replug`] was called) with the same configuration. Not there yet is
    /// `Ok(false)`; back with other streams than before is an error.
    fn reconnect(&mut self) -> Result<bool, SourceError> {
        let fresh = match &self.origin {
            Origin::Serial(serial) => match Self::open(serial, &self.cfg) {
                Ok(s) => s,
                // Not enumerated yet, or still booting.
                Err(SourceError::Open(_)) => return Ok(false),
                Err(e) => return Err(e),
            },
            Origin::Bag(path) => {
                if !self.plugged.load(Ordering::SeqCst) {
                    return Ok(false);
                }
                Self::open_bag(path, &self.cfg)?
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
            if self.last_sample.elapsed() >= limit {
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
        // Sensors, their profile lists, then the device and context; after that no callback
        // can run any more and the leaked references are released.
        self.opened.clear();
        self.profile_lists.clear();
        let handle = self.handle.take();
        let sole = handle.as_ref().is_none_or(|h| Arc::strong_count(h) == 1);
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

fn modes_text(ps: &[Profile], stream: sys::rs2_stream) -> String {
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
