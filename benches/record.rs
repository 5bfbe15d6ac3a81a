//! Recording benchmark: N synthetic cameras through the real pipeline (compression pool,
//! writers, FFmpeg for colour), in real time for a fixed period, then as fast as possible.
//!
//! Prints per case: CPU seconds per camera-second (rsrec plus its FFmpeg children), the
//! highest capture-queue fill, and frames dropped. The synthetic frames are pre-rendered so
//! the figures measure the pipeline, not the renderer.
//!
//! Run: `cargo bench --bench record` (`RSREC_BENCH_SECONDS` = seconds per real-time case,
//! default 10; `RSREC_BENCH_CASE="8 x 1280x720"`: only the real-time cases of that mode,
//! `RSREC_BENCH_CASE=busy`: only the cases with every core busy with another process).
//! Files go to a temporary folder on the same disk as the system temp dir.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsrec::container::{FsyncPolicy, WriterOptions};
use rsrec::record::color::{ffmpeg_factory, FfmpegSettings};
use rsrec::record::{DepthEncoding, Pipeline, PipelineConfig, StatsSnapshot};
use rsrec::source::sim::{SimConfig, SimSource};
use rsrec::source::Source;
use rsrec::source::{Pacing, StreamMode};

/// Resident memory of this process in MiB (from /proc/self/status).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn cpu_seconds(who: i32) -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a properly sized out-parameter.
    unsafe { libc::getrusage(who, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

struct Case {
    cameras: usize,
    depth: StreamMode,
    color: Option<StreamMode>,
    encoding: DepthEncoding,
    /// Infrared left and right too.
    ir: bool,
}

impl Case {
    /// `cameras` x `depth` (+ colour) with the default depth encoding (`auto`).
    fn new(cameras: usize, depth: StreamMode, color: Option<StreamMode>) -> Self {
        Self {
            cameras,
            depth,
            color,
            encoding: DepthEncoding::default(),
            ir: false,
        }
    }
}

/// Other processes that keep every core busy while a case runs (`sh` busy loops), as a
/// training job or a second recorder on the same machine would.
struct Burners(Vec<std::process::Child>);

impl Burners {
    fn start(n: usize) -> Self {
        Self(
            (0..n)
                .map(|_| {
                    std::process::Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .expect("sh")
                })
                .collect(),
        )
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run(case: &Case, pacing: Pacing, seconds: f64, frames: Option<u64>, color: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let sources: Vec<Box<dyn Source>> = (0..case.cameras)
        .map(|i| {
            let mut c = SimConfig::new(i, case.depth);
            c.color = case.color;
            c.imu = true;
            if case.ir {
                c.infrared = vec![1, 2];
            }
            c.pacing = pacing;
            c.prerendered = Some(30);
            c.max_depth_frames = frames;
            Box::new(SimSource::new(c)) as Box<dyn Source>
        })
        .collect();
    let color_factory = color.then(|| {
        let ffmpeg = std::path::PathBuf::from("ffmpeg");
        let info = rsrec::video::probe(&ffmpeg).expect("ffmpeg");
        let codec =
            rsrec::video::resolve(rsrec::video::ColorCodec::Libx265, &info, &ffmpeg).unwrap();
        ffmpeg_factory(FfmpegSettings {
            ffmpeg,
            codec,
            crf: None,
            preset: Some("veryfast".into()),
            queue_frames: 60,
        })
    });
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cfg = PipelineConfig {
        session_dir: dir.path().join("s"),
        // A conversion waits for the workers: its `auto` is the strong codec throughout.
        depth: if pacing == Pacing::AsFastAsPossible {
            case.encoding.offline()
        } else {
            case.encoding
        },
        queue_frames: (case.depth.fps * 2.0) as usize,
        workers: cores,
        writer: WriterOptions {
            fsync: FsyncPolicy::EveryFlush,
            ..WriterOptions::default()
        },
        segment: None,
        lossless: pacing == Pacing::AsFastAsPossible,
        color: color_factory,
        metadata: serde_json::json!({}),
        reconnect: None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (cpu0, child0) = (
        cpu_seconds(libc::RUSAGE_SELF),
        cpu_seconds(libc::RUSAGE_CHILDREN),
    );
    let t0 = Instant::now();
    let p = Pipeline::start(sources, cfg, stop).unwrap();
    // Memory after a 2 s warm-up and its maximum afterwards: flat means the two agree.
    let (mut rss_warm, mut rss_max) = (None, 0.0f64);
    while !p.all_finished() && t0.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(Duration::from_millis(50));
        if t0.elapsed().as_secs_f64() >= 2.0 {
            let r = rss_mib();
            rss_warm.get_or_insert(r);
            rss_max = rss_max.max(r);
        }
    }
    let wall_capture = t0.elapsed().as_secs_f64();
    let out = p.finish();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(libc::RUSAGE_SELF) - cpu0 + cpu_seconds(libc::RUSAGE_CHILDREN) - child0;
    let written: u64 = out.iter().map(|o| o.stats.depth_written).sum();
    let dropped: u64 = out.iter().map(|o| o.stats.depth_dropped).sum();
    // Frames the (synthetic) camera lost because nobody took them in time: a CPU too busy
    // for the capture threads.
    let host: u64 = out.iter().map(|o| o.stats.depth_host_dropped).sum();
    let cdropped: u64 = out.iter().map(|o| o.stats.color_dropped).sum();
    let cqueued: u64 = out.iter().map(|o| o.stats.color_queued).sum();
    let steps: u64 = out.iter().map(|o| o.stats.color_preset_steps).sum();
    let presets: Vec<&str> = out
        .iter()
        .filter_map(|o| o.stats.color_preset.as_deref())
        .collect();
    let colour = if color {
        format!(
            "  colour dropped {cdropped}/{} (preset steps {steps}, ending at {})",
            cqueued + cdropped,
            presets.join("/")
        )
    } else {
        String::new()
    };
    let ir = if case.ir {
        let s = |f: fn(&StatsSnapshot) -> u64| out.iter().map(|o| f(&o.stats)).sum::<u64>();
        format!(
            "  IR written {}/{} ratio {:.2}x",
            s(|x| x.ir_written),
            s(|x| x.ir_captured),
            s(|x| x.ir_raw_bytes) as f64 / s(|x| x.ir_stored_bytes).max(1) as f64
        )
    } else {
        String::new()
    };
    let hw = out
        .iter()
        .map(|o| o.stats.queue_high_water)
        .max()
        .unwrap_or(0);
    let raw: u64 = out.iter().map(|o| o.stats.depth_raw_bytes).sum();
    let stored: u64 = out.iter().map(|o| o.stats.depth_stored_bytes).sum();
    let mut mix = StatsSnapshot::default();
    for o in &out {
        for (k, n) in &o.stats.depth_codec_frames {
            *mix.depth_codec_frames.entry(k.clone()).or_default() += n;
        }
    }
    let mix = mix.codec_mix();
    let cam_seconds = written as f64 / case.depth.fps;
    let mode = format!(
        "{} x {}{} [{}]",
        case.cameras,
        case.depth,
        case.color
            .map(|c| format!(" + colour {c}"))
            .unwrap_or_default(),
        case.encoding
    );
    let mode = if case.ir {
        format!("{mode} + IR")
    } else {
        mode
    };
    match pacing {
        Pacing::RealTime => format!(
            "{mode:<44} real time {wall_capture:5.1}s  CPU {:.3} s per camera-second  queue max {hw:>3}/{:<3}  depth dropped {dropped}/{} (+{host} on the host){colour}{ir}  ratio {:.2}x  codecs {mix}  RSS {:.0} MiB at 2 s, max {rss_max:.0} MiB  (stop took {:.1}s)",
            cpu / cam_seconds.max(1e-9),
            (case.depth.fps * 2.0) as usize,
            written + dropped + host,
            raw as f64 / stored.max(1) as f64,
            rss_warm.unwrap_or(0.0),
            wall - wall_capture,
        ),
        Pacing::AsFastAsPossible => {
            let streams_per_core = (cam_seconds / wall) / (cpu / wall);
            format!(
                "{mode:<44} as fast as possible: {written} frames in {wall:.1}s = {:.0} frames/s ({:.0} MB/s raw), {streams_per_core:.1} camera-streams per core, codecs {mix}",
                written as f64 / wall,
                raw as f64 / wall / 1e6
            )
        }
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let seconds: f64 = std::env::var("RSREC_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench { 10.0 } else { 1.0 });
    let have_ffmpeg = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    let m = |s: &str| s.parse::<StreamMode>().unwrap();
    let color = m("640x480@30");
    let lz4 = |c: Case| Case {
        encoding: DepthEncoding::Fixed(rsrec::codec::DepthCodec::Lz4Planes),
        ..c
    };
    let cases = if bench {
        vec![
            Case::new(2, m("848x480@30"), None),
            Case::new(8, m("848x480@30"), None),
            Case::new(2, m("1280x720@30"), None),
            Case::new(8, m("1280x720@30"), None),
            lz4(Case::new(8, m("1280x720@30"), None)),
            Case::new(2, m("848x480@30"), Some(color)),
            Case::new(8, m("848x480@30"), Some(color)),
            Case::new(2, m("1280x720@30"), Some(color)),
            Case {
                ir: true,
                ..Case::new(2, m("848x480@30"), Some(color))
            },
        ]
    } else {
        // `cargo test --benches`: one short case proves the harness works.
        vec![Case::new(2, m("212x120@30"), None)]
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("rsrec record benchmark: {cores} cores, IMU on, fsync every flush");
    // `RSREC_BENCH_CASE=TEXT`: only the real-time cases whose description contains TEXT.
    let only = std::env::var("RSREC_BENCH_CASE").ok();
    let wanted = |what: &str| only.as_ref().is_none_or(|o| what.contains(o.as_str()));
    for c in &cases {
        if !wanted(&format!("{} x {}", c.cameras, c.depth)) {
            continue;
        }
        if c.color.is_some() && !have_ffmpeg {
            println!("(skipping colour cases: ffmpeg not installed)");
            continue;
        }
        println!(
            "{}",
            run(c, Pacing::RealTime, seconds, None, c.color.is_some())
        );
    }
    if bench && have_ffmpeg && wanted("busy") {
        // Depth before colour: every core busy with another process the whole time.
        let _burners = Burners::start(cores.max(1));
        for c in [
            Case::new(2, m("848x480@30"), Some(color)),
            Case::new(4, m("848x480@30"), Some(color)),
        ] {
            println!(
                "every core busy with another process: {}",
                run(&c, Pacing::RealTime, seconds, None, true)
            );
        }
    }
    if only.is_some() {
        return;
    }
    if bench {
        // Memory over a longer run: 8 cameras for 6x the normal period.
        let c = Case::new(8, m("1280x720@30"), None);
        println!(
            "long run: {}",
            run(&c, Pacing::RealTime, seconds * 6.0, None, false)
        );
    }
    for depth in [m("848x480@30"), m("1280x720@30")] {
        let c = Case::new(2, depth, None);
        let frames = if bench { 600 } else { 20 };
        println!(
            "{}",
            run(&c, Pacing::AsFastAsPossible, 1e9, Some(frames), false)
        );
    }
}
