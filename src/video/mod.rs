//! Colour video: one FFmpeg process per camera, raw frames on stdin; and back out again
//! ([`VideoDecoder`], [`StandbyDecoder`]: one FFmpeg per video file, frames on its stdout).
//!
//! 1. [`probe`] an FFmpeg binary (version, encoder list).
//! 2. [`resolve`] a [`ColorCodec`] (`auto` tries NVENC, VAAPI and Quick Sync by really
//!    encoding a frame, then falls back to libx265).
//! 3. [`ColorEncoder::start`] one FFmpeg per colour stream, [`ColorEncoder::push_at`] frames
//!    with their capture times (never blocks; a full queue drops the frame and says so; video
//!    frame `index` = number of frames accepted before it, at its capture time in the video),
//!    and [`ColorEncoder::finish`].
//!
//! The output is Matroska with short clusters flushed after every packet, so the file stays
//! playable if FFmpeg or rsrec is killed (see [`ffmpeg_args`]). If FFmpeg dies, `push`
//! returns [`PushResult::EncoderDead`] with FFmpeg's stderr tail; the caller finishes that
//! encoder and continues colour in a new file.
//!
//! ```no_run
//! use std::path::Path;
//! use rsrec::container::PixelFormat;
//! use rsrec::video::{self, ColorCodec, ColorEncoder, EncoderConfig, PushResult};
//!
//! # fn main() -> Result<(), video::VideoError> {
//! let ffmpeg = Path::new("ffmpeg");
//! let info = video::probe(ffmpeg)?;
//! let codec = video::resolve(ColorCodec::Auto, &info, ffmpeg)?;
//! let enc = ColorEncoder::start(EncoderConfig {
//!     ffmpeg: ffmpeg.into(),
//!     output: "cam0-color.mkv".into(),
//!     width: 640,
//!     height: 480,
//!     fps: 30.0,
//!     pixel_format: PixelFormat::Rgb8,
//!     codec,
//!     crf: Some(23),
//!     preset: None,
//!     queue_frames: 30,
//!     nice: 0,
//! })?;
//! // The frame's capture time (µs, any clock): the video keeps it.
//! let captured_us = 1_700_000_000_000_000;
//! match enc.push_at(vec![0; 640 * 480 * 3], captured_us)? {
//!     PushResult::Queued { index, time_ms } => { /* video frame `index`, at `time_ms` */ }
//!     PushResult::Dropped => { /* record a gap */ }
//!     PushResult::EncoderDead(why) => { /* finish, log `why`, start a new file */ }
//! }
//! let stats = enc.finish()?;
//! # Ok(()) }
//! ```

mod codec;
mod decoder;
mod encoder;
mod error;
pub mod mkv;
mod process;
mod tail;

pub use codec::{probe, resolve, ColorCodec, FfmpegInfo, ResolvedCodec, DEFAULT_VAAPI_DEVICE};
pub use decoder::{
    DecoderConfig, FramePlan, StandbyDecoder, VideoDecoder, VideoOutput, DEFAULT_SEEK_AFTER_S,
};
pub use encoder::{
    ffmpeg_args, ffmpeg_pixel_format, ColorEncoder, EncodeStats, EncoderConfig, PushResult,
    CLUSTER_TIME_LIMIT_MS, COLOR_NICE, DEFAULT_FINISH_TIMEOUT, DROP_TIMEOUT, FINISH_CAP_FACTOR,
};
pub use error::{FfmpegFailure, VideoError};
