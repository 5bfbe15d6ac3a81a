//! Colour frames back out of the colour videos, through FFmpeg (used by export, the viewer
//! and [`crate::session`]).
//!
//! Colour-frame entry *i* of video segment S is frame `index_in_video` of S's video file
//! (§5.2, §5.6). One FFmpeg process per video file decodes it and a `select` filter keeps
//! exactly the frames export needs, counted by their index in the decoded video (`n`), so the
//! frames that come out are known by position. FFmpeg writes them to its stdout as raw RGB
//! (`rgb24`, for NumPy and PLY), or encoded as PNG or JPEG (`image2pipe`) for `--to color`;
//! this module splits that stream into frames.
//!
//! Far into a long video, decoding from the start would take minutes, so FFmpeg first seeks
//! (`-ss`, input side) to a little before the first wanted frame. `n` then no longer counts
//! from the start of the video, so a first `select` on time lets through only frames from
//! the first wanted one on. The plan knows where the frame is in time: since format version 2
//! each colour-frame entry gives its frame's time in the video (whole milliseconds, frames at
//! least 1 ms apart: the cut is half a millisecond before it); version-1 videos have frame *i*
//! at *i* / fps (FFmpeg was fed raw frames at a fixed `-framerate`), and the cut is half a
//! frame before it.
//!
//! The FFmpeg process's stderr is drained on its own thread into a bounded tail (for error
//! messages), and the process is killed when the decoder is dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::error::{FfmpegFailure, VideoError};
use super::process::{drain_into_tail, lock, spawn_error, TAIL_BYTES, TAIL_LINES};
use super::tail::Tail;

type Result<T, E = VideoError> = std::result::Result<T, E>;

/// What FFmpeg writes for each frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoOutput {
    /// Packed RGB, 3 bytes per pixel, `width * height * 3` bytes per frame.
    Raw { width: u32, height: u32 },
    /// One 8-bit RGB PNG file per frame; `level` is zlib's compression level (FFmpeg's
    /// default when `None`).
    Png { level: Option<u8> },
    /// One JPEG file per frame; `qscale` is FFmpeg's `-q:v` (2 = best .. 31).
    Jpeg { qscale: u8 },
}

/// At most this many terms in a `select` expression; a longer plan decodes the whole span
/// and the unwanted frames are skipped here instead.
const MAX_RUNS: usize = 256;

/// Seek (instead of decoding from the start) when the first wanted frame is more than this
/// many seconds into the video.
pub const DEFAULT_SEEK_AFTER_S: f64 = 20.0;

/// How far before the first wanted frame FFmpeg seeks to (the exact cut is made by time).
const SEEK_MARGIN_S: f64 = 1.0;

/// How far before a frame with a known time the cut goes: frames of a timed video are whole
/// milliseconds apart (at least one), and FFmpeg's Matroska times are milliseconds.
const TIMED_CUT_S: f64 = 0.0005;

/// An arithmetic run of video indices: `start, start + step, ... <= last` (`step` 0: one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    start: u64,
    last: u64,
    step: u64,
}

impl Run {
    fn contains(&self, i: u64) -> bool {
        i >= self.start
            && i <= self.last
            && ((self.step == 0 && i == self.start)
                || (self.step > 0 && (i - self.start) % self.step == 0))
    }
    /// The first index of the run at or after `i`.
    fn first_from(&self, i: u64) -> Option<u64> {
        if i <= self.start {
            return Some(self.start);
        }
        if i > self.last || self.step == 0 {
            return None;
        }
        let k = (i - self.start).div_ceil(self.step);
        let v = self.start + k * self.step;
        (v <= self.last).then_some(v)
    }
}

/// The frames of one video file that are wanted, in increasing order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FramePlan {
    runs: Vec<Run>,
    /// Times in the video (µs) of the wanted frames whose entries give them (format v2).
    times: std::collections::BTreeMap<u64, i64>,
    /// More runs than fit in an expression, or indices out of order: the plan is widened to
    /// every frame from the smallest to the largest wanted index.
    widened: bool,
}

