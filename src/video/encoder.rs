//! One FFmpeg process encoding raw colour frames from a bounded queue.
//!
//! Threads (all named after the output file):
//! - the caller pushes frames with [`ColorEncoder::push`], which never blocks: a full queue
//!   drops the frame and says so;
//! - `ffmpeg-stdin` drains the queue into FFmpeg's stdin (this is where back-pressure lands),
//!   as a Matroska stream of raw frames each stamped with its time ([`super::mkv`]): the video
//!   keeps every frame's capture time however many frames were dropped;
//! - `ffmpeg-stderr` drains FFmpeg's stderr into a bounded tail for error messages, and
//!   notices when FFmpeg exits on its own.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::Serialize;

use crate::container::PixelFormat;

use super::codec::ResolvedCodec;
use super::error::{FfmpegFailure, VideoError};
use super::process::{
    cpu_ticks, drain_into_tail, join_within, lock, spawn_error, wait_or_kill_when,
    wait_progressing, ProgressDeadline, TAIL_BYTES, TAIL_LINES,
};
use super::tail::Tail;

/// How long [`ColorEncoder::finish`] and [`ColorEncoder::close`] wait for the queue to drain
/// and FFmpeg to exit while FFmpeg makes no progress (takes no frame, writes no byte, uses no
/// CPU) before killing it. A slow FFmpeg that keeps working (a busy machine, a slow preset
/// finishing its look-ahead) is waited for, up to [`FINISH_CAP_FACTOR`] times this.
pub const DEFAULT_FINISH_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a finish waits for an FFmpeg that keeps working, in [`DEFAULT_FINISH_TIMEOUT`]s
/// (the timeout given): 10 minutes by default.
pub const FINISH_CAP_FACTOR: u32 = 20;
/// How long `Drop` waits for FFmpeg (after discarding queued frames) before killing it.
pub const DROP_TIMEOUT: Duration = Duration::from_secs(5);
/// Matroska cluster length in ms. FFmpeg's muxer keeps the open cluster in memory, so this
/// bounds what a killed FFmpeg loses (plus the encoder's own look-ahead). Each cluster costs
/// about 20 bytes.
pub const CLUSTER_TIME_LIMIT_MS: u32 = 250;

/// Everything needed to start one encoder.
#[derive(Clone, Debug)]
pub struct EncoderConfig {
    /// The FFmpeg binary.
    pub ffmpeg: PathBuf,
    /// The `.mkv` to write; must not exist yet.
    pub output: PathBuf,
    pub width: u32,
    pub height: u32,
    /// Nominal frame rate: the GOP length (a keyframe a second), and the time of frames
    /// pushed with [`ColorEncoder::push`] (frame `i` at `i / fps`).
    pub fps: f64,
    /// Layout of the pushed frames: Rgb8, Bgr8, Rgba8, Bgra8, Yuyv or Y8.
    pub pixel_format: PixelFormat,
    pub codec: ResolvedCodec,
    /// Constant-quality value (`-crf`; `-cq` / `-global_quality` / `-qp` on hardware).
    pub crf: Option<u8>,
    /// Encoder preset, passed through (`ultrafast`..`veryslow` for x264/x265, 0-13 for
    /// SVT-AV1, `p1`..`p7` for NVENC); ignored for VAAPI.
    pub preset: Option<String>,
    /// Capacity of the frame queue in frames (at least 1).
    pub queue_frames: usize,
    /// Niceness added to FFmpeg's scheduling priority (0..=19): a recording runs its colour
    /// encoders at [`COLOR_NICE`] so that they never take CPU from depth compression.
    pub nice: i32,
}

/// The niceness of a recording's colour encoders: depth is the data, colour sheds load first.
pub const COLOR_NICE: i32 = 10;

/// FFmpeg's `-pix_fmt` name for a frame layout, and its bytes per pixel.
pub fn ffmpeg_pixel_format(format: PixelFormat) -> Option<(&'static str, usize)> {
    match format {
        PixelFormat::Rgb8 => Some(("rgb24", 3)),
        PixelFormat::Bgr8 => Some(("bgr24", 3)),
        PixelFormat::Rgba8 => Some(("rgba", 4)),
        PixelFormat::Bgra8 => Some(("bgra", 4)),
        PixelFormat::Yuyv => Some(("yuyv422", 2)),
        PixelFormat::Y8 => Some(("gray", 1)),
        _ => None,
    }
}

