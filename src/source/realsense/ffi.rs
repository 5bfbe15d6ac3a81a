//! The librealsense C API: errors, owned handles (context, device, sensor, stream
//! profiles) that free themselves on drop, and conversions between its enums and ours.

use super::*;

pub(super) fn cstr(p: *const c_char) -> String {
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
pub(super) unsafe fn take_error(err: *mut sys::rs2_error) -> Option<String> {
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

/// Version of the librealsense that is linked, e.g. `2.56.5`.
pub fn librealsense_version() -> String {
    // SAFETY: no arguments besides the error slot.
    let v = unsafe { rs2!(rs2_get_api_version()) }.unwrap_or(0);
    format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
}

pub(super) struct Context(pub(super) NonNull<sys::rs2_context>);
// SAFETY: librealsense contexts are thread-safe.
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

impl Context {
    pub(super) fn new() -> Result<Context, String> {
        // SAFETY: plain constructor; the result is checked for null.
        let p = unsafe { rs2!(rs2_create_context(sys::RS2_API_VERSION as i32)) }?;
        NonNull::new(p)
            .map(Context)
            .ok_or_else(|| "rs2_create_context returned no context".into())
    }
    pub(super) fn ptr(&self) -> *mut sys::rs2_context {
        self.0.as_ptr()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: owned, deleted once.
        unsafe { sys::rs2_delete_context(self.0.as_ptr()) }
    }
}

pub(super) struct Device(pub(super) NonNull<sys::rs2_device>);
// SAFETY: librealsense devices are thread-safe.
unsafe impl Send for Device {}
unsafe impl Sync for Device {}

impl Device {
    pub(super) fn ptr(&self) -> *mut sys::rs2_device {
        self.0.as_ptr()
    }

    pub(super) fn info(&self, what: sys::rs2_camera_info) -> Option<String> {
        // SAFETY: valid device; the string is copied at once.
        unsafe {
            if rs2!(rs2_supports_device_info(self.ptr(), what)).ok()? == 0 {
                return None;
            }
            rs2!(rs2_get_device_info(self.ptr(), what)).ok().map(cstr)
        }
    }

    /// Every camera-info field the device has, by librealsense's name.
    pub(super) fn infos(&self) -> Vec<(String, String)> {
        (0..sys::rs2_camera_info_RS2_CAMERA_INFO_COUNT)
            .filter_map(|i| {
                let v = self.info(i)?;
                // SAFETY: static string for a valid enum value.
                let name = cstr(unsafe { sys::rs2_camera_info_to_string(i) });
                Some((name, v))
            })
            .collect()
    }

    pub(super) fn is_playback(&self) -> bool {
        // SAFETY: valid device.
        unsafe {
            rs2!(rs2_is_device_extendable_to(
                self.ptr(),
                sys::rs2_extension_RS2_EXTENSION_PLAYBACK
            ))
        }
        .is_ok_and(|v| v != 0)
    }

    pub(super) fn sensors(&self) -> Result<Vec<Sensor>, String> {
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
pub(super) fn query_devices(ctx: &Context) -> Result<Vec<(String, Device)>, String> {
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

pub(super) struct Sensor(pub(super) NonNull<sys::rs2_sensor>);
// SAFETY: librealsense sensors are thread-safe.
unsafe impl Send for Sensor {}
unsafe impl Sync for Sensor {}

impl Sensor {
    pub(super) fn ptr(&self) -> *mut sys::rs2_sensor {
        self.0.as_ptr()
    }
    pub(super) fn options_ptr(&self) -> *const sys::rs2_options {
        self.0.as_ptr() as *const sys::rs2_options
    }

    pub(super) fn name(&self) -> String {
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

    pub(super) fn option(&self, o: sys::rs2_option) -> Option<f32> {
        // SAFETY: valid sensor (a sensor is an `rs2_options`).
        unsafe {
            if rs2!(rs2_supports_option(self.options_ptr(), o)).ok()? == 0 {
                return None;
            }
            rs2!(rs2_get_option(self.options_ptr(), o)).ok()
        }
    }

    pub(super) fn set_option(&self, o: sys::rs2_option, v: f32) -> Result<bool, String> {
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
    pub(super) fn options(&self) -> Vec<(String, f32)> {
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

    pub(super) fn profiles(&self) -> Result<ProfileList, String> {
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
pub(super) struct ProfileList {
    pub(super) list: NonNull<sys::rs2_stream_profile_list>,
    pub(super) profiles: Vec<Profile>,
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
pub(super) struct Profile {
    pub(super) ptr: *const sys::rs2_stream_profile,
    pub(super) stream: sys::rs2_stream,
    pub(super) format: sys::rs2_format,
    pub(super) index: i32,
    pub(super) uid: i32,
    pub(super) fps: i32,
    pub(super) width: i32,
    pub(super) height: i32,
    pub(super) default: bool,
}
// SAFETY: read-only handle into a `ProfileList` that outlives every use.
unsafe impl Send for Profile {}
unsafe impl Sync for Profile {}

impl Profile {
    /// # Safety
    /// `p` is a valid stream profile.
    pub(super) unsafe fn read(p: *const sys::rs2_stream_profile) -> Result<Profile, String> {
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

    pub(super) fn intrinsics(&self) -> Option<Intrinsics> {
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
    pub(super) fn extrinsics_to(&self, to: &Profile, to_stream: u8) -> Option<Extrinsics> {
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

    pub(super) fn motion_intrinsics(&self) -> Option<String> {
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

pub(super) fn format_name(f: sys::rs2_format) -> String {
    // SAFETY: static string for any value.
    cstr(unsafe { sys::rs2_format_to_string(f) })
}

pub(super) fn stream_name(s: sys::rs2_stream) -> String {
    // SAFETY: static string for any value.
    cstr(unsafe { sys::rs2_stream_to_string(s) })
}

pub(super) fn pixel_format(f: sys::rs2_format) -> Option<(PixelFormat, usize)> {
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

pub(super) fn rs2_format_of(f: PixelFormat) -> Option<sys::rs2_format> {
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
pub(super) enum OptionTarget {
    Any,
    Depth,
    Color,
    Motion,
}

/// `depth:Exposure` -> (Depth, "Exposure"); `Laser Power` -> (Any, "Laser Power").
pub(super) fn option_target(name: &str) -> (OptionTarget, &str) {
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

pub(super) fn option_id(name: &str) -> Option<sys::rs2_option> {
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