impl FramePlan {
    /// Adds a wanted index. Indices are expected in non-decreasing order; an index lower
    /// than the previous one widens the plan.
    pub fn push(&mut self, i: u64) {
        if self.widened {
            let r = &mut self.runs[0];
            r.start = r.start.min(i);
            r.last = r.last.max(i);
            return;
        }
        match self.runs.last_mut() {
            None => self.runs.push(Run {
                start: i,
                last: i,
                step: 0,
            }),
            Some(r) if i == r.last => {}
            Some(r) if i < r.last => self.widen(i),
            Some(r) if r.step == 0 => {
                r.step = i - r.last;
                r.last = i;
            }
            Some(r) if i - r.last == r.step => r.last = i,
            Some(_) => {
                if self.runs.len() == MAX_RUNS {
                    self.widen(i);
                } else {
                    self.runs.push(Run {
                        start: i,
                        last: i,
                        step: 0,
                    });
                }
            }
        }
    }

    /// [`push`](Self::push), with the frame's time in the video when its entry gives it.
    pub fn push_timed(&mut self, i: u64, video_time_us: Option<i64>) {
        self.push(i);
        if let Some(t) = video_time_us {
            self.times.insert(i, t);
        }
    }

    /// The time of wanted frame `i` in the video, in seconds, if known.
    pub fn time_of(&self, i: u64) -> Option<f64> {
        self.times.get(&i).map(|&t| t as f64 / 1e6)
    }

