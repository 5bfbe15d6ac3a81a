//! Colour video through a real FFmpeg (no mocks).
//!
//! Every test needs `ffmpeg` and `ffprobe` on PATH. Without them the tests print a loud
//! SKIPPED line and pass, except when `CI=true`, where a missing FFmpeg is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rsrec::container::PixelFormat;
use rsrec::video::{
    self, ColorCodec, ColorEncoder, EncoderConfig, PushResult, ResolvedCodec, VideoError,
};

/// `Some("ffmpeg")` when ffmpeg and ffprobe run; otherwise skip loudly (or fail on CI).
fn ffmpeg(test: &str) -> Option<PathBuf> {
    let runs = |bin: &str| {
        Command::new(bin)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if runs("ffmpeg") && runs("ffprobe") {
        return Some(PathBuf::from("ffmpeg"));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: ffmpeg/ffprobe not found on PATH, and CI=true");
    }
    skip(&format!("{test}: ffmpeg/ffprobe not found on PATH"));
    None
}

/// Prints a skip notice that is visible even though libtest captures `eprintln!` (writing
/// to the stderr handle directly bypasses the capture).
fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {why} ***");
}

fn resolved(ffmpeg: &Path, codec: ColorCodec) -> ResolvedCodec {
    let info = video::probe(ffmpeg).expect("probe ffmpeg");
    video::resolve(codec, &info, ffmpeg).expect("resolve codec")
}

fn config(
    ffmpeg: &Path,
    output: PathBuf,
    codec: ResolvedCodec,
    (width, height): (u32, u32),
    queue_frames: usize,
) -> EncoderConfig {
    EncoderConfig {
        nice: 0,
        ffmpeg: ffmpeg.to_path_buf(),
        output,
        width,
        height,
        fps: 30.0,
        pixel_format: PixelFormat::Rgb8,
        codec,
        crf: Some(28),
        preset: Some("ultrafast".into()),
        queue_frames,
    }
}

/// A moving RGB gradient, different for every `i`.
fn rgb_frame(width: u32, height: u32, i: u64) -> Vec<u8> {
    let mut f = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height as u64 {
        for x in 0..width as u64 {
            f.push(((x + i * 4) % 256) as u8);
            f.push(((y + i * 2) % 256) as u8);
            f.push(((x + y + i) % 256) as u8);
        }
    }
    f
}

/// `ffprobe -count_frames` on the first video stream.
fn ffprobe(file: &Path) -> Result<serde_json::Value, String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,codec_name,width,height,pix_fmt,color_space,color_range",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    v["streams"]
        .get(0)
        .cloned()
        .ok_or_else(|| format!("no video stream: {v}"))
}

