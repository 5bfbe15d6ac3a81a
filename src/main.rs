//! The `rsrec` command: parses arguments, runs the subcommand, prints errors on one line.

#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if let Err(e) = args.validate() {
        e.exit();
    }
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rsrec: error: {err:#}");
            if err.downcast_ref::<cli::util::UsageError>().is_some() {
                ExitCode::from(cli::EXIT_USAGE)
            } else {
                ExitCode::from(cli::EXIT_ERROR)
            }
        }
    }
}
