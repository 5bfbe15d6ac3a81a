//! The `.rsrec` container: one file per camera holding depth frames, colour-frame entries,
//! IMU batches, gaps and events, checksummed, length-prefixed and indexed.
//! `format-spec.md` is the specification; [`mod@format`] holds its constants.

pub mod bytes;
pub mod error;
pub mod format;
pub mod header;
pub mod index;
pub mod limits;
// Memory-maps the file it reads (see `Reader::open`).
#[allow(unsafe_code)]
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
pub use limits::ReadLimits;
pub use reader::{CodecMix, InfraredFrame, OpenedVia, Reader};
pub use record::{
    ColorFrameEntry, Event, FrameMetadata, Gap, GapReason, ImuSample, Record, RecordHeader,
    RecordKind, VideoSegment,
};
pub use writer::{FsyncPolicy, Writer, WriterOptions};

/// Formats UTC microseconds since the epoch as ISO 8601 (`2026-11-22T04:14:34.123456Z`).
pub fn fmt_utc(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The current time as UTC microseconds since the Unix epoch.
pub fn now_utc_us() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_micros() as i64
}
