//! Record framing (`format-spec.md` §4) and the payloads of the non-image records (§5).
//! Pure encode/decode, no I/O.

use serde::Serialize;

use super::bytes::{le_f64, le_i64, le_u32, le_u64, Builder, Cursor};
use super::error::{ContainerError, Result};
use super::format::*;
use crate::codec::CodecId;

/// §4 The fixed 48-byte header in front of every record's payload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecordHeader {
    pub record_type: u8,
    pub stream: u8,
    pub codec: CodecId,
    pub ts_domain: u8,
    pub flags: u32,
    pub frame_number: u64,
    /// Device timestamp in milliseconds, as the device reports it (librealsense: double ms).
    pub device_ts_ms: f64,
    /// Host arrival time, UTC microseconds since the Unix epoch.
    pub host_ts_us: i64,
}

impl RecordHeader {
    /// A header for a record with no stream, frame or time (index blocks, file events).
    pub fn bare(record_type: u8) -> Self {
        Self {
            record_type,
            stream: NO_STREAM,
            codec: CodecId::NONE,
            ts_domain: ts_domain::NONE,
            flags: 0,
            frame_number: 0,
            device_ts_ms: 0.0,
            host_ts_us: 0,
        }
    }

    /// Encodes the 48 header bytes for `payload`, both CRCs included.
    pub fn encode(&self, payload: &[u8]) -> Result<[u8; RECORD_HEADER_LEN]> {
        self.encode_with_crc(payload.len() as u64, crc32c::crc32c(payload))
    }

    /// Encodes the header for a payload of `len` bytes whose CRC-32C is `payload_crc`.
    pub fn encode_with_crc(&self, len: u64, payload_crc: u32) -> Result<[u8; RECORD_HEADER_LEN]> {
        let len = u32::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_PAYLOAD_LEN)
            .ok_or(ContainerError::LimitExceeded {
                what: "record payload",
                value: len,
                limit: MAX_PAYLOAD_LEN as u64,
            })?;
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[..4].copy_from_slice(&RECORD_SYNC);
        h[REC_PAYLOAD_LEN..REC_PAYLOAD_LEN + 4].copy_from_slice(&len.to_le_bytes());
        h[REC_TYPE] = self.record_type;
        h[REC_STREAM] = self.stream;
        h[REC_CODEC] = self.codec.0;
        h[REC_DOMAIN] = self.ts_domain;
        h[REC_FLAGS..REC_FLAGS + 4].copy_from_slice(&self.flags.to_le_bytes());
        h[REC_FRAME_NUMBER..REC_FRAME_NUMBER + 8].copy_from_slice(&self.frame_number.to_le_bytes());
        h[REC_DEVICE_TS..REC_DEVICE_TS + 8].copy_from_slice(&self.device_ts_ms.to_le_bytes());
        h[REC_HOST_TS..REC_HOST_TS + 8].copy_from_slice(&self.host_ts_us.to_le_bytes());
        let hcrc = crc32c::crc32c(&h[..REC_HEADER_CRC]);
        h[REC_HEADER_CRC..REC_HEADER_CRC + 4].copy_from_slice(&hcrc.to_le_bytes());
        h[REC_PAYLOAD_CRC..REC_PAYLOAD_CRC + 4].copy_from_slice(&payload_crc.to_le_bytes());
        Ok(h)
    }
}

/// A record located in a file: its parsed header and where its payload is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecordRef {
    pub offset: u64,
    pub header: RecordHeader,
    pub payload_offset: u64,
    pub payload_len: u64,
    pub payload_crc: u32,
}

impl RecordRef {
    /// Offset of the byte after this record.
    pub fn end(&self) -> u64 {
        self.payload_offset + self.payload_len
    }
}

