//! Command-line interface: one file per subcommand, each with its args struct and `run()`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod camera_config;
mod color;
mod completions;
mod devices;
mod export;
mod import;
mod info;
mod man;
mod progress;
mod record;
mod recover;
pub mod util;
mod verify;
mod view;

/// Exit code for any error (bad input, a file that fails verification, I/O errors).
pub const EXIT_ERROR: u8 = 1;
/// Exit code for bad arguments (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `rsrec recover` when records in the middle of the file had to be discarded,
/// and of `rsrec export --skip-damaged` when damaged frames were skipped.
pub const EXIT_LOSSY_RECOVERY: u8 = 3;
/// Exit code of `import` / `export` stopped by Ctrl+C (cleanly, the unfinished output
/// removed), and of a second Ctrl+C during `record`.
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Parser)]
#[command(
    name = "rsrec",
    version,
    about = "Record Intel RealSense cameras into compact, crash-safe, seekable .rsrec files",
    after_help = "Exit codes: 0 success, 1 error, 2 bad arguments, 3 recovery discarded damaged records (or export skipped damaged frames), 4 recording stopped early (disk full), 5 `record --strict` lost frames, 130 interrupted (Ctrl+C).\n\nEnvironment: RSREC_MAX_FRAME_PIXELS (default 33554432 = 2^25) is the largest frame, in pixels, that rsrec reads or writes; a larger frame is refused before anything is allocated."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Info(info::Args),
    Verify(verify::Args),
    Recover(recover::Args),
    Import(import::Args),
    Record(Box<record::Args>),
    Export(export::Args),
    Devices(devices::Args),
    View(view::Args),
    Completions(completions::Args),
    Man(man::Args),
}

impl Cli {
    /// Checks between arguments that clap cannot express; the error exits with code 2 and
    /// clap's usage line (`err.exit()`), like any other bad argument.
    pub fn validate(&self) -> Result<(), clap::Error> {
        use clap::CommandFactory;
        let (codec, max_error) = match &self.command {
            Command::Record(a) => (a.depth_codec, a.depth_max_error),
            Command::Import(a) => (a.depth_codec, a.depth_max_error),
            _ => return Ok(()),
        };
        codec
            .check_lossy(max_error)
            .map_err(|msg| Cli::command().error(clap::error::ErrorKind::ArgumentConflict, msg))
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Every reader and writer applies the frame limit; a bad setting is a usage error, once.
    if let Err(e) = rsrec::container::ReadLimits::from_env() {
        return Err(util::usage(e.to_string()));
    }
    match cli.command {
        Command::Info(a) => info::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Recover(a) => recover::run(a),
        Command::Import(a) => import::run(a),
        Command::Record(a) => record::run(*a),
        Command::Export(a) => export::run(a),
        Command::Devices(a) => devices::run(a),
        Command::View(a) => view::run(a),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => man::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // Duplicate flag names (e.g. two `--preset`) only show up here or at run time.
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_every_subcommand() {
        assert!(Cli::try_parse_from(["rsrec", "info", "f.rsrec", "--json"]).is_ok());
        assert!(Cli::try_parse_from(["rsrec", "verify", "f.rsrec"]).is_ok());
        assert!(Cli::try_parse_from(["rsrec", "recover", "f.rsrec", "-o", "g.rsrec"]).is_ok());
        assert!(Cli::try_parse_from([
            "rsrec",
            "import",
            "dir",
            "--fps",
            "30",
            "--out",
            "o",
            "--depth-codec",
            "zstd-planes:5"
        ])
        .is_ok());
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(Cli::try_parse_from(["rsrec", "info"]).is_err());
        assert!(Cli::try_parse_from(["rsrec", "import", "dir", "--fps", "30"]).is_err());
        assert!(Cli::try_parse_from([
            "rsrec",
            "import",
            "dir",
            "--fps",
            "30",
            "--out",
            "o",
            "--depth-codec",
            "gzip"
        ])
        .is_err());
        assert!(
            Cli::try_parse_from(["rsrec", "import", "dir", "--fps", "abc", "--out", "o"]).is_err()
        );
        assert!(Cli::try_parse_from(["rsrec", "frobnicate"]).is_err());
    }
}
