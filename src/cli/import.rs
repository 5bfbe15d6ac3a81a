//! `rsrec import DIR|FILE.bag --out OUT_DIR`: convert a folder of 16-bit depth PNGs (plus
//! `color/` images) or a librealsense `.bag` through the recording pipeline, as fast as
//! possible and without dropping anything, into `OUT_DIR/<name>.rsrec` (and
//! `<name>.color.000.mkv` when there is colour).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use rsrec::container::StreamKind;
use rsrec::record::import::{import, ImportPlan};
use rsrec::record::DepthEncoding;
use rsrec::source::png::PngSource;
use rsrec::source::{Pacing, Source};
use serde_json::json;

use super::util::{fmt_bytes, outln, usage};

/// Convert a folder of 16-bit depth PNGs (DIR or DIR/depth/, natural sort; colour from
/// DIR/color/) or a librealsense .bag into OUT_DIR/<name>.rsrec, losslessly and as fast as
/// possible.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset folder (PNGs in DIR or DIR/depth/) or a .bag file.
    pub input: PathBuf,
    /// Frame rate the PNGs were captured at (sets their timestamps); required for folders.
    #[arg(long, value_parser = super::util::parse_fps)]
    pub fps: Option<f64>,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Depth codec: auto (grad-rans32 for every frame: a conversion waits for the CPU),
    /// raw, lz4-planes, grad-rans32, grad-rans, med-rans, zstd-planes or zstd-planes:LEVEL.
    #[arg(long, default_value = "auto")]
    pub depth_codec: DepthEncoding,
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
    /// `off`: import depth only, as `record --color off` (same as `--color-codec off`).
    #[arg(long = "color", value_name = "off", value_parser = ["off"])]
    pub color_off: Option<String>,
    #[command(flatten)]
    pub color: super::color::ColorArgs,
    /// Replace existing output files.
    #[arg(long)]
    pub force: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

fn stem(p: &Path) -> String {
    p.canonicalize()
        .ok()
        .and_then(|p| p.file_stem().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "import".into())
}

pub fn run(mut args: Args) -> anyhow::Result<ExitCode> {
    // Ctrl+C / SIGTERM: the first stops cleanly and removes the partial output, a second
    // one exits at once (the staging folder, named `.NAME.import.partial`, is then left).
    // Installed first, so that no moment of the import is left to the default action.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    rsrec::record::stop_on_signals(&stop).context("installing the signal handler")?;
    let input = &args.input;
    let mut pairing = None;
    let (source, total): (Box<dyn Source>, Option<usize>) = if input.is_file() {
        let bag = rsrec::source::bag::BagSource::open(input, Pacing::AsFastAsPossible)
            .with_context(|| format!("{}", input.display()))?;
        for s in bag.skipped_streams() {
            eprintln!("rsrec: warning: {}: not imported: {s}", input.display());
        }
        (Box::new(bag) as Box<dyn Source>, None)
    } else if input.is_dir() {
        let fps = args.fps.ok_or_else(|| {
            usage("--fps is required for a PNG folder (the rate its frames were captured at)")
        })?;
        let src = PngSource::open(
            input,
            fps,
            args.depth_units,
            args.intrinsics.as_deref(),
            Pacing::AsFastAsPossible,
        )
        .with_context(|| format!("importing {}", input.display()))?;
        let n = src.depth_frames();
        if let Some(note) = src.pairing().note() {
            // Unpaired frames are a warning (also with --quiet); timestamps are news.
            if src.pairing().unpaired() {
                eprintln!("rsrec: warning: {}: {note}", input.display());
            } else if !args.quiet {
                eprintln!("rsrec: {}: {note}", input.display());
            }
            pairing = Some(note);
        }
        (Box::new(src), Some(n))
    } else {
        bail!("importing {}: not a directory or file", input.display());
    };
    let name = args.name.clone().unwrap_or_else(|| stem(input));
    if let Err(why) = rsrec::record::check_plain_name(&name) {
        return Err(usage(format!(
            "--name '{name}' is not a usable file name: it {why}"
        )));
    }
    let info = source.info();
    if let Some(d) = info.stream(StreamKind::Depth) {
        args.depth_codec = args
            .depth_codec
            .with_max_error(args.depth_max_error, d.depth_units)
            .map_err(anyhow::Error::msg)?;
    }
    let has_color = info.stream(StreamKind::Color).is_some()
        && args.color.color_codec != "off"
        && args.color_off.is_none();
    let color = if has_color {
        Some(
            args.color
                .factory()
                .context("the input has colour (use --color off to import depth only)")?,
        )
    } else {
        None
    };
    let plan = ImportPlan {
        source,
        name,
        out: args.out.clone(),
        depth_codec: args.depth_codec,
        color,
        force: args.force,
        metadata: json!({"import": {"source": input.display().to_string(), "fps": args.fps, "pairing": pairing}}),
        workers: None,
        stop: Some(stop),
    };
    let show = !args.quiet && std::io::stderr().is_terminal();
    let t0 = Instant::now();
    let bar = show.then(|| super::util::progress_bar(total.map(|n| n as u64), "frames"));
    let outcome = import(plan, |s| {
        if let Some(b) = &bar {
            b.set_position(s.depth_written);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Err(e @ rsrec::record::import::ImportError::Interrupted) = &outcome {
        eprintln!("rsrec: {e}");
        return Ok(ExitCode::from(super::EXIT_INTERRUPTED));
    }
    let outcome = outcome.with_context(|| format!("importing {}", input.display()))?;
    if !args.quiet {
        let s = &outcome.stats;
        outln!(
            "{}: {} depth frames, {} raw -> {} ({}, ratio {:.2}x){} in {:.1}s",
            outcome.path.display(),
            s.depth_written,
            fmt_bytes(s.depth_raw_bytes),
            fmt_bytes(s.file_bytes),
            args.depth_codec.offline(),
            s.compression_ratio,
            if s.color_queued > 0 {
                format!(
                    ", {} colour frames -> {}",
                    s.color_queued,
                    outcome
                        .videos
                        .iter()
                        .filter_map(|v| v.file_name().map(|n| n.to_string_lossy().into_owned()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            },
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}