/// Checks `cfg` and returns the frame size in bytes.
fn validate(cfg: &EncoderConfig) -> Result<usize, VideoError> {
    let (_, bpp) =
        ffmpeg_pixel_format(cfg.pixel_format).ok_or(VideoError::UnsupportedPixelFormat {
            format: cfg.pixel_format,
        })?;
    let invalid = |m: String| Err(VideoError::InvalidConfig(m));
    if cfg.width == 0 || cfg.height == 0 || cfg.width % 2 != 0 || cfg.height % 2 != 0 {
        return invalid(format!(
            "frame size {}x{} must be non-zero and even (4:2:0 video)",
            cfg.width, cfg.height
        ));
    }
    if !(cfg.fps.is_finite() && cfg.fps > 0.0 && cfg.fps <= 10_000.0) {
        return invalid(format!("frame rate {} is not in (0, 10000]", cfg.fps));
    }
    if cfg.queue_frames == 0 {
        return invalid("queue_frames must be at least 1".into());
    }
    if let Some(q) = cfg.crf {
        let max = cfg.codec.codec().max_quality();
        if q > max {
            return invalid(format!(
                "crf {q} is out of range for {} (0..={max})",
                cfg.codec.codec()
            ));
        }
    }
    if let Some(p) = &cfg.preset {
        if p.is_empty() || p.starts_with('-') || p.chars().any(char::is_whitespace) {
            return invalid(format!("invalid preset {p:?}"));
        }
    }
    (cfg.width as usize)
        .checked_mul(cfg.height as usize)
        .and_then(|n| n.checked_mul(bpp))
        .ok_or_else(|| VideoError::InvalidConfig("frame size overflows".into()))
}

