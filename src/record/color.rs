//! Colour through FFmpeg: adapts [`crate::video::ColorEncoder`] to the pipeline's
//! [`ColorSink`], one Matroska file per camera and colour segment
//! (`<camera>.color.<NNN>.mkv`).

use std::path::PathBuf;
use std::sync::Arc;

use super::pipeline::{
    ColorError, ColorPush, ColorRequest, ColorSink, ColorSinkFactory, OpenedColor,
};
use crate::container::StreamKind;
use crate::video::{ColorEncoder, EncoderConfig, PushResult, ResolvedCodec, VideoError};

struct FfmpegSink(ColorEncoder);

impl ColorSink for FfmpegSink {
    fn push(&mut self, frame: Vec<u8>, host_ts_us: i64) -> ColorPush {
        match self.0.push_at(frame, host_ts_us) {
            Ok(PushResult::Queued { index, time_ms }) => ColorPush::Queued {
                index,
                time_us: time_ms as i64 * 1000,
            },
            Ok(PushResult::Dropped) => ColorPush::Dropped,
            Ok(PushResult::EncoderDead(f)) => ColorPush::Dead(Box::new(f)),
            Err(e) => ColorPush::Dead(Box::new(e)),
        }
    }

    fn push_last_dropped(&mut self, timeout: std::time::Duration) -> Option<ColorPush> {
        match self.0.push_last_dropped(timeout) {
            Ok(Some(PushResult::Queued { index, time_ms })) => Some(ColorPush::Queued {
                index,
                time_us: time_ms as i64 * 1000,
            }),
            _ => None,
        }
    }

    fn finish(self: Box<Self>) -> Result<u64, ColorError> {
        Ok(self.0.finish().map(|s| s.frames_written)?)
    }
}

/// Settings for every camera's colour encoder.
#[derive(Clone, Debug)]
pub struct FfmpegSettings {
    pub ffmpeg: PathBuf,
    pub codec: ResolvedCodec,
    pub crf: Option<u8>,
    pub preset: Option<String>,
    /// Encoder queue in frames.
    pub queue_frames: usize,
}

/// A factory that starts one FFmpeg per camera and colour segment, `faster` presets faster
/// than the configured one ([`crate::video::ColorCodec::faster_preset`], as far as there are).
pub fn ffmpeg_factory(settings: FfmpegSettings) -> ColorSinkFactory {
    Arc::new(move |req: &ColorRequest<'_>| {
        let c = req
            .info
            .stream(StreamKind::Color)
            .ok_or_else(|| VideoError::InvalidConfig("the camera has no colour stream".into()))?;
        let codec = settings.codec.codec();
        let mut preset = settings.preset.clone();
        for _ in 0..req.faster {
            match preset.as_deref().and_then(|p| codec.faster_preset(p)) {
                Some(f) => preset = Some(f.to_string()),
                None => break,
            }
        }
        let can_go_faster = preset
            .as_deref()
            .and_then(|p| codec.faster_preset(p))
            .is_some();
        let file = format!("{}.color.{:03}.mkv", req.camera, req.segment);
        let enc = ColorEncoder::start(EncoderConfig {
            ffmpeg: settings.ffmpeg.clone(),
            output: req.dir.join(&file),
            width: c.width,
            height: c.height,
            fps: c.fps,
            pixel_format: c.format,
            codec: settings.codec.clone(),
            crf: settings.crf,
            preset: preset.clone(),
            queue_frames: settings.queue_frames,
            // Depth first: colour encoding never takes CPU from depth compression.
            nice: crate::video::COLOR_NICE,
        })?;
        Ok(OpenedColor {
            sink: Box::new(FfmpegSink(enc)),
            file,
            encoder: settings.codec.encoder_name().to_string(),
            preset,
            can_go_faster,
        })
    })
}
