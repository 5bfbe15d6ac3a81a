//! `rsrec export`: recordings to PNG16, NumPy, PLY and colour images (work in progress).

use std::path::PathBuf;
use std::process::ExitCode;

/// Export depth (and colour) to png16, npy, ply or colour images.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Session folder or .rsrec file.
    pub input: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("export of {} is not implemented yet", args.input.display())
}
