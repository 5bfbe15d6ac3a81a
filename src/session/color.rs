//! A camera's colour frames, decoded from its colour videos by FFmpeg
//! ([`crate::video::VideoDecoder`]), fetched by (video segment, index in the video).

use std::collections::BTreeMap;

use super::error::{Result, SessionError};
use super::recording::Camera;
use crate::video::{DecoderConfig, FramePlan, VideoDecoder};

/// Colour frames of one camera, fetched by (video segment, index in video) in (mostly)
/// increasing order: one decoder at a time, restarted only when asked to go backwards.
pub struct ColorFrames<'a> {
    camera: &'a Camera,
    cfg: DecoderConfig,
    plans: BTreeMap<u32, FramePlan>,
    current: Option<(u32, VideoDecoder)>,
    /// The last frame read and which one it is.
    buf: Vec<u8>,
    have: Option<(u32, u64)>,
}

impl<'a> ColorFrames<'a> {
    /// `plans`: the frames that will be asked for, per video segment.
    pub fn new(camera: &'a Camera, cfg: DecoderConfig, plans: BTreeMap<u32, FramePlan>) -> Self {
        Self {
            camera,
            cfg,
            plans,
            current: None,
            buf: Vec::new(),
            have: None,
        }
    }

    /// The bytes of frame `index` of segment `segment`, or `None` if the video does not
    /// have it (it ends earlier).
    pub fn get(&mut self, segment: u32, index: u64) -> Result<Option<&[u8]>> {
        if self.have == Some((segment, index)) {
            return Ok(Some(&self.buf));
        }
        let restart = match (&self.current, self.have) {
            (Some((s, _)), Some((hs, hi))) => *s != segment || hs != segment || hi > index,
            (Some((s, _)), None) => *s != segment,
            (None, _) => true,
        };
        if restart {
            self.current = None;
            self.have = None;
            let plan = self
                .plans
                .get(&segment)
                .map(|p| p.from_index(index))
                .filter(|p| p.contains(index))
                .ok_or_else(|| {
                    SessionError::Internal(format!(
                        "colour frame {index} of segment {segment} was not planned"
                    ))
                })?;
            let path = self.camera.videos.get(&segment).ok_or_else(|| {
                SessionError::Input(format!(
                    "{}: colour video segment {segment} is not announced in the file (no video segment record)",
                    self.camera.name
                ))
            })?;
            self.current = Some((segment, VideoDecoder::start(path, &plan, &self.cfg)?));
        }
        let (_, dec) = self.current.as_mut().expect("a decoder is running");
        loop {
            match dec.next_frame(&mut self.buf)? {
                Some(i) => {
                    self.have = Some((segment, i));
                    if i == index {
                        return Ok(Some(&self.buf));
                    }
                    if i > index {
                        return Ok(None);
                    }
                }
                None => return Ok(None),
            }
        }
    }
}