/// Packets of the first video stream that ffprobe finds in a (possibly growing) file.
fn packets_on_disk(file: &Path) -> u64 {
    Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

fn frames_in(stream: &serde_json::Value) -> u64 {
    stream["nb_read_frames"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn push_all(enc: &ColorEncoder, width: u32, height: u32, n: u64) -> Vec<PushResult> {
    (0..n)
        .map(|i| enc.push(rgb_frame(width, height, i)).expect("push"))
        .collect()
}

fn hardware_present() -> bool {
    ["/dev/nvidia0", "/dev/dri"]
        .iter()
        .any(|p| Path::new(p).exists())
}

#[test]
fn libx265_encodes_60_frames_readable_by_ffprobe() {
    let Some(ff) = ffmpeg("libx265_encodes_60_frames_readable_by_ffprobe") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("color.mkv");
    let codec = resolved(&ff, ColorCodec::Libx265);
    assert_eq!(codec.codec(), ColorCodec::Libx265);
    let enc = ColorEncoder::start(config(&ff, out.clone(), codec, (320, 240), 64)).unwrap();
    assert!(enc.pid() > 0);
    let results = push_all(&enc, 320, 240, 60);
    for (i, r) in results.iter().enumerate() {
        assert!(
            matches!(*r, PushResult::Queued { index, .. } if index == i as u64),
            "{r:?}"
        );
    }
    let stats = enc.finish().expect("finish");
    assert_eq!(stats.frames_pushed, 60);
    assert_eq!(stats.frames_queued, 60);
    assert_eq!(stats.frames_written, 60);
    assert_eq!(stats.frames_dropped, 0);
    assert_eq!(stats.frames_lost, 0);
    assert_eq!(stats.raw_bytes, 60 * 320 * 240 * 3);
    assert_eq!(stats.bytes, std::fs::metadata(&out).unwrap().len());
    assert!(stats.bytes > 0);

    let s = ffprobe(&out).expect("ffprobe");
    assert_eq!(frames_in(&s), 60, "{s}");
    assert_eq!(s["codec_name"], "hevc");
    assert_eq!(s["width"], 320);
    assert_eq!(s["height"], 240);
    assert_eq!(s["pix_fmt"], "yuv420p");
    assert_eq!(s["color_space"], "bt709", "{s}");
    assert_eq!(s["color_range"], "tv", "{s}");
}

#[test]
fn libx264_works_too() {
    let Some(ff) = ffmpeg("libx264_works_too") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("color.mkv");
    let codec = resolved(&ff, ColorCodec::Libx264);
    let enc = ColorEncoder::start(config(&ff, out.clone(), codec, (160, 120), 64)).unwrap();
    push_all(&enc, 160, 120, 30);
    let stats = enc.finish().expect("finish");
    assert_eq!(stats.frames_written, 30);
    let s = ffprobe(&out).expect("ffprobe");
    assert_eq!(frames_in(&s), 30, "{s}");
    assert_eq!(s["codec_name"], "h264");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(160), Some(120))
    );
}

/// Pixel formats other than RGB: the frame size follows the layout and FFmpeg reads it.
#[test]
fn other_pixel_formats_encode() {
    let Some(ff) = ffmpeg("other_pixel_formats_encode") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let codec = resolved(&ff, ColorCodec::Libx264);
    for (format, bpp) in [
        (PixelFormat::Bgra8, 4),
        (PixelFormat::Yuyv, 2),
        (PixelFormat::Y8, 1),
    ] {
        let out = dir.path().join(format!("{format:?}.mkv"));
        let mut cfg = config(&ff, out.clone(), codec.clone(), (64, 48), 16);
        cfg.pixel_format = format;
        let enc = ColorEncoder::start(cfg).unwrap();
        assert_eq!(enc.frame_len(), 64 * 48 * bpp);
        for i in 0..5u8 {
            let r = enc.push(vec![i * 40; 64 * 48 * bpp]).unwrap();
            assert!(
                matches!(r, PushResult::Queued { index, .. } if index == i as u64),
                "{r:?}"
            );
        }
        enc.finish().expect("finish");
        assert_eq!(frames_in(&ffprobe(&out).unwrap()), 5, "{format:?}");
    }
}

#[test]
fn auto_resolves_to_libx265_without_hardware() {
    let Some(ff) = ffmpeg("auto_resolves_to_libx265_without_hardware") else {
        return;
    };
    let info = video::probe(&ff).unwrap();
    assert!(!info.version.is_empty());
    assert!(info.has_encoder("libx265"), "this ffmpeg has no libx265");
    let t = Instant::now();
    let codec = video::resolve(ColorCodec::Auto, &info, &ff).expect("auto");
    eprintln!(
        "auto -> {} in {:?}; skipped: {:?}",
        codec.codec(),
        t.elapsed(),
        codec.skipped()
    );
    assert_eq!(codec.requested(), ColorCodec::Auto);
    if hardware_present() {
        skip("auto_resolves_to_libx265_without_hardware (libx265 assertion): GPU device nodes present");
        return;
    }
    assert_eq!(codec.codec(), ColorCodec::Libx265);
    assert_eq!(codec.encoder_name(), "libx265");
    // Every hardware encoder was considered, and each listed one was really tried.
    let skipped: Vec<ColorCodec> = codec.skipped().iter().map(|(c, _)| *c).collect();
    assert_eq!(skipped, ColorCodec::AUTO_HARDWARE_ORDER);
}

#[test]
fn listed_but_unopenable_encoder_is_unavailable() {
    let Some(ff) = ffmpeg("listed_but_unopenable_encoder_is_unavailable") else {
        return;
    };
    let info = video::probe(&ff).unwrap();
    if !info.has_encoder("hevc_nvenc") || hardware_present() {
        skip("listed_but_unopenable_encoder_is_unavailable (nvenc part): hevc_nvenc not listed, or a GPU may be present");
    } else {
        let err = video::resolve(ColorCodec::HevcNvenc, &info, &ff).unwrap_err();
        eprintln!(
            "hevc_nvenc: {err}\n  caused by: {:?}",
            std::error::Error::source(&err).map(|s| s.to_string())
        );
        match &err {
            VideoError::EncoderUnavailable {
                name,
                available_hint,
                source: Some(failure),
            } => {
                assert_eq!(name, "hevc_nvenc");
                assert!(available_hint.contains("libx265"), "{available_hint}");
                assert!(!failure.stderr_tail.is_empty(), "no ffmpeg error tail");
                assert!(failure.status.is_some());
            }
            other => panic!("expected EncoderUnavailable with an ffmpeg error, got {other:?}"),
        }
        // Display shows only its own level; the ffmpeg details come from source().
        assert!(!err.to_string().contains(&failure_tail(&err)));
    }

    // An encoder that is not listed at all: no ffmpeg error to report.
    let mut info = info;
    info.encoders.remove("libsvtav1");
    match video::resolve(ColorCodec::Libsvtav1, &info, &ff) {
        Err(VideoError::EncoderUnavailable { name, source, .. }) => {
            assert_eq!(name, "libsvtav1");
            assert!(source.is_none());
        }
        other => panic!("expected EncoderUnavailable, got {other:?}"),
    }
}

fn failure_tail(err: &VideoError) -> String {
    match err {
        VideoError::EncoderUnavailable {
            source: Some(f), ..
        } => f.stderr_tail.lines().next().unwrap_or("").to_string(),
        _ => String::new(),
    }
}

#[test]
fn missing_ffmpeg_is_ffmpeg_not_found() {
    // Needs no FFmpeg at all.
    let bogus = Path::new("/nonexistent/dir/ffmpeg");
    match video::probe(bogus) {
        Err(VideoError::FfmpegNotFound { path }) => assert_eq!(path, bogus),
        other => panic!("expected FfmpegNotFound, got {other:?}"),
    }
    match video::probe(Path::new("rsrec-no-such-ffmpeg-binary")) {
        Err(VideoError::FfmpegNotFound { .. }) => {}
        other => panic!("expected FfmpegNotFound, got {other:?}"),
    }

    let Some(ff) = ffmpeg("missing_ffmpeg_is_ffmpeg_not_found (encoder part)") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let codec = resolved(&ff, ColorCodec::Libx264);
    let cfg = config(bogus, dir.path().join("x.mkv"), codec, (64, 48), 4);
    match ColorEncoder::start(cfg) {
        Err(VideoError::FfmpegNotFound { path }) => assert_eq!(path, bogus),
        other => panic!("expected FfmpegNotFound, got {other:?}"),
    }
}

#[test]
fn kill_9_mid_stream_reports_dead_and_leaves_a_playable_file() {
    let Some(ff) = ffmpeg("kill_9_mid_stream_reports_dead_and_leaves_a_playable_file") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("killed.mkv");
    let codec = resolved(&ff, ColorCodec::Libx265);
    let enc = ColorEncoder::start(config(&ff, out.clone(), codec, (320, 240), 30)).unwrap();

    // ~30 fps, like a camera: at least 40 frames and at least 1 s. On a loaded machine the
    // encoder may lag, so also wait (at most 10 s) until some video has reached the disk:
    // the point is that what is on disk survives, not how fast this machine encodes.
    let start = Instant::now();
    let mut i = 0u64;
    let mut last_check = Instant::now();
    let mut on_disk = 0;
    while i < 40 || start.elapsed() < Duration::from_millis(1000) || on_disk == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nothing reached the disk"
        );
        if i >= 40 && last_check.elapsed() > Duration::from_millis(200) {
            on_disk = packets_on_disk(&out);
            last_check = Instant::now();
        }
        match enc.push(rgb_frame(320, 240, i)).unwrap() {
            PushResult::Queued { index, .. } => assert_eq!(index, i),
            other => panic!("frame {i}: {other:?}"),
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(33));
    }
    let queued_before_kill = i;
    let rc = unsafe { libc::kill(enc.pid() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {}", enc.pid());

    // Keep pushing like a camera would: within a short time every push says "dead".
    let killed_at = Instant::now();
    let failure = loop {
        assert!(
            killed_at.elapsed() < Duration::from_secs(5),
            "encoder did not notice that ffmpeg died"
        );
        match enc.push(rgb_frame(320, 240, i)).unwrap() {
            PushResult::EncoderDead(f) => break f,
            PushResult::Queued { .. } | PushResult::Dropped => {}
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(33));
    };
    let noticed = killed_at.elapsed();
    for _ in 0..3 {
        assert!(matches!(
            enc.push(rgb_frame(320, 240, 0)).unwrap(),
            PushResult::EncoderDead(_)
        ));
    }
    assert!(enc.failed().is_some());
    eprintln!("noticed after {noticed:?}: {failure}");

    let t = Instant::now();
    let err = enc.finish().expect_err("finish after kill -9 must fail");
    assert!(t.elapsed() < Duration::from_secs(5), "finish hung");
    let VideoError::EncoderDied {
        output,
        stats,
        source,
    } = &err
    else {
        panic!("expected EncoderDied, got {err:?}");
    };
    assert_eq!(output, &out);
    eprintln!("finish: {err} / {source} / {stats:?}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(source.status.and_then(|s| s.signal()), Some(libc::SIGKILL));
    }
    assert!(stats.frames_queued >= queued_before_kill);
    assert_eq!(
        stats.frames_pushed,
        stats.frames_queued + stats.frames_dropped + stats.frames_rejected
    );
    assert_eq!(
        stats.frames_queued,
        stats.frames_written + stats.frames_lost
    );
    assert!(stats.frames_rejected >= 4);

    let s = ffprobe(&out).expect("partial file must be readable");
    let frames = frames_in(&s);
    eprintln!(
        "partial file: {} bytes, {frames} frames readable of {queued_before_kill} pushed before kill -9",
        std::fs::metadata(&out).unwrap().len()
    );
    assert!(frames > 0, "{s}");
    assert_eq!(s["codec_name"], "hevc");
}

#[test]
fn wrong_size_frame_is_an_error() {
    let Some(ff) = ffmpeg("wrong_size_frame_is_an_error") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.mkv");
    let codec = resolved(&ff, ColorCodec::Libx264);
    let enc = ColorEncoder::start(config(&ff, out.clone(), codec, (64, 48), 8)).unwrap();
    match enc.push(vec![0; 64 * 48 * 3 - 1]) {
        Err(VideoError::FrameSize { expected, got }) => {
            assert_eq!((expected, got), (64 * 48 * 3, 64 * 48 * 3 - 1));
        }
        other => panic!("expected FrameSize, got {other:?}"),
    }
    assert!(enc.push(Vec::new()).is_err());
    // The encoder is unaffected and the bad frames took no index.
    assert_eq!(
        enc.push(rgb_frame(64, 48, 0)).unwrap(),
        PushResult::Queued {
            index: 0,
            time_ms: 0
        }
    );
    let stats = enc.finish().unwrap();
    assert_eq!((stats.frames_pushed, stats.frames_written), (1, 1));
    assert_eq!(frames_in(&ffprobe(&out).unwrap()), 1);
}

#[test]
fn tiny_queue_drops_frames_and_counts_them() {
    let Some(ff) = ffmpeg("tiny_queue_drops_frames_and_counts_them") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("drops.mkv");
    let codec = resolved(&ff, ColorCodec::Libx265);
    let mut cfg = config(&ff, out.clone(), codec, (320, 240), 2);
    cfg.preset = Some("medium".into());
    let enc = ColorEncoder::start(cfg).unwrap();
    let frames: Vec<Vec<u8>> = (0..8).map(|i| rgb_frame(320, 240, i)).collect();
    let pushed = 200u64;
    let mut next_index = 0;
    let mut dropped = 0;
    for i in 0..pushed {
        // Far faster than x265 `medium` encodes, but slow enough for some frames to get in.
        std::thread::sleep(Duration::from_millis(2));
        match enc.push(frames[(i % 8) as usize].clone()).unwrap() {
            PushResult::Queued { index, .. } => {
                assert_eq!(index, next_index, "indices count accepted frames");
                next_index += 1;
            }
            PushResult::Dropped => dropped += 1,
            PushResult::EncoderDead(f) => panic!("ffmpeg died: {f}"),
        }
        let live = enc.stats();
        assert!(live.queue_len <= 2);
        assert_eq!(live.queue_capacity, 2);
    }
    let stats = enc.finish().expect("finish");
    eprintln!("tiny queue: {stats:?}");
    assert!(dropped > 0, "no frame was dropped");
    assert!(next_index > 2, "the queue never drained");
    assert_eq!(stats.frames_dropped, dropped);
    assert_eq!(stats.frames_written, next_index);
    assert_eq!(stats.frames_written + stats.frames_dropped, pushed);
    assert_eq!(stats.frames_pushed, pushed);
    assert_eq!(frames_in(&ffprobe(&out).unwrap()), stats.frames_written);
}

/// FFmpeg failing on its own (a bad preset) surfaces as a dead encoder with its stderr.
#[test]
fn ffmpeg_failure_is_reported_with_its_stderr() {
    let Some(ff) = ffmpeg("ffmpeg_failure_is_reported_with_its_stderr") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let codec = resolved(&ff, ColorCodec::Libx264);
    let mut cfg = config(&ff, dir.path().join("bad.mkv"), codec, (64, 48), 4);
    cfg.preset = Some("no-such-preset".into());
    let enc = ColorEncoder::start(cfg).unwrap();
    let t = Instant::now();
    let failure = loop {
        assert!(t.elapsed() < Duration::from_secs(10), "failure not noticed");
        if let PushResult::EncoderDead(f) = enc.push(rgb_frame(64, 48, 0)).unwrap() {
            break f;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("bad preset: {failure}");
    assert!(!failure.stderr_tail.is_empty());
    let err = enc.finish().unwrap_err();
    let VideoError::EncoderDied { source, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(source.status.is_some_and(|s| !s.success()));
    assert!(source
        .to_string()
        .contains(source.stderr_summary().as_str()));
}

#[test]
fn drop_without_finish_stops_ffmpeg_promptly() {
    let Some(ff) = ffmpeg("drop_without_finish_stops_ffmpeg_promptly") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dropped.mkv");
    let codec = resolved(&ff, ColorCodec::Libx265);
    let mut cfg = config(&ff, out.clone(), codec, (320, 240), 100);
    cfg.preset = Some("medium".into());
    let enc = ColorEncoder::start(cfg).unwrap();
    let pid = enc.pid();
    push_all(&enc, 320, 240, 100);
    let t = Instant::now();
    drop(enc);
    assert!(t.elapsed() < video::DROP_TIMEOUT + Duration::from_secs(2));
    // The process is gone (and reaped: signal 0 finds no such process).
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    assert!(!alive, "ffmpeg {pid} still running after drop");
    // What was encoded before the drop is a valid file.
    ffprobe(&out).expect("file after drop is readable");
}

#[test]
fn close_is_idempotent_and_push_after_close_is_an_error() {
    let Some(ff) = ffmpeg("close_is_idempotent_and_push_after_close_is_an_error") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.mkv");
    let codec = resolved(&ff, ColorCodec::Libx264);
    let mut enc =
        ColorEncoder::start(config(&ff, out.clone(), codec.clone(), (64, 48), 8)).unwrap();
    push_all(&enc, 64, 48, 3);
    let first = enc.close().unwrap();
    let second = enc.close().unwrap();
    assert_eq!(first, second);
    assert_eq!(first.frames_written, 3);
    assert!(matches!(
        enc.push(rgb_frame(64, 48, 0)),
        Err(VideoError::Closed)
    ));
    drop(enc);

    // Never overwrite an existing recording.
    match ColorEncoder::start(config(&ff, out.clone(), codec, (64, 48), 8)) {
        Err(VideoError::OutputExists { path }) => assert_eq!(path, out),
        other => panic!("expected OutputExists, got {other:?}"),
    }
}

#[test]
fn invalid_configs_are_rejected_before_spawning() {
    let Some(ff) = ffmpeg("invalid_configs_are_rejected_before_spawning") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let codec = resolved(&ff, ColorCodec::Libx264);
    let base = config(&ff, dir.path().join("x.mkv"), codec, (64, 48), 8);
    let cases: Vec<(&str, EncoderConfig)> = vec![
        (
            "odd width",
            EncoderConfig {
                width: 63,
                ..base.clone()
            },
        ),
        (
            "zero fps",
            EncoderConfig {
                fps: 0.0,
                ..base.clone()
            },
        ),
        (
            "nan fps",
            EncoderConfig {
                fps: f64::NAN,
                ..base.clone()
            },
        ),
        (
            "queue 0",
            EncoderConfig {
                queue_frames: 0,
                ..base.clone()
            },
        ),
        (
            "crf 99",
            EncoderConfig {
                crf: Some(99),
                ..base.clone()
            },
        ),
        (
            "preset injection",
            EncoderConfig {
                preset: Some("fast -y".into()),
                ..base.clone()
            },
        ),
    ];
    for (what, cfg) in cases {
        assert!(
            matches!(ColorEncoder::start(cfg), Err(VideoError::InvalidConfig(_))),
            "{what}"
        );
    }
    let depth = EncoderConfig {
        pixel_format: PixelFormat::Z16,
        ..base
    };
    assert!(matches!(
        ColorEncoder::start(depth),
        Err(VideoError::UnsupportedPixelFormat { .. })
    ));
    assert!(!dir.path().join("x.mkv").exists());
}

/// RGB is converted to BT.709 limited range and tagged so: a standard decoder gives the
/// colours back (within rounding), whatever the frame size.
#[test]
fn colours_round_trip_through_a_standard_decoder() {
    let Some(ff) = ffmpeg("colours_round_trip_through_a_standard_decoder") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("colour.mkv");
    let codec = resolved(&ff, ColorCodec::Libx264);
    let mut cfg = config(&ff, out.clone(), codec, (64, 48), 8);
    cfg.crf = Some(0);
    let enc = ColorEncoder::start(cfg).unwrap();
    let rgb = [200u8, 30, 60];
    for _ in 0..3 {
        enc.push(rgb.repeat(64 * 48)).unwrap();
    }
    enc.finish().unwrap();
    let decoded = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&out)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(decoded.status.success());
    assert_eq!(decoded.stdout.len(), 64 * 48 * 3);
    let centre = (24 * 64 + 32) * 3;
    let got = &decoded.stdout[centre..centre + 3];
    for (g, want) in got.iter().zip(rgb) {
        assert!(g.abs_diff(want) <= 4, "decoded {got:?}, encoded {rgb:?}");
    }
}

/// The presentation times (s) of every frame of the first video stream, and the container's
/// duration (s), as ffprobe reports them.
pub fn frame_times_and_duration(file: &Path) -> (Vec<f64>, f64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "frame=pts_time:format=duration",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let num = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    let times = v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| num(&f["pts_time"]))
        .collect();
    (times, num(&v["format"]["duration"]).unwrap_or(0.0))
}

/// Issue 16: FFmpeg was fed raw frames at a fixed rate, so every dropped colour frame
/// shortened the video (a 20 s recording gave a 10.9 s .mkv). Frames pushed with their
/// capture times keep them: a third of the frames missing, the video is as long as the
/// capture, and each frame is at its capture time (ms) from the first.
#[test]
fn frames_keep_their_capture_times_after_drops() {
    let Some(ff) = ffmpeg("frames_keep_their_capture_times_after_drops") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for codec in [ColorCodec::Libx265, ColorCodec::Libx264] {
        let out = dir.path().join(format!("{codec}.mkv"));
        let enc = ColorEncoder::start(config(
            &ff,
            out.clone(),
            resolved(&ff, codec),
            (64, 48),
            256,
        ))
        .unwrap();
        // 3 s at 30 fps from host time 1.7e15 µs, with jitter; every third frame lost.
        let t0 = 1_700_000_000_000_000i64;
        let mut want = Vec::new();
        for i in (0..90u64).filter(|i| i % 3 != 1) {
            let capture = t0 + (i as i64 * 1_000_000) / 30 + (i as i64 % 4) * 700;
            match enc.push_at(rgb_frame(64, 48, i), capture).unwrap() {
                PushResult::Queued { time_ms, .. } => {
                    assert_eq!(
                        time_ms as i64,
                        ((capture - t0) as f64 / 1000.0).round() as i64
                    );
                    want.push(time_ms as f64 / 1000.0);
                }
                r => panic!("{r:?}"),
            }
        }
        enc.finish().unwrap();
        let (times, duration) = frame_times_and_duration(&out);
        assert_eq!(times.len(), want.len(), "{codec}: {times:?}");
        for (got, want) in times.iter().zip(&want) {
            assert!(
                (got - want).abs() < 0.0015,
                "{codec}: frame at {got} s, captured at {want} s"
            );
        }
        // Depth of the same capture spans 89/30 s; the video's duration is within 5 %.
        let span = 89.0 / 30.0;
        assert!(
            (duration / span - 1.0).abs() < 0.05,
            "{codec}: the video lasts {duration} s, the capture {span} s"
        );
    }
}

/// Times of frames that arrive out of order or at the same instant stay increasing (1 ms
/// apart): a clock that steps back cannot reorder the video.
#[test]
fn capture_times_that_step_back_stay_increasing() {
    let Some(ff) = ffmpeg("capture_times_that_step_back_stay_increasing") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("back.mkv");
    let codec = resolved(&ff, ColorCodec::Libx264);
    let enc = ColorEncoder::start(config(&ff, out.clone(), codec, (64, 48), 16)).unwrap();
    let mut got = Vec::new();
    for (i, t) in [1_000_000i64, 1_033_000, 1_020_000, 1_020_000, 1_100_000]
        .iter()
        .enumerate()
    {
        match enc.push_at(rgb_frame(64, 48, i as u64), *t).unwrap() {
            PushResult::Queued { time_ms, .. } => got.push(time_ms),
            r => panic!("{r:?}"),
        }
    }
    assert_eq!(got, [0, 33, 34, 35, 100]);
    enc.finish().unwrap();
    let (times, _) = frame_times_and_duration(&out);
    assert_eq!(times, [0.0, 0.033, 0.034, 0.035, 0.1]);
}

/// The video lasts until the capture's last frame: the newest dropped frame, pushed at the
/// end with `push_last_dropped`, is the video's last frame at its capture time, and is no
/// longer counted as dropped.
#[test]
fn the_last_dropped_frame_ends_the_video_at_its_time() {
    let Some(ff) = ffmpeg("the_last_dropped_frame_ends_the_video_at_its_time") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("last.mkv");
    let codec = resolved(&ff, ColorCodec::Libx264);
    let enc = ColorEncoder::start(config(&ff, out.clone(), codec, (320, 240), 1)).unwrap();
    assert_eq!(enc.push_last_dropped(Duration::from_secs(1)).unwrap(), None);
    // Pushed far faster than FFmpeg takes them: most are dropped. Stop right after a drop,
    // so the newest frame is a dropped one (a frame queued after it would clear it: a slow
    // CI machine can take the final frame of a fixed count).
    let mut last = None;
    for i in 0..3000u64 {
        let t = i as i64 * 33_333;
        if let PushResult::Dropped = enc.push_at(rgb_frame(320, 240, i), t).unwrap() {
            last = Some(t);
            if i >= 20 {
                break;
            }
        }
    }
    let last = last.expect("a 1-frame queue dropped frames");
    let before = enc.stats();
    match enc.push_last_dropped(Duration::from_secs(30)).unwrap() {
        Some(PushResult::Queued { index, time_ms }) => {
            assert_eq!(index, before.frames_queued);
            assert_eq!(time_ms as i64, (last as f64 / 1000.0).round() as i64);
        }
        r => panic!("{r:?}"),
    }
    // Only once.
    assert_eq!(enc.push_last_dropped(Duration::from_secs(1)).unwrap(), None);
    let stats = enc.finish().unwrap();
    assert_eq!(stats.frames_dropped, before.frames_dropped - 1);
    assert_eq!(stats.frames_queued, before.frames_queued + 1);
    let (times, _) = frame_times_and_duration(&out);
    assert_eq!(times.len() as u64, stats.frames_queued);
    let end = *times.last().unwrap();
    assert!(
        (end - last as f64 / 1e6).abs() < 0.0015,
        "last frame at {end} s, captured at {last} us"
    );
}
