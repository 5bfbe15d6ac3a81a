//! `rsrec record` end to end with synthetic cameras and real FFmpeg: files, session.json,
//! colour alignment, drops accounted for, segments, Ctrl+C and kill -9.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rsrec::container::format::record_type;
use rsrec::container::recover::verify;
use rsrec::container::{Reader, VideoSegment};
use serde_json::Value;

fn rsrec() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rsrec"))
}

use crate::common::have_ffmpeg;

fn record(out: &Path, extra: &[&str]) -> Output {
    let o = rsrec()
        .args([
            "record",
            "--out",
            out.to_str().unwrap(),
            "--session",
            "s",
            "--quiet",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "record {extra:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Frames ffprobe decodes in a video.
fn video_frames(path: &Path) -> u64 {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn session(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("session.json")).unwrap()).unwrap()
}

/// Checks one camera's files against session.json and the videos.
fn check_camera(dir: &Path, cam: &Value) -> (u64, u64) {
    let stats = &cam["stats"];
    let mut depth = 0;
    let mut metadata = 0;
    let mut color_entries: std::collections::BTreeMap<u32, Vec<u64>> = Default::default();
    let mut color_times: std::collections::BTreeMap<u32, Vec<i64>> = Default::default();
    let mut numbers = Vec::new();
    for f in cam["files"].as_array().unwrap() {
        let path = dir.join(f.as_str().unwrap());
        let r = Reader::open(&path).unwrap();
        assert!(r.is_closed(), "{} not closed", path.display());
        let v = verify(&r);
        assert!(v.ok(), "{}: {:?}", path.display(), v.problems);
        depth += r.frame_count(0) as u64;
        metadata += r.count(0, record_type::FRAME_METADATA) as u64;
        numbers.extend(
            r.entries(0, record_type::DEPTH_FRAME)
                .map(|e| e.frame_number),
        );
        for i in 0..r.count(1, record_type::COLOR_FRAME) {
            let (_, p) = r.read_record(1, record_type::COLOR_FRAME, i).unwrap();
            let e = rsrec::container::ColorFrameEntry::decode(p).unwrap();
            color_entries
                .entry(e.segment)
                .or_default()
                .push(e.index_in_video);
            color_times.entry(e.segment).or_default().push(
                e.video_time_us
                    .expect("format v2 entries give the video time"),
            );
        }
        for i in 0..r.count(1, record_type::VIDEO_SEGMENT) {
            let (_, p) = r.read_record(1, record_type::VIDEO_SEGMENT, i).unwrap();
            let s = VideoSegment::decode(p).unwrap();
            assert!(dir.join(&s.file_name).is_file(), "{} missing", s.file_name);
        }
    }
    // Frame numbers strictly increase across segments: none lost or repeated at boundaries
    // except those the gaps account for.
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "frame numbers not increasing"
    );
    assert_eq!(depth, stats["depth_written"].as_u64().unwrap());
    // The synthetic camera reports exposure and laser power with every depth frame (§5.8).
    assert_eq!(metadata, depth, "depth frames with their metadata record");
    assert_eq!(
        stats["depth_captured"].as_u64().unwrap(),
        stats["depth_written"].as_u64().unwrap() + stats["depth_dropped"].as_u64().unwrap()
    );
    let queued: u64 = color_entries.values().map(|v| v.len() as u64).sum();
    assert_eq!(queued, stats["color_queued"].as_u64().unwrap());
    for (k, v) in cam["color_videos"].as_array().unwrap().iter().enumerate() {
        let path = dir.join(v.as_str().unwrap());
        let frames = video_frames(&path);
        // Every frame of the video is where its entry says (its capture time, in ms).
        let (times, _) = crate::video::frame_times_and_duration(&path);
        let want = color_times.remove(&(k as u32)).unwrap_or_default();
        assert_eq!(times.len(), want.len(), "{v}: frames with times");
        for (i, (got, want)) in times.iter().zip(&want).enumerate() {
            assert!(
                (got * 1e6 - *want as f64).abs() < 500.0,
                "{v}: frame {i} at {got} s in the video, its entry says {want} us"
            );
        }
        let entries = color_entries.remove(&(k as u32)).unwrap_or_default();
        // Colour entries index their video in order with no holes: entry i is video frame i.
        assert_eq!(
            entries,
            (0..entries.len() as u64).collect::<Vec<_>>(),
            "{v}"
        );
        assert_eq!(
            frames,
            entries.len() as u64,
            "{v}: video frames vs colour entries"
        );
    }
    assert!(
        color_entries.is_empty(),
        "entries for missing videos: {color_entries:?}"
    );
    (depth, queued)
}

#[test]
fn two_sim_cameras_for_a_few_seconds() {
    let _cpu = crate::common::cpu_exclusive();
    if !have_ffmpeg() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    record(
        tmp.path(),
        &[
            // Exactly the check of the recording issue: default sizes (848x480 depth,
            // 640x480 colour), 10 s.
            "--cameras",
            "sim:2",
            "--duration",
            "10s",
            "--imu",
        ],
    );
    let dir = tmp.path().join("s");
    let s = session(&dir);
    assert_eq!(s["status"], "complete");
    let cams = s["cameras"].as_array().unwrap();
    assert_eq!(cams.len(), 2);
    // Each camera's clock against the host's (comparing the cameras of a rig).
    let domains: Vec<&Value> = cams
        .iter()
        .map(|c| &c["stats"]["depth_ts_domain"])
        .collect();
    assert!(
        domains.iter().all(|d| d.is_string() && *d == domains[0]),
        "{domains:?}"
    );
    assert!(cams
        .iter()
        .all(|c| c["stats"]["depth_clock_offset_us"].is_i64()));
    let mut rsrec_files = 0;
    for cam in cams {
        let (depth, color) = check_camera(&dir, cam);
        // Every captured frame is written or counted as dropped (check_camera); the camera
        // delivered its rate and most of it was kept.
        let depth_captured = cam["stats"]["depth_captured"].as_u64().unwrap();
        // 300 are due; the synthetic camera renders its frames on the CPU, so a machine
        // busy with other tests delivers fewer. Half is the bar for "it recorded 10 s".
        assert!(
            depth_captured >= 150,
            "only {depth_captured} depth frames captured in 10 s at 30 fps"
        );
        assert!(
            depth * 2 >= depth_captured,
            "only {depth} of {depth_captured} depth frames written"
        );
        // The colour encoder sheds load by dropping (counted) frames when the machine is
        // busy (CI runs other tests beside this one), so the check is that every captured
        // colour frame is either in the video or counted as dropped - not a rate.
        let st = &cam["stats"];
        let captured = st["color_captured"].as_u64().unwrap();
        assert!(
            captured >= 150,
            "only {captured} colour frames captured in 10 s at 30 fps"
        );
        assert_eq!(
            captured,
            color + st["color_dropped"].as_u64().unwrap(),
            "colour frames neither recorded nor counted as dropped: {st}"
        );
        assert!(color > 0, "no colour frame recorded");
        assert!(cam["stats"]["imu_samples"].as_u64().unwrap() > 500);
        rsrec_files += cam["files"].as_array().unwrap().len();
        let r = Reader::open(dir.join(cam["files"][0].as_str().unwrap())).unwrap();
        assert!(r.count(2, record_type::IMU_BATCH) > 0 && r.count(3, record_type::IMU_BATCH) > 0);
    }
    assert_eq!(rsrec_files, 2);
    let o = rsrec()
        .args(["verify"])
        .arg(dir.join("sim0.rsrec"))
        .output()
        .unwrap();
    assert!(o.status.success());
}

/// Issue 16: colour went to FFmpeg at a fixed frame rate, so every dropped colour frame
/// shortened the video (20 s recorded, a 10.9 s .mkv). With an encoder that cannot keep up
/// (1080p at x265's medium preset, a 2-frame queue) colour frames are dropped and the
/// encoder is stepped down to faster presets, each step a new video. In every video each
/// frame is at its capture time from the video's first frame (ffprobe's times against the
/// host times of the colour entries), and the last video ends where the depth stream ends
/// (within 5 % of the recording): nothing is shortened by the drops.
#[test]
fn colour_video_keeps_the_capture_clock_when_colour_frames_drop() {
    if !have_ffmpeg() {
        return common::skip("colour_video_keeps_the_capture_clock: no ffmpeg");
    }
    let tmp = tempfile::tempdir().unwrap();
    record(
        tmp.path(),
        &[
            "--cameras",
            "sim:1",
            "--duration",
            "6s",
            "--depth",
            "424x240@30",
            "--color",
            "1920x1080@30",
            "--preset",
            "medium",
            "--color-queue",
            "2",
        ],
    );
    let dir = tmp.path().join("s");
    let s = session(&dir);
    let cam = &s["cameras"][0];
    check_camera(&dir, cam);
    let stats = &cam["stats"];
    let dropped = stats["color_dropped"].as_u64().unwrap();
    let queued = stats["color_queued"].as_u64().unwrap();
    let steps = stats["color_preset_steps"].as_u64().unwrap();
    eprintln!("colour: {queued} frames in the videos, {dropped} dropped, {steps} preset steps");
    assert!(
        dropped > 0,
        "x265 medium at 1920x1080@30 kept up on this machine: no colour frame dropped"
    );
    let videos: Vec<String> = cam["color_videos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        videos.len() as u64,
        steps + 1,
        "one video per preset: {videos:?}"
    );

    // The colour entries, by video: (host time, index in the video, time in the video).
    let rec = rsrec::session::Recording::open(&dir).unwrap();
    let c = &rec.cameras[0];
    let mut by_video: std::collections::BTreeMap<u32, Vec<(i64, u64, i64)>> = Default::default();
    for k in 0..c.count(rsrec::session::Stream::Color) {
        let (h, e) = c.color_frame(k).unwrap();
        let t = e
            .video_time_us
            .expect("version 3 entries carry the video time");
        by_video
            .entry(e.segment)
            .or_default()
            .push((h.host_ts_us, e.index_in_video, t));
    }
    assert_eq!(by_video.len(), videos.len(), "{videos:?}");
    let mut last_end_us = 0i64;
    for (segment, entries) in &by_video {
        let name = videos
            .iter()
            .find(|v| v.ends_with(&format!(".{segment:03}.mkv")))
            .unwrap_or_else(|| panic!("no video for segment {segment}: {videos:?}"));
        let (times, duration) = crate::video::frame_times_and_duration(&dir.join(name));
        let first_host = entries[0].0;
        for &(host, index, video_us) in entries {
            // The entry's video time is its capture time from the video's first frame
            // (rounded to the millisecond, at least 1 ms after the frame before) ...
            let from_first = host - first_host;
            assert!(
                (video_us - from_first).abs() <= 1_500,
                "{name} frame {index}: at {video_us} us in the video, captured {from_first} us after its first"
            );
            // ... and the video has the frame there.
            let got = times
                .get(index as usize)
                .unwrap_or_else(|| panic!("{name} has {} frames, no frame {index}", times.len()));
            assert!(
                (got - video_us as f64 / 1e6).abs() < 0.0015,
                "{name} frame {index} at {got} s, its entry says {video_us} us"
            );
        }
        last_end_us = first_host + (duration * 1e6) as i64;
    }
    let r = Reader::open(dir.join(cam["files"][0].as_str().unwrap())).unwrap();
    let n = r.frame_count(0);
    let first = r.entry(0, record_type::DEPTH_FRAME, 0).unwrap().host_ts_us;
    let last = r
        .entry(0, record_type::DEPTH_FRAME, n - 1)
        .unwrap()
        .host_ts_us;
    let depth_s = (last - first) as f64 / 1e6;
    let short_s = (last - last_end_us) as f64 / 1e6;
    eprintln!(
        "depth {depth_s:.3} s; the last video ends {short_s:.3} s before the last depth frame"
    );
    assert!(
        short_s.abs() < 0.05 * depth_s,
        "the last video ends {short_s} s before the depth stream (of {depth_s} s)"
    );
}

#[test]
fn drops_are_counted_and_recorded_as_gaps() {
    // One worker with slow zstd and a 2-frame queue cannot keep up with 2 cameras.
    let tmp = tempfile::tempdir().unwrap();
    record(
        tmp.path(),
        &[
            "--cameras",
            "sim:2",
            "--duration",
            "3s",
            "--depth",
            "848x480@30",
            "--color",
            "off",
            "--workers",
            "1",
            "--queue",
            "2",
            "--depth-codec",
            "zstd-planes:15",
        ],
    );
    let dir = tmp.path().join("s");
    let s = session(&dir);
    let mut total_dropped = 0;
    for cam in s["cameras"].as_array().unwrap() {
        check_camera(&dir, cam);
        let dropped = cam["stats"]["depth_dropped"].as_u64().unwrap();
        total_dropped += dropped;
        let r = Reader::open(dir.join(cam["files"][0].as_str().unwrap())).unwrap();
        let gap_frames: u64 = r
            .gaps()
            .unwrap()
            .iter()
            .filter(|(st, g)| *st == 0 && g.reason == rsrec::container::GapReason::QueueFull)
            .map(|(_, g)| g.count)
            .sum();
        assert_eq!(
            gap_frames, dropped,
            "every dropped frame is in a gap record"
        );
        // Written + gaps cover every frame number the camera produced.
        let written = r.frame_count(0) as u64;
        let last = r
            .entry(0, record_type::DEPTH_FRAME, written as usize - 1)
            .unwrap()
            .frame_number;
        assert!(
            written + gap_frames >= last,
            "{written} + {gap_frames} < {last}"
        );
    }
    assert!(total_dropped > 0, "the overload produced no drops");
}

#[test]
fn segments_split_without_losing_or_repeating_frames() {
    let tmp = tempfile::tempdir().unwrap();
    record(
        tmp.path(),
        &[
            "--cameras",
            "sim:1",
            "--duration",
            "3.5s",
            "--depth",
            "212x120@30",
            "--color",
            "off",
            "--segment",
            "1s",
        ],
    );
    let dir = tmp.path().join("s");
    let s = session(&dir);
    let cam = &s["cameras"][0];
    let files = cam["files"].as_array().unwrap();
    assert!(files.len() >= 3, "{files:?}");
    assert_eq!(files[0], "sim0.000.rsrec");
    let (depth, _) = check_camera(&dir, cam);
    // No drops expected at this size: frame numbers are exactly 0..depth.
    let mut all = Vec::new();
    for f in files {
        let r = Reader::open(dir.join(f.as_str().unwrap())).unwrap();
        all.extend(
            r.entries(0, record_type::DEPTH_FRAME)
                .map(|e| e.frame_number),
        );
    }
    assert_eq!(all, (0..depth).collect::<Vec<_>>());
}

fn spawn_record(out: &Path, extra: &[&str]) -> std::process::Child {
    rsrec()
        .args([
            "record",
            "--out",
            out.to_str().unwrap(),
            "--session",
            "s",
            "--quiet",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `cameras` with small depth (212x120@30) and colour (160x120@15), running for 3 s.
fn spawn_small_colour_record(out: &Path, cameras: &str) -> std::process::Child {
    let child = spawn_record(
        out,
        &[
            "--cameras",
            cameras,
            "--depth",
            "212x120@30",
            "--color",
            "160x120@15",
        ],
    );
    std::thread::sleep(Duration::from_secs(3));
    child
}

fn signal(child: &std::process::Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn ctrl_c_drains_and_closes_every_file() {
    if !have_ffmpeg() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let child = spawn_record(
        tmp.path(),
        &[
            "--cameras",
            "sim:2",
            "--depth",
            "424x240@30",
            "--color",
            "320x240@15",
        ],
    );
    std::thread::sleep(Duration::from_secs(3));
    signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = tmp.path().join("s");
    let s = session(&dir);
    assert_eq!(s["status"], "complete");
    for cam in s["cameras"].as_array().unwrap() {
        let (depth, _) = check_camera(&dir, cam);
        assert!(depth > 30);
    }
}

/// Regression: kill -9 lost up to 2.1 s of depth (median 1.1 s over 28 camera-files), and
/// `recover` left session.json at "recording" forever. kill -9 at 10 random moments of a
/// 4-camera recording: every file holds all but at most 1 s of depth (the newest frame in
/// the file is at most 1 s older than the kill), and `rsrec recover SESSION` repairs every
/// file and the manifest in one command.
#[test]
fn kill_9_loses_at_most_one_second_and_recover_repairs_the_session() {
    let _cpu = crate::common::cpu_exclusive();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut worst_us = 0i64;
    for round in 0..10 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wait = Duration::from_millis(1500 + rng % 2000);
        let tmp = tempfile::tempdir().unwrap();
        let mut child = spawn_record(
            tmp.path(),
            &[
                "--cameras",
                "sim:4",
                // Small, well-compressed frames: the write buffer never fills, so what
                // reaches the file before a kill is up to the writer's flushing alone.
                "--depth",
                "212x120@30",
                "--depth-codec",
                "grad-rans32",
                "--color",
                "off",
            ],
        );
        std::thread::sleep(wait);
        let killed_us = rsrec::container::now_utc_us();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let dir = tmp.path().join("s");
        assert_eq!(session(&dir)["status"], "recording");
        let mut frames = Vec::new();
        for k in 0..4 {
            let file = dir.join(format!("sim{k}.rsrec"));
            let r = Reader::open(&file).unwrap();
            assert!(!r.is_closed());
            let n = r.frame_count(0);
            let last = r.entries(0, record_type::DEPTH_FRAME).last().unwrap();
            let lost_us = killed_us - last.host_ts_us;
            worst_us = worst_us.max(lost_us);
            assert!(
                lost_us <= 1_000_000,
                "round {round} (killed after {wait:?}): sim{k}.rsrec lost {:.3} s of depth",
                lost_us as f64 / 1e6
            );
            frames.push(n);
        }
        let o = rsrec().arg("recover").arg(&dir).output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let s = session(&dir);
        assert_eq!(s["status"], "recovered after a crash");
        assert!(s["stop_utc_us"].as_i64().unwrap() <= killed_us);
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        for (k, cam) in s["cameras"].as_array().unwrap().iter().enumerate() {
            assert_eq!(cam["files"][0], format!("sim{k}.rsrec"));
            assert_eq!(cam["stats"]["depth_written"], frames[k] as u64);
            let r = Reader::open(dir.join(format!("sim{k}.rsrec"))).unwrap();
            assert!(r.is_closed());
            assert!(verify(&r).ok());
            assert_eq!(r.frame_count(0), frames[k]);
        }
        // A second run finds nothing to do.
        let o = rsrec().arg("recover").arg(&dir).output().unwrap();
        assert_eq!(o.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&o.stdout).contains("left as it was"));
    }
    eprintln!(
        "kill -9: at most {:.3} s of depth lost",
        worst_us as f64 / 1e6
    );
}

#[test]
fn bad_arguments_fail_before_recording() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["--cameras", "all"],
            1,
            if cfg!(feature = "realsense") {
                "no RealSense devices found"
            } else {
                "no RealSense support"
            },
        ),
        // Bad arguments exit 2, like clap's own.
        (vec!["--cameras", "sim:0"], 2, "sim:N"),
        (vec!["--cameras", "png:/nonexistent"], 1, "not a directory"),
        (
            vec!["--cameras", "sim:1", "--ffmpeg", "/nonexistent/ffmpeg"],
            1,
            "FFmpeg",
        ),
        (
            vec!["--cameras", "sim:1", "--color-codec", "h263"],
            2,
            "color-codec",
        ),
        // Regressions: each of these was accepted, or refused only after the session folder
        // was made or the recording had started.
        (
            vec!["--cameras", "sim:1", "--min-free", "999999TB"],
            2,
            "--min-free: 888.2 PiB is more than the whole disk",
        ),
        (
            vec!["--cameras", "sim:1", "--queue", "99999999999"],
            2,
            "--queue: 99999999999 frames is outside 1..=10000",
        ),
        (
            vec!["--cameras", "sim:1", "--preset", ";rm -rf /"],
            2,
            "--preset: \";rm -rf /\" is not a libx265 preset",
        ),
        (
            vec!["--cameras", "sim:1", "--color", "641x481@30"],
            2,
            "--color: sim:0: colour 641x481 cannot be encoded",
        ),
        (
            vec!["--cameras", "sim:1", "--fps", "1e-300"],
            2,
            "1e-300 fps is outside 0.1..=1000",
        ),
        (
            vec!["--cameras", "sim:1", "--depth", "848x480@1e-300"],
            2,
            "the rate 0.1..=1000 fps",
        ),
        (
            vec!["--cameras", "sim:1", "--segment", "1B"],
            2,
            "below the minimum of 1MB",
        ),
        (
            vec!["--cameras", "sim:1", "--workers", "100000"],
            2,
            "--workers: 100000 compression workers is outside 1..=256",
        ),
        (
            vec!["--cameras", "sim:1", "--crf", "99"],
            2,
            "--crf: 99 is out of range for libx265",
        ),
    ];
    for (args, code, needle) in cases {
        let o = rsrec()
            .args([
                "record",
                "--out",
                out,
                "--session",
                "bad",
                "--quiet",
                "--duration",
                "1s",
            ])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        // clap's own errors add a "For more information" line after a blank one.
        assert_eq!(
            err.trim_end().lines().filter(|l| !l.is_empty()).count()
                - usize::from(err.contains("For more information")),
            1,
            "{args:?}: {err}"
        );
        assert!(
            !std::path::Path::new(out).exists(),
            "{args:?} created {out} before refusing"
        );
    }
}