/// The FFmpeg arguments [`ColorEncoder::start`] uses for `cfg` (without the program name):
///
/// `-hide_banner -nostdin -nostats -loglevel error -n [hw device] -probesize 32
/// -analyzeduration 0 -f matroska -i -
/// [-vf scale=out_color_matrix=bt709:out_range=tv] -pix_fmt yuv420p -c:v CODEC [codec options]
/// [-crf N] [-preset X] [colour tags] -g round(FPS) -fps_mode passthrough -enc_time_base:v
/// 1:1000 -f matroska -cluster_time_limit 250 -flush_packets 1 OUT`
///
/// The input is the Matroska stream of [`super::mkv`] (raw frames with their times; width,
/// height and pixel format are in its header). `-fps_mode passthrough` and a 1 ms encoder
/// time base keep each frame's time exactly: no frame is duplicated or dropped to make a
/// constant rate.
pub fn ffmpeg_args(cfg: &EncoderConfig) -> Result<Vec<OsString>, VideoError> {
    validate(cfg)?;
    let mut a: Vec<String> = Vec::new();
    a.extend(
        // -nostdin: stdin carries frames, not keyboard commands. -n: never overwrite.
        [
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-loglevel",
            "error",
            "-n",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    a.extend(cfg.codec.global_args());
    // The stream header says everything about the input: without a small probe FFmpeg
    // would buffer up to 5 MB / 5 s of frames before encoding any (and lose them if killed).
    a.extend(
        [
            "-probesize",
            "32",
            "-analyzeduration",
            "0",
            "-f",
            "matroska",
            "-i",
            "-",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let convert_rgb = cfg.pixel_format != PixelFormat::Yuyv;
    a.extend(
        cfg.codec
            .output_args(convert_rgb, cfg.crf, cfg.preset.as_deref()),
    );
    // A keyframe every second: a viewer or an export that seeks to a frame decodes at most one
    // second of video (x265's default is every 250 frames, 8 s at 30 fps: a seek took
    // 0.2-0.6 s in `rsrec view`). Costs ~5 % of colour bytes (x265 veryfast, lab-robot set).
    let gop = (cfg.fps.round() as u64).max(1).to_string();
    a.extend(["-g".to_string(), gop]);
    a.extend(
        ["-fps_mode", "passthrough", "-enc_time_base:v", "1:1000"]
            .iter()
            .map(|s| s.to_string()),
    );
    // Matroska, not MP4: an MP4 whose writer dies has no index and cannot be played. Even
    // Matroska needs two options to survive `kill -9` of FFmpeg: by default the muxer builds
    // the open cluster in memory (up to 5 s / 5 MB) and the header sits in a 32 KiB I/O
    // buffer, so a killed FFmpeg leaves a 0-byte file (measured with FFmpeg 5.1). Short
    // clusters + flushing after every packet put everything on disk except the open cluster
    // (<= 250 ms) and the frames still inside the encoder (its look-ahead: ~0.5 s for x265
    // ultrafast, ~1 s for medium at 30 fps). If rsrec dies instead, FFmpeg sees end of input
    // and finalises the file completely.
    let cluster = CLUSTER_TIME_LIMIT_MS.to_string();
    a.extend(
        [
            "-f",
            "matroska",
            "-cluster_time_limit",
            &cluster,
            "-flush_packets",
            "1",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut out: Vec<OsString> = a.into_iter().map(OsString::from).collect();
    out.push(cfg.output.clone().into_os_string());
    Ok(out)
}

/// What happened to a pushed frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushResult {
    /// Queued as video frame `index` (0-based; the number of frames accepted before it), at
    /// `time_ms` in the video.
    Queued { index: u64, time_ms: u64 },
    /// The queue was full (FFmpeg is behind): the frame is not in the video. Record a gap.
    Dropped,
    /// FFmpeg has died; the frame is not in the video. Finish this encoder (the file is
    /// playable up to shortly before the failure) and start a new one to continue.
    EncoderDead(FfmpegFailure),
}

/// Counters of one encoder, live ([`ColorEncoder::stats`]) or final ([`ColorEncoder::finish`]).
///
/// `frames_pushed = frames_queued + frames_dropped + frames_rejected` and, once finished,
/// `frames_queued = frames_written + frames_lost`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EncodeStats {
    /// Correctly sized frames passed to `push`.
    pub frames_pushed: u64,
    /// Frames accepted into the queue (they got video indices `0..frames_queued`).
    pub frames_queued: u64,
    /// Frames written completely to FFmpeg's stdin.
    pub frames_written: u64,
    /// Frames dropped because the queue was full.
    pub frames_dropped: u64,
    /// Queued frames never written (FFmpeg died, or the encoder was dropped unfinished).
    /// Only known once the encoder has failed or closed; 0 before.
    pub frames_lost: u64,
    /// Frames pushed after FFmpeg died.
    pub frames_rejected: u64,
    /// Frames waiting in the queue now.
    pub queue_len: usize,
    pub queue_capacity: usize,
    /// Raw bytes written to FFmpeg.
    pub raw_bytes: u64,
    /// Size of the output file.
    pub bytes: u64,
}

/// State shared by the caller and the two threads.
struct Shared {
    pushed: AtomicU64,
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
    raw_bytes: AtomicU64,
    /// FFmpeg died (or we cannot feed it): no more frames are accepted.
    dead: AtomicBool,
    /// Set before we close stdin: FFmpeg exiting after this is expected.
    closing: AtomicBool,
    /// Set by `Drop`: discard queued frames instead of encoding them.
    abandon: AtomicBool,
    /// The first failure seen.
    cause: Mutex<Option<String>>,
    tail: Mutex<Tail>,
}

impl Shared {
    fn mark_dead(&self, cause: String) {
        let mut first = lock(&self.cause);
        if first.is_none() {
            *first = Some(cause);
        }
        self.dead.store(true, Ordering::SeqCst);
    }
}

/// An FFmpeg process encoding colour frames into a Matroska file. See the module docs.
pub struct ColorEncoder {
    tx: Option<Sender<(Vec<u8>, u64)>>,
    shared: Arc<Shared>,
    child: Mutex<Child>,
    /// Serialises pushes so that indices and times follow queue order even with several
    /// pushers; holds the video's clock.
    push_lock: Mutex<VideoClock>,
    /// The newest frame dropped since the last queued one, and its capture time: see
    /// [`ColorEncoder::push_last_dropped`].
    last_dropped: Mutex<Option<(Vec<u8>, Option<i64>)>>,
    writer: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<()>>,
    pid: u32,
    frame_len: usize,
    fps: f64,
    queue_capacity: usize,
    output: PathBuf,
    /// Set by the first close: the (cached) outcome.
    outcome: Option<Result<EncodeStats, FfmpegFailure>>,
}

impl ColorEncoder {
    /// Validates `cfg` and starts FFmpeg and the two threads. FFmpeg runs in its own process
    /// group so that Ctrl+C in the terminal reaches only rsrec, which then finishes the video
    /// by closing FFmpeg's stdin. If rsrec itself dies, FFmpeg sees end of input and
    /// finalises the file normally.
    pub fn start(cfg: EncoderConfig) -> Result<ColorEncoder, VideoError> {
        let args = ffmpeg_args(&cfg)?;
        let frame_len = validate(&cfg)?;
        if cfg.output.symlink_metadata().is_ok() {
            return Err(VideoError::OutputExists { path: cfg.output });
        }
        if let Some(parent) = cfg.output.parent() {
            if !parent.as_os_str().is_empty() && !parent.is_dir() {
                return Err(VideoError::InvalidConfig(format!(
                    "output directory {} does not exist",
                    parent.display()
                )));
            }
        }

        let mut cmd = Command::new(&cfg.ffmpeg);
        cmd.args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in cfg.codec.envs() {
            cmd.env(k, v);
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child =
            super::process::spawn_niced(cmd, cfg.nice).map_err(|e| spawn_error(&cfg.ffmpeg, e))?;
        let pid = child.id();
        let stdin = child.stdin.take().expect("stdin is piped");
        let stderr = child.stderr.take().expect("stderr is piped");

        let shared = Arc::new(Shared {
            pushed: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            raw_bytes: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            abandon: AtomicBool::new(false),
            cause: Mutex::new(None),
            tail: Mutex::new(Tail::new(TAIL_LINES, TAIL_BYTES)),
        });
        let label = cfg
            .output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "video".into());

        let stderr_shared = Arc::clone(&shared);
        let stderr_thread = thread::Builder::new()
            .name(format!("ffmpeg-stderr {label}"))
            .spawn(move || {
                drain_into_tail(stderr, &stderr_shared.tail);
                // EOF: FFmpeg has exited (or closed stderr, which it does not do).
                if !stderr_shared.closing.load(Ordering::SeqCst) {
                    stderr_shared.mark_dead("ffmpeg exited unexpectedly".into());
                }
            });
        let stderr_thread = match stderr_thread {
            Ok(h) => h,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(VideoError::Thread(e));
            }
        };

        let (tx, rx) = crossbeam_channel::bounded(cfg.queue_frames);
        let writer_shared = Arc::clone(&shared);
        let fourcc = super::mkv::fourcc(cfg.pixel_format).expect("validated");
        let header = super::mkv::stream_header(cfg.width, cfg.height, fourcc);
        let writer = thread::Builder::new()
            .name(format!("ffmpeg-stdin {label}"))
            .spawn(move || writer_loop(rx, stdin, header, &writer_shared));
        let writer = match writer {
            Ok(h) => h,
            Err(e) => {
                shared.closing.store(true, Ordering::SeqCst);
                let _ = child.kill();
                let _ = child.wait();
                join_within(stderr_thread, Duration::from_secs(1));
                return Err(VideoError::Thread(e));
            }
        };

        Ok(ColorEncoder {
            tx: Some(tx),
            shared,
            child: Mutex::new(child),
            push_lock: Mutex::new(VideoClock::default()),
            last_dropped: Mutex::new(None),
            writer: Some(writer),
            stderr: Some(stderr_thread),
            pid,
            frame_len,
            fps: cfg.fps,
            queue_capacity: cfg.queue_frames,
            output: cfg.output,
            outcome: None,
        })
    }

    /// Queues one frame without blocking, at the nominal time of its index (`index / fps`:
    /// for sources without timestamps). See [`push_at`](Self::push_at).
    pub fn push(&self, frame: Vec<u8>) -> Result<PushResult, VideoError> {
        self.push_inner(frame, None)
    }

    /// Queues one frame captured at `capture_us` (any clock in µs, e.g. host time) without
    /// blocking. The video's time 0 is the first queued frame's capture time; a frame is at
    /// its capture time after that, rounded to the millisecond and at least 1 ms after the
    /// frame before it (Matroska's resolution; a clock that steps back cannot reorder the
    /// video). `frame` must be exactly `width * height * bytes per pixel` long (else
    /// [`VideoError::FrameSize`]); pushing after `close` is [`VideoError::Closed`].
    /// Everything else is a [`PushResult`].
    pub fn push_at(&self, frame: Vec<u8>, capture_us: i64) -> Result<PushResult, VideoError> {
        self.push_inner(frame, Some(capture_us))
    }

    fn push_inner(
        &self,
        frame: Vec<u8>,
        capture_us: Option<i64>,
    ) -> Result<PushResult, VideoError> {
        if frame.len() != self.frame_len {
            return Err(VideoError::FrameSize {
                expected: self.frame_len,
                got: frame.len(),
            });
        }
        let tx = self.tx.as_ref().ok_or(VideoError::Closed)?;
        let s = &self.shared;
        let mut clock = lock(&self.push_lock);
        s.pushed.fetch_add(1, Ordering::Relaxed);
        if s.dead.load(Ordering::SeqCst) {
            s.rejected.fetch_add(1, Ordering::Relaxed);
            return Ok(PushResult::EncoderDead(self.failure_snapshot()));
        }
        let index = s.queued.load(Ordering::SeqCst);
        let time_ms = clock.time_for(index, capture_us, self.fps);
        match tx.try_send((frame, time_ms)) {
            Ok(()) => {
                clock.queued(time_ms, capture_us);
                s.queued.fetch_add(1, Ordering::SeqCst);
                *lock(&self.last_dropped) = None;
                Ok(PushResult::Queued { index, time_ms })
            }
            Err(TrySendError::Full((frame, _))) => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                // Kept (not copied) for `push_last_dropped`; replaces the older one.
                *lock(&self.last_dropped) = Some((frame, capture_us));
                Ok(PushResult::Dropped)
            }
            Err(TrySendError::Disconnected(_)) => {
                s.mark_dead("the ffmpeg writer thread has stopped".into());
                s.rejected.fetch_add(1, Ordering::Relaxed);
                Ok(PushResult::EncoderDead(self.failure_snapshot()))
            }
        }
    }

    /// At the end of a capture: queues the newest dropped frame if it came after the last
    /// queued one, waiting up to `timeout` for room, so that the video lasts until the
    /// capture's last frame however slow the encoder was (a video whose last frames were
    /// dropped would end early). The frame is then no longer counted as dropped. `None`
    /// when there is no such frame or no room came in time (it stays dropped).
    pub fn push_last_dropped(&self, timeout: Duration) -> Result<Option<PushResult>, VideoError> {
        let tx = self.tx.as_ref().ok_or(VideoError::Closed)?;
        let s = &self.shared;
        let mut clock = lock(&self.push_lock);
        let Some((frame, capture_us)) = lock(&self.last_dropped).take() else {
            return Ok(None);
        };
        if s.dead.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let index = s.queued.load(Ordering::SeqCst);
        let time_ms = clock.time_for(index, capture_us, self.fps);
        match tx.send_timeout((frame, time_ms), timeout) {
            Ok(()) => {
                clock.queued(time_ms, capture_us);
                s.queued.fetch_add(1, Ordering::SeqCst);
                s.dropped.fetch_sub(1, Ordering::SeqCst);
                Ok(Some(PushResult::Queued { index, time_ms }))
            }
            Err(_) => Ok(None),
        }
    }

    /// `Some` once FFmpeg has died (or cannot be fed): what happened, its exit status if
    /// known, and the tail of its stderr. Cheap enough to call once per frame.
    pub fn failed(&self) -> Option<FfmpegFailure> {
        let s = &self.shared;
        if !s.dead.load(Ordering::SeqCst) && !s.closing.load(Ordering::SeqCst) {
            if let Ok(Some(_)) = lock(&self.child).try_wait() {
                s.mark_dead("ffmpeg exited unexpectedly".into());
            }
        }
        s.dead
            .load(Ordering::SeqCst)
            .then(|| self.failure_snapshot())
    }

    fn failure_snapshot(&self) -> FfmpegFailure {
        let cause = lock(&self.shared.cause)
            .clone()
            .unwrap_or_else(|| "ffmpeg failed".into());
        let status = lock(&self.child).try_wait().ok().flatten();
        FfmpegFailure {
            cause,
            status,
            stderr_tail: lock(&self.shared.tail).text(),
        }
    }

    /// The FFmpeg process id (for tests and diagnostics).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The output file.
    pub fn output(&self) -> &std::path::Path {
        &self.output
    }

    /// Bytes per frame expected by [`push`](Self::push).
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Live counters (for a status line).
    pub fn stats(&self) -> EncodeStats {
        let s = &self.shared;
        let queued = s.queued.load(Ordering::SeqCst);
        let written = s.written.load(Ordering::SeqCst);
        let finished = s.dead.load(Ordering::SeqCst) || self.outcome.is_some();
        EncodeStats {
            frames_pushed: s.pushed.load(Ordering::SeqCst),
            frames_queued: queued,
            frames_written: written,
            frames_dropped: s.dropped.load(Ordering::SeqCst),
            frames_lost: if finished {
                queued.saturating_sub(written)
            } else {
                0
            },
            frames_rejected: s.rejected.load(Ordering::SeqCst),
            queue_len: self.tx.as_ref().map_or(0, |tx| tx.len()),
            queue_capacity: self.queue_capacity,
            raw_bytes: s.raw_bytes.load(Ordering::SeqCst),
            bytes: std::fs::metadata(&self.output).map_or(0, |m| m.len()),
        }
    }

    /// Encodes everything queued, closes FFmpeg's stdin and waits (up to
    /// [`DEFAULT_FINISH_TIMEOUT`]) for FFmpeg to write the file and exit with status 0.
    pub fn finish(self) -> Result<EncodeStats, VideoError> {
        self.finish_with_timeout(DEFAULT_FINISH_TIMEOUT)
    }

    /// [`finish`](Self::finish) with an explicit timeout, after which FFmpeg is killed.
    pub fn finish_with_timeout(mut self, timeout: Duration) -> Result<EncodeStats, VideoError> {
        self.shutdown(false, timeout)
    }

    /// Like [`finish`](Self::finish) but through `&mut self`; idempotent (later calls return
    /// the first outcome). Also run by `Drop`, which however discards queued frames and waits
    /// at most [`DROP_TIMEOUT`].
    pub fn close(&mut self) -> Result<EncodeStats, VideoError> {
        self.shutdown(false, DEFAULT_FINISH_TIMEOUT)
    }

    fn shutdown(&mut self, abandon: bool, timeout: Duration) -> Result<EncodeStats, VideoError> {
        if self.outcome.is_none() {
            let outcome = self.shutdown_once(abandon, timeout);
            self.outcome = Some(outcome);
        }
        match self.outcome.as_ref().expect("set above") {
            Ok(stats) => Ok(*stats),
            Err(failure) => Err(VideoError::EncoderDied {
                output: self.output.clone(),
                stats: Box::new(self.stats()),
                source: failure.clone(),
            }),
        }
    }

    fn shutdown_once(
        &mut self,
        abandon: bool,
        timeout: Duration,
    ) -> Result<EncodeStats, FfmpegFailure> {
        let s = Arc::clone(&self.shared);
        let (output, pid) = (self.output.clone(), self.pid);
        let progress_of = Arc::clone(&s);
        // Frames taken, bytes written and CPU used: any of them moving is progress. `Drop`
        // (abandon) waits `timeout` at most, progress or not.
        let cap = if abandon {
            timeout
        } else {
            timeout * FINISH_CAP_FACTOR
        };
        let mut deadline = ProgressDeadline::new(timeout, cap, move || {
            progress_of.written.load(Ordering::Relaxed)
                + std::fs::metadata(&output).map_or(0, |m| m.len())
                + cpu_ticks(pid)
        });
        s.closing.store(true, Ordering::SeqCst);
        if abandon {
            s.abandon.store(true, Ordering::SeqCst);
        }
        // Disconnect the queue: the writer encodes what is queued, then closes stdin.
        drop(self.tx.take());

        let mut killed = false;
        if let Some(writer) = self.writer.take() {
            if !wait_progressing(&mut deadline, || writer.is_finished()) {
                // FFmpeg is not consuming input: kill it, which unblocks the writer (EPIPE).
                let _ = lock(&self.child).kill();
                killed = true;
            }
            join_within(writer, Duration::from_secs(2));
        }
        let (status, timed_out) = wait_or_kill_when(&mut lock(&self.child), || deadline.passed());
        killed |= timed_out;
        if let Some(h) = self.stderr.take() {
            join_within(h, Duration::from_secs(2));
        }

        let mut stats = self.stats();
        stats.queue_len = 0;
        stats.frames_lost = stats.frames_queued.saturating_sub(stats.frames_written);
        let stderr_tail = lock(&s.tail).text();
        let earlier = lock(&s.cause).clone();
        let cause = if let Some(cause) = earlier {
            cause
        } else if killed && deadline.capped() {
            format!("ffmpeg did not finish within {cap:?} and was killed")
        } else if killed {
            format!(
                "ffmpeg made no progress for {timeout:?} (took no frame, wrote no byte, used no \
                 CPU) and was killed"
            )
        } else {
            match status {
                Some(st) if st.success() => return Ok(stats),
                Some(_) => "ffmpeg failed".to_string(),
                None => "ffmpeg's exit status is unknown".to_string(),
            }
        };
        Err(FfmpegFailure {
            cause,
            status,
            stderr_tail,
        })
    }
}

impl Drop for ColorEncoder {
    fn drop(&mut self) {
        if self.outcome.is_none() {
            let _ = self.shutdown(true, DROP_TIMEOUT);
        }
    }
}

impl std::fmt::Debug for ColorEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColorEncoder")
            .field("output", &self.output)
            .field("pid", &self.pid)
            .field("frame_len", &self.frame_len)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The times of one video's frames (see [`ColorEncoder::push_at`]).
#[derive(Debug, Default)]
struct VideoClock {
    /// Capture time of the first queued frame: the video's time 0.
    origin_us: Option<i64>,
    /// Time of the last queued frame.
    last_ms: Option<u64>,
}

impl VideoClock {
    /// `ms`, or 1 ms after the last frame if that is later.
    fn after(&self, ms: u64) -> u64 {
        self.last_ms.map_or(ms, |last| ms.max(last + 1))
    }

    fn time_of(&self, capture_us: i64) -> u64 {
        let since = capture_us.saturating_sub(self.origin_us.unwrap_or(capture_us));
        self.after((since.max(0) as f64 / 1000.0).round() as u64)
    }

    /// The time the frame queued as `index` gets: its capture time, or without one the
    /// nominal `index / fps`.
    fn time_for(&self, index: u64, capture_us: Option<i64>, fps: f64) -> u64 {
        match capture_us {
            Some(us) => self.time_of(us),
            None => self.after((index as f64 * 1000.0 / fps).round() as u64),
        }
    }

    /// Notes a frame queued at `time_ms`; the first one's capture time is the video's 0.
    fn queued(&mut self, time_ms: u64, capture_us: Option<i64>) {
        self.last_ms = Some(time_ms);
        if self.origin_us.is_none() {
            self.origin_us = capture_us;
        }
    }
}

/// Body of the `ffmpeg-stdin` thread: queue -> FFmpeg's stdin, after the Matroska stream's
/// `header`. Ends when the queue is disconnected and empty; dropping stdin then tells FFmpeg
/// the input is over.
fn writer_loop(rx: Receiver<(Vec<u8>, u64)>, stdin: ChildStdin, header: Vec<u8>, s: &Shared) {
    let mut stdin = Some(stdin);
    // The header at once: FFmpeg reads it while the first frame is still being captured.
    if let Some(pipe) = stdin.as_mut() {
        if let Err(e) = pipe.write_all(&header) {
            s.mark_dead(format!("writing the stream header to ffmpeg failed: {e}"));
            stdin = None;
        }
    }
    for (frame, time_ms) in rx.iter() {
        if s.abandon.load(Ordering::SeqCst) || s.dead.load(Ordering::SeqCst) {
            // Discarded; counted as lost (queued but never written).
            stdin = None;
            continue;
        }
        let Some(pipe) = stdin.as_mut() else { continue };
        let prefix = super::mkv::frame_prefix(time_ms, frame.len());
        let sent = pipe
            .write_all(&prefix)
            .and_then(|()| pipe.write_all(&frame));
        match sent {
            Ok(()) => {
                s.written.fetch_add(1, Ordering::SeqCst);
                s.raw_bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                s.mark_dead(format!("writing a frame to ffmpeg failed: {e}"));
                stdin = None;
            }
        }
    }
}