    fn widen(&mut self, i: u64) {
        let lo = self.runs.iter().map(|r| r.start).min().unwrap_or(i).min(i);
        let hi = self.runs.iter().map(|r| r.last).max().unwrap_or(i).max(i);
        self.runs = vec![Run {
            start: lo,
            last: hi,
            step: 1,
        }];
        self.widened = true;
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    pub fn first(&self) -> Option<u64> {
        self.runs.first().map(|r| r.start)
    }

    pub fn contains(&self, i: u64) -> bool {
        self.runs.iter().any(|r| r.contains(i))
    }

    /// The plan without the indices below `from`.
    pub fn from_index(&self, from: u64) -> FramePlan {
        let mut runs = Vec::new();
        for r in &self.runs {
            if let Some(s) = r.first_from(from) {
                runs.push(Run { start: s, ..*r });
            }
        }
        FramePlan {
            runs,
            times: self.times.range(from..).map(|(&i, &t)| (i, t)).collect(),
            widened: self.widened,
        }
    }

    /// The planned indices in order (the order FFmpeg emits them).
    fn indices(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs.iter().flat_map(|r| {
            let step = r.step.max(1);
            (r.start..=r.last).step_by(step as usize)
        })
    }

    /// A `select` expression over `n` (frame index minus `base`).
    fn expression(&self, base: u64) -> String {
        self.runs
            .iter()
            .map(|r| {
                let (s, l) = (r.start - base, r.last - base);
                match r.step {
                    0 => format!("eq(n,{s})"),
                    1 => format!("between(n,{s},{l})"),
                    k => format!("between(n,{s},{l})*not(mod(n-{s},{k}))"),
                }
            })
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// One FFmpeg process decoding the planned frames of one video file.
pub struct VideoDecoder {
    child: Child,
    stdout: BufReader<ChildStdout>,
    tail: Arc<Mutex<Tail>>,
    err_thread: Option<JoinHandle<()>>,
    path: PathBuf,
    output: VideoOutput,
    /// The video indices still to come, in order.
    pending: std::vec::IntoIter<u64>,
    done: bool,
    /// The process has been waited for.
    reaped: bool,
}

/// How to start a decoder.
#[derive(Clone, Debug)]
pub struct DecoderConfig {
    pub ffmpeg: PathBuf,
    pub output: VideoOutput,
    /// The colour stream's nominal frame rate (the rate the video was encoded at).
    pub fps: f64,
    /// Seek when the first planned frame is more than this many seconds in.
    pub seek_after_s: f64,
}

impl VideoDecoder {
    /// The FFmpeg arguments for decoding `plan` of `path`.
    pub fn args(path: &Path, plan: &FramePlan, cfg: &DecoderConfig) -> Vec<std::ffi::OsString> {
        let mut input: Vec<std::ffi::OsString> = Vec::new();
        let first = plan.first().unwrap_or(0);
        let fps = if cfg.fps.is_finite() && cfg.fps > 0.0 {
            cfg.fps
        } else {
            0.0
        };
        let mut filters = Vec::new();
        let mut base = 0;
        // Where the first wanted frame is, and how far before it the cut can go without
        // letting the frame before it through.
        let (t_first, before) = match plan.time_of(first) {
            Some(t) => (Some(t), TIMED_CUT_S),
            None if fps > 0.0 => (Some(first as f64 / fps), 0.5 / fps),
            None => (None, 0.0),
        };
        if let Some(t_first) = t_first.filter(|&t| t > cfg.seek_after_s && t > SEEK_MARGIN_S) {
            // Seek a little before the first wanted frame; after an input seek FFmpeg's
            // times count from the seek point, so frame i is at its time - ss.
            let ss = t_first - SEEK_MARGIN_S;
            input.push("-ss".into());
            input.push(format!("{ss:.6}").into());
            let cut = t_first - before - ss;
            filters.push(format!("select='gte(t,{cut:.6})'"));
            base = first;
        }
        input.push("-i".into());
        input.push(path.as_os_str().to_owned());
        filters.push(format!("select='{}'", plan.expression(base)));
        ffmpeg_args(input, &filters.join(","), cfg.output)
    }

    /// Starts FFmpeg on `path` for the frames of `plan`.
    pub fn start(path: &Path, plan: &FramePlan, cfg: &DecoderConfig) -> Result<Self> {
        if !path.is_file() {
            return Err(VideoError::VideoMissing {
                path: path.to_path_buf(),
            });
        }
        let (dec, _) = Self::spawn(Self::args(path, plan, cfg), false, path, plan, cfg)?;
        Ok(dec)
    }

    /// Runs FFmpeg with `args`; its stdin is a pipe (returned) when `stdin` is true.
    fn spawn(
        args: Vec<std::ffi::OsString>,
        stdin: bool,
        path: &Path,
        plan: &FramePlan,
        cfg: &DecoderConfig,
    ) -> Result<(Self, Option<ChildStdin>)> {
        let mut child = Command::new(&cfg.ffmpeg)
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error(&cfg.ffmpeg, e))?;
        let stdout = BufReader::with_capacity(1 << 20, child.stdout.take().expect("piped"));
        let mut stderr = child.stderr.take().expect("piped");
        let tail = Arc::new(Mutex::new(Tail::new(TAIL_LINES, TAIL_BYTES)));
        let t = Arc::clone(&tail);
        let err_thread = std::thread::Builder::new()
            .name("ffmpeg-decode-stderr".into())
            .spawn(move || drain_into_tail(&mut stderr, &t));
        let err_thread = match err_thread {
            Ok(h) => Some(h),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(VideoError::Thread(e));
            }
        };
        let pending: Vec<u64> = plan.indices().collect();
        let stdin = child.stdin.take();
        let dec = Self {
            child,
            stdout,
            tail,
            err_thread,
            path: path.to_path_buf(),
            output: cfg.output,
            pending: pending.into_iter(),
            done: false,
            reaped: false,
        };
        Ok((dec, stdin))
    }

    /// Reads the next frame into `buf`; returns its index in the video, or `None` when the
    /// video has no more planned frames (it may be shorter than the plan: a recording cut
    /// short loses the frames still inside the encoder).
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> Result<Option<u64>> {
        if self.done {
            return Ok(None);
        }
        let Some(index) = self.pending.next() else {
            self.done = true;
            return Ok(None);
        };
        buf.clear();
        let got = match self.output {
            VideoOutput::Raw { width, height } => {
                let n = width as usize * height as usize * 3;
                buf.resize(n, 0);
                read_full(&mut self.stdout, buf)
            }
            VideoOutput::Png { .. } => read_png(&mut self.stdout, buf),
            VideoOutput::Jpeg { .. } => read_jpeg(&mut self.stdout, buf),
        }
        .map_err(|source| VideoError::ReadFrames {
            path: self.path.clone(),
            source,
        })?;
        if got {
            return Ok(Some(index));
        }
        // End of output: FFmpeg has finished (or failed).
        self.done = true;
        let status = self.child.wait().map_err(|source| VideoError::ReadFrames {
            path: self.path.clone(),
            source,
        })?;
        self.reaped = true;
        if let Some(h) = self.err_thread.take() {
            let _ = h.join();
        }
        if status.success() {
            Ok(None)
        } else {
            Err(VideoError::DecodeFailed {
                path: self.path.clone(),
                source: FfmpegFailure {
                    cause: "ffmpeg stopped before the last frame".into(),
                    status: Some(status),
                    stderr_tail: lock(&self.tail).text(),
                },
            })
        }
    }
}

impl VideoDecoder {
    /// Kills FFmpeg without waiting for it (dropping the decoder reaps it); no more frames.
    pub fn abort(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            self.done = true;
        }
    }
}