/// Parses and checks the record header at `offset` of `file` (sync marker, header CRC, length
/// cap, payload inside the file). The payload CRC is not checked: see [`check_payload`].
pub fn parse_header(file: &[u8], offset: u64) -> Result<RecordRef> {
    let file_len = file.len() as u64;
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    if offset.saturating_add(RECORD_HEADER_LEN as u64) > file_len {
        return Err(ContainerError::Truncated {
            what: "record header",
            needed: RECORD_HEADER_LEN as u64,
            available: file_len.saturating_sub(offset),
        });
    }
    let h = &file[start..start + RECORD_HEADER_LEN];
    if h[..4] != RECORD_SYNC {
        return Err(ContainerError::BadSync { offset });
    }
    let expected = le_u32(h, REC_HEADER_CRC);
    let actual = crc32c::crc32c(&h[..REC_HEADER_CRC]);
    if expected != actual {
        return Err(ContainerError::BadRecordHeaderCrc {
            offset,
            expected,
            actual,
        });
    }
    let len = le_u32(h, REC_PAYLOAD_LEN);
    if len > MAX_PAYLOAD_LEN {
        return Err(ContainerError::BadRecord {
            offset,
            message: format!("payload length {len} exceeds the limit {MAX_PAYLOAD_LEN}"),
        });
    }
    let payload_offset = offset + RECORD_HEADER_LEN as u64;
    if payload_offset + len as u64 > file_len {
        return Err(ContainerError::RecordPastEnd {
            offset,
            len: len as u64,
            file_len,
        });
    }
    Ok(RecordRef {
        offset,
        header: RecordHeader {
            record_type: h[REC_TYPE],
            stream: h[REC_STREAM],
            codec: CodecId(h[REC_CODEC]),
            ts_domain: h[REC_DOMAIN],
            flags: le_u32(h, REC_FLAGS),
            frame_number: le_u64(h, REC_FRAME_NUMBER),
            device_ts_ms: le_f64(h, REC_DEVICE_TS),
            host_ts_us: le_i64(h, REC_HOST_TS),
        },
        payload_offset,
        payload_len: len as u64,
        payload_crc: le_u32(h, REC_PAYLOAD_CRC),
    })
}

/// Returns the record's payload after checking its CRC.
pub fn check_payload<'a>(file: &'a [u8], r: &RecordRef) -> Result<&'a [u8]> {
    let p = payload(file, r);
    let actual = crc32c::crc32c(p);
    if actual != r.payload_crc {
        return Err(ContainerError::BadPayloadCrc {
            offset: r.offset,
            expected: r.payload_crc,
            actual,
        });
    }
    Ok(p)
}

/// The record's payload bytes, unchecked. `r` must come from [`parse_header`] on `file`.
pub fn payload<'a>(file: &'a [u8], r: &RecordRef) -> &'a [u8] {
    &file[r.payload_offset as usize..r.end() as usize]
}

/// The kind of a record (§5, §6), from its `record_type` byte. Types this version does not
/// know are [`RecordKind::Unknown`]: readers skip them (§2, forward compatibility).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    DepthFrame,
    ColorFrame,
    ImuBatch,
    Gap,
    Event,
    VideoSegment,
    HeaderCopy,
    FrameMetadata,
    InfraredFrame,
    IndexBlock,
    FinalIndex,
    Unknown(u8),
}

impl RecordKind {
    pub fn from_code(t: u8) -> Self {
        match t {
            record_type::DEPTH_FRAME => Self::DepthFrame,
            record_type::COLOR_FRAME => Self::ColorFrame,
            record_type::IMU_BATCH => Self::ImuBatch,
            record_type::GAP => Self::Gap,
            record_type::EVENT => Self::Event,
            record_type::VIDEO_SEGMENT => Self::VideoSegment,
            record_type::HEADER_COPY => Self::HeaderCopy,
            record_type::FRAME_METADATA => Self::FrameMetadata,
            record_type::INFRARED_FRAME => Self::InfraredFrame,
            record_type::INDEX_BLOCK => Self::IndexBlock,
            record_type::FINAL_INDEX => Self::FinalIndex,
            t => Self::Unknown(t),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::DepthFrame => record_type::DEPTH_FRAME,
            Self::ColorFrame => record_type::COLOR_FRAME,
            Self::ImuBatch => record_type::IMU_BATCH,
            Self::Gap => record_type::GAP,
            Self::Event => record_type::EVENT,
            Self::VideoSegment => record_type::VIDEO_SEGMENT,
            Self::HeaderCopy => record_type::HEADER_COPY,
            Self::FrameMetadata => record_type::FRAME_METADATA,
            Self::InfraredFrame => record_type::INFRARED_FRAME,
            Self::IndexBlock => record_type::INDEX_BLOCK,
            Self::FinalIndex => record_type::FINAL_INDEX,
            Self::Unknown(t) => t,
        }
    }

