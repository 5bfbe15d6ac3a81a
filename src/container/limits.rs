//! What a reader is willing to spend on one frame (`format-spec.md` §3, "Frame-size limit of readers"). A few bytes of a
//! rANS, zstd or LZ4 payload can legitimately describe a frame of the format's maximum size
//! (16384 x 16384, 512 MiB of depth): an all-hole or flat frame costs almost nothing to code.
//! So the payload cannot bound the memory and time a decoder spends; this limit does, before
//! anything is allocated. Like zstd's window limit, it is a reader's policy, not a property
//! of the file: `RSREC_MAX_FRAME_PIXELS` raises (or lowers) it, and the writer refuses
//! streams above it so that rsrec never writes a file its own reader refuses.

use super::error::{ContainerError, Result};
use super::format::{DEFAULT_MAX_FRAME_PIXELS, MAX_DIMENSION, MAX_FRAME_PIXELS_ENV};
use super::header::{FileHeader, StreamDescriptor, StreamKind};

/// Resource limits of a reader.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest `width * height` of an image frame that is decoded or allocated.
    pub max_frame_pixels: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_frame_pixels: DEFAULT_MAX_FRAME_PIXELS,
        }
    }
}

impl ReadLimits {
    /// No limit beyond the format's own (`MAX_DIMENSION` squared).
    pub fn format_maximum() -> Self {
        Self {
            max_frame_pixels: MAX_DIMENSION as u64 * MAX_DIMENSION as u64,
        }
    }

    /// The default, or `RSREC_MAX_FRAME_PIXELS` when it is set (a whole number of pixels,
    /// at least 1; values above the format's maximum mean the format's maximum).
    pub fn from_env() -> Result<Self> {
        match std::env::var(MAX_FRAME_PIXELS_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(Self::default()),
            Err(std::env::VarError::NotUnicode(_)) => Err(bad_env("is not UTF-8")),
            Ok(v) => match v.trim().parse::<u64>() {
                Ok(n) if n >= 1 => Ok(Self {
                    max_frame_pixels: n.min(Self::format_maximum().max_frame_pixels),
                }),
                _ => Err(bad_env(&format!(
                    "'{v}' is not a whole number of pixels of at least 1"
                ))),
            },
        }
    }

    /// The number of samples of one frame of `stream`, or [`ContainerError::FrameTooLarge`].
    pub fn frame_pixels(&self, stream: &StreamDescriptor) -> Result<usize> {
        let n = stream.width as u64 * stream.height as u64;
        if n > self.max_frame_pixels {
            return Err(ContainerError::FrameTooLarge {
                stream: stream.id,
                width: stream.width,
                height: stream.height,
                limit: self.max_frame_pixels,
            });
        }
        Ok(n as usize)
    }

    /// Checks every image stream of `header` (what the writer calls before creating a file).
    pub fn check_header(&self, header: &FileHeader) -> Result<()> {
        for s in &header.streams {
            if matches!(s.kind, StreamKind::Depth | StreamKind::Color) {
                self.frame_pixels(s)?;
            }
        }
        Ok(())
    }
}

fn bad_env(why: &str) -> ContainerError {
    ContainerError::InvalidArgument(format!("{MAX_FRAME_PIXELS_ENV}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_above_the_limit_are_refused_with_their_size() {
        let limits = ReadLimits {
            max_frame_pixels: 100,
        };
        let ok = StreamDescriptor::depth(0, 10, 10, 30.0);
        assert_eq!(limits.frame_pixels(&ok).unwrap(), 100);
        let big = StreamDescriptor::depth(3, 11, 10, 30.0);
        let err = limits.frame_pixels(&big).unwrap_err();
        assert!(matches!(
            err,
            ContainerError::FrameTooLarge {
                stream: 3,
                width: 11,
                height: 10,
                limit: 100
            }
        ));
        assert!(err.to_string().contains(MAX_FRAME_PIXELS_ENV), "{err}");
    }

    #[test]
    fn the_default_reads_every_realsense_mode_and_far_more() {
        let d = ReadLimits::default();
        for (w, h) in [(1280, 720), (1920, 1080), (4096, 4096)] {
            assert!(d
                .frame_pixels(&StreamDescriptor::depth(0, w, h, 30.0))
                .is_ok());
        }
        assert!(d
            .frame_pixels(&StreamDescriptor::depth(
                0,
                MAX_DIMENSION,
                MAX_DIMENSION,
                30.0
            ))
            .is_err());
    }
}
