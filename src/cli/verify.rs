//! `rsrec verify FILE`: every checksum, every frame decodes, the index matches.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use rsrec::container::recover::verify;

/// Check every record checksum, decode every frame and check the index.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The .rsrec file to check.
    pub file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let reader = super::util::open_reader(&args.file)?;
    let report = verify(&reader);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if let Some(first) = report.problems.first() {
        if !args.json {
            for p in &report.problems {
                eprintln!("  offset {}: {}", p.offset, p.message);
            }
        }
        bail!(
            "{}: {} problem(s); first at offset {}: {}",
            args.file.display(),
            report.problem_count,
            first.offset,
            first.message
        );
    }
    if !args.json {
        println!(
            "{}: OK ({} records, {} depth frames decoded, closed cleanly)",
            args.file.display(),
            report.records,
            report.depth_frames
        );
    }
    Ok(ExitCode::SUCCESS)
}