impl Drop for VideoDecoder {
    fn drop(&mut self) {
        // Also after the last planned frame: FFmpeg may still be decoding (the rest of the
        // video, or a standby process that has no end), blocked on its full stdout.
        if !self.reaped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(h) = self.err_thread.take() {
            let _ = h.join();
        }
    }
}

/// An FFmpeg process started before it is known which video and frame it will decode.
///
/// Starting FFmpeg costs ~70-80 ms here before it reads a byte (it loads a few hundred
/// shared libraries), more than decoding from a keyframe to the frame wanted. A standby
/// process pays that in advance: it runs FFmpeg's concat demuxer on a script read from its
/// stdin, so it waits in the demuxer until [`StandbyDecoder::begin`] writes a one-file
/// script with an `inpoint` at the first wanted frame. The demuxer seeks to the keyframe
/// before it; with `-copyts` the frames keep their times relative to the in-point, so a
/// `select` just before 0 drops the frames decoded on the way and the first frame out is
/// exactly the one asked for. The cut is half a millisecond before 0. The in-point is the
/// frame's time from its entry (format v2: whole milliseconds, exact in the video's time
/// base, so the frame is at 0 and the one before it at least 1 ms earlier), or for a v1
/// video (frame *i* at *i* / fps, rounded to milliseconds) half a frame less half a
/// millisecond before *i* / fps, which puts the frame and the one before it on either side
/// of the cut with room for the rounding.
pub struct StandbyDecoder {
    dec: VideoDecoder,
    stdin: ChildStdin,
    fps: f64,
}

impl StandbyDecoder {
    /// Starts FFmpeg waiting for its video. Fails if FFmpeg cannot be started; an FFmpeg
    /// that cannot decode this way fails at [`Self::begin`] or at the first frame.
    pub fn spawn(cfg: &DecoderConfig) -> Result<Self> {
        if !(cfg.fps.is_finite() && cfg.fps > 0.0) {
            return Err(VideoError::InvalidConfig(format!(
                "a standby decoder needs the video's frame rate, not {}",
                cfg.fps
            )));
        }
        let half = TIMED_CUT_S;
        let input = [
            "-copyts",
            "-protocol_whitelist",
            "file,pipe",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            "pipe:0",
        ]
        .map(Into::into);
        let a = ffmpeg_args(input, &format!("select='gte(t,-{half:.6})'"), cfg.output);
        let (dec, stdin) =
            VideoDecoder::spawn(a, true, Path::new("-"), &FramePlan::default(), cfg)?;
        let stdin = stdin.expect("stdin was piped");
        Ok(Self {
            dec,
            stdin,
            fps: cfg.fps,
        })
    }

