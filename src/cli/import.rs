//! `rsrec import DIR --fps F --out OUT_DIR`: pack a folder of 16-bit depth PNGs.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use rsrec::codec::DepthCodec;
use rsrec::import::{import_png_dir, ImportOptions};

use super::util::fmt_bytes;

/// Pack a folder of 16-bit depth PNGs (DIR or DIR/depth/, natural sort) into OUT_DIR/<name>.rsrec.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset folder: PNGs in DIR itself or in DIR/depth/.
    pub dir: PathBuf,
    /// Frame rate the images were captured at (sets the synthetic timestamps).
    #[arg(long)]
    pub fps: f64,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Depth codec: raw, lz4-planes, zstd-planes or zstd-planes:LEVEL.
    #[arg(long, default_value = "lz4-planes")]
    pub depth_codec: DepthCodec,
    /// Metres per depth unit of the PNG values.
    #[arg(long, default_value_t = 0.001)]
    pub depth_units: f32,
    /// Output file name without extension [default: the dataset folder's name].
    #[arg(long)]
    pub name: Option<String>,
    /// Intrinsics JSON (Open3D camera_intrinsic.json) [default: DIR/camera_intrinsic.json if present].
    #[arg(long)]
    pub intrinsics: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = ImportOptions {
        fps: args.fps,
        codec: args.depth_codec,
        depth_units: args.depth_units,
        name: args.name.clone(),
        overwrite: args.force,
        intrinsics: args.intrinsics.clone(),
        start_utc_us: None,
    };
    let show = !args.quiet && std::io::stderr().is_terminal();
    let t0 = Instant::now();
    let report = import_png_dir(&args.dir, &args.out, &opts, |done, total| {
        if show && (done % 10 == 0 || done == total) {
            let el = t0.elapsed().as_secs_f64().max(1e-9);
            let rate = done as f64 / el;
            let eta = (total - done) as f64 / rate.max(1e-9);
            eprint!(
                "\rimporting {done}/{total} frames ({:.0}%), {rate:.0} frames/s, ETA {eta:.0}s   ",
                100.0 * done as f64 / total as f64
            );
        }
    })
    .with_context(|| format!("importing {}", args.dir.display()))?;
    if show {
        eprintln!();
    }
    if !args.quiet {
        let ratio = report.raw_bytes as f64 / report.compressed_bytes.max(1) as f64;
        println!(
            "{}: {} frames {}x{}, {} raw -> {} ({}, ratio {ratio:.2}x) in {:.1}s",
            report.path.display(),
            report.frames,
            report.width,
            report.height,
            fmt_bytes(report.raw_bytes),
            fmt_bytes(report.file_bytes),
            args.depth_codec,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}
