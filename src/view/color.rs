//! Colour frames for the viewer: one [`ColorSource`] per camera, run by a
//! [`super::worker::Worker`] thread, decodes through an FFmpeg subprocess
//! ([`crate::video::VideoDecoder`], the decoder export uses).
//!
//! Colour frame `k` of a camera is frame `index_in_video` of one of its videos. The source
//! keeps one FFmpeg process reading forward from the last frame asked for, so playback and
//! stepping forward read frames as they come; a frame behind it, in another video, or more
//! than [`READ_AHEAD_LIMIT`] frames ahead is a seek: a new process decodes at most
//! [`CHUNK`] frames from there. The last few frames decoded are kept, and stepping backwards
//! starts the new process [`BACK`] frames early, so it does not restart FFmpeg at every step.
//!
//! Seeks use a standby FFmpeg process ([`StandbyDecoder`]) started after the previous seek:
//! starting FFmpeg costs ~70-80 ms here before it decodes anything, which a standby process
//! has already paid, so a seek costs opening the video and decoding from the keyframe before
//! the frame (the recorder writes one every second). If the standby process fails, the
//! source falls back to a fresh FFmpeg with an input seek (`-ss`) and stops using standby
//! processes. `examples/view_seek.rs` measures seeks.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use super::model::Session;
use super::worker::{Decoded, FrameId, FrameSource, RgbImage};
use crate::session::Stream;
use crate::video::{DecoderConfig, FramePlan, StandbyDecoder, VideoDecoder, VideoOutput};

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
    /// The FFmpeg process waiting for the next seek.
    standby: Option<StandbyDecoder>,
    /// False once a standby process failed: seeks then start FFmpeg with `-ss` (and the
    /// spare process is dropped).
    use_standby: bool,
}

impl ColorSource {
    /// A source for camera `cam`; starts its first standby FFmpeg process at once.
    pub fn new(session: Arc<Session>, cam: usize, ffmpeg: PathBuf) -> Self {
        let mut s = Self {
            session,
            cam,
            ffmpeg,
            current: None,
            recent: VecDeque::new(),
            standby: None,
            use_standby: true,
        };
        s.refill_standby();
        s
    }

    /// The decoder settings of this camera's colour stream.
    fn config(&self) -> Option<DecoderConfig> {
        let desc = self
            .session
            .recording
            .cameras
            .get(self.cam)?
            .color
            .as_ref()?;
        Some(DecoderConfig {
            ffmpeg: self.ffmpeg.clone(),
            output: VideoOutput::Raw {
                width: desc.width,
                height: desc.height,
            },
            fps: desc.fps,
            seek_after_s: 0.0,
        })
    }

    /// Starts a standby process for the next seek if there is none (drops it when standby
    /// processes are off).
    fn refill_standby(&mut self) {
        if !self.use_standby {
            self.standby = None;
        } else if self.standby.is_none() {
            // An FFmpeg that cannot start fails again, with its message, at the next seek.
            self.standby = self.config().and_then(|c| StandbyDecoder::spawn(&c).ok());
        }
    }

    /// A decoder for frames `first..=last` of `path`: the standby process if there is one,
    /// else a new FFmpeg that seeks with `-ss`.
    fn start_decoder(
        &mut self,
        path: &std::path::Path,
        (first, first_time_us): (u64, Option<i64>),
        last: u64,
    ) -> Result<(VideoDecoder, bool), String> {
        if let Some(standby) = self.standby.take() {
            match standby.begin(path, first, first_time_us, last) {
                Ok(dec) => return Ok((dec, true)),
                Err(_) => self.use_standby = false,
            }
        }
        let cfg = self.config().ok_or("no colour stream")?;
        let mut plan = FramePlan::default();
        plan.push_timed(first, first_time_us);
        for i in first + 1..=last {
            plan.push(i);
        }
        let dec = VideoDecoder::start(path, &plan, &cfg).map_err(|e| e.to_string())?;
        Ok((dec, false))
    }

    fn frame(&mut self, k: usize) -> Result<Option<RgbImage>, String> {
        let session = Arc::clone(&self.session);
        let camera = session
            .recording
            .cameras
            .get(self.cam)
            .ok_or_else(|| format!("no camera {}", self.cam))?;
        let desc = camera
            .color
            .as_ref()
            .ok_or_else(|| format!("{}: no colour stream", camera.name))?;
        let (width, height) = (desc.width, desc.height);
        let (_, entry) = camera.color_frame(k).map_err(|e| crate::error::chain(&e))?;
        let (seg, index) = (entry.segment, entry.index_in_video);
        let image = |rgb: Vec<u8>| RgbImage { width, height, rgb };
        if let Some((_, rgb)) = self.recent.iter().find(|(key, _)| *key == (seg, index)) {
            return Ok(Some(image(rgb.clone())));
        }
        let reuse = matches!(&self.current,
            Some((s, next, last, _)) if *s == seg && *next <= index && index <= *last
                && index - *next <= READ_AHEAD_LIMIT);
        // Set when this call starts a decoder: its video, first frame, and whether it is a
        // standby process (retried without one if it fails).
        let mut started = None;
        let mut retired = None;
        if !reuse {
            // Just behind the running decoder: the user is stepping backwards.
            let stepping_back = matches!(&self.current,
                Some((s, next, _, _)) if *s == seg && index < *next
                    && *next - index <= READ_AHEAD_LIMIT + BACK);
            // Reaping a process and joining its stderr thread takes a while: the old one
            // is killed now (so it stops decoding ahead) and reaped after the new frame.
            retired = self.current.take();
            if let Some((_, _, _, old)) = retired.as_mut() {
                old.abort();
            }
            let path = camera.videos.get(&seg).ok_or_else(|| {
                format!(
                    "{}: colour video segment {seg} is not announced in the file",
                    camera.name
                )
            })?;
            let first = if stepping_back {
                index.saturating_sub(BACK)
            } else {
                index
            };
            // Where `first` is in the video: the entry `index - first` before this one (a
            // segment's entries are its video's frames in order).
            let first_time_us = k
                .checked_sub((index - first) as usize)
                .and_then(|j| camera.color_frame(j).ok())
                .filter(|(_, e)| e.segment == seg && e.index_in_video == first)
                .and_then(|(_, e)| e.video_time_us);
            let (dec, via_standby) =
                self.start_decoder(path, (first, first_time_us), index + CHUNK - 1)?;
            self.current = Some((seg, first, index + CHUNK - 1, dec));
            started = Some((path, (first, first_time_us), via_standby));
        }
        let mut result = self.read_until(seg, index);
        if let (Err(_), Some((path, first, true))) = (&result, started) {
            // The standby process failed (an FFmpeg without the concat demuxer, say): once
            // more with a plain `-ss` decoder, and no more standby processes.
            self.use_standby = false;
            let (dec, _) = self.start_decoder(path, first, index + CHUNK - 1)?;
            self.current = Some((seg, first.0, index + CHUNK - 1, dec));
            result = self.read_until(seg, index);
        }
        drop(retired);
        if started.is_some() {
            // After the frame is out, so that FFmpeg's start does not compete with the seek.
            self.refill_standby();
        }
        Ok(result?.map(image))
    }

    /// Reads from the running decoder until frame `index` of segment `seg`.
    fn read_until(&mut self, seg: u32, index: u64) -> Result<Option<Vec<u8>>, String> {
        let Some((_, next, _, dec)) = self.current.as_mut() else {
            return Ok(None);
        };
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
                        return Ok(Some(rgb));
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