    /// Starts decoding `path` from video index `first`, which is at `first_time_us` in the
    /// video when its entry says so (format v2; else at `first` / fps); the decoder returns
    /// frames `first..=last` (fewer if the video ends first).
    pub fn begin(
        mut self,
        path: &Path,
        first: u64,
        first_time_us: Option<i64>,
        last: u64,
    ) -> Result<VideoDecoder> {
        use std::io::Write;
        let bad_path = |detail: &str| VideoError::VideoPath {
            path: path.to_path_buf(),
            detail: detail.to_string(),
        };
        let abs = std::path::absolute(path).map_err(|e| bad_path(&e.to_string()))?;
        if !abs.is_file() {
            return Err(VideoError::VideoMissing {
                path: path.to_path_buf(),
            });
        }
        let name = abs
            .to_str()
            .ok_or_else(|| bad_path("the name is not UTF-8"))?;
        if name.contains(['\n', '\r']) {
            return Err(bad_path("the name has a line break"));
        }
        // In the script, a single-quoted string ends at `'`: a quote is written as '\''.
        let script = format!(
            "ffconcat version 1.0\nfile 'file:{}'\ninpoint {:.6}\n",
            name.replace('\'', "'\\''"),
            first_time_us.map_or(
                ((first as f64 - 0.5) / self.fps + TIMED_CUT_S).max(0.0),
                |t| t as f64 / 1e6
            )
        );
        let mut dec = self.dec;
        dec.path = path.to_path_buf();
        dec.pending = (first..=last.max(first)).collect::<Vec<_>>().into_iter();
        let sent = self.stdin.write_all(script.as_bytes());
        drop(self.stdin);
        if let Err(e) = sent {
            return Err(VideoError::DecodeFailed {
                path: path.to_path_buf(),
                source: FfmpegFailure {
                    cause: format!("the waiting ffmpeg did not take its input: {e}"),
                    status: None,
                    stderr_tail: lock(&dec.tail).text(),
                },
            });
        }
        Ok(dec)
    }
}

/// A decoding FFmpeg's arguments: quiet, `input` (options and `-i`), the first video
/// stream through `filter`, every frame that passes it written to stdout as `output`.
fn ffmpeg_args(
    input: impl IntoIterator<Item = std::ffi::OsString>,
    filter: &str,
    output: VideoOutput,
) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = ["-hide_banner", "-nostdin", "-loglevel", "error"]
        .map(Into::into)
        .to_vec();
    a.extend(input);
    a.extend(["-map", "0:v:0", "-an", "-sn", "-dn", "-vf"].map(Into::into));
    a.push(filter.into());
    a.extend(["-fps_mode", "passthrough"].map(Into::into));
    a.extend(output_args(output));
    a
}

/// FFmpeg's output arguments for `output` (to stdout).
fn output_args(output: VideoOutput) -> Vec<std::ffi::OsString> {
    let tail: Vec<String> = match output {
        VideoOutput::Raw { .. } => vec!["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
            .into_iter()
            .map(String::from)
            .collect(),
        VideoOutput::Png { level } => {
            let mut v: Vec<String> = vec!["-c:v".into(), "png".into()];
            if let Some(l) = level {
                v.push("-compression_level".into());
                v.push(l.min(9).to_string());
            }
            v.extend(
                ["-pix_fmt", "rgb24", "-f", "image2pipe", "-"]
                    .into_iter()
                    .map(String::from),
            );
            v
        }
        VideoOutput::Jpeg { qscale } => vec![
            "-c:v".into(),
            "mjpeg".into(),
            "-q:v".into(),
            qscale.clamp(2, 31).to_string(),
            "-pix_fmt".into(),
            "yuvj420p".into(),
            "-f".into(),
            "image2pipe".into(),
            "-".into(),
        ],
    };
    tail.into_iter().map(Into::into).collect()
}

/// Fills `buf` completely; `Ok(false)` on a clean end of stream before the first byte.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("frame cut short after {filled} of {} bytes", buf.len()),
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Appends `n` bytes of `r` to `out`.
fn take(r: &mut impl Read, n: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
    let start = out.len();
    out.resize(start + n, 0);
    if !read_full(r, &mut out[start..])? {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "stream ended inside an image",
        ));
    }
    Ok(())
}

