//! Callbacks: librealsense's threads hand frames and device changes to the source through a
//! bounded channel; nothing here blocks or panics across the C boundary.

use super::*;
use crate::source::renumber;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Depth,
    Color,
    Gyro,
    Accel,
    /// Infrared of the left imager (librealsense stream index 1).
    IrLeft,
    /// Infrared of the right imager (index 2).
    IrRight,
}

impl Slot {
    pub(super) const ALL: [Slot; 6] = [
        Slot::Depth,
        Slot::Color,
        Slot::Gyro,
        Slot::Accel,
        Slot::IrLeft,
        Slot::IrRight,
    ];

    /// The infrared slot of librealsense's stream index `index` (1 left, 2 right).
    pub(super) fn infrared(index: i32) -> Option<Slot> {
        match index {
            1 => Some(Slot::IrLeft),
            2 => Some(Slot::IrRight),
            _ => None,
        }
    }

    /// Depth, colour and infrared: frames with pixels.
    pub(super) fn is_image(self) -> bool {
        !matches!(self, Slot::Gyro | Slot::Accel)
    }

    /// Index into per-slot arrays.
    pub(super) fn index(self) -> usize {
        self as usize
    }

    pub(super) fn stream(self) -> StreamId {
        match self {
            Slot::Depth => StreamId::Depth,
            Slot::Color => StreamId::Color,
            Slot::Gyro => StreamId::Gyro,
            Slot::Accel => StreamId::Accel,
            Slot::IrLeft => StreamId::InfraredLeft,
            Slot::IrRight => StreamId::InfraredRight,
        }
    }

    pub(super) fn id(self) -> u8 {
        match self {
            Slot::Depth => stream_id::DEPTH,
            Slot::Color => stream_id::COLOR,
            Slot::Gyro => stream_id::GYRO,
            Slot::Accel => stream_id::ACCEL,
            Slot::IrLeft => stream_id::IR_LEFT,
            Slot::IrRight => stream_id::IR_RIGHT,
        }
    }
}

/// Frame number and timestamp of the last sample delivered, per [`Slot`].
pub(super) type LastDelivered = [Option<(u64, f64)>; 6];

/// What the callbacks keep per stream.
#[derive(Default)]
pub(super) struct SlotState {
    /// Samples dropped because the channel was full.
    pub(super) dropped: AtomicU64,
    /// Frames that could not be read.
    pub(super) bad: AtomicU64,
    /// When the last frame arrived, ms since [`Shared::t0`] plus one (0: none yet).
    pub(super) last_arrival: AtomicU64,
    /// Video frames without the camera's frame counter are numbered from their timestamps.
    renumbered: Mutex<crate::source::renumber::Renumber>,
}

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
    /// Losses, arrivals and numbering per [`Slot`].
    pub(super) slots: [SlotState; 6],
    /// The time base of [`SlotState::last_arrival`].
    pub(super) t0: Instant,
    /// Frames that could not be read (of any stream, also those whose stream is not known),
    /// and the first reason.
    pub(super) bad_frames: AtomicU64,
    pub(super) first_bad: Mutex<Option<String>>,
    /// The device, for recognising it in the devices-changed callback; null once the
    /// device is deleted (the lock keeps the callback from using it meanwhile).
    pub(super) device: Mutex<DevicePtr>,
    /// librealsense reported the device removed.
    pub(super) removed: AtomicBool,
}
/// A device pointer that may be shared: only passed to thread-safe librealsense calls while
/// the device lives (see [`Shared::device`]).
pub(super) struct DevicePtr(pub(super) *const sys::rs2_device);
// SAFETY: see the type's doc.
unsafe impl Send for DevicePtr {}

impl Shared {
    pub(super) fn note_bad(&self, slot: Option<Slot>, why: String) {
        self.bad_frames.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = slot {
            self.slots[s.index()].bad.fetch_add(1, Ordering::Relaxed);
        }
        let mut first = self.first_bad.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(why);
    }

