//! `rsrec man`: the man page (roff) on stdout.

use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

/// Print the rsrec man page in roff (e.g. `rsrec man > rsrec.1; man ./rsrec.1`). With
/// --subcommand, the page of one subcommand (`rsrec man --subcommand record > rsrec-record.1`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the page of this subcommand instead.
    #[arg(long)]
    pub subcommand: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cmd = super::Cli::command();
    let page = match &args.subcommand {
        None => cmd,
        Some(name) => {
            let names: Vec<String> = cmd
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            let sub = cmd.find_subcommand(name).cloned().ok_or_else(|| {
                super::util::usage(format!(
                    "--subcommand: no subcommand '{name}' (one of: {})",
                    names.join(", ")
                ))
            })?;
            // The page is named after the full command (`rsrec-record`).
            let full = format!("rsrec-{}", sub.get_name());
            // clap names are static strings; this process prints one page and exits.
            sub.name(&*Box::leak(full.into_boxed_str()))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .context("rendering the man page")?;
    super::util::write_bytes(&out);
    Ok(ExitCode::SUCCESS)
}
