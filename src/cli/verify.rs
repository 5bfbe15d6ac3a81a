//! `rsrec verify FILE|SESSION`: every checksum, every frame decodes, the index matches.

use std::path::PathBuf;
use std::process::ExitCode;

use super::util::outln;
use anyhow::bail;
use rsrec::container::recover::{verify_with_progress, VerifyReport};
use rsrec::session::Recording;
use serde_json::json;

/// Check every record checksum, decode every frame and check the index.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The .rsrec file to check, or a session folder (every file of it).
    pub file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let single = args.file.is_file() && args.file.file_name().is_none_or(|n| n != "session.json");
    if single {
        let reader = super::util::open_reader(&args.file)?;
        return verify_one(&args.file, &reader, args.json);
    }
    // A session folder: every file of every camera; the first failure is the error.
    let rec = Recording::open(&args.file)?;
    let mut bad = Vec::new();
    let mut reports = Vec::new();
    for cam in &rec.cameras {
        for f in &cam.files {
            let report = verify_bar(&f.reader, &f.path, args.json);
            if !args.json {
                if let Some(first) = report.problems.first() {
                    eprintln!(
                        "{}: {} problem(s); first at offset {}: {}",
                        f.path.display(),
                        report.problem_count,
                        first.offset,
                        first.message
                    );
                } else {
                    outln!(
                        "{}: OK ({} records, {} depth frames decoded, closed cleanly)",
                        f.path.display(),
                        report.records,
                        report.depth_frames
                    );
                }
            }
            if !report.ok() {
                bad.push(f.path.display().to_string());
            }
            reports.push(json!({"file": f.path.display().to_string(), "report": report}));
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&reports)?);
    }
    if !bad.is_empty() {
        bail!(
            "{}: {} of {} file(s) failed verification: {}",
            rec.description,
            bad.len(),
            reports.len(),
            bad.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify_one(
    file: &std::path::Path,
    reader: &rsrec::container::Reader,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let report = verify_bar(reader, file, json);
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    }
    if let Some(first) = report.problems.first() {
        if !json {
            for p in &report.problems {
                eprintln!("  offset {}: {}", p.offset, p.message);
            }
        }
        bail!(
            "{}: {} problem(s); first at offset {}: {}",
            file.display(),
            report.problem_count,
            first.offset,
            first.message
        );
    }
    if !json {
        outln!(
            "{}: OK ({} records, {} depth frames decoded, closed cleanly)",
            file.display(),
            report.records,
            report.depth_frames
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Verifies with a progress bar over the file's bytes (on a terminal, not with --json).
fn verify_bar(
    reader: &rsrec::container::Reader,
    file: &std::path::Path,
    quiet: bool,
) -> VerifyReport {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bar = super::progress::file_bar(reader.file_len(), &name, quiet);
    let report = verify_with_progress(reader, &mut |at| {
        if let Some(b) = &bar {
            b.set_position(at);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    report
}