    pub(super) fn deliver(&self, slot: Slot, sample: Sample) {
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
            self.slots[slot.index()]
                .dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Copies one frame into a sample and delivers it.
    ///
    /// # Safety
    /// `frame` is a valid frame, released by the caller afterwards.
    pub(super) unsafe fn on_frame(
        &self,
        frame: *mut sys::rs2_frame,
    ) -> Result<(), (Option<Slot>, String)> {
        let profile = rs2!(rs2_get_frame_stream_profile(frame)).map_err(|e| (None, e))?;
        if profile.is_null() {
            return Err((None, "frame without a stream profile".into()));
        }
        let (mut stream, mut format, mut index, mut uid, mut fps) = (0, 0, 0, 0, 0);
        rs2!(rs2_get_stream_profile_data(
            profile,
            &mut stream,
            &mut format,
            &mut index,
            &mut uid,
            &mut fps
        ))
        .map_err(|e| (None, e))?;
        let Some(&(_, slot)) = self.streams.iter().find(|(u, _)| *u == uid) else {
            return Ok(()); // a stream that was not asked for
        };
        let state = &self.slots[slot.index()];
        let since = self.t0.elapsed().as_millis() as u64;
        state.last_arrival.store(since + 1, Ordering::Relaxed);
        self.read(frame, slot, fps, format)
            .map_err(|e| (Some(slot), e))
    }

    /// Reads a frame of `slot` (a stream of `fps` in `format`) into a sample and delivers it.
    ///
    /// # Safety
    /// As [`Shared::on_frame`].
    unsafe fn read(
        &self,
        frame: *mut sys::rs2_frame,
        slot: Slot,
        fps: i32,
        format: sys::rs2_format,
    ) -> Result<(), String> {
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
        let mut has_counter = false;
        for (id, name) in &self.metadata_names {
            if rs2!(rs2_supports_frame_metadata(frame, *id)).unwrap_or(0) == 0 {
                continue;
            }
            if let Ok(v) = rs2!(rs2_get_frame_metadata(frame, *id)) {
                if *id == sys::rs2_frame_metadata_value_RS2_FRAME_METADATA_TIME_OF_ARRIVAL {
                    arrival_ms = Some(v);
                }
                // The camera's counter is the frame number (librealsense numbers frames by it);
                // a playback of a recording without one reports a counter of 0.
                has_counter |= *id
                    == sys::rs2_frame_metadata_value_RS2_FRAME_METADATA_FRAME_COUNTER
                    && u64::try_from(v) == Ok(number);
                metadata.push((name.clone(), v));
            }
        }
        // Without the camera's counter, librealsense numbers the frames it received, so
        // frames the camera lost leave no gap: they are numbered from the timestamps instead
        // (librealsense's number is kept in the metadata).
        let number = if !has_counter && slot.is_image() {
            metadata.push((renumber::ORIGINAL_NUMBER_KEY.into(), number as i64));
            self.slots[slot.index()]
                .renumbered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .next(number, ts, fps as f64)
        } else {
            number
        };
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
            Slot::Depth | Slot::Color | Slot::IrLeft | Slot::IrRight => {
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
                    match slot {
                        Slot::IrLeft | Slot::IrRight => Sample::Infrared {
                            ir_index: (slot == Slot::IrRight) as u8 + 1,
                            frame: InfraredFrame {
                                timing,
                                data: out,
                                metadata,
                            },
                        },
                        _ => Sample::Color(ColorFrame {
                            timing,
                            data: out,
                            metadata,
                        }),
                    }
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
                    ts_domain: timing.ts_domain,
                }
            }
        };
        self.deliver(slot, sample);
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
            Ok(Err((slot, e))) => shared.note_bad(slot, e),
            Err(_) => shared.note_bad(None, "panic while reading a frame".into()),
        }
    }
    // The callback owns the frame.
    sys::rs2_release_frame(frame);
}

// ---------------------------------------------------------------------------------------
// The source
// ---------------------------------------------------------------------------------------
