//! `rsrec recover FILE [-o OUT]`: rewrite every intact record into a closed, indexed file;
//! `rsrec recover SESSION`: repair every file of a crashed session and its manifest.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rsrec::container::recover::recover_with_progress;

use super::util::outln;
use super::EXIT_LOSSY_RECOVERY;

/// Recover an unclosed or damaged file into a new closed, indexed file, or repair a whole
/// session after a crash.
///
/// With a session folder, every file that is not closed and verifying is recovered in place
/// (into a temporary file that must verify before it replaces the original) and
/// session.json gets the file lists, statistics and the status `recovered after a crash`.
///
/// Exit code 0 when nothing but an incomplete last record was lost, 3 when damaged records in
/// the middle of a file had to be discarded (they are listed as gaps in the output).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The damaged or unclosed .rsrec file (never modified), or a session folder (its files
    /// are repaired in place).
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
    if args.file.is_dir() {
        return run_session(&args);
    }
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
        if report.header_restored {
            outln!("  the file header was damaged: restored from its copy");
        }
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

fn run_session(args: &Args) -> anyhow::Result<ExitCode> {
    if args.output.is_some() {
        return Err(super::util::usage(
            "-o/--output is for one file; a session is repaired in place",
        ));
    }
    let bar = super::progress::file_bar(0, "recovering", args.json);
    let repair = rsrec::record::repair::repair_session(&args.file, &mut |_, at, len| {
        if let Some(b) = &bar {
            b.set_length(len);
            b.set_position(at);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let repair = repair.with_context(|| format!("repairing {}", args.file.display()))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&repair)?);
    } else {
        for f in &repair.files {
            match &f.recovered {
                None => outln!("{}: closed and verified, left as it was", f.file),
                Some(r) => outln!(
                    "{}: recovered {} records ({} depth frames){}{}",
                    f.file,
                    r.recovered_records,
                    r.recovered_depth_frames,
                    if r.torn_tail_bytes > 0 {
                        format!(
                            ", incomplete last record dropped ({} bytes)",
                            r.torn_tail_bytes
                        )
                    } else {
                        String::new()
                    },
                    if r.lost_data_in_middle() {
                        format!(
                            "; DAMAGE: {} damaged region(s), {} undecodable record(s) (gap records in the file)",
                            r.damaged_regions, r.undecodable_records
                        )
                    } else {
                        String::new()
                    }
                ),
            }
        }
        outln!(
            "{}: session.json: {} -> {}",
            args.file.display(),
            repair.status_before,
            repair.status_after
        );
    }
    Ok(if repair.lossy() {
        ExitCode::from(EXIT_LOSSY_RECOVERY)
    } else {
        ExitCode::SUCCESS
    })
}
