//! Colour options of `record`/`import`: probe FFmpeg and pick the encoder before recording.

use std::path::Path;

use anyhow::Context;
use rsrec::record::color::{ffmpeg_factory, FfmpegSettings};
use rsrec::record::ColorSinkFactory;
use rsrec::video::{self, ColorCodec};

/// Colour encoder options shared by `record` and `import`.
#[derive(Debug, Clone, clap::Args)]
pub struct ColorArgs {
    /// Colour encoder: libx265, libx264, libsvtav1, hevc_nvenc, hevc_vaapi, hevc_qsv, or auto
    /// (the first hardware encoder that opens, else libx265); `off` (import) skips colour.
    #[arg(long, default_value = "libx265")]
    pub color_codec: String,
    /// Colour quality (constant rate factor; lower is better and larger).
    #[arg(long)]
    pub crf: Option<u8>,
    /// Encoder preset [default: veryfast for x264/x265, 10 for SVT-AV1, p4 for NVENC]. An
    /// encoder that keeps dropping frames while recording (15 within 3 s) goes on one preset
    /// faster, in a new video (session.json `color_preset_steps`).
    #[arg(long)]
    pub preset: Option<String>,
    /// Path of the ffmpeg program.
    #[arg(long, default_value = "ffmpeg")]
    pub ffmpeg: std::path::PathBuf,
    /// Colour frames each encoder queues while FFmpeg is busy. When it is full, colour frames
    /// are dropped (each one a counted gap) rather than taking CPU from depth.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub color_queue: u32,
}

impl ColorArgs {
    pub fn factory(&self) -> anyhow::Result<ColorSinkFactory> {
        factory(
            &self.ffmpeg,
            &self.color_codec,
            self.crf,
            self.preset.clone(),
            self.color_queue as usize,
        )
    }
}

/// Checks FFmpeg and the encoder up front (clear error before anything is recorded) and
/// returns the colour factory for the pipeline.
pub fn factory(
    ffmpeg: &Path,
    codec: &str,
    crf: Option<u8>,
    preset: Option<String>,
    queue_frames: usize,
) -> anyhow::Result<ColorSinkFactory> {
    let codec: ColorCodec = codec
        .parse()
        .map_err(|e| super::util::usage(format!("--color-codec: {e}")))?;
    // Checked before FFmpeg is even looked for: a bad value is the user's, not FFmpeg's.
    if let Some(q) = crf {
        codec
            .check_quality(q)
            .map_err(|e| super::util::usage(format!("--crf: {e}")))?;
    }
    if let Some(p) = &preset {
        codec
            .check_preset(p)
            .map_err(|e| super::util::usage(format!("--preset: {e}")))?;
    }
    let info = video::probe(ffmpeg)
        .context("colour needs FFmpeg (apt-get install ffmpeg, or --color off)")?;
    let resolved = video::resolve(codec, &info, ffmpeg).context("choosing the colour encoder")?;
    if let Some(p) = &preset {
        // `auto` chose an encoder only now.
        resolved
            .codec()
            .check_preset(p)
            .map_err(|e| super::util::usage(format!("--preset: {e}")))?;
    }
    // Live recording needs an encoder that keeps up: fast presets unless asked otherwise.
    let preset = preset.or_else(|| {
        match resolved.codec() {
            ColorCodec::Libx265 | ColorCodec::Libx264 => Some("veryfast"),
            ColorCodec::Libsvtav1 => Some("10"),
            ColorCodec::HevcNvenc => Some("p4"),
            _ => None,
        }
        .map(String::from)
    });
    Ok(ffmpeg_factory(FfmpegSettings {
        ffmpeg: ffmpeg.to_path_buf(),
        codec: resolved,
        crf,
        preset,
        queue_frames,
    }))
}
