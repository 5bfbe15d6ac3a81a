//! Small formatting helpers shared by the subcommands.

/// Opens an rsrec file; errors name the file once.
pub fn open_reader(path: &std::path::Path) -> anyhow::Result<rsrec::container::Reader> {
    use rsrec::container::ContainerError;
    rsrec::container::Reader::open(path).map_err(|e| match e {
        // I/O errors already carry the path.
        ContainerError::Io { .. } => anyhow::Error::new(e),
        e => anyhow::Error::new(e).context(path.display().to_string()),
    })
}

pub use rsrec::container::fmt_utc;

/// A bad command-line argument that clap could not catch (a camera spec, a flag that does
/// not apply). `main` prints it like any error and exits with code 2, as clap does.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A [`UsageError`] as an `anyhow::Error`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// Writes a line to stdout. When stdout is closed (`rsrec info --json | head`), the process
/// ends quietly with code 0, as Unix tools do, instead of panicking like `println!`.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    write_bytes(format!("{args}\n").as_bytes());
}

/// Writes bytes to stdout, ending quietly on a closed stdout like [`write_out`].
pub fn write_bytes(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("rsrec: error: writing to stdout: {e}");
        std::process::exit(i32::from(super::EXIT_ERROR));
    }
}

/// `println!` that ends quietly on a closed stdout (see [`write_out`]).
macro_rules! outln {
    () => { $crate::cli::util::write_out(format_args!("")) };
    ($($arg:tt)*) => { $crate::cli::util::write_out(format_args!($($arg)*)) };
}
pub(crate) use outln;

/// A frame rate argument (`--fps`): a number in the range rsrec accepts
/// ([`rsrec::source::MIN_FPS`]..=[`rsrec::source::MAX_FPS`]).
pub fn parse_fps(s: &str) -> Result<f64, String> {
    use rsrec::source::{fps_in_range, MAX_FPS, MIN_FPS};
    let fps: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a frame rate (e.g. 30, 29.97)"))?;
    if !fps_in_range(fps) {
        return Err(format!(
            "{s} fps is outside {MIN_FPS}..={MAX_FPS} (slower is not a camera rate and makes \
             timestamps meaningless)"
        ));
    }
    Ok(fps)
}

/// A progress bar on stderr for `total` items (a spinner with a count when the total is
/// unknown), drawn only where stderr is a terminal (indicatif hides it otherwise).
pub fn progress_bar(total: Option<u64>, unit: &str) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    match total {
        Some(n) => {
            let bar = ProgressBar::new(n);
            let style = ProgressStyle::with_template(&format!(
                "{{bar:40}} {{pos}}/{{len}} {unit} ({{percent}}%), {{per_sec}}, ETA {{eta}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            let style = ProgressStyle::with_template(&format!(
                "{{spinner}} {{pos}} {unit}, {{per_sec}}, {{elapsed}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar
        }
    }
}

/// A number for people: at most `digits` decimals, trailing zeros dropped (`30`, `29.97`,
/// `0.001`, `421.12`), never a 17-digit float.
pub fn fmt_num(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// An internal snake_case name for people (`global_time` -> `global time`).
pub fn human(name: &str) -> String {
    name.replace('_', " ")
}

/// Human-readable byte count.
pub fn fmt_bytes(b: u64) -> String {
    rsrec::record::format_size(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(fmt_utc(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            fmt_utc(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(fmt_utc(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn number_formatting() {
        assert_eq!(fmt_num(30.0, 2), "30");
        assert_eq!(fmt_num(29.970029970029973, 2), "29.97");
        assert_eq!(fmt_num(0.0010000000474974513, 6), "0.001");
        assert_eq!(fmt_num(421.1234130859375, 2), "421.12");
        assert_eq!(human("global_time"), "global time");
    }

    #[test]
    fn byte_formatting() {
        assert_eq!(fmt_bytes(12), "12 B");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
    }
}