#[test]
fn import_converts_a_png_set_with_colour_losslessly() {
    let Some(data) = common::data_dir() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let set = data.join("d4xx-848x480-desk-holes");
    let o = rsrec()
        .args([
            "import",
            set.to_str().unwrap(),
            "--fps",
            "30",
            "--out",
            tmp.path().to_str().unwrap(),
            "--quiet",
            "--name",
            "desk",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let r = Reader::open(tmp.path().join("desk.rsrec")).unwrap();
    assert!(verify(&r).ok());
    let files = rsrec::source::pngdir::list_pngs(&set.join("depth")).unwrap();
    assert_eq!(r.frame_count(0), files.len());
    for (i, f) in files.iter().enumerate() {
        let png = rsrec::source::pngdir::read_depth_png(f).unwrap();
        assert!(r.read_depth(0, i).unwrap().data == png.data, "frame {i}");
    }
    let colour = r.count(1, record_type::COLOR_FRAME) as u64;
    assert_eq!(colour, 25);
    assert_eq!(video_frames(&tmp.path().join("desk.color.000.mkv")), colour);
}

/// The niceness of every thread of process `pid` (field 19 of /proc/PID/task/TID/stat).
fn thread_niceness(pid: u32) -> Vec<i64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            // After the ")" that ends the command name: state is field 3, nice field 19.
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split_whitespace().nth(16)?.parse().ok()
        })
        .collect()
}

