//! Callbacks: librealsense's threads hand frames and device changes to the source through a
//! bounded channel; nothing here blocks or panics across the C boundary.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Depth,
    Color,
    Gyro,
    Accel,
}

impl Slot {
    pub(super) fn id(self) -> u8 {
        match self {
            Slot::Depth => stream_id::DEPTH,
            Slot::Color => stream_id::COLOR,
            Slot::Gyro => stream_id::GYRO,
            Slot::Accel => stream_id::ACCEL,
        }
    }
}

/// Frame number and timestamp of the last sample delivered, per [`Slot`].
pub(super) type LastDelivered = [Option<(u64, f64)>; 4];

/// State shared with librealsense's callbacks. Lives until every callback that may use it is
/// gone (see `Drop for RealSenseSource`).
pub(super) struct Shared {
    pub(super) tx: Sender<Sample>,
    /// Unique id of each opened stream profile and what it is.
    pub(super) streams: Vec<(i32, Slot)>,
    /// Block (non-real-time playback) instead of dropping when the channel is full.
    pub(super) lossless: bool,
    /// Frame metadata ids and names, for asking each frame what it has.
    pub(super) metadata_names: Vec<(sys::rs2_frame_metadata_value, String)>,
    /// Set before streaming is stopped: a blocked lossless send gives up.
    pub(super) closing: AtomicBool,
    /// Playback: the frame number and timestamp last delivered per slot (a frame read while
    /// the playback was starting may come again when it resumes from the start).
    pub(super) last: Option<Mutex<LastDelivered>>,
    /// Samples dropped because the channel was full.
    pub(super) dropped: AtomicU64,
    /// Frames that could not be read, and the first reason.
    pub(super) bad_frames: AtomicU64,
    pub(super) first_bad: Mutex<Option<String>>,
    /// The device, for recognising it in the devices-changed callback.
    pub(super) device: *const sys::rs2_device,
    /// librealsense reported the device removed.
    pub(super) removed: AtomicBool,
}
// SAFETY: `device` is only passed to thread-safe librealsense calls while the device lives.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    pub(super) fn note_bad(&self, why: String) {
        self.bad_frames.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_bad.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(why);
    }

    pub(super) fn deliver(&self, sample: Sample) {
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
    pub(super) unsafe fn on_frame(&self, frame: *mut sys::rs2_frame) -> Result<(), String> {
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
pub(super) unsafe extern "C" fn frame_callback(frame: *mut sys::rs2_frame, user: *mut c_void) {
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
pub(super) unsafe extern "C" fn devices_changed_callback(
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
