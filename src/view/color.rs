//! Colour frames for the viewer: one [`ColorSource`] per camera, run by a
//! [`super::worker::Worker`] thread, decodes through an FFmpeg subprocess
//! ([`crate::export::video::VideoDecoder`], the decoder export uses).
//!
//! Colour frame `k` of a camera is frame `index_in_video` of one of its videos. The source
//! keeps one FFmpeg process reading forward from the last frame asked for, so playback and
//! stepping forward read frames as they come; a frame behind it, in another video, or more
//! than [`READ_AHEAD_LIMIT`] frames ahead starts a new process that seeks (`-ss`) to just
//! before the frame and decodes at most [`CHUNK`] frames from there.

use std::path::PathBuf;
use std::sync::Arc;

use super::model::Session;
use super::worker::{Decoded, FrameId, FrameSource, RgbImage};
use crate::export::video::{DecoderConfig, FramePlan, VideoDecoder, VideoOutput};
use crate::export::Stream;

/// Frames one FFmpeg process is asked for before it is restarted further on.
pub const CHUNK: u64 = 300;
/// Read forward (rather than seek) to a frame at most this many frames ahead.
pub const READ_AHEAD_LIMIT: u64 = 45;

/// Colour frames of one camera.
pub struct ColorSource {
    session: Arc<Session>,
    cam: usize,
    ffmpeg: PathBuf,
    /// The running decoder: video segment, next index it will produce, last index planned.
    current: Option<(u32, u64, u64, VideoDecoder)>,
    buf: Vec<u8>,
}

impl ColorSource {
    pub fn new(session: Arc<Session>, cam: usize, ffmpeg: PathBuf) -> Self {
        Self {
            session,
            cam,
            ffmpeg,
            current: None,
            buf: Vec::new(),
        }
    }

    fn frame(&mut self, k: usize) -> Result<Option<RgbImage>, String> {
        let camera = self
            .session
            .recording
            .cameras
            .get(self.cam)
            .ok_or_else(|| format!("no camera {}", self.cam))?;
        let desc = camera
            .color
            .as_ref()
            .ok_or_else(|| format!("{}: no colour stream", camera.name))?;
        let (width, height) = (desc.width, desc.height);
        let (_, entry) = camera
            .color_frame(k)
            .map_err(|e| crate::container::error::error_chain(&e))?;
        let (seg, index) = (entry.segment, entry.index_in_video);
        let reuse = matches!(&self.current,
            Some((s, next, last, _)) if *s == seg && *next <= index && index <= *last
                && index - *next <= READ_AHEAD_LIMIT);
        if !reuse {
            self.current = None;
            let path = camera.videos.get(&seg).ok_or_else(|| {
                format!(
                    "{}: colour video segment {seg} is not announced in the file",
                    camera.name
                )
            })?;
            let mut plan = FramePlan::default();
            let last = index + CHUNK - 1;
            for i in index..=last {
                plan.push(i);
            }
            let cfg = DecoderConfig {
                ffmpeg: self.ffmpeg.clone(),
                output: VideoOutput::Raw { width, height },
                fps: desc.fps,
                seek_after_s: 0.0,
            };
            let dec = VideoDecoder::start(path, &plan, &cfg).map_err(|e| e.to_string())?;
            self.current = Some((seg, index, last, dec));
        }
        let (_, next, _, dec) = self.current.as_mut().expect("a decoder is running");
        loop {
            match dec.next_frame(&mut self.buf) {
                Ok(Some(i)) => {
                    *next = i + 1;
                    if i == index {
                        return Ok(Some(RgbImage {
                            width,
                            height,
                            rgb: std::mem::take(&mut self.buf),
                        }));
                    }
                }
                Ok(None) => {
                    self.current = None;
                    return Ok(None);
                }
                Err(e) => {
                    self.current = None;
                    return Err(e.to_string());
                }
            }
        }
    }
}

impl FrameSource for ColorSource {
    fn decode(&mut self, (cam, k): FrameId) -> Decoded {
        if cam != self.cam {
            return Decoded::Failed {
                cam,
                stream: Stream::Color,
                k,
                message: format!(
                    "colour worker of camera {} asked for camera {cam}",
                    self.cam
                ),
            };
        }
        match self.frame(k) {
            Ok(image) => Decoded::Color { cam, k, image },
            Err(message) => Decoded::Failed {
                cam,
                stream: Stream::Color,
                k,
                message,
            },
        }
    }
}