    /// Plural name for counts (`depth_frames`, `gaps`, `type_0x42`).
    pub fn plural_name(self) -> String {
        match self {
            Self::DepthFrame => "depth_frames".into(),
            Self::ColorFrame => "color_frames".into(),
            Self::ImuBatch => "imu_batches".into(),
            Self::Gap => "gaps".into(),
            Self::Event => "events".into(),
            Self::VideoSegment => "video_segments".into(),
            Self::HeaderCopy => "header_copies".into(),
            Self::FrameMetadata => "frame_metadata".into(),
            Self::InfraredFrame => "infrared_frames".into(),
            Self::IndexBlock => "index_blocks".into(),
            Self::FinalIndex => "final_index".into(),
            Self::Unknown(t) => format!("type_{t:#04x}"),
        }
    }
}

/// A record's payload decoded by its kind. Depth frames stay compressed (the codec layer
/// decodes them with the stream's size); index records stay raw (the index layer reads them).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Record<'a> {
    DepthFrame {
        codec: CodecId,
        payload: &'a [u8],
    },
    ColorFrame(ColorFrameEntry),
    ImuBatch(Vec<ImuSample>),
    Gap(Gap),
    Event(Event),
    VideoSegment(VideoSegment),
    /// §5.7 The file header's bytes (parsed, so that a copy that does not decode is found).
    HeaderCopy(Box<crate::container::FileHeader>),
    FrameMetadata(FrameMetadata),
    /// §5.9 Compressed like a depth frame (16-bit samples that must fit a byte).
    InfraredFrame {
        codec: CodecId,
        payload: &'a [u8],
    },
    IndexBlock(&'a [u8]),
    FinalIndex(&'a [u8]),
    /// A record type this version does not know, kept as it is.
    Unknown {
        record_type: u8,
        payload: &'a [u8],
    },
}

impl<'a> Record<'a> {
    /// Decodes `payload` as the record `header` describes; a payload that does not parse is
    /// an error.
    pub fn decode(header: &RecordHeader, payload: &'a [u8]) -> Result<Record<'a>> {
        Ok(match RecordKind::from_code(header.record_type) {
            RecordKind::DepthFrame => Record::DepthFrame {
                codec: header.codec,
                payload,
            },
            RecordKind::ColorFrame => Record::ColorFrame(ColorFrameEntry::decode(payload)?),
            RecordKind::ImuBatch => Record::ImuBatch(decode_imu_batch(payload)?),
            RecordKind::Gap => Record::Gap(Gap::decode(payload)?),
            RecordKind::Event => Record::Event(Event::decode(payload)?),
            RecordKind::VideoSegment => Record::VideoSegment(VideoSegment::decode(payload)?),
            RecordKind::HeaderCopy => {
                Record::HeaderCopy(Box::new(crate::container::FileHeader::decode(payload)?.0))
            }
            RecordKind::FrameMetadata => Record::FrameMetadata(FrameMetadata::decode(payload)?),
            RecordKind::InfraredFrame => Record::InfraredFrame {
                codec: header.codec,
                payload,
            },
            RecordKind::IndexBlock => Record::IndexBlock(payload),
            RecordKind::FinalIndex => Record::FinalIndex(payload),
            RecordKind::Unknown(record_type) => Record::Unknown {
                record_type,
                payload,
            },
        })
    }

    pub fn kind(&self) -> RecordKind {
        match self {
            Record::DepthFrame { .. } => RecordKind::DepthFrame,
            Record::ColorFrame(_) => RecordKind::ColorFrame,
            Record::ImuBatch(_) => RecordKind::ImuBatch,
            Record::Gap(_) => RecordKind::Gap,
            Record::Event(_) => RecordKind::Event,
            Record::VideoSegment(_) => RecordKind::VideoSegment,
            Record::HeaderCopy(_) => RecordKind::HeaderCopy,
            Record::FrameMetadata(_) => RecordKind::FrameMetadata,
            Record::InfraredFrame { .. } => RecordKind::InfraredFrame,
            Record::IndexBlock(_) => RecordKind::IndexBlock,
            Record::FinalIndex(_) => RecordKind::FinalIndex,
            Record::Unknown { record_type, .. } => RecordKind::Unknown(*record_type),
        }
    }
}

/// §5.2 Where one colour frame is stored in the colour video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ColorFrameEntry {
    /// Which video segment (see [`VideoSegment`]) holds the frame.
    pub segment: u32,
    /// Index of the frame in that video file, counting from 0.
    pub index_in_video: u64,
    /// The frame's presentation time in that video file, µs from the video's start (format
    /// version 2). `None` in version-1 files, whose videos have frame *i* at *i* / fps.
    pub video_time_us: Option<i64>,
}

impl ColorFrameEntry {
    /// Payload length without (version 1) and with (version 2) `video_time_us`.
    pub const LEN_V1: usize = 12;
    pub const LEN: usize = 20;
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Builder::new();
        b.u32(self.segment).u64(self.index_in_video);
        if let Some(t) = self.video_time_us {
            b.i64(t);
        }
        b.buf
    }
    pub fn decode(p: &[u8]) -> Result<Self> {
        let mut c = Cursor::new(p, "colour frame entry");
        let segment = c.u32()?;
        let index_in_video = c.u64()?;
        // Version 1 ends here; bytes after known fields are ignored (§11).
        let video_time_us = if c.remaining() >= 8 {
            Some(c.i64()?)
        } else {
            None
        };
        Ok(Self {
            segment,
            index_in_video,
            video_time_us,
        })
    }
}

