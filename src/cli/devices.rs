//! `rsrec devices`: list connected RealSense cameras (work in progress).

use std::process::ExitCode;

/// List connected RealSense cameras.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "this build of rsrec has no RealSense support: install librealsense2-dev and build with \
         `cargo install --path . --features realsense` (see README)"
    )
}
