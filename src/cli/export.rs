//! `rsrec export SESSION_DIR|FILE --to png16|npy|ply|color|ir --out DIR`: recordings to
//! PNG16, NumPy, PLY, colour images and infrared (see `rsrec::export` and docs/export.md).

use anyhow::Context;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use super::progress::{ExportBar, WarningsOnly};
use rsrec::export::{
    ExportOptions, Format, FrameRange, ImageFormat, PngCompression, Progress, TimeRange, Window,
};

use super::util::{fmt_bytes, outln, usage};

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum To {
    /// One 16-bit grayscale PNG per depth frame, plus frames.csv.
    Png16,
    /// depth.npy (N x H x W uint16), timestamps.npy, host_timestamps_us.npy,
    /// frame_numbers.npy, intrinsics.json.
    Npy,
    /// One binary PLY point cloud per depth frame (metres; coloured when possible).
    Ply,
    /// Colour frames decoded with FFmpeg, as PNG or JPEG, plus frames.csv.
    #[value(alias = "colour")]
    Color,
    /// Infrared (recorded with --ir): per imager, 8-bit PNGs with a CSV, and ir_left.npy
    /// (N x H x W uint8) with its timestamps and frame numbers.
    #[value(alias = "infrared")]
    Ir,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Image {
    Png,
    #[value(alias = "jpg")]
    Jpeg,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Level {
    Fast,
    Default,
    Best,
}

fn parse_every(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number >= 1")),
    }
}

fn parse_quality(s: &str) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(q) if (1..=100).contains(&q) => Ok(q),
        _ => Err(format!("{s:?} is not a JPEG quality from 1 to 100")),
    }
}