/// §5.3 One IMU sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ImuSample {
    pub frame_number: u64,
    pub device_ts_ms: f64,
    pub host_ts_us: i64,
    /// rad/s for gyro, m/s² for accel.
    pub xyz: [f32; 3],
}

impl ImuSample {
    pub const LEN: usize = 40;
}

/// §5.3 A batch of IMU samples of one stream.
pub fn encode_imu_batch(samples: &[ImuSample]) -> Vec<u8> {
    let mut b = Builder::new();
    b.u32(samples.len() as u32).u32(0);
    for s in samples {
        b.u64(s.frame_number).f64(s.device_ts_ms).i64(s.host_ts_us);
        b.f32(s.xyz[0]).f32(s.xyz[1]).f32(s.xyz[2]).u32(0);
    }
    b.buf
}

pub fn decode_imu_batch(p: &[u8]) -> Result<Vec<ImuSample>> {
    let mut c = Cursor::new(p, "IMU batch");
    let n = c.u32()? as usize;
    c.u32()?;
    if n.saturating_mul(ImuSample::LEN) != c.remaining() {
        return Err(ContainerError::InvalidValue {
            what: "IMU batch sample count",
            value: n as u64,
        });
    }
    (0..n)
        .map(|_| {
            let s = ImuSample {
                frame_number: c.u64()?,
                device_ts_ms: c.f64()?,
                host_ts_us: c.i64()?,
                xyz: [c.f32()?, c.f32()?, c.f32()?],
            };
            c.u32()?;
            Ok(s)
        })
        .collect()
}

/// §5.4 Why frames were lost.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    Unknown,
    /// The queue between capture and compression was full.
    QueueFull,
    /// The source's own frame numbers skipped (dropped in the camera, USB or driver).
    SourceSkipped,
    /// Compression or encoding failed.
    EncoderError,
    /// The camera disconnected.
    DeviceDisconnected,
    /// The disk was full or nearly full.
    DiskFull,
    /// Writing failed.
    IoError,
    /// Records were unreadable and discarded by recovery.
    Corrupted,
    /// Lost on the host before rsrec had them: the source's own buffer (between the driver's
    /// threads and rsrec's capture thread) overflowed.
    HostDropped,
    /// The driver delivered the frame but it could not be read (wrong size, no data).
    BadFrame,
    Other(u8),
}

