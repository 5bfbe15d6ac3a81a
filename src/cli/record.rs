//! `rsrec record`: record cameras into a session folder until Ctrl+C, `--duration` or the end
//! of finite sources, with a live status line per camera and a summary at the end.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rsrec::container::{FsyncPolicy, StreamKind, WriterOptions};
use rsrec::record::limits::format_remaining;
use rsrec::record::recorder::LeftOutCamera;
use rsrec::record::DepthEncoding;
use rsrec::record::{
    parse_duration, parse_size, stop_on_signals, CameraPlan, PlanField, RecordError, RecordPlan,
    Recorder, SegmentLimit, StatsSnapshot,
};
use rsrec::session::SessionStatus;
use rsrec::source::{Pacing, StreamMode};
use serde_json::json;

use super::util::{fmt_bytes, usage};
use rsrec::source::config::{self as camera_config, ConfigFile};
use rsrec::source::spec::{open_sources, CameraSpec, SourceSettings};

/// `println!` whose errors are ignored: a summary that cannot be printed (a closed pipe)
/// must not turn a finished recording into a failure or hide a camera error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` whose errors are ignored: a closed stderr (`rsrec record ... 2>&1 | head -1`)
/// must not stop a recording (`eprintln!` panics when it cannot write).
macro_rules! esay {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Exit code when recording stopped early because the disk was nearly full (files are
/// closed and indexed).
pub const EXIT_DISK_FULL: u8 = 4;
/// Exit code with `--strict` when rsrec itself lost frames (depth, colour or IMU: queues
/// full, an encoder behind); the files hold a gap record for each.
pub const EXIT_FRAMES_LOST: u8 = 5;

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
    /// Record infrared (synthetic and RealSense cameras): left, right, left,right or off.
    /// Stored losslessly in the camera's .rsrec at the depth mode (8-bit frames, the depth
    /// codec); depth keeps priority (infrared frames wait only in the first half of the
    /// compression queue).
    #[arg(long, value_name = "IMAGERS", value_parser = parse_ir)]
    pub ir: Option<Imagers>,
    /// Depth codec: auto (grad-rans32; lz4-planes for the frames of a camera whose
    /// compression queue is a quarter full, so that no frame is lost for want of CPU;
    /// grad-rans32 throughout when the disk is the bottleneck),
    /// lz4-planes, grad-rans32, grad-rans, med-rans, zstd-planes[:LEVEL] or raw.
    #[arg(long, default_value = "auto")]
    pub depth_codec: DepthEncoding,
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
    #[arg(long, default_value = "30", value_parser = super::util::parse_fps)]
    pub fps: f64,
    /// Per-camera queue between capture and compression, in frames [default: 2 s of frames].
    #[arg(long)]
    pub queue: Option<usize>,
    /// Compression worker threads shared by all cameras [default: number of cores].
    #[arg(long)]
    pub workers: Option<usize>,
    /// When to fsync: flush (every second, with an index block), close, never.
    #[arg(long, default_value = "flush")]
    pub fsync: FsyncPolicy,
    /// Stop cleanly when free disk space falls below this (e.g. 2GB).
    #[arg(long, default_value = "2GB", value_parser = parse_size)]
    pub min_free: u64,
    /// No status lines and no summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Exit with code 5 when rsrec itself lost any frame or sample (depth, colour or IMU),
    /// so that scripts notice; the session is complete and every loss is a gap record.
    #[arg(long)]
    pub strict: bool,
    /// Print status as one JSON object per line on stdout (for scripts).
    #[arg(long)]
    pub status_json: bool,
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
                .map_err(|e| usage(format!("--color: {e} (or off)")))?,
        ),
    };
    let min_free = args.min_free;
    let specs =
        CameraSpec::parse_list(&args.cameras).map_err(|e| usage(format!("--cameras: {e}")))?;
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
        return Err(usage(
            "--sync, --visual-preset, --emitter, --laser-power, --exposure, --color-format, \
             --gyro-hz, --accel-hz, --rs-option, --camera-config and --require-all are for \
             RealSense cameras (--cameras all, a serial \
             number or rsbag:FILE)",
        ));
    }
    let settings = SourceSettings {
        depth: args
            .depth
            .unwrap_or_else(|| camera_config::DEFAULT_DEPTH.parse().expect("valid default")),
        color: color_mode,
        imu: args.imu,
        ir: args.ir.clone().map(|i| i.0).unwrap_or_default(),
        fps: args.fps,
        pacing: Pacing::RealTime,
        camera_cli: args.realsense.layer(
            args.depth.as_ref(),
            args.color.as_deref(),
            args.imu,
            args.ir.as_ref().map(|i| i.0.as_slice()),
        )?,
        camera_file,
        require_all: args.realsense.require_all,
    };
    let opened = open_sources(&specs, &settings)?;
    for w in &opened.warnings {
        esay!("rsrec: warning: {w}");
    }
    let left_out: Vec<LeftOutCamera> = opened
        .left_out
        .iter()
        .map(|(source, error)| LeftOutCamera {
            source: source.clone(),
            error: error.clone(),
        })
        .collect();
    let opened = opened.cameras;
    // USB preflight (sysfs): cameras on USB 2, overloaded controllers, usbfs_memory_mb.
    let planned: Vec<rsrec::source::usb::PlannedCamera> = opened
        .iter()
        .filter_map(|(_, s)| rsrec::source::usb::PlannedCamera::of_live_realsense(s.info()))
        .collect();
    if !planned.is_empty() {
        let root = std::path::Path::new(rsrec::source::usb::DEFAULT_SYSFS_ROOT);
        for w in rsrec::source::usb::preflight(root, &planned).warnings() {
            esay!("rsrec: warning: {w}");
        }
    }
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
        args.depth_codec = args
            .depth_codec
            .with_max_error(args.depth_max_error, u)
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

    let cameras = opened
        .into_iter()
        .map(|(spec, source)| CameraPlan::new(spec, source))
        .collect();
    let mut plan = RecordPlan::new(args.out.clone(), cameras);
    plan.session = args.session.clone();
    plan.depth_codec = args.depth_codec;
    plan.color = color_factory;
    plan.color_codec = Some(args.color_enc.color_codec.clone());
    plan.crf = args.color_enc.crf;
    plan.preset = args.color_enc.preset.clone();
    plan.queue_frames = args.queue;
    plan.workers = args.workers;
    plan.writer = WriterOptions {
        fsync: args.fsync,
        ..WriterOptions::default()
    };
    plan.segment = args.segment;
    plan.duration = args.duration;
    plan.min_free = min_free;
    plan.reconnect = (!args.realsense.no_reconnect).then_some(RECONNECT_EVERY);
    plan.command_line = std::env::args().collect();
    plan.left_out = left_out;
    let plan = plan.validate().map_err(|e| match e {
        // A value the plan refuses is a bad argument: name its flag.
        RecordError::InvalidPlan { field, why } => {
            let flag = match field {
                PlanField::Cameras => "--cameras",
                PlanField::Session => "--session",
                PlanField::QueueFrames => "--queue",
                PlanField::Workers => "--workers",
                PlanField::Segment => "--segment",
                PlanField::MinFree => "--min-free",
                PlanField::Color => "--color",
                _ => "argument",
            };
            usage(format!("{flag}: {why}"))
        }
        e => anyhow::Error::new(e),
    })?;

    // Ctrl+C / SIGTERM: the first stops cleanly, the second exits at once (exit 130).
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signals(&stop).context("installing the signal handler")?;
    let mut recorder = Recorder::start(plan, stop)?;
    let dir = recorder.dir().to_path_buf();
    let forecast = recorder.forecast();
    if let (Some(free), false) = (forecast.free, args.quiet) {
        esay!(
            "disk: {} free; at the expected ~{:.1} MB/s it lasts about {}",
            fmt_bytes(free),
            forecast.bytes_per_s / 1e6,
            format_remaining(forecast.seconds.unwrap_or(f64::INFINITY))
        );
    }
    let min_free = recorder.min_free();

    let show = !args.quiet && !args.status_json;
    let tty = std::io::stderr().is_terminal();
    let mut last: Vec<StatsSnapshot> = recorder.stats().into_iter().map(|(_, s)| s).collect();
    let mut last_t = Instant::now();
    let mut lines_printed = 0;
    let mut warned_disk = false;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let st = recorder.poll();
        if st.disk_stop && !warned_disk {
            warned_disk = true;
            esay!(
                "rsrec: free disk space below {}: stopping cleanly",
                fmt_bytes(min_free)
            );
        }
        if !st.running {
            break;
        }
        if last_t.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let free = st.free;
        let dt = last_t.elapsed().as_secs_f64();
        last_t = Instant::now();
        let now = recorder.stats();
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
            // A status line that cannot be printed (a closed pipe) must never stop the
            // recording: write errors are ignored.
            let line = json!({"elapsed_s": st.elapsed.as_secs_f64(), "disk_free_bytes": free,
                       "disk_seconds_left": left, "cameras": cams});
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        } else if show {
            let mut err = std::io::stderr().lock();
            if tty && lines_printed > 0 {
                let _ = write!(err, "\x1b[{lines_printed}A");
            }
            for ((name, s), l) in now.iter().zip(&last) {
                let _ = writeln!(
                    err,
                    "{name:>10} depth {:5.1}/{:5.1} fps  queue {:>3}/{:<3} (max {:>3})  {:4.1}x  {:6.1} MB/s  drops {}{}  | color {:5.1} fps drops {}{}{}\x1b[K",
                    (s.depth_captured - l.depth_captured) as f64 / dt,
                    (s.depth_written - l.depth_written) as f64 / dt,
                    s.queue_len,
                    s.queue_capacity,
                    s.queue_high_water,
                    s.compression_ratio,
                    s.file_bytes.saturating_sub(l.file_bytes) as f64 / dt / 1e6,
                    s.depth_dropped,
                    match (s.depth_host_dropped, s.depth_source_skipped) {
                        (0, 0) => String::new(),
                        (0, k) => format!(" (+{k} source)"),
                        (h, 0) => format!(" (+{h} host)"),
                        (h, k) => format!(" (+{h} host, +{k} source)"),
                    },
                    (s.color_queued - l.color_queued) as f64 / dt,
                    s.color_dropped,
                    if s.depth_codec_frames.len() > 1 {
                        format!("  | {}", s.codec_mix())
                    } else {
                        String::new()
                    },
                    if s.disconnected {
                        "  DISCONNECTED: reconnecting".to_string()
                    } else {
                        s.error.as_ref().map(|e| format!("  ERROR: {e}")).unwrap_or_default()
                    },
                );
            }
            let _ = writeln!(
                err,
                "{:>10} {:.0}s elapsed, disk {} free, {} left at the current rate\x1b[K",
                "",
                st.elapsed.as_secs_f64(),
                free.map(fmt_bytes).unwrap_or_else(|| "?".into()),
                left.map(format_remaining).unwrap_or_else(|| "?".into())
            );
            lines_printed = now.len() + 1;
        }
        last = now.into_iter().map(|(_, s)| s).collect();
    }
    if show {
        esay!("stopping: draining queues and closing files...");
    }
    let outcome = recorder.finish()?;
    let (status, outcomes, errors) = (&outcome.status, &outcome.cameras, &outcome.errors);
    let (start_us, stop_us) = (outcome.start_utc_us, outcome.stop_utc_us);
    if !args.quiet {
        let lost = outcome.losses.describe();
        say!(
            "session {} ({:.1} s): {status}{}",
            dir.display(),
            (stop_us - start_us) as f64 / 1e6,
            if lost.is_empty() {
                String::new()
            } else {
                format!(", {lost}")
            }
        );
        say!(
            "{:>10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>10}",
            "camera",
            "depth in",
            "written",
            "dropped",
            "host",
            "skipped",
            "color",
            "c.drop",
            "ratio",
            "bytes"
        );
        for o in outcomes {
            let s = &o.stats;
            say!(
                "{:>10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6.2}x {:>10}",
                o.name,
                s.depth_captured,
                s.depth_written,
                s.depth_dropped,
                s.depth_host_dropped,
                s.depth_source_skipped,
                s.color_queued,
                s.color_dropped,
                s.compression_ratio,
                fmt_bytes(s.file_bytes)
            );
        }
    }
    if !args.quiet {
        if let Some(line) = clock_agreement(outcomes) {
            say!("{line}");
        }
        for o in outcomes
            .iter()
            .filter(|o| o.stats.depth_codec_frames.len() > 1)
        {
            say!(
                "{:>10} depth codecs: {} (the fast one for frames that arrived while the \
                 compression queue was a quarter full)",
                o.name,
                o.stats.codec_mix()
            );
        }
    }
    for o in outcomes.iter().filter(|o| o.stats.color_preset_steps > 0) {
        esay!(
            "rsrec: warning: {}: the colour encoder could not keep up ({} colour frames \
             dropped): it went on {} preset step(s) faster{}, each in a new video (events \
             color_preset_stepped_down); a lighter --preset, a lower --color mode or more \
             CPU avoid it",
            o.name,
            o.stats.color_dropped,
            o.stats.color_preset_steps,
            o.stats
                .color_preset
                .as_deref()
                .map(|p| format!(", ending at {p}"))
                .unwrap_or_default()
        );
    }
    for o in outcomes
        .iter()
        .filter(|o| o.stats.imu_dropped + o.stats.records_lost > 0)
    {
        esay!(
            "rsrec: warning: {}: the writer fell behind (a slow or stalled disk): {} IMU \
             samples dropped (gap records in its file), {} gap/event records lost",
            o.name,
            o.stats.imu_dropped,
            o.stats.records_lost
        );
    }
    for o in outcomes.iter() {
        let s = &o.stats;
        let host = s.depth_host_dropped + s.color_host_dropped + s.imu_host_dropped;
        if host + s.imu_source_skipped + s.bad_frames > 0 {
            esay!(
                "rsrec: warning: {}: {} depth, {} colour and {} IMU samples lost on the host \
                 before rsrec had them (rsrec fell behind: fewer streams, more CPU or a faster \
                 disk help); {} IMU samples skipped by the camera; {} unreadable frames (all \
                 gap records in its file)",
                o.name,
                s.depth_host_dropped,
                s.color_host_dropped,
                s.imu_host_dropped,
                s.imu_source_skipped,
                s.bad_frames
            );
        }
    }
    for o in outcomes.iter().filter(|o| o.stats.disconnects > 0) {
        esay!(
            "rsrec: warning: {} disconnected {} time(s) and came back {} time(s), away {:.1} s \
             in total (gap records in its file)",
            o.name,
            o.stats.disconnects,
            o.stats.reconnects,
            o.stats.outage_ms as f64 / 1e3
        );
    }
    if *status == SessionStatus::DiskFull {
        let full = outcomes.iter().any(|o| o.stats.disk_full);
        esay!(
            "rsrec: {}: files closed and indexed, session.json complete",
            if full {
                "the disk is full"
            } else {
                "stopped because the disk is nearly full"
            }
        );
        for e in errors {
            esay!("rsrec: warning: {e}");
        }
    } else if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    if outcome.losses.any() {
        // Loud even with --quiet: lost frames are what users must never miss.
        esay!(
            "rsrec: warning: {}: rsrec could not keep up (each loss is a gap record; see the \
             summary and session.json `losses`){}",
            outcome.losses.describe(),
            if args.strict {
                ""
            } else {
                "; --strict makes this exit code 5"
            }
        );
    }
    Ok(if *status == SessionStatus::DiskFull {
        ExitCode::from(EXIT_DISK_FULL)
    } else if args.strict && outcome.losses.any() {
        ExitCode::from(EXIT_FRAMES_LOST)
    } else {
        ExitCode::SUCCESS
    })
}