/// Issue 16 ("depth before colour"): under CPU pressure depth was dropped before colour.
/// The colour encoders now run at a lower priority: every thread of every FFmpeg child is
/// niced by 10, while rsrec's own threads keep theirs. And the default depth codec is `auto`,
/// which on an idle machine writes grad-rans32.
#[test]
fn colour_encoders_run_niced_and_the_default_codec_is_grad_rans32() {
    if !have_ffmpeg() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let child = spawn_small_colour_record(tmp.path(), "sim:2");
    let pids = Command::new("pgrep")
        .args(["-P", &child.id().to_string(), "ffmpeg"])
        .output()
        .unwrap();
    let pids: Vec<u32> = String::from_utf8_lossy(&pids.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let own = thread_niceness(child.id());
    let children: Vec<Vec<i64>> = pids.iter().map(|&p| thread_niceness(p)).collect();
    signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(pids.len(), 2, "one FFmpeg per camera: {pids:?}");
    assert!(
        !own.is_empty() && own.iter().all(|&n| n == own[0]),
        "{own:?}"
    );
    for threads in &children {
        assert!(threads.len() > 1, "{threads:?}");
        assert!(
            threads.iter().all(|&n| n >= own[0] + 10 || n == 19),
            "FFmpeg threads {threads:?}, rsrec {own:?}"
        );
    }
    let s = session(&tmp.path().join("s"));
    assert_eq!(s["settings"]["depth_codec"], "auto");
    for cam in s["cameras"].as_array().unwrap() {
        let mix = &cam["stats"]["depth_codec_frames"];
        assert!(mix["grad-rans32"].as_u64().unwrap() > 30, "{mix}");
    }
}

#[test]
fn ffmpeg_dying_restarts_colour_in_a_new_file() {
    if !have_ffmpeg() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let child = spawn_small_colour_record(tmp.path(), "sim:1");
    // Kill the camera's FFmpeg (a child of rsrec).
    let st = Command::new("pkill")
        .args(["-9", "-P", &child.id().to_string(), "ffmpeg"])
        .status()
        .unwrap();
    assert!(st.success(), "no ffmpeg child found");
    std::thread::sleep(Duration::from_secs(2));
    signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = tmp.path().join("s");
    let s = session(&dir);
    let cam = &s["cameras"][0];
    let videos = cam["color_videos"].as_array().unwrap();
    assert_eq!(videos.len(), 2, "{videos:?}");
    assert!(cam["stats"]["color_restarts"].as_u64().unwrap() >= 1);
    // Both videos play; the second holds exactly its colour entries.
    let r = Reader::open(dir.join("sim0.rsrec")).unwrap();
    assert!(verify(&r).ok());
    let mut per_segment = [0u64; 2];
    for i in 0..r.count(1, record_type::COLOR_FRAME) {
        let (_, p) = r.read_record(1, record_type::COLOR_FRAME, i).unwrap();
        per_segment[rsrec::container::ColorFrameEntry::decode(p)
            .unwrap()
            .segment as usize] += 1;
    }
    // The killed encoder's file holds at most its entries (frames still inside FFmpeg's
    // lookahead when it died are lost, and covered by the gap below).
    let first = video_frames(&dir.join(videos[0].as_str().unwrap()));
    assert!(
        per_segment[0] > 0 && first <= per_segment[0],
        "{first} vs {}",
        per_segment[0]
    );
    assert_eq!(
        video_frames(&dir.join(videos[1].as_str().unwrap())),
        per_segment[1]
    );
    assert!(per_segment[1] > 5);
    // The failure is recorded: an encoder-error gap and an event.
    let gaps = r.gaps().unwrap();
    assert!(gaps
        .iter()
        .any(|(st, g)| *st == 1 && g.reason == rsrec::container::GapReason::EncoderError));
    assert!(r
        .events()
        .unwrap()
        .iter()
        .any(|(_, e)| e.kind == "color_encoder_died"));
    // Depth carried on throughout: no depth frames lost.
    assert_eq!(cam["stats"]["depth_dropped"], 0);
}

#[test]
fn second_ctrl_c_stops_at_once_and_files_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let child = spawn_record(
        tmp.path(),
        &[
            "--cameras",
            "sim:1",
            "--depth",
            "424x240@30",
            "--color",
            "off",
        ],
    );
    std::thread::sleep(Duration::from_secs(3));
    signal(&child, "-INT");
    signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    let code = o.status.code();
    // Either the second signal arrived before the clean stop finished (exit 130), or the
    // clean stop was already done (exit 0): both leave a usable file.
    assert!(code == Some(130) || code == Some(0), "{code:?}");
    let file = tmp.path().join("s/sim0.rsrec");
    let r = Reader::open(&file).unwrap();
    assert!(r.frame_count(0) >= 30);
    if !r.is_closed() {
        let out = tmp.path().join("r.rsrec");
        let o = rsrec()
            .arg("recover")
            .arg(&file)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0));
        assert!(verify(&Reader::open(&out).unwrap()).ok());
    }
}