/// One PNG file of a PNG stream: signature, then chunks up to and including IEND.
fn read_png(r: &mut impl Read, out: &mut Vec<u8>) -> std::io::Result<bool> {
    const SIG: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
    let mut sig = [0u8; 8];
    if !read_full(r, &mut sig)? {
        return Ok(false);
    }
    if &sig != SIG {
        return Err(bad("ffmpeg output is not a PNG stream"));
    }
    out.extend_from_slice(&sig);
    loop {
        let at = out.len();
        take(r, 8, out)?;
        let len = u32::from_be_bytes(out[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len > 1 << 30 {
            return Err(bad(format!("PNG chunk of {len} bytes")));
        }
        let kind: [u8; 4] = out[at + 4..at + 8].try_into().expect("4 bytes");
        take(r, len + 4, out)?;
        if &kind == b"IEND" {
            return Ok(true);
        }
    }
}

/// One JPEG file of a JPEG stream: SOI, marker segments, entropy-coded data after each SOS
/// (where `FF 00` and `FF D0..D7` are data), up to and including EOI.
fn read_jpeg<R: BufRead>(r: &mut R, out: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut soi = [0u8; 2];
    if !read_full(r, &mut soi)? {
        return Ok(false);
    }
    if soi != [0xFF, 0xD8] {
        return Err(bad("ffmpeg output is not a JPEG stream"));
    }
    out.extend_from_slice(&soi);
    let mut marker = read_marker(r, out)?;
    loop {
        match marker {
            0xD9 => return Ok(true),
            0x01 | 0xD0..=0xD7 => marker = read_marker(r, out)?,
            m => {
                let at = out.len();
                take(r, 2, out)?;
                let len = u16::from_be_bytes([out[at], out[at + 1]]) as usize;
                if len < 2 {
                    return Err(bad("JPEG segment length < 2"));
                }
                take(r, len - 2, out)?;
                marker = if m == 0xDA {
                    scan_entropy(r, out)?
                } else {
                    read_marker(r, out)?
                };
            }
        }
    }
}

/// Reads `FF xx` (skipping fill bytes) and returns `xx`.
fn read_marker(r: &mut impl Read, out: &mut Vec<u8>) -> std::io::Result<u8> {
    let mut b = [0u8; 1];
    let mut seen_ff = false;
    loop {
        if !read_full(r, &mut b)? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "stream ended inside a JPEG",
            ));
        }
        out.push(b[0]);
        match (seen_ff, b[0]) {
            (_, 0xFF) => seen_ff = true,
            (true, m) => return Ok(m),
            (false, _) => return Err(bad("JPEG marker expected")),
        }
    }
}

