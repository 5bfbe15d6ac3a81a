//! Capture sources: everything that yields depth frames, colour frames and IMU samples
//! behind one trait ([`Source`]), so the recording pipeline does not care whether frames come
//! from a RealSense camera, a synthetic camera, a PNG folder or a `.bag` file.

use crate::container::{DeviceInfo, ImuSample, StreamDescriptor, StreamKind};

/// The stream ids every rsrec source uses, so that files of different sources look alike
/// (a file may use any id, §3.2; readers look streams up by kind).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum StreamId {
    Depth = 0,
    Color = 1,
    Gyro = 2,
    Accel = 3,
    /// Infrared of the left imager (librealsense stream index 1), §5.9.
    InfraredLeft = 4,
    /// Infrared of the right imager (index 2).
    InfraredRight = 5,
}

impl StreamId {
    /// The id as stored in the file.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// Every id, in order.
    pub const ALL: [StreamId; 6] = [
        Self::Depth,
        Self::Color,
        Self::Gyro,
        Self::Accel,
        Self::InfraredLeft,
        Self::InfraredRight,
    ];

    pub fn from_id(id: u8) -> Option<StreamId> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The infrared stream of librealsense's imager index `ir_index` (1 left, 2 right).
    pub fn infrared(ir_index: u8) -> Option<StreamId> {
        match ir_index {
            1 => Some(Self::InfraredLeft),
            2 => Some(Self::InfraredRight),
            _ => None,
        }
    }

    /// The kind of stream rsrec's sources give this id.
    pub fn kind(self) -> StreamKind {
        match self {
            Self::Depth => StreamKind::Depth,
            Self::Color => StreamKind::Color,
            Self::Gyro => StreamKind::Gyro,
            Self::Accel => StreamKind::Accel,
            Self::InfraredLeft | Self::InfraredRight => StreamKind::Infrared,
        }
    }

    /// The (first) id rsrec's sources give a stream of `kind`, if it is one they record: for
    /// infrared the left imager's.
    pub fn of_kind(kind: StreamKind) -> Option<StreamId> {
        Self::ALL.into_iter().find(|s| s.kind() == kind)
    }
}

/// [`StreamId`]s as the `u8` the container layer takes.
pub mod stream_id {
    use super::StreamId;
    pub const DEPTH: u8 = StreamId::Depth.id();
    pub const COLOR: u8 = StreamId::Color.id();
    pub const GYRO: u8 = StreamId::Gyro.id();
    pub const ACCEL: u8 = StreamId::Accel.id();
    pub const IR_LEFT: u8 = StreamId::InfraredLeft.id();
    pub const IR_RIGHT: u8 = StreamId::InfraredRight.id();
}

/// Timing of one frame or sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// The source's own frame counter.
    pub frame_number: u64,
    /// Device timestamp in milliseconds.
    pub device_ts_ms: f64,
    /// Domain of `device_ts_ms` (`container::format::ts_domain`).
    pub ts_domain: u8,
    /// When the frame reached the host, UTC microseconds.
    pub host_ts_us: i64,
}

/// One Z16 depth frame of the source's depth stream (size from its descriptor).
#[derive(Clone, Debug)]
pub struct DepthFrame {
    pub timing: Timing,
    pub data: Vec<u16>,
    /// Per-frame device metadata (exposure, gain, laser power, ...), name and value.
    pub metadata: Vec<(String, i64)>,
}

/// One colour frame, packed rows in the colour stream's pixel format.
#[derive(Clone, Debug)]
pub struct ColorFrame {
    pub timing: Timing,
    pub data: Vec<u8>,
    pub metadata: Vec<(String, i64)>,
}

/// One infrared (Y8) frame of the left or right imager, packed rows.
#[derive(Clone, Debug)]
pub struct InfraredFrame {
    pub timing: Timing,
    pub data: Vec<u8>,
    pub metadata: Vec<(String, i64)>,
}

/// What a source yields.
#[derive(Clone, Debug)]
pub enum Sample {
    Depth(DepthFrame),
    Color(ColorFrame),
    /// An infrared frame of imager `ir_index` (1 left, 2 right: [`StreamId::infrared`]).
    Infrared {
        ir_index: u8,
        frame: InfraredFrame,
    },
    /// One gyro or accel sample (`kind` is [`StreamKind::Gyro`] or [`StreamKind::Accel`]).
    Imu {
        kind: StreamKind,
        sample: ImuSample,
        /// The clock of `sample.device_ts_ms` (`container::format::ts_domain`): each sample
        /// carries its own, like a frame (a bag can have global-time IMU samples).
        ts_domain: u8,
    },
}

/// What a source is: device identity and stream descriptors (ids from [`stream_id`]).
#[derive(Clone, Debug)]
pub struct SourceInfo {
    /// Short name for file names and status lines (e.g. the serial number or `sim0`).
    pub name: String,
    pub device: DeviceInfo,
    pub streams: Vec<StreamDescriptor>,
}

