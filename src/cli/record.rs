//! `rsrec record`: record cameras into a session folder until Ctrl+C, `--duration` or the end
//! of finite sources, with a live status line per camera and a summary at the end.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rsrec::codec::DepthCodec;
use rsrec::container::{FsyncPolicy, StreamKind, WriterOptions};
use rsrec::record::session::{self, free_bytes};
use rsrec::record::{parse_duration, Pipeline, PipelineConfig, SegmentLimit, StatsSnapshot};
use rsrec::source::sim::{Pacing, StreamMode};
use serde_json::json;

use super::camera_config::{self, ConfigFile};
use super::sources::{open_sources, CameraSpec, SourceSettings};
use super::util::fmt_bytes;

/// Exit code when recording stopped early because the disk was nearly full (files are
/// closed and indexed).
pub const EXIT_DISK_FULL: u8 = 4;

/// Record cameras into OUT/<session>/: one .rsrec file and one colour video per camera, and
/// session.json. Stop with Ctrl+C (drains queues and closes files; a second Ctrl+C stops at
/// once, leaving files that `rsrec recover` restores).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Comma-separated cameras: `sim:N` (N synthetic cameras), `png:DIR` (depth PNG folder
    /// replayed at --fps), `bag:FILE` (librealsense .bag), `all` or SERIAL (RealSense).
    #[arg(long, required = true)]
    pub cameras: String,
    /// Parent folder of the session folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Session folder name [default: UTC start time, YYYYmmdd-HHMMSS].
    #[arg(long)]
    pub session: Option<String>,
    /// Stop after this long (e.g. 10s, 30m, 12h).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Depth mode (synthetic and RealSense cameras) [default: 848x480@30].
    #[arg(long)]
    pub depth: Option<StreamMode>,
    /// Colour mode (synthetic and RealSense cameras), or `off` to record no colour
    /// [default: 640x480@30].
    #[arg(long)]
    pub color: Option<String>,
    /// Record IMU (gyro and accel) where the camera has one.
    #[arg(long)]
    pub imu: bool,
    /// Depth codec: lz4-planes, grad-rans32, grad-rans, med-rans, zstd-planes[:LEVEL] or raw.
    #[arg(long, default_value = "lz4-planes")]
    pub depth_codec: DepthCodec,
    /// Lossy depth with a guaranteed bound: Nmm (e.g. 1mm) or P% of the distance (e.g. 0.5%);
    /// with the default codec it selects grad-rans32 (with --depth-codec med-rans, grad-rans
    /// or grad-rans32 that codec). Holes stay exact; the bound is recorded in the file.
    #[arg(long, value_name = "BOUND")]
    pub depth_max_error: Option<rsrec::codec::MaxError>,
    #[command(flatten)]
    pub color_enc: super::color::ColorArgs,
    #[command(flatten)]
    pub realsense: super::camera_config::RealSenseArgs,
    /// Start a new file every DURATION (10m) or SIZE (5GB), with no frame lost or repeated.
    #[arg(long)]
    pub segment: Option<SegmentLimit>,
    /// Frame rate at which `png:` folders are replayed.
    #[arg(long, default_value_t = 30.0)]
    pub fps: f64,
    /// Per-camera queue between capture and compression, in frames [default: 2 s of frames].
    #[arg(long)]
    pub queue: Option<usize>,
    /// Compression worker threads shared by all cameras [default: number of cores].
    #[arg(long)]
    pub workers: Option<usize>,
    /// When to fsync: flush (every flush, ~1 s), close, never.
    #[arg(long, default_value = "flush")]
    pub fsync: FsyncPolicy,
    /// Stop cleanly when free disk space falls below this (e.g. 2GB).
    #[arg(long, default_value = "2GB")]
    pub min_free: SegmentLimit,
    /// No status lines and no summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print status as one JSON object per line on stdout (for scripts).
    #[arg(long)]
    pub status_json: bool,
}