/// Copies entropy-coded data up to the next real marker and returns that marker's code.
fn scan_entropy<R: BufRead>(r: &mut R, out: &mut Vec<u8>) -> std::io::Result<u8> {
    let mut after_ff = false;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "stream ended inside JPEG data",
            ));
        }
        let mut used = 0;
        let mut found = None;
        for &b in buf {
            used += 1;
            if after_ff {
                match b {
                    0x00 | 0xD0..=0xD7 => after_ff = false,
                    0xFF => {}
                    m => {
                        found = Some(m);
                        break;
                    }
                }
            } else if b == 0xFF {
                after_ff = true;
            }
        }
        out.extend_from_slice(&buf[..used]);
        r.consume(used);
        if let Some(m) = found {
            return Ok(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(v: &[u64]) -> FramePlan {
        let mut p = FramePlan::default();
        for &i in v {
            p.push(i);
        }
        p
    }

    #[test]
    fn plans_compress_into_runs() {
        let p = plan(&[0, 1, 1, 2, 3, 4]);
        assert_eq!(p.expression(0), "between(n,0,4)");
        assert_eq!(p.indices().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        let p = plan(&[10, 13, 16, 17]);
        assert_eq!(
            p.expression(0),
            "between(n,10,16)*not(mod(n-10,3))+eq(n,17)"
        );
        assert_eq!(p.expression(10), "between(n,0,6)*not(mod(n-0,3))+eq(n,7)");
        assert_eq!(p.indices().collect::<Vec<_>>(), vec![10, 13, 16, 17]);
        assert!(p.contains(13) && !p.contains(14) && p.contains(17));
        let q = p.from_index(14);
        assert_eq!(q.indices().collect::<Vec<_>>(), vec![16, 17]);
        assert_eq!(p.from_index(0).indices().count(), 4);
    }

    #[test]
    fn plans_widen_when_out_of_order_or_too_long() {
        let p = plan(&[5, 9, 3]);
        assert_eq!(p.indices().collect::<Vec<_>>(), (3..=9).collect::<Vec<_>>());
        let v: Vec<u64> = (0..1000).map(|i| i * i).collect();
        let p = plan(&v);
        assert!(p.runs.len() == 1 && p.widened);
        assert_eq!(p.first(), Some(0));
        assert!(v.iter().all(|&i| p.contains(i)));
    }

    #[test]
    fn splits_png_and_jpeg_streams() {
        // Two minimal PNG "files" back to back (chunk CRCs are not checked here).
        let mut png = Vec::new();
        for _ in 0..2 {
            png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
            png.extend_from_slice(&3u32.to_be_bytes());
            png.extend_from_slice(b"IHDRabc0000");
            png.extend_from_slice(&0u32.to_be_bytes());
            png.extend_from_slice(b"IEND0000");
        }
        let mut r = std::io::Cursor::new(png.clone());
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        assert!(read_png(&mut r, &mut a).unwrap());
        assert!(read_png(&mut r, &mut b).unwrap());
        assert!(!read_png(&mut r, &mut c).unwrap());
        assert_eq!(a.len() * 2, png.len());
        assert_eq!(a, b);

        // JPEG: SOI, APP0, SOS with stuffed FF 00 and a restart marker in the data, EOI.
        let jpeg: Vec<u8> = vec![
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x01, 0x02, 0xFF, 0xDA, 0x00, 0x03, 0x07, 0x11,
            0xFF, 0x00, 0x22, 0xFF, 0xD3, 0x33, 0xFF, 0xFF, 0xD9,
        ];
        let two: Vec<u8> = jpeg.iter().chain(jpeg.iter()).copied().collect();
        let mut r = BufReader::with_capacity(3, std::io::Cursor::new(two));
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        assert!(read_jpeg(&mut r, &mut a).unwrap());
        assert_eq!(a, jpeg);
        assert!(read_jpeg(&mut r, &mut b).unwrap());
        assert_eq!(b, jpeg);
        assert!(!read_jpeg(&mut r, &mut c).unwrap());
        let mut r = BufReader::new(std::io::Cursor::new(jpeg[..12].to_vec()));
        assert!(read_jpeg(&mut r, &mut Vec::new()).is_err());
    }

    #[test]
    fn seeking_args_cut_half_a_frame_early() {
        let cfg = DecoderConfig {
            ffmpeg: "ffmpeg".into(),
            output: VideoOutput::Raw {
                width: 4,
                height: 2,
            },
            fps: 10.0,
            seek_after_s: 5.0,
        };
        let near = VideoDecoder::args(Path::new("v.mkv"), &plan(&[3, 4]), &cfg);
        let s: Vec<String> = near.iter().map(|a| a.to_string_lossy().into()).collect();
        assert!(!s.contains(&"-ss".to_string()));
        assert!(s.contains(&"select='between(n,3,4)'".to_string()), "{s:?}");
        let far = VideoDecoder::args(Path::new("v.mkv"), &plan(&[100, 102]), &cfg);
        let s: Vec<String> = far.iter().map(|a| a.to_string_lossy().into()).collect();
        let ss = s.iter().position(|a| a == "-ss").unwrap();
        assert_eq!(s[ss + 1], "9.000000");
        // Frame 100 is at 10 s, i.e. 1 s after the seek point; the cut is 0.05 s earlier.
        assert!(
            s.contains(
                &"select='gte(t,0.950000)',select='between(n,0,2)*not(mod(n-0,2))'".to_string()
            ),
            "{s:?}"
        );
        // Never a negative seek: a first frame within the margin decodes from the start.
        let mut early = cfg.clone();
        early.seek_after_s = 0.1;
        let s: Vec<String> = VideoDecoder::args(Path::new("v.mkv"), &plan(&[8, 9]), &early)
            .iter()
            .map(|a| a.to_string_lossy().into())
            .collect();
        assert!(!s.contains(&"-ss".to_string()), "{s:?}");
    }
}
