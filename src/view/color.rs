//! Colour frames for the viewer: one [`ColorSource`] per camera, run by a
//! [`super::worker::Worker`] thread, decodes through an FFmpeg subprocess
//! ([`crate::export::video::VideoDecoder`], the decoder export uses).
//!
//! Colour frame `k` of a camera is frame `index_in_video` of one of its videos. The source
//! keeps one FFmpeg process reading forward from the last frame asked for, so playback and
//! stepping forward read frames as they come; a frame behind it, in another video, or more
//! than [`READ_AHEAD_LIMIT`] frames ahead starts a new process that seeks (`-ss`) to just
//! before the frame and decodes at most [`CHUNK`] frames from there. The last few frames
//! decoded are kept, and a new process starts [`BACK`] frames early, so stepping back
//! through the video mostly finds its frames already decoded.
//!
//! A seek costs the FFmpeg start (~100 ms on a busy 2-core machine) plus decoding from the
//! keyframe before the frame: the colour videos have a keyframe every 250 frames (x265's
//! default), so up to ~8 s of video (~0.3 s here); see `examples/view_seek.rs`.

use std::collections::VecDeque;
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

/// A new process starts this many frames before the one asked for, and the frames decoded
/// on the way are kept, so stepping backwards does not restart FFmpeg at every step.
pub const BACK: u64 = 10;

/// Colour frames of one camera.
pub struct ColorSource {
    session: Arc<Session>,
    cam: usize,
    ffmpeg: PathBuf,
    /// The running decoder: video segment, next index it will produce, last index planned.
    current: Option<(u32, u64, u64, VideoDecoder)>,
    /// The last frames decoded, by (video segment, index in video), at most `BACK + 1`.
    recent: VecDeque<((u32, u64), Vec<u8>)>,
}

impl ColorSource {
    pub fn new(session: Arc<Session>, cam: usize, ffmpeg: PathBuf) -> Self {
        Self {
            session,
            cam,
            ffmpeg,
            current: None,
            recent: VecDeque::new(),
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
        let image = |rgb: Vec<u8>| RgbImage { width, height, rgb };
        if let Some((_, rgb)) = self.recent.iter().find(|(key, _)| *key == (seg, index)) {
            return Ok(Some(image(rgb.clone())));
        }
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
            for i in index.saturating_sub(BACK)..=last {
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
            let mut buf = match self.recent.len() as u64 > BACK {
                true => self.recent.pop_front().map(|(_, b)| b).unwrap_or_default(),
                false => Vec::new(),
            };
            match dec.next_frame(&mut buf) {
                Ok(Some(i)) => {
                    *next = i + 1;
                    self.recent.push_back(((seg, i), buf));
                    if i == index {
                        let rgb = self
                            .recent
                            .back()
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default();
                        return Ok(Some(image(rgb)));
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
