//! `rsrec import DIR|FILE.bag --out OUT_DIR`: convert a folder of 16-bit depth PNGs (plus
//! `color/` images) or a librealsense `.bag` through the recording pipeline, as fast as
//! possible and without dropping anything, into `OUT_DIR/<name>.rsrec` (and
//! `<name>.color.000.mkv` when there is colour).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rsrec::codec::DepthCodec;
use rsrec::container::{FsyncPolicy, StreamKind, WriterOptions};
use rsrec::record::{Pipeline, PipelineConfig};
use rsrec::source::png::PngSource;
use rsrec::source::sim::Pacing;
use rsrec::source::{Sample, Source, SourceError, SourceInfo};
use serde_json::json;

use super::util::fmt_bytes;

/// Convert a folder of 16-bit depth PNGs (DIR or DIR/depth/, natural sort; colour from
/// DIR/color/) or a librealsense .bag into OUT_DIR/<name>.rsrec, losslessly and as fast as
/// possible.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset folder (PNGs in DIR or DIR/depth/) or a .bag file.
    pub input: PathBuf,
    /// Frame rate the PNGs were captured at (sets their timestamps); required for folders.
    #[arg(long)]
    pub fps: Option<f64>,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Depth codec: raw, lz4-planes, grad-rans32, grad-rans, med-rans, zstd-planes or
    /// zstd-planes:LEVEL.
    #[arg(long, default_value = "lz4-planes")]
    pub depth_codec: DepthCodec,
    /// Lossy depth with a guaranteed bound: Nmm (e.g. 1mm) or P% of the distance (e.g. 0.5%);
    /// with the default codec it selects grad-rans32 (with --depth-codec med-rans, grad-rans
    /// or grad-rans32 that codec). Holes stay exact; the bound is recorded in the file.
    #[arg(long, value_name = "BOUND")]
    pub depth_max_error: Option<rsrec::codec::MaxError>,
    /// Metres per depth unit of the PNG values.
    #[arg(long, default_value_t = 0.001)]
    pub depth_units: f32,
    /// Output file name without extension [default: the folder's or bag's name].
    #[arg(long)]
    pub name: Option<String>,
    /// Intrinsics JSON (Open3D camera_intrinsic.json) [default: DIR/camera_intrinsic.json if present].
    #[arg(long)]
    pub intrinsics: Option<PathBuf>,
    #[command(flatten)]
    pub color: super::color::ColorArgs,
    /// Replace existing output files.
    #[arg(long)]
    pub force: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

/// A source under another name (the output file's).
struct Renamed(Box<dyn Source>, SourceInfo);

impl Source for Renamed {
    fn info(&self) -> &SourceInfo {
        &self.1
    }
    fn next(&mut self) -> Result<Option<Sample>, SourceError> {
        self.0.next()
    }
}

fn stem(p: &Path) -> String {
    p.canonicalize()
        .ok()
        .and_then(|p| p.file_stem().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "import".into())
}

pub fn run(mut args: Args) -> anyhow::Result<ExitCode> {
    let input = &args.input;
    let (source, total): (Box<dyn Source>, Option<usize>) = if input.is_file() {
        (super::bag::open(input, Pacing::AsFastAsPossible)?, None)
    } else if input.is_dir() {
        let fps = args
            .fps
            .context("--fps is required for a PNG folder (the rate its frames were captured at)")?;
        let src = PngSource::open(
            input,
            fps,
            args.depth_units,
            args.intrinsics.as_deref(),
            Pacing::AsFastAsPossible,
        )
        .with_context(|| format!("importing {}", input.display()))?;
        let n = src.depth_frames();
        (Box::new(src), Some(n))
    } else {
        bail!("importing {}: not a directory or file", input.display());
    };
    let name = args.name.clone().unwrap_or_else(|| stem(input));
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        bail!("--name '{name}' is not a usable file name");
    }
    let mut info = source.info().clone();
    info.name = name.clone();
    if let Some(d) = info.stream(StreamKind::Depth) {
        args.depth_codec =
            rsrec::codec::with_max_error(args.depth_codec, args.depth_max_error, d.depth_units)
                .map_err(anyhow::Error::msg)?;
    }
    let has_color = info.stream(StreamKind::Color).is_some() && args.color.color_codec != "off";
    let color = if has_color {
        Some(
            args.color
                .factory()
                .context("the input has colour (use --color-codec off to import depth only)")?,
        )
    } else {
        None
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let target = args.out.join(format!("{name}.rsrec"));
    if target.exists() && !args.force {
        bail!(
            "{} already exists (use --force to replace it)",
            target.display()
        );
    }
    // Everything is written into a staging folder and moved into place at the end, so a
    // failed import leaves nothing that looks complete.
    let staging = args.out.join(format!(".{name}.import.partial"));
    let _ = std::fs::remove_dir_all(&staging);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cfg = PipelineConfig {
        session_dir: staging.clone(),
        depth_codec: args.depth_codec,
        queue_frames: 16,
        workers: cores,
        writer: WriterOptions {
            fsync: FsyncPolicy::OnClose,
            ..WriterOptions::default()
        },
        segment: None,
        lossless: true,
        color,
        metadata: json!({"import": {"source": input.display().to_string(), "fps": args.fps}}),
        reconnect: None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let pipeline = Pipeline::start(vec![Box::new(Renamed(source, info))], cfg, stop)
        .context("starting the import")?;
    let show = !args.quiet && std::io::stderr().is_terminal();
    while !pipeline.all_finished() {
        std::thread::sleep(Duration::from_millis(200));
        if show {
            let s = &pipeline.stats()[0].1;
            let rate = s.depth_written as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            match total {
                Some(n) => eprint!(
                    "\rimporting {}/{n} frames ({:.0}%), {rate:.0} frames/s, ETA {:.0}s   ",
                    s.depth_written,
                    100.0 * s.depth_written as f64 / n.max(1) as f64,
                    n.saturating_sub(s.depth_written as usize) as f64 / rate.max(1e-9)
                ),
                None => eprint!(
                    "\rimporting: {} frames, {rate:.0} frames/s   ",
                    s.depth_written
                ),
            }
        }
    }
    if show {
        eprintln!();
    }
    let outcome = pipeline.finish().remove(0);
    if let Some(e) = &outcome.stats.error {
        let _ = std::fs::remove_dir_all(&staging);
        bail!("importing {}: {e}", input.display());
    }
    let mut moved = Vec::new();
    for f in outcome
        .files
        .iter()
        .map(|f| f.to_path_buf())
        .chain(outcome.videos.iter().map(|v| staging.join(v)))
    {
        let dest = args
            .out
            .join(f.file_name().expect("pipeline files have names"));
        std::fs::rename(&f, &dest)
            .with_context(|| format!("moving {} into place", dest.display()))?;
        moved.push(dest);
    }
    let _ = std::fs::remove_dir_all(&staging);
    if !args.quiet {
        let s = &outcome.stats;
        println!(
            "{}: {} depth frames, {} raw -> {} ({}, ratio {:.2}x){} in {:.1}s",
            target.display(),
            s.depth_written,
            fmt_bytes(s.depth_raw_bytes),
            fmt_bytes(s.file_bytes),
            args.depth_codec,
            s.compression_ratio,
            if s.color_queued > 0 {
                format!(
                    ", {} colour frames -> {}",
                    s.color_queued,
                    outcome.videos.join(", ")
                )
            } else {
                String::new()
            },
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}
