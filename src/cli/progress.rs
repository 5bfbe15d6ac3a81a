//! Progress on the terminal for export, verify and recover: an indicatif bar on stderr
//! (drawn only when stderr is a terminal), warnings on their own lines above it.

use indicatif::{ProgressBar, ProgressStyle};
use rsrec::export::Progress;

/// Export progress as a bar: camera, frames, rate, MB/s of raw data, ETA.
pub struct ExportBar {
    bar: Option<ProgressBar>,
    bytes: u64,
}

impl ExportBar {
    pub fn new() -> Self {
        ExportBar {
            bar: None,
            bytes: 0,
        }
    }
}

impl Progress for ExportBar {
    fn begin(&mut self, total_frames: u64, _total_bytes: u64) {
        let bar = ProgressBar::new(total_frames);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {percent:>3}% [{bar:24}] {pos}/{len} frames  {per_sec}  {msg}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#-"),
        );
        self.bar = Some(bar);
    }
    fn camera(&mut self, name: &str) {
        if let Some(b) = &self.bar {
            b.set_prefix(name.to_string());
        }
    }
    fn advance(&mut self, frames: u64, bytes: u64) {
        self.bytes += bytes;
        if let Some(b) = &self.bar {
            b.inc(frames);
            let secs = b.elapsed().as_secs_f64();
            if secs > 0.0 {
                b.set_message(format!("{:.1} MB/s", self.bytes as f64 / secs / 1e6));
            }
        }
    }
    fn warn(&mut self, message: &str) {
        let line = format!("rsrec: warning: {message}");
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
    fn end(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// Prints warnings only (`--quiet`, or stderr is not a terminal).
pub struct WarningsOnly;

impl Progress for WarningsOnly {
    fn warn(&mut self, message: &str) {
        eprintln!("rsrec: warning: {message}");
    }
}

/// A bar over the bytes of a file being read (verify, recover); `None` when stderr is not a
/// terminal or `quiet` is set, so nothing is drawn into logs.
pub fn file_bar(len: u64, label: &str, quiet: bool) -> Option<ProgressBar> {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{label} {{percent:>3}}% [{{bar:24}}] {{bytes}}/{{total_bytes}}  {{bytes_per_sec}}  ETA {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#-"),
    );
    Some(bar)
}