/// How well the cameras' clocks agree: each camera's smallest host time minus device time
/// (session.json `depth_clock_offset_us`) and their spread, for two or more cameras on one
/// host-based clock; a note when they are on their own hardware clocks.
fn clock_agreement(outcomes: &[rsrec::record::pipeline::CameraOutcome]) -> Option<String> {
    let clocks: Vec<(&str, i64, &str)> = outcomes
        .iter()
        .filter_map(|o| {
            Some((
                o.name.as_str(),
                o.stats.depth_clock_offset_us?,
                o.stats.depth_ts_domain.as_deref()?,
            ))
        })
        .collect();
    if clocks.len() < 2 {
        return None;
    }
    let domain = clocks[0].2;
    if clocks.iter().any(|c| c.2 != domain) {
        return Some(format!(
            "{:>10} clocks: the cameras' depth times are on different clocks ({}); they \
             cannot be compared",
            "",
            clocks
                .iter()
                .map(|(n, _, d)| format!("{n} {d}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if domain == "hardware_clock" {
        return Some(format!(
            "{:>10} clocks: every camera's depth times are on its own hardware clock; for times \
             that compare across cameras keep global time on (the default)",
            ""
        ));
    }
    let lo = clocks.iter().map(|c| c.1).min().unwrap_or(0);
    let hi = clocks.iter().map(|c| c.1).max().unwrap_or(0);
    Some(format!(
        "{:>10} clocks ({domain}): host time - device time per camera {}; the cameras agree \
         within {:.1} ms",
        "",
        clocks
            .iter()
            .map(|(n, o, _)| format!("{n} {:.1} ms", *o as f64 / 1000.0))
            .collect::<Vec<_>>()
            .join(", "),
        (hi - lo) as f64 / 1000.0
    ))
}

/// The infrared imagers of `--ir` (1 left, 2 right; empty: off). A type of its own: clap
/// would take a bare `Vec` for a list of values.
#[derive(Clone, Debug)]
pub struct Imagers(pub Vec<u8>);

/// `--ir`: see [`rsrec::source::config::parse_ir`].
fn parse_ir(v: &str) -> Result<Imagers, String> {
    rsrec::source::config::parse_ir(v).map(Imagers)
}
