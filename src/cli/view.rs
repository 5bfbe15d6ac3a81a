//! `rsrec view SESSION|FILE`: replays a recording in a window (feature `viewer`).

use std::path::PathBuf;
use std::process::ExitCode;

/// Replay a session in a window: every camera, one timeline, depth distances on hover.
///
/// Keys: Space play/pause, Left/Right previous/next frame, Home/End start/end.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A session folder, a folder of .rsrec files or one .rsrec file (opened read-only).
    pub input: PathBuf,
    /// Path of the ffmpeg program (colour).
    #[arg(long, default_value = "ffmpeg")]
    pub ffmpeg: PathBuf,
    /// Start at this time from the start of the session: SS[.fff], MM:SS or HH:MM:SS[.fff].
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Inner size of the window, WIDTHxHEIGHT in points.
    #[arg(long, default_value = "1280x800", value_parser = parse_size)]
    pub size: (f32, f32),
    /// Print the panel layout and seek timings to stderr as JSON lines (for tests).
    #[arg(long, hide = true)]
    pub debug_layout: bool,
}

fn parse_size(s: &str) -> Result<(f32, f32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?}: expected WIDTHxHEIGHT"))?;
    let p = |v: &str| {
        v.parse::<u16>()
            .ok()
            .filter(|&v| v >= 200)
            .map(f32::from)
            .ok_or_else(|| format!("{s:?}: sizes are whole numbers from 200"))
    };
    Ok((p(w)?, p(h)?))
}

#[cfg(feature = "viewer")]
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use rsrec::view::{app, model::parse_time, Session};

    let start_at = match &args.at {
        Some(t) => parse_time(t).with_context(|| {
            format!("--at {t:?}: expected SS[.fff], MM:SS[.fff] or HH:MM:SS[.fff]")
        })?,
        None => 0,
    };
    let session = Session::open(&args.input)
        .map_err(anyhow::Error::new)
        .with_context(|| args.input.display().to_string())?;
    for n in &session.notices {
        eprintln!("rsrec: notice: {n}");
    }
    app::run(
        session,
        app::Options {
            ffmpeg: args.ffmpeg,
            start_at,
            debug_layout: args.debug_layout,
            size: [args.size.0, args.size.1],
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "viewer"))]
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = (
        args.input,
        args.ffmpeg,
        args.at,
        args.size,
        args.debug_layout,
    );
    anyhow::bail!(
        "this rsrec was built without the viewer (cargo feature `viewer`); rebuild with the default features: cargo install --path . (or cargo build --features viewer)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1280x800"), Ok((1280.0, 800.0)));
        for bad in ["1280", "x800", "100x100", "axb", "1280x800x3"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