#[test]
fn disk_guard_stops_cleanly_before_the_disk_is_full() {
    let tmp = tempfile::tempdir().unwrap();
    let free = rsrec::record::session::free_bytes(tmp.path()).unwrap();
    // Leave 60 MB of headroom: raw 848x480@30 depth is ~24 MB/s, so the guard trips within
    // a few seconds, long before --duration.
    let min_free = format!("{}B", free.saturating_sub(60_000_000));
    let o = rsrec()
        .args([
            "record",
            "--out",
            tmp.path().to_str().unwrap(),
            "--session",
            "s",
            "--quiet",
            "--cameras",
            "sim:1",
            "--color",
            "off",
            "--depth-codec",
            "raw",
            "--duration",
            "60s",
            "--min-free",
            &min_free,
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("stopping cleanly"));
    let dir = tmp.path().join("s");
    let s = session(&dir);
    assert_eq!(s["status"], "stopped: disk nearly full");
    let (depth, _) = check_camera(&dir, &s["cameras"][0]);
    assert!(depth > 0);
}

#[test]
fn status_json_prints_one_object_per_second() {
    let _cpu = crate::common::cpu_exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let o = rsrec()
        .args([
            "record",
            "--out",
            tmp.path().to_str().unwrap(),
            "--session",
            "s",
            "--status-json",
            "--cameras",
            "sim:2",
            "--color",
            "off",
            "--depth",
            "212x120@30",
            "--duration",
            "3.5s",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["cameras"].as_array().unwrap().len(), 2);
    let fps = last["cameras"][0]["depth_fps_in"].as_f64().unwrap();
    assert!((20.0..40.0).contains(&fps), "{fps}");
    assert!(last["disk_free_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn size_segments_respect_the_limit_and_keep_every_frame() {
    let tmp = tempfile::tempdir().unwrap();
    // Raw 424x240 frames are 203,520 bytes: a 1 MB limit (the minimum) holds 4 per file.
    record(
        tmp.path(),
        &[
            "--cameras",
            "sim:1",
            "--duration",
            "2s",
            "--depth",
            "424x240@30",
            "--color",
            "off",
            "--depth-codec",
            "raw",
            "--segment",
            "1MB",
        ],
    );
    let dir = tmp.path().join("s");
    let s = session(&dir);
    let cam = &s["cameras"][0];
    let files = cam["files"].as_array().unwrap();
    assert!(files.len() >= 8, "{} files", files.len());
    let mut all = Vec::new();
    for f in files {
        let path = dir.join(f.as_str().unwrap());
        assert!(
            std::fs::metadata(&path).unwrap().len() <= 1_000_000 + 4096,
            "{f} too large"
        );
        let r = Reader::open(&path).unwrap();
        assert!(r.frame_count(0) > 0, "{f} holds no frame");
        all.extend(
            r.entries(0, record_type::DEPTH_FRAME)
                .map(|e| e.frame_number),
        );
    }
    let (depth, _) = check_camera(&dir, cam);
    assert_eq!(all, (0..depth).collect::<Vec<_>>());
}

/// `rsrec record ... --status-json | head -1` (and `2>&1 | head -1`) used to panic with exit
/// 101 a second later ("failed printing to stdout: Broken pipe") and leave session.json at
/// "recording". Status and summary lines that cannot be printed must not stop a recording.
#[test]
fn a_closed_stdout_or_stderr_does_not_stop_a_recording() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = rsrec()
        .args([
            "record",
            "--cameras",
            "sim:1",
            "--duration",
            "3s",
            "--depth",
            "212x120@30",
        ])
        .args(["--color", "off", "--status-json", "--session", "s", "--out"])
        .arg(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both pipes closed at once, as `2>&1 | head -0` would.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    let s = session(&tmp.path().join("s"));
    assert_eq!(s["status"], "complete", "{s}");
    assert!(s["cameras"][0]["stats"]["depth_written"].as_u64().unwrap() > 0);
}