impl SourceInfo {
    pub fn stream(&self, kind: StreamKind) -> Option<&StreamDescriptor> {
        self.streams.iter().find(|s| s.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_map_to_kinds_and_back() {
        for s in StreamId::ALL {
            assert_eq!(StreamId::from_id(s.id()), Some(s));
            if s != StreamId::InfraredRight {
                assert_eq!(StreamId::of_kind(s.kind()), Some(s));
            }
        }
        assert_eq!(StreamId::from_id(9), None);
        assert_eq!(
            StreamId::of_kind(StreamKind::Infrared),
            Some(StreamId::InfraredLeft)
        );
        assert_eq!(StreamId::infrared(2), Some(StreamId::InfraredRight));
        assert_eq!(StreamId::infrared(0), None);
        assert_eq!(stream_id::ACCEL, 3);
        assert_eq!(stream_id::IR_RIGHT, 5);
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("{0}")]
    Open(String),
    #[error("{path}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The source's data is malformed (a frame of the wrong size, inconsistent streams).
    #[error("{0}")]
    Format(String),
    /// A `.bag` file is damaged, truncated or not a librealsense recording.
    #[error("{}: {detail}", path.display())]
    Bag {
        path: std::path::PathBuf,
        detail: String,
    },
    /// A PNG folder or image could not be read.
    #[error(transparent)]
    Png(#[from] pngdir::PngError),
    #[error("device disconnected: {0}")]
    Disconnected(String),
}

/// What a source lost of one stream before [`Source::next`] returned its samples, counted
/// since the source was opened (they are missing numbers in the stream's frame numbers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceLosses {
    /// Dropped on the host: the source's own buffer was full (the recorder fell behind).
    pub host_dropped: u64,
    /// Delivered by the driver but unreadable (wrong size, no data).
    pub bad: u64,
}

/// A camera, real or simulated. `next` blocks until the next sample is due (live and
/// real-time sources pace themselves; as-fast-as-possible sources do not) and returns
/// `Ok(None)` at the end of a finite source.
pub trait Source: Send {
    fn info(&self) -> &SourceInfo;
    fn next(&mut self) -> Result<Option<Sample>, SourceError>;

    /// What this source lost of `stream` so far (see [`SourceLosses`]): the recorder tells
    /// these apart from frames the camera itself skipped. Sources that lose nothing on the
    /// host keep the default.
    fn losses(&self, _stream: StreamId) -> SourceLosses {
        SourceLosses::default()
    }

    /// Whether [`Source::reconnect`] can bring this source back after `next` failed with
    /// [`SourceError::Disconnected`] (a camera that can be plugged in again).
    fn can_reconnect(&self) -> bool {
        false
    }

    /// After a [`SourceError::Disconnected`]: one attempt to open the same device again with
    /// the same streams. `Ok(true)`: streaming again (frame numbers may restart); `Ok(false)`:
    /// not back yet, try again later; `Err`: give up (e.g. it came back with other streams).
    fn reconnect(&mut self) -> Result<bool, SourceError> {
        Err(SourceError::Open(format!(
            "{}: this source cannot reconnect",
            self.info().name
        )))
    }
}

/// The slowest frame rate a user may ask for: one frame every 10 s. Slower rates are not a
/// camera mode and make timestamps meaningless (`1e-300` fps puts frame 2 in year -290251).
pub const MIN_FPS: f64 = 0.1;
/// The fastest frame rate a user may ask for (D4xx depth tops out at 300 fps).
pub const MAX_FPS: f64 = 1000.0;

/// Whether `fps` is a frame rate rsrec accepts ([`MIN_FPS`]..=[`MAX_FPS`]).
pub fn fps_in_range(fps: f64) -> bool {
    (MIN_FPS..=MAX_FPS).contains(&fps)
}

/// Resolution and rate of a stream, e.g. `848x480@30`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamMode {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
}

/// A stream mode that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModeError {
    #[error("'{0}' is not WIDTHxHEIGHT@FPS (e.g. 848x480@30)")]
    Syntax(String),
    #[error(
        "'{0}': the size must be 1..=8192 pixels each way and the rate {MIN_FPS}..={MAX_FPS} fps"
    )]
    OutOfRange(String),
}

impl std::str::FromStr for StreamMode {
    type Err = ModeError;
    fn from_str(s: &str) -> Result<Self, ModeError> {
        let err = || ModeError::Syntax(s.to_string());
        let (size, fps) = s.split_once('@').ok_or_else(err)?;
        let (w, h) = size.split_once('x').ok_or_else(err)?;
        let mode = StreamMode {
            width: w.parse().map_err(|_| err())?,
            height: h.parse().map_err(|_| err())?,
            fps: fps.parse().map_err(|_| err())?,
        };
        if mode.width == 0
            || mode.height == 0
            || mode.width > 8192
            || mode.height > 8192
            || !fps_in_range(mode.fps)
        {
            return Err(ModeError::OutOfRange(s.to_string()));
        }
        Ok(mode)
    }
}

impl std::fmt::Display for StreamMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}@{}", self.width, self.height, self.fps)
    }
}

/// How a finite or synthetic source is paced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// Samples arrive when they are due, like a live camera.
    RealTime,
    /// No waiting: as fast as the consumer takes them.
    AsFastAsPossible,
}

// Memory-maps the bag it reads.
#[allow(unsafe_code)]
pub mod bag;
pub mod config;
pub mod png;
pub mod pngdir;
pub mod renumber;
pub mod sync;
// FFI to librealsense (the C API that realsense-rust does not wrap).
#[cfg(feature = "realsense")]
#[allow(unsafe_code)]
pub mod realsense;
pub mod sim;
pub mod spec;
pub mod usb;