impl GapReason {
    pub fn code(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::QueueFull => 1,
            Self::SourceSkipped => 2,
            Self::EncoderError => 3,
            Self::DeviceDisconnected => 4,
            Self::DiskFull => 5,
            Self::IoError => 6,
            Self::Corrupted => 7,
            Self::HostDropped => 8,
            Self::BadFrame => 9,
            Self::Other(c) => c,
        }
    }
    pub fn from_code(c: u8) -> Self {
        match c {
            0 => Self::Unknown,
            1 => Self::QueueFull,
            2 => Self::SourceSkipped,
            3 => Self::EncoderError,
            4 => Self::DeviceDisconnected,
            5 => Self::DiskFull,
            6 => Self::IoError,
            7 => Self::Corrupted,
            8 => Self::HostDropped,
            9 => Self::BadFrame,
            c => Self::Other(c),
        }
    }
}

/// §5.4 "Frames `first..=last` of this stream were lost (`count` frames), because `reason`."
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub first_frame: u64,
    pub last_frame: u64,
    pub count: u64,
    pub reason: GapReason,
    pub detail: String,
}

impl Gap {
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut b = Builder::new();
        b.u64(self.first_frame)
            .u64(self.last_frame)
            .u64(self.count)
            .u8(self.reason.code())
            .string(&self.detail, "gap detail")?;
        Ok(b.buf)
    }
    pub fn decode(p: &[u8]) -> Result<Self> {
        let mut c = Cursor::new(p, "gap");
        Ok(Self {
            first_frame: c.u64()?,
            last_frame: c.u64()?,
            count: c.u64()?,
            reason: GapReason::from_code(c.u8()?),
            detail: c.string()?,
        })
    }
}

/// §5.5 An event or annotation, e.g. `camera_reconnected`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Short machine-readable kind, e.g. `camera_reconnected`, `note`.
    pub kind: String,
    /// Human-readable text or JSON.
    pub message: String,
}

impl Event {
    pub const MAX_MESSAGE: u32 = 1 << 20;
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut b = Builder::new();
        b.string(&self.kind, "event kind")?.blob(
            self.message.as_bytes(),
            Self::MAX_MESSAGE,
            "event message",
        )?;
        Ok(b.buf)
    }
    pub fn decode(p: &[u8]) -> Result<Self> {
        let mut c = Cursor::new(p, "event");
        let kind = c.string()?;
        let message = String::from_utf8(c.blob(Self::MAX_MESSAGE)?.to_vec())
            .map_err(|_| ContainerError::BadUtf8 { what: "event" })?;
        Ok(Self { kind, message })
    }
}

/// §5.8 The metadata of one frame: what the camera reported with it (librealsense's
/// per-frame metadata: exposure, gain, laser power, frame counter, ...), as named integers.
/// The record header is the frame's own (stream, frame number, timestamps).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FrameMetadata {
    pub pairs: Vec<(String, i64)>,
}

impl FrameMetadata {
    /// At most this many pairs per frame (librealsense defines about 50 keys).
    pub const MAX_PAIRS: usize = 256;
    /// At most this many bytes per key.
    pub const MAX_KEY: usize = 64;

    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.pairs.len() > Self::MAX_PAIRS {
            return Err(ContainerError::LimitExceeded {
                what: "frame metadata pairs",
                value: self.pairs.len() as u64,
                limit: Self::MAX_PAIRS as u64,
            });
        }
        let mut b = Builder::new();
        b.u16(self.pairs.len() as u16);
        for (k, v) in &self.pairs {
            check_key(k)?;
            b.string(k, "frame metadata key")?.i64(*v);
        }
        Ok(b.buf)
    }

    pub fn decode(p: &[u8]) -> Result<Self> {
        let mut c = Cursor::new(p, "frame metadata");
        let n = c.u16()? as usize;
        if n > Self::MAX_PAIRS {
            return Err(ContainerError::LimitExceeded {
                what: "frame metadata pairs",
                value: n as u64,
                limit: Self::MAX_PAIRS as u64,
            });
        }
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            let k = c.string()?;
            check_key(&k)?;
            pairs.push((k, c.i64()?));
        }
        Ok(Self { pairs })
    }

    /// The value of `key`, if the frame has it.
    pub fn get(&self, key: &str) -> Option<i64> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// A key is 1 to 64 ASCII letters, digits and underscores (safe as a CSV column or a file
