//! The `.rsrec` container: one file per camera holding depth frames, colour-frame entries,
//! IMU batches, gaps and events, checksummed, length-prefixed and indexed.
//! `format-spec.md` is the specification; [`format`] holds its constants.

pub mod bytes;
pub mod error;
pub mod format;
pub mod header;
pub mod index;
pub mod reader;
pub mod record;
pub mod recover;
pub mod scan;
pub mod writer;

pub use error::{ContainerError, Result};
pub use header::{
    DeviceInfo, Distortion, Extrinsics, FileHeader, Intrinsics, PixelFormat, StreamDescriptor,
    StreamKind,
};
pub use index::IndexEntry;
pub use reader::{OpenedVia, Reader};
pub use record::{ColorFrameEntry, Event, Gap, GapReason, ImuSample, RecordHeader, VideoSegment};
pub use writer::{FsyncPolicy, Writer, WriterOptions};

/// The current time as UTC microseconds since the Unix epoch.
pub fn now_utc_us() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_micros() as i64
}