/// Export depth (and colour) to 16-bit PNG, NumPy, PLY point clouds or colour images.
///
/// Output goes to OUT/<camera>/<format>/ (with intrinsics.json); an existing non-empty
/// output folder is replaced only with --force.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Session folder (with session.json), folder of .rsrec files, or one .rsrec file.
    pub input: PathBuf,
    /// Output format.
    #[arg(long = "to", value_enum)]
    pub to: To,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Comma-separated camera names [default: every camera].
    #[arg(long, value_delimiter = ',')]
    pub cameras: Vec<String>,
    /// Frames A:B by position in the camera's stream (from 0, across segment files; B
    /// excluded; either side may be omitted, e.g. 100: or :50).
    #[arg(long, value_name = "A:B", allow_hyphen_values = true)]
    pub frames: Option<FrameRange>,
    /// Time window T0:T1 in seconds from the start of the recording (host clock; T1
    /// excluded; either side may be omitted).
    #[arg(
        long,
        value_name = "T0:T1",
        conflicts_with = "frames",
        allow_hyphen_values = true
    )]
    pub time: Option<TimeRange>,
    /// Export every N-th selected frame.
    #[arg(long, default_value = "1", value_parser = parse_every, value_name = "N")]
    pub every: usize,
    /// npy: add color.npy, the colour frame nearest in time to each depth frame (needs FFmpeg).
    #[arg(long, visible_alias = "with-colour")]
    pub with_color: bool,
    /// ply: do not colour the points.
    #[arg(long, visible_alias = "no-colour")]
    pub no_color: bool,
    /// color: image file format.
    #[arg(long, value_enum, default_value = "png")]
    pub image_format: Image,
    /// color: JPEG quality, 1-100.
    #[arg(long, default_value = "90", value_parser = parse_quality)]
    pub jpeg_quality: u8,
    /// png16 and color PNGs: compression effort (fast is about 15x faster than default;
    /// best makes the smallest files).
    #[arg(long, value_enum, default_value = "fast")]
    pub png_compression: Level,
    /// Worker threads decoding depth [default: one per core, one fewer for npy and coloured
    /// ply, where the writing thread is busy too].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Path of the ffmpeg program (colour).
    #[arg(long, default_value = "ffmpeg")]
    pub ffmpeg: PathBuf,
    /// Replace existing output folders.
    #[arg(long)]
    pub force: bool,
    /// Export the depth frames that decode and list damaged ones as gaps (an empty `file`
    /// in frames.csv; for npy an all-zero frame and a 1 in damaged.npy), exit code 3.
    /// Without it the first damaged frame stops the export (`rsrec recover` repairs files).
    #[arg(long)]
    pub skip_damaged: bool,
    /// No progress bar and no summary (warnings and errors are still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let format = match args.to {
        To::Png16 => Format::Png16,
        To::Npy => Format::Npy,
        To::Ply => Format::Ply,
        To::Color => Format::Color,
        To::Ir => Format::Ir,
    };
    if args.with_color && format != Format::Npy {
        return Err(usage(
            "--with-color applies to --to npy (ply is coloured by default; --to color exports colour)",
        ));
    }
    if args.no_color && format != Format::Ply {
        return Err(usage("--no-color applies to --to ply"));
    }
    let mut opts = ExportOptions::new(format, &args.out);
    opts.cameras = args.cameras.clone();
    opts.window = match (args.frames, args.time) {
        (Some(f), _) => Window::Frames(f),
        (None, Some(t)) => Window::Time(t),
        (None, None) => Window::All,
    };
    opts.every = args.every;
    opts.color = match format {
        Format::Npy => args.with_color,
        Format::Ply => !args.no_color,
        _ => false,
    };
    opts.image_format = match args.image_format {
        Image::Png => ImageFormat::Png,
        Image::Jpeg => ImageFormat::Jpeg,
    };
    opts.jpeg_quality = args.jpeg_quality;
    opts.png_compression = match args.png_compression {
        Level::Fast => PngCompression::Fast,
        Level::Default => PngCompression::Default,
        Level::Best => PngCompression::Best,
    };
    opts.threads = args.threads.unwrap_or(0);
    opts.ffmpeg = args.ffmpeg.clone();
    opts.force = args.force;
    opts.skip_damaged = args.skip_damaged;
    // Ctrl+C / SIGTERM: the first stops cleanly (the unfinished camera's output is
    // removed; finished cameras stay), a second one exits at once.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    rsrec::record::stop_on_signals(&stop).context("installing the signal handler")?;
    opts.stop = Some(stop);

    let mut bar = ExportBar::new();
    let mut warnings = WarningsOnly;
    let progress: &mut dyn Progress = if !args.quiet && std::io::stderr().is_terminal() {
        &mut bar
    } else {
        &mut warnings
    };
    let report = match rsrec::export::export(&args.input, &opts, progress) {
        Err(e @ rsrec::export::ExportError::Interrupted { .. }) => {
            eprintln!("rsrec: {e}");
            return Ok(ExitCode::from(super::EXIT_INTERRUPTED));
        }
        r => r?,
    };
    let damaged: usize = report.cameras.iter().map(|c| c.damaged.len()).sum();
    if !args.quiet {
        let (what, raw) = match format {
            Format::Color => ("colour frames", "colour"),
            Format::Ir => ("infrared frames", "infrared"),
            _ => ("depth frames", "depth"),
        };
        for c in &report.cameras {
            outln!(
                "{}: {} {what} -> {} ({} written)",
                c.camera,
                c.frames,
                c.dir.display(),
                fmt_bytes(c.bytes_written)
            );
        }
        let secs = report.elapsed.as_secs_f64().max(1e-9);
        outln!(
            "exported {} frames ({} raw) in {:.2} s: {:.0} frames/s, {:.1} MB/s of raw {raw}",
            report.frames(),
            fmt_bytes(report.raw_bytes()),
            secs,
            report.frames() as f64 / secs,
            report.raw_bytes() as f64 / secs / 1e6,
        );
    }
    if damaged > 0 {
        eprintln!(
            "rsrec: warning: {damaged} damaged depth frame(s) skipped (gaps in the frame table; \
             listed in intrinsics.json); `rsrec recover` repairs the file"
        );
        return Ok(ExitCode::from(super::EXIT_LOSSY_RECOVERY));
    }
    Ok(ExitCode::SUCCESS)
}
