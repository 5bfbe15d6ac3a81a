//! `rsrec recover FILE [-o OUT]`: rewrite every intact record into a closed, indexed file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rsrec::container::recover::recover_with_progress;

use super::util::outln;
use super::EXIT_LOSSY_RECOVERY;

/// Recover an unclosed or damaged file into a new closed, indexed file.
///
/// Exit code 0 when nothing but an incomplete last record was lost, 3 when damaged records in
/// the middle of the file had to be discarded (they are listed as gaps in the output).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The damaged or unclosed .rsrec file (never modified).
    pub file: PathBuf,
    /// Output file [default: FILE with `.recovered.rsrec`].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let out = args.output.clone().unwrap_or_else(|| {
        let stem = args
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "recovered".into());
        args.file.with_file_name(format!("{stem}.recovered.rsrec"))
    });
    if out.exists() && !args.force {
        anyhow::bail!(
            "{} already exists (use --force to replace it)",
            out.display()
        );
    }
    let len = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    let bar = super::progress::file_bar(len, "recovering", args.json);
    let report = recover_with_progress(&args.file, &out, args.force, &mut |at, _| {
        if let Some(b) = &bar {
            b.set_position(at);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = report.with_context(|| format!("recovering {}", args.file.display()))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "{} -> {}: {} records recovered ({} depth frames){}",
            args.file.display(),
            out.display(),
            report.recovered_records,
            report.recovered_depth_frames,
            if report.input_closed {
                ", input was closed cleanly"
            } else {
                ""
            }
        );
        if report.torn_tail_bytes > 0 {
            outln!(
                "  incomplete last record dropped: {} bytes",
                report.torn_tail_bytes
            );
        }
        if report.undecodable_records > 0 {
            outln!(
                "  DAMAGE: {} record(s) with valid checksums did not decode; each is a gap record now",
                report.undecodable_records
            );
        }
        if report.damaged_regions > 0 {
            outln!(
                "  DAMAGE: {} damaged region(s), {} record(s) / {} bytes discarded (gap records name the frames whose headers survived)",
                report.damaged_regions, report.discarded_records, report.discarded_bytes
            );
        }
    }
    Ok(if report.lost_data_in_middle() {
        ExitCode::from(EXIT_LOSSY_RECOVERY)
    } else {
        ExitCode::SUCCESS
    })
}
