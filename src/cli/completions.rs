//! `rsrec completions SHELL`: shell completion script on stdout.

use std::process::ExitCode;

use clap::CommandFactory;

/// Print a shell completion script (e.g. `rsrec completions bash >
/// /etc/bash_completion.d/rsrec`, `rsrec completions zsh > ~/.zfunc/_rsrec`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "rsrec", &mut out);
    super::util::write_bytes(&out);
    Ok(ExitCode::SUCCESS)
}