fn fmt_duration(s: f64) -> String {
    if !s.is_finite() {
        return "-".into();
    }
    let s = s as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// How often a disconnected camera is looked for.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

pub fn run(mut args: Args) -> anyhow::Result<ExitCode> {
    let color_mode = match args
        .color
        .as_deref()
        .unwrap_or(camera_config::DEFAULT_COLOR)
    {
        "off" | "none" => None,
        m => Some(
            m.parse::<StreamMode>()
                .map_err(anyhow::Error::msg)
                .context("--color")?,
        ),
    };
    let min_free = match args.min_free {
        SegmentLimit::Bytes(b) => b,
        SegmentLimit::Duration(_) => bail!("--min-free takes a size such as 2GB"),
    };
    let specs = CameraSpec::parse_list(&args.cameras)?;
    let camera_file = match &args.realsense.camera_config {
        Some(p) => Some(ConfigFile::load(p)?),
        None => None,
    };
    let realsense_cameras = specs.iter().any(|s| {
        matches!(
            s,
            CameraSpec::AllRealSense | CameraSpec::Serial(_) | CameraSpec::RsBag(_)
        )
    });
    if !realsense_cameras && !args.realsense.is_empty() {
        bail!(
            "--sync, --visual-preset, --emitter, --laser-power, --exposure, --color-format, \
             --rs-option and --camera-config are for RealSense cameras (--cameras all, a serial \
             number or rsbag:FILE)"
        );
    }
    let settings = SourceSettings {
        depth: args
            .depth
            .unwrap_or_else(|| camera_config::DEFAULT_DEPTH.parse().expect("valid default")),
        color: color_mode,
        imu: args.imu,
        fps: args.fps,
        pacing: Pacing::RealTime,
        camera_cli: args
            .realsense
            .layer(args.depth.as_ref(), args.color.as_deref(), args.imu)?,
        camera_file,
    };
    let opened = open_sources(&specs, &settings)?;
    if args.depth_max_error.is_some() {
        // A bound in millimetres becomes depth units: every camera must use the same units.
        let mut units: Vec<f32> = opened
            .iter()
            .filter_map(|(_, s)| s.info().stream(StreamKind::Depth).map(|d| d.depth_units))
            .collect();
        units.dedup();
        let [u] = units[..] else {
            anyhow::bail!("--depth-max-error: the cameras' depth units differ ({units:?})");
        };
        args.depth_codec = rsrec::codec::with_max_error(args.depth_codec, args.depth_max_error, u)
            .map_err(anyhow::Error::msg)?;
    }
    // Colour is recorded where a camera has a colour stream; `--color off` also stops the
    // colour of png: folders (a camera config file can switch it on per RealSense camera).
    let any_color = (color_mode.is_some() || settings.camera_file.is_some())
        && opened
            .iter()
            .any(|(_, s)| s.info().stream(StreamKind::Color).is_some());
    let color_factory = if any_color {
        Some(args.color_enc.factory()?)
    } else {
        None
    };

    let session = args
        .session
        .clone()
        .unwrap_or_else(session::default_session_name);
    let dir = args.out.join(&session);
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} already exists and is not empty", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    // Disk preflight: how long will the disk last at the expected rate?
    let mut expected_rate = 0.0;
    for (_, s) in &opened {
        for st in &s.info().streams {
            match st.kind {
                StreamKind::Depth => {
                    let ratio = match args.depth_codec {
                        DepthCodec::Raw => 1.0,
                        DepthCodec::Lz4Planes => 2.7,
                        DepthCodec::ZstdPlanes { .. } => 4.0,
                        DepthCodec::MedRans { .. }
                        | DepthCodec::GradRans { .. }
                        | DepthCodec::GradRans32 { .. } => 8.0,
                    };
                    expected_rate += st.width as f64 * st.height as f64 * 2.0 * st.fps / ratio;
                }
                StreamKind::Color if any_color => {
                    expected_rate += st.width as f64 * st.height as f64 * st.fps * 0.1
                }
                _ => {}
            }
        }
    }
    let free = free_bytes(&dir);
    if let Some(free) = free {
        if free < min_free {
            bail!(
                "only {} free on the disk of {} (--min-free is {}); not starting",
                fmt_bytes(free),
                dir.display(),
                fmt_bytes(min_free)
            );
        }
        if !args.quiet {
            eprintln!(
                "disk: {} free; at the expected ~{:.1} MB/s it lasts about {}",
                fmt_bytes(free),
                expected_rate / 1e6,
                fmt_duration((free - min_free) as f64 / expected_rate.max(1.0))
            );
        }
    }

    // Ctrl+C / SIGTERM: the first stops cleanly, the second exits at once (exit 130).
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing the signal handler")?;
    }

    let command_line: Vec<String> = std::env::args().collect();
    let start_us = rsrec::container::now_utc_us();
    let spec_names: Vec<String> = opened.iter().map(|(s, _)| s.clone()).collect();
    let settings_json = json!({
        "depth_codec": args.depth_codec.to_string(),
        "color_codec": if any_color { Some(args.color_enc.color_codec.clone()) } else { None },
        "crf": args.color_enc.crf, "preset": args.color_enc.preset,
        "segment": args.segment.map(|s| format!("{s:?}")),
        "fsync": format!("{:?}", args.fsync),
        "duration_s": args.duration.map(|d| d.as_secs_f64()),
    });
    let cams: Vec<serde_json::Value> = opened
        .iter()
        .map(|(spec, s)| session::camera_json(&s.info().name, spec, s.info(), &[], &[], None))
        .collect();
    session::write_session_json(
        &dir,
        &session::session_json(
            &session,
            &command_line,
            start_us,
            None,
            "recording",
            settings_json.clone(),
            cams,
        ),
    )
    .context("writing session.json")?;

    let queue = args.queue.unwrap_or_else(|| {
        let fps = opened
            .iter()
            .filter_map(|(_, s)| s.info().stream(StreamKind::Depth).map(|d| d.fps))
            .fold(30.0, f64::max);
        (fps * 2.0).ceil() as usize
    });
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cfg = PipelineConfig {
        session_dir: dir.clone(),
        depth_codec: args.depth_codec,
        queue_frames: queue.max(1),
        workers: args.workers.unwrap_or(cores).max(1),
        writer: WriterOptions {
            fsync: args.fsync,
            ..WriterOptions::default()
        },
        segment: args.segment,
        lossless: false,
        color: color_factory,
        metadata: json!({"session": session, "rsrec_version": env!("CARGO_PKG_VERSION")}),
        reconnect: (!args.realsense.no_reconnect).then_some(RECONNECT_EVERY),
    };
    let sources = opened.into_iter().map(|(_, s)| s).collect();
    let pipeline = Pipeline::start(sources, cfg, stop.clone()).context("starting the pipeline")?;

    let t0 = Instant::now();
    let show = !args.quiet && !args.status_json;
    let tty = std::io::stderr().is_terminal();
    let mut last: Vec<StatsSnapshot> = pipeline.stats().into_iter().map(|(_, s)| s).collect();
    let mut last_t = Instant::now();
    let mut lines_printed = 0;
    let mut disk_stop = false;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if args.duration.is_some_and(|d| t0.elapsed() >= d) {
            stop.store(true, Ordering::SeqCst);
        }
        let free = free_bytes(&dir);
        if free.is_some_and(|f| f < min_free) && !stop.load(Ordering::SeqCst) {
            disk_stop = true;
            eprintln!(
                "rsrec: free disk space below {}: stopping cleanly",
                fmt_bytes(min_free)
            );
            stop.store(true, Ordering::SeqCst);
        }
        if stop.load(Ordering::SeqCst) || pipeline.all_finished() {
            break;
        }
        if last_t.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let dt = last_t.elapsed().as_secs_f64();
        last_t = Instant::now();
        let now = pipeline.stats();
        let total_rate: f64 = now
            .iter()
            .zip(&last)
            .map(|((_, s), l)| s.file_bytes.saturating_sub(l.file_bytes) as f64 / dt)
            .sum();
        let left = free.map(|f| (f.saturating_sub(min_free)) as f64 / total_rate.max(1.0));
        if args.status_json {
            let cams: Vec<_> = now
                .iter()
                .zip(&last)
                .map(|((name, s), l)| {
                    json!({
                        "camera": name,
                        "depth_fps_in": (s.depth_captured - l.depth_captured) as f64 / dt,
                        "depth_fps_out": (s.depth_written - l.depth_written) as f64 / dt,
                        "color_fps": (s.color_queued - l.color_queued) as f64 / dt,
                        "mb_per_s": s.file_bytes.saturating_sub(l.file_bytes) as f64 / dt / 1e6,
                        "stats": s,
                    })
                })
                .collect();
            println!(
                "{}",
                json!({"elapsed_s": t0.elapsed().as_secs_f64(), "disk_free_bytes": free,
                       "disk_seconds_left": left, "cameras": cams})
            );
        } else if show {
            if tty && lines_printed > 0 {
                eprint!("\x1b[{lines_printed}A");
            }
            for ((name, s), l) in now.iter().zip(&last) {
                eprintln!(
                    "{name:>10} depth {:5.1}/{:5.1} fps  queue {:>3}/{:<3} (max {:>3})  {:4.1}x  {:6.1} MB/s  drops {}{}  | color {:5.1} fps drops {}{}\x1b[K",
                    (s.depth_captured - l.depth_captured) as f64 / dt,
                    (s.depth_written - l.depth_written) as f64 / dt,
                    s.queue_len,
                    s.queue_capacity,
                    s.queue_high_water,
                    s.compression_ratio,
                    s.file_bytes.saturating_sub(l.file_bytes) as f64 / dt / 1e6,
                    s.depth_dropped,
                    if s.depth_source_skipped > 0 { format!(" (+{} source)", s.depth_source_skipped) } else { String::new() },
                    (s.color_queued - l.color_queued) as f64 / dt,
                    s.color_dropped,
                    if s.disconnected {
                        "  DISCONNECTED: reconnecting".to_string()
                    } else {
                        s.error.as_ref().map(|e| format!("  ERROR: {e}")).unwrap_or_default()
                    },
                );
            }
            eprintln!(
                "{:>10} {:.0}s elapsed, disk {} free, {} left at the current rate\x1b[K",
                "",
                t0.elapsed().as_secs_f64(),
                free.map(fmt_bytes).unwrap_or_else(|| "?".into()),
                left.map(fmt_duration).unwrap_or_else(|| "?".into())
            );
            lines_printed = now.len() + 1;
        }
        last = now.into_iter().map(|(_, s)| s).collect();
    }
    if show {
        eprintln!("stopping: draining queues and closing files...");
    }
    let outcomes = pipeline.finish();
    let stop_us = rsrec::container::now_utc_us();
    let errors: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.stats.error.as_ref().map(|e| format!("{}: {e}", o.name)))
        .collect();
    let status = if disk_stop {
        "stopped: disk nearly full"
    } else if !errors.is_empty() {
        "stopped: error"
    } else {
        "complete"
    };
    session::write_session_json(
        &dir,
        &session::session_json(
            &session,
            &command_line,
            start_us,
            Some(stop_us),
            status,
            settings_json,
            session::outcomes_json(&outcomes, &spec_names),
        ),
    )
    .context("writing session.json")?;
    if !args.quiet {
        println!(
            "session {} ({:.1} s): {status}",
            dir.display(),
            (stop_us - start_us) as f64 / 1e6
        );
        println!(
            "{:>10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>10}",
            "camera",
            "depth in",
            "written",
            "dropped",
            "skipped",
            "color",
            "c.drop",
            "ratio",
            "bytes"
        );
        for o in &outcomes {
            let s = &o.stats;
            println!(
                "{:>10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6.2}x {:>10}",
                o.name,
                s.depth_captured,
                s.depth_written,
                s.depth_dropped,
                s.depth_source_skipped,
                s.color_queued,
                s.color_dropped,
                s.compression_ratio,
                fmt_bytes(s.file_bytes)
            );
        }
    }
    for o in outcomes.iter().filter(|o| o.stats.disconnects > 0) {
        eprintln!(
            "rsrec: warning: {} disconnected {} time(s) and came back {} time(s), away {:.1} s \
             in total (gap records in its file)",
            o.name,
            o.stats.disconnects,
            o.stats.reconnects,
            o.stats.outage_ms as f64 / 1e3
        );
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(if disk_stop {
        ExitCode::from(EXIT_DISK_FULL)
    } else {
        ExitCode::SUCCESS
    })
}
