//! Errors of the colour-video layer (encoding and decoding).

use std::fmt;
use std::path::PathBuf;
use std::process::ExitStatus;

use crate::container::PixelFormat;

use super::encoder::EncodeStats;

/// Everything that can go wrong while probing FFmpeg or encoding or decoding colour video.
///
/// `Display` shows only this level; the FFmpeg details (exit status, stderr tail) are in the
/// [`FfmpegFailure`] returned by `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VideoError {
    #[error("ffmpeg not found at {path:?} (install FFmpeg or pass the path of its binary)")]
    FfmpegNotFound { path: PathBuf },
    #[error("cannot run ffmpeg at {path:?}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start a thread for the ffmpeg process")]
    Thread(#[source] std::io::Error),
    #[error("`ffmpeg {args}` failed")]
    ProbeFailed {
        args: String,
        #[source]
        source: FfmpegFailure,
    },
    #[error("`ffmpeg {args}`: unexpected output: {detail}")]
    UnexpectedOutput { args: String, detail: String },
    #[error("unknown colour codec {name:?} (expected one of: {expected})")]
    UnknownCodec {
        name: String,
        expected: &'static str,
    },
    #[error("encoder {name} is not usable with this ffmpeg ({available_hint})")]
    EncoderUnavailable {
        name: String,
        available_hint: String,
        #[source]
        source: Option<FfmpegFailure>,
    },
    #[error("pixel format {format:?} cannot be encoded as colour video")]
    UnsupportedPixelFormat { format: PixelFormat },
    #[error("invalid encoder configuration: {0}")]
    InvalidConfig(String),
    #[error("output file {path:?} already exists (refusing to overwrite)")]
    OutputExists { path: PathBuf },
    #[error("frame of {got} bytes, expected {expected} (width x height x bytes per pixel)")]
    FrameSize { expected: usize, got: usize },
    #[error("the colour encoder is already closed")]
    Closed,
    #[error("colour video {} is missing", path.display())]
    VideoMissing { path: PathBuf },
    #[error("colour video {}: {detail}", path.display())]
    VideoPath { path: PathBuf, detail: String },
    #[error("reading frames of {} from ffmpeg", path.display())]
    ReadFrames {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ffmpeg failed to decode {}", path.display())]
    DecodeFailed {
        path: PathBuf,
        #[source]
        source: FfmpegFailure,
    },
    #[error(
        "colour encoder writing {output:?} failed ({} frames sent to ffmpeg, {} lost)",
        stats.frames_written,
        stats.frames_lost
    )]
    EncoderDied {
        output: PathBuf,
        /// Counters at the time of the failure (boxed to keep `VideoError` small).
        stats: Box<EncodeStats>,
        #[source]
        source: FfmpegFailure,
    },
}

/// What an FFmpeg process did wrong: our description of the failure, its exit status if it
/// has exited, and the last lines it wrote to stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FfmpegFailure {
    /// What went wrong, from our side ("ffmpeg exited unexpectedly", "writing a frame to
    /// ffmpeg failed: Broken pipe (os error 32)", "timed out after 10 s", ...).
    pub cause: String,
    /// Exit status, when the process has been reaped.
    pub status: Option<ExitStatus>,
    /// The last lines ffmpeg wrote to stderr (bounded; may be empty).
    pub stderr_tail: String,
}

impl FfmpegFailure {
    /// The most useful part of the stderr tail for a one-line message: its last few lines.
    pub fn stderr_summary(&self) -> String {
        let lines: Vec<&str> = self
            .stderr_tail
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let start = lines.len().saturating_sub(4);
        lines[start..].join(" / ")
    }
}

/// "exited with status 1", "killed by signal 9 (SIGKILL)".
pub(crate) fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGINT => " (SIGINT)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGPIPE => " (SIGPIPE)",
                _ => "",
            };
            return format!("killed by signal {sig}{name}");
        }
    }
    format!("ended with {status}")
}

impl fmt::Display for FfmpegFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cause)?;
        if let Some(status) = self.status {
            write!(f, " ({})", describe_status(status))?;
        }
        let summary = self.stderr_summary();
        if !summary.is_empty() {
            write!(f, ": {summary}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FfmpegFailure {}