/// name part).
fn check_key(k: &str) -> Result<()> {
    if k.is_empty() || k.len() > FrameMetadata::MAX_KEY {
        return Err(ContainerError::LimitExceeded {
            what: "frame metadata key length (1..=64)",
            value: k.len() as u64,
            limit: FrameMetadata::MAX_KEY as u64,
        });
    }
    if let Some(b) = k
        .bytes()
        .find(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
    {
        return Err(ContainerError::InvalidValue {
            what: "frame metadata key character",
            value: b as u64,
        });
    }
    Ok(())
}

impl FrameMetadata {
    /// `Actual Exposure` -> `actual_exposure`: what a source's name becomes as a key (ASCII
    /// letters and digits lowercased, every other run of characters one `_`, at most 64
    /// bytes); `None` if nothing is left.
    pub fn key_of(name: &str) -> Option<String> {
        let mut k = String::new();
        for c in name.chars() {
            if c.is_ascii_alphanumeric() {
                k.push(c.to_ascii_lowercase());
            } else if !k.is_empty() && !k.ends_with('_') {
                k.push('_');
            }
        }
        let k = k.trim_end_matches('_');
        let k = &k[..k.len().min(Self::MAX_KEY)];
        (!k.is_empty()).then(|| k.trim_end_matches('_').to_string())
    }
}

/// §5.6 A colour video file that colour-frame entries of a stream point into.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VideoSegment {
    pub segment: u32,
    /// File name relative to the directory of the `.rsrec` file.
    pub file_name: String,
    /// Encoder, e.g. `libx265`.
    pub codec: String,
}

