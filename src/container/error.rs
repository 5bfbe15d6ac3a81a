//! Errors of the container layer: parsing, writing, reading and recovery.

use std::path::PathBuf;

use crate::codec::CodecError;

/// Everything that can go wrong in the container layer. Offsets are byte offsets in the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write failed")]
    Write(#[source] std::io::Error),
    #[error("the writer is unusable after an earlier I/O error")]
    Poisoned,
    /// The disk has no room for more records. The writer is not poisoned: the space to close
    /// the file (index, footer, a last gap and event record) was reserved, so
    /// [`crate::container::Writer::finish`] still closes and indexes it.
    #[error("{}: the disk is full (no room for {needed} more bytes)", path.display())]
    DiskFull { path: PathBuf, needed: u64 },
    #[error("not an rsrec file (bad magic)")]
    BadMagic,
    #[error("file is too short to be an rsrec file ({len} bytes)")]
    TooShort { len: u64 },
    #[error("unsupported format version {found} (this build reads {min}..={max})")]
    UnsupportedVersion { found: u16, min: u16, max: u16 },
    #[error("{what}: truncated (needed {needed} bytes, {available} available)")]
    Truncated {
        what: &'static str,
        needed: u64,
        available: u64,
    },
    #[error("{what}: {value} exceeds the limit of {limit}")]
    LimitExceeded {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    #[error("{what}: invalid UTF-8")]
    BadUtf8 { what: &'static str },
    #[error("{what}: invalid value {value}")]
    InvalidValue { what: &'static str, value: u64 },
    #[error("file header checksum mismatch (expected {expected:#010x}, computed {actual:#010x})")]
    BadHeaderCrc { expected: u32, actual: u32 },
    #[error("record at offset {offset}: no record sync marker")]
    BadSync { offset: u64 },
    #[error("record at offset {offset}: header checksum mismatch (expected {expected:#010x}, computed {actual:#010x})")]
    BadRecordHeaderCrc {
        offset: u64,
        expected: u32,
        actual: u32,
    },
    #[error("record at offset {offset}: payload checksum mismatch (expected {expected:#010x}, computed {actual:#010x})")]
    BadPayloadCrc {
        offset: u64,
        expected: u32,
        actual: u32,
    },
    #[error("record at offset {offset}: payload of {len} bytes runs past the end of the file ({file_len} bytes)")]
    RecordPastEnd {
        offset: u64,
        len: u64,
        file_len: u64,
    },
    #[error("record at offset {offset}: {message}")]
    BadRecord { offset: u64, message: String },
    #[error("record at offset {offset}")]
    Codec {
        offset: u64,
        #[source]
        source: CodecError,
    },
    #[error("index: {0}")]
    BadIndex(String),
    #[error("no stream with id {0}")]
    NoSuchStream(u8),
    #[error("stream {stream}: frame {index} is out of range (the stream has {count} frames)")]
    FrameOutOfRange { stream: u8, index: u64, count: u64 },
    #[error("stream {stream} is a {kind} stream; this needs a depth stream")]
    NotDepth { stream: u8, kind: &'static str },
    /// §5.9: infrared frames decode only in an infrared stream of format `y8`.
    #[error("stream {stream} is a {kind} stream in {format}; this needs an infrared stream in y8")]
    NotInfrared {
        stream: u8,
        kind: &'static str,
        format: &'static str,
    },
    /// §3 (frame-size limit): a stream whose frames are larger than the reader's limit; nothing was allocated.
    #[error(
        "stream {stream} has {width}x{height} frames, above this reader's limit of {limit} pixels \
         a frame (set RSREC_MAX_FRAME_PIXELS to read it)"
    )]
    FrameTooLarge {
        stream: u8,
        width: u32,
        height: u32,
        limit: u64,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ContainerError {
    /// Whether this is a full disk: [`ContainerError::DiskFull`], or an I/O error that is
    /// ENOSPC or EDQUOT (a writer that could not reserve space, a file that could not be
    /// created).
    pub fn is_disk_full(&self) -> bool {
        match self {
            ContainerError::DiskFull { .. } => true,
            ContainerError::Io { source, .. } | ContainerError::Write(source) => {
                super::writer::is_disk_full_io(source)
            }
            _ => false,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = ContainerError> = std::result::Result<T, E>;
