//! Durations and sizes as users write them (`10s`, `1h30m`, `1.5h`, `5GB`, `2GiB`) and as
//! rsrec prints them: `--duration`, `--segment`, `--min-free`, `session.json`.

use std::time::Duration;

/// When to start a new file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SegmentLimit {
    Duration(Duration),
    Bytes(u64),
}

impl std::fmt::Display for SegmentLimit {
    /// What [`FromStr`](std::str::FromStr) reads back: `10m`, `1h30m`, `5GB`, `2GiB`,
    /// `1234B`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            SegmentLimit::Duration(d) => f.write_str(&format_duration(d)),
            SegmentLimit::Bytes(b) => {
                let units = [
                    (1u64 << 40, "TiB"),
                    (1 << 30, "GiB"),
                    (1 << 20, "MiB"),
                    (1_000_000_000_000, "TB"),
                    (1_000_000_000, "GB"),
                    (1_000_000, "MB"),
                ];
                match units.iter().find(|(u, _)| b >= *u && b % u == 0) {
                    Some((u, name)) => write!(f, "{}{name}", b / u),
                    None => write!(f, "{b}B"),
                }
            }
        }
    }
}

impl SegmentLimit {
    /// The smallest segment size: each file repeats the header and has its own index, and a
    /// segment must hold many frames, not one (`--segment 1B` would make a file per frame).
    pub const MIN_BYTES: u64 = 1_000_000;
    /// The shortest segment duration, for the same reason.
    pub const MIN_DURATION: Duration = Duration::from_secs(1);

    /// Checks the limit against [`Self::MIN_BYTES`] and [`Self::MIN_DURATION`].
    pub fn check(self) -> Result<Self, String> {
        match self {
            SegmentLimit::Bytes(b) if b < Self::MIN_BYTES => Err(format!(
                "a segment of {b} bytes is below the minimum of 1MB (each file has its own \
                 header and index; a segment must hold many frames)"
            )),
            SegmentLimit::Duration(d) if d < Self::MIN_DURATION => Err(format!(
                "a segment of {} is below the minimum of 1s",
                format_duration(d)
            )),
            ok => Ok(ok),
        }
    }
}

impl std::str::FromStr for SegmentLimit {
    type Err = String;
    /// A size (a number with a byte unit: `5GB`, `2GiB`, `1000000B`) or a duration (a
    /// number with a time unit: `10m`, `1.5h`); a bare number is refused as ambiguous, and
    /// limits below [`SegmentLimit::MIN_BYTES`] / [`SegmentLimit::MIN_DURATION`] too.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.parse::<f64>().is_ok() {
            return Err(format!(
                "'{s}' needs a unit: a size (5GB) or a duration (10m)"
            ));
        }
        let limit = if t.to_ascii_lowercase().ends_with('b') {
            parse_size(t).map(SegmentLimit::Bytes)?
        } else {
            parse_duration(t)
                .map(SegmentLimit::Duration)
                .map_err(|_| format!("'{s}' is not a size (5GB) or a duration (10m)"))?
        };
        limit.check()
    }
}

/// Parses a size: `5GB` (10^9), `2GiB` (2^30), `100B`, `1.5TB`. Zero is refused.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("'{s}' is not a size (e.g. 2GB, 500MB, 1.5TiB)");
    let v: bytesize::ByteSize = s.trim().parse().map_err(|_| bad())?;
    if v.0 == 0 {
        return Err(format!("'{s}' must be positive"));
    }
    Ok(v.0)
}

/// Parses a duration like `10s`, `5m`, `2h`, `1h30m`, `1h 30min`, `1.5h`, `1d` or a plain
/// number of seconds. Zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("'{s}' is not a duration (e.g. 10s, 5m, 2h, 1h30m)");
    let d = match humantime::parse_duration(t) {
        Ok(d) => d,
        // Fractions (`1.5h`) and bare seconds (`2.5`), which humantime does not read.
        Err(_) => fractional_duration(t).ok_or_else(bad)?,
    };
    if d.is_zero() {
        return Err(bad());
    }
    Ok(d)
}

/// `NUMBER[UNIT]...` with decimal numbers and units s, m, h, d; a last number without a
/// unit counts seconds.
fn fractional_duration(s: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let v: f64 = num.parse().ok()?;
        num.clear();
        total += v * match c {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86400.0,
            _ => return None,
        };
    }
    if !num.is_empty() {
        total += num.parse::<f64>().ok()?;
    }
    // `try_`: a number of days beyond u64 seconds is an error, not a panic.
    Duration::try_from_secs_f64(total).ok()
}

/// A duration for people: `10m`, `1h30m`, `2.5s`, `250ms` (no spaces, so that it parses
/// back as one argument).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// A duration in whole minutes or seconds for status lines: `1h52m`, `3m05s`, `-` when
/// unknown (infinite or NaN seconds).
pub fn format_remaining(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".into();
    }
    let s = seconds as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// A size for people, in binary units as `df -h` shows them: `73.3 GiB`, `1.5 KiB`,
/// `512 B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_limits_parse() {
        assert_eq!(
            "10m".parse(),
            Ok(SegmentLimit::Duration(Duration::from_secs(600)))
        );
        assert_eq!(
            "1.5h".parse(),
            Ok(SegmentLimit::Duration(Duration::from_secs(5400)))
        );
        assert_eq!("5GB".parse(), Ok(SegmentLimit::Bytes(5_000_000_000)));
        assert_eq!("2GiB".parse(), Ok(SegmentLimit::Bytes(2 << 30)));
        assert_eq!("1000000B".parse(), Ok(SegmentLimit::Bytes(1_000_000)));
        assert!("10".parse::<SegmentLimit>().is_err());
        // Regression: `--segment 1B` made a file per frame.
        assert!("1B".parse::<SegmentLimit>().is_err());
        assert!("999KB".parse::<SegmentLimit>().is_err());
        assert!("500ms".parse::<SegmentLimit>().is_err());
        assert!("0m".parse::<SegmentLimit>().is_err());
        assert!("5XB".parse::<SegmentLimit>().is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
        // Regression: a duration past u64 seconds panicked in from_secs_f64.
        assert!(parse_duration("99999999999999999999999999d").is_err());
    }

    #[test]
    fn formats_read_back() {
        for d in [600, 5400, 45, 86400 + 61] {
            let d = Duration::from_secs(d);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
            let l = SegmentLimit::Duration(d);
            assert_eq!(l.to_string().parse(), Ok(l));
        }
        for b in [5_000_000_000, 2 << 30, 1_234_567, 3 << 20] {
            let b = SegmentLimit::Bytes(b);
            assert_eq!(b.to_string().parse(), Ok(b));
        }
        assert_eq!(SegmentLimit::Bytes(5_000_000_000).to_string(), "5GB");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_remaining(6720.0), "1h52m");
        assert_eq!(format_remaining(f64::INFINITY), "-");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1.5 GiB"), Ok(3 << 29));
        assert!(parse_size("0B").is_err());
        assert!(parse_size("lots").is_err());
    }
}