impl VideoSegment {
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut b = Builder::new();
        b.u32(self.segment)
            .string(&self.file_name, "video file name")?
            .string(&self.codec, "video codec")?;
        Ok(b.buf)
    }
    pub fn decode(p: &[u8]) -> Result<Self> {
        let mut c = Cursor::new(p, "video segment");
        Ok(Self {
            segment: c.u32()?,
            file_name: c.string()?,
            codec: c.string()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_kinds_round_trip_and_unknown_types_are_kept() {
        for t in 0..=255u8 {
            assert_eq!(RecordKind::from_code(t).code(), t);
        }
        assert_eq!(RecordKind::from_code(0x42), RecordKind::Unknown(0x42));
        let mut h = RecordHeader {
            record_type: 0x42,
            stream: 0,
            codec: CodecId::NONE,
            ts_domain: ts_domain::NONE,
            flags: 0,
            frame_number: 0,
            device_ts_ms: 0.0,
            host_ts_us: 0,
        };
        let r = Record::decode(&h, b"future").unwrap();
        assert_eq!(
            r,
            Record::Unknown {
                record_type: 0x42,
                payload: b"future"
            }
        );
        assert_eq!(r.kind().plural_name(), "type_0x42");
        let gap = Gap {
            first_frame: 3,
            last_frame: 5,
            count: 3,
            reason: GapReason::QueueFull,
            detail: "x".into(),
        };
        h.record_type = record_type::GAP;
        let bytes = gap.encode().unwrap();
        assert_eq!(Record::decode(&h, &bytes).unwrap(), Record::Gap(gap));
        // A known type whose payload does not parse is an error, not Unknown.
        assert!(Record::decode(&h, b"\x01").is_err());
    }

    #[test]
    fn header_round_trips_and_detects_damage() {
        let h = RecordHeader {
            record_type: record_type::DEPTH_FRAME,
            stream: 3,
            codec: CodecId::LZ4_PLANES,
            ts_domain: ts_domain::GLOBAL_TIME,
            flags: 0,
            frame_number: 77_777,
            device_ts_ms: 1_234_567.891,
            host_ts_us: 1_700_000_000_123_456,
        };
        let payload = b"hello depth";
        let mut file = h.encode(payload).unwrap().to_vec();
        file.extend_from_slice(payload);
        let r = parse_header(&file, 0).unwrap();
        assert_eq!(r.header, h);
        assert_eq!(check_payload(&file, &r).unwrap(), payload);
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 1;
            let ok = parse_header(&bad, 0).and_then(|r| check_payload(&bad, &r).map(|_| ()));
            assert!(ok.is_err(), "flip at {i} went unnoticed");
        }
        for cut in 0..file.len() {
            assert!(parse_header(&file[..cut], 0).is_err());
        }
    }

    #[test]
    fn payloads_round_trip() {
        let g = Gap {
            first_frame: 10,
            last_frame: 12,
            count: 3,
            reason: GapReason::QueueFull,
            detail: "compression queue full".into(),
        };
        assert_eq!(Gap::decode(&g.encode().unwrap()).unwrap(), g);
        let e = Event {
            kind: "camera_reconnected".into(),
            message: "{\"serial\":\"1\"}".into(),
        };
        assert_eq!(Event::decode(&e.encode().unwrap()).unwrap(), e);
        let v = VideoSegment {
            segment: 2,
            file_name: "cam.color.002.mkv".into(),
            codec: "libx265".into(),
        };
        assert_eq!(VideoSegment::decode(&v.encode().unwrap()).unwrap(), v);
        let m = FrameMetadata {
            pairs: vec![
                ("actual_exposure".into(), 8500),
                ("frame_counter".into(), -1),
            ],
        };
        assert_eq!(FrameMetadata::decode(&m.encode().unwrap()).unwrap(), m);
        assert_eq!(m.get("actual_exposure"), Some(8500));
        // A corrupt count or key length is an error, not an allocation or a panic.
        assert!(FrameMetadata::decode(&[0xFF, 0xFF]).is_err());
        assert!(FrameMetadata::decode(&[1, 0, 0, 0]).is_err());
        let long = FrameMetadata {
            pairs: vec![("k".repeat(65), 1)],
        };
        assert!(long.encode().is_err());
        let comma = FrameMetadata {
            pairs: vec![("a,b".into(), 1)],
        };
        assert!(comma.encode().is_err());
        assert_eq!(
            FrameMetadata::key_of("Actual Exposure").as_deref(),
            Some("actual_exposure")
        );
        assert_eq!(
            FrameMetadata::key_of("  Time Of  Arrival ").as_deref(),
            Some("time_of_arrival")
        );
        assert_eq!(
            FrameMetadata::key_of("system_time").as_deref(),
            Some("system_time")
        );
        assert_eq!(FrameMetadata::key_of(" - ").as_deref(), None);
        let mut c = ColorFrameEntry {
            segment: 1,
            index_in_video: 99,
            video_time_us: Some(3_300_000),
        };
        assert_eq!(c.encode().len(), ColorFrameEntry::LEN);
        assert_eq!(ColorFrameEntry::decode(&c.encode()).unwrap(), c);
        // A version-1 entry (12 bytes) has no video time; 4 trailing bytes are ignored.
        c.video_time_us = None;
        assert_eq!(c.encode().len(), ColorFrameEntry::LEN_V1);
        assert_eq!(ColorFrameEntry::decode(&c.encode()).unwrap(), c);
        let mut longer = c.encode();
        longer.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(ColorFrameEntry::decode(&longer).unwrap(), c);
        let s = vec![
            ImuSample {
                frame_number: 1,
                device_ts_ms: 5.5,
                host_ts_us: 7,
                xyz: [0.1, -9.8, 0.0],
            };
            3
        ];
        assert_eq!(decode_imu_batch(&encode_imu_batch(&s)).unwrap(), s);
        assert!(decode_imu_batch(&encode_imu_batch(&s)[..50]).is_err());
    }
}
